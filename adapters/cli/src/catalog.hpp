#pragma once
// sagactl's read side: the queries over a saga database, opened read-only.
//
// A catalog opens the file with SQLITE_OPEN_READONLY and a busy timeout, never
// migrates, and refuses a missing file or a schema other than the one this
// build knows. Every query is a constant SQL string; every value a user gives
// (type, state, id, times, limits) is a bound parameter. In WAL mode (sagad's)
// a reader never blocks the writer and is never blocked by it.
//
// Results come back as JSON values already in the shape `--json` prints:
// times as RFC 3339 strings, durations as integer milliseconds, absent values
// as null. The human tables are rendered from the same values.
//
// Errors: sagactl::failure with the exit code it stands for (1 not found,
// 2 usage, 3 database). Not thread-safe (one connection).

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <SQLiteCpp/Database.h>
#include <nlohmann/json.hpp>

#include "saga/graph.hpp"

namespace sagactl {

enum exit_code : int { ok = 0, not_found = 1, usage = 2, database = 3, unreachable_or_rejected = 4 };

// An error that ends the program with `code` and one line on stderr.
class failure : public std::runtime_error {
 public:
  failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

struct list_filter {
  std::optional<std::string> type;
  std::optional<std::string> state;
  std::optional<std::int64_t> stuck_for_ms;  // non-terminal sagas in their state at least this long
  std::optional<std::int64_t> since_ms;      // created at or after
  std::optional<std::int64_t> until_ms;      // created before
  std::int64_t limit = 1000;
};

class catalog {
 public:
  // Throws failure(database) for a missing file, an unreadable one, or a schema
  // version other than saga::sqlite::store::current_schema.
  explicit catalog(const std::string& path, int busy_timeout_ms = 5000);
  ~catalog();
  catalog(const catalog&) = delete;
  catalog& operator=(const catalog&) = delete;

  // All methods take `now_ms` where ages are computed, so output is reproducible.
  nlohmann::json list(const list_filter& f, std::int64_t now_ms);
  // Throws failure(not_found) for an unknown id, failure(usage) when several
  // definitions have a saga with this id and `type` is empty.
  nlohmann::json show(const std::string& id, const std::string& type, std::int64_t now_ms);
  nlohmann::json stats(std::int64_t now_ms);
  nlohmann::json outbox(bool pending_only, std::int64_t from_sequence, std::int64_t limit);
  nlohmann::json dead_letters(std::int64_t limit);
  nlohmann::json timers(std::optional<std::int64_t> due_before_ms, std::int64_t limit);
  nlohmann::json definitions();

  // The stored graph of `name`; failure(not_found) when none.
  saga::graph graph_of(const std::string& name);
  // A dead letter's stored payload; failure(not_found) when no such id.
  std::string dead_letter_payload(std::int64_t id);
  // The highest published sequence (0 when nothing was published).
  std::int64_t last_published();

  // SQLite's online backup of the whole database into `file` (which must not
  // exist); returns the number of pages copied.
  int backup_to(const std::string& file);

 private:
  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace sagactl
