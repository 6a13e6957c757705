// sagactl keygen: a CURVE key pair for sagad or for one of its clients (docs/security.md).

#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "catalog.hpp"
#include "command.hpp"
#include "saga/zmq/curve.hpp"

namespace sagactl::commands {

run_fn keygen(CLI::App& cmd) {
  auto name = std::make_shared<std::string>();
  cmd.add_option(
         "name", *name,
         "writes NAME.key (the public key: give it to the other side) and NAME.key_secret (mode 0600: "
         "keep it); NAME may include a folder. Existing files are never overwritten.")
      ->required();
  return [name](const globals& g) {
    if (!saga::zmq::curve_available())
      throw failure(usage, "this libzmq was built without CURVE (libsodium)");
    saga::zmq::key_files files;
    const auto keys = saga::zmq::generate_curve_key_pair();
    try {
      files = saga::zmq::write_key_files(*name, keys);
    } catch (const std::exception& e) {
      throw failure(usage, e.what());
    }
    if (g.as_json) {
      std::cout << nlohmann::json{{"public_key", keys.public_key},
                                  {"public_file", files.public_file},
                                  {"secret_file", files.secret_file}}
                       .dump()
                << '\n';
    } else {
      std::cout << "public key  " << keys.public_key << "\n"
                << "wrote       " << files.public_file << " (give it to the other side)\n"
                << "            " << files.secret_file << " (mode 0600: keep it)\n";
    }
    return 0;
  };
}

}  // namespace sagactl::commands
