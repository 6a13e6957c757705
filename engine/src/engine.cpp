#include "saga/engine.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <type_traits>

#include "parsed_data.hpp"
#include "saga/codec.hpp"
#include "saga/trace.hpp"
#include "saga/uuid.hpp"

namespace saga {
namespace {

using json = nlohmann::json;

constexpr std::string_view timer_prefix = timer_event_prefix;
constexpr std::string_view operator_prefix = "saga.operator.";
constexpr std::size_t dead_letter_payload_max = 64 * 1024;

// An event-level failure: the event is rejected alone, the batch goes on.
class event_rejected : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An event failed after its first write: the batch is rolled back and run
// again, with this event rejected up front (engine::isolated).
struct failed_after_write {
  std::size_t index;
  std::string reason;
};

// The reason for the exception in flight, for an ack and a dead letter.
std::string reason_of_current_exception() {
  try {
    throw;
  } catch (const event_rejected& ex) {
    return ex.what();
  } catch (const std::exception& ex) {
    return std::string("the event could not be applied: ") + ex.what();
  } catch (...) {
    return "the event could not be applied: an exception that is not a std::exception";
  }
}

// Cuts a dead letter's payload at the size limit, never inside a UTF-8 character.
std::string truncate(std::string s, bool& truncated) {
  truncated = s.size() > dead_letter_payload_max;
  if (!truncated) return s;
  std::size_t n = dead_letter_payload_max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // s[n]: first byte cut off
  s.resize(n);
  return s;
}

// f() in the store's open transaction, or in one of its own (committed, or rolled back when f
// throws) when none is open: registration's reads and writes, before events flow or inside a
// host's transaction.
template <class F>
auto within_transaction(store& s, F&& f) {
  const bool own = !s.in_transaction();
  if (own) s.begin();
  try {
    if constexpr (std::is_void_v<decltype(f())>) {
      std::forward<F>(f)();
      if (own) s.commit();
    } else {
      auto result = std::forward<F>(f)();
      if (own) s.commit();
      return result;
    }
  } catch (...) {
    if (own) s.rollback();
    throw;
  }
}

// Operator actions' data fields are strings when present (DESIGN.md, "Operator actions").
std::string operator_field_problem(const json& data) {
  for (const char* field : {"saga_type", "to", "reason", "operator"}) {
    const auto it = data.find(field);
    if (it != data.end() && !it->is_null() && !it->is_string())
      return std::string("data '") + field + "': must be a string";
  }
  return {};
}

// Why an event for `inst` is rejected when its definition version is not registered here.
std::string version_not_run(const instance_record& inst) {
  return "saga '" + inst.definition + "/" + inst.key + "' runs on version " +
         std::to_string(inst.definition_version) +
         " of its definition, which this engine does not run (register that version, or migrate the saga: "
         "sagactl migrate)";
}

// Whether a and b are the same document, written alike: down to each number's kind (1 and 1.0,
// or 0.0 and -0.0, are equal to nlohmann's == but dump differently): a saga's data the dispatch left as it
// was keeps its stored text, which is not encoded again (docs/performance.md, fifth round).
bool identical(const json& a, const json& b) {
  // Once per event: the pairs still to compare go into this thread's vector of the last call.
  thread_local std::vector<std::pair<const json*, const json*>> todo;
  todo.assign(1, {&a, &b});
  while (!todo.empty()) {
    const auto [x, y] = todo.back();
    todo.pop_back();
    // Signed and unsigned integers of the same value are written alike (a parse reads 5 as unsigned).
    if (x->is_number_integer() && y->is_number_integer()) {
      if (*x != *y) return false;
      continue;
    }
    if (x->type() != y->type()) return false;
    switch (x->type()) {
      case json::value_t::object: {
        const auto& xo = x->get_ref<const json::object_t&>();
        const auto& yo = y->get_ref<const json::object_t&>();
        if (xo.size() != yo.size()) return false;
        for (auto i = xo.begin(), j = yo.begin(); i != xo.end(); ++i, ++j) {
          if (i->first != j->first) return false;
          todo.emplace_back(&i->second, &j->second);
        }
        break;
      }
      case json::value_t::array: {
        const auto& xa = x->get_ref<const json::array_t&>();
        const auto& ya = y->get_ref<const json::array_t&>();
        if (xa.size() != ya.size()) return false;
        for (std::size_t i = 0; i < xa.size(); ++i) todo.emplace_back(&xa[i], &ya[i]);
        break;
      }
      case json::value_t::number_float: {
        const double xd = x->get<double>(), yd = y->get<double>();
        if (xd != yd || std::signbit(xd) != std::signbit(yd)) return false;
        break;
      }
      default:
        if (*x != *y) return false;
    }
  }
  return true;
}

// The trace context an event is handled in: its own, or else `fallback`'s trace with a new span
// id (a timer firing or an operator action continues its saga's trace), or else a new trace. A
// tracestate without a traceparent is dropped with it, as W3C Trace Context asks.
trace_context trace_of(const event& e, const trace_context& fallback = {}) {
  if (!e.traceparent.empty()) return {e.traceparent, e.tracestate};
  if (!fallback.traceparent.empty()) return {child_traceparent(fallback.traceparent), fallback.tracestate};
  return {new_traceparent(), {}};
}

// " (trace <id>)" for a log line about an event that has a trace id.
std::string trace_note(std::string_view traceparent) {
  const auto id = trace_id_of(traceparent);
  return id.empty() ? std::string() : " (trace " + std::string(id) + ")";
}

}  // namespace

std::string_view to_string(ack_status s) {
  switch (s) {
    case ack_status::accepted:
      return "accepted";
    case ack_status::duplicate:
      return "duplicate";
    case ack_status::rejected:
      return "rejected";
  }
  return "rejected";
}

std::string_view to_string(ack_outcome o) {
  switch (o) {
    case ack_outcome::transitioned:
      return "transitioned";
    case ack_outcome::parked:
      return "parked";
    case ack_outcome::ignored:
      return "ignored";
    case ack_outcome::none:
      break;
  }
  return "";
}

json to_json(const ack& a) {
  json j;
  j["id"] = a.id.empty() ? json(nullptr) : json(a.id);
  j["source"] = a.source.empty() ? json(nullptr) : json(a.source);
  j["status"] = to_string(a.status);
  j["outcome"] = a.outcome == ack_outcome::none ? json(nullptr) : json(to_string(a.outcome));
  j["reason"] = a.reason.empty() ? json(nullptr) : json(a.reason);
  if (a.saga_type.empty())
    j["saga"] = nullptr;
  else
    j["saga"] = {{"type", a.saga_type},
                 {"id", a.saga_id},
                 {"state", a.saga_state.empty() ? json(nullptr) : json(a.saga_state)}};
  return j;
}

namespace {

// encode_ack's text appended to `out` (the engine writes it into a buffer its batch reuses).
// Keys in nlohmann's sorted order, as to_json(a).dump() writes them.
void append_ack(std::string& out, const ack& a) {
  out.reserve(out.size() + 160 + a.id.size() + a.source.size() + a.reason.size() + a.saga_type.size() +
              a.saga_id.size() + a.saga_state.size());
  // An ack is always sent: a byte that is not UTF-8 (a reason quoting what a client sent, or a
  // value cut by a limit) becomes U+FFFD instead of failing the encoding.
  auto value = [&](std::string_view v) {
    if (v.empty()) {
      out += "null";
    } else if (std::any_of(v.begin(), v.end(),
                           [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
      out += json(v).dump(-1, ' ', false, json::error_handler_t::replace);
    } else {
      append_json_string(out, v);
    }
  };
  out += "{\"id\":";
  value(a.id);
  out += ",\"outcome\":";
  value(to_string(a.outcome));
  out += ",\"reason\":";
  value(a.reason);
  out += ",\"saga\":";
  if (a.saga_type.empty()) {
    out += "null";
  } else {
    out += "{\"id\":";
    append_json_string(out, a.saga_id);
    out += ",\"state\":";
    value(a.saga_state);
    out += ",\"type\":";
    append_json_string(out, a.saga_type);
    out += '}';
  }
  out += ",\"source\":";
  value(a.source);
  out += ",\"status\":";
  append_json_string(out, to_string(a.status));
  out += '}';
}

}  // namespace

std::string encode_ack(const ack& a) {
  std::string out;
  append_ack(out, a);
  return out;
}

ack ack_from_json(const json& j) {
  auto str = [&](const json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  ack a;
  a.id = str(j, "id");
  a.source = str(j, "source");
  const auto status = str(j, "status");
  a.status = status == "accepted"    ? ack_status::accepted
             : status == "duplicate" ? ack_status::duplicate
                                     : ack_status::rejected;
  const auto outcome = str(j, "outcome");
  a.outcome = outcome == "transitioned" ? ack_outcome::transitioned
              : outcome == "parked"     ? ack_outcome::parked
              : outcome == "ignored"    ? ack_outcome::ignored
                                        : ack_outcome::none;
  a.reason = str(j, "reason");
  if (auto s = j.find("saga"); s != j.end() && s->is_object()) {
    a.saga_type = str(*s, "type");
    a.saga_id = str(*s, "id");
    a.saga_state = str(*s, "state");
  }
  return a;
}

// Per-batch scratch: the batch's time and the follow-on events to hand to
// in-process subscribers once the batch has committed.
struct engine::batch_state {
  batch_state(std::int64_t now, std::vector<published_event> storage)
      : now_ms(now), time(format_time(now)), emitted(std::move(storage)) {}
  std::int64_t now_ms;
  std::string time;  // now_ms as RFC 3339: the time of every follow-on event of the batch
  std::vector<published_event> emitted;
  bool writing = false;  // the current event has written something (see isolated())
  // Parked events per sender (the cap per key), each read once per batch when that sender parks.
  std::map<std::string, std::int64_t, std::less<>> parked_by_sender;
  // The rows every event writes, filled in place event after event: their strings keep their
  // buffers, so the batch's later events allocate for them only what outgrows those.
  history_record history;
  inbox_record inbox;
  // Fills `inbox` for the event's inbox row: its ack, encoded.
  const inbox_record& inbox_row(const event& e, std::string_view definition, std::string_view key,
                                const ack& a) {
    inbox.source.assign(e.source);
    inbox.event_id.assign(e.id);
    inbox.definition.assign(definition);
    inbox.key.assign(key);
    inbox.ack.clear();
    append_ack(inbox.ack, a);
    inbox.received_ms = now_ms;
    return inbox;
  }
};

// Per-definition facts computed once at registration.
struct engine::definition_entry {
  std::shared_ptr<const definition> def;
  std::string source;  // of its follow-on and timer events: engine_options::source or urn:saga:<name>
  // For each state: the event types some state reachable from it takes
  // (the parking rule: such an event waits instead of being ignored).
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> parkable;
};

struct engine::family {
  std::map<std::int64_t, const definition_entry*> versions;
  const definition_entry* newest() const { return versions.rbegin()->second; }
  const definition_entry* at(std::int64_t v) const {
    auto it = versions.find(v);
    return it == versions.end() ? nullptr : it->second;
  }
};

engine::engine(store& s, const clock& c, engine_options options)
    : store_(s), clock_(c), options_(std::move(options)), parsed_(std::make_unique<detail::parsed_data>()) {}

engine::~engine() = default;

void engine::log(log_level l, std::string_view msg) const {
  if (options_.log) options_.log(l, msg);
}

registration engine::add(std::shared_ptr<const definition> d) {
  if (!d) throw std::invalid_argument("engine::add: null definition");
  const graph& g = d->graph();
  auto same_name = by_name_.find(g.name);
  if (same_name != by_name_.end() && same_name->second->at(g.version) != nullptr)
    throw std::invalid_argument("definition '" + g.name + "' version " + std::to_string(g.version) +
                                " is already registered");
  auto problems = check_graph(g);
  if (!problems.empty()) {
    std::string all = "definition '" + g.name + "' is invalid: ";
    for (std::size_t i = 0; i < problems.size(); ++i) all += (i ? "; " : "") + problems[i];
    throw std::invalid_argument(all);
  }
  for (const auto& t : g.consumes) {
    if (t.starts_with(timer_prefix)) continue;  // timers are routed by their row, not by type
    if (auto it = by_type_.find(t); it != by_type_.end() && it->second->newest()->def->name() != g.name)
      throw std::invalid_argument("event type '" + t + "' is consumed by both '" +
                                  it->second->newest()->def->name() + "' and '" + g.name + "'");
  }

  auto entry = std::make_unique<definition_entry>();
  entry->def = d;
  entry->source = options_.source.empty() ? "urn:saga:" + g.name : options_.source;
  for (const auto& s : g.states) {
    auto& types = entry->parkable[s];
    for (const auto& r : reachable_from(g, s))
      for (const auto& row : g.rows)
        if (row.source == r) types.insert(row.event);
  }

  // Store the graph; report what changed since the stored version.
  registration report;
  report.name = g.name;
  report.version = g.version;
  report.fingerprint = g.fingerprint;
  within_transaction(store_, [&] {
    auto stored = store_.load_definition(g.name, g.version);
    if (stored && stored->fingerprint != g.fingerprint) {
      report.previous_fingerprint = stored->fingerprint;
      report.changes = diff_graphs(graph_from_json(json::parse(stored->graph)), g);
      log(log_level::warn, "definition '" + g.name + "' changed (" + stored->fingerprint + " -> " +
                               g.fingerprint + "): " + std::to_string(report.changes.size()) + " change(s)");
      for (const auto& c : report.changes) log(log_level::warn, "  " + c);
    }
    report.orphaned = store_.instances_outside(g.name, g.version, g.states);
    if (!report.orphaned.empty()) {
      std::string keys;
      for (std::size_t i = 0; i < report.orphaned.size() && i < 20; ++i)
        keys += (i ? ", " : "") + report.orphaned[i];
      log(log_level::warn, "definition '" + g.name + "': " + std::to_string(report.orphaned.size()) +
                               " instance(s) in a state it no longer has (left untouched): " + keys);
    }
    // Also when only what the graph records changed (a newer build records more, e.g. produces).
    const std::string graph_text = to_json(g).dump();
    if (!stored || stored->fingerprint != g.fingerprint || stored->graph != graph_text)
      store_.save_definition({g.name, g.version, g.fingerprint, graph_text, clock_.now_ms()});
  });

  const definition_entry* raw = entry.get();
  auto& fam = by_name_[g.name];
  if (!fam) {
    fam = std::make_unique<family>();
    names_.push_back(g.name);
  }
  fam->versions[g.version] = raw;
  for (const auto& t : g.consumes)
    if (!t.starts_with(timer_prefix)) by_type_[t] = fam.get();
  own_sources_.insert(raw->source);
  entries_.push_back(std::move(entry));
  return report;
}

const definition* engine::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second->newest()->def.get();
}

const definition* engine::find(std::string_view name, std::int64_t version) const {
  auto it = by_name_.find(name);
  const definition_entry* e = it == by_name_.end() ? nullptr : it->second->at(version);
  return e == nullptr ? nullptr : e->def.get();
}

std::vector<unserved_version> engine::unserved_versions() {
  return within_transaction(store_, [&] {
    std::vector<unserved_version> out;
    for (const auto& [name, fam] : by_name_) {
      // Counting unfinished sagas reads every instance: only when a version has sagas that no
      // registered one serves (the kept counts say so without reading them).
      const auto stored = store_.stored_versions(name);
      if (std::all_of(stored.begin(), stored.end(),
                      [&f = fam](std::int64_t v) { return f->at(v) != nullptr; }))
        continue;
      for (const auto& [version, sagas] : store_.running_versions(name))
        if (fam->at(version) == nullptr) out.push_back({name, version, sagas});
    }
    return out;
  });
}

std::vector<std::shared_ptr<const definition>> engine::definitions() const {
  std::vector<std::shared_ptr<const definition>> out;
  for (const auto& e : entries_) out.push_back(e->def);
  return out;
}

void engine::subscribe(std::string type_prefix, subscriber fn) {
  subscribers_.emplace_back(std::move(type_prefix), std::move(fn));
}

void engine::on_commit(commit_listener fn) {
  commit_listeners_.push_back(std::move(fn));
}

ack engine::handle(const event& e) {
  return handle_batch(std::span<const event>(&e, 1)).front();
}

// The sagas of a batch, locked in one order (store::lock_sagas) before it touches any of them.
template <class Range, class KeyOf>
void engine::lock_sagas(const Range& items, KeyOf&& key_of) {
  std::vector<std::string> keys;
  keys.reserve(items.size());
  for (const auto& item : items)
    if (const std::string* k = key_of(item)) keys.push_back(*k);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (!keys.empty()) store_.lock_sagas(keys);
}

std::vector<ack> engine::handle_batch(std::span<const event> events) {
  std::vector<ack> acks;
  isolated(
      [&] {
        lock_sagas(events, [](const event& e) { return &e.subject; });
        return events.size();
      },
      [&](std::size_t i, batch_state& b) { return process_external(events[i], b); },
      [&](std::size_t i, std::string reason, batch_state& b) {
        return reject(&events[i], nullptr, std::move(reason), b);
      },
      acks);
  return acks;
}

std::vector<ack> engine::handle_batch(std::span<const inbound> inputs) {
  std::vector<ack> acks;
  handle_batch(inputs, acks);
  return acks;
}

void engine::handle_batch(std::span<const inbound> inputs, std::vector<ack>& acks) {
  isolated(
      [&] {
        lock_sagas(inputs, [](const inbound& i) {
          const auto* e = std::get_if<event>(&i);
          return e != nullptr ? &e->subject : nullptr;
        });
        return inputs.size();
      },
      [&](std::size_t i, batch_state& b) {
        if (const auto* e = std::get_if<event>(&inputs[i])) return process_external(*e, b);
        const auto& bad = std::get<invalid_input>(inputs[i]);
        return reject(nullptr, &bad, bad.reason, b);
      },
      [&](std::size_t i, std::string reason, batch_state& b) {
        const auto* e = std::get_if<event>(&inputs[i]);
        return reject(e, e ? nullptr : &std::get<invalid_input>(inputs[i]), std::move(reason), b);
      },
      acks);
}

ack engine::set_aside(const inbound& input, std::string reason) {
  return transact([&](batch_state& b) {
    const auto* e = std::get_if<event>(&input);
    return reject(e, e ? nullptr : &std::get<invalid_input>(input), std::move(reason), b);
  });
}

// The host's transaction cannot be re-run, so every event gets a savepoint of its own here.
engine::joined engine::handle_in_transaction(std::span<const event> events) {
  if (!store_.in_transaction())
    throw std::logic_error("engine::handle_in_transaction: the host has not begun a transaction");
  batch_state b(clock_.now_ms(), {});
  joined j;
  lock_sagas(events, [](const event& e) { return &e.subject; });
  auto one = [&](std::size_t i, batch_state& bs) { return process_external(events[i], bs); };
  auto refuse = [&](std::size_t i, std::string reason, batch_state& bs) {
    return reject(&events[i], nullptr, std::move(reason), bs);
  };
  for (std::size_t i = 0; i < events.size(); ++i) j.acks.push_back(with_savepoint(b, i, one, refuse));
  j.emitted = std::move(b.emitted);
  return j;
}

void engine::committed(joined& j) {
  deliver(j.emitted);
  j.emitted.clear();
}

template <class Body>
auto engine::transact(Body&& body) -> decltype(body(std::declval<batch_state&>())) {
  batch_state b(clock_.now_ms(), std::move(emitted_storage_));
  store_.begin();
  try {
    auto result = body(b);
    store_.commit();
    deliver(b.emitted);
    keep_storage(b.emitted);
    return result;
  } catch (...) {
    store_.rollback();
    throw;
  }
}

// Per-event isolation (docs/reliability.md). Events run in one transaction
// without savepoints: most failures happen while an event is being decided,
// before its first write, and are rejected on the spot. A failure after a
// write (b.writing) rolls the batch back; it is run again with that event
// rejected up front, and from the third run on with a savepoint per event, so
// a batch is run at most three times whatever it holds. A store_error is no
// event's fault: it rolls the whole batch back and leaves (the caller retries).
template <class Prepare, class One, class Refuse>
void engine::isolated(Prepare&& prepare, One&& one, Refuse&& refuse, std::vector<ack>& acks) {
  const std::int64_t now = clock_.now_ms();
  std::map<std::size_t, std::string> offenders;  // index -> reason, found by earlier runs
  for (int run = 0;; ++run) {
    batch_state b(now, std::move(emitted_storage_));
    store_.begin();
    try {
      const std::size_t n = prepare();
      acks.clear();
      acks.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        if (auto it = offenders.find(i); it != offenders.end())
          acks.push_back(refuse(i, it->second, b));
        else if (run >= 2)
          acks.push_back(with_savepoint(b, i, one, refuse));
        else
          acks.push_back(optimistic(b, i, one, refuse));
      }
      store_.commit();
      deliver(b.emitted);
      keep_storage(b.emitted);
      return;
    } catch (const failed_after_write& f) {
      store_.rollback();
      log(log_level::warn, "event " + std::to_string(f.index + 1) +
                               " of a batch failed after its first write (" + f.reason +
                               "): the batch runs again without it");
      offenders.emplace(f.index, f.reason);
    } catch (...) {
      store_.rollback();
      throw;
    }
  }
}

template <class One, class Refuse>
ack engine::optimistic(batch_state& b, std::size_t i, One& one, Refuse& refuse) {
  const std::size_t mark = b.emitted.size();
  b.writing = false;
  try {
    return one(i, b);
  } catch (const store_error&) {
    throw;
  } catch (...) {
    std::string reason = reason_of_current_exception();
    if (b.writing) throw failed_after_write{i, std::move(reason)};
    b.emitted.resize(mark);
    return refuse(i, std::move(reason), b);
  }
}

template <class One, class Refuse>
ack engine::with_savepoint(batch_state& b, std::size_t i, One& one, Refuse& refuse) {
  const std::size_t mark = b.emitted.size();
  store_.savepoint();
  std::string reason;
  try {
    ack a = one(i, b);
    store_.release_savepoint();
    return a;
  } catch (const store_error&) {
    throw;
  } catch (...) {
    reason = reason_of_current_exception();
  }
  store_.rollback_to_savepoint();
  b.emitted.resize(mark);
  return refuse(i, std::move(reason), b);
}

// A batch's follow-on events go into the vector the last batch used: a 1,024-event batch's is
// about 700 KiB, and allocating and freeing it for every batch had glibc consolidate its free
// lists each time (docs/performance.md, fifth round). A vector grown by an unusually large batch
// is let go.
void engine::keep_storage(std::vector<published_event>& emitted) {
  constexpr std::size_t kept_max = 4096;
  emitted.clear();
  if (emitted.capacity() <= kept_max) emitted_storage_ = std::move(emitted);
}

// After the commit: nothing here may make a committed batch look failed.
void engine::deliver(std::vector<published_event>& emitted) {
  if (emitted.empty()) return;
  for (const auto& p : emitted) {
    for (const auto& [prefix, fn] : subscribers_) {
      if (!p.event.type.starts_with(prefix)) continue;
      try {
        fn(p);
      } catch (...) {
        log(log_level::error,
            "in-process subscriber failed on " + p.event.type + ": " + reason_of_current_exception());
      }
    }
  }
  for (const auto& fn : commit_listeners_) {
    try {
      fn(emitted);
    } catch (...) {
      log(log_level::error, "commit listener failed: " + reason_of_current_exception());
    }
  }
}

ack engine::process_external(const event& e, batch_state& b) {
  if (auto err = validate_event(e, options_.limits); !err.empty()) return reject(&e, nullptr, err, b);
  if (e.type.starts_with(timer_prefix))
    return reject(&e, nullptr, "attribute 'type': '" + e.type + "' is internal to the engine", b);
  // Timer firings and follow-on events carry these sources; an outside event
  // under them could take a timer's predictable id before it fires.
  if (own_sources_.contains(e.source))
    return reject(&e, nullptr,
                  "attribute 'source': '" + e.source +
                      "' is this engine's own namespace (its timers and follow-on events); "
                      "events from outside must use a source of their own",
                  b);
  return process(e, nullptr, b);
}

ack engine::reject(const event* e, const invalid_input* bad, std::string reason, batch_state& b) {
  ack a;
  a.status = ack_status::rejected;
  a.reason = reason;
  dead_letter_record dl;
  dl.reason = std::move(reason);
  dl.created_ms = b.now_ms;
  if (e != nullptr) {
    a.id = e->id;
    a.source = e->source;
    dl.event_id = e->id;
    dl.source = e->source;
    dl.type = e->type;
    dl.subject = e->subject;
    dl.sender = e->sender;
    try {
      dl.payload = truncate(encode_event(*e), dl.truncated);
    } catch (const std::exception& ex) {  // e.g. invalid UTF-8 handed in through the embedding API
      dl.reason += std::string(" (payload not kept: ") + ex.what() + ")";
    }
  } else if (bad != nullptr) {
    a.id = bad->id;
    a.source = bad->source;
    dl.event_id = bad->id;
    dl.source = bad->source;
    dl.payload = truncate(bad->raw, dl.truncated);
    dl.sender = bad->sender;
    dl.type = bad->type;
    dl.subject = bad->subject;
  }
  dl.last_ms = dl.created_ms;
  b.writing = true;
  store_.add_dead_letter(dl);
  log(log_level::debug, "rejected " + (a.id.empty() ? std::string("(unparsed input)") : a.id) +
                            (e != nullptr ? trace_note(e->traceparent) : std::string()) + ": " + a.reason);
  return a;
}

dispatch_output engine::dispatch(const definition& d, std::string_view state, const json* data,
                                 const event& e, std::int64_t now_ms) {
  try {
    return d.dispatch({state, data, e, now_ms});
  } catch (const std::exception& ex) {
    throw event_rejected(std::string("definition '") + d.name() + "' could not apply '" + e.type +
                         "': " + ex.what());
  } catch (...) {
    throw event_rejected(std::string("definition '") + d.name() + "' could not apply '" + e.type +
                         "': an exception that is not a std::exception");
  }
}

ack engine::process(const event& e, const family* target, batch_state& b) {
  if (auto stored = store_.find_ack(e.source, e.id)) {
    ack a = ack_from_json(parse_json(*stored));
    a.status = ack_status::duplicate;
    return a;
  }
  if (e.type.starts_with(operator_prefix)) return process_operator(e, b);

  const family* fam = target;
  if (fam == nullptr) {
    auto it = by_type_.find(e.type);
    if (it == by_type_.end())
      return reject(&e, nullptr, "attribute 'type': no definition consumes '" + e.type + "'", b);
    fam = it->second;
  }
  const std::string& key = e.subject;
  auto inst = store_.load_instance(fam->newest()->def->name(), key);
  // A running saga stays on the version it started on; a new one starts on the newest.
  const definition_entry* entry = inst ? fam->at(inst->definition_version) : fam->newest();
  if (entry == nullptr) return reject(&e, nullptr, version_not_run(*inst), b);
  const definition& d = *entry->def;
  // Timer firings come with their saga's trace (fire_due_timers); an outside event without one
  // starts a new trace here, which its history row, parking and follow-on events all share.
  const trace_context trace = trace_of(e);

  ack a;
  a.id = e.id;
  a.source = e.source;
  a.status = ack_status::accepted;
  a.saga_type = d.name();
  a.saga_id = key;
  // The inbox row, holding the ack, is the event's last write.
  auto answer = [&](ack_outcome o, std::string state) {
    a.outcome = o;
    a.saga_state = std::move(state);
    b.writing = true;
    store_.insert_inbox(b.inbox_row(e, d.name(), key, a));
    return std::move(a);  // answered once: each path returns what answer() returns
  };

  if (!inst && !d.graph().starts_with(e.type)) {
    park(*entry, key, nullptr, e, trace, b);
    return answer(ack_outcome::parked, {});
  }

  const std::string state = inst ? inst->state : d.graph().initial;
  json data;
  if (inst) data = parsed_->take(*inst);
  // Another version of the definition takes this type, the saga's does not (looked up only when
  // the name has several versions: one version takes every type routed to it).
  const bool versions_differ =
      fam->versions.size() > 1 && !e.type.starts_with(timer_prefix) && !d.graph().consumes_type(e.type);
  // event_rejected from dispatch: see isolated()
  auto out = versions_differ ? dispatch_output{} : dispatch(d, state, inst ? &data : nullptr, e, b.now_ms);
  if (!out.handled) {
    if (parkable(*entry, state, e.type)) {
      park(*entry, key, inst ? &*inst : nullptr, e, trace, b);
      return answer(ack_outcome::parked, inst ? inst->state : std::string());
    }
    if (inst) record_history(d, *inst, e, trace, state, state, "ignored", b);
    return answer(ack_outcome::ignored, inst ? inst->state : std::string());
  }

  return answer(ack_outcome::transitioned,
                transition(*entry, key, inst ? &*inst : nullptr, data, e, trace, out, b));
}

// An outside event's transition: applied, parked events tried again, and the data document kept
// for the saga's next event (unless a parked event moved it on). Returns the state it ends in.
std::string engine::transition(const definition_entry& entry, const std::string& key, instance_record* inst,
                               json& data, const event& e, const trace_context& trace, dispatch_output& out,
                               batch_state& b) {
  instance_record rec = apply(entry, key, inst, inst ? &data : nullptr, e, trace, out, b);
  const std::int64_t saved = rec.version;
  retry_parked(entry, rec, b);
  if (rec.version == saved)
    parsed_->keep(entry.def->name(), key, rec.version, std::move(rec.data), std::move(out.data));
  return std::move(rec.state);
}

bool engine::parkable(const definition_entry& entry, std::string_view state, std::string_view type) const {
  auto it = entry.parkable.find(state);
  return it != entry.parkable.end() && it->second.contains(type);
}

void engine::park(const definition_entry& entry, const std::string& key, const instance_record* inst,
                  const event& e, const trace_context& trace, batch_state& b) {
  const definition& d = *entry.def;
  const auto count = store_.count_parked(d.name(), key);
  if (count >= static_cast<std::int64_t>(options_.park_limit))
    throw event_rejected("saga '" + d.name() + "/" + key + "' already has " + std::to_string(count) +
                         " parked events (the limit)");
  auto held = b.parked_by_sender.find(e.sender);
  if (held == b.parked_by_sender.end())
    held = b.parked_by_sender.emplace(e.sender, store_.count_parked_by_sender(e.sender)).first;
  if (held->second >= options_.park_total_limit) {
    if (e.sender.empty())
      throw event_rejected("the engine already holds " + std::to_string(held->second) +
                           " parked events of all sagas (the total limit)");
    throw event_rejected("key '" + e.sender + "' already holds " + std::to_string(held->second) +
                         " parked events (the limit per key)");
  }
  parked_record p;
  p.definition = d.name();
  p.key = key;
  p.event_id = e.id;
  p.source = e.source;
  p.type = e.type;
  if (e.traceparent == trace.traceparent) {
    p.payload = encode_event(e);
  } else {  // the trace the engine started for it: the same one when the parked event applies
    event traced = e;
    traced.traceparent = trace.traceparent;
    traced.tracestate = trace.tracestate;
    p.payload = encode_event(traced);
  }
  p.parked_ms = b.now_ms;
  p.sender = e.sender;
  b.writing = true;
  store_.park(p);
  ++held->second;
  if (inst) record_history(d, *inst, e, trace, inst->state, inst->state, "parked", b);
}

void engine::record_history(const definition& d, const instance_record& inst, const event& e,
                            const trace_context& trace, const std::string& from, const std::string& to,
                            std::string_view outcome, batch_state& b,
                            std::optional<std::int64_t> outbox_first,
                            std::optional<std::int64_t> outbox_last) {
  history_record& h = b.history;  // every field set: it holds the batch's previous row
  h.definition.assign(d.name());
  h.key.assign(inst.key);
  h.version = inst.version;
  h.event_id.assign(e.id);
  h.event_source.assign(e.source);
  h.event_type.assign(e.type);
  h.event_time.assign(e.time);
  h.event_data.clear();
  append_json(h.event_data, e.data);
  h.from_state.assign(from);
  h.to_state.assign(to);
  h.outcome.assign(outcome);
  h.recorded_ms = b.now_ms;
  h.definition_version = d.graph().version;
  h.outbox_first = outbox_first;
  h.outbox_last = outbox_last;
  h.sender.assign(e.sender);
  h.traceparent.assign(trace.traceparent);
  h.tracestate.assign(trace.tracestate);
  h.extensions.clear();
  if (e.extensions.is_object() && !e.extensions.empty()) h.extensions = e.extensions.dump();
  b.writing = true;
  store_.append_history(h);
}

instance_record engine::apply(const definition_entry& entry, const std::string& key, instance_record* inst,
                              const json* data, const event& e, const trace_context& trace,
                              dispatch_output& out, batch_state& b, std::string_view outcome) {
  const definition& d = *entry.def;
  instance_record rec;
  if (inst) {
    rec = std::move(*inst);
  } else {
    rec.definition = d.name();
    rec.key = key;
    rec.correlation_id = e.id;
    rec.created_ms = b.now_ms;
    rec.state_since_ms = b.now_ms;
    rec.state = d.graph().initial;
  }
  const std::string from = rec.state;
  rec.version += 1;
  if (out.state != rec.state) rec.state_since_ms = b.now_ms;
  rec.state = std::move(out.state);
  rec.finished = d.graph().is_terminal(rec.state);
  if (inst == nullptr || data == nullptr || !identical(out.data, *data)) {
    rec.data.clear();
    append_json(rec.data, out.data);
  }
  rec.fingerprint = d.graph().fingerprint;
  rec.definition_version = d.graph().version;
  rec.updated_ms = b.now_ms;
  b.writing = true;
  store_.save_instance(rec);

  // The follow-on events first: the history row records which outbox rows they became.
  std::optional<std::int64_t> first, last;
  for (auto& em : out.intents.emits) {
    published_event p;
    p.event.id = make_uuid_v7(b.now_ms);
    p.event.source = entry.source;
    p.event.type = std::move(em.type);
    p.event.subject = key;
    p.event.time = b.time;
    p.event.data = std::move(em.data);
    p.event.causationid = e.id;
    p.event.correlationid = rec.correlation_id;
    p.event.traceparent = child_traceparent(trace.traceparent);  // the same trace, a span of its own
    p.event.tracestate = trace.tracestate;
    outbox_record o;
    o.event_id = p.event.id;
    o.type = p.event.type;
    o.definition = d.name();
    o.key = key;
    o.payload = encode_event(p.event);
    o.created_ms = b.now_ms;
    p.sequence = store_.append_outbox(o);
    o.sequence = p.sequence;
    p.record = std::move(o);
    if (!first) first = p.sequence;
    last = p.sequence;
    b.emitted.push_back(std::move(p));
  }
  record_history(d, rec, e, trace, from, rec.state, outcome, b, first, last);
  for (const auto& t : out.intents.timers) {
    if (t.arm)
      store_.arm_timer(d.name(), key, t.name, t.due_ms);
    else
      store_.disarm_timer(d.name(), key, t.name);
  }
  return rec;
}

// After a transition, parked events are tried again in arrival order until
// none applies; those no reachable state takes any more become ignored.
void engine::retry_parked(const definition_entry& entry, instance_record& rec, batch_state& b) {
  const definition& d = *entry.def;
  bool progressed = true;
  while (progressed) {
    progressed = false;
    const auto parked = store_.parked_of(d.name(), rec.key);
    if (parked.empty()) return;
    const json data = parse_json(rec.data);  // rec changes only when a parked event applies
    for (const auto& p : parked) {
      auto decoded = decode_event(p.payload, limits{SIZE_MAX, 1 << 20});
      if (!decoded) {  // stored by another version, or damaged: kept, with the reason, not lost
        store_.remove_parked(p.id);
        invalid_input bad{
            p.payload,
            "parked event of saga '" + d.name() + "/" + rec.key + "' no longer decodes: " + decoded.error,
            p.event_id,
            p.source,
            p.sender,
            p.type,
            rec.key};
        reject(nullptr, &bad, bad.reason, b);
        continue;
      }
      decoded.event->sender = p.sender;
      const event& e = *decoded.event;
      const trace_context trace = trace_of(e);  // parked with one, but perhaps by an older version
      if (!d.graph().consumes_type(e.type)) {   // parked under a version that took it (migrated since)
        store_.remove_parked(p.id);
        record_history(d, rec, e, trace, rec.state, rec.state, "ignored", b);
        continue;
      }
      dispatch_output out;
      try {
        out = dispatch(d, rec.state, &data, e, b.now_ms);
      } catch (const event_rejected& ex) {
        // Its data never fitted the definition: out of the parking, into the dead letters.
        store_.remove_parked(p.id);
        record_history(d, rec, e, trace, rec.state, rec.state, "rejected", b);
        reject(&e, nullptr, ex.what(), b);
        continue;
      }
      if (out.handled) {
        store_.remove_parked(p.id);
        const std::string key = rec.key;  // rec is moved into apply
        rec = apply(entry, key, &rec, &data, e, trace, out, b);
        progressed = true;
        break;
      }
      if (!parkable(entry, rec.state, e.type)) {
        store_.remove_parked(p.id);
        record_history(d, rec, e, trace, rec.state, rec.state, "ignored", b);
      }
    }
  }
}

ack engine::process_operator(const event& e, batch_state& b) {
  const std::string action(e.type.substr(operator_prefix.size()));
  if (action != "abort" && action != "resolve" && action != "migrate")
    return reject(&e, nullptr, "attribute 'type': unknown operator action '" + e.type + "'", b);
  if (auto problem = operator_field_problem(e.data); !problem.empty())
    return reject(&e, nullptr, std::move(problem), b);

  // Which saga: data.saga_type names the definition; without it the key must
  // belong to exactly one definition's saga.
  const family* fam = nullptr;
  std::optional<instance_record> inst;
  const std::string wanted = e.data.value("saga_type", std::string());
  for (const auto& [name, candidate] : by_name_) {
    if (!wanted.empty() && name != wanted) continue;
    if (auto found = store_.load_instance(name, e.subject)) {
      if (inst)
        return reject(&e, nullptr,
                      "subject '" + e.subject + "' names sagas of several definitions; set data.saga_type",
                      b);
      inst = std::move(found);
      fam = candidate.get();
    }
  }
  if (!inst) return reject(&e, nullptr, "no saga with id '" + e.subject + "'", b);
  if (action == "migrate") return process_migrate(e, *fam, *inst, b);
  const definition_entry* entry = fam->at(inst->definition_version);
  if (entry == nullptr)
    return reject(&e, nullptr,
                  "saga runs on version " + std::to_string(inst->definition_version) +
                      " of its definition, which this engine does not run",
                  b);
  const definition& d = *entry->def;
  const graph& g = d.graph();

  std::string to;
  if (action == "abort") {
    if (g.abort_state.empty())
      return reject(&e, nullptr, "definition '" + d.name() + "' has no abort state", b);
    if (g.is_terminal(inst->state))
      return reject(&e, nullptr, "saga is in terminal state '" + inst->state + "': nothing to abort", b);
    to = g.abort_state;
  } else {
    to = e.data.value("to", std::string());
    if (g.attention_state.empty() || inst->state != g.attention_state)
      return reject(&e, nullptr,
                    "resolve applies only to a saga in '" +
                        (g.attention_state.empty() ? std::string("(none)") : g.attention_state) +
                        "', this one is in '" + inst->state + "'",
                    b);
    if (std::find(g.resolution_targets.begin(), g.resolution_targets.end(), to) == g.resolution_targets.end())
      return reject(&e, nullptr, "data 'to': '" + to + "' is not a resolution target of '" + d.name() + "'",
                    b);
  }

  json data = parse_json(inst->data);
  dispatch_output out;
  try {
    out = d.operator_action({inst->state, &data, e, b.now_ms}, action, to);
  } catch (const std::exception& ex) {
    return reject(&e, nullptr, std::string("operator action failed: ") + ex.what(), b);
  }
  out.handled = true;
  // Without a trace of its own, the action continues the saga's.
  const trace_context trace =
      trace_of(e, e.traceparent.empty() ? store_.saga_trace(d.name(), e.subject) : trace_context{});
  instance_record rec = apply(*entry, e.subject, &*inst, &data, e, trace, out, b);
  retry_parked(*entry, rec, b);
  return accepted(e, d.name(), ack_outcome::transitioned, rec.state, b);
}

// An operator's answer, kept in the inbox as the event's last write.
ack engine::accepted(const event& e, const std::string& name, ack_outcome o, std::string state,
                     batch_state& b) {
  ack a;
  a.id = e.id;
  a.source = e.source;
  a.status = ack_status::accepted;
  a.outcome = o;
  a.saga_type = name;
  a.saga_id = e.subject;
  a.saga_state = std::move(state);
  b.writing = true;
  store_.insert_inbox(b.inbox_row(e, name, e.subject, a));
  return a;
}

// saga.operator.migrate: the saga moves onto data.version through that version's migration
// (graph::migrated_state, definition::migrate); timers the new version does not name are disarmed.
// A saga already on it is left alone (ignored), so that a migration run again moves nobody twice.
ack engine::process_migrate(const event& e, const family& f, const instance_record& inst, batch_state& b) {
  const auto v = e.data.find("version");
  if (v == e.data.end() || !v->is_number_integer())
    return reject(&e, nullptr, "data 'version': must be an integer (the version to migrate to)", b);
  const std::int64_t to_version = v->get<std::int64_t>();
  const definition_entry* entry = f.at(to_version);
  const std::string& name = inst.definition;
  if (entry == nullptr)
    return reject(
        &e, nullptr,
        "data 'version': version " + std::to_string(to_version) + " of '" + name + "' is not registered", b);
  if (inst.definition_version == to_version) return accepted(e, name, ack_outcome::ignored, inst.state, b);
  const std::string from = std::to_string(inst.definition_version);
  if (inst.definition_version > to_version)
    return reject(&e, nullptr, "saga is on version " + from + ": migrations only go forward", b);
  if (inst.finished)
    return reject(&e, nullptr, "saga has finished (in '" + inst.state + "'): nothing to migrate", b);
  const definition& d = *entry->def;
  const graph& g = d.graph();
  if (g.migration_from(inst.definition_version) == nullptr)
    return reject(&e, nullptr,
                  "version " + std::to_string(to_version) + " of '" + name +
                      "' declares no migration from version " + from,
                  b);
  const std::string to = g.migrated_state(inst.definition_version, inst.state);
  if (to.empty())
    return reject(&e, nullptr,
                  "state '" + inst.state + "' of version " + from + " has no mapping in version " +
                      std::to_string(to_version) + "'s migration",
                  b);
  json data = parse_json(inst.data);
  dispatch_output out;
  try {
    out = d.migrate({inst.state, &data, e, b.now_ms}, inst.definition_version, to);
  } catch (const std::exception& ex) {
    return reject(&e, nullptr, std::string("migration failed: ") + ex.what(), b);
  }
  out.handled = true;
  for (const auto& t : store_.timers_of(name, e.subject))
    if (std::find(g.timers.begin(), g.timers.end(), t.name) == g.timers.end())
      out.intents.timers.push_back({t.name, false, 0});
  const trace_context trace =
      trace_of(e, e.traceparent.empty() ? store_.saga_trace(name, e.subject) : trace_context{});
  instance_record migrating = inst;  // moved into apply
  instance_record rec = apply(*entry, e.subject, &migrating, &data, e, trace, out, b, "migrated");
  retry_parked(*entry, rec, b);
  return accepted(e, name, ack_outcome::transitioned, rec.state, b);
}

std::vector<fired_timer> engine::fire_due_timers(std::int64_t now_ms, std::size_t limit) {
  std::vector<timer_record> due;
  std::vector<event> events;
  std::vector<ack> acks;
  isolated(
      [&] {
        due = store_.due_timers(now_ms, limit, names_);
        claim(due, now_ms);
        events.clear();
        for (const auto& t : due) {
          const auto inst = store_.load_instance(t.definition, t.key);
          events.push_back(timer_event(t, inst ? inst->correlation_id : std::string()));
          // A firing continues the trace of the saga's newest history row (docs/architecture.md).
          const auto trace = trace_of(events.back(), store_.saga_trace(t.definition, t.key));
          events.back().traceparent = trace.traceparent;
          events.back().tracestate = trace.tracestate;
        }
        return due.size();
      },
      [&](std::size_t i, batch_state& b) {
        const auto& t = due[i];
        store_.disarm_timer(t.definition, t.key, t.name);  // before dispatch: an action may re-arm it
        return process(events[i], by_name_.find(t.definition)->second.get(), b);
      },
      [&](std::size_t i, std::string reason, batch_state& b) {
        // Disarmed, so that a firing that fails is kept once and not retried forever.
        store_.disarm_timer(due[i].definition, due[i].key, due[i].name);
        return reject(&events[i], nullptr, "timer '" + due[i].name + "': " + reason, b);
      },
      acks);
  std::vector<fired_timer> fired;
  fired.reserve(due.size());
  for (std::size_t i = 0; i < due.size(); ++i) fired.push_back({due[i], std::move(acks[i])});
  return fired;
}

// Keeps the due timers this engine may fire now: their sagas locked without waiting (another
// writer busy with a saga keeps its timers for a later round), and each still armed with the
// generation and due time read (another writer may have fired it, and re-armed it, between the
// read and the lock: disarming the new one would lose it).
void engine::claim(std::vector<timer_record>& due, std::int64_t now_ms) {
  if (due.empty()) return;
  std::vector<std::string> keys;
  for (const auto& t : due) keys.push_back(t.key);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  auto locked = store_.try_lock_sagas(keys);
  std::sort(locked.begin(), locked.end());
  std::erase_if(due, [&](const timer_record& t) {
    if (!std::binary_search(locked.begin(), locked.end(), t.key)) return true;
    for (const auto& now : store_.timers_of(t.definition, t.key))
      if (now.name == t.name) return now.generation != t.generation || now.due_ms > now_ms;
    return true;  // disarmed meanwhile
  });
}

// A timer's firing: its id derives from the saga, the timer and its
// generation, so firing twice is a duplicate and a re-armed timer is new. The
// id of the event that started the saga ends it: a saga purged and started
// again under the same key counts its timers from 1 again, and must not meet
// its predecessor's firings in the inbox.
event engine::timer_event(const timer_record& t, const std::string& started_by) const {
  event e;
  e.id = "timer:" + t.definition + ":" + t.key + ":" + t.name + ":" + std::to_string(t.generation);
  if (!started_by.empty()) e.id += "@" + started_by;
  e.source = by_name_.find(t.definition)->second->newest()->source;
  e.type = std::string(timer_prefix) + t.name;
  e.subject = t.key;
  e.time = format_time(t.due_ms);
  e.data = {{"timer", t.name}, {"due", e.time}, {"generation", t.generation}};
  return e;
}

std::vector<std::pair<std::string, std::int64_t>> engine::unregistered_due_timers(std::int64_t now_ms) {
  return store_.due_timers_elsewhere(now_ms, names_);
}

engine::pruned engine::prune(std::int64_t now_ms, std::size_t limit) {
  return transact([&](batch_state&) {
    pruned p;
    p.dead_letters = store_.prune_dead_letters(now_ms - options_.dead_letter_retention_ms,
                                               options_.dead_letter_max, limit);
    if (options_.finished_retention_ms > 0)
      p.finished_sagas = purge_finished_in_transaction(now_ms - options_.finished_retention_ms, limit);
    return p;
  });
}

std::int64_t engine::purge_finished(std::int64_t before_ms, std::size_t limit) {
  return transact([&](batch_state&) { return purge_finished_in_transaction(before_ms, limit); });
}

std::int64_t engine::purge_finished_in_transaction(std::int64_t before_ms, std::size_t limit) {
  std::int64_t removed = 0;
  for (const auto& entry : entries_) {
    if (static_cast<std::size_t>(removed) >= limit) break;
    const graph& g = entry->def->graph();
    // A saga in the attention state waits for an operator's resolve: unfinished work, never purged.
    std::vector<std::string> finished;
    for (const auto& t : g.terminal)
      if (t != g.attention_state) finished.push_back(t);
    removed += store_.purge_finished(g.name, finished, before_ms, limit - static_cast<std::size_t>(removed));
  }
  return removed;
}

std::size_t engine::expire_parked(std::int64_t now_ms, std::size_t limit) {
  return transact([&](batch_state& b) {
    std::size_t moved = 0;
    for (const auto& p : store_.orphaned_parked(now_ms - options_.park_expiry_ms, limit)) {
      dead_letter_record dl;
      dl.event_id = p.event_id;
      dl.source = p.source;
      dl.type = p.type;
      dl.subject = p.key;
      dl.reason = "parked for saga '" + p.definition + "/" + p.key + "', which never started";
      dl.payload = p.payload;
      dl.sender = p.sender;
      dl.created_ms = b.now_ms;
      dl.last_ms = dl.created_ms;
      store_.add_dead_letter(dl);
      store_.remove_parked(p.id);
      ++moved;
    }
    return moved;
  });
}

}  // namespace saga
