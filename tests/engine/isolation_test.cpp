// Per-event isolation and the engine's bounds (issue 11): whatever one event
// does, that event alone is rejected with a reason and kept as a dead letter;
// the others commit as if it had not been there. Failures are injected
// through the store port (store_wrapper) over a real SQLite file.

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/uuid.hpp"
#include "support/temp_dir.hpp"

using saga::ack_status;

namespace {

constexpr std::int64_t minute = 60'000;

saga::event order_event(const std::string& id, const std::string& type, const std::string& key,
                        nlohmann::json data = nlohmann::json::object()) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = key;
  e.time = "2026-01-01T00:00:00Z";
  if (type == "order.placed")
    data = {{"order_id", key}, {"amount", 1000}, {"currency", "EUR"}, {"items", nlohmann::json::array()}};
  e.data = std::move(data);
  return e;
}

saga::event placed(const std::string& key) {
  return order_event(key + "-placed", "order.placed", key);
}

// Throws `what` from the chosen port method whenever the saga key is `key`.
class failing_store final : public saga::store_wrapper {
 public:
  enum class where { load_instance, append_history, save_instance };
  using store_wrapper::store_wrapper;

  std::set<std::string> keys;
  where at = where::append_history;
  bool non_std = false;  // throw an int instead of a std::runtime_error

  std::optional<saga::instance_record> load_instance(std::string_view d, std::string_view k) override {
    if (at == where::load_instance) maybe_fail(k);
    return store_wrapper::load_instance(d, k);
  }
  void append_history(const saga::history_record& r) override {
    if (at == where::append_history) maybe_fail(r.key);
    store_wrapper::append_history(r);
  }
  void save_instance(const saga::instance_record& r) override {
    if (at == where::save_instance) maybe_fail(r.key);
    store_wrapper::save_instance(r);
  }

 private:
  void maybe_fail(std::string_view key) const {
    if (!keys.contains(std::string(key))) return;
    if (non_std) throw 42;
    throw std::runtime_error("injected failure for " + std::string(key));
  }
};

struct fixture {
  saga::test::temp_dir dir;
  saga::sqlite::store store{[&] {
    saga::sqlite::options o;
    o.path = dir.file("saga.db");
    return o;
  }()};
  failing_store failing{store};
  saga::manual_clock clock{1'767'225'600'000};  // 2026-01-01
  saga::engine engine;

  explicit fixture(saga::engine_options o = {}) : engine(failing, clock, std::move(o)) {
    engine.add(saga::definitions::order_lifecycle());
  }

  std::string state(const std::string& key) {
    auto r = store.load_instance("order_lifecycle", key);
    return r ? r->state : "";
  }
  std::int64_t scalar(const std::string& sql) {
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    return db.execAndGet(sql).getInt64();
  }
  std::int64_t dead_letters_of(const std::string& event_id) {
    return scalar("SELECT count(*) FROM dead_letters WHERE event_id = '" + event_id + "'");
  }
};

}  // namespace

TEST_SUITE("isolation") {
  TEST_CASE(
      "regression: an operator abort with a number in data.saga_type is rejected alone - naming the field") {
    fixture f;
    auto abort = order_event("op-1", "saga.operator.abort", "o-1", {{"saga_type", 1}});
    abort.source = "urn:saga:operator";
    const std::vector<saga::event> batch = {placed("o-1"), abort,
                                            order_event("p-1", "payment.succeeded", "o-1")};
    const auto acks = f.engine.handle_batch(batch);
    REQUIRE(acks.size() == 3);
    CHECK(acks[0].status == ack_status::accepted);
    CHECK(acks[1].status == ack_status::rejected);
    CHECK(acks[1].reason == "data 'saga_type': must be a string");
    CHECK(acks[2].status == ack_status::accepted);
    CHECK(f.state("o-1") == "paid");
    CHECK(f.dead_letters_of("op-1") == 1);
  }

  TEST_CASE("every operator data field with every non-string JSON type is rejected - naming the field") {
    fixture f;
    f.engine.handle(placed("o-1"));
    const std::vector<nlohmann::json> values = {true, 7, -1.5, nlohmann::json::array({1}), {{"a", 1}}};
    int n = 0;
    for (const char* action : {"abort", "resolve"})
      for (const char* field : {"saga_type", "to", "reason", "operator"})
        for (const auto& v : values) {
          CAPTURE(action);
          CAPTURE(field);
          CAPTURE(v.dump());
          auto e = order_event("op-" + std::to_string(n++), std::string("saga.operator.") + action, "o-1",
                               {{field, v}});
          e.source = "urn:saga:operator";
          const auto a = f.engine.handle(e);
          CHECK(a.status == ack_status::rejected);
          CHECK(a.reason == std::string("data '") + field + "': must be a string");
        }
    CHECK(f.state("o-1") == "placed");
  }

  TEST_CASE("an exception of any type before an event's first write rejects that event alone") {
    for (const bool non_std : {false, true}) {
      CAPTURE(non_std);
      fixture f;
      f.failing.at = failing_store::where::load_instance;
      f.failing.non_std = non_std;
      f.failing.keys = {"bad"};
      const auto acks =
          f.engine.handle_batch(std::vector<saga::event>{placed("o-1"), placed("bad"), placed("o-2")});
      CHECK(acks[0].status == ack_status::accepted);
      CHECK(acks[1].status == ack_status::rejected);
      CHECK(acks[1].reason.find(non_std ? "not a std::exception" : "injected failure for bad") !=
            std::string::npos);
      CHECK(acks[2].status == ack_status::accepted);
      CHECK(f.state("o-2") == "placed");
      CHECK(f.dead_letters_of("bad-placed") == 1);
    }
  }

  TEST_CASE("a failure after an event's first write rolls back that event only - the batch commits once") {
    for (const bool non_std : {false, true}) {
      CAPTURE(non_std);
      fixture f;
      f.failing.non_std = non_std;
      f.failing.keys = {"bad"};
      const auto commits = f.store.commit_count();
      const auto acks =
          f.engine.handle_batch(std::vector<saga::event>{placed("o-1"), placed("bad"), placed("o-2")});
      CHECK(acks[0].status == ack_status::accepted);
      CHECK(acks[1].status == ack_status::rejected);
      CHECK(acks[2].status == ack_status::accepted);
      CHECK(f.store.commit_count() == commits + 1);
      CHECK(f.state("bad").empty());  // its instance row, written before the failure, is gone
      CHECK(f.state("o-1") == "placed");
      CHECK(f.state("o-2") == "placed");
      // Exactly the follow-on events of the two good orders, and no inbox row for the bad one.
      CHECK(f.scalar("SELECT count(*) FROM outbox") == 2);
      CHECK(f.scalar("SELECT count(*) FROM inbox WHERE event_id = 'bad-placed'") == 0);
      CHECK(f.dead_letters_of("bad-placed") == 1);
    }
  }

  TEST_CASE("several events failing after their writes: the batch ends in savepoint runs and still commits") {
    fixture f;
    f.failing.keys = {"bad-1", "bad-2", "bad-3"};
    std::vector<saga::event> batch;
    for (const char* k : {"o-1", "bad-1", "o-2", "bad-2", "o-3", "bad-3", "o-4"}) batch.push_back(placed(k));
    const auto acks = f.engine.handle_batch(batch);
    REQUIRE(acks.size() == batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      CAPTURE(batch[i].subject);
      const bool bad = batch[i].subject.starts_with("bad");
      CHECK(acks[i].status == (bad ? ack_status::rejected : ack_status::accepted));
      CHECK(f.state(batch[i].subject) == (bad ? "" : "placed"));
    }
    CHECK(f.scalar("SELECT count(*) FROM outbox") == 4);
    CHECK(f.scalar("SELECT count(*) FROM dead_letters") == 3);
  }

  TEST_CASE("a duplicate of a rejected event is rejected again - and kept as one dead letter") {
    fixture f;
    f.failing.keys = {"bad"};
    for (int i = 0; i < 3; ++i) CHECK(f.engine.handle(placed("bad")).status == ack_status::rejected);
    CHECK(f.dead_letters_of("bad-placed") == 1);
    CHECK(f.scalar("SELECT count FROM dead_letters WHERE event_id = 'bad-placed'") == 3);
  }

  TEST_CASE(
      "in-process subscribers and commit listeners that throw never make a committed batch look failed") {
    fixture f;
    f.engine.subscribe("", [](const saga::published_event&) { throw 42; });
    f.engine.on_commit([](std::span<const saga::published_event>) { throw std::runtime_error("listener"); });
    const auto a = f.engine.handle(placed("o-1"));
    CHECK(a.status == ack_status::accepted);
    CHECK(f.state("o-1") == "placed");
  }

  TEST_CASE("set_aside keeps one input as a dead letter in a transaction of its own") {
    fixture f;
    const saga::inbound in = placed("o-9");
    const auto a = f.engine.set_aside(in, "storage: disk I/O error");
    CHECK(a.status == ack_status::rejected);
    CHECK(a.id == "o-9-placed");
    CHECK(a.reason == "storage: disk I/O error");
    CHECK(f.dead_letters_of("o-9-placed") == 1);
    CHECK(f.state("o-9").empty());
  }
}

TEST_SUITE("engine ids") {
  TEST_CASE("an outside event under the engine's own source is rejected - it cannot pre-empt a timer") {
    fixture f;
    f.engine.handle(placed("o-1"));
    // The payment timeout's firing will have this id; a forger sends it first.
    auto forged =
        order_event("timer:order_lifecycle:o-1:payment_timeout:1@o-1-placed", "payment.failed", "o-1");
    forged.source = "urn:saga:order_lifecycle";
    const auto a = f.engine.handle(forged);
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason.starts_with("attribute 'source'"));
    CHECK(f.state("o-1") == "placed");
    f.clock.advance(std::chrono::minutes(16));
    const auto fired = f.engine.fire_due_timers(f.clock.now_ms());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].ack.status == ack_status::accepted);
    CHECK(f.state("o-1") == "cancelled");
  }

  TEST_CASE("a configured engine source is its namespace too - other engines' sources stay valid input") {
    saga::engine_options o;
    o.source = "urn:shop:orders";
    fixture f(o);
    auto own = placed("o-1");
    own.source = "urn:shop:orders";
    CHECK(f.engine.handle(own).status == ack_status::rejected);
    auto other = placed("o-2");
    other.source = "urn:saga:order_lifecycle";  // what another sagad, with the default source, publishes
    CHECK(f.engine.handle(other).status == ack_status::accepted);
  }

  TEST_CASE("UUIDv7 ids of one process never repeat and differ in their random bits") {
    std::set<std::string> seen;
    std::set<std::string> tails;
    for (int i = 0; i < 20'000; ++i) {
      const auto id = saga::make_uuid_v7(1'767'225'600'000);
      CHECK(seen.insert(id).second);
      tails.insert(id.substr(24));
    }
    CHECK(tails.size() == seen.size());
  }
}

TEST_SUITE("engine bounds") {
  TEST_CASE("a parked event that no longer decodes goes to the dead letters with a reason") {
    fixture f;
    f.engine.handle(order_event("p-1", "payment.succeeded", "o-1"));  // parked: no saga yet
    {
      SQLite::Database db(f.dir.file("saga.db"), SQLite::OPEN_READWRITE);
      CHECK(db.exec("UPDATE parked SET payload = '{\"not\": \"an event\"'") == 1);
    }
    CHECK(f.engine.handle(placed("o-1")).status == ack_status::accepted);
    CHECK(f.state("o-1") == "placed");
    CHECK(f.scalar("SELECT count(*) FROM parked") == 0);
    CHECK(f.scalar("SELECT count(*) FROM dead_letters WHERE event_id = 'p-1' AND reason LIKE "
                   "'%no longer decodes%'") == 1);
  }

  TEST_CASE("the total parking cap rejects into the dead letters once reached") {
    saga::engine_options o;
    o.park_total_limit = 5;
    fixture f(o);
    int rejected = 0;
    for (int i = 0; i < 8; ++i) {
      const auto a = f.engine.handle(
          order_event("p-" + std::to_string(i), "payment.succeeded", "k-" + std::to_string(i)));
      if (a.status == ack_status::rejected) {
        ++rejected;
        CHECK(a.reason.find("total limit") != std::string::npos);
      }
    }
    CHECK(rejected == 3);
    CHECK(f.scalar("SELECT count(*) FROM parked") == 5);
  }

  TEST_CASE("the parking cap holds per sender key: a key at its cap is rejected and others still park") {
    saga::engine_options o;
    o.park_total_limit = 2;
    fixture f(o);
    auto from = [](const std::string& sender, int i) {
      const std::string name = (sender.empty() ? "plain" : sender) + "-" + std::to_string(i);
      auto e = order_event(name, "payment.succeeded", "k-" + name);  // parked: no saga yet
      e.sender = sender;
      return e;
    };
    // One batch: the counts are read once per sender and counted on as events park.
    const std::vector<saga::event> batch = {from("flood", 0), from("payments", 0), from("flood", 1),
                                            from("flood", 2), from("", 0),         from("payments", 1),
                                            from("", 1),      from("", 2)};
    const auto acks = f.engine.handle_batch(batch);
    REQUIRE(acks.size() == batch.size());
    for (const std::size_t i : {0, 1, 2, 4, 5, 6}) {
      CAPTURE(i);
      CHECK(acks[i].outcome == saga::ack_outcome::parked);
    }
    CHECK(acks[3].status == ack_status::rejected);
    CHECK(acks[3].reason == "key 'flood' already holds 2 parked events (the limit per key)");
    CHECK(acks[7].status == ack_status::rejected);
    CHECK(acks[7].reason == "the engine already holds 2 parked events of all sagas (the total limit)");

    // In a later batch the count comes from the store: the key at its cap is still refused, while
    // a key that holds nothing yet parks.
    const auto again = f.engine.handle(from("flood", 3));
    CHECK(again.status == ack_status::rejected);
    CHECK(again.reason == "key 'flood' already holds 2 parked events (the limit per key)");
    CHECK(f.engine.handle(from("orders", 0)).outcome == saga::ack_outcome::parked);
    CHECK(f.scalar("SELECT count(*) FROM parked") == 7);
    CHECK(f.scalar("SELECT count(*) FROM dead_letters WHERE sender = 'flood'") == 2);
    CHECK(f.store.count_parked_by_sender("flood") == 2);
  }

  TEST_CASE("dead-letter payloads are cut at a character boundary and marked truncated") {
    fixture f;
    std::string big;
    for (int i = 0; i < 40'000; ++i) big += "\xc3\xa9";  // é: two bytes each, 80,000 bytes
    const auto a = f.engine.handle(order_event("big", "no.such.type", "o-1", {{"note", big}}));
    CHECK(a.status == ack_status::rejected);
    SQLite::Database db(f.dir.file("saga.db"), SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT payload, truncated FROM dead_letters WHERE event_id = 'big'");
    REQUIRE(q.executeStep());
    const std::string payload = q.getColumn(0).getString();
    CHECK(q.getColumn(1).getInt() == 1);
    CHECK(payload.size() <= 64 * 1024);
    CHECK(payload.size() > 60 * 1024);
    CHECK(saga::valid_utf8(payload));
  }

  TEST_CASE("timers of a definition that is not registered neither block nor fill the batch") {
    fixture f;
    f.store.begin();
    for (int i = 0; i < 1100; ++i) {
      saga::instance_record ghost;
      ghost.definition = "ghost";
      ghost.key = "g-" + std::to_string(i);
      ghost.state = "waiting";
      ghost.data = "{}";
      f.store.save_instance(ghost);
      f.store.arm_timer("ghost", ghost.key, "t", 1);
    }
    f.store.commit();
    f.engine.handle(placed("o-1"));
    f.clock.advance(std::chrono::minutes(16));
    const auto fired = f.engine.fire_due_timers(f.clock.now_ms());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].timer.definition == "order_lifecycle");
    const auto elsewhere = f.engine.unregistered_due_timers(f.clock.now_ms());
    REQUIRE(elsewhere.size() == 1);
    CHECK(elsewhere[0] == std::pair<std::string, std::int64_t>{"ghost", 1100});
  }

  TEST_CASE("more than 1024 due timers all fire when called again while the batch is full") {
    fixture f;
    std::vector<saga::event> orders;
    for (int i = 0; i < 1500; ++i) orders.push_back(placed("o-" + std::to_string(i)));
    f.engine.handle_batch(orders);
    f.clock.advance(std::chrono::minutes(16));
    std::size_t total = 0, calls = 0;
    for (;;) {
      const auto n = f.engine.fire_due_timers(f.clock.now_ms(), 1024).size();
      total += n;
      ++calls;
      if (n < 1024) break;
    }
    CHECK(total == 1500);
    CHECK(calls == 2);
    CHECK(f.state("o-1499") == "cancelled");
  }

  TEST_CASE("a timer whose firing fails is disarmed and kept as a dead letter - the others fire") {
    fixture f;
    f.engine.handle_batch(std::vector<saga::event>{placed("o-1"), placed("bad"), placed("o-2")});
    f.failing.keys = {"bad"};
    f.failing.non_std = true;
    f.clock.advance(std::chrono::minutes(16));
    const auto fired = f.engine.fire_due_timers(f.clock.now_ms());
    REQUIRE(fired.size() == 3);
    int rejected = 0;
    for (const auto& t : fired)
      if (t.ack.status == ack_status::rejected) {
        ++rejected;
        CHECK(t.timer.key == "bad");
        CHECK(t.ack.reason.starts_with("timer 'payment_timeout'"));
      }
    CHECK(rejected == 1);
    CHECK(f.state("o-1") == "cancelled");
    CHECK(f.state("bad") == "placed");
    CHECK(f.engine.fire_due_timers(f.clock.now_ms()).empty());  // not due again: no boot loop
    CHECK(f.dead_letters_of("timer:order_lifecycle:bad:payment_timeout:1@bad-placed") == 1);
  }

  TEST_CASE("housekeeping: dead letters beyond the cap and finished sagas past their retention go") {
    saga::engine_options o;
    o.dead_letter_max = 3;
    o.finished_retention_ms = 10 * minute;
    fixture f(o);
    for (int i = 0; i < 6; ++i)
      f.engine.handle(order_event("x-" + std::to_string(i), "no.such.type", "k"));  // rejected
    f.engine.handle_batch(std::vector<saga::event>{placed("o-1"), placed("o-2")});
    f.engine.handle(order_event("c-1", "order.cancel.requested", "o-1"));  // finished: cancelled
    // o-3 ends in needs_attention: terminal, but waiting for an operator, so never purged.
    f.engine.handle_batch(std::vector<saga::event>{placed("o-3"),
                                                   order_event("p-3", "payment.succeeded", "o-3"),
                                                   order_event("u-3", "inventory.unavailable", "o-3"),
                                                   order_event("f-1", "payment.refund.failed", "o-3"),
                                                   order_event("f-2", "payment.refund.failed", "o-3"),
                                                   order_event("f-3", "payment.refund.failed", "o-3")});
    REQUIRE(f.state("o-3") == "needs_attention");
    f.clock.advance(std::chrono::minutes(11));
    saga::engine::pruned total;
    for (;;) {
      const auto p = f.engine.prune(f.clock.now_ms(), 2);
      if (!p.any()) break;
      total.dead_letters += p.dead_letters;
      total.finished_sagas += p.finished_sagas;
    }
    CHECK(total.dead_letters == 3);
    CHECK(total.finished_sagas == 1);
    CHECK(f.scalar("SELECT count(*) FROM dead_letters") == 3);
    CHECK(f.state("o-1").empty());
    CHECK(f.scalar("SELECT count(*) FROM history WHERE key = 'o-1'") == 0);
    CHECK(f.state("o-2") == "placed");  // not finished: kept however old
    CHECK(f.state("o-3") == "needs_attention");
  }
  TEST_CASE(
      "regression: a saga purged and started again under its key gets its timers fired - not deduplicated") {
    fixture f;
    f.engine.handle(placed("o-1"));
    f.clock.advance(std::chrono::minutes(16));
    REQUIRE(f.engine.fire_due_timers(f.clock.now_ms()).size() == 1);  // payment timeout: cancelled
    REQUIRE(f.state("o-1") == "cancelled");
    CHECK(f.engine.purge_finished(f.clock.now_ms() + 1) == 1);
    auto again = placed("o-1");
    again.id = "o-1-placed-again";
    CHECK(f.engine.handle(again).status == ack_status::accepted);
    f.clock.advance(std::chrono::minutes(16));
    const auto fired = f.engine.fire_due_timers(f.clock.now_ms());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].timer.generation == 1);  // counted from 1 again: only the id's suffix tells them apart
    CHECK(fired[0].ack.status == ack_status::accepted);
    CHECK(f.state("o-1") == "cancelled");
  }
}
