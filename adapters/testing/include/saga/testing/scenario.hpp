#pragma once
// saga::testing::scenario — given / when / then for users' own workflow tests.
//
// A scenario runs one definition in a real engine over a real SQLite store in
// a temporary file (removed afterwards) with a manual clock, and reads back
// what happened the way the engine wrote it:
//
//   saga::testing::scenario s(saga::definitions::order_lifecycle(), "o-1");
//   s.given({s.make("order.placed", order)})
//    .when(s.make("payment.succeeded"))
//    .expect_state("paid")
//    .expect_emitted({"inventory.reservation.requested"});
//   s.advance(std::chrono::minutes(16));          // fires due timers
//
// Like a testing policy in Boost.SML, `start_in()` puts a saga straight into
// a state to test one transition. expect_* throw std::runtime_error with a
// message that starts with the caller's file and line (call_site, below)
// and says what differed, so they work under any test framework and a failure
// points at the check, not at the test case. Acks, statuses and outcomes
// print by name (operator<< in saga/engine.hpp), also in doctest's messages.
// Not thread-safe.

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/engine.hpp"

namespace saga::sqlite {
class store;
}

namespace saga::testing {

// Where an expect_* was called, taken at the call site as std::source_location::current() does.
// Not std::source_location itself: clang before 15 (Debian 12's clang 14, make test-asan) has no
// __builtin_source_location, so libstdc++'s <source_location> declares nothing there; the file
// and line builtins below are in GCC and clang alike.
struct call_site {
  const char* file = "";
  unsigned line = 0;
  static constexpr call_site here(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE()) {
    return {file, line};
  }
};

class scenario {
 public:
  explicit scenario(std::shared_ptr<const definition> d, std::string key = "saga-1");
  scenario(std::vector<std::shared_ptr<const definition>> ds, std::string key);
  ~scenario();
  scenario(const scenario&) = delete;
  scenario& operator=(const scenario&) = delete;

  // An event for this scenario's saga: a fresh id, source "urn:test", the key as subject.
  event make(std::string type, nlohmann::json data = nlohmann::json::object()) const;
  // An operator action for this saga ("abort", "resolve"), as sagactl sends it:
  // source "urn:saga:operator", type "saga.operator.<action>".
  event make_operator(std::string_view action, nlohmann::json data) const;

  // Handles the events; what they emitted does not count as "emitted" below.
  scenario& given(std::initializer_list<event> events);
  scenario& given(const std::vector<event>& events);
  // Writes the saga directly in `state` with `data` (the testing policy).
  scenario& start_in(std::string_view state, nlohmann::json data);

  // Handles one event; its follow-on events become emitted().
  scenario& when(const event& e);
  // Moves the manual clock and fires the timers now due.
  scenario& advance(std::chrono::milliseconds d);

  const ack& last_ack() const { return last_ack_; }
  std::string state() const;  // "" when the saga does not exist
  nlohmann::json data() const;
  std::vector<event> emitted() const { return emitted_; }  // since the last when()/advance()
  std::vector<std::string> emitted_types() const;
  std::vector<std::string> armed_timers() const;  // names, sorted
  std::int64_t parked_count() const;
  std::vector<event> outbox() const;  // every follow-on event so far, in sequence order

  scenario& expect_state(std::string_view s, call_site where = call_site::here());
  scenario& expect_emitted(const std::vector<std::string>& types, call_site where = call_site::here());
  scenario& expect_timers(const std::vector<std::string>& names, call_site where = call_site::here());
  scenario& expect_outcome(ack_outcome o, call_site where = call_site::here());

  saga::engine& engine() { return *engine_; }
  saga::manual_clock& clock() { return clock_; }
  saga::sqlite::store& store() { return *store_; }
  const std::string& key() const { return key_; }
  const std::string& definition_name() const { return definition_; }

 private:
  [[noreturn]] void fail(const call_site& where, const std::string& what) const;

  std::filesystem::path dir_;
  std::string key_;
  std::string definition_;
  saga::manual_clock clock_;
  std::unique_ptr<saga::sqlite::store> store_;
  std::unique_ptr<saga::engine> engine_;
  std::vector<event> emitted_;
  ack last_ack_;
  mutable std::int64_t next_id_ = 0;
};

}  // namespace saga::testing
