#pragma once
// saga::reader — the read port: what embedders and tools (sagactl, a console) read back from a
// saga database, without knowing how the store keeps it.
//
// A reader never writes: every method is a query, and an implementation over a file opens it
// so that it cannot write (SQLite: read-only). Records reuse the store's (saga/store.hpp) where
// they fit; times are milliseconds since the epoch, JSON is text (parse it with nlohmann::json,
// a graph with saga::graph_from_json).
//
// Consistency: each method reads one consistent state of the database. Calls made between
// begin_snapshot() and end_snapshot() all read the same state (one read transaction), so that
// for example a saga's instance, history and follow-on events agree; reader_snapshot does that
// for a scope, read_saga() for one saga. A snapshot holds no write lock: under WAL the writer
// goes on, and what it commits meanwhile is seen after end_snapshot(). Snapshots nest (only the
// outermost begins and ends).
//
// Order and limits: every list has a stable order, stated per method, and a limit; a limit of
// 0 returns nothing. Every value a caller passes (names, keys, states, times) is data for the
// query, never part of its text.
//
// Errors: methods throw saga::store_error naming the operation, for example
// "sagas: database is locked". "Not found" is an empty optional or an empty list, not an error.
//
// Thread-safety: none; one thread at a time uses a reader (like saga::store).
//
// reader_wrapper forwards every call to another reader, so that a test can override one method
// (a failing read, counting calls) and keep the rest.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/store.hpp"

namespace saga {

// A half-open interval of times: from_ms (inclusive) to before_ms (exclusive); an absent bound
// does not filter.
struct time_range {
  std::optional<std::int64_t> from_ms;
  std::optional<std::int64_t> before_ms;
};

// Where a page of sagas() ended: the (created_ms, definition, key) of its last row.
struct saga_position {
  std::int64_t created_ms = 0;
  std::string definition;
  std::string key;
};

struct saga_filter {
  std::optional<std::string> definition;  // only sagas of this definition
  std::optional<std::string> state;       // only sagas in this state
  // Only sagas not in a terminal state of their definition's stored graph (a saga whose
  // definition is not registered counts as unfinished).
  bool unfinished_only = false;
  time_range created;                  // instance_record::created_ms
  time_range updated;                  // instance_record::updated_ms
  time_range state_since;              // instance_record::state_since_ms (when it entered its state)
  std::optional<saga_position> after;  // keyset paging: only sagas after this position
  // Newest first: ordered by (created_ms, definition, key) descending, `after` then meaning
  // "before this position" (the next page of that order).
  bool newest_first = false;
  // Only sagas on a version of their definition other than this one (sagactl migrate's candidates).
  std::optional<std::int64_t> not_on_version;
  // Only sagas with a history row in this trace (its 32 hex digits), looked for among the newest
  // `trace_scan` history rows of the database: there is no index by trace id (its write would
  // cost every event), so the search is a bounded scan (docs/cli.md).
  std::optional<std::string> trace_id;
  std::size_t trace_scan = 1'000'000;
  std::size_t limit = 1000;
};

// One row of a saga list: the instance without its data, and what waits on it.
struct saga_summary {
  std::string definition;
  std::string key;
  std::string state;
  std::int64_t version = 0;
  std::string fingerprint;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t state_since_ms = 0;
  std::int64_t armed_timers = 0;
  std::int64_t parked = 0;
  std::int64_t definition_version = 1;  // the version of its definition it runs on

  saga_position position() const { return {created_ms, definition, key}; }
};

// Everything about one saga, read in one snapshot (read_saga below).
struct saga_view {
  instance_record instance;
  std::vector<history_record> history;          // in order
  std::vector<timer_record> timers;             // armed, soonest first
  std::vector<parked_record> parked;            // in arrival order
  std::vector<outbox_record> follow_on;         // by sequence
  std::optional<definition_record> definition;  // its version as registered (absent: not registered)
};

struct outbox_filter {
  std::int64_t from_sequence = 0;                // inclusive
  std::optional<std::int64_t> through_sequence;  // inclusive; absent: to the end
  bool unpublished_only = false;
  std::size_t limit = 1000;
};

struct state_count {
  std::string definition;
  std::string state;
  std::int64_t sagas = 0;
  std::int64_t definition_version = 1;
};

// Row counts of the store's tables (what sagactl stats shows).
struct store_totals {
  std::int64_t sagas = 0;
  std::int64_t inbox = 0;
  std::int64_t outbox = 0;
  std::int64_t unpublished = 0;
  std::optional<std::int64_t> oldest_unpublished_ms;  // created_ms of the oldest unpublished row
  std::int64_t dead_letters = 0;
  std::int64_t parked = 0;
  std::int64_t armed_timers = 0;
};

// What store::purge_finished would remove with the same arguments.
struct finished_count {
  std::int64_t sagas = 0;
  std::int64_t history = 0;  // their history rows
};

// What became of one incoming event, found by its (source, id): the inbox row it left (with the
// ack it got) while the dedup window keeps it, and its dead letter if it was rejected (the
// newest, when several share the id). Neither: never received, or received before
// `oldest_inbox_ms` (the inbox's oldest row; 0 when the inbox is empty) and pruned since.
struct inbound_record {
  std::optional<inbox_record> inbox;
  std::optional<dead_letter_record> dead_letter;
  std::int64_t oldest_inbox_ms = 0;
};

class reader {
 public:
  virtual ~reader() = default;

  // Snapshots (see the header comment). end_snapshot() after a failed read is safe.
  virtual void begin_snapshot() = 0;
  virtual void end_snapshot() noexcept = 0;

  // One saga. Its key alone may name sagas of several definitions: definitions_of() lists
  // them, by name.
  virtual std::vector<std::string> definitions_of(std::string_view key) = 0;
  virtual std::optional<instance_record> instance(std::string_view definition, std::string_view key) = 0;
  // In the order the events were handled, each with the outbox sequences it wrote.
  virtual std::vector<history_record> history(std::string_view definition, std::string_view key) = 0;
  // Armed timers (a disarmed timer is not returned), soonest first, then by name.
  virtual std::vector<timer_record> timers(std::string_view definition, std::string_view key) = 0;
  // Parked events, in arrival order.
  virtual std::vector<parked_record> parked(std::string_view definition, std::string_view key) = 0;
  // The follow-on events its transitions wrote (through the history's outbox ranges), by
  // sequence; rows already pruned from the outbox are not returned.
  virtual std::vector<outbox_record> follow_on_events(std::string_view definition, std::string_view key) = 0;

  // Parked events of every saga with an id after `after_id`, in arrival order (by id).
  virtual std::vector<parked_record> parked_events(std::int64_t after_id, std::size_t limit) = 0;

  // Many sagas, ordered by (created_ms, definition, key) (descending with newest_first).
  virtual std::vector<saga_summary> sagas(const saga_filter& filter) = 0;
  // Sagas whose state the stored graph of their definition does not have, or whose definition
  // is not registered; ordered by (definition, key).
  virtual std::vector<saga_summary> orphaned_sagas(std::size_t limit) = 0;
  // Finished sagas of `definition` in one of `states` since before `before_ms` (what
  // store::purge_finished would remove).
  virtual finished_count count_finished(std::string_view definition, const std::vector<std::string>& states,
                                        std::int64_t before_ms) = 0;
  // Per (definition, definition version, state), ordered by the three; states without sagas are
  // not listed.
  virtual std::vector<state_count> counts_by_state() = 0;

  // Registered definitions, by name and version (each version of a name is a record of its own).
  virtual std::vector<definition_record> definitions() = 0;
  // One version of a definition; without a version, its newest.
  virtual std::optional<definition_record> definition(std::string_view name,
                                                      std::optional<std::int64_t> version = std::nullopt) = 0;

  // Armed timers of every saga (registered definitions or not), due before `due_before_ms`
  // when given; ordered by (due_ms, definition, key, name).
  virtual std::vector<timer_record> armed_timers(std::optional<std::int64_t> due_before_ms,
                                                 std::size_t limit) = 0;
  // Per definition (registered or not) with timers due at `now_ms`: how many; by name.
  virtual std::vector<std::pair<std::string, std::int64_t>> due_timer_counts(std::int64_t now_ms) = 0;

  // The outbox (every saga's follow-on events), by sequence.
  virtual std::vector<outbox_record> outbox(const outbox_filter& filter) = 0;
  // The highest published sequence, also after its row was pruned; 0 when none.
  virtual std::int64_t last_published_sequence() = 0;

  // Dead letters with an id after `after_id`, by id.
  virtual std::vector<dead_letter_record> dead_letters(std::int64_t after_id, std::size_t limit) = 0;
  virtual std::optional<dead_letter_record> dead_letter(std::int64_t id) = 0;
  // One incoming event's fate (sagactl reconcile --sent, sagactl audit).
  virtual inbound_record inbound(std::string_view source, std::string_view event_id) = 0;

  virtual store_totals totals() = 0;
  // Inbox rows (events handled, duplicates excepted) received in [from_ms, before_ms), counted
  // per interval of `interval_ms` from from_ms on: ceil((before_ms - from_ms) / interval_ms)
  // counts, oldest first. Throws std::invalid_argument for interval_ms <= 0.
  virtual std::vector<std::int64_t> received_per_interval(std::int64_t from_ms, std::int64_t before_ms,
                                                          std::int64_t interval_ms) = 0;
};

// Forwards every call; derive and override what a test needs.
class reader_wrapper : public reader {
 public:
  explicit reader_wrapper(reader& target) : target_(target) {}

  void begin_snapshot() override { target_.begin_snapshot(); }
  void end_snapshot() noexcept override { target_.end_snapshot(); }
  std::vector<std::string> definitions_of(std::string_view k) override { return target_.definitions_of(k); }
  std::optional<instance_record> instance(std::string_view d, std::string_view k) override {
    return target_.instance(d, k);
  }
  std::vector<history_record> history(std::string_view d, std::string_view k) override {
    return target_.history(d, k);
  }
  std::vector<timer_record> timers(std::string_view d, std::string_view k) override {
    return target_.timers(d, k);
  }
  std::vector<parked_record> parked(std::string_view d, std::string_view k) override {
    return target_.parked(d, k);
  }
  std::vector<outbox_record> follow_on_events(std::string_view d, std::string_view k) override {
    return target_.follow_on_events(d, k);
  }
  std::vector<parked_record> parked_events(std::int64_t after_id, std::size_t limit) override {
    return target_.parked_events(after_id, limit);
  }
  std::vector<saga_summary> sagas(const saga_filter& f) override { return target_.sagas(f); }
  std::vector<saga_summary> orphaned_sagas(std::size_t limit) override {
    return target_.orphaned_sagas(limit);
  }
  finished_count count_finished(std::string_view d, const std::vector<std::string>& states,
                                std::int64_t before) override {
    return target_.count_finished(d, states, before);
  }
  std::vector<state_count> counts_by_state() override { return target_.counts_by_state(); }
  std::vector<definition_record> definitions() override { return target_.definitions(); }
  std::optional<definition_record> definition(std::string_view n,
                                              std::optional<std::int64_t> v = std::nullopt) override {
    return target_.definition(n, v);
  }
  std::vector<timer_record> armed_timers(std::optional<std::int64_t> before, std::size_t limit) override {
    return target_.armed_timers(before, limit);
  }
  std::vector<std::pair<std::string, std::int64_t>> due_timer_counts(std::int64_t now) override {
    return target_.due_timer_counts(now);
  }
  std::vector<outbox_record> outbox(const outbox_filter& f) override { return target_.outbox(f); }
  std::int64_t last_published_sequence() override { return target_.last_published_sequence(); }
  std::vector<dead_letter_record> dead_letters(std::int64_t after, std::size_t limit) override {
    return target_.dead_letters(after, limit);
  }
  std::optional<dead_letter_record> dead_letter(std::int64_t id) override { return target_.dead_letter(id); }
  inbound_record inbound(std::string_view s, std::string_view id) override { return target_.inbound(s, id); }
  store_totals totals() override { return target_.totals(); }
  std::vector<std::int64_t> received_per_interval(std::int64_t from, std::int64_t before,
                                                  std::int64_t interval) override {
    return target_.received_per_interval(from, before, interval);
  }

 protected:
  reader& target_;
};

// begin_snapshot() for a scope.
class reader_snapshot {
 public:
  explicit reader_snapshot(reader& r) : reader_(r) { reader_.begin_snapshot(); }
  ~reader_snapshot() { reader_.end_snapshot(); }
  reader_snapshot(const reader_snapshot&) = delete;
  reader_snapshot& operator=(const reader_snapshot&) = delete;

 private:
  reader& reader_;
};

// The saga (definition, key) with everything about it, in one snapshot; empty when no such saga.
inline std::optional<saga_view> read_saga(reader& r, std::string_view definition, std::string_view key) {
  reader_snapshot snapshot(r);
  auto instance = r.instance(definition, key);
  if (!instance) return std::nullopt;
  saga_view v;
  v.instance = std::move(*instance);
  v.history = r.history(definition, key);
  v.timers = r.timers(definition, key);
  v.parked = r.parked(definition, key);
  v.follow_on = r.follow_on_events(definition, key);
  v.definition = r.definition(definition, v.instance.definition_version);
  return v;
}

}  // namespace saga
