#include "parsed_data.hpp"

#include <utility>

#include "saga/codec.hpp"

namespace saga::detail {

nlohmann::json parsed_data::take(const instance_record& inst) {
  std::optional<entry> kept = std::exchange(last_, std::nullopt);
  if (kept && kept->version == inst.version && kept->key == inst.key && kept->definition == inst.definition &&
      kept->text == inst.data)
    return std::move(kept->doc);
  return parse_json(inst.data);
}

void parsed_data::keep(std::string_view definition, std::string_view key, std::int64_t version,
                       std::string&& text, nlohmann::json&& doc) {
  // Assigned member by member: the strings keep their buffers from one saga to the next.
  if (!last_) last_.emplace();
  last_->definition.assign(definition);
  last_->key.assign(key);
  last_->version = version;
  last_->text = std::move(text);
  last_->doc = std::move(doc);
}

}  // namespace saga::detail
