#pragma once
// saga::outbox_relay — publishes committed outbox rows and marks them
// published (the transactional outbox's second half).
//
// drain() hands every unpublished row to the publisher in sequence order and
// marks each published only after the publisher took it, in one store
// transaction per chunk: a crash in between publishes those rows again on
// restart (at-least-once; subscribers deduplicate by sequence). On start,
// drain() publishes whatever was committed but not yet published.
//
// publish(rows) is the after-commit path (engine::on_commit gives the rows):
// when every row before them is known to be published (the last drain found
// nothing more, and nothing failed since) and they follow the last published
// sequence without a gap, they go out from memory — the outbox is not read
// back; otherwise (another process committed in between, a publish failed)
// it falls back to drain(). Either way the rows are marked published after
// the publisher took them, as drain() does.
//
// prune() deletes published rows older than the retention (a prefix of the
// log only: replay never meets a hole) and inbox rows older than the dedup
// window, in bounded chunks. Sequences are never reused (AUTOINCREMENT).
//
// A store that numbers outbox rows after the commit (store::sequences_at_insert() false: the
// PostgreSQL store, several writers on one database) has one relay at a time number them: drain()
// first claims or renews the store's relay lease (store::claim_relay) and, while this relay holds
// it, numbers what is committed (store::number_outbox, fenced by the lease's epoch); then it
// publishes what is numbered, as every relay does, numbering or not. A relay whose lease another
// took over numbers nothing more, says so through options.log, and tries to claim the lease
// again after options.lease_ms. publish() then always drains: committed rows carry provisional
// numbers, not sequences.
//
// Thread-safety: one thread at a time; give the relay its own store
// (connection) when it runs beside an engine on another thread.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "saga/clock.hpp"
#include "saga/publisher.hpp"
#include "saga/store.hpp"

namespace saga {

struct relay_options {
  std::size_t chunk = 1000;                               // rows per read and per mark transaction
  std::int64_t retention_ms = 7LL * 24 * 3600 * 1000;     // published outbox rows kept
  std::int64_t dedup_window_ms = 7LL * 24 * 3600 * 1000;  // inbox rows kept
  // Stores that number after the commit: how long a relay lease lasts unrenewed (each numbering
  // renews it; a relay that stops, dies or stalls longer hands the numbering to another).
  std::int64_t lease_ms = 5000;
  // Optional: the lease gained (`lost` false) and lost (`lost` true: a warning).
  std::function<void(std::string_view message, bool lost)> log;
};

class outbox_relay {
 public:
  outbox_relay(store& s, publisher& p, const clock& c, relay_options o = {});

  // Publishes all unpublished rows (up to the durable limit, below); returns how many. Throws
  // what the store or the publisher threw, after marking what was published before.
  std::size_t drain();

  // For a writer whose commits become durable after they return (sagad syncs its log on a thread
  // of its own): `durable_through` says up to which sequence the committed rows are durable, and
  // drain() publishes no row after it (they wait for a later drain() or publish()). Unset: all.
  void limit_to_durable(std::function<std::int64_t()> durable_through);

  // Publishes `committed` — rows just committed, in sequence order — from memory when nothing
  // before them is unpublished, else drain()s; returns how many rows were published. Throws
  // as drain() does.
  std::size_t publish(std::span<const outbox_record> committed);

  // Deletes what retention and the dedup window allow, at most options.chunk
  // rows of each table in one transaction; returns rows deleted (call again,
  // e.g. on the next tick, while it returns more than zero).
  std::int64_t prune();

  // The highest sequence published by anyone (0 when none).
  std::int64_t last_published() const { return last_published_; }

  // Hands the lease back (a relay stopping: another takes the numbering over at once rather than
  // a lease later). Throws what the store threw.
  void release();

  // The store numbers rows after the commit (committed rows carry no sequence yet).
  bool numbers_after_commit() const { return !at_insert_; }
  // This relay holds the lease and numbers (a store that numbers at insert: always).
  bool numbering() const { return at_insert_ || epoch_ > 0; }
  // Stores that number after the commit and announce commits (store::wakeup_fd): while this relay
  // numbers, a descriptor that becomes readable when another writer committed outbox rows (-1:
  // none, or not the relay), to poll beside other work; woken() reads what arrived and says
  // whether any writer did since the last call (then drain() numbers their rows). Never throw.
  int wakeup_fd() const { return at_insert_ ? -1 : store_.wakeup_fd(); }
  bool woken() { return !at_insert_ && store_.take_wakeups() > 0; }

 private:
  store& store_;
  publisher& publisher_;
  const clock& clock_;
  relay_options options_;
  std::function<std::int64_t()> durable_through_;
  std::int64_t last_published_ = -1;  // -1: not read from the store yet
  // Every committed row up to last_published_ is published: the last drain() read the outbox
  // to its end (or to the durable limit) and nothing failed since (publish() may then skip
  // reading the outbox).
  bool caught_up_ = false;
  const bool at_insert_;            // store::sequences_at_insert()
  const std::string owner_;         // this relay, to the lease
  std::int64_t epoch_ = 0;          // the lease's epoch while this relay holds it, else 0
  std::int64_t next_claim_ms_ = 0;  // clock time of the next claim while not holding it

  // Claims or renews the lease and numbers what is committed (stores that number after commit).
  void number();
  void log(const std::string& message, bool lost) const;

  // Hands rows[0..) to the publisher and marks them; on a failure marks what went out.
  std::size_t publish_rows(std::span<const outbox_record> rows);
};

}  // namespace saga
