#pragma once
// An engine over a SQLite file on a manual clock: how test fixtures fill a
// database as sagad would before the code under test reads it. The store is
// closed when the object goes.

#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "saga/clock.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"

namespace saga::test {

class filling_engine {
 public:
  filling_engine(const std::string& db, std::int64_t now_ms) : clock(now_ms), store(options_for(db)) {}

  // Handles `e`, which the engine must accept.
  void ok(const saga::event& e) {
    const auto a = engine.handle(e);
    REQUIRE_MESSAGE(a.ok(), a.reason);
  }

  saga::manual_clock clock;
  saga::sqlite::store store;
  saga::engine engine{store, clock};

 private:
  static saga::sqlite::options options_for(const std::string& db) {
    saga::sqlite::options o;
    o.path = db;
    return o;
  }
};

}  // namespace saga::test
