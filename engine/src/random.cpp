#include "random.hpp"

#include <pthread.h>
#include <stdlib.h>  // arc4random_buf (glibc 2.36: one getrandom call each)

#include <array>
#include <atomic>
#include <cstring>

namespace saga::detail {
namespace {

// Bumped in every child after a fork: a thread's pool drawn before it is thrown away.
std::atomic<unsigned> fork_generation{0};

[[maybe_unused]] const int registered = [] {
  return ::pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
}();

struct pool {
  std::array<unsigned char, 512> bytes{};
  std::size_t used = sizeof bytes;  // empty
  unsigned generation = 0;
};

}  // namespace

void random_bytes(void* out, std::size_t n) {
  thread_local pool p;
  auto* dst = static_cast<unsigned char*>(out);
  const unsigned generation = fork_generation.load(std::memory_order_relaxed);
  if (p.generation != generation) {
    p.used = p.bytes.size();
    p.generation = generation;
  }
  while (n > 0) {
    if (p.used == p.bytes.size()) {
      ::arc4random_buf(p.bytes.data(), p.bytes.size());
      p.used = 0;
    }
    const std::size_t take = std::min(n, p.bytes.size() - p.used);
    std::memcpy(dst, p.bytes.data() + p.used, take);
    std::memset(p.bytes.data() + p.used, 0, take);  // handed out once, not kept
    p.used += take;
    dst += take;
    n -= take;
  }
}

}  // namespace saga::detail
