// Hostile input against a real sagad (issue 7, "Hostile input"; issue 11): nesting
// 100,000 deep, 1 MiB strings, invalid UTF-8, NUL bytes, out-of-range
// numbers, a wrong type for every attribute, duplicated keys. Each goes to
// the ingress over a raw DEALER and must come back as a rejected ack whose
// reason names the problem; afterwards sagad still accepts a valid event and
// its resident memory did not grow beyond a bound. Issue 11 adds input that
// reaches the engine: operator actions and workflow events with every JSON
// type in their data fields, forged engine ids, parked and dead-letter
// floods, and (through sagad-test) definitions that throw non-std exceptions
// and a timer that throws; after each, sagad is alive, accepts valid events
// in order, and every event it acked is still there.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "support/process.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::endpoints;
using saga::test::process;
using saga::test::temp_dir;

// ---------------------------------------------------------------------------
// sagad and a raw DEALER

struct daemon_rig {
  temp_dir dir;
  endpoints ep;  // where the running sagad is bound
  std::string db = dir.file("hostile.db");
  std::string binary;
  std::vector<std::string> extra;
  std::unique_ptr<process> proc;
  ::zmq::context_t ctx{1};
  ::zmq::socket_t dealer{ctx, ::zmq::socket_type::dealer};

  // `binary`: sagad, or sagad-test (the hostile definitions); `extra`: more options.
  explicit daemon_rig(std::string binary_path = SAGAD_PATH, std::vector<std::string> extra_args = {})
      : binary(std::move(binary_path)), extra(std::move(extra_args)) {
    dealer.set(::zmq::sockopt::linger, 0);
    start();
  }

  // Starts the daemon (again) on the same database, on loopback ports it chooses and reports
  // (--endpoints-file); after a restart the dealer follows it to its new ingress.
  void start() {
    std::vector<std::string> argv{binary, "--db", db, "--log-level", "warn"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc.reset();
    auto started = saga::test::start_daemon(argv, endpoints::any_loopback(), dir.file("endpoints.json"),
                                            dir.file("sagad.out"), dir.file("sagad.err"));
    proc = std::move(started.proc);
    REQUIRE_MESSAGE(started, started.error);
    ep = started.ep;
    const bool ready = saga::test::wait_until_ingress_answers(ep.ingress, 20s, proc.get());
    INFO("sagad stderr: " << proc->err());
    REQUIRE(ready);
    if (connected_ != ep.ingress) {
      if (!connected_.empty()) dealer.disconnect(connected_);
      dealer.connect(ep.ingress);
      connected_ = ep.ingress;
    }
  }
  // SIGTERM and wait: sagad must stop cleanly.
  void stop() {
    proc->signal(SIGTERM);
    const auto st = proc->wait_for(20s);
    INFO("sagad stderr: " << proc->err().substr(0, 4000));
    CHECK(st.code() == 0);
  }

  void send(std::string_view body) {
    dealer.send(::zmq::const_buffer(), ::zmq::send_flags::sndmore);
    dealer.send(::zmq::buffer(body.data(), body.size()), ::zmq::send_flags::none);
  }
  // The next ack's body; a discarded json when none came within `timeout`.
  json recv(std::chrono::milliseconds timeout = 10s) {
    ::zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, timeout);
    if ((item.revents & ZMQ_POLLIN) == 0) return json(json::value_t::discarded);
    std::vector<::zmq::message_t> frames;
    (void)::zmq::recv_multipart(dealer, std::back_inserter(frames));
    last_ack_bytes = frames.empty() ? 0 : frames.back().size();
    if (frames.size() != 2 || frames[0].size() != 0) return json(json::value_t::discarded);
    return json::parse(frames[1].to_string_view(), nullptr, false);
  }
  std::size_t last_ack_bytes = 0;
  std::string connected_;  // the ingress the dealer is connected to

  // sagad's resident set, in KiB (VmRSS of /proc/<pid>/status).
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(proc->pid()) + "/status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
  }
};

// ---------------------------------------------------------------------------
// inputs

int counter = 0;

json valid_event(const std::string& key) {
  return json{{"specversion", "1.0"},
              {"id", "hostile-" + key + "-" + std::to_string(counter++)},
              {"source", "urn:test:hostile"},
              {"type", "order.placed"},
              {"subject", key},
              {"time", "2026-11-27T00:10:45.123Z"},
              {"datacontenttype", "application/json"},
              {"data", {{"order_id", key}, {"amount", 1250}, {"currency", "EUR"}, {"customer_id", "c-1"}}}};
}

json with(std::string_view attr, json value) {
  json e = valid_event("k-with");
  e[std::string(attr)] = std::move(value);
  return e;
}

json with_data(std::string_view field, json value) {
  json e = valid_event("k-data");
  e["data"][std::string(field)] = std::move(value);
  return e;
}

// The text of a valid envelope with `data_text` spliced in as the value of data.
std::string envelope_with_raw_data(std::string_view data_text) {
  json e = valid_event("k-raw");
  e.erase("data");
  std::string text = e.dump();
  text.pop_back();  // '}'
  return text + ",\"data\":" + std::string(data_text) + "}";
}

// The text of a valid envelope with `extra` ("\"key\":value,") spliced in first.
std::string envelope_with_raw_member(std::string_view extra) {
  const std::string text = valid_event("k-member").dump();
  return "{" + std::string(extra) + text.substr(1);
}

// A valid envelope whose `id` string is replaced by raw bytes (no escaping).
std::string envelope_with_raw_id(std::string_view raw) {
  json e = valid_event("k-id");
  e["id"] = "@@ID@@";
  std::string text = e.dump();
  return text.replace(text.find("@@ID@@"), 6, std::string(raw));
}

struct hostile {
  std::string what;    // for the report
  std::string body;    // the request, as sent
  std::string reason;  // a part the rejection's reason must contain
};

std::vector<hostile> hostile_inputs() {
  std::vector<hostile> v;
  const std::string size_reason = "exceeds the limit of 65536 bytes";
  const std::string depth_reason = "nested deeper than 32 levels";

  // --- nesting
  v.push_back({"100,000 nested arrays", std::string(100000, '['), size_reason});
  {
    std::string objs;
    for (int i = 0; i < 100000; ++i) objs += "{\"a\":";
    v.push_back({"100,000 nested objects", objs, size_reason});
    std::string in_data;
    for (int i = 0; i < 100000; ++i) in_data += "{\"a\":";
    v.push_back({"100,000 nested objects inside data", envelope_with_raw_data(in_data), size_reason});
  }
  v.push_back({"60,000 nested arrays (within the size limit)", std::string(60000, '['), depth_reason});
  v.push_back(
      {"30,000 nested arrays, closed", std::string(30000, '[') + std::string(30000, ']'), depth_reason});
  {
    std::string deep = "{}";
    for (int i = 0; i < 10000; ++i) deep = "{\"a\":" + deep + "}";
    v.push_back({"10,000 nested objects inside data", envelope_with_raw_data(deep), depth_reason});
    std::string d32 = "{}";
    for (int i = 0; i < 31; ++i) d32 = "{\"a\":" + d32 + "}";
    v.push_back({"data nested 33 levels (one too many)", envelope_with_raw_data(d32), depth_reason});
    std::string arr = "[]";
    for (int i = 0; i < 40; ++i) arr = "[" + arr + "]";
    v.push_back(
        {"an array nested 40 deep in data", envelope_with_raw_data("{\"l\":" + arr + "}"), depth_reason});
  }

  // --- 1 MiB strings
  const std::string mib(1024 * 1024, 'x');
  v.push_back({"1 MiB string inside data", with_data("note", mib).dump(), size_reason});
  v.push_back({"1 MiB string as id", with("id", mib).dump(), size_reason});
  v.push_back({"1 MiB string as subject", with("subject", mib).dump(), size_reason});
  v.push_back({"1 MiB string as type", with("type", mib).dump(), size_reason});
  v.push_back({"1 MiB string as an extension attribute", with("trace", mib).dump(), size_reason});
  v.push_back({"1 MiB key inside data", envelope_with_raw_data("{\"" + mib + "\":1}"), size_reason});
  v.push_back({"1 MiB of whitespace", std::string(1024 * 1024, ' '), size_reason});

  // --- invalid UTF-8 (raw bytes; nlohmann's lexer reports them)
  v.push_back({"invalid UTF-8 in id", envelope_with_raw_id("e\xc3\x28"), "UTF-8"});
  v.push_back({"overlong encoding in id", envelope_with_raw_id("e\xc0\xaf"), "UTF-8"});
  v.push_back({"encoded surrogate in id", envelope_with_raw_id("e\xed\xa0\x80"), "UTF-8"});
  v.push_back({"code point above U+10FFFF in id", envelope_with_raw_id("e\xf4\x90\x80\x80"), "UTF-8"});
  v.push_back({"a lone 0xFF byte in id", envelope_with_raw_id("e\xff"), "UTF-8"});
  v.push_back({"truncated sequence in id", envelope_with_raw_id("e\xe2\x82"), "UTF-8"});
  v.push_back({"invalid UTF-8 in a data value", envelope_with_raw_data("{\"k\":\"\xc3\x28\"}"), "UTF-8"});
  v.push_back({"invalid UTF-8 in a data key", envelope_with_raw_data("{\"\xc3\x28\":1}"), "UTF-8"});
  v.push_back({"invalid UTF-8 outside strings", "{\xc3\x28}", "not valid JSON"});
  v.push_back(
      {"an escaped lone surrogate in data", envelope_with_raw_data(R"({"k":"\ud800"})"), "surrogate"});
  v.push_back({"an escaped lone low surrogate in id", envelope_with_raw_id(R"(\udc00)"), "surrogate"});

  // --- NUL bytes
  {
    std::string t = valid_event("k-nul").dump();
    v.push_back({"a raw NUL byte in the middle", t.substr(0, 30) + std::string(1, '\0') + t.substr(30),
                 "a raw NUL byte"});
    v.push_back(
        {"a raw NUL byte inside a string", envelope_with_raw_id(std::string("a\0b", 3)), "a raw NUL byte"});
    v.push_back({"a lone NUL byte", std::string(1, '\0'), "a raw NUL byte"});
    v.push_back({"a NUL byte after the document", t + std::string(1, '\0'), "a raw NUL byte"});
  }
  for (const char* attr : {"id", "source", "type", "subject", "causationid", "correlationid"})
    v.push_back({std::string("an escaped NUL in ") + attr, with(attr, std::string("a\0b", 3)).dump(),
                 std::string("attribute '") + attr + "': must not contain control characters"});

  // --- out-of-range numbers (in the envelope's JSON)
  v.push_back({"1e400 in data", envelope_with_raw_data(R"({"x":1e400})"), "number overflow parsing '1e400'"});
  v.push_back(
      {"-1e400 in data", envelope_with_raw_data(R"({"x":-1e400})"), "number overflow parsing '-1e400'"});
  v.push_back({"an integer of 400 digits", envelope_with_raw_data("{\"x\":" + std::string(400, '9') + "}"),
               "number overflow"});
  v.push_back(
      {"1e400 as an extension attribute", envelope_with_raw_member(R"("big":1e400,)"), "number overflow"});
  v.push_back({"1e400 as amount",
               envelope_with_raw_data(R"({"order_id":"k","amount":1e400,"currency":"EUR"})"),
               "number overflow"});

  // --- a wrong type for every attribute
  for (const char* attr : {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                           "causationid", "correlationid", "dataschema"})
    for (const json& bad :
         {json(42), json(true), json(1.5), json::array(), json::array({"a"}), json::object(), json{{"a", 1}}})
      v.push_back({std::string("attribute ") + attr + " as " + bad.dump(), with(attr, bad).dump(),
                   std::string("attribute '") + attr + "': must be a string"});
  for (const char* attr : {"specversion", "id", "source", "type", "subject"})
    v.push_back({std::string("attribute ") + attr + " as null", with(attr, nullptr).dump(),
                 std::string("attribute '") + attr + "': required"});
  for (const json& bad : {json(42), json(true), json(1.5), json("text"), json::array(), json::array({1})})
    v.push_back(
        {"data as " + bad.dump(), with("data", bad).dump(), "attribute 'data': must be a JSON object"});
  v.push_back({"data_base64", with("data_base64", "AAAA").dump(), "attribute 'data_base64'"});
  for (const json& bad : {json::array(), json::object(), json{{"a", 1}}})
    v.push_back({"an extension attribute as " + bad.dump(), with("ext", bad).dump(),
                 "attribute 'ext': must be a string, number or boolean"});
  v.push_back({"an extension attribute with an upper-case name", with("Ext", 1).dump(),
               "names must be lower-case letters and digits"});
  // ... and for the fields of order.placed's data that the definition reads.
  v.push_back(
      {"data.amount as a string", with_data("amount", "1250").dump(), "could not apply 'order.placed'"});
  v.push_back({"data.amount as an object", with_data("amount", json{{"v", 1}}).dump(),
               "could not apply 'order.placed'"});
  v.push_back(
      {"data.currency as a number", with_data("currency", 5).dump(), "could not apply 'order.placed'"});
  v.push_back({"data.items as a string", with_data("items", "x").dump(), "data 'items': must be an array"});
  {
    json e = valid_event("k-noamount");
    e["data"].erase("amount");
    v.push_back({"data without amount", e.dump(), "could not apply 'order.placed'"});
  }

  // --- duplicated keys
  v.push_back(
      {"id twice", envelope_with_raw_member(R"("id":"other",)"), "attribute 'id': appears more than once"});
  v.push_back({"specversion twice", envelope_with_raw_member(R"("specversion":"1.0",)"),
               "attribute 'specversion': appears more than once"});
  v.push_back({"type twice", envelope_with_raw_member(R"("type":"order.placed",)"),
               "attribute 'type': appears more than once"});
  v.push_back(
      {"data twice", envelope_with_raw_member(R"("data":{},)"), "attribute 'data': appears more than once"});
  v.push_back({"a key twice inside data",
               envelope_with_raw_data(R"({"order_id":"k","amount":1,"amount":2,"currency":"EUR"})"),
               "key 'amount' appears more than once in one object"});
  v.push_back({"a key twice deeper inside data",
               envelope_with_raw_data(
                   R"({"order_id":"k","amount":1,"currency":"EUR","items":[{"sku":"a","sku":"b"}]})"),
               "key 'sku' appears more than once in one object"});
  return v;
}

// Sends every input (pipelined, on one connection) and checks each ack.
void send_and_check(daemon_rig& d, const std::vector<hostile>& inputs) {
  for (const auto& h : inputs) d.send(h.body);
  for (const auto& h : inputs) {
    const json a = d.recv();
    INFO("input: " << h.what << " (" << h.body.size() << " bytes)");
    REQUIRE_MESSAGE(!a.is_discarded(), "no ack, or a malformed one (sagad stderr: " << d.proc->err() << ")");
    INFO("ack: " << a.dump().substr(0, 600));
    CHECK(a.at("status") == "rejected");
    REQUIRE(a.at("reason").is_string());
    const std::string reason = a.at("reason").get<std::string>();
    CHECK_MESSAGE(reason.find(h.reason) != std::string::npos, "expected the reason to contain: " << h.reason);
    // The reason names the problem; it does not echo the input.
    CHECK(d.last_ack_bytes < 4096);
  }
}

bool accepts_a_valid_event(daemon_rig& d, const std::string& key) {
  const json e = valid_event(key);
  d.send(e.dump());
  const json a = d.recv();
  INFO("ack: " << a.dump());
  return !a.is_discarded() && a.at("status") == "accepted" && a.at("id") == e.at("id");
}

#ifdef SAGA_TEST_ASAN
constexpr long rss_growth_limit_kib = 512 * 1024;  // ASan's quarantine holds freed memory
#else
constexpr long rss_growth_limit_kib = 64 * 1024;
#endif

}  // namespace

TEST_SUITE("hostile input") {
  TEST_CASE("every hostile input is rejected with a reason naming the problem and sagad is unaffected") {
    daemon_rig d;
    REQUIRE(accepts_a_valid_event(d, "before"));
    const long rss_before = d.rss_kib();

    const auto inputs = hostile_inputs();
    MESSAGE(inputs.size() << " hostile inputs");
    send_and_check(d, inputs);
    REQUIRE(d.proc->running());
    CHECK(accepts_a_valid_event(d, "after-1"));

    // Four more rounds: memory must level off, not grow with every round.
    for (int round = 0; round < 4; ++round) send_and_check(d, inputs);
    const long rss_after = d.rss_kib();
    MESSAGE("sagad RSS: " << rss_before / 1024 << " MiB before, " << rss_after / 1024
                          << " MiB after 5 rounds (" << 5 * inputs.size() << " hostile inputs)");
    CHECK(rss_after - rss_before < rss_growth_limit_kib);

    CHECK(accepts_a_valid_event(d, "after-5"));
    CHECK(d.proc->running());
    d.proc->signal(SIGTERM);
    const auto st = d.proc->wait_for(10s);
    INFO("sagad stderr: " << d.proc->err().substr(0, 4000));
    CHECK(st.code() == 0);
  }

  TEST_CASE("hostile inputs interleaved with valid events: the valid ones are all accepted in order") {
    daemon_rig d;
    const auto inputs = hostile_inputs();
    std::vector<std::string> valid_ids;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      d.send(inputs[i].body);
      const json e = valid_event("mixed-" + std::to_string(i));
      valid_ids.push_back(e.at("id"));
      d.send(e.dump());
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      INFO("input: " << inputs[i].what);
      const json bad = d.recv();
      REQUIRE(!bad.is_discarded());
      CHECK(bad.at("status") == "rejected");
      const json good = d.recv();
      REQUIRE(!good.is_discarded());
      CHECK(good.at("status") == "accepted");
      CHECK(good.at("id") == valid_ids[i]);
    }
    CHECK(d.proc->running());
  }

  // Found by this test: order_lifecycle once read data.amount without a range
  // check (1e300 stored as INT64_MIN, a float-to-int64 overflow UBSan aborts on).
  TEST_CASE("numbers out of the range a definition reads are rejected with a reason") {
    // Valid JSON numbers that do not fit the int64 amount order.placed reads:
    // the definition must reject them, not wrap or truncate them.
    daemon_rig d;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"1e300", R"({"order_id":"k1","amount":1e300,"currency":"EUR"})"},
        {"-1e300", R"({"order_id":"k2","amount":-1e300,"currency":"EUR"})"},
        {"2^63", R"({"order_id":"k3","amount":9223372036854775808,"currency":"EUR"})"},
        {"2^64-1", R"({"order_id":"k4","amount":18446744073709551615,"currency":"EUR"})"},
        {"1.9", R"({"order_id":"k5","amount":1.9,"currency":"EUR"})"},
    };
    for (const auto& c : cases) {  // not a structured binding: clang 14 cannot capture one in INFO
      const std::string& what = c.first;
      const std::string& data = c.second;
      json e = valid_event("range-" + what);
      e["data"] = json::parse(data);
      d.send(e.dump());
      const json a = d.recv();
      INFO("amount " << what << " -> ack: " << a.dump());
      REQUIRE_MESSAGE(!a.is_discarded(), "no ack (sagad "
                                             << std::string(d.proc->running() ? "running" : "dead")
                                             << ", stderr: " << d.proc->err().substr(0, 2000) << ")");
      CHECK(a.at("status") == "rejected");
      CHECK(a.at("reason").get<std::string>().find("data 'amount'") != std::string::npos);
    }
    CHECK(d.proc->running());
  }
}

// ---------------------------------------------------------------------------
// Issue 11: no input stops sagad. After each class of input: sagad alive,
// valid events still accepted in order, nothing acked lost.

namespace {

json make_event(const std::string& type, const std::string& key, json data,
                const std::string& source = "urn:test:hostile") {
  return json{{"specversion", "1.0"}, {"id", "h11-" + key + "-" + std::to_string(counter++)},
              {"source", source},     {"type", type},
              {"subject", key},       {"data", std::move(data)}};
}

json placed_data(const std::string& key) {
  return {{"order_id", key},
          {"amount", 1250},
          {"currency", "EUR"},
          {"customer_id", "c-1"},
          {"items", json::array()}};
}

json notice_data(const std::string& key) {
  return {{"notice_id", key},
          {"policy_id", "p-1"},
          {"amount", 900},
          {"currency", "EUR"},
          {"due", "2027-12-01T00:00:00Z"}};
}

// Every JSON type, once each.
const std::vector<std::pair<std::string, json>>& json_types() {
  static const std::vector<std::pair<std::string, json>> v = {
      {"null", nullptr},  {"bool", true},           {"integer", 42},           {"double", 1.5},
      {"string", "text"}, {"array", json::array()}, {"object", json{{"a", 1}}}};
  return v;
}

// Sends every event (pipelined) and returns the acks in order; every one must come.
std::vector<json> roundtrip(daemon_rig& d, const std::vector<json>& events) {
  for (const auto& e : events) d.send(e.dump());
  std::vector<json> acks;
  for (const auto& e : events) {
    json a = d.recv(20s);
    INFO("event: " << e.dump().substr(0, 300));
    REQUIRE_MESSAGE(!a.is_discarded(), "no ack (sagad " << std::string(d.proc->running() ? "running" : "dead")
                                                        << ", stderr: " << d.proc->err().substr(0, 2000)
                                                        << ")");
    CHECK(a.at("id") == e.at("id"));
    acks.push_back(std::move(a));
  }
  return acks;
}

// sagad runs; ten valid events are accepted, each acked in the order sent.
void check_alive_in_order(daemon_rig& d, const std::string& tag, std::vector<json>* accepted = nullptr) {
  REQUIRE(d.proc->running());
  std::vector<json> events;
  for (int i = 0; i < 10; ++i) {
    const std::string key = "alive-" + tag + "-" + std::to_string(i);
    events.push_back(make_event("order.placed", key, placed_data(key)));
  }
  const auto acks = roundtrip(d, events);
  for (std::size_t i = 0; i < acks.size(); ++i) {
    INFO("ack: " << acks[i].dump());
    CHECK(acks[i].at("status") == "accepted");
    CHECK(acks[i].at("id") == events[i].at("id"));
  }
  if (accepted) accepted->insert(accepted->end(), events.begin(), events.end());
}

// Every event acked as accepted is still there: sent again, each is a duplicate.
void check_nothing_lost(daemon_rig& d, const std::vector<json>& accepted) {
  const auto acks = roundtrip(d, accepted);
  for (const auto& a : acks) {
    INFO("ack: " << a.dump());
    CHECK(a.at("status") == "duplicate");
  }
}

// The accepted events of `events` (by their acks).
void keep_accepted(const std::vector<json>& events, const std::vector<json>& acks, std::vector<json>& out) {
  for (std::size_t i = 0; i < events.size() && i < acks.size(); ++i)
    if (acks[i].at("status") == "accepted") out.push_back(events[i]);
}

bool contains(const json& ack, const std::string& part) {
  return ack.contains("reason") && ack.at("reason").is_string() &&
         ack.at("reason").get<std::string>().find(part) != std::string::npos;
}

std::uintmax_t database_bytes(const std::string& db) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(db + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

// A value from sagad's database, read through a connection of the test's own (WAL: sagad keeps
// writing meanwhile).
std::int64_t query_int(const std::string& db, const std::string& sql, const std::string& bind = {}) {
  SQLite::Database c(db, SQLite::OPEN_READONLY, 5000);
  SQLite::Statement q(c, sql);
  if (!bind.empty()) q.bind(1, bind);
  return q.executeStep() ? q.getColumn(0).getInt64() : -1;
}

}  // namespace

TEST_SUITE("hostile input") {
  // The input of issue 11 (data.saga_type a number stopped sagad), generalised.
  TEST_CASE("every operator action with every JSON type in each data field is answered and sagad runs on") {
    daemon_rig d;
    std::vector<json> accepted;
    check_alive_in_order(d, "op-before", &accepted);
    int n = 0;
    for (const char* action : {"abort", "resolve"}) {
      for (const char* field : {"saga_type", "to", "reason", "operator"}) {
        for (const auto& typed : json_types()) {
          const json& value = typed.second;
          const std::string key = "op-" + std::to_string(n++);
          const std::vector<json> events = {
              make_event("order.placed", key, placed_data(key)),
              make_event(std::string("saga.operator.") + action, key, json{{field, value}}),
          };
          const auto acks = roundtrip(d, events);
          keep_accepted(events, acks, accepted);
          INFO(action << " with data." << field << " = " << value.dump() << " -> " << acks[1].dump());
          CHECK(acks[0].at("status") == "accepted");
          REQUIRE(d.proc->running());
          if (!value.is_null() && !value.is_string()) {
            CHECK(acks[1].at("status") == "rejected");
            CHECK(contains(acks[1], std::string("data '") + field + "'"));
          } else if (acks[1].at("status") == "rejected") {
            CHECK(!acks[1].at("reason").get<std::string>().empty());
          }
        }
      }
    }
    // An unknown action and operator data that is not an object at all.
    const std::vector<json> odd = {
        make_event("saga.operator.x", "op-0", json::object()),
        make_event("saga.operator.abort", "op-1", json{{"saga_type", json{{"a", {1}}}}}),
        make_event("saga.operator.resolve", "no-such-saga", json{{"to", "done"}})};
    for (const auto& a : roundtrip(d, odd)) {
      INFO("ack: " << a.dump());
      CHECK(a.at("status") == "rejected");
      CHECK(!a.at("reason").get<std::string>().empty());
    }
    check_alive_in_order(d, "op-after", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }

  TEST_CASE(
      "every data field of every workflow event with the wrong JSON type is rejected naming the field") {
    daemon_rig d;
    std::vector<json> accepted;
    check_alive_in_order(d, "wt-before", &accepted);
    struct field {
      std::string type, name, kind;  // kind: the JSON type the field must have
    };
    const std::vector<field> fields = {
        {"order.placed", "order_id", "string"},
        {"order.placed", "amount", "integer"},
        {"order.placed", "currency", "string"},
        {"order.placed", "customer_id", "string"},
        {"order.placed", "items", "array"},
        {"payment_notice.created", "notice_id", "string"},
        {"payment_notice.created", "policy_id", "string"},
        {"payment_notice.created", "amount", "integer"},
        {"payment_notice.created", "currency", "string"},
        {"payment_notice.created", "due", "string"},
    };
    int n = 0;
    for (const auto& f : fields) {
      for (const auto& typed : json_types()) {
        const std::string& kind = typed.first;
        const json& value = typed.second;
        if (kind == f.kind) continue;
        const std::string key = "wt-" + std::to_string(n++);
        json data = f.type == "order.placed" ? placed_data(key) : notice_data(key);
        data[f.name] = value;
        const std::vector<json> events = {make_event(f.type, key, data)};
        const auto acks = roundtrip(d, events);
        keep_accepted(events, acks, accepted);
        INFO(f.type << " with data." << f.name << " = " << value.dump() << " -> " << acks[0].dump());
        REQUIRE(d.proc->running());
        // null is "missing": fine for an optional field, named when required.
        if (!value.is_null() || acks[0].at("status") == "rejected") {
          CHECK(acks[0].at("status") == "rejected");
          CHECK(contains(acks[0], "data '" + f.name + "'"));
        }
      }
    }
    // A string that is not a date where `due` must be one.
    {
      json data = notice_data("wt-due-text");
      data["due"] = "next tuesday";
      const auto acks = roundtrip(d, {make_event("payment_notice.created", "wt-due-text", data)});
      CHECK(acks[0].at("status") == "rejected");
      CHECK(contains(acks[0], "data 'due'"));
    }
    // The events whose data no definition reads: junk of every type is harmless. Each goes to a
    // saga that exists, so that it is dispatched (not parked).
    {
      std::vector<json> starts = {
          make_event("order.placed", "wt-order", placed_data("wt-order")),
          make_event("payment_notice.created", "wt-notice", notice_data("wt-notice"))};
      for (const auto& a : roundtrip(d, starts)) CHECK(a.at("status") == "accepted");
      accepted.insert(accepted.end(), starts.begin(), starts.end());
      const std::vector<std::pair<std::string, std::string>> readers_of_nothing = {
          {"payment.succeeded", "wt-order"},     {"inventory.reserved", "wt-order"},
          {"shipment.dispatched", "wt-order"},   {"delivery.started", "wt-order"},
          {"delivery.failed", "wt-order"},       {"payment.refund.failed", "wt-order"},
          {"payment.refunded", "wt-order"},      {"order.cancel.requested", "wt-order"},
          {"premium.paid", "wt-notice"},         {"auth.login.failed", "wt-account"},
          {"auth.login.succeeded", "wt-account"}};
      for (const auto& typed : json_types()) {
        const json& value = typed.second;
        std::vector<json> events;
        for (const auto& tk : readers_of_nothing)
          events.push_back(
              make_event(tk.first, tk.second, json{{"amount", value}, {"order_id", value}, {"x", value}}));
        const auto acks = roundtrip(d, events);
        keep_accepted(events, acks, accepted);
        for (std::size_t i = 0; i < acks.size(); ++i) {
          INFO(events[i].at("type") << " with junk " << value.dump() << " -> " << acks[i].dump());
          CHECK(acks[i].at("status") != "rejected");
        }
      }
    }
    check_alive_in_order(d, "wt-after", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }

  TEST_CASE("an event under the engine's own source or with a forged timer id is rejected with a reason") {
    daemon_rig d;
    std::vector<json> accepted;
    const std::string key = "forge-1";
    const std::vector<json> start = {make_event("order.placed", key, placed_data(key))};
    REQUIRE(roundtrip(d, start)[0].at("status") == "accepted");
    accepted.push_back(start[0]);

    std::vector<json> forged;
    // The id the payment timeout of this order would fire with, taken first.
    json timer_id = make_event("saga.timer.payment_timeout", key, json::object(), "urn:saga:order_lifecycle");
    timer_id["id"] = "timer:order_lifecycle:" + key + ":payment_timeout:1";
    forged.push_back(timer_id);
    json failed = make_event("payment.failed", key, json::object(), "urn:saga:order_lifecycle");
    failed["id"] = "timer:order_lifecycle:" + key + ":payment_timeout:1";
    forged.push_back(failed);
    forged.push_back(make_event("payment.failed", key, json::object(), "urn:saga:payment_notice"));
    forged.push_back(
        make_event("auth.login.failed", "forge-account", json::object(), "urn:saga:account_lockout"));
    // The same id as the engine writes it, with the id of the event that started the saga.
    json with_start = timer_id;
    with_start["id"] = timer_id.at("id").get<std::string>() + "@" + start[0].at("id").get<std::string>();
    forged.push_back(with_start);
    // A timer type from an outside source.
    forged.push_back(make_event("saga.timer.payment_timeout", key, json::object()));
    for (const auto& a : roundtrip(d, forged)) {
      INFO("ack: " << a.dump());
      CHECK(a.at("status") == "rejected");
      CHECK(!a.at("reason").get<std::string>().empty());
    }
    {
      // (A timer type is refused for its type first; the others for their source.)
      const auto acks = roundtrip(d, {forged[1], forged[2], forged[3]});
      for (const auto& a : acks) {
        INFO("ack: " << a.dump());
        CHECK(contains(a, "attribute 'source'"));
      }
    }
    // The saga did not move: the real payment still takes it from placed to paid.
    const std::vector<json> paid = {make_event("payment.succeeded", key, json::object())};
    const auto acks = roundtrip(d, paid);
    INFO("ack: " << acks[0].dump());
    CHECK(acks[0].at("status") == "accepted");
    CHECK(acks[0].at("outcome") == "transitioned");
    CHECK(acks[0].at("saga").at("state") == "paid");
    accepted.push_back(paid[0]);
    check_alive_in_order(d, "forge-after", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }

  TEST_CASE("a parked flood for random keys stops at --park-total-limit and the disk stays small") {
    constexpr int limit = 300;
    constexpr int flood = 1500;
    daemon_rig d(SAGAD_PATH, {"--park-total-limit", std::to_string(limit)});
    std::vector<json> accepted;
    int parked = 0, rejected = 0;
    for (int chunk = 0; chunk < flood / 100; ++chunk) {
      std::vector<json> events;
      for (int i = 0; i < 100; ++i) {
        const std::string key = "flood-" + std::to_string(chunk) + "-" + std::to_string(i);
        events.push_back(make_event("payment.succeeded", key, json{{"note", std::string(200, 'p')}}));
      }
      const auto acks = roundtrip(d, events);
      keep_accepted(events, acks, accepted);
      for (const auto& a : acks) {
        if (a.at("status") == "accepted") {
          CHECK(a.at("outcome") == "parked");
          ++parked;
        } else {
          INFO("ack: " << a.dump());
          CHECK(a.at("status") == "rejected");
          CHECK(contains(a, "park"));
          ++rejected;
        }
      }
    }
    MESSAGE(parked << " parked, " << rejected << " rejected over the total limit of " << limit
                   << "; database " << database_bytes(d.db) / 1024 << " KiB");
    CHECK(parked == limit);
    CHECK(rejected == flood - limit);
    CHECK(database_bytes(d.db) < 16u * 1024 * 1024);
    check_alive_in_order(d, "flood-after", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }

  TEST_CASE("a rejected event resent many times is one dead letter") {
    daemon_rig d;
    std::vector<json> accepted;
    json bad = make_event("order.placed", "dl-1", placed_data("dl-1"));
    bad["data"]["amount"] = "a lot";
    constexpr int resends = 300;
    const std::vector<json> events(resends, bad);
    for (const auto& a : roundtrip(d, events)) {
      CHECK(a.at("status") == "rejected");
      CHECK(contains(a, "data 'amount'"));
    }
    check_alive_in_order(d, "dl-after", &accepted);  // its commit follows the rejections'
    const std::string id = bad.at("id");
    CHECK(query_int(d.db, "SELECT count(*) FROM dead_letters WHERE event_id = ?", id) == 1);
    CHECK(query_int(d.db, "SELECT sum(count) FROM dead_letters WHERE event_id = ?", id) == resends);
    check_nothing_lost(d, accepted);
    d.stop();
  }

#if defined(SAGAD_TEST_PATH)
  TEST_CASE("a definition whose action or guard throws something that is not a std::exception") {
    daemon_rig d(SAGAD_TEST_PATH);
    std::vector<json> accepted;
    const std::vector<json> start = {make_event("hostile.throw.start", "thr-1", json::object())};
    REQUIRE(roundtrip(d, start)[0].at("status") == "accepted");
    accepted.push_back(start[0]);
    std::vector<json> events;
    for (int i = 0; i < 5; ++i) {
      events.push_back(make_event("hostile.throw_int", "thr-1", json::object()));
      const std::string key = "thr-valid-" + std::to_string(i);
      events.push_back(make_event("order.placed", key, placed_data(key)));
      events.push_back(make_event("hostile.throw_string", "thr-1", json::object()));
    }
    const auto acks = roundtrip(d, events);
    for (std::size_t i = 0; i < acks.size(); ++i) {
      INFO(events[i].at("type") << " -> " << acks[i].dump());
      if (i % 3 == 1) {
        CHECK(acks[i].at("status") == "accepted");
        accepted.push_back(events[i]);
      } else {
        CHECK(acks[i].at("status") == "rejected");
        CHECK(!acks[i].at("reason").get<std::string>().empty());
      }
    }
    const std::vector<json> finish = {make_event("hostile.throw.finish", "thr-1", json::object())};
    const auto done = roundtrip(d, finish);
    CHECK(done[0].at("status") == "accepted");
    CHECK(done[0].at("saga").at("state") == "done");
    accepted.push_back(finish[0]);
    check_alive_in_order(d, "thr-after", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }

  TEST_CASE("a timer whose action throws: sagad keeps running and starts again on that database") {
    daemon_rig d(SAGAD_TEST_PATH);
    std::vector<json> accepted;
    // One timer fires while sagad runs; another is due while sagad is stopped, so that it
    // fires during the next start (a boot loop if its failure stopped sagad).
    const std::vector<json> first = {make_event("hostile.timer_throws.start", "tmr-1", json::object())};
    REQUIRE(roundtrip(d, first)[0].at("status") == "accepted");
    accepted.push_back(first[0]);
    const auto fired = [&](const std::string& key) {
      return query_int(d.db,
                       "SELECT count(*) FROM dead_letters WHERE type = 'saga.timer.boom' AND subject = ?",
                       key) > 0;
    };
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!fired("tmr-1") && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
    INFO("sagad stderr: " << d.proc->err().substr(0, 4000));
    CHECK(fired("tmr-1"));
    check_alive_in_order(d, "tmr-after-1", &accepted);

    const std::vector<json> second = {make_event("hostile.timer_throws.start", "tmr-2", json::object())};
    REQUIRE(roundtrip(d, second)[0].at("status") == "accepted");
    accepted.push_back(second[0]);
    d.stop();
    // The 1 s timer falls due while sagad is down (sagad reads the system clock: wait until then).
    const auto due_ms = query_int(d.db, "SELECT max(next_due_ms) FROM instances WHERE key = ?", "tmr-2");
    REQUIRE(due_ms > 0);
    while (std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() <= due_ms)
      std::this_thread::sleep_for(10ms);
    d.start();
    const auto deadline2 = std::chrono::steady_clock::now() + 30s;
    while (!fired("tmr-2") && d.proc->running() && std::chrono::steady_clock::now() < deadline2)
      std::this_thread::sleep_for(50ms);
    CHECK(fired("tmr-2"));
    check_alive_in_order(d, "tmr-after-2", &accepted);
    check_nothing_lost(d, accepted);
    d.stop();
  }
#endif
}
