#include "loop.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace saga::server {
namespace {

using namespace std::chrono_literals;

// How often undelivered acks (peers not reading) are offered to their pipes again.
constexpr auto ack_retry_interval = 10ms;

}  // namespace

loop::loop(const options& o, saga::engine& engine, saga::zmq::ingress_server& ingress,
           saga::outbox_relay& relay, saga::zmq::publisher& pub, const saga::clock& clock,
           fault_points& fault, service_manager& manager, sagad_metrics& metrics, log_syncer* syncer)
    : options_(o),
      ingress_(ingress),
      relay_(relay),
      metrics_(metrics),
      committer_(engine, ingress, fault, metrics,
                 committer::options{o.storage_retries, std::chrono::milliseconds(o.storage_backoff_ms),
                                    5000ms, 2 * o.batch_max},
                 syncer),
      ticker_(engine, relay, pub, clock, metrics, ticker::options{}),
      manager_(manager),
      syncer_(syncer) {
  // Rows committed but not yet synced are never published, by a drain either.
  if (syncer_ != nullptr) relay_.limit_to_durable([this] { return durable_through(); });
  engine.on_commit([this](std::span<const saga::published_event> rows) {
    for (const auto& p : rows) committed_.push_back(p.record);
    if (rows.empty()) return;
    if (syncer_ != nullptr) committed_tickets_.emplace_back(syncer_->request(), committed_.size());
    if (!relay_.numbers_after_commit())  // else a provisional number, not a sequence
      metrics_.last_committed_sequence.store(rows.back().record.sequence, std::memory_order_relaxed);
    std::int64_t none = 0;  // the oldest unpublished row's commit time, when there was none
    metrics_.unpublished_since_ms.compare_exchange_strong(none, rows.front().record.created_ms,
                                                          std::memory_order_relaxed);
  });
}

void loop::run(const std::atomic<bool>& stop) {
  next_summary_ = steady::now() + 60s;
  while (!stop.load()) {
    if (!wait_for_work()) continue;
    const auto now = steady::now();
    check_log_sync();
    committer_.deliver_durable();
    // A batch held for the sync in flight is not polled for (a wake-up per arriving event costs
    // a pass each): it takes what waits once per pass instead.
    if (committer_.can_read() && (ingress_ready_ || committer_.untried())) pump_ingress();
    if (committer_.busy() && !holds_for_sync(now)) committer_.step(now);
    publish_committed();  // also what the last pass's timers committed
    poll_outbox(now);
    ingress_.flush();
    ticker_.run(now);
    summarize(now);
    update_metrics();
    manager_.keep_alive(now);
  }
  manager_.stopping("stopping: settling the batch in hand and publishing what is committed");
  if (committer_.busy()) committer_.step(steady::now(), true);
  committer_.deliver_all();
  if (syncer_ != nullptr) syncer_->wait_all();
  ingress_.flush();
  committed_.clear();  // the drain below publishes them
  committed_tickets_.clear();
  try {
    relay_.drain();
    relay_.release();  // another sagad numbers from now on, without waiting for the lease to expire
  } catch (const std::exception& e) {
    spdlog::error("final publish: {} (published on the next start)", e.what());
  }
  update_metrics();
  spdlog::info("{} stopped: {}", options_.name, summary_counts::of(metrics_).since(summarized_));
}

// Polls the ingress (not while a batch is in hand: nothing new is read until
// it is settled) until the next thing due; false on a signal.
bool loop::wait_for_work() {
  const auto now = steady::now();
  const bool holding = holds_for_sync(now);
  auto until = std::min(ticker_.due(), manager_.keep_alive_due());
  if (committer_.busy())
    until = std::min(until, holding ? committer_.taken_at() + max_sync_hold : committer_.next_attempt());
  if (ingress_.queued_acks() > 0) until = std::min(until, now + ack_retry_interval);
  if (relay_.numbers_after_commit()) {
    // What the relay's connection already holds (read while it ran statements) does not make
    // its socket readable: taken first.
    relay_woken_ = relay_woken_ || relay_.woken();
    until = std::min(until, relay_woken_ ? now : next_outbox_poll_);
    if (held_back_retry_.count() > 0) until = std::min(until, next_held_back_retry_);
  }
  // Rounded up: poll's unit is the millisecond, and a wait rounded down to 0 would spin passes
  // until the time came.
  const auto wait = std::max(0ms, std::chrono::ceil<std::chrono::milliseconds>(until - steady::now()));
  std::array<::zmq::pollitem_t, 3> items{};
  std::size_t polled = 0;
  const bool room = committer_.can_read() && ingress_.pending_count() < ingress_.batch_max() && !holding;
  items[polled++] = {ingress_.socket().handle(), 0, room ? short(ZMQ_POLLIN) : short(0), 0};
  const std::size_t relay_item = relay_.wakeup_fd() >= 0 ? polled++ : items.size();
  if (relay_item < items.size()) items[relay_item] = {nullptr, relay_.wakeup_fd(), ZMQ_POLLIN, 0};
  const std::size_t sync_item = syncer_ != nullptr ? polled++ : items.size();
  if (sync_item < items.size()) items[sync_item] = {nullptr, syncer_->wakeup_fd(), ZMQ_POLLIN, 0};
  try {
    ::zmq::poll(items.data(), polled, wait);
  } catch (const ::zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    return false;  // a signal: the loop condition decides
  }
  ingress_ready_ = (items[0].revents & ZMQ_POLLIN) != 0;
  if (relay_item < items.size() && (items[relay_item].revents & ZMQ_POLLIN) != 0)
    relay_woken_ = relay_.woken() || relay_woken_;
  // Consumed before the pass reads done(): a sync that returns after that wakes the next poll.
  if (sync_item < items.size() && (items[sync_item].revents & ZMQ_POLLIN) != 0) syncer_->consume();
  return true;
}

// A new batch waits for the sync in flight (it grows meanwhile): one commit per sync under a
// moderate load. Unless it holds hold_below events (a full load: the loop would only idle), or
// its oldest input has waited max_sync_hold: then the batch is committed while the sync runs, and
// the sync after it makes it durable. A slow sync (a few milliseconds, once in a while under
// load, more on a slow disk) no longer holds every event that arrives meanwhile, to be committed
// in one big batch after it: at 90 % of the peak that doubled the ack p99 (docs/performance.md,
// issue 15's seventeenth round).
bool loop::holds_for_sync(steady::time_point now) const {
  return syncer_ != nullptr && committer_.waiting() > 0 && committer_.untried() &&
         holds(ingress_.pending_count(), ingress_.batch_max(), now - committer_.taken_at());
}

// A failed sync of the log: nothing committed after the last good one may be acked or published,
// and what the disk holds is unknown; sagad stops (the clients resend what was not acked).
void loop::check_log_sync() {
  if (syncer_ == nullptr) return;
  if (const auto failed = syncer_->failure())
    throw std::runtime_error("the write-ahead log could not be synced, nothing after it is acked: " +
                             *failed);
}

// How many of committed_ (from the front) are durable.
std::size_t loop::durable_committed() const {
  if (syncer_ == nullptr) return committed_.size();
  const auto done = syncer_->done();
  std::size_t n = 0;
  for (const auto& [ticket, end] : committed_tickets_) {
    if (ticket > done) break;
    n = end;
  }
  return n;
}

// The newest sequence of ours that is durable: before the first row whose sync has not returned.
std::int64_t loop::durable_through() const {
  const std::size_t n = durable_committed();
  return n < committed_.size() ? committed_[n].sequence - 1 : std::numeric_limits<std::int64_t>::max();
}

// The ingress pump: takes what waits (up to --batch-max) into the committer.
void loop::pump_ingress() {
  if (ingress_.read_batch() > 0) committer_.take();
}

// The publisher: what the last commits wrote goes out now, from memory (the
// relay reads the outbox instead when rows before them are unpublished). A
// store error (marking rows published) loses nothing: the rows stay
// unpublished and the tick's drain publishes them again.
void loop::publish_committed() {
  const std::size_t n = durable_committed();
  if (n == 0) return;
  try {
    relay_.publish(std::span<const saga::outbox_record>(committed_.data(), n));
  } catch (const saga::store_error& e) {
    spdlog::error("publishing: {} (retried on the next tick)", e.what());
  }
  committed_.erase(committed_.begin(), committed_.begin() + static_cast<std::ptrdiff_t>(n));
  std::erase_if(committed_tickets_, [n](const auto& t) { return t.second <= n; });
  for (auto& t : committed_tickets_) t.second -= n;
}

// The outbox poll, on a store that numbers after the commit (PostgreSQL). The relay numbers what
// another sagad committed as soon as that sagad's notification wakes it (relay_woken_, read in
// wait_for_work), its own commits at once (publish_committed); and every --pg-relay-poll (at most
// a third of --pg-relay-lease, which each numbering renews) every sagad drains: the relay numbers
// what a lost notification left, and each publishes what is numbered, so that a subscriber on any
// of them gets the whole log. (The ticker's drain is for stores that number at insert.)
//
// A wake-up whose drain published nothing found the notifier's rows held back by a transaction
// still running (above the xid horizon: postgres.md), which may end without notifying anyone:
// the relay tries again after 5 ms, then at doubling intervals up to 200 ms, until a drain
// publishes rows or the regular poll comes.
void loop::poll_outbox(steady::time_point now) {
  if (!relay_.numbers_after_commit()) return;
  const bool regular = now >= next_outbox_poll_;
  const bool retry = held_back_retry_.count() > 0 && now >= next_held_back_retry_;
  if (!regular && !retry && !relay_woken_) return;
  const bool woken = relay_woken_ || retry;
  relay_woken_ = false;
  const auto every = std::chrono::milliseconds(std::clamp<std::int64_t>(
      options_.pg_relay_poll_ms, 1, std::max<std::int64_t>(1, options_.pg_relay_lease_ms / 3)));
  next_outbox_poll_ = now + every;
  std::size_t published = 0;
  try {
    published = relay_.drain();
  } catch (const saga::store_error& e) {
    spdlog::error("outbox poll: {} (retried)", e.what());
  }
  if (woken && published == 0) {
    held_back_retry_ =
        std::clamp(held_back_retry_ * 2, std::chrono::milliseconds(5), std::chrono::milliseconds(200));
    next_held_back_retry_ = now + held_back_retry_;
  } else {
    held_back_retry_ = std::chrono::milliseconds(0);
  }
}

// What the loop knows that the metrics show: its last pass (/healthz), the publication sequence
// and the ingress's own counters.
void loop::update_metrics() {
  metrics_.loop_pass_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count(),
                              std::memory_order_relaxed);
  const auto published = relay_.last_published();
  if (published >= 0) {
    metrics_.last_published_sequence.store(published, std::memory_order_relaxed);
    if (published >= metrics_.last_committed_sequence.load(std::memory_order_relaxed)) {
      metrics_.last_committed_sequence.store(published, std::memory_order_relaxed);  // committed elsewhere
      metrics_.unpublished_since_ms.store(0, std::memory_order_relaxed);
    }
  }
  metrics_.dropped_requests.raise_to(ingress_.dropped_requests());
  metrics_.refused_by_grants.raise_to(ingress_.refused_by_grants());
  if (const auto now = steady::now(); now >= next_peer_count_) {
    metrics_.set_peers(ingress_.active_peers(60s));
    next_peer_count_ = now + 1s;
  }
}

void loop::summarize(steady::time_point now) {
  if (now < next_summary_) return;
  update_metrics();
  auto counts = summary_counts::of(metrics_);
  const auto summary = counts.since(summarized_);
  summarized_ = std::move(counts);
  spdlog::info("last minute: {}", summary);
  manager_.status("last minute: " + summary);
  next_summary_ += 60s;
  if (next_summary_ <= now) next_summary_ = now + 60s;
}

}  // namespace saga::server
