// A well-formed plugin: one shipped definition, exported with SAGA_PLUGIN.
#include <saga/plugin.hpp>

#include "saga/definitions/account_lockout.hpp"

SAGA_PLUGIN("lockout-test") {
  out.push_back(saga::definitions::account_lockout());
}
