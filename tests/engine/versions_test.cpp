// Definition versions side by side (issue 18): order_lifecycle v1 (built in) and v2
// (examples/order_v2, compiled into this test) on one engine over a real SQLite file. Running
// sagas stay on the version they started on, new ones start on the newest, and
// saga.operator.migrate moves a saga across with its data and timers, or refuses it.

#include <doctest/doctest.h>

#include <saga/plugin.hpp>

#include <SQLiteCpp/SQLiteCpp.h>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/reader.hpp"
#include "saga/sqlite/store.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

extern "C" const saga_plugin_v1* saga_plugin_entry_v1();  // examples/order_v2/order_lifecycle_v2.cpp

namespace {

using saga::ack_outcome;
using saga::ack_status;
using json = nlohmann::json;

std::shared_ptr<const saga::definition> order_v2() {
  std::vector<std::shared_ptr<const saga::definition>> out;
  saga_plugin_entry_v1()->definitions(out);
  REQUIRE(out.size() == 1);
  return out.front();
}

// order.placed (amount 10), or an event of `type` with an id of its own.
saga::event ev(const std::string& type, const std::string& order) {
  return type == "order.placed" ? saga::test::placed(order) : saga::test::numbered_event("e", type, order);
}

saga::event migrate(const std::string& id, const std::string& order, json version = 2) {
  saga::event e = ev("saga.operator.migrate", order);
  e.id = id;
  e.source = "urn:saga:operator";
  e.data = {{"saga_type", "order_lifecycle"}, {"version", std::move(version)}, {"reason", "test"}};
  return e;
}

// The events that take a new order to `state` on version 1.
std::vector<std::string> path_to(const std::string& state) {
  const std::map<std::string, std::vector<std::string>> paths = {
      {"placed", {"order.placed"}},
      {"paid", {"order.placed", "payment.succeeded"}},
      {"awaiting_shipment", {"order.placed", "payment.succeeded", "inventory.reserved"}},
      {"shipped", {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched"}},
      {"delivering",
       {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched",
        "delivery.started"}},
      {"refunding", {"order.placed", "payment.succeeded", "inventory.unavailable"}},
      {"cancelled", {"order.placed", "payment.failed"}},
      {"needs_attention",
       {"order.placed", "payment.succeeded", "inventory.unavailable", "payment.refund.failed",
        "payment.refund.failed", "payment.refund.failed"}},
  };
  return paths.at(state);
}

struct fixture {
  saga::test::temp_dir dir;
  saga::manual_clock clock{1'700'000'000'000};
  std::unique_ptr<saga::sqlite::store> store;
  std::unique_ptr<saga::engine> engine;

  fixture() { open({saga::definitions::order_lifecycle()}); }

  void open(const std::vector<std::shared_ptr<const saga::definition>>& defs) {
    engine.reset();
    store.reset();
    saga::sqlite::options o;
    o.path = dir.file("saga.db");
    store = std::make_unique<saga::sqlite::store>(o);
    engine = std::make_unique<saga::engine>(*store, clock);
    for (const auto& d : defs) engine->add(d);
  }
  saga::ack send(const std::string& type, const std::string& order) {
    return engine->handle(ev(type, order));
  }
  void drive(const std::string& order, const std::vector<std::string>& types) {
    for (const auto& t : types) REQUIRE(send(t, order).outcome == ack_outcome::transitioned);
  }
  saga::instance_record saga_of(const std::string& order) {
    auto i = store->load_instance("order_lifecycle", order);
    REQUIRE(i);
    return *i;
  }
  std::vector<saga::history_record> history(const std::string& order) {
    saga::sqlite::reader r(store->database());
    return r.history("order_lifecycle", order);
  }
};

const std::vector<std::string> v1_states = {"placed",    "paid",           "awaiting_shipment",
                                            "shipped",   "delivering",     "refunding",
                                            "cancelled", "needs_attention"};

}  // namespace

TEST_SUITE("definition versions") {
  TEST_CASE("v1 sagas in every state run to completion on v1 while new sagas start on v2") {
    fixture f;
    for (const auto& s : v1_states) f.drive("v1-" + s, path_to(s));
    f.open({saga::definitions::order_lifecycle(), order_v2()});
    CHECK(f.engine->unserved_versions().empty());
    CHECK(f.engine->find("order_lifecycle")->graph().version == 2);
    CHECK(f.engine->find("order_lifecycle", 1)->graph().version == 1);

    f.drive("new", {"order.placed", "payment.succeeded", "inventory.reserved"});
    CHECK(f.saga_of("new").definition_version == 2);
    CHECK(f.saga_of("new").state == "packing");  // v2's name for awaiting_shipment
    CHECK(json::parse(f.saga_of("new").data).at("amount_minor") == 10);

    // Each v1 saga finishes on v1, through states v2 does not have (delivering).
    const std::map<std::string, std::vector<std::string>> rest = {
        {"placed",
         {"payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started",
          "delivery.confirmed"}},
        {"paid", {"inventory.reserved", "shipment.dispatched", "delivery.started", "delivery.confirmed"}},
        {"awaiting_shipment", {"shipment.dispatched", "delivery.started", "delivery.confirmed"}},
        {"shipped", {"delivery.started", "delivery.confirmed"}},
        {"delivering", {"delivery.confirmed"}},
        {"refunding", {"payment.refunded"}},
        {"cancelled", {}},
        {"needs_attention", {}}};  // an operator resolves it (below)
    for (const auto& s : v1_states) {
      const std::string order = "v1-" + s;
      CHECK(f.saga_of(order).state == s);
      f.drive(order, rest.at(s));
      if (s == "needs_attention") {
        auto resolve = ev("saga.operator.resolve", order);
        resolve.source = "urn:saga:operator";
        resolve.data = {{"to", "done"}, {"reason", "refunded by hand"}};
        CHECK(f.engine->handle(resolve).saga_state == "done");
      }
      const auto i = f.saga_of(order);
      CHECK(i.definition_version == 1);
      CHECK(i.finished);
      CHECK(i.state == (s == "refunding" || s == "cancelled" ? "cancelled" : "done"));
      for (const auto& h : f.history(order)) CHECK(h.definition_version == 1);
    }
    for (const auto& h : f.history("new")) CHECK(h.definition_version == 2);
  }

  TEST_CASE("an event type only another version takes is ignored by a saga on its own version") {
    fixture f;
    f.open({saga::definitions::order_lifecycle(), order_v2()});
    f.drive("o", {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched"});
    const auto a = f.send("delivery.started", "o");  // v1 takes it, v2 does not
    CHECK(a.status == ack_status::accepted);
    CHECK(a.outcome == ack_outcome::ignored);
    CHECK(f.saga_of("o").state == "shipped");
  }

  TEST_CASE("without the version a saga runs on its events are rejected and unserved_versions counts it") {
    fixture f;
    f.drive("a", path_to("paid"));
    f.drive("b", path_to("shipped"));
    f.drive("c", path_to("cancelled"));  // finished: not counted
    f.open({order_v2()});
    const auto unserved = f.engine->unserved_versions();
    REQUIRE(unserved.size() == 1);
    CHECK(unserved[0].definition == "order_lifecycle");
    CHECK(unserved[0].version == 1);
    CHECK(unserved[0].sagas == 2);
    const auto a = f.send("inventory.reserved", "a");
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason.find("runs on version 1") != std::string::npos);
    CHECK(f.saga_of("a").state == "paid");
    // Migrating it needs only the new version.
    const auto m = f.engine->handle(migrate("m1", "a"));
    CHECK(m.status == ack_status::accepted);
    CHECK(f.saga_of("a").definition_version == 2);
    CHECK(f.send("inventory.reserved", "a").outcome == ack_outcome::transitioned);
    CHECK(f.saga_of("a").state == "packing");
  }

  TEST_CASE("a migration moves the saga's state and data and timers once with a history row") {
    fixture f;
    f.drive("o", path_to("awaiting_shipment"));
    const auto timers_before = f.store->timers_of("order_lifecycle", "o");
    REQUIRE(timers_before.size() == 1);
    CHECK(timers_before[0].name == "shipment_deadline");
    f.open({saga::definitions::order_lifecycle(), order_v2()});

    const auto a = f.engine->handle(migrate("m1", "o"));
    CHECK(a.status == ack_status::accepted);
    CHECK(a.outcome == ack_outcome::transitioned);
    CHECK(a.saga_state == "packing");
    const auto i = f.saga_of("o");
    CHECK(i.definition_version == 2);
    CHECK(i.state == "packing");
    CHECK(i.fingerprint == order_v2()->graph().fingerprint);
    const auto data = json::parse(i.data);
    CHECK(data.at("amount_minor") == 10);
    CHECK_FALSE(data.contains("amount"));
    const auto timers_after = f.store->timers_of("order_lifecycle", "o");
    REQUIRE(timers_after.size() == 1);
    CHECK(timers_after[0].name == "shipment_deadline");
    CHECK(timers_after[0].due_ms == timers_before[0].due_ms);
    const auto h = f.history("o");
    CHECK(h.back().outcome == "migrated");
    CHECK(h.back().from_state == "awaiting_shipment");
    CHECK(h.back().to_state == "packing");
    CHECK(h.back().definition_version == 2);

    // Again (another event id): already there, nothing moves.
    const auto again = f.engine->handle(migrate("m2", "o"));
    CHECK(again.status == ack_status::accepted);
    CHECK(again.outcome == ack_outcome::ignored);
    // The same event again: a duplicate.
    CHECK(f.engine->handle(migrate("m1", "o")).status == ack_status::duplicate);
    int migrated = 0;
    for (const auto& r : f.history("o")) migrated += r.outcome == "migrated";
    CHECK(migrated == 1);

    // The timer fires into version 2, and the saga finishes there, with v1's events it still takes.
    f.clock.advance(std::chrono::hours(49));
    const auto fired = f.engine->fire_due_timers(f.clock.now_ms());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].ack.outcome == ack_outcome::transitioned);
    CHECK(fired[0].ack.saga_state == "packing");
    f.drive("o", {"shipment.dispatched", "delivery.confirmed"});
    CHECK(f.saga_of("o").state == "done");
  }

  TEST_CASE("a state without a mapping or an unknown or older version or bad fields are refused naming why") {
    fixture f;
    f.drive("d", path_to("delivering"));
    f.drive("p", path_to("placed"));
    f.drive("x", path_to("cancelled"));
    f.open({saga::definitions::order_lifecycle(), order_v2()});
    auto a = f.engine->handle(migrate("m1", "d"));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason == "state 'delivering' of version 1 has no mapping in version 2's migration");
    CHECK(f.saga_of("d").definition_version == 1);
    CHECK(f.saga_of("d").state == "delivering");

    a = f.engine->handle(migrate("m2", "p", 3));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason == "data 'version': version 3 of 'order_lifecycle' is not registered");
    a = f.engine->handle(migrate("m3", "p", "2"));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason.starts_with("data 'version': must be an integer"));
    a = f.engine->handle(migrate("m4", "x"));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason.find("has finished") != std::string::npos);

    CHECK(f.engine->handle(migrate("m5", "p")).status == ack_status::accepted);
    a = f.engine->handle(migrate("m6", "p", 1));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason == "saga is on version 2: migrations only go forward");
  }

  TEST_CASE(
      "registering a version twice is refused and a migration to a state the version lacks is a graph "
      "error") {
    fixture f;
    CHECK_THROWS_WITH_AS(f.engine->add(saga::definitions::order_lifecycle()),
                         "definition 'order_lifecycle' version 1 is already registered",
                         std::invalid_argument);
    saga::graph g = order_v2()->graph();
    g.migrations[0].states["paid"] = "nowhere";
    g.migrations.push_back({7, {}, {}});
    const auto problems = saga::check_graph(g);
    CHECK(std::find(problems.begin(), problems.end(),
                    "migration from version 1: state 'paid' maps to 'nowhere', not in the table") !=
          problems.end());
    CHECK(std::find(problems.begin(), problems.end(),
                    "migration from version 7: only an older version (1..1) can migrate to version 2") !=
          problems.end());
  }

  TEST_CASE("the graph keeps its version and migrations through JSON and version 1 keeps its fingerprint") {
    const auto g = order_v2()->graph();
    const auto back = saga::graph_from_json(saga::to_json(g));
    CHECK(back.version == 2);
    REQUIRE(back.migrations.size() == 1);
    CHECK(back.migrations[0] == g.migrations[0]);
    CHECK(back.migrations[0].data == "amount_to_minor");
    CHECK(back.migrated_state(1, "awaiting_shipment") == "packing");
    CHECK(back.migrated_state(1, "paid") == "paid");
    CHECK(back.migrated_state(1, "delivering").empty());
    CHECK(back.migrated_state(5, "paid").empty());
    CHECK(saga::to_dot(g).find("label=\"order_lifecycle v2\"") != std::string::npos);
    CHECK(saga::to_mermaid(g).starts_with("---\ntitle: order_lifecycle v2\n---\nstateDiagram-v2\n"));
    auto v1 = saga::definitions::order_lifecycle()->graph();
    CHECK(saga::to_dot(v1).find("labelloc") == std::string::npos);  // version 1 draws as it always did
    const auto print = v1.fingerprint;
    CHECK(saga::compute_fingerprint(v1) == print);
    v1.version = 3;
    CHECK(saga::compute_fingerprint(v1) != print);
  }
}
