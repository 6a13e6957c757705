#include "saga/definitions/payment_notice.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "saga/codec.hpp"
#include "saga/dsl.hpp"

namespace saga::definitions {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::row;

// ---- saga data ----------------------------------------------------------------

struct notice_data {
  std::string notice_id;
  std::string policy_id;
  std::int64_t amount = 0;  // minor units
  std::string currency;
  std::string due;          // RFC 3339, as the payment service sent it
  std::int64_t due_ms = 0;  // the same instant, Unix ms: when the due-date timer fires
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(notice_data, notice_id, policy_id, amount, currency, due,
                                                due_ms)

// ---- events -------------------------------------------------------------------

// payment_notice.created carries the notice; the saga keeps it and carries it on.
// `due` must be an RFC 3339 date-time: the due-date timer is armed at it.
struct notice_created : dsl::event<"payment_notice.created"> {
  notice_data notice;
};
void from_json(const nlohmann::json& j, notice_created& e) {
  auto& n = e.notice;
  n.notice_id = dsl::optional_string_field(j, "notice_id");
  n.policy_id = dsl::string_field(j, "policy_id");
  n.amount = dsl::integer_field(j, "amount");
  n.currency = dsl::string_field(j, "currency");
  n.due = dsl::string_field(j, "due");
  const auto due_ms = saga::parse_time(n.due);
  if (!due_ms)
    throw std::invalid_argument("data 'due': must be an RFC 3339 date-time, like 2026-02-01T00:00:00Z");
  n.due_ms = *due_ms;
}

using premium_paid = dsl::event<"premium.paid">;

using due_date = dsl::timer<"due_date">;
using grace = dsl::timer<"grace">;

// ---- events it emits (dsl::emit<E>: a typo in a name does not compile) ----------

using payment_notice_settled = dsl::event<"payment_notice.settled">;
using payment_notice_reminder_requested = dsl::event<"payment_notice.reminder.requested">;
using policy_lapse_requested = dsl::event<"policy.lapse.requested">;

// ---- states -------------------------------------------------------------------

using fresh = dsl::state<"new">;
using awaiting_payment = dsl::state<"awaiting_payment">;
using overdue = dsl::state<"overdue">;
using paid = dsl::state<"paid">;
using lapsed = dsl::state<"lapsed">;

constexpr std::int64_t grace_period = dsl::days(14);

// ---- guards -------------------------------------------------------------------

// (none: every row of this table is unconditional)

// ---- actions ------------------------------------------------------------------

struct keep_notice {
  static constexpr std::string_view name = "keep_notice";
  template <class F, class S, class T>
  void operator()(const notice_created& e, F& fsm, S&, T&) const {
    fsm.data() = e.notice;
    if (fsm.data().notice_id.empty()) fsm.data().notice_id = fsm.incoming().subject;
  }
};

// When the due-date timer fires: the notice's `due`, as Unix ms.
struct at_due {
  static constexpr std::string_view name = "due";
  std::int64_t operator()(const notice_data& d) const { return d.due_ms; }
};

// ---- the machine -------------------------------------------------------------

struct notice_machine : dsl::machine<notice_machine, notice_data> {
  static constexpr std::string_view name = "payment_notice";
  using initial_state = fresh;

  // consumes, starts and terminal come from the table (paid and lapsed: no row leaves them).
  // clang-format off
  using transition_table = dsl::table<
    //   source            event           target            action
    row< fresh,            notice_created, awaiting_payment, dsl::actions<keep_notice, dsl::arm_at<due_date, at_due>> >,
    row< awaiting_payment, premium_paid,   paid,             dsl::actions<dsl::disarm<due_date>, dsl::emit<payment_notice_settled>> >,
    row< awaiting_payment, due_date,       overdue,          dsl::actions<dsl::emit<payment_notice_reminder_requested>,
                                                                          dsl::arm<grace, grace_period>> >,
    row< overdue,          premium_paid,   paid,             dsl::actions<dsl::disarm<grace>, dsl::emit<payment_notice_settled>> >,
    row< overdue,          grace,          lapsed,           dsl::emit<policy_lapse_requested> >
  >;
  // clang-format on

  // No abort state, deliberately: saga.operator.abort is rejected for this
  // definition ("definition 'payment_notice' has no abort state"). None of the
  // states fits: `lapsed` would claim a lapse that was never requested, `paid`
  // a payment that never came, and a dedicated `cancelled` state reachable only
  // by the operator would fail the registration check (an unreachable state) —
  // making it reachable needs a domain event (say payment_notice.cancelled)
  // that the published catalogue does not have. A wrong notice is settled or
  // lapses through its own events.

  // Every follow-on event of a notice carries the notice on.
  static nlohmann::json carried(const notice_data& d) {
    return {{"notice_id", d.notice_id},
            {"policy_id", d.policy_id},
            {"amount", d.amount},
            {"currency", d.currency},
            {"due", d.due}};
  }
};

}  // namespace

std::shared_ptr<const saga::definition> payment_notice() {
  return dsl::make_definition<notice_machine>();
}

}  // namespace saga::definitions
