#include "console.hpp"

#include <httplib.h>

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "console_html.hpp"
#include "saga/codec.hpp"
#include "saga/duration.hpp"
#include "saga/server/catalog.hpp"
#include "saga/server/graph_picture.hpp"
#include "saga/trace.hpp"

namespace saga::server {

namespace {

using json = nlohmann::json;
using namespace html;

constexpr const char* stylesheet = R"(body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
nav { background: #2d3e50; padding: .5em 1em; }
nav a { color: #fff; margin-right: 1.2em; text-decoration: none; }
main { padding: 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; max-width: 100em; white-space: pre-wrap; overflow-wrap: anywhere; }
.graph { overflow-x: auto; max-width: 100%; }
.graph svg { height: auto; }
.error { color: #a00; }
form label { margin-right: 1em; }
.bars rect { fill: #4a7ab5; }
.notice { background: #e8f4e8; border: 1px solid #9c9; padding: .4em .8em; }
.actions a.action { background: #a33; color: #fff; padding: .25em .8em; border-radius: 3px; text-decoration: none; margin-right: .6em; }
button { font: inherit; padding: .3em 1em; }
)";

// Graphviz's SVG without its XML prolog and doctype, to be inlined in the page. Graphviz writes
// every label XML-escaped; the path's title carries the saga's key, so it must.
std::string inline_svg(const std::string& svg) {
  const auto at = svg.find("<svg");
  return at == std::string::npos ? std::string() : svg.substr(at);
}

// Graphviz's pictures of the last 64 dot texts drawn: a definition's graph is the same text until
// the definition changes, and the definitions page draws every one (dot takes 50-100 ms a graph).
// A saga's graph carries its path, so it is drawn again unless its text was seen.
class svg_cache {
 public:
  std::string svg_of(const std::string& dot) {
    {
      std::lock_guard lock(mutex_);
      if (const auto it = svgs_.find(dot); it != svgs_.end()) return it->second;
    }
    std::string svg = inline_svg(dot_to_svg(dot, "sagad-svg"));  // outside the lock: it takes a while
    std::lock_guard lock(mutex_);
    if (svgs_.size() >= limit) {
      svgs_.erase(order_.front());
      order_.pop_front();
    }
    if (svgs_.emplace(dot, svg).second) order_.push_back(dot);
    return svg;
  }

 private:
  static constexpr std::size_t limit = 64;
  std::mutex mutex_;
  std::map<std::string, std::string> svgs_;
  std::deque<std::string> order_;  // oldest first
};

std::string graph_figure(const std::optional<saga::graph>& g, const json* instance) {
  if (!g) return "<p>(the definition is not registered in this database: no graph)</p>\n";
  static svg_cache drawn;
  try {
    return "<div class=\"graph\">" + drawn.svg_of(graph_dot(*g, instance)) + "</div>\n";
  } catch (const failure& f) {
    return "<p class=\"error\">no picture: " + html_escape(f.what()) + "</p>\n";
  }
}

// Events handled per minute of the last hour, as bars (inline SVG, no script).
std::string minute_bars(const json& per_minute) {
  std::int64_t peak = 1;
  for (const auto& n : per_minute) peak = std::max(peak, n.get<std::int64_t>());
  std::string out = "<svg class=\"bars\" width=\"360\" height=\"60\" viewBox=\"0 0 360 60\" role=\"img\">";
  int x = 0;
  for (const auto& n : per_minute) {
    const auto h = n.get<std::int64_t>() * 58 / peak;
    out += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(60 - h) +
           "\" width=\"5\" height=\"" + std::to_string(h) + "\"><title>" +
           std::to_string(n.get<std::int64_t>()) + "</title></rect>";
    x += 6;
  }
  return out + "</svg>\n";
}

// `sagactl list`'s filters from the query, checked as sagactl checks its options.
list_filter list_filter_of(const httplib::Request& req, std::int64_t default_limit) {
  list_filter f;
  if (auto s = param(req, "type"); !s.empty()) f.type = s;
  if (auto s = param(req, "state"); !s.empty()) f.state = s;
  if (auto s = param(req, "stuck-for"); !s.empty()) {
    f.stuck_for_ms = saga::parse_duration(s);
    if (!f.stuck_for_ms) throw failure(usage, "stuck-for: '" + s + "' is not a duration (like 15m)");
  }
  for (auto [name, into] : {std::pair{"since", &f.since_ms}, std::pair{"until", &f.until_ms}}) {
    if (auto s = param(req, name); !s.empty()) {
      *into = saga::parse_time(s);
      if (!*into) throw failure(usage, std::string(name) + ": '" + s + "' is not an RFC 3339 time");
    }
  }
  if (auto s = param(req, "trace"); !s.empty()) {
    if (!saga::valid_trace_id(s)) throw failure(usage, "trace: '" + s + "' is not a trace id");
    f.trace_id = s;
  }
  f.trace_scan = count_param(req, "trace-scan", f.trace_scan, std::int64_t{1} << 40);
  f.limit = count_param(req, "limit", default_limit, 100'000);
  if (const auto order = param(req, "newest-first"); !order.empty()) {
    if (order != "1" && order != "0") throw failure(usage, "newest-first: '" + order + "' is not 1 or 0");
    f.newest_first = order == "1";
  }
  if (req.has_param("after-id")) {
    f.after =
        saga::saga_position{count_param(req, "after-created", 0, std::numeric_limits<std::int64_t>::max()),
                            param(req, "after-type"), param(req, "after-id")};
  }
  return f;
}

// Pages --------------------------------------------------------------------------------------

std::string overview(catalog& c, std::int64_t now) {
  const json s = c.stats(now);
  const json d = c.definitions(now);
  std::vector<std::vector<std::string>> rows;
  for (const auto& [def, states] : s["instances"].items())
    for (const auto& [state, n] : states.items())
      rows.push_back({link("/sagas" + query({{"type", def}}), html_escape(def)),
                      link("/sagas" + query({{"type", def}, {"state", state}}), html_escape(state)),
                      link("/sagas" + query({{"type", def}, {"state", state}}), text(n))});
  std::int64_t overdue = 0;
  for (const auto& x : d["definitions"]) overdue += x["due_timers"].get<std::int64_t>();
  for (const auto& x : d["unregistered_due_timers"]) overdue += x["due_timers"].get<std::int64_t>();
  const std::string lag =
      s["oldest_unpublished_age"].is_null()
          ? std::string()
          : " (oldest " + duration_text(s["oldest_unpublished_age"].get<std::int64_t>()) + ")";
  std::string body =
      "<h2>Sagas by definition and state</h2>\n" +
      table({"definition", "state", "sagas"}, rows, "(no sagas)") + "<h2>Queues</h2>\n" +
      table({"what", "count"},
            {{link("/sagas", "sagas"), "<span id=\"sagas\">" + text(s["sagas"]) + "</span>"},
             {link("/dead-letters", "dead letters"),
              link("/dead-letters", "<span id=\"dead-letters\">" + text(s["dead_letters"]) + "</span>")},
             {link("/parked", "parked events"),
              link("/parked", "<span id=\"parked\">" + text(s["parked"]) + "</span>")},
             {link("/timers?overdue=1", "overdue timers"),
              link("/timers?overdue=1", "<span id=\"overdue\">" + std::to_string(overdue) + "</span>")},
             {link("/timers", "armed timers"), link("/timers", text(s["armed_timers"]))},
             {link("/outbox?pending=1", "outbox lag (unpublished)"),
              link("/outbox?pending=1", "<span id=\"unpublished\">" + text(s["unpublished"]) + "</span>") +
                  html_escape(lag)}});
  body += "<h2>Events handled in the last hour: " + text(s["handled_last_hour"]) +
          "</h2>\n<p>per minute, oldest left</p>\n" + minute_bars(s["handled_per_minute"]);
  return page("Overview", body);
}

std::string saga_list(catalog& c, const httplib::Request& req, std::int64_t now) {
  const list_filter f = list_filter_of(req, 50);
  const list_page p = c.page(f, now);
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : p.rows) {
    const auto href =
        "/saga" + query({{"type", r["type"].get<std::string>()}, {"id", r["id"].get<std::string>()}});
    rows.push_back({text(r["type"]), link(href, text(r["id"])), text(r["state"]), text(r["version"]),
                    duration_text(r["age"].get<std::int64_t>()),
                    duration_text(r["in_state"].get<std::int64_t>()), text(r["timers"]), text(r["parked"])});
  }
  const std::vector<std::pair<std::string, std::string>> filters = {
      {"type", param(req, "type")},
      {"state", param(req, "state")},
      {"stuck-for", param(req, "stuck-for")},
      {"since", param(req, "since")},
      {"until", param(req, "until")},
      {"trace", param(req, "trace")},
      {"limit", param(req, "limit")},
      {"trace-scan", param(req, "trace-scan")},
      {"newest-first", f.newest_first ? "1" : ""}};
  std::string form = "<form method=\"get\" action=\"/sagas\">";
  for (const auto& [name, value] : filters)
    if (name != "newest-first")
      form += "<label>" + name + " <input name=\"" + name + "\" value=\"" + html_escape(value) +
              "\" size=\"12\"></label>";
  form +=
      std::string("<label><input type=\"checkbox\" id=\"newest-first\" name=\"newest-first\" value=\"1\"") +
      (f.newest_first ? " checked" : "") + "> newest first</label>";
  form += "<button type=\"submit\">filter</button></form>\n";
  std::string body =
      form + "<p><span id=\"shown\">" + std::to_string(p.rows.size()) + "</span> sagas, " +
      (f.newest_first ? "newest" : "oldest") + " first</p>\n" +
      table({"type", "id", "state", "version", "age", "in state", "timers", "parked"}, rows, "(no sagas)");
  if (p.next) {
    auto next = filters;
    next.push_back({"after-created", std::to_string(p.next->created_ms)});
    next.push_back({"after-type", p.next->definition});
    next.push_back({"after-id", p.next->key});
    body += "<p>" + link("/sagas" + query(next), "next page") + "</p>\n";
  }
  return page("Sagas", body);
}

// What the last action did, when the page is where its POST sent the browser (console_actions.cpp).
std::string action_outcome(const httplib::Request& req) {
  const auto acted = param(req, "acted");
  if (acted.empty()) return {};
  return "<p class=\"notice\" id=\"outcome\">" + html_escape(acted) + ": " +
         html_escape(param(req, "outcome")) + "</p>\n";
}

// The links to the actions that fit the saga's state (each opens a confirmation form).
std::string saga_actions(const json& s, const std::optional<saga::graph>& g) {
  if (!g) return {};
  const auto type = s["type"].get<std::string>(), id = s["id"].get<std::string>();
  const auto state = s["state"].get<std::string>();
  const bool attention = !g->attention_state.empty() && state == g->attention_state;
  std::string out;
  if (!g->abort_state.empty() && (!g->is_terminal(state) || attention))
    out += "<a id=\"abort\" class=\"action\" href=\"/act" +
           query({{"do", "abort"}, {"type", type}, {"id", id}}) + "\">abort…</a> ";
  if (attention)
    out += "<a id=\"resolve\" class=\"action\" href=\"/act" +
           query({{"do", "resolve"}, {"type", type}, {"id", id}}) + "\">resolve…</a>";
  return out.empty() ? std::string() : "<p class=\"actions\">" + out + "</p>\n";
}

std::string one_saga(catalog& c, const httplib::Request& req, std::int64_t now, bool actions) {
  const auto id = param(req, "id");
  if (id.empty()) throw failure(usage, "id: which saga (its correlation key)?");
  const json s = c.show(id, param(req, "type"), now);
  const auto g = c.stored_graph(s["type"].get<std::string>(), s["definition_version"].get<std::int64_t>());
  std::string body =
      action_outcome(req) + (actions ? saga_actions(s, g) : std::string()) +
      table({"", ""}, {{"definition", text(s["type"]) + " (version " + text(s["definition_version"]) + ")"},
                       {"id", text(s["id"])},
                       {"state", "<strong id=\"state\">" + text(s["state"]) + "</strong> for " +
                                     duration_text(s["in_state"].get<std::int64_t>()) + " (since " +
                                     text(s["state_since"]) + ")"},
                       {"version", text(s["version"])},
                       {"created", text(s["created"])},
                       {"updated", text(s["updated"])},
                       {"fingerprint", text(s["fingerprint"])},
                       {"correlation", text(s["correlation_id"])}});
  body += "<h2>Data</h2>\n<pre>" + html_escape(s["data"].dump(2)) + "</pre>\n";
  body += "<h2>Graph</h2>\n" + graph_figure(g, &s);
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : s["history"])
    rows.push_back(
        {text(h["time"]), text(h["event_type"]), text(h["event_id"]), text(h["event_source"]),
         text(h["from"]) + " → " + text(h["to"]), text(h["outcome"]),
         h["sender"].is_string() && !h["sender"].get<std::string>().empty() ? text(h["sender"]) : "-",
         text(h["trace_id"])});
  body += "<h2>History</h2>\n" +
          table({"time", "event", "event id", "source", "from → to", "outcome", "sent by", "trace id"}, rows);
  rows.clear();
  for (const auto& t : s["timers"])
    rows.push_back({text(t["name"]), text(t["due"]), duration_text(t["due_in"].get<std::int64_t>())});
  body += "<h2>Armed timers</h2>\n" + table({"timer", "due", "due in"}, rows, "(none armed)");
  rows.clear();
  for (const auto& p : s["parked"])
    rows.push_back(
        {text(p["id"]), text(p["parked"]), text(p["type"]), text(p["event_id"]), text(p["source"])});
  body += "<h2>Parked events</h2>\n" + table({"id", "parked", "type", "event id", "source"}, rows);
  rows.clear();
  for (const auto& o : s["outbox"])
    rows.push_back({text(o["sequence"]), text(o["type"]), text(o["event_id"]), text(o["created"]),
                    o["published"].get<bool>() ? "yes" : "no"});
  body +=
      "<h2>Follow-on events</h2>\n" + table({"sequence", "type", "event id", "created", "published"}, rows);
  return page("Saga " + s["type"].get<std::string>() + " / " + s["id"].get<std::string>(), body);
}

std::string definitions_page(catalog& c, std::int64_t now) {
  const json d = c.definitions(now);
  std::string body;
  std::vector<std::vector<std::string>> rows;
  for (const auto& x : d["definitions"])
    rows.push_back(
        {link("#" + html_escape(x["name"].get<std::string>()) + "-v" + text(x["version"]), text(x["name"])),
         text(x["version"]), text(x["fingerprint"]), text(x["registered"]), text(x["states"]),
         link("/sagas" + query({{"type", x["name"].get<std::string>()}}), text(x["instances"])),
         text(x["due_timers"])});
  body += table({"name", "version", "fingerprint", "registered", "states", "sagas", "due timers"}, rows,
                "(no definitions registered)");
  for (const auto& x : d["definitions"]) {
    const auto name = x["name"].get<std::string>();
    const auto g = c.stored_graph(name, x["version"].get<std::int64_t>());
    body += "<h2 id=\"" + html_escape(name) + "-v" + text(x["version"]) + "\">" + html_escape(name) + " v" +
            text(x["version"]) + "</h2>\n";
    if (g) {
      std::vector<std::string> consumes, produces;
      for (const auto& t : g->consumes) consumes.push_back(html_escape(t));
      for (const auto& t : g->produces) produces.push_back(html_escape(t));
      auto joined = [](const std::vector<std::string>& v) {
        std::string out;
        for (const auto& t : v) out += (out.empty() ? "" : ", ") + t;
        return out.empty() ? std::string("-") : out;
      };
      body += "<p>consumes: " + joined(consumes) + "<br>produces: " + joined(produces) + "</p>\n";
    }
    body += graph_figure(g, nullptr);
  }
  rows.clear();
  for (const auto& o : d["orphaned"])
    rows.push_back(
        {text(o["type"]),
         link("/saga" + query({{"type", o["type"].get<std::string>()}, {"id", o["id"].get<std::string>()}}),
              text(o["id"])),
         text(o["state"]), text(o["fingerprint"])});
  body += "<h2>Sagas no registered graph has</h2>\n" + table({"type", "id", "state", "fingerprint"}, rows);
  return page("Definitions", body);
}

std::string dead_letters_page(catalog& c, const httplib::Request& req, bool actions) {
  const json rows_json = c.dead_letters(count_param(req, "limit", 100, 10'000));
  std::string body = action_outcome(req) + "<p><span id=\"shown\">" + std::to_string(rows_json.size()) +
                     "</span> dead letters</p>\n";
  for (const auto& r : rows_json) {
    const auto stored = c.dead_letter(r["id"].get<std::int64_t>());
    body += "<h2>#" + text(r["id"]) + " " + text(r["type"]) + "</h2>\n" +
            table({"", ""}, {{"reason", text(r["reason"])},
                             {"event id", text(r["event_id"])},
                             {"source", text(r["source"])},
                             {"subject", text(r["subject"])},
                             {"first", text(r["created"])},
                             {"last", text(r["last"]) + " (" + text(r["count"]) + " times)"},
                             {"truncated", r["truncated"].get<bool>() ? "yes (cannot be redriven)" : "no"}}) +
            "<pre>" + html_escape(stored.payload) + "</pre>\n";
    if (actions && !stored.truncated)
      body += "<p class=\"actions\"><a id=\"redrive-" + text(r["id"]) + "\" class=\"action\" href=\"/act" +
              query({{"do", "redrive"}, {"dead-letter", r["id"].dump()}}) + "\">redrive…</a></p>\n";
  }
  return page("Dead letters", body);
}

// Parked events of every saga, in arrival order, a page at a time (after-id).
std::string parked_page(catalog& c, const httplib::Request& req) {
  const auto limit = count_param(req, "limit", 100, 10'000);
  const json rows_json =
      c.parked(count_param(req, "after-id", 0, std::numeric_limits<std::int64_t>::max()), limit);
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : rows_json)
    rows.push_back({text(p["id"]), text(p["parked"]),
                    link("/saga" + query({{"type", p["saga_type"].get<std::string>()},
                                          {"id", p["saga_id"].get<std::string>()}}),
                         text(p["saga_type"]) + " / " + text(p["saga_id"])),
                    text(p["type"]), text(p["event_id"]), text(p["source"]),
                    p["sender"].get<std::string>().empty() ? "-" : text(p["sender"])});
  std::string body = "<p><span id=\"shown\">" + std::to_string(rows_json.size()) +
                     "</span> parked events, in arrival order: each waits until its saga can take it</p>\n" +
                     table({"id", "parked", "saga", "type", "event id", "source", "sent by"}, rows);
  if (static_cast<std::int64_t>(rows_json.size()) == limit && limit > 0)
    body +=
        "<p>" +
        link("/parked" + query({{"after-id", rows_json.back()["id"].dump()}, {"limit", param(req, "limit")}}),
             "next page") +
        "</p>\n";
  return page("Parked events", body);
}

std::string timers_page(catalog& c, const httplib::Request& req, std::int64_t now) {
  const bool overdue = !param(req, "overdue").empty();
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : c.timers(overdue ? std::optional<std::int64_t>(now + 1) : std::nullopt,
                                count_param(req, "limit", 1000, 100'000)))
    rows.push_back(
        {text(t["type"]),
         link("/saga" + query({{"type", t["type"].get<std::string>()}, {"id", t["id"].get<std::string>()}}),
              text(t["id"])),
         text(t["name"]), text(t["due"]), t["registered"].get<bool>() ? "yes" : "no"});
  return page(overdue ? "Overdue timers" : "Armed timers",
              table({"type", "id", "timer", "due", "registered"}, rows, "(no timers)"));
}

std::string outbox_page(catalog& c, const httplib::Request& req) {
  const bool pending = !param(req, "pending").empty();
  std::vector<std::vector<std::string>> rows;
  for (const auto& o :
       c.outbox(pending, count_param(req, "from", 0, std::numeric_limits<std::int64_t>::max()),
                count_param(req, "limit", 1000, 100'000)))
    rows.push_back({text(o["sequence"]), text(o["type"]), text(o["event_id"]),
                    link("/saga" + query({{"type", o["saga_type"].get<std::string>()},
                                          {"id", o["saga_id"].get<std::string>()}}),
                         text(o["saga_type"]) + " / " + text(o["saga_id"])),
                    text(o["created"]), text(o["published"])});
  return page(pending ? "Outbox: unpublished" : "Outbox",
              table({"sequence", "type", "event id", "saga", "created", "published"}, rows, "(no rows)"));
}

}  // namespace

namespace {

// 128 random bits as 32 hex digits (the kernel's CSPRNG).
std::string random_token() {
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const auto n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    got += static_cast<std::size_t>(n);
  }
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace

console::console(std::function<std::unique_ptr<saga::reader>()> open_reader, std::string db_name, sender send)
    : open_reader_(std::move(open_reader)),
      db_name_(std::move(db_name)),
      send_(std::move(send)),
      csrf_token_(random_token()) {}

console::~console() = default;

console::answer console::with_catalog(const std::function<answer(catalog&)>& render) {
  std::lock_guard lock(mutex_);
  try {
    if (!catalog_) {
      reader_ = open_reader_();
      catalog_ = std::make_unique<catalog>(*reader_, db_name_);
    }
    return render(*catalog_);
  } catch (const failure& f) {
    const int status = f.code() == not_found ? 404 : f.code() == usage ? 400 : 500;
    if (status == 500) {
      spdlog::warn("console: {}", f.what());
      catalog_.reset();
      reader_.reset();
    }
    return {status, page("Error", "<p class=\"error\">" + html_escape(f.what()) + "</p>"),
            "text/html; charset=utf-8"};
  } catch (const std::exception& e) {
    spdlog::warn("console: reading {}: {}", db_name_, e.what());
    catalog_.reset();
    reader_.reset();
    return {500, page("Error", "<p class=\"error\">" + html_escape(e.what()) + "</p>"),
            "text/html; charset=utf-8"};
  }
}

void console::serve_on(httplib::Server& server) {
  serve_pages(server);
  serve_api(server);
  serve_tail(server);
  if (actions()) serve_actions(server);
}

void console::reply(httplib::Response& res, answer a) {
  res.status = a.status;
  res.set_content(std::move(a.body), a.type.c_str());
}

void console::serve_pages(httplib::Server& server) {
  using request = httplib::Request;
  auto html_page = [this](auto render) {
    return [this, render](const request& req, httplib::Response& res) {
      reply(res, with_catalog([&](catalog& c) {
              return answer{200, render(c, req, now_ms()), "text/html; charset=utf-8"};
            }));
    };
  };
  server.Get("/console.css", [](const request&, httplib::Response& res) {
    res.set_content(stylesheet, "text/css; charset=utf-8");
  });
  server.Get("/", html_page([](catalog& c, const request&, std::int64_t now) { return overview(c, now); }));
  server.Get("/sagas", html_page([](catalog& c, const request& req, std::int64_t now) {
               return saga_list(c, req, now);
             }));
  server.Get("/saga", html_page([this](catalog& c, const request& req, std::int64_t now) {
               return one_saga(c, req, now, actions());
             }));
  server.Get("/definitions", html_page([](catalog& c, const request&, std::int64_t now) {
               return definitions_page(c, now);
             }));
  server.Get("/dead-letters", html_page([this](catalog& c, const request& req, std::int64_t) {
               return dead_letters_page(c, req, actions());
             }));
  server.Get("/parked",
             html_page([](catalog& c, const request& req, std::int64_t) { return parked_page(c, req); }));
  server.Get("/timers", html_page([](catalog& c, const request& req, std::int64_t now) {
               return timers_page(c, req, now);
             }));
  server.Get("/outbox",
             html_page([](catalog& c, const request& req, std::int64_t) { return outbox_page(c, req); }));
}

void console::serve_api(httplib::Server& server) {
  using request = httplib::Request;
  // A JSON document as `sagactl --json` prints it; an error as {"error": …}.
  auto api = [this](auto document) {
    return [this, document](const request& req, httplib::Response& res) {
      auto a = with_catalog([&](catalog& c) {
        return answer{200, document(c, req, now_ms()).dump(2) + "\n", "application/json"};
      });
      if (a.status != 200) {
        a.type = "application/json";
        a.body = json{{"error", a.status == 404   ? "not found"
                                : a.status == 400 ? "bad request"
                                                  : "database"}}
                     .dump() +
                 "\n";
      }
      reply(res, std::move(a));
    };
  };
  server.Get("/api/list", api([](catalog& c, const request& req, std::int64_t now) {
               return c.list(list_filter_of(req, 1000), now);
             }));
  server.Get("/api/show", api([](catalog& c, const request& req, std::int64_t now) {
               return c.show(param(req, "id"), param(req, "type"), now);
             }));
  server.Get("/api/parked", api([](catalog& c, const request& req, std::int64_t) {
               return c.parked(count_param(req, "after-id", 0, std::numeric_limits<std::int64_t>::max()),
                               count_param(req, "limit", 1000, 100'000));
             }));
  server.Get("/api/stats", api([](catalog& c, const request&, std::int64_t now) { return c.stats(now); }));
  server.Get("/api/definitions",
             api([](catalog& c, const request&, std::int64_t now) { return c.definitions(now); }));
  server.Get("/api/dead-letters", api([](catalog& c, const request& req, std::int64_t) {
               return c.dead_letters(count_param(req, "limit", 1000, 100'000));
             }));
  server.Get("/api/timers", api([](catalog& c, const request& req, std::int64_t) {
               std::optional<std::int64_t> before;
               if (auto s = param(req, "due-before"); !s.empty()) {
                 before = saga::parse_time(s);
                 if (!before) throw failure(usage, "due-before: not an RFC 3339 time");
               }
               return c.timers(before, count_param(req, "limit", 1000, 100'000));
             }));
  server.Get("/api/outbox", api([](catalog& c, const request& req, std::int64_t) {
               return c.outbox(!param(req, "pending").empty(),
                               count_param(req, "from", 0, std::numeric_limits<std::int64_t>::max()),
                               count_param(req, "limit", 1000, 100'000));
             }));
}

}  // namespace saga::server
