#pragma once
// A SQLite VFS that gathers a transaction's write-ahead-log appends into few large writes
// (issue 15, eighth round; docs/architecture.md, "The write-ahead log, written in large pieces").
//
// SQLite writes each WAL frame with two system calls, its 24-byte header and then its page, and a
// commit of a thousand events appends about a thousand frames. This VFS wraps the default one
// (on Linux "unix") and, for WAL files only, keeps contiguous appends in a buffer of its own
// (120 KiB, allocated on the first write) and writes them with one call:
//   * when the buffer is full or the next write is not contiguous;
//   * at once after the page of a commit frame (a frame whose header carries the database size),
//     so every commit is in the file before SQLite publishes it to other connections, whatever the
//     synchronous level; a failure is that write's error, and SQLite rolls the transaction back;
//   * before a sync or close of the WAL file.
// Reads are served from the file and the buffer together (the buffer holds the newest bytes of its
// range), a size query counts what is held, and a truncate drops what lies beyond it: none of them
// writes, so none fails because a write does. A write that fails keeps its bytes: every later
// write or sync of that WAL file tries them again first and fails while they are refused, so no
// byte SQLite wrote reaches the file out of order.
// When SQLite releases the write lock (the transaction ended), what is still held belonged to a
// transaction that did not commit (rolled back, or its commit failed) and is dropped, so it never
// lands on frames another writer commits next. A WAL file whose database file was not opened
// through this VFS is not buffered.
// Database files, journals and the shared-memory index are not buffered (each call is forwarded).
//
// saga::sqlite::store opens its own read-write connections with it; an embedding host can open
// its SQLite::Database with vfs_name() as the VFS argument to get the same.

#include <cstdint>

namespace saga::sqlite::wal_buffer {

// The VFS's name, registered with SQLite (not as the default) on the first call; thread-safe.
// Throws std::runtime_error if SQLite has no default VFS to wrap.
const char* vfs_name();

// Process-wide counts over every WAL file opened through the VFS (for tests and diagnostics):
// the writes SQLite asked for, and the writes made to the file.
struct counts {
  std::uint64_t writes_asked = 0;
  std::uint64_t writes_made = 0;
};
counts totals();

}  // namespace saga::sqlite::wal_buffer
