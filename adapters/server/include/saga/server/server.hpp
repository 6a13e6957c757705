#pragma once
// saga::server::server — sagad as a library: a daemon of one's own is a main
// of about fifteen lines over it (docs/run-your-workflow.md):
//
//   int main(int argc, char** argv) {
//     auto parsed = saga::server::parse_options(argc, argv, "claimsd", "claimsd: runs insurance claims");
//     if (!parsed.opts) return parsed.exit_code;  // --help: 0, bad options: 2
//     saga::server::server server(*parsed.opts);
//     server.add(claims::insurance_claim());
//     return server.main();  // --plugin, --list-definitions, SIGTERM; exit 0 or 1
//   }
//
// What it runs: the ingress, events and replay sockets, the engine on one
// SQLite database, the outbox relay, timers and pruning. The loop thread owns
// the ingress and events sockets and the writer connection and runs the
// loop's named parts (src/loop.cpp): the ingress pump reads a batch; the
// committer commits it and acks it only after the commit (retrying storage
// failures, then bisecting, never blocking the loop); the publisher publishes
// what the commit wrote; the ticker sends the heartbeat, fires due timers,
// expires parked events and prunes, each in bounded steps. Replay is served
// on a thread of its own with its own connection. The database file itself is
// locked (flock) while run() runs: a second server on it refuses to start.
//
// Definitions: add() offers the program's own (its "built-in" ones, e.g. the
// shipped saga::definitions), load_plugins() those of options::plugins.
// options::definitions picks among all of them by name (empty: every one);
// a name to run that two sources provide, or that no source provides, refuses
// the start.
//
// Thread-safety: one thread calls add(), load_plugins() and run(); `stop`
// may be set from any thread or a signal handler.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "saga/definition.hpp"
#include "saga/server/options.hpp"

namespace saga::server {

class server {
 public:
  explicit server(options o);

  // Offers a definition; `source` says where it comes from in
  // --list-definitions and in refusals ("built-in", "plugin /path/lib.so").
  // Throws std::invalid_argument on a null definition.
  void add(std::shared_ptr<const saga::definition> d, std::string source = "built-in");
  void add(const std::vector<std::shared_ptr<const saga::definition>>& ds,
           const std::string& source = "built-in");

  // Loads every library of options::plugins (saga::server::load_plugin: a
  // crashing plugin is refused, not fatal) and adds its definitions. Throws
  // plugin_error with one line. Call before any thread starts: it forks.
  void load_plugins();

  struct listed {
    std::string name, fingerprint, source;
    std::int64_t version = 1;
  };
  // The definitions run() would register, in the order offered. Throws
  // startup_error: a name of options::definitions that nothing provides, or
  // a name to run that two sources provide.
  std::vector<listed> definitions() const;

  // Runs until `stop` becomes true; then stops taking events, tries once more
  // to commit and ack the batch in hand, publishes what is committed and
  // returns. Throws startup_error when it cannot start (nothing is bound
  // then, or everything bound is released again).
  void run(const std::atomic<bool>& stop);

  // A daemon's main: logs to stderr at options::log_level, loads the plugins,
  // answers --list-definitions, stops on SIGTERM/SIGINT and runs. Returns the
  // exit code: 0 when stopped by a signal (or after the list), 1 when it could
  // not start or failed, with the reason as the last line on stderr.
  int main();

  const saga::server::options& opts() const { return options_; }

 private:
  struct offered {
    std::shared_ptr<const saga::definition> definition;
    std::string source;
  };
  std::vector<offered> selected() const;

  saga::server::options options_;
  std::vector<offered> offered_;
};

// Logs as sagad does, through spdlog's default logger named options::name, at
// options::log_level, in options::log_format: "text" on stderr ("<time> <level>
// <message>"), "json" on stderr (one object a line: time, level, logger,
// message), "journal" (systemd's journal, the level as its priority) or "auto":
// the journal when stderr is connected to it (stderr_is_journal()), else text.
void start_logging(const options& o);
// Whether stderr is the journal's stream: $JOURNAL_STREAM names its device and inode (systemd.exec(5)).
bool stderr_is_journal();

// Installs SIGTERM and SIGINT handlers that set the returned flag (once per
// process; later calls return the same flag).
const std::atomic<bool>& stop_on_signals();

}  // namespace saga::server
