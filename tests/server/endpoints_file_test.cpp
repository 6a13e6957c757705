// sagad --endpoints-file as a supervisor or a test uses it: sagad binds ports
// it chooses (port "*") and writes where, so that nobody has to pick a free
// port, release it and hope sagad gets it. sagad runs as a child process.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/zmq_frames.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using saga::test::endpoints;
using saga::test::lines_of;
using saga::test::process;
using saga::test::temp_dir;

// sagad on a database in `dir`, bound to `bind`, with --endpoints-file `file` when not empty.
std::vector<std::string> sagad_args(const temp_dir& dir, const endpoints& bind, const std::string& file) {
  std::vector<std::string> argv = {
      SAGAD_PATH,   "--db",     dir.file("saga.db"), "--ingress",     bind.ingress, "--publish",
      bind.publish, "--replay", bind.replay,         "--synchronous", "OFF"};
  if (!file.empty()) argv.insert(argv.end(), {"--endpoints-file", file});
  return argv;
}

// One request on a fresh socket of `type` connected to `endpoint`: the reply's frames (none
// after 10 s).
std::vector<std::string> request(zmq::context_t& ctx, zmq::socket_type type, const std::string& endpoint,
                                 const std::vector<std::string>& frames) {
  zmq::socket_t s(ctx, type);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10'000);
  s.connect(endpoint);
  for (std::size_t i = 0; i < frames.size(); ++i)
    s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  return saga::test::recv_all(s);
}

std::string order_placed(const std::string& key) {
  return json{{"specversion", "1.0"},
              {"id", "placed-" + key},
              {"source", "urn:test:endpoints-file"},
              {"type", "order.placed"},
              {"subject", key},
              {"data", {{"order_id", key}, {"amount", 10}, {"currency", "EUR"}}}}
      .dump();
}

// The port of a tcp://host:port endpoint; 0 when it is not one.
int port_of(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  if (endpoint.rfind("tcp://", 0) != 0 || colon == std::string::npos) return 0;
  return std::atoi(endpoint.c_str() + colon + 1);
}

}  // namespace

TEST_SUITE("endpoints file") {
  TEST_CASE("sagad writes where it really listens and removes the file when it stops") {
    temp_dir dir;
    const std::string file = dir.file("endpoints.json");
    std::ofstream(file) << R"({"ingress":"tcp://127.0.0.1:1","publish":"x","replay":"y","pid":1})";  // stale
    process p(sagad_args(dir, endpoints::any_loopback(), file), dir.file("sagad.out"), dir.file("sagad.err"));
    std::string why;
    const auto ep = saga::test::read_endpoints_file(file, p, 20s, &why);
    REQUIRE_MESSAGE(ep, why);

    // The file: one JSON object, the three endpoints with their ports resolved, sagad's pid.
    const json j = json::parse(saga::test::read_text(file));
    CHECK(j.size() == 4);
    CHECK(j.at("pid") == p.pid());
    for (const auto* name : {"ingress", "publish", "replay"}) {
      CAPTURE(name);
      const auto e = j.at(name).get<std::string>();
      CHECK(e.rfind("tcp://127.0.0.1:", 0) == 0);
      CHECK(port_of(e) > 0);
    }
    CHECK(port_of(ep->ingress) != port_of(ep->publish));
    CHECK(port_of(ep->publish) != port_of(ep->replay));

    zmq::context_t ctx;
    // The ingress answers there.
    const auto ack = request(ctx, zmq::socket_type::dealer, ep->ingress, {"", order_placed("o-1")});
    REQUIRE(ack.size() == 2);
    CHECK(json::parse(ack[1]).at("status") == "accepted");
    // The events socket publishes there (the heartbeat names the follow-on event just committed).
    {
      zmq::socket_t sub(ctx, zmq::socket_type::sub);
      sub.set(zmq::sockopt::linger, 0);
      sub.set(zmq::sockopt::subscribe, "saga.heartbeat");
      sub.set(zmq::sockopt::rcvtimeo, 10'000);
      sub.connect(ep->publish);
      const auto beat = saga::test::recv_all(sub);
      REQUIRE(beat.size() == 3);
      CHECK(beat[0] == "saga.heartbeat");
      CHECK(beat[1] == "1");
    }
    // Replay answers there.
    const auto replayed = request(ctx, zmq::socket_type::dealer, ep->replay, {"", R"({"from":1})"});
    REQUIRE(replayed.size() >= 2);
    CHECK(json::parse(replayed[1]).at("last") == 1);
    // The start-up line names the same endpoints.
    const auto err = p.err();
    CHECK(err.find("ingress " + ep->ingress + ",") != std::string::npos);
    CHECK(err.find("events " + ep->publish + ",") != std::string::npos);
    CHECK(err.find("replay " + ep->replay + ";") != std::string::npos);
    // Written through a temporary file that is gone.
    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
      CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);

    p.signal(SIGTERM);
    const auto st = p.wait_for(30s);
    INFO("stderr: " << p.err());
    CHECK(st.code() == 0);
    CHECK_FALSE(std::filesystem::exists(file));
  }

  TEST_CASE("ipc endpoints are reported as bound and the option comes from SAGA_ENDPOINTS_FILE too") {
    temp_dir dir;
    const std::string file = dir.file("endpoints.json");
    const auto bind = endpoints::ipc_in(dir.path());
    ::setenv("SAGA_ENDPOINTS_FILE", file.c_str(), 1);
    process p(sagad_args(dir, bind, ""), dir.file("sagad.out"), dir.file("sagad.err"));
    ::unsetenv("SAGA_ENDPOINTS_FILE");
    std::string why;
    const auto ep = saga::test::read_endpoints_file(file, p, 20s, &why);
    REQUIRE_MESSAGE(ep, why);
    CHECK(ep->ingress == bind.ingress);
    CHECK(ep->publish == bind.publish);
    CHECK(ep->replay == bind.replay);
    CHECK(saga::test::wait_until_ingress_answers(ep->ingress, 10s, &p));
    p.signal(SIGTERM);
    CHECK(p.wait_for(30s).code() == 0);
  }

  TEST_CASE("an endpoints file that cannot be written stops the start with exit 1 and one line") {
    temp_dir dir;
    std::filesystem::create_directory(dir.file("a-folder"));
    for (const auto& file : {dir.file("missing/endpoints.json"), dir.file("a-folder")}) {
      CAPTURE(file);
      process p(sagad_args(dir, endpoints::any_loopback(), file), dir.file("bad.out"), dir.file("bad.err"));
      const auto st = p.wait_for(30s);
      INFO("stderr: " << p.err());
      CHECK(st.exited());
      CHECK(st.code() == 1);
      const auto lines = lines_of(p.err());
      REQUIRE(lines.size() == 1);
      CHECK(lines[0].find("cannot start: --endpoints-file " + file + ": ") != std::string::npos);
      CHECK(std::filesystem::is_directory(dir.file("a-folder")));  // left as it was
    }
    // Nothing is left holding the database: the next sagad on it starts.
    const std::string file = dir.file("endpoints.json");
    process p(sagad_args(dir, endpoints::any_loopback(), file), dir.file("ok.out"), dir.file("ok.err"));
    std::string why;
    REQUIRE_MESSAGE(saga::test::read_endpoints_file(file, p, 20s, &why), why);
    p.signal(SIGTERM);
    CHECK(p.wait_for(30s).code() == 0);
  }

  TEST_CASE("--help describes --endpoints-file") {
    temp_dir dir;
    process p({SAGAD_PATH, "--help"}, dir.file("help.out"), dir.file("help.err"));
    CHECK(p.wait_for(30s).code() == 0);
    const auto out = p.out();
    CHECK(out.find("--endpoints-file") != std::string::npos);
    CHECK(out.find("SAGA_ENDPOINTS_FILE") != std::string::npos);
  }
}
