// luxcpp — shapes, column-major strides and checked shape arithmetic.
//
// A shape is std::array<index_t, N>; the first index varies fastest (Julia / Lux order:
// features first, batch last). The stride of dimension d is the product of the sizes of
// the dimensions before it.
//
// Every shape a Tensor or a view holds is valid: no negative size, and the product of its
// non-zero sizes fits in index_t — so every partial product of its sizes (a plane, the
// elements before a dimension) fits too, in any order, even when another size is 0. Sizes a
// kernel derives from its arguments (an output size from a padding, a scale, a dilation) are
// computed with checked_add / checked_sub / checked_mul, which throw lux::shape_error (or the
// exception type asked for) naming the operation instead of overflowing; checked_floor converts
// a real-valued size without undefined behaviour.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"

LUX_NAMESPACE_BEGIN

template <std::size_t N>
using shape_t = std::array<index_t, N>;

// ---------------------------------------------------------------------------------------
// Checked index arithmetic

namespace detail {
constexpr bool add_overflows(index_t a, index_t b, index_t& r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_add_overflow(a, b, &r);
#else
  constexpr index_t hi = std::numeric_limits<index_t>::max(),
                    lo = std::numeric_limits<index_t>::min();
  if ((b > 0 && a > hi - b) || (b < 0 && a < lo - b)) return true;
  r = a + b;
  return false;
#endif
}
constexpr bool sub_overflows(index_t a, index_t b, index_t& r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_sub_overflow(a, b, &r);
#else
  constexpr index_t hi = std::numeric_limits<index_t>::max(),
                    lo = std::numeric_limits<index_t>::min();
  if ((b < 0 && a > hi + b) || (b > 0 && a < lo + b)) return true;
  r = a - b;
  return false;
#endif
}
constexpr bool mul_overflows(index_t a, index_t b, index_t& r) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_mul_overflow(a, b, &r);
#else
  constexpr index_t hi = std::numeric_limits<index_t>::max(),
                    lo = std::numeric_limits<index_t>::min();
  if (a == 0 || b == 0) {
    r = 0;
    return false;
  }
  const bool bad = a > 0 ? (b > 0 ? a > hi / b : b < lo / a) : (b > 0 ? a < lo / b : a < hi / b);
  if (bad) return true;
  r = a * b;
  return false;
#endif
}
}  // namespace detail

/// a + b; throws E ("<op>: <what> overflows: a + b") when the sum does not fit in index_t.
template <class E = shape_error>
constexpr index_t checked_add(index_t a, index_t b, const char* op, const char* what = "a size") {
  index_t r = 0;
  if (detail::add_overflows(a, b, r)) [[unlikely]]
    throw E(detail::concat(op, ": ", what, " overflows: ", a, " + ", b));
  return r;
}
/// a − b; throws E naming `op` when the difference does not fit in index_t.
template <class E = shape_error>
constexpr index_t checked_sub(index_t a, index_t b, const char* op, const char* what = "a size") {
  index_t r = 0;
  if (detail::sub_overflows(a, b, r)) [[unlikely]]
    throw E(detail::concat(op, ": ", what, " overflows: ", a, " - ", b));
  return r;
}
/// a · b; throws E naming `op` when the product does not fit in index_t.
template <class E = shape_error>
constexpr index_t checked_mul(index_t a, index_t b, const char* op, const char* what = "a size") {
  index_t r = 0;
  if (detail::mul_overflows(a, b, r)) [[unlikely]]
    throw E(detail::concat(op, ": ", what, " overflows: ", a, " * ", b));
  return r;
}
/// ⌊v⌋ as index_t; throws E naming `op` when v is NaN or ⌊v⌋ lies outside index_t (converting
/// such a double to an integer is undefined behaviour).
template <class E = shape_error>
index_t checked_floor(double v, const char* op, const char* what = "a size") {
  constexpr double limit = 9223372036854775808.0;  // 2^63, exact in double
  const double f = std::floor(v);
  if (!(f >= -limit && f < limit)) [[unlikely]]
    throw E(detail::concat(op, ": ", what, " ", v, " does not fit a 64-bit index"));
  return static_cast<index_t>(f);
}

// ---------------------------------------------------------------------------------------
// Shapes

/// Number of elements of a shape. Throws shape_error naming `op` on a negative size, or when
/// the product of the non-zero sizes does not fit in index_t (so no partial product of a
/// valid shape overflows, whatever the order and even when another size is 0).
template <std::size_t N>
constexpr index_t shape_numel(const shape_t<N>& shape, const char* op = "shape") {
  index_t nonzero = 1;
  bool empty = false;
  for (std::size_t d = 0; d < N; ++d) {
    require<shape_error>(shape[d] >= 0, op, ": sizes must be non-negative, got ", shape);
    if (shape[d] == 0) {
      empty = true;
      continue;
    }
    if (nonzero > std::numeric_limits<index_t>::max() / shape[d])
      throw shape_error(detail::concat(op, ": shape ", shape, " has too many elements"));
    nonzero *= shape[d];
  }
  return empty ? 0 : nonzero;
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

// =================================================================================================
// Sets of dimensions
// =================================================================================================

/// Marker for "every dimension" (Julia's `dims = :`).
struct all_dims_t {
  explicit constexpr all_dims_t() = default;
};
inline constexpr all_dims_t all_dims{};

/// A set of 0-based dimensions: lux::all_dims, one dimension, or a list (`{2, 3}`); what dropout's
/// mask varies along and what layernorm normalizes over. Dimensions are validated against x's
/// rank by the kernels (check_dim_set: lux::argument_error).
class dim_set {
 public:
  constexpr dim_set(all_dims_t) noexcept : all_(true) {}  // NOLINT: implicit on purpose
  constexpr dim_set(int d) noexcept { insert(d); }        // NOLINT: implicit on purpose
  constexpr dim_set(std::initializer_list<int> ds) noexcept {
    for (int d : ds) insert(d);
  }
  /// Adds dimension d (one outside [0, 64) makes the set invalid for every rank).
  constexpr void insert(int d) noexcept {
    if (d < 0 || d >= 64) {
      if (!has_bad_) bad_ = d;
      has_bad_ = true;
    } else {
      bits_ |= std::uint64_t{1} << d;
    }
  }

  constexpr bool is_all() const noexcept { return all_; }
  /// True when the mask varies along dimension d.
  constexpr bool contains(std::size_t d) const noexcept {
    return all_ || (d < 64 && ((bits_ >> d) & 1u) != 0);
  }
  /// Whether a listed dimension is outside [0, rank), and the first such one.
  constexpr bool has_outside(std::size_t rank) const noexcept {
    return has_bad_ || (rank < 64 && (bits_ >> rank) != 0);
  }
  constexpr int first_outside(std::size_t rank) const noexcept {
    if (has_bad_) return bad_;
    for (std::size_t d = rank; d < 64; ++d)
      if ((bits_ >> d) & 1u) return static_cast<int>(d);
    return 0;
  }

 private:
  bool all_ = false;
  bool has_bad_ = false;
  std::uint64_t bits_ = 0;
  int bad_ = 0;
};

namespace detail {
/// Every dimension of `dims` must be one of x's (rank N).
template <std::size_t N>
void check_dim_set(const char* op, const dim_set& dims) {
  require<argument_error>(!dims.has_outside(N), op, ": dims contains ", dims.first_outside(N),
                          ", but x has rank ", N, " (dims are 0-based: 0 .. ",
                          static_cast<int>(N) - 1, ")");
}
}  // namespace detail

LUX_NAMESPACE_END
