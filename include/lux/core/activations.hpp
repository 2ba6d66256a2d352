// luxcpp — NNlib's activation functions as host/device function objects, with derivatives.
//
// Every activation is an empty (or, for leakyrelu / elu, a one-member aggregate) struct with
//
//   template <class V> V operator()(V x) const;     // y = f(x)
//   template <class V> V derivative(V arg) const;   // f'(x), from arg = y or arg = x (see `grad`)
//   static constexpr const char*     name;          // NNlib's spelling, ASCII ("sigmoid" for σ)
//   static constexpr grad_from       grad;          // what `derivative` takes: y or x
//   static constexpr vendor_epilogue epilogue;      // cuBLASLt / cuDNN fusion that is the same f
//   static constexpr int             cost;          // rough flops per element (Eigen-style trait)
//
// One template body serves every element type: float, double, long double, a user number type
// (it needs + - * /, comparisons returning bool, construction from its `value_type` or from
// double, and exp/expm1/log1p/tanh/erfc/abs found by ADL), and an `xsimd::batch<T, A>`. The
// bodies call math functions unqualified after `using std::exp; ...`, so an xsimd batch finds
// xsimd's overloads by ADL (xsimd::exp, xsimd::select on a batch_bool, ...); branches are
// written as `select(cond, a, b)` (a scalar `select(bool, T, T)` is provided here), so scalar
// and SIMD code take the same path bit for bit in the decisions they make. This header never
// includes xsimd (it is compiled by nvcc too); LUX_HOST_DEVICE makes everything callable from
// CUDA kernels.
//
// Derivatives. Like NNlib's `@scalar_rule`s, an activation whose derivative can be written in
// terms of y = f(x) alone declares `grad = grad_from::output` and its `derivative(y)` takes the
// forward *output*, so a backward pass need not keep x (it can even run in place over y). The
// others (gelu, gelu_erf, swish, mish) declare `grad_from::input` and take x. The free function
// `lux::derivative_at(f, x, y)` picks the right one. For the fast approximations (sigmoid_fast,
// tanh_fast) the derivative is that of the *exact* function expressed in y (σ' = y(1 - y),
// tanh' = 1 - y²), exactly as NNlib's rules do; it is not the derivative of the approximation.
//
//   name          f(x)                                   derivative            from
//   identity      x                                      1                     output
//   relu          x < 0 ? 0 : x                          y > 0                 output
//   relu6         clamp(x, 0, 6)                         0 < y < 6             output
//   leakyrelu     x > 0 ? x : a x          (a = 0.01)    y > 0 ? 1 : a         output (a >= 0)
//   elu           x >= 0 ? x : α expm1(x)  (α = 1)       y >= 0 ? 1 : y + α    output (α > 0)
//   selu          λ (x > 0 ? x : α expm1(x))             y > 0 ? λ : y + λα    output
//   gelu          x σ(√(8/π) x (1 + 0.044715 x²))        (see below)           input
//                 (= 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))), NNlib's default gelu = gelu_tanh)
//   gelu_erf      x Φ(x) = (x/2) erfc(-x/√2)             Φ(x) + x φ(x)         input
//   sigmoid       1 / (1 + exp(-x))                      y (1 - y)             output
//   hardsigmoid   clamp((x + 3) / 6, 0, 1)               0 < y < 1 ? 1/6 : 0   output
//   tanh_         tanh(x)                                (1 - y)(1 + y)        output
//   hardtanh      clamp(x, -1, 1)                        -1 < y < 1            output
//   softplus      log1p(exp(-|x|)) + relu(x)             -expm1(-y) = σ(x)     output
//   softsign      x / (1 + |x|)                          (1 - |y|)²            output
//   swish (silu)  x σ(x)                                 σ + x σ (1 - σ)       input
//   mish          x tanh(softplus(x))                    see mish              input
//   logsigmoid    -softplus(-x)                          -expm1(y) = σ(-x)     output
//   sigmoid_fast  σ(x), NNlib's fast version             y (1 - y)             output
//   tanh_fast     tanh(x), NNlib's rational/poly approx  (1 - y)(1 + y)        output
//
// Decisions taken from NNlib (src/activations.jl, ext/NNlibSpecialFunctionsExt.jl):
//   * relu(x) = ifelse(x < 0, 0, x): NaN propagates and relu(-0.0) = -0.0 (it is *not* Julia's
//     max(0, x), which would give +0.0). The SIMD path uses the same select, so both agree.
//     relu'(0) = 0. clamp (relu6, hardtanh, hardsigmoid) is Julia's clamp:
//     x > hi ? hi : (x < lo ? lo : x), so NaN propagates and -0.0 stays -0.0 in relu6.
//   * leakyrelu: x > 0 ? x : a x, leakyrelu'(0) = a. elu: x >= 0 ? x : α(e^x - 1), elu'(0) = 1;
//     selu uses x > 0 instead, so selu'(0) = λα (NNlib's deriv_selu(Ω) = Ω > 0 ? λ : Ω + λα).
//   * derivatives at kinks are those of NNlib's rules: relu'(0) = 0, relu6'(0) = relu6'(6) = 0,
//     hardtanh'(±1) = 0, hardsigmoid'(±3) = 0.
//   * hardsigmoid' is 1/6 inside and 0 in the saturated regions. NNlib's rule returned 1 there
//     until FluxML/NNlib.jl#706 fixed it; this follows the fixed (mathematically right) rule.
//   * sigmoid_fast(x) = σ(x) with exp replaced by a fast exp, then 1 for x > 40 and 0 for
//     x < -80 (NNlib's clamps; in double / float σ(40) already rounds to 1, but for x < -80 it
//     returns 0 where σ(x) < 1.9e-35). On the host "fast exp" is the ordinary exp (as Julia's
//     @fastmath exp is on the CPU), so the only difference to sigmoid is that clamp. In CUDA
//     device code for float it is __expf, which is what CUDA.jl maps NNlib's `@fastmath exp` to
//     (CUDA documents 2 + floor(1.173|x|) ulp for __expf; not measured here).
//   * tanh_fast is NNlib's: float — x·n(x²)/d(x²) with n, d quartics in x² (a Remez fit,
//     NNlib.jl #345), and sign(x) once x² >= 66; double — (e^{2x} - 1)/(e^{2x} + 1) with an odd
//     polynomial for x² < 0.017 and sign(x) for x² > 900; any other element type — tanh.
//     Measured against long double tanh (tests/core/test_activations.cpp; NNlib documents
//     "may be wrong by 5 eps"):
//       float : every float in (0, 9] (the formula is exactly odd): max error 3.2e-7 absolute,
//               i.e. 5.3 ulp of the result just below 1 (at x = 6.2434), 2.65 eps relative;
//       double: 2M points of [0, 32]: max 2.4 ulp, 2.2 eps relative.
//     Tiny inputs come back exactly (tanh_fast(1e-30) = 1e-30); tanh_fast(±0) = ±0. For
//     comparison, sigmoid (and sigmoid_fast on the host) is within 2.5 ulp on [-80, 40].
//   * Numerical forms differ from NNlib's literal source where that is more accurate, never in
//     the mathematical function: elu/selu use expm1(x) instead of exp(x) - 1; gelu uses the sigmoid
//     form x σ(2z) of 0.5x(1 + tanh z) (NNlib's gelu_sigmoid; no cancellation for x << 0);
//     gelu_erf uses (x/2) erfc(-x/√2) instead of (x/2)(1 + erf(x/√2)); swish and gelu use the
//     exact sigmoid where NNlib uses sigmoid_fast / tanh_fast; tanh' is (1 - y)(1 + y).
//   * Parameters (leakyrelu::a, elu::alpha) are doubles converted to the element type; the
//     other constants are stored in long double and rounded once to the element type.
//   * Finite inputs never produce NaN, in value or derivative (softplus(1000) = 1000,
//     logsigmoid(-1000) = -1000, sigmoid(-1000) = 0 exactly, in float and double). At ±inf the
//     products x·σ(x) etc. are NaN exactly as in NNlib: swish, mish, gelu, gelu_erf at -inf and
//     softsign at ±inf.
//
// SIMD accuracy (xsimd 8.1, measured): exp / expm1 / log1p / tanh agree with libm to an ulp or
// two, but xsimd's exp flushes results below the smallest normal number to zero (libm returns
// subnormals), so e.g. gelu(-10.06f) is -0 on a batch and -2.8e-38 on a scalar; and xsimd's erfc
// is inaccurate — float up to 40 ulp, double up to 1.8e4 ulp (4e-12 relative) for x > -8.5 and
// up to 6e-9 relative further out, where gelu_erf(x) < 1e-16 — which gelu_erf on a batch
// inherits (libm's / CUDA's erfc are within 1-2 ulp).
//
// Vendor fusion (`epilogue`): cuBLASLt offers RELU and GELU (the tanh approximation) epilogues,
// cuDNN relu / sigmoid / tanh / identity activation modes and GELU_ERF in its graph API. Only an
// exact match is marked: relu → relu, gelu → gelu, gelu_erf → gelu_erf, sigmoid → sigmoid,
// tanh_ → tanh, identity → identity; everything else is `none` (tanh_fast / sigmoid_fast are
// approximations of a different function and are not marked). A vendor relu may differ on
// NaN / -0.0 (cuDNN does not propagate NaN by default).
#pragma once

#include <cmath>
#include <concepts>
#include <tuple>
#include <type_traits>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN

/// What an activation's `derivative` takes: the forward input x or the forward output y.
enum class grad_from { input, output };

/// The vendor (cuBLASLt epilogue / cuDNN activation mode) computing the same function.
enum class vendor_epilogue { none, relu, gelu, gelu_erf, sigmoid, tanh, identity };

namespace detail::act {

// Element type of V: T for xsimd::batch<T, A> (or any type with a value_type), else V.
template <class V, class = void>
struct scalar_type {
  using type = V;
};
template <class V>
struct scalar_type<V, std::void_t<typename V::value_type>> {
  using type = typename V::value_type;
};
template <class V>
using scalar_type_t = typename scalar_type<V>::type;

// True for SIMD packets (types with value_type and arch_type, i.e. xsimd::batch).
template <class V, class = void>
inline constexpr bool is_packet_v = false;
template <class V>
inline constexpr bool is_packet_v<V, std::void_t<typename V::value_type, typename V::arch_type>> =
    true;

// The type constants are written in before conversion to V: the element type when it is a
// built-in floating type, else double (a user number type is built from a double).
template <class V>
using literal_t =
    std::conditional_t<std::is_floating_point_v<scalar_type_t<V>>, scalar_type_t<V>, double>;

/// The constant c as a V (a scalar, or a batch with c in every lane).
template <class V, class C>
LUX_HOST_DEVICE constexpr V cst(C c) {
  return V(static_cast<scalar_type_t<V>>(c));
}

/// Scalar counterpart of xsimd::select: c ? a : b (both evaluated).
template <class T>
LUX_HOST_DEVICE constexpr T select(bool c, T a, T b) {
  return c ? a : b;
}

/// Julia's clamp: x > hi ? hi : (x < lo ? lo : x) — NaN and -0.0 pass through.
template <class V>
LUX_HOST_DEVICE constexpr V clamp(V x, V lo, V hi) {
  return select(x > hi, hi, select(x < lo, lo, x));
}

/// exp, but __expf for float in CUDA device code (Julia's @fastmath exp under CUDA.jl).
template <class V>
LUX_HOST_DEVICE V fast_exp(V x) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<V, float>) {
    return __expf(x);
  } else
#endif
  {
    using std::exp;
    return exp(x);
  }
}

// Irrational / decimal constants at the precision of S (float, double or long double); only
// the float and double instantiations appear in device code.
template <class S>
inline constexpr S sqrt_8_over_pi = S(1.595769121605730711759784239737527474L);  // √(8/π)
template <class S>
inline constexpr S inv_sqrt2 = S(0.7071067811865475244008443621048490393L);  // 1/√2
template <class S>
inline constexpr S inv_sqrt_2pi = S(0.3989422804014326779399460599343818685L);  // 1/√(2π)
template <class S>
inline constexpr S one_sixth = S(0.1666666666666666666666666666666666667L);
template <class S>
inline constexpr S gelu_a = S(0.044715L);
template <class S>
inline constexpr S gelu_3a = S(0.134145L);  // 3 * 0.044715
template <class S>
inline constexpr S selu_lambda = S(1.0507009873554804934193349852946L);
template <class S>
inline constexpr S selu_alpha = S(1.6732632423543772848170429916717L);
template <class S>
inline constexpr S selu_lambda_alpha = S(1.758099340847376859940217520812319342L);

}  // namespace detail::act

// ---------------------------------------------------------------------------------------------
// Piecewise linear
// ---------------------------------------------------------------------------------------------

/// identity(x) = x. Derivative from the output (trivially 1).
struct identity {
  static constexpr const char* name = "identity";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::identity;
  static constexpr int cost = 0;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    return x;
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V /*y*/) const {
    return detail::act::cst<V>(1);
  }
};

/// relu(x) = x < 0 ? 0 : x (NNlib; NaN and -0.0 pass through). Derivative from the output:
/// y > 0 ? 1 : 0, so relu'(0) = 0.
struct relu {
  static constexpr const char* name = "relu";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::relu;
  static constexpr int cost = 1;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    using detail::act::cst;
    using detail::act::select;
    return select(x < cst<V>(0), cst<V>(0), x);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    using detail::act::select;
    return select(y > cst<V>(0), cst<V>(1), cst<V>(0));
  }
};

/// relu6(x) = clamp(x, 0, 6). Derivative from the output: 0 < y < 6 ? 1 : 0.
struct relu6 {
  static constexpr const char* name = "relu6";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 2;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    using detail::act::cst;
    return detail::act::clamp(x, cst<V>(0), cst<V>(6));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    using detail::act::select;
    return select(y > cst<V>(0), select(y < cst<V>(6), cst<V>(1), cst<V>(0)), cst<V>(0));
  }
};

/// leakyrelu(x) = x > 0 ? x : a x, a = 0.01 by default (`lux::leakyrelu{0.2}`). Derivative from
/// the output, y > 0 ? 1 : a, valid for a >= 0 (then sign(y) = sign(x)); leakyrelu'(0) = a.
struct leakyrelu {
  double a = 0.01;

  static constexpr const char* name = "leakyrelu";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 2;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    using detail::act::cst;
    using detail::act::select;
    return select(x > cst<V>(0), x, cst<V>(a) * x);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    using detail::act::select;
    return select(y > cst<V>(0), cst<V>(1), cst<V>(a));
  }
};

/// hardtanh(x) = clamp(x, -1, 1). Derivative from the output: -1 < y < 1 ? 1 : 0.
struct hardtanh {
  static constexpr const char* name = "hardtanh";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 2;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    using detail::act::cst;
    return detail::act::clamp(x, cst<V>(-1), cst<V>(1));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    using detail::act::select;
    return select(y > cst<V>(-1), select(y < cst<V>(1), cst<V>(1), cst<V>(0)), cst<V>(0));
  }
};

/// hardsigmoid(x) = NNlib's hardσ = clamp((x + 3) / 6, 0, 1). Derivative from the output:
/// 0 < y < 1 ? 1/6 : 0 (NNlib before #706 returned 1 in the saturated regions; see above).
struct hardsigmoid {
  static constexpr const char* name = "hardsigmoid";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 4;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V operator()(V x) const {
    using detail::act::cst;
    return detail::act::clamp((x + cst<V>(3)) / cst<V>(6), cst<V>(0), cst<V>(1));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using namespace detail::act;
    const V sixth = cst<V>(one_sixth<literal_t<V>>);
    return select(y > cst<V>(0), select(y < cst<V>(1), sixth, cst<V>(0)), cst<V>(0));
  }
};

// ---------------------------------------------------------------------------------------------
// Exponential linear units
// ---------------------------------------------------------------------------------------------

/// elu(x) = x >= 0 ? x : α expm1(x), α = 1 by default (`lux::elu{0.5}`). Derivative from the
/// output (NNlib's deriv_elu): y >= 0 ? 1 : y + α, valid for α > 0; elu'(0) = 1.
struct elu {
  double alpha = 1;

  static constexpr const char* name = "elu";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 22;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using detail::act::cst;
    using detail::act::select;
    using std::expm1;
    return select(x >= cst<V>(0), x, cst<V>(alpha) * expm1(x));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    using detail::act::select;
    return select(y >= cst<V>(0), cst<V>(1), y + cst<V>(alpha));
  }
};

/// selu(x) = λ (x > 0 ? x : α expm1(x)), λ ≈ 1.0507, α ≈ 1.6733. Derivative from the output
/// (NNlib's deriv_selu): y > 0 ? λ : y + λα; selu'(0) = λα.
struct selu {
  static constexpr const char* name = "selu";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 23;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using namespace detail::act;
    using std::expm1;
    using L = literal_t<V>;
    return cst<V>(selu_lambda<L>) * select(x > cst<V>(0), x, cst<V>(selu_alpha<L>) * expm1(x));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using namespace detail::act;
    using L = literal_t<V>;
    return select(y > cst<V>(0), cst<V>(selu_lambda<L>), y + cst<V>(selu_lambda_alpha<L>));
  }
};

// ---------------------------------------------------------------------------------------------
// Sigmoids
// ---------------------------------------------------------------------------------------------

/// sigmoid(x) = σ(x) = 1 / (1 + exp(-x)), computed from t = exp(-|x|) as x >= 0 ? 1/(1+t) :
/// t/(1+t) (no overflow; sigmoid(-1000) = 0 exactly). Derivative from the output: y (1 - y).
struct sigmoid {
  static constexpr const char* name = "sigmoid";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::sigmoid;
  static constexpr int cost = 33;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using detail::act::cst;
    using detail::act::select;
    using std::abs;
    using std::exp;
    const V t = exp(-abs(x));
    const V r = cst<V>(1) / (cst<V>(1) + t);
    return select(x >= cst<V>(0), r, t * r);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    return y * (detail::act::cst<V>(1) - y);
  }
};

/// sigmoid_fast: NNlib's faster σ — the formula of `sigmoid` with a fast exp, then 1 for x > 40
/// and 0 for x < -80. Derivative from the output, that of the exact σ: y (1 - y).
struct sigmoid_fast {
  static constexpr const char* name = "sigmoid_fast";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 30;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using detail::act::cst;
    using detail::act::select;
    using std::abs;
    const V t = detail::act::fast_exp(-abs(x));
    const V r = cst<V>(1) / (cst<V>(1) + t);
    const V y = select(x >= cst<V>(0), r, t * r);
    return select(x > cst<V>(40), cst<V>(1), select(x < cst<V>(-80), cst<V>(0), y));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    return y * (detail::act::cst<V>(1) - y);
  }
};

/// logsigmoid(x) = log σ(x) = -softplus(-x) = -(log1p(exp(-|x|)) + relu(-x)). Derivative from
/// the output: σ(-x) = 1 - exp(y) = -expm1(y).
struct logsigmoid {
  static constexpr const char* name = "logsigmoid";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 42;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using std::abs;
    using std::exp;
    using std::log1p;
    return -(log1p(exp(-abs(x))) + relu{}(-x));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V y) const {
    using std::expm1;
    return -expm1(y);
  }
};

// ---------------------------------------------------------------------------------------------
// Hyperbolic tangents and soft variants
// ---------------------------------------------------------------------------------------------

/// tanh_(x) = tanh(x) (named with a trailing underscore so as not to clash with std::tanh /
/// ::tanh). Derivative from the output: (1 - y)(1 + y) = 1 - y².
struct tanh_ {
  static constexpr const char* name = "tanh";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::tanh;
  static constexpr int cost = 30;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using std::tanh;
    return tanh(x);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    return (cst<V>(1) - y) * (cst<V>(1) + y);
  }
};

/// tanh_fast: NNlib's approximation of tanh (float: rational Remez fit; double: exp formula with
/// a polynomial near 0; other types: tanh). Max error measured: float 5.3 ulp / 2.65 eps
/// relative, double 2.4 ulp (see the header comment). Derivative from the output, that of the
/// exact tanh: (1 - y)(1 + y).
struct tanh_fast {
  static constexpr const char* name = "tanh_fast";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 20;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using namespace detail::act;
    using S = scalar_type_t<V>;
    // The approximations are for built-in float / double scalars and SIMD packets of them; a
    // user number type (e.g. a dual number) gets its own tanh, as in NNlib.
    constexpr bool approx = std::is_same_v<V, S> || is_packet_v<V>;
    if constexpr (approx && std::is_same_v<S, float>) {
      // Coefficients of NNlib.jl's tanh_fast(::Float32) (NNlib.jl#345, Remez.jl fit).
      const V x2 = x * x;
      const V n =
          cst<V>(1.0f) + x2 * (cst<V>(0.1346604f) +
                               x2 * (cst<V>(0.0035974074f) +
                                     x2 * (cst<V>(2.2332108e-5f) + x2 * cst<V>(1.587199e-8f))));
      const V d =
          cst<V>(1.0f) + x2 * (cst<V>(0.4679937f) +
                               x2 * (cst<V>(0.026262015f) +
                                     x2 * (cst<V>(0.0003453992f) + x2 * cst<V>(8.7767893e-7f))));
      const V sign = select(x < cst<V>(0), cst<V>(-1), cst<V>(1));
      return select(x2 >= cst<V>(66), sign, x * (n / d));  // NaN takes the rational branch
    } else if constexpr (approx && std::is_same_v<S, double>) {
      // NNlib.jl's tanh_fast(::Float64): the exp formula is inaccurate near 0, where an odd
      // polynomial takes over; beyond |x| = 30 the result is ±1.
      using std::exp;
      const V e = exp(x + x);
      const V y = (e - cst<V>(1)) / (e + cst<V>(1));
      const V x2 = x * x;
      const V p =
          x * (cst<V>(1.0) + x2 * (cst<V>(-0.33333333333324583) +
                                   x2 * (cst<V>(0.13333333325511604) +
                                         x2 * (cst<V>(-0.05396823125794372) +
                                               x2 * (cst<V>(0.02186660872609521) +
                                                     x2 * cst<V>(-0.008697141630499953))))));
      const V sign = select(x < cst<V>(0), cst<V>(-1), cst<V>(1));
      return select(x2 > cst<V>(900), sign, select(x2 < cst<V>(0.017), p, y));
    } else {
      using std::tanh;
      return tanh(x);
    }
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE constexpr V derivative(V y) const {
    using detail::act::cst;
    return (cst<V>(1) - y) * (cst<V>(1) + y);
  }
};

/// softplus(x) = log(1 + exp(x)) = log1p(exp(-|x|)) + relu(x) (NNlib's stable form;
/// softplus(1000) = 1000). Derivative from the output: σ(x) = 1 - exp(-y) = -expm1(-y).
struct softplus {
  static constexpr const char* name = "softplus";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 42;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using std::abs;
    using std::exp;
    using std::log1p;
    return log1p(exp(-abs(x))) + relu{}(x);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V y) const {
    using std::expm1;
    return -expm1(-y);
  }
};

/// softsign(x) = x / (1 + |x|). Derivative from the output: 1/(1 + |x|)² = (1 - |y|)². (For
/// |x| >> 1 the absolute error of 1 - |y| is half an ulp of 1, i.e. the derivative's absolute
/// error is about eps/(1 + |x|).)
struct softsign {
  static constexpr const char* name = "softsign";
  static constexpr grad_from grad = grad_from::output;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 12;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using detail::act::cst;
    using std::abs;
    return x / (cst<V>(1) + abs(x));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V y) const {
    using detail::act::cst;
    using std::abs;
    const V d = cst<V>(1) - abs(y);
    return d * d;
  }
};

// ---------------------------------------------------------------------------------------------
// Gated (x times a gate): gelu, gelu_erf, swish, mish — derivatives need the input
// ---------------------------------------------------------------------------------------------

/// gelu(x) = 0.5x (1 + tanh(√(2/π)(x + 0.044715x³))) — NNlib's default `gelu` (= gelu_tanh),
/// evaluated as x σ(u), u = √(8/π) x (1 + 0.044715x²). Derivative from the input:
/// σ(u) + x σ(u) σ(-u) √(8/π)(1 + 3·0.044715x²).
struct gelu {
  static constexpr const char* name = "gelu";
  static constexpr grad_from grad = grad_from::input;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::gelu;
  static constexpr int cost = 40;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using namespace detail::act;
    using L = literal_t<V>;
    const V u = cst<V>(sqrt_8_over_pi<L>) * x * (cst<V>(1) + cst<V>(gelu_a<L>) * (x * x));
    return x * sigmoid{}(u);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V x) const {
    using namespace detail::act;
    using std::abs;
    using std::exp;
    using L = literal_t<V>;
    const V x2 = x * x;
    const V c = cst<V>(sqrt_8_over_pi<L>);
    const V u = c * x * (cst<V>(1) + cst<V>(gelu_a<L>) * x2);
    const V du = c * (cst<V>(1) + cst<V>(gelu_3a<L>) * x2);
    const V t = exp(-abs(u));
    const V r = cst<V>(1) / (cst<V>(1) + t);
    const V s = select(u >= cst<V>(0), r, t * r);  // σ(u)
    const V ds = t * r * r;                        // σ(u) σ(-u), no cancellation
    // Once t underflows the second term is 0; selecting it also keeps x·du·0 = inf·0 (x² may
    // overflow for huge finite x) from becoming NaN.
    return s + select(t > cst<V>(0), x * du * ds, cst<V>(0));
  }
};

/// gelu_erf(x) = x Φ(x) = 0.5x (1 + erf(x/√2)), evaluated as (x/2) erfc(-x/√2) (accurate for
/// x << 0). Derivative from the input: Φ(x) + x φ(x), φ(x) = exp(-x²/2)/√(2π).
struct gelu_erf {
  static constexpr const char* name = "gelu_erf";
  static constexpr grad_from grad = grad_from::input;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::gelu_erf;
  static constexpr int cost = 35;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using namespace detail::act;
    using std::erfc;
    using L = literal_t<V>;
    return cst<V>(0.5) * x * erfc(-x * cst<V>(inv_sqrt2<L>));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V x) const {
    using namespace detail::act;
    using std::erfc;
    using std::exp;
    using L = literal_t<V>;
    const V Phi = cst<V>(0.5) * erfc(-x * cst<V>(inv_sqrt2<L>));
    const V phi = cst<V>(inv_sqrt_2pi<L>) * exp(cst<V>(-0.5) * (x * x));
    return Phi + x * phi;
  }
};

/// swish(x) = x σ(x) (also called SiLU). Derivative from the input: σ(x) + x σ(x) σ(-x).
struct swish {
  static constexpr const char* name = "swish";
  static constexpr grad_from grad = grad_from::input;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 35;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    return x * sigmoid{}(x);
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V x) const {
    using detail::act::cst;
    using detail::act::select;
    using std::abs;
    using std::exp;
    const V t = exp(-abs(x));
    const V r = cst<V>(1) / (cst<V>(1) + t);
    const V s = select(x >= cst<V>(0), r, t * r);  // σ(x)
    return s + x * (t * r * r);                    // t r² = σ(x) σ(-x)
  }
};
using silu = swish;

/// mish(x) = x tanh(softplus(x)). Derivative from the input, with s = softplus(x),
/// h = tanh(s): h + x (1 - h)(1 + h) σ(x).
struct mish {
  static constexpr const char* name = "mish";
  static constexpr grad_from grad = grad_from::input;
  static constexpr vendor_epilogue epilogue = vendor_epilogue::none;
  static constexpr int cost = 75;

  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V operator()(V x) const {
    using std::tanh;
    return x * tanh(softplus{}(x));
  }
  template <class V>
  [[nodiscard]] LUX_HOST_DEVICE V derivative(V x) const {
    using detail::act::cst;
    using std::tanh;
    const V h = tanh(softplus{}(x));
    return h + x * ((cst<V>(1) - h) * (cst<V>(1) + h)) * sigmoid{}(x);
  }
};

// ---------------------------------------------------------------------------------------------
// Concept and traits
// ---------------------------------------------------------------------------------------------

/// An activation functor: a name, the kind of derivative, and float -> float value/derivative.
template <class F>
concept activation_function = requires(const F& f, float x) {
  { F::name } -> std::convertible_to<const char*>;
  { F::grad } -> std::convertible_to<grad_from>;
  { f(x) } -> std::same_as<float>;
  { f.derivative(x) } -> std::same_as<float>;
};

/// Compile-time facts about an activation functor.
template <activation_function F>
struct activation_traits {
  /// derivative() takes y = f(x) (so the backward pass needs only the output).
  static constexpr bool uses_output = F::grad == grad_from::output;
  /// f is the identity: a layer may skip the activation pass and its backward entirely.
  static constexpr bool is_identity = std::is_same_v<std::remove_cv_t<F>, identity>;
  static constexpr vendor_epilogue epilogue = F::epilogue;
  static constexpr int cost = F::cost;
  static constexpr const char* name = F::name;
};

/// The library's own activation functors, as a type list (std::tuple of the types): the run-time
/// instruction-set dispatch (lux/core/dispatch.hpp) precompiles the looped kernels for these.
using builtin_activations = std::tuple<identity, relu, relu6, leakyrelu, hardtanh, hardsigmoid, elu,
                                       selu, sigmoid, sigmoid_fast, logsigmoid, tanh_, tanh_fast,
                                       softplus, softsign, gelu, gelu_erf, swish, mish>;

namespace detail {
template <class F, class List>
inline constexpr bool is_in_list_v = false;
template <class F, class... Fs>
inline constexpr bool is_in_list_v<F, std::tuple<Fs...>> = (std::is_same_v<F, Fs> || ...);
}  // namespace detail

/// F is one of lux's own activation functors (a user functor with the same `name` is not).
template <class F>
inline constexpr bool is_builtin_activation_v =
    detail::is_in_list_v<std::remove_cv_t<F>, builtin_activations>;

/// f'(x) given both x and y = f(x): passes whichever the functor's derivative takes.
template <activation_function F, class V>
[[nodiscard]] LUX_HOST_DEVICE V derivative_at(const F& f, V x, V y) {
  if constexpr (F::grad == grad_from::output) {
    return f.derivative(y);
  } else {
    return f.derivative(x);
  }
}

LUX_NAMESPACE_END
