// A plugin whose definitions throw while they are built.
#include <saga/plugin.hpp>

#include <stdexcept>

SAGA_PLUGIN("throws") {
  throw std::runtime_error("no claims database configured");
}
