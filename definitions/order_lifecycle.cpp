#include "saga/definitions/order_lifecycle.hpp"

#include <cstdint>
#include <string>

#include "saga/dsl.hpp"

namespace saga::definitions {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::Row;

// ---- saga data ----------------------------------------------------------------

struct order_data {
  std::string order_id;
  std::int64_t amount = 0;
  std::string currency;
  std::string customer_id;
  nlohmann::json items = nlohmann::json::array();
  std::string refund_id;   // stable across refund retries
  int refund_attempt = 0;  // attempt number of the last refund request
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order_data, order_id, amount, currency, customer_id, items,
                                                refund_id, refund_attempt)

// ---- events -------------------------------------------------------------------

// order.placed carries the order; the saga keeps it and carries it on.
struct order_placed : dsl::event<"order.placed"> {
  order_data order;
};
void from_json(const nlohmann::json& j, order_placed& e) {
  auto& o = e.order;
  o.order_id = dsl::optional_string_field(j, "order_id");
  o.amount = dsl::integer_field(j, "amount");
  o.currency = dsl::string_field(j, "currency");
  o.customer_id = dsl::optional_string_field(j, "customer_id");
  o.items = j.value("items", nlohmann::json::array());
  if (!o.items.is_array()) throw std::invalid_argument("data 'items': must be an array");
}

using payment_succeeded = dsl::event<"payment.succeeded">;
using payment_failed = dsl::event<"payment.failed">;
using cancel_requested = dsl::event<"order.cancel.requested">;
using inventory_reserved = dsl::event<"inventory.reserved">;
using inventory_unavailable = dsl::event<"inventory.unavailable">;
using shipment_dispatched = dsl::event<"shipment.dispatched">;
using delivery_started = dsl::event<"delivery.started">;
using delivery_confirmed = dsl::event<"delivery.confirmed">;
using delivery_failed = dsl::event<"delivery.failed">;
using payment_refunded = dsl::event<"payment.refunded">;
using refund_failed = dsl::event<"payment.refund.failed">;

using payment_timeout = dsl::timer<"payment_timeout">;
using shipment_deadline = dsl::timer<"shipment_deadline">;

// ---- states -------------------------------------------------------------------

using fresh = dsl::state<"new">;
using placed = dsl::state<"placed">;
using paid = dsl::state<"paid">;
using awaiting_shipment = dsl::state<"awaiting_shipment">;
using shipped = dsl::state<"shipped">;
using delivering = dsl::state<"delivering">;
using done = dsl::state<"done">;
using cancelled = dsl::state<"cancelled">;
using refunding = dsl::state<"refunding">;
using needs_attention = dsl::state<"needs_attention">;

constexpr int max_refund_attempts = 3;

// ---- guards -------------------------------------------------------------------

struct refund_attempts_left {
  static constexpr std::string_view name = "refund_attempts_left";
  template <class E, class F, class S, class T>
  bool operator()(const E&, F& fsm, S&, T&) const {
    return fsm.data().refund_attempt < max_refund_attempts;
  }
};

// ---- actions ------------------------------------------------------------------

struct keep_order {
  static constexpr std::string_view name = "keep_order";
  template <class F, class S, class T>
  void operator()(const order_placed& e, F& fsm, S&, T&) const {
    fsm.data() = e.order;
    if (fsm.data().order_id.empty()) fsm.data().order_id = fsm.incoming().subject;
  }
};

// Refund requests carry a refund_id that stays the same across retries. It is
// derived from the saga's key, not from data.order_id: two orders whose senders
// put the same order_id in their data must not share a refund.
struct next_refund_attempt {
  static constexpr std::string_view name = "next_refund_attempt";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    auto& d = fsm.data();
    if (d.refund_id.empty()) d.refund_id = fsm.incoming().subject + ":refund";
    ++d.refund_attempt;
  }
};

struct refund_request {
  template <class F, class E>
  nlohmann::json operator()(F& fsm, const E&) const {
    auto j = fsm.carried_data();
    j["refund_id"] = fsm.data().refund_id;
    j["attempt"] = fsm.data().refund_attempt;
    return j;
  }
};

using request_refund =
    dsl::actions<next_refund_attempt, dsl::emit<"payment.refund.requested", refund_request>>;

// ---- the machine -------------------------------------------------------------

struct order_machine : dsl::machine<order_machine, order_data> {
  static constexpr std::string_view name = "order_lifecycle";
  using initial_state = fresh;

  // clang-format off
  using transition_table = boost::mpl::vector<
    //   source             event                  target             action                                                                          guard
    Row< fresh,             order_placed,          placed,            dsl::actions<keep_order, dsl::emit<"payment.requested">,
                                                                                   dsl::arm<payment_timeout, dsl::minutes(15)>>,                      none >,
    Row< placed,            payment_succeeded,     paid,              dsl::actions<dsl::disarm<payment_timeout>,
                                                                                   dsl::emit<"inventory.reservation.requested">>,                     none >,
    Row< placed,            payment_failed,        cancelled,         dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<"order.cancelled">>,      none >,
    Row< placed,            payment_timeout,       cancelled,         dsl::emit<"order.cancelled">,                                                   none >,
    Row< placed,            cancel_requested,      cancelled,         dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<"order.cancelled">>,      none >,
    Row< paid,              inventory_reserved,    awaiting_shipment, dsl::actions<dsl::emit<"shipment.requested">,
                                                                                   dsl::arm<shipment_deadline, dsl::hours(48)>>,                      none >,
    Row< paid,              inventory_unavailable, refunding,         request_refund,                                                                 none >,
    Row< paid,              cancel_requested,      refunding,         request_refund,                                                                 none >,
    Row< awaiting_shipment, cancel_requested,      refunding,         dsl::actions<dsl::disarm<shipment_deadline>, request_refund,
                                                                                   dsl::emit<"inventory.release.requested">>,                         none >,
    Row< awaiting_shipment, shipment_deadline,     awaiting_shipment, dsl::emit<"order.shipment.overdue">,                                            none >,
    Row< awaiting_shipment, shipment_dispatched,   shipped,           dsl::actions<dsl::disarm<shipment_deadline>, dsl::emit<"order.shipped">>,      none >,
    Row< shipped,           delivery_started,      delivering,        dsl::emit<"order.out_for_delivery">,                                            none >,
    Row< delivering,        delivery_confirmed,    done,              dsl::emit<"order.completed">,                                                   none >,
    Row< delivering,        delivery_failed,       refunding,         request_refund,                                                                 none >,
    Row< refunding,         inventory_reserved,    refunding,         dsl::emit<"inventory.release.requested">,                                       none >,
    Row< refunding,         payment_refunded,      cancelled,         dsl::emit<"order.cancelled">,                                                   none >,
    Row< refunding,         refund_failed,         refunding,         request_refund,                                                                 refund_attempts_left >,
    Row< refunding,         refund_failed,         needs_attention,   dsl::emit<"order.needs_attention">,                       dsl::not_<refund_attempts_left> >,
    Row< shipped,           cancel_requested,      none,              dsl::emit<"order.cancel.rejected">,                                             none >,
    Row< delivering,        cancel_requested,      none,              dsl::emit<"order.cancel.rejected">,                                             none >,
    Row< done,              cancel_requested,      none,              dsl::emit<"order.cancel.rejected">,                                             none >
  >;
  // clang-format on

  using consumes =
      dsl::types<order_placed, payment_succeeded, payment_failed, payment_timeout, cancel_requested,
                 inventory_reserved, inventory_unavailable, shipment_dispatched, delivery_started,
                 delivery_confirmed, delivery_failed, payment_refunded, refund_failed, shipment_deadline>;
  using starts = dsl::types<order_placed>;
  using terminal = dsl::types<done, cancelled, needs_attention>;
  using abort_state = cancelled;
  using abort_actions = dsl::actions<dsl::disarm<payment_timeout>, dsl::disarm<shipment_deadline>,
                                     dsl::emit<"order.cancelled">>;
  using attention_state = needs_attention;
  using resolution_targets = dsl::types<cancelled, done>;

  // Every follow-on event of an order carries the order on (DESIGN.md "Event data").
  static nlohmann::json carried(const order_data& d) {
    return {{"order_id", d.order_id},
            {"amount", d.amount},
            {"currency", d.currency},
            {"customer_id", d.customer_id},
            {"items", d.items}};
  }
};

}  // namespace

std::shared_ptr<const saga::definition> order_lifecycle() {
  return dsl::make_definition<order_machine>();
}

}  // namespace saga::definitions
