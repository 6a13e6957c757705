#pragma once
// console — `--console HOST:PORT`: sagad's web console (issue 19, docs/console.md).
// Server-rendered HTML pages and a stylesheet:
//   GET /                 overview: sagas by definition and state, dead letters, parked events,
//                         overdue timers, outbox lag, events per minute; each count links to its list
//   GET /sagas            the sagas, with `sagactl list`'s filters (type, state, stuck-for, since,
//                         until, trace, trace-scan, limit, newest-first), paged by keyset (after-*)
//   GET /saga?id=&type=   one saga: state, data, history, timers, parked and follow-on events, and its
//                         definition's graph as inline SVG with the saga's path drawn on it
//   GET /definitions, /dead-letters, /parked, /timers[?overdue=1], /outbox[?pending=1]
//   GET /console.css
// and JSON for scripts, the documents `sagactl --json` prints (saga::server::catalog, one home):
//   GET /api/list, /api/show, /api/stats, /api/definitions, /api/dead-letters, /api/parked,
//   /api/timers, /api/outbox (the same parameters as the pages and as sagactl's options).
// The live tail (console_tail.cpp): GET /tail, a page whose one script (/console.js) follows
//   GET /api/tail, newly published events as Server-Sent Events.
// With a `send` function (--console-operator-key), actions (console_actions.cpp):
//   GET /act?do=abort|resolve&type=&id=, GET /act?do=redrive&dead-letter=N: a confirmation form;
//   POST /act: checked (CSRF token, same origin), then sent through `send` — the ingress — as an
//   operator's event; the console never writes the database.
//
// Event data is attacker-controlled: everything rendered from the database is HTML-escaped, and
// every answer carries a Content-Security-Policy that runs no script but the console's own file
// (console_security_policy). Pages read through the read port on a connection of their own (never
// the loop's) and never wait on the loop thread.
//
// Thread-safety: cpp-httplib answers on a pool of threads; the one reader is used under a mutex.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/reader.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
class DataSink;
}  // namespace httplib

namespace saga::server {

class catalog;

class console {
 public:
  // Sends an operator's event through the ingress and returns its ack (operator_sender); throws
  // when no ack came.
  using sender = std::function<saga::ack(const saga::event&)>;

  // `open_reader` opens the console's own read-only connection; called on the first request and
  // again after a failed read. `db_name` names the database in messages. Without `send` the
  // console is read-only: no action is offered or accepted.
  console(std::function<std::unique_ptr<saga::reader>()> open_reader, std::string db_name, sender send = {});
  ~console();
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  // Adds the console's routes (above) to `server`.
  void serve_on(httplib::Server& server);

  struct answer {
    int status = 200;
    std::string body;
    std::string type;
  };

 private:
  // Sends `a` as the response (its status, body and content type).
  static void reply(httplib::Response& res, answer a);
  // Runs `render` with the catalog, under the mutex; a failure becomes an error answer.
  answer with_catalog(const std::function<answer(catalog&)>& render);
  void serve_pages(httplib::Server& server);  // the HTML pages
  void serve_api(httplib::Server& server);    // /api/…: the JSON documents
  // console_actions.cpp: the routes, and a POST's checks, event and answer.
  struct action;
  void serve_actions(httplib::Server& server);
  std::optional<answer> refused(const httplib::Request& req) const;
  action requested_action(const httplib::Request& req);
  void act(const httplib::Request& req, httplib::Response& res);
  // console_tail.cpp: the live tail's routes, and one poll of a stream.
  struct tail_stream {
    std::int64_t next;  // the sequence to send next
    std::chrono::steady_clock::time_point end;
    int polls = 0;
  };
  void serve_tail(httplib::Server& server);
  bool tail_poll(tail_stream& s, httplib::DataSink& sink);
  bool actions() const { return static_cast<bool>(send_); }

  std::function<std::unique_ptr<saga::reader>()> open_reader_;
  std::string db_name_;
  sender send_;
  std::string csrf_token_;     // random per start: the form field every POST must carry
  std::atomic<int> tails_{0};  // /api/tail streams open now (bounded: each holds a server thread)
  std::mutex mutex_;
  std::unique_ptr<saga::reader> reader_;
  std::unique_ptr<catalog> catalog_;
};

// The Content-Security-Policy of every answer: scripts and connections only from the console
// itself (its one file, /console.js; no inline script, so none injected runs), styles only from
// its own stylesheet, images from itself or data: URIs (inline SVG needs none), forms only to it.
inline constexpr const char* console_security_policy =
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

}  // namespace saga::server
