// sagactl backup: a consistent copy of the live database (SQLite's online backup), into a new
// file readable by its owner only, copied in steps so that sagad's WAL can be reset meanwhile.

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

// 1024 pages (4 MiB at SQLite's default page size) per step, then a pause in which no read
// snapshot is held: sagad's checkpoint can reset the WAL between steps.
constexpr int default_pages_per_step = 1024;
constexpr int pause_between_steps_ms = 10;

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
    catalog c(g.db);
    const auto r = c.backup_to(o->file, o->pages_per_step, pause_between_steps_ms);
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
