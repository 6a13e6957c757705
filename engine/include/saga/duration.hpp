#pragma once
// Durations as operators write them: "500ms", "90s", "15m", "2h", "7d".
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace saga {

// Milliseconds, or nullopt when `text` is not a whole number followed by one
// of ms, s, m, h, d (no sign, no spaces, no overflow).
std::optional<std::int64_t> parse_duration(std::string_view text);

// The largest unit that divides the value exactly: 604800000 -> "7d".
std::string format_duration(std::int64_t ms);

}  // namespace saga
