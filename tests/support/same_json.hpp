#pragma once
// Equal JSON values of equal kinds. nlohmann's == finds 1, 1u and 1.0 equal, and -0.0 equal to
// 0.0; a parse that changed a number's kind or a zero's sign did not build the same document
// (tests/engine/fast_json_test.cpp, tests/fuzz/codec_fuzz.cpp).

#include <cstring>

#include <nlohmann/json.hpp>

namespace saga::test {

inline bool same_json(const nlohmann::json& a, const nlohmann::json& b) {
  using value_t = nlohmann::json::value_t;
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case value_t::object: {
      if (a.size() != b.size()) return false;
      for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
        if (ia.key() != ib.key() || !same_json(*ia, *ib)) return false;
      return true;
    }
    case value_t::array: {
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (!same_json(a[i], b[i])) return false;
      return true;
    }
    case value_t::number_float: {
      const double x = a.get<double>(), y = b.get<double>();
      return std::memcmp(&x, &y, sizeof x) == 0;
    }
    default:
      return a == b;
  }
}

}  // namespace saga::test
