#pragma once
// Order events for tests that need a saga to exist, not a particular story.

#include <string>

#include "saga/event.hpp"

namespace saga::test {

// order.placed for `order` (id "placed-<order>", source "urn:test").
inline saga::event placed(const std::string& order) {
  saga::event e;
  e.id = "placed-" + order;
  e.source = "urn:test";
  e.type = "order.placed";
  e.subject = order;
  e.data = {{"order_id", order}, {"amount", 10}, {"currency", "EUR"}};
  return e;
}

}  // namespace saga::test
