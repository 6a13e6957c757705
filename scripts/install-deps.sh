#!/usr/bin/env bash
# Installs the Debian 12 packages this project builds, tests and demos with.
# Idempotent: installs only what is missing and runs `apt-get update` only then.
# Must run as root (or through sudo) on a fresh Debian 12 with git and make.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git
  libboost1.81-dev
  libsqlite3-dev libsqlitecpp-dev sqlite3
  libzmq3-dev cppzmq-dev
  libspdlog-dev libfmt-dev
  doctest-dev nlohmann-json3-dev libcli11-dev
  graphviz
  clang libclang-rt-14-dev
  python3 python3-zmq
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if ((EUID != 0)); then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
