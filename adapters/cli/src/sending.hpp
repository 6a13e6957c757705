#pragma once
// How sagactl's actions reach sagad: one event through the ingress (saga::zmq::client, with
// resends of the same event id), and the ack printed.
//
// Errors: failure(usage) for an invalid event or endpoint, failure(unreachable_or_rejected)
// when no ack came after the tries or the event was rejected (with sagad's reason).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/operator_event.hpp"
#include "saga/zmq/curve.hpp"

namespace sagactl {

// CURVE (docs/security.md): sagad's public key and this client's own key pair; both empty:
// plaintext (a sagad without --curve-secret).
struct curve_settings {
  std::string server_key;  // NAME.key file or 40 Z85 characters
  std::string key;         // NAME.key_secret file
};
// --server-key (env SAGA_SERVER_KEY), --key (env SAGA_KEY).
void add_curve_options(CLI::App& cmd, curve_settings& c);
// The socket settings; failure(usage) naming the file when a key cannot be read, or when only
// one of the two is given.
saga::zmq::curve_client curve_of(const curve_settings& c);

struct send_settings {
  std::string endpoint = "tcp://127.0.0.1:5570";
  std::string timeout = "1s";
  int tries = 3;
  curve_settings curve;
};

// --endpoint (env SAGA_INGRESS), --timeout, --tries, and the CURVE options.
void add_send_options(CLI::App& cmd, send_settings& s);

saga::ack send_event(const saga::event& e, const send_settings& s);
// Several events on one connection, pipelined (saga::zmq::client::send_all); acks in their order.
std::vector<saga::ack> send_events(std::span<const saga::event> events, const send_settings& s);

// Prints the ack (the wire ack with `as_json`) and returns 0; a rejection is thrown as
// failure(unreachable_or_rejected) with its reason.
int report_ack(const saga::ack& a, bool as_json);

// An operator action (saga.operator.abort / .resolve, saga/operator_event.hpp): the saga's id,
// --reason, --operator (default $USER), --type; `to` for resolve only.
using saga::operator_event;
using saga::operator_request;
void add_operator_options(CLI::App& cmd, operator_request& r);
std::string default_operator_name();  // $USER, else $LOGNAME, else "unknown"

}  // namespace sagactl
