// Acks, statuses and outcomes on a stream, by name (saga/engine.hpp).

#include <ostream>

#include "saga/engine.hpp"

namespace saga {

std::ostream& operator<<(std::ostream& out, ack_status s) {
  return out << to_string(s);
}

std::ostream& operator<<(std::ostream& out, ack_outcome o) {
  return out << to_string(o);
}

std::ostream& operator<<(std::ostream& out, const ack& a) {
  return out << encode_ack(a);
}

}  // namespace saga
