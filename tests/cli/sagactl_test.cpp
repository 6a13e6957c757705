// sagactl as users run it: the real binary as a child process, over databases
// the engine filled in the test, and against a real sagad for the actions.

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_support.hpp"
#include "cli/filled_database.hpp"
#include "saga/clock.hpp"
#include "saga/codec.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/definitions/payment_notice.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/trace.hpp"
#include "saga/zmq/curve.hpp"
#include "support/filling_engine.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using saga::cli_test::ev;
using saga::cli_test::filled;
using saga::cli_test::order;
using saga::cli_test::result;
using saga::cli_test::wall_ms;
using namespace std::chrono_literals;

const std::string sagactl = SAGACTL_PATH;
const std::string sagad = SAGAD_PATH;

std::set<std::string> ids(const json& rows) {
  std::set<std::string> out;
  for (const auto& r : rows) out.insert(r.at("id").get<std::string>());
  return out;
}

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == s.size() - 1;
}

std::string read_bytes(const std::string& path) {
  return saga::test::read_text(path);
}

std::int64_t count_rows(const std::string& db, const std::string& sql) {
  SQLite::Database r(db, SQLite::OPEN_READONLY);
  return r.execAndGet(sql).getInt64();
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Sets an environment variable (and the umask) for the children started in a scope.
class scoped_env {
 public:
  scoped_env(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

class scoped_umask {
 public:
  explicit scoped_umask(mode_t m) : old_(::umask(m)) {}
  ~scoped_umask() { ::umask(old_); }
  scoped_umask(const scoped_umask&) = delete;
  scoped_umask& operator=(const scoped_umask&) = delete;

 private:
  mode_t old_;
};

// A database with finished and unfinished orders (the engine on a manual clock):
//   three hours ago: f-done (done), f-cancel (cancelled), f-attention (needs_attention),
//                    f-open (placed)
//   ten minutes ago: r-cancel (cancelled)
struct finished_sagas {
  saga::test::temp_dir dir;
  std::string db = dir.file("saga.db");

  finished_sagas() {
    saga::test::filling_engine f(db, wall_ms() - 3 * 3600 * 1000);
    f.engine.add(saga::definitions::order_lifecycle());
    f.engine.add(saga::definitions::account_lockout());
    auto script = [&](const std::string& id, const std::vector<std::string>& types) {
      f.ok(ev("order.placed", id, order(id)));
      for (const auto& t : types) f.ok(ev(t, id));
    };
    script("f-done", {"payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started",
                      "delivery.confirmed"});
    script("f-cancel", {"payment.failed"});
    script("f-attention", {"payment.succeeded", "order.cancel.requested", "payment.refund.failed",
                           "payment.refund.failed", "payment.refund.failed"});
    script("f-open", {});
    f.ok(ev("auth.login.failed", "f-account"));
    f.clock.set(wall_ms() - 10 * 60 * 1000);
    script("r-cancel", {"order.cancel.requested"});
  }

  std::string state_of(const std::string& key) const {
    SQLite::Database r(db, SQLite::OPEN_READONLY);
    SQLite::Statement s(r, "SELECT state FROM instances WHERE definition = 'order_lifecycle' AND key = ?1");
    s.bind(1, key);
    return s.executeStep() ? s.getColumn(0).getString() : std::string("(gone)");
  }
  std::int64_t rows_of(const std::string& table, const std::string& key) const {
    return count_rows(db, "SELECT count(*) FROM " + table + " WHERE key = '" + key + "'");
  }

  result ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {sagactl, "--db", db});
    return saga::cli_test::run(args, dir.path());
  }
};

}  // namespace

TEST_SUITE("sagactl") {
  TEST_CASE("list --json has the columns and every filter works") {
    filled f;
    auto r = f.ctl({"list", "--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json rows = r.json();
    REQUIRE(rows.is_array());
    CHECK(rows.size() == 5);
    for (const auto& row : rows) {
      for (const char* k : {"type", "id", "state", "version", "age", "in_state", "timers", "parked"})
        CHECK_MESSAGE(row.contains(k), k);
    }
    bool seen_o2 = false;
    for (const auto& row : rows) {
      if (row["type"] == "order_lifecycle" && row["id"] == "o-2") {
        seen_o2 = true;
        CHECK(row["state"] == "awaiting_shipment");
        CHECK(row["timers"] == 1);
        CHECK(row["parked"] == 1);
        CHECK(row["version"].get<int>() >= 3);
        CHECK(row["age"].get<std::int64_t>() >= 3 * 3600 * 1000 - 60'000);
      }
    }
    CHECK(seen_o2);

    CHECK(ids(f.ctl({"list", "--json", "--type", "order_lifecycle"}).json()) ==
          std::set<std::string>{"o-1", "o-2", "o-3", "o-6"});
    CHECK(ids(f.ctl({"list", "--json", "--state", "placed"}).json()) == std::set<std::string>{"o-1", "o-6"});
    // Stuck: non-terminal and in its state for an hour; o-3 is cancelled (terminal), o-6 is recent.
    CHECK(ids(f.ctl({"list", "--json", "--type", "order_lifecycle", "--stuck-for", "1h"}).json()) ==
          std::set<std::string>{"o-1", "o-2"});
    const std::string mid = saga::format_time(wall_ms() - 3600 * 1000);
    CHECK(ids(f.ctl({"list", "--json", "--since", mid}).json()) == std::set<std::string>{"o-6"});
    CHECK(f.ctl({"list", "--json", "--until", mid}).json().size() == 4);
    CHECK(f.ctl({"list", "--json", "--limit", "2"}).json().size() == 2);

    auto human = f.ctl({"list"});
    CHECK(human.code == 0);
    CHECK(human.out.find("TYPE") != std::string::npos);
    CHECK(human.out.find("awaiting_shipment") != std::string::npos);
  }

  TEST_CASE("global options --db and --json work before and after the subcommand") {
    filled f;
    const auto expected = ids(f.ctl({"list", "--json"}).json());
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--db", f.db, "--json", "list"},
             {"list", "--db", f.db, "--json"},
             {"--json", "list", "--db", f.db},
             {"--db", f.db, "list", "--json", "--type", "order_lifecycle"}}) {
      auto r = f.raw(args);
      REQUIRE_MESSAGE(r.code == 0, r.err);
      auto got = ids(r.json());
      got.insert("o-1");  // the filtered call lacks the account_lockout row only
      CHECK(got == expected);
    }
    auto s = f.raw({"show", "o-2", "--json", "--db", f.db});
    REQUIRE_MESSAGE(s.code == 0, s.err);
    CHECK(s.json()["state"] == "awaiting_shipment");

    ::setenv("SAGA_DB", f.db.c_str(), 1);
    auto e = f.raw({"list", "--json"});
    ::unsetenv("SAGA_DB");
    REQUIRE_MESSAGE(e.code == 0, e.err);
    CHECK(ids(e.json()) == expected);
  }

  TEST_CASE("show gives state data history timers parked and follow-on events") {
    filled f;
    auto r = f.ctl({"show", "o-2", "--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json s = r.json();
    CHECK(s["type"] == "order_lifecycle");
    CHECK(s["state"] == "awaiting_shipment");
    CHECK(s["data"]["amount"] == 1000);
    CHECK(s["fingerprint"].get<std::string>().size() == 16);
    REQUIRE(s["history"].size() == 4);
    CHECK(s["history"][0]["event_type"] == "order.placed");
    CHECK(s["history"][0]["to"] == "placed");
    CHECK(s["history"][2]["from"] == "paid");
    CHECK(s["history"][2]["to"] == "awaiting_shipment");
    CHECK(s["history"][3]["outcome"] == "parked");
    REQUIRE(s["timers"].size() == 1);
    CHECK(s["timers"][0]["name"] == "shipment_deadline");
    CHECK(saga::parse_time(s["timers"][0]["due"].get<std::string>()) == f.t0 + 48LL * 3600 * 1000);
    REQUIRE(s["parked"].size() == 1);
    CHECK(s["parked"][0]["type"] == "delivery.started");
    REQUIRE(s["outbox"].size() == 3);
    CHECK(s["outbox"][0]["type"] == "payment.requested");
    CHECK(s["outbox"][0]["published"] == true);  // sequence 2 (o-1's is 1)
    CHECK(s["outbox"][2]["type"] == "shipment.requested");
    CHECK(s["outbox"][2]["published"] == false);

    auto human = f.ctl({"show", "o-2"});
    CHECK(human.code == 0);
    CHECK(human.out.find("paid → awaiting_shipment") != std::string::npos);
    CHECK(human.out.find("shipment_deadline") != std::string::npos);

    // o-1 is both an order and an account: --type chooses.
    auto both = f.ctl({"show", "o-1"});
    CHECK(both.code == 2);
    CHECK(both.err.find("--type") != std::string::npos);
    CHECK(one_line(both.err));
    auto chosen = f.ctl({"show", "o-1", "--type", "account_lockout", "--json"});
    REQUIRE_MESSAGE(chosen.code == 0, chosen.err);
    CHECK(chosen.json()["type"] == "account_lockout");
  }

  // Two orders in one trace (o-7 with a tracestate and an extension attribute), one without a trace.
  TEST_CASE("show prints each event's trace and list --trace finds the sagas of a trace") {
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    saga::test::temp_dir dir;
    const std::string db = dir.file("saga.db");
    {
      saga::manual_clock clock(wall_ms());
      saga::sqlite::options o;
      o.path = db;
      saga::sqlite::store st(o);
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      auto ok = [&](saga::event e, const std::string& span) {
        if (!span.empty()) e.traceparent = "00-" + trace + "-" + span + "-01";
        const auto a = eng.handle(e);
        REQUIRE_MESSAGE(a.ok(), a.reason);
      };
      auto placed = ev("order.placed", "o-7", order("o-7"));
      placed.tracestate = "shop=t61rcWkgMzE";
      placed.extensions = {{"region", "eu"}, {"priority", 2}};
      ok(placed, "00f067aa0ba902b7");
      ok(ev("payment.succeeded", "o-7"), "1111111111111111");
      ok(ev("order.placed", "o-8", order("o-8")), "2222222222222222");
      ok(ev("order.placed", "o-9", order("o-9")), "");
    }
    auto ctl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {sagactl, "--db", db});
      return saga::cli_test::run(args, dir.path());
    };

    auto r = ctl({"show", "o-7", "--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json h = r.json()["history"];
    REQUIRE(h.size() == 2);
    CHECK(h[0]["trace_id"] == trace);
    CHECK(h[0]["traceparent"] == "00-" + trace + "-00f067aa0ba902b7-01");
    CHECK(h[0]["tracestate"] == "shop=t61rcWkgMzE");
    CHECK(h[0]["extensions"] == json{{"region", "eu"}, {"priority", 2}});
    CHECK(h[1]["trace_id"] == trace);
    CHECK(h[1]["tracestate"].is_null());
    CHECK(h[1]["extensions"].is_null());

    auto human = ctl({"show", "o-7"});
    REQUIRE_MESSAGE(human.code == 0, human.err);
    CHECK(human.out.find("TRACE ID") != std::string::npos);
    CHECK(human.out.find(trace) != std::string::npos);
    CHECK(human.out.find("shop=t61rcWkgMzE") != std::string::npos);
    CHECK(human.out.find(R"({"priority":2,"region":"eu"})") != std::string::npos);

    // An event without a trace got a new one, recorded like any other.
    auto untraced = ctl({"show", "o-9", "--json"});
    REQUIRE_MESSAGE(untraced.code == 0, untraced.err);
    const std::string own = untraced.json()["history"][0]["trace_id"].get<std::string>();
    CHECK(saga::valid_trace_id(own));
    CHECK(own != trace);
    auto plain = ctl({"show", "o-9"});
    CHECK(plain.out.find("trace state and extensions") == std::string::npos);

    auto listed = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {"list", "--json"});
      auto l = ctl(args);
      REQUIRE_MESSAGE(l.code == 0, l.err);
      return ids(l.json());
    };
    CHECK(listed({"--trace", trace}) == std::set<std::string>{"o-7", "o-8"});
    CHECK(listed({"--trace", own}) == std::set<std::string>{"o-9"});
    CHECK(listed({"--trace", "0123456789abcdef0123456789abcdef"}).empty());
    CHECK(listed({"--trace", trace, "--limit", "1"}) == std::set<std::string>{"o-7"});
    // The search reads the newest --trace-scan history rows only: o-9's, then o-8's, ...
    CHECK(listed({"--trace", trace, "--trace-scan", "1"}).empty());
    CHECK(listed({"--trace", trace, "--trace-scan", "2"}) == std::set<std::string>{"o-8"});
    auto human_list = ctl({"list", "--trace", trace});
    CHECK(human_list.out.find("o-7") != std::string::npos);
    for (const char* bad : {"4BF92F3577B34DA6A3CE929D0E0E4736", "00000000000000000000000000000000", "abc"}) {
      CAPTURE(bad);
      auto refused = ctl({"list", "--trace", bad});
      CHECK(refused.code == 2);
      CHECK(one_line(refused.err));
    }
  }

  TEST_CASE("stats outbox dead-letters timers and definitions as JSON") {
    filled f;
    auto st = f.ctl({"stats", "--json"});
    REQUIRE_MESSAGE(st.code == 0, st.err);
    const json s = st.json();
    CHECK(s["instances"]["order_lifecycle"]["placed"] == 2);
    CHECK(s["instances"]["order_lifecycle"]["cancelled"] == 1);
    CHECK(s["sagas"] == 5);
    CHECK(s["dead_letters"] == 1);
    CHECK(s["parked"] == 1);
    CHECK(s["inbox"].get<int>() >= 9);
    CHECK(s["unpublished"] == s["outbox"].get<int>() - 3);
    CHECK(s["oldest_unpublished_age"].get<std::int64_t>() >= 3 * 3600 * 1000 - 60'000);
    CHECK(s["handled_per_minute"].size() == 60);
    CHECK(s["handled_last_hour"] == 1);  // o-6's order.placed, ten minutes ago
    CHECK(f.ctl({"stats"}).code == 0);

    const json all = f.ctl({"outbox", "--json"}).json();
    const json pending = f.ctl({"outbox", "--json", "--pending"}).json();
    CHECK(all.size() == s["outbox"].get<std::size_t>());
    CHECK(pending.size() == all.size() - 3);
    CHECK(pending[0]["sequence"] == 4);
    CHECK(pending[0]["published"].is_null());
    CHECK(all[0]["published"].is_string());
    const json from = f.ctl({"outbox", "--json", "--from", "5"}).json();
    CHECK(from[0]["sequence"] == 5);
    CHECK(f.ctl({"outbox"}).code == 0);

    const json dl = f.ctl({"dead-letters", "--json"}).json();
    REQUIRE(dl.size() == 1);
    CHECK(dl[0]["type"] == "no.such.type");
    CHECK(dl[0]["reason"].get<std::string>().find("no definition consumes") != std::string::npos);
    CHECK(f.ctl({"dead-letters"}).code == 0);

    const json timers = f.ctl({"timers", "--json"}).json();
    CHECK(timers.size() == 3);  // payment_timeout of o-1 and o-6, shipment_deadline of o-2
    const std::string soon = saga::format_time(f.t0 + 3600 * 1000);
    const json due = f.ctl({"timers", "--json", "--due-before", soon}).json();
    REQUIRE(due.size() == 1);
    CHECK(due[0]["id"] == "o-1");
    CHECK(due[0]["name"] == "payment_timeout");
    CHECK(f.ctl({"timers"}).code == 0);

    const json d = f.ctl({"definitions", "--json"}).json();
    REQUIRE(d["definitions"].size() == 3);
    CHECK(d["definitions"][2]["name"] == "payment_notice");
    CHECK(d["definitions"][1]["instances"] == 4);
    CHECK(d["orphaned"].empty());
    CHECK(f.ctl({"definitions"}).code == 0);
  }

  TEST_CASE("definitions NAME shows the event contract: what it consumes and starts with and produces") {
    filled f;
    const auto shown = f.ctl({"definitions", "payment_notice"});
    REQUIRE(shown.code == 0);
    CHECK(shown.out.find("consumes     payment_notice.created, premium.paid, saga.timer.due_date, "
                         "saga.timer.grace\n") != std::string::npos);
    CHECK(shown.out.find("starts       payment_notice.created\n") != std::string::npos);
    CHECK(shown.out.find("produces     payment_notice.reminder.requested, payment_notice.settled, "
                         "policy.lapse.requested\n") != std::string::npos);
    CHECK(shown.out.find("terminal     paid, lapsed\n") != std::string::npos);

    // The order's abort actions emit too: order.cancelled is produced by rows and by the abort.
    const json order = f.ctl({"definitions", "order_lifecycle", "--json"}).json();
    const auto produces = order["produces"].get<std::vector<std::string>>();
    CHECK(produces.size() == 12);
    CHECK(std::is_sorted(produces.begin(), produces.end()));
    CHECK(std::find(produces.begin(), produces.end(), "payment.refund.requested") != produces.end());
    CHECK(order["starts"] == json::array({"order.placed"}));

    const auto missing = f.ctl({"definitions", "nope"});
    CHECK(missing.code == 1);
    CHECK(missing.err.find("no definition 'nope' is registered in") != std::string::npos);
  }

  TEST_CASE("definitions NAME --asyncapi writes the event contract as an AsyncAPI 3.0 document") {
    filled f;
    const auto out = f.ctl({"definitions", "order_lifecycle", "--asyncapi"});
    REQUIRE(out.code == 0);
    const json doc = out.json();
    CHECK(doc["asyncapi"] == "3.0.0");
    CHECK(doc["info"]["title"] == "order_lifecycle");
    const json order = f.ctl({"definitions", "order_lifecycle", "--json"}).json();
    CHECK(doc["info"]["version"] == order["fingerprint"]);
    // A channel per event type on the wire: 12 consumed (the two timers are internal), 12 produced.
    CHECK(doc["channels"].size() == 24);
    CHECK(doc["operations"].size() == 24);
    CHECK(doc["channels"]["order_placed"]["address"] == "order.placed");
    CHECK(doc["operations"]["receive_order_placed"]["action"] == "receive");
    CHECK(
        doc["operations"]["receive_order_placed"]["summary"].get<std::string>().starts_with("Starts a saga"));
    CHECK(doc["operations"]["send_payment_refund_requested"]["action"] == "send");
    CHECK_FALSE(doc["channels"].contains("saga_timer_payment_timeout"));
    // Each message is the CloudEvents envelope; data as the event type declares it.
    const auto& placed = doc["components"]["messages"]["order_placed"]["payload"];
    CHECK(placed["properties"]["type"]["const"] == "order.placed");
    CHECK(placed["properties"]["data"]["required"] == json::array({"amount", "currency"}));
    const auto& refund = doc["components"]["messages"]["payment_refund_requested"]["payload"];
    CHECK(refund["properties"]["data"]["properties"].contains("refund_id"));
    const auto& undeclared = doc["components"]["messages"]["payment_succeeded"]["payload"];
    CHECK(undeclared["properties"]["data"] == json{{"type", "object"}});

    // The AsyncAPI 3.0 JSON Schema accepts it (scripts/install-deps.sh installs the schema) and
    // refuses the document with an operation broken.
    const std::string good = f.dir.file("order.asyncapi.json"), bad = f.dir.file("broken.asyncapi.json");
    std::ofstream(good) << doc.dump();
    json broken = doc;
    broken["operations"]["receive_order_placed"]["action"] = "publish";  // AsyncAPI 2's word
    std::ofstream(bad) << broken.dump();
    const std::vector<std::string> check = {PYTHON3_PATH, ASYNCAPI_CHECK, ASYNCAPI_SCHEMA};
    auto with = [&](const std::string& file) {
      auto argv = check;
      argv.push_back(file);
      return saga::cli_test::run(argv, f.dir.path());
    };
    const auto valid = with(good);
    INFO(valid.out << valid.err);
    CHECK(valid.code == 0);
    CHECK(valid.out == "valid\n");
    const auto invalid = with(bad);
    CHECK(invalid.code == 1);
    CHECK(invalid.out.find("operations/receive_order_placed") != std::string::npos);
  }

  // A build that dropped a state registers its graph without it: the sagas still in that state
  // (o-3 alone is cancelled) are orphans.
  TEST_CASE("definitions names instances whose state the stored graph no longer has") {
    filled f;
    {
      SQLite::Database w(f.db, SQLite::OPEN_READWRITE);
      w.exec(
          "UPDATE definitions SET graph = json_set(graph, '$.states', (SELECT json_group_array(s.value)"
          " FROM json_each(definitions.graph, '$.states') AS s WHERE s.value <> 'cancelled'))"
          " WHERE name = 'order_lifecycle'");
    }
    const json d = f.ctl({"definitions", "--json"}).json();
    REQUIRE(d["orphaned"].size() == 1);
    CHECK(d["orphaned"][0]["id"] == "o-3");
    CHECK(d["orphaned"][0]["state"] == "cancelled");
  }

  TEST_CASE("list answers while another connection holds an uncommitted BEGIN IMMEDIATE") {
    filled f;
    SQLite::Database w(f.db, SQLite::OPEN_READWRITE);
    w.exec("BEGIN IMMEDIATE");
    w.exec("INSERT INTO meta (key, value) VALUES ('held', 1)");
    // The write lock is held until both have ended: a reader that needed it would wait out its
    // 5 s busy timeout and fail with SQLITE_BUSY, so success is the proof (no timing needed).
    auto r = f.ctl({"list", "--json"}, 30s);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.json().size() == 5);
    auto s = f.ctl({"show", "o-2", "--json"}, 30s);
    CHECK_MESSAGE(s.code == 0, s.err);
    w.exec("ROLLBACK");
  }

  TEST_CASE("injection strings in every filter change nothing and return nothing") {
    filled f;
    const std::string before = read_bytes(f.db);
    REQUIRE(!before.empty());
    for (const std::string bad : {"x' OR '1'='1", "'; DROP TABLE instances; --", "o-1\" OR 1=1 --", "%"}) {
      CAPTURE(bad);
      for (const auto& opt : {"--type", "--state"}) {
        auto r = f.ctl({"list", "--json", opt, bad});
        REQUIRE_MESSAGE(r.code == 0, r.err);
        CHECK(r.json().empty());
      }
      CHECK(f.ctl({"show", bad}).code == 1);
      CHECK(f.ctl({"show", "o-2", "--type", bad}).code == 1);
      CHECK(f.ctl({"graph", bad}).code == 1);
      CHECK(f.ctl({"graph", "order_lifecycle", "--instance", bad}).code == 1);
      // Values that must be times, durations or numbers never reach SQL at all.
      CHECK(f.ctl({"list", "--since", bad}).code == 2);
      CHECK(f.ctl({"list", "--until", bad}).code == 2);
      CHECK(f.ctl({"list", "--stuck-for", bad}).code == 2);
      CHECK(f.ctl({"list", "--limit", bad}).code == 2);
      CHECK(f.ctl({"timers", "--due-before", bad}).code == 2);
      CHECK(f.ctl({"outbox", "--from", bad}).code == 2);
      CHECK(f.ctl({"redrive", bad}).code == 2);
    }
    CHECK(read_bytes(f.db) == before);
    CHECK(f.ctl({"list", "--json"}).json().size() == 5);
  }

  TEST_CASE("bad input gets one line on stderr and the right exit code") {
    filled f;
    auto missing = f.raw({"--db", f.dir.file("nope.db"), "list"});
    CHECK(missing.code == 3);
    CHECK(missing.err.find("no database at") != std::string::npos);
    CHECK(one_line(missing.err));
    CHECK_FALSE(std::filesystem::exists(f.dir.file("nope.db")));  // never created

    const std::string newer = f.dir.file("newer.db");
    std::filesystem::copy_file(f.db, newer);
    {
      SQLite::Database w(newer, SQLite::OPEN_READWRITE);
      w.exec("PRAGMA user_version = 99");
    }
    auto n = f.raw({"--db", newer, "list"});
    CHECK(n.code == 3);
    CHECK(n.err.find("newer") != std::string::npos);
    CHECK(one_line(n.err));

    const std::string garbage = f.dir.file("garbage.db");
    {
      std::ofstream g(garbage);
      g << std::string(8192, 'x');
    }
    auto gb = f.raw({"--db", garbage, "stats"});
    CHECK(gb.code == 3);
    CHECK(one_line(gb.err));

    auto unknown = f.ctl({"show", "o-404"});
    CHECK(unknown.code == 1);
    CHECK(unknown.err == "sagactl: no saga with id 'o-404'\n");
    CHECK(f.ctl({"graph", "nosuchdef"}).code == 1);
    CHECK(f.ctl({"redrive", "999"}).code == 1);

    auto dur = f.ctl({"list", "--stuck-for", "ten minutes"});
    CHECK(dur.code == 2);
    CHECK(dur.err.find("not a duration") != std::string::npos);
    CHECK(one_line(dur.err));
    auto tm = f.ctl({"list", "--since", "2026-13-45"});
    CHECK(tm.code == 2);
    CHECK(tm.err.find("RFC 3339") != std::string::npos);
    CHECK(one_line(tm.err));
    auto opt = f.ctl({"list", "--bogus"});
    CHECK(opt.code == 2);
    CHECK(one_line(opt.err));
    CHECK(f.raw({}).code == 2);
    CHECK(f.raw({"frobnicate"}).code == 2);
    CHECK(f.ctl({"abort", "o-1"}).code == 2);  // --reason is required
    CHECK(f.ctl({"graph", "order_lifecycle", "--format", "png"}).code == 2);
    CHECK(f.raw({"--help"}).code == 0);
  }

  TEST_CASE("graph as dot mermaid and svg with an instance drawn on it") {
    filled f;
    const std::string dot_file = f.dir.file("g.dot");
    auto r = f.ctl({"graph", "order_lifecycle", "--format", "dot", "--output", dot_file});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.empty());
    auto svg =
        saga::cli_test::run({"/usr/bin/dot", "-Tsvg", dot_file, "-o", f.dir.file("g.svg")}, f.dir.path());
    CHECK_MESSAGE(svg.code == 0, svg.err);
    CHECK(svg.err.empty());

    auto inst = f.ctl({"graph", "order_lifecycle", "--instance", "o-2"});
    REQUIRE(inst.code == 0);
    CHECK(inst.out.find("fillcolor=\"#ffd966\"") != std::string::npos);  // the current state
    CHECK(inst.out.find("(#3)") != std::string::npos);                   // the third step
    CHECK(inst.out.find("shipment_deadline due") != std::string::npos);  // its armed timer

    auto s = f.ctl({"graph", "order_lifecycle", "--instance", "o-2", "--format", "svg"});
    REQUIRE_MESSAGE(s.code == 0, s.err);
    CHECK(s.err.empty());
    CHECK(s.out.find("<svg") != std::string::npos);
    CHECK(s.out.find("</svg>") != std::string::npos);

    auto m = f.ctl({"graph", "order_lifecycle", "--format", "mermaid", "--instance", "o-2"});
    REQUIRE(m.code == 0);
    CHECK(m.out.rfind("stateDiagram-v2", 0) == 0);
    CHECK(m.out.find("class awaiting_shipment current") != std::string::npos);
  }

  TEST_CASE("backup taken while the engine writes opens and passes integrity_check") {
    filled f;
    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    std::thread writer([&] {
      saga::system_clock clock;
      saga::sqlite::options o;
      o.path = f.db;
      o.synchronous = "NORMAL";
      saga::sqlite::store st(o);
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      for (int i = 0; !stop.load() || written.load() < 50; ++i) {
        const std::string id = "load-" + std::to_string(i);
        if (eng.handle(ev("order.placed", id, order(id))).ok()) ++written;
      }
    });
    while (written.load() < 20) std::this_thread::sleep_for(5ms);
    std::vector<std::string> copies;
    for (int i = 0; i < 3; ++i) {
      copies.push_back(f.dir.file("backup-" + std::to_string(i) + ".db"));
      auto r = f.ctl({"backup", copies.back()});
      CHECK_MESSAGE(r.code == 0, r.err);
    }
    stop = true;
    writer.join();
    for (const auto& c : copies) {
      SQLite::Database b(c, SQLite::OPEN_READONLY);
      CHECK(b.execAndGet("PRAGMA integrity_check").getString() == "ok");
      CHECK(b.execAndGet("SELECT count(*) FROM instances").getInt() >= 5);
      CHECK(b.execAndGet("PRAGMA user_version").getInt() == saga::sqlite::store::current_schema);
    }
    // The copy is a database sagactl reads like the original.
    auto r = f.raw({"--db", copies.back(), "show", "o-2", "--json"});
    CHECK(r.code == 0);
    // An existing file is never overwritten.
    CHECK(f.ctl({"backup", copies.front()}).code == 2);
  }

  TEST_CASE("send abort resolve redrive and tail against a real sagad") {
    saga::test::temp_dir dir;
    const std::string db = dir.file("sagad.db");
    auto started = saga::test::start_daemon({sagad, "--db", db, "--park-limit", "1", "--log-level", "warn"},
                                            saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                            dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(started, started.error);
    auto& daemon = started.proc;
    const std::string ingress = started.ep.ingress, pub = started.ep.publish, replay = started.ep.replay;
    REQUIRE_MESSAGE(saga::test::wait_until_ingress_answers(ingress, 10s, daemon.get()), daemon->err());
    auto ctl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {sagactl, "--db", db});
      args.insert(args.end(), {"--endpoint", ingress});
      return saga::cli_test::run(args, dir.path());
    };
    auto read = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {sagactl, "--db", db, "--json"});
      return saga::cli_test::run(args, dir.path());
    };

    // send places an order and prints the ack
    auto placed = ctl({"send", "--type", "order.placed", "--subject", "o-100", "--json", "--data",
                       R"({"amount": 2500, "currency": "EUR"})"});
    REQUIRE_MESSAGE(placed.code == 0, placed.err);
    const json ack = placed.json();
    CHECK(ack["status"] == "accepted");
    CHECK(ack["saga"]["state"] == "placed");
    {
      std::ofstream d(dir.file("data.json"));
      d << R"({"amount": 10, "currency": "EUR"})";
    }
    auto human =
        ctl({"send", "--type", "order.placed", "--subject", "o-101", "--data", "@" + dir.file("data.json")});
    CHECK_MESSAGE(human.code == 0, human.err);
    CHECK(human.out.find("accepted transitioned: order_lifecycle/o-101 is placed") != std::string::npos);
    CHECK(ctl({"send", "--type", "order.placed", "--subject", "o-x", "--data", "[1]"}).code == 2);
    // send in a trace: its follow-on event carries the trace id, from a span of its own
    const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto traced = ctl({"send", "--type", "order.placed", "--subject", "o-102", "--traceparent", parent,
                       "--tracestate", "shop=1", "--data", R"({"amount": 5, "currency": "EUR"})"});
    REQUIRE_MESSAGE(traced.code == 0, traced.err);
    const json in_trace = read({"show", "o-102"}).json();
    CHECK(in_trace["history"][0]["traceparent"] == parent);
    CHECK(in_trace["history"][0]["tracestate"] == "shop=1");
    REQUIRE(in_trace["outbox"].size() == 1);
    SQLite::Database sql(db, SQLite::OPEN_READONLY);
    const auto follow_on =
        json::parse(sql.execAndGet("SELECT payload FROM outbox WHERE key = 'o-102'").getString());
    CHECK(saga::trace_id_of(follow_on["traceparent"].get<std::string>()) ==
          "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(follow_on["traceparent"] != parent);
    auto bad_trace = ctl({"send", "--type", "order.placed", "--subject", "o-103", "--traceparent", "00-xyz"});
    CHECK(bad_trace.code == 2);
    CHECK(bad_trace.err.find("traceparent") != std::string::npos);

    // abort: cancelled, recorded in history, order.cancelled in the outbox
    auto ab = ctl({"abort", "o-100", "--reason", "customer called", "--operator", "alice"});
    REQUIRE_MESSAGE(ab.code == 0, ab.err);
    const json shown = read({"show", "o-100"}).json();
    CHECK(shown["state"] == "cancelled");
    bool recorded = false;
    for (const auto& h : shown["history"])
      if (h["event_type"] == "saga.operator.abort" && h["to"] == "cancelled") recorded = true;
    CHECK(recorded);
    bool emitted = false;
    for (const auto& o : shown["outbox"])
      if (o["type"] == "order.cancelled") emitted = true;
    CHECK(emitted);

    auto again = ctl({"abort", "o-100", "--reason", "twice"});
    CHECK(again.code == 4);
    CHECK(again.err.find("terminal state 'cancelled'") != std::string::npos);
    CHECK(one_line(again.err));
    auto res = ctl({"resolve", "o-101", "--to", "done", "--reason", "checked"});
    CHECK(res.code == 4);
    CHECK(res.err.find("resolve applies only") != std::string::npos);

    // a rejected event becomes a dead letter; redriving it is rejected again
    auto unknown = ctl({"send", "--type", "no.such.type", "--subject", "z"});
    CHECK(unknown.code == 4);
    CHECK(unknown.err.find("rejected") != std::string::npos);
    // over the park limit (1): payment.failed is rejected, then the saga starts
    CHECK(ctl({"send", "--type", "payment.succeeded", "--subject", "o-200"}).code == 0);
    CHECK(ctl({"send", "--type", "payment.failed", "--subject", "o-200"}).code == 4);
    CHECK(ctl({"send", "--type", "order.placed", "--subject", "o-200", "--data",
               R"({"amount":1,"currency":"EUR"})"})
              .code == 0);
    const json letters = read({"dead-letters"}).json();
    std::int64_t unknown_id = 0, over_limit_id = 0;
    for (const auto& l : letters) {
      if (l["type"] == "no.such.type") unknown_id = l["id"];
      if (l["type"] == "payment.failed") over_limit_id = l["id"];
    }
    REQUIRE(unknown_id > 0);
    REQUIRE(over_limit_id > 0);
    auto re1 = ctl({"redrive", std::to_string(unknown_id)});
    CHECK(re1.code == 4);
    CHECK(re1.err.find("no definition consumes") != std::string::npos);
    auto re2 = ctl({"redrive", std::to_string(over_limit_id), "--json"});
    REQUIRE_MESSAGE(re2.code == 0, re2.err);
    CHECK(re2.json()["status"] == "accepted");
    CHECK(re2.json()["saga"]["id"] == "o-200");
    CHECK(ctl({"redrive", "99999"}).code == 1);
    const json o200 = read({"show", "o-200"}).json();
    CHECK(o200["history"].back()["event_type"] == "payment.failed");  // the redriven event reached the saga

    // tail: the published events from sequence 1, as JSON lines
    auto t = saga::cli_test::run({sagactl, "--db", db, "tail", "--from", "1", "--count", "3", "--json",
                                  "--events", pub, "--replay", replay},
                                 dir.path(), 15s);
    REQUIRE_MESSAGE(t.code == 0, t.err);
    std::vector<json> lines;
    std::size_t start = 0;
    for (std::size_t nl; (nl = t.out.find('\n', start)) != std::string::npos; start = nl + 1)
      lines.push_back(json::parse(t.out.substr(start, nl - start)));
    REQUIRE(lines.size() == 3);
    CHECK(lines[0]["sequence"] == 1);
    CHECK(lines[0]["type"] == "payment.requested");
    CHECK(lines[0]["event"]["subject"] == "o-100");
    CHECK(lines[2]["sequence"] == 3);
    auto typed = saga::cli_test::run({sagactl, "--db", db, "tail", "--from", "1", "--count", "1", "--type",
                                      "order.cancelled", "--events", pub, "--replay", replay},
                                     dir.path(), 15s);
    REQUIRE_MESSAGE(typed.code == 0, typed.err);
    CHECK(typed.out.find("order.cancelled  o-100") != std::string::npos);

    // tail follows what is published next, runs until SIGTERM, then ends with 0
    {
      const auto next = count_rows(db, "SELECT coalesce(max(sequence), 0) FROM outbox") + 1;
      saga::test::process follow(
          {sagactl, "--db", db, "tail", "--from", std::to_string(next), "--events", pub, "--replay", replay},
          dir.file("tail.out"), dir.file("tail.err"));
      CHECK(ctl({"send", "--type", "order.placed", "--subject", "o-400", "--data",
                 R"({"amount":1,"currency":"EUR"})"})
                .code == 0);
      bool shown = false;
      for (int i = 0; i < 400 && !shown && follow.running(); ++i) {  // up to 20 s
        shown = follow.out().find("payment.requested  o-400") != std::string::npos;
        if (!shown) std::this_thread::sleep_for(50ms);
      }
      INFO("tail stdout: " << follow.out() << "; stderr: " << follow.err());
      CHECK(shown);
      CHECK(follow.running());
      follow.signal(SIGTERM);
      CHECK_MESSAGE(follow.wait_for(30s).code() == 0, follow.err());
    }

    // sagad down
    daemon->signal(SIGTERM);
    CHECK(daemon->wait_for(10s).code() == 0);
    auto down =
        ctl({"send", "--type", "order.placed", "--subject", "o-300", "--timeout", "200ms", "--tries", "2"});
    CHECK(down.code == 4);
    CHECK(down.err.find("sagad unreachable") != std::string::npos);
    CHECK(one_line(down.err));
  }
  TEST_CASE("graph svg runs dot in a fresh private temporary folder and removes it") {
    filled f;
    // A stand-in for Graphviz's dot (first on PATH) that reports where sagactl put its input.
    saga::test::temp_dir bin, tmp;
    const std::string report = bin.file("report");
    {
      std::ofstream d(bin.file("dot"));
      d << "#!/bin/sh\n"
           "# called as: dot -Tsvg -o OUT IN\n"
           "stat -c '%a %n' \"$(dirname \"$4\")\" \"$4\" > \"$SAGA_TEST_DOT_REPORT\"\n"
           "if [ -n \"$SAGA_TEST_DOT_FAIL\" ]; then echo 'syntax error in line 1' >&2; exit 1; fi\n"
           "echo '<svg>fake</svg>' > \"$3\"\n";
    }
    std::filesystem::permissions(bin.file("dot"), std::filesystem::perms::owner_all);
    const char* path = std::getenv("PATH");
    scoped_env on_path("PATH", bin.path().string() + ":" + (path ? path : "/usr/bin:/bin"));
    scoped_env tmpdir("TMPDIR", tmp.path().string());
    scoped_env reported("SAGA_TEST_DOT_REPORT", report);
    scoped_umask permissive(022);  // what the folder's mode must not depend on

    auto r = f.ctl({"graph", "order_lifecycle", "--format", "svg"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.out == "<svg>fake</svg>\n");
    const std::string seen = read_bytes(report);
    INFO(seen);
    // "700 DIR\n600 DIR/graph.dot\n"
    std::istringstream lines(seen);
    std::string dir_mode, dir, file_mode, file;
    lines >> dir_mode >> dir >> file_mode >> file;
    CHECK(dir_mode == "700");
    CHECK(file_mode == "600");
    CHECK(std::filesystem::path(dir).parent_path() == tmp.path());
    CHECK(std::filesystem::path(dir).filename().string().rfind("sagactl-svg-", 0) == 0);
    CHECK(file == dir + "/graph.dot");
    CHECK_FALSE(std::filesystem::exists(dir));  // removed after use
    CHECK(std::filesystem::is_empty(tmp.path()));

    // Two runs never share a folder (mkdtemp, not the process id).
    auto again = f.ctl({"graph", "order_lifecycle", "--format", "svg"});
    REQUIRE_MESSAGE(again.code == 0, again.err);
    std::istringstream second(read_bytes(report));
    std::string mode2, dir2;
    second >> mode2 >> dir2;
    CHECK(dir2 != dir);

    // dot failing: its first error line, exit 2, and the folder is still removed.
    scoped_env failing("SAGA_TEST_DOT_FAIL", "1");
    auto bad = f.ctl({"graph", "order_lifecycle", "--format", "svg"});
    CHECK(bad.code == 2);
    CHECK(bad.err == "sagactl: dot -Tsvg failed: syntax error in line 1\n");
    CHECK(std::filesystem::is_empty(tmp.path()));
  }

  TEST_CASE("backup creates a new file with mode 0600 and refuses an existing file or a symlink") {
    filled f;
    scoped_umask permissive(0);  // SQLite would create 0644 files, umask or not
    const std::string copy = f.dir.file("copy.db");
    auto r = f.ctl({"backup", copy, "--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(mode_of(copy) == 0600);
    CHECK(r.json()["pages"].get<int>() > 0);
    CHECK(count_rows(copy, "SELECT count(*) FROM instances") == 5);

    // An existing file is neither overwritten nor truncated.
    const std::string existing = f.dir.file("existing.db");
    {
      std::ofstream e(existing);
      e << "keep me";
    }
    auto ex = f.ctl({"backup", existing});
    CHECK(ex.code == 2);
    CHECK(ex.err.find("already exists") != std::string::npos);
    CHECK(one_line(ex.err));
    CHECK(read_bytes(existing) == "keep me");

    // A symlink (even a dangling one) is not followed: nothing is created at its target.
    const std::string target = f.dir.file("elsewhere.db"), link = f.dir.file("link.db");
    std::filesystem::create_symlink(target, link);
    auto ln = f.ctl({"backup", link});
    CHECK(ln.code == 2);
    CHECK(one_line(ln.err));
    CHECK_FALSE(std::filesystem::exists(target));
  }

  TEST_CASE("keygen writes a key pair that libzmq accepts and never overwrites one") {
    saga::test::temp_dir dir;
    scoped_umask permissive(0);
    const std::string base = dir.file("payments");
    auto r = saga::cli_test::run({sagactl, "keygen", base, "--json"}, dir.path());
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json j = r.json();
    CHECK(j["public_file"] == base + ".key");
    CHECK(j["secret_file"] == base + ".key_secret");
    CHECK(mode_of(base + ".key_secret") == 0600);
    CHECK((mode_of(base + ".key") & 0022) == 0);
    const auto pair = saga::zmq::read_key_file(base + ".key_secret", true);
    CHECK(pair.public_key == j["public_key"]);
    CHECK(saga::zmq::public_key_from(base + ".key") == pair.public_key);
    // libzmq derives the same public key from the secret one.
    char derived[41] = {};
    REQUIRE(zmq_curve_public(derived, pair.secret_key.c_str()) == 0);
    CHECK(std::string(derived) == pair.public_key);

    const std::string secret_before = read_bytes(base + ".key_secret");
    auto again = saga::cli_test::run({sagactl, "keygen", base}, dir.path());
    CHECK(again.code == 2);
    CHECK(one_line(again.err));
    CHECK(again.err.find(base + ".key") != std::string::npos);
    CHECK(read_bytes(base + ".key_secret") == secret_before);

    auto text = saga::cli_test::run({sagactl, "keygen", dir.file("ops")}, dir.path());
    REQUIRE(text.code == 0);
    CHECK(text.out.find("public key  " + saga::zmq::public_key_from(dir.file("ops.key"))) == 0);
  }

  TEST_CASE("backup in small steps while the engine writes ends with a consistent copy") {
    filled f;
    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    std::thread writer([&] {
      saga::system_clock clock;
      saga::sqlite::options o;
      o.path = f.db;
      o.synchronous = "NORMAL";
      saga::sqlite::store st(o);
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = "step-" + std::to_string(i);
        if (eng.handle(ev("order.placed", id, order(id))).ok()) ++written;
      }
    });
    while (written.load() < 200) std::this_thread::sleep_for(5ms);  // more pages than one step
    const std::string copy = f.dir.file("stepped.db");
    auto r = f.ctl({"backup", copy, "--pages-per-step", "2", "--json"}, 60s);
    stop = true;
    writer.join();
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json out = r.json();
    CHECK(out["steps"].get<int>() > 1);  // copied in steps, not under one snapshot
    SQLite::Database b(copy, SQLite::OPEN_READONLY);
    CHECK(b.execAndGet("PRAGMA integrity_check").getString() == "ok");
    // Each saga came with its history and its outbox row: a copy of one moment.
    CHECK(b.execAndGet("SELECT count(*) FROM instances WHERE key LIKE 'step-%'").getInt64() ==
          b.execAndGet("SELECT count(DISTINCT key) FROM history WHERE key LIKE 'step-%'").getInt64());
    CHECK(b.execAndGet("SELECT count(*) FROM instances WHERE key LIKE 'step-%'").getInt64() >= 200);
  }

  TEST_CASE("purge removes only sagas finished before the cutoff with their history and timers") {
    finished_sagas f;
    REQUIRE(f.state_of("f-done") == "done");
    REQUIRE(f.state_of("f-cancel") == "cancelled");
    REQUIRE(f.state_of("f-attention") == "needs_attention");
    REQUIRE(f.state_of("r-cancel") == "cancelled");
    const auto instances_before = count_rows(f.db, "SELECT count(*) FROM instances");
    const auto inbox_before = count_rows(f.db, "SELECT count(*) FROM inbox");
    const auto history_done = f.rows_of("history", "f-done") + f.rows_of("history", "f-cancel");
    REQUIRE(history_done >= 8);
    // Disarmed timers keep their entries (and generations) in the saga's row, which purge removes.
    REQUIRE(count_rows(f.db, "SELECT count(*) FROM instances WHERE key = 'f-done' AND timers IS NOT NULL") ==
            1);

    // --dry-run counts and removes nothing.
    auto dry = f.ctl({"purge", "--older-than", "1h", "--dry-run", "--json"});
    REQUIRE_MESSAGE(dry.code == 0, dry.err);
    const json d = dry.json();
    CHECK(d["dry_run"] == true);
    CHECK(d["purged"] == 0);
    CHECK(d["would_purge"] == 2);
    CHECK(d["history"] == history_done);
    CHECK(d["definitions"]["order_lifecycle"] == 2);
    CHECK(d["definitions"]["account_lockout"] == 0);
    CHECK(count_rows(f.db, "SELECT count(*) FROM instances") == instances_before);
    CHECK(f.rows_of("history", "f-done") > 0);
    auto human_dry = f.ctl({"purge", "--older-than", "1h", "--dry-run"});
    CHECK(human_dry.code == 0);
    CHECK(human_dry.out.find("would purge 2 finished sagas") != std::string::npos);

    // One saga per transaction: progress on stderr, the total on stdout.
    auto r = f.ctl({"purge", "--older-than", "1h", "--batch", "1", "--json"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const json p = r.json();
    CHECK(p["purged"] == 2);
    CHECK(p["definitions"]["order_lifecycle"] == 2);
    CHECK(p["transactions"].get<int>() >= 3);
    CHECK(r.err.find("order_lifecycle: 2 sagas removed") != std::string::npos);
    for (const std::string gone : {"f-done", "f-cancel"}) {
      CAPTURE(gone);
      CHECK(f.state_of(gone) == "(gone)");
      CHECK(f.rows_of("history", gone) == 0);
      CHECK(f.rows_of("parked", gone) == 0);
    }
    // Unfinished, waiting for an operator, or finished too recently: kept with their history.
    CHECK(f.state_of("f-open") == "placed");
    CHECK(f.state_of("f-attention") == "needs_attention");
    CHECK(f.state_of("r-cancel") == "cancelled");
    CHECK(f.rows_of("history", "f-attention") >= 6);
    CHECK(f.rows_of("history", "r-cancel") == 2);
    CHECK(count_rows(f.db, "SELECT count(*) FROM instances") == instances_before - 2);
    CHECK(count_rows(f.db, "SELECT count(*) FROM inbox") == inbox_before);  // the dedup window stays

    // Nothing left older than the cutoff; a shorter one takes the recent cancellation.
    CHECK(f.ctl({"purge", "--older-than", "1h", "--json"}).json()["purged"] == 0);
    auto recent = f.ctl({"purge", "--older-than", "1m", "--definition", "order_lifecycle", "--json"});
    REQUIRE_MESSAGE(recent.code == 0, recent.err);
    CHECK(recent.json()["purged"] == 1);
    CHECK(f.state_of("r-cancel") == "(gone)");
    CHECK(f.state_of("f-attention") == "needs_attention");

    auto unknown = f.ctl({"purge", "--older-than", "1h", "--definition", "no_such_flow"});
    CHECK(unknown.code == 1);
    CHECK(one_line(unknown.err));
    CHECK(f.ctl({"purge", "--older-than", "a while"}).code == 2);
    CHECK(f.ctl({"purge"}).code == 2);  // --older-than is required
    CHECK(f.ctl({"purge", "--older-than", "1h", "--batch", "0"}).code == 2);
  }

  TEST_CASE("purge works while another connection keeps writing") {
    finished_sagas f;
    std::atomic<bool> stop{false};
    std::atomic<int> written{0};
    std::thread writer([&] {
      saga::system_clock clock;
      saga::sqlite::options o;
      o.path = f.db;
      saga::sqlite::store st(o);
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      for (int i = 0; !stop.load(); ++i) {
        const std::string id = "live-" + std::to_string(i);
        if (eng.handle(ev("order.placed", id, order(id))).ok()) ++written;
      }
    });
    while (written.load() < 20) std::this_thread::sleep_for(5ms);
    auto r = f.ctl({"purge", "--older-than", "1h", "--batch", "1", "--json"});
    stop = true;
    writer.join();
    INFO("purge took " << r.seconds << " s while " << written.load() << " events were written");
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.json()["purged"] == 2);
    CHECK(count_rows(f.db, "SELECT count(*) FROM instances WHERE key LIKE 'live-%'") == written.load());
  }

  TEST_CASE("dead-letters shows count last and truncated and redrive refuses a truncated one") {
    filled f;
    const json before = f.ctl({"dead-letters", "--json"}).json();
    REQUIRE(before.size() == 1);
    CHECK(before[0]["count"] == 1);
    CHECK(before[0]["truncated"] == false);
    CHECK(before[0]["last"] == before[0]["created"]);
    const std::int64_t id = before[0]["id"];
    {
      SQLite::Database w(f.db, SQLite::OPEN_READWRITE);
      w.exec("UPDATE dead_letters SET truncated = 1, count = 4, last_ms = created_ms + 60000");
    }
    const json after = f.ctl({"dead-letters", "--json"}).json();
    CHECK(after[0]["truncated"] == true);
    CHECK(after[0]["count"] == 4);
    CHECK(saga::parse_time(after[0]["last"].get<std::string>()) ==
          *saga::parse_time(after[0]["created"].get<std::string>()) + 60000);
    auto human = f.ctl({"dead-letters"});
    CHECK(human.code == 0);
    CHECK(human.out.find("TRUNCATED") != std::string::npos);

    // Refused before anything is sent: no sagad listens here (an ipc path in the test's own
    // folder, which nothing binds), and the reason is the truncation.
    const std::string nobody = "ipc://" + f.dir.file("nobody");
    auto r =
        f.ctl({"redrive", std::to_string(id), "--endpoint", nobody, "--timeout", "200ms", "--tries", "1"});
    CHECK(r.code == 4);
    CHECK(r.err.find("truncated") != std::string::npos);
    CHECK(r.err.find("unreachable") == std::string::npos);
    CHECK(one_line(r.err));
  }

  TEST_CASE("timers and definitions name due timers of definitions that are not registered") {
    filled f;
    {
      SQLite::Database w(f.db, SQLite::OPEN_READWRITE);
      w.exec(
          "INSERT INTO instances (definition, key, state, data, version, fingerprint, correlation_id,"
          " created_ms, updated_ms, state_since_ms, timers, next_due_ms) VALUES"
          " ('retired_flow', 'k-1', 'waiting', '{}', 1, 'f', 'c1', 1, 1, 1, '{\"reminder\":[1000,1]}', 1000),"
          " ('retired_flow', 'k-2', 'waiting', '{}', 1, 'f', 'c2', 1, 1, 1, '{\"reminder\":[2000,1]}', "
          "2000)");
    }
    const json timers = f.ctl({"timers", "--json"}).json();
    REQUIRE(timers.size() == 5);
    for (const auto& t : timers) {
      CAPTURE(t.dump());
      CHECK(t["registered"] == (t["type"] != "retired_flow"));
    }
    auto human = f.ctl({"timers"});
    CHECK(human.code == 0);
    CHECK(human.out.find("definition not registered") != std::string::npos);

    const json d = f.ctl({"definitions", "--json"}).json();
    REQUIRE(d["definitions"].size() == 3);
    for (const auto& def : d["definitions"]) {
      CAPTURE(def.dump());
      // Only o-1's payment timeout (armed three hours ago for 15 minutes) is due.
      CHECK(def["due_timers"] == (def["name"] == "order_lifecycle" ? 1 : 0));
    }
    REQUIRE(d["unregistered_due_timers"].size() == 1);
    CHECK(d["unregistered_due_timers"][0]["name"] == "retired_flow");
    CHECK(d["unregistered_due_timers"][0]["due_timers"] == 2);
    auto table = f.ctl({"definitions"});
    CHECK(table.code == 0);
    CHECK(table.out.find("retired_flow") != std::string::npos);
    CHECK(table.out.find("(not registered)") != std::string::npos);
  }
}
