// sagactl migrate-store (issue 17): a SQLite database filled through the engine moves into a
// PostgreSQL schema; sagactl --json reads the same documents from both (nothing copied differs
// but for ages: ids, traces and times came across as they were); a sagad started on the schema
// then carries the sagas on to their ends — parked events, timers armed in SQLite, the outbox and
// history continuing after the copied rows without a gap or a reused id. And the refusals: a
// sagad running on the file, a schema that already holds sagas (unless --replace), a database
// that cannot be reached, named without its password.

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "cli/cli_support.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/zmq/client.hpp"
#include "support/order_events.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/sagactl_story.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr int orders = 20;  // m-0 … m-19: awaiting shipment when migrated, done on PostgreSQL

std::string order(int i) {
  return "m-" + std::to_string(i);
}

// A SQLite file as a sagad of this release leaves it: the story of sagactl_story.hpp (three hours
// ago: o-1 and o-4 placed, their payment timeouts long due), two versions of a definition, and
// `orders` orders placed, paid and reserved just now (their shipment deadlines armed, 48 h ahead).
struct sqlite_file {
  saga::test::temp_dir dir;
  std::string path = dir.file("saga.db");
  std::string conninfo = saga::test::postgres_conninfo();
  std::string uri = saga::test::postgres_uri(conninfo);
  std::int64_t t0 = saga::test::wall_ms() - 3 * 3600 * 1000;

  sqlite_file() {
    saga::sqlite::options o;
    o.path = path;
    saga::sqlite::store st(o);
    saga::test::fill_story(st, t0);
    // Two versions of the legacy definition side by side (schema 10), as a store keeps them.
    st.begin();
    for (std::int64_t v : {1, 2})
      st.save_definition({"legacy", v, "fp-legacy-" + std::to_string(v),
                          R"({"name":"legacy","states":["waiting","over"],"terminal":["over"]})", t0 + v});
    st.commit();
    saga::manual_clock clock(saga::test::wall_ms());
    saga::engine e(st, clock);
    e.add(saga::definitions::order_lifecycle());
    e.add(saga::definitions::account_lockout());
    for (int i = 0; i < orders; ++i) {
      for (const auto& ev :
           {saga::test::placed(order(i)), saga::test::paid(order(i)),
            saga::test::story_event("reserved-" + order(i), "inventory.reserved", order(i))}) {
        const auto a = e.handle(ev);
        REQUIRE_MESSAGE(a.ok(), a.reason);
      }
    }
  }

  saga::cli_test::result sagactl(std::vector<std::string> args) const {
    args.insert(args.begin(), SAGACTL_PATH);
    return saga::cli_test::run(args, dir.path(), 60s);
  }
  saga::cli_test::result migrate(const std::string& schema, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"migrate-store", "--from", path, "--to", uri, "--pg-schema", schema};
    args.insert(args.end(), extra.begin(), extra.end());
    return sagactl(args);
  }
};

saga::event next(const std::string& type, const std::string& subject) {
  return saga::test::story_event(type + "-" + subject, type, subject);
}

}  // namespace

TEST_SUITE("postgres migrate-store") {
  TEST_CASE("migrate-store moves a SQLite database that sagad carries on with on PostgreSQL") {
    sqlite_file f;
    const auto schema = saga::test::unique_schema("moved");
    const auto r = f.migrate(schema, {"--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const auto summary = r.json();
    CHECK(summary["tables"]["instances"] == 6 + orders);
    CHECK(summary["tables"]["definitions"] == 4);  // order_lifecycle, account_lockout, legacy v1 and v2
    CHECK(summary["tables"]["dead_letters"] == 1);
    CHECK(summary["tables"]["parked"] == 1);
    CHECK(summary["to"].get<std::string>().find("postgresql://") == 0);
    CHECK(r.err.find("migrate-store: history: ") != std::string::npos);  // progress, table by table

    // The same documents from both, ids, traces and stored times included: only ages differ.
    for (auto args : saga::test::story_reading_commands()) {
      args.push_back("--json");
      std::string line;
      for (const auto& a : args) line += " " + a;
      CAPTURE(line);
      auto lite_args = args, pg_args = args;
      lite_args.insert(lite_args.begin(), {"--db", f.path});
      pg_args.insert(pg_args.begin(), {"--db", f.uri, "--pg-schema", schema});
      const auto lite = f.sagactl(lite_args);
      const auto pg = f.sagactl(pg_args);
      REQUIRE_MESSAGE(lite.code == 0, lite.err);
      REQUIRE_MESSAGE(pg.code == 0, pg.err);
      auto a = lite.json();
      auto p = pg.json();
      CHECK_FALSE(a.empty());
      saga::test::normalise(a, false);
      saga::test::normalise(p, false);
      CHECK_MESSAGE(a == p, "sqlite:   " << a.dump() << "\npostgres: " << p.dump());
    }

    saga::test::sql_session sql(f.conninfo, schema);
    const auto copied_outbox = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    const auto copied_history = std::stoll(sql.scalar("SELECT max(id) FROM history"));
    const auto copied_inbox = std::stoll(sql.scalar("SELECT count(*) FROM inbox"));
    const auto published =
        sql.column("SELECT sequence FROM outbox WHERE published_ms IS NOT NULL ORDER BY 1");
    CHECK(published == std::vector<std::string>{"1", "2", "3"});
    CHECK(sql.column("SELECT fingerprint FROM definitions WHERE name = 'legacy' ORDER BY version") ==
          std::vector<std::string>{"fp-legacy-1", "fp-legacy-2"});

    // sagad on the schema carries every saga on: o-1 and o-4 are cancelled by their payment
    // timeouts (armed in SQLite, due since), o-2 is shipped (its parked delivery.started then
    // applies) and delivered, and the orders reserved just now are shipped and delivered.
    saga::test::temp_dir run;
    auto sagad = saga::test::start_daemon({SAGAD_PATH, "--db", f.uri, "--pg-schema", schema, "--log-level",
                                           "warn", "--definitions", "order_lifecycle,account_lockout"},
                                          saga::test::endpoints::any_loopback(), run.file("endpoints.json"),
                                          run.file("sagad.out"), run.file("sagad.err"));
    REQUIRE_MESSAGE(sagad, sagad.error);
    std::vector<saga::event> events{next("shipment.dispatched", "o-2"), next("delivery.confirmed", "o-2")};
    for (int i = 0; i < orders; ++i)
      for (const char* type : {"shipment.dispatched", "delivery.started", "delivery.confirmed"})
        events.push_back(next(type, order(i)));
    {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options co;
      co.timeout = 20s;
      saga::zmq::client c(ctx, sagad.ep.ingress, co);
      for (const auto& e : events) {  // one at a time: each order's events in their order
        const auto a = c.send(e);
        CHECK_MESSAGE(a.status == saga::ack_status::accepted, e.id << ": " << a.reason);
      }
    }
    bool timers_fired = false;
    for (int i = 0; i < 200 && !timers_fired; ++i) {
      timers_fired = sql.scalar(
                         "SELECT count(*) FROM instances WHERE definition = 'order_lifecycle' AND key IN "
                         "('o-1', 'o-4') AND state = 'cancelled'") == "2";
      if (!timers_fired) std::this_thread::sleep_for(50ms);
    }
    CHECK(timers_fired);
    CHECK(sql.scalar(
              "SELECT count(*) FROM instances WHERE definition = 'order_lifecycle' AND state = 'done'") ==
          std::to_string(orders + 1));
    CHECK(sql.scalar("SELECT count(*) FROM parked") == "0");
    // Each timer fired once.
    CHECK(sql.scalar("SELECT count(*) FROM history WHERE event_type = 'saga.timer.payment_timeout'") == "2");
    // The log goes on after the copied sequences, 1..M without a gap; history ids after the
    // copied ones; every new event has its inbox row beside the copied ones.
    const auto last = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    CHECK(last > copied_outbox);
    CHECK(sql.scalar("SELECT count(*) FROM outbox") == std::to_string(last));
    CHECK(std::stoll(sql.scalar("SELECT min(id) FROM history WHERE recorded_ms > " +
                                std::to_string(f.t0 + 3600'000) + " AND key IN ('o-1', 'o-2')")) >
          copied_history);
    CHECK(std::stoll(sql.scalar("SELECT count(*) FROM inbox")) ==
          copied_inbox + static_cast<std::int64_t>(events.size()) + 2);  // + the two timers
    bool all_published = false;
    for (int i = 0; i < 200 && !all_published; ++i) {
      all_published = sql.scalar("SELECT count(*) FROM outbox WHERE published_ms IS NULL") == "0";
      if (!all_published) std::this_thread::sleep_for(50ms);
    }
    CHECK(all_published);
    REQUIRE(sagad.proc->signal(SIGTERM));
    INFO("sagad stderr: " << sagad.proc->err());
    CHECK(sagad.proc->wait_for(30s).code() == 0);
  }

  TEST_CASE("migrate-store refuses a running sagad and a schema that holds sagas unless --replace") {
    sqlite_file f;
    const auto schema = saga::test::unique_schema("refused");
    {
      saga::test::temp_dir run;
      auto sagad = saga::test::start_daemon({SAGAD_PATH, "--db", f.path, "--log-level", "warn"},
                                            saga::test::endpoints::any_loopback(), run.file("endpoints.json"),
                                            run.file("sagad.out"), run.file("sagad.err"));
      REQUIRE_MESSAGE(sagad, sagad.error);
      const auto r = f.migrate(schema);
      CHECK(r.code == 3);
      CHECK(r.err.find("sagactl: a sagad is running on " + f.path) == 0);
      CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
      REQUIRE(sagad.proc->signal(SIGTERM));
      CHECK(sagad.proc->wait_for(30s).code() == 0);
    }
    saga::test::sql_session sql(f.conninfo, "public");
    CHECK(sql.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '" + schema + "'") == "0");

    const auto first = f.migrate(schema);
    REQUIRE_MESSAGE(first.code == 0, first.err);
    CHECK(first.out.find("migrated " + f.path) == 0);
    const auto again = f.migrate(schema);
    CHECK(again.code == 2);
    CHECK(again.err.find("is not empty") != std::string::npos);
    CHECK(again.err.find("--replace") != std::string::npos);
    const auto replaced = f.migrate(schema, {"--replace", "--json"});
    REQUIRE_MESSAGE(replaced.code == 0, replaced.err);
    CHECK(replaced.json()["tables"]["instances"] == 6 + orders);
    saga::test::sql_session in_schema(f.conninfo, schema);
    CHECK(in_schema.scalar("SELECT count(*) FROM instances") == std::to_string(6 + orders));
  }

  TEST_CASE("migrate-store names an unreachable or malformed database without its password") {
    sqlite_file f;
    const std::string secret = "Sekrit-Pass-9";
    const auto unreachable = f.sagactl(
        {"migrate-store", "--from", f.path, "--to", "postgresql://saga:" + secret + "@127.0.0.1:1/orders"});
    CHECK(unreachable.code == 3);
    CHECK(unreachable.err.find("postgresql://saga@127.0.0.1:1/orders") != std::string::npos);
    CHECK(unreachable.err.find(secret) == std::string::npos);
    const auto malformed = f.sagactl({"migrate-store", "--from", f.path, "--to",
                                      "postgresql://saga:" + secret + "@127.0.0.1/orders?no_such_option=1"});
    CHECK(malformed.code == 2);
    CHECK(malformed.err.find(secret) == std::string::npos);
    const auto in_query = f.sagactl({"migrate-store", "--from", f.path, "--to",
                                     "postgresql://saga@127.0.0.1:1/orders?password=" + secret});
    CHECK(in_query.code == 3);
    CHECK(in_query.err.find(secret) == std::string::npos);
    const auto not_pg = f.sagactl({"migrate-store", "--from", f.path, "--to", f.dir.file("other.db")});
    CHECK(not_pg.code == 2);
    const auto no_file = f.sagactl({"migrate-store", "--from", f.dir.file("none.db"), "--to", f.uri});
    CHECK(no_file.code == 3);
    CHECK(no_file.err.find("no database at") != std::string::npos);
  }
}
