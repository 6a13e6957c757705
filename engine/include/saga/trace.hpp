#pragma once
// W3C Trace Context as the CloudEvents Distributed Tracing extension carries it: `traceparent`
// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`) and `tracestate` (vendor entries,
// kept as they came). The engine keeps an incoming event's trace context in its history row and
// gives every follow-on event the same trace id with a span id of its own (docs/events.md,
// docs/architecture.md). Pure functions, safe from any thread; new ids come from the kernel's
// CSPRNG (arc4random_buf), like the UUIDs.

#include <cstddef>
#include <string>
#include <string_view>

namespace saga {

// A trace context: both empty when none.
struct trace_context {
  std::string traceparent;
  std::string tracestate;
};

// W3C Trace Context's bound on tracestate (32 list members of at most 256 characters are
// allowed by the grammar, but a vendor may cut at 512 characters: we refuse longer ones).
inline constexpr std::size_t tracestate_max = 512;

// Empty when `v` is a valid traceparent, else the rule it breaks (without the attribute's name):
// lower-case hex only, version not `ff`, trace id and parent id not all zeros; version `00` is
// exactly 55 characters, a later version at least that and, if longer, continued after a '-'.
std::string traceparent_problem(std::string_view v);

// A new trace: a random trace id and span id, flags `01` (sampled: the engine starts the trace).
std::string new_traceparent();

// The same trace id and flags as `parent` (a valid traceparent), a new random span id, version 00.
std::string child_traceparent(std::string_view parent);

// The 32 hex digits of a valid traceparent's trace id; empty for an empty one.
std::string_view trace_id_of(std::string_view traceparent);

// Whether `v` is 32 lower-case hex digits, not all zero (a trace id as `sagactl list --trace`
// takes it).
bool valid_trace_id(std::string_view v);

}  // namespace saga
