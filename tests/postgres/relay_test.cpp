// Issue 17, item 4: one relay at a time numbers the outbox of a PostgreSQL schema, elected through
// the lease row and fenced by its epoch inside the numbering transaction (docs/postgres.md, "One
// relay numbers the log"). Every relay publishes what is numbered; only the lease holder numbers.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "saga/clock.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/postgres/store.hpp"
#include "store/records.hpp"
#include "support/postgres.hpp"

namespace {

using namespace std::chrono_literals;

// Remembers what it was given to publish.
struct recording_publisher : saga::publisher {
  std::vector<std::int64_t> sequences;
  void publish(const saga::outbox_record& r) override { sequences.push_back(r.sequence); }
};

// A relay on a store of its own, with its log lines kept.
struct relay_under_test {
  relay_under_test(const saga::postgres::options& o, std::int64_t lease_ms) : store(o) {
    saga::relay_options ro;
    ro.lease_ms = lease_ms;
    ro.log = [this](std::string_view m, bool) {
      std::lock_guard<std::mutex> lock(mutex);
      lines.emplace_back(m);
    };
    relay = std::make_unique<saga::outbox_relay>(store, published, clock, ro);
  }
  bool said(const std::string& part) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& l : lines)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }

  saga::postgres::store store;
  saga::system_clock clock;
  recording_publisher published;
  std::mutex mutex;
  std::vector<std::string> lines;
  std::unique_ptr<saga::outbox_relay> relay;
};

void append(saga::postgres::store& s, const std::string& prefix, int from, int to) {
  for (int i = from; i < to; ++i) {
    s.begin();
    s.append_outbox(saga::test::outbox(prefix + std::to_string(i), prefix + std::to_string(i)));
    s.commit();
  }
}

}  // namespace

TEST_SUITE("postgres relay") {
  TEST_CASE("two relays contending for the lease: one numbers the whole log and the other none of it") {
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("relays");
    saga::postgres::store writer(o);
    relay_under_test a(o, 60'000), b(o, 60'000);
    saga::test::sql_session sql(o.conninfo, o.schema);
    std::atomic<bool> finished{false};
    const auto run = [&](relay_under_test& r) {
      return std::thread([&] {
        while (!finished) {
          r.relay->drain();
          std::this_thread::sleep_for(2ms);
        }
      });
    };
    auto ta = run(a), tb = run(b);
    append(writer, "r-", 0, 2000);
    // Everything numbered and published (the cluster's horizon may hold it back for a moment).
    for (int i = 0; i < 600 && sql.scalar("SELECT count(*) FROM outbox WHERE published_ms IS NULL") != "0";
         ++i)
      std::this_thread::sleep_for(50ms);
    finished = true;
    ta.join();
    tb.join();
    CHECK(a.relay->numbering() != b.relay->numbering());  // exactly one holds the lease
    CHECK(a.said("numbers the outbox now") != b.said("numbers the outbox now"));
    CHECK(sql.scalar("SELECT count(*) FROM outbox WHERE sequence IS NULL") == "0");
    CHECK(sql.scalar("SELECT count(DISTINCT sequence) FROM outbox") == "2000");
    CHECK(sql.scalar("SELECT max(sequence) FROM outbox") == "2000");
    CHECK(sql.scalar("SELECT epoch FROM relay") == "1");  // never taken over
    // The holder stopping hands the lease back: the other takes it at once, not a minute later.
    auto& holder = a.relay->numbering() ? a : b;
    auto& other = a.relay->numbering() ? b : a;
    holder.relay->release();
    CHECK_FALSE(holder.relay->numbering());
    CHECK(other.store.claim_relay("the other", 60'000) == 2);
    // Both published what they found numbered and unpublished, each in order; together, the
    // whole log (a subscriber on both drops what it has).
    std::vector<bool> seen(2001, false);
    for (auto* r : {&a, &b}) {
      const auto& mine = r->published.sequences;
      CHECK(std::is_sorted(mine.begin(), mine.end()));
      for (const auto q : mine)
        if (q >= 1 && q <= 2000) seen[static_cast<std::size_t>(q)] = true;
    }
    CHECK(std::count(seen.begin() + 1, seen.end(), true) == 2000);
  }

  // Issue 17 ("Zombie"), for the relay: relay A stops (SIGSTOP, a pause) holding the lease; once the
  // lease has expired, relay B takes it over (a new epoch) and numbers. A, woken, tries to number
  // with its old epoch: the fence in its numbering transaction fails, it numbers nothing, says so,
  // and goes on publishing what B numbers.
  TEST_CASE("a paused relay whose lease was taken over numbers nothing afterwards and says so") {
    saga::postgres::options o;
    o.conninfo = saga::test::postgres_conninfo();
    o.schema = saga::test::unique_schema("fenced");
    saga::postgres::store writer(o);
    saga::test::sql_session sql(o.conninfo, o.schema);
    relay_under_test a(o, 300), b(o, 300);
    const auto numbered = [&] {
      return sql.scalar("SELECT count(*) FROM outbox WHERE sequence IS NOT NULL");
    };
    const auto drain_until = [&](relay_under_test& r, const std::string& expected) {
      for (int i = 0; i < 500 && numbered() != expected; ++i) {
        r.relay->drain();
        if (numbered() != expected) std::this_thread::sleep_for(20ms);
      }
      return numbered();
    };
    append(writer, "a-", 0, 10);
    CHECK(drain_until(a, "10") == "10");
    REQUIRE(a.relay->numbering());
    b.relay->drain();
    CHECK_FALSE(b.relay->numbering());  // A's lease is current

    std::this_thread::sleep_for(600ms);  // A is paused past its lease
    append(writer, "b-", 0, 10);
    CHECK(drain_until(b, "20") == "20");
    CHECK(b.relay->numbering());
    CHECK(sql.scalar("SELECT epoch FROM relay") == "2");

    append(writer, "late-", 0, 10);
    a.relay->drain();  // woken: its numbering transaction is fenced
    CHECK(numbered() == "20");
    CHECK_FALSE(a.relay->numbering());
    CHECK(a.said("lease epoch 1 was taken over by another relay"));
    CHECK(a.store.number_outbox(1, 300, 100) == -1);  // the fence itself, at the store
    CHECK(numbered() == "20");
    std::int64_t by_b = 0;  // B numbers (and does not publish yet)
    for (int i = 0; i < 500 && by_b < 10; ++i) {
      by_b += b.store.number_outbox(2, 300, 100);
      if (by_b < 10) std::this_thread::sleep_for(20ms);
    }
    CHECK(by_b == 10);
    CHECK(numbered() == "30");
    a.relay->drain();  // A publishes what B numbered
    REQUIRE_FALSE(a.published.sequences.empty());
    CHECK(a.published.sequences.back() == 30);
    CHECK(sql.scalar("SELECT count(DISTINCT sequence) FROM outbox") == "30");
    CHECK(sql.scalar("SELECT max(sequence) FROM outbox") == "30");
  }
}
