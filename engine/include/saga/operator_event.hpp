#pragma once
// saga::operator_event — the event an operator sends to act on one saga: saga.operator.abort
// (to the definition's abort state) or saga.operator.resolve (out of needs_attention into `to`),
// from source urn:saga:operator, with the reason and the operator's name in its data
// (docs/cli.md "Operating sagas"). One home for their shape: sagactl's abort and resolve and
// sagad's console (--console-operator-key) build them here; the engine's process_operator reads
// them.
//
// Thread-safety: a free function without shared state.

#include <cstdint>
#include <string>
#include <string_view>

#include "saga/event.hpp"

namespace saga {

inline constexpr std::string_view operator_source = "urn:saga:operator";

struct operator_request {
  std::string id;             // the saga's correlation key
  std::string reason;         // why (kept in the saga's history)
  std::string operator_name;  // who
  std::string type;           // the definition, when several have a saga with this id; may be empty
  std::string to;             // resolve only: the state to move into
};

// A fresh event (a new UUIDv7 id, `now_ms` as its time) of `type` carrying `r`.
event operator_event(std::string_view type, const operator_request& r, std::int64_t now_ms);

}  // namespace saga
