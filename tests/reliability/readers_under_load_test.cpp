// Readers under load (issue 7, "Readers under load"): sagad ingests at full
// speed from a pipelining client while 8 threads run `sagactl list --json`
// in loops against the same database. No reader and not the writer may see
// SQLITE_BUSY/SQLITE_LOCKED: every sagactl run exits 0 and prints nothing
// about a busy or locked database, every event is accepted, and sagad's log
// has no such complaint. The writer's throughput with and without the
// readers is reported (MESSAGE), not asserted.
//
// SAGA_READERS_EVENTS (default 3000) sets the events per phase.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::endpoints;
using saga::test::process;
using saga::test::temp_dir;
using steady = std::chrono::steady_clock;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
bool mentions_contention(const std::string& text) {
  const std::string l = lower(text);
  return l.find("busy") != std::string::npos || l.find("locked") != std::string::npos;
}

std::string order_placed(const std::string& key, int n) {
  return json{{"specversion", "1.0"},
              {"id", "place:" + key},
              {"source", "urn:test:readers"},
              {"type", "order.placed"},
              {"subject", key},
              {"time", "2026-11-27T00:10:45.123Z"},
              {"data",
               {{"order_id", key},
                {"amount", 1000 + n},
                {"currency", "EUR"},
                {"customer_id", "c-" + std::to_string(n % 11)},
                {"items", json::array({{{"sku", "SKU-" + std::to_string(n % 5)}, {"qty", 1 + n % 3}}})}}}}
      .dump();
}

struct writer_result {
  int sent = 0, accepted = 0, other = 0;
  double seconds = 0;
  std::string first_other;
  double per_second() const { return seconds > 0 ? accepted / seconds : 0; }
};

// Sends `n` order.placed events on one DEALER, up to `window` unacked, and
// times the whole run from the first send to the last ack.
writer_result write_events(const std::string& ingress, const std::string& prefix, int n, int window = 500) {
  ::zmq::context_t ctx(1);
  ::zmq::socket_t s(ctx, ::zmq::socket_type::dealer);
  s.set(::zmq::sockopt::linger, 0);
  s.connect(ingress);
  writer_result r;
  int in_flight = 0, answered = 0;
  const auto start = steady::now();
  auto last_progress = start;
  while (answered < n) {
    while (r.sent < n && in_flight < window) {
      const std::string body = order_placed(prefix + std::to_string(r.sent), r.sent);
      s.send(::zmq::const_buffer(), ::zmq::send_flags::sndmore);
      s.send(::zmq::buffer(body), ::zmq::send_flags::none);
      ++r.sent;
      ++in_flight;
    }
    ::zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, 100ms);
    if ((item.revents & ZMQ_POLLIN) == 0) {
      if (steady::now() - last_progress > 60s) break;  // sagad stopped answering
      continue;
    }
    std::vector<::zmq::message_t> frames;
    (void)::zmq::recv_multipart(s, std::back_inserter(frames), ::zmq::recv_flags::dontwait);
    if (frames.empty()) continue;
    last_progress = steady::now();
    ++answered;
    --in_flight;
    const json a = json::parse(frames.back().to_string_view(), nullptr, false);
    if (!a.is_discarded() && a.value("status", "") == "accepted") {
      ++r.accepted;
    } else {
      if (r.other++ == 0) r.first_other = frames.back().to_string();
    }
  }
  r.seconds = std::chrono::duration<double>(steady::now() - start).count();
  return r;
}

struct reader_stats {
  std::atomic<int> runs{0}, failures{0}, contention{0};
  std::atomic<int> threads_reading{0};  // threads that have started their first sagactl
  std::mutex mutex;
  std::string first_problem;
  void problem(const std::string& p) {
    std::lock_guard lock(mutex);
    if (first_problem.empty()) first_problem = p;
  }
};

// `threads` threads each running `sagactl --db DB list --json` until `stop`.
class readers {
 public:
  readers(const temp_dir& dir, const std::string& db, int threads, reader_stats& stats) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, &dir, db, t, &stats] {
        const std::string out = dir.file("reader-" + std::to_string(t) + ".out");
        const std::string err = dir.file("reader-" + std::to_string(t) + ".err");
        for (bool first = true; !stop_.load(); first = false) {
          process p({SAGACTL_PATH, "--db", db, "list", "--json"}, out, err);
          if (first) ++stats.threads_reading;
          const auto st = p.wait_for(60s);
          ++stats.runs;
          const std::string o = p.out(), e = p.err();
          if (st.code() != 0) {
            ++stats.failures;
            stats.problem("sagactl " + st.describe() + ": " + e.substr(0, 500));
          }
          if (mentions_contention(e) || mentions_contention(o)) {
            ++stats.contention;
            stats.problem("sagactl printed busy/locked: " + e.substr(0, 500));
          }
          if (st.code() == 0 && json::parse(o, nullptr, false).is_discarded()) {
            ++stats.failures;
            stats.problem("sagactl list --json printed invalid JSON: " + o.substr(0, 200));
          }
        }
      });
  }
  ~readers() { stop(); }
  void stop() {
    stop_.store(true);
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

int events_per_phase() {
  if (const char* v = std::getenv("SAGA_READERS_EVENTS")) return std::max(100, std::atoi(v));
  return 3000;
}

}  // namespace

TEST_SUITE("readers under load") {
  TEST_CASE("8 sagactl list loops during full-speed ingestion: no busy or locked database reaches anyone") {
    temp_dir dir;
    const std::string db = dir.file("readers.db");
    auto started =
        saga::test::start_daemon({SAGAD_PATH, "--db", db, "--log-level", "info"}, endpoints::any_loopback(),
                                 dir.file("endpoints.json"), dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(started, started.error);
    process& sagad = *started.proc;
    const auto ep = started.ep;
    REQUIRE(saga::test::wait_until_ingress_answers(ep.ingress, 20s, &sagad));
    const int n = events_per_phase();

    // Warm-up: the database and sagad's caches in their steady state.
    const auto warm = write_events(ep.ingress, "warm-", 300);
    REQUIRE(warm.accepted == 300);

    const auto solo1 = write_events(ep.ingress, "solo1-", n);
    reader_stats stats;
    writer_result loaded;
    {
      readers r(dir, db, 8, stats);
      // Every reader has a sagactl running before the writer starts.
      const auto deadline = steady::now() + 60s;
      while (stats.threads_reading.load() < 8 && steady::now() < deadline) std::this_thread::sleep_for(1ms);
      REQUIRE(stats.threads_reading.load() == 8);
      loaded = write_events(ep.ingress, "loaded-", n);
      r.stop();
    }
    const auto solo2 = write_events(ep.ingress, "solo2-", n);

    MESSAGE("writer without readers: " << n << " events in " << solo1.seconds
                                       << " s = " << static_cast<long>(solo1.per_second()) << " events/s");
    MESSAGE("writer with 8 sagactl list loops: " << n << " events in " << loaded.seconds
                                                 << " s = " << static_cast<long>(loaded.per_second())
                                                 << " events/s (" << stats.runs.load() << " sagactl runs)");
    MESSAGE("writer without readers, again: " << n << " events in " << solo2.seconds << " s = "
                                              << static_cast<long>(solo2.per_second()) << " events/s");

    INFO("first reader problem: " << stats.first_problem);
    CHECK(stats.runs.load() >= 8);
    CHECK(stats.failures.load() == 0);
    CHECK(stats.contention.load() == 0);
    for (const writer_result* w : std::vector<const writer_result*>{&solo1, &loaded, &solo2}) {
      INFO("first non-accepted ack: " << w->first_other);
      CHECK(w->accepted == n);
      CHECK(w->other == 0);
    }
    CHECK(sagad.running());
    sagad.signal(SIGTERM);
    CHECK(sagad.wait_for(10s).code() == 0);
    const std::string log = sagad.err() + sagad.out();
    INFO("sagad log: " << log.substr(0, 3000));
    CHECK_FALSE(mentions_contention(log));
  }
}
