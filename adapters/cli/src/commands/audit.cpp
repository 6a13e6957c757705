// sagactl audit --saga KEY: one saga's full trail — each incoming event with its ack, each
// follow-on event with its publication sequence and, given a durable subscriber's database,
// whether that subscriber processed it (docs/reconciliation.md).

#include <iostream>
#include <memory>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include "catalog.hpp"
#include "command.hpp"
#include "render.hpp"
#include "saga/codec.hpp"

namespace sagactl::commands {

namespace {

using json = nlohmann::json;

struct audit_options {
  std::string saga, type, subscriber_db;
};

// Each follow-on event's record at the subscriber: its outcome there, or null (never received).
void add_subscriber(json& trail, const std::string& path) {
  try {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT outcome, received_ms, id FROM saga_received WHERE sequence = ?1");
    for (auto& f : trail["follow_on"]) {
      q.reset();
      q.bind(1, f["sequence"].get<std::int64_t>());
      if (q.executeStep() && q.getColumn(2).getString() == f["event_id"].get<std::string>()) {
        f["subscriber"] = {{"outcome", q.getColumn(0).getString()},
                           {"received", saga::format_time(q.getColumn(1).getInt64())}};
      } else {
        f["subscriber"] = nullptr;
      }
    }
  } catch (const SQLite::Exception& e) {
    throw failure(database, path + ": " + e.what());
  }
}

void print_trail(const json& t, bool with_subscriber) {
  std::cout << t["type"].get<std::string>() << "/" << t["id"].get<std::string>() << " is "
            << t["state"].get<std::string>() << "\n\nincoming events\n";
  std::vector<std::vector<std::string>> in;
  for (const auto& e : t["incoming"]) {
    const auto& ack = e["ack"];
    in.push_back({cell(e["time"]), cell(e["event_type"]), cell(e["event_id"]), sender_cell(e["sender"]),
                  cell(e["from"]) + " -> " + cell(e["to"]), cell(e["outcome"]),
                  ack.is_object() ? cell(ack.value("status", json(nullptr))) : "-",
                  e["follow_on"].is_object()
                      ? cell(e["follow_on"]["from"]) + ".." + cell(e["follow_on"]["to"])
                      : "-"});
  }
  print_table(std::cout, {"time", "type", "event id", "sent by", "transition", "outcome", "ack", "follow-on"},
              in);
  std::cout << "\nfollow-on events\n";
  std::vector<std::vector<std::string>> out;
  for (const auto& f : t["follow_on"]) {
    std::vector<std::string> row{cell(f["sequence"]), cell(f["type"]), cell(f["event_id"]),
                                 cell(f["published"])};
    if (with_subscriber)
      row.push_back(f["subscriber"].is_object() ? cell(f["subscriber"]["outcome"]) : "not received");
    out.push_back(std::move(row));
  }
  std::vector<std::string> header{"sequence", "type", "event id", "published"};
  if (with_subscriber) header.emplace_back("subscriber");
  print_table(std::cout, header, out);
}

}  // namespace

run_fn audit(CLI::App& cmd) {
  auto o = std::make_shared<audit_options>();
  cmd.add_option("--saga", o->saga, "the saga's id")->required();
  cmd.add_option("--type", o->type, "the definition, when several have a saga with this id");
  cmd.add_option("--subscriber-db", o->subscriber_db,
                 "a durable subscriber's database: whether it processed each follow-on event");
  return [o](const globals& g) {
    catalog c(g.db, g.pg_schema);
    auto trail = c.audit(o->saga, o->type);
    if (!o->subscriber_db.empty()) add_subscriber(trail, o->subscriber_db);
    g.as_json ? print_json(trail) : print_trail(trail, !o->subscriber_db.empty());
    return 0;
  };
}

}  // namespace sagactl::commands
