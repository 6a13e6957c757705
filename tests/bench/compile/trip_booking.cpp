// A 30-row workflow for the compile-cost figures (issue 14, item 7; docs/dsl.md "Compile cost"):
// a trip booking that reserves a flight, a hotel and a car, takes the payment, and compensates
// in reverse when a step fails, times out or the traveller cancels.
#include <cstdint>
#include <memory>
#include <string>

#include "saga/dsl.hpp"

namespace trip {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::row;

struct trip_data {
  std::string trip_id;
  std::string traveller;
  std::int64_t budget = 0;
  std::int64_t spent = 0;
  int payment_attempts = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(trip_data, trip_id, traveller, budget, spent,
                                                payment_attempts)

struct trip_requested : dsl::event<"trip.requested"> {
  trip_data trip;
};
void from_json(const nlohmann::json& j, trip_requested& e) {
  e.trip.trip_id = dsl::string_field(j, "trip_id");
  e.trip.traveller = dsl::optional_string_field(j, "traveller");
  e.trip.budget = dsl::integer_field(j, "budget");
}
struct price_quoted {
  static constexpr std::string_view type = "price.quoted";
  std::int64_t price = 0;
};
void from_json(const nlohmann::json& j, price_quoted& e) {
  e.price = dsl::integer_field(j, "price");
}

using flight_booked = price_quoted;
using flight_unavailable = dsl::event<"flight.unavailable">;
using hotel_booked = dsl::event<"hotel.booked">;
using hotel_unavailable = dsl::event<"hotel.unavailable">;
using car_booked = dsl::event<"car.booked">;
using car_unavailable = dsl::event<"car.unavailable">;
using payment_succeeded = dsl::event<"payment.succeeded">;
using payment_failed = dsl::event<"payment.failed">;
using cancel_requested = dsl::event<"trip.cancel.requested">;
using flight_released = dsl::event<"flight.released">;
using hotel_released = dsl::event<"hotel.released">;
using car_released = dsl::event<"car.released">;
using booking_timeout = dsl::timer<"booking_timeout">;
using payment_timeout = dsl::timer<"payment_timeout">;

using flight_booking_requested = dsl::event<"flight.booking.requested">;
using hotel_booking_requested = dsl::event<"hotel.booking.requested">;
using car_booking_requested = dsl::event<"car.booking.requested">;
using payment_requested = dsl::event<"payment.requested">;
using trip_confirmed = dsl::event<"trip.confirmed">;
using car_release_requested = dsl::event<"car.release.requested">;
using hotel_release_requested = dsl::event<"hotel.release.requested">;
using flight_release_requested = dsl::event<"flight.release.requested">;
using trip_over_budget = dsl::event<"trip.over_budget">;
using trip_cancel_rejected = dsl::event<"trip.cancel.rejected">;
using trip_cancelled = dsl::event<"trip.cancelled">;

using fresh = dsl::state<"new">;
using booking_flight = dsl::state<"booking_flight">;
using booking_hotel = dsl::state<"booking_hotel">;
using booking_car = dsl::state<"booking_car">;
using paying = dsl::state<"paying">;
using confirmed = dsl::state<"confirmed">;
using releasing_car = dsl::state<"releasing_car">;
using releasing_hotel = dsl::state<"releasing_hotel">;
using releasing_flight = dsl::state<"releasing_flight">;
using cancelled = dsl::state<"cancelled">;
using needs_attention = dsl::state<"needs_attention">;

// guards
struct within_budget {
  static constexpr std::string_view name = "within_budget";
  template <class F, class S, class T>
  bool operator()(const price_quoted& e, F& fsm, S&, T&) const {
    return fsm.data().spent + e.price <= fsm.data().budget;
  }
};
struct payment_attempts_left {
  static constexpr std::string_view name = "payment_attempts_left";
  template <class E, class F, class S, class T>
  bool operator()(const E&, F& fsm, S&, T&) const {
    return fsm.data().payment_attempts < 3;
  }
};

// actions
struct keep_trip {
  static constexpr std::string_view name = "keep_trip";
  template <class F, class S, class T>
  void operator()(const trip_requested& e, F& fsm, S&, T&) const {
    fsm.data() = e.trip;
  }
};
struct add_price {
  static constexpr std::string_view name = "add_price";
  template <class F, class S, class T>
  void operator()(const price_quoted& e, F& fsm, S&, T&) const {
    fsm.data().spent += e.price;
  }
};
struct count_payment {
  static constexpr std::string_view name = "count_payment";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    ++fsm.data().payment_attempts;
  }
};

using start_booking =
    dsl::actions<keep_trip, dsl::emit<flight_booking_requested>, dsl::arm<booking_timeout, dsl::hours(2)>>;
using book_hotel = dsl::actions<add_price, dsl::emit<hotel_booking_requested>>;
using book_car = dsl::emit<car_booking_requested>;
using request_payment =
    dsl::actions<dsl::disarm<booking_timeout>, count_payment, dsl::emit<payment_requested>,
                 dsl::arm<payment_timeout, dsl::minutes(15)>>;
using retry_payment = dsl::actions<count_payment, dsl::emit<payment_requested>>;
using confirm = dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<trip_confirmed>>;
using release_car = dsl::actions<dsl::disarm<payment_timeout>, dsl::emit<car_release_requested>>;
using release_hotel = dsl::actions<dsl::disarm<booking_timeout>, dsl::emit<hotel_release_requested>>;
using release_flight = dsl::actions<dsl::disarm<booking_timeout>, dsl::emit<flight_release_requested>>;
using over_budget = dsl::actions<dsl::emit<trip_over_budget>, dsl::emit<flight_release_requested>>;
using refuse_cancel = dsl::emit<trip_cancel_rejected>;

struct trip_machine : dsl::machine<trip_machine, trip_data> {
  static constexpr std::string_view name = "trip_booking";
  using initial_state = fresh;

  // clang-format off
  using transition_table = dsl::table<
    //   source            event               target            action                               guard
    row< fresh,            trip_requested,     booking_flight,   start_booking >,
    row< booking_flight,   flight_booked,      booking_hotel,    book_hotel,                          within_budget >,
    row< booking_flight,   flight_booked,      releasing_flight, over_budget,                         dsl::not_<within_budget> >,
    row< booking_flight,   flight_unavailable, cancelled,        dsl::actions<dsl::disarm<booking_timeout>, dsl::emit<trip_cancelled>> >,
    row< booking_flight,   booking_timeout,    releasing_flight, dsl::emit<flight_release_requested> >,
    row< booking_flight,   cancel_requested,   releasing_flight, release_flight >,
    row< booking_hotel,    hotel_booked,       booking_car,      book_car >,
    row< booking_hotel,    hotel_unavailable,  releasing_flight, release_flight >,
    row< booking_hotel,    booking_timeout,    releasing_hotel,  dsl::emit<hotel_release_requested> >,
    row< booking_hotel,    cancel_requested,   releasing_hotel,  release_hotel >,
    row< booking_car,      car_booked,         paying,           request_payment >,
    row< booking_car,      car_unavailable,    releasing_hotel,  release_hotel >,
    row< booking_car,      booking_timeout,    releasing_car,    dsl::emit<car_release_requested> >,
    row< booking_car,      cancel_requested,   releasing_car,    dsl::actions<dsl::disarm<booking_timeout>, dsl::emit<car_release_requested>> >,
    row< paying,           payment_succeeded,  confirmed,        confirm >,
    row< paying,           payment_failed,     paying,           retry_payment,                       payment_attempts_left >,
    row< paying,           payment_failed,     releasing_car,    release_car,                         dsl::not_<payment_attempts_left> >,
    row< paying,           payment_timeout,    releasing_car,    dsl::emit<car_release_requested> >,
    row< paying,           cancel_requested,   releasing_car,    release_car >,
    row< confirmed,        cancel_requested,   none,             refuse_cancel >,
    row< releasing_car,    car_released,       releasing_hotel,  dsl::emit<hotel_release_requested> >,
    row< releasing_car,    car_booked,         releasing_car,    dsl::emit<car_release_requested> >,
    row< releasing_car,    cancel_requested,   none,             refuse_cancel >,
    row< releasing_hotel,  hotel_released,     releasing_flight, dsl::emit<flight_release_requested> >,
    row< releasing_hotel,  hotel_booked,       releasing_hotel,  dsl::emit<hotel_release_requested> >,
    row< releasing_hotel,  cancel_requested,   none,             refuse_cancel >,
    row< releasing_flight, flight_released,    cancelled,        dsl::emit<trip_cancelled> >,
    row< releasing_flight, flight_booked,      releasing_flight, dsl::emit<flight_release_requested> >,
    row< releasing_flight, cancel_requested,   none,             refuse_cancel >,
    row< cancelled,        cancel_requested,   none,             refuse_cancel >
  >;
  // clang-format on

  using abort_state = cancelled;
  using abort_actions =
      dsl::actions<dsl::disarm<booking_timeout>, dsl::disarm<payment_timeout>, dsl::emit<trip_cancelled>>;
  using attention_state = needs_attention;
  using resolution_targets = dsl::types<cancelled, confirmed>;
};

}  // namespace

std::shared_ptr<const saga::definition> trip_booking() {
  return dsl::make_definition<trip_machine>();
}

}  // namespace trip
