#pragma once
// Helpers for tests that run programs (sagad, sagactl, saga-sim): a child process (RAII), free
// loopback ports, and waiting until a sagad answers on its ingress.
//
// process: posix_spawn with an argv (no shell), stdin from /dev/null, stdout
// and stderr to files; wait_for() returns the exit status or "still running";
// the destructor kills a child still running with SIGKILL and reaps it.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

extern char** environ;

namespace saga::test {

// How a child ended, or that it has not yet.
struct exit_status {
  enum class kind { running, exited, signaled };
  kind how = kind::running;
  int value = 0;  // exit code, or signal number

  bool running() const { return how == kind::running; }
  bool exited() const { return how == kind::exited; }
  bool signaled() const { return how == kind::signaled; }
  int code() const { return exited() ? value : -1; }
  int signal() const { return signaled() ? value : 0; }
  std::string describe() const {
    switch (how) {
      case kind::running:
        return "still running";
      case kind::exited:
        return "exited with " + std::to_string(value);
      case kind::signaled:
        return "killed by signal " + std::to_string(value);
    }
    return "?";
  }
};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class process {
 public:
  // Starts argv[0] (an absolute path) with argv; stdout and stderr go to the
  // given files (truncated). Throws std::runtime_error when it cannot spawn.
  process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path)
      : argv_(std::move(argv)), stdout_path_(std::move(stdout_path)), stderr_path_(std::move(stderr_path)) {
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // The child starts with default signal dispositions and an empty mask.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv_[0] + ": " + std::strerror(rc));
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  ~process() {
    if (status_.running()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }

  pid_t pid() const { return pid_; }
  bool signal(int sig) { return status_.running() && ::kill(pid_, sig) == 0; }

  // Waits up to `timeout` for the child to end; returns how it ended, or
  // "running" when it still runs afterwards.
  exit_status wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (status_.running()) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        if (WIFEXITED(st))
          status_ = {exit_status::kind::exited, WEXITSTATUS(st)};
        else if (WIFSIGNALED(st))
          status_ = {exit_status::kind::signaled, WTERMSIG(st)};
        break;
      }
      if (r < 0 && errno != EINTR) throw std::runtime_error("waitpid: " + std::string(std::strerror(errno)));
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
  }
  bool running() { return wait_for(std::chrono::milliseconds(0)).running(); }

  // SIGKILL, then reap: the process really crashed.
  exit_status kill9() {
    signal(SIGKILL);
    return wait_for(std::chrono::seconds(10));
  }

  std::string out() const { return read_text(stdout_path_); }
  std::string err() const { return read_text(stderr_path_); }
  const std::string& name() const { return argv_[0]; }

 private:
  std::vector<std::string> argv_;
  std::string stdout_path_, stderr_path_;
  pid_t pid_ = -1;
  exit_status status_;
};

// `n` distinct loopback ports that were free a moment ago: each bound to port
// 0 (the kernel picks), all held until every one is known, then released.
inline std::vector<int> free_ports(std::size_t n) {
  std::vector<int> fds, ports;
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    fds.push_back(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind: " + std::string(std::strerror(errno)));
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("getsockname: " + std::string(std::strerror(errno)));
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

inline std::string loopback(int port) {
  return "tcp://127.0.0.1:" + std::to_string(port);
}

// sagad's three endpoints, on ports found free now.
struct endpoints {
  std::string ingress, publish, replay;
  static endpoints free() {
    const auto p = free_ports(3);
    return {loopback(p[0]), loopback(p[1]), loopback(p[2])};
  }
};

// Waits until the ingress answers: sends an event of a type no definition
// consumes (rejected, harmless) and waits for its ack, resending meanwhile.
// Returns false after `timeout`, or at once when `child` is given and ended.
inline bool wait_until_ingress_answers(const std::string& ingress, std::chrono::milliseconds timeout,
                                       process* child = nullptr) {
  ::zmq::context_t ctx(1);
  ::zmq::socket_t s(ctx, ::zmq::socket_type::dealer);
  s.set(::zmq::sockopt::linger, 0);
  s.connect(ingress);
  const std::string ping = nlohmann::json{
      {"specversion", "1.0"},
      {"id", "ping"},
      {"source", "urn:test:ready"},
      {"type", "test.ready.ping"},
      {"subject", "ping"}}.dump();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (child && !child->running()) return false;
    s.send(::zmq::const_buffer(), ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait);
    s.send(::zmq::buffer(ping), ::zmq::send_flags::dontwait);
    ::zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, std::chrono::milliseconds(200));
    if (item.revents & ZMQ_POLLIN) return true;
  }
  return false;
}

}  // namespace saga::test
