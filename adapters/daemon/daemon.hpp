#pragma once
// sagad's core: the ingress, events and replay sockets, the engine, the outbox
// relay, timers and pruning (docs/operations.md).
//
// The loop thread owns the ingress and events sockets and the writer
// connection, and runs the loop's named parts (daemon.cpp): the ingress pump
// reads a batch; the committer commits it and acks it only after the commit
// (retrying storage failures with backoff, then bisecting the batch so that
// one input that keeps failing is set aside, without ever blocking the loop);
// the publisher publishes what the commit wrote; the ticker sends the
// heartbeat each second, fires due timers in bounded batches, expires parked
// events and prunes in bounded steps. Replay is served on a thread of its own
// with its own socket and store connection, so a long replay never delays
// acks. The database file itself is locked (flock) for the process's life: a
// second sagad on the same database, by any path, refuses to start.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "saga/clock.hpp"
#include "saga/definition.hpp"
#include "saga/store.hpp"

namespace saga::daemon {

// The endpoints actually bound (a port 0 or "*" resolved).
struct endpoints {
  std::string ingress, publish, replay;
};

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
  std::int64_t park_total_limit = 100'000;
  std::int64_t park_expiry_ms = 24LL * 3600 * 1000;
  std::int64_t dead_letter_retention_ms = 30LL * 24 * 3600 * 1000;
  std::int64_t dead_letter_max = 100'000;
  std::int64_t finished_retention_ms = 0;  // 0: finished sagas are kept
  std::size_t peer_credit = 10'000;        // requests of one connection read and not yet acked
  int storage_retries = 3;                 // retries of a whole batch before bisecting it
  std::int64_t storage_backoff_ms = 50;    // first pause; doubles up to 5 s
  std::vector<std::string> definitions;    // empty: every compiled definition
  // Definitions run besides the compiled ones named above (test builds, plugins).
  std::vector<std::shared_ptr<const saga::definition>> extra_definitions;

  // Embedding and tests: wraps the store the engine writes through (fault
  // injection); called once, before the loop starts.
  std::function<std::unique_ptr<saga::store>(saga::store&)> wrap_store;
  // The clock the engine and the relay read (tests: a manual clock); null: the system's.
  const saga::clock* clock = nullptr;
  // Called once every socket is bound, before the loop starts.
  std::function<void(const endpoints&)> on_ready;
};

// Thrown before the loop starts when sagad cannot run: the database is locked
// by another sagad, a port is taken, the schema is newer, an unknown definition.
class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs until `stop` becomes true; then stops taking events, tries once more
// to commit and ack the batch in hand, publishes what is committed and
// returns. Throws startup_error when it cannot start.
void run(const options& o, const std::atomic<bool>& stop);

}  // namespace saga::daemon
