#pragma once
// Which store --db names: a PostgreSQL connection URI (postgresql://… or postgres://…, several
// sagad may share it: docs/postgres.md) or a SQLite file (one sagad, locked by database_lock).

#include <functional>
#include <memory>
#include <string>

#include "saga/server/options.hpp"
#include "saga/store.hpp"

namespace saga::server {

// is_postgres and describe_db: saga/server/options.hpp (sagactl uses them too).

// Opens a connection of the store --db names; `replay`: a reader's connection (no background
// checkpointer). Throws startup_error naming the database (without a password).
std::unique_ptr<saga::store> open_store(const options& o, bool replay);

}  // namespace saga::server
