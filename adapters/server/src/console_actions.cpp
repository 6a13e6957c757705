// The console's actions (console.hpp): abort, resolve and redrive, each a confirmation form
// (GET /act) and its POST, checked and sent through the ingress as an operator's event.

#include <httplib.h>

#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "console.hpp"
#include "console_html.hpp"
#include "saga/codec.hpp"
#include "saga/operator_event.hpp"
#include "saga/server/catalog.hpp"

namespace saga::server {
namespace {

using json = nlohmann::json;
using namespace html;

constexpr std::size_t reason_most = 1000;  // bytes of a reason (kept in the saga's history)
constexpr std::size_t operator_most = 100;

const char* const html_type = "text/html; charset=utf-8";

// Equal without an early exit (the token is compared against what a request offers).
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// A POST from another site (a page elsewhere submitting a form to this console): refused by what
// the browser says of the request's origin, before the token is even looked at. Browsers send
// Origin with every POST and Sec-Fetch-Site with every request; other clients may send neither.
std::optional<std::string> cross_origin(const httplib::Request& req) {
  if (req.has_header("Sec-Fetch-Site")) {
    const auto site = req.get_header_value("Sec-Fetch-Site");
    if (site != "same-origin" && site != "none") return "Sec-Fetch-Site is " + site;
  }
  if (req.has_header("Origin")) {
    const auto origin = req.get_header_value("Origin");
    if (origin != "http://" + req.get_header_value("Host"))
      return "Origin " + origin + " is not this console";
  }
  return std::nullopt;
}

console::answer error_page(int status, const std::string& title, const std::string& message,
                           const std::string& back = {}) {
  return {status,
          page(title, "<p class=\"error\" id=\"error\">" + html_escape(message) + "</p>\n" +
                          (back.empty() ? std::string() : "<p>" + link(back, "back") + "</p>\n")),
          html_type};
}

std::string saga_href(const std::string& type, const std::string& id) {
  return "/saga" + query({{"type", type}, {"id", id}});
}

// The fields every action asks for, and the token.
std::string common_fields(const std::string& token, const std::string& action) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + html_escape(token) +
         "\"><input type=\"hidden\" name=\"do\" value=\"" + html_escape(action) +
         "\">\n<p><label>reason (required, kept in the saga's history)<br><textarea id=\"reason\" "
         "name=\"reason\" rows=\"3\" cols=\"60\" required maxlength=\"" +
         std::to_string(reason_most) +
         "\"></textarea></label></p>\n<p><label>operator <input id=\"operator\" name=\"operator\" required "
         "maxlength=\"" +
         std::to_string(operator_most) + "\" value=\"console\"></label></p>\n";
}

// GET /act?do=abort|resolve&type=&id=: what the action will do, and the form that confirms it.
std::string saga_action_form(catalog& c, const httplib::Request& req, const std::string& action,
                             const std::string& token, std::int64_t now) {
  const auto id = param(req, "id");
  if (id.empty()) throw failure(usage, "id: which saga (its correlation key)?");
  const json s = c.show(id, param(req, "type"), now);
  const auto type = s["type"].get<std::string>();
  const auto state = s["state"].get<std::string>();
  const auto g = c.stored_graph(type, s["definition_version"].get<std::int64_t>());
  if (!g) throw failure(not_found, "definition " + type + " is not registered: no action applies");
  std::string what, extra;
  if (action == "abort") {
    what = "moves to its definition's abort state, <strong>" + html_escape(g->abort_state) +
           "</strong>, and its compensations run";
  } else {
    if (state != g->attention_state)
      throw failure(usage, "saga " + type + " / " + id + " is in " + state + ", not in " +
                               g->attention_state + ": there is nothing to resolve");
    what = "leaves <strong>" + html_escape(state) + "</strong> for the state chosen here";
    extra = "<p><label>into state <select id=\"to\" name=\"to\" required>";
    for (const auto& st : g->resolution_targets.empty() ? g->states : g->resolution_targets)
      if (st != g->attention_state) extra += "<option>" + html_escape(st) + "</option>";
    extra += "</select></label></p>\n";
  }
  const std::string body =
      "<p>Saga <strong>" + html_escape(type) + " / " + html_escape(id) + "</strong>, now in <strong>" +
      html_escape(state) + "</strong>, " + what +
      ". The console sends this to sagad's ingress as an operator's event (saga.operator." + action +
      "); the engine decides, as for <code>sagactl " + action + "</code>.</p>\n" +
      "<form method=\"post\" action=\"/act\">" + common_fields(token, action) +
      "<input type=\"hidden\" name=\"type\" value=\"" + html_escape(type) +
      "\"><input type=\"hidden\" name=\"id\" value=\"" + html_escape(id) + "\">\n" + extra +
      "<p><button id=\"confirm\" type=\"submit\">" + action + " this saga</button> " +
      link(saga_href(type, id), "cancel") + "</p></form>\n";
  return page((action == "abort" ? "Abort " : "Resolve ") + type + " / " + id, body);
}

// GET /act?do=redrive&dead-letter=N.
std::string redrive_form(catalog& c, const httplib::Request& req, const std::string& token) {
  const auto n = count_param(req, "dead-letter", -1, std::int64_t{1} << 62);
  if (n < 0) throw failure(usage, "dead-letter: which one (its id)?");
  const auto letter = c.dead_letter(n);
  if (letter.truncated)
    throw failure(usage,
                  "dead letter " + std::to_string(n) +
                      " was cut at the size limit: the event as received is lost and cannot be redriven");
  const std::string body =
      "<p>Dead letter <strong>#" + std::to_string(n) +
      "</strong> is sent to sagad's ingress again, as it was received (same id and source), as "
      "<code>sagactl redrive</code> does; the engine decides again.</p>\n<pre>" +
      html_escape(letter.payload) + "</pre>\n<form method=\"post\" action=\"/act\">" +
      common_fields(token, "redrive") + "<input type=\"hidden\" name=\"dead-letter\" value=\"" +
      std::to_string(n) + "\">\n<p><button id=\"confirm\" type=\"submit\">redrive this event</button> " +
      link("/dead-letters", "cancel") + "</p></form>\n";
  return page("Redrive dead letter #" + std::to_string(n), body);
}

void check_text(const std::string& value, const char* name, std::size_t most) {
  if (value.empty()) throw failure(usage, std::string(name) + ": required");
  if (value.size() > most)
    throw failure(usage, std::string(name) + ": " + std::to_string(value.size()) + " bytes, at most " +
                             std::to_string(most));
}

}  // namespace

// The event a checked POST stands for: abort and resolve built here, redrive read from the dead
// letters; failure naming the field that is wrong (usage), or the letter that is not there.
struct console::action {
  saga::event event;
  std::string name, target, reason, who;  // "abort", "order_lifecycle / o-1", why, by whom
};

console::action console::requested_action(const httplib::Request& req) {
  action r{{}, param(req, "do"), {}, param(req, "reason"), param(req, "operator")};
  check_text(r.reason, "reason", reason_most);
  check_text(r.who, "operator", operator_most);
  if (r.name == "abort" || r.name == "resolve") {
    saga::operator_request o{param(req, "id"), r.reason, r.who, param(req, "type"), param(req, "to")};
    check_text(o.id, "id", 4096);
    if (r.name == "resolve") check_text(o.to, "to", 4096);
    r.event = saga::operator_event("saga.operator." + r.name, o, now_ms());
    r.target = (o.type.empty() ? std::string() : o.type + " / ") + o.id;
    return r;
  }
  if (r.name != "redrive")
    throw failure(usage, "do: '" + r.name + "' is not an action (abort, resolve, redrive)");
  const auto n = count_param(req, "dead-letter", -1, std::int64_t{1} << 62);
  if (n < 0) throw failure(usage, "dead-letter: required");
  std::optional<catalog::stored_dead_letter> letter;
  const auto read = with_catalog([&](catalog& c) {
    letter = c.dead_letter(n);
    return answer{};
  });
  if (!letter)
    throw failure(
        read.status == 404 ? not_found : database,
        "dead-letter: #" + std::to_string(n) + (read.status == 404 ? " is not there" : " could not be read"));
  if (letter->truncated) throw failure(usage, "dead-letter: it was cut at the size limit");
  auto decoded = saga::decode_event(letter->payload);
  if (!decoded) throw failure(usage, "dead-letter: not a valid event (" + decoded.error + ")");
  r.event = std::move(*decoded.event);
  r.target = "dead letter #" + std::to_string(n);
  return r;
}

// A refusal before anything is read: another site, or no valid token.
std::optional<console::answer> console::refused(const httplib::Request& req) const {
  if (const auto why = cross_origin(req)) {
    spdlog::warn("console: refused a cross-origin action ({})", *why);
    return error_page(403, "Refused", "refused: a request from another site (" + *why + ")");
  }
  if (!same_secret(param(req, "csrf"), csrf_token_))
    return error_page(403, "Refused",
                      "refused: the form's token is missing or stale (sagad restarted?): reload the form and "
                      "send it again");
  return std::nullopt;
}

void console::act(const httplib::Request& req, httplib::Response& res) {
  auto reply = [&res](answer a) { console::reply(res, std::move(a)); };
  if (auto no = refused(req)) return reply(std::move(*no));
  action r;
  try {
    r = requested_action(req);
  } catch (const failure& f) {
    return reply(error_page(f.code() == not_found ? 404
                            : f.code() == usage   ? 400
                                                  : 500,
                            "Not sent", f.what()));
  }
  saga::ack ack;
  try {
    ack = send_(r.event);
  } catch (const std::exception& e) {
    spdlog::warn("console: {} of {} by {} not sent: {}", r.name, r.target, r.who, e.what());
    return reply(error_page(503, "Not answered",
                            "sagad's ingress did not answer (" + std::string(e.what()) +
                                "): the action may or may not have been applied; look at the saga"));
  }
  spdlog::info("console: {} of {} by {} ({}): {}", r.name, r.target, r.who, r.reason,
               saga::to_string(ack.status));
  if (!ack.ok())
    return reply(
        error_page(422, "Rejected", "rejected: " + ack.reason,
                   r.name == "redrive" ? "/dead-letters" : saga_href(param(req, "type"), param(req, "id"))));
  const auto outcome = std::string(saga::to_string(ack.outcome)) +
                       (ack.saga_state.empty() ? std::string() : " (now " + ack.saga_state + ")");
  // Back where the action shows: the saga (also a redriven event's), else the dead letters.
  if (ack.saga_id.empty())
    return res.set_redirect("/dead-letters" + url_query({{"acted", r.name}, {"outcome", outcome}}), 303);
  res.set_redirect(
      "/saga" +
          url_query({{"type", ack.saga_type}, {"id", ack.saga_id}, {"acted", r.name}, {"outcome", outcome}}),
      303);
}

void console::serve_actions(httplib::Server& server) {
  server.Get("/act", [this](const httplib::Request& req, httplib::Response& res) {
    const auto name = param(req, "do");
    auto a = with_catalog([&](catalog& c) -> answer {
      if (name == "abort" || name == "resolve")
        return {200, saga_action_form(c, req, name, csrf_token_, now_ms()), html_type};
      if (name == "redrive") return {200, redrive_form(c, req, csrf_token_), html_type};
      throw failure(usage, "do: '" + name + "' is not an action (abort, resolve, redrive)");
    });
    res.status = a.status;
    res.set_content(std::move(a.body), a.type.c_str());
  });
  server.Post("/act", [this](const httplib::Request& req, httplib::Response& res) { act(req, res); });
}

}  // namespace saga::server
