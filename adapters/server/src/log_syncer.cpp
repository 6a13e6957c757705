#include "log_syncer.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <utility>

namespace saga::server {

log_syncer::log_syncer(std::function<void()> sync, std::function<std::int64_t()> commits)
    : sync_(std::move(sync)), commits_(std::move(commits)) {
  wakeup_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeup_ < 0) throw std::runtime_error(std::string("log syncer: eventfd: ") + std::strerror(errno));
  thread_ = std::thread([this] { run(); });
}

log_syncer::~log_syncer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  ::close(wakeup_);
}

std::uint64_t log_syncer::request() {
  const std::int64_t commits = commits_ ? commits_() : -1;
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    if (commits >= 0 && commits == requested_at_) return requested_;  // nothing committed since
    requested_at_ = commits;
    ticket = ++requested_;
  }
  changed_.notify_all();
  return ticket;
}

std::uint64_t log_syncer::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

std::optional<std::string> log_syncer::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

std::uint64_t log_syncer::syncs() const {
  std::lock_guard lock(mutex_);
  return syncs_;
}

void log_syncer::wait(std::uint64_t ticket) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_ >= ticket || failure_; });
  if (done_ < ticket) throw std::runtime_error(*failure_);
}

void log_syncer::wait_all() {
  std::uint64_t newest = 0;
  {
    std::lock_guard lock(mutex_);
    newest = requested_;
  }
  wait(newest);
}

void log_syncer::consume() {
  std::uint64_t n = 0;
  while (::read(wakeup_, &n, sizeof n) < 0 && errno == EINTR) {
  }
}

void log_syncer::stall_next(std::chrono::milliseconds d) {
  std::lock_guard lock(mutex_);
  stall_ = d;
}

void log_syncer::fail_next(std::string reason) {
  std::lock_guard lock(mutex_);
  fail_next_ = std::move(reason);
}

void log_syncer::run() {
  pthread_setname_np(pthread_self(), "saga-log-sync");
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || requested_ > done_; });
    if (stopping_) return;
    const std::uint64_t ticket = requested_;  // this sync begins after its commit
    const auto stall = std::exchange(stall_, std::chrono::milliseconds(0));
    std::optional<std::string> failed = std::exchange(fail_next_, std::nullopt);
    lock.unlock();
    if (stall.count() > 0) std::this_thread::sleep_for(stall);
    try {
      if (!failed) sync_();
    } catch (const std::exception& e) {
      failed = e.what();
    } catch (...) {
      failed = "the write-ahead log's sync failed";
    }
    lock.lock();
    ++syncs_;
    if (failed)
      failure_ = std::move(failed);
    else
      done_ = ticket;
    const std::uint64_t one = 1;
    while (::write(wakeup_, &one, sizeof one) < 0 && errno == EINTR) {
    }
    changed_.notify_all();
    if (failure_) {  // not retried: the log's state on the disk is unknown
      changed_.wait(lock, [&] { return stopping_; });
      return;
    }
  }
}

}  // namespace saga::server
