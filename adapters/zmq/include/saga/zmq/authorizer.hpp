#pragma once
// saga::zmq authorisation (docs/security.md): the authorized-keys file, the grants in it, and a
// ZAP handler (rfc.zeromq.org/spec:27) that lets only those keys complete a CURVE handshake.
//
// The file has one line per client key; a comment starts with '#' and a blank (# alone is a
// Z85 character of keys):
//
//   <public key: 40 Z85 characters or a path to NAME.key>  <name>  [sources=..] [types=..] [roles=..]
//
//   sources=urn:payments,urn:refunds   CloudEvents `source` values the key may send as ("*": any)
//   types=payment.*,refund.issued      event types, exact or `prefix.*` ("*": any)
//   roles=operator,subscriber          operator: saga.operator.* events; subscriber: the events
//                                      and replay sockets
//
// A key without `sources` or `types` may send nothing on the ingress. Two lines may give one
// name two keys (a key rollover) only with the same grants. The handshake's User-Id is the name;
// the ingress looks the name up again to check each event against its grants.
//
// Thread-safety: authorized_keys is immutable after parse. zap_handler runs its own thread;
// replace() and keys() may be called from any thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

namespace saga::zmq {

// The ZAP domains of sagad's three sockets.
inline constexpr std::string_view zap_domain_ingress = "saga.ingress";
inline constexpr std::string_view zap_domain_events = "saga.events";
inline constexpr std::string_view zap_domain_replay = "saga.replay";

struct grant {
  std::string name;
  std::vector<std::string> sources;  // exact, or "*"
  std::vector<std::string> types;    // exact, "prefix.*", or "*"
  bool operator_role = false;
  bool subscriber_role = false;
};

// Why a key with grant `g` may not send an event of `source` and `type` (a reason naming the
// grant it lacks), or nullopt when it may. saga.operator.* types need the operator role.
std::optional<std::string> refusal(const grant& g, std::string_view source, std::string_view type);

class authorized_keys {
 public:
  authorized_keys() = default;
  // Parses the file's text; `origin` names it in errors ("<origin>:<line>: <what>").
  // Throws std::runtime_error on the first bad line.
  static authorized_keys parse(std::string_view text, const std::string& origin);
  static authorized_keys load(const std::string& path);

  // The grant of a public key (40 Z85 characters), or nullptr for an unknown key.
  const grant* by_key(std::string_view public_key) const;
  // The grant of a name (the User-Id of an authenticated connection), or nullptr.
  const grant* by_name(std::string_view name) const;
  std::size_t keys() const { return by_key_.size(); }
  std::size_t names() const { return by_name_.size(); }

 private:
  std::map<std::string, std::shared_ptr<const grant>, std::less<>> by_key_;
  std::map<std::string, std::shared_ptr<const grant>, std::less<>> by_name_;
};

// Answers libzmq's ZAP requests on inproc://zeromq.zap.01 of `ctx` from its own thread: a
// CURVE client key in the current authorized_keys gets 200 with its name as User-Id (on the
// events and replay domains only with the subscriber role); anything else gets 400, and the
// handshake never completes. Construct it before binding any CURVE socket of the context;
// only one per context.
// The message property (zmq_msg_gets) under which a CURVE peer's public key arrives: the
// zap_handler returns it as ZAP metadata with every accepted handshake.
inline constexpr const char* zap_key_property = "Curve-Public-Key";

class zap_handler {
 public:
  struct counters {
    std::uint64_t accepted = 0, refused = 0;
  };
  // `log` is told about refusals, at most once per second per peer address. `idle` runs on the
  // handler's thread at least every 100 ms (e.g. to reload the keys when asked to).
  zap_handler(::zmq::context_t& ctx, authorized_keys keys, std::function<void(std::string_view)> log = {},
              std::function<void()> idle = {});
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

  // Handshakes from now on use `keys` (SIGHUP); established sessions are not touched.
  void replace(authorized_keys keys);
  std::shared_ptr<const authorized_keys> keys() const;
  counters totals() const { return {accepted_.load(), refused_.load()}; }

 private:
  void serve(::zmq::socket_t& socket);
  void answer(::zmq::socket_t& socket, std::vector<::zmq::message_t>& request);
  void log_refusal(const std::string& address, const std::string& why);

  mutable std::mutex mutex_;
  std::shared_ptr<const authorized_keys> keys_;
  std::function<void(std::string_view)> log_;
  std::function<void()> idle_;
  std::map<std::string, std::int64_t> last_logged_ms_;  // by peer address; the handler thread's
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0}, refused_{0};
  std::thread thread_;
};

// Logs the failed handshakes the ZAP handler never sees — a plaintext client on a CURVE socket,
// a client holding the wrong server key — from socket monitors, on a thread of its own: at
// most one line per second per watched socket and reason, with the count since the last line.
// (libzmq's monitor names the socket's own endpoint, not the peer's.) Destroy it before the
// context, after the watched sockets.
class handshake_log {
 public:
  handshake_log(::zmq::context_t& ctx, std::function<void(std::string_view)> log);
  ~handshake_log();
  handshake_log(const handshake_log&) = delete;
  handshake_log& operator=(const handshake_log&) = delete;

  // Starts watching `socket` (call it on the thread that uses the socket); `name` heads the
  // socket's lines ("ingress", "events", "replay").
  void watch(::zmq::socket_t& socket, const std::string& name);

 private:
  struct watched {
    std::string endpoint, name;
  };
  void serve();

  ::zmq::context_t& ctx_;
  std::function<void(std::string_view)> log_;
  std::mutex mutex_;
  std::vector<watched> added_;  // not yet connected by the thread
  std::size_t count_ = 0;       // watch() calls: unique monitor endpoints
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace saga::zmq
