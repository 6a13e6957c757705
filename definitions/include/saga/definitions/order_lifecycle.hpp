#pragma once
// order_lifecycle — the order saga of DESIGN.md:
//   placed -> paid -> awaiting_shipment -> shipped -> delivering -> done,
// with cancellation, payment failure, the payment timeout (15 min), the
// shipment deadline (48 h) and refunds (three attempts) as compensation paths.
// Its event type names are a published contract: see docs/workflows.md.

#include <memory>

#include "saga/definition.hpp"

namespace saga::definitions {

std::shared_ptr<const saga::definition> order_lifecycle();

}  // namespace saga::definitions
