#pragma once
// insurance_claim — the reference workflow written outside the engine's tree
// (issue 12, examples/claims): a claim is filed, assessed, paid out or
// rejected.
//
//   claim.filed -> assessing -> (approved) paying -> paid
//                             -> (rejected) rejected
//                             -> (withdrawn) withdrawn
//   paying: three payout attempts, then needs_attention;
//   assessing: a 14-day escalation timer (claim.escalated).
//
// The correlation key is the CloudEvent's subject, the claim id. Its event
// catalogue and diagram are in docs/claims.md. The Boost.MSM table stays in
// insurance_claim.cpp: this header is all a daemon, a plugin or a test needs.

#include <memory>

#include "saga/definition.hpp"

namespace claims {

// The definition `insurance_claim`, ready for saga::engine::add. Each call
// builds a new, immutable definition; it is safe to share across threads.
std::shared_ptr<const saga::definition> insurance_claim();

}  // namespace claims
