// The install test's driver (tests/install): a program outside this project,
// built against the installed package only, that runs the insurance claim of
// examples/claims (built against the same package) the two ways a user runs
// a workflow of their own:
//
//   - under claimsd, the example's daemon over saga::server;
//   - under the installed sagad, with the example's plugin (--plugin libclaims.so).
//
// For each: the daemon is started on a database and ipc:// endpoints inside a
// private temporary folder (nothing to pick, nothing to race for), one claim's
// events are sent with saga::zmq::client, the follow-on events are received
// with saga::zmq::subscriber, and the saga is read back with the installed
// sagactl (show, graph), which knows of the definition only what the
// database holds. Then `sagactl graph --plugin` draws the definition from the
// library, with no database at all.
//
// Every daemon is stopped with SIGTERM (SIGKILL after 15 s) whatever happens,
// and dies with this program if it is killed (PR_SET_PDEATHSIG). Exit 0 when
// everything holds; else 1 with one line saying what did not, followed by the
// daemons' logs.
//
//   claims_driver --claimsd PATH --plugin PATH --sagad PATH --sagactl PATH

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "saga/engine.hpp"
#include "saga/event.hpp"
#include "saga/zmq/client.hpp"
#include "saga/zmq/subscriber.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

struct failed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void require(bool ok, const std::string& what) {
  if (!ok) throw failed(what);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// A private temporary folder, removed at the end.
class temp_dir {
 public:
  temp_dir() {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/saga-install-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A child process with stdout and stderr in files. It gets SIGTERM when this
// program dies; the destructor stops it (SIGTERM, then SIGKILL) if it still runs.
class process {
 public:
  process(std::vector<std::string> argv, std::string out_file, std::string err_file)
      : argv_(std::move(argv)), out_file_(std::move(out_file)), err_file_(std::move(err_file)) {
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      const int out = ::open(out_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = ::open(err_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (out < 0 || err < 0) ::_exit(127);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~process() {
    if (running()) stop(15s);
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  bool running() {
    if (status_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
    return !status_;
  }
  // Waits up to `timeout` for the process to end; its exit code, or -signal.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    if (running()) return std::nullopt;
    return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : -WTERMSIG(*status_);
  }
  // SIGTERM, then SIGKILL when it has not ended after `grace`. Returns its exit
  // code after SIGTERM, or nullopt when it had to be killed.
  std::optional<int> stop(std::chrono::milliseconds grace) {
    if (running()) ::kill(pid_, SIGTERM);
    if (auto code = wait(grace)) return code;
    ::kill(pid_, SIGKILL);
    wait(60s);
    return std::nullopt;
  }
  std::string out() const { return read_file(out_file_); }
  std::string err() const { return read_file(err_file_); }
  std::string command() const {
    std::string s;
    for (const auto& a : argv_) s += (s.empty() ? "" : " ") + a;
    return s;
  }

 private:
  std::vector<std::string> argv_;
  std::string out_file_, err_file_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct result {
  int code;
  std::string out, err;
};

// Runs a program to its end (60 s at most) and returns what it printed.
result run(const temp_dir& dir, std::vector<std::string> argv) {
  static int n = 0;
  ++n;
  process p(std::move(argv), dir.file("run" + std::to_string(n) + ".out"),
            dir.file("run" + std::to_string(n) + ".err"));
  auto code = p.wait(60s);
  if (!code) {
    p.stop(1s);
    throw failed(p.command() + ": still running after 60 s");
  }
  return {*code, p.out(), p.err()};
}

result run_ok(const temp_dir& dir, std::vector<std::string> argv) {
  auto cmd = argv;
  auto r = run(dir, std::move(argv));
  std::string line;
  for (const auto& a : cmd) line += (line.empty() ? "" : " ") + a;
  require(r.code == 0, line + ": exit " + std::to_string(r.code) + "\n" + r.err);
  return r;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every line from the first that starts with `from`.
std::string from_line(const std::string& text, const std::string& from) {
  std::istringstream in(text);
  std::string out;
  bool on = false;
  for (std::string l; std::getline(in, l);) {
    if (!on && l.rfind(from, 0) == 0) on = true;
    if (on) out += l + "\n";
  }
  return out;
}

// The logs printed when the test fails.
std::vector<std::pair<std::string, std::string>> logs;  // (what, file)

struct paths {
  std::string claimsd, plugin, sagad, sagactl;
};

// Follow-on events as the subscriber delivers them, in order.
class follow {
 public:
  follow(::zmq::context_t& ctx, const std::string& events, const std::string& replay)
      : sub_(ctx, events, replay, options()) {}

  // The next follow-on event; it must be of `type`, for claim `subject`.
  json expect(const std::string& type, const std::string& subject) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (seen_.empty() && std::chrono::steady_clock::now() < deadline)
      sub_.poll(200ms, [&](const saga::zmq::delivery& d) { seen_.push_back(d); });
    require(!seen_.empty(), "no follow-on event " + type + " within 20 s (the subscriber got nothing)");
    const auto d = seen_.front();
    seen_.pop_front();
    require(d.type == type, "expected follow-on event " + type + ", got " + d.type + ": " + d.payload);
    auto e = json::parse(d.payload);
    require(e.value("subject", "") == subject,
            "follow-on event " + type + " for " + subject + ": " + d.payload);
    require(e.value("source", "") == "urn:saga:insurance_claim", "follow-on event " + type + " has source " +
                                                                     e.value("source", "") +
                                                                     ", not urn:saga:insurance_claim");
    return e;
  }

 private:
  static saga::zmq::subscriber_options options() {
    saga::zmq::subscriber_options o;
    o.type_prefixes = {"claim."};
    o.replay_timeout = 5s;
    return o;
  }
  saga::zmq::subscriber sub_;
  std::deque<saga::zmq::delivery> seen_;
};

saga::event claim_event(const std::string& type, const std::string& subject, json data) {
  static int n = 0;
  saga::event e;
  e.id = "install-" + std::to_string(++n);
  e.source = "urn:install-test";
  e.type = type;
  e.subject = subject;
  e.data = std::move(data);
  return e;
}

void expect_ack(saga::zmq::client& c, const saga::event& e, const std::string& state) {
  const auto a = c.send(e);
  require(a.status == saga::ack_status::accepted && a.outcome == saga::ack_outcome::transitioned &&
              a.saga_type == "insurance_claim" && a.saga_state == state,
          e.type + ": expected accepted/transitioned to " + state + ", got " + saga::to_json(a).dump());
}

// One claim through `name` (its program's log name), started with `argv`:
// filed, approved, one failed payout and its retry, paid; then sagactl.
void drive(const temp_dir& dir, const paths& p, const std::string& tag, const std::string& name,
           std::vector<std::string> argv, std::string& stored_graph) {
  const std::string db = dir.file(tag + ".db");
  const std::string ingress = "ipc://" + dir.file(tag + "-ingress");
  const std::string events = "ipc://" + dir.file(tag + "-events");
  const std::string replay = "ipc://" + dir.file(tag + "-replay");
  for (const auto& a : {"--db", db.c_str(), "--ingress", ingress.c_str(), "--publish", events.c_str(),
                        "--replay", replay.c_str(), "--synchronous", "NORMAL"})
    argv.emplace_back(a);
  const std::string err_file = dir.file(tag + ".log");
  logs.emplace_back(tag, err_file);
  process daemon(argv, dir.file(tag + ".out"), err_file);

  // Ready once it has logged its endpoints (everything is bound then).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!contains(daemon.err(), name + ": db ") && daemon.running() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  require(daemon.running(), tag + " ended at start: " + daemon.command());
  require(contains(daemon.err(), name + ": db "), tag + " not ready after 30 s: " + daemon.command());
  require(contains(daemon.err(), "definition insurance_claim fingerprint"),
          tag + " does not run insurance_claim");

  {
    ::zmq::context_t ctx;
    follow f(ctx, events, replay);
    saga::zmq::client c(ctx, ingress);
    const std::string id = "claim-" + tag;
    expect_ack(
        c,
        claim_event("claim.filed", id,
                    {{"claim_id", id}, {"policy_id", "pol-7"}, {"amount", 125000}, {"currency", "EUR"}}),
        "assessing");
    auto asked = f.expect("claim.assessment.requested", id);
    require(asked["data"].value("amount", 0) == 125000, "claim.assessment.requested without the amount");
    expect_ack(c, claim_event("claim.assessed", id, {{"decision", "approved"}}), "paying");
    auto first = f.expect("claim.payout.requested", id);
    require(first["data"].value("attempt", 0) == 1 && first["data"].value("payout_id", "") == id + ":payout",
            "first claim.payout.requested: " + first.dump());
    expect_ack(c, claim_event("claim.payout.failed", id, {{"reason", "bank offline"}}), "paying");
    auto second = f.expect("claim.payout.requested", id);
    require(
        second["data"].value("attempt", 0) == 2 && second["data"].value("payout_id", "") == id + ":payout",
        "second claim.payout.requested: " + second.dump());
    expect_ack(c, claim_event("claim.payout.succeeded", id, json::object()), "paid");
    f.expect("claim.closed", id);

    // sagactl reads the live database (WAL: it never blocks the daemon).
    auto show = json::parse(run_ok(dir, {p.sagactl, "--db", db, "show", id, "--json"}).out);
    require(show.value("state", "") == "paid" && show.value("type", "") == "insurance_claim",
            "sagactl show: " + show.dump());
    require(show["history"].size() == 4,
            "sagactl show: expected 4 history rows, got " + show["history"].dump());
    auto human = run_ok(dir, {p.sagactl, "--db", db, "show", id}).out;
    require(contains(human, "paid") && contains(human, "claim.payout.failed"), "sagactl show:\n" + human);

    stored_graph = run_ok(dir, {p.sagactl, "--db", db, "graph", "insurance_claim"}).out;
    require(contains(stored_graph, "digraph") && contains(stored_graph, "needs_attention"),
            "sagactl graph insurance_claim:\n" + stored_graph);
    auto path = run_ok(dir, {p.sagactl, "--db", db, "graph", "insurance_claim", "--instance", id}).out;
    require(contains(path, "#4"), "sagactl graph --instance: no path of 4 steps drawn:\n" + path);
    auto mermaid =
        run_ok(dir, {p.sagactl, "--db", db, "graph", "insurance_claim", "--format", "mermaid"}).out;
    require(contains(mermaid, "stateDiagram"), "sagactl graph --format mermaid:\n" + mermaid);
  }

  auto code = daemon.stop(15s);
  require(code.has_value(), tag + " did not stop within 15 s of SIGTERM (killed)");
  require(*code == 0, tag + " exited " + std::to_string(*code) + " after SIGTERM");
  std::cout << tag
            << ": claim filed, approved, paid after one failed payout; sagactl show and graph read it\n";
}

void check_in(const temp_dir& dir, const paths& p) {
  // The daemon of one's own has sagad's options and --help, headed by its own text.
  auto own_help = run_ok(dir, {p.claimsd, "--help"}).out;
  auto sagad_help = run_ok(dir, {p.sagad, "--help"}).out;
  require(contains(own_help, "claimsd: runs insurance claims"), "claimsd --help:\n" + own_help);
  const auto own_options = from_line(own_help, "Options:");
  require(!own_options.empty() && contains(own_options, "--plugin") &&
              own_options == from_line(sagad_help, "Options:"),
          "claimsd --help and sagad --help differ in their options:\n" + own_help + "\n" + sagad_help);

  // Both offer insurance_claim: built in, or from the plugin.
  auto own_list = run_ok(dir, {p.claimsd, "--list-definitions"}).out;
  require(contains(own_list, "insurance_claim") && contains(own_list, "built-in"),
          "claimsd --list-definitions:\n" + own_list);
  auto plugin_list = run_ok(dir, {p.sagad, "--plugin", p.plugin, "--list-definitions"}).out;
  require(contains(plugin_list, "insurance_claim") && contains(plugin_list, "plugin " + p.plugin),
          "sagad --plugin --list-definitions:\n" + plugin_list);

  std::string own_graph, plugin_graph;
  drive(dir, p, "claimsd", "claimsd", {p.claimsd}, own_graph);
  drive(dir, p, "sagad-plugin", "sagad", {p.sagad, "--plugin", p.plugin}, plugin_graph);
  require(own_graph == plugin_graph, "the stored graphs of claimsd and sagad --plugin differ");

  // The graph of a definition that is in no database: from the library.
  const std::string none = dir.file("none.db");
  auto compiled =
      run_ok(dir, {p.sagactl, "--db", none, "graph", "--plugin", p.plugin, "insurance_claim"}).out;
  require(compiled == own_graph, "sagactl graph --plugin differs from the stored graph:\n" + compiled);
  require(!fs::exists(none), "sagactl graph --plugin created a database");
  auto shipped = run_ok(dir, {p.sagactl, "--db", none, "graph", "order_lifecycle"}).out;
  require(contains(shipped, "digraph") && contains(shipped, "refunding"),
          "sagactl graph order_lifecycle without a database:\n" + shipped);
  std::cout << "sagactl graph --plugin: the library's graph equals the stored one\n";
}

void check(const paths& p) {
  temp_dir dir;
  try {
    check_in(dir, p);
  } catch (...) {
    for (const auto& [what, file] : logs) std::cerr << "---- " << what << "'s log:\n" << read_file(file);
    throw;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  paths p{args["--claimsd"], args["--plugin"], args["--sagad"], args["--sagactl"]};
  if (p.claimsd.empty() || p.plugin.empty() || p.sagad.empty() || p.sagactl.empty()) {
    std::cerr << "usage: claims_driver --claimsd PATH --plugin PATH --sagad PATH --sagactl PATH\n";
    return 2;
  }
  try {
    check(p);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "FAILED: " << e.what() << "\n";
  }
  return 1;
}
