#include "saga/postgres/store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "pq.hpp"
#include "rows.hpp"
#include "schema.hpp"
#include "statements.hpp"

namespace saga::postgres {

using detail::outbox_rows;
using detail::parked_rows;
using detail::q;
using detail::read_timer;

namespace {

std::vector<std::string> distinct(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// Saga keys as the JSON array the lock statements take. A subject that is not UTF-8 (the engine
// rejects its event right after locking) locks its U+FFFD-replaced spelling: it must not make the
// batch throw.
std::string key_array(const std::vector<std::string>& keys) {
  return nlohmann::json(keys).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

struct store::impl {
  explicit impl(const options& opts)
      : conn(detail::connect(opts)),
        schema(opts.schema),
        stall_timeout_ms(opts.stall_timeout_ms),
        channel(notify_channel(opts.schema)) {
    if (stall_timeout_ms < 0 || stall_timeout_ms > INT32_MAX)
      throw std::invalid_argument("saga::postgres::options::stall_timeout_ms must be 0 to 2^31-1");
    quoted = conn.quote_identifier(schema);
    set_up();
  }

  // The search path, the schema's migration and the prepared statements: what a new connection
  // (or one reconnected) needs before its first call.
  void set_up() {
    conn.exec("open", "SET search_path TO " + quoted);
    conn.exec("open", "SET idle_in_transaction_session_timeout = " + std::to_string(stall_timeout_ms));
    detail::migrate(conn, schema, quoted);
    for (const auto& s : detail::statements) conn.prepare(s.name, s.types, s.sql);
    if (listening) conn.exec("open", "LISTEN " + conn.quote_identifier(channel));  // reconnected
  }

  pq::result run(const char* operation, q which, const pq::params& p = {}) {
    return conn.run(operation, detail::statements[which].name, p);
  }

  // A write whose result the caller does not need: in a transaction begun by store::begin() it is
  // queued in the connection's pipeline and goes with the next statement whose result is needed
  // (a read, append_outbox's id, the COMMIT), in the same round trip; its failure is thrown
  // there, named by its own operation. Elsewhere it runs at once.
  void write(const char* operation, q which, const pq::params& p) {
    if (pipelining)
      conn.send(operation, detail::statements[which].name, p);
    else
      run(operation, which, p);
  }

  void require_transaction(const char* operation) const {
    if (!conn.in_transaction()) throw store_error(std::string(operation) + ": no transaction is open");
  }

  // A transaction ends (committed or rolled back): nothing it knew holds any more.
  void ended() {
    savepoint_open = false;
    wrote_outbox = false;
    pipelining = false;
    parked_empty.reset();
    rows_added = rows_added_at_savepoint = {};
  }

  void commit(const char* operation) {
    const bool announce_after = wrote_outbox;
    // A failed transaction is only rolled back by the COMMIT: nothing more is sent in it.
    if ((rows_added.inbox != 0 || rows_added.outbox != 0) && !conn.failed())
      write(operation, detail::q_count_tables,
            pq::params().integer(rows_added.inbox).integer(rows_added.outbox));
    ended();
    const auto r = run(operation, detail::q_commit);  // with the queued writes: one round trip
    // COMMIT of a failed transaction rolls it back and says so only in its command tag.
    if (r.command() != "COMMIT")
      throw store_error(std::string(operation) + ": the transaction had failed and was rolled back");
    if (announce_after) announce();
    fold_counts();
  }

  // Folds the kept counts' change rows (schema 4) after a commit, at most once a second per
  // store: the change rows stay about a second's worth, which a reader adds up. Its own short
  // transaction, after the commit; a failure leaves the rows for the next fold (the counts are
  // right either way), so nothing is thrown.
  void fold_counts() noexcept {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_fold < fold_interval) return;
    last_fold = now;
    try {
      run("fold_counts", detail::q_fold_counts);
    } catch (...) {
      if (conn.in_transaction()) rollback();
    }
  }

  // Wakes the relay: one notification after a commit that wrote outbox rows, in a statement (a
  // transaction) of its own, so that no writer holds the notify queue's lock while it holds its
  // sagas' locks or waits for its commit's flush. Not when this store is the relay (it numbers
  // right after its own commits). A failure loses only the wake-up (the relay's poll numbers the
  // rows): the commit stands, so nothing is thrown.
  // Its commit does not wait for a WAL flush (synchronous_commit off, for that transaction only): a
  // notification needs no durability, and the notify lock is then held for no flush either.
  void announce() noexcept {
    if (relay_epoch > 0) return;
    try {
      conn.exec("notify", "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_notify(" +
                              conn.quote_literal(channel) + ", ''); COMMIT");
    } catch (...) {
      rollback();  // a failure in the middle: no transaction left open
    }
  }

  // LISTEN while this store holds the relay lease, and not otherwise (what a listener is sent
  // is read only by the relay).
  void listen(bool on) {
    if (on == listening) return;
    conn.exec(on ? "listen" : "unlisten", (on ? "LISTEN " : "UNLISTEN ") + conn.quote_identifier(channel));
    listening = on;
    if (!on) conn.take_notifications();  // what arrived before: nobody's any more
  }

  void rollback() noexcept {
    ended();
    conn.discard();  // queued writes (a failure among them would make PostgreSQL skip the ROLLBACK)
    try {
      run("rollback", detail::q_rollback);
    } catch (...) {
      // No transaction, or the connection is gone: either way the transaction is gone.
    }
  }

  // Runs f in the caller's transaction, or in one of its own when there is none, so that a
  // method writing several statements is one commit either way.
  template <class F>
  void atomically(const char* operation, F&& f) {
    if (conn.in_transaction()) {
      std::forward<F>(f)();
      return;
    }
    run(operation, detail::q_begin);
    try {
      std::forward<F>(f)();
      commit(operation);
    } catch (...) {
      rollback();
      throw;
    }
  }

  pq::connection conn;
  std::string schema;
  std::int64_t stall_timeout_ms;
  std::string quoted;
  bool savepoint_open = false;
  const std::string channel;     // notify_channel(schema)
  bool wrote_outbox = false;     // the open transaction appended outbox rows
  std::int64_t relay_epoch = 0;  // the relay lease's epoch while this store holds it, else 0
  bool listening = false;        // LISTEN channel is in force on the connection
  // In a transaction begun by store::begin(): writes are queued (write()).
  bool pipelining = false;
  // Whether the parked table was empty, read once in this transaction (parked_of); park() forgets.
  std::optional<bool> parked_empty;
  // Inbox and outbox rows the open transaction added (negative: pruned), written to the kept
  // counts at its commit; as they were at its savepoint, for a rollback to it.
  struct table_rows {
    std::int64_t inbox = 0;
    std::int64_t outbox = 0;
  } rows_added, rows_added_at_savepoint;
  static constexpr std::chrono::milliseconds fold_interval{1000};
  std::chrono::steady_clock::time_point last_fold{};
};

store::store(const options& opts) : impl_(std::make_unique<impl>(opts)) {}
store::~store() = default;

int store::schema_version() {
  return detail::schema_version(impl_->conn);
}
const std::string& store::schema() const {
  return impl_->schema;
}

// ---------------------------------------------------------------------------------------------
// Transactions

void store::begin() {
  // A connection lost between transactions is made again here, where nothing is half done.
  if (impl_->conn.broken() && !impl_->conn.in_transaction()) {
    impl_->conn.reset();
    impl_->set_up();
  }
  impl_->ended();
  // BEGIN goes with the transaction's first statement whose result is needed (lock_sagas).
  impl_->conn.send("begin", detail::statements[detail::q_begin].name, pq::params());
  impl_->pipelining = true;
}

void store::commit() {
  impl_->require_transaction("commit");
  impl_->commit("commit");
}

void store::rollback() noexcept {
  impl_->rollback();
}

bool store::in_transaction() const {
  return impl_->conn.in_transaction();
}

void store::lock_sagas(const std::vector<std::string>& keys) {
  impl_->require_transaction("lock_sagas");
  if (keys.empty()) return;
  impl_->run("lock_sagas", detail::q_lock_sagas, pq::params().text(key_array(keys)));
}

std::vector<std::string> store::try_lock_sagas(const std::vector<std::string>& keys) {
  impl_->require_transaction("try_lock_sagas");
  if (keys.empty()) return {};
  const auto r = impl_->run("try_lock_sagas", detail::q_try_lock_sagas, pq::params().text(key_array(keys)));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
  return out;
}

void store::savepoint() {
  impl_->require_transaction("savepoint");
  impl_->run("savepoint", detail::q_savepoint);
  impl_->savepoint_open = true;
  impl_->rows_added_at_savepoint = impl_->rows_added;
}

void store::release_savepoint() {
  impl_->require_transaction("release_savepoint");
  if (!impl_->savepoint_open) throw store_error("release_savepoint: no savepoint is open");
  impl_->savepoint_open = false;
  impl_->run("release_savepoint", detail::q_release_savepoint);
}

void store::rollback_to_savepoint() {
  impl_->require_transaction("rollback_to_savepoint");
  if (!impl_->savepoint_open) throw store_error("rollback_to_savepoint: no savepoint is open");
  impl_->savepoint_open = false;
  impl_->run("rollback_to_savepoint", detail::q_rollback_to_savepoint);
  impl_->run("rollback_to_savepoint", detail::q_release_savepoint);
  impl_->rows_added = impl_->rows_added_at_savepoint;
}

// ---------------------------------------------------------------------------------------------
// Inbox, instances, history, outbox

std::optional<std::string> store::find_ack(std::string_view source, std::string_view event_id) {
  const auto r = impl_->run("find_ack", detail::q_find_ack, pq::params().text(source).text(event_id));
  if (r.rows() == 0) return std::nullopt;
  return r.text(0, 0);
}

void store::insert_inbox(const inbox_record& r) {
  impl_->atomically("insert_inbox", [&] {
    impl_->run("insert_inbox", detail::q_insert_inbox,
               pq::params()
                   .text(r.source)
                   .text(r.event_id)
                   .text(r.definition)
                   .text(r.key)
                   .text(r.ack)
                   .integer(r.received_ms));
    ++impl_->rows_added.inbox;
  });
}

std::optional<instance_record> store::load_instance(std::string_view definition, std::string_view key) {
  const auto r =
      impl_->run("load_instance", detail::q_load_instance, pq::params().text(definition).text(key));
  if (r.rows() == 0) return std::nullopt;
  instance_record i;
  i.definition = definition;
  i.key = key;
  i.state = r.text(0, 0);
  i.data = r.text(0, 1);
  i.version = r.integer(0, 2);
  i.fingerprint = r.text(0, 3);
  i.correlation_id = r.text(0, 4);
  i.created_ms = r.integer(0, 5);
  i.updated_ms = r.integer(0, 6);
  i.state_since_ms = r.integer(0, 7);
  i.finished = !r.is_null(0, 8);
  i.definition_version = r.integer(0, 9);
  return i;
}

void store::save_instance(const instance_record& r) {
  pq::params p;
  p.text(r.definition).text(r.key).text(r.state).text(r.data).integer(r.version).text(r.fingerprint);
  p.text(r.correlation_id).integer(r.created_ms).integer(r.updated_ms).integer(r.state_since_ms);
  p.optional_integer(r.finished ? std::optional<std::int64_t>(r.state_since_ms) : std::nullopt);
  p.integer(r.definition_version);
  impl_->write("save_instance", detail::q_save_instance, p);
}

void store::append_history(const history_record& r) {
  pq::params p;
  p.text(r.definition).text(r.key).integer(r.version).text(r.event_id).text(r.event_source);
  p.text(r.event_type).text(r.event_time).text(r.event_data).text(r.from_state).text(r.to_state);
  p.text(r.outcome).integer(r.recorded_ms).optional_integer(r.outbox_first).optional_integer(r.outbox_last);
  p.text(r.sender).text(r.traceparent).text(r.tracestate).text(r.extensions).integer(r.definition_version);
  impl_->write("append_history", detail::q_append_history, p);
}

trace_context store::saga_trace(std::string_view definition, std::string_view key) {
  const auto r = impl_->run("saga_trace", detail::q_saga_trace, pq::params().text(definition).text(key));
  if (r.rows() == 0) return {};
  return trace_context{r.text(0, 0), r.text(0, 1)};
}

std::int64_t store::append_outbox(const outbox_record& r) {
  pq::params p;
  p.text(r.event_id).text(r.type).text(r.definition).text(r.key).text(r.payload).integer(r.created_ms);
  p.optional_integer(r.published_ms);
  std::int64_t id = 0;
  impl_->atomically("append_outbox", [&] {
    id = impl_->run("append_outbox", detail::q_append_outbox, p).integer(0, 0);
    ++impl_->rows_added.outbox;
    impl_->wrote_outbox = true;  // its commit wakes the relay
  });
  return id;
}

// ---------------------------------------------------------------------------------------------
// Dead letters

std::int64_t store::add_dead_letter(const dead_letter_record& r) {
  // The rejection happened at last_ms when the caller says so, else at created_ms.
  const std::int64_t at = r.last_ms != 0 ? r.last_ms : r.created_ms;
  std::int64_t id = 0;
  impl_->atomically("add_dead_letter", [&] {
    if (!r.event_id.empty()) {
      const auto found = impl_->run("add_dead_letter", detail::q_find_dead_letter,
                                    pq::params().text(r.source).text(r.event_id).text(r.payload));
      if (found.rows() > 0) {
        id = found.integer(0, 0);
        impl_->run("add_dead_letter", detail::q_count_dead_letter,
                   pq::params().integer(at).text(r.reason).integer(id));
        return;
      }
    }
    pq::params p;
    p.text(r.event_id).text(r.source).text(r.type).text(r.subject).text(r.reason).text(r.payload);
    p.integer(r.created_ms).integer(at).boolean(r.truncated).text(r.sender);
    id = impl_->run("add_dead_letter", detail::q_add_dead_letter, p).integer(0, 0);
  });
  return id;
}

std::int64_t store::prune_dead_letters(std::int64_t before_ms, std::int64_t keep_max, std::size_t limit) {
  constexpr const char* op = "prune_dead_letters";
  std::int64_t removed = 0;
  impl_->atomically(op, [&] {
    removed = impl_->run(op, detail::q_expired_dead_letters, pq::params().integer(before_ms).limit(limit))
                  .affected();
    auto left = limit - static_cast<std::size_t>(removed);
    if (left == 0) return;
    const std::int64_t keep = std::max<std::int64_t>(keep_max, 0);
    const auto over = impl_->run(op, detail::q_senders_over, pq::params().integer(keep).limit(left));
    for (int i = 0; i < over.rows() && left > 0; ++i) {
      const auto excess = static_cast<std::size_t>(over.integer(i, 1) - keep);
      const auto sender = over.text(i, 0);
      const auto n = impl_
                         ->run(op, detail::q_oldest_dead_letters_of,
                               pq::params().text(sender).limit(std::min(left, excess)))
                         .affected();
      removed += n;
      left -= static_cast<std::size_t>(n);
    }
  });
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Timers: in their saga's instance row (statements.hpp), changed by one UPDATE each.

std::int64_t store::arm_timer(std::string_view definition, std::string_view key, std::string_view name,
                              std::int64_t due_ms) {
  const auto r = impl_->run("arm_timer", detail::q_arm_timer,
                            pq::params().text(definition).text(key).text(name).integer(due_ms));
  if (r.rows() == 0)
    throw store_error("arm_timer: saga '" + std::string(definition) + "/" + std::string(key) +
                      "' has no instance row (a timer is kept in its saga's row)");
  return r.integer(0, 0);
}

// Disarming a timer that is not armed, or of a saga without an instance row, writes nothing.
void store::disarm_timer(std::string_view definition, std::string_view key, std::string_view name) {
  impl_->write("disarm_timer", detail::q_disarm_timer, pq::params().text(definition).text(key).text(name));
}

// Each definition's earliest `limit`, through its own part of instances_due, merged: a
// definition whose timers nobody fires never fills or slows the batch.
std::vector<timer_record> store::due_timers(std::int64_t now_ms, std::size_t limit,
                                            const std::vector<std::string>& definitions) {
  std::vector<timer_record> out;
  if (limit == 0) return out;
  for (const auto& definition : distinct(definitions)) {
    const auto r = impl_->run("due_timers", detail::q_due_timers_of,
                              pq::params().text(definition).integer(now_ms).limit(limit));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_timer(r, i));
  }
  const auto earlier = [](const timer_record& a, const timer_record& b) {
    return std::tie(a.due_ms, a.definition, a.key, a.name) < std::tie(b.due_ms, b.definition, b.key, b.name);
  };
  std::sort(out.begin(), out.end(), earlier);
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> store::due_timers_elsewhere(
    std::int64_t now_ms, const std::vector<std::string>& definitions) {
  const auto armed = impl_->run("due_timers_elsewhere", detail::q_timer_definitions);
  const auto ours = distinct(definitions);
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (int i = 0; i < armed.rows(); ++i) {
    const auto definition = armed.text(i, 0);
    if (std::binary_search(ours.begin(), ours.end(), definition)) continue;
    const auto r = impl_->run("due_timers_elsewhere", detail::q_count_due_of,
                              pq::params().text(definition).integer(now_ms));
    if (const auto due = r.integer(0, 0); due > 0) out.emplace_back(definition, due);
  }
  return out;
}

std::vector<timer_record> store::timers_of(std::string_view definition, std::string_view key) {
  const auto r = impl_->run("timers_of", detail::q_timers_of, pq::params().text(definition).text(key));
  std::vector<timer_record> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(read_timer(r, i));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parked events

std::int64_t store::park(const parked_record& r) {
  pq::params p;
  p.text(r.definition).text(r.key).text(r.event_id).text(r.source).text(r.type).text(r.payload);
  p.integer(r.parked_ms).text(r.sender);
  impl_->parked_empty.reset();
  return impl_->run("park", detail::q_park, p).integer(0, 0);
}

// After every transition (engine::retry_parked): in a transaction of store::begin(), whether the
// parked table is empty is read once, rather than the table searched for every saga. No other
// writer can park an event of this transaction's sagas meanwhile: it would need their locks.
std::vector<parked_record> store::parked_of(std::string_view definition, std::string_view key) {
  if (impl_->pipelining) {
    auto& empty = impl_->parked_empty;
    if (!empty) empty = !impl_->run("parked_of", detail::q_any_parked).boolean(0, 0);
    if (*empty) return {};
  }
  return parked_rows(impl_->run("parked_of", detail::q_parked_of, pq::params().text(definition).text(key)));
}

std::int64_t store::count_parked(std::string_view definition, std::string_view key) {
  return impl_->run("count_parked", detail::q_count_parked, pq::params().text(definition).text(key))
      .integer(0, 0);
}

std::int64_t store::count_parked_total() {
  return impl_->run("count_parked_total", detail::q_count_parked_total).integer(0, 0);
}

std::int64_t store::count_parked_by_sender(std::string_view sender) {
  return impl_->run("count_parked_by_sender", detail::q_count_parked_by_sender, pq::params().text(sender))
      .integer(0, 0);
}

void store::remove_parked(std::int64_t id) {
  impl_->write("remove_parked", detail::q_remove_parked, pq::params().integer(id));
}

std::vector<parked_record> store::orphaned_parked(std::int64_t before_ms, std::size_t limit) {
  return parked_rows(
      impl_->run("orphaned_parked", detail::q_orphaned_parked, pq::params().integer(before_ms).limit(limit)));
}

// ---------------------------------------------------------------------------------------------
// Definitions

std::optional<definition_record> store::load_definition(std::string_view name, std::int64_t version) {
  const auto r =
      impl_->run("load_definition", detail::q_load_definition, pq::params().text(name).integer(version));
  if (r.rows() == 0) return std::nullopt;
  return definition_record{std::string(name), version, r.text(0, 0), r.text(0, 1), r.integer(0, 2)};
}

void store::save_definition(const definition_record& r) {
  pq::params p;
  p.text(r.name).integer(r.version).text(r.fingerprint).text(r.graph).integer(r.registered_ms);
  impl_->run("save_definition", detail::q_save_definition, p);
}

std::vector<std::pair<std::int64_t, std::int64_t>> store::running_versions(std::string_view definition) {
  const auto r = impl_->run("running_versions", detail::q_running_versions, pq::params().text(definition));
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.integer(i, 0), r.integer(i, 1));
  return out;
}

std::vector<std::int64_t> store::stored_versions(std::string_view definition) {
  const auto r = impl_->run("stored_versions", detail::q_stored_versions, pq::params().text(definition));
  std::vector<std::int64_t> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.integer(i, 0));
  return out;
}

std::vector<std::string> store::instances_outside(std::string_view definition, std::int64_t version,
                                                  const std::vector<std::string>& states) {
  const auto counted = impl_->run("instances_outside", detail::q_counted_states,
                                  pq::params().text(definition).integer(version));
  std::vector<std::string> out;
  for (int i = 0; i < counted.rows(); ++i) {
    const std::string state = counted.text(i, 0);
    if (std::find(states.begin(), states.end(), state) != states.end()) continue;
    const auto keys = impl_->run("instances_outside", detail::q_keys_in_state,
                                 pq::params().text(definition).text(state).integer(version));
    for (int k = 0; k < keys.rows(); ++k) out.push_back(keys.text(k, 0));
  }
  std::sort(out.begin(), out.end());  // by key, as bytes (the keys' collation is "C")
  return out;
}

// ---------------------------------------------------------------------------------------------
// Outbox relay

std::vector<outbox_record> store::unpublished(std::int64_t after_sequence, std::size_t limit) {
  return outbox_rows(
      impl_->run("unpublished", detail::q_unpublished, pq::params().integer(after_sequence).limit(limit)));
}

// One statement: the marks and last_published commit together, in or out of a transaction.
void store::mark_published(std::int64_t from_sequence, std::int64_t to_sequence, std::int64_t published_ms) {
  impl_->run("mark_published", detail::q_mark_published,
             pq::params().integer(published_ms).integer(from_sequence).integer(to_sequence));
}

std::int64_t store::last_published_sequence() {
  return impl_->run("last_published_sequence", detail::q_last_published).integer(0, 0);
}

std::vector<outbox_record> store::published_range(std::int64_t from_sequence, std::size_t limit) {
  return outbox_rows(impl_->run("published_range", detail::q_published_range,
                                pq::params().integer(from_sequence).limit(limit)));
}

std::int64_t store::first_retained_sequence() {
  return impl_->run("first_retained_sequence", detail::q_first_retained).integer(0, 0);
}

std::int64_t store::claim_relay(std::string_view owner, std::int64_t lease_ms) {
  if (impl_->conn.in_transaction()) throw store_error("claim_relay: inside a transaction");
  const auto r = impl_->run("claim_relay", detail::q_claim_relay, pq::params().text(owner).integer(lease_ms));
  const std::int64_t epoch = r.rows() == 0 || lease_ms <= 0 ? 0 : r.integer(0, 0);  // 0 ms: handed back
  impl_->relay_epoch = epoch;
  impl_->listen(epoch > 0);
  return r.rows() == 0 ? 0 : r.integer(0, 0);
}

// One transaction: the fence (the lease row, still this epoch's, locked until the commit), then
// the numbering. A relay that lost its lease numbers nothing; one that lost its connection while
// it stalled in here (the server ends an idle transaction after stall_timeout_ms) fails at its
// next statement or its commit, and its lease is another's by the time it reconnects.
std::int64_t store::number_outbox(std::int64_t epoch, std::int64_t lease_ms, std::size_t limit) {
  constexpr const char* op = "number_outbox";
  if (impl_->conn.in_transaction()) throw store_error("number_outbox: inside a transaction");
  begin();
  try {
    if (impl_->run(op, detail::q_renew_relay, pq::params().integer(epoch).integer(lease_ms)).affected() ==
        0) {
      impl_->rollback();
      impl_->relay_epoch = 0;
      impl_->listen(false);
      return -1;
    }
    const auto n = impl_->run(op, detail::q_number_outbox, pq::params().limit(limit)).affected();
    impl_->commit(op);
    return n;
  } catch (...) {
    impl_->rollback();
    throw;
  }
}

int store::wakeup_fd() {
  return impl_->listening && !impl_->conn.broken() ? impl_->conn.socket() : -1;
}

int store::take_wakeups() {
  if (!impl_->listening || impl_->conn.in_transaction()) return 0;
  return impl_->conn.take_notifications();
}

std::string store::notify_channel(std::string_view schema) {
  constexpr std::size_t most = 63;  // NAMEDATALEN - 1
  std::string name = std::string(schema) + ".outbox";
  if (name.size() <= most) return name;
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a, 64 bits: the same in every build
  for (const unsigned char c : schema) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return "saga.outbox." + std::string(hex);
}

// The outbox goes only as a prefix of the log: from its first row up to the first one that is
// unpublished or was published at or after the cutoff, so first_retained_sequence() is exactly
// where replay can start and no hole is ever left behind it.
std::int64_t store::prune(std::int64_t outbox_before_ms, std::int64_t inbox_before_ms, std::size_t limit) {
  std::int64_t removed = 0;
  if (limit == 0) return removed;
  impl_->atomically("prune", [&] {
    const auto head = impl_->run("prune", detail::q_outbox_head, pq::params().limit(limit));
    std::int64_t first = 0, last = 0;
    for (int i = 0; i < head.rows(); ++i) {
      if (head.is_null(i, 1) || head.integer(i, 1) >= outbox_before_ms) break;
      if (first == 0) first = head.integer(i, 0);
      last = head.integer(i, 0);
    }
    if (first != 0) {
      const auto n =
          impl_->run("prune", detail::q_prune_outbox, pq::params().integer(first).integer(last)).affected();
      impl_->rows_added.outbox -= n;
      removed += n;
    }
    const auto n =
        impl_->run("prune", detail::q_prune_inbox, pq::params().integer(inbox_before_ms).limit(limit))
            .affected();
    impl_->rows_added.inbox -= n;
    removed += n;
  });
  return removed;
}

std::int64_t store::purge_finished(std::string_view definition, const std::vector<std::string>& states,
                                   std::int64_t before_ms, std::size_t limit) {
  constexpr const char* op = "purge_finished";
  std::int64_t removed = 0;
  impl_->atomically(op, [&] {
    std::vector<std::string> keys;
    for (const auto& state : distinct(states)) {
      if (keys.size() >= limit) break;
      const auto r =
          impl_->run(op, detail::q_finished,
                     pq::params().text(definition).text(state).integer(before_ms).limit(limit - keys.size()));
      for (int i = 0; i < r.rows(); ++i) keys.push_back(r.text(i, 0));
    }
    for (const auto& key : keys) {
      for (const q which : {detail::q_purge_history, detail::q_purge_parked, detail::q_purge_instance})
        impl_->run(op, which, pq::params().text(definition).text(key));
      ++removed;
    }
  });
  return removed;
}

}  // namespace saga::postgres
