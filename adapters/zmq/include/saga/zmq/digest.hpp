#pragma once
// Range digests of the published event log (docs/reconciliation.md): a hash over the events with
// sequences from..to that sagad computes from its outbox (the replay socket's digest request) and
// a subscriber computes from what it received, so that the two sides compare a range with one
// request, and find each difference by halving the ranges whose digests differ.
//
// The digest of a range is SHA-256 over one line per event present in it, in sequence order:
//
//   <sequence> TAB <id> TAB <type> TAB <SHA-256 of the payload, 64 lower-case hex digits> LF
//
// as lower-case hex, together with the number of events. The payload is the CloudEvent JSON
// exactly as published. An empty range has count 0 (and SHA-256 of nothing).
//
// Thread-safety: digest_builder is one object per computation; the free functions are pure.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace saga::zmq {

// The widest range one digest request may cover (rows read and hashed by sagad's replay thread).
inline constexpr std::int64_t digest_range_cap = 100'000;

struct range_digest {
  std::int64_t from = 0, to = 0;  // inclusive
  std::int64_t count = 0;         // events present in the range
  std::string sha256;             // 64 lower-case hex digits

  bool same_content(const range_digest& o) const { return count == o.count && sha256 == o.sha256; }
};

// A digest request's range, `{"from":A,"to":B}` (the value of the request's "digest"), or the
// problem with it (naming the field) in `problem`.
struct digest_request {
  std::int64_t from = 0, to = 0;
  std::string problem;
};
digest_request read_digest_request(const nlohmann::json& range);
// The request body asking for A..B, and the answer's body (`last`: the answering side's highest
// sequence).
std::string digest_request_body(std::int64_t from, std::int64_t to);
std::string digest_reply_body(const range_digest& d, std::int64_t last);

// SHA-256 of `bytes`, lower-case hex.
std::string sha256_hex(std::string_view bytes);

class digest_builder {
 public:
  digest_builder(std::int64_t from, std::int64_t to);
  ~digest_builder();
  digest_builder(const digest_builder&) = delete;
  digest_builder& operator=(const digest_builder&) = delete;

  // Adds one event; call in increasing sequence order, with from <= sequence <= to.
  void add(std::int64_t sequence, std::string_view id, std::string_view type, std::string_view payload);
  // The digest (call once).
  range_digest finish();

 private:
  struct state;
  range_digest result_;
  std::unique_ptr<state> state_;
};

}  // namespace saga::zmq
