#pragma once
// Which store --db names: a PostgreSQL connection URI (postgresql://… or postgres://…, several
// sagad may share it: docs/postgres.md) or a SQLite file (one sagad, locked by database_lock).

#include <functional>
#include <memory>
#include <string>

#include "saga/reader.hpp"
#include "saga/server/options.hpp"
#include "saga/store.hpp"

namespace saga::server {

// is_postgres and describe_db: saga/server/options.hpp (sagactl uses them too).

// SQLite at synchronous FULL with --sync-log thread: the writer commits at NORMAL and sagad syncs
// its log on a thread of its own (log_syncer.hpp) before acking.
bool syncs_log_apart(const options& o);

// Opens a connection of the store --db names; `replay`: a reader's connection (no background
// checkpointer). Throws startup_error naming the database (without a password).
std::unique_ptr<saga::store> open_store(const options& o, bool replay);
// A read-only connection (saga::reader) to the same database: the --metrics database gauges.
// Throws saga::store_error (the caller keeps serving its last gauges and tries again later).
std::unique_ptr<saga::reader> open_reader(const options& o);

}  // namespace saga::server
