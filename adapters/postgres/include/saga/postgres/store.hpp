#pragma once
// saga::postgres::store — the PostgreSQL implementation of the saga::store port (issue 17, item 1).
//
// One store is one libpq connection to one database, holding its tables in one PostgreSQL schema
// (namespace), options::schema, so that the saga tables can share a user's database. The store
// creates the schema when it is missing and migrates it (its version is in the table
// <schema>.schema_version, migrated in one transaction under an advisory lock, so that two stores
// opening the same schema at once migrate it once). A schema whose version is newer than
// current_schema is refused (saga::store_error) rather than written with an older layout.
//
// Semantics are those of the port and of saga::sqlite::store, method by method (the same contract
// test suite runs over both: tests/store/). Differences that a caller can see:
//   * begin() opens a READ COMMITTED transaction. Several writers on one schema serialise per
//     saga through lock_sagas (transaction-scoped advisory locks, taken in one order); fencing a
//     writer that stalled is a later item of issue 17.
//   * Publication sequences are numbered after the commit, by one relay at a time
//     (sequences_at_insert() is false): append_outbox returns the row's id (a provisional number,
//     never reused, not gapless), and claim_relay / number_outbox elect the relay through a lease
//     row with an epoch and number committed rows below PostgreSQL's xid horizon in xid order,
//     fenced by that epoch inside the numbering transaction. Writers never wait for each other's
//     sequence; a rolled-back writer leaves no gap; a transaction still in flight holds back the
//     numbering of every row after it (docs/postgres.md, "One relay numbers the log"). The
//     history rows name their outbox rows by id; the reader shows their sequences.
//     The numbering is in each saga's causal order because every transaction takes its saga locks
//     (lock_sagas, try_lock_sagas) before its first write, and so gets its xid after the previous
//     holder of those locks committed.
//   * Statements run as prepared statements with binary parameters and results; an error inside
//     a transaction leaves it failed until rollback() (PostgreSQL's rule), and commit() of a
//     failed transaction throws rather than reporting the implicit rollback as success.
//   * The relay is woken soon after other writers' commits: a commit() (or an outbox row appended
//     outside a transaction) that wrote outbox rows is followed, after COMMIT returned, by one
//     pg_notify on notify_channel(schema) in a statement of its own — never inside the writing
//     transaction, where PostgreSQL's notify queue lock would serialise the committers — unless
//     this store holds the relay lease itself (its own relay numbers right after its commits). The
//     store holding the lease LISTENs on its connection (wakeup_fd, take_wakeups). A notification
//     lost (the notifier died between its COMMIT and its pg_notify, the relay changed) delays the
//     numbering by one poll of the caller; the order of the log never depends on it.
//   * A lost connection makes calls throw saga::store_error; the next begin() outside a
//     transaction reconnects (and prepares the statements again).
//
// The header does not include libpq-fe.h: the connection lives behind a pointer.
//
// Thread-safety: none. One thread at a time uses a store, as the port says.
//
// Errors: every port method throws saga::store_error naming the operation and PostgreSQL's message,
// for example "insert_inbox: duplicate key value violates unique constraint "inbox_pkey" (SQLSTATE
// 23505)". The constructor throws saga::store_error when the server cannot be reached or the
// schema cannot be migrated (naming the host, port and database, never a password), and
// std::invalid_argument for bad options (a connection string libpq cannot parse, an empty or
// too long schema name).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/store.hpp"

namespace saga::postgres {

struct options {
  // A libpq connection string: a URI ("postgresql://user@host:5432/db?sslmode=require") or
  // key=value pairs ("host=/run/postgresql dbname=orders"). Empty: libpq's defaults and the PG*
  // environment variables.
  std::string conninfo;
  // The PostgreSQL schema holding the store's tables; created when missing. Any name of at most
  // 63 bytes (it is always quoted).
  std::string schema = "saga";
  // A transaction left idle this long (its writer stalled: SIGSTOP, a pause, a network cut) is
  // ended by the server (idle_in_transaction_session_timeout): its saga locks go to the writers
  // waiting for them, and the stalled writer's commit fails instead of landing on sagas another
  // writer has moved on since. A healthy writer never idles in a transaction for more than the
  // time between two statements of one batch. 0: never.
  std::int64_t stall_timeout_ms = 10'000;
};

class store final : public saga::store {
 public:
  static constexpr int current_schema = 4;

  explicit store(const options& opts);
  ~store() override;

  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // The version in <schema>.schema_version.
  int schema_version();
  const std::string& schema() const;

  // saga::store
  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const override;
  // pg_advisory_xact_lock per key, in one order all writers share (statements.hpp).
  void lock_sagas(const std::vector<std::string>& keys) override;
  std::vector<std::string> try_lock_sagas(const std::vector<std::string>& keys) override;

  std::optional<std::string> find_ack(std::string_view source, std::string_view event_id) override;
  void insert_inbox(const inbox_record& r) override;

  std::optional<instance_record> load_instance(std::string_view definition, std::string_view key) override;
  void save_instance(const instance_record& r) override;
  void append_history(const history_record& r) override;
  trace_context saga_trace(std::string_view definition, std::string_view key) override;
  std::int64_t append_outbox(const outbox_record& r) override;
  std::int64_t add_dead_letter(const dead_letter_record& r) override;
  std::int64_t prune_dead_letters(std::int64_t before_ms, std::int64_t keep_max, std::size_t limit) override;

  // A savepoint named saga_event. Outside a transaction each throws saga::store_error, and so do
  // release_savepoint and rollback_to_savepoint when none is open (checked before PostgreSQL is
  // asked, which would fail the whole transaction).
  void savepoint() override;
  void release_savepoint() override;
  void rollback_to_savepoint() override;

  std::int64_t arm_timer(std::string_view definition, std::string_view key, std::string_view name,
                         std::int64_t due_ms) override;
  void disarm_timer(std::string_view definition, std::string_view key, std::string_view name) override;
  std::vector<timer_record> due_timers(std::int64_t now_ms, std::size_t limit,
                                       const std::vector<std::string>& definitions) override;
  std::vector<std::pair<std::string, std::int64_t>> due_timers_elsewhere(
      std::int64_t now_ms, const std::vector<std::string>& definitions) override;
  std::vector<timer_record> timers_of(std::string_view definition, std::string_view key) override;

  std::int64_t park(const parked_record& r) override;
  std::vector<parked_record> parked_of(std::string_view definition, std::string_view key) override;
  std::int64_t count_parked(std::string_view definition, std::string_view key) override;
  std::int64_t count_parked_total() override;
  std::int64_t count_parked_by_sender(std::string_view sender) override;
  void remove_parked(std::int64_t id) override;
  std::vector<parked_record> orphaned_parked(std::int64_t before_ms, std::size_t limit) override;

  std::optional<definition_record> load_definition(std::string_view name, std::int64_t version) override;
  void save_definition(const definition_record& r) override;
  std::vector<std::string> instances_outside(std::string_view definition, std::int64_t version,
                                             const std::vector<std::string>& states) override;
  std::vector<std::pair<std::int64_t, std::int64_t>> running_versions(std::string_view definition) override;
  std::vector<std::int64_t> stored_versions(std::string_view definition) override;

  std::vector<outbox_record> unpublished(std::int64_t after_sequence, std::size_t limit) override;
  void mark_published(std::int64_t from_sequence, std::int64_t to_sequence,
                      std::int64_t published_ms) override;
  std::int64_t last_published_sequence() override;
  std::vector<outbox_record> published_range(std::int64_t from_sequence, std::size_t limit) override;
  std::int64_t first_retained_sequence() override;
  bool sequences_at_insert() const override { return false; }
  std::int64_t claim_relay(std::string_view owner, std::int64_t lease_ms) override;
  std::int64_t number_outbox(std::int64_t epoch, std::int64_t lease_ms, std::size_t limit) override;
  // The relay's wake-up: LISTEN on this connection while it holds the lease (wakeup_fd() is its
  // socket), the other writers' pg_notify after their commits (notify_channel()).
  int wakeup_fd() override;
  int take_wakeups() override;
  // The channel the schema's writers notify after a commit that wrote outbox rows: "<schema>.outbox",
  // or, for a schema name too long for that (a channel name has at most 63 bytes), "saga.outbox."
  // and a 64-bit FNV-1a hash of it in hex.
  static std::string notify_channel(std::string_view schema);
  std::int64_t prune(std::int64_t outbox_before_ms, std::int64_t inbox_before_ms, std::size_t limit) override;
  std::int64_t purge_finished(std::string_view definition, const std::vector<std::string>& states,
                              std::int64_t before_ms, std::size_t limit) override;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace saga::postgres
