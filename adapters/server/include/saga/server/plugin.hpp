#pragma once
// saga::server::load_plugin — loads the workflow definitions a shared library
// exports with SAGA_PLUGIN (saga/plugin.hpp), for `sagad --plugin PATH`.
//
// Contract: either returns the plugin's definitions, or throws plugin_error
// with one line that names the file and what is wrong — the file is missing,
// is not a loadable library, has no saga entry point, was built for another
// saga version or ABI, its code threw or crashed while loading, or it returned
// no or null definitions. Nothing a plugin does while being checked can take
// the caller down: the library is first loaded and asked for its definitions
// in a short-lived child process (fork), so a crash or an exception escaping a
// static constructor is reported as a refusal; only then is it loaded here.
// A loaded library stays loaded for the life of the process (its code runs
// every definition it returned).
//
// Call it before starting threads (sagad does so first thing).

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "saga/definition.hpp"

namespace saga::server {

class plugin_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct plugin {
  std::string path;  // as given
  std::string name;  // the plugin's own name (SAGA_PLUGIN's argument)
  std::vector<std::shared_ptr<const saga::definition>> definitions;
};

plugin load_plugin(const std::string& path);

}  // namespace saga::server
