#include "io_fault_vfs.hpp"

#include <cstring>
#include <mutex>
#include <stdexcept>

namespace saga::test::io_fault {
namespace {

// ---- control --------------------------------------------------------------------------------

struct control {
  std::mutex m;
  bool armed = false;
  kind k = kind::write;
  std::uint64_t nth = 0;
  int error = SQLITE_IOERR;
  bool persistent = false;
  counters c;
};

control& ctl() {
  static control c;
  return c;
}

// Counts a call of `k`; returns the error to inject, or SQLITE_OK.
int check(kind k) {
  auto& s = ctl();
  std::lock_guard lock(s.m);
  const auto i = static_cast<int>(k);
  ++s.c.calls[i];
  ++s.c.total_calls[i];
  if (!s.armed || s.k != k) return SQLITE_OK;
  const auto n = s.c.calls[i];
  if (n == s.nth || (s.persistent && n > s.nth)) {
    ++s.c.faults;
    ++s.c.total_faults;
    return s.error;
  }
  return SQLITE_OK;
}

// ---- the file -------------------------------------------------------------------------------

sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs shim_vfs;

// Our sqlite3_file, followed in the same allocation by the real VFS's file.
struct shim_file {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* real_of(sqlite3_file* f) {
  return reinterpret_cast<shim_file*>(f)->real;
}
const sqlite3_io_methods* m(sqlite3_file* f) {
  return real_of(f)->pMethods;
}

int x_close(sqlite3_file* f) {
  auto* r = real_of(f);
  const int rc = r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
  f->pMethods = nullptr;
  return rc;
}
int x_read(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  return m(f)->xRead(real_of(f), buf, amt, off);
}
int x_write(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  if (const int rc = check(kind::write); rc != SQLITE_OK) return rc;
  return m(f)->xWrite(real_of(f), buf, amt, off);
}
int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return m(f)->xTruncate(real_of(f), size);
}
int x_sync(sqlite3_file* f, int flags) {
  if (const int rc = check(kind::sync); rc != SQLITE_OK) return rc;
  return m(f)->xSync(real_of(f), flags);
}
int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return m(f)->xFileSize(real_of(f), size);
}
int x_lock(sqlite3_file* f, int level) {
  if (const int rc = check(kind::lock); rc != SQLITE_OK) return rc;
  return m(f)->xLock(real_of(f), level);
}
int x_unlock(sqlite3_file* f, int level) {
  return m(f)->xUnlock(real_of(f), level);
}
int x_check_reserved_lock(sqlite3_file* f, int* out) {
  return m(f)->xCheckReservedLock(real_of(f), out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  return m(f)->xFileControl(real_of(f), op, arg);
}
int x_sector_size(sqlite3_file* f) {
  return m(f)->xSectorSize(real_of(f));
}
int x_device_characteristics(sqlite3_file* f) {
  return m(f)->xDeviceCharacteristics(real_of(f));
}
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return m(f)->xShmMap(real_of(f), page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  if (flags & SQLITE_SHM_LOCK)
    if (const int rc = check(kind::shm_lock); rc != SQLITE_OK) return rc;
  return m(f)->xShmLock(real_of(f), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) {
  m(f)->xShmBarrier(real_of(f));
}
int x_shm_unmap(sqlite3_file* f, int delete_flag) {
  return m(f)->xShmUnmap(real_of(f), delete_flag);
}
int x_fetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** out) {
  return m(f)->xFetch(real_of(f), off, amt, out);
}
int x_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return m(f)->xUnfetch(real_of(f), off, p);
}

// One table per version of the real file's methods, so that SQLite sees exactly the optional
// methods the real file has (a version-1 file has no shared memory, so no WAL).
sqlite3_io_methods make_methods(int version) {
  sqlite3_io_methods t{};
  t.iVersion = version;
  t.xClose = x_close;
  t.xRead = x_read;
  t.xWrite = x_write;
  t.xTruncate = x_truncate;
  t.xSync = x_sync;
  t.xFileSize = x_file_size;
  t.xLock = x_lock;
  t.xUnlock = x_unlock;
  t.xCheckReservedLock = x_check_reserved_lock;
  t.xFileControl = x_file_control;
  t.xSectorSize = x_sector_size;
  t.xDeviceCharacteristics = x_device_characteristics;
  if (version >= 2) {
    t.xShmMap = x_shm_map;
    t.xShmLock = x_shm_lock;
    t.xShmBarrier = x_shm_barrier;
    t.xShmUnmap = x_shm_unmap;
  }
  if (version >= 3) {
    t.xFetch = x_fetch;
    t.xUnfetch = x_unfetch;
  }
  return t;
}
const sqlite3_io_methods methods_v1 = make_methods(1);
const sqlite3_io_methods methods_v2 = make_methods(2);
const sqlite3_io_methods methods_v3 = make_methods(3);

// ---- the VFS --------------------------------------------------------------------------------

int v_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* s = reinterpret_cast<shim_file*>(f);
  s->real = reinterpret_cast<sqlite3_file*>(s + 1);
  f->pMethods = nullptr;
  // The real VFS gets itself, not the shim: unix keeps its locking-style finder in pAppData.
  const int rc = real_vfs->xOpen(real_vfs, name, s->real, flags, out_flags);
  if (s->real->pMethods == nullptr) return rc;  // nothing to close
  const int v = s->real->pMethods->iVersion;
  f->pMethods = v >= 3 ? &methods_v3 : v == 2 ? &methods_v2 : &methods_v1;
  return rc;
}
int v_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int v_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int v_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* v_dl_open(sqlite3_vfs*, const char* name) {
  return real_vfs->xDlOpen(real_vfs, name);
}
void v_dl_error(sqlite3_vfs*, int n, char* msg) {
  real_vfs->xDlError(real_vfs, n, msg);
}
void (*v_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return real_vfs->xDlSym(real_vfs, h, sym);
}
void v_dl_close(sqlite3_vfs*, void* h) {
  real_vfs->xDlClose(real_vfs, h);
}
int v_randomness(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xRandomness(real_vfs, n, out);
}
int v_sleep(sqlite3_vfs*, int us) {
  return real_vfs->xSleep(real_vfs, us);
}
int v_current_time(sqlite3_vfs*, double* out) {
  return real_vfs->xCurrentTime(real_vfs, out);
}
int v_get_last_error(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}
int v_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}
int v_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr p) {
  return real_vfs->xSetSystemCall(real_vfs, name, p);
}
sqlite3_syscall_ptr v_get_system_call(sqlite3_vfs*, const char* name) {
  return real_vfs->xGetSystemCall(real_vfs, name);
}
const char* v_next_system_call(sqlite3_vfs*, const char* name) {
  return real_vfs->xNextSystemCall(real_vfs, name);
}

std::once_flag installed;

}  // namespace

std::string to_string(kind k) {
  switch (k) {
    case kind::write:
      return "write";
    case kind::sync:
      return "sync";
    case kind::lock:
      return "lock";
    case kind::shm_lock:
      return "shm_lock";
  }
  return "?";
}

std::string error_name(int code) {
  switch (code) {
    case SQLITE_IOERR:
      return "SQLITE_IOERR";
    case SQLITE_IOERR_WRITE:
      return "SQLITE_IOERR_WRITE";
    case SQLITE_IOERR_FSYNC:
      return "SQLITE_IOERR_FSYNC";
    case SQLITE_IOERR_LOCK:
      return "SQLITE_IOERR_LOCK";
    case SQLITE_IOERR_SHMLOCK:
      return "SQLITE_IOERR_SHMLOCK";
    case SQLITE_FULL:
      return "SQLITE_FULL";
    case SQLITE_BUSY:
      return "SQLITE_BUSY";
    default:
      return "error " + std::to_string(code);
  }
}

const char* install() {
  std::call_once(installed, [] {
    real_vfs = sqlite3_vfs_find(nullptr);
    if (real_vfs == nullptr) throw std::runtime_error("io_fault: no default sqlite3_vfs");
    shim_vfs = sqlite3_vfs{};
    shim_vfs.iVersion = real_vfs->iVersion < 3 ? real_vfs->iVersion : 3;
    shim_vfs.szOsFile = static_cast<int>(sizeof(shim_file)) + real_vfs->szOsFile;
    shim_vfs.mxPathname = real_vfs->mxPathname;
    shim_vfs.zName = "faulty";
    shim_vfs.xOpen = v_open;
    shim_vfs.xDelete = v_delete;
    shim_vfs.xAccess = v_access;
    shim_vfs.xFullPathname = v_full_pathname;
    shim_vfs.xDlOpen = real_vfs->xDlOpen ? v_dl_open : nullptr;
    shim_vfs.xDlError = real_vfs->xDlError ? v_dl_error : nullptr;
    shim_vfs.xDlSym = real_vfs->xDlSym ? v_dl_sym : nullptr;
    shim_vfs.xDlClose = real_vfs->xDlClose ? v_dl_close : nullptr;
    shim_vfs.xRandomness = v_randomness;
    shim_vfs.xSleep = v_sleep;
    shim_vfs.xCurrentTime = v_current_time;
    shim_vfs.xGetLastError = v_get_last_error;
    if (shim_vfs.iVersion >= 2)
      shim_vfs.xCurrentTimeInt64 = real_vfs->xCurrentTimeInt64 ? v_current_time_int64 : nullptr;
    if (shim_vfs.iVersion >= 3) {
      shim_vfs.xSetSystemCall = real_vfs->xSetSystemCall ? v_set_system_call : nullptr;
      shim_vfs.xGetSystemCall = real_vfs->xGetSystemCall ? v_get_system_call : nullptr;
      shim_vfs.xNextSystemCall = real_vfs->xNextSystemCall ? v_next_system_call : nullptr;
    }
    if (const int rc = sqlite3_vfs_register(&shim_vfs, 1); rc != SQLITE_OK)
      throw std::runtime_error("io_fault: sqlite3_vfs_register failed with " + std::to_string(rc));
  });
  return shim_vfs.zName;
}

const char* real_vfs_name() {
  install();
  return real_vfs->zName;
}

void arm(kind k, std::uint64_t nth, int error, bool persistent) {
  auto& s = ctl();
  std::lock_guard lock(s.m);
  s.k = k;
  s.nth = nth;
  s.error = error;
  s.persistent = persistent;
  for (auto& c : s.c.calls) c = 0;
  s.c.faults = 0;
  s.armed = true;
}

void disarm() {
  auto& s = ctl();
  std::lock_guard lock(s.m);
  s.armed = false;
}

bool armed() {
  auto& s = ctl();
  std::lock_guard lock(s.m);
  return s.armed;
}

counters read() {
  auto& s = ctl();
  std::lock_guard lock(s.m);
  return s.c;
}

}  // namespace saga::test::io_fault
