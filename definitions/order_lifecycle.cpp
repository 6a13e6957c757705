#include "saga/definitions/order_lifecycle.hpp"

#include <cstdint>
#include <string>

#include "saga/dsl.hpp"

namespace saga::definitions {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::row;

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

// What order.placed carries and every follow-on event of the order carries on (DESIGN.md "Event
// data"), as the JSON Schema the AsyncAPI contract shows (sagactl definitions --asyncapi); a
// refund request adds refund_id and attempt.
constexpr std::string_view order_schema = R"({
  "type": "object", "required": ["amount", "currency"],
  "properties": {
    "order_id": {"type": "string"},
    "amount": {"type": "integer", "description": "minor units"},
    "currency": {"type": "string"},
    "customer_id": {"type": "string"},
    "items": {"type": "array", "items": {"type": "object",
              "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}}}})";
constexpr std::string_view refund_schema = R"({
  "type": "object", "required": ["amount", "currency", "refund_id", "attempt"],
  "properties": {
    "order_id": {"type": "string"},
    "amount": {"type": "integer", "description": "minor units"},
    "currency": {"type": "string"},
    "customer_id": {"type": "string"},
    "items": {"type": "array"},
    "refund_id": {"type": "string", "description": "the same on every attempt"},
    "attempt": {"type": "integer", "minimum": 1}}})";

// order.placed carries the order; the saga keeps it and carries it on.
struct order_placed : dsl::event<"order.placed"> {
  static constexpr std::string_view schema = order_schema;
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

// ---- events it emits (dsl::emit<E>: a typo in a name does not compile) ----------
// Each carries the order on; a refund request adds refund_id and attempt.

template <dsl::fixed_string Type>
struct order_event : dsl::event<Type> {
  static constexpr std::string_view schema = order_schema;
};

struct payment_refund_requested : dsl::event<"payment.refund.requested"> {
  static constexpr std::string_view schema = refund_schema;
};
using payment_requested = order_event<"payment.requested">;
using inventory_reservation_requested = order_event<"inventory.reservation.requested">;
using inventory_release_requested = order_event<"inventory.release.requested">;
using shipment_requested = order_event<"shipment.requested">;
using order_shipped = order_event<"order.shipped">;
using order_shipment_overdue = order_event<"order.shipment.overdue">;
using order_out_for_delivery = order_event<"order.out_for_delivery">;
using order_completed = order_event<"order.completed">;
using order_cancelled = order_event<"order.cancelled">;
using order_cancel_rejected = order_event<"order.cancel.rejected">;
using order_needs_attention = order_event<"order.needs_attention">;

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

using request_refund = dsl::actions<next_refund_attempt, dsl::emit<payment_refund_requested, refund_request>>;
// A failed refund is requested again 5 s later, then 10 s after a second failure (three attempts
// in all, the same refund_id): long enough for a payment provider's hiccup, short enough that a
// customer's refund is not held up; a third failure needs an operator.
using retry_refund =
    dsl::retry<request_refund, 2, dsl::backoff<dsl::seconds(5), 2>, dsl::emit<order_needs_attention>>;

// The multi-action cells, named: a row reads as what happens.
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

// ---- the machine -------------------------------------------------------------

struct order_machine : dsl::machine<order_machine, order_data> {
  static constexpr std::string_view name = "order_lifecycle";
  using initial_state = fresh;

  // consumes, starts and terminal come from the table: every row's event; the events of the
  // rows from `new`; the states no row leaves (done, cancelled, needs_attention).
  // clang-format off
  using transition_table = dsl::table<
    //   source             event                  target             action                                   guard
    row< fresh,             order_placed,          placed,            take_order >,
    row< placed,            payment_succeeded,     paid,              reserve_inventory >,
    row< placed,            payment_failed,        cancelled,         cancel_unpaid >,
    row< placed,            payment_timeout,       cancelled,         dsl::emit<order_cancelled> >,
    row< placed,            cancel_requested,      cancelled,         cancel_unpaid >,
    row< paid,              inventory_reserved,    awaiting_shipment, request_shipment >,
    row< paid,              inventory_unavailable, refunding,         request_refund >,
    row< paid,              cancel_requested,      refunding,         request_refund >,
    row< awaiting_shipment, cancel_requested,      refunding,         cancel_before_shipment >,
    row< awaiting_shipment, shipment_deadline,     awaiting_shipment, dsl::emit<order_shipment_overdue> >,
    row< awaiting_shipment, shipment_dispatched,   shipped,           ship >,
    row< shipped,           delivery_started,      delivering,        dsl::emit<order_out_for_delivery> >,
    row< delivering,        delivery_confirmed,    done,              dsl::emit<order_completed> >,
    row< delivering,        delivery_failed,       refunding,         request_refund >,
    row< refunding,         inventory_reserved,    refunding,         dsl::emit<inventory_release_requested> >,
    row< refunding,         payment_refunded,      cancelled,         dsl::emit<order_cancelled> >,
    row< refunding,         refund_failed,         needs_attention,   retry_refund >,
    row< shipped,           cancel_requested,      none,              cancel_refused >,
    row< delivering,        cancel_requested,      none,              cancel_refused >,
    row< done,              cancel_requested,      none,              cancel_refused >
  >;
  // clang-format on

  using abort_state = cancelled;
  using abort_actions =
      dsl::actions<dsl::disarm<payment_timeout>, dsl::disarm<shipment_deadline>, dsl::emit<order_cancelled>>;
  using attention_state = needs_attention;
  using resolution_targets = dsl::types<cancelled, done>;

  // Every follow-on event of an order carries the order on (DESIGN.md "Event data"). Built member
  // by member: an initializer list makes a two-element array of each pair first (a third more
  // time for each follow-on event; docs/performance.md, fifth round).
  static nlohmann::json carried(const order_data& d) {
    nlohmann::json j(nlohmann::json::value_t::object);
    j["order_id"] = d.order_id;
    j["amount"] = d.amount;
    j["currency"] = d.currency;
    j["customer_id"] = d.customer_id;
    j["items"] = d.items;
    return j;
  }
};

}  // namespace

std::shared_ptr<const saga::definition> order_lifecycle() {
  return dsl::make_definition<order_machine>();
}

}  // namespace saga::definitions
