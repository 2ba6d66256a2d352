// luxcpp — the upsampling and pixel-shuffle kernels' in-place variants: upsample_nearest_,
// upsample_bilinear_, upsample_trilinear_, pixel_shuffle_ and their _backward_ forms (NNlib's
// upsample_nearest!, ∇upsample_nearest!, …). Semantics, errors and modes in ../upsample.hpp.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/upsample.hpp"
#include "lux/kernels/looped/upsample.hpp"
#include "lux/kernels/upsample/detail.hpp"
#include "lux/kernels/upsample/types.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// In-place variants (NNlib's upsample_nearest!, ∇upsample_nearest!, …): the output is written
// into a caller-owned contiguous Tensor or TensorView whose shape defines the operation (the scale
// or size is implied by the shapes), and its view is returned. No allocation. shape_error for
// inconsistent shapes, argument_error if the output overlaps the input.
// =================================================================================================

/// y = upsample_nearest(x, y's size / x's size) written into y, in the given mode.
template <operation_mode M, array Y, array X>
TensorView<array_value_t<X>, array_rank_v<X>> upsample_nearest_(M mode, Y&& y, const X& x) {
  using namespace detail::upsample;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(N >= 3 && std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux::upsample_nearest_: y must have x's element type and rank (>= 3)");
  constexpr const char* op = "upsample_nearest_";
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  const auto xs = as_view(x).shape();
  const auto ys = as_view(y).shape();
  check_nearest_shapes(op, ys, xs, "y", "x");
  check_disjoint(op, y, x);
  if (as_view(y).numel() > 0) upsample_nearest(mode, xp, xs, yp, ys);
  return TensorView<T, N>(yp, ys);
}
template <array Y, array X>
auto upsample_nearest_(Y&& y, const X& x) {
  return upsample_nearest_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x);
}

/// dx = upsample_nearest_backward(dy) written into dx (x's shape), in the given mode.
template <operation_mode M, array DX, array DY>
TensorView<array_value_t<DY>, array_rank_v<DY>> upsample_nearest_backward_(M mode, DX&& dx,
                                                                           const DY& dy) {
  using namespace detail::upsample;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(N >= 3 && std::is_same_v<array_value_t<DX>, T> && array_rank_v<DX> == N,
                "lux::upsample_nearest_backward_: dx must have dy's element type and rank (>= 3)");
  constexpr const char* op = "upsample_nearest_backward_";
  const T* dyp = data_of(dy, op, "dy");
  T* dxp = mutable_data_of(dx, op, "dx");
  const auto dys = as_view(dy).shape();
  const auto xs = as_view(dx).shape();
  check_nearest_shapes(op, dys, xs, "dy", "dx");
  check_disjoint(op, dx, dy);
  if (as_view(dx).numel() > 0) upsample_nearest_backward(mode, dyp, dys, dxp, xs);
  return TensorView<T, N>(dxp, xs);
}
template <array DX, array DY>
auto upsample_nearest_backward_(DX&& dx, const DY& dy) {
  return upsample_nearest_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy);
}

/// y = bilinear interpolation of x (W, H, C, B) to y's spatial size, written into y, given mode.
template <operation_mode M, array Y, array X>
TensorView<array_value_t<X>, 4> upsample_bilinear_(M mode, Y&& y, const X& x,
                                                   bool align_corners = true) {
  static_assert(array_rank_v<X> == 4, "lux::upsample_bilinear_: x must be (W, H, C, B)");
  return detail::upsample::linear_forward_into(mode, "upsample_bilinear_", std::forward<Y>(y), x,
                                               align_corners);
}
template <array Y, array X>
auto upsample_bilinear_(Y&& y, const X& x, bool align_corners = true) {
  return upsample_bilinear_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x, align_corners);
}
/// dx = the adjoint of upsample_bilinear from dx's shape to dy's, written into dx, given mode.
template <operation_mode M, array DX, array DY>
TensorView<array_value_t<DY>, 4> upsample_bilinear_backward_(M mode, DX&& dx, const DY& dy,
                                                             bool align_corners = true) {
  static_assert(array_rank_v<DY> == 4, "lux::upsample_bilinear_backward_: dy must be (W, H, C, B)");
  return detail::upsample::linear_backward_into(mode, "upsample_bilinear_backward_",
                                                std::forward<DX>(dx), dy, align_corners);
}
template <array DX, array DY>
auto upsample_bilinear_backward_(DX&& dx, const DY& dy, bool align_corners = true) {
  return upsample_bilinear_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy,
                                     align_corners);
}

/// y = trilinear interpolation of x (W, H, D, C, B) to y's spatial size, written into y.
template <operation_mode M, array Y, array X>
TensorView<array_value_t<X>, 5> upsample_trilinear_(M mode, Y&& y, const X& x,
                                                    bool align_corners = true) {
  static_assert(array_rank_v<X> == 5, "lux::upsample_trilinear_: x must be (W, H, D, C, B)");
  return detail::upsample::linear_forward_into(mode, "upsample_trilinear_", std::forward<Y>(y), x,
                                               align_corners);
}
template <array Y, array X>
auto upsample_trilinear_(Y&& y, const X& x, bool align_corners = true) {
  return upsample_trilinear_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x, align_corners);
}
/// dx = the adjoint of upsample_trilinear from dx's shape to dy's, written into dx.
template <operation_mode M, array DX, array DY>
TensorView<array_value_t<DY>, 5> upsample_trilinear_backward_(M mode, DX&& dx, const DY& dy,
                                                              bool align_corners = true) {
  static_assert(array_rank_v<DY> == 5,
                "lux::upsample_trilinear_backward_: dy must be (W, H, D, C, B)");
  return detail::upsample::linear_backward_into(mode, "upsample_trilinear_backward_",
                                                std::forward<DX>(dx), dy, align_corners);
}
template <array DX, array DY>
auto upsample_trilinear_backward_(DX&& dx, const DY& dy, bool align_corners = true) {
  return upsample_trilinear_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy,
                                      align_corners);
}

/// y = pixel_shuffle(x, r) written into y, in the given mode.
template <operation_mode M, array Y, array X>
TensorView<array_value_t<X>, array_rank_v<X>> pixel_shuffle_(M mode, Y&& y, const X& x, index_t r) {
  using namespace detail::upsample;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(N >= 3 && std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux::pixel_shuffle_: y must have x's element type and rank (>= 3)");
  constexpr const char* op = "pixel_shuffle_";
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  const auto xs = as_view(x).shape();
  const shape_t<N> ys = shuffled_shape(op, xs, r);
  require<shape_error>(as_view(y).shape() == ys, op, ": y has shape ", as_view(y).shape(),
                       ", expected ", ys, " for x ", xs, " and r = ", r);
  check_disjoint(op, y, x);
  if (as_view(y).numel() > 0) pixel_shuffle(mode, xp, xs, r, yp);
  return TensorView<T, N>(yp, ys);
}
template <array Y, array X>
auto pixel_shuffle_(Y&& y, const X& x, index_t r) {
  return pixel_shuffle_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x, r);
}

/// dx = pixel_shuffle_backward(dy, r) (pixel unshuffle) written into dx, in the given mode.
template <operation_mode M, array DX, array DY>
TensorView<array_value_t<DY>, array_rank_v<DY>> pixel_shuffle_backward_(M mode, DX&& dx,
                                                                        const DY& dy, index_t r) {
  using namespace detail::upsample;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(N >= 3 && std::is_same_v<array_value_t<DX>, T> && array_rank_v<DX> == N,
                "lux::pixel_shuffle_backward_: dx must have dy's element type and rank (>= 3)");
  constexpr const char* op = "pixel_shuffle_backward_";
  const T* dyp = data_of(dy, op, "dy");
  T* dxp = mutable_data_of(dx, op, "dx");
  const auto dys = as_view(dy).shape();
  const shape_t<N> xs = unshuffled_shape(op, dys, r);
  require<shape_error>(as_view(dx).shape() == xs, op, ": dx has shape ", as_view(dx).shape(),
                       ", expected ", xs, " for dy ", dys, " and r = ", r);
  check_disjoint(op, dx, dy);
  if (as_view(dx).numel() > 0) pixel_shuffle_backward(mode, dyp, xs, r, dxp);
  return TensorView<T, N>(dxp, xs);
}
template <array DX, array DY>
auto pixel_shuffle_backward_(DX&& dx, const DY& dy, index_t r) {
  return pixel_shuffle_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy, r);
}

LUX_NAMESPACE_END
