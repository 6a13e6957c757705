#include "saga/testing/scenario.hpp"

#include <algorithm>
#include <random>
#include <stdexcept>

#include <unistd.h>

#include "saga/codec.hpp"
#include "saga/sqlite/store.hpp"

namespace saga::testing {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

std::filesystem::path make_dir() {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("saga-scenario-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace

scenario::scenario(std::shared_ptr<const definition> d, std::string key)
    : scenario(std::vector<std::shared_ptr<const definition>>{std::move(d)}, std::move(key)) {}

scenario::scenario(std::vector<std::shared_ptr<const definition>> ds, std::string key)
    : dir_(make_dir()), key_(std::move(key)) {
  if (ds.empty() || !ds.front()) throw std::invalid_argument("scenario: no definition");
  definition_ = ds.front()->name();
  saga::sqlite::options o;
  o.path = (dir_ / "scenario.db").string();
  o.synchronous = "OFF";  // a test database need not survive power loss
  store_ = std::make_unique<saga::sqlite::store>(o);
  engine_ = std::make_unique<saga::engine>(*store_, clock_);
  for (auto& d : ds) engine_->add(std::move(d));
  engine_->subscribe("", [this](const published_event& p) { emitted_.push_back(p.event); });
}

scenario::~scenario() {
  engine_.reset();
  store_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

event scenario::make(std::string type, nlohmann::json data) const {
  event e;
  e.id = "test-" + std::to_string(++next_id_);
  e.source = "urn:test";
  e.type = std::move(type);
  e.subject = key_;
  e.time = format_time(clock_.now_ms());
  e.data = std::move(data);
  return e;
}

event scenario::make_operator(std::string_view action, nlohmann::json data) const {
  event e = make("saga.operator." + std::string(action), std::move(data));
  e.source = "urn:saga:operator";
  return e;
}

scenario& scenario::given(std::initializer_list<event> events) {
  return given(std::vector<event>(events));
}

scenario& scenario::given(const std::vector<event>& events) {
  for (const auto& e : events) {
    last_ack_ = engine_->handle(e);
    if (last_ack_.status == ack_status::rejected)
      throw std::runtime_error("scenario: given event " + e.type + " was rejected: " + last_ack_.reason);
  }
  emitted_.clear();
  return *this;
}

scenario& scenario::start_in(std::string_view state, nlohmann::json data) {
  const auto* d = engine_->find(definition_);
  if (!d->graph().has_state(state))
    throw std::invalid_argument("scenario: no state '" + std::string(state) + "'");
  instance_record r;
  r.definition = definition_;
  r.key = key_;
  r.state = std::string(state);
  r.data = data.dump();
  r.version = 1;
  r.fingerprint = d->graph().fingerprint;
  r.correlation_id = "scenario-start";
  r.created_ms = r.updated_ms = r.state_since_ms = clock_.now_ms();
  r.finished = d->graph().is_terminal(state);
  store_->begin();
  store_->save_instance(r);
  store_->commit();
  return *this;
}

scenario& scenario::when(const event& e) {
  emitted_.clear();
  last_ack_ = engine_->handle(e);
  return *this;
}

scenario& scenario::advance(std::chrono::milliseconds d) {
  emitted_.clear();
  clock_.advance(d);
  for (auto& f : engine_->fire_due_timers(clock_.now_ms())) last_ack_ = f.ack;
  return *this;
}

std::string scenario::state() const {
  auto r = store_->load_instance(definition_, key_);
  return r ? r->state : std::string();
}

nlohmann::json scenario::data() const {
  auto r = store_->load_instance(definition_, key_);
  return r ? nlohmann::json::parse(r->data) : nlohmann::json();
}

std::vector<std::string> scenario::emitted_types() const {
  std::vector<std::string> out;
  for (const auto& e : emitted_) out.push_back(e.type);
  return out;
}

std::vector<std::string> scenario::armed_timers() const {
  std::vector<std::string> out;
  for (const auto& t : store_->timers_of(definition_, key_)) out.push_back(t.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t scenario::parked_count() const {
  return store_->count_parked(definition_, key_);
}

std::vector<event> scenario::outbox() const {
  std::vector<event> out;
  std::int64_t after = 0;
  for (;;) {
    auto rows = store_->unpublished(after, 1000);
    if (rows.empty()) break;
    for (const auto& r : rows) {
      if (r.key == key_) out.push_back(*decode_event(r.payload, limits{SIZE_MAX, 1 << 20}).event);
      after = r.sequence;
    }
  }
  return out;
}

scenario& scenario::expect_state(std::string_view s, call_site where) {
  if (state() != s) fail(where, "expected state '" + std::string(s) + "', saga is in '" + state() + "'");
  return *this;
}

scenario& scenario::expect_emitted(const std::vector<std::string>& types, call_site where) {
  if (emitted_types() != types)
    fail(where, "expected emitted " + join(types) + ", got " + join(emitted_types()));
  return *this;
}

scenario& scenario::expect_timers(const std::vector<std::string>& names, call_site where) {
  auto want = names;
  std::sort(want.begin(), want.end());
  if (armed_timers() != want)
    fail(where, "expected armed timers " + join(want) + ", got " + join(armed_timers()));
  return *this;
}

scenario& scenario::expect_outcome(ack_outcome o, call_site where) {
  if (last_ack_.outcome != o)
    fail(where, "expected outcome '" + std::string(to_string(o)) + "', got '" +
                    std::string(to_string(last_ack_.outcome)) + "' (" +
                    std::string(to_string(last_ack_.status)) +
                    (last_ack_.reason.empty() ? "" : ": " + last_ack_.reason) + ")");
  return *this;
}

void scenario::fail(const call_site& where, const std::string& what) const {
  throw std::runtime_error(std::string(where.file) + ":" + std::to_string(where.line) + ": " + definition_ +
                           "/" + key_ + ": " + what);
}

}  // namespace saga::testing
