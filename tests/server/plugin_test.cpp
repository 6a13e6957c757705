// saga::server::load_plugin against real shared libraries (tests/server/plugins):
// a good plugin loads and its definition runs in an engine; every kind of bad
// plugin is refused with one line naming the file and the problem, and the
// test process (like sagad) survives each.

#include "saga/server/plugin.hpp"

#include <doctest/doctest.h>

#include <fstream>

#include "saga/engine.hpp"
#include "saga/sqlite/store.hpp"
#include "support/temp_dir.hpp"

namespace {

std::string refusal(const std::string& path) {
  try {
    saga::server::load_plugin(path);
  } catch (const saga::server::plugin_error& e) {
    return e.what();
  }
  return "(loaded)";
}

bool one_line(const std::string& s) {
  return s.find('\n') == std::string::npos;
}

}  // namespace

TEST_SUITE("plugins") {
  TEST_CASE("a plugin built with SAGA_PLUGIN loads and its definition runs in an engine") {
    const auto p = saga::server::load_plugin(SAGA_TEST_PLUGIN_GOOD);
    CHECK(p.name == "lockout-test");
    REQUIRE(p.definitions.size() == 1);
    CHECK(p.definitions[0]->name() == "account_lockout");

    saga::test::temp_dir dir;
    saga::sqlite::options o;
    o.path = dir.file("saga.db");
    saga::sqlite::store store(o);
    saga::manual_clock clock;
    saga::engine engine(store, clock);
    engine.add(p.definitions[0]);
    saga::event e;
    e.id = "f-1";
    e.source = "urn:test";
    e.type = "auth.login.failed";
    e.subject = "acct-1";
    e.data = nlohmann::json::object();
    CHECK(engine.handle(e).status == saga::ack_status::accepted);
  }

  TEST_CASE("every bad plugin is refused with one line naming the file and the problem") {
    saga::test::temp_dir dir;
    const std::string text = dir.file("notes.so");
    std::ofstream(text) << "this is not an ELF file\n";

    const std::vector<std::pair<std::string, std::string>> cases = {
        {dir.file("missing.so"), "no such file"},
        {dir.path().string(), "not a regular file"},
        {text, "cannot be loaded"},
        {SAGA_TEST_PLUGIN_NO_ENTRY, "no entry point saga_plugin_entry_v1"},
        {SAGA_TEST_PLUGIN_WRONG_VERSION, "built against saga 99.0.0"},
        {SAGA_TEST_PLUGIN_WRONG_ABI, "built for 'saga-plugin-1; libc++ 16"},
        {SAGA_TEST_PLUGIN_THROWS, "its definitions threw: no claims database configured"},
        {SAGA_TEST_PLUGIN_STATIC_THROW,
         "static constructor failed"},  // a crash or, if dlopen lets it out, the exception
        {SAGA_TEST_PLUGIN_NULL_DEFINITION, "returned a null definition"},
    };
    for (const auto& c : cases) {
      const std::string& path = c.first;  // a variable, not a binding: CAPTURE's lambda (clang 14)
      const std::string& expected = c.second;
      CAPTURE(path);
      const auto why = refusal(path);
      CHECK(why.starts_with("plugin " + path + ": "));
      CHECK(why.find(expected) != std::string::npos);
      CHECK(one_line(why));
    }
  }
}
