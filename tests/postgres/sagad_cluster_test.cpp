// Issue 17, items 2 and 4, with real processes: two sagad on one PostgreSQL schema, each
// receiving every event (two clients, one per sagad, at the same time). Each event is applied
// once, every saga ends where its events lead, and one subscriber connected to both sagad's
// events and replay sockets sees the one log 1..N, gapless, each sequence once.

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/order_events.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;

}  // namespace

TEST_SUITE("postgres sagad") {
  TEST_CASE("two sagad on one PostgreSQL schema given every event apply each once and publish one log") {
    constexpr int orders = 200;
    saga::test::temp_dir dir;
    const auto db = saga::test::postgres_uri(saga::test::postgres_conninfo());
    const auto schema = saga::test::unique_schema("sagad");
    std::vector<saga::test::started_daemon> sagad;
    for (int i = 0; i < 2; ++i) {
      const auto n = std::to_string(i);
      sagad.push_back(
          saga::test::start_daemon({SAGAD_PATH, "--db", db, "--pg-schema", schema, "--log-level", "warn"},
                                   saga::test::endpoints::any_loopback(), dir.file("endpoints" + n + ".json"),
                                   dir.file("sagad" + n + ".out"), dir.file("sagad" + n + ".err")));
      REQUIRE_MESSAGE(sagad.back(), sagad.back().error);
    }
    std::vector<saga::event> events;
    for (int i = 0; i < orders; ++i) {
      const auto order = "o-" + std::to_string(i);
      events.push_back(saga::test::placed(order));
      events.push_back(saga::test::paid(order));
    }
    std::vector<std::thread> clients;
    std::vector<std::vector<saga::ack>> acks(2);
    for (int i = 0; i < 2; ++i) {
      clients.emplace_back([&, i] {
        ::zmq::context_t ctx(1);
        saga::zmq::client_options co;
        co.window = 50;
        co.timeout = 20s;
        saga::zmq::client c(ctx, sagad[static_cast<std::size_t>(i)].ep.ingress, co);
        acks[static_cast<std::size_t>(i)] = c.send_all(events);
      });
    }
    for (auto& c : clients) c.join();
    int accepted = 0, duplicate = 0;
    for (const auto& list : acks)
      for (const auto& a : list) {
        CHECK(a.status != saga::ack_status::rejected);
        accepted += a.status == saga::ack_status::accepted;
        duplicate += a.status == saga::ack_status::duplicate;
      }
    CHECK(accepted == 2 * orders);  // each event applied by one sagad
    CHECK(duplicate == 2 * orders);

    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE version = 2") == std::to_string(orders));
    CHECK(sql.scalar("SELECT count(*) FROM inbox") == std::to_string(2 * orders));
    const auto last = std::stoll(sql.scalar("SELECT max(sequence) FROM outbox"));
    CHECK(sql.scalar("SELECT count(*) FROM outbox") == std::to_string(last));  // 1..last, no gap

    // One subscriber on both sagad: the one log, each sequence once, in order.
    ::zmq::context_t ctx(1);
    saga::zmq::subscriber sub(ctx, sagad[0].ep.publish + "," + sagad[1].ep.publish,
                              sagad[0].ep.replay + "," + sagad[1].ep.replay);
    std::vector<std::int64_t> seen;
    for (int i = 0; i < 100 && sub.last_sequence() < last; ++i)
      sub.poll(100ms, [&](const saga::zmq::delivery& d) { seen.push_back(d.sequence); });
    REQUIRE(static_cast<std::int64_t>(seen.size()) == last);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<std::int64_t>(i) + 1);
    // Both relays publish (a subscriber drops what it has) and mark: nothing stays unpublished.
    bool all_marked = false;
    for (int i = 0; i < 100 && !all_marked; ++i) {
      all_marked = sql.scalar("SELECT count(*) FROM outbox WHERE published_ms IS NULL") == "0";
      if (!all_marked) std::this_thread::sleep_for(50ms);
    }
    CHECK(all_marked);

    for (auto& d : sagad) {
      REQUIRE(d.proc->signal(SIGTERM));
      INFO("sagad stderr: " << d.proc->err());
      CHECK(d.proc->wait_for(30s).code() == 0);
    }
  }
}

TEST_SUITE("postgres sagad") {
  TEST_CASE("sagad names an unreachable PostgreSQL database without its password and exits 1") {
    saga::test::temp_dir dir;
    saga::test::process p(
        {SAGAD_PATH, "--db", "postgresql://saga:sekrit@127.0.0.1:1/orders", "--ingress", "tcp://127.0.0.1:*",
         "--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*"},
        dir.file("out"), dir.file("err"));
    CHECK(p.wait_for(30s).code() == 1);
    INFO("stderr: " << p.err());
    CHECK(p.err().find("cannot start: database postgresql://saga@127.0.0.1:1/orders") != std::string::npos);
    CHECK(p.err().find("sekrit") == std::string::npos);
  }
}
