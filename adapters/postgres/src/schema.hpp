#pragma once
// Private to adapters/postgres: the store's tables and their migrations. Not installed.

#include <string>

#include "pq.hpp"

namespace saga::postgres {
struct options;
}

namespace saga::postgres::detail {

// The kept counts (schema 4) computed anew from the rows: the migration that adds them, and a bulk
// load after it filled the tables, run it. The change rows are folded into nothing: the counts
// start from the rows.
#define SAGA_PG_RECOUNT                                                                                  \
  "DELETE FROM count_changes;"                                                                           \
  " DELETE FROM kept_counts;"                                                                            \
  " INSERT INTO kept_counts (counted, definition, definition_version, state, n)"                         \
  "   SELECT 'sagas', definition, definition_version, state, count(*) FROM instances GROUP BY 2, 3, 4;"  \
  " INSERT INTO kept_counts (counted, definition, definition_version, state, n) VALUES"                  \
  "   ('inbox', '', 0, '', (SELECT count(*) FROM inbox)),"                                               \
  "   ('outbox', '', 0, '', (SELECT count(*) FROM outbox)),"                                             \
  "   ('armed_timers', '', 0, '', (SELECT count(*) FROM instances AS i, jsonb_each(i.timers) AS e(k, v)" \
  "     WHERE i.next_due_ms IS NOT NULL AND e.v ->> 0 IS NOT NULL));"

// The saga counts (schema 4) as rows (definition, definition_version, state, n): the folded
// counts and the change rows not folded yet, to be summed by group.
#define SAGA_PG_SAGA_COUNTS                                                                     \
  "(SELECT definition, definition_version, state, n FROM kept_counts WHERE counted = 'sagas'"   \
  " UNION ALL SELECT definition, definition_version, state, n FROM count_changes WHERE counted" \
  " = 'sagas')"

// A connection for `opts` (the store's or the reader's): std::invalid_argument when its schema
// name is empty or longer than PostgreSQL keeps (63 bytes: two long names would meet).
pq::connection connect(const options& opts);

// The version recorded in the connection's schema (0 when it holds no schema_version table: new).
// The connection's search_path must be that schema.
int schema_version(pq::connection& c);

// Creates the schema (its quoted name: `quoted`) when missing and brings its tables to
// store::current_schema, in one transaction under an advisory lock; a newer version is refused
// with saga::store_error naming `schema`.
void migrate(pq::connection& c, const std::string& schema, const std::string& quoted);

}  // namespace saga::postgres::detail
