// luxcpp — bias_activation, bias_activation_ and bias_activation_backward (LuxLib's
// `bias_activation`, `bias_activation!!` and their ChainRules rule).
//
//   bias_activation(σ, x, bias)    y = σ.(x .+ reshape(bias, 1, …, C, 1)), a new Tensor
//   bias_activation_(σ, x, bias)   the same, written into x; returns the view of x
//   bias_activation_backward(σ, dy, x, bias, y)
//                                  {dx = dy .* σ'(z), dbias = Σ dx over every dim but the bias one}
//
// Shapes (column-major, Lux order). The bias runs along the *penultimate* dimension of x: Julia's
// dim N-1 (1-based), 0-based dimension N-2 — the channel of (W, H, C, N), the feature of a Dense
// output (out, batch). bias has shape (C) with C = x.size(N-2). A rank-1 x is treated as an
// (len, 1) matrix, so its bias must have length(x) elements (LuxLib's rule). bias may be
// lux::none: then σ.(x) (fast_activation) and no bias gradient.
//
// Backward. One fused pass over dy computes dx = dy · σ'(·) and dbias[c] = Σ_{all but c} dx.
// What it needs follows the activation (see lux/kernels/activation.hpp):
//   * activation_traits<F>::uses_output (relu, tanh_, sigmoid, identity, ...): the forward output
//     y; x may be lux::none (bias is then only needed to say whether dbias is wanted);
//   * otherwise (gelu, gelu_erf, swish, mish): the forward input x and the same bias; the
//     pre-activation z = x + bias is recomputed in the pass instead of being stored (LuxLib caches
//     it), so y may be lux::none.
// bias_activation_ overwrites x with y: with an activation that needs x, keep a copy of x or use
// bias_activation. dbias is an empty (shape (0)) Tensor when bias is lux::none.
//
// Errors: a bias of the wrong length → lux::shape_error naming both shapes, e.g.
//   bias_activation: bias has shape (5), expected (4) to match dimension 1 (the penultimate,
//   0-based) of x (3, 4, 2)
// and a bias sharing memory with x in bias_activation_ → lux::argument_error.
//
// Modes: generic_op (lux/kernels/generic/bias_activation.hpp), looped_op
// (lux/kernels/looped/bias_activation.hpp, xsimd + OpenMP); every function also takes the mode
// tag first. Accuracy: y is σ evaluated at fl(x + b) exactly as fast_activation does; dbias is a
// sum of outer·inner terms in the working precision (looped: per-thread SIMD partial sums;
// generic: one sequential sum per slab). Measured in float against float64 for relu:
// max |Δdbias| / max |dbias| = 2e-7 (looped) and 8e-7 (generic) on (56, 56, 64, 8), 3e-7 on a
// (4096, 256) Dense output.
#pragma once

#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/activation.hpp"
#include "lux/kernels/generic/bias_activation.hpp"
#include "lux/kernels/looped/bias_activation.hpp"

LUX_NAMESPACE_BEGIN

/// The gradients of bias_activation_backward. dbias has shape (0) when there was no bias.
template <class T, std::size_t N, class Device = cpu>
struct bias_activation_gradients {
  Tensor<T, N, Device> dx;
  Tensor<T, 1, Device> dbias;
};

namespace detail::elementwise {
/// x viewed as (inner, C, outer) with C the bias dimension (see the file comment).
struct bias_layout {
  index_t inner, C, outer;
};
template <std::size_t N>
bias_layout bias_layout_of(const shape_t<N>& s) {
  static_assert(N >= 1, "lux::bias_activation: x must have rank >= 1");
  if constexpr (N == 1) {
    return {1, s[0], 1};
  } else {
    index_t inner = 1;
    for (std::size_t d = 0; d + 2 < N; ++d) inner *= s[d];
    return {inner, s[N - 2], s[N - 1]};
  }
}

/// Checks that bias (an array or lux::none) fits x's shape; `op` names the kernel.
template <class B, std::size_t N>
void check_bias(const char* op, const B& bias, const shape_t<N>& xs) {
  if constexpr (!is_absent_v<B>) {
    const auto bs = as_view(bias).shape();
    const index_t C = bias_layout_of(xs).C;
    if constexpr (N == 1)
      require<shape_error>(bs[0] == C, op, ": bias has shape ", bs, ", expected (", C,
                           ") to match the length of the vector x ", xs);
    else
      require<shape_error>(bs[0] == C, op, ": bias has shape ", bs, ", expected (", C,
                           ") to match dimension ", N - 2, " (the penultimate, 0-based) of x ", xs);
  }
}

template <class B, class T>
inline constexpr bool valid_bias_v = [] {
  if constexpr (is_absent_v<B>) {
    return true;
  } else if constexpr (is_array_v<B>) {
    return std::is_same_v<array_value_t<B>, T> && array_rank_v<B> == 1 && contiguous_v<B>;
  } else {
    return false;
  }
}();
}  // namespace detail::elementwise

// ---------------------------------------------------------------------------------------------
// bias_activation
// ---------------------------------------------------------------------------------------------

/// y = σ.(x .+ bias) (bias along the penultimate dimension; lux::none: σ.(x)) in the given mode.
template <operation_mode M, activation_function F, array X, class B>
[[nodiscard]] detail::elementwise::tensor_t<X> bias_activation(M mode, const F& f, const X& x,
                                                               const B& bias) {
  using namespace detail::elementwise;
  static_assert(valid_bias_v<B, array_value_t<X>>,
                "lux::bias_activation: bias must be lux::none or a contiguous rank-1 array with "
                "x's element type");
  static_assert(contiguous_v<X>, "lux::bias_activation: x must be contiguous");
  const auto xv = as_view(x);
  check_bias("bias_activation", bias, xv.shape());
  if constexpr (is_absent_v<B>) {
    return fast_activation(mode, f, x);
  } else {
    auto y = tensor_t<X>::uninitialized(xv.shape(), "bias_activation");
    const auto l = bias_layout_of(xv.shape());
    bias_activation(mode, f, xv.data(), as_view(bias).data(), y.data(), l.inner, l.C, l.outer);
    return y;
  }
}

/// y = σ.(x .+ bias), mode chosen from the arrays' types.
template <activation_function F, array X, class B>
[[nodiscard]] detail::elementwise::tensor_t<X> bias_activation(const F& f, const X& x,
                                                               const B& bias) {
  return bias_activation(operation_mode_t<X, B>{}, f, x, bias);
}

/// x .= σ.(x .+ bias) in place in the given mode; returns the view of x (bias_activation!!).
template <operation_mode M, activation_function F, array X, class B>
TensorView<array_value_t<X>, array_rank_v<X>, array_device_t<X>> bias_activation_(M mode,
                                                                                  const F& f, X&& x,
                                                                                  const B& bias) {
  using namespace detail::elementwise;
  static_assert(
      !(std::is_rvalue_reference_v<X&&> && std::is_same_v<std::remove_cvref_t<X>, tensor_t<X>>),
      "lux::bias_activation_: x is a temporary Tensor; the returned view would dangle");
  static_assert(valid_bias_v<B, array_value_t<X>>,
                "lux::bias_activation_: bias must be lux::none or a contiguous rank-1 array with "
                "x's element type");
  static_assert(contiguous_v<X>, "lux::bias_activation_: x must be contiguous");
  const auto xv = as_view(x);
  static_assert(!std::is_const_v<typename decltype(xv)::element_type>,
                "lux::bias_activation_: x must be mutable");
  check_bias("bias_activation_", bias, xv.shape());
  if constexpr (is_absent_v<B>) {
    return fast_activation_(mode, f, xv);
  } else {
    // Writing x while reading the bias from the same memory would read overwritten values.
    require<argument_error>(!detail::overlap(xv, bias), "bias_activation_: bias overlaps x ",
                            xv.shape(), "; it must be a separate buffer");
    const auto l = bias_layout_of(xv.shape());
    bias_activation(mode, f, xv.data(), as_view(bias).data(), xv.data(), l.inner, l.C, l.outer);
    return xv;
  }
}

/// x .= σ.(x .+ bias) in place, mode chosen from the arrays' types.
template <activation_function F, array X, class B>
auto bias_activation_(const F& f, X&& x, const B& bias) {
  return bias_activation_(operation_mode_t<X, B>{}, f, std::forward<X>(x), bias);
}

// ---------------------------------------------------------------------------------------------
// bias_activation_backward
// ---------------------------------------------------------------------------------------------

/// {dx, dbias} of y = σ.(x .+ bias) in the given mode. Pass y when
/// activation_traits<F>::uses_output (x may be lux::none), else x (y may be lux::none); bias as
/// in the forward call (lux::none → no bias gradient, dbias of shape (0)).
template <operation_mode M, activation_function F, array DY, class X, class B, class Y>
[[nodiscard]] bias_activation_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
bias_activation_backward(M mode, const F& f, const DY& dy, const X& x, const B& bias, const Y& y) {
  using namespace detail::elementwise;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  using D = array_device_t<DY>;
  constexpr bool from_output = activation_traits<F>::uses_output;
  constexpr bool is_identity = activation_traits<F>::is_identity;

  static_assert(absent_or_matching_v<X, T, N>,
                "lux::bias_activation_backward: x must be lux::none or an array with dy's element "
                "type and rank");
  static_assert(absent_or_matching_v<Y, T, N>,
                "lux::bias_activation_backward: y must be lux::none or an array with dy's element "
                "type and rank");
  static_assert(valid_bias_v<B, T>,
                "lux::bias_activation_backward: bias must be lux::none or a contiguous rank-1 "
                "array with dy's element type");
  static_assert(is_identity || !from_output || !is_absent_v<Y>,
                "lux::bias_activation_backward: this activation's derivative is computed from the "
                "forward output (activation_traits<F>::uses_output): pass y (x may be lux::none)");
  static_assert(is_identity || from_output || !is_absent_v<X>,
                "lux::bias_activation_backward: this activation's derivative needs the forward "
                "input (activation_traits<F>::uses_output is false): pass x and bias (y may be "
                "lux::none); z = x + bias is recomputed");
  static_assert(contiguous_v<DY>, "lux::bias_activation_backward: dy must be contiguous");

  const auto dyv = as_view(dy);
  if constexpr (!is_absent_v<X>)
    require<shape_error>(shape_of(x) == dyv.shape(), "bias_activation_backward: x has shape ",
                         shape_of(x), ", expected ", dyv.shape(), " to match dy");
  if constexpr (!is_absent_v<Y>)
    require<shape_error>(shape_of(y) == dyv.shape(), "bias_activation_backward: y has shape ",
                         shape_of(y), ", expected ", dyv.shape(), " to match dy");
  check_bias("bias_activation_backward", bias, dyv.shape());

  if constexpr (is_absent_v<B>) {
    // No bias: the plain activation backward, no bias gradient.
    return {activation_backward(mode, f, dy, x, y).dx, Tensor<T, 1, D>()};
  } else {
    const auto l = bias_layout_of(dyv.shape());
    auto dx = Tensor<T, N, D>::uninitialized(dyv.shape(), "bias_activation_backward");
    auto dbias = Tensor<T, 1, D>::uninitialized(shape_t<1>{l.C}, "bias_activation_backward");
    const T* arg = dyv.data();  // identity: the derivative ignores its argument
    const T* b = nullptr;
    if constexpr (!is_identity && from_output) {
      arg = as_view(y).data();
    } else if constexpr (!is_identity) {
      arg = as_view(x).data();
      b = as_view(bias).data();
    }
    bias_activation_backward(mode, f, dyv.data(), arg, b, dx.data(), dbias.data(), l.inner, l.C,
                             l.outer);
    return {std::move(dx), std::move(dbias)};
  }
}

/// {dx, dbias}, mode chosen from the arrays' types (lux::none is ignored).
template <activation_function F, array DY, class X, class B, class Y>
[[nodiscard]] auto bias_activation_backward(const F& f, const DY& dy, const X& x, const B& bias,
                                            const Y& y) {
  return bias_activation_backward(operation_mode_t<DY, X, B, Y>{}, f, dy, x, bias, y);
}

LUX_NAMESPACE_END
