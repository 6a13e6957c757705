// sagactl outbox: the follow-on events by sequence.

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

struct outbox_options {
  bool pending = false;
  std::int64_t from = 0, limit = 1000;
};

void print_outbox(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({cell(r["sequence"]), cell(r["type"]), cell(r["saga_type"]) + "/" + cell(r["saga_id"]),
                 cell(r["event_id"]), cell(r["created"]), cell(r["published"])});
  print_table(std::cout, {"sequence", "type", "saga", "event id", "created", "published"}, t);
}

}  // namespace

run_fn outbox(CLI::App& cmd) {
  auto o = std::make_shared<outbox_options>();
  cmd.add_flag("--pending", o->pending, "only rows not yet published");
  cmd.add_option("--from", o->from, "from this sequence on")->check(CLI::NonNegativeNumber);
  cmd.add_option("--limit", o->limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return [o](const globals& g) {
    catalog c(g.db, g.pg_schema);
    const auto rows = c.outbox(o->pending, o->from, o->limit);
    g.as_json ? print_json(rows) : print_outbox(rows);
    return 0;
  };
}

}  // namespace sagactl::commands
