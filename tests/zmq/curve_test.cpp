// CURVE keys and the ZAP handler (saga/zmq/curve.hpp, saga/zmq/authorizer.hpp): key files as
// written and refused, the authorized-keys file and its grants, and real CURVE handshakes over
// loopback TCP (the server binds port 0). Handshake failures are observed with a socket monitor
// on the server, so no test waits out a silence to conclude that nothing arrived.

#include <sys/stat.h>
#include <zmq.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <zmq.hpp>

#include "saga/zmq/authorizer.hpp"
#include "saga/zmq/curve.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using saga::zmq::authorized_keys;
using saga::zmq::curve_key_pair;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

// Watches a server socket's handshake events (zmq_socket_monitor over inproc).
class handshake_monitor {
 public:
  handshake_monitor(::zmq::context_t& ctx, ::zmq::socket_t& server, const std::string& name)
      : pair_(ctx, ::zmq::socket_type::pair) {
    const std::string ep = "inproc://monitor-" + name;
    REQUIRE(zmq_socket_monitor(server.handle(), ep.c_str(),
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0);
    pair_.connect(ep);
  }
  // The next handshake event (succeeded or one of the failures), or 0 after 10 s.
  int next() {
    pair_.set(::zmq::sockopt::rcvtimeo, 10'000);
    ::zmq::message_t event, address;
    if (!pair_.recv(event)) return 0;
    (void)pair_.recv(address);
    std::uint16_t id = 0;
    std::memcpy(&id, event.data(), sizeof id);
    return id;
  }

 private:
  ::zmq::socket_t pair_;
};

struct curve_router {
  ::zmq::socket_t socket;
  std::string endpoint;
  curve_router(::zmq::context_t& ctx, const curve_key_pair& server, std::string_view domain)
      : socket(ctx, ::zmq::socket_type::router) {
    socket.set(::zmq::sockopt::linger, 0);
    saga::zmq::apply(socket, saga::zmq::curve_server{server.secret_key, std::string(domain)});
    socket.bind("tcp://127.0.0.1:*");
    endpoint = socket.get(::zmq::sockopt::last_endpoint);
  }
};

::zmq::socket_t dealer_to(::zmq::context_t& ctx, const std::string& endpoint,
                          const saga::zmq::curve_client& c) {
  ::zmq::socket_t s(ctx, ::zmq::socket_type::dealer);
  s.set(::zmq::sockopt::linger, 0);
  saga::zmq::apply(s, c);
  s.connect(endpoint);
  return s;
}

// Receives [routing id][body] on the router, or fails after 10 s.
std::pair<std::string, std::string> receive(::zmq::socket_t& router, std::string* user_id = nullptr) {
  router.set(::zmq::sockopt::rcvtimeo, 10'000);
  ::zmq::message_t id, body;
  REQUIRE(router.recv(id));
  REQUIRE(router.recv(body));
  if (user_id != nullptr) {
    const char* u = body.gets("User-Id");
    *user_id = u == nullptr ? "" : u;
  }
  return {id.to_string(), body.to_string()};
}

}  // namespace

TEST_CASE("curve key files: secret 0600 and public 0644 and never overwritten") {
  REQUIRE(saga::zmq::curve_available());
  saga::test::temp_dir dir;
  const auto keys = saga::zmq::generate_curve_key_pair();
  CHECK(saga::zmq::valid_z85_key(keys.public_key));
  CHECK(saga::zmq::valid_z85_key(keys.secret_key));
  CHECK(keys.public_key != keys.secret_key);

  const auto files = saga::zmq::write_key_files(dir.file("payments"), keys);
  CHECK(files.public_file == dir.file("payments.key"));
  CHECK(files.secret_file == dir.file("payments.key_secret"));
  CHECK(mode_of(files.secret_file) == 0600);
  CHECK((mode_of(files.public_file) & 0022) == 0);

  const auto pub = saga::zmq::read_key_file(files.public_file, false);
  CHECK(pub.public_key == keys.public_key);
  CHECK(pub.secret_key.empty());
  const auto both = saga::zmq::read_key_file(files.secret_file, true);
  CHECK(both.public_key == keys.public_key);
  CHECK(both.secret_key == keys.secret_key);
  CHECK(saga::zmq::public_key_from(files.public_file) == keys.public_key);
  CHECK(saga::zmq::public_key_from(keys.public_key) == keys.public_key);

  SUBCASE("an existing file is never overwritten, and a refusal writes nothing") {
    const auto other = saga::zmq::generate_curve_key_pair();
    CHECK_THROWS_WITH(saga::zmq::write_key_files(dir.file("payments"), other),
                      doctest::Contains("refusing to overwrite"));
    CHECK(saga::zmq::read_key_file(files.secret_file, true).secret_key == keys.secret_key);
    write_text(dir.file("half.key"), "not mine");
    CHECK_THROWS_WITH(saga::zmq::write_key_files(dir.file("half"), other), doctest::Contains("half.key"));
    CHECK_FALSE(std::filesystem::exists(dir.file("half.key_secret")));
  }
  SUBCASE("a secret file readable by others, a public file given for a secret, garbage") {
    REQUIRE(::chmod(files.secret_file.c_str(), 0644) == 0);
    CHECK_THROWS_WITH(saga::zmq::read_key_file(files.secret_file, true), doctest::Contains("chmod 600"));
    CHECK_THROWS_WITH(saga::zmq::read_key_file(files.public_file, true), doctest::Contains("no secret-key"));
    write_text(dir.file("junk.key"), "curve\n    public-key = \"tooshort\"\n");
    CHECK_THROWS_WITH(saga::zmq::read_key_file(dir.file("junk.key"), false), doctest::Contains("40 Z85"));
    CHECK_THROWS_WITH(saga::zmq::read_key_file(dir.file("missing.key"), false),
                      doctest::Contains("missing.key"));
    CHECK_THROWS_WITH(saga::zmq::public_key_from("nonsense"), doctest::Contains("neither a key file"));
  }
}

TEST_CASE("authorized keys: grants and rollovers and errors naming the line") {
  saga::test::temp_dir dir;
  const auto pay = saga::zmq::generate_curve_key_pair();
  const auto pay2 = saga::zmq::generate_curve_key_pair();
  const auto ops = saga::zmq::generate_curve_key_pair();
  saga::zmq::write_key_files(dir.file("ops"), ops);
  const std::string file = dir.file("authorized_keys");
  write_text(file, "# payments, during a key rollover\n  #\n" + pay.public_key +
                       "  payments sources=urn:payments types=payment.*,refund.issued\n" + pay2.public_key +
                       "  payments sources=urn:payments types=payment.*,refund.issued   # the new key\n" +
                       "ops.key operators sources=* roles=operator,subscriber\n\n");
  const auto keys = authorized_keys::load(file);
  CHECK(keys.keys() == 3);
  CHECK(keys.names() == 2);
  REQUIRE(keys.by_key(pay.public_key) != nullptr);
  CHECK(keys.by_key(pay.public_key) == keys.by_key(pay2.public_key));
  REQUIRE(keys.by_key(ops.public_key) != nullptr);  // read from ops.key beside the file
  CHECK(keys.by_key(ops.public_key)->name == "operators");
  CHECK(keys.by_key(saga::zmq::generate_curve_key_pair().public_key) == nullptr);

  const auto& payments = *keys.by_name("payments");
  CHECK_FALSE(saga::zmq::refusal(payments, "urn:payments", "payment.succeeded"));
  CHECK_FALSE(saga::zmq::refusal(payments, "urn:payments", "refund.issued"));
  CHECK(*saga::zmq::refusal(payments, "urn:orders", "payment.succeeded") ==
        "key 'payments' may not send as source 'urn:orders' (sources=urn:payments)");
  CHECK(*saga::zmq::refusal(payments, "urn:payments", "order.cancelled") ==
        "key 'payments' may not send type 'order.cancelled' (types=payment.*,refund.issued)");
  CHECK(*saga::zmq::refusal(payments, "urn:payments", "payment") ==
        "key 'payments' may not send type 'payment' (types=payment.*,refund.issued)");
  CHECK(*saga::zmq::refusal(payments, "urn:payments", "saga.operator.abort") ==
        "key 'payments' lacks the operator role (needed for saga.operator.abort)");
  const auto& operators = *keys.by_name("operators");
  CHECK_FALSE(saga::zmq::refusal(operators, "urn:sagactl", "saga.operator.abort"));
  CHECK(saga::zmq::refusal(operators, "urn:sagactl", "payment.succeeded"));  // no types granted

  CHECK_THROWS_WITH(authorized_keys::parse(pay.public_key + " a\n" + pay.public_key + " b\n", "f"),
                    doctest::Contains("f:2: the key is listed twice"));
  CHECK_THROWS_WITH(
      authorized_keys::parse(pay.public_key + " a types=x\n" + pay2.public_key + " a types=y\n", "f"),
      doctest::Contains("f:2: name 'a' has another key with other grants"));
  CHECK_THROWS_WITH(authorized_keys::parse("\n" + pay.public_key + " a roles=root\n", "f"),
                    doctest::Contains("f:2: unknown role 'root'"));
  CHECK_THROWS_WITH(authorized_keys::parse(pay.public_key + " a colour=red\n", "f"),
                    doctest::Contains("f:1: unknown grant 'colour'"));
  CHECK_THROWS_WITH(authorized_keys::parse(pay.public_key + "\n", "f"), doctest::Contains("f:1: expected"));
  CHECK_THROWS_WITH(authorized_keys::parse("nokey.key a\n", dir.file("k")), doctest::Contains("nokey.key"));
}

// A key file's path can itself be 40 Z85 characters ("/tmp/…/bob.key" often is): the file is
// read, not its name taken for a key.
TEST_CASE("authorized keys: a key file whose path is 40 Z85 characters is read as a file") {
  saga::test::temp_dir dir;
  const std::string stem = "0123456789abcdefghij0123456789abcdef";  // + ".key": 40 characters
  const auto bob = saga::zmq::generate_curve_key_pair();
  saga::zmq::write_key_files(dir.file(stem), bob);
  const std::string word = stem + ".key";
  REQUIRE(saga::zmq::valid_z85_key(word));
  const auto keys = authorized_keys::parse(word + " bob sources=*\n", dir.file("authorized_keys"));
  REQUIRE(keys.by_key(bob.public_key) != nullptr);
  CHECK(keys.by_key(bob.public_key)->name == "bob");
  CHECK(keys.by_key(word) == nullptr);
  // Without such a file the same word is a key.
  CHECK(
      authorized_keys::parse(word + " bob sources=*\n", dir.file("elsewhere/authorized_keys")).by_key(word) !=
      nullptr);
}

TEST_CASE("CURVE handshakes: only listed keys get through and carry their name as User-Id") {
  ::zmq::context_t ctx(1);
  const auto server = saga::zmq::generate_curve_key_pair();
  const auto known = saga::zmq::generate_curve_key_pair();
  const auto stranger = saga::zmq::generate_curve_key_pair();
  std::vector<std::string> logged;
  std::mutex log_mutex;
  saga::zmq::zap_handler zap(
      ctx, authorized_keys::parse(known.public_key + " payments sources=urn:payments\n", "keys"),
      [&](std::string_view line) {
        std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
      });
  curve_router router(ctx, server, saga::zmq::zap_domain_ingress);
  handshake_monitor monitor(ctx, router.socket, "ingress");

  auto good = dealer_to(ctx, router.endpoint, {server.public_key, known});
  good.send(::zmq::str_buffer("hello"));
  std::string user;
  CHECK(receive(router.socket, &user).second == "hello");
  CHECK(user == "payments");
  CHECK(monitor.next() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);

  SUBCASE("an unknown key") {
    auto bad = dealer_to(ctx, router.endpoint, {server.public_key, stranger});
    bad.send(::zmq::str_buffer("forged"));
    CHECK(monitor.next() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    std::lock_guard lock(log_mutex);
    REQUIRE_FALSE(logged.empty());
    CHECK(logged.front().find("unknown key " + stranger.public_key) != std::string::npos);
  }
  SUBCASE("a plaintext client") {
    auto plain = dealer_to(ctx, router.endpoint, {});
    plain.send(::zmq::str_buffer("plain"));
    const int e = monitor.next();
    CHECK((e == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || e == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL));
  }
  SUBCASE("a client holding the wrong server key") {
    auto wrong = dealer_to(ctx, router.endpoint, {stranger.public_key, known});
    wrong.send(::zmq::str_buffer("wrong"));
    const int e = monitor.next();
    CHECK((e == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || e == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL));
  }
  SUBCASE("a key removed by replace(): its next connection fails, an established session goes on") {
    zap.replace(authorized_keys::parse(stranger.public_key + " newcomer sources=*\n", "keys"));
    auto again = dealer_to(ctx, router.endpoint, {server.public_key, known});
    again.send(::zmq::str_buffer("again"));
    CHECK(monitor.next() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    good.send(::zmq::str_buffer("still here"));
    CHECK(receive(router.socket, &user).second == "still here");
    CHECK(user == "payments");
    auto newcomer = dealer_to(ctx, router.endpoint, {server.public_key, stranger});
    newcomer.send(::zmq::str_buffer("new"));
    CHECK(receive(router.socket, &user).second == "new");
    CHECK(user == "newcomer");
  }
  // Only the messages asserted above arrived: nothing from a refused peer is waiting.
  ::zmq::message_t extra;
  CHECK_FALSE(router.socket.recv(extra, ::zmq::recv_flags::dontwait));
  CHECK(zap.totals().accepted >= 1);
}

TEST_CASE("CURVE handshakes on the events domain need the subscriber role") {
  ::zmq::context_t ctx(1);
  const auto server = saga::zmq::generate_curve_key_pair();
  const auto reader = saga::zmq::generate_curve_key_pair();
  const auto service = saga::zmq::generate_curve_key_pair();
  saga::zmq::zap_handler zap(
      ctx, authorized_keys::parse(reader.public_key + " dashboard roles=subscriber\n" + service.public_key +
                                      " payments sources=urn:payments\n",
                                  "keys"));
  curve_router router(ctx, server, saga::zmq::zap_domain_events);
  handshake_monitor monitor(ctx, router.socket, "events");

  auto denied = dealer_to(ctx, router.endpoint, {server.public_key, service});
  denied.send(::zmq::str_buffer("x"));
  CHECK(monitor.next() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);

  auto allowed = dealer_to(ctx, router.endpoint, {server.public_key, reader});
  allowed.send(::zmq::str_buffer("y"));
  std::string user;
  CHECK(receive(router.socket, &user).second == "y");
  CHECK(user == "dashboard");
  CHECK(monitor.next() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  CHECK(zap.totals().refused == 1);
}
