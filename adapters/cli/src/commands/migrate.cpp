// sagactl migrate: moves a definition's running sagas onto one of its newer versions, through
// sagad (docs/dsl.md, "Changing a workflow"). The candidates — unfinished sagas on another version
// — are read from the database a page at a time; each is sent to sagad as saga.operator.migrate,
// which moves it (state by the version's migration, data through its transform, timers it does
// not name disarmed) in sagad's own transaction, or refuses it. --dry-run sends nothing and says
// where each would go.
// Exit 0: every candidate moved (or would); 5: some were refused (listed); 1: no such version.

#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"
#include "saga/uuid.hpp"
#include "sending.hpp"

namespace sagactl::commands {

namespace {

using json = nlohmann::json;

struct migrate_options {
  std::string definition, reason = "definition version migration", operator_name;
  std::int64_t to = 0;
  std::size_t batch = 500;
  std::size_t max_listed = 1000;
  bool dry_run = false;
  send_settings settings;
};

// Where a saga would go on version `to` of `g`; empty with `why` when nowhere.
std::string target_of(const saga::graph& g, const saga::saga_summary& s, std::string& why) {
  const std::string from = std::to_string(s.definition_version);
  if (s.definition_version > g.version) {
    why = "on version " + from + ", newer than " + std::to_string(g.version);
    return {};
  }
  if (g.migration_from(s.definition_version) == nullptr) {
    why = "version " + std::to_string(g.version) + " declares no migration from version " + from;
    return {};
  }
  auto to = g.migrated_state(s.definition_version, s.state);
  if (to.empty()) why = "state '" + s.state + "' of version " + from + " has no mapping";
  return to;
}

struct tally {
  std::map<std::tuple<std::int64_t, std::string, std::string>, std::int64_t> moves;  // (version, from, to)
  json refused = json::array();
  std::int64_t refused_count = 0, moved = 0, unchanged = 0;

  void refuse(const saga::saga_summary& s, const std::string& why, std::size_t max_listed) {
    ++refused_count;
    if (refused.size() < max_listed)
      refused.push_back(
          {{"id", s.key}, {"version", s.definition_version}, {"state", s.state}, {"reason", why}});
  }
  json to_json(const migrate_options& o) const {
    json m = json::array();
    for (const auto& [k, n] : moves)
      m.push_back(
          {{"from_version", std::get<0>(k)}, {"from", std::get<1>(k)}, {"to", std::get<2>(k)}, {"sagas", n}});
    return {{"definition", o.definition},
            {"to", o.to},
            {"dry_run", o.dry_run},
            {"moves", m},
            {"moved", moved},
            {"already_there", unchanged},
            {"refused", refused},
            {"refused_count", refused_count}};
  }
};

saga::event migrate_event(const migrate_options& o, const std::string& key, std::int64_t now_ms) {
  saga::event e;
  e.id = saga::make_uuid_v7();
  e.source = "urn:saga:operator";
  e.type = "saga.operator.migrate";
  e.subject = key;
  e.time = saga::format_time(now_ms);
  e.data = {
      {"saga_type", o.definition}, {"version", o.to}, {"reason", o.reason}, {"operator", o.operator_name}};
  return e;
}

// Sends one page's movable sagas and counts what sagad answered.
void migrate_page(const migrate_options& o, const std::vector<const saga::saga_summary*>& page, tally& t) {
  std::vector<saga::event> events;
  events.reserve(page.size());
  const auto now = wall_clock_ms();
  for (const auto* s : page) events.push_back(migrate_event(o, s->key, now));
  const auto acks = send_events(events, o.settings);
  for (std::size_t i = 0; i < acks.size(); ++i) {
    const auto& a = acks[i];
    if (!a.ok())
      t.refuse(*page[i], a.reason, o.max_listed);
    else if (a.outcome == saga::ack_outcome::ignored)
      ++t.unchanged;
    else
      ++t.moved;
  }
}

void print_tally(const json& r) {
  const bool dry = r["dry_run"].get<bool>();
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : r["moves"])
    rows.push_back({"v" + cell(m["from_version"]), cell(m["from"]), cell(m["to"]), cell(m["sagas"])});
  if (!rows.empty())
    print_table(std::cout, {"version", "state", (dry ? "would move to" : "to"), "sagas"}, rows);
  std::cout << r["definition"].get<std::string>() << " to version " << r["to"] << ": ";
  if (dry)
    std::cout << "dry run, nothing sent; ";
  else
    std::cout << r["moved"] << " migrated, " << r["already_there"] << " already there; ";
  std::cout << r["refused_count"] << " refused\n";
  if (r["refused"].empty()) return;
  rows.clear();
  for (const auto& f : r["refused"])
    rows.push_back({cell(f["id"]), "v" + cell(f["version"]), cell(f["state"]), cell(f["reason"])});
  print_table(std::cout, {"refused", "version", "state", "reason"}, rows);
  if (r["refused"].size() < r["refused_count"].get<std::size_t>())
    std::cout << "(more refused: --max-listed)\n";
}

int run_migrate(const migrate_options& o, const globals& g) {
  catalog c(g.db, g.pg_schema);
  const auto target = c.stored_graph(o.definition, o.to);
  if (!target)
    throw failure(not_found, "version " + std::to_string(o.to) + " of '" + o.definition +
                                 "' is not registered in " + saga::server::describe_db(g.db) +
                                 " (start sagad with it first: its registration stores it)");
  tally t;
  std::optional<saga::saga_position> after;
  std::int64_t seen = 0;
  for (;;) {
    const auto page = c.off_version(o.definition, o.to, after, o.batch);
    if (page.empty()) break;
    after = page.back().position();
    std::vector<const saga::saga_summary*> movable;
    for (const auto& s : page) {
      std::string why;
      const auto to = target_of(*target, s, why);
      if (to.empty()) {
        t.refuse(s, why, o.max_listed);
        continue;
      }
      ++t.moves[{s.definition_version, s.state, to}];
      movable.push_back(&s);
    }
    if (!o.dry_run && !movable.empty()) migrate_page(o, movable, t);
    seen += static_cast<std::int64_t>(page.size());
    if (!o.dry_run)
      std::cerr << "sagactl migrate: " << seen << " sagas looked at, " << t.moved << " migrated, "
                << t.refused_count << " refused\n";
  }
  const auto report = t.to_json(o);
  g.as_json ? print_json(report) : print_tally(report);
  return t.refused_count > 0 ? differences_found : ok;
}

}  // namespace

run_fn migrate(CLI::App& cmd) {
  auto o = std::make_shared<migrate_options>();
  o->operator_name = default_operator_name();
  cmd.add_option("--definition", o->definition, "the definition whose sagas move")->required();
  cmd.add_option("--to", o->to, "the version they move to (registered: sagad has run it)")
      ->required()
      ->check(CLI::PositiveNumber);
  cmd.add_flag("--dry-run", o->dry_run,
               "send nothing: list how many sagas would move from which state to which, and which are "
               "refused and why");
  cmd.add_option("--batch", o->batch, "sagas read and sent per round (sagad commits them in its batches)")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  cmd.add_option("--reason", o->reason, "recorded with each saga's event")->capture_default_str();
  cmd.add_option("--operator", o->operator_name, "who (default $USER)")->capture_default_str();
  cmd.add_option("--max-listed", o->max_listed, "refused sagas listed at most")->capture_default_str();
  add_send_options(cmd, o->settings);
  return [o](const globals& g) { return run_migrate(*o, g); };
}

}  // namespace sagactl::commands
