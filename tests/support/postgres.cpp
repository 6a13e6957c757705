#include "support/postgres.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace saga::test {

namespace {

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

result_ptr run(PGconn* c, const std::string& sql) {
  result_ptr r(PQexec(c, sql.c_str()), &PQclear);
  const auto status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error("sql_session: " + sql + ": " + PQerrorMessage(c));
  return r;
}

}  // namespace

std::string postgres_conninfo() {
  const char* file = std::getenv("SAGA_TEST_POSTGRES");
  const std::string path = file && *file ? file : SAGA_TEST_POSTGRES_FILE;
  std::ifstream in(path);
  std::string conninfo;
  if (!in || !std::getline(in, conninfo) || conninfo.empty())
    throw std::runtime_error(
        "no PostgreSQL for the tests: " + path +
        " is missing (run the tests through ctest, whose postgres_cluster fixture starts"
        " one, or `tests/support/pg_cluster.sh start FILE` and SAGA_TEST_POSTGRES=FILE)");
  return conninfo;
}

std::string postgres_uri(const std::string& conninfo, const std::string& user, const std::string& password) {
  std::istringstream in(conninfo);
  std::string word, db = "postgres", query;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq == std::string::npos) continue;
    const auto key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "dbname")
      db = value;
    else if (key != "user" || user.empty())
      query += (query.empty() ? "?" : "&") + key + "=" + value;
  }
  const std::string who = user.empty() ? "" : user + (password.empty() ? "" : ":" + password) + "@";
  return "postgresql://" + who + "/" + db + query;
}

std::string unique_schema(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

sql_session::sql_session(const std::string& conninfo, const std::string& schema)
    : conn_(PQconnectdb(conninfo.c_str())) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string why = PQerrorMessage(conn_);
    PQfinish(conn_);
    throw std::runtime_error("sql_session: " + why);
  }
  char* quoted = PQescapeIdentifier(conn_, schema.data(), schema.size());
  const std::string path = std::string("SET search_path TO ") + quoted;
  PQfreemem(quoted);
  exec("SET client_min_messages = warning");
  exec(path);
}

sql_session::~sql_session() {
  PQfinish(conn_);
}

void sql_session::exec(const std::string& sql) {
  run(conn_, sql);
}

std::vector<std::string> sql_session::column(const std::string& sql) {
  const auto r = run(conn_, sql);
  std::vector<std::string> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(PQgetvalue(r.get(), i, 0));
  return out;
}

std::string sql_session::scalar(const std::string& sql) {
  const auto rows = column(sql);
  if (rows.empty()) throw std::runtime_error("sql_session: no row from " + sql);
  return rows.front();
}

}  // namespace saga::test
