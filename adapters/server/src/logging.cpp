// start_logging (saga/server/server.hpp): where sagad's log goes and in which form.

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "saga/codec.hpp"
#include "saga/server/server.hpp"

namespace saga::server {
namespace {

// One JSON object a line: {"time","level","logger","message"}. A message is text the server
// composed, which may quote what a client sent: invalid UTF-8 is replaced, never thrown on.
class json_lines final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto unix_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    const auto level = spdlog::level::to_string_view(msg.level);
    const nlohmann::json line{{"time", saga::format_time(unix_ms)},
                              {"level", std::string(level.data(), level.size())},
                              {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
                              {"message", std::string(msg.payload.data(), msg.payload.size())}};
    const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_lines>(); }
};

spdlog::sink_ptr sink_for(const std::string& format) {
  if (format == "journal") {
    // The message alone (the journal keeps the time); SYSLOG_IDENTIFIER is the logger's name
    // (options::name) and the level the entry's PRIORITY.
    return std::make_shared<spdlog::sinks::systemd_sink_mt>("", false);
  }
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == "json")
    sink->set_formatter(std::make_unique<json_lines>());
  else
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v"));
  return sink;
}

}  // namespace

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) &&
         ino == static_cast<unsigned long long>(st.st_ino);
}

void start_logging(const options& o) {
  const std::string format =
      o.log_format == "auto" ? (stderr_is_journal() ? "journal" : "text") : o.log_format;
  spdlog::drop(o.name);  // a second call (tests, embedding) replaces the logger
  auto logger = std::make_shared<spdlog::logger>(o.name, sink_for(format));
  spdlog::register_logger(logger);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
}

}  // namespace saga::server
