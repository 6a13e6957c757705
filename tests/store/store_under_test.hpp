#pragma once
// The store a contract test runs against (tests/store/store_contract_test.cpp), chosen by the
// environment variable SAGA_TEST_STORE: "sqlite" (the default: a file in a temporary folder) or
// "postgres" (a schema of its own in the test cluster, tests/support/postgres.hpp). Besides the
// store it gives what a test checks beyond the port: SQL that both stores' tables answer alike,
// run on a connection of its own, outside the store's transaction; and a reader (the read port) of
// the same database, for the reader contract tests (tests/store/reader_contract_test.cpp).

#include <memory>
#include <string>
#include <vector>

#include "saga/reader.hpp"
#include "saga/store.hpp"

namespace saga::test {

class store_under_test {
 public:
  virtual ~store_under_test() = default;

  virtual saga::store& store() = 0;
  // Closes the store and opens a new one on the same database (and schema).
  virtual void reopen() = 0;
  // A reader of the same database (and schema), on a connection of its own.
  virtual std::unique_ptr<saga::reader> open_reader() = 0;

  virtual void exec(const std::string& sql) = 0;
  // The first column of each row, as text.
  virtual std::vector<std::string> column(const std::string& sql) = 0;
  std::string scalar(const std::string& sql);
  // SELECT count(*) FROM `table` (a name from the test, never from data).
  std::int64_t count(const std::string& table);
  // Outbox rows without a published time, counted by SQL: the stores keep them differently
  // (SQLite: the end of the published prefix, schema 12; PostgreSQL: a mark on each row).
  virtual std::int64_t unpublished_rows() = 0;
};

std::unique_ptr<store_under_test> make_store_under_test();

}  // namespace saga::test
