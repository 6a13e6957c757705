// The order workflow of DESIGN.md, row by row, through the scenario harness
// (a real engine over a real SQLite file with a manual clock).

#include "saga/definitions/order_lifecycle.hpp"

#include <algorithm>
#include <chrono>
#include <set>

#include <doctest/doctest.h>

#include "saga/codec.hpp"
#include "saga/sqlite/reader.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/testing/doctest.hpp"  // in every file of definition_tests (doctest.hpp says why)
#include "saga/testing/scenario.hpp"
#include "saga/trace.hpp"

using namespace std::chrono_literals;
using saga::ack_outcome;
using saga::ack_status;
using saga::testing::scenario;

namespace {

nlohmann::json order_data(const std::string& id = "o-1") {
  return {{"order_id", id},
          {"amount", 4200},
          {"currency", "EUR"},
          {"customer_id", "c-7"},
          {"items", {{{"sku", "SKU-1"}, {"qty", 2}}}}};
}

// A scenario for order o-1, already placed.
struct placed_order : scenario {
  placed_order() : scenario(saga::definitions::order_lifecycle(), "o-1") {
    given({make("order.placed", order_data())});
  }
};

// Walks the saga to `state` along the happy path.
void walk_to(scenario& s, const std::string& state) {
  const std::vector<std::pair<std::string, std::string>> path = {{"placed", "order.placed"},
                                                                 {"paid", "payment.succeeded"},
                                                                 {"awaiting_shipment", "inventory.reserved"},
                                                                 {"shipped", "shipment.dispatched"},
                                                                 {"delivering", "delivery.started"},
                                                                 {"done", "delivery.confirmed"}};
  for (const auto& [st, type] : path) {
    s.given({s.make(type, type == "order.placed" ? order_data() : nlohmann::json::object())});
    if (st == state) return;
  }
}

}  // namespace

TEST_SUITE("order_lifecycle") {
  TEST_CASE("the happy path ends in done with exactly the table's follow-on events in order") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "done");
    CHECK(s.state() == "done");
    const auto outbox = s.outbox();
    std::vector<std::string> types;
    for (const auto& e : outbox) types.push_back(e.type);
    CHECK(types == std::vector<std::string>{"payment.requested", "inventory.reservation.requested",
                                            "shipment.requested", "order.shipped", "order.out_for_delivery",
                                            "order.completed"});
    for (const auto& e : outbox) {
      CAPTURE(e.type);
      CHECK(e.data.at("order_id") == "o-1");
      CHECK(e.data.at("amount") == 4200);
      CHECK(e.data.at("currency") == "EUR");
      CHECK(e.data.at("customer_id") == "c-7");
      CHECK(e.data.at("items") == order_data().at("items"));
      CHECK(e.subject == "o-1");
      CHECK(e.source == "urn:saga:order_lifecycle");
      CHECK(e.id.size() == 36);
      CHECK(e.id[14] == '7');              // UUIDv7
      CHECK(e.correlationid == "test-1");  // the order.placed that started the saga
      CHECK_FALSE(e.causationid.empty());
    }
    CHECK(outbox[1].causationid == "test-2");  // payment.succeeded caused the reservation request
    CHECK(s.armed_timers().empty());
  }

  TEST_CASE("order.placed creates the saga - requests payment and arms the payment timeout") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.when(s.make("order.placed", order_data()))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("placed")
        .expect_emitted({"payment.requested"})
        .expect_timers({"payment_timeout"});
    CHECK(s.last_ack().saga_type == "order_lifecycle");
    CHECK(s.last_ack().saga_id == "o-1");
    CHECK(s.last_ack().saga_state == "placed");
  }

  TEST_CASE("order.placed without an amount is rejected with the reason") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.when(s.make("order.placed", {{"currency", "EUR"}}));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("amount") != std::string::npos);
    CHECK(s.state().empty());
  }

  TEST_CASE("placed: payment.succeeded pays the order and disarms the payment timeout") {
    placed_order s;
    s.when(s.make("payment.succeeded"))
        .expect_state("paid")
        .expect_emitted({"inventory.reservation.requested"})
        .expect_timers({});
  }

  TEST_CASE("placed: payment.failed cancels the order") {
    placed_order s;
    s.when(s.make("payment.failed"))
        .expect_state("cancelled")
        .expect_emitted({"order.cancelled"})
        .expect_timers({});
  }

  TEST_CASE("placed: order.cancel.requested cancels the order") {
    placed_order s;
    s.when(s.make("order.cancel.requested"))
        .expect_state("cancelled")
        .expect_emitted({"order.cancelled"})
        .expect_timers({});
  }

  TEST_CASE("placed: the payment timeout fires after 15 minutes and cancels the order") {
    placed_order s;
    s.advance(14min).expect_state("placed").expect_emitted({});
    s.advance(1min).expect_state("cancelled").expect_emitted({"order.cancelled"});
    CHECK(s.last_ack().outcome == ack_outcome::transitioned);
  }

  TEST_CASE("placed: payment at 14:59 means the payment timeout never fires") {
    placed_order s;
    s.advance(14min + 59s);
    s.when(s.make("payment.succeeded")).expect_state("paid");
    s.advance(10min).expect_state("paid").expect_emitted({});
  }

  TEST_CASE("a payment timeout that fires after the saga moved on is recorded as ignored") {
    placed_order s;
    // Arm it again by hand, as if an old timer row had survived the move.
    s.when(s.make("payment.succeeded")).expect_state("paid");
    s.store().begin();
    s.store().arm_timer("order_lifecycle", "o-1", "payment_timeout", s.clock().now_ms() + 1000);
    s.store().commit();
    s.advance(2s).expect_state("paid").expect_emitted({}).expect_outcome(ack_outcome::ignored);
  }

  TEST_CASE("paid: inventory.reserved requests the shipment and arms the shipment deadline") {
    placed_order s;
    walk_to(s, "paid");
    s.when(s.make("inventory.reserved"))
        .expect_state("awaiting_shipment")
        .expect_emitted({"shipment.requested"})
        .expect_timers({"shipment_deadline"});
  }

  TEST_CASE("paid: inventory.unavailable starts a refund with attempt 1") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.when(s.make("inventory.unavailable"))
        .expect_state("refunding")
        .expect_emitted({"payment.refund.requested"});
    const auto e = s.emitted().front();
    CHECK(e.data.at("attempt") == 1);
    CHECK(e.data.at("refund_id") == "o-1:refund");
    CHECK(e.data.at("amount") == 4200);
  }

  TEST_CASE("paid: order.cancel.requested starts a refund") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.when(s.make("order.cancel.requested"))
        .expect_state("refunding")
        .expect_emitted({"payment.refund.requested"});
  }

  TEST_CASE("awaiting_shipment: order.cancel.requested refunds and releases the stock") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "awaiting_shipment");
    s.when(s.make("order.cancel.requested"))
        .expect_state("refunding")
        .expect_emitted({"payment.refund.requested", "inventory.release.requested"})
        .expect_timers({});
  }

  TEST_CASE("awaiting_shipment: the shipment deadline reports the order overdue after 48 hours") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "awaiting_shipment");
    s.advance(47h).expect_emitted({});
    s.advance(1h).expect_state("awaiting_shipment").expect_emitted({"order.shipment.overdue"});
    s.when(s.make("shipment.dispatched")).expect_state("shipped").expect_emitted({"order.shipped"});
  }

  TEST_CASE("awaiting_shipment: shipment.dispatched ships the order") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "awaiting_shipment");
    s.when(s.make("shipment.dispatched"))
        .expect_state("shipped")
        .expect_emitted({"order.shipped"})
        .expect_timers({});
  }

  TEST_CASE("shipped: delivery.started puts the order out for delivery") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "shipped");
    s.when(s.make("delivery.started")).expect_state("delivering").expect_emitted({"order.out_for_delivery"});
  }

  TEST_CASE("delivering: delivery.confirmed completes the order") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "delivering");
    s.when(s.make("delivery.confirmed")).expect_state("done").expect_emitted({"order.completed"});
  }

  TEST_CASE("delivering: delivery.failed starts a refund") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "delivering");
    s.when(s.make("delivery.failed")).expect_state("refunding").expect_emitted({"payment.refund.requested"});
  }

  TEST_CASE("refunding: a late inventory.reserved is released again") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.given({s.make("order.cancel.requested")});
    s.when(s.make("inventory.reserved"))
        .expect_state("refunding")
        .expect_emitted({"inventory.release.requested"});
  }

  TEST_CASE("refunding: payment.refunded cancels the order") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.given({s.make("inventory.unavailable")});
    s.when(s.make("payment.refunded")).expect_state("cancelled").expect_emitted({"order.cancelled"});
  }

  TEST_CASE(
      "refunding: a failed refund is retried with the same refund_id after 5 s and 10 s then needs "
      "attention") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.given({s.make("inventory.unavailable")});
    // The retry waits on a durable timer: nothing goes out with the failure itself.
    s.when(s.make("payment.refund.failed"))
        .expect_state("refunding")
        .expect_emitted({})
        .expect_timers({"retry.refunding.payment.refund.failed"});
    s.advance(std::chrono::milliseconds(4999)).expect_emitted({});
    s.advance(std::chrono::milliseconds(1)).expect_emitted({"payment.refund.requested"});
    CHECK(s.emitted().front().data.at("attempt") == 2);
    CHECK(s.emitted().front().data.at("refund_id") == "o-1:refund");
    s.when(s.make("payment.refund.failed")).expect_state("refunding").expect_emitted({});
    s.advance(std::chrono::seconds(10)).expect_emitted({"payment.refund.requested"});
    CHECK(s.emitted().front().data.at("attempt") == 3);
    CHECK(s.emitted().front().data.at("refund_id") == "o-1:refund");
    s.when(s.make("payment.refund.failed"))
        .expect_state("needs_attention")
        .expect_emitted({"order.needs_attention"})
        .expect_timers({});
  }

  TEST_CASE("refunding: the refund arriving while a retry waits ends the wait") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "paid");
    s.given({s.make("inventory.unavailable"), s.make("payment.refund.failed")});
    s.when(s.make("payment.refunded"))
        .expect_state("cancelled")
        .expect_emitted({"order.cancelled"})
        .expect_timers({});
    s.advance(std::chrono::minutes(1)).expect_emitted({});
  }

  TEST_CASE("shipped and delivering and done answer order.cancel.rejected and stay where they are") {
    for (const std::string state : {"shipped", "delivering", "done"}) {
      CAPTURE(state);
      scenario s(saga::definitions::order_lifecycle(), "o-1");
      walk_to(s, state);
      s.when(s.make("order.cancel.requested")).expect_state(state).expect_emitted({"order.cancel.rejected"});
    }
  }

  TEST_CASE("terminal states take nothing that would leave them") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    walk_to(s, "placed");
    s.given({s.make("payment.failed")});
    for (const std::string type : {"payment.succeeded", "inventory.reserved", "delivery.confirmed"}) {
      s.when(s.make(type)).expect_state("cancelled").expect_emitted({}).expect_outcome(ack_outcome::ignored);
    }
  }

  TEST_CASE("a duplicate of every event type has no effect and gets the original ack") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    std::vector<saga::event> events = {s.make("order.placed", order_data()), s.make("payment.succeeded"),
                                       s.make("inventory.reserved"),         s.make("shipment.dispatched"),
                                       s.make("delivery.started"),           s.make("delivery.confirmed")};
    for (const auto& e : events) {
      CAPTURE(e.type);
      s.when(e);
      const auto original = s.last_ack();
      const auto outbox_before = s.outbox().size();
      const auto version_before = s.data();
      s.when(e);
      CHECK(s.last_ack().status == ack_status::duplicate);
      CHECK(s.last_ack().outcome == original.outcome);
      CHECK(s.last_ack().saga_state == original.saga_state);
      CHECK(s.emitted().empty());
      CHECK(s.outbox().size() == outbox_before);
    }
    CHECK(s.state() == "done");
  }

  TEST_CASE("the graph has the table's states and the three terminal states") {
    auto d = saga::definitions::order_lifecycle();
    const auto& g = d->graph();
    CHECK(g.name == "order_lifecycle");
    CHECK(g.initial == "new");
    for (const char* st : {"placed", "paid", "awaiting_shipment", "shipped", "delivering", "done",
                           "cancelled", "refunding", "needs_attention"})
      CHECK(g.has_state(st));
    // Derived from the table: the states no row leaves, in the order the table first names them.
    CHECK(g.terminal == std::vector<std::string>{"cancelled", "done", "needs_attention"});
    CHECK(g.starts == std::vector<std::string>{"order.placed"});
    CHECK(g.consumes.size() == 15);  // 12 events, 2 timers, the refund retry's timer
    CHECK(g.timers == std::vector<std::string>{"payment_timeout", "retry.refunding.payment.refund.failed",
                                               "shipment_deadline"});
    // The refund's retry is one row that says its budget.
    const auto retry = std::find_if(g.rows.begin(), g.rows.end(),
                                    [](const saga::graph_row& r) { return !r.retry_timer.empty(); });
    REQUIRE(retry != g.rows.end());
    CHECK(retry->target == "needs_attention");
    CHECK(retry->action.find("at most 2 times after 5s, x2 each, then emit order.needs_attention") !=
          std::string::npos);
    CHECK(saga::check_graph(g).empty());
    CHECK(g.fingerprint.size() == 16);
  }
  TEST_CASE("regression: two orders that share data.order_id get refund ids of their own") {
    scenario a(saga::definitions::order_lifecycle(), "o-a");
    scenario b(saga::definitions::order_lifecycle(), "o-b");
    for (scenario* s : {&a, &b}) {
      s->given({s->make("order.placed", order_data("shared-id")), s->make("payment.succeeded")});
      s->when(s->make("inventory.unavailable")).expect_state("refunding");
    }
    CHECK(a.emitted().front().data.at("refund_id") == "o-a:refund");
    CHECK(b.emitted().front().data.at("refund_id") == "o-b:refund");
  }

  TEST_CASE("order.placed with a wrong JSON type in a field is rejected with the field's name") {
    const std::vector<std::pair<std::string, nlohmann::json>> cases = {
        {"order_id", 7},   {"customer_id", nlohmann::json::array()},
        {"currency", 1.5}, {"currency", nullptr},
        {"amount", "42"},  {"items", "SKU-1"}};
    for (const auto& c : cases) {
      const std::string& field = c.first;  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const nlohmann::json& value = c.second;
      CAPTURE(field);
      scenario s(saga::definitions::order_lifecycle(), "o-1");
      auto data = order_data();
      data[field] = value;
      s.when(s.make("order.placed", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data '" + field + "'") != std::string::npos);
      CHECK(s.state().empty());
    }
  }
}

// Trace context (the CloudEvents Distributed Tracing extension) along whole order paths. The
// simulated services answer a follow-on event the way a traced service does: in its trace, from a
// span of their own (child_traceparent of the request's traceparent), with its tracestate.
namespace {

const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";

saga::event traced_order(scenario& s) {
  auto e = s.make("order.placed", order_data());
  e.traceparent = "00-" + trace + "-00f067aa0ba902b7-01";
  e.tracestate = "shop=t61rcWkgMzE";
  return e;
}

saga::event answer(scenario& s, const std::string& type, const saga::event& request) {
  auto e = s.make(type);
  e.traceparent = saga::child_traceparent(request.traceparent);
  e.tracestate = request.tracestate;
  return e;
}

std::string span_of(const std::string& traceparent) {
  return traceparent.substr(36, 16);
}

std::vector<saga::history_record> history_of(scenario& s) {
  saga::sqlite::reader r(s.store().database());
  return r.history(s.definition_name(), s.key());
}

// Every follow-on event of the order is in `trace_id` with `tracestate`, each from a new span: one
// neither another follow-on event nor an event the saga handled has; every history row is in the
// trace too.
void expect_all_in_trace(scenario& s, const std::string& trace_id, const std::string& tracestate,
                         std::size_t follow_on) {
  const auto out = s.outbox();
  CHECK(out.size() == follow_on);
  std::set<std::string> spans;
  const auto history = history_of(s);
  for (const auto& h : history) {
    CAPTURE(h.event_type);
    CHECK(saga::trace_id_of(h.traceparent) == trace_id);
    spans.insert(span_of(h.traceparent));
  }
  for (const auto& e : out) {
    CAPTURE(e.type);
    CAPTURE(e.traceparent);
    CHECK(saga::traceparent_problem(e.traceparent) == "");
    CHECK(saga::trace_id_of(e.traceparent) == trace_id);
    CHECK(e.tracestate == tracestate);
    CHECK(spans.insert(span_of(e.traceparent)).second);  // a span id of its own
  }
  CHECK(spans.size() == history.size() + out.size());
}

}  // namespace

TEST_SUITE("order_lifecycle trace") {
  TEST_CASE("a trace sent with order.placed is on every follow-on event of the six steps") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.when(traced_order(s));
    for (const char* type : {"payment.succeeded", "inventory.reserved", "shipment.dispatched",
                             "delivery.started", "delivery.confirmed"})
      s.when(answer(s, type, s.outbox().back())).expect_outcome(ack_outcome::transitioned);
    CHECK(s.state() == "done");
    expect_all_in_trace(s, trace, "shop=t61rcWkgMzE", 6);
    // The history keeps each incoming event's trace context as it came.
    const auto h = history_of(s);
    REQUIRE(h.size() == 6);
    CHECK(h[0].traceparent == traced_order(s).traceparent);
    CHECK(h[0].tracestate == "shop=t61rcWkgMzE");
  }

  TEST_CASE("a trace sent with order.placed is on every follow-on event of a refund with a timed retry") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.when(traced_order(s));
    s.when(answer(s, "payment.succeeded", s.outbox().back()));
    s.when(answer(s, "inventory.unavailable", s.outbox().back())).expect_state("refunding");
    s.when(answer(s, "payment.refund.failed", s.outbox().back())).expect_emitted({});
    // The retry is a timer firing: it carries the saga's trace (its newest history row's).
    s.advance(std::chrono::seconds(5)).expect_emitted({"payment.refund.requested"});
    s.when(answer(s, "payment.refunded", s.outbox().back())).expect_state("cancelled");
    expect_all_in_trace(s, trace, "shop=t61rcWkgMzE", 5);
  }

  TEST_CASE("the payment timeout and an operator's abort continue the saga's trace") {
    scenario timed(saga::definitions::order_lifecycle(), "o-1");
    timed.when(traced_order(timed));
    timed.advance(std::chrono::minutes(16)).expect_emitted({"order.cancelled"});
    expect_all_in_trace(timed, trace, "shop=t61rcWkgMzE", 2);

    scenario aborted(saga::definitions::order_lifecycle(), "o-1");
    aborted.when(traced_order(aborted));
    auto abort = aborted.make_operator("abort", {{"reason", "customer called"}, {"operator", "tester"}});
    REQUIRE(abort.traceparent.empty());
    aborted.when(abort).expect_emitted({"order.cancelled"});
    expect_all_in_trace(aborted, trace, "shop=t61rcWkgMzE", 2);
  }

  TEST_CASE("an event without a traceparent starts a new trace that its follow-on events carry") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.when(s.make("order.placed", order_data()));
    const auto h = history_of(s);
    REQUIRE(h.size() == 1);
    CHECK(saga::traceparent_problem(h[0].traceparent) == "");
    CHECK(h[0].traceparent.substr(53) == "01");
    CHECK(h[0].tracestate.empty());
    const std::string fresh(saga::trace_id_of(h[0].traceparent));
    expect_all_in_trace(s, fresh, "", 1);

    scenario other(saga::definitions::order_lifecycle(), "o-2");
    other.when(other.make("order.placed", order_data("o-2")));
    CHECK(saga::trace_id_of(history_of(other)[0].traceparent) != fresh);
  }

  TEST_CASE("a parked event keeps the trace it was given and its extensions until it applies") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    auto early = s.make("payment.succeeded");
    early.extensions = {{"region", "eu"}, {"attempt2", 3}};
    s.when(early).expect_outcome(ack_outcome::parked);
    const auto parked = s.store().parked_of("order_lifecycle", "o-1");
    REQUIRE(parked.size() == 1);
    const auto stored = saga::decode_event(parked[0].payload);
    REQUIRE(stored);
    CHECK(saga::traceparent_problem(stored.event->traceparent) == "");
    CHECK(stored.event->extensions == nlohmann::json{{"region", "eu"}, {"attempt2", 3}});

    s.when(traced_order(s)).expect_state("paid");
    const auto h = history_of(s);
    REQUIRE(h.size() == 2);
    CHECK(h[1].event_id == early.id);
    CHECK(h[1].traceparent == stored.event->traceparent);
    CHECK(nlohmann::json::parse(h[1].extensions) == nlohmann::json{{"region", "eu"}, {"attempt2", 3}});
    CHECK(h[0].extensions.empty());
    const auto out = s.outbox();
    REQUIRE(out.size() == 2);
    CHECK(saga::trace_id_of(out[0].traceparent) == trace);                                // payment.requested
    CHECK(saga::trace_id_of(out[1].traceparent) == saga::trace_id_of(h[1].traceparent));  // the parked one's
    CHECK(out[1].extensions.is_null());  // extensions stay with the event that brought them
  }

  TEST_CASE("extension attributes of an incoming event are kept in its history row") {
    scenario s(saga::definitions::order_lifecycle(), "o-1");
    auto placed = traced_order(s);
    placed.extensions = {{"region", "eu"}, {"priority", 2}, {"express", true}};
    s.when(placed).expect_state("placed");
    const auto h = history_of(s);
    REQUIRE(h.size() == 1);
    CHECK(nlohmann::json::parse(h[0].extensions) == placed.extensions);
  }

  TEST_CASE("a malformed traceparent is rejected naming traceparent and starts nothing") {
    for (const char* bad : {"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) {
      CAPTURE(bad);
      scenario s(saga::definitions::order_lifecycle(), "o-1");
      auto e = s.make("order.placed", order_data());
      e.traceparent = bad;
      s.when(e);
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.rfind("attribute 'traceparent': ", 0) == 0);
      CHECK(s.state().empty());
      CHECK(s.outbox().empty());
    }
  }
}
