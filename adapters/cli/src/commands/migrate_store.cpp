// sagactl migrate-store: moves a SQLite database (saga.db) into a PostgreSQL schema, so that
// sagad can go on with --db postgresql://… (docs/postgres.md, "Moving a SQLite database").
//
// The SQLite file is locked as sagad locks it (flock on the file): a running sagad makes the
// command refuse, and no sagad can start on the file while it is copied. The file is migrated to
// this build's schema first (as sagad would on start), then read in one read transaction; the
// PostgreSQL schema is filled in one transaction by saga::postgres::bulk_load (COPY, its tables
// locked), checked table by table against the SQLite counts and committed only when they agree.
// A schema that holds anything is refused unless --replace says to empty it.

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/postgres/bulk_load.hpp"
#include "saga/sqlite/store.hpp"

namespace sagactl::commands {

namespace {

constexpr std::int64_t progress_every_rows = 100'000;
constexpr std::int64_t default_lock_timeout_ms = 5000;

// How a SQLite value becomes a PostgreSQL field.
enum class kind {
  text,          // TEXT -> text
  optional_int,  // INTEGER or NULL -> bigint
  integer,       // INTEGER -> bigint
  boolean,       // INTEGER 0/1 -> boolean
  bytes,         // TEXT or BLOB -> bytea, byte for byte
  json,          // TEXT (JSON) or NULL -> jsonb
};

struct column {
  const char* name;  // PostgreSQL's column, and SQLite's of the same name unless `from` says
  kind k;
  const char* from = nullptr;  // the SQLite column it is read from, when named otherwise
};

// One table: its columns as PostgreSQL's schema 3 has them, read from the SQLite table of the same
// name (schema 10) in the order of `order_by`. What SQLite has and PostgreSQL has not is left
// behind on purpose (see `left_behind`).
struct table_map {
  const char* table;
  const char* order_by;
  std::vector<column> columns;
  const char* source = nullptr;  // the SQLite table or view read, when not `table`
};

// The outbox in one place: its rows, with their sequences and published marks, so that every
// subscriber's position (a sequence it keeps itself) stays valid; meta's outbox_sequence and
// last_published are set from the same source in outbox_counters() below. A change of the
// PostgreSQL outbox's shape is made here and there. Schema 3's row id (what history rows name,
// docs/postgres.md) is the sequence for every row that comes across, as PostgreSQL's own
// migration to schema 3 does; its identity continues after them, and `xid` (the writer's
// transaction) is this load's: the rows are numbered already, so the relay never looks at it.
// The rows come from outbox_published, which gives each its published_ms from SQLite's
// publications (schema 12).
const table_map outbox_map = {"outbox",
                              "sequence",
                              {{"id", kind::integer, "sequence"},
                               {"sequence", kind::integer},
                               {"event_id", kind::text},
                               {"type", kind::text},
                               {"definition", kind::text},
                               {"key", kind::text},
                               {"payload", kind::text},
                               {"created_ms", kind::integer},
                               {"published_ms", kind::optional_int}},
                              "outbox_published"};

// clang-format off
const std::vector<table_map>& mappings() {
  static const std::vector<table_map> all = {
      {"definitions", "name, version",
       {{"name", kind::text}, {"version", kind::integer}, {"fingerprint", kind::text}, {"graph", kind::text},
        {"registered_ms", kind::integer}}},
      // last_history (SQLite's history chain, schema 7) stays behind: PostgreSQL finds a saga's
      // history through history_by_saga. timers: the same JSON, as jsonb.
      {"instances", "definition, key",
       {{"definition", kind::text}, {"key", kind::text}, {"state", kind::text}, {"data", kind::text},
        {"version", kind::integer}, {"fingerprint", kind::text}, {"correlation_id", kind::text},
        {"created_ms", kind::integer}, {"updated_ms", kind::integer}, {"state_since_ms", kind::integer},
        {"finished_ms", kind::optional_int}, {"timers", kind::json}, {"next_due_ms", kind::optional_int},
        {"definition_version", kind::integer}}},
      // previous (the chain) stays behind; ids are kept (the identity continues after them).
      {"history", "id",
       {{"id", kind::integer}, {"definition", kind::text}, {"key", kind::text}, {"version", kind::integer},
        {"event_id", kind::text}, {"event_source", kind::text}, {"event_type", kind::text},
        {"event_time", kind::text}, {"event_data", kind::text}, {"from_state", kind::text},
        {"to_state", kind::text}, {"outcome", kind::text}, {"recorded_ms", kind::integer},
        {"outbox_first", kind::optional_int}, {"outbox_last", kind::optional_int}, {"sender", kind::text},
        {"traceparent", kind::text}, {"tracestate", kind::text}, {"extensions", kind::text},
        {"definition_version", kind::integer}}},
      {"inbox", "source, event_id",
       {{"source", kind::text}, {"event_id", kind::text}, {"definition", kind::text}, {"key", kind::text},
        {"ack", kind::text}, {"received_ms", kind::integer}}},
      outbox_map,
      // payload: bytea (an input that could not be parsed is kept as received); truncated: boolean.
      {"dead_letters", "id",
       {{"id", kind::integer}, {"event_id", kind::text}, {"source", kind::text}, {"type", kind::text},
        {"subject", kind::text}, {"reason", kind::text}, {"payload", kind::bytes}, {"created_ms", kind::integer},
        {"count", kind::integer}, {"last_ms", kind::integer}, {"truncated", kind::boolean},
        {"sender", kind::text}}},
      {"parked", "id",
       {{"id", kind::integer}, {"definition", kind::text}, {"key", kind::text}, {"event_id", kind::text},
        {"source", kind::text}, {"type", kind::text}, {"payload", kind::text}, {"parked_ms", kind::integer},
        {"sender", kind::text}}},
  };
  return all;
}
// clang-format on

// What SQLite holds that is not copied, and why (also in docs/postgres.md):
//   sender_rows, meta's dead_letter_rows and parked_rows: counts kept by SQLite's triggers; the
//     PostgreSQL store counts the rows themselves.
//   instances.last_history, history.previous: SQLite's history chain (PostgreSQL has an index).
//   publications: when SQLite's published rows were published; each outbox row carries its own
//     published_ms across (outbox_map).
//   sqlite_sequence: the AUTOINCREMENT counters become the identities' next values and meta's
//     outbox_sequence (continue_identity, outbox_counters).
// Tables with an identity column, continued after the SQLite counter.
constexpr const char* identity_tables[] = {"history", "outbox", "dead_letters", "parked"};

// The flock sagad holds on its database file for its whole life (saga::server::database_lock),
// taken here for the whole copy: a running sagad makes it fail, and none can start meanwhile.
class file_lock {
 public:
  explicit file_lock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw failure(database, "cannot open " + path + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd_);
      if (err == EWOULDBLOCK)
        throw failure(database, "a sagad is running on " + path +
                                    " (it holds the database file's lock): stop it before migrating");
      throw failure(database, "cannot lock " + path + ": " + std::strerror(err));
    }
  }
  ~file_lock() { ::close(fd_); }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;

 private:
  int fd_ = -1;
};

std::int64_t scalar(SQLite::Database& db, const std::string& sql) {
  SQLite::Statement s(db, sql);
  return s.executeStep() && !s.getColumn(0).isNull() ? s.getColumn(0).getInt64() : 0;
}

// Brings the file to this build's schema as sagad would on start (the store migrates when it
// opens); refuses a file that is not a saga database or is newer than this build.
void bring_to_current_schema(const std::string& path) {
  int version = 0;
  {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    version = static_cast<int>(scalar(db, "PRAGMA user_version"));
  }
  constexpr int current = saga::sqlite::store::current_schema;
  if (version == 0) throw failure(database, path + " is not a saga database (schema version 0)");
  if (version > current)
    throw failure(database, path + " has schema version " + std::to_string(version) +
                                ", newer than this sagactl knows (" + std::to_string(current) +
                                "): use the sagactl of the same release as sagad");
  if (version == current) return;
  saga::sqlite::options o;
  o.path = path;
  o.background_checkpoint = false;
  saga::sqlite::store migrated(o);
  std::cerr << "migrate-store: " << path << ": schema " << version << " migrated to " << current << "\n";
}

struct outbox_counters {
  std::int64_t sequence = 0;        // the last sequence assigned (never given out again)
  std::int64_t last_published = 0;  // survives the pruning of the rows it came from
};

outbox_counters read_outbox_counters(SQLite::Database& db) {
  outbox_counters c;
  c.sequence = std::max(scalar(db, "SELECT max(sequence) FROM outbox"),
                        scalar(db, "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"));
  c.last_published = scalar(db, "SELECT value FROM meta WHERE key = 'last_published'");
  return c;
}

void write_outbox_counters(saga::postgres::bulk_load& load, const outbox_counters& c) {
  load.set_meta("outbox_sequence", c.sequence);
  load.set_meta("last_published", c.last_published);
}

std::int64_t copy_table(SQLite::Database& db, saga::postgres::bulk_load& load, const table_map& m,
                        std::int64_t total) {
  std::vector<std::string> names;
  std::string select;
  for (const auto& c : m.columns) {
    names.emplace_back(c.name);
    select += (select.empty() ? "\"" : ", \"") + std::string(c.from ? c.from : c.name) + "\"";
  }
  SQLite::Statement rows(
      db, "SELECT " + select + " FROM " + (m.source ? m.source : m.table) + " ORDER BY " + m.order_by);
  auto copy = load.copy(m.table, names);
  std::int64_t n = 0;
  while (rows.executeStep()) {
    for (int i = 0; i < static_cast<int>(m.columns.size()); ++i) {
      const auto v = rows.getColumn(i);
      const kind k = m.columns[static_cast<std::size_t>(i)].k;
      if (v.isNull()) {
        if (k != kind::optional_int && k != kind::json)
          throw failure(database, std::string(m.table) + "." + m.columns[static_cast<std::size_t>(i)].name +
                                      " is NULL in a row of the SQLite file");
        copy.null();
      } else if (k == kind::text || k == kind::bytes) {
        copy.text(
            std::string_view(static_cast<const char*>(v.getBlob()), static_cast<std::size_t>(v.getBytes())));
      } else if (k == kind::json) {
        copy.jsonb(
            std::string_view(static_cast<const char*>(v.getBlob()), static_cast<std::size_t>(v.getBytes())));
      } else if (k == kind::boolean) {
        copy.boolean(v.getInt64() != 0);
      } else {
        copy.integer(v.getInt64());
      }
    }
    copy.end_row();
    if (++n % progress_every_rows == 0)
      std::cerr << "migrate-store: " << m.table << ": " << n << " of " << total << " rows\n";
  }
  return copy.finish();
}

struct summary {
  std::vector<std::pair<std::string, std::int64_t>> tables;
  outbox_counters outbox;
  double seconds = 0;
};

summary migrate(const std::string& from, const saga::postgres::options& to, bool replace,
                std::int64_t lock_timeout_ms, const std::string& to_name) {
  const auto started = std::chrono::steady_clock::now();
  SQLite::Database db(from, SQLite::OPEN_READONLY);
  SQLite::Statement(db, "BEGIN").exec();  // one snapshot for every table (read transaction)
  std::map<std::string, std::int64_t> source_rows;
  for (const auto& m : mappings())
    source_rows[m.table] = scalar(db, std::string("SELECT count(*) FROM ") + m.table);

  saga::postgres::bulk_load load(to, lock_timeout_ms);
  if (!load.empty()) {
    if (!replace) {
      std::string held;
      for (const auto& t : saga::postgres::bulk_load::tables())
        if (const auto n = load.count(t); n > 0)
          held += (held.empty() ? "" : ", ") + t + " " + std::to_string(n);
      throw failure(usage, "schema \"" + to.schema + "\" of " + to_name + " is not empty (" +
                               (held.empty() ? std::string("counters set") : held + " rows") +
                               "): name a new schema with --pg-schema, or empty this one with --replace");
    }
    std::cerr << "migrate-store: --replace: emptying schema \"" << to.schema << "\"\n";
    load.clear();
  }

  summary s;
  for (const auto& m : mappings()) {
    const auto t0 = std::chrono::steady_clock::now();
    std::int64_t copied = 0;
    try {
      copied = copy_table(db, load, m, source_rows[m.table]);
    } catch (const SQLite::Exception& e) {
      throw failure(database, std::string("cannot read table ") + m.table + " of " + from + ": " + e.what() +
                                  "; nothing was committed");
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f s", secs);
    std::cerr << "migrate-store: " << m.table << ": " << copied << " rows (" << took << ")\n";
  }
  for (const char* t : identity_tables)
    load.continue_identity(
        t, scalar(db, std::string("SELECT seq FROM sqlite_sequence WHERE name = '") + t + "'"));
  s.outbox = read_outbox_counters(db);
  write_outbox_counters(load, s.outbox);

  // Every table as PostgreSQL now has it, against the SQLite count, before anything is committed.
  for (const auto& m : mappings()) {
    const auto n = load.count(m.table);
    if (n != source_rows[m.table])
      throw failure(database, std::string("verification failed: table ") + m.table + " has " +
                                  std::to_string(n) + " rows in PostgreSQL and " +
                                  std::to_string(source_rows[m.table]) + " in " + from +
                                  "; nothing was committed");
    s.tables.emplace_back(m.table, n);
  }
  load.commit();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return s;
}

}  // namespace

run_fn migrate_store(CLI::App& cmd) {
  struct options {
    std::string from, to;
    bool replace = false;
    std::int64_t lock_timeout_ms = default_lock_timeout_ms;
  };
  auto o = std::make_shared<options>();
  cmd.footer(
      "Moves every saga, its history, timers, inbox, outbox (sequences and published marks kept, so\n"
      "subscribers' positions stay valid), parked events, dead letters and definitions (all\n"
      "versions) from a SQLite file into a PostgreSQL schema (--pg-schema, default saga), in one\n"
      "transaction, then checks each table's row count. Stop sagad first: the file's lock is taken\n"
      "(a running sagad makes this refuse, exit 3). A schema holding anything is refused (exit 2)\n"
      "unless --replace. Then start sagad with --db postgresql://... --pg-schema NAME.\n"
      "Example: sagactl migrate-store --from /var/lib/saga/saga.db --to postgresql://saga@db/orders");
  cmd.add_option("--from", o->from, "the SQLite database file sagad used (--db)")->required();
  cmd.add_option("--to", o->to, "the PostgreSQL database: postgresql://user@host/db (password in ~/.pgpass)")
      ->required();
  cmd.add_flag("--replace", o->replace,
               "empty a schema that already holds sagas before copying (only with no sagad using it)");
  cmd.add_option("--lock-timeout", o->lock_timeout_ms,
                 "milliseconds to wait for the schema's tables (a sagad using them makes this fail)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{INT32_MAX}))
      ->capture_default_str();
  return [o](const globals& g) {
    if (!saga::server::is_postgres(o->to))
      throw failure(usage, "migrate-store: --to must be a PostgreSQL URI (postgresql://…), not " + o->to);
    const std::string to_name = saga::server::describe_db(o->to);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o->from, ec)) throw failure(database, "no database at " + o->from);
    file_lock lock(o->from);
    summary s;
    try {
      bring_to_current_schema(o->from);
      saga::postgres::options to;
      to.conninfo = o->to;
      to.schema = g.pg_schema;
      s = migrate(o->from, to, o->replace, o->lock_timeout_ms, to_name);
    } catch (const SQLite::Exception& e) {
      throw failure(database, "cannot read " + o->from + ": " + e.what() + "; nothing was committed");
    } catch (const saga::store_error& e) {
      throw failure(database, "cannot migrate into " + to_name + ": " + without_password(e.what(), o->to) +
                                  "; nothing was committed");
    } catch (const std::invalid_argument& e) {
      throw failure(usage, to_name + ": " + without_password(e.what(), o->to));
    }
    if (g.as_json) {
      nlohmann::json tables = nlohmann::json::object();
      for (const auto& [t, n] : s.tables) tables[t] = n;
      print_json({{"from", o->from},
                  {"to", to_name},
                  {"schema", g.pg_schema},
                  {"tables", tables},
                  {"outbox_sequence", s.outbox.sequence},
                  {"last_published", s.outbox.last_published},
                  {"seconds", s.seconds}});
      return 0;
    }
    char took[32];
    std::snprintf(took, sizeof took, "%.1f s", s.seconds);
    std::cout << "migrated " << o->from << " into " << to_name << ", schema \"" << g.pg_schema << "\" ("
              << took << "), every table's rows counted on both sides:\n";
    for (const auto& [t, n] : s.tables) {
      std::string name = t;
      name.resize(14, ' ');
      std::cout << "  " << name << n << "\n";
    }
    std::cout << "the outbox goes on after sequence " << s.outbox.sequence << " (published up to "
              << s.outbox.last_published << ")\n"
              << "next: sagad --db '" << to_name << "' --pg-schema " << g.pg_schema << "\n";
    return 0;
  };
}

}  // namespace sagactl::commands
