#pragma once
// A ZeroMQ call on a thread that a signal may interrupt (sagad's loop thread: SIGTERM's handler
// runs on whichever thread the kernel picks): zmq::error_t with EINTR means that the call did
// nothing — no frame sent, none taken — so it is made again. Any other error goes to the caller.

#include <cerrno>
#include <utility>

#include <zmq.hpp>

namespace saga::zmq::detail {

template <class F>
decltype(auto) retry_eintr(F&& call) {
  for (;;) {
    try {
      return std::forward<F>(call)();
    } catch (const ::zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

}  // namespace saga::zmq::detail
