#pragma once
// sagactl's output: aligned tables and readable durations; the graph of a definition with
// one saga's path drawn on it is saga::server's (graph_picture.hpp). Pure functions.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/server/graph_picture.hpp"

namespace sagactl {

// A JSON value as a table cell: strings bare, null as "-", the rest as JSON.
std::string cell(const nlohmann::json& j);
// Who sent an event (the CURVE key's name): "-" when nobody is named (plaintext, the engine).
std::string sender_cell(const nlohmann::json& sender);
// The document `--json` prints: indented, one trailing newline, on stdout.
void print_json(const nlohmann::json& j);

// "a, b, c" (empty for none).
std::string joined(const std::vector<std::string>& names);

// 1d2h, 15m, 3m20s, 850ms; negative values get a leading '-'.
std::string human_duration(std::int64_t ms);

// Columns separated by two spaces, each as wide as its widest cell (UTF-8 aware).
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

// The graph pictures (saga/server/graph_picture.hpp), shared with sagad's console.
using saga::server::graph_dot;
using saga::server::graph_mermaid;
// SVG through Graphviz, run in a private folder named sagactl-svg-*.
inline std::string dot_to_svg(const std::string& dot) {
  return saga::server::dot_to_svg(dot, "sagactl-svg");
}

}  // namespace sagactl
