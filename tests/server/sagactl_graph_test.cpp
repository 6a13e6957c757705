// sagactl graph on definitions that are in no database yet: from --plugin
// libraries (loaded as sagad loads them, so refused the same way), or a
// shipped definition by name (docs/cli.md). sagactl as a child process with
// the test plugins of tests/server/plugins.

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "saga/clock.hpp"
#include "saga/definitions/account_lockout.hpp"
#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using saga::test::process;
using saga::test::temp_dir;

struct ran {
  int code;
  std::string out, err;
};

// sagactl --db <dir>/<db> with `args`, to its end.
ran sagactl(const temp_dir& dir, const std::string& db, std::vector<std::string> args) {
  static int n = 0;
  std::vector<std::string> argv = {SAGACTL_PATH, "--db", dir.file(db)};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto tag = "sagactl" + std::to_string(++n);
  process p(argv, dir.file(tag + ".out"), dir.file(tag + ".err"));
  const auto st = p.wait_for(30s);
  REQUIRE_MESSAGE(!st.running(), "sagactl still running after 30 s");
  return {st.code(), p.out(), p.err()};
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == s.size() - 1;
}

}  // namespace

TEST_SUITE("sagactl graph from plugins and shipped definitions") {
  TEST_CASE("a plugin's definition is drawn with no database and none is created") {
    temp_dir dir;
    auto dot = sagactl(dir, "none.db", {"graph", "--plugin", SAGA_TEST_PLUGIN_RENAMED, "plugin_lockout"});
    REQUIRE_MESSAGE(dot.code == 0, dot.err);
    CHECK(has(dot.out, "digraph"));
    CHECK(has(dot.out, "plugin_lockout"));
    CHECK(has(dot.out, "locked"));
    auto mermaid =
        sagactl(dir, "none.db",
                {"graph", "plugin_lockout", "--plugin", SAGA_TEST_PLUGIN_RENAMED, "--format", "mermaid"});
    REQUIRE_MESSAGE(mermaid.code == 0, mermaid.err);
    CHECK(has(mermaid.out, "stateDiagram"));
    CHECK_FALSE(std::filesystem::exists(dir.file("none.db")));
  }

  TEST_CASE("--plugin is repeatable and the name is looked up in every library") {
    temp_dir dir;
    auto r = sagactl(
        dir, "none.db",
        {"graph", "plugin_lockout", "--plugin", SAGA_TEST_PLUGIN_GOOD, "--plugin", SAGA_TEST_PLUGIN_RENAMED});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(has(r.out, "plugin_lockout"));
  }

  TEST_CASE("a name none of the plugins has is not found and what they have is named") {
    temp_dir dir;
    auto r = sagactl(dir, "none.db", {"graph", "insurance_claim", "--plugin", SAGA_TEST_PLUGIN_GOOD});
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(one_line(r.err));
    CHECK(has(r.err, "no definition 'insurance_claim'"));
    CHECK(has(r.err, "it has: account_lockout"));
  }

  TEST_CASE("a plugin sagad would refuse is refused with its one line and exit 2") {
    temp_dir dir;
    const std::string missing = dir.file("missing.so");
    const std::vector<std::pair<std::string, std::string>> refused = {
        {missing, "no such file"},
        {SAGA_TEST_PLUGIN_NO_ENTRY, "no entry point saga_plugin_entry_v1"},
        {SAGA_TEST_PLUGIN_WRONG_VERSION, "built against saga 99"},
        {SAGA_TEST_PLUGIN_THROWS, "its definitions threw"},
        {SAGA_TEST_PLUGIN_STATIC_THROW,
         "static constructor failed"},  // a crash or, if dlopen lets it out, the exception
    };
    for (const auto& plugin : refused) {
      const std::string& path = plugin.first;  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const std::string& why = plugin.second;
      CAPTURE(path);
      auto r = sagactl(dir, "none.db", {"graph", "account_lockout", "--plugin", path});
      CHECK(r.code == 2);
      CHECK(r.out.empty());
      CHECK(one_line(r.err));
      CHECK(has(r.err, "sagactl: plugin "));
      CHECK(has(r.err, why));
    }
  }

  TEST_CASE("without a database a shipped definition is drawn by name and another name is not found") {
    temp_dir dir;
    auto r = sagactl(dir, "none.db", {"graph", "account_lockout"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(has(r.out, "digraph"));
    CHECK(has(r.out, "locked"));
    auto unknown = sagactl(dir, "none.db", {"graph", "insurance_claim"});
    CHECK(unknown.code == 1);
    CHECK(one_line(unknown.err));
    CHECK(has(unknown.err, "no such file"));
    CHECK(has(unknown.err, "--plugin"));
    CHECK_FALSE(std::filesystem::exists(dir.file("none.db")));
  }

  TEST_CASE("--instance draws a saga of the database on the plugin's graph") {
    temp_dir dir;
    {
      saga::sqlite::options o;
      o.path = dir.file("saga.db");
      saga::sqlite::store store(o);
      saga::manual_clock clock(1'700'000'000'000);
      saga::engine engine(store, clock);
      engine.add(saga::definitions::account_lockout());
      for (int i = 0; i < 3; ++i) {
        saga::event e;
        e.id = "f-" + std::to_string(i);
        e.source = "urn:test";
        e.type = "auth.login.failed";
        e.subject = "a-1";
        REQUIRE(engine.handle(e).ok());
      }
    }
    auto r = sagactl(dir, "saga.db",
                     {"graph", "account_lockout", "--plugin", SAGA_TEST_PLUGIN_GOOD, "--instance", "a-1"});
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(has(r.out, "#3"));
    CHECK(has(r.out, "a-1"));
    // The instance needs the database: without one, the usual database error.
    auto none = sagactl(dir, "none.db",
                        {"graph", "account_lockout", "--plugin", SAGA_TEST_PLUGIN_GOOD, "--instance", "a-1"});
    CHECK(none.code == 3);
  }
}
