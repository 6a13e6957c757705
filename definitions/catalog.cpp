#include "saga/definitions/catalog.hpp"

#include "saga/definitions/account_lockout.hpp"
#include "saga/definitions/order_lifecycle.hpp"
#include "saga/definitions/payment_notice.hpp"

namespace saga::definitions {
namespace {

struct entry {
  std::string_view name;
  std::shared_ptr<const saga::definition> (*make)();
};
constexpr entry compiled[] = {
    {"order_lifecycle", &order_lifecycle},
    {"payment_notice", &payment_notice},
    {"account_lockout", &account_lockout},
};

}  // namespace

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& e : compiled) out.emplace_back(e.name);
  return out;
}

std::shared_ptr<const saga::definition> by_name(std::string_view name) {
  for (const auto& e : compiled)
    if (e.name == name) return e.make();
  return nullptr;
}

}  // namespace saga::definitions
