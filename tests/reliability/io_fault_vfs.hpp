#pragma once
// A fault-injecting sqlite3_vfs for the I/O-fault tests (issue 7, section 2), the way SQLite
// tests itself: a shim over the default VFS whose files forward every method to the real file,
// except that the Nth write, sync or lock after arm() fails with the error code it was given
// (SQLITE_IOERR..., SQLITE_FULL, SQLITE_BUSY) — once, or from then on until disarm().
//
// install() registers the shim as the process's default VFS (name "faulty"); every connection
// opened afterwards without an explicit VFS goes through it (sagad's writer and reader, the
// store). A connection opened with vfs "unix" (or whatever real_vfs_name() says) bypasses it.
//
// Kinds:
//   write     xWrite on any file (database, WAL, rollback journal)
//   sync      xSync on any file
//   lock      xLock (file locks). In WAL mode the database file keeps its SHARED lock while the
//             connection is open, so after start-up almost no xLock happens; the WAL's own
//             locks go through xShmLock:
//   shm_lock  xShmLock acquisitions (SQLITE_SHM_LOCK; unlocks are never failed)
//
// Thread-safe: SQLite calls from any connection's thread, the test arms and reads from its own.

#include <sqlite3.h>

#include <cstdint>
#include <string>

namespace saga::test::io_fault {

enum class kind { write, sync, lock, shm_lock };
constexpr int kind_count = 4;

std::string to_string(kind k);
// "SQLITE_IOERR_WRITE", "SQLITE_FULL", ... (for messages).
std::string error_name(int code);

struct counters {
  std::uint64_t calls[kind_count] = {};        // calls seen since the last arm() (all kinds)
  std::uint64_t faults = 0;                    // faults injected since the last arm()
  std::uint64_t total_calls[kind_count] = {};  // since install()
  std::uint64_t total_faults = 0;              // since install()
};

// Registers the shim as the default VFS (once; later calls do nothing). Call it before any
// connection that should go through it is opened. Returns the shim's name.
const char* install();
// The name of the VFS the shim forwards to (the default before install(), normally "unix").
const char* real_vfs_name();

// From now on the `nth` call (1-based, counted from this arm) of `k` fails with `error`; with
// `persistent`, so does every later call of `k` until disarm(). Resets the per-arm counters.
void arm(kind k, std::uint64_t nth, int error, bool persistent);
// No more faults; the per-arm counters are kept for reading.
void disarm();
bool armed();

counters read();

}  // namespace saga::test::io_fault
