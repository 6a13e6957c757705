// A plugin that says it was built against another saga version (and, with
// WRONG_ABI, another ABI): written by hand the way an older SAGA_PLUGIN would.
#include <saga/plugin.hpp>

#include "saga/definitions/account_lockout.hpp"

namespace {
void definitions(std::vector<std::shared_ptr<const saga::definition>>& out) {
  out.push_back(saga::definitions::account_lockout());
}
}  // namespace

extern "C" __attribute__((visibility("default"))) const saga_plugin_v1* saga_plugin_entry_v1() {
#ifdef WRONG_ABI
  static const saga_plugin_v1 p{"saga-plugin-1; libc++ 16; nlohmann-json 3.11; saga 0.1", SAGA_VERSION,
                                "wrong-abi", &definitions};
#else
  static const saga_plugin_v1 p{SAGA_PLUGIN_ABI_TAG, "99.0.0", "wrong-version", &definitions};
#endif
  return &p;
}
