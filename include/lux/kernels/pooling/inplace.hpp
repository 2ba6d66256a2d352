// luxcpp — the pooling kernels' in-place variants: maxpool_, maxpool_with_argmax_,
// maxpool_backward_, meanpool_, meanpool_backward_ (NNlib's maxpool!, ∇maxpool!, …). Semantics,
// errors and modes in ../pooling.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
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
#include "lux/kernels/pooling/types.hpp"

LUX_NAMESPACE_BEGIN

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
