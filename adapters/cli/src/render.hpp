#pragma once
// sagactl's output: aligned tables, readable durations, and the graph of a
// definition with one saga's path drawn on it (DOT, Mermaid, SVG through
// Graphviz). Pure functions except dot_to_svg, which runs `dot`.

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/graph.hpp"

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

// The definition's graph (saga::to_dot, saga::to_mermaid); with `instance` (the JSON of
// catalog::show) the saga's path drawn on it: its transitions, current state and armed timers.
std::string graph_dot(const saga::graph& g, const nlohmann::json* instance);
std::string graph_mermaid(const saga::graph& g, const nlohmann::json* instance);

// Runs Graphviz (`dot -Tsvg`) on `dot` and returns the SVG. Throws
// failure(not_found) when Graphviz is missing and failure(usage) when it
// refuses the input.
std::string dot_to_svg(const std::string& dot);

}  // namespace sagactl
