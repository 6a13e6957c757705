#include "saga/postgres/reader.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "pq.hpp"
#include "rows.hpp"
#include "schema.hpp"
#include "statements.hpp"

namespace saga::postgres {

namespace {

// The reader's statements, by index into reader_statements. Only parameters carry values; each
// is the PostgreSQL spelling of saga::sqlite::reader's statement of the same name (its comments
// say why each reads as it does).
enum rq : std::size_t {
  r_begin,
  r_commit,
  r_rollback,
  r_definitions_of,
  r_instance,
  r_history,
  r_timers_of,
  r_parked_of,
  r_parked_events,
  r_follow_on,
  r_sagas,
  r_sagas_newest,
  r_sagas_after,
  r_sagas_newest_after,
  r_sagas_in_state,
  r_sagas_in_state_newest,
  r_sagas_in_state_after,
  r_sagas_in_state_newest_after,
  r_orphans,
  r_finished_in_state,
  r_counts_by_state,
  r_definitions,
  r_definition,
  r_timer_definitions,
  r_armed_timers_of,
  r_due_count_of,
  r_outbox,
  r_last_published,
  r_dead_letters,
  r_dead_letter,
  r_totals,
  r_received,
  r_inbox_row,
  r_dead_letter_of_event,
  r_oldest_inbox,
  r_count_
};

// The columns of a saga_summary, then its armed timers (a disarmed timer's due time is JSON null)
// and parked events.
#define SAGA_PG_SUMMARY                                                                      \
  "i.definition, i.key, i.state, i.version, i.fingerprint, i.created_ms, i.updated_ms,"      \
  " i.state_since_ms,"                                                                       \
  " (SELECT count(*) FROM jsonb_each(i.timers) AS e(k, v) WHERE e.v ->> 0 IS NOT NULL),"     \
  " (SELECT count(*) FROM parked AS p WHERE p.definition = i.definition AND p.key = i.key)," \
  " i.definition_version"

// The saga list (reader::sagas) in one order: `scope` every saga (SAGA_PG_ANY) or one definition's
// in one state (SAGA_PG_IN_STATE: that definition's rows of the primary key), `keyset` the first
// page's "true" or the comparison with the position a page starts after, `order` ASC or DESC;
// neither under an OR, whatever plan a prepared statement gets. No index has the list's order here
// (schema 4 says why): the matching rows are sorted.
#define SAGA_PG_ANY "($1 IS NULL OR i.definition = $1) AND ($2 IS NULL OR i.state = $2)"
#define SAGA_PG_IN_STATE "i.definition = $1 AND i.state = $2"
#define SAGA_PG_LIST(scope, keyset, order)                                                               \
  "SELECT " SAGA_PG_SUMMARY                                                                              \
  " FROM instances AS i"                                                                                 \
  " WHERE " scope                                                                                        \
  " AND (NOT $3 OR NOT EXISTS"                                                                           \
  "   (SELECT 1 FROM definitions AS d, json_array_elements_text(d.graph::json -> 'terminal') AS term(s)" \
  "    WHERE d.name = i.definition AND d.version = i.definition_version AND term.s COLLATE \"C\" = "     \
  "i.state))"                                                                                            \
  " AND ($4 IS NULL OR i.created_ms >= $4) AND ($5 IS NULL OR i.created_ms < $5)"                        \
  " AND ($6 IS NULL OR i.updated_ms >= $6) AND ($7 IS NULL OR i.updated_ms < $7)"                        \
  " AND ($8 IS NULL OR i.state_since_ms >= $8) AND ($9 IS NULL OR i.state_since_ms < $9)"                \
  " AND " keyset                                                                                         \
  " AND ($14 IS NULL OR (i.definition, i.key) IN (SELECT t.definition, t.key FROM"                       \
  "   (SELECT definition, key, traceparent FROM history ORDER BY id DESC LIMIT $15) AS t"                \
  "   WHERE substr(t.traceparent, 4, 32) = $14))"                                                        \
  " AND ($16 IS NULL OR i.definition_version <> $16)"                                                    \
  " ORDER BY i.created_ms " order ", i.definition " order ", i.key " order " LIMIT $13"

#define SAGA_PG_OUTBOX_OF(o)                                                                \
  o ".sequence, " o ".event_id, " o ".type, " o ".definition, " o ".key, " o ".payload, " o \
    ".created_ms, " o ".published_ms"

#define SAGA_PG_DEAD_LETTER \
  "id, event_id, source, type, subject, reason, payload, created_ms, truncated, count, last_ms, sender"

// The outbox rows `o` of history row h: history names them by id (store::append_outbox's
// provisional number; a range other sagas' rows may interleave with, not the saga's own: its
// lock), and the reader shows their publication sequences, once the relay has numbered them.
#define SAGA_PG_OUTBOX_OF_HISTORY(h)                                             \
  " o.id BETWEEN " h ".outbox_first AND " h ".outbox_last AND o.definition = " h \
  ".definition"                                                                  \
  " AND o.key = " h ".key"

// The saga ($1, $2) exists: SQLite finds a saga's history from its instance row, so a history
// without an instance (never left by the store) is not read either.
#define SAGA_PG_SAGA_EXISTS(h) \
  " AND EXISTS (SELECT 1 FROM instances AS x WHERE x.definition = " h ".definition AND x.key = " h ".key)"

using detail::outbox_rows;
using detail::parked_rows;
using detail::statement;
using detail::timer_rows;

// Statements the store runs too are taken from its list (statements.hpp), under names of their
// own on this connection.
constexpr const char* store_sql(detail::q which) {
  return detail::statements[which].sql;
}

const statement reader_statements[] = {
    {"saga_reader_begin", "", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"},
    {"saga_reader_commit", "", "COMMIT"},
    {"saga_reader_rollback", "", "ROLLBACK"},
    // a loose index scan of the definitions (one seek of the primary key each), then the key in each
    {"saga_reader_definitions_of", "t",
     "WITH RECURSIVE defs(name) AS ("
     " SELECT min(definition) FROM instances"
     " UNION ALL"
     " SELECT (SELECT min(definition) FROM instances WHERE definition > defs.name) FROM defs"
     " WHERE defs.name IS NOT NULL)"
     " SELECT name FROM defs WHERE name IS NOT NULL"
     " AND EXISTS (SELECT 1 FROM instances AS i WHERE i.definition = defs.name AND i.key = $1)"
     " ORDER BY name"},
    {"saga_reader_instance", "tt",
     "SELECT definition, key, state, data, version, fingerprint, correlation_id, created_ms, updated_ms,"
     " state_since_ms, definition_version FROM instances WHERE definition = $1 AND key = $2"},
    // through history_by_saga (definition, key, id)
    {"saga_reader_history", "tt",
     "SELECT h.definition, h.key, h.version, h.event_id, h.event_source, h.event_type, h.event_time,"
     " h.event_data, h.from_state, h.to_state, h.outcome, h.recorded_ms,"
     " (SELECT min(o.sequence) FROM outbox AS o WHERE" SAGA_PG_OUTBOX_OF_HISTORY(
         "h") "),"
              " (SELECT max(o.sequence) FROM outbox AS o WHERE" SAGA_PG_OUTBOX_OF_HISTORY(
                  "h") "),"
                       " h.sender, h.traceparent, h.tracestate, h.extensions, h.definition_version FROM "
                       "history AS h"
                       " WHERE h.definition = $1 AND h.key = $2" SAGA_PG_SAGA_EXISTS("h") " ORDER BY h.id"},
    // armed ones, soonest first, then by name
    {"saga_reader_timers_of", "tt",
     "SELECT i.definition, i.key, e.name, (e.v ->> 0)::bigint, (e.v ->> 1)::bigint"
     " FROM instances AS i, jsonb_each(i.timers) AS e(name, v)"
     " WHERE i.definition = $1 AND i.key = $2 AND e.v ->> 0 IS NOT NULL ORDER BY 4, e.name COLLATE \"C\""},
    {"saga_reader_parked_of", "tt", store_sql(detail::q_parked_of)},
    // SAGA_PG_PARKED's columns (statements.hpp, which keeps its macros to itself), in read_parked's order
    {"saga_reader_parked_events", "ii",
     "SELECT id, definition, key, event_id, source, type, payload, parked_ms, sender FROM parked"
     " WHERE id > $1 ORDER BY id LIMIT $2"},
    // through the saga's history: each transition names the outbox rows it wrote
    {"saga_reader_follow_on", "tt",
     "SELECT " SAGA_PG_OUTBOX_OF("o") " FROM history AS h JOIN outbox AS o ON" SAGA_PG_OUTBOX_OF_HISTORY(
         "h") " AND o.sequence IS NOT NULL"
              " WHERE h.definition = $1 AND h.key = $2 AND h.outbox_first IS NOT NULL" SAGA_PG_SAGA_EXISTS(
                  "h") " ORDER BY o.sequence"},
    // Terminal states come from the stored graph (definitions.graph, JSON text). A trace's sagas:
    // the newest $15 history rows, newest first (id order is commit order per saga), no index by
    // trace id.
    // The first page and the next ones (after the position $10, $11, $12); then the same with a
    // definition and a state, whose position compares (created, key) ($11 unused).
    {"saga_reader_sagas", "ttbiiiiiiittitii", SAGA_PG_LIST(SAGA_PG_ANY, "true", "ASC")},
    {"saga_reader_sagas_newest", "ttbiiiiiiittitii", SAGA_PG_LIST(SAGA_PG_ANY, "true", "DESC")},
    {"saga_reader_sagas_after", "ttbiiiiiiittitii",
     SAGA_PG_LIST(SAGA_PG_ANY, "(i.created_ms, i.definition, i.key) > ($10, $11, $12)", "ASC")},
    {"saga_reader_sagas_newest_after", "ttbiiiiiiittitii",
     SAGA_PG_LIST(SAGA_PG_ANY, "(i.created_ms, i.definition, i.key) < ($10, $11, $12)", "DESC")},
    {"saga_reader_sagas_in_state", "ttbiiiiiiittitii", SAGA_PG_LIST(SAGA_PG_IN_STATE, "true", "ASC")},
    {"saga_reader_sagas_in_state_newest", "ttbiiiiiiittitii", SAGA_PG_LIST(SAGA_PG_IN_STATE, "true", "DESC")},
    {"saga_reader_sagas_in_state_after", "ttbiiiiiiittitii",
     SAGA_PG_LIST(SAGA_PG_IN_STATE, "(i.created_ms, i.key) > ($10, $12)", "ASC")},
    {"saga_reader_sagas_in_state_newest_after", "ttbiiiiiiittitii",
     SAGA_PG_LIST(SAGA_PG_IN_STATE, "(i.created_ms, i.key) < ($10, $12)", "DESC")},
    // instances whose state the stored graph of their definition version does not have (or whose
    // definition is not registered at all)
    // The kept counts (schema 4) name the (definition, version, state) groups that have such sagas:
    // only those groups' instances are read, so with no orphans nothing is.
    {"saga_reader_orphans", "i",
     "WITH c AS (SELECT definition, definition_version, state FROM " SAGA_PG_SAGA_COUNTS " AS a"
     "   GROUP BY 1, 2, 3 HAVING sum(n) > 0),"
     " g AS (SELECT * FROM c WHERE NOT EXISTS (SELECT 1 FROM definitions AS d,"
     "   json_array_elements_text(d.graph::json -> 'states') AS s(name)"
     "   WHERE d.name = c.definition AND d.version = c.definition_version AND s.name COLLATE \"C\" = "
     "c.state))"
     " SELECT " SAGA_PG_SUMMARY " FROM instances AS i JOIN g ON i.definition = g.definition"
     " AND i.definition_version = g.definition_version AND i.state = g.state"
     " ORDER BY i.definition, i.key LIMIT $1"},
    // the store's purge_finished selection, one state at a time (through instances_finished)
    {"saga_reader_finished_in_state", "tti",
     "SELECT count(*), coalesce(sum((SELECT count(*) FROM history AS h"
     "   WHERE h.definition = i.definition AND h.key = i.key)), 0)::bigint"
     " FROM instances AS i WHERE i.definition = $1 AND i.state = $2 AND i.finished_ms IS NOT NULL"
     " AND i.finished_ms < $3"},
    // Kept by the stores (schema 4): the folded counts and the changes not folded yet
    {"saga_reader_counts_by_state", "",
     "SELECT definition, state, sum(n)::bigint, definition_version FROM " SAGA_PG_SAGA_COUNTS " AS c"
     " GROUP BY definition, definition_version, state HAVING sum(n) <> 0"
     " ORDER BY definition, definition_version, state"},
    {"saga_reader_definitions", "",
     "SELECT name, version, fingerprint, graph, registered_ms FROM definitions ORDER BY name, version"},
    // one version, or the newest
    {"saga_reader_definition", "ti",
     "SELECT name, version, fingerprint, graph, registered_ms FROM definitions WHERE name = $1"
     " AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1"},
    {"saga_reader_timer_definitions", "", store_sql(detail::q_timer_definitions)},
    // One definition's armed timers due before $2 (when given), soonest first, at most $3: the $3
    // sagas with the soonest next_due_ms hold them (as the store's due_timers_of).
    {"saga_reader_armed_timers_of", "tii",
     "SELECT definition, key, name, due, generation FROM ("
     " SELECT i.definition, i.key, e.name, (e.v ->> 0)::bigint AS due, (e.v ->> 1)::bigint AS generation"
     " FROM (SELECT definition, key, timers FROM instances"
     "       WHERE definition = $1 AND next_due_ms IS NOT NULL AND ($2 IS NULL OR next_due_ms < $2)"
     "       ORDER BY next_due_ms LIMIT $3) AS i, jsonb_each(i.timers) AS e(name, v)) AS t"
     " WHERE due IS NOT NULL AND ($2 IS NULL OR due < $2) ORDER BY due, key, name COLLATE \"C\" LIMIT $3"},
    {"saga_reader_due_count_of", "ti", store_sql(detail::q_count_due_of)},
    {"saga_reader_outbox", "iibi",
     "SELECT " SAGA_PG_OUTBOX_OF(
         "o") " FROM outbox AS o WHERE o.sequence >= $1 AND ($2 IS NULL OR o.sequence <= $2)"
              " AND (NOT $3 OR o.published_ms IS NULL) ORDER BY o.sequence LIMIT $4"},
    // meta keeps it after the published rows were pruned (mark_published raises it in the same
    // statement that marks them)
    {"saga_reader_last_published", "", store_sql(detail::q_last_published)},
    {"saga_reader_dead_letters", "ii",
     "SELECT " SAGA_PG_DEAD_LETTER " FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2"},
    {"saga_reader_dead_letter", "i", "SELECT " SAGA_PG_DEAD_LETTER " FROM dead_letters WHERE id = $1"},
    // The kept counts (schema 4) as above; the unpublished rows are counted (as many as the lag),
    // and so are the dead letters and parked events (bounded by their caps).
    {"saga_reader_totals", "",
     "WITH c AS (SELECT counted, sum(n)::bigint AS n FROM"
     "  (SELECT counted, n FROM kept_counts UNION ALL SELECT counted, n FROM count_changes) AS a GROUP BY "
     "counted)"
     " SELECT coalesce((SELECT n FROM c WHERE counted = 'sagas'), 0),"
     " coalesce((SELECT n FROM c WHERE counted = 'inbox'), 0),"
     " coalesce((SELECT n FROM c WHERE counted = 'outbox'), 0),"
     " (SELECT count(*) FROM outbox WHERE published_ms IS NULL),"
     " (SELECT min(created_ms) FROM outbox WHERE published_ms IS NULL),"
     " (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM parked),"
     " coalesce((SELECT n FROM c WHERE counted = 'armed_timers'), 0)"},
    // through inbox_by_received
    {"saga_reader_received", "iii",
     "SELECT (received_ms - $1) / $3, count(*) FROM inbox WHERE received_ms >= $1 AND received_ms < $2"
     " GROUP BY 1"},
    // the inbox's primary key
    {"saga_reader_inbox_row", "tt",
     "SELECT definition, key, ack, received_ms FROM inbox WHERE source = $1 AND event_id = $2"},
    // through dead_letters_by_event
    {"saga_reader_dead_letter_of_event", "tt",
     "SELECT " SAGA_PG_DEAD_LETTER " FROM dead_letters WHERE source = $1 AND event_id = $2 AND event_id <> ''"
     " ORDER BY last_ms DESC, id DESC LIMIT 1"},
    {"saga_reader_oldest_inbox", "", "SELECT coalesce(min(received_ms), 0) FROM inbox"},
};
static_assert(std::size(reader_statements) == r_count_);

#undef SAGA_PG_SUMMARY
#undef SAGA_PG_ANY
#undef SAGA_PG_IN_STATE
#undef SAGA_PG_LIST
#undef SAGA_PG_OUTBOX_OF
#undef SAGA_PG_DEAD_LETTER
#undef SAGA_PG_SAGA_EXISTS
#undef SAGA_PG_OUTBOX_OF_HISTORY

saga_summary summary_of(const pq::result& r, int row) {
  saga_summary s;
  s.definition = r.text(row, 0);
  s.key = r.text(row, 1);
  s.state = r.text(row, 2);
  s.version = r.integer(row, 3);
  s.fingerprint = r.text(row, 4);
  s.created_ms = r.integer(row, 5);
  s.updated_ms = r.integer(row, 6);
  s.state_since_ms = r.integer(row, 7);
  s.armed_timers = r.integer(row, 8);
  s.parked = r.integer(row, 9);
  s.definition_version = r.integer(row, 10);
  return s;
}

std::vector<saga_summary> summaries(const pq::result& r) {
  std::vector<saga_summary> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(summary_of(r, i));
  return out;
}

definition_record definition_of(const pq::result& r, int row) {
  return {r.text(row, 0), r.integer(row, 1), r.text(row, 2), r.text(row, 3), r.integer(row, 4)};
}

dead_letter_record dead_letter_of(const pq::result& r, int row) {
  dead_letter_record d;
  d.id = r.integer(row, 0);
  d.event_id = r.text(row, 1);
  d.source = r.text(row, 2);
  d.type = r.text(row, 3);
  d.subject = r.text(row, 4);
  d.reason = r.text(row, 5);
  d.payload = r.text(row, 6);  // bytea: its bytes
  d.created_ms = r.integer(row, 7);
  d.truncated = r.boolean(row, 8);
  d.count = r.integer(row, 9);
  d.last_ms = r.integer(row, 10);
  d.sender = r.text(row, 11);
  return d;
}

// Whether PostgreSQL's text (in a UTF8 database) can hold `s`: no NUL byte, and valid UTF-8 (no
// overlong form, no surrogate, nothing above U+10FFFF). A value it cannot hold equals no stored
// one, so a lookup by it finds nothing (as on SQLite) instead of failing.
bool holdable(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

bool holdable(std::string_view a, std::string_view b) {
  return holdable(a) && holdable(b);
}

bool absent_or_holdable(const std::optional<std::string>& s) {
  return !s || holdable(*s);
}

}  // namespace

struct reader::impl {
  explicit impl(const options& opts) : conn(detail::connect(opts)), schema(opts.schema) {
    conn.exec("open", "SET search_path TO " + conn.quote_identifier(schema));
    conn.exec("open", "SET default_transaction_read_only = on");
    check_schema();
    for (const auto& s : reader_statements) conn.prepare(s.name, s.types, s.sql);
  }

  // Read as it is: never created or migrated here.
  void check_schema() {
    constexpr int known = store::current_schema;
    const int version = detail::schema_version(conn);
    const std::string which = "schema \"" + schema + "\"";
    if (version == known) return;
    if (version == 0) throw store_error(which + " holds no saga tables (no schema_version table)");
    if (version > known)
      throw store_error(which + " has version " + std::to_string(version) +
                        ", newer than this build reads (" + std::to_string(known) + ")");
    throw store_error(which + " has version " + std::to_string(version) + ", older than this build reads (" +
                      std::to_string(known) + "): open it with a saga::postgres::store once to migrate it");
  }

  pq::result run(const char* operation, rq which, const pq::params& p = {}) {
    return conn.run(operation, reader_statements[which].name, p);
  }

  pq::connection conn;
  std::string schema;
  int snapshot_depth = 0;
  bool snapshot_began = false;  // the outermost begin_snapshot() opened a transaction
};

reader::reader(const options& opts) : impl_(std::make_unique<impl>(opts)) {}

reader::~reader() {
  if (impl_->snapshot_began) {
    try {
      impl_->run("end_snapshot", r_rollback);
    } catch (...) {  // the connection closes anyway
    }
  }
}

const std::string& reader::schema() const {
  return impl_->schema;
}

// ---------------------------------------------------------------------------------------------
// Snapshots

void reader::begin_snapshot() {
  if (impl_->snapshot_depth++ > 0) return;
  try {
    impl_->run("begin_snapshot", r_begin);
    impl_->snapshot_began = true;
  } catch (...) {
    --impl_->snapshot_depth;
    throw;
  }
}

void reader::end_snapshot() noexcept {
  if (impl_->snapshot_depth == 0 || --impl_->snapshot_depth > 0) return;
  if (!impl_->snapshot_began) return;
  impl_->snapshot_began = false;
  try {
    // COMMIT of a transaction a failed read left aborted rolls it back: either way it ends.
    impl_->run("end_snapshot", r_commit);
  } catch (...) {
    try {
      impl_->run("end_snapshot", r_rollback);
    } catch (...) {  // no transaction, or no connection: nothing is left open
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One saga

std::vector<std::string> reader::definitions_of(std::string_view key) {
  if (!holdable(key)) return {};
  const auto r = impl_->run("definitions_of", r_definitions_of, pq::params().text(key));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

std::optional<instance_record> reader::instance(std::string_view definition, std::string_view key) {
  if (!holdable(definition, key)) return std::nullopt;
  const auto r = impl_->run("instance", r_instance, pq::params().text(definition).text(key));
  if (r.rows() == 0) return std::nullopt;
  instance_record i;
  i.definition = r.text(0, 0);
  i.key = r.text(0, 1);
  i.state = r.text(0, 2);
  i.data = r.text(0, 3);
  i.version = r.integer(0, 4);
  i.fingerprint = r.text(0, 5);
  i.correlation_id = r.text(0, 6);
  i.created_ms = r.integer(0, 7);
  i.updated_ms = r.integer(0, 8);
  i.state_since_ms = r.integer(0, 9);
  i.definition_version = r.integer(0, 10);
  return i;
}

std::vector<history_record> reader::history(std::string_view definition, std::string_view key) {
  if (!holdable(definition, key)) return {};
  const auto r = impl_->run("history", r_history, pq::params().text(definition).text(key));
  std::vector<history_record> out;
  for (int i = 0; i < r.rows(); ++i) {
    history_record h;
    h.definition = r.text(i, 0);
    h.key = r.text(i, 1);
    h.version = r.integer(i, 2);
    h.event_id = r.text(i, 3);
    h.event_source = r.text(i, 4);
    h.event_type = r.text(i, 5);
    h.event_time = r.text(i, 6);
    h.event_data = r.text(i, 7);
    h.from_state = r.text(i, 8);
    h.to_state = r.text(i, 9);
    h.outcome = r.text(i, 10);
    h.recorded_ms = r.integer(i, 11);
    h.outbox_first = r.optional_integer(i, 12);
    h.outbox_last = r.optional_integer(i, 13);
    h.sender = r.text(i, 14);
    h.traceparent = r.text(i, 15);
    h.tracestate = r.text(i, 16);
    h.extensions = r.text(i, 17);
    h.definition_version = r.integer(i, 18);
    out.push_back(std::move(h));
  }
  return out;
}

std::vector<timer_record> reader::timers(std::string_view definition, std::string_view key) {
  if (!holdable(definition, key)) return {};
  return timer_rows(impl_->run("timers", r_timers_of, pq::params().text(definition).text(key)));
}

std::vector<parked_record> reader::parked(std::string_view definition, std::string_view key) {
  if (!holdable(definition, key)) return {};
  return parked_rows(impl_->run("parked", r_parked_of, pq::params().text(definition).text(key)));
}

std::vector<parked_record> reader::parked_events(std::int64_t after_id, std::size_t limit) {
  return parked_rows(
      impl_->run("parked_events", r_parked_events, pq::params().integer(after_id).limit(limit)));
}

std::vector<outbox_record> reader::follow_on_events(std::string_view definition, std::string_view key) {
  if (!holdable(definition, key)) return {};
  return outbox_rows(impl_->run("follow_on_events", r_follow_on, pq::params().text(definition).text(key)));
}

// ---------------------------------------------------------------------------------------------
// Many sagas

// A position holding a value PostgreSQL cannot hold (never one a page returned) is after nothing
// it can find.
std::vector<saga_summary> reader::sagas(const saga_filter& f) {
  if (!absent_or_holdable(f.definition) || !absent_or_holdable(f.state) || !absent_or_holdable(f.trace_id) ||
      (f.after && !holdable(f.after->definition, f.after->key)))
    return {};
  pq::params p;
  p.optional_text(f.definition).optional_text(f.state).boolean(f.unfinished_only);
  p.optional_integer(f.created.from_ms).optional_integer(f.created.before_ms);
  p.optional_integer(f.updated.from_ms).optional_integer(f.updated.before_ms);
  p.optional_integer(f.state_since.from_ms).optional_integer(f.state_since.before_ms);
  if (f.after) {
    p.integer(f.after->created_ms).text(f.after->definition).text(f.after->key);
  } else {
    p.optional_integer(std::nullopt).optional_text(std::nullopt).optional_text(std::nullopt);
  }
  p.limit(f.limit).optional_text(f.trace_id).limit(f.trace_scan);
  p.optional_integer(f.not_on_version);
  // The in-state statements take a position of their own definition only (the list's order puts
  // every other definition's before or after all of them).
  const bool in_state = f.definition && f.state && (!f.after || f.after->definition == *f.definition);
  const auto which = static_cast<decltype(r_sagas)>((in_state ? r_sagas_in_state : r_sagas) +
                                                    (f.newest_first ? 1 : 0) + (f.after ? 2 : 0));
  return summaries(impl_->run("sagas", which, p));
}

std::vector<saga_summary> reader::orphaned_sagas(std::size_t limit) {
  return summaries(impl_->run("orphaned_sagas", r_orphans, pq::params().limit(limit)));
}

finished_count reader::count_finished(std::string_view definition, const std::vector<std::string>& states,
                                      std::int64_t before_ms) {
  reader_snapshot snapshot(*this);
  finished_count n;
  if (!holdable(definition)) return n;
  for (const auto& state : std::set<std::string>(states.begin(), states.end())) {
    if (!holdable(state)) continue;
    const auto r = impl_->run("count_finished", r_finished_in_state,
                              pq::params().text(definition).text(state).integer(before_ms));
    n.sagas += r.integer(0, 0);
    n.history += r.integer(0, 1);
  }
  return n;
}

std::vector<state_count> reader::counts_by_state() {
  const auto r = impl_->run("counts_by_state", r_counts_by_state);
  std::vector<state_count> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), r.text(i, 1), r.integer(i, 2), r.integer(i, 3)});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Definitions and timers

std::vector<definition_record> reader::definitions() {
  const auto r = impl_->run("definitions", r_definitions);
  std::vector<definition_record> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(definition_of(r, i));
  return out;
}

std::optional<definition_record> reader::definition(std::string_view name,
                                                    std::optional<std::int64_t> version) {
  if (!holdable(name)) return std::nullopt;
  const auto r = impl_->run("definition", r_definition, pq::params().text(name).optional_integer(version));
  if (r.rows() == 0) return std::nullopt;
  return definition_of(r, 0);
}

std::vector<std::string> reader::timer_definitions() {
  const auto r = impl_->run("timer_definitions", r_timer_definitions);
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

// The soonest `limit` of each definition's armed timers, merged: at most limit x definitions rows
// read, whatever the number of timers.
std::vector<timer_record> reader::armed_timers(std::optional<std::int64_t> due_before_ms, std::size_t limit) {
  reader_snapshot snapshot(*this);
  std::vector<timer_record> out;
  for (const auto& definition : timer_definitions()) {
    auto rows =
        timer_rows(impl_->run("armed_timers", r_armed_timers_of,
                              pq::params().text(definition).optional_integer(due_before_ms).limit(limit)));
    std::move(rows.begin(), rows.end(), std::back_inserter(out));
  }
  const auto order = [](const timer_record& t) { return std::tie(t.due_ms, t.definition, t.key, t.name); };
  std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return order(a) < order(b); });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> reader::due_timer_counts(std::int64_t now_ms) {
  reader_snapshot snapshot(*this);
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (const auto& definition : timer_definitions()) {
    const auto r =
        impl_->run("due_timer_counts", r_due_count_of, pq::params().text(definition).integer(now_ms));
    if (const auto n = r.integer(0, 0); n > 0) out.emplace_back(definition, n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Outbox, dead letters, counts

std::vector<outbox_record> reader::outbox(const outbox_filter& f) {
  pq::params p;
  p.integer(f.from_sequence).optional_integer(f.through_sequence).boolean(f.unpublished_only).limit(f.limit);
  return outbox_rows(impl_->run("outbox", r_outbox, p));
}

std::int64_t reader::last_published_sequence() {
  return impl_->run("last_published_sequence", r_last_published).integer(0, 0);
}

std::vector<dead_letter_record> reader::dead_letters(std::int64_t after_id, std::size_t limit) {
  const auto r = impl_->run("dead_letters", r_dead_letters, pq::params().integer(after_id).limit(limit));
  std::vector<dead_letter_record> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(dead_letter_of(r, i));
  return out;
}

std::optional<dead_letter_record> reader::dead_letter(std::int64_t id) {
  const auto r = impl_->run("dead_letter", r_dead_letter, pq::params().integer(id));
  if (r.rows() == 0) return std::nullopt;
  return dead_letter_of(r, 0);
}

inbound_record reader::inbound(std::string_view source, std::string_view event_id) {
  reader_snapshot snapshot(*this);
  inbound_record out;
  if (holdable(source, event_id)) {
    const auto inbox = impl_->run("inbound", r_inbox_row, pq::params().text(source).text(event_id));
    if (inbox.rows() > 0)
      out.inbox = inbox_record{std::string(source), std::string(event_id), inbox.text(0, 0),
                               inbox.text(0, 1),    inbox.text(0, 2),      inbox.integer(0, 3)};
    const auto dead = impl_->run("inbound", r_dead_letter_of_event, pq::params().text(source).text(event_id));
    if (dead.rows() > 0) out.dead_letter = dead_letter_of(dead, 0);
  }
  out.oldest_inbox_ms = impl_->run("inbound", r_oldest_inbox).integer(0, 0);
  return out;
}

store_totals reader::totals() {
  const auto r = impl_->run("totals", r_totals);
  store_totals t;
  t.sagas = r.integer(0, 0);
  t.inbox = r.integer(0, 1);
  t.outbox = r.integer(0, 2);
  t.unpublished = r.integer(0, 3);
  t.oldest_unpublished_ms = r.optional_integer(0, 4);
  t.dead_letters = r.integer(0, 5);
  t.parked = r.integer(0, 6);
  t.armed_timers = r.integer(0, 7);
  return t;
}

std::vector<std::int64_t> reader::received_per_interval(std::int64_t from_ms, std::int64_t before_ms,
                                                        std::int64_t interval_ms) {
  if (interval_ms <= 0) throw std::invalid_argument("received_per_interval: interval_ms must be positive");
  const std::int64_t span = before_ms > from_ms ? before_ms - from_ms : 0;
  std::vector<std::int64_t> out(static_cast<std::size_t>(span / interval_ms + (span % interval_ms ? 1 : 0)),
                                0);
  const auto r = impl_->run("received_per_interval", r_received,
                            pq::params().integer(from_ms).integer(before_ms).integer(interval_ms));
  for (int row = 0; row < r.rows(); ++row) {
    const auto i = r.integer(row, 0);
    if (i >= 0 && static_cast<std::size_t>(i) < out.size())
      out[static_cast<std::size_t>(i)] += r.integer(row, 1);
  }
  return out;
}

}  // namespace saga::postgres
