// The engine over the real SQLite store: group commit, rejections, failure
// injection through the store port, embedding in a host transaction, parking,
// timers across restarts and operator actions.

#include "saga/engine.hpp"

#include <map>
#include <set>

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

using saga::ack_outcome;
using saga::ack_status;

namespace {

saga::sqlite::options file_options(const saga::test::temp_dir& dir) {
  saga::sqlite::options o;
  o.path = dir.file("saga.db");
  return o;
}

nlohmann::json order_data(const std::string& id) {
  return {{"order_id", id},
          {"amount", 1000},
          {"currency", "EUR"},
          {"customer_id", "c"},
          {"items", nlohmann::json::array()}};
}

saga::event ev(const std::string& id, const std::string& type, const std::string& order,
               nlohmann::json data = nlohmann::json::object()) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = order;
  e.time = "2026-01-01T00:00:00Z";
  e.data = type == "order.placed" ? order_data(order) : std::move(data);
  return e;
}

// The six events of a completed order.
std::vector<saga::event> happy(const std::string& order) {
  std::vector<saga::event> out;
  int n = 0;
  for (const char* t : {"order.placed", "payment.succeeded", "inventory.reserved", "shipment.dispatched",
                        "delivery.started", "delivery.confirmed"})
    out.push_back(ev(order + "-" + std::to_string(n++), t, order));
  return out;
}

// 1,000 events over 100 orders: the happy path for most, compensations for some.
std::vector<saga::event> thousand_events() {
  std::vector<saga::event> out;
  for (int i = 0; i < 100; ++i) {
    const std::string o = "order-" + std::to_string(i);
    auto h = happy(o);
    if (i % 10 == 3) h.resize(1), h.push_back(ev(o + "-c", "order.cancel.requested", o));
    for (auto& e : h) out.push_back(e);
  }
  while (out.size() < 1000) {  // duplicates make up the rest
    out.push_back(out[out.size() % 500]);
  }
  return out;
}

std::map<std::string, std::string> states(saga::store& s, int orders) {
  std::map<std::string, std::string> out;
  for (int i = 0; i < orders; ++i) {
    const std::string o = "order-" + std::to_string(i);
    auto r = s.load_instance("order_lifecycle", o);
    out[o] = r ? r->state : "";
  }
  return out;
}

// The outbox without ids and times: (key, type, data, causation) in order per key.
std::multimap<std::string, std::string> outbox_contents(saga::store& s) {
  std::multimap<std::string, std::string> out;
  for (const auto& r : s.unpublished(0, 100000)) {
    auto e = *saga::decode_event(r.payload).event;
    out.emplace(r.key, e.type + " " + e.data.dump() + " " + e.causationid);
  }
  return out;
}

std::int64_t count_rows(const std::string& path, const std::string& table) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
}

// A file store with order_lifecycle registered, on a manual clock.
struct order_engine {
  saga::test::temp_dir dir;
  saga::manual_clock clock;
  saga::sqlite::store st{file_options(dir)};
  saga::engine eng{st, clock};
  order_engine() { eng.add(saga::definitions::order_lifecycle()); }
};

// Fails the k-th insert_inbox: the event's last write, after all its others.
class failing_store : public saga::store_wrapper {
 public:
  failing_store(saga::store& s, int fail_at) : store_wrapper(s), fail_at_(fail_at) {}
  void insert_inbox(const saga::inbox_record& r) override {
    if (++inbox_writes_ == fail_at_) throw saga::store_error("injected: disk I/O error");
    store_wrapper::insert_inbox(r);
  }

 private:
  int fail_at_;
  int inbox_writes_ = 0;
};

}  // namespace

TEST_SUITE("engine") {
  // The ack stored in the inbox and sent to clients is written by hand; it must stay the bytes
  // of to_json(a).dump() and read back into the same ack.
  TEST_CASE("encode_ack writes exactly to_json's bytes and reads back") {
    const std::string texts[] = {"", "x", "quote \" back \\ nl \n ctl \x01", "caf\xc3\xa9"};
    int compared = 0;
    for (const auto status :
         {saga::ack_status::accepted, saga::ack_status::duplicate, saga::ack_status::rejected})
      for (const auto outcome : {saga::ack_outcome::none, saga::ack_outcome::transitioned,
                                 saga::ack_outcome::parked, saga::ack_outcome::ignored})
        for (const auto& t : texts) {
          saga::ack a;
          a.status = status;
          a.outcome = outcome;
          a.id = t;
          a.source = "urn:" + t;
          a.reason = t;
          a.saga_type = t.empty() ? "" : "order_lifecycle";
          a.saga_id = t;
          a.saga_state = t;
          const std::string text = saga::encode_ack(a);
          CHECK(text == saga::to_json(a).dump());
          const auto back = saga::ack_from_json(nlohmann::json::parse(text));
          CHECK(back.status == a.status);
          CHECK(back.outcome == a.outcome);
          CHECK(back.id == a.id);
          CHECK(back.saga_state == a.saga_state);
          ++compared;
        }
    CHECK(compared == 48);
  }

  // Found by engine_fuzz: a reason holding bytes that are not UTF-8 (a value cut inside a
  // character) made encode_ack throw, and so the ack could not be sent.
  TEST_CASE("encode_ack never throws on bytes that are not UTF-8: they become U+FFFD") {
    saga::ack a;
    a.status = saga::ack_status::rejected;
    a.id =
        "e\xff"
        "1";
    a.source = "urn:\xc3";
    a.reason = "type 'caf\xc3' (cut)";
    std::string text;
    REQUIRE_NOTHROW(text = saga::encode_ack(a));
    const auto j = nlohmann::json::parse(text);
    CHECK(j["reason"] == "type 'caf\xef\xbf\xbd' (cut)");
    CHECK(j["id"] ==
          "e\xef\xbf\xbd"
          "1");
    CHECK(j["status"] == "rejected");
  }

  TEST_CASE(
      "1000 events over 100 orders in one batch make exactly one commit and match one-by-one handling") {
    const auto events = thousand_events();
    saga::test::temp_dir d1, d2;
    saga::manual_clock clock;

    saga::sqlite::store batched(file_options(d1));
    saga::engine e1(batched, clock);
    e1.add(saga::definitions::order_lifecycle());
    const auto commits_before = batched.commit_count();
    const auto acks = e1.handle_batch(std::span<const saga::event>(events));
    CHECK(batched.commit_count() - commits_before == 1);
    CHECK(acks.size() == 1000);

    saga::sqlite::store single(file_options(d2));
    saga::engine e2(single, clock);
    e2.add(saga::definitions::order_lifecycle());
    std::vector<saga::ack> one_by_one;
    for (const auto& e : events) one_by_one.push_back(e2.handle(e));
    CHECK(single.commit_count() >= 1000);

    for (std::size_t i = 0; i < acks.size(); ++i) {
      CAPTURE(i);
      CHECK(acks[i].status == one_by_one[i].status);
      CHECK(acks[i].outcome == one_by_one[i].outcome);
      CHECK(acks[i].saga_state == one_by_one[i].saga_state);
    }
    const auto s1 = states(batched, 100);
    CHECK(s1 == states(single, 100));
    CHECK(s1.at("order-0") == "done");
    CHECK(s1.at("order-3") == "cancelled");
    CHECK(outbox_contents(batched) == outbox_contents(single));
    CHECK(outbox_contents(batched).size() == 90 * 6 + 10 * 2);
  }

  TEST_CASE("a store failure at event k of a batch after its writes leaves nothing of the batch behind") {
    for (int k : {2, 5, 12}) {
      CAPTURE(k);
      saga::test::temp_dir dir;
      saga::manual_clock clock;
      saga::sqlite::store real(file_options(dir));
      saga::engine setup(real, clock);
      setup.add(saga::definitions::order_lifecycle());
      setup.handle(ev("seed", "order.placed", "seed-order"));

      failing_store faulty(real, k);
      saga::engine eng(faulty, clock);
      eng.add(saga::definitions::order_lifecycle());
      std::vector<saga::event> batch;
      for (int i = 0; i < 3; ++i)
        for (auto& e : happy("b" + std::to_string(i))) batch.push_back(e);
      int delivered = 0;
      eng.subscribe("", [&](const saga::published_event&) { ++delivered; });
      CHECK_THROWS_AS(eng.handle_batch(std::span<const saga::event>(batch)), saga::store_error);
      CHECK(delivered == 0);
      CHECK_FALSE(real.in_transaction());

      // A new connection sees only the seed.
      const auto path = dir.file("saga.db");
      CHECK(count_rows(path, "instances") == 1);
      CHECK(count_rows(path, "inbox") == 1);
      CHECK(count_rows(path, "outbox") == 1);
      CHECK(count_rows(path, "history") == 1);
      CHECK(count_rows(path, "instances WHERE next_due_ms IS NOT NULL") == 1);  // its armed timer

      // The same batch succeeds once the fault has passed.
      saga::engine retry(real, clock);
      retry.add(saga::definitions::order_lifecycle());
      auto acks = retry.handle_batch(std::span<const saga::event>(batch));
      for (const auto& a : acks) CHECK(a.status == ack_status::accepted);
      CHECK(real.load_instance("order_lifecycle", "b2")->state == "done");
    }
  }

  TEST_CASE("the log line about a rejected event names its trace id") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    std::vector<std::string> logged;
    saga::engine_options o;
    o.log = [&](saga::log_level, std::string_view m) { logged.emplace_back(m); };
    saga::engine eng(st, clock, o);
    eng.add(saga::definitions::order_lifecycle());
    auto traced = ev("t1", "no.such.type", "A");
    traced.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    CHECK(eng.handle(traced).status == ack_status::rejected);
    CHECK(eng.handle(ev("u1", "no.such.type", "A")).status == ack_status::rejected);
    REQUIRE(logged.size() == 2);
    CHECK(logged[0] ==
          "rejected t1 (trace 4bf92f3577b34da6a3ce929d0e0e4736): attribute 'type': no definition consumes "
          "'no.such.type'");
    CHECK(logged[1] == "rejected u1: attribute 'type': no definition consumes 'no.such.type'");
  }

  TEST_CASE("one invalid event inside a batch is rejected alone - the others commit") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    std::vector<saga::inbound> batch;
    batch.emplace_back(ev("a1", "order.placed", "A"));
    batch.emplace_back(ev("x1", "order.placed", "X", {}));  // replaced below: no amount
    std::get<saga::event>(batch.back()).data = {{"currency", "EUR"}};
    batch.emplace_back(ev("u1", "no.such.type", "A"));
    batch.emplace_back(
        saga::invalid_input{"{not json", "event: not valid JSON at byte 2", "", "", "", "", ""});
    batch.emplace_back(ev("a2", "payment.succeeded", "A"));
    const auto acks = eng.handle_batch(std::span<const saga::inbound>(batch));
    REQUIRE(acks.size() == 5);
    CHECK(acks[0].status == ack_status::accepted);
    CHECK(acks[1].status == ack_status::rejected);
    CHECK(acks[1].reason.find("amount") != std::string::npos);
    CHECK(acks[2].status == ack_status::rejected);
    CHECK(acks[2].reason == "attribute 'type': no definition consumes 'no.such.type'");
    CHECK(acks[3].status == ack_status::rejected);
    CHECK(acks[3].id.empty());
    CHECK(acks[4].status == ack_status::accepted);
    CHECK(st.load_instance("order_lifecycle", "A")->state == "paid");
    CHECK_FALSE(st.load_instance("order_lifecycle", "X"));
    const auto path = dir.file("saga.db");
    CHECK(count_rows(path, "dead_letters") == 3);
    CHECK(count_rows(path, "inbox") == 2);
    // A rejected event left no inbox row: sending it again is not a duplicate.
    CHECK(eng.handle(std::get<saga::event>(batch[2])).status == ack_status::rejected);
  }

  TEST_CASE("embedded in a host transaction: business rows and saga commit together") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    SQLite::Database db(dir.file("shop.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE orders (id TEXT PRIMARY KEY, amount INTEGER)");
    saga::sqlite::store st(db);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    std::vector<std::string> seen;
    eng.subscribe("payment.", [&](const saga::published_event& p) { seen.push_back(p.event.type); });

    {  // rolled back: neither the order row nor the saga, and no subscriber call
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      db.exec("INSERT INTO orders VALUES ('o-1', 1000)");
      const saga::event placed = ev("p1", "order.placed", "o-1");
      auto joined = eng.handle_in_transaction(std::span<const saga::event>(&placed, 1));
      CHECK(joined.acks.front().status == ack_status::accepted);
      CHECK(joined.emitted.size() == 1);
    }
    CHECK(seen.empty());
    CHECK(db.execAndGet("SELECT count(*) FROM orders").getInt() == 0);
    CHECK_FALSE(st.load_instance("order_lifecycle", "o-1"));

    {  // committed: both, and the subscriber runs after the commit
      SQLite::Transaction tx(db, SQLite::TransactionBehavior::IMMEDIATE);
      db.exec("INSERT INTO orders VALUES ('o-1', 1000)");
      const saga::event placed = ev("p1", "order.placed", "o-1");
      auto joined = eng.handle_in_transaction(std::span<const saga::event>(&placed, 1));
      CHECK(seen.empty());
      tx.commit();
      eng.committed(joined);
    }
    CHECK(seen == std::vector<std::string>{"payment.requested"});
    SQLite::Database reader(dir.file("shop.db"), SQLite::OPEN_READONLY);
    CHECK(reader.execAndGet("SELECT count(*) FROM orders").getInt() == 1);
    CHECK(reader.execAndGet("SELECT state FROM instances WHERE key = 'o-1'").getString() == "placed");
  }

  TEST_CASE("handle_in_transaction refuses to run without the host's transaction") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    const saga::event placed = ev("p1", "order.placed", "o-1");
    CHECK_THROWS_AS(eng.handle_in_transaction(std::span<const saga::event>(&placed, 1)), std::logic_error);
  }

  TEST_CASE("in-process subscribers get follow-on events by type prefix after the commit in order") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    std::vector<std::pair<std::int64_t, std::string>> all;
    std::vector<std::string> orders;
    eng.subscribe("", [&](const saga::published_event& p) {
      CHECK_FALSE(st.in_transaction());
      all.emplace_back(p.sequence, p.event.type);
    });
    eng.subscribe("order.", [&](const saga::published_event& p) { orders.push_back(p.event.type); });
    auto events = happy("o-1");
    eng.handle_batch(std::span<const saga::event>(events));
    REQUIRE(all.size() == 6);
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].first == static_cast<std::int64_t>(i + 1));
    CHECK(orders == std::vector<std::string>{"order.shipped", "order.out_for_delivery", "order.completed"});
  }

  TEST_CASE("history holds each applied event itself with its from and to states") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    eng.handle(ev("p1", "order.placed", "o-1"));
    eng.handle(ev("p2", "payment.succeeded", "o-1", {{"psp", "acme"}}));
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    SQLite::Statement q(
        db,
        "SELECT event_id, event_type, event_source, event_time, event_data, from_state, to_state "
        "FROM history WHERE key = 'o-1' ORDER BY id");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getString() == "p1");
    CHECK(q.getColumn(5).getString() == "new");
    CHECK(q.getColumn(6).getString() == "placed");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(1).getString() == "payment.succeeded");
    CHECK(q.getColumn(2).getString() == "urn:test");
    CHECK(q.getColumn(3).getString() == "2026-01-01T00:00:00Z");
    CHECK(nlohmann::json::parse(q.getColumn(4).getString()) == nlohmann::json{{"psp", "acme"}});
    CHECK(q.getColumn(5).getString() == "placed");
    CHECK(q.getColumn(6).getString() == "paid");
    CHECK_FALSE(q.executeStep());
  }

  // docs/performance.md, fifth round: the data a dispatch left as it was is not encoded again.
  TEST_CASE(
      "a saga's data left as it was keeps its stored text - changed data is written as dump() writes it") {
    order_engine f;
    auto& [dir, clock, st, eng] = f;
    eng.handle(ev("p1", "order.placed", "o-1"));
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READWRITE);
    auto stored = [&] { return db.execAndGet("SELECT data FROM instances WHERE key = 'o-1'").getString(); };
    auto overwrite = [&](const std::string& text) {
      SQLite::Statement u(db, "UPDATE instances SET data = ? WHERE key = 'o-1'");
      u.bind(1, text);
      CHECK(u.exec() == 1);
    };
    const auto data = nlohmann::json::parse(stored());
    CHECK(stored() == data.dump());
    // The same document in other bytes: payment.succeeded leaves the order's data as it is.
    const std::string pretty = data.dump(2);
    overwrite(pretty);
    eng.handle(ev("p2", "payment.succeeded", "o-1"));
    CHECK(stored() == pretty);
    CHECK(st.load_instance("order_lifecycle", "o-1")->state == "paid");

    // A number of the same value and another type (0.0 for the definition's integer 0) is a
    // change: written as the definition's data dumps.
    auto with_float = data;
    with_float["refund_attempt"] = 0.0;
    REQUIRE(with_float == data);  // equal to nlohmann's ==, not the same bytes
    overwrite(with_float.dump(2));
    eng.handle(ev("p3", "inventory.reserved", "o-1"));
    CHECK(stored() == data.dump());

    // A change: the refund request counts its attempt in the data.
    eng.handle(ev("p4", "order.cancel.requested", "o-1"));
    const auto refunding = nlohmann::json::parse(stored());
    CHECK(refunding["refund_attempt"] == 1);
    CHECK(stored() == refunding.dump());
  }
}

TEST_SUITE("parking") {
  TEST_CASE("an event before its saga exists is parked and applied once the saga starts") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    auto a = eng.handle(ev("s1", "payment.succeeded", "o-1"));
    CHECK(a.status == ack_status::accepted);
    CHECK(a.outcome == ack_outcome::parked);
    CHECK(st.count_parked("order_lifecycle", "o-1") == 1);
    auto b = eng.handle(ev("p1", "order.placed", "o-1"));
    CHECK(b.outcome == ack_outcome::transitioned);
    CHECK(b.saga_state == "paid");  // the state after parked events were re-applied
    CHECK(st.count_parked("order_lifecycle", "o-1") == 0);
    // A duplicate of the parked event gets its original ack.
    auto dup = eng.handle(ev("s1", "payment.succeeded", "o-1"));
    CHECK(dup.status == ack_status::duplicate);
    CHECK(dup.outcome == ack_outcome::parked);
  }

  TEST_CASE("an event a later state takes waits - one no reachable state takes is ignored") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    eng.handle(ev("p1", "order.placed", "o-1"));
    eng.handle(ev("p2", "payment.succeeded", "o-1"));
    CHECK(eng.handle(ev("d1", "delivery.started", "o-1")).outcome == ack_outcome::parked);
    eng.handle(ev("p3", "order.cancel.requested", "o-1"));  // -> refunding: delivery.started unreachable
    CHECK(st.count_parked("order_lifecycle", "o-1") == 0);
    CHECK(eng.handle(ev("d2", "delivery.started", "o-1")).outcome == ack_outcome::ignored);
    eng.handle(ev("p4", "payment.refunded", "o-1"));
    CHECK(st.load_instance("order_lifecycle", "o-1")->state == "cancelled");
    CHECK(eng.handle(ev("p5", "payment.succeeded", "o-1")).outcome == ack_outcome::ignored);
  }

  TEST_CASE("parking beyond the per-saga limit is rejected into the dead letters") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine_options o;
    o.park_limit = 3;
    saga::engine eng(st, clock, o);
    eng.add(saga::definitions::order_lifecycle());
    for (int i = 0; i < 3; ++i)
      CHECK(eng.handle(ev("r" + std::to_string(i), "payment.refund.failed", "o-1")).outcome ==
            ack_outcome::parked);
    auto a = eng.handle(ev("r3", "payment.refund.failed", "o-1"));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason.find("parked") != std::string::npos);
    CHECK(count_rows(dir.file("saga.db"), "dead_letters") == 1);
  }

  TEST_CASE("parked events of a saga that never starts go to the dead letters after the expiry") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    eng.handle(ev("s1", "payment.succeeded", "ghost"));
    clock.advance(std::chrono::hours(23));
    CHECK(eng.expire_parked(clock.now_ms()) == 0);
    clock.advance(std::chrono::hours(2));
    CHECK(eng.expire_parked(clock.now_ms()) == 1);
    CHECK(st.count_parked("order_lifecycle", "ghost") == 0);
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT reason FROM dead_letters").getString().find("never started") !=
          std::string::npos);
  }

  TEST_CASE("armed timers and parked events survive a restart") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    {
      saga::sqlite::store st(file_options(dir));
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      eng.handle(ev("p1", "order.placed", "o-1"));
      eng.handle(ev("s1", "shipment.dispatched", "o-2"));  // parked: o-2 does not exist
    }
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    clock.advance(std::chrono::minutes(16));
    auto fired = eng.fire_due_timers(clock.now_ms());
    REQUIRE(fired.size() == 1);
    CHECK(fired[0].timer.name == "payment_timeout");
    CHECK(fired[0].ack.saga_state == "cancelled");
    CHECK(eng.fire_due_timers(clock.now_ms()).empty());
    CHECK(st.count_parked("order_lifecycle", "o-2") == 1);
    eng.handle(ev("p2", "order.placed", "o-2"));
    eng.handle(ev("p3", "payment.succeeded", "o-2"));
    auto a = eng.handle(ev("p4", "inventory.reserved", "o-2"));
    CHECK(a.saga_state == "shipped");
  }

  // Issue 17, several writers on one database: a batch locks its sagas (sorted, once each) before
  // it reads any of them, so two writers serialise per saga and never deadlock.
  TEST_CASE("a batch locks its sagas' keys sorted and once each before it reads them") {
    class recording_store : public saga::store_wrapper {
     public:
      using store_wrapper::store_wrapper;
      void lock_sagas(const std::vector<std::string>& keys) override {
        calls.push_back("lock " + [&] {
          std::string all;
          for (const auto& k : keys) all += (all.empty() ? "" : ",") + k;
          return all;
        }());
        store_wrapper::lock_sagas(keys);
      }
      std::vector<std::string> try_lock_sagas(const std::vector<std::string>& keys) override {
        std::string all;
        for (const auto& k : keys) all += (all.empty() ? "" : ",") + k;
        calls.push_back("try_lock " + all);
        return store_wrapper::try_lock_sagas(keys);
      }
      std::optional<std::string> find_ack(std::string_view s, std::string_view id) override {
        calls.push_back("find_ack");
        return store_wrapper::find_ack(s, id);
      }
      std::vector<std::string> calls;
    };
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store real(file_options(dir));
    recording_store st(real);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    const std::vector<saga::event> batch{ev("p-b", "order.placed", "o-b"), ev("p-a", "order.placed", "o-a"),
                                         ev("q-b", "payment.succeeded", "o-b")};
    eng.handle_batch(std::span<const saga::event>(batch));
    REQUIRE(st.calls.size() == 4);
    CHECK(st.calls.front() == "lock o-a,o-b");
    CHECK(std::count(st.calls.begin(), st.calls.end(), "find_ack") == 3);
    // Timers: the sagas of the due timers, claimed without waiting in the transaction that fires
    // them.
    for (auto& e : happy("o-t")) {
      eng.handle(e);
      if (e.type == "inventory.reserved") break;
    }
    st.calls.clear();
    clock.advance(std::chrono::hours(48));
    const auto fired = eng.fire_due_timers(clock.now_ms());
    REQUIRE(fired.size() >= 2);
    std::set<std::string> keys;
    for (const auto& f : fired) keys.insert(f.timer.key);
    std::string expected = "try_lock";
    for (const auto& k : keys) expected += (expected == "try_lock" ? " " : ",") + k;
    REQUIRE_FALSE(st.calls.empty());
    CHECK(st.calls.front() == expected);
  }

  // Another writer fired the timer and re-armed it between this engine's read of the due timers
  // and its lock: the stale timer is not fired, and the re-armed one is not disarmed.
  TEST_CASE("a due timer read before another writer re-armed it is left alone") {
    class stale_read : public saga::store_wrapper {
     public:
      using store_wrapper::store_wrapper;
      std::vector<saga::timer_record> due_timers(std::int64_t now, std::size_t limit,
                                                 const std::vector<std::string>& defs) override {
        auto due = store_wrapper::due_timers(now, limit, defs);
        for (auto& t : due) --t.generation;  // what was due before the other writer's firing
        return due;
      }
    };
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store real(file_options(dir));
    stale_read st(real);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    for (auto& e : happy("o-1")) {
      eng.handle(e);
      if (e.type == "inventory.reserved") break;
    }
    const auto armed = real.timers_of("order_lifecycle", "o-1");
    REQUIRE(armed.size() == 1);
    clock.advance(std::chrono::hours(48));
    CHECK(eng.fire_due_timers(clock.now_ms()).empty());
    const auto after = real.timers_of("order_lifecycle", "o-1");
    REQUIRE(after.size() == 1);
    CHECK(after[0].generation == armed[0].generation);
    CHECK(after[0].due_ms == armed[0].due_ms);
  }

  TEST_CASE("a timer firing twice is a duplicate - a re-armed timer fires as a new event") {
    // A store that forgets to disarm: the same timer generation comes due again.
    class sticky_timers : public saga::store_wrapper {
     public:
      using store_wrapper::store_wrapper;
      void disarm_timer(std::string_view d, std::string_view k, std::string_view n) override {
        if (n != "shipment_deadline") store_wrapper::disarm_timer(d, k, n);
      }
    };
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store real(file_options(dir));
    sticky_timers st(real);
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    for (auto& e : happy("o-1")) {
      eng.handle(e);
      if (e.type == "inventory.reserved") break;
    }
    int overdue = 0;
    eng.subscribe("order.shipment.overdue", [&](const saga::published_event&) { ++overdue; });
    clock.advance(std::chrono::hours(48));
    auto first = eng.fire_due_timers(clock.now_ms());
    REQUIRE(first.size() == 1);
    CHECK(first[0].ack.status == ack_status::accepted);
    CHECK(first[0].ack.id == "timer:order_lifecycle:o-1:shipment_deadline:" +
                                 std::to_string(first[0].timer.generation) + "@o-1-0");
    auto second = eng.fire_due_timers(clock.now_ms());
    REQUIRE(second.size() == 1);
    CHECK(second[0].ack.status == ack_status::duplicate);
    CHECK(overdue == 1);

    real.begin();
    real.arm_timer("order_lifecycle", "o-1", "shipment_deadline", clock.now_ms());
    real.commit();
    auto rearmed = eng.fire_due_timers(clock.now_ms());
    REQUIRE(rearmed.size() == 1);
    CHECK(rearmed[0].ack.status == ack_status::accepted);
    CHECK(rearmed[0].timer.generation == first[0].timer.generation + 1);
    CHECK(overdue == 2);
  }

  TEST_CASE("timer events cannot be sent from outside the engine") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(file_options(dir));
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    eng.handle(ev("p1", "order.placed", "o-1"));
    auto a = eng.handle(ev("t1", "saga.timer.payment_timeout", "o-1"));
    CHECK(a.status == ack_status::rejected);
    CHECK(a.reason == "attribute 'type': 'saga.timer.payment_timeout' is internal to the engine");
    CHECK(st.load_instance("order_lifecycle", "o-1")->state == "placed");
  }
}

TEST_SUITE("operator") {
  TEST_CASE(
      "abort moves a saga to the abort state with its follow-on events - resolve leaves needs_attention") {
    order_engine f;
    auto& [dir, clock, st, eng] = f;
    eng.handle(ev("p1", "order.placed", "o-1"));
    std::vector<std::string> seen;
    eng.subscribe("", [&](const saga::published_event& p) { seen.push_back(p.event.type); });
    auto a = eng.handle(ev("op1", "saga.operator.abort", "o-1", {{"reason", "fraud"}, {"operator", "ana"}}));
    CHECK(a.status == ack_status::accepted);
    CHECK(a.saga_state == "cancelled");
    CHECK(seen == std::vector<std::string>{"order.cancelled"});
    CHECK(st.timers_of("order_lifecycle", "o-1").empty());
    auto again = eng.handle(ev("op2", "saga.operator.abort", "o-1", {{"reason", "x"}, {"operator", "ana"}}));
    CHECK(again.status == ack_status::rejected);
    CHECK(again.reason == "saga is in terminal state 'cancelled': nothing to abort");

    auto r = eng.handle(ev("op3", "saga.operator.resolve", "o-1", {{"to", "done"}}));
    CHECK(r.status == ack_status::rejected);
    CHECK(r.reason.find("needs_attention") != std::string::npos);

    eng.handle(ev("q1", "order.placed", "o-2"));
    eng.handle(ev("q2", "payment.succeeded", "o-2"));
    eng.handle(ev("q3", "inventory.unavailable", "o-2"));
    for (int i = 0; i < 3; ++i) eng.handle(ev("qf" + std::to_string(i), "payment.refund.failed", "o-2"));
    CHECK(st.load_instance("order_lifecycle", "o-2")->state == "needs_attention");
    CHECK(eng.handle(ev("op4", "saga.operator.resolve", "o-2", {{"to", "paid"}})).status ==
          ack_status::rejected);
    auto ok = eng.handle(
        ev("op5", "saga.operator.resolve", "o-2", {{"to", "done"}, {"reason", "refunded by hand"}}));
    CHECK(ok.status == ack_status::accepted);
    CHECK(ok.saga_state == "done");
    CHECK(eng.handle(ev("op6", "saga.operator.abort", "nobody", nlohmann::json::object())).reason ==
          "no saga with id 'nobody'");
  }
}
