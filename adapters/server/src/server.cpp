#include "daemon.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <memory>
#include <utility>

#include <spdlog/spdlog.h>

#include "committer.hpp"
#include "database_lock.hpp"
#include "definitions/catalog.hpp"
#include "fault_points.hpp"
#include "loop_stats.hpp"
#include "replay_thread.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/zmq/ingress_server.hpp"
#include "saga/zmq/publisher.hpp"
#include "ticker.hpp"

namespace saga::daemon {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// How often undelivered acks (peers not reading) are offered to their pipes again.
constexpr auto ack_retry_interval = 10ms;

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

saga::engine_options engine_options_of(const options& o) {
  saga::engine_options eo;
  eo.source = o.source;
  eo.park_limit = o.park_limit;
  eo.park_total_limit = o.park_total_limit;
  eo.park_expiry_ms = o.park_expiry_ms;
  eo.dead_letter_retention_ms = o.dead_letter_retention_ms;
  eo.dead_letter_max = o.dead_letter_max;
  eo.finished_retention_ms = o.finished_retention_ms;
  eo.log = [](saga::log_level l, std::string_view m) { spdlog::log(to_spdlog(l), "{}", m); };
  return eo;
}

void register_definitions(saga::engine& engine, const options& o) {
  std::vector<std::shared_ptr<const saga::definition>> defs;
  for (const auto& name : o.definitions.empty() ? saga::definitions::names() : o.definitions) {
    auto d = saga::definitions::by_name(name);
    if (!d) {
      std::string known;
      for (const auto& n : saga::definitions::names()) known += (known.empty() ? "" : ", ") + n;
      throw startup_error("unknown definition '" + name + "' (compiled: " + known + ")");
    }
    defs.push_back(std::move(d));
  }
  defs.insert(defs.end(), o.extra_definitions.begin(), o.extra_definitions.end());
  for (auto& d : defs) {
    try {
      const auto r = engine.add(std::move(d));
      spdlog::info("definition {} fingerprint {}", r.name, r.fingerprint);
    } catch (const std::invalid_argument& e) {
      throw startup_error(e.what());
    }
  }
}

// The loop: each pass waits for ingress (unless a batch is in hand) or for
// the next thing due, then runs the named parts in order.
class loop {
 public:
  loop(const options& o, saga::engine& engine, saga::zmq::ingress_server& ingress, saga::outbox_relay& relay,
       saga::zmq::publisher& pub, const saga::clock& clock, fault_points& fault)
      : ingress_(ingress),
        relay_(relay),
        committer_(
            engine, ingress, fault, stats_,
            committer::options{o.storage_retries, std::chrono::milliseconds(o.storage_backoff_ms), 5000ms}),
        ticker_(engine, relay, pub, clock, stats_, ticker::options{}) {
    engine.on_commit([this] { committed_ = true; });
  }

  void run(const std::atomic<bool>& stop) {
    next_summary_ = steady::now() + 60s;
    while (!stop.load()) {
      if (!wait_for_work()) continue;
      const auto now = steady::now();
      if (!committer_.busy() && ingress_ready_) pump_ingress();
      if (committer_.busy() && committer_.step(now)) publish_committed();
      ingress_.flush();
      ticker_.run(now);
      summarize(now);
    }
    // Stopping: one last attempt at the batch in hand (unacked if it fails:
    // clients resend to the next sagad), then publish what is committed.
    if (committer_.busy() && committer_.step(steady::now(), true)) publish_committed();
    ingress_.flush();
    try {
      relay_.drain();
    } catch (const std::exception& e) {
      spdlog::error("final publish: {} (published on the next start)", e.what());
    }
    stats_.dropped = ingress_.dropped_requests();
    spdlog::info("sagad stopped: {}", stats_.summary());
  }

 private:
  // Polls the ingress (not while a batch is in hand: nothing new is read
  // until it is settled) until the next thing due; false on a signal.
  bool wait_for_work() {
    auto until = ticker_.due();
    if (committer_.busy()) until = std::min(until, committer_.next_attempt());
    if (ingress_.queued_acks() > 0) until = std::min(until, steady::now() + ack_retry_interval);
    const auto wait =
        std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now()));
    ::zmq::pollitem_t item{ingress_.socket().handle(), 0, committer_.busy() ? short(0) : short(ZMQ_POLLIN),
                           0};
    try {
      ::zmq::poll(&item, 1, wait);
    } catch (const ::zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      return false;  // a signal: the loop condition decides
    }
    ingress_ready_ = (item.revents & ZMQ_POLLIN) != 0;
    return true;
  }

  // The ingress pump: takes what waits (up to --batch-max) into the committer.
  void pump_ingress() {
    if (ingress_.read_batch() > 0) committer_.take();
  }

  // The publisher: what the last commit wrote goes out now. A store error
  // (marking rows published) loses nothing: the rows stay unpublished and
  // the tick's drain publishes them again.
  void publish_committed() {
    if (!committed_) return;
    committed_ = false;
    try {
      relay_.drain();
    } catch (const saga::store_error& e) {
      spdlog::error("publishing: {} (retried on the next tick)", e.what());
    }
  }

  void summarize(steady::time_point now) {
    if (now < next_summary_) return;
    stats_.dropped = ingress_.dropped_requests() - dropped_reported_;
    dropped_reported_ = ingress_.dropped_requests();
    spdlog::info("last minute: {}", stats_.summary());
    stats_ = {};
    next_summary_ += 60s;
    if (next_summary_ <= now) next_summary_ = now + 60s;
  }

  saga::zmq::ingress_server& ingress_;
  saga::outbox_relay& relay_;
  loop_stats stats_;
  committer committer_;
  ticker ticker_;
  bool committed_ = false;
  bool ingress_ready_ = false;
  steady::time_point next_summary_;
  std::uint64_t dropped_reported_ = 0;
};

}  // namespace

void run(const options& o, const std::atomic<bool>& stop) {
  // First: the lock must outlive every SQLite connection below (database_lock.hpp).
  database_lock lock(o.db);
  fault_points fault;

  saga::sqlite::options so;
  so.path = o.db;
  so.synchronous = o.synchronous;
  std::unique_ptr<saga::sqlite::store> writer;
  try {
    writer = std::make_unique<saga::sqlite::store>(so);
  } catch (const std::exception& e) {
    throw startup_error(std::string("database ") + o.db + ": " + e.what());
  }

  // Sockets before definitions: a taken port refuses the start before anything is logged.
  ::zmq::context_t ctx(1);
  std::unique_ptr<saga::zmq::publisher> pub;
  std::unique_ptr<saga::zmq::ingress_server> ingress;
  try {
    pub = std::make_unique<saga::zmq::publisher>(ctx, o.publish);
    saga::zmq::ingress_options io;
    io.batch_max = o.batch_max;
    io.peer_credit = o.peer_credit;
    io.warn = [](std::string_view m) { spdlog::warn("{}", m); };
    ingress = std::make_unique<saga::zmq::ingress_server>(ctx, o.ingress, io);
  } catch (const std::exception& e) {
    throw startup_error(e.what());
  }
  auto ro = so;
  ro.background_checkpoint = false;  // it never writes: the writer's checkpointer does that
  replay_thread replay(ctx, o.replay, ro);

  saga::system_clock system_clock;
  const saga::clock& clock = o.clock ? *o.clock : system_clock;
  saga::store* engine_store = &fault.wrap(*writer);
  std::unique_ptr<saga::store> wrapped;
  if (o.wrap_store) {
    wrapped = o.wrap_store(*engine_store);
    engine_store = wrapped.get();
  }
  saga::engine engine(*engine_store, clock, engine_options_of(o));
  register_definitions(engine, o);

  saga::relay_options rlo;
  rlo.retention_ms = o.retention_ms;
  rlo.dedup_window_ms = o.dedup_window_ms;
  saga::outbox_relay relay(*writer, fault.wrap(*pub), clock, rlo);

  std::size_t published_at_start = 0;  // what was committed but not published
  try {
    published_at_start = relay.drain();
  } catch (const saga::store_error& e) {
    spdlog::error("publishing pending rows at start: {} (retried on the next tick)", e.what());
  }
  spdlog::info(
      "sagad: db {} (synchronous={}), ingress {}, events {}, replay {}; published {} pending at start", o.db,
      o.synchronous, ingress->endpoint(), pub->endpoint(), replay.endpoint(), published_at_start);
  if (o.on_ready) o.on_ready(endpoints{ingress->endpoint(), pub->endpoint(), replay.endpoint()});

  loop(o, engine, *ingress, relay, *pub, clock, fault).run(stop);
}

}  // namespace saga::daemon
