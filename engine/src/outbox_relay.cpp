#include "saga/outbox_relay.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "saga/uuid.hpp"

namespace saga {

outbox_relay::outbox_relay(store& s, publisher& p, const clock& c, relay_options o)
    : store_(s),
      publisher_(p),
      clock_(c),
      options_(std::move(o)),
      at_insert_(s.sequences_at_insert()),
      owner_(at_insert_ ? std::string() : make_uuid_v7(c.now_ms())) {}

void outbox_relay::log(const std::string& message, bool lost) const {
  if (options_.log) options_.log(message, lost);
}

void outbox_relay::number() {
  if (at_insert_) return;
  if (epoch_ == 0) {
    const auto now = clock_.now_ms();
    if (now < next_claim_ms_) return;
    next_claim_ms_ = now + std::max<std::int64_t>(1, options_.lease_ms / 4);
    epoch_ = store_.claim_relay(owner_, options_.lease_ms);
    if (epoch_ == 0) return;  // another relay holds the lease
    log("outbox relay: this relay numbers the outbox now (lease epoch " + std::to_string(epoch_) + ")",
        false);
  }
  for (;;) {
    const auto n = store_.number_outbox(epoch_, options_.lease_ms, options_.chunk);
    if (n < 0) {
      log("outbox relay: lease epoch " + std::to_string(epoch_) +
              " was taken over by another relay; numbering fenced, nothing numbered, no longer numbering",
          true);
      epoch_ = 0;
      next_claim_ms_ = clock_.now_ms() + options_.lease_ms;
      return;
    }
    if (static_cast<std::size_t>(n) < options_.chunk) return;
  }
}

// A lease renewed for 0 ms has expired: claim_relay lets the next claimant have it.
void outbox_relay::release() {
  if (at_insert_ || epoch_ == 0) return;
  epoch_ = 0;
  store_.claim_relay(owner_, 0);
}

std::size_t outbox_relay::publish_rows(std::span<const outbox_record> rows) {
  // Whatever happens below, the next publish() reads the outbox first: until the marks are
  // written, rows up to the new last_published_ may be unmarked.
  caught_up_ = false;
  std::size_t done = 0;
  try {
    for (const auto& r : rows) {
      publisher_.publish(r);
      ++done;
    }
  } catch (...) {
    if (done > 0) {
      store_.mark_published(rows.front().sequence, rows[done - 1].sequence, clock_.now_ms());
      last_published_ = std::max(last_published_, rows[done - 1].sequence);
    }
    throw;
  }
  store_.mark_published(rows.front().sequence, rows.back().sequence, clock_.now_ms());
  last_published_ = std::max(last_published_, rows.back().sequence);
  return done;
}

void outbox_relay::limit_to_durable(std::function<std::int64_t()> durable_through) {
  durable_through_ = std::move(durable_through);
}

std::size_t outbox_relay::drain() {
  number();
  if (last_published_ < 0) last_published_ = store_.last_published_sequence();
  const std::int64_t limit = durable_through_ ? durable_through_() : std::numeric_limits<std::int64_t>::max();
  std::size_t total = 0;
  for (;;) {
    // Rows below the last published sequence can still be unpublished when another process
    // published past them; read from the start of the unpublished rows, not from last_published_.
    auto rows = store_.unpublished(0, options_.chunk);
    if (rows.empty()) break;
    const std::size_t read = rows.size();
    const auto first_held =
        std::find_if(rows.begin(), rows.end(), [&](const outbox_record& r) { return r.sequence > limit; });
    const bool held = first_held != rows.end();  // it and what follows wait until they are durable
    rows.erase(first_held, rows.end());
    if (!rows.empty()) total += publish_rows(rows);
    if (held || read < options_.chunk) break;
  }
  caught_up_ = true;
  return total;
}

std::size_t outbox_relay::publish(std::span<const outbox_record> committed) {
  if (committed.empty()) return 0;
  if (!at_insert_) return drain();  // provisional numbers: the sequences are in the store
  // From memory only when these rows are exactly what follows the last published one: a gap
  // is another process's commit (or rows published meanwhile by a drain), which the outbox
  // has and memory does not.
  const bool follows = caught_up_ && committed.front().sequence == last_published_ + 1 &&
                       committed.back().sequence - committed.front().sequence + 1 ==
                           static_cast<std::int64_t>(committed.size());
  if (!follows) return drain();
  const std::size_t n = publish_rows(committed);
  caught_up_ = true;
  return n;
}

std::int64_t outbox_relay::prune() {
  const auto now = clock_.now_ms();
  return store_.prune(now - options_.retention_ms, now - options_.dedup_window_ms, options_.chunk);
}

}  // namespace saga
