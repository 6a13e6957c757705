#pragma once
// The one way sagactl and sagad make a temporary folder: mkdtemp(3) under the system's temporary
// directory ($TMPDIR, else /tmp), so the name cannot be predicted and the folder is created
// with mode 0700 by this process alone (no other user can plant a file or a symlink in it).
// The folder is removed with its contents when the object goes out of scope.
//
// Errors: the constructor throws saga::server::failure(database) when the folder cannot be made.
// Not thread-safe; one object per folder.

#include <filesystem>
#include <string>
#include <string_view>

namespace saga::server {

class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "sagactl");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // A path inside the folder (nothing is created).
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Creates `path` with O_CREAT | O_EXCL (never follows or reuses an existing file or symlink)
// and mode 0600, writes `content` and closes it. Throws failure(usage) naming the path.
void write_new_file(const std::string& path, std::string_view content);

}  // namespace saga::server
