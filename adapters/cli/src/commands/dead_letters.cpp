// sagactl dead-letters: rejected events with their reason, how often they came, and whether
// their payload was cut at the size limit (such a one cannot be redriven).

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

void print_dead_letters(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({cell(r["id"]), cell(r["created"]), cell(r["last"]), cell(r["count"]), cell(r["type"]),
                 cell(r["subject"]), cell(r["event_id"]), cell(r["source"]), sender_cell(r["sender"]),
                 r["truncated"].get<bool>() ? "yes" : "no", cell(r["reason"])});
  print_table(std::cout,
              {"id", "first", "last", "count", "type", "subject", "event id", "source", "sent by",
               "truncated", "reason"},
              t);
}

}  // namespace

run_fn dead_letters(CLI::App& cmd) {
  auto limit = std::make_shared<std::int64_t>(1000);
  cmd.add_option("--limit", *limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return [limit](const globals& g) {
    catalog c(g.db, g.pg_schema);
    const auto rows = c.dead_letters(*limit);
    g.as_json ? print_json(rows) : print_dead_letters(rows);
    return 0;
  };
}

}  // namespace sagactl::commands
