// A plugin that hands back a null definition.
#include <saga/plugin.hpp>

SAGA_PLUGIN("null") {
  out.push_back(nullptr);
}
