#include "metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace saga::server {
namespace {

constexpr std::array<saga::ack_status, sagad_metrics::statuses> all_statuses{
    saga::ack_status::accepted, saga::ack_status::duplicate, saga::ack_status::rejected};
constexpr std::array<saga::ack_outcome, sagad_metrics::outcomes> all_outcomes{
    saga::ack_outcome::none, saga::ack_outcome::transitioned, saga::ack_outcome::parked,
    saga::ack_outcome::ignored};

constexpr std::array<std::string_view, 8> classes{"malformed", "envelope", "data",     "grants",
                                                  "storage",   "timer",    "operator", "definition"};

// A sample value as the format wants it: integers without a fraction, +Inf spelled so.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void append_escaped(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_histogram(std::string& out, std::string_view name, std::string_view help, const histogram& h) {
  append_family(out, name, "histogram", help);
  const auto s = h.read();
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < s.bounds.size(); ++i)
    append_sample(out, bucket, {{"le", number(s.bounds[i])}}, static_cast<double>(s.cumulative[i]));
  append_sample(out, bucket, {{"le", "+Inf"}}, static_cast<double>(s.cumulative.back()));
  append_sample(out, std::string(name) + "_sum", {}, s.sum);
  append_sample(out, std::string(name) + "_count", {}, static_cast<double>(s.cumulative.back()));
}

void append_counter(std::string& out, std::string_view name, std::string_view help, const counter& c) {
  append_family(out, name, "counter", help);
  append_sample(out, name, {}, static_cast<double>(c.value()));
}

void append_gauge(std::string& out, std::string_view name, std::string_view help, double v) {
  append_family(out, name, "gauge", help);
  append_sample(out, name, {}, v);
}

}  // namespace

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void histogram::observe(double v) {
  const auto i =
      static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.bounds = bounds_;
  std::uint64_t total = 0;
  for (const auto& c : counts_) s.cumulative.push_back(total += c.load(std::memory_order_relaxed));
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::string_view rejection_class(std::string_view reason) {
  const auto starts = [&](std::string_view p) { return reason.substr(0, p.size()) == p; };
  if (starts("event:") || starts("frames:")) return "malformed";
  if (starts("attribute '")) return "envelope";
  if (starts("data")) return "data";
  if (starts("key '")) return "grants";
  if (starts("storage:")) return "storage";
  if (starts("timer '")) return "timer";
  if (starts("no saga") || starts("saga is in") || starts("operator action") || starts("definition '"))
    return "operator";
  return "definition";  // what a definition's guard or action threw
}

sagad_metrics::sagad_metrics(const std::vector<std::string>& types)
    : batch_size({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536}),
      commit_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      ack_latency_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      log_sync_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}) {
  for (const auto& t : types) events[t];
  for (const char* t : {"other", "invalid", "saga.operator"}) events[t];
  for (const auto c : classes) rejections[std::string(c)];
  loop_pass_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();  // /healthz: the loop has not had its first pass yet
}

void sagad_metrics::count_event(std::string_view type, const saga::ack& a) {
  std::string_view key = type.empty() ? "invalid" : type;
  if (type.starts_with("saga.operator.")) key = "saga.operator";
  auto it = events.find(key);
  if (it == events.end()) it = events.find(std::string_view("other"));
  it->second[static_cast<std::size_t>(a.status) * outcomes + static_cast<std::size_t>(a.outcome)].add();
  if (a.status == saga::ack_status::rejected) rejections.find(rejection_class(a.reason))->second.add();
}

void sagad_metrics::set_peers(std::map<std::string, std::size_t> by_key) {
  std::lock_guard lock(peers_mutex_);
  peers_ = std::move(by_key);
}

std::map<std::string, std::size_t> sagad_metrics::peers() const {
  std::lock_guard lock(peers_mutex_);
  return peers_;
}

summary_counts summary_counts::of(const sagad_metrics& m) {
  summary_counts c;
  for (const auto& [type, acks] : m.events)
    for (std::size_t s = 0; s < sagad_metrics::statuses; ++s)
      for (std::size_t o = 0; o < sagad_metrics::outcomes; ++o)
        if (const auto n = acks[s * sagad_metrics::outcomes + o].value(); n > 0) {
          std::string key(saga::to_string(all_statuses[s]));
          if (o != 0) key += "/" + std::string(saga::to_string(all_outcomes[o]));
          c.acks[key] += n;
        }
  c.batches = m.batch_size.read().cumulative.back();
  c.timers = m.timers_fired.value();
  c.commit_failures = m.failed_commits.value();
  c.set_aside = m.set_aside.value();
  c.dropped = m.dropped_requests.value();
  c.refused = m.refused_by_grants.value();
  return c;
}

std::string summary_counts::since(const summary_counts& before) const {
  std::uint64_t events = 0;
  std::string parts;
  for (const auto& [k, n] : acks) {
    const auto it = before.acks.find(k);
    const auto d = n - (it == before.acks.end() ? 0 : it->second);
    if (d == 0) continue;
    events += d;
    parts += " " + k + "=" + std::to_string(d);
  }
  return std::to_string(events) + " events in " + std::to_string(batches - before.batches) + " batches" +
         (parts.empty() ? "" : "," + parts) + "; timers fired " + std::to_string(timers - before.timers) +
         "; failed commits " + std::to_string(commit_failures - before.commit_failures) + "; set aside " +
         std::to_string(set_aside - before.set_aside) + "; dropped over credit " +
         std::to_string(dropped - before.dropped) + "; refused by grants " +
         std::to_string(refused - before.refused);
}

void append_family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void append_sample(std::string& out, std::string_view name,
                   const std::vector<std::pair<std::string_view, std::string_view>>& labels, double value) {
  out.append(name);
  if (!labels.empty()) {
    out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) out += ',';
      out.append(labels[i].first).append("=\"");
      append_escaped(out, labels[i].second);
      out += '"';
    }
    out += '}';
  }
  out.append(" ").append(number(value)).append("\n");
}

std::string render(const sagad_metrics& m, std::string_view version) {
  std::string out;
  append_family(out, "saga_build_info", "gauge", "the running sagad's version (value 1)");
  append_sample(out, "saga_build_info", {{"version", version}}, 1);

  append_family(out, "saga_events_total", "counter",
                "events received and acked, by type (of the running definitions; other, invalid, "
                "saga.operator), status and outcome");
  for (const auto& [type, acks] : m.events)
    for (std::size_t s = 0; s < sagad_metrics::statuses; ++s)
      for (std::size_t o = 0; o < sagad_metrics::outcomes; ++o)
        if (const auto n = acks[s * sagad_metrics::outcomes + o].value(); n > 0)
          append_sample(out, "saga_events_total",
                        {{"type", type},
                         {"status", saga::to_string(all_statuses[s])},
                         {"outcome", o == 0 ? std::string_view("none") : saga::to_string(all_outcomes[o])}},
                        static_cast<double>(n));
  append_family(out, "saga_rejections_total", "counter", "rejected events by reason class");
  for (const auto& [reason, n] : m.rejections)
    append_sample(out, "saga_rejections_total", {{"reason", reason}}, static_cast<double>(n.value()));

  append_histogram(out, "saga_batch_size", "events committed in one transaction", m.batch_size);
  append_histogram(out, "saga_commit_duration_seconds", "time to apply and commit one batch",
                   m.commit_seconds);
  append_histogram(out, "saga_ack_latency_seconds", "from reading a batch off the ingress to its acks",
                   m.ack_latency_seconds);
  append_histogram(out, "saga_log_sync_duration_seconds",
                   "each fdatasync of the write-ahead log on its own thread, which acks wait for",
                   m.log_sync_seconds);
  append_counter(out, "saga_failed_commits_total", "batch commits that failed (retried, nothing acked)",
                 m.failed_commits);
  append_counter(out, "saga_set_aside_total", "inputs dead-lettered for a storage error they kept causing",
                 m.set_aside);
  append_counter(out, "saga_timers_fired_total", "timers fired", m.timers_fired);
  append_counter(out, "saga_replay_requests_total", "replay requests answered", m.replay_requests);
  append_counter(out, "saga_dropped_requests_total",
                 "requests of peers over their credit, dropped unanswered", m.dropped_requests);
  append_counter(out, "saga_refused_by_grants_total", "events outside their CURVE key's grants",
                 m.refused_by_grants);

  append_family(out, "saga_ingress_peers", "gauge",
                "ingress connections that sent a request in the last minute, by CURVE key name (plaintext: "
                "without CURVE)");
  for (const auto& [key, n] : m.peers())
    append_sample(out, "saga_ingress_peers", {{"key", key.empty() ? std::string_view("plaintext") : key}},
                  static_cast<double>(n));

  const auto committed = m.last_committed_sequence.load(std::memory_order_relaxed);
  const auto published = m.last_published_sequence.load(std::memory_order_relaxed);
  append_gauge(out, "saga_outbox_last_committed_sequence", "the newest outbox sequence this sagad committed",
               static_cast<double>(committed));
  append_gauge(out, "saga_outbox_last_published_sequence", "the newest outbox sequence published",
               static_cast<double>(published));
  append_gauge(out, "saga_outbox_lag", "committed follow-on events not yet published",
               static_cast<double>(std::max<std::int64_t>(committed - published, 0)));
  const auto since = m.unpublished_since_ms.load(std::memory_order_relaxed);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  append_gauge(out, "saga_outbox_lag_seconds",
               "age of the oldest committed follow-on event not yet published",
               since == 0 || committed <= published ? 0.0 : static_cast<double>(now_ms - since) / 1000.0);
  return out;
}

}  // namespace saga::server
