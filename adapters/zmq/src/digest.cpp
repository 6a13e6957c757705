#include "saga/zmq/digest.hpp"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include <array>
#include <stdexcept>

namespace saga::zmq {

namespace {

std::string hex(const unsigned char* bytes, std::size_t n) {
  std::string out(2 * n, '\0');
  sodium_bin2hex(out.data(), out.size() + 1, bytes, n);
  return out;
}

void init_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

// A non-negative integer field of `range`, or the reason it is not one.
std::int64_t read_sequence(const nlohmann::json& range, const char* name, std::string& problem) {
  const auto it = range.find(name);
  if (it == range.end()) {
    problem = std::string("digest: missing \"") + name + "\"";
  } else if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX) ||
             it->get<std::int64_t>() < 0) {
    problem = std::string("digest: \"") + name + "\" must be an integer from 0 to 2^63-1";
  } else {
    return it->get<std::int64_t>();
  }
  return 0;
}

}  // namespace

digest_request read_digest_request(const nlohmann::json& range) {
  digest_request r;
  if (!range.is_object()) {
    r.problem = "\"digest\" must be an object {\"from\":A,\"to\":B}";
    return r;
  }
  r.from = read_sequence(range, "from", r.problem);
  if (r.problem.empty()) r.to = read_sequence(range, "to", r.problem);
  if (!r.problem.empty()) return r;
  if (r.to < r.from) {
    r.problem = "digest: \"to\" is below \"from\"";
  } else if (r.to - r.from >= digest_range_cap) {
    r.problem = "digest: the range is wider than " + std::to_string(digest_range_cap) + " sequences";
  }
  return r;
}

std::string digest_request_body(std::int64_t from, std::int64_t to) {
  return nlohmann::json{{"digest", {{"from", from}, {"to", to}}}}.dump();
}

std::string digest_reply_body(const range_digest& d, std::int64_t last) {
  return nlohmann::json{
      {"digest", {{"from", d.from}, {"to", d.to}, {"count", d.count}, {"sha256", d.sha256}}}, {"last", last}}
      .dump();
}

struct digest_builder::state {
  crypto_hash_sha256_state sha;
};

std::string sha256_hex(std::string_view bytes) {
  init_sodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> out{};
  crypto_hash_sha256(out.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return hex(out.data(), out.size());
}

digest_builder::digest_builder(std::int64_t from, std::int64_t to) : state_(std::make_unique<state>()) {
  init_sodium();
  result_.from = from;
  result_.to = to;
  crypto_hash_sha256_init(&state_->sha);
}

digest_builder::~digest_builder() = default;

void digest_builder::add(std::int64_t sequence, std::string_view id, std::string_view type,
                         std::string_view payload) {
  std::string line = std::to_string(sequence);
  line.append("\t")
      .append(id)
      .append("\t")
      .append(type)
      .append("\t")
      .append(sha256_hex(payload))
      .append("\n");
  crypto_hash_sha256_update(&state_->sha, reinterpret_cast<const unsigned char*>(line.data()), line.size());
  ++result_.count;
}

range_digest digest_builder::finish() {
  std::array<unsigned char, crypto_hash_sha256_BYTES> out{};
  crypto_hash_sha256_final(&state_->sha, out.data());
  result_.sha256 = hex(out.data(), out.size());
  return result_;
}

}  // namespace saga::zmq
