#pragma once
// The server's CURVE side (docs/security.md): its secret key, the ZAP handler that admits only
// the keys of the authorized-keys file (re-read on request: SIGHUP), the grant check the ingress
// applies to each event, and the rule that a server without a key binds only loopback or ipc://
// endpoints unless told --insecure.
//
// Thread-safety: construct and destroy on the server's thread; request_reload() is
// async-signal-safe (an atomic store); the reload itself happens on the ZAP handler's thread.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "saga/event.hpp"
#include "saga/server/options.hpp"
#include "saga/zmq/authorizer.hpp"

namespace saga::server {

// True for ipc://, inproc://, and tcp:// on 127.0.0.0/8, ::1 or localhost.
bool loopback_endpoint(std::string_view endpoint);

class security {
 public:
  // Reads --curve-secret and --authorized-keys, starts the ZAP handler on `ctx` (before any
  // socket binds), and checks the endpoints. Throws startup_error with one line naming the
  // option that is wrong.
  security(::zmq::context_t& ctx, const options& o);
  ~security();
  security(const security&) = delete;
  security& operator=(const security&) = delete;

  bool enabled() const { return !secret_key_.empty(); }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& public_key() const { return public_key_; }

  // Logs what the start should say (CURVE on, --insecure): called once the sockets are bound,
  // so that a start refused for a taken port stays one line.
  void log_start() const;

  // Logs failed handshakes of `socket` that the ZAP handler never sees (plaintext clients,
  // wrong server keys); nothing when CURVE is off. Call it on the socket's thread.
  void watch(::zmq::socket_t& socket, const std::string& name) const;

  // The ingress's grant check (ingress_options::authorize); empty when CURVE is off.
  std::function<std::optional<std::string>(std::string_view, std::string_view, const saga::event&)>
  authorize() const;

  // Asks for the authorized-keys file to be read again (SIGHUP); a file that no longer parses
  // is reported and the keys in force stay.
  static void request_reload();

 private:
  void reload_if_requested();

  std::string secret_key_, public_key_, keys_path_;
  std::string curve_note_;                // "CURVE on: ..."
  std::vector<std::string> start_notes_;  // warnings
  std::unique_ptr<saga::zmq::zap_handler> zap_;
  std::atomic<saga::zmq::zap_handler*> zap_ready_{nullptr};  // zap_, once constructed
  std::unique_ptr<saga::zmq::handshake_log> handshakes_;
};

}  // namespace saga::server
