#include "saga/uuid.hpp"

#include <chrono>
#include <mutex>

#include "random.hpp"

namespace saga {
namespace {

// rand_a (12 bits) holds a counter within one millisecond, so ids made by
// this process are strictly increasing (RFC 9562, method 1). The random bits
// come from the kernel's CSPRNG (detail::random_bytes): an id must not let
// anyone predict the next one (a once-seeded mt19937 can be recovered from
// its output).
struct generator {
  std::mutex mu;
  std::int64_t last_ms = -1;
  std::uint16_t counter = 0;
};

std::uint64_t random_bits() {
  std::uint64_t v;
  detail::random_bytes(&v, sizeof v);
  return v;
}

generator& shared_generator() {
  static generator g;
  return g;
}

}  // namespace

std::string make_uuid_v7(std::int64_t unix_ms) {
  auto& g = shared_generator();
  std::uint64_t ms;
  std::uint16_t seq;
  std::uint64_t rand_b;
  {
    std::lock_guard lock(g.mu);
    if (unix_ms <= g.last_ms) {
      if (++g.counter > 0x0fff) {  // counter exhausted: borrow the next millisecond
        ++g.last_ms;
        g.counter = 0;
      }
      unix_ms = g.last_ms;
    } else {
      g.last_ms = unix_ms;
      g.counter = static_cast<std::uint16_t>(random_bits() & 0x01ff);  // random start, room to count
    }
    ms = static_cast<std::uint64_t>(unix_ms);
    seq = g.counter;
    rand_b = random_bits();
  }
  const std::uint64_t hi = (ms << 16) | 0x7000u | seq;
  const std::uint64_t lo = (rand_b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](std::uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      out[static_cast<std::size_t>(pos++)] = hex[(v >> (i * 4)) & 0xf];
    }
  };
  put(hi, 16);
  put(lo, 16);
  return out;
}

std::string make_uuid_v7() {
  using namespace std::chrono;
  return make_uuid_v7(
      duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace saga
