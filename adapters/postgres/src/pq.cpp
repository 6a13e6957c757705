#include "pq.hpp"

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "saga/store.hpp"

namespace saga::postgres::pq {

namespace {

// libpq's messages end with a newline and may hold several lines, the later ones indented with a
// tab: one line each, every run of white space one space.
std::string one_line(const char* message) {
  std::string out;
  for (const char* c = message ? message : ""; *c; ++c) {
    const bool space = *c == '\n' || *c == '\t' || *c == ' ';
    if (!space) {
      out += *c;
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

constexpr Oid oid_of(char type) {
  switch (type) {
    case 't':
      return 25;  // text
    case 'i':
      return 20;  // int8
    case 'b':
      return 16;  // bool
    case 'y':
      return 17;  // bytea
    default:
      return 0;
  }
}

// NOTICEs (CREATE SCHEMA IF NOT EXISTS on an existing one, say) would go to stderr by default.
void ignore_notice(void*, const char*) {}

}  // namespace

// ---------------------------------------------------------------------------------------------
// result

std::string result::text(int row, int column) const {
  return std::string(PQgetvalue(r_.get(), row, column),
                     static_cast<std::size_t>(PQgetlength(r_.get(), row, column)));
}

std::int64_t result::integer(int row, int column) const {
  if (PQgetlength(r_.get(), row, column) != 8)
    throw saga::store_error("column " + std::to_string(column) + " is not an int8");
  std::uint64_t v = 0;
  std::memcpy(&v, PQgetvalue(r_.get(), row, column), sizeof v);
  return static_cast<std::int64_t>(be64toh(v));
}

std::optional<std::int64_t> result::optional_integer(int row, int column) const {
  if (is_null(row, column)) return std::nullopt;
  return integer(row, column);
}

bool result::boolean(int row, int column) const {
  return PQgetlength(r_.get(), row, column) == 1 && PQgetvalue(r_.get(), row, column)[0] != 0;
}

std::int64_t result::affected() const {
  const char* n = PQcmdTuples(r_.get());
  return (n && *n) ? std::stoll(n) : 0;
}

// ---------------------------------------------------------------------------------------------
// params

void params::add(const char* data, std::size_t size) {
  // A null pointer would be SQL NULL: an empty value still needs one.
  values_.push_back(data ? data : "");
  lengths_.push_back(static_cast<int>(size));
  formats_.push_back(1);  // binary
}

params& params::text(std::string_view value) {
  add(value.data(), value.size());
  return *this;
}

params& params::optional_text(const std::optional<std::string>& value) {
  if (value) return text(*value);
  values_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(1);
  return *this;
}

params& params::integer(std::int64_t value) {
  auto& bytes = numbers_.emplace_back();
  const std::uint64_t big = htobe64(static_cast<std::uint64_t>(value));
  std::memcpy(bytes.data(), &big, sizeof big);
  add(bytes.data(), sizeof big);
  return *this;
}

params& params::optional_integer(const std::optional<std::int64_t>& value) {
  if (value) return integer(*value);
  values_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(1);
  return *this;
}

params& params::boolean(bool value) {
  auto& bytes = numbers_.emplace_back();
  bytes[0] = value ? 1 : 0;
  add(bytes.data(), 1);
  return *this;
}

params& params::limit(std::size_t value) {
  constexpr auto max = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return integer(static_cast<std::int64_t>(std::min(value, max)));
}

// ---------------------------------------------------------------------------------------------
// connection

connection::connection(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &error);
  if (!parsed) {
    const std::string why = error ? one_line(error) : "out of memory";
    PQfreemem(error);
    throw std::invalid_argument("saga::postgres::options::conninfo is not a valid connection string: " + why);
  }
  PQconninfoFree(parsed);
  conn_.reset(PQconnectdb(conninfo.c_str()));
  if (!conn_) throw saga::store_error("connect to PostgreSQL: out of memory");
  if (broken())
    throw saga::store_error("connect to PostgreSQL (" + where() +
                            "): " + one_line(PQerrorMessage(conn_.get())));
  PQsetNoticeProcessor(conn_.get(), &ignore_notice, nullptr);
}

std::string connection::where() const {
  const auto field = [](const char* v) { return std::string(v && *v ? v : "(default)"); };
  return "host=" + field(PQhost(conn_.get())) + " port=" + field(PQport(conn_.get())) +
         " dbname=" + field(PQdb(conn_.get()));
}

void connection::reset() {
  queued_.clear();  // lost with the connection
  if (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF) PQexitPipelineMode(conn_.get());
  PQreset(conn_.get());
  if (broken())
    throw saga::store_error("reconnect to PostgreSQL (" + where() +
                            "): " + one_line(PQerrorMessage(conn_.get())));
}

std::string connection::error_of(PGresult* r, const char* operation) const {
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  std::string message;
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  message = primary ? primary : one_line(PQerrorMessage(conn_.get()));
  if (const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr)
    message += std::string(" (SQLSTATE ") + state + ")";
  if (message.empty()) message = PQresStatus(status);
  return std::string(operation) + ": " + message;
}

result connection::checked(PGresult* r, const char* operation) const {
  result out(r);
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return out;
  throw saga::store_error(error_of(r, operation));
}

void connection::prepare(const char* name, std::string_view types, const char* sql) {
  std::vector<Oid> oids;
  for (const char t : types) oids.push_back(oid_of(t));
  checked(PQprepare(conn_.get(), name, sql, static_cast<int>(oids.size()), oids.data()), name);
}

result connection::run(const char* operation, const char* name, const params& p) {
  if (queued_.empty())
    return checked(PQexecPrepared(conn_.get(), name, p.count(), p.values(), p.lengths(), p.formats(), 1),
                   operation);
  send(operation, name, p);
  return run_queued();
}

result connection::exec(const char* operation, const std::string& sql) {
  if (!queued_.empty()) run_queued();
  return checked(PQexec(conn_.get(), sql.c_str()), operation);
}

void connection::send(const char* operation, const char* name, const params& p) {
  PGconn* c = conn_.get();
  if (PQpipelineStatus(c) == PQ_PIPELINE_OFF && PQenterPipelineMode(c) != 1) fail(operation);
  if (PQsendQueryPrepared(c, name, p.count(), p.values(), p.lengths(), p.formats(), 1) != 1) {
    const std::string why = error_of(nullptr, operation);
    discard();
    throw saga::store_error(why);
  }
  queued_.push_back(operation);
}

result connection::run_queued() {
  PGconn* c = conn_.get();
  std::vector<const char*> operations;
  operations.swap(queued_);
  std::optional<std::string> error;
  PGresult* last = nullptr;
  if (PQpipelineSync(c) != 1) {
    error = error_of(nullptr, operations.back());
  } else {
    for (std::size_t i = 0; i < operations.size(); ++i) {
      PGresult* r = PQgetResult(c);
      if (!r) {  // the connection is gone
        if (!error) error = error_of(nullptr, operations[i]);
        break;
      }
      const auto status = PQresultStatus(r);
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        if (i + 1 == operations.size()) std::swap(last, r);
      } else if (status != PGRES_PIPELINE_ABORTED && !error) {  // aborted: an earlier one failed
        error = error_of(r, operations[i]);
      }
      PQclear(r);
      while (PGresult* rest = PQgetResult(c)) PQclear(rest);  // up to the NULL that ends statement i
    }
    while (PGresult* r = PQgetResult(c)) {  // the sync's own result
      const bool synced = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
      PQclear(r);
      if (synced) break;
    }
  }
  PQexitPipelineMode(c);
  result out(last);
  if (error) throw saga::store_error(*error);
  return out;
}

void connection::discard() noexcept {
  if (queued_.empty()) return;
  try {
    run_queued();
  } catch (...) {
    // dropped, as promised: the caller rolls back
  }
}

bool connection::in_transaction() const {
  if (!queued_.empty()) return true;
  const auto s = PQtransactionStatus(conn_.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

int connection::take_notifications() {
  if (broken()) return 0;
  PQconsumeInput(conn_.get());  // 0: the connection is lost; broken() says so from now on
  int n = 0;
  while (PGnotify* note = PQnotifies(conn_.get())) {
    PQfreemem(note);
    ++n;
  }
  return n;
}

std::string connection::quote_identifier(std::string_view name) const {
  char* quoted = PQescapeIdentifier(conn_.get(), name.data(), name.size());
  if (!quoted) throw saga::store_error("quote identifier: " + one_line(PQerrorMessage(conn_.get())));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

std::string connection::quote_literal(std::string_view value) const {
  char* quoted = PQescapeLiteral(conn_.get(), value.data(), value.size());
  if (!quoted) throw saga::store_error("quote literal: " + one_line(PQerrorMessage(conn_.get())));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

void connection::fail(const char* operation) const {
  throw saga::store_error(std::string(operation) + ": " + one_line(PQerrorMessage(conn_.get())));
}

// ---------------------------------------------------------------------------------------------
// copy_in

namespace {

// The binary COPY header: signature, flags (no OIDs), header extension length.
constexpr char copy_header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
constexpr std::size_t copy_header_size = 19;
constexpr std::size_t copy_flush_bytes = 256 * 1024;

void append_be(std::string& out, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = bytes; i-- > 0;) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

}  // namespace

copy_in::copy_in(connection& c, std::string operation, const std::string& sql, int columns)
    : conn_(c), operation_(std::move(operation)), columns_(columns) {
  PGresult* r = PQexec(c.conn_.get(), sql.c_str());
  if (r && PQresultStatus(r) == PGRES_COPY_IN) {
    PQclear(r);
  } else {
    c.checked(r, operation_.c_str());  // throws the server's error
    throw std::logic_error(operation_ + ": not a COPY FROM STDIN");
  }
  buffer_.assign(copy_header, copy_header_size);
}

copy_in::~copy_in() {
  if (finished_) return;
  // Abandoned (an exception on our side): end the copy with an error; the transaction fails.
  if (PQputCopyEnd(conn_.conn_.get(), "copy abandoned") == 1) {
    while (PGresult* r = PQgetResult(conn_.conn_.get())) PQclear(r);
  }
}

void copy_in::field(const char* data, std::size_t size) {
  if (in_row_ == 0) append_be(buffer_, static_cast<std::uint64_t>(columns_), 2);
  if (in_row_ == columns_) throw std::logic_error(operation_ + ": more fields than columns");
  if (size > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw saga::store_error(operation_ + ": a value of more than 2 GiB");
  append_be(buffer_, size, 4);
  buffer_.append(data, size);
  ++in_row_;
}

copy_in& copy_in::text(std::string_view value) {
  field(value.data(), value.size());
  return *this;
}

copy_in& copy_in::integer(std::int64_t value) {
  std::string bytes;
  append_be(bytes, static_cast<std::uint64_t>(value), 8);
  field(bytes.data(), bytes.size());
  return *this;
}

copy_in& copy_in::boolean(bool value) {
  const char byte = value ? 1 : 0;
  field(&byte, 1);
  return *this;
}

copy_in& copy_in::jsonb(std::string_view json) {
  std::string bytes(1, '\1');  // jsonb's binary format: version 1, then the text
  bytes.append(json);
  field(bytes.data(), bytes.size());
  return *this;
}

copy_in& copy_in::null() {
  if (in_row_ == 0) append_be(buffer_, static_cast<std::uint64_t>(columns_), 2);
  if (in_row_ == columns_) throw std::logic_error(operation_ + ": more fields than columns");
  append_be(buffer_, 0xffffffffu, 4);  // length -1
  ++in_row_;
  return *this;
}

void copy_in::end_row() {
  if (in_row_ != columns_)
    throw std::logic_error(operation_ + ": a row of " + std::to_string(in_row_) + " fields, not " +
                           std::to_string(columns_));
  in_row_ = 0;
  if (buffer_.size() >= copy_flush_bytes) flush();
}

void copy_in::flush() {
  if (buffer_.empty()) return;
  if (PQputCopyData(conn_.conn_.get(), buffer_.data(), static_cast<int>(buffer_.size())) != 1)
    conn_.fail(operation_.c_str());
  buffer_.clear();
}

std::int64_t copy_in::finish() {
  append_be(buffer_, 0xffff, 2);  // the trailer: a field count of -1
  flush();
  finished_ = true;
  if (PQputCopyEnd(conn_.conn_.get(), nullptr) != 1) conn_.fail(operation_.c_str());
  std::int64_t rows = 0;
  std::optional<std::string> error;
  while (PGresult* raw = PQgetResult(conn_.conn_.get())) {
    try {
      rows = conn_.checked(raw, operation_.c_str()).affected();
    } catch (const saga::store_error& e) {
      if (!error) error = e.what();
    }
  }
  if (error) throw saga::store_error(*error);
  return rows;
}

}  // namespace saga::postgres::pq
