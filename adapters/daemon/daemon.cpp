#include "daemon.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "definitions/catalog.hpp"
#include "saga/duration.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/zmq/ingress_server.hpp"
#include "saga/zmq/publisher.hpp"
#include "saga/zmq/replay_server.hpp"

namespace saga::daemon {
namespace {

using namespace std::chrono_literals;

// An advisory lock on "<db>.lock", held for the process's life: a second
// sagad on the same database refuses to start, while sagactl (which does not
// take it) keeps reading. flock is released by the kernel when the process
// dies, kill -9 included.
class lock_file {
 public:
  explicit lock_file(const std::string& db) : path_(db + ".lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw startup_error("cannot open lock file " + path_ + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw startup_error("another sagad is running on " + db + " (it holds " + path_ + ")");
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) (void)!::write(fd_, pid.data(), pid.size());
  }
  ~lock_file() { ::close(fd_); }
  lock_file(const lock_file&) = delete;
  lock_file& operator=(const lock_file&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

// Fault injection for the crash torture (tests/reliability): with
// SAGA_FAULT=<point>:<probability>, sagad kills itself with SIGKILL at that
// point with that probability. Points: before_commit (after a batch's writes,
// before its commit), after_commit (before the acks), after_publish (a row
// handed to the PUB socket, not yet marked published). Unset: no cost but a
// branch. Not an option on purpose: it exists for tests, not for operators.
class fault_hook {
 public:
  fault_hook() {
    const char* spec = std::getenv("SAGA_FAULT");
    if (spec == nullptr) return;
    const std::string s(spec);
    const auto colon = s.find(':');
    point_ = s.substr(0, colon);
    probability_ = colon == std::string::npos ? 1.0 : std::stod(s.substr(colon + 1));
    if (point_ != "before_commit" && point_ != "after_commit" && point_ != "after_publish")
      throw startup_error("SAGA_FAULT: unknown point '" + point_ + "'");
  }
  void at(std::string_view point) {
    if (point != point_ || std::uniform_real_distribution<double>(0, 1)(rng_) >= probability_) return;
    std::fprintf(stderr, "fault injected: %s\n", point_.c_str());
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
  }

 private:
  std::string point_;
  double probability_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

class faulty_store final : public saga::store_wrapper {
 public:
  faulty_store(saga::store& s, fault_hook& f) : store_wrapper(s), fault_(f) {}
  void commit() override {
    fault_.at("before_commit");
    store_wrapper::commit();
  }

 private:
  fault_hook& fault_;
};

class faulty_publisher final : public saga::publisher {
 public:
  faulty_publisher(saga::publisher& p, fault_hook& f) : inner_(p), fault_(f) {}
  void publish(const saga::outbox_record& r) override {
    inner_.publish(r);
    fault_.at("after_publish");
  }

 private:
  saga::publisher& inner_;
  fault_hook& fault_;
};

spdlog::level::level_enum to_spdlog(saga::log_level l) {
  switch (l) {
    case saga::log_level::debug:
      return spdlog::level::debug;
    case saga::log_level::info:
      return spdlog::level::info;
    case saga::log_level::warn:
      return spdlog::level::warn;
    case saga::log_level::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// Counters for the once-a-minute summary.
struct stats {
  std::uint64_t batches = 0;
  std::map<std::string, std::uint64_t> acks;  // "accepted/transitioned", "rejected", ...
  std::uint64_t timers = 0;
  std::uint64_t commit_failures = 0;

  void count(const saga::ack& a) {
    std::string k(saga::to_string(a.status));
    if (a.outcome != saga::ack_outcome::none) k += "/" + std::string(saga::to_string(a.outcome));
    ++acks[k];
  }
  std::string summary() const {
    std::uint64_t events = 0;
    std::string parts;
    for (const auto& [k, n] : acks) {
      events += n;
      parts += " " + k + "=" + std::to_string(n);
    }
    return std::to_string(events) + " events in " + std::to_string(batches) + " batches," + parts +
           "; timers fired " + std::to_string(timers) + "; failed commits " + std::to_string(commit_failures);
  }
};

}  // namespace

void run(const options& o, const std::atomic<bool>& stop) {
  fault_hook fault;
  lock_file lock(o.db);

  saga::sqlite::options so;
  so.path = o.db;
  so.synchronous = o.synchronous;
  std::unique_ptr<saga::sqlite::store> writer, reader;
  try {
    writer = std::make_unique<saga::sqlite::store>(so);
    auto ro = so;
    ro.background_checkpoint = false;                    // it never writes: the writer's thread checkpoints
    reader = std::make_unique<saga::sqlite::store>(ro);  // replay reads on its own connection
  } catch (const std::exception& e) {
    throw startup_error(std::string("database ") + o.db + ": " + e.what());
  }

  // Sockets before definitions: a taken port refuses the start before anything is logged.
  ::zmq::context_t ctx(1);
  std::unique_ptr<saga::zmq::publisher> pub;
  std::unique_ptr<saga::zmq::ingress_server> ingress;
  std::unique_ptr<saga::zmq::replay_server> replay;
  try {
    pub = std::make_unique<saga::zmq::publisher>(ctx, o.publish);
    saga::zmq::ingress_options io;
    io.batch_max = o.batch_max;
    ingress = std::make_unique<saga::zmq::ingress_server>(ctx, o.ingress, io);
    replay = std::make_unique<saga::zmq::replay_server>(ctx, o.replay, *reader);
  } catch (const std::exception& e) {
    throw startup_error(e.what());
  }

  saga::system_clock clock;
  saga::engine_options eo;
  eo.source = o.source;
  eo.park_limit = o.park_limit;
  eo.park_expiry_ms = o.park_expiry_ms;
  eo.log = [](saga::log_level l, std::string_view m) { spdlog::log(to_spdlog(l), "{}", m); };
  faulty_store engine_store(*writer, fault);
  saga::engine engine(engine_store, clock, eo);
  const auto wanted = o.definitions.empty() ? saga::definitions::names() : o.definitions;
  for (const auto& name : wanted) {
    auto d = saga::definitions::by_name(name);
    if (!d) {
      std::string known;
      for (const auto& n : saga::definitions::names()) known += (known.empty() ? "" : ", ") + n;
      throw startup_error("unknown definition '" + name + "' (compiled: " + known + ")");
    }
    const auto r = engine.add(d);
    spdlog::info("definition {} fingerprint {}", r.name, r.fingerprint);
  }

  saga::relay_options ro;
  ro.retention_ms = o.retention_ms;
  ro.dedup_window_ms = o.dedup_window_ms;
  faulty_publisher relay_publisher(*pub, fault);
  saga::outbox_relay relay(*writer, relay_publisher, clock, ro);
  bool committed = false;
  engine.on_commit([&] { committed = true; });

  std::size_t published_at_start = 0;  // what was committed but not published
  try {
    published_at_start = relay.drain();
  } catch (const saga::store_error& e) {
    spdlog::error("publishing pending rows at start: {} (retried on the next tick)", e.what());
  }
  spdlog::info(
      "sagad: db {} (synchronous={}), ingress {}, events {}, replay {}; published {} pending at start", o.db,
      o.synchronous, ingress->endpoint(), pub->endpoint(), replay->endpoint(), published_at_start);

  stats st;
  auto next_tick = std::chrono::steady_clock::now();
  auto next_summary = next_tick + 60s;
  auto next_prune = next_tick;

  // Handles the batch in hand: commit (retrying a failed commit with backoff:
  // nothing of it is durable, so nothing is acked), then ack, then publish.
  auto handle_batch = [&] {
    const auto inputs = ingress->pending();
    auto backoff = 50ms;
    for (;;) {
      try {
        const auto acks = engine.handle_batch(inputs);
        fault.at("after_commit");
        ingress->ack(acks);
        ++st.batches;
        for (const auto& a : acks) st.count(a);
        spdlog::debug("batch of {} committed and acked", acks.size());
        return true;
      } catch (const saga::store_error& e) {
        ++st.commit_failures;
        spdlog::error("batch of {} not committed (retrying in {}): {}", inputs.size(),
                      saga::format_duration(backoff.count()), e.what());
        if (stop.load()) return false;  // unacked: clients resend after a restart
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  };

  // Publishes what the last commit wrote. A store error here (marking rows
  // published) loses nothing: the rows stay unpublished and the next drain —
  // after the next commit or on the tick — publishes them again.
  auto publish = [&] {
    if (!committed) return;
    committed = false;
    try {
      relay.drain();
    } catch (const saga::store_error& e) {
      spdlog::error("publishing: {} (retried on the next tick)", e.what());
      committed = true;
    }
  };

  while (!stop.load()) {
    const auto now = std::chrono::steady_clock::now();
    const auto wait = std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now));
    ::zmq::pollitem_t items[] = {{ingress->socket().handle(), 0, ZMQ_POLLIN, 0},
                                 {replay->socket().handle(), 0, ZMQ_POLLIN, 0}};
    try {
      ::zmq::poll(items, 2, wait);
    } catch (const ::zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      continue;  // a signal: the loop condition decides
    }
    if (items[0].revents & ZMQ_POLLIN) {
      if (ingress->read_batch() > 0 && !handle_batch()) break;
      publish();
    }
    if (items[1].revents & ZMQ_POLLIN)
      for (int i = 0; i < 64 && replay->poll_once(0ms); ++i) {
      }

    if (std::chrono::steady_clock::now() < next_tick) continue;
    next_tick += 1s;
    if (next_tick < std::chrono::steady_clock::now()) next_tick = std::chrono::steady_clock::now() + 1s;
    try {
      for (const auto& f : engine.fire_due_timers(clock.now_ms())) {
        ++st.timers;
        spdlog::debug("timer {} of {}/{} fired: {}", f.timer.name, f.timer.definition, f.timer.key,
                      saga::to_json(f.ack).dump());
      }
      if (const auto n = engine.expire_parked(clock.now_ms()); n > 0)
        spdlog::warn("{} parked event(s) of sagas that never started moved to the dead letters", n);
      relay.drain();  // also the slow poll for rows other processes committed
      committed = false;
      if (std::chrono::steady_clock::now() >= next_prune) {
        if (const auto n = relay.prune(); n > 0) spdlog::info("pruned {} outbox and inbox rows", n);
        next_prune += 1h;
      }
    } catch (const saga::store_error& e) {
      spdlog::error("tick: {} (retrying next second)", e.what());
    }
    pub->heartbeat(std::max<std::int64_t>(0, relay.last_published()));
    if (std::chrono::steady_clock::now() >= next_summary) {
      spdlog::info("last minute: {}", st.summary());
      st = {};
      next_summary += 60s;
    }
  }

  // Stopping: the batch in hand was committed and acked above; publish what is committed.
  try {
    relay.drain();
  } catch (const std::exception& e) {
    spdlog::error("final publish: {} (published on the next start)", e.what());
  }
  spdlog::info("sagad stopped: {}", st.summary());
}

}  // namespace saga::daemon
