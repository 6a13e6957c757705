// A program outside this project, built against the installed package.
#include <iostream>

#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  saga::sqlite::options o;
  o.path = argv[1];
  saga::sqlite::store store(o);
  saga::system_clock clock;
  saga::engine engine(store, clock);
  engine.add(saga::definitions::order_lifecycle());
  saga::event e;
  e.id = "consumer-1";
  e.source = "urn:consumer";
  e.type = "order.placed";
  e.subject = "o-1";
  e.data = {{"order_id", "o-1"}, {"amount", 100}, {"currency", "EUR"}};
  const auto ack = engine.handle(e);
  std::cout << "state=" << ack.saga_state << "\n";
  return ack.ok() ? 0 : 1;
}
