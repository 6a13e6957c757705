#pragma once
// endpoints_file — options::endpoints_file (--endpoints-file): where the
// server's three sockets are actually bound (a port "*" or 0 resolved), for the
// program that started it — a supervisor, a test — to read instead of choosing
// free ports itself and racing other processes for them. One JSON object:
//
//   {"ingress":"tcp://127.0.0.1:41233","publish":"tcp://127.0.0.1:41235",
//    "replay":"tcp://127.0.0.1:41237","pid":1234}
//
// and "metrics":"http://127.0.0.1:9464" when --metrics is on, "console":"http://…" when
// --console is (the same URL when both share one address).
//
// Written once all three sockets are bound, atomically: to a temporary file
// beside it, then renamed over it, so that a reader sees the whole object or
// no file. A file left at the path by an earlier run (a crash) is removed when
// the server starts, after it locked its database (a second server refused on
// the same database touches nothing); the file written is removed when the
// server stops. `pid` tells a reader whose file it is.
//
// Thread-safety: one thread (the one that runs the server).

#include <string>

#include "saga/server/options.hpp"

namespace saga::server {

class endpoints_file {
 public:
  // Removes what an earlier run left at `path`; an empty path: nothing to do.
  explicit endpoints_file(std::string path);
  // Removes the file this object wrote, if any.
  ~endpoints_file();
  endpoints_file(const endpoints_file&) = delete;
  endpoints_file& operator=(const endpoints_file&) = delete;

  // Writes `ep` (nothing when the path is empty). Throws startup_error naming
  // the path and the reason when it cannot (a missing folder, no permission,
  // the path is a folder).
  void write(const endpoints& ep);

 private:
  std::string path_;
  bool written_ = false;
};

}  // namespace saga::server
