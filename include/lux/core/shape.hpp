// luxcpp — shapes and column-major strides.
//
// A shape is std::array<index_t, N>; the first index varies fastest (Julia / Lux order:
// features first, batch last). The stride of dimension d is the product of the sizes of
// the dimensions before it.
#pragma once

#include <array>
#include <cstddef>
#include <limits>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"

LUX_NAMESPACE_BEGIN

template <std::size_t N>
using shape_t = std::array<index_t, N>;

/// Number of elements of a shape; throws shape_error on negative sizes or overflow.
template <std::size_t N>
constexpr index_t shape_numel(const shape_t<N>& shape, const char* op = "shape") {
  index_t n = 1;
  for (std::size_t d = 0; d < N; ++d) {
    require<shape_error>(shape[d] >= 0, op, ": sizes must be non-negative, got ", shape);
    if (shape[d] != 0 && n > std::numeric_limits<index_t>::max() / shape[d])
      throw shape_error(detail::concat(op, ": shape ", shape, " has too many elements"));
    n *= shape[d];
  }
  return n;
}

/// Column-major (first index fastest) strides of a shape.
template <std::size_t N>
constexpr shape_t<N> column_major_strides(const shape_t<N>& shape) {
  shape_t<N> s{};
  index_t acc = 1;
  for (std::size_t d = 0; d < N; ++d) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

/// Builds a shape from a list of sizes: lux::make_shape(3, 4) == shape_t<2>{3, 4}.
template <class... Ints>
constexpr shape_t<sizeof...(Ints)> make_shape(Ints... sizes) {
  return {static_cast<index_t>(sizes)...};
}

LUX_NAMESPACE_END
