#include "reconcile.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <zmq_addon.hpp>

#include "catalog.hpp"
#include "saga/zmq/durable_subscriber.hpp"

namespace sagactl {

namespace {

using json = nlohmann::json;
using saga::zmq::digest_range_cap;

// The replay protocol over a DEALER socket: one request, one answer, in turn.
class remote : public log_side {
 public:
  remote(::zmq::context_t& ctx, const std::string& endpoint, const saga::zmq::curve_client& curve,
         std::chrono::milliseconds timeout, std::string name)
      : socket_(ctx, ::zmq::socket_type::dealer),
        timeout_(timeout),
        name_(std::move(name)),
        endpoint_(endpoint) {
    socket_.set(::zmq::sockopt::linger, 0);
    saga::zmq::apply(socket_, curve);
    try {
      socket_.connect(endpoint);
    } catch (const ::zmq::error_t& e) {
      throw failure(usage, "bad " + name_ + " endpoint '" + endpoint + "': " + e.what());
    }
  }

  log_answer digest(std::int64_t from, std::int64_t to) override {
    ++requests_;
    const auto frames = ask(saga::zmq::digest_request_body(from, to));
    const auto reply = json::parse(frames.front(), nullptr, false);
    log_answer a;
    if (reply.is_object() && reply.value("error", "") == "pruned") {
      a.pruned_first = reply.value("first", std::int64_t{0});
      return a;
    }
    if (!reply.is_object() || !reply.contains("digest") || !reply["digest"].is_object())
      throw failure(unreachable_or_rejected, name_ + " at " + endpoint_ + " refused a digest request: " +
                                                 frames.front().substr(0, 200));
    const auto& d = reply["digest"];
    a.digest = {from, to, d.value("count", std::int64_t{0}), d.value("sha256", std::string())};
    a.last = reply.value("last", std::int64_t{0});
    return a;
  }

  std::optional<log_entry> entry(std::int64_t sequence) override {
    const auto frames = ask(json{{"from", sequence}, {"limit", 1}}.dump());
    if (frames.size() < 3 || frames[1] != std::to_string(sequence)) return std::nullopt;
    const auto event = json::parse(frames[2], nullptr, false);
    if (!event.is_object()) return log_entry{"", ""};
    return log_entry{event.value("id", std::string()), event.value("type", std::string())};
  }

 private:
  std::vector<std::string> ask(const std::string& body) {
    socket_.send(::zmq::buffer(body), ::zmq::send_flags::none);
    ::zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (::zmq::poll(&item, 1, timeout_) == 0)
      throw failure(unreachable_or_rejected, name_ + " unreachable at " + endpoint_ + " (no answer within " +
                                                 std::to_string(timeout_.count()) + " ms)");
    std::vector<::zmq::message_t> parts;
    (void)::zmq::recv_multipart(socket_, std::back_inserter(parts));
    std::vector<std::string> out;
    for (const auto& p : parts) out.push_back(p.to_string());
    if (out.empty()) out.emplace_back();
    return out;
  }

  ::zmq::socket_t socket_;
  std::chrono::milliseconds timeout_;
  std::string name_, endpoint_;
};

class database_side : public log_side {
 public:
  explicit database_side(const std::string& path) : db_(open(path)) {}

  log_answer digest(std::int64_t from, std::int64_t to) override {
    ++requests_;
    log_answer a;
    a.digest = saga::zmq::durable_subscriber::digest(db_, from, to);
    a.last = db_.execAndGet("SELECT coalesce(max(sequence), 0) FROM saga_received").getInt64();
    return a;
  }

  std::optional<log_entry> entry(std::int64_t sequence) override {
    SQLite::Statement q(db_, "SELECT id, type FROM saga_received WHERE sequence = ?1");
    q.bind(1, sequence);
    if (!q.executeStep()) return std::nullopt;
    return log_entry{q.getColumn(0).getString(), q.getColumn(1).getString()};
  }

 private:
  static SQLite::Database open(const std::string& path) {
    try {
      SQLite::Database db(path, SQLite::OPEN_READONLY);
      db.setBusyTimeout(5000);
      if (!db.tableExists("saga_received"))
        throw failure(database, path + ": no saga_received table (is it a durable subscriber's database?)");
      return db;
    } catch (const SQLite::Exception& e) {
      throw failure(database, path + ": " + e.what());
    }
  }

  SQLite::Database db_;
};

// The walk over the ranges (see the header), collecting the report.
class comparison {
 public:
  comparison(log_side& publisher, log_side& subscriber, const compare_options& o)
      : pub_(publisher), sub_(subscriber), options_(o) {}

  json run() {
    std::int64_t start = std::max<std::int64_t>(options_.from, 0);
    std::optional<std::int64_t> end = options_.to;
    while (!end || start <= *end) {
      const std::int64_t hi =
          end ? std::min(*end, start + digest_range_cap - 1) : start + digest_range_cap - 1;
      const auto p = pub_.digest(start, hi);
      if (p.pruned_first > 0) {
        const std::int64_t first = p.pruned_first;
        if (first <= start)
          throw failure(unreachable_or_rejected, "sagad answered 'pruned' for a retained range");
        uncheckable(start, end ? std::min(*end, first - 1) : first - 1);
        start = first;
        continue;
      }
      const auto s = sub_.digest(start, hi);
      if (!end) end = std::max(p.last, s.last);  // nothing above it on either side
      pub_last_ = std::max(pub_last_, p.last);
      sub_last_ = std::max(sub_last_, s.last);
      const std::int64_t top = std::min(hi, *end);
      if (top >= start && !p.digest.same_content(s.digest)) split(start, top, p.digest.count, s.digest.count);
      start = hi + 1;
    }
    return report(end.value_or(options_.from - 1));
  }

 private:
  // Both sides' digests of a..b, halved further where they differ.
  void compare(std::int64_t a, std::int64_t b) {
    const auto p = pub_.digest(a, b);
    if (p.pruned_first > 0) return pruned_within(a, b, p.pruned_first);
    const auto s = sub_.digest(a, b);
    if (!p.digest.same_content(s.digest)) split(a, b, p.digest.count, s.digest.count);
  }

  void pruned_within(std::int64_t a, std::int64_t b, std::int64_t first) {
    uncheckable(a, std::min(b, first - 1));
    if (first <= b) compare(first, b);
  }

  // a..b differs; `pc` and `sc` are the events each side has in it.
  void split(std::int64_t a, std::int64_t b, std::int64_t pc, std::int64_t sc) {
    if (cut_) return;
    if (a == b) return classify(a, pc, sc);
    const std::int64_t mid = a + (b - a) / 2;
    const auto pl = pub_.digest(a, mid);
    if (pl.pruned_first > 0) {
      pruned_within(a, mid, pl.pruned_first);
      return compare(mid + 1, b);
    }
    const auto sl = sub_.digest(a, mid);
    if (pl.digest.same_content(sl.digest))  // the right half holds the difference
      return split(mid + 1, b, pc - pl.digest.count, sc - sl.digest.count);
    split(a, mid, pl.digest.count, sl.digest.count);
    compare(mid + 1, b);
  }

  void classify(std::int64_t sequence, std::int64_t pc, std::int64_t sc) {
    if (listed_ >= options_.max_differences) {
      cut_ = true;
      return;
    }
    ++listed_;
    const auto describe = [](const std::optional<log_entry>& e) {
      return e ? json{{"id", e->id}, {"type", e->type}} : json(nullptr);
    };
    if (pc > 0 && sc == 0) {
      missing_.push_back({{"sequence", sequence}, {"sagad", describe(pub_.entry(sequence))}});
    } else if (pc == 0 && sc > 0) {
      extra_.push_back({{"sequence", sequence}, {"subscriber", describe(sub_.entry(sequence))}});
    } else {
      different_.push_back({{"sequence", sequence},
                            {"sagad", describe(pub_.entry(sequence))},
                            {"subscriber", describe(sub_.entry(sequence))}});
    }
  }

  void uncheckable(std::int64_t a, std::int64_t b) {
    if (b < a) return;
    if (!uncheckable_.empty() && uncheckable_.back()["to"].get<std::int64_t>() + 1 == a) {
      uncheckable_.back()["to"] = b;
    } else {
      uncheckable_.push_back({{"from", a}, {"to", b}});
    }
  }

  json report(std::int64_t to) const {
    const bool consistent = missing_.empty() && extra_.empty() && different_.empty() && !cut_;
    return {{"from", options_.from},
            {"to", to},
            {"consistent", consistent},
            {"sagad", {{"last", pub_last_}, {"digest_requests", pub_.requests()}}},
            {"subscriber", {{"last", sub_last_}, {"digest_requests", sub_.requests()}}},
            {"missing", missing_},
            {"extra", extra_},
            {"different", different_},
            {"uncheckable", uncheckable_},
            {"truncated", cut_}};
  }

  log_side& pub_;
  log_side& sub_;
  compare_options options_;
  std::int64_t pub_last_ = 0, sub_last_ = 0;
  json missing_ = json::array(), extra_ = json::array(), different_ = json::array(),
       uncheckable_ = json::array();
  std::size_t listed_ = 0;
  bool cut_ = false;
};

}  // namespace

std::unique_ptr<log_side> remote_log(::zmq::context_t& ctx, const std::string& endpoint,
                                     const saga::zmq::curve_client& curve, std::chrono::milliseconds timeout,
                                     const std::string& name) {
  return std::make_unique<remote>(ctx, endpoint, curve, timeout, name);
}

std::unique_ptr<log_side> subscriber_database(const std::string& path) {
  return std::make_unique<database_side>(path);
}

json compare_logs(log_side& publisher, log_side& subscriber, const compare_options& options) {
  return comparison(publisher, subscriber, options).run();
}

}  // namespace sagactl
