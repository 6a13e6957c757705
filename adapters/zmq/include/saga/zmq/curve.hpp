#pragma once
// saga::zmq CURVE keys (docs/security.md): key pairs and their files.
//
// Files use ZeroMQ's certificate format (ZPL, rfc.zeromq.org/spec:4), the one pyzmq's
// zmq.auth.create_certificates / load_certificate read and write:
//   NAME.key         the public key only (mode 0644): give it to the other side;
//   NAME.key_secret  the public and the secret key (mode 0600): keep it.
//     metadata
//     curve
//         public-key = "<40 Z85 characters>"
//         secret-key = "<40 Z85 characters>"
//
// Errors: std::runtime_error naming the file and what is wrong with it.
// Thread-safety: free functions without shared state.

#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

namespace saga::zmq {

struct curve_key_pair {
  std::string public_key;  // 40 Z85 characters
  std::string secret_key;  // 40 Z85 characters; empty when read from a public-only file
};

// True when this libzmq was built with CURVE (libsodium).
bool curve_available();

// A fresh key pair (zmq_curve_keypair, libsodium's CSPRNG). Throws when CURVE is not available.
curve_key_pair generate_curve_key_pair();

// Writes NAME.key and NAME.key_secret beside `base_path` (base_path + ".key", + ".key_secret").
// Refuses to overwrite either (O_EXCL): an existing file is an error and nothing is written.
// Returns the two paths, public first.
struct key_files {
  std::string public_file, secret_file;
};
key_files write_key_files(const std::string& base_path, const curve_key_pair& keys);

// Reads a certificate. The secret key is required when `need_secret` (a .key_secret file, mode
// no wider than 0600 — a secret readable by others is refused, as ssh does).
curve_key_pair read_key_file(const std::string& path, bool need_secret);

// A public key given as a path to a certificate file (when such a file exists) or as 40 Z85
// characters.
std::string public_key_from(const std::string& key_or_path);

// True for 40 characters of the Z85 alphabet that decode to 32 bytes.
bool valid_z85_key(std::string_view key);

// A client socket's CURVE settings: the server's public key and the client's own pair. With an
// empty server_public_key the socket stays plaintext (ZeroMQ's NULL mechanism).
struct curve_client {
  std::string server_public_key;
  curve_key_pair own;
  bool enabled() const { return !server_public_key.empty(); }
};
// Sets ZMQ_CURVE_SERVERKEY/PUBLICKEY/SECRETKEY before connect; nothing when !c.enabled().
void apply(::zmq::socket_t& socket, const curve_client& c);

// A server socket's CURVE settings: its secret key and the ZAP domain its handshakes are
// authorised under (zap_domain_* in saga/zmq/authorizer.hpp). Empty secret_key: plaintext.
struct curve_server {
  std::string secret_key;
  std::string zap_domain;
  bool enabled() const { return !secret_key.empty(); }
};
// Sets ZMQ_CURVE_SERVER, ZMQ_CURVE_SECRETKEY and ZMQ_ZAP_DOMAIN before bind; nothing when
// !s.enabled().
void apply(::zmq::socket_t& socket, const curve_server& s);

}  // namespace saga::zmq
