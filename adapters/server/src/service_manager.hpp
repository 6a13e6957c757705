#pragma once
// The service manager's notification protocol (sd_notify(3), through libsystemd): readiness,
// a status line, the watchdog's keep-alive and stopping. Without a service manager (no
// $NOTIFY_SOCKET) every call does nothing; a message that cannot be sent is dropped (the
// protocol has no answer to wait for). docs/operations.md shows the unit file that uses it.

#include <chrono>
#include <optional>
#include <string_view>

namespace saga::server {

class service_manager {
 public:
  using steady = std::chrono::steady_clock;

  // Reads $WATCHDOG_USEC (and $WATCHDOG_PID) through sd_watchdog_enabled.
  service_manager();

  // READY=1 with a STATUS= line: the sockets are bound and what was pending is published.
  void ready(std::string_view status);
  void status(std::string_view status);
  // STOPPING=1 with a STATUS= line.
  void stopping(std::string_view status);

  // WATCHDOG=1 when half the watchdog's interval passed since the last one. The loop calls it on
  // every pass, so a loop that stops turning stops the keep-alives and the manager restarts it.
  void keep_alive(steady::time_point now);
  // When keep_alive must run next; steady::time_point::max() without a watchdog.
  steady::time_point keep_alive_due() const { return next_keep_alive_; }
  std::optional<std::chrono::microseconds> watchdog() const { return watchdog_; }

 private:
  std::optional<std::chrono::microseconds> watchdog_;
  steady::time_point next_keep_alive_ = steady::time_point::max();
};

}  // namespace saga::server
