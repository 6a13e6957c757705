// sagad --metrics (issue 16, item 1): /metrics scraped every 100 ms while 20,000 events go
// through; every scrape is well-formed text exposition (checked line by line here, and the last
// one by Prometheus' own parser, python3-prometheus-client) and its counters never go back; at
// the end the counters equal what the test sent, and the database gauges equal what the
// database holds and what `sagactl stats --json` says. /healthz answers 200 while sagad runs.

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "saga/zmq/curve.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// One exposition: sample values by their full name with labels ("name{a=\"b\"}"), and what was
// wrong with its lines.
struct exposition {
  std::map<std::string, double> samples;
  std::vector<std::string> errors;

  double at(const std::string& series) const {
    const auto it = samples.find(series);
    return it == samples.end() ? std::nan("") : it->second;
  }
  // The sum of the samples of a family (every label combination).
  double total(const std::string& name) const {
    double sum = 0;
    for (const auto& [series, v] : samples)
      if (series == name || series.starts_with(name + "{")) sum += v;
    return sum;
  }
};

// Text format 0.0.4, strictly: comment lines are HELP or TYPE of a valid name, TYPE one of the
// five types and given once per family, before its samples; a sample is name, optional labels
// with quoted escaped values, and a number.
exposition parse(const std::string& text) {
  static const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  static const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*)?\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$)");
  static const std::regex type_value("^(counter|gauge|histogram|summary|untyped)$");
  exposition e;
  std::map<std::string, std::string> types;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, comment)) {
      if (m[1] == "TYPE") {
        if (!std::regex_match(m[3].str(), type_value)) e.errors.push_back("bad type: " + line);
        if (!types.emplace(m[2], m[3]).second) e.errors.push_back("TYPE twice: " + line);
      }
    } else if (std::regex_match(line, m, sample)) {
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!types.count(family) && family.ends_with(suffix))
          family.resize(family.size() - std::strlen(suffix));
      if (!types.count(family)) e.errors.push_back("sample before its TYPE: " + line);
      if (!e.samples
               .emplace(m[1].str() + m[2].str(),
                        std::stod(m.str(m.size() - 1) == "+Inf" ? "inf" : m.str(m.size() - 1)))
               .second)
        e.errors.push_back("sample twice: " + line);
    } else {
      e.errors.push_back("not a valid line: '" + line + "'");
    }
  }
  if (!text.ends_with("\n")) e.errors.push_back("no final newline");
  return e;
}

// A histogram's buckets only grow with `le`, and +Inf is its count.
void check_histogram(const exposition& e, const std::string& name) {
  CAPTURE(name);
  double last = 0;
  for (const char* le : {"0.0005", "0.001", "1", "1024", "65536", "10"}) {
    const double v = e.at(name + "_bucket{le=\"" + le + "\"}");
    if (!std::isnan(v)) CHECK(v >= 0);
  }
  std::vector<std::pair<double, double>> buckets;
  for (const auto& [series, v] : e.samples)
    if (series.starts_with(name + "_bucket{le=\"")) {
      const auto le = series.substr(name.size() + 12, series.size() - name.size() - 14);
      buckets.emplace_back(le == "+Inf" ? INFINITY : std::stod(le), v);
    }
  std::sort(buckets.begin(), buckets.end());
  REQUIRE_FALSE(buckets.empty());
  for (const auto& [le, v] : buckets) {
    CHECK(v >= last);
    last = v;
  }
  CHECK(std::isinf(buckets.back().first));
  CHECK(buckets.back().second == e.at(name + "_count"));
}

saga::event unknown_type(int i) {
  saga::event e = saga::test::placed("x-" + std::to_string(i));
  e.id = "bogus-" + std::to_string(i);
  e.type = "order.bogus";
  return e;
}

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("metrics scraped under load are well-formed and end equal to what was sent and stored") {
    saga::test::temp_dir dir;
    const auto db = dir.file("saga.db");
    auto d = saga::test::start_daemon(
        {SAGAD_PATH, "--db", db, "--metrics", "127.0.0.1:0", "--metrics-refresh", "100ms"},
        saga::test::endpoints::any_loopback(), dir.file("endpoints.json"), dir.file("sagad.out"),
        dir.file("sagad.err"));
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());
    const std::string url = json::parse(std::ifstream(dir.file("endpoints.json"))).at("metrics");
    REQUIRE(url.starts_with("http://127.0.0.1:"));
    httplib::Client http(url);

    // The scraper: every 100 ms; every scrape well-formed, no counter going back.
    std::atomic<bool> done{false};
    std::vector<std::string> problems;
    int scrapes = 0;
    std::thread scraper([&] {
      std::map<std::string, double> seen;
      while (!done.load()) {
        const auto res = http.Get("/metrics");
        if (!res || res->status != 200) {
          problems.push_back("scrape failed");
        } else {
          ++scrapes;
          if (res->get_header_value("Content-Type").find("text/plain; version=0.0.4") != 0)
            problems.push_back("content type " + res->get_header_value("Content-Type"));
          const auto e = parse(res->body);
          problems.insert(problems.end(), e.errors.begin(), e.errors.end());
          for (const auto& [series, v] : e.samples) {
            const bool monotonic = series.find("_total") != std::string::npos ||
                                   series.find("_bucket") != std::string::npos ||
                                   series.ends_with("_count") || series.ends_with("_sum");
            if (monotonic && seen.count(series) && v < seen[series])
              problems.push_back(series + " went back from " + std::to_string(seen[series]));
            seen[series] = v;
          }
        }
        std::this_thread::sleep_for(100ms);
      }
    });

    // 20,000 events: 9,500 orders placed and paid, 1,000 of a type nobody consumes.
    constexpr int orders = 9'500, bogus = 1'000;
    std::vector<saga::event> placed, payments, rejected;
    for (int i = 0; i < orders; ++i) {
      placed.push_back(saga::test::placed("o-" + std::to_string(i)));
      payments.push_back(saga::test::paid("o-" + std::to_string(i)));
    }
    for (int i = 0; i < bogus; ++i) rejected.push_back(unknown_type(i));
    {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options co;
      co.window = 500;
      co.timeout = 30s;
      saga::zmq::client c(ctx, d.ep.ingress, co);
      for (const auto* batch : {&placed, &rejected, &payments})
        for (const auto& a : c.send_all(*batch))
          REQUIRE(a.status == (batch == &rejected ? saga::ack_status::rejected : saga::ack_status::accepted));
    }
    std::this_thread::sleep_for(300ms);  // past --metrics-refresh: the database gauges are new
    done = true;
    scraper.join();
    CHECK(scrapes >= 5);
    for (const auto& p : problems) FAIL_CHECK(p);

    // The peers gauge is counted once a second: a run faster than that may end before the first
    // count after its requests, so wait for it (at most 5 s) rather than for a fixed time.
    std::string body;
    for (int i = 0; i < 50; ++i) {
      const auto res = http.Get("/metrics");
      REQUIRE(res);
      body = res->body;
      if (parse(body).at(R"(saga_ingress_peers{key="plaintext"})") == 1) break;
      std::this_thread::sleep_for(100ms);
    }
    const auto e = parse(body);
    CHECK(e.errors.empty());
    CHECK(e.at(R"(saga_events_total{type="order.placed",status="accepted",outcome="transitioned"})") ==
          orders);
    CHECK(e.at(R"(saga_events_total{type="payment.succeeded",status="accepted",outcome="transitioned"})") ==
          orders);
    CHECK(e.at(R"(saga_events_total{type="other",status="rejected",outcome="none"})") == bogus);
    CHECK(e.total("saga_events_total") == 2 * orders + bogus);
    CHECK(e.at(R"(saga_rejections_total{reason="envelope"})") == bogus);
    CHECK(e.total("saga_rejections_total") == bogus);
    CHECK(e.at("saga_batch_size_sum") == 2 * orders + bogus);
    for (const char* h : {"saga_batch_size", "saga_commit_duration_seconds", "saga_ack_latency_seconds",
                          "saga_log_sync_duration_seconds"})
      check_histogram(e, h);
    CHECK(e.at("saga_log_sync_duration_seconds_count") >= 1);  // SQLite at FULL: synced on its thread
    CHECK(e.at("saga_failed_commits_total") == 0);
    CHECK(e.at(R"(saga_ingress_peers{key="plaintext"})") == 1);  // the test's one client
    CHECK(e.at("saga_outbox_lag") == 0);
    CHECK(e.at("saga_outbox_last_published_sequence") == e.at("saga_outbox_last_committed_sequence"));

    // The database gauges: what the database holds, and what sagactl stats says.
    SQLite::Database sql(db, SQLite::OPEN_READONLY);
    CHECK(e.at("saga_outbox_last_published_sequence") ==
          sql.execAndGet("SELECT max(sequence) FROM outbox").getInt64());
    const auto stats = saga::test::run_to_end(dir, {SAGACTL_PATH, "--db", db, "stats", "--json"});
    REQUIRE(stats.status.code() == 0);
    const auto s = json::parse(stats.out);
    double sagas = 0;
    for (const auto& item : s.at("instances").at("order_lifecycle").items()) {
      const std::string state = item.key();  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const auto& n = item.value();
      CAPTURE(state);
      CHECK(e.at(R"(saga_sagas{definition="order_lifecycle",state=")" + state + "\"}") == n.get<double>());
      sagas += n.get<double>();
    }
    CHECK(sagas == orders);
    CHECK(e.total("saga_sagas") == s.at("sagas").get<double>());
    CHECK(e.at("saga_dead_letters") == s.at("dead_letters").get<double>());
    CHECK(e.at("saga_dead_letters") == sql.execAndGet("SELECT count(*) FROM dead_letters").getInt64());
    CHECK(e.at("saga_armed_timers") == s.at("armed_timers").get<double>());
    CHECK(e.at("saga_parked_events") == s.at("parked").get<double>());
    CHECK(e.at("saga_inbox_rows") == s.at("inbox").get<double>());
    CHECK(e.at("saga_outbox_rows") == s.at("outbox").get<double>());

    // Prometheus' own parser takes the whole exposition.
    {
      std::ofstream(dir.file("metrics.txt")) << body;
      const auto py = saga::test::run_to_end(
          dir, {SAGA_SYSTEM_PYTHON, "-c",
                "import sys\nfrom prometheus_client.parser import text_string_to_metric_families\n"
                "families = list(text_string_to_metric_families(open(sys.argv[1]).read()))\n"
                "assert len(families) >= 20, len(families)\nprint(len(families))",
                dir.file("metrics.txt")});
      INFO("python: " << py.out << py.err);
      CHECK(py.status.code() == 0);
    }

    // A request body is not read: one of 1 MiB is refused, and sagad serves on.
    const auto big = http.Post("/metrics", std::string(1 << 20, 'x'), "text/plain");
    REQUIRE(big);
    CHECK(big->status == 413);
    const auto health = http.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(health->body == "ok\n");
    // The port is this sagad's alone: a second one asking for it is refused (cpp-httplib would
    // share it through SO_REUSEPORT and split the scrapes between the two).
    const auto port = url.substr(url.rfind(':') + 1);
    const auto second = saga::test::run_to_end(
        dir, {SAGAD_PATH, "--db", dir.file("other.db"), "--metrics", "127.0.0.1:" + port, "--ingress",
              "tcp://127.0.0.1:*", "--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*"});
    CHECK(second.status.code() == 1);
    CHECK(second.err.find("--metrics: cannot bind 127.0.0.1:" + port) != std::string::npos);

    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(d.proc->wait_for(30s).code() == 0);
  }

  // With CURVE, the connections active in the last minute are counted by their key's name.
  TEST_CASE("metrics count the active ingress connections by CURVE key name") {
    saga::test::temp_dir dir;
    const auto server = saga::zmq::generate_curve_key_pair();
    saga::zmq::write_key_files(dir.file("sagad"), server);
    {
      std::ofstream grants(dir.file("authorized_keys"));
      for (const std::string name : {"alice", "bob"}) {
        saga::zmq::write_key_files(dir.file(name), saga::zmq::generate_curve_key_pair());
        grants << dir.file(name + ".key") << " " << name << " sources=* types=* roles=operator\n";
      }
    }
    auto d = saga::test::start_daemon(
        {SAGAD_PATH, "--db", dir.file("saga.db"), "--metrics", "127.0.0.1:0", "--curve-secret",
         dir.file("sagad.key_secret"), "--authorized-keys", dir.file("authorized_keys")},
        saga::test::endpoints::any_loopback(), dir.file("endpoints.json"), dir.file("sagad.out"),
        dir.file("sagad.err"));
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());
    const std::string url = json::parse(std::ifstream(dir.file("endpoints.json"))).at("metrics");

    // alice on one connection, bob on two: one event each.
    std::vector<std::unique_ptr<::zmq::context_t>> contexts;  // one each, as separate services have
    std::vector<std::unique_ptr<saga::zmq::client>> clients;
    int n = 0;
    for (const std::string name : {"alice", "bob", "bob"}) {
      auto& ctx = *contexts.emplace_back(std::make_unique<::zmq::context_t>(1));
      saga::zmq::client_options co;
      co.timeout = 10s;
      co.curve = {server.public_key, saga::zmq::read_key_file(dir.file(name + ".key_secret"), true)};
      clients.push_back(std::make_unique<saga::zmq::client>(ctx, d.ep.ingress, co));
      CHECK(clients.back()->send(saga::test::placed("k-" + std::to_string(n++))).status ==
            saga::ack_status::accepted);
    }
    // The loop counts them once a second.
    httplib::Client http(url);
    exposition e;
    for (int tries = 0; tries < 50; ++tries) {
      const auto res = http.Get("/metrics");
      REQUIRE(res);
      e = parse(res->body);
      if (e.at(R"(saga_ingress_peers{key="bob"})") == 2) break;
      std::this_thread::sleep_for(100ms);
    }
    CHECK(e.errors.empty());
    CHECK(e.at(R"(saga_ingress_peers{key="alice"})") == 1);
    CHECK(e.at(R"(saga_ingress_peers{key="bob"})") == 2);
    CHECK(std::isnan(e.at(R"(saga_ingress_peers{key="plaintext"})")));
    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(d.proc->wait_for(30s).code() == 0);
  }

  TEST_CASE("metrics on an address that is not loopback are refused without --insecure") {
    saga::test::temp_dir dir;
    const auto r = saga::test::run_to_end(
        dir, {SAGAD_PATH, "--db", dir.file("saga.db"), "--metrics", "0.0.0.0:0", "--ingress",
              "tcp://127.0.0.1:*", "--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*"});
    CHECK(r.status.code() == 1);
    CHECK(r.err.find("--metrics: 0.0.0.0 is not loopback") != std::string::npos);
    const auto bad =
        saga::test::run_to_end(dir, {SAGAD_PATH, "--db", dir.file("saga.db"), "--metrics", "localhost"});
    CHECK(bad.status.code() == 1);
    CHECK(bad.err.find("is not HOST:PORT") != std::string::npos);
  }
}
