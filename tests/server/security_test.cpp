// sagad with CURVE as an operator runs it (docs/security.md): its own key pair, an
// authorized-keys file with grants, real CURVE handshakes on loopback from C++ clients,
// subscribers and sagactl; a SIGHUP after editing the file; the secure-by-default refusals.
// sagad runs as a child process and chooses its ports (--endpoints-file).

#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "cli/cli_support.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/curve.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::endpoints;
using saga::test::process;
using saga::test::temp_dir;
using saga::zmq::curve_key_pair;

// Every key of the scenario, written as `sagactl keygen` writes them.
struct keyring {
  curve_key_pair server, orders, payments, ops, dashboard, stranger;
  explicit keyring(const temp_dir& dir) {
    for (auto [name, pair] : {std::pair{"sagad", &server},
                              {"orders", &orders},
                              {"payments", &payments},
                              {"ops", &ops},
                              {"dashboard", &dashboard},
                              {"stranger", &stranger}}) {
      *pair = saga::zmq::generate_curve_key_pair();
      saga::zmq::write_key_files(dir.file(name), *pair);
    }
  }
};

// The grants of the scenario; `with_orders` false leaves the orders key out (a revocation).
std::string authorized_keys_text(bool with_orders) {
  std::string text =
      "# who may talk to sagad\n"
      "payments.key payments sources=urn:payments types=payment.*\n"
      "ops.key      ops      sources=* types=* roles=operator,subscriber\n"
      "dashboard.key dashboard roles=subscriber\n";
  if (with_orders) text += "orders.key   orders   sources=urn:orders types=order.*\n";
  return text;
}

saga::event event_of(std::string id, std::string source, std::string type, std::string subject,
                     json data = json::object()) {
  saga::event e;
  e.id = std::move(id);
  e.source = std::move(source);
  e.type = std::move(type);
  e.subject = std::move(subject);
  e.data = std::move(data);
  return e;
}

saga::event order_placed(const std::string& key) {
  return event_of("placed-" + key, "urn:orders", "order.placed", key,
                  {{"order_id", key}, {"amount", 10}, {"currency", "EUR"}});
}

// A sagad with CURVE on, in its own folder.
struct secured {
  temp_dir dir;
  keyring keys{dir};
  saga::test::started_daemon d;
  ::zmq::context_t ctx{1};

  secured() {
    std::ofstream(dir.file("authorized_keys")) << authorized_keys_text(true);
    d = saga::test::start_daemon(
        {SAGAD_PATH, "--db", dir.file("saga.db"), "--synchronous", "OFF", "--curve-secret",
         dir.file("sagad.key_secret"), "--authorized-keys", dir.file("authorized_keys")},
        endpoints::any_loopback(), dir.file("endpoints.json"), dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(d, d.error);
  }

  saga::zmq::client_options as(const curve_key_pair& own, const std::string& server_public,
                               int tries = 5) const {
    saga::zmq::client_options o;
    o.curve = {server_public, own};
    o.timeout = tries == 1 ? 500ms : 2000ms;
    o.max_tries = tries;
    return o;
  }
  saga::zmq::client client(const curve_key_pair& own) {
    return {ctx, d.ep.ingress, as(own, keys.server.public_key)};
  }

  // One send from a client that must not get through: true when no ack came.
  bool refused(const saga::zmq::client_options& o, const saga::event& e) {
    saga::zmq::client c(ctx, d.ep.ingress, o);
    try {
      c.send(e);
      return false;
    } catch (const saga::zmq::client_error&) {
      return true;
    }
  }

  std::int64_t rows(const std::string& table) const {
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
  }

  std::string log() const { return d.proc->err(); }
  // Waits up to 10 s for sagad's log to hold `text`.
  bool logged(const std::string& text) const {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (log().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }
};

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Runs sagactl with `args` and the environment `env` (NAME=value) to completion.
saga::cli_test::result sagactl(const temp_dir& dir, std::vector<std::string> args,
                               const std::vector<std::string>& env) {
  args.insert(args.begin(), SAGACTL_PATH);
  for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
  auto r = saga::cli_test::run(args, dir.path(), 60s);
  for (const auto& kv : env) ::unsetenv(kv.substr(0, kv.find('=')).c_str());
  return r;
}

}  // namespace

TEST_SUITE("security") {
  TEST_CASE("an unknown key or a plaintext client or another server key gets nothing and sagad goes on") {
    secured s;
    const auto start = std::chrono::steady_clock::now();
    CHECK(s.refused(s.as(s.keys.stranger, s.keys.server.public_key, 1), order_placed("o-stranger")));
    for (int i = 0; i < 5; ++i)
      CHECK(s.refused(s.as({}, "", 1), order_placed("o-plain")));  // no CURVE at all
    CHECK(s.refused(s.as(s.keys.orders, s.keys.stranger.public_key, 1), order_placed("o-wrong-server")));
    // Whole seconds begun while refusing (a line may open each of them).
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(std::chrono::steady_clock::now() - start);

    // The listed key is served, and only its event was ever written.
    auto orders = s.client(s.keys.orders);
    const auto a = orders.send(order_placed("o-1"));
    CHECK(a.status == saga::ack_status::accepted);
    CHECK(s.rows("inbox") == 1);
    CHECK(s.rows("instances") == 1);
    CHECK(s.rows("dead_letters") == 0);

    CHECK(s.logged("unknown key " + s.keys.stranger.public_key));
    CHECK(s.logged("security mechanism mismatch (a plaintext client?)"));
    CHECK(s.logged("cryptographic error"));
    // Five plaintext clients (and their resends) within a few seconds: at most one line a second.
    CHECK(occurrences(s.log(), "mechanism mismatch") <= static_cast<std::size_t>(seconds.count()) + 1);
    CHECK(s.d.proc->running());
  }

  TEST_CASE(
      "a service key outside its sources or types is rejected naming the grant and nothing is applied") {
    secured s;
    auto payments = s.client(s.keys.payments);
    auto placed_by_payments = order_placed("o-1");
    placed_by_payments.source = "urn:payments";  // its own source, but not its type
    const auto wrong_type = payments.send(placed_by_payments);
    CHECK(wrong_type.status == saga::ack_status::rejected);
    CHECK(wrong_type.reason == "key 'payments' may not send type 'order.placed' (types=payment.*)");
    auto orders = s.client(s.keys.orders);
    auto as_payments = event_of("forged-1", "urn:payments", "order.placed", "o-2",
                                {{"order_id", "o-2"}, {"amount", 1}, {"currency", "EUR"}});
    const auto wrong_source = orders.send(as_payments);
    CHECK(wrong_source.status == saga::ack_status::rejected);
    CHECK(wrong_source.reason == "key 'orders' may not send as source 'urn:payments' (sources=urn:orders)");

    CHECK(s.rows("instances") == 0);
    CHECK(s.rows("history") == 0);
    CHECK(s.rows("outbox") == 0);
    CHECK(s.rows("parked") == 0);
    CHECK(s.rows("dead_letters") == 2);
    SQLite::Database db(s.dir.file("saga.db"), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT group_concat(sender, ',') FROM (SELECT sender FROM dead_letters ORDER BY id)")
              .getString() == "payments,orders");
    // The dead letters name what was refused, for sagactl dead-letters.
    CHECK(db.execAndGet("SELECT group_concat(type || ' ' || subject, ',') FROM (SELECT * FROM dead_letters "
                        "ORDER BY id)")
              .getString() == "order.placed o-1,order.placed o-2");

    // Within its grants the same key is served, and the history names it.
    CHECK(orders.send(order_placed("o-3")).status == saga::ack_status::accepted);
    const auto shown = sagactl(s.dir, {"show", "o-3", "--db", s.dir.file("saga.db"), "--json"}, {});
    REQUIRE(shown.code == 0);
    CHECK(json::parse(shown.out)["history"][0]["sender"] == "orders");

    // Counted: the summary line at stop (or once a minute) says how many the grants refused.
    REQUIRE(s.d.proc->signal(SIGTERM));
    CHECK(s.d.proc->wait_for(20s).code() == 0);
    CHECK(s.log().find("; refused by grants 2") != std::string::npos);
  }

  TEST_CASE(
      "operator actions need the operator role: from a service key rejected and from the operator key "
      "applied") {
    secured s;
    auto orders = s.client(s.keys.orders);
    REQUIRE(orders.send(order_placed("o-1")).status == saga::ack_status::accepted);
    const auto abort =
        event_of("abort-1", "urn:orders", "saga.operator.abort", "o-1", {{"reason", "not yours to abort"}});
    const auto by_service = orders.send(abort);
    CHECK(by_service.status == saga::ack_status::rejected);
    CHECK(by_service.reason.find("lacks the operator role") != std::string::npos);
    SQLite::Database db(s.dir.file("saga.db"), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT state FROM instances WHERE key = 'o-1'").getString() == "placed");

    // sagactl abort with the operator key from SAGA_KEY and sagad's from SAGA_SERVER_KEY.
    const auto r =
        sagactl(s.dir, {"abort", "o-1", "--reason", "customer called", "--endpoint", s.d.ep.ingress},
                {"SAGA_KEY=" + s.dir.file("ops.key_secret"), "SAGA_SERVER_KEY=" + s.dir.file("sagad.key")});
    CHECK_MESSAGE(r.code == 0, r.err);
    CHECK(db.execAndGet("SELECT state FROM instances WHERE key = 'o-1'").getString() != "placed");
    CHECK(
        db.execAndGet("SELECT sender FROM history WHERE key = 'o-1' ORDER BY id DESC LIMIT 1").getString() ==
        "ops");

    // Without a key sagactl gets no answer at all.
    const auto plain = sagactl(
        s.dir,
        {"abort", "o-1", "--reason", "x", "--endpoint", s.d.ep.ingress, "--tries", "1", "--timeout", "500ms"},
        {});
    CHECK(plain.code == 4);
    CHECK(plain.err.find("unreachable") != std::string::npos);
    CHECK(plain.err.find("give --server-key and --key") != std::string::npos);
  }

  TEST_CASE("a subscriber without the subscriber role gets no events and no replay") {
    secured s;
    saga::zmq::subscriber_options allowed, denied;
    allowed.curve = {s.keys.server.public_key, s.keys.dashboard};
    denied.curve = {s.keys.server.public_key, s.keys.orders};
    saga::zmq::subscriber dashboard(s.ctx, s.d.ep.publish, s.d.ep.replay, allowed);
    saga::zmq::subscriber intruder(s.ctx, s.d.ep.publish, s.d.ep.replay, denied);

    auto orders = s.client(s.keys.orders);
    REQUIRE(orders.send(order_placed("o-1")).status == saga::ack_status::accepted);
    // The dashboard receives the follow-on event (payment.requested), through replay if it
    // joined late; meanwhile the intruder polls as long.
    std::vector<std::string> seen;
    std::size_t intruder_got = 0;
    std::string intruder_error;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (seen.empty() && std::chrono::steady_clock::now() < deadline) {
      dashboard.poll(100ms, [&](const saga::zmq::delivery& d) { seen.push_back(d.type); });
      try {
        intruder_got += intruder.poll(100ms, [](const saga::zmq::delivery&) {});
      } catch (const std::exception& e) {
        intruder_error = e.what();
      }
    }
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "payment.requested");
    CHECK(intruder_got == 0);
    CHECK(intruder.last_sequence() == 0);
    CHECK(s.logged("key 'orders' lacks the subscriber role (needed for saga.events)"));

    // A replay request of its own gets no answer either.
    ::zmq::socket_t replay(s.ctx, ::zmq::socket_type::dealer);
    replay.set(::zmq::sockopt::linger, 0);
    saga::zmq::apply(replay, saga::zmq::curve_client{s.keys.server.public_key, s.keys.orders});
    replay.connect(s.d.ep.replay);
    replay.send(::zmq::str_buffer(""), ::zmq::send_flags::sndmore);
    replay.send(::zmq::str_buffer(R"({"from":1})"));
    CHECK(s.logged("key 'orders' lacks the subscriber role (needed for saga.replay)"));
    // The refusal is logged; an answer, had the key been let in, would have come by now.
    ::zmq::pollitem_t item{replay.handle(), 0, ZMQ_POLLIN, 0};
    CHECK(::zmq::poll(&item, 1, 500ms) == 0);
  }

  TEST_CASE("SIGHUP after removing a key: its next connection fails and other sessions go on") {
    secured s;
    auto orders = s.client(s.keys.orders);
    auto payments = s.client(s.keys.payments);
    REQUIRE(orders.send(order_placed("o-1")).status == saga::ack_status::accepted);
    REQUIRE(payments
                .send(event_of("pay-1", "urn:payments", "payment.succeeded", "o-1",
                               {{"order_id", "o-1"}, {"amount", 10}, {"currency", "EUR"}}))
                .status == saga::ack_status::accepted);

    std::ofstream(s.dir.file("authorized_keys")) << authorized_keys_text(false);
    REQUIRE(s.d.proc->signal(SIGHUP));
    REQUIRE(s.logged("reloaded " + s.dir.file("authorized_keys") + ": 3 client keys"));

    CHECK(s.refused(s.as(s.keys.orders, s.keys.server.public_key, 1), order_placed("o-2")));
    // The orders session that was open keeps its connection but none of its grants.
    const auto kept = orders.send(order_placed("o-3"));
    CHECK(kept.status == saga::ack_status::rejected);
    CHECK(kept.reason == "key 'orders' is no longer in the authorized keys");
    // Another key's established session goes on.
    CHECK(payments.send(event_of("pay-2", "urn:payments", "payment.failed", "o-9", {{"order_id", "o-9"}}))
              .status != saga::ack_status::rejected);

    // A file that no longer parses leaves the keys in force.
    std::ofstream(s.dir.file("authorized_keys")) << "not a key line\n";
    REQUIRE(s.d.proc->signal(SIGHUP));
    CHECK(s.logged("the previous ones stay in force"));
    CHECK(payments.send(event_of("pay-3", "urn:payments", "payment.failed", "o-8", {{"order_id", "o-8"}}))
              .status != saga::ack_status::rejected);
    CHECK(s.d.proc->running());
  }

  TEST_CASE("a rollover: two keys for one name both work and the old one's open session stops when removed") {
    secured s;
    const auto next = saga::zmq::generate_curve_key_pair();
    saga::zmq::write_key_files(s.dir.file("orders-2026"), next);
    std::ofstream(s.dir.file("authorized_keys"))
        << authorized_keys_text(true) << "orders-2026.key orders sources=urn:orders types=order.*\n";
    REQUIRE(s.d.proc->signal(SIGHUP));
    REQUIRE(s.logged("reloaded " + s.dir.file("authorized_keys") + ": 5 client keys (4 names)"));
    auto old_key = s.client(s.keys.orders);
    auto new_key = s.client(next);
    CHECK(old_key.send(order_placed("o-1")).status == saga::ack_status::accepted);
    CHECK(new_key.send(order_placed("o-2")).status == saga::ack_status::accepted);

    // The old key's line goes; the name stays with the new key.
    std::ofstream(s.dir.file("authorized_keys"))
        << authorized_keys_text(false) << "orders-2026.key orders sources=urn:orders types=order.*\n";
    REQUIRE(s.d.proc->signal(SIGHUP));
    REQUIRE(s.logged("reloaded " + s.dir.file("authorized_keys") + ": 4 client keys (4 names)"));
    const auto refused = old_key.send(order_placed("o-3"));
    CHECK(refused.status == saga::ack_status::rejected);
    CHECK(refused.reason == "key 'orders' is no longer in the authorized keys");
    CHECK(new_key.send(order_placed("o-4")).status == saga::ack_status::accepted);
    CHECK(s.refused(s.as(s.keys.orders, s.keys.server.public_key, 1), order_placed("o-5")));
  }

  TEST_CASE("secure by default: plaintext binds loopback only unless --insecure and keys must be complete") {
    temp_dir dir;
    const auto run = [&](std::vector<std::string> extra) {
      std::vector<std::string> argv = {SAGAD_PATH,
                                       "--db",
                                       dir.file("saga.db"),
                                       "--synchronous",
                                       "OFF",
                                       "--endpoints-file",
                                       dir.file("endpoints.json"),
                                       "--publish",
                                       "tcp://127.0.0.1:*",
                                       "--replay",
                                       "ipc://" + dir.file("replay")};
      argv.insert(argv.end(), extra.begin(), extra.end());
      return std::make_unique<process>(argv, dir.file("sagad.out"), dir.file("sagad.err"));
    };
    {
      auto p = run({"--ingress", "tcp://0.0.0.0:*"});
      CHECK(p->wait_for(20s).code() == 1);
      CHECK(p->err().find("refusing to bind tcp://0.0.0.0:* in plaintext: give --curve-secret") !=
            std::string::npos);
      CHECK(saga::test::lines_of(p->err()).size() == 1);
    }
    {
      auto p = run({"--ingress", "tcp://0.0.0.0:*", "--insecure"});
      std::string why;
      REQUIRE_MESSAGE(saga::test::read_endpoints_file(dir.file("endpoints.json"), *p, 20s, &why), why);
      // Said once the sockets are bound, just after the endpoints file.
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (p->err().find("--insecure: no CURVE key") == std::string::npos &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
      CHECK(p->err().find("--insecure: no CURVE key") != std::string::npos);
      p->signal(SIGTERM);
      CHECK(p->wait_for(20s).code() == 0);
    }
    const auto pair = saga::zmq::generate_curve_key_pair();
    saga::zmq::write_key_files(dir.file("sagad"), pair);
    std::ofstream(dir.file("keys")) << pair.public_key << " self sources=*\n";
    {
      auto p = run({"--ingress", "tcp://127.0.0.1:*", "--curve-secret", dir.file("sagad.key_secret")});
      CHECK(p->wait_for(20s).code() == 1);
      CHECK(p->err().find("--curve-secret needs --authorized-keys") != std::string::npos);
    }
    {
      auto p = run({"--ingress", "tcp://127.0.0.1:*", "--authorized-keys", dir.file("keys")});
      CHECK(p->wait_for(20s).code() == 1);
      CHECK(p->err().find("--authorized-keys needs --curve-secret") != std::string::npos);
    }
    {
      ::chmod(dir.file("sagad.key_secret").c_str(), 0644);
      auto p = run({"--ingress", "tcp://127.0.0.1:*", "--curve-secret", dir.file("sagad.key_secret"),
                    "--authorized-keys", dir.file("keys")});
      CHECK(p->wait_for(20s).code() == 1);
      CHECK(p->err().find("--curve-secret: ") != std::string::npos);
    }
  }
}
