#pragma once
// saga::server::options — how a daemon built on saga::server runs (sagad's
// options), and the one parser every such daemon shares, so that they all
// have sagad's command line, config file, SAGA_* variables and --help
// (docs/operations.md, docs/run-your-workflow.md).
//
// Precedence: the command line wins over the environment (SAGA_DB, …), which
// wins over the config file (--config FILE or SAGA_CONFIG; TOML or INI, keys
// named like the long options).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "saga/clock.hpp"
#include "saga/store.hpp"

namespace saga::server {

// The endpoints actually bound (a port 0 or "*" resolved).
struct endpoints {
  std::string ingress, publish, replay;
  std::string metrics;  // "http://HOST:PORT" of --metrics; empty when off
  std::string console;  // "http://HOST:PORT" of --console; empty when off
};

// Whether a --db names a PostgreSQL database (a URI postgresql://… or postgres://…) rather than a
// SQLite file.
bool is_postgres(const std::string& db);
// --db for messages: a URI's password left out (postgresql://user:secret@host/db ->
// postgresql://user@host/db).
std::string describe_db(const std::string& db);

struct options {
  std::string name = "sagad";                 // the program's name in its log lines
  std::string db = "saga.db";                 // a SQLite file, or a PostgreSQL URI (postgresql://…)
  std::string pg_schema = "saga";             // with a PostgreSQL --db: the schema holding the tables
  std::int64_t pg_stall_timeout_ms = 10'000;  // ... and saga::postgres::options::stall_timeout_ms
  // ... the relay lease (saga::relay_options::lease_ms) and how often each sagad numbers (when it
  // holds the lease) and publishes what other sagad committed, at most a third of the lease: the
  // fallback, since other sagad's commits wake the relay at once (docs/postgres.md)
  std::int64_t pg_relay_lease_ms = 5'000;
  std::int64_t pg_relay_poll_ms = 50;
  std::string ingress = "tcp://127.0.0.1:5570";
  std::string publish = "tcp://127.0.0.1:5571";
  std::string replay = "tcp://127.0.0.1:5572";
  // Once the three sockets are bound, their endpoints (a port "*" resolved)
  // are written here as one JSON object, atomically; removed when the server
  // stops. Empty: no file. (docs/operations.md, "--endpoints-file")
  std::string endpoints_file;
  std::string source;  // empty: urn:saga:<definition>
  // CURVE (docs/security.md): the server's key pair (a NAME.key_secret file of
  // `sagactl keygen`) and the file of client keys with their grants (re-read on
  // SIGHUP). Both or neither. Without them only loopback and ipc:// endpoints
  // are bound, unless `insecure`.
  std::string curve_secret;
  std::string authorized_keys;
  bool insecure = false;
  std::size_t batch_max = 1024;
  std::string synchronous = "FULL";
  // With synchronous FULL on SQLite, where the write-ahead log's fsync runs: "thread" (on a thread
  // of its own while the loop commits the next batch; acks and follow-on events wait for it) or
  // "commit" (inside each commit, on the loop thread). docs/reliability.md.
  std::string sync_log = "thread";
  std::int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  std::int64_t dedup_window_ms = 7LL * 24 * 3600 * 1000;
  std::size_t park_limit = 64;
  std::int64_t park_total_limit = 100'000;  // parked events of all sagas, per CURVE key (one pool without)
  std::int64_t park_expiry_ms = 24LL * 3600 * 1000;
  std::int64_t dead_letter_retention_ms = 30LL * 24 * 3600 * 1000;
  std::int64_t dead_letter_max = 100'000;  // dead letters kept, per CURVE key (one pool without)
  std::int64_t finished_retention_ms = 0;  // 0: finished sagas are kept
  std::size_t peer_credit = 10'000;        // requests not yet acked, per connection (CURVE: per key)
  int storage_retries = 3;                 // retries of a whole batch before bisecting it
  std::int64_t storage_backoff_ms = 50;    // first pause; doubles up to 5 s
  std::string log_level = "info";          // trace, debug, info, warn, error (start_logging)
  std::string log_format = "auto";         // auto, text, json, journal (start_logging)
  // --metrics: HOST:PORT serving /metrics and /healthz over HTTP (port 0: one the kernel
  // chooses, in the endpoints file); empty: off. Loopback only unless `insecure`.
  std::string metrics;
  std::int64_t metrics_refresh_ms = 30'000;  // the database gauges are read at most this often
  // --console: HOST:PORT serving the web console over HTTP (docs/console.md); the same
  // HOST:PORT as `metrics`: one server serves both. Empty: off. Loopback only unless `insecure`.
  std::string console;
  // --console-operator-key: an operator's NAME.key_secret; the console's actions (abort, resolve,
  // redrive) are on and reach the ingress as that key. Empty: a read-only console.
  std::string console_operator_key;
  // The definitions to run, by name, whatever their source (the program's
  // own, added with server::add, or a plugin's); empty: every one.
  std::vector<std::string> definitions;
  // Shared libraries whose definitions are added (server::load_plugins; saga/plugin.hpp).
  std::vector<std::string> plugins;
  // server::main prints the definitions that would run and returns, touching no database or socket.
  bool list_definitions = false;
  // Start although unfinished sagas run on a definition version no registered definition provides
  // (engine::unserved_versions); their events are rejected until migrated.
  bool allow_orphans = false;

  // Embedding and tests: wraps the store the engine writes through (fault
  // injection); called once, before the loop starts.
  std::function<std::unique_ptr<saga::store>(saga::store&)> wrap_store;
  // The clock the engine and the relay read (tests: a manual clock); null: the system's.
  const saga::clock* clock = nullptr;
  // Called once every socket is bound, before the loop starts.
  std::function<void(const endpoints&)> on_ready;
};

// Thrown before the loop starts when the server cannot run: the database is
// locked by another sagad, a port is taken, the schema is newer, a definition
// is unknown, provided twice or refused by the engine's checks, the
// endpoints file cannot be written.
class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What parse_options found: the options to run with, or else the exit code
// the program is to return now (0 after --help or --version, 2 after bad options; the
// help or the reason is already printed).
struct parsed_options {
  std::optional<options> opts;
  int exit_code = 0;
};

// Reads the command line, the config file and the SAGA_* variables. `name`
// becomes options::name; `about` heads --help (say which definitions the
// program is built with).
parsed_options parse_options(int argc, const char* const* argv, const std::string& name,
                             const std::string& about);

}  // namespace saga::server
