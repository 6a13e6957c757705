#include "console_html.hpp"

#include <httplib.h>

#include <cctype>
#include <chrono>

#include "saga/server/catalog.hpp"

namespace saga::server {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace html {

using json = nlohmann::json;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Percent-encodes a query parameter's value.
std::string url_encode(std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string url_query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [name, value] : params) {
    if (value.empty()) continue;
    q += (q.empty() ? "?" : "&") + name + "=" + url_encode(value);
  }
  return q;
}

std::string query(const std::vector<std::pair<std::string, std::string>>& params) {
  return html_escape(url_query(params));
}

// A JSON value as table cell text (escaped): strings bare, null as "-", the rest as JSON.
std::string text(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return html_escape(j.get<std::string>());
  return html_escape(j.dump());
}

std::string link(const std::string& href, const std::string& label) {
  return "<a href=\"" + href + "\">" + label + "</a>";
}

std::string page(const std::string& title, const std::string& body, const std::vector<std::string>& scripts) {
  std::string head;
  for (const auto& s : scripts) head += "<script src=\"" + html_escape(s) + "\" defer></script>";
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title) +
         " · sagad console</title><link rel=\"stylesheet\" href=\"/console.css\">" + head +
         "</head><body><nav>" + link("/", "overview") + link("/sagas", "sagas") +
         link("/definitions", "definitions") + link("/dead-letters", "dead letters") +
         link("/parked", "parked") + link("/timers", "timers") + link("/outbox", "outbox") +
         link("/tail", "live tail") + "</nav><main><h1>" + html_escape(title) + "</h1>\n" + body +
         "</main></body></html>\n";
}

// A table: header cells as given (plain text), rows already escaped HTML.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  const char* empty) {
  if (rows.empty()) return std::string("<p>") + empty + "</p>\n";
  std::string out = "<table><thead><tr>";
  for (const auto& h : header) out += "<th>" + html_escape(h) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (const auto& r : rows) {
    out += "<tr>";
    for (const auto& c : r) out += "<td>" + c + "</td>";
    out += "</tr>\n";
  }
  return out + "</tbody></table>\n";
}

// 1d2h, 15m, 3m20s, 850ms (sagactl's human durations).
std::string duration_text(std::int64_t ms) {
  if (ms < 0) return "-" + duration_text(-ms);
  if (ms < 1000) return std::to_string(ms) + "ms";
  const std::int64_t s = ms / 1000, d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  auto part = [](std::int64_t v, const char* unit) { return v ? std::to_string(v) + unit : std::string(); };
  if (d) return std::to_string(d) + "d" + part(h, "h");
  if (h) return std::to_string(h) + "h" + part(m, "m");
  if (m) return std::to_string(m) + "m" + part(sec, "s");
  return std::to_string(sec) + "s";
}

std::string param(const httplib::Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : std::string();
}

std::int64_t count_param(const httplib::Request& req, const char* name, std::int64_t fallback,
                         std::int64_t most) {
  const auto s = param(req, name);
  if (s.empty()) return fallback;
  std::int64_t v = -1;
  try {
    std::size_t used = 0;
    v = std::stoll(s, &used);
    if (used != s.size()) v = -1;
  } catch (const std::exception&) {
  }
  if (v < 0 || v > most)
    throw failure(usage, std::string(name) + ": '" + s + "' is not a count 0-" + std::to_string(most));
  return v;
}

}  // namespace html
}  // namespace saga::server
