#include "store_factory.hpp"

#include <regex>

#include "saga/postgres/reader.hpp"
#include "saga/postgres/store.hpp"
#include "saga/server/server.hpp"
#include "saga/sqlite/reader.hpp"
#include "saga/sqlite/store.hpp"

namespace saga::server {

bool is_postgres(const std::string& db) {
  return db.starts_with("postgresql://") || db.starts_with("postgres://");
}

std::string describe_db(const std::string& db) {
  if (!is_postgres(db)) return db;
  // scheme://user:password@host… -> scheme://user@host…; …?password=secret&… -> …?password=***&…
  static const std::regex password(R"(^(postgres(?:ql)?://[^:@/]*):[^@/]*@)");
  static const std::regex parameter(R"(([?&]password=)[^&]*)");
  return std::regex_replace(std::regex_replace(db, password, "$1@", std::regex_constants::format_first_only),
                            parameter, "$1***");
}

bool syncs_log_apart(const options& o) {
  return !is_postgres(o.db) && o.synchronous == "FULL" && o.sync_log == "thread";
}

std::unique_ptr<saga::store> open_store(const options& o, bool replay) {
  try {
    if (is_postgres(o.db)) {
      saga::postgres::options po;
      po.conninfo = o.db;
      po.schema = o.pg_schema;
      po.stall_timeout_ms = o.pg_stall_timeout_ms;
      return std::make_unique<saga::postgres::store>(po);
    }
    saga::sqlite::options so;
    so.path = o.db;
    so.synchronous = syncs_log_apart(o) ? "NORMAL" : o.synchronous;  // FULL's sync: log_syncer
    so.background_checkpoint = !replay;  // a reader never writes: the writer's checkpointer does
    // Replay reads the outbox in sequence order, each page once: SQLite's default 2 MiB cache
    // serves it, where the writer's 32 MiB would fill with a catching-up subscriber's pages.
    if (replay) so.page_cache_kib = 2 * 1024;
    return std::make_unique<saga::sqlite::store>(so);
  } catch (const std::exception& e) {
    throw startup_error("database " + describe_db(o.db) + (replay ? " (replay connection)" : "") + ": " +
                        e.what());
  }
}

std::unique_ptr<saga::reader> open_reader(const options& o) {
  if (is_postgres(o.db)) {
    saga::postgres::options po;
    po.conninfo = o.db;
    po.schema = o.pg_schema;
    return std::make_unique<saga::postgres::reader>(po);
  }
  return std::make_unique<saga::sqlite::reader>(o.db);
}

}  // namespace saga::server
