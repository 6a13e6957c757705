// sagactl — see and operate sagas from the command line (docs/cli.md).
//
// Reading commands read through the engine's read port (saga::reader:
// saga::sqlite::reader on the file opened read-only, WAL readers never blocking
// sagad; or, for a --db postgresql://…, saga::postgres::reader in read-only
// transactions); actions go through sagad's ingress as events, so every change
// is made by the engine in its transaction and lands in the saga's history.
// Two maintenance commands write to a SQLite database themselves: `backup` (a
// new file) and `purge` (finished sagas, in bounded transactions); on
// PostgreSQL they refuse (exit 2). `migrate-store` copies a SQLite database, sagad
// stopped, into a PostgreSQL schema (saga::postgres::bulk_load).
//
// Each subcommand is one file in src/commands/, named after it, dispatched
// from the table below. Global options --db (or $SAGA_DB), --pg-schema and
// --json are accepted before or after the subcommand. Exit codes: 0 ok; 1 not found;
// 2 usage (CLI11's parse errors included); 3 database error; 4 sagad
// unreachable or event rejected. Every error is one line on stderr.

#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "catalog.hpp"
#include "command.hpp"
#include "saga/server/build_info.hpp"

namespace {

// clang-format off
const sagactl::command command_table[] = {
    {"list",         "sagas, oldest first",                                                    sagactl::commands::list},
    {"show",         "one saga: state, data, history, timers, parked and follow-on events",    sagactl::commands::show},
    {"stats",        "counts per definition and state, queues, throughput",                    sagactl::commands::stats},
    {"outbox",       "the outbox (follow-on events), by sequence",                             sagactl::commands::outbox},
    {"dead-letters", "rejected events kept with their reason",                                 sagactl::commands::dead_letters},
    {"timers",       "armed timers, soonest first",                                            sagactl::commands::timers},
    {"definitions",  "registered definitions, due timers, orphaned instances",                 sagactl::commands::definitions},
    {"graph",        "a definition's graph (with --instance: one saga's path on it)",          sagactl::commands::graph},
    {"send",         "send one event to sagad and print its ack",                              sagactl::commands::send},
    {"abort",        "operator abort: move a saga to its definition's abort state",            sagactl::commands::abort},
    {"resolve",      "operator resolve: move a saga out of needs_attention",                   sagactl::commands::resolve},
    {"redrive",      "send a dead letter's stored event to sagad again",                       sagactl::commands::redrive},
    {"tail",         "follow published events live (until SIGINT/SIGTERM)",                   sagactl::commands::tail},
    {"backup",       "a consistent copy of the live database (SQLite online backup)",          sagactl::commands::backup},
    {"purge",        "remove finished sagas older than a cutoff, with their history",          sagactl::commands::purge},
    {"keygen",       "a CURVE key pair: NAME.key (public) and NAME.key_secret (mode 0600)",    sagactl::commands::keygen},
    {"reconcile",    "compare sagad's log with a subscriber's, or a sender's list with sagad's", sagactl::commands::reconcile},
    {"migrate",      "move a definition's running sagas onto a newer version (through sagad)",  sagactl::commands::migrate},
    {"audit",        "one saga's trail: each event in with its ack, each event out with its sequence", sagactl::commands::audit},
    {"migrate-store", "move a SQLite database into a PostgreSQL schema (sagad stopped)",     sagactl::commands::migrate_store},
};
// clang-format on

std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sagactl: see and operate sagas (reads the database; acts through sagad)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", saga::server::version_line("sagactl"),
                       "print the version and the git revision, and exit");
  // Subcommands created below inherit this: an option a subcommand does not know
  // (--db, --json) goes to the app, so both orders work.
  app.fallthrough();
  sagactl::globals globals;
  app.add_option("--db", globals.db, "the saga database: a SQLite file, or a PostgreSQL URI postgresql://…")
      ->envname("SAGA_DB")
      ->capture_default_str();
  app.add_option("--pg-schema", globals.pg_schema,
                 "with a PostgreSQL --db: the schema holding sagad's tables")
      ->capture_default_str();
  app.add_flag("--json", globals.as_json, "print one JSON document (tail: JSON lines)");

  std::vector<std::pair<CLI::App*, sagactl::run_fn>> runners;
  for (const auto& c : command_table) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    runners.emplace_back(sub, c.setup(*sub));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::cerr << "sagactl: " << first_line(e.what()) << " (see sagactl --help)\n";
    return sagactl::usage;
  }

  try {
    for (const auto& [sub, run] : runners)
      if (sub->parsed()) return run(globals);
    return sagactl::usage;  // require_subcommand(1) makes this unreachable
  } catch (const sagactl::failure& f) {
    std::cout.flush();
    std::cerr << "sagactl: " << first_line(f.what()) << '\n';
    return f.code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "sagactl: " << first_line(e.what()) << '\n';
    return sagactl::database;
  }
}
