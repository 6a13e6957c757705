#include "rows.hpp"

namespace saga::postgres::detail {

namespace {

template <class Read>
auto all_rows(const pq::result& r, Read read) {
  std::vector<decltype(read(r, 0))> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(read(r, i));
  return out;
}

}  // namespace

timer_record read_timer(const pq::result& r, int row) {
  return timer_record{r.text(row, 0), r.text(row, 1), r.text(row, 2), r.integer(row, 3), r.integer(row, 4)};
}

std::vector<timer_record> timer_rows(const pq::result& r) {
  return all_rows(r, read_timer);
}

parked_record read_parked(const pq::result& r, int row) {
  return parked_record{r.integer(row, 0), r.text(row, 1), r.text(row, 2),    r.text(row, 3), r.text(row, 4),
                       r.text(row, 5),    r.text(row, 6), r.integer(row, 7), r.text(row, 8)};
}

std::vector<parked_record> parked_rows(const pq::result& r) {
  return all_rows(r, read_parked);
}

outbox_record read_outbox(const pq::result& r, int row) {
  outbox_record o;
  o.sequence = r.integer(row, 0);
  o.event_id = r.text(row, 1);
  o.type = r.text(row, 2);
  o.definition = r.text(row, 3);
  o.key = r.text(row, 4);
  o.payload = r.text(row, 5);
  o.created_ms = r.integer(row, 6);
  o.published_ms = r.optional_integer(row, 7);
  return o;
}

std::vector<outbox_record> outbox_rows(const pq::result& r) {
  return all_rows(r, read_outbox);
}

}  // namespace saga::postgres::detail
