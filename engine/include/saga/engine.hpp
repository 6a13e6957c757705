#pragma once
// saga::engine — runs sagas: each incoming event moves one saga instance, and
// the new state, its history, the inbox record and the outbox of follow-on
// events commit together in one store transaction.
//
// Thread-safety: an engine is used from one thread at a time (it owns no
// locks); subscribe() may be called only before events flow. In-process
// subscribers run on the calling thread, after the commit.
//
// Errors: whatever one event does — invalid input, an exception of any type
// from its definition's guards and actions, its saga data failing to
// (de)serialise, a parked event that no longer decodes — rejects that event
// alone with a reason (a value, not an exception), keeps it as a dead letter,
// and every other event of the batch is handled as if it had come alone
// (docs/reliability.md, "Per-event isolation"). Only a store failure
// (saga::store_error) leaves handle_batch(): the whole batch was rolled back,
// nothing of it is durable and nothing may be acknowledged; the caller
// retries, and may set a single event aside with set_aside().

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "saga/clock.hpp"
#include "saga/definition.hpp"
#include "saga/event.hpp"
#include "saga/store.hpp"

namespace saga {

namespace detail {
class parsed_data;  // src/parsed_data.hpp
}

enum class ack_status { accepted, duplicate, rejected };
enum class ack_outcome { none, transitioned, parked, ignored };

std::string_view to_string(ack_status s);
std::string_view to_string(ack_outcome o);
// By name ("rejected", "transitioned"), so that test frameworks (doctest's CHECK(a == b)) and
// logs print them readably; an ack prints as its wire JSON (below).
std::ostream& operator<<(std::ostream& out, ack_status s);
std::ostream& operator<<(std::ostream& out, ack_outcome o);

// The answer to one incoming event (wire protocol v1's ack).
struct ack {
  std::string id;  // empty when the input could not be parsed (null on the wire)
  std::string source;
  ack_status status = ack_status::rejected;
  ack_outcome outcome = ack_outcome::none;
  std::string reason;
  std::string saga_type;  // the definition's name
  std::string saga_id;    // the saga's correlation key
  std::string saga_state;

  bool ok() const { return status != ack_status::rejected; }
};

nlohmann::json to_json(const ack& a);
// to_json(a).dump(), byte for byte, written directly (an ack is stored and sent for every event).
std::string encode_ack(const ack& a);
std::ostream& operator<<(std::ostream& out, const ack& a);  // encode_ack(a)
ack ack_from_json(const nlohmann::json& j);

// Input that failed to decode; it is rejected and kept as a dead letter.
struct invalid_input {
  std::string raw;     // as received
  std::string reason;  // from the codec
  std::string id;      // what could be read of it
  std::string source;
  std::string sender;  // as event::sender
  std::string type;    // when known (an event refused by its key's grants): kept on the dead letter
  std::string subject;
};

using inbound = std::variant<event, invalid_input>;

enum class log_level { debug, info, warn, error };

struct engine_options {
  // Source of follow-on events; empty means "urn:saga:<definition>".
  std::string source;
  saga::limits limits;
  // park_total_limit and dead_letter_max hold per sender key (event::sender), so that one client
  // key cannot use up the room of the others; events without a sender share one pool.
  std::size_t park_limit = 64;                                      // parked events per saga
  std::int64_t park_total_limit = 100'000;                          // parked events of all sagas, per key
  std::int64_t dead_letter_retention_ms = 30LL * 24 * 3600 * 1000;  // by last rejection
  std::int64_t dead_letter_max = 100'000;                           // rows kept per key, newest first
  std::int64_t finished_retention_ms = 0;            // finished sagas (and their history) kept; 0: forever
  std::int64_t park_expiry_ms = 24LL * 3600 * 1000;  // for sagas that never start
  std::function<void(log_level, std::string_view)> log;  // optional
};

// A follow-on event after its commit, as in-process subscribers get it.
struct published_event {
  std::int64_t sequence = 0;
  saga::event event;
  outbox_record record;  // the outbox row it was committed as (record.sequence == sequence)
};

// What registering a definition found.
struct registration {
  std::string name;
  std::int64_t version = 1;
  std::string fingerprint;
  std::string previous_fingerprint;   // empty unless the stored one differs
  std::vector<std::string> changes;   // diff against the stored graph
  std::vector<std::string> orphaned;  // keys of instances in a state it no longer has
};

// Unfinished sagas of a registered definition on a version no registered definition provides
// (engine::unserved_versions): their events are rejected until that version is registered again
// or they are migrated.
struct unserved_version {
  std::string definition;
  std::int64_t version = 0;
  std::int64_t sagas = 0;
};

struct fired_timer {
  timer_record timer;
  saga::ack ack;
};

class engine {
 public:
  using subscriber = std::function<void(const published_event&)>;

  engine(store& s, const clock& c, engine_options options = {});
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Registers a definition: runs the static checks (throws std::invalid_argument
  // naming every problem), stores its graph and fingerprint, and reports a
  // changed fingerprint and instances whose state no longer exists through
  // the log. Call before events flow.
  //
  // Versions (docs/dsl.md, "Changing a workflow"): several versions of one name may be
  // registered; a new saga starts on the newest, a running one stays on the version it started
  // on until an operator migrates it (saga.operator.migrate).
  registration add(std::shared_ptr<const definition> d);
  const definition* find(std::string_view name) const;  // the newest version
  const definition* find(std::string_view name, std::int64_t version) const;
  std::vector<std::shared_ptr<const definition>> definitions() const;
  // Per registered name: versions that unfinished sagas run on and no registered definition
  // provides (sagad refuses to start on any unless --allow-orphans). Call after add().
  std::vector<unserved_version> unserved_versions();

  // Handles events in one transaction (group commit); a bad event is rejected alone.
  ack handle(const event& e);
  std::vector<ack> handle_batch(std::span<const event> events);
  std::vector<ack> handle_batch(std::span<const inbound> inputs);
  // The same, its acks into `acks` (emptied first; a caller that keeps one vector for every
  // batch saves allocating and freeing a large block per batch).
  void handle_batch(std::span<const inbound> inputs, std::vector<ack>& acks);

  // Embedding: the host has begun a transaction on the store's connection and
  // handles events inside it. Nothing is committed here; call committed() after
  // the host's commit (in-process subscribers run then), or drop the result
  // after a rollback.
  struct joined {
    std::vector<saga::ack> acks;
    std::vector<published_event> emitted;
  };
  joined handle_in_transaction(std::span<const event> events);
  void committed(joined& j);

  // A store failure that a single event keeps causing (the caller retried and
  // bisected its batch down to this one): keeps it as a dead letter with
  // `reason`, in a transaction of its own, and returns its rejected ack.
  // Throws saga::store_error when even that cannot be written (then nothing
  // may be acknowledged).
  ack set_aside(const inbound& input, std::string reason);

  // Fires timers due at `now_ms` of registered definitions (one transaction
  // per call, up to `limit` timers; call again while it returns `limit`);
  // returns what fired and the resulting acks. A timer whose firing fails is
  // disarmed and its event kept as a dead letter.
  std::vector<fired_timer> fire_due_timers(std::int64_t now_ms, std::size_t limit = 1024);

  // Timers due at `now_ms` of definitions this engine does not run, per definition.
  std::vector<std::pair<std::string, std::int64_t>> unregistered_due_timers(std::int64_t now_ms);

  // One bounded step of housekeeping, in one transaction: dead letters past
  // their retention or beyond their cap, and finished sagas past
  // finished_retention_ms (with their history), at most `limit` rows of each.
  struct pruned {
    std::int64_t dead_letters = 0;
    std::int64_t finished_sagas = 0;
    bool any() const { return dead_letters > 0 || finished_sagas > 0; }
  };
  pruned prune(std::int64_t now_ms, std::size_t limit = 1000);
  // Removes finished sagas (in a terminal state since before `before_ms`; the attention state,
  // which waits for an operator, is not finished) of every registered definition, at most
  // `limit` per call; returns how many went (sagactl purge, retention).
  std::int64_t purge_finished(std::int64_t before_ms, std::size_t limit = 1000);

  // Moves parked events of sagas that never started, parked longer than the
  // park expiry, to the dead letters; returns how many moved.
  std::size_t expire_parked(std::int64_t now_ms, std::size_t limit = 1024);

  // In-process subscribers receive each follow-on event whose type starts
  // with `type_prefix`, after its commit, in outbox order.
  void subscribe(std::string type_prefix, subscriber fn);

  // Called after every commit that wrote outbox rows, with those rows in sequence order (the
  // relay's wake-up: outbox_relay::publish hands them to the publisher without reading them
  // back). A listener that throws is logged and does not fail the committed batch.
  using commit_listener = std::function<void(std::span<const published_event>)>;
  void on_commit(commit_listener fn);

 private:
  struct batch_state;
  struct definition_entry;
  struct family;  // the registered versions of one name

  template <class Body>
  auto transact(Body&& body) -> decltype(body(std::declval<batch_state&>()));
  template <class Prepare, class One, class Refuse>
  void isolated(Prepare&& prepare, One&& one, Refuse&& refuse, std::vector<ack>& acks);
  template <class Range, class KeyOf>
  void lock_sagas(const Range& items, KeyOf&& key_of);
  void claim(std::vector<timer_record>& due, std::int64_t now_ms);
  template <class One, class Refuse>
  ack optimistic(batch_state& b, std::size_t i, One& one, Refuse& refuse);
  template <class One, class Refuse>
  ack with_savepoint(batch_state& b, std::size_t i, One& one, Refuse& refuse);
  event timer_event(const timer_record& t, const std::string& started_by) const;
  std::int64_t purge_finished_in_transaction(std::int64_t before_ms, std::size_t limit);
  ack process_external(const event& e, batch_state& b);
  ack process(const event& e, const family* target, batch_state& b);
  ack process_operator(const event& e, batch_state& b);
  ack process_migrate(const event& e, const family& f, const instance_record& inst, batch_state& b);
  ack accepted(const event& e, const std::string& name, ack_outcome o, std::string state, batch_state& b);
  ack reject(const event* e, const invalid_input* bad, std::string reason, batch_state& b);
  dispatch_output dispatch(const definition& d, std::string_view state, const nlohmann::json* data,
                           const event& e, std::int64_t now_ms);
  bool parkable(const definition_entry& entry, std::string_view state, std::string_view type) const;
  void park(const definition_entry& entry, const std::string& key, const instance_record* inst,
            const event& e, const trace_context& trace, batch_state& b);
  // `inst`: the saga as loaded (null for a new saga), moved into the result. `data`: inst->data as
  // parsed for the dispatch (null for a new saga); when the dispatch left it as it was, the stored
  // text is kept instead of encoding it again.
  instance_record apply(const definition_entry& entry, const std::string& key, instance_record* inst,
                        const nlohmann::json* data, const event& e, const trace_context& trace,
                        dispatch_output& out, batch_state& b, std::string_view outcome = "transitioned");
  std::string transition(const definition_entry& entry, const std::string& key, instance_record* inst,
                         nlohmann::json& data, const event& e, const trace_context& trace,
                         dispatch_output& out, batch_state& b);
  void retry_parked(const definition_entry& entry, instance_record& rec, batch_state& b);
  // `trace`: the event's own trace context, or the one the engine gave it (trace_of).
  void record_history(const definition& d, const instance_record& inst, const event& e,
                      const trace_context& trace, const std::string& from, const std::string& to,
                      std::string_view outcome, batch_state& b,
                      std::optional<std::int64_t> outbox_first = std::nullopt,
                      std::optional<std::int64_t> outbox_last = std::nullopt);
  void deliver(std::vector<published_event>& emitted);
  void keep_storage(std::vector<published_event>& emitted);
  void log(log_level l, std::string_view msg) const;

  store& store_;
  const clock& clock_;
  engine_options options_;
  std::vector<std::unique_ptr<definition_entry>> entries_;
  std::map<std::string, std::unique_ptr<family>, std::less<>> by_name_;
  std::map<std::string, const family*, std::less<>> by_type_;  // consumed by some version
  std::vector<std::string> names_;                             // of the registered definitions
  std::set<std::string, std::less<>> own_sources_;             // of its follow-on and timer events
  std::vector<std::pair<std::string, subscriber>> subscribers_;
  std::vector<commit_listener> commit_listeners_;
  std::vector<published_event> emitted_storage_;  // keep_storage(): the last batch's, emptied
  // The data document of the saga moved last, for its next event (src/parsed_data.hpp).
  std::unique_ptr<detail::parsed_data> parsed_;
};

}  // namespace saga
