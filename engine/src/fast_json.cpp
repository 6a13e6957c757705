#include "fast_json.hpp"

#include <cstring>
#include <string>
#include <vector>

#include <simdjson.h>

namespace saga::detail {
namespace {

namespace dom = simdjson::dom;
using json = nlohmann::json;

// "-0" is an integer to nlohmann (signed) and the integer 0 to simdjson, which keeps no sign for
// it: such a text is left to nlohmann. A number starts after ':', '[', ',' or white space; the
// same characters before "-0" inside a string only send that text the slow way.
bool has_negative_zero(std::string_view text) {
  for (std::size_t at = text.find("-0"); at != std::string_view::npos; at = text.find("-0", at + 1)) {
    const char before = at == 0 ? ' ' : text[at - 1];
    if (before != ':' && before != '[' && before != ',' && before != ' ' && before != '\t' &&
        before != '\n' && before != '\r')
      continue;
    const char after = at + 2 < text.size() ? text[at + 2] : ' ';
    if (after != '.' && after != 'e' && after != 'E') return true;
  }
  return false;
}

bool build(dom::element el, json& out, int depth, int max_depth);

bool build_object(dom::object obj, json& out, int depth, int max_depth) {
  out = json::object();
  auto& members = *out.get_ptr<json::object_t*>();
  for (const auto field : obj) {
    auto [it, inserted] = members.try_emplace(std::string(field.key));
    if (!inserted) return false;  // nlohmann keeps the last; decode_event rejects: either way, its call
    if (!build(field.value, it->second, depth + 1, max_depth)) return false;
  }
  return true;
}

bool build_array(dom::array arr, json& out, int depth, int max_depth) {
  out = json::array();
  auto& items = *out.get_ptr<json::array_t*>();
  items.reserve(arr.size());
  for (const auto value : arr) {
    items.emplace_back();
    if (!build(value, items.back(), depth + 1, max_depth)) return false;
  }
  return true;
}

bool build(dom::element el, json& out, int depth, int max_depth) {
  switch (el.type()) {
    case dom::element_type::OBJECT:
      return depth < max_depth && build_object(dom::object(el), out, depth, max_depth);
    case dom::element_type::ARRAY:
      return depth < max_depth && build_array(dom::array(el), out, depth, max_depth);
    case dom::element_type::STRING:
      out = std::string(std::string_view(el));
      return true;
    case dom::element_type::INT64: {
      const std::int64_t v = el;
      if (v >= 0)
        out = static_cast<std::uint64_t>(v);
      else
        out = v;
      return true;
    }
    case dom::element_type::UINT64:
      out = static_cast<std::uint64_t>(el);
      return true;
    case dom::element_type::DOUBLE:
      out = static_cast<double>(el);
      return true;
    case dom::element_type::BOOL:
      out = static_cast<bool>(el);
      return true;
    case dom::element_type::NULL_VALUE:
      out = nullptr;
      return true;
  }
  return false;
}

struct thread_parser {
  dom::parser parser{fast_json_max_bytes};
  std::vector<char> padded;  // the text and simdjson's padding after it
};

// simdjson's parse of `text` (at most fast_json_max_bytes), by this thread's parser: valid until
// this thread parses again.
simdjson::simdjson_result<dom::element> parse_here(std::string_view text) {
  thread_local thread_parser p;
  p.padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(p.padded.data(), text.data(), text.size());
  return p.parser.parse(p.padded.data(), text.size(), false);
}

}  // namespace

bool try_parse(std::string_view text, json& out, int max_depth) {
  if (text.empty() || text.size() > fast_json_max_bytes || has_negative_zero(text)) return false;
  const auto root = parse_here(text);
  if (root.error() != simdjson::SUCCESS) return false;
  return build(root.value_unsafe(), out, 0, max_depth);
}

bool try_top_level_string(std::string_view text, std::string_view key, std::string& out) {
  if (text.empty() || text.size() > fast_json_max_bytes) return false;
  dom::object members;
  if (parse_here(text).get(members) != simdjson::SUCCESS) return false;  // not JSON, or not an object
  out.clear();
  for (const auto field : members) {
    if (field.key != key) continue;
    std::string_view value;
    if (field.value.get(value) == simdjson::SUCCESS)
      out.assign(value);
    else
      out.clear();  // the last one counts, and it is not a string
  }
  return true;
}

}  // namespace saga::detail
