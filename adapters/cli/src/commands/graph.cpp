// sagactl graph: a definition's graph as DOT, Mermaid or SVG, optionally with one
// saga's path drawn on it.
//
// Where the graph comes from: with --plugin, the definition compiled into those
// libraries (loaded as sagad loads them: checked in a child process first), so
// that a workflow can be drawn before it ever ran; otherwise the graph stored in
// the database at registration (what the sagas ran with), and when the database
// does not exist or does not hold the name, the shipped definition of that name
// compiled into sagactl. The database (a SQLite file or a PostgreSQL URI) is
// opened only to read what it holds: never created.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/definitions/catalog.hpp"
#include "saga/server/plugin.hpp"

namespace sagactl::commands {

namespace {

struct graph_options {
  std::string name, format = "dot", instance, output;
  std::vector<std::string> plugins;
  std::optional<std::int64_t> version;
};

// The graph of `name` compiled into the plugin libraries. failure(usage) when a
// library is refused, failure(not_found) when none of them has the name.
saga::graph from_plugins(const std::vector<std::string>& paths, const std::string& name,
                         std::optional<std::int64_t> version) {
  std::vector<std::string> offered;
  std::optional<saga::graph> newest;
  for (const auto& path : paths) {
    saga::server::plugin p;
    try {
      p = saga::server::load_plugin(path);
    } catch (const saga::server::plugin_error& e) {
      throw failure(usage, e.what());
    }
    for (const auto& d : p.definitions) {
      const auto& gr = d->graph();
      if (d->name() == name && (!version || gr.version == *version) &&
          (!newest || gr.version > newest->version))
        newest = gr;
      offered.push_back(d->name() + " v" + std::to_string(gr.version));
    }
  }
  if (newest) return *newest;
  if (version)
    throw failure(not_found, "no version " + std::to_string(*version) + " of '" + name + "' in " +
                                 joined(paths) + " (it has: " + joined(offered) + ")");
  throw failure(not_found,
                "no definition '" + name + "' in " + joined(paths) + " (it has: " + joined(offered) + ")");
}

}  // namespace

run_fn graph(CLI::App& cmd) {
  auto o = std::make_shared<graph_options>();
  cmd.add_option("definition", o->name, "the definition's name")->required();
  cmd.add_option("--format", o->format, "dot, mermaid or svg (through Graphviz)")
      ->check(CLI::IsMember({"dot", "mermaid", "svg"}))
      ->capture_default_str();
  cmd.add_option("--instance", o->instance, "draw this saga's path, current state and armed timers");
  cmd.add_option("--output", o->output, "write to this file instead of stdout");
  cmd.add_option("--definition-version", o->version,
                 "draw this version of the definition (default: the newest; with --instance, the version "
                 "the saga runs on)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--plugin", o->plugins,
                 "draw the definition compiled into this library (built with SAGA_PLUGIN; repeatable) "
                 "rather than the database's");
  return [o](const globals& g) {
    std::unique_ptr<catalog> db;
    auto database = [&]() -> catalog& {
      if (!db) db = std::make_unique<catalog>(g.db, g.pg_schema);
      return *db;
    };
    std::optional<nlohmann::json> inst;
    if (!o->instance.empty()) inst = database().show(o->instance, o->name, wall_clock_ms());
    const auto version = o->version ? o->version
                         : inst     ? inst->at("definition_version").get<std::int64_t>()
                                    : o->version;
    std::optional<saga::graph> gr;
    if (!o->plugins.empty()) {
      gr = from_plugins(o->plugins, o->name, version);
    } else {
      // A PostgreSQL database is always asked (there is no file to look for).
      const bool have_db = saga::server::is_postgres(g.db) || std::filesystem::exists(g.db);
      const std::string db_name = saga::server::describe_db(g.db);
      if (have_db) gr = database().stored_graph(o->name, version);
      if (!gr && version && *version != 1)
        throw failure(not_found,
                      "no version " + std::to_string(*version) + " of '" + o->name + "' in " + db_name);
      if (!gr) {
        if (auto shipped = saga::definitions::by_name(o->name)) gr = shipped->graph();
      }
      if (!gr) {
        throw failure(not_found, "no definition '" + o->name + "' in " + db_name +
                                     (have_db ? "" : " (no such file)") + " nor among the shipped ones (" +
                                     joined(saga::definitions::names()) + "); a plugin's: --plugin LIB");
      }
    }
    const nlohmann::json* ip = inst ? &*inst : nullptr;
    std::string out = o->format == "mermaid" ? graph_mermaid(*gr, ip) : graph_dot(*gr, ip);
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
