#pragma once
// http_endpoint — `--metrics HOST:PORT`: an HTTP server (Debian's cpp-httplib) on a thread of its
// own answering
//   GET /metrics  the Prometheus text exposition of sagad_metrics (metrics.hpp) and of the
//                 database gauges — sagas by definition and state, parked events, dead letters,
//                 armed and overdue timers, inbox and outbox rows — read through a read-only
//                 connection of its own at most once per `refresh` (the counts walk the tables:
//                 bounded by time, never a scan per scrape; WAL readers never block the writer);
//   GET /healthz  200 "ok" while the loop turns (a pass within the last 5 s) and the last commit
//                 attempt succeeded; 503 with the reason otherwise.
// Loopback only unless --insecure (the metrics tell business volumes; HTTP has no CURVE).
// With `console`, the same server also serves sagad's web console (console.hpp) on a
// read connection of its own; `--console` on the same HOST:PORT as `--metrics` is one server
// with both, on another address a second server with the console alone (docs/console.md).
// Every answer carries the console's security headers (Content-Security-Policy without script,
// X-Content-Type-Options: nosniff, no framing, no referrer).
//
// Thread-safety: constructed and destroyed on the server's thread; serves on its own.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "metrics.hpp"
#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/reader.hpp"

namespace saga::server {

class http_endpoint {
 public:
  struct settings {
    std::string address;  // HOST:PORT; port 0: the kernel chooses
    bool insecure = false;
    std::chrono::milliseconds refresh{30'000};
    // Opens a read-only connection for the database gauges (either store); empty: none.
    std::function<std::unique_ptr<saga::reader>()> open_reader;
    std::string version;
    std::string option = "--metrics";  // the option that asked for this server, in messages
    bool metrics = true;               // serve /metrics and /healthz
    bool console = false;              // serve the console (through open_reader, a connection of its own)
    std::string db_name;               // the database, in the console's messages
    // The console's actions: an operator's event through the ingress, its ack back (console.hpp);
    // empty: a read-only console.
    std::function<saga::ack(const saga::event&)> send_action;
  };
  // Binds and starts serving; startup_error when the address is malformed, not loopback without
  // `insecure`, or cannot be bound.
  http_endpoint(settings s, const sagad_metrics& metrics);
  ~http_endpoint();
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  // "http://HOST:PORT", the port resolved.
  const std::string& url() const { return url_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string url_;
};

}  // namespace saga::server
