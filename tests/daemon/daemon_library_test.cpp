// saga::server (sagad's loop) in-process on a thread, over real ZeroMQ
// sockets on loopback (ports chosen by the binding side, reported through
// options::on_ready), with a store wrapper that injects storage failures:
// the committer's retries and bisection, a full disk, the replay thread and
// the database lock.

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/definitions/catalog.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/engine.hpp"
#include "saga/server/server.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/store.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/publisher.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/order_events.hpp"
#include "support/temp_dir.hpp"
#include "support/zmq_frames.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using saga::test::temp_dir;

// What the test switches while the daemon runs.
struct faults {
  std::atomic<bool> disk_full{false};  // every commit fails (as SQLITE_FULL would)
  std::string poisoned_key;            // saving this saga fails (as a corrupt page would); set before start
  std::atomic<int> failed_commits{0};
  std::atomic<int> failed_saves{0};
};

class failing_store final : public saga::store_wrapper {
 public:
  failing_store(saga::store& s, faults& f) : store_wrapper(s), f_(f) {}
  void commit() override {
    if (f_.disk_full) {
      ++f_.failed_commits;
      throw saga::store_error("database or disk is full");
    }
    store_wrapper::commit();
  }
  void save_instance(const saga::instance_record& r) override {
    if (!f_.poisoned_key.empty() && r.key == f_.poisoned_key) {
      ++f_.failed_saves;
      throw saga::store_error("database disk image is malformed");
    }
    store_wrapper::save_instance(r);
  }

 private:
  faults& f_;
};

// saga::server::server with the shipped definitions, run on a thread of its
// own; stops and joins when destroyed.
class daemon_thread {
 public:
  explicit daemon_thread(saga::server::options o) {
    auto ready = std::make_shared<std::promise<saga::server::endpoints>>();
    auto settled = std::make_shared<std::atomic<bool>>(false);
    auto bound = ready->get_future();
    o.on_ready = [ready, settled](const saga::server::endpoints& ep) {
      settled->store(true);
      ready->set_value(ep);
    };
    thread_ = std::thread([this, o = std::move(o), ready, settled]() mutable {
      try {
        saga::server::server server(o);
        for (const auto& name : saga::definitions::names()) server.add(saga::definitions::by_name(name));
        server.run(stop_);
      } catch (...) {
        if (!settled->exchange(true)) ready->set_exception(std::current_exception());
      }
    });
    try {
      ep_ = bound.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }
  ~daemon_thread() {
    stop_ = true;
    thread_.join();
  }
  daemon_thread(const daemon_thread&) = delete;
  daemon_thread& operator=(const daemon_thread&) = delete;

  const saga::server::endpoints& ep() const { return ep_; }

 private:
  std::atomic<bool> stop_{false};
  saga::server::endpoints ep_;
  std::thread thread_;
};

saga::server::options base_options(const temp_dir& dir) {
  saga::server::options o;
  o.db = dir.file("saga.db");
  o.ingress = "tcp://127.0.0.1:*";
  o.publish = "tcp://127.0.0.1:*";
  o.replay = "tcp://127.0.0.1:*";
  o.synchronous = "NORMAL";
  o.definitions = {"order_lifecycle"};
  o.storage_retries = 2;
  o.storage_backoff_ms = 20;
  return o;
}

saga::server::options with_faults(saga::server::options o, faults& f) {
  o.wrap_store = [&f](saga::store& s) -> std::unique_ptr<saga::store> {
    return std::make_unique<failing_store>(s, f);
  };
  return o;
}

// A DEALER on the ingress: sends events, collects acks by id.
class sender {
 public:
  sender(zmq::context_t& ctx, const std::string& endpoint) : s_(ctx, zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    s_.connect(endpoint);
  }
  void send(const saga::event& e) {
    s_.send(zmq::const_buffer(), zmq::send_flags::sndmore);
    s_.send(zmq::buffer(saga::encode_event(e)));
  }
  // Takes the acks that arrive within `wait`.
  void receive(std::chrono::milliseconds wait) {
    zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return;
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(s_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
      const auto a = json::parse(frames.back().to_string());
      acks[a.at("id").get<std::string>()].push_back(a);
    }
  }
  // Receives until `n` distinct ids are acked or `timeout` passes.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (acks.size() < n && steady::now() < deadline) receive(50ms);
    return acks.size() >= n;
  }
  std::map<std::string, std::vector<json>> acks;

 private:
  zmq::socket_t s_;
};

// A SUB on the events socket counting heartbeats.
class heartbeat_counter {
 public:
  heartbeat_counter(zmq::context_t& ctx, const std::string& endpoint) : s_(ctx, zmq::socket_type::sub) {
    s_.set(zmq::sockopt::linger, 0);
    s_.set(zmq::sockopt::subscribe, "");
    s_.connect(endpoint);
  }
  // Heartbeats received within `wait`.
  int receive(std::chrono::milliseconds wait) {
    int n = 0;
    zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return 0;
    while (true) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(s_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return n;
      if (!frames.empty() && frames[0].to_string() == "saga.heartbeat") ++n;
    }
  }

 private:
  zmq::socket_t s_;
};

// One replay request on a fresh DEALER: the reply frames after the delimiter
// (none when no reply came within `timeout`).
std::vector<std::string> replay_request(zmq::context_t& ctx, const std::string& endpoint, const json& request,
                                        std::chrono::milliseconds timeout) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(endpoint);
  const std::string req = request.dump();
  s.send(zmq::const_buffer(), zmq::send_flags::sndmore);
  s.send(zmq::buffer(req));
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return {};
  auto frames = saga::test::recv_all(s);
  if (!frames.empty()) frames.erase(frames.begin());  // the delimiter
  return frames;
}

std::vector<std::string> replay_request(zmq::context_t& ctx, const std::string& endpoint, int from,
                                        std::chrono::milliseconds timeout) {
  return replay_request(ctx, endpoint, json{{"from", from}, {"limit", 10}}, timeout);
}

template <class Pred>
bool eventually(std::chrono::milliseconds timeout, Pred pred) {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

std::int64_t scalar(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  db.setBusyTimeout(5000);
  SQLite::Statement q(db, sql);
  q.executeStep();
  return q.getColumn(0).getInt64();
}

// Checks `seqs` is exactly from..to.
void check_consecutive(const std::vector<std::int64_t>& seqs, std::int64_t from, std::int64_t to) {
  CHECK(static_cast<std::int64_t>(seqs.size()) == to - from + 1);
  std::int64_t expect = from;
  for (auto s : seqs) {
    if (s != expect) {
      FAIL_CHECK("sequence " << s << " delivered where " << expect << " was expected");
      return;
    }
    ++expect;
  }
}

// What the daemon logs while it lives (spdlog's default logger, in memory).
class memory_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& m) override {
    spdlog::memory_buf_t buf;
    formatter_->format(m, buf);
    text_.append(buf.data(), buf.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

class captured_log {
 public:
  captured_log() : previous_(spdlog::default_logger()), sink_(std::make_shared<memory_sink>()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink_));
  }
  ~captured_log() { spdlog::set_default_logger(previous_); }
  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  std::string text() { return sink_->text(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<memory_sink> sink_;
};

}  // namespace

TEST_SUITE("daemon_library") {
  TEST_CASE(
      "a storage failure on one saga's event sets that event aside and the rest of the batch is accepted") {
    temp_dir dir;
    faults f;
    f.poisoned_key = "o-bad";
    daemon_thread d(with_faults(base_options(dir), f));

    zmq::context_t ctx;
    sender s(ctx, d.ep().ingress);
    std::vector<std::string> keys;
    for (int i = 0; i < 20; ++i) keys.push_back("o-" + std::to_string(i));
    keys.insert(keys.begin() + 7, "o-bad");
    for (const auto& k : keys) s.send(saga::test::placed(k));

    REQUIRE(s.wait_for(keys.size(), 30s));
    CHECK(f.failed_saves.load() > 2);  // retried, then bisected down to it
    for (const auto& k : keys) {
      const auto& a = s.acks.at("placed-" + k);
      REQUIRE(a.size() == 1);
      INFO(k << ": " << a.front().dump());
      if (k == "o-bad") {
        CHECK(a.front().at("status") == "rejected");
        CHECK(a.front().at("reason").get<std::string>().rfind("storage: ", 0) == 0);
        CHECK(a.front().at("reason").get<std::string>().find("malformed") != std::string::npos);
      } else {
        CHECK(a.front().at("status") == "accepted");
      }
    }

    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    SQLite::Statement q(db, "SELECT reason FROM dead_letters WHERE subject = 'o-bad'");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getString().rfind("storage: ", 0) == 0);
    SQLite::Statement n(db, "SELECT count(*) FROM instances WHERE definition = 'order_lifecycle'");
    REQUIRE(n.executeStep());
    CHECK(n.getColumn(0).getInt() == 20);
  }

  TEST_CASE("a full disk acks nothing while heartbeats and replay go on and everything is accepted after") {
    temp_dir dir;
    faults f;
    daemon_thread d(with_faults(base_options(dir), f));

    zmq::context_t ctx;
    heartbeat_counter hb(ctx, d.ep().publish);
    sender s(ctx, d.ep().ingress);
    s.send(saga::test::placed("o-before"));
    REQUIRE(s.wait_for(1, 10s));

    f.disk_full = true;
    for (int i = 0; i < 5; ++i) s.send(saga::test::placed("o-" + std::to_string(i)));
    // The batch is in hand and failing: wait until it has failed past its
    // retries and three heartbeats went out meanwhile.
    int heartbeats = 0;
    const auto deadline = steady::now() + 20s;
    while ((heartbeats < 3 || f.failed_commits.load() < 4) && steady::now() < deadline) {
      heartbeats += hb.receive(100ms);
      s.receive(0ms);
    }
    CHECK(f.failed_commits.load() >= 4);
    CHECK(heartbeats >= 3);
    const auto replay = replay_request(ctx, d.ep().replay, 1, 10s);
    REQUIRE_FALSE(replay.empty());
    CHECK(json::parse(replay.front()).at("last").get<int>() == 1);  // payment.requested of o-before
    s.receive(100ms);
    CHECK(s.acks.size() == 1);  // nothing of the failing batch was acked

    f.disk_full = false;
    REQUIRE(s.wait_for(6, 30s));
    for (int i = 0; i < 5; ++i) {
      const auto& a = s.acks.at("placed-o-" + std::to_string(i));
      INFO(a.front().dump());
      CHECK(a.front().at("status") == "accepted");
    }
  }

  TEST_CASE("a second daemon on the same database through a symlink or a hard link refuses to start") {
    temp_dir dir;
    daemon_thread first(base_options(dir));

    for (const std::string how : {"symlink", "hard link", "dot path"}) {
      CAPTURE(how);
      auto o = base_options(dir);
      if (how == "symlink") {
        o.db = dir.file("alias.db");
        std::filesystem::create_symlink(dir.file("saga.db"), o.db);
      } else if (how == "hard link") {
        o.db = dir.file("linked.db");
        std::filesystem::create_hard_link(dir.file("saga.db"), o.db);
      } else {
        o.db = (dir.path() / "." / "saga.db").string();
      }
      std::string error;
      try {
        daemon_thread second(o);
      } catch (const saga::server::startup_error& e) {
        error = e.what();
      }
      CHECK(error.find("another sagad is running") != std::string::npos);
    }
  }

  TEST_CASE("timers due for a definition this daemon does not run are reported at start and stay armed") {
    temp_dir dir;
    saga::manual_clock clock;  // 2026-01-01T00:00:00Z
    {
      auto o = base_options(dir);
      o.definitions = {"payment_notice"};
      o.clock = &clock;
      daemon_thread d(o);
      zmq::context_t ctx;
      sender s(ctx, d.ep().ingress);
      saga::event e;
      e.id = "notice-1";
      e.source = "urn:test";
      e.type = "payment_notice.created";
      e.subject = "n-1";
      e.data = {{"notice_id", "n-1"},
                {"policy_id", "p-1"},
                {"amount", 100},
                {"currency", "EUR"},
                {"due", "2026-01-02T00:00:00Z"}};
      s.send(e);
      REQUIRE(s.wait_for(1, 10s));
      REQUIRE(s.acks.at("notice-1").front().at("status") == "accepted");
    }

    clock.advance(48h);  // the due-date timer is due now
    captured_log log;
    auto o = base_options(dir);
    o.definitions = {"order_lifecycle"};
    o.clock = &clock;
    daemon_thread d(o);
    std::string text;
    const auto deadline = steady::now() + 10s;
    while (text.find("does not run:") == std::string::npos && steady::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      text = log.text();
    }
    INFO(text);
    CHECK(text.find("timers are due for definitions this sagad does not run: payment_notice (1)") !=
          std::string::npos);

    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    SQLite::Statement q(db,
                        "SELECT state FROM instances WHERE definition = 'payment_notice' AND key = 'n-1'");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getString() == "awaiting_payment");  // not fired by a daemon that does not run it
  }

  // sagad publishes what its own commits wrote from memory; rows another process (a host
  // service embedding the engine) commits into the same database come in between and must go
  // out on the wire in sequence order with them (read here from a raw SUB socket, which does
  // not fill gaps through replay as saga::zmq::subscriber would), none twice, none lost.
  TEST_CASE("rows another process commits beside the daemon go out in sequence order with its own") {
    temp_dir dir;
    auto o = base_options(dir);
    daemon_thread d(o);
    zmq::context_t ctx;
    zmq::socket_t sub(ctx, zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "");
    sub.set(zmq::sockopt::rcvtimeo, 100);
    sub.connect(d.ep().publish);
    std::vector<std::int64_t> wire;  // sequences in the order they were published
    bool heard = false;              // a heartbeat came: the subscription is in place
    auto receive = [&] {
      std::vector<zmq::message_t> frames;
      while (zmq::recv_multipart(sub, std::back_inserter(frames))) {
        REQUIRE(frames.size() == 3);
        if (frames[0].to_string_view() == saga::zmq::heartbeat_type)
          heard = true;
        else
          wire.push_back(std::stoll(frames[1].to_string()));
        frames.clear();
      }
    };
    const auto deadline = steady::now() + 20s;
    while (!heard && steady::now() < deadline) receive();
    REQUIRE(heard);

    saga::sqlite::store host_store(saga::sqlite::options{o.db});
    saga::system_clock clock;
    saga::engine host(host_store, clock);
    host.add(saga::definitions::order_lifecycle());
    saga::zmq::client c(ctx, d.ep().ingress);
    for (int round = 0; round < 6; ++round) {
      const std::string r = std::to_string(round);
      for (int i = 0; i < 3; ++i)
        REQUIRE(host.handle(saga::test::placed("host-" + r + "-" + std::to_string(i))).status ==
                saga::ack_status::accepted);
      std::vector<saga::event> v;
      for (int i = 0; i < 3; ++i) v.push_back(saga::test::placed("sagad-" + r + "-" + std::to_string(i)));
      for (const auto& a : c.send_all(v)) REQUIRE(a.status == saga::ack_status::accepted);
    }
    const std::int64_t last = scalar(o.db, "SELECT max(sequence) FROM outbox");
    REQUIRE(last == 36);  // one follow-on per order.placed
    while ((wire.empty() || wire.back() < last) && steady::now() < deadline) receive();
    check_consecutive(wire, 1, last);
    CHECK(eventually(10s, [&] {
      return scalar(o.db, "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0;
    }));
  }

  // Moved from the sagad process tests (tests/daemon/daemon_test.cpp), where the retention was
  // waited out with a sleep: here the daemon reads a manual clock, and a restart happens two
  // minutes later by that clock without waiting.
  TEST_CASE("late subscribers catch up through replay and pruned sequences are never reused") {
    temp_dir dir;
    saga::manual_clock clock;  // 2026-01-01T00:00:00Z
    auto o = base_options(dir);
    o.clock = &clock;
    o.retention_ms = 60'000;  // 1 min; the orders' first timer (payment_timeout) is 15 min away
    o.dedup_window_ms = 60'000;
    auto d = std::make_unique<daemon_thread>(o);

    zmq::context_t ctx;
    auto place = [&](int from, int to) {
      std::vector<saga::event> v;
      for (int i = from; i < to; ++i) v.push_back(saga::test::placed("late-" + std::to_string(i)));
      saga::zmq::client c(ctx, d->ep().ingress);
      for (const auto& a : c.send_all(v)) REQUIRE(a.status == saga::ack_status::accepted);
    };
    auto published = [&] { return scalar(o.db, "SELECT coalesce(max(sequence), 0) FROM outbox"); };
    auto all_published = [&] {
      return eventually(10s, [&] {
        return scalar(o.db, "SELECT count(*) FROM outbox_published WHERE published_ms IS NULL") == 0;
      });
    };

    place(0, 20);
    REQUIRE(all_published());
    const std::int64_t first_batch = published();
    REQUIRE(first_batch >= 20);

    // A subscriber started late gets the whole history, from 1, in order; it
    // keeps its position in a file.
    const std::string position = dir.file("late.pos");
    auto drain = [&](std::int64_t until) {
      saga::zmq::subscriber_options so;
      so.position_file = position;
      saga::zmq::subscriber sub(ctx, d->ep().publish, d->ep().replay, so);
      std::vector<std::int64_t> got;
      const auto deadline = steady::now() + 20s;
      while (sub.last_sequence() < until && steady::now() < deadline)
        sub.poll(100ms, [&](const saga::zmq::delivery& dl) {
          got.push_back(dl.sequence);
          CHECK(!dl.payload.empty());
        });
      return got;
    };
    check_consecutive(drain(first_batch), 1, first_batch);

    // Stopped for a while: more events meanwhile; it resumes after its position.
    place(20, 40);
    REQUIRE(all_published());
    const std::int64_t second_batch = published();
    REQUIRE(second_batch > first_batch);
    check_consecutive(drain(second_batch), first_batch + 1, second_batch);

    // Two minutes later by the daemon's clock, everything published is older
    // than the retention: a restart prunes it (pruning runs at start and hourly).
    d.reset();
    CHECK(scalar(o.db, "SELECT count(*) FROM outbox") == second_batch);  // nothing pruned before
    clock.advance(2min);
    d = std::make_unique<daemon_thread>(o);
    const bool pruned = eventually(10s, [&] { return scalar(o.db, "SELECT count(*) FROM outbox") == 0; });
    REQUIRE(pruned);
    CHECK(scalar(o.db, "SELECT count(*) FROM inbox") == 0);  // the dedup window passed too

    const auto reply = replay_request(ctx, d->ep().replay, json{{"from", 1}, {"limit", 10}}, 10s);
    REQUIRE(reply.size() == 1);
    CHECK(json::parse(reply[0]) == json{{"error", "pruned"}, {"first", second_batch + 1}});
    // A subscriber starting from scratch is told so.
    {
      saga::zmq::subscriber sub(ctx, d->ep().publish, d->ep().replay);
      CHECK_THROWS_AS(sub.poll(100ms, [](const saga::zmq::delivery&) {}), saga::zmq::subscriber_error);
    }

    // New events continue the sequence: never reused.
    place(40, 41);
    REQUIRE(all_published());
    CHECK(scalar(o.db, "SELECT min(sequence) FROM outbox") == second_batch + 1);
    const auto after = replay_request(ctx, d->ep().replay, json{{"from", second_batch + 1}}, 10s);
    REQUIRE(after.size() >= 3);
    const json h = json::parse(after[0]);
    CHECK(h.at("from") == second_batch + 1);
    CHECK(h.at("count") == 1);
    CHECK(h.at("last") == second_batch + 1);
    CHECK(after[1] == std::to_string(second_batch + 1));
    CHECK(json::parse(after[2]).at("subject") == "late-40");
    // A heartbeat, idle or not, announces the last published sequence.
    {
      zmq::socket_t sub(ctx, zmq::socket_type::sub);
      sub.set(zmq::sockopt::linger, 0);
      sub.set(zmq::sockopt::subscribe, "saga.heartbeat");
      sub.set(zmq::sockopt::rcvtimeo, 500);
      sub.connect(d->ep().publish);
      std::vector<std::string> beat;
      const auto deadline = steady::now() + 10s;
      while (steady::now() < deadline && (beat.empty() || beat[0] != "saga.heartbeat"))
        beat = saga::test::recv_all(sub);
      REQUIRE(beat.size() == 3);
      CHECK(beat[0] == "saga.heartbeat");
      CHECK(beat[1] == std::to_string(second_batch + 1));
      CHECK(beat[2] == "{}");
    }
    // A replay request that is not one gets bad_request.
    {
      const auto bad = replay_request(ctx, d->ep().replay, json{{"from", -1}}, 10s);
      REQUIRE(bad.size() == 1);
      CHECK(json::parse(bad[0]).at("error") == "bad_request");
    }
    // ... and the subscriber with the position file resumes there.
    {
      const auto got = drain(second_batch + 1);
      REQUIRE(got.size() == 1);
      CHECK(got[0] == second_batch + 1);
    }
  }
}
