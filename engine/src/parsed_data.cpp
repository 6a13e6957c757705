#include "parsed_data.hpp"

#include <utility>

#include "saga/codec.hpp"

namespace saga::detail {

nlohmann::json parsed_data::take(const instance_record& inst) {
  if (last_ && last_->version == inst.version && last_->key == inst.key &&
      last_->definition == inst.definition && last_->text == inst.data) {
    nlohmann::json doc = std::move(last_->doc);
    last_.reset();  // served once: the saga's transition keeps its new document
    return doc;
  }
  return parse_json(inst.data);
}

void parsed_data::keep(std::string_view definition, std::string_view key, std::int64_t version,
                       std::string&& text, nlohmann::json&& doc) {
  // Assigned member by member: the name and key keep their buffers from one saga to the next.
  if (!last_) last_.emplace();
  last_->definition.assign(definition);
  last_->key.assign(key);
  last_->version = version;
  last_->text = std::move(text);
  last_->doc = std::move(doc);
}

}  // namespace saga::detail
