#pragma once
// log_syncer — sagad's write-ahead log, made durable on a thread of its own (issue 15, eleventh
// round; docs/reliability.md, "When an ack is sent").
//
// sagad commits at synchronous = NORMAL (no sync in the commit) and the loop asks this for a
// ticket right after each commit: request(). The syncer's thread syncs the log (the `sync`
// function: saga::sqlite::log_file::sync) whenever tickets were requested since its last sync
// began; a sync covers every ticket requested before it began, so one sync serves every commit
// the loop made meanwhile. done() is the newest ticket whose sync returned: the loop acks a batch
// and publishes its follow-on events only when done() has reached the batch's ticket. Meanwhile
// the loop reads and commits the next batch — the commit's fsync no longer stops it.
//
// The loop polls wakeup_fd() (an eventfd, readable when done() moved or a sync failed) and calls
// consume() before looking at done(). A sync that fails is not retried (the log's state on the
// disk is unknown): failure() says why, every later wait() throws it, and sagad stops without
// acking what waited for it.
//
// Thread-safety: request(), done(), failure(), wait() and consume() from any one thread (the
// loop); the sync function runs on the syncer's thread only.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace saga::server {

class log_syncer {
 public:
  // `commits` (optional, called by request() on the caller's thread): how many commits the writer
  // has made; a request with no commit since the last one gets that one's ticket again, so that
  // the acks of a batch share the ticket its outbox rows got (and the sync already under way).
  explicit log_syncer(std::function<void()> sync, std::function<std::int64_t()> commits = {});
  ~log_syncer();  // finishes a sync in progress, starts none
  log_syncer(const log_syncer&) = delete;
  log_syncer& operator=(const log_syncer&) = delete;

  // A ticket for everything committed before this call (loop thread).
  std::uint64_t request();
  // Every ticket up to this one is durable.
  std::uint64_t done() const;
  // Why the log could not be synced (nothing durable after done() is known then), if it failed.
  std::optional<std::string> failure() const;
  // Blocks until `ticket` is done; throws std::runtime_error with failure() if a sync failed.
  void wait(std::uint64_t ticket);
  // Every ticket requested so far, durable before it returns (throws as wait() does); returns at
  // once when they all are. Commits that asked for no ticket need none (nothing waits on them).
  void wait_all();

  int wakeup_fd() const { return wakeup_; }
  void consume();  // empties wakeup_fd()

  // The next sync first sleeps this long (sagad-test's stall_sync fault point).
  void stall_next(std::chrono::milliseconds d);
  // The next sync fails with `reason` instead of syncing (sagad-test's fail_sync fault point).
  void fail_next(std::string reason);
  // How many syncs ran, failed ones included (tests; the metrics time each sync themselves).
  std::uint64_t syncs() const;

 private:
  void run();

  std::function<void()> sync_;
  std::function<std::int64_t()> commits_;
  std::int64_t requested_at_ = -1;  // commits_() at the newest ticket
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t requested_ = 0;  // the newest ticket handed out
  std::uint64_t done_ = 0;       // the newest ticket made durable
  std::uint64_t syncs_ = 0;
  std::optional<std::string> failure_;
  std::chrono::milliseconds stall_{0};
  std::optional<std::string> fail_next_;
  bool stopping_ = false;
  int wakeup_ = -1;
  std::thread thread_;
};

}  // namespace saga::server
