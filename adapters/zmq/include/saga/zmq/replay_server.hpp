#pragma once
// saga::zmq::replay_server — the replay ROUTER socket of wire protocol v1
// (DESIGN.md, "Wire protocol v1 (ZeroMQ)").
//
// Request (after the routing id and an optional empty delimiter, which the
// reply repeats): one frame `{"from":N,"limit":M}`.
//   * `from` (required): integer >= 0; the first sequence wanted, inclusive.
//   * `limit` (optional, default and cap 1,000): integer >= 0.
// Reply:
//   * `[{"from":N,"count":k,"last":L}] [seq] [event] [seq] [event] …` — up to
//     `limit` *published* events with sequence >= N, in order; L is the highest
//     published sequence (0 when none); k may be 0 (N beyond L).
//   * `[{"error":"pruned","first":F}]` when events from N on were deleted by
//     retention: F is the first sequence still retained (or L + 1 when the
//     whole outbox was pruned). Asking for a sequence that never existed (0 or
//     1 on a database that never pruned) is not an error.
//   * `[{"error":"bad_request","reason":…}]` for a request that is not one frame
//     of a JSON object with valid fields.
//   * `[{"error":"internal","reason":…}]` when the store failed (the server
//     keeps serving).
// A digest request `{"digest":{"from":A,"to":B}}` (B - A < digest_range_cap) is answered
// `[{"digest":{"from":A,"to":B,"count":c,"sha256":H},"last":L}]`, the range digest
// (saga/zmq/digest.hpp) of the published events A..B, or "pruned" as above when A is below the
// first retained sequence.
//
// The store is read outside of any transaction: give the server its own
// connection (a saga::sqlite::store on the same file). Rows are read first, the
// header's `last` and the retention check after, so `last` >= every sequence in
// the reply and a prune racing the read yields "pruned", never a silent hole.
//
// Thread-safety: none; poll_once() runs on one thread (the socket's).
// Errors: the constructor throws std::runtime_error naming the endpoint when the
// socket cannot be bound. poll_once() answers bad input rather than throwing; it
// throws only zmq::error_t for a failing socket (e.g. the context terminated).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <zmq.hpp>

#include "saga/store.hpp"

namespace saga::zmq {

inline constexpr std::size_t replay_limit_cap = 1000;

struct replay_options {
  std::int64_t max_request_bytes = 64 * 1024;  // ZMQ_MAXMSGSIZE: a bigger request drops the peer
  int linger_ms = 0;                           // ZMQ_LINGER
  // ZMQ_AFFINITY: the context's I/O threads (bit i: thread i) that carry this socket's
  // connections; 0: any. sagad keeps replay's bulk traffic off the thread that carries acks.
  std::uint64_t io_affinity = 0;
  // CURVE (docs/security.md): the server's secret key (40 Z85 characters); empty: plaintext.
  // Handshakes are then authorised by the context's zap_handler under this socket's ZAP domain.
  std::string curve_secret_key;
};

class replay_server {
 public:
  replay_server(::zmq::context_t& ctx, const std::string& endpoint, saga::store& store,
                replay_options options = {});

  replay_server(const replay_server&) = delete;
  replay_server& operator=(const replay_server&) = delete;

  // Waits up to `timeout` for a request and answers at most one; returns
  // whether one was handled (answered, including with an error).
  bool poll_once(std::chrono::milliseconds timeout);

  // The endpoint actually bound (ZMQ_LAST_ENDPOINT).
  const std::string& endpoint() const { return endpoint_; }
  // For zmq::poll in a caller's loop; do not read from it.
  ::zmq::socket_t& socket() { return socket_; }

 private:
  ::zmq::socket_t socket_;
  std::string endpoint_;
  saga::store& store_;
};

}  // namespace saga::zmq
