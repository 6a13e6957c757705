// sagad — the saga daemon. Runs in the foreground (a service manager
// supervises it), logs to stderr, creates its database when missing.
// Options come from the command line, a config file (--config) and SAGA_*
// environment variables, in that order of precedence. See docs/operations.md.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT; 1 could not start or failed;
// 2 bad options.
//
// The same file builds `sagad-test` (not installed): the daemon library with
// the SAGA_FAULT kill points (fault_points.hpp) and, when the tests provide
// them, the hostile test definitions (tests/support/hostile_definitions.hpp).

#include <csignal>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "daemon.hpp"
#include "definitions/catalog.hpp"
#include "saga/duration.hpp"
#if defined(SAGA_HOSTILE_DEFINITIONS)
#include "support/hostile_definitions.hpp"
#endif

namespace {

std::atomic<bool> stop_requested{false};

extern "C" void on_signal(int) {
  stop_requested.store(true);
}

}  // namespace

int main(int argc, char** argv) {
  saga::daemon::options o;
  std::string retention = saga::format_duration(o.retention_ms);
  std::string dedup = saga::format_duration(o.dedup_window_ms);
  std::string park_expiry = saga::format_duration(o.park_expiry_ms);
  std::string dead_letter_retention = saga::format_duration(o.dead_letter_retention_ms);
  std::string retention_finished = "off";
  std::string log_level = "info";

  CLI::App app{"sagad: runs sagas from the events sent to its ingress and publishes their follow-on events"};
  app.set_config("--config", "", "read options from this TOML/INI file (keys as the long options)");
  app.get_config_ptr()->envname("SAGA_CONFIG");
  app.add_option("--db", o.db, "SQLite database (created when missing)")
      ->envname("SAGA_DB")
      ->capture_default_str();
  app.add_option("--ingress", o.ingress, "ROUTER endpoint for incoming events")
      ->envname("SAGA_INGRESS")
      ->capture_default_str();
  app.add_option("--publish", o.publish, "PUB endpoint for follow-on events and the heartbeat")
      ->envname("SAGA_PUBLISH")
      ->capture_default_str();
  app.add_option("--replay", o.replay, "ROUTER endpoint answering replay requests")
      ->envname("SAGA_REPLAY")
      ->capture_default_str();
  app.add_option("--source", o.source, "source of follow-on events (default: urn:saga:<definition>)")
      ->envname("SAGA_SOURCE");
  app.add_option("--batch-max", o.batch_max, "most events committed in one transaction")
      ->envname("SAGA_BATCH_MAX")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--synchronous", o.synchronous, "SQLite synchronous mode: FULL, NORMAL or OFF")
      ->envname("SAGA_SYNCHRONOUS")
      ->transform(CLI::IsMember({"FULL", "NORMAL", "OFF"}, CLI::ignore_case))
      ->capture_default_str();
  auto duration = [](std::string what) {
    return CLI::Validator(
        [what](std::string& s) -> std::string {
          return saga::parse_duration(s) ? std::string()
                                         : what + ": '" + s + "' is not a duration (like 90s, 15m, 2h, 7d)";
        },
        "DURATION");
  };
  app.add_option("--retention", retention, "keep published outbox rows this long (replay window)")
      ->envname("SAGA_RETENTION")
      ->check(duration("--retention"))
      ->capture_default_str();
  app.add_option("--dedup-window", dedup, "keep inbox rows this long (duplicates recognised within it)")
      ->envname("SAGA_DEDUP_WINDOW")
      ->check(duration("--dedup-window"))
      ->capture_default_str();
  app.add_option("--park-limit", o.park_limit, "parked events per saga; more are rejected")
      ->envname("SAGA_PARK_LIMIT")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--park-expiry", park_expiry,
                 "parked events of sagas that never start go to dead letters after")
      ->envname("SAGA_PARK_EXPIRY")
      ->check(duration("--park-expiry"))
      ->capture_default_str();
  app.add_option("--park-total-limit", o.park_total_limit,
                 "parked events of all sagas together; more are rejected")
      ->envname("SAGA_PARK_TOTAL_LIMIT")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--dead-letter-retention", dead_letter_retention,
                 "dead letters are deleted this long after their last rejection")
      ->envname("SAGA_DEAD_LETTER_RETENTION")
      ->check(duration("--dead-letter-retention"))
      ->capture_default_str();
  app.add_option("--dead-letter-max", o.dead_letter_max, "dead letters kept at most (the oldest go first)")
      ->envname("SAGA_DEAD_LETTER_MAX")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--retention-finished", retention_finished,
                 "finished sagas (and their history) are deleted this long after they finished; off: kept")
      ->envname("SAGA_RETENTION_FINISHED")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return s == "off" || saga::parse_duration(s)
                       ? std::string()
                       : "--retention-finished: '" + s + "' is neither off nor a duration (like 30d)";
          },
          "DURATION|off"))
      ->capture_default_str();
  app.add_option("--peer-credit", o.peer_credit,
                 "requests of one connection read and not yet acked; beyond it its requests are dropped "
                 "unanswered until it reads its acks")
      ->envname("SAGA_PEER_CREDIT")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->envname("SAGA_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--definitions", o.definitions, "definitions to run (default: all compiled)")
      ->envname("SAGA_DEFINITIONS")
      ->delimiter(',')
      ->check(CLI::IsMember(saga::definitions::names()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is not an error; every parse error is usage (2)
  }

  o.retention_ms = *saga::parse_duration(retention);
  o.dedup_window_ms = *saga::parse_duration(dedup);
  o.park_expiry_ms = *saga::parse_duration(park_expiry);
  o.dead_letter_retention_ms = *saga::parse_duration(dead_letter_retention);
  o.finished_retention_ms = retention_finished == "off" ? 0 : *saga::parse_duration(retention_finished);
#if defined(SAGA_HOSTILE_DEFINITIONS)
  o.extra_definitions = saga::testing::hostile_definitions();
#endif

  auto logger = spdlog::stderr_color_mt("sagad");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  try {
    saga::daemon::run(o, stop_requested);
    return 0;
  } catch (const saga::daemon::startup_error& e) {
    spdlog::critical("sagad cannot start: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::critical("sagad failed: {}", e.what());
  }
  return 1;
}
