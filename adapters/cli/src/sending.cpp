#include "sending.hpp"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <zmq.hpp>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"
#include "saga/duration.hpp"
#include "saga/zmq/client.hpp"

namespace sagactl {

void add_curve_options(CLI::App& cmd, curve_settings& c) {
  cmd.add_option("--server-key", c.server_key,
                 "sagad's public key (its NAME.key file, or the 40-character key)")
      ->envname("SAGA_SERVER_KEY");
  cmd.add_option("--key", c.key, "this client's key pair (a NAME.key_secret file from sagactl keygen)")
      ->envname("SAGA_KEY");
}

saga::zmq::curve_client curve_of(const curve_settings& c) {
  if (c.server_key.empty() && c.key.empty()) return {};
  if (c.server_key.empty() || c.key.empty())
    throw failure(usage, "CURVE needs both --server-key and --key (docs/security.md)");
  saga::zmq::curve_client out;
  try {
    out.server_public_key = saga::zmq::public_key_from(c.server_key);
    out.own = saga::zmq::read_key_file(c.key, true);
  } catch (const std::exception& e) {
    throw failure(usage, e.what());
  }
  return out;
}

void add_send_options(CLI::App& cmd, send_settings& s) {
  cmd.add_option("--endpoint", s.endpoint, "sagad's ingress")->envname("SAGA_INGRESS")->capture_default_str();
  cmd.add_option("--timeout", s.timeout, "wait this long for an ack before resending")
      ->check(duration_check())
      ->capture_default_str();
  cmd.add_option("--tries", s.tries, "sends before giving up")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  add_curve_options(cmd, s.curve);
}

saga::ack send_event(const saga::event& e, const send_settings& s) {
  return send_events(std::span<const saga::event>(&e, 1), s).front();
}

std::vector<saga::ack> send_events(std::span<const saga::event> events, const send_settings& s) {
  for (const auto& e : events)
    if (auto problem = saga::validate_event(e); !problem.empty())
      throw failure(usage, "invalid event: " + problem);
  ::zmq::context_t ctx(1);
  saga::zmq::client_options co;
  co.timeout = std::chrono::milliseconds(*saga::parse_duration(s.timeout));
  co.max_tries = s.tries;
  co.backoff = std::chrono::milliseconds(100);
  co.max_backoff = std::chrono::milliseconds(500);
  co.curve = curve_of(s.curve);
  std::optional<saga::zmq::client> c;
  try {
    c.emplace(ctx, s.endpoint, co);
  } catch (const ::zmq::error_t& ex) {
    throw failure(usage, "bad endpoint '" + s.endpoint + "': " + ex.what());
  }
  try {
    return c->send_all(events);
  } catch (const saga::zmq::client_error&) {
    // A refused CURVE handshake looks exactly like this to a client: say where to look.
    const std::string hint = co.curve.enabled()
                                 ? "; or the CURVE handshake was refused: is --server-key sagad's key and "
                                   "--key's public key in its authorized keys? sagad's log says which"
                                 : "; if sagad runs with --curve-secret, give --server-key and --key";
    throw failure(unreachable_or_rejected,
                  "sagad unreachable at " + s.endpoint + " (no ack after " + std::to_string(s.tries) +
                      (s.tries == 1 ? " try of " : " tries of ") + s.timeout + ")" + hint);
  } catch (const ::zmq::error_t& ex) {
    throw failure(unreachable_or_rejected, "sagad unreachable at " + s.endpoint + ": " + ex.what());
  }
}

std::string default_operator_name() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const char* u = std::getenv("LOGNAME"); u && *u) return u;
  return "unknown";
}

void add_operator_options(CLI::App& cmd, operator_request& r) {
  r.operator_name = default_operator_name();
  cmd.add_option("id", r.id, "the saga's id")->required();
  cmd.add_option("--reason", r.reason, "why (recorded in history)")->required();
  cmd.add_option("--operator", r.operator_name, "who (default $USER)")->capture_default_str();
  cmd.add_option("--type", r.type, "the definition, when several have a saga with this id");
}

int report_ack(const saga::ack& a, bool as_json) {
  if (as_json) {
    print_json(saga::to_json(a));
  } else {
    std::cout << saga::to_string(a.status);
    if (a.ok()) {
      std::cout << ' ' << saga::to_string(a.outcome) << ": " << a.saga_type << '/' << a.saga_id;
      if (!a.saga_state.empty()) std::cout << " is " << a.saga_state;
    }
    std::cout << " (event " << a.id << ")\n";
  }
  if (!a.ok()) throw failure(unreachable_or_rejected, "rejected: " + a.reason);
  return 0;
}

}  // namespace sagactl
