#include "saga/sqlite/store.hpp"
#include "saga/sqlite/wal_buffer.hpp"

#include <pthread.h>
#include <sqlite3.h>
#include <sys/mman.h>

#include <SQLiteCpp/Exception.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/codec.hpp"
#include "statement_use.hpp"

namespace saga::sqlite {

namespace {

// Schema 1. Each migration brings the database from the previous version to `to` and sets
// user_version in the same transaction, so a crash leaves either the old or the new schema.
struct migration {
  int to;
  const char* sql;
};

constexpr migration migrations[] = {
    {1, R"sql(
CREATE TABLE instances (
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  state TEXT NOT NULL,
  data TEXT NOT NULL,
  version INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  correlation_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  state_since_ms INTEGER NOT NULL,
  PRIMARY KEY (definition, key)
) WITHOUT ROWID;

CREATE TABLE history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  version INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  event_source TEXT NOT NULL,
  event_type TEXT NOT NULL,
  event_time TEXT NOT NULL,
  event_data TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  outcome TEXT NOT NULL,
  recorded_ms INTEGER NOT NULL
);
CREATE INDEX history_by_saga ON history (definition, key, id);

CREATE TABLE inbox (
  source TEXT NOT NULL,
  event_id TEXT NOT NULL,
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  ack TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
CREATE INDEX inbox_by_received ON inbox (received_ms);

-- AUTOINCREMENT: a sequence is never reused, even after the newest rows were pruned.
CREATE TABLE outbox (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  published_ms INTEGER
);
-- The relay's work list stays small however long the retained log is.
CREATE INDEX outbox_unpublished ON outbox (sequence) WHERE published_ms IS NULL;
CREATE INDEX outbox_by_saga ON outbox (definition, key);

CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  subject TEXT NOT NULL,
  reason TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);

-- A disarmed timer keeps its row with due_ms NULL so that re-arming continues the generation
-- count (timer event ids are derived from it and must not repeat).
CREATE TABLE timers (
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  due_ms INTEGER,
  generation INTEGER NOT NULL,
  PRIMARY KEY (definition, key, name)
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (due_ms) WHERE due_ms IS NOT NULL;

CREATE TABLE parked (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  definition TEXT NOT NULL,
  key TEXT NOT NULL,
  event_id TEXT NOT NULL,
  source TEXT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  parked_ms INTEGER NOT NULL
);
CREATE INDEX parked_by_saga ON parked (definition, key, id);

CREATE TABLE definitions (
  name TEXT PRIMARY KEY NOT NULL,
  fingerprint TEXT NOT NULL,
  graph TEXT NOT NULL,
  registered_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- last_published survives the pruning of the published rows it was derived from.
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA user_version = 1;
)sql"},
    // Schema 2: a saga's outbox rows are found through its history (each transition records the
    // range of sequences it wrote) instead of an index by saga. With random saga keys that index
    // cost every emitting event one more randomly placed page in the commit (and again in the
    // checkpoint): dropping it made group commit about 1.7 x faster at 1,000,000 sagas
    // (docs/performance.md). Existing rows are linked through their causationid.
    {2, R"sql(
ALTER TABLE history ADD COLUMN outbox_first INTEGER;
ALTER TABLE history ADD COLUMN outbox_last INTEGER;
UPDATE history SET (outbox_first, outbox_last) = (
  SELECT min(o.sequence), max(o.sequence) FROM outbox AS o
  WHERE o.definition = history.definition AND o.key = history.key
    AND json_extract(o.payload, '$.causationid') = history.event_id)
WHERE outcome = 'transitioned';
DROP INDEX outbox_by_saga;
PRAGMA user_version = 2;
)sql"},
    // Schema 3 (issue 11): bounded memory and disk. A resent rejected event is one dead letter
    // with a count; every housekeeping query that runs while sagad serves (pruning, purging
    // finished sagas, timers of the registered definitions only) walks an index in proportion
    // to its limit; the dead-letter and parked caps read row counts that triggers keep in meta
    // instead of counting the tables.
    {3, R"sql(
ALTER TABLE dead_letters ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE dead_letters ADD COLUMN last_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
UPDATE dead_letters SET last_ms = created_ms;
-- Unparsed inputs (no id) are never merged, so they need no entry.
CREATE INDEX dead_letters_by_event ON dead_letters (source, event_id) WHERE event_id <> '';
CREATE INDEX dead_letters_by_last ON dead_letters (last_ms);
CREATE INDEX IF NOT EXISTS inbox_by_received ON inbox (received_ms);
CREATE INDEX timers_due_by_definition ON timers (definition, due_ms) WHERE due_ms IS NOT NULL;
CREATE INDEX instances_by_state ON instances (definition, state, state_since_ms);

INSERT INTO meta (key, value) VALUES ('dead_letter_rows', (SELECT count(*) FROM dead_letters));
INSERT INTO meta (key, value) VALUES ('parked_rows', (SELECT count(*) FROM parked));
CREATE TRIGGER dead_letters_counted_in AFTER INSERT ON dead_letters BEGIN
  UPDATE meta SET value = value + 1 WHERE key = 'dead_letter_rows';
END;
CREATE TRIGGER dead_letters_counted_out AFTER DELETE ON dead_letters BEGIN
  UPDATE meta SET value = value - 1 WHERE key = 'dead_letter_rows';
END;
CREATE TRIGGER parked_counted_in AFTER INSERT ON parked BEGIN
  UPDATE meta SET value = value + 1 WHERE key = 'parked_rows';
END;
CREATE TRIGGER parked_counted_out AFTER DELETE ON parked BEGIN
  UPDATE meta SET value = value - 1 WHERE key = 'parked_rows';
END;
PRAGMA user_version = 3;
)sql"},
    // Schema 4 (issue 13): who sent each event. `sender` is the name of the CURVE key an event
    // came with (empty: plaintext, the engine itself, or an embedding host), kept with its
    // history row, while it is parked, and with its dead letter.
    {4, R"sql(
ALTER TABLE history ADD COLUMN sender TEXT NOT NULL DEFAULT '';
ALTER TABLE parked ADD COLUMN sender TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN sender TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 4;
)sql"},
    // Schema 5 (issue 13): the parked and dead-letter caps hold per sender key, so one client
    // cannot use up the room of the others. sender_rows keeps each sender's counts, maintained
    // by triggers like meta's totals (schema 3), and loses a sender's row once it holds nothing
    // (so it is as large as the set of senders holding something); dead letters are pruned per
    // sender through dead_letters_by_sender. A row's sender is written once, never updated.
    {5, R"sql(
CREATE TABLE sender_rows (
  sender TEXT PRIMARY KEY NOT NULL,
  parked INTEGER NOT NULL DEFAULT 0,
  dead_letters INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO sender_rows (sender, parked) SELECT sender, count(*) FROM parked GROUP BY sender;
-- WHERE true: an upsert's SELECT needs a WHERE clause for SQLite to parse ON CONFLICT.
INSERT INTO sender_rows (sender, dead_letters)
  SELECT sender, count(*) FROM dead_letters WHERE true GROUP BY sender
  ON CONFLICT (sender) DO UPDATE SET dead_letters = excluded.dead_letters;
CREATE INDEX dead_letters_by_sender ON dead_letters (sender, last_ms, id);

CREATE TRIGGER sender_rows_emptied AFTER UPDATE ON sender_rows
WHEN new.parked = 0 AND new.dead_letters = 0 BEGIN
  DELETE FROM sender_rows WHERE sender = new.sender;
END;
CREATE TRIGGER parked_by_sender_in AFTER INSERT ON parked BEGIN
  INSERT INTO sender_rows (sender, parked) VALUES (new.sender, 1)
    ON CONFLICT (sender) DO UPDATE SET parked = parked + 1;
END;
CREATE TRIGGER parked_by_sender_out AFTER DELETE ON parked BEGIN
  UPDATE sender_rows SET parked = parked - 1 WHERE sender = old.sender;
END;
CREATE TRIGGER dead_letters_by_sender_in AFTER INSERT ON dead_letters BEGIN
  INSERT INTO sender_rows (sender, dead_letters) VALUES (new.sender, 1)
    ON CONFLICT (sender) DO UPDATE SET dead_letters = dead_letters + 1;
END;
CREATE TRIGGER dead_letters_by_sender_out AFTER DELETE ON dead_letters BEGIN
  UPDATE sender_rows SET dead_letters = dead_letters - 1 WHERE sender = old.sender;
END;
PRAGMA user_version = 5;
)sql"},
    // Schema 6 (issue 11, group commit): finished sagas are indexed apart. instances_by_state
    // (schema 3) was rewritten by every transition, since each one changes the state it indexes,
    // and cost group commit about 6 %; finished_ms is NULL until the engine saves a saga in a
    // terminal state (instance_record::finished), so the partial index takes one entry per saga,
    // written once, and purge_finished and `sagactl purge` still walk it in proportion to their
    // limit. Sagas already in a terminal state of their stored graph are finished since then.
    {6, R"sql(
ALTER TABLE instances ADD COLUMN finished_ms INTEGER;
UPDATE instances SET finished_ms = state_since_ms WHERE EXISTS
  (SELECT 1 FROM definitions AS d, json_each(d.graph, '$.terminal') AS term
   WHERE d.name = instances.definition AND term.value = instances.state);
DROP INDEX instances_by_state;
CREATE INDEX instances_finished ON instances (definition, state, finished_ms) WHERE finished_ms IS NOT NULL;
PRAGMA user_version = 6;
)sql"},
    // Schema 7 (issue 15): a saga's history is a chain, not an index. history_by_saga (definition,
    // key, id) put one randomly placed page into every event's commit (the saga keys are random)
    // and again into the checkpoint: the schema ladder of `saga-bench` measured the store floor
    // 1.33 x as fast without it (docs/performance.md). Each history row now names the saga's
    // previous row and the instance its newest, so the rows of one saga are found from its
    // instance, one rowid lookup each (sagactl show, purge). A history row of a saga that has no
    // instance row (none is written so) is kept but found only by scans. timers_due (all timers
    // by due time) goes too: every arm and disarm wrote it, and only sagactl's timer listing
    // read it, which now merges the definitions' own (timers_due_by_definition).
    {7, R"sql(
ALTER TABLE history ADD COLUMN previous INTEGER;
ALTER TABLE instances ADD COLUMN last_history INTEGER;
UPDATE history SET previous = (SELECT max(p.id) FROM history AS p
  WHERE p.definition = history.definition AND p.key = history.key AND p.id < history.id);
UPDATE instances SET last_history = (SELECT max(h.id) FROM history AS h
  WHERE h.definition = instances.definition AND h.key = instances.key);
DROP INDEX history_by_saga;
DROP INDEX timers_due;
PRAGMA user_version = 7;
)sql"},
    // Schema 8 (issue 15): a saga's timers live in its instance row (statement_use.hpp), not in a
    // table of their own: arming and disarming rewrote a row of `timers` (one more randomly placed
    // page in every commit, and in the checkpoint, at a million sagas) and its index entry; the
    // instance's page is in the commit anyway. instances_due replaces timers_due_by_definition.
    // A timer row whose saga has no instance row (the engine never arms one so) has nothing to
    // fire into and is not carried over.
    {8, R"sql(
ALTER TABLE instances ADD COLUMN timers TEXT;
ALTER TABLE instances ADD COLUMN next_due_ms INTEGER;
UPDATE instances SET (timers, next_due_ms) = (
  SELECT json_group_object(t.name, json_array(t.due_ms, t.generation)), min(t.due_ms)
  FROM timers AS t WHERE t.definition = instances.definition AND t.key = instances.key)
WHERE EXISTS (SELECT 1 FROM timers AS t WHERE t.definition = instances.definition AND t.key = instances.key);
CREATE INDEX instances_due ON instances (definition, next_due_ms) WHERE next_due_ms IS NOT NULL;
DROP TABLE timers;
PRAGMA user_version = 8;
)sql"},
    // Schema 9 (issue 16): each history row keeps its event's trace context (the CloudEvents
    // Distributed Tracing extension: as it came, or the trace the engine started) and its other
    // extension attributes (JSON object text). No index by trace id: `sagactl list --trace` scans
    // the newest history rows instead (docs/cli.md), so an event's write costs what it did, plus
    // the bytes. Older rows have no trace ('').
    {9, R"sql(
ALTER TABLE history ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN extensions TEXT NOT NULL DEFAULT '';
PRAGMA user_version = 9;
)sql"},
    // Schema 10 (issue 18): definition versions side by side. A definition is stored per (name,
    // version); each saga records the version it runs on (set when it starts, changed only by a
    // migration) and each history row the version that handled it. Everything before is version 1.
    {10, R"sql(
CREATE TABLE definitions_v (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  fingerprint TEXT NOT NULL,
  graph TEXT NOT NULL,
  registered_ms INTEGER NOT NULL,
  PRIMARY KEY (name, version)
) WITHOUT ROWID;
INSERT INTO definitions_v SELECT name, 1, fingerprint, graph, registered_ms FROM definitions;
DROP TABLE definitions;
ALTER TABLE definitions_v RENAME TO definitions;
ALTER TABLE instances ADD COLUMN definition_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE history ADD COLUMN definition_version INTEGER NOT NULL DEFAULT 1;
PRAGMA user_version = 10;
)sql"},
    // Schema 11 (issue 19): the counts a console or a metrics scrape shows, kept at write time
    // instead of counted: at a million sagas, counting them by definition, version and state
    // (a scan of the whole instances table) and the inbox, outbox and armed timers took 15-25 s
    // a page. The store adds up each transaction's changes in memory and writes them once,
    // before the commit (store::write_counts): one upsert per (definition, version, state) the
    // transaction moved sagas out of or into, one update of table_rows, one upsert of
    // received_minutes per minute its inbox rows were received in. instances_by_created
    // serves the saga list's order (created, definition, key): an entry per saga, written once
    // when it starts, at the right edge of the index (creation times only grow).
    // instances_by_state_created serves the list of one definition's sagas in one state (the
    // overview's links): its entry moves with every transition, from near the right edge of the
    // old state's range to near the right edge of the new one's (docs/performance.md measures it).
    {11, R"sql(
CREATE TABLE saga_counts (
  definition TEXT NOT NULL,
  definition_version INTEGER NOT NULL,
  state TEXT NOT NULL,
  sagas INTEGER NOT NULL,
  PRIMARY KEY (definition, definition_version, state)
) WITHOUT ROWID;
INSERT INTO saga_counts (definition, definition_version, state, sagas)
  SELECT definition, definition_version, state, count(*) FROM instances GROUP BY 1, 2, 3;
CREATE TABLE table_rows (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  inbox INTEGER NOT NULL,
  outbox INTEGER NOT NULL,
  armed_timers INTEGER NOT NULL
);
INSERT INTO table_rows (id, inbox, outbox, armed_timers) VALUES (1,
  (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox),
  (SELECT count(*) FROM instances AS i, json_each(i.timers) AS j
   WHERE i.next_due_ms IS NOT NULL AND j.value ->> 0 IS NOT NULL));
-- Events received per minute (received_ms / 60000), as the inbox had them: the console's chart.
CREATE TABLE received_minutes (
  minute INTEGER PRIMARY KEY,
  events INTEGER NOT NULL
);
INSERT INTO received_minutes (minute, events) SELECT received_ms / 60000, count(*) FROM inbox GROUP BY 1;
CREATE INDEX instances_by_created ON instances (created_ms);
CREATE INDEX instances_by_state_created ON instances (definition, state, created_ms);
PRAGMA user_version = 11;
)sql"},
    // Schema 12 (issue 15): the published rows are a prefix of the log, kept as its end, not as a
    // mark on every row. Marking a batch rewrote each of its outbox rows (published_ms) and took
    // each out of outbox_unpublished, which every new row had entered: two more B-tree writes per
    // event and the batch's outbox pages written to the log a second time. Now meta's
    // last_published is the end of the published prefix (every row up to it is published; the
    // relay publishes in sequence order and marks only what extends the prefix, store.hpp), and
    // a mark is one row of `publications`: the rows after the previous one's last_sequence, up
    // to its own, were first published at its published_ms. outbox_published is the outbox with
    // each row's published_ms as before, for SQL readers. Rows marked beyond the first
    // unpublished one (never by this store's relay) lose their mark and are published again.
    // The old column is renamed, not dropped, and no longer written: dropping it rewrites every
    // outbox row (15.8 s for 1,000,000 rows here, against 1.9 s for this migration), and sagad
    // migrates before it serves. A query of outbox.published_ms by hand fails instead of
    // reading a column nothing updates.
    {12, R"sql(
CREATE TABLE publications (
  last_sequence INTEGER PRIMARY KEY,
  published_ms INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('last_published', 0) ON CONFLICT (key) DO NOTHING;
UPDATE meta SET value = coalesce((SELECT min(sequence) - 1 FROM outbox WHERE published_ms IS NULL),
                                 max(value, coalesce((SELECT max(sequence) FROM outbox), 0)))
WHERE key = 'last_published';
-- One row per run of equal published_ms in sequence order.
INSERT INTO publications (last_sequence, published_ms)
  SELECT sequence, published_ms FROM
    (SELECT sequence, published_ms, lead(published_ms) OVER (ORDER BY sequence) AS next FROM outbox
     WHERE sequence <= (SELECT value FROM meta WHERE key = 'last_published'))
  WHERE next IS NULL OR next <> published_ms;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox RENAME COLUMN published_ms TO schema_11_published_ms;
CREATE VIEW outbox_published AS
  SELECT o.sequence, o.event_id, o.type, o.definition, o.key, o.payload, o.created_ms,
    CASE WHEN o.sequence <= (SELECT value FROM meta WHERE key = 'last_published') THEN
      (SELECT p.published_ms FROM publications AS p WHERE p.last_sequence >= o.sequence
       ORDER BY p.last_sequence LIMIT 1) END AS published_ms
  FROM outbox AS o;
PRAGMA user_version = 12;
)sql"},
};
static_assert(std::size(migrations) == store::current_schema);

// The prepared statements, by index into store::statements_. Only placeholders carry values.
enum q : std::size_t {
  q_begin,
  q_commit,
  q_rollback,
  q_find_ack,
  q_insert_inbox,
  q_load_instance,
  q_save_instance,
  q_update_instance,
  q_append_history,
  q_saga_trace,
  q_append_outbox,
  q_add_dead_letter,
  q_find_dead_letter,
  q_count_dead_letter,
  q_expired_dead_letters,
  q_senders_over,
  q_oldest_dead_letters_of,
  q_savepoint,
  q_release_savepoint,
  q_rollback_to_savepoint,
  q_due_timers_of,
  q_timer_definitions,
  q_count_due_of,
  q_timers_of,
  q_park,
  q_parked_of,
  q_count_parked,
  q_parked_rows,
  q_parked_of_sender,
  q_remove_parked,
  q_orphaned_parked,
  q_load_definition,
  q_save_definition,
  q_counted_states,
  q_keys_in_state,
  q_stored_versions,
  q_running_versions,
  q_unpublished,
  q_last_sequence,
  q_add_publication,
  q_raise_last_published,
  q_last_published,
  q_published_range,
  q_first_retained,
  q_publications_head,
  q_outbox_through,
  q_prune_publications,
  q_prune_outbox,
  q_prune_inbox,
  q_finished,
  q_purge_history,
  q_purge_parked,
  q_purge_instance,
  q_count_sagas,
  q_count_rows,
  q_count_received,
  q_prune_received,
  q_user_version,
  q_data_version,
  q_sync_normal,
  q_sync_full,
  q_count_
};

constexpr const char* sql_of[] = {
    // q_begin: IMMEDIATE takes the write lock now, so a batch never fails half-way on an
    // upgrade from a read lock (SQLITE_BUSY_SNAPSHOT in WAL mode, which no timeout cures).
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    // q_find_ack
    "SELECT ack FROM inbox WHERE source = ? AND event_id = ?",
    // q_insert_inbox
    "INSERT INTO inbox (source, event_id, definition, key, ack, received_ms) VALUES (?, ?, ?, ?, ?, ?)",
    // q_load_instance
    "SELECT state, data, version, fingerprint, correlation_id, created_ms, updated_ms, state_since_ms,"
    " finished_ms, definition_version, timers, next_due_ms, last_history FROM instances"
    " WHERE definition = ? AND key = ?",
    // q_save_instance: the whole row as the transaction left it (store::write_sagas), timers and
    // history chain head included. created_ms and correlation_id belong to the saga's first row;
    // finished_ms is state_since_ms while the saga is in a terminal state, NULL otherwise.
    "INSERT INTO instances (definition, key, state, data, version, fingerprint, correlation_id,"
    " created_ms, updated_ms, state_since_ms, finished_ms, definition_version, timers, next_due_ms,"
    " last_history) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (definition, key) DO UPDATE SET state = excluded.state, data = excluded.data,"
    " version = excluded.version, fingerprint = excluded.fingerprint,"
    " updated_ms = excluded.updated_ms, state_since_ms = excluded.state_since_ms,"
    " finished_ms = excluded.finished_ms, definition_version = excluded.definition_version,"
    " timers = excluded.timers, next_due_ms = excluded.next_due_ms, last_history = excluded.last_history",
    // q_update_instance: the same for a row the transaction read (one seek, no conflict to find)
    "UPDATE instances SET state = ?3, data = ?4, version = ?5, fingerprint = ?6, updated_ms = ?7,"
    " state_since_ms = ?8, finished_ms = ?9, definition_version = ?10, timers = ?11, next_due_ms = ?12,"
    " last_history = ?13 WHERE definition = ?1 AND key = ?2",
    // q_append_history: linked to the saga's newest row (schema 7, ?16), which the transaction
    // remembers; the instance row takes the new one as its newest when it is written back
    "INSERT INTO history (definition, key, version, event_id, event_source, event_type, event_time,"
    " event_data, from_state, to_state, outcome, recorded_ms, outbox_first, outbox_last, sender, previous,"
    " traceparent, tracestate, extensions, definition_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    // q_saga_trace: the saga's newest history row, through the instance (schema 7's chain head)
    "SELECT h.traceparent, h.tracestate FROM instances AS i JOIN history AS h ON h.id = i.last_history"
    " WHERE i.definition = ?1 AND i.key = ?2",
    // q_append_outbox
    "INSERT INTO outbox (event_id, type, definition, key, payload, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
    // q_add_dead_letter
    "INSERT INTO dead_letters (event_id, source, type, subject, reason, payload, created_ms, count, last_ms,"
    " truncated, sender) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING id",
    // q_find_dead_letter: `event_id <> ''` lets the partial index serve it.
    "SELECT id FROM dead_letters WHERE source = ? AND event_id = ? AND event_id <> '' AND payload = ?"
    " ORDER BY id LIMIT 1",
    // q_count_dead_letter
    "UPDATE dead_letters SET count = count + 1, last_ms = ?, reason = ? WHERE id = ?",
    // q_expired_dead_letters
    "DELETE FROM dead_letters WHERE id IN"
    " (SELECT id FROM dead_letters WHERE last_ms < ? ORDER BY last_ms, id LIMIT ?)",
    // q_senders_over: the senders holding more than keep_max, the largest first; sender_rows
    // (schema 5) has a row only for a sender that holds something.
    "SELECT sender, dead_letters FROM sender_rows WHERE dead_letters > ?"
    " ORDER BY dead_letters DESC, sender LIMIT ?",
    // q_oldest_dead_letters_of: through dead_letters_by_sender
    "DELETE FROM dead_letters WHERE id IN"
    " (SELECT id FROM dead_letters WHERE sender = ? ORDER BY last_ms, id LIMIT ?)",
    // q_savepoint, q_release_savepoint, q_rollback_to_savepoint
    "SAVEPOINT saga_event",
    "RELEASE saga_event",
    "ROLLBACK TO saga_event",
    // q_due_timers_of: one definition's, through instances_due
    SAGA_ARMED_TIMERS_OF("next_due_ms <= ?2", "due <= ?2"),
    // q_timer_definitions: the definitions with armed timers, one index seek each
    SAGA_TIMER_DEFINITIONS,
    // q_count_due_of
    SAGA_DUE_TIMER_COUNT_OF,
    // q_timers_of
    SAGA_TIMERS_OF_SAGA " ORDER BY 3",
    // q_park
    "INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms, sender)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    // q_parked_of
    "SELECT id, definition, key, event_id, source, type, payload, parked_ms, sender FROM parked"
    " WHERE definition = ? AND key = ? ORDER BY id",
    // q_count_parked
    "SELECT count(*) FROM parked WHERE definition = ? AND key = ?",
    // q_parked_rows: kept by triggers (schema 3)
    "SELECT value FROM meta WHERE key = 'parked_rows'",
    // q_parked_of_sender: kept by triggers (schema 5)
    "SELECT parked FROM sender_rows WHERE sender = ?",
    // q_remove_parked
    "DELETE FROM parked WHERE id = ?",
    // q_orphaned_parked
    "SELECT p.id, p.definition, p.key, p.event_id, p.source, p.type, p.payload, p.parked_ms, p.sender"
    " FROM parked AS p WHERE p.parked_ms < ? AND NOT EXISTS"
    " (SELECT 1 FROM instances AS i WHERE i.definition = p.definition AND i.key = p.key)"
    " ORDER BY p.id LIMIT ?",
    // q_load_definition
    "SELECT fingerprint, graph, registered_ms FROM definitions WHERE name = ? AND version = ?",
    // q_save_definition
    "INSERT INTO definitions (name, version, fingerprint, graph, registered_ms) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (name, version) DO UPDATE SET fingerprint = excluded.fingerprint, graph = excluded.graph,"
    " registered_ms = excluded.registered_ms",
    // q_counted_states, q_keys_in_state: instances_outside reads the states a version's sagas
    // are in from the kept counts and filters them in C++ (the SQL never depends on how many
    // states it is given); only a state outside has its keys read, through
    // instances_by_state_created (named: without statistics SQLite prefers the primary key's
    // prefix, a scan of all the definition's sagas). A start-up of sagad scans no instances.
    "SELECT state FROM saga_counts WHERE definition = ? AND definition_version = ? AND sagas > 0",
    "SELECT key FROM instances INDEXED BY instances_by_state_created"
    " WHERE definition = ? AND state = ? AND definition_version = ?",
    // q_stored_versions: from the kept counts, by version
    "SELECT DISTINCT definition_version FROM saga_counts WHERE definition = ? AND sagas > 0"
    " ORDER BY definition_version",
    // q_running_versions: a scan of the definition's instances (at start-up, only when a version
    // nothing registered serves has sagas: engine::unserved_versions)
    "SELECT definition_version, count(*) FROM instances WHERE definition = ? AND finished_ms IS NULL"
    " GROUP BY definition_version ORDER BY definition_version",
    // q_unpublished: the rows after the published prefix (schema 12)
    "SELECT sequence, event_id, type, definition, key, payload, created_ms, NULL FROM outbox"
    " WHERE sequence > max(?1, " SAGA_LAST_PUBLISHED ") ORDER BY sequence LIMIT ?2",
    // q_last_sequence
    "SELECT coalesce(max(sequence), 0) FROM outbox",
    // q_add_publication
    "INSERT INTO publications (last_sequence, published_ms) VALUES (?, ?)",
    // q_raise_last_published
    "INSERT INTO meta (key, value) VALUES ('last_published', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    // q_last_published
    "SELECT value FROM meta WHERE key = 'last_published'",
    // q_published_range: the published prefix's rows, each with its publication's time
    "SELECT sequence, event_id, type, definition, key, payload, created_ms, published_ms"
    " FROM outbox_published WHERE sequence >= ?1 AND sequence <= " SAGA_LAST_PUBLISHED
    " ORDER BY sequence LIMIT ?2",
    // q_first_retained
    "SELECT coalesce(min(sequence), 0) FROM outbox",
    // q_publications_head: the oldest publications, in log order (prune deletes only a prefix)
    "SELECT last_sequence, published_ms FROM publications ORDER BY last_sequence LIMIT ?",
    // q_outbox_through: of the oldest `limit` rows, the first and last up to a sequence
    "SELECT min(sequence), max(sequence) FROM"
    " (SELECT sequence FROM outbox WHERE sequence <= ?1 ORDER BY sequence LIMIT ?2)",
    // q_prune_publications: those no kept row needs (each covers the rows up to its last_sequence)
    "DELETE FROM publications WHERE last_sequence < coalesce((SELECT min(sequence) FROM outbox), ?1 + 1)",
    // q_prune_outbox
    "DELETE FROM outbox WHERE sequence BETWEEN ? AND ?",
    // q_prune_inbox
    "DELETE FROM inbox WHERE (source, event_id) IN"
    " (SELECT source, event_id FROM inbox WHERE received_ms < ? ORDER BY received_ms LIMIT ?)",
    // q_finished: through instances_finished, one state at a time; with what the saga counts in
    // saga_counts and table_rows (schema 11)
    "SELECT key, definition_version, (SELECT count(*) FROM json_each(timers) AS j WHERE j.value ->> 0"
    " IS NOT NULL) FROM instances WHERE definition = ? AND state = ? AND finished_ms IS NOT NULL"
    " AND finished_ms < ? ORDER BY finished_ms LIMIT ?",
    // q_purge_history, q_purge_parked, q_purge_instance (the timers are in the instance row)
    "WITH RECURSIVE " SAGA_HISTORY " DELETE FROM history WHERE id IN (SELECT id FROM chain)",
    "DELETE FROM parked WHERE definition = ? AND key = ?",
    "DELETE FROM instances WHERE definition = ? AND key = ?",
    // q_count_sagas, q_count_rows: a transaction's changes to the counts (schema 11)
    "INSERT INTO saga_counts (definition, definition_version, state, sagas) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (definition, definition_version, state) DO UPDATE SET sagas = sagas + excluded.sagas",
    "UPDATE table_rows SET inbox = inbox + ?1, outbox = outbox + ?2, armed_timers = armed_timers + ?3",
    // q_count_received, q_prune_received: events per minute (schema 11); the minutes wholly
    // before the inbox's pruning cutoff go with its rows
    "INSERT INTO received_minutes (minute, events) VALUES (?1, ?2)"
    " ON CONFLICT (minute) DO UPDATE SET events = events + excluded.events",
    "DELETE FROM received_minutes WHERE minute < ?1 / 60000",
    // q_user_version
    "PRAGMA user_version",
    // q_data_version: changes when another connection commits (not on this connection's commits)
    "PRAGMA data_version",
    // q_sync_normal, q_sync_full: publication marks need no fsync of their own (see mark_published)
    "PRAGMA synchronous = NORMAL",
    "PRAGMA synchronous = FULL",
};
static_assert(std::size(sql_of) == q_count_);

using detail::guarded;
using detail::use;

timer_record read_timer(const use& u) {
  return timer_record{u.string(0), u.string(1), u.string(2), u.integer(3), u.integer(4)};
}

parked_record read_parked(const use& u) {
  return parked_record{u.integer(0), u.string(1), u.string(2),  u.string(3), u.string(4),
                       u.string(5),  u.string(6), u.integer(7), u.string(8)};
}

outbox_record read_outbox(const use& u) {
  outbox_record r;
  r.sequence = u.integer(0);
  r.event_id = u.string(1);
  r.type = u.string(2);
  r.definition = u.string(3);
  r.key = u.string(4);
  r.payload = u.string(5);
  r.created_ms = u.integer(6);
  if (!u.is_null(7)) r.published_ms = u.integer(7);
  return r;
}

// The synchronous levels we accept, mapped to constant SQL so that no option text reaches SQL.
const char* synchronous_pragma(const std::string& level) {
  std::string upper = level;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper == "FULL") return "PRAGMA synchronous = FULL";
  if (upper == "NORMAL") return "PRAGMA synchronous = NORMAL";
  if (upper == "OFF") return "PRAGMA synchronous = OFF";
  throw std::invalid_argument("saga::sqlite::options::synchronous must be FULL, NORMAL or OFF, not \"" +
                              level + "\"");
}

}  // namespace

bool disable_memory_statistics() noexcept {
  return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
}

bool pool_page_cache(std::size_t bytes) noexcept {
  static std::atomic<bool> pooled{false};  // a second pool would replace the first, never unmapped
  if (pooled.load()) return false;
  int header = 0;  // what a cached page needs beside its content, for this SQLite
  if (sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &header) != SQLITE_OK) return false;
  const std::size_t slot = (4096 + static_cast<std::size_t>(header) + 7) / 8 * 8;  // SQLite rounds to 8
  const std::size_t slots = std::min<std::size_t>(bytes / slot, std::numeric_limits<int>::max());
  if (slots == 0) return false;
  void* pool = ::mmap(nullptr, slots * slot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pool == MAP_FAILED) return false;
  if (sqlite3_config(SQLITE_CONFIG_PAGECACHE, pool, static_cast<int>(slot), static_cast<int>(slots)) ==
      SQLITE_OK) {
    pooled.store(true);
    return true;
  }
  ::munmap(pool, slots * slot);
  return false;
}

namespace {

std::unique_ptr<SQLite::Database> open_database(const options& opts) {
  // Validate everything before touching the file system.
  const char* synchronous = synchronous_pragma(opts.synchronous);
  if (opts.busy_timeout_ms < 0) {
    throw std::invalid_argument("saga::sqlite::options::busy_timeout_ms must not be negative");
  }
  if (opts.path.empty()) {
    throw std::invalid_argument("saga::sqlite::options::path is empty");
  }
  if (opts.checkpoint_pages < 0) {
    throw std::invalid_argument("saga::sqlite::options::checkpoint_pages must not be negative");
  }
  if (opts.page_cache_kib < 64) {
    throw std::invalid_argument("saga::sqlite::options::page_cache_kib must be at least 64");
  }
  return guarded(("open " + opts.path).c_str(), [&] {
    // NOMUTEX: one thread at a time uses a store (store.hpp), so SQLite need not lock the
    // connection in every call.
    const int flags =
        SQLite::OPEN_NOMUTEX |
        (opts.read_only ? SQLite::OPEN_READONLY : (SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE));
    const bool buffered = opts.buffer_wal && !opts.read_only;
    auto db = std::make_unique<SQLite::Database>(opts.path.c_str(), flags, opts.busy_timeout_ms,
                                                 buffered ? wal_buffer::vfs_name() : nullptr);
    if (!opts.read_only) {
      // WAL: readers (sagactl, the replay server) never block the writer, and a commit costs
      // one fsync of the log. A read-only connection cannot change the mode; it reads either.
      db->exec("PRAGMA journal_mode = WAL");
    }
    db->exec(synchronous);
    // By default a 32 MiB page cache (SQLite's is 2 MiB): it keeps the inbox, instance and outbox
    // indexes of a large database in memory instead of reading them back for every event.
    db->exec("PRAGMA cache_size = -" + std::to_string(opts.page_cache_kib));
    return db;
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The saga rows of the open transaction (store.hpp)

namespace {

// How many of a saga's timers are armed (due time not null).
std::int64_t armed_in(const nlohmann::json& timers) {
  return std::count_if(timers.begin(), timers.end(), [](const auto& slot) { return !slot.at(0).is_null(); });
}

// A saga's timers (schema 8): a JSON object, name -> [due_ms or null when disarmed, generation].
// `armed` becomes how many of the stored ones are armed when they are parsed.
nlohmann::json& timers_in(std::optional<nlohmann::json>& parsed, const std::optional<std::string>& stored,
                          std::int64_t& armed) {
  if (!parsed) {
    parsed = stored ? saga::parse_json(*stored) : nlohmann::json::object();
    armed = armed_in(*parsed);
  }
  return *parsed;
}

// The soonest armed due time; nullopt when none is armed.
std::optional<std::int64_t> soonest_due(const nlohmann::json& timers) {
  std::optional<std::int64_t> soonest;
  for (const auto& slot : timers) {
    if (slot.at(0).is_null()) continue;
    const auto due = slot.at(0).get<std::int64_t>();
    if (!soonest || due < *soonest) soonest = due;
  }
  return soonest;
}

}  // namespace

struct store::saga_row {
  bool exists = false;   // the saga has an instance row: stored, or saved in this transaction
  bool stored = false;   // ... in the database (read there, or written back)
  bool changed = false;  // not written back since it changed
  instance_record rec;
  std::optional<std::string> timers_text;    // the timers column as read or last written
  std::optional<nlohmann::json> timers;      // parsed once changed; then it is the truth
  std::optional<std::int64_t> next_due_ms;   // as read or last written
  std::optional<std::int64_t> last_history;  // the head of the saga's history chain
  // What the stored row counts under (saga_counts; schema 11) while a save has replaced it and it
  // is not written back yet: its definition version and state (save_instance moves them here).
  std::optional<std::pair<std::int64_t, std::string>> counted_as;
  // The stored row's armed timers (table_rows.armed_timers), once they are parsed.
  std::int64_t stored_armed = 0;
};

// A transaction's changes to the counts of schema 11, written by write_counts().
struct store::count_changes {
  // (definition, version, state) compared as views, so that a lookup copies no name (a comparator
  // of its own: clang's libstdc++ tuples do not compare string tuples with view tuples).
  struct group_less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return as_views(a) < as_views(b);
    }
    template <class T>
    static std::tuple<std::string_view, std::int64_t, std::string_view> as_views(const T& t) {
      return {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
    }
  };
  std::map<std::tuple<std::string, std::int64_t, std::string>, std::int64_t, group_less> sagas;
  std::int64_t inbox = 0;
  std::int64_t outbox = 0;
  std::int64_t armed_timers = 0;
  std::map<std::int64_t, std::int64_t> received;  // inbox rows by minute received

  // Looked up without copying the names: a batch moves most sagas between a few groups.
  void saga(std::string_view definition, std::int64_t version, std::string_view state, std::int64_t n) {
    const auto group = std::tuple(definition, version, state);
    auto it = sagas.lower_bound(group);
    if (it == sagas.end() || sagas.key_comp()(group, it->first))
      it = sagas.emplace_hint(it, std::tuple(std::string(definition), version, std::string(state)), 0);
    it->second += n;
  }
  bool empty() const {
    return inbox == 0 && outbox == 0 && armed_timers == 0 && received.empty() &&
           std::all_of(sagas.begin(), sagas.end(), [](const auto& e) { return e.second == 0; });
  }
};

class store::transaction_rows {
  // Rows are found by hashing (definition, key): a batch looks its sagas up several times each,
  // and an ordered map compared the two strings at every level of its tree.
  using saga_id = std::pair<std::string, std::string>;
  using saga_ref = std::pair<std::string_view, std::string_view>;
  struct saga_hash {
    using is_transparent = void;
    std::size_t operator()(const saga_ref& s) const noexcept {
      const std::size_t h = std::hash<std::string_view>{}(s.first);
      return h ^ (std::hash<std::string_view>{}(s.second) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    }
    std::size_t operator()(const saga_id& s) const noexcept { return (*this)(saga_ref(s.first, s.second)); }
  };
  struct saga_equal {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return a.first == b.first && a.second == b.second;
    }
  };

 public:
  using saga_map = std::unordered_map<saga_id, saga_row, saga_hash, saga_equal>;

  saga_row* find(std::string_view definition, std::string_view key) {
    const auto it = rows_.find(saga_ref{definition, key});
    return it == rows_.end() ? nullptr : &it->second;
  }
  saga_row& add(std::string_view definition, std::string_view key, saga_row r) {
    return rows_.insert_or_assign({std::string(definition), std::string(key)}, std::move(r)).first->second;
  }
  // In (definition, key) order: the write-back walks the primary key forwards.
  template <class F>
  void each_changed(F&& f) {
    order_.clear();
    for (auto& e : rows_)
      if (e.second.changed) order_.push_back(&e);
    std::sort(order_.begin(), order_.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    for (auto* e : order_) f(e->first.first, e->first.second, e->second);
  }
  bool any_changed() const {
    return std::any_of(rows_.begin(), rows_.end(), [](const auto& e) { return e.second.changed; }) ||
           !counts.empty();
  }
  void clear() noexcept {
    rows_.clear();
    parked_empty.reset();
    counts = {};
  }

  // Not written yet (write_counts).
  count_changes counts;

  // Whether the parked table is empty, once read in this transaction (parked_of); park() forgets.
  std::optional<bool> parked_empty;

  // --- The committed rows kept between transactions (store::begin says when they hold).
  // Before COMMIT the transaction's rows are set aside (the commit hook clears rows_): once the
  // commit succeeded keep_committed() takes them, else drop_set_aside(). Either way the two maps
  // keep their buckets for the next transactions.
  void set_aside() noexcept { committing_.swap(rows_); }
  void drop_set_aside() noexcept { committing_.clear(); }
  // The saga's committed row, moved into this transaction's rows (nullptr when not kept).
  saga_row* recall(std::string_view definition, std::string_view key) {
    for (saga_map* generation : {&young_, &old_}) {
      const auto it = generation->find(saga_ref{definition, key});
      if (it == generation->end()) continue;
      if (generation == &young_) young_bytes_ -= bytes_of(it->second);
      return &rows_.insert(generation->extract(it)).position->second;
    }
    return nullptr;
  }
  // Keeps the committed transaction's rows of existing sagas: two generations, the older dropped
  // when the younger is full (kept_rows or kept_bytes), so what goes is what was used longest ago.
  void keep_committed() {
    while (!committing_.empty()) {
      auto node = committing_.extract(committing_.begin());
      saga_row& r = node.mapped();
      if (!r.exists || !r.stored || r.changed) continue;
      r.timers.reset();  // parsed again from timers_text when next changed: less memory kept
      forget(node.key().first, node.key().second);  // an older copy, should one be kept still
      young_bytes_ += bytes_of(r);
      young_.insert(std::move(node));
      if (young_.size() >= kept_rows || young_bytes_ >= kept_bytes) {
        old_.swap(young_);
        young_.clear();
        young_bytes_ = 0;
      }
    }
  }
  void forget(std::string_view definition, std::string_view key) {
    for (saga_map* generation : {&young_, &old_}) {
      const auto it = generation->find(saga_ref{definition, key});
      if (it == generation->end()) continue;
      if (generation == &young_) young_bytes_ -= bytes_of(it->second);
      generation->erase(it);
    }
  }
  void forget_committed() noexcept {
    young_.clear();
    old_.clear();
    young_bytes_ = 0;
  }
  std::size_t committed_count() const { return young_.size() + old_.size(); }

  // Per generation: at most this many rows, or this many bytes of their texts.
  static constexpr std::size_t kept_rows = 1024;
  static constexpr std::size_t kept_bytes = 1024 * 1024;

 private:
  static std::size_t bytes_of(const saga_row& r) {
    const instance_record& rec = r.rec;
    return rec.definition.size() + rec.key.size() + rec.state.size() + rec.data.size() +
           rec.fingerprint.size() + rec.correlation_id.size() + (r.timers_text ? r.timers_text->size() : 0);
  }

  saga_map rows_;
  saga_map committing_;                       // set_aside(): committed if the COMMIT succeeds
  std::vector<saga_map::value_type*> order_;  // each_changed's, kept for the next commit
  saga_map young_, old_;                      // committed rows (recall, keep_committed)
  std::size_t young_bytes_ = 0;
};

store::saga_row& store::row_of(std::string_view definition, std::string_view key) {
  if (saga_row* known = rows_->find(definition, key)) return *known;
  if (own_transaction_ && keep_committed_) {
    if (saga_row* kept = rows_->recall(definition, key)) return *kept;
  }
  saga_row r;
  use u(prepared(q_load_instance));
  u.text(1, definition).text(2, key);
  if (u.step()) {
    r.exists = r.stored = true;
    r.rec.definition = definition;
    r.rec.key = key;
    r.rec.state = u.string(0);
    r.rec.data = u.string(1);
    r.rec.version = u.integer(2);
    r.rec.fingerprint = u.string(3);
    r.rec.correlation_id = u.string(4);
    r.rec.created_ms = u.integer(5);
    r.rec.updated_ms = u.integer(6);
    r.rec.state_since_ms = u.integer(7);
    r.rec.finished = !u.is_null(8);
    r.rec.definition_version = u.integer(9);
    if (!u.is_null(10)) r.timers_text = u.string(10);
    r.next_due_ms = u.optional_integer(11);
    r.last_history = u.optional_integer(12);
  }
  return rows_->add(definition, key, std::move(r));
}

void store::write_sagas() {
  auto& counts = rows_->counts;
  rows_->each_changed([&](const std::string& definition, const std::string& key, saga_row& r) {
    // Written outside the store's own transaction: a committed copy kept of it would be stale.
    if (!own_transaction_) rows_->forget(definition, key);
    if (r.timers) {
      r.timers_text.emplace();
      saga::append_json(*r.timers_text, *r.timers);
      r.next_due_ms = soonest_due(*r.timers);
      const auto armed = armed_in(*r.timers);
      counts.armed_timers += armed - r.stored_armed;
      r.stored_armed = armed;
    }
    const instance_record& rec = r.rec;
    if (!r.stored) {
      counts.saga(definition, rec.definition_version, rec.state, 1);
    } else if (r.counted_as &&
               (r.counted_as->first != rec.definition_version || r.counted_as->second != rec.state)) {
      counts.saga(definition, r.counted_as->first, r.counted_as->second, -1);
      counts.saga(definition, rec.definition_version, rec.state, 1);
    }
    r.counted_as.reset();
    // NULL while the saga is unfinished (a function, not a local optional: GCC 12 warns of a
    // maybe-uninitialized optional bound in one of the two branches)
    const auto finished_ms = [&rec] {
      return rec.finished ? std::optional<std::int64_t>(rec.state_since_ms) : std::nullopt;
    };
    if (r.stored) {
      use u(prepared(q_update_instance));
      u.text(1, definition).text(2, key).text(3, rec.state).text(4, rec.data).integer(5, rec.version);
      u.text(6, rec.fingerprint).integer(7, rec.updated_ms).integer(8, rec.state_since_ms);
      u.optional_integer(9, finished_ms()).integer(10, rec.definition_version);
      u.optional_text(11, r.timers_text).optional_integer(12, r.next_due_ms);
      u.optional_integer(13, r.last_history).exec();
    } else {
      use u(prepared(q_save_instance));
      u.text(1, definition).text(2, key).text(3, rec.state).text(4, rec.data).integer(5, rec.version);
      u.text(6, rec.fingerprint).text(7, rec.correlation_id).integer(8, rec.created_ms);
      u.integer(9, rec.updated_ms).integer(10, rec.state_since_ms).optional_integer(11, finished_ms());
      u.integer(12, rec.definition_version)
          .optional_text(13, r.timers_text)
          .optional_integer(14, r.next_due_ms);
      u.optional_integer(15, r.last_history).exec();
      r.stored = true;
    }
    r.changed = false;
  });
  write_counts();
}

void store::write_counts() {
  auto& counts = rows_->counts;
  for (const auto& [group, n] : counts.sagas) {
    if (n == 0) continue;
    use u(prepared(q_count_sagas));
    u.text(1, std::get<0>(group)).integer(2, std::get<1>(group)).text(3, std::get<2>(group)).integer(4, n);
    u.exec();
  }
  if (counts.inbox != 0 || counts.outbox != 0 || counts.armed_timers != 0) {
    use u(prepared(q_count_rows));
    u.integer(1, counts.inbox).integer(2, counts.outbox).integer(3, counts.armed_timers).exec();
  }
  for (const auto& [minute, n] : counts.received) {
    use u(prepared(q_count_received));
    u.integer(1, minute).integer(2, n).exec();
  }
  counts = {};
}

std::size_t store::kept_saga_rows() const {
  return rows_->committed_count();
}

void store::forget_kept_saga_rows() noexcept {
  rows_->forget_committed();
}

void store::forget_sagas() noexcept {
  rows_->clear();
}

void store::transaction_ended() noexcept {
  rows_->clear();
  own_transaction_ = false;
}

// ---------------------------------------------------------------------------------------------
// Background checkpoints
//
// In WAL mode every commit appends to the log, and the commit that makes the log exceed
// wal_autocheckpoint pages copies the log back into the database file and syncs it before it
// returns: a few milliseconds, once a second or so under load, on the writer's thread. Here
// the writer's WAL hook only wakes this thread, which runs a PASSIVE checkpoint on its own
// connection while the writer goes on committing (SQLite allows one writer and one checkpoint
// at the same time). PASSIVE never waits for a lock and never blocks the writer or a reader.
// The log restarts from its beginning only when a write transaction begins while every frame is
// back in the database; under a steady load the writer's next commit begins after new frames,
// so it is the writer's own checkpoint past 16x the threshold (store::on_wal) that restarts the
// log. That one does nothing while a round of the thread's runs (one checkpoint at a time), and
// the next commit tries again: the log passes the fallback by what is committed meanwhile.
class checkpointer {
 public:
  checkpointer(const std::string& path, int busy_timeout_ms, const char* synchronous)
      : db_(path, SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX, busy_timeout_ms) {
    // The checkpoint syncs the database file as this connection's synchronous level says.
    db_.exec(synchronous);
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
    // As top -H, perf and /proc/<pid>/task/<tid>/comm show it (set here: named when the store exists).
    ::pthread_setname_np(thread_.native_handle(), "saga-checkpoint");
  }

  ~checkpointer() {
    thread_.request_stop();
    cv_.notify_all();
    thread_.join();
  }

  checkpointer(const checkpointer&) = delete;
  checkpointer& operator=(const checkpointer&) = delete;

  void wake() {
    {
      std::lock_guard lock(mutex_);
      due_ = true;
    }
    cv_.notify_one();
  }

 private:
  void run(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, stop, [&] { return due_; });
        if (stop.stop_requested()) return;
        due_ = false;
      }
      // The log restarts from its beginning only when a write transaction begins while every
      // frame is back in the database; the writer keeps appending meanwhile, so go round until
      // caught up (each round copies only what was appended during the previous one).
      // SQLITE_BUSY (another checkpoint is running) and I/O errors leave the log as it is: the
      // next wake-up tries again, and the writer's own fallback bounds the log meanwhile.
      for (int round = 0; round < max_rounds && !stop.stop_requested(); ++round) {
        int log = 0, copied = 0;
        const int rc =
            sqlite3_wal_checkpoint_v2(db_.getHandle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        if (rc != SQLITE_OK || copied >= log) break;
      }
    }
  }

  static constexpr int max_rounds = 64;

  SQLite::Database db_;
  std::mutex mutex_;
  std::condition_variable_any cv_;
  bool due_ = false;
  std::jthread thread_;  // last: started once everything it uses exists
};

// ---------------------------------------------------------------------------------------------
// Construction and schema

store::store(const options& opts)
    : owned_(open_database(opts)),
      db_(*owned_),
      rows_(std::make_unique<transaction_rows>()),
      keep_committed_(!opts.read_only),
      full_sync_(synchronous_pragma(opts.synchronous) == std::string_view("PRAGMA synchronous = FULL")) {
  guarded(("open " + opts.path).c_str(), [&] { migrate(opts.read_only); });
  register_commit_hook();
  if (opts.read_only) return;
  if (!opts.background_checkpoint || opts.checkpoint_pages == 0) {
    // SQLite's own checkpoint, inside the commit that crosses the threshold (0: never).
    guarded(("open " + opts.path).c_str(),
            [&] { db_.exec("PRAGMA wal_autocheckpoint = " + std::to_string(opts.checkpoint_pages)); });
    return;
  }
  // Only a WAL database has a log to checkpoint (":memory:" stays in memory mode).
  const bool wal = guarded(("open " + opts.path).c_str(),
                           [&] { return db_.execAndGet("PRAGMA journal_mode").getString() == "wal"; });
  if (!wal) return;
  guarded(("open " + opts.path + " (checkpoint connection)").c_str(), [&] {
    checkpointer_ =
        std::make_unique<checkpointer>(opts.path, opts.busy_timeout_ms, synchronous_pragma(opts.synchronous));
  });
  checkpoint_pages_ = opts.checkpoint_pages;
  // Replaces SQLite's automatic checkpoint on this connection (it is a WAL hook too).
  sqlite3_wal_hook(db_.getHandle(), &store::on_wal, this);
}

store::store(SQLite::Database& shared_db) : db_(shared_db), rows_(std::make_unique<transaction_rows>()) {
  guarded("open shared connection", [&] { migrate(false); });
  register_commit_hook();
}

store::~store() {
  // Only the shared connection outlives us, but a hook pointing at a dead store must go in
  // both cases.
  sqlite3_commit_hook(db_.getHandle(), nullptr, nullptr);
  sqlite3_rollback_hook(db_.getHandle(), nullptr, nullptr);
  if (checkpointer_) {
    checkpointer_.reset();  // joins the thread, closes its connection
    sqlite3_wal_hook(db_.getHandle(), nullptr, nullptr);
  }
}

int store::on_wal(void* self, sqlite3* db, const char*, int pages) noexcept {
  auto* s = static_cast<store*>(self);
  if (pages < s->checkpoint_pages_) return SQLITE_OK;
  if (pages < s->checkpoint_pages_ * wal_fallback_factor) {
    s->checkpointer_->wake();
  } else {
    // The thread has not caught up with the appends (or is failing): checkpoint here, between
    // two transactions, so the log is fully copied back and the next transaction restarts it.
    // The thread has usually copied most of it already, so this costs little.
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  return SQLITE_OK;
}

// A commit while the store still holds a change it has not written would lose it: refused (the
// engine never leaves one; only a host committing the shared connection mid-call could).
int store::on_commit(void* self) noexcept {
  auto* s = static_cast<store*>(self);
  if (s->rows_->any_changed()) return 1;  // non-zero turns the commit into a rollback
  s->transaction_ended();
  ++s->commits_;
  return 0;
}

void store::on_rollback(void* self) noexcept {
  static_cast<store*>(self)->transaction_ended();
}

void store::register_commit_hook() {
  sqlite3_commit_hook(db_.getHandle(), &store::on_commit, this);
  sqlite3_rollback_hook(db_.getHandle(), &store::on_rollback, this);
}

SQLite::Statement& store::prepared(std::size_t which) {
  static_assert(statement_count == q_count_, "keep store::statement_count in step with the list");
  auto& slot = statements_[which];
  if (!slot) slot = std::make_unique<SQLite::Statement>(db_, sql_of[which]);
  return *slot;
}

int store::schema_version() {
  return guarded("schema_version", [&] {
    use u(prepared(q_user_version));
    u.step();
    return static_cast<int>(u.integer(0));
  });
}

void store::migrate(bool read_only) {
  const auto newer = [](int found) {
    return saga::store_error("database schema version " + std::to_string(found) +
                             " is newer than this build supports (" + std::to_string(current_schema) + ")");
  };
  int version = schema_version();
  if (version > current_schema) throw newer(version);
  if (version == current_schema) return;
  if (read_only) {
    throw saga::store_error("database schema version " + std::to_string(version) +
                            " is older than this build needs (" + std::to_string(current_schema) +
                            ") and the store is read-only; open it read-write once to migrate");
  }

  // Inside a host's transaction (embedding) a savepoint nests; otherwise take the write lock
  // before reading the version again, since another process may be migrating at the same time.
  const bool nested = in_transaction();
  db_.exec(nested ? "SAVEPOINT saga_migrate" : "BEGIN IMMEDIATE");
  try {
    version = schema_version();
    if (version > current_schema) throw newer(version);
    for (const auto& m : migrations) {
      if (m.to > version) db_.exec(m.sql);
    }
    db_.exec(nested ? "RELEASE saga_migrate" : "COMMIT");
  } catch (...) {
    db_.tryExec(nested ? "ROLLBACK TO saga_migrate; RELEASE saga_migrate" : "ROLLBACK");
    throw;
  }
}

// ---------------------------------------------------------------------------------------------
// Transactions

void store::begin() {
  restore_full_sync("begin");
  forget_sagas();
  guarded("begin", [&] { use(prepared(q_begin)).exec(); });
  own_transaction_ = true;
  if (keep_committed_) check_kept_rows();
}

// The committed rows kept since the last transaction are what this connection wrote or read then;
// another connection's commit since (sagactl, another process on the file) may have changed any
// of them. PRAGMA data_version changes exactly when another connection has committed. Read once
// the write lock is held, so nothing else commits until this transaction ends. Should it fail,
// the rows are forgotten (and the next transaction's check forgets again).
void store::check_kept_rows() noexcept {
  try {
    use u(prepared(q_data_version));
    u.step();
    const std::int64_t now = u.integer(0);
    if (data_version_ == now) return;
    data_version_ = now;
  } catch (...) {
    data_version_.reset();
  }
  rows_->forget_committed();
}

void store::commit() {
  guarded("commit", [&] {
    write_sagas();
    const bool own = own_transaction_;  // the commit hook resets it
    rows_->set_aside();                 // nothing changed is left in them: the hook lets it commit
    try {
      use(prepared(q_commit)).exec();
    } catch (...) {
      rows_->drop_set_aside();
      throw;
    }
    if (own && keep_committed_)
      rows_->keep_committed();
    else
      rows_->drop_set_aside();
  });
}

void store::rollback() noexcept {
  transaction_ended();
  try {
    use(prepared(q_rollback)).exec();
  } catch (...) {
    // Nothing to roll back (no transaction, or SQLite already rolled it back after an I/O
    // error): either way the transaction is gone, which is all the caller asked for.
  }
}

std::string store::log_path() const {
  const char* name = sqlite3_db_filename(db_.getHandle(), "main");
  const char* wal = name != nullptr && *name != '\0' ? sqlite3_filename_wal(name) : nullptr;
  if (wal == nullptr || *wal == '\0') throw saga::store_error("the database has no write-ahead log file");
  return wal;
}

bool store::in_transaction() const {
  return sqlite3_get_autocommit(db_.getHandle()) == 0;
}

// In a transaction begun by store::begin(), the saga rows f changes are written back later
// (store.hpp); in the host's transaction they are written at once and not kept, since the host
// may change or roll back what they read between two calls.
template <class F>
void store::atomically(F&& f) {
  if (own_transaction_) {
    std::forward<F>(f)();  // the caller's transaction makes it atomic, and rolls it back
    return;
  }
  if (in_transaction()) {
    try {
      std::forward<F>(f)();
      settle_sagas();
    } catch (...) {
      forget_sagas();
      throw;
    }
    return;
  }
  restore_full_sync("begin");
  use(prepared(q_begin)).exec();
  try {
    std::forward<F>(f)();
    write_sagas();
    use(prepared(q_commit)).exec();
  } catch (...) {
    rollback();
    throw;
  }
  forget_sagas();
}

void store::restore_full_sync(const char* operation) {
  if (!sync_lowered_) return;
  try {
    use(prepared(q_sync_full)).exec();
  } catch (const std::exception& e) {
    throw saga::store_error(std::string(operation) +
                            ": restoring synchronous = FULL failed (the connection stays at NORMAL and no"
                            " transaction begins until it succeeds): " +
                            e.what());
  }
  sync_lowered_ = false;
}

void store::require_transaction(const char* operation) const {
  if (!in_transaction()) throw saga::store_error(std::string(operation) + ": no transaction is open");
}

// One level, named: the engine never nests them. ROLLBACK TO keeps the savepoint open, so it is
// released at once; the next event's savepoint() starts a new one.
void store::savepoint() {
  require_transaction("savepoint");
  guarded("savepoint", [&] {
    write_sagas();
    use(prepared(q_savepoint)).exec();
  });
}

void store::release_savepoint() {
  require_transaction("release_savepoint");
  guarded("release_savepoint", [&] {
    settle_sagas();  // the host may read or roll back the shared connection next
    use(prepared(q_release_savepoint)).exec();
  });
}

void store::rollback_to_savepoint() {
  require_transaction("rollback_to_savepoint");
  guarded("rollback_to_savepoint", [&] {
    forget_sagas();  // what changed since the savepoint (written there) is rolled back
    use(prepared(q_rollback_to_savepoint)).exec();
    use(prepared(q_release_savepoint)).exec();
  });
}

// ---------------------------------------------------------------------------------------------
// Inbox, instances, history, outbox, dead letters

std::optional<std::string> store::find_ack(std::string_view source, std::string_view event_id) {
  return guarded("find_ack", [&]() -> std::optional<std::string> {
    use u(prepared(q_find_ack));
    u.text(1, source).text(2, event_id);
    if (!u.step()) return std::nullopt;
    return u.string(0);
  });
}

void store::insert_inbox(const inbox_record& r) {
  guarded("insert_inbox", [&] {
    atomically([&] {
      use u(prepared(q_insert_inbox));
      u.text(1, r.source).text(2, r.event_id).text(3, r.definition).text(4, r.key).text(5, r.ack);
      u.integer(6, r.received_ms).exec();
      ++rows_->counts.inbox;
      ++rows_->counts.received[r.received_ms / detail::minute_ms];
    });
  });
}

std::optional<instance_record> store::load_instance(std::string_view definition, std::string_view key) {
  return guarded("load_instance", [&]() -> std::optional<instance_record> {
    if (!own_transaction_) {  // read for this call only (store::atomically says why)
      saga_row& r = row_of(definition, key);
      std::optional<instance_record> out;
      if (r.exists) out = std::move(r.rec);
      forget_sagas();
      return out;
    }
    const saga_row& r = row_of(definition, key);
    if (!r.exists) return std::nullopt;
    return r.rec;
  });
}

void store::save_instance(const instance_record& rec) {
  guarded("save_instance", [&] {
    atomically([&] {
      saga_row& r = row_of(rec.definition, rec.key);
      const bool existed = r.exists;
      // What the stored row counts under, until it is written back (write_sagas).
      if (r.stored && !r.counted_as) r.counted_as.emplace(r.rec.definition_version, std::move(r.rec.state));
      auto first = std::make_pair(std::move(r.rec.correlation_id), r.rec.created_ms);
      r.rec = rec;
      if (existed) std::tie(r.rec.correlation_id, r.rec.created_ms) = std::move(first);  // the first row's
      r.exists = true;
      r.changed = true;
    });
  });
}

void store::append_history(const history_record& h) {
  guarded("append_history", [&] {
    atomically([&] {
      saga_row& r = row_of(h.definition, h.key);
      use u(prepared(q_append_history));
      u.text(1, h.definition).text(2, h.key).integer(3, h.version).text(4, h.event_id);
      u.text(5, h.event_source).text(6, h.event_type).text(7, h.event_time).text(8, h.event_data);
      u.text(9, h.from_state).text(10, h.to_state).text(11, h.outcome).integer(12, h.recorded_ms);
      u.optional_integer(13, h.outbox_first).optional_integer(14, h.outbox_last).text(15, h.sender);
      u.optional_integer(16, r.exists ? r.last_history : std::nullopt);
      u.text(17, h.traceparent).text(18, h.tracestate).text(19, h.extensions);
      u.integer(20, h.definition_version).exec();
      if (!r.exists) return;  // a history row of a saga without an instance row has no chain to join
      r.last_history = db_.getLastInsertRowid();
      r.changed = true;
    });
  });
}

trace_context store::saga_trace(std::string_view definition, std::string_view key) {
  return guarded("saga_trace", [&] {
    settle_sagas();  // it reads instances or history by SQL
    use u(prepared(q_saga_trace));
    u.text(1, definition).text(2, key);
    trace_context t;
    if (u.step()) {
      t.traceparent = u.string(0);
      t.tracestate = u.string(1);
    }
    return t;
  });
}

std::int64_t store::append_outbox(const outbox_record& r) {
  return guarded("append_outbox", [&] {
    std::int64_t sequence = 0;
    atomically([&] {
      use u(prepared(q_append_outbox));
      u.text(1, r.event_id).text(2, r.type).text(3, r.definition).text(4, r.key).text(5, r.payload);
      u.integer(6, r.created_ms).exec();
      sequence = db_.getLastInsertRowid();  // the sequence is the rowid (INTEGER PRIMARY KEY)
      ++rows_->counts.outbox;
    });
    return sequence;
  });
}

std::int64_t store::add_dead_letter(const dead_letter_record& r) {
  return guarded("add_dead_letter", [&] {
    // The rejection happened at last_ms when the caller says so, else at created_ms.
    const std::int64_t at = r.last_ms != 0 ? r.last_ms : r.created_ms;
    std::int64_t id = 0;
    atomically([&] {
      std::optional<std::int64_t> existing;
      if (!r.event_id.empty()) {
        use u(prepared(q_find_dead_letter));
        u.text(1, r.source).text(2, r.event_id).text(3, r.payload);
        if (u.step()) existing = u.integer(0);
      }
      if (existing) {
        use u(prepared(q_count_dead_letter));
        u.integer(1, at).text(2, r.reason).integer(3, *existing).exec();
        id = *existing;
        return;
      }
      use u(prepared(q_add_dead_letter));
      u.text(1, r.event_id).text(2, r.source).text(3, r.type).text(4, r.subject).text(5, r.reason);
      u.text(6, r.payload).integer(7, r.created_ms).integer(8, at).integer(9, r.truncated ? 1 : 0);
      u.text(10, r.sender);
      u.step();
      id = u.integer(0);
    });
    return id;
  });
}

std::int64_t store::prune_dead_letters(std::int64_t before_ms, std::int64_t keep_max, std::size_t limit) {
  return guarded("prune_dead_letters", [&] {
    std::int64_t removed = 0;
    atomically([&] {
      {
        use u(prepared(q_expired_dead_letters));
        removed += u.integer(1, before_ms).limit(2, limit).exec();
      }
      auto left = limit - static_cast<std::size_t>(removed);
      if (left == 0) return;
      const std::int64_t keep = std::max<std::int64_t>(keep_max, 0);
      std::vector<std::pair<std::string, std::int64_t>> over;  // read before deleting from it
      {
        use u(prepared(q_senders_over));
        u.integer(1, keep).limit(2, left);
        while (u.step()) over.emplace_back(u.string(0), u.integer(1));
      }
      for (const auto& [sender, rows] : over) {
        if (left == 0) break;
        use u(prepared(q_oldest_dead_letters_of));
        const auto n =
            u.text(1, sender).limit(2, std::min(left, static_cast<std::size_t>(rows - keep))).exec();
        removed += n;
        left -= static_cast<std::size_t>(n);
      }
    });
    return removed;
  });
}

// ---------------------------------------------------------------------------------------------
// Timers

// A saga's timers as its instance row keeps them (schema 8): a JSON object, name -> [due_ms or
// null when disarmed, generation], parsed when the transaction first changes them and written
// back with the row (write_sagas, above).
// Arming replaces, and the generation is one more than the last (kept while disarmed).
std::int64_t store::arm_timer(std::string_view definition, std::string_view key, std::string_view name,
                              std::int64_t due_ms) {
  return guarded("arm_timer", [&] {
    std::int64_t generation = 0;
    atomically([&] {
      saga_row& r = row_of(definition, key);
      if (!r.exists)
        throw store_error("arm_timer: saga '" + std::string(definition) + "/" + std::string(key) +
                          "' has no instance row (a timer is kept in its saga's row)");
      auto& slot = timers_in(r.timers, r.timers_text, r.stored_armed)[std::string(name)];
      generation = (slot.is_array() ? slot.at(1).get<std::int64_t>() : 0) + 1;
      slot = nlohmann::json::array({due_ms, generation});
      r.changed = true;
    });
    return generation;
  });
}

// Disarming a timer that is not armed, or of a saga without an instance row, changes nothing.
void store::disarm_timer(std::string_view definition, std::string_view key, std::string_view name) {
  guarded("disarm_timer", [&] {
    atomically([&] {
      saga_row& r = row_of(definition, key);
      if (!r.exists || (!r.timers && !r.timers_text)) return;
      auto& timers = timers_in(r.timers, r.timers_text, r.stored_armed);
      const auto it = timers.find(std::string(name));
      if (it == timers.end() || it->at(0).is_null()) return;
      (*it)[0] = nullptr;
      r.changed = true;
    });
  });
}

namespace {

std::vector<std::string> distinct(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace

// Each definition's earliest `limit`, through its own part of the index, merged: a definition
// whose timers nobody fires never fills or slows the batch.
std::vector<timer_record> store::due_timers(std::int64_t now_ms, std::size_t limit,
                                            const std::vector<std::string>& definitions) {
  return guarded("due_timers", [&] {
    settle_sagas();  // it reads instances or history by SQL
    std::vector<timer_record> out;
    if (limit == 0) return out;
    for (const auto& definition : distinct(definitions)) {
      use u(prepared(q_due_timers_of));
      u.text(1, definition).integer(2, now_ms).limit(3, limit);
      while (u.step()) out.push_back(read_timer(u));
    }
    const auto earlier = [](const timer_record& a, const timer_record& b) {
      return std::tie(a.due_ms, a.definition, a.key, a.name) <
             std::tie(b.due_ms, b.definition, b.key, b.name);
    };
    std::sort(out.begin(), out.end(), earlier);
    if (out.size() > limit) out.resize(limit);
    return out;
  });
}

std::vector<std::pair<std::string, std::int64_t>> store::due_timers_elsewhere(
    std::int64_t now_ms, const std::vector<std::string>& definitions) {
  return guarded("due_timers_elsewhere", [&] {
    settle_sagas();  // it reads instances or history by SQL
    std::vector<std::string> armed;
    {
      use u(prepared(q_timer_definitions));
      while (u.step()) armed.push_back(u.string(0));
    }
    const auto ours = distinct(definitions);
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (const auto& definition : armed) {
      if (std::binary_search(ours.begin(), ours.end(), definition)) continue;
      use u(prepared(q_count_due_of));
      u.text(1, definition).integer(2, now_ms);
      u.step();
      if (const auto due = u.integer(0); due > 0) out.emplace_back(definition, due);
    }
    return out;
  });
}

std::vector<timer_record> store::timers_of(std::string_view definition, std::string_view key) {
  return guarded("timers_of", [&] {
    settle_sagas();  // it reads instances or history by SQL
    use u(prepared(q_timers_of));
    u.text(1, definition).text(2, key);
    std::vector<timer_record> out;
    while (u.step()) out.push_back(read_timer(u));
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Parked events

std::int64_t store::park(const parked_record& r) {
  return guarded("park", [&] {
    rows_->parked_empty.reset();
    use u(prepared(q_park));
    u.text(1, r.definition).text(2, r.key).text(3, r.event_id).text(4, r.source).text(5, r.type);
    u.text(6, r.payload).integer(7, r.parked_ms).text(8, r.sender);
    u.step();
    return u.integer(0);
  });
}

// After every transition (engine::retry_parked): in a transaction, an empty parked table is read
// once (its row count, kept by triggers) rather than searched for every saga.
std::vector<parked_record> store::parked_of(std::string_view definition, std::string_view key) {
  return guarded("parked_of", [&] {
    if (own_transaction_) {
      auto& empty = rows_->parked_empty;
      if (!empty) {
        use count(prepared(q_parked_rows));
        empty = !count.step() || count.integer(0) == 0;
      }
      if (*empty) return std::vector<parked_record>{};
    }
    use u(prepared(q_parked_of));
    u.text(1, definition).text(2, key);
    std::vector<parked_record> out;
    while (u.step()) out.push_back(read_parked(u));
    return out;
  });
}

std::int64_t store::count_parked(std::string_view definition, std::string_view key) {
  return guarded("count_parked", [&] {
    use u(prepared(q_count_parked));
    u.text(1, definition).text(2, key);
    u.step();
    return u.integer(0);
  });
}

std::int64_t store::count_parked_total() {
  return guarded("count_parked_total", [&]() -> std::int64_t {
    use u(prepared(q_parked_rows));
    return u.step() ? u.integer(0) : 0;
  });
}

std::int64_t store::count_parked_by_sender(std::string_view sender) {
  return guarded("count_parked_by_sender", [&]() -> std::int64_t {
    use u(prepared(q_parked_of_sender));
    u.text(1, sender);
    return u.step() ? u.integer(0) : 0;
  });
}

void store::remove_parked(std::int64_t id) {
  guarded("remove_parked", [&] {
    use u(prepared(q_remove_parked));
    u.integer(1, id).exec();
  });
}

std::vector<parked_record> store::orphaned_parked(std::int64_t before_ms, std::size_t limit) {
  return guarded("orphaned_parked", [&] {
    settle_sagas();  // it reads instances or history by SQL
    use u(prepared(q_orphaned_parked));
    u.integer(1, before_ms).limit(2, limit);
    std::vector<parked_record> out;
    while (u.step()) out.push_back(read_parked(u));
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Definitions

std::optional<definition_record> store::load_definition(std::string_view name, std::int64_t version) {
  return guarded("load_definition", [&]() -> std::optional<definition_record> {
    use u(prepared(q_load_definition));
    u.text(1, name).integer(2, version);
    if (!u.step()) return std::nullopt;
    return definition_record{std::string(name), version, u.string(0), u.string(1), u.integer(2)};
  });
}

void store::save_definition(const definition_record& r) {
  guarded("save_definition", [&] {
    use u(prepared(q_save_definition));
    u.text(1, r.name).integer(2, r.version).text(3, r.fingerprint).text(4, r.graph);
    u.integer(5, r.registered_ms).exec();
  });
}

std::vector<std::pair<std::int64_t, std::int64_t>> store::running_versions(std::string_view definition) {
  return guarded("running_versions", [&] {
    settle_sagas();  // it reads instances or history by SQL
    use u(prepared(q_running_versions));
    u.text(1, definition);
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    while (u.step()) out.emplace_back(u.integer(0), u.integer(1));
    return out;
  });
}

std::vector<std::int64_t> store::stored_versions(std::string_view definition) {
  return guarded("stored_versions", [&] {
    settle_sagas();  // the counts are written with the rows
    use u(prepared(q_stored_versions));
    u.text(1, definition);
    std::vector<std::int64_t> out;
    while (u.step()) out.push_back(u.integer(0));
    return out;
  });
}

std::vector<std::string> store::instances_outside(std::string_view definition, std::int64_t version,
                                                  const std::vector<std::string>& states) {
  return guarded("instances_outside", [&] {
    settle_sagas();  // it reads instances by SQL, and the counts are written with the rows
    std::vector<std::string> outside;
    {
      use u(prepared(q_counted_states));
      u.text(1, definition).integer(2, version);
      while (u.step()) {
        std::string state = u.string(0);
        if (std::find(states.begin(), states.end(), state) == states.end())
          outside.push_back(std::move(state));
      }
    }
    std::vector<std::string> out;
    for (const auto& state : outside) {
      use u(prepared(q_keys_in_state));
      u.text(1, definition).text(2, state).integer(3, version);
      while (u.step()) out.push_back(u.string(0));
    }
    std::sort(out.begin(), out.end());  // by key, as bytes
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Outbox relay

std::vector<outbox_record> store::unpublished(std::int64_t after_sequence, std::size_t limit) {
  return guarded("unpublished", [&] {
    use u(prepared(q_unpublished));
    u.integer(1, after_sequence).limit(2, limit);
    std::vector<outbox_record> out;
    while (u.step()) out.push_back(read_outbox(u));
    return out;
  });
}

void store::mark_published(std::int64_t from_sequence, std::int64_t to_sequence, std::int64_t published_ms) {
  restore_full_sync("mark_published");
  guarded("mark_published", [&] {
    // A publication mark need not survive power loss: a lost mark only means the row is
    // published again (at-least-once). Under FULL its own transaction is committed at NORMAL —
    // in WAL mode still atomic and consistent, just not fsynced — and the next FULL commit
    // syncs the log with it. That saves one fsync per published batch.
    const bool relax = full_sync_ && !in_transaction();
    if (relax) use(prepared(q_sync_normal)).exec();
    // From the end of the mark's own transaction on, FULL must come back before anything else
    // commits (set only then: atomically() would restore it before the mark otherwise).
    try {
      atomically([&] { extend_published(from_sequence, to_sequence, published_ms); });
    } catch (const std::exception& e) {
      // The mark failed: restore FULL all the same, and say so if that fails too.
      sync_lowered_ = relax;
      try {
        restore_full_sync("mark_published");
      } catch (const saga::store_error& restore) {
        throw saga::store_error(std::string("mark_published: ") + e.what() + "; " + restore.what());
      }
      throw;
    }
    sync_lowered_ = relax;
    restore_full_sync("mark_published");
  });
}

// The published rows are a prefix of the log (schema 12): a mark extends it to `to`, or to the
// last row written when `to` is past it (a range past the end must not announce unwritten
// events), and records when in one row of `publications`. A mark that starts after the first
// unpublished row would leave a hole: it is not recorded, and its rows are published again.
void store::extend_published(std::int64_t from, std::int64_t to, std::int64_t published_ms) {
  std::int64_t published = 0, end = 0;
  {
    use u(prepared(q_last_published));
    if (u.step()) published = u.integer(0);
  }
  if (from > published + 1) return;
  {
    use u(prepared(q_last_sequence));
    u.step();
    end = std::min(to, u.integer(0));
  }
  if (end <= published) return;
  use(prepared(q_add_publication)).integer(1, end).integer(2, published_ms).exec();
  use(prepared(q_raise_last_published)).integer(1, end).exec();
}

std::int64_t store::last_published_sequence() {
  return guarded("last_published_sequence", [&]() -> std::int64_t {
    use u(prepared(q_last_published));
    return u.step() ? u.integer(0) : 0;
  });
}

std::vector<outbox_record> store::published_range(std::int64_t from_sequence, std::size_t limit) {
  return guarded("published_range", [&] {
    use u(prepared(q_published_range));
    u.integer(1, from_sequence).limit(2, limit);
    std::vector<outbox_record> out;
    while (u.step()) out.push_back(read_outbox(u));
    return out;
  });
}

std::int64_t store::first_retained_sequence() {
  return guarded("first_retained_sequence", [&] {
    use u(prepared(q_first_retained));
    u.step();
    return u.integer(0);
  });
}

// The outbox goes only as a prefix of the log: from its first row up to the first one that is
// unpublished or was published at or after the cutoff (a clock that stepped back publishes a
// later row "earlier"), so first_retained_sequence() is exactly where replay can start and no
// hole is ever left behind it.
std::int64_t store::prune(std::int64_t outbox_before_ms, std::int64_t inbox_before_ms, std::size_t limit) {
  return guarded("prune", [&] {
    std::int64_t removed = 0;
    if (limit == 0) return removed;
    atomically([&] {
      removed += prune_published(outbox_before_ms, limit);
      use u(prepared(q_prune_inbox));
      const auto n = u.integer(1, inbox_before_ms).limit(2, limit).exec();
      rows_->counts.inbox -= n;
      removed += n;
      use minutes(prepared(q_prune_received));
      minutes.integer(1, inbox_before_ms).exec();
    });
    return removed;
  });
}

// prune()'s outbox rows, in its transaction: at most `limit`, walking at most `limit`
// publications (schema 12); then the publications no kept row needs.
std::int64_t store::prune_published(std::int64_t before_ms, std::size_t limit) {
  std::int64_t through = 0;  // the last row published before the cutoff, in that prefix
  {
    use u(prepared(q_publications_head));
    u.limit(1, limit);
    while (u.step() && u.integer(1) < before_ms) through = u.integer(0);
  }
  if (through == 0) return 0;
  std::int64_t first = 0, last = 0;
  {
    use u(prepared(q_outbox_through));
    u.integer(1, through).limit(2, limit);
    if (u.step() && !u.is_null(0)) {
      first = u.integer(0);
      last = u.integer(1);
    }
  }
  std::int64_t removed = 0;
  if (first != 0) {
    removed = use(prepared(q_prune_outbox)).integer(1, first).integer(2, last).exec();
    rows_->counts.outbox -= removed;
  }
  use(prepared(q_prune_publications)).integer(1, through).exec();
  return removed;
}

std::int64_t store::purge_finished(std::string_view definition, const std::vector<std::string>& states,
                                   std::int64_t before_ms, std::size_t limit) {
  return guarded("purge_finished", [&] {
    settle_sagas();  // it reads instances or history by SQL
    std::int64_t removed = 0;
    atomically([&] {
      std::vector<std::string> keys;
      const std::string name(definition);
      for (const auto& state : distinct(states)) {
        if (keys.size() >= limit) break;
        use u(prepared(q_finished));
        u.text(1, definition).text(2, state).integer(3, before_ms).limit(4, limit - keys.size());
        while (u.step()) {
          keys.push_back(u.string(0));
          rows_->counts.saga(name, u.integer(1), state, -1);
          rows_->counts.armed_timers -= u.integer(2);
        }
      }
      for (const auto& key : keys) {
        rows_->forget(definition, key);  // its committed row, if kept
        for (const q which : {q_purge_history, q_purge_parked, q_purge_instance}) {
          use u(prepared(which));
          u.text(1, definition).text(2, key).exec();
        }
        ++removed;
      }
    });
    return removed;
  });
}

}  // namespace saga::sqlite
