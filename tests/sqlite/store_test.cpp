// Tests of what is particular to saga::sqlite::store, against real database files in a temporary
// folder: files, WAL, synchronous levels, the shared connection, migrations from older schemas,
// the counts triggers keep, the work each call does. The port's behaviour is the contract suite's
// (tests/store/), which runs over this store too.

#include "saga/sqlite/store.hpp"
#include "saga/clock.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/reader.hpp"

#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/records.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

using namespace saga::test;

saga::sqlite::options at(const std::string& path) {
  saga::sqlite::options o;
  o.path = path;
  return o;
}

// `batches` transactions of `rows` outbox rows with a 4,000-byte payload each: about a page a row.
void append_big_rows(saga::sqlite::store& s, int batches, int rows) {
  for (int batch = 0; batch < batches; ++batch) {
    s.begin();
    for (int i = 0; i < rows; ++i) {
      auto r = saga::test::outbox("big-" + std::to_string(batch) + "-" + std::to_string(i));
      r.payload.assign(4000, 'x');
      s.append_outbox(r);
    }
    s.commit();
  }
}

std::int64_t count_rows(SQLite::Database& db, const std::string& table) {
  // Table names come from the test itself, never from data.
  return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
}

// The statements run on the instances table, counted by SQLite's own trace while it lives (or
// until stop()): reads (any statement reading FROM instances) and row writes.
struct instance_statements {
  explicit instance_statements(saga::sqlite::store& s) : db(s.database().getHandle()) {
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, &instance_statements::on_statement, this);
  }
  ~instance_statements() { stop(); }
  instance_statements(const instance_statements&) = delete;
  instance_statements& operator=(const instance_statements&) = delete;
  void stop() { sqlite3_trace_v2(db, 0, nullptr, nullptr); }

  static int on_statement(unsigned, void* ctx, void* stmt, void*) {
    const std::string sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
    auto& self = *static_cast<instance_statements*>(ctx);
    if (sql.find("FROM instances") != std::string::npos) ++self.reads;
    if (sql.starts_with("UPDATE instances") || sql.starts_with("INSERT INTO instances")) ++self.writes;
    return 0;
  }

  sqlite3* db;
  int reads = 0, writes = 0;
};

// Schema 12 back to 11: each row's published_ms and outbox_unpublished back, filled from the
// published prefix; publications and its view dropped. meta's last_published stays (schema 11
// kept it too).
void undo_migration_12(SQLite::Database& db) {
  db.exec(
      "UPDATE outbox SET schema_11_published_ms = (SELECT v.published_ms FROM outbox_published AS v"
      " WHERE v.sequence = outbox.sequence)");
  db.exec("DROP VIEW outbox_published");
  db.exec("ALTER TABLE outbox RENAME COLUMN schema_11_published_ms TO published_ms");
  db.exec("DROP TABLE publications");
  db.exec("CREATE INDEX outbox_unpublished ON outbox (sequence) WHERE published_ms IS NULL");
  db.exec("PRAGMA user_version = 11");
}

// Schema 11 back to 10: the kept counts and the index by creation dropped.
void undo_migration_11(SQLite::Database& db) {
  undo_migration_12(db);
  db.exec("DROP TABLE saga_counts");
  db.exec("DROP TABLE table_rows");
  db.exec("DROP TABLE received_minutes");
  db.exec("DROP INDEX instances_by_created");
  db.exec("DROP INDEX instances_by_state_created");
  db.exec("PRAGMA user_version = 10");
}

// Schema 10 back to 9: definitions keyed by name alone, the version columns dropped.
void undo_migration_10(SQLite::Database& db) {
  undo_migration_11(db);
  db.exec(
      "CREATE TABLE definitions_9 (name TEXT PRIMARY KEY NOT NULL, fingerprint TEXT NOT NULL, graph TEXT NOT "
      "NULL, registered_ms INTEGER NOT NULL) WITHOUT ROWID");
  db.exec("INSERT INTO definitions_9 SELECT name, fingerprint, graph, registered_ms FROM definitions");
  db.exec("DROP TABLE definitions");
  db.exec("ALTER TABLE definitions_9 RENAME TO definitions");
  db.exec("ALTER TABLE instances DROP COLUMN definition_version");
  db.exec("ALTER TABLE history DROP COLUMN definition_version");
  db.exec("PRAGMA user_version = 9");
}

// Schema 9 back to 8: history's trace context and extensions dropped.
void undo_migration_9(SQLite::Database& db) {
  undo_migration_10(db);
  for (const char* column : {"traceparent", "tracestate", "extensions"})
    db.exec(std::string("ALTER TABLE history DROP COLUMN ") + column);
  db.exec("PRAGMA user_version = 8");
}

// Schema 8 back to 7: the timers table back, filled from the instance rows; their columns and
// instances_due dropped.
void undo_migration_8(SQLite::Database& db) {
  undo_migration_9(db);
  db.exec(
      "CREATE TABLE timers (definition TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, due_ms INTEGER,"
      " generation INTEGER NOT NULL, PRIMARY KEY (definition, key, name)) WITHOUT ROWID");
  db.exec("CREATE INDEX timers_due_by_definition ON timers (definition, due_ms) WHERE due_ms IS NOT NULL");
  db.exec(
      "INSERT INTO timers SELECT i.definition, i.key, j.key, j.value ->> 0, j.value ->> 1"
      " FROM instances AS i, json_each(i.timers) AS j");
  db.exec("DROP INDEX instances_due");
  db.exec("ALTER TABLE instances DROP COLUMN timers");
  db.exec("ALTER TABLE instances DROP COLUMN next_due_ms");
  db.exec("PRAGMA user_version = 7");
}

// Schema 7 back to 6: the history chain dropped, history_by_saga back.
void undo_migration_7(SQLite::Database& db) {
  undo_migration_8(db);
  db.exec("ALTER TABLE history DROP COLUMN previous");
  db.exec("ALTER TABLE instances DROP COLUMN last_history");
  db.exec("CREATE INDEX history_by_saga ON history (definition, key, id)");
  db.exec("CREATE INDEX timers_due ON timers (due_ms) WHERE due_ms IS NOT NULL");
  db.exec("PRAGMA user_version = 6");
}

// Schema 6 back to 5: the index of finished sagas and finished_ms dropped, instances_by_state back.
void undo_migration_6(SQLite::Database& db) {
  undo_migration_7(db);
  db.exec("DROP INDEX instances_finished");
  db.exec("ALTER TABLE instances DROP COLUMN finished_ms");
  db.exec("CREATE INDEX instances_by_state ON instances (definition, state, state_since_ms)");
  db.exec("PRAGMA user_version = 5");
}

// Schema 5 back to 4: the counts per sender, their triggers and the index by sender dropped.
void undo_migration_5(SQLite::Database& db) {
  undo_migration_6(db);
  for (const char* trigger : {"sender_rows_emptied", "parked_by_sender_in", "parked_by_sender_out",
                              "dead_letters_by_sender_in", "dead_letters_by_sender_out"})
    db.exec(std::string("DROP TRIGGER ") + trigger);
  db.exec("DROP INDEX dead_letters_by_sender");
  db.exec("DROP TABLE sender_rows");
  db.exec("PRAGMA user_version = 4");
}

// Schema 4 back to 3: the sender columns dropped.
void undo_migration_4(SQLite::Database& db) {
  undo_migration_5(db);
  for (const char* table : {"history", "parked", "dead_letters"})
    db.exec(std::string("ALTER TABLE ") + table + " DROP COLUMN sender");
  db.exec("PRAGMA user_version = 3");
}

// Schema 3 undone on a current database, which leaves the schema 2 layout.
void undo_migration_3(SQLite::Database& db) {
  undo_migration_4(db);
  for (const char* trigger :
       {"dead_letters_counted_in", "dead_letters_counted_out", "parked_counted_in", "parked_counted_out"})
    db.exec(std::string("DROP TRIGGER ") + trigger);
  for (const char* index : {"dead_letters_by_event", "dead_letters_by_last", "timers_due_by_definition",
                            "instances_by_state", "inbox_by_received"})
    db.exec(std::string("DROP INDEX ") + index);
  db.exec("DELETE FROM meta WHERE key IN ('dead_letter_rows', 'parked_rows')");
  for (const char* column : {"count", "last_ms", "truncated"})
    db.exec(std::string("ALTER TABLE dead_letters DROP COLUMN ") + column);
  db.exec("PRAGMA user_version = 2");
}

// A database file at an older schema: made new, taken back to `version` by `undo`, then given
// `rows` (SQL in that schema's layout). A store that opens it again migrates it.
void old_schema_file(const std::string& path, int version, void (*undo)(SQLite::Database&),
                     std::initializer_list<const char*> rows) {
  saga::sqlite::store s(at(path));
  auto& db = s.database();
  undo(db);
  REQUIRE(db.execAndGet("PRAGMA user_version").getInt() == version);
  for (const char* sql : rows) db.exec(sql);
}

struct dead_letter_row {
  std::int64_t count = 0, created_ms = 0, last_ms = 0;
  bool truncated = false;
  std::string reason;
};

dead_letter_row dead_letter_of(SQLite::Database& db, std::int64_t id) {
  SQLite::Statement q(db,
                      "SELECT count, created_ms, last_ms, truncated, reason FROM dead_letters WHERE id = ?");
  q.bind(1, static_cast<std::int64_t>(id));
  REQUIRE(q.executeStep());
  return {q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64(),
          q.getColumn(3).getInt() != 0, q.getColumn(4).getString()};
}

// sender_rows as "sender:parked/dead_letters", by sender.
std::vector<std::string> sender_counts(SQLite::Database& db) {
  SQLite::Statement q(db, "SELECT sender, parked, dead_letters FROM sender_rows ORDER BY sender");
  std::vector<std::string> out;
  while (q.executeStep())
    out.push_back(q.getColumn(0).getString() + ":" + std::to_string(q.getColumn(1).getInt64()) + "/" +
                  std::to_string(q.getColumn(2).getInt64()));
  return out;
}

std::vector<std::string> dead_letter_ids(SQLite::Database& db) {
  SQLite::Statement q(db, "SELECT event_id FROM dead_letters ORDER BY event_id");
  std::vector<std::string> out;
  while (q.executeStep()) out.push_back(q.getColumn(0).getString());
  return out;
}

// Virtual machine steps run by the connection's prepared statements since the last call: the
// work a call did, independent of the machine's speed. A full scan of N rows costs several
// steps per row; an index seek a handful.
std::int64_t vm_steps(SQLite::Database& db) {
  std::int64_t steps = 0;
  for (sqlite3_stmt* st = sqlite3_next_stmt(db.getHandle(), nullptr); st;
       st = sqlite3_next_stmt(db.getHandle(), st))
    steps += sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1);
  return steps;
}

}  // namespace

TEST_SUITE("sqlite_store") {
  TEST_CASE("opening a new file creates the schema and sets user_version to the current schema") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    CHECK(s.schema_version() == 12);

    auto& db = s.database();
    for (const char* table : {"instances", "history", "inbox", "outbox", "dead_letters", "parked",
                              "definitions", "meta", "sender_rows"}) {
      CAPTURE(table);
      CHECK(db.tableExists(table));
    }
    CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 2);  // FULL
    CHECK(db.execAndGet("PRAGMA busy_timeout").getInt() == 5000);
  }

  TEST_CASE("memory statistics can only be turned off before SQLite initializes") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("t.db")));  // SQLite is initialized from here on
    const auto used = sqlite3_memory_used();
    CHECK(used > 0);
    CHECK_FALSE(saga::sqlite::disable_memory_statistics());
    CHECK(sqlite3_memory_used() > 0);  // still counted: nothing changed
  }

  // Schema 1 found a saga's outbox rows through an index by saga; schema 2 through the range
  // each transition records in its history row. A version-1 file is made here from a new one
  // by undoing migration 2 (columns dropped, index back), then reopened.
  TEST_CASE("a schema 1 database migrates: history rows name the outbox rows they caused") {
    temp_dir dir;
    const auto h = [](const std::string& key, const std::string& event_id, const std::string& outcome) {
      return history_row(key, event_id, outcome);
    };
    auto caused = [](const std::string& id, const std::string& key, const std::string& cause) {
      auto r = outbox(id, key);
      r.payload = R"({"causationid":")" + cause + R"(","id":")" + id + R"("})";
      return r;
    };
    {
      saga::sqlite::store s(at(dir.file("saga.db")));
      s.begin();
      s.append_history(h("o-1", "e-1", "transitioned"));
      CHECK(s.append_outbox(caused("a", "o-1", "e-1")) == 1);
      CHECK(s.append_outbox(caused("b", "o-1", "e-1")) == 2);
      s.append_history(h("o-2", "e-2", "transitioned"));
      CHECK(s.append_outbox(caused("c", "o-2", "e-2")) == 3);
      s.append_history(h("o-1", "e-3", "ignored"));
      s.append_history(h("o-1", "e-4", "transitioned"));  // emitted nothing
      CHECK(s.append_outbox(caused("d", "o-1", "e-unknown")) == 4);
      s.commit();
      auto& db = s.database();
      undo_migration_3(db);
      db.exec("ALTER TABLE history DROP COLUMN outbox_first");
      db.exec("ALTER TABLE history DROP COLUMN outbox_last");
      db.exec("CREATE INDEX outbox_by_saga ON outbox (definition, key)");
      db.exec("PRAGMA user_version = 1");
    }
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_by_saga'").getInt() == 0);
    SQLite::Statement q(db,
                        "SELECT event_id, coalesce(outbox_first, 0), coalesce(outbox_last, 0) FROM history"
                        " ORDER BY id");
    std::vector<std::string> rows;
    while (q.executeStep())
      rows.push_back(q.getColumn(0).getString() + ":" + std::to_string(q.getColumn(1).getInt64()) + "-" +
                     std::to_string(q.getColumn(2).getInt64()));
    CHECK(rows == std::vector<std::string>{"e-1:1-2", "e-2:3-3", "e-3:0-0", "e-4:0-0"});
  }

  TEST_CASE("a database with a newer schema version is refused with a clear message") {
    temp_dir dir;
    {
      SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      db.exec("PRAGMA user_version = 99");
    }
    const std::string expected = "database schema version 99 is newer than this build supports (12)";
    CHECK_THROWS_WITH_AS(saga::sqlite::store{at(dir.file("saga.db"))}, expected.c_str(), saga::store_error);

    auto ro = at(dir.file("saga.db"));
    ro.read_only = true;
    CHECK_THROWS_WITH_AS(saga::sqlite::store{ro}, expected.c_str(), saga::store_error);

    SQLite::Database host(dir.file("saga.db"), SQLite::OPEN_READWRITE);
    CHECK_THROWS_WITH_AS(saga::sqlite::store{host}, expected.c_str(), saga::store_error);
    // Refused, not touched.
    CHECK(host.execAndGet("PRAGMA user_version").getInt() == 99);
    CHECK_FALSE(host.tableExists("instances"));
  }

  TEST_CASE("a read-only store reads but refuses writes and never migrates") {
    temp_dir dir;
    {
      saga::sqlite::store s(at(dir.file("saga.db")));
      s.save_instance(instance("o-1", "paid"));
    }
    auto ro = at(dir.file("saga.db"));
    ro.read_only = true;
    saga::sqlite::store s(ro);
    REQUIRE(s.load_instance("order_lifecycle", "o-1"));
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "paid");

    const auto error = error_of([&] { s.save_instance(instance("o-2", "placed")); });
    CHECK(error.rfind("save_instance: ", 0) == 0);
    CHECK(error.find("readonly") != std::string::npos);
    CHECK_THROWS_AS(s.append_outbox(outbox("x")), saga::store_error);
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-2"));

    // A file that was never migrated cannot be read, and a read-only store will not migrate it.
    {
      SQLite::Database empty(dir.file("empty.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      empty.exec("CREATE TABLE unrelated (x)");
    }
    ro.path = dir.file("empty.db");
    CHECK_THROWS_AS(saga::sqlite::store{ro}, saga::store_error);
    SQLite::Database check(dir.file("empty.db"));
    CHECK_FALSE(check.tableExists("instances"));

    // A missing file is an error too, not a new database.
    ro.path = dir.file("missing.db");
    const auto missing = error_of([&] { saga::sqlite::store{ro}; });
    CHECK(missing.find("missing.db") != std::string::npos);
    CHECK_FALSE(fs::exists(dir.file("missing.db")));
  }

  TEST_CASE("the synchronous option accepts FULL and NORMAL and OFF only") {
    temp_dir dir;
    auto o = at(dir.file("saga.db"));
    o.synchronous = "EXTRA";
    const auto error = error_of([&] { saga::sqlite::store{o}; });
    CHECK(error.find("synchronous") != std::string::npos);
    CHECK(error.find("FULL, NORMAL or OFF") != std::string::npos);
    CHECK(error.find("EXTRA") != std::string::npos);
    CHECK_THROWS_AS(saga::sqlite::store{o}, std::invalid_argument);
    CHECK_FALSE(fs::exists(dir.file("saga.db")));  // validated before the file is created

    o.synchronous = "FULL; DROP TABLE instances";
    CHECK_THROWS_AS(saga::sqlite::store{o}, std::invalid_argument);

    o.synchronous = "NORMAL";
    {
      saga::sqlite::store s(o);
      CHECK(s.database().execAndGet("PRAGMA synchronous").getInt() == 1);
    }
    o.synchronous = "off";
    {
      saga::sqlite::store s(o);
      CHECK(s.database().execAndGet("PRAGMA synchronous").getInt() == 0);
    }

    o.synchronous = "FULL";
    o.busy_timeout_ms = -1;
    CHECK_THROWS_AS(saga::sqlite::store{o}, std::invalid_argument);
  }

  TEST_CASE("the page cache is 32 MiB unless the options say otherwise and at least 64 KiB") {
    temp_dir dir;
    auto o = at(dir.file("saga.db"));
    {
      saga::sqlite::store s(o);
      CHECK(s.database().execAndGet("PRAGMA cache_size").getInt() == -32 * 1024);
    }
    o.page_cache_kib = 2048;
    {
      saga::sqlite::store s(o);
      CHECK(s.database().execAndGet("PRAGMA cache_size").getInt() == -2048);
    }
    o.page_cache_kib = 63;
    const auto error = error_of([&] { saga::sqlite::store{o}; });
    CHECK(error.find("page_cache_kib") != std::string::npos);
    CHECK_THROWS_AS(saga::sqlite::store{o}, std::invalid_argument);
  }

  TEST_CASE("a full disk surfaces as a store_error naming the operation") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    // Cap the file at its current size: the next page it needs is "disk full".
    const auto pages = s.database().execAndGet("PRAGMA page_count").getInt64();
    s.database().exec("PRAGMA max_page_count = " + std::to_string(pages));
    auto big = outbox("big");
    big.payload.assign(64 * 1024, 'x');
    s.begin();
    CHECK_THROWS_WITH_AS(s.append_outbox(big), "append_outbox: database or disk is full", saga::store_error);
    s.rollback();
    CHECK(s.first_retained_sequence() == 0);
  }

  // The writer's commits only wake the checkpoint thread; the pages reach the database file
  // without the writer checkpointing. Without the thread, SQLite's own checkpoint copies them
  // inside each commit that leaves more than checkpoint_pages in the log (each here writes about
  // 45); at 0 pages nothing checkpoints and they stay in the log. The log (the migrations' pages,
  // then about 200) must stay below 16 x checkpoint_pages: past it the writer checkpoints itself
  // even with the thread.
  TEST_CASE("the write-ahead log is checkpointed by the background thread or at checkpoint_pages") {
    struct setting {
      bool background;
      int pages;
    };
    for (const setting each : {setting{true, 20}, setting{false, 20}, setting{true, 0}, setting{false, 0}}) {
      // Variables, not structured bindings: clang 14 cannot capture those in CAPTURE's lambda.
      const bool background = each.background;
      const int pages = each.pages;
      CAPTURE(background);
      CAPTURE(pages);
      temp_dir dir;
      auto o = at(dir.file("saga.db"));
      o.background_checkpoint = background;
      o.checkpoint_pages = pages;
      saga::sqlite::store s(o);
      const auto before = fs::file_size(o.path);
      append_big_rows(s, 4, 40);  // about 200 pages in the log
      const auto copied = [&] { return fs::file_size(o.path) >= before + 150 * 4096; };
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (background && pages > 0 && !copied() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (pages > 0)
        CHECK(copied());  // without the thread, no waiting: the commits copied them
      else
        CHECK(fs::file_size(o.path) == before);
      CHECK(s.unpublished(0, 1000).size() == 160);
    }
  }

  TEST_CASE("checkpoint_pages must not be negative") {
    temp_dir dir;
    auto o = at(dir.file("saga.db"));
    o.checkpoint_pages = -1;
    CHECK_THROWS_WITH_AS(saga::sqlite::store{o},
                         "saga::sqlite::options::checkpoint_pages must not be negative",
                         std::invalid_argument);
    CHECK_FALSE(fs::exists(o.path));
  }

  TEST_CASE("the background checkpointer runs on a thread named saga-checkpoint") {
    // The threads of this process with that name, from /proc/self/task/<tid>/comm.
    auto named = [] {
      int n = 0;
      for (const auto& task : fs::directory_iterator("/proc/self/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        if (std::getline(comm, name) && name == "saga-checkpoint") ++n;
      }
      return n;
    };
    const int before = named();
    for (const bool background : {true, false}) {
      CAPTURE(background);
      temp_dir dir;
      auto o = at(dir.file("saga.db"));
      o.background_checkpoint = background;
      saga::sqlite::store s(o);
      CHECK(named() == before + (background ? 1 : 0));
    }
    CHECK(named() == before);
  }

  // Checkpoints run off the writer's thread, yet the log must still restart from its beginning
  // once copied back (the writer also checkpoints itself past 16 x the threshold): many commits
  // leave a log of a few batches, not of everything written. How many batches depends on how
  // the two threads interleave (the writer's own checkpoint does nothing while the thread's
  // runs), so the bound is against the same writes with no checkpoint at all: 50 batches of
  // about 14 pages (a batch is 10 rows of 4 KiB).
  TEST_CASE("with background checkpoints the log stays bounded") {
    const auto log_after_writes = [](saga::sqlite::store& s, const std::string& path) {
      append_big_rows(s, 50, 10);
      CHECK(s.unpublished(0, 1000).size() == 500);
      return fs::file_size(path + "-wal");
    };
    temp_dir dir;
    auto unbounded = at(dir.file("unbounded.db"));
    unbounded.checkpoint_pages = 0;  // never checkpointed
    saga::sqlite::store plain(unbounded);
    const auto everything = log_after_writes(plain, unbounded.path);

    auto o = at(dir.file("saga.db"));
    o.checkpoint_pages = 4;  // the writer steps in past 64 pages
    saga::sqlite::store s(o);
    const auto bounded = log_after_writes(s, o.path);
    MESSAGE("log of everything written: ", everything, " bytes, with checkpoints: ", bounded);
    CHECK(bounded * 2 < everything);  // under load up to a quarter of it was seen
  }

  // Schema 12: the published rows are a prefix of the log, and a mark only ever extends it.
  TEST_CASE("a mark that would leave an unpublished row before it is not recorded") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    s.begin();
    for (const char* id : {"a", "b", "c", "d"}) s.append_outbox(outbox(id));
    s.commit();
    s.mark_published(2, 3, 10);  // 1 is unpublished: nothing is recorded
    CHECK(s.last_published_sequence() == 0);
    CHECK(s.unpublished(0, 10).size() == 4);
    CHECK(s.published_range(1, 10).empty());
    s.mark_published(1, 2, 20);
    s.mark_published(2, 3, 30);  // overlaps the prefix: 3 is new, 2 keeps its first time
    CHECK(s.last_published_sequence() == 3);
    std::vector<std::string> times;
    for (const auto& r : s.published_range(1, 10))
      times.push_back(std::to_string(r.sequence) + "@" + std::to_string(r.published_ms.value_or(0)));
    CHECK(times == std::vector<std::string>{"1@20", "2@20", "3@30"});
    REQUIRE(s.unpublished(0, 10).size() == 1);
    CHECK(s.unpublished(0, 10)[0].sequence == 4);
    CHECK(s.unpublished(4, 10).empty());
    CHECK(count_rows(s.database(), "publications") == 2);
  }

  TEST_CASE("commit_count counts only commits that happen") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.commit_count() == 0);  // the migration's commit is not counted

    s.begin();
    s.save_instance(instance("o-1", "placed"));
    s.append_outbox(outbox("a"));
    s.commit();
    CHECK(s.commit_count() == 1);

    s.begin();
    s.save_instance(instance("o-2", "placed"));
    s.rollback();
    CHECK(s.commit_count() == 1);

    // Reads outside a transaction commit nothing.
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(s.unpublished(0, 10).size() == 1);
    CHECK(s.commit_count() == 1);

    // A write outside begin()/commit() is its own (autocommit) transaction.
    s.mark_published(1, 1, 10);
    CHECK(s.commit_count() == 2);

    // Several events in one batch are one commit (group commit).
    s.begin();
    for (int i = 0; i < 5; ++i) s.append_outbox(outbox(std::to_string(i)));
    s.commit();
    CHECK(s.commit_count() == 3);
  }

  TEST_CASE("the shared-connection constructor commits and rolls back with the host's transaction") {
    temp_dir dir;
    SQLite::Database host(dir.file("saga.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    host.exec("PRAGMA journal_mode = WAL");
    host.exec("CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER)");

    saga::sqlite::store s(host);
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    CHECK(&s.database() == &host);
    CHECK(host.tableExists("outbox"));
    CHECK(host.tableExists("orders"));

    {
      SQLite::Transaction t(host, SQLite::TransactionBehavior::IMMEDIATE);
      host.exec("INSERT INTO orders VALUES ('o-1', 100)");
      CHECK(s.in_transaction());
      s.insert_inbox(inbox("e-1"));
      s.save_instance(instance("o-1", "placed"));
      s.append_outbox(outbox("out-1"));
      // The host gives up: its rows and the saga's go together.
    }
    CHECK_FALSE(s.in_transaction());
    CHECK(count_rows(host, "orders") == 0);
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-1"));
    CHECK_FALSE(s.find_ack("urn:shop", "e-1"));
    CHECK(s.unpublished(0, 10).empty());

    const auto commits_before = s.commit_count();
    {
      SQLite::Transaction t(host, SQLite::TransactionBehavior::IMMEDIATE);
      host.exec("INSERT INTO orders VALUES ('o-1', 100)");
      s.save_instance(instance("o-1", "placed"));
      CHECK(s.append_outbox(outbox("out-1")) == 1);  // the rolled-back sequence is free again
      t.commit();
    }
    CHECK(s.commit_count() == commits_before + 1);
    CHECK(count_rows(host, "orders") == 1);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(s.unpublished(0, 10).size() == 1);
  }

  TEST_CASE("the shared-connection constructor migrates inside an open host transaction") {
    temp_dir dir;
    SQLite::Database host(dir.file("saga.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    {
      SQLite::Transaction t(host, SQLite::TransactionBehavior::IMMEDIATE);
      host.exec("CREATE TABLE orders (id TEXT PRIMARY KEY)");
      saga::sqlite::store s(host);  // nests its migration in a savepoint
      CHECK(s.in_transaction());
      s.save_instance(instance("o-1", "placed"));
      t.commit();
    }
    saga::sqlite::store s(host);
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(host.tableExists("orders"));
  }

  // Issue 15: in a transaction the store began, a saga's instance, timer and history-link changes
  // are one row write, made at the commit (or before any statement that reads instances itself).
  TEST_CASE("a transaction writes each changed saga row once and every read sees the changes first") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    SQLite::Database peek(dir.file("saga.db"), SQLite::OPEN_READONLY);
    auto stored_instances = [&] { return count_rows(s.database(), "instances"); };

    s.begin();
    s.save_instance(instance("o-1", "placed"));
    s.append_history(history_row("o-1", "e-1"));
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 9000) == 1);
    s.save_instance(instance("o-1", "paid", 2));
    s.append_history(history_row("o-1", "e-2", "transitioned", 2));
    CHECK(stored_instances() == 0);  // held: nothing written for the saga yet
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "paid");
    // A method that reads instances by SQL writes them first.
    const auto timers = s.timers_of("order_lifecycle", "o-1");
    REQUIRE(timers.size() == 1);
    CHECK(timers[0].due_ms == 9000);
    CHECK(stored_instances() == 1);
    s.disarm_timer("order_lifecycle", "o-1", "payment_timeout");
    s.commit();

    SQLite::Statement row(
        peek,
        "SELECT i.state, i.version, i.next_due_ms IS NULL, i.created_ms, h.event_id, p.event_id"
        " FROM instances AS i JOIN history AS h ON h.id = i.last_history"
        " JOIN history AS p ON p.id = h.previous WHERE i.key = 'o-1'");
    REQUIRE(row.executeStep());
    CHECK(row.getColumn(0).getString() == "paid");
    CHECK(row.getColumn(1).getInt64() == 2);
    CHECK(row.getColumn(2).getInt() == 1);  // disarmed after the settle, written at the commit
    CHECK(row.getColumn(3).getInt64() == 1000);
    CHECK(row.getColumn(4).getString() == "e-2");  // the chain: newest e-2, then e-1
    CHECK(row.getColumn(5).getString() == "e-1");
  }

  // The statements an engine batch runs on the instances table, counted by SQLite's own trace:
  // each saga's row is read at most once and written once, whatever the transition arms, disarms or
  // appends to its history; a saga the store's previous commit wrote is not read again.
  TEST_CASE("an engine batch reads and writes each saga's instance row once") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    saga::system_clock clock;
    saga::engine eng(s, clock);
    eng.add(saga::definitions::order_lifecycle());
    instance_statements seen(s);
    std::vector<saga::event> placed, paid;
    for (int i = 0; i < 20; ++i) {
      placed.push_back(saga::test::placed("o-" + std::to_string(i)));  // arms payment_timeout
      paid.push_back(saga::test::paid("o-" + std::to_string(i)));      // disarms it
    }
    for (const auto& a : eng.handle_batch(placed)) REQUIRE(a.outcome == saga::ack_outcome::transitioned);
    CHECK(seen.reads == 20);  // none exists yet
    CHECK(seen.writes == 20);
    seen.reads = seen.writes = 0;
    for (const auto& a : eng.handle_batch(paid)) REQUIRE(a.outcome == saga::ack_outcome::transitioned);
    CHECK(seen.reads == 0);  // kept from the first batch's commit
    CHECK(seen.writes == 20);
    seen.stop();
    // What was written is whole: state, the disarmed timer, and a two-row history chain.
    CHECK(s.load_instance("order_lifecycle", "o-7")->state == "paid");
    CHECK(s.timers_of("order_lifecycle", "o-7").empty());
    CHECK(count_rows(s.database(), "history") == 40);
    CHECK(s.database()
              .execAndGet("SELECT count(*) FROM history AS h JOIN instances AS i ON h.id = i.last_history"
                          " JOIN history AS p ON p.id = h.previous")
              .getInt64() == 20);
  }

  // What the store keeps of committed rows between its transactions is what the database holds:
  // another connection's commit, a write outside begin()/commit(), a rollback and a purge each
  // make it read the row again (or find none).
  TEST_CASE("committed saga rows are kept between transactions until something else changes them") {
    temp_dir dir;
    const auto path = dir.file("saga.db");
    saga::sqlite::store s(at(path));
    const auto state_in_transaction = [&s] {
      s.begin();
      const auto found = s.load_instance("order_lifecycle", "o-1");
      s.commit();
      return found ? found->state : std::string("none");
    };
    s.begin();
    s.save_instance(instance("o-1", "placed"));
    s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 9000);
    s.commit();
    CHECK(s.kept_saga_rows() == 1);
    instance_statements seen(s);
    CHECK(state_in_transaction() == "placed");
    CHECK(seen.reads == 0);

    // Another connection commits a change to it: read again.
    SQLite::Database(path, SQLite::OPEN_READWRITE).exec("UPDATE instances SET state = 'paid', version = 2");
    CHECK(state_in_transaction() == "paid");
    CHECK(seen.reads == 1);
    // ... and only once: kept again since.
    CHECK(state_in_transaction() == "paid");
    CHECK(seen.reads == 1);

    // Saved outside begin()/commit() (a transaction of its own).
    s.save_instance(instance("o-1", "shipped", 3));
    CHECK(state_in_transaction() == "shipped");
    // Changed in a transaction rolled back: what is stored holds.
    s.begin();
    s.save_instance(instance("o-1", "cancelled", 4));
    s.disarm_timer("order_lifecycle", "o-1", "payment_timeout");
    s.rollback();
    CHECK(state_in_transaction() == "shipped");
    s.begin();
    CHECK(s.load_instance("order_lifecycle", "o-1")->version == 3);
    CHECK(s.timers_of("order_lifecycle", "o-1").size() == 1);
    s.commit();

    // Finished and purged: gone, not recalled.
    auto done = instance("o-1", "done", 5);
    done.finished = true;
    s.begin();
    s.save_instance(done);
    s.disarm_timer("order_lifecycle", "o-1", "payment_timeout");
    s.commit();
    CHECK(s.purge_finished("order_lifecycle", {"done"}, 1'000'000, 10) == 1);
    CHECK(state_in_transaction() == "none");
  }

  TEST_CASE("the committed rows kept are bounded in number and in bytes") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    constexpr std::size_t generation = 1024;  // store.cpp: kept_rows
    s.begin();
    for (std::size_t i = 0; i < 3 * generation; ++i)
      s.save_instance(instance("o-" + std::to_string(i), "placed"));
    s.commit();
    CHECK(s.kept_saga_rows() >= generation);
    CHECK(s.kept_saga_rows() <= 2 * generation);
    // Ten sagas of 1 MiB of data each: a generation holds 1 MiB of texts.
    saga::sqlite::store big(at(dir.file("big.db")));
    big.begin();
    for (int i = 0; i < 10; ++i) {
      auto r = instance("b-" + std::to_string(i), "placed");
      r.data = R"({"blob":")" + std::string(1024 * 1024, 'x') + R"("})";
      big.save_instance(r);
    }
    big.commit();
    CHECK(big.kept_saga_rows() >= 1);
    CHECK(big.kept_saga_rows() <= 4);
  }

  TEST_CASE("a rolled-back savepoint or transaction forgets the saga rows it changed") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    s.begin();
    s.save_instance(instance("o-1", "placed"));
    s.savepoint();
    s.save_instance(instance("o-1", "paid", 2));
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 9000) == 1);
    s.rollback_to_savepoint();
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "placed");
    CHECK(s.timers_of("order_lifecycle", "o-1").empty());
    s.save_instance(instance("o-2", "placed"));
    s.rollback();
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-1"));
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-2"));

    s.begin();
    s.save_instance(instance("o-1", "placed"));
    s.commit();
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "placed");
    // Committed behind the store's back while it holds a change: refused, not lost silently.
    s.begin();
    s.save_instance(instance("o-1", "paid", 2));
    CHECK_THROWS(s.database().exec("COMMIT"));
    CHECK_FALSE(s.in_transaction());
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "placed");
  }

  TEST_CASE("in the host's transaction every call writes its saga row at once") {
    temp_dir dir;
    SQLite::Database host(dir.file("saga.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    saga::sqlite::store s(host);
    SQLite::Transaction t(host, SQLite::TransactionBehavior::IMMEDIATE);
    s.save_instance(instance("o-1", "placed"));
    CHECK(count_rows(host, "instances") == 1);
    s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 9000);
    CHECK(host.execAndGet("SELECT next_due_ms FROM instances").getInt64() == 9000);
    // The host changes the row itself: the store reads it again rather than keeping it.
    host.exec("UPDATE instances SET state = 'cancelled'");
    CHECK(s.load_instance("order_lifecycle", "o-1")->state == "cancelled");
    t.commit();
  }

  TEST_CASE("the store removes its commit hook from a shared connection it no longer uses") {
    temp_dir dir;
    SQLite::Database host(dir.file("saga.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    {
      saga::sqlite::store s(host);
      s.save_instance(instance("o-1", "placed"));
      CHECK(s.commit_count() == 1);
    }
    // Would write through a dangling pointer if the hook were still there (ASan catches it).
    host.exec("CREATE TABLE after_store (x)");
    host.exec("INSERT INTO after_store VALUES (1)");
    CHECK(count_rows(host, "after_store") == 1);
  }

  // Schema 6 on a schema 5 file: a saga in a terminal state of its stored graph is finished since
  // it entered that state; the others are not, and their transitions write no index entry.
  TEST_CASE("a schema 5 database migrates: sagas in a terminal state become finished sagas to purge") {
    temp_dir dir;
    old_schema_file(
        dir.file("saga.db"), 5, undo_migration_6,
        {"INSERT INTO definitions (name, fingerprint, graph, registered_ms) VALUES ('order_lifecycle', 'f',"
         " '{\"states\":[\"placed\",\"done\",\"cancelled\"],\"terminal\":[\"done\",\"cancelled\"]}', 1)",
         "INSERT INTO instances (definition, key, state, data, version, fingerprint, correlation_id, "
         "created_ms,"
         " updated_ms, state_since_ms) VALUES"
         " ('order_lifecycle', 'o-1', 'done', '{}', 3, 'f', 'c1', 10, 50, 50),"
         " ('order_lifecycle', 'o-2', 'placed', '{}', 1, 'f', 'c2', 10, 60, 60),"
         " ('order_lifecycle', 'o-3', 'cancelled', '{}', 2, 'f', 'c3', 10, 70, 70),"
         " ('other', 'o-4', 'done', '{}', 2, 'f', 'c4', 10, 80, 80)"});
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'instances_by_state'").getInt() ==
          0);
    CHECK(db.execAndGet("SELECT group_concat(key || ':' || coalesce(finished_ms, '-'), ' ') FROM"
                        " (SELECT key, finished_ms FROM instances ORDER BY key)")
              .getString() == "o-1:50 o-2:- o-3:70 o-4:-");
    CHECK(s.load_instance("order_lifecycle", "o-1")->finished);
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-2")->finished);
    // 'other' has no stored graph: its 'done' is not known to be terminal.
    CHECK_FALSE(s.load_instance("other", "o-4")->finished);
    CHECK(s.purge_finished("order_lifecycle", {"done", "cancelled", "placed"}, 65, 10) == 1);
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-1"));
    CHECK(s.load_instance("order_lifecycle", "o-2"));
    CHECK(s.load_instance("order_lifecycle", "o-3"));
  }

  // Schema 7 on a schema 6 file: each saga's history becomes a chain from its instance, in the
  // order the rows were written, and the index by saga is gone; reading, counting and purging a
  // saga's history go through the chain, and new rows extend it.
  TEST_CASE("a schema 6 database migrates: each saga's history is chained from its instance") {
    temp_dir dir;
    const auto h = [](const std::string& key, const std::string& event_id, std::int64_t version) {
      return history_row(key, event_id, "transitioned", version);
    };
    {
      saga::sqlite::store s(at(dir.file("saga.db")));
      s.begin();
      // Interleaved, as sagas' events arrive; o-3 has history but no instance row.
      for (const char* key : {"o-1", "o-2"}) s.save_instance(instance(key, "placed"));
      s.append_history(h("o-1", "a1", 1));
      s.append_history(h("o-2", "b1", 1));
      s.append_history(h("o-3", "c1", 1));
      s.append_history(h("o-1", "a2", 2));
      s.append_history(h("o-2", "b2", 2));
      s.append_history(h("o-1", "a3", 3));
      s.commit();
      undo_migration_7(s.database());  // the layout and rows schema 6 wrote
    }
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name IN ('history_by_saga', 'timers_due')")
              .getInt() == 0);
    saga::sqlite::reader r(db);
    auto ids = [&](const std::string& key) {
      std::string out;
      for (const auto& row : r.history("order_lifecycle", key)) out += row.event_id + " ";
      return out;
    };
    CHECK(ids("o-1") == "a1 a2 a3 ");
    CHECK(ids("o-2") == "b1 b2 ");
    CHECK(ids("o-3").empty());  // no instance: not reachable, as the release never wrote such rows

    // New rows extend the chain.
    s.begin();
    s.append_history(h("o-2", "b3", 3));
    s.commit();
    CHECK(ids("o-2") == "b1 b2 b3 ");

    // One saga's history is read without walking the others' (5,000 rows of other sagas).
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
        " INSERT INTO history (definition, key, version, event_id, event_source, event_type, event_time,"
        " event_data, from_state, to_state, outcome, recorded_ms) SELECT 'order_lifecycle', 'x-' || i, 1,"
        " 'x' || i, 's', 't', 'now', '{}', 'a', 'b', 'transitioned', i FROM n");
    vm_steps(db);
    CHECK(r.history("order_lifecycle", "o-2").size() == 3);
    CHECK(r.follow_on_events("order_lifecycle", "o-2").empty());
    CHECK(vm_steps(db) < 500);
    db.exec("DELETE FROM history WHERE key LIKE 'x-%'");

    // Counting and purging a finished saga go through the chain and touch no other saga's rows.
    auto done = instance("o-1", "done", 4);
    done.finished = true;
    done.state_since_ms = 50;
    s.save_instance(done);
    const auto counted = r.count_finished("order_lifecycle", {"done"}, 60);
    CHECK(counted.sagas == 1);
    CHECK(counted.history == 3);
    CHECK(s.purge_finished("order_lifecycle", {"done"}, 60, 10) == 1);
    CHECK(ids("o-2") == "b1 b2 b3 ");
    CHECK(count_rows(db, "history") == 4);  // o-2's three and o-3's one
    CHECK(db.execAndGet("SELECT count(*) FROM history WHERE key = 'o-1'").getInt() == 0);
  }

  // Schema 8 on a schema 7 file: each saga's timers move into its instance row with their due
  // times and generations (a disarmed one too: re-arming continues its count); a timer of a saga
  // without an instance row has nothing to fire into and is not carried over; the table is gone.
  TEST_CASE("a schema 7 database migrates: each saga's timers move into its instance row") {
    temp_dir dir;
    old_schema_file(
        dir.file("saga.db"), 7, undo_migration_8,
        {"INSERT INTO instances (definition, key, state, data, version, fingerprint, correlation_id,"
         " created_ms, updated_ms, state_since_ms) VALUES"
         " ('order_lifecycle', 'o-1', 'placed', '{}', 1, 'f', 'c1', 10, 10, 10),"
         " ('order_lifecycle', 'o-2', 'placed', '{}', 1, 'f', 'c2', 10, 10, 10),"
         " ('payment_notice', 'p-1', 'waiting', '{}', 1, 'f', 'c3', 10, 10, 10)",
         "INSERT INTO timers (definition, key, name, due_ms, generation) VALUES"
         " ('order_lifecycle', 'o-1', 'payment_timeout', 500, 3),"
         " ('order_lifecycle', 'o-1', 'shipment_deadline', NULL, 2),"
         " ('order_lifecycle', 'o-2', 'payment_timeout', NULL, 1),"
         " ('payment_notice', 'p-1', 'reminder', 200, 1),"
         " ('order_lifecycle', 'gone', 'payment_timeout', 100, 1)"});
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    CHECK_FALSE(db.tableExists("timers"));
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'instances_due'").getInt() == 1);
    const auto o1 = s.timers_of("order_lifecycle", "o-1");
    REQUIRE(o1.size() == 1);
    CHECK(o1[0].name == "payment_timeout");
    CHECK(o1[0].due_ms == 500);
    CHECK(o1[0].generation == 3);
    CHECK(s.timers_of("order_lifecycle", "o-2").empty());
    const auto due = s.due_timers(1000, 10, {"order_lifecycle", "payment_notice"});
    REQUIRE(due.size() == 2);
    CHECK(due[0].key == "p-1");
    CHECK(due[1].key == "o-1");
    CHECK(s.due_timers_elsewhere(1000, {"payment_notice"}) ==
          std::vector<std::pair<std::string, std::int64_t>>{{"order_lifecycle", 1}});
    // Disarmed timers kept their generation.
    CHECK(s.arm_timer("order_lifecycle", "o-1", "shipment_deadline", 700) == 3);
    CHECK(s.arm_timer("order_lifecycle", "o-2", "payment_timeout", 700) == 2);
    CHECK(db.execAndGet("SELECT count(*) FROM instances WHERE key = 'gone'").getInt() == 0);
  }

  // Schema 12 on a schema 11 file: each row's published_ms becomes the end of the published
  // prefix and one publication per run of equal times; a mark past the first unpublished row
  // is dropped (that row is published again); the prefix's times stay each row's.
  TEST_CASE("a schema 11 database migrates: the published marks become the published prefix") {
    temp_dir dir;
    const std::string path = dir.file("saga.db");
    {
      saga::sqlite::store old(at(path));
      old.begin();
      for (const char* id : {"a", "b", "c", "d", "e", "f", "g"}) old.append_outbox(saga::test::outbox(id));
      old.commit();
      auto& db = old.database();
      undo_migration_12(db);
      REQUIRE(db.execAndGet("PRAGMA user_version").getInt() == 11);
      // 4 was published "before" 3 (the clock stepped back), 6 past the unpublished 5.
      db.exec(
          "UPDATE outbox SET published_ms = CASE sequence WHEN 1 THEN 100 WHEN 2 THEN 100 WHEN 3 THEN 200"
          " WHEN 4 THEN 150 WHEN 6 THEN 300 END");
      db.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_published', 6)");
    }
    saga::sqlite::store s(at(path));
    auto& db = s.database();
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    CHECK(s.last_published_sequence() == 4);
    const auto published = [&] {
      SQLite::Statement q(db, "SELECT sequence, coalesce(published_ms, 0) FROM outbox_published ORDER BY 1");
      std::vector<std::string> out;
      while (q.executeStep()) out.push_back(q.getColumn(0).getString() + ":" + q.getColumn(1).getString());
      return out;
    };
    CHECK(published() == std::vector<std::string>{"1:100", "2:100", "3:200", "4:150", "5:0", "6:0", "7:0"});
    CHECK(count_rows(db, "publications") == 3);
    // The old column is renamed and left as it was (not written since): by hand,
    // outbox.published_ms fails rather than read a column nothing updates.
    CHECK(db.execAndGet("SELECT count(*) FROM pragma_table_info('outbox') WHERE name = 'published_ms'")
              .getInt() == 0);
    CHECK(db.execAndGet("SELECT schema_11_published_ms FROM outbox WHERE sequence = 3").getInt64() == 200);
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_unpublished'").getInt() ==
          0);
    std::vector<std::int64_t> pending;
    for (const auto& r : s.unpublished(0, 10)) pending.push_back(r.sequence);
    CHECK(pending == std::vector<std::int64_t>{5, 6, 7});

    s.mark_published(5, 7, 400);
    CHECK(published() ==
          std::vector<std::string>{"1:100", "2:100", "3:200", "4:150", "5:400", "6:400", "7:400"});
    CHECK(s.prune(180, 0, 100) == 2);  // 1 and 2; 3 was published at 200, so 4 stays behind it
    CHECK(s.first_retained_sequence() == 3);
    CHECK(published() == std::vector<std::string>{"3:200", "4:150", "5:400", "6:400", "7:400"});
    CHECK(count_rows(db, "publications") == 3);

    // A log published and pruned to nothing keeps its end.
    const std::string empty = dir.file("empty.db");
    {
      saga::sqlite::store old(at(empty));
      undo_migration_12(old.database());
      old.database().exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_published', 50)");
    }
    saga::sqlite::store e(at(empty));
    CHECK(e.last_published_sequence() == 50);
    CHECK(count_rows(e.database(), "publications") == 0);
  }

  // Schema 11 on a schema 10 file: the counts are counted once by the migration, then kept.
  TEST_CASE("a schema 10 database migrates: the counts by state and of the tables start from the rows") {
    temp_dir dir;
    {
      saga::sqlite::store old(at(dir.file("saga.db")));
      saga::system_clock clock;
      saga::engine eng(old, clock);
      eng.add(saga::definitions::order_lifecycle());
      for (const auto& order : {"o-1", "o-2", "o-3"}) REQUIRE(eng.handle(saga::test::placed(order)).ok());
      REQUIRE(eng.handle(saga::test::paid("o-2")).ok());
      undo_migration_11(old.database());
      REQUIRE(old.database().execAndGet("PRAGMA user_version").getInt() == 10);
    }
    saga::sqlite::store s(at(dir.file("saga.db")));
    auto& db = s.database();
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    SQLite::Statement q(db, "SELECT state, sagas FROM saga_counts ORDER BY state");
    std::vector<std::string> counts;
    while (q.executeStep()) counts.push_back(q.getColumn(0).getString() + "=" + q.getColumn(1).getString());
    CHECK(counts == std::vector<std::string>{"paid=1", "placed=2"});
    CHECK(db.execAndGet("SELECT inbox FROM table_rows").getInt64() == 4);
    CHECK(db.execAndGet("SELECT outbox FROM table_rows").getInt64() == count_rows(db, "outbox"));
    CHECK(db.execAndGet("SELECT armed_timers FROM table_rows").getInt64() == 2);  // payment_timeout x2
    CHECK(db.execAndGet("SELECT sum(events) FROM received_minutes").getInt64() == 4);
    CHECK(db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'instances_by_created'").getInt() ==
          1);
  }

  // Schema 10 on a schema 9 file: definitions keyed by (name, version), everything before on 1.
  TEST_CASE("a schema 9 database migrates: definitions and sagas and history rows are on version 1") {
    temp_dir dir;
    {
      saga::sqlite::store old(at(dir.file("saga.db")));
      old.save_definition({"order_lifecycle", 1, "f1", R"({"name":"order_lifecycle"})", 5});
      old.save_instance(instance("o-1", "placed", 1));
      old.begin();
      old.append_history(history_row("o-1", "a1"));
      old.commit();
      undo_migration_10(old.database());  // the layout and rows schema 9 wrote
      REQUIRE(old.database().execAndGet("PRAGMA user_version").getInt() == 9);
    }
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    const auto d = s.load_definition("order_lifecycle", 1);
    REQUIRE(d);
    CHECK(d->fingerprint == "f1");
    CHECK(d->registered_ms == 5);
    CHECK_FALSE(s.load_definition("order_lifecycle", 2));
    CHECK(s.load_instance("order_lifecycle", "o-1")->definition_version == 1);
    CHECK(s.running_versions("order_lifecycle") ==
          std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 1}});
    CHECK(s.database().execAndGet("SELECT definition_version FROM history").getInt64() == 1);
    // Version 2 stored beside version 1.
    s.save_definition({"order_lifecycle", 2, "f2", R"({"name":"order_lifecycle"})", 6});
    CHECK(s.load_definition("order_lifecycle", 1)->fingerprint == "f1");
    CHECK(s.load_definition("order_lifecycle", 2)->fingerprint == "f2");
  }

  // Schema 9 on a schema 8 file: the history rows stay, with no trace context and no extensions
  // (empty, as an event without them writes), and new rows keep theirs; the saga's trace is its
  // newest row's.
  TEST_CASE("a schema 8 database migrates: history rows gain an empty trace context and extensions") {
    temp_dir dir;
    {
      saga::sqlite::store old(at(dir.file("saga.db")));
      old.save_instance(instance("o-1", "placed", 1));
      old.begin();
      old.append_history(history_row("o-1", "a1"));
      old.commit();
      undo_migration_9(old.database());  // the layout and rows schema 8 wrote
    }
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    saga::sqlite::reader r(s.database());
    auto h = r.history("order_lifecycle", "o-1");
    REQUIRE(h.size() == 1);
    CHECK(h[0].event_id == "a1");
    CHECK(h[0].traceparent.empty());
    CHECK(h[0].tracestate.empty());
    CHECK(h[0].extensions.empty());
    CHECK(s.saga_trace("order_lifecycle", "o-1").traceparent.empty());

    auto row = history_row("o-1", "a2", "transitioned", 2);
    row.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    row.tracestate = "rojo=1";
    row.extensions = R"({"region":"eu"})";
    s.begin();
    s.append_history(row);
    s.commit();
    h = r.history("order_lifecycle", "o-1");
    REQUIRE(h.size() == 2);
    CHECK(h[1].traceparent == row.traceparent);
    CHECK(h[1].tracestate == "rojo=1");
    CHECK(h[1].extensions == R"({"region":"eu"})");
    const auto t = s.saga_trace("order_lifecycle", "o-1");
    CHECK(t.traceparent == row.traceparent);
    CHECK(t.tracestate == "rojo=1");
    CHECK(s.saga_trace("order_lifecycle", "nope").traceparent.empty());
  }

  // The purge walks the partial index: the plan names it, and a saga saved unfinished again (an
  // operator moved it on) leaves the index.
  TEST_CASE("finished sagas are found through instances_finished and an unfinished save takes a saga out") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    auto& db = s.database();
    SQLite::Statement plan(
        db,
        "EXPLAIN QUERY PLAN SELECT key FROM instances WHERE definition = 'd' AND state = 's'"
        " AND finished_ms IS NOT NULL AND finished_ms < 5 ORDER BY finished_ms LIMIT 3");
    std::string detail;
    while (plan.executeStep()) detail += plan.getColumn(3).getString() + ";";
    CAPTURE(detail);
    CHECK(detail.find("INDEX instances_finished (definition=? AND state=?") != std::string::npos);

    auto done = instance("o-1", "done", 1);
    done.state_since_ms = 100;
    done.finished = true;
    s.save_instance(done);
    CHECK(db.execAndGet("SELECT finished_ms FROM instances WHERE key = 'o-1'").getInt64() == 100);
    CHECK(
        db.execAndGet("SELECT count(*) FROM instances INDEXED BY instances_finished"
                      " WHERE definition = 'order_lifecycle' AND state = 'done' AND finished_ms IS NOT NULL")
            .getInt() == 1);
    auto reopened = instance("o-1", "placed", 2);
    reopened.state_since_ms = 200;
    s.save_instance(reopened);
    CHECK(db.execAndGet("SELECT finished_ms IS NULL FROM instances WHERE key = 'o-1'").getInt() == 1);
    CHECK(s.purge_finished("order_lifecycle", {"done", "placed"}, 1000, 10) == 0);
  }

  // Schema 5 on a schema 4 file: the counts per sender start from the rows that were there.
  TEST_CASE("a schema 4 database migrates: parked events and dead letters are counted per sender") {
    temp_dir dir;
    old_schema_file(
        dir.file("saga.db"), 4, undo_migration_5,
        {"INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms, sender) VALUES"
         " ('order_lifecycle', 'o-1', 'p-1', 'urn:shop', 'payment.succeeded', '{}', 10, 'payments'),"
         " ('order_lifecycle', 'o-1', 'p-2', 'urn:shop', 'payment.succeeded', '{}', 11, 'payments'),"
         " ('order_lifecycle', 'o-2', 'p-3', 'urn:shop', 'payment.succeeded', '{}', 12, 'orders'),"
         " ('order_lifecycle', 'o-3', 'p-4', 'urn:shop', 'payment.succeeded', '{}', 13, '')",
         "INSERT INTO dead_letters (event_id, source, type, subject, reason, payload, created_ms, last_ms,"
         " sender) VALUES"
         " ('e-1', 'urn:shop', 'order.placed', 'o-1', 'r', '{}', 100, 100, 'orders'),"
         " ('e-2', 'urn:shop', 'order.placed', 'o-2', 'r', '{}', 200, 200, 'orders'),"
         " ('e-3', 'urn:shop', 'order.placed', 'o-3', 'r', '{}', 300, 300, 'orders'),"
         " ('e-4', 'urn:shop', 'order.placed', 'o-4', 'r', '{}', 400, 400, 'payments')"});
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    CHECK(
        db.execAndGet("SELECT count(*) FROM sqlite_master WHERE name = 'dead_letters_by_sender'").getInt() ==
        1);
    CHECK(sender_counts(db) == std::vector<std::string>{":1/0", "orders:1/3", "payments:2/1"});
    CHECK(s.count_parked_by_sender("payments") == 2);
    CHECK(s.count_parked_by_sender("orders") == 1);
    CHECK(s.count_parked_by_sender("") == 1);
    CHECK(s.count_parked_by_sender("nobody") == 0);
    CHECK(s.count_parked_total() == 4);
    // The cap per sender works on the rows that were there: orders keeps its newest.
    CHECK(s.prune_dead_letters(0, 1, 10) == 2);
    CHECK(dead_letter_ids(db) == std::vector<std::string>{"e-3", "e-4"});
    // And the triggers count what comes after.
    auto p = parked("o-2", "p-5", 20);
    p.sender = "orders";
    s.park(p);
    CHECK(s.count_parked_by_sender("orders") == 2);
    CHECK(sender_counts(db) == std::vector<std::string>{":1/0", "orders:2/1", "payments:2/1"});
  }

  // Schema 4 on a schema 3 file: rows written before keep an empty sender; new rows keep theirs.
  TEST_CASE("a schema 3 database migrates: history and parked rows and dead letters record their sender") {
    temp_dir dir;
    old_schema_file(dir.file("saga.db"), 3, undo_migration_4,
                    {"INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms) VALUES"
                     " ('order_lifecycle', 'o-1', 'p-1', 'urn:shop', 'payment.succeeded', '{}', 10)"});
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    s.begin();
    auto p = parked("o-1", "p-2", 20);
    p.sender = "payments";
    s.park(p);
    auto d = dead_letter("e-9", "{}", 500);
    d.sender = "intruder";
    const auto dl_id = s.add_dead_letter(d);
    saga::history_record h;
    h.definition = "order_lifecycle";
    h.key = "o-1";
    h.version = 1;
    h.event_id = "e-1";
    h.event_source = "urn:shop";
    h.event_type = "order.placed";
    h.from_state = "new";
    h.to_state = "placed";
    h.outcome = "transitioned";
    h.sender = "orders";
    s.append_history(h);
    s.commit();
    const auto of = s.parked_of("order_lifecycle", "o-1");
    REQUIRE(of.size() == 2);
    CHECK(of[0].sender.empty());
    CHECK(of[1].sender == "payments");
    auto& db = s.database();
    CHECK(db.execAndGet("SELECT sender FROM history WHERE event_id = 'e-1'").getString() == "orders");
    CHECK(db.execAndGet("SELECT sender FROM dead_letters WHERE id = " + std::to_string(dl_id)).getString() ==
          "intruder");
  }

  // Schema 3 on a schema 2 file: made here from a new one by undoing migration 3, with dead
  // letters and parked events written in the old layout, then reopened.
  TEST_CASE("a schema 2 database migrates: dead letters get a count and their last rejection") {
    temp_dir dir;
    old_schema_file(
        dir.file("saga.db"), 2, undo_migration_3,
        {"INSERT INTO dead_letters (event_id, source, type, subject, reason, payload, created_ms) VALUES"
         " ('e-1', 'urn:shop', 'order.placed', 'o-1', 'old reason', '{\"a\":1}', 100),"
         " ('e-2', 'urn:shop', 'order.placed', 'o-2', 'old reason', '{\"a\":2}', 200)",
         "INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms) VALUES"
         " ('order_lifecycle', 'o-1', 'p-1', 'urn:shop', 'payment.succeeded', '{}', 10),"
         " ('order_lifecycle', 'o-2', 'p-2', 'urn:shop', 'payment.succeeded', '{}', 20)"});
    saga::sqlite::store s(at(dir.file("saga.db")));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    auto& db = s.database();
    for (const char* index :
         {"dead_letters_by_event", "dead_letters_by_last", "instances_due", "instances_finished",
          "inbox_by_received", "dead_letters_counted_in", "parked_counted_out"}) {
      CAPTURE(index);
      CHECK(db.execAndGet(std::string("SELECT count(*) FROM sqlite_master WHERE name = '") + index + "'")
                .getInt() == 1);
    }
    const auto first = dead_letter_of(db, 1);
    CHECK(first.count == 1);
    CHECK(first.last_ms == 100);
    CHECK_FALSE(first.truncated);
    CHECK(dead_letter_of(db, 2).last_ms == 200);
    // The counts the caps read start from the rows that were there.
    CHECK(s.count_parked_total() == 2);
    CHECK(db.execAndGet("SELECT value FROM meta WHERE key = 'dead_letter_rows'").getInt64() == 2);
    // An old row is counted like a new one when its event comes again.
    CHECK(s.add_dead_letter(dead_letter("e-1", R"({"a":1})", 900, "again")) == 1);
    CHECK(dead_letter_of(db, 1).count == 2);
    CHECK(dead_letter_of(db, 1).last_ms == 900);
    // Pruning by age reads last_ms: e-2 (last 200) goes, e-1 (last 900) stays.
    CHECK(s.prune_dead_letters(500, 100, 10) == 1);
    CHECK(count_rows(db, "dead_letters") == 1);
  }

  // The caps read counts that triggers keep (schema 3 in meta, schema 5 per sender in
  // sender_rows) rather than counting the tables: they must follow every row, written through the
  // store or not, and go back with a savepoint.
  TEST_CASE("the counts kept by triggers follow the rows however they are written or deleted") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    auto& db = s.database();
    const auto meta = [&](const std::string& key) {
      return db.execAndGet("SELECT value FROM meta WHERE key = '" + key + "'").getInt64();
    };
    auto paid = parked("o-1", "a", 10);
    paid.sender = "payments";
    const auto a = s.park(paid);
    s.park(parked("o-2", "b", 10));
    auto d = dead_letter("e-1", "{}", 100);
    d.sender = "orders";
    s.add_dead_letter(d);
    s.add_dead_letter(d);  // counted on its row: still one row
    s.add_dead_letter(dead_letter("", "not json", 100));
    CHECK(meta("parked_rows") == 2);
    CHECK(meta("dead_letter_rows") == 2);
    CHECK(sender_counts(db) == std::vector<std::string>{":1/1", "orders:0/1", "payments:1/0"});

    s.begin();
    s.savepoint();
    s.park(parked("o-3", "c", 10));
    s.rollback_to_savepoint();
    s.commit();
    CHECK(meta("parked_rows") == 2);

    s.remove_parked(a);             // payments holds nothing now: its row goes
    db.exec("DELETE FROM parked");  // behind the store's back
    CHECK(meta("parked_rows") == 0);
    CHECK(sender_counts(db) == std::vector<std::string>{":0/1", "orders:0/1"});
    CHECK(s.prune_dead_letters(1000, 100, 10) == 2);
    CHECK(meta("dead_letter_rows") == 0);
    CHECK(sender_counts(db).empty());
  }

  // Each bounded call must walk an index in proportion to its limit: with 5,000 rows a scan of
  // any table costs tens of thousands of steps, a call that does its work through indexes a
  // few hundred.
  TEST_CASE("housekeeping calls do work in proportion to their limit and not to the tables") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    auto& db = s.database();
    constexpr int rows = 5000;
    db.exec("BEGIN");
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(rows) +
        ") INSERT INTO dead_letters (event_id, source, type, subject, reason, payload, created_ms, last_ms)"
        " SELECT 'e-' || i, 'urn:flood', 't', 's', 'r', '{}', i, i FROM n");
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
            std::to_string(rows) +
            ") INSERT INTO inbox SELECT 'urn:flood', 'e-' || i, 'd', 'k', '{}', i FROM n");
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
            std::to_string(rows) +
            ") INSERT INTO outbox (event_id, type, definition, key, payload, created_ms)"
            " SELECT 'o-' || i, 't', 'd', 'k', '{}', i FROM n");
    // Each row published on its own, at its creation time (schema 12's publications).
    db.exec("INSERT INTO publications SELECT sequence, created_ms FROM outbox");
    db.exec("UPDATE meta SET value = " + std::to_string(rows) + " WHERE key = 'last_published'");
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(rows) +
        ") INSERT INTO instances SELECT 'order_lifecycle', 'k-' || i, CASE WHEN i % 2 = 0 THEN 'placed'"
        " ELSE 'completed' END, '{}', 1, 'fp', 'c', i, i, i, CASE WHEN i % 2 = 0 THEN NULL ELSE i END, NULL,"
        " NULL, NULL, 1 FROM n");
    db.exec(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(rows) +
        ") INSERT INTO instances SELECT 'retired', 'k-' || i, 'placed', '{}', 1, 'fp', 'c', i, i, i, NULL,"
        " NULL, json_object('t', json_array(i, 1)), i, 1 FROM n");
    db.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
            std::to_string(rows) +
            ") INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms)"
            " SELECT 'order_lifecycle', 'x-' || i, 'p-' || i, 's', 't', '{}', i FROM n");
    db.exec("COMMIT");
    s.arm_timer("order_lifecycle", "k-2", "t", rows + 1);

    constexpr std::int64_t bound = 2000;  // a scan of 5,000 rows takes far more
    vm_steps(db);
    CHECK(s.prune_dead_letters(100, rows, 10) == 10);
    CHECK(vm_steps(db) < bound);
    CHECK(s.prune_dead_letters(0, rows - 20, 10) == 10);  // beyond the cap
    CHECK(vm_steps(db) < bound);
    CHECK(s.add_dead_letter(dead_letter("e-4000", "{}", 1)) != 0);  // the dedup lookup
    CHECK(vm_steps(db) < bound);
    CHECK(s.prune(100, 100, 10) == 20);
    CHECK(vm_steps(db) < bound);
    CHECK(s.purge_finished("order_lifecycle", {"completed"}, rows, 10) == 10);
    CHECK(vm_steps(db) < bound);
    CHECK(s.due_timers(rows * 2, 10, {"order_lifecycle"}).size() == 1);
    CHECK(vm_steps(db) < bound);
    CHECK(s.count_parked_total() == rows);
    CHECK(vm_steps(db) < bound);
    CHECK(s.count_parked_by_sender("") == rows);
    CHECK(vm_steps(db) < bound);
    CHECK(s.due_timers_elsewhere(rows * 2, {"order_lifecycle"}).size() == 1);  // counts retired's 5,000
    CHECK(vm_steps(db) > bound);  // the meter does see a walk over thousands of rows
  }

  // What the console's overview and definitions pages and a deep list page read (issue 19): with
  // 5,000 sagas a count or a sort of the instances costs tens of thousands of steps; read from
  // the kept counts (schema 11) and through instances_by_created, a few hundred.
  TEST_CASE("the counts and a keyset page are read without walking the sagas") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    constexpr int sagas = 5000;
    s.begin();
    for (int i = 0; i < sagas; ++i) {
      auto r = instance("k-" + std::to_string(i), i % 3 == 0 ? "paid" : "placed");
      r.created_ms = 1000 + i / 10;  // ten sagas a millisecond: the keyset goes on within one
      s.save_instance(r);
      if (i % 2 == 0) s.arm_timer("order_lifecycle", r.key, "payment_timeout", 9000 + i);
    }
    s.commit();
    auto& db = s.database();
    saga::sqlite::reader r(db);
    constexpr std::int64_t bound = 2000;
    vm_steps(db);
    const auto counts = r.counts_by_state();
    REQUIRE(counts.size() == 2);
    CHECK(counts[0].sagas == 1667);  // paid
    CHECK(counts[1].sagas == 3333);  // placed
    const auto t = r.totals();
    CHECK(t.sagas == sagas);
    CHECK(t.armed_timers == sagas / 2);
    CHECK(r.orphaned_sagas(1000).size() == 1000);  // no definition registered: every saga is one
    CHECK(vm_steps(db) > bound * 10);              // ... which the meter sees as the walk it is
    s.save_definition({"order_lifecycle", 1, "fp1", R"({"states":["placed","paid"],"terminal":[]})", 1});
    CHECK(r.orphaned_sagas(1000).empty());
    CHECK(vm_steps(db) < bound);
    saga::saga_filter f;
    f.limit = 50;
    f.after = saga::saga_position{1000 + 450, "order_lifecycle", "k-4504"};
    constexpr std::int64_t page_bound = 4000;  // 50 rows, each counting its timers and parked events
    auto page = r.sagas(f);
    CHECK(vm_steps(db) < page_bound);
    REQUIRE(page.size() == 50);
    CHECK(page.front().key == "k-4505");
    f.newest_first = true;
    page = r.sagas(f);
    CHECK(vm_steps(db) < page_bound);
    REQUIRE(page.size() == 50);
    CHECK(page.front().key == "k-4503");
    r.counts_by_state();
    r.totals();
    CHECK(vm_steps(db) < bound);
  }

  // PRAGMA synchronous = FULL is refused here by an authorizer, the way any error would make it
  // fail: the store must say so and must not commit anything at NORMAL afterwards.
  TEST_CASE("mark_published fails loudly when it cannot restore synchronous FULL") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file("saga.db")));
    auto& db = s.database();
    s.begin();
    for (const char* id : {"a", "b", "c"}) s.append_outbox(outbox(id));
    s.commit();
    // Setting an authorizer makes every statement prepare again at its next use, so it sees
    // the statements in the order they run: the mark's transaction between NORMAL and FULL.
    std::vector<std::string> seen;
    const auto record = [](void* out, int action, const char* a, const char* b, const char*,
                           const char*) -> int {
      auto& log = *static_cast<std::vector<std::string>*>(out);
      if (action == SQLITE_PRAGMA && a && std::string(a) == "synchronous" && b)
        log.push_back(std::string("sync ") + b);
      if (action == SQLITE_TRANSACTION && a) log.push_back(a);
      return SQLITE_OK;
    };
    sqlite3_set_authorizer(db.getHandle(), record, &seen);
    s.mark_published(1, 1, 100);
    sqlite3_set_authorizer(db.getHandle(), nullptr, nullptr);
    CHECK(seen == std::vector<std::string>{"sync NORMAL", "BEGIN", "COMMIT", "sync FULL"});
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 2);  // restored after a good mark

    const auto refuse_full = [](void*, int action, const char* name, const char* value, const char*,
                                const char*) -> int {
      const bool full = value && (std::string(value) == "FULL" || std::string(value) == "full");
      return action == SQLITE_PRAGMA && name && std::string(name) == "synchronous" && full ? SQLITE_DENY
                                                                                           : SQLITE_OK;
    };
    sqlite3_set_authorizer(db.getHandle(), refuse_full, nullptr);
    CHECK_THROWS_WITH_AS(s.mark_published(2, 2, 200),
                         doctest::Contains("restoring synchronous = FULL failed"), saga::store_error);
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 1);  // NORMAL: which is why it failed loudly
    CHECK(s.last_published_sequence() == 2);                   // the mark itself committed
    // Nothing else commits at NORMAL: every transaction the store would begin fails first.
    CHECK_THROWS_WITH_AS(s.begin(), doctest::Contains("begin: restoring synchronous = FULL failed"),
                         saga::store_error);
    CHECK_FALSE(s.in_transaction());
    CHECK_THROWS_AS(s.mark_published(3, 3, 300), saga::store_error);
    CHECK_THROWS_AS(s.prune(1'000'000, 1'000'000, 10), saga::store_error);
    CHECK(s.last_published_sequence() == 2);
    CHECK(s.first_retained_sequence() == 1);

    sqlite3_set_authorizer(db.getHandle(), nullptr, nullptr);
    s.begin();
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 2);
    s.commit();
    s.mark_published(3, 3, 300);
    CHECK(s.last_published_sequence() == 3);
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 2);
  }
}
