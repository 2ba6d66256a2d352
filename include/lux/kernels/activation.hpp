// luxcpp — fast_activation, fast_activation_ and activation_backward (LuxLib's
// `fast_activation`, `fast_activation!!` and their ChainRules rule).
//
//   fast_activation(σ, x)            y = σ.(x), a new Tensor with x's shape
//   fast_activation_(σ, x)           x .= σ.(x) in place; returns the view of x
//   activation_backward(σ, dy, x, y) dx = dy .* σ'(·), returned as {dx}
//
// Shapes: x, y, dy are contiguous arrays (Tensor or TensorView) of any rank with equal shapes.
//
// identity is short-circuited: fast_activation returns a copy of x, fast_activation_ returns x
// untouched, activation_backward returns a copy of dy.
//
// Backward and what it needs. Like LuxLib's rrule, the derivative is evaluated from the saved
// *output* y when `activation_traits<F>::uses_output` (identity, relu, sigmoid, tanh_, elu, selu,
// softplus, ... — the output alone determines σ'), and from the *input* x otherwise (gelu,
// gelu_erf, swish, mish). activation_backward therefore takes both, and the one not needed may
// be `lux::none`:
//     auto y  = lux::fast_activation(lux::relu{}, x);
//     auto dx = lux::activation_backward(lux::relu{}, dy, lux::none, y).dx;   // from y
//     auto dx = lux::activation_backward(lux::gelu{}, dy, x, lux::none).dx;   // from x
// Passing `lux::none` for the one that is needed is a compile error saying which one to pass.
// Every array that is passed must have dy's shape. After fast_activation_ with an activation that
// needs x, x is gone: keep a copy, or use fast_activation.
//
// Modes: every function has an overload taking the operation mode tag first
// (lux::generic_op{}, lux::looped_op{}); without it the mode is operation_mode_t of the arrays.
// generic: lux/kernels/generic/activation.hpp; looped (xsimd + OpenMP):
// lux/kernels/looped/activation.hpp.
//
// Accuracy: every element is the functor's own scalar (generic) or SIMD (looped; xsimd's
// exp/tanh/erfc) evaluation, so the error is that of lux/core/activations.hpp. Measured in float
// on 2e5 points of [-6, 6] against the double evaluation, as max |Δ| / max |ref|: forward
// ≤ 1.2e-7 and backward ≤ 5e-7 for relu (exact), tanh_, gelu, gelu_erf, sigmoid, mish, in both
// modes; agreement with PyTorch 1.13's float64 activations and autograd gradients ≤ 1e-10 in
// double and ≤ 1e-6 in float for the 16 activations of tests/kernels/test_elementwise.cpp.
#pragma once

#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/activation.hpp"
#include "lux/kernels/looped/activation.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Type aliases
// ---------------------------------------------------------------------------------------------
namespace detail::elementwise {
/// The owning result type for an input X: Tensor<T, N, Device>.
template <class X>
using tensor_t = Tensor<array_value_t<X>, array_rank_v<X>, array_device_t<X>>;

/// True when A is absent (lux::none) or an array of element type T and rank N.
template <class A, class T, std::size_t N>
inline constexpr bool absent_or_matching_v = [] {
  if constexpr (is_absent_v<A>) {
    return true;
  } else if constexpr (is_array_v<A>) {
    return std::is_same_v<array_value_t<A>, T> && array_rank_v<A> == N;
  } else {
    return false;
  }
}();

template <class X>
inline constexpr bool contiguous_v = array_traits_t<X>::contiguous;

/// Shape of an optional array argument for messages.
template <class A>
auto shape_of(const A& a) {
  return as_view(a).shape();
}
}  // namespace detail::elementwise

/// The gradient of activation_backward: dx = dy .* σ'(·).
template <class T, std::size_t N, class Device = cpu>
struct activation_gradients {
  Tensor<T, N, Device> dx;
};

// ---------------------------------------------------------------------------------------------
// fast_activation
// ---------------------------------------------------------------------------------------------

/// y = σ.(x) in the given mode (identity: a copy of x).
template <operation_mode M, activation_function F, array X>
[[nodiscard]] detail::elementwise::tensor_t<X> fast_activation(M mode, const F& f, const X& x) {
  using namespace detail::elementwise;
  static_assert(contiguous_v<X>,
                "lux::fast_activation: x must be contiguous (a Tensor or TensorView); gather a "
                "StridedView with lux::copy(x) first");
  const auto xv = as_view(x);
  auto y = tensor_t<X>::uninitialized(xv.shape(), "fast_activation");
  if constexpr (activation_traits<F>::is_identity) {
    device_allocator<array_device_t<X>>::copy(y.data(), xv.data(), xv.numel());
  } else {
    fast_activation(mode, f, xv.data(), y.data(), xv.numel());
  }
  return y;
}

/// y = σ.(x), mode chosen from x's type.
template <activation_function F, array X>
[[nodiscard]] detail::elementwise::tensor_t<X> fast_activation(const F& f, const X& x) {
  return fast_activation(operation_mode_t<X>{}, f, x);
}

/// x .= σ.(x) in place in the given mode; returns the view of x (Julia's fast_activation!!).
template <operation_mode M, activation_function F, array X>
TensorView<array_value_t<X>, array_rank_v<X>, array_device_t<X>> fast_activation_(M mode,
                                                                                  const F& f,
                                                                                  X&& x) {
  using namespace detail::elementwise;
  static_assert(
      !(std::is_rvalue_reference_v<X&&> && std::is_same_v<std::remove_cvref_t<X>, tensor_t<X>>),
      "lux::fast_activation_: x is a temporary Tensor; the returned view would dangle "
      "(use fast_activation, or pass an lvalue)");
  static_assert(contiguous_v<X>, "lux::fast_activation_: x must be contiguous");
  const auto xv = as_view(x);
  static_assert(!std::is_const_v<typename decltype(xv)::element_type>,
                "lux::fast_activation_: x must be mutable (not a const Tensor / view of const)");
  if constexpr (!activation_traits<F>::is_identity)
    fast_activation(mode, f, xv.data(), xv.data(), xv.numel());
  return xv;
}

/// x .= σ.(x) in place, mode chosen from x's type; returns the view of x.
template <activation_function F, array X>
auto fast_activation_(const F& f, X&& x) {
  return fast_activation_(operation_mode_t<X>{}, f, std::forward<X>(x));
}

// ---------------------------------------------------------------------------------------------
// activation_backward
// ---------------------------------------------------------------------------------------------

/// {dx = dy .* σ'(y or x)} in the given mode. Pass the forward output y when
/// activation_traits<F>::uses_output, the forward input x otherwise; the other may be lux::none.
template <operation_mode M, activation_function F, array DY, class X, class Y>
[[nodiscard]] activation_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
activation_backward(M mode, const F& f, const DY& dy, const X& x, const Y& y) {
  using namespace detail::elementwise;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  constexpr bool from_output = activation_traits<F>::uses_output;
  constexpr bool is_identity = activation_traits<F>::is_identity;

  static_assert(absent_or_matching_v<X, T, N>,
                "lux::activation_backward: x must be lux::none or an array with dy's element type "
                "and rank");
  static_assert(absent_or_matching_v<Y, T, N>,
                "lux::activation_backward: y must be lux::none or an array with dy's element type "
                "and rank");
  static_assert(is_identity || !from_output || !is_absent_v<Y>,
                "lux::activation_backward: this activation's derivative is computed from the "
                "forward output (activation_traits<F>::uses_output): pass y (x may be lux::none)");
  static_assert(is_identity || from_output || !is_absent_v<X>,
                "lux::activation_backward: this activation's derivative needs the forward input "
                "(activation_traits<F>::uses_output is false): pass x (y may be lux::none)");
  static_assert(contiguous_v<DY>, "lux::activation_backward: dy must be contiguous");

  const auto dyv = as_view(dy);
  if constexpr (!is_absent_v<X>)
    require<shape_error>(shape_of(x) == dyv.shape(), "activation_backward: x has shape ",
                         shape_of(x), ", expected ", dyv.shape(), " to match dy");
  if constexpr (!is_absent_v<Y>)
    require<shape_error>(shape_of(y) == dyv.shape(), "activation_backward: y has shape ",
                         shape_of(y), ", expected ", dyv.shape(), " to match dy");

  auto dx = tensor_t<DY>::uninitialized(dyv.shape(), "activation_backward");
  if constexpr (is_identity) {
    device_allocator<array_device_t<DY>>::copy(dx.data(), dyv.data(), dyv.numel());
  } else {
    const auto& arg = [&]() -> decltype(auto) {
      if constexpr (from_output)
        return (y);
      else
        return (x);
    }();
    static_assert(contiguous_v<std::remove_cvref_t<decltype(arg)>>,
                  "lux::activation_backward: x / y must be contiguous");
    activation_backward(mode, f, dyv.data(), as_view(arg).data(), dx.data(), dyv.numel());
  }
  return {std::move(dx)};
}

/// {dx = dy .* σ'(y or x)}, mode chosen from the arrays' types (lux::none is ignored).
template <activation_function F, array DY, class X, class Y>
[[nodiscard]] auto activation_backward(const F& f, const DY& dy, const X& x, const Y& y) {
  return activation_backward(operation_mode_t<DY, X, Y>{}, f, dy, x, y);
}

LUX_NAMESPACE_END
