#pragma once
// sagactl reconcile's comparison of sagad's published log with a durable subscriber's record
// (docs/reconciliation.md): range digests over halving ranges, on both sides.
//
// A log_side answers digests of ranges of sequences: sagad through its replay socket, a durable
// subscriber through its database file or its digest endpoint. compare_logs() asks both for the
// digest of each range of at most digest_range_cap sequences and, where they differ, halves it:
// when the left half agrees the right half must differ, so each difference costs at most two
// requests per level, about 2·log2(n) for one difference among n sequences. At a single sequence
// the counts tell what differs: on sagad only (missing at the subscriber), on the subscriber only
// (extra: sagad never published it), on both (different content).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/zmq/curve.hpp"
#include "saga/zmq/digest.hpp"

namespace sagactl {

// One digest answer: the digest, or the first sequence still retained when the side pruned the
// start of the range (`pruned_first` > 0; nothing below it can be checked).
struct log_answer {
  saga::zmq::range_digest digest;
  std::int64_t last = 0;  // the side's highest sequence
  std::int64_t pruned_first = 0;
};

// What one side knows of one sequence (for the report): empty when it has no such event.
struct log_entry {
  std::string id, type;
};

class log_side {
 public:
  virtual ~log_side() = default;
  virtual log_answer digest(std::int64_t from, std::int64_t to) = 0;
  // The event at `sequence`, when the side can tell (not counted as a digest request).
  virtual std::optional<log_entry> entry(std::int64_t sequence) = 0;
  std::int64_t requests() const { return requests_; }

 protected:
  std::int64_t requests_ = 0;
};

// sagad's replay socket, or a durable subscriber's digest endpoint (same protocol). Each request
// waits up to `timeout`; no answer is failure(unreachable_or_rejected).
std::unique_ptr<log_side> remote_log(::zmq::context_t& ctx, const std::string& endpoint,
                                     const saga::zmq::curve_client& curve, std::chrono::milliseconds timeout,
                                     const std::string& name);
// A durable subscriber's database file (read-only).
std::unique_ptr<log_side> subscriber_database(const std::string& path);

struct compare_options {
  std::int64_t from = 1;
  std::optional<std::int64_t> to;        // default: the higher of the two sides' last sequences
  std::size_t max_differences = 10'000;  // listed; beyond it the report says it was cut
};

// Compares `publisher` (sagad) with `subscriber`; the report as `sagactl reconcile --json` prints
// it (docs/cli.md).
nlohmann::json compare_logs(log_side& publisher, log_side& subscriber, const compare_options& options);

}  // namespace sagactl
