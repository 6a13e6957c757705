// The account lockout workflow of DESIGN.md, row by row, through the scenario
// harness (a real engine over a real SQLite file with a manual clock).

#include "saga/definitions/account_lockout.hpp"

#include <chrono>

#include <doctest/doctest.h>

#include "saga/codec.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/testing/doctest.hpp"  // in every file of definition_tests (doctest.hpp says why)
#include "saga/testing/scenario.hpp"

using namespace std::chrono_literals;
using saga::ack_outcome;
using saga::ack_status;
using saga::testing::scenario;

namespace {

struct account : scenario {
  account() : scenario(saga::definitions::account_lockout(), "a-1") {}

  account& fail() {
    when(make("auth.login.failed"));
    return *this;
  }
  account& succeed() {
    when(make("auth.login.succeeded"));
    return *this;
  }
  int failures() const { return data().at("failures").get<int>(); }
};

// An account locked by three failures at minutes 0, 1 and 2.
struct locked_account : account {
  locked_account() {
    fail();
    advance(1min);
    fail();
    advance(1min);
    fail();
    expect_state("locked");
  }
};

saga::event operator_abort(const scenario& s) {
  return s.make_operator("abort", {{"reason", "customer called"}, {"operator", "tester"}});
}

}  // namespace

TEST_SUITE("account_lockout") {
  TEST_CASE("the first auth.login.failed creates the saga in open with one failure") {
    account s;
    s.fail()
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("open")
        .expect_emitted({})
        .expect_timers({});
    CHECK(s.last_ack().saga_type == "account_lockout");
    CHECK(s.last_ack().saga_id == "a-1");
    CHECK(s.failures() == 1);
    CHECK(s.data().at("account_id") == "a-1");
    CHECK(s.data().at("window_start_ms") == s.clock().now_ms());
  }

  TEST_CASE("the first auth.login.succeeded creates the saga in open with no failures") {
    account s;
    s.succeed().expect_outcome(ack_outcome::transitioned).expect_state("open").expect_emitted({});
    CHECK(s.failures() == 0);
    s.fail().expect_state("open");
    CHECK(s.failures() == 1);
  }

  TEST_CASE("open: a second failure within the window is counted") {
    account s;
    s.fail();
    s.advance(5min);
    s.fail()
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("open")
        .expect_emitted({})
        .expect_timers({});
    CHECK(s.failures() == 2);
  }

  TEST_CASE("open: the third failure at minute 14 locks the account for 30 minutes") {
    account s;
    s.fail();
    s.advance(7min);
    s.fail();
    s.advance(7min);
    s.fail().expect_state("locked").expect_emitted({"account.locked"}).expect_timers({"unlock"});
    const auto e = s.emitted().front();
    CHECK(e.data.at("account_id") == "a-1");
    CHECK(e.data.at("failures") == 3);
    CHECK(e.data.at("window_start") == "2026-01-01T00:00:00.000Z");
    CHECK(e.data.at("locked_until") == saga::format_time(s.clock().now_ms() + 30 * 60 * 1000));
    CHECK(s.store().timers_of("account_lockout", "a-1").at(0).due_ms == s.clock().now_ms() + 30 * 60 * 1000);
  }

  TEST_CASE("open: a third failure at minute 16 does not lock and starts a new window") {
    account s;
    s.fail();
    s.advance(7min);
    s.fail();
    s.advance(9min);
    s.fail().expect_state("open").expect_emitted({}).expect_timers({});
    CHECK(s.failures() == 1);
    CHECK(s.data().at("window_start_ms") == s.clock().now_ms());
    // The new window opened at minute 16: two more failures in it lock the account.
    s.advance(1min);
    s.fail().expect_state("open");
    s.advance(13min);
    s.fail().expect_state("locked").expect_emitted({"account.locked"});
  }

  TEST_CASE("open: the window closes exactly 15 minutes after the first failure") {
    account s;
    s.fail();
    s.advance(1min);
    s.fail();
    s.advance(14min);
    s.fail().expect_state("open");
    CHECK(s.failures() == 1);
  }

  TEST_CASE("open: auth.login.succeeded resets the count") {
    account s;
    s.fail();
    s.fail();
    s.succeed().expect_outcome(ack_outcome::transitioned).expect_state("open").expect_emitted({});
    CHECK(s.failures() == 0);
    s.fail().expect_state("open");
    s.fail().expect_state("open");
    CHECK(s.failures() == 2);
    s.fail().expect_state("locked");
  }

  TEST_CASE("the window is measured on the engine clock and not on the event's time attribute") {
    account s;
    for (int i = 0; i < 3; ++i) {
      auto e = s.make("auth.login.failed");
      e.time = saga::format_time(s.clock().now_ms() + i * 3600 * 1000);  // an hour apart, says the sender
      s.when(e);
    }
    s.expect_state("locked");
  }

  TEST_CASE("locked: the unlock timer fires after 30 minutes and reopens the account with no failures") {
    locked_account s;
    s.advance(29min + 59s).expect_state("locked").expect_emitted({});
    s.advance(1s)
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("open")
        .expect_emitted({"account.unlocked"})
        .expect_timers({});
    CHECK(s.emitted().front().data == nlohmann::json{{"account_id", "a-1"}});
    CHECK(s.failures() == 0);
    s.fail().expect_state("open");
    CHECK(s.failures() == 1);
  }

  TEST_CASE("locked: failures are ignored and neither extend the lock nor count after it") {
    locked_account s;
    for (int i = 0; i < 5; ++i) {
      s.advance(1min);
      s.fail().expect_state("locked").expect_emitted({}).expect_timers({"unlock"});
      CHECK(s.last_ack().status == ack_status::accepted);
    }
    CHECK(s.parked_count() == 0);
    CHECK(s.failures() == 3);
    s.advance(25min).expect_state("open").expect_emitted({"account.unlocked"});  // 30 minutes after the lock
    CHECK(s.failures() == 0);
  }

  TEST_CASE("locked: auth.login.succeeded does not lift the lock") {
    locked_account s;
    s.succeed().expect_state("locked").expect_emitted({}).expect_timers({"unlock"});
    CHECK(s.parked_count() == 0);
    s.advance(30min).expect_state("open").expect_emitted({"account.unlocked"});
  }

  TEST_CASE("an account locks again after an unlock") {
    locked_account s;
    s.advance(30min).expect_state("open");
    s.fail();
    s.fail();
    s.fail().expect_state("locked").expect_emitted({"account.locked"}).expect_timers({"unlock"});
    CHECK(s.outbox().size() == 3);
  }

  TEST_CASE("an operator abort unlocks a locked account early") {
    locked_account s;
    s.when(operator_abort(s))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("open")
        .expect_emitted({"account.unlocked"})
        .expect_timers({});
    CHECK(s.failures() == 0);
    s.advance(1h).expect_state("open").expect_emitted({});
  }

  TEST_CASE("an operator abort of an open account resets the count and emits nothing") {
    account s;
    s.fail();
    s.fail();
    s.when(operator_abort(s)).expect_state("open").expect_emitted({});
    CHECK(s.failures() == 0);
  }

  TEST_CASE("the graph has no terminal state and passes the registration checks") {
    auto d = saga::definitions::account_lockout();
    const auto& g = d->graph();
    CHECK(g.name == "account_lockout");
    CHECK(g.initial == "new");
    CHECK(g.states == std::vector<std::string>{"new", "open", "locked"});
    CHECK(g.terminal.empty());
    CHECK(g.timers == std::vector<std::string>{"unlock"});
    CHECK(g.starts == std::vector<std::string>{"auth.login.failed", "auth.login.succeeded"});
    CHECK(g.abort_state == "open");
    bool guarded_lock = false;
    for (const auto& r : g.rows)
      if (r.source == "open" && r.target == "locked") guarded_lock = r.guard == "third_failure_in_window";
    CHECK(guarded_lock);
    CHECK(saga::check_graph(g).empty());
  }
}
