// sagactl migrate and definition versions (issue 18) against a real sagad: sagas started on the
// built-in order_lifecycle v1, then sagad restarted with v2 beside it (examples/order_v2 as a
// plugin); the dry run, the migration, a second run, and a migration whose sagad is killed
// half-way and restarted.

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "cli/cli_support.hpp"
#include "saga/zmq/client.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string sagactl = SAGACTL_PATH;
const std::string sagad = SAGAD_PATH;
const std::string order_v2 = SAGA_ORDER_V2_PLUGIN;

// The events after order.placed that take an order to `state` on version 1.
const std::map<std::string, std::vector<std::string>> paths = {
    {"placed", {}},
    {"paid", {"payment.succeeded"}},
    {"awaiting_shipment", {"payment.succeeded", "inventory.reserved"}},
    {"shipped", {"payment.succeeded", "inventory.reserved", "shipment.dispatched"}},
    {"delivering", {"payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started"}},
    {"refunding", {"payment.succeeded", "inventory.unavailable"}},
    {"done",
     {"payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started",
      "delivery.confirmed"}},
};

struct setup {
  explicit setup(saga::test::temp_dir& d) : dir(d) {}

  saga::test::temp_dir& dir;
  std::string db = dir.file("sagad.db");
  zmq::context_t ctx;
  saga::test::started_daemon daemon;

  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{sagad, "--db", db, "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    daemon = saga::test::start_daemon(argv, saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                      dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(daemon, daemon.error);
  }
  void stop() {
    REQUIRE(daemon.proc->signal(SIGTERM));
    CHECK(daemon.proc->wait_for(30s).code() == 0);
  }
  void send(const std::vector<saga::event>& events) {
    saga::zmq::client_options co;
    co.window = 200;
    saga::zmq::client c(ctx, daemon.ep.ingress, co);
    for (const auto& a : c.send_all(events)) REQUIRE_MESSAGE(a.ok(), a.reason);
  }
  // `n` orders "<state>-<i>" taken to `state`, one event type at a time.
  void orders_in(const std::string& state, int n) {
    std::vector<saga::event> events;
    for (int i = 0; i < n; ++i) events.push_back(saga::test::placed(state + "-" + std::to_string(i)));
    send(events);
    for (const auto& type : paths.at(state)) {
      events.clear();
      for (int i = 0; i < n; ++i)
        events.push_back(saga::test::numbered_event("e", type, state + "-" + std::to_string(i)));
      send(events);
    }
  }
  saga::cli_test::result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {sagactl, "--db", db, "--json"});
    return saga::cli_test::run(args, dir.path(), 60s);
  }
  saga::cli_test::result migrate(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"migrate", "--definition", "order_lifecycle", "--to",
                                  "2",       "--endpoint",   daemon.ep.ingress};
    args.insert(args.end(), extra.begin(), extra.end());
    return ctl(args);
  }
  // (version, state) -> sagas, straight from the database.
  std::map<std::pair<std::int64_t, std::string>, std::int64_t> by_version() {
    SQLite::Database r(db, SQLite::OPEN_READONLY);
    SQLite::Statement q(r, "SELECT definition_version, state, count(*) FROM instances GROUP BY 1, 2");
    std::map<std::pair<std::int64_t, std::string>, std::int64_t> out;
    while (q.executeStep())
      out[{q.getColumn(0).getInt64(), q.getColumn(1).getString()}] = q.getColumn(2).getInt64();
    return out;
  }
  // Sagas with more than one 'migrated' history row (none may have).
  std::int64_t migrated_twice() {
    SQLite::Database r(db, SQLite::OPEN_READONLY);
    return r
        .execAndGet(
            "SELECT count(*) FROM (SELECT key FROM history WHERE outcome = 'migrated' GROUP BY key HAVING "
            "count(*) > 1)")
        .getInt64();
  }
  std::int64_t migrated_rows() {
    SQLite::Database r(db, SQLite::OPEN_READONLY);
    return r.execAndGet("SELECT count(*) FROM history WHERE outcome = 'migrated'").getInt64();
  }
};

}  // namespace

TEST_SUITE("sagactl migrate") {
  TEST_CASE("v1 sagas in every state: the dry run lists moves and refusals and the run moves them once") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.start();
    for (const auto& [state, path] : paths) s.orders_in(state, 3);
    s.stop();
    s.start({"--plugin", order_v2});

    auto defs = s.ctl({"definitions"});
    REQUIRE_MESSAGE(defs.code == 0, defs.err);
    std::map<std::int64_t, std::int64_t> instances;
    const auto listed = defs.json();
    for (const auto& d : listed["definitions"])
      if (d["name"] == "order_lifecycle")
        instances[d["version"].get<std::int64_t>()] = d["instances"].get<std::int64_t>();
    CHECK(instances == std::map<std::int64_t, std::int64_t>{{1, 21}, {2, 0}});

    // Dry run: 6 states x 3 unfinished sagas; delivering has no mapping.
    auto dry = s.migrate({"--dry-run"});
    CHECK_MESSAGE(dry.code == 5, dry.err);
    auto r = dry.json();
    CHECK(r["dry_run"] == true);
    CHECK(r["refused_count"] == 3);
    for (const auto& f : r["refused"]) {
      CHECK(f["state"] == "delivering");
      CHECK(f["reason"] == "state 'delivering' of version 1 has no mapping");
    }
    std::map<std::string, std::string> moves;
    for (const auto& m : r["moves"]) {
      CHECK(m["sagas"] == 3);
      moves[m["from"].get<std::string>()] = m["to"].get<std::string>();
    }
    CHECK(moves == std::map<std::string, std::string>{{"awaiting_shipment", "packing"},
                                                      {"paid", "paid"},
                                                      {"placed", "placed"},
                                                      {"refunding", "refunding"},
                                                      {"shipped", "shipped"}});
    CHECK(s.migrated_rows() == 0);  // nothing sent

    // The run: 15 move, the 3 in delivering are refused by sagad too and stay on version 1.
    auto run = s.migrate({"--batch", "4"});
    CHECK_MESSAGE(run.code == 5, run.err);
    r = run.json();
    CHECK(r["moved"] == 15);
    CHECK(r["refused_count"] == 3);
    CHECK(r["refused"][0]["reason"] == "state 'delivering' of version 1 has no mapping");
    const auto after = s.by_version();
    CHECK(after.at({2, "packing"}) == 3);
    CHECK(after.at({2, "placed"}) == 3);
    CHECK(after.at({1, "delivering"}) == 3);
    CHECK(after.at({1, "done"}) == 3);  // finished sagas are not migrated
    CHECK_FALSE(after.contains({1, "awaiting_shipment"}));
    CHECK(s.migrated_rows() == 15);

    // Again: nothing left to move, nobody moved twice.
    auto again = s.migrate();
    CHECK(again.code == 5);
    CHECK(again.json()["moved"] == 0);
    CHECK(s.migrated_rows() == 15);

    // sagactl show and graph tell the version; a migrated saga finishes on version 2, a refused
    // one on version 1, and a new order starts on version 2.
    auto show = s.ctl({"show", "awaiting_shipment-0"});
    REQUIRE(show.code == 0);
    CHECK(show.json()["definition_version"] == 2);
    CHECK(show.json()["state"] == "packing");
    CHECK(show.json()["history"].back()["outcome"] == "migrated");
    CHECK(show.json()["data"]["amount_minor"] == 10);
    auto graph = s.ctl({"graph", "order_lifecycle", "--instance", "delivering-0"});
    REQUIRE(graph.code == 0);
    CHECK(graph.out.find("label=\"order_lifecycle / delivering-0: delivering\"") !=
          std::string::npos);  // v1's
    graph = s.ctl({"graph", "order_lifecycle", "--instance", "awaiting_shipment-0"});
    REQUIRE(graph.code == 0);
    CHECK(graph.out.find("label=\"order_lifecycle v2 / awaiting_shipment-0: packing\"") != std::string::npos);
    CHECK(graph.out.find("awaiting_shipment\"") == std::string::npos);  // no state of version 1 drawn
    graph = s.ctl({"graph", "order_lifecycle", "--definition-version", "1"});
    CHECK(graph.out.find("delivering") != std::string::npos);
    graph = s.ctl({"graph", "order_lifecycle", "--definition-version", "3"});
    CHECK(graph.code == 1);
    s.send({saga::test::numbered_event("e", "shipment.dispatched", "awaiting_shipment-0"),
            saga::test::numbered_event("e", "delivery.confirmed", "awaiting_shipment-0"),
            saga::test::numbered_event("e", "delivery.confirmed", "delivering-0"),
            saga::test::placed("new")});
    const auto end = s.by_version();
    CHECK(end.at({2, "done"}) == 1);
    CHECK(end.at({1, "done"}) == 4);
    CHECK(end.at({2, "placed"}) == 4);
    s.stop();
  }

  TEST_CASE("a migration whose sagad is killed half-way resumes and moves every saga exactly once") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.start();
    constexpr int orders = 1500;
    s.orders_in("awaiting_shipment", orders);
    s.stop();
    s.start({"--plugin", order_v2});

    saga::test::process ctl(
        {sagactl, "--db", s.db, "migrate", "--definition", "order_lifecycle", "--to", "2", "--endpoint",
         s.daemon.ep.ingress, "--batch", "50", "--tries", "1", "--timeout", "10s"},
        dir.file("migrate.out"), dir.file("migrate.err"));
    // SIGKILL sagad once some sagas have moved and before all have.
    std::int64_t moved = 0;
    for (int i = 0; i < 12'000 && moved < 100 && ctl.running(); ++i) {  // a minute at most
      std::this_thread::sleep_for(5ms);
      moved = s.migrated_rows();
    }
    INFO("sagactl stderr: " << ctl.err());
    REQUIRE(moved >= 100);
    REQUIRE(s.daemon.proc->signal(SIGKILL));
    s.daemon.proc->wait_for(10s);
    const auto first = ctl.wait_for(60s);
    CHECK(first.code() == 4);  // sagad unreachable

    // Counted once the new sagad has opened the database: a batch whose log frames were synced
    // when the kill came is committed, but a reader sees it only after the log's recovery (the
    // killed writer had not published it in the shared index yet), which the new sagad runs.
    s.start({"--plugin", order_v2});
    const auto killed_at = s.migrated_rows();
    INFO("migrated when sagad was killed: " << killed_at);
    CHECK(killed_at < orders);
    auto rest = s.migrate();
    CHECK_MESSAGE(rest.code == 0, rest.err);
    CHECK(rest.json()["moved"] == orders - killed_at);
    CHECK(s.migrated_rows() == orders);
    CHECK(s.migrated_twice() == 0);
    CHECK(s.by_version() ==
          std::map<std::pair<std::int64_t, std::string>, std::int64_t>{{{2, "packing"}, orders}});
    s.stop();
  }
}
