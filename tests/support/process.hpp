#pragma once
// Helpers for tests that run programs (sagad, sagactl, saga-sim): a child process (RAII), a sagad
// started on endpoints it chooses and reports (--endpoints-file), and waiting until a sagad
// answers on its ingress.
//
// process: posix_spawn with an argv (no shell), stdin from /dev/null, stdout
// and stderr to files; wait_for() returns the exit status or "still running";
// the destructor kills a child still running with SIGKILL and reaps it; usage() is the ended
// child's rusage (peak memory, CPU time). A child started in a process group of its own
// (own_group) is killed with its whole group: the processes it started itself (chromedriver's
// browser) go with it.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "support/temp_dir.hpp"

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

// The non-empty lines of a text (a process's output).
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

class process {
 public:
  // Starts argv[0] (an absolute path) with argv; stdout and stderr go to the
  // given files (truncated). Throws std::runtime_error when it cannot spawn.
  process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path,
          bool own_group = false)
      : argv_(std::move(argv)),
        stdout_path_(std::move(stdout_path)),
        stderr_path_(std::move(stderr_path)),
        own_group_(own_group) {
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
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (own_group_) {
      posix_spawnattr_setpgroup(&attr, 0);  // a group whose id is the child's pid
      flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(&attr, flags);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv_[0] + ": " + std::strerror(rc));
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  ~process() {
    if (status_.running()) {
      // The group while the child is not reaped: its pid, and so the group's id, is not reused.
      ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
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
      const pid_t r = ::wait4(pid_, &st, WNOHANG, &usage_);
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

  // SIGKILL to the child's process group (own_group), then reap the child: every process of the
  // group ends, also those the child started.
  exit_status kill9_group() {
    if (own_group_ && status_.running()) ::kill(-pid_, SIGKILL);
    return kill9();
  }

  // What the child used (ru_maxrss: its peak resident set, KiB), once it has ended.
  const struct rusage& usage() const { return usage_; }

  std::string out() const { return read_text(stdout_path_); }
  std::string err() const { return read_text(stderr_path_); }
  const std::string& name() const { return argv_[0]; }

 private:
  std::vector<std::string> argv_;
  std::string stdout_path_, stderr_path_;
  bool own_group_ = false;
  pid_t pid_ = -1;
  exit_status status_;
  struct rusage usage_ {};
};

// A program run to its end: how it ended and what it printed.
struct finished_run {
  exit_status status;
  std::string out, err;
};

// Runs `argv` to its end (the timeout guards against a hang), its output kept in files in `dir`.
inline finished_run run_to_end(const temp_dir& dir, std::vector<std::string> argv,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  static int runs = 0;
  const auto base = dir.file("run-" + std::to_string(runs++));
  process p(std::move(argv), base + ".out", base + ".err");
  const auto status = p.wait_for(timeout);
  return {status, read_text(base + ".out"), read_text(base + ".err")};
}

// sagad's three endpoints.
struct endpoints {
  std::string ingress, publish, replay;

  // Loopback TCP on ports the process that binds them chooses (port "*"):
  // it reports them through --endpoints-file (read_endpoints_file). Never a
  // port found free here and released for sagad to bind: another process
  // may take it in between.
  static endpoints any_loopback() { return {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"}; }
  // ipc:// paths in `dir` (a test's own temporary folder), for tests where
  // TCP is not the point: nobody else binds them, and a restart binds them
  // again. (libzmq replaces a socket file left behind: never give two
  // running sagads the same folder.)
  static endpoints ipc_in(const std::filesystem::path& dir) {
    return {"ipc://" + (dir / "ingress").string(), "ipc://" + (dir / "publish").string(),
            "ipc://" + (dir / "replay").string()};
  }
};

// Waits until `child` has written its --endpoints-file at `path` (a complete
// JSON object carrying the child's own pid: sagad writes it atomically once
// its three sockets are bound) and returns the endpoints it holds. Returns
// nothing when the child ends first or `timeout` passes; `why` then says
// which (with the child's stderr).
inline std::optional<endpoints> read_endpoints_file(const std::string& path, process& child,
                                                    std::chrono::milliseconds timeout,
                                                    std::string* why = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Read before checking the child: a sagad that wrote the file and then
    // failed still said where it was bound.
    const nlohmann::json j = nlohmann::json::parse(read_text(path), nullptr, false);
    if (j.is_object() && j.value("pid", -1LL) == static_cast<long long>(child.pid()))
      return endpoints{j.at("ingress").get<std::string>(), j.at("publish").get<std::string>(),
                       j.at("replay").get<std::string>()};
    if (!child.running()) {
      if (why)
        *why = child.name() + " " + child.wait_for(std::chrono::milliseconds(0)).describe() +
               " before writing " + path + "; stderr: " + child.err();
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (why)
        *why = child.name() + " wrote no " + path + " within " + std::to_string(timeout.count()) +
               " ms; stderr: " + child.err();
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// A sagad started by start_daemon: the process, and where it is bound.
struct started_daemon {
  std::unique_ptr<process> proc;
  endpoints ep;       // what it reported; empty when it did not start
  std::string error;  // why it did not start; empty when it did
  explicit operator bool() const { return error.empty(); }
};

// Starts `argv` (sagad or a program with its options, without the endpoint
// options) bound to `bind` with --endpoints-file `endpoints_path`, and waits
// for that file (a stale one is removed first). stdout and stderr go to
// `out` and `err`.
//
// `bind` may be wildcards (the usual start), ipc paths, or the endpoints an
// earlier run of the same sagad reported (a restart that clients already
// connected there must find). Those ports were bound by sagad itself, not
// found free and released by the test; but between that run's end and this
// start another process may take one (an outgoing connection's ephemeral
// port), as it may from any daemon restarted on its configured port. sagad
// then exits with "Address already in use": it is started again, up to
// `in_use_retries` times, 200 ms apart, before that is reported as the error.
inline started_daemon start_daemon(std::vector<std::string> argv, const endpoints& bind,
                                   const std::string& endpoints_path, const std::string& out,
                                   const std::string& err,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(20),
                                   int in_use_retries = 25) {
  argv.insert(argv.end(), {"--ingress", bind.ingress, "--publish", bind.publish, "--replay", bind.replay,
                           "--endpoints-file", endpoints_path});
  started_daemon d;
  for (int attempt = 0;; ++attempt) {
    ::unlink(endpoints_path.c_str());
    d.proc.reset();
    d.proc = std::make_unique<process>(argv, out, err);
    std::string why;
    if (auto ep = read_endpoints_file(endpoints_path, *d.proc, timeout, &why)) {
      d.ep = std::move(*ep);
      return d;
    }
    const bool in_use =
        !d.proc->running() && d.proc->err().find("Address already in use") != std::string::npos;
    if (!in_use || attempt >= in_use_retries) {
      d.error = std::move(why);
      return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

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
