// UUIDv7 (RFC 9562): layout, version and variant, the timestamp prefix, and
// strict ordering within and across milliseconds.
//
// The generator is process-wide and other tests in this executable use it, so
// every test here starts from fresh_ms(): a millisecond after anything the
// generator has handed out so far.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "saga/uuid.hpp"

namespace {

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

std::uint64_t hex_value(const std::string& s) {
  std::uint64_t v = 0;
  for (char c : s) {
    if (c == '-') continue;
    v = v * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return v;
}

// The 48-bit Unix-millisecond prefix (the first 12 hex digits).
std::int64_t timestamp_of(const std::string& id) {
  return static_cast<std::int64_t>(hex_value(id.substr(0, 8) + id.substr(9, 4)));
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// A millisecond later than the last id handed out, and not behind the clock.
std::int64_t fresh_ms() {
  return std::max(now_ms(), timestamp_of(saga::make_uuid_v7()) + 1);
}

}  // namespace

TEST_SUITE("uuid") {
  TEST_CASE("an id is 36 characters of lower-case hex with dashes at 8 13 18 and 23") {
    for (const std::string& id : {saga::make_uuid_v7(), saga::make_uuid_v7(fresh_ms())}) {
      CAPTURE(id);
      REQUIRE(id.size() == 36);
      for (std::size_t i = 0; i < id.size(); ++i) {
        CAPTURE(i);
        if (i == 8 || i == 13 || i == 18 || i == 23)
          CHECK(id[i] == '-');
        else
          CHECK(is_lower_hex(id[i]));
      }
    }
  }

  TEST_CASE("an id has version 7 and the RFC 9562 variant") {
    for (int i = 0; i < 1000; ++i) {
      const std::string id = saga::make_uuid_v7();
      CAPTURE(id);
      CHECK(id[14] == '7');  // the version nibble
      const int variant = id[19] <= '9' ? id[19] - '0' : id[19] - 'a' + 10;
      CHECK((variant & 0xc) == 0x8);  // binary 10xx
    }
  }

  TEST_CASE("the 48-bit prefix is the millisecond given") {
    const std::int64_t ms = fresh_ms();
    const std::string id = saga::make_uuid_v7(ms);
    CAPTURE(id);
    CHECK(timestamp_of(id) == ms);
    CHECK(id.substr(0, 8) + id.substr(9, 4) == [&] {
      char buf[13];
      std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(ms));
      return std::string(buf);
    }());
  }

  TEST_CASE("an id made at the current time carries the current millisecond") {
    const std::int64_t before = fresh_ms();
    const std::string id = saga::make_uuid_v7();
    const std::int64_t after = now_ms();
    // The generator never goes backwards, so it may run ahead of the clock
    // only by what fresh_ms() itself asked for.
    CHECK(timestamp_of(id) >= before - 1);
    CHECK(timestamp_of(id) <= std::max(after, before));
  }

  TEST_CASE("10000 ids made in the same millisecond are strictly increasing and unique") {
    const std::int64_t ms = fresh_ms();
    std::vector<std::string> ids;
    ids.reserve(10000);
    for (int i = 0; i < 10000; ++i) ids.push_back(saga::make_uuid_v7(ms));

    for (std::size_t i = 1; i < ids.size(); ++i) {
      if (!(ids[i - 1] < ids[i])) {
        CAPTURE(i);
        CAPTURE(ids[i - 1]);
        CAPTURE(ids[i]);
        FAIL("ids are not strictly increasing");
      }
    }
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());
    CHECK(timestamp_of(ids.front()) == ms);
    // When a millisecond's counter runs out the generator borrows the next
    // millisecond rather than go back: never earlier than asked for.
    for (const auto& id : ids) {
      CHECK(timestamp_of(id) >= ms);
      CHECK(id[14] == '7');
    }
  }

  TEST_CASE("ids made at increasing milliseconds increase") {
    const std::int64_t start = fresh_ms();
    std::string previous;
    for (std::int64_t ms = start; ms < start + 50; ++ms) {
      const std::string id = saga::make_uuid_v7(ms);
      CAPTURE(id);
      CHECK(timestamp_of(id) == ms);
      if (!previous.empty()) CHECK(previous < id);
      previous = id;
    }
  }

  TEST_CASE("a clock that goes back does not make ids go back") {
    const std::int64_t ms = fresh_ms();
    const std::string first = saga::make_uuid_v7(ms);
    const std::string earlier = saga::make_uuid_v7(ms - 1000);
    CHECK(first < earlier);
    CHECK(timestamp_of(earlier) == ms);
  }

  // The random bits come from a per-thread pool drawn from the kernel a block at a time; a forked
  // child must not hand out the bytes its parent has drawn but not used yet.
  TEST_CASE("a forked child does not repeat the random bits its parent goes on to use") {
    saga::make_uuid_v7();  // the pool is drawn, and has bytes left
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      std::string ids;
      for (int i = 0; i < 8; ++i) ids += saga::make_uuid_v7().substr(19);  // the random part
      const auto written = ::write(pipe_fds[1], ids.data(), ids.size());
      ::_exit(written == static_cast<ssize_t>(ids.size()) ? 0 : 1);
    }
    ::close(pipe_fds[1]);
    std::set<std::string> parent;
    for (int i = 0; i < 8; ++i) parent.insert(saga::make_uuid_v7().substr(19));
    std::string from_child(8 * 17, '\0');
    std::size_t got = 0;
    while (got < from_child.size()) {
      const auto n = ::read(pipe_fds[0], from_child.data() + got, from_child.size() - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(got == from_child.size());
    CHECK(WIFEXITED(status));
    for (std::size_t i = 0; i < 8; ++i) CHECK(parent.count(from_child.substr(i * 17, 17)) == 0);
  }
}
