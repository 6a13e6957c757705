// sagad --console (issue 19, the read-only part): a real sagad on loopback port 0, filled through
// its ingress with real events, its console read over real HTTP (cpp-httplib's client). Every page
// answers with its status, content type and the security headers; the figures equal what the
// database holds (read with SQLite directly) and what sagactl prints; event data carrying
// <script> and HTML in every field comes back escaped.

#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "console_support.hpp"
#include "saga/zmq/client.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using namespace saga::test::console;

std::int64_t count_rows(SQLite::Database& db, const std::string& sql) {
  SQLite::Statement q(db, sql);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The rows of `sagactl list --json` / GET /api/list without their ages (they move with the clock).
json without_ages(json rows) {
  for (auto& r : rows) {
    r.erase("age");
    r.erase("in_state");
  }
  return rows;
}

}  // namespace

TEST_SUITE("console") {
  TEST_CASE(
      "every console page answers with its content type and security headers and the figures of the "
      "database") {
    saga::test::temp_dir dir;
    auto c = start(dir, {"--console", "127.0.0.1:0"});
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    REQUIRE(c.urls.contains("console"));
    CHECK_FALSE(c.urls.contains("metrics"));
    const std::string url = c.urls.at("console");
    REQUIRE(url.starts_with("http://127.0.0.1:"));

    // 5 orders placed, 3 of them paid; a payment for an order never placed (parked); a type
    // nobody consumes (a dead letter).
    std::vector<saga::event> events;
    for (int i = 0; i < 5; ++i) events.push_back(saga::test::placed("o-" + std::to_string(i)));
    for (int i = 0; i < 3; ++i) events.push_back(saga::test::paid("o-" + std::to_string(i)));
    events.push_back(saga::test::paid("never-placed"));
    events.push_back(unconsumed("x"));
    const auto acks = send(c.d.ep.ingress, events);
    REQUIRE(acks.size() == events.size());
    CHECK(acks.back().status == saga::ack_status::rejected);

    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    const auto placed = count_rows(db, "SELECT count(*) FROM instances WHERE state = 'placed'");
    const auto paid = count_rows(db, "SELECT count(*) FROM instances WHERE state = 'paid'");
    CHECK(placed == 2);
    CHECK(paid == 3);
    httplib::Client http(url);

    const auto overview = get(http, "/");
    CHECK(by_id(overview, "sagas") == std::to_string(count_rows(db, "SELECT count(*) FROM instances")));
    CHECK(by_id(overview, "dead-letters") ==
          std::to_string(count_rows(db, "SELECT count(*) FROM dead_letters")));
    CHECK(by_id(overview, "parked") == std::to_string(count_rows(db, "SELECT count(*) FROM parked")));
    CHECK(by_id(overview, "parked") == "1");
    CHECK(by_id(overview, "overdue") == "0");  // the payment timeouts are 15 min away
    CHECK(by_id(overview, "unpublished") ==
          std::to_string(count_rows(db, "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL")));
    // Each count of the table by state links to the list behind it.
    CHECK(overview.find("<a href=\"/sagas?type=order_lifecycle&amp;state=paid\">3</a>") != std::string::npos);
    CHECK(overview.find("<a href=\"/sagas?type=order_lifecycle&amp;state=placed\">2</a>") !=
          std::string::npos);

    // The list behind "paid", paged two at a time.
    const auto page1 = get(http, "/sagas?type=order_lifecycle&state=paid&limit=2");
    CHECK(by_id(page1, "shown") == "2");
    const std::regex next_link(R"re(<a href="(/sagas\?[^"]*after-id=[^"]*)">next page</a>)re");
    std::smatch m;
    REQUIRE(std::regex_search(page1, m, next_link));
    std::string next = m[1];
    for (auto at = next.find("&amp;"); at != std::string::npos; at = next.find("&amp;"))
      next.replace(at, 5, "&");
    const auto page2 = get(http, next);
    CHECK(by_id(page2, "shown") == "1");
    CHECK(page2.find("next page") == std::string::npos);
    CHECK(page1.find("o-0") != std::string::npos);
    CHECK(page2.find("o-2") != std::string::npos);
    get(http, "/sagas?since=yesterday", 400);
    // Newest first, paged the same way: o-4, then o-3 on the next page.
    const auto newest = get(http, "/sagas?type=order_lifecycle&state=placed&newest-first=1&limit=1");
    CHECK(newest.find("o-4") != std::string::npos);
    REQUIRE(std::regex_search(newest, m, next_link));
    next = m[1];
    for (auto at = next.find("&amp;"); at != std::string::npos; at = next.find("&amp;"))
      next.replace(at, 5, "&");
    CHECK(next.find("newest-first=1") != std::string::npos);
    CHECK(get(http, next).find("o-3") != std::string::npos);
    const auto api_newest =
        json::parse(get(http, "/api/list?type=order_lifecycle&newest-first=1", 200, "application/json"));
    REQUIRE(api_newest.size() == 5);
    CHECK(api_newest[0].at("id") == "o-4");
    CHECK(api_newest[4].at("id") == "o-0");
    get(http, "/sagas?newest-first=yes", 400);

    // The parked count links to the parked events of every saga.
    CHECK(overview.find("<a href=\"/parked\"><span id=\"parked\">1</span></a>") != std::string::npos);
    const auto parked_page = get(http, "/parked");
    CHECK(by_id(parked_page, "shown") == "1");
    CHECK(parked_page.find("order_lifecycle / never-placed") != std::string::npos);
    const auto parked_api = json::parse(get(http, "/api/parked", 200, "application/json"));
    REQUIRE(parked_api.size() == 1);
    CHECK(parked_api[0].at("saga_id") == "never-placed");
    CHECK(parked_api[0].at("type") == "payment.succeeded");

    const auto saga_page = get(http, "/saga?type=order_lifecycle&id=o-1");
    CHECK(by_id(saga_page, "state") == "paid");
    CHECK(saga_page.find("<svg") != std::string::npos);  // the graph, inline
    // ... with this saga's path: its two moves numbered and its current state filled.
    CHECK(saga_page.find(">(#1)</text>") != std::string::npos);
    CHECK(saga_page.find(">(#2)</text>") != std::string::npos);
    CHECK(saga_page.find(">(#3)</text>") == std::string::npos);
    CHECK(saga_page.find("fill=\"#ffd966\"") != std::string::npos);
    CHECK(saga_page.find("payment.requested") != std::string::npos);                      // a follow-on event
    CHECK(saga_page.find("&quot;order_id&quot;: &quot;o-1&quot;") != std::string::npos);  // its data
    get(http, "/saga?id=nobody", 404);

    CHECK(get(http, "/definitions").find("<svg") != std::string::npos);
    CHECK(by_id(get(http, "/dead-letters"), "shown") == "1");
    get(http, "/timers");
    get(http, "/timers?overdue=1");
    get(http, "/outbox?pending=1");
    get(http, "/console.css", 200, "text/css; charset=utf-8");
    get(http, "/no-such-page", 404, "");

    // The JSON endpoints print what sagactl --json prints.
    const auto sagactl_list =
        saga::test::run_to_end(dir, {SAGACTL_PATH, "--db", dir.file("saga.db"), "list", "--json"});
    REQUIRE(sagactl_list.status.code() == 0);
    CHECK(without_ages(json::parse(get(http, "/api/list", 200, "application/json"))) ==
          without_ages(json::parse(sagactl_list.out)));
    const auto sagactl_defs =
        saga::test::run_to_end(dir, {SAGACTL_PATH, "--db", dir.file("saga.db"), "definitions", "--json"});
    REQUIRE(sagactl_defs.status.code() == 0);
    CHECK(json::parse(get(http, "/api/definitions", 200, "application/json")) ==
          json::parse(sagactl_defs.out));
    const auto sagactl_dead =
        saga::test::run_to_end(dir, {SAGACTL_PATH, "--db", dir.file("saga.db"), "dead-letters", "--json"});
    REQUIRE(sagactl_dead.status.code() == 0);
    CHECK(json::parse(get(http, "/api/dead-letters", 200, "application/json")) ==
          json::parse(sagactl_dead.out));
    const auto stats = json::parse(get(http, "/api/stats", 200, "application/json"));
    CHECK(stats.at("instances").at("order_lifecycle").at("paid") == paid);
    const auto show = json::parse(get(http, "/api/show?id=o-1", 200, "application/json"));
    CHECK(show.at("state") == "paid");
    get(http, "/api/show?id=nobody", 404, "application/json");
  }

  TEST_CASE("console pages show event data carrying script and HTML in every field escaped") {
    saga::test::temp_dir dir;
    auto c = start(dir, {"--console", "127.0.0.1:0"});
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    const std::string x = "<script>alert(1)</script><img src=x onerror=alert(2)><b title=\"q\" a='r'>&amp;";
    const auto acks = send(c.d.ep.ingress, hostile_events(x));
    REQUIRE(acks.size() == 3);
    CHECK(acks[0].status == saga::ack_status::accepted);
    CHECK(acks[2].status == saga::ack_status::rejected);

    httplib::Client http(c.urls.at("console").get<std::string>());
    const auto list = get(http, "/sagas");
    const std::regex saga_link(R"re(<a href="(/saga\?[^"]*)">)re");
    std::smatch m;
    REQUIRE(std::regex_search(list, m, saga_link));
    std::string saga_path = m[1];
    for (auto at = saga_path.find("&amp;"); at != std::string::npos; at = saga_path.find("&amp;"))
      saga_path.replace(at, 5, "&");
    for (const std::string& path :
         {std::string("/"), std::string("/sagas"), saga_path, std::string("/definitions"),
          std::string("/dead-letters"), std::string("/timers"), std::string("/outbox")}) {
      CAPTURE(path);
      const auto html = lower(get(http, path));
      CHECK(html.find("<script") == std::string::npos);
      CHECK(html.find("<img") == std::string::npos);
      CHECK(html.find("<b title") == std::string::npos);
    }
    // It is there, as text: the saga page shows the key, the data and the history's source.
    const auto saga_page = get(http, saga_path);
    CHECK(saga_page.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(saga_page.find("urn:src-&lt;script&gt;") != std::string::npos);
    CHECK(saga_page.find("&amp;amp;") != std::string::npos);  // "&amp;" in the data, escaped once more
    const auto dead_page = get(http, "/dead-letters");
    CHECK(dead_page.find("bogus.&lt;script&gt;") != std::string::npos);
  }

  TEST_CASE("the console and the metrics on one address are served by one server") {
    saga::test::temp_dir dir;
    auto c = start(dir, {"--console", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    REQUIRE(c.urls.contains("console"));
    CHECK(c.urls.at("console") == c.urls.at("metrics"));
    httplib::Client http(c.urls.at("console").get<std::string>());
    get(http, "/");
    get(http, "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8");
  }

  TEST_CASE("a console on an address that is not loopback is refused without --insecure") {
    saga::test::temp_dir dir;
    const auto r = saga::test::run_to_end(
        dir, {SAGAD_PATH, "--db", dir.file("saga.db"), "--console", "0.0.0.0:0", "--ingress",
              "tcp://127.0.0.1:*", "--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*"});
    CHECK_FALSE(r.status.code() == 0);
    CHECK(r.err.find("--console: 0.0.0.0 is not loopback") != std::string::npos);
  }
}
