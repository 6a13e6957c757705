#include "saga/duration.hpp"

#include <doctest/doctest.h>

TEST_SUITE("duration") {
  TEST_CASE("durations parse with ms s m h and d units") {
    CHECK(saga::parse_duration("500ms") == 500);
    CHECK(saga::parse_duration("90s") == 90'000);
    CHECK(saga::parse_duration("15m") == 900'000);
    CHECK(saga::parse_duration("2h") == 7'200'000);
    CHECK(saga::parse_duration("7d") == 604'800'000);
    CHECK(saga::parse_duration("0s") == 0);
  }

  TEST_CASE("malformed durations are refused") {
    for (const char* bad : {"", "7", "d", "7x", "-1s", "1.5h", " 7d", "7d ", "7 d", "99999999999999999999d",
                            "9223372036854775807d"})
      CHECK_MESSAGE(!saga::parse_duration(bad), bad);
  }

  TEST_CASE("durations format with the largest exact unit") {
    CHECK(saga::format_duration(604'800'000) == "7d");
    CHECK(saga::format_duration(90'000) == "90s");
    CHECK(saga::format_duration(3'600'000) == "1h");
    CHECK(saga::format_duration(1'500) == "1500ms");
    CHECK(saga::format_duration(0) == "0ms");
    CHECK(saga::parse_duration(saga::format_duration(86'400'000 * 3)) == 86'400'000 * 3);
  }
}
