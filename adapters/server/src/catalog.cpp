#include "saga/server/catalog.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "saga/codec.hpp"
#include "saga/postgres/reader.hpp"
#include "saga/server/options.hpp"
#include "saga/sqlite/reader.hpp"
#include "saga/trace.hpp"

namespace saga::server {

namespace {

using json = nlohmann::json;

// Runs `f`, turning the reader's errors into failure(database).
template <class F>
decltype(auto) reading(const std::string& path, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const failure&) {
    throw;
  } catch (const saga::store_error& e) {
    throw failure(database, "cannot read " + path + ": " + e.what());
  } catch (const json::exception& e) {
    throw failure(database, "malformed JSON in " + path + ": " + e.what());
  }
}

// The refusal of a database of another schema version, in sagactl's words.
failure schema_refusal(const std::string& path, const saga::sqlite::schema_error& e) {
  const int version = e.found();
  const int known = e.supported();
  if (version > known)
    return failure(database, path + " has schema version " + std::to_string(version) +
                                 ", newer than this sagactl reads (" + std::to_string(known) +
                                 "): use the sagactl of the same release as sagad");
  if (version == 0) return failure(database, path + " is not a saga database (schema version 0)");
  return failure(database, path + " has schema version " + std::to_string(version) + ", older than " +
                               std::to_string(known) + ": start sagad once to migrate it");
}

}  // namespace

// The password a URI carries (user:password@… or a password=… parameter); empty when none.
std::string password_of(const std::string& db) {
  const auto scheme = db.find("://");
  if (scheme == std::string::npos) return {};
  const auto end = db.find_first_of("/?", scheme + 3);
  const auto at = db.rfind('@', end);
  if (at != std::string::npos && at > scheme) {
    const auto colon = db.find(':', scheme + 3);
    if (colon < at) return db.substr(colon + 1, at - colon - 1);
  }
  for (auto p = db.find("password=", scheme); p != std::string::npos; p = db.find("password=", p + 1)) {
    if (db[p - 1] != '?' && db[p - 1] != '&') continue;
    const auto from = p + 9;
    return db.substr(from, db.find('&', from) - from);
  }
  return {};
}

// A message from libpq about `db`, unless it holds the URI's password (libpq quotes the part of a
// URI it cannot parse): then only that it was left out.
std::string without_password(const std::string& message, const std::string& db) {
  const auto password = password_of(db);
  if (password.empty() || message.find(password) == std::string::npos) return message;
  return "(libpq's message left out: it quotes the password)";
}

namespace {

std::unique_ptr<saga::reader> open_postgres(const std::string& db, const std::string& pg_schema) {
  const std::string name = saga::server::describe_db(db);
  saga::postgres::options o;
  o.conninfo = db;
  o.schema = pg_schema;
  try {
    return std::make_unique<saga::postgres::reader>(o);
  } catch (const saga::store_error& e) {
    throw failure(database, "cannot read " + name + ": " + without_password(e.what(), db));
  } catch (const std::invalid_argument& e) {
    throw failure(usage, name + ": " + without_password(e.what(), db));
  }
}

std::unique_ptr<saga::reader> open_reader(const std::string& path, const std::string& pg_schema,
                                          int busy_timeout_ms) {
  if (saga::server::is_postgres(path)) return open_postgres(path, pg_schema);
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec))
    throw failure(database, "no database at " + (path.empty() ? std::string("''") : path));
  return reading(path, [&]() -> std::unique_ptr<saga::reader> {
    try {
      return std::make_unique<saga::sqlite::reader>(path, busy_timeout_ms);
    } catch (const saga::sqlite::schema_error& e) {
      throw schema_refusal(path, e);
    }
  });
}

std::size_t as_limit(std::int64_t limit) {
  return limit < 0 ? 0 : static_cast<std::size_t>(limit);
}

json parse_or_string(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return text;
  return j;
}

// An absent value (stored as an empty string) is null in --json.
json nullable(std::string_view text) {
  if (text.empty()) return nullptr;
  return std::string(text);
}

json time_or_null(const std::optional<std::int64_t>& ms) {
  if (!ms) return nullptr;
  return saga::format_time(*ms);
}

// A parked event as show() and parked() print it.
json parked_json(const saga::parked_record& p) {
  return {{"id", p.id},
          {"event_id", p.event_id},
          {"source", p.source},
          {"type", p.type},
          {"parked", saga::format_time(p.parked_ms)},
          {"sender", p.sender}};
}

// How many states a stored graph (JSON text) has; null when it has no list of states.
json state_count_of(const std::string& graph) {
  const json g = json::parse(graph);
  if (!g.is_object() || !g.contains("states") || !g["states"].is_array()) return nullptr;
  return g["states"].size();
}

}  // namespace

catalog::catalog(const std::string& db, const std::string& pg_schema, int busy_timeout_ms)
    : path_(saga::server::describe_db(db)),
      owned_(open_reader(db, pg_schema, busy_timeout_ms)),
      reader_(*owned_) {}

catalog::catalog(saga::reader& r, std::string name) : path_(std::move(name)), reader_(r) {}

catalog::~catalog() = default;

json catalog::parked(std::int64_t after_id, std::int64_t limit) {
  return reading(path_, [&] {
    json rows = json::array();
    for (const auto& p : reader_.parked_events(after_id, as_limit(limit))) {
      auto row = parked_json(p);
      row["saga_type"] = p.definition;
      row["saga_id"] = p.key;
      rows.push_back(std::move(row));
    }
    return rows;
  });
}

json catalog::list(const list_filter& f, std::int64_t now_ms) {
  return page(f, now_ms).rows;
}

list_page catalog::page(const list_filter& f, std::int64_t now_ms) {
  return reading(path_, [&] {
    saga::saga_filter sf;
    sf.definition = f.type;
    sf.state = f.state;
    if (f.stuck_for_ms) {
      // In their state at least this long: entered at or before now - stuck_for.
      sf.unfinished_only = true;
      sf.state_since.before_ms = now_ms - *f.stuck_for_ms + 1;
    }
    sf.created.from_ms = f.since_ms;
    sf.created.before_ms = f.until_ms;
    sf.trace_id = f.trace_id;
    sf.trace_scan = as_limit(f.trace_scan);
    sf.after = f.after;
    sf.newest_first = f.newest_first;
    // One row more than asked says whether there is a next page.
    const std::size_t limit = as_limit(f.limit);
    sf.limit = limit == std::numeric_limits<std::size_t>::max() ? limit : limit + 1;
    list_page out{json::array(), std::nullopt};
    auto found = reader_.sagas(sf);
    if (found.size() > limit) {
      found.resize(limit);
      if (!found.empty()) out.next = found.back().position();
    }
    for (const auto& s : found) {
      out.rows.push_back({{"type", s.definition},
                          {"id", s.key},
                          {"state", s.state},
                          {"version", s.version},
                          {"age", now_ms - s.created_ms},
                          {"in_state", now_ms - s.state_since_ms},
                          {"timers", s.armed_timers},
                          {"parked", s.parked}});
    }
    return out;
  });
}

std::string catalog::definition_of(const std::string& id, const std::string& type) {
  std::vector<std::string> found = reader_.definitions_of(id);
  if (!type.empty()) std::erase_if(found, [&](const std::string& d) { return d != type; });
  if (found.empty())
    throw failure(not_found,
                  "no saga with id '" + id + "'" + (type.empty() ? "" : " of type '" + type + "'"));
  if (found.size() > 1) {
    std::string names;
    for (const auto& n : found) names += (names.empty() ? "" : ", ") + n;
    throw failure(usage, "several definitions have a saga '" + id + "' (" + names + "): pass --type");
  }
  return found.front();
}

json catalog::inbound(const std::string& source, const std::string& id) {
  return reading(path_, [&] {
    const auto r = reader_.inbound(source, id);
    json out = {{"source", source}, {"id", id}};
    if (r.inbox) {
      const json ack = parse_or_string(r.inbox->ack);
      out["status"] = ack.is_object() ? ack.value("status", "accepted") : "accepted";
      out["ack"] = ack;
      out["received"] = saga::format_time(r.inbox->received_ms);
    } else if (r.dead_letter) {
      out["status"] = "rejected";
      out["reason"] = r.dead_letter->reason;
      out["dead_letter"] = r.dead_letter->id;
      out["received"] = saga::format_time(r.dead_letter->last_ms);
    } else {
      out["status"] = "not_received";
      out["inbox_since"] = r.oldest_inbox_ms > 0 ? json(saga::format_time(r.oldest_inbox_ms)) : json(nullptr);
    }
    return out;
  });
}

json catalog::audit(const std::string& id, const std::string& type) {
  return reading(path_, [&] {
    saga::reader_snapshot snapshot(reader_);
    const auto view = saga::read_saga(reader_, definition_of(id, type), id);
    if (!view) throw failure(not_found, "no saga with id '" + id + "'");
    json incoming = json::array();
    for (const auto& h : view->history) {
      const auto r = reader_.inbound(h.event_source, h.event_id);
      incoming.push_back(
          {{"time", saga::format_time(h.recorded_ms)},
           {"event_id", h.event_id},
           {"event_source", h.event_source},
           {"event_type", h.event_type},
           {"sender", nullable(h.sender)},
           {"trace_id", nullable(saga::trace_id_of(h.traceparent))},
           {"from", h.from_state},
           {"to", h.to_state},
           {"outcome", h.outcome},
           {"ack", r.inbox ? parse_or_string(r.inbox->ack) : json(nullptr)},
           {"follow_on",
            h.outbox_first ? json{{"from", *h.outbox_first}, {"to", *h.outbox_last}} : json(nullptr)}});
    }
    json follow_on = json::array();
    for (const auto& o : view->follow_on)
      follow_on.push_back({{"sequence", o.sequence},
                           {"event_id", o.event_id},
                           {"type", o.type},
                           {"created", saga::format_time(o.created_ms)},
                           {"published", time_or_null(o.published_ms)}});
    return json{{"type", view->instance.definition},
                {"id", view->instance.key},
                {"state", view->instance.state},
                {"incoming", std::move(incoming)},
                {"follow_on", std::move(follow_on)}};
  });
}

json catalog::show(const std::string& id, const std::string& type, std::int64_t now_ms) {
  return reading(path_, [&] {
    saga::reader_snapshot snapshot(reader_);
    const auto view = saga::read_saga(reader_, definition_of(id, type), id);
    if (!view) throw failure(not_found, "no saga with id '" + id + "'");
    const auto& i = view->instance;

    json out = {{"type", i.definition},
                {"id", i.key},
                {"state", i.state},
                {"data", parse_or_string(i.data)},
                {"version", i.version},
                {"fingerprint", i.fingerprint},
                {"correlation_id", i.correlation_id},
                {"created", saga::format_time(i.created_ms)},
                {"updated", saga::format_time(i.updated_ms)},
                {"state_since", saga::format_time(i.state_since_ms)},
                {"age", now_ms - i.created_ms},
                {"in_state", now_ms - i.state_since_ms}};
    // The fingerprint the registered definition has now, to show a stale one.
    out["definition_fingerprint"] = view->definition ? json(view->definition->fingerprint) : json(nullptr);
    out["definition_version"] = i.definition_version;
    json history = json::array();
    for (const auto& h : view->history) {
      history.push_back(
          {{"time", saga::format_time(h.recorded_ms)},
           {"event_time", h.event_time},
           {"event_type", h.event_type},
           {"event_id", h.event_id},
           {"event_source", h.event_source},
           {"from", h.from_state},
           {"to", h.to_state},
           {"outcome", h.outcome},
           {"version", h.version},
           {"definition_version", h.definition_version},
           {"sender", h.sender},
           {"trace_id", nullable(saga::trace_id_of(h.traceparent))},
           {"traceparent", nullable(h.traceparent)},
           {"tracestate", nullable(h.tracestate)},
           {"extensions", h.extensions.empty() ? json(nullptr) : parse_or_string(h.extensions)}});
    }
    out["history"] = std::move(history);
    json timers = json::array();
    for (const auto& t : view->timers) {
      timers.push_back({{"name", t.name},
                        {"due", saga::format_time(t.due_ms)},
                        {"due_in", t.due_ms - now_ms},
                        {"generation", t.generation}});
    }
    out["timers"] = std::move(timers);
    json parked = json::array();
    for (const auto& p : view->parked) parked.push_back(parked_json(p));
    out["parked"] = std::move(parked);
    json emitted = json::array();
    for (const auto& o : view->follow_on) {
      emitted.push_back({{"sequence", o.sequence},
                         {"event_id", o.event_id},
                         {"type", o.type},
                         {"created", saga::format_time(o.created_ms)},
                         {"published", o.published_ms.has_value()}});
    }
    out["outbox"] = std::move(emitted);
    return out;
  });
}

json catalog::stats(std::int64_t now_ms) {
  return reading(path_, [&] {
    saga::reader_snapshot snapshot(reader_);
    json out;
    json per_definition = json::object();
    for (const auto& c : reader_.counts_by_state()) {  // summed over the definition's versions
      auto& n = per_definition[c.definition][c.state];
      n = n.is_null() ? c.sagas : n.get<std::int64_t>() + c.sagas;
    }
    out["instances"] = std::move(per_definition);
    const auto t = reader_.totals();
    out["sagas"] = t.sagas;
    out["inbox"] = t.inbox;
    out["outbox"] = t.outbox;
    out["unpublished"] = t.unpublished;
    out["oldest_unpublished_age"] =
        t.oldest_unpublished_ms ? json(now_ms - *t.oldest_unpublished_ms) : json(nullptr);
    out["dead_letters"] = t.dead_letters;
    out["parked"] = t.parked;
    out["armed_timers"] = t.armed_timers;
    // The last 60 clock minutes, oldest first, the last one the minute under way: whole minutes,
    // which the SQLite store keeps counted (schema 11) rather than counting the inbox.
    constexpr std::int64_t minute = 60'000;
    const std::int64_t this_minute = now_ms / minute * minute;
    std::vector<std::int64_t> minutes =
        reader_.received_per_interval(this_minute - 59 * minute, this_minute + minute, minute);
    if (minutes.size() > 60) {
      for (std::size_t m = 60; m < minutes.size(); ++m) minutes[59] += minutes[m];
      minutes.resize(60);
    }
    std::int64_t total = 0;
    for (const auto n : minutes) total += n;
    out["handled_last_hour"] = total;
    out["handled_per_minute"] = minutes;
    return out;
  });
}

json catalog::outbox(bool pending_only, std::int64_t from_sequence, std::int64_t limit) {
  return reading(path_, [&] {
    saga::outbox_filter f;
    f.from_sequence = from_sequence;
    f.unpublished_only = pending_only;
    f.limit = as_limit(limit);
    json rows = json::array();
    for (const auto& o : reader_.outbox(f)) {
      rows.push_back({{"sequence", o.sequence},
                      {"event_id", o.event_id},
                      {"type", o.type},
                      {"saga_type", o.definition},
                      {"saga_id", o.key},
                      {"created", saga::format_time(o.created_ms)},
                      {"published", time_or_null(o.published_ms)}});
    }
    return rows;
  });
}

json catalog::dead_letters(std::int64_t limit) {
  return reading(path_, [&] {
    json rows = json::array();
    for (const auto& d : reader_.dead_letters(std::numeric_limits<std::int64_t>::min(), as_limit(limit))) {
      rows.push_back({{"id", d.id},
                      {"event_id", d.event_id},
                      {"source", d.source},
                      {"type", d.type},
                      {"subject", d.subject},
                      {"reason", d.reason},
                      {"created", saga::format_time(d.created_ms)},
                      {"count", d.count},
                      {"last", saga::format_time(d.last_ms)},
                      {"truncated", d.truncated},
                      {"sender", d.sender}});
    }
    return rows;
  });
}

json catalog::timers(std::optional<std::int64_t> due_before_ms, std::int64_t limit) {
  return reading(path_, [&] {
    saga::reader_snapshot snapshot(reader_);
    std::set<std::string> registered;
    for (const auto& d : reader_.definitions()) registered.insert(d.name);
    json rows = json::array();
    for (const auto& t : reader_.armed_timers(due_before_ms, as_limit(limit))) {
      rows.push_back({{"type", t.definition},
                      {"id", t.key},
                      {"name", t.name},
                      {"due", saga::format_time(t.due_ms)},
                      {"generation", t.generation},
                      {"registered", registered.contains(t.definition)}});
    }
    return rows;
  });
}

json catalog::definitions(std::int64_t now_ms) {
  return reading(path_, [&] {
    saga::reader_snapshot snapshot(reader_);
    std::map<std::string, std::int64_t> due;
    std::map<std::pair<std::string, std::int64_t>, std::int64_t> instances;  // per version
    for (const auto& c : reader_.counts_by_state())
      instances[{c.definition, c.definition_version}] += c.sagas;
    for (const auto& [name, n] : reader_.due_timer_counts(now_ms)) due[name] = n;
    json defs = json::array();
    for (const auto& d : reader_.definitions()) {
      defs.push_back({{"name", d.name},
                      {"version", d.version},
                      {"fingerprint", d.fingerprint},
                      {"registered", saga::format_time(d.registered_ms)},
                      {"states", state_count_of(d.graph)},
                      {"instances", instances[{d.name, d.version}]},
                      {"due_timers", due[d.name]}});  // per name: timers are a saga's, whatever its version
    }
    for (const auto& d : reader_.definitions()) due.erase(d.name);
    // Due timers of definitions the definitions table does not have: no sagad runs them.
    json unregistered = json::array();
    for (const auto& [name, n] : due)
      if (n > 0) unregistered.push_back({{"name", name}, {"due_timers", n}});
    // Instances whose state the stored graph of their definition does not have
    // (or whose definition is not registered at all).
    json orphans = json::array();
    for (const auto& s : reader_.orphaned_sagas(1000))
      orphans.push_back(
          {{"type", s.definition}, {"id", s.key}, {"state", s.state}, {"fingerprint", s.fingerprint}});
    return json{{"definitions", std::move(defs)},
                {"unregistered_due_timers", std::move(unregistered)},
                {"orphaned", std::move(orphans)}};
  });
}

std::vector<saga::saga_summary> catalog::off_version(const std::string& definition, std::int64_t version,
                                                     const std::optional<saga::saga_position>& after,
                                                     std::size_t limit) {
  return reading(path_, [&] {
    saga::saga_filter f;
    f.definition = definition;
    f.unfinished_only = true;
    f.not_on_version = version;
    f.after = after;
    f.limit = limit;
    return reader_.sagas(f);
  });
}

std::optional<saga::graph> catalog::stored_graph(const std::string& name,
                                                 std::optional<std::int64_t> version) {
  return reading(path_, [&]() -> std::optional<saga::graph> {
    const auto d = reader_.definition(name, version);
    if (!d) return std::nullopt;
    return saga::graph_from_json(json::parse(d->graph));
  });
}

catalog::stored_dead_letter catalog::dead_letter(std::int64_t id) {
  return reading(path_, [&] {
    const auto d = reader_.dead_letter(id);
    if (!d) throw failure(not_found, "no dead letter with id " + std::to_string(id));
    return stored_dead_letter{d->payload, d->truncated};
  });
}

std::vector<catalog::finished_states> catalog::purgeable(const std::string& definition) {
  return reading(path_, [&] {
    std::vector<finished_states> out;
    for (const auto& d : reader_.definitions()) {
      if (!definition.empty() && d.name != definition) continue;
      const saga::graph g = saga::graph_from_json(json::parse(d.graph));
      finished_states f{d.name, {}};
      for (const auto& t : g.terminal)
        if (t != g.attention_state) f.states.push_back(t);
      out.push_back(std::move(f));
    }
    if (!definition.empty() && out.empty())
      throw failure(not_found, "no definition '" + definition + "' in " + path_);
    return out;
  });
}

catalog::purge_count catalog::count_finished(const finished_states& f, std::int64_t before_ms) {
  return reading(path_, [&] {
    const auto n = reader_.count_finished(f.definition, f.states, before_ms);
    return purge_count{n.sagas, n.history};
  });
}

std::int64_t catalog::last_published() {
  return reading(path_, [&] { return reader_.last_published_sequence(); });
}

}  // namespace saga::server
