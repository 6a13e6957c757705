#pragma once
// replay_thread — the replay ROUTER served on a thread of its own, with its
// own store connection, so that a client replaying a million events never
// delays the loop's acks. The socket and the connection are created, used and
// closed on that thread only. SIGTERM, SIGINT and SIGHUP are blocked there, so they
// reach the loop thread.
//
// The constructor returns once the socket is bound (or throws startup_error:
// port taken, database unreadable); the destructor stops the thread (within
// one poll interval) and joins it. A request in progress is answered first.
//
// Thread-safety: construct and destroy from one thread; endpoint() is const.

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "metrics.hpp"
#include "saga/store.hpp"

namespace saga::server {

class replay_thread {
 public:
  // curve_secret_key: the server's CURVE secret key (docs/security.md); empty: plaintext.
  // on_bound, when given, is called with the socket on the replay thread once it is bound.
  // requests, when given, counts the requests answered.
  // `open`: a connection of the replay's own (opened on the replay thread).
  replay_thread(::zmq::context_t& ctx, std::string endpoint,
                std::function<std::unique_ptr<saga::store>()> open, std::string curve_secret_key = {},
                std::function<void(::zmq::socket_t&)> on_bound = {}, counter* requests = nullptr);
  ~replay_thread();
  replay_thread(const replay_thread&) = delete;
  replay_thread& operator=(const replay_thread&) = delete;

  // The endpoint actually bound.
  const std::string& endpoint() const { return endpoint_; }

 private:
  void serve(std::string endpoint, std::function<std::unique_ptr<saga::store>()> open,
             std::promise<std::string> ready);

  ::zmq::context_t& ctx_;
  std::string curve_secret_key_;
  std::function<void(::zmq::socket_t&)> on_bound_;
  counter* requests_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::string endpoint_;
};

}  // namespace saga::server
