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

// What one saga did (the JSON of catalog::show), as the renderer's overlay.
saga::graph_overlay overlay_of(const saga::graph& g, const json& instance) {
  saga::graph_overlay o;
  o.current = instance.value("state", std::string());
  o.title = g.name + (g.version == 1 ? "" : " v" + std::to_string(g.version)) + " / " +
            instance.value("id", std::string()) + ": " + o.current;
  for (const auto& h : instance.at("history")) {
    if (h.value("outcome", std::string()) != "transitioned") continue;
    // The moves made on the version drawn (a migrated saga's earlier ones are another graph's).
    if (h.value("definition_version", std::int64_t{1}) != g.version) continue;
    o.transitions.push_back(
        {h.value("from", std::string()), h.value("event_type", std::string()), h.value("to", std::string())});
  }
  for (const auto& t : instance.at("timers"))
    o.timers.push_back(t.value("name", std::string()) + " due " + t.value("due", std::string()));
  return o;
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

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
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
  if (instance == nullptr) return saga::to_dot(g);
  const auto o = overlay_of(g, *instance);
  return saga::to_dot(g, &o);
}

std::string graph_mermaid(const saga::graph& g, const json* instance) {
  if (instance == nullptr) return saga::to_mermaid(g);
  const auto o = overlay_of(g, *instance);
  return saga::to_mermaid(g, &o);
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
