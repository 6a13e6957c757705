#include "saga/postgres/bulk_load.hpp"

#include <cstdint>
#include <stdexcept>

#include "pq.hpp"
#include "schema.hpp"

namespace saga::postgres {

const std::vector<std::string>& bulk_load::tables() {
  static const std::vector<std::string> names = {"definitions", "instances",    "history", "inbox",
                                                 "outbox",      "dead_letters", "parked"};
  return names;
}

bulk_load::bulk_load(const options& opts, std::int64_t lock_timeout_ms)
    : conn_(std::make_unique<pq::connection>(detail::connect(opts))), schema_(opts.schema) {
  if (lock_timeout_ms < 0 || lock_timeout_ms > INT32_MAX)
    throw std::invalid_argument("bulk_load: lock_timeout_ms must be 0 to 2^31-1");
  quoted_ = conn_->quote_identifier(schema_);
  conn_->exec("open", "SET search_path TO " + quoted_);
  // The load reads its source between statements: never ended as a stalled writer would be.
  conn_->exec("open", "SET idle_in_transaction_session_timeout = 0");
  detail::migrate(*conn_, schema_, quoted_);
  conn_->exec("begin", "BEGIN");
  open_ = true;
  conn_->exec("begin", "SET LOCAL lock_timeout = " + std::to_string(lock_timeout_ms));
  std::string list;
  for (const auto& t : tables()) list += qualified(t) + ", ";
  list += qualified("meta");
  try {
    conn_->exec("lock", "LOCK TABLE " + list + " IN ACCESS EXCLUSIVE MODE");
  } catch (const store_error& e) {
    throw store_error("lock the tables of schema \"" + schema_ + "\" (is a sagad using it?): " + e.what());
  }
}

bulk_load::~bulk_load() {
  if (!open_) return;
  try {
    conn_->exec("rollback", "ROLLBACK");
  } catch (...) {  // the connection is gone: so is the transaction
  }
}

std::string bulk_load::qualified(const std::string& table) const {
  return quoted_ + "." + conn_->quote_identifier(table);
}

std::int64_t bulk_load::count(const std::string& table) {
  const auto r = conn_->exec(("count " + table).c_str(), "SELECT count(*) FROM " + qualified(table));
  return std::stoll(r.text(0, 0));
}

bool bulk_load::empty() {
  for (const auto& t : tables())
    if (count(t) != 0) return false;
  const auto r = conn_->exec("count", "SELECT count(*) FROM " + qualified("meta") + " WHERE value <> 0");
  return r.text(0, 0) == "0";
}

void bulk_load::clear() {
  std::string list;
  for (const auto& t : tables()) list += (list.empty() ? "" : ", ") + qualified(t);
  conn_->exec("clear", "TRUNCATE " + list + " RESTART IDENTITY");
  conn_->exec("clear", "UPDATE " + qualified("meta") + " SET value = 0");
}

bulk_load::table_copy bulk_load::copy(const std::string& table, const std::vector<std::string>& columns) {
  std::string list;
  for (const auto& c : columns) list += (list.empty() ? "" : ", ") + conn_->quote_identifier(c);
  return table_copy(std::make_unique<pq::copy_in>(
      *conn_, "copy into " + table, "COPY " + qualified(table) + " (" + list + ") FROM STDIN (FORMAT binary)",
      static_cast<int>(columns.size())));
}

void bulk_load::set_meta(const std::string& key, std::int64_t value) {
  pq::params p;
  p.text(key).integer(value);
  conn_->prepare("saga_bulk_set_meta", "ti",
                 ("INSERT INTO " + qualified("meta") +
                  " (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                     .c_str());
  conn_->run("set meta", "saga_bulk_set_meta", p);
  conn_->exec("set meta", "DEALLOCATE saga_bulk_set_meta");
}

void bulk_load::continue_identity(const std::string& table, std::int64_t at_least) {
  // setval(seq, n, true): the next id is n + 1; (seq, 1, false): the next is 1 (nothing taken).
  const std::string q = qualified(table);
  const std::string last = "greatest(coalesce(max(id), 0), " + std::to_string(at_least) + ")";
  conn_->exec(("continue the identity of " + table).c_str(),
              "SELECT setval(pg_get_serial_sequence(" + conn_->quote_literal(q) + ", 'id'), greatest(" +
                  last + ", 1), " + last + " > 0) FROM " + q);
}

void bulk_load::commit() {
  // The rows came by COPY, past the statements that keep the counts: count them once (schema 4).
  conn_->exec("count the rows", SAGA_PG_RECOUNT);
  const auto r = conn_->exec("commit", "COMMIT");
  open_ = false;
  if (r.command() != "COMMIT") throw store_error("commit: the transaction had failed and was rolled back");
}

// ---------------------------------------------------------------------------------------------
// table_copy

bulk_load::table_copy::table_copy(std::unique_ptr<pq::copy_in> c) : copy_(std::move(c)) {}
bulk_load::table_copy::table_copy(table_copy&&) noexcept = default;
bulk_load::table_copy::~table_copy() = default;

bulk_load::table_copy& bulk_load::table_copy::text(std::string_view value) {
  copy_->text(value);
  return *this;
}
bulk_load::table_copy& bulk_load::table_copy::integer(std::int64_t value) {
  copy_->integer(value);
  return *this;
}
bulk_load::table_copy& bulk_load::table_copy::boolean(bool value) {
  copy_->boolean(value);
  return *this;
}
bulk_load::table_copy& bulk_load::table_copy::jsonb(std::string_view json) {
  copy_->jsonb(json);
  return *this;
}
bulk_load::table_copy& bulk_load::table_copy::null() {
  copy_->null();
  return *this;
}
void bulk_load::table_copy::end_row() {
  copy_->end_row();
}
std::int64_t bulk_load::table_copy::finish() {
  return copy_->finish();
}

}  // namespace saga::postgres
