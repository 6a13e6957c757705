// order_lifecycle version 2, a plugin for sagad beside the built-in version 1 (docs/dsl.md,
// "Changing a workflow"):
//
//   sagad --plugin liborder_v2.so          # runs order_lifecycle v1 (built in) and v2
//   sagactl migrate --definition order_lifecycle --to 2 --dry-run
//
// What changed from version 1, and how running sagas come along:
//   * awaiting_shipment is called packing:   dsl::moves<"awaiting_shipment", packing>;
//   * delivering is gone: a shipped order is done once delivered (delivery.started is no longer
//     taken). Version 1 sagas in delivering have no mapping: they finish on version 1;
//   * the saga data keeps the amount as amount_minor: the transform amount_to_minor rewrites a
//     version 1 saga's data. The events other services see are unchanged (carried()).
//   * every other state keeps its name, and the timers theirs (they stay armed as they were).
#include <saga/plugin.hpp>

#include <cstdint>
#include <string>

#include "saga/dsl.hpp"

namespace order_v2 {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::row;

struct order_data {
  std::string order_id;
  std::int64_t amount_minor = 0;
  std::string currency;
  std::string customer_id;
  nlohmann::json items = nlohmann::json::array();
  std::string refund_id;
  int refund_attempt = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(order_data, order_id, amount_minor, currency, customer_id,
                                                items, refund_id, refund_attempt)

struct order_placed : dsl::event<"order.placed"> {
  order_data order;
};
void from_json(const nlohmann::json& j, order_placed& e) {
  auto& o = e.order;
  o.order_id = dsl::optional_string_field(j, "order_id");
  o.amount_minor = dsl::integer_field(j, "amount");
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
using delivery_confirmed = dsl::event<"delivery.confirmed">;
using delivery_failed = dsl::event<"delivery.failed">;
using payment_refunded = dsl::event<"payment.refunded">;
using refund_failed = dsl::event<"payment.refund.failed">;

using payment_timeout = dsl::timer<"payment_timeout">;
using shipment_deadline = dsl::timer<"shipment_deadline">;

using payment_refund_requested = dsl::event<"payment.refund.requested">;
using payment_requested = dsl::event<"payment.requested">;
using inventory_reservation_requested = dsl::event<"inventory.reservation.requested">;
using inventory_release_requested = dsl::event<"inventory.release.requested">;
using shipment_requested = dsl::event<"shipment.requested">;
using order_shipped = dsl::event<"order.shipped">;
using order_shipment_overdue = dsl::event<"order.shipment.overdue">;
using order_completed = dsl::event<"order.completed">;
using order_cancelled = dsl::event<"order.cancelled">;
using order_cancel_rejected = dsl::event<"order.cancel.rejected">;
using order_needs_attention = dsl::event<"order.needs_attention">;

using fresh = dsl::state<"new">;
using placed = dsl::state<"placed">;
using paid = dsl::state<"paid">;
using packing = dsl::state<"packing">;
using shipped = dsl::state<"shipped">;
using done = dsl::state<"done">;
using cancelled = dsl::state<"cancelled">;
using refunding = dsl::state<"refunding">;
using needs_attention = dsl::state<"needs_attention">;

struct keep_order {
  static constexpr std::string_view name = "keep_order";
  template <class F, class S, class T>
  void operator()(const order_placed& e, F& fsm, S&, T&) const {
    fsm.data() = e.order;
    if (fsm.data().order_id.empty()) fsm.data().order_id = fsm.incoming().subject;
  }
};

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

// Version 1 kept the amount as "amount"; version 2 as "amount_minor".
struct amount_to_minor {
  static constexpr std::string_view name = "amount_to_minor";
  void operator()(nlohmann::json& data) const {
    if (!data.contains("amount")) return;
    data["amount_minor"] = data["amount"];
    data.erase("amount");
  }
};

using request_refund = dsl::actions<next_refund_attempt, dsl::emit<payment_refund_requested, refund_request>>;
using retry_refund =
    dsl::retry<request_refund, 2, dsl::backoff<dsl::seconds(5), 2>, dsl::emit<order_needs_attention>>;
using take_order =
    dsl::actions<keep_order, dsl::emit<payment_requested>, dsl::arm<payment_timeout, dsl::minutes(15)>>;
using reserve_inventory =
    dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<inventory_reservation_requested>>;
using cancel_unpaid = dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<order_cancelled>>;
using request_shipment =
    dsl::actions<dsl::emit<shipment_requested>, dsl::arm<shipment_deadline, dsl::hours(48)>>;
using cancel_before_shipment =
    dsl::actions<dsl::disarm<shipment_deadline>, request_refund, dsl::emit<inventory_release_requested>>;
using ship = dsl::actions<dsl::disarm<shipment_deadline>, dsl::emit<order_shipped>>;
using cancel_refused = dsl::emit<order_cancel_rejected>;

struct order_machine : dsl::machine<order_machine, order_data> {
  static constexpr std::string_view name = "order_lifecycle";
  static constexpr std::int64_t version = 2;
  using migrations =
      dsl::types<dsl::migration<1, dsl::types<dsl::moves<"awaiting_shipment", packing>>, amount_to_minor>>;
  using initial_state = fresh;

  // clang-format off
  using transition_table = dsl::table<
    row< fresh,     order_placed,          placed,          take_order >,
    row< placed,    payment_succeeded,     paid,            reserve_inventory >,
    row< placed,    payment_failed,        cancelled,       cancel_unpaid >,
    row< placed,    payment_timeout,       cancelled,       dsl::emit<order_cancelled> >,
    row< placed,    cancel_requested,      cancelled,       cancel_unpaid >,
    row< paid,      inventory_reserved,    packing,         request_shipment >,
    row< paid,      inventory_unavailable, refunding,       request_refund >,
    row< paid,      cancel_requested,      refunding,       request_refund >,
    row< packing,   cancel_requested,      refunding,       cancel_before_shipment >,
    row< packing,   shipment_deadline,     packing,         dsl::emit<order_shipment_overdue> >,
    row< packing,   shipment_dispatched,   shipped,         ship >,
    row< shipped,   delivery_confirmed,    done,            dsl::emit<order_completed> >,
    row< shipped,   delivery_failed,       refunding,       request_refund >,
    row< refunding, inventory_reserved,    refunding,       dsl::emit<inventory_release_requested> >,
    row< refunding, payment_refunded,      cancelled,       dsl::emit<order_cancelled> >,
    row< refunding, refund_failed,         needs_attention, retry_refund >,
    row< shipped,   cancel_requested,      none,            cancel_refused >,
    row< done,      cancel_requested,      none,            cancel_refused >
  >;
  // clang-format on

  using abort_state = cancelled;
  using abort_actions =
      dsl::actions<dsl::disarm<payment_timeout>, dsl::disarm<shipment_deadline>, dsl::emit<order_cancelled>>;
  using attention_state = needs_attention;
  using resolution_targets = dsl::types<cancelled, done>;

  static nlohmann::json carried(const order_data& d) {  // what other services see: as in version 1
    return {{"order_id", d.order_id},
            {"amount", d.amount_minor},
            {"currency", d.currency},
            {"customer_id", d.customer_id},
            {"items", d.items}};
  }
};

}  // namespace
}  // namespace order_v2

SAGA_PLUGIN("order_v2") {
  out.push_back(saga::dsl::make_definition<order_v2::order_machine>());
}
