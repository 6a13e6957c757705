// A plugin with a static constructor that throws while the library is loaded:
// the exception usually cannot leave dlopen() and ends the process that loads it (some builds,
// clang with AddressSanitizer, let it out: it is refused either way).
#include <saga/plugin.hpp>

#include <stdexcept>

#include "saga/definitions/account_lockout.hpp"

namespace {
struct explodes {
  explodes() { throw std::runtime_error("static constructor failed"); }
};
const explodes boom;
}  // namespace

SAGA_PLUGIN("static-throw") {
  out.push_back(saga::definitions::account_lockout());
}
