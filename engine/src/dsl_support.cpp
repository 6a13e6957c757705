// The parts of saga/dsl.hpp that do not depend on a workflow's types, compiled once here: a
// definition's own translation unit then only passes names and calls (docs/dsl.md "Compile
// cost": building the graph inline cost a 30-row workflow about 2.4 s of its compile).
#include <algorithm>
#include <climits>
#include <optional>
#include <vector>

#include "saga/dsl.hpp"

namespace saga::dsl {

namespace {

[[noreturn]] void bad_field(const char* key, std::string_view what) {
  std::string m = "data '";
  m += key;
  m += "': ";
  m += what;
  throw std::invalid_argument(m);
}

const nlohmann::json* present(const nlohmann::json& data, const char* key) {
  if (!data.is_object()) return nullptr;
  const auto it = data.find(key);
  return it == data.end() || it->is_null() ? nullptr : &*it;
}

}  // namespace

std::int64_t integer_field(const nlohmann::json& data, const char* key) {
  const auto* v = present(data, key);
  if (v == nullptr) bad_field(key, "missing");
  if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    bad_field(key, "out of range (at most 9223372036854775807)");
  if (!v->is_number_integer()) bad_field(key, "must be an integer (minor units)");
  return v->get<std::int64_t>();
}

std::string string_field(const nlohmann::json& data, const char* key) {
  const auto* v = present(data, key);
  if (v == nullptr) bad_field(key, "missing");
  if (!v->is_string()) bad_field(key, "must be a string");
  return v->get<std::string>();
}

std::string optional_string_field(const nlohmann::json& data, const char* key, std::string fallback) {
  const auto* v = present(data, key);
  if (v == nullptr) return fallback;
  if (!v->is_string()) bad_field(key, "must be a string");
  return v->get<std::string>();
}

namespace detail {

std::string label(std::string_view what, std::string_view name) {
  std::string s(what);
  s += name;
  return s;
}

std::string arm_label(std::string_view timer, std::int64_t delay_ms) {
  std::string s = "arm ";
  s += timer;
  s += " (";
  s += saga::format_duration(delay_ms);
  s += ")";
  return s;
}

std::string arm_at_label(std::string_view timer, std::string_view due) {
  std::string s = "arm ";
  s += timer;
  s += " at ";
  s += due;
  return s;
}

namespace {

// nlohmann-json's message without its "[json.exception.type_error.302] " tag.
std::string_view untagged(std::string_view m) {
  if (const auto tag = m.find("] "); m.starts_with("[json.exception.") && tag != std::string_view::npos)
    m.remove_prefix(tag + 2);
  return m;
}

// What a failed read found and a value of the type it wanted, from nlohmann-json's message:
// "type must be number, but is string" -> string, 0; "cannot use at() with string" -> string, {}.
struct misread {
  std::string_view found;
  nlohmann::json wanted;
};

nlohmann::json value_of_type(std::string_view type) {
  if (type == "number") return 0;
  if (type == "string") return "";
  if (type == "boolean") return false;
  if (type == "array") return nlohmann::json::array();
  if (type == "object") return nlohmann::json::object();
  return nullptr;
}

std::optional<misread> misread_of(std::string_view m) {
  static constexpr std::string_view must = "type must be ", but = ", but is ";
  if (m.starts_with(must)) {
    const auto b = m.find(but);
    if (b == std::string_view::npos) return std::nullopt;
    return misread{m.substr(b + but.size()), value_of_type(m.substr(must.size(), b - must.size()))};
  }
  static constexpr std::array<std::pair<std::string_view, bool>, 4> uses{{
      {"cannot use at() with ", false},
      {"cannot use value() with ", false},
      {"cannot use operator[] with a string argument with ", false},
      {"cannot use operator[] with a numeric argument with ", true},
  }};
  for (const auto& [use, array] : uses)
    if (m.starts_with(use))
      return misread{m.substr(use.size()), array ? nlohmann::json::array() : nlohmann::json::object()};
  return std::nullopt;
}

// Every node of `doc` of JSON type `type`, with its path ("line.sku", "lines[2]"), in document
// order; at most `limit` of them, and the walk stops after `budget` nodes and does not go below
// max_depth levels (events that came through the codec are at most 64 deep; a host's own may be
// anything, and this recursion must not be what overflows the stack).
struct node_at {
  nlohmann::json* node;
  std::string path;
};

constexpr int max_depth = 64;

void nodes_of_type(nlohmann::json& j, std::string_view type, std::string& path, std::vector<node_at>& out,
                   std::size_t limit, std::size_t& budget, int depth = 0) {
  if (out.size() >= limit || budget == 0 || depth > max_depth) return;
  --budget;
  if (j.type_name() == type) out.push_back({&j, path});
  const auto size = path.size();
  if (j.is_object()) {
    for (auto& [key, value] : j.items()) {
      if (size != 0) path += '.';
      path += key;
      nodes_of_type(value, type, path, out, limit, budget, depth + 1);
      path.resize(size);
    }
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) {
      path += '[' + std::to_string(i) + ']';
      nodes_of_type(j[i], type, path, out, limit, budget, depth + 1);
      path.resize(size);
    }
  }
}

// What `rerun` throws now (empty when it succeeds).
std::string outcome(const std::function<void()>& rerun) {
  try {
    rerun();
    return {};
  } catch (const nlohmann::json::exception& e) {
    return std::string(untagged(e.what()));
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

// The path of the node the failed read was about, found by giving candidate nodes (those of
// the type the read found) the type it wanted, one at a time, and reading again: the node whose
// change moves the read past its error is the field. A change that only makes an earlier,
// successful read of that node fail ("type must be string, but is number" after a string was
// replaced by 0) does not count. Bounded: the error path of a large event costs at most
// max_reruns more reads.
std::optional<std::string> misread_field(std::string_view message, nlohmann::json& scratch,
                                         const std::function<void()>& rerun) {
  constexpr std::size_t max_reruns = 16;
  constexpr std::size_t max_nodes = 100000;
  auto what = misread_of(message);
  if (!what) return std::nullopt;
  std::vector<node_at> candidates;
  std::string path;
  std::size_t budget = max_nodes;
  nodes_of_type(scratch, what->found, path, candidates, max_reruns, budget);
  const std::string own_failure = std::string("but is ") + what->wanted.type_name();
  const std::string own_use = std::string("with ") + what->wanted.type_name();
  for (auto& c : candidates) {
    nlohmann::json substitute = what->wanted;
    c.node->swap(substitute);
    const auto now = outcome(rerun);
    c.node->swap(substitute);
    if (now == message || now.ends_with(own_failure) || now.ends_with(own_use)) continue;
    return std::move(c.path);
  }
  return std::nullopt;
}

}  // namespace

std::string json_reason(std::string_view where, const nlohmann::json::exception& e) {
  std::string out(where);
  out += ": ";
  out += untagged(e.what());
  return out;
}

std::string json_reason(std::string_view where, const nlohmann::json::exception& e, nlohmann::json& scratch,
                        const std::function<void()>& rerun) {
  const std::string_view message = untagged(e.what());
  const auto field = misread_field(message, scratch, rerun);
  if (!field || field->empty()) return json_reason(where, e);
  std::string out(where);
  out += " '";
  out += *field;
  out += "': ";
  out += message;
  return out;
}

namespace {

std::vector<std::string> strings(std::span<const std::string_view> names) {
  return {names.begin(), names.end()};
}

}  // namespace

graph_builder::graph_builder(std::string_view name, std::string_view initial) {
  g_.name = name;
  g_.initial = initial;
  g_.states.push_back(g_.initial);
}

void graph_builder::add_state(std::string_view s) {
  if (std::find(g_.states.begin(), g_.states.end(), s) == g_.states.end()) g_.states.emplace_back(s);
}

void graph_builder::row(std::string_view source, std::string_view event, std::string_view target) {
  saga::graph_row r;
  r.internal = target.empty();
  r.source = source;
  r.event = event;
  r.target = r.internal ? source : target;
  add_state(r.source);
  add_state(r.target);
  g_.rows.push_back(std::move(r));
}

void graph_builder::action(std::string_view name) {
  auto& cell = g_.rows.back().action;
  if (name.empty()) return;
  if (!cell.empty() && !cell.ends_with('(') && !cell.ends_with(' ')) cell += ", ";
  cell += name;
}

// A retry row's action reads "retry (Again) at most N times after 30s, ×2 each, then Then".
void graph_builder::retry(std::string_view timer_name, int retries, std::int64_t first_ms, int factor) {
  auto& r = g_.rows.back();
  r.retry_timer = std::string(saga::timer_event_prefix) + std::string(timer_name);
  timer(timer_name);
  r.action = "retry (";
  retry_budget_ = ") at most " + std::to_string(retries) + (retries == 1 ? " time" : " times") + " after " +
                  saga::format_duration(first_ms);
  if (factor > 1) retry_budget_ += ", x" + std::to_string(factor) + " each";
}

void graph_builder::retry_then(bool then) {
  auto& cell = g_.rows.back().action;
  cell += retry_budget_;
  if (then) cell += ", then ";
}

void graph_builder::guard(std::string_view text) {
  g_.rows.back().guard += text;
}

void graph_builder::timer(std::string_view name) {
  timers_.emplace(name);
}

void graph_builder::emits(std::string_view type) {
  emits_.emplace(type);
}

void graph_builder::schema(std::string_view type, std::string_view json_schema) {
  auto parsed = nlohmann::json::parse(json_schema, nullptr, false);
  if (!parsed.is_object())
    throw std::invalid_argument("definition '" + g_.name + "': the schema of event type '" +
                                std::string(type) + "' is not a JSON object");
  g_.schemas.insert_or_assign(std::string(type), std::move(parsed));
}

void graph_builder::consumes(std::span<const std::string_view> types) {
  g_.consumes = strings(types);
}

void graph_builder::starts(std::span<const std::string_view> types) {
  g_.starts = strings(types);
}

void graph_builder::terminal(std::span<const std::string_view> states) {
  g_.terminal = strings(states);
  terminal_declared_ = true;
}

void graph_builder::abort_state(std::string_view state) {
  g_.abort_state = state;
}

void graph_builder::attention_state(std::string_view state) {
  g_.attention_state = state;
}

void graph_builder::resolution_targets(std::span<const std::string_view> states) {
  g_.resolution_targets = strings(states);
}

void graph_builder::version(std::int64_t v) {
  g_.version = v;
}

void graph_builder::migration(std::int64_t from,
                              std::span<const std::pair<std::string_view, std::string_view>> states,
                              std::string_view data) {
  saga::graph_migration m;
  m.from = from;
  for (const auto& [old_state, new_state] : states) m.states.emplace(old_state, new_state);
  m.data = data;
  g_.migrations.push_back(std::move(m));
}

saga::graph graph_builder::finish() && {
  g_.timers.assign(timers_.begin(), timers_.end());
  g_.produces.assign(emits_.begin(), emits_.end());
  if (!terminal_declared_) g_.terminal = saga::without_way_out(g_);
  g_.fingerprint = saga::compute_fingerprint(g_);
  return std::move(g_);
}

void forget_retries(std::map<std::string, int, std::less<>>& retries, saga::intents& out,
                    std::string_view state) {
  const std::string prefix = "retry." + std::string(state) + ".";
  for (auto it = retries.lower_bound(prefix); it != retries.end() && it->first.starts_with(prefix);) {
    out.timers.push_back({it->first, false, 0});
    it = retries.erase(it);
  }
}

constexpr std::string_view retries_key = "saga.retries";

nlohmann::json stored_data(nlohmann::json data, const std::map<std::string, int, std::less<>>& retries) {
  if (retries.empty()) return data;
  if (!data.is_object())
    throw std::logic_error("dsl::retry keeps its count in the saga data, which must then be a JSON object");
  auto& kept = data[std::string(retries_key)] = nlohmann::json::object();
  for (const auto& [timer, spent] : retries) kept[timer] = spent;
  return data;
}

std::map<std::string, int, std::less<>> retries_of(const nlohmann::json& stored) {
  std::map<std::string, int, std::less<>> out;
  if (!stored.is_object()) return out;
  const auto it = stored.find(retries_key);
  if (it == stored.end() || !it->is_object()) return out;
  // Written by stored_data only; anything else (a hand-edited row) is skipped, never narrowed.
  for (const auto& [timer, spent] : it->items()) {
    if (!spent.is_number_integer()) continue;
    const auto n = spent.get<std::int64_t>();  // an unsigned beyond int64 reads negative
    if (n >= 0 && n <= INT_MAX) out.emplace(timer, static_cast<int>(n));
  }
  return out;
}

std::string_view known_state(const saga::graph& g, std::string_view state) {
  const auto known = std::find(g.states.begin(), g.states.end(), state);
  if (known == g.states.end())
    throw std::invalid_argument("definition '" + g.name + "' has no state '" + std::string(state) + "'");
  return *known;
}

void not_consumed(const saga::graph& g, std::string_view type) {
  throw std::invalid_argument("definition '" + g.name + "' does not consume type '" + std::string(type) +
                              "'");
}

}  // namespace detail
}  // namespace saga::dsl
