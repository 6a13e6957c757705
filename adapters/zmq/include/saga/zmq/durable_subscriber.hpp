#pragma once
// saga::zmq::durable_subscriber — a subscriber that persists each event before it is processed
// (docs/reconciliation.md).
//
// Every published event it receives is written to the subscriber's own SQLite database, in the
// table `saga_received` (keyed by publication sequence, and by (source, id) for the events its
// handler processed), in the same transaction as the handler's own writes: the handler gets the
// database with that transaction open (as engine::handle_in_transaction gives a host service the
// engine's). So "received", "processed" and "position" (the highest sequence in the table) can
// never disagree, whatever crashes when: a crash before the commit loses the event's row and the
// handler's writes together, and the restarted subscriber fetches it again from sagad's replay.
//
// An event whose (source, id) was processed already (sagad published it twice, or a producer
// reused an id) is recorded as a duplicate and does not reach the handler; one outside
// `type_prefixes` is recorded as filtered; one whose payload does not decode as undecodable. All
// of them are recorded, so the table holds the whole log the subscriber saw: that is what
// `sagactl reconcile --subscriber-db` compares with sagad's outbox, range digest by range digest.
//
// With `digest_endpoint` set, it binds a ROUTER socket there that answers the replay socket's
// digest requests ({"digest":{"from":A,"to":B}}) over its table (`sagactl reconcile --subscriber`),
// between the polls that deliver events.
//
// Thread-safety: none; one thread. Errors: subscriber_error from the subscriber underneath;
// SQLite::Exception from the database; whatever the handler throws, after rolling back the
// poll's transaction (its events are delivered again by the next poll).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <zmq.hpp>

#include "saga/event.hpp"
#include "saga/zmq/digest.hpp"
#include "saga/zmq/subscriber.hpp"

namespace saga::zmq {

struct durable_options {
  std::string database;                    // the subscriber's SQLite file (created when missing)
  std::vector<std::string> type_prefixes;  // the handler gets only these types (empty: all)
  std::chrono::milliseconds replay_timeout{2000};
  curve_client curve;            // as subscriber_options::curve
  std::string digest_endpoint;   // empty: none; "tcp://127.0.0.1:*" lets the system pick a port
  std::int64_t start_after = 0;  // an empty table starts after this sequence
};

// How a received event was recorded (saga_received.outcome).
inline constexpr const char* outcome_processed = "processed";
inline constexpr const char* outcome_duplicate = "duplicate";
inline constexpr const char* outcome_filtered = "filtered";
inline constexpr const char* outcome_undecodable = "undecodable";

class durable_subscriber {
 public:
  // Called inside the subscriber's write transaction on `db`, once per event to process.
  using handler = std::function<void(SQLite::Database& db, const delivery& d, const saga::event& e)>;

  durable_subscriber(::zmq::context_t& ctx, std::string events_endpoint, std::string replay_endpoint,
                     durable_options options, handler fn);
  ~durable_subscriber();
  durable_subscriber(const durable_subscriber&) = delete;
  durable_subscriber& operator=(const durable_subscriber&) = delete;

  // Answers pending digest requests, then waits up to `timeout` for events and records each new
  // one (and runs the handler) in one transaction per call. Returns how many were recorded.
  std::size_t poll(std::chrono::milliseconds timeout);

  // The highest sequence recorded (0: none).
  std::int64_t position();
  // The digest endpoint actually bound (empty without one).
  const std::string& digest_endpoint() const { return digest_endpoint_; }
  SQLite::Database& database() { return db_; }

  // The range digest of a subscriber database's table (digest.hpp); the table must exist.
  static range_digest digest(SQLite::Database& db, std::int64_t from, std::int64_t to);

 private:
  void record(const delivery& d);
  void answer_digest_requests();
  void restart_subscriber();

  ::zmq::context_t& ctx_;
  std::string events_endpoint_, replay_endpoint_;
  durable_options options_;
  handler fn_;
  SQLite::Database db_;
  std::unique_ptr<subscriber> sub_;
  std::unique_ptr<::zmq::socket_t> digests_;
  std::string digest_endpoint_;
};

}  // namespace saga::zmq
