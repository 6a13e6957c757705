// Issue 17, item 2 ("Race"): several engines, each on its own connection to one PostgreSQL
// schema, every event delivered to all of them, each engine in its own random order, so that
// different events of one saga reach different engines at the same moment. Per-saga locks
// (store::lock_sagas) make them take turns, each seeing the other's effect: every saga ends at
// version 20 with history versions 1..20 once each, one inbox row per event, every event applied
// once (the other engines' copies are duplicates), and no batch ever fails on a conflict. Without
// the locks two engines apply two events to the same version (lost updates) or collide on the
// inbox.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "saga/clock.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/engine.hpp"
#include "saga/postgres/store.hpp"
#include "store/records.hpp"
#include "support/postgres.hpp"

namespace {

constexpr int sagas = 300, per_saga = 20, engines = 3;

// auth.login.succeeded: the first opens the account, each later one is a transition of its own
// (a version and a history row), so the order they were applied in is visible.
saga::event login(int account, int n) {
  saga::event e;
  e.id = "a" + std::to_string(account) + "-" + std::to_string(n);
  e.source = "urn:race";
  e.type = "auth.login.succeeded";
  e.subject = "acct-" + std::to_string(account);
  return e;
}

saga::event failed_login(int account, int n) {
  saga::event e = login(account, n);
  e.id = "f" + std::to_string(account) + "-" + std::to_string(n);
  e.type = "auth.login.failed";
  return e;
}

}  // namespace

TEST_SUITE("postgres race") {
  // Issue 17, item 2 ("Zombie"), at the store: a writer that stalls in the middle of a batch while
  // holding a saga's lock loses its transaction after stall_timeout_ms; the writer waiting for
  // the saga goes on, and the stalled writer's commit fails instead of overwriting what the
  // other wrote. Its next transaction works (a new connection).
  TEST_CASE("a writer stalled past stall_timeout commits nothing and the other writer goes on") {
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("zombie");
    o.stall_timeout_ms = 300;
    saga::postgres::store zombie(o), other(o);
    saga::instance_record r;
    r.definition = "account_lockout";
    r.key = "acct-z";
    r.state = "open";
    r.data = "{}";
    r.version = 1;
    r.fingerprint = "fp";
    zombie.begin();
    zombie.lock_sagas({"acct-z"});
    zombie.save_instance(r);  // then it stalls (SIGSTOP, a long pause) holding the lock
    std::thread waiting([&] {
      other.begin();
      other.lock_sagas({"acct-z"});  // waits until the server ends the stalled transaction
      auto mine = r;
      mine.state = "locked";
      other.save_instance(mine);
      other.commit();
    });
    waiting.join();  // returns only once the zombie's lock is gone
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK_THROWS_AS(zombie.commit(), saga::store_error);  // woken up: its commit does not land
    zombie.rollback();
    REQUIRE(other.load_instance("account_lockout", "acct-z"));
    CHECK(other.load_instance("account_lockout", "acct-z")->state == "locked");
    // The zombie's next transaction is on a new connection and sees the other's write.
    zombie.begin();
    CHECK(zombie.load_instance("account_lockout", "acct-z")->state == "locked");
    zombie.rollback();
  }

  // Issue 17 ("Out-of-order commit"), item 4: writers never wait for each other's sequence (the
  // relay numbers after the commit), but the relay numbers nothing past a transaction still in
  // flight (the xid horizon), so that it can never be skipped: a thousand later writers commit
  // while one transaction holds an outbox row open, and nothing is numbered until it ends. Rolled
  // back, it leaves no gap (the thousand are 1..1000 in commit order); committed, it comes first,
  // in its place in xid order, before the rows committed while it was open.
  TEST_CASE("later outbox writers commit past an open one and nothing is numbered past it until it ends") {
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("order");
    saga::postgres::store slow(o), others(o), relay(o);
    saga::test::sql_session sql(o.conninfo, o.schema);
    const auto row = [](const std::string& id) { return saga::test::outbox(id, id); };
    const auto epoch = relay.claim_relay("relay", 60'000);
    REQUIRE(epoch > 0);
    // Transactions of other tests on the cluster (the horizon is the cluster's) may hold the
    // numbering back for a moment: number until `expected` rows are, for at most 10 s.
    const auto number_until = [&](std::int64_t expected) {
      std::int64_t total = 0;
      for (int i = 0; i < 200 && total < expected; ++i) {
        const auto n = relay.number_outbox(epoch, 60'000, 100'000);
        REQUIRE(n >= 0);
        total += n;
        if (total < expected) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return total;
    };
    const auto numbered = [&] {
      return sql.scalar("SELECT count(*) FROM outbox WHERE sequence IS NOT NULL");
    };
    const auto write_later = [&](const std::string& prefix, int n, std::atomic<int>& committed) {
      return std::thread([&, prefix, n] {
        for (int i = 0; i < n; ++i) {
          others.begin();
          others.append_outbox(row(prefix + std::to_string(i)));
          others.commit();
          ++committed;
        }
      });
    };

    slow.begin();
    slow.append_outbox(row("slow"));
    std::atomic<int> committed{0};
    const auto started = std::chrono::steady_clock::now();
    auto later = write_later("later-", 1000, committed);
    later.join();  // nobody waits for the open transaction
    MESSAGE(
        "1000 outbox writers committed past an open one in "
        << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
               .count()
        << " ms");
    CHECK(committed.load() == 1000);
    CHECK(relay.number_outbox(epoch, 60'000, 100'000) == 0);  // all of them after the open one
    std::this_thread::sleep_for(std::chrono::seconds(1));
    CHECK(relay.number_outbox(epoch, 60'000, 100'000) == 0);
    CHECK(numbered() == "0");
    slow.rollback();
    CHECK(number_until(1000) == 1000);
    CHECK(sql.scalar("SELECT count(*) FROM outbox") == "1000");
    CHECK(sql.scalar("SELECT min(sequence) FROM outbox") == "1");
    CHECK(sql.scalar("SELECT max(sequence) FROM outbox") == "1000");
    // In commit order: later-i got sequence i + 1.
    CHECK(sql.scalar("SELECT count(*) FROM outbox WHERE event_id <> 'later-' || (sequence - 1)") == "0");

    // Committed rather than rolled back, the open one is numbered first: nothing went past it.
    slow.begin();
    slow.append_outbox(row("slow"));
    std::atomic<int> committed_again{0};
    auto again = write_later("again-", 100, committed_again);
    again.join();
    CHECK(committed_again.load() == 100);
    CHECK(relay.number_outbox(epoch, 60'000, 100'000) == 0);
    slow.commit();
    CHECK(number_until(101) == 101);
    CHECK(sql.scalar("SELECT sequence FROM outbox WHERE event_id = 'slow'") == "1001");
    CHECK(sql.scalar("SELECT count(*) FROM outbox WHERE event_id LIKE 'again-%'"
                     " AND event_id <> 'again-' || (sequence - 1002)") == "0");
    CHECK(sql.scalar("SELECT count(DISTINCT sequence) FROM outbox") == "1101");
    CHECK(sql.scalar("SELECT max(sequence) FROM outbox") == "1101");
  }

  // Issue 17, item 3: timers armed by an engine that is gone fire once across the engines left,
  // each claiming the due timers of sagas no other engine holds (store::try_lock_sagas).
  TEST_CASE("timers armed by a departed engine fire exactly once across two engines firing at once") {
    constexpr int accounts = 400;
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("timers");
    const std::int64_t start = 1'767'225'600'000;
    {
      saga::postgres::store store(o);
      saga::manual_clock clock(start);
      saga::engine engine(store, clock);
      engine.add(saga::definitions::account_lockout());
      std::vector<saga::event> failures;  // three failed logins lock an account for 30 minutes
      for (int a = 0; a < accounts; ++a)
        for (int n = 0; n < 3; ++n) failures.push_back(failed_login(a, n));
      for (std::size_t i = 0; i < failures.size(); i += 100)
        engine.handle_batch(std::span<const saga::event>(failures.data() + i,
                                                         std::min<std::size_t>(100, failures.size() - i)));
    }  // the engine that armed them is gone
    std::atomic<int> accepted{0}, duplicates{0}, errors{0};
    std::vector<std::thread> firing;
    for (int t = 0; t < 2; ++t) {
      firing.emplace_back([&] {
        saga::postgres::store store(o);
        saga::manual_clock clock(start + 31 * 60'000);
        saga::engine engine(store, clock);
        engine.add(saga::definitions::account_lockout());
        for (int idle = 0; idle < 3;) {
          try {
            const auto fired = engine.fire_due_timers(clock.now_ms(), 16);
            idle = fired.empty() ? idle + 1 : 0;
            for (const auto& f : fired) {
              if (f.ack.status == saga::ack_status::accepted) ++accepted;
              if (f.ack.status == saga::ack_status::duplicate) ++duplicates;
            }
          } catch (const saga::store_error&) {
            ++errors;
          }
        }
      });
    }
    for (auto& th : firing) th.join();
    CHECK(errors == 0);
    CHECK(accepted == accounts);
    CHECK(duplicates == 0);  // claimed, not fired twice and found a duplicate
    saga::test::sql_session sql(o.conninfo, o.schema);
    CHECK(sql.scalar("SELECT count(*) FROM outbox WHERE type = 'account.unlocked'") ==
          std::to_string(accounts));
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE state <> 'open'") == "0");
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE next_due_ms IS NOT NULL") == "0");
  }

  TEST_CASE("three engines on one schema given every event each apply each event once in order") {
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("race");
    // Every engine gets every event, each engine in its own shuffled order, in batches of its own
    // size.
    std::atomic<int> accepted{0}, duplicates{0}, rejected{0}, retries{0};
    std::vector<std::thread> threads;
    { saga::postgres::store create(o); }  // the schema, migrated once before the race
    for (int t = 0; t < engines; ++t) {
      threads.emplace_back([&, t] {
        saga::postgres::store store(o);
        saga::manual_clock clock;
        saga::engine engine(store, clock);
        engine.add(saga::definitions::account_lockout());
        std::vector<saga::event> all;
        for (int account = 0; account < sagas; ++account)
          for (int n = 0; n < per_saga; ++n) all.push_back(login(account, n));
        std::mt19937 random(static_cast<unsigned>(t) * 7919u + 1u);
        std::shuffle(all.begin(), all.end(), random);
        const std::size_t batch = 16u + static_cast<std::size_t>(t) * 23u;
        for (std::size_t i = 0; i < all.size(); i += batch) {
          const auto k = std::min(batch, all.size() - i);
          for (;;) {
            try {
              for (const auto& a : engine.handle_batch(std::span<const saga::event>(all.data() + i, k))) {
                if (a.status == saga::ack_status::accepted) ++accepted;
                if (a.status == saga::ack_status::duplicate) ++duplicates;
                if (a.status == saga::ack_status::rejected) ++rejected;
              }
              break;
            } catch (const saga::store_error&) {
              ++retries;  // e.g. two engines inserting one inbox row: the loser hands its batch in again
            }
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(rejected == 0);
    CHECK(retries == 0);                  // the locks leave no conflict to fail on
    CHECK(accepted == sagas * per_saga);  // each event applied by exactly one engine
    CHECK(duplicates == (engines - 1) * sagas * per_saga);

    saga::test::sql_session sql(o.conninfo, o.schema);
    CHECK(sql.scalar("SELECT count(*) FROM instances") == std::to_string(sagas));
    CHECK(sql.scalar("SELECT count(*) FROM instances WHERE version <> " + std::to_string(per_saga)) == "0");
    CHECK(sql.scalar("SELECT count(*) FROM inbox") == std::to_string(sagas * per_saga));
    CHECK(sql.scalar("SELECT count(*) FROM history") == std::to_string(sagas * per_saga));
    // History 1..20 per saga, each version once, each of the saga's events once.
    CHECK(sql.scalar("SELECT count(*) FROM (SELECT key, version FROM history GROUP BY key, version"
                     " HAVING count(*) > 1) AS twice") == "0");
    CHECK(sql.scalar("SELECT count(*) FROM history WHERE version NOT BETWEEN 1 AND " +
                     std::to_string(per_saga)) == "0");
    CHECK(sql.scalar("SELECT count(DISTINCT event_id) FROM history") == std::to_string(sagas * per_saga));
    CHECK(sql.scalar("SELECT count(*) FROM history WHERE event_id NOT LIKE 'a' || substr(key, 6) || '-%'") ==
          "0");
  }
}
