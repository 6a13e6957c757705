// sagactl tail: published events live, from the events socket, gaps filled by replay.

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <memory>

#include <zmq.hpp>

#include "catalog.hpp"
#include "command.hpp"
#include "saga/zmq/subscriber.hpp"
#include "sending.hpp"

namespace sagactl::commands {

namespace {

std::atomic<bool> stop_requested{false};
extern "C" void on_stop_signal(int) {
  stop_requested.store(true);
}

struct tail_options {
  std::string events = "tcp://127.0.0.1:5571", replay = "tcp://127.0.0.1:5572";
  std::vector<std::string> types;
  std::int64_t from = -1, count = 0;
  curve_settings curve;
};

}  // namespace

run_fn tail(CLI::App& cmd) {
  auto o = std::make_shared<tail_options>();
  cmd.add_option("--from", o->from, "start at this sequence (default: after the last published one)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--type", o->types, "only types starting with this prefix (repeatable)");
  cmd.add_option("--events", o->events, "sagad's events PUB endpoint")
      ->envname("SAGA_PUBLISH")
      ->capture_default_str();
  cmd.add_option("--replay", o->replay, "sagad's replay endpoint")
      ->envname("SAGA_REPLAY")
      ->capture_default_str();
  cmd.add_option("--count", o->count, "stop after this many events (0: never)")
      ->check(CLI::NonNegativeNumber);
  add_curve_options(cmd, o->curve);
  return [o](const globals& g) {
    using nlohmann::json;
    saga::zmq::subscriber_options so;
    so.type_prefixes = o->types;
    so.curve = curve_of(o->curve);
    if (o->from >= 0) {
      so.start_after = o->from > 0 ? o->from - 1 : 0;
    } else {
      catalog c(g.db, g.pg_schema);  // the live position, from the database
      so.start_after = c.last_published();
    }
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    ::zmq::context_t ctx(1);
    try {
      saga::zmq::subscriber sub(ctx, o->events, o->replay, so);
      std::int64_t seen = 0;
      while (!stop_requested.load() && (o->count == 0 || seen < o->count)) {
        sub.poll(std::chrono::milliseconds(200), [&](const saga::zmq::delivery& d) {
          if (o->count != 0 && seen >= o->count) return;
          ++seen;
          json ev = json::parse(d.payload, nullptr, false);
          if (g.as_json) {
            std::cout << json{{"sequence", d.sequence}, {"type", d.type}, {"event", ev}}.dump() << '\n';
          } else {
            const bool ok = ev.is_object();
            std::cout << d.sequence << "  " << (ok ? ev.value("time", std::string()) : std::string()) << "  "
                      << d.type << "  " << (ok ? ev.value("subject", std::string()) : std::string()) << "  "
                      << (ok ? ev.value("data", json::object()).dump() : d.payload) << '\n';
          }
          std::cout.flush();
        });
      }
    } catch (const saga::zmq::subscriber_error& e) {
      if (!stop_requested.load())  // a signal during a wait is the normal way to stop
        throw failure(unreachable_or_rejected, std::string("sagad unreachable: ") + e.what());
    } catch (const ::zmq::error_t& e) {
      if (!stop_requested.load())
        throw failure(unreachable_or_rejected, std::string("sagad unreachable: ") + e.what());
    }
    return 0;
  };
}

}  // namespace sagactl::commands
