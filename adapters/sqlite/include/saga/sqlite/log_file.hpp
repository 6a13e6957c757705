#pragma once
// saga::sqlite::log_file — the write-ahead log of a database, made durable from any thread
// (issue 15, eleventh round; docs/reliability.md, "When an ack is sent").
//
// A store opened at synchronous = NORMAL commits without syncing its log: the commit's frames are
// in the file (the operating system's cache) when commit() returns, not yet on the disk. sync()
// makes every byte written to the log before it began durable with one fdatasync. sagad commits
// at NORMAL and syncs through this on a thread of its own while the loop works on the next batch;
// a batch's acks and follow-on events wait for a sync that began after its commit. The log is
// recovered as a prefix of its frames, so nothing acked can be lost while something older is kept.
//
// It opens the log (saga::sqlite::store::log_path(): SQLite's name for it, beside the database's
// resolved path) itself, once, on the first sync (the store creates the file before anything
// commits), and keeps the descriptor until destroyed. SQLite takes no POSIX lock on the
// log (its locks are on the database file and the -shm index), so this descriptor's close cannot
// release one of SQLite's. The file stays the same inode for the database's life (SQLite restarts
// and truncates it in place); the descriptor then still names it.
//
// Thread-safety: one thread at a time calls sync(); independent of the store's connections.
// Errors: sync() throws saga::store_error naming the file and the system's reason; nothing is
// known then about what the log holds on the disk (the caller must not ack, and sagad stops).

#include <string>

namespace saga::sqlite {

class log_file {
 public:
  explicit log_file(std::string log_path);
  ~log_file();
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;

  void sync();

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace saga::sqlite
