// luxcpp — lux::summary: a model's tree with per-layer parameter and state counts, as Lux
// displays a model:
//
//   Chain(
//       layer_1 = Dense(784 => 64, relu),  # 50240 parameters
//       layer_2 = BatchNorm(64),  # 128 parameters, plus 129 states
//   )  # Total: 50368 parameters, plus 129 states.
//
// Containers are walked through their for_each_child(f) member (f(name, child)); any other
// layer is a leaf printed with operator<<. Counts are lux::parameterlength / statelength of
// each layer (freshly initialized, as Lux counts them).
#pragma once

#include <iostream>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>

#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
template <class L>
inline constexpr bool is_container_v = requires(const L& l) {
  l.for_each_child([](std::string_view, const auto&) {});
};

template <layer L>
void summary_node(std::ostream& os, const L& l, int depth, std::string_view name) {
  const std::string indent(static_cast<std::size_t>(4 * depth), ' ');
  os << indent;
  if (!name.empty()) os << name << " = ";
  if constexpr (is_container_v<L>) {
    os << L::name << "(\n";
    l.for_each_child([&](std::string_view child_name, const auto& child) {
      summary_node(os, child, depth + 1, child_name);
    });
    os << indent << ")";
    if (depth > 0) os << ",";
  } else {
    os << l;
    if (depth > 0) os << ",";
    const auto np = parameterlength(l), ns = statelength(l);
    if (np > 0 || ns > 0) {
      os << "  # " << np << " parameters";
      if (ns > 0) os << ", plus " << ns << " states";
    }
  }
  if (depth > 0) os << "\n";
}
}  // namespace detail

/// Prints the model tree with per-layer counts and the totals.
template <layer L>
void summary(std::ostream& os, const L& model) {
  detail::summary_node(os, model, 0, "");
  os << "  # Total: " << parameterlength(model) << " parameters, plus " << statelength(model)
     << " states.\n";
}
/// summary(std::cout, model).
template <layer L>
void summary(const L& model) {
  summary(std::cout, model);
}
/// The summary as a string.
template <layer L>
std::string summary_string(const L& model) {
  std::ostringstream os;
  summary(os, model);
  return os.str();
}

LUX_NAMESPACE_END
