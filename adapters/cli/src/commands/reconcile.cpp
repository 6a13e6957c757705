// sagactl reconcile: did every event reach where it should (docs/reconciliation.md)?
//   outbound: sagad's published log against a durable subscriber's record, by range digests;
//   inbound:  the events a service believes it sent (--sent FILE) against what sagad received.
// Exit 0: consistent; 5: differences found (listed); 2: bad options or input lines.

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>

#include <zmq.hpp>

#include "catalog.hpp"
#include "command.hpp"
#include "reconcile.hpp"
#include "render.hpp"
#include "saga/duration.hpp"
#include "sending.hpp"

namespace sagactl::commands {

namespace {

using json = nlohmann::json;

struct reconcile_options {
  std::string replay = "tcp://127.0.0.1:5572", subscriber_db, subscriber, sent, timeout = "5s";
  std::int64_t from = 1, to = -1, max_differences = 10'000;
  curve_settings curve;
};

std::string event_cell(const json& e) {
  return e.is_object() ? e.value("type", "") + " " + e.value("id", "") : "-";
}

void print_outbound(const json& r) {
  std::cout << "sequences " << r["from"] << ".." << r["to"] << " (sagad's last " << r["sagad"]["last"]
            << ", the subscriber's " << r["subscriber"]["last"]
            << "): " << (r["consistent"].get<bool>() ? "consistent" : "differences found") << "; "
            << r["missing"].size() << " missing at the subscriber, " << r["extra"].size()
            << " never published by sagad, " << r["different"].size() << " different; "
            << r["sagad"]["digest_requests"] << " digest requests to sagad\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : r["missing"])
    rows.push_back({cell(m["sequence"]), "missing", event_cell(m["sagad"]), "-"});
  for (const auto& m : r["extra"])
    rows.push_back({cell(m["sequence"]), "extra", "-", event_cell(m["subscriber"])});
  for (const auto& m : r["different"])
    rows.push_back({cell(m["sequence"]), "different", event_cell(m["sagad"]), event_cell(m["subscriber"])});
  if (!rows.empty()) print_table(std::cout, {"sequence", "difference", "sagad", "subscriber"}, rows);
  for (const auto& u : r["uncheckable"])
    std::cout << "not checkable (pruned at sagad): " << u["from"] << ".." << u["to"] << "\n";
  if (r["truncated"].get<bool>()) std::cout << "(more differences not listed: --max-differences)\n";
}

int outbound(const reconcile_options& o, const globals& g) {
  if (o.subscriber_db.empty() == o.subscriber.empty())
    throw failure(usage, "give one of --subscriber-db PATH, --subscriber ENDPOINT or --sent FILE");
  ::zmq::context_t ctx(1);
  const auto timeout = std::chrono::milliseconds(*saga::parse_duration(o.timeout));
  const auto curve = curve_of(o.curve);
  auto sagad = remote_log(ctx, o.replay, curve, timeout, "sagad's replay");
  // The durable subscriber's digest endpoint speaks plaintext (bind it to loopback): CURVE is
  // sagad's.
  auto subscriber = o.subscriber_db.empty() ? remote_log(ctx, o.subscriber, {}, timeout, "the subscriber")
                                            : subscriber_database(o.subscriber_db);
  compare_options co;
  co.from = o.from;
  if (o.to >= 0) co.to = o.to;
  co.max_differences = static_cast<std::size_t>(o.max_differences);
  const auto report = compare_logs(*sagad, *subscriber, co);
  g.as_json ? print_json(report) : print_outbound(report);
  return report["consistent"].get<bool>() ? 0 : differences_found;
}

// One line of --sent: {"source": S, "id": I}; the problem naming the field otherwise.
std::string sent_problem(const json& line) {
  if (!line.is_object()) return "not a JSON object";
  for (const char* field : {"source", "id"}) {
    if (!line.contains(field)) return std::string("missing \"") + field + "\"";
    if (!line[field].is_string() || line[field].get<std::string>().empty())
      return std::string("\"") + field + "\" must be a non-empty string";
  }
  return {};
}

void print_inbound(const json& r, const std::string& sent) {
  std::cout << r["lines"] << " lines: " << r["accepted"] << " accepted, " << r["rejected"].size()
            << " rejected, " << r["not_received"].size() << " never received, " << r["invalid"].size()
            << " invalid\n";
  for (const auto& x : r["rejected"])
    std::cout << "rejected      line " << x["line"] << "  " << cell(x["source"]) << " " << cell(x["id"])
              << ": " << cell(x["reason"]) << "\n";
  for (const auto& x : r["not_received"])
    std::cout << "not received  line " << x["line"] << "  " << cell(x["source"]) << " " << cell(x["id"])
              << (x["inbox_since"].is_null() ? std::string()
                                             : " (or received before " + cell(x["inbox_since"]) +
                                                   " and pruned from the inbox since)")
              << "\n";
  for (const auto& x : r["invalid"])
    std::cerr << "sagactl reconcile: " << sent << ":" << x["line"] << ": " << cell(x["reason"]) << "\n";
}

int inbound(const reconcile_options& o, const globals& g) {
  std::ifstream in(o.sent);
  if (!in) throw failure(usage, "--sent: cannot read " + o.sent);
  catalog c(g.db, g.pg_schema);
  json not_received = json::array(), rejected = json::array(), invalid = json::array();
  std::int64_t lines = 0, accepted = 0, listed = 0;
  bool truncated = false;
  std::string text;
  while (std::getline(in, text)) {
    ++lines;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto line = json::parse(text, nullptr, false);
    const auto problem = line.is_discarded() ? std::string("not JSON") : sent_problem(line);
    const bool list = listed < o.max_differences;
    if (!problem.empty()) {
      if (list) invalid.push_back({{"line", lines}, {"reason", problem}});
    } else {
      auto r = c.inbound(line["source"].get<std::string>(), line["id"].get<std::string>());
      const std::string status = r["status"];
      if (status == "accepted") {
        ++accepted;
        continue;
      }
      r["line"] = lines;
      if (list) (status == "not_received" ? not_received : rejected).push_back(std::move(r));
    }
    list ? void(++listed) : void(truncated = true);
  }
  const json report = {{"lines", lines},
                       {"accepted", accepted},
                       {"not_received", not_received},
                       {"rejected", rejected},
                       {"invalid", invalid},
                       {"truncated", truncated},
                       {"consistent", not_received.empty() && rejected.empty() && !truncated}};
  g.as_json ? print_json(report) : print_inbound(report, o.sent);
  if (!report["consistent"].get<bool>()) return differences_found;
  return invalid.empty() ? 0 : int(usage);
}

}  // namespace

run_fn reconcile(CLI::App& cmd) {
  auto o = std::make_shared<reconcile_options>();
  cmd.add_option("--subscriber-db", o->subscriber_db,
                 "outbound: a durable subscriber's database, compared with sagad's published log");
  cmd.add_option("--subscriber", o->subscriber,
                 "outbound: a running durable subscriber's digest endpoint, instead of its database");
  cmd.add_option("--sent", o->sent,
                 "inbound: JSON lines {\"source\":S,\"id\":I} a service sent, checked against --db");
  cmd.add_option("--replay", o->replay, "sagad's replay endpoint (outbound)")
      ->envname("SAGA_REPLAY")
      ->capture_default_str();
  cmd.add_option("--from", o->from, "outbound: the first sequence to compare")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--to", o->to, "outbound: the last sequence (default: the higher of the two sides' last)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-differences", o->max_differences, "list at most this many differences")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--timeout", o->timeout, "wait this long for each answer")
      ->check(duration_check())
      ->capture_default_str();
  add_curve_options(cmd, o->curve);
  return [o](const globals& g) {
    if (!o->sent.empty()) {
      if (!o->subscriber_db.empty() || !o->subscriber.empty())
        throw failure(usage, "--sent (inbound) and --subscriber-db/--subscriber (outbound) are two runs");
      return inbound(*o, g);
    }
    return outbound(*o, g);
  };
}

}  // namespace sagactl::commands
