#include "replay_thread.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

#include "saga/server/options.hpp"
#include "saga/zmq/replay_server.hpp"

namespace saga::server {

namespace {

using namespace std::chrono_literals;
constexpr auto poll_interval = 100ms;  // how soon a stop is noticed
constexpr int replay_nice = 10;

}  // namespace

replay_thread::replay_thread(::zmq::context_t& ctx, std::string endpoint,
                             std::function<std::unique_ptr<saga::store>()> open, std::string curve_secret_key,
                             std::function<void(::zmq::socket_t&)> on_bound, counter* requests)
    : ctx_(ctx),
      curve_secret_key_(std::move(curve_secret_key)),
      on_bound_(std::move(on_bound)),
      requests_(requests) {
  std::promise<std::string> ready;
  auto bound = ready.get_future();
  thread_ = std::thread(&replay_thread::serve, this, std::move(endpoint), std::move(open), std::move(ready));
  try {
    endpoint_ = bound.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

replay_thread::~replay_thread() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void replay_thread::serve(std::string endpoint, std::function<std::unique_ptr<saga::store>()> open,
                          std::promise<std::string> ready) {
  ::pthread_setname_np(::pthread_self(), "sagad-replay");  // as top -H and perf show it
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Replay is bulk work for a client catching up; acks wait on the loop thread. This thread
  // yields the CPU to the loop when they compete (Linux: nice is per thread).
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), replay_nice);

  std::unique_ptr<saga::store> store;
  std::unique_ptr<saga::zmq::replay_server> server;
  try {
    store = open();  // startup_error naming the database
    try {
      saga::zmq::replay_options ro;
      ro.curve_secret_key = curve_secret_key_;
      ro.io_affinity = 2;  // the context's second I/O thread (server.cpp)
      server = std::make_unique<saga::zmq::replay_server>(ctx_, endpoint, *store, ro);
      if (on_bound_) on_bound_(server->socket());
    } catch (const std::exception& e) {
      throw startup_error(e.what());
    }
  } catch (...) {
    ready.set_exception(std::current_exception());
    return;
  }
  ready.set_value(server->endpoint());

  while (!stop_.load()) {
    try {
      if (server->poll_once(poll_interval) && requests_) requests_->add();
    } catch (const ::zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::critical("replay: {}; replay is no longer served", e.what());
      return;
    }
  }
}

}  // namespace saga::server
