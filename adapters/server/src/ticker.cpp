#include "ticker.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "saga/engine.hpp"

namespace saga::server {

using namespace std::chrono_literals;

ticker::ticker(saga::engine& engine, saga::outbox_relay& relay, saga::zmq::publisher& pub,
               const saga::clock& clock, sagad_metrics& metrics, options o)
    : engine_(engine), relay_(relay), metrics_(metrics), pub_(pub), clock_(clock), options_(o) {
  const auto now = steady::now();
  next_tick_ = now;
  next_unregistered_check_ = now;
  next_prune_round_ = now;
}

ticker::steady::time_point ticker::due() const {
  return timers_behind_ ? steady::time_point{} : next_tick_;
}

void ticker::run(steady::time_point now) {
  if (now >= next_tick_) {
    tick(now);
  } else if (timers_behind_) {
    try {
      fire_timers();
    } catch (const saga::store_error& e) {
      timers_behind_ = false;
      spdlog::error("timers: {} (retrying next second)", e.what());
    }
  }
}

void ticker::tick(steady::time_point now) {
  next_tick_ += 1s;
  if (next_tick_ <= now) next_tick_ = now + 1s;
  pub_.heartbeat(std::max<std::int64_t>(0, relay_.last_published()));
  try {
    fire_timers();
    if (const auto n = engine_.expire_parked(clock_.now_ms()); n > 0)
      spdlog::warn("{} parked event(s) of sagas that never started moved to the dead letters", n);
    // The slow poll for rows other processes committed; a store that numbers after the commit is
    // polled by the loop instead (loop::poll_outbox), which a notification wakes sooner.
    if (!relay_.numbers_after_commit()) relay_.drain();
    if (now >= next_unregistered_check_) {
      next_unregistered_check_ = now + 60s;
      report_unregistered_timers();
    }
    housekeeping(now);
  } catch (const saga::store_error& e) {
    timers_behind_ = false;
    spdlog::error("tick: {} (retrying next second)", e.what());
  }
}

void ticker::fire_timers() {
  const auto deadline = steady::now() + options_.timer_budget;
  for (;;) {
    const auto fired = engine_.fire_due_timers(clock_.now_ms(), options_.timer_batch);
    metrics_.timers_fired.add(fired.size());
    for (const auto& f : fired)
      spdlog::debug("timer {} of {}/{} fired: {}", f.timer.name, f.timer.definition, f.timer.key,
                    saga::encode_ack(f.ack));
    timers_behind_ = fired.size() >= options_.timer_batch;
    if (!timers_behind_ || steady::now() >= deadline) return;
  }
}

void ticker::report_unregistered_timers() {
  const auto due = engine_.unregistered_due_timers(clock_.now_ms());
  std::vector<std::string> names;
  std::string list;
  for (const auto& [name, count] : due) {
    names.push_back(name);
    list += (list.empty() ? "" : ", ") + name + " (" + std::to_string(count) + ")";
  }
  if (names == unregistered_reported_) return;
  unregistered_reported_ = names;
  if (names.empty())
    spdlog::info("no timers are due any more for definitions this sagad does not run");
  else
    spdlog::warn(
        "timers are due for definitions this sagad does not run: {}; they stay armed until a sagad "
        "running those definitions fires them",
        list);
}

void ticker::housekeeping(steady::time_point now) {
  if (!pruning_) {
    if (now < next_prune_round_) return;
    pruning_ = true;
    outbox_pruned_ = engine_pruned_ = false;
    pruned_rows_ = pruned_dead_letters_ = pruned_sagas_ = 0;
    next_prune_round_ = now + options_.prune_interval;
  }
  const auto deadline = steady::now() + options_.housekeeping_budget;
  while (!(outbox_pruned_ && engine_pruned_) && steady::now() < deadline) {
    if (!outbox_pruned_) {
      const auto n = relay_.prune();
      pruned_rows_ += n;
      outbox_pruned_ = n == 0;
    }
    if (!engine_pruned_) {
      const auto p = engine_.prune(clock_.now_ms(), options_.prune_chunk);
      pruned_dead_letters_ += p.dead_letters;
      pruned_sagas_ += p.finished_sagas;
      engine_pruned_ = !p.any();
    }
  }
  if (!(outbox_pruned_ && engine_pruned_)) return;
  pruning_ = false;
  if (pruned_rows_ + pruned_dead_letters_ + pruned_sagas_ > 0)
    spdlog::info("pruned {} outbox and inbox rows, {} dead letters, {} finished sagas", pruned_rows_,
                 pruned_dead_letters_, pruned_sagas_);
}

}  // namespace saga::server
