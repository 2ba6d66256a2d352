// luxcpp — fused_dense_bias_activation (LuxLib's `fused_dense_bias_activation`) and its backward
// pass (LuxLib's ChainRules rule fused with the activation's derivative).
//
//   y = fused_dense_bias_activation(σ, weight, x, bias)          y = σ.(weight * x .+ bias)
//   fused_dense_bias_activation(σ, weight, x, bias, out)         the same, written into `out`
//   auto [y, saved] = fused_dense_bias_activation_forward(σ, weight, x, bias)
//                                                                y plus what backward needs
//   auto [dweight, dx, dbias] =
//       fused_dense_bias_activation_backward(σ, dy, weight, x, bias, y, saved)
//
// Shapes (column-major, Lux order): weight (out, in), x (in, batch), bias (out) or lux::none,
// y and dy (out, batch). dweight has weight's shape, dx x's, dbias (out) — or (0) when bias is
// lux::none.
//
// Backward: dz = dy .* σ'(·), dweight = dz xᵀ, dx = weightᵀ dz, dbias = Σ_batch dz. σ' is taken
// from the forward output y when activation_traits<F>::uses_output (identity, relu, tanh_,
// sigmoid, ...); otherwise (gelu, gelu_erf, swish, mish) from the pre-activation
// z = weight * x .+ bias, which fused_dense_bias_activation_forward then keeps in `saved.z`
// (LuxLib caches it the same way; recomputing it would cost a second GEMM). identity needs
// neither. Pass y = lux::none when the activation does not use it.
//
// Fusion: the looped mode cuts the product into output tiles (Eigen GEMM per tile) and adds the
// bias and applies σ to each tile right after it is computed, while it is in cache; the backward
// computes dz and dbias in one pass over dy (none for identity). See lux/kernels/looped/dense.hpp.
// The generic mode (lux/kernels/generic/dense.hpp) is plain loops over any element type
// (long double, user types) and reads strided views.
//
// Accuracy (float, inputs U(-1, 1), error relative to max |y| of a float64 reference; measured
// for K = in from 29 to 16384): both modes accumulate the K products in the element type; the
// looped mode (Eigen's blocked sums) stays below 7e-7, the generic mode (one running sum)
// grows like 2.2e-8 · sqrt(K) (2.8e-6 at K = 16384). Gradients: dweight and dbias sum over the
// batch, dx over out, with the same behaviour (≤ 6e-7 measured).
//
// Errors (lux::shape_error, checked once before any work):
//   fused_dense_bias_activation: weight has shape (64, 784), x (700, 32): expected x of size
//   (784, B)
//   fused_dense_bias_activation: bias has shape (10), expected (64) to match weight (64, 784)
//   fused_dense_bias_activation: out has shape (3, 4), expected (64, 32) for weight (64, 784) and
//   x (784, 32)
// and lux::argument_error when `out` overlaps an input.
//
// Modes: operation_mode_t<weight, x, bias> (float / double contiguous → looped_op, otherwise
// generic_op); every function also takes the mode tag first. gpu_op<cuda>: a later issue.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/dense.hpp"
#include "lux/kernels/looped/dense.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Result types
// ---------------------------------------------------------------------------------------------

/// What fused_dense_bias_activation_backward needs besides the inputs and the output.
template <class T, class Device = cpu>
struct dense_saved {
  /// The pre-activation weight * x .+ bias (out, batch), kept only when the activation's
  /// derivative is taken from its input (activation_traits<F>::uses_output is false and F is not
  /// identity); otherwise empty, shape (0, 0).
  Tensor<T, 2, Device> z;
};

/// fused_dense_bias_activation_forward's result: the output and the saved state.
template <class T, class Device = cpu>
struct dense_result {
  Tensor<T, 2, Device> y;
  dense_saved<T, Device> saved;
};

/// fused_dense_bias_activation_backward's result. dbias has shape (0) when there was no bias.
template <class T, class Device = cpu>
struct dense_gradients {
  Tensor<T, 2, Device> dweight;
  Tensor<T, 2, Device> dx;
  Tensor<T, 1, Device> dbias;
};

/// Caller-owned buffers for fused_dense_bias_activation_backward's results (e.g. a layer's
/// gradient buffers, reused across training steps). dbias is ignored without a bias.
template <class T, class Device = cpu>
struct dense_gradient_views {
  TensorView<T, 2, Device> dweight;  // (out, in)
  TensorView<T, 2, Device> dx;       // (in, batch)
  TensorView<T, 1, Device> dbias;    // (out)
};

// ---------------------------------------------------------------------------------------------
// Type aliases and checks
// ---------------------------------------------------------------------------------------------
namespace detail::dense {

/// The read-only view of an array argument (keeps its layout).
template <class A>
auto const_view(const A& a) {
  const auto v = as_view(a);
  using V = std::remove_cvref_t<decltype(v)>;
  return basic_view<const typename V::value_type, V::rank, typename V::device_type,
                    V::memory_layout>(v);
}

/// True when A is lux::none or an array with element type T, rank N (and contiguous if asked).
template <class A, class T, std::size_t N, bool NeedContiguous>
inline constexpr bool absent_or_array_v = [] {
  if constexpr (is_absent_v<A>) {
    return true;
  } else if constexpr (is_array_v<A>) {
    return std::is_same_v<array_value_t<A>, T> && array_rank_v<A> == N &&
           (!NeedContiguous || array_traits_t<A>::contiguous);
  } else {
    return false;
  }
}();

/// Compile-time checks shared by every entry point.
template <class M, class W, class X, class B>
constexpr void static_checks() {
  static_assert(array_rank_v<W> == 2,
                "lux::fused_dense_bias_activation: weight must be a matrix (out, in)");
  static_assert(array_rank_v<X> == 2,
                "lux::fused_dense_bias_activation: x must be a matrix (in, batch)");
  static_assert(std::is_same_v<array_value_t<W>, array_value_t<X>>,
                "lux::fused_dense_bias_activation: weight and x must have the same element type");
  static_assert(absent_or_array_v<B, array_value_t<W>, 1, true>,
                "lux::fused_dense_bias_activation: bias must be lux::none or a contiguous vector "
                "(out) with weight's element type");
  static_assert(std::is_same_v<array_device_t<W>, cpu> && !std::is_same_v<M, gpu_op<cuda>>,
                "lux::fused_dense_bias_activation: only host (lux::cpu) arrays for now; the CUDA "
                "implementation comes with the CUDA kernels");
}

/// Checks weight / x / bias shapes; returns the output shape (out, batch).
template <class B>
shape_t<2> check_shapes(const char* name, const shape_t<2>& ws, const shape_t<2>& xs,
                        const B& bias) {
  require<shape_error>(xs[0] == ws[1], name, ": weight has shape ", ws, ", x ", xs,
                       ": expected x of size (", ws[1], ", B)");
  if constexpr (!is_absent_v<B>) {
    const auto bs = as_view(bias).shape();
    require<shape_error>(bs[0] == ws[0], name, ": bias has shape ", bs, ", expected (", ws[0],
                         ") to match weight ", ws);
  }
  const shape_t<2> ys{ws[0], xs[1]};
  shape_numel(ys, name);  // with in = 0 the output can be larger than both inputs
  return ys;
}

using detail::overlap;  // lux/core/tensor.hpp: do two arrays share memory?

template <class T, class B>
const T* bias_data(const B& bias) {
  if constexpr (is_absent_v<B>)
    return nullptr;
  else
    return as_view(bias).data();
}
}  // namespace detail::dense

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

/// y = σ.(weight * x .+ bias) written into `out` (out, batch) in the given mode; returns `out`.
/// `out` must not overlap weight, x or bias (lux::argument_error).
template <operation_mode M, activation_function F, array W, array X, class B, class T>
TensorView<T, 2> fused_dense_bias_activation(M mode, const F& f, const W& weight, const X& x,
                                             const B& bias, TensorView<T, 2> out) {
  using namespace detail::dense;
  static_checks<M, W, X, B>();
  static_assert(std::is_same_v<T, array_value_t<W>>,
                "lux::fused_dense_bias_activation: out must have weight's element type");
  const auto wv = const_view(weight);
  const auto xv = const_view(x);
  const auto ys = check_shapes("fused_dense_bias_activation", wv.shape(), xv.shape(), bias);
  require<shape_error>(out.shape() == ys, "fused_dense_bias_activation: out has shape ",
                       out.shape(), ", expected ", ys, " for weight ", wv.shape(), " and x ",
                       xv.shape());
  bool aliased = overlap(out, wv) || overlap(out, xv);
  if constexpr (!is_absent_v<B>) aliased = aliased || overlap(out, as_view(bias));
  require<argument_error>(!aliased,
                          "fused_dense_bias_activation: out overlaps an input (weight, x or bias)"
                          "; the output needs its own buffer");
  fused_dense_forward(mode, f, wv, xv, bias_data<T>(bias), out, static_cast<T*>(nullptr));
  return out;
}

/// y = σ.(weight * x .+ bias) into `out`, mode chosen from the arrays' types.
template <activation_function F, array W, array X, class B, class T>
TensorView<T, 2> fused_dense_bias_activation(const F& f, const W& weight, const X& x, const B& bias,
                                             TensorView<T, 2> out) {
  return fused_dense_bias_activation(operation_mode_t<W, X, B>{}, f, weight, x, bias, out);
}

/// y = σ.(weight * x .+ bias), a new (out, batch) tensor, in the given mode.
template <operation_mode M, activation_function F, array W, array X, class B>
[[nodiscard]] Tensor<array_value_t<W>, 2> fused_dense_bias_activation(M mode, const F& f,
                                                                      const W& weight, const X& x,
                                                                      const B& bias) {
  using namespace detail::dense;
  using T = array_value_t<W>;
  static_checks<M, W, X, B>();
  const auto wv = const_view(weight);
  const auto xv = const_view(x);
  auto y = Tensor<T, 2>::uninitialized(
      check_shapes("fused_dense_bias_activation", wv.shape(), xv.shape(), bias),
      "fused_dense_bias_activation");
  fused_dense_forward(mode, f, wv, xv, bias_data<T>(bias), y.view(), static_cast<T*>(nullptr));
  return y;
}

/// y = σ.(weight * x .+ bias), mode chosen from the arrays' types (lux::none is ignored).
template <activation_function F, array W, array X, class B>
[[nodiscard]] auto fused_dense_bias_activation(const F& f, const W& weight, const X& x,
                                               const B& bias) {
  return fused_dense_bias_activation(operation_mode_t<W, X, B>{}, f, weight, x, bias);
}

/// {y, saved}: the forward for training. saved.z holds the pre-activation when σ's derivative
/// needs it (see dense_saved), computed in the same fused pass that produces y.
template <operation_mode M, activation_function F, array W, array X, class B>
[[nodiscard]] dense_result<array_value_t<W>> fused_dense_bias_activation_forward(M mode, const F& f,
                                                                                 const W& weight,
                                                                                 const X& x,
                                                                                 const B& bias) {
  using namespace detail::dense;
  using T = array_value_t<W>;
  static_checks<M, W, X, B>();
  constexpr bool keep_z = !activation_traits<F>::uses_output && !activation_traits<F>::is_identity;
  const auto wv = const_view(weight);
  const auto xv = const_view(x);
  const auto ys = check_shapes("fused_dense_bias_activation_forward", wv.shape(), xv.shape(), bias);
  dense_result<T> r{Tensor<T, 2>::uninitialized(ys, "fused_dense_bias_activation_forward"), {}};
  if constexpr (keep_z)
    r.saved.z = Tensor<T, 2>::uninitialized(ys, "fused_dense_bias_activation_forward");
  fused_dense_forward(mode, f, wv, xv, bias_data<T>(bias), r.y.view(),
                      keep_z ? r.saved.z.data() : static_cast<T*>(nullptr));
  return r;
}

/// {y, saved}, mode chosen from the arrays' types.
template <activation_function F, array W, array X, class B>
[[nodiscard]] auto fused_dense_bias_activation_forward(const F& f, const W& weight, const X& x,
                                                       const B& bias) {
  return fused_dense_bias_activation_forward(operation_mode_t<W, X, B>{}, f, weight, x, bias);
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

/// {dweight, dx, dbias} of y = σ.(weight * x .+ bias) for the cotangent dy, written into the
/// caller's buffers `out` (reused across training steps: no allocation but the dz workspace), in
/// the given mode; returns `out`. y: the forward output when activation_traits<F>::uses_output
/// (else lux::none is fine); saved: from fused_dense_bias_activation_forward (its z is read when
/// σ needs the input). bias as in the forward call (lux::none: out.dbias is not touched and may be
/// empty). The buffers must not overlap the inputs or each other (lux::argument_error).
template <operation_mode M, activation_function F, array DY, array W, array X, class B, class Y,
          class T>
dense_gradient_views<T> fused_dense_bias_activation_backward(M mode, const F& f, const DY& dy,
                                                             const W& weight, const X& x,
                                                             const B& bias, const Y& y,
                                                             const dense_saved<T>& saved,
                                                             dense_gradient_views<T> out) {
  using namespace detail::dense;
  constexpr const char* name = "fused_dense_bias_activation_backward";
  constexpr bool identity = activation_traits<F>::is_identity;
  constexpr bool from_output = activation_traits<F>::uses_output;
  static_checks<M, W, X, B>();
  static_assert(std::is_same_v<array_value_t<W>, T>,
                "lux::fused_dense_bias_activation_backward: saved and the gradient buffers must "
                "have weight's element type");
  static_assert(array_rank_v<DY> == 2 && std::is_same_v<array_value_t<DY>, T>,
                "lux::fused_dense_bias_activation_backward: dy must be a matrix (out, batch) with "
                "weight's element type");
  static_assert(absent_or_array_v<Y, T, 2, true>,
                "lux::fused_dense_bias_activation_backward: y must be lux::none or a contiguous "
                "matrix (out, batch) with weight's element type");
  static_assert(identity || !from_output || !is_absent_v<Y>,
                "lux::fused_dense_bias_activation_backward: this activation's derivative is "
                "computed from the forward output (activation_traits<F>::uses_output): pass y");

  const auto wv = const_view(weight);
  const auto xv = const_view(x);
  const auto dyv = const_view(dy);
  const auto ys = check_shapes(name, wv.shape(), xv.shape(), bias);
  require<shape_error>(dyv.shape() == ys, name, ": dy has shape ", dyv.shape(), ", expected ", ys,
                       " for weight ", wv.shape(), " and x ", xv.shape());
  const T* arg = nullptr;
  TensorView<const T, 2> argv;
  if constexpr (!identity && from_output) {
    argv = as_view(y);
    require<shape_error>(argv.shape() == ys, name, ": y has shape ", argv.shape(), ", expected ",
                         ys, " to match dy");
    arg = argv.data();
  } else if constexpr (!identity) {
    argv = saved.z.cview();
    require<shape_error>(argv.shape() == ys, name, ": saved.z has shape ", argv.shape(),
                         ", expected ", ys, ": the activation ", activation_traits<F>::name,
                         " needs the pre-activation that fused_dense_bias_activation_forward "
                         "saves");
    arg = argv.data();
  }

  require<shape_error>(out.dweight.shape() == wv.shape(), name, ": dweight has shape ",
                       out.dweight.shape(), ", expected ", wv.shape(), " (weight's)");
  require<shape_error>(out.dx.shape() == xv.shape(), name, ": dx has shape ", out.dx.shape(),
                       ", expected ", xv.shape(), " (x's)");
  if constexpr (!is_absent_v<B>)
    require<shape_error>(out.dbias.shape()[0] == ys[0], name, ": dbias has shape ",
                         out.dbias.shape(), ", expected (", ys[0], ") (bias's)");
  auto clashes = [&](const auto& o) {
    bool c = overlap(o, wv) || overlap(o, xv) || overlap(o, dyv) || overlap(o, argv);
    if constexpr (!is_absent_v<B>) c = c || overlap(o, as_view(bias));
    return c;
  };
  bool aliased = clashes(out.dweight) || clashes(out.dx) || overlap(out.dweight, out.dx);
  if constexpr (!is_absent_v<B>)
    aliased = aliased || clashes(out.dbias) || overlap(out.dbias, out.dweight) ||
              overlap(out.dbias, out.dx);
  require<argument_error>(!aliased, name,
                          ": the gradient buffers overlap an input or each other; each needs its "
                          "own memory");

  fused_dense_backward(mode, f, dyv, wv, xv, arg, out.dweight, out.dx,
                       is_absent_v<B> ? static_cast<T*>(nullptr) : out.dbias.data());
  return out;
}

/// The same into caller buffers, mode chosen from the arrays' types.
template <activation_function F, array DY, array W, array X, class B, class Y, class T>
dense_gradient_views<T> fused_dense_bias_activation_backward(const F& f, const DY& dy,
                                                             const W& weight, const X& x,
                                                             const B& bias, const Y& y,
                                                             const dense_saved<T>& saved,
                                                             dense_gradient_views<T> out) {
  return fused_dense_bias_activation_backward(operation_mode_t<DY, W, X, B>{}, f, dy, weight, x,
                                              bias, y, saved, out);
}

/// {dweight, dx, dbias} of y = σ.(weight * x .+ bias) for the cotangent dy, new tensors, in the
/// given mode (arguments as above; dbias has shape (0) when bias is lux::none).
template <operation_mode M, activation_function F, array DY, array W, array X, class B, class Y>
[[nodiscard]] dense_gradients<array_value_t<W>> fused_dense_bias_activation_backward(
    M mode, const F& f, const DY& dy, const W& weight, const X& x, const B& bias, const Y& y,
    const dense_saved<array_value_t<W>>& saved) {
  using namespace detail::dense;
  using T = array_value_t<W>;
  const auto ws = as_view(weight).shape();
  const auto xs = as_view(x).shape();
  dense_gradients<T> g{Tensor<T, 2>::uninitialized(ws, "fused_dense_bias_activation_backward"),
                       Tensor<T, 2>::uninitialized(xs, "fused_dense_bias_activation_backward"),
                       Tensor<T, 1>::uninitialized(shape_t<1>{is_absent_v<B> ? 0 : ws[0]},
                                                   "fused_dense_bias_activation_backward")};
  fused_dense_bias_activation_backward(
      mode, f, dy, weight, x, bias, y, saved,
      dense_gradient_views<T>{g.dweight.view(), g.dx.view(), g.dbias.view()});
  return g;
}

/// {dweight, dx, dbias}, mode chosen from the arrays' types.
template <activation_function F, array DY, array W, array X, class B, class Y>
[[nodiscard]] auto fused_dense_bias_activation_backward(
    const F& f, const DY& dy, const W& weight, const X& x, const B& bias, const Y& y,
    const dense_saved<array_value_t<W>>& saved) {
  return fused_dense_bias_activation_backward(operation_mode_t<DY, W, X, B>{}, f, dy, weight, x,
                                              bias, y, saved);
}

/// {dweight, dx, dbias} from the whole forward result {y, saved}, in the given mode.
template <operation_mode M, activation_function F, array DY, array W, array X, class B>
[[nodiscard]] auto fused_dense_bias_activation_backward(
    M mode, const F& f, const DY& dy, const W& weight, const X& x, const B& bias,
    const dense_result<array_value_t<W>>& forward) {
  return fused_dense_bias_activation_backward(mode, f, dy, weight, x, bias, forward.y,
                                              forward.saved);
}

/// {dweight, dx, dbias} from the whole forward result {y, saved}, mode from the arrays' types.
template <activation_function F, array DY, array W, array X, class B>
[[nodiscard]] auto fused_dense_bias_activation_backward(
    const F& f, const DY& dy, const W& weight, const X& x, const B& bias,
    const dense_result<array_value_t<W>>& forward) {
  return fused_dense_bias_activation_backward(operation_mode_t<DY, W, X, B>{}, f, dy, weight, x,
                                              bias, forward.y, forward.saved);
}

LUX_NAMESPACE_END
