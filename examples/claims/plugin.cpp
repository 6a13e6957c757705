// libclaims.so — insurance_claim as a plugin for the packaged sagad:
//   sagad --plugin /path/libclaims.so
// The one entry point SAGA_PLUGIN writes is all the library exports (docs/claims.md).
#include <saga/plugin.hpp>

#include "insurance_claim.hpp"

SAGA_PLUGIN("claims") {
  out.push_back(claims::insurance_claim());
}
