// sagad --console's actions and live tail (issue 19): a real sagad with CURVE, its console's forms
// posted over real HTTP. Abort, resolve and redrive reach the engine through the ingress as the
// operator's key (the history names it as the sender; a key the ingress does not know gets no
// ack); a POST without the form's token or from another site changes nothing; without
// --console-operator-key no action is offered or accepted. The live tail streams published
// outbox rows as Server-Sent Events, resumable by Last-Event-ID, and at most two at once.

#include <doctest/doctest.h>
#include <httplib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "console_support.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace {

using json = nlohmann::json;
using namespace saga::test::console;

// The href of the element with this id ("<a id=\"abort\" ... href=\"/act?...\">"), unescaped.
std::string href_of(const std::string& html, const std::string& id) {
  const std::regex link("<a id=\"" + id + "\"[^>]* href=\"([^\"]*)\"");
  std::smatch m;
  if (!std::regex_search(html, m, link)) return {};
  std::string href = m[1];
  for (auto at = href.find("&amp;"); at != std::string::npos; at = href.find("&amp;"))
    href.replace(at, 5, "&");
  return href;
}

// The hidden inputs of the form on `html`, as form parameters.
httplib::Params form_fields(const std::string& html) {
  httplib::Params p;
  const std::regex hidden(R"re(<input type="hidden" name="([^"]*)" value="([^"]*)">)re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), hidden); it != std::sregex_iterator(); ++it)
    p.emplace((*it)[1], (*it)[2]);
  return p;
}

json show(httplib::Client& http, const std::string& id) {
  return json::parse(get(http, "/api/show?type=order_lifecycle&id=" + id, 200, "application/json"));
}

// POSTs the form; returns the answer (not following redirects).
httplib::Result post(httplib::Client& http, const httplib::Params& fields,
                     const httplib::Headers& headers = {}) {
  return http.Post("/act", headers, fields);
}

}  // namespace

TEST_SUITE("console actions") {
  TEST_CASE("without --console-operator-key the console offers and accepts no action") {
    saga::test::temp_dir dir;
    auto c = start(dir, {"--console", "127.0.0.1:0"});
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    REQUIRE(send(c.d.ep.ingress, {saga::test::placed("o-1")}).at(0).ok());
    httplib::Client http(c.urls.at("console").get<std::string>());
    const auto page = get(http, "/saga?type=order_lifecycle&id=o-1");
    CHECK(by_id(page, "state") == "placed");
    CHECK(href_of(page, "abort").empty());
    get(http, "/act?do=abort&type=order_lifecycle&id=o-1", 404, "");
    const auto res = post(
        http,
        {{"do", "abort"}, {"type", "order_lifecycle"}, {"id", "o-1"}, {"reason", "r"}, {"operator", "me"}});
    REQUIRE(res);
    CHECK(res->status == 404);
    CHECK(by_id(get(http, "/saga?type=order_lifecycle&id=o-1"), "state") == "placed");
  }

  TEST_CASE(
      "with the operator's key the console aborts resolves and redrives through the ingress as that key") {
    curve_console s;
    REQUIRE_MESSAGE(s.c.d, s.c.d.error);
    INFO("sagad stderr: " << s.c.d.proc->err());
    // The start's log lines come after the endpoints file the test waited for.
    for (int i = 0; i < 200 && s.c.d.proc->err().find("console: http") == std::string::npos; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    CHECK(s.c.d.proc->err().find("actions on") != std::string::npos);
    auto refund_failed = [] {
      return saga::test::numbered_event("e", "payment.refund.failed", "o-2",
                                        {{"order_id", "o-2"}, {"reason", "card"}});
    };
    const auto acks = s.send_as_service(
        {saga::test::placed("o-1"), saga::test::placed("o-2"), saga::test::paid("o-2"),
         saga::test::numbered_event("e", "inventory.unavailable", "o-2", {{"order_id", "o-2"}}),
         // the refund is asked again twice, then the saga waits for an operator
         refund_failed(), refund_failed(), refund_failed(), unconsumed("x")});
    REQUIRE(acks.size() == 8);
    for (std::size_t i = 0; i < 7; ++i) CHECK_MESSAGE(acks[i].ok(), acks[i].reason);
    CHECK(acks[7].status == saga::ack_status::rejected);
    httplib::Client http(s.url());

    // Abort o-1: the saga page links to a confirmation form carrying the token.
    const auto saga_page = get(http, "/saga?type=order_lifecycle&id=o-1");
    const auto abort_href = href_of(saga_page, "abort");
    REQUIRE(abort_href.starts_with("/act?do=abort"));
    const auto form = get(http, abort_href);
    auto fields = form_fields(form);
    REQUIRE(fields.count("csrf") == 1);
    CHECK(fields.find("csrf")->second.size() == 32);
    CHECK(form.find("id=\"reason\"") != std::string::npos);

    SUBCASE("a POST without the form's token, with a wrong one, or from another site changes nothing") {
      auto without = fields;
      without.erase("csrf");
      without.emplace("reason", "no token");
      without.emplace("operator", "mallory");
      auto res = post(http, without);
      REQUIRE(res);
      CHECK(res->status == 403);
      auto wrong = without;
      wrong.emplace("csrf", std::string(32, '0'));
      res = post(http, wrong);
      REQUIRE(res);
      CHECK(res->status == 403);
      auto cross = fields;
      cross.emplace("reason", "from elsewhere");
      cross.emplace("operator", "mallory");
      res = post(http, cross, {{"Origin", "http://evil.example"}});
      REQUIRE(res);
      CHECK(res->status == 403);
      res = post(http, cross, {{"Sec-Fetch-Site", "cross-site"}});
      REQUIRE(res);
      CHECK(res->status == 403);
      CHECK(show(http, "o-1").at("state") == "placed");
      CHECK(show(http, "o-1").at("history").size() == 1);
    }

    SUBCASE("a missing reason is named and nothing is sent") {
      auto no_reason = fields;
      no_reason.emplace("operator", "alice");
      const auto res = post(http, no_reason);
      REQUIRE(res);
      CHECK(res->status == 400);
      CHECK(by_id(res->body, "error") == "reason: required");
      CHECK(show(http, "o-1").at("state") == "placed");
    }

    SUBCASE("confirmed, the abort is applied and recorded as the operator key's") {
      fields.emplace("reason", "customer called <b>twice</b>");
      fields.emplace("operator", "alice");
      const auto res = post(http, fields, {{"Origin", s.url()}, {"Sec-Fetch-Site", "same-origin"}});
      REQUIRE(res);
      CHECK(res->status == 303);
      const auto location = res->get_header_value("Location");
      CHECK(location.starts_with("/saga?type=order_lifecycle&id=o-1&acted=abort&outcome=transitioned"));
      const auto after = get(http, location);
      CHECK(by_id(after, "state") == "cancelled");
      CHECK(by_id(after, "outcome").starts_with("abort: transitioned"));
      const auto h = show(http, "o-1").at("history");
      REQUIRE(h.size() == 2);
      CHECK(h[1].at("event_type") == "saga.operator.abort");
      CHECK(h[1].at("sender") == "ops");
      CHECK(h[1].at("event_source") == "urn:saga:operator");
      CHECK(href_of(after, "abort").empty());  // cancelled is final: nothing more to abort

      // Resolve o-2, which waits in needs_attention, into cancelled.
      const auto o2 = get(http, "/saga?type=order_lifecycle&id=o-2");
      REQUIRE(by_id(o2, "state") == "needs_attention");
      const auto resolve_form = get(http, href_of(o2, "resolve"));
      CHECK(resolve_form.find("<option>cancelled</option>") != std::string::npos);
      CHECK(resolve_form.find("<option>done</option>") != std::string::npos);
      auto resolve = form_fields(resolve_form);
      resolve.emplace("reason", "refunded by hand");
      resolve.emplace("operator", "alice");
      resolve.emplace("to", "cancelled");
      const auto resolved = post(http, resolve);
      REQUIRE(resolved);
      CHECK(resolved->status == 303);
      CHECK(by_id(get(http, resolved->get_header_value("Location")), "state") == "cancelled");
      CHECK(show(http, "o-2").at("history").back().at("event_type") == "saga.operator.resolve");

      // Redrive the dead letter: it goes through the ingress again and is rejected again, which the
      // dead letter's count shows.
      const auto dead = get(http, "/dead-letters");
      const auto redrive_href = href_of(dead, "redrive-1");
      REQUIRE(redrive_href == "/act?do=redrive&dead-letter=1");
      auto redrive = form_fields(get(http, redrive_href));
      redrive.emplace("reason", "try again");
      redrive.emplace("operator", "alice");
      const auto redriven = post(http, redrive);
      REQUIRE(redriven);
      CHECK(redriven->status == 422);
      CHECK(by_id(redriven->body, "error").starts_with("rejected: "));
      const auto letters = json::parse(get(http, "/api/dead-letters", 200, "application/json"));
      REQUIRE(letters.size() == 1);
      CHECK(letters[0].at("count") == 2);
    }
  }

  TEST_CASE("an operator key the ingress does not know gets no ack and nothing changes") {
    curve_console s("stranger");
    REQUIRE_MESSAGE(s.c.d, s.c.d.error);
    INFO("sagad stderr: " << s.c.d.proc->err());
    REQUIRE(s.send_as_service({saga::test::placed("o-1")}).at(0).ok());
    httplib::Client http(s.url());
    http.set_read_timeout(std::chrono::seconds(20));
    auto fields = form_fields(get(http, "/act?do=abort&type=order_lifecycle&id=o-1"));
    fields.emplace("reason", "r");
    fields.emplace("operator", "eve");
    const auto res = post(http, fields);
    REQUIRE(res);
    CHECK(res->status == 503);
    CHECK(show(http, "o-1").at("state") == "placed");
  }

  TEST_CASE("the live tail streams published events from where it is asked and at most two at once") {
    saga::test::temp_dir dir;
    auto c = start(dir, {"--console", "127.0.0.1:0"});
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    // Each placed order asks for its payment: three follow-on events, sequences 1..3.
    REQUIRE(send(c.d.ep.ingress,
                 {saga::test::placed("o-1"), saga::test::placed("o-2"), saga::test::placed("o-3")})
                .size() == 3);
    httplib::Client http(c.urls.at("console").get<std::string>());
    const auto tail = get(http, "/tail");
    CHECK(tail.find("<script src=\"/console.js\" defer></script>") != std::string::npos);
    CHECK(get(http, "/console.js", 200, "text/javascript; charset=utf-8").find("textContent") !=
          std::string::npos);

    // Reads the stream until `events` events came; returns their ids and data. A stream the test
    // left a moment ago is counted until the server's next write finds it closed: a 503 is tried
    // again.
    auto read_events = [&](const std::string& path, const httplib::Headers& headers, std::size_t events) {
      std::string stream;
      std::vector<std::pair<std::string, json>> got;
      const std::regex event_re("id: ([0-9]+)\nevent: published\ndata: (.*)");
      auto receive = [&](const char* data, std::size_t n) {
        stream.append(data, n);
        for (auto end = stream.find("\n\n"); end != std::string::npos; end = stream.find("\n\n")) {
          const auto block = stream.substr(0, end);
          stream.erase(0, end + 2);
          std::smatch m;
          if (std::regex_search(block, m, event_re)) got.emplace_back(m[1], json::parse(std::string(m[2])));
        }
        return got.size() < events;
      };
      for (int tries = 0; tries < 50; ++tries) {
        int status = 0;
        http.Get(
            path.c_str(), headers,
            [&](const httplib::Response& r) {
              status = r.status;
              return status == 200;
            },
            receive);
        if (status != 503) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      return got;
    };
    // The outbox's rows are published right after their commit; the stream waits for them.
    const auto all = read_events("/api/tail?from=1", {}, 3);
    REQUIRE(all.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(all[i].first == std::to_string(i + 1));
      CHECK(all[i].second.at("sequence") == i + 1);
      CHECK(all[i].second.at("type") == "payment.requested");
      CHECK(all[i].second.at("saga_id") == "o-" + std::to_string(i + 1));
    }
    // A browser reconnecting says the last id it had: the stream goes on after it.
    const auto resumed = read_events("/api/tail", {{"Last-Event-ID", "2"}}, 1);
    REQUIRE(resumed.size() == 1);
    CHECK(resumed[0].first == "3");
    // Without either, only what is published from now on; two streams at most.
    std::atomic<bool> stop{false};
    std::atomic<int> streaming{0}, published{0};
    std::array<std::string, 2> seen;
    std::vector<std::thread> open;
    for (std::size_t i = 0; i < 2; ++i)
      open.emplace_back([&, i] {
        httplib::Client h(c.urls.at("console").get<std::string>());
        bool counted = false, got = false;
        for (int tries = 0; tries < 50 && !counted; ++tries) {
          h.Get(
              "/api/tail", [](const httplib::Response& r) { return r.status == 200; },
              [&](const char* data, std::size_t n) {
                if (!counted) ++streaming, counted = true;
                seen[i].append(data, n);
                if (!got && seen[i].find("event: published") != std::string::npos) ++published, got = true;
                return !stop.load();
              });
          if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      });
    for (int i = 0; i < 400 && streaming.load() < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    CHECK(streaming.load() == 2);
    const auto third = http.Get("/api/tail");
    REQUIRE(third);
    CHECK(third->status == 503);
    CHECK(third->get_header_value("Retry-After") == "10");
    REQUIRE(send(c.d.ep.ingress, {saga::test::placed("o-4")}).size() == 1);
    for (int i = 0; i < 400 && published.load() < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    stop = true;  // the next keep-alive comment ends each stream
    for (auto& t : open) t.join();
    for (const auto& text : seen) {
      CAPTURE(text);
      CHECK(text.find("id: 4\nevent: published") != std::string::npos);
      CHECK(text.find("id: 3\n") == std::string::npos);
    }
  }
}
