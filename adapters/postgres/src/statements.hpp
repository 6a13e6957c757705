#pragma once
// Private to adapters/postgres: every statement the store runs, prepared once per connection.
// Only parameters carry values; `types` names each parameter's type (pq::connection::prepare).
// Not installed.

#include <cstddef>
#include <iterator>

#include "schema.hpp"

namespace saga::postgres::detail {

enum q : std::size_t {
  q_begin,
  q_commit,
  q_rollback,
  q_savepoint,
  q_release_savepoint,
  q_rollback_to_savepoint,
  q_lock_sagas,
  q_try_lock_sagas,
  q_find_ack,
  q_insert_inbox,
  q_load_instance,
  q_save_instance,
  q_append_history,
  q_saga_trace,
  q_append_outbox,
  q_add_dead_letter,
  q_find_dead_letter,
  q_count_dead_letter,
  q_expired_dead_letters,
  q_senders_over,
  q_oldest_dead_letters_of,
  q_arm_timer,
  q_disarm_timer,
  q_due_timers_of,
  q_timer_definitions,
  q_count_due_of,
  q_timers_of,
  q_park,
  q_parked_of,
  q_count_parked,
  q_count_parked_total,
  q_any_parked,
  q_count_parked_by_sender,
  q_remove_parked,
  q_orphaned_parked,
  q_load_definition,
  q_save_definition,
  q_counted_states,
  q_keys_in_state,
  q_stored_versions,
  q_running_versions,
  q_unpublished,
  q_mark_published,
  q_last_published,
  q_published_range,
  q_first_retained,
  q_claim_relay,
  q_renew_relay,
  q_number_outbox,
  q_outbox_head,
  q_prune_outbox,
  q_prune_inbox,
  q_finished,
  q_purge_history,
  q_purge_parked,
  q_purge_instance,
  q_count_tables,
  q_fold_counts,
  q_count_
};

struct statement {
  const char* name;  // the prepared statement's name on the connection
  const char* types;
  const char* sql;
};

// The soonest armed due time of the timers object `t` (NULL when none is armed): a disarmed
// timer's due time is JSON null, which ->> turns into SQL NULL, which min() skips.
#define SAGA_PG_NEXT_DUE(t) "(SELECT min((e.v ->> 0)::bigint) FROM jsonb_each(" t ") AS e(k, v))"

// The columns of a parked row and of an outbox row, in the order read_parked and read_outbox read.
#define SAGA_PG_PARKED "id, definition, key, event_id, source, type, payload, parked_ms, sender"
#define SAGA_PG_OUTBOX "sequence, event_id, type, definition, key, payload, created_ms, published_ms"

inline constexpr statement statements[] = {
    {"saga_begin", "", "BEGIN"},
    {"saga_commit", "", "COMMIT"},
    {"saga_rollback", "", "ROLLBACK"},
    {"saga_savepoint", "", "SAVEPOINT saga_event"},
    {"saga_release_savepoint", "", "RELEASE SAVEPOINT saga_event"},
    {"saga_rollback_to_savepoint", "", "ROLLBACK TO SAVEPOINT saga_event"},
    // Transaction-scoped advisory locks, one per saga key, in the order of their ids so that two
    // writers never wait on each other in a cycle: the subquery sorts, and the outer query takes
    // the locks row by row in that order. The first key is this schema (stores in other schemas
    // never contend); the second, the key's hash: two keys sharing a hash share a lock, which
    // serialises a little more and never less. $1: the keys as a JSON array of strings.
    {"saga_lock_sagas", "t",
     "SELECT count(pg_advisory_xact_lock(hashtext(current_schema()), s.h)) FROM"
     " (SELECT DISTINCT hashtext(k) AS h FROM jsonb_array_elements_text($1::jsonb) AS k ORDER BY 1) AS s"},
    // The same locks without waiting: the keys whose lock was free (no order needed: nothing waits).
    {"saga_try_lock_sagas", "t",
     "SELECT k FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS a(k, n)"
     " WHERE pg_try_advisory_xact_lock(hashtext(current_schema()), hashtext(k)) ORDER BY n"},
    {"saga_find_ack", "tt", "SELECT ack FROM inbox WHERE source = $1 AND event_id = $2"},
    {"saga_insert_inbox", "ttttti",
     "INSERT INTO inbox (source, event_id, definition, key, ack, received_ms) VALUES ($1, $2, $3, $4, $5, "
     "$6)"},
    {"saga_load_instance", "tt",
     "SELECT state, data, version, fingerprint, correlation_id, created_ms, updated_ms, state_since_ms,"
     " finished_ms, definition_version FROM instances WHERE definition = $1 AND key = $2"},
    // created_ms and correlation_id belong to the saga's first row. The saga moves from the
    // (version, state) it had (`old`, read before the upsert: one snapshot) to the one it has
    // (`saved`): a change row for each side that differs (schema 4), none when neither does.
    {"saga_save_instance", "ttttittiiiii",
     "WITH old AS (SELECT definition_version AS v, state AS s FROM instances WHERE definition = $1 AND key = "
     "$2),"
     " saved AS (INSERT INTO instances (definition, key, state, data, version, fingerprint, correlation_id,"
     " created_ms, updated_ms, state_since_ms, finished_ms, definition_version)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
     " ON CONFLICT (definition, key) DO UPDATE SET state = excluded.state, data = excluded.data,"
     " version = excluded.version, fingerprint = excluded.fingerprint, updated_ms = excluded.updated_ms,"
     " state_since_ms = excluded.state_since_ms, finished_ms = excluded.finished_ms,"
     " definition_version = excluded.definition_version RETURNING definition_version AS v, state AS s)"
     " INSERT INTO count_changes (counted, definition, definition_version, state, n)"
     " SELECT 'sagas', $1, c.v, c.s, sum(c.n) FROM"
     " (SELECT v, s, -1 AS n FROM old UNION ALL SELECT v, s, 1 FROM saved) AS c"
     " GROUP BY c.v, c.s HAVING sum(c.n) <> 0"},
    {"saga_append_history", "ttittttttttiiitttti",
     "INSERT INTO history (definition, key, version, event_id, event_source, event_type, event_time,"
     " event_data, from_state, to_state, outcome, recorded_ms, outbox_first, outbox_last, sender,"
     " traceparent, tracestate, extensions, definition_version)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"},
    // the newest history row of a saga that exists (as SQLite finds it from the instance row)
    {"saga_saga_trace", "tt",
     "SELECT h.traceparent, h.tracestate FROM history AS h WHERE h.definition = $1 AND h.key = $2"
     " AND EXISTS (SELECT 1 FROM instances AS i WHERE i.definition = $1 AND i.key = $2)"
     " ORDER BY h.id DESC LIMIT 1"},
    // No sequence yet: the relay numbers the row after the commit (number_outbox). The id is the
    // row's provisional number; xid (its default) the writing transaction's.
    {"saga_append_outbox", "tttttii",
     "INSERT INTO outbox (event_id, type, definition, key, payload, created_ms, published_ms)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"},
    {"saga_add_dead_letter", "tttttyiibt",
     "INSERT INTO dead_letters (event_id, source, type, subject, reason, payload, created_ms, last_ms,"
     " truncated, sender) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id"},
    // `event_id <> ''` lets the partial index serve it
    {"saga_find_dead_letter", "tty",
     "SELECT id FROM dead_letters WHERE source = $1 AND event_id = $2 AND event_id <> '' AND payload = $3"
     " ORDER BY id LIMIT 1"},
    {"saga_count_dead_letter", "iti",
     "UPDATE dead_letters SET count = count + 1, last_ms = $1, reason = $2 WHERE id = $3"},
    {"saga_expired_dead_letters", "ii",
     "DELETE FROM dead_letters WHERE id IN"
     " (SELECT id FROM dead_letters WHERE last_ms < $1 ORDER BY last_ms, id LIMIT $2)"},
    // the senders holding more than $1, the largest first
    {"saga_senders_over", "ii",
     "SELECT sender, count(*) FROM dead_letters GROUP BY sender HAVING count(*) > $1"
     " ORDER BY count(*) DESC, sender LIMIT $2"},
    {"saga_oldest_dead_letters_of", "ti",
     "DELETE FROM dead_letters WHERE id IN"
     " (SELECT id FROM dead_letters WHERE sender = $1 ORDER BY last_ms, id LIMIT $2)"},
    // Arms timer $3 of saga ($1, $2) for $4: one more than its last generation. No row: no saga.
    // One more armed timer (schema 4's count) unless it was armed already.
    {"saga_arm_timer", "ttti",
     "WITH armed AS (SELECT coalesce(timers, '{}'::jsonb) || jsonb_build_object($3::text,"
     "   jsonb_build_array($4::bigint, coalesce((timers -> $3::text ->> 1)::bigint, 0) + 1)) AS t,"
     "   timers -> $3::text ->> 0 IS NULL AS newly"
     "   FROM instances WHERE definition = $1 AND key = $2 FOR UPDATE),"
     " counted AS (INSERT INTO count_changes (counted, definition, definition_version, state, n)"
     "   SELECT 'armed_timers', '', 0, '', 1 FROM armed WHERE armed.newly)"
     " UPDATE instances SET timers = armed.t, next_due_ms = " SAGA_PG_NEXT_DUE(
         "armed.t") " FROM armed WHERE definition = $1 AND key = $2 RETURNING (armed.t -> $3::text ->> "
                    "1)::bigint"},
    // Disarms it, keeping its generation; writes nothing when it is not armed.
    {"saga_disarm_timer", "ttt",
     "WITH disarmed AS (SELECT jsonb_set(timers, ARRAY[$3::text, '0'], 'null'::jsonb) AS t"
     "   FROM instances WHERE definition = $1 AND key = $2 AND timers -> $3::text ->> 0 IS NOT NULL FOR "
     "UPDATE),"
     " counted AS (INSERT INTO count_changes (counted, definition, definition_version, state, n)"
     "   SELECT 'armed_timers', '', 0, '', -1 FROM disarmed)"
     " UPDATE instances SET timers = disarmed.t, next_due_ms = " SAGA_PG_NEXT_DUE(
         "disarmed.t") " FROM disarmed WHERE definition = $1 AND key = $2"},
    // Definition $1's armed timers due at $2, soonest first, at most $3: the $3 sagas with the
    // soonest next_due_ms hold them (each has one due, and every timer of a later saga is due no
    // sooner), so the work is in proportion to the limit.
    {"saga_due_timers_of", "tii",
     "SELECT i.definition, i.key, e.name, (e.v ->> 0)::bigint AS due, (e.v ->> 1)::bigint"
     " FROM (SELECT definition, key, timers FROM instances WHERE definition = $1"
     "       AND next_due_ms IS NOT NULL AND next_due_ms <= $2 ORDER BY next_due_ms LIMIT $3) AS i,"
     " jsonb_each(i.timers) AS e(name, v) WHERE (e.v ->> 0)::bigint <= $2"
     " ORDER BY due, i.key, e.name COLLATE \"C\" LIMIT $3"},
    // the definitions with armed timers, one index seek each (a loose index scan)
    {"saga_timer_definitions", "",
     "WITH RECURSIVE d(name) AS ("
     " SELECT (SELECT min(definition) FROM instances WHERE next_due_ms IS NOT NULL)"
     " UNION ALL"
     " SELECT (SELECT min(definition) FROM instances WHERE next_due_ms IS NOT NULL AND definition > d.name)"
     " FROM d WHERE d.name IS NOT NULL)"
     " SELECT name FROM d WHERE name IS NOT NULL"},
    {"saga_count_due_of", "ti",
     "SELECT count(*) FROM instances AS i, jsonb_each(i.timers) AS e(k, v)"
     " WHERE i.definition = $1 AND i.next_due_ms IS NOT NULL AND i.next_due_ms <= $2"
     " AND (e.v ->> 0)::bigint <= $2"},
    {"saga_timers_of", "tt",
     "SELECT i.definition, i.key, e.name, (e.v ->> 0)::bigint, (e.v ->> 1)::bigint"
     " FROM instances AS i, jsonb_each(i.timers) AS e(name, v)"
     " WHERE i.definition = $1 AND i.key = $2 AND e.v ->> 0 IS NOT NULL ORDER BY e.name COLLATE \"C\""},
    {"saga_park", "ttttttit",
     "INSERT INTO parked (definition, key, event_id, source, type, payload, parked_ms, sender)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id"},
    {"saga_parked_of", "tt",
     "SELECT " SAGA_PG_PARKED " FROM parked WHERE definition = $1 AND key = $2 ORDER BY id"},
    {"saga_count_parked", "tt", "SELECT count(*) FROM parked WHERE definition = $1 AND key = $2"},
    {"saga_count_parked_total", "", "SELECT count(*) FROM parked"},
    {"saga_any_parked", "", "SELECT EXISTS (SELECT 1 FROM parked)"},
    {"saga_count_parked_by_sender", "t", "SELECT count(*) FROM parked WHERE sender = $1"},
    {"saga_remove_parked", "i", "DELETE FROM parked WHERE id = $1"},
    {"saga_orphaned_parked", "ii",
     "SELECT " SAGA_PG_PARKED " FROM parked AS p WHERE p.parked_ms < $1 AND NOT EXISTS"
     " (SELECT 1 FROM instances AS i WHERE i.definition = p.definition AND i.key = p.key)"
     " ORDER BY p.id LIMIT $2"},
    {"saga_load_definition", "ti",
     "SELECT fingerprint, graph, registered_ms FROM definitions WHERE name = $1 AND version = $2"},
    {"saga_save_definition", "titti",
     "INSERT INTO definitions (name, version, fingerprint, graph, registered_ms) VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (name, version) DO UPDATE SET fingerprint = excluded.fingerprint, graph = excluded.graph,"
     " registered_ms = excluded.registered_ms"},
    // instances_outside reads the states a version's sagas are in from the kept counts and filters
    // them in C++ (the SQL does not depend on how many states it is given); only a state outside
    // has its keys read
    {"saga_counted_states", "ti",
     "SELECT state FROM " SAGA_PG_SAGA_COUNTS " AS c WHERE definition = $1 AND definition_version = $2"
     " GROUP BY state HAVING sum(n) > 0"},
    {"saga_keys_in_state", "tti",
     "SELECT key FROM instances WHERE definition = $1 AND state = $2 AND definition_version = $3"},
    {"saga_stored_versions", "t",
     "SELECT definition_version FROM " SAGA_PG_SAGA_COUNTS " AS c WHERE definition = $1"
     " GROUP BY definition_version HAVING sum(n) > 0 ORDER BY definition_version"},
    // a scan of the definition's instances (at start-up, only when a version nothing registered
    // serves has sagas: engine::unserved_versions)
    {"saga_running_versions", "t",
     "SELECT definition_version, count(*) FROM instances WHERE definition = $1 AND finished_ms IS NULL"
     " GROUP BY definition_version ORDER BY definition_version"},
    {"saga_unpublished", "ii",
     "SELECT " SAGA_PG_OUTBOX " FROM outbox WHERE published_ms IS NULL AND sequence > $1"
     " ORDER BY sequence LIMIT $2"},
    // last_published is only ever raised, and only to a sequence that exists
    {"saga_mark_published", "iii",
     "WITH marked AS (UPDATE outbox SET published_ms = $1 WHERE sequence BETWEEN $2 AND $3"
     "   AND published_ms IS NULL RETURNING sequence)"
     " UPDATE meta SET value = greatest(value, (SELECT max(sequence) FROM marked))"
     " WHERE key = 'last_published' AND EXISTS (SELECT 1 FROM marked)"},
    {"saga_last_published", "", "SELECT value FROM meta WHERE key = 'last_published'"},
    {"saga_published_range", "ii",
     "SELECT " SAGA_PG_OUTBOX " FROM outbox WHERE sequence >= $1 AND published_ms IS NOT NULL"
     " ORDER BY sequence LIMIT $2"},
    {"saga_first_retained", "", "SELECT coalesce(min(sequence), 0) FROM outbox"},
    // The relay lease, on the server's clock: taken when free or expired (a new holder, a new
    // epoch), renewed by its holder; no row: another holder's lease is current.
    {"saga_claim_relay", "ti",
     "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms)"
     " UPDATE relay SET epoch = CASE WHEN relay.holder = $1 THEN relay.epoch ELSE relay.epoch + 1 END,"
     " holder = $1, expires_ms = now.ms + $2 FROM now WHERE relay.holder = $1 OR relay.expires_ms <= now.ms"
     " RETURNING relay.epoch"},
    // The numbering transaction's fence: the lease is still epoch $1's (and renewed); the row stays
    // locked until the numbering commits, so no takeover lands in between.
    {"saga_renew_relay", "ii",
     "UPDATE relay SET expires_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $2"
     " WHERE epoch = $1"},
    // Numbers at most $1 committed rows after the last number, in (xid, id) order, only those of
    // transactions below the xid horizon: every transaction with a smaller xid has ended, and any
    // transaction still in flight (or yet to write) has a larger one, so no row numbered here can
    // be preceded by a later commit. One statement: one snapshot for the horizon and the rows.
    {"saga_number_outbox", "i",
     "WITH todo AS (SELECT id, row_number() OVER (ORDER BY xid, id) AS n FROM"
     "   (SELECT id, xid FROM outbox WHERE sequence IS NULL"
     "    AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid, id LIMIT $1) AS t),"
     " bumped AS (UPDATE meta SET value = value + (SELECT count(*) FROM todo)"
     "   WHERE key = 'outbox_sequence' AND EXISTS (SELECT 1 FROM todo)"
     "   RETURNING value - (SELECT count(*) FROM todo) AS base)"
     " UPDATE outbox AS o SET sequence = bumped.base + todo.n FROM todo, bumped WHERE o.id = todo.id"},
    // the oldest rows, in log order (prune deletes only a prefix); unnumbered rows come after all
    {"saga_outbox_head", "i",
     "SELECT sequence, published_ms FROM outbox WHERE sequence IS NOT NULL ORDER BY sequence LIMIT $1"},
    {"saga_prune_outbox", "ii", "DELETE FROM outbox WHERE sequence BETWEEN $1 AND $2"},
    {"saga_prune_inbox", "ii",
     "DELETE FROM inbox WHERE (source, event_id) IN"
     " (SELECT source, event_id FROM inbox WHERE received_ms < $1 ORDER BY received_ms LIMIT $2)"},
    // through instances_finished, one state at a time
    {"saga_finished", "ttii",
     "SELECT key FROM instances WHERE definition = $1 AND state = $2 AND finished_ms IS NOT NULL"
     " AND finished_ms < $3 ORDER BY finished_ms LIMIT $4"},
    {"saga_purge_history", "tt", "DELETE FROM history WHERE definition = $1 AND key = $2"},
    {"saga_purge_parked", "tt", "DELETE FROM parked WHERE definition = $1 AND key = $2"},
    // The saga and its armed timers leave the kept counts (schema 4).
    {"saga_purge_instance", "tt",
     "WITH gone AS (DELETE FROM instances WHERE definition = $1 AND key = $2"
     "   RETURNING definition_version, state, timers)"
     " INSERT INTO count_changes (counted, definition, definition_version, state, n)"
     " SELECT 'sagas', $1, definition_version, state, -1 FROM gone"
     " UNION ALL SELECT 'armed_timers', '', 0, '', -count(*) FROM gone, jsonb_each(gone.timers) AS e(k, v)"
     "   WHERE e.v ->> 0 IS NOT NULL HAVING count(*) > 0"},
    // A transaction's rows added to (or pruned from) the inbox and the outbox, at its commit.
    {"saga_count_tables", "ii",
     "INSERT INTO count_changes (counted, definition, definition_version, state, n)"
     " SELECT v.c, '', 0, '', v.n FROM (VALUES ('inbox', $1::bigint), ('outbox', $2::bigint)) AS v(c, n)"
     " WHERE v.n <> 0"},
    // The change rows folded into kept_counts, in one transaction (a reader sees them in one or
    // in the other); kept_counts' rows are taken in key order, so two folding stores never wait on
    // each other in a cycle.
    {"saga_fold_counts", "",
     "WITH moved AS (DELETE FROM count_changes RETURNING counted, definition, definition_version, state, n)"
     " INSERT INTO kept_counts (counted, definition, definition_version, state, n)"
     " SELECT counted, definition, definition_version, state, sum(n) FROM moved GROUP BY 1, 2, 3, 4"
     " ORDER BY 1, 2, 3, 4"
     " ON CONFLICT (counted, definition, definition_version, state) DO UPDATE SET n = kept_counts.n + "
     "excluded.n"},
};
static_assert(std::size(statements) == q_count_);

#undef SAGA_PG_NEXT_DUE
#undef SAGA_PG_PARKED
#undef SAGA_PG_OUTBOX

}  // namespace saga::postgres::detail
