#pragma once
// saga::store — the persistence port the engine writes through.
//
// One store is one connection to one database. The engine calls it from one
// thread at a time; implementations need not be thread-safe. Every write
// happens inside a transaction the engine (or the host service, see
// engine::handle_in_transaction) has begun. Methods throw saga::store_error
// on failure; after a failure inside a transaction the engine rolls the whole
// transaction back, so a store need not undo partial work itself. A write
// that returns nothing (save_instance, append_history, disarm_timer,
// remove_parked) may be held back and sent with a later call of the same
// transaction, which then throws its failure, naming it (write-behind: the
// SQLite store keeps saga rows until the commit, the PostgreSQL store
// pipelines such writes); at the latest commit() does.
//
// store_wrapper forwards every call to another store, so that a test can
// override one method (fault injection, counting commits) and keep the rest.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/trace.hpp"

namespace saga {

class store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct instance_record {
  std::string definition;
  std::string key;
  std::string state;
  std::string data;  // saga data, JSON text
  std::int64_t version = 0;
  std::string fingerprint;  // of the definition the saga runs under
  // The version of its definition the saga runs on (schema 10): set when it starts (the newest
  // registered), changed only by a migration (docs/dsl.md, "Changing a workflow").
  std::int64_t definition_version = 1;
  std::string correlation_id;  // id of the event that started it
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t state_since_ms = 0;  // when it entered its current state
  // In a terminal state of its definition (the engine sets it on every save): a store keeps
  // finished sagas findable for purge_finished without indexing every transition.
  bool finished = false;
};

struct history_record {
  std::string definition;
  std::string key;
  std::int64_t version = 0;  // instance version after this event
  std::string event_id;
  std::string event_source;
  std::string event_type;
  std::string event_time;
  std::string event_data;  // JSON text
  std::string from_state;
  std::string to_state;
  std::string outcome;  // transitioned | ignored | ...
  std::int64_t recorded_ms = 0;
  std::int64_t definition_version = 1;  // the definition version that handled it (schema 10)
  // The outbox sequences this transition wrote (first..last, contiguous); empty when none.
  // This is how a saga's follow-on events are found: the outbox has no index by saga.
  std::optional<std::int64_t> outbox_first, outbox_last;
  std::string sender;  // event::sender: the CURVE key's name the event came with; empty: none
  // The event's trace context (schema 9): as it came, or the new trace the engine started for an
  // event without one (docs/architecture.md); and its other extension attributes, JSON object
  // text (empty when none).
  std::string traceparent;
  std::string tracestate;
  std::string extensions;
};

struct outbox_record {
  std::int64_t sequence = 0;  // assigned by the store, never reused
  std::string event_id;
  std::string type;
  std::string definition;
  std::string key;
  std::string payload;  // the encoded CloudEvent
  std::int64_t created_ms = 0;
  std::optional<std::int64_t> published_ms;
};

struct inbox_record {
  std::string source;
  std::string event_id;
  std::string definition;
  std::string key;
  std::string ack;  // the ack JSON it produced
  std::int64_t received_ms = 0;
};

struct dead_letter_record {
  std::int64_t id = 0;  // assigned by the store
  std::string event_id;
  std::string source;
  std::string type;
  std::string subject;
  std::string reason;
  std::string payload;  // the event as received (possibly truncated, see `truncated`)
  std::int64_t created_ms = 0;
  bool truncated = false;    // payload cut at the dead-letter size limit: it cannot be redriven
  std::int64_t count = 1;    // how often this event was rejected (resends are counted, not copied)
  std::int64_t last_ms = 0;  // the latest rejection; created_ms is the first
  std::string sender;        // the CURVE key's name it came with (event::sender); empty: none
};

struct timer_record {
  std::string definition;
  std::string key;
  std::string name;
  std::int64_t due_ms = 0;
  std::int64_t generation = 0;  // how many times it was armed
};

struct parked_record {
  std::int64_t id = 0;  // assigned by the store: arrival order
  std::string definition;
  std::string key;
  std::string event_id;
  std::string source;
  std::string type;
  std::string payload;  // the encoded event
  std::int64_t parked_ms = 0;
  std::string sender;  // event::sender, which the encoded event does not carry
};

struct definition_record {
  std::string name;
  std::int64_t version = 1;  // a definition's versions are stored side by side (schema 10)
  std::string fingerprint;
  std::string graph;  // JSON text of saga::graph
  std::int64_t registered_ms = 0;
};

class store {
 public:
  virtual ~store() = default;

  // Transactions. begin() starts an IMMEDIATE (write) transaction.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  virtual bool in_transaction() const = 0;

  // Per-saga locks for stores several writers share (several sagad on one database): inside a
  // write transaction, before a batch reads or writes the sagas with these keys (of any
  // definition), held until the transaction ends. `keys` come sorted and without repeats, and a
  // store takes them in one order every writer shares, so that two batches never deadlock. A
  // store with one writer at a time (SQLite: the write transaction is the lock) does nothing.
  virtual void lock_sagas(const std::vector<std::string>& keys) = 0;
  // The same without waiting: locks what it can now and returns those keys (in `keys`' order). A
  // key another writer holds is left out; the engine fires that saga's timers in a later round
  // (claiming due timers, as FOR UPDATE SKIP LOCKED would). One writer: every key.
  virtual std::vector<std::string> try_lock_sagas(const std::vector<std::string>& keys) = 0;

  // Inbox: the stored ack of (source, id), if seen.
  virtual std::optional<std::string> find_ack(std::string_view source, std::string_view event_id) = 0;
  virtual void insert_inbox(const inbox_record& r) = 0;

  // Instances, history, outbox, dead letters.
  virtual std::optional<instance_record> load_instance(std::string_view definition, std::string_view key) = 0;
  virtual void save_instance(const instance_record& r) = 0;
  virtual void append_history(const history_record& r) = 0;
  // The trace context of the saga's newest history row (what a timer firing or an operator action
  // without a trace of its own continues); empty when it has none or the saga does not exist.
  virtual trace_context saga_trace(std::string_view definition, std::string_view key) = 0;
  // Returns the row's sequence (or, when !sequences_at_insert(), its provisional number: below).
  virtual std::int64_t append_outbox(const outbox_record& r) = 0;
  // Adds a dead letter; when one with the same (source, event_id, payload) exists it is counted
  // instead (count + 1, last_ms and reason of the new one) — a resent event is one dead letter.
  // Inputs without an id (unparsed) are each their own row. Returns the row's id.
  virtual std::int64_t add_dead_letter(const dead_letter_record& r) = 0;
  // Deletes dead letters whose last rejection is before `before_ms`, then, for each sender
  // (dead_letter_record::sender; every row without one is one more sender, "") holding more than
  // `keep_max` rows, its oldest by last rejection: one client key flooding the dead letters
  // pushes out only its own. At most `limit` rows in all per call (the caller loops), in one
  // transaction. Returns rows deleted.
  virtual std::int64_t prune_dead_letters(std::int64_t before_ms, std::int64_t keep_max,
                                          std::size_t limit) = 0;

  // Savepoints around one event, used by the engine only after an event failed
  // past its first write (docs/reliability.md): the batch is then re-run with a
  // savepoint per event. One level; inside a transaction. rollback_to_savepoint()
  // undoes what was written since savepoint() and ends the savepoint (like
  // ROLLBACK TO followed by RELEASE); release_savepoint() keeps the writes.
  virtual void savepoint() = 0;
  virtual void release_savepoint() = 0;
  virtual void rollback_to_savepoint() = 0;

  // Timers: arming replaces (and bumps the generation).
  virtual std::int64_t arm_timer(std::string_view definition, std::string_view key, std::string_view name,
                                 std::int64_t due_ms) = 0;
  virtual void disarm_timer(std::string_view definition, std::string_view key, std::string_view name) = 0;
  // Timers due at `now_ms` of the named definitions only (others' timers neither block nor
  // fill the batch), earliest first.
  virtual std::vector<timer_record> due_timers(std::int64_t now_ms, std::size_t limit,
                                               const std::vector<std::string>& definitions) = 0;
  // Per definition not in `definitions`: how many of its timers are due (a sagad that does not
  // run them says so; they stay untouched).
  virtual std::vector<std::pair<std::string, std::int64_t>> due_timers_elsewhere(
      std::int64_t now_ms, const std::vector<std::string>& definitions) = 0;
  virtual std::vector<timer_record> timers_of(std::string_view definition, std::string_view key) = 0;

  // Parked events, in arrival order.
  virtual std::int64_t park(const parked_record& r) = 0;
  virtual std::vector<parked_record> parked_of(std::string_view definition, std::string_view key) = 0;
  virtual std::int64_t count_parked(std::string_view definition, std::string_view key) = 0;
  virtual std::int64_t count_parked_total() = 0;  // of every saga and sender
  // Parked events of every saga that came from `sender` (parked_record::sender; "" counts those
  // without one): the parking cap per client key.
  virtual std::int64_t count_parked_by_sender(std::string_view sender) = 0;
  virtual void remove_parked(std::int64_t id) = 0;
  // Parked events of sagas that do not exist, parked before `before_ms`.
  virtual std::vector<parked_record> orphaned_parked(std::int64_t before_ms, std::size_t limit) = 0;

  // Registered definitions, one record per (name, version); saving replaces that version's.
  virtual std::optional<definition_record> load_definition(std::string_view name, std::int64_t version) = 0;
  virtual void save_definition(const definition_record& r) = 0;
  // Keys of instances of `definition` on `version` whose state is not in `states`, by key. The
  // stores find the states from what they keep counted and read only those states' instances
  // (rows written behind the store's back by SQL are not counted, so not seen).
  virtual std::vector<std::string> instances_outside(std::string_view definition, std::int64_t version,
                                                     const std::vector<std::string>& states) = 0;
  // Per version of `definition` that has unfinished instances (instance_record::finished unset):
  // (version, how many), by version. May read every instance of the definition.
  virtual std::vector<std::pair<std::int64_t, std::int64_t>> running_versions(
      std::string_view definition) = 0;
  // The versions of `definition` that have instances, finished or not, by version: from what the
  // store keeps counted, without reading the instances.
  virtual std::vector<std::int64_t> stored_versions(std::string_view definition) = 0;

  // Outbox relay. A row is published through mark_published: the engine appends rows with
  // outbox_record::published_ms empty (SQLite does not read it there). The relay publishes in
  // sequence order, so each mark starts at or before the first unpublished row: a store may keep
  // the published rows as a prefix of the log (SQLite, schema 12) and then not record a mark that
  // starts after an unpublished row, whose rows are published again (at least once). A mark past
  // the last row ends at the last row; marking a row again keeps its first publication time.
  virtual std::vector<outbox_record> unpublished(std::int64_t after_sequence, std::size_t limit) = 0;
  virtual void mark_published(std::int64_t from_sequence, std::int64_t to_sequence,
                              std::int64_t published_ms) = 0;
  virtual std::int64_t last_published_sequence() = 0;  // 0 when none
  virtual std::vector<outbox_record> published_range(std::int64_t from_sequence, std::size_t limit) = 0;
  virtual std::int64_t first_retained_sequence() = 0;  // 0 when the outbox is empty

  // Publication sequences numbered after the commit (issue 17, item 4; docs/postgres.md). A store
  // that numbers at insert (SQLite: one writer) returns true here, and append_outbox's result is
  // the row's publication sequence. A store several writers share may instead leave the numbering
  // to one relay at a time, elected and fenced through the database, so that writers never wait
  // for each other's sequence: then append_outbox returns a provisional number (the row's id: it
  // links a history row to its outbox rows, never a publication sequence), and unpublished(),
  // published_range() and the rest list only numbered rows.
  virtual bool sequences_at_insert() const = 0;
  // Takes the relay lease for `owner` (unique per relay) for `lease_ms` when it is free or expired,
  // or renews it when `owner` holds it: returns the lease's epoch (> 0; a new owner gets a new
  // epoch), or 0 when another owner's lease is current. Outside a transaction. A store that
  // numbers at insert returns 1: its one writer is the relay.
  virtual std::int64_t claim_relay(std::string_view owner, std::int64_t lease_ms) = 0;
  // Numbers committed outbox rows 1, 2, 3 … after the last number, at most `limit`, in a
  // transaction of its own that first checks that `epoch` still holds the lease (and renews it
  // for `lease_ms`): returns how many rows were numbered, or -1 when another relay has taken the
  // lease over since (nothing is numbered: the caller is no longer the relay). Only rows that no
  // transaction still in flight can precede are numbered, so a slow writer is never skipped and a
  // rolled-back one leaves no gap. Outside a transaction. A store that numbers at insert: 0.
  virtual std::int64_t number_outbox(std::int64_t epoch, std::int64_t lease_ms, std::size_t limit) = 0;
  // Waking the relay soon after other writers' commits (stores that number after the commit).
  // While this store holds the relay lease (claim_relay gave it an epoch that number_outbox has not
  // found taken over since), a store whose writers announce the commits that wrote outbox rows
  // returns a file descriptor that becomes readable when one did, for the caller to poll beside
  // its other work, and take_wakeups() returns how many announcements arrived since the last call
  // (reading what is there, without waiting). -1 and 0 otherwise: nothing to wait for. An
  // announcement may be lost (it is sent after the commit), so a caller still numbers at an
  // interval. Outside a transaction; neither throws. A store that numbers at insert: -1 and 0.
  virtual int wakeup_fd() = 0;
  virtual int take_wakeups() = 0;
  // Pruning, at most `limit` rows of each table per call (the caller loops while rows go):
  // published outbox rows published before `outbox_before_ms`, only as a prefix of the log in
  // sequence order (a row kept — unpublished, or published later, e.g. after the clock stepped
  // back — keeps every row after it, so replay never meets a hole), and inbox rows received
  // before `inbox_before_ms`. Returns how many rows went.
  virtual std::int64_t prune(std::int64_t outbox_before_ms, std::int64_t inbox_before_ms,
                             std::size_t limit) = 0;

  // Finished sagas: instances of `definition` last saved with `finished` set, in one of `states`
  // (its terminal states), since before `before_ms`, with their history, timers and parked
  // events; at most `limit` sagas per call. Inbox rows (the dedup window) and outbox rows (the log) stay.
  // Returns sagas removed.
  virtual std::int64_t purge_finished(std::string_view definition, const std::vector<std::string>& states,
                                      std::int64_t before_ms, std::size_t limit) = 0;
};

// Forwards every call; derive and override what a test needs.
class store_wrapper : public store {
 public:
  explicit store_wrapper(store& target) : target_(target) {}

  void begin() override { target_.begin(); }
  void commit() override { target_.commit(); }
  void rollback() noexcept override { target_.rollback(); }
  bool in_transaction() const override { return target_.in_transaction(); }
  void lock_sagas(const std::vector<std::string>& keys) override { target_.lock_sagas(keys); }
  std::vector<std::string> try_lock_sagas(const std::vector<std::string>& keys) override {
    return target_.try_lock_sagas(keys);
  }
  std::optional<std::string> find_ack(std::string_view s, std::string_view id) override {
    return target_.find_ack(s, id);
  }
  void insert_inbox(const inbox_record& r) override { target_.insert_inbox(r); }
  std::optional<instance_record> load_instance(std::string_view d, std::string_view k) override {
    return target_.load_instance(d, k);
  }
  void save_instance(const instance_record& r) override { target_.save_instance(r); }
  void append_history(const history_record& r) override { target_.append_history(r); }
  trace_context saga_trace(std::string_view d, std::string_view k) override {
    return target_.saga_trace(d, k);
  }
  std::int64_t append_outbox(const outbox_record& r) override { return target_.append_outbox(r); }
  std::int64_t add_dead_letter(const dead_letter_record& r) override { return target_.add_dead_letter(r); }
  std::int64_t prune_dead_letters(std::int64_t before, std::int64_t keep_max, std::size_t limit) override {
    return target_.prune_dead_letters(before, keep_max, limit);
  }
  void savepoint() override { target_.savepoint(); }
  void release_savepoint() override { target_.release_savepoint(); }
  void rollback_to_savepoint() override { target_.rollback_to_savepoint(); }
  std::int64_t arm_timer(std::string_view d, std::string_view k, std::string_view n,
                         std::int64_t due) override {
    return target_.arm_timer(d, k, n, due);
  }
  void disarm_timer(std::string_view d, std::string_view k, std::string_view n) override {
    target_.disarm_timer(d, k, n);
  }
  std::vector<timer_record> due_timers(std::int64_t now, std::size_t limit,
                                       const std::vector<std::string>& defs) override {
    return target_.due_timers(now, limit, defs);
  }
  std::vector<std::pair<std::string, std::int64_t>> due_timers_elsewhere(
      std::int64_t now, const std::vector<std::string>& defs) override {
    return target_.due_timers_elsewhere(now, defs);
  }
  std::vector<timer_record> timers_of(std::string_view d, std::string_view k) override {
    return target_.timers_of(d, k);
  }
  std::int64_t park(const parked_record& r) override { return target_.park(r); }
  std::vector<parked_record> parked_of(std::string_view d, std::string_view k) override {
    return target_.parked_of(d, k);
  }
  std::int64_t count_parked(std::string_view d, std::string_view k) override {
    return target_.count_parked(d, k);
  }
  std::int64_t count_parked_total() override { return target_.count_parked_total(); }
  std::int64_t count_parked_by_sender(std::string_view s) override {
    return target_.count_parked_by_sender(s);
  }
  void remove_parked(std::int64_t id) override { target_.remove_parked(id); }
  std::vector<parked_record> orphaned_parked(std::int64_t before, std::size_t limit) override {
    return target_.orphaned_parked(before, limit);
  }
  std::optional<definition_record> load_definition(std::string_view n, std::int64_t v) override {
    return target_.load_definition(n, v);
  }
  void save_definition(const definition_record& r) override { target_.save_definition(r); }
  std::vector<std::string> instances_outside(std::string_view d, std::int64_t v,
                                             const std::vector<std::string>& s) override {
    return target_.instances_outside(d, v, s);
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> running_versions(std::string_view d) override {
    return target_.running_versions(d);
  }
  std::vector<std::int64_t> stored_versions(std::string_view d) override {
    return target_.stored_versions(d);
  }
  std::vector<outbox_record> unpublished(std::int64_t after, std::size_t limit) override {
    return target_.unpublished(after, limit);
  }
  void mark_published(std::int64_t from, std::int64_t to, std::int64_t at) override {
    target_.mark_published(from, to, at);
  }
  std::int64_t last_published_sequence() override { return target_.last_published_sequence(); }
  std::vector<outbox_record> published_range(std::int64_t from, std::size_t limit) override {
    return target_.published_range(from, limit);
  }
  std::int64_t first_retained_sequence() override { return target_.first_retained_sequence(); }
  bool sequences_at_insert() const override { return target_.sequences_at_insert(); }
  std::int64_t claim_relay(std::string_view owner, std::int64_t lease_ms) override {
    return target_.claim_relay(owner, lease_ms);
  }
  std::int64_t number_outbox(std::int64_t epoch, std::int64_t lease_ms, std::size_t limit) override {
    return target_.number_outbox(epoch, lease_ms, limit);
  }
  int wakeup_fd() override { return target_.wakeup_fd(); }
  int take_wakeups() override { return target_.take_wakeups(); }
  std::int64_t prune(std::int64_t ob, std::int64_t ib, std::size_t limit) override {
    return target_.prune(ob, ib, limit);
  }
  std::int64_t purge_finished(std::string_view d, const std::vector<std::string>& states, std::int64_t before,
                              std::size_t limit) override {
    return target_.purge_finished(d, states, before, limit);
  }

 protected:
  store& target_;
};

}  // namespace saga
