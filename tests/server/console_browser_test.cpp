// sagad --console in a real headless browser (Debian's chromium through chromedriver,
// tests/support/browser.hpp): a real sagad on loopback port 0, filled through its ingress with
// orders in several states. The browser follows the overview's count of one state to the list
// behind it (exactly the sagas the database has in that state), opens a saga and reads its
// graph: the edges drawn highlighted in the inline SVG are the transitions of its history rows,
// numbered in their order, and the filled node is its state. Screenshots of the pages go to
// SAGA_CONSOLE_SCREENSHOTS (docs/console.md shows them). Then event data carrying <script>,
// <img onerror> and HTML in every field: no script runs and no element is injected, with the
// console's Content-Security-Policy and without it (escaping alone), and the text is visible as
// text.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "console_support.hpp"
#include "saga/zmq/client.hpp"
#include "support/browser.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// A sagad with the console on a port it chooses (console_support.hpp).
saga::test::console::console_daemon start(const saga::test::temp_dir& dir) {
  return saga::test::console::start(dir, {"--console", "127.0.0.1:0"});
}

using saga::test::console::hostile_events;
using saga::test::console::send;
using saga::test::console::unconsumed;

saga::event numbered(const std::string& type, const std::string& order) {
  return saga::test::numbered_event("browser", type, order);
}

// The page as SAGA_CONSOLE_SCREENSHOTS/<name>.png (docs/console.md shows them); checks that a PNG
// was written.
void screenshot(saga::test::browser& b, const std::string& name) {
  const std::string path = std::string(SAGA_CONSOLE_SCREENSHOTS) + "/" + name + ".png";
  std::filesystem::remove(path);
  b.screenshot(path);
  const auto png = saga::test::read_text(path);
  CAPTURE(path);
  CHECK(png.starts_with("\x89PNG\r\n\x1a\n"));
  CHECK(png.size() > 10'000);
}

// The cells' rendered text of every row of the page's first table after the heading `h2`
// (all tables of the page when `h2` is empty).
const char* const table_rows_script = R"js(
  const h2 = arguments[0];
  let tables = [...document.querySelectorAll('main table')];
  if (h2 !== '') {
    const heading = [...document.querySelectorAll('main h2')].find(h => h.textContent === h2);
    if (!heading) return null;
    const next = heading.nextElementSibling;
    tables = next && next.tagName === 'TABLE' ? [next] : [];
  }
  return tables.flatMap(t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText)));
)js";

json table_rows(saga::test::browser& b, const std::string& h2) {
  return b.run(table_rows_script, {h2});
}

// The edges of the saga page's graph (Graphviz's SVG: <g class="edge"><title>from->to</title>,
// a <path> stroked in the path's colour, <text> lines: event, [guard], / action, and (#1, #2)
// for the steps that took it), and the fill of each node's shape.
const char* const graph_script = R"js(
  const svg = document.querySelector('.graph svg');
  if (!svg) return null;
  const edges = [...svg.querySelectorAll('g.edge')].map(g => {
    const [from, to] = g.querySelector('title').textContent.split('->');
    const path = g.querySelector('path');
    return {from, to, stroke: path.getAttribute('stroke'),
            width: path.getAttribute('stroke-width'),
            lines: [...g.querySelectorAll('text')].map(t => t.textContent)};
  });
  const nodes = [...svg.querySelectorAll('g.node')].map(g => {
    const shape = g.querySelector('path, polygon, ellipse');
    return {name: g.querySelector('title').textContent, fill: shape ? shape.getAttribute('fill') : null};
  });
  return {edges, nodes};
)js";

using transition = std::tuple<std::string, std::string, std::string>;  // from, event, to

// Where the step numbers of an edge's last label line ("(#1, #3)") say it was taken.
std::vector<int> step_numbers(const json& lines) {
  std::vector<int> steps;
  if (lines.empty()) return steps;
  const auto last = lines.back().get<std::string>();
  if (!last.starts_with("(#")) return steps;
  for (std::size_t at = last.find('#'); at != std::string::npos; at = last.find('#', at + 1))
    steps.push_back(std::stoi(last.substr(at + 1)));
  return steps;
}

// "a -e-> b, b -f-> c": moves as a failing check prints them.
std::string moves_text(const std::vector<transition>& moves) {
  std::string out;
  for (const auto& [from, event, to] : moves)
    out += (out.empty() ? "" : ", ") + from + " -" + event + "-> " + to;
  return out;
}

std::string keys_text(const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::set<std::string> keys_in_state(SQLite::Database& db, const std::string& state) {
  SQLite::Statement q(db, "SELECT key FROM instances WHERE definition = 'order_lifecycle' AND state = ?");
  q.bind(1, state);
  std::set<std::string> keys;
  while (q.executeStep()) keys.insert(q.getColumn(0).getString());
  return keys;
}

}  // namespace

TEST_SUITE("console in a browser") {
  TEST_CASE(
      "in a browser the overview's count of a state leads to exactly those sagas and a saga's graph "
      "highlights the path of its history") {
    saga::test::temp_dir dir;
    auto c = start(dir);
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());
    REQUIRE(c.url().starts_with("http://127.0.0.1:"));

    // Orders in several states: placed (2), paid (3), awaiting_shipment (1), done (1, the whole
    // path, then a cancellation it refuses and a delivery it ignores), cancelled (1), refunding
    // (1); a payment for an order never placed (parked) and a type nobody consumes (a dead letter).
    std::vector<saga::event> events;
    const std::vector<std::string> orders = {"placed-1",   "placed-2", "paid-1",      "paid-2",     "paid-3",
                                             "shipping-1", "done-1",   "cancelled-1", "refunding-1"};
    for (const auto& o : orders) events.push_back(saga::test::placed(o));
    for (const auto& o : {"paid-1", "paid-2", "paid-3", "shipping-1", "done-1", "refunding-1"})
      events.push_back(saga::test::paid(o));
    events.push_back(numbered("payment.failed", "cancelled-1"));
    events.push_back(numbered("inventory.reserved", "shipping-1"));
    events.push_back(numbered("order.cancel.requested", "refunding-1"));
    for (const auto& type : {"inventory.reserved", "shipment.dispatched", "delivery.started",
                             "delivery.confirmed", "order.cancel.requested", "delivery.started"})
      events.push_back(numbered(type, "done-1"));
    events.push_back(saga::test::paid("never-placed"));
    events.push_back(unconsumed("bogus"));
    const auto acks = send(c.d.ep.ingress, events);
    REQUIRE(acks.size() == events.size());
    for (std::size_t i = 0; i + 2 < acks.size(); ++i) {
      CAPTURE(events[i].type);
      CAPTURE(events[i].subject);
      CHECK(acks[i].status == saga::ack_status::accepted);
    }
    CHECK(acks.back().status == saga::ack_status::rejected);

    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    const auto paid = keys_in_state(db, "paid");
    REQUIRE(paid == std::set<std::string>{"paid-1", "paid-2", "paid-3"});

    saga::test::browser b(dir);
    INFO("chromedriver: " << b.log());

    // The overview; the count in the row of "paid", followed as a user would.
    b.go(c.url() + "/");
    screenshot(b, "overview");
    CHECK(b.text(b.get("#sagas")) == "9");
    CHECK(b.text(b.get("#dead-letters")) == "1");
    CHECK(b.text(b.get("#parked")) == "1");
    const json count_link = b.run(R"js(
      const row = [...document.querySelectorAll('main table tbody tr')]
                    .find(r => r.cells.length === 3 && r.cells[1].innerText === 'paid');
      return row ? row.cells[2].querySelector('a') : null;)js");
    REQUIRE(count_link.is_object());
    const saga::test::browser::element paid_count{count_link.begin().value().get<std::string>()};
    CHECK(b.text(paid_count) == "3");
    b.click(paid_count);
    CHECK(b.url() == c.url() + "/sagas?type=order_lifecycle&state=paid");

    // The list behind it: the sagas in that state, no other.
    screenshot(b, "list");
    CHECK(b.text(b.get("#shown")) == std::to_string(paid.size()));
    std::set<std::string> listed;
    for (const auto& row : table_rows(b, "")) {
      REQUIRE(row.size() == 8);  // type, id, state, version, age, in state, timers, parked
      CHECK(row[0] == "order_lifecycle");
      CHECK(row[2] == "paid");
      listed.insert(row[1].get<std::string>());
    }
    CHECK(keys_text(listed) == keys_text(paid));

    // The list of "done", then its one saga, by its link.
    b.go(c.url() + "/sagas?type=order_lifecycle&state=done");
    const auto done_rows = table_rows(b, "");
    REQUIRE(done_rows.size() == 1);
    CHECK(done_rows[0][1] == "done-1");
    b.click(b.get("main table a[href^='/saga?']"));
    CHECK(b.url() == c.url() + "/saga?type=order_lifecycle&id=done-1");
    screenshot(b, "saga");
    CHECK(b.text(b.get("#state")) == "done");

    // The history's transitions, in order (time, event, event id, source, from → to, outcome, …).
    const json history = table_rows(b, "History");
    REQUIRE(history.is_array());
    std::vector<transition> moves;
    int ignored = 0;
    for (const auto& row : history) {
      const auto arrow = row[4].get<std::string>();
      const auto at = arrow.find(" → ");
      REQUIRE(at != std::string::npos);
      if (row[5] != "transitioned") {
        CHECK(row[5] == "ignored");
        ++ignored;
        continue;
      }
      moves.emplace_back(arrow.substr(0, at), row[1].get<std::string>(),
                         arrow.substr(at + std::string(" → ").size()));
    }
    // placed, paid, reserved, dispatched, started, confirmed, and the refused cancellation (an
    // internal transition: done → done, drawn as a loop); the late delivery.started is ignored.
    CHECK(moves.size() == 7);
    CHECK(ignored == 1);
    REQUIRE_FALSE(moves.empty());
    CHECK(std::get<2>(moves.back()) == "done");

    // The graph: the highlighted edges are exactly those moves, each numbered with its steps.
    const json graph = b.run(graph_script);
    REQUIRE(graph.is_object());
    std::map<int, transition> highlighted;  // step number -> the edge's move
    int plain = 0;
    for (const auto& e : graph.at("edges")) {
      CAPTURE(e.dump());
      const auto steps = step_numbers(e.at("lines"));
      const bool red = e.at("stroke") == "#d62728";
      CHECK(red == !steps.empty());  // drawn in the path's colour exactly when numbered
      if (!red) {
        ++plain;
        continue;
      }
      CHECK(e.at("width") == "3");
      for (int n : steps)
        highlighted[n] = {e.at("from").get<std::string>(), e.at("lines").at(0).get<std::string>(),
                          e.at("to").get<std::string>()};
    }
    CHECK(plain > 0);  // the rest of the graph is drawn too, plainly
    std::vector<transition> drawn;
    for (const auto& [n, move] : highlighted) {
      CHECK(n == static_cast<int>(drawn.size()) + 1);
      drawn.push_back(move);
    }
    CHECK(moves_text(drawn) == moves_text(moves));
    std::set<std::string> filled;
    for (const auto& n : graph.at("nodes"))
      if (n.at("fill") == "#ffd966") filled.insert(n.at("name").get<std::string>());
    CHECK(keys_text(filled) == "done");

    b.go(c.url() + "/definitions");
    screenshot(b, "definitions");
    CHECK(b.find_all(".graph svg").size() >= 3);  // every registered definition's graph
    b.go(c.url() + "/dead-letters");
    screenshot(b, "dead-letters");
    CHECK(b.text(b.get("#shown")) == "1");
    CHECK(b.text(b.get("main h2")).find("order.bogus") != std::string::npos);
  }

  TEST_CASE(
      "in a browser event data carrying script and HTML in every field renders as text: no script runs "
      "and no element is injected") {
    saga::test::temp_dir dir;
    auto c = start(dir);
    REQUIRE_MESSAGE(c.d, c.d.error);
    INFO("sagad stderr: " << c.d.proc->err());

    const std::string script = "<script>window.__pwned=1</script>";
    const std::string x =
        script +
        "<img id=\"pwned-img\" src=x onerror=\"window.__pwned=2\">"
        "<b id=\"pwned-b\" title=\"q\" a='r'>bold</b><svg id=\"pwned-svg\" onload=\"window.__pwned=3\">"
        "</svg>&amp;";
    const auto acks = send(c.d.ep.ingress, hostile_events(x));
    REQUIRE(acks.size() == 3);
    CHECK(acks[0].status == saga::ack_status::accepted);
    CHECK(acks[2].status == saga::ack_status::rejected);

    saga::test::browser b(dir);
    INFO("chromedriver: " << b.log());

    // The saga's page, by its link on the list.
    b.go(c.url() + "/sagas");
    b.click(b.get("main table a[href^='/saga?']"));
    const std::string saga_url = b.url();
    REQUIRE(saga_url.starts_with(c.url() + "/saga?"));
    screenshot(b, "hostile-saga");

    // Nothing of the payload became a script (the console's own /console.js aside), an image, an
    // element with its ids or a handler.
    const char* const injected = R"js(
      return {pwned: typeof window.__pwned,
              elements: document.querySelectorAll(
                'script:not([src="/console.js"]), img, [onerror], [onload], #pwned-img, #pwned-b, #pwned-svg, b[title]').length};)js";
    const std::vector<std::string> pages = {
        "/",       "/sagas", saga_url.substr(c.url().size()), "/definitions", "/dead-letters", "/parked",
        "/timers", "/outbox"};
    // First as served (the console's CSP on), then with the page's CSP ignored by the browser
    // (DevTools' Page.setBypassCSP): escaping alone must keep the payload text.
    for (const bool bypass_csp : {false, true}) {
      b.devtools("Page.setBypassCSP", {{"enabled", bypass_csp}});
      for (const auto& path : pages) {
        CAPTURE(bypass_csp);
        CAPTURE(path);
        b.go(c.url() + path);
        const json found = b.run(injected);
        CHECK(found.at("pwned") == "undefined");
        CHECK(found.at("elements") == 0);
      }
    }

    // The payload is there as text a user reads: the key, the data and the history's source on
    // the saga's page; the parked event's saga and id on the parked events' page; the rejected
    // event's type and payload on the dead letters' page.
    b.devtools("Page.setBypassCSP", {{"enabled", false}});
    b.go(saga_url);
    const auto saga_text = b.text(b.get("main"));
    CHECK(saga_text.find("o-" + script) != std::string::npos);
    CHECK(saga_text.find("urn:src-" + script) != std::string::npos);
    CHECK(saga_text.find("\"currency\": \"" + script) != std::string::npos);  // the data, as JSON
    CHECK(saga_text.find("&amp;") != std::string::npos);                      // "&amp;" literally
    b.go(c.url() + "/parked");  // the payment parked before its order: its saga key and event id
    const auto parked_text = b.text(b.get("main"));
    CHECK(parked_text.find("p-" + script) != std::string::npos);
    b.go(c.url() + "/dead-letters");
    const auto dead_text = b.text(b.get("main"));
    CHECK(dead_text.find("bogus." + script) != std::string::npos);
    CHECK(dead_text.find("onerror=\\\"window.__pwned=2\\\"") != std::string::npos);  // in the JSON payload

    // And the console's CSP stops a script that would get in some other way: an inline script
    // added to the overview (here through WebDriver, as an injection would) does not run.
    b.go(c.url() + "/");
    CHECK(b.run(R"js(
      const s = document.createElement('script');
      s.textContent = 'window.__inline_ran = 1;';
      document.body.appendChild(s);
      return typeof window.__inline_ran;)js") == "undefined");
    // (Without it, the same script runs: the check above can fail.)
    b.devtools("Page.setBypassCSP", {{"enabled", true}});
    b.go(c.url() + "/");
    CHECK(b.run(R"js(
      const s = document.createElement('script');
      s.textContent = 'window.__inline_ran = 1;';
      document.body.appendChild(s);
      return typeof window.__inline_ran;)js") == "number");
  }

  TEST_CASE("in a browser an operator aborts a saga through the console's form and sees it change") {
    saga::test::console::curve_console s;
    REQUIRE_MESSAGE(s.c.d, s.c.d.error);
    INFO("sagad stderr: " << s.c.d.proc->err());
    REQUIRE(s.send_as_service({saga::test::placed("o-1")}).at(0).ok());
    saga::test::browser b(s.dir);
    INFO("chromedriver: " << b.log());

    b.go(s.url() + "/saga?type=order_lifecycle&id=o-1");
    CHECK(b.text(b.get("#state")) == "placed");
    b.click(b.get("#abort"));
    CHECK(b.url().find("/act?do=abort") != std::string::npos);
    screenshot(b, "abort-confirm");
    // Without a reason the browser does not send the form (the field is required).
    b.click(b.get("#confirm"));
    CHECK(b.url().find("/act?do=abort") != std::string::npos);
    b.type(b.get("#reason"), "customer called");
    b.click(b.get("#confirm"));
    const bool arrived = b.wait_until("return document.getElementById('outcome') !== null;");
    INFO("page: " << b.url() << "\n" << b.text(b.get("body")));  // a refusal says why
    REQUIRE(arrived);
    CHECK(b.url().find("/saga?type=order_lifecycle&id=o-1&acted=abort") != std::string::npos);
    CHECK(b.text(b.get("#state")) == "cancelled");
    CHECK(b.text(b.get("#outcome")).starts_with("abort: transitioned"));
    CHECK_FALSE(b.find("#abort"));  // nothing left to abort
    // The history's last row: the operator's event, sent by the console's key.
    const auto history = table_rows(b, "History");
    REQUIRE(history.size() == 2);
    CHECK(history[1][1] == "saga.operator.abort");
    CHECK(history[1][6] == "ops");
    screenshot(b, "aborted");

    // The live tail (the page's one script): what is published from now on, a row per event.
    b.go(s.url() + "/tail");
    REQUIRE(b.wait_until("return document.getElementById('tail-status').textContent === 'live';"));
    CHECK(b.text(b.get("#tail-count")) == "0");  // only what is published from now on
    REQUIRE(s.send_as_service({saga::test::placed("o-2")}).at(0).ok());
    REQUIRE(b.wait_until("return document.querySelectorAll('#tail tr').length === 1;"));
    const auto row = b.run("return [...document.querySelector('#tail tr').cells].map(c => c.innerText);");
    CHECK(row[1] == "payment.requested");
    CHECK(row[2] == "order_lifecycle / o-2");
    screenshot(b, "tail");
  }
}
