#pragma once
// saga::event — one immutable domain event, as a CloudEvents 1.0 envelope.
//
// `specversion` is always "1.0" and `datacontenttype` always
// "application/json", so neither is stored. An optional attribute holds an
// empty string when it has no value; the codec then leaves it out of the JSON
// (never writing null). A plain value type: copy it freely between threads.

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace saga {

struct event {
  std::string id;                                  // unique per source
  std::string source;                              // URI-reference of the producer
  std::string type;                                // e.g. "payment.succeeded"
  std::string subject;                             // the saga's correlation key (e.g. the order id)
  std::string time;                                // RFC 3339, UTC; empty when absent
  nlohmann::json data = nlohmann::json::object();  // always a JSON object
  std::string causationid;                         // extension: id of the event that caused this one
  std::string correlationid;                       // extension: id of the event that started the saga
  // Extensions of the CloudEvents Distributed Tracing extension (W3C Trace Context, saga/trace.hpp):
  // `00-<trace id>-<parent id>-<flags>` and the vendors' state, kept as is; empty when absent.
  std::string traceparent;
  std::string tracestate;
  // Every other extension attribute the event carries (and `dataschema`): a JSON object of
  // name -> string, number or boolean, encoded with the event; null or empty when there are none.
  nlohmann::json extensions;
  // Not part of the CloudEvent (never encoded): the name of the authenticated key the transport
  // received it with (a CURVE key's name in the authorized-keys file, docs/security.md); empty
  // for plaintext, the engine's own events and an embedding host. Recorded in the history.
  std::string sender;
};

// Limits every incoming event is checked against (DESIGN.md "event envelope").
struct limits {
  std::size_t max_event_bytes = 64 * 1024;
  int max_depth = 32;
};

}  // namespace saga
