#include "saga/server/options.hpp"

#include <CLI/CLI.hpp>

#include "saga/duration.hpp"
#include "saga/server/build_info.hpp"

namespace saga::server {
namespace {

CLI::Validator duration(const std::string& what) {
  return CLI::Validator(
      [what](std::string& s) -> std::string {
        return saga::parse_duration(s) ? std::string()
                                       : what + ": '" + s + "' is not a duration (like 90s, 15m, 2h, 7d)";
      },
      "DURATION");
}

// Durations are read as text and converted once parsing succeeded.
struct duration_texts {
  std::string retention, dedup, park_expiry, dead_letter_retention,
      retention_finished = "off", metrics_refresh = "30s", pg_stall_timeout = "10s", pg_relay_lease = "5s",
      pg_relay_poll = "50ms";
};

void add_store_options(CLI::App& app, options& o, duration_texts& d) {
  app.add_option("--synchronous", o.synchronous, "SQLite synchronous mode: FULL, NORMAL or OFF")
      ->envname("SAGA_SYNCHRONOUS")
      ->transform(CLI::IsMember({"FULL", "NORMAL", "OFF"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--sync-log", o.sync_log,
                 "with --synchronous FULL on SQLite, where the write-ahead log's fsync runs: 'thread' (on "
                 "a thread of its own while the next batch is committed; acks and follow-on events wait "
                 "for it) or 'commit' (inside each commit, on the loop thread); as durable either way")
      ->envname("SAGA_SYNC_LOG")
      ->transform(CLI::IsMember({"thread", "commit"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--retention", d.retention, "keep published outbox rows this long (replay window)")
      ->envname("SAGA_RETENTION")
      ->check(duration("--retention"))
      ->capture_default_str();
  app.add_option("--dedup-window", d.dedup, "keep inbox rows this long (duplicates recognised within it)")
      ->envname("SAGA_DEDUP_WINDOW")
      ->check(duration("--dedup-window"))
      ->capture_default_str();
  app.add_option("--park-limit", o.park_limit, "parked events per saga; more are rejected")
      ->envname("SAGA_PARK_LIMIT")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--park-expiry", d.park_expiry,
                 "parked events of sagas that never start go to dead letters after")
      ->envname("SAGA_PARK_EXPIRY")
      ->check(duration("--park-expiry"))
      ->capture_default_str();
  app.add_option("--park-total-limit", o.park_total_limit,
                 "parked events of all sagas per client key (CURVE); events without a key share one pool; "
                 "more are rejected")
      ->envname("SAGA_PARK_TOTAL_LIMIT")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--dead-letter-retention", d.dead_letter_retention,
                 "dead letters are deleted this long after their last rejection")
      ->envname("SAGA_DEAD_LETTER_RETENTION")
      ->check(duration("--dead-letter-retention"))
      ->capture_default_str();
  app.add_option("--dead-letter-max", o.dead_letter_max,
                 "dead letters kept at most per client key (CURVE; events without a key share one pool); the "
                 "oldest go first")
      ->envname("SAGA_DEAD_LETTER_MAX")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000}))
      ->capture_default_str();
  app.add_option("--retention-finished", d.retention_finished,
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
  app.add_option("--metrics-refresh", d.metrics_refresh,
                 "the database gauges of /metrics (sagas by state, parked, dead letters, timers, row counts: "
                 "they count the tables) are read at most this often")
      ->envname("SAGA_METRICS_REFRESH")
      ->check(duration("--metrics-refresh"))
      ->capture_default_str();
}

void add_socket_options(CLI::App& app, options& o) {
  app.add_option("--ingress", o.ingress, "ROUTER endpoint for incoming events")
      ->envname("SAGA_INGRESS")
      ->capture_default_str();
  app.add_option("--publish", o.publish, "PUB endpoint for follow-on events and the heartbeat")
      ->envname("SAGA_PUBLISH")
      ->capture_default_str();
  app.add_option("--replay", o.replay, "ROUTER endpoint answering replay requests")
      ->envname("SAGA_REPLAY")
      ->capture_default_str();
  app.add_option("--endpoints-file", o.endpoints_file,
                 "once the three sockets are bound, write where (a port * resolved) to this file as JSON "
                 "{\"ingress\",\"publish\",\"replay\",\"pid\"}, atomically; removed on exit; cannot "
                 "write it: exit 1")
      ->envname("SAGA_ENDPOINTS_FILE");
  app.add_option("--source", o.source, "source of follow-on events (default: urn:saga:<definition>)")
      ->envname("SAGA_SOURCE");
  app.add_option("--batch-max", o.batch_max, "most events committed in one transaction")
      ->envname("SAGA_BATCH_MAX")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--peer-credit", o.peer_credit,
                 "requests of one connection (with CURVE: of all connections of one client key) read and "
                 "not yet acked; beyond it their requests are dropped unanswered until acks are read")
      ->envname("SAGA_PEER_CREDIT")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
}

void add_security_options(CLI::App& app, options& o) {
  app.add_option("--curve-secret", o.curve_secret,
                 "this server's CURVE key pair (NAME.key_secret of `sagactl keygen NAME`, mode 0600): every "
                 "socket is encrypted and only --authorized-keys may connect (docs/security.md)")
      ->envname("SAGA_CURVE_SECRET")
      ->check(CLI::ExistingFile);
  app.add_option("--authorized-keys", o.authorized_keys,
                 "client keys and their grants, one line each: <key|NAME.key> <name> sources=.. types=.. "
                 "roles=operator,subscriber; re-read on SIGHUP")
      ->envname("SAGA_AUTHORIZED_KEYS")
      ->check(CLI::ExistingFile);
  app.add_option(
         "--metrics", o.metrics,
         "HOST:PORT serving /metrics (Prometheus) and /healthz over HTTP, e.g. 127.0.0.1:9464 (port 0: "
         "the kernel chooses, see --endpoints-file); loopback only unless --insecure; default: off")
      ->envname("SAGA_METRICS");
  app.add_option(
         "--console", o.console,
         "HOST:PORT serving the web console (sagas, their graphs and history, dead letters, a live tail; "
         "read-only unless --console-operator-key; JSON under /api/) over HTTP, e.g. 127.0.0.1:8080; the "
         "same HOST:PORT as --metrics: "
         "one server for both (port 0: the kernel chooses, see --endpoints-file); loopback only "
         "unless --insecure; default: off (docs/console.md)")
      ->envname("SAGA_CONSOLE");
  app.add_option("--console-operator-key", o.console_operator_key,
                 "an operator's key pair (NAME.key_secret of `sagactl keygen NAME`, mode 0600): the console "
                 "then offers abort, resolve and redrive, sent through the ingress as that key (with "
                 "--curve-secret it must be in --authorized-keys with an operator's grants); default: "
                 "read-only console (docs/console.md)")
      ->envname("SAGA_CONSOLE_OPERATOR_KEY")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure", o.insecure,
               "without --curve-secret, bind endpoints that are not loopback or ipc:// anyway, in plaintext "
               "and unauthenticated (logged at every start)")
      ->envname("SAGA_INSECURE");
}

void add_definition_options(CLI::App& app, options& o) {
  app.add_option("--definitions", o.definitions,
                 "definitions to run, by name (default: all): this program's own and those of --plugin "
                 "libraries; --list-definitions shows them")
      ->envname("SAGA_DEFINITIONS")
      ->delimiter(',');
  app.add_option("--plugin", o.plugins,
                 "shared library whose definitions are added (built with SAGA_PLUGIN against this saga "
                 "package); repeatable, in a config file: plugin = [\"a.so\", \"b.so\"]")
      ->envname("SAGA_PLUGINS")
      ->delimiter(',');
  app.add_flag("--allow-orphans", o.allow_orphans,
               "start even though unfinished sagas run on a definition version no registered definition "
               "provides (sagad refuses by default, naming how many); their events are rejected, kept as "
               "dead letters, until the sagas are migrated (sagactl migrate) or the version is registered");
  app.add_flag(
      "--list-definitions", o.list_definitions,
      "print the definitions that would run (name, with its version from 2 on: \"name v2\"; fingerprint; "
      "source: built-in or plugin path) "
      "and exit, opening no database and binding no socket");
}

}  // namespace

parsed_options parse_options(int argc, const char* const* argv, const std::string& name,
                             const std::string& about) {
  options o;
  o.name = name;
  duration_texts d{saga::format_duration(o.retention_ms), saga::format_duration(o.dedup_window_ms),
                   saga::format_duration(o.park_expiry_ms),
                   saga::format_duration(o.dead_letter_retention_ms)};

  CLI::App app{about, name};
  app.set_version_flag("--version", version_line(name), "print the version and the git revision, and exit");
  app.set_config("--config", "", "read options from this TOML/INI file (keys as the long options)");
  app.get_config_ptr()->envname("SAGA_CONFIG");
  app.add_option("--pg-schema", o.pg_schema,
                 "with a PostgreSQL --db: the schema holding sagad's tables (created when missing)")
      ->capture_default_str();
  app.add_option("--pg-stall-timeout", d.pg_stall_timeout,
                 "with a PostgreSQL --db: a transaction of this sagad idle this long (sagad stopped, paused "
                 "or cut off mid-batch) is ended by the server, releasing its sagas to the other sagad; its "
                 "commit then fails and the batch is retried (idle_in_transaction_session_timeout)")
      ->check(duration("--pg-stall-timeout"))
      ->capture_default_str();
  app.add_option(
         "--pg-relay-lease", d.pg_relay_lease,
         "with a PostgreSQL --db: one sagad at a time numbers the outbox (the relay), holding a lease "
         "in the database that it renews as it numbers; a relay that dies or stalls this long hands "
         "the numbering to another sagad")
      ->check(duration("--pg-relay-lease"))
      ->capture_default_str();
  app.add_option("--pg-relay-poll", d.pg_relay_poll,
                 "with a PostgreSQL --db: how often the relay numbers what any sagad committed (other sagad "
                 "wake it sooner with a notification after their commits: this is the fallback), and each "
                 "sagad publishes what is numbered; at most a third of --pg-relay-lease")
      ->check(duration("--pg-relay-poll"))
      ->capture_default_str();
  app.add_option("--db", o.db,
                 "SQLite database file (created when missing), or a PostgreSQL URI postgresql://… "
                 "(several sagad may share it: docs/postgres.md)")
      ->envname("SAGA_DB")
      ->capture_default_str();
  add_socket_options(app, o);
  add_security_options(app, o);
  add_store_options(app, o, d);
  app.add_option("--log-level", o.log_level, "debug, info, warn or error")
      ->envname("SAGA_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", o.log_format,
                 "text or json (one object a line) on stderr, journal (systemd's, with priorities), or "
                 "auto: journal when stderr is connected to it, else text")
      ->envname("SAGA_LOG_FORMAT")
      ->check(CLI::IsMember({"auto", "text", "json", "journal"}))
      ->capture_default_str();
  add_definition_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return {std::nullopt,
            app.exit(e) == 0 ? 0 : 2};  // --help, --version are not errors; every parse error is usage (2)
  }

  o.retention_ms = *saga::parse_duration(d.retention);
  o.dedup_window_ms = *saga::parse_duration(d.dedup);
  o.park_expiry_ms = *saga::parse_duration(d.park_expiry);
  o.dead_letter_retention_ms = *saga::parse_duration(d.dead_letter_retention);
  o.finished_retention_ms = d.retention_finished == "off" ? 0 : *saga::parse_duration(d.retention_finished);
  o.metrics_refresh_ms = *saga::parse_duration(d.metrics_refresh);
  o.pg_stall_timeout_ms = *saga::parse_duration(d.pg_stall_timeout);
  o.pg_relay_lease_ms = *saga::parse_duration(d.pg_relay_lease);
  o.pg_relay_poll_ms = *saga::parse_duration(d.pg_relay_poll);
  return {std::move(o), 0};
}

}  // namespace saga::server
