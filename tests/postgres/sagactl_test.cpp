// sagactl --db postgresql://… (issue 17, item 5): the same events, run through the same engine code
// over a SQLite file and over a PostgreSQL schema on manual clocks that agree, read back by sagactl
// --json from each, give the same documents. Besides: a wrong password is named without it (exit
// 3), a read-only role suffices, a schema without saga tables is refused, and the commands that
// write a SQLite file themselves refuse a PostgreSQL --db (exit 2). The story and what may differ
// between the two documents: tests/support/sagactl_story.hpp.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_support.hpp"
#include "saga/postgres/store.hpp"
#include "saga/sqlite/store.hpp"
#include "support/postgres.hpp"
#include "support/sagactl_story.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using saga::test::normalise;

struct both {
  saga::test::temp_dir dir;
  std::string sqlite = dir.file("saga.db");
  std::string conninfo = saga::test::postgres_conninfo();
  std::string uri = saga::test::postgres_uri(conninfo);
  std::string schema = saga::test::unique_schema("sagactl");
  std::int64_t t0 = saga::test::wall_ms() - 3 * 3600 * 1000;

  both() {
    {
      saga::sqlite::options o;
      o.path = sqlite;
      saga::sqlite::store st(o);
      saga::test::fill_story(st, t0);
    }
    saga::postgres::options o;
    o.conninfo = conninfo;
    o.schema = schema;
    saga::postgres::store st(o);
    saga::test::fill_story(st, t0);
  }

  saga::cli_test::result on_sqlite(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{SAGACTL_PATH, "--db", sqlite};
    argv.insert(argv.end(), args.begin(), args.end());
    return saga::cli_test::run(argv, dir.path());
  }
  saga::cli_test::result on_postgres(const std::vector<std::string>& args, const std::string& db = "",
                                     const std::string& in_schema = "") const {
    std::vector<std::string> argv{SAGACTL_PATH, "--db", db.empty() ? uri : db, "--pg-schema",
                                  in_schema.empty() ? schema : in_schema};
    argv.insert(argv.end(), args.begin(), args.end());
    return saga::cli_test::run(argv, dir.path());
  }
};

}  // namespace

TEST_SUITE("postgres sagactl") {
  TEST_CASE("sagactl --json reads the same documents from PostgreSQL as from SQLite") {
    both b;
    for (auto args : saga::test::story_reading_commands()) {
      args.push_back("--json");
      std::string line;
      for (const auto& a : args) line += " " + a;
      CAPTURE(line);
      const auto lite = b.on_sqlite(args);
      const auto pg = b.on_postgres(args);
      REQUIRE_MESSAGE(lite.code == 0, lite.err);
      REQUIRE_MESSAGE(pg.code == 0, pg.err);
      auto a = lite.json();
      auto p = pg.json();
      CHECK_FALSE(a.empty());
      normalise(a);
      normalise(p);
      CHECK_MESSAGE(a == p, "sqlite:   " << a.dump() << "\npostgres: " << p.dump());
    }
    // The stories really are the stories told above, not two empty lists.
    const auto list = b.on_postgres({"list", "--json"}).json();
    CHECK(list.size() == 6);
    const auto dead = b.on_postgres({"dead-letters", "--json"}).json();
    REQUIRE(dead.size() == 1);
    CHECK(dead[0]["count"] == 2);

    // The text forms and a graph with a saga's path drawn on it are the same too.
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"definitions"},
          std::vector<std::string>{"graph", "order_lifecycle", "--instance", "o-2"},
          std::vector<std::string>{"outbox"}}) {
      CAPTURE(args.front());
      const auto lite = b.on_sqlite(args);
      const auto pg = b.on_postgres(args);
      REQUIRE_MESSAGE(lite.code == 0, lite.err);
      REQUIRE_MESSAGE(pg.code == 0, pg.err);
      // follow-on events' ids, as above
      static const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}");
      CHECK(std::regex_replace(pg.out, uuid, "<uuid>") == std::regex_replace(lite.out, uuid, "<uuid>"));
    }
  }

  TEST_CASE("sagactl on PostgreSQL: a wrong password is named without it and a read-only role reads") {
    both b;
    const std::string role = saga::test::unique_schema("sagactl_reader");
    const std::string right = "right-Secret-1", wrong = "wrong-Secret-2";
    saga::test::sql_session admin(b.conninfo, b.schema);
    admin.exec("CREATE ROLE " + role + " LOGIN PASSWORD '" + right + "'");
    admin.exec("GRANT USAGE ON SCHEMA " + b.schema + " TO " + role);
    admin.exec("GRANT SELECT ON ALL TABLES IN SCHEMA " + b.schema + " TO " + role);
    // The test cluster trusts every local connection: this role alone must give a password. The
    // line goes first into pg_hba.conf (written by the server, its owner), then the server reloads.
    const std::string hba = admin.scalar("SHOW hba_file");
    // (Read first: COPY TO truncates the file before its query runs.)
    admin.exec("CREATE TEMPORARY TABLE hba AS SELECT 0::bigint AS n, 'local all " + role +
               " scram-sha-256' AS l UNION ALL SELECT n, replace(l, E'\\t', ' ') FROM"
               " regexp_split_to_table(pg_read_file('" +
               hba + "'), E'\\n') WITH ORDINALITY AS t(l, n)");
    admin.exec("COPY (SELECT l FROM hba ORDER BY n) TO '" + hba + "'");
    admin.exec("SELECT pg_reload_conf()");
    const std::string bad = saga::test::postgres_uri(b.conninfo, role, wrong);
    const std::string good = saga::test::postgres_uri(b.conninfo, role, right);
    // The reload is asynchronous: wait until the server asks this role for its password.
    bool asks = false;
    for (int i = 0; i < 100 && !asks; ++i) {
      try {
        saga::test::sql_session probe(bad, b.schema);
        std::this_thread::sleep_for(50ms);
      } catch (const std::exception&) {
        asks = true;
      }
    }
    REQUIRE(asks);

    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"list"}, std::vector<std::string>{"show", "o-2", "--json"},
          std::vector<std::string>{"graph", "order_lifecycle"}}) {
      CAPTURE(args.front());
      const auto r = b.on_postgres(args, bad);
      CHECK(r.code == 3);
      CHECK(r.out.empty());
      CHECK(r.err.find(wrong) == std::string::npos);
      CHECK(r.err.find("postgresql://" + role + "@/") != std::string::npos);
      CHECK(r.err.find("password authentication failed") != std::string::npos);
    }

    // A password given as a parameter of the URI is left out too.
    const auto in_query =
        b.on_postgres({"list"}, saga::test::postgres_uri(b.conninfo, role) + "&password=" + wrong);
    CHECK(in_query.code == 3);
    CHECK(in_query.err.find(wrong) == std::string::npos);
    CHECK(in_query.err.find("password=***") != std::string::npos);

    // The right password, a role that may only SELECT: every reading command works.
    const auto ok = b.on_postgres({"list", "--json"}, good);
    REQUIRE_MESSAGE(ok.code == 0, ok.err);
    CHECK(ok.json().size() == 6);
    const auto stats = b.on_postgres({"stats", "--json"}, good);
    REQUIRE_MESSAGE(stats.code == 0, stats.err);
    CHECK(stats.json()["sagas"] == 6);
  }

  TEST_CASE("sagactl on PostgreSQL refuses a schema without saga tables and SQLite-only commands") {
    both b;
    const auto missing = b.on_postgres({"list"}, "", "no_such_schema_here");
    CHECK(missing.code == 3);
    CHECK(missing.err.find("no_such_schema_here") != std::string::npos);
    CHECK(missing.err.find("holds no saga tables") != std::string::npos);

    const auto backup = b.on_postgres({"backup", b.dir.file("copy.db")});
    CHECK(backup.code == 2);
    CHECK(backup.err.find("sagactl: backup: not available on PostgreSQL") == 0);
    CHECK(backup.err.find('\n') == backup.err.size() - 1);  // one line
    CHECK_FALSE(std::filesystem::exists(b.dir.file("copy.db")));
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"purge", "--older-than", "1s"},
          std::vector<std::string>{"purge", "--older-than", "1s", "--dry-run"}}) {
      const auto purge = b.on_postgres(args);
      CHECK(purge.code == 2);
      CHECK(purge.err.find("sagactl: purge: not available on PostgreSQL") == 0);
    }
    CHECK(b.on_postgres({"list", "--json"}).json().size() == 6);  // nothing was purged
  }
}
