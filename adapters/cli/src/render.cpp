#include "render.hpp"

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include "catalog.hpp"

namespace sagactl {

namespace {

using json = nlohmann::json;

std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;  // count UTF-8 lead bytes only
  return n;
}

}  // namespace

std::string cell(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

std::string sender_cell(const json& sender) {
  return sender.is_string() && !sender.get<std::string>().empty() ? sender.get<std::string>() : "-";
}

void print_json(const json& j) {
  std::cout << j.dump(2) << '\n';
}

std::string human_duration(std::int64_t ms) {
  if (ms < 0) return "-" + human_duration(-ms);
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::int64_t s = ms / 1000;
  const std::int64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
  auto part = [](std::int64_t v, const char* unit) { return v ? std::to_string(v) + unit : std::string(); };
  if (d) return std::to_string(d) + "d" + part(h, "h");
  if (h) return std::to_string(h) + "h" + part(m, "m");
  if (m) return std::to_string(m) + "m" + part(sec, "s");
  return std::to_string(sec) + "s";
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], display_width(row[i]));
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - display_width(row[i]) + 2, ' ');
    }
    out << line << '\n';
  };
  std::vector<std::string> upper;
  for (auto h : header) {
    std::transform(h.begin(), h.end(), h.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    upper.push_back(h);
  }
  print(upper);
  for (const auto& r : rows) print(r);
}

}  // namespace sagactl
