#include "database_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "saga/server/options.hpp"

namespace saga::server {

database_lock::database_lock(const std::string& db) {
  // Created when missing: SQLite takes an empty file as an empty database.
  fd_ = ::open(db.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw startup_error("cannot open database " + db + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    struct stat st {};
    const bool known = ::fstat(fd_, &st) == 0;
    ::close(fd_);  // no SQLite connection of ours is open yet
    if (err == EWOULDBLOCK)
      throw startup_error("another sagad is running on " + db + " (it holds a lock on the database file" +
                          (known ? ", inode " + std::to_string(st.st_ino) : std::string()) + ")");
    throw startup_error("cannot lock database " + db + ": " + std::strerror(err));
  }
}

database_lock::~database_lock() {
  ::close(fd_);
}

}  // namespace saga::server
