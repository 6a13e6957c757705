// sagactl purge: removes finished sagas — in a terminal state of their definition since before
// now minus --older-than — with their history, timers and parked events, through the store
// port's purge_finished on a read-write connection, in bounded transactions so that sagad
// (which may be running) waits at most one batch for the write lock. Inbox rows (the dedup
// window) and outbox rows (the published log) stay: sagad's retention prunes those.
//
// A saga in its definition's attention state (needs_attention) is terminal in the table but
// waits for an operator's resolve: it is never purged.
//
// SQLite only: on a PostgreSQL --db it refuses (exit 2), --dry-run included; sagad's
// --retention-finished purges there through the store.

#include <sqlite3.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"
#include "saga/duration.hpp"
#include "saga/sqlite/store.hpp"

namespace sagactl::commands {

namespace {

struct purge_options {
  std::string older_than, definition;
  bool dry_run = false;
  std::int64_t batch = 1000;
};

// A short gap between two write transactions, so that sagad's writer (polling its busy
// handler) gets the lock instead of finding the next batch already holding it.
constexpr auto pause_between_batches = std::chrono::milliseconds(20);
constexpr auto busy_timeout = std::chrono::seconds(10);

// SQLite's own busy handler backs off to sleeps of 100 ms: against a writer that commits back
// to back (sagad under load) it almost never finds the write lock free, and the purge gives up
// after the timeout. Polling every millisecond finds the gaps between sagad's transactions.
extern "C" int poll_write_lock(void*, int tries) {
  constexpr auto poll = std::chrono::milliseconds(1);
  if (tries * poll >= busy_timeout) return 0;  // SQLITE_BUSY for the caller
  std::this_thread::sleep_for(poll);
  return 1;
}

// Purges one definition's finished sagas batch by batch; progress on stderr.
std::int64_t purge_definition(saga::sqlite::store& st, const catalog::finished_states& f,
                              std::int64_t before_ms, std::size_t batch, std::int64_t& transactions) {
  std::int64_t total = 0;
  for (;;) {
    st.begin();
    std::int64_t n = 0;
    try {
      n = st.purge_finished(f.definition, f.states, before_ms, batch);
      st.commit();
    } catch (...) {
      st.rollback();
      throw;
    }
    ++transactions;
    if (n == 0) break;
    total += n;
    std::cerr << "purge: " << f.definition << ": " << total << " sagas removed\n";
    std::this_thread::sleep_for(pause_between_batches);
  }
  return total;
}

}  // namespace

run_fn purge(CLI::App& cmd) {
  auto o = std::make_shared<purge_options>();
  cmd.add_option("--older-than", o->older_than, "finished (in a terminal state) at least this long ago")
      ->required()
      ->check(duration_check());
  cmd.add_option("--definition", o->definition, "only this definition's sagas");
  cmd.add_flag("--dry-run", o->dry_run, "count what would go, remove nothing");
  cmd.add_option("--batch", o->batch, "sagas removed per transaction")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}))
      ->capture_default_str();
  return [o](const globals& g) {
    using nlohmann::json;
    if (saga::server::is_postgres(g.db))
      throw failure(usage,
                    "purge: not available on PostgreSQL (it writes through a SQLite connection): "
                    "sagad --retention-finished removes finished sagas there");
    const std::int64_t before_ms = wall_clock_ms() - *saga::parse_duration(o->older_than);
    std::vector<catalog::finished_states> targets;
    json per_definition = json::object();
    std::int64_t total = 0, history = 0, transactions = 0;
    {
      catalog c(g.db, g.pg_schema);  // refuses a missing file or another schema before anything is written
      targets = c.purgeable(o->definition);
      if (o->dry_run) {
        for (const auto& f : targets) {
          const auto n = c.count_finished(f, before_ms);
          per_definition[f.definition] = n.sagas;
          total += n.sagas;
          history += n.history;
        }
      }
    }
    if (!o->dry_run) {
      saga::sqlite::options so;
      so.path = g.db;
      so.busy_timeout_ms = static_cast<int>(std::chrono::milliseconds(busy_timeout).count());
      so.background_checkpoint = false;
      try {
        saga::sqlite::store st(so);
        sqlite3_busy_handler(st.database().getHandle(), poll_write_lock, nullptr);
        for (const auto& f : targets) {
          const auto n = purge_definition(st, f, before_ms, static_cast<std::size_t>(o->batch), transactions);
          per_definition[f.definition] = n;
          total += n;
        }
      } catch (const saga::store_error& e) {
        throw failure(database, "purge of " + g.db + " stopped (" + std::to_string(total) +
                                    " sagas removed before): " + e.what());
      }
    }
    const std::string before = saga::format_time(before_ms);
    if (g.as_json) {
      json out = {{"purged", o->dry_run ? 0 : total},
                  {"dry_run", o->dry_run},
                  {"before", before},
                  {"definitions", per_definition}};
      if (o->dry_run) {
        out["would_purge"] = total;
        out["history"] = history;
      } else {
        out["transactions"] = transactions;
      }
      print_json(out);
    } else {
      std::cout << (o->dry_run ? "would purge " : "purged ") << total << " finished "
                << (total == 1 ? "saga" : "sagas");
      if (o->dry_run) std::cout << " (" << history << " history rows)";
      std::cout << " in a terminal state since before " << before << '\n';
      std::vector<std::vector<std::string>> t;
      for (const auto& [name, n] : per_definition.items()) t.push_back({name, cell(n)});
      if (!t.empty()) print_table(std::cout, {"definition", o->dry_run ? "would purge" : "purged"}, t);
    }
    return 0;
  };
}

}  // namespace sagactl::commands
