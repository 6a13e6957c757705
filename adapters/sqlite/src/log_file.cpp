#include "saga/sqlite/log_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "saga/store.hpp"

namespace saga::sqlite {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int error) {
  throw saga::store_error(what + " " + path + ": " + std::strerror(error));
}

}  // namespace

log_file::log_file(std::string log_path) : path_(std::move(log_path)) {}

log_file::~log_file() {
  if (fd_ >= 0) ::close(fd_);
}

void log_file::sync() {
  if (fd_ < 0) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("cannot open the write-ahead log", path_, errno);
    fd_ = fd;
  }
  int rc = 0;
  do rc = ::fdatasync(fd_);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) fail("cannot sync the write-ahead log", path_, errno);
}

}  // namespace saga::sqlite
