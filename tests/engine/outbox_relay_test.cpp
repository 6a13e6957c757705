// The outbox relay over the real SQLite store: order, marking after the
// publisher took a row, resuming after a failure or a restart, pruning.

#include "saga/outbox_relay.hpp"

#include <chrono>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

// Records what it was handed; fails on the n-th publish when asked to.
class recording_publisher : public saga::publisher {
 public:
  void publish(const saga::outbox_record& r) override {
    if (fail_at > 0 && ++calls == fail_at) throw std::runtime_error("transport down");
    sequences.push_back(r.sequence);
    types.push_back(r.type);
  }
  int fail_at = 0;
  int calls = 0;
  std::vector<std::int64_t> sequences;
  std::vector<std::string> types;
};

using saga::test::placed;

saga::event paid(const std::string& order) {
  saga::event e = placed(order);
  e.id = "paid-" + order;
  e.type = "payment.succeeded";
  e.data = nlohmann::json::object();
  return e;
}

// Counts how often the relay reads the outbox.
class counting_store : public saga::store_wrapper {
 public:
  using saga::store_wrapper::store_wrapper;
  std::vector<saga::outbox_record> unpublished(std::int64_t after, std::size_t limit) override {
    ++reads;
    return saga::store_wrapper::unpublished(after, limit);
  }
  int reads = 0;
};

// An engine with the order workflow, a relay (reading the outbox through a counting store) that
// has drained once, and the rows each commit wrote, as engine::on_commit gives them.
struct after_commit {
  after_commit() {
    eng.add(saga::definitions::order_lifecycle());
    eng.on_commit([this](std::span<const saga::published_event> rows) {
      for (const auto& p : rows) committed.push_back(p.record);
    });
    relay.drain();
  }
  std::vector<saga::outbox_record> take() { return std::exchange(committed, {}); }

  saga::test::temp_dir dir;
  saga::manual_clock clock;
  saga::sqlite::store st{saga::sqlite::options{dir.file("saga.db")}};
  saga::engine eng{st, clock};
  counting_store counted{st};
  recording_publisher pub;
  saga::outbox_relay relay{counted, pub, clock};
  std::vector<saga::outbox_record> committed;
};

// A store that numbers after the commit, as the PostgreSQL store does (its rows are numbered at
// insert underneath, so that they can be read back): the lease calls are scripted and counted.
class numbering_later_store : public counting_store {
 public:
  using counting_store::counting_store;
  bool sequences_at_insert() const override { return false; }
  std::int64_t claim_relay(std::string_view, std::int64_t lease_ms) override {
    ++claims;
    claimed_lease_ms = lease_ms;
    return grant;
  }
  std::int64_t number_outbox(std::int64_t epoch, std::int64_t, std::size_t) override {
    numbered_with.push_back(epoch);
    return fenced ? -1 : 0;
  }
  std::int64_t grant = 7;  // the epoch claim_relay hands out (0: another relay holds the lease)
  bool fenced = false;     // number_outbox: the lease was taken over
  int claims = 0;
  std::int64_t claimed_lease_ms = 0;
  std::vector<std::int64_t> numbered_with;
};

}  // namespace

TEST_SUITE("outbox_relay") {
  // Issue 17, item 4: on a store that numbers after the commit, the relay claims the lease and
  // numbers before it publishes, never publishes committed rows from memory (their numbers are
  // provisional), and once fenced numbers nothing more, says so, and claims again a lease later.
  TEST_CASE("a relay on a store numbering after the commit numbers under its lease and stops once fenced") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    std::vector<saga::outbox_record> committed;
    eng.on_commit([&](std::span<const saga::published_event> rows) {
      for (const auto& p : rows) committed.push_back(p.record);
    });
    numbering_later_store later(st);
    recording_publisher pub;
    std::vector<std::pair<std::string, bool>> said;
    saga::relay_options o;
    o.lease_ms = 4000;
    o.log = [&](std::string_view m, bool lost) { said.emplace_back(std::string(m), lost); };
    saga::outbox_relay relay(later, pub, clock, o);
    CHECK(relay.numbers_after_commit());
    CHECK_FALSE(relay.numbering());

    CHECK(relay.drain() == 0);
    CHECK(later.claims == 1);
    CHECK(later.claimed_lease_ms == 4000);
    CHECK(later.numbered_with == std::vector<std::int64_t>{7});
    CHECK(relay.numbering());
    REQUIRE(said.size() == 1);
    CHECK(said[0].first.find("numbers the outbox now (lease epoch 7)") != std::string::npos);
    CHECK_FALSE(said[0].second);

    eng.handle(placed("o1"));
    const int reads = later.reads;
    CHECK(relay.publish(committed) == 1);  // read from the outbox, not from memory
    CHECK(later.reads == reads + 1);
    CHECK(later.claims == 1);  // renewed by numbering, not claimed again
    CHECK(later.numbered_with == std::vector<std::int64_t>{7, 7});
    CHECK(pub.sequences == std::vector<std::int64_t>{1});

    later.fenced = true;
    eng.handle(placed("o2"));
    CHECK(relay.drain() == 1);  // publishes what is numbered all the same
    CHECK_FALSE(relay.numbering());
    REQUIRE(said.size() == 2);
    CHECK(said[1].first.find("lease epoch 7 was taken over by another relay") != std::string::npos);
    CHECK(said[1].second);
    later.fenced = false;
    later.grant = 0;
    relay.drain();
    CHECK(later.claims == 1);  // not before a lease has passed
    CHECK(later.numbered_with.size() == 3);
    clock.advance(std::chrono::milliseconds(4000));
    relay.drain();
    CHECK(later.claims == 2);  // another relay holds it now: nothing numbered
    CHECK(later.numbered_with.size() == 3);
    CHECK_FALSE(relay.numbering());
  }

  TEST_CASE("a relay publishes committed rows in sequence order and marks them published") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    for (int i = 0; i < 5; ++i) eng.handle(placed("o" + std::to_string(i)));
    eng.handle(paid("o0"));
    recording_publisher pub;
    saga::relay_options o;
    o.chunk = 2;  // several chunks
    saga::outbox_relay relay(st, pub, clock, o);
    CHECK(relay.drain() == 6);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
    CHECK(pub.types.back() == "inventory.reservation.requested");
    CHECK(st.unpublished(0, 100).empty());
    CHECK(st.last_published_sequence() == 6);
    CHECK(relay.drain() == 0);
  }

  TEST_CASE("a relay resumes after the last published sequence when the publisher failed midway") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    for (int i = 0; i < 4; ++i) eng.handle(placed("o" + std::to_string(i)));
    recording_publisher pub;
    pub.fail_at = 3;
    saga::outbox_relay relay(st, pub, clock);
    CHECK_THROWS_AS(relay.drain(), std::runtime_error);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2});
    CHECK(st.last_published_sequence() == 2);  // only what the publisher took
    CHECK(st.unpublished(0, 100).size() == 2);
    pub.fail_at = 0;
    CHECK(relay.drain() == 2);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2, 3, 4});
  }

  TEST_CASE("publish hands just-committed rows over from memory and does not read the outbox back") {
    after_commit f;
    CHECK(f.counted.reads == 1);  // the first drain
    f.eng.handle(placed("o1"));
    f.eng.handle(paid("o1"));
    const auto rows = f.take();
    REQUIRE(rows.size() == 2);
    CHECK(rows.front().type == "payment.requested");
    CHECK(rows.front().payload.find(rows.front().event_id) != std::string::npos);
    CHECK(f.relay.publish(rows) == 2);
    CHECK(f.counted.reads == 1);  // not read back
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1, 2});
    CHECK(f.st.unpublished(0, 100).empty());  // marked
    CHECK(f.st.last_published_sequence() == 2);
  }

  TEST_CASE("a drain limited to the durable rows stops before the first one not durable yet") {
    after_commit f;
    std::int64_t durable = 1;  // sagad: up to the row before its first commit not yet synced
    f.relay.limit_to_durable([&] { return durable; });
    f.eng.handle(placed("o1"));  // sequence 1
    f.eng.handle(placed("o2"));  // 2
    f.eng.handle(placed("o3"));  // 3
    const auto rows = f.take();
    REQUIRE(rows.size() == 3);
    CHECK(f.relay.drain() == 1);
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1});
    CHECK(f.st.unpublished(0, 100).size() == 2);  // 2 and 3 wait
    durable = 3;
    // The rest from memory once durable: they follow the last published row.
    const int reads = f.counted.reads;
    CHECK(f.relay.publish(std::span(rows).subspan(1)) == 2);
    CHECK(f.counted.reads == reads);
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1, 2, 3});
    CHECK(f.st.unpublished(0, 100).empty());
  }

  TEST_CASE("publish reads the outbox when another process committed rows before the ones in hand") {
    after_commit f;
    {
      saga::sqlite::store other_connection(saga::sqlite::options{f.dir.file("saga.db")});
      saga::engine other(other_connection, f.clock);
      other.add(saga::definitions::order_lifecycle());
      other.handle(placed("elsewhere"));  // sequence 1, which this process never saw
    }
    f.eng.handle(placed("here"));
    CHECK(f.relay.publish(f.take()) == 2);
    CHECK(f.counted.reads > 1);
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1, 2});  // in sequence order, none skipped
    CHECK(f.st.unpublished(0, 100).empty());
  }

  TEST_CASE("after a failed publish the next one reads the outbox first and keeps the order") {
    after_commit f;
    f.eng.handle(placed("o1"));
    f.eng.handle(placed("o2"));
    f.pub.fail_at = 2;
    CHECK_THROWS_AS(f.relay.publish(f.take()), std::runtime_error);
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1});
    CHECK(f.st.last_published_sequence() == 1);
    f.pub.fail_at = 0;
    f.eng.handle(placed("o3"));
    CHECK(f.relay.publish(f.take()) == 2);
    CHECK(f.pub.sequences == std::vector<std::int64_t>{1, 2, 3});
    CHECK(f.st.unpublished(0, 100).empty());
  }

  TEST_CASE("a new relay publishes what was committed but not published before a restart") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    {
      saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
      saga::engine eng(st, clock);
      eng.add(saga::definitions::order_lifecycle());
      for (int i = 0; i < 3; ++i) eng.handle(placed("o" + std::to_string(i)));
    }
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    recording_publisher pub;
    saga::outbox_relay relay(st, pub, clock);
    CHECK(relay.drain() == 3);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2, 3});
  }

  TEST_CASE("pruning deletes old published rows and inbox rows and never reuses a sequence") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    eng.handle(placed("o1"));
    recording_publisher pub;
    saga::outbox_relay relay(st, pub, clock);
    relay.drain();
    clock.advance(std::chrono::hours(24 * 8));
    eng.handle(placed("o2"));   // unpublished: must survive pruning
    CHECK(relay.prune() == 2);  // one outbox row, one inbox row
    CHECK(st.first_retained_sequence() == 2);
    CHECK(st.find_ack("urn:test", "placed-o1") == std::nullopt);
    relay.drain();
    CHECK(relay.prune() == 0);
    clock.advance(std::chrono::hours(24 * 8));
    CHECK(relay.prune() == 2);
    CHECK(st.first_retained_sequence() == 0);
    eng.handle(placed("o3"));
    relay.drain();
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2, 3});
    CHECK(st.last_published_sequence() == 3);
  }
}
