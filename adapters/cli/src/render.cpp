#include "render.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <tuple>

#include "catalog.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace sagactl {

namespace {

using json = nlohmann::json;

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;  // count UTF-8 lead bytes only
  return n;
}

// A DOT string literal; a newline becomes DOT's centered line break.
std::string dot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + '"';
}

std::string mermaid_id(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

std::string mermaid_label(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == ':' || c == ';' || c == '#' || c == '"' || c == '\n' ? ' ' : c);
  return out;
}

// What one saga did, in graph terms.
struct path {
  // (source, event, target) -> the step numbers (1-based, among transitions)
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<int>> steps;
  std::set<std::string> visited;
  std::string current;
  std::vector<std::string> timers;  // "name due TIME"
};

path path_of(const json& instance) {
  path p;
  p.current = instance.value("state", std::string());
  int step = 0;
  for (const auto& h : instance.at("history")) {
    if (h.value("outcome", std::string()) != "transitioned") continue;
    const std::string from = h.value("from", std::string());
    const std::string to = h.value("to", std::string());
    p.steps[{from, h.value("event_type", std::string()), to}].push_back(++step);
    p.visited.insert(from);
    p.visited.insert(to);
  }
  for (const auto& t : instance.at("timers"))
    p.timers.push_back(t.value("name", std::string()) + " due " + t.value("due", std::string()));
  return p;
}

std::string numbers(const std::vector<int>& steps) {
  std::string out;
  for (int n : steps) out += (out.empty() ? "#" : ", #") + std::to_string(n);
  return out;
}

}  // namespace

std::string cell(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

std::string sender_cell(const json& sender) {
  return sender.is_string() && !sender.get<std::string>().empty() ? sender.get<std::string>() : "-";
}

void print_json(const json& j) {
  std::cout << j.dump(2) << '\n';
}

std::string human_duration(std::int64_t ms) {
  if (ms < 0) return "-" + human_duration(-ms);
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::int64_t s = ms / 1000;
  const std::int64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  auto part = [](std::int64_t v, const char* unit) { return v ? std::to_string(v) + unit : std::string(); };
  if (d) return std::to_string(d) + "d" + part(h, "h");
  if (h) return std::to_string(h) + "h" + part(m, "m");
  if (m) return std::to_string(m) + "m" + part(sec, "s");
  return std::to_string(sec) + "s";
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], display_width(row[i]));
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - display_width(row[i]) + 2, ' ');
    }
    out << line << '\n';
  };
  std::vector<std::string> upper;
  for (auto h : header) {
    std::transform(h.begin(), h.end(), h.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    upper.push_back(h);
  }
  print(upper);
  for (const auto& r : rows) print(r);
}

std::string graph_dot(const saga::graph& g, const json* instance) {
  path p;
  if (instance) p = path_of(*instance);
  std::string out =
      "digraph " + dot_quote(g.name) + " {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  if (instance) {
    out += "  labelloc=t;\n  label=" +
           dot_quote(g.name + " / " + instance->value("id", std::string()) + ": " + p.current) + ";\n";
  }
  for (const auto& s : g.states) {
    std::vector<std::string> attrs;
    if (s == g.initial) {
      attrs = {"shape=circle", "label=\"\"", "width=0.25", "style=filled", "fillcolor=black"};
    } else {
      if (g.is_terminal(s)) attrs.push_back("peripheries=2");
      if (instance && s == p.current) {
        attrs.insert(attrs.end(), {"style=\"rounded,filled,bold\"", "fillcolor=\"#ffd966\"", "penwidth=2.5"});
      } else if (p.visited.contains(s)) {
        attrs.push_back("color=\"#d62728\"");
      }
    }
    out += "  " + dot_quote(s);
    if (!attrs.empty()) {
      out += " [";
      for (std::size_t i = 0; i < attrs.size(); ++i) out += (i ? ", " : "") + attrs[i];
      out += "]";
    }
    out += ";\n";
  }
  auto taken = p.steps;  // what remains are moves that no table row drew
  for (const auto& r : g.rows) {
    std::string label = r.event;
    if (!r.guard.empty()) label += "\n[" + r.guard + "]";
    if (!r.action.empty()) label += "\n/ " + r.action;
    std::vector<std::string> attrs;
    if (r.internal) attrs.push_back("style=dashed");
    auto it = taken.find({r.source, r.event, r.target});
    if (it != taken.end()) {
      label += "\n(" + numbers(it->second) + ")";
      attrs.insert(attrs.end(), {"color=\"#d62728\"", "fontcolor=\"#d62728\"", "penwidth=3"});
      taken.erase(it);
    }
    out += "  " + dot_quote(r.source) + " -> " + dot_quote(r.target) + " [label=" + dot_quote(label);
    for (const auto& a : attrs) out += ", " + a;
    out += "];\n";
  }
  for (const auto& [key, steps] : taken) {  // operator actions, or rows the graph no longer has
    const auto& [from, event, to] = key;
    out += "  " + dot_quote(from) + " -> " + dot_quote(to) +
           " [label=" + dot_quote(event + "\n(" + numbers(steps) + ")") +
           ", style=\"dashed,bold\", color=\"#d62728\", fontcolor=\"#d62728\", penwidth=3];\n";
  }
  if (!p.timers.empty() && !p.current.empty()) {
    std::string note = "armed timers:";
    for (const auto& t : p.timers) note += "\n" + t;
    out += "  \"sagactl:timers\" [shape=note, style=filled, fillcolor=\"#fff2cc\", label=" + dot_quote(note) +
           "];\n";
    out += "  \"sagactl:timers\" -> " + dot_quote(p.current) + " [style=dotted, arrowhead=none];\n";
  }
  out += "}\n";
  return out;
}

std::string graph_mermaid(const saga::graph& g, const json* instance) {
  path p;
  if (instance) p = path_of(*instance);
  std::string out = "stateDiagram-v2\n";
  for (const auto& s : g.states)
    if (s != g.initial) out += "  state \"" + mermaid_label(s) + "\" as " + mermaid_id(s) + "\n";
  auto taken = p.steps;
  std::vector<std::size_t> bold;
  std::size_t link = 0;
  for (const auto& r : g.rows) {
    const std::string src = r.source == g.initial ? "[*]" : mermaid_id(r.source);
    std::string label = r.event;
    if (!r.guard.empty()) label += " [" + r.guard + "]";
    if (r.internal) label += " (internal)";
    auto it = taken.find({r.source, r.event, r.target});
    if (it != taken.end()) {
      label += " (" + numbers(it->second) + ")";
      bold.push_back(link);
      taken.erase(it);
    }
    out += "  " + src + " --> " + mermaid_id(r.target) + " : " + mermaid_label(label) + "\n";
    ++link;
  }
  for (const auto& t : g.terminal) {
    out += "  " + mermaid_id(t) + " --> [*]\n";
    ++link;
  }
  for (const auto& [key, steps] : taken) {
    const auto& [from, event, to] = key;
    const std::string src = from == g.initial ? "[*]" : mermaid_id(from);
    out += "  " + src + " --> " + mermaid_id(to) + " : " +
           mermaid_label(event + " (" + numbers(steps) + ")") + "\n";
    bold.push_back(link++);
  }
  if (instance && !p.current.empty() && p.current != g.initial) {
    out += "  classDef current fill:#ffd966,stroke:#333,stroke-width:3px\n";
    out += "  class " + mermaid_id(p.current) + " current\n";
    if (!bold.empty()) {
      out += "  linkStyle ";
      for (std::size_t i = 0; i < bold.size(); ++i) out += (i ? "," : "") + std::to_string(bold[i]);
      out += " stroke:#d62728,stroke-width:3px\n";
    }
    if (!p.timers.empty()) {
      std::string note;
      for (const auto& t : p.timers) note += (note.empty() ? "armed timer " : ", ") + t;
      out += "  note right of " + mermaid_id(p.current) + " : " + mermaid_label(note) + "\n";
    }
  }
  return out;
}

std::string dot_to_svg(const std::string& dot) {
  const temp_dir dir("sagactl-svg");
  const std::string in = dir.file("graph.dot"), out = dir.file("graph.svg"), err = dir.file("dot.err");
  write_new_file(in, dot);
  std::vector<std::string> argv = {"dot", "-Tsvg", "-o", out, in};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "dot", &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw failure(not_found,
                  "cannot run Graphviz's dot (" + std::string(std::strerror(rc)) + "): install graphviz");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  auto slurp = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string why = slurp(err);
    if (auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
      throw failure(not_found, "Graphviz's dot not found: install graphviz");
    throw failure(usage, "dot -Tsvg failed" + (why.empty() ? std::string() : ": " + why));
  }
  return slurp(out);
}

}  // namespace sagactl
