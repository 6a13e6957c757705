#include "http_endpoint.hpp"

#include <httplib.h>

#include <pthread.h>
#include <sys/socket.h>

#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "console.hpp"
#include "saga/reader.hpp"
#include "saga/server/options.hpp"

namespace saga::server {
namespace {

using steady = std::chrono::steady_clock;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// HOST:PORT (an IPv6 host in brackets), checked.
std::pair<std::string, int> host_and_port(const std::string& option, const std::string& address,
                                          bool insecure) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw startup_error(option + ": '" + address + "' is not HOST:PORT");
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  try {
    std::size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw startup_error(option + ": '" + address + "': the port is not 0-65535");
  const bool loopback = host == "127.0.0.1" || host == "::1" || host == "localhost";
  if (!loopback && !insecure)
    throw startup_error(option + ": " + host +
                        " is not loopback: " + (option == "--metrics" ? "the metrics" : "the sagas") +
                        " would be readable by anyone who reaches it (HTTP has no CURVE); bind 127.0.0.1, or "
                        "say --insecure");
  return {host, port};
}

// The database gauges, rendered.
std::string database_gauges(saga::reader& r) {
  std::string out;
  append_family(out, "saga_sagas", "gauge", "sagas by definition and state");
  std::map<std::pair<std::string, std::string>, std::int64_t> sagas;  // over the definitions' versions
  for (const auto& c : r.counts_by_state()) sagas[{c.definition, c.state}] += c.sagas;
  for (const auto& [which, n] : sagas)
    append_sample(out, "saga_sagas", {{"definition", which.first}, {"state", which.second}},
                  static_cast<double>(n));
  const auto t = r.totals();
  std::int64_t overdue = 0;
  for (const auto& [definition, n] : r.due_timer_counts(unix_ms_now())) overdue += n;
  const std::pair<const char*, std::pair<const char*, std::int64_t>> gauges[] = {
      {"saga_parked_events", {"events parked until their saga can take them", t.parked}},
      {"saga_dead_letters", {"rejected events kept with their reason", t.dead_letters}},
      {"saga_armed_timers", {"armed timers", t.armed_timers}},
      {"saga_overdue_timers", {"armed timers due now or earlier", overdue}},
      {"saga_inbox_rows", {"inbox rows (deduplication window)", t.inbox}},
      {"saga_outbox_rows", {"outbox rows (replay window)", t.outbox}},
      {"saga_outbox_unpublished_rows", {"outbox rows not yet published", t.unpublished}},
  };
  for (const auto& [name, what] : gauges) {
    append_family(out, name, "gauge", what.first);
    append_sample(out, name, {}, static_cast<double>(what.second));
  }
  return out;
}

}  // namespace

struct http_endpoint::impl {
  settings s;
  const sagad_metrics& metrics;
  httplib::Server server;
  std::thread thread;
  std::mutex mutex;  // the cached gauges (httplib serves on a pool of threads)
  std::unique_ptr<saga::reader> reader;
  std::string gauges;
  steady::time_point gauges_at{};
  std::unique_ptr<class console> console;  // with settings::console

  impl(settings settings_, const sagad_metrics& m) : s(std::move(settings_)), metrics(m) {}

  std::string cached_gauges() {
    std::lock_guard lock(mutex);
    const auto now = steady::now();
    if (!s.open_reader) return {};  // no database gauges: the loop's metrics only
    if (gauges_at != steady::time_point{} && now - gauges_at < s.refresh) return gauges;
    try {
      if (!reader) reader = s.open_reader();
      gauges = database_gauges(*reader);
      gauges_at = now;
    } catch (const std::exception& e) {
      spdlog::warn("metrics: reading the database gauges: {} (the last ones are served)", e.what());
      reader.reset();
    }
    return gauges;
  }

  void health(httplib::Response& res) const {
    const auto age_ms = unix_ms_now() - metrics.loop_pass_ms.load(std::memory_order_relaxed);
    std::string problem;
    if (age_ms > 5000) problem = "the loop has not turned for " + std::to_string(age_ms / 1000) + " s";
    if (!metrics.last_commit_ok.load(std::memory_order_relaxed))
      problem += (problem.empty() ? "" : "; ") + std::string("the last commit attempt failed");
    res.status = problem.empty() ? 200 : 503;
    res.set_content(problem.empty() ? "ok\n" : problem + "\n", "text/plain; charset=utf-8");
  }
};

http_endpoint::http_endpoint(settings s, const sagad_metrics& metrics)
    : impl_(std::make_unique<impl>(std::move(s), metrics)) {
  auto& i = *impl_;
  const auto [host, port] = host_and_port(i.s.option, i.s.address, i.s.insecure);
  if (i.s.metrics) {
    i.server.Get("/metrics", [&i](const httplib::Request&, httplib::Response& res) {
      res.set_content(render(i.metrics, i.s.version) + i.cached_gauges(),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    i.server.Get("/healthz", [&i](const httplib::Request&, httplib::Response& res) { i.health(res); });
  }
  if (i.s.console) {
    if (!i.s.open_reader) throw startup_error(i.s.option + ": no database reader to serve the console from");
    i.console = std::make_unique<class console>(i.s.open_reader, i.s.db_name, i.s.send_action);
    i.console->serve_on(i.server);
  }
  // Event data is attacker-controlled: no answer may run script or be sniffed into HTML.
  i.server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy", console_security_policy);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the
    // console's own form POSTs, which the actions' same-origin check must then refuse.
    res.set_header("Referrer-Policy", "same-origin");
    res.set_header("Cache-Control", "no-store");
  });
  // cpp-httplib sets SO_REUSEPORT by default, which lets a second process bind the same port and
  // take a share of the scrapes (and lets port 0 resolve to a port another listener holds). Only
  // SO_REUSEADDR: a restart may bind over connections in TIME_WAIT, nothing else shares the port.
  // Requests carry nothing we read but the console's action forms: a body of more than 1 KiB
  // (8 KiB with actions: a reason of up to 1,000 bytes, percent-encoded) is refused (413) before
  // it is held, and a client that stalls is cut after 5 s, so no client grows memory or holds a
  // thread.
  i.server.set_payload_max_length(i.s.send_action ? 8192 : 1024);
  i.server.set_read_timeout(std::chrono::seconds(5));
  i.server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const int bound =
      port == 0 ? i.server.bind_to_any_port(host) : (i.server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) throw startup_error(i.s.option + ": cannot bind " + i.s.address);
  url_ = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(bound);
  // Named from inside, before it starts its workers (they inherit the name), and from here, so that
  // it has the name when this constructor returns.
  i.thread = std::thread([&i] {
    ::pthread_setname_np(::pthread_self(), "sagad-http");
    i.server.listen_after_bind();
  });
  ::pthread_setname_np(i.thread.native_handle(), "sagad-http");
}

http_endpoint::~http_endpoint() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace saga::server
