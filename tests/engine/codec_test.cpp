// The event codec: every rule of DESIGN.md "The event envelope", each with
// the reason it gives, plus the success paths and the RFC 3339 helpers.

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "saga/codec.hpp"
#include "saga/event.hpp"
#include "saga/trace.hpp"

namespace {

using nlohmann::json;

// A complete, valid envelope; each test breaks one thing in it.
json valid_doc() {
  return json{{"specversion", "1.0"},
              {"id", "evt-1"},
              {"source", "urn:shop:orders"},
              {"type", "order.placed"},
              {"subject", "order-42"},
              {"time", "2026-11-27T00:10:45.123Z"},
              {"datacontenttype", "application/json"},
              {"data", {{"order_id", "order-42"}, {"amount", 1250}, {"currency", "EUR"}}}};
}

saga::decode_result decode(const json& doc) {
  return saga::decode_event(doc.dump());
}

// A doc with `key` set to `value` (or removed when value is discarded).
json with(std::string_view key, json value) {
  json doc = valid_doc();
  doc[std::string(key)] = std::move(value);
  return doc;
}

json without(std::string_view key) {
  json doc = valid_doc();
  doc.erase(std::string(key));
  return doc;
}

// {"a":{"a":...{}}} with `levels` objects in all.
json nested_objects(int levels) {
  json inner = json::object();
  for (int i = 1; i < levels; ++i) inner = json{{"a", std::move(inner)}};
  return inner;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

saga::event full_event() {
  saga::event e;
  e.id = "evt-1";
  e.source = "urn:shop:orders";
  e.type = "order.placed";
  e.subject = "order-42";
  e.time = "2026-11-27T00:10:45.123Z";
  e.data = {{"order_id", "order-42"}, {"amount", 1250}, {"items", {{{"sku", "A-1"}, {"qty", 2}}}}};
  e.causationid = "evt-0";
  e.correlationid = "evt-root";
  e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.tracestate = "rojo=00f067aa0ba902b7";
  return e;
}

saga::event minimal_event() {
  saga::event e;
  e.id = "evt-1";
  e.source = "urn:shop:orders";
  e.type = "order.placed";
  e.subject = "order-42";
  return e;
}

// The raw text of a valid envelope with `extra` spliced in after the first '{'.
std::string raw_with(std::string_view extra) {
  return std::string("{") + std::string(extra) +
         R"("specversion":"1.0","id":"evt-1","source":"urn:shop:orders","type":"order.placed","subject":"order-42"})";
}

}  // namespace

TEST_SUITE("codec") {
  // --- success -----------------------------------------------------------

  TEST_CASE("a valid envelope decodes with every attribute read") {
    auto r = decode(valid_doc());
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.error.empty());
    CHECK(r.event->id == "evt-1");
    CHECK(r.event->source == "urn:shop:orders");
    CHECK(r.event->type == "order.placed");
    CHECK(r.event->subject == "order-42");
    CHECK(r.event->time == "2026-11-27T00:10:45.123Z");
    CHECK(r.event->data == json{{"order_id", "order-42"}, {"amount", 1250}, {"currency", "EUR"}});
    CHECK(r.event->causationid.empty());
    CHECK(r.event->correlationid.empty());
    CHECK(r.id == "evt-1");
    CHECK(r.source == "urn:shop:orders");
  }

  TEST_CASE("a full event round-trips through encode_event and decode_event field by field") {
    const saga::event e = full_event();
    auto r = saga::decode_event(saga::encode_event(e));
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->id == e.id);
    CHECK(r.event->source == e.source);
    CHECK(r.event->type == e.type);
    CHECK(r.event->subject == e.subject);
    CHECK(r.event->time == e.time);
    CHECK(r.event->data == e.data);
    CHECK(r.event->causationid == e.causationid);
    CHECK(r.event->correlationid == e.correlationid);
    CHECK(r.event->traceparent == e.traceparent);
    CHECK(r.event->tracestate == e.tracestate);
  }

  TEST_CASE("encode_event writes the fixed attributes and the extensions") {
    const json j = json::parse(saga::encode_event(full_event()));
    CHECK(j.at("specversion") == "1.0");
    CHECK(j.at("datacontenttype") == "application/json");
    CHECK(j.at("causationid") == "evt-0");
    CHECK(j.at("correlationid") == "evt-root");
    CHECK(j == saga::event_to_json(full_event()));
  }

  TEST_CASE("encode_event leaves out optional attributes that have no value") {
    const std::string text = saga::encode_event(minimal_event());
    CHECK_FALSE(contains(text, "null"));
    const json j = json::parse(text);
    CHECK_FALSE(j.contains("time"));
    CHECK_FALSE(j.contains("causationid"));
    CHECK_FALSE(j.contains("correlationid"));
    CHECK(j.at("data") == json::object());
    CHECK(j.at("subject") == "order-42");

    saga::event no_subject = minimal_event();
    no_subject.subject.clear();
    CHECK_FALSE(json::parse(saga::encode_event(no_subject)).contains("subject"));
  }

  // encode_event writes the envelope by hand; its bytes must stay those of nlohmann's dump,
  // for every character a string may hold and with optional attributes present or absent.
  TEST_CASE("encode_event writes exactly what nlohmann's dump of the envelope writes") {
    const std::string tricky[] = {"",
                                  "plain",
                                  "quote \" and backslash \\ and slash /",
                                  "\b\f\n\r\t\x01\x1f\x7f",
                                  std::string("nul \0 inside", 12),
                                  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"};
    int compared = 0;
    for (const auto& a : tricky)
      for (const auto& b : tricky) {
        saga::event e;
        e.id = "id-" + a;
        e.source = b.empty() ? "urn:x" : b;
        e.type = "t." + b;
        e.subject = a;
        e.time = b;
        e.causationid = b;
        e.correlationid = a;
        e.traceparent = b;
        e.tracestate = a;
        e.data = {{"k" + a, b}, {"n", 1.5}, {"list", {1, nullptr, true}}};
        CHECK(saga::encode_event(e) == saga::event_to_json(e).dump());
        ++compared;
      }
    CHECK(compared == 36);
    saga::event bad;  // invalid UTF-8: both refuse it the same way
    bad.id = "\xff";
    CHECK_THROWS_AS(saga::encode_event(bad), json::type_error);
  }

  TEST_CASE("an event without data decodes with an empty object as data") {
    auto r = decode(without("data"));
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->data == json::object());
    CHECK(r.event->data.is_object());
  }

  TEST_CASE("an optional attribute set to null is treated as absent") {
    for (const char* name :
         {"time", "datacontenttype", "causationid", "correlationid", "dataschema", "data"}) {
      CAPTURE(name);
      auto r = decode(with(name, nullptr));
      REQUIRE_MESSAGE(r, r.error);
      CHECK(r.event->causationid.empty());
      CHECK(r.event->correlationid.empty());
      if (std::string_view(name) == "time") CHECK(r.event->time.empty());
      if (std::string_view(name) == "data") CHECK(r.event->data == json::object());
    }
  }

  TEST_CASE("a time with an offset and fractional seconds is accepted and kept as written") {
    for (const char* t : {"2026-11-27T02:10:45.123+02:00", "2026-11-26T19:10:45.123456-05:00",
                          "2026-11-27T00:10:45Z", "2026-11-27t00:10:45.1z"}) {
      CAPTURE(t);
      auto r = decode(with("time", t));
      REQUIRE_MESSAGE(r, r.error);
      CHECK(r.event->time == t);
    }
  }

  TEST_CASE("datacontenttype with parameters after application/json is accepted") {
    auto r = decode(with("datacontenttype", "application/json; charset=utf-8"));
    CHECK_MESSAGE(r, r.error);
  }

  TEST_CASE("extension attributes with scalar values are accepted and kept") {
    json doc = valid_doc();
    doc["priority2"] = 5;
    doc["urgent"] = true;
    doc["region"] = "eu";
    doc["dataschema"] = "urn:schema:order";
    doc["gone"] = nullptr;
    auto r = decode(doc);
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->extensions ==
          json{{"priority2", 5}, {"urgent", true}, {"region", "eu"}, {"dataschema", "urn:schema:order"}});
    // ... and encoded again with the event, in nlohmann's key order.
    const std::string text = saga::encode_event(*r.event);
    CHECK(text == saga::event_to_json(*r.event).dump());
    CHECK(json::parse(text) == [&] {
      json expected = doc;
      expected.erase("gone");
      return expected;
    }());
  }

  TEST_CASE("an event without extensions keeps none") {
    auto r = decode(valid_doc());
    REQUIRE_MESSAGE(r, r.error);
    CHECK((r.event->extensions.is_null() || r.event->extensions.empty()));
    CHECK(r.event->traceparent.empty());
    CHECK(r.event->tracestate.empty());
  }

  TEST_CASE("a string in data may hold escaped control characters and any unicode") {
    auto r =
        decode(with("data", {{"note", std::string("line1\nline2\ttab \x01 caf\xc3\xa9 \xf0\x9f\x98\x80")}}));
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->data.at("note") == std::string("line1\nline2\ttab \x01 caf\xc3\xa9 \xf0\x9f\x98\x80"));
  }

  // --- size ----------------------------------------------------------------

  TEST_CASE("an event of exactly 64 KiB is accepted and one byte more is rejected") {
    json doc = valid_doc();
    doc["data"]["pad"] = "";
    const std::size_t base = doc.dump().size();
    doc["data"]["pad"] = std::string(65536 - base, 'x');
    const std::string exact = doc.dump();
    REQUIRE(exact.size() == 65536);
    auto ok = saga::decode_event(exact);
    CHECK_MESSAGE(ok, ok.error);

    doc["data"]["pad"] = std::string(65536 - base + 1, 'x');
    const std::string over = doc.dump();
    REQUIRE(over.size() == 65537);
    auto r = saga::decode_event(over);
    CHECK_FALSE(r);
    CHECK(r.error == "event: 65537 bytes exceeds the limit of 65536 bytes");
  }

  TEST_CASE("the size limit comes from the limits passed in") {
    const std::string text = valid_doc().dump();
    saga::limits lim;
    lim.max_event_bytes = 100;
    auto r = saga::decode_event(text, lim);
    CHECK_FALSE(r);
    CHECK(r.error == "event: " + std::to_string(text.size()) + " bytes exceeds the limit of 100 bytes");
  }

  // --- not JSON, not an object -------------------------------------------

  TEST_CASE("text that is not JSON is rejected as not valid JSON") {
    for (const char* text : {"", "{", "not json", "{\"id\":}", "{\"id\":\"a\",}", "{} {}", "{'id':'a'}"}) {
      CAPTURE(text);
      auto r = saga::decode_event(text);
      CHECK_FALSE(r);
      CHECK_MESSAGE(starts_with(r.error, "event: not valid JSON"), r.error);
      CHECK(r.id.empty());
      CHECK(r.source.empty());
    }
  }

  TEST_CASE("valid JSON that is not an object is rejected") {
    for (const char* text : {"[1,2]", "42", "\"event\"", "null", "true", "[]"}) {
      CAPTURE(text);
      auto r = saga::decode_event(text);
      CHECK_FALSE(r);
      CHECK(r.error == "event: must be a JSON object");
    }
  }

  // --- nesting depth ---------------------------------------------------------

  TEST_CASE("nesting of exactly 32 levels is accepted and 33 is rejected") {
    // The envelope is level 1 and data level 2.
    auto ok = decode(with("data", nested_objects(31)));
    CHECK_MESSAGE(ok, ok.error);

    auto r = decode(with("data", nested_objects(32)));
    CHECK_FALSE(r);
    CHECK(r.error == "event: nested deeper than 32 levels");

    json arrays = json::array();
    for (int i = 1; i < 32; ++i) arrays = json::array({std::move(arrays)});
    auto ra = decode(with("data", {{"list", arrays}}));
    CHECK_FALSE(ra);
    CHECK(ra.error == "event: nested deeper than 32 levels");
  }

  TEST_CASE("the depth limit comes from the limits passed in") {
    saga::limits lim;
    lim.max_depth = 4;
    auto ok = saga::decode_event(with("data", nested_objects(3)).dump(), lim);
    CHECK_MESSAGE(ok, ok.error);
    auto r = saga::decode_event(with("data", nested_objects(4)).dump(), lim);
    CHECK_FALSE(r);
    CHECK(r.error == "event: nested deeper than 4 levels");
  }

  TEST_CASE("a document nested 100000 deep is rejected with the depth reason") {
    saga::limits lim;
    lim.max_event_bytes = 1 << 20;  // so that the depth rule, not the size rule, decides
    const std::string arrays(100000, '[');
    std::string objects;
    for (int i = 0; i < 100000; ++i) objects += "{\"a\":";

    auto ra = saga::decode_event(arrays, lim);
    auto ro = saga::decode_event(objects, lim);

    CHECK_FALSE(ra);
    CHECK(ra.error == "event: nested deeper than 32 levels");
    CHECK_FALSE(ro);
    CHECK(ro.error == "event: nested deeper than 32 levels");
  }

  TEST_CASE("deep nesting within the size limit gets the depth reason") {
    const std::string closed = std::string(30000, '[') + std::string(30000, ']');
    auto r = saga::decode_event(closed);
    CHECK_FALSE(r);
    CHECK(r.error == "event: nested deeper than 32 levels");
  }

  // --- duplicated keys -------------------------------------------------------

  TEST_CASE("a duplicated top-level attribute is rejected") {
    auto r = saga::decode_event(raw_with(R"("id":"evt-0",)"));
    CHECK_FALSE(r);
    CHECK(r.error == "attribute 'id': appears more than once");

    auto r2 = saga::decode_event(raw_with(R"("data":{},"data":{},)"));
    CHECK_FALSE(r2);
    CHECK(r2.error == "attribute 'data': appears more than once");
  }

  TEST_CASE("a duplicated key inside data is rejected") {
    auto r = saga::decode_event(raw_with(R"("data":{"amount":1,"amount":2},)"));
    CHECK_FALSE(r);
    CHECK(r.error == "event: key 'amount' appears more than once in one object");

    auto deeper = saga::decode_event(raw_with(R"("data":{"items":[{"sku":"a","sku":"b"}]},)"));
    CHECK_FALSE(deeper);
    CHECK(deeper.error == "event: key 'sku' appears more than once in one object");
  }

  TEST_CASE("the same key in sibling objects is not a duplicate") {
    auto r =
        saga::decode_event(raw_with(R"("data":{"a":{"id":1},"b":{"id":2},"items":[{"id":1},{"id":2}]},)"));
    CHECK_MESSAGE(r, r.error);
  }

  // --- numbers -----------------------------------------------------------------

  TEST_CASE("a number out of range is rejected naming the number") {
    // nlohmann's parser reports the overflow itself, before the codec's own
    // finiteness check could see the value: the reason is its parse error.
    const std::string text = raw_with(R"("data":{"x":1e400},)");
    auto r = saga::decode_event(text);
    CHECK_FALSE(r);
    const std::size_t end_of_number = text.find("1e400") + 5;
    CHECK(r.error == "event: not valid JSON at byte " + std::to_string(end_of_number) +
                         " (number overflow parsing '1e400')");

    auto neg = saga::decode_event(raw_with(R"("data":{"x":-1e400},)"));
    CHECK_FALSE(neg);
    CHECK(contains(neg.error, "number overflow parsing '-1e400'"));
  }

  TEST_CASE("an integer too large for 64 bits is accepted as a floating-point number") {
    auto r = saga::decode_event(raw_with(R"("data":{"x":123456789012345678901234567890},)"));
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->data.at("x").is_number_float());
  }

  // --- specversion -------------------------------------------------------------

  TEST_CASE("specversion must be present and be the string 1.0") {
    auto missing = decode(without("specversion"));
    CHECK_FALSE(missing);
    CHECK(missing.error == "attribute 'specversion': required");

    for (const char* v : {"0.3", "1", "1.0 ", "2.0"}) {
      CAPTURE(v);
      auto r = decode(with("specversion", v));
      CHECK_FALSE(r);
      CHECK(r.error == "attribute 'specversion': must be \"1.0\"");
    }

    auto empty = decode(with("specversion", ""));
    CHECK_FALSE(empty);
    CHECK(empty.error == "attribute 'specversion': must not be empty");

    auto number = decode(with("specversion", 1.0));
    CHECK_FALSE(number);
    CHECK(number.error == "attribute 'specversion': must be a string");
  }

  // --- id, source, type, subject -------------------------------------------------

  TEST_CASE("id source type and subject are each required non-empty strings without control characters") {
    for (const char* name : {"id", "source", "type", "subject"}) {
      CAPTURE(name);
      const std::string attr = std::string("attribute '") + name + "': ";

      auto missing = decode(without(name));
      CHECK_FALSE(missing);
      CHECK(missing.error == attr + "required");

      auto null = decode(with(name, nullptr));
      CHECK_FALSE(null);
      CHECK(null.error == attr + "required");

      auto empty = decode(with(name, ""));
      CHECK_FALSE(empty);
      CHECK(empty.error == attr + "must not be empty");

      auto number = decode(with(name, 42));
      CHECK_FALSE(number);
      CHECK(number.error == attr + "must be a string");

      auto object = decode(with(name, json{{"a", 1}}));
      CHECK_FALSE(object);
      CHECK(object.error == attr + "must be a string");

      for (const char* bad : {"a\nb", "a\tb", "a\x01", "\x1f", "a\x7f"}) {
        auto ctrl = decode(with(name, bad));
        CHECK_FALSE(ctrl);
        CHECK(ctrl.error == attr + "must not contain control characters");
      }
    }
  }

  TEST_CASE("an escaped NUL in an attribute is a control character") {
    auto r = saga::decode_event(raw_with(R"("causationid":"a\u0000b",)"));
    CHECK_FALSE(r);
    CHECK(r.error == "attribute 'causationid': must not contain control characters");
  }

  TEST_CASE("the extensions causationid and correlationid must be strings without control characters") {
    for (const char* name : {"causationid", "correlationid"}) {
      CAPTURE(name);
      const std::string attr = std::string("attribute '") + name + "': ";
      auto number = decode(with(name, 7));
      CHECK_FALSE(number);
      CHECK(number.error == attr + "must be a string");
      auto ctrl = decode(with(name, "x\ny"));
      CHECK_FALSE(ctrl);
      CHECK(ctrl.error == attr + "must not contain control characters");
    }
  }

  // --- time --------------------------------------------------------------------------

  TEST_CASE("a time that is not an RFC 3339 date-time is rejected") {
    for (const char* t : {"yesterday", "2026-11-27", "2026-11-27T00:10:45", "2026-11-27 00:10:45Z",
                          "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-27T24:00:00Z",
                          "2026-11-27T00:60:00Z", "2026-11-27T00:10:45.Z", "2026-11-27T00:10:45+0200",
                          "2026-11-27T00:10:45Z ", "26-11-27T00:10:45Z", "2026-11-27T00:10:45+24:00"}) {
      CAPTURE(t);
      auto r = decode(with("time", t));
      CHECK_FALSE(r);
      CHECK(r.error == "attribute 'time': must be an RFC 3339 date-time");
    }
    auto number = decode(with("time", 1764202245123));
    CHECK_FALSE(number);
    CHECK(number.error == "attribute 'time': must be a string");
  }

  // --- datacontenttype -------------------------------------------------------------

  TEST_CASE("a datacontenttype other than application/json is rejected") {
    for (const char* ct : {"text/plain", "application/xml", "application/jsonx", "APPLICATION/JSON",
                           "application/cloudevents+json"}) {
      CAPTURE(ct);
      auto r = decode(with("datacontenttype", ct));
      CHECK_FALSE(r);
      CHECK(r.error == "attribute 'datacontenttype': must be \"application/json\"");
    }
  }

  // --- data --------------------------------------------------------------------------

  TEST_CASE("data that is not a JSON object is rejected") {
    for (const json& d : {json::array({1, 2}), json("order-42"), json(5), json(true), json::array()}) {
      CAPTURE(d.dump());
      auto r = decode(with("data", d));
      CHECK_FALSE(r);
      CHECK(r.error == "attribute 'data': must be a JSON object");
    }
  }

  TEST_CASE("data_base64 is rejected") {
    auto r = decode(with("data_base64", "eyJhIjoxfQ=="));
    CHECK_FALSE(r);
    CHECK(r.error == "attribute 'data_base64': binary data is not accepted; send 'data'");

    json both = without("data");
    both["data_base64"] = "eyJhIjoxfQ==";
    auto r2 = decode(both);
    CHECK_FALSE(r2);
    CHECK(r2.error == "attribute 'data_base64': binary data is not accepted; send 'data'");
  }

  // --- extensions ----------------------------------------------------------------------

  TEST_CASE("an extension attribute with a name that is not lower-case alphanumeric is rejected") {
    for (const char* name : {"MyExt", "traceParent", "my_ext", "my-ext", "ID"}) {
      CAPTURE(name);
      auto r = decode(with(name, "x"));
      CHECK_FALSE(r);
      CHECK(r.error == std::string("attribute '") + name + "': names must be lower-case letters and digits");
    }
  }

  TEST_CASE("an extension attribute with an object or array value is rejected") {
    auto obj = decode(with("myext", json{{"a", 1}}));
    CHECK_FALSE(obj);
    CHECK(obj.error == "attribute 'myext': must be a string, number or boolean");

    auto arr = decode(with("myext", json::array({1})));
    CHECK_FALSE(arr);
    CHECK(arr.error == "attribute 'myext': must be a string, number or boolean");
  }

  // --- trace context (CloudEvents Distributed Tracing extension) --------------------------

  TEST_CASE("a valid traceparent and tracestate are kept as they came and encoded again") {
    const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    json doc = with("traceparent", tp);
    doc["tracestate"] = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    auto r = decode(doc);
    REQUIRE_MESSAGE(r, r.error);
    CHECK(r.event->traceparent == tp);
    CHECK(r.event->tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    CHECK((r.event->extensions.is_null() || r.event->extensions.empty()));  // not an "other" extension
    const std::string text = saga::encode_event(*r.event);
    CHECK(text == saga::event_to_json(*r.event).dump());
    CHECK(json::parse(text) == doc);
  }

  TEST_CASE("a later traceparent version may carry more fields after a dash") {
    for (const char* tp : {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                           "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-later"}) {
      CAPTURE(tp);
      auto r = decode(with("traceparent", tp));
      CHECK_MESSAGE(r, r.error);
    }
  }

  TEST_CASE("a malformed traceparent is rejected with a reason naming traceparent") {
    const std::string shape =
        "attribute 'traceparent': must be 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower-case";
    const std::pair<json, std::string> cases[] = {
        {"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", shape},    // trace id one short
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", shape},    // parent id one short
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", shape},  // version 00 is exact
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010", shape},
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", shape},  // upper case
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", shape},
        {"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", shape},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", shape},  // not hex
        {"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", shape},  // separators
        {"", shape},
        {"00-abc-def-01", shape},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         "attribute 'traceparent': version ff is not allowed"},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
         "attribute 'traceparent': the trace id must not be all zeros"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
         "attribute 'traceparent': the parent id must not be all zeros"},
        {42, "attribute 'traceparent': must be a string"},
        {true, "attribute 'traceparent': must be a string"},
        {json{{"a", 1}}, "attribute 'traceparent': must be a string"},
        {json::array({"00"}), "attribute 'traceparent': must be a string"},
    };
    for (const auto& c : cases) {
      const json& value = c.first;  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const std::string& reason = c.second;
      CAPTURE(value.dump());
      auto r = decode(with("traceparent", value));
      CHECK_FALSE(r);
      CHECK(r.error == reason);
    }
  }

  TEST_CASE("tracestate must be a string of at most 512 characters") {
    CHECK(decode(with("tracestate", std::string(512, 'a'))));
    auto over = decode(with("tracestate", std::string(513, 'a')));
    CHECK_FALSE(over);
    CHECK(over.error == "attribute 'tracestate': longer than 512 characters");
    auto number = decode(with("tracestate", 7));
    CHECK_FALSE(number);
    CHECK(number.error == "attribute 'tracestate': must be a string");
  }

  TEST_CASE("validate_event applies the trace and extension rules to an event built in memory") {
    saga::event e = minimal_event();
    e.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    e.extensions = {{"region", "eu"}};
    CHECK(saga::validate_event(e) == "");
    e.traceparent = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    CHECK(saga::validate_event(e) == "attribute 'traceparent': the trace id must not be all zeros");
    e.traceparent.clear();
    e.tracestate = std::string(513, 'x');
    CHECK(saga::validate_event(e) == "attribute 'tracestate': longer than 512 characters");
    e.tracestate.clear();
    e.extensions = {{"Region", "eu"}};
    CHECK(saga::validate_event(e) == "attribute 'Region': names must be lower-case letters and digits");
    e.extensions = {{"id", "x"}};
    CHECK(saga::validate_event(e) == "attribute 'id': is not an extension");
    e.extensions = {{"nested", {{"a", 1}}}};
    CHECK(saga::validate_event(e) == "attribute 'nested': must be a string, number or boolean");
    e.extensions = {{"big", std::string(70000, 'x')}};  // the event size limit bounds them
    CHECK(saga::validate_event(e) == "event: extensions of 70010 bytes exceed the limit of 65536 bytes");
  }

  // The data's walk reuses one work list per thread: a walk that stopped at a problem, or a very
  // wide document, leaves nothing behind for the next event.
  TEST_CASE("validate_event checks each event's data on its own after a failed or a wide one") {
    saga::event bad = minimal_event();
    bad.data = {{"a", std::string("\xfe")},
                {"z", std::string("\xff")}};  // stops at one, the other not walked
    CHECK(saga::validate_event(bad) == "attribute 'data': strings must be valid UTF-8");
    saga::event good = minimal_event();
    good.data = {{"a", {{"b", {1, 2, 3}}}}, {"s", "fine"}};
    CHECK(saga::validate_event(good) == "");
    saga::event wide = minimal_event();
    for (int i = 0; i < 20000; ++i) wide.data["k" + std::to_string(i)] = {{"v", i}};
    CHECK(saga::validate_event(wide) == "");
    wide.data["k19999"]["v"] = std::string("\xc3");
    CHECK(saga::validate_event(wide) == "attribute 'data': strings must be valid UTF-8");
    CHECK(saga::validate_event(good) == "");
    saga::limits shallow;
    shallow.max_depth = 3;
    CHECK(saga::validate_event(good, shallow) == "event: nested deeper than 3 levels");
    CHECK(saga::validate_event(minimal_event(), shallow) == "");
  }

  TEST_CASE("new and child traceparents are valid and keep the trace id with a new span id") {
    const std::string root = saga::new_traceparent();
    CHECK(saga::traceparent_problem(root) == "");
    CHECK(root.substr(53) == "01");
    std::set<std::string> spans{root.substr(36, 16)};
    for (int i = 0; i < 100; ++i) {
      const std::string child = saga::child_traceparent(root);
      CHECK(saga::traceparent_problem(child) == "");
      CHECK(saga::trace_id_of(child) == saga::trace_id_of(root));
      CHECK(child.substr(53) == "01");
      spans.insert(child.substr(36, 16));
    }
    CHECK(spans.size() == 101);
    CHECK(saga::trace_id_of(saga::new_traceparent()) != saga::trace_id_of(root));
    // Flags carry over from the parent; a later version's parent gets version 00 children.
    const std::string later =
        saga::child_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x");
    CHECK(later.substr(0, 36) == "00-4bf92f3577b34da6a3ce929d0e0e4736-");
    CHECK(later.substr(52) == "-00");
    CHECK(saga::valid_trace_id(saga::trace_id_of(root)));
    CHECK_FALSE(saga::valid_trace_id("00000000000000000000000000000000"));
    CHECK_FALSE(saga::valid_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"));
  }

  // --- bytes -----------------------------------------------------------------------------

  TEST_CASE("invalid UTF-8 in a string is rejected as not valid JSON") {
    for (const char* bad : {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
      const std::string text = raw_with(std::string("\"causationid\":\"a") + bad + "\",");
      auto r = saga::decode_event(text);
      CHECK_FALSE(r);
      CHECK_MESSAGE(starts_with(r.error, "event: not valid JSON at byte "), r.error);
    }
    auto in_data = saga::decode_event(raw_with("\"data\":{\"note\":\"caf\xe9\"},"));
    CHECK_FALSE(in_data);
    CHECK(starts_with(in_data.error, "event: not valid JSON at byte "));
  }

  TEST_CASE("the reason given for invalid UTF-8 is itself valid UTF-8") {
    // The reason goes back to the sender inside the JSON ack and into the dead
    // letters: it must not carry the offending bytes along.
    auto r = saga::decode_event(raw_with("\"id\":\"a\xff\","));
    REQUIRE_FALSE(r);
    CHECK_NOTHROW((void)json(r.error).dump());
  }

  TEST_CASE("a raw NUL byte inside a string is rejected") {
    const std::string text = raw_with(std::string("\"causationid\":\"a") + '\0' + "b\",");
    auto r = saga::decode_event(text);
    CHECK_FALSE(r);
    CHECK_MESSAGE(starts_with(r.error, "event: not valid JSON"), r.error);
  }

  TEST_CASE("a raw NUL byte between tokens is rejected") {
    std::string text = raw_with("");
    text.insert(1, 1, '\0');  // right after the opening brace
    auto r = saga::decode_event(text);
    CHECK_FALSE(r);
    CHECK_MESSAGE(starts_with(r.error, "event: not valid JSON"), r.error);
  }

  TEST_CASE("a raw NUL byte after the closing brace is rejected") {
    // The whole frame is the event: nothing may follow the object, and a NUL
    // must not end the input early and hide what comes after it.
    const std::string text = raw_with("") + '\0';
    auto r = saga::decode_event(text);
    CHECK_FALSE(r);
    CHECK_MESSAGE(starts_with(r.error, "event: not valid JSON"), r.error);

    const std::string trailing = raw_with("") + '\0' + "{\"more\":";
    auto r2 = saga::decode_event(trailing);
    CHECK_FALSE(r2);
    CHECK_MESSAGE(starts_with(r2.error, "event: not valid JSON"), r2.error);
  }

  // --- what a rejection still names ---------------------------------------------------------

  TEST_CASE("a rejection carries the id and source read before the failure") {
    auto spec = decode(with("specversion", "0.3"));
    CHECK_FALSE(spec);
    CHECK(spec.id == "evt-1");
    CHECK(spec.source == "urn:shop:orders");

    auto type = decode(without("type"));
    CHECK_FALSE(type);
    CHECK(type.error == "attribute 'type': required");
    CHECK(type.id == "evt-1");
    CHECK(type.source == "urn:shop:orders");

    auto data = decode(with("data", json::array()));
    CHECK_FALSE(data);
    CHECK(data.id == "evt-1");
    CHECK(data.source == "urn:shop:orders");

    auto no_source = decode(without("source"));
    CHECK_FALSE(no_source);
    CHECK(no_source.id == "evt-1");
    CHECK(no_source.source.empty());

    auto numeric_id = decode(with("id", 7));
    CHECK_FALSE(numeric_id);
    CHECK(numeric_id.id.empty());
    CHECK(numeric_id.source == "urn:shop:orders");
  }

  TEST_CASE("a rejection of unparseable text names no event") {
    auto r = saga::decode_event("{\"id\":\"evt-1\",\"source\":\"s\",");
    CHECK_FALSE(r);
    CHECK(r.id.empty());
    CHECK(r.source.empty());
    CHECK_FALSE(r.event.has_value());
  }

  // --- validate_event ----------------------------------------------------------------------

  TEST_CASE("validate_event accepts a complete and a minimal event") {
    CHECK(saga::validate_event(full_event()) == "");
    CHECK(saga::validate_event(minimal_event()) == "");
  }

  TEST_CASE("validate_event rejects a missing required attribute") {
    for (auto field : {&saga::event::id, &saga::event::source, &saga::event::type, &saga::event::subject}) {
      saga::event e = minimal_event();
      e.*field = "";
      CHECK_FALSE(saga::validate_event(e).empty());
    }
    saga::event e = minimal_event();
    e.id.clear();
    CHECK(saga::validate_event(e) == "attribute 'id': required");
    e = minimal_event();
    e.source.clear();
    CHECK(saga::validate_event(e) == "attribute 'source': required");
    e = minimal_event();
    e.type.clear();
    CHECK(saga::validate_event(e) == "attribute 'type': required");
    e = minimal_event();
    e.subject.clear();
    CHECK(saga::validate_event(e) == "attribute 'subject': required");
  }

  TEST_CASE("validate_event rejects control characters in any string attribute") {
    saga::event e = minimal_event();
    e.type = "order\nplaced";
    CHECK(saga::validate_event(e) == "attribute 'type': must not contain control characters");
    e = minimal_event();
    e.causationid = std::string("a\0b", 3);
    CHECK(saga::validate_event(e) == "attribute 'causationid': must not contain control characters");
    e = minimal_event();
    e.correlationid = "x\x7f";
    CHECK(saga::validate_event(e) == "attribute 'correlationid': must not contain control characters");
  }

  TEST_CASE("validate_event rejects a bad time and accepts a good one") {
    saga::event e = minimal_event();
    e.time = "2026-02-30T00:00:00Z";
    CHECK(saga::validate_event(e) == "attribute 'time': must be an RFC 3339 date-time");
    e.time = "2026-11-27T02:10:45.123+02:00";
    CHECK(saga::validate_event(e) == "");
  }

  TEST_CASE("validate_event rejects data that is not an object") {
    saga::event e = minimal_event();
    e.data = json::array({1});
    CHECK(saga::validate_event(e) == "attribute 'data': must be a JSON object");
    e.data = nullptr;
    CHECK(saga::validate_event(e) == "attribute 'data': must be a JSON object");
  }

  TEST_CASE("validate_event applies the depth limit as decode_event does") {
    // The header promises the same rules as decode_event except the size limit.
    saga::event e = minimal_event();
    e.data = nested_objects(31);  // 32 levels with the envelope
    CHECK(saga::validate_event(e) == "");
    REQUIRE(saga::decode_event(saga::encode_event(e)));

    e.data = nested_objects(32);  // 33 levels: decode_event rejects its encoded form
    REQUIRE_FALSE(saga::decode_event(saga::encode_event(e)));
    const std::string err = saga::validate_event(e);
    CHECK_MESSAGE(contains(err, "nested deeper than 32 levels"), err);

    saga::limits lim;
    lim.max_depth = 4;
    e.data = nested_objects(4);
    CHECK_MESSAGE(contains(saga::validate_event(e, lim), "nested deeper than 4 levels"),
                  saga::validate_event(e, lim));
  }

  TEST_CASE("validate_event rejects strings that are not valid UTF-8") {
    // decode_event can never produce such an event, and encode_event throws
    // on one, so an event built in memory must be stopped here.
    saga::event e = minimal_event();
    e.id = "evt-\xff";
    const std::string err = saga::validate_event(e);
    CHECK_MESSAGE(contains(err, "attribute 'id'"), err);

    e = minimal_event();
    e.data = {{"note", "caf\xe9"}};
    CHECK_FALSE(saga::validate_event(e).empty());
  }

  // --- parse_time and format_time ---------------------------------------------------------

  TEST_CASE("format_time of zero is the Unix epoch with milliseconds") {
    CHECK(saga::format_time(0) == "1970-01-01T00:00:00.000Z");
    CHECK(saga::format_time(1) == "1970-01-01T00:00:00.001Z");
    CHECK(saga::format_time(86'400'000 - 1) == "1970-01-01T23:59:59.999Z");
  }

  TEST_CASE("a known instant round-trips through format_time and parse_time") {
    // 2026-11-27 is day 20,784 since the epoch.
    const std::int64_t ms = 20784LL * 86'400'000 + (10 * 60 + 45) * 1000LL + 123;
    CHECK(saga::format_time(ms) == "2026-11-27T00:10:45.123Z");
    REQUIRE(saga::parse_time("2026-11-27T00:10:45.123Z").has_value());
    CHECK(*saga::parse_time("2026-11-27T00:10:45.123Z") == ms);
    CHECK(saga::parse_time(saga::format_time(ms)) == ms);
    CHECK(saga::parse_time("1970-01-01T00:00:00Z") == 0);
    CHECK(saga::parse_time("1970-01-01T00:00:00.000Z") == 0);
  }

  TEST_CASE("format_time and parse_time agree over many instants") {
    for (std::int64_t ms = 0; ms < 4'000'000'000'000LL; ms += 37'123'456'789LL) {
      CAPTURE(ms);
      CHECK(saga::parse_time(saga::format_time(ms)) == ms);
    }
  }

  TEST_CASE("parse_time applies offsets") {
    const auto utc = saga::parse_time("2026-11-27T00:10:45.123Z");
    REQUIRE(utc.has_value());
    CHECK(saga::parse_time("2026-11-27T02:10:45.123+02:00") == utc);
    CHECK(saga::parse_time("2026-11-26T19:10:45.123-05:00") == utc);
    CHECK(saga::parse_time("2026-11-27T05:40:45.123+05:30") == utc);
    CHECK(saga::parse_time("2026-11-27T00:10:45.123+00:00") == utc);
    CHECK(saga::parse_time("2026-11-27T00:10:45.123-00:00") == utc);
    CHECK(saga::parse_time("2026-11-27t00:10:45.123z") == utc);
  }

  TEST_CASE("parse_time reads fractional seconds to the millisecond") {
    const std::int64_t base = *saga::parse_time("2026-11-27T00:10:45Z");
    CHECK(saga::parse_time("2026-11-27T00:10:45.1Z") == base + 100);
    CHECK(saga::parse_time("2026-11-27T00:10:45.12Z") == base + 120);
    CHECK(saga::parse_time("2026-11-27T00:10:45.123Z") == base + 123);
    CHECK(saga::parse_time("2026-11-27T00:10:45.123999999Z") == base + 123);
  }

  TEST_CASE("parse_time rejects invalid dates and malformed text") {
    for (const char* t :
         {"2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
          "2026-00-10T00:00:00Z", "2026-11-00T00:00:00Z", "2026-11-27T25:00:00Z", "2026-11-27T00:10:61Z",
          "2026-11-27T00:10:45", "2026-11-27T00:10:45+02", "2026-11-27T00:10:45+02:60",
          "2026-11-27T00:10:45.123", "2026-11-27T00:10:45ZZ", "2026/11/27T00:10:45Z", "", "Z",
          "2026-11-27T00:10:45.+01:00"}) {
      CAPTURE(t);
      CHECK_FALSE(saga::parse_time(t).has_value());
    }
    CHECK(saga::parse_time("2024-02-29T00:00:00Z").has_value());
    CHECK(saga::parse_time("2000-02-29T00:00:00Z").has_value());
  }
}
