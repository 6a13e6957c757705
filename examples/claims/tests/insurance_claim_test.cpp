// The insurance_claim workflow, row by row, through the scenario harness (a
// real engine over a real SQLite file with a manual clock) — the tests a user
// writes for a workflow of their own.

#include "insurance_claim.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "saga/graph.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/testing/doctest.hpp"
#include "saga/testing/scenario.hpp"

using namespace std::chrono_literals;
using saga::ack_outcome;
using saga::ack_status;
using saga::testing::scenario;

namespace {

using days = std::chrono::days;

nlohmann::json claim_data(const std::string& id = "c-1") {
  return {{"claim_id", id}, {"policy_id", "p-9"}, {"amount", 125000}, {"currency", "EUR"}};
}

nlohmann::json decision(const std::string& d, const std::string& reason = {}) {
  nlohmann::json j = {{"decision", d}};
  if (!reason.empty()) j["reason"] = reason;
  return j;
}

// A scenario for claim c-1, already filed (assessing).
struct filed_claim : scenario {
  filed_claim() : scenario(claims::insurance_claim(), "c-1") { given({make("claim.filed", claim_data())}); }
};

// A claim approved by the assessor: paying, payout attempt 1 requested.
struct approved_claim : filed_claim {
  approved_claim() {
    given({make("claim.assessed", decision("approved"))});
    expect_state("paying");
  }
};

saga::event operator_abort(const scenario& s) {
  return s.make_operator("abort", {{"reason", "fraud suspected"}, {"operator", "tester"}});
}

saga::event operator_resolve(const scenario& s, const std::string& to) {
  return s.make_operator("resolve", {{"to", to}, {"reason", "settled by phone"}, {"operator", "tester"}});
}

void fail_payout(scenario& s, int times) {
  for (int i = 0; i < times; ++i) s.given({s.make("claim.payout.failed", {{"reason", "bank offline"}})});
}

}  // namespace

TEST_SUITE("insurance_claim") {
  TEST_CASE("claim.filed creates the saga - requests an assessment and arms the escalation timer") {
    scenario s(claims::insurance_claim(), "c-1");
    s.when(s.make("claim.filed", claim_data()))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("assessing")
        .expect_emitted({"claim.assessment.requested"})
        .expect_timers({"escalation"});
    CHECK(s.last_ack().saga_type == "insurance_claim");
    CHECK(s.last_ack().saga_id == "c-1");
    CHECK(s.last_ack().saga_state == "assessing");
    const auto e = s.emitted().front();
    CHECK(e.data == claim_data());
    CHECK(e.subject == "c-1");
    CHECK(e.source == "urn:saga:insurance_claim");
    CHECK(e.correlationid == "test-1");
    CHECK(e.causationid == "test-1");
    const auto timers = s.store().timers_of("insurance_claim", "c-1");
    REQUIRE(timers.size() == 1);
    CHECK(timers[0].due_ms == s.clock().now_ms() + std::chrono::milliseconds(days(14)).count());
  }

  TEST_CASE("claim.filed without a claim_id takes the subject as the claim id") {
    scenario s(claims::insurance_claim(), "c-1");
    auto data = claim_data();
    data.erase("claim_id");
    s.when(s.make("claim.filed", data)).expect_state("assessing");
    CHECK(s.emitted().front().data.at("claim_id") == "c-1");
  }

  TEST_CASE("claim.filed whose claim_id is not the subject is rejected naming claim_id") {
    scenario s(claims::insurance_claim(), "c-1");
    s.when(s.make("claim.filed", claim_data("c-2")));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("data 'claim_id'") != std::string::npos);
    CHECK(s.state().empty());
    CHECK(s.armed_timers().empty());
  }

  TEST_CASE("claim.filed with a wrong JSON type in a field is rejected with the field's name") {
    const std::vector<std::pair<std::string, nlohmann::json>> cases = {
        {"claim_id", 7},
        {"claim_id", nlohmann::json::object()},
        {"policy_id", nlohmann::json::array()},
        {"policy_id", 9},
        {"policy_id", true},
        {"amount", "125000"},
        {"amount", 1250.5},
        {"amount", nlohmann::json::array()},
        {"amount", 9223372036854775808ull},
        {"currency", 978},
        {"currency", nlohmann::json::array({"EUR"})}};
    for (const auto& c : cases) {
      const std::string& field = c.first;  // variables, not bindings: CAPTURE's lambda (clang 14)
      const nlohmann::json& value = c.second;
      CAPTURE(field);
      CAPTURE(value.dump());
      scenario s(claims::insurance_claim(), "c-1");
      auto data = claim_data();
      data[field] = value;
      s.when(s.make("claim.filed", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data '" + field + "'") != std::string::npos);
      CHECK(s.state().empty());
      CHECK(s.outbox().empty());
    }
  }

  TEST_CASE("claim.filed without policy_id or amount or currency is rejected naming the field") {
    for (const std::string field : {"policy_id", "amount", "currency"}) {
      for (const bool as_null : {false, true}) {
        CAPTURE(field);
        CAPTURE(as_null);
        scenario s(claims::insurance_claim(), "c-1");
        auto data = claim_data();
        if (as_null)
          data[field] = nullptr;
        else
          data.erase(field);
        s.when(s.make("claim.filed", data));
        CHECK(s.last_ack().status == ack_status::rejected);
        CHECK(s.last_ack().reason.find("data '" + field + "': missing") != std::string::npos);
        CHECK(s.state().empty());
      }
    }
  }

  TEST_CASE(
      "claim.filed with an amount that is not positive or a currency that is not ISO 4217 is rejected") {
    const std::vector<std::pair<std::string, nlohmann::json>> cases = {
        {"amount", 0}, {"amount", -100}, {"currency", "eur"}, {"currency", "EURO"}, {"currency", ""}};
    for (const auto& c : cases) {
      const std::string& field = c.first;  // variables, not bindings: CAPTURE's lambda (clang 14)
      const nlohmann::json& value = c.second;
      CAPTURE(value.dump());
      scenario s(claims::insurance_claim(), "c-1");
      auto data = claim_data();
      data[field] = value;
      s.when(s.make("claim.filed", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data '" + field + "'") != std::string::npos);
      CHECK(s.state().empty());
    }
  }

  TEST_CASE("assessing: an approval requests payout attempt 1 with a payout_id from the key") {
    filed_claim s;
    s.when(s.make("claim.assessed", decision("approved")))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("paying")
        .expect_emitted({"claim.payout.requested"})
        .expect_timers({});
    const auto e = s.emitted().front();
    CHECK(e.data.at("payout_id") == "c-1:payout");
    CHECK(e.data.at("attempt") == 1);
    CHECK(e.data.at("amount") == 125000);
    CHECK(e.data.at("currency") == "EUR");
    CHECK(e.data.at("policy_id") == "p-9");
  }

  TEST_CASE("assessing: a rejection rejects the claim and carries the assessor's reason") {
    filed_claim s;
    s.when(s.make("claim.assessed", decision("rejected", "not covered")))
        .expect_state("rejected")
        .expect_emitted({"claim.rejected"})
        .expect_timers({});
    CHECK(s.emitted().front().data.at("reason") == "not covered");
    CHECK(s.emitted().front().data.at("claim_id") == "c-1");
  }

  TEST_CASE("assessing: a decision other than approved or rejected is refused naming data decision") {
    const std::vector<nlohmann::json> bad = {
        nlohmann::json({{"decision", "maybe"}}), nlohmann::json({{"decision", "APPROVED"}}),
        nlohmann::json({{"decision", 1}}),       nlohmann::json({{"decision", true}}),
        nlohmann::json({{"decision", nullptr}}), nlohmann::json::object()};
    for (const auto& data : bad) {
      CAPTURE(data.dump());
      filed_claim s;
      s.when(s.make("claim.assessed", data));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.last_ack().reason.find("data 'decision'") != std::string::npos);
      CHECK(s.state() == "assessing");
      CHECK(s.emitted().empty());
      CHECK(s.armed_timers() == std::vector<std::string>{"escalation"});
    }
  }

  TEST_CASE("assessing: a reason of the wrong JSON type is refused naming data reason") {
    filed_claim s;
    s.when(s.make("claim.assessed", {{"decision", "rejected"}, {"reason", 42}}));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("data 'reason'") != std::string::npos);
    CHECK(s.state() == "assessing");
  }

  TEST_CASE("assessing: the escalation timer fires after 14 days and the claim stays in assessment") {
    filed_claim s;
    s.advance(days(14) - 1s).expect_state("assessing").expect_emitted({});
    s.advance(1s)
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("assessing")
        .expect_emitted({"claim.escalated"})
        .expect_timers({});
    CHECK(s.emitted().front().data == claim_data());
    // Escalated once; the assessment still decides.
    s.advance(days(30)).expect_emitted({});
    s.when(s.make("claim.assessed", decision("approved"))).expect_state("paying");
  }

  TEST_CASE("assessing: a decision on day 13 means the escalation timer never fires") {
    filed_claim s;
    s.advance(days(13));
    s.when(s.make("claim.assessed", decision("rejected"))).expect_state("rejected");
    s.advance(days(30)).expect_state("rejected").expect_emitted({});
    CHECK(s.outbox().size() == 2);
  }

  TEST_CASE("assessing: claim.withdrawn withdraws the claim and disarms the escalation timer") {
    filed_claim s;
    s.when(s.make("claim.withdrawn", {{"reason", "settled privately"}}))
        .expect_state("withdrawn")
        .expect_emitted({"claim.withdrawn.confirmed"})
        .expect_timers({});
    const auto e = s.emitted().front();
    CHECK(e.data.at("withdrawn_by") == "claimant");
    CHECK(e.data.at("reason") == "settled privately");
    CHECK(e.data.at("claim_id") == "c-1");
    s.advance(days(15)).expect_state("withdrawn").expect_emitted({});
  }

  TEST_CASE("claim.withdrawn with a reason of the wrong JSON type is refused naming data reason") {
    filed_claim s;
    s.when(s.make("claim.withdrawn", {{"reason", nlohmann::json::array()}}));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("data 'reason'") != std::string::npos);
    CHECK(s.state() == "assessing");
  }

  TEST_CASE("paying: a withdrawal after approval is ignored") {
    approved_claim s;
    s.when(s.make("claim.withdrawn"))
        .expect_outcome(ack_outcome::ignored)
        .expect_state("paying")
        .expect_emitted({});
    CHECK(s.parked_count() == 0);
    s.when(s.make("claim.payout.succeeded")).expect_state("paid");
  }

  TEST_CASE("paying: claim.payout.succeeded pays the claim and closes it") {
    approved_claim s;
    s.when(s.make("claim.payout.succeeded"))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("paid")
        .expect_emitted({"claim.closed"});
    CHECK(s.emitted().front().data.at("payout_id") == "c-1:payout");
    CHECK(s.emitted().front().data.at("amount") == 125000);
  }

  TEST_CASE("paying: a failed payout is retried with the same payout_id twice then needs attention") {
    approved_claim s;
    s.when(s.make("claim.payout.failed", {{"reason", "bank offline"}}))
        .expect_state("paying")
        .expect_emitted({"claim.payout.requested"});
    CHECK(s.emitted().front().data.at("attempt") == 2);
    CHECK(s.emitted().front().data.at("payout_id") == "c-1:payout");
    s.when(s.make("claim.payout.failed")).expect_state("paying").expect_emitted({"claim.payout.requested"});
    CHECK(s.emitted().front().data.at("attempt") == 3);
    CHECK(s.emitted().front().data.at("payout_id") == "c-1:payout");
    s.when(s.make("claim.payout.failed", {{"reason", "account closed"}}))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("needs_attention")
        .expect_emitted({"claim.needs_attention"});
    const auto e = s.emitted().front();
    CHECK(e.data.at("attempts") == 3);
    CHECK(e.data.at("payout_id") == "c-1:payout");
    CHECK(e.data.at("reason") == "account closed");
  }

  TEST_CASE("paying: a payout that succeeds on the third attempt pays the claim") {
    approved_claim s;
    fail_payout(s, 2);
    s.when(s.make("claim.payout.succeeded")).expect_state("paid").expect_emitted({"claim.closed"});
  }

  TEST_CASE("a claim's follow-on events are exactly the table's and in order on each path") {
    SUBCASE("approved, one failed payout, paid") {
      approved_claim s;
      fail_payout(s, 1);
      s.given({s.make("claim.payout.succeeded")});
      std::vector<std::string> types;
      for (const auto& e : s.outbox()) types.push_back(e.type);
      CHECK(types == std::vector<std::string>{"claim.assessment.requested", "claim.payout.requested",
                                              "claim.payout.requested", "claim.closed"});
    }
    SUBCASE("escalated, then rejected") {
      filed_claim s;
      s.advance(days(14));
      s.given({s.make("claim.assessed", decision("rejected"))});
      std::vector<std::string> types;
      for (const auto& e : s.outbox()) types.push_back(e.type);
      CHECK(types ==
            std::vector<std::string>{"claim.assessment.requested", "claim.escalated", "claim.rejected"});
    }
  }

  TEST_CASE("terminal states take nothing that would leave them") {
    SUBCASE("paid") {
      approved_claim s;
      s.given({s.make("claim.payout.succeeded")});
      for (const std::string type : {"claim.payout.failed", "claim.payout.succeeded", "claim.withdrawn"})
        s.when(s.make(type)).expect_state("paid").expect_emitted({}).expect_outcome(ack_outcome::ignored);
      s.when(s.make("claim.assessed", decision("rejected")))
          .expect_state("paid")
          .expect_outcome(ack_outcome::ignored);
    }
    SUBCASE("rejected") {
      filed_claim s;
      s.given({s.make("claim.assessed", decision("rejected"))});
      for (const std::string type : {"claim.payout.succeeded", "claim.withdrawn"})
        s.when(s.make(type)).expect_state("rejected").expect_emitted({}).expect_outcome(ack_outcome::ignored);
      s.when(s.make("claim.assessed", decision("approved")))
          .expect_state("rejected")
          .expect_outcome(ack_outcome::ignored);
    }
    SUBCASE("withdrawn") {
      filed_claim s;
      s.given({s.make("claim.withdrawn")});
      s.when(s.make("claim.assessed", decision("approved")))
          .expect_state("withdrawn")
          .expect_emitted({})
          .expect_outcome(ack_outcome::ignored);
    }
    SUBCASE("needs_attention") {
      approved_claim s;
      fail_payout(s, 3);
      s.expect_state("needs_attention");
      s.when(s.make("claim.payout.succeeded"))
          .expect_state("needs_attention")
          .expect_emitted({})
          .expect_outcome(ack_outcome::ignored);
    }
  }

  TEST_CASE("claim.assessed before claim.filed is parked and applied when the claim is filed") {
    scenario s(claims::insurance_claim(), "c-1");
    s.when(s.make("claim.assessed", decision("approved"))).expect_outcome(ack_outcome::parked);
    CHECK(s.last_ack().status == ack_status::accepted);
    CHECK(s.state().empty());
    CHECK(s.parked_count() == 1);
    s.when(s.make("claim.filed", claim_data()))
        .expect_outcome(ack_outcome::transitioned)
        .expect_state("paying")
        .expect_emitted({"claim.assessment.requested", "claim.payout.requested"})
        .expect_timers({});
    CHECK(s.last_ack().saga_state == "paying");
    CHECK(s.parked_count() == 0);
  }

  TEST_CASE("a whole claim delivered backwards ends where the clean stream ends") {
    scenario s(claims::insurance_claim(), "c-1");
    const std::vector<saga::event> events = {s.make("claim.filed", claim_data()),
                                             s.make("claim.assessed", decision("approved")),
                                             s.make("claim.payout.failed"), s.make("claim.payout.succeeded")};
    for (auto it = events.rbegin(); it != events.rend(); ++it) s.given({*it});
    CHECK(s.state() == "paid");
    std::vector<std::string> types;
    for (const auto& e : s.outbox()) types.push_back(e.type);
    // The success was parked before the failure: it applies first, and the failure
    // arrives at a paid claim.
    CHECK(types ==
          std::vector<std::string>{"claim.assessment.requested", "claim.payout.requested", "claim.closed"});
    CHECK(s.parked_count() == 0);
  }

  TEST_CASE("a payout result before the approval waits in assessing and applies after it") {
    filed_claim s;
    s.when(s.make("claim.payout.succeeded")).expect_outcome(ack_outcome::parked).expect_state("assessing");
    s.when(s.make("claim.assessed", decision("approved")))
        .expect_state("paid")
        .expect_emitted({"claim.payout.requested", "claim.closed"});
  }

  TEST_CASE("a parked claim.assessed whose decision is invalid is dropped when the claim is filed") {
    scenario s(claims::insurance_claim(), "c-1");
    s.when(s.make("claim.assessed", decision("maybe"))).expect_outcome(ack_outcome::parked);
    s.when(s.make("claim.filed", claim_data()))
        .expect_state("assessing")
        .expect_emitted({"claim.assessment.requested"});
    CHECK(s.parked_count() == 0);
  }

  TEST_CASE("a duplicate of every event type has no effect and gets the original ack") {
    scenario s(claims::insurance_claim(), "c-1");
    const std::vector<saga::event> events = {s.make("claim.filed", claim_data()),
                                             s.make("claim.assessed", decision("approved")),
                                             s.make("claim.payout.failed"), s.make("claim.payout.succeeded")};
    for (const auto& e : events) {
      CAPTURE(e.type);
      s.when(e);
      const auto original = s.last_ack();
      const auto outbox_before = s.outbox().size();
      const auto data_before = s.data();
      s.when(e);
      CHECK(s.last_ack().status == ack_status::duplicate);
      CHECK(s.last_ack().outcome == original.outcome);
      CHECK(s.last_ack().saga_state == original.saga_state);
      CHECK(s.emitted().empty());
      CHECK(s.outbox().size() == outbox_before);
      CHECK(s.data() == data_before);
    }
    CHECK(s.state() == "paid");
  }

  TEST_CASE("a resent payout failure counts once towards the three attempts") {
    approved_claim s;
    const auto failure = s.make("claim.payout.failed");
    for (int i = 0; i < 5; ++i) s.given({failure});
    CHECK(s.state() == "paying");
    CHECK(s.data().at("payout_attempt") == 2);
  }

  TEST_CASE("operator abort withdraws a claim in assessment and disarms the timer") {
    filed_claim s;
    s.when(operator_abort(s))
        .expect_state("withdrawn")
        .expect_emitted({"claim.withdrawn.confirmed"})
        .expect_timers({});
    CHECK(s.last_ack().status == ack_status::accepted);
    const auto e = s.emitted().front();
    CHECK(e.data.at("withdrawn_by") == "operator");
    CHECK(e.data.at("reason") == "fraud suspected");
    s.advance(days(15)).expect_emitted({});
  }

  TEST_CASE("operator abort withdraws a claim being paid") {
    approved_claim s;
    s.when(operator_abort(s)).expect_state("withdrawn").expect_emitted({"claim.withdrawn.confirmed"});
  }

  TEST_CASE("operator abort of a terminal claim is refused") {
    filed_claim s;
    s.given({s.make("claim.assessed", decision("rejected"))});
    s.when(operator_abort(s));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("terminal state 'rejected'") != std::string::npos);
    CHECK(s.state() == "rejected");
  }

  TEST_CASE("operator resolve moves a claim out of needs_attention into paid or rejected only") {
    for (const std::string to : {"paid", "rejected"}) {
      CAPTURE(to);
      approved_claim s;
      fail_payout(s, 3);
      s.expect_state("needs_attention");
      s.when(operator_resolve(s, "withdrawn"));
      CHECK(s.last_ack().status == ack_status::rejected);
      CHECK(s.state() == "needs_attention");
      s.when(operator_resolve(s, to)).expect_state(to).expect_emitted({});
      CHECK(s.last_ack().status == ack_status::accepted);
    }
  }

  TEST_CASE("operator resolve of a claim that does not need attention is refused") {
    approved_claim s;
    s.when(operator_resolve(s, "paid"));
    CHECK(s.last_ack().status == ack_status::rejected);
    CHECK(s.last_ack().reason.find("needs_attention") != std::string::npos);
    CHECK(s.state() == "paying");
  }

  TEST_CASE("the graph has the table's states - four terminal states - and checks clean") {
    const auto d = claims::insurance_claim();
    const auto& g = d->graph();
    CHECK(g.name == "insurance_claim");
    CHECK(g.initial == "new");
    for (const char* st : {"assessing", "paying", "paid", "rejected", "withdrawn", "needs_attention"})
      CHECK(g.has_state(st));
    CHECK(g.terminal == std::vector<std::string>{"paid", "rejected", "withdrawn", "needs_attention"});
    CHECK(g.timers == std::vector<std::string>{"escalation"});
    CHECK(g.starts == std::vector<std::string>{"claim.filed"});
    CHECK(g.abort_state == "withdrawn");
    CHECK(g.attention_state == "needs_attention");
    CHECK(g.resolution_targets == std::vector<std::string>{"paid", "rejected"});
    CHECK(g.rows.size() == 8);
    CHECK(saga::check_graph(g).empty());
  }

  TEST_CASE("two claims get payout ids of their own") {
    scenario a(claims::insurance_claim(), "c-a");
    scenario b(claims::insurance_claim(), "c-b");
    for (scenario* s : {&a, &b}) {
      s->given({s->make("claim.filed", claim_data(s->key()))});
      s->when(s->make("claim.assessed", decision("approved"))).expect_state("paying");
    }
    CHECK(a.emitted().front().data.at("payout_id") == "c-a:payout");
    CHECK(b.emitted().front().data.at("payout_id") == "c-b:payout");
  }
}
