#include "saga/codec.hpp"

#include "saga/trace.hpp"

#include "fast_json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

namespace saga {
namespace {

using json = nlohmann::json;

// Reasons quote parts of the input: keep them short, printable ASCII, so an
// ack that carries them is always valid JSON.
std::string printable(std::string_view s, std::size_t max = 120) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

namespace {

// Checks a document built in memory in one pass, without recursion: nesting
// depth (`depth` is the level `root` sits at) and UTF-8 in every string and key.
// Empty when fine, else the rule broken.
std::string check_document(const json& root, int depth, int max_depth) {
  // The thread's own work list, kept between calls (no allocation per event once it has grown),
  // unless a document far wider than an event made it large: then it is let go.
  thread_local std::vector<std::pair<const json*, int>> todo;
  struct let_go_when_large {
    ~let_go_when_large() {
      todo.clear();
      if (todo.capacity() > 4096) todo.shrink_to_fit();
    }
  } bounded;
  todo.clear();
  todo.emplace_back(&root, depth);
  while (!todo.empty()) {
    auto [j, d] = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      if (!valid_utf8(j->get_ref<const std::string&>()))
        return "attribute 'data': strings must be valid UTF-8";
      continue;
    }
    if (!j->is_structured()) continue;
    if (d > max_depth) return "event: nested deeper than " + std::to_string(max_depth) + " levels";
    if (j->is_object()) {  // walked directly, as append_json does
      for (const auto& [k, v] : *j->get_ptr<const json::object_t*>()) {
        if (!valid_utf8(k)) return "attribute 'data': keys must be valid UTF-8";
        todo.emplace_back(&v, d + 1);
      }
    } else {
      for (const auto& v : *j) todo.emplace_back(&v, d + 1);
    }
  }
  return {};
}

// nlohmann's DOM builder, plus the checks a plain parse cannot make: nesting
// depth (checked while parsing, so a 100,000-deep document costs nothing and
// cannot exhaust the stack), duplicated keys, and non-finite numbers.
class checked_parser : public nlohmann::detail::json_sax_dom_parser<json> {
  using base = nlohmann::detail::json_sax_dom_parser<json>;

 public:
  checked_parser(json& root, int max_depth) : base(root, false), max_depth_(max_depth) {}

  bool start_object(std::size_t n) {
    if (!enter()) return false;
    keys_.emplace_back();
    return base::start_object(n);
  }
  bool end_object() {
    keys_.pop_back();
    --depth_;
    return base::end_object();
  }
  bool start_array(std::size_t n) {
    if (!enter()) return false;
    return base::start_array(n);
  }
  bool end_array() {
    --depth_;
    return base::end_array();
  }
  bool key(std::string& k) {
    if (!keys_.back().insert(k).second) {
      error_ = (depth_ == 1 ? "attribute '" + printable(k) + "': appears more than once"
                            : "event: key '" + printable(k) + "' appears more than once in one object");
      return false;
    }
    return base::key(k);
  }
  bool number_float(double v, const std::string& s) {
    if (!std::isfinite(v)) {
      error_ = "event: number " + s.substr(0, 40) + " is out of range";
      return false;
    }
    return base::number_float(v, s);
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string&, const Exception& ex) {
    if (error_.empty()) {
      std::string what = ex.what();
      // nlohmann's text starts with "[json.exception.parse_error.101] parse error at ...".
      if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
      error_ = "event: not valid JSON at byte " + std::to_string(position) + " (" + printable(what) + ")";
    }
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  bool enter() {
    if (++depth_ > max_depth_) {
      error_ = "event: nested deeper than " + std::to_string(max_depth_) + " levels";
      return false;
    }
    return true;
  }

  int max_depth_;
  int depth_ = 0;
  std::vector<std::set<std::string>> keys_;
  std::string error_;
};

bool has_control_char(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

bool valid_extension_name(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

// Reads a string attribute. Returns an error text, or empty on success.
std::string read_string(const json& doc, const char* name, bool required, std::string& out) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) {
    return required ? std::string("attribute '") + name + "': required" : std::string();
  }
  if (!it->is_string()) return std::string("attribute '") + name + "': must be a string";
  const auto& s = it->get_ref<const std::string&>();
  if (required && s.empty()) return std::string("attribute '") + name + "': must not be empty";
  if (has_control_char(s))
    return std::string("attribute '") + name + "': must not contain control characters";
  out = s;
  return {};
}

// The attributes decode_event reads itself; every other one is an extension kept in
// event::extensions (dataschema too: read, checked and kept the same way).
bool known_attribute(std::string_view n) {
  for (std::string_view k : {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                             "data", "causationid", "correlationid", "traceparent", "tracestate"})
    if (n == k) return true;
  return false;
}

// The trace context's own rules (saga/trace.hpp); empty when fine.
std::string trace_problem(const std::string& traceparent, const std::string& tracestate) {
  if (!traceparent.empty())
    if (auto p = traceparent_problem(traceparent); !p.empty()) return "attribute 'traceparent': " + p;
  if (tracestate.size() > tracestate_max)
    return "attribute 'tracestate': longer than " + std::to_string(tracestate_max) + " characters";
  return {};
}

int digits(std::string_view s, std::size_t pos, std::size_t n, bool& ok) {
  int v = 0;
  if (pos + n > s.size()) {
    ok = false;
    return 0;
  }
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      ok = false;
      return 0;
    }
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// An event built in memory by the rules decode_event applies to the extensions it keeps, and
// their encoded size within the event size limit (a decoded event's are within it already).
std::string extensions_problem(const json& ext, const limits& lim) {
  if (ext.is_null()) return {};
  if (!ext.is_object()) return "event: extensions must be a JSON object";
  for (const auto& [name, value] : ext.items()) {
    const std::string attr = "attribute '" + printable(name, 64) + "': ";
    if (!valid_extension_name(name)) return attr + "names must be lower-case letters and digits";
    if (known_attribute(name)) return attr + "is not an extension";
    if (!value.is_primitive() || value.is_null()) return attr + "must be a string, number or boolean";
    if (value.is_string() && !valid_utf8(value.get_ref<const std::string&>()))
      return attr + "must be valid UTF-8";
  }
  if (const auto size = ext.dump().size(); size > lim.max_event_bytes)
    return "event: extensions of " + std::to_string(size) + " bytes exceed the limit of " +
           std::to_string(lim.max_event_bytes) + " bytes";
  return {};
}

}  // namespace

std::optional<std::int64_t> parse_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  bool ok = true;
  const int y = digits(s, 0, 4, ok), mo = digits(s, 5, 2, ok), d = digits(s, 8, 2, ok);
  const int h = digits(s, 11, 2, ok), mi = digits(s, 14, 2, ok), se = digits(s, 17, 2, ok);
  if (!ok || s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':')
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t frac_ms = 0;
  if (s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  std::int64_t offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '+' ? 1 : -1;
    const int oh = digits(s, pos + 1, 2, ok), om = digits(s, pos + 4, 2, ok);
    if (!ok || pos + 6 > s.size() || s[pos + 3] != ':' || oh > 23 || om > 59) return std::nullopt;
    offset_min = sign * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  const auto days_since = sys_days{ymd}.time_since_epoch().count();
  const std::int64_t secs =
      days_since * 86400LL + h * 3600LL + mi * 60LL + std::min(se, 59) - offset_min * 60;
  return secs * 1000 + frac_ms;
}

std::string format_time(std::int64_t unix_ms) {
  using namespace std::chrono;
  const auto tp = sys_time<milliseconds>{milliseconds{unix_ms}};
  const auto day_point = floor<days>(tp);
  const year_month_day ymd{day_point};
  const hh_mm_ss hms{tp - day_point};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return buf;
}

namespace {

// The event's text as a document within the limits (size, nesting), or why not. The fast parse
// first; when it is unsure, nlohmann's checked parse, which names what is wrong.
std::string parse_envelope(std::string_view text, const limits& lim, json& doc) {
  if (text.size() > lim.max_event_bytes)
    return "event: " + std::to_string(text.size()) + " bytes exceeds the limit of " +
           std::to_string(lim.max_event_bytes) + " bytes";
  // nlohmann stops reading at a NUL byte; JSON never contains a raw one.
  if (auto nul = text.find('\0'); nul != std::string_view::npos)
    return "event: not valid JSON at byte " + std::to_string(nul) + " (a raw NUL byte)";
  if (detail::try_parse(text, doc, lim.max_depth)) return {};
  doc = json();
  checked_parser sax(doc, lim.max_depth);
  const bool parsed = json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json,
                                      /*strict=*/true);
  if (!parsed || !sax.error().empty()) return sax.error().empty() ? "event: not valid JSON" : sax.error();
  return {};
}

}  // namespace

decode_result decode_event(std::string_view text, const limits& lim) {
  decode_result r;
  json doc;
  if (r.error = parse_envelope(text, lim, doc); !r.error.empty()) return r;
  if (!doc.is_object()) {
    r.error = "event: must be a JSON object";
    return r;
  }
  // Keep what identifies the event first, so a rejection can name it.
  if (auto it = doc.find("id"); it != doc.end() && it->is_string()) r.id = it->get<std::string>();
  if (auto it = doc.find("source"); it != doc.end() && it->is_string()) r.source = it->get<std::string>();

  event e;
  std::string specversion;
  auto fail = [&](std::string why) {
    r.error = std::move(why);
    return r;
  };
  if (auto err = read_string(doc, "specversion", true, specversion); !err.empty()) return fail(err);
  if (specversion != "1.0") return fail("attribute 'specversion': must be \"1.0\"");
  if (auto err = read_string(doc, "id", true, e.id); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "source", true, e.source); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "type", true, e.type); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "subject", true, e.subject); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "time", false, e.time); !err.empty()) return fail(err);
  if (!e.time.empty() && !parse_time(e.time)) return fail("attribute 'time': must be an RFC 3339 date-time");
  std::string content_type;
  if (auto err = read_string(doc, "datacontenttype", false, content_type); !err.empty()) return fail(err);
  if (!content_type.empty() && content_type != "application/json" &&
      content_type.rfind("application/json;", 0) != 0)
    return fail("attribute 'datacontenttype': must be \"application/json\"");
  if (auto err = read_string(doc, "causationid", false, e.causationid); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "correlationid", false, e.correlationid); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "traceparent", false, e.traceparent); !err.empty()) return fail(err);
  if (auto err = read_string(doc, "tracestate", false, e.tracestate); !err.empty()) return fail(err);
  if (auto err = trace_problem(e.traceparent, e.tracestate); !err.empty()) return fail(err);
  if (auto it = doc.find("traceparent"); it != doc.end() && it->is_string() && e.traceparent.empty())
    return fail("attribute 'traceparent': " + traceparent_problem(""));  // present, but empty
  std::string ignored;
  if (auto err = read_string(doc, "dataschema", false, ignored); !err.empty()) return fail(err);
  if (doc.contains("data_base64"))
    return fail("attribute 'data_base64': binary data is not accepted; send 'data'");
  if (auto it = doc.find("data"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) return fail("attribute 'data': must be a JSON object");
    e.data = std::move(*it);
  }
  for (const auto& [name, value] : doc.items()) {
    if (name == "data") continue;
    if (!valid_extension_name(name))
      return fail("attribute '" + printable(name, 64) + "': names must be lower-case letters and digits");
    if (value.is_object() || value.is_array())
      return fail("attribute '" + printable(name, 64) + "': must be a string, number or boolean");
    if (known_attribute(name) || value.is_null()) continue;
    if (!e.extensions.is_object()) e.extensions = json::object();
    e.extensions[name] = value;
  }
  r.event = std::move(e);
  return r;
}

std::string validate_event(const event& e, const limits& lim) {
  if (e.id.empty()) return "attribute 'id': required";
  if (e.source.empty()) return "attribute 'source': required";
  if (e.type.empty()) return "attribute 'type': required";
  if (e.subject.empty()) return "attribute 'subject': required";
  for (auto [name, value] : {std::pair{"id", &e.id},
                             {"source", &e.source},
                             {"type", &e.type},
                             {"subject", &e.subject},
                             {"causationid", &e.causationid},
                             {"correlationid", &e.correlationid},
                             {"traceparent", &e.traceparent},
                             {"tracestate", &e.tracestate}}) {
    if (has_control_char(*value))
      return std::string("attribute '") + name + "': must not contain control characters";
    if (!valid_utf8(*value)) return std::string("attribute '") + name + "': must be valid UTF-8";
  }
  if (auto err = trace_problem(e.traceparent, e.tracestate); !err.empty()) return err;
  if (auto err = extensions_problem(e.extensions, lim); !err.empty()) return err;
  if (!e.time.empty() && !parse_time(e.time)) return "attribute 'time': must be an RFC 3339 date-time";
  if (!e.data.is_object()) return "attribute 'data': must be a JSON object";
  // The envelope is the first level, as in decode_event: data sits at the second.
  if (auto err = check_document(e.data, 2, lim.max_depth); !err.empty()) return err;
  return {};
}

json event_to_json(const event& e) {
  json j = {{"specversion", "1.0"}, {"id", e.id}, {"source", e.source}, {"type", e.type}};
  if (!e.subject.empty()) j["subject"] = e.subject;
  if (!e.time.empty()) j["time"] = e.time;
  j["datacontenttype"] = "application/json";
  if (!e.causationid.empty()) j["causationid"] = e.causationid;
  if (!e.correlationid.empty()) j["correlationid"] = e.correlationid;
  if (!e.traceparent.empty()) j["traceparent"] = e.traceparent;
  if (!e.tracestate.empty()) j["tracestate"] = e.tracestate;
  if (e.extensions.is_object())
    for (const auto& [name, value] : e.extensions.items()) j.emplace(name, value);
  j["data"] = e.data;
  return j;
}

void append_json(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [name, member] : v.get_ref<const json::object_t&>()) {  // items() builds strings
        if (!first) out += ',';
        first = false;
        append_json_string(out, name);
        out += ':';
        append_json(out, member);
      }
      out += '}';
      return;
    }
    case json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_ref<const json::array_t&>()) {
        if (!first) out += ',';
        first = false;
        append_json(out, item);
      }
      out += ']';
      return;
    }
    case json::value_t::string:
      append_json_string(out, v.get_ref<const std::string&>());
      return;
    case json::value_t::number_unsigned:
    case json::value_t::number_integer: {
      char digits[24];
      const auto end = v.is_number_unsigned()
                           ? std::to_chars(digits, digits + sizeof digits, v.get<std::uint64_t>()).ptr
                           : std::to_chars(digits, digits + sizeof digits, v.get<std::int64_t>()).ptr;
      out.append(digits, end);
      return;
    }
    case json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case json::value_t::null:
      out += "null";
      return;
    default:  // floats (nlohmann's own shortest form), binary and discarded values: as dump() writes them
      out += v.dump();
  }
}

json parse_json(std::string_view text) {
  json doc;
  if (detail::try_parse(text, doc, std::numeric_limits<int>::max())) return doc;
  return json::parse(text);
}

namespace {

// Reads a JSON document without building it, keeping the string value of the top-level object's
// member `key` (the last one, as a parse into a document would): top_level_string's way for what
// the fast parse leaves (fast_json.hpp).
class member_reader {
 public:
  explicit member_reader(std::string_view key) : key_(key) {}
  std::string value;  // "" while there is none

  bool null() { return not_a_string(); }
  bool boolean(bool) { return not_a_string(); }
  bool number_integer(json::number_integer_t) { return not_a_string(); }
  bool number_unsigned(json::number_unsigned_t) { return not_a_string(); }
  bool number_float(json::number_float_t, const std::string&) { return not_a_string(); }
  bool binary(json::binary_t&) { return not_a_string(); }
  bool string(std::string& s) {
    if (!at_key_) return true;
    value = std::move(s);
    at_key_ = false;
    return true;
  }
  bool start_object(std::size_t) { return enter(); }
  bool start_array(std::size_t) { return enter(); }
  bool end_object() { return leave(); }
  bool end_array() { return leave(); }
  // Keys at depth 1 are the top-level object's (an array there has none).
  bool key(std::string& k) {
    at_key_ = depth_ == 1 && k == key_;
    return true;
  }
  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception&) {
    return false;
  }

 private:
  // A value that is not a string: the member it is the value of, if it is `key`, has none.
  bool not_a_string() {
    if (at_key_) value.clear();
    at_key_ = false;
    return true;
  }
  bool enter() {
    not_a_string();
    ++depth_;
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }

  std::string_view key_;
  int depth_ = 0;
  bool at_key_ = false;
};

}  // namespace

std::string top_level_string(std::string_view text, std::string_view key) {
  std::string out;
  if (detail::try_top_level_string(text, key, out)) return out;
  member_reader r(key);
  return json::sax_parse(text.begin(), text.end(), &r) ? std::move(r.value) : std::string();
}

namespace {

// The bytes a JSON string holds as they are: printable ASCII but the quote and the backslash.
constexpr auto plain_bytes = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return plain;
}();

// How many bytes at the start of s are plain_bytes: eight at a time while none of the eight is a
// control character, a quote, a backslash or a byte of 0x80 and above (each test sets a byte's
// high bit exactly when some byte of the word is such a one), then one at a time.
std::size_t plain_prefix(std::string_view s) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    const std::uint64_t control = (w - ones * 0x20) & ~w;  // a byte below 0x20
    if (((control | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | w) & highs) != 0) break;
  }
  while (i < s.size() && plain_bytes[static_cast<unsigned char>(s[i])]) ++i;
  return i;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  const std::size_t plain = plain_prefix(s);
  if (plain == s.size()) {  // the common case: copied in one go, quotes and all
    const std::size_t at = out.size();
    out.append(s.size() + 2, '"');
    std::memcpy(out.data() + at + 1, s.data(), s.size());
    return;
  }
  if (std::any_of(s.begin() + static_cast<std::ptrdiff_t>(plain), s.end(),
                  [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    out += json(s).dump();  // UTF-8 checks and all
    return;
  }
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the characters not yet copied: copied in one go when possible
  for (std::size_t i = plain; i < s.size(); ++i) {  // the first `plain` need no escape
    const char c = s[i];
    const char* escape = nullptr;
    switch (c) {
      case '"':
        escape = "\\\"";
        break;
      case '\\':
        escape = "\\\\";
        break;
      case '\b':
        escape = "\\b";
        break;
      case '\f':
        escape = "\\f";
        break;
      case '\n':
        escape = "\\n";
        break;
      case '\r':
        escape = "\\r";
        break;
      case '\t':
        escape = "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20) continue;
    }
    out.append(s.substr(run, i - run));
    run = i + 1;
    if (escape != nullptr) {
      out += escape;
    } else {
      out += "\\u00";
      out += hex[(c >> 4) & 0xF];
      out += hex[c & 0xF];
    }
  }
  out.append(s.substr(run));
  out += '"';
}

// The attributes in nlohmann's (sorted) key order, so the bytes equal event_to_json(e).dump().
// An event with other extensions (rare: they come in from outside) is encoded through nlohmann,
// which puts them in their place.
std::string encode_event(const event& e) {
  if (e.extensions.is_object() && !e.extensions.empty()) return event_to_json(e).dump();
  std::string out;
  out.reserve(e.data.size() * 32 + 256 + e.id.size() + e.source.size() + e.type.size() + e.subject.size() +
              e.time.size() + e.causationid.size() + e.correlationid.size() + e.traceparent.size() +
              e.tracestate.size());
  auto attr = [&](std::string_view name, std::string_view value) {
    out += out.empty() ? "{\"" : ",\"";
    out += name;
    out += "\":";
    append_json_string(out, value);
  };
  if (!e.causationid.empty()) attr("causationid", e.causationid);
  if (!e.correlationid.empty()) attr("correlationid", e.correlationid);
  out += out.empty() ? "{\"data\":" : ",\"data\":";
  append_json(out, e.data);
  attr("datacontenttype", "application/json");
  attr("id", e.id);
  attr("source", e.source);
  attr("specversion", "1.0");
  if (!e.subject.empty()) attr("subject", e.subject);
  if (!e.time.empty()) attr("time", e.time);
  if (!e.traceparent.empty()) attr("traceparent", e.traceparent);
  if (!e.tracestate.empty()) attr("tracestate", e.tracestate);
  attr("type", e.type);
  out += '}';
  return out;
}

}  // namespace saga
