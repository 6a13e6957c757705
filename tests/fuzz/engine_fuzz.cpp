// libFuzzer target through the engine (issue 11, "How it is tested").
//
// Each input is a small program of operations, read byte by byte (a missing
// byte reads as 0, so every input is a valid program):
//
//   op % 8 in 0..3  an event: [type][key][source][id][flags][mutation...]
//                   type    index into the catalogue: every type every
//                           registered definition consumes (its graph,
//                           timers included), then saga.operator.abort,
//                           saga.operator.resolve, saga.operator.x,
//                           saga.timer.unknown, unknown.type
//                   key     one of a few subjects
//                   source  test sources, the engine's own urn:saga:<def>,
//                           an empty one
//                   id      "e<n>" (few ids: duplicates), or >= 200 a forged
//                           timer id "timer:<def>:<key>:<timer>:<generation>"
//                           (and "@e<n>", the id of the event that started it)
//                   flags   bits 0-2: how many data fields to replace with a
//                           type-confused value ([field][value...] each);
//                           3: a valid `time`; 4: causation/correlation ids;
//                           5: data not an object; 6: invalid UTF-8 in the
//                           subject; 7: a control character in the id
//                   The data starts as what the type needs to be accepted,
//                   so that mutations reach deep states.
//   op % 8 == 4     flush: handle_batch on the pending inputs (at most 64
//                   pend; they are flushed then anyway); [mode] bit 0: the
//                   event overload when every pending input is an event
//   op % 8 == 5     advance the manual clock: [step] (seconds to weeks, back
//                   by an hour, or 4 bytes of ms), then fire_due_timers until
//                   none is due
//   op % 8 == 6     raw text: [len][bytes...] through decode_event, pending as
//                   the event or as invalid_input
//   op % 8 == 7     housekeeping: prune, expire_parked, purge_finished
//   op == 0x83      (instead of an event) corrupt what the store holds for a
//                   key: [what][key] a saga's data made invalid JSON or
//                   wrongly typed JSON, or a parked payload made undecodable
//                   (its saga data failing to deserialise and a parked event
//                   that no longer decodes must reject one event, not stop)
//
// The pending inputs are flushed at the end. The engine runs on a real
// saga::sqlite::store in a temporary folder, with one engine, created once per
// process; each input starts from empty tables (rows deleted, definitions
// kept) and the clock at 2026-01-01. The harness abort()s on:
//   - any exception leaving the engine (handle_batch, fire_due_timers,
//     prune, expire_parked, purge_finished);
//   - a batch whose acks are not one per input, an ack whose id/source is not
//     its event's, a rejection without a reason, an accepted ack without an
//     outcome, an event accepted again after its (source, id) was accepted;
//   - a stored instance of an unknown definition or in a state that is not in
//     its definition's graph, an armed timer without its saga, more parked
//     events than the caps allow, or more dead letters than the cap after
//     pruning (read from the SQLite file directly).

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/codec.hpp"
#include "saga/definitions/catalog.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"

namespace {

using json = nlohmann::json;

constexpr std::int64_t start_ms = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::size_t max_pending = 64;
constexpr std::size_t park_limit = 4;
constexpr std::int64_t park_total_limit = 12;
constexpr std::int64_t dead_letter_max = 16;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "engine_fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Reads the input byte by byte; past its end every byte is 0.
class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool more() const { return pos_ < size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
    return v;
  }
  std::uint64_t u64() { return (static_cast<std::uint64_t>(u32()) << 32) | u32(); }
  std::string bytes(std::size_t n) {
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The rig: a store in a temporary folder, for the whole process.

struct rig {
  std::string dir;
  std::unique_ptr<saga::sqlite::store> store;
  std::vector<std::shared_ptr<const saga::definition>> defs;
  std::vector<std::string> types;   // the catalogue the `type` byte indexes
  std::vector<std::string> tables;  // emptied before each input
  saga::manual_clock clock{start_ms};
  std::unique_ptr<saga::engine> engine;

  rig() {
    // A real file, in memory-backed /dev/shm when there is one: the target checks the
    // engine's logic, not the disk, and every input runs several transactions.
    const char* base = std::getenv("SAGA_ENGINE_FUZZ_DIR");
    if (base == nullptr) base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/saga-engine-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) fail("mkdtemp in " + std::string(base) + " failed");
    dir = tmpl;
    saga::sqlite::options o;
    o.path = dir + "/engine.db";
    o.synchronous = "OFF";  // durability is not what this target checks
    o.background_checkpoint = false;
    store = std::make_unique<saga::sqlite::store>(o);
    // One process uses the file: no file locks per transaction.
    store->database().exec("PRAGMA locking_mode = EXCLUSIVE");
    for (const auto& name : saga::definitions::names()) defs.push_back(saga::definitions::by_name(name));
    for (const auto& d : defs)
      for (const auto& t : d->graph().consumes) types.push_back(t);
    for (const char* t : {"saga.operator.abort", "saga.operator.resolve", "saga.operator.x",
                          "saga.timer.unknown", "unknown.type"})
      types.emplace_back(t);
    SQLite::Statement q(store->database(),
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN "
                        "('definitions', 'meta') AND name NOT LIKE 'sqlite_%'");
    while (q.executeStep()) tables.push_back(q.getColumn(0).getString());
    // One engine for the run: it keeps no per-saga state between batches (the store does), and
    // registering three definitions per input would cost more than the input itself.
    saga::engine_options opts;
    opts.park_limit = park_limit;
    opts.park_total_limit = park_total_limit;
    opts.dead_letter_max = dead_letter_max;
    opts.dead_letter_retention_ms = 3600'000;
    opts.finished_retention_ms = 2 * 3600'000;
    engine = std::make_unique<saga::engine>(*store, clock, opts);
    for (const auto& d : defs) engine->add(d);
  }

  // One transaction for all the tables: a commit per table would cost more than most inputs.
  void reset() {
    SQLite::Transaction tx(store->database());
    for (const auto& t : tables) store->database().exec("DELETE FROM \"" + t + "\"");
    tx.commit();
    store->forget_kept_saga_rows();  // written behind the store's back, on its own connection
  }
};

rig& the_rig() {
  static rig* r = [] {
    auto* made = new rig;  // never destroyed: libFuzzer may exit() at any time
    static const std::string dir = made->dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return made;
  }();
  return *r;
}

// ---------------------------------------------------------------------------------------------
// Inputs

const std::vector<std::string> keys = {"k0", "k1", "k2", "order-42", "k \"quoted\" \\", ""};
const std::vector<std::string> sources = {"urn:test:a",
                                          "urn:test:a",
                                          "urn:test:b",
                                          "urn:saga:order_lifecycle",
                                          "urn:saga:payment_notice",
                                          "urn:saga:account_lockout",
                                          "urn:saga:other",
                                          ""};
const std::vector<std::string> fields = {"order_id",  "amount",    "currency", "customer_id", "items",
                                         "notice_id", "policy_id", "due",      "saga_type",   "to",
                                         "reason",    "operator",  "timer",    "generation",  "x"};

const saga::definition* owner_of(const rig& r, const std::string& type) {
  for (const auto& d : r.defs)
    if (d->graph().consumes_type(type)) return d.get();
  return nullptr;
}

std::string due_text(std::int64_t ms) {
  return saga::format_time(ms);
}

// What the type needs to be accepted (the happy path), before mutations.
json base_data(const rig& r, const std::string& type, const std::string& key, std::uint8_t hint) {
  if (type == "order.placed")
    return {{"order_id", key},
            {"amount", 1250},
            {"currency", "EUR"},
            {"customer_id", "c1"},
            {"items", json::array()}};
  if (type == "payment_notice.created")
    return {{"policy_id", "p1"},
            {"amount", 900},
            {"currency", "EUR"},
            {"due", due_text(start_ms + 3600'000LL * (1 + hint % 48))}};
  if (type == "saga.operator.abort" || type == "saga.operator.resolve") {
    json d = {{"saga_type", r.defs[hint % r.defs.size()]->name()}, {"reason", "fuzz"}, {"operator", "ops"}};
    if (type == "saga.operator.resolve") d["to"] = (hint & 0x10) ? "done" : "cancelled";
    return d;
  }
  return json::object();
}

json deep(int depth, bool arrays) {
  json v = 1;
  for (int i = 0; i < depth; ++i) v = arrays ? json::array({v}) : json{{"a", v}};
  return v;
}

// A type-confused value.
json value(reader& in, const rig& r) {
  switch (in.byte() % 32) {
    case 0:
      return nullptr;
    case 1:
      return true;
    case 2:
      return false;
    case 3:
      return 0;
    case 4:
      return -1;
    case 5:
      return std::numeric_limits<std::int64_t>::max();
    case 6:
      return std::numeric_limits<std::int64_t>::min();
    case 7:
      return std::numeric_limits<std::uint64_t>::max();
    case 8:
      return 1.5;
    case 9:
      return 1e300;
    case 10:
      return -1e300;
    case 11:
      return std::numeric_limits<double>::quiet_NaN();
    case 12:
      return std::numeric_limits<double>::infinity();
    case 13:
      return "";
    case 14:
      return "EUR";
    case 15:
      return due_text(start_ms + 60'000);
    case 16:
      return "2026-13-45T99:99:99Z";
    case 17:
      return std::string(70'000, 'x');  // over the event size limit
    case 18:
      return std::string(3000, 'y');
    case 19:
      return std::string("\xc3\x28", 2);  // invalid UTF-8
    case 20:
      return std::string("a\0b", 3);
    case 21:
      return json::array();
    case 22:
      return json::array({1, "a", nullptr, json::object()});
    case 23:
      return json::object();
    case 24:
      return deep(in.byte() % 48, false);
    case 25:
      return deep(in.byte() % 48, true);
    case 26:
      return in.bytes(in.byte() % 32);  // arbitrary bytes
    case 27:
      return static_cast<std::int64_t>(in.u64());
    case 28: {
      const std::uint64_t bits = in.u64();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    case 29:
      return keys[in.byte() % keys.size()];
    case 30: {
      static const char* states[] = {"cancelled", "done", "needs_attention", "open", "placed",
                                     "new",       "nope", "lapsed"};
      return states[in.byte() % 8];
    }
    default: {
      const auto i = in.byte();
      return i < r.defs.size() * 40 ? json(r.defs[i % r.defs.size()]->name()) : json("no_such_definition");
    }
  }
}

saga::event make_event(reader& in, const rig& r) {
  saga::event e;
  e.type = r.types[in.byte() % r.types.size()];
  e.subject = keys[in.byte() % keys.size()];
  e.source = sources[in.byte() % sources.size()];
  const std::uint8_t id = in.byte();
  if (id < 200) {
    e.id = "e" + std::to_string(id);
  } else {
    // A forged timer id, as the engine derives them.
    const saga::definition* d = owner_of(r, e.type);
    if (d == nullptr) d = r.defs[id % r.defs.size()].get();
    const auto& timers = d->graph().timers;
    const std::string timer = e.type.starts_with("saga.timer.")
                                  ? e.type.substr(11)
                                  : (timers.empty() ? "t" : timers[id % timers.size()]);
    e.id = "timer:" + d->name() + ":" + e.subject + ":" + timer + ":" + std::to_string((id - 200) / 2);
    if (id & 1) e.id += "@e" + std::to_string(id % 4);  // the engine appends the starting event's id
  }
  const std::uint8_t flags = in.byte();
  e.data = base_data(r, e.type, e.subject, in.byte());
  for (int m = 0; m < (flags & 7); ++m) {
    const auto f = in.byte();
    const std::string name = f < fields.size() * 16 ? fields[f % fields.size()] : in.bytes(f % 8);
    e.data[name] = value(in, r);
  }
  if (flags & 0x08) e.time = due_text(start_ms);
  if (flags & 0x10) {
    e.causationid = "c" + std::to_string(in.byte());
    e.correlationid = std::string("\xff", 1);
  }
  if (flags & 0x20) e.data = value(in, r);  // perhaps not an object: the embedding API allows it
  if (flags & 0x40) e.subject += std::string("\xed\xa0\x80", 3);
  if (flags & 0x80) e.id += '\n';
  return e;
}

// ---------------------------------------------------------------------------------------------
// Checks

bool plain_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

struct input_state {
  std::map<std::pair<std::string, std::string>, bool> accepted;  // (source, id) accepted once
};

void check_acks(std::span<const saga::inbound> inputs, const std::vector<saga::ack>& acks, input_state& st) {
  if (acks.size() != inputs.size())
    fail("handle_batch returned " + std::to_string(acks.size()) + " acks for " +
         std::to_string(inputs.size()) + " inputs");
  for (std::size_t i = 0; i < acks.size(); ++i) {
    const auto& a = acks[i];
    const std::string where = "ack " + std::to_string(i) + " " + saga::encode_ack(a);
    if (a.status == saga::ack_status::rejected && a.reason.empty())
      fail("a rejection without a reason: " + where);
    if (a.status == saga::ack_status::accepted && a.outcome == saga::ack_outcome::none)
      fail("accepted without an outcome: " + where);
    const auto* e = std::get_if<saga::event>(&inputs[i]);
    if (e == nullptr) {
      if (a.status != saga::ack_status::rejected) fail("invalid input not rejected: " + where);
      continue;
    }
    if (plain_ascii(e->id) && plain_ascii(e->source) && (a.id != e->id || a.source != e->source))
      fail("ack names another event (sent id '" + e->id + "', source '" + e->source + "'): " + where);
    if (a.status == saga::ack_status::accepted) {
      auto [it, fresh] = st.accepted.emplace(std::make_pair(e->source, e->id), true);
      if (!fresh) fail("(source, id) accepted twice, not a duplicate: " + where);
    }
  }
}

std::int64_t scalar(SQLite::Database& db, const char* sql) {
  SQLite::Statement q(db, sql);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

void check_store(rig& r, bool after_prune) {
  auto& db = r.store->database();
  std::map<std::string, const saga::definition*> by_name;
  for (const auto& d : r.defs) by_name[d->name()] = d.get();
  {
    SQLite::Statement q(db, "SELECT definition, key, state FROM instances");
    while (q.executeStep()) {
      const std::string def = q.getColumn(0).getString();
      const std::string state = q.getColumn(2).getString();
      auto it = by_name.find(def);
      if (it == by_name.end()) fail("an instance of unknown definition '" + def + "'");
      if (!it->second->graph().has_state(state))
        fail("instance " + def + "/" + q.getColumn(1).getString() + " in state '" + state +
             "', which is not in its graph");
    }
  }
  {
    // A saga's timers are in its row (schema 8): its next_due_ms is their soonest armed one's.
    SQLite::Statement q(db,
                        "SELECT definition, key FROM instances AS i WHERE next_due_ms IS NOT"
                        " (SELECT min(j.value ->> 0) FROM json_each(i.timers) AS j)");
    if (q.executeStep())
      fail("saga " + q.getColumn(0).getString() + "/" + q.getColumn(1).getString() +
           ": next_due_ms is not its soonest armed timer's due time");
  }
  if (const auto n = scalar(db,
                            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM parked GROUP BY "
                            "definition, key)");
      n > static_cast<std::int64_t>(park_limit))
    fail("a saga has " + std::to_string(n) + " parked events, over the per-saga limit");
  if (const auto n = scalar(db, "SELECT count(*) FROM parked"); n > park_total_limit)
    fail(std::to_string(n) + " parked events, over the total limit");
  if (after_prune) {
    if (const auto n = scalar(db, "SELECT count(*) FROM dead_letters"); n > dead_letter_max)
      fail(std::to_string(n) + " dead letters after pruning, over the cap");
  }
}

// Corrupts stored rows of one key, as a damaged or hand-edited database would hold them.
void corrupt(rig& r, reader& in) {
  static const char* bad_data[] = {"",
                                   "{",
                                   "null",
                                   "[]",
                                   "{\"amount\":\"x\",\"items\":5,\"failures\":\"x\"}",
                                   "{\"order_id\":5,\"due_ms\":\"soon\",\"refund_attempt\":1e300}",
                                   "\"text\"",
                                   "{\"a\":\"\xc3\x28\"}"};
  const std::uint8_t what = in.byte();
  const std::string& key = keys[in.byte() % keys.size()];
  const char* value = bad_data[(what >> 1) % std::size(bad_data)];
  SQLite::Statement q(r.store->database(), (what & 1) ? "UPDATE parked SET payload = ? WHERE key = ?"
                                                      : "UPDATE instances SET data = ? WHERE key = ?");
  q.bind(1, value);
  q.bind(2, key);
  q.exec();
  r.store->forget_kept_saga_rows();  // as a hand edit through another connection would make it
}

template <class F>
auto no_throw(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& ex) {
    fail(std::string(what) + " threw: " + ex.what());
  } catch (...) {
    fail(std::string(what) + " threw a non-standard exception");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rig& r = the_rig();
  r.reset();
  auto& clock = r.clock;
  clock.set(start_ms);
  auto& engine = *r.engine;

  reader in(data, size);
  input_state st;
  std::vector<saga::inbound> pending;
  bool pruned = false;

  auto flush = [&](std::uint8_t mode) {
    if (pending.empty()) return;
    const bool events_only = std::all_of(pending.begin(), pending.end(), [](const saga::inbound& i) {
      return std::holds_alternative<saga::event>(i);
    });
    std::vector<saga::ack> acks;
    if (events_only && (mode & 1)) {
      std::vector<saga::event> events;
      for (auto& i : pending) events.push_back(std::get<saga::event>(i));
      acks = no_throw("handle_batch(events)",
                      [&] { return engine.handle_batch(std::span<const saga::event>(events)); });
    } else {
      acks = no_throw("handle_batch(inputs)",
                      [&] { return engine.handle_batch(std::span<const saga::inbound>(pending)); });
    }
    check_acks(pending, acks, st);
    pending.clear();
    pruned = false;
  };

  while (in.more()) {
    const std::uint8_t op = in.byte();
    switch (op % 8) {
      case 4:
        flush(in.byte());
        break;
      case 5: {
        const std::uint8_t step = in.byte();
        static constexpr std::int64_t steps[] = {1'000,
                                                 60'000,
                                                 15 * 60'000 + 1,
                                                 30 * 60'000 + 1,
                                                 3600'000,
                                                 48 * 3600'000LL + 1,
                                                 24 * 3600'000LL + 1,
                                                 14 * 24 * 3600'000LL + 1,
                                                 -3600'000};
        const std::int64_t ms = step % 10 < 9 ? steps[step % 10] : static_cast<std::int64_t>(in.u32());
        clock.set(clock.now_ms() + ms);
        for (int round = 0; round < 64; ++round) {
          const auto fired =
              no_throw("fire_due_timers", [&] { return engine.fire_due_timers(clock.now_ms(), 8); });
          for (const auto& f : fired)
            if (f.ack.status == saga::ack_status::rejected && f.ack.reason.empty())
              fail("a timer's firing rejected without a reason");
          if (fired.size() < 8) break;
        }
        pruned = false;
        break;
      }
      case 6: {
        const std::string raw = in.bytes(in.byte());
        auto d = saga::decode_event(raw);
        if (d)
          pending.emplace_back(std::move(*d.event));
        else
          pending.emplace_back(saga::invalid_input{raw, d.error, d.id, d.source, "", "", ""});
        break;
      }
      case 7: {
        no_throw("expire_parked", [&] { return engine.expire_parked(clock.now_ms()); });
        no_throw("purge_finished", [&] { return engine.purge_finished(clock.now_ms() - 3600'000); });
        for (int round = 0; round < 64; ++round)
          if (!no_throw("prune", [&] { return engine.prune(clock.now_ms(), 64); }).any()) break;
        pruned = pending.empty();
        break;
      }
      default:
        if (op == 0x83)
          corrupt(r, in);
        else
          pending.push_back(make_event(in, r));
        break;
    }
    if (pending.size() >= max_pending) flush(0);
  }
  flush(0);
  check_store(r, pruned);
  return 0;
}
