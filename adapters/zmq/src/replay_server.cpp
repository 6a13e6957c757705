#include "saga/zmq/replay_server.hpp"

#include "retry_eintr.hpp"

#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>
#include "saga/zmq/authorizer.hpp"
#include "saga/zmq/curve.hpp"
#include "saga/zmq/digest.hpp"

namespace saga::zmq {

namespace {

using json = nlohmann::json;

std::string error_reply(std::string_view error, std::string_view reason) {
  return json{{"error", error}, {"reason", reason}}.dump();
}

// A non-negative integer field, or the reason it is not one.
struct field {
  std::optional<std::int64_t> value;
  std::string problem;
};

field read_count(const json& req, const char* name, bool required) {
  auto it = req.find(name);
  if (it == req.end()) {
    if (required) return {std::nullopt, std::string("missing \"") + name + "\""};
    return {};
  }
  if (it->is_number_unsigned()) {
    auto u = it->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return {std::nullopt, std::string("\"") + name + "\" is too large"};
    return {static_cast<std::int64_t>(u), {}};
  }
  if (it->is_number_integer()) {
    auto v = it->get<std::int64_t>();
    if (v < 0) return {std::nullopt, std::string("\"") + name + "\" must not be negative"};
    return {v, {}};
  }
  return {std::nullopt, std::string("\"") + name + "\" must be an integer"};
}

// The first sequence still retained when the log's last published sequence is `last` (see the
// header); a request from below it (when it is above 1) meets pruned rows.
std::int64_t first_kept(saga::store& store, std::int64_t last) {
  const std::int64_t first = store.first_retained_sequence();
  // Sequences start at 1 and have no gaps, so rows before `first` existed (and were pruned)
  // exactly when first > 1; an empty outbox after publishing means everything up to `last` was
  // pruned.
  return first > 0 ? first : last + 1;
}

// {"digest":{"from":A,"to":B}}: the range digest of the published events A..B (digest.hpp).
std::vector<std::string> answer_digest(saga::store& store, const json& range) {
  const auto request = read_digest_request(range);
  if (!request.problem.empty()) return {error_reply("bad_request", request.problem)};
  try {
    // Rows first, then `last` and the retention check, as for a fetch.
    digest_builder digest(request.from, request.to);
    for (std::int64_t next = request.from; next <= request.to;) {
      const auto rows = store.published_range(next, replay_limit_cap);
      for (const auto& r : rows) {
        if (r.sequence > request.to) break;
        digest.add(r.sequence, r.event_id, r.type, r.payload);
      }
      if (rows.size() < replay_limit_cap || rows.back().sequence >= request.to) break;
      next = rows.back().sequence + 1;
    }
    const std::int64_t last = store.last_published_sequence();
    const std::int64_t first = first_kept(store, last);
    if (request.from < first && first > 1) return {json{{"error", "pruned"}, {"first", first}}.dump()};
    return {digest_reply_body(digest.finish(), last)};
  } catch (const std::exception& e) {
    return {error_reply("internal", e.what())};
  }
}

// The reply frames after the envelope, for one request body.
std::vector<std::string> answer(saga::store& store, std::string_view body) {
  json req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded()) return {error_reply("bad_request", "request is not JSON")};
  if (!req.is_object()) return {error_reply("bad_request", "request is not a JSON object")};
  if (const auto it = req.find("digest"); it != req.end()) return answer_digest(store, *it);
  field from = read_count(req, "from", true);
  if (!from.value) return {error_reply("bad_request", from.problem)};
  field limit = read_count(req, "limit", false);
  if (!limit.problem.empty()) return {error_reply("bad_request", limit.problem)};
  std::size_t n = replay_limit_cap;
  if (limit.value && static_cast<std::uint64_t>(*limit.value) < replay_limit_cap)
    n = static_cast<std::size_t>(*limit.value);

  try {
    // Rows first, then `last` and the retention check (see the header).
    std::vector<outbox_record> rows;
    if (n > 0) rows = store.published_range(*from.value, n);
    const std::int64_t last = store.last_published_sequence();
    const std::int64_t first = first_kept(store, last);
    if (*from.value < first && first > 1) return {json{{"error", "pruned"}, {"first", first}}.dump()};

    std::vector<std::string> out;
    out.reserve(1 + 2 * rows.size());
    out.push_back(json{{"from", *from.value}, {"count", rows.size()}, {"last", last}}.dump());
    for (auto& r : rows) {
      out.push_back(std::to_string(r.sequence));
      out.push_back(std::move(r.payload));
    }
    return out;
  } catch (const std::exception& e) {
    return {error_reply("internal", e.what())};
  }
}

}  // namespace

replay_server::replay_server(::zmq::context_t& ctx, const std::string& endpoint, saga::store& store,
                             replay_options options)
    : socket_(ctx, ::zmq::socket_type::router), store_(store) {
  socket_.set(::zmq::sockopt::maxmsgsize, options.max_request_bytes);
  socket_.set(::zmq::sockopt::linger, options.linger_ms);
  socket_.set(::zmq::sockopt::affinity, options.io_affinity);
  apply(socket_, curve_server{options.curve_secret_key, std::string(zap_domain_replay)});
  try {
    socket_.bind(endpoint);
  } catch (const ::zmq::error_t& e) {
    throw std::runtime_error("saga::zmq::replay_server: cannot bind the replay ROUTER socket to " + endpoint +
                             ": " + e.what());
  }
  endpoint_ = socket_.get(::zmq::sockopt::last_endpoint);
}

bool replay_server::poll_once(std::chrono::milliseconds timeout) {
  ::zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  ::zmq::poll(&item, 1, timeout);
  if ((item.revents & ZMQ_POLLIN) == 0) return false;

  std::vector<::zmq::message_t> frames;
  if (!detail::retry_eintr([&] {
        return ::zmq::recv_multipart(socket_, std::back_inserter(frames), ::zmq::recv_flags::dontwait);
      }))
    return false;
  if (frames.empty()) return false;

  // Envelope: the routing id, then the empty delimiter a REQ peer adds.
  std::size_t envelope = 1;
  if (frames.size() >= 3 && frames[1].size() == 0) envelope = 2;

  std::vector<std::string> body;
  if (frames.size() != envelope + 1) {
    body = {error_reply("bad_request", "expected exactly one request frame, got " +
                                           std::to_string(frames.size() - envelope))};
  } else {
    body = answer(store_, frames.back().to_string_view());
  }

  std::vector<::zmq::message_t> reply;
  reply.reserve(envelope + body.size());
  for (std::size_t i = 0; i < envelope; ++i) reply.emplace_back(frames[i].data(), frames[i].size());
  for (auto& b : body) reply.emplace_back(b.data(), b.size());
  // ROUTER drops a reply to a peer that has gone away; dontwait keeps a stuck
  // peer (full pipe) from blocking the server.
  ::zmq::send_multipart(socket_, reply, ::zmq::send_flags::dontwait);
  return true;
}

}  // namespace saga::zmq
