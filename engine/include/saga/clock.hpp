#pragma once
// The clock port. The engine reads time only through it, so tests can drive
// timers with a manual clock. Times are Unix milliseconds (UTC).
//
// Thread-safety: system_clock is stateless; manual_clock is safe to read and
// advance from different threads.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace saga {

class clock {
 public:
  virtual ~clock() = default;
  virtual std::int64_t now_ms() const = 0;
};

class system_clock final : public clock {
 public:
  std::int64_t now_ms() const override;
};

class manual_clock final : public clock {
 public:
  explicit manual_clock(std::int64_t start_ms = 1'767'225'600'000);  // 2026-01-01T00:00:00Z
  std::int64_t now_ms() const override { return now_.load(); }
  void set(std::int64_t unix_ms) { now_.store(unix_ms); }
  void advance(std::chrono::milliseconds d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace saga
