// sagactl abort: the operator moves a saga to its definition's abort state (through sagad).

#include <memory>

#include "command.hpp"
#include "sending.hpp"

namespace sagactl::commands {

run_fn abort(CLI::App& cmd) {
  struct options {
    operator_request request;
    send_settings settings;
  };
  auto o = std::make_shared<options>();
  add_operator_options(cmd, o->request);
  add_send_options(cmd, o->settings);
  return [o](const globals& g) {
    const auto e = operator_event("saga.operator.abort", o->request, wall_clock_ms());
    return report_ack(send_event(e, o->settings), g.as_json);
  };
}

}  // namespace sagactl::commands
