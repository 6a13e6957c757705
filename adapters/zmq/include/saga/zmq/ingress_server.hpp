#pragma once
// saga::zmq::ingress_server — the ingress ROUTER socket of wire protocol v1
// (DESIGN.md, "Wire protocol v1 (ZeroMQ)"; docs/protocol.md).
//
// A request is, after the routing id, `[optional empty delimiter] [event JSON]`.
// read_batch() takes every request waiting, up to batch_max, without blocking,
// and decodes each (on the caller's thread) into a saga::inbound: the event,
// or an invalid_input with the reason (malformed JSON, over a limit, wrong
// frame count). The caller hands pending() to the engine in one transaction
// and, only after it committed, calls ack() with one ack per input: each goes
// back with the envelope it came with, in request order, so acks to one
// connection come in request order.
//
// A ROUTER drops a reply when the peer's pipe is at its high-water mark; the
// send high-water mark is therefore unlimited (0): the memory a peer can hold
// is bounded by the window of unacked events it keeps in flight (docs/protocol.md).
// ZMQ_MAXMSGSIZE (4 MiB by default) drops a peer that sends a bigger message;
// the 64 KiB event limit is the codec's, answered with a rejected ack.
//
// Thread-safety: none; one thread (the socket's) uses it.
// Errors: the constructor throws std::runtime_error naming the endpoint when
// it cannot bind. read_batch() and ack() never throw on bad input; they throw
// zmq::error_t only when the socket itself fails.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "saga/engine.hpp"

namespace saga::zmq {

struct ingress_options {
  std::size_t batch_max = 1024;                      // requests per read_batch()
  std::int64_t max_message_bytes = 4 * 1024 * 1024;  // ZMQ_MAXMSGSIZE
  saga::limits limits;                               // the codec's limits
  int linger_ms = 1000;                              // ZMQ_LINGER: acks still queued at close
};

class ingress_server {
 public:
  ingress_server(::zmq::context_t& ctx, const std::string& endpoint, ingress_options options = {});
  ingress_server(const ingress_server&) = delete;
  ingress_server& operator=(const ingress_server&) = delete;

  // Reads and decodes every waiting request, up to batch_max, into the batch
  // in hand (which must be empty: ack() the previous one first). Returns how
  // many were read; 0 when none waited.
  std::size_t read_batch();

  // The decoded inputs of the batch in hand, in arrival order.
  std::span<const saga::inbound> pending() const { return inputs_; }

  // Sends acks[i] to the sender of pending()[i] and clears the batch.
  // Requires acks.size() == pending().size().
  void ack(std::span<const saga::ack> acks);

  const std::string& endpoint() const { return endpoint_; }
  ::zmq::socket_t& socket() { return socket_; }  // for zmq::poll

 private:
  struct envelope {
    std::vector<std::string> routing;  // routing id frame(s) and the delimiter, if any
  };
  ::zmq::socket_t socket_;
  std::string endpoint_;
  ingress_options options_;
  std::vector<saga::inbound> inputs_;
  std::vector<envelope> envelopes_;
};

}  // namespace saga::zmq
