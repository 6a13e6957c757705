#pragma once
// loop_stats — the counters of sagad's once-a-minute summary line. The loop
// thread only.

#include <cstdint>
#include <map>
#include <string>

#include "saga/engine.hpp"

namespace saga::server {

struct loop_stats {
  std::uint64_t batches = 0;
  std::map<std::string, std::uint64_t> acks;  // "accepted/transitioned", "rejected", ...
  std::uint64_t timers = 0;
  std::uint64_t commit_failures = 0;
  std::uint64_t set_aside = 0;  // inputs dead-lettered for a storage error they kept causing
  std::uint64_t dropped = 0;    // requests of peers over their credit, dropped unanswered
  std::uint64_t refused = 0;    // events outside their CURVE key's grants (also in acks: rejected)

  void count(const saga::ack& a) {
    std::string k(saga::to_string(a.status));
    if (a.outcome != saga::ack_outcome::none) k += "/" + std::string(saga::to_string(a.outcome));
    ++acks[k];
  }
  std::string summary() const {
    std::uint64_t events = 0;
    std::string parts;
    for (const auto& [k, n] : acks) {
      events += n;
      parts += " " + k + "=" + std::to_string(n);
    }
    return std::to_string(events) + " events in " + std::to_string(batches) + " batches" +
           (parts.empty() ? "" : "," + parts) + "; timers fired " + std::to_string(timers) +
           "; failed commits " + std::to_string(commit_failures) + "; set aside " +
           std::to_string(set_aside) + "; dropped over credit " + std::to_string(dropped) +
           "; refused by grants " + std::to_string(refused);
  }
};

}  // namespace saga::server
