#include "saga/zmq/ingress_server.hpp"

#include "request_decoder.hpp"
#include "retry_eintr.hpp"

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/zmq/authorizer.hpp"
#include "saga/zmq/curve.hpp"

namespace saga::zmq {

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// What an invalid_input keeps of the bytes received: the engine truncates
// dead-letter payloads anyway; this bounds the memory a batch holds.
constexpr std::size_t max_raw_bytes = 64 * 1024;

// Requests read per read_batch(), dropped ones included: a peer flooding at
// its credit cannot keep one call busy for ever.
constexpr std::size_t reads_per_batch_factor = 4;

// With decode_helper: fewer requests than this are decoded by pending() alone (a wake-up of the
// helper costs the caller a system call, about what decoding two events does).
constexpr std::size_t helper_min_requests = 8;

void append_bounded(std::string& out, std::string_view part) {
  if (out.size() >= max_raw_bytes) return;
  out.append(part.substr(0, max_raw_bytes - out.size()));
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (const unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// The request after its envelope of `env` frames: the event, or why it is not one (wrong frame
// count, not a valid event, outside the grants of the key that sent it).
// Runs on the helper's thread too (decode_helper), maybe twice for one request.
detail::request_decoder::outcome decode_request(const ingress_options& options,
                                                const std::vector<::zmq::message_t>& frames,
                                                std::size_t env) {
  const char* user_id = zmq_msg_gets(frames.back().handle(), "User-Id");  // NULL when plaintext
  const std::string sender = user_id == nullptr ? std::string() : std::string(user_id);
  saga::invalid_input bad;
  bad.sender = sender;
  if (frames.size() != env + 1) {
    for (std::size_t i = env; i < frames.size(); ++i) append_bounded(bad.raw, frames[i].to_string_view());
    const std::size_t after_id = frames.size() - 1;
    bad.reason = "frames: expected [optional empty delimiter] [event JSON], got " + std::to_string(after_id) +
                 (after_id == 1 ? " frame" : " frames");
    return {std::move(bad)};
  }
  const std::string_view body = frames.back().to_string_view();
  auto r = saga::decode_event(body, options.limits);
  if (!r.event) {
    append_bounded(bad.raw, body);
    bad.reason = std::move(r.error);
    bad.id = std::move(r.id);
    bad.source = std::move(r.source);
    return {std::move(bad)};
  }
  if (options.authorize) {
    const char* key = zmq_msg_gets(frames.back().handle(), zap_key_property);
    if (auto refused = options.authorize(sender, key == nullptr ? std::string_view() : key, *r.event)) {
      append_bounded(bad.raw, body);
      bad.reason = std::move(*refused);
      bad.id = r.event->id;
      bad.source = r.event->source;
      bad.type = r.event->type;
      bad.subject = r.event->subject;
      return {std::move(bad), true};
    }
  }
  r.event->sender = sender;
  return {std::move(*r.event)};
}

}  // namespace

ingress_server::ingress_server(::zmq::context_t& ctx, const std::string& endpoint, ingress_options options)
    : socket_(ctx, ::zmq::socket_type::router), options_(std::move(options)) {
  if (options_.peer_credit == 0) options_.peer_credit = 1;
  socket_.set(::zmq::sockopt::maxmsgsize, options_.max_message_bytes);
  socket_.set(::zmq::sockopt::rcvhwm, options_.receive_hwm);
  socket_.set(::zmq::sockopt::sndhwm, options_.send_hwm);
  if (options_.send_buffer_bytes > 0) socket_.set(::zmq::sockopt::sndbuf, options_.send_buffer_bytes);
  // A full pipe refuses the ack (EAGAIN) instead of dropping it silently: it is queued.
  socket_.set(::zmq::sockopt::router_mandatory, 1);
  socket_.set(::zmq::sockopt::linger, options_.linger_ms);
  socket_.set(::zmq::sockopt::affinity, options_.io_affinity);
  apply(socket_, curve_server{options_.curve_secret_key, std::string(zap_domain_ingress)});
  try {
    socket_.bind(endpoint);
  } catch (const ::zmq::error_t& e) {
    throw std::runtime_error("saga::zmq::ingress_server: cannot bind the ingress ROUTER socket to " +
                             endpoint + ": " + e.what());
  }
  endpoint_ = socket_.get(::zmq::sockopt::last_endpoint);
  decoder_ = std::make_unique<detail::request_decoder>(
      options_.batch_max, options_.decode_helper,
      [this](const std::vector<::zmq::message_t>& frames, std::size_t env) {
        return decode_request(options_, frames, env);
      });
}

ingress_server::~ingress_server() = default;

void ingress_server::drop_request(const std::string& peer_id, peer& p) {
  ++dropped_;
  ++p.dropped_since_warning;
  const auto now = steady::now();
  if (!options_.warn || (p.last_warning != steady::time_point{} && now - p.last_warning < 60s)) return;
  const bool by_key = p.holder.rfind("key ", 0) == 0;
  const std::string who = "peer " + hex(peer_id) + (by_key ? " (key '" + p.holder.substr(4) + "')" : "");
  options_.warn("ingress: " + who + " has " + std::to_string(held_[p.holder]) +
                " requests unanswered (credit " + std::to_string(options_.peer_credit) +
                (by_key ? " per key" : "") + ") and does not read its acks; " +
                std::to_string(p.dropped_since_warning) +
                " of its requests dropped unanswered since the last notice (it resends them)");
  p.last_warning = now;
  p.dropped_since_warning = 0;
}

std::size_t ingress_server::read_batch() {
  std::size_t n = 0;
  std::size_t reads = 0;
  const auto now = steady::now();
  std::vector<::zmq::message_t> frames;
  while (pending_count() < options_.batch_max && reads < reads_per_batch_factor * options_.batch_max) {
    frames.clear();
    // Interrupted part-way, the call is made again and appends the frames not yet taken.
    if (!detail::retry_eintr([&] {
          return ::zmq::recv_multipart(socket_, std::back_inserter(frames), ::zmq::recv_flags::dontwait);
        }))
      break;
    if (frames.empty()) break;
    ++reads;

    std::string peer_id = frames[0].to_string();
    peer& p = peers_[peer_id];
    if (p.holder.empty()) {
      const char* user_id = zmq_msg_gets(frames.back().handle(), "User-Id");  // NULL when plaintext
      p.holder =
          user_id != nullptr && *user_id != '\0' ? "key " + std::string(user_id) : "connection " + peer_id;
    }
    seen_peer& seen = seen_[peer_id];
    if (seen.last == steady::time_point{} && p.holder.starts_with("key ")) seen.key = p.holder.substr(4);
    seen.last = now;
    std::size_t& held = held_[p.holder];
    if (held >= options_.peer_credit) {
      drop_request(peer_id, p);
      continue;
    }
    ++held;
    ++p.in_hand;
    ++n;

    // Envelope: the routing id, then the empty delimiter a REQ peer (or a
    // DEALER imitating one) adds. A lone empty frame is a (malformed) body.
    std::size_t env = 1;
    if (frames.size() >= 3 && frames[1].size() == 0) env = 2;

    envelope e;
    e.routing.reserve(env);
    e.routing.push_back(std::move(peer_id));
    for (std::size_t i = 1; i < env && i < frames.size(); ++i) e.routing.push_back(frames[i].to_string());

    decoder_->add(frames, env);  // swapped for an emptied buffer
    envelopes_.push_back(std::move(e));
  }
  if (!options_.decode_helper)
    take_decoded();
  else if (decoder_->waiting() >= helper_min_requests)
    decoder_->share();
  return n;
}

std::span<const saga::inbound> ingress_server::pending() {
  if (decoder_->waiting() > 0) take_decoded();
  return inputs_;
}

void ingress_server::take_decoded() {
  if (const std::size_t refused = decoder_->take(inputs_); refused > 0)
    refused_.fetch_add(refused, std::memory_order_relaxed);
}

std::size_t ingress_server::pending_count() const {
  return inputs_.size() + decoder_->waiting();
}

ingress_server::sent ingress_server::send(const envelope& to, const std::string& body) {
  try {
    // With ZMQ_ROUTER_MANDATORY only the first frame can be refused: a full
    // pipe (EAGAIN, an empty result) or a peer that went away (EHOSTUNREACH).
    if (!detail::retry_eintr([&] {
          return socket_.send(::zmq::buffer(to.routing[0]),
                              ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait);
        }))
      return sent::would_block;
  } catch (const ::zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return sent::gone;
    throw;
  }
  for (std::size_t i = 1; i < to.routing.size(); ++i)
    detail::retry_eintr([&] {
      return socket_.send(::zmq::buffer(to.routing[i]),
                          ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait);
    });
  detail::retry_eintr([&] { return socket_.send(::zmq::buffer(body), ::zmq::send_flags::dontwait); });
  return sent::ok;
}

void ingress_server::ack(std::span<const saga::ack> acks) {
  withhold(acks);
  deliver(withheld_.size());
}

void ingress_server::withhold(std::span<const saga::ack> acks) {
  if (acks.size() != pending_count())
    throw std::invalid_argument("saga::zmq::ingress_server: " + std::to_string(acks.size()) + " acks for " +
                                std::to_string(pending_count()) + " inputs");
  pending();  // the decoder has nothing of this batch left
  for (std::size_t i = 0; i < acks.size(); ++i)
    withheld_.push_back({std::move(envelopes_[i]), encode_ack(acks[i])});
  inputs_.clear();
  envelopes_.clear();
}

void ingress_server::deliver(std::size_t n) {
  n = std::min(n, withheld_.size());
  for (std::size_t i = 0; i < n; ++i) {
    queued_ack a = std::move(withheld_.front());
    withheld_.pop_front();
    peer& p = peers_[a.to.routing[0]];
    if (p.in_hand > 0) --p.in_hand;
    // Behind acks still queued for this peer: request order holds.
    if (!p.queue.empty()) flush(p);
    if (p.queue.empty()) {
      const sent s = send(a.to, a.body);
      if (s != sent::would_block) {  // sent, or the peer is gone (it resends on reconnecting)
        release(p, 1);
        continue;
      }
    }
    p.queue.push_back(std::move(a));
    ++queued_;
  }
  forget_idle_peers();
}

void ingress_server::flush(peer& p) {
  while (!p.queue.empty()) {
    const sent s = send(p.queue.front().to, p.queue.front().body);
    if (s == sent::would_block) return;
    if (s == sent::gone) {
      queued_ -= p.queue.size();
      release(p, p.queue.size());
      p.queue.clear();
      return;
    }
    p.queue.pop_front();
    --queued_;
    release(p, 1);
  }
}

std::size_t ingress_server::flush() {
  if (queued_ == 0) return 0;
  for (auto& [id, p] : peers_) flush(p);
  forget_idle_peers();
  return queued_;
}

void ingress_server::release(const peer& p, std::size_t n) {
  const auto it = held_.find(p.holder);
  if (it == held_.end()) return;
  it->second -= std::min(n, it->second);
  if (it->second == 0) held_.erase(it);
}

std::map<std::string, std::size_t> ingress_server::active_peers(std::chrono::steady_clock::duration window) {
  const auto since = steady::now() - window;
  std::map<std::string, std::size_t> by_key;
  for (auto it = seen_.begin(); it != seen_.end();) {
    if (it->second.last < since) {
      it = seen_.erase(it);
      continue;
    }
    ++by_key[it->second.key];
    ++it;
  }
  return by_key;
}

void ingress_server::forget_idle_peers() {
  const auto now = steady::now();
  for (auto it = peers_.begin(); it != peers_.end();) {
    const peer& p = it->second;
    const bool warned_lately = p.last_warning != steady::time_point{} && now - p.last_warning < 60s;
    if (p.in_hand == 0 && p.queue.empty() && !warned_lately)
      it = peers_.erase(it);
    else
      ++it;
  }
}

}  // namespace saga::zmq
