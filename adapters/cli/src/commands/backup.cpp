// sagactl backup: a consistent copy of the live database (SQLite's online backup), into a new
// file readable by its owner only, copied in steps so that sagad's WAL can be reset meanwhile.
// SQLite only: on a PostgreSQL --db it refuses (exit 2), pg_dump is PostgreSQL's way.

#include <SQLiteCpp/Backup.h>
#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <thread>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

// 1024 pages (4 MiB at SQLite's default page size) per step, then a pause in which no read
// snapshot is held: sagad's checkpoint can reset the WAL between steps.
constexpr int default_pages_per_step = 1024;
constexpr int pause_between_steps_ms = 10;
constexpr int busy_timeout_ms = 5000;

struct backup_result {
  int pages = 0;
  int steps = 0;
  int restarts = 0;
};

// SQLite's online backup of the whole database `db` into `file`, which this call creates
// (O_CREAT | O_EXCL, mode 0600: an existing file or symlink is refused with failure(usage)).
// Maintenance, not a read: it copies pages, so it uses a connection of its own rather than the
// read port. Copies `pages_per_step` pages per step and sleeps `pause_ms` between steps, so that
// no read snapshot is held for the whole copy and the writer's WAL can be reset meanwhile. A
// write between steps makes SQLite start the copy over; each such restart doubles the step, so
// that under a steady write load the copy still ends (at worst as one step under one snapshot).
backup_result backup_to(const std::string& db, const std::string& file, int pages_per_step, int pause_ms) {
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
    SQLite::Database source(db, SQLite::OPEN_READONLY, busy_timeout_ms);
    SQLite::Backup backup(dest, source);
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

}  // namespace

run_fn backup(CLI::App& cmd) {
  struct options {
    std::string file;
    int pages_per_step = default_pages_per_step;
  };
  auto o = std::make_shared<options>();
  cmd.add_option("file", o->file, "the new file (created with mode 0600; must not exist)")->required();
  cmd.add_option("--pages-per-step", o->pages_per_step, "pages copied under one read snapshot")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  return [o](const globals& g) {
    if (saga::server::is_postgres(g.db))
      throw failure(usage,
                    "backup: not available on PostgreSQL (it copies a SQLite file's pages): "
                    "back up the schema with pg_dump --schema " +
                        g.pg_schema);
    {
      catalog c(g.db, g.pg_schema);  // refuses a missing file or another schema before anything is created
    }
    const auto r = backup_to(g.db, o->file, o->pages_per_step, pause_between_steps_ms);
    if (g.as_json) {
      print_json({{"file", o->file}, {"pages", r.pages}, {"steps", r.steps}, {"restarts", r.restarts}});
    } else {
      std::cout << "backed up " << g.db << " to " << o->file << " (" << r.pages << " pages in " << r.steps
                << (r.steps == 1 ? " step" : " steps");
      if (r.restarts > 0) std::cout << ", restarted " << r.restarts << " times by writes";
      std::cout << ")\n";
    }
    return 0;
  };
}

}  // namespace sagactl::commands
