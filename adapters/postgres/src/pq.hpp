#pragma once
// Private to adapters/postgres: a thin RAII layer over libpq. A connection owns its PGconn, a
// result its PGresult; params holds one call's parameters in libpq's binary format (a text or
// bytea value is its bytes, an int8 eight bytes in network order). Every statement the store runs
// is prepared once (PQprepare) and executed with binary parameters and binary results
// (PQexecPrepared). Bulk loads (sagactl migrate-store) go through copy_in: COPY FROM STDIN in
// the binary format (PQputCopyData). Not installed.

#include <libpq-fe.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace saga::postgres::pq {

class result {
 public:
  explicit result(PGresult* r) : r_(r) {}

  int rows() const { return PQntuples(r_.get()); }
  bool is_null(int row, int column) const { return PQgetisnull(r_.get(), row, column) != 0; }
  // text, bytea and jsonb-as-text columns: the bytes as they are
  std::string text(int row, int column) const;
  std::int64_t integer(int row, int column) const;  // int8
  std::optional<std::int64_t> optional_integer(int row, int column) const;
  bool boolean(int row, int column) const;
  // Rows an INSERT, UPDATE or DELETE touched.
  std::int64_t affected() const;
  std::string_view command() const { return PQcmdStatus(r_.get()); }

 private:
  struct clear {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
  };
  std::unique_ptr<PGresult, clear> r_;
};

// One call's parameters, bound in the order of $1, $2, ... Values are referenced, not copied,
// except integers (converted here): a bound string must outlive the call.
class params {
 public:
  params& text(std::string_view value);
  params& optional_text(const std::optional<std::string>& value);  // absent: NULL
  params& integer(std::int64_t value);
  params& optional_integer(const std::optional<std::int64_t>& value);
  params& boolean(bool value);
  // A LIMIT: size_t clamped to int8.
  params& limit(std::size_t value);

  int count() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  void add(const char* data, std::size_t size);

  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::deque<std::array<char, 8>> numbers_;  // a deque never moves what it holds
};

class connection;

// One COPY ... FROM STDIN (FORMAT binary): rows written field by field in PostgreSQL's binary
// COPY format (a field is its length and the same bytes a binary parameter would be), buffered
// and handed to libpq (PQputCopyData) 256 KiB at a time; finish() ends the copy (PQputCopyEnd)
// and returns the rows the server took. Every row must have `columns` fields. Errors (the
// server's, on finish() or on a flush) throw saga::store_error naming `operation`. A copy that is
// destroyed unfinished is ended with an error, which fails the transaction around it.
class copy_in {
 public:
  // Starts `sql`, which must be a COPY ... FROM STDIN (FORMAT binary) of `columns` columns.
  copy_in(connection& c, std::string operation, const std::string& sql, int columns);
  ~copy_in();
  copy_in(const copy_in&) = delete;
  copy_in& operator=(const copy_in&) = delete;

  copy_in& text(std::string_view value);  // text, or bytea's bytes
  copy_in& integer(std::int64_t value);   // int8
  copy_in& boolean(bool value);
  copy_in& jsonb(std::string_view json);  // JSON text into a jsonb column
  copy_in& null();
  // The row's fields are all written (throws std::logic_error when there were not `columns`).
  void end_row();
  // Ends the copy; the rows the server took (its command tag, COPY n).
  std::int64_t finish();

 private:
  void field(const char* data, std::size_t size);
  void flush();

  connection& conn_;
  std::string operation_;
  int columns_;
  int in_row_ = 0;
  bool finished_ = false;
  std::string buffer_;
};

class connection {
 public:
  // Connects; throws std::invalid_argument for a connection string libpq cannot parse and
  // saga::store_error (naming host, port and database) when the server cannot be reached.
  explicit connection(const std::string& conninfo);

  // Prepares `sql` as `name`; `types` gives each parameter's type by one letter: t text, i int8,
  // b boolean, y bytea. Throws saga::store_error.
  void prepare(const char* name, std::string_view types, const char* sql);
  // Runs a prepared statement; throws saga::store_error("<operation>: <message>"). When statements
  // are queued (send), they go with it in one pipeline, one round trip, and the first of them
  // that failed is what is thrown, named by its own operation.
  result run(const char* operation, const char* name, const params& p);
  // Runs SQL text (several statements allowed, no parameters); throws like run(). What is queued
  // is run first.
  result exec(const char* operation, const std::string& sql);

  // libpq's pipeline mode (PQenterPipelineMode, libpq 14+): send() queues a prepared statement
  // without waiting for its result — the parameters are copied into libpq's output buffer at once,
  // so `p` need not outlive the call — and the next run() sends the queue with its own statement,
  // ended by one sync (PQpipelineSync), and reads every result. PostgreSQL skips what follows a
  // failed statement up to the sync. discard() runs what is queued and drops its results and its
  // failure (before a rollback, which must not be skipped). Throws saga::store_error when the
  // statement cannot be sent (a lost connection).
  void send(const char* operation, const char* name, const params& p);
  std::size_t queued() const { return queued_.size(); }
  void discard() noexcept;

  bool in_transaction() const;  // also while statements are queued (a transaction's writes)
  bool broken() const { return PQstatus(conn_.get()) == CONNECTION_BAD; }
  // The open transaction failed (known from a statement's result): only ROLLBACK (or COMMIT,
  // which rolls back) is accepted.
  bool failed() const { return PQtransactionStatus(conn_.get()) == PQTRANS_INERROR; }

  // Notifications (LISTEN): the connection's socket, to poll for readability beside other work
  // (-1 when there is none), and how many notifications arrived since the last call: what the
  // socket holds is read without waiting (PQconsumeInput), and what libpq has queued, also while
  // running statements, is taken (PQnotifies). Never throws: a connection lost meanwhile reads as
  // none (broken() then says so).
  int socket() const { return PQsocket(conn_.get()); }
  int take_notifications();
  // Connects again with the same parameters; throws saga::store_error when it cannot.
  void reset();
  // An identifier quoted for SQL ("my schema" -> "\"my schema\"").
  std::string quote_identifier(std::string_view name) const;
  // A string literal quoted for SQL (PQescapeLiteral).
  std::string quote_literal(std::string_view value) const;

 private:
  friend class copy_in;
  result checked(PGresult* r, const char* operation) const;
  std::string error_of(PGresult* r, const char* operation) const;  // "<operation>: <message>"
  // Syncs the pipeline and reads what is queued: the last statement's result, or throws the
  // first failure.
  result run_queued();
  [[noreturn]] void fail(const char* operation) const;  // the connection's last error
  std::string where() const;                            // "host=... port=... dbname=..."

  struct finish {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
  };
  std::unique_ptr<PGconn, finish> conn_;
  std::vector<const char*> queued_;  // the operations sent and not yet read, in order
};

}  // namespace saga::postgres::pq
