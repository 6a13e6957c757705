#pragma once
// Random bytes for ids (uuid.cpp, trace.cpp): the kernel's CSPRNG, drawn a block at a time.

#include <cstddef>

namespace saga::detail {

// Fills `out` with `n` bytes from the kernel's CSPRNG (getrandom, through arc4random_buf). Each
// thread draws 512 bytes at once and hands them out, so an id costs no system call of its own;
// a forked child never reuses bytes its parent drew before the fork.
void random_bytes(void* out, std::size_t n);

}  // namespace saga::detail
