// Tests of what is particular to saga::postgres::store: its schema (namespace) in a shared
// database, its versioned migration, its connection and how failures read. The port's behaviour
// is the contract suite's (tests/store/), which runs over this store too.

#include "saga/postgres/store.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/records.hpp"
#include "support/number_outbox.hpp"
#include "support/postgres.hpp"

namespace {

using namespace saga::test;

saga::postgres::options in_schema(const std::string& schema) {
  saga::postgres::options o;
  o.conninfo = postgres_conninfo();
  o.schema = schema;
  return o;
}

// The tables of `schema`, by name.
std::vector<std::string> tables_of(const std::string& schema) {
  sql_session sql(postgres_conninfo(), "public");
  return sql.column("SELECT table_name FROM information_schema.tables WHERE table_schema = '" + schema +
                    "' ORDER BY table_name");
}

// Schema 4 back to 3: the kept counts and the index by creation dropped.
void undo_migration_4(sql_session& sql) {
  sql.exec("DROP TABLE kept_counts");
  sql.exec("DROP TABLE count_changes");
  sql.exec("UPDATE schema_version SET version = 3");
}

// Schema 3 back to 2: the outbox keyed by its sequence again (every row numbered, as schema 2
// numbered them in the writing transaction), no ids, no xids, no relay lease.
void undo_migration_3(sql_session& sql) {
  undo_migration_4(sql);
  sql.exec("DROP TABLE relay");
  sql.exec("DROP INDEX outbox_unnumbered");
  sql.exec("DROP INDEX outbox_sequence");
  sql.exec("ALTER TABLE outbox DROP COLUMN xid");
  sql.exec("ALTER TABLE outbox DROP CONSTRAINT outbox_pkey");
  sql.exec("ALTER TABLE outbox DROP COLUMN id");
  sql.exec("ALTER TABLE outbox ALTER COLUMN sequence SET NOT NULL");
  sql.exec("ALTER TABLE outbox ADD PRIMARY KEY (sequence)");
  sql.exec("UPDATE schema_version SET version = 2");
}

// Schema 2 back to 1: definitions keyed by name alone, the version columns dropped. Version 1's
// rows are the ones schema 1 had; other versions could not have been written by it.
void undo_migration_2(sql_session& sql) {
  sql.exec("DELETE FROM definitions WHERE version <> 1");
  sql.exec("ALTER TABLE definitions DROP CONSTRAINT definitions_pkey");
  sql.exec("ALTER TABLE definitions DROP COLUMN version");
  sql.exec("ALTER TABLE definitions ADD PRIMARY KEY (name)");
  sql.exec("ALTER TABLE instances DROP COLUMN definition_version");
  sql.exec("ALTER TABLE history DROP COLUMN definition_version");
  sql.exec("UPDATE schema_version SET version = 1");
}

}  // namespace

TEST_SUITE("postgres_store") {
  TEST_CASE("a new store creates its tables in the named schema and records the schema version") {
    const auto schema = unique_schema("created");
    CHECK(tables_of(schema).empty());
    saga::postgres::store s(in_schema(schema));
    CHECK(s.schema() == schema);
    CHECK(s.schema_version() == saga::postgres::store::current_schema);
    CHECK(tables_of(schema) == std::vector<std::string>{"count_changes", "dead_letters", "definitions",
                                                        "history", "inbox", "instances", "kept_counts",
                                                        "meta", "outbox", "parked", "relay",
                                                        "schema_version"});
    sql_session sql(postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT version FROM schema_version") ==
          std::to_string(saga::postgres::store::current_schema));
    // Nothing in the database's default schema.
    CHECK(sql.scalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == "0");
  }

  TEST_CASE("reopening an existing schema keeps its rows and does not migrate again") {
    const auto schema = unique_schema("reopened");
    {
      saga::postgres::store s(in_schema(schema));
      s.save_instance(instance("o-1", "placed"));
    }
    sql_session sql(postgres_conninfo(), schema);
    // A migration that ran again would fail on the existing tables or duplicate meta's rows.
    sql.exec("CREATE TABLE marker (x integer)");
    saga::postgres::store s(in_schema(schema));
    CHECK(s.schema_version() == saga::postgres::store::current_schema);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(sql.scalar("SELECT count(*) FROM schema_version") == "1");
    CHECK(sql.scalar("SELECT count(*) FROM meta") == "2");
    CHECK(sql.scalar("SELECT count(*) FROM marker") == "0");
  }

  // Several sagad will open one schema at the same moment (issue 17): the first creates it, the
  // others wait for its migration under the advisory lock and find it done.
  TEST_CASE("stores opening one new schema at the same time migrate it once") {
    const auto schema = unique_schema("racing");
    std::vector<std::string> errors(4);
    {
      std::vector<std::jthread> openers;
      for (auto& error : errors)
        openers.emplace_back([&] { error = error_of([&] { saga::postgres::store s(in_schema(schema)); }); });
    }
    CHECK(errors == std::vector<std::string>(4));
    sql_session sql(postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT count(*) FROM schema_version") == "1");
    CHECK(sql.scalar("SELECT count(*) FROM meta") == "2");
  }

  TEST_CASE("two stores in two schemas of one database do not see each other's rows") {
    saga::postgres::store a(in_schema(unique_schema("tenant_a")));
    saga::postgres::store b(in_schema(unique_schema("tenant_b")));
    a.begin();
    a.save_instance(instance("o-1", "placed"));
    a.insert_inbox(inbox("e-1"));
    CHECK(a.append_outbox(outbox("out-a")) == 1);
    a.commit();
    saga::test::number_outbox(a, 1);
    CHECK_FALSE(b.load_instance("order_lifecycle", "o-1"));
    CHECK_FALSE(b.find_ack("urn:shop", "e-1"));
    CHECK(b.unpublished(0, 10).empty());
    // Each has its own log (and relay lease): sequences start at 1 in both.
    b.begin();
    CHECK(b.append_outbox(outbox("out-b")) == 1);
    b.commit();
    saga::test::number_outbox(b, 1);
    CHECK(b.unpublished(0, 10).at(0).sequence == 1);
    CHECK(a.unpublished(0, 10).at(0).event_id == "out-a");
    CHECK(a.unpublished(0, 10).at(0).sequence == 1);
  }

  TEST_CASE("a schema name that needs quoting is a schema like any other") {
    const std::string schema = unique_schema("Saga \"Q\"; DROP");
    saga::postgres::store s(in_schema(schema));
    s.save_instance(instance("o-1", "placed"));
    CHECK(tables_of(schema).size() == 12);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
  }

  // Schema 2 on a schema 1 database: its definitions, sagas and history rows are on version 1.
  // Schema 2 numbered the outbox in the writing transaction (the counter row): its rows keep their
  // sequences (and become their ids, which the history rows name), and what is written after the
  // migration is numbered by the relay after them.
  TEST_CASE("a schema 2 outbox migrates to relay numbering and keeps its sequences and history links") {
    const auto schema = unique_schema("schema_2");
    {
      saga::postgres::store old(in_schema(schema));
      old.begin();
      old.save_instance(instance("o-1", "placed", 1));
      const auto first = old.append_outbox(outbox("out-1", "o-1"));
      const auto second = old.append_outbox(outbox("out-2", "o-1"));
      auto h = history_row("o-1", "a1");
      h.outbox_first = first;
      h.outbox_last = second;
      old.append_history(h);
      old.commit();
      saga::test::number_outbox(old, 2);
    }
    sql_session sql(postgres_conninfo(), schema);
    undo_migration_3(sql);  // the layout and rows schema 2 wrote
    sql.exec("UPDATE meta SET value = 2 WHERE key = 'outbox_sequence'");
    REQUIRE(sql.scalar("SELECT version FROM schema_version") == "2");

    saga::postgres::store s(in_schema(schema));
    CHECK(s.schema_version() == saga::postgres::store::current_schema);
    CHECK(sql.scalar("SELECT string_agg(id || ':' || sequence, ',' ORDER BY id) FROM outbox") == "1:1,2:2");
    s.begin();
    CHECK(s.append_outbox(outbox("out-3", "o-1")) == 3);  // ids go on after the migrated rows
    s.commit();
    CHECK(saga::test::number_outbox(s, 1) == 1);
    const auto rows = s.unpublished(0, 10);
    REQUIRE(rows.size() == 3);
    CHECK(rows[2].sequence == 3);
    CHECK(rows[2].event_id == "out-3");
  }

  TEST_CASE("a schema 3 database migrates: the kept counts start from the rows") {
    const auto schema = unique_schema("schema_3");
    {
      saga::postgres::store old(in_schema(schema));
      old.begin();
      for (const auto* key : {"o-1", "o-2", "o-3"}) old.save_instance(instance(key, "placed"));
      old.save_instance(instance("o-4", "paid", 2));
      old.arm_timer("order_lifecycle", "o-1", "payment_timeout", 9000);
      old.insert_inbox(inbox("e-1"));
      old.append_outbox(outbox("out-1"));
      old.commit();
    }
    sql_session sql(postgres_conninfo(), schema);
    undo_migration_4(sql);
    REQUIRE(sql.scalar("SELECT version FROM schema_version") == "3");
    saga::postgres::store s(in_schema(schema));
    CHECK(s.schema_version() == saga::postgres::store::current_schema);
    CHECK(sql.column("SELECT counted || ':' || state || '=' || n FROM kept_counts ORDER BY 1") ==
          std::vector<std::string>{"armed_timers:=1", "inbox:=1", "outbox:=1", "sagas:paid=1",
                                   "sagas:placed=3"});
    CHECK(sql.scalar("SELECT count(*) FROM count_changes") == "0");
  }

  // Several sagad write one schema at once (issue 17): each statement appends its change to the
  // counts instead of updating a shared row, and any store folds the changes about once a second.
  TEST_CASE("stores writing at once keep the counts right and fold their changes about once a second") {
    const auto schema = unique_schema("counting");
    { saga::postgres::store create(in_schema(schema)); }
    constexpr int per_writer = 60;
    std::vector<std::string> errors(2);
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w)
      writers.emplace_back([&, w] {
        try {
          saga::postgres::store s(in_schema(schema));
          for (int i = 0; i < per_writer; ++i) {
            const auto key = "w" + std::to_string(w) + "-" + std::to_string(i);
            s.begin();
            s.save_instance(instance(key, "placed"));
            s.arm_timer("order_lifecycle", key, "payment_timeout", 9000);
            s.insert_inbox(inbox("in-" + key));
            s.commit();
            s.begin();
            s.save_instance(instance(key, i % 3 == 0 ? "cancelled" : "paid", 2));
            s.disarm_timer("order_lifecycle", key, "payment_timeout");
            s.append_outbox(outbox("out-" + key, key));
            s.commit();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the run spans 3 s or more
          }
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(w)] = e.what();
        }
      });
    for (auto& t : writers) t.join();
    CHECK(errors == std::vector<std::string>(2));
    sql_session sql(postgres_conninfo(), schema);
    const auto total = [&](const std::string& counted) {
      return sql.scalar("SELECT coalesce(sum(n), 0) FROM (SELECT n FROM kept_counts WHERE counted = '" +
                        counted + "' UNION ALL SELECT n FROM count_changes WHERE counted = '" + counted +
                        "') AS c");
    };
    CHECK(total("sagas") == std::to_string(2 * per_writer));
    CHECK(total("inbox") == std::to_string(2 * per_writer));
    CHECK(total("outbox") == std::to_string(2 * per_writer));
    CHECK(total("armed_timers") == "0");
    CHECK(sql.column(
              "SELECT state || '=' || sum(n) FROM (SELECT state, n FROM kept_counts WHERE counted = 'sagas'"
              " UNION ALL SELECT state, n FROM count_changes WHERE counted = 'sagas') AS c"
              " GROUP BY state HAVING sum(n) <> 0 ORDER BY state") ==
          std::vector<std::string>{"cancelled=40", "paid=80"});
    // Folded as they went: the writers ran for 3 s or more (7 change rows a saga), so most are in
    // kept_counts, and what is left is at most about a second's worth of each writer's.
    CHECK(std::stoll(sql.scalar("SELECT coalesce(sum(abs(n)), 0) FROM kept_counts")) > 0);
    CHECK(std::stoll(sql.scalar("SELECT count(*) FROM count_changes")) < 2 * per_writer * 4);
  }

  TEST_CASE("a schema 1 database migrates: definitions and sagas and history rows are on version 1") {
    const auto schema = unique_schema("schema_1");
    {
      saga::postgres::store old(in_schema(schema));
      old.save_definition({"order_lifecycle", 1, "f1", R"({"name":"order_lifecycle"})", 5});
      old.save_instance(instance("o-1", "placed", 1));
      old.begin();
      old.append_history(history_row("o-1", "a1"));
      old.commit();
    }
    sql_session sql(postgres_conninfo(), schema);
    undo_migration_3(sql);
    undo_migration_2(sql);  // the layout and rows schema 1 wrote
    REQUIRE(sql.scalar("SELECT version FROM schema_version") == "1");
    REQUIRE(sql.scalar("SELECT count(*) FROM information_schema.columns WHERE table_schema = '" + schema +
                       "' AND (column_name = 'definition_version' OR"
                       " (table_name = 'definitions' AND column_name = 'version'))") == "0");

    saga::postgres::store s(in_schema(schema));
    CHECK(s.schema_version() == saga::postgres::store::current_schema);
    CHECK(sql.scalar("SELECT count(*) FROM schema_version") == "1");
    const auto d = s.load_definition("order_lifecycle", 1);
    REQUIRE(d);
    CHECK(d->version == 1);
    CHECK(d->fingerprint == "f1");
    CHECK(d->graph == R"({"name":"order_lifecycle"})");
    CHECK(d->registered_ms == 5);
    CHECK_FALSE(s.load_definition("order_lifecycle", 2));
    const auto i = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(i);
    CHECK(i->definition_version == 1);
    CHECK(i->state == "placed");
    CHECK(s.running_versions("order_lifecycle") ==
          std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 1}});
    CHECK(sql.scalar("SELECT definition_version FROM history") == "1");
    // Version 2 stored beside version 1, and new rows carry their versions.
    s.save_definition({"order_lifecycle", 2, "f2", R"({"name":"order_lifecycle"})", 6});
    CHECK(s.load_definition("order_lifecycle", 1)->fingerprint == "f1");
    CHECK(s.load_definition("order_lifecycle", 2)->fingerprint == "f2");
    auto moved = instance("o-1", "paid", 2);
    moved.definition_version = 2;
    s.save_instance(moved);
    CHECK(s.load_instance("order_lifecycle", "o-1")->definition_version == 2);
  }

  TEST_CASE("a schema with a newer version is refused with a clear message") {
    const auto schema = unique_schema("newer");
    { saga::postgres::store s(in_schema(schema)); }
    sql_session sql(postgres_conninfo(), schema);
    sql.exec("UPDATE schema_version SET version = 99");
    const std::string expected = "schema \"" + schema + "\" version 99 is newer than this build supports (" +
                                 std::to_string(saga::postgres::store::current_schema) + ")";
    CHECK_THROWS_WITH_AS(saga::postgres::store{in_schema(schema)}, expected.c_str(), saga::store_error);
    CHECK(sql.scalar("SELECT version FROM schema_version") == "99");  // refused, not touched
  }

  TEST_CASE("bad options are refused before connecting and name the problem") {
    auto o = in_schema("");
    CHECK_THROWS_WITH_AS(saga::postgres::store{o}, doctest::Contains("schema is empty"),
                         std::invalid_argument);
    o.schema = std::string(64, 's');
    CHECK_THROWS_WITH_AS(saga::postgres::store{o}, doctest::Contains("longer than 63 bytes"),
                         std::invalid_argument);
    o.schema = "saga";
    o.conninfo = "host=/tmp port";
    const auto error = error_of([&] { saga::postgres::store{o}; });
    CHECK(error.find("not a valid connection string") != std::string::npos);
    CHECK(error.find("port") != std::string::npos);
    o.conninfo = "postgresql://[::1";
    CHECK_THROWS_AS(saga::postgres::store{o}, std::invalid_argument);
  }

  TEST_CASE("an unreachable server is a store_error naming where the store tried to connect") {
    auto o = in_schema("saga");
    o.conninfo = "host=127.0.0.1 port=1 dbname=orders connect_timeout=5";
    const auto refused = error_of([&] { saga::postgres::store{o}; });
    CAPTURE(refused);
    CHECK(refused.rfind("connect to PostgreSQL (host=127.0.0.1 port=1 dbname=orders): ", 0) == 0);
    CHECK(refused.find("refused") != std::string::npos);
    CHECK_THROWS_AS(saga::postgres::store{o}, saga::store_error);

    o.conninfo = "host=/nonexistent/socket/dir dbname=orders";
    const auto missing = error_of([&] { saga::postgres::store{o}; });
    CAPTURE(missing);
    CHECK(missing.find("host=/nonexistent/socket/dir") != std::string::npos);
    CHECK(missing.find("No such file or directory") != std::string::npos);

    // A server that is there, a database that is not.
    o.conninfo = postgres_conninfo() + " dbname=no_such_database";
    const auto no_database = error_of([&] { saga::postgres::store{o}; });
    CAPTURE(no_database);
    CHECK(no_database.find("dbname=no_such_database") != std::string::npos);
    CHECK(no_database.find("does not exist") != std::string::npos);
  }

  // PostgreSQL fails the whole transaction after an error; SQLite would commit the statements
  // that worked. A commit must not report the implicit rollback as success.
  TEST_CASE("commit of a transaction that failed throws and nothing of it is written") {
    saga::postgres::store s(in_schema(unique_schema("failed")));
    s.insert_inbox(inbox("e-1"));
    s.begin();
    s.append_outbox(outbox("x"));
    CHECK_THROWS_AS(s.insert_inbox(inbox("e-1")), saga::store_error);
    CHECK(s.in_transaction());
    CHECK_THROWS_WITH_AS(s.commit(), "commit: the transaction had failed and was rolled back",
                         saga::store_error);
    CHECK_FALSE(s.in_transaction());
    CHECK(s.unpublished(0, 10).empty());
    // The failed transaction left no gap: the next row is numbered 1.
    s.append_outbox(outbox("y"));
    saga::test::number_outbox(s, 1);
    CHECK(s.unpublished(0, 10).at(0).sequence == 1);
  }

  TEST_CASE("a store whose connection was closed by the server reconnects at the next begin") {
    const auto schema = unique_schema("reconnect");
    auto o = in_schema(schema);
    o.conninfo += " application_name=" + schema;  // how the server's session is found below
    saga::postgres::store s(o);
    s.save_instance(instance("o-1", "placed"));
    sql_session sql(postgres_conninfo(), schema);
    const std::string its_session = "FROM pg_stat_activity WHERE application_name = '" + schema + "'";
    CHECK(sql.scalar("SELECT count(pg_terminate_backend(pid)) " + its_session) == "1");
    for (int i = 0; i < 500 && sql.scalar("SELECT count(*) " + its_session) != "0"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // The terminated connection is found out by the next call, which fails and names itself.
    CHECK_THROWS_WITH_AS(s.load_instance("order_lifecycle", "o-1"), doctest::Contains("load_instance: "),
                         saga::store_error);
    s.begin();
    s.save_instance(instance("o-2", "placed"));
    s.commit();
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(s.load_instance("order_lifecycle", "o-2"));
  }

  // Pipeline mode: in a transaction of begin(), a write whose result is not needed is queued and
  // goes with the next call that needs a result, in one round trip; its failure is thrown by that
  // call, naming the write (store.hpp, write-behind).
  TEST_CASE("a queued write's failure is thrown by the next call that reads and names the write") {
    saga::postgres::store s(in_schema(unique_schema("pipelined")));
    auto bad = instance("o-1", "placed");
    bad.data = "{\"x\": \"\xff\"}";  // not UTF-8: PostgreSQL refuses it
    s.begin();
    s.lock_sagas({"o-1"});
    s.save_instance(bad);  // queued: nothing has failed yet
    s.append_history(history_row("o-1", "e-1"));
    const auto error = error_of([&] { (void)s.load_instance("order_lifecycle", "o-2"); });
    CHECK(error.rfind("save_instance: ", 0) == 0);
    CHECK(error.find("UTF8") != std::string::npos);
    CHECK(s.in_transaction());
    s.rollback();
    CHECK_FALSE(s.in_transaction());
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-1"));

    // The same write's failure at the commit, when nothing is read after it: nothing is written.
    s.begin();
    s.save_instance(instance("o-3", "placed"));
    s.save_instance(bad);
    CHECK_THROWS_WITH_AS(s.commit(), doctest::Contains("save_instance: "), saga::store_error);
    s.rollback();
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-3"));
    s.begin();  // and the connection goes on
    s.save_instance(instance("o-3", "placed"));
    s.commit();
    CHECK(s.load_instance("order_lifecycle", "o-3"));
  }

  // parked_of reads whether the parked table is empty once per transaction; a park in the same
  // transaction is seen.
  TEST_CASE("parked_of in a transaction sees what the transaction parked after an empty read") {
    saga::postgres::store s(in_schema(unique_schema("parked_once")));
    s.begin();
    CHECK(s.parked_of("order_lifecycle", "o-1").empty());  // the table is empty
    s.park(parked("o-1", "e-1", 10));
    CHECK(s.parked_of("order_lifecycle", "o-1").size() == 1);
    s.commit();
    s.begin();
    CHECK(s.parked_of("order_lifecycle", "o-1").size() == 1);
    CHECK(s.parked_of("order_lifecycle", "o-2").empty());
    s.rollback();
  }
}
