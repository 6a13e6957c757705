// The outbox relay over the real SQLite store: order, marking after the
// publisher took a row, resuming after a failure or a restart, pruning.

#include "saga/outbox_relay.hpp"

#include <span>
#include <stdexcept>
#include <utility>

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

// The rows each commit of `eng` wrote, as engine::on_commit gives them.
struct committed_rows {
  explicit committed_rows(saga::engine& eng) {
    eng.on_commit([this](std::span<const saga::published_event> rows) {
      for (const auto& p : rows) last.push_back(p.record);
    });
  }
  std::vector<saga::outbox_record> take() { return std::exchange(last, {}); }
  std::vector<saga::outbox_record> last;
};

saga::event paid(const std::string& order) {
  saga::event e = placed(order);
  e.id = "paid-" + order;
  e.type = "payment.succeeded";
  e.data = nlohmann::json::object();
  return e;
}

}  // namespace

TEST_SUITE("outbox_relay") {
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
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    committed_rows rows(eng);
    counting_store counted(st);
    recording_publisher pub;
    saga::outbox_relay relay(counted, pub, clock);
    CHECK(relay.drain() == 0);
    CHECK(counted.reads == 1);
    eng.handle(placed("o1"));
    eng.handle(paid("o1"));
    auto batch = rows.take();
    REQUIRE(batch.size() == 2);
    CHECK(batch.front().type == "payment.requested");
    CHECK(batch.front().payload.find(batch.front().event_id) != std::string::npos);
    CHECK(relay.publish(batch) == 2);
    CHECK(counted.reads == 1);  // not read back
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2});
    CHECK(st.unpublished(0, 100).empty());  // marked
    CHECK(st.last_published_sequence() == 2);
  }

  TEST_CASE("publish reads the outbox when another process committed rows before the ones in hand") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    committed_rows rows(eng);
    recording_publisher pub;
    saga::outbox_relay relay(st, pub, clock);
    relay.drain();
    {
      saga::sqlite::store other_connection(saga::sqlite::options{dir.file("saga.db")});
      saga::engine other(other_connection, clock);
      other.add(saga::definitions::order_lifecycle());
      other.handle(placed("elsewhere"));  // sequence 1, which this process never saw
    }
    eng.handle(placed("here"));
    CHECK(relay.publish(rows.take()) == 2);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2});  // in sequence order, none skipped
    CHECK(st.unpublished(0, 100).empty());
  }

  TEST_CASE("after a failed publish the next one reads the outbox first and keeps the order") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    committed_rows rows(eng);
    recording_publisher pub;
    saga::outbox_relay relay(st, pub, clock);
    relay.drain();
    eng.handle(placed("o1"));
    eng.handle(placed("o2"));
    pub.fail_at = 2;
    CHECK_THROWS_AS(relay.publish(rows.take()), std::runtime_error);
    CHECK(pub.sequences == std::vector<std::int64_t>{1});
    CHECK(st.last_published_sequence() == 1);
    pub.fail_at = 0;
    eng.handle(placed("o3"));
    CHECK(relay.publish(rows.take()) == 2);
    CHECK(pub.sequences == std::vector<std::int64_t>{1, 2, 3});
    CHECK(st.unpublished(0, 100).empty());
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
