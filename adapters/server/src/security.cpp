#include "security.hpp"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <utility>

#include "saga/zmq/curve.hpp"

namespace saga::server {

namespace {

std::atomic<bool> reload_requested{false};

// The host of a tcp:// endpoint ("tcp://host:port", "tcp://[v6]:port"); empty for other transports.
std::string_view tcp_host(std::string_view endpoint) {
  constexpr std::string_view tcp = "tcp://";
  if (endpoint.substr(0, tcp.size()) != tcp) return {};
  auto rest = endpoint.substr(tcp.size());
  if (const auto semi = rest.find(';'); semi != std::string_view::npos)
    rest = rest.substr(semi + 1);  // src;dst
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    return close == std::string_view::npos ? rest : rest.substr(1, close - 1);
  }
  return rest.substr(0, rest.rfind(':'));
}

}  // namespace

bool loopback_endpoint(std::string_view endpoint) {
  if (endpoint.substr(0, 6) == "ipc://" || endpoint.substr(0, 9) == "inproc://") return true;
  if (endpoint.substr(0, 6) != "tcp://") return false;
  const auto host = tcp_host(endpoint);
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

security::security(::zmq::context_t& ctx, const options& o) : keys_path_(o.authorized_keys) {
  if (o.curve_secret.empty()) {
    if (!o.authorized_keys.empty())
      throw startup_error("--authorized-keys needs --curve-secret (the server's own key pair)");
    for (const auto* ep : {&o.ingress, &o.publish, &o.replay}) {
      if (loopback_endpoint(*ep)) continue;
      if (!o.insecure)
        throw startup_error(
            "refusing to bind " + *ep +
            " in plaintext: give --curve-secret (docs/security.md), bind loopback or ipc:// only,"
            " or say --insecure");
    }
    if (o.insecure)
      start_notes_.push_back(
          "--insecure: no CURVE key; anyone who reaches these endpoints may send any event and read every "
          "one");
    return;
  }
  if (o.insecure)
    start_notes_.push_back("--insecure has no effect: --curve-secret is given, every socket uses CURVE");
  if (o.authorized_keys.empty())
    throw startup_error("--curve-secret needs --authorized-keys (who may connect, with which grants)");
  saga::zmq::curve_key_pair own;
  saga::zmq::authorized_keys keys;
  try {
    own = saga::zmq::read_key_file(o.curve_secret, true);
  } catch (const std::exception& e) {
    throw startup_error(std::string("--curve-secret: ") + e.what());
  }
  try {
    keys = saga::zmq::authorized_keys::load(o.authorized_keys);
  } catch (const std::exception& e) {
    throw startup_error(std::string("--authorized-keys: ") + e.what());
  }
  secret_key_ = own.secret_key;
  public_key_ = own.public_key;
  curve_note_ = "CURVE on: server key " + public_key_ + ", " + std::to_string(keys.keys()) +
                " client keys (" + std::to_string(keys.names()) + " names) from " + o.authorized_keys;
  zap_ = std::make_unique<saga::zmq::zap_handler>(
      ctx, std::move(keys), [](std::string_view line) { spdlog::warn("{}", line); },
      [this] { reload_if_requested(); });
  zap_ready_.store(zap_.get());
  handshakes_ = std::make_unique<saga::zmq::handshake_log>(
      ctx, [](std::string_view line) { spdlog::warn("{}", line); });
}

void security::log_start() const {
  if (!curve_note_.empty()) spdlog::info("{}", curve_note_);
  for (const auto& n : start_notes_) spdlog::warn("{}", n);
}

void security::watch(::zmq::socket_t& socket, const std::string& name) const {
  if (handshakes_) handshakes_->watch(socket, name);
}

security::~security() = default;

std::function<std::optional<std::string>(std::string_view, std::string_view, const saga::event&)>
security::authorize() const {
  if (!zap_) return {};
  const saga::zmq::zap_handler* zap = zap_.get();
  return [zap](std::string_view user, std::string_view public_key,
               const saga::event& e) -> std::optional<std::string> {
    const auto keys = zap->keys();
    // A key removed by a reload keeps its session but loses its grants, even when its name
    // stays with another key (a rollover's end).
    const auto* g = keys->by_key(public_key);
    if (g == nullptr || g->name != user)
      return "key '" + std::string(user) + "' is no longer in the authorized keys";
    return saga::zmq::refusal(*g, e.source, e.type);
  };
}

void security::request_reload() {
  reload_requested.store(true);
}

void security::reload_if_requested() {
  // SIGHUP is blocked in every thread (stop_on_signals): taken here, on the ZAP handler's thread,
  // so that it never interrupts a ZeroMQ call elsewhere (EINTR there would stop the loop).
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  const timespec now{};
  const bool signalled = ::sigtimedwait(&hup, nullptr, &now) == SIGHUP;
  if (!reload_requested.exchange(false) && !signalled) return;
  // The handler's thread runs this from its first pass, maybe before zap_ is assigned.
  saga::zmq::zap_handler* zap = zap_ready_.load();
  if (zap == nullptr) {
    reload_requested.store(true);  // again on the next pass
    return;
  }
  try {
    auto keys = saga::zmq::authorized_keys::load(keys_path_);
    spdlog::info("reloaded {}: {} client keys ({} names)", keys_path_, keys.keys(), keys.names());
    zap->replace(std::move(keys));
  } catch (const std::exception& e) {
    spdlog::error("reloading the authorized keys failed, the previous ones stay in force: {}", e.what());
  }
}

}  // namespace saga::server
