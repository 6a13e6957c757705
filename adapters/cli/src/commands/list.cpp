// sagactl list: sagas, oldest first (or newest first), with filters.

#include <iostream>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"
#include "saga/duration.hpp"
#include "saga/trace.hpp"

namespace sagactl::commands {

namespace {

struct list_options {
  std::string type, state, stuck_for, since, until, trace;
  std::int64_t trace_scan = 1'000'000;
  std::int64_t limit = 1000;
  bool newest_first = false;
};

std::optional<std::string> opt_text(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

std::optional<std::int64_t> opt_time(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return saga::parse_time(s);
}

void print_list(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows) {
    t.push_back({cell(r["type"]), cell(r["id"]), cell(r["state"]),
                 std::to_string(r["version"].get<std::int64_t>()),
                 human_duration(r["age"].get<std::int64_t>()),
                 human_duration(r["in_state"].get<std::int64_t>()), cell(r["timers"]), cell(r["parked"])});
  }
  print_table(std::cout, {"type", "id", "state", "version", "age", "in_state", "timers", "parked"}, t);
  if (rows.empty()) std::cout << "(no sagas)\n";
}

}  // namespace

run_fn list(CLI::App& cmd) {
  auto o = std::make_shared<list_options>();
  cmd.add_option("--type", o->type, "only this definition");
  cmd.add_option("--state", o->state, "only sagas in this state");
  cmd.add_option("--stuck-for", o->stuck_for, "only non-terminal sagas in their state at least this long")
      ->check(duration_check());
  cmd.add_option("--since", o->since, "only sagas created at or after")->check(time_check());
  cmd.add_option("--until", o->until, "only sagas created before")->check(time_check());
  cmd.add_option("--trace", o->trace, "only sagas with an event of this trace (its 32 hex digits)")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return saga::valid_trace_id(s)
                       ? std::string()
                       : "'" + s + "' is not a trace id (32 lower-case hex digits, not all 0)";
          },
          "TRACEID"));
  cmd.add_option("--trace-scan", o->trace_scan, "--trace looks through the newest this many history rows")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40))
      ->capture_default_str();
  cmd.add_option("--limit", o->limit, "at most this many")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40))
      ->capture_default_str();
  cmd.add_flag("--newest-first", o->newest_first, "newest created first (default: oldest first)");
  return [o](const globals& g) {
    list_filter f;
    f.newest_first = o->newest_first;
    f.type = opt_text(o->type);
    f.state = opt_text(o->state);
    if (!o->stuck_for.empty()) f.stuck_for_ms = saga::parse_duration(o->stuck_for);
    f.since_ms = opt_time(o->since);
    f.until_ms = opt_time(o->until);
    f.trace_id = opt_text(o->trace);
    f.trace_scan = o->trace_scan;
    f.limit = o->limit;
    catalog c(g.db, g.pg_schema);
    const auto rows = c.list(f, wall_clock_ms());
    g.as_json ? print_json(rows) : print_list(rows);
    return 0;
  };
}

}  // namespace sagactl::commands
