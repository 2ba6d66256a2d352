// luxcpp — NNlib's pooling (what Lux's MaxPool, MeanPool, AdaptiveMaxPool, AdaptiveMeanPool,
// GlobalMaxPool and GlobalMeanPool layers call), forward and backward, for 1, 2 and 3 spatial
// dimensions on (spatial..., C, B) input — PyTorch's (B, C, spatial reversed...) in memory.
//
// Hyperparameters: lux::pool_dims<S> (NNlib's PoolDims), S = rank(x) − 2 spatial dimensions:
//   window k (≥ 1), stride s (≥ 1, default = window), padding (≥ 0; one value, one per dimension
//   (symmetric), or (lo₁, hi₁, …, lo_S, hi_S), NNlib's 2S order), dilation d (≥ 1, default 1):
//       auto pd = lux::pool_dims<2>(3).with_stride(2).with_pad(1);
//   Output size per spatial dimension (NNlib, PyTorch with ceil_mode = false):
//       O = floor((I + lo + hi − d·(k − 1) − 1) / s) + 1
//   The dilated window d·(k − 1) + 1 must fit in the padded input I + lo + hi (else
//   lux::shape_error); k, s, d < 1 or a negative padding are lux::argument_error.
//
// Forward, per (channel, batch) plane, with i = o·s − lo + k·d the input index of tap k:
//   maxpool:  y[o] = max over in-bounds taps of x[i]. Padding cells are −∞ (never chosen); a window
//             lying wholly in the padding gives −∞. NaN propagates.
//   meanpool: y[o] = (Σ over in-bounds taps of x[i]) / (k₁·k₂·…): padding COUNTS as zeros in the
//             divisor — NNlib's and Lux's meanpool, PyTorch's avg_pool with
//             count_include_pad = true. Dilation is allowed (NNlib) and still divides by ∏k.
//   adaptive_*pool(x, out): Lux's AdaptiveMaxPool/AdaptiveMeanPool, i.e. the windowed pooling with
//             stride = in ÷ out, k = in − (out − 1)·stride, no padding (1 ≤ out ≤ in, else
//             shape_error). This equals PyTorch's adaptive pooling when out divides in; when it
//             does not, PyTorch uses overlapping variable windows [⌊o·in/out⌋, ⌈(o+1)·in/out⌉)
//             and the results differ — Lux's definition is the one implemented here.
//   global_*pool(x): the window is the whole spatial extent; y has shape (1, …, 1, C, B).
//
// Max pooling tie rule (NNlib's ∇maxpool picks the first maximum; PyTorch's CPU kernel too): taps
// are visited in column-major window order — k₁ (W) fastest, then k₂, then k₃ — and the first
// maximum wins; if a window holds NaN the first NaN wins. The gradient of y[o] goes entirely to
// that tap. maxpool_with_argmax returns the chosen tap of every output as an int32 linear index
// into its (spatial) plane of x (−1 for a window wholly in the padding: no gradient); the
// backward from it is a scatter (no recomputation), which checks every argmax value against the
// plane of x (or of the dx given) as it scatters: an index outside [−1, plane) is skipped, never
// written out of bounds, and the call then throws argument_error (the in-place form's dx holds
// unspecified values then). maxpool_backward(dy, x, pd) recomputes the
// argmax from x: same result, one more pass over x. (NNlib's ∇maxpool(dy, y, x, pdims) also takes
// y, which the argmax recomputation does not need.)
//
// Backward (vector–Jacobian products):
//   maxpool:  dx[i] = Σ_{o : argmax(o) = i} dy[o]
//   meanpool: dx[i] = Σ_{o : i in window(o)} dy[o] / ∏k
//
// Public API (every function also has an overload taking the mode tag first, e.g.
// lux::maxpool(lux::generic_op{}, x, pd)):
//   maxpool(x, pd) → Tensor                      maxpool_with_argmax(x, pd) → maxpool_result
//   maxpool_backward(dy, x, pd) → {dx}           maxpool_backward(dy, saved) → {dx}
//   meanpool(x, pd) → Tensor                     meanpool_backward(dy, x_shape, pd) → {dx}
//   adaptive_maxpool(x, out) → Tensor            adaptive_maxpool_backward(dy, x, out) → {dx}
//   adaptive_meanpool(x, out) → Tensor           adaptive_meanpool_backward(dy, x_shape, out)
//   global_maxpool(x) → Tensor                   global_maxpool_backward(dy, x) → {dx}
//   global_meanpool(x) → Tensor                  global_meanpool_backward(dy, x_shape) → {dx}
//   pool_output_shape(x_shape, pd), adaptive_pool_dims(x_shape, out), global_pool_dims(x_shape)
// In-place (no allocation; the output is a caller-owned Tensor or contiguous view of the right
// shape, returned as a view; NNlib's maxpool!, ∇maxpool!, …):
//   maxpool_(y, x, pd)                     maxpool_with_argmax_(y, argmax, x, pd)
//   maxpool_backward_(dx, dy, argmax)      meanpool_(y, x, pd)
//   meanpool_backward_(dx, dy, pd)
// x may be a Tensor or a view (a StridedView must be contiguous at run time: shape_error).
// rank(x) ≠ S + 2 is a compile-time error (ranks are template arguments).
//
// Modes: generic_op (lux/kernels/generic/pooling.hpp, any element type) and looped_op
// (lux/kernels/looped/pooling.hpp: OpenMP over planes, vectorized passes over output rows; float
// and double). Accuracy (tests/kernels/test_pooling.cpp): max pooling, its argmax and both max
// pool backward passes are exact and mode-independent; mean pooling and its backward agree with
// a float64 reference to a few ulp of the window sum (≤ 1e-6 relative for float in the tests).
//
// Files: this one holds the allocating public functions; ./pooling/inplace.hpp the in-place
// variants, ./pooling/types.hpp the argument and result types (pool_dims, maxpool_saved, …) and
// ./pooling/detail.hpp the argument checks and geometry they share.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/pooling.hpp"
#include "lux/kernels/looped/pooling.hpp"
#include "lux/kernels/pooling/detail.hpp"
#include "lux/kernels/pooling/inplace.hpp"
#include "lux/kernels/pooling/types.hpp"

LUX_NAMESPACE_BEGIN

/// The output shape of pooling x_shape with pd (validates like the kernels: op
/// "pool_output_shape").
template <std::size_t N, std::size_t S>
shape_t<N> pool_output_shape(const shape_t<N>& x_shape, const pool_dims<S>& pd) {
  return detail::pool::output_shape(detail::pool::geometry("pool_output_shape", x_shape, pd),
                                    x_shape);
}

/// Lux's adaptive pooling window: stride = in ÷ out, k = in − (out − 1)·stride, no padding.
/// shape_error unless 1 ≤ out ≤ in in every spatial dimension.
template <std::size_t N>
pool_dims<N - 2> adaptive_pool_dims(const shape_t<N>& x_shape, const shape_t<N - 2>& out_size,
                                    const char* op = "adaptive_pool_dims") {
  static_assert(N >= 3 && N <= 5, "lux adaptive pooling: x must have rank 3, 4 or 5");
  shape_t<N - 2> k{}, s{};
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(out_size[a] >= 1 && out_size[a] <= x_shape[a], op, ": output size ",
                         out_size, " must be between 1 and the spatial size of x ", x_shape,
                         " in every dimension");
    s[a] = x_shape[a] / out_size[a];
    k[a] = x_shape[a] - (out_size[a] - 1) * s[a];
  }
  return pool_dims<N - 2>(k).with_stride(s);
}

/// The global pooling window: the whole spatial extent (shape_error for an empty one).
template <std::size_t N>
pool_dims<N - 2> global_pool_dims(const shape_t<N>& x_shape, const char* op = "global_pool_dims") {
  static_assert(N >= 3 && N <= 5, "lux global pooling: x must have rank 3, 4 or 5");
  shape_t<N - 2> k{};
  for (std::size_t a = 0; a + 2 < N; ++a) {
    require<shape_error>(x_shape[a] >= 1, op, ": x ", x_shape, " has an empty spatial dimension");
    k[a] = x_shape[a];
  }
  return pool_dims<N - 2>(k);
}

// =================================================================================================
// maxpool
// =================================================================================================

/// y = max over each window (see the file comment), in the given mode.
template <operation_mode M, array X, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, array_rank_v<X>> maxpool(M mode, const X& x,
                                                                const pool_dims<S>& pd) {
  return detail::pool::maxpool_op(mode, "maxpool", x, pd);
}
template <array X, std::size_t S>
[[nodiscard]] auto maxpool(const X& x, const pool_dims<S>& pd) {
  return maxpool(operation_mode_t<X>{}, x, pd);
}

/// maxpool that also returns the argmax of every output for maxpool_backward(dy, saved).
template <operation_mode M, array X, std::size_t S>
[[nodiscard]] maxpool_result<array_value_t<X>, array_rank_v<X>> maxpool_with_argmax(
    M mode, const X& x, const pool_dims<S>& pd) {
  using namespace detail::pool;
  check_rank<array_rank_v<X>, S>();
  const auto* xp = data_of(x, "maxpool_with_argmax", "x");
  const auto xs = as_view(x).shape();
  return maxpool_argmax(mode, "maxpool_with_argmax", xp, xs,
                        geometry("maxpool_with_argmax", xs, pd));
}
template <array X, std::size_t S>
[[nodiscard]] auto maxpool_with_argmax(const X& x, const pool_dims<S>& pd) {
  return maxpool_with_argmax(operation_mode_t<X>{}, x, pd);
}

/// dx: dy[o] routed to the first maximum of window o (recomputed from x), in the given mode.
template <operation_mode M, array DY, array X, std::size_t S>
[[nodiscard]] pooling_gradients<array_value_t<X>, array_rank_v<X>> maxpool_backward(
    M mode, const DY& dy, const X& x, const pool_dims<S>& pd) {
  return detail::pool::maxpool_backward_op(mode, "maxpool_backward", dy, x, pd);
}
template <array DY, array X, std::size_t S>
[[nodiscard]] auto maxpool_backward(const DY& dy, const X& x, const pool_dims<S>& pd) {
  return maxpool_backward(operation_mode_t<DY, X>{}, dy, x, pd);
}

/// dx: dy[o] scattered to saved.argmax[o] (saved from maxpool_with_argmax), in the given mode.
template <operation_mode M, array DY, std::size_t N>
[[nodiscard]] pooling_gradients<array_value_t<DY>, N> maxpool_backward(
    M mode, const DY& dy, const maxpool_saved<N>& saved) {
  using namespace detail::pool;
  using T = array_value_t<DY>;
  static_assert(array_rank_v<DY> == N && N >= 3,
                "lux::maxpool_backward: dy must have saved's rank");
  constexpr const char* op = "maxpool_backward";
  const T* dyp = data_of(dy, op, "dy");
  const auto& xs = saved.x_shape;
  const impl::pool_geometry g =
      scatter_geometry(op, as_view(dy).shape(), saved.argmax.shape(), xs, "x");
  auto dx = Tensor<T, N>::uninitialized(xs, op);
  check_scatter(op, maxpool_backward(mode, g, dyp, saved.argmax.data(), dx.data()), g, xs, "x");
  return {std::move(dx)};
}
template <array DY, std::size_t N>
[[nodiscard]] auto maxpool_backward(const DY& dy, const maxpool_saved<N>& saved) {
  return maxpool_backward(operation_mode_t<DY>{}, dy, saved);
}

// =================================================================================================
// meanpool
// =================================================================================================

/// y = (Σ in-bounds taps) / ∏k (padding counts), in the given mode.
template <operation_mode M, array X, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, array_rank_v<X>> meanpool(M mode, const X& x,
                                                                 const pool_dims<S>& pd) {
  return detail::pool::meanpool_op(mode, "meanpool", x, pd);
}
template <array X, std::size_t S>
[[nodiscard]] auto meanpool(const X& x, const pool_dims<S>& pd) {
  return meanpool(operation_mode_t<X>{}, x, pd);
}

/// dx[i] = Σ_{windows o containing i} dy[o] / ∏k, in the given mode.
template <operation_mode M, array DY, std::size_t S>
[[nodiscard]] pooling_gradients<array_value_t<DY>, array_rank_v<DY>> meanpool_backward(
    M mode, const DY& dy, const shape_t<array_rank_v<DY>>& x_shape, const pool_dims<S>& pd) {
  return detail::pool::meanpool_backward_op(mode, "meanpool_backward", dy, x_shape, pd);
}
template <array DY, std::size_t S>
[[nodiscard]] auto meanpool_backward(const DY& dy, const shape_t<array_rank_v<DY>>& x_shape,
                                     const pool_dims<S>& pd) {
  return meanpool_backward(operation_mode_t<DY>{}, dy, x_shape, pd);
}

// =================================================================================================
// adaptive and global pooling (windowed pooling with derived pool_dims)
// =================================================================================================

/// Lux's AdaptiveMaxPool: maxpool with adaptive_pool_dims(x, out_size), in the given mode.
template <operation_mode M, array X>
[[nodiscard]] auto adaptive_maxpool(M mode, const X& x,
                                    const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return detail::pool::maxpool_op(
      mode, "adaptive_maxpool", x,
      adaptive_pool_dims(as_view(x).shape(), out_size, "adaptive_maxpool"));
}
template <array X>
[[nodiscard]] auto adaptive_maxpool(const X& x,
                                    const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return adaptive_maxpool(operation_mode_t<X>{}, x, out_size);
}
template <operation_mode M, array DY, array X>
[[nodiscard]] auto adaptive_maxpool_backward(M mode, const DY& dy, const X& x,
                                             const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return detail::pool::maxpool_backward_op(
      mode, "adaptive_maxpool_backward", dy, x,
      adaptive_pool_dims(as_view(x).shape(), out_size, "adaptive_maxpool_backward"));
}
template <array DY, array X>
[[nodiscard]] auto adaptive_maxpool_backward(const DY& dy, const X& x,
                                             const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return adaptive_maxpool_backward(operation_mode_t<DY, X>{}, dy, x, out_size);
}

/// Lux's AdaptiveMeanPool: meanpool with adaptive_pool_dims(x, out_size), in the given mode.
template <operation_mode M, array X>
[[nodiscard]] auto adaptive_meanpool(M mode, const X& x,
                                     const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return detail::pool::meanpool_op(
      mode, "adaptive_meanpool", x,
      adaptive_pool_dims(as_view(x).shape(), out_size, "adaptive_meanpool"));
}
template <array X>
[[nodiscard]] auto adaptive_meanpool(const X& x,
                                     const shape_t<detail::pool::spatial_v<X>>& out_size) {
  return adaptive_meanpool(operation_mode_t<X>{}, x, out_size);
}
template <operation_mode M, array DY>
[[nodiscard]] auto adaptive_meanpool_backward(
    M mode, const DY& dy, const shape_t<array_rank_v<DY>>& x_shape,
    const shape_t<detail::pool::spatial_v<DY>>& out_size) {
  return detail::pool::meanpool_backward_op(
      mode, "adaptive_meanpool_backward", dy, x_shape,
      adaptive_pool_dims(x_shape, out_size, "adaptive_meanpool_backward"));
}
template <array DY>
[[nodiscard]] auto adaptive_meanpool_backward(
    const DY& dy, const shape_t<array_rank_v<DY>>& x_shape,
    const shape_t<detail::pool::spatial_v<DY>>& out_size) {
  return adaptive_meanpool_backward(operation_mode_t<DY>{}, dy, x_shape, out_size);
}

/// Lux's GlobalMaxPool: y (1, …, 1, C, B) = the maximum of every plane, in the given mode.
template <operation_mode M, array X>
[[nodiscard]] auto global_maxpool(M mode, const X& x) {
  return detail::pool::maxpool_op(mode, "global_maxpool", x,
                                  global_pool_dims(as_view(x).shape(), "global_maxpool"));
}
template <array X>
[[nodiscard]] auto global_maxpool(const X& x) {
  return global_maxpool(operation_mode_t<X>{}, x);
}
template <operation_mode M, array DY, array X>
[[nodiscard]] auto global_maxpool_backward(M mode, const DY& dy, const X& x) {
  return detail::pool::maxpool_backward_op(
      mode, "global_maxpool_backward", dy, x,
      global_pool_dims(as_view(x).shape(), "global_maxpool_backward"));
}
template <array DY, array X>
[[nodiscard]] auto global_maxpool_backward(const DY& dy, const X& x) {
  return global_maxpool_backward(operation_mode_t<DY, X>{}, dy, x);
}

/// Lux's GlobalMeanPool: y (1, …, 1, C, B) = the mean of every plane, in the given mode.
template <operation_mode M, array X>
[[nodiscard]] auto global_meanpool(M mode, const X& x) {
  return detail::pool::meanpool_op(mode, "global_meanpool", x,
                                   global_pool_dims(as_view(x).shape(), "global_meanpool"));
}
template <array X>
[[nodiscard]] auto global_meanpool(const X& x) {
  return global_meanpool(operation_mode_t<X>{}, x);
}
template <operation_mode M, array DY>
[[nodiscard]] auto global_meanpool_backward(M mode, const DY& dy,
                                            const shape_t<array_rank_v<DY>>& x_shape) {
  return detail::pool::meanpool_backward_op(mode, "global_meanpool_backward", dy, x_shape,
                                            global_pool_dims(x_shape, "global_meanpool_backward"));
}
template <array DY>
[[nodiscard]] auto global_meanpool_backward(const DY& dy,
                                            const shape_t<array_rank_v<DY>>& x_shape) {
  return global_meanpool_backward(operation_mode_t<DY>{}, dy, x_shape);
}

LUX_NAMESPACE_END
