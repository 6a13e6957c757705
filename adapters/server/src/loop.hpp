#pragma once
// loop — the server's loop thread: each pass waits for ingress (unless a
// batch is in hand) or for the next thing due, then runs the named parts in
// order: the ingress pump (pump_ingress), the committer (committer.hpp), the
// publisher (publish_committed), the ticker (ticker.hpp), the minute
// summary and the service manager's watchdog keep-alive (service_manager.hpp).
// Replay runs beside it on its own thread (replay_thread.hpp).
//
// With a log syncer (log_syncer.hpp: SQLite at synchronous FULL, --sync-log thread) the store
// commits without syncing; the loop also wakes when a sync returns, and then acks the batches
// and publishes the follow-on events that sync made durable — never before. Meanwhile it reads
// the next batch, and commits it when the sync it waits on has returned, when the batch is full
// (batch_max), holds hold_below events, or its oldest input has waited max_sync_hold: a group
// commit per sync, not a commit of whatever trickled in, under a moderate load; commits
// overlapping the sync under a full one, or while a sync is slow. A failed sync stops the loop
// (an exception out of run()) with nothing after it acked or published.
//
// Thread-safety: constructed and run on the loop thread only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "committer.hpp"
#include "fault_points.hpp"
#include "log_syncer.hpp"
#include "metrics.hpp"
#include "saga/clock.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/server/options.hpp"
#include "saga/zmq/ingress_server.hpp"
#include "saga/zmq/publisher.hpp"
#include "service_manager.hpp"
#include "ticker.hpp"

namespace saga::server {

class loop {
 public:
  // How long a batch waits for the sync in flight at most (from its oldest input's reading)
  // before it is committed anyway (docs/architecture.md, "The log synced beside the loop").
  static constexpr std::chrono::milliseconds max_sync_hold{1};
  // A batch of this many events (or --batch-max, if smaller) is committed at once, sync in flight
  // or not: it is big enough to spread a commit's fixed cost, and under a full load holding it
  // only idles the loop, the one thread that bounds the rate (docs/performance.md, issue 15's
  // twentieth round).
  static constexpr std::size_t hold_below = 64;
  // Whether a batch of `pending` events, its oldest read `waited` ago, waits for the sync in
  // flight: the rule above, apart from the loop's state (holds_for_sync).
  static bool holds(std::size_t pending, std::size_t batch_max, std::chrono::steady_clock::duration waited) {
    return pending < std::min(hold_below, batch_max) && waited < max_sync_hold;
  }

  loop(const options& o, saga::engine& engine, saga::zmq::ingress_server& ingress, saga::outbox_relay& relay,
       saga::zmq::publisher& pub, const saga::clock& clock, fault_points& fault, service_manager& manager,
       sagad_metrics& metrics, log_syncer* syncer = nullptr);

  // Runs until `stop`; then tells the service manager it is stopping, makes one
  // last attempt at the batch in hand (unacked if it fails: clients resend to the
  // next server) and publishes what is committed.
  void run(const std::atomic<bool>& stop);

 private:
  using steady = std::chrono::steady_clock;

  bool wait_for_work();
  void pump_ingress();
  void publish_committed();
  void poll_outbox(steady::time_point now);
  void summarize(steady::time_point now);
  void update_metrics();
  void check_log_sync();
  bool holds_for_sync(steady::time_point now) const;
  std::size_t durable_committed() const;
  std::int64_t durable_through() const;

  const options& options_;
  saga::zmq::ingress_server& ingress_;
  saga::outbox_relay& relay_;
  sagad_metrics& metrics_;
  committer committer_;
  ticker ticker_;
  service_manager& manager_;
  log_syncer* syncer_;                          // null: a commit is durable when it returns
  std::vector<saga::outbox_record> committed_;  // committed since the last publish_committed()
  // With a syncer: (ticket, end): committed_[0, end) is durable once the syncer's done() reaches
  // ticket (one entry per commit that wrote rows, in commit order).
  std::vector<std::pair<std::uint64_t, std::size_t>> committed_tickets_;
  bool ingress_ready_ = false;
  steady::time_point next_summary_;
  summary_counts summarized_;              // the counts at the last summary line
  steady::time_point next_peer_count_{};   // when update_metrics() counts the active peers again
  steady::time_point next_outbox_poll_{};  // stores numbering after commit: poll_outbox() next
  bool relay_woken_ = false;               // another sagad's commit announced: poll_outbox() now
  // A wake-up found its rows held back: poll_outbox() tries again at next_held_back_retry_ (0: no)
  std::chrono::milliseconds held_back_retry_{0};
  steady::time_point next_held_back_retry_{};
};

}  // namespace saga::server
