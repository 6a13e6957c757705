#pragma once
// saga::zmq::ingress_server — the ingress ROUTER socket of wire protocol v1
// (DESIGN.md, "Wire protocol v1 (ZeroMQ)"; docs/protocol.md).
//
// A request is, after the routing id, `[optional empty delimiter] [event JSON]`.
// read_batch() takes every request waiting, up to batch_max, without blocking,
// and each is decoded into a saga::inbound: the event, or an invalid_input with
// the reason (malformed JSON, over a limit, wrong frame count) — on the caller's
// thread, or (decode_helper) on a helper thread while the caller goes on, the
// caller decoding what the helper has not when it asks for pending(). The
// caller hands pending() to the engine in one transaction
// and, only after it committed, calls ack() with one ack per input: each goes
// back with the envelope it came with, in request order, so acks to one
// connection come in request order.
//
// Memory is bounded per connection, not by the peers' good manners
// (docs/protocol.md, "Flow control"):
//   * receive: ZMQ_RCVHWM (receive_hwm messages) × ZMQ_MAXMSGSIZE
//     (max_message_bytes; a bigger message drops the connection) per connection;
//   * send: ZMQ_SNDHWM (send_hwm acks) in libzmq's pipe per connection, with
//     ZMQ_ROUTER_MANDATORY so that an ack to a full pipe is refused (EAGAIN)
//     rather than silently dropped; such acks wait in a per-peer queue, in
//     order, and are sent again by flush() and every ack();
//   * credit: a peer's requests read and not yet handed to its pipe (in the
//     batch in hand, withheld or queued) are at most peer_credit. While a peer is at its
//     credit, its new requests are read and dropped without processing and
//     without an ack: the client resends them after its timeout, and nothing
//     is lost because nothing was acknowledged. With CURVE the credit is per
//     authenticated key (all connections of one key share it), so a service
//     cannot take more by opening more connections; plaintext: per connection.
//
// Thread-safety: none; one thread (the socket's) uses it. With decode_helper the
// helper thread is internal; options.authorize is then called on either thread, and may be
// called twice for one event (the caller took it over from the helper): it must have no effect
// but its answer.
// Errors: the constructor throws std::runtime_error naming the endpoint when
// it cannot bind. read_batch(), ack() and flush() never throw on bad input or
// on a peer that went away; they throw zmq::error_t only when the socket
// itself fails.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "saga/engine.hpp"

namespace saga::zmq {

namespace detail {
class request_decoder;
}

struct ingress_options {
  std::size_t batch_max = 1024;                      // requests per read_batch()
  std::int64_t max_message_bytes = 4 * 1024 * 1024;  // ZMQ_MAXMSGSIZE
  int receive_hwm = 128;                             // ZMQ_RCVHWM: requests queued per connection
  // ZMQ_AFFINITY: the context's I/O threads (bit i: thread i) that carry this socket's
  // connections; 0: any. sagad keeps replay's bulk traffic off the thread that carries acks.
  std::uint64_t io_affinity = 0;
  int send_hwm = 1000;               // ZMQ_SNDHWM: acks queued in libzmq per connection
  int send_buffer_bytes = 0;         // ZMQ_SNDBUF; 0: the OS default (tests shrink it)
  std::size_t peer_credit = 10'000;  // a peer's (CURVE: a key's) requests not yet delivered
  saga::limits limits;               // the codec's limits
  int linger_ms = 1000;              // ZMQ_LINGER: acks still queued at close
  // CURVE (docs/security.md): the server's secret key (40 Z85 characters); empty: plaintext.
  // Handshakes are then authorised by the context's zap_handler under this socket's ZAP domain.
  std::string curve_secret_key;
  // Told once per peer per minute that a peer is over its credit (optional).
  std::function<void(std::string_view)> warn;
  // With CURVE (docs/security.md): why the key named `user_id` (the connection's ZAP User-Id,
  // empty on a plaintext socket), whose public key is `public_key` (the zap_key_property of
  // the connection; empty without one), may not send `e`, or nullopt when it may. A refusal
  // turns the event into an invalid_input with that reason: rejected, never applied. Optional.
  std::function<std::optional<std::string>(std::string_view user_id, std::string_view public_key,
                                           const saga::event& e)>
      authorize;
  // Decode on a helper thread beside the caller's: read_batch() only receives, and the helper
  // decodes (and authorizes) what it received while the caller does other work; pending()
  // decodes on the caller's thread what the helper has not started, so it never waits for the
  // helper to get a core; asked at once, the two decode from either end. For a second core, and a
  // caller that may do other work before pending() (sagad holds a batch for the log's sync in
  // flight). false: read_batch() decodes.
  bool decode_helper = false;
};

class ingress_server {
 public:
  ingress_server(::zmq::context_t& ctx, const std::string& endpoint, ingress_options options = {});
  ~ingress_server();
  ingress_server(const ingress_server&) = delete;
  ingress_server& operator=(const ingress_server&) = delete;

  // Reads and decodes every waiting request into the batch in hand, after
  // what it holds (a batch not yet handed to the engine may grow), until it
  // holds batch_max. Requests of a peer at its credit are read and dropped
  // (not counted, not answered). Returns how many were taken by this call;
  // 0 when none.
  std::size_t read_batch();
  std::size_t batch_max() const { return options_.batch_max; }

  // The decoded inputs of the batch in hand, in arrival order (decoding here what is not yet).
  std::span<const saga::inbound> pending();
  // How many inputs the batch in hand holds, decoded or not.
  std::size_t pending_count() const;

  // Sends acks[i] to the sender of pending()[i] (or queues it behind that
  // peer's undelivered acks) and clears the batch, after the acks withheld
  // before. Requires acks.size() == pending().size().
  void ack(std::span<const saga::ack> acks);

  // Two steps of ack(), for a caller whose commits become durable later (sagad syncs its log on
  // a thread of its own): withhold() encodes the batch's acks, keeps them in order behind those
  // withheld before, and clears the batch, so that the next one can be read; deliver(n) sends
  // (or queues, as ack() does) the n oldest withheld acks. A withheld ack still counts against
  // its peer's credit. Same requirement as ack().
  void withhold(std::span<const saga::ack> acks);
  void deliver(std::size_t n);
  std::size_t withheld() const { return withheld_.size(); }

  // Sends queued acks to peers whose pipes have room again; drops those of
  // peers that went away. Returns how many acks are still queued. Call it on
  // every pass of the loop while queued_acks() > 0 (acks of a peer are
  // otherwise sent again only when its next batch is acked).
  std::size_t flush();

  // Acks waiting in the per-peer queues (undelivered: the peer is not reading).
  std::size_t queued_acks() const { return queued_; }
  // Requests dropped unanswered because their peer was at its credit.
  std::uint64_t dropped_requests() const { return dropped_; }
  // Events refused by options.authorize (each also rejected with its reason).
  std::uint64_t refused_by_grants() const { return refused_.load(std::memory_order_relaxed); }
  // The connections that sent a request within `window`, by the name of their CURVE key ("" for
  // plaintext connections); older ones are forgotten. A connection that only keeps its socket
  // open is not seen.
  std::map<std::string, std::size_t> active_peers(std::chrono::steady_clock::duration window);

  const std::string& endpoint() const { return endpoint_; }
  ::zmq::socket_t& socket() { return socket_; }  // for zmq::poll

 private:
  struct envelope {
    std::vector<std::string> routing;  // routing id frame(s) and the delimiter, if any
  };
  struct queued_ack {
    envelope to;
    std::string body;
  };
  struct peer {
    std::string holder;       // whose credit its requests use: its key's name, or the connection
    std::size_t in_hand = 0;  // requests in the batch in hand
    std::deque<queued_ack> queue;
    std::chrono::steady_clock::time_point last_warning{};
    std::uint64_t dropped_since_warning = 0;
  };
  enum class sent { ok, would_block, gone };

  void take_decoded();  // moves what the decoder holds to inputs_, counting refusals
  sent send(const envelope& to, const std::string& body);
  void flush(peer& p);
  void drop_request(const std::string& peer_id, peer& p);
  void release(const peer& p, std::size_t n);
  void forget_idle_peers();

  ::zmq::socket_t socket_;
  std::string endpoint_;
  ingress_options options_;
  std::vector<saga::inbound> inputs_;  // decoded, in arrival order; the decoder holds the rest
  std::unique_ptr<detail::request_decoder> decoder_;
  std::vector<envelope> envelopes_;
  std::deque<queued_ack> withheld_;              // encoded acks of committed batches, not yet durable
  std::unordered_map<std::string, peer> peers_;  // by routing id
  // Requests in hand or queued, by credit holder (peer::holder).
  std::unordered_map<std::string, std::size_t> held_;
  std::size_t queued_ = 0;
  std::uint64_t dropped_ = 0;
  // Counted on the caller's thread as decoded requests are taken; read from any.
  std::atomic<std::uint64_t> refused_{0};
  struct seen_peer {
    std::string key;  // its CURVE key's name; "" for plaintext
    std::chrono::steady_clock::time_point last;
  };
  std::unordered_map<std::string, seen_peer> seen_;  // by routing id: active_peers()
};

}  // namespace saga::zmq
