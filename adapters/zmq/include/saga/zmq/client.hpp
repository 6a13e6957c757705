#pragma once
// saga::zmq::client — what a service uses to send events to sagad's ingress.
//
// send() sends one event and waits for its ack; without an ack within the
// timeout it resends the same event (same id: the engine deduplicates) after a
// backoff that doubles up to max_backoff, and throws client_error after
// max_tries. send_all() pipelines: it keeps up to `window` events in flight
// and returns their acks in the order of the input, resending what was not
// acked in time. Acks are matched to events by (source, id), so a late ack to
// an earlier try is harmless. A duplicate ack (status "duplicate") is a
// success: the event had been recorded before.
//
// Thread-safety: none; a client (and its DEALER socket) belongs to one thread.

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/zmq/curve.hpp"

namespace saga::zmq {

class client_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct client_options {
  std::chrono::milliseconds timeout{2000};      // wait for an ack before resending
  int max_tries = 5;                            // sends of one event before giving up
  std::chrono::milliseconds backoff{100};       // first pause before a resend
  std::chrono::milliseconds max_backoff{2000};  // the pause doubles up to this
  std::size_t window = 1000;                    // send_all(): events in flight
  curve_client curve;                           // sagad's public key and this client's pair; empty: plaintext
};

class client {
 public:
  client(::zmq::context_t& ctx, std::string endpoint, client_options options = {});
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  saga::ack send(const saga::event& e);
  std::vector<saga::ack> send_all(std::span<const saga::event> events);

  const std::string& endpoint() const { return endpoint_; }

 private:
  void connect();
  ::zmq::context_t& ctx_;
  std::string endpoint_;
  client_options options_;
  std::unique_ptr<::zmq::socket_t> socket_;
};

}  // namespace saga::zmq
