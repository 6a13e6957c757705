#pragma once
// parsed_data — the saga data documents the engine built lately, kept so that a saga's next event
// takes the document instead of parsing the text the engine itself stored (issue 15: no
// re-parsing of what this process just wrote).
//
// An entry serves only a stored row that is still the one the engine saved with it: the same
// version and, byte for byte, the same text. A row another writer, a rolled-back transaction or
// a hand edit left is parsed as before. The document served is the one the definition produced
// (its to_json), which the engine's strict comparison finds identical to the parsed text; the one
// difference a definition could see is an integer's kind (a parse reads 5 as unsigned, to_json
// writes what the definition's type holds).
//
// Bounded: two generations of `capacity` entries; the older goes when the younger is full, so
// what goes is what was used longest ago.
//
// Thread-safety: none (the engine's thread).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "saga/store.hpp"

namespace saga::detail {

class parsed_data {
 public:
  explicit parsed_data(std::size_t capacity) : capacity_(capacity) {}

  // inst.data as a document: the one kept for this row (taken out), or parsed; throws what
  // nlohmann::json::parse throws.
  nlohmann::json take(const instance_record& inst);
  // Keeps `doc` as the document of `text`, the data of (definition, key) as saved at `version`.
  void keep(std::string_view definition, std::string_view key, std::int64_t version, std::string&& text,
            nlohmann::json&& doc);
  std::size_t size() const { return young_.size() + old_.size(); }

 private:
  struct entry {
    std::int64_t version = 0;
    std::string text;
    nlohmann::json doc;
  };
  using map = std::unordered_map<std::string, entry>;

  // "<definition> NUL <key>", in a buffer reused for every lookup.
  const std::string& id_of(std::string_view definition, std::string_view key);

  std::size_t capacity_;
  map young_, old_;
  map::node_type spare_;  // the last entry taken out: keep() refills it instead of allocating
  std::string id_;
};

}  // namespace saga::detail
