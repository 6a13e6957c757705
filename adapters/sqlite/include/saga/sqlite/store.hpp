#pragma once
// saga::sqlite::store — the SQLite implementation of the saga::store port (the embedded default).
//
// Two ways to get one:
//   * store(options): opens (creating it when missing) the database file at options.path, puts it
//     in WAL mode with the requested `synchronous` level and busy timeout, and migrates the schema.
//   * store(SQLite::Database&): embedding. Uses a connection the host service already opened, so
//     that the host's business rows and the saga rows commit in one transaction; it migrates the
//     schema on that connection (inside the host's transaction if one is open) and leaves the
//     connection's settings (journal mode, synchronous, busy timeout) to the host. The store does
//     not own the connection, which must outlive it.
//
// The schema is versioned with PRAGMA user_version. A database whose version is newer than
// current_schema is refused (saga::store_error) rather than written with an older layout; a
// read-only store never migrates and refuses a database it cannot read.
//
// Schema 3 keeps two row counts in the meta table, maintained by triggers whatever writes the
// rows (dead letters and parked events: counted without counting the table), and indexes every
// bounded housekeeping query (dead letters by (source, event_id) and by last_ms, inbox by
// received_ms, timers by (definition, due_ms), finished sagas by (definition, state,
// finished_ms) since schema 6), so that each call of prune, prune_dead_letters, purge_finished and
// due_timers does work in proportion to its limit, not to the size of the tables. Schema 5 keeps
// the same two counts per sender key in sender_rows (a row per sender that holds something),
// which the caps per key read, and indexes dead letters by (sender, last_ms). Schema 6 indexes
// only finished sagas (a partial index on finished_ms, set from instance_record::finished), so a
// transition between unfinished states writes no index entry. Schema 8 keeps a saga's timers in
// its instance row (indexed by the soonest due time, instances_due): arm_timer and disarm_timer
// write no page the saga's transition does not write anyway, and arming a timer of a saga that
// has no instance row is refused (store_error).
//
// Under synchronous = FULL, mark_published outside a transaction commits its marks at NORMAL
// (a lost mark is only a second publication) and restores FULL before it returns. If FULL
// cannot be restored it throws saga::store_error, and every later begin() (and mark_published)
// tries again and throws while it fails: no write transaction of the store commits at NORMAL
// because of it. (Writes the store is asked to make outside begin()/commit() are not guarded.)
//
// Inside a transaction begun by begin() the store keeps the saga rows it has read or changed (the instance
// with its timers and the head of its history chain) and writes each changed one back once: at commit, at a
// savepoint and its release, and before any method that reads instances or history by SQL (issue 15: a
// transition's instance, timer and history-link writes are one row write, and a saga moved twice in a batch
// is written once). Port methods see their own writes as before. In a transaction the host began on a shared
// connection (embedding) every call writes its changes at once, as if there were no such memory. Committing a
// transaction the store began through the connection itself while the store holds a change is refused.
//
// Between its own transactions a store that opened its database (not a shared connection) keeps the rows
// of the sagas its latest commits read or wrote (issue 15: an event's instance read is then no
// statement): at most 2 x 1,024 rows or 2 x 1 MiB of their texts, roughly the least recently used
// dropped first. They hold while no other connection commits, which begin() checks with PRAGMA
// data_version after taking the write lock; if another did, they are all forgotten. A saga this store
// writes outside begin()/commit() or purges is forgotten; a rolled-back transaction's sagas are read
// again.
//
// The store registers a commit hook on its connection to count commits (commit_count()) and a
// rollback hook to forget what the transaction held; SQLite keeps one of each per connection, so
// in the embedding case they replace any hooks the host had set, and the store removes its own
// when destroyed.
//
// Thread-safety: none. Like the port says, one thread at a time uses a store (and, in the
// embedding case, the host must not use the shared connection concurrently either).
//
// Errors: every port method throws saga::store_error naming the operation, for example
// "append_outbox: database or disk is full". The constructors throw saga::store_error when the
// database cannot be opened or migrated and std::invalid_argument for bad options.

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/store.hpp"

struct sqlite3;

namespace saga::sqlite {

struct options {
  std::string path;                  // the database file; created when missing (unless read_only)
  std::string synchronous = "FULL";  // FULL | NORMAL | OFF (PRAGMA synchronous, in WAL mode)
  int busy_timeout_ms = 5000;        // how long a writer waits for another process's lock
  bool read_only = false;            // inspection (sagactl): never migrates, never writes
  // Checkpoint the write-ahead log on a thread of its own (a second connection), so that the
  // writer's commits never wait for the log to be copied into the database file. When off,
  // SQLite's automatic checkpoint runs inside the commit that crosses checkpoint_pages.
  bool background_checkpoint = true;
  // The log's size (pages) that starts a checkpoint, on the thread or in the commit; SQLite's
  // default. 0: never checkpoint (the log grows until another connection checkpoints it).
  int checkpoint_pages = 1000;
  // The connection's page cache (PRAGMA cache_size), in KiB; at least 64. The writer's 32 MiB keep
  // the inbox, instance and outbox indexes of a large database in memory; a connection that
  // reads the outbox in order (sagad's replay) needs little.
  int page_cache_kib = 32 * 1024;
  // Write the log's appends in large pieces through wal_buffer's VFS (wal_buffer.hpp): a commit of
  // a thousand pages costs a dozen system calls instead of two thousand. Read-only connections
  // never write the log and use the default VFS.
  bool buffer_wal = true;
};

// For a process that owns its SQLite (sagad and the bench call it first thing): turns SQLite's
// memory statistics off (SQLITE_CONFIG_MEMSTATUS), so that its allocations stop taking a
// process-wide mutex each (issue 15: 2-3 % of an event's CPU). sqlite3_memory_used() and the soft
// heap limit stop working, which nothing here uses. Only possible before SQLite initializes (the
// first connection opened): returns false, changing nothing, after that.
bool disable_memory_statistics() noexcept;

// For a process that owns its SQLite (sagad, the bench), also before the first connection: gives
// SQLite's page caches a pool of `bytes` (SQLITE_CONFIG_PAGECACHE), cut into slots of exactly one
// 4 KiB page and its header. An allocator with size classes (sagad's mimalloc) gives each cached
// page a 5 KiB block instead: 17 % more memory for the same pages, about 6 MiB of a 32 MiB cache.
// Nearly all of the pool is resident from the start (SQLite links its free slots through every
// one, writing at the start of each), and it stays for the life of the process. Not mapped
// populated (MAP_POPULATE): that readied sagad 35 ms sooner, but also made resident the pages
// inside slots that SQLite touches only when it uses them, 0.2–0.4 MiB more at 1,000 sagas
// (docs/performance.md, thirteenth round). Pages larger than 4 KiB come from malloc, and so do
// pages past the pool's end (when fewer than ten slots are free SQLite first reuses a
// connection's own oldest pages rather than growing its cache). The default: a writer's page
// cache (options::page_cache_kib) and one 2 MiB reader's, sagad's writer and replay connections.
// Returns false, changing nothing, once SQLite has initialized, when a pool was already given, or
// when mmap fails.
bool pool_page_cache(std::size_t bytes = (32u + 2u) << 20) noexcept;

class checkpointer;

class store final : public saga::store {
 public:
  static constexpr int current_schema = 12;

  explicit store(const options& opts);
  explicit store(SQLite::Database& shared_db);
  ~store() override;

  store(const store&) = delete;
  store& operator=(const store&) = delete;
  store(store&&) = delete;  // the commit hook holds `this`
  store& operator=(store&&) = delete;

  // PRAGMA user_version of the database.
  int schema_version();
  // Commits observed on this connection since the store was constructed (after migration),
  // including the host's own commits in the embedding case.
  std::int64_t commit_count() const { return commits_; }
  SQLite::Database& database() { return db_; }
  // The write-ahead log's file, as SQLite names it (the database's resolved path and "-wal"):
  // what a saga::sqlite::log_file syncs.
  std::string log_path() const;
  // Committed saga rows kept for the next transactions (above); for tests.
  std::size_t kept_saga_rows() const;
  // Drops them: for a program that has written saga rows with SQL through database().
  void forget_kept_saga_rows() noexcept;

  // saga::store
  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const override;
  // One writer at a time: the write transaction (BEGIN IMMEDIATE) is every saga's lock already.
  void lock_sagas(const std::vector<std::string>&) override {}
  std::vector<std::string> try_lock_sagas(const std::vector<std::string>& keys) override { return keys; }

  std::optional<std::string> find_ack(std::string_view source, std::string_view event_id) override;
  void insert_inbox(const inbox_record& r) override;

  std::optional<instance_record> load_instance(std::string_view definition, std::string_view key) override;
  void save_instance(const instance_record& r) override;
  void append_history(const history_record& r) override;
  trace_context saga_trace(std::string_view definition, std::string_view key) override;
  std::int64_t append_outbox(const outbox_record& r) override;
  std::int64_t add_dead_letter(const dead_letter_record& r) override;
  std::int64_t prune_dead_letters(std::int64_t before_ms, std::int64_t keep_max, std::size_t limit) override;

  // A savepoint named saga_event; rollback_to_savepoint also releases it. Outside a
  // transaction each throws saga::store_error (a savepoint would start a deferred one).
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
  // One writer: the sequence is assigned at insert (AUTOINCREMENT, given back by a rollback), and
  // the writer is the relay.
  bool sequences_at_insert() const override { return true; }
  std::int64_t claim_relay(std::string_view, std::int64_t) override { return 1; }
  std::int64_t number_outbox(std::int64_t, std::int64_t, std::size_t) override { return 0; }
  int wakeup_fd() override { return -1; }
  int take_wakeups() override { return 0; }
  std::int64_t prune(std::int64_t outbox_before_ms, std::int64_t inbox_before_ms, std::size_t limit) override;
  std::int64_t purge_finished(std::string_view definition, const std::vector<std::string>& states,
                              std::int64_t before_ms, std::size_t limit) override;

 private:
  // Number of distinct prepared statements (the list lives in store.cpp).
  static constexpr std::size_t statement_count = 61;

  void migrate(bool read_only);
  void register_commit_hook();
  // The prepared statement `which` (an index into store.cpp's list), prepared on first use so
  // that a read-only store of an unmigrated file, or a tool using three queries, prepares only
  // what it runs.
  SQLite::Statement& prepared(std::size_t which);
  static int on_commit(void* self) noexcept;
  static void on_rollback(void* self) noexcept;
  static int on_wal(void* self, sqlite3* db, const char* name, int pages) noexcept;
  // Runs f in the caller's transaction, or in one of its own when there is none, so that a
  // method writing several statements (mark_published, prune) is one commit either way.
  template <class F>
  void atomically(F&& f);
  // Sets synchronous = FULL again after mark_published lowered it and could not restore it;
  // throws saga::store_error while that fails. Does nothing when nothing is pending.
  void restore_full_sync(const char* operation);
  // mark_published's and prune's outbox writes, in their transaction (store.cpp).
  void extend_published(std::int64_t from, std::int64_t to, std::int64_t published_ms);
  std::int64_t prune_published(std::int64_t before_ms, std::size_t limit);
  void require_transaction(const char* operation) const;

  // The saga rows of the open transaction (store.cpp).
  class transaction_rows;
  struct saga_row;
  struct count_changes;
  // The row of one saga, read on first use in the transaction (exists == false when none).
  saga_row& row_of(std::string_view definition, std::string_view key);
  // Writes the changed rows back (they stay known); forget_sagas() then drops them all.
  void write_sagas();
  // Writes the transaction's changes to the kept counts (schema 11); write_sagas() ends with it.
  void write_counts();
  void forget_sagas() noexcept;
  void transaction_ended() noexcept;  // commit or rollback, whoever ended it
  void check_kept_rows() noexcept;    // begin(): forgets the kept committed rows if another wrote
  // Before a statement that reads instances or history itself.
  void settle_sagas() {
    write_sagas();
    forget_sagas();
  }

  std::unique_ptr<SQLite::Database> owned_;     // set by the options constructor only
  std::unique_ptr<checkpointer> checkpointer_;  // options.background_checkpoint, WAL files only
  SQLite::Database& db_;
  // Declared after the connection so that they are finalized before it closes.
  std::array<std::unique_ptr<SQLite::Statement>, statement_count> statements_;
  std::unique_ptr<transaction_rows> rows_;
  bool own_transaction_ = false;  // the open transaction was begun by begin(): rows_ are kept
  // Committed saga rows are kept between the store's own transactions (not on a shared
  // connection, where the host may write them by SQL unseen); data_version_ is the connection's
  // PRAGMA data_version when they were last known to hold (check_kept_rows).
  bool keep_committed_ = false;
  std::optional<std::int64_t> data_version_;
  std::int64_t commits_ = 0;
  int checkpoint_pages_ = 0;
  // The writer checkpoints itself past 16 x checkpoint_pages (64 MiB of log at the defaults). Its
  // commits begin after the thread's rounds have seen the log, so only this checkpoint lets the
  // log restart; each one stalls the writer a few ms (the last frames and the database's fsync).
  // At 4 x, 7-20 of them in a 2 s half-load run made the ack p99 1.6 to 2 times as long
  // (docs/performance.md, issue 15's seventeenth round).
  static constexpr int wal_fallback_factor = 16;
  bool full_sync_ = false;     // opened with synchronous = FULL (not known for a shared connection)
  bool sync_lowered_ = false;  // mark_published left NORMAL and FULL is not restored yet
};

}  // namespace saga::sqlite
