#pragma once
// console — `--console HOST:PORT`: sagad's read-only web console (issue 19, docs/console.md).
// Server-rendered HTML pages, a stylesheet and no script:
//   GET /                 overview: sagas by definition and state, dead letters, parked events,
//                         overdue timers, outbox lag, events per minute; each count links to its list
//   GET /sagas            the sagas, with `sagactl list`'s filters (type, state, stuck-for, since,
//                         until, trace, trace-scan, limit), paged by keyset (after-*)
//   GET /saga?id=&type=   one saga: state, data, history, timers, parked and follow-on events, and its
//                         definition's graph as inline SVG with the saga's path drawn on it
//   GET /definitions, /dead-letters, /timers[?overdue=1], /outbox[?pending=1]
//   GET /console.css
// and JSON for scripts, the documents `sagactl --json` prints (saga::server::catalog, one home):
//   GET /api/list, /api/show, /api/stats, /api/definitions, /api/dead-letters, /api/timers,
//   /api/outbox (the same parameters as the pages and as sagactl's options).
//
// Event data is attacker-controlled: everything rendered from the database is HTML-escaped, and
// every answer carries a Content-Security-Policy without script (console_headers). Pages read
// through the read port on a connection of their own (never the loop's): the console never
// writes the database and never waits on the loop thread.
//
// Thread-safety: cpp-httplib answers on a pool of threads; the one reader is used under a mutex.

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "saga/reader.hpp"

namespace httplib {
class Server;
}

namespace saga::server {

class catalog;

class console {
 public:
  // `open_reader` opens the console's own read-only connection; called on the first request and
  // again after a failed read. `db_name` names the database in messages.
  console(std::function<std::unique_ptr<saga::reader>()> open_reader, std::string db_name);
  ~console();
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  // Adds the console's routes (above) to `server`.
  void serve_on(httplib::Server& server);

 private:
  struct answer;
  // Runs `page` with the catalog, under the mutex; a failure becomes an error answer.
  template <class F>
  answer with_catalog(F&& page);

  std::function<std::unique_ptr<saga::reader>()> open_reader_;
  std::string db_name_;
  std::mutex mutex_;
  std::unique_ptr<saga::reader> reader_;
  std::unique_ptr<catalog> catalog_;
};

// The Content-Security-Policy of every answer: no script at all, styles only from the console's
// own stylesheet, images from itself or data: URIs (inline SVG needs none).
inline constexpr const char* console_security_policy =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'";

// HTML-escapes `text` (& < > " '): safe in element content and in quoted attribute values.
std::string html_escape(std::string_view text);

}  // namespace saga::server
