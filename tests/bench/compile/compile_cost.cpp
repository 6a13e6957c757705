// saga-compile-cost: what a workflow costs to compile (issue 14, item 7; docs/dsl.md "Compile
// cost"). Compiles each shipped definition, the 30-row trip booking and, as the floor, a file that
// only includes saga/dsl.hpp, with the flags of the project's build type; prints the median wall
// time and peak memory of --repeat compiles each, and each one's time over the floor's.
//
//   saga-compile-cost                       every source, 3 compiles each
//   saga-compile-cost --only trip_booking   one of them (the floor is always measured)
//   saga-compile-cost --json out.json       also write the figures
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

struct source {
  std::string name;
  std::string path;  // relative to the source tree; empty: the floor
};

// The floor first: every other figure is divided by it.
const std::vector<source> sources = {
    {"dsl.hpp alone (floor)", ""},
    {"order_lifecycle", "definitions/order_lifecycle.cpp"},
    {"payment_notice", "definitions/payment_notice.cpp"},
    {"account_lockout", "definitions/account_lockout.cpp"},
    {"insurance_claim", "examples/claims/insurance_claim.cpp"},
    {"trip_booking", "tests/bench/compile/trip_booking.cpp"},
};

struct figures {
  std::string name;
  int rows = 0;
  double seconds = 0;  // median wall time
  double peak_mb = 0;  // median peak resident memory
};

// Lines of the file that start a table row (`row<`, or Boost.MSM's `Row<`), the table's size.
int rows_in(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(' ');
    if (first != std::string::npos &&
        (line.compare(first, 4, "row<") == 0 || line.compare(first, 4, "Row<") == 0))
      ++n;
  }
  return n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The compiler and its flags, one per line, as CMake wrote them for this build type.
std::vector<std::string> read_command(const std::string& path) {
  std::vector<std::string> argv;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) argv.push_back(line);
  if (argv.empty()) throw std::runtime_error("no compile command in " + path);
  return argv;
}

figures measure(const source& s, const std::vector<std::string>& command, const std::string& tree,
                const saga::test::temp_dir& dir, int repeat) {
  std::string file = tree + "/" + s.path;
  if (s.path.empty()) {
    file = dir.file("floor.cpp");
    std::ofstream(file) << "#include \"saga/dsl.hpp\"\n";
  }
  figures f{s.name, s.path.empty() ? 0 : rows_in(file)};
  std::vector<double> seconds, peaks;
  for (int i = 0; i < repeat; ++i) {
    auto argv = command;
    argv.insert(argv.end(), {"-c", file, "-o", dir.file("out.o")});
    const auto start = std::chrono::steady_clock::now();
    saga::test::process cc(argv, dir.file("cc.out"), dir.file("cc.err"));
    const auto st = cc.wait_for(std::chrono::minutes(10));
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (st.running() || st.code() != 0)
      throw std::runtime_error(s.name + ": the compiler " + st.describe() + ":\n" + cc.err());
    peaks.push_back(static_cast<double>(cc.usage().ru_maxrss) / 1024.0);
  }
  f.seconds = median(seconds);
  f.peak_mb = median(peaks);
  return f;
}

void print(const std::vector<figures>& all, const std::string& build_type, int repeat) {
  std::cout << "Compile cost at " << build_type << " (median of " << repeat << " compiles each)\n";
  std::printf("%-24s %5s %10s %10s %10s\n", "source", "rows", "seconds", "peak MB", "x floor");
  for (const auto& f : all)
    std::printf("%-24s %5d %10.2f %10.0f %10.2f\n", f.name.c_str(), f.rows, f.seconds, f.peak_mb,
                f.seconds / all.front().seconds);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "saga-compile-cost: the compile time and peak memory of every shipped definition and of a "
      "30-row workflow, next to the DSL header alone (docs/dsl.md \"Compile cost\")"};
  int repeat = 3;
  std::vector<std::string> only;
  std::string json_path, command_file = SAGA_COMPILE_COMMAND, tree = SAGA_SOURCE_TREE;
  app.add_option("--repeat", repeat, "compiles of each source; the figures are their medians")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  std::vector<std::string> names;
  for (const auto& s : sources)
    if (!s.path.empty()) names.push_back(s.name);
  app.add_option("--only", only, "measure only these (the floor is always measured)")
      ->check(CLI::IsMember(names));
  app.add_option("--json", json_path, "also write the figures to this file");
  app.add_option("--command", command_file, "the compiler and its flags, one per line")
      ->capture_default_str();
  app.add_option("--source-tree", tree, "where the sources are")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const auto command = read_command(command_file);
    const saga::test::temp_dir dir;
    const std::set<std::string> wanted(only.begin(), only.end());
    std::vector<figures> all;
    for (const auto& s : sources) {
      if (!s.path.empty() && !wanted.empty() && !wanted.count(s.name)) continue;
      all.push_back(measure(s, command, tree, dir, repeat));
      std::cerr << "  " << s.name << ": " << all.back().seconds << " s\n";
    }
    print(all, BUILD_TYPE, repeat);
    if (!json_path.empty()) {
      auto rows = nlohmann::json::array();
      for (const auto& f : all)
        rows.push_back({{"source", f.name},
                        {"rows", f.rows},
                        {"seconds", f.seconds},
                        {"peak_mb", f.peak_mb},
                        {"ratio_to_floor", f.seconds / all.front().seconds}});
      std::ofstream(json_path)
          << nlohmann::json{{"build_type", BUILD_TYPE}, {"repeat", repeat}, {"rows", rows}}.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "saga-compile-cost: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
