#pragma once
// UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then a counter
// and random bits, so ids sort by creation time. Within one process, ids are
// strictly increasing. Thread-safe.

#include <cstdint>
#include <string>

namespace saga {

std::string make_uuid_v7(std::int64_t unix_ms);
std::string make_uuid_v7();  // at the system clock's current time

}  // namespace saga
