#include "schema.hpp"

#include <iterator>
#include <stdexcept>
#include <string>

#include "saga/postgres/store.hpp"
#include "saga/store.hpp"

namespace saga::postgres::detail {

pq::connection connect(const options& opts) {
  constexpr std::size_t max_identifier = 63;  // NAMEDATALEN - 1
  if (opts.schema.empty()) throw std::invalid_argument("saga::postgres::options::schema is empty");
  if (opts.schema.size() > max_identifier)
    throw std::invalid_argument("saga::postgres::options::schema is longer than 63 bytes: \"" + opts.schema +
                                "\"");
  return pq::connection(opts.conninfo);
}

namespace {

struct migration {
  int to;
  const char* sql;
};

// Schema 1: the layout of SQLite's schema 9 (docs/architecture.md), in PostgreSQL's types, with
// these differences (docs/postgres.md):
//   * keys, states and definition names are COLLATE "C", so that every ORDER BY sorts bytes as
//     SQLite and the engine's std::sort do, whatever the database's locale;
//   * a saga's history is found through history_by_saga (definition, key, id): the chain of
//     SQLite's schema 7 saved one randomly placed B-tree page per event in SQLite's commit and
//     checkpoint, a trade that PostgreSQL's heap tables do not offer in the same way;
//   * outbox sequences come from meta's outbox_sequence row, updated in the writing transaction
//     (a rollback gives them back: no gaps, as the protocol promises); schema 3 leaves the
//     numbering to one relay after the commit instead;
//   * the parked counts are counted (count(*) through an index) rather than kept by triggers in
//     one row, which every writer would have to lock;
//   * dead letters keep their payload as bytea: an input that could not be parsed is kept as
//     received, even when it is not UTF-8.
constexpr migration migrations[] = {
    {1, R"sql(
CREATE TABLE instances (
  definition text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  state text COLLATE "C" NOT NULL,
  data text NOT NULL,
  version bigint NOT NULL,
  fingerprint text NOT NULL,
  correlation_id text NOT NULL,
  created_ms bigint NOT NULL,
  updated_ms bigint NOT NULL,
  state_since_ms bigint NOT NULL,
  -- state_since_ms while the saga is in a terminal state, else NULL (instance_record::finished)
  finished_ms bigint,
  -- {"<name>": [due_ms or null when disarmed, generation]}; next_due_ms: the soonest armed one
  timers jsonb,
  next_due_ms bigint,
  PRIMARY KEY (definition, key)
);
CREATE INDEX instances_finished ON instances (definition, state, finished_ms) WHERE finished_ms IS NOT NULL;
CREATE INDEX instances_due ON instances (definition, next_due_ms) WHERE next_due_ms IS NOT NULL;

CREATE TABLE history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  definition text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  version bigint NOT NULL,
  event_id text NOT NULL,
  event_source text NOT NULL,
  event_type text NOT NULL,
  event_time text NOT NULL,
  event_data text NOT NULL,
  from_state text NOT NULL,
  to_state text NOT NULL,
  outcome text NOT NULL,
  recorded_ms bigint NOT NULL,
  outbox_first bigint,
  outbox_last bigint,
  sender text NOT NULL DEFAULT '',
  traceparent text NOT NULL DEFAULT '',
  tracestate text NOT NULL DEFAULT '',
  extensions text NOT NULL DEFAULT ''
);
CREATE INDEX history_by_saga ON history (definition, key, id);

CREATE TABLE inbox (
  source text COLLATE "C" NOT NULL,
  event_id text COLLATE "C" NOT NULL,
  definition text NOT NULL,
  key text NOT NULL,
  ack text NOT NULL,
  received_ms bigint NOT NULL,
  PRIMARY KEY (source, event_id)
);
CREATE INDEX inbox_by_received ON inbox (received_ms);

CREATE TABLE outbox (
  sequence bigint PRIMARY KEY,
  event_id text NOT NULL,
  type text NOT NULL,
  definition text NOT NULL,
  key text NOT NULL,
  payload text NOT NULL,
  created_ms bigint NOT NULL,
  published_ms bigint
);
CREATE INDEX outbox_unpublished ON outbox (sequence) WHERE published_ms IS NULL;

CREATE TABLE dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id text COLLATE "C" NOT NULL,
  source text COLLATE "C" NOT NULL,
  type text NOT NULL,
  subject text NOT NULL,
  reason text NOT NULL,
  payload bytea NOT NULL,
  created_ms bigint NOT NULL,
  count bigint NOT NULL DEFAULT 1,
  last_ms bigint NOT NULL,
  truncated boolean NOT NULL DEFAULT false,
  sender text COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX dead_letters_by_event ON dead_letters (source, event_id) WHERE event_id <> '';
CREATE INDEX dead_letters_by_last ON dead_letters (last_ms, id);
CREATE INDEX dead_letters_by_sender ON dead_letters (sender, last_ms, id);

CREATE TABLE parked (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  definition text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  event_id text NOT NULL,
  source text NOT NULL,
  type text NOT NULL,
  payload text NOT NULL,
  parked_ms bigint NOT NULL,
  sender text COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX parked_by_saga ON parked (definition, key, id);
CREATE INDEX parked_by_sender ON parked (sender);

CREATE TABLE definitions (
  name text COLLATE "C" PRIMARY KEY,
  fingerprint text NOT NULL,
  graph text NOT NULL,
  registered_ms bigint NOT NULL
);

-- last_published survives the pruning of the rows it was derived from; outbox_sequence is the
-- last sequence assigned (never reused, even after the newest rows were pruned).
CREATE TABLE meta (
  key text COLLATE "C" PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO meta (key, value) VALUES ('last_published', 0), ('outbox_sequence', 0);
)sql"},
    // Schema 2 (SQLite's schema 10, issue 18): definition versions side by side. A definition is
    // stored per (name, version); each saga records the version it runs on (set when it starts,
    // changed only by a migration) and each history row the version that handled it. Everything
    // before is version 1.
    {2, R"sql(
ALTER TABLE definitions ADD COLUMN version bigint NOT NULL DEFAULT 1;
ALTER TABLE definitions DROP CONSTRAINT definitions_pkey;
ALTER TABLE definitions ADD PRIMARY KEY (name, version);
ALTER TABLE definitions ALTER COLUMN version DROP DEFAULT;
ALTER TABLE instances ADD COLUMN definition_version bigint NOT NULL DEFAULT 1;
ALTER TABLE history ADD COLUMN definition_version bigint NOT NULL DEFAULT 1;
)sql"},
    // Schema 3 (issue 17, item 4): publication sequences numbered after the commit, by one relay at
    // a time (docs/postgres.md, "One relay numbers the log"). A writer inserts its outbox rows with
    // an id (an identity: gaps are harmless, it is no publication sequence) and the id of its
    // transaction; `sequence` stays NULL until the relay, holding the lease in `relay`, numbers the
    // committed rows below the xid horizon in (xid, id) order from meta's outbox_sequence. History
    // rows name their outbox rows by id from now on; the existing rows keep id = sequence, so the
    // existing history rows still name the right ones.
    {3, R"sql(
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox ALTER COLUMN sequence DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN id bigint;
UPDATE outbox SET id = sequence;
ALTER TABLE outbox ALTER COLUMN id SET NOT NULL;
ALTER TABLE outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(pg_get_serial_sequence('outbox', 'id'), coalesce((SELECT max(id) FROM outbox), 0) + 1, false);
ALTER TABLE outbox ADD PRIMARY KEY (id);
ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE UNIQUE INDEX outbox_sequence ON outbox (sequence);
CREATE INDEX outbox_unnumbered ON outbox (xid, id) WHERE sequence IS NULL;
-- The relay lease: one row. `epoch` changes with every new holder; expires_ms is the database
-- server's clock (one clock for every sagad, whatever their hosts' clocks say).
CREATE TABLE relay (
  id integer PRIMARY KEY CHECK (id = 1),
  holder text NOT NULL,
  epoch bigint NOT NULL,
  expires_ms bigint NOT NULL
);
INSERT INTO relay (id, holder, epoch, expires_ms) VALUES (1, '', 0, 0);
)sql"},
    // Schema 4 (SQLite's schema 11, issue 19): the counts a console or a metrics scrape shows, kept
    // at write time instead of counted (docs/postgres.md, "Kept counts"). Several sagad write at
    // once, so no writer updates a shared counter row (it would hold its lock until its commit and
    // serialise them all): each writing statement appends its change to count_changes (a heap
    // without an index: appends only), and a store folds the changes into kept_counts about once a
    // second (store.cpp, fold_counts). A reader adds both. `counted` is 'sagas' (per definition,
    // version and state), 'inbox', 'outbox' or 'armed_timers' (definition '', version 0, state '').
    // Not SQLite's two list indexes (instances_by_created, instances_by_state_created): an update
    // that is not HOT writes an entry into every index of the table, and an event updates its
    // instance row up to three times (the upsert, a timer disarmed, one armed), so each index cost
    // a sagad about a fifth of its events/s (docs/postgres.md); the list sorts instead.
    {4, R"sql(
CREATE TABLE kept_counts (
  counted text COLLATE "C" NOT NULL,
  definition text COLLATE "C" NOT NULL,
  definition_version bigint NOT NULL,
  state text COLLATE "C" NOT NULL,
  n bigint NOT NULL,
  PRIMARY KEY (counted, definition, definition_version, state)
);
CREATE TABLE count_changes (
  counted text COLLATE "C" NOT NULL,
  definition text COLLATE "C" NOT NULL,
  definition_version bigint NOT NULL,
  state text COLLATE "C" NOT NULL,
  n bigint NOT NULL
);
)sql" SAGA_PG_RECOUNT R"sql(
)sql"},
};

// One key for every saga schema of a database: migrations are rare, and two stores opening the
// same schema at once must not both create it.
static_assert(std::size(migrations) == store::current_schema);

constexpr const char* migration_lock = "SELECT pg_advisory_xact_lock(5361676101)";

}  // namespace

int schema_version(pq::connection& c) {
  auto exists = c.exec("schema_version", "SELECT to_regclass('schema_version') IS NOT NULL");
  if (exists.text(0, 0) != "t") return 0;
  auto v = c.exec("schema_version", "SELECT coalesce(max(version), 0) FROM schema_version");
  return std::stoi(v.text(0, 0));
}

void migrate(pq::connection& c, const std::string& schema, const std::string& quoted) {
  constexpr int current = store::current_schema;
  const auto newer = [&](int found) {
    return saga::store_error("schema \"" + schema + "\" version " + std::to_string(found) +
                             " is newer than this build supports (" + std::to_string(current) + ")");
  };
  int version = schema_version(c);
  if (version > current) throw newer(version);
  if (version == current) return;

  c.exec("migrate", "BEGIN");
  try {
    c.exec("migrate", migration_lock);
    c.exec("migrate", "CREATE SCHEMA IF NOT EXISTS " + quoted);
    c.exec("migrate", "CREATE TABLE IF NOT EXISTS " + quoted + ".schema_version (version integer NOT NULL)");
    version = schema_version(c);  // again, under the lock: another store may have migrated
    if (version > current) throw newer(version);
    for (const auto& m : migrations) {
      if (m.to > version && m.to <= current) c.exec("migrate", m.sql);
    }
    c.exec("migrate", "DELETE FROM " + quoted + ".schema_version");
    c.exec("migrate",
           "INSERT INTO " + quoted + ".schema_version (version) VALUES (" + std::to_string(current) + ")");
    c.exec("migrate", "COMMIT");
  } catch (...) {
    try {
      c.exec("migrate", "ROLLBACK");
    } catch (...) {  // the connection is gone: so is the transaction
    }
    throw;
  }
}

}  // namespace saga::postgres::detail
