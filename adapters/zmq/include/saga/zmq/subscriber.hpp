#pragma once
// saga::zmq::subscriber — follows sagad's published events without losing any.
//
// It subscribes to everything on the events PUB socket (DESIGN.md: a prefix
// filter would make skipped sequences look like gaps) and filters types
// itself. On start, and whenever it sees a gap — a sequence above last + 1, or
// a heartbeat announcing a sequence it has not seen — it fetches the missing
// range from the replay socket (the ZeroMQ Guide's Clone pattern). Each
// sequence is delivered once, in order; live messages at or below the last
// delivered sequence are dropped. The last sequence is kept in
// `position_file` when given (written after each poll() that delivered), so a
// restarted subscriber resumes where it stopped.
//
// Several sagad on one database (a cluster) publish one sequence between them: give every
// sagad's events endpoint, and every replay endpoint, separated by commas. The SUB socket
// connects to all (what two of them both publish is delivered once); replay requests go to one
// replay endpoint at a time, the next one when it does not answer within replay_timeout.
//
// Thread-safety: none; one thread.
// Errors: subscriber_error when replay does not answer within replay_timeout,
// answers with an error (e.g. {"error":"pruned","first":F}: the events
// wanted are gone), or the position file cannot be read or written.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "saga/zmq/curve.hpp"

namespace saga::zmq {

class subscriber_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "a,b,c" -> {"a", "b", "c"} (blanks around each trimmed, empty ones dropped): an endpoint list.
std::vector<std::string> split_endpoints(std::string_view list);

struct subscriber_options {
  std::string position_file;               // empty: keep the position in memory only
  std::int64_t start_after = 0;            // without a position file: deliver from start_after + 1
  std::vector<std::string> type_prefixes;  // deliver only these types (empty: all)
  std::chrono::milliseconds replay_timeout{2000};
  curve_client curve;  // sagad's public key and this subscriber's pair (subscriber role); empty: plaintext
};

struct delivery {
  std::int64_t sequence = 0;
  std::string type;
  std::string payload;  // the CloudEvent JSON
};

class subscriber {
 public:
  subscriber(::zmq::context_t& ctx, std::string events_endpoint, std::string replay_endpoint,
             subscriber_options options = {});
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  // Waits up to `timeout` for events and delivers every new sequence, in order,
  // to `fn` (catching up through replay first when needed). Returns how many
  // sequences were delivered to fn.
  std::size_t poll(std::chrono::milliseconds timeout, const std::function<void(const delivery&)>& fn);

  // The highest sequence handled (delivered, or skipped by the type filter).
  std::int64_t last_sequence() const { return last_; }

 private:
  using handler = std::function<void(const delivery&)>;

  std::size_t poll_messages(std::chrono::milliseconds timeout, const handler& fn);
  std::size_t on_live(std::vector<::zmq::message_t>& frames, const handler& fn);
  std::size_t catch_up(const handler& fn);
  std::size_t catch_up_from(const std::string& replay_endpoint, const handler& fn);
  std::size_t flush_pending(const handler& fn);
  std::size_t handle(const delivery& d, const handler& fn);
  // A replay reply, its header checked: frames[0] the header, then sequence and event frames.
  struct replay_reply {
    std::vector<std::string> frames;
    std::int64_t count = 0;  // events in it
    std::int64_t last = 0;   // the highest published sequence
  };
  void ask(::zmq::socket_t& dealer, const std::string& replay_endpoint, std::int64_t from);
  replay_reply answer(::zmq::socket_t& dealer, const std::string& replay_endpoint, std::int64_t from);

  ::zmq::context_t& ctx_;
  std::vector<std::string> events_endpoints_;
  std::vector<std::string> replay_endpoints_;
  std::size_t preferred_replay_ = 0;  // the replay endpoint that answered last
  subscriber_options options_;
  ::zmq::socket_t sub_;
  std::int64_t last_ = 0;
  bool caught_up_ = false;
  // Live events above last_ + 1 that arrived before the replay had the range
  // below them; delivered once the gap is filled.
  std::map<std::int64_t, delivery> pending_;
  // While pending_ is not empty: when to ask the replay again.
  std::chrono::steady_clock::time_point retry_at_{};
};

}  // namespace saga::zmq
