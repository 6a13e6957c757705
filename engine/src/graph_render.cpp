// The one renderer of a definition's graph, as DOT and as Mermaid, optionally with one saga's
// path drawn on it (saga/graph.hpp: to_dot, to_mermaid, graph_overlay). sagactl, the examples
// and the tests all draw through here.

#include <map>
#include <set>
#include <tuple>

#include "saga/graph.hpp"

namespace saga {
namespace {

// A DOT string literal; a newline becomes DOT's centred line break, so that a label is one
// line of DOT text.
std::string dot_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

std::string mermaid_id(std::string_view s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

// Mermaid text after "state ... as" or a transition's ':': the characters its grammar reserves
// become entity codes (`#35;` is '#'), so "(#1)" reads as such; a newline becomes a blank.
std::string mermaid_label(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '#':
        out += "#35;";
        break;
      case ':':
        out += "#58;";
        break;
      case ';':
        out += "#59;";
        break;
      case '"':
        out += "#quot;";
        break;
      case '\n':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

using move = std::tuple<std::string, std::string, std::string>;  // source, event, target

// The overlay's transitions by (source, event, target), each with its step numbers (1-based).
std::map<move, std::vector<int>> steps_of(const graph_overlay* o) {
  std::map<move, std::vector<int>> steps;
  if (o == nullptr) return steps;
  int n = 0;
  for (const auto& t : o->transitions) steps[{t.from, t.event, t.to}].push_back(++n);
  return steps;
}

std::string numbers(const std::vector<int>& steps) {
  std::string out;
  for (int n : steps) out += (out.empty() ? "#" : ", #") + std::to_string(n);
  return "(" + out + ")";
}

// event, [guard], / action — on lines of their own (`sep` "\n") or on one line (" ").
std::string row_label(const graph_row& r, std::string_view sep) {
  std::string label = r.event;
  if (!r.guard.empty()) label += std::string(sep) + "[" + r.guard + "]";
  if (!r.action.empty()) label += std::string(sep) + "/ " + r.action;
  return label;
}

std::string dot_state(const graph& g, const std::string& s, const graph_overlay* o,
                      const std::set<std::string>& visited) {
  std::vector<std::string> attrs;
  if (s == g.initial) {
    attrs = {"shape=circle", "label=\"\"", "width=0.25", "style=filled", "fillcolor=black"};
  } else {
    if (g.is_terminal(s)) attrs.push_back("peripheries=2");
    if (o != nullptr && s == o->current)
      attrs.insert(attrs.end(), {"style=\"rounded,filled,bold\"", "fillcolor=\"#ffd966\"", "penwidth=2.5"});
    else if (visited.contains(s))
      attrs.push_back("color=\"#d62728\"");
  }
  std::string out = "  " + dot_quote(s);
  for (std::size_t i = 0; i < attrs.size(); ++i) out += (i == 0 ? " [" : ", ") + attrs[i];
  return out + (attrs.empty() ? ";\n" : "];\n");
}

constexpr const char* taken_style = "color=\"#d62728\", fontcolor=\"#d62728\", penwidth=3";

}  // namespace

std::string to_dot(const graph& g, const graph_overlay* o) {
  auto taken = steps_of(o);  // what remains after the rows are moves no row draws
  std::set<std::string> visited;
  for (const auto& [m, steps] : taken) visited.insert({std::get<0>(m), std::get<2>(m)});

  std::string out =
      "digraph " + dot_quote(g.name) + " {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  if (o != nullptr && !o->title.empty())
    out += "  labelloc=t;\n  label=" + dot_quote(o->title) + ";\n";
  else if (g.version != 1)  // a version after the first says which it is
    out += "  labelloc=t;\n  label=" + dot_quote(g.name + " v" + std::to_string(g.version)) + ";\n";
  for (const auto& s : g.states) out += dot_state(g, s, o, visited);
  for (const auto& r : g.rows) {
    std::string label = row_label(r, "\n");
    std::string attrs = r.internal ? ", style=dashed" : "";
    if (auto it = taken.find({r.source, r.event, r.target}); it != taken.end()) {
      label += "\n" + numbers(it->second);
      attrs += std::string(", ") + taken_style;
      taken.erase(it);
    }
    out += "  " + dot_quote(r.source) + " -> " + dot_quote(r.target) + " [label=" + dot_quote(label) + attrs +
           "];\n";
  }
  for (const auto& [m, steps] : taken) {  // operator moves, or rows the graph no longer has
    const auto& [from, event, to] = m;
    out += "  " + dot_quote(from) + " -> " + dot_quote(to) +
           " [label=" + dot_quote(event + "\n" + numbers(steps)) + ", style=\"dashed,bold\", " + taken_style +
           "];\n";
  }
  if (o != nullptr && !o->timers.empty() && !o->current.empty()) {
    std::string note = "armed timers:";
    for (const auto& t : o->timers) note += "\n" + t;
    out += "  \"saga:timers\" [shape=note, style=filled, fillcolor=\"#fff2cc\", label=" + dot_quote(note) +
           "];\n";
    out += "  \"saga:timers\" -> " + dot_quote(o->current) + " [style=dotted, arrowhead=none];\n";
  }
  return out + "}\n";
}

std::string to_mermaid(const graph& g, const graph_overlay* o) {
  auto taken = steps_of(o);
  std::string out;
  if (g.version != 1)
    out += "---\ntitle: " + mermaid_label(g.name + " v" + std::to_string(g.version)) + "\n---\n";
  out += "stateDiagram-v2\n";
  for (const auto& s : g.states)
    if (s != g.initial) out += "  state \"" + mermaid_label(s) + "\" as " + mermaid_id(s) + "\n";
  const auto from_id = [&](const std::string& s) {
    return s == g.initial ? std::string("[*]") : mermaid_id(s);
  };
  std::vector<std::size_t> bold;  // indexes of the links the saga took (linkStyle counts every arrow)
  std::size_t link = 0;
  for (const auto& r : g.rows) {
    std::string label = row_label(r, " ");
    if (r.internal) label += " (internal)";
    if (auto it = taken.find({r.source, r.event, r.target}); it != taken.end()) {
      label += " " + numbers(it->second);
      bold.push_back(link);
      taken.erase(it);
    }
    out += "  " + from_id(r.source) + " --> " + mermaid_id(r.target) + " : " + mermaid_label(label) + "\n";
    ++link;
  }
  for (const auto& t : g.terminal) {
    out += "  " + mermaid_id(t) + " --> [*]\n";
    ++link;
  }
  for (const auto& [m, steps] : taken) {
    const auto& [from, event, to] = m;
    out += "  " + from_id(from) + " --> " + mermaid_id(to) + " : " +
           mermaid_label(event + " " + numbers(steps)) + "\n";
    bold.push_back(link++);
  }
  if (o == nullptr || o->current.empty() || o->current == g.initial) return out;
  out += "  classDef current fill:#ffd966,stroke:#333,stroke-width:3px\n";
  out += "  class " + mermaid_id(o->current) + " current\n";
  if (!bold.empty()) {
    out += "  linkStyle ";
    for (std::size_t i = 0; i < bold.size(); ++i) out += (i ? "," : "") + std::to_string(bold[i]);
    out += " stroke:#d62728,stroke-width:3px\n";
  }
  if (!o->timers.empty()) {
    std::string note;
    for (const auto& t : o->timers) note += (note.empty() ? "armed timer " : ", ") + t;
    out += "  note right of " + mermaid_id(o->current) + " : " + mermaid_label(note) + "\n";
  }
  return out;
}

}  // namespace saga
