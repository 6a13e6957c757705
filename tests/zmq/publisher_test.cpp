// saga::zmq over real sockets on 127.0.0.1 (ports chosen by the OS at run
// time): the events PUB socket's frames and heartbeat, and the replay ROUTER's
// answers (wire protocol v1, DESIGN.md).

#include "saga/zmq/publisher.hpp"
#include "saga/zmq/replay_server.hpp"

#include <chrono>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/sqlite/store.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"
#include "support/zmq_frames.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string any_port = "tcp://127.0.0.1:*";

using saga::test::placed;

using saga::test::recv_all;

zmq::socket_t subscriber(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvtimeo, 2000);
  sub.set(zmq::sockopt::linger, 0);
  sub.connect(endpoint);
  return sub;
}

// The PUB/SUB slow joiner: heartbeat until the subscription has reached the
// publisher (the subscriber gets a heartbeat), then drain what is queued.
void join(saga::zmq::publisher& pub, zmq::socket_t& sub) {
  sub.set(zmq::sockopt::rcvtimeo, 50);
  bool joined = false;
  for (int i = 0; i < 100 && !joined; ++i) {
    pub.heartbeat(0);
    joined = !recv_all(sub).empty();
  }
  REQUIRE(joined);
  while (!recv_all(sub).empty()) {
  }
  sub.set(zmq::sockopt::rcvtimeo, 2000);
}

// A DEALER talking to a replay_server served on this thread.
struct replay_client {
  replay_client(zmq::context_t& ctx, saga::zmq::replay_server& server,
                zmq::socket_type type = zmq::socket_type::dealer)
      : server_(server), socket(ctx, type) {
    socket.set(zmq::sockopt::rcvtimeo, 2000);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(server.endpoint());
  }
  std::vector<std::string> ask(const std::vector<std::string>& frames) {
    std::vector<zmq::const_buffer> bufs;
    for (auto& f : frames) bufs.push_back(zmq::buffer(f));
    zmq::send_multipart(socket, bufs);
    bool handled = false;
    for (int i = 0; i < 20 && !handled; ++i) handled = server_.poll_once(100ms);
    REQUIRE(handled);
    return recv_all(socket);
  }
  std::vector<std::string> ask(const json& request) { return ask(std::vector<std::string>{request.dump()}); }

  saga::zmq::replay_server& server_;
  zmq::socket_t socket;
};

// A database with `published` order.placed events published through a
// saga::zmq::publisher and `pending` more committed but not published; each
// order.placed emits one follow-on event (payment.requested).
struct fixture {
  fixture(int published, int pending)
      : relay_store(saga::sqlite::options{dir.file("saga.db")}),
        replay_store(saga::sqlite::options{dir.file("saga.db")}),
        eng(relay_store, clock),
        pub(ctx, any_port),
        relay(relay_store, pub, clock),
        server(ctx, any_port, replay_store) {
    eng.add(saga::definitions::order_lifecycle());
    add(published, 0);
    relay.drain();
    add(pending, published);
  }
  void add(int n, int offset) {
    std::vector<saga::event> batch;
    for (int i = 0; i < n; ++i) batch.push_back(placed("o" + std::to_string(offset + i)));
    if (!batch.empty()) eng.handle_batch(std::span<const saga::event>(batch));
  }

  saga::test::temp_dir dir;
  saga::manual_clock clock;
  zmq::context_t ctx;
  saga::sqlite::store relay_store;
  saga::sqlite::store replay_store;
  saga::engine eng;
  saga::zmq::publisher pub;
  saga::outbox_relay relay;
  saga::zmq::replay_server server;
};

json header_of(const std::vector<std::string>& reply) {
  REQUIRE(!reply.empty());
  return json::parse(reply.front());
}

}  // namespace

TEST_SUITE("zmq") {
  TEST_CASE("a subscriber receives type then sequence then event JSON in sequence order") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    zmq::context_t ctx;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    eng.add(saga::definitions::order_lifecycle());
    saga::zmq::publisher pub(ctx, any_port);
    CHECK(pub.endpoint().rfind("tcp://127.0.0.1:", 0) == 0);
    CHECK(pub.endpoint() != any_port);
    auto sub = subscriber(ctx, pub.endpoint());
    join(pub, sub);

    for (int i = 0; i < 3; ++i) eng.handle(placed("o" + std::to_string(i)));
    saga::outbox_relay relay(st, pub, clock);
    CHECK(relay.drain() == 3);
    auto rows = st.published_range(1, 10);
    REQUIRE(rows.size() == 3);
    for (const auto& r : rows) {
      auto frames = recv_all(sub);
      REQUIRE(frames.size() == 3);
      CHECK(frames[0] == "payment.requested");
      CHECK(frames[0] == r.type);
      CHECK(frames[1] == std::to_string(r.sequence));
      CHECK(frames[2] == r.payload);
      CHECK(json::parse(frames[2])["type"] == "payment.requested");
    }
  }

  TEST_CASE("the heartbeat carries the last published sequence") {
    zmq::context_t ctx;
    saga::zmq::publisher pub(ctx, any_port);
    auto sub = subscriber(ctx, pub.endpoint());
    join(pub, sub);
    pub.heartbeat(42);
    auto frames = recv_all(sub);
    CHECK(frames == std::vector<std::string>{"saga.heartbeat", "42", "{}"});
    pub.heartbeat(0);
    CHECK(recv_all(sub) == std::vector<std::string>{"saga.heartbeat", "0", "{}"});
  }

  TEST_CASE("binding to a taken endpoint throws naming the endpoint") {
    zmq::context_t ctx;
    saga::zmq::publisher first(ctx, any_port);
    const std::string taken = first.endpoint();
    try {
      saga::zmq::publisher second(ctx, taken);
      FAIL("bound twice");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find(taken) != std::string::npos);
    }
    saga::test::temp_dir dir;
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    CHECK_THROWS_AS(saga::zmq::replay_server(ctx, taken, st), std::runtime_error);
  }

  TEST_CASE("replay returns published events from the inclusive from up to the limit") {
    fixture f(6, 2);  // 1..6 published; 7 and 8 committed only
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 2}, {"limit", 3}});
    REQUIRE(reply.size() == 7);
    CHECK(header_of(reply) == json{{"from", 2}, {"count", 3}, {"last", 6}});
    auto rows = f.relay_store.published_range(2, 3);
    REQUIRE(rows.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(reply[1 + 2 * i] == std::to_string(2 + i));
      CHECK(reply[2 + 2 * i] == rows[i].payload);
    }
  }

  TEST_CASE("replay never returns unpublished rows") {
    fixture f(6, 2);
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 5}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 5}, {"count", 2}, {"last", 6}});
    REQUIRE(reply.size() == 5);
    CHECK(reply[1] == "5");
    CHECK(reply[3] == "6");
    reply = client.ask(json{{"from", 7}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 7}, {"count", 0}, {"last", 6}});
    CHECK(reply.size() == 1);
    f.relay.drain();
    reply = client.ask(json{{"from", 7}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 7}, {"count", 2}, {"last", 8}});
  }

  TEST_CASE("replay from beyond the last published sequence gives count 0") {
    fixture f(3, 0);
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 100}, {"limit", 10}});
    CHECK(reply.size() == 1);
    CHECK(header_of(reply) == json{{"from", 100}, {"count", 0}, {"last", 3}});
    reply = client.ask(json{{"from", 0}, {"limit", 0}});
    CHECK(header_of(reply) == json{{"from", 0}, {"count", 0}, {"last", 3}});
    reply = client.ask(json{{"from", 0}});  // limit defaults to the cap
    CHECK(header_of(reply)["count"] == 3);
    CHECK(reply[1] == "1");
  }

  TEST_CASE("replay on an empty database gives count 0 and last 0") {
    fixture f(0, 0);
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 1}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 1}, {"count", 0}, {"last", 0}});
  }

  TEST_CASE("replay caps the limit at 1000") {
    fixture f(1005, 0);
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 1}, {"limit", 5000}});
    CHECK(header_of(reply) == json{{"from", 1}, {"count", 1000}, {"last", 1005}});
    CHECK(reply.size() == 2001);
    CHECK(reply[1999] == "1000");
    reply = client.ask(json{{"from", 1001}, {"limit", 5000}});
    CHECK(header_of(reply)["count"] == 5);
  }

  TEST_CASE("replay from before the retained rows answers pruned with the first retained sequence") {
    fixture f(4, 1);  // 1..4 published; 5 pending
    f.clock.advance(std::chrono::hours(24 * 8));
    CHECK(f.relay.prune() > 0);
    replay_client client(f.ctx, f.server);
    auto reply = client.ask(json{{"from", 2}, {"limit", 10}});
    CHECK(reply.size() == 1);
    CHECK(header_of(reply) == json{{"error", "pruned"}, {"first", 5}});
    reply = client.ask(json{{"from", 0}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"error", "pruned"}, {"first", 5}});
    reply = client.ask(json{{"from", 5}, {"limit", 10}});  // retained but unpublished
    CHECK(header_of(reply) == json{{"from", 5}, {"count", 0}, {"last", 4}});
    f.relay.drain();
    reply = client.ask(json{{"from", 5}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 5}, {"count", 1}, {"last", 5}});
    // Everything pruned: the outbox is empty, the next sequence is the first.
    f.clock.advance(std::chrono::hours(24 * 8));
    f.relay.prune();
    reply = client.ask(json{{"from", 3}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"error", "pruned"}, {"first", 6}});
    reply = client.ask(json{{"from", 6}, {"limit", 10}});
    CHECK(header_of(reply) == json{{"from", 6}, {"count", 0}, {"last", 5}});
  }

  TEST_CASE("malformed replay requests get bad_request and the server keeps serving") {
    fixture f(3, 0);
    replay_client client(f.ctx, f.server);
    const std::vector<std::string> bad = {"not json",
                                          "[1,2]",
                                          R"({"limit":3})",
                                          R"({"from":-1})",
                                          R"({"from":"2"})",
                                          R"({"from":1.5})",
                                          R"({"from":1,"limit":-2})",
                                          R"({"from":1,"limit":"x"})",
                                          "",
                                          R"({"from":18446744073709551615})"};
    for (const auto& body : bad) {
      CAPTURE(body);
      auto reply = client.ask(std::vector<std::string>{body});
      REQUIRE(reply.size() == 1);
      auto h = header_of(reply);
      CHECK(h["error"] == "bad_request");
      CHECK(h["reason"].is_string());
    }
    auto reply = client.ask(std::vector<std::string>{R"({"from":1})", R"({"from":2})"});  // two frames
    REQUIRE(reply.size() == 1);
    CHECK(header_of(reply)["error"] == "bad_request");
    reply = client.ask(json{{"from", 1}, {"limit", 2}});
    CHECK(header_of(reply) == json{{"from", 1}, {"count", 2}, {"last", 3}});
  }

  TEST_CASE("a REQ client gets its reply through the empty delimiter") {
    fixture f(3, 0);
    replay_client client(f.ctx, f.server, zmq::socket_type::req);
    auto reply = client.ask(json{{"from", 2}, {"limit", 10}});
    REQUIRE(reply.size() == 5);
    CHECK(header_of(reply) == json{{"from", 2}, {"count", 2}, {"last", 3}});
    CHECK(reply[3] == "3");
  }

  TEST_CASE("poll_once returns false when no request arrives") {
    fixture f(0, 0);
    CHECK_FALSE(f.server.poll_once(10ms));
  }
}
