// luxcpp — what the upsampling and pixel-shuffle front doors (../upsample.hpp, ./inplace.hpp)
// share: contiguity, overlap and shape checks, the output shapes of linear interpolation and of
// pixel shuffle, and the bodies of the linear (bilinear / trilinear) kernels, allocating and
// in-place. Internal: lux::detail::upsample.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/upsample.hpp"
#include "lux/kernels/looped/upsample.hpp"
#include "lux/kernels/upsample/types.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Helpers
// =================================================================================================

namespace detail::upsample {
template <class X>
inline constexpr std::size_t spatial_v = array_rank_v<X> >= 3 ? array_rank_v<X> - 2 : 1;

template <class X>
const array_value_t<X>* data_of(const X& x, const char* op, const char* name) {
  const auto v = as_view(x);
  if constexpr (!array_traits_t<X>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}

template <class Y>
array_value_t<Y>* mutable_data_of(Y&& y, const char* op, const char* name) {
  auto v = as_view(y);
  static_assert(!std::is_const_v<std::remove_pointer_t<decltype(v.data())>>,
                "lux upsampling: the destination of an in-place kernel must be mutable");
  if constexpr (!array_traits_t<Y>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}

/// argument_error when the output overlaps the input.
template <class A, class B>
void check_disjoint(const char* op, const A& out, const B& in) {
  const auto po = reinterpret_cast<std::uintptr_t>(as_view(out).data());
  const auto pi = reinterpret_cast<std::uintptr_t>(as_view(in).data());
  const std::size_t bo = sizeof(array_value_t<A>) * static_cast<std::size_t>(as_view(out).numel());
  const std::size_t bi = sizeof(array_value_t<B>) * static_cast<std::size_t>(as_view(in).numel());
  require<argument_error>(bo == 0 || bi == 0 || po + bo <= pi || pi + bi <= po, op,
                          ": the output overlaps the input; it must be a separate buffer");
}

template <std::size_t N>
shape_t<N - 2> spatial_of(const shape_t<N>& s) {
  shape_t<N - 2> out{};
  for (std::size_t a = 0; a + 2 < N; ++a) out[a] = s[a];
  return out;
}

/// Whether `big` is a nearest-neighbour upsampling of `small` along one dimension: a positive
/// multiple of it, or both 0 (an empty dimension stays empty at any scale).
inline bool nearest_multiple(index_t big, index_t small) {
  return small >= 1 ? big >= small && big % small == 0 : small == 0 && big == 0;
}

/// The output (`out_name`: y or dy) must equal the input (`in_name`: x or dx) in the channel and
/// batch dimensions; both shapes must be valid (x_shape may be a value).
template <std::size_t N>
void check_planes(const char* op, const shape_t<N>& out, const shape_t<N>& in,
                  const char* out_name = "dy", const char* in_name = "x") {
  shape_numel(out, op);
  shape_numel(in, op);
  require<shape_error>(out[N - 2] == in[N - 2] && out[N - 1] == in[N - 1], op, ": ", out_name, " ",
                       out, " and ", in_name, " ", in, " differ in the channel or batch dimension");
}

/// Output shape of a linear upsampling from real scales (⌊scale·in⌋, scale ≥ 1).
template <std::size_t N>
shape_t<N> linear_shape_from_scale(const char* op, const shape_t<N>& xs,
                                   const std::array<double, N - 2>& scale) {
  shape_t<N> ys = xs;
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(scale[a] >= 1 && std::isfinite(scale[a]), op,
                         ": scale must be finite and >= 1 in every spatial dimension, got ",
                         scale[a], " for spatial dimension ", a, " of x ", xs);
    ys[a] = checked_floor(scale[a] * static_cast<double>(xs[a]), op, "the output size scale·in");
  }
  shape_numel(ys, op);
  return ys;
}

template <std::size_t N>
void check_linear_sizes(const char* op, const shape_t<N>& xs, const shape_t<N>& ys) {
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(xs[a] >= 1, op, ": x ", xs,
                         " has an empty spatial dimension (nothing to interpolate)");
    require<shape_error>(ys[a] >= 1, op, ": output size ", spatial_of(ys),
                         " must be >= 1 in every spatial dimension (x ", xs, ")");
  }
}

template <class M, class X>
Tensor<array_value_t<X>, array_rank_v<X>> linear_forward(M mode, const char* op, const X& x,
                                                         const shape_t<array_rank_v<X>>& ys,
                                                         bool align_corners) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  const T* xp = data_of(x, op, "x");
  const auto xs = as_view(x).shape();
  check_linear_sizes(op, xs, ys);
  auto y = Tensor<T, N>::uninitialized(ys, op);
  if (y.numel() == 0) return y;  // no planes: nothing to do, however large the spatial sizes
  if constexpr (N == 4)
    upsample_bilinear(mode, xp, xs, y.data(), ys, align_corners);
  else
    upsample_trilinear(mode, xp, xs, y.data(), ys, align_corners);
  return y;
}

template <class M, class DY>
upsample_gradients<array_value_t<DY>, array_rank_v<DY>> linear_backward(
    M mode, const char* op, const DY& dy, const shape_t<array_rank_v<DY>>& x_shape,
    bool align_corners) {
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  const T* dyp = data_of(dy, op, "dy");
  const auto dys = as_view(dy).shape();
  check_planes(op, dys, x_shape);
  check_linear_sizes(op, x_shape, dys);
  auto dx = Tensor<T, N>::uninitialized(x_shape, op);
  if (dx.numel() == 0) return {std::move(dx)};
  if constexpr (N == 4)
    upsample_bilinear_backward(mode, dyp, dys, dx.data(), x_shape, align_corners);
  else
    upsample_trilinear_backward(mode, dyp, dys, dx.data(), x_shape, align_corners);
  return {std::move(dx)};
}
}  // namespace detail::upsample

// =================================================================================================
// pixel_shuffle: the factor r^d and the shapes
// =================================================================================================

namespace detail::upsample {
/// r^d for d = N − 2 spatial dimensions (argument_error for r < 1, shape_error on overflow).
template <std::size_t N>
index_t shuffle_factor(const char* op, index_t r) {
  require<argument_error>(r >= 1, op, ": r must be >= 1, got ", r);
  index_t rd = 1;
  for (std::size_t a = 0; a + 2 < N; ++a) rd = checked_mul(rd, r, op, "the factor r^d");
  return rd;
}
/// The shape of pixel_shuffle(x, r): (r·spatial..., C ÷ r^d, B) (shape_error when C is not a
/// multiple of r^d or a size overflows).
template <std::size_t N>
shape_t<N> shuffled_shape(const char* op, const shape_t<N>& xs, index_t r) {
  const index_t rd = shuffle_factor<N>(op, r);
  shape_numel(xs, op);
  require<shape_error>(xs[N - 2] % rd == 0, op, ": x ", xs, " has ", xs[N - 2],
                       " channels, not divisible by r^", N - 2, " = ", rd);
  shape_t<N> ys = xs;
  for (std::size_t a = 0; a + 2 < N; ++a) ys[a] = checked_mul(xs[a], r, op, "the output size r·in");
  ys[N - 2] = xs[N - 2] / rd;
  shape_numel(ys, op);
  return ys;
}
/// The shape of pixel_shuffle_backward(dy, r): (spatial/r..., C·r^d, B).
template <std::size_t N>
shape_t<N> unshuffled_shape(const char* op, const shape_t<N>& dys, index_t r) {
  const index_t rd = shuffle_factor<N>(op, r);
  shape_t<N> xs = dys;
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(dys[a] % r == 0, op, ": dy ", dys,
                         " has a spatial size not divisible by r = ", r);
    xs[a] = dys[a] / r;
  }
  xs[N - 2] = checked_mul(dys[N - 2], rd, op, "the input channels C·r^d");
  shape_numel(xs, op);
  return xs;
}
}  // namespace detail::upsample

// =================================================================================================
// In-place variants: the shape check of nearest upsampling, the linear kernels' bodies
// =================================================================================================

namespace detail::upsample {
/// y's spatial sizes must be positive multiples of x's; channel and batch equal.
template <std::size_t N>
void check_nearest_shapes(const char* op, const shape_t<N>& big, const shape_t<N>& small,
                          const char* big_name, const char* small_name) {
  bool ok = big[N - 2] == small[N - 2] && big[N - 1] == small[N - 1];
  for (std::size_t a = 0; a + 2 < N; ++a) ok = ok && nearest_multiple(big[a], small[a]);
  require<shape_error>(ok, op, ": ", big_name, " ", big, " is not an integer upsampling of ",
                       small_name, " ", small);
}
}  // namespace detail::upsample

namespace detail::upsample {
template <class M, class Y, class X>
TensorView<array_value_t<X>, array_rank_v<X>> linear_forward_into(M mode, const char* op, Y&& y,
                                                                  const X& x, bool align_corners) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux linear upsampling: y must have x's element type and rank");
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  const auto xs = as_view(x).shape();
  const auto ys = as_view(y).shape();
  check_planes(op, ys, xs, "y", "x");
  check_linear_sizes(op, xs, ys);
  check_disjoint(op, y, x);
  if (as_view(y).numel() == 0) return TensorView<T, N>(yp, ys);
  if constexpr (N == 4)
    upsample_bilinear(mode, xp, xs, yp, ys, align_corners);
  else
    upsample_trilinear(mode, xp, xs, yp, ys, align_corners);
  return TensorView<T, N>(yp, ys);
}
template <class M, class DX, class DY>
TensorView<array_value_t<DY>, array_rank_v<DY>> linear_backward_into(M mode, const char* op,
                                                                     DX&& dx, const DY& dy,
                                                                     bool align_corners) {
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(std::is_same_v<array_value_t<DX>, T> && array_rank_v<DX> == N,
                "lux linear upsampling: dx must have dy's element type and rank");
  const T* dyp = data_of(dy, op, "dy");
  T* dxp = mutable_data_of(dx, op, "dx");
  const auto dys = as_view(dy).shape();
  const auto xs = as_view(dx).shape();
  check_planes(op, dys, xs, "dy", "dx");
  check_linear_sizes(op, xs, dys);
  check_disjoint(op, dx, dy);
  if (as_view(dx).numel() == 0) return TensorView<T, N>(dxp, xs);
  if constexpr (N == 4)
    upsample_bilinear_backward(mode, dyp, dys, dxp, xs, align_corners);
  else
    upsample_trilinear_backward(mode, dyp, dys, dxp, xs, align_corners);
  return TensorView<T, N>(dxp, xs);
}
}  // namespace detail::upsample

LUX_NAMESPACE_END
