#include "saga/operator_event.hpp"

#include "saga/codec.hpp"
#include "saga/uuid.hpp"

namespace saga {

event operator_event(std::string_view type, const operator_request& r, std::int64_t now_ms) {
  event e;
  e.id = make_uuid_v7();
  e.source = operator_source;
  e.type = type;
  e.subject = r.id;
  e.time = format_time(now_ms);
  e.data = {{"reason", r.reason}, {"operator", r.operator_name}};
  if (!r.to.empty()) e.data["to"] = r.to;
  if (!r.type.empty()) e.data["saga_type"] = r.type;
  return e;
}

}  // namespace saga
