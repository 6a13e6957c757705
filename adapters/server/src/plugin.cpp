#include "saga/server/plugin.hpp"

#include <dlfcn.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "saga/plugin.hpp"

namespace saga::server {
namespace {

using definitions = std::vector<std::shared_ptr<const saga::definition>>;

std::string dl_error() {
  const char* e = ::dlerror();
  return e ? e : "unknown error";
}

// Loads the library and asks it for its definitions; throws plugin_error.
// The handle is never closed: the definitions' code lives in it.
plugin open_and_ask(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) throw plugin_error("plugin " + path + ": cannot be loaded: " + dl_error());
  using entry_fn = const saga_plugin_v1* (*)();
  auto entry = reinterpret_cast<entry_fn>(::dlsym(handle, SAGA_PLUGIN_ENTRY));
  if (entry == nullptr)
    throw plugin_error("plugin " + path +
                       ": no entry point " SAGA_PLUGIN_ENTRY
                       " (is it built with SAGA_PLUGIN from saga/plugin.hpp?)");
  const saga_plugin_v1* p = entry();
  if (p == nullptr || p->abi_tag == nullptr || p->saga_version == nullptr || p->definitions == nullptr)
    throw plugin_error("plugin " + path + ": its entry point returned an incomplete description");
  if (std::strcmp(p->abi_tag, SAGA_PLUGIN_ABI_TAG) != 0)
    throw plugin_error("plugin " + path + ": built for '" + p->abi_tag + "', this sagad is '" +
                       SAGA_PLUGIN_ABI_TAG + "'; rebuild it against this saga package");
  if (std::strcmp(p->saga_version, SAGA_VERSION) != 0)
    throw plugin_error("plugin " + path + ": built against saga " + p->saga_version + ", this sagad is " +
                       SAGA_VERSION + "; rebuild it against this saga package");
  plugin out;
  out.path = path;
  out.name = p->name ? p->name : std::filesystem::path(path).filename().string();
  try {
    p->definitions(out.definitions);
  } catch (const std::exception& e) {
    throw plugin_error("plugin " + path + ": its definitions threw: " + e.what());
  } catch (...) {
    throw plugin_error("plugin " + path +
                       ": its definitions threw an exception that is not a std::exception");
  }
  if (out.definitions.empty()) throw plugin_error("plugin " + path + ": it returned no definitions");
  for (const auto& d : out.definitions)
    if (!d) throw plugin_error("plugin " + path + ": it returned a null definition");
  return out;
}

// What a child wrote on stdout and stderr, on one line, shortened.
std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  std::string out;
  for (char c : text)
    if (!(c == ' ' && (out.empty() || out.back() == ' '))) out += c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  constexpr std::size_t most = 300;
  if (out.size() > most) out = out.substr(0, most) + "...";
  return out;
}

// Reads both pipes to their ends (poll: neither may fill while the other is read).
void read_both(int refusal_fd, int output_fd, std::string& refusal, std::string& output) {
  pollfd fds[2] = {{refusal_fd, POLLIN, 0}, {output_fd, POLLIN, 0}};
  std::string* into[2] = {&refusal, &output};
  int open = 2;
  char buf[512];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      if (into[i]->size() < 64 * 1024) into[i]->append(buf, static_cast<std::size_t>(n));
    }
  }
}

// Runs open_and_ask in a child: a crash or an exception out of a static
// constructor ends the child, not us. The child writes its refusal, if any,
// to one pipe and exits 0 when the plugin is fine; what the plugin's code
// prints (a terminate handler's message) goes to another, not to our stderr,
// and is quoted in the refusal of a crash.
void probe_in_child(const std::string& path) {
  int refusal_pipe[2], output_pipe[2];
  if (::pipe(refusal_pipe) != 0) throw plugin_error("plugin " + path + ": pipe: " + std::strerror(errno));
  if (::pipe(output_pipe) != 0) {
    ::close(refusal_pipe[0]);
    ::close(refusal_pipe[1]);
    throw plugin_error("plugin " + path + ": pipe: " + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {refusal_pipe[0], refusal_pipe[1], output_pipe[0], output_pipe[1]}) ::close(fd);
    throw plugin_error("plugin " + path + ": fork: " + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(refusal_pipe[0]);
    ::close(output_pipe[0]);
    ::dup2(output_pipe[1], STDOUT_FILENO);
    ::dup2(output_pipe[1], STDERR_FILENO);
    ::close(output_pipe[1]);
    // The parent's crash handlers (a test framework's, a logger's) are not the child's business:
    // a crash must end the child with its signal, for the parent to report.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
    // A refused plugin leaves no core file behind: its crash is reported, not dumped.
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::prctl(PR_SET_DUMPABLE, 0);
    std::string msg;
    try {
      open_and_ask(path);
    } catch (const plugin_error& e) {
      msg = e.what();
    } catch (const std::exception& e) {
      // A static constructor's exception usually cannot leave dlopen(), declared noexcept: it
      // ends this child (the crash reported below). Some builds let it out all the same (clang
      // 14 with AddressSanitizer), past open_and_ask to here.
      msg = "plugin " + path + ": a static constructor threw while loading: " + e.what();
    } catch (...) {
      msg = "plugin " + path + ": a static constructor threw while loading (not a std::exception)";
    }
    if (!msg.empty()) (void)!::write(refusal_pipe[1], msg.data(), msg.size());
    ::_exit(msg.empty() ? 0 : 3);
  }
  ::close(refusal_pipe[1]);
  ::close(output_pipe[1]);
  std::string msg, output;
  read_both(refusal_pipe[0], output_pipe[0], msg, output);
  ::close(refusal_pipe[0]);
  ::close(output_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string said = one_line(output);
  if (WIFSIGNALED(status))
    throw plugin_error("plugin " + path + ": crashed while loading (signal " +
                       std::to_string(WTERMSIG(status)) + ", " + ::strsignal(WTERMSIG(status)) + ")" +
                       (said.empty() ? "" : "; it wrote: " + said));
  if (!msg.empty()) throw plugin_error(msg);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw plugin_error("plugin " + path + ": loading it ended its process (exit status " +
                       std::to_string(WEXITSTATUS(status)) + ")" +
                       (said.empty() ? "" : "; it wrote: " + said));
}

}  // namespace

plugin load_plugin(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw plugin_error("plugin " + path + ": no such file");
  if (!std::filesystem::is_regular_file(path, ec))
    throw plugin_error("plugin " + path + ": not a regular file");
  probe_in_child(path);
  // dlopen() searches the library path for a bare name: insist on the file that was checked.
  const std::string exact = path.find('/') == std::string::npos ? "./" + path : path;
  return open_and_ask(exact);
}

}  // namespace saga::server
