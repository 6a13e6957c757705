#pragma once
// Running sagactl to completion (no shell) and collecting its exit code,
// stdout and stderr, on top of the shared child-process helper.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"

namespace saga::cli_test {

struct result {
  int code = -1;
  std::string out, err;
  double seconds = 0;
  nlohmann::json json() const { return nlohmann::json::parse(out); }
};

// Runs argv to completion (killed after `timeout`, code -1 then).
inline result run(const std::vector<std::string>& argv, const std::filesystem::path& scratch,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  static int n = 0;
  const std::string base = (scratch / ("run-" + std::to_string(++n))).string();
  const auto start = std::chrono::steady_clock::now();
  saga::test::process c(argv, base + ".out", base + ".err");
  result r;
  const auto st = c.wait_for(timeout);
  r.code = st.exited() ? st.code() : -1;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.out = c.out();
  r.err = c.err();
  return r;
}

}  // namespace saga::cli_test
