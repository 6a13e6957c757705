#pragma once
// Test support for the PostgreSQL store: where the test cluster is (tests/support/pg_cluster.sh,
// started by ctest's postgres_cluster fixture), a schema name no other test uses, and a plain SQL
// session beside the store's own connection for checks the port does not offer.

#include <string>
#include <vector>

struct pg_conn;

namespace saga::test {

// The test cluster's connection string: the file named by SAGA_TEST_POSTGRES, else the one the
// fixture writes into the build tree. Throws std::runtime_error saying how to get one.
std::string postgres_conninfo();

// A key=value connection string (the test cluster's) as the URI sagad's and sagactl's --db take:
// postgresql://[user[:password]@]/dbname?host=…&port=…, the other keys as query parameters.
// `user` and `password`, when given, replace the connection string's user.
std::string postgres_uri(const std::string& conninfo, const std::string& user = "",
                         const std::string& password = "");

// "<prefix>_<pid>_<n>": unique per test process and call, so tests running at once never share
// a schema.
std::string unique_schema(const std::string& prefix);

// A connection of its own with search_path set to `schema`; text results, autocommit.
class sql_session {
 public:
  sql_session(const std::string& conninfo, const std::string& schema);
  ~sql_session();
  sql_session(const sql_session&) = delete;
  sql_session& operator=(const sql_session&) = delete;

  void exec(const std::string& sql);
  // The first column of every row, as text (NULL as "").
  std::vector<std::string> column(const std::string& sql);
  // The first column of the first row; throws when there is none.
  std::string scalar(const std::string& sql);

 private:
  pg_conn* conn_;
};

}  // namespace saga::test
