#include "command.hpp"

#include <chrono>

#include "saga/codec.hpp"
#include "saga/duration.hpp"

namespace sagactl {

CLI::Validator duration_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return saga::parse_duration(s) ? std::string()
                                       : "'" + s + "' is not a duration (like 500ms, 90s, 15m, 2h, 7d)";
      },
      "DURATION");
}

CLI::Validator time_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return saga::parse_time(s) ? std::string()
                                   : "'" + s + "' is not an RFC 3339 time (like 2026-01-01T00:00:00Z)";
      },
      "TIME");
}

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sagactl
