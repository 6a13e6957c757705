#pragma once
// fault_points — kill points for the crash torture (tests/reliability), in the
// test build of sagad only (`sagad-test`, compiled with SAGA_FAULT_POINTS).
//
// Test build: with SAGA_FAULT=<point>:<probability>, the process kills itself
// with SIGKILL at that point with that probability. Points: before_commit
// (after a batch's writes, before its commit), after_commit (before the
// acks), after_publish (a row handed to the PUB socket, not yet marked
// published). An unknown point refuses the start (startup_error). One point
// stalls instead of killing: SAGA_FAULT=stall_commit:<seconds> makes the first
// commit of received events after the server started (started()) wait that
// long first, the loop blocked as by a hung disk (the watchdog test). Another holds the log's
// sync: SAGA_FAULT=stall_sync:<seconds> makes the first sync of the write-ahead log after the
// server started wait that long first (log_syncer.hpp; the test that acks wait for it), and
// SAGA_FAULT=fail_sync makes that sync fail instead (sagad must stop without acking).
//
// Installed build: the class is empty, at() and wrap() compile to nothing and
// SAGA_FAULT is not read: sagad has no fault hook code.
//
// Thread-safety: the loop thread only.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "saga/publisher.hpp"
#include "saga/store.hpp"

#if defined(SAGA_FAULT_POINTS)
#include <random>
#include <string>
#endif

namespace saga::server {

#if defined(SAGA_FAULT_POINTS)

class fault_points {
 public:
  fault_points();  // reads SAGA_FAULT
  fault_points(const fault_points&) = delete;
  fault_points& operator=(const fault_points&) = delete;

  void at(std::string_view point);
  // Start-up is over: stall points may fire from now on.
  void started() { started_ = true; }
  // How long stall_sync holds the first log sync after the start (zero for any other point).
  std::chrono::milliseconds sync_stall() const;
  // fail_sync: why the first log sync after the start fails.
  std::optional<std::string> sync_failure() const;
  // The store (publisher) with the before_commit (after_publish) point.
  saga::store& wrap(saga::store& s);
  saga::publisher& wrap(saga::publisher& p);

 private:
  std::string point_;
  double probability_ = 0;
  bool started_ = false;
  bool stalled_ = false;  // stall points fire once
  std::mt19937_64 rng_;
  std::unique_ptr<saga::store> store_;
  std::unique_ptr<saga::publisher> publisher_;
};

#else

class fault_points {
 public:
  void at(std::string_view) {}
  void started() {}
  std::chrono::milliseconds sync_stall() const { return std::chrono::milliseconds(0); }
  std::optional<std::string> sync_failure() const { return std::nullopt; }
  saga::store& wrap(saga::store& s) { return s; }
  saga::publisher& wrap(saga::publisher& p) { return p; }
};

#endif

}  // namespace saga::server
