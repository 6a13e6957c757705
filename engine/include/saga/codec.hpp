#pragma once
// The event codec: CloudEvents 1.0 JSON (structured mode) <-> saga::event.
//
// decode() validates everything the envelope contract says and, on failure,
// returns a reason that names the attribute and the rule it broke, e.g.
// "attribute 'specversion': must be \"1.0\"". It never throws on bad input.
// encode() writes the attributes in a fixed order and omits empty optional
// ones. Both are pure functions and safe to call from any thread.

#include <optional>
#include <string>
#include <string_view>

#include "saga/event.hpp"

namespace saga {

struct decode_result {
  std::optional<saga::event> event;  // set on success
  std::string error;                 // set on failure: the rule broken
  // Whatever could be read before the failure, so that a rejection can still
  // name the event it refers to (empty when unknown).
  std::string id;
  std::string source;

  explicit operator bool() const { return event.has_value(); }
};

decode_result decode_event(std::string_view json, const limits& lim = {});

// Validates an event built in memory by the same rules decode_event applies
// (except the size limit, which belongs to the encoded form). Empty when valid.
std::string validate_event(const event& e, const limits& lim = {});

// encode_event(e) == event_to_json(e).dump(), byte for byte, without copying e.data into a
// new document first (this runs for every follow-on event and every parked event).
std::string encode_event(const event& e);
nlohmann::json event_to_json(const event& e);

// nlohmann::json::parse(text), the same document, built from a faster parse when the text is
// common JSON (engine/src/fast_json.hpp); throws what json::parse throws.
nlohmann::json parse_json(std::string_view text);

// The string value of the member `key` of the JSON object `text` (the last one when the key
// repeats, as json::parse keeps it), or "" when text is not a JSON object, has no such member or
// its value is not a string — read without building the document (a subscriber reads the "type"
// of every replayed event this way: 0.33 µs for a 550-byte order event here, 5.2 µs with
// nlohmann's SAX parse alone).
std::string top_level_string(std::string_view text, std::string_view key);

// Appends v.dump(), the same bytes, written without nlohmann's serializer (which allocates and
// clears two 512-byte buffers for every dump); throws what dump() throws (invalid UTF-8).
void append_json(std::string& out, const nlohmann::json& v);

// Whether s is well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

// Appends s as a JSON string literal, escaped exactly as nlohmann::json::dump() escapes it
// (a string holding non-ASCII bytes goes through nlohmann itself, which also checks UTF-8).
void append_json_string(std::string& out, std::string_view s);

// Current UTC time formatted as RFC 3339 with milliseconds ("...T...Z").
std::string format_time(std::int64_t unix_ms);
// Parses an RFC 3339 date-time; nullopt when malformed.
std::optional<std::int64_t> parse_time(std::string_view text);

}  // namespace saga
