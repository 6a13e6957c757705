#pragma once
// fast_json — nlohmann::json::parse's documents, built from simdjson's parse (issue 15, twelfth
// round: the JSON parse was the largest single cost left on sagad's loop thread).
//
// try_parse() answers only when it is sure to build the very document nlohmann's parser would
// (the same values, and the same kinds of number: a non-negative integer unsigned, a negative one
// signed, everything with a fraction or an exponent a double); everything else — any syntax
// error, a duplicated key, a number simdjson does not hold exactly (past 64 bits, or out of a
// double's range), a "-0", nesting past `max_depth`, a text longer than fast_json_max_bytes —
// makes it return false, and the caller parses with nlohmann as before, which gives the error
// text and the behaviour the rest of the code relies on. So this is a shortcut, never a second
// set of rules.
//
// Thread-safety: each thread parses with a simdjson parser of its own (thread_local), bounded by
// fast_json_max_bytes.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace saga::detail {

// Texts above this go to nlohmann: the thread's parser keeps buffers sized for the largest text
// it parsed, so the bound is also what each thread keeps.
inline constexpr std::size_t fast_json_max_bytes = 64 * 1024;

// Builds into `out` the document of `text`, nesting at most `max_depth` arrays and objects (the
// outermost at 1); false (with `out` unspecified) when unsure, as above.
bool try_parse(std::string_view text, nlohmann::json& out, int max_depth);

// When `text` is a JSON object that simdjson reads (and so nlohmann too: -0, repeated keys and
// nesting do not matter here), sets `out` to the string value of its member `key` — the last one
// when the key repeats, as nlohmann's document keeps it — or to "" when there is none or it is not
// a string, and returns true; false when unsure (any other text, or one longer than
// fast_json_max_bytes).
bool try_top_level_string(std::string_view text, std::string_view key, std::string& out);

}  // namespace saga::detail
