#include "saga/sqlite/reader.hpp"

#include <sqlite3.h>

#include <SQLiteCpp/Exception.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>
#include <utility>

#include "saga/sqlite/store.hpp"
#include "statement_use.hpp"

namespace saga::sqlite {

namespace {

// The prepared statements, by index into reader::statements_. Only placeholders carry values.
enum q : std::size_t {
  q_user_version,
  q_begin,
  q_commit,
  q_definitions_of,
  q_instance,
  q_history,
  q_timers_of,
  q_parked_of,
  q_parked_events,
  q_follow_on,
  q_sagas,
  q_sagas_newest,
  q_sagas_after,
  q_sagas_newest_after,
  q_sagas_in_state,
  q_sagas_in_state_newest,
  q_sagas_in_state_after,
  q_sagas_in_state_newest_after,
  q_orphans,
  q_finished_in_state,
  q_counts_by_state,
  q_definitions,
  q_definition,
  q_timer_definitions,
  q_armed_timers_of,
  q_due_count_of,
  q_outbox,
  q_last_published,
  q_dead_letters,
  q_dead_letter,
  q_totals,
  q_received,
  q_received_minutes,
  q_inbox_row,
  q_dead_letter_of_event,
  q_oldest_inbox,
  q_count_
};

// The columns of a saga_summary, then its armed timers and parked events.
#define SAGA_SUMMARY_COLUMNS                                                                 \
  "i.definition, i.key, i.state, i.version, i.fingerprint, i.created_ms, i.updated_ms,"      \
  " i.state_since_ms,"                                                                       \
  " (SELECT count(*) FROM json_each(i.timers) AS j WHERE j.value ->> 0 IS NOT NULL),"        \
  " (SELECT count(*) FROM parked AS p WHERE p.definition = i.definition AND p.key = i.key)," \
  " i.definition_version"

// The saga list (reader::sagas) in one order: `scope` every saga (ANY_SAGA) or one definition's in
// one state (IN_STATE: instances_by_state_created's range), `keyset` the first page's "1" or the
// comparison with the position a page starts after ((?10, ?11, ?12)), `order` ASC or DESC. Neither
// is under an OR, so that the query reads the range of the index it names (schema 11).
// A trace's sagas (?14): the newest ?15 history rows, newest first (rowid order is time order),
// read once into a temporary table for the whole query (no index by trace id: schema 9).
#define ANY_SAGA "(?1 IS NULL OR i.definition = ?1) AND (?2 IS NULL OR i.state = ?2)"
#define IN_STATE "i.definition = ?1 AND i.state = ?2"
#define SAGA_LIST(scope, keyset, order)                                                             \
  "SELECT " SAGA_SUMMARY_COLUMNS                                                                    \
  " FROM instances AS i"                                                                            \
  " WHERE " scope                                                                                   \
  " AND (?3 = 0 OR NOT EXISTS"                                                                      \
  "   (SELECT 1 FROM definitions AS d, json_each(d.graph, '$.terminal') AS term"                    \
  "    WHERE d.name = i.definition AND d.version = i.definition_version AND term.value = i.state))" \
  " AND (?4 IS NULL OR i.created_ms >= ?4) AND (?5 IS NULL OR i.created_ms < ?5)"                   \
  " AND (?6 IS NULL OR i.updated_ms >= ?6) AND (?7 IS NULL OR i.updated_ms < ?7)"                   \
  " AND (?8 IS NULL OR i.state_since_ms >= ?8) AND (?9 IS NULL OR i.state_since_ms < ?9)"           \
  " AND " keyset                                                                                    \
  " AND (?14 IS NULL OR (i.definition, i.key) IN (SELECT t.definition, t.key FROM"                  \
  "   (SELECT definition, key, traceparent FROM history ORDER BY id DESC LIMIT ?15) AS t"           \
  "   WHERE substr(t.traceparent, 4, 32) = ?14))"                                                   \
  " AND (?16 IS NULL OR i.definition_version <> ?16)"                                               \
  " ORDER BY i.created_ms " order ", i.definition " order ", i.key " order " LIMIT ?13"

#define OUTBOX_COLUMNS \
  "o.sequence, o.event_id, o.type, o.definition, o.key, o.payload, o.created_ms, o.published_ms"

constexpr const char* sql_of[] = {
    // q_user_version
    "PRAGMA user_version",
    // q_begin: deferred: a read transaction starts with the first SELECT and takes no lock.
    "BEGIN",
    // q_commit
    "COMMIT",
    // q_definitions_of: the instances' primary key is (definition, key); a key alone would scan
    // the table, so walk the distinct definitions (one index seek each) and look the key up in
    // each.
    "WITH RECURSIVE defs(name) AS ("
    "  SELECT min(definition) FROM instances"
    "  UNION ALL"
    "  SELECT (SELECT min(definition) FROM instances WHERE definition > defs.name) FROM defs"
    "  WHERE defs.name IS NOT NULL)"
    " SELECT name FROM defs WHERE name IS NOT NULL"
    " AND EXISTS (SELECT 1 FROM instances AS i WHERE i.definition = defs.name AND i.key = ?1)"
    " ORDER BY name",
    // q_instance
    "SELECT definition, key, state, data, version, fingerprint, correlation_id, created_ms, updated_ms,"
    " state_since_ms, definition_version FROM instances WHERE definition = ?1 AND key = ?2",
    // q_history: the saga's chain of history rows (schema 7)
    "WITH RECURSIVE " SAGA_HISTORY
    " SELECT definition, key, version, event_id, event_source, event_type, event_time,"
    " event_data, from_state, to_state, outcome, recorded_ms, outbox_first, outbox_last, sender,"
    " traceparent, tracestate, extensions, definition_version FROM history WHERE id IN (SELECT id FROM chain)"
    " ORDER BY id",
    // q_timers_of
    SAGA_TIMERS_OF_SAGA " ORDER BY 4, 3",
    // q_parked_of
    "SELECT id, definition, key, event_id, source, type, payload, parked_ms, sender FROM parked"
    " WHERE definition = ?1 AND key = ?2 ORDER BY id",
    // q_parked_events
    "SELECT id, definition, key, event_id, source, type, payload, parked_ms, sender FROM parked"
    " WHERE id > ?1 ORDER BY id LIMIT ?2",
    // q_follow_on: through the saga's history (its chain): each transition names the outbox rows
    // it wrote.
    "WITH RECURSIVE " SAGA_HISTORY " SELECT " OUTBOX_COLUMNS
    " FROM history AS h JOIN outbox_published AS o ON o.sequence BETWEEN h.outbox_first AND h.outbox_last"
    " WHERE h.id IN (SELECT id FROM chain) AND h.outbox_first IS NOT NULL ORDER BY o.sequence",
    // q_sagas: terminal states come from the stored graph (definitions.graph, JSON), so the
    // unfinished filter needs no list of states spliced into the SQL.
        SAGA_LIST(ANY_SAGA, "1", "ASC"),
    // q_sagas_newest
    SAGA_LIST(ANY_SAGA, "1", "DESC"),
    // q_sagas_after, q_sagas_newest_after: the next pages
    SAGA_LIST(ANY_SAGA, "(i.created_ms, i.definition, i.key) > (?10, ?11, ?12)", "ASC"),
    SAGA_LIST(ANY_SAGA, "(i.created_ms, i.definition, i.key) < (?10, ?11, ?12)", "DESC"),
    // q_sagas_in_state…: the same four with a definition and a state (the overview's links): its
    // sagas only are read, through instances_by_state_created (definition, state, created, key);
    // the definition is the scope's, so the position compares (created, key) (?11 is unused).
    SAGA_LIST(IN_STATE, "1", "ASC"),
    SAGA_LIST(IN_STATE, "1", "DESC"),
    SAGA_LIST(IN_STATE, "(i.created_ms, i.key) > (?10, ?12)", "ASC"),
    SAGA_LIST(IN_STATE, "(i.created_ms, i.key) < (?10, ?12)", "DESC"),
    // q_orphans: instances whose state the stored graph of their definition does not have (or
    // whose definition is not registered at all). The kept counts (schema 11) name the (definition,
    // version, state) groups that have such sagas; only their definitions' instances are read
    // (CROSS JOIN: the groups are the outer loop), so with no orphans nothing is.
    "WITH g AS (SELECT c.definition, c.definition_version, c.state FROM saga_counts AS c WHERE c.sagas > 0"
    "   AND NOT EXISTS (SELECT 1 FROM definitions AS d, json_each(d.graph, '$.states') AS s"
    "   WHERE d.name = c.definition AND d.version = c.definition_version AND s.value = c.state))"
    " SELECT " SAGA_SUMMARY_COLUMNS
    " FROM g CROSS JOIN instances AS i"
    " WHERE i.definition = g.definition AND i.definition_version = g.definition_version AND i.state = g.state"
    " ORDER BY i.definition, i.key LIMIT ?1",
    // q_finished_in_state: the store's purge_finished selection, one state at a time (through
    // instances_finished).
    "SELECT count(*), coalesce(sum((WITH RECURSIVE "
    SAGA_HISTORY_FROM(" SELECT i.last_history WHERE i.last_history IS NOT NULL")
    " SELECT count(*) FROM chain)), 0)"
    " FROM instances AS i WHERE i.definition = ?1 AND i.state = ?2 AND i.finished_ms IS NOT NULL"
    " AND i.finished_ms < ?3",
    // q_counts_by_state: kept by the store (schema 11); a group emptied keeps its row at 0
    "SELECT definition, state, sagas, definition_version FROM saga_counts WHERE sagas <> 0"
    " ORDER BY definition, definition_version, state",
    // q_definitions
    "SELECT name, version, fingerprint, graph, registered_ms FROM definitions ORDER BY name, version",
    // q_definition: one version, or the newest
    "SELECT name, version, fingerprint, graph, registered_ms FROM definitions WHERE name = ?1"
    " AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1",
    // q_timer_definitions: the definitions with armed timers, one seek of instances_due each
    SAGA_TIMER_DEFINITIONS,
    // q_armed_timers_of: one definition's, soonest first, through instances_due
    SAGA_ARMED_TIMERS_OF("(?2 IS NULL OR next_due_ms < ?2)", "(?2 IS NULL OR due < ?2)"),
    // q_due_count_of
    SAGA_DUE_TIMER_COUNT_OF,
    // q_outbox
    "SELECT " OUTBOX_COLUMNS
    " FROM outbox_published AS o WHERE o.sequence >= ?1 AND (?2 IS NULL OR o.sequence <= ?2)"
    " AND (?3 = 0 OR o.sequence > " SAGA_LAST_PUBLISHED ") ORDER BY o.sequence LIMIT ?4",
    // q_last_published: the end of the published prefix (schema 12)
    "SELECT " SAGA_LAST_PUBLISHED,
    // q_dead_letters
    "SELECT id, event_id, source, type, subject, reason, payload, created_ms, truncated, count, last_ms, "
    "sender"
    " FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2",
    // q_dead_letter
    "SELECT id, event_id, source, type, subject, reason, payload, created_ms, truncated, count, last_ms, "
    "sender"
    " FROM dead_letters WHERE id = ?1",
    // q_totals: the counts the store keeps (schema 11, and meta's kept by triggers: schema 3);
    // only the unpublished rows are counted: those after the published prefix (as many as the lag)
    "SELECT (SELECT coalesce(sum(sagas), 0) FROM saga_counts), t.inbox, t.outbox,"
    " (SELECT count(*) FROM outbox WHERE sequence > " SAGA_LAST_PUBLISHED "),"
    " (SELECT min(created_ms) FROM outbox WHERE sequence > " SAGA_LAST_PUBLISHED "),"
    " (SELECT value FROM meta WHERE key = 'dead_letter_rows'),"
    " (SELECT value FROM meta WHERE key = 'parked_rows'), t.armed_timers"
    " FROM table_rows AS t",
    // q_received: through inbox_by_received
    "SELECT (received_ms - ?1) / ?3, count(*) FROM inbox WHERE received_ms >= ?1 AND received_ms < ?2"
    " GROUP BY 1",
    // q_received_minutes: whole minutes, from the counts the store keeps (schema 11)
    "SELECT (minute - ?1) / ?3, sum(events) FROM received_minutes WHERE minute >= ?1 AND minute < ?2 GROUP BY 1",
    // q_inbox_row: the inbox's primary key
    "SELECT definition, key, ack, received_ms FROM inbox WHERE source = ?1 AND event_id = ?2",
    // q_dead_letter_of_event: through dead_letters_by_event
    "SELECT id, event_id, source, type, subject, reason, payload, created_ms, truncated, count, last_ms, "
    "sender"
    " FROM dead_letters WHERE source = ?1 AND event_id = ?2 AND event_id <> '' ORDER BY last_ms DESC, id DESC"
    " LIMIT 1",
    // q_oldest_inbox: through inbox_by_received
    "SELECT coalesce(min(received_ms), 0) FROM inbox",
};
static_assert(std::size(sql_of) == q_count_);

#undef SAGA_SUMMARY_COLUMNS
#undef ANY_SAGA
#undef IN_STATE
#undef SAGA_LIST
#undef OUTBOX_COLUMNS

using detail::guarded;
using detail::use;

saga_summary summary_of(const use& u) {
  saga_summary s;
  s.definition = u.string(0);
  s.key = u.string(1);
  s.state = u.string(2);
  s.version = u.integer(3);
  s.fingerprint = u.string(4);
  s.created_ms = u.integer(5);
  s.updated_ms = u.integer(6);
  s.state_since_ms = u.integer(7);
  s.armed_timers = u.integer(8);
  s.parked = u.integer(9);
  s.definition_version = u.integer(10);
  return s;
}

timer_record timer_of(const use& u) {
  return {u.string(0), u.string(1), u.string(2), u.integer(3), u.integer(4)};
}

parked_record parked_of(const use& u) {
  parked_record r;
  r.id = u.integer(0);
  r.definition = u.string(1);
  r.key = u.string(2);
  r.event_id = u.string(3);
  r.source = u.string(4);
  r.type = u.string(5);
  r.payload = u.string(6);
  r.parked_ms = u.integer(7);
  r.sender = u.string(8);
  return r;
}

outbox_record outbox_of(const use& u) {
  outbox_record r;
  r.sequence = u.integer(0);
  r.event_id = u.string(1);
  r.type = u.string(2);
  r.definition = u.string(3);
  r.key = u.string(4);
  r.payload = u.string(5);
  r.created_ms = u.integer(6);
  r.published_ms = u.optional_integer(7);
  return r;
}

definition_record definition_of(const use& u) {
  return {u.string(0), u.integer(1), u.string(2), u.string(3), u.integer(4)};
}

dead_letter_record dead_letter_of(const use& u) {
  dead_letter_record r;
  r.id = u.integer(0);
  r.event_id = u.string(1);
  r.source = u.string(2);
  r.type = u.string(3);
  r.subject = u.string(4);
  r.reason = u.string(5);
  r.payload = u.string(6);
  r.created_ms = u.integer(7);
  r.truncated = u.integer(8) != 0;
  r.count = u.integer(9);
  r.last_ms = u.integer(10);
  r.sender = u.string(11);
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction

reader::reader(const std::string& path, int busy_timeout_ms)
    : owned_(guarded(
          ("open " + path).c_str(),
          [&] {
            if (busy_timeout_ms < 0)
              throw std::invalid_argument("saga::sqlite::reader: busy_timeout_ms must not be negative");
            return std::make_unique<SQLite::Database>(path, SQLite::OPEN_READONLY, busy_timeout_ms);
          })),
      db_(*owned_) {
  check_schema();
}

reader::reader(SQLite::Database& shared_db) : db_(shared_db) {
  check_schema();
}

reader::~reader() {
  if (snapshot_began_) db_.tryExec("COMMIT");
}

void reader::check_schema() {
  const int version = guarded("schema_version", [&] {
    use u(prepared(q_user_version));
    u.step();
    return static_cast<int>(u.integer(0));
  });
  constexpr int known = store::current_schema;
  if (version == known) return;
  if (version == 0) throw schema_error("not a saga database (schema version 0)", version, known);
  if (version > known)
    throw schema_error("database schema version " + std::to_string(version) +
                           " is newer than this build reads (" + std::to_string(known) + ")",
                       version, known);
  throw schema_error("database schema version " + std::to_string(version) +
                         " is older than this build reads (" + std::to_string(known) +
                         "); open it with a saga::sqlite::store once to migrate",
                     version, known);
}

SQLite::Statement& reader::prepared(std::size_t which) {
  static_assert(statement_count == q_count_, "keep reader::statement_count in step with the list");
  auto& slot = statements_[which];
  if (!slot) slot = std::make_unique<SQLite::Statement>(db_, sql_of[which]);
  return *slot;
}

// ---------------------------------------------------------------------------------------------
// Snapshots

void reader::begin_snapshot() {
  if (snapshot_depth_++ > 0) return;
  try {
    // Inside the host's transaction (shared connection) its view is the snapshot.
    if (sqlite3_get_autocommit(db_.getHandle()) == 0) return;
    guarded("begin_snapshot", [&] { use(prepared(q_begin)).exec(); });
    snapshot_began_ = true;
  } catch (...) {
    --snapshot_depth_;
    throw;
  }
}

void reader::end_snapshot() noexcept {
  if (snapshot_depth_ == 0 || --snapshot_depth_ > 0) return;
  if (!snapshot_began_) return;
  snapshot_began_ = false;
  try {
    use(prepared(q_commit)).exec();
  } catch (...) {  // a read transaction has nothing to lose: roll it back instead
    db_.tryExec("ROLLBACK");
  }
}

// ---------------------------------------------------------------------------------------------
// One saga

std::vector<std::string> reader::definitions_of(std::string_view key) {
  return guarded("definitions_of", [&] {
    use u(prepared(q_definitions_of));
    u.text(1, key);
    std::vector<std::string> out;
    while (u.step()) out.push_back(u.string(0));
    return out;
  });
}

std::optional<instance_record> reader::instance(std::string_view definition, std::string_view key) {
  return guarded("instance", [&]() -> std::optional<instance_record> {
    use u(prepared(q_instance));
    u.text(1, definition).text(2, key);
    if (!u.step()) return std::nullopt;
    instance_record r;
    r.definition = u.string(0);
    r.key = u.string(1);
    r.state = u.string(2);
    r.data = u.string(3);
    r.version = u.integer(4);
    r.fingerprint = u.string(5);
    r.correlation_id = u.string(6);
    r.created_ms = u.integer(7);
    r.updated_ms = u.integer(8);
    r.state_since_ms = u.integer(9);
    r.definition_version = u.integer(10);
    return r;
  });
}

std::vector<history_record> reader::history(std::string_view definition, std::string_view key) {
  return guarded("history", [&] {
    use u(prepared(q_history));
    u.text(1, definition).text(2, key);
    std::vector<history_record> out;
    while (u.step()) {
      history_record r;
      r.definition = u.string(0);
      r.key = u.string(1);
      r.version = u.integer(2);
      r.event_id = u.string(3);
      r.event_source = u.string(4);
      r.event_type = u.string(5);
      r.event_time = u.string(6);
      r.event_data = u.string(7);
      r.from_state = u.string(8);
      r.to_state = u.string(9);
      r.outcome = u.string(10);
      r.recorded_ms = u.integer(11);
      r.outbox_first = u.optional_integer(12);
      r.outbox_last = u.optional_integer(13);
      r.sender = u.string(14);
      r.traceparent = u.string(15);
      r.tracestate = u.string(16);
      r.extensions = u.string(17);
      r.definition_version = u.integer(18);
      out.push_back(std::move(r));
    }
    return out;
  });
}

std::vector<timer_record> reader::timers(std::string_view definition, std::string_view key) {
  return guarded("timers", [&] {
    use u(prepared(q_timers_of));
    u.text(1, definition).text(2, key);
    std::vector<timer_record> out;
    while (u.step()) out.push_back(timer_of(u));
    return out;
  });
}

std::vector<parked_record> reader::parked(std::string_view definition, std::string_view key) {
  return guarded("parked", [&] {
    use u(prepared(q_parked_of));
    u.text(1, definition).text(2, key);
    std::vector<parked_record> out;
    while (u.step()) out.push_back(parked_of(u));
    return out;
  });
}

std::vector<parked_record> reader::parked_events(std::int64_t after_id, std::size_t limit) {
  return guarded("parked_events", [&] {
    use u(prepared(q_parked_events));
    u.integer(1, after_id).limit(2, limit);
    std::vector<parked_record> out;
    while (u.step()) out.push_back(parked_of(u));
    return out;
  });
}

std::vector<outbox_record> reader::follow_on_events(std::string_view definition, std::string_view key) {
  return guarded("follow_on_events", [&] {
    use u(prepared(q_follow_on));
    u.text(1, definition).text(2, key);
    std::vector<outbox_record> out;
    while (u.step()) out.push_back(outbox_of(u));
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Many sagas

std::vector<saga_summary> reader::sagas(const saga_filter& f) {
  return guarded("sagas", [&] {
    // The in-state statements take a position of their own definition only (the list's order
    // puts every other definition's before or after all of them).
    const bool in_state = f.definition && f.state && (!f.after || f.after->definition == *f.definition);
    const q first = in_state ? q_sagas_in_state : q_sagas;  // then newest, after, newest after
    const q which = static_cast<q>(first + (f.newest_first ? 1 : 0) + (f.after ? 2 : 0));
    use u(prepared(which));
    u.optional_text(1, f.definition).optional_text(2, f.state).integer(3, f.unfinished_only ? 1 : 0);
    u.optional_integer(4, f.created.from_ms).optional_integer(5, f.created.before_ms);
    u.optional_integer(6, f.updated.from_ms).optional_integer(7, f.updated.before_ms);
    u.optional_integer(8, f.state_since.from_ms).optional_integer(9, f.state_since.before_ms);
    if (f.after) {
      u.integer(10, f.after->created_ms).text(11, f.after->definition).text(12, f.after->key);
    } else {
      u.optional_integer(10, std::nullopt).optional_text(11, std::nullopt).optional_text(12, std::nullopt);
    }
    u.limit(13, f.limit).optional_text(14, f.trace_id).limit(15, f.trace_scan);
    u.optional_integer(16, f.not_on_version);
    std::vector<saga_summary> out;
    while (u.step()) out.push_back(summary_of(u));
    return out;
  });
}

std::vector<saga_summary> reader::orphaned_sagas(std::size_t limit) {
  return guarded("orphaned_sagas", [&] {
    use u(prepared(q_orphans));
    u.limit(1, limit);
    std::vector<saga_summary> out;
    while (u.step()) out.push_back(summary_of(u));
    return out;
  });
}

finished_count reader::count_finished(std::string_view definition, const std::vector<std::string>& states,
                                      std::int64_t before_ms) {
  return guarded("count_finished", [&] {
    reader_snapshot snapshot(*this);
    finished_count n;
    for (const auto& state : std::set<std::string>(states.begin(), states.end())) {
      use u(prepared(q_finished_in_state));
      u.text(1, definition).text(2, state).integer(3, before_ms);
      u.step();
      n.sagas += u.integer(0);
      n.history += u.integer(1);
    }
    return n;
  });
}

std::vector<state_count> reader::counts_by_state() {
  return guarded("counts_by_state", [&] {
    use u(prepared(q_counts_by_state));
    std::vector<state_count> out;
    while (u.step()) out.push_back({u.string(0), u.string(1), u.integer(2), u.integer(3)});
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Definitions and timers

std::vector<definition_record> reader::definitions() {
  return guarded("definitions", [&] {
    use u(prepared(q_definitions));
    std::vector<definition_record> out;
    while (u.step()) out.push_back(definition_of(u));
    return out;
  });
}

std::optional<definition_record> reader::definition(std::string_view name,
                                                    std::optional<std::int64_t> version) {
  return guarded("definition", [&]() -> std::optional<definition_record> {
    use u(prepared(q_definition));
    u.text(1, name).optional_integer(2, version);
    if (!u.step()) return std::nullopt;
    return definition_of(u);
  });
}

std::vector<std::string> reader::timer_definitions() {
  use u(prepared(q_timer_definitions));
  std::vector<std::string> out;
  while (u.step()) out.push_back(u.string(0));
  return out;
}

// The soonest `limit` of each definition's armed timers, merged: at most limit x definitions
// rows read, whatever the number of timers.
std::vector<timer_record> reader::armed_timers(std::optional<std::int64_t> due_before_ms, std::size_t limit) {
  return guarded("armed_timers", [&] {
    reader_snapshot snapshot(*this);
    std::vector<timer_record> out;
    for (const auto& definition : timer_definitions()) {
      use u(prepared(q_armed_timers_of));
      u.text(1, definition).optional_integer(2, due_before_ms).limit(3, limit);
      while (u.step()) out.push_back(timer_of(u));
    }
    const auto order = [](const timer_record& t) { return std::tie(t.due_ms, t.definition, t.key, t.name); };
    std::sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return order(a) < order(b); });
    if (out.size() > limit) out.resize(limit);
    return out;
  });
}

std::vector<std::pair<std::string, std::int64_t>> reader::due_timer_counts(std::int64_t now_ms) {
  return guarded("due_timer_counts", [&] {
    reader_snapshot snapshot(*this);
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (const auto& definition : timer_definitions()) {
      use u(prepared(q_due_count_of));
      u.text(1, definition).integer(2, now_ms);
      u.step();
      if (const auto n = u.integer(0); n > 0) out.emplace_back(definition, n);
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Outbox, dead letters, counts

std::vector<outbox_record> reader::outbox(const outbox_filter& f) {
  return guarded("outbox", [&] {
    use u(prepared(q_outbox));
    u.integer(1, f.from_sequence).optional_integer(2, f.through_sequence);
    u.integer(3, f.unpublished_only ? 1 : 0).limit(4, f.limit);
    std::vector<outbox_record> out;
    while (u.step()) out.push_back(outbox_of(u));
    return out;
  });
}

std::int64_t reader::last_published_sequence() {
  return guarded("last_published_sequence", [&] {
    use u(prepared(q_last_published));
    u.step();
    return u.integer(0);
  });
}

std::vector<dead_letter_record> reader::dead_letters(std::int64_t after_id, std::size_t limit) {
  return guarded("dead_letters", [&] {
    use u(prepared(q_dead_letters));
    u.integer(1, after_id).limit(2, limit);
    std::vector<dead_letter_record> out;
    while (u.step()) out.push_back(dead_letter_of(u));
    return out;
  });
}

std::optional<dead_letter_record> reader::dead_letter(std::int64_t id) {
  return guarded("dead_letter", [&]() -> std::optional<dead_letter_record> {
    use u(prepared(q_dead_letter));
    u.integer(1, id);
    if (!u.step()) return std::nullopt;
    return dead_letter_of(u);
  });
}

inbound_record reader::inbound(std::string_view source, std::string_view event_id) {
  return guarded("inbound", [&] {
    reader_snapshot snapshot(*this);
    inbound_record r;
    {
      use u(prepared(q_inbox_row));
      u.text(1, source).text(2, event_id);
      if (u.step())
        r.inbox = inbox_record{std::string(source), std::string(event_id), u.string(0),
                               u.string(1),         u.string(2),           u.integer(3)};
    }
    {
      use u(prepared(q_dead_letter_of_event));
      u.text(1, source).text(2, event_id);
      if (u.step()) r.dead_letter = dead_letter_of(u);
    }
    use u(prepared(q_oldest_inbox));
    u.step();
    r.oldest_inbox_ms = u.integer(0);
    return r;
  });
}

store_totals reader::totals() {
  return guarded("totals", [&] {
    use u(prepared(q_totals));
    u.step();
    store_totals t;
    t.sagas = u.integer(0);
    t.inbox = u.integer(1);
    t.outbox = u.integer(2);
    t.unpublished = u.integer(3);
    t.oldest_unpublished_ms = u.optional_integer(4);
    t.dead_letters = u.integer(5);
    t.parked = u.integer(6);
    t.armed_timers = u.integer(7);
    return t;
  });
}

std::vector<std::int64_t> reader::received_per_interval(std::int64_t from_ms, std::int64_t before_ms,
                                                        std::int64_t interval_ms) {
  if (interval_ms <= 0) throw std::invalid_argument("received_per_interval: interval_ms must be positive");
  return guarded("received_per_interval", [&] {
    const std::int64_t span = before_ms > from_ms ? before_ms - from_ms : 0;
    std::vector<std::int64_t> out(static_cast<std::size_t>(span / interval_ms + (span % interval_ms ? 1 : 0)),
                                  0);
    // Whole minutes are counted already (received_minutes); other intervals count the inbox.
    using detail::minute_ms;
    const bool minutes = from_ms >= 0 && from_ms % minute_ms == 0 && before_ms % minute_ms == 0 &&
                         interval_ms % minute_ms == 0;
    use u(prepared(minutes ? q_received_minutes : q_received));
    if (minutes)
      u.integer(1, from_ms / minute_ms).integer(2, before_ms / minute_ms).integer(3, interval_ms / minute_ms);
    else
      u.integer(1, from_ms).integer(2, before_ms).integer(3, interval_ms);
    while (u.step()) {
      const auto i = u.integer(0);
      if (i >= 0 && static_cast<std::size_t>(i) < out.size())
        out[static_cast<std::size_t>(i)] += u.integer(1);
    }
    return out;
  });
}

}  // namespace saga::sqlite
