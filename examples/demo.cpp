// `make demo`: runs a few hundred orders through the embedded engine on a
// SQLite file and prints where they ended. The outcome of each order (paid or
// not, stock or not, delivered or not, cancelled early) is drawn from a seeded
// generator, and the events of all orders arrive interleaved, some twice and
// some early — the engine parks and deduplicates them.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>

#include <CLI/CLI.hpp>

#include "saga/codec.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"

namespace {

std::vector<std::string> path_for(std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(0, 99);
  const int p = pick(rng);
  if (p < 60)
    return {"order.placed",        "payment.succeeded", "inventory.reserved",
            "shipment.dispatched", "delivery.started",  "delivery.confirmed"};
  if (p < 70) return {"order.placed", "payment.failed"};
  if (p < 78) return {"order.placed", "order.cancel.requested"};
  if (p < 86) return {"order.placed", "payment.succeeded", "inventory.unavailable", "payment.refunded"};
  if (p < 94)
    return {"order.placed",     "payment.succeeded", "inventory.reserved", "shipment.dispatched",
            "delivery.started", "delivery.failed",   "payment.refunded"};
  return {"order.placed",          "payment.succeeded",     "inventory.unavailable",
          "payment.refund.failed", "payment.refund.failed", "payment.refund.failed"};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Runs orders through the embedded saga engine and prints their states"};
  std::string db = "demo.db";
  int orders = 300;
  unsigned seed = 42;
  int batch = 64;
  app.add_option("--db", db, "SQLite database file (recreated)")->capture_default_str();
  app.add_option("--orders", orders, "how many orders")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--seed", seed, "seed of the generator")->capture_default_str();
  app.add_option("--batch", batch, "events per transaction")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  CLI11_PARSE(app, argc, argv);

  try {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db + suffix);
    saga::sqlite::options o;
    o.path = db;
    saga::sqlite::store store(o);
    saga::system_clock clock;
    saga::engine engine(store, clock);
    engine.add(saga::definitions::order_lifecycle());
    std::map<std::string, int> follow_on;
    engine.subscribe("", [&](const saga::published_event& p) { ++follow_on[p.event.type]; });

    std::mt19937 rng(seed);
    std::vector<saga::event> stream;
    for (int i = 0; i < orders; ++i) {
      const std::string id = "order-" + std::to_string(1000 + i);
      int n = 0;
      for (const auto& type : path_for(rng)) {
        saga::event e;
        e.id = id + "-" + std::to_string(n++);
        e.source = "urn:demo:services";
        e.type = type;
        e.subject = id;
        e.time = saga::format_time(clock.now_ms());
        if (type == "order.placed")
          e.data = {{"order_id", id},
                    {"amount", 1000 + i},
                    {"currency", "EUR"},
                    {"customer_id", "c-" + std::to_string(i % 17)},
                    {"items", {{{"sku", "SKU-" + std::to_string(i % 5)}, {"qty", 1 + i % 3}}}}};
        stream.push_back(e);
        if (rng() % 10 == 0) stream.push_back(e);  // delivered twice
      }
    }
    // Interleave orders and let some events overtake others.
    for (std::size_t i = 1; i < stream.size(); ++i)
      if (rng() % 4 == 0) std::swap(stream[i], stream[i - 1 - rng() % std::min<std::size_t>(i, 8)]);

    std::map<std::string, int> outcomes;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < stream.size(); i += static_cast<std::size_t>(batch)) {
      const auto n = std::min(stream.size() - i, static_cast<std::size_t>(batch));
      for (const auto& a : engine.handle_batch(std::span<const saga::event>(stream.data() + i, n))) {
        std::string k(saga::to_string(a.status));
        if (a.outcome != saga::ack_outcome::none) k += "/" + std::string(saga::to_string(a.outcome));
        ++outcomes[k];
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::map<std::string, int> states;
    for (int i = 0; i < orders; ++i) {
      auto r = store.load_instance("order_lifecycle", "order-" + std::to_string(1000 + i));
      ++states[r ? r->state : "(none)"];
    }
    std::cout << "saga demo: " << orders << " orders, " << stream.size() << " events in " << secs << " s ("
              << static_cast<long>(stream.size() / secs) << " events/s, batches of " << batch << ") on " << db
              << "\n\n";
    std::cout << "acks:\n";
    for (const auto& [k, n] : outcomes) std::cout << "  " << k << ": " << n << "\n";
    std::cout << "follow-on events:\n";
    for (const auto& [k, n] : follow_on) std::cout << "  " << k << ": " << n << "\n";
    std::cout << "orders by state:\n";
    for (const auto& [k, n] : states) std::cout << "  " << k << ": " << n << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "saga-demo: " << e.what() << "\n";
    return 1;
  }
}
