#pragma once
// saga::server graph pictures — a definition's graph with one saga's path drawn on it, as sagactl
// graph writes it and sagad's console shows it: the engine's one renderer (saga::to_dot,
// saga::to_mermaid) with the overlay taken from the saga's document (catalog::show), and SVG
// through Graphviz. Pure functions except dot_to_svg, which runs `dot`; thread-safe.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "saga/graph.hpp"

namespace saga::server {

// The definition's graph; with `instance` (the JSON of catalog::show) the saga's path drawn on
// it: its transitions, current state and armed timers.
std::string graph_dot(const saga::graph& g, const nlohmann::json* instance);
std::string graph_mermaid(const saga::graph& g, const nlohmann::json* instance);

// Runs Graphviz (`dot -Tsvg`) on `dot` in a fresh private temporary folder named after
// `folder_prefix` (removed after) and returns the SVG. Throws failure(not_found)
// (saga/server/catalog.hpp) when Graphviz is missing and failure(usage) when it refuses the
// input.
std::string dot_to_svg(const std::string& dot, std::string_view folder_prefix);

}  // namespace saga::server
