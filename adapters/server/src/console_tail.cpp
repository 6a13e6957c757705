// The console's live tail (console.hpp): GET /tail, its script /console.js, and GET /api/tail,
// follow-on events as sagad publishes them, as Server-Sent Events
// (html.spec.whatwg.org/multipage/server-sent-events.html).
//
// A stream reads the outbox through the console's read connection every half second, from the
// sequence after the last one it sent, and sends each published row as an event whose id is its
// sequence, so that a browser reconnecting (EventSource does, with Last-Event-ID) resumes where it
// was; a poll with nothing to send writes an empty comment, so a closed connection is noticed. Each stream
// holds one of the HTTP server's threads: at most `most_tails` are open at once, and each ends after
// `stream_life` (the browser reconnects), so streams never take every thread from the pages.

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "console.hpp"
#include "console_html.hpp"
#include "saga/server/catalog.hpp"

namespace saga::server {
namespace {

using json = nlohmann::json;
using namespace html;

constexpr int most_tails = 2;
constexpr auto stream_life = std::chrono::seconds(30);
constexpr auto poll_every = std::chrono::milliseconds(500);
constexpr int rows_per_poll = 200;

// The one script: the tail's table, filled from /api/tail. Text only (textContent, never HTML),
// links built through URLSearchParams.
constexpr const char* script =
    R"(// sagad console: the live tail (/tail), newly published events over Server-Sent Events.
"use strict";
(function () {
  const rows = document.getElementById("tail");
  const status = document.getElementById("tail-status");
  if (!rows || !status || !window.EventSource) return;
  const source = new EventSource("/api/tail");
  const cell = (row, content) => {
    const td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = String(content);
    row.appendChild(td);
  };
  source.addEventListener("published", (message) => {
    const e = JSON.parse(message.data);
    const row = document.createElement("tr");
    const saga = document.createElement("a");
    saga.href = "/saga?" + new URLSearchParams({ type: e.saga_type, id: e.saga_id }).toString();
    saga.textContent = e.saga_type + " / " + e.saga_id;
    cell(row, e.sequence);
    cell(row, e.type);
    cell(row, saga);
    cell(row, e.event_id);
    cell(row, e.created);
    rows.prepend(row);
    while (rows.rows.length > 500) rows.deleteRow(-1);
    document.getElementById("tail-count").textContent = String(Number(document.getElementById("tail-count").textContent) + 1);
  });
  source.onopen = () => { status.textContent = "live"; };
  source.onerror = () => { status.textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"; };
})();
)";

std::string tail_page() {
  return page("Live tail",
              "<p>Follow-on events as sagad publishes them, newest first: <strong id=\"tail-status\">needs "
              "JavaScript</strong>, <span id=\"tail-count\">0</span> received. Without JavaScript: " +
                  link("/outbox", "the outbox") +
                  ".</p>\n<table><thead><tr><th>sequence</th><th>type</th><th>saga</th><th>event "
                  "id</th><th>created</th></tr></thead><tbody id=\"tail\"></tbody></table>\n",
              {"/console.js"});
}

// Where a stream starts: after the browser's Last-Event-ID (a reconnection), at `from`, or after
// the last sequence published now (only what comes).
std::optional<std::int64_t> asked_start(const httplib::Request& req) {
  const auto digits = [](const std::string& s) -> std::optional<std::int64_t> {
    if (s.empty() || s.size() > 18 ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    return std::stoll(s);
  };
  if (req.has_header("Last-Event-ID"))
    if (const auto id = digits(req.get_header_value("Last-Event-ID"))) return *id + 1;
  if (req.has_param("from")) {
    if (const auto from = digits(req.get_param_value("from"))) return *from;
    throw failure(usage, "from: not a sequence number");
  }
  return std::nullopt;
}

// The SSE lines of the published rows of `rows` from `next` on, in order, up to the first one not
// yet published; `next` moves past what was written.
std::string published_events(const json& rows, std::int64_t& next) {
  std::string out;
  for (const auto& r : rows) {
    if (!r["sequence"].is_number_integer() || r["sequence"].get<std::int64_t>() < next) continue;
    if (r["published"].is_null()) break;
    const auto sequence = r["sequence"].get<std::int64_t>();
    out += "id: " + std::to_string(sequence) + "\nevent: published\ndata: " + r.dump() + "\n\n";
    next = sequence + 1;
  }
  return out;
}

}  // namespace

void console::serve_tail(httplib::Server& server) {
  server.Get("/console.js", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(script, "text/javascript; charset=utf-8");
  });
  server.Get("/tail", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(tail_page(), "text/html; charset=utf-8");
  });
  server.Get("/api/tail", [this](const httplib::Request& req, httplib::Response& res) {
    std::optional<std::int64_t> start;
    auto a = with_catalog([&](catalog& c) {
      start = asked_start(req);
      if (!start) start = c.last_published() + 1;
      return answer{};
    });
    if (!start) return reply(res, std::move(a));
    if (tails_.fetch_add(1) >= most_tails) {
      --tails_;
      res.status = 503;
      res.set_header("Retry-After", "10");
      res.set_content("too many live tails open (" + std::to_string(most_tails) + "): try again later\n",
                      "text/plain; charset=utf-8");
      return;
    }
    auto s =
        std::make_shared<tail_stream>(tail_stream{*start, std::chrono::steady_clock::now() + stream_life});
    res.set_chunked_content_provider(
        "text/event-stream", [this, s](std::size_t, httplib::DataSink& sink) { return tail_poll(*s, sink); },
        [this](bool) { --tails_; });
  });
}

// One turn of a live tail: a greeting first, then every poll_every what was published since;
// false when the browser has gone (its thread is freed).
bool console::tail_poll(tail_stream& s, httplib::DataSink& sink) {
  if (s.polls++ == 0) {
    const std::string hello = "retry: 2000\n: sagad live tail\n\n";
    if (!sink.write(hello.data(), hello.size())) return false;
  } else {
    std::this_thread::sleep_for(poll_every);
  }
  json rows;
  const auto read = with_catalog([&](catalog& c) {
    rows = c.outbox(false, s.next, rows_per_poll);
    return answer{};
  });
  if (read.status != 200) {  // the database could not be read: the browser reconnects
    sink.done();
    return true;
  }
  std::string out = published_events(rows, s.next);
  // An empty comment when there is nothing to send: a browser that left is noticed within a poll
  // or two (the write after its close fails), and its thread is freed.
  if (out.empty()) out = ":\n\n";
  if (!sink.write(out.data(), out.size())) return false;
  if (std::chrono::steady_clock::now() >= s.end) sink.done();
  return true;
}

}  // namespace saga::server
