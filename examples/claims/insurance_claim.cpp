#include "insurance_claim.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "saga/dsl.hpp"

namespace claims {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::Row;

// ---- saga data ----------------------------------------------------------------

struct claim_data {
  std::string claim_id;
  std::string policy_id;
  std::int64_t amount = 0;  // minor units
  std::string currency;
  std::string assessment_reason;  // the assessor's reason, if any
  std::string payout_id;          // stable across payout retries
  int payout_attempt = 0;         // attempt number of the last payout request
  std::string payout_failure;     // reason of the last failed payout, if any
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(claim_data, claim_id, policy_id, amount, currency,
                                                assessment_reason, payout_id, payout_attempt, payout_failure)

// ---- events -------------------------------------------------------------------

// claim.filed carries the claim; the saga keeps it and carries it on.
struct claim_filed : dsl::event<"claim.filed"> {
  claim_data claim;
};
void from_json(const nlohmann::json& j, claim_filed& e) {
  auto& c = e.claim;
  c.claim_id = dsl::optional_string_field(j, "claim_id");
  c.policy_id = dsl::string_field(j, "policy_id");
  c.amount = dsl::integer_field(j, "amount");
  if (c.amount <= 0) throw std::invalid_argument("data 'amount': must be positive (minor units)");
  c.currency = dsl::string_field(j, "currency");
  if (c.currency.size() != 3 ||
      c.currency.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos)
    throw std::invalid_argument("data 'currency': must be an ISO 4217 code (three capital letters)");
}

// claim.assessed carries the assessor's decision: "approved" or "rejected".
// Any other value is refused here, so the guards below see only those two.
struct claim_assessed : dsl::event<"claim.assessed"> {
  std::string decision;
  std::string reason;
};
void from_json(const nlohmann::json& j, claim_assessed& e) {
  e.decision = dsl::string_field(j, "decision");
  if (e.decision != "approved" && e.decision != "rejected")
    throw std::invalid_argument("data 'decision': must be \"approved\" or \"rejected\"");
  e.reason = dsl::optional_string_field(j, "reason");
}

struct payout_failed : dsl::event<"claim.payout.failed"> {
  std::string reason;
};
void from_json(const nlohmann::json& j, payout_failed& e) {
  e.reason = dsl::optional_string_field(j, "reason");
}

struct claim_withdrawn : dsl::event<"claim.withdrawn"> {
  std::string reason;
};
void from_json(const nlohmann::json& j, claim_withdrawn& e) {
  e.reason = dsl::optional_string_field(j, "reason");
}

using payout_succeeded = dsl::event<"claim.payout.succeeded">;

using escalation = dsl::timer<"escalation">;

// ---- events it emits (dsl::emit<E>: a typo in a name does not compile) ----------

using claim_payout_requested = dsl::event<"claim.payout.requested">;
using claim_withdrawn_confirmed = dsl::event<"claim.withdrawn.confirmed">;
using claim_assessment_requested = dsl::event<"claim.assessment.requested">;
using claim_rejected = dsl::event<"claim.rejected">;
using claim_escalated = dsl::event<"claim.escalated">;
using claim_closed = dsl::event<"claim.closed">;
using claim_needs_attention = dsl::event<"claim.needs_attention">;

// ---- states -------------------------------------------------------------------

using fresh = dsl::state<"new">;
using assessing = dsl::state<"assessing">;
using paying = dsl::state<"paying">;
using paid = dsl::state<"paid">;
using rejected = dsl::state<"rejected">;
using withdrawn = dsl::state<"withdrawn">;
using needs_attention = dsl::state<"needs_attention">;

constexpr int max_payout_attempts = 3;
constexpr std::int64_t escalation_after = dsl::days(14);

// ---- guards -------------------------------------------------------------------

struct decision_approved {
  static constexpr std::string_view name = "decision_approved";
  template <class F, class S, class T>
  bool operator()(const claim_assessed& e, F&, S&, T&) const {
    return e.decision == "approved";
  }
};

struct decision_rejected {
  static constexpr std::string_view name = "decision_rejected";
  template <class F, class S, class T>
  bool operator()(const claim_assessed& e, F&, S&, T&) const {
    return e.decision == "rejected";
  }
};

struct payout_attempts_left {
  static constexpr std::string_view name = "payout_attempts_left";
  template <class E, class F, class S, class T>
  bool operator()(const E&, F& fsm, S&, T&) const {
    return fsm.data().payout_attempt < max_payout_attempts;
  }
};

// ---- actions ------------------------------------------------------------------

// The subject is the claim id: a claim.filed whose data names another claim is
// a sender's mistake, refused rather than filed under the wrong key.
struct keep_claim {
  static constexpr std::string_view name = "keep_claim";
  template <class F, class S, class T>
  void operator()(const claim_filed& e, F& fsm, S&, T&) const {
    const std::string& subject = fsm.incoming().subject;
    if (!e.claim.claim_id.empty() && e.claim.claim_id != subject)
      throw std::invalid_argument("data 'claim_id': '" + e.claim.claim_id + "' is not the subject '" +
                                  subject + "'");
    fsm.data() = e.claim;
    fsm.data().claim_id = subject;
  }
};

struct keep_assessment {
  static constexpr std::string_view name = "keep_assessment";
  template <class F, class S, class T>
  void operator()(const claim_assessed& e, F& fsm, S&, T&) const {
    fsm.data().assessment_reason = e.reason;
  }
};

// The payout_id is derived from the saga's key, so that it is the same on
// every retry (the payment service deduplicates on it) and two claims never
// share one.
struct next_payout_attempt {
  static constexpr std::string_view name = "next_payout_attempt";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    auto& d = fsm.data();
    if (d.payout_id.empty()) d.payout_id = fsm.incoming().subject + ":payout";
    ++d.payout_attempt;
  }
};

struct record_payout_failure {
  static constexpr std::string_view name = "record_payout_failure";
  template <class F, class S, class T>
  void operator()(const payout_failed& e, F& fsm, S&, T&) const {
    fsm.data().payout_failure = e.reason;
  }
};

// ---- follow-on event data -------------------------------------------------------

struct payout_request {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    j["payout_id"] = fsm.data().payout_id;
    j["attempt"] = fsm.data().payout_attempt;
    return j;
  }
};

struct rejection_notice {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    if (!fsm.data().assessment_reason.empty()) j["reason"] = fsm.data().assessment_reason;
    return j;
  }
};

struct closing_notice {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    j["payout_id"] = fsm.data().payout_id;
    return j;
  }
};

struct attention_notice {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    j["payout_id"] = fsm.data().payout_id;
    j["attempts"] = fsm.data().payout_attempt;
    if (!fsm.data().payout_failure.empty()) j["reason"] = fsm.data().payout_failure;
    return j;
  }
};

// Confirms a withdrawal by the claimant (claim.withdrawn) or by an operator
// (saga.operator.abort); both may give a reason in data.reason.
struct withdrawal_notice {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E& e) const {
    auto j = fsm.carried_data();
    if constexpr (std::is_same_v<E, claim_withdrawn>) {
      j["withdrawn_by"] = "claimant";
      if (!e.reason.empty()) j["reason"] = e.reason;
    } else {
      j["withdrawn_by"] = "operator";
      const auto reason = dsl::optional_string_field(fsm.incoming().data, "reason");
      if (!reason.empty()) j["reason"] = reason;
    }
    return j;
  }
};

using request_payout = dsl::actions<next_payout_attempt, dsl::emit<claim_payout_requested, payout_request>>;
using confirm_withdrawal =
    dsl::actions<dsl::disarm<escalation>, dsl::emit<claim_withdrawn_confirmed, withdrawal_notice>>;

// ---- the machine -------------------------------------------------------------

struct claim_machine : dsl::machine<claim_machine, claim_data> {
  static constexpr std::string_view name = "insurance_claim";
  using initial_state = fresh;

  // clang-format off
  using transition_table = dsl::table<
    //   source     event             target           action                                                                    guard
    Row< fresh,     claim_filed,      assessing,       dsl::actions<keep_claim, dsl::emit<claim_assessment_requested>,
                                                                    dsl::arm<escalation, escalation_after>>,                 none >,
    Row< assessing, claim_assessed,   paying,          dsl::actions<dsl::disarm<escalation>, keep_assessment, request_payout>, decision_approved >,
    Row< assessing, claim_assessed,   rejected,        dsl::actions<dsl::disarm<escalation>, keep_assessment,
                                                                    dsl::emit<claim_rejected, rejection_notice>>,             decision_rejected >,
    Row< assessing, escalation,       none,            dsl::emit<claim_escalated>,                                              none >,
    Row< assessing, claim_withdrawn,  withdrawn,       confirm_withdrawal,                                                      none >,
    Row< paying,    payout_succeeded, paid,            dsl::emit<claim_closed, closing_notice>,                                 none >,
    Row< paying,    payout_failed,    none,            dsl::actions<record_payout_failure, request_payout>,                     payout_attempts_left >,
    Row< paying,    payout_failed,    needs_attention, dsl::actions<record_payout_failure,
                                                                    dsl::emit<claim_needs_attention, attention_notice>>,      dsl::not_<payout_attempts_left> >
  >;
  // clang-format on

  using consumes =
      dsl::types<claim_filed, claim_assessed, escalation, claim_withdrawn, payout_succeeded, payout_failed>;
  using starts = dsl::types<claim_filed>;
  using terminal = dsl::types<paid, rejected, withdrawn, needs_attention>;
  // The operator's abort withdraws the claim. In paying it does not call back a
  // payout already requested: claim.withdrawn.confirmed tells the payment side.
  using abort_state = withdrawn;
  using abort_actions = confirm_withdrawal;
  // After three failed payouts an operator settles the claim by hand.
  using attention_state = needs_attention;
  using resolution_targets = dsl::types<paid, rejected>;

  // Every follow-on event of a claim carries the claim on.
  static nlohmann::json carried(const claim_data& d) {
    return {
        {"claim_id", d.claim_id}, {"policy_id", d.policy_id}, {"amount", d.amount}, {"currency", d.currency}};
  }
};

}  // namespace

std::shared_ptr<const saga::definition> insurance_claim() {
  return dsl::make_definition<claim_machine>();
}

}  // namespace claims
