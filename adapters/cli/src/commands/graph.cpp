// sagactl graph: a definition's stored graph as DOT, Mermaid or SVG, optionally with one
// saga's path drawn on it.

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"

namespace sagactl::commands {

namespace {

struct graph_options {
  std::string name, format = "dot", instance, output;
};

}  // namespace

run_fn graph(CLI::App& cmd) {
  auto o = std::make_shared<graph_options>();
  cmd.add_option("definition", o->name, "the definition's name")->required();
  cmd.add_option("--format", o->format, "dot, mermaid or svg (through Graphviz)")
      ->check(CLI::IsMember({"dot", "mermaid", "svg"}))
      ->capture_default_str();
  cmd.add_option("--instance", o->instance, "draw this saga's path, current state and armed timers");
  cmd.add_option("--output", o->output, "write to this file instead of stdout");
  return [o](const globals& g) {
    catalog c(g.db);
    const saga::graph gr = c.graph_of(o->name);
    std::optional<nlohmann::json> inst;
    if (!o->instance.empty()) inst = c.show(o->instance, o->name, wall_clock_ms());
    const nlohmann::json* ip = inst ? &*inst : nullptr;
    std::string out = o->format == "mermaid" ? graph_mermaid(gr, ip) : graph_dot(gr, ip);
    if (o->format == "svg") out = dot_to_svg(out);
    if (o->output.empty()) {
      std::cout << out;
    } else {
      std::ofstream f(o->output, std::ios::binary);
      f << out;
      f.close();
      if (!f) throw failure(usage, "cannot write " + o->output);
    }
    return 0;
  };
}

}  // namespace sagactl::commands
