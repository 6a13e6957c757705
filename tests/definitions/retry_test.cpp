// dsl::retry (issue 14, item 4): "request again up to N times, then give up" as one row. The
// wait is a durable timer, the count is kept with the saga data, leaving the state any other way
// forgets both, and the graph shows one edge that says the budget.

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "saga/dsl.hpp"
#include "saga/graph.hpp"
#include "saga/testing/doctest.hpp"  // in every file of definition_tests (doctest.hpp says why)
#include "saga/testing/scenario.hpp"

namespace {

namespace dsl = saga::dsl;
using namespace std::chrono_literals;

struct job_data {
  int requests = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(job_data, requests)

using job_started = dsl::event<"job.started">;
using job_failed = dsl::event<"job.failed">;
using job_done = dsl::event<"job.done">;
using job_requested = dsl::event<"job.requested">;
using job_abandoned = dsl::event<"job.abandoned">;

using fresh = dsl::state<"new">;
using working = dsl::state<"working">;
using done = dsl::state<"done">;
using abandoned = dsl::state<"abandoned">;

struct count_request {
  static constexpr std::string_view name = "count_request";
  template <class E, class F, class S, class T>
  void operator()(const E&, F& fsm, S&, T&) const {
    ++fsm.data().requests;
  }
};
using request_job = dsl::actions<count_request, dsl::emit<job_requested>>;

struct job_machine : dsl::machine<job_machine, job_data> {
  static constexpr std::string_view name = "job";
  using initial_state = fresh;
  // clang-format off
  using transition_table = dsl::table<
    row< fresh,   job_started, working,   request_job >,
    row< working, job_failed,  abandoned, dsl::retry<request_job, 2, dsl::backoff<dsl::seconds(10), 3>,
                                                     dsl::emit<job_abandoned>> >,
    row< working, job_done,    done >
  >;
  // clang-format on
  using abort_state = abandoned;
};

constexpr const char* retry_timer = "retry.working.job.failed";

}  // namespace

TEST_SUITE("dsl_retry") {
  TEST_CASE("a failure waits the backoff on a durable timer and tries again until the budget is spent") {
    saga::testing::scenario s(dsl::make_definition<job_machine>());
    s.when(s.make("job.started")).expect_state("working").expect_emitted({"job.requested"});

    // First failure: nothing is sent now; the retry timer is armed 10 s ahead.
    s.when(s.make("job.failed")).expect_state("working").expect_emitted({}).expect_timers({retry_timer});
    CHECK(s.data()["saga.retries"][retry_timer] == 1);
    s.advance(9s).expect_emitted({});
    s.advance(1s).expect_emitted({"job.requested"}).expect_timers({});
    CHECK(s.data()["requests"] == 2);

    // Second failure: the wait grows (x3: 30 s).
    s.when(s.make("job.failed")).expect_emitted({}).expect_timers({retry_timer});
    s.advance(29s).expect_emitted({});
    s.advance(1s).expect_emitted({"job.requested"});
    CHECK(s.data()["requests"] == 3);

    // Third failure: the two retries are spent; the saga gives up and forgets the count.
    s.when(s.make("job.failed"))
        .expect_state("abandoned")
        .expect_emitted({"job.abandoned"})
        .expect_timers({});
    CHECK_FALSE(s.data().contains("saga.retries"));
    CHECK(s.data()["requests"] == 3);
  }

  TEST_CASE("leaving the state another way disarms the retry timer and forgets the count") {
    saga::testing::scenario s(dsl::make_definition<job_machine>());
    s.when(s.make("job.started"));
    s.when(s.make("job.failed")).expect_timers({retry_timer});
    s.when(s.make("job.done")).expect_state("done").expect_timers({});
    CHECK_FALSE(s.data().contains("saga.retries"));
    s.advance(1h).expect_emitted({});
  }

  TEST_CASE("an operator's abort while a retry waits disarms the timer and forgets the count") {
    saga::testing::scenario s(dsl::make_definition<job_machine>());
    s.when(s.make("job.started"));
    s.when(s.make("job.failed")).expect_timers({retry_timer});
    s.when(s.make_operator("abort", {{"reason", "stuck"}, {"operator", "ops"}}))
        .expect_state("abandoned")
        .expect_timers({});
    CHECK_FALSE(s.data().contains("saga.retries"));
  }

  TEST_CASE("the count survives the saga's reload: it is stored with the saga data") {
    saga::testing::scenario s(dsl::make_definition<job_machine>());
    s.when(s.make("job.started"));
    s.when(s.make("job.failed"));
    s.advance(10s);
    s.when(s.make("job.failed"));
    // Written as sagad would find it after a restart: two tries spent, waiting.
    s.start_in("working", {{"requests", 3}, {"saga.retries", {{retry_timer, 2}}}});
    s.when(s.make("job.failed")).expect_state("abandoned").expect_emitted({"job.abandoned"});

    // A stored count that is not a small non-negative integer is not read (never narrowed): the
    // retries start again.
    for (const nlohmann::json& bad : {nlohmann::json(-1), nlohmann::json(1e300), nlohmann::json("2"),
                                      nlohmann::json(std::uint64_t{1} << 40)}) {
      CAPTURE(bad.dump());
      s.start_in("working", {{"requests", 3}, {"saga.retries", {{retry_timer, bad}}}});
      s.when(s.make("job.failed")).expect_state("working").expect_timers({retry_timer});
      CHECK(s.data()["saga.retries"][retry_timer] == 1);
    }
  }

  TEST_CASE("the graph shows a retry row as one edge that says its budget and takes its timer") {
    const auto def = dsl::make_definition<job_machine>();
    const auto& g = def->graph();
    REQUIRE(g.rows.size() == 3);
    const auto& r = g.rows[1];
    CHECK(r.source == "working");
    CHECK(r.event == "job.failed");
    CHECK(r.target == "abandoned");
    CHECK(r.guard.empty());
    CHECK(r.action ==
          "retry (count_request, emit job.requested) at most 2 times after 10s, x3 each, then emit "
          "job.abandoned");
    CHECK(r.retry_timer == "saga.timer.retry.working.job.failed");
    CHECK(g.consumes_type("saga.timer.retry.working.job.failed"));
    CHECK(g.timers == std::vector<std::string>{retry_timer});
    CHECK(saga::check_graph(g).empty());
    // The stored graph keeps it.
    CHECK(saga::graph_from_json(saga::to_json(g)).rows[1] == r);
    CHECK(saga::to_dot(g).find("at most 2 times") != std::string::npos);
  }
}
