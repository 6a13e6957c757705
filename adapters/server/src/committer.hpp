#pragma once
// committer — the loop's part that commits the batch in hand and acks it.
//
// An ack goes out only after the transaction that recorded its event
// committed, and the acks of a batch go out together, in request order, once
// every input of the batch is settled. A storage failure (saga::store_error
// from engine::handle_batch: nothing of that attempt is durable) never blocks
// the loop: the batch stays in hand with the time of its next attempt, and
// the loop keeps sending heartbeats, firing timers and serving replay (it
// reads no new ingress meanwhile). The steps:
//   1. the whole batch is retried `retries` times, the pause doubling from
//      `backoff` up to `max_backoff`;
//   2. then it is bisected: each half is committed on its own (what commits
//      is kept, unacked, until the batch is settled), a half that fails is
//      split again, down to single inputs;
//   3. a single input that still fails is set aside: engine::set_aside keeps
//      it as a dead letter with "storage: <error>" and its ack is rejected;
//   4. if even that fails (a full disk), nothing is acked: the input is tried
//      again after the backoff, from step 3's first attempt.
//
// With a log syncer (sagad's store commits without syncing its log: log_syncer.hpp) a settled
// batch's acks are withheld in the ingress with a ticket taken after its last commit, and the
// next batch can be read while fewer than options.max_waiting_acks wait; deliver_durable()
// sends those whose ticket the syncer has made durable, in order. (When to commit the next
// batch is the loop's choice: loop.hpp.)
//
// Thread-safety: the loop thread only.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "fault_points.hpp"
#include "log_syncer.hpp"
#include "metrics.hpp"
#include "saga/engine.hpp"
#include "saga/zmq/ingress_server.hpp"

namespace saga::server {

class committer {
 public:
  using steady = std::chrono::steady_clock;
  struct options {
    int retries = 3;
    std::chrono::milliseconds backoff{50};
    std::chrono::milliseconds max_backoff{5000};
    // With a syncer: another batch is taken while fewer acks than this wait for the log's sync.
    std::size_t max_waiting_acks = 2048;
  };

  // `syncer`: null when a commit is durable when it returns.
  committer(saga::engine& engine, saga::zmq::ingress_server& ingress, fault_points& fault,
            sagad_metrics& metrics, options o, log_syncer* syncer = nullptr);

  // A batch is in hand (read from the ingress, not yet committed and settled).
  bool busy() const { return !todo_.empty(); }
  // The ingress may be read: no batch in hand, or one not tried yet (it grows; take() again), and
  // fewer than options.max_waiting_acks acks waiting for the log's sync (so at most that and one
  // batch are withheld).
  bool can_read() const { return (todo_.empty() || !tried_) && waiting_acks_ < options_.max_waiting_acks; }
  // The batch in hand has not been tried yet.
  bool untried() const { return !todo_.empty() && !tried_; }
  // Settled batches whose acks wait for the log's sync.
  std::size_t waiting() const { return waiting_.size(); }
  // Sends the acks of the waiting batches the syncer has made durable, oldest first.
  void deliver_durable();
  // Makes every commit durable (blocking on the syncer) and sends every waiting ack.
  void deliver_all();
  // When the batch in hand is to be tried next.
  steady::time_point next_attempt() const { return next_attempt_; }
  // When the batch in hand was first read off the ingress (its oldest input).
  steady::time_point taken_at() const { return taken_at_; }

  // Takes the batch the ingress has just read (again, after it grew, while untried()).
  void take();
  // Works on the batch in hand (when its attempt is due, or `now` regardless
  // of the backoff when `force`); returns true when the batch was settled
  // and acked. Throws only what is not a storage failure.
  bool step(steady::time_point now, bool force = false);

 private:
  struct range {
    std::size_t first = 0, count = 0;
  };
  void commit(const range& r);
  void wait(steady::time_point now);
  void settle(std::vector<saga::ack>& acks);
  void delivered(std::size_t count, steady::time_point taken_at);

  saga::engine& engine_;
  saga::zmq::ingress_server& ingress_;
  fault_points& fault_;
  sagad_metrics& metrics_;
  options options_;
  log_syncer* syncer_;
  struct waiting_batch {
    std::uint64_t ticket = 0;  // durable when the syncer's done() reaches it
    std::size_t acks = 0;
    steady::time_point taken_at{};
  };
  std::deque<waiting_batch> waiting_;
  std::size_t waiting_acks_ = 0;   // in waiting_
  steady::time_point taken_at_{};  // when the batch in hand was read off the ingress
  bool tried_ = false;             // step() has worked on the batch in hand

  std::deque<range> todo_;                      // not yet committed, in order
  std::vector<std::optional<saga::ack>> acks_;  // per input of the batch
  std::vector<saga::ack> batch_acks_;           // what the engine answered for the range in hand
  std::vector<saga::ack> settled_;              // the settled batch's acks, as handed to the ingress
  int failures_ = 0;                            // of the whole batch, before bisecting
  bool bisecting_ = false;
  std::chrono::milliseconds backoff_{0};
  steady::time_point next_attempt_{};
};

}  // namespace saga::server
