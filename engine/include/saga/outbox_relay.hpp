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
// Thread-safety: one thread at a time; give the relay its own store
// (connection) when it runs beside an engine on another thread.

#include <cstddef>
#include <cstdint>
#include <span>

#include "saga/clock.hpp"
#include "saga/publisher.hpp"
#include "saga/store.hpp"

namespace saga {

struct relay_options {
  std::size_t chunk = 1000;                               // rows per read and per mark transaction
  std::int64_t retention_ms = 7LL * 24 * 3600 * 1000;     // published outbox rows kept
  std::int64_t dedup_window_ms = 7LL * 24 * 3600 * 1000;  // inbox rows kept
};

class outbox_relay {
 public:
  outbox_relay(store& s, publisher& p, const clock& c, relay_options o = {});

  // Publishes all unpublished rows; returns how many. Throws what the store
  // or the publisher threw, after marking what was published before.
  std::size_t drain();

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

 private:
  store& store_;
  publisher& publisher_;
  const clock& clock_;
  relay_options options_;
  std::int64_t last_published_ = -1;  // -1: not read from the store yet
  // Every committed row up to last_published_ is published: the last drain() read the outbox
  // to its end and nothing failed since (publish() may then skip reading the outbox).
  bool caught_up_ = false;

  // Hands rows[0..) to the publisher and marks them; on a failure marks what went out.
  std::size_t publish_rows(std::span<const outbox_record> rows);
};

}  // namespace saga
