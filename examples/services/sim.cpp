// saga-sim — simulated services around sagad, for the demo and the tests.
//
//   saga-sim payment   answers payment.requested and payment.refund.requested
//   saga-sim warehouse answers inventory.reservation.requested
//   saga-sim courier   answers shipment.requested with dispatch, start and delivery
//   saga-sim orders    places --count orders and exits
//
// Each service follows sagad's published events with the durable subscriber
// (saga::zmq::durable_subscriber: every event recorded in the service's own
// database, --db, before it is handled; catching up through replay), decides
// with its failure rate, waits its delay, and sends the next events with the
// client library. Each decision is a row of the database's `decisions` table,
// written in the same transaction as the event's record, so a service killed
// at any point has either handled an event (recorded, decided, answered) or
// not at all. Decisions are a pure function of (seed, service, the request's
// id), so a request handled again after a crash before the commit gets the
// same answer, and answers carry ids derived from the request's id, so a
// resend is a duplicate. Every decision is also logged as one JSON line (to
// --decisions, or stdout), which is what the end-to-end test computes each
// order's expected end state from. With --server-key and --key (a sagad with
// CURVE, docs/security.md) every socket uses CURVE.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "saga/codec.hpp"
#include "saga/trace.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/curve.hpp"
#include "saga/zmq/durable_subscriber.hpp"

#include <SQLiteCpp/Statement.h>

namespace {

std::atomic<bool> stop_requested{false};
extern "C" void on_signal(int) {
  stop_requested.store(true);
}

struct settings {
  std::string ingress = "tcp://127.0.0.1:5570";
  std::string publish = "tcp://127.0.0.1:5571";
  std::string replay = "tcp://127.0.0.1:5572";
  std::string db;         // the service's database (durable subscriber); empty: <service>.db
  std::string decisions;  // JSON lines; empty: stdout
  double fail_rate = 0.1;
  double refund_fail_rate = 0.2;
  int delay_ms = 0;
  std::uint64_t seed = 1;
  int count = 10;
  std::string prefix = "order-";
  std::string server_key;  // sagad's NAME.key file or its 40-character public key; empty: plaintext
  std::string key;         // this service's NAME.key_secret file
};

// The sockets' CURVE settings: both keys, or neither (plaintext).
saga::zmq::curve_client curve_of(const settings& s) {
  if (s.server_key.empty() != s.key.empty())
    throw std::runtime_error("CURVE needs both --server-key and --key (docs/security.md)");
  if (s.server_key.empty()) return {};
  return {saga::zmq::public_key_from(s.server_key), saga::zmq::read_key_file(s.key, true)};
}

// A decision in [0, 1): FNV-1a over seed, service and request id.
double draw(std::uint64_t seed, std::string_view service, std::string_view request_id) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (auto part : {service, std::string_view("/"), request_id})
    for (unsigned char c : part) h = (h ^ c) * 0x100000001b3ULL;
  return static_cast<double>(h >> 11) / static_cast<double>(1ULL << 53);
}

class decision_log {
 public:
  explicit decision_log(const std::string& path) {
    if (!path.empty()) file_.open(path, std::ios::app);
  }
  void write(const nlohmann::json& j) {
    auto& out = file_.is_open() ? static_cast<std::ostream&>(file_) : std::cout;
    out << j.dump() << std::endl;
  }

 private:
  std::ofstream file_;
};

saga::event answer(const saga::event& request, const std::string& service, const std::string& type, int n) {
  saga::event e;
  e.id = service + ":" + request.id + ":" + std::to_string(n);
  e.source = "urn:sim:" + service;
  e.type = type;
  e.subject = request.subject;
  e.time = saga::format_time(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  e.data = request.data;  // carry the order on
  e.causationid = request.id;
  // As a traced service answers: in the request's trace, from a span of its own.
  if (!request.traceparent.empty()) e.traceparent = saga::child_traceparent(request.traceparent);
  e.tracestate = request.tracestate;
  return e;
}

using decide_fn = std::function<std::vector<std::pair<std::string, std::string>>(const saga::event&)>;

// The service's own table of decisions, next to the durable subscriber's record of events. A plain
// INSERT: a request decided twice (which the durable subscriber rules out) would stop the service.
void create_decisions(SQLite::Database& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS decisions (request_id TEXT NOT NULL, decision TEXT NOT NULL, "
      "service TEXT NOT NULL, order_id TEXT NOT NULL, request TEXT NOT NULL, sends TEXT NOT NULL, "
      "PRIMARY KEY (request_id, decision)) WITHOUT ROWID");
}

// Follows published events and answers those `decide` cares about.
int serve(const settings& s, const std::string& service, const decide_fn& decide) {
  zmq::context_t ctx(1);
  saga::zmq::client_options co;
  co.max_tries = 1000000;  // a service keeps trying while sagad restarts
  co.curve = curve_of(s);
  saga::zmq::client client(ctx, s.ingress, co);
  decision_log log(s.decisions);
  saga::zmq::durable_options o;
  o.database = s.db.empty() ? service + ".db" : s.db;
  o.curve = co.curve;
  // Answers are sent, and acked, inside the handler, before the transaction that records the
  // request commits: a service killed before then handles the request again after its restart
  // (and its answer, with the same id, is then a duplicate if sagad had recorded it after all).
  saga::zmq::durable_subscriber sub(
      ctx, s.publish, s.replay, o,
      [&](SQLite::Database& db, const saga::zmq::delivery&, const saga::event& e) {
        std::vector<saga::event> out;
        SQLite::Statement insert(db,
                                 "INSERT INTO decisions VALUES "
                                 "(?1, ?2, ?3, ?4, ?5, ?6)");
        for (const auto& [decision, type] : decide(e)) {
          insert.reset();
          insert.bind(1, e.id);
          insert.bind(2, decision);
          insert.bind(3, service);
          insert.bind(4, e.subject);
          insert.bind(5, e.type);
          insert.bind(6, type);
          insert.exec();
          log.write({{"service", service},
                     {"order", e.subject},
                     {"request", e.type},
                     {"request_id", e.id},
                     {"decision", decision},
                     {"sends", type}});
          out.push_back(answer(e, service, type, static_cast<int>(out.size())));
        }
        if (out.empty()) return;
        if (s.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(s.delay_ms));
        for (const auto& a : client.send_all(out))
          if (a.status == saga::ack_status::rejected)
            std::cerr << "saga-sim " << service << ": rejected: " << a.reason << "\n";
      });
  create_decisions(sub.database());
  std::cerr << "saga-sim " << service << ": following " << s.publish << ", answering to " << s.ingress
            << ", recording in " << o.database << " (from sequence " << sub.position() + 1 << ")\n";
  while (!stop_requested.load()) {
    try {
      sub.poll(std::chrono::milliseconds(200));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: the loop condition decides
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  CLI::App app{"Simulated payment, warehouse and courier services, and an order source, around sagad"};
  app.require_subcommand(1);
  app.fallthrough();  // the options above may follow the subcommand too
  app.add_option("--ingress", s.ingress, "sagad's ingress endpoint")->capture_default_str();
  app.add_option("--publish", s.publish, "sagad's events endpoint")->capture_default_str();
  app.add_option("--replay", s.replay, "sagad's replay endpoint")->capture_default_str();
  app.add_option("--db", s.db,
                 "the service's database: events received and decisions taken (default <service>.db)");
  app.add_option("--decisions", s.decisions, "append decisions here as JSON lines (default stdout)");
  app.add_option("--fail-rate", s.fail_rate, "share of requests answered with a failure")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--refund-fail-rate", s.refund_fail_rate, "payment: share of refunds that fail")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--delay-ms", s.delay_ms, "wait this long before answering")->capture_default_str();
  app.add_option("--seed", s.seed, "seed of the decisions")->capture_default_str();
  app.add_option("--server-key", s.server_key,
                 "sagad's public key (its NAME.key file, or the 40-character key)")
      ->envname("SAGA_SERVER_KEY");
  app.add_option("--key", s.key, "this service's key pair (a NAME.key_secret file from sagactl keygen)")
      ->envname("SAGA_KEY");
  auto* payment = app.add_subcommand("payment", "answer payments and refunds");
  auto* warehouse = app.add_subcommand("warehouse", "answer stock reservations");
  auto* courier = app.add_subcommand("courier", "ship and deliver");
  auto* orders = app.add_subcommand("orders", "place orders, then exit");
  orders->add_option("--count", s.count, "how many orders")->capture_default_str();
  orders->add_option("--prefix", s.prefix, "order ids are <prefix><n>")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  try {
    if (*payment)
      return serve(s, "payment",
                   [&](const saga::event& e) -> std::vector<std::pair<std::string, std::string>> {
                     if (e.type == "payment.requested")
                       return {draw(s.seed, "payment", e.id) < s.fail_rate
                                   ? std::pair{"declined", "payment.failed"}
                                   : std::pair{"charged", "payment.succeeded"}};
                     if (e.type == "payment.refund.requested")
                       return {draw(s.seed, "refund", e.id) < s.refund_fail_rate
                                   ? std::pair{"refund_failed", "payment.refund.failed"}
                                   : std::pair{"refunded", "payment.refunded"}};
                     return {};
                   });
    if (*warehouse)
      return serve(s, "warehouse",
                   [&](const saga::event& e) -> std::vector<std::pair<std::string, std::string>> {
                     if (e.type != "inventory.reservation.requested") return {};
                     return {draw(s.seed, "warehouse", e.id) < s.fail_rate
                                 ? std::pair{"out_of_stock", "inventory.unavailable"}
                                 : std::pair{"reserved", "inventory.reserved"}};
                   });
    if (*courier)
      return serve(s, "courier",
                   [&](const saga::event& e) -> std::vector<std::pair<std::string, std::string>> {
                     if (e.type != "shipment.requested") return {};
                     const bool lost = draw(s.seed, "courier", e.id) < s.fail_rate;
                     return {{"dispatched", "shipment.dispatched"},
                             {"out_for_delivery", "delivery.started"},
                             lost ? std::pair{"delivery_failed", "delivery.failed"}
                                  : std::pair{"delivered", "delivery.confirmed"}};
                   });
    // orders
    zmq::context_t ctx(1);
    saga::zmq::client_options co;
    co.curve = curve_of(s);
    saga::zmq::client client(ctx, s.ingress, co);
    std::vector<saga::event> placed;
    for (int i = 0; i < s.count; ++i) {
      saga::event e;
      e.id = "place:" + s.prefix + std::to_string(i);
      e.source = "urn:sim:shop";
      e.type = "order.placed";
      e.subject = s.prefix + std::to_string(i);
      e.traceparent = saga::new_traceparent();  // the shop starts a trace per order
      e.data = {{"order_id", e.subject},
                {"amount", 1000 + i},
                {"currency", "EUR"},
                {"customer_id", "c-" + std::to_string(i % 13)},
                {"items", {{{"sku", "SKU-" + std::to_string(i % 7)}, {"qty", 1 + i % 3}}}}};
      placed.push_back(std::move(e));
    }
    int rejected = 0;
    for (const auto& a : client.send_all(placed)) rejected += a.status == saga::ack_status::rejected;
    std::cerr << "saga-sim orders: placed " << s.count - rejected << " orders (" << rejected
              << " rejected)\n";
    return rejected == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "saga-sim: " << e.what() << "\n";
    return 1;
  }
}
