// sagactl show: one saga with its history, timers, parked and follow-on events.

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

struct show_options {
  std::string id, type;
};

void print_show(const nlohmann::json& s) {
  std::cout << "saga         " << cell(s["type"]) << " / " << cell(s["id"]) << " (definition version "
            << cell(s["definition_version"]) << ")\n"
            << "state        " << cell(s["state"]) << " (for "
            << human_duration(s["in_state"].get<std::int64_t>()) << ", since " << cell(s["state_since"])
            << ")\n"
            << "version      " << cell(s["version"]) << '\n'
            << "created      " << cell(s["created"]) << " (" << human_duration(s["age"].get<std::int64_t>())
            << " ago)\n"
            << "updated      " << cell(s["updated"]) << '\n'
            << "fingerprint  " << cell(s["fingerprint"]);
  if (!s["definition_fingerprint"].is_null() && s["definition_fingerprint"] != s["fingerprint"])
    std::cout << " (the registered definition is now " << cell(s["definition_fingerprint"]) << ")";
  std::cout << '\n'
            << "correlation  " << cell(s["correlation_id"]) << '\n'
            << "data         " << s["data"].dump() << "\n\n";

  std::cout << "history\n";
  std::vector<std::vector<std::string>> t;
  bool more = false;  // a row with a tracestate or extensions
  for (const auto& h : s["history"]) {
    t.push_back({cell(h["time"]), cell(h["event_type"]), cell(h["event_id"]),
                 cell(h["from"]) + " → " + cell(h["to"]), cell(h["outcome"]), sender_cell(h["sender"]),
                 h["trace_id"].is_null() ? "-" : cell(h["trace_id"])});
    more = more || !h["tracestate"].is_null() || !h["extensions"].is_null();
  }
  print_table(std::cout, {"time", "event", "event id", "from → to", "outcome", "sent by", "trace id"}, t);
  if (more) {
    std::cout << "\ntrace state and extensions\n";
    t.clear();
    for (const auto& h : s["history"])
      if (!h["tracestate"].is_null() || !h["extensions"].is_null())
        t.push_back({cell(h["event_id"]), h["tracestate"].is_null() ? "-" : cell(h["tracestate"]),
                     h["extensions"].is_null() ? "-" : h["extensions"].dump()});
    print_table(std::cout, {"event id", "tracestate", "extensions"}, t);
  }

  std::cout << "\ntimers\n";
  if (s["timers"].empty()) {
    std::cout << "(none armed)\n";
  } else {
    t.clear();
    for (const auto& x : s["timers"])
      t.push_back({cell(x["name"]), cell(x["due"]), human_duration(x["due_in"].get<std::int64_t>())});
    print_table(std::cout, {"timer", "due", "due in"}, t);
  }

  std::cout << "\nparked\n";
  if (s["parked"].empty()) {
    std::cout << "(none)\n";
  } else {
    t.clear();
    for (const auto& x : s["parked"])
      t.push_back(
          {cell(x["id"]), cell(x["parked"]), cell(x["type"]), cell(x["event_id"]), cell(x["source"])});
    print_table(std::cout, {"id", "parked", "type", "event id", "source"}, t);
  }

  std::cout << "\nfollow-on events\n";
  if (s["outbox"].empty()) {
    std::cout << "(none)\n";
  } else {
    t.clear();
    for (const auto& x : s["outbox"])
      t.push_back({cell(x["sequence"]), cell(x["type"]), cell(x["event_id"]), cell(x["created"]),
                   x["published"].get<bool>() ? "yes" : "no"});
    print_table(std::cout, {"sequence", "type", "event id", "created", "published"}, t);
  }
}

}  // namespace

run_fn show(CLI::App& cmd) {
  auto o = std::make_shared<show_options>();
  cmd.add_option("id", o->id, "the saga's id (its correlation key)")->required();
  cmd.add_option("--type", o->type, "the definition, when several have a saga with this id");
  return [o](const globals& g) {
    catalog c(g.db, g.pg_schema);
    const auto s = c.show(o->id, o->type, wall_clock_ms());
    g.as_json ? print_json(s) : print_show(s);
    return 0;
  };
}

}  // namespace sagactl::commands
