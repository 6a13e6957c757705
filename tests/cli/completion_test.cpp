// sagactl's bash completion (adapters/cli/dist/sagactl.bash) in a real bash:
// the script is sourced, COMP_WORDS and COMP_CWORD are set as bash sets them,
// _sagactl runs and COMPREPLY is read back, against the real sagactl and a
// database the engine filled.

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "cli/cli_support.hpp"
#include "cli/filled_database.hpp"
#include "support/temp_dir.hpp"

namespace {

using saga::cli_test::filled;
using words = std::vector<std::string>;
using names = std::set<std::string>;

// Sources the completion, completes `line` (its last word is the one being
// completed; the first is sagactl) and returns COMPREPLY. `env` is prepended
// to bash's environment (NAME=value); SAGA_DB is unset unless given there.
struct completion {
  int code = -1;
  std::string err;
  names reply;
};

completion complete(const words& line, const words& env = {}) {
  saga::test::temp_dir scratch;
  words argv{"/usr/bin/env", "-u", "SAGA_DB"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {BASH_PATH, "--norc", "--noprofile", "-c",
                           "source \"$1\" || exit 9; shift; complete -p sagactl >/dev/null || exit 8\n"
                           "COMP_WORDS=(\"$@\"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                           "COMP_LINE=\"${COMP_WORDS[*]}\"; COMP_POINT=${#COMP_LINE}\n"
                           "_sagactl; printf '%s\\n' \"${COMPREPLY[@]}\"",
                           "bash", SAGACTL_COMPLETION, SAGACTL_PATH});
  argv.insert(argv.end(), line.begin(), line.end());
  const auto r = saga::cli_test::run(argv, scratch.path());
  completion c;
  c.code = r.code;
  c.err = r.err;
  for (const auto& l : saga::test::lines_of(r.out)) c.reply.insert(l);
  return c;
}

// What sagactl itself says, parsed as JSON (not by the completion's sed).
names registered_names(const filled& f) {
  const auto r = f.ctl({"definitions", "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto doc = r.json();
  names out;
  for (const auto& d : doc.at("definitions")) out.insert(d.at("name").get<std::string>());
  return out;
}

names states_of(const filled& f, const std::string& definition) {
  const auto r = f.ctl({"definitions", definition, "--json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const auto graph = r.json();
  names out;
  for (const auto& s : graph.at("states")) out.insert(s.get<std::string>());
  return out;
}

names starting_with(const names& all, const std::string& prefix) {
  names out;
  for (const auto& n : all)
    if (n.starts_with(prefix)) out.insert(n);
  return out;
}

}  // namespace

namespace doctest {
template <>
struct StringMaker<std::set<std::string>> {
  static String convert(const std::set<std::string>& s) {
    std::string out = "{";
    for (const auto& e : s) out += (out.size() > 1 ? ", " : "") + e;
    return (out + "}").c_str();
  }
};
}  // namespace doctest

TEST_SUITE("sagactl completion") {
  TEST_CASE("completion offers the subcommands and each subcommand's options") {
    const auto subs = complete({""});
    REQUIRE_MESSAGE(subs.code == 0, subs.err);
    for (const char* s : {"list", "show", "stats", "dead-letters", "definitions", "graph", "purge", "keygen"})
      CHECK_MESSAGE(subs.reply.contains(s), s);
    CHECK(complete({"de"}).reply == names{"dead-letters", "definitions"});

    const auto list_options = complete({"list", "--"}).reply;
    for (const char* o :
         {"--type", "--state", "--stuck-for", "--since", "--until", "--limit", "--db", "--json"})
      CHECK_MESSAGE(list_options.contains(o), o);
    CHECK_FALSE(list_options.contains("--older-than"));  // purge's
    CHECK(complete({"list", "--st"}).reply == names{"--state", "--stuck-for"});
    CHECK(complete({"purge", "--d"}).reply == names{"--db", "--definition", "--dry-run"});
    // a flag before the subcommand takes no value: `l` is still a subcommand
    CHECK(complete({"--json", "l"}).reply == names{"list"});
    CHECK(complete({"graph", "order_lifecycle", "--format", ""}).reply == names{"dot", "mermaid", "svg"});
    CHECK(complete({"list", "--limit", ""}).reply.empty());
  }

  TEST_CASE("completion offers the definition names of the database on the line or in SAGA_DB") {
    filled f;
    const auto expected = registered_names(f);
    REQUIRE(expected == names{"account_lockout", "order_lifecycle", "payment_notice"});

    CHECK(complete({"--db", f.db, "list", "--type", ""}).reply == expected);
    CHECK(complete({"list", "--db", f.db, "--type", "o"}).reply == names{"order_lifecycle"});
    CHECK(complete({"show", "o-1", "--type", ""}, {"SAGA_DB=" + f.db}).reply == expected);
    CHECK(complete({"--db", "=", f.db, "purge", "--definition", ""}).reply == expected);  // --db=FILE
    CHECK(complete({"--db=" + f.db, "purge", "--definition", ""}).reply == expected);  // '=' not a word break
    CHECK(complete({"--db", f.db, "definitions", ""}).reply == expected);
    CHECK(complete({"--db", f.db, "graph", "pa"}).reply == names{"payment_notice"});
    // the database on the line wins over SAGA_DB, as in sagactl
    saga::test::temp_dir elsewhere;
    CHECK(complete({"--db", f.db, "list", "--type", ""}, {"SAGA_DB=" + elsewhere.file("none.db")}).reply ==
          expected);
  }

  TEST_CASE("completion offers the states of the definition on the line or of every definition") {
    filled f;
    const auto order_states = states_of(f, "order_lifecycle");
    REQUIRE(order_states.contains("needs_attention"));
    CHECK(complete({"--db", f.db, "list", "--type", "order_lifecycle", "--state", ""}).reply == order_states);

    names all;
    for (const auto& d : registered_names(f))
      for (const auto& s : states_of(f, d)) all.insert(s);
    REQUIRE(all.size() > order_states.size());
    CHECK(complete({"--db", f.db, "list", "--state", ""}).reply == all);
    CHECK(complete({"--db", f.db, "resolve", "o-2", "--to", "n"}).reply == starting_with(order_states, "n"));
  }

  TEST_CASE("completion offers nothing and prints nothing where the database cannot be read") {
    saga::test::temp_dir dir;
    for (const auto& line : std::vector<words>{{"--db", dir.file("missing.db"), "list", "--type", ""},
                                               {"--db", dir.file("missing.db"), "list", "--state", ""}}) {
      const auto c = complete(line);
      CHECK(c.code == 0);
      CHECK(c.reply.empty());
      CHECK(c.err.empty());
    }
    CHECK_FALSE(std::filesystem::exists(dir.file("missing.db")));
  }
}
