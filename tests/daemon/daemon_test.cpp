// End-to-end tests of sagad: the daemon, the simulated services and the
// Python client as real child processes on loopback, on ports sagad chooses
// and reports through --endpoints-file (issue 4, "Tests"). The databases are
// read read-only with SQLiteCpp while sagad runs.
//
// With SAGA_TEST_CURVE=1 (the daemon_tests_curve ctest entries) every case
// runs with CURVE on (issue 13): each test's folder holds a key pair for
// sagad, key pairs for its clients and an authorized-keys file granting them
// everything, and every client (saga-sim, the Python client, the C++ client
// and subscriber, raw sockets) connects with them.

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/trace.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/curve.hpp"
#include "saga/zmq/digest.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/process.hpp"
#include "support/sanitizers.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::endpoints;
using saga::test::exit_status;
using saga::test::lines_of;
using saga::test::process;
using saga::test::temp_dir;
using steady = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// a test's folder, and its keys when the run has CURVE on

bool curve_run() {
  static const bool on = [] {
    const char* v = std::getenv("SAGA_TEST_CURVE");
    return v != nullptr && std::string_view(v) == "1";
  }();
  return on;
}

// With CURVE on: sagad.key(_secret), a key pair per client name in `clients`
// (NAME.key(_secret)), and authorized_keys granting each client everything;
// without: an empty folder, and every option list below empty.
class test_dir : public temp_dir {
 public:
  // "flooder": see the flood test.
  static constexpr std::array clients = {"client", "flooder"};

  test_dir() {
    if (!curve_run()) return;
    server_ = saga::zmq::generate_curve_key_pair();
    saga::zmq::write_key_files(file("sagad"), server_);
    std::ofstream grants(file("authorized_keys"));
    for (const std::string name : clients) {
      saga::zmq::write_key_files(file(name), saga::zmq::generate_curve_key_pair());
      grants << name << ".key " << name << " sources=* types=* roles=operator,subscriber\n";
    }
  }

  // sagad's --curve-secret and --authorized-keys.
  std::vector<std::string> sagad_options() const {
    if (!curve_run()) return {};
    return {"--curve-secret", file("sagad.key_secret"), "--authorized-keys", file("authorized_keys")};
  }
  // The same as lines of a config file.
  std::string sagad_config() const {
    if (!curve_run()) return {};
    return "curve-secret = \"" + file("sagad.key_secret") + "\"\nauthorized-keys = \"" +
           file("authorized_keys") + "\"\n";
  }
  // A client's --server-key and --key (saga-sim, the Python client).
  std::vector<std::string> client_options(const std::string& name = "client") const {
    if (!curve_run()) return {};
    return {"--server-key", file("sagad.key"), "--key", file(name + ".key_secret")};
  }
  // A C++ client's, a subscriber's or a raw socket's settings (saga::zmq::apply).
  saga::zmq::curve_client curve(const std::string& name = "client") const {
    if (!curve_run()) return {};
    return {server_.public_key, saga::zmq::read_key_file(file(name + ".key_secret"), true)};
  }

 private:
  saga::zmq::curve_key_pair server_;
};

// `argv` followed by `more`.
std::vector<std::string> with(std::vector<std::string> argv, const std::vector<std::string>& more) {
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

// A raw socket connected to `endpoint` with `curve` (nothing when plaintext).
::zmq::socket_t raw_socket(::zmq::context_t& ctx, ::zmq::socket_type type, const std::string& endpoint,
                           const saga::zmq::curve_client& curve) {
  ::zmq::socket_t s(ctx, type);
  s.set(::zmq::sockopt::linger, 0);
  saga::zmq::apply(s, curve);
  s.connect(endpoint);
  return s;
}

// Whether the ingress answers, with the keys of `dir` (support's
// wait_until_ingress_answers speaks plaintext only): an event of a type no
// definition consumes (rejected, harmless) is sent until its ack comes.
// False after `timeout`, or at once when `child` is given and ended.
bool ingress_answers(const test_dir& dir, const std::string& ingress, std::chrono::milliseconds timeout,
                     process* child = nullptr) {
  ::zmq::context_t ctx(1);
  saga::zmq::client_options o;
  o.timeout = 200ms;
  o.max_tries = 1;
  o.curve = dir.curve();
  saga::zmq::client c(ctx, ingress, o);
  saga::event ping;
  ping.id = ping.subject = "ping";
  ping.source = "urn:test:ready";
  ping.type = "test.ready.ping";
  const auto deadline = steady::now() + timeout;
  while (steady::now() < deadline) {
    if (child != nullptr && !child->running()) return false;
    try {
      c.send(ping);
      return true;
    } catch (const saga::zmq::client_error&) {
      // no ack within 200 ms: not up yet
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// sagad as a child process

class sagad {
 public:
  // `bind`: where its first run binds (loopback ports it chooses, by default).
  sagad(const test_dir& dir, std::string db, std::vector<std::string> extra = {},
        endpoints bind = endpoints::any_loopback())
      : dir_(dir), db_(std::move(db)), bind_(std::move(bind)), extra_(std::move(extra)) {}

  // Starts sagad and waits until its ingress answers. A restart binds the
  // endpoints the first run reported, so that clients still connected there
  // find it again (start_daemon starts it again when another process took one
  // of those ports in between).
  void start() {
    const std::string n = std::to_string(runs_++);
    auto d = saga::test::start_daemon(argv(), ep_.ingress.empty() ? bind_ : ep_, db_ + ".endpoints.json",
                                      dir_.file("sagad-" + n + ".out"), dir_.file("sagad-" + n + ".err"));
    proc_ = std::move(d.proc);
    REQUIRE_MESSAGE(d, d.error);
    ep_ = d.ep;
    const bool ready = ingress_answers(dir_, ep_.ingress, 10s, proc_.get());
    INFO("sagad stderr: " << proc_->err());
    REQUIRE(ready);
  }
  // Starts it on `bind` without waiting (for the runs that must fail).
  process& spawn() {
    auto args = argv();
    args.insert(args.end(),
                {"--ingress", bind_.ingress, "--publish", bind_.publish, "--replay", bind_.replay});
    const std::string n = std::to_string(runs_++);
    proc_ =
        std::make_unique<process>(args, dir_.file("sagad-" + n + ".out"), dir_.file("sagad-" + n + ".err"));
    return *proc_;
  }
  process& proc() { return *proc_; }
  // Where the running sagad is bound (after start()).
  const endpoints& ep() const { return ep_; }
  const std::string& db() const { return db_; }

  // SIGTERM, and the exit status (the timeout guards against a hang; it is no time limit).
  exit_status stop(std::chrono::milliseconds timeout = 30s) {
    proc_->signal(SIGTERM);
    return proc_->wait_for(timeout);
  }

 private:
  std::vector<std::string> argv() const {
    return with(with({SAGAD_PATH, "--db", db_, "--log-level", "info"}, extra_), dir_.sagad_options());
  }

  const test_dir& dir_;
  std::string db_;
  endpoints bind_, ep_;
  std::vector<std::string> extra_;
  int runs_ = 0;
  std::unique_ptr<process> proc_;
};

// ---------------------------------------------------------------------------
// the database, read-only

SQLite::Database open_ro(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  db.setBusyTimeout(5000);
  return db;
}

std::int64_t scalar(const std::string& path, const std::string& sql) {
  auto db = open_ro(path);
  SQLite::Statement q(db, sql);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

// Trace context (issue 16): the shop (saga-sim orders) starts a trace with each order.placed and
// the simulated services answer in the trace of the request; so every history row of an order,
// and every follow-on event of it a subscriber received, whichever path it took (six steps,
// refunds, retries), carries the trace id of its order.placed, each follow-on event from a span
// of its own.
void check_traces(const std::string& path, const std::vector<std::string>& received, int orders) {
  auto db = open_ro(path);
  std::map<std::string, std::string> trace_of;  // order -> its order.placed's trace id
  SQLite::Statement placed(db,
                           "SELECT key, traceparent FROM history WHERE definition = 'order_lifecycle' AND "
                           "event_type = 'order.placed'");
  while (placed.executeStep())
    trace_of[placed.getColumn(0).getString()] =
        std::string(saga::trace_id_of(placed.getColumn(1).getString()));
  CHECK(trace_of.size() == static_cast<std::size_t>(orders));
  SQLite::Statement rows(
      db, "SELECT key, event_type, traceparent FROM history WHERE definition = 'order_lifecycle'");
  int checked = 0;
  while (rows.executeStep()) {
    CAPTURE(rows.getColumn(0).getString());
    CAPTURE(rows.getColumn(1).getString());
    CHECK(saga::trace_id_of(rows.getColumn(2).getString()) == trace_of[rows.getColumn(0).getString()]);
    ++checked;
  }
  CHECK(checked > 4 * orders);
  std::set<std::string> spans;
  for (const auto& payload : received) {
    const auto e = json::parse(payload);
    CAPTURE(payload);
    REQUIRE(e.contains("traceparent"));
    const std::string traceparent = e.at("traceparent");
    CHECK(saga::traceparent_problem(traceparent).empty());
    CHECK(saga::trace_id_of(traceparent) == trace_of[e.at("subject").get<std::string>()]);
    CHECK(spans.insert(traceparent.substr(36, 16)).second);
  }
  CHECK(spans.size() == received.size());
}

// key -> state of every order saga.
std::map<std::string, std::string> order_states(const std::string& path) {
  auto db = open_ro(path);
  SQLite::Statement q(db, "SELECT key, state FROM instances WHERE definition = 'order_lifecycle'");
  std::map<std::string, std::string> out;
  while (q.executeStep()) out[q.getColumn(0).getString()] = q.getColumn(1).getString();
  return out;
}

// key -> the follow-on event types of that saga, sorted (a multiset).
std::map<std::string, std::multiset<std::string>> outbox_types(const std::string& path) {
  auto db = open_ro(path);
  SQLite::Statement q(db, "SELECT key, type FROM outbox");
  std::map<std::string, std::multiset<std::string>> out;
  while (q.executeStep()) out[q.getColumn(0).getString()].insert(q.getColumn(1).getString());
  return out;
}

std::set<std::pair<std::string, std::string>> id_pairs(const std::string& path, const std::string& sql) {
  auto db = open_ro(path);
  SQLite::Statement q(db, sql);
  std::set<std::pair<std::string, std::string>> out;
  while (q.executeStep()) out.emplace(q.getColumn(0).getString(), q.getColumn(1).getString());
  return out;
}

template <class Pred>
bool eventually(std::chrono::milliseconds timeout, Pred pred, std::chrono::milliseconds step = 50ms) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

// ---------------------------------------------------------------------------
// events

const std::string test_source = "urn:test:daemon";

saga::event order_event(const std::string& type, const std::string& key, const std::string& id, int n) {
  saga::event e;
  e.id = id;
  e.source = test_source;
  e.type = type;
  e.subject = key;
  e.time = saga::format_time(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  e.data = {{"order_id", key},
            {"amount", 1000 + n},
            {"currency", "EUR"},
            {"customer_id", "c-" + std::to_string(n % 11)},
            {"items", json::array({{{"sku", "SKU-" + std::to_string(n % 5)}, {"qty", 1 + n % 3}}})}};
  return e;
}

saga::event placed(const std::string& key, int n) {
  return order_event("order.placed", key, "place:" + key, n);
}

// A stream of non-competing events for `orders` orders, interleaved in blocks,
// with some events before the one that makes their saga able to take them
// (parked). Per order i:
//   i % 4 == 0  placed, paid, reserved, dispatched, started, confirmed -> done
//   i % 4 == 1  placed, payment failed                                  -> cancelled
//   i % 4 == 2  placed, paid, unavailable, refunded                     -> cancelled
//   i % 4 == 3  ... delivery failed, 3 refund failures                  -> needs_attention
std::vector<saga::event> mixed_stream(const std::string& prefix, int orders) {
  std::vector<std::vector<saga::event>> per(static_cast<std::size_t>(orders));
  for (int i = 0; i < orders; ++i) {
    const std::string k = prefix + std::to_string(i);
    auto ev = [&](const std::string& type, const std::string& tag) {
      return order_event(type, k, tag + ":" + k, i);
    };
    auto& v = per[static_cast<std::size_t>(i)];
    v.push_back(placed(k, i));
    switch (i % 4) {
      case 0:
        for (const auto& t : {"payment.succeeded", "inventory.reserved", "shipment.dispatched",
                              "delivery.started", "delivery.confirmed"})
          v.push_back(ev(t, t));
        break;
      case 1:
        v.push_back(ev("payment.failed", "payment.failed"));
        break;
      case 2:
        for (const auto& t : {"payment.succeeded", "inventory.unavailable", "payment.refunded"})
          v.push_back(ev(t, t));
        break;
      default:
        for (const auto& t : {"payment.succeeded", "inventory.reserved", "shipment.dispatched",
                              "delivery.started", "delivery.failed"})
          v.push_back(ev(t, t));
        for (int r = 1; r <= 3; ++r)
          v.push_back(ev("payment.refund.failed", "refund.failed." + std::to_string(r)));
        break;
    }
    if (i % 5 == 0) std::swap(v[0], v[1]);  // its second event first: parked until the order is placed
  }
  // Blocks of 50 orders, step by step within a block.
  std::vector<saga::event> out;
  constexpr int block = 50;
  for (int b = 0; b < orders; b += block)
    for (std::size_t step = 0; step < 9; ++step)
      for (int i = b; i < std::min(orders, b + block); ++i)
        if (step < per[static_cast<std::size_t>(i)].size())
          out.push_back(per[static_cast<std::size_t>(i)][step]);
  return out;
}

std::string expected_state(int i) {
  switch (i % 4) {
    case 0:
      return "done";
    case 1:
    case 2:
      return "cancelled";
    default:
      return "needs_attention";
  }
}

// ---------------------------------------------------------------------------
// a subscriber on its own thread, recording every sequence delivered

class follower {
 public:
  follower(std::string publish, std::string replay, saga::zmq::curve_client curve) {
    thread_ = std::thread([this, publish = std::move(publish), replay = std::move(replay), curve] {
      ::zmq::context_t ctx(1);
      saga::zmq::subscriber_options o;
      o.replay_timeout = 1000ms;
      o.curve = curve;
      saga::zmq::subscriber sub(ctx, publish, replay, o);
      while (!stop_.load()) {
        try {
          sub.poll(100ms, [&](const saga::zmq::delivery& d) {
            std::lock_guard lock(mutex_);
            seqs_.push_back(d.sequence);
            payloads_.push_back(d.payload);
          });
          last_.store(sub.last_sequence());
        } catch (const saga::zmq::subscriber_error& e) {
          // sagad down for a moment: the subscriber tries again on its next poll.
          std::lock_guard lock(mutex_);
          errors_.push_back(e.what());
        }
      }
    });
  }
  ~follower() { stop(); }
  follower(const follower&) = delete;
  follower& operator=(const follower&) = delete;

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t last() const { return last_.load(); }
  std::vector<std::int64_t> sequences() const {
    std::lock_guard lock(mutex_);
    return seqs_;
  }
  std::vector<std::string> errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }
  // The CloudEvents delivered, in delivery order.
  std::vector<std::string> payloads() const {
    std::lock_guard lock(mutex_);
    return payloads_;
  }
  // Waits until it has seen `seq`.
  bool reaches(std::int64_t seq, std::chrono::milliseconds timeout) {
    return eventually(timeout, [&] { return last() >= seq; });
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> last_{0};
  mutable std::mutex mutex_;
  std::vector<std::int64_t> seqs_;
  std::vector<std::string> errors_;
  std::vector<std::string> payloads_;
  std::thread thread_;
};

// Checks `seqs` is exactly 1..n.
void check_gapless(const std::vector<std::int64_t>& seqs, std::int64_t n) {
  CHECK(static_cast<std::int64_t>(seqs.size()) == n);
  std::int64_t expect = 1;
  for (auto s : seqs) {
    if (s != expect) {
      FAIL_CHECK("sequence " << s << " delivered where " << expect << " was expected");
      return;
    }
    ++expect;
  }
}

// Stops and joins a thread when the scope ends, a failed REQUIRE included.
struct joiner {
  std::thread& thread;
  std::function<void()> stop;
  void join() {
    if (!thread.joinable()) return;
    stop();
    thread.join();
  }
  ~joiner() { join(); }
};

// ---------------------------------------------------------------------------
// raw ZeroMQ

std::vector<std::string> recv_frames(::zmq::socket_t& s, std::chrono::milliseconds timeout) {
  ::zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  ::zmq::poll(&item, 1, timeout);
  std::vector<std::string> out;
  if ((item.revents & ZMQ_POLLIN) == 0) return out;
  std::vector<::zmq::message_t> msgs;
  (void)::zmq::recv_multipart(s, std::back_inserter(msgs), ::zmq::recv_flags::dontwait);
  for (auto& m : msgs) out.push_back(m.to_string());
  return out;
}

void send_frames(::zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i)
    s.send(::zmq::buffer(frames[i]),
           i + 1 < frames.size() ? ::zmq::send_flags::sndmore : ::zmq::send_flags::none);
}

// One replay request on a fresh DEALER: the reply frames after the delimiter.
std::vector<std::string> replay_request(const std::string& endpoint, const json& request,
                                        const saga::zmq::curve_client& curve) {
  ::zmq::context_t ctx(1);
  auto s = raw_socket(ctx, ::zmq::socket_type::dealer, endpoint, curve);
  send_frames(s, {"", request.dump()});
  auto frames = recv_frames(s, 5000ms);
  if (!frames.empty() && frames.front().empty()) frames.erase(frames.begin());
  return frames;
}

// A raw DEALER on its own thread pipelining order.placed events (up to
// `window` unacked, no resends) and recording the ids of the accepted ones.
class pipeliner {
 public:
  pipeliner(std::string ingress, saga::zmq::curve_client curve, std::string prefix,
            std::size_t window = 2000) {
    thread_ = std::thread([this, ingress = std::move(ingress), curve, prefix = std::move(prefix), window] {
      ::zmq::context_t ctx(1);
      auto s = raw_socket(ctx, ::zmq::socket_type::dealer, ingress, curve);
      std::size_t in_flight = 0;
      // After stop(), the acks still coming are read for another second.
      std::optional<steady::time_point> drain_until;
      while (!drain_until || steady::now() < *drain_until) {
        if (stop_.load() && !drain_until) drain_until = steady::now() + 1s;
        while (!stop_.load() && in_flight < window && sent_.load() < 200'000) {
          const int n = static_cast<int>(sent_.load());
          const std::string body = saga::encode_event(placed(prefix + std::to_string(n), n));
          if (!s.send(::zmq::const_buffer(), ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait)) break;
          s.send(::zmq::buffer(body), ::zmq::send_flags::dontwait);
          ++sent_;
          ++in_flight;
        }
        const auto frames = recv_frames(s, 10ms);
        if (frames.empty()) continue;
        const json a = json::parse(frames.back());
        if (in_flight > 0) --in_flight;
        if (a.at("status") == "accepted") {
          std::lock_guard lock(mutex_);
          accepted_.insert(a.at("id").get<std::string>());
          count_.store(accepted_.size());
        }
      }
    });
  }
  ~pipeliner() { stop(); }
  pipeliner(const pipeliner&) = delete;
  pipeliner& operator=(const pipeliner&) = delete;

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::size_t accepted_count() const { return count_.load(); }
  std::size_t sent() const { return sent_.load(); }
  // The ids of the events acked "accepted" so far.
  std::set<std::string> accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> sent_{0}, count_{0};
  mutable std::mutex mutex_;
  std::set<std::string> accepted_;
  std::thread thread_;
};

}  // namespace

TEST_SUITE("sagad") {
  // 1 -------------------------------------------------------------------------
  TEST_CASE("end to end: 100 orders through the simulated services end as their decisions imply") {
    test_dir dir;
    sagad d(dir, dir.file("e2e.db"));
    d.start();
    const auto ep = d.ep();
    follower seen(ep.publish, ep.replay, dir.curve());

    auto sim = [&](const std::string& service) {
      return std::make_unique<process>(
          with({SAGA_SIM_PATH, "--ingress", ep.ingress, "--publish", ep.publish, "--replay", ep.replay,
                "--db", dir.file(service + ".db"), "--decisions", dir.file(service + ".jsonl"), "--fail-rate",
                "0.2", "--refund-fail-rate", "0.3", "--seed", "42", service},
               dir.client_options()),
          dir.file(service + ".out"), dir.file(service + ".err"));
    };
    std::vector<std::unique_ptr<process>> services;
    for (const auto* s : {"payment", "warehouse", "courier"}) services.push_back(sim(s));

    constexpr int orders = 100;
    process placer(with({SAGA_SIM_PATH, "--ingress", ep.ingress, "orders", "--count", std::to_string(orders),
                         "--prefix", "e2e-"},
                        dir.client_options()),
                   dir.file("orders.out"), dir.file("orders.err"));
    {
      const auto placed_status = placer.wait_for(20s);
      INFO("orders stderr: " << placer.err());
      REQUIRE(placed_status.exited());
      REQUIRE(placed_status.code() == 0);
    }

    const std::string terminal =
        "SELECT count(*) FROM instances WHERE definition = 'order_lifecycle' AND key LIKE 'e2e-%'"
        " AND state IN ('done', 'cancelled', 'needs_attention')";
    const bool all_terminal = eventually(
        40s, [&] { return scalar(d.db(), terminal) == orders; }, 100ms);
    if (!all_terminal) {
      for (const auto& [k, s] : order_states(d.db()))
        if (s != "done" && s != "cancelled" && s != "needs_attention") MESSAGE(k << " is still " << s);
    }
    REQUIRE(all_terminal);

    // The services stop on SIGTERM with 0.
    for (auto& s : services) {
      s->signal(SIGTERM);
      const auto st = s->wait_for(30s);
      INFO(s->name() << " stderr: " << s->err());
      CHECK(st.exited());
      CHECK(st.code() == 0);
    }

    // What the decisions imply, request by request (a request redelivered after
    // a restart is decided and logged again: count each (service, request, decision) once).
    struct facts {
      bool charged = false, declined = false, out_of_stock = false, reserved = false, delivered = false,
           delivery_failed = false, refunded = false;
      int refund_failed = 0;
    };
    std::map<std::string, facts> by_order;
    std::set<std::tuple<std::string, std::string, std::string>> seen_decisions;
    for (const auto* service : {"payment", "warehouse", "courier"}) {
      for (const auto& line : lines_of(saga::test::read_text(dir.file(std::string(service) + ".jsonl")))) {
        const json j = json::parse(line);
        const auto decision = j.at("decision").get<std::string>();
        if (!seen_decisions
                 .emplace(j.at("service").get<std::string>(), j.at("request_id").get<std::string>(), decision)
                 .second)
          continue;
        auto& f = by_order[j.at("order").get<std::string>()];
        if (decision == "charged")
          f.charged = true;
        else if (decision == "declined")
          f.declined = true;
        else if (decision == "out_of_stock")
          f.out_of_stock = true;
        else if (decision == "reserved")
          f.reserved = true;
        else if (decision == "delivered")
          f.delivered = true;
        else if (decision == "delivery_failed")
          f.delivery_failed = true;
        else if (decision == "refunded")
          f.refunded = true;
        else if (decision == "refund_failed")
          ++f.refund_failed;
      }
    }
    const auto states = order_states(d.db());
    std::map<std::string, int> tally;
    for (int i = 0; i < orders; ++i) {
      const std::string k = "e2e-" + std::to_string(i);
      const auto& f = by_order[k];
      std::string expected = "(no decision implies an end)";
      if (f.declined)
        expected = "cancelled";
      else if (f.charged && (f.out_of_stock || f.delivery_failed)) {
        if (f.refunded)
          expected = "cancelled";
        else if (f.refund_failed >= 3)
          expected = "needs_attention";
      } else if (f.charged && f.reserved && f.delivered)
        expected = "done";
      const auto it = states.find(k);
      INFO("order " << k);
      REQUIRE(it != states.end());
      CHECK(it->second == expected);
      ++tally[it->second];
    }
    MESSAGE("end states: done " << tally["done"] << ", cancelled " << tally["cancelled"]
                                << ", needs_attention " << tally["needs_attention"]);
    CHECK(tally["done"] > 0);
    CHECK(tally["cancelled"] > 0);

    // The subscriber saw 1..N, N the last sequence of the outbox (all published).
    const std::int64_t n = scalar(d.db(), "SELECT coalesce(max(sequence), 0) FROM outbox");
    CHECK(n > 0);
    CHECK(eventually(5s, [&] {
      return scalar(d.db(), "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0;
    }));
    CHECK(seen.reaches(n, 10s));
    seen.stop();
    check_gapless(seen.sequences(), n);
    check_traces(d.db(), seen.payloads(), orders);

    const auto st = d.stop();
    INFO("sagad stderr: " << d.proc().err());
    CHECK(st.exited());
    CHECK(st.code() == 0);
  }

  // Issue 18: the durable subscriber under SIGKILL. The payment service (saga-sim, a durable
  // subscriber whose handler writes a decision row per request with a plain INSERT, so a request
  // handled twice would break its primary key and stop the service) is killed at random moments
  // while it works and started again; in the end it recorded every published event once, took
  // one decision per request it processed, and its record reconciles with sagad's log.
  TEST_CASE("a durable subscriber killed at random points processes every event exactly once") {
    test_dir dir;
    sagad d(dir, dir.file("torture.db"));
    d.start();
    const auto ep = d.ep();
    const auto payment = [&] {
      return std::make_unique<process>(
          with({SAGA_SIM_PATH, "--ingress", ep.ingress, "--publish", ep.publish, "--replay", ep.replay,
                "--db", dir.file("payment.db"), "--decisions", dir.file("payment.jsonl"), "--fail-rate",
                "0.3", "payment"},
               dir.client_options()),
          dir.file("payment.out"), dir.file("payment.err"));
    };
    auto service = payment();
    process placer(
        with({SAGA_SIM_PATH, "--ingress", ep.ingress, "orders", "--count", "400", "--prefix", "k-"},
             dir.client_options()),
        dir.file("orders.out"), dir.file("orders.err"));
    std::mt19937 random(std::random_device{}());
    int kills = 0;
    for (; kills < 12; ++kills) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<>(30, 250)(random)));
      REQUIRE(service->signal(SIGKILL));
      CHECK(service->wait_for(10s).signaled());
      service = payment();
    }
    REQUIRE(placer.wait_for(30s).code() == 0);
    // Every order answered (paid or declined): then the service has seen all the requests.
    const std::string answered =
        "SELECT count(*) FROM instances WHERE key LIKE 'k-%' AND state IN ('paid', 'cancelled')";
    REQUIRE_MESSAGE(eventually(
                        60s, [&] { return scalar(d.db(), answered) == 400; }, 100ms),
                    service->err());
    const auto last = scalar(d.db(), "SELECT max(sequence) FROM outbox");
    CHECK(eventually(20s, [&] {
      return scalar(d.db(), "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0;
    }));
    const std::string position = "SELECT coalesce(max(sequence), 0) FROM saga_received";
    CHECK(eventually(
        20s, [&] { return scalar(dir.file("payment.db"), position) == last; }, 100ms));
    // The last one started (its handlers are set) before it is asked to stop.
    CHECK(eventually(
        10s, [&] { return service->err().find("following") != std::string::npos; }, 20ms));
    service->signal(SIGTERM);
    {
      const auto st = service->wait_for(30s);
      INFO("payment stderr: " << service->err());
      CHECK(st.exited());
      CHECK(st.signal() == 0);
      CHECK(st.code() == 0);
    }

    const auto sub = dir.file("payment.db");
    CHECK(scalar(sub, "SELECT count(*) FROM saga_received") == last);  // 1..last, each once
    CHECK(scalar(sub, "SELECT min(sequence) FROM saga_received") == 1);
    CHECK(scalar(sub, "SELECT count(*) FROM decisions") ==
          scalar(sub,
                 "SELECT count(*) FROM saga_received WHERE outcome = 'processed' AND type = "
                 "'payment.requested'"));
    CHECK(scalar(sub, "SELECT count(*) FROM decisions") == 400);
    MESSAGE(kills << " kills; " << last << " events recorded once each");
    auto reconcile = process(
        with({SAGACTL_PATH, "--db", d.db(), "reconcile", "--replay", ep.replay, "--subscriber-db", sub},
             dir.client_options()),
        dir.file("reconcile.out"), dir.file("reconcile.err"));
    INFO("reconcile: " << reconcile.err());
    CHECK(reconcile.wait_for(30s).code() == 0);
  }

  // 2 -------------------------------------------------------------------------
  TEST_CASE("the Python client example reaches done against a fresh sagad") {
    test_dir dir;
    sagad d(dir, dir.file("py.db"));
    d.start();
    const auto ep = d.ep();
    process py(with({SAGA_PYTHON_PATH, SAGA_PYTHON_CLIENT, "--ingress", ep.ingress, "--events", ep.publish,
                     "--replay", ep.replay, "--timeout", "20"},
                    dir.client_options()),
               dir.file("py.out"), dir.file("py.err"));
    const auto st = py.wait_for(30s);
    INFO("python stdout: " << py.out());
    INFO("python stderr: " << py.err());
    CHECK(st.exited());
    CHECK(st.code() == 0);
    CHECK(py.out().find("reached done") != std::string::npos);
    CHECK(scalar(d.db(), "SELECT count(*) FROM instances WHERE state = 'done'") == 1);
    CHECK(d.stop().code() == 0);
  }

  // Issue 18: the Python example as a durable subscriber. Its range digest (hashlib) equals the
  // one sagad's replay socket computes, and sagactl reconcile finds its record consistent.
  TEST_CASE("the Python client as a durable subscriber digests and reconciles like sagad") {
    test_dir dir;
    sagad d(dir, dir.file("pyd.db"));
    d.start();
    const auto ep = d.ep();
    const auto record = dir.file("python-subscriber.db");
    process py(with({SAGA_PYTHON_PATH, SAGA_PYTHON_CLIENT, "--ingress", ep.ingress, "--events", ep.publish,
                     "--replay", ep.replay, "--timeout", "20", "--db", record},
                    dir.client_options()),
               dir.file("pyd.out"), dir.file("pyd.err"));
    const auto st = py.wait_for(30s);
    INFO("python stdout: " << py.out());
    INFO("python stderr: " << py.err());
    REQUIRE(st.code() == 0);
    const auto last = scalar(d.db(), "SELECT max(sequence) FROM outbox");
    CHECK(scalar(record, "SELECT count(*) FROM saga_received WHERE outcome = 'processed'") == last);

    process digest(
        {SAGA_PYTHON_PATH, SAGA_PYTHON_CLIENT, "--db", record, "--digest", "1", std::to_string(last)},
        dir.file("digest.out"), dir.file("digest.err"));
    REQUIRE(digest.wait_for(30s).code() == 0);
    const auto python = json::parse(digest.out());
    ::zmq::context_t ctx;
    auto replay = raw_socket(ctx, ::zmq::socket_type::dealer, ep.replay, dir.curve());
    replay.set(::zmq::sockopt::rcvtimeo, 5000);
    const std::string request = saga::zmq::digest_request_body(1, last);
    replay.send(::zmq::buffer(request), ::zmq::send_flags::none);
    ::zmq::message_t answer;
    REQUIRE(replay.recv(answer));
    const auto sagad_digest = json::parse(answer.to_string());
    CHECK(python["count"] == last);
    CHECK(python["sha256"] == sagad_digest["digest"]["sha256"]);

    process reconcile(
        with({SAGACTL_PATH, "--db", d.db(), "reconcile", "--replay", ep.replay, "--subscriber-db", record},
             dir.client_options()),
        dir.file("reconcile.out"), dir.file("reconcile.err"));
    INFO("reconcile: " << reconcile.out() << reconcile.err());
    CHECK(reconcile.wait_for(30s).code() == 0);
    CHECK(d.stop().code() == 0);
  }

  // 3 -------------------------------------------------------------------------
  TEST_CASE("raw DEALER and REQ sockets: bad input gets rejected acks and sagad keeps serving") {
    test_dir dir;
    sagad d(dir, dir.file("raw.db"));
    d.start();
    const auto ep = d.ep();

    ::zmq::context_t ctx(1);
    auto dealer = raw_socket(ctx, ::zmq::socket_type::dealer, ep.ingress, dir.curve());

    json no_id = json::parse(saga::encode_event(placed("raw-1", 1)));
    no_id.erase("id");
    saga::event unknown = placed("raw-2", 2);
    unknown.id = "unknown-type-1";
    unknown.type = "no.such.type";
    const std::string big(1024 * 1024, 'x');
    const saga::event good = placed("raw-3", 3);

    // Pipelined on one connection: the acks come in request order.
    send_frames(dealer, {"", "{\"specversion\": \"1.0\", \"id\": "});  // malformed JSON
    send_frames(dealer, {"", "{\"big\":\"" + big + "\"}"});            // 1 MiB
    send_frames(dealer,
                {"", saga::encode_event(good), "second", "third"});  // three frames after the delimiter
    send_frames(dealer, {"", no_id.dump()});                         // without id
    send_frames(dealer, {"", saga::encode_event(unknown)});          // a type nobody consumes
    send_frames(dealer, {"", saga::encode_event(good)});             // valid
    send_frames(dealer, {"", saga::encode_event(good)});             // the same again

    std::vector<json> acks;
    for (int i = 0; i < 7; ++i) {
      auto frames = recv_frames(dealer, 5000ms);
      REQUIRE(frames.size() == 2);
      CHECK(frames[0].empty());  // the delimiter comes back
      acks.push_back(json::parse(frames[1]));
    }
    auto rejected = [](const json& a, const std::string& reason_part) {
      INFO("ack: " << a.dump());
      CHECK(a.at("status") == "rejected");
      CHECK(a.at("outcome").is_null());
      CHECK(a.at("saga").is_null());
      REQUIRE(a.at("reason").is_string());
      CHECK(a.at("reason").get<std::string>().find(reason_part) != std::string::npos);
    };
    rejected(acks[0], "not valid JSON");
    CHECK(acks[0].at("id").is_null());
    rejected(acks[1], "exceeds the limit of 65536 bytes");
    rejected(acks[2], "frames:");
    rejected(acks[3], "attribute 'id'");
    CHECK(acks[3].at("id").is_null());
    rejected(acks[4], "no definition consumes 'no.such.type'");
    CHECK(acks[4].at("id") == "unknown-type-1");
    CHECK(acks[4].at("source") == test_source);

    INFO("ack: " << acks[5].dump());
    CHECK(acks[5].at("id") == good.id);
    CHECK(acks[5].at("source") == good.source);
    CHECK(acks[5].at("status") == "accepted");
    CHECK(acks[5].at("outcome") == "transitioned");
    CHECK(acks[5].at("reason").is_null());
    CHECK(acks[5].at("saga") == json{{"type", "order_lifecycle"}, {"id", "raw-3"}, {"state", "placed"}});
    CHECK(acks[6].at("status") == "duplicate");
    CHECK(acks[6].at("outcome") == "transitioned");
    CHECK(acks[6].at("saga").at("state") == "placed");

    // Three frames without the delimiter: rejected, and the reply has no delimiter either.
    send_frames(dealer, {"one", "two", "three"});
    {
      auto frames = recv_frames(dealer, 5000ms);
      REQUIRE(frames.size() == 1);
      rejected(json::parse(frames[0]), "got 3 frames");
    }

    // Over ZMQ_MAXMSGSIZE (4 MiB): the connection is dropped without an ack;
    // sagad keeps serving the others.
    {
      auto huge = raw_socket(ctx, ::zmq::socket_type::dealer, ep.ingress, dir.curve());
      send_frames(huge, {"", std::string(5 * 1024 * 1024, 'y')});
      CHECK(recv_frames(huge, 1000ms).empty());
    }

    // A REQ socket: it adds the delimiter and strips it from the reply.
    auto req = raw_socket(ctx, ::zmq::socket_type::req, ep.ingress, dir.curve());
    const saga::event by_req = placed("raw-req", 4);
    send_frames(req, {saga::encode_event(by_req)});
    {
      auto frames = recv_frames(req, 5000ms);
      REQUIRE(frames.size() == 1);
      const json a = json::parse(frames[0]);
      INFO("ack: " << a.dump());
      CHECK(a.at("id") == by_req.id);
      CHECK(a.at("status") == "accepted");
      CHECK(a.at("saga").at("state") == "placed");
    }
    // The DEALER still works too, after all that.
    const saga::event after = placed("raw-after", 5);
    send_frames(dealer, {"", saga::encode_event(after)});
    {
      auto frames = recv_frames(dealer, 5000ms);
      REQUIRE(frames.size() == 2);
      CHECK(json::parse(frames[1]).at("status") == "accepted");
    }
    CHECK(scalar(d.db(), "SELECT count(*) FROM instances") == 3);
    CHECK(d.proc().running());
    CHECK(d.stop().code() == 0);
  }

  // 4 -------------------------------------------------------------------------
  TEST_CASE("kill -9 with events unacked: after a restart the end state equals a clean run") {
    test_dir dir;
    const auto events = mixed_stream("k9-", 600);
    REQUIRE(events.size() > 3000);

    // Small batches: many commits, so that the kill lands mid-stream.
    sagad d(dir, dir.file("crash.db"), {"--batch-max", "16"});
    d.start();
    const auto ep = d.ep();
    follower seen(ep.publish, ep.replay, dir.curve());

    std::atomic<bool> client_done{false};
    std::vector<saga::ack> acks;
    std::string client_failure;
    ::zmq::context_t sender_ctx(1);
    std::thread sender([&] {
      auto& ctx = sender_ctx;
      saga::zmq::client_options o;
      o.timeout = 500ms;
      o.max_tries = 1000;
      o.max_backoff = 500ms;
      o.curve = dir.curve();
      saga::zmq::client c(ctx, ep.ingress, o);
      try {
        acks = c.send_all(events);
      } catch (const std::exception& e) {
        client_failure = e.what();
      }
      client_done.store(true);
    });
    // A failing check must not leave the client resending forever.
    joiner guard{sender, [&] { sender_ctx.shutdown(); }};

    // A second client on a raw DEALER, to see which acks arrived before the crash.
    pipeliner raw(ep.ingress, dir.curve(), "k9raw-", 500);

    // Kill once a quarter of the stream is in the inbox.
    const auto quarter = static_cast<std::int64_t>(events.size() / 4);
    const bool midway = eventually(
        20s, [&] { return client_done.load() || scalar(d.db(), "SELECT count(*) FROM inbox") >= quarter; },
        2ms);
    const bool done_before_kill = client_done.load();
    const auto killed = d.proc().kill9();
    const auto acked_before_kill = raw.accepted();  // sagad is dead: no ack can come any more
    raw.stop();
    const auto in_inbox_at_kill = scalar(d.db(), "SELECT count(*) FROM inbox");
    {
      // Nothing acked before the crash is lost: it is in the database the dead sagad left.
      const auto inbox = id_pairs(d.db(), "SELECT source, event_id FROM inbox");
      std::size_t lost = 0;
      for (const auto& id : acked_before_kill) lost += inbox.count({test_source, id}) == 0;
      CHECK(!acked_before_kill.empty());
      CHECK(lost == 0);
    }
    CHECK(midway);
    CHECK(killed.signaled());
    CHECK(killed.signal() == SIGKILL);
    CHECK_MESSAGE(!done_before_kill, "the client had finished before the kill: nothing was unacked");
    MESSAGE("killed with " << in_inbox_at_kill << " events in the inbox (" << events.size()
                           << " to send, and " << acked_before_kill.size() << " acked on the raw DEALER)");
    CHECK(in_inbox_at_kill < static_cast<std::int64_t>(events.size()));

    d.start();  // same db, same ports: the clients resend there
    CHECK(d.ep().ingress == ep.ingress);
    const bool finished = eventually(
        60s, [&] { return client_done.load(); }, 20ms);
    REQUIRE(finished);
    guard.join();
    REQUIRE(client_failure.empty());
    REQUIRE(acks.size() == events.size());
    std::size_t not_ok = 0;
    for (const auto& a : acks)
      if (a.status != saga::ack_status::accepted && a.status != saga::ack_status::duplicate) ++not_ok;
    CHECK(not_ok == 0);

    // A clean run of the same stream on a fresh sagad.
    sagad clean(dir, dir.file("clean.db"));
    clean.start();
    {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options o;
      o.curve = dir.curve();
      saga::zmq::client c(ctx, clean.ep().ingress, o);
      for (const auto& a : c.send_all(events)) REQUIRE(a.status == saga::ack_status::accepted);
    }

    auto crashed_states = order_states(d.db());
    std::erase_if(crashed_states, [](const auto& kv) { return kv.first.starts_with("k9raw-"); });
    const auto clean_states = order_states(clean.db());
    CHECK(crashed_states.size() == 600);
    CHECK(crashed_states == clean_states);
    for (int i = 0; i < 600; ++i) {
      const std::string k = "k9-" + std::to_string(i);
      INFO("order " << k);
      CHECK(crashed_states.count(k) == 1);
      if (crashed_states.count(k)) CHECK(crashed_states.at(k) == expected_state(i));
    }
    auto crashed_outbox = outbox_types(d.db());
    std::erase_if(crashed_outbox, [](const auto& kv) { return kv.first.starts_with("k9raw-"); });
    CHECK(crashed_outbox == outbox_types(clean.db()));

    // Every acked event is in the inbox and in the history.
    const auto inbox = id_pairs(d.db(), "SELECT source, event_id FROM inbox");
    const auto history = id_pairs(d.db(), "SELECT event_source, event_id FROM history");
    std::size_t missing_inbox = 0, missing_history = 0;
    for (const auto& e : events) {
      missing_inbox += inbox.count({e.source, e.id}) == 0;
      missing_history += history.count({e.source, e.id}) == 0;
    }
    CHECK(missing_inbox == 0);
    CHECK(missing_history == 0);
    CHECK(scalar(d.db(), "SELECT count(*) FROM parked") == 0);

    // The subscriber, running across the crash, saw 1..N without a gap.
    const std::int64_t n = scalar(d.db(), "SELECT coalesce(max(sequence), 0) FROM outbox");
    CHECK(n > scalar(clean.db(), "SELECT coalesce(max(sequence), 0) FROM outbox"));  // + the raw client's

    // Replay caps a request at 1,000 events and returns them in order from `from`.
    {
      REQUIRE(eventually(5s, [&] {
        return scalar(clean.db(), "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0;
      }));
      const auto last = scalar(clean.db(), "SELECT max(sequence) FROM outbox");
      REQUIRE(last > 1100);
      const auto r = replay_request(clean.ep().replay, {{"from", 100}, {"limit", 5000}}, dir.curve());
      REQUIRE(r.size() == 1 + 2 * 1000);
      CHECK(json::parse(r[0]) == json{{"from", 100}, {"count", 1000}, {"last", last}});
      for (std::size_t i = 0; i < 1000; ++i) CHECK(r[1 + 2 * i] == std::to_string(100 + i));
    }
    CHECK(seen.reaches(n, 15s));
    seen.stop();
    check_gapless(seen.sequences(), n);

    CHECK(d.stop().code() == 0);
    CHECK(clean.stop().code() == 0);
  }

  // 5 -------------------------------------------------------------------------
  // Late subscribers, replay and pruning: tests/daemon/daemon_library_test.cpp,
  // where the retention is waited out on a manual clock rather than slept.

  // 6 -------------------------------------------------------------------------
  // How long the stop takes is a figure of saga-bench ("stop under load"), not a check here.
  TEST_CASE("SIGTERM under load: exit 0 and nothing acked is lost") {
    test_dir dir;
    sagad d(dir, dir.file("term.db"));
    d.start();
    const auto ep = d.ep();

    pipeliner client(ep.ingress, dir.curve(), "term-");
    const bool loaded = eventually(
        20s, [&] { return client.accepted_count() >= 3000; }, 5ms);
    CHECK(loaded);
    d.proc().signal(SIGTERM);
    const auto st = d.proc().wait_for(60s);  // a hang guard, not a time limit
    client.stop();
    const auto accepted = client.accepted();
    MESSAGE(client.sent() << " events sent, " << accepted.size() << " accepted before sagad stopped");
    INFO("sagad stderr: " << d.proc().err());
    CHECK(st.exited());
    CHECK(st.code() == 0);

    const auto inbox = id_pairs(d.db(), "SELECT source, event_id FROM inbox");
    std::size_t lost = 0;
    for (const auto& id : accepted) lost += inbox.count({test_source, id}) == 0;
    CHECK(lost == 0);
    CHECK(inbox.size() >= accepted.size());
    // What was committed was published before the exit.
    CHECK(scalar(d.db(), "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0);
  }

  // 7 -------------------------------------------------------------------------
  TEST_CASE("a second sagad on the same database or a taken port refuses to start") {
    // sagad's stderr without the line where, with CURVE, it names its key before binding.
    const auto error_lines = [](const process& p) {
      auto lines = lines_of(p.err());
      std::erase_if(lines,
                    [](const std::string& l) { return l.find(" info CURVE on: ") != std::string::npos; });
      return lines;
    };
    test_dir dir;
    sagad first(dir, dir.file("one.db"));
    first.start();
    const auto ep = first.ep();

    SUBCASE("the same database") {
      sagad second(dir, dir.file("one.db"));
      auto& p = second.spawn();
      const auto st = p.wait_for(10s);
      INFO("stderr: " << p.err());
      CHECK(st.exited());
      CHECK(st.code() == 1);
      const auto lines = error_lines(p);
      CHECK(lines.size() == 1);
      CHECK(p.err().find("another sagad") != std::string::npos);
      // The first keeps serving.
      CHECK(ingress_answers(dir, ep.ingress, 5s, &first.proc()));
    }

    SUBCASE("a database of a newer schema") {
      const auto path = dir.file("newer.db");
      {
        SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec("PRAGMA user_version = 99");
      }
      sagad newer(dir, path);
      auto& p = newer.spawn();
      const auto st = p.wait_for(10s);
      INFO("stderr: " << p.err());
      CHECK(st.exited());
      CHECK(st.code() == 1);
      CHECK(error_lines(p).size() == 1);
      CHECK(p.err().find("newer than this build supports") != std::string::npos);
    }

    SUBCASE("a taken port") {
      // The first sagad's ports, each beside two the new one may choose.
      const auto fresh = endpoints::any_loopback();
      const std::vector<endpoints> variants = {{ep.ingress, fresh.publish, fresh.replay},
                                               {fresh.ingress, ep.publish, fresh.replay},
                                               {fresh.ingress, fresh.publish, ep.replay}};
      const std::vector<std::string> taken = {ep.ingress, ep.publish, ep.replay};
      for (std::size_t i = 0; i < variants.size(); ++i) {
        sagad other(dir, dir.file("other-" + std::to_string(i) + ".db"), {}, variants[i]);
        auto& p = other.spawn();
        const auto st = p.wait_for(10s);
        INFO("taken: " << taken[i] << "; stderr: " << p.err());
        CHECK(st.exited());
        CHECK(st.code() == 1);
        CHECK(error_lines(p).size() == 1);
        std::size_t fatal = 0;
        for (const auto& l : error_lines(p)) {
          if (l.find("cannot start") == std::string::npos) continue;
          ++fatal;
          CHECK(l.find(taken[i]) != std::string::npos);
        }
        CHECK(fatal == 1);
      }
      CHECK(first.proc().running());
    }
    CHECK(first.stop().code() == 0);
  }

  TEST_CASE("options come from a config file and SAGA_ variables and the command line wins") {
    test_dir dir;
    const auto db = dir.file("from-config.db");
    const auto config = dir.file("sagad.toml");
    const auto endpoints_file = dir.file("endpoints.json");
    const auto any = endpoints::any_loopback();
    std::ofstream(config) << "db = \"" << db << "\"\n"
                          << "ingress = \"" << any.ingress << "\"\n"
                          << "publish = \"" << any.publish << "\"\n"
                          << "replay = \"" << any.replay << "\"\n"
                          << "endpoints-file = \"" << endpoints_file << "\"\n"
                          << "log-level = \"warn\"\n"
                          << dir.sagad_config();
    ::setenv("SAGA_LOG_LEVEL", "error", 1);                              // the environment beats the file
    process p({SAGAD_PATH, "--config", config, "--log-level", "debug"},  // the command line beats both
              dir.file("cfg.out"), dir.file("cfg.err"));
    ::unsetenv("SAGA_LOG_LEVEL");
    std::string why;
    const auto ep = saga::test::read_endpoints_file(endpoints_file, p, 20s, &why);
    REQUIRE_MESSAGE(ep, why);
    const bool ready = ingress_answers(dir, ep->ingress, 10s, &p);
    INFO("stderr: " << p.err());
    REQUIRE(ready);
    CHECK(std::filesystem::exists(db));
    CHECK(
        eventually(10s, [&] { return p.err().find("committed and acked") != std::string::npos; }));  // debug
    p.signal(SIGTERM);
    CHECK(p.wait_for(30s).code() == 0);

    ::setenv("SAGA_LOG_LEVEL", "error", 1);
    process quiet({SAGAD_PATH, "--config", config}, dir.file("env.out"), dir.file("env.err"));
    ::unsetenv("SAGA_LOG_LEVEL");
    const auto quiet_ep = saga::test::read_endpoints_file(endpoints_file, quiet, 20s, &why);
    REQUIRE_MESSAGE(quiet_ep, why);
    REQUIRE(ingress_answers(dir, quiet_ep->ingress, 10s, &quiet));
    quiet.signal(SIGTERM);
    CHECK(quiet.wait_for(30s).code() == 0);
    CHECK(quiet.err().empty());  // error level: the info start-up lines are gone
  }

  TEST_CASE("bad options exit 2 with the reason") {
    test_dir dir;
    process p(with({SAGAD_PATH, "--retention", "7 days"}, dir.sagad_options()), dir.file("bad.out"),
              dir.file("bad.err"));
    const auto st = p.wait_for(5s);
    CHECK(st.code() == 2);
    CHECK((p.err() + p.out()).find("not a duration") != std::string::npos);
  }
  TEST_CASE("sagad names its threads so that top -H and perf tell them apart and runs on mimalloc") {
    test_dir dir;
    auto started = saga::test::start_daemon(
        with({SAGAD_PATH, "--db", dir.file("names.db"), "--console", "127.0.0.1:0"}, dir.sagad_options()),
        endpoints::any_loopback(), dir.file("endpoints.json"), dir.file("names.out"), dir.file("names.err"));
    REQUIRE_MESSAGE(started, started.error);
    process& p = *started.proc;
    INFO("sagad stderr: " << p.err());
    REQUIRE(ingress_answers(dir, started.ep.ingress, 10s, &p));
    std::set<std::string> names;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(p.pid()) + "/task")) {
      std::string name = saga::test::read_text((task.path() / "comm").string());
      while (!name.empty() && name.back() == '\n') name.pop_back();
      names.insert(name);
    }
    INFO("threads: " << [&] {
      std::string all;
      for (const auto& n : names) all += n + " ";
      return all;
    }());
    CHECK(names.contains("saga-checkpoint"));
    CHECK(names.contains("saga-log-sync"));  // SQLite at FULL: the log's sync beside the loop
    CHECK(names.contains("sagad-replay"));
    CHECK(names.contains("sagad-http"));
#if defined(SAGA_MIMALLOC)  // not in the sanitizer builds (SAGA_MIMALLOC=OFF)
    // Its allocator (docs/performance.md): loaded, so ahead of libc's malloc for the whole process.
    CHECK(saga::test::read_text("/proc/" + std::to_string(p.pid()) + "/maps").find("/libmimalloc.so") !=
          std::string::npos);
#endif
    p.signal(SIGTERM);
    CHECK(p.wait_for(10s).code() == 0);
  }
  TEST_CASE("a peer that floods without reading its acks does not grow sagad's memory beyond a bound") {
    test_dir dir;
#if defined(SAGA_TEST_ASAN)
    // Under AddressSanitizer (make test-asan) freed memory waits in a quarantine of up to 256 MB
    // before it is reused, which this flood fills: this sagad runs without one, so that its RSS
    // shows what it keeps (the allocator's other checks stay on).
    const char* set_before = std::getenv("ASAN_OPTIONS");
    const std::optional<std::string> asan_options =
        set_before ? std::optional<std::string>(set_before) : std::nullopt;
    ::setenv("ASAN_OPTIONS", (asan_options.value_or("") + ":quarantine_size_mb=0").c_str(), 1);
#endif
    auto started = saga::test::start_daemon(
        with({SAGAD_PATH, "--db", dir.file("flood.db"), "--synchronous", "OFF"}, dir.sagad_options()),
        endpoints::any_loopback(), dir.file("endpoints.json"), dir.file("flood.out"), dir.file("flood.err"));
#if defined(SAGA_TEST_ASAN)
    if (asan_options)  // as it was: set to the same, or not set at all
      ::setenv("ASAN_OPTIONS", asan_options->c_str(), 1);
    else
      ::unsetenv("ASAN_OPTIONS");
#endif
    REQUIRE_MESSAGE(started, started.error);
    process& p = *started.proc;
    const std::string ingress = started.ep.ingress;
    INFO("sagad stderr: " << p.err());
    REQUIRE(ingress_answers(dir, ingress, 10s, &p));
    const auto kib = [&](const std::string& field) {
      std::istringstream status(saga::test::read_text("/proc/" + std::to_string(p.pid()) + "/status"));
      for (std::string line; std::getline(status, line);)
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
      return -1L;
    };
    const long rss_before = kib("VmRSS");

    // The same event 150,000 times (a duplicate after the first: cheap for
    // sagad, an ack of ~250 bytes each); acks are never read, and the
    // flooder's own receive side is kept tiny so they stay with sagad. With
    // CURVE it has a key of its own: the credit is per key, and the
    // well-behaved peer below (key "client") must not share the flooder's.
    zmq::context_t ctx;
    zmq::socket_t flooder(ctx, zmq::socket_type::dealer);
    flooder.set(zmq::sockopt::linger, 0);
    flooder.set(zmq::sockopt::rcvhwm, 1);
    flooder.set(zmq::sockopt::rcvbuf, 4096);
    flooder.set(zmq::sockopt::sndtimeo, 10'000);
    saga::zmq::apply(flooder, dir.curve("flooder"));
    flooder.connect(ingress);
    const std::string body = saga::encode_event(placed("o-flood", 1));
    constexpr int flood = 150'000;
    int sent = 0;
    for (; sent < flood; ++sent) {
      // Blocks at the high-water mark: sagad reads at its pace.
      if (!flooder.send(zmq::const_buffer(), zmq::send_flags::sndmore) || !flooder.send(zmq::buffer(body)))
        break;
    }
    REQUIRE(sent == flood);
    // A well-behaved peer is served meanwhile; a few of its round trips let
    // sagad read what is left of the flood (it reads peers fairly).
    for (int i = 0; i < 5; ++i) REQUIRE(ingress_answers(dir, ingress, 10s, &p));

    const long rss_after = kib("VmRSS"), peak = kib("VmHWM");
    MESSAGE("sagad VmRSS before the flood " << rss_before << " KiB, after " << rss_after << " KiB, peak "
                                            << peak << " KiB (" << flood << " requests, none read)");
    // 10,000 unread acks (the default credit) plus libzmq's 1,000 and socket
    // buffers are a few MB; without the credit the 150,000 acks are ~60 MB.
    CHECK(peak > 0);
    CHECK(peak - rss_before < 32 * 1024);
    CHECK(p.err().find("does not read its acks") != std::string::npos);  // the credit was reached
    p.signal(SIGTERM);
    const auto st = p.wait_for(10s);
    // What sagad said while it stopped (INFO above shows its log as it was then).
    if (st.code() != 0) MESSAGE("sagad " << st.describe() << " after SIGTERM; its log:\n" << p.err());
    CHECK(st.code() == 0);
  }
}  // TEST_SUITE
