// sagactl reconcile and audit (issue 18) against a real sagad and a real durable subscriber:
// outbound (sagad's published log against the subscriber's database, by range digests over the
// replay socket), inbound (a sender's list against what sagad received), and one saga's trail.

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "cli/cli_support.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/durable_subscriber.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string sagactl = SAGACTL_PATH;
const std::string sagad = SAGAD_PATH;

// A sagad on a database in `dir`, and a durable subscriber recording what it publishes.
struct setup {
  explicit setup(saga::test::temp_dir& d, std::vector<std::string> extra = {}) : dir(d) {
    start(std::move(extra));
  }

  void start(std::vector<std::string> extra) {
    std::vector<std::string> argv{sagad, "--db", db, "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    daemon = saga::test::start_daemon(argv, saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                      dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(daemon, daemon.error);
    saga::zmq::durable_options o;
    o.database = subscriber_db;
    o.digest_endpoint = "tcp://127.0.0.1:*";  // for reconcile --subscriber
    subscriber = std::make_unique<saga::zmq::durable_subscriber>(
        ctx, daemon.ep.publish, daemon.ep.replay, o,
        [](SQLite::Database&, const saga::zmq::delivery&, const saga::event&) {});
  }

  void stop() {
    subscriber.reset();
    REQUIRE(daemon.proc->signal(SIGTERM));
    CHECK(daemon.proc->wait_for(30s).code() == 0);
  }

  // `n` orders placed (one payment.requested each), all recorded by the subscriber.
  void place(int from, int n) {
    std::vector<saga::event> events;
    for (int i = from; i < from + n; ++i) events.push_back(saga::test::placed("o-" + std::to_string(i)));
    saga::zmq::client_options co;
    co.window = 200;
    saga::zmq::client c(ctx, daemon.ep.ingress, co);
    for (const auto& a : c.send_all(events)) REQUIRE(a.status == saga::ack_status::accepted);
    const auto last = [&] {
      SQLite::Database r(db, SQLite::OPEN_READONLY);
      return r
          .execAndGet(
              "SELECT coalesce(max(sequence), 0) FROM outbox_published WHERE published_ms IS NOT NULL")
          .getInt64();
    };
    for (int i = 0; i < 200 && (last() < from + n - 1 || subscriber->position() < last()); ++i)
      subscriber->poll(50ms);
    REQUIRE(subscriber->position() == last());
  }

  saga::cli_test::result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {sagactl, "--db", db, "--json"});
    return saga::cli_test::run(args, dir.path());
  }

  saga::test::temp_dir& dir;
  std::string db = dir.file("sagad.db"), subscriber_db = dir.file("subscriber.db");
  zmq::context_t ctx;
  saga::test::started_daemon daemon;
  std::unique_ptr<saga::zmq::durable_subscriber> subscriber;
};

std::set<std::int64_t> sequences(const json& list) {
  std::set<std::int64_t> out;
  for (const auto& d : list) out.insert(d["sequence"].get<std::int64_t>());
  return out;
}

}  // namespace

TEST_SUITE("reconcile") {
  TEST_CASE(
      "reconcile finds exactly the events deleted altered duplicated and added in few digest requests") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.place(0, 1000);

    // The subscriber's record as it is: consistent, in one digest request to sagad.
    auto same = s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber-db", s.subscriber_db});
    REQUIRE_MESSAGE(same.code == 0, same.err);
    auto r = same.json();
    CHECK(r["consistent"] == true);
    CHECK(r["from"] == 1);
    CHECK(r["to"] == 1000);
    CHECK(r["sagad"]["digest_requests"] == 1);
    CHECK(r["missing"].empty());

    // A copy with four differences: 17 deleted, 300 altered, 500 duplicated as 1001, 1003 added.
    const auto bad = dir.file("bad.db");
    s.subscriber->database().exec("VACUUM INTO '" + bad + "'");
    {
      SQLite::Database b(bad, SQLite::OPEN_READWRITE);
      b.exec("DELETE FROM saga_received WHERE sequence = 17");
      b.exec("UPDATE saga_received SET payload = replace(payload, 'EUR', 'USD') WHERE sequence = 300");
      b.exec(
          "INSERT INTO saga_received (sequence, source, id, type, payload, received_ms, outcome) "
          "SELECT 1001, source, id, type, payload, received_ms, 'duplicate' FROM saga_received WHERE "
          "sequence = 500");
      b.exec(
          "INSERT INTO saga_received VALUES (1003, 'urn:forged', 'f-1', 'payment.requested', '{}', 0, "
          "'processed')");
    }
    auto found = s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber-db", bad});
    CHECK_MESSAGE(found.code == 5, found.err);
    r = found.json();
    CHECK(r["consistent"] == false);
    CHECK(r["to"] == 1003);
    CHECK(sequences(r["missing"]) == std::set<std::int64_t>{17});
    CHECK(sequences(r["different"]) == std::set<std::int64_t>{300});
    CHECK(sequences(r["extra"]) == std::set<std::int64_t>{1001, 1003});
    CHECK(r["missing"][0]["sagad"]["type"] == "payment.requested");
    CHECK(r["extra"][1]["subscriber"]["id"] == "f-1");
    CHECK(r["uncheckable"].empty());
    // k = 4 differences among n = 1003 sequences: at most 2·k·log2(n) digest requests to sagad.
    const auto requests = r["sagad"]["digest_requests"].get<double>();
    MESSAGE("digest requests to sagad for 4 differences among 1003: " << requests);
    CHECK(requests <= 2 * 4 * std::log2(1003.0));

    // The human report names them too.
    auto text = saga::cli_test::run(
        {sagactl, "--db", s.db, "reconcile", "--replay", s.daemon.ep.replay, "--subscriber-db", bad},
        dir.path());
    CHECK(text.code == 5);
    CHECK(text.out.find("1 missing at the subscriber, 2 never published by sagad, 1 different") !=
          std::string::npos);

    // Bad use: exit 2 with the reason.
    auto neither = s.ctl({"reconcile", "--replay", s.daemon.ep.replay});
    CHECK(neither.code == 2);
    CHECK(neither.err.find("--subscriber-db") != std::string::npos);
    auto not_a_subscriber = s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber-db", s.db});
    CHECK(not_a_subscriber.code == 3);
    CHECK(not_a_subscriber.err.find("saga_received") != std::string::npos);
    s.stop();
  }

  TEST_CASE("reconcile --subscriber asks a running durable subscriber's digest endpoint") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.place(0, 30);
    std::atomic<bool> done{false};
    std::thread polling([&] {
      while (!done) s.subscriber->poll(20ms);
    });
    auto res =
        s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber", s.subscriber->digest_endpoint()});
    auto nobody = s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber", "tcp://127.0.0.1:1",
                         "--timeout", "300ms"});
    done = true;
    polling.join();
    CHECK_MESSAGE(res.code == 0, res.err);
    const auto r = res.json();
    CHECK(r["consistent"] == true);
    CHECK(r["to"] == 30);
    CHECK(r["subscriber"]["digest_requests"] == 1);
    CHECK(nobody.code == 4);
    CHECK(nobody.err.find("the subscriber unreachable at tcp://127.0.0.1:1") != std::string::npos);
    s.stop();
  }

  TEST_CASE("a range pruned at sagad is reported as uncheckable and not as missing") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.place(0, 40);
    s.stop();
    std::this_thread::sleep_for(1100ms);
    s.start({"--retention", "1s"});  // prunes 1..40 at start
    s.place(40, 10);
    auto res = s.ctl({"reconcile", "--replay", s.daemon.ep.replay, "--subscriber-db", s.subscriber_db});
    CHECK_MESSAGE(res.code == 0, res.err);
    const auto r = res.json();
    CHECK(r["consistent"] == true);
    REQUIRE(r["uncheckable"].size() == 1);
    CHECK(r["uncheckable"][0] == json{{"from", 1}, {"to", 40}});
    CHECK(r["missing"].empty());
    CHECK(r["to"] == 50);
    s.stop();
  }

  TEST_CASE("reconcile --sent finds what sagad never received and what it rejected and why") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.place(0, 3);
    {
      saga::zmq::client c(s.ctx, s.daemon.ep.ingress);
      auto bogus = saga::test::placed("x");
      bogus.id = "bogus-1";
      bogus.type = "order.bogus";
      CHECK(c.send(bogus).status == saga::ack_status::rejected);
    }
    {
      std::ofstream sent(dir.file("sent.jsonl"));
      for (int i = 0; i < 3; ++i)
        sent << json{{"source", "urn:test"}, {"id", "placed-o-" + std::to_string(i)}} << "\n";
      sent << R"({"source":"urn:test","id":"bogus-1"})"
           << "\n"
           << R"({"source":"urn:test","id":"never-sent"})"
           << "\n"
           << R"({"source":"urn:test","id":7})"
           << "\n\n";
    }
    auto res = s.ctl({"reconcile", "--sent", dir.file("sent.jsonl")});
    CHECK_MESSAGE(res.code == 5, res.err);
    const auto r = res.json();
    CHECK(r["accepted"] == 3);
    REQUIRE(r["rejected"].size() == 1);
    CHECK(r["rejected"][0]["id"] == "bogus-1");
    CHECK(r["rejected"][0]["reason"].get<std::string>().find("order.bogus") != std::string::npos);
    REQUIRE(r["not_received"].size() == 1);
    CHECK(r["not_received"][0]["id"] == "never-sent");
    CHECK(r["not_received"][0]["line"] == 5);
    REQUIRE(r["invalid"].size() == 1);
    CHECK(r["invalid"][0] == json{{"line", 6}, {"reason", "\"id\" must be a non-empty string"}});
    {
      std::ofstream ok(dir.file("ok.jsonl"));
      ok << R"({"source":"urn:test","id":"placed-o-1"})"
         << "\n";
    }
    CHECK(s.ctl({"reconcile", "--sent", dir.file("ok.jsonl")}).code == 0);
    CHECK(s.ctl({"reconcile", "--sent", dir.file("missing.jsonl")}).code == 2);
    s.stop();
  }

  TEST_CASE("audit prints a saga's trail with acks sequences and what the subscriber did with each") {
    saga::test::temp_dir dir;
    setup s(dir);
    s.place(0, 2);
    auto res = s.ctl({"audit", "--saga", "o-1", "--subscriber-db", s.subscriber_db});
    REQUIRE_MESSAGE(res.code == 0, res.err);
    const auto t = res.json();
    CHECK(t["type"] == "order_lifecycle");
    CHECK(t["state"] == "placed");
    REQUIRE(t["incoming"].size() == 1);
    CHECK(t["incoming"][0]["event_id"] == "placed-o-1");
    CHECK(t["incoming"][0]["ack"]["status"] == "accepted");
    REQUIRE(t["follow_on"].size() == 1);
    const auto seq = t["follow_on"][0]["sequence"].get<std::int64_t>();
    CHECK(t["incoming"][0]["follow_on"] == json{{"from", seq}, {"to", seq}});
    CHECK(t["follow_on"][0]["type"] == "payment.requested");
    CHECK(t["follow_on"][0]["published"].is_string());
    CHECK(t["follow_on"][0]["subscriber"]["outcome"] == "processed");
    auto text = saga::cli_test::run({sagactl, "--db", s.db, "audit", "--saga", "o-1"}, dir.path());
    CHECK(text.code == 0);
    CHECK(text.out.find("order_lifecycle/o-1 is placed") != std::string::npos);
    CHECK(s.ctl({"audit", "--saga", "nope"}).code == 1);
    s.stop();
  }
}
