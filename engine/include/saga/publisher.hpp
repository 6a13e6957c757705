#pragma once
// saga::publisher — the port the outbox relay hands committed follow-on
// events to (the ZeroMQ PUB socket in sagad; a vector in tests).
//
// publish() is called from the relay's thread only, in strictly increasing
// sequence order; it returns once the event is handed to the transport and
// throws std::exception when it cannot be, in which case the relay stops the
// drain and leaves the row unpublished for the next attempt.

#include <cstdint>

#include "saga/store.hpp"

namespace saga {

class publisher {
 public:
  virtual ~publisher() = default;
  virtual void publish(const outbox_record& r) = 0;
};

}  // namespace saga
