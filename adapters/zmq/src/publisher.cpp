#include "saga/zmq/publisher.hpp"

#include "retry_eintr.hpp"

#include <stdexcept>

#include "saga/zmq/authorizer.hpp"
#include "saga/zmq/curve.hpp"

namespace saga::zmq {

namespace {

std::string last_endpoint(::zmq::socket_t& s) {
  return s.get(::zmq::sockopt::last_endpoint);
}

}  // namespace

publisher::publisher(::zmq::context_t& ctx, const std::string& endpoint, publisher_options options)
    : socket_(ctx, ::zmq::socket_type::pub) {
  socket_.set(::zmq::sockopt::sndhwm, options.send_hwm);
  socket_.set(::zmq::sockopt::linger, options.linger_ms);
  socket_.set(::zmq::sockopt::affinity, options.io_affinity);
  apply(socket_, curve_server{options.curve_secret_key, std::string(zap_domain_events)});
  try {
    socket_.bind(endpoint);
  } catch (const ::zmq::error_t& e) {
    throw std::runtime_error("saga::zmq::publisher: cannot bind the events PUB socket to " + endpoint + ": " +
                             e.what());
  }
  endpoint_ = last_endpoint(socket_);
}

void publisher::send3(const std::string& a, const std::string& b, const std::string& c) {
  // A PUB socket does not block: at the high-water mark libzmq drops the
  // message for that subscriber and send() still succeeds.
  for (const std::string* part : {&a, &b})
    detail::retry_eintr([&] { return socket_.send(::zmq::buffer(*part), ::zmq::send_flags::sndmore); });
  detail::retry_eintr([&] { return socket_.send(::zmq::buffer(c), ::zmq::send_flags::none); });
}

void publisher::publish(const outbox_record& r) {
  send3(r.type, std::to_string(r.sequence), r.payload);
}

void publisher::heartbeat(std::int64_t last_sequence) {
  send3(heartbeat_type, std::to_string(last_sequence), "{}");
}

}  // namespace saga::zmq
