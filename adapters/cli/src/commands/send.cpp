// sagactl send: one event built from the options, sent to sagad, its ack printed.

#include <fstream>
#include <iterator>
#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "saga/codec.hpp"
#include "saga/uuid.hpp"
#include "sending.hpp"

namespace sagactl::commands {

namespace {

struct send_options {
  std::string type, subject, data = "{}", source = "urn:saga:sagactl", traceparent, tracestate;
  send_settings settings;
};

nlohmann::json read_data(const std::string& arg) {
  std::string text = arg;
  if (!arg.empty() && arg[0] == '@') {
    std::ifstream in(arg.substr(1), std::ios::binary);
    if (!in) throw failure(usage, "--data: cannot read " + arg.substr(1));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw failure(usage, "--data: not valid JSON");
  if (!j.is_object()) throw failure(usage, "--data: must be a JSON object");
  return j;
}

}  // namespace

run_fn send(CLI::App& cmd) {
  auto o = std::make_shared<send_options>();
  cmd.add_option("--type", o->type, "the event type")->required();
  cmd.add_option("--subject", o->subject, "the saga's id")->required();
  cmd.add_option("--data", o->data, "JSON object, or @FILE")->capture_default_str();
  cmd.add_option("--source", o->source, "the event source")->capture_default_str();
  cmd.add_option("--traceparent", o->traceparent,
                 "W3C trace context to send in (00-<trace id>-<span id>-<flags>); default: sagad starts "
                 "a new trace");
  cmd.add_option("--tracestate", o->tracestate, "W3C tracestate to send with --traceparent");
  add_send_options(cmd, o->settings);
  return [o](const globals& g) {
    saga::event e;
    e.id = saga::make_uuid_v7();
    e.source = o->source;
    e.type = o->type;
    e.subject = o->subject;
    e.time = saga::format_time(wall_clock_ms());
    e.data = read_data(o->data);
    e.traceparent = o->traceparent;
    e.tracestate = o->tracestate;
    return report_ack(send_event(e, o->settings), g.as_json);
  };
}

}  // namespace sagactl::commands
