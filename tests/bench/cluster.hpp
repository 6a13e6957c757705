#pragma once
// saga-bench's cluster stage (`saga-bench --only cluster`, part of `make bench`; issue 17): one
// sagad on SQLite against one sagad on PostgreSQL, and 1, 2 and 3 sagad sharing one PostgreSQL
// schema, in the same run. docs/performance.md, "Several sagad on one PostgreSQL", explains the
// figures.

#include <cstddef>
#include <string>
#include <vector>

namespace saga::bench {

struct cluster_figure {
  std::string configuration;              // "sqlite, 1 sagad", "postgres, 2 sagad", …
  double events_per_second = 0;           // saturated: every sender keeps `window` events in flight
  double ack_p50_ms = 0, ack_p99_ms = 0;  // send -> ack at a paced load every configuration carries
  double paced_rate = 0;                  // events/s of that paced load, all sagad together
  std::size_t events = 0;                 // sent in one saturated run
  std::string notes;                      // medians of how many runs, their spread
};

// Starts a throw-away PostgreSQL with durable commits (tests/support/pg_cluster.sh, SAGA_PG_DURABLE)
// in `scratch`, measures each configuration `runs` times (fresh database each run) and stops it.
// `seconds`: about how long each saturated run lasts. Throws std::runtime_error when a cluster or
// a sagad does not start.
// `only`: the configurations to measure by short name (sqlite1, postgres1, postgres2, postgres3);
// empty: all four.
std::vector<cluster_figure> measure_cluster(const std::string& sagad, const std::string& scratch,
                                            double seconds, int runs,
                                            const std::vector<std::string>& only = {});

// The relay's wake-up (`saga-bench --only wakeup`): two sagad on one PostgreSQL (durable, as above)
// with their default options; the first started holds the relay lease. `events` order.placed
// events go to the other one, one at a time, a few milliseconds apart; for each, the delay from
// its ack (after that sagad's commit) to its follow-on event arriving on a subscriber of the relay
// (numbered and published by it). Percentiles in ms.
struct wakeup_figure {
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  std::size_t events = 0;
};
wakeup_figure measure_relay_wakeup(const std::string& sagad, const std::string& scratch, std::size_t events);

}  // namespace saga::bench
