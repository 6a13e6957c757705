// sagactl redrive: a dead letter's stored event sent to sagad again, same id and source.
// A payload cut at the dead-letter size limit is not the event that was received: it is
// refused here rather than sent as something else.

#include <memory>

#include "catalog.hpp"
#include "command.hpp"
#include "saga/codec.hpp"
#include "sending.hpp"

namespace sagactl::commands {

run_fn redrive(CLI::App& cmd) {
  struct options {
    std::int64_t id = 0;
    send_settings settings;
  };
  auto o = std::make_shared<options>();
  cmd.add_option("id", o->id, "the dead letter's id (see dead-letters)")->required();
  add_send_options(cmd, o->settings);
  return [o](const globals& g) {
    const std::string which = "dead letter " + std::to_string(o->id);
    catalog::stored_dead_letter letter;
    {
      catalog c(g.db, g.pg_schema);
      letter = c.dead_letter(o->id);
    }
    if (letter.truncated)
      throw failure(unreachable_or_rejected,
                    which + " was truncated at the dead-letter size limit (" +
                        std::to_string(letter.payload.size()) +
                        " bytes kept): the event as received is lost, it cannot be redriven");
    auto decoded = saga::decode_event(letter.payload);
    if (!decoded)
      throw failure(unreachable_or_rejected,
                    which + " is not a valid event (" + decoded.error + "): sagad would reject it again");
    return report_ack(send_event(*decoded.event, o->settings), g.as_json);
  };
}

}  // namespace sagactl::commands
