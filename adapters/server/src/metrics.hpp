#pragma once
// metrics — what sagad counts for `--metrics` (/metrics in Prometheus' text exposition format,
// docs/operations.md "Metrics"). The loop thread writes the event-path metrics with relaxed
// atomic increments (no lock, no allocation: every labelled series exists from the start); the
// HTTP thread reads them when scraped. The database gauges (sagas by state, parked, dead
// letters, timers) are not here: the HTTP thread reads them itself (http_endpoint.hpp).
//
// Thread-safety: every member may be read from any thread while the loop thread writes.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "saga/engine.hpp"

namespace saga::server {

class counter {
 public:
  void add(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  // For a count kept elsewhere as a running total (written by one thread).
  void raise_to(std::uint64_t total) {
    if (total > value()) value_.store(total, std::memory_order_relaxed);
  }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// Fixed buckets (upper bounds, ascending); observations are counted in the first bucket they
// fit, rendered cumulatively with +Inf.
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double v);

  struct snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
  };
  snapshot read() const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;  // per bound, then +Inf
  std::atomic<double> sum_{0};
};

// The reason class of a rejection, from its reason's first words (engine and ingress reasons:
// docs/protocol.md): malformed, envelope, data, grants, storage, timer, operator, definition.
std::string_view rejection_class(std::string_view reason);

struct sagad_metrics {
  // `types`: the event types the running definitions consume; others count as "other".
  explicit sagad_metrics(const std::vector<std::string>& types);

  // One input from the ingress, settled: its type ("" for input that did not parse) and its ack.
  // (Timer firings are counted by timers_fired.)
  void count_event(std::string_view type, const saga::ack& a);

  histogram batch_size;
  histogram commit_seconds;
  histogram ack_latency_seconds;  // from the batch's read off the ingress to its ack
  histogram log_sync_seconds;     // each fdatasync of the log on its own thread (log_syncer.hpp)
  counter failed_commits;
  counter set_aside;
  counter timers_fired;
  counter replay_requests;
  counter dropped_requests;
  counter refused_by_grants;
  std::atomic<std::int64_t> last_committed_sequence{0};
  std::atomic<std::int64_t> last_published_sequence{0};
  // When the oldest committed-but-unpublished row was committed (unix ms); 0: none.
  std::atomic<std::int64_t> unpublished_since_ms{0};
  // The loop's last pass and whether the last commit attempt succeeded (/healthz).
  std::atomic<std::int64_t> loop_pass_ms{0};
  std::atomic<bool> last_commit_ok{true};

  // Events by type, status and outcome, and rejections by class: rendered by render_events.
  static constexpr std::size_t statuses = 3;  // saga::ack_status
  static constexpr std::size_t outcomes = 4;  // saga::ack_outcome
  using by_ack = std::array<counter, statuses * outcomes>;
  std::map<std::string, by_ack, std::less<>> events;  // fixed at construction
  std::map<std::string, counter, std::less<>> rejections;

  // The ingress connections active in the last minute, by CURVE key name ("" for plaintext):
  // set by the loop once a second, read by the HTTP thread.
  void set_peers(std::map<std::string, std::size_t> by_key);
  std::map<std::string, std::size_t> peers() const;

 private:
  mutable std::mutex peers_mutex_;
  std::map<std::string, std::size_t> peers_;
};

// The counts of sagad's summary line (each minute, and at the stop), read from the metrics: a
// line tells the difference between two.
struct summary_counts {
  std::map<std::string, std::uint64_t> acks;  // "accepted/transitioned", "rejected", ...
  std::uint64_t batches = 0, timers = 0, commit_failures = 0, set_aside = 0, dropped = 0, refused = 0;

  static summary_counts of(const sagad_metrics& m);
  // "N events in B batches, accepted/transitioned=…; timers fired …": what happened since `before`.
  std::string since(const summary_counts& before) const;
};

// The exposition of `m` in Prometheus' text format 0.0.4 (the database gauges are appended by
// the caller).
std::string render(const sagad_metrics& m, std::string_view version);

// Appends one sample line: name{labels} value. `labels` as (name, value) pairs; values escaped.
void append_sample(std::string& out, std::string_view name,
                   const std::vector<std::pair<std::string_view, std::string_view>>& labels, double value);
// Appends the # HELP and # TYPE lines of a family.
void append_family(std::string& out, std::string_view name, std::string_view type, std::string_view help);

}  // namespace saga::server
