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

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Types
// =================================================================================================

/// NNlib's PoolDims for S spatial dimensions: window, stride (default = window), padding
/// (lo, hi per dimension, NNlib's 2S order), dilation (default 1). Build it with the `with_*`
/// functions, which return modified copies:
///   lux::pool_dims<2>({3, 3}).with_stride(2).with_pad_lo_hi({0, 1, 0, 1})
template <std::size_t S>
struct pool_dims {
  static_assert(S >= 1 && S <= 3, "lux::pool_dims: pooling has 1, 2 or 3 spatial dimensions");

  shape_t<S> window{};
  shape_t<S> stride{};
  std::array<index_t, 2 * S> pad{};  ///< (lo₁, hi₁, lo₂, hi₂, …)
  shape_t<S> dilation{};

  /// Window k per dimension; stride = k, no padding, dilation 1.
  constexpr explicit pool_dims(const shape_t<S>& k) noexcept : window(k), stride(k) {
    dilation.fill(1);
  }
  /// The same window k along every spatial dimension.
  constexpr explicit pool_dims(index_t k) noexcept {
    window.fill(k);
    stride.fill(k);
    dilation.fill(1);
  }

  constexpr pool_dims with_stride(index_t s) const noexcept {
    pool_dims p = *this;
    p.stride.fill(s);
    return p;
  }
  constexpr pool_dims with_stride(const shape_t<S>& s) const noexcept {
    pool_dims p = *this;
    p.stride = s;
    return p;
  }
  /// The same padding on both sides of every spatial dimension.
  constexpr pool_dims with_pad(index_t v) const noexcept {
    pool_dims p = *this;
    p.pad.fill(v);
    return p;
  }
  /// Symmetric padding per dimension: lo = hi = v[a].
  constexpr pool_dims with_pad(const shape_t<S>& v) const noexcept {
    pool_dims p = *this;
    for (std::size_t a = 0; a < S; ++a) p.pad[2 * a] = p.pad[2 * a + 1] = v[a];
    return p;
  }
  /// Asymmetric padding (lo₁, hi₁, lo₂, hi₂, …).
  constexpr pool_dims with_pad_lo_hi(const std::array<index_t, 2 * S>& v) const noexcept {
    pool_dims p = *this;
    p.pad = v;
    return p;
  }
  constexpr pool_dims with_dilation(index_t d) const noexcept {
    pool_dims p = *this;
    p.dilation.fill(d);
    return p;
  }
  constexpr pool_dims with_dilation(const shape_t<S>& d) const noexcept {
    pool_dims p = *this;
    p.dilation = d;
    return p;
  }

  constexpr index_t pad_lo(std::size_t a) const noexcept { return pad[2 * a]; }
  constexpr index_t pad_hi(std::size_t a) const noexcept { return pad[2 * a + 1]; }
  constexpr bool operator==(const pool_dims&) const noexcept = default;
};

/// What maxpool_backward(dy, saved) needs: the argmax of every output (int32 index into the
/// output's spatial plane of x, −1 for a window of padding only) and x's shape.
template <std::size_t N>
struct maxpool_saved {
  Tensor<std::int32_t, N> argmax;
  shape_t<N> x_shape{};
};

/// The result of maxpool_with_argmax.
template <class T, std::size_t N>
struct maxpool_result {
  Tensor<T, N> y;
  maxpool_saved<N> saved;
};

/// The gradient of every pooling backward pass.
template <class T, std::size_t N>
struct pooling_gradients {
  Tensor<T, N> dx;
};

// =================================================================================================
// Helpers
// =================================================================================================

namespace detail::pool {
template <class X>
inline constexpr std::size_t spatial_v = array_rank_v<X> >= 2 ? array_rank_v<X> - 2 : 1;

/// The mutable data pointer of a contiguous destination array (shape_error if not contiguous).
template <class Y>
array_value_t<Y>* mutable_data_of(Y&& y, const char* op, const char* name) {
  auto v = as_view(y);
  static_assert(!std::is_const_v<std::remove_pointer_t<decltype(v.data())>>,
                "lux pooling: the destination of an in-place kernel must be mutable");
  if constexpr (!array_traits_t<Y>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}

/// argument_error when two buffers overlap (in-place kernels never work on their own input).
inline void check_disjoint(const char* op, const void* a, std::size_t abytes, const char* aname,
                           const void* b, std::size_t bbytes, const char* bname) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a), pb = reinterpret_cast<std::uintptr_t>(b);
  require<argument_error>(abytes == 0 || bbytes == 0 || pa + abytes <= pb || pb + bbytes <= pa, op,
                          ": ", aname, " and ", bname,
                          " overlap; the output must be a separate "
                          "buffer");
}

template <std::size_t N, std::size_t S>
constexpr void check_rank() {
  static_assert(N == S + 2,
                "lux pooling: x must have rank S + 2, (spatial..., C, B), for pool_dims<S>");
}

/// The data pointer of a contiguous array argument (shape_error for a non-contiguous view).
template <class X>
const array_value_t<X>* data_of(const X& x, const char* op, const char* name) {
  const auto v = as_view(x);
  if constexpr (!array_traits_t<X>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}

/// Validates pd against x's shape and returns the geometry (spatial dims padded to three).
template <std::size_t N, std::size_t S>
impl::pool_geometry geometry(const char* op, const shape_t<N>& xs, const pool_dims<S>& pd) {
  check_rank<N, S>();
  for (std::size_t a = 0; a < S; ++a) {
    require<argument_error>(pd.window[a] >= 1, op, ": window must be >= 1 in every dimension, got ",
                            pd.window);
    require<argument_error>(pd.stride[a] >= 1, op, ": stride must be >= 1 in every dimension, got ",
                            pd.stride);
    require<argument_error>(pd.dilation[a] >= 1, op,
                            ": dilation must be >= 1 in every dimension, got ", pd.dilation);
    require<argument_error>(pd.pad_lo(a) >= 0 && pd.pad_hi(a) >= 0, op,
                            ": padding must be >= 0, got ", pd.pad);
  }
  for (std::size_t a = 0; a < N; ++a)
    require<shape_error>(xs[a] >= 0, op, ": x has a negative size: ", xs);
  shape_numel(xs, op);  // x_shape may be a value: no overflowing product either
  impl::pool_geometry g;
  for (std::size_t a = 0; a < S; ++a) {
    const index_t extent = checked_add(
        checked_mul(pd.dilation[a], pd.window[a] - 1, op, "the dilated window d·(k − 1) + 1"), 1,
        op, "the dilated window d·(k − 1) + 1");
    const index_t padded =
        checked_add(checked_add(xs[a], pd.pad_lo(a), op, "the padded input size"), pd.pad_hi(a), op,
                    "the padded input size");
    require<shape_error>(extent <= padded, op, ": window ", pd.window, " with dilation ",
                         pd.dilation, " spans ", extent, " elements along spatial dimension ", a,
                         ", more than x ", xs, " padded by ", pd.pad, " has (", padded, ")");
    g.in[a] = xs[a];
    g.out[a] = (padded - extent) / pd.stride[a] + 1;
    g.window[a] = pd.window[a];
    g.stride[a] = pd.stride[a];
    g.dilation[a] = pd.dilation[a];
    g.pad_lo[a] = pd.pad_lo(a);
  }
  g.planes = xs[N - 2] * xs[N - 1];
  shape_t<N> ys = xs;  // the output must be addressable (a large padding can make it huge)
  for (std::size_t a = 0; a < S; ++a) ys[a] = g.out[a];
  shape_numel(ys, op);
  index_t taps = 1;  // meanpool divides by the window's size ∏k
  for (std::size_t a = 0; a < S; ++a) taps = checked_mul(taps, pd.window[a], op, "the window size");
  return g;
}

template <std::size_t N>
shape_t<N> output_shape(const impl::pool_geometry& g, const shape_t<N>& xs) {
  shape_t<N> ys = xs;
  for (std::size_t a = 0; a + 2 < N; ++a) ys[a] = g.out[a];
  return ys;
}

template <std::size_t N>
void check_argmax_range(const char* op, const shape_t<N>& xs, const impl::pool_geometry& g) {
  require<shape_error>(g.in_plane() <= std::numeric_limits<std::int32_t>::max(), op,
                       ": a spatial plane of x ", xs,
                       " has more than 2^31 - 1 elements; the int32 argmax cannot index it");
}

/// The geometry of the argmax scatter dx[p][argmax[p][o]] += dy[p][o] (maxpool_backward from a
/// saved argmax), after validating the shapes it indexes with: x's, dy against argmax and against
/// x in the channel and batch dimensions. The argmax values themselves are checked by the
/// scatter as it goes (a value outside [−1, plane of x) is skipped, then check_scatter throws),
/// so a tampered argmax or a dx smaller than the forward's input throws instead of writing out
/// of bounds, without a separate pass over argmax.
template <std::size_t N>
impl::pool_geometry scatter_geometry(const char* op, const shape_t<N>& dys,
                                     const shape_t<N>& argmax_shape, const shape_t<N>& xs,
                                     const char* x_name) {
  shape_numel(xs, op);
  require<shape_error>(dys == argmax_shape, op, ": dy has shape ", dys,
                       ", expected the shape of argmax ", argmax_shape);
  require<shape_error>(dys[N - 2] == xs[N - 2] && dys[N - 1] == xs[N - 1], op, ": dy ", dys,
                       " and ", x_name, " ", xs, " differ in the channel or batch dimension");
  impl::pool_geometry g;
  for (std::size_t a = 0; a + 2 < N; ++a) {
    g.in[a] = xs[a];
    g.out[a] = dys[a];
  }
  g.planes = xs[N - 2] * xs[N - 1];
  return g;
}

/// Throws when the scatter met an argmax outside [−1, plane of x) (`bad`, from maxpool_backward).
template <std::size_t N>
void check_scatter(const char* op, std::int64_t bad, const impl::pool_geometry& g,
                   const shape_t<N>& xs, const char* x_name) {
  require<argument_error>(bad == impl::argmax_valid, op, ": argmax holds the index ", bad,
                          ", outside [-1, ", g.in_plane(), ") for the plane of ", x_name, " ", xs,
                          " (argmax must come from maxpool_with_argmax of an x of this shape)");
}

template <std::size_t N>
void check_dy(const char* op, const shape_t<N>& dys, const shape_t<N>& expected,
              const shape_t<N>& xs) {
  require<shape_error>(dys == expected, op, ": dy has shape ", dys, ", expected ", expected,
                       " (the pooled shape of x ", xs, ")");
}

template <class T, std::size_t N, class Mode>
maxpool_result<T, N> maxpool_argmax(Mode mode, const char* op, const T* x, const shape_t<N>& xs,
                                    const impl::pool_geometry& g) {
  check_argmax_range(op, xs, g);
  const shape_t<N> ys = output_shape(g, xs);
  auto y = Tensor<T, N>::uninitialized(ys, op);
  auto argmax = Tensor<std::int32_t, N>::uninitialized(ys, op);
  maxpool(mode, g, x, y.data(), argmax.data());
  return {std::move(y), {std::move(argmax), xs}};
}
}  // namespace detail::pool

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

namespace detail::pool {
template <class M, class X, std::size_t S>
Tensor<array_value_t<X>, array_rank_v<X>> maxpool_op(M mode, const char* op, const X& x,
                                                     const pool_dims<S>& pd) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  check_rank<N, S>();
  const T* xp = data_of(x, op, "x");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  auto y = Tensor<T, N>::uninitialized(output_shape(g, xs), op);
  maxpool(mode, g, xp, y.data(), static_cast<std::int32_t*>(nullptr));
  return y;
}

template <class M, class DY, class X, std::size_t S>
pooling_gradients<array_value_t<X>, array_rank_v<X>> maxpool_backward_op(M mode, const char* op,
                                                                         const DY& dy, const X& x,
                                                                         const pool_dims<S>& pd) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(std::is_same_v<array_value_t<DY>, T> && array_rank_v<DY> == N,
                "lux::maxpool_backward: dy must have x's element type and rank");
  check_rank<N, S>();
  const T* xp = data_of(x, op, "x");
  const T* dyp = data_of(dy, op, "dy");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  check_dy(op, as_view(dy).shape(), output_shape(g, xs), xs);
  const auto fwd = maxpool_argmax<T, N>(mode, op, xp, xs, g);
  auto dx = Tensor<T, N>::uninitialized(xs, op);
  // The argmax was computed here from x: always valid.
  (void)maxpool_backward(mode, g, dyp, fwd.saved.argmax.data(), dx.data());
  return {std::move(dx)};
}

template <class M, class X, std::size_t S>
Tensor<array_value_t<X>, array_rank_v<X>> meanpool_op(M mode, const char* op, const X& x,
                                                      const pool_dims<S>& pd) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  check_rank<N, S>();
  const T* xp = data_of(x, op, "x");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  auto y = Tensor<T, N>::uninitialized(output_shape(g, xs), op);
  meanpool(mode, g, xp, y.data());
  return y;
}

template <class M, class DY, std::size_t S>
pooling_gradients<array_value_t<DY>, array_rank_v<DY>> meanpool_backward_op(
    M mode, const char* op, const DY& dy, const shape_t<array_rank_v<DY>>& x_shape,
    const pool_dims<S>& pd) {
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  check_rank<N, S>();
  const T* dyp = data_of(dy, op, "dy");
  const impl::pool_geometry g = geometry(op, x_shape, pd);
  check_dy(op, as_view(dy).shape(), output_shape(g, x_shape), x_shape);
  auto dx = Tensor<T, N>::uninitialized(x_shape, op);
  meanpool_backward(mode, g, dyp, dx.data());
  return {std::move(dx)};
}
}  // namespace detail::pool

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

// =================================================================================================
// In-place variants (NNlib's maxpool!, meanpool!, ∇maxpool!, ∇meanpool!): the output is written
// into a caller-owned contiguous Tensor or TensorView of exactly the right shape (shape_error
// otherwise; argument_error if it overlaps an input), and its view is returned. No allocation.
// =================================================================================================

/// y = maxpool(x, pd) written into y, in the given mode.
template <operation_mode M, array Y, array X, std::size_t S>
TensorView<array_value_t<X>, array_rank_v<X>> maxpool_(M mode, Y&& y, const X& x,
                                                       const pool_dims<S>& pd) {
  using namespace detail::pool;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux::maxpool_: y must have x's element type and rank");
  check_rank<N, S>();
  constexpr const char* op = "maxpool_";
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  const auto ys = output_shape(g, xs);
  require<shape_error>(as_view(y).shape() == ys, op, ": y has shape ", as_view(y).shape(),
                       ", expected ", ys, " (the pooled shape of x ", xs, ")");
  check_disjoint(op, yp, sizeof(T) * as_view(y).numel(), "y", xp, sizeof(T) * as_view(x).numel(),
                 "x");
  maxpool(mode, g, xp, yp, static_cast<std::int32_t*>(nullptr));
  return TensorView<T, N>(yp, ys);
}
template <array Y, array X, std::size_t S>
auto maxpool_(Y&& y, const X& x, const pool_dims<S>& pd) {
  return maxpool_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x, pd);
}

/// maxpool_ that also writes the argmax (int32, the shape of y) for maxpool_backward_.
template <operation_mode M, array Y, array A, array X, std::size_t S>
TensorView<array_value_t<X>, array_rank_v<X>> maxpool_with_argmax_(M mode, Y&& y, A&& argmax,
                                                                   const X& x,
                                                                   const pool_dims<S>& pd) {
  using namespace detail::pool;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux::maxpool_with_argmax_: y must have x's element type and rank");
  static_assert(std::is_same_v<array_value_t<A>, std::int32_t> && array_rank_v<A> == N,
                "lux::maxpool_with_argmax_: argmax must be an int32 array of x's rank");
  check_rank<N, S>();
  constexpr const char* op = "maxpool_with_argmax_";
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  std::int32_t* ap = mutable_data_of(argmax, op, "argmax");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  check_argmax_range(op, xs, g);
  const auto ys = output_shape(g, xs);
  require<shape_error>(as_view(y).shape() == ys && as_view(argmax).shape() == ys, op,
                       ": y has shape ", as_view(y).shape(), " and argmax ",
                       as_view(argmax).shape(), ", expected ", ys, " (the pooled shape of x ", xs,
                       ")");
  const auto xbytes = sizeof(T) * as_view(x).numel();
  check_disjoint(op, yp, sizeof(T) * as_view(y).numel(), "y", xp, xbytes, "x");
  check_disjoint(op, ap, 4 * as_view(argmax).numel(), "argmax", xp, xbytes, "x");
  check_disjoint(op, ap, 4 * as_view(argmax).numel(), "argmax", yp, sizeof(T) * as_view(y).numel(),
                 "y");
  maxpool(mode, g, xp, yp, ap);
  return TensorView<T, N>(yp, ys);
}
template <array Y, array A, array X, std::size_t S>
auto maxpool_with_argmax_(Y&& y, A&& argmax, const X& x, const pool_dims<S>& pd) {
  return maxpool_with_argmax_(operation_mode_t<Y, X>{}, std::forward<Y>(y), std::forward<A>(argmax),
                              x, pd);
}

/// dx (x's shape) = dy scattered to the argmax written by maxpool_with_argmax_, given mode.
template <operation_mode M, array DX, array DY, array A>
TensorView<array_value_t<DY>, array_rank_v<DY>> maxpool_backward_(M mode, DX&& dx, const DY& dy,
                                                                  const A& argmax) {
  using namespace detail::pool;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(std::is_same_v<array_value_t<DX>, T> && array_rank_v<DX> == N && N >= 3,
                "lux::maxpool_backward_: dx must have dy's element type and rank");
  static_assert(std::is_same_v<array_value_t<A>, std::int32_t> && array_rank_v<A> == N,
                "lux::maxpool_backward_: argmax must be an int32 array of dy's rank");
  constexpr const char* op = "maxpool_backward_";
  const T* dyp = data_of(dy, op, "dy");
  const std::int32_t* ap = data_of(argmax, op, "argmax");
  T* dxp = mutable_data_of(dx, op, "dx");
  const auto xs = as_view(dx).shape();
  const impl::pool_geometry g =
      scatter_geometry(op, as_view(dy).shape(), as_view(argmax).shape(), xs, "dx");
  check_disjoint(op, dxp, sizeof(T) * as_view(dx).numel(), "dx", dyp,
                 sizeof(T) * as_view(dy).numel(), "dy");
  check_disjoint(op, dxp, sizeof(T) * as_view(dx).numel(), "dx", ap, 4 * as_view(argmax).numel(),
                 "argmax");
  check_scatter(op, maxpool_backward(mode, g, dyp, ap, dxp), g, xs, "dx");
  return TensorView<T, N>(dxp, xs);
}
template <array DX, array DY, array A>
auto maxpool_backward_(DX&& dx, const DY& dy, const A& argmax) {
  return maxpool_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy, argmax);
}

/// y = meanpool(x, pd) written into y, in the given mode.
template <operation_mode M, array Y, array X, std::size_t S>
TensorView<array_value_t<X>, array_rank_v<X>> meanpool_(M mode, Y&& y, const X& x,
                                                        const pool_dims<S>& pd) {
  using namespace detail::pool;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  static_assert(std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == N,
                "lux::meanpool_: y must have x's element type and rank");
  check_rank<N, S>();
  constexpr const char* op = "meanpool_";
  const T* xp = data_of(x, op, "x");
  T* yp = mutable_data_of(y, op, "y");
  const auto xs = as_view(x).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  const auto ys = output_shape(g, xs);
  require<shape_error>(as_view(y).shape() == ys, op, ": y has shape ", as_view(y).shape(),
                       ", expected ", ys, " (the pooled shape of x ", xs, ")");
  check_disjoint(op, yp, sizeof(T) * as_view(y).numel(), "y", xp, sizeof(T) * as_view(x).numel(),
                 "x");
  meanpool(mode, g, xp, yp);
  return TensorView<T, N>(yp, ys);
}
template <array Y, array X, std::size_t S>
auto meanpool_(Y&& y, const X& x, const pool_dims<S>& pd) {
  return meanpool_(operation_mode_t<Y, X>{}, std::forward<Y>(y), x, pd);
}

/// dx (x's shape, the shape of the dx given) = the mean-pool VJP of dy, in the given mode.
template <operation_mode M, array DX, array DY, std::size_t S>
TensorView<array_value_t<DY>, array_rank_v<DY>> meanpool_backward_(M mode, DX&& dx, const DY& dy,
                                                                   const pool_dims<S>& pd) {
  using namespace detail::pool;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(std::is_same_v<array_value_t<DX>, T> && array_rank_v<DX> == N,
                "lux::meanpool_backward_: dx must have dy's element type and rank");
  check_rank<N, S>();
  constexpr const char* op = "meanpool_backward_";
  const T* dyp = data_of(dy, op, "dy");
  T* dxp = mutable_data_of(dx, op, "dx");
  const auto xs = as_view(dx).shape();
  const impl::pool_geometry g = geometry(op, xs, pd);
  check_dy(op, as_view(dy).shape(), output_shape(g, xs), xs);
  check_disjoint(op, dxp, sizeof(T) * as_view(dx).numel(), "dx", dyp,
                 sizeof(T) * as_view(dy).numel(), "dy");
  meanpool_backward(mode, g, dyp, dxp);
  return TensorView<T, N>(dxp, xs);
}
template <array DX, array DY, std::size_t S>
auto meanpool_backward_(DX&& dx, const DY& dy, const pool_dims<S>& pd) {
  return meanpool_backward_(operation_mode_t<DX, DY>{}, std::forward<DX>(dx), dy, pd);
}

LUX_NAMESPACE_END
