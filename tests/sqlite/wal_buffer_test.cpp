// Tests of saga::sqlite::wal_buffer, the VFS that writes a transaction's log appends in large
// pieces: real database files in a temporary folder, a second connection through SQLite's default
// VFS reading what the first wrote, writers really killed (SIGKILL) and really refused by the
// file system (RLIMIT_FSIZE).

#include "saga/sqlite/wal_buffer.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>

#include "support/temp_dir.hpp"

namespace {

using saga::test::temp_dir;

constexpr int big_row = 1000;  // bytes of text in each row the tests insert

// A connection through the VFS, in WAL mode with no automatic checkpoint (so that nothing but the
// commit itself has to put the frames in the file before another connection reads them).
SQLite::Database buffered(const std::string& path, const char* synchronous) {
  SQLite::Database db(path.c_str(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 5000,
                      saga::sqlite::wal_buffer::vfs_name());
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(std::string("PRAGMA synchronous = ") + synchronous);
  db.exec("PRAGMA wal_autocheckpoint = 0");
  db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  return db;
}

// `n` rows of big_row bytes each, ids from `first`, in one transaction.
void insert_rows(SQLite::Database& db, std::int64_t first, int n) {
  SQLite::Statement insert(db, "INSERT INTO t (id, v) VALUES (?, printf('%.*c', ?, 'x'))");
  db.exec("BEGIN IMMEDIATE");
  for (int i = 0; i < n; ++i) {
    insert.bind(1, first + i);
    insert.bind(2, big_row);
    insert.exec();
    insert.reset();
  }
  db.exec("COMMIT");
}

struct contents {
  std::int64_t rows = 0;
  std::int64_t bytes = 0;
  std::int64_t max_id = 0;
};

// What a fresh connection through SQLite's default VFS reads, after checking the whole file.
contents read_plain(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  REQUIRE(db.execAndGet("PRAGMA integrity_check").getString() == "ok");
  SQLite::Statement q(db, "SELECT count(*), coalesce(sum(length(v)), 0), coalesce(max(id), 0) FROM t");
  REQUIRE(q.executeStep());
  return contents{q.getColumn(0).getInt64(), q.getColumn(1).getInt64(), q.getColumn(2).getInt64()};
}

// Runs `child` in a forked process and returns its wait status.
int in_child(const std::function<int()>& child) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = child();
    } catch (...) {
      code = 98;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

TEST_SUITE("sqlite_wal_buffer") {
  TEST_CASE("a commit's frames go to the log in few writes and another connection reads them at once") {
    for (const char* sync : {"FULL", "NORMAL"}) {
      const std::string level = sync;
      CAPTURE(level);
      temp_dir dir;
      const std::string path = dir.file("t.db");
      auto db = buffered(path, sync);
      const auto before = saga::sqlite::wal_buffer::totals();
      insert_rows(db, 1, 400);  // about 100 pages: 200 writes asked
      const auto after = saga::sqlite::wal_buffer::totals();
      const auto asked = after.writes_asked - before.writes_asked;
      const auto made = after.writes_made - before.writes_made;
      CHECK(asked >= 200);
      CHECK(made <= asked / 20);
      // The writer is still open and has done nothing since COMMIT returned.
      const auto c = read_plain(path);
      CHECK(c.rows == 400);
      CHECK(c.bytes == 400 * big_row);
      insert_rows(db, 401, 1);  // a second commit, appended after the first
      CHECK(read_plain(path).rows == 401);
    }
  }

  TEST_CASE("a transaction larger than the page cache reads back the frames it spilled") {
    temp_dir dir;
    const std::string path = dir.file("t.db");
    auto db = buffered(path, "FULL");
    db.exec("PRAGMA cache_size = 10");  // pages: the transaction below spills into the log
    db.exec("BEGIN IMMEDIATE");
    SQLite::Statement insert(db, "INSERT INTO t (id, v) VALUES (?, printf('%.*c', ?, 'y'))");
    for (int i = 1; i <= 2000; ++i) {
      insert.bind(1, i);
      insert.bind(2, big_row);
      insert.exec();
      insert.reset();
    }
    // Every row read back inside the transaction, through the spilled frames.
    CHECK(db.execAndGet("SELECT count(*) FROM t WHERE v = printf('%.*c', 1000, 'y')").getInt64() == 2000);
    db.exec("UPDATE t SET v = v || 'z' WHERE id % 7 = 0");
    db.exec("COMMIT");
    const auto c = read_plain(path);
    CHECK(c.rows == 2000);
    CHECK(c.bytes == 2000 * big_row + 2000 / 7);
  }

  TEST_CASE("rolled-back transactions and restarts of the log leave what was committed") {
    temp_dir dir;
    const std::string path = dir.file("t.db");
    auto db = buffered(path, "FULL");
    db.exec("PRAGMA cache_size = 10");
    SQLite::Database checkpointer(path, SQLite::OPEN_READWRITE);
    std::int64_t next = 1;
    for (int round = 0; round < 6; ++round) {
      CAPTURE(round);
      insert_rows(db, next, 50);
      next += 50;
      // A big transaction that spills and is rolled back: its frames are written, then abandoned.
      db.exec("BEGIN IMMEDIATE");
      db.exec(
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)"
          " INSERT INTO t (id, v) SELECT i + 1000000, printf('%.*c', 1000, 'r') FROM n");
      db.exec("ROLLBACK");
      // Every other round the log is copied back and restarts from its beginning.
      if (round % 2 == 1) checkpointer.exec("PRAGMA wal_checkpoint(RESTART)");
      const auto c = read_plain(path);
      CHECK(c.rows == next - 1);
      CHECK(c.max_id == next - 1);
    }
  }

  TEST_CASE("the log reads as the file overlaid with what is held back at every overlap") {
    temp_dir dir;
    const std::string path = dir.file("t.db");
    auto db = buffered(path, "FULL");
    insert_rows(db, 1, 3);
    db.exec("BEGIN IMMEDIATE");
    sqlite3_file* log = nullptr;
    REQUIRE(sqlite3_file_control(db.getHandle(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &log) == SQLITE_OK);
    REQUIRE(log != nullptr);
    const auto* m = log->pMethods;
    sqlite3_int64 size = 0;
    REQUIRE(m->xFileSize(log, &size) == SQLITE_OK);
    REQUIRE(size > 0);
    // What the log should read as: the file so far, then what the test appends.
    std::string expected(static_cast<std::size_t>(size), '\0');
    REQUIRE(m->xRead(log, expected.data(), static_cast<int>(size), 0) == SQLITE_OK);
    const std::string p(3000, 'p'), q(2000, 'q');
    REQUIRE(m->xWrite(log, p.data(), static_cast<int>(p.size()), size) == SQLITE_OK);
    REQUIRE(m->xWrite(log, q.data(), static_cast<int>(q.size()), size + 3000) == SQLITE_OK);
    expected += p + q;
    auto read = [&](sqlite3_int64 from, int amount, int expected_rc) {
      CAPTURE(from - size);
      std::string got(static_cast<std::size_t>(amount), '?');
      CHECK(m->xRead(log, got.data(), amount, from) == expected_rc);
      std::string want = expected.substr(static_cast<std::size_t>(from), static_cast<std::size_t>(amount));
      want.resize(static_cast<std::size_t>(amount), '\0');  // past the end: zeros
      CHECK(got == want);
    };
    read(size - 100, 200, SQLITE_OK);                 // the file, then held bytes
    read(size + 2900, 200, SQLITE_OK);                // held bytes only
    read(size + 4900, 200, SQLITE_IOERR_SHORT_READ);  // held bytes, then past the end
    read(size - 100, 5200, SQLITE_IOERR_SHORT_READ);  // all three
    read(0, 100, SQLITE_OK);                          // the file only
    sqlite3_int64 now = 0;
    REQUIRE(m->xFileSize(log, &now) == SQLITE_OK);
    CHECK(now == size + 5000);
    REQUIRE(m->xTruncate(log, size + 4000) == SQLITE_OK);
    expected.resize(static_cast<std::size_t>(size + 4000));
    read(size + 3900, 200, SQLITE_IOERR_SHORT_READ);
    REQUIRE(m->xFileSize(log, &now) == SQLITE_OK);
    CHECK(now == size + 4000);
    // The bytes are beyond the last frame SQLite wrote: nothing refers to them.
    db.exec("ROLLBACK");
    const auto c = read_plain(path);
    CHECK(c.rows == 3);
  }

  TEST_CASE("a rolled-back transaction's frames never reach the log after another writer's commit") {
    temp_dir dir;
    const std::string path = dir.file("t.db");
    auto a = buffered(path, "FULL");
    auto b = buffered(path, "FULL");
    a.exec("PRAGMA cache_size = 10");
    insert_rows(a, 1, 5);
    SQLite::Database checkpointer(path, SQLite::OPEN_READWRITE);
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      // An empty log: rolling back then reads nothing from it (which would write the buffer out).
      checkpointer.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      // a: a transaction that spills frames into the log, then rolls back.
      a.exec("BEGIN IMMEDIATE");
      a.exec(
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
          " INSERT INTO t (id, v) SELECT i + 1000000, printf('%.*c', 1000, 'r') FROM n");
      a.exec("ROLLBACK");
      // b writes more than a did, over where a's frames were; then a writes after b's.
      insert_rows(b, 10000 + round * 1000, 400);
      insert_rows(a, 100000 + round * 1000, 3);
      const auto c = read_plain(path);
      CHECK(c.rows == 5 + (round + 1) * 403);
      CHECK(c.max_id == 100000 + round * 1000 + 2);
    }
  }

  TEST_CASE("a writer killed between commits loses none of them") {
    for (const char* sync : {"FULL", "NORMAL"}) {
      const std::string level = sync;
      CAPTURE(level);
      temp_dir dir;
      const std::string path = dir.file("t.db");
      buffered(path, sync);  // creates the table
      int pipe_fds[2];
      REQUIRE(::pipe(pipe_fds) == 0);
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(pipe_fds[0]);
        try {
          auto db = buffered(path, sync);
          for (std::int64_t id = 1;; id += 5) {
            insert_rows(db, id, 5);
            const std::int64_t last = id + 4;  // committed: tell the parent
            if (::write(pipe_fds[1], &last, sizeof last) != sizeof last) ::_exit(97);
          }
        } catch (...) {
          ::_exit(98);
        }
      }
      ::close(pipe_fds[1]);
      std::int64_t reported = 0, last = 0;
      while (reported < 300 && ::read(pipe_fds[0], &last, sizeof last) == sizeof last) reported = last;
      ::kill(pid, SIGKILL);
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      CHECK(WIFSIGNALED(status));
      // Whatever the pipe still holds was committed too.
      while (::read(pipe_fds[0], &last, sizeof last) == sizeof last) reported = last;
      ::close(pipe_fds[0]);
      const auto c = read_plain(path);
      CHECK(reported >= 300);
      CHECK(c.max_id >= reported);
      CHECK(c.rows == c.max_id);
    }
  }

  TEST_CASE("a write the file system refuses fails its commit and a commit after the refusal succeeds") {
    temp_dir dir;
    const std::string path = dir.file("t.db");
    {
      auto db = buffered(path, "FULL");
      insert_rows(db, 1, 10);
    }
    // In a child process no file may grow past 256 KiB: a 1 MB transaction's frames cannot all
    // be written, and the file system refuses them with EFBIG (SIGXFSZ ignored).
    const int status = in_child([&] {
      ::signal(SIGXFSZ, SIG_IGN);
      auto db = buffered(path, "FULL");
      rlimit unlimited{};
      if (::getrlimit(RLIMIT_FSIZE, &unlimited) != 0) return 10;
      const rlimit small{256 * 1024, unlimited.rlim_max};
      if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 10;
      try {
        insert_rows(db, 100, 1000);
        return 11;  // committed although the file system refused its frames
      } catch (const SQLite::Exception&) {
        if (sqlite3_get_autocommit(db.getHandle()) == 0) db.exec("ROLLBACK");
      }
      if (::setrlimit(RLIMIT_FSIZE, &unlimited) != 0) return 12;
      insert_rows(db, 5000, 1);
      return 0;
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const auto c = read_plain(path);
    CHECK(c.rows == 11);
    CHECK(c.max_id == 5000);
  }
}
