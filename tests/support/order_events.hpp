#pragma once
// Order events for tests that need a saga to exist, not a particular story.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "saga/event.hpp"

namespace saga::test {

// What order.placed carries for `order`.
inline nlohmann::json order_data(const std::string& order, std::int64_t amount = 10) {
  return {{"order_id", order}, {"amount", amount}, {"currency", "EUR"}};
}

// order.placed for `order` (id "placed-<order>", source "urn:test").
inline saga::event placed(const std::string& order) {
  saga::event e;
  e.id = "placed-" + order;
  e.source = "urn:test";
  e.type = "order.placed";
  e.subject = order;
  e.data = order_data(order);
  return e;
}

// payment.succeeded for `order` (id "paid-<order>", source "urn:test").
inline saga::event paid(const std::string& order) {
  saga::event e;
  e.id = "paid-" + order;
  e.source = "urn:test";
  e.type = "payment.succeeded";
  e.subject = order;
  e.data = {{"order_id", order}, {"payment_id", "p-" + order}};
  return e;
}

// An event of `type` for the saga `subject`, source "urn:test", with an id
// no other event of the program has: "<prefix>-<n>".
inline saga::event numbered_event(const std::string& prefix, const std::string& type,
                                  const std::string& subject,
                                  nlohmann::json data = nlohmann::json::object()) {
  static int n = 0;
  saga::event e;
  e.id = prefix + "-" + std::to_string(++n);
  e.source = "urn:test";
  e.type = type;
  e.subject = subject;
  e.data = std::move(data);
  return e;
}

}  // namespace saga::test
