// Tests of saga::sqlite::reader (the read port) over database files the engine filled, in a
// temporary folder.

#include "saga/sqlite/reader.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/graph.hpp"
#include "saga/sqlite/store.hpp"
#include "support/filling_engine.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;

constexpr std::int64_t t0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t minute = 60'000;

saga::event ev(const std::string& type, const std::string& subject, json data = json::object()) {
  return saga::test::numbered_event("r", type, subject, std::move(data));
}

json order(const std::string& id) {
  return saga::test::order_data(id);
}

std::vector<std::string> keys(const std::vector<saga::saga_summary>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.definition + "/" + r.key);
  return out;
}

std::vector<std::int64_t> sequences(const std::vector<saga::outbox_record>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.sequence);
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A database the engine (order_lifecycle, on a manual clock) filled, the store then closed:
//   t0 - 1h   legacy/o-1: a saga of a definition that is not registered (written through the
//             store), its `reminder` timer due at t0 - 1 min
//   t0        o-1 placed (payment_timeout at t0 + 15 min)
//             o-2 awaiting_shipment (shipment_deadline at t0 + 48 h), delivery.started parked
//   t0 + 1min o-3 cancelled (payment.failed); a dead letter (a type nobody consumes), sent twice
//   t0 + 11min o-4 placed (payment_timeout at t0 + 26 min)
// outbox: 1 o-1, 2..4 o-2, 5..6 o-3, 7 o-4; 1..3 published at t0 + 12 min.
struct filled {
  saga::test::temp_dir dir;
  std::string db = dir.file("saga.db");

  filled() {
    saga::test::filling_engine f(db, t0);
    auto& st = f.store;
    f.engine.add(saga::definitions::order_lifecycle());
    saga::instance_record legacy;
    legacy.definition = "legacy";
    legacy.key = "o-1";
    legacy.state = "waiting";
    legacy.data = "{}";
    legacy.version = 1;
    legacy.fingerprint = "0123456789abcdef";
    legacy.correlation_id = "legacy-start";
    legacy.created_ms = legacy.updated_ms = legacy.state_since_ms = t0 - 60 * minute;
    st.begin();
    st.save_instance(legacy);
    st.arm_timer("legacy", "o-1", "reminder", t0 - minute);
    st.commit();

    f.ok(ev("order.placed", "o-1", order("o-1")));
    f.ok(ev("order.placed", "o-2", order("o-2")));
    f.ok(ev("payment.succeeded", "o-2"));
    f.ok(ev("inventory.reserved", "o-2"));
    f.ok(ev("delivery.started", "o-2"));  // parked: not shipped yet
    f.clock.set(t0 + minute);
    f.ok(ev("order.placed", "o-3", order("o-3")));
    f.ok(ev("payment.failed", "o-3"));
    const auto stray = ev("no.such.type", "o-9");
    CHECK_FALSE(f.engine.handle(stray).ok());
    CHECK_FALSE(f.engine.handle(stray).ok());  // counted, not copied
    f.clock.set(t0 + 11 * minute);
    f.ok(ev("order.placed", "o-4", order("o-4")));
    st.mark_published(1, 3, t0 + 12 * minute);
  }
};

}  // namespace

TEST_SUITE("sqlite_reader") {
  TEST_CASE("a saga reads back with its history timers parked and follow-on events") {
    filled f;
    saga::sqlite::reader r(f.db);
    const auto v = saga::read_saga(r, "order_lifecycle", "o-2");
    REQUIRE(v);
    CHECK(v->instance.state == "awaiting_shipment");
    CHECK(json::parse(v->instance.data)["amount"] == 10);
    CHECK(v->instance.created_ms == t0);
    CHECK(v->instance.fingerprint.size() == 16);
    REQUIRE(v->definition);
    CHECK(v->definition->fingerprint == v->instance.fingerprint);

    REQUIRE(v->history.size() == 4);
    CHECK(v->history[0].event_type == "order.placed");
    CHECK(v->history[0].to_state == "placed");
    CHECK(v->history[0].outbox_first == 2);
    CHECK(v->history[0].outbox_last == 2);
    CHECK(v->history[2].from_state == "paid");
    CHECK(v->history[2].to_state == "awaiting_shipment");
    CHECK(v->history[2].outbox_first == 4);
    CHECK(v->history[3].outcome == "parked");
    CHECK_FALSE(v->history[3].outbox_first);

    REQUIRE(v->timers.size() == 1);
    CHECK(v->timers[0].name == "shipment_deadline");
    CHECK(v->timers[0].due_ms == t0 + 48LL * 60 * minute);
    CHECK(v->timers[0].generation == 1);

    REQUIRE(v->parked.size() == 1);
    CHECK(v->parked[0].type == "delivery.started");
    CHECK(json::parse(v->parked[0].payload)["subject"] == "o-2");

    CHECK(sequences(v->follow_on) == std::vector<std::int64_t>{2, 3, 4});
    CHECK(v->follow_on[0].type == "payment.requested");
    CHECK(v->follow_on[2].type == "shipment.requested");
    CHECK(v->follow_on[0].published_ms == t0 + 12 * minute);
    CHECK_FALSE(v->follow_on[2].published_ms);
    CHECK(json::parse(v->follow_on[2].payload)["subject"] == "o-2");

    // A cancelled order: its payment timeout was disarmed, so no timer is listed.
    const auto o3 = saga::read_saga(r, "order_lifecycle", "o-3");
    REQUIRE(o3);
    CHECK(o3->instance.state == "cancelled");
    CHECK(o3->timers.empty());
    CHECK(sequences(o3->follow_on) == std::vector<std::int64_t>{5, 6});

    // The unregistered definition's saga reads back without a definition.
    const auto legacy = saga::read_saga(r, "legacy", "o-1");
    REQUIRE(legacy);
    CHECK_FALSE(legacy->definition);
    CHECK(legacy->history.empty());

    CHECK_FALSE(saga::read_saga(r, "order_lifecycle", "o-404"));
    CHECK_FALSE(r.instance("order_lifecycle", "o-404"));
    CHECK(r.history("order_lifecycle", "o-404").empty());
    CHECK(r.follow_on_events("order_lifecycle", "o-404").empty());
  }

  TEST_CASE("definitions_of lists every definition with a saga of that key") {
    filled f;
    saga::sqlite::reader r(f.db);
    CHECK(r.definitions_of("o-1") == std::vector<std::string>{"legacy", "order_lifecycle"});
    CHECK(r.definitions_of("o-2") == std::vector<std::string>{"order_lifecycle"});
    CHECK(r.definitions_of("o-404").empty());
  }

  TEST_CASE("sagas filters by definition state and times in a stable order with a limit") {
    filled f;
    saga::sqlite::reader r(f.db);
    const std::vector<std::string> all = {"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2",
                                          "order_lifecycle/o-3", "order_lifecycle/o-4"};
    CHECK(keys(r.sagas({})) == all);

    saga::saga_filter by_definition;
    by_definition.definition = "order_lifecycle";
    CHECK(r.sagas(by_definition).size() == 4);

    saga::saga_filter by_state;
    by_state.state = "placed";
    CHECK(keys(r.sagas(by_state)) == std::vector<std::string>{"order_lifecycle/o-1", "order_lifecycle/o-4"});

    // Terminal states come from the stored graph; an unregistered definition's saga is unfinished.
    saga::saga_filter unfinished;
    unfinished.unfinished_only = true;
    CHECK(keys(r.sagas(unfinished)) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1",
                                                                "order_lifecycle/o-2",
                                                                "order_lifecycle/o-4"});

    saga::saga_filter created;
    created.created.from_ms = t0 + minute;
    CHECK(keys(r.sagas(created)) == std::vector<std::string>{"order_lifecycle/o-3", "order_lifecycle/o-4"});
    created = {};
    created.created.before_ms = t0 + minute;  // exclusive
    CHECK(keys(r.sagas(created)) ==
          std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2"});

    saga::saga_filter updated;
    updated.updated.from_ms = t0 + 11 * minute;
    CHECK(keys(r.sagas(updated)) == std::vector<std::string>{"order_lifecycle/o-4"});
    updated.updated = {t0, t0 + 2 * minute};
    CHECK(keys(r.sagas(updated)) ==
          std::vector<std::string>{"order_lifecycle/o-1", "order_lifecycle/o-2", "order_lifecycle/o-3"});

    // In their state since t0 or earlier, not finished: sagactl list --stuck-for.
    saga::saga_filter stuck;
    stuck.unfinished_only = true;
    stuck.state_since.before_ms = t0 + 1;
    CHECK(keys(r.sagas(stuck)) ==
          std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2"});
    stuck.state_since = {t0 + minute, std::nullopt};
    CHECK(keys(r.sagas(stuck)) == std::vector<std::string>{"order_lifecycle/o-4"});

    saga::saga_filter limited;
    limited.limit = 2;
    const auto first = r.sagas(limited);
    CHECK(keys(first) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1"});
    limited.after = first.back().position();
    const auto second = r.sagas(limited);
    CHECK(keys(second) == std::vector<std::string>{"order_lifecycle/o-2", "order_lifecycle/o-3"});
    limited.after = second.back().position();
    CHECK(keys(r.sagas(limited)) == std::vector<std::string>{"order_lifecycle/o-4"});
    limited.limit = 0;
    CHECK(r.sagas(limited).empty());

    for (const auto& s : r.sagas({})) {
      CAPTURE(s.key);
      if (s.definition == "order_lifecycle" && s.key == "o-2") {
        CHECK(s.armed_timers == 1);
        CHECK(s.parked == 1);
        CHECK(s.state == "awaiting_shipment");
        CHECK(s.state_since_ms == t0);
        CHECK(s.version >= 3);
      }
      if (s.key == "o-3") CHECK(s.armed_timers == 0);
    }
  }

  TEST_CASE("orphaned sagas and due timer counts name a definition that is not registered") {
    filled f;
    {
      SQLite::Database w(f.db, SQLite::OPEN_READWRITE);
      w.exec("UPDATE instances SET state = 'vanished' WHERE key = 'o-3'");
    }
    saga::sqlite::reader r(f.db);
    CHECK(keys(r.orphaned_sagas(10)) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-3"});
    CHECK(r.orphaned_sagas(1).size() == 1);
    using counts = std::vector<std::pair<std::string, std::int64_t>>;
    CHECK(r.due_timer_counts(t0 + 20 * minute) == counts{{"legacy", 1}, {"order_lifecycle", 1}});
    CHECK(r.due_timer_counts(t0 + 30 * minute) == counts{{"legacy", 1}, {"order_lifecycle", 2}});
    CHECK(r.due_timer_counts(t0 - 2 * minute).empty());
  }

  TEST_CASE("armed timers of every saga soonest first with due_before and a limit") {
    filled f;
    saga::sqlite::reader r(f.db);
    const auto all = r.armed_timers(std::nullopt, 100);
    REQUIRE(all.size() == 4);
    CHECK(all[0].definition == "legacy");
    CHECK(all[1].key == "o-1");
    CHECK(all[1].name == "payment_timeout");
    CHECK(all[1].due_ms == t0 + 15 * minute);
    CHECK(all[2].key == "o-4");
    CHECK(all[3].name == "shipment_deadline");
    CHECK(r.armed_timers(t0 + 20 * minute, 100).size() == 2);
    CHECK(r.armed_timers(t0 + 15 * minute, 100).size() == 1);  // exclusive
    CHECK(r.armed_timers(std::nullopt, 1).size() == 1);
    CHECK(r.armed_timers(std::nullopt, 0).empty());
    // Merged across definitions (each read through its own index), then cut to the limit.
    const auto two = r.armed_timers(std::nullopt, 2);
    REQUIRE(two.size() == 2);
    CHECK(two[0].definition == "legacy");
    CHECK(two[1].key == "o-1");
    CHECK(two[1].name == "payment_timeout");
  }

  TEST_CASE("outbox rows by sequence range and unpublished only") {
    filled f;
    saga::sqlite::reader r(f.db);
    CHECK(sequences(r.outbox({})) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7});
    saga::outbox_filter range;
    range.from_sequence = 3;
    range.through_sequence = 5;
    const auto rows = r.outbox(range);
    CHECK(sequences(rows) == std::vector<std::int64_t>{3, 4, 5});
    CHECK(rows[0].published_ms == t0 + 12 * minute);
    CHECK(rows[0].definition == "order_lifecycle");
    CHECK(rows[0].key == "o-2");
    CHECK_FALSE(rows[1].published_ms);
    saga::outbox_filter pending;
    pending.unpublished_only = true;
    CHECK(sequences(r.outbox(pending)) == std::vector<std::int64_t>{4, 5, 6, 7});
    pending.limit = 2;
    CHECK(sequences(r.outbox(pending)) == std::vector<std::int64_t>{4, 5});
    CHECK(r.last_published_sequence() == 3);
  }

  TEST_CASE("dead letters with count last and truncated and one by id") {
    filled f;
    saga::sqlite::reader r(f.db);
    const auto rows = r.dead_letters(0, 10);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].type == "no.such.type");
    CHECK(rows[0].subject == "o-9");
    CHECK(rows[0].count == 2);
    CHECK(rows[0].last_ms == t0 + minute);
    CHECK_FALSE(rows[0].truncated);
    CHECK(rows[0].reason.find("no definition consumes") != std::string::npos);
    const auto one = r.dead_letter(rows[0].id);
    REQUIRE(one);
    CHECK(json::parse(one->payload)["type"] == "no.such.type");
    CHECK_FALSE(r.dead_letter(rows[0].id + 1));
    CHECK(r.dead_letters(rows[0].id, 10).empty());
    CHECK(r.dead_letters(0, 0).empty());
  }

  TEST_CASE("counts by state totals and events received per interval") {
    filled f;
    saga::sqlite::reader r(f.db);
    const auto states = r.counts_by_state();
    REQUIRE(states.size() == 4);
    CHECK(states[0].definition == "legacy");
    CHECK(states[1].state == "awaiting_shipment");
    CHECK(states[2].state == "cancelled");
    CHECK(states[3].state == "placed");
    CHECK(states[3].sagas == 2);

    const auto t = r.totals();
    CHECK(t.sagas == 5);
    CHECK(t.outbox == 7);
    CHECK(t.unpublished == 4);
    CHECK(t.oldest_unpublished_ms == t0);
    CHECK(t.dead_letters == 1);
    CHECK(t.parked == 1);
    CHECK(t.armed_timers == 4);
    CHECK(t.inbox >= 8);

    const auto per_minute = r.received_per_interval(t0, t0 + 15 * minute, minute);
    REQUIRE(per_minute.size() == 15);
    CHECK(per_minute[0] == 5);  // o-1 and o-2's four events
    CHECK(per_minute[1] >= 2);  // o-3's two
    CHECK(per_minute[11] == 1);
    CHECK(r.received_per_interval(t0, t0 + 90'000, minute).size() == 2);
    CHECK(r.received_per_interval(t0, t0, minute).empty());
    CHECK_THROWS_AS(r.received_per_interval(t0, t0 + minute, 0), std::invalid_argument);
  }

  TEST_CASE("definitions with their graphs and what a purge would remove") {
    filled f;
    saga::sqlite::reader r(f.db);
    const auto defs = r.definitions();
    REQUIRE(defs.size() == 1);
    CHECK(defs[0].name == "order_lifecycle");
    CHECK(defs[0].registered_ms == t0);
    const auto g = saga::graph_from_json(json::parse(defs[0].graph));
    CHECK(g.has_state("awaiting_shipment"));
    CHECK(g.fingerprint == defs[0].fingerprint);
    CHECK(r.definition("order_lifecycle"));
    CHECK_FALSE(r.definition("legacy"));

    const auto n = r.count_finished("order_lifecycle", {"cancelled", "done", "cancelled"}, t0 + 2 * minute);
    CHECK(n.sagas == 1);
    CHECK(n.history == 2);
    CHECK(r.count_finished("order_lifecycle", {"cancelled"}, t0 + minute).sagas == 0);  // exclusive
    CHECK(r.count_finished("order_lifecycle", {}, t0 + 2 * minute).sagas == 0);
  }

  TEST_CASE("injection strings in every filter return nothing and change nothing") {
    filled f;
    const std::string before = read_bytes(f.db);
    REQUIRE_FALSE(before.empty());
    {
      saga::sqlite::reader r(f.db);
      for (const std::string& bad :
           std::vector<std::string>{"x' OR '1'='1", "'; DROP TABLE instances; --", "o-1\" OR 1=1 --", "%",
                                    "order_lifecycle' --", std::string("o-1\0x", 5)}) {
        CAPTURE(bad);
        CHECK(r.definitions_of(bad).empty());
        CHECK_FALSE(r.instance(bad, "o-1"));
        CHECK_FALSE(r.instance("order_lifecycle", bad));
        CHECK(r.history(bad, bad).empty());
        CHECK(r.timers("order_lifecycle", bad).empty());
        CHECK(r.parked("order_lifecycle", bad).empty());
        CHECK(r.follow_on_events("order_lifecycle", bad).empty());
        CHECK_FALSE(saga::read_saga(r, bad, bad));
        saga::saga_filter by_definition;
        by_definition.definition = bad;
        CHECK(r.sagas(by_definition).empty());
        saga::saga_filter by_state;
        by_state.state = bad;
        CHECK(r.sagas(by_state).empty());
        saga::saga_filter paged;
        paged.after = saga::saga_position{std::numeric_limits<std::int64_t>::max(), bad, bad};
        CHECK(r.sagas(paged).empty());
        CHECK_FALSE(r.definition(bad));
        CHECK(r.count_finished(bad, {bad}, std::numeric_limits<std::int64_t>::max()).sagas == 0);
        CHECK(r.count_finished("order_lifecycle", {bad}, std::numeric_limits<std::int64_t>::max()).sagas ==
              0);
      }
      CHECK(r.sagas({}).size() == 5);
    }
    CHECK(read_bytes(f.db) == before);
  }

  TEST_CASE("a snapshot reads one state while another connection commits") {
    filled f;
    saga::sqlite::reader r(f.db);
    saga::manual_clock clock(t0 + 20 * minute);
    saga::sqlite::options o;
    o.path = f.db;
    saga::sqlite::store st(o);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());

    r.begin_snapshot();
    const auto before = r.totals().sagas;
    r.begin_snapshot();  // nested: the same snapshot
    REQUIRE(eng.handle(ev("order.placed", "o-5", order("o-5"))).ok());
    CHECK(r.totals().sagas == before);
    CHECK_FALSE(r.instance("order_lifecycle", "o-5"));
    r.end_snapshot();
    CHECK(r.totals().sagas == before);
    r.end_snapshot();
    CHECK(r.totals().sagas == before + 1);
    CHECK(r.instance("order_lifecycle", "o-5"));
    r.end_snapshot();  // unbalanced: harmless
  }

  TEST_CASE("a read failing inside read_saga ends its snapshot and the reader goes on") {
    filled f;
    saga::sqlite::reader r(f.db);
    struct failing_history : saga::reader_wrapper {
      using saga::reader_wrapper::reader_wrapper;
      int snapshots = 0;
      void begin_snapshot() override {
        ++snapshots;
        reader_wrapper::begin_snapshot();
      }
      void end_snapshot() noexcept override {
        --snapshots;
        reader_wrapper::end_snapshot();
      }
      std::vector<saga::history_record> history(std::string_view, std::string_view) override {
        throw saga::store_error("history: disk I/O error");
      }
    } failing(r);
    CHECK_THROWS_AS(saga::read_saga(failing, "order_lifecycle", "o-2"), saga::store_error);
    CHECK(failing.snapshots == 0);

    // The snapshot really ended: a commit made now is seen.
    {
      saga::manual_clock clock(t0 + 30 * minute);
      saga::sqlite::options o;
      o.path = f.db;
      saga::sqlite::store st(o);
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      REQUIRE(eng.handle(ev("order.placed", "o-8", order("o-8"))).ok());
    }
    CHECK(failing.instance("order_lifecycle", "o-8"));
    CHECK(failing.totals().sagas == 6);
  }

  TEST_CASE("a reader on the host's connection reads inside the host's transaction") {
    filled f;
    SQLite::Database db(f.db, SQLite::OPEN_READWRITE);
    saga::sqlite::store st(db);
    saga::manual_clock clock(t0 + 20 * minute);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    saga::sqlite::reader r(db);

    SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
    const saga::event placed = ev("order.placed", "o-7", order("o-7"));
    auto joined = eng.handle_in_transaction(std::span(&placed, 1));
    REQUIRE(joined.acks[0].ok());
    {
      saga::reader_snapshot snapshot(r);  // inside the host's transaction: neither begins nor ends it
      const auto v = saga::read_saga(r, "order_lifecycle", "o-7");
      REQUIRE(v);
      CHECK(v->instance.state == "placed");
      CHECK(v->follow_on.size() == 1);
    }
    tx.commit();  // still the host's transaction to commit
    eng.committed(joined);
    CHECK(saga::sqlite::reader(f.db).instance("order_lifecycle", "o-7"));
  }

  TEST_CASE("a database of another schema version is refused and left as it was") {
    filled f;
    auto with_version = [&](const std::string& name, int version) {
      const std::string path = f.dir.file(name);
      std::filesystem::copy_file(f.db, path);
      SQLite::Database w(path, SQLite::OPEN_READWRITE);
      w.exec("PRAGMA user_version = " + std::to_string(version));
      return path;
    };
    for (const int version : {99, 2, 0}) {
      CAPTURE(version);
      const std::string path = with_version("v" + std::to_string(version) + ".db", version);
      const std::string before = read_bytes(path);
      try {
        saga::sqlite::reader r(path);
        FAIL("a schema " << version << " database was accepted");
      } catch (const saga::sqlite::schema_error& e) {
        CHECK(e.found() == version);
        CHECK(e.supported() == saga::sqlite::store::current_schema);
        if (version == 99) CHECK(std::string(e.what()).find("newer") != std::string::npos);
      }
      CHECK(read_bytes(path) == before);
    }

    const std::string garbage = f.dir.file("garbage.db");
    {
      std::ofstream g(garbage);
      g << std::string(8192, 'x');
    }
    CHECK_THROWS_AS(saga::sqlite::reader{garbage}, saga::store_error);
    const std::string missing = f.dir.file("missing.db");
    CHECK_THROWS_AS(saga::sqlite::reader{missing}, saga::store_error);
    CHECK_FALSE(std::filesystem::exists(missing));  // read-only: never created
  }
}
