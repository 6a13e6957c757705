#pragma once
// saga/plugin.hpp — how a shared library hands its workflow definitions to a
// packaged sagad: `sagad --plugin /path/libclaims.so` (docs/run-your-workflow.md).
//
// A plugin is built against the installed headers (find_package(saga)) and
// exports one C entry point, written by SAGA_PLUGIN:
//
//   #include <saga/plugin.hpp>
//   #include "insurance_claim.hpp"
//
//   SAGA_PLUGIN("claims") { out.push_back(claims::insurance_claim()); }
//
// Definitions cross the library boundary as C++ objects (saga::definition,
// nlohmann::json, std::string), so a plugin must be built with the same saga
// version (major.minor), the same standard library ABI and the same
// nlohmann-json version as the sagad that loads it. SAGA_PLUGIN_ABI_TAG spells
// that out; sagad compares the plugin's tag and version with its own before it
// calls anything else in the library, and refuses a mismatch with one line.
// The body may throw: sagad then refuses the plugin and names the exception.

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/definition.hpp"
#include "saga/version.hpp"

#define SAGA_PLUGIN_STR2(x) #x
#define SAGA_PLUGIN_STR(x) SAGA_PLUGIN_STR2(x)

#if defined(__GLIBCXX__)
#define SAGA_PLUGIN_STDLIB \
  "libstdc++ " SAGA_PLUGIN_STR(_GLIBCXX_RELEASE) " cxx11abi=" SAGA_PLUGIN_STR(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define SAGA_PLUGIN_STDLIB "libc++ " SAGA_PLUGIN_STR(_LIBCPP_VERSION)
#else
#define SAGA_PLUGIN_STDLIB "unknown-stdlib"
#endif

// What must match between sagad and a plugin, besides the saga version.
#define SAGA_PLUGIN_ABI_TAG                                                            \
  "saga-plugin-1; " SAGA_PLUGIN_STDLIB                                                 \
  "; nlohmann-json " SAGA_PLUGIN_STR(NLOHMANN_JSON_VERSION_MAJOR) "." SAGA_PLUGIN_STR( \
      NLOHMANN_JSON_VERSION_MINOR) "; saga " SAGA_PLUGIN_STR(SAGA_VERSION_MAJOR) "." SAGA_PLUGIN_STR(SAGA_VERSION_MINOR)

extern "C" {
// What the entry point returns; its layout never changes within "saga-plugin-1".
struct saga_plugin_v1 {
  const char* abi_tag;       // SAGA_PLUGIN_ABI_TAG as the plugin was compiled
  const char* saga_version;  // SAGA_VERSION as the plugin was compiled
  const char* name;          // the plugin's name, for logs and --list-definitions
  // Appends the plugin's definitions to `out`; may throw.
  void (*definitions)(std::vector<std::shared_ptr<const saga::definition>>& out);
};
}

// The entry point's name, looked up with dlsym().
#define SAGA_PLUGIN_ENTRY "saga_plugin_entry_v1"

#define SAGA_PLUGIN(plugin_name)                                                                   \
  static void saga_plugin_definitions_(std::vector<std::shared_ptr<const saga::definition>>& out); \
  extern "C" __attribute__((visibility("default"))) const saga_plugin_v1* saga_plugin_entry_v1() { \
    static const saga_plugin_v1 plugin{SAGA_PLUGIN_ABI_TAG, SAGA_VERSION, plugin_name,             \
                                       &saga_plugin_definitions_};                                 \
    return &plugin;                                                                                \
  }                                                                                                \
  static void saga_plugin_definitions_(std::vector<std::shared_ptr<const saga::definition>>& out)
