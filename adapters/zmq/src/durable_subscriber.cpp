#include "saga/zmq/durable_subscriber.hpp"

#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"

namespace saga::zmq {

namespace {

using json = nlohmann::json;

constexpr const char* schema = R"(
CREATE TABLE IF NOT EXISTS saga_received (
  sequence INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS saga_received_processed ON saga_received (source, id)
  WHERE outcome = 'processed';
)";

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool wanted(const std::vector<std::string>& prefixes, const std::string& type) {
  if (prefixes.empty()) return true;
  for (const auto& p : prefixes)
    if (type.compare(0, p.size(), p) == 0) return true;
  return false;
}

bool processed_before(SQLite::Database& db, const saga::event& e) {
  SQLite::Statement q(db,
                      "SELECT 1 FROM saga_received WHERE source = ?1 AND id = ?2 AND outcome = 'processed'");
  q.bind(1, e.source);
  q.bind(2, e.id);
  return q.executeStep();
}

}  // namespace

durable_subscriber::durable_subscriber(::zmq::context_t& ctx, std::string events_endpoint,
                                       std::string replay_endpoint, durable_options options, handler fn)
    : ctx_(ctx),
      events_endpoint_(std::move(events_endpoint)),
      replay_endpoint_(std::move(replay_endpoint)),
      options_(std::move(options)),
      fn_(std::move(fn)),
      // The busy timeout from the start: the first statements (WAL mode, the schema; after a
      // crash, the log's recovery) need locks another connection may hold for a moment.
      db_(options_.database, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 5000) {
  db_.exec("PRAGMA journal_mode = WAL");
  db_.exec("PRAGMA synchronous = FULL");
  db_.exec(schema);
  if (!options_.digest_endpoint.empty()) {
    digests_ = std::make_unique<::zmq::socket_t>(ctx_, ::zmq::socket_type::router);
    digests_->set(::zmq::sockopt::linger, 0);
    digests_->set(::zmq::sockopt::maxmsgsize, std::int64_t{64 * 1024});
    digests_->bind(options_.digest_endpoint);
    digest_endpoint_ = digests_->get(::zmq::sockopt::last_endpoint);
  }
  restart_subscriber();
}

durable_subscriber::~durable_subscriber() = default;

std::int64_t durable_subscriber::position() {
  return db_.execAndGet("SELECT coalesce(max(sequence), 0) FROM saga_received").getInt64();
}

// The subscriber underneath resumes after the table's position: the table is the only record.
void durable_subscriber::restart_subscriber() {
  subscriber_options o;
  const auto recorded = position();
  o.start_after = recorded > 0 ? recorded : options_.start_after;
  o.replay_timeout = options_.replay_timeout;
  o.curve = options_.curve;
  sub_.reset();
  sub_ = std::make_unique<subscriber>(ctx_, events_endpoint_, replay_endpoint_, o);
}

void durable_subscriber::record(const delivery& d) {
  const auto decoded = saga::decode_event(d.payload);
  const char* outcome = outcome_undecodable;
  if (decoded.event) {
    const auto& e = *decoded.event;
    if (processed_before(db_, e)) {
      outcome = outcome_duplicate;
    } else if (!wanted(options_.type_prefixes, e.type)) {
      outcome = outcome_filtered;
    } else {
      outcome = outcome_processed;
      fn_(db_, d, e);
    }
  }
  SQLite::Statement insert(
      db_,
      "INSERT INTO saga_received (sequence, source, id, type, payload, received_ms, outcome) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  insert.bind(1, d.sequence);
  insert.bind(2, decoded.event ? decoded.event->source : std::string());
  insert.bind(3, decoded.event ? decoded.event->id : std::string());
  insert.bind(4, d.type);
  insert.bind(5, d.payload);
  insert.bind(6, wall_ms());
  insert.bind(7, outcome);
  insert.exec();
}

std::size_t durable_subscriber::poll(std::chrono::milliseconds timeout) {
  answer_digest_requests();
  std::optional<SQLite::Transaction> tx;
  std::size_t recorded = 0;
  try {
    sub_->poll(timeout, [&](const delivery& d) {
      if (!tx) tx.emplace(db_, SQLite::TransactionBehavior::IMMEDIATE);
      record(d);
      ++recorded;
    });
    if (tx) tx->commit();
  } catch (...) {
    // The transaction rolls back with `tx`; the subscriber underneath already counts the
    // events as delivered, so it starts again from what the table holds.
    tx.reset();
    restart_subscriber();
    throw;
  }
  return recorded;
}

range_digest durable_subscriber::digest(SQLite::Database& db, std::int64_t from, std::int64_t to) {
  digest_builder b(from, to);
  SQLite::Statement q(
      db,
      "SELECT sequence, id, type, payload FROM saga_received WHERE sequence BETWEEN ?1 AND ?2 "
      "ORDER BY sequence");
  q.bind(1, from);
  q.bind(2, to);
  while (q.executeStep())
    b.add(q.getColumn(0).getInt64(), q.getColumn(1).getString(), q.getColumn(2).getString(),
          q.getColumn(3).getString());
  return b.finish();
}

// Digest requests queued since the last poll, answered from the table (no waiting).
void durable_subscriber::answer_digest_requests() {
  if (!digests_) return;
  for (int answered = 0; answered < 100; ++answered) {
    std::vector<::zmq::message_t> frames;
    if (!::zmq::recv_multipart(*digests_, std::back_inserter(frames), ::zmq::recv_flags::dontwait)) return;
    if (frames.size() < 2) continue;
    std::string body;
    const auto req = json::parse(frames.back().to_string_view(), nullptr, false);
    if (!req.is_object() || !req.contains("digest")) {
      body = json{{"error", "bad_request"}, {"reason", "expected {\"digest\":{\"from\":A,\"to\":B}}"}}.dump();
    } else if (const auto r = read_digest_request(req.at("digest")); !r.problem.empty()) {
      body = json{{"error", "bad_request"}, {"reason", r.problem}}.dump();
    } else {
      body = digest_reply_body(digest(db_, r.from, r.to), position());
    }
    frames.back().rebuild(body.data(), body.size());
    ::zmq::send_multipart(*digests_, frames, ::zmq::send_flags::dontwait);
  }
}

}  // namespace saga::zmq
