#pragma once
// saga::sqlite::reader — the SQLite implementation of the saga::reader port, over the schema
// saga::sqlite::store writes (schema version store::current_schema).
//
// Two ways to get one:
//   * reader(path): opens the file read-only (SQLITE_OPEN_READONLY: it is never created,
//     migrated or written) with a busy timeout. In WAL mode (sagad's) it never blocks the writer
//     and is never blocked by it.
//   * reader(SQLite::Database&): a connection the host already has (embedding: the same
//     database as its saga::sqlite::store). The reader does not own it; it must outlive the
//     reader. Inside a transaction the host has open, a snapshot reads what that transaction
//     sees and neither begins nor ends it.
//
// Both refuse a database whose schema version is not store::current_schema with
// saga::sqlite::schema_error (a newer one is never read with an older layout; an older one
// must be migrated by a store first). Every query is a constant SQL string prepared once, on
// first use; every value is a bound parameter.
//
// Errors: saga::store_error naming the method ("sagas: database is locked"); schema_error at
// construction. Thread-safety: none (one connection).

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

#include "saga/reader.hpp"
#include "saga/store.hpp"

namespace saga::sqlite {

// The database's schema version is not the one this build reads. found() is 0 for a file that
// is not a saga database (or an empty one).
class schema_error : public saga::store_error {
 public:
  schema_error(const std::string& message, int found, int supported)
      : saga::store_error(message), found_(found), supported_(supported) {}
  int found() const { return found_; }
  int supported() const { return supported_; }

 private:
  int found_;
  int supported_;
};

class reader final : public saga::reader {
 public:
  explicit reader(const std::string& path, int busy_timeout_ms = 5000);
  explicit reader(SQLite::Database& shared_db);
  ~reader() override;

  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  // saga::reader
  void begin_snapshot() override;
  void end_snapshot() noexcept override;

  std::vector<std::string> definitions_of(std::string_view key) override;
  std::optional<instance_record> instance(std::string_view definition, std::string_view key) override;
  std::vector<history_record> history(std::string_view definition, std::string_view key) override;
  std::vector<timer_record> timers(std::string_view definition, std::string_view key) override;
  std::vector<parked_record> parked(std::string_view definition, std::string_view key) override;
  std::vector<parked_record> parked_events(std::int64_t after_id, std::size_t limit) override;
  std::vector<outbox_record> follow_on_events(std::string_view definition, std::string_view key) override;

  std::vector<saga_summary> sagas(const saga_filter& filter) override;
  std::vector<saga_summary> orphaned_sagas(std::size_t limit) override;
  finished_count count_finished(std::string_view definition, const std::vector<std::string>& states,
                                std::int64_t before_ms) override;
  std::vector<state_count> counts_by_state() override;

  std::vector<definition_record> definitions() override;
  std::optional<definition_record> definition(std::string_view name,
                                              std::optional<std::int64_t> version = std::nullopt) override;

  std::vector<timer_record> armed_timers(std::optional<std::int64_t> due_before_ms,
                                         std::size_t limit) override;
  std::vector<std::pair<std::string, std::int64_t>> due_timer_counts(std::int64_t now_ms) override;

  std::vector<outbox_record> outbox(const outbox_filter& filter) override;
  std::int64_t last_published_sequence() override;

  std::vector<dead_letter_record> dead_letters(std::int64_t after_id, std::size_t limit) override;
  std::optional<dead_letter_record> dead_letter(std::int64_t id) override;
  inbound_record inbound(std::string_view source, std::string_view event_id) override;

  store_totals totals() override;
  std::vector<std::int64_t> received_per_interval(std::int64_t from_ms, std::int64_t before_ms,
                                                  std::int64_t interval_ms) override;

 private:
  static constexpr std::size_t statement_count = 36;  // the list lives in reader.cpp

  void check_schema();
  std::vector<std::string> timer_definitions();  // the definitions with armed timers
  SQLite::Statement& prepared(std::size_t which);

  std::unique_ptr<SQLite::Database> owned_;  // set by the path constructor only
  SQLite::Database& db_;
  // Declared after the connection so that they are finalized before it closes.
  std::array<std::unique_ptr<SQLite::Statement>, statement_count> statements_;
  int snapshot_depth_ = 0;
  bool snapshot_began_ = false;  // the outermost begin_snapshot() opened a transaction
};

}  // namespace saga::sqlite
