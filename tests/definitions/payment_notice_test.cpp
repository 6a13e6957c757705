// The payment notice workflow of DESIGN.md, row by row, through the scenario
// harness (a real engine over a real SQLite file with a manual clock).

#include "saga/definitions/payment_notice.hpp"

#include <chrono>

#include <doctest/doctest.h>

#include "saga/codec.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/testing/doctest.hpp"  // in every file of definition_tests (doctest.hpp says why)
#include "saga/testing/scenario.hpp"

using namespace std::chrono_literals;
using saga::ack_outcome;
using saga::ack_status;
using saga::testing::scenario;

namespace {

using days = std::chrono::days;

// The scenario clock starts at 2026-01-01T00:00:00Z; the notice falls due ten days later.
constexpr const char* due = "2026-01-11T00:00:00Z";

nlohmann::json notice_data(const std::string& id = "n-1") {
  return {{"notice_id", id}, {"policy_id", "p-9"}, {"amount", 12500}, {"currency", "EUR"}, {"due", due}};
}

// A scenario for notice n-1, already created (awaiting payment).
struct created_notice : scenario {
  created_notice() : scenario(saga::definitions::payment_notice(), "n-1") {
    given({make("payment_notice.created", notice_data())});
  }
};

// A notice whose due date has passed: overdue, in its grace period.
struct overdue_notice : created_notice {
  overdue_notice() {
    advance(days(10));
    expect_state("overdue");
  }
};

saga::event operator_abort(const scenario& s) {
  return s.make_operator("abort", {{"reason", "test"}, {"operator", "tester"}});
}

}  // namespace

TEST_SUITE("payment_notice") {
  TEST_CASE("payment_notice.created creates the saga and arms the due-date timer at due") {
    scenario s(saga::definitions::payment_notice(), "n-1");
    s.when(s.make("payment_notice.created", notice_data()))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("awaiting_payment")
        .expect_emitted({})
        .expect_timers({"due_date"});
    CHECK(s.last_ack().saga_type == "payment_notice");
    CHECK(s.last_ack().saga_id == "n-1");
    const auto timers = s.store().timers_of("payment_notice", "n-1");
    REQUIRE(timers.size() == 1);
    CHECK(timers[0].due_ms == *saga::parse_time(due));
  }

  TEST_CASE("a due with a UTC offset arms the timer at that instant") {
    scenario s(saga::definitions::payment_notice(), "n-1");
    auto data = notice_data();
    data["due"] = "2026-01-11T02:00:00+02:00";  // 2026-01-11T00:00:00Z
    s.when(s.make("payment_notice.created", data)).expect_state("awaiting_payment");
    CHECK(s.store().timers_of("payment_notice", "n-1").at(0).due_ms == *saga::parse_time(due));
    s.advance(days(10) - 1s).expect_state("awaiting_payment");
    s.advance(1s).expect_state("overdue");
  }

  TEST_CASE("payment_notice.created without due is rejected with a reason naming due") {
    scenario s(saga::definitions::payment_notice(), "n-1");
    auto data = notice_data();
    data.erase("due");
    s.when(s.make("payment_notice.created", data));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("data 'due'") != std::string::npos);
    CHECK(s.state().empty());
    CHECK(s.armed_timers().empty());
  }

  TEST_CASE("payment_notice.created with a malformed due is rejected with a reason naming due") {
    for (const nlohmann::json& bad :
         {nlohmann::json("2026-01-11"), nlohmann::json("next tuesday"),
          nlohmann::json("2026-13-01T00:00:00Z"), nlohmann::json(1767225600000)}) {
      CAPTURE(bad.dump());
      scenario s(saga::definitions::payment_notice(), "n-1");
      auto data = notice_data();
      data["due"] = bad;
      s.when(s.make("payment_notice.created", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data 'due'") != std::string::npos);
      CHECK(s.state().empty());
    }
  }

  TEST_CASE("payment_notice.created without policy_id or amount or currency is rejected naming the field") {
    for (const std::string field : {"policy_id", "amount", "currency"}) {
      CAPTURE(field);
      scenario s(saga::definitions::payment_notice(), "n-1");
      auto data = notice_data();
      data.erase(field);
      s.when(s.make("payment_notice.created", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data '" + field + "'") != std::string::npos);
      CHECK(s.state().empty());
    }
  }

  TEST_CASE("awaiting_payment: premium.paid settles the notice and disarms the due-date timer") {
    created_notice s;
    s.when(s.make("premium.paid"))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("paid")
        .expect_emitted({"payment_notice.settled"})
        .expect_timers({});
  }

  TEST_CASE("awaiting_payment: paid a minute before due means the due-date timer never fires") {
    created_notice s;
    s.advance(days(10) - 1min).expect_state("awaiting_payment").expect_emitted({});
    s.when(s.make("premium.paid")).expect_state("paid");
    s.advance(days(30)).expect_state("paid").expect_emitted({});
    CHECK(s.outbox().size() == 1);
  }

  TEST_CASE("awaiting_payment: the due-date timer fires at due and requests a reminder with a 14-day grace") {
    created_notice s;
    s.advance(days(10) - 1s).expect_state("awaiting_payment").expect_emitted({});
    s.advance(1s)
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("overdue")
        .expect_emitted({"payment_notice.reminder.requested"})
        .expect_timers({"grace"});
    CHECK(s.store().timers_of("payment_notice", "n-1").at(0).due_ms ==
          *saga::parse_time(due) + 14LL * 86400000);
  }

  TEST_CASE("overdue: premium.paid settles the notice and disarms the grace timer") {
    overdue_notice s;
    s.advance(days(13));
    s.when(s.make("premium.paid"))
        .expect_state("paid")
        .expect_emitted({"payment_notice.settled"})
        .expect_timers({});
    s.advance(days(30)).expect_state("paid").expect_emitted({});
  }

  TEST_CASE("overdue: the grace timer fires 14 days after the reminder and requests the policy lapse") {
    overdue_notice s;
    s.advance(days(14) - 1s).expect_state("overdue").expect_emitted({});
    s.advance(1s)
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("lapsed")
        .expect_emitted({"policy.lapse.requested"})
        .expect_timers({});
  }

  TEST_CASE("every follow-on event carries the notice on") {
    overdue_notice s;
    s.advance(days(14));
    const auto outbox = s.outbox();
    std::vector<std::string> types;
    for (const auto& e : outbox) types.push_back(e.type);
    CHECK(types == std::vector<std::string>{"payment_notice.reminder.requested", "policy.lapse.requested"});
    for (const auto& e : outbox) {
      CAPTURE(e.type);
      CHECK(e.data == notice_data());
      CHECK(e.subject == "n-1");
      CHECK(e.source == "urn:saga:payment_notice");
      CHECK(e.correlationid == "test-1");  // the payment_notice.created that started the saga
    }
    created_notice paid;
    paid.when(paid.make("premium.paid"));
    REQUIRE(paid.emitted().size() == 1);
    CHECK(paid.emitted().front().data == notice_data());
  }

  TEST_CASE("a notice without notice_id takes the subject as its id") {
    scenario s(saga::definitions::payment_notice(), "n-42");
    auto data = notice_data();
    data.erase("notice_id");
    s.given({s.make("payment_notice.created", data)});
    s.when(s.make("premium.paid")).expect_state("paid");
    CHECK(s.emitted().front().data.at("notice_id") == "n-42");
  }

  TEST_CASE("premium.paid before payment_notice.created is parked and settles the notice once it exists") {
    scenario s(saga::definitions::payment_notice(), "n-1");
    s.when(s.make("premium.paid")).expect_outcome(ack_outcome::parked);
    CHECK(s.parked_count() == 1);
    s.when(s.make("payment_notice.created", notice_data()))
        .expect_state("paid")
        .expect_emitted({"payment_notice.settled"})
        .expect_timers({});
    CHECK(s.last_ack().saga_state == "paid");
    CHECK(s.parked_count() == 0);
  }

  TEST_CASE("paid and lapsed are terminal: a late premium.paid is ignored") {
    created_notice paid;
    paid.given({paid.make("premium.paid")});
    paid.when(paid.make("premium.paid"))
        .expect_outcome(ack_outcome::ignored)
        .expect_state("paid")
        .expect_emitted({});

    overdue_notice lapsed;
    lapsed.advance(days(14)).expect_state("lapsed");
    lapsed.when(lapsed.make("premium.paid"))
        .expect_outcome(ack_outcome::ignored)
        .expect_state("lapsed")
        .expect_emitted({});
  }

  TEST_CASE("a duplicate payment_notice.created has no effect and gets the original ack") {
    scenario s(saga::definitions::payment_notice(), "n-1");
    const auto e = s.make("payment_notice.created", notice_data());
    s.when(e);
    s.when(e);
    CHECK(s.last_ack().status == ack_status::duplicate);
    CHECK(s.last_ack().saga_state == "awaiting_payment");
    CHECK(s.armed_timers() == std::vector<std::string>{"due_date"});
  }

  TEST_CASE("an operator abort is rejected: the definition has no abort state") {
    created_notice s;
    s.when(operator_abort(s));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("no abort state") != std::string::npos);
    CHECK(s.state() == "awaiting_payment");
    CHECK(s.armed_timers() == std::vector<std::string>{"due_date"});
  }

  TEST_CASE("the graph has the five states and the two terminal states") {
    auto d = saga::definitions::payment_notice();
    const auto& g = d->graph();
    CHECK(g.name == "payment_notice");
    CHECK(g.initial == "new");
    CHECK(g.states == std::vector<std::string>{"new", "awaiting_payment", "paid", "overdue", "lapsed"});
    CHECK(g.terminal == std::vector<std::string>{"paid", "lapsed"});
    CHECK(g.timers == std::vector<std::string>{"due_date", "grace"});
    CHECK(g.starts == std::vector<std::string>{"payment_notice.created"});
    CHECK(g.abort_state.empty());
    CHECK(g.rows.size() == 5);
    CHECK(g.rows.front().action == "keep_notice, arm due_date at due");
    CHECK(saga::check_graph(g).empty());
  }
}
