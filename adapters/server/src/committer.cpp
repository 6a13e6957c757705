#include "committer.hpp"

#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>

#include <spdlog/spdlog.h>

#include "saga/duration.hpp"
#include "saga/trace.hpp"

namespace saga::server {

namespace {

std::string describe(const saga::inbound& in) {
  if (const auto* e = std::get_if<saga::event>(&in)) {
    const auto trace = saga::trace_id_of(e->traceparent);
    return "event " + e->id + " from " + e->source +
           (trace.empty() ? "" : " (trace " + std::string(trace) + ")");
  }
  const auto& bad = std::get<saga::invalid_input>(in);
  return "invalid input" + (bad.id.empty() ? std::string() : " " + bad.id);
}

}  // namespace

committer::committer(saga::engine& engine, saga::zmq::ingress_server& ingress, fault_points& fault,
                     sagad_metrics& metrics, options o, log_syncer* syncer)
    : engine_(engine), ingress_(ingress), fault_(fault), metrics_(metrics), options_(o), syncer_(syncer) {}

void committer::take() {
  const std::size_t n = ingress_.pending_count();
  if (n == 0) return;
  if (todo_.empty()) taken_at_ = steady::now();  // else the batch grew: its oldest input's time
  todo_.assign(1, range{0, n});
  acks_.assign(n, std::nullopt);
  failures_ = 0;
  bisecting_ = false;
  tried_ = false;
  backoff_ = options_.backoff;
  next_attempt_ = steady::time_point{};
}

void committer::commit(const range& r) {
  const auto inputs = ingress_.pending().subspan(r.first, r.count);
  const auto started = steady::now();
  auto& acks = batch_acks_;
  engine_.handle_batch(inputs, acks);
  metrics_.commit_seconds.observe(std::chrono::duration<double>(steady::now() - started).count());
  if (acks.size() != r.count)
    throw std::logic_error("engine returned " + std::to_string(acks.size()) + " acks for " +
                           std::to_string(r.count) + " inputs");
  fault_.at("after_commit");
  for (std::size_t i = 0; i < r.count; ++i) acks_[r.first + i] = std::move(acks[i]);
}

void committer::wait(steady::time_point now) {
  next_attempt_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

bool committer::step(steady::time_point now, bool force) {
  if (todo_.empty() || (!force && now < next_attempt_)) return false;
  tried_ = true;
  const auto inputs = ingress_.pending();
  while (!todo_.empty()) {
    const range r = todo_.front();
    std::string error;
    try {
      commit(r);
      todo_.pop_front();
      continue;
    } catch (const saga::store_error& e) {
      error = e.what();
      metrics_.failed_commits.add();
      metrics_.last_commit_ok.store(false, std::memory_order_relaxed);
    }

    if (!bisecting_) {
      if (failures_ < options_.retries) {
        ++failures_;
        spdlog::error("batch of {} not committed, nothing acked (retry {} of {} in {}): {}", inputs.size(),
                      failures_, options_.retries, saga::format_duration(backoff_.count()), error);
        wait(now);
        return false;
      }
      bisecting_ = true;
      spdlog::warn(
          "batch of {} still not committed after {} retries: committing it in parts to find the "
          "input(s) the store keeps failing on ({})",
          inputs.size(), options_.retries, error);
    }
    if (r.count > 1) {
      todo_.pop_front();
      const std::size_t half = r.count / 2;
      todo_.push_front(range{r.first + half, r.count - half});
      todo_.push_front(range{r.first, half});
      continue;
    }

    const auto& input = inputs[r.first];
    try {
      acks_[r.first] = engine_.set_aside(input, "storage: " + error);
    } catch (const saga::store_error& e) {
      spdlog::error("{} fails alone ({}) and setting it aside failed too ({}): nothing acked, retrying in {}",
                    describe(input), error, e.what(), saga::format_duration(backoff_.count()));
      wait(now);
      return false;
    }
    metrics_.set_aside.add();
    spdlog::warn("{} set aside as a dead letter, rejected: storage: {}", describe(input), error);
    todo_.pop_front();
  }

  // Into the vector the last batch used (a 1,024-event batch's acks are about 230 KiB).
  auto& acks = settled_;
  acks.clear();
  acks.reserve(acks_.size());
  for (std::size_t i = 0; i < acks_.size(); ++i) {
    const auto* e = std::get_if<saga::event>(&inputs[i]);
    metrics_.count_event(e ? std::string_view(e->type) : std::string_view(), *acks_[i]);
    acks.push_back(std::move(*acks_[i]));
  }
  settle(acks);
  acks_.clear();
  return true;
}

// The settled batch's acks go out now, or wait in the ingress for the log's sync.
void committer::settle(std::vector<saga::ack>& acks) {
  metrics_.last_commit_ok.store(true, std::memory_order_relaxed);
  metrics_.batch_size.observe(static_cast<double>(acks.size()));
  if (syncer_ == nullptr) {
    ingress_.ack(acks);
    delivered(acks.size(), taken_at_);
    return;
  }
  ingress_.withhold(acks);
  waiting_.push_back({syncer_->request(), acks.size(), taken_at_});
  waiting_acks_ += acks.size();
  deliver_durable();
}

void committer::deliver_durable() {
  if (syncer_ == nullptr || waiting_.empty()) return;
  const auto done = syncer_->done();
  while (!waiting_.empty() && waiting_.front().ticket <= done) {
    ingress_.deliver(waiting_.front().acks);
    delivered(waiting_.front().acks, waiting_.front().taken_at);
    waiting_acks_ -= waiting_.front().acks;
    waiting_.pop_front();
  }
}

void committer::deliver_all() {
  if (syncer_ == nullptr || waiting_.empty()) return;
  syncer_->wait(waiting_.back().ticket);
  deliver_durable();
}

void committer::delivered(std::size_t count, steady::time_point taken_at) {
  metrics_.ack_latency_seconds.observe(std::chrono::duration<double>(steady::now() - taken_at).count());
  spdlog::debug("batch of {} committed and acked", count);
}

}  // namespace saga::server
