#include "saga/zmq/ingress_server.hpp"

#include <iterator>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <zmq_addon.hpp>

#include "saga/codec.hpp"

namespace saga::zmq {

namespace {

// What an invalid_input keeps of the bytes received: the engine truncates
// dead-letter payloads anyway; this bounds the memory a batch holds.
constexpr std::size_t max_raw_bytes = 64 * 1024;

void append_bounded(std::string& out, std::string_view part) {
  if (out.size() >= max_raw_bytes) return;
  out.append(part.substr(0, max_raw_bytes - out.size()));
}

}  // namespace

ingress_server::ingress_server(::zmq::context_t& ctx, const std::string& endpoint, ingress_options options)
    : socket_(ctx, ::zmq::socket_type::router), options_(std::move(options)) {
  socket_.set(::zmq::sockopt::maxmsgsize, options_.max_message_bytes);
  socket_.set(::zmq::sockopt::sndhwm, 0);  // a dropped ack would look like a lost event
  socket_.set(::zmq::sockopt::linger, options_.linger_ms);
  try {
    socket_.bind(endpoint);
  } catch (const ::zmq::error_t& e) {
    throw std::runtime_error("saga::zmq::ingress_server: cannot bind the ingress ROUTER socket to " +
                             endpoint + ": " + e.what());
  }
  endpoint_ = socket_.get(::zmq::sockopt::last_endpoint);
}

std::size_t ingress_server::read_batch() {
  if (!inputs_.empty())
    throw std::logic_error("saga::zmq::ingress_server::read_batch: the previous batch has not been acked");

  std::size_t n = 0;
  std::vector<::zmq::message_t> frames;
  while (n < options_.batch_max) {
    frames.clear();
    if (!::zmq::recv_multipart(socket_, std::back_inserter(frames), ::zmq::recv_flags::dontwait)) break;
    if (frames.empty()) break;
    ++n;

    // Envelope: the routing id, then the empty delimiter a REQ peer (or a
    // DEALER imitating one) adds. A lone empty frame is a (malformed) body.
    std::size_t env = 1;
    if (frames.size() >= 3 && frames[1].size() == 0) env = 2;

    envelope e;
    e.routing.reserve(env);
    for (std::size_t i = 0; i < env && i < frames.size(); ++i) e.routing.push_back(frames[i].to_string());

    if (frames.size() != env + 1) {
      saga::invalid_input bad;
      for (std::size_t i = env; i < frames.size(); ++i) append_bounded(bad.raw, frames[i].to_string_view());
      const std::size_t after_id = frames.size() - 1;
      bad.reason = "frames: expected [optional empty delimiter] [event JSON], got " +
                   std::to_string(after_id) + (after_id == 1 ? " frame" : " frames");
      inputs_.emplace_back(std::move(bad));
    } else {
      const std::string_view body = frames.back().to_string_view();
      auto r = saga::decode_event(body, options_.limits);
      if (r.event) {
        inputs_.emplace_back(std::move(*r.event));
      } else {
        saga::invalid_input bad;
        append_bounded(bad.raw, body);
        bad.reason = std::move(r.error);
        bad.id = std::move(r.id);
        bad.source = std::move(r.source);
        inputs_.emplace_back(std::move(bad));
      }
    }
    envelopes_.push_back(std::move(e));
  }
  return n;
}

void ingress_server::ack(std::span<const saga::ack> acks) {
  if (acks.size() != inputs_.size())
    throw std::invalid_argument("saga::zmq::ingress_server::ack: " + std::to_string(acks.size()) +
                                " acks for " + std::to_string(inputs_.size()) + " inputs");
  for (std::size_t i = 0; i < acks.size(); ++i) {
    const std::string body = encode_ack(acks[i]);
    for (const auto& frame : envelopes_[i].routing)
      socket_.send(::zmq::buffer(frame), ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait);
    // The send high-water mark is unlimited, so dontwait never drops here; a
    // ROUTER silently drops a reply to a peer that has gone away.
    socket_.send(::zmq::buffer(body), ::zmq::send_flags::dontwait);
  }
  inputs_.clear();
  envelopes_.clear();
}

}  // namespace saga::zmq
