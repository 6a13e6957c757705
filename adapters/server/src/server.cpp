#include "saga/server/server.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include <spdlog/spdlog.h>

#include "database_lock.hpp"
#include "endpoints_file.hpp"
#include "fault_points.hpp"
#include "http_endpoint.hpp"
#include "log_syncer.hpp"
#include "loop.hpp"
#include "operator_sender.hpp"
#include "replay_thread.hpp"
#include "saga/engine.hpp"
#include "saga/outbox_relay.hpp"
#include "saga/server/build_info.hpp"
#include "saga/server/plugin.hpp"
#include "saga/sqlite/log_file.hpp"
#include "saga/sqlite/store.hpp"
#include "saga/version.hpp"
#include "saga/zmq/curve.hpp"
#include "saga/zmq/ingress_server.hpp"
#include "saga/zmq/publisher.hpp"
#include "security.hpp"
#include "service_manager.hpp"
#include "store_factory.hpp"

namespace saga::server {
namespace {

spdlog::level::level_enum to_spdlog(saga::log_level l) {
  switch (l) {
    case saga::log_level::debug:
      return spdlog::level::debug;
    case saga::log_level::info:
      return spdlog::level::info;
    case saga::log_level::warn:
      return spdlog::level::warn;
    case saga::log_level::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

saga::engine_options engine_options_of(const options& o) {
  saga::engine_options eo;
  eo.source = o.source;
  eo.park_limit = o.park_limit;
  eo.park_total_limit = o.park_total_limit;
  eo.park_expiry_ms = o.park_expiry_ms;
  eo.dead_letter_retention_ms = o.dead_letter_retention_ms;
  eo.dead_letter_max = o.dead_letter_max;
  eo.finished_retention_ms = o.finished_retention_ms;
  eo.log = [](saga::log_level l, std::string_view m) { spdlog::log(to_spdlog(l), "{}", m); };
  return eo;
}

// The cores this process may run on (its CPU affinity: taskset, a container's cpuset), at least 1.
int cores_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

// The publisher and the ingress, bound (startup_error when an endpoint cannot be).
struct bound_sockets {
  std::unique_ptr<saga::zmq::publisher> pub;
  std::unique_ptr<saga::zmq::ingress_server> ingress;
};

bound_sockets bind_sockets(::zmq::context_t& ctx, const options& o, const security& guard) {
  try {
    bound_sockets b;
    saga::zmq::publisher_options po;
    po.curve_secret_key = guard.secret_key();
    po.io_affinity = 1;
    b.pub = std::make_unique<saga::zmq::publisher>(ctx, o.publish, po);
    saga::zmq::ingress_options io;
    io.batch_max = o.batch_max;
    io.peer_credit = o.peer_credit;
    io.warn = [](std::string_view m) { spdlog::warn("{}", m); };
    io.curve_secret_key = guard.secret_key();
    io.io_affinity = 1;
    io.authorize = guard.authorize();
    // Decoding beside the loop thread, which has the commits to do (docs/architecture.md).
    io.decode_helper = cores_available() > 1;
    b.ingress = std::make_unique<saga::zmq::ingress_server>(ctx, o.ingress, io);
    guard.watch(b.pub->socket(), "events");
    guard.watch(b.ingress->socket(), "ingress");
    return b;
  } catch (const std::exception& e) {
    throw startup_error(e.what());
  }
}

// --metrics and --console: their HTTP servers; one serving both when they name the same
// HOST:PORT (docs/console.md), none when both are off.
struct http_servers {
  bool shared = false;  // `metrics` serves the console too
  std::unique_ptr<http_endpoint> metrics, console;

  std::string metrics_url() const { return metrics ? metrics->url() : ""; }
  std::string console_url() const {
    return console ? console->url() : metrics && shared ? metrics->url() : "";
  }
};

http_servers start_http(const options& o, const sagad_metrics& metrics,
                        std::function<saga::ack(const saga::event&)> send_action) {
  http_servers h;
  h.shared = !o.console.empty() && o.console == o.metrics;
  // The database gauges and the console's pages, each through a read port of its own on whichever
  // store --db names.
  auto settings_for = [&o, &send_action](const std::string& address, const std::string& option,
                                         bool serve_metrics, bool serve_console) {
    return http_endpoint::settings{.address = address,
                                   .insecure = o.insecure,
                                   .refresh = std::chrono::milliseconds(o.metrics_refresh_ms),
                                   .open_reader = [&o] { return open_reader(o); },
                                   .version = SAGA_VERSION,
                                   .option = option,
                                   .metrics = serve_metrics,
                                   .console = serve_console,
                                   .db_name = describe_db(o.db),
                                   .send_action = serve_console ? send_action : nullptr};
  };
  if (!o.metrics.empty())
    h.metrics = std::make_unique<http_endpoint>(
        settings_for(o.metrics, h.shared ? "--metrics/--console" : "--metrics", true, h.shared), metrics);
  if (!o.console.empty() && !h.shared)
    h.console = std::make_unique<http_endpoint>(settings_for(o.console, "--console", false, true), metrics);
  return h;
}

// --console-operator-key: the console's way into the ingress, as that operator's key (with CURVE:
// sagad's own public key as the server's); none without the option. startup_error naming the
// option when the key cannot be read or there is no console to act from.
std::unique_ptr<operator_sender> console_actions(::zmq::context_t& ctx, const options& o,
                                                 const security& guard, const std::string& ingress) {
  if (o.console_operator_key.empty()) return nullptr;
  if (o.console.empty())
    throw startup_error("--console-operator-key: needs --console (the actions are the console's)");
  saga::zmq::curve_client curve;
  try {
    const auto pair = saga::zmq::read_key_file(o.console_operator_key, true);
    if (guard.enabled()) curve = {guard.public_key(), pair};
  } catch (const std::exception& e) {
    throw startup_error(std::string("--console-operator-key: ") + e.what());
  }
  if (!guard.enabled())
    spdlog::warn(
        "--console-operator-key: sagad runs without --curve-secret: the console's actions reach the ingress "
        "unauthenticated, as any local client's do");
  return std::make_unique<operator_sender>(ctx, ingress, std::move(curve));
}

// Registers a definition; the line saying so is "definition NAME[ vN] fingerprint F (SOURCE)",
// logged by the caller once the start can no longer fail (a refused start says one line).
std::string register_definition(saga::engine& engine, const std::shared_ptr<const saga::definition>& d,
                                const std::string& source) {
  try {
    const auto r = engine.add(d);
    return "definition " + r.name + (r.version == 1 ? "" : " v" + std::to_string(r.version)) +
           " fingerprint " + r.fingerprint + " (" + source + ")";
  } catch (const std::exception& e) {
    throw startup_error("definition " + d->name() + " (" + source + "): " + e.what());
  }
}

// Unfinished sagas on a definition version nothing registered provides: refused (startup_error, one
// line) unless --allow-orphans, when they are logged and their events rejected until they are
// migrated or their version is registered again.
void check_versions(saga::engine& engine, bool allow_orphans) {
  std::string found;
  for (const auto& u : engine.unserved_versions())
    found += (found.empty() ? "" : "; ") + u.definition + " version " + std::to_string(u.version) + ": " +
             std::to_string(u.sagas) + " running saga(s)";
  if (found.empty()) return;
  const std::string what = "sagas run on definition versions that are not registered (" + found + ")";
  if (!allow_orphans)
    throw startup_error(what +
                        "; register those versions too, migrate the sagas first (sagactl migrate), or start "
                        "with --allow-orphans (their events are then rejected)");
  spdlog::warn("{}; --allow-orphans: their events are rejected until they are migrated", what);
}

// The writer's log, synced on a thread of its own (SQLite at FULL with --sync-log thread: the
// writer was opened at NORMAL, store_factory.cpp); null otherwise.
std::unique_ptr<log_syncer> start_log_syncer(const options& o, saga::store& writer, histogram& seconds) {
  if (!syncs_log_apart(o)) return nullptr;
  auto* sqlite = dynamic_cast<saga::sqlite::store*>(&writer);
  if (sqlite == nullptr) throw std::logic_error("--sync-log thread: the writer is not a SQLite store");
  auto file = std::make_shared<saga::sqlite::log_file>(sqlite->log_path());
  auto sync = [file, &seconds] {
    const auto started = std::chrono::steady_clock::now();
    file->sync();
    seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };
  auto syncer = std::make_unique<log_syncer>(sync, [sqlite] { return sqlite->commit_count(); });
  // What an earlier run committed without syncing it (it stopped before its sync) is made durable
  // before any of it is published or acked again.
  syncer->wait(syncer->request());
  return syncer;
}

// What was committed but not published when the server stopped; a failure is retried by the tick.
std::size_t publish_pending(saga::outbox_relay& relay) {
  try {
    return relay.drain();
  } catch (const saga::store_error& e) {
    spdlog::error("publishing pending rows at start: {} (retried on the next tick)", e.what());
    return 0;
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
  stop_requested.store(true);
}

}  // namespace

server::server(options o) : options_(std::move(o)) {}

void server::add(std::shared_ptr<const saga::definition> d, std::string source) {
  if (!d) throw std::invalid_argument("server::add: null definition (from " + source + ")");
  offered_.push_back({std::move(d), std::move(source)});
}

void server::add(const std::vector<std::shared_ptr<const saga::definition>>& ds, const std::string& source) {
  for (const auto& d : ds) add(d, source);
}

void server::load_plugins() {
  for (const auto& path : options_.plugins) add(load_plugin(path).definitions, "plugin " + path);
}

std::vector<server::offered> server::selected() const {
  std::set<std::string> wanted(options_.definitions.begin(), options_.definitions.end());
  // (name, version) -> source, of the definitions to run; --definitions picks names (all versions)
  std::map<std::pair<std::string, std::int64_t>, std::string> source_of;
  std::set<std::string> names;
  std::vector<offered> out;
  for (const auto& o : offered_) {
    const auto& name = o.definition->name();
    const auto version = o.definition->graph().version;
    if (!wanted.empty() && !wanted.contains(name)) continue;
    if (const auto it = source_of.find({name, version}); it != source_of.end())
      throw startup_error("definition " + name + " version " + std::to_string(version) +
                          " is provided twice: by " + it->second + " and by " + o.source +
                          " (leave one out, or pick one with --definitions)");
    source_of.emplace(std::pair{name, version}, o.source);
    names.insert(name);
    out.push_back(o);
  }
  std::vector<std::string> unknown;
  for (const auto& w : options_.definitions)
    if (!names.contains(w)) unknown.push_back(w);
  if (!unknown.empty()) {
    std::set<std::string> known;
    for (const auto& o : offered_) known.insert(o.definition->name());
    throw startup_error("--definitions: " + joined(unknown) + " not provided (built-in or by a --plugin: " +
                        joined({known.begin(), known.end()}) + ")");
  }
  if (out.empty()) throw startup_error("no definition to run (add one, or load a --plugin)");
  return out;
}

std::vector<server::listed> server::definitions() const {
  std::vector<listed> out;
  for (const auto& o : selected())
    out.push_back(
        {o.definition->name(), o.definition->graph().fingerprint, o.source, o.definition->graph().version});
  return out;
}

void server::run(const std::atomic<bool>& stop) {
  const auto& o = options_;
  const auto to_run = selected();
  // First: the lock must outlive every SQLite connection below (database_lock.hpp). Several
  // sagad may share a PostgreSQL database: their batches lock their sagas (store::lock_sagas).
  std::optional<database_lock> lock;
  if (!is_postgres(o.db)) lock.emplace(o.db);
  endpoints_file bound_file(o.endpoints_file);  // an earlier run's file is gone from here on
  fault_points fault;
  const auto writer = open_store(o, false);

  // Sockets before definitions: a taken port refuses the start before anything is logged.
  // Two I/O threads: the first carries ingress (events in, acks out) and publication, the second
  // replay, so that a client replaying a long log does not queue acks behind its traffic.
  ::zmq::context_t ctx(2);
  const security guard(ctx, o);  // keys, grants and the ZAP handler before any socket binds
  const auto sockets = bind_sockets(ctx, o, guard);
  std::vector<std::string> consumed;  // the event types the metrics count by name
  for (const auto& d : to_run)
    consumed.insert(consumed.end(), d.definition->graph().consumes.begin(),
                    d.definition->graph().consumes.end());
  sagad_metrics metrics(consumed);
  const auto syncer = start_log_syncer(o, *writer, metrics.log_sync_seconds);
  replay_thread replay(
      ctx, o.replay, [&o] { return open_store(o, true); }, guard.secret_key(),
      [&guard](::zmq::socket_t& s) { guard.watch(s, "replay"); }, &metrics.replay_requests);
  const auto actions = console_actions(ctx, o, guard, sockets.ingress->endpoint());
  const auto http = start_http(o, metrics,
                               actions ? [&actions](const saga::event& e) { return actions->send(e); }
                                       : std::function<saga::ack(const saga::event&)>());
  const endpoints bound{sockets.ingress->endpoint(), sockets.pub->endpoint(), replay.endpoint(),
                        http.metrics_url(), http.console_url()};

  saga::system_clock system_clock;
  const saga::clock& clock = o.clock ? *o.clock : system_clock;
  saga::store* engine_store = &fault.wrap(*writer);
  std::unique_ptr<saga::store> wrapped;
  if (o.wrap_store) {
    wrapped = o.wrap_store(*engine_store);
    engine_store = wrapped.get();
  }
  saga::engine engine(*engine_store, clock, engine_options_of(o));
  std::vector<std::string> registered;
  for (const auto& d : to_run) registered.push_back(register_definition(engine, d.definition, d.source));
  check_versions(engine, o.allow_orphans);
  // Where the sockets are, for whoever started this server, once its definitions are registered
  // (stored: sagactl finds them from now on): clients may connect.
  bound_file.write(bound);
  for (const auto& line : registered) spdlog::info("{}", line);

  saga::relay_options rlo;
  rlo.retention_ms = o.retention_ms;
  rlo.dedup_window_ms = o.dedup_window_ms;
  rlo.lease_ms = o.pg_relay_lease_ms;
  rlo.log = [](std::string_view m, bool lost) {
    if (lost)
      spdlog::warn("{}", m);
    else
      spdlog::info("{}", m);
  };
  saga::outbox_relay relay(*writer, fault.wrap(*sockets.pub), clock, rlo);
  const auto published_at_start = publish_pending(relay);
  const std::string where = "ingress " + bound.ingress + ", events " + bound.publish + ", replay " +
                            bound.replay + "; published " + std::to_string(published_at_start) +
                            " pending at start";
  spdlog::info("{}", version_line(o.name));
  if (is_postgres(o.db))
    spdlog::info("{}: db {} (PostgreSQL, schema {}), {}", o.name, describe_db(o.db), o.pg_schema, where);
  else
    spdlog::info("{}: db {} (synchronous={}{}), {}", o.name, o.db, o.synchronous,
                 syncer ? ", the log synced on a thread of its own" : "", where);
  guard.log_start();
  if (o.on_ready) o.on_ready(bound);
  service_manager manager;
  manager.ready("serving: " + where);
  fault.started();
  if (syncer) {
    syncer->stall_next(fault.sync_stall());
    if (auto failure = fault.sync_failure()) syncer->fail_next(std::move(*failure));
  }
  if (manager.watchdog())
    spdlog::info("watchdog: keep-alive every {} ms", manager.watchdog()->count() / 2000);
  if (http.metrics) spdlog::info("metrics: {}/metrics, {}/healthz", http.metrics_url(), http.metrics_url());
  if (!http.console_url().empty())
    spdlog::info("console: {}/ ({})", http.console_url(),
                 actions ? "actions on: abort, resolve, redrive as the operator's key" : "read-only");

  loop(o, engine, *sockets.ingress, relay, *sockets.pub, clock, fault, manager, metrics, syncer.get())
      .run(stop);
}

int server::main() {
  start_logging(options_);
  try {
    load_plugins();
    if (options_.list_definitions) {
      for (const auto& d : definitions()) {  // a version after the first follows the name: "name v2"
        const auto name = d.version == 1 ? d.name : d.name + " v" + std::to_string(d.version);
        std::printf("%-24s %s  %s\n", name.c_str(), d.fingerprint.c_str(), d.source.c_str());
      }
      return 0;
    }
    run(stop_on_signals());
    return 0;
  } catch (const plugin_error& e) {
    spdlog::critical("{} cannot start: {}", options_.name, e.what());
  } catch (const startup_error& e) {
    spdlog::critical("{} cannot start: {}", options_.name, e.what());
  } catch (const std::exception& e) {
    spdlog::critical("{} failed: {}", options_.name, e.what());
  }
  return 1;
}

const std::atomic<bool>& stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  // SIGHUP (reload the authorized keys) is blocked in this thread and so in every thread started
  // from here on; the ZAP handler's thread takes it with sigtimedwait (security.cpp). A handler
  // would interrupt whichever thread's ZeroMQ call it landed in.
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hup, nullptr);
  return stop_requested;
}

}  // namespace saga::server
