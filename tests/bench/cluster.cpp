// saga-bench's cluster stage: see cluster.hpp. Each configuration starts its sagad on a fresh
// database (a new SQLite file, or a new schema of the one PostgreSQL), then:
//   * saturated: one sender per sagad, each on its own orders (order.placed then
//     payment.succeeded, each writing follow-on events), `window` events in flight on its
//     connection, for about `seconds`: events acked per second, all sagad together;
//   * paced: the same senders at a fixed total rate that every configuration carries (a fifth of
//     the slowest saturated rate seen, at most 2,000/s): the ack latency's p50 and p99.
// Both are the medians of `runs` runs. Acks on one connection come in request order, so the k-th
// ack answers the k-th event.

#include "cluster.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"

namespace saga::bench {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr std::size_t window = 256;

struct run_result {
  double rate = 0;                   // events/s
  std::vector<double> latencies_ms;  // per acked event
};

// Pre-encoded order events for one sender: placed, then paid, per order.
std::vector<std::string> order_events(const std::string& tag, std::size_t n) {
  std::vector<std::string> out;
  out.reserve(n);
  for (std::size_t i = 0; out.size() < n; ++i) {
    const std::string order = tag + "-" + std::to_string(i);
    out.push_back(saga::encode_event(saga::test::placed(order)));
    if (out.size() < n) out.push_back(saga::encode_event(saga::test::paid(order)));
  }
  return out;
}

// Sends `events` to `ingress`, at most `window` in flight, paced at `rate` events/s when > 0;
// stops sending after `budget` (saturated) and waits for the acks of what it sent.
run_result send(const std::string& ingress, const std::vector<std::string>& events, double rate,
                std::chrono::duration<double> budget) {
  ::zmq::context_t ctx(1);
  ::zmq::socket_t dealer(ctx, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.set(::zmq::sockopt::sndhwm, 0);
  dealer.set(::zmq::sockopt::rcvhwm, 0);
  dealer.connect(ingress);
  std::vector<steady::time_point> sent_at;
  sent_at.reserve(events.size());
  run_result r;
  std::size_t acked = 0;
  const auto start = steady::now();
  const auto stop_sending = start + std::chrono::duration_cast<steady::duration>(budget);
  std::vector<::zmq::message_t> frames;
  const auto due = [&](std::size_t k) {
    return start + std::chrono::duration_cast<steady::duration>(
                       std::chrono::duration<double>(static_cast<double>(k) / rate));
  };
  while (acked < sent_at.size() || (sent_at.size() < events.size() && steady::now() < stop_sending)) {
    const auto now = steady::now();
    while (sent_at.size() < events.size() && now < stop_sending && sent_at.size() - acked < window &&
           (rate <= 0 || due(sent_at.size()) <= now)) {
      sent_at.push_back(steady::now());
      dealer.send(::zmq::const_buffer(), ::zmq::send_flags::sndmore);
      dealer.send(::zmq::buffer(events[sent_at.size() - 1]), ::zmq::send_flags::none);
    }
    auto wait = 50ms;
    if (rate > 0 && sent_at.size() < events.size()) {
      const auto until =
          std::chrono::duration_cast<std::chrono::milliseconds>(due(sent_at.size()) - steady::now());
      wait = std::clamp(until, 0ms, 50ms);
    }
    ::zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, wait);
    while (::zmq::recv_multipart(dealer, std::back_inserter(frames), ::zmq::recv_flags::dontwait)) {
      frames.clear();
      if (acked < sent_at.size()) {
        r.latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(steady::now() - sent_at[acked]).count());
        ++acked;
      }
    }
    if (steady::now() > stop_sending + 60s) throw std::runtime_error("acks missing 60 s after the last send");
  }
  r.rate = static_cast<double>(acked) / std::chrono::duration<double>(steady::now() - start).count();
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<std::size_t>(std::floor(p * static_cast<double>(v.size() - 1)))];
}

struct configuration {
  std::string name;
  std::string short_name;  // for --cluster
  bool postgres;
  int daemons;
};

class throwaway_postgres {
 public:
  throwaway_postgres(const std::string& scratch) : state_(scratch + "/pg.conninfo") {
    ::setenv("SAGA_PG_DURABLE", "1", 1);
    const int rc = std::system(("bash " SAGA_PG_CLUSTER_SCRIPT " start " + state_ + " >&2").c_str());
    ::unsetenv("SAGA_PG_DURABLE");
    if (rc != 0) throw std::runtime_error("tests/support/pg_cluster.sh could not start a PostgreSQL");
    const std::string conninfo = saga::test::read_text(state_);
    // host=DIR port=5432 user=U dbname=D -> postgresql:///D?host=DIR&port=5432&user=U
    auto field = [&](const std::string& key) {
      const auto at = conninfo.find(key + "=");
      if (at == std::string::npos) return std::string();
      const auto from = at + key.size() + 1;
      return conninfo.substr(from, conninfo.find_first_of(" \n", from) - from);
    };
    uri_ = "postgresql:///" + field("dbname") + "?host=" + field("host") + "&port=" + field("port") +
           "&user=" + field("user");
  }
  ~throwaway_postgres() { (void)std::system(("bash " SAGA_PG_CLUSTER_SCRIPT " stop " + state_).c_str()); }
  throwaway_postgres(const throwaway_postgres&) = delete;
  throwaway_postgres& operator=(const throwaway_postgres&) = delete;
  const std::string& uri() const { return uri_; }

 private:
  std::string state_, uri_;
};

// One run of a configuration: its sagad on a fresh database, saturated then paced.
struct one_run {
  double rate = 0;
  double p50 = 0, p99 = 0;
  std::size_t events = 0;
};

one_run run_configuration(const configuration& c, const std::string& sagad, const std::string& scratch,
                          const std::string& pg_uri, double seconds, double paced_rate, int serial) {
  const std::string tag = "c" + std::to_string(serial);
  std::vector<saga::test::started_daemon> daemons;
  for (int i = 0; i < c.daemons; ++i) {
    const std::string n = tag + "-" + std::to_string(i);
    std::vector<std::string> argv{sagad, "--log-level", "warn"};
    if (c.postgres)
      argv.insert(argv.end(), {"--db", pg_uri, "--pg-schema", "bench_" + tag});
    else
      argv.insert(argv.end(), {"--db", scratch + "/" + tag + ".db"});
    daemons.push_back(saga::test::start_daemon(argv, saga::test::endpoints::any_loopback(),
                                               scratch + "/" + n + ".endpoints.json",
                                               scratch + "/" + n + ".out", scratch + "/" + n + ".err", 60s));
    if (!daemons.back()) throw std::runtime_error("sagad did not start: " + daemons.back().error);
  }
  for (auto& d : daemons)
    if (!saga::test::wait_until_ingress_answers(d.ep.ingress, 60s, d.proc.get()))
      throw std::runtime_error("sagad did not answer: " + d.proc->err());

  const auto phase = [&](const std::string& prefix, double rate, std::chrono::duration<double> budget,
                         std::size_t per_sender) {
    std::vector<run_result> results(daemons.size());
    std::vector<std::vector<std::string>> events;
    for (std::size_t i = 0; i < daemons.size(); ++i)
      events.push_back(order_events(prefix + std::to_string(i), per_sender));
    std::vector<std::thread> senders;
    for (std::size_t i = 0; i < daemons.size(); ++i)
      senders.emplace_back([&, i] {
        results[i] =
            send(daemons[i].ep.ingress, events[i], rate / static_cast<double>(daemons.size()), budget);
      });
    for (auto& s : senders) s.join();
    return results;
  };
  one_run out;
  // Saturated: enough events for the budget at any rate this machine reaches (40,000/s a sender).
  const auto saturating = static_cast<std::size_t>(40'000 * seconds);
  for (const auto& r : phase(tag + "-s", 0, std::chrono::duration<double>(seconds), saturating)) {
    out.rate += r.rate;
    out.events += r.latencies_ms.size();
  }
  if (paced_rate > 0) {
    std::vector<double> all;
    const auto per_sender = static_cast<std::size_t>(paced_rate * seconds / c.daemons) + 1;
    for (const auto& r :
         phase(tag + "-p", paced_rate, std::chrono::duration<double>(seconds * 2), per_sender))
      all.insert(all.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    out.p50 = percentile(all, 0.5);
    out.p99 = percentile(all, 0.99);
  }
  for (auto& d : daemons) {
    d.proc->signal(SIGTERM);
    if (d.proc->wait_for(30s).running()) d.proc->kill9();
  }
  return out;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::vector<cluster_figure> measure_cluster(const std::string& sagad, const std::string& scratch,
                                            double seconds, int runs, const std::vector<std::string>& only) {
  std::vector<configuration> configurations;
  for (auto c : {configuration{"sqlite, 1 sagad", "sqlite1", false, 1},
                 configuration{"postgres, 1 sagad", "postgres1", true, 1},
                 configuration{"postgres, 2 sagad", "postgres2", true, 2},
                 configuration{"postgres, 3 sagad", "postgres3", true, 3}})
    if (only.empty() || std::find(only.begin(), only.end(), c.short_name) != only.end())
      configurations.push_back(std::move(c));
  if (configurations.empty())
    throw std::runtime_error("--cluster names none of sqlite1, postgres1, postgres2, postgres3");
  throwaway_postgres pg(scratch);
  int serial = 0;
  // A first saturated round finds the paced rate every configuration carries.
  std::vector<std::vector<one_run>> all(configurations.size());
  double slowest = 0;
  for (std::size_t i = 0; i < configurations.size(); ++i) {
    all[i].push_back(run_configuration(configurations[i], sagad, scratch, pg.uri(), seconds, 0, serial++));
    slowest = slowest == 0 ? all[i].back().rate : std::min(slowest, all[i].back().rate);
  }
  const double paced = std::min(2000.0, std::max(50.0, std::floor(slowest / 5 / 50) * 50));
  std::cerr << "  cluster: paced load " << paced << " events/s\n";
  // Then `runs` rounds of both phases, the configurations interleaved so that a slow moment of
  // the machine does not fall on one configuration only.
  for (auto& v : all) v.clear();
  for (int round = 0; round < runs; ++round)
    for (std::size_t i = 0; i < configurations.size(); ++i)
      all[i].push_back(
          run_configuration(configurations[i], sagad, scratch, pg.uri(), seconds, paced, serial++));

  std::vector<cluster_figure> out;
  for (std::size_t i = 0; i < configurations.size(); ++i) {
    std::vector<double> rates, p50s, p99s;
    std::size_t events = 0;
    for (const auto& r : all[i]) {
      rates.push_back(r.rate);
      p50s.push_back(r.p50);
      p99s.push_back(r.p99);
      events = std::max(events, r.events);
    }
    cluster_figure f;
    f.configuration = configurations[i].name;
    f.events_per_second = median(rates);
    f.ack_p50_ms = median(p50s);
    f.ack_p99_ms = median(p99s);
    f.paced_rate = paced;
    f.events = events;
    const auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
    f.notes =
        (rates.size() == 1 ? std::string("1 run") : "medians of " + std::to_string(rates.size()) + " runs") +
        " (events/s " + fixed(*lo, 0) + "-" + fixed(*hi, 0) + "); ack p50 " + fixed(f.ack_p50_ms, 2) +
        " ms, p99 " + fixed(f.ack_p99_ms, 2) + " ms at " + fixed(paced, 0) + " events/s";
    out.push_back(f);
  }
  return out;
}

wakeup_figure measure_relay_wakeup(const std::string& sagad, const std::string& scratch, std::size_t events) {
  throwaway_postgres pg(scratch);
  std::vector<saga::test::started_daemon> daemons;  // [0] the relay (started first), [1] the other
  for (int i = 0; i < 2; ++i) {
    const std::string n = "wakeup-" + std::to_string(i);
    daemons.push_back(saga::test::start_daemon(
        {sagad, "--log-level", "warn", "--db", pg.uri(), "--pg-schema", "bench_wakeup"},
        saga::test::endpoints::any_loopback(), scratch + "/" + n + ".endpoints.json",
        scratch + "/" + n + ".out", scratch + "/" + n + ".err", 60s));
    if (!daemons.back()) throw std::runtime_error("sagad did not start: " + daemons.back().error);
    if (!saga::test::wait_until_ingress_answers(daemons.back().ep.ingress, 60s, daemons.back().proc.get()))
      throw std::runtime_error("sagad did not answer: " + daemons.back().proc->err());
  }
  ::zmq::context_t ctx(1);
  saga::zmq::subscriber sub(ctx, daemons[0].ep.publish, daemons[0].ep.replay);
  sub.poll(300ms, [](const saga::zmq::delivery&) {});
  saga::zmq::client_options co;
  co.timeout = 20s;
  saga::zmq::client other(ctx, daemons[1].ep.ingress, co);
  std::vector<double> delays;
  for (std::size_t i = 0; i < events; ++i) {
    // 10 to 46 ms apart: the acks fall at every phase of a 50 ms poll
    std::this_thread::sleep_for(std::chrono::milliseconds(10 + (i * 7) % 37));
    const auto a = other.send(saga::test::placed("w-" + std::to_string(i)));
    if (a.status != saga::ack_status::accepted) throw std::runtime_error("wakeup: an event was not accepted");
    const auto acked = steady::now();
    const auto want = static_cast<std::int64_t>(i) + 1;
    while (sub.last_sequence() < want && steady::now() - acked < 10s)
      sub.poll(1ms, [](const saga::zmq::delivery&) {});
    if (sub.last_sequence() < want)
      throw std::runtime_error("wakeup: event " + std::to_string(want) + " was not published within 10 s (" +
                               std::to_string(sub.last_sequence()) + " were); the relay's log: " +
                               daemons[0].proc->err() + "; the other's: " + daemons[1].proc->err());
    delays.push_back(std::chrono::duration<double, std::milli>(steady::now() - acked).count());
  }
  for (auto& d : daemons) {
    d.proc->signal(SIGTERM);
    if (d.proc->wait_for(30s).running()) d.proc->kill9();
  }
  wakeup_figure f;
  f.events = delays.size();
  f.p50_ms = percentile(delays, 0.5);
  f.p90_ms = percentile(delays, 0.9);
  f.p99_ms = percentile(delays, 0.99);
  f.max_ms = delays.empty() ? 0 : *std::max_element(delays.begin(), delays.end());
  return f;
}

}  // namespace saga::bench
