// Convergence (DESIGN.md "The order workflow", parking): a stream delivered
// with duplicates and in any order ends in the same states, with the same
// follow-on events (ids and times aside), as the clean in-order stream — for
// the paths of the order table whose events do not compete.
//
// * Every permutation of each path's events, one saga key per permutation,
//   one engine and one database per path.
// * 200 random orders over those paths, interleaved, with duplicates, against
//   the clean streams run through a second engine (seed: SAGA_SEED, printed on
//   failure).
// * Streams delivered twice entirely.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

using saga::ack_outcome;
using saga::ack_status;

namespace {

// ---- the paths ------------------------------------------------------------------

struct path_spec {
  std::string name;
  std::vector<std::string> events;  // incoming event types, in order
  std::string final_state;
  std::vector<std::string> follow_ons;  // outgoing event types, in outbox order
  std::vector<int> refund_attempts;     // `attempt` of each payment.refund.requested
};

const std::vector<path_spec>& paths() {
  static const std::vector<path_spec> all = {
      {"happy",
       {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started",
        "delivery.confirmed"},
       "done",
       {"payment.requested", "inventory.reservation.requested", "shipment.requested", "order.shipped",
        "order.out_for_delivery", "order.completed"},
       {}},
      {"payment failed",
       {"order.placed", "payment.failed"},
       "cancelled",
       {"payment.requested", "order.cancelled"},
       {}},
      {"cancelled early",
       {"order.placed", "order.cancel.requested"},
       "cancelled",
       {"payment.requested", "order.cancelled"},
       {}},
      {"no stock",
       {"order.placed", "payment.succeeded", "inventory.unavailable", "payment.refunded"},
       "cancelled",
       {"payment.requested", "inventory.reservation.requested", "payment.refund.requested",
        "order.cancelled"},
       {1}},
      {"delivery failed and refunded",
       {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched", "delivery.started",
        "delivery.failed", "payment.refunded"},
       "cancelled",
       {"payment.requested", "inventory.reservation.requested", "shipment.requested", "order.shipped",
        "order.out_for_delivery", "payment.refund.requested", "order.cancelled"},
       {1}},
      // The clock does not move here, so no retry's backoff ends: the three failures spend both
      // retries and the first request is the only one (order_lifecycle_test follows the timers).
      {"refund failing three times",
       {"order.placed", "payment.succeeded", "inventory.unavailable", "payment.refund.failed",
        "payment.refund.failed", "payment.refund.failed"},
       "needs_attention",
       {"payment.requested", "inventory.reservation.requested", "payment.refund.requested",
        "order.needs_attention"},
       {1}},
  };
  return all;
}

const path_spec& path_named(std::string_view name) {
  for (const auto& p : paths())
    if (p.name == name) return p;
  throw std::logic_error("no such path");
}

// The path's events for order `key`; ids are distinct per key and per event
// (the three refund failures too).
std::vector<saga::event> path_events(const path_spec& p, const std::string& key, std::int64_t amount = 1000) {
  std::vector<saga::event> out;
  for (std::size_t i = 0; i < p.events.size(); ++i) {
    saga::event e;
    e.id = key + "-e" + std::to_string(i);
    e.source = "urn:test:" + p.events[i].substr(0, p.events[i].find('.'));
    e.type = p.events[i];
    e.subject = key;
    e.time = "2026-01-01T00:00:00Z";
    if (e.type == "order.placed")
      e.data = {{"order_id", key},
                {"amount", amount},
                {"currency", "EUR"},
                {"customer_id", "cust-42"},
                {"items", {{{"sku", "sku-1"}, {"qty", 2}}, {{"sku", "sku-2"}, {"qty", 1}}}}};
    else if (e.type == "payment.refund.failed")
      e.data = {{"reason", "declined"}, {"n", i}};
    out.push_back(std::move(e));
  }
  return out;
}

// ---- an engine over its own database ----------------------------------------------

saga::sqlite::options fast_options(const saga::test::temp_dir& dir) {
  saga::sqlite::options o;
  o.path = dir.file("saga.db");
  o.synchronous = "OFF";  // durability is not under test here; speed is
  return o;
}

struct harness {
  saga::test::temp_dir dir;
  saga::manual_clock clock;
  saga::sqlite::store store{fast_options(dir)};
  std::map<std::string, std::vector<saga::published_event>> emitted;  // by saga key, in delivery order
  std::int64_t last_sequence = 0;
  bool sequence_ordered = true;
  saga::engine engine{store, clock};

  harness() {
    engine.add(saga::definitions::order_lifecycle());
    engine.subscribe("", [this](const saga::published_event& p) {
      if (p.sequence <= last_sequence) sequence_ordered = false;
      last_sequence = p.sequence;
      emitted[p.event.subject].push_back(p);
    });
  }

  std::size_t delivered() const {
    std::size_t n = 0;
    for (const auto& [k, v] : emitted) n += v.size();
    return n;
  }
};

// The durable outbox, per key, as event ids in outbox order; and the in-process
// deliveries the same way: they must agree.
std::map<std::string, std::vector<std::string>> durable_outbox(saga::store& s) {
  std::map<std::string, std::vector<std::string>> out;
  std::int64_t after = 0;
  for (;;) {
    auto rows = s.unpublished(after, 10000);
    if (rows.empty()) break;
    for (const auto& r : rows) {
      out[r.key].push_back(r.event_id);
      after = r.sequence;
    }
  }
  return out;
}

void check_outbox_is_what_was_delivered(harness& h) {
  std::map<std::string, std::vector<std::string>> delivered;
  for (const auto& [key, events] : h.emitted)
    for (const auto& p : events) delivered[key].push_back(p.event.id);
  CHECK(h.sequence_ordered);
  CHECK(durable_outbox(h.store) == delivered);
}

// ---- the canonical form of an order's outcome ------------------------------------

// Replaces the saga key inside data (order_id, refund_id = "<key>:refund") so
// that orders under different keys compare.
nlohmann::json scrub(nlohmann::json j, const std::string& key) {
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == key) return "<key>";
    if (s.starts_with(key + ":")) return "<key>" + s.substr(key.size());
    return j;
  }
  if (j.is_structured())
    for (auto& v : j) v = scrub(v, key);
  return j;
}

struct order_result {
  std::string state;                // empty when no saga exists
  std::string data;                 // the saga's data
  std::vector<std::string> outbox;  // "type data" of each follow-on event, in outbox order
  std::int64_t parked = 0;
  bool subjects_ok = true;  // every follow-on event names its saga

  bool operator==(const order_result&) const = default;
};

std::string describe(const order_result& r) {
  std::string s =
      "state '" + r.state + "', parked " + std::to_string(r.parked) + ", data " + r.data + ", outbox [";
  for (std::size_t i = 0; i < r.outbox.size(); ++i) s += (i ? "; " : "") + r.outbox[i];
  return s + "]" + (r.subjects_ok ? "" : " (a follow-on event names another subject)");
}

// `scrub_key`: compare across keys (the permutation tests); otherwise the data
// is taken as is (the same key in two databases).
order_result result_of(harness& h, const std::string& key, bool scrub_key) {
  auto canon = [&](const nlohmann::json& j) { return (scrub_key ? scrub(j, key) : j).dump(); };
  order_result r;
  if (auto inst = h.store.load_instance("order_lifecycle", key)) {
    r.state = inst->state;
    r.data = canon(nlohmann::json::parse(inst->data));
  }
  r.parked = h.store.count_parked("order_lifecycle", key);
  if (auto it = h.emitted.find(key); it != h.emitted.end())
    for (const auto& p : it->second) {
      r.outbox.push_back(p.event.type + " " + canon(p.event.data));
      if (p.event.subject != key) r.subjects_ok = false;
    }
  return r;
}

std::vector<std::string> types_of(const harness& h, const std::string& key) {
  std::vector<std::string> out;
  if (auto it = h.emitted.find(key); it != h.emitted.end())
    for (const auto& p : it->second) out.push_back(p.event.type);
  return out;
}

std::vector<int> refund_attempts_of(const harness& h, const std::string& key) {
  std::vector<int> out;
  std::set<std::string> refund_ids;
  if (auto it = h.emitted.find(key); it != h.emitted.end())
    for (const auto& p : it->second)
      if (p.event.type == "payment.refund.requested") {
        out.push_back(p.event.data.value("attempt", -1));
        refund_ids.insert(p.event.data.value("refund_id", std::string()));
      }
  if (refund_ids.size() > 1) out.push_back(-99);  // refund_id must be stable across retries
  return out;
}

std::string ack_text(const saga::ack& a) {
  return std::string(saga::to_string(a.status)) + "/" + std::string(saga::to_string(a.outcome)) + " state '" +
         a.saga_state + "'" + (a.reason.empty() ? "" : " reason: " + a.reason);
}

// The reference: the clean in-order stream of `p` under `key`.
void run_in_order(harness& h, const path_spec& p, const std::string& key) {
  for (const auto& e : path_events(p, key)) {
    const auto a = h.engine.handle(e);
    CHECK_MESSAGE(a.status == ack_status::accepted, e.type, ": ", ack_text(a));
    CHECK_MESSAGE(a.outcome == ack_outcome::transitioned, e.type, ": ", ack_text(a));
  }
}

// Checks that the reference ended where the DESIGN's table says.
void check_reference(harness& h, const path_spec& p, const std::string& key) {
  const auto r = result_of(h, key, false);
  CHECK(r.state == p.final_state);
  CHECK(r.parked == 0);
  CHECK(types_of(h, key) == p.follow_ons);
  CHECK(refund_attempts_of(h, key) == p.refund_attempts);
}

// Reproducible randomness: the standard distributions and std::shuffle are
// implementation-defined, so a seed would not mean the same stream everywhere.
struct rng {
  std::uint64_t s;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
};

std::uint64_t seed_from_env() {
  constexpr std::uint64_t fallback = 20260101;
  const char* s = std::getenv("SAGA_SEED");
  if (s == nullptr || *s == '\0') return fallback;
  return std::strtoull(s, nullptr, 0);
}

std::string event_label(const saga::event& e) {
  return e.type + "#" + e.id.substr(e.id.rfind("-e") + 2);
}

}  // namespace

TEST_SUITE("convergence") {
  TEST_CASE("every ordering of each path's events ends as the in-order stream does") {
    for (const auto& p : paths()) {
      CAPTURE(p.name);
      harness h;
      run_in_order(h, p, "ref");
      check_reference(h, p, "ref");
      const order_result expected = result_of(h, "ref", true);

      const std::size_t n = p.events.size();
      std::vector<std::size_t> idx(n);
      std::iota(idx.begin(), idx.end(), std::size_t{0});
      std::size_t permutations = 0, failures = 0;
      std::vector<std::string> first_failures;
      do {
        const std::string key = "p" + std::to_string(permutations);
        const auto events = path_events(p, key);
        std::string order, problems;
        for (std::size_t i : idx) {
          const auto& e = events[i];
          order += (order.empty() ? "" : ", ") + event_label(e);
          const auto a = h.engine.handle(e);
          if (a.status != ack_status::accepted || a.outcome == ack_outcome::ignored)
            problems += " ack of " + event_label(e) + ": " + ack_text(a) + ";";
        }
        const order_result got = result_of(h, key, true);
        if (!(got == expected)) problems += " expected " + describe(expected) + "; got " + describe(got);
        if (!problems.empty()) {
          ++failures;
          if (first_failures.size() < 5) first_failures.push_back(key + " [" + order + "]:" + problems);
        }
        ++permutations;
      } while (std::next_permutation(idx.begin(), idx.end()));

      std::size_t factorial = 1;
      for (std::size_t i = 2; i <= n; ++i) factorial *= i;
      CHECK(permutations == factorial);
      for (const auto& f : first_failures) FAIL_CHECK(f);
      CHECK_MESSAGE(failures == 0, failures, " of ", permutations, " orderings diverged");
      check_outbox_is_what_was_delivered(h);
      CHECK(h.delivered() == (permutations + 1) * p.follow_ons.size());
    }
  }

  TEST_CASE("200 random orders interleaved with duplicates end as their clean streams do") {
    const std::uint64_t seed = seed_from_env();
    CAPTURE(seed);
    rng r{seed};

    // The orders and their clean streams.
    constexpr std::size_t orders = 200;
    std::vector<std::pair<std::string, const path_spec*>> order_paths;
    std::vector<saga::event> clean;
    for (std::size_t i = 0; i < orders; ++i) {
      const std::string key = "r" + std::to_string(i);
      const path_spec& p = paths()[r.below(paths().size())];
      order_paths.emplace_back(key, &p);
      for (auto& e : path_events(p, key, static_cast<std::int64_t>(100 + r.below(100000))))
        clean.push_back(e);
    }

    // The reference: each order's clean stream, in order, in a second database.
    harness ref;
    for (const auto& e : clean) {
      const auto a = ref.engine.handle(e);
      CHECK_MESSAGE(a.status == ack_status::accepted, e.id, ": ", ack_text(a));
    }

    // The stream under test: 10 % of the events duplicated 1-5 times, all of it
    // shuffled (so orders interleave and each order's events come in any order),
    // delivered in batches of 1-8 events.
    std::vector<std::size_t> picks(clean.size());
    std::iota(picks.begin(), picks.end(), std::size_t{0});
    r.shuffle(picks);
    picks.resize(clean.size() / 10);
    std::vector<saga::event> stream = clean;
    std::size_t copies = 0;
    for (std::size_t i : picks)
      for (std::size_t k = 1 + r.below(5); k > 0; --k, ++copies) stream.push_back(clean[i]);
    r.shuffle(stream);
    CHECK(stream.size() == clean.size() + copies);

    harness h;
    std::map<std::pair<std::string, std::string>, saga::ack> first_ack;  // by (source, id)
    std::size_t bad_acks = 0, duplicates = 0;
    for (std::size_t at = 0; at < stream.size();) {
      const std::size_t len = std::min(stream.size() - at, 1 + r.below(8));
      const std::span<const saga::event> batch(stream.data() + at, len);
      const auto acks = h.engine.handle_batch(batch);
      REQUIRE(acks.size() == len);
      for (std::size_t i = 0; i < len; ++i) {
        const auto& e = batch[i];
        const auto& a = acks[i];
        auto [it, first] = first_ack.try_emplace({e.source, e.id}, a);
        bool ok;
        if (first) {
          ok = a.status == ack_status::accepted && a.outcome != ack_outcome::ignored;
        } else {
          ++duplicates;
          ok = a.status == ack_status::duplicate && a.outcome == it->second.outcome &&
               a.saga_state == it->second.saga_state;
        }
        if (!ok && ++bad_acks <= 5)
          FAIL_CHECK("event ", e.id, " (", e.type, ", ", first ? "first" : "duplicate", " arrival at ",
                     at + i, "): ", ack_text(a), first ? "" : "; first ack: " + ack_text(it->second));
      }
      at += len;
    }
    CHECK(bad_acks == 0);
    CHECK(duplicates == copies);
    CHECK(first_ack.size() == clean.size());

    std::size_t diverged = 0;
    std::map<std::string, std::size_t> per_path;
    for (const auto& [key, p] : order_paths) {
      ++per_path[p->name];
      const auto want = result_of(ref, key, false);
      const auto got = result_of(h, key, false);
      auto want_types = types_of(ref, key), got_types = types_of(h, key);
      std::sort(want_types.begin(), want_types.end());
      std::sort(got_types.begin(), got_types.end());
      const bool ok =
          got == want && got_types == want_types && want.state == p->final_state && want.parked == 0;
      if (!ok && ++diverged <= 5) {
        std::string arrivals;
        for (const auto& e : stream)
          if (e.subject == key) arrivals += (arrivals.empty() ? "" : ", ") + event_label(e);
        FAIL_CHECK("order ", key, " (", p->name, ") arrivals [", arrivals, "]: expected ", describe(want),
                   "; got ", describe(got));
      }
    }
    CHECK_MESSAGE(diverged == 0, diverged, " of ", orders, " orders diverged");
    CHECK(per_path.size() == paths().size());  // every path was drawn
    check_outbox_is_what_was_delivered(h);
    check_outbox_is_what_was_delivered(ref);
    CHECK(h.delivered() == ref.delivered());
  }

  TEST_CASE("a stream delivered twice entirely ends as the stream delivered once") {
    harness h;
    int variant_no = 0;
    for (const char* name :
         {"happy", "delivery failed and refunded", "refund failing three times", "no stock"}) {
      const path_spec& p = path_named(name);
      CAPTURE(p.name);
      const std::string ref_key = "ref" + std::to_string(variant_no++);
      run_in_order(h, p, ref_key);
      check_reference(h, p, ref_key);
      const auto expected = result_of(h, ref_key, true);

      // Each variant: the first delivery (as batches) and the second.
      struct variant {
        std::string name;
        bool reversed_first;
        bool reversed_second;
        bool one_batch;
        bool interleaved;  // each event immediately followed by its copy
      };
      for (const variant& v :
           {variant{"in order, then again in order", false, false, false, false},
            variant{"reversed, then in order", true, false, false, false},
            variant{"in order, then reversed", false, true, false, false},
            variant{"reversed, then again reversed, one batch each", true, true, true, false},
            variant{"each event immediately followed by its copy", false, false, false, true},
            variant{"reversed, each event and its copy in one batch", true, false, true, true}}) {
        CAPTURE(v.name);
        const std::string key = "t" + std::to_string(variant_no++);
        auto first = path_events(p, key);
        if (v.reversed_first) std::reverse(first.begin(), first.end());
        auto second = path_events(p, key);
        if (v.reversed_second) std::reverse(second.begin(), second.end());

        std::vector<std::vector<saga::event>> batches;
        if (v.interleaved) {
          for (const auto& e : first) batches.push_back({e, e});
        } else if (v.one_batch) {
          batches = {first, second};
        } else {
          for (const auto& e : first) batches.push_back({e});
          for (const auto& e : second) batches.push_back({e});
        }

        std::map<std::string, saga::ack> seen;  // by id
        std::size_t delivered_after_first = 0;
        for (const auto& batch : batches) {
          const auto acks = h.engine.handle_batch(std::span<const saga::event>(batch));
          REQUIRE(acks.size() == batch.size());
          for (std::size_t i = 0; i < batch.size(); ++i) {
            CAPTURE(batch[i].id);
            auto [it, is_first] = seen.try_emplace(batch[i].id, acks[i]);
            if (is_first) {
              CHECK(acks[i].status == ack_status::accepted);
              CHECK(acks[i].outcome != ack_outcome::ignored);
            } else {
              CHECK(acks[i].status == ack_status::duplicate);
              CHECK(acks[i].outcome == it->second.outcome);
              CHECK(acks[i].saga_state == it->second.saga_state);
            }
          }
          if (seen.size() == first.size() && delivered_after_first == 0)
            delivered_after_first = types_of(h, key).size();
        }
        const auto got = result_of(h, key, true);
        CHECK_MESSAGE(got == expected, "expected ", describe(expected), "; got ", describe(got));
        CHECK(types_of(h, key) == p.follow_ons);
        CHECK(delivered_after_first == p.follow_ons.size());  // the copies added nothing
      }
    }
    check_outbox_is_what_was_delivered(h);
  }
}
