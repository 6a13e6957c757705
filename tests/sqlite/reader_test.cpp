// Tests of what is particular to saga::sqlite::reader (the read port) over database files the
// engine filled, in a temporary folder: the file left byte for byte as it was, a reader on the host's
// connection, schema versions. The port's contract, the same cases over both stores' readers, is
// tests/store/reader_contract_test.cpp.

#include "saga/sqlite/reader.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
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
  TEST_CASE("injection strings in every filter return nothing and leave the file as it was") {
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
