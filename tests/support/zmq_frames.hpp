#pragma once
// Reading a whole multipart message as strings, for tests on raw sockets.

#include <iterator>
#include <string>
#include <vector>

#include <zmq_addon.hpp>

namespace saga::test {

// The frames of the next message; empty when the socket's receive timeout passed.
inline std::vector<std::string> recv_all(::zmq::socket_t& s) {
  std::vector<::zmq::message_t> msgs;
  auto n = ::zmq::recv_multipart(s, std::back_inserter(msgs));
  std::vector<std::string> out;
  if (!n) return out;  // timed out
  for (auto& m : msgs) out.push_back(m.to_string());
  return out;
}

}  // namespace saga::test
