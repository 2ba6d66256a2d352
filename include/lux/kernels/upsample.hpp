// luxcpp — NNlib's upsampling and pixel shuffle (what Lux's Upsample and PixelShuffle layers call),
// forward and backward, on (spatial..., C, B) input — PyTorch's (B, C, spatial reversed...) in
// memory.
//
//   upsample_nearest(x, scale)          x of any rank N ≥ 3 (N − 2 spatial dimensions), integer
//   upsample_nearest(x, upsample_size)  scale ≥ 1 per spatial dimension, or an output size that is
//                                       a multiple of the input size:  y[o] = x[⌊o / scale⌋].
//   upsample_bilinear(x, scale | size, align_corners = true)     x (W, H, C, B)
//   upsample_trilinear(x, scale | size, align_corners = true)    x (W, H, D, C, B)
//       Real scales ≥ 1 give the output size ⌊scale·in⌋ (NNlib); the size form takes any output
//       size ≥ 1 (down-sampling too). Per dimension, with ratio = (in − 1)/(out − 1) (0 for
//       out = 1) if align_corners else in/out, output index o reads
//           real = ratio·o  (aligned)   or   max(0, ratio·(o + ½) − ½)
//           i₀ = ⌊real⌋, i₁ = min(i₀ + 1, in − 1), λ₁ = real − i₀, λ₀ = 1 − λ₁
//       and y is the tensor product of these 1-d interpolations — NNlib's upsample_linear_kernel!,
//       which is PyTorch's upsample_bilinear2d / upsample_trilinear3d. The ratio is computed from
//       the sizes, not from the scale (so the scale form equals the size form for its size).
//       align_corners DEFAULTS TO TRUE: that is NNlib's default, and Lux's Upsample layer never
//       forwards its own align_corners keyword (Lux 1.x's source), so a Lux model always
//       interpolates with aligned corners; a port must do the same to reproduce it. PyTorch's
//       default is false — pass false to match F.interpolate's default.
//   pixel_shuffle(x, r)   x (spatial..., C·r^d, B), d = N − 2 → y (r·spatial..., C, B):
//       y[s₁·r + q₁, …, s_d·r + q_d, c, b] = x[s₁, …, s_d, q₁ + r·q₂ + … + r^(d−1)·q_d + r^d·c, b]
//       (0-based; NNlib's reshape–permutedims–reshape). For d = 2 this is exactly PyTorch's
//       F.pixel_shuffle under the layout reinterpretation: torch's out[n, c, h·r + i, w·r + j] =
//       in[n, c·r² + i·r + j, h, w] is, in Lux order, y[w·r + j, h·r + i, c, n] =
//       x[w, h, j + r·i + r²·c, n] — the same map (q₁ = j along W, q₂ = i along H).
//
// Backward (vector–Jacobian products; shapes of x passed explicitly):
//   upsample_nearest_backward(dy, x_shape)       dx[i] = Σ_{o : ⌊o/scale⌋ = i} dy[o]
//   upsample_bilinear_backward(dy, x_shape, align_corners = true)    the adjoint of the
//   upsample_trilinear_backward(dy, x_shape, align_corners = true)   interpolation
//   pixel_shuffle_backward(dy, r)                the inverse permutation (pixel unshuffle)
// All return {dx}. Every function also has an overload taking the mode tag first.
// In-place variants (no allocation; the output's shape defines the operation; its view is
// returned):
//   upsample_nearest_(y, x)                          upsample_nearest_backward_(dx, dy)
//   upsample_bilinear_(y, x, align_corners = true)   upsample_bilinear_backward_(dx, dy, align)
//   upsample_trilinear_(y, x, align_corners = true)  upsample_trilinear_backward_(dx, dy, align)
//   pixel_shuffle_(y, x, r)                          pixel_shuffle_backward_(dx, dy, r)
//
// Errors: lux::shape_error naming the kernel and the shapes for a scale < 1, an output size that
// is not a positive multiple (nearest) or < 1 (linear), an empty spatial input to linear
// interpolation, dy inconsistent with x_shape, and a channel count not divisible by r^d;
// lux::argument_error for r < 1. Ranks are template arguments: a rank mismatch is a compile error.
//
// Modes: generic_op (lux/kernels/generic/upsample.hpp, any element type) and looped_op
// (lux/kernels/looped/upsample.hpp, float and double, OpenMP over rows/planes; separable linear
// interpolation). Nearest and pixel shuffle (both directions) are exact. Linear interpolation
// computes the source coordinate and the weights in the element type (as NNlib and PyTorch do),
// so float results carry an error of about in·2⁻²⁴ times the local difference of x: ≤ 5e-6
// relative to max|y| in tests/kernels/test_upsample.cpp (double: ≤ 1e-13); generic and looped
// agree to the same bound.
//
// Files: this one holds the allocating public functions; ./upsample/inplace.hpp the in-place
// variants, ./upsample/types.hpp the argument and result types (upsample_size, upsample_gradients)
// and ./upsample/detail.hpp the argument checks, shapes and linear-interpolation bodies they share.
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
#include "lux/kernels/upsample/detail.hpp"
#include "lux/kernels/upsample/inplace.hpp"
#include "lux/kernels/upsample/types.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// upsample_nearest
// =================================================================================================

/// y[o] = x[⌊o / scale⌋] with an integer scale ≥ 1 per spatial dimension, in the given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, array_rank_v<X>> upsample_nearest(
    M mode, const X& x, const shape_t<detail::upsample::spatial_v<X>>& scale) {
  using namespace detail::upsample;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(N >= 3, "lux::upsample_nearest: x must have rank >= 3 (spatial..., C, B)");
  constexpr const char* op = "upsample_nearest";
  const T* xp = data_of(x, op, "x");
  const auto xs = as_view(x).shape();
  shape_t<N> ys = xs;
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(scale[a] >= 1, op, ": scale ", scale,
                         " must be >= 1 in every spatial dimension (x ", xs, ")");
    ys[a] = checked_mul(xs[a], scale[a], op, "the output size in·scale");
  }
  auto y = Tensor<T, N>::uninitialized(ys, op);
  if (y.numel() > 0) upsample_nearest(mode, xp, xs, y.data(), ys);
  return y;
}
template <array X>
[[nodiscard]] auto upsample_nearest(const X& x,
                                    const shape_t<detail::upsample::spatial_v<X>>& scale) {
  return upsample_nearest(operation_mode_t<X>{}, x, scale);
}

/// upsample_nearest to an output size that is a positive multiple of x's spatial size (0 where x
/// is empty).
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, array_rank_v<X>> upsample_nearest(
    M mode, const X& x, const upsample_size<detail::upsample::spatial_v<X>>& size) {
  using namespace detail::upsample;
  constexpr std::size_t S = spatial_v<X>;
  const auto xs = as_view(x).shape();
  shape_t<S> scale{};
  for (std::size_t a = 0; a < S; ++a) {
    require<shape_error>(detail::upsample::nearest_multiple(size.value[a], xs[a]),
                         "upsample_nearest: output size ", size.value,
                         " must be a positive multiple of the spatial size of x ", xs);
    scale[a] = xs[a] == 0 ? 1 : size.value[a] / xs[a];
  }
  return upsample_nearest(mode, x, scale);
}
template <array X>
[[nodiscard]] auto upsample_nearest(const X& x,
                                    const upsample_size<detail::upsample::spatial_v<X>>& size) {
  return upsample_nearest(operation_mode_t<X>{}, x, size);
}

/// dx[i] = Σ over the scale block of i of dy (scale = dy's size / x_shape per dimension).
template <operation_mode M, array DY>
[[nodiscard]] upsample_gradients<array_value_t<DY>, array_rank_v<DY>> upsample_nearest_backward(
    M mode, const DY& dy, const shape_t<array_rank_v<DY>>& x_shape) {
  using namespace detail::upsample;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(N >= 3, "lux::upsample_nearest_backward: dy must have rank >= 3");
  constexpr const char* op = "upsample_nearest_backward";
  const T* dyp = data_of(dy, op, "dy");
  const auto dys = as_view(dy).shape();
  check_planes(op, dys, x_shape);
  for (std::size_t a = 0; a + 2 < N; ++a)
    require<shape_error>(nearest_multiple(dys[a], x_shape[a]), op, ": dy ", dys,
                         " is not an integer upsampling of x ", x_shape);
  auto dx = Tensor<T, N>::uninitialized(x_shape, op);
  if (dx.numel() > 0) upsample_nearest_backward(mode, dyp, dys, dx.data(), x_shape);
  return {std::move(dx)};
}
template <array DY>
[[nodiscard]] auto upsample_nearest_backward(const DY& dy,
                                             const shape_t<array_rank_v<DY>>& x_shape) {
  return upsample_nearest_backward(operation_mode_t<DY>{}, dy, x_shape);
}

// =================================================================================================
// upsample_bilinear / upsample_trilinear
// =================================================================================================

/// Bilinear upsampling of x (W, H, C, B) by real scales ≥ 1 (output ⌊scale·in⌋), given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, 4> upsample_bilinear(M mode, const X& x,
                                                            const std::array<double, 2>& scale,
                                                            bool align_corners = true) {
  static_assert(array_rank_v<X> == 4, "lux::upsample_bilinear: x must be (W, H, C, B)");
  const auto ys =
      detail::upsample::linear_shape_from_scale<4>("upsample_bilinear", as_view(x).shape(), scale);
  return detail::upsample::linear_forward(mode, "upsample_bilinear", x, ys, align_corners);
}
template <array X>
[[nodiscard]] auto upsample_bilinear(const X& x, const std::array<double, 2>& scale,
                                     bool align_corners = true) {
  return upsample_bilinear(operation_mode_t<X>{}, x, scale, align_corners);
}
/// Bilinear interpolation of x (W, H, C, B) to the spatial size (OW, OH) ≥ 1, given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, 4> upsample_bilinear(M mode, const X& x,
                                                            const upsample_size<2>& size,
                                                            bool align_corners = true) {
  static_assert(array_rank_v<X> == 4, "lux::upsample_bilinear: x must be (W, H, C, B)");
  auto ys = as_view(x).shape();
  ys[0] = size.value[0];
  ys[1] = size.value[1];
  return detail::upsample::linear_forward(mode, "upsample_bilinear", x, ys, align_corners);
}
template <array X>
[[nodiscard]] auto upsample_bilinear(const X& x, const upsample_size<2>& size,
                                     bool align_corners = true) {
  return upsample_bilinear(operation_mode_t<X>{}, x, size, align_corners);
}
/// The adjoint of upsample_bilinear from x_shape to dy's shape, given mode.
template <operation_mode M, array DY>
[[nodiscard]] upsample_gradients<array_value_t<DY>, 4> upsample_bilinear_backward(
    M mode, const DY& dy, const shape_t<4>& x_shape, bool align_corners = true) {
  static_assert(array_rank_v<DY> == 4, "lux::upsample_bilinear_backward: dy must be (W, H, C, B)");
  return detail::upsample::linear_backward(mode, "upsample_bilinear_backward", dy, x_shape,
                                           align_corners);
}
template <array DY>
[[nodiscard]] auto upsample_bilinear_backward(const DY& dy, const shape_t<4>& x_shape,
                                              bool align_corners = true) {
  return upsample_bilinear_backward(operation_mode_t<DY>{}, dy, x_shape, align_corners);
}

/// Trilinear upsampling of x (W, H, D, C, B) by real scales ≥ 1, given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, 5> upsample_trilinear(M mode, const X& x,
                                                             const std::array<double, 3>& scale,
                                                             bool align_corners = true) {
  static_assert(array_rank_v<X> == 5, "lux::upsample_trilinear: x must be (W, H, D, C, B)");
  const auto ys =
      detail::upsample::linear_shape_from_scale<5>("upsample_trilinear", as_view(x).shape(), scale);
  return detail::upsample::linear_forward(mode, "upsample_trilinear", x, ys, align_corners);
}
template <array X>
[[nodiscard]] auto upsample_trilinear(const X& x, const std::array<double, 3>& scale,
                                      bool align_corners = true) {
  return upsample_trilinear(operation_mode_t<X>{}, x, scale, align_corners);
}
/// Trilinear interpolation of x (W, H, D, C, B) to the spatial size (OW, OH, OD) ≥ 1, given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, 5> upsample_trilinear(M mode, const X& x,
                                                             const upsample_size<3>& size,
                                                             bool align_corners = true) {
  static_assert(array_rank_v<X> == 5, "lux::upsample_trilinear: x must be (W, H, D, C, B)");
  auto ys = as_view(x).shape();
  for (std::size_t a = 0; a < 3; ++a) ys[a] = size.value[a];
  return detail::upsample::linear_forward(mode, "upsample_trilinear", x, ys, align_corners);
}
template <array X>
[[nodiscard]] auto upsample_trilinear(const X& x, const upsample_size<3>& size,
                                      bool align_corners = true) {
  return upsample_trilinear(operation_mode_t<X>{}, x, size, align_corners);
}
/// The adjoint of upsample_trilinear from x_shape to dy's shape, given mode.
template <operation_mode M, array DY>
[[nodiscard]] upsample_gradients<array_value_t<DY>, 5> upsample_trilinear_backward(
    M mode, const DY& dy, const shape_t<5>& x_shape, bool align_corners = true) {
  static_assert(array_rank_v<DY> == 5,
                "lux::upsample_trilinear_backward: dy must be (W, H, D, C, B)");
  return detail::upsample::linear_backward(mode, "upsample_trilinear_backward", dy, x_shape,
                                           align_corners);
}
template <array DY>
[[nodiscard]] auto upsample_trilinear_backward(const DY& dy, const shape_t<5>& x_shape,
                                               bool align_corners = true) {
  return upsample_trilinear_backward(operation_mode_t<DY>{}, dy, x_shape, align_corners);
}

// =================================================================================================
// pixel_shuffle
// =================================================================================================

/// y (r·spatial..., C, B) from x (spatial..., C·r^d, B) (see the file comment), given mode.
template <operation_mode M, array X>
[[nodiscard]] Tensor<array_value_t<X>, array_rank_v<X>> pixel_shuffle(M mode, const X& x,
                                                                      index_t r) {
  using namespace detail::upsample;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(N >= 3, "lux::pixel_shuffle: x must have rank >= 3 (spatial..., C, B)");
  constexpr const char* op = "pixel_shuffle";
  const T* xp = data_of(x, op, "x");
  const auto xs = as_view(x).shape();
  const shape_t<N> ys = shuffled_shape(op, xs, r);
  auto y = Tensor<T, N>::uninitialized(ys, op);
  if (y.numel() > 0) pixel_shuffle(mode, xp, xs, r, y.data());
  return y;
}
template <array X>
[[nodiscard]] auto pixel_shuffle(const X& x, index_t r) {
  return pixel_shuffle(operation_mode_t<X>{}, x, r);
}

/// dx = the inverse permutation of dy (pixel unshuffle): dx (spatial/r..., C·r^d, B), given mode.
template <operation_mode M, array DY>
[[nodiscard]] upsample_gradients<array_value_t<DY>, array_rank_v<DY>> pixel_shuffle_backward(
    M mode, const DY& dy, index_t r) {
  using namespace detail::upsample;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(N >= 3, "lux::pixel_shuffle_backward: dy must have rank >= 3");
  constexpr const char* op = "pixel_shuffle_backward";
  const T* dyp = data_of(dy, op, "dy");
  const auto dys = as_view(dy).shape();
  const shape_t<N> xs = unshuffled_shape(op, dys, r);
  auto dx = Tensor<T, N>::uninitialized(xs, op);
  if (dx.numel() > 0) pixel_shuffle_backward(mode, dyp, xs, r, dx.data());
  return {std::move(dx)};
}
template <array DY>
[[nodiscard]] auto pixel_shuffle_backward(const DY& dy, index_t r) {
  return pixel_shuffle_backward(operation_mode_t<DY>{}, dy, r);
}

LUX_NAMESPACE_END
