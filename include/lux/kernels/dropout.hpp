// luxcpp — dropout and alpha dropout (LuxLib's `dropout` and `alpha_dropout`), with backward.
//
// dropout(rng, x, p, training, invp, dims = lux::all_dims) → {y, mask, rng′}
//   training:  u_i = rng.uniform_at<T>(i) over the *mask* shape (float: 24-bit, double: 53-bit
//              uniforms in [0, 1); other element types: the double one), i the flat column-major
//              index into the mask;
//              mask = (u > p) · invp  (computed as a select: p = 1 with invp = ∞ gives 0, not NaN),
//              y = x .* mask (broadcast), rng′ = rng.advanced(1).
//   not training: y = a copy of x, mask = a (1, …, 1) tensor holding 1, rng′ = rng (unchanged).
//              (LuxLib returns x itself as the "meaningless" mask; a unit mask makes
//              dropout_backward(dy, mask) the identity's pullback, which is what it then is.)
// dropout(rng, x, mask, p, training, update_mask, invp, dims) → {y, mask, rng′}
//   training && update_mask: the plain form (a fresh mask; the given one is ignored);
//   training && !update_mask: y = x .* mask with the given mask, whose shape must equal the
//              dropout mask shape (else lux::shape_error); rng′ = rng (untouched);
//   not training: y = a copy of x, the given mask, rng′ = rng.
//   The returned mask is the given one (moved when passed as an rvalue Tensor, else copied).
// dropout_backward(dy, mask) → {dx = dy .* mask}   (mask broadcast along its size-1 dimensions)
//
// p must be in [0, 1] (lux::argument_error naming the kernel and the value otherwise; NaN too).
//   p = 0: every element is kept (mask = invp, so y = x for invp = 1), even where u = 0 exactly —
//          LuxLib's u > p would drop such elements with probability 2^-24 (float); we keep them.
//   p = 1: nothing is kept: mask = 0 and y = 0 (LuxLib gets 0 from Julia's false · Inf == 0).
// invp = 1/(1 - p) is supplied by the caller (as in LuxLib) and used as given.
// The comparison is u > T(p) in the element type T.
//
// dims: the dimensions along which the mask varies (size(x, d) there, 1 elsewhere, so the mask
// broadcasts along the others). lux::all_dims (Julia's `:`, the default), or a list of **0-based**
// dimension indices: Julia's dims = 3 on (W, H, C, N) (one mask value per channel, shared by all
// samples) is `{2}` (or just `2`); per (channel, sample) is `{2, 3}`. A dimension ≥ rank(x) or
// < 0 is an argument_error (Julia would silently ignore one past the rank; in C++ that is more
// likely a 1-based index by mistake).
//
// rng′: one operation consumes one counter value no matter how many numbers it draws, so the
// returned stream is rng.advanced(1) (see lux/core/random.hpp); a caller doing several dropouts in
// a row threads rng′ through them.
//
// alpha_dropout(rng, x, p, training) and alpha_dropout(rng, x, p, training, α, A, B)
//   → {y, rng′, saved}. SELU-preserving dropout (Klambauer et al. 2017) with full-shape u:
//   α = -1.7580993408473766 (= -λα of selu), A = 1/√((1-p)(1 + p α²)), B = -A α p;
//   y = A · (u > p ? x : α) + B  (p = 0.5: A = 0.886405, B = 0.779194; p = 0.1: A = 0.921285,
//   B = 0.161971). Not training: y = a copy of x, rng′ = rng.
//   p = 1 in the first form: A = ∞ and Lux's y is NaN; here y = 0, the limit of A α (1 - p) as
//   p → 1 (and dx = 0). The second form uses α, A, B as given.
// alpha_dropout_backward(dy, saved) → {dx = dy · [u > p] · A}. Instead of a stored mask, `saved`
//   holds the rng the forward drew from (24 bytes plus p and A) and the mask is regenerated from
//   (key, counter, index) in the backward pass: no mask memory, bit-identical decisions.
//   Not training: dx = dy.
//
// Modes: generic_op (lux/kernels/generic/dropout.hpp) and looped_op
// (lux/kernels/looped/dropout.hpp, Philox + multiply in one SIMD pass, OpenMP) draw identical
// masks; every function also takes the mode tag first. Values are exact: y is x · invp or 0 (one
// rounding of the product).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/random.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/dropout.hpp"
#include "lux/kernels/looped/dropout.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// The result of dropout: the output, the mask (its shape is dropout_mask_shape(x, dims)), and
/// the stream for the next random operation.
template <class T, std::size_t N, class Device = cpu>
struct dropout_result {
  Tensor<T, N, Device> y;
  Tensor<T, N, Device> mask;
  ::lux::rng rng;
};

/// The gradient of dropout_backward.
template <class T, std::size_t N, class Device = cpu>
struct dropout_gradients {
  Tensor<T, N, Device> dx;
};

/// α, A, B of alpha dropout for a probability p (Lux's formulas; A = ∞ at p = 1).
struct alpha_dropout_constants {
  double alpha;
  double A;
  double B;
};

/// What alpha_dropout_backward needs: the stream the forward drew u from, p, A, whether the
/// forward was in training mode, and its element count (checked against dy).
struct alpha_dropout_saved {
  ::lux::rng rng{0};
  double p = 0;
  double A = 1;
  bool training = false;
  index_t numel = 0;
};

/// The result of alpha_dropout.
template <class T, std::size_t N, class Device = cpu>
struct alpha_dropout_result {
  Tensor<T, N, Device> y;
  ::lux::rng rng;
  alpha_dropout_saved saved;
};

/// The gradient of alpha_dropout_backward.
template <class T, std::size_t N, class Device = cpu>
struct alpha_dropout_gradients {
  Tensor<T, N, Device> dx;
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The shape of a dropout mask for x's shape: xs[d] along the dims in `dims`, 1 elsewhere.
template <std::size_t N>
constexpr shape_t<N> dropout_mask_shape(const shape_t<N>& xs, const dim_set& dims) {
  shape_t<N> ms{};
  for (std::size_t d = 0; d < N; ++d) ms[d] = dims.contains(d) ? xs[d] : 1;
  return ms;
}

/// α = -1.7580993408473766, A = 1/√((1-p)(1 + p α²)), B = -A α p; p outside [0, 1] →
/// argument_error.
inline alpha_dropout_constants make_alpha_dropout_constants(double p) {
  require<argument_error>(p >= 0 && p <= 1, "alpha_dropout: p must be in [0, 1], got ", p);
  constexpr double alpha = -1.7580993408473766;
  const double A = 1 / std::sqrt((1 - p) * (1 + p * alpha * alpha));
  return {alpha, A, -A * alpha * p};
}

namespace detail::dropout {
template <class X>
using tensor_t = Tensor<array_value_t<X>, array_rank_v<X>, array_device_t<X>>;

inline void check_p(const char* op, double p) {
  require<argument_error>(p >= 0 && p <= 1, op, ": p must be in [0, 1], got ", p);
}
template <class X>
tensor_t<X> copy_of(const X& x, const char* op) {
  const auto v = as_view(x);
  auto out = tensor_t<X>::uninitialized(v.shape(), op);
  device_allocator<array_device_t<X>>::copy(out.data(), v.data(), v.numel());
  return out;
}
/// The (1, …, 1) mask holding 1 returned when not training.
template <class T, std::size_t N, class D>
Tensor<T, N, D> unit_mask() {
  shape_t<N> ones{};
  for (auto& s : ones) s = 1;
  Tensor<T, N, D> m(ones);
  m.fill(T(1));
  return m;
}
}  // namespace detail::dropout

// ---------------------------------------------------------------------------------------------
// dropout
// ---------------------------------------------------------------------------------------------

/// Dropout with a fresh mask in the given mode (see the file comment).
template <operation_mode M, array X>
[[nodiscard]] dropout_result<array_value_t<X>, array_rank_v<X>, array_device_t<X>> dropout(
    M mode, const rng& r, const X& x, double p, bool training, double invp,
    dim_set dims = all_dims) {
  using namespace detail::dropout;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  using D = array_device_t<X>;
  static_assert(N >= 1, "lux::dropout: x must have rank >= 1");
  static_assert(array_traits_t<X>::contiguous, "lux::dropout: x must be contiguous");
  check_p("dropout", p);
  detail::check_dim_set<N>("dropout", dims);

  const auto xv = as_view(x);
  if (!training) return {copy_of(x, "dropout"), unit_mask<T, N, D>(), r};

  const shape_t<N> ms = dropout_mask_shape(xv.shape(), dims);
  auto mask = Tensor<T, N, D>::uninitialized(ms, "dropout");
  auto y = Tensor<T, N, D>::uninitialized(xv.shape(), "dropout");
  const T threshold = impl::dropout_threshold<T>(p);
  const T scale = static_cast<T>(invp);
  if (ms == xv.shape()) {
    dropout(mode, r, threshold, scale, xv.data(), y.data(), mask.data(), xv.numel());
  } else {
    dropout_mask(mode, r, threshold, scale, mask.data(), mask.numel());
    broadcast_multiply(mode, xv.data(), xv.shape(), static_cast<const T*>(mask.data()), ms,
                       y.data());
  }
  return {std::move(y), std::move(mask), r.advanced(1)};
}

/// Dropout with a fresh mask, mode chosen from x's type.
template <array X>
[[nodiscard]] auto dropout(const rng& r, const X& x, double p, bool training, double invp,
                           dim_set dims = all_dims) {
  return dropout(operation_mode_t<X>{}, r, x, p, training, invp, dims);
}

/// Dropout with a caller-held mask in the given mode: update_mask draws a fresh one, otherwise
/// the given mask (of the dropout mask shape) is applied and rng is left untouched.
template <operation_mode M, array X, array MK>
[[nodiscard]] dropout_result<array_value_t<X>, array_rank_v<X>, array_device_t<X>> dropout(
    M mode, const rng& r, const X& x, MK&& mask, double p, bool training, bool update_mask,
    double invp, dim_set dims = all_dims) {
  using namespace detail::dropout;
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  using D = array_device_t<X>;
  static_assert(std::is_same_v<array_value_t<MK>, T> && array_rank_v<MK> == N &&
                    std::is_same_v<array_device_t<MK>, D>,
                "lux::dropout: mask must have x's element type, rank and device");
  static_assert(array_traits_t<X>::contiguous && array_traits_t<MK>::contiguous,
                "lux::dropout: x and mask must be contiguous");
  check_p("dropout", p);
  detail::check_dim_set<N>("dropout", dims);

  // The given mask, moved out of an rvalue Tensor or copied.
  auto keep_mask = [&] {
    if constexpr (std::is_same_v<std::remove_cvref_t<MK>, Tensor<T, N, D>> &&
                  !std::is_lvalue_reference_v<MK>)
      return std::move(mask);
    else
      return copy_of(mask, "dropout");
  };
  if (!training) return {copy_of(x, "dropout"), keep_mask(), r};
  if (update_mask) return dropout(mode, r, x, p, true, invp, dims);

  const auto xv = as_view(x);
  const auto mv = as_view(mask);
  const shape_t<N> ms = dropout_mask_shape(xv.shape(), dims);
  require<shape_error>(mv.shape() == ms, "dropout: mask has shape ", mv.shape(), ", expected ", ms,
                       " (the dropout mask shape of x ", xv.shape(), " with these dims)");
  auto y = Tensor<T, N, D>::uninitialized(xv.shape(), "dropout");
  broadcast_multiply(mode, xv.data(), xv.shape(), static_cast<const T*>(mv.data()), ms, y.data());
  return {std::move(y), keep_mask(), r};
}

/// Dropout with a caller-held mask, mode chosen from the arrays' types.
template <array X, array MK>
[[nodiscard]] auto dropout(const rng& r, const X& x, MK&& mask, double p, bool training,
                           bool update_mask, double invp, dim_set dims = all_dims) {
  return dropout(operation_mode_t<X, MK>{}, r, x, std::forward<MK>(mask), p, training, update_mask,
                 invp, dims);
}

/// {dx = dy .* mask} (mask broadcast along its size-1 dimensions) in the given mode.
template <operation_mode M, array DY, array MK>
[[nodiscard]] dropout_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
dropout_backward(M mode, const DY& dy, const MK& mask) {
  using namespace detail::dropout;
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(std::is_same_v<array_value_t<MK>, T> && array_rank_v<MK> == N,
                "lux::dropout_backward: mask must have dy's element type and rank");
  static_assert(array_traits_t<DY>::contiguous && array_traits_t<MK>::contiguous,
                "lux::dropout_backward: dy and mask must be contiguous");
  const auto dyv = as_view(dy);
  const auto mv = as_view(mask);
  bool fits = true;
  for (std::size_t d = 0; d < N; ++d)
    fits = fits && (mv.shape()[d] == dyv.shape()[d] || mv.shape()[d] == 1);
  require<shape_error>(fits, "dropout_backward: mask has shape ", mv.shape(),
                       ", expected the size of dy ", dyv.shape(), " or 1 along each dimension");
  auto dx = tensor_t<DY>::uninitialized(dyv.shape(), "dropout_backward");
  broadcast_multiply(mode, dyv.data(), dyv.shape(), static_cast<const T*>(mv.data()), mv.shape(),
                     dx.data());
  return {std::move(dx)};
}

/// {dx = dy .* mask}, mode chosen from the arrays' types.
template <array DY, array MK>
[[nodiscard]] auto dropout_backward(const DY& dy, const MK& mask) {
  return dropout_backward(operation_mode_t<DY, MK>{}, dy, mask);
}

// ---------------------------------------------------------------------------------------------
// alpha_dropout
// ---------------------------------------------------------------------------------------------

/// Alpha dropout with caller-supplied α, A, B in the given mode (see the file comment).
template <operation_mode M, array X>
[[nodiscard]] alpha_dropout_result<array_value_t<X>, array_rank_v<X>, array_device_t<X>>
alpha_dropout(M mode, const rng& r, const X& x, double p, bool training, double alpha, double A,
              double B) {
  using namespace detail::dropout;
  using T = array_value_t<X>;
  static_assert(array_traits_t<X>::contiguous, "lux::alpha_dropout: x must be contiguous");
  check_p("alpha_dropout", p);
  const auto xv = as_view(x);
  if (!training)
    return {copy_of(x, "alpha_dropout"), r, alpha_dropout_saved{r, p, 1, false, xv.numel()}};
  auto y = tensor_t<X>::uninitialized(xv.shape(), "alpha_dropout");
  alpha_dropout(mode, r, impl::dropout_threshold<T>(p), static_cast<T>(alpha), static_cast<T>(A),
                static_cast<T>(B), xv.data(), y.data(), xv.numel());
  return {std::move(y), r.advanced(1), alpha_dropout_saved{r, p, A, true, xv.numel()}};
}

/// Alpha dropout with α, A, B from p (p = 1 gives y = 0; see the file comment), given mode.
template <operation_mode M, array X>
[[nodiscard]] auto alpha_dropout(M mode, const rng& r, const X& x, double p, bool training) {
  detail::dropout::check_p("alpha_dropout", p);
  const alpha_dropout_constants c = make_alpha_dropout_constants(p);
  if (p == 1) return alpha_dropout(mode, r, x, p, training, c.alpha, 0.0, 0.0);  // the limit
  return alpha_dropout(mode, r, x, p, training, c.alpha, c.A, c.B);
}

/// Alpha dropout with α, A, B from p, mode chosen from x's type.
template <array X>
[[nodiscard]] auto alpha_dropout(const rng& r, const X& x, double p, bool training) {
  return alpha_dropout(operation_mode_t<X>{}, r, x, p, training);
}

/// Alpha dropout with caller-supplied α, A, B, mode chosen from x's type.
template <array X>
[[nodiscard]] auto alpha_dropout(const rng& r, const X& x, double p, bool training, double alpha,
                                 double A, double B) {
  return alpha_dropout(operation_mode_t<X>{}, r, x, p, training, alpha, A, B);
}

/// {dx = dy · [u > p] · A} with u regenerated from saved.rng (dx = dy when not training).
template <operation_mode M, array DY>
[[nodiscard]] alpha_dropout_gradients<array_value_t<DY>, array_rank_v<DY>, array_device_t<DY>>
alpha_dropout_backward(M mode, const DY& dy, const alpha_dropout_saved& saved) {
  using namespace detail::dropout;
  using T = array_value_t<DY>;
  static_assert(array_traits_t<DY>::contiguous,
                "lux::alpha_dropout_backward: dy must be contiguous");
  const auto dyv = as_view(dy);
  require<shape_error>(dyv.numel() == saved.numel, "alpha_dropout_backward: dy has shape ",
                       dyv.shape(), " (", dyv.numel(), " elements), expected ", saved.numel,
                       " elements as in the forward pass");
  if (!saved.training) return {copy_of(dy, "alpha_dropout_backward")};
  auto dx = tensor_t<DY>::uninitialized(dyv.shape(), "alpha_dropout_backward");
  alpha_dropout_backward(mode, saved.rng, impl::dropout_threshold<T>(saved.p),
                         static_cast<T>(saved.A), dyv.data(), dx.data(), dyv.numel());
  return {std::move(dx)};
}

/// {dx = dy · [u > p] · A}, mode chosen from dy's type.
template <array DY>
[[nodiscard]] auto alpha_dropout_backward(const DY& dy, const alpha_dropout_saved& saved) {
  return alpha_dropout_backward(operation_mode_t<DY>{}, dy, saved);
}

LUX_NAMESPACE_END
