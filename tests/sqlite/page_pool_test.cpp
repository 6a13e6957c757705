// saga::sqlite::pool_page_cache (saga/sqlite/store.hpp): SQLite's page caches in a pool of
// exact slots. A process-wide setting, possible only before SQLite initializes: this executable
// holds one test case, which sets it first thing (ctest runs every case in a process of its own).

#include <sqlite3.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <doctest/doctest.h>

#include <string>

#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

namespace {

int status(int op, bool highwater = false) {
  int now = 0, high = 0;
  REQUIRE(sqlite3_status(op, &now, &high, 0) == SQLITE_OK);
  return highwater ? high : now;
}

}  // namespace

TEST_CASE("the page pool holds a store's cached pages and hands what does not fit to malloc") {
  // 64 KiB: about fourteen slots, fewer than the pages written below.
  REQUIRE(saga::sqlite::pool_page_cache(64 * 1024));
  CHECK_FALSE(saga::sqlite::pool_page_cache(64 * 1024));  // the first pool stays

  saga::test::temp_dir dir;
  saga::sqlite::options o;
  o.path = dir.file("pool.db");
  saga::sqlite::store store(o);  // the store's own connection: its schema's pages are cached
  CHECK(status(SQLITE_STATUS_PAGECACHE_USED) > 0);

  SQLite::Database db(o.path, SQLite::OPEN_READWRITE);
  db.exec("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  {
    SQLite::Transaction tx(db);
    SQLite::Statement insert(db, "INSERT INTO filler (body) VALUES (?)");
    for (int i = 0; i < 200; ++i) {  // 200 KiB: more pages than the pool has slots
      insert.bind(1, std::string(1000, static_cast<char>('a' + i % 26)));
      insert.exec();
      insert.reset();
    }
    tx.commit();
  }
  CHECK(status(SQLITE_STATUS_PAGECACHE_OVERFLOW) > 0);  // the pages past the pool: from malloc
  // Pages took every slot: a slot too small for a page and its header would hold none.
  const int slots = status(SQLITE_STATUS_PAGECACHE_USED, true);
  CHECK(slots >= 10);
  CHECK(slots <= 16);

  SQLite::Statement check(db,
                          "SELECT count(*), sum(length(body)), sum(substr(body, 1, 1) = 'z') FROM filler");
  REQUIRE(check.executeStep());
  CHECK(check.getColumn(0).getInt() == 200);
  CHECK(check.getColumn(1).getInt() == 200 * 1000);
  CHECK(check.getColumn(2).getInt() == 7);  // rows 25, 51, …, 181

  // SQLite has initialized: the pool can no longer be changed.
  CHECK_FALSE(saga::sqlite::pool_page_cache(64 * 1024));
}
