// The engine, unchanged, over the PostgreSQL store: the same stream (in order and out of order,
// with duplicates, a cancellation, a timer firing, parked events, a rejected event) gives the
// same acks, states, follow-on events and history as over the SQLite store.

#include "saga/engine.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "saga/clock.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/postgres/store.hpp"
#include "saga/sqlite/store.hpp"
#include "support/number_outbox.hpp"
#include "support/order_events.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace saga::test;

saga::event order_event(const std::string& order, int n, const std::string& type) {
  saga::event e = type == "order.placed" ? placed(order) : saga::event{};
  e.id = order + "-" + std::to_string(n);
  e.source = "urn:test";
  e.type = type;
  e.subject = order;
  e.time = "2026-01-01T00:00:00Z";
  return e;
}

// Twelve orders: the happy path in order, the happy path backwards (everything parks until
// order.placed comes last), a cancellation, an order that waits for its payment timeout, and every
// fifth event sent twice; then an event of a type nobody consumes.
std::vector<saga::event> stream() {
  const std::vector<std::string> happy{"order.placed",        "payment.succeeded", "inventory.reserved",
                                       "shipment.dispatched", "delivery.started",  "delivery.confirmed"};
  std::vector<saga::event> out;
  for (int i = 0; i < 12; ++i) {
    const std::string order = "order-" + std::to_string(i);
    std::vector<std::string> types = happy;
    if (i % 4 == 1) types.assign(happy.rbegin(), happy.rend());
    if (i % 4 == 2) types = {"order.placed", "order.cancel.requested"};
    if (i % 4 == 3) types = {"order.placed"};
    for (std::size_t n = 0; n < types.size(); ++n)
      out.push_back(order_event(order, static_cast<int>(n), types[n]));
  }
  for (std::size_t i = 0; i < out.size(); i += 5) out.push_back(out[i]);
  out.push_back(order_event("order-x", 0, "no.such.type"));
  return out;
}

// What a run leaves that does not depend on random ids: acks, fired timers, states, the outbox
// (type and saga, in sequence order) and each saga's history length.
std::vector<std::string> run(saga::store& s) {
  saga::manual_clock clock;
  saga::engine e(s, clock);
  e.add(saga::definitions::order_lifecycle());
  std::int64_t emitted = 0;
  e.on_commit([&](std::span<const saga::published_event> rows) { emitted += std::ssize(rows); });
  std::vector<std::string> out;
  const auto events = stream();
  for (std::size_t i = 0; i < events.size(); i += 7) {  // batches of seven
    const auto n = std::min<std::size_t>(7, events.size() - i);
    for (const auto& a : e.handle_batch(std::span<const saga::event>(events.data() + i, n)))
      out.push_back(a.id + " " + saga::encode_ack(a));
  }
  clock.advance(std::chrono::hours(1));
  for (const auto& f : e.fire_due_timers(clock.now_ms()))
    out.push_back("fired " + f.timer.key + " " + f.timer.name + " " + f.ack.saga_state);
  for (int i = 0; i < 12; ++i) {
    const auto key = "order-" + std::to_string(i);
    const auto inst = s.load_instance("order_lifecycle", key);
    out.push_back(key + " " + (inst ? inst->state + " v" + std::to_string(inst->version) : "-"));
  }
  saga::test::number_outbox(s, emitted);  // what the relay does first (PostgreSQL numbers after the commit)
  for (const auto& o : s.unpublished(0, 1000))
    out.push_back(std::to_string(o.sequence) + " " + o.type + " " + o.key);
  out.push_back("parked " + std::to_string(s.count_parked_total()));
  return out;
}

}  // namespace

TEST_SUITE("postgres_engine") {
  TEST_CASE("the engine gives the same acks and states and follow-on events over PostgreSQL as over SQLite") {
    temp_dir dir;
    saga::sqlite::options lite;
    lite.path = dir.file("saga.db");
    saga::sqlite::store sqlite(lite);
    saga::postgres::options pg;
    pg.conninfo = postgres_conninfo();
    pg.schema = unique_schema("engine");
    saga::postgres::store postgres(pg);

    const auto expected = run(sqlite);
    const auto got = run(postgres);
    REQUIRE(expected.size() == got.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i] == expected[i]);
    }
    // The stream did what it was written for.
    const auto has = [&](const std::string& line) {
      return std::find(got.begin(), got.end(), line) != got.end();
    };
    CHECK(has("order-0 done v6"));
    CHECK(has("order-1 done v6"));
    CHECK(has("order-2 cancelled v2"));
    CHECK(has("fired order-3 payment_timeout cancelled"));
    CHECK(has("parked 0"));
  }
}
