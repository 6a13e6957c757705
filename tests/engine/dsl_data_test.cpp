// Reading event data with nlohmann-json's own helpers (issue 14, item 5): whatever a
// definition calls — get, at, value, in from_json or in an action — a field of the wrong JSON
// type rejects that event alone, with a reason that names the field and says it was the event's
// data (or the saga's stored data). The machine reads its data the way docs/dsl.md says not to,
// on purpose.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "saga/dsl.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace dsl = saga::dsl;

struct tally_data {
  std::int64_t total = 0;
  std::string note;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(tally_data, total, note)

// from_json with at() and get<>(): no dsl helper.
struct counted : dsl::event<"tally.counted"> {
  std::int64_t amount = 0;
  std::string sku;
  std::vector<std::string> tags;
  std::int64_t level = 0;
};
void from_json(const nlohmann::json& j, counted& e) {
  e.amount = j.at("amount").get<std::int64_t>();
  e.sku = j.at("line").at("sku").get<std::string>();
  e.tags = j.value("tags", std::vector<std::string>{});
  // A read of JSON that is not the event's: no field of the data is to blame.
  e.level = nlohmann::json::parse(j.value("meta", std::string("{}"))).value("level", std::int64_t{0});
}

using fresh = dsl::state<"new">;
using counting = dsl::state<"counting">;

// An action that reads the raw event data with value().
struct add_up {
  static constexpr std::string_view name = "add_up";
  template <class F, class S, class T>
  void operator()(const counted& e, F& fsm, S&, T&) const {
    fsm.data().total += e.amount;
    fsm.data().note = fsm.incoming().data.value("note", std::string());
  }
};

struct tally : dsl::machine<tally, tally_data> {
  static constexpr std::string_view name = "tally";
  using initial_state = fresh;
  // clang-format off
  using transition_table = boost::mpl::vector<
    row< fresh,    counted, counting, add_up >,
    row< counting, counted, dsl::none, add_up >
  >;
  // clang-format on
};

struct rig {
  saga::test::temp_dir dir;
  saga::manual_clock clock;
  saga::sqlite::store store{saga::sqlite::options{dir.file("saga.db")}};
  saga::engine engine{store, clock};
  int n = 0;
  rig() { engine.add(dsl::make_definition<tally>()); }

  saga::ack send(nlohmann::json data) {
    saga::event e;
    e.id = "e-" + std::to_string(++n);
    e.source = "urn:test";
    e.type = "tally.counted";
    e.subject = "t-1";
    e.data = std::move(data);
    return engine.handle(e);
  }
};

const std::string prefix = "definition 'tally' could not apply 'tally.counted': ";

}  // namespace

TEST_SUITE("dsl_data") {
  TEST_CASE("a wrong JSON type read with get or at or value rejects that event and names the field") {
    rig r;
    auto a = r.send({{"amount", "12"}, {"line", {{"sku", "A-1"}}}});
    CHECK(a.status == saga::ack_status::rejected);
    CHECK(a.reason == prefix + "data 'amount': type must be number, but is string");

    // A number read as a string, with another number (amount) read before it.
    a = r.send({{"amount", 12}, {"line", {{"sku", 7}}}});
    CHECK(a.reason == prefix + "data 'line.sku': type must be string, but is number");

    a = r.send({{"amount", 12}, {"line", "A-1"}});
    CHECK(a.reason == prefix + "data 'line': cannot use at() with string");

    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"tags", {"red", 3, "blue"}}});
    CHECK(a.reason == prefix + "data 'tags[1]': type must be string, but is number");

    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"tags", {{"red", true}}}});
    CHECK(a.reason == prefix + "data 'tags': type must be array, but is object");

    // value() in the action, after from_json read two strings and a number successfully.
    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"note", false}});
    CHECK(a.reason == prefix + "data 'note': type must be string, but is boolean");

    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"note", nullptr}});
    CHECK(a.reason == prefix + "data 'note': type must be string, but is null");

    // The wrong type is in JSON the definition made itself, not in a field of the data: no field
    // is named (and none falsely: the strings the data has were read fine).
    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"meta", R"({"level": "high"})"}});
    CHECK(a.reason == prefix + "data: type must be number, but is string");

    // A missing key, which nlohmann-json names.
    a = r.send({{"amount", 12}});
    CHECK(a.status == saga::ack_status::rejected);
    CHECK(a.reason == prefix + "data: key 'line' not found");

    // None of them moved the saga; a good event still does, and the next one is added up.
    a = r.send({{"amount", 12}, {"line", {{"sku", "A-1"}}}, {"note", "first"}});
    CHECK(a.status == saga::ack_status::accepted);
    a = r.send({{"amount", 30}, {"line", {{"sku", "A-2"}}}});
    CHECK(a.status == saga::ack_status::accepted);
    const auto inst = r.store.load_instance("tally", "t-1");
    REQUIRE(inst);
    CHECK(nlohmann::json::parse(inst->data)["total"] == 42);
  }

  // The engine keeps the document of the data it saved for the saga's next event (instead of
  // parsing its own text again) only while the stored row is still that text.
  TEST_CASE("a saga's data changed behind the engine at the same version is read as stored") {
    rig r;
    REQUIRE(r.send({{"amount", 1}, {"line", {{"sku", "A-1"}}}}).status == saga::ack_status::accepted);
    REQUIRE(r.send({{"amount", 2}, {"line", {{"sku", "A-1"}}}}).status == saga::ack_status::accepted);
    const auto load = [&r] { return nlohmann::json::parse(r.store.load_instance("tally", "t-1")->data); };
    CHECK(load()["total"] == 3);
    // Another connection changes the total and keeps the version: the next event adds to it.
    SQLite::Database(r.dir.file("saga.db"), SQLite::OPEN_READWRITE)
        .exec("UPDATE instances SET data = '{\"note\":\"\",\"total\":100}'");
    REQUIRE(r.send({{"amount", 4}, {"line", {{"sku", "A-1"}}}}).status == saga::ack_status::accepted);
    CHECK(load()["total"] == 104);
    // A batch that rolled back leaves the stored data, not what the engine had made of it.
    saga::event bad;
    bad.id = "e-bad";
    bad.source = "urn:test";
    bad.type = "tally.counted";
    bad.subject = "t-1";
    bad.data = {{"amount", 8}, {"line", {{"sku", "A-1"}}}};
    r.store.begin();  // the host's transaction (embedding), which it then rolls back
    REQUIRE(r.engine.handle_in_transaction(std::span(&bad, 1)).acks.at(0).status ==
            saga::ack_status::accepted);
    r.store.rollback();
    REQUIRE(r.send({{"amount", 16}, {"line", {{"sku", "A-1"}}}}).status == saga::ack_status::accepted);
    CHECK(load()["total"] == 120);
  }

  TEST_CASE("stored saga data of the wrong JSON type rejects the event and says it was the saga data") {
    rig r;
    REQUIRE(r.send({{"amount", 1}, {"line", {{"sku", "A-1"}}}}).status == saga::ack_status::accepted);
    // Edited by another connection, as an operator's sqlite3 shell would (the store's own
    // connection is its own: it keeps the rows it wrote, store.hpp).
    SQLite::Database(r.dir.file("saga.db"), SQLite::OPEN_READWRITE)
        .exec("UPDATE instances SET data = '{\"total\":\"many\"}'");
    const auto a = r.send({{"amount", 2}, {"line", {{"sku", "A-1"}}}});
    CHECK(a.status == saga::ack_status::rejected);
    CHECK(a.reason == prefix + "saga data 'total': type must be number, but is string");
  }
}
