// luxcpp — softmax, logsoftmax and logsumexp along one dimension, with their backward passes
// (NNlib's softmax / logsoftmax / logsumexp, ∇softmax_data / ∇logsoftmax_data and the logsumexp
// rrule, NNlib 0.9).
//
//   softmax(x, dim = 0)      y = exp.(x .- m) ./ Σ_dim exp.(x .- m)          x's shape
//   logsoftmax(x, dim = 0)   y = (x .- m) .- log.(Σ_dim exp.(x .- m))        x's shape
//   logsumexp(x, dim = 0)    l = m .+ log.(Σ_dim exp.(x .- m))               size 1 at dim
//   softmax_backward(dy, y, dim)       {dx = y .* (dy .- Σ_dim dy .* y)}     y = softmax(x, dim)
//   logsoftmax_backward(dy, y, dim)    {dx = dy .- exp.(y) .* Σ_dim dy}   y = logsoftmax(x, dim)
//   logsumexp_backward(dl, x, l, dim)  {dx = dl .* exp.(x .- l)}          l = logsumexp(x, dim),
//                                                                         dl shaped like l
// with m = maximum(x; dims = dim) (the max-subtraction that keeps ±1e4 logits finite). `dim` is
// a 0-based dimension index: 0 is NNlib's default dims = 1 (the features of a (features, batch)
// array); any single dimension 0 ≤ dim < rank is allowed. NNlib's logsumexp defaults to the
// whole array (dims = :); here that is logsumexp(x.reshape(-1)) (a 1-element tensor). Arrays are
// contiguous (Tensor or TensorView) of a floating element type; the results are new Tensors.
//
// Infinities and NaN, slice by slice (as NNlib, except where marked):
//   * some elements -inf, the max finite: those get probability 0 / logsoftmax -inf; no NaN.
//   * max = +inf: softmax spreads the mass evenly over the +inf elements (0 elsewhere),
//     logsoftmax is log(1/k) there and -inf elsewhere; logsumexp = +inf (NNlib: NaN).
//   * every element -inf: softmax and logsoftmax NaN (as NNlib and PyTorch); logsumexp = -inf
//     (log 0, as PyTorch; NNlib: NaN). An empty slice has logsumexp -inf.
//   * a NaN element makes its slice NaN.
// The backward formulas are applied as written (so a NaN or an infinite forward value flows
// into dx).
//
// Modes: every function has an overload taking lux::generic_op{} / lux::looped_op{} first;
// without it the mode is operation_mode_t of the arrays (float / double → looped_op, others →
// generic_op). The implementations are called unqualified, after `using impl::<name>;`, so
// argument-dependent lookup on the mode tag and on impl::softmax_geometry finds them: a
// gpu_op<cuda> implementation (or one more overload for another tag) plugs in by declaring
// softmax_forward(tag, const impl::softmax_geometry&, const T*, T*) etc. (the signatures of
// lux/kernels/generic/softmax.hpp), without editing this header.
// generic: lux/kernels/generic/softmax.hpp; looped (xsimd + OpenMP):
// lux/kernels/looped/softmax.hpp.
//
// Accuracy (tests/kernels/test_softmax.cpp, against a long-double reference on the same
// rounded inputs; slices of 1 to 1000 elements, logits U(-10, 10) and U(-1e4, 1e4); both modes,
// float and double; eps = machine epsilon of T):
//   softmax              max|Δ| / max|y|                     ≤ 7.3 eps (grows slowly with the
//                                                                       slice length: Σ in T)
//   logsoftmax           elementwise |Δ| / max(|y|, 1)        ≤ 3.5 eps
//   logsumexp            elementwise |Δ| / max(|l|, 1)        ≤ 1.7 eps
//   softmax_backward,    max|Δ| / max(max|dx|, max|dy|)       ≤ 6.7 eps (dy − Σ dy·y cancels
//   logsoftmax_backward                                                  when y is one-hot)
//   logsumexp_backward   max|Δ| / max|dx|                     ≤ 0.45 (max|l| + 8) eps: l is
//                        rounded to T, so exp(x − l) inherits |l|·eps/2 (2.5e-4 in float at
//                        l ≈ 1e4; a property of taking l as the input)
// Against PyTorch 1.13's float64 F.softmax / F.log_softmax / torch.logsumexp and their autograd
// gradients (tests/fixtures/losses.txt, including ±1e4 logits): ≤ 7.9e-16 in double.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/softmax.hpp"
#include "lux/kernels/looped/softmax.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Type aliases
// ---------------------------------------------------------------------------------------------
namespace detail::softmax {
template <class X>
using tensor_t = Tensor<array_value_t<X>, array_rank_v<X>, array_device_t<X>>;

// ---------------------------------------------------------------------------------------------
// Static checks
// ---------------------------------------------------------------------------------------------
template <class X>
constexpr void check_array_type() {
  static_assert(is_array_v<X>, "lux softmax: arguments must be a lux::Tensor or lux::TensorView");
  static_assert(array_traits_t<X>::contiguous,
                "lux softmax: arrays must be contiguous (a Tensor or TensorView); gather a "
                "StridedView with lux::copy(x) first");
  static_assert(std::is_floating_point_v<array_value_t<X>>,
                "lux softmax: the element type must be a floating-point type");
  static_assert(array_rank_v<X> >= 1, "lux softmax: arrays must have rank >= 1");
}

/// Every check of the reduced dimension, once; the (inner, n, outer) factorization.
template <std::size_t N>
impl::softmax_geometry plan(const char* op, const shape_t<N>& shape, index_t dim) {
  require<argument_error>(dim >= 0 && dim < static_cast<index_t>(N), op, ": dim ", dim,
                          " out of range for an array of rank ", N, " with shape ", shape,
                          " (expected 0 <= dim < ", N, ")");
  impl::softmax_geometry g;
  // dim is in range here; the clamp keeps GCC 12's -Warray-bounds, which does not see that
  // require() threw, from flagging shape[d] (a false positive at -O3).
  const auto d = std::min(static_cast<std::size_t>(dim), N - 1);
  for (std::size_t k = 0; k < d; ++k) g.inner *= shape[k];
  g.n = shape[d];
  for (std::size_t k = d + 1; k < N; ++k) g.outer *= shape[k];
  return g;
}

/// `shape` with size 1 at dim: the shape of logsumexp's result.
template <std::size_t N>
shape_t<N> reduced_shape(shape_t<N> shape, index_t dim) {
  // plan() has rejected a bad dim already; the test keeps GCC's -Warray-bounds convinced.
  if (dim >= 0 && dim < static_cast<index_t>(N)) shape[static_cast<std::size_t>(dim)] = 1;
  return shape;
}

template <class A, class B>
void check_same_shape(const char* op, const char* name, const A& a, const char* ref_name,
                      const B& ref) {
  require<shape_error>(a == ref, op, ": ", name, " has shape ", a, ", expected ", ref, " to match ",
                       ref_name);
}
}  // namespace detail::softmax

/// The gradient of a softmax-family backward pass.
template <class T, std::size_t N, class Device = cpu>
struct softmax_gradients {
  Tensor<T, N, Device> dx;
};

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

/// y = softmax(x) along `dim` (0-based; 0 = NNlib's dims = 1) in the given mode.
template <operation_mode M, array X>
[[nodiscard]] detail::softmax::tensor_t<X> softmax(M mode, const X& x, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<X>();
  const auto xv = as_view(x);
  const auto g = plan("softmax", xv.shape(), dim);
  auto y = tensor_t<X>::uninitialized(xv.shape(), "softmax");
  using impl::softmax_forward;
  softmax_forward(mode, g, xv.data(), y.data());
  return y;
}
template <array X>
[[nodiscard]] auto softmax(const X& x, index_t dim = 0) {
  return softmax(operation_mode_t<X>{}, x, dim);
}

/// y = logsoftmax(x) along `dim` in the given mode.
template <operation_mode M, array X>
[[nodiscard]] detail::softmax::tensor_t<X> logsoftmax(M mode, const X& x, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<X>();
  const auto xv = as_view(x);
  const auto g = plan("logsoftmax", xv.shape(), dim);
  auto y = tensor_t<X>::uninitialized(xv.shape(), "logsoftmax");
  using impl::logsoftmax_forward;
  logsoftmax_forward(mode, g, xv.data(), y.data());
  return y;
}
template <array X>
[[nodiscard]] auto logsoftmax(const X& x, index_t dim = 0) {
  return logsoftmax(operation_mode_t<X>{}, x, dim);
}

/// l = log Σ_dim exp(x), with x's rank and size 1 at `dim` (Julia's keep-dims result).
template <operation_mode M, array X>
[[nodiscard]] detail::softmax::tensor_t<X> logsumexp(M mode, const X& x, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<X>();
  const auto xv = as_view(x);
  const auto g = plan("logsumexp", xv.shape(), dim);
  auto l = tensor_t<X>::uninitialized(reduced_shape(xv.shape(), dim), "logsumexp");
  using impl::logsumexp_forward;
  logsumexp_forward(mode, g, xv.data(), l.data());
  return l;
}
template <array X>
[[nodiscard]] auto logsumexp(const X& x, index_t dim = 0) {
  return logsumexp(operation_mode_t<X>{}, x, dim);
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

/// {dx = y .* (dy .- Σ_dim dy .* y)} from the forward output y = softmax(x, dim).
template <operation_mode M, array DY, array Y>
[[nodiscard]] softmax_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
softmax_backward(M mode, const DY& dy, const Y& y, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<DY>();
  check_array_type<Y>();
  static_assert(
      std::is_same_v<array_value_t<DY>, array_value_t<Y>> && array_rank_v<DY> == array_rank_v<Y>,
      "lux::softmax_backward: dy and y must have the same element type and rank");
  const auto dyv = as_view(dy);
  const auto yv = as_view(y);
  check_same_shape("softmax_backward", "dy", dyv.shape(), "y", yv.shape());
  const auto g = plan("softmax_backward", yv.shape(), dim);
  auto dx = tensor_t<DY>::uninitialized(yv.shape(), "softmax_backward");
  using impl::softmax_backward;
  softmax_backward(mode, g, dyv.data(), yv.data(), dx.data());
  return {std::move(dx)};
}
template <array DY, array Y>
[[nodiscard]] auto softmax_backward(const DY& dy, const Y& y, index_t dim = 0) {
  return softmax_backward(operation_mode_t<DY, Y>{}, dy, y, dim);
}

/// {dx = dy .- exp.(y) .* Σ_dim dy} from the forward output y = logsoftmax(x, dim).
template <operation_mode M, array DY, array Y>
[[nodiscard]] softmax_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
logsoftmax_backward(M mode, const DY& dy, const Y& y, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<DY>();
  check_array_type<Y>();
  static_assert(
      std::is_same_v<array_value_t<DY>, array_value_t<Y>> && array_rank_v<DY> == array_rank_v<Y>,
      "lux::logsoftmax_backward: dy and y must have the same element type and rank");
  const auto dyv = as_view(dy);
  const auto yv = as_view(y);
  check_same_shape("logsoftmax_backward", "dy", dyv.shape(), "y", yv.shape());
  const auto g = plan("logsoftmax_backward", yv.shape(), dim);
  auto dx = tensor_t<DY>::uninitialized(yv.shape(), "logsoftmax_backward");
  using impl::logsoftmax_backward;
  logsoftmax_backward(mode, g, dyv.data(), yv.data(), dx.data());
  return {std::move(dx)};
}
template <array DY, array Y>
[[nodiscard]] auto logsoftmax_backward(const DY& dy, const Y& y, index_t dim = 0) {
  return logsoftmax_backward(operation_mode_t<DY, Y>{}, dy, y, dim);
}

/// {dx = dl .* exp.(x .- l)} (dl, l broadcast along dim) from l = logsumexp(x, dim); dl and l
/// have l's shape.
template <operation_mode M, array DL, array X, array L>
[[nodiscard]] softmax_gradients<array_value_t<X>, array_rank_v<X>, array_device_t<X>>
logsumexp_backward(M mode, const DL& dl, const X& x, const L& l, index_t dim = 0) {
  using namespace detail::softmax;
  check_array_type<DL>();
  check_array_type<X>();
  check_array_type<L>();
  static_assert(std::is_same_v<array_value_t<DL>, array_value_t<X>> &&
                    std::is_same_v<array_value_t<L>, array_value_t<X>> &&
                    array_rank_v<DL> == array_rank_v<X> && array_rank_v<L> == array_rank_v<X>,
                "lux::logsumexp_backward: dl, x and l must have the same element type and rank");
  const auto dlv = as_view(dl);
  const auto xv = as_view(x);
  const auto lv = as_view(l);
  const auto g = plan("logsumexp_backward", xv.shape(), dim);
  const auto rs = reduced_shape(xv.shape(), dim);
  check_same_shape("logsumexp_backward", "l", lv.shape(), "logsumexp(x, dim)", rs);
  check_same_shape("logsumexp_backward", "dl", dlv.shape(), "logsumexp(x, dim)", rs);
  auto dx = tensor_t<X>::uninitialized(xv.shape(), "logsumexp_backward");
  using impl::logsumexp_backward;
  logsumexp_backward(mode, g, dlv.data(), xv.data(), lv.data(), dx.data());
  return {std::move(dx)};
}
template <array DL, array X, array L>
[[nodiscard]] auto logsumexp_backward(const DL& dl, const X& x, const L& l, index_t dim = 0) {
  return logsumexp_backward(operation_mode_t<DL, X, L>{}, dl, x, l, dim);
}

LUX_NAMESPACE_END
