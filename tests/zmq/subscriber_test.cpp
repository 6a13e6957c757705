// saga::zmq::subscriber over real sockets on 127.0.0.1 (ports chosen by the OS
// at run time): catching up through the replay socket on start, on a gap in
// the live sequence and on a heartbeat announcing a lost tail; the position
// file; the type filter; replay errors (wire protocol v1, DESIGN.md).

#include "saga/zmq/subscriber.hpp"
#include "saga/zmq/digest.hpp"
#include "saga/zmq/durable_subscriber.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <set>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/Statement.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

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
  // A replayed event carries no type frame: the subscriber reads it from the event's JSON, as
  // a parse into a document would find it, whatever the payload holds.
  TEST_CASE("a replayed event's type is the string type of its top-level object and empty otherwise") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"data":{"type":"nested"},"type":"a.b"})", "a.b"},
        {R"({"a":[{"type":"deep"}],"type":"top","z":{"type":1}})", "top"},
        {R"({"type":"first","type":"second"})", "second"},
        {R"({"type":"x","type":{"y":1}})", ""},
        {R"({"type":5})", ""},
        {R"({"type":null,"b":"not.the.type"})", ""},
        {R"([{"type":"in.array"}])", ""},
        {R"("type")", ""},
        {R"({"type":"cut")", ""},
        {R"({"type":"ok"} {"type":"two"})", ""},
        {R"({"specversion":"1.0","type":"\u00e9t\u00e9.v"})", "\xc3\xa9t\xc3\xa9.v"},
        {R"({})", ""},
    };
    fixture f(static_cast<int>(cases.size()));
    for (std::size_t i = 0; i < cases.size(); ++i) {
      SQLite::Statement u(f.relay_store.database(), "UPDATE outbox SET payload = ? WHERE sequence = ?");
      u.bind(1, cases[i].first);
      u.bind(2, static_cast<std::int64_t>(i + 1));
      REQUIRE(u.exec() == 1);
    }
    auto sub = f.subscriber();
    collector c;
    CHECK(sub.poll(10ms, c.fn()) == cases.size());
    REQUIRE(c.got.size() == cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
      CAPTURE(cases[i].first);
      CHECK(c.got[i].payload == cases[i].first);
      CHECK(c.got[i].type == cases[i].second);
    }
  }

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

  // The next reply is asked for before a full one is handled: a handler that throws mid-reply
  // leaves that request behind, and the next poll goes on from the event that threw, once each.
  TEST_CASE("a handler throwing during a long replay gets the rest from where it threw once each") {
    fixture f(2500);  // three replies, two of them asked ahead
    auto sub = f.subscriber();
    collector c;
    bool thrown = false;
    auto failing_once = [&](const saga::zmq::delivery& d) {
      if (d.sequence == 1500 && !thrown) {
        thrown = true;
        throw std::runtime_error("handler failed");
      }
      c.got.push_back(d);
    };
    CHECK_THROWS_AS(sub.poll(10ms, failing_once), std::runtime_error);
    CHECK(sub.last_sequence() == 1499);
    CHECK(c.sequences() == range(1, 1499));
    CHECK(sub.poll(10ms, failing_once) == 1001);  // the reply asked ahead before the throw is not among them
    CHECK(c.sequences() == range(1, 2500));
    CHECK(c.payloads() == f.payloads(1, 2500));
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

namespace {

// One request on a DEALER to a replay-protocol endpoint (sagad's replay, a durable subscriber's
// digest endpoint), its answer's frames.
std::vector<std::string> ask(zmq::context_t& ctx, const std::string& endpoint, const std::string& body) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 5000);
  s.connect(endpoint);
  s.send(zmq::buffer(body), zmq::send_flags::none);
  std::vector<zmq::message_t> parts;
  REQUIRE(zmq::recv_multipart(s, std::back_inserter(parts)));
  std::vector<std::string> out;
  for (const auto& p : parts) out.push_back(p.to_string());
  return out;
}

nlohmann::json digest_of(zmq::context_t& ctx, const std::string& endpoint, std::int64_t from,
                         std::int64_t to) {
  return nlohmann::json::parse(ask(ctx, endpoint, saga::zmq::digest_request_body(from, to)).front());
}

// A durable subscriber whose handler counts its calls in the subscriber's own table `effects`.
struct durable {
  durable(fixture& f, saga::zmq::durable_options o = {}) {
    o.database = f.dir.file("subscriber.db");
    sub = std::make_unique<saga::zmq::durable_subscriber>(
        f.ctx, f.pub.endpoint(), f.server.endpoint(), o,
        [this](SQLite::Database& db, const saga::zmq::delivery& d, const saga::event& e) {
          if (fail_at == d.sequence) {
            fail_at = 0;
            throw std::runtime_error("handler failed at " + std::to_string(d.sequence));
          }
          SQLite::Statement insert(db, "INSERT INTO effects (sequence, event_id) VALUES (?1, ?2)");
          insert.bind(1, d.sequence);
          insert.bind(2, e.id);
          insert.exec();
        });
    sub->database().exec("CREATE TABLE IF NOT EXISTS effects (sequence INTEGER PRIMARY KEY, event_id TEXT)");
  }
  void poll_until(std::int64_t target) {
    for (int i = 0; i < 100 && sub->position() < target; ++i) sub->poll(50ms);
    REQUIRE(sub->position() == target);
  }
  std::int64_t count(const std::string& sql) { return sub->database().execAndGet(sql).getInt64(); }

  std::unique_ptr<saga::zmq::durable_subscriber> sub;
  std::int64_t fail_at = 0;
};

}  // namespace

TEST_SUITE("subscriber of several sagad") {
  // Two sagad of one cluster: A publishes the odd sequences, B the even ones, each from its own
  // PUB socket, and each serves replay from the shared database. One subscriber given both
  // endpoints sees 1..n once each, in order; replay goes on when one replay endpoint is down.
  TEST_CASE("one sequence published from two sagad's sockets arrives once each in order") {
    fixture f;
    saga::sqlite::store b_db(saga::sqlite::options{f.dir.file("saga.db")});
    saga::zmq::publisher b_pub(f.ctx, any_port);
    saga::zmq::replay_server b_replay(f.ctx, any_port, b_db);
    std::jthread b_serving([&](std::stop_token st) {
      while (!st.stop_requested()) b_replay.poll_once(10ms);
    });
    CHECK(saga::zmq::split_endpoints(" a, b,,c ") == std::vector<std::string>{"a", "b", "c"});
    auto sub = saga::zmq::subscriber(f.ctx, f.pub.endpoint() + "," + b_pub.endpoint(),
                                     f.server.endpoint() + "," + b_replay.endpoint(), {});
    collector c;
    join(f, sub, c);
    for (std::int64_t s = 2; s <= 40; s += 2) f.lossy.drop.insert(s);
    f.publish(40);
    for (const auto& r : f.relay_store.published_range(1, 40))
      if (r.sequence % 2 == 0) b_pub.publish(r);
    poll_until(sub, c, 40);
    CHECK(c.sequences() == range(1, 40));
    // Both publish everything again (a relay handing over): nothing twice.
    for (const auto& r : f.relay_store.published_range(1, 40)) {
      f.pub.publish(r);
      b_pub.publish(r);
    }
    CHECK(sub.poll(200ms, c.fn()) == 0);
    CHECK(c.sequences() == range(1, 40));
  }

  TEST_CASE("a replay endpoint that does not answer hands over to the next") {
    fixture f(25);
    // A ROUTER that takes requests and never answers: a sagad that hangs.
    zmq::socket_t hung(f.ctx, zmq::socket_type::router);
    hung.set(zmq::sockopt::linger, 0);
    hung.bind(any_port);
    const std::string hung_endpoint = hung.get(zmq::sockopt::last_endpoint);
    saga::zmq::subscriber_options o;
    o.replay_timeout = 300ms;
    saga::zmq::subscriber sub(f.ctx, f.pub.endpoint(), hung_endpoint + "," + f.server.endpoint(), o);
    collector c;
    CHECK(sub.poll(10ms, c.fn()) == 25);
    CHECK(c.sequences() == range(1, 25));
    // With only the hung one, the error names it.
    saga::zmq::subscriber alone(f.ctx, f.pub.endpoint(), hung_endpoint, o);
    CHECK_THROWS_WITH_AS(alone.poll(10ms, c.fn()), doctest::Contains(hung_endpoint.c_str()),
                         saga::zmq::subscriber_error);
  }
}

TEST_SUITE("range digests") {
  TEST_CASE("a digest is SHA-256 over one line per event: sequence id type and the payload's SHA-256") {
    CHECK(saga::zmq::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    saga::zmq::digest_builder b(1, 9);
    b.add(2, "e-2", "t.x", R"({"a":1})");
    b.add(5, "e-5", "t.y", "{}");
    const auto d = b.finish();
    CHECK(d.count == 2);
    CHECK(d.sha256 == saga::zmq::sha256_hex("2\te-2\tt.x\t" + saga::zmq::sha256_hex(R"({"a":1})") +
                                            "\n5\te-5\tt.y\t" + saga::zmq::sha256_hex("{}") + "\n"));
    CHECK(saga::zmq::digest_builder(3, 4).finish().sha256 == saga::zmq::sha256_hex(""));
  }

  TEST_CASE("sagad's replay answers digests equal to a durable subscriber's over the same events") {
    fixture f(20);
    durable d(f);
    d.poll_until(20);
    for (const auto& range : std::vector<std::pair<int, int>>{{1, 20}, {5, 9}, {7, 7}, {15, 40}, {21, 30}}) {
      const int from = range.first, to = range.second;  // not bindings: CAPTURE's lambda (clang 14)
      CAPTURE(from);
      CAPTURE(to);
      const auto r = digest_of(f.ctx, f.server.endpoint(), from, to);
      const auto mine = saga::zmq::durable_subscriber::digest(d.sub->database(), from, to);
      CHECK(r["digest"]["count"] == mine.count);
      CHECK(r["digest"]["sha256"] == mine.sha256);
      CHECK(r["last"] == 20);
    }
    CHECK(digest_of(f.ctx, f.server.endpoint(), 1, 20)["digest"]["count"] == 20);
    CHECK(digest_of(f.ctx, f.server.endpoint(), 21, 30)["digest"]["count"] == 0);
    // A different range has another digest.
    CHECK(digest_of(f.ctx, f.server.endpoint(), 1, 19)["digest"]["sha256"] !=
          digest_of(f.ctx, f.server.endpoint(), 1, 20)["digest"]["sha256"]);
  }

  TEST_CASE("bad digest requests are refused with a reason naming the field and the server goes on") {
    fixture f(3);
    for (const auto& request : std::vector<std::pair<std::string, std::string>>{
             {R"({"digest":5})", "\"digest\" must be an object"},
             {R"({"digest":{"from":3}})", "missing \"to\""},
             {R"({"digest":{"from":"1","to":3}})", "\"from\" must be an integer"},
             {R"({"digest":{"from":-1,"to":3}})", "\"from\" must be an integer"},
             {R"({"digest":{"from":1,"to":1.5}})", "\"to\" must be an integer"},
             {R"({"digest":{"from":5,"to":4}})", "\"to\" is below \"from\""},
             {R"({"digest":{"from":1,"to":100001}})", "wider than 100000"},
             {R"({"digest":{"from":1,"to":18446744073709551615}})", "\"to\" must be an integer"}}) {
      const std::string& body = request.first;  // not a binding: CAPTURE's lambda (clang 14)
      const std::string& reason = request.second;
      CAPTURE(body);
      const auto r = nlohmann::json::parse(ask(f.ctx, f.server.endpoint(), body).front());
      CHECK(r["error"] == "bad_request");
      CHECK(r.value("reason", "").find(reason) != std::string::npos);
    }
    CHECK(digest_of(f.ctx, f.server.endpoint(), 1, 3)["digest"]["count"] == 3);
  }

  TEST_CASE("a digest from below the first retained sequence answers pruned") {
    fixture f(10);
    f.relay_store.begin();
    CHECK(f.relay_store.prune(std::numeric_limits<std::int64_t>::max(), 0, 4) == 4);
    f.relay_store.commit();
    const auto r = digest_of(f.ctx, f.server.endpoint(), 1, 10);
    CHECK(r["error"] == "pruned");
    CHECK(r["first"] == 5);
    CHECK(digest_of(f.ctx, f.server.endpoint(), 5, 10)["digest"]["count"] == 6);
  }
}

TEST_SUITE("durable subscriber") {
  TEST_CASE("each event is recorded with the handler's writes and a duplicate reaches the handler once") {
    fixture f(10);
    durable d(f);
    d.poll_until(10);
    CHECK(d.count("SELECT count(*) FROM effects") == 10);
    CHECK(d.count("SELECT count(*) FROM saga_received WHERE outcome = 'processed'") == 10);
    // The event of sequence 4 published again under a new sequence: recorded, not handled.
    auto again = f.relay_store.published_range(4, 1).front();
    f.relay_store.begin();
    const auto seq = f.relay_store.append_outbox(again);
    f.relay_store.commit();
    f.relay.drain();
    // Live, or (a slow joiner's lost message) through replay after a heartbeat announcing it.
    for (int i = 0; i < 100 && d.sub->position() < seq; ++i) {
      f.pub.heartbeat(seq);
      d.sub->poll(50ms);
    }
    REQUIRE(d.sub->position() == seq);
    CHECK(d.count("SELECT count(*) FROM effects") == 10);
    CHECK(d.count("SELECT count(*) FROM saga_received WHERE outcome = 'duplicate'") == 1);
    CHECK(d.count("SELECT count(*) FROM saga_received") == 11);
  }

  TEST_CASE("a handler that throws rolls the poll back and the events come again") {
    fixture f(6);
    durable d(f);
    d.fail_at = 4;
    CHECK_THROWS_WITH(d.sub->poll(500ms), doctest::Contains("handler failed at 4"));
    CHECK(d.sub->position() == 0);  // 1..3 rolled back with 4
    CHECK(d.count("SELECT count(*) FROM effects") == 0);
    d.poll_until(6);
    CHECK(d.count("SELECT count(*) FROM effects") == 6);
    CHECK(d.count("SELECT count(DISTINCT sequence) FROM effects") == 6);
  }

  TEST_CASE("a restarted durable subscriber resumes after what its database recorded") {
    fixture f(5);
    {
      durable d(f);
      d.poll_until(5);
    }
    f.publish(3);
    durable d(f);
    CHECK(d.sub->position() == 5);
    d.poll_until(8);
    CHECK(d.count("SELECT count(*) FROM effects") == 8);
    CHECK(d.count("SELECT min(sequence) FROM saga_received") == 1);
  }

  // A restart after a crash while another process (an operator's sqlite3, a reconcile) holds its
  // database: the subscriber waits for the lock (its busy timeout) instead of failing to start.
  TEST_CASE("a durable subscriber starting while another connection locks its database waits for it") {
    fixture f(3);
    const auto path = f.dir.file("subscriber.db");
    SQLite::Database other(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    other.exec("CREATE TABLE held (x)");
    other.exec("BEGIN EXCLUSIVE");
    std::jthread release([&other] {
      std::this_thread::sleep_for(300ms);
      other.exec("COMMIT");
    });
    const auto start = std::chrono::steady_clock::now();
    durable d(f);
    CHECK(std::chrono::steady_clock::now() - start >= 250ms);  // it did wait for the lock
    d.poll_until(3);
    CHECK(d.count("SELECT count(*) FROM effects") == 3);
  }

  TEST_CASE("type_prefixes keep other types from the handler but record them") {
    fixture f(4);
    saga::zmq::durable_options o;
    o.type_prefixes = {"inventory."};
    durable d(f, o);
    d.poll_until(4);
    CHECK(d.count("SELECT count(*) FROM effects") == 0);
    CHECK(d.count("SELECT count(*) FROM saga_received WHERE outcome = 'filtered'") == 4);
  }

  TEST_CASE("the digest endpoint answers the same digests as sagad's replay") {
    fixture f(12);
    saga::zmq::durable_options o;
    o.digest_endpoint = any_port;
    durable d(f, o);
    d.poll_until(12);
    REQUIRE(d.sub->digest_endpoint().starts_with("tcp://127.0.0.1:"));
    std::atomic<bool> done{false};
    std::thread polling([&] {
      while (!done) d.sub->poll(20ms);
    });
    const auto mine = digest_of(f.ctx, d.sub->digest_endpoint(), 3, 11);
    const auto bad = nlohmann::json::parse(ask(f.ctx, d.sub->digest_endpoint(), R"({"from":1})").front());
    done = true;
    polling.join();
    const auto theirs = digest_of(f.ctx, f.server.endpoint(), 3, 11);
    CHECK(mine["digest"] == theirs["digest"]);
    CHECK(mine["last"] == 12);
    CHECK(bad["error"] == "bad_request");
  }
}
