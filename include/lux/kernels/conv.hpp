// luxcpp — N-d convolution (LuxLib's fused_conv_bias_activation, NNlib's conv / ∇conv_data /
// ∇conv_filter) and the transposed convolution (Lux ConvTranspose), forward and backward, for 1, 2
// or 3 spatial dimensions.
//
// Shapes (column-major, Lux order; S = number of spatial dimensions, arrays have rank S + 2):
//   x  (I..., C_in, B)      weight (k..., C_in ÷ groups, C_out)     bias (C_out) or lux::none
//   y  (O..., C_out, B)     O = ⌊(I + p_lo + p_hi − d·(k − 1) − 1) / s⌋ + 1   per spatial dim
// With 0-based indices, grp = co ÷ (C_out/groups) the group of output channel co and
// ci = grp·C_in/groups + cl:
//   conv(x, w)[o, co, n] = Σ_{cl, k} w[k', cl, co] · x[o·s − p_lo + k·d, ci, n]     (x = 0 in the
//   padding) k' = K − 1 − k  when cdims.flipped   (true convolution — Lux `Conv`, NNlib's default)
//   k' = k          otherwise            (cross-correlation — Lux `cross_correlation = true`,
//   PyTorch) fused_conv_bias_activation(σ, w, x, b, cdims) = σ.(conv(x, w) .+ b along the channel
//   dim)
// conv_transpose is the data gradient of that convolution, used forward (Lux ConvTranspose,
// implemented with ∇conv_data like NNlib): x (I..., C_in, B), weight (k..., C_out ÷ groups, C_in)
// (Lux's ConvTranspose weight layout, = PyTorch's conv_transpose weight (C_in, C_out/g, k...) in
// memory), y (O..., C_out, B) with O = (I − 1)·s + 1 + (k − 1)·d − (p_lo + p_hi) + outpad.
//
// conv_dims<S> carries stride, padding (one value, per dimension, asymmetric lo/hi per dimension —
// Lux's 2N-tuple (lo₁, hi₁, lo₂, hi₂, …) — or Lux's SamePad), dilation, groups and `flipped`:
//   lux::conv_dims<2>{}.with_stride(2).with_pad(1)                 aggregate defaults: stride 1,
//   lux::conv_dims<2>{}.with_lux_pad({0, 1, 1, 2})                 pad 0, dilation 1, groups 1,
//   lux::conv_dims<2>{}.with_same_pad().with_dilation(2)           flipped = true (Lux Conv)
//   lux::conv_dims<1>{}.with_groups(4).with_cross_correlation()
//   lux::conv_dims<3>{.stride = {2, 2, 1}, .groups = 2}
// SamePad (Lux): total padding d·(k − 1) per dimension, the low side gets the larger half
// (lo = ⌈total/2⌉, hi = ⌊total/2⌋; PyTorch's padding="same" puts it on the high side); the stride
// is ignored; resolved against the weight's kernel size when the kernel runs.
//
// Backward. With z = conv(x, w) .+ b and dz = dy .* σ'(·):
//   ∂x = ∇conv_data(dz, w),  ∂w = ∇conv_filter(x, dz),  ∂b = Σ dz over every dim but the channel.
// σ' is evaluated from the forward output y when activation_traits<σ>::uses_output (identity,
// relu, tanh_, sigmoid, …) and from the pre-activation z otherwise (gelu, swish, …), which
// fused_conv_bias_activation_forward saves for exactly those activations. For conv_transpose the
// roles swap: ∂x = conv(dz, w), ∂w = ∇conv_filter(dz, x).
//
// Public functions (every one also takes an operation mode tag first: lux::generic_op{},
// lux::looped_op{}; without it the mode is operation_mode_t of the arrays):
//   fused_conv_bias_activation(σ, w, x, b, cdims)                        → y
//   fused_conv_bias_activation_forward(σ, w, x, b, cdims)                → {y, z}
//   fused_conv_bias_activation_backward(σ, dy, w, x, b, y, z, cdims)     → {dx, dweight, dbias}
//   conv(x, w, cdims)                                                    → y (no bias, identity)
//   conv_backward_data(dy, w, x_shape, cdims)                            → dx
//   conv_backward_filter(x, dy, w_shape, cdims)                          → dweight
//   conv_backward_bias(dy)                                               → Σ dy over all but
//   channel conv_transpose(x, w, cdims, outpad = 0)                              → y
//   fused_conv_transpose_bias_activation(σ, w, x, b, cdims, outpad = 0)  → y
//   fused_conv_transpose_bias_activation_forward(…)                      → {y, z}
//   fused_conv_transpose_bias_activation_backward(σ, dy, w, x, b, y, z, cdims, outpad = 0)
//                                                                        → {dx, dweight, dbias}
//   conv_transpose_backward_data(dy, w, x_shape, cdims, outpad = 0)      → dx
//   conv_transpose_backward_filter(x, dy, w_shape, cdims, outpad = 0)    → dweight
//   (the transposed backward functions take the forward call's outpad: dy must have exactly
//   the shape of that forward output)
//   conv_output_size / conv_transpose_output_size (per dimension), conv_output_shape /
//   conv_transpose_output_shape (whole arrays, checked) for the layers' outputsize.
// In the backward functions y or z may be lux::none when σ does not need it (the static_asserts
// say which); passing both (e.g. the members of the forward result) always works.
//
// Errors: lux::shape_error naming the kernel and the shapes for a channel mismatch (x's C_in ≠
// weight's C_in/groups · groups), groups not dividing C_in or C_out, a kernel larger than the
// padded input (output size < 1), a zero kernel size, a bias length ≠ C_out, a dy / y / z of the
// wrong shape; lux::argument_error for stride or dilation < 1, negative padding or outpad, groups
// < 1. x and weight must have the same rank S + 2 as conv_dims<S> — ranks are compile-time, so a
// rank mismatch is a static_assert, not an exception.
//
// Modes: generic_op — lux/kernels/generic/conv.hpp (nested loops from the definition, any element
// type); looped_op — lux/kernels/looped/conv.hpp (float/double: im2col + Eigen GEMM with the bias
// and activation applied to each output tile, a direct kernel for depthwise convolutions, col2im
// for the data gradient, OpenMP over samples and pixel tiles).
//
// Accuracy: each output is a sum of C_in/groups·∏k products (each dx / dweight element one of
// C_out/groups·∏k / B·∏O products); generic sums them sequentially, looped in Eigen's blocked
// order. Measured in float against a float64 evaluation, as max|error| / max|reference| on U(−1, 1)
// data: ≤ 1e-6 for y, dx and dweight of a 3×3 conv with 64 channels (576-term sums), a 7×7 stride-2
// conv and a depthwise conv, in both modes (looped 9e-7 for y, ≤ 3e-7 for the gradients). The
// worst-case bound is the usual γ_n = n·eps/(1 − n·eps) of a length-n dot product.
//
// Files: this one holds the public functions of the convolution; ./conv/transpose.hpp those of the
// transposed convolution, ./conv/types.hpp their argument and result types (conv_dims, the result
// structs, the output sizes) and ./conv/detail.hpp the argument checks and geometry they share.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/conv/detail.hpp"
#include "lux/kernels/conv/transpose.hpp"
#include "lux/kernels/conv/types.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Output shapes (checked), for the layers' outputsize
// =================================================================================================

/// The shape of conv(x, w, cdims) for x of shape xs and weight of shape ws (throws like conv).
template <std::size_t S>
shape_t<S + 2> conv_output_shape(const shape_t<S + 2>& xs, const shape_t<S + 2>& ws,
                                 const conv_dims<S>& cd) {
  return detail::conv::out_shape<S>(detail::conv::forward_geometry<S>("conv", xs, ws, cd));
}
/// The shape of conv_transpose(x, w, cdims, outpad) (throws like conv_transpose).
template <std::size_t S>
shape_t<S + 2> conv_transpose_output_shape(const shape_t<S + 2>& xs, const shape_t<S + 2>& ws,
                                           const conv_dims<S>& cd, const shape_t<S>& outpad = {}) {
  return detail::conv::in_shape<S>(
      detail::conv::transpose_geometry<S>("conv_transpose", xs, ws, cd, outpad));
}

// =================================================================================================
// Forward
// =================================================================================================

/// {y, z}: y = σ.(conv(x, w) .+ b), z the pre-activation when σ's derivative needs it.
template <operation_mode M, activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] conv_forward_result<array_value_t<X>, S + 2> fused_conv_bias_activation_forward(
    M mode, const F& f, const W& w, const X& x, const B& bias, const conv_dims<S>& cd) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const char* op = "fused_conv_bias_activation";
  const impl::conv_geometry g = detail::conv::forward_geometry<S>(op, xv.shape(), wv.shape(), cd);
  detail::conv::check_bias(op, bias, g.c_out, wv.shape());
  conv_forward_result<T, S + 2> r;
  r.y = Tensor<T, S + 2>::uninitialized(detail::conv::out_shape<S>(g), op);
  if constexpr (!activation_traits<F>::uses_output)
    r.z = Tensor<T, S + 2>::uninitialized(r.y.shape(), op);
  const T* b = nullptr;
  if constexpr (!is_absent_v<B>) b = as_view(bias).data();
  conv_forward(mode, g, xv.data(), wv.data(), b, f, r.y.data(),
               activation_traits<F>::uses_output ? nullptr : r.z.data());
  return r;
}
template <activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] auto fused_conv_bias_activation_forward(const F& f, const W& w, const X& x,
                                                      const B& bias, const conv_dims<S>& cd) {
  return fused_conv_bias_activation_forward(operation_mode_t<W, X, B>{}, f, w, x, bias, cd);
}

/// y = σ.(conv(x, w, cdims) .+ bias) (LuxLib's fused_conv_bias_activation; bias may be lux::none).
template <operation_mode M, activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> fused_conv_bias_activation(M mode, const F& f,
                                                                         const W& w, const X& x,
                                                                         const B& bias,
                                                                         const conv_dims<S>& cd) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const char* op = "fused_conv_bias_activation";
  const impl::conv_geometry g = detail::conv::forward_geometry<S>(op, xv.shape(), wv.shape(), cd);
  detail::conv::check_bias(op, bias, g.c_out, wv.shape());
  auto y = Tensor<T, S + 2>::uninitialized(detail::conv::out_shape<S>(g), op);
  const T* b = nullptr;
  if constexpr (!is_absent_v<B>) b = as_view(bias).data();
  conv_forward(mode, g, xv.data(), wv.data(), b, f, y.data(), static_cast<T*>(nullptr));
  return y;
}
template <activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] auto fused_conv_bias_activation(const F& f, const W& w, const X& x, const B& bias,
                                              const conv_dims<S>& cd) {
  return fused_conv_bias_activation(operation_mode_t<W, X, B>{}, f, w, x, bias, cd);
}

/// y = conv(x, w, cdims) (NNlib's conv: no bias, no activation).
template <operation_mode M, array X, array W, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> conv(M mode, const X& x, const W& w,
                                                   const conv_dims<S>& cd) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, none_t, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const impl::conv_geometry g =
      detail::conv::forward_geometry<S>("conv", xv.shape(), wv.shape(), cd);
  auto y = Tensor<T, S + 2>::uninitialized(detail::conv::out_shape<S>(g), "conv");
  conv_forward(mode, g, xv.data(), wv.data(), static_cast<const T*>(nullptr), identity{}, y.data(),
               static_cast<T*>(nullptr));
  return y;
}
template <array X, array W, std::size_t S>
[[nodiscard]] auto conv(const X& x, const W& w, const conv_dims<S>& cd) {
  return conv(operation_mode_t<X, W>{}, x, w, cd);
}

// =================================================================================================
// Backward
// =================================================================================================

/// dx = ∇conv_data(dy, w): the gradient of <conv(x, w, cdims), dy> with respect to x, for x of
/// shape x_shape.
template <operation_mode M, array DY, array W, std::size_t S>
[[nodiscard]] Tensor<array_value_t<DY>, S + 2> conv_backward_data(M mode, const DY& dy, const W& w,
                                                                  const shape_t<S + 2>& x_shape,
                                                                  const conv_dims<S>& cd) {
  using T = array_value_t<DY>;
  detail::conv::check_types<DY, W, none_t, S>();
  const auto dyv = as_view(dy);
  const auto wv = as_view(w);
  const char* op = "conv_backward_data";
  const impl::conv_geometry g = detail::conv::forward_geometry<S>(op, x_shape, wv.shape(), cd);
  detail::conv::check_same_shape(op, "dy", dy, detail::conv::out_shape<S>(g),
                                 "(the output of the convolution)");
  auto dx = Tensor<T, S + 2>::uninitialized(x_shape, op);
  conv_backward_data(mode, g, dyv.data(), wv.data(), dx.data());
  return dx;
}
template <array DY, array W, std::size_t S>
[[nodiscard]] auto conv_backward_data(const DY& dy, const W& w, const shape_t<S + 2>& x_shape,
                                      const conv_dims<S>& cd) {
  return conv_backward_data(operation_mode_t<DY, W>{}, dy, w, x_shape, cd);
}

/// dw = ∇conv_filter(x, dy): the gradient of <conv(x, w, cdims), dy> with respect to w, for w of
/// shape w_shape.
template <operation_mode M, array X, array DY, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> conv_backward_filter(M mode, const X& x, const DY& dy,
                                                                   const shape_t<S + 2>& w_shape,
                                                                   const conv_dims<S>& cd) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, DY, none_t, S>();
  const auto xv = as_view(x);
  const auto dyv = as_view(dy);
  const char* op = "conv_backward_filter";
  const impl::conv_geometry g = detail::conv::forward_geometry<S>(op, xv.shape(), w_shape, cd);
  detail::conv::check_same_shape(op, "dy", dy, detail::conv::out_shape<S>(g),
                                 "(the output of the convolution)");
  auto dw = Tensor<T, S + 2>::uninitialized(w_shape, op);
  conv_backward_filter(mode, g, xv.data(), dyv.data(), dw.data());
  return dw;
}
template <array X, array DY, std::size_t S>
[[nodiscard]] auto conv_backward_filter(const X& x, const DY& dy, const shape_t<S + 2>& w_shape,
                                        const conv_dims<S>& cd) {
  return conv_backward_filter(operation_mode_t<X, DY>{}, x, dy, w_shape, cd);
}

/// db[c] = Σ dy over every dimension but the channel one (the penultimate); dy of rank ≥ 3.
template <operation_mode M, array DY>
[[nodiscard]] Tensor<array_value_t<DY>, 1> conv_backward_bias(M mode, const DY& dy) {
  using T = array_value_t<DY>;
  constexpr std::size_t N = array_rank_v<DY>;
  static_assert(N >= 3 && array_traits_t<DY>::contiguous,
                "lux::conv_backward_bias: dy must be a contiguous array of rank >= 3");
  const auto dyv = as_view(dy);
  index_t pixels = 1;
  for (std::size_t d = 0; d + 2 < N; ++d) pixels *= dyv.shape()[d];
  auto db = Tensor<T, 1>::uninitialized(shape_t<1>{dyv.shape()[N - 2]});
  conv_bias_gradient(mode, pixels, dyv.shape()[N - 2], dyv.shape()[N - 1], dyv.data(), db.data());
  return db;
}
template <array DY>
[[nodiscard]] auto conv_backward_bias(const DY& dy) {
  return conv_backward_bias(operation_mode_t<DY>{}, dy);
}

/// {dx, dweight, dbias} of y = σ.(conv(x, w, cdims) .+ bias). Pass the saved forward output y
/// when activation_traits<σ>::uses_output, the saved pre-activation z otherwise (the other may be
/// lux::none; both may be given); bias as in the forward call (lux::none: dbias empty).
template <operation_mode M, activation_function F, array DY, array W, array X, class B, class Y,
          class Z, std::size_t S>
[[nodiscard]] conv_gradients<array_value_t<X>, S + 2> fused_conv_bias_activation_backward(
    M mode, const F& f, const DY& dy, const W& w, const X& x, const B& bias, const Y& y, const Z& z,
    const conv_dims<S>& cd) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  detail::conv::check_types<DY, W, none_t, S>();
  static_assert(detail::conv::saved_ok_v<Y, T, S + 2> && detail::conv::saved_ok_v<Z, T, S + 2>,
                "lux conv backward: y and z must be lux::none or contiguous arrays like dy");
  detail::conv::check_saved_present<F, Y, Z>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const char* op = "fused_conv_bias_activation_backward";
  const impl::conv_geometry g = detail::conv::forward_geometry<S>(op, xv.shape(), wv.shape(), cd);
  detail::conv::check_bias(op, bias, g.c_out, wv.shape());
  const auto ys = detail::conv::out_shape<S>(g);
  detail::conv::check_same_shape(op, "dy", dy, ys, "(the output of the convolution)");
  if constexpr (!activation_traits<F>::is_identity && activation_traits<F>::uses_output)
    detail::conv::check_same_shape(op, "y", y, ys, "(the output of the convolution)");
  if constexpr (!activation_traits<F>::uses_output)
    detail::conv::check_same_shape(op, "z", z, ys, "(the output of the convolution)");

  conv_gradients<T, S + 2> r;
  r.dx = Tensor<T, S + 2>::uninitialized(xv.shape(), op);
  r.dweight = Tensor<T, S + 2>::uninitialized(wv.shape(), op);
  T* db = nullptr;
  if constexpr (!is_absent_v<B>) {
    r.dbias = Tensor<T, 1>::uninitialized(shape_t<1>{g.c_out}, op);
    db = r.dbias.data();
  }
  const T* arg = detail::conv::saved_argument<F>(y, z);
  conv_backward(mode, g, f, as_view(dy).data(), arg, xv.data(), wv.data(), r.dx.data(),
                r.dweight.data(), db);
  return r;
}
template <activation_function F, array DY, array W, array X, class B, class Y, class Z,
          std::size_t S>
[[nodiscard]] auto fused_conv_bias_activation_backward(const F& f, const DY& dy, const W& w,
                                                       const X& x, const B& bias, const Y& y,
                                                       const Z& z, const conv_dims<S>& cd) {
  return fused_conv_bias_activation_backward(operation_mode_t<DY, W, X, B, Y, Z>{}, f, dy, w, x,
                                             bias, y, z, cd);
}

LUX_NAMESPACE_END
