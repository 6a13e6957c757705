#include "pq.hpp"

#include <endian.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

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
  PQreset(conn_.get());
  if (broken())
    throw saga::store_error("reconnect to PostgreSQL (" + where() +
                            "): " + one_line(PQerrorMessage(conn_.get())));
}

result connection::checked(PGresult* r, const char* operation) const {
  result out(r);
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return out;
  std::string message;
  const char* primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  message = primary ? primary : one_line(PQerrorMessage(conn_.get()));
  if (const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr)
    message += std::string(" (SQLSTATE ") + state + ")";
  if (message.empty()) message = PQresStatus(status);
  throw saga::store_error(std::string(operation) + ": " + message);
}

void connection::prepare(const char* name, std::string_view types, const char* sql) {
  std::vector<Oid> oids;
  for (const char t : types) oids.push_back(oid_of(t));
  checked(PQprepare(conn_.get(), name, sql, static_cast<int>(oids.size()), oids.data()), name);
}

result connection::run(const char* operation, const char* name, const params& p) {
  return checked(PQexecPrepared(conn_.get(), name, p.count(), p.values(), p.lengths(), p.formats(), 1),
                 operation);
}

result connection::exec(const char* operation, const std::string& sql) {
  return checked(PQexec(conn_.get(), sql.c_str()), operation);
}

bool connection::in_transaction() const {
  const auto s = PQtransactionStatus(conn_.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

std::string connection::quote_identifier(std::string_view name) const {
  char* quoted = PQescapeIdentifier(conn_.get(), name.data(), name.size());
  if (!quoted) throw saga::store_error("quote identifier: " + one_line(PQerrorMessage(conn_.get())));
  std::string out(quoted);
  PQfreemem(quoted);
  return out;
}

}  // namespace saga::postgres::pq
