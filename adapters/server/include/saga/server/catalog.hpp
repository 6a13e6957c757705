#pragma once
// saga::server::catalog — the read side's JSON documents: what `sagactl --json` prints and what
// sagad's console (--console) serves and renders, built from the engine's read port
// (saga::reader), so that neither has SQL of its own and any store with a reader gets both.
// One home for these documents: sagactl (adapters/cli/src/catalog.hpp) only names them.
//
// catalog(db) opens a SQLite file through saga::sqlite::reader, read-only (never created,
// migrated or written; in WAL mode, sagad's, a reader never blocks the writer and is never
// blocked by it), and refuses a missing file or a schema other than the one this build knows.
// A PostgreSQL URI (postgresql://…, saga::server::is_postgres) is read through
// saga::postgres::reader, in read-only transactions, from the schema `pg_schema`; it refuses a
// schema without saga tables or of another version. Messages name the database without a
// URI's password (saga::server::describe_db). Every value a user gives (type, state, id, times,
// limits) reaches the reader as data, never as SQL.
//
// Results come back as JSON values already in the shape `--json` prints:
// times as RFC 3339 strings, durations as integer milliseconds, absent values
// as null. The human tables are rendered from the same values. The reads of one
// command see one snapshot of the database.
//
// Errors: failure with the exit code it stands for in sagactl (1 not found,
// 2 usage, 3 database); the console answers them 404, 400 and 500. Not thread-safe (one
// connection).

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/graph.hpp"
#include "saga/reader.hpp"

namespace saga::server {

enum exit_code : int {
  ok = 0,
  not_found = 1,
  usage = 2,
  database = 3,
  unreachable_or_rejected = 4,
  differences_found = 5  // sagactl reconcile; sagactl migrate: sagas refused
};

// An error that ends the program with `code` and one line on stderr.
class failure : public std::runtime_error {
 public:
  failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// The password a PostgreSQL URI carries (user:password@… or a password=… parameter); empty when
// none. without_password: `message` (libpq's, about `db`), unless it quotes that password.
std::string password_of(const std::string& db);
std::string without_password(const std::string& message, const std::string& db);

struct list_filter {
  std::optional<std::string> type;
  std::optional<std::string> state;
  std::optional<std::int64_t> stuck_for_ms;  // non-terminal sagas in their state at least this long
  std::optional<std::int64_t> since_ms;      // created at or after
  std::optional<std::int64_t> until_ms;      // created before
  std::optional<std::string> trace_id;       // with a history row in this trace (32 hex digits)
  std::int64_t trace_scan = 1'000'000;       // ... among the newest this many history rows
  std::int64_t limit = 1000;
  std::optional<saga::saga_position> after;  // paging: only sagas after this one (in the list's order)
  bool newest_first = false;                 // newest created first; oldest first otherwise
};

// One page of list(): its rows, and where the next page starts (empty: this was the last).
struct list_page {
  nlohmann::json rows;
  std::optional<saga::saga_position> next;
};

class catalog {
 public:
  // Throws failure(database) for a missing file, an unreadable one, or a schema
  // version other than the store's current_schema; for a PostgreSQL URI, when the
  // server cannot be reached or refuses the connection (failure(usage) for a URI
  // libpq cannot parse).
  explicit catalog(const std::string& db, const std::string& pg_schema = "saga", int busy_timeout_ms = 5000);
  // Over a reader the caller owns (another store's); `name` stands for it in messages.
  catalog(saga::reader& r, std::string name);
  ~catalog();
  catalog(const catalog&) = delete;
  catalog& operator=(const catalog&) = delete;

  // All methods take `now_ms` where ages are computed, so output is reproducible.
  nlohmann::json list(const list_filter& f, std::int64_t now_ms);
  // The same rows, paged: `next` is set when more sagas match than f.limit.
  list_page page(const list_filter& f, std::int64_t now_ms);
  // Throws failure(not_found) for an unknown id, failure(usage) when several
  // definitions have a saga with this id and `type` is empty.
  nlohmann::json show(const std::string& id, const std::string& type, std::int64_t now_ms);
  nlohmann::json stats(std::int64_t now_ms);
  // Parked events of every saga with an id after `after_id`, in arrival order; each as in
  // show()'s "parked", with its saga's saga_type and saga_id.
  nlohmann::json parked(std::int64_t after_id, std::int64_t limit);
  nlohmann::json outbox(bool pending_only, std::int64_t from_sequence, std::int64_t limit);
  nlohmann::json dead_letters(std::int64_t limit);
  // Each timer says whether its definition is in the definitions table (`registered`).
  nlohmann::json timers(std::optional<std::int64_t> due_before_ms, std::int64_t limit);
  // Per registered definition its timers due at `now_ms`; then the definitions that are not
  // registered but have timers due (sagad never fires those).
  nlohmann::json definitions(std::int64_t now_ms);

  // The stored graph of `name`, or nullopt when the database has no definition of that name.
  // One version of a definition's stored graph; without a version, the newest.
  std::optional<saga::graph> stored_graph(const std::string& name,
                                          std::optional<std::int64_t> version = std::nullopt);
  // A dead letter's stored payload and whether it was cut at the size limit;
  // failure(not_found) when no such id.
  struct stored_dead_letter {
    std::string payload;
    bool truncated = false;
  };
  stored_dead_letter dead_letter(std::int64_t id);
  // What became of the incoming event (source, id): {"status": "accepted" | "rejected" |
  // "not_received", ...} with its ack, its dead letter's reason, or the inbox's oldest row
  // (before it, "not_received" may be "pruned from the dedup window").
  nlohmann::json inbound(const std::string& source, const std::string& id);
  // One saga's trail: each incoming event with its ack, each follow-on event with its sequence.
  nlohmann::json audit(const std::string& id, const std::string& type);
  // One page of the unfinished sagas of `definition` on a version other than `version`, ordered
  // by (created, definition, key), after `after` (sagactl migrate's candidates).
  std::vector<saga::saga_summary> off_version(const std::string& definition, std::int64_t version,
                                              const std::optional<saga::saga_position>& after,
                                              std::size_t limit);
  // The highest published sequence (0 when nothing was published).
  std::int64_t last_published();

  // What `sagactl purge` may remove, per registered definition (only `definition`
  // unless empty; failure(not_found) when it is not registered): its terminal states,
  // except the state an operator can still resolve out of (graph::attention_state).
  struct finished_states {
    std::string definition;
    std::vector<std::string> states;
  };
  std::vector<finished_states> purgeable(const std::string& definition);
  // How many sagas of `f` have been in one of its states since before `before_ms`, and
  // their history rows: what purge_finished would remove.
  struct purge_count {
    std::int64_t sagas = 0;
    std::int64_t history = 0;
  };
  purge_count count_finished(const finished_states& f, std::int64_t before_ms);

 private:
  // The definition of the saga `id` (only `type` unless empty); failure(not_found) or, when
  // several have one, failure(usage).
  std::string definition_of(const std::string& id, const std::string& type);

  std::string path_;
  std::unique_ptr<saga::reader> owned_;  // set by the path constructor only
  saga::reader& reader_;
};

}  // namespace saga::server
