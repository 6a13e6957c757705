#include "saga/graph.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <set>

namespace saga {
namespace {

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string row_text(const graph_row& r) {
  std::string s = r.source + " --" + r.event;
  if (!r.guard.empty()) s += " [" + r.guard + "]";
  s += "--> " + (r.internal ? std::string("(internal)") : r.target);
  if (!r.action.empty()) s += " / " + r.action;
  return s;
}

}  // namespace

bool graph::has_state(std::string_view s) const {
  return contains(states, s);
}
bool graph::is_terminal(std::string_view s) const {
  return contains(terminal, s);
}
bool graph::consumes_type(std::string_view t) const {
  return contains(consumes, t);
}
bool graph::starts_with(std::string_view t) const {
  return contains(starts, t);
}

std::string compute_fingerprint(const graph& g) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    h ^= 0xff;  // field separator
    h *= 0x100000001b3ULL;
  };
  mix(g.name);
  if (g.version != 1) mix("version " + std::to_string(g.version));  // version 1 keeps its old prints
  for (const auto& s : g.states) mix(s);
  for (const auto& r : g.rows) mix(row_text(r));
  for (const auto& t : g.consumes) mix(t);
  for (const auto& t : g.starts) mix(t);
  for (const auto& t : g.terminal) mix(t);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {

// Some row takes state `s` to another state (internal rows and self-transitions stay).
bool has_way_out(const graph& g, std::string_view s) {
  return std::any_of(g.rows.begin(), g.rows.end(),
                     [&](const graph_row& r) { return r.source == s && !r.internal && r.target != s; });
}

}  // namespace

std::vector<std::string> without_way_out(const graph& g) {
  std::vector<std::string> out;
  for (const auto& s : g.states)
    if (!has_way_out(g, s)) out.push_back(s);
  return out;
}

std::vector<std::string> reachable_from(const graph& g, std::string_view from) {
  std::vector<std::string> seen;
  std::deque<std::string> todo{std::string(from)};
  while (!todo.empty()) {
    const std::string s = todo.front();
    todo.pop_front();
    for (const auto& r : g.rows) {
      if (r.source != s || r.internal) continue;
      if (!contains(seen, r.target)) {
        seen.push_back(r.target);
        todo.push_back(r.target);
      }
    }
  }
  return seen;
}

std::vector<std::string> check_graph(const graph& g) {
  std::vector<std::string> problems;
  auto reachable = reachable_from(g, g.initial);
  for (const auto& s : g.states)
    if (s != g.initial && !contains(reachable, s)) problems.push_back("unreachable state '" + s + "'");
  for (const auto& s : g.states) {
    const bool leaves = has_way_out(g, s);
    if (g.is_terminal(s) && leaves) problems.push_back("terminal state '" + s + "' has a transition out");
    if (!g.is_terminal(s) && !leaves)
      problems.push_back("state '" + s + "' is not terminal and has no way out");
  }
  for (const auto& t : g.terminal)
    if (!g.has_state(t)) problems.push_back("terminal state '" + t + "' is not in the table");
  for (const auto& t : g.consumes) {
    const bool used = std::any_of(g.rows.begin(), g.rows.end(),
                                  [&](const graph_row& r) { return r.event == t || r.retry_timer == t; });
    if (!used) problems.push_back("consumed event type '" + t + "' is used by no row");
  }
  for (const auto& r : g.rows)
    if (!g.consumes_type(r.event))
      problems.push_back("event type '" + r.event + "' of a row is not in the consumed types");
  for (const auto& t : g.starts)
    if (!g.consumes_type(t)) problems.push_back("starting event type '" + t + "' is not consumed");
  if (!g.abort_state.empty() && !g.has_state(g.abort_state))
    problems.push_back("abort state '" + g.abort_state + "' is not in the table");
  for (const auto& t : g.resolution_targets)
    if (!g.has_state(t)) problems.push_back("resolution target '" + t + "' is not in the table");
  if (g.version < 1) problems.push_back("version " + std::to_string(g.version) + " is not a positive number");
  std::set<std::int64_t> seen;
  for (const auto& m : g.migrations) {
    const std::string which = "migration from version " + std::to_string(m.from);
    if (m.from < 1 || m.from >= g.version)
      problems.push_back(which + ": only an older version (1.." + std::to_string(g.version - 1) +
                         ") can migrate to version " + std::to_string(g.version));
    if (!seen.insert(m.from).second) problems.push_back(which + " is declared twice");
    for (const auto& [from, to] : m.states)
      if (!g.has_state(to))
        problems.push_back(which + ": state '" + from + "' maps to '" + to + "', not in the table");
  }
  return problems;
}

std::vector<std::string> diff_graphs(const graph& before, const graph& after) {
  std::vector<std::string> out;
  for (const auto& s : before.states)
    if (!after.has_state(s)) out.push_back("state removed: " + s);
  for (const auto& s : after.states)
    if (!before.has_state(s)) out.push_back("state added: " + s);
  for (const auto& r : before.rows)
    if (std::find(after.rows.begin(), after.rows.end(), r) == after.rows.end())
      out.push_back("row removed: " + row_text(r));
  for (const auto& r : after.rows)
    if (std::find(before.rows.begin(), before.rows.end(), r) == before.rows.end())
      out.push_back("row added: " + row_text(r));
  return out;
}

const graph_migration* graph::migration_from(std::int64_t v) const {
  for (const auto& m : migrations)
    if (m.from == v) return &m;
  return nullptr;
}

std::string graph::migrated_state(std::int64_t from, std::string_view state) const {
  const graph_migration* m = migration_from(from);
  if (m == nullptr) return {};
  if (auto it = m->states.find(std::string(state)); it != m->states.end()) return it->second;
  return has_state(state) ? std::string(state) : std::string();
}

nlohmann::json to_json(const graph& g) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : g.rows) {
    rows.push_back({{"source", r.source},
                    {"event", r.event},
                    {"target", r.target},
                    {"action", r.action},
                    {"guard", r.guard},
                    {"internal", r.internal}});
    if (!r.retry_timer.empty()) rows.back()["retry_timer"] = r.retry_timer;
  }
  nlohmann::json migrations = nlohmann::json::array();
  for (const auto& m : g.migrations)
    migrations.push_back({{"from", m.from}, {"states", m.states}, {"data", m.data}});
  return {{"name", g.name},
          {"version", g.version},
          {"migrations", migrations},
          {"states", g.states},
          {"initial", g.initial},
          {"terminal", g.terminal},
          {"rows", rows},
          {"consumes", g.consumes},
          {"starts", g.starts},
          {"timers", g.timers},
          {"produces", g.produces},
          {"abort_state", g.abort_state},
          {"attention_state", g.attention_state},
          {"resolution_targets", g.resolution_targets},
          {"fingerprint", g.fingerprint},
          {"schemas", g.schemas}};
}

graph graph_from_json(const nlohmann::json& j) {
  graph g;
  g.name = j.value("name", "");
  g.version = j.value("version", std::int64_t{1});
  for (const auto& m : j.value("migrations", nlohmann::json::array()))
    g.migrations.push_back({m.value("from", std::int64_t{0}),
                            m.value("states", std::map<std::string, std::string>{}), m.value("data", "")});
  g.states = j.value("states", std::vector<std::string>{});
  g.initial = j.value("initial", "");
  g.terminal = j.value("terminal", std::vector<std::string>{});
  for (const auto& r : j.value("rows", nlohmann::json::array()))
    g.rows.push_back({r.value("source", ""), r.value("event", ""), r.value("target", ""),
                      r.value("action", ""), r.value("guard", ""), r.value("internal", false),
                      r.value("retry_timer", "")});
  g.consumes = j.value("consumes", std::vector<std::string>{});
  g.starts = j.value("starts", std::vector<std::string>{});
  g.timers = j.value("timers", std::vector<std::string>{});
  g.produces = j.value("produces", std::vector<std::string>{});
  g.abort_state = j.value("abort_state", "");
  g.attention_state = j.value("attention_state", "");
  g.resolution_targets = j.value("resolution_targets", std::vector<std::string>{});
  g.fingerprint = j.value("fingerprint", "");
  if (const auto it = j.find("schemas"); it != j.end() && it->is_object())
    for (const auto& [type, schema] : it->items()) g.schemas.emplace(type, schema);
  return g;
}

}  // namespace saga
