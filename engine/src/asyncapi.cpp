// A definition's event contract as an AsyncAPI 3.0 document (saga::to_asyncapi; docs/cli.md
// "sagactl definitions"). The application it describes is the saga engine running the
// definition: it receives the events the definition consumes and sends those it produces, each
// a CloudEvents 1.0 event in JSON (DESIGN.md "The event envelope").
#include <cctype>
#include <set>

#include "saga/graph.hpp"

namespace saga {
namespace {

constexpr std::string_view content_type = "application/cloudevents+json";

// AsyncAPI's map keys (channels, operations, messages) allow [A-Za-z0-9_-] only: "order.placed"
// becomes "order_placed", and a key already taken gets a numbered suffix.
class keys {
 public:
  std::string of(const std::string& type) {
    if (const auto it = given_.find(type); it != given_.end()) return it->second;
    std::string k = type;
    for (auto& c : k)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
    const std::string base = k;
    for (int n = 2; taken_.count(k) > 0; ++n) k = base + "_" + std::to_string(n);
    taken_.insert(k);
    return given_[type] = k;
  }

 private:
  std::map<std::string, std::string> given_;
  std::set<std::string> taken_;
};

// The CloudEvents envelope of one event type, its data as the definition declares it.
nlohmann::json envelope(const graph& g, const std::string& type) {
  const auto declared = g.schemas.find(type);
  nlohmann::json data = declared != g.schemas.end() ? declared->second : nlohmann::json{{"type", "object"}};
  return {
      {"type", "object"},
      {"required", {"specversion", "id", "source", "type", "subject"}},
      {"properties",
       {{"specversion", {{"type", "string"}, {"const", "1.0"}}},
        {"id", {{"type", "string"}, {"minLength", 1}}},
        {"source", {{"type", "string"}, {"minLength", 1}}},
        {"type", {{"type", "string"}, {"const", type}}},
        {"subject", {{"type", "string"}, {"minLength", 1}, {"description", "the saga's correlation key"}}},
        {"time", {{"type", "string"}, {"format", "date-time"}}},
        {"datacontenttype", {{"type", "string"}, {"const", "application/json"}}},
        {"data", std::move(data)}}}};
}

struct contract {
  nlohmann::json channels = nlohmann::json::object();
  nlohmann::json operations = nlohmann::json::object();
  nlohmann::json messages = nlohmann::json::object();
  keys names;

  void add(const graph& g, const std::string& type, bool send, std::string summary) {
    const std::string k = names.of(type);
    if (!channels.contains(k)) {
      channels[k] = {
          {"address", type}, {"title", type}, {"messages", {{k, {{"$ref", "#/components/messages/" + k}}}}}};
      messages[k] = {{"name", type},
                     {"title", type},
                     {"contentType", std::string(content_type)},
                     {"payload", envelope(g, type)}};
    }
    operations[(send ? "send_" : "receive_") + k] = {
        {"action", send ? "send" : "receive"},
        {"channel", {{"$ref", "#/channels/" + k}}},
        {"summary", std::move(summary)},
        {"messages", {{{"$ref", "#/channels/" + k + "/messages/" + k}}}}};
  }
};

}  // namespace

nlohmann::json to_asyncapi(const graph& g) {
  contract c;
  for (const auto& type : g.consumes) {
    if (type.starts_with(timer_event_prefix)) continue;
    c.add(g, type, false,
          g.starts_with(type) ? "Starts a saga of " + g.name + " (keyed by subject), or moves one"
                              : "Moves the " + g.name + " saga its subject names");
  }
  for (const auto& type : g.produces) c.add(g, type, true, "Emitted by a " + g.name + " saga");
  return {{"asyncapi", "3.0.0"},
          {"info",
           {{"title", g.name},
            {"version", g.fingerprint.empty() ? std::string("0") : g.fingerprint},
            {"description", "The event contract of the saga definition '" + g.name +
                                "': the CloudEvents it receives and those it sends. The version is "
                                "the fingerprint of its transition table."}}},
          {"defaultContentType", std::string(content_type)},
          {"channels", std::move(c.channels)},
          {"operations", std::move(c.operations)},
          {"components", {{"messages", std::move(c.messages)}}}};
}

}  // namespace saga
