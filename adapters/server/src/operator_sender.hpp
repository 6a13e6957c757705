#pragma once
// operator_sender — how the console's actions (--console-operator-key) reach the engine: as a
// client of this sagad's own ingress (saga::zmq::client), with the operator's key when CURVE is
// on. An action therefore passes the same handshake, grants, validation and deduplication as
// `sagactl abort` from another machine, and is recorded with the key's name as its sender; the
// console never writes the database (docs/console.md "Actions").
//
// Errors: send() throws saga::zmq::client_error when no ack came after its tries.
// Thread-safety: send() may be called from any thread; calls are served one at a time.

#include <memory>
#include <mutex>
#include <string>

#include <zmq.hpp>

#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/zmq/curve.hpp"

namespace saga::zmq {
class client;
}

namespace saga::server {

class operator_sender {
 public:
  // `ingress` as bound (a wildcard address is reached on loopback: connectable()).
  operator_sender(::zmq::context_t& ctx, const std::string& ingress, saga::zmq::curve_client curve);
  ~operator_sender();
  operator_sender(const operator_sender&) = delete;
  operator_sender& operator=(const operator_sender&) = delete;

  saga::ack send(const saga::event& e);

 private:
  std::mutex mutex_;
  std::unique_ptr<saga::zmq::client> client_;
};

// A bound endpoint as a client on this host connects to it: tcp://0.0.0.0:P -> tcp://127.0.0.1:P,
// tcp://[::]:P -> tcp://[::1]:P; anything else as it is.
std::string connectable(const std::string& bound);

}  // namespace saga::server
