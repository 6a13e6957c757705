#pragma once
// sagactl's subcommands. Each lives in one file under commands/, named after it: a setup
// function declares the subcommand's options on its CLI11 app and returns the function that
// runs it with the values parsed; main.cpp builds the subcommands from one table and runs the
// one that was parsed (git's builtin/ layout).
//
// A run function prints its result on stdout (one JSON document with --json), progress on
// stderr, and returns 0; any failure is thrown as sagactl::failure carrying its exit code
// (docs/cli.md): 1 not found, 2 usage, 3 database, 4 sagad unreachable or event rejected,
// 5 reconcile found differences, or migrate refused sagas.
// Any other exception is reported by main as a database error (3).

#include <cstdint>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "saga/server/options.hpp"

namespace sagactl {

// The options every subcommand accepts (before or after its name).
struct globals {
  std::string db = "saga.db";  // a SQLite file, or a PostgreSQL URI (postgresql://…)
  std::string pg_schema = saga::server::options{}.pg_schema;  // with a PostgreSQL --db; sagad's default
  bool as_json = false;
};

using run_fn = std::function<int(const globals&)>;

struct command {
  const char* name;
  const char* summary;
  run_fn (*setup)(CLI::App& cmd);
};

// Validators shared by the subcommands' options.
CLI::Validator duration_check();  // 500ms, 90s, 15m, 2h, 7d
CLI::Validator time_check();      // RFC 3339

std::int64_t wall_clock_ms();

namespace commands {
run_fn list(CLI::App& cmd);
run_fn show(CLI::App& cmd);
run_fn stats(CLI::App& cmd);
run_fn outbox(CLI::App& cmd);
run_fn dead_letters(CLI::App& cmd);
run_fn timers(CLI::App& cmd);
run_fn definitions(CLI::App& cmd);
run_fn graph(CLI::App& cmd);
run_fn send(CLI::App& cmd);
run_fn abort(CLI::App& cmd);
run_fn resolve(CLI::App& cmd);
run_fn redrive(CLI::App& cmd);
run_fn tail(CLI::App& cmd);
run_fn backup(CLI::App& cmd);
run_fn purge(CLI::App& cmd);
run_fn keygen(CLI::App& cmd);
run_fn reconcile(CLI::App& cmd);
run_fn migrate(CLI::App& cmd);
run_fn audit(CLI::App& cmd);
run_fn migrate_store(CLI::App& cmd);
}  // namespace commands

}  // namespace sagactl
