#include "saga/duration.hpp"

#include <charconv>
#include <limits>

namespace saga {
namespace {

struct unit {
  std::string_view suffix;
  std::int64_t ms;
};
// Longest suffix first where one is a prefix of another ("ms" before "m").
constexpr unit units[] = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};

}  // namespace

std::optional<std::int64_t> parse_duration(std::string_view text) {
  std::int64_t n = 0;
  const auto* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, n);
  if (ec != std::errc() || p == text.data() || n < 0) return std::nullopt;
  const std::string_view suffix(p, static_cast<std::size_t>(end - p));
  for (const auto& u : units) {
    if (suffix != u.suffix) continue;
    if (n > std::numeric_limits<std::int64_t>::max() / u.ms) return std::nullopt;
    return n * u.ms;
  }
  return std::nullopt;
}

std::string format_duration(std::int64_t ms) {
  for (auto it = std::rbegin(units); it != std::rend(units); ++it)
    if (ms != 0 && ms % it->ms == 0) return std::to_string(ms / it->ms) + std::string(it->suffix);
  return std::to_string(ms) + "ms";
}

}  // namespace saga
