#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds, tests, packages and demos with
# (help2man: the man pages; dpkg-dev, file, lintian: `make package` and its test;
# systemd: systemd-analyze scores the unit file in that test; postgresql: the PostgreSQL store's
# tests start a throw-away cluster of their own from its binaries, never the system one;
# chromium, chromium-driver: the web console's tests in a real headless browser, ctest -L browser;
# valgrind: saga-bench's instructions per event, counted by callgrind; libmimalloc-dev: sagad's
# allocator; libsimdjson-dev: the engine's JSON parse, engine/src/fast_json.hpp).
# Idempotent: installs only what is missing and runs `apt-get update` only then.
# Must run as root (or through sudo) on a fresh Debian 12 with git and make.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git
  libboost1.81-dev
  libsqlite3-dev libsqlitecpp-dev sqlite3
  libpq-dev postgresql
  libzmq3-dev cppzmq-dev libsodium-dev
  libspdlog-dev libfmt-dev
  doctest-dev nlohmann-json3-dev libcli11-dev libsimdjson-dev
  graphviz
  libsystemd-dev libcpp-httplib-dev python3-prometheus-client
  clang libclang-rt-14-dev
  python3 python3-zmq python3-jsonschema
  help2man lintian dpkg-dev file systemd
  chromium chromium-driver
  valgrind
  libmimalloc-dev
)
# npm fetches the AsyncAPI JSON Schema below; a node install that brings its own npm is kept.
if ! command -v npm >/dev/null; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo_cmd=()
if ((EUID != 0)); then sudo_cmd=(sudo); fi
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The AsyncAPI 3.0 JSON Schema that `sagactl definitions --asyncapi` documents are checked
# against (tests/cli: the contract test), from the npm registry's @asyncapi/specs (pinned).
asyncapi_specs=@asyncapi/specs@6.11.1
asyncapi_schema=/usr/local/share/saga-test/asyncapi-3.0.0.json
if [[ ! -s $asyncapi_schema ]]; then
  echo "install-deps: fetching the AsyncAPI 3.0 schema ($asyncapi_specs)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$asyncapi_specs" >/dev/null && tar xzf ./*.tgz)
  "${sudo_cmd[@]}" install -D -m 0644 "$work/package/schemas/3.0.0-without-\$id.json" "$asyncapi_schema"
fi
