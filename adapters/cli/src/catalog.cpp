#include "catalog.hpp"

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <thread>
#include <utility>

#include "saga/codec.hpp"
#include "saga/sqlite/store.hpp"

namespace sagactl {

namespace {

using json = nlohmann::json;

// The constant SQL of every query. Only `?NNN` placeholders carry values.

// Terminal states come from the stored graph (definitions.graph, JSON), so the
// "stuck" filter needs no list of states spliced into the SQL.
constexpr const char* sql_list =
    "SELECT i.definition, i.key, i.state, i.version, i.created_ms, i.state_since_ms,"
    " (SELECT count(*) FROM timers AS t WHERE t.definition = i.definition AND t.key = i.key"
    "   AND t.due_ms IS NOT NULL),"
    " (SELECT count(*) FROM parked AS p WHERE p.definition = i.definition AND p.key = i.key)"
    " FROM instances AS i"
    " WHERE (?1 IS NULL OR i.definition = ?1)"
    " AND (?2 IS NULL OR i.state = ?2)"
    " AND (?3 IS NULL OR (i.state_since_ms <= ?3 AND NOT EXISTS"
    "   (SELECT 1 FROM definitions AS d, json_each(d.graph, '$.terminal') AS term"
    "    WHERE d.name = i.definition AND term.value = i.state)))"
    " AND (?4 IS NULL OR i.created_ms >= ?4)"
    " AND (?5 IS NULL OR i.created_ms < ?5)"
    " ORDER BY i.created_ms, i.definition, i.key LIMIT ?6";

constexpr const char* sql_find_instances =
    "SELECT definition FROM instances WHERE key = ?1 AND (?2 IS NULL OR definition = ?2) ORDER BY definition";

constexpr const char* sql_instance =
    "SELECT state, data, version, fingerprint, correlation_id, created_ms, updated_ms, state_since_ms"
    " FROM instances WHERE definition = ?1 AND key = ?2";

constexpr const char* sql_history =
    "SELECT id, version, event_id, event_source, event_type, event_time, from_state, to_state, outcome,"
    " recorded_ms FROM history WHERE definition = ?1 AND key = ?2 ORDER BY id";

constexpr const char* sql_timers_of =
    "SELECT name, due_ms, generation FROM timers WHERE definition = ?1 AND key = ?2 AND due_ms IS NOT NULL"
    " ORDER BY due_ms, name";

constexpr const char* sql_parked_of =
    "SELECT id, event_id, source, type, parked_ms FROM parked WHERE definition = ?1 AND key = ?2 ORDER BY id";

// Through the saga's history (indexed by saga): each transition names the outbox rows it wrote.
constexpr const char* sql_outbox_of =
    "SELECT o.sequence, o.event_id, o.type, o.created_ms, o.published_ms FROM history AS h"
    " JOIN outbox AS o ON o.sequence BETWEEN h.outbox_first AND h.outbox_last"
    " WHERE h.definition = ?1 AND h.key = ?2 AND h.outbox_first IS NOT NULL ORDER BY o.sequence";

constexpr const char* sql_outbox =
    "SELECT sequence, event_id, type, definition, key, created_ms, published_ms FROM outbox"
    " WHERE sequence >= ?1 AND (?2 = 0 OR published_ms IS NULL) ORDER BY sequence LIMIT ?3";

constexpr const char* sql_dead_letters =
    "SELECT id, event_id, source, type, subject, reason, created_ms, count, last_ms, truncated"
    " FROM dead_letters ORDER BY id LIMIT ?1";

constexpr const char* sql_dead_letter = "SELECT payload, truncated FROM dead_letters WHERE id = ?1";

constexpr const char* sql_timers =
    "SELECT t.definition, t.key, t.name, t.due_ms, t.generation,"
    " EXISTS (SELECT 1 FROM definitions AS d WHERE d.name = t.definition) FROM timers AS t"
    " WHERE t.due_ms IS NOT NULL AND (?1 IS NULL OR t.due_ms < ?1)"
    " ORDER BY t.due_ms, t.definition, t.key, t.name LIMIT ?2";

constexpr const char* sql_definitions =
    "SELECT d.name, d.fingerprint, d.registered_ms, json_array_length(d.graph, '$.states'),"
    " (SELECT count(*) FROM instances AS i WHERE i.definition = d.name),"
    " (SELECT count(*) FROM timers AS t WHERE t.definition = d.name AND t.due_ms <= ?1)"
    " FROM definitions AS d ORDER BY d.name";

// Due timers of definitions the definitions table does not have: no sagad runs them.
constexpr const char* sql_unregistered_due =
    "SELECT t.definition, count(*) FROM timers AS t WHERE t.due_ms <= ?1"
    " AND NOT EXISTS (SELECT 1 FROM definitions AS d WHERE d.name = t.definition)"
    " GROUP BY t.definition ORDER BY t.definition";

constexpr const char* sql_graphs = "SELECT name, graph FROM definitions ORDER BY name";

// The same selection as the store's purge_finished: sagas in one of the states (a JSON array)
// since before ?2.
constexpr const char* sql_count_finished =
    "SELECT count(*), coalesce(sum((SELECT count(*) FROM history AS h"
    "   WHERE h.definition = i.definition AND h.key = i.key)), 0)"
    " FROM instances AS i WHERE i.definition = ?1 AND i.state_since_ms < ?2"
    " AND i.state IN (SELECT value FROM json_each(?3))";

// Instances whose state the stored graph of their definition does not have
// (or whose definition is not registered at all).
constexpr const char* sql_orphans =
    "SELECT i.definition, i.key, i.state, i.fingerprint FROM instances AS i"
    " WHERE NOT EXISTS (SELECT 1 FROM definitions AS d, json_each(d.graph, '$.states') AS s"
    "   WHERE d.name = i.definition AND s.value = i.state)"
    " ORDER BY i.definition, i.key LIMIT 1000";

constexpr const char* sql_graph = "SELECT graph FROM definitions WHERE name = ?1";

constexpr const char* sql_state_counts =
    "SELECT definition, state, count(*) FROM instances GROUP BY definition, state ORDER BY definition, state";

constexpr const char* sql_totals =
    "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM outbox),"
    " (SELECT count(*) FROM outbox WHERE published_ms IS NULL),"
    " (SELECT min(created_ms) FROM outbox WHERE published_ms IS NULL),"
    " (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM parked),"
    " (SELECT count(*) FROM timers WHERE due_ms IS NOT NULL), (SELECT count(*) FROM instances)";

constexpr const char* sql_per_minute =
    "SELECT (received_ms - ?1) / 60000, count(*) FROM inbox WHERE received_ms >= ?1 AND received_ms < ?2"
    " GROUP BY 1";

constexpr const char* sql_last_published =
    "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'last_published'), 0),"
    " coalesce((SELECT max(sequence) FROM outbox WHERE published_ms IS NOT NULL), 0))";

// Runs `f`, turning SQLite's exceptions into failure(database).
template <class F>
decltype(auto) reading(const std::string& path, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const failure&) {
    throw;
  } catch (const SQLite::Exception& e) {
    throw failure(database, "cannot read " + path + ": " + e.what());
  } catch (const json::exception& e) {
    throw failure(database, "malformed JSON in " + path + ": " + e.what());
  }
}

// One read transaction: every query of a command sees the same snapshot.
class snapshot {
 public:
  explicit snapshot(SQLite::Database& db) : db_(db) { db_.exec("BEGIN"); }
  ~snapshot() { db_.tryExec("COMMIT"); }
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;

 private:
  SQLite::Database& db_;
};

void bind_opt(SQLite::Statement& s, int index, const std::optional<std::string>& v) {
  if (v) {
    s.bind(index, *v);
  } else {
    s.bind(index);
  }
}

void bind_opt(SQLite::Statement& s, int index, const std::optional<std::int64_t>& v) {
  if (v) {
    s.bind(index, *v);
  } else {
    s.bind(index);
  }
}

std::int64_t i64(SQLite::Statement& s, int column) {
  return s.getColumn(column).getInt64();
}
std::string text(SQLite::Statement& s, int column) {
  return s.getColumn(column).getString();
}
json time_or_null(SQLite::Statement& s, int column) {
  if (s.isColumnNull(column)) return nullptr;
  return saga::format_time(i64(s, column));
}

json parse_or_string(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return text;
  return j;
}

}  // namespace

catalog::catalog(const std::string& path, int busy_timeout_ms) : path_(path) {
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec))
    throw failure(database, "no database at " + (path.empty() ? std::string("''") : path));
  reading(path_, [&] {
    db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READONLY, busy_timeout_ms);
    const int version = db_->execAndGet("PRAGMA user_version").getInt();
    constexpr int known = saga::sqlite::store::current_schema;
    if (version > known)
      throw failure(database, path + " has schema version " + std::to_string(version) +
                                  ", newer than this sagactl reads (" + std::to_string(known) +
                                  "): use the sagactl of the same release as sagad");
    if (version == 0) throw failure(database, path + " is not a saga database (schema version 0)");
    if (version < known)
      throw failure(database, path + " has schema version " + std::to_string(version) + ", older than " +
                                  std::to_string(known) + ": start sagad once to migrate it");
  });
}

catalog::~catalog() = default;

json catalog::list(const list_filter& f, std::int64_t now_ms) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_list);
    bind_opt(s, 1, f.type);
    bind_opt(s, 2, f.state);
    std::optional<std::int64_t> entered_before;
    if (f.stuck_for_ms) entered_before = now_ms - *f.stuck_for_ms;
    bind_opt(s, 3, entered_before);
    bind_opt(s, 4, f.since_ms);
    bind_opt(s, 5, f.until_ms);
    s.bind(6, f.limit);
    json rows = json::array();
    while (s.executeStep()) {
      rows.push_back({{"type", text(s, 0)},
                      {"id", text(s, 1)},
                      {"state", text(s, 2)},
                      {"version", i64(s, 3)},
                      {"age", now_ms - i64(s, 4)},
                      {"in_state", now_ms - i64(s, 5)},
                      {"timers", i64(s, 6)},
                      {"parked", i64(s, 7)}});
    }
    return rows;
  });
}

json catalog::show(const std::string& id, const std::string& type, std::int64_t now_ms) {
  return reading(path_, [&] {
    snapshot snap(*db_);
    std::vector<std::string> found;
    {
      SQLite::Statement s(*db_, sql_find_instances);
      s.bind(1, id);
      bind_opt(s, 2, type.empty() ? std::nullopt : std::optional<std::string>(type));
      while (s.executeStep()) found.push_back(text(s, 0));
    }
    if (found.empty())
      throw failure(not_found,
                    "no saga with id '" + id + "'" + (type.empty() ? "" : " of type '" + type + "'"));
    if (found.size() > 1) {
      std::string names;
      for (const auto& n : found) names += (names.empty() ? "" : ", ") + n;
      throw failure(usage, "several definitions have a saga '" + id + "' (" + names + "): pass --type");
    }
    const std::string& def = found.front();

    json out;
    {
      SQLite::Statement s(*db_, sql_instance);
      s.bind(1, def);
      s.bind(2, id);
      s.executeStep();
      out = {{"type", def},
             {"id", id},
             {"state", text(s, 0)},
             {"data", parse_or_string(text(s, 1))},
             {"version", i64(s, 2)},
             {"fingerprint", text(s, 3)},
             {"correlation_id", text(s, 4)},
             {"created", saga::format_time(i64(s, 5))},
             {"updated", saga::format_time(i64(s, 6))},
             {"state_since", saga::format_time(i64(s, 7))},
             {"age", now_ms - i64(s, 5)},
             {"in_state", now_ms - i64(s, 7)}};
    }
    {
      // The fingerprint the registered definition has now, to show a stale one.
      SQLite::Statement s(*db_, "SELECT fingerprint FROM definitions WHERE name = ?1");
      s.bind(1, def);
      out["definition_fingerprint"] = s.executeStep() ? json(text(s, 0)) : json(nullptr);
    }
    json history = json::array();
    {
      SQLite::Statement s(*db_, sql_history);
      s.bind(1, def);
      s.bind(2, id);
      while (s.executeStep()) {
        history.push_back({{"time", saga::format_time(i64(s, 9))},
                           {"event_time", text(s, 5)},
                           {"event_type", text(s, 4)},
                           {"event_id", text(s, 2)},
                           {"event_source", text(s, 3)},
                           {"from", text(s, 6)},
                           {"to", text(s, 7)},
                           {"outcome", text(s, 8)},
                           {"version", i64(s, 1)}});
      }
    }
    out["history"] = std::move(history);
    json timers = json::array();
    {
      SQLite::Statement s(*db_, sql_timers_of);
      s.bind(1, def);
      s.bind(2, id);
      while (s.executeStep()) {
        timers.push_back({{"name", text(s, 0)},
                          {"due", saga::format_time(i64(s, 1))},
                          {"due_in", i64(s, 1) - now_ms},
                          {"generation", i64(s, 2)}});
      }
    }
    out["timers"] = std::move(timers);
    json parked = json::array();
    {
      SQLite::Statement s(*db_, sql_parked_of);
      s.bind(1, def);
      s.bind(2, id);
      while (s.executeStep()) {
        parked.push_back({{"id", i64(s, 0)},
                          {"event_id", text(s, 1)},
                          {"source", text(s, 2)},
                          {"type", text(s, 3)},
                          {"parked", saga::format_time(i64(s, 4))}});
      }
    }
    out["parked"] = std::move(parked);
    json emitted = json::array();
    {
      SQLite::Statement s(*db_, sql_outbox_of);
      s.bind(1, def);
      s.bind(2, id);
      while (s.executeStep()) {
        emitted.push_back({{"sequence", i64(s, 0)},
                           {"event_id", text(s, 1)},
                           {"type", text(s, 2)},
                           {"created", saga::format_time(i64(s, 3))},
                           {"published", !s.isColumnNull(4)}});
      }
    }
    out["outbox"] = std::move(emitted);
    return out;
  });
}

json catalog::stats(std::int64_t now_ms) {
  return reading(path_, [&] {
    snapshot snap(*db_);
    json out;
    json per_definition = json::object();
    {
      SQLite::Statement s(*db_, sql_state_counts);
      while (s.executeStep()) per_definition[text(s, 0)][text(s, 1)] = i64(s, 2);
    }
    out["instances"] = std::move(per_definition);
    {
      SQLite::Statement s(*db_, sql_totals);
      s.executeStep();
      out["sagas"] = i64(s, 7);
      out["inbox"] = i64(s, 0);
      out["outbox"] = i64(s, 1);
      out["unpublished"] = i64(s, 2);
      out["oldest_unpublished_age"] = s.isColumnNull(3) ? json(nullptr) : json(now_ms - i64(s, 3));
      out["dead_letters"] = i64(s, 4);
      out["parked"] = i64(s, 5);
      out["armed_timers"] = i64(s, 6);
    }
    {
      // Minute buckets of the last hour, oldest first.
      const std::int64_t start = now_ms - 3'600'000;
      std::vector<std::int64_t> minutes(60, 0);
      SQLite::Statement s(*db_, sql_per_minute);
      s.bind(1, start);
      s.bind(2, now_ms + 1);
      std::int64_t total = 0;
      while (s.executeStep()) {
        const auto m = std::clamp<std::int64_t>(i64(s, 0), 0, 59);
        minutes[static_cast<std::size_t>(m)] += i64(s, 1);
        total += i64(s, 1);
      }
      out["handled_last_hour"] = total;
      out["handled_per_minute"] = minutes;
    }
    return out;
  });
}

json catalog::outbox(bool pending_only, std::int64_t from_sequence, std::int64_t limit) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_outbox);
    s.bind(1, from_sequence);
    s.bind(2, pending_only ? 1 : 0);
    s.bind(3, limit);
    json rows = json::array();
    while (s.executeStep()) {
      rows.push_back({{"sequence", i64(s, 0)},
                      {"event_id", text(s, 1)},
                      {"type", text(s, 2)},
                      {"saga_type", text(s, 3)},
                      {"saga_id", text(s, 4)},
                      {"created", saga::format_time(i64(s, 5))},
                      {"published", time_or_null(s, 6)}});
    }
    return rows;
  });
}

json catalog::dead_letters(std::int64_t limit) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_dead_letters);
    s.bind(1, limit);
    json rows = json::array();
    while (s.executeStep()) {
      rows.push_back({{"id", i64(s, 0)},
                      {"event_id", text(s, 1)},
                      {"source", text(s, 2)},
                      {"type", text(s, 3)},
                      {"subject", text(s, 4)},
                      {"reason", text(s, 5)},
                      {"created", saga::format_time(i64(s, 6))},
                      {"count", i64(s, 7)},
                      {"last", saga::format_time(i64(s, 8))},
                      {"truncated", i64(s, 9) != 0}});
    }
    return rows;
  });
}

json catalog::timers(std::optional<std::int64_t> due_before_ms, std::int64_t limit) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_timers);
    bind_opt(s, 1, due_before_ms);
    s.bind(2, limit);
    json rows = json::array();
    while (s.executeStep()) {
      rows.push_back({{"type", text(s, 0)},
                      {"id", text(s, 1)},
                      {"name", text(s, 2)},
                      {"due", saga::format_time(i64(s, 3))},
                      {"generation", i64(s, 4)},
                      {"registered", i64(s, 5) != 0}});
    }
    return rows;
  });
}

json catalog::definitions(std::int64_t now_ms) {
  return reading(path_, [&] {
    snapshot snap(*db_);
    json defs = json::array();
    {
      SQLite::Statement s(*db_, sql_definitions);
      s.bind(1, now_ms);
      while (s.executeStep()) {
        defs.push_back({{"name", text(s, 0)},
                        {"fingerprint", text(s, 1)},
                        {"registered", saga::format_time(i64(s, 2))},
                        {"states", i64(s, 3)},
                        {"instances", i64(s, 4)},
                        {"due_timers", i64(s, 5)}});
      }
    }
    json unregistered = json::array();
    {
      SQLite::Statement s(*db_, sql_unregistered_due);
      s.bind(1, now_ms);
      while (s.executeStep()) unregistered.push_back({{"name", text(s, 0)}, {"due_timers", i64(s, 1)}});
    }
    json orphans = json::array();
    {
      SQLite::Statement s(*db_, sql_orphans);
      while (s.executeStep()) {
        orphans.push_back(
            {{"type", text(s, 0)}, {"id", text(s, 1)}, {"state", text(s, 2)}, {"fingerprint", text(s, 3)}});
      }
    }
    return json{{"definitions", std::move(defs)},
                {"unregistered_due_timers", std::move(unregistered)},
                {"orphaned", std::move(orphans)}};
  });
}

saga::graph catalog::graph_of(const std::string& name) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_graph);
    s.bind(1, name);
    if (!s.executeStep()) throw failure(not_found, "no definition '" + name + "' in " + path_);
    return saga::graph_from_json(json::parse(text(s, 0)));
  });
}

catalog::stored_dead_letter catalog::dead_letter(std::int64_t id) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_dead_letter);
    s.bind(1, id);
    if (!s.executeStep()) throw failure(not_found, "no dead letter with id " + std::to_string(id));
    return stored_dead_letter{text(s, 0), i64(s, 1) != 0};
  });
}

std::vector<catalog::finished_states> catalog::purgeable(const std::string& definition) {
  return reading(path_, [&] {
    std::vector<finished_states> out;
    SQLite::Statement s(*db_, sql_graphs);
    while (s.executeStep()) {
      if (!definition.empty() && text(s, 0) != definition) continue;
      const saga::graph g = saga::graph_from_json(json::parse(text(s, 1)));
      finished_states f{text(s, 0), {}};
      for (const auto& t : g.terminal)
        if (t != g.attention_state) f.states.push_back(t);
      out.push_back(std::move(f));
    }
    if (!definition.empty() && out.empty())
      throw failure(not_found, "no definition '" + definition + "' in " + path_);
    return out;
  });
}

catalog::purge_count catalog::count_finished(const finished_states& f, std::int64_t before_ms) {
  return reading(path_, [&] {
    SQLite::Statement s(*db_, sql_count_finished);
    s.bind(1, f.definition);
    s.bind(2, before_ms);
    s.bind(3, json(f.states).dump());
    s.executeStep();
    return purge_count{i64(s, 0), i64(s, 1)};
  });
}

std::int64_t catalog::last_published() {
  return reading(path_, [&] { return db_->execAndGet(sql_last_published).getInt64(); });
}

catalog::backup_result catalog::backup_to(const std::string& file, int pages_per_step, int pause_ms) {
  // O_EXCL: never an existing file, never through a symlink; 0600: a copy of every saga's
  // data is readable by its owner only, whatever the umask. SQLite then opens the empty file
  // as a new database (its journal gets the same mode).
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) throw failure(usage, file + " already exists: choose a new file");
    throw failure(usage, "cannot create " + file + ": " + std::strerror(errno));
  }
  ::close(fd);
  auto discard = [&] {
    std::error_code ec;
    std::filesystem::remove(file, ec);
    std::filesystem::remove(file + "-journal", ec);
  };
  try {
    backup_result r;
    SQLite::Database dest(file, SQLite::OPEN_READWRITE);
    SQLite::Backup backup(dest, *db_);
    int step = std::max(1, pages_per_step);
    int previous_remaining = -1;
    for (int busy = 0;;) {
      const int rc = backup.executeStep(step);
      ++r.steps;
      if (rc == SQLITE_DONE) break;
      if (rc == SQLITE_OK) {
        busy = 0;
        const int remaining = backup.getRemainingPageCount();
        // No progress: the source changed since the last step and SQLite started over.
        if (previous_remaining >= 0 && remaining >= previous_remaining) {
          ++r.restarts;
          step = step > std::numeric_limits<int>::max() / 2 ? -1 : step * 2;
        }
        previous_remaining = remaining;
      } else if (++busy > 200) {  // SQLITE_BUSY / SQLITE_LOCKED
        throw failure(database, "backup to " + file + ": the database stayed locked");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    r.pages = backup.getTotalPageCount();
    return r;
  } catch (const failure&) {
    discard();
    throw;
  } catch (const SQLite::Exception& e) {
    discard();
    throw failure(database, "backup to " + file + " failed: " + e.what());
  }
}

}  // namespace sagactl
