// claimsd — a daemon of one's own: saga::server running insurance_claim, with
// sagad's options, config file, SAGA_* variables and --help (docs/claims.md).
#include <saga/server/server.hpp>

#include "insurance_claim.hpp"

int main(int argc, char** argv) {
  auto parsed = saga::server::parse_options(argc, argv, "claimsd",
                                            "claimsd: runs insurance claims (built-in: insurance_claim; "
                                            "more with --plugin).");
  if (!parsed.opts) return parsed.exit_code;  // after --help: 0; bad options: 2
  saga::server::server server(*parsed.opts);
  server.add(claims::insurance_claim());  // source "built-in"
  return server.main();                   // --plugin, --list-definitions, SIGTERM; exit 0 or 1
}
