#pragma once
// Acks' status and outcome by name in doctest's messages: include after <doctest/doctest.h>
// in a test that checks them, and `CHECK(s.last_ack().status == saga::ack_status::accepted)`
// fails as `rejected == accepted` instead of `2 == 0`. (doctest prints enums as numbers and
// looks for a `toString` overload by argument-dependent lookup first; a whole saga::ack prints
// through its operator<< in saga/engine.hpp without this header.)
//
// Include it in every test file of an executable that compares them, or in none: doctest
// instantiates one printer per type for the whole program, and a file without this header makes
// the number printer instead. That is two definitions of one function (the one-definition rule
// broken), and the linker keeps either: GCC's builds happened to keep the names, clang's the
// numbers.

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
