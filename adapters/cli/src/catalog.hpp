#pragma once
// sagactl's read side is saga::server::catalog (saga/server/catalog.hpp), shared with sagad's
// console: the documents `--json` prints are built there, once. These names keep sagactl's
// commands short.

#include "saga/server/catalog.hpp"

namespace sagactl {

using saga::server::catalog;
using saga::server::exit_code;
using saga::server::failure;
using saga::server::list_filter;
using saga::server::password_of;
using saga::server::without_password;
using enum saga::server::exit_code;

}  // namespace sagactl
