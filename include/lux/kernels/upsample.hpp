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

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Types
// =================================================================================================

/// An explicit output size for the spatial dimensions (NNlib's `size` keyword):
///   lux::upsample_nearest(x, lux::upsample_size<2>({64, 48}))   (W first).
template <std::size_t S>
struct upsample_size {
  shape_t<S> value{};
  constexpr explicit upsample_size(const shape_t<S>& v) noexcept : value(v) {}
};
template <std::size_t S>
upsample_size(const shape_t<S>&) -> upsample_size<S>;

/// The gradient of every upsampling / pixel-shuffle backward pass.
template <class T, std::size_t N>
struct upsample_gradients {
  Tensor<T, N> dx;
};

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

// =================================================================================================
// In-place variants (NNlib's upsample_nearest!, ∇upsample_nearest!, …): the output is written
// into a caller-owned contiguous Tensor or TensorView whose shape defines the operation (the scale
// or size is implied by the shapes), and its view is returned. No allocation. shape_error for
// inconsistent shapes, argument_error if the output overlaps the input.
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
