#pragma once
// saga/dsl.hpp — the DSL for writing workflows as Boost.MSM tables.
//
// Include this header only from a definition's .cpp file: its templates are
// heavy, and the rest of the program sees a definition through
// the plain saga::definition interface (see docs/dsl.md for a walk-through).
//
// A workflow is a front-end derived from dsl::machine<Self, Data> with
//   - static constexpr std::string_view name;       the definition's name
//   - using initial_state = dsl::state<"new">;      the pseudo-state of a new saga
//   - using transition_table = dsl::table<row<...>, ...>;
//     rows are row<source, event, target, action = none, guard = none>
//   - optionally (each derived from the table when left out, and checked
//     against it when given):
//     using consumes = dsl::types<E...>;            event types taken (every row's event)
//     using starts = dsl::types<E...>;              those that create a saga (rows from
//                                                   initial_state)
//     using terminal = dsl::types<S...>;            states no transition leaves
//   - optionally: using abort_state = S; using abort_actions = A;
//                 using attention_state = S; using resolution_targets = dsl::types<S...>;
//   - optionally: nlohmann::json carried(const Data&) — what follow-on events carry on.
// Actions only record intents (emit<E>, arm, disarm) and update the saga data;
// guards read the saga data and the event. Both carry a name for the graph. A
// row's action may be dsl::retry<Again, N, dsl::backoff<...>, Then> (try again
// after a durable wait, then give up: docs/dsl.md "Retries").
//
// Mistakes in a table are compile errors with one line that names the row
// (counted from 1) or the type, before the table is instantiated: see
// saga::dsl::mistake below and docs/dsl.md "When it does not compile".

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/mpl/for_each.hpp>
#include <boost/mpl/vector.hpp>
#include <boost/msm/front/functor_row.hpp>
#include <boost/msm/front/state_machine_def.hpp>
#include <nlohmann/json.hpp>

#include "saga/definition.hpp"
#include "saga/duration.hpp"

namespace saga::dsl {

// A string usable as a template argument: dsl::state<"placed">.
template <std::size_t N>
struct fixed_string {
  char value[N]{};
  constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, value); }
  constexpr std::string_view view() const { return {value, N - 1}; }
  static constexpr std::size_t size = N - 1;
};

using boost::msm::front::none;
using boost::msm::front::Row;

// A row of a transition table: source state, event, target state (none: an
// internal transition), and optionally an action and a guard.
template <class Source, class Event, class Target, class Action = none, class Guard = none>
using row = Row<Source, Event, Target, Action, Guard>;

template <class... T>
struct types {};

// A transition table: rows in a variadic list, as many as the workflow needs. (A
// boost::mpl::vector of rows works too, but stops at 20 rows unless every translation unit
// raises BOOST_MPL_LIMIT_VECTOR_SIZE with BOOST_MPL_CFG_NO_PREPROCESSED_HEADERS, which costs
// each of them about 1.7 s of compile time.)
template <class... Rows>
using table = types<Rows...>;

constexpr std::int64_t seconds(std::int64_t n) {
  return n * 1000;
}
constexpr std::int64_t minutes(std::int64_t n) {
  return n * 60 * 1000;
}
constexpr std::int64_t hours(std::int64_t n) {
  return n * 3600 * 1000;
}
constexpr std::int64_t days(std::int64_t n) {
  return n * 24 * 3600 * 1000;
}

// A state, named by its persisted name. States hold no data: saga data lives
// in the machine (dsl::machine::data()).
template <fixed_string Name>
struct state : boost::msm::front::state<> {
  static constexpr std::string_view name = Name.view();
};

// An event type without fields of its own; derive from it to add fields and
// give the derived type a nlohmann-json from_json(). The same types name what a
// definition emits (dsl::emit<E>). A type may declare the JSON Schema of its
// data, which the definition's AsyncAPI document carries:
//   static constexpr std::string_view schema = R"({"type": "object", ...})";
template <fixed_string Type>
struct event {
  static constexpr std::string_view type = Type.view();
};

namespace detail {
// Compile-time strings one after another (N characters in all), NUL-terminated: the storage of a
// string_view built from names.
template <std::size_t N>
constexpr std::array<char, N + 1> joined_chars(std::initializer_list<std::string_view> parts) {
  std::array<char, N + 1> a{};
  auto out = a.begin();
  for (const auto part : parts) out = std::copy(part.begin(), part.end(), out);
  return a;
}
}  // namespace detail

// The internal event a timer fires: type "saga.timer.<name>" (saga::timer_event_prefix).
template <fixed_string Name>
struct timer {
 private:
  static constexpr auto storage_ =
      detail::joined_chars<timer_event_prefix.size() + Name.size>({timer_event_prefix, Name.view()});

 public:
  static constexpr std::string_view name = Name.view();
  static constexpr std::string_view type{storage_.data(), storage_.size() - 1};
};

namespace detail {
// Drops the retries of `state` ("retry.<state>.<event>") and disarms their timers (compiled).
void forget_retries(std::map<std::string, int, std::less<>>& retries, saga::intents& out,
                    std::string_view state);
// The saga data as stored: `data`, plus the retries spent under "saga.retries" when there are any.
nlohmann::json stored_data(nlohmann::json data, const std::map<std::string, int, std::less<>>& retries);
// The retries spent, from stored saga data ({} when it has none).
std::map<std::string, int, std::less<>> retries_of(const nlohmann::json& stored);
}  // namespace detail

// The per-dispatch context an engine hands to the machine.
template <class Data>
struct context {
  Data data{};
  saga::intents out;
  std::map<std::string, int, std::less<>> retries;  // dsl::retry: tries spent, by retry timer name
  const saga::event* incoming = nullptr;
  std::int64_t now_ms = 0;
};

template <class Self, class Data>
struct machine : boost::msm::front::state_machine_def<Self> {
  using data_type = Data;

  // Inside a machine `row` is dsl::row (it hides the basic front-end's state_machine_def::row,
  // which takes member-function pointers).
  template <class Source, class Event, class Target, class Action = none, class Guard = none>
  using row = saga::dsl::row<Source, Event, Target, Action, Guard>;

  context<Data>* ctx = nullptr;

  Data& data() { return ctx->data; }
  const Data& data() const { return ctx->data; }
  const saga::event& incoming() const { return *ctx->incoming; }
  std::int64_t now_ms() const { return ctx->now_ms; }

  void emit(std::string_view type, nlohmann::json payload) {
    ctx->out.emits.push_back({std::string(type), std::move(payload)});
  }
  void arm(std::string_view timer_name, std::int64_t due_ms) {
    ctx->out.timers.push_back({std::string(timer_name), true, due_ms});
  }
  void disarm(std::string_view timer_name) { ctx->out.timers.push_back({std::string(timer_name), false, 0}); }
  // dsl::retry's count of tries spent (kept with the saga data); leaving a state forgets its
  // retries and disarms their timers.
  int& retries_spent(std::string_view retry_timer) {
    auto it = ctx->retries.find(retry_timer);
    return it != ctx->retries.end() ? it->second : ctx->retries[std::string(retry_timer)];
  }
  void left(std::string_view state) {
    if (!ctx->retries.empty()) detail::forget_retries(ctx->retries, ctx->out, state);
  }
  nlohmann::json carried_data() const {
    if constexpr (requires(const Self& s, const Data& d) { s.carried(d); })
      return static_cast<const Self*>(this)->carried(ctx->data);
    else
      return nlohmann::json(ctx->data);
  }
};

// ---- compiled helpers ------------------------------------------------------
// What does not depend on a workflow's types lives in saga_engine (engine/src/dsl_support.cpp),
// so that each definition's translation unit passes names instead of compiling the code.
namespace detail {

std::string label(std::string_view what, std::string_view name);  // what + name
std::string arm_label(std::string_view timer, std::int64_t delay_ms);
std::string arm_at_label(std::string_view timer, std::string_view due);

// Builds a definition's graph from the names its table passes, row by row.
class graph_builder {
 public:
  graph_builder(std::string_view name, std::string_view initial);
  // Starts a row (target empty: an internal row); action() and guard() add to its cells.
  void row(std::string_view source, std::string_view event, std::string_view target);
  void action(std::string_view name);  // one part of the row's action (joined with ", ")
  void guard(std::string_view text);   // appended to the row's guard expression
  void timer(std::string_view name);
  // A retry row (dsl::retry): its timer's event type, the budget and backoff; the parts of
  // Again follow, then retry_then(), then the parts of Then.
  void retry(std::string_view timer_name, int retries, std::int64_t first_ms, int factor);
  void retry_then(bool then);
  void emits(std::string_view type);
  // The JSON Schema of an event type's data, as the type declares it (static schema); throws
  // std::invalid_argument naming the type when the text is not a JSON object.
  void schema(std::string_view type, std::string_view json_schema);
  void consumes(std::span<const std::string_view> types);
  void starts(std::span<const std::string_view> types);
  void terminal(std::span<const std::string_view> states);  // else derived: without_way_out
  void abort_state(std::string_view state);
  void attention_state(std::string_view state);
  void resolution_targets(std::span<const std::string_view> states);
  void version(std::int64_t v);
  // A migration from version `from`: old state -> new state pairs, and the data transform's name.
  void migration(std::int64_t from, std::span<const std::pair<std::string_view, std::string_view>> states,
                 std::string_view data);
  saga::graph finish() &&;  // timers, produces, terminal and fingerprint

 private:
  void add_state(std::string_view s);
  saga::graph g_;
  std::set<std::string> timers_, emits_;
  std::string retry_budget_;
  bool terminal_declared_ = false;
};

// The graph's own string for `state`; throws std::invalid_argument when the graph has none.
std::string_view known_state(const saga::graph& g, std::string_view state);
[[noreturn]] void not_consumed(const saga::graph& g, std::string_view type);

}  // namespace detail

// ---- actions -------------------------------------------------------------

template <class... A>
using actions = boost::msm::front::ActionSequence_<boost::mpl::vector<A...>>;

// Builds a follow-on event's data: the data the saga carries on.
struct carry {
  template <class Fsm, class Event>
  nlohmann::json operator()(Fsm& fsm, const Event&) const {
    return fsm.carried_data();
  }
};

// Records a follow-on event of type `Out` (an event type declared once, as the events the table
// takes are: using claim_closed = dsl::event<"claim.closed">), its data built by `Build`. A typo
// in the name is a compile error, and the definition lists what it produces (graph().produces,
// with Out::schema when Out declares one).
template <class Out, class Build = carry>
struct emit {
  static_assert(
      requires { std::string_view(Out::type); },
      "dsl: emit<E> takes an event type, declared once: using claim_closed = "
      "dsl::event<\"claim.closed\">; ... dsl::emit<claim_closed>");
  using event_type = Out;
  static constexpr std::string_view emits = Out::type;
  static std::string name() { return detail::label("emit ", Out::type); }
  template <class Event, class Fsm, class Source, class Target>
  void operator()(const Event& e, Fsm& fsm, Source&, Target&) const {
    fsm.emit(Out::type, Build{}(fsm, e));
  }
};

// Arms `Timer` to fire `DelayMs` after the event is handled; arming again replaces.
template <class Timer, std::int64_t DelayMs>
struct arm {
  static constexpr std::string_view timer_name = Timer::name;
  static std::string name() { return detail::arm_label(Timer::name, DelayMs); }
  template <class Event, class Fsm, class Source, class Target>
  void operator()(const Event&, Fsm& fsm, Source&, Target&) const {
    fsm.arm(Timer::name, fsm.now_ms() + DelayMs);
  }
};

// Arms `Timer` at a time taken from the saga data: Due{}(data) -> Unix ms.
template <class Timer, class Due>
struct arm_at {
  static constexpr std::string_view timer_name = Timer::name;
  static std::string name() { return detail::arm_at_label(Timer::name, Due::name); }
  template <class Event, class Fsm, class Source, class Target>
  void operator()(const Event&, Fsm& fsm, Source&, Target&) const {
    fsm.arm(Timer::name, Due{}(std::as_const(fsm.data())));
  }
};

template <class Timer>
struct disarm {
  static std::string name() { return detail::label("disarm ", Timer::name); }
  template <class Event, class Fsm, class Source, class Target>
  void operator()(const Event&, Fsm& fsm, Source&, Target&) const {
    fsm.disarm(Timer::name);
  }
};

// ---- retries -------------------------------------------------------------

// Exponential backoff: the first wait, then each next one Factor times longer.
template <std::int64_t FirstMs, int Factor = 2>
struct backoff {
  static_assert(FirstMs > 0 && Factor >= 1, "dsl: backoff<first_ms, factor> needs first_ms > 0, factor >= 1");
  static constexpr std::int64_t first_ms = FirstMs;
  static constexpr int factor = Factor;
  static constexpr std::int64_t after(int tries_spent) {  // the wait before try tries_spent + 1
    std::int64_t ms = FirstMs;
    for (int i = 1; i < tries_spent; ++i) ms *= Factor;
    return ms;
  }
};

// The action of a retry row, row<S, Failed, GaveUp, dsl::retry<Again, Retries, Backoff, Then>>:
// when Failed arrives in S and fewer than Retries tries are spent, the saga stays in S, waits the
// backoff (a durable timer, "retry.<S>.<Failed's type>") and then runs Again; when they are spent
// it moves to GaveUp and runs Then. Leaving S any other way forgets the count and the timer.
template <class Again, int Retries, class Backoff, class Then = none>
struct retry {
  static_assert(Retries >= 1, "dsl: retry<Again, Retries, ...> needs Retries >= 1");
  using again = Again;
  using then = Then;
  using wait = Backoff;
  static constexpr int retries = Retries;
};

// ---- guards --------------------------------------------------------------

template <class... G>
struct all_of {
  template <class Event, class Fsm, class Source, class Target>
  bool operator()(const Event& e, Fsm& f, Source& s, Target& t) const {
    return (G{}(e, f, s, t) && ...);
  }
};

template <class G>
struct not_ {
  template <class Event, class Fsm, class Source, class Target>
  bool operator()(const Event& e, Fsm& f, Source& s, Target& t) const {
    return !G{}(e, f, s, t);
  }
};

// ---- names ---------------------------------------------------------------

namespace detail {

// Passes an action's or guard's name to the builder: a static `name`, a string or a function
// returning one.
template <class T>
void name_of(graph_builder& b, void (graph_builder::*add)(std::string_view)) {
  if constexpr (requires { T::name(); })
    (b.*add)(T::name());
  else if constexpr (requires { T::name; })
    (b.*add)(T::name);
  else
    static_assert(sizeof(T) == 0, "every action and guard needs a static `name`");
}

// An event type's declared data schema, for the graph (AsyncAPI payloads).
template <class E>
void schema_of(graph_builder& b) {
  if constexpr (requires { std::string_view(E::schema); }) b.schema(E::type, E::schema);
}
template <class... E>
void schemas_of(graph_builder& b, types<E...>) {
  (schema_of<E>(b), ...);
}

// What a row's action and guard cells tell the graph: the action's name (each part of a
// multi-action cell), the timers it arms, the events it emits; the guard's expression.
template <class T>
struct namer {
  static void action(graph_builder& b) {
    name_of<T>(b, &graph_builder::action);
    if constexpr (requires { T::timer_name; }) b.timer(T::timer_name);
    emits(b);
  }
  static void emits(graph_builder& b) {
    if constexpr (requires { T::emits; }) {
      b.emits(T::emits);
      schema_of<typename T::event_type>(b);
    }
  }
  static void guard(graph_builder& b) { name_of<T>(b, &graph_builder::guard); }
};

template <>
struct namer<none> {
  static void action(graph_builder&) {}
  static void emits(graph_builder&) {}
  static void guard(graph_builder&) {}
};

// mpl::vector<A...> pads its arguments with mpl::na.
template <>
struct namer<boost::mpl::na> : namer<none> {};

template <class... A>
struct namer<boost::msm::front::ActionSequence_<boost::mpl::vector<A...>>> {
  static void action(graph_builder& b) { (namer<A>::action(b), ...); }
  static void emits(graph_builder& b) { (namer<A>::emits(b), ...); }
};

template <class G, class... More>
struct namer<all_of<G, More...>> {
  static void guard(graph_builder& b) {
    namer<G>::guard(b);
    ((b.guard(" && "), namer<More>::guard(b)), ...);
  }
};

template <class G>
struct namer<not_<G>> {
  static void guard(graph_builder& b) {
    b.guard("!");
    namer<G>::guard(b);
  }
};

// ---- retry rows ------------------------------------------------------------
// A row whose action is dsl::retry is one row of the table and one edge of the graph, and the
// runner takes it as three rows (expanded<R>):
//   S --Failed [tries left]--> (stays)  count a try, arm the retry timer after the backoff
//   S --Failed [none left]---> GaveUp   Then
//   S --retry timer----------> (stays)  Again

// The retry's timer: "retry.<S>.<Failed's type>", firing as "saga.timer.retry.<S>.<type>".
template <class S, class Failed>
struct retry_timer {
 private:
  static constexpr std::string_view word = "retry.", dot = ".";
  static constexpr auto storage_ =
      joined_chars<timer_event_prefix.size() + word.size() + S::name.size() + dot.size() +
                   Failed::type.size()>({timer_event_prefix, word, S::name, dot, Failed::type});

 public:
  static constexpr std::string_view type{storage_.data(), storage_.size() - 1};
  static constexpr std::string_view name = type.substr(timer_event_prefix.size());
};

template <class Timer, int Retries>
struct retries_left {
  template <class E, class F, class S, class T>
  bool operator()(const E&, F& fsm, S&, T&) const {
    return fsm.retries_spent(Timer::name) < Retries;
  }
};

template <class Timer, class Backoff>
struct retry_wait {
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    const int spent = ++fsm.retries_spent(Timer::name);
    fsm.arm(Timer::name, fsm.now_ms() + Backoff::after(spent));
  }
};

template <class R>
struct expanded {
  using type = types<R>;
};
template <class S, class E, class T, class Again, int N, class B, class Then, class G>
struct expanded<Row<S, E, T, retry<Again, N, B, Then>, G>> {
  static_assert(std::is_same_v<G, none>, "dsl: a retry row takes no guard");
  static_assert(!std::is_same_v<T, none> && !std::is_same_v<T, S>,
                "dsl: a retry row's target is the state the saga moves to once the retries are spent: "
                "another state");
  using timer = retry_timer<S, E>;
  using type = types<Row<S, E, none, retry_wait<timer, B>, retries_left<timer, N>>,
                     Row<S, E, T, Then, not_<retries_left<timer, N>>>, Row<S, timer, none, Again, none>>;
};

// Passes a table's rows to the graph builder.
template <class... R>
void collect(graph_builder& b, types<R...>) {
  (collect(b, types<R>{}), ...);
}
template <class S, class E, class T, class A, class G>
void collect(graph_builder& b, types<Row<S, E, T, A, G>>) {
  if constexpr (std::is_same_v<T, none>)
    b.row(S::name, E::type, {});
  else
    b.row(S::name, E::type, T::name);
  namer<A>::action(b);
  namer<G>::guard(b);
}
template <class S, class E, class T, class Again, int N, class B, class Then, class G>
void collect(graph_builder& b, types<Row<S, E, T, retry<Again, N, B, Then>, G>>) {
  b.row(S::name, E::type, T::name);
  b.retry(retry_timer<S, E>::name, N, B::first_ms, B::factor);
  namer<Again>::action(b);
  b.retry_then(!std::is_same_v<Then, none>);
  namer<Then>::action(b);
}

// The event types or state names of a dsl::types list.
template <class List>
constexpr std::array<std::string_view, 0> event_types{};
template <class... T>
constexpr std::array<std::string_view, sizeof...(T)> event_types<types<T...>>{T::type...};
template <class List>
constexpr std::array<std::string_view, 0> state_names{};
template <class... T>
constexpr std::array<std::string_view, sizeof...(T)> state_names<types<T...>>{T::name...};

// ---- running a table -------------------------------------------------------
// The DSL runs a Boost.MSM front-end table itself, with Boost.MSM's semantics for a flat
// machine: of the rows that leave the active state on the event, the last one in the table
// is tried first; a row fires when it has no guard or its guard says yes; an external row
// calls the source's on_exit, the action, the target's on_entry; a row whose target is `none`
// is internal (guard and action only, the state stays). Why not msm::back::state_machine:
// docs/dsl.md "Compile cost" (it was more than half of a definition's compile time).

// The rows that take event E, last row first.
template <class E, class Rows, class Out = types<>>
struct taking;
template <class E, class Out>
struct taking<E, types<>, Out> {
  using type = Out;
};
template <class E, class R, class... Rest, class... Out>
struct taking<E, types<R, Rest...>, types<Out...>>
    : taking<E, types<Rest...>,
             std::conditional_t<std::is_same_v<typename R::Evt, E>, types<R, Out...>, types<Out...>>> {};

template <class Guard, class E, class Fsm, class S, class T>
bool allows(const E& e, Fsm& fsm, S& source, T& target) {
  if constexpr (std::is_same_v<Guard, none>)
    return true;
  else
    return Guard{}(e, fsm, source, target);
}

template <class Action, class E, class Fsm, class S, class T>
void perform(const E& e, Fsm& fsm, S& source, T& target) {
  if constexpr (!std::is_same_v<Action, none>) Action{}(e, fsm, source, target);
}

// Fires the row if the machine is in its source state and its guard allows; `state` is the
// active state's name. (Matched as Row<S, E, T, A, G>: MSM's internal rows say Target = S.)
template <class R, class E, class Fsm>
struct row_runner;
template <class S, class Ev, class T, class A, class G, class E, class Fsm>
struct row_runner<Row<S, Ev, T, A, G>, E, Fsm> {
  static bool fire(Fsm& fsm, std::string_view& state, const E& e);
};

template <class S, class Ev, class T, class A, class G, class E, class Fsm>
bool row_runner<Row<S, Ev, T, A, G>, E, Fsm>::fire(Fsm& fsm, std::string_view& state, const E& e) {
  if (state != S::name) return false;
  S source;
  if constexpr (std::is_same_v<T, none>) {
    if (!allows<G>(e, fsm, source, source)) return false;
    perform<A>(e, fsm, source, source);
  } else {
    T target;
    if (!allows<G>(e, fsm, source, target)) return false;
    source.on_exit(e, fsm);
    perform<A>(e, fsm, source, target);
    target.on_entry(e, fsm);
    state = T::name;
    if constexpr (!std::is_same_v<S, T>) fsm.left(S::name);
  }
  return true;
}

template <class Fsm, class E, class... R>
bool take(Fsm& fsm, std::string_view& state, const E& e, types<R...>) {
  return (row_runner<R, E, Fsm>::fire(fsm, state, e) || ...);
}

}  // namespace detail

// ---- compile-time checks ---------------------------------------------------

// Each mistake a table can hold is one of these: instantiating it fails one
// static_assert, whose line says what is wrong, right after the line that
// names the mistake with the row (counted from 1) and the type at fault, e.g.
//   In instantiation of 'struct saga::dsl::mistake::row_event_must_be_an_event<2, paid>':
//   error: static assertion failed: dsl: the event column of this row holds no event type
//          (swapped with the target?)
// and the table goes no further (nothing instantiates it: no cascade of errors).
namespace mistake {
template <class...>
inline constexpr bool reported = false;

template <class Event>
struct event_has_data_fields_but_no_from_json : std::false_type {
  static_assert(reported<Event>,
                "dsl: this event type has data fields but no from_json(const nlohmann::json&, Event&) "
                "found by ADL: its data would be silently dropped");
};
template <std::size_t Row, class Entry>
struct table_entry_must_be_a_row : std::false_type {
  static_assert(reported<Entry>,
                "dsl: a transition_table entry is not a dsl::row<source, event, target, ...>");
};
template <std::size_t Row, class Got>
struct row_source_must_be_a_state : std::false_type {
  static_assert(reported<Got>, "dsl: the source column of this row holds no state (dsl::state<\"name\">)");
};
template <std::size_t Row, class Got>
struct row_event_must_be_an_event : std::false_type {
  static_assert(reported<Got>,
                "dsl: the event column of this row holds no event type (swapped with the target?)");
};
template <std::size_t Row, class Got>
struct row_target_must_be_a_state_or_none : std::false_type {
  static_assert(reported<Got>, "dsl: the target column of this row holds neither a state nor none");
};
template <std::size_t Row, class Action>
struct row_action_must_be_callable_as_void_of_event_fsm_source_target : std::false_type {
  static_assert(reported<Action>,
                "dsl: this row's action cannot be called as void operator()(const Event&, Fsm&, Source&, "
                "Target&) const");
};
template <std::size_t Row, class Guard>
struct row_guard_must_be_callable_as_bool_of_event_fsm_source_target : std::false_type {
  static_assert(reported<Guard>,
                "dsl: this row's guard cannot be called as bool operator()(const Event&, Fsm&, Source&, "
                "Target&) const");
};
template <class Event>
struct consumes_lists_an_event_no_row_takes : std::false_type {
  static_assert(reported<Event>, "dsl: `consumes` lists an event type that no row of the table takes");
};
template <class Event>
struct starts_lists_an_event_no_row_from_the_initial_state_takes : std::false_type {
  static_assert(reported<Event>,
                "dsl: `starts` lists an event type that no row leaving the initial state takes");
};
}  // namespace mistake

namespace detail {

template <class T>
concept dsl_event = requires {
  { T::type } -> std::convertible_to<std::string_view>;
};
template <class T>
concept dsl_state = !dsl_event<T> && requires {
  { T::name } -> std::convertible_to<std::string_view>;
};
template <class E>
concept reads_json = requires(const nlohmann::json& j, E& e) {
  from_json(j, e);
};

template <class T, class... L>
constexpr bool one_of = (std::is_same_v<T, L> || ...);

// Type lists: concatenation, and appending what is not there yet.
template <class... L>
struct concat;
template <class... A>
struct concat<types<A...>> {
  using type = types<A...>;
};
template <class... A, class... B, class... Rest>
struct concat<types<A...>, types<B...>, Rest...> : concat<types<A..., B...>, Rest...> {};

template <class List, class... T>
struct unique;
template <class... Seen>
struct unique<types<Seen...>> {
  using type = types<Seen...>;
};
template <class... Seen, class T, class... Rest>
struct unique<types<Seen...>, T, Rest...>
    : unique<std::conditional_t<one_of<T, Seen...>, types<Seen...>, types<Seen..., T>>, Rest...> {};

// The rows of a transition table as written (a dsl::table, or an mpl::vector padded with
// mpl::na), and as the runner takes them (retry rows expanded).
template <class Table>
struct rows_of;
template <template <class...> class V, class... R>
struct rows_of<V<R...>> {
  using type =
      typename concat<types<>,
                      std::conditional_t<std::is_same_v<R, boost::mpl::na>, types<>, types<R>>...>::type;
};
template <class Rows>
struct expand_all;
template <class... R>
struct expand_all<types<R...>> {
  using type = typename concat<types<>, typename expanded<R>::type...>::type;
};

template <class R>
struct is_retry_row : std::false_type {};
template <class S, class E, class T, class Again, int N, class B, class Then, class G>
struct is_retry_row<Row<S, E, T, retry<Again, N, B, Then>, G>> : std::true_type {};

template <class T>
struct is_row : std::false_type {};
template <class S, class E, class T, class A, class G>
struct is_row<Row<S, E, T, A, G>> : std::true_type {};

// The events of the rows (all of them, or those leaving `From`), in table order, once each.
template <class Rows, class From = void>
struct events_of;
template <class List>
struct unique_list;
template <class... E>
struct unique_list<types<E...>> : unique<types<>, E...> {};
template <class From, class... R>
struct events_of<types<R...>, From> {
  using type = typename unique_list<typename concat<
      types<>, std::conditional_t<std::is_void_v<From> || std::is_same_v<typename R::Source, From>,
                                  types<typename R::Evt>, types<>>...>::type>::type;
};

template <class A, class E, class F, class S, class T>
struct action_callable : std::bool_constant<std::is_invocable_v<A, const E&, F&, S&, T&>> {};
template <class E, class F, class S, class T>
struct action_callable<none, E, F, S, T> : std::true_type {};
template <class E, class F, class S, class T>
struct action_callable<boost::mpl::na, E, F, S, T> : std::true_type {};
template <class... A, class E, class F, class S, class T>
struct action_callable<boost::msm::front::ActionSequence_<boost::mpl::vector<A...>>, E, F, S, T>
    : std::bool_constant<(action_callable<A, E, F, S, T>::value && ...)> {};

template <class G, class E, class F, class S, class T>
struct guard_callable : std::bool_constant<std::is_invocable_r_v<bool, G, const E&, F&, S&, T&>> {};
template <class E, class F, class S, class T>
struct guard_callable<none, E, F, S, T> : std::true_type {};
template <class... G, class E, class F, class S, class T>
struct guard_callable<all_of<G...>, E, F, S, T>
    : std::bool_constant<(guard_callable<G, E, F, S, T>::value && ...)> {};
template <class G, class E, class F, class S, class T>
struct guard_callable<not_<G>, E, F, S, T> : guard_callable<G, E, F, S, T> {};

template <class Front, std::size_t N, class R>
constexpr bool row_ok();
// A retry row is right when each row it expands into is (an error names the retry row).
template <class Front, std::size_t N, class... R>
constexpr bool rows_ok(types<R...>) {
  return (row_ok<Front, N, R>() && ...);
}

template <class Front, std::size_t N, class R>
constexpr bool row_ok() {
  if constexpr (is_retry_row<R>::value) {
    return rows_ok<Front, N>(typename expanded<R>::type{});
  } else if constexpr (!is_row<R>::value) {
    return mistake::table_entry_must_be_a_row<N, R>::value;
  } else {
    using S = typename R::Source;
    using E = typename R::Evt;
    using T = typename R::Target;
    using A = typename R::Action;
    using G = typename R::Guard;
    if constexpr (!dsl_state<S>) {
      return mistake::row_source_must_be_a_state<N, S>::value;
    } else if constexpr (!dsl_event<E>) {
      return mistake::row_event_must_be_an_event<N, E>::value;
    } else if constexpr (!std::is_same_v<T, none> && !dsl_state<T>) {
      return mistake::row_target_must_be_a_state_or_none<N, T>::value;
    } else {
      using To = std::conditional_t<std::is_same_v<T, none>, S, T>;  // MSM's internal rows
      if constexpr (!action_callable<A, E, Front, S, To>::value) {
        return mistake::row_action_must_be_callable_as_void_of_event_fsm_source_target<N, A>::value;
      } else if constexpr (!guard_callable<G, E, Front, S, To>::value) {
        return mistake::row_guard_must_be_callable_as_bool_of_event_fsm_source_target<N, G>::value;
      } else {
        return true;
      }
    }
  }
}

template <class E>
constexpr bool event_ok() {
  if constexpr (!std::is_empty_v<E> && !reads_json<E>) {
    return mistake::event_has_data_fields_but_no_from_json<E>::value;
  } else {
    return true;
  }
}

// E is among the types the table uses that way, or Mistake<E> is reported.
template <template <class> class Mistake, class E, class... Taken>
constexpr bool among() {
  if constexpr (!one_of<E, Taken...>)
    return Mistake<E>::value;
  else
    return true;
}

template <class Front>
using declared_rows = typename rows_of<typename Front::transition_table>::type;
template <class Front>
using table_rows = typename expand_all<declared_rows<Front>>::type;

template <class Front, class Rows = declared_rows<Front>>
struct table_check;
template <class Front, class... R>
struct table_check<Front, types<R...>> {
  template <std::size_t... I>
  static constexpr bool rows(std::index_sequence<I...>) {
    return (row_ok<Front, I + 1, R>() && ...);
  }
  static constexpr bool value = rows(std::index_sequence_for<R...>{});
};

// What the definition consumes and what starts a saga: declared, or derived from the table.
template <class Front>
struct consumed {
  using type = typename events_of<table_rows<Front>>::type;
};
template <class Front>
requires requires {
  typename Front::consumes;
}
struct consumed<Front> {
  using type = typename Front::consumes;
};
template <class Front>
struct started {
  using type = typename events_of<table_rows<Front>, typename Front::initial_state>::type;
};
template <class Front>
requires requires {
  typename Front::starts;
}
struct started<Front> {
  using type = typename Front::starts;
};

template <class Front, class Taken = typename events_of<table_rows<Front>>::type,
          class Starting = typename events_of<table_rows<Front>, typename Front::initial_state>::type,
          class Consumed = typename consumed<Front>::type, class Started = typename started<Front>::type>
struct lists_check;
template <class Front, class... Taken, class... Starting, class... Consumed, class... Started>
struct lists_check<Front, types<Taken...>, types<Starting...>, types<Consumed...>, types<Started...>> {
  static constexpr bool value =
      (event_ok<Taken>() && ...) &&
      (among<mistake::consumes_lists_an_event_no_row_takes, Consumed, Taken...>() && ...) &&
      (among<mistake::starts_lists_an_event_no_row_from_the_initial_state_takes, Started, Starting...>() &&
       ...);
};

// The whole table, checked in that order; a table that fails is never instantiated.
template <class Front>
constexpr bool migrations_ok();

template <class Front>
constexpr bool checked() {
  if constexpr (!table_check<Front>::value)
    return false;
  else if constexpr (!lists_check<Front>::value)
    return false;
  else
    return migrations_ok<Front>();
}

}  // namespace detail

// ---- reading event data ----------------------------------------------------

// data[key] as an int64 (amounts are integers in minor units). Throws
// std::invalid_argument naming the field when it is missing, not an integer
// (1.9, 1e300), or outside int64 (2^63): a definition must reject such a value,
// never wrap or truncate it.
std::int64_t integer_field(const nlohmann::json& data, const char* key);

// data[key] as a string. Throws std::invalid_argument naming the field when it
// is missing (or null) or of another JSON type.
std::string string_field(const nlohmann::json& data, const char* key);

// data[key] as a string, or `fallback` when it is absent or null; any other
// JSON type throws std::invalid_argument naming the field.
std::string optional_string_field(const nlohmann::json& data, const char* key, std::string fallback = {});

namespace detail {

// A rejection reason from nlohmann-json's exception: what was read, and the library's message
// without its "[json.exception.…]" tag:
//   "[json.exception.type_error.302] type must be number, but is string"
//   -> "data: type must be number, but is string"
std::string json_reason(std::string_view where, const nlohmann::json::exception& e);

// The same, naming the field when it can be found: `scratch` is a copy of the JSON that was
// read, and `rerun` reads `scratch` again the same way (it must have no effect but throwing).
// The field is the node whose type, changed to the one the read wanted, moves the read past
// this error: "data 'line.sku': type must be string, but is number". At most 16 more reads.
std::string json_reason(std::string_view where, const nlohmann::json::exception& e, nlohmann::json& scratch,
                        const std::function<void()>& rerun);

}  // namespace detail

// ---- versions and migrations (docs/dsl.md, "Changing a workflow") ----------
//
//   struct order_v2 : dsl::machine<order_v2, order_data_v2> {
//     static constexpr std::string_view name = "order_lifecycle";
//     static constexpr std::int64_t version = 2;
//     using migrations =
//         dsl::types<dsl::migration<1, dsl::types<dsl::moves<"paid", charged>>, add_currency>>;
//     ...
//   };
//
// A saga on version 1 in state "paid" moves to `charged`; one in a state that version 2 also has
// stays in it; any other state has no mapping and the saga is refused. `add_currency` (optional)
// rewrites the old data, `void operator()(nlohmann::json& data) const`, with a static `name`;
// the result must then read as version 2's data type.

// A state of the old version (by name) and the state of this version it moves to.
template <fixed_string Old, class New>
struct moves {
  static constexpr std::string_view from = Old.view();
  using to = New;
};

template <std::int64_t From, class Moves = types<>, class Data = none>
struct migration {
  static constexpr std::int64_t from = From;
  using moves = Moves;
  using data = Data;
};

namespace mistake {
template <class Entry>
struct migrations_entry_must_be_a_migration : std::false_type {
  static_assert(reported<Entry>,
                "dsl: a `migrations` entry is not a dsl::migration<from_version, moves, data>");
};
template <class Entry>
struct moves_entry_must_be_moves_to_a_state : std::false_type {
  static_assert(
      reported<Entry>,
      "dsl: a migration's moves list holds something that is not dsl::moves<\"old state\", NewState>"
      " (or its target holds no state)");
};
template <class Data>
struct migration_data_must_be_callable_on_json : std::false_type {
  static_assert(
      reported<Data>,
      "dsl: a migration's data transform cannot be called as void operator()(nlohmann::json&) const, "
      "or has no static `name`");
};
}  // namespace mistake

namespace detail {

template <class M>
struct is_moves : std::false_type {};
template <fixed_string Old, class New>
struct is_moves<moves<Old, New>> : std::bool_constant<dsl_state<New>> {};

template <class X>
constexpr bool moves_entry_ok() {
  if constexpr (is_moves<X>::value)
    return true;
  else
    return mistake::moves_entry_must_be_moves_to_a_state<X>::value;
}

template <class D>
constexpr bool data_transform_ok() {
  if constexpr (std::is_same_v<D, none>)
    return true;
  else
    return std::is_invocable_v<const D&, nlohmann::json&> && requires {
      D::name;
    };
}

template <class M>
constexpr bool migration_ok() {
  if constexpr (!requires {
                  M::from;
                  typename M::moves;
                  typename M::data;
                }) {
    return mistake::migrations_entry_must_be_a_migration<M>::value;
  } else {
    constexpr auto moves_ok = []<class... X>(types<X...>) { return (moves_entry_ok<X>() && ...); };
    if constexpr (!moves_ok(typename M::moves{}))
      return false;
    else if constexpr (!data_transform_ok<typename M::data>())
      return mistake::migration_data_must_be_callable_on_json<typename M::data>::value;
    else
      return true;
  }
}

template <class Front>
constexpr bool migrations_ok() {
  if constexpr (requires { typename Front::migrations; })
    return []<class... M>(types<M...>) { return (migration_ok<M>() && ...); }(typename Front::migrations{});
  else
    return true;
}

template <class M>
void add_migration(graph_builder& b) {
  constexpr auto pairs = []<class... X>(types<X...>) {
    return std::array<std::pair<std::string_view, std::string_view>, sizeof...(X)>{
        std::pair<std::string_view, std::string_view>{X::from, X::to::name}...};
  }(typename M::moves{});
  if constexpr (std::is_same_v<typename M::data, none>)
    b.migration(M::from, pairs, {});
  else
    b.migration(M::from, pairs, M::data::name);
}

}  // namespace detail

// ---- the definition --------------------------------------------------------

template <class Front>
class definition final : public saga::definition {
  using data_type = typename Front::data_type;
  using handler = bool (*)(Front&, std::string_view&, const saga::event&);

 public:
  definition() : graph_(make_graph()) {}

  const saga::graph& graph() const override { return graph_; }

  static saga::graph make_graph() {
    detail::graph_builder b(Front::name, Front::initial_state::name);
    detail::collect(b, detail::declared_rows<Front>{});
    if constexpr (requires { typename Front::abort_actions; })
      detail::namer<typename Front::abort_actions>::emits(b);
    b.consumes(detail::event_types<typename detail::consumed<Front>::type>);
    detail::schemas_of(b, typename detail::consumed<Front>::type{});
    b.starts(detail::event_types<typename detail::started<Front>::type>);
    if constexpr (requires { typename Front::terminal; })
      b.terminal(detail::state_names<typename Front::terminal>);
    if constexpr (requires { typename Front::abort_state; }) b.abort_state(Front::abort_state::name);
    if constexpr (requires { typename Front::resolution_targets; })
      b.resolution_targets(detail::state_names<typename Front::resolution_targets>);
    if constexpr (requires { typename Front::attention_state; })
      b.attention_state(Front::attention_state::name);
    if constexpr (requires { Front::version; }) b.version(Front::version);
    if constexpr (requires { typename Front::migrations; })
      []<class... M>(detail::graph_builder& gb, types<M...>) { (detail::add_migration<M>(gb), ...); }(
          b, typename Front::migrations{});
    return std::move(b).finish();
  }

  saga::dispatch_output dispatch(const saga::dispatch_input& in) const override {
    const auto h = std::find_if(handlers.begin(), handlers.end(),
                                [&](const handler_entry& e) { return e.type == in.incoming.type; });
    if (h == handlers.end()) detail::not_consumed(graph_, in.incoming.type);
    detail_context ctx;
    std::string_view state;
    bool handled;
    try {
      handled = run(*h, in, in.incoming, ctx, state);
    } catch (const nlohmann::json::exception& e) {
      saga::event probe = in.incoming;
      throw std::invalid_argument(detail::json_reason("data", e, probe.data, [&] {
        detail_context again;
        std::string_view s;
        run(*h, in, probe, again, s);
      }));
    }
    return finish(ctx, state, handled);
  }

  saga::dispatch_output abort(const saga::dispatch_input& in) const {
    detail_context ctx;
    Front m;
    const auto state = prepare(m, ctx, in);
    if constexpr (requires { typename Front::abort_actions; }) {
      typename Front::abort_state target;
      operator_event e;
      typename Front::abort_actions{}(e, m, target, target);
    }
    if (state != graph_.abort_state) m.left(state);  // forgets the state's retries
    return finish(ctx, graph_.abort_state, true);
  }

  saga::dispatch_output migrate(const saga::dispatch_input& in, std::int64_t from,
                                std::string_view to) const override {
    nlohmann::json old = in.data != nullptr ? *in.data : nlohmann::json::object();
    if constexpr (requires { typename Front::migrations; })
      []<class... M>(std::int64_t v, nlohmann::json& d, types<M...>) { (transform<M>(v, d), ...); }(
          from, old, typename Front::migrations{});
    saga::dispatch_input moved = in;
    moved.data = &old;
    moved.state = graph_.initial;  // prepare() reads the data; the old state need not be ours
    detail_context ctx;
    Front m;
    prepare(m, ctx, moved);  // throws, naming the field, when the data does not fit this version
    if (in.state != to) m.left(in.state);  // forgets the old state's retries, disarms their timers
    return finish(ctx, detail::known_state(graph_, to), true);
  }

  saga::dispatch_output operator_action(const saga::dispatch_input& in, std::string_view action,
                                        std::string_view to) const override {
    if (action == "abort") return abort(in);
    detail_context ctx;
    Front m;
    const auto state = prepare(m, ctx, in);
    if (state != to) m.left(state);
    return finish(ctx, to, true);
  }

 private:
  using detail_context = context<data_type>;
  struct operator_event {
    static constexpr std::string_view type = "saga.operator";
  };

  template <class M>
  static void transform(std::int64_t from, nlohmann::json& data) {
    if constexpr (!std::is_same_v<typename M::data, none>)
      if (M::from == from) typename M::data{}(data);
  }

  template <class E>
  static bool handle(Front& m, std::string_view& state, const saga::event& in) {
    using rows = typename detail::taking<E, detail::table_rows<Front>>::type;
    if constexpr (requires(const nlohmann::json& j, E& e) { from_json(j, e); })
      return detail::take(m, state, in.data.get<E>(), rows{});
    else
      return detail::take(m, state, E{}, rows{});
  }

  // Loads the saga data into the context and returns the active state's name (the graph's
  // own string, which outlives the dispatch).
  std::string_view prepare(Front& m, detail_context& ctx, const saga::dispatch_input& in) const {
    if (in.data != nullptr) {
      try {
        ctx.data = in.data->get<data_type>();
        ctx.retries = detail::retries_of(*in.data);
      } catch (const nlohmann::json::exception& e) {
        nlohmann::json probe = *in.data;
        throw std::invalid_argument(detail::json_reason("saga data", e, probe, [&] {
          (void)probe.get<data_type>();
          (void)detail::retries_of(probe);
        }));
      }
    }
    ctx.incoming = &in.incoming;
    ctx.now_ms = in.now_ms;
    m.ctx = &ctx;
    return detail::known_state(graph_, in.state);
  }

  static saga::dispatch_output finish(detail_context& ctx, std::string_view state, bool handled) {
    saga::dispatch_output out;
    out.handled = handled;
    out.state = std::string(state);
    out.data = detail::stored_data(nlohmann::json(ctx.data), ctx.retries);
    out.intents = std::move(ctx.out);
    return out;
  }

  // Each consumed event type's handler: a constant table, searched in order (a dozen types).
  struct handler_entry {
    std::string_view type;
    handler run;
  };

  // Decodes the event's data, runs guards and actions; the outcome is in `ctx` and `state`.
  bool run(const handler_entry& h, const saga::dispatch_input& in, const saga::event& incoming,
           detail_context& ctx, std::string_view& state) const {
    Front m;
    state = prepare(m, ctx, in);
    ctx.incoming = &incoming;
    return h.run(m, state, incoming);
  }

  template <class... E>
  static constexpr std::array<handler_entry, sizeof...(E)> handlers_of(types<E...>) {
    return {handler_entry{E::type, &handle<E>}...};
  }
  static constexpr auto handlers = handlers_of(typename detail::consumed<Front>::type{});

  saga::graph graph_;
};

// The factory a definition's .cpp file exposes through its plain header.
// (A table that fails detail::checked() has already been reported; nothing
// instantiates it, so the error is the one line that names the mistake.)
template <class Front>
std::shared_ptr<const saga::definition> make_definition() {
  if constexpr (detail::checked<Front>())
    return std::make_shared<const definition<Front>>();
  else
    return nullptr;
}

}  // namespace saga::dsl
