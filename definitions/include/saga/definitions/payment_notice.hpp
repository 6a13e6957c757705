#pragma once
// payment_notice — an insurance premium notice collected by the payment
// service (DESIGN.md "The two workflows"):
//   awaiting_payment -> paid, or, when the due date passes, overdue (a
//   reminder and a 14-day grace period) -> paid or lapsed (a policy lapse is
//   requested). The correlation key is the notice id (`subject`).
// Its event type names are a published contract: see docs/workflows.md.

#include <memory>

#include "saga/definition.hpp"

namespace saga::definitions {

std::shared_ptr<const saga::definition> payment_notice();

}  // namespace saga::definitions
