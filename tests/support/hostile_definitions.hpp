#pragma once
// Definitions that misbehave on purpose, for tests of per-event isolation
// (issue 11): a test-only sagad (sagad-test) and in-process tests register
// them next to the real ones. Each uses event types of its own, so it never
// takes another definition's events.
//
//   hostile_throw  hostile.throw.start starts a saga (state "open");
//                  hostile.throw_int runs an action that throws an int
//                  (`throw 42;`, not a std::exception); hostile.throw_string
//                  runs a guard that throws a std::string; hostile.throw.finish
//                  ends the saga ("done"). Saga data: {"key": subject}.
//   hostile_timer  hostile.timer_throws.start arms the timer "boom" for one
//                  second (state "armed"); its firing (saga.timer.boom) runs an
//                  action that throws an int; hostile.timer_throws.cancel ends
//                  the saga ("done") and disarms the timer.
//
// Thread-safety: like every definition, immutable after construction.

#include <memory>
#include <vector>

#include "saga/definition.hpp"

namespace saga::testing {

std::shared_ptr<const saga::definition> hostile_throw();
std::shared_ptr<const saga::definition> hostile_timer();

// Both of the above.
std::vector<std::shared_ptr<const saga::definition>> hostile_definitions();

}  // namespace saga::testing
