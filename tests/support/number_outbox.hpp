#pragma once
// Numbers what a store has committed to its outbox, as the outbox relay does before it publishes
// (store::claim_relay, then store::number_outbox): for tests that read the outbox of a store that
// numbers after the commit (PostgreSQL) without running a relay. Nothing to do on a store that
// numbers at insert (SQLite). Returns the rows numbered.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include "saga/store.hpp"

namespace saga::test {

// `expected`: how many rows the caller committed unnumbered. PostgreSQL's xid horizon is the
// cluster's, so a transaction of another test running at the same moment may hold the numbering
// back for a while: this numbers until `expected` rows are, for at most 20 s.
inline std::int64_t number_outbox(saga::store& s, std::int64_t expected) {
  if (s.sequences_at_insert()) return 0;
  constexpr std::int64_t lease_ms = 60'000;
  const auto epoch = s.claim_relay("test", lease_ms);
  if (epoch == 0) throw std::runtime_error("number_outbox: another relay holds the lease");
  std::int64_t total = 0;
  for (int i = 0; i < 400; ++i) {
    const auto n = s.number_outbox(epoch, lease_ms, 100'000);
    if (n < 0) throw std::runtime_error("number_outbox: the lease was taken over");
    total += n;
    if (total >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return total;
}

}  // namespace saga::test
