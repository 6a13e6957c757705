// The scenario harness itself (saga::testing): a failing check names the caller's line, and
// acks, statuses and outcomes print by name in doctest's messages (saga/testing/doctest.hpp).

#include <doctest/doctest.h>

#include <sstream>
#include <stdexcept>
#include <string>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/testing/doctest.hpp"
#include "saga/testing/scenario.hpp"

namespace {

nlohmann::json order(const std::string& id) {
  return {{"order_id", id}, {"amount", 1000}, {"currency", "EUR"}};
}

// What a failing check threw.
template <class Check>
std::string failure_of(Check&& check) {
  try {
    check();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

}  // namespace

TEST_SUITE("scenario harness") {
  TEST_CASE("a failing expect names the file and line of the call and the saga") {
    saga::testing::scenario s(saga::definitions::order_lifecycle(), "o-1");
    s.given({s.make("order.placed", order("o-1"))});
    const int line = __LINE__ + 1;
    const auto what = failure_of([&] { s.expect_state("paid"); });
    CHECK(what == std::string(__FILE__) + ":" + std::to_string(line) +
                      ": order_lifecycle/o-1: expected state 'paid', saga is in 'placed'");

    s.when(s.make("payment.succeeded", order("o-1")));
    const int emitted_line = __LINE__ + 1;
    const auto emitted = failure_of([&] { s.expect_emitted({"order.cancelled"}); });
    CHECK(emitted.rfind(std::string(__FILE__) + ":" + std::to_string(emitted_line) + ": ", 0) == 0);
    CHECK(emitted.find("expected emitted [order.cancelled], got [inventory.reservation.requested]") !=
          std::string::npos);

    // A second payment in 'paid' is ignored: the message gives outcome and status by name.
    s.when(s.make("payment.succeeded", order("o-1")));
    const auto outcome = failure_of([&] { s.expect_outcome(saga::ack_outcome::transitioned); });
    CHECK(outcome.find(": order_lifecycle/o-1: expected outcome 'transitioned', got 'ignored' (accepted)") !=
          std::string::npos);
  }

  TEST_CASE("acks and their status and outcome print by name") {
    // What doctest writes for a failing CHECK(a == b) on them (saga/testing/doctest.hpp).
    CHECK(doctest::detail::stringifyBinaryExpr(saga::ack_status::rejected,
                                               " == ", saga::ack_status::accepted) == "rejected == accepted");
    CHECK(doctest::detail::stringifyBinaryExpr(saga::ack_outcome::parked,
                                               " != ", saga::ack_outcome::ignored) == "parked != ignored");
    saga::ack a;
    a.id = "e-1";
    a.source = "urn:test";
    a.status = saga::ack_status::accepted;
    a.outcome = saga::ack_outcome::transitioned;
    std::ostringstream out;
    out << a;
    CHECK(out.str() == saga::encode_ack(a));
    CHECK(out.str().find("\"status\":\"accepted\"") != std::string::npos);
  }
}
