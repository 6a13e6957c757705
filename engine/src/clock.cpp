#include "saga/clock.hpp"

namespace saga {

std::int64_t system_clock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

manual_clock::manual_clock(std::int64_t start_ms) : now_(start_ms) {}

}  // namespace saga
