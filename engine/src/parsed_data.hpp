#pragma once
// parsed_data — the saga data document the engine built last, kept so that the same saga's next
// event, when it comes right after, takes the document instead of parsing the text the engine
// itself stored (issue 15: no re-parsing of what this process just wrote).
//
// An entry serves only a stored row that is still the one the engine saved with it: the same
// version and, byte for byte, the same text. A row another writer, a rolled-back transaction or
// a hand edit left is parsed as before. The document served is the one the definition produced
// (its to_json), which the engine's strict comparison finds identical to the parsed text; the one
// difference a definition could see is an integer's kind (a parse reads 5 as unsigned, to_json
// writes what the definition's type holds).
//
// One document, not many: two generations of 512 kept the documents of a thousand sagas alive
// and freed them in bursts, and the allocator then handed out memory that had long left the
// processor's caches. Keeping only the last one cut sagad's CPU per event by about a sixth
// where sagas come back after many other sagas' events, as orders do (docs/performance.md, "Issue
// 15, fifteenth round"): a parse costs less than that memory did.
//
// Thread-safety: none (the engine's thread).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "saga/store.hpp"

namespace saga::detail {

// A kept document and what it is the data of. At namespace scope, not nested in parsed_data:
// clang decides std::optional<nested>'s default constructibility while the enclosing class is
// still incomplete, before the default member initializers count, and then refuses emplace()
// (the ASan and fuzz builds are clang's).
struct parsed_entry {
  std::string definition, key;
  std::int64_t version = 0;
  std::string text;
  nlohmann::json doc;
};

class parsed_data {
 public:
  // inst.data as a document: the one kept for this row (taken out), or parsed; throws what
  // nlohmann::json::parse throws.
  nlohmann::json take(const instance_record& inst);
  // Keeps `doc` as the document of `text`, the data of (definition, key) as saved at `version`,
  // in place of the one kept before.
  void keep(std::string_view definition, std::string_view key, std::int64_t version, std::string&& text,
            nlohmann::json&& doc);

 private:
  std::optional<parsed_entry> last_;
};

}  // namespace saga::detail
