#include "saga/server/graph_picture.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "saga/server/catalog.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace saga::server {

namespace {

using json = nlohmann::json;

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

std::string dot_to_svg(const std::string& dot, std::string_view folder_prefix) {
  const temp_dir dir(folder_prefix);
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

}  // namespace saga::server
