#include "saga/zmq/subscriber.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/zmq/publisher.hpp"
#include "saga/zmq/replay_server.hpp"

namespace saga::zmq {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Live events kept while their gap is being filled; beyond this they are
// dropped and fetched from the replay instead.
constexpr std::size_t max_pending = 10'000;
// Once the deadline has passed, poll() still handles up to this many queued
// messages, so that a flood of filtered events cannot keep it from returning.
constexpr std::size_t drain_after_deadline = 1000;
// How soon to ask the replay again when it did not yet have a gap's range
// (the relay publishes a chunk before it marks it published).
constexpr milliseconds gap_retry{50};

const std::string who = "saga::zmq::subscriber: ";

// A replay endpoint that did not answer in time: the next one is asked.
class replay_unanswered : public subscriber_error {
 public:
  using subscriber_error::subscriber_error;
};

std::optional<std::int64_t> parse_sequence(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::string excerpt(std::string_view s) {
  constexpr std::size_t max = 200;
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

std::int64_t read_position(const std::string& path, std::int64_t fallback) {
  std::error_code ec;
  const bool present = std::filesystem::exists(path, ec);
  if (ec) throw subscriber_error(who + "cannot read the position file " + path + ": " + ec.message());
  if (!present) return fallback;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw subscriber_error(who + "cannot read the position file " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw subscriber_error(who + "cannot read the position file " + path);
  std::string_view v(text);
  const auto begin = v.find_first_not_of(" \t\r\n");
  v = begin == std::string_view::npos ? std::string_view{}
                                      : v.substr(begin, v.find_last_not_of(" \t\r\n") - begin + 1);
  auto seq = parse_sequence(v);
  if (!seq)
    throw subscriber_error(who + "malformed position file " + path + ": expected a decimal sequence, got \"" +
                           excerpt(text) + "\"");
  return *seq;
}

[[noreturn]] void write_failed(const std::string& path, const std::string& step, int err) {
  throw subscriber_error(who + "cannot write the position file " + path + " (" + step +
                         "): " + std::strerror(err));
}

// Write to a temporary file, flush it to disk, then rename it over the old
// one: a crash leaves either the old or the new position, never a torn one.
void write_position(const std::string& path, std::int64_t seq) {
  const std::string tmp = path + ".tmp";
  const std::string text = std::to_string(seq) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) write_failed(path, "open " + tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      write_failed(path, "write " + tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    write_failed(path, "fsync " + tmp, err);
  }
  if (::close(fd) != 0) write_failed(path, "close " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) write_failed(path, "rename " + tmp, errno);
}

std::optional<std::int64_t> header_int(const json& h, const char* name) {
  auto it = h.find(name);
  if (it == h.end() || !it->is_number_integer()) return std::nullopt;
  auto v = it->get<std::int64_t>();
  if (v < 0) return std::nullopt;
  return v;
}

}  // namespace

std::vector<std::string> split_endpoints(std::string_view list) {
  std::vector<std::string> out;
  for (std::size_t start = 0; start <= list.size();) {
    const auto end = std::min(list.find(',', start), list.size());
    auto one = list.substr(start, end - start);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (!one.empty()) out.emplace_back(one);
    start = end + 1;
  }
  return out;
}

subscriber::subscriber(::zmq::context_t& ctx, std::string events_endpoint, std::string replay_endpoint,
                       subscriber_options options)
    : ctx_(ctx),
      events_endpoints_(split_endpoints(events_endpoint)),
      replay_endpoints_(split_endpoints(replay_endpoint)),
      options_(std::move(options)),
      sub_(ctx, ::zmq::socket_type::sub) {
  if (events_endpoints_.empty()) throw subscriber_error(who + "no events endpoint given");
  if (replay_endpoints_.empty()) throw subscriber_error(who + "no replay endpoint given");
  last_ = options_.position_file.empty() ? options_.start_after
                                         : read_position(options_.position_file, options_.start_after);
  sub_.set(::zmq::sockopt::linger, 0);
  // Match the publisher's default high-water mark: fewer drops, fewer replays.
  sub_.set(::zmq::sockopt::rcvhwm, 10'000);
  sub_.set(::zmq::sockopt::subscribe, "");
  apply(sub_, options_.curve);
  for (const auto& endpoint : events_endpoints_) {  // one SUB fair-queues them all
    try {
      sub_.connect(endpoint);
    } catch (const ::zmq::error_t& e) {
      throw subscriber_error(who + "cannot connect to the events socket " + endpoint + ": " + e.what());
    }
  }
}

std::size_t subscriber::poll(std::chrono::milliseconds timeout, const handler& fn) {
  const std::int64_t before = last_;
  std::size_t delivered = 0;
  try {
    delivered = poll_messages(timeout, fn);
  } catch (...) {
    // Keep what was handled before the failure (fn threw, or the replay).
    if (last_ != before && !options_.position_file.empty()) {
      try {
        write_position(options_.position_file, last_);
      } catch (const subscriber_error&) {
      }
    }
    throw;
  }
  if (last_ != before && !options_.position_file.empty()) write_position(options_.position_file, last_);
  return delivered;
}

std::size_t subscriber::poll_messages(milliseconds timeout, const handler& fn) {
  const auto deadline = steady::now() + timeout;
  std::size_t delivered = 0;
  if (!caught_up_) {
    delivered += catch_up(fn);
    caught_up_ = true;
  }
  std::size_t handled_late = 0;
  for (;;) {
    auto now = steady::now();
    if (!pending_.empty() && now >= retry_at_) {
      delivered += catch_up(fn);
      now = steady::now();
    }
    const bool past = now >= deadline;
    if (past && handled_late >= drain_after_deadline) break;
    milliseconds wait{0};
    if (delivered == 0 && !past) {
      wait = std::chrono::ceil<milliseconds>(deadline - now);
      if (!pending_.empty())
        wait = std::min(wait, std::max(milliseconds{0}, std::chrono::ceil<milliseconds>(retry_at_ - now)));
    }
    ::zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, wait);
    std::vector<::zmq::message_t> frames;
    if ((item.revents & ZMQ_POLLIN) == 0 ||
        !::zmq::recv_multipart(sub_, std::back_inserter(frames), ::zmq::recv_flags::dontwait)) {
      if (delivered > 0 || steady::now() >= deadline) break;
      continue;  // woke up for a gap retry
    }
    if (past) ++handled_late;
    delivered += on_live(frames, fn);
  }
  return delivered;
}

std::size_t subscriber::on_live(std::vector<::zmq::message_t>& frames, const handler& fn) {
  if (frames.size() != 3) return 0;  // not wire protocol v1: ignore
  const auto seq = parse_sequence(frames[1].to_string_view());
  if (!seq) return 0;
  if (frames[0].to_string_view() == heartbeat_type) {
    // The publisher has published *seq: a lost tail shows here.
    return *seq > last_ ? catch_up(fn) : 0;
  }
  if (*seq <= last_) return 0;  // seen (through replay, or a re-publish)
  if (*seq == last_ + 1) {
    std::size_t n = handle(delivery{*seq, frames[0].to_string(), frames[2].to_string()}, fn);
    return n + flush_pending(fn);
  }
  // A gap: keep the event and fetch what lies below it.
  if (pending_.size() < max_pending)
    pending_.emplace(*seq, delivery{*seq, frames[0].to_string(), frames[2].to_string()});
  if (steady::now() >= retry_at_) return catch_up(fn);
  return 0;
}

std::size_t subscriber::handle(const delivery& d, const handler& fn) {
  bool wanted = options_.type_prefixes.empty();
  for (const auto& p : options_.type_prefixes) {
    if (d.type.starts_with(p)) {
      wanted = true;
      break;
    }
  }
  if (wanted) fn(d);
  last_ = d.sequence;  // after fn: a throwing fn gets the event again
  return wanted ? 1 : 0;
}

std::size_t subscriber::flush_pending(const handler& fn) {
  std::size_t n = 0;
  while (!pending_.empty()) {
    auto it = pending_.begin();
    if (it->first > last_ + 1) break;
    if (it->first == last_ + 1) n += handle(it->second, fn);
    pending_.erase(it);
  }
  if (pending_.empty()) retry_at_ = {};
  return n;
}

// Asks the replay endpoints in turn, starting with the one that answered last: one that does not
// answer within replay_timeout hands over to the next (what it delivered before stays delivered).
std::size_t subscriber::catch_up(const handler& fn) {
  std::size_t n = 0;
  std::string unanswered;
  for (std::size_t attempt = 0; attempt < replay_endpoints_.size(); ++attempt) {
    const std::size_t which = (preferred_replay_ + attempt) % replay_endpoints_.size();
    try {
      n += catch_up_from(replay_endpoints_[which], fn);
      preferred_replay_ = which;
      return n;
    } catch (const replay_unanswered& e) {
      unanswered += (unanswered.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  throw subscriber_error(unanswered);
}

std::size_t subscriber::catch_up_from(const std::string& replay_endpoint, const handler& fn) {
  ::zmq::socket_t dealer(ctx_, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  apply(dealer, options_.curve);
  try {
    dealer.connect(replay_endpoint);
  } catch (const ::zmq::error_t& e) {
    throw subscriber_error(who + "cannot connect to the replay socket " + replay_endpoint + ": " + e.what());
  }
  std::size_t n = 0;
  std::int64_t asked = last_ + 1;
  ask(dealer, replay_endpoint, asked);
  for (;;) {
    const std::int64_t from = asked;
    auto [frames, count, last] = answer(dealer, replay_endpoint, from);
    // A full reply with more published after it: the next range is asked for now, so that the
    // replay reads it while these are handled (one request ahead; a reply not wanted after all —
    // a hole, fn throwing — goes with this socket).
    const auto tail = count == 0 ? std::nullopt : parse_sequence(frames[frames.size() - 2]);
    const bool ahead =
        count >= static_cast<std::int64_t>(replay_limit_cap) && tail && *tail >= from && *tail < last;
    if (ahead) {
      asked = *tail + 1;
      ask(dealer, replay_endpoint, asked);
    }
    bool hole = false;
    for (std::size_t i = 1; i + 1 < frames.size(); i += 2) {
      const auto seq = parse_sequence(frames[i]);
      if (!seq)
        throw subscriber_error(who + "malformed sequence in a reply from the replay socket " +
                               replay_endpoint + ": " + excerpt(frames[i]));
      if (*seq <= last_) continue;
      if (*seq != last_ + 1) {
        // Not published yet below it: deliver nothing past the hole.
        hole = true;
        break;
      }
      // A replayed event has no type frame: the type is read from its JSON.
      std::string type = saga::top_level_string(frames[i + 1], "type");
      n += handle(delivery{*seq, std::move(type), std::move(frames[i + 1])}, fn);
    }
    if (hole || count == 0 || last_ >= last || last_ < from) break;
    // Without a hole every row up to the tail was handled: what was asked ahead starts at last_ + 1.
    if (!ahead) {
      asked = last_ + 1;
      ask(dealer, replay_endpoint, asked);
    }
  }
  n += flush_pending(fn);
  // Still a gap below a kept live event: the replay did not have it yet.
  if (!pending_.empty()) retry_at_ = steady::now() + gap_retry;
  return n;
}

void subscriber::ask(::zmq::socket_t& dealer, const std::string& replay_endpoint, std::int64_t from) {
  const std::string request = json{{"from", from}, {"limit", replay_limit_cap}}.dump();
  // An empty delimiter first, as a REQ socket sends it: the reply repeats it.
  const std::array<::zmq::const_buffer, 2> out = {::zmq::const_buffer(nullptr, 0), ::zmq::buffer(request)};
  if (!::zmq::send_multipart(dealer, out, ::zmq::send_flags::dontwait))
    throw subscriber_error(who + "cannot send a request to the replay socket " + replay_endpoint);
}

subscriber::replay_reply subscriber::answer(::zmq::socket_t& dealer, const std::string& replay_endpoint,
                                            std::int64_t from) {
  ::zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
  ::zmq::poll(&item, 1, options_.replay_timeout);
  std::vector<::zmq::message_t> msgs;
  if ((item.revents & ZMQ_POLLIN) == 0 ||
      !::zmq::recv_multipart(dealer, std::back_inserter(msgs), ::zmq::recv_flags::dontwait))
    throw replay_unanswered(who + "no reply from the replay socket " + replay_endpoint + " within " +
                            std::to_string(options_.replay_timeout.count()) + " ms (asked from sequence " +
                            std::to_string(from) + ")");
  std::vector<std::string> frames;
  frames.reserve(msgs.size());
  std::size_t first = (!msgs.empty() && msgs.front().size() == 0) ? 1 : 0;
  for (std::size_t i = first; i < msgs.size(); ++i) frames.push_back(msgs[i].to_string());
  if (frames.empty()) throw subscriber_error(who + "empty reply from the replay socket " + replay_endpoint);
  const json h = json::parse(frames.front(), nullptr, /*allow_exceptions=*/false);
  if (!h.is_object())
    throw subscriber_error(who + "malformed reply from the replay socket " + replay_endpoint + ": " +
                           excerpt(frames.front()));
  if (h.contains("error")) {
    std::string what = who + "the replay socket " + replay_endpoint + " answered " + excerpt(frames.front()) +
                       " to a request from sequence " + std::to_string(from);
    if (h["error"] == "pruned")
      what += ": the events wanted were pruned (the first retained is " +
              (h.contains("first") ? h["first"].dump() : std::string("unknown")) + ")";
    throw subscriber_error(what);
  }
  const auto count = header_int(h, "count");
  const auto last = header_int(h, "last");
  if (!count || !last || frames.size() != 1 + 2 * static_cast<std::size_t>(*count))
    throw subscriber_error(who + "malformed reply from the replay socket " + replay_endpoint + ": header " +
                           excerpt(frames.front()) + " with " + std::to_string(frames.size() - 1) +
                           " frames after it");
  return {std::move(frames), *count, *last};
}

}  // namespace saga::zmq
