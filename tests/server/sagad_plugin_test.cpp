// sagad --plugin, --definitions and --list-definitions as users run them: sagad
// as a child process with the test plugins of tests/server/plugins. Ports are
// chosen by sagad when it binds ("tcp://127.0.0.1:*") and read from its
// start-up line.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/zmq_frames.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::lines_of;
using saga::test::process;
using saga::test::temp_dir;

// sagad on a database in `dir`, every socket on a port it chooses, with `extra` options.
std::vector<std::string> sagad_args(const temp_dir& dir, std::vector<std::string> extra) {
  std::vector<std::string> argv = {SAGAD_PATH,
                                   "--db",
                                   dir.file("saga.db"),
                                   "--ingress",
                                   "tcp://127.0.0.1:*",
                                   "--publish",
                                   "tcp://127.0.0.1:*",
                                   "--replay",
                                   "tcp://127.0.0.1:*",
                                   "--synchronous",
                                   "OFF"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// The ingress endpoint from sagad's start-up line, once it is there; empty after `timeout`.
std::string ingress_of(process& p, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && p.running()) {
    const auto err = p.err();
    const auto at = err.find("ingress tcp://");
    if (at != std::string::npos) {
      const auto end = err.find(',', at);
      if (end != std::string::npos) return err.substr(at + 8, end - at - 8);
    }
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

// Sends one event over a DEALER and returns its ack (null after 10 s).
json roundtrip(const std::string& ingress, const json& event) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10'000);
  s.connect(ingress);
  const auto body = event.dump();
  s.send(zmq::const_buffer(), zmq::send_flags::sndmore);
  s.send(zmq::buffer(body), zmq::send_flags::none);
  const auto frames = saga::test::recv_all(s);
  return frames.size() == 2 ? json::parse(frames[1]) : json();
}

// Files named core* in the working directory (where a dumping child would leave one).
int core_files() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("."))
    if (e.path().filename().string().starts_with("core")) ++n;
  return n;
}

// Runs sagad with `extra` to its end (it must end within 20 s).
struct finished_run {
  saga::test::exit_status status;
  std::string out, err;
};
finished_run run_to_end(const temp_dir& dir, const std::string& tag, std::vector<std::string> extra) {
  process p(sagad_args(dir, std::move(extra)), dir.file(tag + ".out"), dir.file(tag + ".err"));
  const auto st = p.wait_for(20s);
  return {st, p.out(), p.err()};
}

}  // namespace

TEST_SUITE("sagad_plugins") {
  TEST_CASE("sagad runs a plugin's definition and accepts its events over ZeroMQ") {
    temp_dir dir;
    process p(sagad_args(dir, {"--plugin", SAGA_TEST_PLUGIN_RENAMED, "--definitions",
                               "order_lifecycle,plugin_lockout"}),
              dir.file("sagad.out"), dir.file("sagad.err"));
    const auto ingress = ingress_of(p, 20s);
    INFO("sagad stderr: " << p.err());
    REQUIRE(!ingress.empty());
    CHECK(p.err().find("definition plugin_lockout fingerprint ") != std::string::npos);
    CHECK(p.err().find("(plugin " SAGA_TEST_PLUGIN_RENAMED ")") != std::string::npos);
    CHECK(p.err().find("definition account_lockout") == std::string::npos);  // left out by --definitions

    const json ack = roundtrip(ingress, {{"specversion", "1.0"},
                                         {"id", "failed-1"},
                                         {"source", "urn:test:auth"},
                                         {"type", "auth.login.failed"},
                                         {"subject", "acct-7"},
                                         {"data", json::object()}});
    INFO("ack: " << ack.dump());
    REQUIRE(ack.is_object());
    CHECK(ack.at("status") == "accepted");

    p.signal(SIGTERM);
    CHECK(p.wait_for(10s).code() == 0);
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    SQLite::Statement q(db, "SELECT definition FROM instances WHERE key = 'acct-7'");
    REQUIRE(q.executeStep());
    CHECK(q.getColumn(0).getString() == "plugin_lockout");
  }

  TEST_CASE("a definition name provided twice or refused by the engine stops sagad at start with exit 1") {
    temp_dir dir;
    struct refusal {
      std::string what;
      std::vector<std::string> args;
      std::string expected;
    };
    const std::string good = SAGA_TEST_PLUGIN_GOOD, renamed = SAGA_TEST_PLUGIN_RENAMED;
    const std::vector<refusal> cases = {
        {"a plugin's name that a built-in has",
         {"--plugin", good},
         "sagad cannot start: definition account_lockout version 1 is provided twice: by built-in and by "
         "plugin " +
             good},
        {"the same name from two plugins",
         {"--plugin", renamed, "--plugin", renamed, "--definitions", "plugin_lockout"},
         "sagad cannot start: definition plugin_lockout version 1 is provided twice: by plugin " + renamed +
             " and by plugin " + renamed},
        {"a definition the engine refuses beside a built-in",
         {"--plugin", renamed},
         "sagad cannot start: definition plugin_lockout (plugin " + renamed +
             "): event type 'auth.login.failed' is consumed by both"},
        {"a name no source provides",
         {"--plugin", renamed, "--definitions", "order_lifecycle,insurance_claim"},
         "sagad cannot start: --definitions: insurance_claim not provided"},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      CAPTURE(c.what);
      const auto r = run_to_end(dir, "refused-" + std::to_string(i), c.args);
      INFO("stderr: " << r.err);
      CHECK(r.status.exited());
      CHECK(r.status.code() == 1);
      const auto lines = lines_of(r.err);
      REQUIRE(!lines.empty());
      CHECK(lines.back().find(c.expected) != std::string::npos);
      MESSAGE(c.what << ": " << lines.back());
    }
  }

  TEST_CASE("sagad without the version running sagas are on refuses to start unless --allow-orphans") {
    temp_dir dir;
    const std::string v1 = SAGA_TEST_PLUGIN_RENAMED, v2 = SAGA_TEST_PLUGIN_RENAMED_V2;
    const auto login_failed = [](const std::string& id, const std::string& account) {
      return json{{"specversion", "1.0"},        {"id", id},           {"source", "urn:test:auth"},
                  {"type", "auth.login.failed"}, {"subject", account}, {"data", json::object()}};
    };
    {  // two accounts' sagas on plugin_lockout version 1
      process p(sagad_args(dir, {"--plugin", v1, "--definitions", "plugin_lockout"}), dir.file("v1.out"),
                dir.file("v1.err"));
      const auto ingress = ingress_of(p, 20s);
      REQUIRE(!ingress.empty());
      CHECK(roundtrip(ingress, login_failed("f-1", "acct-1")).at("status") == "accepted");
      CHECK(roundtrip(ingress, login_failed("f-2", "acct-2")).at("status") == "accepted");
      p.signal(SIGTERM);
      CHECK(p.wait_for(10s).code() == 0);
    }
    const auto refused = run_to_end(dir, "v2-only", {"--plugin", v2, "--definitions", "plugin_lockout"});
    INFO("stderr: " << refused.err);
    CHECK(refused.status.code() == 1);
    const auto lines = lines_of(refused.err);
    REQUIRE(!lines.empty());
    CHECK(
        lines.back().find("sagas run on definition versions that are not registered (plugin_lockout version "
                          "1: 2 running saga(s)); register those versions too, migrate the sagas first") !=
        std::string::npos);
    CHECK(lines.back().find("--allow-orphans") != std::string::npos);

    {  // --allow-orphans: it runs; the old sagas' events are rejected, new sagas start on version 2
      process p(sagad_args(dir, {"--plugin", v2, "--definitions", "plugin_lockout", "--allow-orphans"}),
                dir.file("orphans.out"), dir.file("orphans.err"));
      const auto ingress = ingress_of(p, 20s);
      INFO("sagad stderr: " << p.err());
      REQUIRE(!ingress.empty());
      CHECK(p.err().find("--allow-orphans: their events are rejected") != std::string::npos);
      const auto old = roundtrip(ingress, login_failed("f-3", "acct-1"));
      CHECK(old.at("status") == "rejected");
      CHECK(old.at("reason").get<std::string>().find("runs on version 1 of its definition") !=
            std::string::npos);
      CHECK(roundtrip(ingress, login_failed("f-4", "acct-3")).at("status") == "accepted");
      p.signal(SIGTERM);
      CHECK(p.wait_for(10s).code() == 0);
    }
    SQLite::Database db(dir.file("saga.db"), SQLite::OPEN_READONLY);
    CHECK(db.execAndGet("SELECT definition_version FROM instances WHERE key = 'acct-3'").getInt() == 2);
    CHECK(db.execAndGet("SELECT definition_version FROM instances WHERE key = 'acct-1'").getInt() == 1);

    // Both versions: listed apart, and sagad starts.
    const auto listed =
        run_to_end(dir, "both",
                   {"--plugin", v1, "--plugin", v2, "--definitions", "plugin_lockout", "--list-definitions"});
    CHECK(listed.status.code() == 0);
    const auto both = lines_of(listed.out);
    REQUIRE(both.size() == 2);
    CHECK(both[0].starts_with("plugin_lockout "));
    CHECK(both[0].ends_with("  plugin " + v1));
    CHECK(both[1].starts_with("plugin_lockout v2 "));
    CHECK(both[1].ends_with("  plugin " + v2));
  }

  TEST_CASE("every bad plugin makes sagad exit 1 with one line before it opens its database") {
    temp_dir dir;
    const std::string text = dir.file("notes.so");
    std::ofstream(text) << "this is not an ELF file\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {dir.file("missing.so"), "no such file"},
        {text, "cannot be loaded"},
        {SAGA_TEST_PLUGIN_NO_ENTRY, "no entry point saga_plugin_entry_v1"},
        {SAGA_TEST_PLUGIN_WRONG_VERSION, "built against saga 99.0.0"},
        {SAGA_TEST_PLUGIN_WRONG_ABI, "built for 'saga-plugin-1; libc++ 16"},
        {SAGA_TEST_PLUGIN_THROWS, "its definitions threw: no claims database configured"},
        {SAGA_TEST_PLUGIN_STATIC_THROW,
         "static constructor failed"},  // a crash or, if dlopen lets it out, the exception
        {SAGA_TEST_PLUGIN_NULL_DEFINITION, "returned a null definition"},
    };
    const int cores_before = core_files();
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const std::string& path = cases[i].first;  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const std::string& expected = cases[i].second;
      CAPTURE(path);
      // A good plugin first: a bad one after it still refuses the start.
      const auto r = run_to_end(
          dir, "bad-" + std::to_string(i),
          {"--plugin", SAGA_TEST_PLUGIN_RENAMED, "--plugin", path, "--definitions", "plugin_lockout"});
      INFO("stderr: " << r.err);
      CHECK(r.status.exited());
      CHECK(r.status.code() == 1);
      const auto lines = lines_of(r.err);
      REQUIRE(lines.size() == 1);
      CHECK(lines[0].find("critical sagad cannot start: plugin " + path + ": ") != std::string::npos);
      CHECK(lines[0].find(expected) != std::string::npos);
      MESSAGE(lines[0]);
    }
    CHECK(!std::filesystem::exists(dir.file("saga.db")));  // refused before the database was opened
    CHECK(core_files() == cores_before);
  }

  TEST_CASE("list-definitions prints each definition's name fingerprint and source and exits 0") {
    temp_dir dir;
    SUBCASE("from the command line") {
      const auto r = run_to_end(dir, "list", {"--plugin", SAGA_TEST_PLUGIN_RENAMED, "--list-definitions"});
      INFO("stdout: " << r.out << "\nstderr: " << r.err);
      CHECK(r.status.code() == 0);
      const auto lines = lines_of(r.out);
      REQUIRE(lines.size() == 4);
      CHECK(lines[0].starts_with("order_lifecycle "));
      CHECK(lines[0].ends_with(" built-in"));
      CHECK(lines[2].starts_with("account_lockout "));
      CHECK(lines[3].starts_with("plugin_lockout "));
      CHECK(lines[3].ends_with("  plugin " SAGA_TEST_PLUGIN_RENAMED));
      std::istringstream fields(lines[3]);
      std::string name, fingerprint;
      fields >> name >> fingerprint;
      CHECK(fingerprint.size() == 16);
      CHECK(r.err.empty());
    }
    SUBCASE("plugins from a config file, picked with --definitions") {
      const auto config = dir.file("sagad.toml");
      std::ofstream(config) << "plugin = [\"" << SAGA_TEST_PLUGIN_RENAMED << "\"]\n"
                            << "definitions = [\"plugin_lockout\", \"payment_notice\"]\n";
      const auto r = run_to_end(dir, "list-config", {"--config", config, "--list-definitions"});
      INFO("stdout: " << r.out << "\nstderr: " << r.err);
      CHECK(r.status.code() == 0);
      const auto lines = lines_of(r.out);
      REQUIRE(lines.size() == 2);
      CHECK(lines[0].starts_with("payment_notice "));
      CHECK(lines[1].starts_with("plugin_lockout "));
    }
    CHECK(!std::filesystem::exists(dir.file("saga.db")));  // no database opened
  }
}
