#include "request_decoder.hpp"

#include <pthread.h>

#include <stdexcept>
#include <utility>

namespace saga::zmq::detail {

namespace {

// Waits out a state the other thread leaves within a few instructions (a copy of reference
// counts, a move), unless it lost its core meanwhile: then give the core back.
template <class Predicate>
void wait_briefly(Predicate done) {
  for (int spins = 0; !done(); ++spins)
    if (spins >= 64) std::this_thread::yield();
}

}  // namespace

request_decoder::request_decoder(std::size_t capacity, bool helper, decode_fn decode)
    : decode_(std::move(decode)), slots_(std::make_unique<slot[]>(capacity)), capacity_(capacity) {
  if (!helper) return;
  helper_ = std::jthread([this](std::stop_token stop) { help(stop); });
  // As top -H, perf and /proc/<pid>/task/<tid>/comm show it.
  ::pthread_setname_np(helper_.native_handle(), "saga-decode");
}

request_decoder::~request_decoder() {
  if (!helper_.joinable()) return;
  helper_.request_stop();
  wake_.notify_all();
  helper_.join();
}

void request_decoder::add(frames& request, std::size_t envelope) {
  if (count_ > 0 && taken_ == count_) {  // everything of this generation was taken: a new one
    ++generation_;
    count_ = taken_ = 0;
  }
  if (count_ >= capacity_)
    throw std::logic_error("saga::zmq::request_decoder: more requests than its capacity");
  slot& s = slots_[count_++];
  s.request.swap(request);  // emptied by take(): `request` gets its buffer
  request.clear();
  s.envelope = envelope;
  s.result.reset();
  s.state.store(word(free_slot), std::memory_order_release);
}

void request_decoder::share() {
  if (!helper_.joinable() || waiting() == 0) return;
  {
    std::lock_guard lock(mutex_);
    shared_generation_ = generation_;
    shared_end_ = count_;
  }
  wake_.notify_one();
}

void request_decoder::decode_here(std::size_t i) {
  slots_[i].result.emplace(decode_(slots_[i].request, slots_[i].envelope));
}

std::size_t request_decoder::take(std::vector<saga::inbound>& out) {
  // From the last backwards (the helper goes forwards): what the helper has not started, or is
  // decoding, is decoded here; a slot the helper copies or saves is left to it for a moment.
  for (std::size_t i = count_; i-- > taken_;) {
    auto& state = slots_[i].state;
    for (;;) {
      auto s = state.load(std::memory_order_acquire);
      if (s == word(free_slot) || s == word(decoding)) {
        if (!state.compare_exchange_strong(s, word(callers), std::memory_order_acq_rel)) continue;
        decode_here(i);
      } else if (s == word(copying)) {
        wait_briefly([&] { return state.load(std::memory_order_acquire) != word(copying); });
        continue;
      }
      break;
    }
  }
  out.reserve(out.size() + waiting());
  std::size_t refused = 0;
  for (std::size_t i = taken_; i < count_; ++i) {
    auto& state = slots_[i].state;
    wait_briefly([&] { return state.load(std::memory_order_acquire) != word(saving); });
    out.push_back(std::move(slots_[i].result->input));
    refused += slots_[i].result->refused ? 1 : 0;
    slots_[i].result.reset();
    slots_[i].request.clear();
  }
  taken_ = count_;
  return refused;
}

void request_decoder::help(const std::stop_token& stop) {
  std::uint64_t generation = 0;
  std::size_t next = 0;
  frames copy;  // reused from one request to the next
  while (!stop.stop_requested()) {
    std::size_t end = 0;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, stop, [&] { return shared_generation_ != generation || shared_end_ > next; });
      if (stop.stop_requested()) return;
      if (shared_generation_ != generation) {
        generation = shared_generation_;
        next = 0;
      }
      end = shared_end_;
    }
    for (; next < end && !stop.stop_requested(); ++next) help_with(generation, next, copy);
  }
}

// One slot of `generation`, unless the caller (or a newer generation) has it already.
void request_decoder::help_with(std::uint64_t generation, std::size_t i, frames& copy) {
  auto& state = slots_[i].state;
  const auto at = [generation](std::uint64_t what) { return generation * state_count + what; };
  auto s = at(free_slot);
  if (!state.compare_exchange_strong(s, at(copying), std::memory_order_acq_rel)) return;
  // The frames' reference counts (short ones are copied): the caller may reuse the slot once it
  // has taken the request over, while this thread still decodes its copy.
  copy.resize(slots_[i].request.size());
  for (std::size_t f = 0; f < copy.size(); ++f) copy[f].copy(slots_[i].request[f]);
  const std::size_t envelope = slots_[i].envelope;
  state.store(at(decoding), std::memory_order_release);

  auto result = decode_(copy, envelope);
  copy.clear();  // the references go, the buffer stays
  s = at(decoding);
  if (!state.compare_exchange_strong(s, at(saving), std::memory_order_acq_rel)) return;  // taken over
  slots_[i].result.emplace(std::move(result));
  state.store(at(decoded), std::memory_order_release);
}

}  // namespace saga::zmq::detail
