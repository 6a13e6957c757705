#include "endpoints_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace saga::server {

endpoints_file::endpoints_file(std::string path) : path_(std::move(path)) {
  // A missing file, or one that cannot be removed: write() says what is wrong.
  if (!path_.empty()) ::unlink(path_.c_str());
}

endpoints_file::~endpoints_file() {
  if (written_) ::unlink(path_.c_str());
}

void endpoints_file::write(const endpoints& ep) {
  if (path_.empty()) return;
  nlohmann::json j{{"ingress", ep.ingress},
                   {"publish", ep.publish},
                   {"replay", ep.replay},
                   {"pid", static_cast<long long>(::getpid())}};
  if (!ep.metrics.empty()) j["metrics"] = ep.metrics;
  if (!ep.console.empty()) j["console"] = ep.console;
  const std::string text = j.dump() + "\n";
  const auto fail = [&](const std::string& what, int err) {
    throw startup_error("--endpoints-file " + path_ + ": " + what + ": " + std::strerror(err));
  };
  const std::string tmp = path_ + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create " + tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write " + tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write " + tmp, err);
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename " + tmp + " to it", err);
  }
  written_ = true;
}

}  // namespace saga::server
