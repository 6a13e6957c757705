// The store port's contract, run against every store (issue 17): the same test cases for
// saga::sqlite::store and saga::postgres::store, chosen by SAGA_TEST_STORE (store_under_test.hpp).
// ctest runs this executable twice, as store_contract/sqlite/... and store_contract/postgres/...
// What is particular to one store (SQLite's files, WAL, old schemas, trigger-kept counts; PostgreSQL's
// schemas and connections) is tested in tests/sqlite/ and tests/postgres/.

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/records.hpp"
#include "store/store_under_test.hpp"
#include "support/number_outbox.hpp"

namespace {

using namespace saga::test;

struct dead_letter_row {
  std::int64_t count = 0, created_ms = 0, last_ms = 0;
  bool truncated = false;
  std::string reason;
};

dead_letter_row dead_letter_of(store_under_test& t, std::int64_t id) {
  const auto field = [&](const std::string& expression) {
    return t.scalar("SELECT " + expression + " FROM dead_letters WHERE id = " + std::to_string(id));
  };
  return {std::stoll(field("count")), std::stoll(field("created_ms")), std::stoll(field("last_ms")),
          field("CASE WHEN truncated THEN 1 ELSE 0 END") == "1", field("reason")};
}

std::vector<std::string> dead_letter_ids(store_under_test& t) {
  return t.column("SELECT event_id FROM dead_letters ORDER BY event_id");
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

TEST_SUITE("store_contract") {
  TEST_CASE("reopening a store keeps its data") {
    auto t = make_store_under_test();
    {
      auto& s = t->store();
      s.begin();
      s.save_instance(instance("o-1", "placed"));
      s.insert_inbox(inbox("e-1"));
      CHECK(s.append_outbox(outbox("out-1")) == 1);
      s.save_definition({"order_lifecycle", 1, "fp1", R"({"states":[]})", 42});
      s.commit();
    }
    t->reopen();
    auto& s = t->store();
    const auto loaded = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(loaded);
    CHECK(loaded->state == "placed");
    CHECK(loaded->data == R"({"order_id":"o-1"})");
    CHECK(loaded->correlation_id == "evt-o-1");
    CHECK(loaded->created_ms == 1000);
    CHECK(loaded->state_since_ms == 1001);
    CHECK(s.find_ack("urn:shop", "e-1") == std::optional<std::string>(R"({"status":"accepted"})"));
    CHECK_FALSE(s.find_ack("urn:shop", "e-2"));
    CHECK_FALSE(s.find_ack("urn:other", "e-1"));
    const auto def = s.load_definition("order_lifecycle", 1);
    REQUIRE(def);
    CHECK(def->fingerprint == "fp1");
    CHECK(def->registered_ms == 42);
    CHECK_FALSE(s.load_definition("payment_notice", 1));
    CHECK(s.append_outbox(outbox("out-2")) == 2);
  }

  TEST_CASE("outbox sequences are never reused after pruning and last_published survives it") {
    auto t = make_store_under_test();
    auto& s = t->store();
    CHECK(s.first_retained_sequence() == 0);
    CHECK(s.last_published_sequence() == 0);

    s.begin();
    CHECK(s.append_outbox(outbox("a")) == 1);
    CHECK(s.append_outbox(outbox("b")) == 2);
    CHECK(s.append_outbox(outbox("c")) == 3);
    s.insert_inbox(inbox("old", 100));
    s.insert_inbox(inbox("new", 9000));
    s.commit();
    number_outbox(s, 3);

    auto pending = s.unpublished(0, 10);
    REQUIRE(pending.size() == 3);
    CHECK(pending[0].sequence == 1);
    CHECK(pending[2].event_id == "c");
    CHECK_FALSE(pending[0].published_ms);
    CHECK(s.unpublished(1, 1).at(0).sequence == 2);

    // A range past the end marks what exists and announces nothing that was never written.
    s.mark_published(1, 100, 5000);
    CHECK(s.last_published_sequence() == 3);
    CHECK(s.unpublished(0, 10).empty());
    auto published = s.published_range(2, 10);
    REQUIRE(published.size() == 2);
    CHECK(published[0].sequence == 2);
    CHECK(published[0].published_ms == std::optional<std::int64_t>(5000));
    // Marking again does not move the publication time.
    s.mark_published(1, 3, 7000);
    CHECK(s.published_range(1, 1).at(0).published_ms == std::optional<std::int64_t>(5000));

    // Three outbox rows and the old inbox row go; the recent inbox row stays.
    CHECK(s.prune(6000, 5000, 100) == 4);
    CHECK(s.first_retained_sequence() == 0);
    CHECK(s.last_published_sequence() == 3);
    CHECK(s.published_range(1, 10).empty());
    CHECK(s.find_ack("urn:shop", "new"));
    CHECK_FALSE(s.find_ack("urn:shop", "old"));

    CHECK(s.append_outbox(outbox("d")) == 4);
    number_outbox(s, 1);
    CHECK(s.first_retained_sequence() == 4);
    CHECK(s.unpublished(s.last_published_sequence(), 10).at(0).event_id == "d");
    // Unpublished rows are never pruned, however old.
    CHECK(s.prune(1'000'000, 0, 100) == 0);
    CHECK(s.first_retained_sequence() == 4);
  }

  // Subscribers see a gap as lost events: a rollback must not leave one. A store numbering at
  // insert gives the sequences back; one numbering after the commit never numbers them.
  TEST_CASE("a rolled-back transaction leaves no gap in the outbox sequences") {
    auto t = make_store_under_test();
    auto& s = t->store();
    const bool at_insert = s.sequences_at_insert();
    s.begin();
    CHECK(s.append_outbox(outbox("a")) == 1);
    s.commit();
    s.begin();
    CHECK(s.append_outbox(outbox("b")) == 2);
    CHECK(s.append_outbox(outbox("c")) == 3);
    s.rollback();
    s.begin();
    s.savepoint();
    const auto d = s.append_outbox(outbox("d"));
    if (at_insert) CHECK(d == 2);
    s.rollback_to_savepoint();
    const auto e = s.append_outbox(outbox("e"));
    if (at_insert) CHECK(e == 2);
    s.commit();
    number_outbox(s, 2);
    const auto rows = s.unpublished(0, 10);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].sequence == 1);
    CHECK(rows[1].sequence == 2);
    CHECK(rows[1].event_id == "e");
  }

  TEST_CASE("timers count their generation across disarming and re-arming") {
    auto t = make_store_under_test();
    auto& s = t->store();
    saga_of(s, "order_lifecycle", "o-1");
    saga_of(s, "order_lifecycle", "o-2");
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 500) == 1);
    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 700) == 2);
    auto mine = s.timers_of("order_lifecycle", "o-1");
    REQUIRE(mine.size() == 1);
    CHECK(mine[0].due_ms == 700);
    CHECK(mine[0].generation == 2);

    s.disarm_timer("order_lifecycle", "o-1", "payment_timeout");
    CHECK(s.timers_of("order_lifecycle", "o-1").empty());
    CHECK(s.due_timers(1'000'000, 10, {"order_lifecycle"}).empty());
    s.disarm_timer("order_lifecycle", "o-1", "never_armed");  // harmless

    CHECK(s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 900) == 3);
    // Another timer of the same saga, and the same name on another saga, count on their own.
    CHECK(s.arm_timer("order_lifecycle", "o-1", "shipment_deadline", 300) == 1);
    CHECK(s.arm_timer("order_lifecycle", "o-2", "payment_timeout", 600) == 1);

    auto due = s.due_timers(800, 10, {"order_lifecycle"});
    REQUIRE(due.size() == 2);
    CHECK(due[0].name == "shipment_deadline");
    CHECK(due[0].due_ms == 300);
    CHECK(due[1].key == "o-2");
    CHECK(s.due_timers(800, 1, {"order_lifecycle"}).size() == 1);
    CHECK(s.due_timers(299, 10, {"order_lifecycle"}).empty());
    CHECK(s.due_timers(900, 10, {"order_lifecycle"}).size() == 3);
    CHECK(s.timers_of("order_lifecycle", "o-1").size() == 2);

    // A saga's timers are kept in its instance row: one with no row cannot have any.
    const auto refused = error_of([&] { s.arm_timer("order_lifecycle", "o-9", "payment_timeout", 1); });
    CHECK(refused.find("arm_timer") != std::string::npos);
    CHECK(refused.find("order_lifecycle/o-9") != std::string::npos);
    s.disarm_timer("order_lifecycle", "o-9", "payment_timeout");  // nothing to disarm: harmless
    CHECK(s.timers_of("order_lifecycle", "o-9").empty());
  }

  // A timer whose name needs quoting in a JSON path is armed, listed, disarmed and re-armed like
  // any other, and leaves its neighbours alone.
  TEST_CASE("timer names are data: quotes and dots and brackets in a name") {
    auto t = make_store_under_test();
    auto& s = t->store();
    saga_of(s, "order_lifecycle", "o-1");
    const std::string odd = R"(a"b.c[0]\)";
    CHECK(s.arm_timer("order_lifecycle", "o-1", odd, 500) == 1);
    CHECK(s.arm_timer("order_lifecycle", "o-1", "plain", 400) == 1);
    auto mine = s.timers_of("order_lifecycle", "o-1");
    REQUIRE(mine.size() == 2);
    CHECK(mine[0].name == odd);
    CHECK(mine[1].name == "plain");
    s.disarm_timer("order_lifecycle", "o-1", odd);
    REQUIRE(s.timers_of("order_lifecycle", "o-1").size() == 1);
    CHECK(s.due_timers(1000, 10, {"order_lifecycle"}).at(0).name == "plain");
    CHECK(s.arm_timer("order_lifecycle", "o-1", odd, 300) == 2);
    const auto due = s.due_timers(1000, 10, {"order_lifecycle"});
    REQUIRE(due.size() == 2);
    CHECK(due[0].name == odd);
    CHECK(due[0].due_ms == 300);
  }

  TEST_CASE(
      "due_timers returns only the named definitions' timers and others neither block nor crowd them out") {
    auto t = make_store_under_test();
    auto& s = t->store();
    for (const auto& [definition, key] :
         std::vector<std::pair<std::string, std::string>>{{"order_lifecycle", "o-1"},
                                                          {"payment_notice", "p-1"},
                                                          {"order_lifecycle", "o-2"},
                                                          {"other_retired", "x"},
                                                          {"other_retired", "y"}})
      saga_of(s, definition, key);
    // Five timers of a definition this sagad does not run, all due before ours.
    for (int i = 0; i < 5; ++i) {
      saga_of(s, "retired", "r-" + std::to_string(i));
      s.arm_timer("retired", "r-" + std::to_string(i), "t", 100 + i);
    }
    s.arm_timer("order_lifecycle", "o-1", "payment_timeout", 500);
    s.arm_timer("payment_notice", "p-1", "reminder", 400);
    s.arm_timer("order_lifecycle", "o-2", "payment_timeout", 2000);  // not due yet
    s.arm_timer("other_retired", "x", "t", 300);
    s.arm_timer("other_retired", "y", "t", 5000);  // not due

    const std::vector<std::string> ours{"order_lifecycle", "payment_notice"};
    auto due = s.due_timers(1000, 2, ours);
    REQUIRE(due.size() == 2);
    CHECK(due[0].definition == "payment_notice");
    CHECK(due[0].due_ms == 400);
    CHECK(due[1].key == "o-1");
    CHECK(s.due_timers(1000, 1, ours).at(0).definition == "payment_notice");
    CHECK(s.due_timers(1000, 10, ours).size() == 2);
    CHECK(s.due_timers(1000, 10, {"order_lifecycle"}).size() == 1);
    CHECK(s.due_timers(1000, 10, {}).empty());
    CHECK(s.due_timers(1000, 0, ours).empty());
    CHECK(s.due_timers(3000, 10, ours).size() == 3);

    using counts = std::vector<std::pair<std::string, std::int64_t>>;
    CHECK(s.due_timers_elsewhere(1000, ours) == counts{{"other_retired", 1}, {"retired", 5}});
    CHECK(s.due_timers_elsewhere(102, ours) == counts{{"retired", 3}});
    CHECK(s.due_timers_elsewhere(10'000, {"order_lifecycle", "payment_notice", "retired"}) ==
          counts{{"other_retired", 2}});
    CHECK(s.due_timers_elsewhere(10'000, {"order_lifecycle", "payment_notice", "retired", "other_retired"})
              .empty());
    // Disarmed timers are not due anywhere.
    for (int i = 0; i < 5; ++i) s.disarm_timer("retired", "r-" + std::to_string(i), "t");
    CHECK(s.due_timers_elsewhere(1000, ours) == counts{{"other_retired", 1}});
  }

  TEST_CASE("parked events come back in arrival order and orphans are those without a saga") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("started", "placed"));
    const auto a1 = s.park(parked("started", "a1", 100));
    const auto o1 = s.park(parked("never", "o1", 100));
    const auto a2 = s.park(parked("started", "a2", 50));  // later arrival, earlier clock
    const auto o2 = s.park(parked("never", "o2", 300));
    CHECK(a1 < o1);
    CHECK(o1 < a2);
    CHECK(a2 < o2);

    auto mine = s.parked_of("order_lifecycle", "started");
    REQUIRE(mine.size() == 2);
    CHECK(mine[0].event_id == "a1");
    CHECK(mine[1].event_id == "a2");
    CHECK(mine[1].id == a2);
    CHECK(mine[1].parked_ms == 50);
    CHECK(mine[1].type == "payment.succeeded");
    CHECK(s.count_parked("order_lifecycle", "started") == 2);
    CHECK(s.count_parked("order_lifecycle", "nobody") == 0);

    auto orphans = s.orphaned_parked(200, 10);
    REQUIRE(orphans.size() == 1);
    CHECK(orphans[0].id == o1);
    orphans = s.orphaned_parked(1000, 10);
    REQUIRE(orphans.size() == 2);
    CHECK(orphans[0].event_id == "o1");
    CHECK(orphans[1].event_id == "o2");
    CHECK(s.orphaned_parked(1000, 1).size() == 1);

    s.remove_parked(a1);
    s.remove_parked(o1);
    CHECK(s.parked_of("order_lifecycle", "started").at(0).event_id == "a2");
    CHECK(s.orphaned_parked(1000, 10).at(0).event_id == "o2");
    // Once the saga exists its parked events are not orphans any more.
    s.save_instance(instance("never", "placed"));
    CHECK(s.orphaned_parked(1000, 10).empty());
  }

  TEST_CASE("a failed statement names the operation and the batch can still be rolled back") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.insert_inbox(inbox("e-1"));
    s.begin();
    s.append_outbox(outbox("x"));
    const auto error = error_of([&] { s.insert_inbox(inbox("e-1")); });
    CHECK(error.rfind("insert_inbox: ", 0) == 0);
    CHECK(lower(error).find("unique") != std::string::npos);
    CHECK_THROWS_AS(s.insert_inbox(inbox("e-1")), saga::store_error);
    s.rollback();
    CHECK_FALSE(s.in_transaction());
    CHECK(s.unpublished(0, 10).empty());
    s.rollback();  // nothing to roll back: still no exception

    CHECK_THROWS_WITH_AS(s.commit(), doctest::Contains("commit: "), saga::store_error);
  }

  TEST_CASE("instances_outside lists the keys whose state is not among the given ones") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("b", "legacy_state"));
    s.save_instance(instance("a", "placed"));
    s.save_instance(instance("c", "done"));
    s.save_instance(instance("B", "placed"));  // keys sort as bytes: "B" before "a"
    auto other = instance("d", "legacy_state");
    other.definition = "payment_notice";
    s.save_instance(other);

    CHECK(s.instances_outside("order_lifecycle", 1, {"placed", "done"}) == std::vector<std::string>{"b"});
    CHECK(s.instances_outside("order_lifecycle", 1, {}) == std::vector<std::string>{"B", "a", "b", "c"});
    CHECK(s.instances_outside("order_lifecycle", 1, {"placed", "done", "legacy_state"}).empty());
    CHECK(s.instances_outside("account_lockout", 1, {}).empty());

    // Inside a transaction, its own saves count.
    s.begin();
    s.save_instance(instance("e", "other_state"));
    s.save_instance(instance("b", "placed"));
    CHECK(s.instances_outside("order_lifecycle", 1, {"placed", "done"}) == std::vector<std::string>{"e"});
    s.rollback();
    CHECK(s.instances_outside("order_lifecycle", 1, {"placed", "done"}) == std::vector<std::string>{"b"});
  }

  // A version's states are checked against the sagas on that version only: a state that version 2
  // dropped is not an orphan of version 1's sagas, which still have it.
  TEST_CASE("instances_outside lists only the instances on the given definition version") {
    auto t = make_store_under_test();
    auto& s = t->store();
    const auto on = [&](const std::string& key, const std::string& state, std::int64_t definition_version) {
      auto r = instance(key, state);
      r.definition_version = definition_version;
      s.save_instance(r);
    };
    on("a", "placed", 1);
    on("b", "legacy_state", 1);
    on("c", "placed", 2);
    on("d", "reviewing", 2);
    on("e", "legacy_state", 3);

    CHECK(s.instances_outside("order_lifecycle", 1, {"placed"}) == std::vector<std::string>{"b"});
    CHECK(s.instances_outside("order_lifecycle", 2, {"placed"}) == std::vector<std::string>{"d"});
    CHECK(s.instances_outside("order_lifecycle", 2, {}) == std::vector<std::string>{"c", "d"});
    CHECK(s.instances_outside("order_lifecycle", 3, {}) == std::vector<std::string>{"e"});
    CHECK(s.instances_outside("order_lifecycle", 4, {}).empty());
    // A saga moved to another version (a migration) is listed under that one only.
    on("b", "legacy_state", 2);
    CHECK(s.instances_outside("order_lifecycle", 1, {"placed"}).empty());
    CHECK(s.instances_outside("order_lifecycle", 2, {"placed"}) == std::vector<std::string>{"b", "d"});
  }

  TEST_CASE("running_versions counts each definition version's unfinished instances") {
    auto t = make_store_under_test();
    auto& s = t->store();
    using counts = std::vector<std::pair<std::int64_t, std::int64_t>>;
    CHECK(s.running_versions("order_lifecycle").empty());
    const auto on = [&](const std::string& definition, const std::string& key,
                        std::int64_t definition_version, bool finished) {
      auto r = instance(key, finished ? "completed" : "placed");
      r.definition = definition;
      r.definition_version = definition_version;
      r.finished = finished;
      s.save_instance(r);
    };
    on("order_lifecycle", "o-1", 3, false);  // saved first, listed last: by version
    on("order_lifecycle", "o-2", 1, false);
    on("order_lifecycle", "o-3", 1, false);
    on("order_lifecycle", "o-4", 1, true);  // finished: not counted
    on("order_lifecycle", "o-5", 2, true);  // version 2 has finished sagas only: not listed
    on("payment_notice", "p-1", 1, false);  // another definition's
    on("payment_notice", "p-2", 2, false);
    CHECK(s.running_versions("order_lifecycle") == counts{{1, 2}, {3, 1}});
    CHECK(s.running_versions("payment_notice") == counts{{1, 1}, {2, 1}});
    CHECK(s.running_versions("account_lockout").empty());

    // A saga that finishes is no longer counted; one saved unfinished again (or migrated) is.
    on("order_lifecycle", "o-1", 3, true);
    on("order_lifecycle", "o-5", 2, false);
    on("order_lifecycle", "o-2", 2, false);
    CHECK(s.running_versions("order_lifecycle") == counts{{1, 1}, {2, 2}});
  }

  TEST_CASE("stored_versions lists the versions that have sagas whether finished or not") {
    auto t = make_store_under_test();
    auto& s = t->store();
    CHECK(s.stored_versions("order_lifecycle").empty());
    const auto on = [&](const std::string& key, std::int64_t definition_version, bool finished) {
      auto r = instance(key, finished ? "completed" : "placed");
      r.definition_version = definition_version;
      r.finished = finished;
      s.save_instance(r);
    };
    on("o-1", 3, false);
    on("o-2", 1, true);  // finished sagas count: their version is still stored
    on("o-3", 1, false);
    auto other = instance("p-1", "placed");
    other.definition = "payment_notice";
    other.definition_version = 7;
    s.save_instance(other);
    CHECK(s.stored_versions("order_lifecycle") == std::vector<std::int64_t>{1, 3});
    CHECK(s.stored_versions("payment_notice") == std::vector<std::int64_t>{7});

    // Inside a transaction, its own saves count; a migrated saga leaves its old version.
    s.begin();
    on("o-1", 4, false);
    CHECK(s.stored_versions("order_lifecycle") == std::vector<std::int64_t>{1, 4});
    s.rollback();
    CHECK(s.stored_versions("order_lifecycle") == std::vector<std::int64_t>{1, 3});
  }

  TEST_CASE("save_instance keeps the saga's creation time and correlation id") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("o-1", "placed", 1));
    auto next = instance("o-1", "paid", 2);
    next.created_ms = 99999;
    next.correlation_id = "other";
    s.save_instance(next);
    const auto loaded = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(loaded);
    CHECK(loaded->state == "paid");
    CHECK(loaded->version == 2);
    CHECK(loaded->updated_ms == 1002);
    CHECK(loaded->created_ms == 1000);
    CHECK(loaded->correlation_id == "evt-o-1");
    CHECK_FALSE(loaded->finished);
  }

  TEST_CASE("a definition's versions are stored side by side and each is loaded on its own") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_definition({"order_lifecycle", 1, "fp1", R"({"v":1})", 10});
    s.save_definition({"order_lifecycle", 2, "fp2", R"({"v":2})", 20});
    s.save_definition({"payment_notice", 2, "fp-p", R"({"p":2})", 30});
    const auto check = [&](std::int64_t version, const std::string& fingerprint, const std::string& graph,
                           std::int64_t registered_ms) {
      CAPTURE(version);
      const auto d = s.load_definition("order_lifecycle", version);
      REQUIRE(d);
      CHECK(d->name == "order_lifecycle");
      CHECK(d->version == version);
      CHECK(d->fingerprint == fingerprint);
      CHECK(d->graph == graph);
      CHECK(d->registered_ms == registered_ms);
    };
    check(1, "fp1", R"({"v":1})", 10);
    check(2, "fp2", R"({"v":2})", 20);
    CHECK_FALSE(s.load_definition("order_lifecycle", 3));
    CHECK_FALSE(s.load_definition("order_lifecycle", 0));
    CHECK_FALSE(s.load_definition("payment_notice", 1));
    CHECK(s.load_definition("payment_notice", 2)->fingerprint == "fp-p");

    // Saving a version again replaces that version's record and leaves the other alone.
    s.save_definition({"order_lifecycle", 2, "fp2b", R"({"v":"2b"})", 21});
    check(2, "fp2b", R"({"v":"2b"})", 21);
    check(1, "fp1", R"({"v":1})", 10);
    s.save_definition({"order_lifecycle", 1, "fp1b", R"({"v":"1b"})", 11});
    check(1, "fp1b", R"({"v":"1b"})", 11);
    check(2, "fp2b", R"({"v":"2b"})", 21);
    CHECK(t->count("definitions") == 3);
  }

  TEST_CASE("an instance's definition version is saved and loaded and an update changes it") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("o-1", "placed", 1));
    CHECK(s.load_instance("order_lifecycle", "o-1")->definition_version == 1);  // the default
    auto newer = instance("o-2", "placed", 1);
    newer.definition_version = 3;
    s.save_instance(newer);
    CHECK(s.load_instance("order_lifecycle", "o-2")->definition_version == 3);

    // A migration moves o-1 to version 2; the next save of o-2 keeps its version 3.
    auto migrated = instance("o-1", "paid", 2);
    migrated.definition_version = 2;
    s.save_instance(migrated);
    newer = instance("o-2", "paid", 2);
    newer.definition_version = 3;
    s.save_instance(newer);
    const auto loaded = s.load_instance("order_lifecycle", "o-1");
    REQUIRE(loaded);
    CHECK(loaded->definition_version == 2);
    CHECK(loaded->state == "paid");
    CHECK(s.load_instance("order_lifecycle", "o-2")->definition_version == 3);
    t->reopen();
    CHECK(t->store().load_instance("order_lifecycle", "o-1")->definition_version == 2);
  }

  // The port reads no history row back but saga_trace; the column is checked in SQL.
  TEST_CASE("a history row records the definition version that handled its event") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("o-1", "placed", 1));
    auto v2 = history_row("o-1", "a2", "transitioned", 2);
    v2.definition_version = 2;
    s.begin();
    s.append_history(history_row("o-1", "a1"));  // the default: version 1
    s.append_history(v2);
    s.commit();
    CHECK(t->column("SELECT definition_version FROM history ORDER BY event_id") ==
          std::vector<std::string>{"1", "2"});
  }

  TEST_CASE("a saga saved unfinished again is no longer a finished saga to purge") {
    auto t = make_store_under_test();
    auto& s = t->store();
    auto done = instance("o-1", "done", 1);
    done.state_since_ms = 100;
    done.finished = true;
    s.save_instance(done);
    CHECK(s.load_instance("order_lifecycle", "o-1")->finished);
    auto reopened = instance("o-1", "placed", 2);
    reopened.state_since_ms = 200;
    s.save_instance(reopened);
    CHECK_FALSE(s.load_instance("order_lifecycle", "o-1")->finished);
    CHECK(s.purge_finished("order_lifecycle", {"done", "placed"}, 1000, 10) == 0);
    CHECK(s.load_instance("order_lifecycle", "o-1"));
  }

  TEST_CASE("saga_trace is the trace context of the saga's newest history row") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.save_instance(instance("o-1", "placed", 1));
    s.begin();
    s.append_history(history_row("o-1", "a1"));
    s.commit();
    CHECK(s.saga_trace("order_lifecycle", "o-1").traceparent.empty());  // an event without one

    auto row = history_row("o-1", "a2", "transitioned", 2);
    row.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    row.tracestate = "rojo=1";
    row.extensions = R"({"region":"eu"})";
    s.begin();
    s.append_history(row);
    auto other = history_row("o-2", "b1");  // another saga's row, newer
    other.traceparent = "00-11111111111111111111111111111111-2222222222222222-01";
    s.append_history(other);
    s.commit();
    const auto trace = s.saga_trace("order_lifecycle", "o-1");
    CHECK(trace.traceparent == row.traceparent);
    CHECK(trace.tracestate == "rojo=1");
    CHECK(s.saga_trace("order_lifecycle", "nope").traceparent.empty());
    // A saga without an instance row has no trace to continue, whatever history it has.
    CHECK(s.saga_trace("order_lifecycle", "o-2").traceparent.empty());
  }

  TEST_CASE("a resent rejected event is one dead letter with a count and unparsed inputs each have a row") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.begin();
    const auto id = s.add_dead_letter(dead_letter("e-1", R"({"x":1})", 1000, "first reason"));
    CHECK(s.add_dead_letter(dead_letter("e-1", R"({"x":1})", 2000, "second reason")) == id);
    s.commit();
    CHECK(s.add_dead_letter(dead_letter("e-1", R"({"x":1})", 3000, "third reason")) == id);  // autocommit
    auto row = dead_letter_of(*t, id);
    CHECK(row.count == 3);
    CHECK(row.created_ms == 1000);
    CHECK(row.last_ms == 3000);
    CHECK(row.reason == "third reason");
    CHECK_FALSE(row.truncated);

    // Another payload under the same id, or the same id from another source, is another event.
    CHECK(s.add_dead_letter(dead_letter("e-1", R"({"x":2})", 4000)) != id);
    auto other_source = dead_letter("e-1", R"({"x":1})", 4000);
    other_source.source = "urn:other";
    CHECK(s.add_dead_letter(other_source) != id);

    // Inputs without an id are never merged.
    const auto u1 = s.add_dead_letter(dead_letter("", "not json", 5000));
    const auto u2 = s.add_dead_letter(dead_letter("", "not json", 5000));
    CHECK(u1 != u2);
    CHECK(dead_letter_of(*t, u2).count == 1);

    auto cut = dead_letter("e-9", "{\"big\":\"xx", 6000);
    cut.truncated = true;
    const auto cut_id = s.add_dead_letter(cut);
    CHECK(dead_letter_of(*t, cut_id).truncated);
    CHECK(dead_letter_of(*t, cut_id).last_ms == 6000);
    CHECK(t->count("dead_letters") == 6);
  }

  // An input that could not be parsed is kept as it came, whatever its bytes.
  TEST_CASE("a dead letter keeps a payload that is not UTF-8") {
    auto t = make_store_under_test();
    auto& s = t->store();
    const std::string bytes("\xff\xfe{\"a\":\xc3}", 9);
    const auto id = s.add_dead_letter(dead_letter("e-1", bytes, 1000));
    CHECK(s.add_dead_letter(dead_letter("e-1", bytes, 2000)) == id);
    CHECK(dead_letter_of(*t, id).count == 2);
  }

  TEST_CASE("dead letters are pruned by their last rejection and then capped by count in bounded steps") {
    auto t = make_store_under_test();
    auto& s = t->store();
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 10; ++i)
      ids.push_back(s.add_dead_letter(dead_letter("e-" + std::to_string(i), "{}", 1000 + i * 100)));
    // e-0 was first rejected long ago but again recently: its age is its last rejection.
    s.add_dead_letter(dead_letter("e-0", "{}", 5000));

    // Rows last rejected before 1350: e-1, e-2, e-3; at most two per call.
    CHECK(s.prune_dead_letters(1350, 100, 2) == 2);
    CHECK(s.prune_dead_letters(1350, 100, 2) == 1);
    CHECK(s.prune_dead_letters(1350, 100, 2) == 0);
    CHECK(t->count("dead_letters") == 7);
    CHECK(t->scalar("SELECT count(*) FROM dead_letters WHERE id = " + std::to_string(ids[0])) == "1");

    // Cap of 3: the oldest by last rejection go (e-4 .. e-7), e-8, e-9 and e-0 stay.
    CHECK(s.prune_dead_letters(0, 3, 3) == 3);
    CHECK(s.prune_dead_letters(0, 3, 3) == 1);
    CHECK(s.prune_dead_letters(0, 3, 3) == 0);
    CHECK(t->column("SELECT event_id FROM dead_letters ORDER BY id") ==
          std::vector<std::string>{"e-0", "e-8", "e-9"});
    CHECK(s.prune_dead_letters(0, 0, 0) == 0);  // a limit of zero deletes nothing
    CHECK(s.prune_dead_letters(0, 0, 10) == 3);
  }

  TEST_CASE("dead letters beyond keep_max are pruned per sender and the limit holds for all senders") {
    auto t = make_store_under_test();
    auto& s = t->store();
    auto from = [&](const std::string& sender, int i, std::int64_t at_ms) {
      auto d = dead_letter((sender.empty() ? "plain" : sender) + "-" + std::to_string(i), "{}", at_ms);
      d.sender = sender;
      return s.add_dead_letter(d);
    };
    for (int i = 0; i < 6; ++i) from("flood", i, 1000 + i);
    for (int i = 0; i < 3; ++i) from("orders", i, 2000 + i);
    for (int i = 0; i < 2; ++i) from("", i, 100 + i);  // the oldest of all, but within their cap
    from("flood", 0, 9000);                            // rejected again: its age is its last rejection

    // Two kept per sender: flood-1 .. flood-4 and orders-0 go, three rows per call.
    CHECK(s.prune_dead_letters(0, 2, 3) == 3);
    CHECK(s.prune_dead_letters(0, 2, 3) == 2);
    CHECK(s.prune_dead_letters(0, 2, 3) == 0);
    CHECK(dead_letter_ids(*t) ==
          std::vector<std::string>{"flood-0", "flood-5", "orders-1", "orders-2", "plain-0", "plain-1"});

    // Expired rows go first and share the limit with the cap: plain-0 and plain-1 are past the
    // retention, then one of the rows beyond a cap of one.
    CHECK(s.prune_dead_letters(1000, 1, 3) == 3);
    CHECK(s.prune_dead_letters(1000, 1, 3) == 1);
    CHECK(s.prune_dead_letters(1000, 1, 3) == 0);
    CHECK(dead_letter_ids(*t) == std::vector<std::string>{"flood-0", "orders-2"});
    CHECK(s.prune_dead_letters(0, 0, 0) == 0);  // a limit of zero deletes nothing
    CHECK(s.prune_dead_letters(0, 0, 10) == 2);
    CHECK(t->count("dead_letters") == 0);
  }

  TEST_CASE("a savepoint undoes one event's writes and keeps the rest of the transaction") {
    auto t = make_store_under_test();
    auto& s = t->store();
    CHECK_THROWS_WITH_AS(s.savepoint(), doctest::Contains("savepoint: no transaction"), saga::store_error);
    CHECK_FALSE(s.in_transaction());  // no transaction was started behind our back

    s.begin();
    s.save_instance(instance("kept", "placed"));
    s.savepoint();
    s.save_instance(instance("undone", "placed"));
    s.park(parked("undone", "p-1", 10));
    s.rollback_to_savepoint();
    CHECK(s.in_transaction());
    CHECK_FALSE(s.load_instance("order_lifecycle", "undone"));
    CHECK(s.count_parked_total() == 0);

    s.savepoint();  // the previous one is gone: this is again the only level
    s.save_instance(instance("second", "placed"));
    s.release_savepoint();
    s.savepoint();
    s.save_instance(instance("third", "placed"));
    s.release_savepoint();
    // Released means gone: there is nothing to roll back to, and the transaction goes on.
    CHECK_THROWS_AS(s.rollback_to_savepoint(), saga::store_error);
    s.commit();

    CHECK(s.load_instance("order_lifecycle", "kept"));
    CHECK(s.load_instance("order_lifecycle", "second"));
    CHECK(s.load_instance("order_lifecycle", "third"));
    CHECK_FALSE(s.load_instance("order_lifecycle", "undone"));
    CHECK_THROWS_AS(s.release_savepoint(), saga::store_error);
  }

  TEST_CASE("count_parked_total counts every saga's parked events as they come and go") {
    auto t = make_store_under_test();
    auto& s = t->store();
    CHECK(s.count_parked_total() == 0);
    const auto a = s.park(parked("o-1", "a", 10));
    s.park(parked("o-1", "b", 10));
    s.park(parked("o-2", "c", 10));
    CHECK(s.count_parked_total() == 3);
    s.remove_parked(a);
    CHECK(s.count_parked_total() == 2);
    s.begin();
    s.park(parked("o-3", "d", 10));
    s.rollback();
    CHECK(s.count_parked_total() == 2);
    // Rows deleted behind the store's back are counted out too.
    t->exec("DELETE FROM parked WHERE key = 'o-2'");
    CHECK(s.count_parked_total() == 1);
    CHECK(s.count_parked_total() == t->count("parked"));
  }

  TEST_CASE("count_parked_by_sender counts each sender's parked events as they come and go") {
    auto t = make_store_under_test();
    auto& s = t->store();
    auto from = [](const std::string& sender, const std::string& key, const std::string& id) {
      auto p = parked(key, id, 10);
      p.sender = sender;
      return p;
    };
    CHECK(s.count_parked_by_sender("payments") == 0);
    const auto a = s.park(from("payments", "o-1", "a"));
    s.park(from("payments", "o-2", "b"));
    s.park(from("orders", "o-1", "c"));
    s.park(from("", "o-3", "d"));
    CHECK(s.count_parked_by_sender("payments") == 2);
    CHECK(s.count_parked_by_sender("orders") == 1);
    CHECK(s.count_parked_by_sender("") == 1);
    CHECK(s.count_parked_total() == 4);
    s.remove_parked(a);
    CHECK(s.count_parked_by_sender("payments") == 1);
    CHECK(s.parked_of("order_lifecycle", "o-2").at(0).sender == "payments");

    // Rolled back with the transaction or with a savepoint: the counts go with the rows.
    s.begin();
    s.park(from("payments", "o-4", "e"));
    s.park(from("newcomer", "o-4", "f"));
    CHECK(s.count_parked_by_sender("payments") == 2);
    CHECK(s.count_parked_by_sender("newcomer") == 1);
    s.rollback();
    CHECK(s.count_parked_by_sender("payments") == 1);
    CHECK(s.count_parked_by_sender("newcomer") == 0);
    s.begin();
    s.savepoint();
    s.park(from("orders", "o-5", "g"));
    s.rollback_to_savepoint();
    s.commit();
    CHECK(s.count_parked_by_sender("orders") == 1);

    // Rows deleted behind the store's back are counted out too.
    t->exec("DELETE FROM parked WHERE key = 'o-3'");
    CHECK(s.count_parked_by_sender("") == 0);
  }

  TEST_CASE("prune deletes the outbox only as a prefix of the log and at most limit rows of each table") {
    auto t = make_store_under_test();
    auto& s = t->store();
    s.begin();
    for (int i = 1; i <= 6; ++i) s.append_outbox(outbox("out-" + std::to_string(i)));
    for (int i = 0; i < 5; ++i) s.insert_inbox(inbox("in-" + std::to_string(i), 100 + i));
    s.insert_inbox(inbox("in-recent", 9000));
    s.commit();
    number_outbox(s, 6);
    s.mark_published(1, 3, 1000);
    s.mark_published(4, 4, 8000);  // published after the cutoff below
    s.mark_published(5, 5, 500);   // the clock stepped back: "old", but after a kept row
    // 6 stays unpublished.

    // Limit 2: two outbox rows and two inbox rows per call.
    CHECK(s.prune(5000, 5000, 2) == 4);
    CHECK(s.first_retained_sequence() == 3);
    CHECK(s.prune(5000, 5000, 2) == 3);  // row 3, then row 4 stops the outbox; two inbox rows
    CHECK(s.first_retained_sequence() == 4);
    CHECK(s.prune(5000, 5000, 2) == 1);  // the last old inbox row
    CHECK(s.prune(5000, 5000, 2) == 0);
    // Row 5 was published "before" the cutoff but stays: replay from 4 meets no hole.
    auto kept = s.published_range(0, 10);
    REQUIRE(kept.size() == 2);
    CHECK(kept[0].sequence == 4);
    CHECK(kept[1].sequence == 5);
    CHECK(s.find_ack("urn:shop", "in-recent"));
    CHECK(t->count("inbox") == 1);

    // Once row 4 is old enough, 4 and 5 go; 6 (unpublished) stops the prefix.
    CHECK(s.prune(9000, 0, 10) == 2);
    CHECK(s.first_retained_sequence() == 6);
    CHECK(s.unpublished(0, 10).size() == 1);
    CHECK(s.last_published_sequence() == 5);
    CHECK(s.prune(1'000'000, 0, 0) == 0);
  }

  TEST_CASE("purge_finished removes finished sagas with their history and timers and parked events") {
    auto t = make_store_under_test();
    auto& s = t->store();
    auto finished = [&](const std::string& key, const std::string& state, std::int64_t since,
                        const std::string& definition = "order_lifecycle") {
      auto r = instance(key, state);
      r.definition = definition;
      r.state_since_ms = since;
      r.finished = state != "placed";  // what the engine sets: the terminal states
      s.save_instance(r);
      auto h = history_row(key, "e-" + key);
      h.definition = definition;
      h.to_state = state;
      h.recorded_ms = since;
      s.append_history(h);
      s.arm_timer(definition, key, "t", 99'999);
      auto p = parked(key, "p-" + key, since);
      p.definition = definition;
      s.park(p);
      auto in = inbox("e-" + key);
      in.key = key;
      s.insert_inbox(in);
      s.append_outbox(outbox("out-" + key, key));
    };
    s.begin();
    finished("c-1", "completed", 100);
    finished("c-2", "cancelled", 200);
    finished("c-3", "completed", 300);
    finished("recent", "completed", 9000);
    finished("running", "placed", 100);
    finished("c-4", "completed", 100, "payment_notice");
    s.commit();

    const std::vector<std::string> terminal{"completed", "cancelled"};
    CHECK(s.purge_finished("order_lifecycle", terminal, 5000, 2) == 2);
    CHECK(s.purge_finished("order_lifecycle", terminal, 5000, 2) == 1);
    CHECK(s.purge_finished("order_lifecycle", terminal, 5000, 2) == 0);
    CHECK(s.purge_finished("order_lifecycle", terminal, 5000, 0) == 0);

    for (const std::string key : {"c-1", "c-2", "c-3"}) {
      CAPTURE(key);
      CHECK_FALSE(s.load_instance("order_lifecycle", key));
      CHECK(s.timers_of("order_lifecycle", key).empty());
      CHECK(s.parked_of("order_lifecycle", key).empty());
      CHECK(t->scalar("SELECT count(*) FROM history WHERE key = '" + key + "'") == "0");
      // The dedup window and the log stay.
      CHECK(s.find_ack("urn:shop", "e-" + key));
      CHECK(t->scalar("SELECT count(*) FROM outbox WHERE key = '" + key + "'") == "1");
    }
    for (const char* key : {"recent", "running"}) {
      CAPTURE(key);
      CHECK(s.load_instance("order_lifecycle", key));
      CHECK(s.timers_of("order_lifecycle", key).size() == 1);
      CHECK(s.parked_of("order_lifecycle", key).size() == 1);
    }
    CHECK(s.load_instance("payment_notice", "c-4"));  // another definition's saga
    CHECK(t->count("history") == 3);
    CHECK(s.count_parked_total() == 3);
    CHECK(t->count("outbox") == 6);
    CHECK(t->count("inbox") == 6);
  }
}
