#include "parsed_data.hpp"

#include <utility>

#include "saga/codec.hpp"

namespace saga::detail {

const std::string& parsed_data::id_of(std::string_view definition, std::string_view key) {
  id_.assign(definition);
  id_.push_back('\0');
  id_.append(key);
  return id_;
}

nlohmann::json parsed_data::take(const instance_record& inst) {
  const std::string& id = id_of(inst.definition, inst.key);
  for (map* generation : {&young_, &old_}) {
    const auto it = generation->find(id);
    if (it == generation->end()) continue;
    spare_ = generation->extract(it);
    entry& e = spare_.mapped();
    if (e.version == inst.version && e.text == inst.data) return std::move(e.doc);
    break;
  }
  return parse_json(inst.data);
}

void parsed_data::keep(std::string_view definition, std::string_view key, std::int64_t version,
                       std::string&& text, nlohmann::json&& doc) {
  const std::string& id = id_of(definition, key);
  young_.erase(id);
  old_.erase(id);
  entry e{version, std::move(text), std::move(doc)};
  if (spare_.empty()) {
    young_.emplace(id, std::move(e));
  } else {
    spare_.key() = id;
    spare_.mapped() = std::move(e);
    young_.insert(std::move(spare_));
  }
  if (young_.size() >= capacity_) {
    old_.swap(young_);
    young_.clear();
  }
}

}  // namespace saga::detail
