#pragma once
// saga::daemon — the name sagad's loop had before it became saga::server
// (saga/server/server.hpp), kept for the in-process tests that still use it
// (tests/reliability/io_fault_test.cpp). New code uses saga::server.

#include <atomic>

#include "saga/server/options.hpp"

namespace saga::daemon {

using options = saga::server::options;
using endpoints = saga::server::endpoints;
using startup_error = saga::server::startup_error;

// saga::server::server with the shipped definitions (saga::definitions),
// picked by options::definitions, run until `stop`.
void run(const options& o, const std::atomic<bool>& stop);

}  // namespace saga::daemon
