// saga::zmq::subscriber over real sockets on 127.0.0.1 (ports chosen by the OS
// at run time): catching up through the replay socket on start, on a gap in
// the live sequence and on a heartbeat announcing a lost tail; the position
// file; the type filter; replay errors (wire protocol v1, DESIGN.md).

#include "saga/zmq/subscriber.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <zmq.hpp>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/zmq/publisher.hpp"
#include "saga/zmq/replay_server.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using saga::test::placed;

const std::string any_port = "tcp://127.0.0.1:*";

// Counts the replay server's reads, so a test can tell replay from live.
class counting_store : public saga::store_wrapper {
 public:
  using saga::store_wrapper::store_wrapper;
  std::vector<saga::outbox_record> published_range(std::int64_t from, std::size_t limit) override {
    ++reads;
    return saga::store_wrapper::published_range(from, limit);
  }
  std::atomic<int> reads{0};
};

// Sends everything on the PUB socket except the sequences in `drop` (which the
// relay still marks published): a lost message, as a full queue would lose it.
class lossy_publisher : public saga::publisher {
 public:
  explicit lossy_publisher(saga::zmq::publisher& target) : target_(target) {}
  void publish(const saga::outbox_record& r) override {
    if (!drop.contains(r.sequence)) target_.publish(r);
  }
  std::set<std::int64_t> drop;

 private:
  saga::zmq::publisher& target_;
};

// An engine and relay on one connection (this thread), a replay server on its
// own connection to the same file, served on its own thread.
struct fixture {
  explicit fixture(int published = 0)
      : relay_store(saga::sqlite::options{dir.file("saga.db")}),
        replay_db(saga::sqlite::options{dir.file("saga.db")}),
        replay_store(replay_db),
        eng(relay_store, clock),
        pub(ctx, any_port),
        lossy(pub),
        relay(relay_store, lossy, clock),
        server(ctx, any_port, replay_store) {
    eng.add(saga::definitions::order_lifecycle());
    publish(published);
    serving = std::jthread([this](std::stop_token st) {
      while (!st.stop_requested()) server.poll_once(10ms);
    });
  }

  // `n` more order.placed (one payment.requested each), relayed.
  void publish(int n) {
    std::vector<saga::event> batch;
    for (int i = 0; i < n; ++i) batch.push_back(placed("o" + std::to_string(next_order++)));
    if (!batch.empty()) eng.handle_batch(std::span<const saga::event>(batch));
    relay.drain();
  }

  saga::zmq::subscriber subscriber(saga::zmq::subscriber_options o = {}) {
    o.replay_timeout = 2000ms;
    return saga::zmq::subscriber(ctx, pub.endpoint(), server.endpoint(), std::move(o));
  }

  std::vector<std::string> payloads(std::int64_t from, std::size_t n) {
    std::vector<std::string> out;
    for (auto& r : relay_store.published_range(from, n)) out.push_back(r.payload);
    return out;
  }

  saga::test::temp_dir dir;
  saga::manual_clock clock;
  zmq::context_t ctx;
  saga::sqlite::store relay_store;
  saga::sqlite::store replay_db;
  counting_store replay_store;
  saga::engine eng;
  saga::zmq::publisher pub;
  lossy_publisher lossy;
  saga::outbox_relay relay;
  saga::zmq::replay_server server;
  int next_order = 0;
  std::jthread serving;  // last: stopped and joined before the server goes
};

struct collector {
  std::vector<saga::zmq::delivery> got;
  std::function<void(const saga::zmq::delivery&)> fn() {
    return [this](const saga::zmq::delivery& d) { got.push_back(d); };
  }
  std::vector<std::int64_t> sequences() const {
    std::vector<std::int64_t> out;
    for (const auto& d : got) out.push_back(d.sequence);
    return out;
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const auto& d : got) out.push_back(d.payload);
    return out;
  }
};

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> out;
  for (auto s = from; s <= to; ++s) out.push_back(s);
  return out;
}

// Polls until the subscriber has handled `target` (or about 5 s went by).
void poll_until(saga::zmq::subscriber& sub, collector& c, std::int64_t target) {
  for (int i = 0; i < 100 && sub.last_sequence() < target; ++i) sub.poll(50ms, c.fn());
  CHECK(sub.last_sequence() == target);
}

// The PUB/SUB slow joiner: after the first poll (the catch-up on start),
// heartbeat a sequence above the subscriber's until it asks the replay for it
// (nothing new there: it delivers nothing). From then on it gets live events.
void join(fixture& f, saga::zmq::subscriber& sub, collector& c) {
  sub.poll(10ms, c.fn());
  const int before = f.replay_store.reads.load();
  bool joined = false;
  for (int i = 0; i < 100 && !joined; ++i) {
    f.pub.heartbeat(sub.last_sequence() + 1000);
    sub.poll(20ms, c.fn());
    joined = f.replay_store.reads.load() > before;
  }
  REQUIRE(joined);
  sub.poll(100ms, c.fn());  // a heartbeat still in flight: handled now, not later
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_SUITE("subscriber") {
  TEST_CASE("a late subscriber gets the whole history through replay and then live events once each") {
    fixture f(1005);  // more than one replay reply (1000 at most each)
    auto sub = f.subscriber();
    collector c;
    CHECK(sub.last_sequence() == 0);
    CHECK(sub.poll(10ms, c.fn()) == 1005);
    CHECK(c.sequences() == range(1, 1005));
    CHECK(c.payloads() == f.payloads(1, 1005));
    CHECK(c.got.front().type == "payment.requested");

    join(f, sub, c);
    const int reads = f.replay_store.reads.load();
    f.publish(3);
    poll_until(sub, c, 1008);
    CHECK(c.sequences() == range(1, 1008));
    CHECK(c.payloads() == f.payloads(1, 1008));
    CHECK(f.replay_store.reads.load() == reads);  // 1006..1008 came live

    // The same events again (an at-least-once relay after a crash): dropped.
    for (auto& r : f.relay_store.published_range(1006, 3)) f.pub.publish(r);
    CHECK(sub.poll(200ms, c.fn()) == 0);
    CHECK(c.sequences() == range(1, 1008));
  }

  TEST_CASE("a gap in the live sequence is filled from replay before the event after it") {
    fixture f;
    auto sub = f.subscriber();
    collector c;
    join(f, sub, c);
    const int reads = f.replay_store.reads.load();
    f.publish(3);  // 1..3 live
    f.lossy.drop = {4, 5, 6};
    f.publish(3);  // 4..6 published, never sent
    f.publish(1);  // 7 live
    poll_until(sub, c, 7);
    CHECK(c.sequences() == range(1, 7));
    CHECK(c.payloads() == f.payloads(1, 7));
    CHECK(f.replay_store.reads.load() > reads);
    CHECK(sub.poll(100ms, c.fn()) == 0);
    CHECK(c.sequences() == range(1, 7));
  }

  TEST_CASE("a heartbeat announcing a higher sequence makes the subscriber catch up") {
    fixture f;
    auto sub = f.subscriber();
    collector c;
    join(f, sub, c);
    f.publish(2);  // 1..2 live
    f.lossy.drop = {3, 4};
    f.publish(2);  // the lost tail
    poll_until(sub, c, 2);
    CHECK(sub.poll(100ms, c.fn()) == 0);  // nothing tells it about 3..4 yet
    CHECK(sub.last_sequence() == 2);
    f.pub.heartbeat(f.relay.last_published());
    poll_until(sub, c, 4);
    CHECK(c.sequences() == range(1, 4));
    CHECK(c.payloads() == f.payloads(1, 4));
  }

  TEST_CASE("a restarted subscriber resumes after the sequence in its position file") {
    fixture f(3);
    saga::zmq::subscriber_options o;
    o.position_file = f.dir.file("position");
    collector first;
    {
      auto sub = f.subscriber(o);
      poll_until(sub, first, 3);
    }
    CHECK(first.sequences() == range(1, 3));
    CHECK(read_file(o.position_file) == "3\n");

    f.publish(2);       // 4..5 while nobody listens
    o.start_after = 1;  // the file wins over start_after
    auto sub = f.subscriber(o);
    CHECK(sub.last_sequence() == 3);
    collector second;
    poll_until(sub, second, 5);
    CHECK(second.sequences() == range(4, 5));
    CHECK(second.payloads() == f.payloads(4, 2));
    CHECK(read_file(o.position_file) == "5\n");
  }

  TEST_CASE("without a stored position the subscriber starts after start_after") {
    fixture f(4);
    saga::zmq::subscriber_options o;
    o.position_file = f.dir.file("position");  // not written yet
    o.start_after = 2;
    auto sub = f.subscriber(o);
    CHECK(sub.last_sequence() == 2);
    collector c;
    poll_until(sub, c, 4);
    CHECK(c.sequences() == range(3, 4));
  }

  TEST_CASE("a malformed position file throws subscriber_error naming the file") {
    fixture f;
    saga::zmq::subscriber_options o;
    o.position_file = f.dir.file("position");
    for (const char* text : {"twelve\n", "", "-3\n", "12abc"}) {
      CAPTURE(text);
      std::ofstream(o.position_file) << text;
      CHECK_THROWS_WITH_AS(f.subscriber(o), doctest::Contains(o.position_file.c_str()),
                           saga::zmq::subscriber_error);
    }
    std::ofstream(o.position_file) << " 12 \n";  // surrounding whitespace is fine
    CHECK(f.subscriber(o).last_sequence() == 12);
  }

  TEST_CASE("a position file that cannot be written throws subscriber_error") {
    fixture f(1);
    saga::zmq::subscriber_options o;
    o.position_file = f.dir.file("missing-dir/position");
    auto sub = f.subscriber(o);
    collector c;
    CHECK_THROWS_WITH_AS(sub.poll(10ms, c.fn()), doctest::Contains(o.position_file.c_str()),
                         saga::zmq::subscriber_error);
    CHECK(c.sequences() == range(1, 1));  // delivered before the write failed
  }

  TEST_CASE("type_prefixes deliver only matching types and last_sequence moves past the others") {
    fixture f;
    // Per order: payment.requested then inventory.reservation.requested.
    auto two_steps = [&](const std::string& order) {
      f.eng.handle(placed(order));
      saga::event paid;
      paid.id = "paid-" + order;
      paid.source = "urn:test";
      paid.type = "payment.succeeded";
      paid.subject = order;
      f.eng.handle(paid);
      f.relay.drain();
    };
    two_steps("a");  // 1 payment.requested, 2 inventory.reservation.requested
    saga::zmq::subscriber_options o;
    o.type_prefixes = {"inventory.", "order.shipped"};
    auto sub = f.subscriber(o);
    collector c;
    CHECK(sub.poll(10ms, c.fn()) == 1);  // through replay
    CHECK(sub.last_sequence() == 2);
    join(f, sub, c);
    const int reads = f.replay_store.reads.load();
    two_steps("b");  // 3, 4 live
    f.eng.handle(placed("c"));
    f.relay.drain();  // 5 live, filtered out
    poll_until(sub, c, 5);
    CHECK(c.sequences() == std::vector<std::int64_t>{2, 4});
    for (const auto& d : c.got) CHECK(d.type == "inventory.reservation.requested");
    CHECK(f.replay_store.reads.load() == reads);  // a skipped type is no gap
  }

  TEST_CASE("replay of pruned history throws subscriber_error mentioning pruned") {
    fixture f(4);
    f.clock.advance(std::chrono::hours(24 * 8));
    f.publish(1);  // 5, kept
    CHECK(f.relay.prune() > 0);
    auto sub = f.subscriber();
    collector c;
    CHECK_THROWS_WITH_AS(sub.poll(10ms, c.fn()), doctest::Contains("pruned"), saga::zmq::subscriber_error);
    CHECK(c.got.empty());
    CHECK(sub.last_sequence() == 0);

    saga::zmq::subscriber_options o;
    o.start_after = 4;  // from the first retained on: fine
    auto late = f.subscriber(o);
    poll_until(late, c, 5);
    CHECK(c.sequences() == std::vector<std::int64_t>{5});
  }

  TEST_CASE("a replay endpoint with nobody listening throws naming the endpoint") {
    zmq::context_t ctx;
    saga::zmq::publisher pub(ctx, any_port);
    saga::test::temp_dir dir;
    const std::string nobody = "ipc://" + dir.file("nobody");  // no process binds it, ever
    saga::zmq::subscriber_options o;
    o.replay_timeout = 200ms;
    saga::zmq::subscriber sub(ctx, pub.endpoint(), nobody, o);
    collector c;
    CHECK_THROWS_WITH_AS(sub.poll(10ms, c.fn()), doctest::Contains(nobody.c_str()),
                         saga::zmq::subscriber_error);
  }
}
