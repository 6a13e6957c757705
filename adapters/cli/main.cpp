// sagactl — see and operate sagas from the command line (docs/cli.md).
//
// Reading commands open the database read-only (WAL readers never block
// sagad); actions go through sagad's ingress as events, so every change is
// made by the engine in its transaction and lands in the saga's history.
//
// Global options --db (or $SAGA_DB) and --json are accepted before or after
// the subcommand. Exit codes: 0 ok; 1 not found; 2 usage (CLI11's parse
// errors included); 3 database error; 4 sagad unreachable or event rejected.
// Every error is one line on stderr.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "catalog.hpp"
#include "render.hpp"
#include "saga/codec.hpp"
#include "saga/duration.hpp"
#include "saga/engine.hpp"
#include "saga/uuid.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"

namespace {

using json = nlohmann::json;
using sagactl::failure;

std::atomic<bool> stop_requested{false};
extern "C" void on_signal(int) {
  stop_requested.store(true);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

CLI::Validator duration_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return saga::parse_duration(s) ? std::string()
                                       : "'" + s + "' is not a duration (like 500ms, 90s, 15m, 2h, 7d)";
      },
      "DURATION");
}

CLI::Validator time_check() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        return saga::parse_time(s) ? std::string()
                                   : "'" + s + "' is not an RFC 3339 time (like 2026-01-01T00:00:00Z)";
      },
      "TIME");
}

std::optional<std::int64_t> opt_time(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return saga::parse_time(s);
}

std::optional<std::string> opt_text(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

std::string str(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

void print_json(const json& j) {
  std::cout << j.dump(2) << '\n';
}

// ---- reading commands --------------------------------------------------------------------

void print_list(const json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows) {
    t.push_back(
        {str(r["type"]), str(r["id"]), str(r["state"]), std::to_string(r["version"].get<std::int64_t>()),
         sagactl::human_duration(r["age"].get<std::int64_t>()),
         sagactl::human_duration(r["in_state"].get<std::int64_t>()), str(r["timers"]), str(r["parked"])});
  }
  sagactl::print_table(std::cout, {"type", "id", "state", "version", "age", "in_state", "timers", "parked"},
                       t);
  if (rows.empty()) std::cout << "(no sagas)\n";
}

void print_show(const json& s) {
  std::cout << "saga         " << str(s["type"]) << " / " << str(s["id"]) << '\n'
            << "state        " << str(s["state"]) << " (for "
            << sagactl::human_duration(s["in_state"].get<std::int64_t>()) << ", since "
            << str(s["state_since"]) << ")\n"
            << "version      " << str(s["version"]) << '\n'
            << "created      " << str(s["created"]) << " ("
            << sagactl::human_duration(s["age"].get<std::int64_t>()) << " ago)\n"
            << "updated      " << str(s["updated"]) << '\n'
            << "fingerprint  " << str(s["fingerprint"]);
  if (!s["definition_fingerprint"].is_null() && s["definition_fingerprint"] != s["fingerprint"])
    std::cout << " (the registered definition is now " << str(s["definition_fingerprint"]) << ")";
  std::cout << '\n'
            << "correlation  " << str(s["correlation_id"]) << '\n'
            << "data         " << s["data"].dump() << "\n\n";

  std::cout << "history\n";
  std::vector<std::vector<std::string>> t;
  for (const auto& h : s["history"])
    t.push_back({str(h["time"]), str(h["event_type"]), str(h["event_id"]),
                 str(h["from"]) + " → " + str(h["to"]), str(h["outcome"])});
  sagactl::print_table(std::cout, {"time", "event", "event id", "from → to", "outcome"}, t);

  std::cout << "\ntimers\n";
  if (s["timers"].empty()) {
    std::cout << "(none armed)\n";
  } else {
    t.clear();
    for (const auto& x : s["timers"])
      t.push_back({str(x["name"]), str(x["due"]), sagactl::human_duration(x["due_in"].get<std::int64_t>())});
    sagactl::print_table(std::cout, {"timer", "due", "due in"}, t);
  }

  std::cout << "\nparked\n";
  if (s["parked"].empty()) {
    std::cout << "(none)\n";
  } else {
    t.clear();
    for (const auto& x : s["parked"])
      t.push_back({str(x["id"]), str(x["parked"]), str(x["type"]), str(x["event_id"]), str(x["source"])});
    sagactl::print_table(std::cout, {"id", "parked", "type", "event id", "source"}, t);
  }

  std::cout << "\nfollow-on events\n";
  if (s["outbox"].empty()) {
    std::cout << "(none)\n";
  } else {
    t.clear();
    for (const auto& x : s["outbox"])
      t.push_back({str(x["sequence"]), str(x["type"]), str(x["event_id"]), str(x["created"]),
                   x["published"].get<bool>() ? "yes" : "no"});
    sagactl::print_table(std::cout, {"sequence", "type", "event id", "created", "published"}, t);
  }
}

void print_stats(const json& s) {
  std::vector<std::vector<std::string>> t;
  for (const auto& [def, states] : s["instances"].items())
    for (const auto& [state, n] : states.items()) t.push_back({def, state, str(n)});
  std::cout << "sagas: " << str(s["sagas"]) << '\n';
  sagactl::print_table(std::cout, {"type", "state", "count"}, t);
  std::cout << '\n';
  std::string oldest =
      s["oldest_unpublished_age"].is_null()
          ? std::string()
          : " (oldest " + sagactl::human_duration(s["oldest_unpublished_age"].get<std::int64_t>()) + " old)";
  sagactl::print_table(std::cout, {"what", "count"},
                       {{"inbox", str(s["inbox"])},
                        {"outbox", str(s["outbox"])},
                        {"unpublished", str(s["unpublished"]) + oldest},
                        {"dead letters", str(s["dead_letters"])},
                        {"parked", str(s["parked"])},
                        {"armed timers", str(s["armed_timers"])}});
  // One character per minute of the last hour, oldest left.
  const auto& per = s["handled_per_minute"];
  std::int64_t peak = 0;
  for (const auto& n : per) peak = std::max(peak, n.get<std::int64_t>());
  static const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string line;
  for (const auto& n : per) {
    const auto v = n.get<std::int64_t>();
    line += v == 0 ? std::string("·")
                   : std::string(bars[peak ? std::min<std::int64_t>(7, v * 8 / (peak + 1)) : 0]);
  }
  std::cout << "\nevents handled in the last hour: " << str(s["handled_last_hour"]) << " (peak " << peak
            << "/min)\n"
            << line << '\n';
}

void print_outbox(const json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({str(r["sequence"]), str(r["type"]), str(r["saga_type"]) + "/" + str(r["saga_id"]),
                 str(r["event_id"]), str(r["created"]), str(r["published"])});
  sagactl::print_table(std::cout, {"sequence", "type", "saga", "event id", "created", "published"}, t);
}

void print_dead_letters(const json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({str(r["id"]), str(r["created"]), str(r["type"]), str(r["subject"]), str(r["event_id"]),
                 str(r["source"]), str(r["reason"])});
  sagactl::print_table(std::cout, {"id", "created", "type", "subject", "event id", "source", "reason"}, t);
}

void print_timers(const json& rows) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : rows)
    t.push_back({str(r["due"]), str(r["type"]), str(r["id"]), str(r["name"]), str(r["generation"])});
  sagactl::print_table(std::cout, {"due", "type", "id", "timer", "generation"}, t);
}

void print_definitions(const json& d) {
  std::vector<std::vector<std::string>> t;
  for (const auto& r : d["definitions"])
    t.push_back(
        {str(r["name"]), str(r["fingerprint"]), str(r["registered"]), str(r["states"]), str(r["instances"])});
  sagactl::print_table(std::cout, {"name", "fingerprint", "registered", "states", "instances"}, t);
  std::cout << '\n';
  if (d["orphaned"].empty()) {
    std::cout << "no instance is in a state its stored definition lacks\n";
  } else {
    std::cout << "instances in a state their stored definition no longer has:\n";
    t.clear();
    for (const auto& r : d["orphaned"])
      t.push_back({str(r["type"]), str(r["id"]), str(r["state"]), str(r["fingerprint"])});
    sagactl::print_table(std::cout, {"type", "id", "state", "fingerprint"}, t);
  }
}

// ---- sending -----------------------------------------------------------------------------

struct send_settings {
  std::string endpoint = "tcp://127.0.0.1:5570";
  std::string timeout = "1s";
  int tries = 3;
};

saga::ack send_event(const saga::event& e, const send_settings& s) {
  if (auto problem = saga::validate_event(e); !problem.empty())
    throw failure(sagactl::usage, "invalid event: " + problem);
  ::zmq::context_t ctx(1);
  saga::zmq::client_options co;
  co.timeout = std::chrono::milliseconds(*saga::parse_duration(s.timeout));
  co.max_tries = s.tries;
  co.backoff = std::chrono::milliseconds(100);
  co.max_backoff = std::chrono::milliseconds(500);
  std::optional<saga::zmq::client> c;
  try {
    c.emplace(ctx, s.endpoint, co);
  } catch (const ::zmq::error_t& ex) {
    throw failure(sagactl::usage, "bad endpoint '" + s.endpoint + "': " + ex.what());
  }
  try {
    return c->send(e);
  } catch (const saga::zmq::client_error&) {
    throw failure(sagactl::unreachable_or_rejected, "sagad unreachable at " + s.endpoint + " (no ack after " +
                                                        std::to_string(s.tries) + " tries of " + s.timeout +
                                                        ")");
  } catch (const ::zmq::error_t& ex) {
    throw failure(sagactl::unreachable_or_rejected, "sagad unreachable at " + s.endpoint + ": " + ex.what());
  }
}

// Prints the ack; a rejection ends with exit 4 and its reason.
int report_ack(const saga::ack& a, bool as_json) {
  if (as_json) {
    print_json(saga::to_json(a));
  } else {
    std::cout << saga::to_string(a.status);
    if (a.ok()) {
      std::cout << ' ' << saga::to_string(a.outcome) << ": " << a.saga_type << '/' << a.saga_id;
      if (!a.saga_state.empty()) std::cout << " is " << a.saga_state;
    }
    std::cout << " (event " << a.id << ")\n";
  }
  if (!a.ok()) throw failure(sagactl::unreachable_or_rejected, "rejected: " + a.reason);
  return 0;
}

json read_data(const std::string& arg) {
  std::string text = arg;
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) throw failure(sagactl::usage, "--data: cannot read " + arg.substr(1));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw failure(sagactl::usage, "--data: not valid JSON");
  if (!j.is_object()) throw failure(sagactl::usage, "--data: must be a JSON object");
  return j;
}

std::string default_operator() {
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (const char* u = std::getenv("LOGNAME"); u && *u) return u;
  return "unknown";
}

void add_send_options(CLI::App* cmd, send_settings& s) {
  cmd->add_option("--endpoint", s.endpoint, "sagad's ingress")
      ->envname("SAGA_INGRESS")
      ->capture_default_str();
  cmd->add_option("--timeout", s.timeout, "wait this long for an ack before resending")
      ->check(duration_check())
      ->capture_default_str();
  cmd->add_option("--tries", s.tries, "sends before giving up")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sagactl: see and operate sagas (reads the database; acts through sagad)"};
  app.require_subcommand(1);
  // Subcommands created below inherit this: an option a subcommand does not know
  // (--db, --json) goes to the app, so both orders work.
  app.fallthrough();
  std::string db = "saga.db";
  bool as_json = false;
  app.add_option("--db", db, "the saga database (read-only)")->envname("SAGA_DB")->capture_default_str();
  app.add_flag("--json", as_json, "print one JSON document (tail: JSON lines)");

  // list
  auto* list = app.add_subcommand("list", "sagas, oldest first");
  std::string l_type, l_state, l_stuck, l_since, l_until;
  std::int64_t l_limit = 1000;
  list->add_option("--type", l_type, "only this definition");
  list->add_option("--state", l_state, "only sagas in this state");
  list->add_option("--stuck-for", l_stuck, "only non-terminal sagas in their state at least this long")
      ->check(duration_check());
  list->add_option("--since", l_since, "only sagas created at or after")->check(time_check());
  list->add_option("--until", l_until, "only sagas created before")->check(time_check());
  list->add_option("--limit", l_limit, "at most this many")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 40))
      ->capture_default_str();

  // show
  auto* show =
      app.add_subcommand("show", "one saga: state, data, history, timers, parked and follow-on events");
  std::string s_id, s_type;
  show->add_option("id", s_id, "the saga's id (its correlation key)")->required();
  show->add_option("--type", s_type, "the definition, when several have a saga with this id");

  auto* stats = app.add_subcommand("stats", "counts per definition and state, queues, throughput");

  auto* outbox = app.add_subcommand("outbox", "the outbox (follow-on events), by sequence");
  bool o_pending = false;
  std::int64_t o_from = 0, o_limit = 1000;
  outbox->add_flag("--pending", o_pending, "only rows not yet published");
  outbox->add_option("--from", o_from, "from this sequence on")->check(CLI::NonNegativeNumber);
  outbox->add_option("--limit", o_limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  auto* dead = app.add_subcommand("dead-letters", "rejected events kept with their reason");
  std::int64_t d_limit = 1000;
  dead->add_option("--limit", d_limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  auto* timers = app.add_subcommand("timers", "armed timers, soonest first");
  std::string t_before;
  std::int64_t t_limit = 1000;
  timers->add_option("--due-before", t_before, "only timers due before this time")->check(time_check());
  timers->add_option("--limit", t_limit, "at most this many")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  auto* defs = app.add_subcommand("definitions", "registered definitions, fingerprints, orphaned instances");

  auto* graph = app.add_subcommand("graph", "a definition's graph (with --instance: one saga's path on it)");
  std::string g_name, g_format = "dot", g_instance, g_output;
  graph->add_option("definition", g_name, "the definition's name")->required();
  graph->add_option("--format", g_format, "dot, mermaid or svg (through Graphviz)")
      ->check(CLI::IsMember({"dot", "mermaid", "svg"}))
      ->capture_default_str();
  graph->add_option("--instance", g_instance, "draw this saga's path, current state and armed timers");
  graph->add_option("--output", g_output, "write to this file instead of stdout");

  auto* send = app.add_subcommand("send", "send one event to sagad and print its ack");
  send_settings settings;
  std::string e_type, e_subject, e_data = "{}", e_source = "urn:saga:sagactl";
  send->add_option("--type", e_type, "the event type")->required();
  send->add_option("--subject", e_subject, "the saga's id")->required();
  send->add_option("--data", e_data, "JSON object, or @FILE")->capture_default_str();
  send->add_option("--source", e_source, "the event source")->capture_default_str();
  add_send_options(send, settings);

  std::string a_id, a_reason, a_operator = default_operator(), a_type, a_to;
  auto* abort = app.add_subcommand("abort", "operator abort: move a saga to its definition's abort state");
  abort->add_option("id", a_id, "the saga's id")->required();
  abort->add_option("--reason", a_reason, "why (recorded in history)")->required();
  abort->add_option("--operator", a_operator, "who (default $USER)")->capture_default_str();
  abort->add_option("--type", a_type, "the definition, when several have a saga with this id");
  add_send_options(abort, settings);

  auto* resolve = app.add_subcommand("resolve", "operator resolve: move a saga out of needs_attention");
  resolve->add_option("id", a_id, "the saga's id")->required();
  resolve->add_option("--to", a_to, "the state to resolve into")->required();
  resolve->add_option("--reason", a_reason, "why (recorded in history)")->required();
  resolve->add_option("--operator", a_operator, "who (default $USER)")->capture_default_str();
  resolve->add_option("--type", a_type, "the definition, when several have a saga with this id");
  add_send_options(resolve, settings);

  auto* redrive = app.add_subcommand("redrive", "send a dead letter's stored event to sagad again");
  std::int64_t r_id = 0;
  redrive->add_option("id", r_id, "the dead letter's id (see dead-letters)")->required();
  add_send_options(redrive, settings);

  auto* tail = app.add_subcommand("tail", "follow published events live (until SIGINT/SIGTERM)");
  std::string f_events = "tcp://127.0.0.1:5571", f_replay = "tcp://127.0.0.1:5572";
  std::vector<std::string> f_types;
  std::int64_t f_from = -1, f_count = 0;
  tail->add_option("--from", f_from, "start at this sequence (default: after the last published one)")
      ->check(CLI::NonNegativeNumber);
  tail->add_option("--type", f_types, "only types starting with this prefix (repeatable)");
  tail->add_option("--events", f_events, "sagad's events PUB endpoint")
      ->envname("SAGA_PUBLISH")
      ->capture_default_str();
  tail->add_option("--replay", f_replay, "sagad's replay endpoint")
      ->envname("SAGA_REPLAY")
      ->capture_default_str();
  tail->add_option("--count", f_count, "stop after this many events (0: never)")
      ->check(CLI::NonNegativeNumber);

  auto* backup =
      app.add_subcommand("backup", "a consistent copy of the live database (SQLite online backup)");
  std::string b_file;
  backup->add_option("file", b_file, "the new file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "sagactl: " << first_line(e.what()) << " (see sagactl --help)\n";
    return sagactl::usage;
  }

  try {
    const std::int64_t now = now_ms();
    if (list->parsed()) {
      sagactl::list_filter f;
      f.type = opt_text(l_type);
      f.state = opt_text(l_state);
      if (!l_stuck.empty()) f.stuck_for_ms = saga::parse_duration(l_stuck);
      f.since_ms = opt_time(l_since);
      f.until_ms = opt_time(l_until);
      f.limit = l_limit;
      sagactl::catalog c(db);
      const json rows = c.list(f, now);
      as_json ? print_json(rows) : print_list(rows);
    } else if (show->parsed()) {
      sagactl::catalog c(db);
      const json s = c.show(s_id, s_type, now);
      as_json ? print_json(s) : print_show(s);
    } else if (stats->parsed()) {
      sagactl::catalog c(db);
      const json s = c.stats(now);
      as_json ? print_json(s) : print_stats(s);
    } else if (outbox->parsed()) {
      sagactl::catalog c(db);
      const json rows = c.outbox(o_pending, o_from, o_limit);
      as_json ? print_json(rows) : print_outbox(rows);
    } else if (dead->parsed()) {
      sagactl::catalog c(db);
      const json rows = c.dead_letters(d_limit);
      as_json ? print_json(rows) : print_dead_letters(rows);
    } else if (timers->parsed()) {
      sagactl::catalog c(db);
      const json rows = c.timers(opt_time(t_before), t_limit);
      as_json ? print_json(rows) : print_timers(rows);
    } else if (defs->parsed()) {
      sagactl::catalog c(db);
      const json d = c.definitions();
      as_json ? print_json(d) : print_definitions(d);
    } else if (graph->parsed()) {
      sagactl::catalog c(db);
      const saga::graph g = c.graph_of(g_name);
      std::optional<json> inst;
      if (!g_instance.empty()) inst = c.show(g_instance, g_name, now);
      const json* ip = inst ? &*inst : nullptr;
      std::string out = g_format == "mermaid" ? sagactl::graph_mermaid(g, ip) : sagactl::graph_dot(g, ip);
      if (g_format == "svg") out = sagactl::dot_to_svg(out);
      if (g_output.empty()) {
        std::cout << out;
      } else {
        std::ofstream f(g_output, std::ios::binary);
        f << out;
        f.close();
        if (!f) throw failure(sagactl::usage, "cannot write " + g_output);
      }
    } else if (send->parsed()) {
      saga::event e;
      e.id = saga::make_uuid_v7();
      e.source = e_source;
      e.type = e_type;
      e.subject = e_subject;
      e.time = saga::format_time(now);
      e.data = read_data(e_data);
      return report_ack(send_event(e, settings), as_json);
    } else if (abort->parsed() || resolve->parsed()) {
      const bool is_abort = abort->parsed();
      saga::event e;
      e.id = saga::make_uuid_v7();
      e.source = "urn:saga:operator";
      e.type = is_abort ? "saga.operator.abort" : "saga.operator.resolve";
      e.subject = a_id;
      e.time = saga::format_time(now);
      e.data = {{"reason", a_reason}, {"operator", a_operator}};
      if (!is_abort) e.data["to"] = a_to;
      if (!a_type.empty()) e.data["saga_type"] = a_type;
      return report_ack(send_event(e, settings), as_json);
    } else if (redrive->parsed()) {
      std::string payload;
      {
        sagactl::catalog c(db);
        payload = c.dead_letter_payload(r_id);
      }
      auto decoded = saga::decode_event(payload);
      if (!decoded)
        throw failure(sagactl::unreachable_or_rejected, "dead letter " + std::to_string(r_id) +
                                                            " is not a valid event (" + decoded.error +
                                                            "): sagad would reject it again");
      return report_ack(send_event(*decoded.event, settings), as_json);
    } else if (tail->parsed()) {
      saga::zmq::subscriber_options so;
      so.type_prefixes = f_types;
      if (f_from >= 0) {
        so.start_after = f_from > 0 ? f_from - 1 : 0;
      } else {
        sagactl::catalog c(db);  // the live position, from the database
        so.start_after = c.last_published();
      }
      struct sigaction sa {};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGTERM, &sa, nullptr);
      sigaction(SIGINT, &sa, nullptr);
      ::zmq::context_t ctx(1);
      try {
        saga::zmq::subscriber sub(ctx, f_events, f_replay, so);
        std::int64_t seen = 0;
        while (!stop_requested.load() && (f_count == 0 || seen < f_count)) {
          sub.poll(std::chrono::milliseconds(200), [&](const saga::zmq::delivery& d) {
            if (f_count != 0 && seen >= f_count) return;
            ++seen;
            json ev = json::parse(d.payload, nullptr, false);
            if (as_json) {
              std::cout << json{{"sequence", d.sequence}, {"type", d.type}, {"event", ev}}.dump() << '\n';
            } else {
              const bool ok = ev.is_object();
              std::cout << d.sequence << "  " << (ok ? ev.value("time", std::string()) : std::string())
                        << "  " << d.type << "  " << (ok ? ev.value("subject", std::string()) : std::string())
                        << "  " << (ok ? ev.value("data", json::object()).dump() : d.payload) << '\n';
            }
            std::cout.flush();
          });
        }
      } catch (const saga::zmq::subscriber_error& e) {
        if (!stop_requested.load())  // a signal during a wait is the normal way to stop
          throw failure(sagactl::unreachable_or_rejected, std::string("sagad unreachable: ") + e.what());
      } catch (const ::zmq::error_t& e) {
        if (!stop_requested.load())
          throw failure(sagactl::unreachable_or_rejected, std::string("sagad unreachable: ") + e.what());
      }
    } else if (backup->parsed()) {
      sagactl::catalog c(db);
      const int pages = c.backup_to(b_file);
      if (as_json) {
        print_json({{"file", b_file}, {"pages", pages}});
      } else {
        std::cout << "backed up " << db << " to " << b_file << " (" << pages << " pages)\n";
      }
    }
    return 0;
  } catch (const failure& f) {
    std::cout.flush();
    std::cerr << "sagactl: " << first_line(f.what()) << '\n';
    return f.code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "sagactl: " << first_line(e.what()) << '\n';
    return sagactl::database;
  }
}
