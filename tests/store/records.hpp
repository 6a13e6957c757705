#pragma once
// Records the store tests write, shared by the contract tests (tests/store/) and the tests of each
// store's own features (tests/sqlite/, tests/postgres/).

#include <cstdint>
#include <functional>
#include <string>

#include "saga/store.hpp"

namespace saga::test {

inline saga::instance_record instance(const std::string& key, const std::string& state,
                                      std::int64_t version = 1) {
  saga::instance_record r;
  r.definition = "order_lifecycle";
  r.key = key;
  r.state = state;
  r.data = R"({"order_id":")" + key + R"("})";
  r.version = version;
  r.fingerprint = "fp1";
  r.correlation_id = "evt-" + key;
  r.created_ms = 1000;
  r.updated_ms = 1000 + version;
  r.state_since_ms = 1000 + version;
  return r;
}

// A saga of `definition` in state "placed", saved: what its timers need (they are kept in the
// instance row).
inline void saga_of(saga::store& s, const std::string& definition, const std::string& key) {
  auto r = instance(key, "placed");
  r.definition = definition;
  s.save_instance(r);
}

inline saga::outbox_record outbox(const std::string& event_id, const std::string& key = "o-1") {
  saga::outbox_record r;
  r.event_id = event_id;
  r.type = "payment.requested";
  r.definition = "order_lifecycle";
  r.key = key;
  r.payload = R"({"id":")" + event_id + R"("})";
  r.created_ms = 2000;
  return r;
}

inline saga::inbox_record inbox(const std::string& event_id, std::int64_t received_ms = 3000) {
  return saga::inbox_record{"urn:shop", event_id, "order_lifecycle", "o-1", R"({"status":"accepted"})",
                            received_ms};
}

// One history row of `key`: the event `event_id`, with `outcome` (a transition from new to placed).
inline saga::history_record history_row(const std::string& key, const std::string& event_id,
                                        const std::string& outcome = "transitioned",
                                        std::int64_t version = 1) {
  saga::history_record r;
  r.definition = "order_lifecycle";
  r.key = key;
  r.version = version;
  r.event_id = event_id;
  r.event_source = "urn:shop";
  r.event_type = "order.placed";
  r.event_time = "2026-11-27T00:00:00Z";
  r.event_data = "{}";
  r.from_state = "new";
  r.to_state = outcome == "transitioned" ? "placed" : "new";
  r.outcome = outcome;
  r.recorded_ms = 1000;
  return r;
}

inline saga::parked_record parked(const std::string& key, const std::string& event_id, std::int64_t at_ms) {
  return saga::parked_record{
      0, "order_lifecycle", key, event_id, "urn:shop", "payment.succeeded", "{}", at_ms, ""};
}

inline saga::dead_letter_record dead_letter(const std::string& event_id, const std::string& payload,
                                            std::int64_t at_ms, const std::string& reason = "rejected") {
  saga::dead_letter_record r;
  r.event_id = event_id;
  r.source = "urn:shop";
  r.type = "order.placed";
  r.subject = "o-1";
  r.reason = reason;
  r.payload = payload;
  r.created_ms = at_ms;
  return r;
}

// What `f` threw, or "" when it did not throw.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace saga::test
