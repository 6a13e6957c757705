#include "fault_points.hpp"

#if defined(SAGA_FAULT_POINTS)

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "saga/server/options.hpp"

namespace saga::server {

namespace {

class faulty_store final : public saga::store_wrapper {
 public:
  faulty_store(saga::store& s, fault_points& f) : store_wrapper(s), fault_(f) {}
  void insert_inbox(const saga::inbox_record& r) override {
    store_wrapper::insert_inbox(r);
    received_ = true;
  }
  void commit() override {
    if (std::exchange(received_, false)) fault_.at("stall_commit");
    fault_.at("before_commit");
    store_wrapper::commit();
  }
  void rollback() noexcept override {
    received_ = false;
    store_wrapper::rollback();
  }

 private:
  fault_points& fault_;
  bool received_ = false;  // the transaction wrote an inbox row: it holds events received
};

class faulty_publisher final : public saga::publisher {
 public:
  faulty_publisher(saga::publisher& p, fault_points& f) : inner_(p), fault_(f) {}
  void publish(const saga::outbox_record& r) override {
    inner_.publish(r);
    fault_.at("after_publish");
  }

 private:
  saga::publisher& inner_;
  fault_points& fault_;
};

}  // namespace

fault_points::fault_points() : rng_(std::random_device{}()) {
  const char* spec = std::getenv("SAGA_FAULT");
  if (spec == nullptr) return;
  const std::string s(spec);
  const auto colon = s.find(':');
  point_ = s.substr(0, colon);
  try {
    probability_ = colon == std::string::npos ? 1.0 : std::stod(s.substr(colon + 1));
  } catch (const std::exception&) {
    throw startup_error("SAGA_FAULT: '" + s + "' is not <point>:<probability>");
  }
  if (point_ != "before_commit" && point_ != "after_commit" && point_ != "after_publish" &&
      point_ != "stall_commit" && point_ != "stall_sync" && point_ != "fail_sync")
    throw startup_error("SAGA_FAULT: unknown point '" + point_ + "'");
}

void fault_points::at(std::string_view point) {
  if (point_.empty() || point != point_) return;
  if (point_ == "stall_commit") {  // the number is the stall's length in seconds
    if (!started_ || stalled_) return;
    stalled_ = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(probability_));
    return;
  }
  if (std::uniform_real_distribution<double>(0, 1)(rng_) >= probability_) return;
  std::fprintf(stderr, "fault injected: %s\n", point_.c_str());
  std::fflush(stderr);
  ::kill(::getpid(), SIGKILL);
}

std::chrono::milliseconds fault_points::sync_stall() const {
  if (point_ != "stall_sync") return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(probability_ * 1000));
}

std::optional<std::string> fault_points::sync_failure() const {
  if (point_ != "fail_sync") return std::nullopt;
  return "fault injected: fail_sync";
}

saga::store& fault_points::wrap(saga::store& s) {
  store_ = std::make_unique<faulty_store>(s, *this);
  return *store_;
}

saga::publisher& fault_points::wrap(saga::publisher& p) {
  publisher_ = std::make_unique<faulty_publisher>(p, *this);
  return *publisher_;
}

}  // namespace saga::server

#endif
