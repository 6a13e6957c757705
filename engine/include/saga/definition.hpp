#pragma once
// saga::definition — a workflow, as the engine sees it: a plain interface.
//
// Definitions are written with the DSL in saga/dsl.hpp (a Boost.MSM transition
// table, kept inside the definition's .cpp file) and handed to the engine as a
// std::shared_ptr<const definition>. A definition is immutable and its
// dispatch() is a pure function of its input, so one instance may be shared
// by any number of engines and threads.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/event.hpp"
#include "saga/graph.hpp"

namespace saga {

// What actions asked for; the engine carries it out inside its transaction.
struct emit_intent {
  std::string type;
  nlohmann::json data;
};

struct timer_intent {
  std::string name;
  bool arm = true;          // false: disarm
  std::int64_t due_ms = 0;  // Unix ms, when arming
};

struct intents {
  std::vector<emit_intent> emits;
  std::vector<timer_intent> timers;
};

struct dispatch_input {
  std::string_view state;      // persisted state name (graph().initial for a new saga)
  const nlohmann::json* data;  // persisted saga data; null for a new saga
  const event& incoming;
  std::int64_t now_ms;
};

struct dispatch_output {
  bool handled = false;  // false: no row of the current state took the event
  std::string state;     // state after dispatch
  nlohmann::json data;   // saga data after dispatch
  saga::intents intents;
};

class definition {
 public:
  virtual ~definition() = default;

  virtual const saga::graph& graph() const = 0;
  const std::string& name() const { return graph().name; }

  // Restores a machine in `in.state`, decodes the incoming event's data into
  // its C++ event type and dispatches it. Throws std::exception when the
  // event's data does not decode or an action fails; the engine then rejects
  // that event alone.
  virtual dispatch_output dispatch(const dispatch_input& in) const = 0;

  // Operator actions. action "abort" moves the saga to graph().abort_state and
  // runs the definition's abort actions; "resolve" moves it to `to`. The
  // engine checks that the action is allowed before calling.
  virtual dispatch_output operator_action(const dispatch_input& in, std::string_view action,
                                          std::string_view to) const = 0;

  // A saga of version `from` (in.state, in.data: as stored by that version) moves onto this
  // definition's version in state `to` (graph().migrated_state). Returns its data as this version
  // keeps it, and intents (timers to disarm). Throws std::exception, naming the field, when the
  // data does not fit this version; the engine then refuses that saga alone. The default keeps
  // the data as it is.
  virtual dispatch_output migrate(const dispatch_input& in, std::int64_t from, std::string_view to) const {
    (void)from;
    dispatch_output out;
    out.handled = true;
    out.state = std::string(to);
    out.data = in.data != nullptr ? *in.data : nlohmann::json::object();
    return out;
  }
};

}  // namespace saga
