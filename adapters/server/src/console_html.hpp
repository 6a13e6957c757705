#pragma once
// console_html — the console's HTML pieces (console.hpp): one page frame, tables, links, the
// escaping every rendered value goes through, and the request parameters the pages read. One
// home for them: the read-only pages (console.cpp), the action forms (console_actions.cpp) and
// the live tail (console_tail.cpp) render through these.
//
// Thread-safety: free functions without shared state.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace httplib {
struct Request;
}

namespace saga::server {

// HTML-escapes `text` (& < > " '): safe in element content and in quoted attribute values.
std::string html_escape(std::string_view text);

namespace html {

std::int64_t now_ms();

// Percent-encodes a query parameter's value.
std::string url_encode(std::string_view s);
// A query string from (name, value) pairs, empty values left out ("?a=1&b=x%20y"; "" for none).
std::string url_query(const std::vector<std::pair<std::string, std::string>>& params);
// The same, HTML-escaped for an href.
std::string query(const std::vector<std::pair<std::string, std::string>>& params);
// A JSON value as table cell text (escaped): strings bare, null as "-", the rest as JSON.
std::string text(const nlohmann::json& j);
// <a href="href">label</a>; both already escaped.
std::string link(const std::string& href, const std::string& label);
// The whole page: title (escaped here), the navigation, `body` (already escaped HTML);
// `scripts`: paths of the console's own scripts to load (the live parts).
std::string page(const std::string& title, const std::string& body,
                 const std::vector<std::string>& scripts = {});
// A table: header cells as given (plain text), rows already escaped HTML.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                  const char* empty = "(none)");
// 1d2h, 15m, 3m20s, 850ms (sagactl's human durations).
std::string duration_text(std::int64_t ms);

// A query or form parameter; empty when absent.
std::string param(const httplib::Request& req, const char* name);
// A count parameter 0..most, `fallback` when absent; failure(usage) naming it otherwise.
std::int64_t count_param(const httplib::Request& req, const char* name, std::int64_t fallback,
                         std::int64_t most);

}  // namespace html
}  // namespace saga::server
