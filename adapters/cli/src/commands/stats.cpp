// sagactl stats: counts per definition and state, queues, throughput of the last hour.

#include <algorithm>
#include <iostream>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

void print_stats(const nlohmann::json& s) {
  std::vector<std::vector<std::string>> t;
  for (const auto& [def, states] : s["instances"].items())
    for (const auto& [state, n] : states.items()) t.push_back({def, state, cell(n)});
  std::cout << "sagas: " << cell(s["sagas"]) << '\n';
  print_table(std::cout, {"type", "state", "count"}, t);
  std::cout << '\n';
  std::string oldest =
      s["oldest_unpublished_age"].is_null()
          ? std::string()
          : " (oldest " + human_duration(s["oldest_unpublished_age"].get<std::int64_t>()) + " old)";
  print_table(std::cout, {"what", "count"},
              {{"inbox", cell(s["inbox"])},
               {"outbox", cell(s["outbox"])},
               {"unpublished", cell(s["unpublished"]) + oldest},
               {"dead letters", cell(s["dead_letters"])},
               {"parked", cell(s["parked"])},
               {"armed timers", cell(s["armed_timers"])}});
  // One character per minute of the last hour, oldest left.
  const auto& per = s["handled_per_minute"];
  std::int64_t peak = 0;
  for (const auto& n : per) peak = std::max(peak, n.get<std::int64_t>());
  static const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string line;
  for (const auto& n : per) {
    const auto v = n.get<std::int64_t>();
    line += v == 0 ? std::string("·")
                   : std::string(bars[peak ? std::min<std::int64_t>(7, v * 8 / (peak + 1)) : 0]);
  }
  std::cout << "\nevents handled in the last hour: " << cell(s["handled_last_hour"]) << " (peak " << peak
            << "/min)\n"
            << line << '\n';
}

}  // namespace

run_fn stats(CLI::App&) {
  return [](const globals& g) {
    catalog c(g.db, g.pg_schema);
    const auto s = c.stats(wall_clock_ms());
    g.as_json ? print_json(s) : print_stats(s);
    return 0;
  };
}

}  // namespace sagactl::commands
