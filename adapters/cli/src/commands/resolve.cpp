// sagactl resolve: the operator moves a saga out of needs_attention (through sagad).

#include <memory>

#include "command.hpp"
#include "sending.hpp"

namespace sagactl::commands {

run_fn resolve(CLI::App& cmd) {
  struct options {
    operator_request request;
    send_settings settings;
  };
  auto o = std::make_shared<options>();
  add_operator_options(cmd, o->request);
  cmd.add_option("--to", o->request.to, "the state to resolve into")->required();
  add_send_options(cmd, o->settings);
  return [o](const globals& g) {
    const auto e = operator_event("saga.operator.resolve", o->request, wall_clock_ms());
    return report_ack(send_event(e, o->settings), g.as_json);
  };
}

}  // namespace sagactl::commands
