// Definition metadata: graphs extracted from MSM tables, fingerprints, the
// registration checks, states persisted by name across a changed table, and
// the DOT / Mermaid exports. The small machines here exist only for the tests.

#include "saga/graph.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/dsl.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace dsl = saga::dsl;
using dsl::none;
using dsl::Row;

struct counter_data {
  int steps = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(counter_data, steps)

using fresh = dsl::state<"new">;
using a = dsl::state<"a">;
using b = dsl::state<"b">;
using c = dsl::state<"c">;
using x = dsl::state<"x">;
using start = dsl::event<"t.start">;
using next = dsl::event<"t.next">;
using finish = dsl::event<"t.finish">;
using jump = dsl::event<"t.jump">;

struct step {
  static constexpr std::string_view name = "step";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    ++fsm.data().steps;
  }
};

using t_finished = dsl::event<"t.finished">;

struct v1 : dsl::machine<v1, counter_data> {
  static constexpr std::string_view name = "test_flow";
  using initial_state = fresh;
  // clang-format off
  using transition_table = boost::mpl::vector<
    Row< fresh, start,  a, step,                      none >,
    Row< a,     next,   b, step,                      none >,
    Row< b,     finish, c, dsl::actions<step, dsl::emit<t_finished>>, none >
  >;
  // clang-format on
  using consumes = dsl::types<start, next, finish>;
  using starts = dsl::types<start>;
  using terminal = dsl::types<c>;
};

// v1 with one row inserted before the others: MSM's numeric state ids change.
struct v2 : dsl::machine<v2, counter_data> {
  static constexpr std::string_view name = "test_flow";
  using initial_state = fresh;
  // clang-format off
  using transition_table = boost::mpl::vector<
    Row< a,     jump,   c, step,                      none >,
    Row< fresh, start,  a, step,                      none >,
    Row< a,     next,   b, step,                      none >,
    Row< b,     finish, c, dsl::actions<step, dsl::emit<t_finished>>, none >
  >;
  // clang-format on
  using consumes = dsl::types<start, next, finish, jump>;
  using starts = dsl::types<start>;
  using terminal = dsl::types<c>;
};

// v1 without state b.
struct v3 : dsl::machine<v3, counter_data> {
  static constexpr std::string_view name = "test_flow";
  using initial_state = fresh;
  // clang-format off
  using transition_table = boost::mpl::vector<
    Row< fresh, start,  a, step, none >,
    Row< a,     finish, c, step, none >
  >;
  // clang-format on
  using consumes = dsl::types<start, finish>;
  using starts = dsl::types<start>;
  using terminal = dsl::types<c>;
};

// Broken on purpose, one problem each.
struct with_unreachable : dsl::machine<with_unreachable, counter_data> {
  static constexpr std::string_view name = "broken_unreachable";
  using initial_state = fresh;
  using transition_table = boost::mpl::vector<Row<fresh, start, a, none, none>, Row<x, next, a, none, none>>;
  using consumes = dsl::types<start, next>;
  using starts = dsl::types<start>;
  using terminal = dsl::types<a>;
};

struct with_dead_end : dsl::machine<with_dead_end, counter_data> {
  static constexpr std::string_view name = "broken_dead_end";
  using initial_state = fresh;
  using transition_table = boost::mpl::vector<Row<fresh, start, a, none, none>, Row<a, next, b, none, none>>;
  using consumes = dsl::types<start, next>;
  using starts = dsl::types<start>;
  using terminal = dsl::types<a>;
};

// v2's table through dsl::row, with nothing but the table: `a` is left by two events, `b` by
// one; `c` has only an internal row and a self-transition (neither leaves: it is terminal).
struct derived : dsl::machine<derived, counter_data> {
  static constexpr std::string_view name = "test_derived";
  using initial_state = fresh;
  // clang-format off
  using transition_table = boost::mpl::vector<
    row< fresh, start,  a, step >,
    row< a,     next,   b >,
    row< a,     jump,   c, step >,
    row< b,     finish, c >,
    row< c,     finish, none, step >,
    row< c,     next,   c >
  >;
  // clang-format on
};

saga::event ev(const std::string& id, const std::string& type) {
  saga::event e;
  e.id = id;
  e.source = "urn:test";
  e.type = type;
  e.subject = "k-1";
  return e;
}

std::string add_error(const std::shared_ptr<const saga::definition>& d) {
  saga::test::temp_dir dir;
  saga::manual_clock clock;
  saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
  saga::engine eng(st, clock);
  try {
    eng.add(d);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_SUITE("graph") {
  TEST_CASE("the graph comes from the transition table with rows in table order") {
    auto d = dsl::make_definition<v1>();
    const auto& g = d->graph();
    CHECK(g.states == std::vector<std::string>{"new", "a", "b", "c"});
    REQUIRE(g.rows.size() == 3);
    CHECK(g.rows[2].source == "b");
    CHECK(g.rows[2].event == "t.finish");
    CHECK(g.rows[2].target == "c");
    CHECK(g.rows[2].action == "step, emit t.finished");
    CHECK(g.rows[2].guard.empty());
    CHECK(saga::check_graph(g).empty());
  }

  TEST_CASE("two definitions that differ by one row give graphs that differ by exactly that row") {
    auto g1 = dsl::make_definition<v1>()->graph();
    auto g2 = dsl::make_definition<v2>()->graph();
    CHECK(g1.fingerprint != g2.fingerprint);
    CHECK(saga::diff_graphs(g1, g2) == std::vector<std::string>{"row added: a --t.jump--> c / step"});
    CHECK(saga::diff_graphs(g2, g1) == std::vector<std::string>{"row removed: a --t.jump--> c / step"});
    CHECK(dsl::make_definition<v1>()->graph().fingerprint == g1.fingerprint);  // stable
  }

  TEST_CASE("a database written under a definition loads under one with a row inserted before the others") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    {
      saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
      saga::engine eng(st, clock);
      eng.add(dsl::make_definition<v1>());
      eng.handle(ev("e1", "t.start"));
      CHECK(eng.handle(ev("e2", "t.next")).saga_state == "b");
    }
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine eng(st, clock);
    std::vector<std::string> warnings;
    auto report = eng.add(dsl::make_definition<v2>());
    CHECK(report.changes == std::vector<std::string>{"row added: a --t.jump--> c / step"});
    CHECK_FALSE(report.previous_fingerprint.empty());
    CHECK(report.orphaned.empty());
    auto a3 = eng.handle(ev("e3", "t.finish"));
    CHECK(a3.status == saga::ack_status::accepted);
    CHECK(a3.outcome == saga::ack_outcome::transitioned);
    CHECK(a3.saga_state == "c");
    auto inst = st.load_instance("test_flow", "k-1");
    CHECK(nlohmann::json::parse(inst->data).at("steps") == 3);
    CHECK(inst->fingerprint == dsl::make_definition<v2>()->graph().fingerprint);
  }

  TEST_CASE("instances whose state the new definition lacks are listed and left untouched") {
    saga::test::temp_dir dir;
    saga::manual_clock clock;
    {
      saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
      saga::engine eng(st, clock);
      eng.add(dsl::make_definition<v1>());
      eng.handle(ev("e1", "t.start"));
      eng.handle(ev("e2", "t.next"));
    }
    saga::sqlite::store st(saga::sqlite::options{dir.file("saga.db")});
    saga::engine_options o;
    std::vector<std::string> logged;
    o.log = [&](saga::log_level, std::string_view m) { logged.emplace_back(m); };
    saga::engine eng(st, clock, o);
    auto report = eng.add(dsl::make_definition<v3>());
    CHECK(report.orphaned == std::vector<std::string>{"k-1"});
    CHECK(st.load_instance("test_flow", "k-1")->state == "b");
    bool mentioned = false;
    for (const auto& l : logged) mentioned |= l.find("k-1") != std::string::npos;
    CHECK(mentioned);
  }

  TEST_CASE("registration reports an unreachable state by name") {
    CHECK(add_error(dsl::make_definition<with_unreachable>()).find("unreachable state 'x'") !=
          std::string::npos);
  }

  TEST_CASE("registration reports a non-terminal dead end by name") {
    CHECK(add_error(dsl::make_definition<with_dead_end>())
              .find("state 'b' is not terminal and has no way out") != std::string::npos);
  }

  // A DSL table cannot list one (a compile error: tests/dsl); a graph built otherwise can.
  TEST_CASE("the graph check reports a consumed event type no row uses") {
    auto g = dsl::make_definition<v1>()->graph();
    g.consumes.push_back("t.jump");
    const auto problems = saga::check_graph(g);
    CHECK(std::find(problems.begin(), problems.end(), "consumed event type 't.jump' is used by no row") !=
          problems.end());
  }

  TEST_CASE("consumes and starts and terminal are derived from the table when a machine leaves them out") {
    const auto g = dsl::make_definition<derived>()->graph();
    CHECK(g.consumes == std::vector<std::string>{"t.start", "t.next", "t.jump", "t.finish"});
    CHECK(g.starts == std::vector<std::string>{"t.start"});
    CHECK(g.terminal == std::vector<std::string>{"c"});
    CHECK(saga::check_graph(g).empty());
    // And they are the ones the machine declares when it does.
    const auto declared = dsl::make_definition<v1>()->graph();
    CHECK(declared.consumes == std::vector<std::string>{"t.start", "t.next", "t.finish"});
    CHECK(declared.terminal == std::vector<std::string>{"c"});
  }

  TEST_CASE("the DOT export is accepted by Graphviz and the Mermaid export names every row") {
    auto d = saga::definitions::order_lifecycle();
    saga::test::temp_dir dir;
    const auto dot_file = dir.file("order.dot");
    const auto svg_file = dir.file("order.svg");
    std::ofstream(dot_file) << saga::to_dot(d->graph());
    const auto cmd = "dot -Tsvg " + dot_file + " -o " + svg_file + " 2>" + dir.file("dot.err");
    CHECK(std::system(cmd.c_str()) == 0);
    std::ifstream svg(svg_file);
    std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
    CHECK(text.find("<svg") != std::string::npos);
    CHECK(text.find("awaiting_shipment") != std::string::npos);

    const auto mermaid = saga::to_mermaid(d->graph());
    CHECK(mermaid.rfind("stateDiagram-v2", 0) == 0);
    CHECK(mermaid.find("[*] --> placed : order.placed") != std::string::npos);
    CHECK(mermaid.find("refunding --> needs_attention : payment.refund.failed / retry (next_refund_attempt, "
                       "emit payment.refund.requested) at most 2 times after 5s, x2 each, then emit "
                       "order.needs_attention") != std::string::npos);
  }

  TEST_CASE("one renderer: labels on one DOT line and Mermaid with actions and step numbers") {
    const auto g = saga::definitions::order_lifecycle()->graph();
    const auto dot = saga::to_dot(g);
    // Every statement on its own line: a label's line breaks are DOT's "\n", never raw.
    std::istringstream lines(dot);
    for (std::string line; std::getline(lines, line);)
      CHECK_MESSAGE(std::count(line.begin(), line.end(), '"') % 2 == 0, line);
    CHECK(dot.find("[label=\"order.placed\\n/ ") != std::string::npos);

    saga::graph_overlay o;
    o.title = "order_lifecycle / o-1: cancelled";
    o.current = "cancelled";
    o.transitions = {{"new", "order.placed", "placed"}, {"placed", "saga.operator.abort", "cancelled"}};
    o.timers = {"payment_timeout due 2026-12-04T10:00:00.000Z"};
    const auto drawn = saga::to_dot(g, &o);
    CHECK(drawn.find("label=\"order_lifecycle / o-1: cancelled\"") != std::string::npos);
    CHECK(drawn.find("\\n(#1)\", color=") != std::string::npos);
    // The operator's move is no row: added dashed, numbered.
    CHECK(drawn.find(
              "\"placed\" -> \"cancelled\" [label=\"saga.operator.abort\\n(#2)\", style=\"dashed,bold\"") !=
          std::string::npos);
    CHECK(drawn.find("payment_timeout due 2026-12-04T10:00:00.000Z") != std::string::npos);

    const auto mermaid = saga::to_mermaid(g, &o);
    // The action is shown, and "#" is Mermaid's entity code so that "(#1)" survives.
    CHECK(mermaid.find("[*] --> placed : order.placed / ") != std::string::npos);
    CHECK(mermaid.find(" (#35;1)\n") != std::string::npos);
    CHECK(mermaid.find("placed --> cancelled : saga.operator.abort (#35;2)") != std::string::npos);
    CHECK(mermaid.find("class cancelled current") != std::string::npos);
    // The note's ":" after "of X" is Mermaid's separator; those inside the text are entity codes.
    CHECK(mermaid.find(
              "note right of cancelled : armed timer payment_timeout due 2026-12-04T10#58;00#58;00.000Z") !=
          std::string::npos);
  }

  TEST_CASE("a graph survives its JSON form unchanged") {
    const auto g = saga::definitions::order_lifecycle()->graph();
    const auto back = saga::graph_from_json(saga::to_json(g));
    CHECK(back.rows == g.rows);
    CHECK(back.states == g.states);
    CHECK(saga::compute_fingerprint(back) == g.fingerprint);
  }
}
