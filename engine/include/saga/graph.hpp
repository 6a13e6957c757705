#pragma once
// saga::graph — a definition's metadata as data: states, rows, consumed and
// starting event types, timers. Extracted from the transition table at
// compile time (saga/dsl.hpp), stored in the database at registration, read
// back by sagactl. Plain values and pure functions: thread-safe.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace saga {

// One row of the transition table, by name.
// The type of the internal event a timer fires: this prefix, then the timer's name.
inline constexpr std::string_view timer_event_prefix = "saga.timer.";

struct graph_row {
  std::string source;
  std::string event;        // the event type ("payment.succeeded", "saga.timer.payment_timeout")
  std::string target;       // equals source for internal transitions
  std::string action;       // empty when none
  std::string guard;        // empty when none
  bool internal = false;    // no state change (MSM's Row<S, E, none, ...>)
  std::string retry_timer;  // dsl::retry: the event type of the retry's timer, which this row also
                            // takes (its action says the budget); empty for other rows

  bool operator==(const graph_row&) const = default;
};

// How sagas on an older version of a definition move onto this one (dsl: `migrations`; docs/dsl.md,
// "Changing a workflow"). A state of version `from` moves to the state of the same name when this
// version has one, else to its entry in `states`; a state with neither has no mapping, and such a
// saga is refused. Timers this version does not name are disarmed; the others stay as armed.
struct graph_migration {
  std::int64_t from = 0;
  std::map<std::string, std::string> states;  // old state -> new state, where the names differ
  std::string data;                           // the data transform's name; empty: data kept as is

  bool operator==(const graph_migration&) const = default;
};

// A definition's metadata, extracted from its transition table at compile
// time (never written a second time by hand).
struct graph {
  std::string name;                               // the definition's name
  std::int64_t version = 1;                       // versions of one name run side by side
  std::vector<graph_migration> migrations;        // from older versions, by `from`
  std::vector<std::string> states;                // table order, initial first
  std::string initial;                            // the pseudo-state a new saga starts in
  std::vector<std::string> terminal;              // states no transition leaves
  std::vector<graph_row> rows;                    // table order
  std::vector<std::string> consumes;              // event types the definition takes
  std::vector<std::string> starts;                // of those, the ones that create a saga
  std::vector<std::string> timers;                // names of the timers its actions arm
  std::vector<std::string> produces;              // event types its actions emit (sorted)
  std::string abort_state;                        // target of saga.operator.abort
  std::string attention_state;                    // the state saga.operator.resolve leaves
  std::vector<std::string> resolution_targets;    // targets of saga.operator.resolve
  std::string fingerprint;                        // hash of name, states and rows
  std::map<std::string, nlohmann::json> schemas;  // event type -> JSON Schema of its data, where declared

  bool has_state(std::string_view s) const;
  const graph_migration* migration_from(std::int64_t version) const;  // null: none declared
  // Where a saga in `state` of version `from` goes on this version: empty when no mapping
  // (no migration from that version, or the state has neither a same-named state nor an entry).
  std::string migrated_state(std::int64_t from, std::string_view state) const;
  bool is_terminal(std::string_view s) const;
  bool consumes_type(std::string_view type) const;
  bool starts_with(std::string_view type) const;
};

// One saga's path, drawn over its definition's graph (sagactl graph --instance).
struct graph_overlay {
  struct transition {
    std::string from, event, to;
  };
  std::string title;                    // a heading (DOT only); empty: none
  std::string current;                  // the saga's state: filled
  std::vector<transition> transitions;  // in the order taken: numbered (#1), (#2)… and drawn red;
                                        // a move no row draws (an operator's) is added dashed
  std::vector<std::string> timers;      // armed timers ("name due TIME"): a note at `current`
};

// Exports and the registration checks.
// 16 hex digits, FNV-1a over name, states, rows (and the version, from 2 on)
std::string compute_fingerprint(const graph& g);
// The one renderer (engine/src/graph_render.cpp). Each row's label is its event, [guard] and
// / action; with an overlay, the saga's path on top. DOT for Graphviz; Mermaid stateDiagram-v2,
// whose reserved characters become entity codes (#35; for '#').
std::string to_dot(const graph& g, const graph_overlay* overlay = nullptr);
std::string to_mermaid(const graph& g, const graph_overlay* overlay = nullptr);
// The definition's event contract as an AsyncAPI 3.0 document: one channel per event type it
// consumes (receive) or produces (send), timers and operator events left out; each message is
// the CloudEvents envelope with the type's data schema where the graph has one
// (sagactl definitions --asyncapi NAME; docs/cli.md).
nlohmann::json to_asyncapi(const graph& g);
nlohmann::json to_json(const graph& g);
graph graph_from_json(const nlohmann::json& j);

// States reachable from `from` through table rows (from itself included only
// when a cycle leads back to it).
std::vector<std::string> reachable_from(const graph& g, std::string_view from);
// The states of g.states that no row takes to another state (internal rows and
// self-transitions stay), in that order: a definition's terminal states when it does not list
// them, and what check_graph expects of a declared list.
std::vector<std::string> without_way_out(const graph& g);

// Problems found at registration, each naming what is wrong:
// "unreachable state 'x'", "state 'x' is not terminal and has no way out",
// "consumed event type 'y' is used by no row".
std::vector<std::string> check_graph(const graph& g);

// Differences between two versions of a definition's graph, one line each.
std::vector<std::string> diff_graphs(const graph& before, const graph& after);

}  // namespace saga
