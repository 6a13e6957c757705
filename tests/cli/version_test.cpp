// `--version` of sagad and sagactl, and sagad's start-up line: the project's
// version and the git revision the build was made from.

#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_support.hpp"
#include "saga/version.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;

// The revision the build should carry, asked of git now (without --dirty: the
// tree may have changed since the build): "unknown" outside a checkout.
std::string expected_revision(const std::filesystem::path& scratch) {
  if (!std::filesystem::exists(std::string(SAGA_SOURCE_DIR) + "/.git") || !std::filesystem::exists(GIT_PATH))
    return "unknown";
  const auto r = saga::cli_test::run({GIT_PATH, "-C", SAGA_SOURCE_DIR, "describe", "--always"}, scratch);
  REQUIRE_MESSAGE(r.code == 0, r.err);
  return r.out.substr(0, r.out.find('\n'));
}

// The revision in "<program> <version> (revision R)", checked against the line's shape.
std::string revision_in(const std::string& line, const std::string& program) {
  static const std::regex shape(R"(^(\S+) (\S+) \(revision ([^)\s]+)\)$)");
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_match(line, m, shape), line);
  CHECK(m[1] == program);
  CHECK(m[2] == SAGA_VERSION);
  std::string revision = m[3];
  if (revision.ends_with("-dirty")) revision.resize(revision.size() - 6);
  return revision;
}

}  // namespace

TEST_SUITE("version") {
  TEST_CASE("sagad and sagactl --version print the version and the revision of the build") {
    saga::test::temp_dir dir;
    const auto expected = expected_revision(dir.path());
    for (const std::string program : {SAGAD_PATH, SAGACTL_PATH}) {
      CAPTURE(program);
      const auto r = saga::cli_test::run({program, "--version", "--db", dir.file("never.db")}, dir.path());
      CHECK(r.code == 0);
      CHECK(r.err.empty());
      REQUIRE(!r.out.empty());
      CHECK(r.out.back() == '\n');
      const auto name = std::filesystem::path(program).filename().string();
      CHECK(revision_in(r.out.substr(0, r.out.size() - 1), name) == expected);
    }
    CHECK_FALSE(std::filesystem::exists(dir.file("never.db")));  // nothing opened
  }

  TEST_CASE("sagad logs its version and revision before its start-up line") {
    saga::test::temp_dir dir;
    auto started = saga::test::start_daemon({SAGAD_PATH, "--db", dir.file("sagad.db")},
                                            saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                            dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(started, started.error);
    auto& daemon = *started.proc;
    // The start-up line comes after the endpoints file: wait for it. The version is the line before.
    std::vector<std::string> lines;
    std::size_t at = 0;
    for (int i = 0; i < 400 && at == 0; ++i) {
      lines = saga::test::lines_of(daemon.err());
      for (std::size_t n = 1; n < lines.size() && at == 0; ++n)
        if (lines[n].find("pending at start") != std::string::npos) at = n;
      if (at == 0) std::this_thread::sleep_for(25ms);
    }
    REQUIRE_MESSAGE(at > 0, daemon.err());
    // "<time> info sagad 0.1.0 (revision R)"
    const auto& line = lines[at - 1];
    const auto info = line.find(" info ");
    REQUIRE_MESSAGE(info != std::string::npos, line);
    CHECK(revision_in(line.substr(info + 6), "sagad") == expected_revision(dir.path()));
    CHECK(daemon.signal(SIGTERM));
    const auto st = daemon.wait_for(10s);
    CHECK(st.exited());
    CHECK(st.code() == 0);
  }
}
