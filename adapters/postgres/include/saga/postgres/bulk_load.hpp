#pragma once
// saga::postgres::bulk_load — fills a store's schema in one transaction, table by table, with
// COPY (libpq's PQputCopyData, the binary COPY format): what `sagactl migrate-store` uses to move
// a SQLite database into PostgreSQL (docs/postgres.md, "Moving a SQLite database").
//
// The constructor connects like the store (options: connection string, schema), creates and
// migrates the schema to store::current_schema when needed (that commits on its own, as when a
// store opens it), then opens the load's transaction and locks the schema's tables (ACCESS
// EXCLUSIVE, waiting at most `lock_timeout_ms`): nothing else reads or writes them until the load
// commits or rolls back, and a sagad working on the schema makes the lock fail rather than wait.
// Rows are copied as they are given, identity columns included; continue_identity() then moves a
// table's identity past what was copied. Nothing is visible to others before commit(); a load
// destroyed uncommitted rolls back, leaving the schema as it was (created, perhaps, but empty).
//
// Thread-safety: none (one connection). The header does not include libpq-fe.h.
//
// Errors: saga::store_error naming the step (and the table) with PostgreSQL's message, never the
// connection string; std::invalid_argument for options libpq cannot parse (like the store).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/postgres/store.hpp"

namespace saga::postgres {

namespace pq {
class connection;
class copy_in;
}  // namespace pq

class bulk_load {
 public:
  bulk_load(const options& opts, std::int64_t lock_timeout_ms);
  ~bulk_load();
  bulk_load(const bulk_load&) = delete;
  bulk_load& operator=(const bulk_load&) = delete;

  // The tables of the schema that hold data, in the order they are best filled.
  static const std::vector<std::string>& tables();

  // Rows in `table` (one of tables()), as this transaction sees them.
  std::int64_t count(const std::string& table);
  // Whether the schema holds nothing: no row in any of tables(), meta's counters at 0.
  bool empty();
  // Empties every table of the schema (TRUNCATE … RESTART IDENTITY) and sets meta's counters to 0.
  void clear();

  // One table's COPY: fields in the order of `columns`, a row ended by end_row().
  class table_copy {
   public:
    table_copy(table_copy&&) noexcept;
    ~table_copy();

    table_copy& text(std::string_view value);  // text, or the bytes of a bytea
    table_copy& integer(std::int64_t value);   // bigint
    table_copy& boolean(bool value);
    table_copy& jsonb(std::string_view json);  // JSON text into a jsonb column
    table_copy& null();
    void end_row();
    // Ends the copy; the rows the server took.
    std::int64_t finish();

   private:
    friend class bulk_load;
    explicit table_copy(std::unique_ptr<pq::copy_in> c);
    std::unique_ptr<pq::copy_in> copy_;
  };
  // Only one copy at a time; finish it before anything else on this load.
  table_copy copy(const std::string& table, const std::vector<std::string>& columns);

  // meta's row `key` (last_published, outbox_sequence) set to `value`.
  void set_meta(const std::string& key, std::int64_t value);
  // The identity column `id` of `table` continues after max(id) and after `at_least` (the
  // source's own counter, which may be past its newest remaining row).
  void continue_identity(const std::string& table, std::int64_t at_least);

  void commit();

 private:
  std::string qualified(const std::string& table) const;

  std::unique_ptr<pq::connection> conn_;
  std::string schema_, quoted_;
  bool open_ = false;
};

}  // namespace saga::postgres
