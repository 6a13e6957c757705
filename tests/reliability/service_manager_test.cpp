// sagad under a service manager (issue 16, item 3): the sd_notify protocol as systemd speaks it,
// with the test in systemd's place — $NOTIFY_SOCKET names a datagram socket the test binds in
// its folder and reads. READY=1 comes once the sockets are bound (with a STATUS= line naming
// them), WATCHDOG=1 keeps coming while the loop turns and stops while it is blocked (sagad-test's
// stall_commit fault point holds a commit), STOPPING=1 comes on SIGTERM. And --log-format json
// writes one JSON object a line.

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/zmq/client.hpp"
#include "support/order_events.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A unix datagram socket in the test's folder, bound as systemd binds $NOTIFY_SOCKET.
class notify_socket {
 public:
  explicit notify_socket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof(a.sun_path));
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  }
  ~notify_socket() { ::close(fd_); }
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;

  const std::string& path() const { return path_; }

  // The next datagram, or nullopt when none came within `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // The next datagram containing `what`, skipping others, or nullopt after `timeout`.
  std::optional<std::string> wait_for(const std::string& what, std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      auto m = next(std::max(left, 1ms));
      if (m && m->find(what) != std::string::npos) return m;
    }
    return std::nullopt;
  }

  // When each WATCHDOG=1 came during `span` (other messages are skipped), after the time the
  // span began.
  std::vector<steady::time_point> keep_alives(std::chrono::milliseconds span) {
    std::vector<steady::time_point> at{steady::now()};
    const auto deadline = at.front() + span;
    while (steady::now() < deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      auto m = next(std::max(left, 1ms));
      if (m && *m == "WATCHDOG=1") at.push_back(steady::now());
    }
    return at;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// The environment a service manager gives its service, for the children started meanwhile.
class managed_environment {
 public:
  managed_environment(const std::string& notify_socket, std::optional<std::chrono::microseconds> watchdog,
                      const std::string& fault = "") {
    set("NOTIFY_SOCKET", notify_socket);
    if (watchdog) set("WATCHDOG_USEC", std::to_string(watchdog->count()));
    if (!fault.empty()) set("SAGA_FAULT", fault);
  }
  ~managed_environment() {
    for (const auto& name : names_) ::unsetenv(name.c_str());
  }
  managed_environment(const managed_environment&) = delete;
  managed_environment& operator=(const managed_environment&) = delete;

 private:
  void set(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
    names_.push_back(name);
  }
  std::vector<std::string> names_;
};

// The longest time without a keep-alive in what keep_alives() returned (from the span's start).
std::chrono::milliseconds longest_gap(const std::vector<steady::time_point>& at) {
  std::chrono::milliseconds gap{0};
  for (std::size_t i = 1; i < at.size(); ++i)
    gap = std::max(gap, std::chrono::duration_cast<std::chrono::milliseconds>(at[i] - at[i - 1]));
  return gap;
}

}  // namespace

TEST_SUITE("service_manager") {
  TEST_CASE("sagad says READY once bound and STOPPING on SIGTERM and logs JSON lines") {
    saga::test::temp_dir dir;
    notify_socket manager(dir.file("notify"));
    managed_environment env(manager.path(), std::nullopt);
    auto d = saga::test::start_daemon({SAGAD_PATH, "--db", dir.file("saga.db"), "--log-format", "json"},
                                      saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                      dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(d, d.error);
    const auto ready = manager.wait_for("READY=1", 20s);
    INFO("sagad stderr: " << d.proc->err());
    REQUIRE(ready);
    CHECK(ready->find("STATUS=serving: ingress " + d.ep.ingress) != std::string::npos);
    CHECK(ready->find("published 0 pending at start") != std::string::npos);
    // Ready means serving: an event sent now is acked.
    ::zmq::context_t ctx(1);
    saga::zmq::client_options co;
    co.timeout = 10s;
    saga::zmq::client c(ctx, d.ep.ingress, co);
    CHECK(c.send(saga::test::placed("o-1")).status == saga::ack_status::accepted);

    REQUIRE(d.proc->signal(SIGTERM));
    const auto stopping = manager.wait_for("STOPPING=1", 20s);
    REQUIRE(stopping);
    CHECK(stopping->find("STATUS=stopping") != std::string::npos);
    const auto status = d.proc->wait_for(30s);
    CHECK(status.exited());
    CHECK(status.code() == 0);

    // --log-format json: every line one object with its four fields.
    const auto lines = saga::test::lines_of(d.proc->err());
    REQUIRE(lines.size() >= 2);
    bool stopped = false;
    for (const auto& line : lines) {
      CAPTURE(line);
      const auto j = nlohmann::json::parse(line);
      CHECK(j.at("time").is_string());
      CHECK(j.at("level").is_string());
      CHECK(j.at("logger") == "sagad");
      stopped |= j.at("message").get<std::string>().find("sagad stopped") != std::string::npos;
    }
    CHECK(stopped);
  }

#if defined(SAGAD_TEST_PATH)
  TEST_CASE("the watchdog's keep-alives stop while the loop is blocked and come back after") {
    saga::test::temp_dir dir;
    notify_socket manager(dir.file("notify"));
    // Keep-alives every 100 ms; every commit held for 2 s (a hung disk).
    managed_environment env(manager.path(), 200ms, "stall_commit:2");
    auto d = saga::test::start_daemon({SAGAD_TEST_PATH, "--db", dir.file("saga.db")},
                                      saga::test::endpoints::any_loopback(), dir.file("endpoints.json"),
                                      dir.file("sagad.out"), dir.file("sagad.err"));
    REQUIRE_MESSAGE(d, d.error);
    INFO("sagad stderr: " << d.proc->err());
    REQUIRE(manager.wait_for("READY=1", 20s));

    const auto turning = manager.keep_alives(1s);
    CHECK(turning.size() >= 1 + 4);
    CHECK(longest_gap(turning) < 1000ms);

    // One event: its commit holds the loop for 2 s.
    auto acked = std::async(std::launch::async, [&] {
      ::zmq::context_t ctx(1);
      saga::zmq::client_options co;
      co.timeout = 20s;
      saga::zmq::client c(ctx, d.ep.ingress, co);
      return c.send(saga::test::placed("o-1")).status;
    });
    const auto blocked = manager.keep_alives(3500ms);
    CHECK(acked.get() == saga::ack_status::accepted);
    CHECK(longest_gap(blocked) >= 1500ms);
    const auto again = manager.keep_alives(1s);
    CHECK(again.size() >= 1 + 4);

    REQUIRE(d.proc->signal(SIGTERM));
    CHECK(manager.wait_for("STOPPING=1", 20s));
    CHECK(d.proc->wait_for(30s).exited());
  }
#endif
}
