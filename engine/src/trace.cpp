#include "saga/trace.hpp"

#include <algorithm>
#include <cstdint>

#include "random.hpp"

namespace saga {
namespace {

constexpr std::size_t version_00_size = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2

bool lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

// `n` random lower-case hex digits, not all zero.
std::string random_hex(std::size_t n) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(n, '0');
  while (all_zero(out)) {
    unsigned char bytes[16];
    detail::random_bytes(bytes, n / 2);
    for (std::size_t i = 0; i < n / 2; ++i) {
      out[2 * i] = hex[bytes[i] >> 4];
      out[2 * i + 1] = hex[bytes[i] & 0xf];
    }
  }
  return out;
}

}  // namespace

std::string traceparent_problem(std::string_view v) {
  static constexpr const char* shape =
      "must be 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>, lower-case";
  if (v.size() < version_00_size || v[2] != '-' || v[35] != '-' || v[52] != '-') return shape;
  const auto version = v.substr(0, 2), trace_id = v.substr(3, 32), parent_id = v.substr(36, 16),
             flags = v.substr(53, 2);
  if (!lower_hex(version) || !lower_hex(trace_id) || !lower_hex(parent_id) || !lower_hex(flags)) return shape;
  if (version == "ff") return "version ff is not allowed";
  if (v.size() != version_00_size && (version == "00" || v[version_00_size] != '-')) return shape;
  if (all_zero(trace_id)) return "the trace id must not be all zeros";
  if (all_zero(parent_id)) return "the parent id must not be all zeros";
  return {};
}

std::string new_traceparent() {
  return "00-" + random_hex(32) + "-" + random_hex(16) + "-01";
}

std::string child_traceparent(std::string_view parent) {
  return "00-" + std::string(trace_id_of(parent)) + "-" + random_hex(16) + "-" +
         std::string(parent.substr(53, 2));
}

std::string_view trace_id_of(std::string_view traceparent) {
  return traceparent.size() < version_00_size ? std::string_view() : traceparent.substr(3, 32);
}

bool valid_trace_id(std::string_view v) {
  return v.size() == 32 && lower_hex(v) && !all_zero(v);
}

}  // namespace saga
