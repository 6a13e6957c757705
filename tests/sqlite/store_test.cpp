// Tests of saga::sqlite::store against real database files in a temporary folder.

#include "saga/sqlite/store.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed with everything in it (the -wal and -shm files too).
class temp_dir {
 public:
  temp_dir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() / ("saga-sqlite-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(stamp) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::string file(const std::string& name = "saga.db") const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

saga::sqlite::options at(const std::string& path) {
  saga::sqlite::options o;
  o.path = path;
  return o;
}

saga::instance_record instance(const std::string& key, const std::string& state, std::int64_t version = 1) {
  saga::instance_record r;
  r.definition = "order_lifecycle";
  r.key = key;
  r.state = state;
  r.data = R"({"order_id":")" + key + R"("})";
  r.version = version;
  r.fingerprint = "fp1";
  r.correlation_id = "evt-" + key;
  r.created_ms = 1000;
  r.updated_ms = 1000 + version;
  r.state_since_ms = 1000 + version;
  return r;
}

saga::outbox_record outbox(const std::string& event_id, const std::string& key = "o-1") {
  saga::outbox_record r;
  r.event_id = event_id;
  r.type = "payment.requested";
  r.definition = "order_lifecycle";
  r.key = key;
  r.payload = R"({"id":")" + event_id + R"("})";
  r.created_ms = 2000;
  return r;
}

saga::inbox_record inbox(const std::string& event_id, std::int64_t received_ms = 3000) {
  return saga::inbox_record{"urn:shop", event_id, "order_lifecycle", "o-1", R"({"status":"accepted"})",
                            received_ms};
}

saga::parked_record parked(const std::string& key, const std::string& event_id, std::int64_t at_ms) {
  return saga::parked_record{0,          "order_lifecycle",   key,  event_id,
                             "urn:shop", "payment.succeeded", "{}", at_ms};
}

std::int64_t count_rows(SQLite::Database& db, const std::string& table) {
  // Table names come from the test itself, never from data.
  return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("sqlite_store") {
  TEST_CASE("opening a new file creates the schema and sets user_version to the current schema") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    CHECK(s.schema_version() == saga::sqlite::store::current_schema);
    CHECK(s.schema_version() == 2);

    auto& db = s.database();
    for (const char* table : {"instances", "history", "inbox", "outbox", "dead_letters", "timers", "parked",
                              "definitions", "meta"}) {
      CAPTURE(table);
      CHECK(db.tableExists(table));
    }
    CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    CHECK(db.execAndGet("PRAGMA synchronous").getInt() == 2);  // FULL
    CHECK(db.execAndGet("PRAGMA busy_timeout").getInt() == 5000);
  }

  // Schema 1 found a saga's outbox rows through an index by saga; schema 2 through the range
  // each transition records in its history row. A version-1 file is made here from a new one
  // by undoing migration 2 (columns dropped, index back), then reopened.
  TEST_CASE("a schema 1 database migrates: history rows name the outbox rows they caused") {
    temp_dir dir;
    auto h = [](const std::string& key, const std::string& event_id, const std::string& outcome) {
      saga::history_record r;
      r.definition = "order_lifecycle";
      r.key = key;
      r.version = 1;
      r.event_id = event_id;
      r.event_source = "urn:shop";
      r.event_type = "order.placed";
      r.event_time = "2026-11-27T00:00:00Z";
      r.event_data = "{}";
      r.from_state = "new";
      r.to_state = outcome == "transitioned" ? "placed" : "new";
      r.outcome = outcome;
      r.recorded_ms = 1000;
      return r;
    };
    auto caused = [](const std::string& id, const std::string& key, const std::string& cause) {
      auto r = outbox(id, key);
      r.payload = R"({"causationid":")" + cause + R"(","id":")" + id + R"("})";
      return r;
    };
    {
      saga::sqlite::store s(at(dir.file()));
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
      db.exec("ALTER TABLE history DROP COLUMN outbox_first");
      db.exec("ALTER TABLE history DROP COLUMN outbox_last");
      db.exec("CREATE INDEX outbox_by_saga ON outbox (definition, key)");
      db.exec("PRAGMA user_version = 1");
    }
    saga::sqlite::store s(at(dir.file()));
    CHECK(s.schema_version() == 2);
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

  TEST_CASE("reopening a database keeps its data and does not migrate again") {
    temp_dir dir;
    {
      saga::sqlite::store s(at(dir.file()));
      s.begin();
      s.save_instance(instance("o-1", "placed"));
      s.insert_inbox(inbox("e-1"));
      CHECK(s.append_outbox(outbox("out-1")) == 1);
      s.save_definition({"order_lifecycle", "fp1", R"({"states":[]})", 42});
      s.commit();
    }
    saga::sqlite::store s(at(dir.file()));
    CHECK(s.schema_version() == 2);
    const auto loaded = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(loaded);
    CHECK(loaded->state == "placed");
    CHECK(loaded->data == R"({"order_id":"o-1"})");
    CHECK(loaded->correlation_id == "evt-o-1");
    CHECK(loaded->created_ms == 1000);
    CHECK(loaded->state_since_ms == 1001);
    CHECK(s.find_ack("urn:shop", "e-1") == std::optional<std::string>(R"({"status":"accepted"})"));
    CHECK_FALSE(s.find_ack("urn:shop", "e-2"));
    CHECK_FALSE(s.find_ack("urn:other", "e-1"));
    const auto def = s.load_definition("order_lifecycle");
    REQUIRE(def);
    CHECK(def->fingerprint == "fp1");
    CHECK(def->registered_ms == 42);
    CHECK_FALSE(s.load_definition("payment_notice"));
    CHECK(s.append_outbox(outbox("out-2")) == 2);
  }

  TEST_CASE("a database with a newer schema version is refused with a clear message") {
    temp_dir dir;
    {
      SQLite::Database db(dir.file(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
      db.exec("PRAGMA user_version = 99");
    }
    const std::string expected = "database schema version 99 is newer than this build supports (2)";
    CHECK_THROWS_WITH_AS(saga::sqlite::store{at(dir.file())}, expected.c_str(), saga::store_error);

    auto ro = at(dir.file());
    ro.read_only = true;
    CHECK_THROWS_WITH_AS(saga::sqlite::store{ro}, expected.c_str(), saga::store_error);

    SQLite::Database host(dir.file(), SQLite::OPEN_READWRITE);
    CHECK_THROWS_WITH_AS(saga::sqlite::store{host}, expected.c_str(), saga::store_error);
    // Refused, not touched.
    CHECK(host.execAndGet("PRAGMA user_version").getInt() == 99);
    CHECK_FALSE(host.tableExists("instances"));
  }

  TEST_CASE("a read-only store reads but refuses writes and never migrates") {
    temp_dir dir;
    {
      saga::sqlite::store s(at(dir.file()));
      s.save_instance(instance("o-1", "paid"));
    }
    auto ro = at(dir.file());
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
    auto o = at(dir.file());
    o.synchronous = "EXTRA";
    const auto error = error_of([&] { saga::sqlite::store{o}; });
    CHECK(error.find("synchronous") != std::string::npos);
    CHECK(error.find("FULL, NORMAL or OFF") != std::string::npos);
    CHECK(error.find("EXTRA") != std::string::npos);
    CHECK_THROWS_AS(saga::sqlite::store{o}, std::invalid_argument);
    CHECK_FALSE(fs::exists(dir.file()));  // validated before the file is created

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

  TEST_CASE("outbox sequences are never reused after pruning and last_published survives it") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    CHECK(s.first_retained_sequence() == 0);
    CHECK(s.last_published_sequence() == 0);

    s.begin();
    CHECK(s.append_outbox(outbox("a")) == 1);
    CHECK(s.append_outbox(outbox("b")) == 2);
    CHECK(s.append_outbox(outbox("c")) == 3);
    s.insert_inbox(inbox("old", 100));
    s.insert_inbox(inbox("new", 9000));
    s.commit();

    auto pending = s.unpublished(0, 10);
    REQUIRE(pending.size() == 3);
    CHECK(pending[0].sequence == 1);
    CHECK(pending[2].event_id == "c");
    CHECK_FALSE(pending[0].published_ms);
    CHECK(s.unpublished(1, 1).at(0).sequence == 2);

    // A range past the end marks what exists and announces nothing that was never written.
    s.mark_published(1, 100, 5000);
    CHECK(s.last_published_sequence() == 3);
    CHECK(s.unpublished(0, 10).empty());
    auto published = s.published_range(2, 10);
    REQUIRE(published.size() == 2);
    CHECK(published[0].sequence == 2);
    CHECK(published[0].published_ms == std::optional<std::int64_t>(5000));
    // Marking again does not move the publication time.
    s.mark_published(1, 3, 7000);
    CHECK(s.published_range(1, 1).at(0).published_ms == std::optional<std::int64_t>(5000));

    // Three outbox rows and the old inbox row go; the recent inbox row stays.
    CHECK(s.prune(6000, 5000) == 4);
    CHECK(s.first_retained_sequence() == 0);
    CHECK(s.last_published_sequence() == 3);
    CHECK(s.published_range(1, 10).empty());
    CHECK(s.find_ack("urn:shop", "new"));
    CHECK_FALSE(s.find_ack("urn:shop", "old"));

    CHECK(s.append_outbox(outbox("d")) == 4);
    CHECK(s.first_retained_sequence() == 4);
    CHECK(s.unpublished(s.last_published_sequence(), 10).at(0).event_id == "d");
    // Unpublished rows are never pruned, however old.
    CHECK(s.prune(1'000'000, 0) == 0);
    CHECK(s.first_retained_sequence() == 4);
  }

  TEST_CASE("timers count their generation across disarming and re-arming") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 500) == 1);
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 700) == 2);
    auto mine = s.timers_of("order_lifecycle", "o-1");
    REQUIRE(mine.size() == 1);
    CHECK(mine[0].due_ms == 700);
    CHECK(mine[0].generation == 2);

    s.disarm_timer("order_lifecycle", "o-1", "payment_timeout");
    CHECK(s.timers_of("order_lifecycle", "o-1").empty());
    CHECK(s.due_timers(1'000'000, 10).empty());
    s.disarm_timer("order_lifecycle", "o-1", "never_armed");  // harmless

    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 900) == 3);
    // Another timer of the same saga, and the same name on another saga, count on their own.
    CHECK(s.arm_timer("order_lifecycle", "o-1", "shipment_deadline", 300) == 1);
    CHECK(s.arm_timer("order_lifecycle", "o-2", "payment_timeout", 600) == 1);

    auto due = s.due_timers(800, 10);
    REQUIRE(due.size() == 2);
    CHECK(due[0].name == "shipment_deadline");
    CHECK(due[0].due_ms == 300);
    CHECK(due[1].key == "o-2");
    CHECK(s.due_timers(800, 1).size() == 1);
    CHECK(s.due_timers(299, 10).empty());
    CHECK(s.due_timers(900, 10).size() == 3);
    CHECK(s.timers_of("order_lifecycle", "o-1").size() == 2);
  }

  TEST_CASE("parked events come back in arrival order and orphans are those without a saga") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    s.save_instance(instance("started", "placed"));
    const auto a1 = s.park(parked("started", "a1", 100));
    const auto o1 = s.park(parked("never", "o1", 100));
    const auto a2 = s.park(parked("started", "a2", 50));  // later arrival, earlier clock
    const auto o2 = s.park(parked("never", "o2", 300));
    CHECK(a1 < o1);
    CHECK(o1 < a2);
    CHECK(a2 < o2);

    auto mine = s.parked_of("order_lifecycle", "started");
    REQUIRE(mine.size() == 2);
    CHECK(mine[0].event_id == "a1");
    CHECK(mine[1].event_id == "a2");
    CHECK(mine[1].id == a2);
    CHECK(mine[1].parked_ms == 50);
    CHECK(mine[1].type == "payment.succeeded");
    CHECK(s.count_parked("order_lifecycle", "started") == 2);
    CHECK(s.count_parked("order_lifecycle", "nobody") == 0);

    auto orphans = s.orphaned_parked(200, 10);
    REQUIRE(orphans.size() == 1);
    CHECK(orphans[0].id == o1);
    orphans = s.orphaned_parked(1000, 10);
    REQUIRE(orphans.size() == 2);
    CHECK(orphans[0].event_id == "o1");
    CHECK(orphans[1].event_id == "o2");
    CHECK(s.orphaned_parked(1000, 1).size() == 1);

    s.remove_parked(a1);
    s.remove_parked(o1);
    CHECK(s.parked_of("order_lifecycle", "started").at(0).event_id == "a2");
    CHECK(s.orphaned_parked(1000, 10).at(0).event_id == "o2");
    // Once the saga exists its parked events are not orphans any more.
    s.save_instance(instance("never", "placed"));
    CHECK(s.orphaned_parked(1000, 10).empty());
  }

  TEST_CASE("a failed statement names the operation and the batch can still be rolled back") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    s.insert_inbox(inbox("e-1"));
    s.begin();
    s.append_outbox(outbox("x"));
    const auto error = error_of([&] { s.insert_inbox(inbox("e-1")); });
    CHECK(error.rfind("insert_inbox: ", 0) == 0);
    CHECK(error.find("UNIQUE") != std::string::npos);
    CHECK_THROWS_AS(s.insert_inbox(inbox("e-1")), saga::store_error);
    s.rollback();
    CHECK_FALSE(s.in_transaction());
    CHECK(s.unpublished(0, 10).empty());
    s.rollback();  // nothing to roll back: still no exception

    CHECK_THROWS_WITH_AS(s.commit(), doctest::Contains("commit: "), saga::store_error);
  }

  TEST_CASE("a full disk surfaces as a store_error naming the operation") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
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
  // without the writer checkpointing. Without the thread (and below SQLite's own 1,000-page
  // threshold) they stay in the log.
  TEST_CASE("the write-ahead log is checkpointed by the background thread") {
    for (const bool background : {true, false}) {
      CAPTURE(background);
      temp_dir dir;
      auto o = at(dir.file());
      o.background_checkpoint = background;
      o.checkpoint_pages = 50;
      saga::sqlite::store s(o);
      const auto before = fs::file_size(o.path);
      for (int batch = 0; batch < 4; ++batch) {  // 4 x 40 rows of 4 KiB: about 200 pages in the log
        s.begin();
        for (int i = 0; i < 40; ++i) {
          auto r = outbox("big-" + std::to_string(batch) + "-" + std::to_string(i));
          r.payload.assign(4000, 'x');
          s.append_outbox(r);
        }
        s.commit();
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (background && fs::file_size(o.path) < before + 150 * 4096 &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (background)
        CHECK(fs::file_size(o.path) >= before + 150 * 4096);
      else
        CHECK(fs::file_size(o.path) == before);
      CHECK(s.unpublished(0, 1000).size() == 160);
    }
  }

  // Checkpoints run off the writer's thread, yet the log must still restart from its beginning
  // once copied back (the writer also checkpoints itself far past the threshold): many commits
  // leave a log of a few batches, not of everything written.
  TEST_CASE("with background checkpoints the log stays bounded") {
    temp_dir dir;
    auto o = at(dir.file());
    o.checkpoint_pages = 4;  // the writer steps in past 16 pages
    saga::sqlite::store s(o);
    for (int batch = 0; batch < 50; ++batch) {
      s.begin();
      for (int i = 0; i < 10; ++i) {
        auto r = outbox("b-" + std::to_string(batch) + "-" + std::to_string(i));
        r.payload.assign(4000, 'y');
        s.append_outbox(r);
      }
      s.commit();
    }
    // 500 pages were written; the log restarts from its beginning once checkpointed, so it
    // never holds much more than the fallback threshold plus one batch.
    CHECK(fs::file_size(o.path + "-wal") < 200 * 4200);
    CHECK(s.unpublished(0, 1000).size() == 500);
  }

  TEST_CASE("commit_count counts only commits that happen") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
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

  TEST_CASE("instances_outside lists the keys whose state is not among the given ones") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    s.save_instance(instance("a", "placed"));
    s.save_instance(instance("b", "legacy_state"));
    s.save_instance(instance("c", "done"));
    auto other = instance("d", "legacy_state");
    other.definition = "payment_notice";
    s.save_instance(other);

    CHECK(s.instances_outside("order_lifecycle", {"placed", "done"}) == std::vector<std::string>{"b"});
    CHECK(s.instances_outside("order_lifecycle", {}) == std::vector<std::string>{"a", "b", "c"});
    CHECK(s.instances_outside("order_lifecycle", {"placed", "done", "legacy_state"}).empty());
    CHECK(s.instances_outside("account_lockout", {}).empty());
  }

  TEST_CASE("save_instance keeps the saga's creation time and correlation id") {
    temp_dir dir;
    saga::sqlite::store s(at(dir.file()));
    s.save_instance(instance("o-1", "placed", 1));
    auto next = instance("o-1", "paid", 2);
    next.created_ms = 99999;
    next.correlation_id = "other";
    s.save_instance(next);
    const auto loaded = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(loaded);
    CHECK(loaded->state == "paid");
    CHECK(loaded->version == 2);
    CHECK(loaded->updated_ms == 1002);
    CHECK(loaded->created_ms == 1000);
    CHECK(loaded->correlation_id == "evt-o-1");
  }

  TEST_CASE("the shared-connection constructor commits and rolls back with the host's transaction") {
    temp_dir dir;
    SQLite::Database host(dir.file(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    host.exec("PRAGMA journal_mode = WAL");
    host.exec("CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER)");

    saga::sqlite::store s(host);
    CHECK(s.schema_version() == 2);
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
    SQLite::Database host(dir.file(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    {
      SQLite::Transaction t(host, SQLite::TransactionBehavior::IMMEDIATE);
      host.exec("CREATE TABLE orders (id TEXT PRIMARY KEY)");
      saga::sqlite::store s(host);  // nests its migration in a savepoint
      CHECK(s.in_transaction());
      s.save_instance(instance("o-1", "placed"));
      t.commit();
    }
    saga::sqlite::store s(host);
    CHECK(s.schema_version() == 2);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
    CHECK(host.tableExists("orders"));
  }

  TEST_CASE("the store removes its commit hook from a shared connection it no longer uses") {
    temp_dir dir;
    SQLite::Database host(dir.file(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
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
}
