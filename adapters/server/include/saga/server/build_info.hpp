#pragma once
// saga::server's build identity: the saga release this library belongs to
// (SAGA_VERSION, CMake's PROJECT_VERSION) and the git revision of the tree it
// was built from (`git describe --always --dirty` at build time; "unknown"
// when the tree is not a git checkout or git is missing). `--version` prints
// them and the server logs them at start (docs/operations.md, "Version").
//
// The revision lives in one small source generated in the build tree at every
// build (cmake/saga_revision.cmake), rewritten only when it changes: a new
// commit recompiles that file alone. Constants: safe from any thread.

#include <string>
#include <string_view>

namespace saga::server {

// SAGA_VERSION, e.g. "0.1.0".
std::string_view version() noexcept;

// e.g. "cea36c9", "v0.1.0-3-gcea36c9-dirty", or "unknown".
std::string_view revision() noexcept;

// "<program> <version> (revision <revision>)": the first line of --version.
std::string version_line(std::string_view program);

}  // namespace saga::server
