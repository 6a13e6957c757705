#include "saga/zmq/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <zmq.h>

namespace saga::zmq {

namespace {

constexpr std::size_t z85_key_size = 40;

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what);
}

std::string certificate(const curve_key_pair& keys, bool with_secret) {
  std::ostringstream out;
  out << "#   ZeroMQ CURVE " << (with_secret ? "**Secret** Certificate" : "Public Certificate") << "\n"
      << (with_secret ? "#   Keep this file private (mode 0600); give NAME.key to the other side.\n"
                      : "#   Give this file to the other side; keep NAME.key_secret private.\n")
      << "\nmetadata\ncurve\n"
      << "    public-key = \"" << keys.public_key << "\"\n";
  if (with_secret) out << "    secret-key = \"" << keys.secret_key << "\"\n";
  return out.str();
}

// Creates `path` exclusively with `mode` and writes `text`; removes it again on a short write.
void write_new(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) throw file_error(path, "exists; refusing to overwrite a key file");
    throw file_error(path, std::strerror(errno));
  }
  ::fchmod(fd, mode);  // the umask may have narrowed it; never widened beyond `mode`
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(path.c_str());
      throw file_error(path, why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(path.c_str());
    throw file_error(path, why);
  }
}

// The quoted value of `name = "..."` on a line of the `curve` section, if the line has it.
std::optional<std::string> property(std::string_view line, std::string_view name) {
  const auto first = line.find_first_not_of(" \t");
  if (first == std::string_view::npos || line.substr(first, name.size()) != name) return std::nullopt;
  auto rest = line.substr(first + name.size());
  const auto eq = rest.find_first_not_of(" \t");
  if (eq == std::string_view::npos || rest[eq] != '=') return std::nullopt;
  rest = rest.substr(eq + 1);
  const auto v = rest.find_first_not_of(" \t");
  if (v == std::string_view::npos) return std::string();
  rest = rest.substr(v);
  if (rest.front() == '"') {
    const auto close = rest.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    return std::string(rest.substr(1, close - 1));
  }
  const auto end = rest.find_first_of(" \t\r");
  return std::string(rest.substr(0, end));
}

}  // namespace

bool curve_available() {
  return zmq_has("curve") != 0;
}

bool valid_z85_key(std::string_view key) {
  if (key.size() != z85_key_size) return false;
  const std::string copy(key);
  std::array<std::uint8_t, 32> bytes{};
  return zmq_z85_decode(bytes.data(), copy.c_str()) != nullptr;
}

curve_key_pair generate_curve_key_pair() {
  if (!curve_available()) throw std::runtime_error("this libzmq was built without CURVE (libsodium)");
  std::array<char, z85_key_size + 1> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    throw std::runtime_error(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  return {std::string(pub.data()), std::string(sec.data())};
}

key_files write_key_files(const std::string& base_path, const curve_key_pair& keys) {
  if (!valid_z85_key(keys.public_key) || !valid_z85_key(keys.secret_key))
    throw std::invalid_argument("write_key_files: a key is not 40 Z85 characters");
  key_files files{base_path + ".key", base_path + ".key_secret"};
  // Neither may exist: check both before writing either, so that a refusal writes nothing.
  for (const auto& f : {files.public_file, files.secret_file}) {
    struct stat st {};
    if (::lstat(f.c_str(), &st) == 0) throw file_error(f, "exists; refusing to overwrite a key file");
  }
  write_new(files.secret_file, certificate(keys, true), 0600);
  try {
    write_new(files.public_file, certificate(keys, false), 0644);
  } catch (...) {
    ::unlink(files.secret_file.c_str());
    throw;
  }
  return files;
}

curve_key_pair read_key_file(const std::string& path, bool need_secret) {
  std::ifstream in(path);
  if (!in) throw file_error(path, std::strerror(errno));
  curve_key_pair keys;
  std::string line;
  while (std::getline(in, line)) {
    if (auto v = property(line, "public-key")) keys.public_key = *v;
    if (auto v = property(line, "secret-key")) keys.secret_key = *v;
  }
  if (keys.public_key.empty()) throw file_error(path, "no public-key (is it a ZeroMQ certificate?)");
  if (!valid_z85_key(keys.public_key)) throw file_error(path, "public-key is not 40 Z85 characters");
  if (need_secret && keys.secret_key.empty())
    throw file_error(path, "no secret-key (give the NAME.key_secret file, not NAME.key)");
  if (!keys.secret_key.empty() && !valid_z85_key(keys.secret_key))
    throw file_error(path, "secret-key is not 40 Z85 characters");
  if (need_secret) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      throw file_error(path, "a secret key file must not be readable by group or others (chmod 600)");
  }
  return keys;
}

void apply(::zmq::socket_t& socket, const curve_client& c) {
  if (!c.enabled()) return;
  if (!valid_z85_key(c.server_public_key))
    throw std::invalid_argument("server public key is not 40 Z85 characters");
  if (!valid_z85_key(c.own.public_key) || !valid_z85_key(c.own.secret_key))
    throw std::invalid_argument("a CURVE client needs its own key pair (a NAME.key_secret file)");
  socket.set(::zmq::sockopt::curve_serverkey, c.server_public_key);
  socket.set(::zmq::sockopt::curve_publickey, c.own.public_key);
  socket.set(::zmq::sockopt::curve_secretkey, c.own.secret_key);
}

void apply(::zmq::socket_t& socket, const curve_server& s) {
  if (!s.enabled()) return;
  if (!valid_z85_key(s.secret_key)) throw std::invalid_argument("server secret key is not 40 Z85 characters");
  socket.set(::zmq::sockopt::curve_server, true);
  socket.set(::zmq::sockopt::curve_secretkey, s.secret_key);
  socket.set(::zmq::sockopt::zap_domain, s.zap_domain);
}

std::string public_key_from(const std::string& key_or_path) {
  struct stat st {};
  if (::stat(key_or_path.c_str(), &st) == 0) return read_key_file(key_or_path, false).public_key;
  if (valid_z85_key(key_or_path)) return key_or_path;
  throw std::runtime_error(key_or_path + ": neither a key file nor 40 Z85 characters");
}

}  // namespace saga::zmq
