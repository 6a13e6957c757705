#include "store/store_under_test.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <cstdlib>
#include <optional>
#include <stdexcept>

#include "saga/postgres/reader.hpp"
#include "saga/postgres/store.hpp"
#include "saga/sqlite/reader.hpp"
#include "saga/sqlite/store.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace saga::test {

std::string store_under_test::scalar(const std::string& sql) {
  const auto rows = column(sql);
  if (rows.empty()) throw std::runtime_error("no row from " + sql);
  return rows.front();
}

std::int64_t store_under_test::count(const std::string& table) {
  return std::stoll(scalar("SELECT count(*) FROM " + table));
}

namespace {

class sqlite_under_test final : public store_under_test {
 public:
  sqlite_under_test() { reopen(); }

  saga::store& store() override { return *store_; }
  void reopen() override {
    store_.reset();
    saga::sqlite::options o;
    o.path = dir_.file("saga.db");
    store_.emplace(o);
  }
  std::unique_ptr<saga::reader> open_reader() override {
    return std::make_unique<saga::sqlite::reader>(dir_.file("saga.db"));
  }
  // On the store's own connection: SQLite has one writer, and the tests check between calls.
  void exec(const std::string& sql) override { store_->database().exec(sql); }
  std::int64_t unpublished_rows() override {
    return std::stoll(scalar("SELECT count(*) FROM outbox_published WHERE published_ms IS NULL"));
  }
  std::vector<std::string> column(const std::string& sql) override {
    SQLite::Statement q(store_->database(), sql);
    std::vector<std::string> out;
    while (q.executeStep()) out.push_back(q.getColumn(0).getString());
    return out;
  }

 private:
  temp_dir dir_;
  std::optional<saga::sqlite::store> store_;
};

class postgres_under_test final : public store_under_test {
 public:
  postgres_under_test() {
    options_.conninfo = postgres_conninfo();
    options_.schema = unique_schema("contract");
    reopen();
    sql_.emplace(options_.conninfo, options_.schema);
  }

  saga::store& store() override { return *store_; }
  void reopen() override {
    store_.reset();
    store_.emplace(options_);
  }
  std::unique_ptr<saga::reader> open_reader() override {
    return std::make_unique<saga::postgres::reader>(options_);
  }
  void exec(const std::string& sql) override { sql_->exec(sql); }
  std::int64_t unpublished_rows() override {
    return std::stoll(scalar("SELECT count(*) FROM outbox WHERE published_ms IS NULL"));
  }
  std::vector<std::string> column(const std::string& sql) override { return sql_->column(sql); }

 private:
  saga::postgres::options options_;
  std::optional<saga::postgres::store> store_;
  std::optional<sql_session> sql_;
};

}  // namespace

std::unique_ptr<store_under_test> make_store_under_test() {
  const char* which = std::getenv("SAGA_TEST_STORE");
  const std::string name = which && *which ? which : "sqlite";
  if (name == "sqlite") return std::make_unique<sqlite_under_test>();
  if (name == "postgres") return std::make_unique<postgres_under_test>();
  throw std::runtime_error("SAGA_TEST_STORE must be sqlite or postgres, not \"" + name + "\"");
}

}  // namespace saga::test
