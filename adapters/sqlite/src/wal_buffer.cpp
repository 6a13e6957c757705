// The WAL-append buffering VFS (wal_buffer.hpp). SQLite's VFS interface: sqlite.org/c3ref/vfs.html
// and sqlite.org/c3ref/io_methods.html; the WAL file's format: sqlite.org/fileformat2.html#walformat.

#include "saga/sqlite/wal_buffer.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>

namespace saga::sqlite::wal_buffer {
namespace {

// Below 128 KiB: the unix VFS writes at most 0x1ffff bytes per call (os_unix.c, seekAndWrite).
constexpr int capacity = 120 * 1024;
// A WAL frame's header: page number, then the database size in pages after a commit (zero in
// every frame but a transaction's last), salts and checksums (fileformat2.html#walformat).
constexpr int frame_header_size = 24;

std::atomic<std::uint64_t> asked{0};
std::atomic<std::uint64_t> made{0};

// What a WAL file holds back: bytes for [start, start + used) of the file, not written yet.
struct pending {
  std::unique_ptr<char[]> bytes;  // `capacity` bytes, allocated on the first write
  int used = 0;
  sqlite3_int64 start = 0;
  bool commit_frame_next = false;  // the last write was a commit frame's header
};

// Our sqlite3_file: the wrapped VFS's file follows it in the same allocation (szOsFile).
struct file {
  sqlite3_file base;
  sqlite3_file* real;
  pending* wal;    // a WAL file's buffer; null for every other file
  file* database;  // a WAL file's database file (ours too)
  pending* log;    // a database file's: its open WAL file's buffer, if any
};
// SQLite allocates files 8-byte aligned; so is the wrapped file that follows ours.
static_assert(sizeof(file) % 8 == 0);

file& ours(sqlite3_file* f) {
  return *reinterpret_cast<file*>(f);
}
sqlite3_file* real(sqlite3_file* f) {
  return ours(f).real;
}

// Every io method of the wrapped file, called on it: the methods of database files, journals and
// the shared-memory index, and the WAL file's that need nothing before them.
template <auto Member>
struct forward;
template <typename R, typename... A, R (*sqlite3_io_methods::*Member)(sqlite3_file*, A...)>
struct forward<Member> {
  static R call(sqlite3_file* f, A... a) {
    sqlite3_file* r = real(f);
    return (r->pMethods->*Member)(r, a...);
  }
};

int write_through(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  made.fetch_add(1, std::memory_order_relaxed);
  return real(f)->pMethods->xWrite(real(f), data, amount, offset);
}

// Writes what is held back. A failure keeps it: the next write or sync tries again first.
int flush(sqlite3_file* f) {
  pending& w = *ours(f).wal;
  if (w.used == 0) return SQLITE_OK;
  const int rc = write_through(f, w.bytes.get(), w.used, w.start);
  if (rc == SQLITE_OK) w.used = 0;
  return rc;
}

bool is_commit_header(const void* data, int amount) {
  if (amount != frame_header_size) return false;
  const auto* b = static_cast<const unsigned char*>(data);
  return (b[4] | b[5] | b[6] | b[7]) != 0;
}

int wal_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  asked.fetch_add(1, std::memory_order_relaxed);
  pending& w = *ours(f).wal;
  const bool ends_commit = w.commit_frame_next;  // this is the page of a commit frame
  w.commit_frame_next = false;
  if (w.used > 0 && (offset != w.start + w.used || amount > capacity - w.used)) {
    if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  }
  if (!w.bytes) w.bytes.reset(new (std::nothrow) char[capacity]);
  if (!w.bytes || amount > capacity) return write_through(f, data, amount, offset);
  if (w.used == 0) w.start = offset;
  std::memcpy(w.bytes.get() + w.used, data, static_cast<std::size_t>(amount));
  w.used += amount;
  if (ends_commit) return flush(f);
  w.commit_frame_next = is_commit_header(data, amount);
  return SQLITE_OK;
}

// A WAL file's content is the file's, overlaid with what is held back (the newest bytes of its
// range: a write that does not continue them writes them out first). Reads are served from both,
// so that they never write and never fail because a write does.
int wal_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  const pending& w = *ours(f).wal;
  const sqlite3_int64 end = offset + amount;
  const sqlite3_int64 held_end = w.start + w.used;
  auto read = [&](sqlite3_int64 from, sqlite3_int64 to) {
    sqlite3_file* r = real(f);
    return r->pMethods->xRead(r, static_cast<char*>(out) + (from - offset), static_cast<int>(to - from),
                              from);
  };
  if (w.used == 0 || end <= w.start || offset >= held_end) return read(offset, end);
  int rc = SQLITE_OK;
  if (offset < w.start) rc = read(offset, w.start);
  if (end > held_end) {
    const int after = read(held_end, end);
    if (rc == SQLITE_OK) rc = after;
  }
  const sqlite3_int64 from = std::max(offset, w.start);
  const sqlite3_int64 to = std::min(end, held_end);
  std::memcpy(static_cast<char*>(out) + (from - offset), w.bytes.get() + (from - w.start),
              static_cast<std::size_t>(to - from));
  return rc;
}

int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  const int rc = forward<&sqlite3_io_methods::xFileSize>::call(f, size);
  const pending& w = *ours(f).wal;
  if (rc == SQLITE_OK && w.used > 0) *size = std::max(*size, w.start + w.used);
  return rc;
}

int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  pending& w = *ours(f).wal;
  if (w.used > 0 && size < w.start + w.used) {
    w.used = size <= w.start ? 0 : static_cast<int>(size - w.start);
    w.commit_frame_next = false;
  }
  return forward<&sqlite3_io_methods::xTruncate>::call(f, size);
}

int wal_sync(sqlite3_file* f, int flags) {
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return forward<&sqlite3_io_methods::xSync>::call(f, flags);
}

int wal_close(sqlite3_file* f) {
  const int flushed_rc = flush(f);
  const int rc = forward<&sqlite3_io_methods::xClose>::call(f);
  file& o = ours(f);
  if (o.database != nullptr) o.database->log = nullptr;
  delete o.wal;
  o.wal = nullptr;
  return flushed_rc != SQLITE_OK ? flushed_rc : rc;
}

// The wal-index's write lock (fileformat2.html#walidxfmt: lock 0). SQLite releases it when a
// write transaction ends, committed or not.
constexpr int write_lock = 0;

// A database file's xShmLock. When the write lock is released, whatever the log still holds
// belongs to a transaction that did not commit (a commit's frames are written before it
// returns): it is dropped, so that it can never land on frames another writer commits next.
int database_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  pending* log = ours(f).log;
  if (log != nullptr && flags == (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE) && offset <= write_lock &&
      write_lock < offset + n) {
    log->used = 0;
    log->commit_frame_next = false;
  }
  return forward<&sqlite3_io_methods::xShmLock>::call(f, offset, n, flags);
}

constexpr sqlite3_io_methods methods_of(int version, bool wal) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = wal ? &wal_close : &forward<&sqlite3_io_methods::xClose>::call;
  m.xRead = wal ? &wal_read : &forward<&sqlite3_io_methods::xRead>::call;
  m.xWrite = wal ? &wal_write : &forward<&sqlite3_io_methods::xWrite>::call;
  m.xTruncate = wal ? &wal_truncate : &forward<&sqlite3_io_methods::xTruncate>::call;
  m.xSync = wal ? &wal_sync : &forward<&sqlite3_io_methods::xSync>::call;
  m.xFileSize = wal ? &wal_file_size : &forward<&sqlite3_io_methods::xFileSize>::call;
  m.xLock = &forward<&sqlite3_io_methods::xLock>::call;
  m.xUnlock = &forward<&sqlite3_io_methods::xUnlock>::call;
  m.xCheckReservedLock = &forward<&sqlite3_io_methods::xCheckReservedLock>::call;
  m.xFileControl = &forward<&sqlite3_io_methods::xFileControl>::call;
  m.xSectorSize = &forward<&sqlite3_io_methods::xSectorSize>::call;
  m.xDeviceCharacteristics = &forward<&sqlite3_io_methods::xDeviceCharacteristics>::call;
  if (version >= 2) {
    m.xShmMap = &forward<&sqlite3_io_methods::xShmMap>::call;
    m.xShmLock = wal ? &forward<&sqlite3_io_methods::xShmLock>::call : &database_shm_lock;
    m.xShmBarrier = &forward<&sqlite3_io_methods::xShmBarrier>::call;
    m.xShmUnmap = &forward<&sqlite3_io_methods::xShmUnmap>::call;
  }
  if (version >= 3) {
    m.xFetch = &forward<&sqlite3_io_methods::xFetch>::call;
    m.xUnfetch = &forward<&sqlite3_io_methods::xUnfetch>::call;
  }
  return m;
}

// Indexed by [version - 1][wal]: each file gets the version of the file it wraps.
constexpr std::array<std::array<sqlite3_io_methods, 2>, 3> method_tables{{
    {methods_of(1, false), methods_of(1, true)},
    {methods_of(2, false), methods_of(2, true)},
    {methods_of(3, false), methods_of(3, true)},
}};

bool is_ours(const sqlite3_file* f) {
  for (const auto& tables : method_tables)
    if (f->pMethods == &tables[0]) return true;
  return false;
}

sqlite3_vfs* wrapped(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

int open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  file& o = ours(f);
  o.base.pMethods = nullptr;
  o.real = reinterpret_cast<sqlite3_file*>(&o + 1);
  o.wal = nullptr;
  o.database = nullptr;
  o.log = nullptr;
  o.real->pMethods = nullptr;
  const int rc = wrapped(vfs)->xOpen(wrapped(vfs), name, o.real, flags, out_flags);
  // SQLite calls xClose whenever pMethods is set after xOpen, even if the open failed.
  if (o.real->pMethods == nullptr) return rc;
  // A WAL file is buffered only when its database file is ours, whose write lock tells when a
  // transaction ends (database_shm_lock); otherwise it is forwarded like any other file.
  sqlite3_file* database = (flags & SQLITE_OPEN_WAL) != 0 ? sqlite3_database_file_object(name) : nullptr;
  const bool wal = rc == SQLITE_OK && database != nullptr && is_ours(database);
  if (wal) {
    o.wal = new (std::nothrow) pending;
    if (o.wal == nullptr) {
      o.real->pMethods->xClose(o.real);
      return SQLITE_NOMEM;
    }
    o.database = &ours(database);
    o.database->log = o.wal;
  }
  const int version = std::clamp(o.real->pMethods->iVersion, 1, 3);
  o.base.pMethods = &method_tables[static_cast<std::size_t>(version - 1)][wal ? 1 : 0];
  return rc;
}

// The VFS's own methods, each the wrapped VFS's.
template <auto Member>
struct forward_vfs;
template <typename R, typename... A, R (*sqlite3_vfs::*Member)(sqlite3_vfs*, A...)>
struct forward_vfs<Member> {
  static R call(sqlite3_vfs* vfs, A... a) { return (wrapped(vfs)->*Member)(wrapped(vfs), a...); }
};

sqlite3_vfs make_vfs(sqlite3_vfs* base) {
  sqlite3_vfs v{};
  v.iVersion = std::min(base->iVersion, 3);
  v.szOsFile = static_cast<int>(sizeof(file)) + base->szOsFile;
  v.mxPathname = base->mxPathname;
  v.zName = "saga-wal-buffer";
  v.pAppData = base;
  v.xOpen = &open;
  v.xDelete = &forward_vfs<&sqlite3_vfs::xDelete>::call;
  v.xAccess = &forward_vfs<&sqlite3_vfs::xAccess>::call;
  v.xFullPathname = &forward_vfs<&sqlite3_vfs::xFullPathname>::call;
  v.xDlOpen = &forward_vfs<&sqlite3_vfs::xDlOpen>::call;
  v.xDlError = &forward_vfs<&sqlite3_vfs::xDlError>::call;
  v.xDlSym = &forward_vfs<&sqlite3_vfs::xDlSym>::call;
  v.xDlClose = &forward_vfs<&sqlite3_vfs::xDlClose>::call;
  v.xRandomness = &forward_vfs<&sqlite3_vfs::xRandomness>::call;
  v.xSleep = &forward_vfs<&sqlite3_vfs::xSleep>::call;
  v.xCurrentTime = &forward_vfs<&sqlite3_vfs::xCurrentTime>::call;
  v.xGetLastError = &forward_vfs<&sqlite3_vfs::xGetLastError>::call;
  if (v.iVersion >= 2) v.xCurrentTimeInt64 = &forward_vfs<&sqlite3_vfs::xCurrentTimeInt64>::call;
  if (v.iVersion >= 3) {
    v.xSetSystemCall = &forward_vfs<&sqlite3_vfs::xSetSystemCall>::call;
    v.xGetSystemCall = &forward_vfs<&sqlite3_vfs::xGetSystemCall>::call;
    v.xNextSystemCall = &forward_vfs<&sqlite3_vfs::xNextSystemCall>::call;
  }
  return v;
}

}  // namespace

const char* vfs_name() {
  static sqlite3_vfs vfs;
  static std::once_flag once;
  std::call_once(once, [] {
    sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
    if (base == nullptr) throw std::runtime_error("saga::sqlite::wal_buffer: SQLite has no default VFS");
    vfs = make_vfs(base);
    if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK) {
      throw std::runtime_error("saga::sqlite::wal_buffer: registering the VFS failed");
    }
  });
  return vfs.zName;
}

counts totals() {
  return counts{asked.load(std::memory_order_relaxed), made.load(std::memory_order_relaxed)};
}

}  // namespace saga::sqlite::wal_buffer
