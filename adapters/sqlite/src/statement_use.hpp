#pragma once
// Private to adapters/sqlite: the two helpers every SQL call of the store and the reader goes
// through. Not installed.

#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "saga/store.hpp"

// The rowids of one saga's history (schema 7: each history row names the saga's previous row,
// the instance its newest): a recursive CTE `chain(id)` starting from the SELECT `newest` (the
// saga's newest history rowid, or no row), one rowid lookup per row, no index by saga. Used
// after WITH RECURSIVE.
#define SAGA_HISTORY_FROM(newest)                                      \
  "chain(id) AS (" newest                                              \
  " UNION ALL"                                                         \
  " SELECT h.previous FROM history AS h JOIN chain ON h.id = chain.id" \
  " WHERE h.previous IS NOT NULL)"

// SAGA_HISTORY_FROM for the saga named by ?1 (definition) and ?2 (key).
#define SAGA_HISTORY                        \
  SAGA_HISTORY_FROM(                        \
      " SELECT last_history FROM instances" \
      " WHERE definition = ?1 AND key = ?2 AND last_history IS NOT NULL")

// The end of the outbox's published prefix (schema 12): every row up to it is published, none
// after it. meta keeps it after the rows it came from were pruned.
#define SAGA_LAST_PUBLISHED "coalesce((SELECT value FROM meta WHERE key = 'last_published'), 0)"

// Timers (schema 8) live in their saga's instance row: `timers` is a JSON object, name ->
// [due_ms or null when disarmed, generation], and `next_due_ms` the soonest armed one's due
// time (NULL when none is armed), indexed by instances_due (definition, next_due_ms).

// The definitions that have armed timers, in name order, one seek of instances_due each (a skip
// scan: the number of definitions, not of sagas).
#define SAGA_TIMER_DEFINITIONS                                                    \
  "WITH RECURSIVE d(name) AS ("                                                   \
  " SELECT (SELECT min(definition) FROM instances WHERE next_due_ms IS NOT NULL)" \
  " UNION ALL"                                                                    \
  " SELECT (SELECT min(definition) FROM instances WHERE next_due_ms IS NOT NULL"  \
  "   AND definition > d.name)"                                                   \
  " FROM d WHERE d.name IS NOT NULL)"                                             \
  " SELECT name FROM d WHERE name IS NOT NULL"

// The armed timers of definition ?1, soonest first, at most ?3, within a bound on their due time
// given twice: as a condition on the sagas' next_due_ms (`saga_bound`) and on the timers' `due`
// (`timer_bound`). Columns: definition, key, name, due_ms, generation. The ?3 sagas with the
// soonest next_due_ms within the bound hold the ?3 soonest timers (each has one within the
// bound, and every timer of a saga after them is due no sooner than their own soonest), so the
// work is in proportion to the limit, not to the number of sagas.
#define SAGA_ARMED_TIMERS_OF(saga_bound, timer_bound)                                             \
  "SELECT definition, key, name, due, generation FROM ("                                          \
  " SELECT i.definition, i.key, j.key AS name, j.value ->> 0 AS due, j.value ->> 1 AS generation" \
  " FROM (SELECT definition, key, timers FROM instances"                                          \
  "       WHERE definition = ?1 AND next_due_ms IS NOT NULL AND " saga_bound                      \
  "       ORDER BY next_due_ms LIMIT ?3) AS i, json_each(i.timers) AS j)"                         \
  " WHERE due IS NOT NULL AND " timer_bound " ORDER BY due, key, name LIMIT ?3"

// How many of definition ?1's timers are due at ?2.
#define SAGA_DUE_TIMER_COUNT_OF                                                    \
  "SELECT count(*) FROM instances AS i, json_each(i.timers) AS j"                  \
  " WHERE i.definition = ?1 AND i.next_due_ms IS NOT NULL AND i.next_due_ms <= ?2" \
  " AND j.value ->> 0 <= ?2"

// The armed timers of the saga ?1 (definition), ?2 (key): columns as SAGA_ARMED_TIMERS_OF.
#define SAGA_TIMERS_OF_SAGA                                                              \
  "SELECT i.definition, i.key, j.key, j.value ->> 0, j.value ->> 1 FROM instances AS i," \
  " json_each(i.timers) AS j WHERE i.definition = ?1 AND i.key = ?2 AND j.value ->> 0 IS NOT NULL"

namespace saga::sqlite::detail {

// received_minutes (schema 11) counts the inbox's rows per received_ms / minute_ms.
inline constexpr std::int64_t minute_ms = 60'000;

// Runs an operation and turns whatever SQLite(Cpp) throws into a store_error naming it.
// Passed through unchanged: store_error, bad_alloc, and invalid_argument (a caller's bad
// argument is the caller's error, not a storage failure). Exceptions cost nothing until thrown,
// so the success path pays nothing.
template <class F>
decltype(auto) guarded(const char* operation, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const saga::store_error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw saga::store_error(std::string(operation) + ": " + e.what());
  }
}

// One use of a prepared statement: resets it and clears its bindings when the use ends, even on
// an exception. Resetting at once (rather than before the next use) ends a SELECT's read
// snapshot, which would otherwise hold back WAL checkpoints, and clearing the bindings at once
// makes bindNoCopy safe: no pointer into a caller's string outlives the use.
class use {
 public:
  explicit use(SQLite::Statement& s) : s_(s) {}
  ~use() {
    s_.tryReset();
    try {
      s_.clearBindings();
    } catch (...) {  // sqlite3_clear_bindings cannot fail; SQLiteCpp still declares a throw
    }
  }
  use(const use&) = delete;
  use& operator=(const use&) = delete;

  // Binds a string that outlives the use: no copy. A temporary would not, hence the deleted
  // overload (pass a string_view to copy).
  use& text(int index, const std::string& value) {
    s_.bindNoCopy(index, value);
    return *this;
  }
  use& text(int index, std::string&& value) = delete;
  // SQLiteCpp binds a (pointer, size) pair as a BLOB, which never compares equal to TEXT, so a
  // string_view goes through a std::string.
  use& text(int index, std::string_view value) {
    s_.bind(index, std::string(value));
    return *this;
  }
  use& text(int index, const char* value) { return text(index, std::string_view(value)); }
  use& optional_text(int index, const std::optional<std::string>& value) {
    if (value) {
      s_.bind(index, *value);
    } else {
      s_.bind(index);
    }
    return *this;
  }
  use& integer(int index, std::int64_t value) {
    s_.bind(index, value);
    return *this;
  }
  use& optional_integer(int index, const std::optional<std::int64_t>& value) {
    if (value) {
      s_.bind(index, *value);
    } else {
      s_.bind(index);
    }
    return *this;
  }
  use& limit(int index, std::size_t value) {
    constexpr auto max = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    s_.bind(index, static_cast<std::int64_t>(std::min(value, max)));
    return *this;
  }

  bool step() { return s_.executeStep(); }
  int exec() { return s_.exec(); }

  std::string string(int column) const { return s_.getColumn(column).getString(); }
  std::int64_t integer(int column) const { return s_.getColumn(column).getInt64(); }
  std::optional<std::int64_t> optional_integer(int column) const {
    if (s_.isColumnNull(column)) return std::nullopt;
    return integer(column);
  }
  bool is_null(int column) const { return s_.isColumnNull(column); }

 private:
  SQLite::Statement& s_;
};

}  // namespace saga::sqlite::detail
