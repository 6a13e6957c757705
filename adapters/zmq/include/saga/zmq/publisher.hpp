#pragma once
// saga::zmq::publisher — the events PUB socket of wire protocol v1 (DESIGN.md,
// "Wire protocol v1 (ZeroMQ)"), as the saga::publisher port the outbox relay
// hands committed rows to.
//
// Frames: publish() sends `[type] [sequence] [event JSON]` with the sequence in
// decimal ASCII; heartbeat() sends `["saga.heartbeat", last published sequence,
// "{}"]` (the host calls it every second, loaded or idle, with "0" meaning none).
//
// Slow subscribers: a PUB socket never blocks; once a subscriber's queue holds
// `send_hwm` messages, further messages to *that* subscriber are dropped (the
// others are unaffected). A subscriber notices the gap from the sequence (or the
// heartbeat's) and recovers the missing range through the replay socket; so
// publish() succeeding means "handed to the transport", not "delivered".
// The default high-water mark of 10,000 messages is ten times libzmq's default:
// it rides out bursts of a relay drain (chunks of 1,000) while bounding memory
// per subscriber (events are at most 64 KiB, typically well under 1 KiB).
//
// Thread-safety: none. A ZeroMQ socket belongs to one thread, so publish() and
// heartbeat() must be called from the same thread (the relay's).
//
// Errors: the constructor throws std::runtime_error naming the endpoint when
// the socket cannot be bound (port taken, bad address); publish() and
// heartbeat() throw zmq::error_t (a std::exception) when libzmq refuses the
// message, which makes the relay leave the row unpublished.

#include <cstdint>
#include <string>

#include <zmq.hpp>

#include "saga/publisher.hpp"

namespace saga::zmq {

struct publisher_options {
  int send_hwm = 10'000;  // ZMQ_SNDHWM: messages queued per subscriber before dropping
  int linger_ms = 0;      // ZMQ_LINGER: don't hold shutdown for slow subscribers
  // ZMQ_AFFINITY: the context's I/O threads (bit i: thread i) that carry this socket's
  // connections; 0: any. sagad keeps replay's bulk traffic off the thread that carries acks.
  std::uint64_t io_affinity = 0;
  // CURVE (docs/security.md): the server's secret key (40 Z85 characters); empty: plaintext.
  // Handshakes are then authorised by the context's zap_handler under this socket's ZAP domain.
  std::string curve_secret_key;
};

inline constexpr const char* heartbeat_type = "saga.heartbeat";

class publisher final : public saga::publisher {
 public:
  // Binds a PUB socket at `endpoint` (e.g. "tcp://127.0.0.1:5571"; a wildcard
  // port "tcp://127.0.0.1:*" is allowed, see endpoint()).
  publisher(::zmq::context_t& ctx, const std::string& endpoint, publisher_options options = {});

  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;

  void publish(const outbox_record& r) override;
  void heartbeat(std::int64_t last_sequence);

  // The endpoint actually bound (ZMQ_LAST_ENDPOINT): the port chosen for a wildcard.
  const std::string& endpoint() const { return endpoint_; }

  ::zmq::socket_t& socket() { return socket_; }

 private:
  void send3(const std::string& a, const std::string& b, const std::string& c);

  ::zmq::socket_t socket_;
  std::string endpoint_;
};

}  // namespace saga::zmq
