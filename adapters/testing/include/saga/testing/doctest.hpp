#pragma once
// Acks' status and outcome by name in doctest's messages: include after <doctest/doctest.h>
// in a test that checks them, and `CHECK(s.last_ack().status == saga::ack_status::accepted)`
// fails as `rejected == accepted` instead of `2 == 0`. (doctest prints enums as numbers and
// looks for a `toString` overload by argument-dependent lookup first; a whole saga::ack prints
// through its operator<< in saga/engine.hpp without this header.)

#include <string>

#include "saga/engine.hpp"

namespace saga {

inline doctest::String toString(ack_status s) {
  return std::string(to_string(s)).c_str();
}

inline doctest::String toString(ack_outcome o) {
  return std::string(to_string(o)).c_str();
}

}  // namespace saga
