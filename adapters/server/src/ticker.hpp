#pragma once
// ticker — the loop's once-a-second part: the heartbeat first (loaded, idle
// or while a batch waits for its next storage retry), then due timers, parked
// events of sagas that never started, the slow poll of the outbox for rows
// other processes committed (a store that numbers after the commit is polled
// by the loop instead: loop::poll_outbox), and housekeeping. Each piece is bounded so that
// a big backlog never stalls acks for long:
//   * timers fire in batches of `timer_batch` (one transaction each) while a
//     batch comes back full, for at most `timer_budget` per pass; what is
//     left fires on the next passes of the loop, not a second later;
//   * pruning (outbox and inbox past retention, dead letters, finished sagas)
//     runs in rounds (at start, then every `prune_interval`), one bounded
//     chunk after another for at most `housekeeping_budget` per tick;
//   * timers due for definitions this sagad does not run are logged at start
//     and when that list changes (checked once a minute).
// A store failure in any piece is logged and retried on the next tick.
//
// Thread-safety: the loop thread only (it uses the events socket).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "metrics.hpp"
#include "saga/clock.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/zmq/publisher.hpp"

namespace saga::server {

class ticker {
 public:
  using steady = std::chrono::steady_clock;
  struct options {
    std::size_t timer_batch = 1024;
    std::chrono::milliseconds timer_budget{200};
    std::chrono::milliseconds housekeeping_budget{20};
    std::chrono::milliseconds prune_interval{3'600'000};
    std::size_t prune_chunk = 1000;
  };

  ticker(saga::engine& engine, saga::outbox_relay& relay, saga::zmq::publisher& pub, const saga::clock& clock,
         sagad_metrics& metrics, options o);

  // When run() has work next: the next second, or now while timers are behind.
  steady::time_point due() const;
  // Does what is due at `now`.
  void run(steady::time_point now);

 private:
  void tick(steady::time_point now);
  void fire_timers();
  void report_unregistered_timers();
  void housekeeping(steady::time_point now);

  saga::engine& engine_;
  saga::outbox_relay& relay_;
  sagad_metrics& metrics_;
  saga::zmq::publisher& pub_;
  const saga::clock& clock_;
  options options_;

  steady::time_point next_tick_;
  bool timers_behind_ = false;
  steady::time_point next_unregistered_check_;
  std::vector<std::string> unregistered_reported_;
  steady::time_point next_prune_round_;
  bool pruning_ = false;
  bool outbox_pruned_ = false, engine_pruned_ = false;  // of the round in progress
  std::int64_t pruned_rows_ = 0, pruned_dead_letters_ = 0, pruned_sagas_ = 0;
};

}  // namespace saga::server
