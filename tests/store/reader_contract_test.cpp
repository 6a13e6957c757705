// The read port's contract, run against every store's reader (issue 17, item 5): the same cases for
// saga::sqlite::reader and saga::postgres::reader, chosen by SAGA_TEST_STORE (store_under_test.hpp).
// ctest runs this executable twice, as reader_contract/sqlite/... and reader_contract/postgres/...
// The database is filled through the store port only (the engine on a manual clock, and store
// calls), so that both stores hold the same story. What is particular to one reader (SQLite's
// files, schema versions and shared connections; PostgreSQL's schemas) is tested in tests/sqlite/
// and tests/postgres/.

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/graph.hpp"
#include "saga/reader.hpp"
#include "store/store_under_test.hpp"
#include "support/number_outbox.hpp"
#include "support/order_events.hpp"

namespace {

using nlohmann::json;
using saga::test::store_under_test;

constexpr std::int64_t t0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
constexpr std::int64_t minute = 60'000;

saga::event ev(const std::string& type, const std::string& subject, json data = json::object()) {
  return saga::test::numbered_event("r", type, subject, std::move(data));
}

json order(const std::string& id) {
  return saga::test::order_data(id);
}

std::vector<std::string> keys(const std::vector<saga::saga_summary>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.definition + "/" + r.key);
  return out;
}

// Every page of `f` (its limit a page), each from where the last one ended.
std::vector<std::string> all_pages(saga::reader& r, saga::saga_filter f) {
  std::vector<std::string> out;
  for (;;) {
    const auto rows = r.sagas(f);
    for (const auto& k : keys(rows)) out.push_back(k);
    if (rows.size() < f.limit) return out;
    f.after = rows.back().position();
  }
}

std::vector<std::int64_t> sequences(const std::vector<saga::outbox_record>& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) out.push_back(r.sequence);
  return out;
}

// The engine (order_lifecycle) on a manual clock over the store under test.
struct filling {
  explicit filling(saga::store& s, std::int64_t now_ms) : clock(now_ms), engine(s, clock) {
    engine.add(saga::definitions::order_lifecycle());
  }
  void ok(const saga::event& e) {
    const auto a = engine.handle(e);
    REQUIRE_MESSAGE(a.ok(), a.reason);
  }
  saga::manual_clock clock;
  saga::engine engine;
};

// A database the engine (order_lifecycle, on a manual clock) filled through the store port:
//   t0 - 1h   legacy/o-1: a saga of a definition that is not registered (written through the
//             store), its `reminder` timer due at t0 - 1 min
//   t0        o-1 placed (payment_timeout at t0 + 15 min)
//             o-2 awaiting_shipment (shipment_deadline at t0 + 48 h), delivery.started parked
//   t0 + 1min o-3 cancelled (payment.failed); a dead letter (a type nobody consumes), sent twice
//   t0 + 11min o-4 placed (payment_timeout at t0 + 26 min)
// outbox: 1 o-1, 2..4 o-2, 5..6 o-3, 7 o-4; 1..3 published at t0 + 12 min.
struct filled {
  std::unique_ptr<store_under_test> t = saga::test::make_store_under_test();

  filled() {
    auto& st = t->store();
    filling f(st, t0);
    saga::instance_record legacy;
    legacy.definition = "legacy";
    legacy.key = "o-1";
    legacy.state = "waiting";
    legacy.data = "{}";
    legacy.version = 1;
    legacy.fingerprint = "0123456789abcdef";
    legacy.correlation_id = "legacy-start";
    legacy.created_ms = legacy.updated_ms = legacy.state_since_ms = t0 - 60 * minute;
    st.begin();
    st.save_instance(legacy);
    st.arm_timer("legacy", "o-1", "reminder", t0 - minute);
    st.commit();

    f.ok(ev("order.placed", "o-1", order("o-1")));
    f.ok(ev("order.placed", "o-2", order("o-2")));
    f.ok(ev("payment.succeeded", "o-2"));
    f.ok(ev("inventory.reserved", "o-2"));
    f.ok(ev("delivery.started", "o-2"));  // parked: not shipped yet
    f.clock.set(t0 + minute);
    f.ok(ev("order.placed", "o-3", order("o-3")));
    f.ok(ev("payment.failed", "o-3"));
    const auto stray = ev("no.such.type", "o-9");
    CHECK_FALSE(f.engine.handle(stray).ok());
    CHECK_FALSE(f.engine.handle(stray).ok());  // counted, not copied
    f.clock.set(t0 + 11 * minute);
    f.ok(ev("order.placed", "o-4", order("o-4")));
    saga::test::number_outbox(st, 7);  // what the relay does first (a store numbering after commit)
    st.mark_published(1, 3, t0 + 12 * minute);
  }

  std::unique_ptr<saga::reader> reader() { return t->open_reader(); }
};

}  // namespace

TEST_SUITE("reader_contract") {
  TEST_CASE("a saga reads back with its history timers parked and follow-on events") {
    filled f;
    auto rp = f.reader();
    auto& r = *rp;
    const auto v = saga::read_saga(r, "order_lifecycle", "o-2");
    REQUIRE(v);
    CHECK(v->instance.state == "awaiting_shipment");
    CHECK(json::parse(v->instance.data)["amount"] == 10);
    CHECK(v->instance.created_ms == t0);
    CHECK(v->instance.fingerprint.size() == 16);
    CHECK(v->instance.definition_version == 1);
    REQUIRE(v->definition);
    CHECK(v->definition->fingerprint == v->instance.fingerprint);

    REQUIRE(v->history.size() == 4);
    CHECK(v->history[0].event_type == "order.placed");
    CHECK(v->history[0].to_state == "placed");
    CHECK(v->history[0].outbox_first == 2);
    CHECK(v->history[0].outbox_last == 2);
    CHECK(v->history[1].event_type == "payment.succeeded");
    CHECK(v->history[2].from_state == "paid");
    CHECK(v->history[2].to_state == "awaiting_shipment");
    CHECK(v->history[2].outbox_first == 4);
    CHECK(v->history[3].outcome == "parked");
    CHECK_FALSE(v->history[3].outbox_first);

    REQUIRE(v->timers.size() == 1);
    CHECK(v->timers[0].name == "shipment_deadline");
    CHECK(v->timers[0].due_ms == t0 + 48LL * 60 * minute);
    CHECK(v->timers[0].generation == 1);

    REQUIRE(v->parked.size() == 1);
    CHECK(v->parked[0].type == "delivery.started");
    CHECK(json::parse(v->parked[0].payload)["subject"] == "o-2");

    CHECK(sequences(v->follow_on) == std::vector<std::int64_t>{2, 3, 4});
    CHECK(v->follow_on[0].type == "payment.requested");
    CHECK(v->follow_on[2].type == "shipment.requested");
    CHECK(v->follow_on[0].published_ms == t0 + 12 * minute);
    CHECK_FALSE(v->follow_on[2].published_ms);
    CHECK(json::parse(v->follow_on[2].payload)["subject"] == "o-2");

    // A cancelled order: its payment timeout was disarmed, so no timer is listed.
    const auto o3 = saga::read_saga(r, "order_lifecycle", "o-3");
    REQUIRE(o3);
    CHECK(o3->instance.state == "cancelled");
    CHECK(o3->timers.empty());
    CHECK(sequences(o3->follow_on) == std::vector<std::int64_t>{5, 6});

    // The unregistered definition's saga reads back without a definition.
    const auto legacy = saga::read_saga(r, "legacy", "o-1");
    REQUIRE(legacy);
    CHECK_FALSE(legacy->definition);
    CHECK(legacy->history.empty());
    CHECK(legacy->timers.size() == 1);

    CHECK_FALSE(saga::read_saga(r, "order_lifecycle", "o-404"));
    CHECK_FALSE(r.instance("order_lifecycle", "o-404"));
    CHECK(r.history("order_lifecycle", "o-404").empty());
    CHECK(r.follow_on_events("order_lifecycle", "o-404").empty());
  }

  TEST_CASE("a saga's timers are soonest first then by name and disarmed ones are left out") {
    filled f;
    auto& st = f.t->store();
    st.begin();
    st.arm_timer("order_lifecycle", "o-1", "zulu", t0 + minute);
    st.arm_timer("order_lifecycle", "o-1", "alpha", t0 + minute);
    st.arm_timer("order_lifecycle", "o-1", "Beta", t0 + minute);
    st.arm_timer("order_lifecycle", "o-1", "gone", t0);
    st.disarm_timer("order_lifecycle", "o-1", "gone");
    st.commit();
    auto r = f.reader();
    std::vector<std::string> names;
    for (const auto& t : r->timers("order_lifecycle", "o-1")) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"Beta", "alpha", "zulu", "payment_timeout"});  // names as bytes
  }

  TEST_CASE("definitions_of lists every definition with a saga of that key") {
    filled f;
    auto r = f.reader();
    CHECK(r->definitions_of("o-1") == std::vector<std::string>{"legacy", "order_lifecycle"});
    CHECK(r->definitions_of("o-2") == std::vector<std::string>{"order_lifecycle"});
    CHECK(r->definitions_of("o-404").empty());
  }

  TEST_CASE("sagas filters by definition state and times in a stable order with a limit") {
    filled f;
    auto rp = f.reader();
    auto& r = *rp;
    const std::vector<std::string> all = {"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2",
                                          "order_lifecycle/o-3", "order_lifecycle/o-4"};
    CHECK(keys(r.sagas({})) == all);

    saga::saga_filter by_definition;
    by_definition.definition = "order_lifecycle";
    CHECK(r.sagas(by_definition).size() == 4);

    saga::saga_filter by_state;
    by_state.state = "placed";
    CHECK(keys(r.sagas(by_state)) == std::vector<std::string>{"order_lifecycle/o-1", "order_lifecycle/o-4"});

    // Terminal states come from the stored graph; an unregistered definition's saga is unfinished.
    saga::saga_filter unfinished;
    unfinished.unfinished_only = true;
    CHECK(keys(r.sagas(unfinished)) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1",
                                                                "order_lifecycle/o-2",
                                                                "order_lifecycle/o-4"});

    saga::saga_filter created;
    created.created.from_ms = t0 + minute;
    CHECK(keys(r.sagas(created)) == std::vector<std::string>{"order_lifecycle/o-3", "order_lifecycle/o-4"});
    created = {};
    created.created.before_ms = t0 + minute;  // exclusive
    CHECK(keys(r.sagas(created)) ==
          std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2"});

    saga::saga_filter updated;
    updated.updated.from_ms = t0 + 11 * minute;
    CHECK(keys(r.sagas(updated)) == std::vector<std::string>{"order_lifecycle/o-4"});
    updated.updated = {t0, t0 + 2 * minute};
    CHECK(keys(r.sagas(updated)) ==
          std::vector<std::string>{"order_lifecycle/o-1", "order_lifecycle/o-2", "order_lifecycle/o-3"});

    // In their state since t0 or earlier, not finished: sagactl list --stuck-for.
    saga::saga_filter stuck;
    stuck.unfinished_only = true;
    stuck.state_since.before_ms = t0 + 1;
    CHECK(keys(r.sagas(stuck)) ==
          std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1", "order_lifecycle/o-2"});
    stuck.state_since = {t0 + minute, std::nullopt};
    CHECK(keys(r.sagas(stuck)) == std::vector<std::string>{"order_lifecycle/o-4"});

    saga::saga_filter limited;
    limited.limit = 2;
    const auto first = r.sagas(limited);
    CHECK(keys(first) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-1"});
    limited.after = first.back().position();
    const auto second = r.sagas(limited);
    CHECK(keys(second) == std::vector<std::string>{"order_lifecycle/o-2", "order_lifecycle/o-3"});
    limited.after = second.back().position();
    CHECK(keys(r.sagas(limited)) == std::vector<std::string>{"order_lifecycle/o-4"});
    limited.limit = 0;
    CHECK(r.sagas(limited).empty());

    for (const auto& s : r.sagas({})) {
      CAPTURE(s.key);
      if (s.definition == "order_lifecycle" && s.key == "o-2") {
        CHECK(s.armed_timers == 1);
        CHECK(s.parked == 1);
        CHECK(s.state == "awaiting_shipment");
        CHECK(s.state_since_ms == t0);
        CHECK(s.version >= 3);
        CHECK(s.definition_version == 1);
      }
      if (s.key == "o-3") CHECK(s.armed_timers == 0);
      if (s.definition == "legacy") CHECK(s.armed_timers == 1);
    }
  }

  TEST_CASE("keyset paging orders keys as bytes within one creation time") {
    auto t = saga::test::make_store_under_test();
    auto& st = t->store();
    st.begin();
    for (const std::string key : {"b", "B", "a-2", "a-10", "_x", "\xc3\xa9"}) {
      saga::instance_record i;
      i.definition = "d";
      i.key = key;
      i.state = "s";
      i.data = "{}";
      i.version = 1;
      i.fingerprint = "f";
      i.created_ms = i.updated_ms = i.state_since_ms = t0;
      st.save_instance(i);
    }
    st.commit();
    auto r = t->open_reader();
    const std::vector<std::string> bytes = {"d/B", "d/_x", "d/a-10", "d/a-2", "d/b", "d/\xc3\xa9"};
    CHECK(keys(r->sagas({})) == bytes);
    saga::saga_filter page;
    page.limit = 4;
    CHECK(all_pages(*r, page) == bytes);
    // Newest first: the same order reversed, paged the same way.
    page.newest_first = true;
    CHECK(all_pages(*r, page) == std::vector<std::string>(bytes.rbegin(), bytes.rend()));
  }

  // The overview's links list one definition's sagas in one state (a statement and an index of
  // their own): the same rows, in the same order, as the whole list filtered, page by page.
  TEST_CASE("one definition's sagas in one state page in both orders like the whole list filtered") {
    auto t = saga::test::make_store_under_test();
    auto& st = t->store();
    st.begin();
    for (const std::string definition : {"d", "e"})
      for (int i = 0; i < 12; ++i) {
        saga::instance_record r;
        r.definition = definition;
        r.key = "k-" + std::to_string(i);
        r.state = i % 3 == 0 ? "t" : "s";
        r.data = "{}";
        r.version = 1;
        r.fingerprint = "f";
        r.created_ms = r.updated_ms = r.state_since_ms = t0 + i / 2;  // two sagas a millisecond
        st.save_instance(r);
      }
    st.commit();
    auto r = t->open_reader();
    const auto filtered = [&](const std::optional<saga::saga_position>& after, bool newest) {
      saga::saga_filter all;
      all.after = after;
      all.newest_first = newest;
      std::vector<std::string> out;
      for (const auto& row : r->sagas(all))
        if (row.definition == "d" && row.state == "s") out.push_back(row.definition + "/" + row.key);
      return out;
    };
    for (const bool newest : {false, true}) {
      CAPTURE(newest);
      saga::saga_filter page;
      page.definition = "d";
      page.state = "s";
      page.newest_first = newest;
      page.limit = 3;
      const auto paged = all_pages(*r, page);
      CHECK(paged.size() == 8);
      CHECK(paged == filtered(std::nullopt, newest));
      // After a position of another definition: where that saga stands in the whole list.
      const saga::saga_position other{t0 + 2, "e", "k-4"};
      page.after = other;
      page.limit = 100;
      CHECK(keys(r->sagas(page)) == filtered(other, newest));
    }
  }

  TEST_CASE("parked events of every saga in arrival order paged by id") {
    auto t = saga::test::make_store_under_test();
    auto& st = t->store();
    st.begin();
    std::vector<std::int64_t> ids;
    for (const std::string key : {"k-2", "k-1", "k-2", "k-3", "k-1"}) {
      saga::parked_record p;
      p.definition = "d";
      p.key = key;
      p.event_id = "e-" + std::to_string(ids.size());
      p.source = "urn:test";
      p.type = "t";
      p.payload = "{}";
      p.parked_ms = t0 + static_cast<std::int64_t>(ids.size());
      p.sender = ids.empty() ? "" : "svc";
      ids.push_back(st.park(p));
    }
    st.commit();
    auto r = t->open_reader();
    const auto first = r->parked_events(0, 3);
    REQUIRE(first.size() == 3);
    CHECK(first[0].id == ids[0]);
    CHECK(first[0].key == "k-2");
    CHECK(first[0].event_id == "e-0");
    CHECK(first[1].key == "k-1");
    CHECK(first[2].parked_ms == t0 + 2);
    CHECK(first[2].sender == "svc");
    const auto rest = r->parked_events(first.back().id, 3);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].id == ids[3]);
    CHECK(rest[1].id == ids[4]);
    CHECK(r->parked_events(ids[4], 3).empty());
  }

  TEST_CASE("sagas on another version and sagas of a trace") {
    auto t = saga::test::make_store_under_test();
    auto& st = t->store();
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    st.begin();
    int n = 0;
    for (const auto& [key, version] : std::vector<std::pair<std::string, std::int64_t>>{
             {"v1-a", 1}, {"v2-a", 2}, {"v1-b", 1}, {"v3-a", 3}}) {
      saga::instance_record i;
      i.definition = "d";
      i.key = key;
      i.state = "s";
      i.data = "{}";
      i.version = 1;
      i.fingerprint = "f";
      i.definition_version = version;
      i.created_ms = i.updated_ms = i.state_since_ms = t0 + n;
      st.save_instance(i);
      saga::history_record h;
      h.definition = "d";
      h.key = key;
      h.version = 1;
      h.event_id = "e-" + key;
      h.event_source = "urn:test";
      h.event_type = "t";
      h.event_time = "2026-01-01T00:00:00Z";
      h.event_data = "{}";
      h.from_state = "new";
      h.to_state = "s";
      h.outcome = "transitioned";
      h.recorded_ms = t0 + n;
      h.definition_version = version;
      if (n % 2 == 0) h.traceparent = "00-" + trace + "-00f067aa0ba902b7-01";
      st.append_history(h);
      ++n;
    }
    st.commit();
    auto r = t->open_reader();
    saga::saga_filter off;
    off.not_on_version = 2;
    CHECK(keys(r->sagas(off)) == std::vector<std::string>{"d/v1-a", "d/v1-b", "d/v3-a"});
    off.not_on_version = 1;
    CHECK(keys(r->sagas(off)) == std::vector<std::string>{"d/v2-a", "d/v3-a"});

    saga::saga_filter traced;
    traced.trace_id = trace;
    CHECK(keys(r->sagas(traced)) == std::vector<std::string>{"d/v1-a", "d/v1-b"});
    traced.trace_scan = 2;  // the newest two history rows: v1-b's and v3-a's
    CHECK(keys(r->sagas(traced)) == std::vector<std::string>{"d/v1-b"});
    traced.trace_scan = 1;
    CHECK(r->sagas(traced).empty());
    traced.trace_id = std::string(32, '0');
    traced.trace_scan = 100;
    CHECK(r->sagas(traced).empty());
  }

  TEST_CASE("orphaned sagas and due timer counts name a definition that is not registered") {
    filled f;
    {
      auto& st = f.t->store();
      auto o3 = st.load_instance("order_lifecycle", "o-3");
      REQUIRE(o3);
      o3->state = "vanished";
      st.begin();
      st.save_instance(*o3);
      st.commit();
    }
    auto r = f.reader();
    CHECK(keys(r->orphaned_sagas(10)) == std::vector<std::string>{"legacy/o-1", "order_lifecycle/o-3"});
    CHECK(r->orphaned_sagas(1).size() == 1);
    CHECK(r->orphaned_sagas(0).empty());
    using counts = std::vector<std::pair<std::string, std::int64_t>>;
    CHECK(r->due_timer_counts(t0 + 20 * minute) == counts{{"legacy", 1}, {"order_lifecycle", 1}});
    CHECK(r->due_timer_counts(t0 + 30 * minute) == counts{{"legacy", 1}, {"order_lifecycle", 2}});
    CHECK(r->due_timer_counts(t0 + 15 * minute) == counts{{"legacy", 1}, {"order_lifecycle", 1}});  // at: due
    CHECK(r->due_timer_counts(t0 - 2 * minute).empty());
  }

  TEST_CASE("armed timers of every saga soonest first with due_before and a limit") {
    filled f;
    auto r = f.reader();
    const auto all = r->armed_timers(std::nullopt, 100);
    REQUIRE(all.size() == 4);
    CHECK(all[0].definition == "legacy");
    CHECK(all[1].key == "o-1");
    CHECK(all[1].name == "payment_timeout");
    CHECK(all[1].due_ms == t0 + 15 * minute);
    CHECK(all[2].key == "o-4");
    CHECK(all[3].name == "shipment_deadline");
    CHECK(r->armed_timers(t0 + 20 * minute, 100).size() == 2);
    CHECK(r->armed_timers(t0 + 15 * minute, 100).size() == 1);  // exclusive
    CHECK(r->armed_timers(std::nullopt, 1).size() == 1);
    CHECK(r->armed_timers(std::nullopt, 0).empty());
    // Merged across definitions (each read through its own index), then cut to the limit.
    const auto two = r->armed_timers(std::nullopt, 2);
    REQUIRE(two.size() == 2);
    CHECK(two[0].definition == "legacy");
    CHECK(two[1].key == "o-1");
    CHECK(two[1].name == "payment_timeout");
  }

  TEST_CASE("outbox rows by sequence range and unpublished only") {
    filled f;
    auto r = f.reader();
    CHECK(sequences(r->outbox({})) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7});
    saga::outbox_filter range;
    range.from_sequence = 3;
    range.through_sequence = 5;
    const auto rows = r->outbox(range);
    CHECK(sequences(rows) == std::vector<std::int64_t>{3, 4, 5});
    CHECK(rows[0].published_ms == t0 + 12 * minute);
    CHECK(rows[0].definition == "order_lifecycle");
    CHECK(rows[0].key == "o-2");
    CHECK(rows[0].created_ms == t0);
    CHECK(json::parse(rows[0].payload)["type"] == rows[0].type);
    CHECK_FALSE(rows[1].published_ms);
    saga::outbox_filter pending;
    pending.unpublished_only = true;
    CHECK(sequences(r->outbox(pending)) == std::vector<std::int64_t>{4, 5, 6, 7});
    pending.limit = 2;
    CHECK(sequences(r->outbox(pending)) == std::vector<std::int64_t>{4, 5});
    pending.limit = 0;
    CHECK(r->outbox(pending).empty());
    CHECK(r->last_published_sequence() == 3);
  }

  TEST_CASE("the last published sequence survives the pruning of its rows") {
    filled f;
    auto& st = f.t->store();
    st.begin();
    CHECK(st.prune(t0 + 13 * minute, 0, 100) == 3);  // the published prefix 1..3
    st.commit();
    auto r = f.reader();
    CHECK(sequences(r->outbox({})) == std::vector<std::int64_t>{4, 5, 6, 7});
    CHECK(r->last_published_sequence() == 3);
    CHECK(sequences(r->follow_on_events("order_lifecycle", "o-2")) == std::vector<std::int64_t>{4});
  }

  TEST_CASE("dead letters with count last and truncated and one by id") {
    filled f;
    auto r = f.reader();
    const auto rows = r->dead_letters(0, 10);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].type == "no.such.type");
    CHECK(rows[0].subject == "o-9");
    CHECK(rows[0].count == 2);
    CHECK(rows[0].created_ms == t0 + minute);
    CHECK(rows[0].last_ms == t0 + minute);
    CHECK_FALSE(rows[0].truncated);
    CHECK(rows[0].reason.find("no definition consumes") != std::string::npos);
    const auto one = r->dead_letter(rows[0].id);
    REQUIRE(one);
    CHECK(json::parse(one->payload)["type"] == "no.such.type");
    CHECK_FALSE(r->dead_letter(rows[0].id + 1));
    CHECK(r->dead_letters(rows[0].id, 10).empty());
    CHECK(r->dead_letters(0, 0).empty());
    CHECK(r->dead_letters(std::numeric_limits<std::int64_t>::min(), 10).size() == 1);
  }

  TEST_CASE("a dead letter's payload comes back byte for byte even when it is not UTF-8") {
    auto t = saga::test::make_store_under_test();
    const std::string bytes = "{\"x\":\"\xff\xfe\"}";
    saga::dead_letter_record d;
    d.event_id = "bad-1";
    d.source = "urn:test";
    d.type = "t";
    d.subject = "s";
    d.reason = "not UTF-8";
    d.payload = bytes;
    d.created_ms = t0;
    d.truncated = true;
    d.sender = "svc";
    auto& st = t->store();
    st.begin();
    const auto id = st.add_dead_letter(d);
    st.commit();
    auto r = t->open_reader();
    const auto one = r->dead_letter(id);
    REQUIRE(one);
    CHECK(one->payload == bytes);
    CHECK(one->truncated);
    CHECK(one->sender == "svc");
    CHECK(one->count == 1);
    CHECK(one->last_ms == t0);
    const auto in = r->inbound("urn:test", "bad-1");
    REQUIRE(in.dead_letter);
    CHECK(in.dead_letter->payload == bytes);
  }

  TEST_CASE("inbound finds an event's inbox row or its newest dead letter") {
    filled f;
    auto r = f.reader();
    const auto placed = r->history("order_lifecycle", "o-1").at(0);
    const auto in = r->inbound(placed.event_source, placed.event_id);
    REQUIRE(in.inbox);
    CHECK(in.inbox->definition == "order_lifecycle");
    CHECK(in.inbox->key == "o-1");
    CHECK(in.inbox->received_ms == t0);
    CHECK(json::parse(in.inbox->ack)["status"] == "accepted");
    CHECK_FALSE(in.dead_letter);
    CHECK(in.oldest_inbox_ms == t0);

    const auto dead = r->dead_letters(0, 1).at(0);
    const auto rejected = r->inbound(dead.source, dead.event_id);
    CHECK_FALSE(rejected.inbox);
    REQUIRE(rejected.dead_letter);
    CHECK(rejected.dead_letter->id == dead.id);

    const auto never = r->inbound("urn:test", "never-sent");
    CHECK_FALSE(never.inbox);
    CHECK_FALSE(never.dead_letter);
    CHECK(never.oldest_inbox_ms == t0);
    CHECK_FALSE(r->inbound(placed.event_source + "x", placed.event_id).inbox);
  }

  TEST_CASE("counts by state totals and events received per interval") {
    filled f;
    auto r = f.reader();
    const auto states = r->counts_by_state();
    REQUIRE(states.size() == 4);
    CHECK(states[0].definition == "legacy");
    CHECK(states[1].state == "awaiting_shipment");
    CHECK(states[2].state == "cancelled");
    CHECK(states[3].state == "placed");
    CHECK(states[3].sagas == 2);
    CHECK(states[3].definition_version == 1);

    const auto t = r->totals();
    CHECK(t.sagas == 5);
    CHECK(t.outbox == 7);
    CHECK(t.unpublished == 4);
    CHECK(t.oldest_unpublished_ms == t0);
    CHECK(t.dead_letters == 1);
    CHECK(t.parked == 1);
    CHECK(t.armed_timers == 4);
    CHECK(t.inbox >= 8);

    const auto per_minute = r->received_per_interval(t0, t0 + 15 * minute, minute);
    REQUIRE(per_minute.size() == 15);
    CHECK(per_minute[0] == 5);  // o-1 and o-2's four events
    CHECK(per_minute[1] >= 2);  // o-3's two
    CHECK(per_minute[11] == 1);
    CHECK(r->received_per_interval(t0, t0 + 90'000, minute).size() == 2);
    CHECK(r->received_per_interval(t0, t0, minute).empty());
    CHECK_THROWS_AS(r->received_per_interval(t0, t0 + minute, 0), std::invalid_argument);
  }

  // The counts and totals come from what the store keeps at write time (SQLite schema 11), not
  // from counting the tables: after every kind of write, a rolled-back one and a reopening they
  // must still equal the rows.
  TEST_CASE("counts by state and totals equal the rows after every kind of write") {
    filled f;
    auto& st = f.t->store();
    const auto agree = [&](const std::string& after) {
      INFO("after ", after);
      auto r = f.reader();
      std::vector<std::string> kept;
      for (const auto& c : r->counts_by_state())
        kept.push_back(c.definition + "/" + std::to_string(c.definition_version) + "/" + c.state + "=" +
                       std::to_string(c.sagas));
      auto counted = f.t->column(
          "SELECT definition || '/' || definition_version || '/' || state || '=' || count(*) FROM instances"
          " GROUP BY definition, definition_version, state");
      std::sort(kept.begin(), kept.end());
      std::sort(counted.begin(), counted.end());
      CHECK(kept == counted);
      const auto t = r->totals();
      CHECK(t.sagas == f.t->count("instances"));
      CHECK(t.inbox == f.t->count("inbox"));
      CHECK(t.outbox == f.t->count("outbox"));
      CHECK(t.dead_letters == f.t->count("dead_letters"));
      CHECK(t.parked == f.t->count("parked"));
      CHECK(t.armed_timers == static_cast<std::int64_t>(r->armed_timers(std::nullopt, 1000).size()));
      CHECK(t.unpublished == f.t->unpublished_rows());
      // Whole minutes (SQLite keeps them counted) against the inbox's rows of those minutes.
      const auto from = t0 - 120 * minute, before = t0 + 120 * minute;
      std::int64_t received = 0;
      for (const auto n : r->received_per_interval(from, before, minute)) received += n;
      CHECK(received ==
            std::stoll(f.t->scalar("SELECT count(*) FROM inbox WHERE received_ms >= " + std::to_string(from) +
                                   " AND received_ms < " + std::to_string(before))));
    };
    agree("filling");

    filling more(st, t0 + 20 * minute);
    more.ok(ev("payment.succeeded", "o-1"));    // placed -> paid, its timer disarmed
    more.ok(ev("payment.failed", "o-4"));       // placed -> cancelled
    more.ok(ev("shipment.dispatched", "o-2"));  // delivery.started is replayed from parked
    more.ok(ev("order.placed", "o-5", order("o-5")));
    agree("transitions");

    // A transaction rolled back, and one with a savepoint rolled back inside it.
    auto o5 = st.load_instance("order_lifecycle", "o-5");
    REQUIRE(o5);
    st.begin();
    auto moved = *o5;
    moved.state = "paid";
    st.save_instance(moved);
    st.disarm_timer("order_lifecycle", "o-5", "payment_timeout");
    st.append_outbox(saga::outbox_record{0, "x-1", "t", "order_lifecycle", "o-5", "{}", t0, std::nullopt});
    st.insert_inbox({"urn:x", "x-1", "order_lifecycle", "o-5", "{}", t0});
    st.rollback();
    agree("a rollback");
    st.begin();
    st.insert_inbox({"urn:x", "x-2", "order_lifecycle", "o-5", "{}", t0});
    st.savepoint();
    st.save_instance(moved);
    st.arm_timer("order_lifecycle", "o-5", "extra", t0 + 99 * minute);
    st.insert_inbox({"urn:x", "x-3", "order_lifecycle", "o-5", "{}", t0});
    st.rollback_to_savepoint();
    st.arm_timer("order_lifecycle", "o-5", "second", t0 + 98 * minute);
    st.commit();
    agree("a savepoint rolled back");

    // Sagas migrated to another version, finished ones purged, old rows pruned.
    auto o1 = st.load_instance("order_lifecycle", "o-1");
    REQUIRE(o1);
    o1->definition_version = 2;
    st.save_instance(*o1);
    agree("a version change");
    CHECK(st.purge_finished("order_lifecycle", {"cancelled"}, t0 + 60 * minute, 10) == 2);
    agree("a purge");
    CHECK(st.prune(t0 + 60 * minute, t0 + 60 * minute, 1000) > 0);
    agree("a prune");
    f.t->reopen();
    filling again(f.t->store(), t0 + 70 * minute);
    again.ok(ev("order.placed", "o-6", order("o-6")));
    agree("reopening");
  }

  TEST_CASE("counts by state and definitions per definition version") {
    filled f;
    auto& st = f.t->store();
    auto o4 = st.load_instance("order_lifecycle", "o-4");
    REQUIRE(o4);
    const auto v1 = st.load_definition("order_lifecycle", 1);
    REQUIRE(v1);
    auto v2 = *v1;
    v2.version = 2;
    v2.fingerprint = "fp-v2";
    v2.registered_ms = t0 + 20 * minute;
    o4->definition_version = 2;
    st.begin();
    st.save_definition(v2);
    st.save_instance(*o4);
    st.commit();
    auto r = f.reader();
    const auto states = r->counts_by_state();
    REQUIRE(states.size() == 5);
    CHECK(states[3].state == "placed");
    CHECK(states[3].definition_version == 1);
    CHECK(states[3].sagas == 1);
    CHECK(states[4].state == "placed");
    CHECK(states[4].definition_version == 2);
    CHECK(states[4].sagas == 1);

    const auto defs = r->definitions();
    REQUIRE(defs.size() == 2);
    CHECK(defs[0].version == 1);
    CHECK(defs[1].version == 2);
    CHECK(r->definition("order_lifecycle")->fingerprint == "fp-v2");  // the newest
    CHECK(r->definition("order_lifecycle", 1)->fingerprint == v1->fingerprint);
    CHECK_FALSE(r->definition("order_lifecycle", 3));
    const auto v = saga::read_saga(*r, "order_lifecycle", "o-4");
    REQUIRE(v);
    REQUIRE(v->definition);
    CHECK(v->definition->version == 2);  // the version it runs on
  }

  TEST_CASE("definitions with their graphs and what a purge would remove") {
    filled f;
    auto r = f.reader();
    const auto defs = r->definitions();
    REQUIRE(defs.size() == 1);
    CHECK(defs[0].name == "order_lifecycle");
    CHECK(defs[0].version == 1);
    CHECK(defs[0].registered_ms == t0);
    const auto g = saga::graph_from_json(json::parse(defs[0].graph));
    CHECK(g.has_state("awaiting_shipment"));
    CHECK(g.fingerprint == defs[0].fingerprint);
    CHECK(r->definition("order_lifecycle"));
    CHECK_FALSE(r->definition("legacy"));

    const auto n = r->count_finished("order_lifecycle", {"cancelled", "done", "cancelled"}, t0 + 2 * minute);
    CHECK(n.sagas == 1);
    CHECK(n.history == 2);
    CHECK(r->count_finished("order_lifecycle", {"cancelled"}, t0 + minute).sagas == 0);  // exclusive
    CHECK(r->count_finished("order_lifecycle", {}, t0 + 2 * minute).sagas == 0);
  }

  TEST_CASE("injection strings in every filter return nothing and change nothing") {
    filled f;
    auto rp = f.reader();
    auto& r = *rp;
    const auto before = r.totals();
    for (const std::string& bad : std::vector<std::string>{
             "x' OR '1'='1", "'; DROP TABLE instances; --", "o-1\" OR 1=1 --", "%", "order_lifecycle' --",
             "$1", std::string("o-1\0x", 5), "o-\xff\xfe", "o-\xc0\xaf", "o-\xed\xa0\x80"}) {
      CAPTURE(bad);
      CHECK(r.definitions_of(bad).empty());
      CHECK_FALSE(r.instance(bad, "o-1"));
      CHECK_FALSE(r.instance("order_lifecycle", bad));
      CHECK(r.history(bad, bad).empty());
      CHECK(r.timers("order_lifecycle", bad).empty());
      CHECK(r.parked("order_lifecycle", bad).empty());
      CHECK(r.follow_on_events("order_lifecycle", bad).empty());
      saga::saga_filter by_definition;
      by_definition.definition = bad;
      CHECK(r.sagas(by_definition).empty());
      saga::saga_filter by_state;
      by_state.state = bad;
      CHECK(r.sagas(by_state).empty());
      saga::saga_filter paged;
      paged.after = saga::saga_position{std::numeric_limits<std::int64_t>::max(), bad, bad};
      CHECK(r.sagas(paged).empty());
      CHECK_FALSE(r.definition(bad));
      CHECK(r.count_finished(bad, {bad}, std::numeric_limits<std::int64_t>::max()).sagas == 0);
      CHECK(r.count_finished("order_lifecycle", {bad}, std::numeric_limits<std::int64_t>::max()).sagas == 0);
      CHECK_FALSE(r.inbound(bad, bad).inbox);
    }
    CHECK(r.sagas({}).size() == 5);
    const auto after = r.totals();
    CHECK(after.sagas == before.sagas);
    CHECK(after.inbox == before.inbox);
    CHECK(after.outbox == before.outbox);
    CHECK(after.dead_letters == before.dead_letters);
  }

  TEST_CASE("a snapshot reads one state while the store commits") {
    filled f;
    auto r = f.reader();
    filling more(f.t->store(), t0 + 20 * minute);

    r->begin_snapshot();
    const auto before = r->totals().sagas;
    r->begin_snapshot();  // nested: the same snapshot
    more.ok(ev("order.placed", "o-5", order("o-5")));
    CHECK(r->totals().sagas == before);
    CHECK_FALSE(r->instance("order_lifecycle", "o-5"));
    CHECK(r->definitions_of("o-5").empty());
    r->end_snapshot();
    CHECK(r->totals().sagas == before);
    r->end_snapshot();
    CHECK(r->totals().sagas == before + 1);
    CHECK(r->instance("order_lifecycle", "o-5"));
    r->end_snapshot();  // unbalanced: harmless
    CHECK(r->instance("order_lifecycle", "o-5"));
  }

  TEST_CASE("outside a snapshot every call sees what was committed before it") {
    filled f;
    auto r = f.reader();
    CHECK(r->totals().sagas == 5);
    filling more(f.t->store(), t0 + 20 * minute);
    more.ok(ev("order.placed", "o-6", order("o-6")));
    CHECK(r->totals().sagas == 6);
    CHECK(r->instance("order_lifecycle", "o-6"));
  }

  TEST_CASE("a read failing inside read_saga ends its snapshot and the reader goes on") {
    filled f;
    auto r = f.reader();
    struct failing_history : saga::reader_wrapper {
      using saga::reader_wrapper::reader_wrapper;
      int snapshots = 0;
      void begin_snapshot() override {
        ++snapshots;
        reader_wrapper::begin_snapshot();
      }
      void end_snapshot() noexcept override {
        --snapshots;
        reader_wrapper::end_snapshot();
      }
      std::vector<saga::history_record> history(std::string_view, std::string_view) override {
        throw saga::store_error("history: disk I/O error");
      }
    } failing(*r);
    CHECK_THROWS_AS(saga::read_saga(failing, "order_lifecycle", "o-2"), saga::store_error);
    CHECK(failing.snapshots == 0);

    // The snapshot really ended: a commit made now is seen.
    {
      filling more(f.t->store(), t0 + 30 * minute);
      more.ok(ev("order.placed", "o-8", order("o-8")));
    }
    CHECK(failing.instance("order_lifecycle", "o-8"));
    CHECK(failing.totals().sagas == 6);
  }
}
