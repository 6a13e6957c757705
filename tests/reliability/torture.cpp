// saga-torture — the crash torture of issue 7, section 1.
//
// A driver sends order events (every path of the order table whose events do
// not compete, reordered within each saga, interleaved across sagas, with about
// 10 % duplicates) through saga::zmq::client to a real sagad, while this
// program SIGKILLs sagad at random moments (a kill counts only when events were
// unacked at that moment) and, in between, runs sagad with SAGA_FAULT set so
// that it kills itself at one of its fault points (before_commit,
// after_commit, after_publish). sagad is restarted at once on the same
// database and ports each time. A subscriber lives across the restarts and
// logs every sequence it delivers.
//
// The expectation — each saga's end state, its follow-on event types and its
// refund attempt numbers — comes from this file's own table of paths, not from
// the engine. At the end (everything acked, the outbox fully published, sagad
// stopped with SIGTERM) the database (read-only) and the subscriber's log are
// checked:
//   * every acked event is in the inbox exactly once (by (source, id)), and
//     had exactly one effect (one "transitioned" history row); at each kill,
//     the events acked so far are already in the dead sagad's inbox;
//   * every saga is in its expected state with exactly its expected follow-on
//     events (type multiset, refund attempts), each outbox event_id once;
//   * the subscriber saw 1..max, each once (a redelivery must carry the same
//     payload), and each payload equals the outbox row of that sequence;
//   * PRAGMA integrity_check is "ok".
// Exit 0 only when every invariant holds and the kill / fault quotas were met.
//
//   saga-torture --short                         the run in `make test` (< ~150 s)
//   saga-torture --sagas 15000 --kills 1000      the full run (`make torture`)

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/codec.hpp"
#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;
using saga::test::process;

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

// ---------------------------------------------------------------------------
// The paths: the order table's non-competing stories (DESIGN.md, "The order
// workflow"), with what each must end in. The payment timeout is time-based
// (15 min) and is left out; no path ends in `placed`, so it never fires.

struct path_spec {
  std::string name;
  std::vector<std::string> events;  // incoming event types, clean order
  std::string final_state;
  std::multiset<std::string> follow_ons;  // outgoing event types
  std::vector<int> refund_attempts;       // `attempt` of each payment.refund.requested, sorted
  // The refund's retries (dsl::retry) wait a backoff on the wall clock: after each failure but the
  // last of a path, the retry's request goes out only if its timer fired before the next failure
  // (or the run's end). So up to this many more payment.refund.requested, attempts 2, 3, ...
  int retries_at_most = 0;
};

const std::vector<path_spec>& paths() {
  const std::string P = "order.placed", PS = "payment.succeeded", PF = "payment.failed",
                    CR = "order.cancel.requested", IR = "inventory.reserved", IU = "inventory.unavailable",
                    SD = "shipment.dispatched", DS = "delivery.started", DC = "delivery.confirmed",
                    DF = "delivery.failed", RD = "payment.refunded", RF = "payment.refund.failed";
  const std::string o_pay = "payment.requested", o_res = "inventory.reservation.requested",
                    o_ship = "shipment.requested", o_shipped = "order.shipped",
                    o_out = "order.out_for_delivery", o_done = "order.completed",
                    o_cancel = "order.cancelled", o_refund = "payment.refund.requested",
                    o_attn = "order.needs_attention";
  static const std::vector<path_spec> all = {
      {"happy", {P, PS, IR, SD, DS, DC}, "done", {o_pay, o_res, o_ship, o_shipped, o_out, o_done}, {}},
      {"payment failed", {P, PF}, "cancelled", {o_pay, o_cancel}, {}},
      {"cancelled early", {P, CR}, "cancelled", {o_pay, o_cancel}, {}},
      {"no stock", {P, PS, IU, RD}, "cancelled", {o_pay, o_res, o_refund, o_cancel}, {1}},
      {"delivery failed then refunded",
       {P, PS, IR, SD, DS, DF, RD},
       "cancelled",
       {o_pay, o_res, o_ship, o_shipped, o_out, o_refund, o_cancel},
       {1}},
      {"refund failing 3 times",
       {P, PS, IU, RF, RF, RF},
       "needs_attention",
       {o_pay, o_res, o_refund, o_attn},
       {1},
       2},
      {"delivery failed, refund failing 3 times",
       {P, PS, IR, SD, DS, DF, RF, RF, RF},
       "needs_attention",
       {o_pay, o_res, o_ship, o_shipped, o_out, o_refund, o_attn},
       {1},
       2},
      // Stories still under way at the end: prefixes of the paths above.
      {"paid, awaiting stock", {P, PS}, "paid", {o_pay, o_res}, {}},
      {"reserved, awaiting shipment", {P, PS, IR}, "awaiting_shipment", {o_pay, o_res, o_ship}, {}},
      {"shipped", {P, PS, IR, SD}, "shipped", {o_pay, o_res, o_ship, o_shipped}, {}},
      {"out for delivery", {P, PS, IR, SD, DS}, "delivering", {o_pay, o_res, o_ship, o_shipped, o_out}, {}},
      {"no stock, refund pending", {P, PS, IU}, "refunding", {o_pay, o_res, o_refund}, {1}},
      {"no stock, refund failed once", {P, PS, IU, RF}, "refunding", {o_pay, o_res, o_refund}, {1}, 1},
      {"delivery failed, refund failed twice",
       {P, PS, IR, SD, DS, DF, RF, RF},
       "refunding",
       {o_pay, o_res, o_ship, o_shipped, o_out, o_refund},
       {1},
       2},
  };
  return all;
}

// ---------------------------------------------------------------------------
// The scenario

struct saga_spec {
  std::string key;
  std::size_t path = 0;
};

struct scenario {
  std::vector<saga_spec> sagas;
  std::vector<saga::event> stream;                       // what is sent, in order (duplicates included)
  std::set<std::pair<std::string, std::string>> unique;  // (source, id) of every distinct event
  std::size_t duplicates = 0;
};

saga::event make_event(const std::string& type, const std::string& key, std::size_t j, std::size_t n) {
  saga::event e;
  e.id = key + "-e" + std::to_string(j);
  e.source = "urn:torture:" + type.substr(0, type.find('.'));
  e.type = type;
  e.subject = key;
  e.time = "2026-01-01T00:00:00Z";
  if (type == "order.placed")
    e.data = {{"order_id", key},
              {"amount", 1000 + static_cast<std::int64_t>(n % 997)},
              {"currency", "EUR"},
              {"customer_id", "c-" + std::to_string(n % 101)},
              {"items", json::array({{{"sku", "SKU-" + std::to_string(n % 7)}, {"qty", 1 + n % 3}}})}};
  else
    e.data = {{"order_id", key}, {"n", j}};
  return e;
}

// Sagas in blocks of `block`: each saga's events shuffled (most of them) or in
// clean order, the block's sagas interleaved at random, and about
// `dup_rate` of the events sent a second time later in the same block.
scenario build_scenario(std::size_t n, std::uint64_t seed, double dup_rate = 0.10, std::size_t block = 64) {
  std::mt19937_64 rng(seed);
  scenario s;
  const auto& ps = paths();
  s.sagas.reserve(n);
  for (std::size_t i = 0; i < n; ++i) s.sagas.push_back({"tor-" + std::to_string(i), i % ps.size()});
  std::shuffle(s.sagas.begin(), s.sagas.end(), rng);  // paths spread at random over the stream

  std::uniform_real_distribution<double> u(0, 1);
  for (std::size_t b = 0; b < n; b += block) {
    const std::size_t end = std::min(n, b + block);
    std::vector<std::vector<saga::event>> per;
    for (std::size_t i = b; i < end; ++i) {
      const auto& sg = s.sagas[i];
      const auto& p = ps[sg.path];
      std::vector<saga::event> v;
      for (std::size_t j = 0; j < p.events.size(); ++j) v.push_back(make_event(p.events[j], sg.key, j, i));
      for (const auto& e : v) s.unique.emplace(e.source, e.id);
      if (u(rng) < 0.8) std::shuffle(v.begin(), v.end(), rng);
      std::reverse(v.begin(), v.end());  // popped from the back below
      per.push_back(std::move(v));
    }
    // Random interleaving that keeps each saga's (shuffled) order.
    std::vector<saga::event> merged;
    std::vector<std::size_t> live;
    for (std::size_t k = 0; k < per.size(); ++k) live.push_back(k);
    while (!live.empty()) {
      const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, live.size() - 1)(rng);
      auto& v = per[live[pick]];
      merged.push_back(std::move(v.back()));
      v.pop_back();
      if (v.empty()) {
        live[pick] = live.back();
        live.pop_back();
      }
    }
    // Duplicates: a copy at a random later place in the block.
    std::vector<std::pair<double, std::size_t>> order;  // (position key, index into merged)
    for (std::size_t k = 0; k < merged.size(); ++k) {
      order.emplace_back(static_cast<double>(k), k);
      if (u(rng) < dup_rate) {
        order.emplace_back(std::uniform_real_distribution<double>(k + 0.5, merged.size() - 0.5)(rng), k);
        ++s.duplicates;
      }
    }
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& c) { return a.first < c.first; });
    for (const auto& [_, k] : order) s.stream.push_back(merged[k]);
  }
  return s;
}

// ---------------------------------------------------------------------------
// Violations: the first ones are listed, all are counted.

class violations {
 public:
  void add(const std::string& what) {
    std::lock_guard lock(m_);
    ++count_;
    if (first_.size() < 40) first_.push_back(what);
  }
  std::size_t count() const {
    std::lock_guard lock(m_);
    return count_;
  }
  std::vector<std::string> first() const {
    std::lock_guard lock(m_);
    return first_;
  }

 private:
  mutable std::mutex m_;
  std::size_t count_ = 0;
  std::vector<std::string> first_;
};

// ---------------------------------------------------------------------------
// The sender: the stream in chunks of `window` events, each through one
// send_all() call, so that "a chunk in progress" means "events not yet acked".
// It starts chunk c only once the orchestrator has granted credit > c.

struct sender {
  std::span<const saga::event> stream;
  std::size_t chunk_size = 64;
  std::string ingress;
  saga::zmq::client_options opts;

  std::atomic<std::size_t> credit{0};       // chunks that may be started
  std::atomic<std::size_t> done_chunks{0};  // chunks whose every event is acked
  std::atomic<bool> busy{false};            // inside send_all()
  std::atomic<bool> finished{false};
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> clean_chunk_us{50'000};  // moving average of a chunk's time without a crash
  std::vector<saga::ack> acks;                       // one per stream event
  std::string failure;
  std::thread thread;

  std::size_t chunks() const { return (stream.size() + chunk_size - 1) / chunk_size; }
  std::span<const saga::event> chunk(std::size_t c) const {
    const std::size_t b = c * chunk_size;
    return stream.subspan(b, std::min(chunk_size, stream.size() - b));
  }

  void start() {
    acks.resize(stream.size());
    thread = std::thread([this] { run(); });
  }
  void join() {
    if (thread.joinable()) thread.join();
  }

  void run() {
    ::zmq::context_t ctx(1);
    try {
      saga::zmq::client c(ctx, ingress, opts);
      for (std::size_t k = 0; k < chunks(); ++k) {
        while (credit.load() <= k && !stop.load()) std::this_thread::sleep_for(200us);
        if (stop.load()) break;
        const auto t0 = steady::now();
        busy.store(true);
        auto a = c.send_all(chunk(k));
        busy.store(false);
        std::copy(a.begin(), a.end(), acks.begin() + static_cast<std::ptrdiff_t>(k * chunk_size));
        done_chunks.store(k + 1);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - t0).count();
        if (us < std::chrono::duration_cast<std::chrono::microseconds>(opts.timeout).count())
          clean_chunk_us.store((clean_chunk_us.load() * 7 + us) / 8);
      }
    } catch (const std::exception& e) {
      failure = e.what();
      busy.store(false);
    }
    finished.store(true);
  }
};

// ---------------------------------------------------------------------------
// The subscriber, across restarts: it catches up through the replay.

struct follower {
  std::string publish, replay, log_path;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> last{0};
  std::atomic<std::size_t> errors{0};
  std::mutex m;
  std::map<std::int64_t, std::string> seen;  // sequence -> payload
  std::size_t deliveries = 0;
  std::vector<std::string> payload_mismatches;
  std::thread thread;

  void start() {
    thread = std::thread([this] { run(); });
  }
  void join() {
    stop.store(true);
    if (thread.joinable()) thread.join();
  }
  void run() {
    ::zmq::context_t ctx(1);
    std::ofstream log(log_path, std::ios::trunc);
    saga::zmq::subscriber_options o;
    o.replay_timeout = 1000ms;
    std::unique_ptr<saga::zmq::subscriber> sub;
    while (!stop.load()) {
      try {
        if (!sub) sub = std::make_unique<saga::zmq::subscriber>(ctx, publish, replay, o);
        sub->poll(100ms, [&](const saga::zmq::delivery& d) {
          std::lock_guard lock(m);
          ++deliveries;
          log << d.sequence << '\t' << d.type << '\n';
          auto [it, fresh] = seen.emplace(d.sequence, d.payload);
          if (!fresh && it->second != d.payload && payload_mismatches.size() < 10)
            payload_mismatches.push_back("sequence " + std::to_string(d.sequence) +
                                         " redelivered with another payload");
        });
        last.store(sub->last_sequence());
      } catch (const saga::zmq::subscriber_error&) {
        ++errors;  // sagad down for a moment: the next poll catches up through the replay
        std::this_thread::sleep_for(20ms);
      }
    }
    log.flush();
  }
};

// ---------------------------------------------------------------------------
// sagad, restarted on the same database and ports

struct daemon_runner {
  std::string sagad_path, db, work;
  // Where sagad is bound: the first run chooses loopback ports and reports them
  // (--endpoints-file); every restart binds those again, as a daemon restarted on
  // its configured ports does, so that the client and the subscriber find it.
  saga::test::endpoints ep;
  std::unique_ptr<process> proc;
  std::string fault;  // SAGA_FAULT of the running sagad ("" = none)
  std::string err_path;
  int runs = 0;

  // Starts sagad (with SAGA_FAULT=fault when not empty) through env(1), so the
  // variable is set or removed for the child only. Returns true once its
  // ingress answers, false when it ended before (or did not answer in 20 s).
  // (start_daemon starts it again when another process took one of its ports
  // between two runs.)
  bool start(const std::string& fault_spec) {
    fault = fault_spec;
    std::vector<std::string> argv = {"/usr/bin/env"};
    if (fault_spec.empty()) {
      argv.insert(argv.end(), {"-u", "SAGA_FAULT"});
    } else {
      argv.push_back("SAGA_FAULT=" + fault_spec);
    }
    argv.insert(argv.end(), {sagad_path, "--db", db, "--log-level",
                             "info"});  // info: the start line tells loop hits from start-up ones
    const std::string n = std::to_string(runs++);
    err_path = work + "/sagad-" + n + ".err";
    proc.reset();
    auto started =
        saga::test::start_daemon(argv, ep.ingress.empty() ? saga::test::endpoints::any_loopback() : ep,
                                 work + "/endpoints.json", work + "/sagad-" + n + ".out", err_path);
    proc = std::move(started.proc);
    if (!started) return false;
    ep = started.ep;
    return saga::test::wait_until_ingress_answers(ep.ingress, 20s, proc.get());
  }
  std::string err() const { return proc ? proc->err() : std::string(); }
};

// ---------------------------------------------------------------------------
// Read-only database checks

SQLite::Database open_ro(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  db.setBusyTimeout(5000);
  return db;
}

std::string tail_of(const std::string& s, std::size_t n = 600) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// The events of chunks [from, to) that are not in the inbox now (sagad dead).
std::size_t missing_in_inbox(const std::string& db_path, const sender& snd, std::size_t from, std::size_t to,
                             violations& v) {
  if (from >= to) return 0;
  auto db = open_ro(db_path);
  SQLite::Statement q(db, "SELECT count(*) FROM inbox WHERE source = ? AND event_id = ?");
  std::size_t missing = 0;
  for (std::size_t c = from; c < to; ++c)
    for (const auto& e : snd.chunk(c)) {
      q.reset();
      q.bind(1, e.source);
      q.bind(2, e.id);
      q.executeStep();
      if (q.getColumn(0).getInt64() != 1) {
        ++missing;
        v.add("acked event " + e.source + " " + e.id + " is not in the inbox of the killed sagad");
      }
    }
  return missing;
}

struct figures {
  std::size_t sagas = 0, events_sent = 0, distinct_events = 0, duplicates_sent = 0, acks = 0,
              acks_duplicate = 0, acks_ignored = 0;
  std::size_t kills_counted = 0, kills_uncounted = 0, restarts = 0, fault_runs = 0,
              fault_runs_without_hit = 0;
  // Hits by the "fault injected" line of a fault run's stderr once sagad
  // runs its loop (the quota); of them, those before the run's ingress
  // answered (its first batches are the client's resends; at start it also
  // publishes what was pending). Hits while it registered its definitions
  // (before_commit of their transactions) are counted apart.
  std::map<std::string, std::size_t> fault_hits = {
      {"before_commit", 0}, {"after_commit", 0}, {"after_publish", 0}};
  std::map<std::string, std::size_t> fault_hits_before_ingress = fault_hits;
  std::map<std::string, std::size_t> fault_hits_registering = fault_hits;
  std::size_t lost_at_kill = 0, checked_at_kill = 0;
  std::int64_t outbox_rows = 0, max_sequence = 0;
  std::size_t subscriber_deliveries = 0, subscriber_errors = 0;
  double elapsed_s = 0;
  std::size_t chunk_size = 0;
};

// One saga's follow-on events as the outbox holds them.
struct saga_outbox {
  std::multiset<std::string> types;
  std::vector<int> attempts;         // `attempt` of each payment.refund.requested
  std::set<std::string> refund_ids;  // `refund_id` of each
};

// One saga's outbox against its path: the path's follow-on events, plus up to retries_at_most
// retried refund requests (attempts 2, 3, ... after the path's own), all with one refund_id.
void check_saga_outbox(const std::string& key, const path_spec& p, saga_outbox got, violations& v) {
  std::sort(got.attempts.begin(), got.attempts.end());
  const int retried = static_cast<int>(got.attempts.size()) - static_cast<int>(p.refund_attempts.size());
  auto want_attempts = p.refund_attempts;
  for (int i = 0; i < retried && i < p.retries_at_most; ++i) {
    want_attempts.push_back(static_cast<int>(p.refund_attempts.size()) + i + 1);
    if (const auto it = got.types.find("payment.refund.requested"); it != got.types.end())
      got.types.erase(it);
  }
  if (got.types != p.follow_ons) {
    std::string g, w;
    for (const auto& t : got.types) g += " " + t;
    for (const auto& t : p.follow_ons) w += " " + t;
    v.add("saga " + key + " (" + p.name + ") emitted [" + g + " ] expected [" + w + " ]");
  }
  if (got.attempts != want_attempts) {
    std::string g, w;
    for (int x : got.attempts) g += " " + std::to_string(x);
    for (int x : want_attempts) w += " " + std::to_string(x);
    v.add("saga " + key + " (" + p.name + ") refund attempts [" + g + " ] expected [" + w + " ]");
  }
  if (!p.refund_attempts.empty() && (got.refund_ids.size() != 1 || got.refund_ids.begin()->empty()))
    v.add("saga " + key + " refund requests carry " + std::to_string(got.refund_ids.size()) + " refund_ids");
}

void final_checks(const std::string& db_path, const scenario& sc, const follower& fol, figures& f,
                  violations& v) {
  auto db = open_ro(db_path);
  const auto& ps = paths();

  // Integrity.
  {
    SQLite::Statement q(db, "PRAGMA integrity_check");
    std::string r;
    while (q.executeStep()) r += (r.empty() ? "" : "; ") + q.getColumn(0).getString();
    if (r != "ok") v.add("PRAGMA integrity_check: " + r);
  }

  // Inbox: every event once, nothing else of ours.
  {
    SQLite::Statement q(db, "SELECT source, event_id FROM inbox WHERE source LIKE 'urn:torture:%'");
    std::map<std::pair<std::string, std::string>, int> inbox;
    while (q.executeStep()) ++inbox[{q.getColumn(0).getString(), q.getColumn(1).getString()}];
    for (const auto& k : sc.unique) {
      auto it = inbox.find(k);
      if (it == inbox.end())
        v.add("acked event " + k.first + " " + k.second + " is not in the inbox");
      else if (it->second != 1)
        v.add("event " + k.first + " " + k.second + " is in the inbox " + std::to_string(it->second) +
              " times");
    }
    for (const auto& [k, n] : inbox)
      if (!sc.unique.count(k)) v.add("unknown event in the inbox: " + k.first + " " + k.second);
  }

  // One effect per event: exactly one "transitioned" history row each.
  {
    SQLite::Statement q(db,
                        "SELECT event_source, event_id, count(*) FROM history WHERE outcome = 'transitioned' "
                        "AND event_source LIKE 'urn:torture:%' GROUP BY event_source, event_id");
    std::map<std::pair<std::string, std::string>, std::int64_t> applied;
    while (q.executeStep())
      applied[{q.getColumn(0).getString(), q.getColumn(1).getString()}] = q.getColumn(2).getInt64();
    for (const auto& k : sc.unique) {
      auto it = applied.find(k);
      const std::int64_t n = it == applied.end() ? 0 : it->second;
      if (n != 1)
        v.add("event " + k.first + " " + k.second + " applied " + std::to_string(n) + " times (history)");
    }
  }

  // Nothing left parked, nothing of ours in the dead letters.
  {
    SQLite::Statement q(db, "SELECT count(*) FROM parked");
    q.executeStep();
    if (const auto n = q.getColumn(0).getInt64(); n != 0) v.add(std::to_string(n) + " events still parked");
    SQLite::Statement d(
        db, "SELECT source, event_id, reason FROM dead_letters WHERE source LIKE 'urn:torture:%'");
    while (d.executeStep())
      v.add("dead letter " + d.getColumn(0).getString() + " " + d.getColumn(1).getString() + ": " +
            d.getColumn(2).getString());
  }

  // Sagas: state.
  std::map<std::string, std::size_t> path_of;
  for (const auto& s : sc.sagas) path_of[s.key] = s.path;
  {
    SQLite::Statement q(db, "SELECT key, state FROM instances WHERE definition = 'order_lifecycle'");
    std::set<std::string> present;
    while (q.executeStep()) {
      const auto key = q.getColumn(0).getString();
      const auto state = q.getColumn(1).getString();
      present.insert(key);
      auto it = path_of.find(key);
      if (it == path_of.end()) {
        v.add("unknown order saga " + key);
        continue;
      }
      const auto& p = ps[it->second];
      if (state != p.final_state)
        v.add("saga " + key + " (" + p.name + ") is " + state + ", expected " + p.final_state);
    }
    for (const auto& s : sc.sagas)
      if (!present.count(s.key)) v.add("saga " + s.key + " (" + ps[s.path].name + ") does not exist");
  }

  // Outbox: per saga its follow-on events, each event id once, sequences 1..max, all published.
  std::map<std::int64_t, std::string> outbox_payload;
  {
    SQLite::Statement q(
        db,
        "SELECT sequence, event_id, type, definition, key, payload, published_ms FROM outbox_published "
        "ORDER BY sequence");
    std::map<std::string, saga_outbox> outboxes;
    std::set<std::string> ids;
    std::int64_t expect_seq = 1;
    std::size_t unpublished = 0;
    while (q.executeStep()) {
      const auto seq = q.getColumn(0).getInt64();
      const auto id = q.getColumn(1).getString();
      const auto type = q.getColumn(2).getString();
      const auto def = q.getColumn(3).getString();
      const auto key = q.getColumn(4).getString();
      const auto payload = q.getColumn(5).getString();
      if (q.getColumn(6).isNull()) ++unpublished;
      ++f.outbox_rows;
      f.max_sequence = seq;
      if (seq != expect_seq)
        v.add("outbox sequence " + std::to_string(seq) + " where " + std::to_string(expect_seq) +
              " was expected (a gap)");
      expect_seq = seq + 1;
      outbox_payload[seq] = payload;
      if (!ids.insert(id).second) v.add("outbox event id " + id + " appears more than once");
      if (def != "order_lifecycle" || !path_of.count(key)) {
        v.add("outbox row " + std::to_string(seq) + " of an unknown saga " + def + "/" + key);
        continue;
      }
      auto& mine = outboxes[key];
      mine.types.insert(type);
      const json e = json::parse(payload, nullptr, false);
      if (!e.is_object() || e.value("subject", "") != key || e.value("type", "") != type ||
          e.value("id", "") != id)
        v.add("outbox row " + std::to_string(seq) +
              " payload does not match its row: " + tail_of(payload, 200));
      if (type == "payment.refund.requested" && e.is_object() && e.contains("data")) {
        const auto& d = e["data"];
        mine.attempts.push_back(
            d.contains("attempt") && d["attempt"].is_number_integer() ? d["attempt"].get<int>() : -1);
        mine.refund_ids.insert(d.contains("refund_id") && d["refund_id"].is_string()
                                   ? d["refund_id"].get<std::string>()
                                   : std::string());
      }
    }
    if (unpublished) v.add(std::to_string(unpublished) + " outbox rows not published at the end");
    for (const auto& s : sc.sagas) check_saga_outbox(s.key, ps[s.path], outboxes[s.key], v);
  }

  // The subscriber: 1..max, each once, payloads as in the outbox.
  {
    if (!fol.payload_mismatches.empty())
      for (const auto& m : fol.payload_mismatches) v.add("subscriber: " + m);
    std::int64_t expect = 1;
    std::size_t reported = 0;
    for (const auto& [seq, payload] : fol.seen) {
      if (seq != expect && reported++ < 5)
        v.add("subscriber: sequence " + std::to_string(seq) + " where " + std::to_string(expect) +
              " was expected (a gap)");
      expect = seq + 1;
      auto it = outbox_payload.find(seq);
      if (it == outbox_payload.end())
        v.add("subscriber: sequence " + std::to_string(seq) + " is not in the outbox");
      else if (it->second != payload)
        v.add("subscriber: sequence " + std::to_string(seq) +
              " delivered with another payload than the outbox's");
    }
    const std::int64_t last = fol.seen.empty() ? 0 : fol.seen.rbegin()->first;
    if (last != f.max_sequence || static_cast<std::int64_t>(fol.seen.size()) != f.max_sequence)
      v.add("subscriber saw " + std::to_string(fol.seen.size()) + " sequences up to " + std::to_string(last) +
            "; the outbox holds 1.." + std::to_string(f.max_sequence));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t n_sagas = 15000, kills = 1000, fault_kills = 20;
  std::uint64_t seed = std::random_device{}();
  double max_seconds = 0;
  bool short_run = false;
  std::string sagad_path = SAGAD_PATH, work_dir, report_path;
  std::size_t window = 0;
  double p_commit = 0.1, p_publish = 0.01;

  CLI::App app{
      "saga-torture: kill -9 and fault-point crashes of sagad under load, then invariants (issue 7)"};
  auto* o_sagas = app.add_option("--sagas", n_sagas, "order sagas in the scenario")->capture_default_str();
  auto* o_kills =
      app.add_option("--kills", kills, "counted SIGKILLs required (events unacked)")->capture_default_str();
  auto* o_faults = app.add_option("--fault-kills", fault_kills, "fault hits required per fault point")
                       ->capture_default_str();
  app.add_option("--seed", seed, "scenario and killer seed (default: random, printed)");
  auto* o_seconds =
      app.add_option("--seconds", max_seconds, "stop killing after this many seconds (0: no limit)");
  app.add_flag("--short", short_run,
               "the short run: 1,500 sagas, >= 20 kills, >= 3 hits per point, <= 200 s");
  app.add_option("--sagad", sagad_path, "the sagad executable: its test build, sagad-test (SAGA_FAULT)")
      ->capture_default_str();
  app.add_option("--work-dir", work_dir,
                 "database and logs go here (default: a temporary folder, removed on success)");
  app.add_option("--report", report_path, "write the figures as JSON to this file");
  app.add_option("--window", window, "events per send_all() call and in flight (default: from the plan)");
  app.add_option("--fault-p-commit", p_commit, "SAGA_FAULT probability at before_commit/after_commit")
      ->capture_default_str();
  app.add_option("--fault-p-publish", p_publish, "SAGA_FAULT probability at after_publish")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (short_run) {
    if (!o_sagas->count()) n_sagas = 1500;
    if (!o_kills->count()) kills = 20;
    if (!o_faults->count()) fault_kills = 3;
    if (!o_seconds->count()) max_seconds = 200;
  }

  bool temp_work = false;
  if (work_dir.empty()) {
    work_dir =
        (std::filesystem::temp_directory_path() / ("saga-torture-" + std::to_string(::getpid()))).string();
    temp_work = true;
  }
  std::filesystem::create_directories(work_dir);
  const std::string db_path = work_dir + "/torture.db";
  for (const auto* suffix : {"", "-wal", "-shm", ".lock"}) std::filesystem::remove(db_path + suffix);

  const auto t_start = steady::now();
  std::cout << "saga-torture: seed " << seed << ", " << n_sagas << " sagas, kills >= " << kills
            << ", fault hits >= " << fault_kills << " per point, work dir " << work_dir << std::endl;

  const scenario sc = build_scenario(n_sagas, seed);
  figures f;
  f.sagas = n_sagas;
  f.events_sent = sc.stream.size();
  f.distinct_events = sc.unique.size();
  f.duplicates_sent = sc.duplicates;
  violations v;

  // The plan: phases (a counted kill, or a fault run) spread over the stream.
  const std::vector<std::string> points = {"before_commit", "after_commit", "after_publish"};
  const std::size_t phases = kills + points.size() * fault_kills;
  if (window == 0)
    window = std::clamp<std::size_t>(sc.stream.size() / std::max<std::size_t>(1, phases * 8), 4, 128);
  f.chunk_size = window;

  daemon_runner d;
  d.sagad_path = sagad_path;
  d.db = db_path;
  d.work = work_dir;
  if (!d.start("")) {
    std::cerr << "saga-torture: sagad did not start: " << d.err() << std::endl;
    return 1;
  }

  follower fol;
  fol.publish = d.ep.publish;
  fol.replay = d.ep.replay;
  fol.log_path = work_dir + "/subscriber.log";
  fol.start();

  sender snd;
  snd.stream = sc.stream;
  snd.chunk_size = window;
  snd.ingress = d.ep.ingress;
  snd.opts.timeout = 400ms;
  snd.opts.max_tries = 1'000'000'000;
  snd.opts.backoff = 50ms;
  snd.opts.max_backoff = 200ms;
  snd.opts.window = window;
  snd.start();
  const std::size_t n_chunks = snd.chunks();

  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::ofstream plog(work_dir + "/phases.log", std::ios::trunc);
  std::size_t checked_upto = 0;  // chunks whose events were found in the inbox after a crash
  bool fatal = false;

  auto time_up = [&] { return max_seconds > 0 && seconds_since(t_start) > max_seconds; };
  auto chunks_left = [&] { return n_chunks - std::min(n_chunks, snd.credit.load()); };
  auto needed_faults = [&] {
    std::size_t n = 0;
    for (const auto& p : points) n += fault_kills - std::min(fault_kills, f.fault_hits[p]);
    return n;
  };
  auto grant = [&](std::size_t k) { snd.credit.store(std::min(n_chunks, snd.credit.load() + k)); };
  // After a crash (sagad dead and reaped): what was acked is in its inbox.
  auto check_acked_after_crash = [&] {
    const std::size_t done = snd.done_chunks.load();
    for (std::size_t c = checked_upto; c < done; ++c) f.checked_at_kill += snd.chunk(c).size();
    f.lost_at_kill += missing_in_inbox(db_path, snd, checked_upto, done, v);
    checked_upto = done;
  };
  // Starts sagad; "up" once its ingress answers. A fault run may die before
  // (its first batches are the client's resends, or the pending rows it
  // publishes at start): "fault" then, the hit counted.
  // A hit while sagad still registered its definitions (before its start
  // line "... published N pending at start") hits no event batch: it is
  // counted apart, not toward the quota, and the fault run is started again.
  enum class started { up, fault, failed };
  auto restart = [&](const std::string& fault_spec, const std::string& point = {}) -> started {
    for (int attempt = 0; attempt < 100; ++attempt) {
      ++f.restarts;
      if (d.start(fault_spec)) return started::up;
      const auto st = d.proc->wait_for(2s);
      const std::string err = d.err();
      const auto hit = err.find("fault injected: " + point);
      if (fault_spec.empty() || hit == std::string::npos) {
        v.add("sagad did not start (" + st.describe() + "): " + tail_of(err));
        return started::failed;
      }
      check_acked_after_crash();
      if (err.find("pending at start") < hit) {
        ++f.fault_hits[point];
        ++f.fault_hits_before_ingress[point];
        plog << "fault run " << fault_spec << ": died before its ingress answered\n" << std::flush;
        return started::fault;
      }
      ++f.fault_hits_registering[point];
      plog << "fault run " << fault_spec << ": died registering its definitions (not counted)\n"
           << std::flush;
    }
    v.add("sagad (SAGA_FAULT=" + fault_spec + ") kept dying while registering its definitions");
    return started::failed;
  };
  auto restart_plain = [&] { return restart("") == started::up; };

  std::size_t fault_turn = 0;
  // Fault probabilities, raised when a run takes many chunks to die (the
  // stream must last for every phase).
  std::map<std::string, double> fault_p = {
      {"before_commit", p_commit}, {"after_commit", p_commit}, {"after_publish", p_publish}};
  while (!fatal && !snd.finished.load() && !time_up()) {
    const std::size_t kills_left = kills - std::min(kills, f.kills_counted);
    const std::size_t faults_left = needed_faults();
    if (kills_left + faults_left == 0) break;
    // The phase: a fault run when fault progress lags kill progress.
    const double kill_progress = kills ? double(f.kills_counted) / double(kills) : 1.0;
    const double fault_progress =
        fault_kills ? double(points.size() * fault_kills - faults_left) / double(points.size() * fault_kills)
                    : 1.0;
    const bool fault_phase = faults_left > 0 && (kills_left == 0 || fault_progress <= kill_progress);
    // A reserve of a few phases' worth: a kill that lands after its chunk was acked does not count.
    const std::size_t per_phase = std::max<std::size_t>(1, chunks_left() / (kills_left + faults_left + 4));

    if (!fault_phase) {
      // Kill phase: SIGKILL at a random moment within the next chunks.
      const auto base = std::min(snd.credit.load(), n_chunks - 1);
      grant(per_phase);
      const double span_us = double(snd.clean_chunk_us.load()) * double(per_phase);
      // Wait until the sender is at work on this phase's chunks.
      while (!snd.finished.load() && !(snd.busy.load() && snd.done_chunks.load() >= base)) {
        if (snd.done_chunks.load() >= snd.credit.load()) grant(1);
        std::this_thread::sleep_for(100us);
      }
      if (snd.finished.load()) break;
      std::this_thread::sleep_for(std::chrono::microseconds(
          static_cast<std::int64_t>(std::uniform_real_distribution<double>(0.02, 0.9)(rng) * span_us)));
      // Still nothing unacked (the sender waits for credit): one chunk more, a short wait.
      while (!snd.busy.load() && !snd.finished.load()) {
        if (snd.done_chunks.load() >= snd.credit.load()) grant(1);
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<std::int64_t>(
            std::uniform_real_distribution<double>(0.0, 0.5)(rng) * double(snd.clean_chunk_us.load()))));
      }
      if (snd.finished.load()) break;
      if (!d.proc->running()) {
        v.add("sagad died on its own (" + d.proc->wait_for(0ms).describe() + "): " + tail_of(d.err()));
      } else {
        const bool busy_before = snd.busy.load();
        const std::size_t done_before = snd.done_chunks.load();
        const auto st = d.proc->kill9();
        if (!st.signaled() || st.signal() != SIGKILL) v.add("sagad did not die by SIGKILL: " + st.describe());
        // Acks already received are handled by the client within a moment; a
        // chunk still incomplete after it had events unacked at the kill.
        std::this_thread::sleep_for(10ms);
        const bool counted = busy_before && snd.done_chunks.load() == done_before;
        if (counted)
          ++f.kills_counted;
        else
          ++f.kills_uncounted;
        plog << "kill at chunk " << done_before << (counted ? " (counted)" : " (not counted)") << " after "
             << seconds_since(t_start) << " s\n"
             << std::flush;
      }
      check_acked_after_crash();
      // The next run: plain, or the next fault phase's.
      if (!restart_plain()) fatal = true;
    } else {
      // Fault run: sagad with SAGA_FAULT until it kills itself.
      std::string point;
      for (std::size_t k = 0; k < points.size(); ++k) {
        const auto& p = points[(fault_turn + k) % points.size()];
        if (f.fault_hits[p] < fault_kills) {
          point = p;
          fault_turn = (fault_turn + k + 1) % points.size();
          break;
        }
      }
      const double p = fault_p[point];
      char spec[64];
      std::snprintf(spec, sizeof spec, "%s:%g", point.c_str(), p);
      const std::size_t chunks_at_fault_start = snd.done_chunks.load();
      ++f.fault_runs;
      // Replace the plain sagad (an uncounted kill) by one with the fault set.
      if (d.proc->running()) {
        const bool busy_before = snd.busy.load();
        const std::size_t done_before = snd.done_chunks.load();
        d.proc->kill9();
        std::this_thread::sleep_for(10ms);
        const bool counted = busy_before && snd.done_chunks.load() == done_before;
        if (counted)
          ++f.kills_counted;
        else
          ++f.kills_uncounted;
        plog << "kill at chunk " << done_before << (counted ? " (counted)" : " (not counted)")
             << ", to start a fault run, after " << seconds_since(t_start) << " s\n"
             << std::flush;
        check_acked_after_crash();
      }
      const auto how = restart(spec, point);
      if (how == started::failed) {
        fatal = true;
        break;
      }
      if (how == started::fault) {
        if (!restart_plain()) fatal = true;
        continue;
      }
      // Feed it until it dies.
      bool died = false;
      while (!snd.finished.load() && !time_up()) {
        if (!d.proc->running()) {
          died = true;
          break;
        }
        if (snd.done_chunks.load() >= snd.credit.load()) grant(1);
        std::this_thread::sleep_for(1ms);
      }
      if (!died) {
        ++f.fault_runs_without_hit;
        break;
      }
      const std::string err = d.err();
      const std::size_t used = snd.done_chunks.load() - chunks_at_fault_start;
      plog << "fault run " << spec << ": died after " << used << " chunks\n" << std::flush;
      if (used > 2) fault_p[point] = std::min(point == "after_publish" ? 0.2 : 0.25, fault_p[point] * 1.5);
      if (err.find("fault injected: " + point) != std::string::npos)
        ++f.fault_hits[point];
      else
        v.add("sagad (SAGA_FAULT=" + std::string(spec) + ") died without a fault (" +
              d.proc->wait_for(0ms).describe() + "): " + tail_of(err));
      check_acked_after_crash();
      if (!restart_plain()) fatal = true;
    }
  }

  // The rest of the stream without crashes, on a plain sagad.
  if (!fatal && !d.fault.empty()) {
    if (d.proc->running()) d.proc->kill9();
    check_acked_after_crash();
    if (!restart_plain()) fatal = true;
  }
  grant(n_chunks);
  if (fatal) snd.stop.store(true);
  const auto send_deadline = steady::now() + 600s;
  while (!snd.finished.load() && steady::now() < send_deadline) {
    if (!d.proc->running()) {
      v.add("sagad died on its own while the stream finished (" + d.proc->wait_for(0ms).describe() +
            "): " + tail_of(d.err()));
      if (!restart_plain()) {
        snd.stop.store(true);
        break;
      }
    }
    std::this_thread::sleep_for(5ms);
  }
  if (!snd.finished.load()) {
    v.add("the sender did not finish in time");
    snd.stop.store(true);
  }
  snd.join();
  if (!snd.failure.empty()) v.add("the client failed: " + snd.failure);

  // Everything acked: wait for the outbox to be published and seen, then SIGTERM.
  bool drained = false;
  if (snd.failure.empty() && snd.done_chunks.load() == n_chunks) {
    const auto deadline = steady::now() + 120s;
    while (steady::now() < deadline) {
      std::int64_t unpublished = -1, max_seq = -1;
      try {
        auto db = open_ro(db_path);
        SQLite::Statement q(db,
                            "SELECT count(*) FILTER (WHERE published_ms IS NULL), coalesce(max(sequence), 0) "
                            "FROM outbox_published");
        q.executeStep();
        unpublished = q.getColumn(0).getInt64();
        max_seq = q.getColumn(1).getInt64();
      } catch (const std::exception&) {
      }
      if (unpublished == 0 && fol.last.load() >= max_seq) {
        drained = true;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (!drained) v.add("the outbox was not published and seen by the subscriber within 120 s");
  }
  d.proc->signal(SIGTERM);
  const auto st = d.proc->wait_for(15s);
  if (!st.exited() || st.code() != 0)
    v.add("sagad did not stop cleanly on SIGTERM (" + st.describe() + "): " + tail_of(d.err()));
  fol.join();
  f.subscriber_deliveries = fol.deliveries;
  f.subscriber_errors = fol.errors.load();

  // Acks.
  if (snd.done_chunks.load() == n_chunks) {
    std::size_t reported = 0;
    for (std::size_t i = 0; i < snd.acks.size(); ++i) {
      const auto& a = snd.acks[i];
      ++f.acks;
      if (a.status == saga::ack_status::duplicate) ++f.acks_duplicate;
      if (a.outcome == saga::ack_outcome::ignored) ++f.acks_ignored;
      if (a.status == saga::ack_status::rejected && reported++ < 5)
        v.add("event " + sc.stream[i].id + " rejected: " + a.reason);
    }
  } else {
    v.add("only " + std::to_string(snd.done_chunks.load()) + " of " + std::to_string(n_chunks) +
          " chunks were acked");
  }

  try {
    final_checks(db_path, sc, fol, f, v);
  } catch (const std::exception& e) {
    v.add(std::string("reading the database failed: ") + e.what());
  }

  // Quotas.
  if (f.kills_counted < kills)
    v.add("only " + std::to_string(f.kills_counted) + " counted kills (" + std::to_string(kills) +
          " required)");
  for (const auto& p : points)
    if (f.fault_hits[p] < fault_kills)
      v.add("fault point " + p + " hit " + std::to_string(f.fault_hits[p]) + " times (" +
            std::to_string(fault_kills) + " required)");

  f.elapsed_s = seconds_since(t_start);
  json rep = {{"seed", seed},
              {"sagas", f.sagas},
              {"paths", paths().size()},
              {"events_sent", f.events_sent},
              {"distinct_events", f.distinct_events},
              {"duplicates_sent", f.duplicates_sent},
              {"window", f.chunk_size},
              {"acks", f.acks},
              {"acks_duplicate", f.acks_duplicate},
              {"acks_ignored", f.acks_ignored},
              {"kills_counted", f.kills_counted},
              {"kills_uncounted", f.kills_uncounted},
              {"fault_runs", f.fault_runs},
              {"fault_hits", f.fault_hits},
              {"fault_hits_before_ingress_answered", f.fault_hits_before_ingress},
              {"fault_hits_registering_definitions_not_counted", f.fault_hits_registering},
              {"restarts", f.restarts},
              {"acked_events_checked_at_kills", f.checked_at_kill},
              {"acked_events_lost_at_kills", f.lost_at_kill},
              {"outbox_rows", f.outbox_rows},
              {"max_sequence", f.max_sequence},
              {"subscriber_deliveries", f.subscriber_deliveries},
              {"subscriber_errors", f.subscriber_errors},
              {"elapsed_s", f.elapsed_s},
              {"violations", v.count()},
              {"first_violations", v.first()},
              {"ok", v.count() == 0}};
  std::cout << "saga-torture: " << f.sagas << " sagas, " << f.events_sent << " events sent ("
            << f.distinct_events << " distinct, " << f.duplicates_sent << " duplicates), " << f.acks
            << " acks (" << f.acks_duplicate << " duplicate)\n"
            << "  kills counted " << f.kills_counted << " (uncounted " << f.kills_uncounted << "), fault hits"
            << " before_commit " << f.fault_hits["before_commit"] << ", after_commit "
            << f.fault_hits["after_commit"] << ", after_publish " << f.fault_hits["after_publish"] << " ("
            << f.fault_runs << " fault runs; "
            << f.fault_hits_before_ingress["before_commit"] + f.fault_hits_before_ingress["after_commit"] +
                   f.fault_hits_before_ingress["after_publish"]
            << " of the hits before the ingress answered; " << f.fault_hits_registering["before_commit"]
            << " more while registering definitions, not counted), restarts " << f.restarts << "\n"
            << "  acked events checked in the inbox right after a crash: " << f.checked_at_kill << ", lost "
            << f.lost_at_kill << "; outbox " << f.outbox_rows << " rows, subscriber "
            << f.subscriber_deliveries << " deliveries up to " << f.max_sequence << "; elapsed "
            << f.elapsed_s << " s" << std::endl;
  if (!report_path.empty()) std::ofstream(report_path, std::ios::trunc) << rep.dump(2) << "\n";
  if (v.count() == 0) {
    std::cout << "saga-torture: every invariant holds" << std::endl;
    if (temp_work) std::filesystem::remove_all(work_dir);
    return 0;
  }
  std::cout << "saga-torture: " << v.count() << " violation(s); the first:\n";
  for (const auto& s : v.first()) std::cout << "  - " << s << "\n";
  std::cout << "(seed " << seed << ", work dir " << work_dir << " kept)" << std::endl;
  return 1;
}
