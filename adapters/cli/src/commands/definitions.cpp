// sagactl definitions: registered definitions with their instances and due timers, due timers
// of definitions not registered, and instances in a state their stored graph no longer has.
// sagactl definitions NAME: one definition's event contract, from its stored graph (--asyncapi: as
// an AsyncAPI 3.0 document).

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "saga/graph.hpp"

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

void print_definitions(const nlohmann::json& d) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : d["definitions"])
    t.push_back({cell(r["name"]), cell(r["version"]), cell(r["fingerprint"]), cell(r["registered"]),
                 cell(r["states"]), cell(r["instances"]), cell(r["due_timers"])});
  for (const auto& r : d["unregistered_due_timers"])
    t.push_back({cell(r["name"]), "-", "(not registered)", "-", "-", "-", cell(r["due_timers"])});
  print_table(std::cout,
              {"name", "version", "fingerprint", "registered", "states", "instances", "due timers"}, t);
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

// What other services code against: the types it takes and those it emits.
void print_contract(const saga::graph& gr) {
  const auto list = [](const std::vector<std::string>& v) {
    return v.empty() ? std::string("-") : joined(v);
  };
  std::cout << "definition   " << gr.name << '\n'
            << "version      " << gr.version << '\n'
            << "fingerprint  " << gr.fingerprint << '\n'
            << "consumes     " << list(gr.consumes) << '\n'
            << "starts       " << list(gr.starts) << '\n'
            << "produces     " << list(gr.produces) << '\n'
            << "terminal     " << list(gr.terminal) << '\n'
            << "timers       " << list(gr.timers) << '\n';
}

}  // namespace

run_fn definitions(CLI::App& cmd) {
  auto name = std::make_shared<std::string>();
  auto asyncapi = std::make_shared<bool>(false);
  auto version = std::make_shared<std::optional<std::int64_t>>();
  auto* named = cmd.add_option("definition", *name,
                               "show this definition's contract instead: the event types it consumes (and "
                               "which of them start a saga) and produces, its terminal states and timers");
  cmd.add_flag("--asyncapi", *asyncapi,
               "print the definition's event contract as an AsyncAPI 3.0 document (JSON): a channel per "
               "event type it receives or sends, each message the CloudEvents envelope with the data "
               "schema its event type declares")
      ->needs(named);
  cmd.add_option("--definition-version", *version, "that version of the definition (default: its newest)")
      ->check(CLI::PositiveNumber)
      ->needs(named);
  return [name, asyncapi, version](const globals& g) {
    catalog c(g.db, g.pg_schema);
    if (!name->empty()) {
      const auto gr = c.stored_graph(*name, *version);
      if (!gr)
        throw failure(not_found, "no definition '" + *name + "'" +
                                     (*version ? " version " + std::to_string(**version) : std::string()) +
                                     " is registered in " + saga::server::describe_db(g.db));
      if (*asyncapi)
        print_json(saga::to_asyncapi(*gr));
      else
        g.as_json ? print_json(saga::to_json(*gr)) : print_contract(*gr);
      return 0;
    }
    const auto d = c.definitions(wall_clock_ms());
    g.as_json ? print_json(d) : print_definitions(d);
    return 0;
  };
}

}  // namespace sagactl::commands
