// The DSL's compile-time checks (issue 14, item 1): compiled once per MISTAKE_* macro by
// tests/dsl/CMakeLists.txt, each build must fail with the one line of saga::dsl::mistake that
// names the row or type, and never reach Boost.MSM's back-end. With no macro the file is a
// correct two-row workflow and compiles (the control: a failure is the mistake, not the setup).

#include <cstdint>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "saga/dsl.hpp"

namespace dsl = saga::dsl;

namespace {

struct claim_data {
  std::int64_t amount = 0;
};
void to_json(nlohmann::json& j, const claim_data& d) {
  j = {{"amount", d.amount}};
}
void from_json(const nlohmann::json& j, claim_data& d) {
  d.amount = j.value("amount", std::int64_t{0});
}

// An event whose data the actions read: it needs from_json.
struct claim_filed : dsl::event<"claim.filed"> {
  std::int64_t amount = 0;
};
#ifndef MISTAKE_NO_FROM_JSON
void from_json(const nlohmann::json& j, claim_filed& e) {
  e.amount = dsl::integer_field(j, "amount");
}
#endif
struct claim_approved : dsl::event<"claim.approved"> {};
struct claim_withdrawn : dsl::event<"claim.withdrawn"> {};

using fresh = dsl::state<"new">;
using open_claim = dsl::state<"open">;
using closed = dsl::state<"closed">;

struct record {
  static constexpr std::string_view name = "record";
  template <class F, class S, class T>
  void operator()(const claim_filed& e, F& fsm, S&, T&) const {
    fsm.data().amount = e.amount;
  }
};

// Forgets the fsm, source and target parameters.
struct record_wrongly {
  static constexpr std::string_view name = "record_wrongly";
  void operator()(const claim_filed&) const {}
};

// Answers with a string, not a bool.
struct approvable {
  static constexpr std::string_view name = "approvable";
  template <class E, class F, class S, class T>
  std::string_view operator()(const E&, F&, S&, T&) const {
    return "yes";
  }
};

using claim_closed = dsl::event<"claim.closed">;

// Version 1's data, brought to this version's (dsl::migration's data transform).
struct stamp_version {
  static constexpr std::string_view name = "stamp_version";
#if defined(MISTAKE_MIGRATION_DATA_SIGNATURE)
  void operator()(nlohmann::json& data, int from_version) const {
    data["from"] = from_version;
  }
#else
  void operator()(nlohmann::json& data) const {
    data["from_v1"] = true;
  }
#endif
};

struct claim_machine : dsl::machine<claim_machine, claim_data> {
  static constexpr std::string_view name = "claim";
  using initial_state = fresh;

  using transition_table = dsl::table<
#if defined(MISTAKE_SWAPPED_EVENT_AND_TARGET)
      dsl::row<fresh, open_claim, claim_filed, record>,
#elif defined(MISTAKE_ACTION_SIGNATURE)
      dsl::row<fresh, claim_filed, open_claim, record_wrongly>,
#else
      dsl::row<fresh, claim_filed, open_claim, record>,
#endif
#if defined(MISTAKE_GUARD_SIGNATURE)
      dsl::row<open_claim, claim_approved, closed, dsl::emit<claim_closed>, approvable>
#elif defined(MISTAKE_GUARD_SIGNATURE_INSIDE_NOT)
      dsl::row<open_claim, claim_approved, closed, dsl::emit<claim_closed>, dsl::not_<approvable> >
#elif defined(MISTAKE_EMIT_NOT_AN_EVENT)
      dsl::row<open_claim, claim_approved, closed, dsl::emit<closed> >
#else
      dsl::row<open_claim, claim_approved, closed, dsl::emit<claim_closed> >
#endif
      >;

#if defined(MISTAKE_CONSUMES_UNUSED)
  using consumes = dsl::types<claim_filed, claim_approved, claim_withdrawn>;
#endif
#if defined(MISTAKE_STARTS_NOT_FROM_INITIAL)
  using starts = dsl::types<claim_approved>;
#endif

  static constexpr std::int64_t version = 2;
#if defined(MISTAKE_MIGRATIONS_ENTRY)
  using migrations = dsl::types<closed>;
#elif defined(MISTAKE_MOVES_TO_NOT_A_STATE)
  using migrations =
      dsl::types<dsl::migration<1, dsl::types<dsl::moves<"archived", claim_closed> >, stamp_version> >;
#else
  using migrations =
      dsl::types<dsl::migration<1, dsl::types<dsl::moves<"archived", closed> >, stamp_version> >;
#endif
};

}  // namespace

std::shared_ptr<const saga::definition> claim_definition() {
  return dsl::make_definition<claim_machine>();
}
