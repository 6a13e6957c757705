#pragma once
// The definitions compiled into this build, by name: what sagad's
// --definitions chooses from.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "saga/definition.hpp"

namespace saga::definitions {

// Names of every compiled definition, in a fixed order.
std::vector<std::string> names();

// The definition called `name`, or null when none is.
std::shared_ptr<const saga::definition> by_name(std::string_view name);

}  // namespace saga::definitions
