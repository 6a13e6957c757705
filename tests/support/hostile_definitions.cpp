#include "support/hostile_definitions.hpp"

#include <string>

#include "saga/dsl.hpp"

namespace saga::testing {
namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::Row;

// ---- saga data ----------------------------------------------------------------

struct hostile_data {
  std::string key;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(hostile_data, key)

// ---- events -------------------------------------------------------------------

using throw_start = dsl::event<"hostile.throw.start">;
using throw_int = dsl::event<"hostile.throw_int">;
using throw_string = dsl::event<"hostile.throw_string">;
using throw_finish = dsl::event<"hostile.throw.finish">;

using timer_start = dsl::event<"hostile.timer_throws.start">;
using timer_cancel = dsl::event<"hostile.timer_throws.cancel">;
using boom = dsl::timer<"boom">;

// ---- states -------------------------------------------------------------------

using fresh = dsl::state<"new">;
using open = dsl::state<"open">;
using armed = dsl::state<"armed">;
using done = dsl::state<"done">;

// ---- guards -------------------------------------------------------------------

struct guard_throws_string {
  static constexpr std::string_view name = "guard_throws_string";
  template <class E, class F, class S, class T>
  bool operator()(const E&, F&, S&, T&) const {
    throw std::string("a guard threw a std::string");
  }
};

// ---- actions ------------------------------------------------------------------

struct keep_key {
  static constexpr std::string_view name = "keep_key";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    fsm.data().key = fsm.incoming().subject;
  }
};

// Not a std::exception: the engine must catch everything, not only std::exception.
struct action_throws_int {
  static constexpr std::string_view name = "action_throws_int";
  template <class E, class F, class S, class T>
  void operator()(const E&, F&, S&, T&) const {
    throw 42;
  }
};

struct nothing {
  static constexpr std::string_view name = "nothing";
  template <class E, class F, class S, class T>
  void operator()(const E&, F&, S&, T&) const {}
};

// ---- the machines -------------------------------------------------------------

struct throw_machine : dsl::machine<throw_machine, hostile_data> {
  static constexpr std::string_view name = "hostile_throw";
  using initial_state = fresh;

  // clang-format off
  using transition_table = dsl::table<
    //   source  event         target  action             guard
    Row< fresh,  throw_start,  open,   keep_key,          none >,
    Row< open,   throw_int,    none,   action_throws_int, none >,
    Row< open,   throw_string, none,   nothing,           guard_throws_string >,
    Row< open,   throw_finish, done,   nothing,           none >
  >;
  // clang-format on

  using consumes = dsl::types<throw_start, throw_int, throw_string, throw_finish>;
  using starts = dsl::types<throw_start>;
  using terminal = dsl::types<done>;
  using abort_state = done;
};

struct timer_machine : dsl::machine<timer_machine, hostile_data> {
  static constexpr std::string_view name = "hostile_timer";
  using initial_state = fresh;

  // clang-format off
  using transition_table = dsl::table<
    //   source  event         target  action                                       guard
    Row< fresh,  timer_start,  armed,  dsl::actions<keep_key, dsl::arm<boom, 1000>>, none >,
    Row< armed,  boom,         done,   action_throws_int,                           none >,
    Row< armed,  timer_cancel, done,   dsl::disarm<boom>,                           none >
  >;
  // clang-format on

  using consumes = dsl::types<timer_start, boom, timer_cancel>;
  using starts = dsl::types<timer_start>;
  using terminal = dsl::types<done>;
  using abort_state = done;
  using abort_actions = dsl::actions<dsl::disarm<boom>>;
};

}  // namespace

std::shared_ptr<const saga::definition> hostile_throw() {
  return dsl::make_definition<throw_machine>();
}

std::shared_ptr<const saga::definition> hostile_timer() {
  return dsl::make_definition<timer_machine>();
}

std::vector<std::shared_ptr<const saga::definition>> hostile_definitions() {
  return {hostile_throw(), hostile_timer()};
}

}  // namespace saga::testing
