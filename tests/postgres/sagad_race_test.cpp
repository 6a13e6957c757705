// Issue 17, "Race", with processes: three sagad on one PostgreSQL schema, every event delivered to
// all three (one client per sagad, each in its own shuffled order, pipelined), so that events of
// one saga reach different sagad at the same moment. Each saga (account_lockout: every successful
// login after the first is a transition of its own, a version and a history row) ends at version
// 20 with history versions 1..20 in order, one inbox row per event, every event applied once by
// one sagad and found a duplicate by the two others. (race_test.cpp runs the same race between
// engines of one process; this one adds sagad's batching, committer and ingress.) `make test`:
// 1,000 sagas × 20 events, the size (about 8 s on 2 cores); `make torture` (SAGA_PG_TORTURE): 5,000
// × 20.

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;

constexpr int per_saga = 20, daemons = 3;

int sagas() {
  return std::getenv("SAGA_PG_TORTURE") != nullptr ? 5000 : 1000;
}

saga::event login(int account, int n) {
  saga::event e;
  e.id = "l" + std::to_string(account) + "-" + std::to_string(n);
  e.source = "urn:race";
  e.type = "auth.login.succeeded";
  e.subject = "acct-" + std::to_string(account);
  return e;
}

}  // namespace

TEST_SUITE("postgres sagad race") {
  TEST_CASE("three sagad given every event apply each once and every saga ends at version 20 in order") {
    const int n = sagas();
    saga::test::temp_dir dir;
    const auto db = saga::test::postgres_uri(saga::test::postgres_conninfo());
    const auto schema = saga::test::unique_schema("sagad_race");
    std::vector<saga::test::started_daemon> sagad;
    for (int i = 0; i < daemons; ++i) {
      const auto tag = std::to_string(i);
      sagad.push_back(saga::test::start_daemon(
          {SAGAD_PATH, "--db", db, "--pg-schema", schema, "--log-level", "warn", "--definitions",
           "account_lockout"},
          saga::test::endpoints::any_loopback(), dir.file("endpoints" + tag + ".json"),
          dir.file("sagad" + tag + ".out"), dir.file("sagad" + tag + ".err")));
      REQUIRE_MESSAGE(sagad.back(), sagad.back().error);
    }
    std::vector<saga::event> events;
    for (int a = 0; a < n; ++a)
      for (int k = 0; k < per_saga; ++k) events.push_back(login(a, k));

    const auto started = std::chrono::steady_clock::now();
    std::vector<std::vector<saga::ack>> acks(daemons);
    std::vector<std::thread> clients;
    for (int i = 0; i < daemons; ++i) {
      clients.emplace_back([&, i] {
        auto mine = events;
        std::mt19937 shuffle(static_cast<unsigned>(1000 + i));
        std::shuffle(mine.begin(), mine.end(), shuffle);
        ::zmq::context_t ctx(1);
        saga::zmq::client_options co;
        co.window = 200;
        co.timeout = 30s;
        saga::zmq::client c(ctx, sagad[static_cast<std::size_t>(i)].ep.ingress, co);
        acks[static_cast<std::size_t>(i)] = c.send_all(mine);
      });
    }
    for (auto& c : clients) c.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    MESSAGE(daemons << " sagad, " << events.size() << " events each: " << seconds << " s");

    int accepted = 0, duplicate = 0, other = 0;
    for (const auto& list : acks)
      for (const auto& a : list) {
        accepted += a.status == saga::ack_status::accepted;
        duplicate += a.status == saga::ack_status::duplicate;
        other += a.status != saga::ack_status::accepted && a.status != saga::ack_status::duplicate;
      }
    const auto total = static_cast<int>(events.size());
    CHECK(other == 0);
    CHECK(accepted == total);  // each event applied by exactly one sagad
    CHECK(duplicate == (daemons - 1) * total);

    saga::test::sql_session sql(saga::test::postgres_conninfo(), schema);
    CHECK(sql.scalar("SELECT count(*) FROM instances") == std::to_string(n));
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE version = " + std::to_string(per_saga)) ==
          std::to_string(n));
    CHECK(sql.scalar("SELECT count(*) FROM inbox") == std::to_string(total));
    CHECK(sql.scalar("SELECT count(*) FROM history") == std::to_string(total));
    CHECK(sql.scalar("SELECT count(DISTINCT (event_source, event_id)) FROM history") ==
          std::to_string(total));
    // Each saga's history in id (commit) order is versions 1..20, each once.
    CHECK(sql.scalar(
              "SELECT count(*) FROM (SELECT key, array_agg(version ORDER BY id) AS v FROM history GROUP BY "
              "key) s WHERE v <> (SELECT array_agg(g::bigint ORDER BY g) FROM generate_series(1, " +
              std::to_string(per_saga) + ") g)") == "0");
    CHECK(sql.scalar("SELECT count(*) FROM dead_letters") == "0");

    for (auto& d : sagad) {
      REQUIRE(d.proc->signal(SIGTERM));
      INFO("sagad stderr: " << d.proc->err());
      CHECK(d.proc->wait_for(30s).code() == 0);
    }
  }
}
