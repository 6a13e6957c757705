// sagactl timers: armed timers, soonest first; a timer whose definition is not registered in
// the database is marked (no sagad fires it).

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"

namespace sagactl::commands {

namespace {

struct timers_options {
  std::string due_before;
  std::int64_t limit = 1000;
};

void print_timers(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({cell(r["due"]), cell(r["type"]), cell(r["id"]), cell(r["name"]), cell(r["generation"]),
                 r["registered"].get<bool>() ? "" : "definition not registered"});
  print_table(std::cout, {"due", "type", "id", "timer", "generation", "note"}, t);
}

}  // namespace

run_fn timers(CLI::App& cmd) {
  auto o = std::make_shared<timers_options>();
  cmd.add_option("--due-before", o->due_before, "only timers due before this time")->check(time_check());
  cmd.add_option("--limit", o->limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return [o](const globals& g) {
    catalog c(g.db, g.pg_schema);
    std::optional<std::int64_t> before;
    if (!o->due_before.empty()) before = saga::parse_time(o->due_before);
    const auto rows = c.timers(before, o->limit);
    g.as_json ? print_json(rows) : print_timers(rows);
    return 0;
  };
}

}  // namespace sagactl::commands
