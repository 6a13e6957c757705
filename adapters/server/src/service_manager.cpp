#include "service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <string>

namespace saga::server {
namespace {

void notify(const std::string& message) {
  ::sd_notify(0, message.c_str());
}

// A STATUS= value is one line.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
}

}  // namespace

service_manager::service_manager() {
  std::uint64_t usec = 0;
  if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_ = std::chrono::microseconds(usec);
    next_keep_alive_ = steady::now();
  }
}

void service_manager::ready(std::string_view status) {
  notify("READY=1\nSTATUS=" + one_line(status));
}

void service_manager::status(std::string_view status) {
  notify("STATUS=" + one_line(status));
}

void service_manager::stopping(std::string_view status) {
  notify("STOPPING=1\nSTATUS=" + one_line(status));
}

void service_manager::keep_alive(steady::time_point now) {
  if (!watchdog_ || now < next_keep_alive_) return;
  notify("WATCHDOG=1");
  next_keep_alive_ = now + *watchdog_ / 2;
}

}  // namespace saga::server
