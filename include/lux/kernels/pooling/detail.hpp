// luxcpp — what the pooling kernels' front doors (../pooling.hpp, ./inplace.hpp) share: the
// contiguity, rank, overlap and shape checks, the geometry of a pool_dims, the checks of the argmax
// scatter, and the bodies of the allocating maxpool / meanpool kernels and their backward passes.
// Internal: lux::detail::pool.
#pragma once

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
#include "lux/kernels/pooling/types.hpp"

LUX_NAMESPACE_BEGIN

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

// =================================================================================================
// The allocating kernels' bodies (windowed, adaptive and global pooling share them)
// =================================================================================================

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

LUX_NAMESPACE_END
