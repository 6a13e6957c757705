// The fast JSON parse (engine/src/fast_json.hpp) against nlohmann's: whenever it answers, the
// document is nlohmann's to the kind of every number, and it leaves to nlohmann every text that
// nlohmann rejects or reads differently.
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fast_json.hpp"
#include "saga/codec.hpp"
#include "support/same_json.hpp"

using nlohmann::json;

namespace {

// Counts the keys nlohmann reads (a document holds fewer members than that when a key repeats)
// and the deepest nesting.
struct key_counter : json::json_sax_t {
  std::size_t keys = 0;
  int depth = 0, deepest = 0;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool key(string_t&) override {
    ++keys;
    return true;
  }
  bool end_object() override { return leave(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override { return leave(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool enter() {
    deepest = std::max(deepest, ++depth);
    return true;
  }
  bool leave() {
    --depth;
    return true;
  }
};

std::size_t members(const json& j) {
  std::size_t n = j.is_object() ? j.size() : 0;
  if (j.is_structured())
    for (const auto& v : j) n += members(v);
  return n;
}

// The property: an answer from try_parse is nlohmann's document, of a text without repeated keys
// and within the depth asked for. Returns whether try_parse answered.
bool check(const std::string& text, int max_depth = INT_MAX) {
  json fast;
  const bool answered = saga::detail::try_parse(text, fast, max_depth);
  if (!answered) return false;
  INFO("text: " << text);
  json reference;
  REQUIRE_NOTHROW(reference = json::parse(text));
  CHECK(saga::test::same_json(fast, reference));
  key_counter counter;
  REQUIRE(json::sax_parse(text, &counter));
  CHECK(counter.keys == members(reference));
  CHECK(counter.deepest <= max_depth);
  return true;
}

// Random JSON texts, valid and not, dwelling on what the two parsers could read differently:
// numbers at the edges of their kinds, escapes and surrogates, raw bytes, repeated keys, white
// space, nesting.
class generator {
 public:
  explicit generator(std::uint32_t seed) : rng_(seed) {}

  std::string text() {
    std::string out;
    value(out, 0);
    space(out);
    if (pick(10) == 0) mutate(out);
    return out;
  }

 private:
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

  void space(std::string& out) {
    static const char* const ws[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
    out += ws[pick(std::size(ws))];
  }

  void number(std::string& out) {
    static const char* const edges[] = {"0",
                                        "-0",
                                        "-0.0",
                                        "0.0",
                                        "-0e0",
                                        "1",
                                        "-1",
                                        "9223372036854775807",
                                        "9223372036854775808",
                                        "-9223372036854775808",
                                        "-9223372036854775809",
                                        "18446744073709551615",
                                        "18446744073709551616",
                                        "1e400",
                                        "-1e400",
                                        "1E-400",
                                        "4.9e-324",
                                        "2.2250738585072014e-308",
                                        "1.7976931348623157e308",
                                        "1.8e308",
                                        "0.1",
                                        "1e2",
                                        "1E+2",
                                        "12.5e-3",
                                        "01",
                                        "1.",
                                        ".5",
                                        "+1",
                                        "1e",
                                        "-"};
    if (pick(2) == 0) {
      out += edges[pick(std::size(edges))];
      return;
    }
    if (pick(3) == 0) out += '-';
    const std::size_t digits = 1 + pick(22);
    out += static_cast<char>('1' + pick(9));
    for (std::size_t i = 1; i < digits; ++i) out += static_cast<char>('0' + pick(10));
    if (pick(3) == 0) {
      out += '.';
      out += static_cast<char>('0' + pick(10));
    }
    if (pick(4) == 0) out += "e" + std::to_string(static_cast<int>(pick(700)) - 350);
  }

  void string(std::string& out) {
    static const char* const pieces[] = {"a",
                                         "order-17",
                                         "x:-0y",
                                         "[-0]",
                                         "\\\"",
                                         "\\\\",
                                         "\\/",
                                         "\\b",
                                         "\\f",
                                         "\\n",
                                         "\\r",
                                         "\\t",
                                         "\\u00e9",
                                         "\\u0000",
                                         "\\ud83d\\ude00",
                                         "\\ud800",
                                         "\\udc00",
                                         "\\uD83D",
                                         "\\u12",
                                         "\\x",
                                         "\xc3\xa9",
                                         "\xf0\x9f\x98\x80",
                                         "\xff",
                                         "\xc3\x28",
                                         "\x01",
                                         "\x7f",
                                         "\xed\xa0\x80",
                                         " ",
                                         "0192a5d3-0c4e-7b1a"};
    out += '"';
    for (std::size_t n = pick(4); n > 0; --n) out += pieces[pick(std::size(pieces))];
    out += '"';
  }

  void value(std::string& out, int depth) {
    space(out);
    const std::size_t kind = depth > 6 ? pick(5) : pick(8);
    switch (kind) {
      case 0:
        out += pick(2) ? "true" : (pick(2) ? "false" : "null");
        break;
      case 1:
      case 2:
        number(out);
        break;
      case 3:
      case 4:
        string(out);
        break;
      case 5:
      case 6: {
        static const char* const keys[] = {"a", "b", "id", "data", "-0", ""};
        out += '{';
        for (std::size_t n = pick(5), i = 0; i < n; ++i) {
          if (i > 0) out += ',';
          space(out);
          out += '"';
          out += keys[pick(std::size(keys))];
          out += '"';
          space(out);
          out += ':';
          value(out, depth + 1);
        }
        space(out);
        out += '}';
        break;
      }
      default: {
        out += '[';
        for (std::size_t n = pick(5), i = 0; i < n; ++i) {
          if (i > 0) out += ',';
          value(out, depth + 1);
        }
        out += ']';
      }
    }
    space(out);
  }

  void mutate(std::string& out) {
    if (out.empty()) return;
    static const char bytes[] = {'{', '}', '[', ']', ',', ':', '"', '\\', '-', '0', 'e', ' ', '\0', '\xff'};
    const std::size_t at = pick(out.size());
    switch (pick(3)) {
      case 0:
        out[at] = bytes[pick(std::size(bytes))];
        break;
      case 1:
        out.erase(at, 1);
        break;
      default:
        out.insert(out.begin() + static_cast<std::ptrdiff_t>(at), bytes[pick(std::size(bytes))]);
    }
  }

  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("fast json: common documents take the fast way and are nlohmann's") {
  const char* const texts[] = {
      R"({"amount":12999,"currency":"EUR","customer_id":"cust-42","items":[{"qty":2,"sku":"A-1"}],"refund_id":""})",
      R"({"specversion":"1.0","id":"0192a5d3-0c4e-7b1a-9f00-1234567890ab","source":"urn:shop","type":"order.placed",)"
      R"("subject":"ord-1","time":"2026-12-06T05:00:00.123Z","data":{"amount":-5,"rate":0.25,"big":18446744073709551615}})",
      R"({"status":"accepted","saga":{"id":"ord-1","state":null,"type":"order"},"ok":true,"reason":null})",
      R"({"pay":[1700000000000,3],"ship":[null,1]})",
      "  [ 1 , -2 , 3.5 , -0.0 , 1e2 , \"\\u00e9\\ud83d\\ude00\\n\" , {} , [] ]  ",
      "\"a string alone\"",
      "-9223372036854775808",
  };
  for (const char* text : texts) {
    INFO(std::string(text));
    CHECK(check(text));
  }
}

TEST_CASE("fast json: what nlohmann rejects or reads otherwise is left to nlohmann") {
  const char* const texts[] = {
      "-0",
      "[1,-0]",
      "{\"a\": -0}",
      R"({"a":1,"a":2})",               // nlohmann keeps the last; decode_event rejects
      R"({"x":{"b":true,"b":false}})",  // the same, deeper
      "18446744073709551616",           // past 64 bits: nlohmann makes it a double
      "-9223372036854775809",
      "1e400",
      "[1,]",
      "{} x",
      "\"\\ud800\"",
      "\"\xc3\x28\"",
      "\"a\x01\"",
      "",
      "   ",
      "\xEF\xBB\xBF{}",  // nlohmann skips a byte order mark
      "nul",
  };
  for (const char* text : texts) {
    INFO(std::string(text));
    json out;
    CHECK_FALSE(saga::detail::try_parse(text, out, INT_MAX));
  }
}

TEST_CASE("fast json: nesting past the depth asked for is left to the slow parse") {
  json out;
  CHECK(saga::detail::try_parse(R"({"a":[{"b":1}]})", out, 3));
  CHECK_FALSE(saga::detail::try_parse(R"({"a":[{"b":1}]})", out, 2));
  CHECK(saga::detail::try_parse("[]", out, 1));
  CHECK_FALSE(saga::detail::try_parse("[[]]", out, 1));
  CHECK(saga::detail::try_parse("7", out, 0));
  const std::string long_text = "\"" + std::string(saga::detail::fast_json_max_bytes, 'x') + "\"";
  CHECK_FALSE(saga::detail::try_parse(long_text, out, INT_MAX));
}

TEST_CASE("fast json: 20000 generated texts (valid and not) agree with nlohmann") {
  generator gen(20261206);
  std::size_t answered = 0, valid = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string text = gen.text();
    if (json::accept(text)) ++valid;
    const int depth = i % 3 == 0 ? 1 + i % 5 : INT_MAX;
    if (check(text, depth)) ++answered;
  }
  MESSAGE(answered << " of 20000 answered fast, " << valid << " valid");
  // Most valid texts go the fast way (the rest hold a "-0", a repeated key or an edge number).
  CHECK(answered > valid / 3);
}

TEST_CASE("fast json: parse_json is json::parse (errors included)") {
  CHECK(saga::test::same_json(saga::parse_json(R"({"b":[1,-2,0.5],"a":"x"})"),
                              json::parse(R"({"b":[1,-2,0.5],"a":"x"})")));
  CHECK(saga::parse_json("-0").is_number_integer());
  CHECK_FALSE(saga::parse_json("-0").is_number_unsigned());
  CHECK(saga::parse_json(R"({"a":1,"a":2})") == json{{"a", 2}});
  CHECK_THROWS_AS(saga::parse_json("{\"a\":"), json::parse_error);
  CHECK_THROWS_AS(saga::parse_json(""), json::parse_error);
}

TEST_CASE("fast json: append_json writes dump()'s bytes") {
  generator gen(7);
  std::size_t written = 0;
  for (int i = 0; i < 20000; ++i) {
    const json doc = json::parse(gen.text(), nullptr, false);
    if (doc.is_discarded()) continue;
    std::string out = "prefix:";
    saga::append_json(out, doc);
    INFO("document: " << doc.dump());
    REQUIRE(out == "prefix:" + doc.dump());
    ++written;
  }
  CHECK(written > 10000);
  // Built in memory: the kinds a parse never makes, and a string that is not UTF-8.
  const json built = {{"neg", -7},
                      {"pos", 7u},
                      {"half", 0.5},
                      {"zero", -0.0},
                      {"nan", NAN},
                      {"bytes", json::binary({1, 2})},
                      {"ctl", std::string("a\x01\x1f\x7f", 4)}};
  std::string out;
  saga::append_json(out, built);
  CHECK(out == built.dump());
  std::string bad;
  CHECK_THROWS_AS(saga::append_json(bad, json{{"k", "\xff"}}), json::type_error);
  CHECK_THROWS_AS(json({{"k", "\xff"}}).dump(), json::type_error);
}

namespace {

// What top_level_string must say: nlohmann's document's string member `key`, or "".
std::string member_by_nlohmann(const std::string& text, const std::string& key) {
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return "";  // not JSON (discarded) or not an object
  const auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

TEST_CASE("fast json: top_level_string reads the member as nlohmann's document has it") {
  generator gen(20261207);
  std::size_t answered = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string a = i % 7 == 0 ? "\"order.placed\"" : gen.text();
    const std::string b = i % 5 == 0 ? "\"payment.failed\"" : gen.text();
    const std::string texts[] = {
        a,
        "{\"type\":" + a + "}",
        "{\"a\":" + a + ",\"type\":" + b + "}",
        "{\"type\":" + a + ",\"data\":{\"type\":\"inner\"},\"type\":" + b + "}",
        "{\"t\\u0079pe\":" + a + " }",
        "[{\"type\":" + a + "}]",
    };
    for (const auto& text : texts) {
      INFO("text: " << text);
      const std::string expected = member_by_nlohmann(text, "type");
      CHECK(saga::top_level_string(text, "type") == expected);
      std::string fast = "left over";
      if (saga::detail::try_top_level_string(text, "type", fast)) {
        ++answered;
        CHECK(json::accept(text));  // never an answer for a text nlohmann rejects
        CHECK(fast == expected);
      }
    }
  }
  MESSAGE(answered << " of 120000 answered fast");
  CHECK(answered > 30000);
  std::string out;
  CHECK_FALSE(saga::detail::try_top_level_string("[1]", "type", out));  // not an object: nlohmann's way
  const std::string long_text = "{\"type\":\"" + std::string(saga::detail::fast_json_max_bytes, 'x') + "\"}";
  CHECK_FALSE(saga::detail::try_top_level_string(long_text, "type", out));
  CHECK(saga::top_level_string(long_text, "type").size() == saga::detail::fast_json_max_bytes);
  CHECK(saga::top_level_string(R"({"type":"a","type":"b"})", "type") == "b");
  CHECK(saga::top_level_string(R"({"type":"a","type":2})", "type").empty());
  CHECK(saga::top_level_string(R"({"kind":"k","type":"t"})", "kind") == "k");
}

// append_json_string scans eight bytes at a time: each byte that needs escaping (or nlohmann's
// UTF-8 checks), at every place around the word boundaries, against dump().
TEST_CASE("fast json: append_json_string escapes as dump() wherever the byte that needs it sits") {
  const std::string specials[] = {"\x01", "\x1f", "\"", "\\",       "\n",
                                  "\x7f", " ",    "~",  "\xc3\xa9", "\xe2\x82\xac"};
  std::size_t checked = 0;
  for (std::size_t length = 0; length <= 26; ++length) {
    for (std::size_t at = 0; at <= length; ++at) {
      for (const auto& special : specials) {
        std::string s(length, 'a');
        s.insert(at, special);
        std::string out = "prefix";
        saga::append_json_string(out, s);
        INFO("length " << length << ", at " << at << ", byte " << static_cast<int>(special[0]));
        CHECK(out == "prefix" + json(s).dump());
        ++checked;
      }
    }
  }
  CHECK(checked == 3780);
  std::string bad = "prefix";
  CHECK_THROWS_AS(saga::append_json_string(bad, std::string(9, 'a') + "\xff"), json::type_error);
}
