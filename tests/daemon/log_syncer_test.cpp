// log_syncer (adapters/server/src/log_syncer.hpp): sagad's write-ahead log synced on a thread of its
// own. Tickets, what one sync covers, the wake-up descriptor and a failed sync, with a sync
// function the test controls; and saga::sqlite::log_file on a real database's log.

#include <doctest/doctest.h>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>

#include "log_syncer.hpp"
#include "loop.hpp"
#include "saga/sqlite/log_file.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/store.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using saga::server::log_syncer;

bool readable(int fd, std::chrono::milliseconds within) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(within.count())) == 1 && (p.revents & POLLIN) != 0;
}

// A sync function that records what had been "written" when each sync began, and can be held.
struct disk {
  std::mutex m;
  std::condition_variable cv;
  bool held = false;
  int written = 0;  // writes made before the latest sync began
  int durable = 0;  // what the latest finished sync covered
  std::atomic<int> began{0};
  std::atomic<bool> fail{false};

  void write() {
    std::lock_guard l(m);
    ++written;
  }
  void sync() {
    std::unique_lock l(m);
    const int covered = written;
    began.fetch_add(1);
    cv.notify_all();
    cv.wait(l, [&] { return !held; });
    if (fail) throw saga::store_error("cannot sync the write-ahead log x-wal: Input/output error");
    durable = covered;
  }
  void hold(bool h) {
    {
      std::lock_guard l(m);
      held = h;
    }
    cv.notify_all();
  }
  void wait_began(int n) {
    std::unique_lock l(m);
    cv.wait_for(l, 10s, [&] { return began.load() >= n; });
  }
};

}  // namespace

TEST_SUITE("log syncer") {
  TEST_CASE("a ticket is done only after a sync that began after it was requested") {
    disk d;
    log_syncer s([&] { d.sync(); });
    CHECK(s.done() == 0);
    d.write();
    const auto t1 = s.request();
    s.wait(t1);
    CHECK(s.done() >= t1);
    CHECK(d.durable == 1);  // the sync saw the write made before the request
    d.write();
    d.write();
    const auto t2 = s.request();
    CHECK(t2 > t1);
    s.wait(t2);
    CHECK(d.durable == 3);
    CHECK(s.syncs() == 2);
    CHECK_FALSE(s.failure());
  }

  TEST_CASE("tickets requested during a sync are covered together by the next one") {
    disk d;
    log_syncer s([&] { d.sync(); });
    d.hold(true);
    const auto first = s.request();
    d.wait_began(1);
    // While the first sync is held: three more commits, three tickets.
    std::uint64_t last = 0;
    for (int i = 0; i < 3; ++i) {
      d.write();
      last = s.request();
    }
    CHECK(s.done() < first);  // nothing is done while its sync has not returned
    d.hold(false);
    s.wait(last);
    CHECK(s.done() == last);
    CHECK(d.durable == 3);
    CHECK(s.syncs() == 2);  // one sync for the three, not three
  }

  TEST_CASE("a request with no commit since the last one gets the same ticket and no second sync") {
    disk d;
    std::int64_t commits = 0;
    log_syncer s([&] { d.sync(); }, [&] { return commits; });
    d.hold(true);
    ++commits;  // a batch's commit: its outbox rows ask first, then its acks
    const auto rows = s.request();
    d.wait_began(1);
    const auto acks = s.request();
    CHECK(acks == rows);  // the sync already under way covers the acks too
    d.hold(false);
    s.wait(acks);
    CHECK(s.syncs() == 1);
    ++commits;
    const auto next = s.request();
    CHECK(next > acks);
    s.wait(next);
    CHECK(s.syncs() == 2);
  }

  TEST_CASE("the wake-up descriptor turns readable when a sync returns and consume empties it") {
    disk d;
    log_syncer s([&] { d.sync(); });
    CHECK_FALSE(readable(s.wakeup_fd(), 0ms));
    s.request();
    CHECK(readable(s.wakeup_fd(), 5000ms));
    s.consume();
    CHECK_FALSE(readable(s.wakeup_fd(), 0ms));
  }

  TEST_CASE("wait_all returns at once without a sync when every ticket is done") {
    disk d;
    log_syncer s([&] { d.sync(); });
    s.wait_all();
    CHECK(s.syncs() == 0);
    d.write();
    s.request();
    s.wait_all();
    CHECK(d.durable == 1);
    const auto syncs = s.syncs();
    s.wait_all();
    CHECK(s.syncs() == syncs);
  }

  TEST_CASE("a failed sync is not retried and every later wait throws its reason") {
    disk d;
    d.fail = true;
    log_syncer s([&] { d.sync(); });
    const auto t = s.request();
    CHECK_THROWS_WITH_AS(s.wait(t), doctest::Contains("Input/output error"), std::runtime_error);
    CHECK(s.done() < t);
    REQUIRE(s.failure());
    CHECK(s.failure()->find("x-wal") != std::string::npos);
    CHECK(readable(s.wakeup_fd(), 0ms));
    d.fail = false;
    const auto later = s.request();
    CHECK_THROWS_AS(s.wait(later), std::runtime_error);
    CHECK(s.syncs() == 1);
  }

  TEST_CASE("a stall set for the next sync holds that sync only") {
    disk d;
    log_syncer s([&] { d.sync(); });
    s.stall_next(300ms);
    const auto start = std::chrono::steady_clock::now();
    s.wait(s.request());
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    const auto again = std::chrono::steady_clock::now();
    s.wait(s.request());
    CHECK(std::chrono::steady_clock::now() - again < 300ms);
  }
}

TEST_SUITE("sync hold") {
  // loop::holds: whether the batch in hand waits for the sync in flight, so that it grows into
  // one commit per sync; the loop asks only while a sync is in flight and the batch untried.
  using saga::server::loop;

  TEST_CASE("a small batch waits for the sync in flight until its oldest event has waited 1 ms") {
    CHECK(loop::holds(1, 1024, 0ms));
    CHECK(loop::holds(loop::hold_below - 1, 1024, 999us));
    CHECK_FALSE(loop::holds(1, 1024, loop::max_sync_hold));
    CHECK_FALSE(loop::holds(1, 1024, 5s));
  }

  TEST_CASE("a batch of hold_below events or a full batch is committed at once") {
    CHECK_FALSE(loop::holds(loop::hold_below, 1024, 0ms));  // a full load: holding would idle the loop
    CHECK_FALSE(loop::holds(1000, 1024, 0ms));
    CHECK(loop::holds(9, 10, 0ms));
    CHECK_FALSE(loop::holds(10, 10, 0ms));  // --batch-max 10: full at 10
  }
}

TEST_SUITE("sqlite log file") {
  TEST_CASE("the store names its log as SQLite does and log_file syncs it even through a symlink") {
    saga::test::temp_dir dir;
    const auto real = dir.file("real.db");
    {
      saga::sqlite::options o;
      o.path = real;
      saga::sqlite::store s(o);
    }
    const auto link = dir.file("link.db");
    std::filesystem::create_symlink(real, link);
    saga::sqlite::options o;
    o.path = link;
    saga::sqlite::store s(o);
    const auto log = s.log_path();
    // SQLite resolves the link: the log lies beside the file the link names.
    CHECK(log == std::filesystem::canonical(real).string() + "-wal");
    CHECK(std::filesystem::exists(log));
    saga::sqlite::log_file f(log);
    CHECK_NOTHROW(f.sync());
    CHECK_NOTHROW(f.sync());
  }

  TEST_CASE("a log that cannot be opened is a store error naming the file") {
    saga::test::temp_dir dir;
    saga::sqlite::log_file f(dir.file("missing.db-wal"));
    CHECK_THROWS_WITH_AS(f.sync(), doctest::Contains("missing.db-wal"), saga::store_error);
  }
}
