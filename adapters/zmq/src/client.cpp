#include "saga/zmq/client.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <queue>
#include <utility>

#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"

namespace saga::zmq {

namespace {

using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

// One event of a send_all() call.
struct slot {
  std::string bytes;  // encoded once; every try sends the same bytes
  int tries = 0;      // sends so far
  bool done = false;
  bool waiting_ack = false;  // false while pausing before a resend
  std::uint64_t timer = 0;   // generation of the timer that counts for this slot
};

// A deadline (ack timeout or end of a backoff pause) for one slot; stale
// entries (older generation) are skipped when they come up.
struct timer_entry {
  clock_type::time_point when;
  std::size_t index;
  std::uint64_t generation;
  bool operator>(const timer_entry& o) const { return when > o.when; }
};

std::chrono::milliseconds pause_after(const client_options& o, int tries) {
  auto pause = o.backoff;
  for (int i = 1; i < tries && pause < o.max_backoff; ++i) pause *= 2;
  return std::min(pause, o.max_backoff);
}

}  // namespace

client::client(::zmq::context_t& ctx, std::string endpoint, client_options options)
    : ctx_(ctx), endpoint_(std::move(endpoint)), options_(options) {
  if (options_.window == 0) options_.window = 1;
  if (options_.max_tries < 1) options_.max_tries = 1;
  connect();
}

void client::connect() {
  auto s = std::make_unique<::zmq::socket_t>(ctx_, ::zmq::socket_type::dealer);
  s->set(::zmq::sockopt::linger, 0);
  // No high-water marks: the window bounds what is queued either way, and a
  // full pipe would make a dontwait send fail (the event then waits a whole
  // timeout and arrives after later events of its saga, which park).
  s->set(::zmq::sockopt::sndhwm, 0);
  s->set(::zmq::sockopt::rcvhwm, 0);
  apply(*s, options_.curve);
  s->connect(endpoint_);
  socket_ = std::move(s);
}

saga::ack client::send(const saga::event& e) {
  return send_all(std::span<const saga::event>(&e, 1)).front();
}

std::vector<saga::ack> client::send_all(std::span<const saga::event> events) {
  std::vector<saga::ack> acks(events.size());
  std::vector<slot> slots(events.size());
  // (source, id) -> indexes sent and not yet acked, oldest first.
  std::map<std::pair<std::string, std::string>, std::deque<std::size_t>> waiting;
  std::priority_queue<timer_entry, std::vector<timer_entry>, std::greater<>> timers;
  std::uint64_t generation = 0;

  std::size_t next = 0;       // next event to send for the first time
  std::size_t in_flight = 0;  // sent, not yet acked (including those pausing)
  std::size_t finished = 0;

  auto arm = [&](std::size_t i, clock_type::time_point when) {
    slots[i].timer = ++generation;
    timers.push(timer_entry{when, i, slots[i].timer});
  };
  auto transmit = [&](std::size_t i) {
    const std::string& b = slots[i].bytes;
    // dontwait: when the pipe is full (sagad unreachable) the try still
    // counts; its timeout then leads to a resend or to client_error.
    if (socket_->send(::zmq::const_buffer(), ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait))
      socket_->send(::zmq::buffer(b), ::zmq::send_flags::dontwait);
    ++slots[i].tries;
    slots[i].waiting_ack = true;
    arm(i, clock_type::now() + options_.timeout);
  };
  auto complete = [&](std::size_t i, saga::ack a) {
    acks[i] = std::move(a);
    slots[i].done = true;
    slots[i].timer = ++generation;  // cancels its timer
    --in_flight;
    ++finished;
  };

  auto fail = [&](std::size_t i) {
    const std::string msg = "no ack for event " + events[i].id + " after " + std::to_string(slots[i].tries) +
                            (slots[i].tries == 1 ? " try" : " tries") + " to " + endpoint_;
    // Start the next call afresh: drop what is queued for an unreachable peer
    // and the late acks of this call.
    connect();
    throw client_error(msg);
  };

  while (finished < events.size()) {
    // Fill the window.
    while (in_flight < options_.window && next < events.size()) {
      const std::size_t i = next++;
      const saga::event& e = events[i];
      if (e.id.empty() || e.source.empty()) {
        // Its ack could not be matched to it: answer here as sagad would.
        saga::ack a;
        a.id = e.id;
        a.source = e.source;
        a.status = saga::ack_status::rejected;
        a.reason = e.id.empty() ? "attribute 'id': required" : "attribute 'source': required";
        ++in_flight;
        complete(i, std::move(a));
        continue;
      }
      slots[i].bytes = saga::encode_event(e);
      waiting[{e.source, e.id}].push_back(i);
      ++in_flight;
      transmit(i);
    }
    if (finished == events.size()) break;

    // Timers that are due.
    auto now = clock_type::now();
    while (!timers.empty() && timers.top().when <= now) {
      const timer_entry t = timers.top();
      timers.pop();
      slot& s = slots[t.index];
      if (s.done || s.timer != t.generation) continue;
      if (s.waiting_ack) {  // the ack timed out
        if (s.tries >= options_.max_tries) fail(t.index);
        s.waiting_ack = false;
        arm(t.index, now + pause_after(options_, s.tries));
      } else {  // the pause is over
        transmit(t.index);
      }
    }

    // Wait for replies until the next timer.
    auto wait = std::chrono::milliseconds(0);
    if (!timers.empty()) {
      now = clock_type::now();
      if (timers.top().when > now)
        wait = std::chrono::ceil<std::chrono::milliseconds>(timers.top().when - now);
    }
    ::zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, wait);
    if ((item.revents & ZMQ_POLLIN) == 0) continue;

    std::vector<::zmq::message_t> frames;
    while (true) {
      frames.clear();
      if (!::zmq::recv_multipart(*socket_, std::back_inserter(frames), ::zmq::recv_flags::dontwait)) break;
      if (frames.empty()) continue;
      // sagad echoes the empty delimiter we sent; the ack is the last frame.
      json j;
      try {
        j = saga::parse_json(frames.back().to_string_view());
      } catch (const json::exception&) {
        continue;
      }
      if (!j.is_object()) continue;
      saga::ack a = saga::ack_from_json(j);
      if (a.id.empty()) continue;  // answers unparsable input: not ours
      auto it = waiting.find({a.source, a.id});
      if (it == waiting.end()) continue;  // a late ack to an earlier try
      const std::size_t i = it->second.front();
      it->second.pop_front();
      if (it->second.empty()) waiting.erase(it);
      complete(i, std::move(a));
    }
  }
  return acks;
}

}  // namespace saga::zmq
