#pragma once
// sagad's core: the ingress, events and replay sockets, the engine, the outbox
// relay, timers and pruning, run on one thread in one loop (docs/operations.md).
//
// One thread owns every socket and the writer connection, so nothing here
// locks. Each pass: read every waiting ingress request (up to batch_max) and
// handle them in one transaction; ack only after that commit; publish what
// the commit wrote; answer replay requests; and once a second send the
// heartbeat, fire due timers, expire parked events and poll the outbox for
// rows other processes committed. A failed commit acks nothing and is retried
// with backoff until it succeeds or the daemon is stopped.

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace saga::daemon {

struct options {
  std::string db = "saga.db";
  std::string ingress = "tcp://127.0.0.1:5570";
  std::string publish = "tcp://127.0.0.1:5571";
  std::string replay = "tcp://127.0.0.1:5572";
  std::string source;  // empty: urn:saga:<definition>
  std::size_t batch_max = 1024;
  std::string synchronous = "FULL";
  std::int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  std::int64_t dedup_window_ms = 7LL * 24 * 3600 * 1000;
  std::size_t park_limit = 64;
  std::int64_t park_expiry_ms = 24LL * 3600 * 1000;
  std::vector<std::string> definitions;  // empty: every compiled definition
};

// Thrown before the loop starts when sagad cannot run: the database is locked
// by another sagad, a port is taken, the schema is newer, an unknown definition.
class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs until `stop` becomes true; then stops taking events, finishes the batch
// in hand (commit and ack), publishes what is committed and returns. Throws
// startup_error when it cannot start.
void run(const options& o, const std::atomic<bool>& stop);

}  // namespace saga::daemon
