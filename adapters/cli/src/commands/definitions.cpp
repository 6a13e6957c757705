// sagactl definitions: registered definitions with their instances and due timers, due timers
// of definitions not registered, and instances in a state their stored graph no longer has.

#include <iostream>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

void print_definitions(const nlohmann::json& d) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : d["definitions"])
    t.push_back({cell(r["name"]), cell(r["fingerprint"]), cell(r["registered"]), cell(r["states"]),
                 cell(r["instances"]), cell(r["due_timers"])});
  for (const auto& r : d["unregistered_due_timers"])
    t.push_back({cell(r["name"]), "(not registered)", "-", "-", "-", cell(r["due_timers"])});
  print_table(std::cout, {"name", "fingerprint", "registered", "states", "instances", "due timers"}, t);
  std::cout << '\n';
  if (d["orphaned"].empty()) {
    std::cout << "no instance is in a state its stored definition lacks\n";
  } else {
    std::cout << "instances in a state their stored definition no longer has:\n";
    t.clear();
    for (const auto& r : d["orphaned"])
      t.push_back({cell(r["type"]), cell(r["id"]), cell(r["state"]), cell(r["fingerprint"])});
    print_table(std::cout, {"type", "id", "state", "fingerprint"}, t);
  }
}

}  // namespace

run_fn definitions(CLI::App&) {
  return [](const globals& g) {
    catalog c(g.db);
    const auto d = c.definitions(wall_clock_ms());
    g.as_json ? print_json(d) : print_definitions(d);
    return 0;
  };
}

}  // namespace sagactl::commands
