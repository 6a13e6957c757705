#pragma once
// request_decoder — decodes the requests the ingress received, in arrival order, on a helper
// thread beside the caller's (ingress_options::decode_helper) or on the caller's alone.
//
// The caller (the ingress's thread) adds each request it receives, then share()s what it added:
// the helper decodes from the first on, alone while the caller does other work (sagad's loop: a
// batch held for the log's sync in flight), beside the caller when it asks at once. When the
// caller needs the decoded batch (take()), it decodes what the helper has not started, from the
// last backwards, and takes over a request the helper is in the middle of (decoding it again)
// rather than waiting for it: the helper can only save the caller work, never make it wait for
// a thread that lost its core. The caller waits only while the helper copies a request's frames
// (reference counts) or moves a result into place.
//
// Each slot's state is one atomic word: the batch's generation and what is happening to the
// slot. A helper that comes back to a slot of an older batch (it was preempted in between) fails
// its claim and moves on. The helper decodes from its own copies of the frames, so the caller
// may reuse a slot it took over while the helper still decodes it.
//
// Because of that takeover a request may be decoded twice, one result kept: whatever the decoding
// counts (refusals) is counted from what take() hands out, never inside the decode function.
//
// Thread-safety: every member function on the caller's thread only; the helper is internal.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "saga/engine.hpp"

namespace saga::zmq::detail {

class request_decoder {
 public:
  using frames = std::vector<::zmq::message_t>;  // a request as received, routing id first
  // A request decoded: the input, and whether it was refused (by the ingress's grants).
  struct outcome {
    saga::inbound input;
    bool refused = false;
  };
  // Decodes one request whose envelope is its first `envelope` frames. Called on either thread,
  // maybe twice for one request: it must be safe to call concurrently with itself, and have no
  // effect but its result.
  using decode_fn = std::function<outcome(const frames& request, std::size_t envelope)>;

  // Room for `capacity` requests between two take()s; `helper`: decode on a thread beside.
  request_decoder(std::size_t capacity, bool helper, decode_fn decode);
  ~request_decoder();
  request_decoder(const request_decoder&) = delete;
  request_decoder& operator=(const request_decoder&) = delete;

  // Adds a request after those not yet taken, swapping `request` with the slot's emptied frames
  // (their buffer comes back: no allocation per request). Requires waiting() < capacity.
  void add(frames& request, std::size_t envelope);
  // Lets the helper start on what was added (nothing without a helper).
  void share();
  // Appends the results of every request added since the last take() to `out`, in order;
  // returns how many of them were refused.
  std::size_t take(std::vector<saga::inbound>& out);
  // Requests added and not yet taken.
  std::size_t waiting() const { return count_ - taken_; }

 private:
  // What is happening to a slot of generation g: state word = g * state_count + one of these.
  enum : std::uint64_t { free_slot, copying, decoding, saving, decoded, callers, state_count };
  struct slot {
    frames request;
    std::size_t envelope = 0;
    std::optional<outcome> result;
    std::atomic<std::uint64_t> state{0};
  };

  std::uint64_t word(std::uint64_t what) const { return generation_ * state_count + what; }
  void help(const std::stop_token& stop);
  void help_with(std::uint64_t generation, std::size_t i, frames& copy);
  void decode_here(std::size_t i);

  decode_fn decode_;
  std::unique_ptr<slot[]> slots_;
  const std::size_t capacity_;
  std::uint64_t generation_ = 1;  // the current batch's; slots of older ones are left alone
  std::size_t count_ = 0;         // slots added in this generation
  std::size_t taken_ = 0;         // of which take() returned

  // What the helper may work on: slots [0, shared_end_) of shared_generation_.
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::uint64_t shared_generation_ = 0;
  std::size_t shared_end_ = 0;
  std::jthread helper_;  // last: started once everything it uses exists
};

}  // namespace saga::zmq::detail
