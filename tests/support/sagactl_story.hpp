#pragma once
// A small story of sagas told through saga::engine over any store, and what legitimately differs
// when sagactl --json reads it back from two databases. Shared by the tests that compare sagactl's
// documents from a SQLite file and a PostgreSQL schema: filled by the same events
// (tests/postgres/sagactl_test.cpp), or one copied from the other (migrate_store_test.cpp).

#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/store.hpp"
#include "support/number_outbox.hpp"
#include "support/order_events.hpp"

namespace saga::test {

inline std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline saga::event story_event(const std::string& id, const std::string& type, const std::string& subject,
                               nlohmann::json data = nlohmann::json::object()) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = subject;
  e.data = std::move(data);
  return e;
}

// One step of the story: the clock's time, then the event.
struct story_step {
  std::int64_t at_ms;
  saga::event event;
};

// From t0 on for 40 minutes (start three hours ago, and nothing falls in the last hour: stats'
// per-minute counts of the last hour are the same whenever each sagactl runs). o-1 placed, also
// an account_lockout saga "o-1"; o-2 awaiting_shipment with a parked delivery.started; o-3
// cancelled; o-4 placed later; a dead letter (a type nobody consumes, sent twice).
inline std::vector<story_step> story(std::int64_t t0) {
  constexpr std::int64_t minute = 60'000;
  return {
      {t0, story_event("e-1", "order.placed", "o-1", order_data("o-1"))},
      {t0, story_event("e-2", "order.placed", "o-2", order_data("o-2"))},
      {t0 + minute, story_event("e-3", "payment.succeeded", "o-2")},
      {t0 + minute, story_event("e-4", "inventory.reserved", "o-2")},
      {t0 + 2 * minute, story_event("e-5", "delivery.started", "o-2")},
      {t0 + 3 * minute, story_event("e-6", "order.placed", "o-3", order_data("o-3"))},
      {t0 + 3 * minute, story_event("e-7", "payment.failed", "o-3")},
      {t0 + 4 * minute, story_event("e-8", "auth.login.failed", "o-1")},
      {t0 + 5 * minute, story_event("e-9", "no.such.type", "o-9")},
      {t0 + 6 * minute, story_event("e-9", "no.such.type", "o-9")},
      {t0 + 40 * minute, story_event("e-10", "order.placed", "o-4", order_data("o-4"))},
  };
}

// The story through saga::engine over `st`, after a saga of a definition that is not registered
// ("legacy" l-1, with a timer due, written through the store); then outbox rows 1..3 published.
inline void fill_story(saga::store& st, std::int64_t t0) {
  saga::manual_clock clock(t0);
  saga::engine e(st, clock);
  e.add(saga::definitions::order_lifecycle());
  e.add(saga::definitions::account_lockout());
  std::int64_t emitted = 0;
  e.on_commit([&](std::span<const saga::published_event> rows) { emitted += std::ssize(rows); });
  saga::instance_record legacy;
  legacy.definition = "legacy";
  legacy.key = "l-1";
  legacy.state = "waiting";
  legacy.data = "{}";
  legacy.version = 1;
  legacy.fingerprint = "0123456789abcdef";
  legacy.correlation_id = "legacy-start";
  legacy.created_ms = legacy.updated_ms = legacy.state_since_ms = t0 - 60'000;
  st.begin();
  st.save_instance(legacy);
  st.arm_timer("legacy", "l-1", "reminder", t0 - 1000);
  st.commit();
  for (const auto& s : story(t0)) {
    clock.set(s.at_ms);
    const auto a = e.handle(s.event);
    if (s.event.type == "no.such.type")
      CHECK_FALSE(a.ok());
    else
      REQUIRE_MESSAGE(a.ok(), a.reason);
  }
  saga::test::number_outbox(st, emitted);  // what the relay does first (PostgreSQL numbers after the commit)
  st.mark_published(1, 3, t0 + 50 * 60'000);
}

inline bool is_uuid_v7(const std::string& s) {
  if (s.size() != 36 || s[14] != '7') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// What differs between two sagactl --json documents of the same sagas, replaced by a mark of its
// kind:
//   * ages (`age`, `in_state`, `due_in`, `oldest_unpublished_age`): now minus a stored time, now
//     being the wall clock when each sagactl runs (the stored times are the same);
//   * with `random_ids` (two databases filled by the same events, not one copied from the other):
//     follow-on events' ids, random UUIDv7 the engine draws for each event it writes (payloads
//     and ids of the incoming events stay), and trace ids (`trace_id`, `traceparent`), random for
//     an event that comes without a trace.
inline void normalise(nlohmann::json& j, bool random_ids = true) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if ((k == "age" || k == "in_state" || k == "due_in" || k == "oldest_unpublished_age") && v.is_number())
        v = "<now minus a stored time>";
      else if (random_ids && (k == "trace_id" || k == "traceparent") && v.is_string())
        v = "<random trace>";
      else
        normalise(v, random_ids);
    }
  } else if (j.is_array()) {
    for (auto& v : j) normalise(v, random_ids);
  } else if (random_ids && j.is_string() && is_uuid_v7(j.get<std::string>())) {
    j = "<uuid>";
  }
}

// The reading commands whose --json documents are compared (with "--json" appended).
inline std::vector<std::vector<std::string>> story_reading_commands() {
  return {
      {"list"},
      {"list", "--type", "order_lifecycle", "--state", "placed"},
      {"list", "--stuck-for", "1h", "--limit", "3"},
      {"show", "o-2"},
      {"show", "o-1", "--type", "account_lockout"},
      {"show", "l-1"},
      {"stats"},
      {"definitions"},
      {"definitions", "order_lifecycle"},
      {"timers"},
      {"outbox"},
      {"outbox", "--pending", "--from", "2", "--limit", "3"},
      {"dead-letters"},
      {"audit", "--saga", "o-3"},
  };
}

}  // namespace saga::test
