// libFuzzer target for the ingress frame handling (issue 7, "Fuzzing").
//
// A real saga::zmq::ingress_server (ROUTER) bound to inproc://, and a DEALER
// connected to it, live for the whole run. Each input is a sequence of
// requests: 0xFE separates requests, 0xFF separates the frames of one request
// (so "\xFF{...}" is the usual [empty delimiter][event JSON]). The DEALER
// sends them; read_batch() takes them; every pending input gets a dummy ack
// (accepted for an event, rejected with the codec's reason otherwise) and
// ack() sends them back; the DEALER must then receive exactly one reply per
// request, in order, with the delimiter echoed when there was one, and a body
// that parses as JSON with the expected status. Any deviation abort()s;
// a crash, an uncaught exception or a sanitizer report is a finding.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "saga/codec.hpp"
#include "saga/engine.hpp"
#include "saga/zmq/ingress_server.hpp"

namespace {

constexpr unsigned char request_sep = 0xFE;
constexpr unsigned char frame_sep = 0xFF;
constexpr std::size_t max_requests = 64;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "ingress_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

struct rig {
  ::zmq::context_t ctx{1};
  saga::zmq::ingress_server server{ctx, "inproc://ingress-fuzz", [] {
                                     saga::zmq::ingress_options o;
                                     o.linger_ms = 0;
                                     o.decode_helper = true;  // as sagad decodes
                                     return o;
                                   }()};
  ::zmq::socket_t dealer{ctx, ::zmq::socket_type::dealer};
  rig() {
    dealer.set(::zmq::sockopt::linger, 0);
    dealer.connect("inproc://ingress-fuzz");
  }
};

rig& the_rig() {
  static rig* r = new rig;  // never destroyed: libFuzzer may exit() at any time
  return *r;
}

std::vector<std::vector<std::string>> split(std::string_view in) {
  std::vector<std::vector<std::string>> requests(1, std::vector<std::string>(1));
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == request_sep) {
      if (requests.size() == max_requests) break;
      requests.emplace_back(1);
    } else if (c == frame_sep) {
      requests.back().emplace_back();
    } else {
      requests.back().back() += ch;
    }
  }
  return requests;
}

// What the server must make of one request, computed independently.
struct expectation {
  bool delimiter = false;  // the reply starts with the empty delimiter
  bool accepted = false;
};

expectation expect(const std::vector<std::string>& frames) {
  expectation x;
  // The ROUTER sees [routing id] + frames.
  x.delimiter = frames.size() >= 2 && frames[0].empty();
  const std::size_t body_frames = frames.size() - (x.delimiter ? 1 : 0);
  x.accepted = body_frames == 1 && static_cast<bool>(saga::decode_event(frames.back()));
  return x;
}

saga::ack dummy_ack(const saga::inbound& in) {
  saga::ack a;
  if (const auto* e = std::get_if<saga::event>(&in)) {
    a.id = e->id;
    a.source = e->source;
    a.status = saga::ack_status::accepted;
    a.outcome = saga::ack_outcome::transitioned;
    a.saga_type = "fuzz";
    a.saga_id = e->subject;
    a.saga_state = "fuzzed";
  } else {
    const auto& bad = std::get<saga::invalid_input>(in);
    if (bad.reason.empty()) fail("invalid_input without a reason");
    if (bad.raw.size() > 64 * 1024) fail("invalid_input keeps more than 64 KiB");
    a.id = bad.id;
    a.source = bad.source;
    a.status = saga::ack_status::rejected;
    a.reason = bad.reason;
  }
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rig& r = the_rig();
  const auto requests = split(std::string_view(reinterpret_cast<const char*>(data), size));

  std::vector<expectation> expected;
  for (const auto& frames : requests) {
    for (std::size_t i = 0; i < frames.size(); ++i)
      r.dealer.send(::zmq::buffer(frames[i]),
                    i + 1 < frames.size() ? ::zmq::send_flags::sndmore : ::zmq::send_flags::none);
    expected.push_back(expect(frames));
  }

  // Server side: read, ack, until every request was answered.
  std::size_t answered = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (answered < requests.size()) {
    if (std::chrono::steady_clock::now() > deadline) fail("the server did not receive every request");
    ::zmq::pollitem_t item{r.server.socket().handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, std::chrono::milliseconds(100));
    const std::size_t n = r.server.read_batch();
    if (n == 0) continue;
    if (r.server.pending().size() != n) fail("pending() does not hold what read_batch() returned");
    std::vector<saga::ack> acks;
    for (const auto& in : r.server.pending()) {
      const std::size_t k = answered + acks.size();
      const bool is_event = std::holds_alternative<saga::event>(in);
      if (k < expected.size() && is_event != expected[k].accepted)
        fail("the server's decoding differs from the codec's for request", std::to_string(k));
      acks.push_back(dummy_ack(in));
    }
    r.server.ack(acks);
    answered += n;
  }
  if (answered != requests.size()) fail("more inputs than requests");

  // Client side: one reply per request, in order.
  for (std::size_t k = 0; k < requests.size(); ++k) {
    ::zmq::pollitem_t item{r.dealer.handle(), 0, ZMQ_POLLIN, 0};
    ::zmq::poll(&item, 1, std::chrono::seconds(5));
    if ((item.revents & ZMQ_POLLIN) == 0) fail("no reply for request", std::to_string(k));
    std::vector<::zmq::message_t> reply;
    (void)::zmq::recv_multipart(r.dealer, std::back_inserter(reply));
    const std::size_t want = expected[k].delimiter ? 2 : 1;
    if (reply.size() != want) fail("reply has the wrong number of frames", std::to_string(reply.size()));
    if (want == 2 && reply[0].size() != 0) fail("the delimiter did not come back empty");
    const auto body =
        nlohmann::json::parse(reply.back().to_string_view(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) fail("the ack is not valid JSON", reply.back().to_string());
    const std::string status = body.value("status", "");
    if (status != (expected[k].accepted ? "accepted" : "rejected"))
      fail("the ack has the wrong status", body.dump());
    if (!expected[k].accepted && !body.at("reason").is_string())
      fail("a rejection without a reason", body.dump());
  }
  return 0;
}
