// libFuzzer target for the event codec (issue 7, "Fuzzing").
//
// Every input goes through saga::decode_event. It must never crash, throw or
// trip ASan/UBSan. When it decodes, three invariants are checked and a
// violation abort()s (libFuzzer then keeps the input as a crash):
//   - the decoded event passes saga::validate_event (decode and validate
//     apply the same rules);
//   - encode_event(decoded) decodes again (with the size limit lifted: the
//     encoder adds "datacontenttype" and may legitimately grow the text);
//   - the second decoding equals the first, attribute by attribute.
// And whenever the fast parse (engine/src/fast_json.hpp) answers, nlohmann's parser accepts the
// text and builds the same document, to the kind of every number; top_level_string reads the
// "type" nlohmann's document has (its fast way answering only for texts nlohmann accepts); and
// encode_event writes event_to_json's dump(), byte for byte.
// A rejection must come with a non-empty, printable-ASCII reason (reasons
// are quoted in acks, which must stay valid JSON).

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "saga/codec.hpp"
#include "saga/event.hpp"

#include "fast_json.hpp"
#include "support/same_json.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "codec_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

void same(const char* name, const std::string& a, const std::string& b) {
  if (a != b) fail("round trip changed an attribute", std::string(name) + ": '" + a + "' vs '" + b + "'");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::json fast;
  if (saga::detail::try_parse(text, fast, INT_MAX)) {
    const auto reference = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (reference.is_discarded())
      fail("the fast parse accepted what nlohmann rejects", std::string(text.substr(0, 200)));
    if (!saga::test::same_json(fast, reference))
      fail("the fast parse built another document", fast.dump() + " vs " + reference.dump());
  }
  {
    const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    const auto member = doc.is_object() ? doc.find("type") : doc.end();
    const std::string type = doc.is_object() && member != doc.end() && member->is_string()
                                 ? member->get<std::string>()
                                 : std::string();
    if (saga::top_level_string(text, "type") != type)
      fail("top_level_string read another type", std::string(text.substr(0, 200)));
    std::string fast_type;
    if (saga::detail::try_top_level_string(text, "type", fast_type) && doc.is_discarded())
      fail("the fast member read answered for what nlohmann rejects", std::string(text.substr(0, 200)));
  }
  const saga::limits lim;  // the daemon's defaults: 64 KiB, depth 32
  const saga::decode_result r = saga::decode_event(text, lim);
  if (!r) {
    if (r.error.empty()) fail("rejected without a reason", std::string(text.substr(0, 200)));
    if (!printable_ascii(r.error)) fail("reason is not printable ASCII", r.error);
    return 0;
  }
  if (!r.error.empty()) fail("decoded but with an error", r.error);
  const saga::event& e = *r.event;

  if (auto why = saga::validate_event(e, lim); !why.empty()) fail("decoded event fails validate_event", why);

  const std::string encoded = saga::encode_event(e);
  if (encoded != saga::event_to_json(e).dump()) fail("encode_event is not dump()", encoded.substr(0, 300));
  saga::limits roomy = lim;
  roomy.max_event_bytes = encoded.size() + 1;
  const saga::decode_result again = saga::decode_event(encoded, roomy);
  if (!again) fail("encoded event does not decode", again.error + " <- " + encoded.substr(0, 300));
  const saga::event& f = *again.event;
  same("id", e.id, f.id);
  same("source", e.source, f.source);
  same("type", e.type, f.type);
  same("subject", e.subject, f.subject);
  same("time", e.time, f.time);
  same("causationid", e.causationid, f.causationid);
  same("correlationid", e.correlationid, f.correlationid);
  if (e.data != f.data) fail("round trip changed data", e.data.dump() + " vs " + f.data.dump());
  // Encoding is deterministic: the second encoding is byte-identical.
  if (saga::encode_event(f) != encoded) fail("second encoding differs", encoded.substr(0, 300));
  return 0;
}
