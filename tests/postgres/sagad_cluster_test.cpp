// Issue 17, items 2 and 4, with real processes: two sagad on one PostgreSQL schema, each
// receiving every event (two clients, one per sagad, at the same time). Each event is applied
// once, every saga ends where its events lead, and one subscriber connected to both sagad's
// events and replay sockets sees the one log 1..N, gapless, each sequence once.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/order_events.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;

// A sagad on `schema` (its endpoints in `ep`, its files named after `tag` in `dir`).
saga::test::started_daemon start_on(const std::string& program, const std::string& schema,
                                    const saga::test::endpoints& ep, saga::test::temp_dir& dir,
                                    const std::string& tag, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{
      program,       "--db", saga::test::postgres_uri(saga::test::postgres_conninfo()), "--pg-schema", schema,
      "--log-level", "warn"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return saga::test::start_daemon(argv, ep, dir.file(tag + ".json"), dir.file(tag + ".out"),
                                  dir.file(tag + ".err"));
}

// `make torture` runs these at full size (SAGA_PG_TORTURE set); `make test` at a size for its budget.
bool torture() {
  return std::getenv("SAGA_PG_TORTURE") != nullptr;
}

// The relay numbers what is committed shortly after the commit: waits (at most 30 s) until every
// outbox row has its sequence.
bool all_numbered(saga::test::sql_session& sql) {
  for (int i = 0; i < 600; ++i) {
    if (sql.scalar("SELECT count(*) FROM outbox WHERE sequence IS NULL") == "0") return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

void stop(saga::test::started_daemon& d) {
  REQUIRE(d.proc->signal(SIGTERM));
  INFO("sagad stderr: " << d.proc->err());
  CHECK(d.proc->wait_for(30s).code() == 0);
}

}  // namespace

TEST_SUITE("postgres sagad") {
  TEST_CASE("two sagad on one PostgreSQL schema given every event apply each once and publish one log") {
    constexpr int orders = 200;
    saga::test::temp_dir dir;
    const auto db = saga::test::postgres_uri(saga::test::postgres_conninfo());
    const auto schema = saga::test::unique_schema("sagad");
    std::vector<saga::test::started_daemon> sagad;
    for (int i = 0; i < 2; ++i) {
      const auto n = std::to_string(i);
      sagad.push_back(
          saga::test::start_daemon({SAGAD_PATH, "--db", db, "--pg-schema", schema, "--log-level", "warn",
                                    "--metrics", "127.0.0.1:0", "--metrics-refresh", "100ms"},
                                   saga::test::endpoints::any_loopback(), dir.file("endpoints" + n + ".json"),
                                   dir.file("sagad" + n + ".out"), dir.file("sagad" + n + ".err")));
      REQUIRE_MESSAGE(sagad.back(), sagad.back().error);
    }
    std::vector<saga::event> events;
    for (int i = 0; i < orders; ++i) {
      const auto order = "o-" + std::to_string(i);
      events.push_back(saga::test::placed(order));
      events.push_back(saga::test::paid(order));
    }
    std::vector<std::thread> clients;
    std::vector<std::vector<saga::ack>> acks(2);
    for (int i = 0; i < 2; ++i) {
      clients.emplace_back([&, i] {
        ::zmq::context_t ctx(1);
        saga::zmq::client_options co;
        co.window = 50;
        co.timeout = 20s;
        saga::zmq::client c(ctx, sagad[static_cast<std::size_t>(i)].ep.ingress, co);
        acks[static_cast<std::size_t>(i)] = c.send_all(events);
      });
    }
    for (auto& c : clients) c.join();
    int accepted = 0, duplicate = 0;
    for (const auto& list : acks)
      for (const auto& a : list) {
        CHECK(a.status != saga::ack_status::rejected);
        accepted += a.status == saga::ack_status::accepted;
        duplicate += a.status == saga::ack_status::duplicate;
      }
    CHECK(accepted == 2 * orders);  // each event applied by one sagad
    CHECK(duplicate == 2 * orders);

    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE version = 2") == std::to_string(orders));
    CHECK(sql.scalar("SELECT count(*) FROM inbox") == std::to_string(2 * orders));
    REQUIRE(all_numbered(sql));
    const auto last = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    CHECK(sql.scalar("SELECT count(*) FROM outbox") == std::to_string(last));  // 1..last, no gap

    // One subscriber on both sagad: the one log, each sequence once, in order.
    ::zmq::context_t ctx(1);
    saga::zmq::subscriber sub(ctx, sagad[0].ep.publish + "," + sagad[1].ep.publish,
                              sagad[0].ep.replay + "," + sagad[1].ep.replay);
    std::vector<std::int64_t> seen;
    for (int i = 0; i < 100 && sub.last_sequence() < last; ++i)
      sub.poll(100ms, [&](const saga::zmq::delivery& d) { seen.push_back(d.sequence); });
    REQUIRE(static_cast<std::int64_t>(seen.size()) == last);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<std::int64_t>(i) + 1);
    // Both relays publish (a subscriber drops what it has) and mark: nothing stays unpublished.
    bool all_marked = false;
    for (int i = 0; i < 100 && !all_marked; ++i) {
      all_marked = sql.scalar("SELECT count(*) FROM outbox WHERE published_ms IS NULL") == "0";
      if (!all_marked) std::this_thread::sleep_for(50ms);
    }
    CHECK(all_marked);

    // Each sagad's /metrics reads the database gauges from PostgreSQL: the same counts from both.
    for (int i = 0; i < 2; ++i) {
      const std::string url =
          nlohmann::json::parse(std::ifstream(dir.file("endpoints" + std::to_string(i) + ".json")))
              .at("metrics");
      httplib::Client http(url);
      const auto res = http.Get("/metrics");
      REQUIRE(res);
      CHECK(res->status == 200);
      CHECK(res->body.find("saga_sagas{definition=\"order_lifecycle\",state=\"paid\"} " +
                           std::to_string(orders) + "\n") != std::string::npos);
      CHECK(res->body.find("saga_outbox_rows " + std::to_string(last) + "\n") != std::string::npos);
    }

    for (auto& d : sagad) {
      REQUIRE(d.proc->signal(SIGTERM));
      INFO("sagad stderr: " << d.proc->err());
      CHECK(d.proc->wait_for(30s).code() == 0);
    }
  }
}

TEST_SUITE("postgres sagad") {
  TEST_CASE("sagad names an unreachable PostgreSQL database without its password and exits 1") {
    saga::test::temp_dir dir;
    saga::test::process p(
        {SAGAD_PATH, "--db", "postgresql://saga:sekrit@127.0.0.1:1/orders", "--ingress", "tcp://127.0.0.1:*",
         "--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*"},
        dir.file("out"), dir.file("err"));
    CHECK(p.wait_for(30s).code() == 1);
    INFO("stderr: " << p.err());
    CHECK(p.err().find("cannot start: database postgresql://saga@127.0.0.1:1/orders") != std::string::npos);
    CHECK(p.err().find("sekrit") == std::string::npos);
  }
}

TEST_SUITE("postgres sagad failures") {
  // Issue 17 ("Zombie"), with processes: sagad A (the test build) stalls its first batch of
  // received events before the commit, holding the saga's lock, and is SIGSTOPped meanwhile for
  // longer than its --pg-stall-timeout. The server ends its transaction; sagad B, given the
  // saga's next event, goes on. A, woken, commits nothing of the stalled batch (it logs the failed
  // commit) and handles the event again on a new connection, seeing B's write.
  TEST_CASE("a sagad stopped mid-batch past its stall timeout commits nothing after the other took over") {
    saga::test::temp_dir dir;
    const auto schema = saga::test::unique_schema("zombie");
    auto b = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "b");
    REQUIRE_MESSAGE(b, b.error);
    ::setenv("SAGA_FAULT", "stall_commit:2", 1);
    auto a = start_on(SAGAD_TEST_PATH, schema, saga::test::endpoints::any_loopback(), dir, "a",
                      {"--pg-stall-timeout", "300ms"});
    ::unsetenv("SAGA_FAULT");
    REQUIRE_MESSAGE(a, a.error);

    ::zmq::context_t ctx(1);
    saga::zmq::client_options co;
    co.timeout = 30s;
    saga::zmq::client to_b(ctx, b.ep.ingress, co);
    REQUIRE(to_b.send(saga::test::placed("o-z")).status == saga::ack_status::accepted);
    saga::ack a_ack;
    std::thread to_a([&] {
      ::zmq::context_t c(1);
      saga::zmq::client client(c, a.ep.ingress, co);
      a_ack = client.send(saga::test::paid("o-z"));  // A's batch: it stalls before the commit
    });
    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    // A's transaction open, stalled, holding o-z's lock (store::lock_sagas: an advisory lock on
    // (hashtext(schema), hashtext(key))).
    const std::string held =
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = "
        "hashtext('" +
        schema + "')::oid AND objid = hashtext('o-z')::oid";
    bool holding = false;
    for (int i = 0; i < 500 && !holding; ++i) {
      holding = sql.scalar(held) != "0";
      if (!holding) std::this_thread::sleep_for(10ms);
    }
    REQUIRE(holding);
    REQUIRE(a.proc->signal(SIGSTOP));
    // B takes the saga over once the server has ended A's transaction: the order is cancelled.
    const auto cancel = saga::test::numbered_event("c", "order.cancel.requested", "o-z");
    const auto b_ack = to_b.send(cancel);
    CHECK(b_ack.status == saga::ack_status::accepted);
    CHECK(b_ack.outcome == saga::ack_outcome::transitioned);
    CHECK(b_ack.saga_state == "cancelled");
    std::this_thread::sleep_for(1s);
    REQUIRE(a.proc->signal(SIGCONT));
    to_a.join();
    // A's payment lands after the cancellation, on the cancelled saga: ignored, not applied over it.
    CHECK(a_ack.status == saga::ack_status::accepted);
    CHECK(a_ack.outcome == saga::ack_outcome::ignored);
    CHECK(a_ack.saga_state == "cancelled");
    CHECK(sql.scalar("SELECT state FROM instances WHERE key = 'o-z'") == "cancelled");
    CHECK(sql.scalar("SELECT version FROM instances WHERE key = 'o-z'") == "2");
    CHECK(sql.column("SELECT outcome FROM history WHERE key = 'o-z' ORDER BY id") ==
          std::vector<std::string>{"transitioned", "transitioned", "ignored"});
    CHECK(sql.scalar("SELECT count(*) FROM inbox WHERE event_id = 'paid-o-z'") == "1");
    CHECK(a.proc->err().find("not committed, nothing acked") != std::string::npos);  // it says so
    stop(a);
    stop(b);
  }

  // Issue 17, item 4 ("Zombie", for the relay), with processes: sagad A numbers the outbox (it
  // holds the relay lease) and is SIGSTOPped for longer than its --pg-relay-lease; sagad B takes the
  // lease over and numbers what B commits meanwhile. A, woken, is fenced: it numbers nothing, says
  // so in its log, and both go on publishing one log 1..N.
  TEST_CASE("a relay sagad stopped past its lease numbers nothing after the takeover and says so") {
    saga::test::temp_dir dir;
    const auto schema = saga::test::unique_schema("relay_zombie");
    const std::vector<std::string> lease{"--pg-relay-lease", "500ms"};
    auto a = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "a", lease);
    REQUIRE_MESSAGE(a, a.error);
    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    for (int i = 0; i < 100 && sql.scalar("SELECT epoch FROM relay") != "1"; ++i)
      std::this_thread::sleep_for(20ms);
    REQUIRE(sql.scalar("SELECT epoch FROM relay") == "1");  // A, started first, holds the lease
    auto b = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "b", lease);
    REQUIRE_MESSAGE(b, b.error);
    ::zmq::context_t ctx(1);
    saga::zmq::client_options co;
    co.timeout = 20s;
    saga::zmq::client to_b(ctx, b.ep.ingress, co);
    REQUIRE(to_b.send(saga::test::placed("o-1")).status == saga::ack_status::accepted);
    REQUIRE(all_numbered(sql));
    REQUIRE(sql.scalar("SELECT epoch FROM relay") == "1");  // A numbered B's commit

    REQUIRE(a.proc->signal(SIGSTOP));
    std::this_thread::sleep_for(1500ms);  // past A's lease: B takes it over
    REQUIRE(to_b.send(saga::test::placed("o-2")).status == saga::ack_status::accepted);
    CHECK(all_numbered(sql));
    CHECK(sql.scalar("SELECT epoch FROM relay") == "2");
    const auto numbered_by_b = sql.scalar("SELECT max(sequence) FROM outbox");
    REQUIRE(a.proc->signal(SIGCONT));
    bool said = false;
    for (int i = 0; i < 100 && !said; ++i) {
      said = a.proc->err().find("was taken over by another relay") != std::string::npos;
      if (!said) std::this_thread::sleep_for(50ms);
    }
    INFO("sagad A stderr: " << a.proc->err());
    CHECK(said);
    CHECK(sql.scalar("SELECT epoch FROM relay") == "2");  // A did not take it back
    REQUIRE(to_b.send(saga::test::paid("o-2")).status == saga::ack_status::accepted);
    CHECK(all_numbered(sql));
    const auto last = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    CHECK(last > std::stoll(numbered_by_b));
    CHECK(sql.scalar("SELECT count(DISTINCT sequence) FROM outbox") == std::to_string(last));
    // One subscriber on A alone gets the whole log (live, and replay for what it missed).
    saga::zmq::subscriber sub(ctx, a.ep.publish, a.ep.replay);
    std::vector<std::int64_t> seen;
    for (int i = 0; i < 100 && sub.last_sequence() < last; ++i)
      sub.poll(100ms, [&](const saga::zmq::delivery& d) { seen.push_back(d.sequence); });
    REQUIRE(static_cast<std::int64_t>(seen.size()) == last);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<std::int64_t>(i) + 1);
    stop(a);
    stop(b);
  }

  // Issue 17, item 4: the relay is woken soon after other sagad's commits. sagad B commits; A holds
  // the relay lease and would number B's rows only at its next outbox poll, here once a minute (a
  // third of the 3-minute lease): B's notification after its commit wakes A, which numbers and
  // publishes them within a few milliseconds. Twice, 3.5 s apart, each within 3 s: one poll cannot
  // fall in both windows, so without the notification at least one would wait for the next poll.
  TEST_CASE("a commit on another sagad wakes the relay which publishes it long before its next poll") {
    saga::test::temp_dir dir;
    const auto schema = saga::test::unique_schema("wakeup");
    const std::vector<std::string> slow{"--pg-relay-lease", "180s", "--pg-relay-poll", "60s"};
    auto a = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "a", slow);
    REQUIRE_MESSAGE(a, a.error);
    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    for (int i = 0; i < 100 && sql.scalar("SELECT epoch FROM relay") != "1"; ++i)
      std::this_thread::sleep_for(20ms);
    REQUIRE(sql.scalar("SELECT epoch FROM relay") == "1");  // A, started first, is the relay
    auto b = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "b", slow);
    REQUIRE_MESSAGE(b, b.error);
    ::zmq::context_t ctx(1);
    saga::zmq::subscriber sub(ctx, a.ep.publish, a.ep.replay);  // the relay's events only
    sub.poll(300ms, [](const saga::zmq::delivery&) {});         // connected before anything is published
    saga::zmq::client_options co;
    co.timeout = 20s;
    saga::zmq::client to_b(ctx, b.ep.ingress, co);
    const auto first = std::chrono::steady_clock::now();
    for (int round = 1; round <= 2; ++round) {
      std::this_thread::sleep_until(first + (round - 1) * 3500ms);
      REQUIRE(to_b.send(saga::test::placed("o-" + std::to_string(round))).status ==
              saga::ack_status::accepted);
      const auto acked = std::chrono::steady_clock::now();
      while (sub.last_sequence() < round && std::chrono::steady_clock::now() - acked < 3s)
        sub.poll(20ms, [](const saga::zmq::delivery&) {});
      const auto waited = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - acked);
      MESSAGE("round " << round << ": B's commit published by the relay A " << waited.count()
                       << " ms after B's ack");
      CHECK(sub.last_sequence() == round);  // B's follow-on event, numbered and published by A
    }
    CHECK(sql.scalar("SELECT epoch FROM relay") == "1");  // A numbered them, as the relay
    stop(b);
    stop(a);
  }

  // Issue 17 ("Crash" and "Relay failover"): three sagad under load, one SIGKILLed and restarted
  // every few hundred milliseconds; clients resend what was not acknowledged to another sagad. No
  // acknowledged event is lost, the publication sequence is 1..M without a gap, each saga's
  // follow-on events are in causal order, and one subscriber connected to all three (live and
  // replay) receives 1..M once each, in order, whichever sagad was up.
  TEST_CASE("three sagad killed in turn under load lose no acked event and publish one gapless log") {
    const int orders = torture() ? 20'000 : 1'500, kills = torture() ? 40 : 5;
    saga::test::temp_dir dir;
    const auto schema = saga::test::unique_schema("crash");
    // A short lease: a killed relay's successor takes over within a second, several times a run.
    const std::vector<std::string> relay_lease{"--pg-relay-lease", "1s"};
    std::vector<saga::test::endpoints> eps;
    std::vector<saga::test::started_daemon> sagad(3);
    std::string publish, replay;
    for (int i = 0; i < 3; ++i) {
      const auto sub = std::filesystem::path(dir.path()) / ("s" + std::to_string(i));
      std::filesystem::create_directories(sub);
      eps.push_back(saga::test::endpoints::ipc_in(sub));
      sagad[i] = start_on(SAGAD_PATH, schema, eps[i], dir, "sagad" + std::to_string(i), relay_lease);
      REQUIRE_MESSAGE(sagad[i], sagad[i].error);
      publish += (i ? "," : "") + eps[i].publish;
      replay += (i ? "," : "") + eps[i].replay;
    }
    ::zmq::context_t ctx(1);
    saga::zmq::subscriber sub(ctx, publish, replay);
    std::vector<std::int64_t> seen;
    const auto drain = [&](std::chrono::milliseconds d) {
      sub.poll(d, [&](const saga::zmq::delivery& dl) { seen.push_back(dl.sequence); });
    };

    std::atomic<bool> sending{true};
    std::set<std::string> acked;
    std::thread client([&] {
      ::zmq::context_t c(1);
      saga::zmq::client_options co;
      co.timeout = 1s;
      co.max_tries = 2;
      co.window = 50;
      std::size_t target = 0;
      for (int from = 0; from < orders; from += 25) {
        std::vector<saga::event> chunk;
        for (int i = from; i < from + 25; ++i) {
          const auto order = "o-" + std::to_string(i);
          chunk.push_back(saga::test::placed(order));
          chunk.push_back(saga::test::paid(order));
        }
        for (bool done = false; !done; target = (target + 1) % 3) {  // the next sagad when one is down
          try {
            saga::zmq::client cl(c, eps[target].ingress, co);
            for (const auto& ack : cl.send_all(chunk)) {
              CHECK_MESSAGE(ack.ok(), ack.reason);
              if (ack.ok()) acked.insert(ack.id);
            }
            done = true;
          } catch (const saga::zmq::client_error&) {
          }
        }
      }
      sending = false;
    });
    int killed = 0;  // while the client was sending
    for (int k = 0; k < kills && sending; ++k, ++killed) {
      drain(300ms);
      auto& victim = sagad[static_cast<std::size_t>(k % 3)];
      REQUIRE(victim.proc->signal(SIGKILL));
      victim.proc->wait_for(10s);
      drain(100ms);
      victim = start_on(SAGAD_PATH, schema, eps[static_cast<std::size_t>(k % 3)], dir,
                        "sagad" + std::to_string(k % 3) + "-" + std::to_string(k), relay_lease);
      REQUIRE_MESSAGE(victim, victim.error);
    }
    client.join();
    MESSAGE(killed << " sagad killed under load");
    CHECK(killed >= 3);
    CHECK(acked.size() == 2 * orders);

    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT count(*) FROM inbox WHERE source = 'urn:test'") == std::to_string(2 * orders));
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE state = 'paid'") == std::to_string(orders));
    REQUIRE(all_numbered(sql));
    const auto last = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    CHECK(last == 2 * orders);  // payment.requested and inventory.reservation.requested per order
    CHECK(sql.scalar("SELECT count(DISTINCT sequence) FROM outbox") == std::to_string(last));
    // Causal order per saga: the later transition's follow-on events come later in the log. History
    // names its outbox rows by id (the writer's provisional number); the relay gave them sequences.
    const std::string sequences_of_transitions =
        "SELECT h.definition, h.key, h.version, min(o.sequence) AS f, max(o.sequence) AS l FROM history AS h"
        " JOIN outbox AS o ON o.id BETWEEN h.outbox_first AND h.outbox_last AND o.definition = h.definition"
        " AND o.key = h.key GROUP BY h.definition, h.key, h.version";
    CHECK(sql.scalar("WITH t AS (" + sequences_of_transitions +
                     ") SELECT count(*) FROM t AS h JOIN t AS g ON g.definition = h.definition AND"
                     " g.key = h.key AND g.version > h.version WHERE g.f < h.l") == "0");
    // every transition that wrote rows found them: the check above saw them all
    CHECK(sql.scalar("WITH t AS (" + sequences_of_transitions + ") SELECT count(*) FROM t") ==
          sql.scalar("SELECT count(*) FROM history WHERE outbox_first IS NOT NULL"));
    // The relay moved between sagad as they were killed: the lease changed hands.
    MESSAGE("relay lease epoch at the end: " << sql.scalar("SELECT epoch FROM relay"));
    for (int i = 0; i < 200 && sub.last_sequence() < last; ++i) drain(100ms);
    REQUIRE(static_cast<std::int64_t>(seen.size()) == last);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<std::int64_t>(i) + 1);
    for (auto& d : sagad) stop(d);
  }

  // Issue 17 ("Timers"): timers (2,000; 10,000 in `make torture`) armed by a sagad that is then killed, due
  // (their due time moved to the past in the database) while it is dead; two other sagad fire each exactly
  // once.
  TEST_CASE("timers armed by a killed sagad fire exactly once across the sagad left") {
    const int orders = torture() ? 10'000 : 2'000;
    saga::test::temp_dir dir;
    const auto schema = saga::test::unique_schema("timers");
    auto armer = start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir, "armer");
    REQUIRE_MESSAGE(armer, armer.error);
    {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options co;
      co.window = 500;
      co.timeout = 20s;
      saga::zmq::client c(ctx, armer.ep.ingress, co);
      std::vector<saga::event> events;
      for (int i = 0; i < orders; ++i) events.push_back(saga::test::placed("o-" + std::to_string(i)));
      for (const auto& a : c.send_all(events)) REQUIRE(a.status == saga::ack_status::accepted);
    }
    REQUIRE(armer.proc->signal(SIGKILL));
    armer.proc->wait_for(10s);
    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    // 15 minutes have passed: every payment_timeout is due.
    sql.exec(
        "UPDATE instances SET timers = jsonb_set(timers, '{payment_timeout,0}', '1000'), next_due_ms = 1000");
    std::vector<saga::test::started_daemon> firing;
    for (int i = 0; i < 2; ++i) {
      firing.push_back(start_on(SAGAD_PATH, schema, saga::test::endpoints::any_loopback(), dir,
                                "firing" + std::to_string(i)));
      REQUIRE_MESSAGE(firing.back(), firing.back().error);
    }
    std::string cancelled;
    for (int i = 0; i < 600 && cancelled != std::to_string(orders); ++i) {
      std::this_thread::sleep_for(100ms);
      cancelled = sql.scalar("SELECT count(*) FROM instances WHERE state = 'cancelled'");
    }
    CHECK(cancelled == std::to_string(orders));
    CHECK(sql.scalar("SELECT count(*) FROM history WHERE event_type = 'saga.timer.payment_timeout'") ==
          std::to_string(orders));
    CHECK(sql.scalar("SELECT count(*) FROM inbox WHERE event_id LIKE 'timer:%'") == std::to_string(orders));
    CHECK(sql.scalar("SELECT count(*) FROM dead_letters") == "0");
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE next_due_ms IS NOT NULL") == "0");
    for (auto& d : firing) stop(d);
  }
}
