#pragma once
// The port's records from result rows, in the column order the store's and the reader's
// statements both select (statements.hpp): one home for each record's decoding.

#include <vector>

#include "pq.hpp"
#include "saga/store.hpp"

namespace saga::postgres::detail {

// definition, key, name, due_ms, generation
timer_record read_timer(const pq::result& r, int row);
std::vector<timer_record> timer_rows(const pq::result& r);
// id, definition, key, event_id, source, type, payload, parked_ms, sender
parked_record read_parked(const pq::result& r, int row);
std::vector<parked_record> parked_rows(const pq::result& r);
// sequence, event_id, type, definition, key, payload, created_ms, published_ms
outbox_record read_outbox(const pq::result& r, int row);
std::vector<outbox_record> outbox_rows(const pq::result& r);

}  // namespace saga::postgres::detail
