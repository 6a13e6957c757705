// saga::zmq::ingress_server and saga::zmq::client over real sockets on
// 127.0.0.1 (ports chosen by the OS at run time): the ingress ROUTER serves a
// real engine over SQLite on a thread of its own; raw DEALER and REQ sockets
// check the wire (wire protocol v1, DESIGN.md), and plain ROUTER sockets
// under the test's control check the client's resends.

#include "saga/zmq/authorizer.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/ingress_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"
#include "support/zmq_frames.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string any_port = "tcp://127.0.0.1:*";

using saga::test::placed;

saga::sqlite::options db_options(const saga::test::temp_dir& dir) {
  saga::sqlite::options o;
  o.path = dir.file("saga.db");
  o.synchronous = "NORMAL";
  return o;
}

// An ingress_server in front of a real engine, served on its own thread the
// way sagad does: poll, read a batch, one transaction, then the acks.
struct served {
  served() : served(saga::zmq::ingress_options{}) {}
  // With `keys`, CURVE handshakes are authorised by a zap_handler made before the ingress binds.
  explicit served(saga::zmq::ingress_options o, std::optional<saga::zmq::authorized_keys> keys = std::nullopt)
      : store(db_options(dir)),
        eng(store, clock),
        zap(keys ? std::make_unique<saga::zmq::zap_handler>(ctx, std::move(*keys)) : nullptr),
        ingress(ctx, any_port, std::move(o)) {
    eng.add(saga::definitions::order_lifecycle());
    thread = std::thread([this] { serve(); });
  }
  ~served() {
    stop = true;
    thread.join();
  }
  served(const served&) = delete;
  served& operator=(const served&) = delete;

  void serve() {
    while (!stop) {
      zmq::pollitem_t item{ingress.socket().handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, ingress.queued_acks() > 0 ? 5ms : 20ms);
      ingress.flush();  // acks a pipe refused earlier (a peer not reading fast enough)
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      while (ingress.read_batch() > 0) {
        auto acks = eng.handle_batch(ingress.pending());
        ingress.ack(acks);
      }
    }
  }

  saga::test::temp_dir dir;
  saga::manual_clock clock;
  zmq::context_t ctx;
  saga::sqlite::store store;
  saga::engine eng;
  std::unique_ptr<saga::zmq::zap_handler> zap;
  saga::zmq::ingress_server ingress;
  std::atomic<bool> stop{false};
  std::thread thread;
};

zmq::socket_t open(zmq::context_t& ctx, const std::string& endpoint,
                   zmq::socket_type type = zmq::socket_type::dealer) {
  zmq::socket_t s(ctx, type);
  s.set(zmq::sockopt::rcvtimeo, 5000);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  return s;
}

using saga::test::recv_all;

void send_frames(zmq::socket_t& s, const std::vector<std::string>& frames) {
  std::vector<zmq::const_buffer> bufs;
  for (auto& f : frames) bufs.push_back(zmq::buffer(f));
  zmq::send_multipart(s, bufs);
}

// Sends `frames` from a DEALER (no delimiter) and returns the ack.
json ask(zmq::socket_t& s, const std::vector<std::string>& frames) {
  send_frames(s, frames);
  auto reply = recv_all(s);
  REQUIRE(reply.size() == 1);
  return json::parse(reply[0]);
}

json ask(zmq::socket_t& s, const std::string& body) {
  return ask(s, std::vector<std::string>{body});
}

// A fresh valid event is still accepted: the server keeps serving.
void still_serving(zmq::socket_t& s, const std::string& order) {
  auto a = ask(s, saga::encode_event(placed(order)));
  CHECK(a["status"] == "accepted");
  CHECK(a["id"] == "placed-" + order);
}

std::vector<saga::event> orders(int n, const std::string& prefix) {
  std::vector<saga::event> out;
  for (int i = 0; i < n; ++i) out.push_back(placed(prefix + std::to_string(i)));
  return out;
}

}  // namespace

TEST_SUITE("ingress") {
  TEST_CASE("a valid event is accepted and its ack names the saga") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    auto a = ask(dealer, saga::encode_event(placed("o1")));
    CHECK(a["id"] == "placed-o1");
    CHECK(a["source"] == "urn:test");
    CHECK(a["status"] == "accepted");
    CHECK(a["outcome"] == "transitioned");
    CHECK(a["saga"]["type"] == "order_lifecycle");
    CHECK(a["saga"]["id"] == "o1");
    CHECK(a["saga"]["state"] == "placed");
    auto again = ask(dealer, saga::encode_event(placed("o1")));
    CHECK(again["status"] == "duplicate");
  }

  TEST_CASE("a DEALER that sends the empty delimiter gets it back") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    send_frames(dealer, {"", saga::encode_event(placed("d1"))});
    auto reply = recv_all(dealer);
    REQUIRE(reply.size() == 2);
    CHECK(reply[0].empty());
    CHECK(json::parse(reply[1])["status"] == "accepted");
  }

  TEST_CASE("malformed JSON is rejected with a null id") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    auto a = ask(dealer, "{not json");
    CHECK(a["status"] == "rejected");
    CHECK(a["id"].is_null());
    CHECK(a["reason"].get<std::string>().starts_with("event: not valid JSON"));
    still_serving(dealer, "m1");
  }

  TEST_CASE("an event over the 64 KiB limit is rejected") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    auto big = saga::event_to_json(placed("big"));
    big["data"]["padding"] = std::string(1024 * 1024, 'x');
    auto a = ask(dealer, big.dump());
    CHECK(a["status"] == "rejected");
    const auto reason = a["reason"].get<std::string>();
    CHECK(reason.starts_with("event: "));
    CHECK(reason.find("exceeds the limit of 65536 bytes") != std::string::npos);
    still_serving(dealer, "b1");
  }

  TEST_CASE("a message of three frames is rejected") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    const auto body = saga::encode_event(placed("f1"));
    auto a = ask(dealer, std::vector<std::string>{body, body, body});
    CHECK(a["status"] == "rejected");
    CHECK(a["reason"] == "frames: expected [optional empty delimiter] [event JSON], got 3 frames");
    still_serving(dealer, "f2");
  }

  TEST_CASE("with the decoding helper every request of pipelined bursts gets its own answer in order") {
    // The served thread asks for pending() as soon as read_batch() returns, so it races the
    // helper for every batch: each request must still be decoded once, into its own place.
    saga::zmq::ingress_options o;
    o.decode_helper = true;
    o.authorize = [](std::string_view, std::string_view, const saga::event& e) -> std::optional<std::string> {
      if (e.id.find("refused") != std::string::npos) return "grants: not this one";
      return std::nullopt;
    };
    served s(o);
    auto a = open(s.ctx, s.ingress.endpoint());
    auto b = open(s.ctx, s.ingress.endpoint());
    const auto body = saga::encode_event(placed("x"));
    // Request i of a connection: which answer it must get.
    enum class kind { accepted, refused, malformed, frames };
    const auto kind_of = [](int i) {
      return i % 7 == 3    ? kind::malformed
             : i % 11 == 5 ? kind::frames
             : i % 13 == 8 ? kind::refused
                           : kind::accepted;
    };
    const auto order_of = [](const std::string& who, int round, int i) {
      return who + "-" + std::to_string(round) + "-" + std::to_string(i);
    };
    const auto send = [&](zmq::socket_t& to, const std::string& who, int round, int i) {
      switch (kind_of(i)) {
        case kind::accepted:
          return send_frames(to, {saga::encode_event(placed(order_of(who, round, i)))});
        case kind::refused: {
          auto e = placed(order_of(who, round, i));
          e.id = "refused-" + e.id;
          return send_frames(to, {saga::encode_event(e)});
        }
        case kind::malformed:
          return send_frames(to, {"{\"id\": " + std::to_string(i)});
        case kind::frames:
          return send_frames(to, {body, body});
      }
    };
    const auto check = [&](zmq::socket_t& from, const std::string& who, int round, int i) {
      auto reply = recv_all(from);
      REQUIRE(reply.size() == 1);
      const auto ack = json::parse(reply[0]);
      const std::string id = "placed-" + order_of(who, round, i);
      switch (kind_of(i)) {
        case kind::accepted:
          CHECK(ack["status"] == "accepted");
          CHECK(ack["id"] == id);
          break;
        case kind::refused:
          CHECK(ack["status"] == "rejected");
          CHECK(ack["id"] == "refused-" + id);
          CHECK(ack["reason"] == "grants: not this one");
          break;
        case kind::malformed:
          CHECK(ack["status"] == "rejected");
          CHECK(ack["reason"].get<std::string>().starts_with("event: not valid JSON"));
          break;
        case kind::frames:
          CHECK(ack["status"] == "rejected");
          CHECK(ack["reason"] == "frames: expected [optional empty delimiter] [event JSON], got 2 frames");
          break;
      }
    };
    constexpr int burst = 300;
    std::uint64_t refused = 0;
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < burst; ++i) {
        send(a, "a", round, i);
        send(b, "b", round, i);
        if (kind_of(i) == kind::refused) refused += 2;
      }
      for (int i = 0; i < burst; ++i) {
        check(a, "a", round, i);
        check(b, "b", round, i);
      }
    }
    CHECK(s.ingress.refused_by_grants() == refused);
  }

  TEST_CASE("an event without id is rejected") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    auto j = saga::event_to_json(placed("n1"));
    j.erase("id");
    auto a = ask(dealer, j.dump());
    CHECK(a["status"] == "rejected");
    CHECK(a["id"].is_null());
    CHECK(a["reason"].get<std::string>().find("attribute 'id': required") != std::string::npos);
    still_serving(dealer, "n2");
  }

  TEST_CASE("an event of a type no definition consumes is rejected") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    auto e = placed("t1");
    e.type = "x";
    auto a = ask(dealer, saga::encode_event(e));
    CHECK(a["status"] == "rejected");
    CHECK(a["id"] == "placed-t1");
    CHECK(a["reason"] == "attribute 'type': no definition consumes 'x'");
    still_serving(dealer, "t2");
  }

  TEST_CASE("a message over ZMQ_MAXMSGSIZE drops its connection and others are still served") {
    served s;
    auto big_sender = open(s.ctx, s.ingress.endpoint());
    big_sender.set(zmq::sockopt::rcvtimeo, 500);
    send_frames(big_sender, {std::string(5 * 1024 * 1024, 'x')});
    CHECK(recv_all(big_sender).empty());  // no ack: the connection was dropped

    auto other = open(s.ctx, s.ingress.endpoint());
    still_serving(other, "big-1");
  }

  TEST_CASE("a REQ socket gets its ack") {
    served s;
    auto req = open(s.ctx, s.ingress.endpoint(), zmq::socket_type::req);
    for (int i = 0; i < 3; ++i) {
      const std::string order = "r" + std::to_string(i);
      send_frames(req, {saga::encode_event(placed(order))});
      auto reply = recv_all(req);  // REQ strips the delimiter
      REQUIRE(reply.size() == 1);
      auto a = json::parse(reply[0]);
      CHECK(a["status"] == "accepted");
      CHECK(a["id"] == "placed-" + order);
    }
  }

  TEST_CASE("acks to one connection come in request order and none is lost") {
    served s;
    auto dealer = open(s.ctx, s.ingress.endpoint());
    const auto events = orders(2000, "p");
    for (const auto& e : events) send_frames(dealer, {"", saga::encode_event(e)});
    for (std::size_t i = 0; i < events.size(); ++i) {
      auto reply = recv_all(dealer);
      REQUIRE(reply.size() == 2);
      auto a = json::parse(reply[1]);
      REQUIRE(a["id"] == events[i].id);
      CHECK(a["status"] == "accepted");
    }
  }

  TEST_CASE("binding an endpoint in use throws naming it") {
    served s;
    const std::string ep = s.ingress.endpoint();
    try {
      saga::zmq::ingress_server second(s.ctx, ep);
      FAIL("bound twice");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()).find(ep) != std::string::npos);
    }
  }

  TEST_CASE("client send returns accepted and then duplicate") {
    served s;
    saga::zmq::client c(s.ctx, s.ingress.endpoint());
    auto first = c.send(placed("c1"));
    CHECK(first.status == saga::ack_status::accepted);
    CHECK(first.id == "placed-c1");
    CHECK(first.saga_state == "placed");
    auto second = c.send(placed("c1"));
    CHECK(second.status == saga::ack_status::duplicate);
    CHECK(second.ok());
  }

  TEST_CASE("client send_all returns the acks in input order") {
    served s;
    saga::zmq::client c(s.ctx, s.ingress.endpoint());
    const auto events = orders(500, "s");
    auto acks = c.send_all(events);
    REQUIRE(acks.size() == 500);
    for (std::size_t i = 0; i < acks.size(); ++i) {
      CHECK(acks[i].id == events[i].id);
      CHECK(acks[i].status == saga::ack_status::accepted);
    }
  }

  TEST_CASE("client send_all with a small window") {
    served s;
    saga::zmq::client_options o;
    o.window = 7;
    saga::zmq::client c(s.ctx, s.ingress.endpoint(), o);
    auto events = orders(100, "w");
    events.push_back(events[3]);  // the same event twice in one call
    auto acks = c.send_all(events);
    REQUIRE(acks.size() == events.size());
    for (std::size_t i = 0; i < acks.size(); ++i) CHECK(acks[i].id == events[i].id);
    CHECK(acks[3].status == saga::ack_status::accepted);
    CHECK(acks.back().status == saga::ack_status::duplicate);
  }

  TEST_CASE("client resends after a timeout and gets the ack to the resend") {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::rcvtimeo, 5000);
    router.bind(any_port);
    const std::string ep = router.get(zmq::sockopt::last_endpoint);

    std::vector<std::string> seen;
    std::thread peer([&] {
      // Ignores the first copy, answers the second.
      for (int n = 0; n < 2; ++n) {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(router, std::back_inserter(frames))) return;
        if (frames.size() < 2) return;
        auto e = json::parse(frames.back().to_string_view());
        seen.push_back(e["id"].get<std::string>());
        if (n == 0) continue;
        saga::ack a;
        a.id = e["id"].get<std::string>();
        a.source = e["source"].get<std::string>();
        a.status = saga::ack_status::accepted;
        a.outcome = saga::ack_outcome::transitioned;
        const std::string body = saga::to_json(a).dump();
        for (std::size_t i = 0; i + 1 < frames.size(); ++i) router.send(frames[i], zmq::send_flags::sndmore);
        router.send(zmq::buffer(body));
      }
    });

    saga::zmq::client_options o;
    o.timeout = 100ms;
    o.backoff = 10ms;
    o.max_tries = 5;
    saga::zmq::client c(ctx, ep, o);
    saga::ack a;
    CHECK_NOTHROW(a = c.send(placed("retry")));
    peer.join();
    CHECK(a.status == saga::ack_status::accepted);
    CHECK(a.id == "placed-retry");
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == "placed-retry");
    CHECK(seen[1] == "placed-retry");
  }

  TEST_CASE("client gives up after max_tries with client_error") {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router);  // never answers
    router.set(zmq::sockopt::linger, 0);
    router.bind(any_port);
    const std::string ep = router.get(zmq::sockopt::last_endpoint);

    saga::zmq::client_options o;
    o.timeout = 100ms;
    o.backoff = 10ms;
    o.max_backoff = 40ms;
    o.max_tries = 3;
    saga::zmq::client c(ctx, ep, o);
    std::string message;
    try {
      c.send(placed("lost"));
      FAIL("no client_error");
    } catch (const saga::zmq::client_error& e) {
      message = e.what();
    }
    CHECK(message == "no ack for event placed-lost after 3 tries to " + ep);
  }
}

namespace {

// Acks for a batch without an engine: the id is the request's body (the test
// sends bodies that are not JSON), with a 1 KiB reason so that a few acks fill
// the small socket buffers of these tests.
std::vector<saga::ack> echo_acks(std::span<const saga::inbound> inputs) {
  std::vector<saga::ack> out;
  for (const auto& in : inputs) {
    saga::ack a;
    if (const auto* bad = std::get_if<saga::invalid_input>(&in)) a.id = bad->raw;
    a.reason = std::string(1024, 'x');
    out.push_back(std::move(a));
  }
  return out;
}

zmq::socket_t dealer(zmq::context_t& ctx, const std::string& endpoint,
                     const saga::zmq::curve_client& curve = {}) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  saga::zmq::apply(s, curve);
  s.set(zmq::sockopt::sndhwm, 0);  // the flood is all queued toward the server
  s.set(zmq::sockopt::rcvhwm, 1);  // and the acks it does not read do not pile up here
  s.set(zmq::sockopt::rcvbuf, 4096);
  s.connect(endpoint);
  return s;
}

// Sends `n` requests that are not JSON (each an invalid_input, acked as rejected), ids "n<100000+i>".
void flood(zmq::socket_t& s, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string body = "n" + std::to_string(100000 + i);
    s.send(zmq::buffer(body));
  }
}

// One pass of a server loop: waits up to 10 ms for requests, takes a batch and acks it, sends
// queued acks. Counts the requests taken and the most acks ever queued.
struct flood_serving {
  saga::zmq::ingress_server& server;
  std::size_t taken = 0, max_queued = 0;
  void once() {
    zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 10ms);
    if (const auto n = server.read_batch(); n > 0) {
      taken += n;
      server.ack(echo_acks(server.pending()));
    }
    server.flush();
    max_queued = std::max(max_queued, server.queued_acks());
  }
  // Serves until `total` requests were taken or dropped (or 30 s passed); true when they were.
  bool until(std::size_t total) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (taken + server.dropped_requests() < total && std::chrono::steady_clock::now() < deadline) once();
    return taken + server.dropped_requests() == total;
  }
};

}  // namespace

TEST_SUITE("ingress") {
  TEST_CASE("withheld acks go out only when delivered and in order and a batch in hand grows to batch_max") {
    zmq::context_t ctx;
    saga::zmq::ingress_options io;
    io.batch_max = 8;
    saga::zmq::ingress_server server(ctx, any_port, io);
    auto peer = dealer(ctx, server.endpoint());
    // Reads until the batch in hand holds `n` (requests arrive over time: several reads append).
    const auto read_until = [&](std::size_t n) {
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (server.pending().size() < n && std::chrono::steady_clock::now() < deadline) {
        zmq::pollitem_t item{server.socket().handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 10ms);
        server.read_batch();
      }
      return server.pending().size();
    };
    const auto acked_ids = [&](std::size_t n) {
      std::vector<std::string> ids;
      peer.set(zmq::sockopt::rcvtimeo, 5000);
      for (std::size_t i = 0; i < n; ++i) {
        zmq::message_t m;
        if (!peer.recv(m)) break;
        ids.push_back(json::parse(m.to_string()).at("id").get<std::string>());
      }
      return ids;
    };
    const auto nothing_arrives = [&] {
      zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 300ms);
      return (item.revents & ZMQ_POLLIN) == 0;
    };

    flood(peer, 5);  // n100000 … n100004
    REQUIRE(read_until(5) == 5);
    server.withhold(echo_acks(server.pending()));
    CHECK(server.pending().empty());
    CHECK(server.withheld() == 5);

    flood(peer, 12);  // n100005 … n100016 (ids repeat the flood's numbering: not checked)
    CHECK(read_until(8) == 8);
    CHECK(server.read_batch() == 0);  // full: nothing more is taken
    CHECK(server.pending().size() == 8);
    CHECK(nothing_arrives());  // withheld: not sent

    server.deliver(2);
    CHECK(acked_ids(2) == std::vector<std::string>{"n100000", "n100001"});
    CHECK(nothing_arrives());
    server.withhold(echo_acks(server.pending()));
    CHECK(server.withheld() == 3 + 8);
    server.ack(echo_acks(server.pending()));  // an empty batch: acks every withheld one before it
    CHECK(server.withheld() == 0);
    const auto rest = acked_ids(11);
    REQUIRE(rest.size() == 11);
    CHECK(rest.front() == "n100002");
    CHECK(rest[2] == "n100004");
    CHECK(rest[3] == "n100000");  // the second flood numbers from 100000 again
    CHECK(read_until(4) == 4);
  }

  TEST_CASE("a peer that never reads its acks is held to its credit and another peer is still served") {
    zmq::context_t ctx;
    saga::zmq::ingress_options io;
    io.peer_credit = 100;
    io.send_hwm = 10;
    io.send_buffer_bytes = 4096;
    io.batch_max = 64;
    int warnings = 0;
    io.warn = [&](std::string_view) { ++warnings; };
    saga::zmq::ingress_server server(ctx, any_port, io);

    auto flooder = dealer(ctx, server.endpoint());
    constexpr int requests = 3000;
    flood(flooder, requests);

    // Serve until every request of the flood was taken or dropped.
    flood_serving serving{server};
    const auto serve_once = [&] { serving.once(); };
    REQUIRE(serving.until(requests));
    CHECK(server.dropped_requests() > 0);
    CHECK(serving.max_queued <= io.peer_credit);
    CHECK(serving.max_queued > 0);
    CHECK(warnings >= 1);
    const auto deadline = std::chrono::steady_clock::now() + 30s;

    // A peer that reads is served while the flooder is over its credit.
    zmq::socket_t good(ctx, zmq::socket_type::dealer);
    good.set(zmq::sockopt::linger, 0);
    good.connect(server.endpoint());
    good.send(zmq::const_buffer(), zmq::send_flags::sndmore);
    good.send(zmq::str_buffer("good-1"));
    std::optional<json> good_ack;
    while (!good_ack && std::chrono::steady_clock::now() < deadline) {
      serve_once();
      zmq::pollitem_t item{good.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 0ms) > 0) good_ack = json::parse(saga::test::recv_all(good).back());
    }
    REQUIRE(good_ack);
    CHECK(good_ack->at("id") == "good-1");
    CHECK(server.queued_acks() <= io.peer_credit);

    // Once the flooder reads, its queued acks reach it, in request order.
    std::vector<int> seen;
    while (server.queued_acks() > 0 && std::chrono::steady_clock::now() < deadline) {
      serve_once();
      while (true) {
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(flooder, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
        seen.push_back(
            std::stoi(json::parse(frames.back().to_string()).at("id").get<std::string>().substr(1)));
      }
    }
    CHECK(server.queued_acks() == 0);
    REQUIRE(seen.size() >= 2);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
  }

  TEST_CASE(
      "with CURVE the credit is per key: two connections of one key share it and another key is served") {
    zmq::context_t ctx;
    const auto server_keys = saga::zmq::generate_curve_key_pair();
    const auto flood_key = saga::zmq::generate_curve_key_pair();
    const auto other_key = saga::zmq::generate_curve_key_pair();
    saga::zmq::zap_handler zap(
        ctx,
        saga::zmq::authorized_keys::parse(
            flood_key.public_key + " flooder sources=*\n" + other_key.public_key + " other sources=*\n",
            "keys"),
        {});
    saga::zmq::ingress_options io;
    io.peer_credit = 100;
    io.send_hwm = 10;
    io.send_buffer_bytes = 4096;
    io.batch_max = 64;
    io.curve_secret_key = server_keys.secret_key;
    std::vector<std::string> warnings;
    io.warn = [&](std::string_view w) { warnings.emplace_back(w); };
    saga::zmq::ingress_server server(ctx, any_port, io);

    // Per connection, each would hold up to 100 acks: 200 together.
    auto first = dealer(ctx, server.endpoint(), {server_keys.public_key, flood_key});
    auto second = dealer(ctx, server.endpoint(), {server_keys.public_key, flood_key});
    constexpr int requests = 1500;
    flood(first, requests);
    flood(second, requests);
    flood_serving serving{server};
    REQUIRE(serving.until(2 * requests));
    CHECK(server.dropped_requests() > 0);
    CHECK(serving.max_queued > io.peer_credit / 2);
    CHECK(serving.max_queued <= io.peer_credit);
    REQUIRE_FALSE(warnings.empty());
    CHECK(warnings.front().find("(key 'flooder')") != std::string::npos);
    CHECK(warnings.front().find("per key") != std::string::npos);

    // Another key is served while the flooder's key is over its credit.
    auto other = dealer(ctx, server.endpoint(), {server_keys.public_key, other_key});
    other.set(zmq::sockopt::rcvhwm, 1000);
    other.send(zmq::str_buffer("other-1"));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::optional<json> ack;
    while (!ack && std::chrono::steady_clock::now() < deadline) {
      serving.once();
      zmq::pollitem_t item{other.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 0ms) > 0) ack = json::parse(saga::test::recv_all(other).back());
    }
    REQUIRE(ack);
    CHECK(ack->at("id") == "other-1");
    CHECK(server.queued_acks() <= io.peer_credit);
  }

  TEST_CASE(
      "with CURVE each event is checked against its key's grants and an event outside them is rejected") {
    const auto server_keys = saga::zmq::generate_curve_key_pair();
    const auto orders_key = saga::zmq::generate_curve_key_pair();
    const auto payments_key = saga::zmq::generate_curve_key_pair();
    auto keys =
        saga::zmq::authorized_keys::parse(orders_key.public_key + " orders sources=urn:test types=order.*\n" +
                                              payments_key.public_key + " payments sources=urn:payments\n",
                                          "keys");
    saga::zmq::ingress_options o;
    o.curve_secret_key = server_keys.secret_key;
    auto grants = std::make_shared<saga::zmq::authorized_keys>(keys);
    o.authorize = [grants](std::string_view user, std::string_view public_key,
                           const saga::event& e) -> std::optional<std::string> {
      // The ZAP handler hands over the public key with the name: both must match a listed key.
      const auto* g = grants->by_key(public_key);
      if (g == nullptr || g->name != user) return "no grants for key '" + std::string(user) + "'";
      return saga::zmq::refusal(*g, e.source, e.type);
    };
    served s(std::move(o), std::move(keys));

    saga::zmq::client_options as_orders;
    as_orders.curve = {server_keys.public_key, orders_key};
    saga::zmq::client shop(s.ctx, s.ingress.endpoint(), as_orders);
    const auto event = placed("g1");
    REQUIRE(event.source == "urn:test");
    CHECK(shop.send(event).status == saga::ack_status::accepted);

    saga::zmq::client_options as_payments;
    as_payments.curve = {server_keys.public_key, payments_key};
    saga::zmq::client impostor(s.ctx, s.ingress.endpoint(), as_payments);
    auto forged = placed("g2");
    const auto refused = impostor.send(forged);
    CHECK(refused.status == saga::ack_status::rejected);
    CHECK(refused.reason == "key 'payments' may not send as source 'urn:test' (sources=urn:payments)");
    forged.source = "urn:payments";
    const auto wrong_type = impostor.send(forged);
    CHECK(wrong_type.status == saga::ack_status::rejected);
    CHECK(wrong_type.reason == "key 'payments' may not send type 'order.placed' (types=(none))");
    CHECK(s.ingress.refused_by_grants() == 2);
    CHECK_FALSE(s.store.load_instance("order_lifecycle", "g2"));          // not applied
    CHECK(shop.send(placed("g3")).status == saga::ack_status::accepted);  // others go on
    // Who sent what: the key's name is in the history row and in the refused event's dead letters.
    auto& db = s.store.database();
    CHECK(db.execAndGet("SELECT sender FROM history WHERE event_id = 'placed-g1'").getString() == "orders");
    CHECK(db.execAndGet("SELECT group_concat(sender) FROM dead_letters WHERE event_id = 'placed-g2'")
              .getString() ==
          "payments,payments");  // one per (source, id): as urn:test, then as urn:payments
  }
}
