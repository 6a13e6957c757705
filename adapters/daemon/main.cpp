// sagad — the saga daemon: saga::server with the shipped definitions
// (saga::definitions) and any --plugin libraries. Runs in the foreground,
// logs to stderr, creates its database when missing. See docs/operations.md.
//
// Exit codes: 0 stopped by SIGTERM/SIGINT (or after --help, --version, --list-definitions);
// 1 could not start (a plugin refused, a definition provided twice, …) or failed; 2 bad options.
//
// The same file builds `sagad-test` (not installed): the server's test build
// with the SAGA_FAULT kill points and the hostile test definitions.

#include "saga/definitions/catalog.hpp"
#include "saga/server/server.hpp"
#include "saga/sqlite/store.hpp"
#if defined(SAGA_HOSTILE_DEFINITIONS)
#include "support/hostile_definitions.hpp"
#endif

int main(int argc, char** argv) {
  saga::sqlite::disable_memory_statistics();  // before any connection (saga/sqlite/store.hpp)
  auto parsed = saga::server::parse_options(
      argc, argv, "sagad",
      "sagad: runs sagas from the events sent to its ingress and publishes their follow-on events.\n"
      "Definitions: the shipped order_lifecycle, payment_notice and account_lockout (built-in), and those "
      "of\n"
      "each --plugin library; --definitions picks among them, --list-definitions shows them.");
  if (!parsed.opts) return parsed.exit_code;
  // Also before any connection: the page caches of the writer (32 MiB) and of replay (2 MiB) in
  // a pool of exact slots, resident from the start (saga/sqlite/store.hpp; docs/performance.md).
  if (!saga::server::is_postgres(parsed.opts->db)) saga::sqlite::pool_page_cache();
  saga::server::server server(*parsed.opts);
  for (const auto& name : saga::definitions::names())
    server.add(saga::definitions::by_name(name), "built-in");
#if defined(SAGA_HOSTILE_DEFINITIONS)
  server.add(saga::testing::hostile_definitions(), "test");
#endif
  return server.main();
}
