#pragma once
// account_lockout — three failed logins lock an account (DESIGN.md "The two
// workflows"): auth.login.failed counts failures within a 15-minute window
// that opens at the first failure; the third within the window locks the
// account for 30 minutes; auth.login.succeeded resets the count. The
// correlation key is the account id (`subject`). The saga never ends: an
// account goes back and forth between open and locked.
// Its event type names are a published contract: see docs/workflows.md.

#include <memory>

#include "saga/definition.hpp"

namespace saga::definitions {

std::shared_ptr<const saga::definition> account_lockout();

}  // namespace saga::definitions
