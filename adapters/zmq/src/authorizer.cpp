#include "saga/zmq/authorizer.hpp"

#include <pthread.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <zmq.h>

#include "saga/zmq/curve.hpp"

namespace saga::zmq {

namespace {

bool type_matches(std::string_view pattern, std::string_view type) {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".*")
    return type.substr(0, pattern.size() - 1) == pattern.substr(0, pattern.size() - 1);
  return pattern == type;
}

bool any_matches(const std::vector<std::string>& patterns, std::string_view value, bool prefixes) {
  for (const auto& p : patterns)
    if (prefixes ? type_matches(p, value) : (p == "*" || p == value)) return true;
  return false;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "(none)" : out;
}

std::vector<std::string> split(std::string_view list, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto end = std::min(list.find(sep, start), list.size());
    if (end > start) out.emplace_back(list.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool same_grants(const grant& a, const grant& b) {
  return a.sources == b.sources && a.types == b.types && a.operator_role == b.operator_role &&
         a.subscriber_role == b.subscriber_role;
}

// One line's grant and key; throws std::runtime_error with the line's problem.
std::pair<std::string, grant> parse_line(const std::vector<std::string>& words,
                                         const std::filesystem::path& base) {
  if (words.size() < 2) throw std::runtime_error("expected '<public key or key file> <name> [grants]'");
  // A file that exists wins: a path can be 40 Z85 characters too ("/tmp/…/bob.key").
  const auto path =
      std::filesystem::path(words[0]).is_absolute() ? std::filesystem::path(words[0]) : base / words[0];
  std::error_code ignored;
  const std::string key = valid_z85_key(words[0]) && !std::filesystem::exists(path, ignored)
                              ? words[0]
                              : read_key_file(path.string(), false).public_key;
  grant g;
  g.name = words[1];
  for (std::size_t i = 2; i < words.size(); ++i) {
    const auto eq = words[i].find('=');
    if (eq == std::string::npos)
      throw std::runtime_error("'" + words[i] + "' is not sources=, types= or roles=");
    const std::string what = words[i].substr(0, eq);
    auto values = split(std::string_view(words[i]).substr(eq + 1), ',');
    if (what == "sources") {
      g.sources.insert(g.sources.end(), values.begin(), values.end());
    } else if (what == "types") {
      g.types.insert(g.types.end(), values.begin(), values.end());
    } else if (what == "roles") {
      for (const auto& r : values) {
        if (r == "operator") {
          g.operator_role = true;
        } else if (r == "subscriber") {
          g.subscriber_role = true;
        } else {
          throw std::runtime_error("unknown role '" + r + "' (operator, subscriber)");
        }
      }
    } else {
      throw std::runtime_error("unknown grant '" + what + "' (sources, types, roles)");
    }
  }
  return {key, std::move(g)};
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<std::string> refusal(const grant& g, std::string_view source, std::string_view type) {
  if (type.substr(0, 14) == "saga.operator." && !g.operator_role)
    return "key '" + g.name + "' lacks the operator role (needed for " + std::string(type) + ")";
  if (!any_matches(g.sources, source, false))
    return "key '" + g.name + "' may not send as source '" + std::string(source) +
           "' (sources=" + joined(g.sources) + ")";
  if (!g.operator_role || type.substr(0, 14) != "saga.operator.") {
    if (!any_matches(g.types, type, true))
      return "key '" + g.name + "' may not send type '" + std::string(type) + "' (types=" + joined(g.types) +
             ")";
  }
  return std::nullopt;
}

authorized_keys authorized_keys::parse(std::string_view text, const std::string& origin) {
  authorized_keys out;
  const auto base = std::filesystem::path(origin).parent_path();
  std::istringstream in{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // A comment is a word "#" or one starting "# ": '#' is also a Z85 character of keys.
    std::istringstream words_in(line);
    std::vector<std::string> words;
    for (std::string w; words_in >> w && w != "#";) words.push_back(w);
    if (words.empty()) continue;
    try {
      auto [key, g] = parse_line(words, base);
      if (out.by_key_.count(key) != 0) throw std::runtime_error("the key is listed twice");
      auto shared = std::make_shared<const grant>(std::move(g));
      if (auto it = out.by_name_.find(shared->name); it != out.by_name_.end()) {
        if (!same_grants(*it->second, *shared))
          throw std::runtime_error("name '" + shared->name +
                                   "' has another key with other grants (a rollover keeps the grants)");
        shared = it->second;
      } else {
        out.by_name_.emplace(shared->name, shared);
      }
      out.by_key_.emplace(std::move(key), shared);
    } catch (const std::exception& e) {
      throw std::runtime_error(origin + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  return out;
}

authorized_keys authorized_keys::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

const grant* authorized_keys::by_key(std::string_view public_key) const {
  const auto it = by_key_.find(public_key);
  return it == by_key_.end() ? nullptr : it->second.get();
}

const grant* authorized_keys::by_name(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

zap_handler::zap_handler(::zmq::context_t& ctx, authorized_keys keys,
                         std::function<void(std::string_view)> log, std::function<void()> idle)
    : keys_(std::make_shared<const authorized_keys>(std::move(keys))),
      log_(std::move(log)),
      idle_(std::move(idle)) {
  // Bound before the constructor returns: a CURVE socket bound afterwards always finds it.
  auto socket = std::make_shared<::zmq::socket_t>(ctx, ::zmq::socket_type::rep);
  socket->set(::zmq::sockopt::linger, 0);
  socket->bind("inproc://zeromq.zap.01");
  thread_ = std::thread([this, socket] {
    ::pthread_setname_np(::pthread_self(), "saga-zap");
    serve(*socket);
  });
}

zap_handler::~zap_handler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void zap_handler::replace(authorized_keys keys) {
  auto shared = std::make_shared<const authorized_keys>(std::move(keys));
  std::lock_guard lock(mutex_);
  keys_ = std::move(shared);
}

std::shared_ptr<const authorized_keys> zap_handler::keys() const {
  std::lock_guard lock(mutex_);
  return keys_;
}

void zap_handler::serve(::zmq::socket_t& socket) {
  while (!stop_) {
    if (idle_) idle_();
    ::zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (::zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      std::vector<::zmq::message_t> request;
      do {
        request.emplace_back();
        if (!socket.recv(request.back(), ::zmq::recv_flags::dontwait)) break;
      } while (request.back().more());
      answer(socket, request);
    } catch (const ::zmq::error_t& e) {
      if (e.num() == ETERM) return;    // the context is closing
      if (e.num() == EINTR) continue;  // a signal (SIGHUP: reload) reached this thread
      if (log_) log_(std::string("ZAP handler: ") + e.what());
    }
  }
}

// ZAP/1.0 request: version, request id, domain, address, identity, mechanism, credentials...
// Reply: version, request id, status code, status text, user id, metadata.
void zap_handler::answer(::zmq::socket_t& socket, std::vector<::zmq::message_t>& request) {
  const auto frame = [&](std::size_t i) {
    return i < request.size() ? request[i].to_string() : std::string();
  };
  const std::string request_id = frame(1), domain = frame(2), address = frame(3), mechanism = frame(5);
  std::string status = "400", text, user;
  if (frame(0) != "1.0") {
    text = "unsupported ZAP version";
  } else if (mechanism != "CURVE" || request.size() < 7 || request[6].size() != 32) {
    text = "a CURVE key is required";
  } else {
    std::array<char, 41> z85{};
    zmq_z85_encode(z85.data(), static_cast<const std::uint8_t*>(request[6].data()), 32);
    const auto keys = this->keys();
    const grant* g = keys->by_key(z85.data());
    if (g == nullptr) {
      text = std::string("unknown key ") + z85.data();
    } else if (domain != zap_domain_ingress && !g->subscriber_role) {
      text = "key '" + g->name + "' lacks the subscriber role (needed for " + domain + ")";
    } else {
      status = "200";
      text = "OK";
      user = g->name;
    }
  }
  if (status == "200") {
    ++accepted_;
  } else {
    ++refused_;
    log_refusal(address, text + " (" + domain + ")");
  }
  // Metadata (ZMTP property list): the client's public key, read by the ingress for each message
  // (zap_key_property) so that a key removed by a reload is refused even if its name stays.
  std::string metadata;
  if (status == "200") {
    const std::string name = zap_key_property;
    std::array<char, 41> z85{};
    zmq_z85_encode(z85.data(), static_cast<const std::uint8_t*>(request[6].data()), 32);
    const std::string value = z85.data();
    metadata += static_cast<char>(name.size());
    metadata += name;
    for (int shift = 24; shift >= 0; shift -= 8)
      metadata += static_cast<char>((value.size() >> shift) & 0xff);
    metadata += value;
  }
  const std::array<std::string, 6> reply{"1.0", request_id, status, text, user, metadata};
  for (std::size_t i = 0; i < reply.size(); ++i)
    socket.send(::zmq::buffer(reply[i]),
                i + 1 < reply.size() ? ::zmq::send_flags::sndmore : ::zmq::send_flags::none);
}

void zap_handler::log_refusal(const std::string& address, const std::string& why) {
  if (!log_) return;
  const auto now = now_ms();
  if (last_logged_ms_.size() > 4096) last_logged_ms_.clear();  // bounded: a flood of addresses
  auto [it, fresh] = last_logged_ms_.emplace(address, now);
  if (!fresh && now - it->second < 1000) return;
  it->second = now;
  log_("refused a handshake from " + (address.empty() ? std::string("?") : address) + ": " + why);
}

namespace {

std::string handshake_failure(std::uint16_t event, std::uint32_t value) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    return "handshake failed (no detail: the peer left early?)";
  if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    return "security mechanism mismatch (a plaintext client?)";
  if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
    return "cryptographic error (a client holding another server key?)";
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%x", value);
  return std::string("protocol error ") + hex;
}

}  // namespace

handshake_log::handshake_log(::zmq::context_t& ctx, std::function<void(std::string_view)> log)
    : ctx_(ctx), log_(std::move(log)) {
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "saga-zap-log");
    serve();
  });
}

handshake_log::~handshake_log() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void handshake_log::watch(::zmq::socket_t& socket, const std::string& name) {
  std::lock_guard lock(mutex_);
  const std::string endpoint = "inproc://saga.handshakes." + std::to_string(count_++);
  if (zmq_socket_monitor(socket.handle(), endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
    throw ::zmq::error_t();
  added_.push_back({endpoint, name});
}

void handshake_log::serve() {
  struct source {
    std::string name;
    std::unique_ptr<::zmq::socket_t> pair;
  };
  struct tally {
    std::int64_t last_ms = 0;
    std::uint64_t unlogged = 0;
  };
  std::vector<source> sources;
  std::map<std::string, tally> tallies;  // by socket name and reason: bounded by their product
  while (!stop_) {
    {
      std::lock_guard lock(mutex_);
      for (auto& w : added_) {
        auto pair = std::make_unique<::zmq::socket_t>(ctx_, ::zmq::socket_type::pair);
        pair->set(::zmq::sockopt::linger, 0);
        pair->connect(w.endpoint);
        sources.push_back({w.name, std::move(pair)});
      }
      added_.clear();
    }
    std::vector<::zmq::pollitem_t> items;
    for (auto& s : sources) items.push_back({s.pair->handle(), 0, ZMQ_POLLIN, 0});
    try {
      if (items.empty()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (::zmq::poll(items, std::chrono::milliseconds(100)) == 0) continue;
      for (std::size_t i = 0; i < items.size(); ++i) {
        if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
        ::zmq::message_t event, address;
        if (!sources[i].pair->recv(event, ::zmq::recv_flags::dontwait)) continue;
        if (event.more()) (void)sources[i].pair->recv(address, ::zmq::recv_flags::dontwait);
        if (event.size() < 6) continue;
        std::uint16_t id = 0;
        std::uint32_t value = 0;
        std::memcpy(&id, event.data(), sizeof id);
        std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
        const std::string why = handshake_failure(id, value);
        tally& t = tallies[sources[i].name + ": " + why];
        ++t.unlogged;
        const auto now = now_ms();
        if (!log_ || now - t.last_ms < 1000) continue;
        log_(sources[i].name + ": refused " + std::to_string(t.unlogged) + " handshake" +
             (t.unlogged == 1 ? "" : "s") + " on " + address.to_string() + ": " + why);
        t.last_ms = now;
        t.unlogged = 0;
      }
    } catch (const ::zmq::error_t& e) {
      if (e.num() == ETERM) return;
      if (e.num() == EINTR) continue;
      if (log_) log_(std::string("handshake log: ") + e.what());
    }
  }
}

}  // namespace saga::zmq
