#pragma once
// database_lock — sagad's claim on its database: an exclusive flock on the
// database file itself, taken before any SQLite connection opens and held for
// the process's life. It is held on the file's inode, so a second sagad that
// reaches the same database by another path (a symlink, a hard link, ./x for
// x) refuses to start; sagactl, which does not take it, keeps reading. The
// kernel drops it when the process dies, kill -9 included.
//
// flock and SQLite's POSIX (fcntl) locks do not interact on Linux, but closing
// any descriptor of a file drops every fcntl lock the process holds on it:
// the descriptor must therefore stay open until every SQLite connection to
// the database has closed. Declare the lock before the connections.
//
// Errors: the constructor throws startup_error naming the database when it
// cannot open the file or another process holds the lock.

#include <string>

namespace saga::server {

class database_lock {
 public:
  explicit database_lock(const std::string& db);
  ~database_lock();
  database_lock(const database_lock&) = delete;
  database_lock& operator=(const database_lock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace saga::server
