#pragma once
// saga::postgres::reader — the PostgreSQL implementation of the saga::reader port (issue 17,
// item 5), over the tables saga::postgres::store keeps in one PostgreSQL schema (schema version
// store::current_schema).
//
// One reader is one libpq connection of its own (options::conninfo) with its search_path set to
// options::schema; options::stall_timeout_ms is not used. The reader never writes: the session's
// default_transaction_read_only is on, it never creates or migrates the schema, and it refuses
// (saga::store_error) a schema that holds no saga tables or whose version is not
// store::current_schema.
//
// Semantics, orders and limits are those of saga::sqlite::reader, method by method (the same
// reader contract tests run over both: tests/store/reader_contract_test.cpp). How it reads:
//   * begin_snapshot() opens a REPEATABLE READ READ ONLY transaction (only the outermost of nested
//     snapshots; end_snapshot() commits it), so that the calls in between read one snapshot.
//     Outside a snapshot each call is one statement in autocommit (one consistent state), or, for
//     a method of several statements, a snapshot of its own.
//   * A saga's history is found through history_by_saga (definition, key, id): PostgreSQL's
//     schema has no chain of history rows.
//   * Timers are read from the instances' `timers` jsonb; terminal and known states from the
//     stored graph (definitions.graph, JSON text) with PostgreSQL's json functions.
//   * A dead letter's payload (bytea) comes back as its bytes.
//   * A value PostgreSQL's text cannot hold (a NUL byte, invalid UTF-8) equals no stored value: a
//     lookup by one finds nothing, as on SQLite, rather than failing.
// Every statement is prepared once at construction; every value is a bound parameter.
//
// The header does not include libpq-fe.h: the connection lives behind a pointer.
//
// Errors: saga::store_error naming the method and PostgreSQL's message ("sagas: canceling statement
// due to user request (SQLSTATE 57014)"); at construction, naming the host, port and database
// (never a password) when the server cannot be reached, or the schema. std::invalid_argument for a
// connection string libpq cannot parse or a bad schema name. Thread-safety: none (one connection).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/postgres/store.hpp"
#include "saga/reader.hpp"

namespace saga::postgres {

class reader final : public saga::reader {
 public:
  explicit reader(const options& opts);
  ~reader() override;

  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  const std::string& schema() const;

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
  std::vector<std::string> timer_definitions();  // the definitions with armed timers

  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace saga::postgres
