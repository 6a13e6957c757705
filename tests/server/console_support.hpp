#pragma once
// What the console's tests share (console_test.cpp, console_actions_test.cpp,
// console_browser_test.cpp): a sagad serving the console on loopback port 0, a CURVE sagad whose
// console acts with an operator's key, events sent through its ingress, pages fetched with their
// status, content type and security headers checked.

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "saga/zmq/curve.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace saga::test::console {

// A sagad with `extra` options, and the URLs of its endpoints file.
struct console_daemon {
  saga::test::started_daemon d;
  nlohmann::json urls;
  std::string url() const { return urls.value("console", std::string()); }  // the console's
};

inline console_daemon start(const saga::test::temp_dir& dir, std::vector<std::string> extra) {
  std::vector<std::string> argv = {SAGAD_PATH, "--db", dir.file("saga.db")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  console_daemon c{
      saga::test::start_daemon(argv, saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                               dir.file("sagad.out"), dir.file("sagad.err")),
      nlohmann::json()};
  if (c.d) c.urls = nlohmann::json::parse(std::ifstream(dir.file("endpoints.json")));
  return c;
}

// An order.placed for `subject` retyped "order.bogus", which nobody consumes: its dead letter.
inline saga::event unconsumed(const std::string& subject) {
  auto e = saga::test::placed(subject);
  e.id = "bogus-1";
  e.type = "order.bogus";
  return e;
}

// `curve`: the client's CURVE settings (empty: plaintext).
inline std::vector<saga::ack> send(const std::string& ingress, const std::vector<saga::event>& events,
                                   const saga::zmq::curve_client& curve = {}) {
  ::zmq::context_t ctx(1);
  saga::zmq::client_options co;
  co.timeout = std::chrono::seconds(10);
  co.curve = curve;
  saga::zmq::client c(ctx, ingress, co);
  return c.send_all(events);
}

// GET `path`; checks the answer's status, content type and security headers.
inline std::string get(httplib::Client& http, const std::string& path, int status = 200,
                       const std::string& type = "text/html; charset=utf-8") {
  CAPTURE(path);
  const auto res = http.Get(path.c_str());
  REQUIRE(res);
  CHECK(res->status == status);
  CHECK(res->get_header_value("Content-Type") == type);
  const auto csp = res->get_header_value("Content-Security-Policy");
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("style-src 'self'") != std::string::npos);
  // Scripts only from the console's own file: an injected <script> or on...= attribute never runs.
  CHECK(csp.find("script-src 'self';") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(csp.find("unsafe-eval") == std::string::npos);
  CHECK(res->get_header_value("X-Content-Type-Options") == "nosniff");
  return res->body;
}

// The text of the element with this id attribute ("<span id=\"sagas\">5</span>" -> "5").
inline std::string by_id(const std::string& html, const std::string& id) {
  const std::string open = "id=\"" + id + "\">";
  const auto at = html.find(open);
  if (at == std::string::npos) return "(no element " + id + ")";
  const auto from = at + open.size();
  return html.substr(from, html.find('<', from) - from);
}

// Three events carrying `x` (script and HTML) in every field: an order placed (its id, source,
// subject, every data field and a data key), a payment before its order on another saga
// (parked), and a type nobody consumes (a dead letter with the whole payload).
inline std::vector<saga::event> hostile_events(const std::string& x) {
  saga::event e;
  e.id = "id-" + x;
  e.source = "urn:src-" + x;
  e.type = "order.placed";
  e.subject = "o-" + x;
  e.data = {{"order_id", x},
            {"amount", 1},
            {"currency", x},
            {"customer_id", x},
            {"items", nlohmann::json::array({{{"sku", x}, {"qty", 1}}})},
            {x, x}};
  saga::event parked = e;
  parked.id = "p-" + x;
  parked.type = "payment.succeeded";
  parked.subject = "p-" + x;
  saga::event dead = e;
  dead.id = "d-" + x;
  dead.type = "bogus." + x;
  return {e, parked, dead};
}

// A CURVE sagad whose console acts as `ops`; `svc` sends the test's business events.
struct curve_console {
  temp_dir dir;
  saga::zmq::curve_key_pair server, ops, svc, stranger;
  console_daemon c;

  // `operator_key`: the key file the console acts with ("ops" is authorized, "stranger" is not).
  explicit curve_console(const std::string& operator_key = "ops") {
    for (auto [name, pair] :
         {std::pair{"sagad", &server}, {"ops", &ops}, {"svc", &svc}, {"stranger", &stranger}}) {
      *pair = saga::zmq::generate_curve_key_pair();
      saga::zmq::write_key_files(dir.file(name), *pair);
    }
    std::ofstream(dir.file("authorized_keys")) << "svc.key svc sources=urn:test types=*\n"
                                                  "ops.key ops sources=* types=* roles=operator\n";
    c = start(dir, {"--curve-secret", dir.file("sagad.key_secret"), "--authorized-keys",
                    dir.file("authorized_keys"), "--console", "127.0.0.1:0", "--console-operator-key",
                    dir.file(operator_key + ".key_secret")});
  }
  std::vector<saga::ack> send_as_service(const std::vector<saga::event>& events) const {
    return send(c.d.ep.ingress, events, {server.public_key, svc});
  }
  std::string url() const { return c.url(); }
};

}  // namespace saga::test::console
