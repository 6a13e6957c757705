// sagactl --db postgresql://… (issue 17, item 5): the same events, run through the same engine code
// over a SQLite file and over a PostgreSQL schema on manual clocks that agree, read back by sagactl
// --json from each, give the same documents. Besides: a wrong password is named without it (exit
// 3), a read-only role suffices, a schema without saga tables is refused, and the commands that
// write a SQLite file themselves refuse a PostgreSQL --db (exit 2).

#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <regex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_support.hpp"
#include "saga/clock.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/postgres/store.hpp"
#include "saga/sqlite/store.hpp"
#include "support/number_outbox.hpp"
#include "support/order_events.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

saga::event ev(const std::string& id, const std::string& type, const std::string& subject,
               json data = json::object()) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = subject;
  e.data = std::move(data);
  return e;
}

// One step of the story: the clock's time, then the event (or, with an empty type, nothing).
struct step {
  std::int64_t at_ms;
  saga::event event;
};

// Three hours ago and on (nothing in the last hour: stats' per-minute counts of the last hour are
// the same whenever each sagactl runs). o-1 placed, also an account_lockout saga "o-1"; o-2
// awaiting_shipment with a parked delivery.started; o-3 cancelled; o-4 placed later; a dead letter
// (a type nobody consumes, sent twice); and a saga of a definition that is not registered, with a
// timer due (written through the store).
std::vector<step> story(std::int64_t t0) {
  constexpr std::int64_t minute = 60'000;
  return {
      {t0, ev("e-1", "order.placed", "o-1", saga::test::order_data("o-1"))},
      {t0, ev("e-2", "order.placed", "o-2", saga::test::order_data("o-2"))},
      {t0 + minute, ev("e-3", "payment.succeeded", "o-2")},
      {t0 + minute, ev("e-4", "inventory.reserved", "o-2")},
      {t0 + 2 * minute, ev("e-5", "delivery.started", "o-2")},
      {t0 + 3 * minute, ev("e-6", "order.placed", "o-3", saga::test::order_data("o-3"))},
      {t0 + 3 * minute, ev("e-7", "payment.failed", "o-3")},
      {t0 + 4 * minute, ev("e-8", "auth.login.failed", "o-1")},
      {t0 + 5 * minute, ev("e-9", "no.such.type", "o-9")},
      {t0 + 6 * minute, ev("e-9", "no.such.type", "o-9")},
      {t0 + 40 * minute, ev("e-10", "order.placed", "o-4", saga::test::order_data("o-4"))},
  };
}

// The story through saga::engine over `st`; then outbox rows 1..3 published.
void fill(saga::store& st, std::int64_t t0) {
  saga::manual_clock clock(t0);
  saga::engine e(st, clock);
  e.add(saga::definitions::order_lifecycle());
  e.add(saga::definitions::account_lockout());
  std::int64_t emitted = 0;
  e.on_commit([&](std::span<const saga::published_event> rows) { emitted += std::ssize(rows); });
  saga::instance_record legacy;
  legacy.definition = "legacy";
  legacy.key = "l-1";
  legacy.state = "waiting";
  legacy.data = "{}";
  legacy.version = 1;
  legacy.fingerprint = "0123456789abcdef";
  legacy.correlation_id = "legacy-start";
  legacy.created_ms = legacy.updated_ms = legacy.state_since_ms = t0 - 60'000;
  st.begin();
  st.save_instance(legacy);
  st.arm_timer("legacy", "l-1", "reminder", t0 - 1000);
  st.commit();
  for (const auto& s : story(t0)) {
    clock.set(s.at_ms);
    const auto a = e.handle(s.event);
    if (s.event.type == "no.such.type")
      CHECK_FALSE(a.ok());
    else
      REQUIRE_MESSAGE(a.ok(), a.reason);
  }
  saga::test::number_outbox(st, emitted);  // what the relay does first (PostgreSQL numbers after the commit)
  st.mark_published(1, 3, t0 + 50 * 60'000);
}

bool is_uuid_v7(const std::string& s) {
  if (s.size() != 36 || s[14] != '7') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// What legitimately differs between the two databases, replaced by a mark of its kind:
//   * ages (`age`, `in_state`, `due_in`, `oldest_unpublished_age`): now minus a stored time, now
//     being the wall clock when each sagactl runs (the stored times are the same);
//   * follow-on events' ids: random UUIDv7 the engine draws for each event it writes (payloads
//     and ids of the incoming events, the same in both, stay);
//   * trace ids (`trace_id`, `traceparent`): the engine starts a trace of random ids for an event
//     that comes without one (every event of the story).
void normalise(json& j) {
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if ((k == "age" || k == "in_state" || k == "due_in" || k == "oldest_unpublished_age") && v.is_number())
        v = "<now minus a stored time>";
      else if ((k == "trace_id" || k == "traceparent") && v.is_string())
        v = "<random trace>";
      else
        normalise(v);
    }
  } else if (j.is_array()) {
    for (auto& v : j) normalise(v);
  } else if (j.is_string() && is_uuid_v7(j.get<std::string>())) {
    j = "<uuid>";
  }
}

struct both {
  saga::test::temp_dir dir;
  std::string sqlite = dir.file("saga.db");
  std::string conninfo = saga::test::postgres_conninfo();
  std::string uri = saga::test::postgres_uri(conninfo);
  std::string schema = saga::test::unique_schema("sagactl");
  std::int64_t t0 = wall_ms() - 3 * 3600 * 1000;

  both() {
    {
      saga::sqlite::options o;
      o.path = sqlite;
      saga::sqlite::store st(o);
      fill(st, t0);
    }
    saga::postgres::options o;
    o.conninfo = conninfo;
    o.schema = schema;
    saga::postgres::store st(o);
    fill(st, t0);
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
    const std::vector<std::vector<std::string>> commands = {
        {"list"},
        {"list", "--type", "order_lifecycle", "--state", "placed"},
        {"list", "--stuck-for", "1h", "--limit", "3"},
        {"show", "o-2"},
        {"show", "o-1", "--type", "account_lockout"},
        {"show", "l-1"},
        {"stats"},
        {"definitions"},
        {"definitions", "order_lifecycle"},
        {"timers"},
        {"outbox"},
        {"outbox", "--pending", "--from", "2", "--limit", "3"},
        {"dead-letters"},
        {"audit", "--saga", "o-3"},
    };
    for (auto args : commands) {
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
