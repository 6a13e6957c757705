// The three workflows side by side in one engine over one SQLite file: each
// event lands in its own definition, and every graph passes the registration
// checks and renders with Graphviz.

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/definitions/payment_notice.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/testing/doctest.hpp"  // in every file of definition_tests (doctest.hpp says why)
#include "support/temp_dir.hpp"

namespace {

std::vector<std::shared_ptr<const saga::definition>> all_definitions() {
  return {saga::definitions::order_lifecycle(), saga::definitions::payment_notice(),
          saga::definitions::account_lockout()};
}

saga::event ev(const std::string& id, const std::string& type, const std::string& subject,
               nlohmann::json data) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = subject;
  e.time = "2026-01-01T00:00:00Z";
  e.data = std::move(data);
  return e;
}

}  // namespace

TEST_SUITE("all definitions") {
  TEST_CASE("one engine runs the three definitions side by side and routes each event to its own") {
    saga::test::temp_dir dir;
    saga::sqlite::options o;
    o.path = dir.file("saga.db");
    saga::sqlite::store store(o);
    saga::manual_clock clock;  // 2026-01-01T00:00:00Z
    saga::engine engine(store, clock);
    for (auto& d : all_definitions()) CHECK(engine.add(d).name == d->name());

    const std::vector<saga::event> events = {ev("e-1", "order.placed", "o-1",
                                                {{"order_id", "o-1"},
                                                 {"amount", 4200},
                                                 {"currency", "EUR"},
                                                 {"customer_id", "c-7"},
                                                 {"items", nlohmann::json::array()}}),
                                             ev("e-2", "payment_notice.created", "n-1",
                                                {{"notice_id", "n-1"},
                                                 {"policy_id", "p-9"},
                                                 {"amount", 12500},
                                                 {"currency", "EUR"},
                                                 {"due", "2026-01-01T01:00:00Z"}}),
                                             ev("e-3", "auth.login.failed", "a-1", nlohmann::json::object())};
    const auto acks = engine.handle_batch(std::span<const saga::event>(events));
    REQUIRE(acks.size() == 3);
    const std::vector<std::tuple<std::string, std::string, std::string>> expected = {
        {"order_lifecycle", "o-1", "placed"},
        {"payment_notice", "n-1", "awaiting_payment"},
        {"account_lockout", "a-1", "open"}};
    for (std::size_t i = 0; i < acks.size(); ++i) {
      // Not a structured binding: clang 14 cannot capture one in CAPTURE.
      const std::string& type = std::get<0>(expected[i]);
      const std::string& key = std::get<1>(expected[i]);
      const std::string& state = std::get<2>(expected[i]);
      CAPTURE(type);
      CHECK(acks[i].status == saga::ack_status::accepted);
      CHECK(acks[i].outcome == saga::ack_outcome::transitioned);
      CHECK(acks[i].saga_type == type);
      CHECK(acks[i].saga_id == key);
      CHECK(acks[i].saga_state == state);
      REQUIRE(store.load_instance(type, key));
      CHECK(store.load_instance(type, key)->state == state);
      for (const auto& [other, other_key, unused] : expected)
        if (other != type) CHECK_FALSE(store.load_instance(other, key));
    }

    // Timers fire into their own definition too: the notice falls due after an
    // hour, when the order's 15-minute payment timeout has cancelled the order.
    clock.advance(std::chrono::hours(1));
    const auto fired = engine.fire_due_timers(clock.now_ms());
    CHECK(fired.size() == 2);
    CHECK(store.load_instance("order_lifecycle", "o-1")->state == "cancelled");
    CHECK(store.load_instance("payment_notice", "n-1")->state == "overdue");
    CHECK(store.load_instance("account_lockout", "a-1")->state == "open");
  }

  TEST_CASE("every definition passes the registration checks and its DOT renders with dot -Tsvg") {
    saga::test::temp_dir dir;
    for (const auto& d : all_definitions()) {
      const auto& g = d->graph();
      CAPTURE(g.name);
      CHECK(saga::check_graph(g).empty());
      const std::string dot = dir.file(g.name + ".dot"), svg = dir.file(g.name + ".svg");
      std::ofstream(dot) << saga::to_dot(g);
      const std::string command = "dot -Tsvg '" + dot + "' -o '" + svg + "'";
      REQUIRE(std::system(command.c_str()) == 0);
      std::stringstream out;
      out << std::ifstream(svg).rdbuf();
      CHECK(out.str().find("<svg") != std::string::npos);
      for (const auto& s : g.states) CHECK(out.str().find(s) != std::string::npos);
    }
  }
}
