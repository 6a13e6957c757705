#include "operator_sender.hpp"

#include <chrono>
#include <utility>

#include "saga/zmq/client.hpp"

namespace saga::server {

operator_sender::operator_sender(::zmq::context_t& ctx, const std::string& ingress,
                                 saga::zmq::curve_client curve) {
  saga::zmq::client_options o;
  // An operator waits at a browser: three tries of 2 s, as sagactl's default of 1 s x 3 and a margin.
  o.timeout = std::chrono::milliseconds(2000);
  o.max_tries = 3;
  o.curve = std::move(curve);
  client_ = std::make_unique<saga::zmq::client>(ctx, connectable(ingress), o);
}

operator_sender::~operator_sender() = default;

saga::ack operator_sender::send(const saga::event& e) {
  std::lock_guard lock(mutex_);
  return client_->send(e);
}

std::string connectable(const std::string& bound) {
  for (const auto& [wildcard, loopback] :
       {std::pair{"tcp://0.0.0.0:", "tcp://127.0.0.1:"}, std::pair{"tcp://[::]:", "tcp://[::1]:"}}) {
    const std::string w = wildcard;
    if (bound.starts_with(w)) return loopback + bound.substr(w.size());
  }
  return bound;
}

}  // namespace saga::server
