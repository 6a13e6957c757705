// sagad syncs its write-ahead log on a thread of its own (--sync-log thread, the default on
// SQLite at synchronous FULL; docs/reliability.md, "When an ack is sent"): a batch is committed
// without a sync, and its acks and follow-on events wait until a sync that began after the
// commit returned. sagad-test's stall_sync fault point holds that sync, as a slow disk would.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using saga::test::endpoints;
using saga::test::temp_dir;

// Whether the saga `key` has an instance row, read by a connection of our own.
bool committed(const std::string& db, const std::string& key) {
  try {
    SQLite::Database d(db, SQLite::OPEN_READONLY);
    SQLite::Statement q(d, "SELECT count(*) FROM instances WHERE key = ?");
    q.bind(1, key);
    return q.executeStep() && q.getColumn(0).getInt() == 1;
  } catch (const std::exception&) {
    return false;  // not created yet
  }
}

saga::test::started_daemon start(const temp_dir& dir, std::vector<std::string> argv) {
  return saga::test::start_daemon(std::move(argv), endpoints::any_loopback(), dir.file("endpoints.json"),
                                  dir.file("sagad.out"), dir.file("sagad.err"));
}

#if defined(SAGAD_TEST_PATH)
// sagad-test on `db`, its first log sync after the start held `seconds` (the stall_sync fault
// point), as a slow disk would.
saga::test::started_daemon start_with_stalled_sync(const temp_dir& dir, const std::string& db, int seconds) {
  ::setenv("SAGA_FAULT", ("stall_sync:" + std::to_string(seconds)).c_str(), 1);
  auto d = start(dir, {SAGAD_TEST_PATH, "--db", db});
  ::unsetenv("SAGA_FAULT");
  return d;
}
#endif

}  // namespace

TEST_SUITE("log sync") {
#if defined(SAGAD_TEST_PATH)
  TEST_CASE("an event is committed before its log sync and acked and published only after it") {
    temp_dir dir;
    const std::string db = dir.file("saga.db");
    auto d = start_with_stalled_sync(dir, db, 3);
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());
    CHECK(d.proc->err().find("the log synced on a thread of its own") != std::string::npos);

    ::zmq::context_t ctx(1);
    saga::zmq::subscriber sub(ctx, d.ep.publish, d.ep.replay);
    std::vector<std::string> published;
    const auto collect = [&](const saga::zmq::delivery& e) { published.push_back(e.type); };
    sub.poll(300ms, collect);  // connected before anything is published

    const auto sent = steady::now();
    auto acked = std::async(std::launch::async, [&] {
      ::zmq::context_t c(1);
      saga::zmq::client_options co;
      co.timeout = 20s;
      saga::zmq::client client(c, d.ep.ingress, co);
      const auto a = client.send(saga::test::placed("o-1"));
      return std::make_pair(a.status, steady::now());
    });

    // The commit does not wait for the sync: the saga is in the database while its ack is held.
    while (!committed(db, "o-1") && steady::now() - sent < 2500ms) std::this_thread::sleep_for(10ms);
    REQUIRE(committed(db, "o-1"));
    CHECK(acked.wait_for(0ms) == std::future_status::timeout);
    sub.poll(300ms, collect);
    CHECK(published.empty());  // nor are its follow-on events out, live or by replay
    CHECK(acked.wait_for(0ms) == std::future_status::timeout);

    const auto [status, at] = acked.get();
    CHECK(status == saga::ack_status::accepted);
    CHECK(at - sent >= 2500ms);  // the ack came after the held sync
    const auto deadline = steady::now() + 10s;
    while (published.empty() && steady::now() < deadline) sub.poll(200ms, collect);
    REQUIRE(published.size() == 1);
    CHECK(published[0] == "payment.requested");

    // Later events wait for no stall.
    ::zmq::context_t c(1);
    saga::zmq::client client(c, d.ep.ingress);
    const auto again = steady::now();
    CHECK(client.send(saga::test::placed("o-2")).status == saga::ack_status::accepted);
    CHECK(steady::now() - again < 2s);
    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(d.proc->wait_for(20s).code() == 0);
  }

  TEST_CASE("an event that arrives while a sync is slow is committed before that sync returns") {
    temp_dir dir;
    const std::string db = dir.file("saga.db");
    auto d = start_with_stalled_sync(dir, db, 4);
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());

    const auto send = [&](const std::string& key) {
      return std::async(std::launch::async, [&, key] {
        ::zmq::context_t c(1);
        saga::zmq::client_options co;
        co.timeout = 20s;
        saga::zmq::client client(c, d.ep.ingress, co);
        return client.send(saga::test::placed(key)).status;
      });
    };
    const auto sent = steady::now();
    auto first = send("o-1");
    while (!committed(db, "o-1") && steady::now() - sent < 3s) std::this_thread::sleep_for(5ms);
    REQUIRE(committed(db, "o-1"));  // its sync is the stalled one

    // The next batch waits for that sync at most loop::max_sync_hold (1 ms), not the 4 s: it is
    // committed while the sync is still stalled, and acked only after a sync that began later.
    auto second = send("o-2");
    while (!committed(db, "o-2") && steady::now() - sent < 3500ms) std::this_thread::sleep_for(5ms);
    CHECK(committed(db, "o-2"));
    CHECK(first.wait_for(0ms) == std::future_status::timeout);
    CHECK(second.wait_for(0ms) == std::future_status::timeout);

    CHECK(first.get() == saga::ack_status::accepted);
    CHECK(second.get() == saga::ack_status::accepted);
    CHECK(steady::now() - sent >= 3500ms);  // neither ack came before the stalled sync returned
    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(d.proc->wait_for(20s).code() == 0);
  }

  TEST_CASE(
      "a failed log sync stops sagad without an ack and after a restart the resent event is a duplicate") {
    temp_dir dir;
    const std::string db = dir.file("saga.db");
    ::setenv("SAGA_FAULT", "fail_sync", 1);  // the first sync after the start fails
    auto d = start(dir, {SAGAD_TEST_PATH, "--db", db});
    ::unsetenv("SAGA_FAULT");
    REQUIRE_MESSAGE(d, d.error);
    {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options co;
      co.timeout = 2s;
      co.max_tries = 1;
      saga::zmq::client client(ctx, d.ep.ingress, co);
      CHECK_THROWS_AS(client.send(saga::test::placed("o-1")), saga::zmq::client_error);  // never acked
    }
    const auto exit = d.proc->wait_for(20s);
    INFO("sagad stderr: " << d.proc->err());
    CHECK(exit.code() == 1);  // it stopped by itself, failed
    CHECK(d.proc->err().find("the write-ahead log could not be synced") != std::string::npos);
    CHECK(d.proc->err().find("fault injected: fail_sync") != std::string::npos);

    // The commit itself stood (sagad died, not the machine): the resent event is recognised.
    temp_dir again;
    auto r = saga::test::start_daemon({SAGAD_TEST_PATH, "--db", db}, endpoints::any_loopback(),
                                      again.file("endpoints.json"), again.file("sagad.out"),
                                      again.file("sagad.err"));
    REQUIRE_MESSAGE(r, r.error);
    ::zmq::context_t ctx(1);
    saga::zmq::client client(ctx, r.ep.ingress);
    CHECK(client.send(saga::test::placed("o-1")).status == saga::ack_status::duplicate);
    REQUIRE(r.proc->signal(SIGTERM));
    CHECK(r.proc->wait_for(20s).code() == 0);
  }
#endif

  TEST_CASE("with --sync-log commit the commit syncs the log and the events are acked as before") {
    temp_dir dir;
    const std::string db = dir.file("saga.db");
    auto d = start(dir, {SAGAD_PATH, "--db", db, "--sync-log", "commit"});
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());
    ::zmq::context_t ctx(1);
    saga::zmq::client client(ctx, d.ep.ingress);
    for (int i = 0; i < 20; ++i)
      CHECK(client.send(saga::test::placed("o-" + std::to_string(i))).status == saga::ack_status::accepted);
    CHECK(committed(db, "o-19"));
    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(d.proc->wait_for(20s).code() == 0);
    const auto err = d.proc->err();
    CHECK(err.find("synchronous=FULL") != std::string::npos);
    CHECK(err.find("the log synced on a thread of its own") == std::string::npos);
  }
}
