#include "saga/outbox_relay.hpp"

#include <algorithm>

namespace saga {

outbox_relay::outbox_relay(store& s, publisher& p, const clock& c, relay_options o)
    : store_(s), publisher_(p), clock_(c), options_(o) {}

std::size_t outbox_relay::drain() {
  if (last_published_ < 0) last_published_ = store_.last_published_sequence();
  std::size_t total = 0;
  for (;;) {
    // Rows below the last published sequence can still be unpublished when
    // another process published past them; read from the start of the
    // unpublished rows, not from last_published_.
    auto rows = store_.unpublished(0, options_.chunk);
    if (rows.empty()) return total;
    std::size_t done = 0;
    try {
      for (const auto& r : rows) {
        publisher_.publish(r);
        ++done;
      }
    } catch (...) {
      if (done > 0) {
        store_.mark_published(rows.front().sequence, rows[done - 1].sequence, clock_.now_ms());
        last_published_ = std::max(last_published_, rows[done - 1].sequence);
      }
      throw;
    }
    store_.mark_published(rows.front().sequence, rows.back().sequence, clock_.now_ms());
    last_published_ = std::max(last_published_, rows.back().sequence);
    total += done;
    if (rows.size() < options_.chunk) return total;
  }
}

std::int64_t outbox_relay::prune() {
  const auto now = clock_.now_ms();
  return store_.prune(now - options_.retention_ms, now - options_.dedup_window_ms, options_.chunk);
}

}  // namespace saga
