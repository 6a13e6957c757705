#pragma once
// A saga database the engine filled, and sagactl run over it (SAGACTL_PATH):
// the fixture of sagactl's tests (sagactl_test.cpp, completion_test.cpp).

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_support.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/definitions/payment_notice.hpp"
#include "support/filling_engine.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"

namespace saga::cli_test {

inline std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline saga::event ev(const std::string& type, const std::string& subject,
                      nlohmann::json data = nlohmann::json::object()) {
  return saga::test::numbered_event("e", type, subject, std::move(data));
}

inline nlohmann::json order(const std::string& id) {
  return saga::test::order_data(id, 1000);
}

// A database the engine filled (3 hours ago, then 10 minutes ago):
//   o-1 placed (payment_timeout armed) — also an account_lockout saga "o-1"
//   o-2 awaiting_shipment (shipment_deadline armed, one parked delivery.started)
//   o-3 cancelled (payment.failed)
//   o-6 placed 10 minutes ago
// one dead letter (a type nobody consumes), outbox rows 1..3 published.
struct filled {
  saga::test::temp_dir dir;
  std::string db = dir.file("saga.db");
  std::int64_t t0 = wall_ms() - 3 * 3600 * 1000;

  filled() {
    saga::test::filling_engine f(db, t0);
    f.engine.add(saga::definitions::order_lifecycle());
    f.engine.add(saga::definitions::payment_notice());
    f.engine.add(saga::definitions::account_lockout());
    f.ok(ev("order.placed", "o-1", order("o-1")));
    f.ok(ev("order.placed", "o-2", order("o-2")));
    f.ok(ev("payment.succeeded", "o-2"));
    f.ok(ev("inventory.reserved", "o-2"));
    f.ok(ev("delivery.started", "o-2"));  // parked: not yet shipped
    f.ok(ev("order.placed", "o-3", order("o-3")));
    f.ok(ev("payment.failed", "o-3"));
    f.ok(ev("auth.login.failed", "o-1"));
    CHECK_FALSE(f.engine.handle(ev("no.such.type", "o-9")).ok());  // a dead letter
    f.clock.set(wall_ms() - 10 * 60 * 1000);
    f.ok(ev("order.placed", "o-6", order("o-6")));
    f.store.mark_published(1, 3, f.clock.now_ms());
  }

  result ctl(std::vector<std::string> args,
             std::chrono::milliseconds timeout = std::chrono::seconds(20)) const {
    args.insert(args.begin(), {std::string(SAGACTL_PATH), "--db", db});
    return run(args, dir.path(), timeout);
  }
  result raw(std::vector<std::string> args) const {
    args.insert(args.begin(), std::string(SAGACTL_PATH));
    return run(args, dir.path());
  }
};

}  // namespace saga::cli_test
