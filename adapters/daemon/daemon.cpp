#include "daemon.hpp"

#include "saga/definitions/catalog.hpp"
#include "saga/server/server.hpp"

namespace saga::daemon {

void run(const options& o, const std::atomic<bool>& stop) {
  saga::server::server server(o);
  for (const auto& name : saga::definitions::names()) server.add(saga::definitions::by_name(name));
  server.run(stop);
}

}  // namespace saga::daemon
