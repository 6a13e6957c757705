// An order service that embeds the saga engine in its own database.
//
// The service owns `orders`, its business table. "Place order" inserts the
// order row and starts the order saga in ONE SQLite transaction: both commit
// or neither does, and the saga's follow-on events (payment.requested) reach
// in-process subscribers only after that commit.
//
//   embedded-order-service --db shop.db --order o-42 --amount 1999
//   embedded-order-service --db shop.db --order o-42 --amount 1999 --fail   # rolls back

#include <cstdio>
#include <iostream>

#include <SQLiteCpp/SQLiteCpp.h>
#include <CLI/CLI.hpp>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/uuid.hpp"

namespace {

class order_service {
 public:
  explicit order_service(const std::string& path)
      : db_(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE), store_(db_), engine_(store_, clock_) {
    db_.exec(
        "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, customer TEXT, amount INTEGER, "
        "currency TEXT, created TEXT)");
    engine_.add(saga::definitions::order_lifecycle());
    engine_.subscribe("payment.", [](const saga::published_event& p) {
      std::cout << "  -> after commit: " << p.event.type << " #" << p.sequence << " for " << p.event.subject
                << "\n";
    });
  }

  // Writes the order and starts its saga atomically. `fail_after_saga`
  // simulates a failure after both writes: the host rolls everything back.
  bool place_order(const std::string& id, std::int64_t amount, bool fail_after_saga) {
    SQLite::Transaction tx(db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement insert(
        db_, "INSERT INTO orders (id, customer, amount, currency, created) VALUES (?, ?, ?, ?, ?)");
    const auto now = saga::format_time(clock_.now_ms());
    insert.bind(1, id);
    insert.bind(2, "customer-1");
    insert.bind(3, static_cast<int64_t>(amount));
    insert.bind(4, "EUR");
    insert.bind(5, now);
    insert.exec();

    saga::event placed;
    placed.id = saga::make_uuid_v7();
    placed.source = "urn:shop:orders";
    placed.type = "order.placed";
    placed.subject = id;
    placed.time = now;
    placed.data = {{"order_id", id},
                   {"amount", amount},
                   {"currency", "EUR"},
                   {"customer_id", "customer-1"},
                   {"items", {{{"sku", "BOOK-1"}, {"qty", 1}}}}};
    auto joined = engine_.handle_in_transaction(std::span<const saga::event>(&placed, 1));
    const auto& ack = joined.acks.front();
    std::cout << "  saga: " << saga::to_json(ack).dump() << "\n";
    if (ack.status == saga::ack_status::rejected || fail_after_saga) {
      std::cout << "  rolling back the order and its saga\n";
      return false;  // ~Transaction rolls back; the joined result is dropped
    }
    tx.commit();
    engine_.committed(joined);
    return true;
  }

  void report() {
    SQLite::Statement q(
        db_,
        "SELECT o.id, o.amount, i.state FROM orders o "
        "LEFT JOIN instances i ON i.definition = 'order_lifecycle' AND i.key = o.id ORDER BY o.id");
    while (q.executeStep())
      std::cout << "  order " << q.getColumn(0).getString() << " amount " << q.getColumn(1).getInt64()
                << " saga " << (q.getColumn(2).isNull() ? "(none)" : q.getColumn(2).getString()) << "\n";
  }

 private:
  SQLite::Database db_;
  saga::sqlite::store store_;
  saga::system_clock clock_;
  saga::engine engine_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"An order service embedding the saga engine in its own SQLite transaction"};
  std::string db = "shop.db";
  std::string order = "o-1";
  std::int64_t amount = 1999;
  bool fail = false;
  app.add_option("--db", db, "the service's SQLite database")->capture_default_str();
  app.add_option("--order", order, "order id to place")->capture_default_str();
  app.add_option("--amount", amount, "amount in minor units")->capture_default_str();
  app.add_flag("--fail", fail, "fail after writing the order and the saga: both roll back");
  CLI11_PARSE(app, argc, argv);
  try {
    order_service svc(db);
    std::cout << "placing " << order << (fail ? " (will fail)" : "") << "\n";
    const bool ok = svc.place_order(order, amount, fail);
    svc.report();
    return ok || fail ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "embedded-order-service: " << e.what() << "\n";
    return 3;
  }
}
