// luxcpp — the transposed convolution's front doors (Lux ConvTranspose; shapes, formulas, errors
// and modes in ../conv.hpp): fused_conv_transpose_bias_activation (and its _forward and _backward),
// conv_transpose, conv_transpose_backward_data, conv_transpose_backward_filter.
#pragma once

#include <cstddef>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/conv/detail.hpp"
#include "lux/kernels/conv/types.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Transposed convolution
// =================================================================================================

/// {y, z}: y = σ.(conv_transpose(x, w, cdims, outpad) .+ bias), z as for the conv.
template <operation_mode M, activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] conv_forward_result<array_value_t<X>, S + 2>
fused_conv_transpose_bias_activation_forward(M mode, const F& f, const W& w, const X& x,
                                             const B& bias, const conv_dims<S>& cd,
                                             const shape_t<S>& outpad = {}) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const char* op = "fused_conv_transpose_bias_activation";
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>(op, xv.shape(), wv.shape(), cd, outpad);
  detail::conv::check_bias(op, bias, g.c_in, wv.shape());
  conv_forward_result<T, S + 2> r;
  r.y = Tensor<T, S + 2>::uninitialized(detail::conv::in_shape<S>(g), op);
  if constexpr (!activation_traits<F>::uses_output)
    r.z = Tensor<T, S + 2>::uninitialized(r.y.shape(), op);
  const T* b = nullptr;
  if constexpr (!is_absent_v<B>) b = as_view(bias).data();
  conv_transpose_forward(mode, g, xv.data(), wv.data(), b, f, r.y.data(),
                         activation_traits<F>::uses_output ? nullptr : r.z.data());
  return r;
}
template <activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] auto fused_conv_transpose_bias_activation_forward(const F& f, const W& w, const X& x,
                                                                const B& bias,
                                                                const conv_dims<S>& cd,
                                                                const shape_t<S>& outpad = {}) {
  return fused_conv_transpose_bias_activation_forward(operation_mode_t<W, X, B>{}, f, w, x, bias,
                                                      cd, outpad);
}

/// y = σ.(conv_transpose(x, w, cdims, outpad) .+ bias) (Lux ConvTranspose's forward).
template <operation_mode M, activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> fused_conv_transpose_bias_activation(
    M mode, const F& f, const W& w, const X& x, const B& bias, const conv_dims<S>& cd,
    const shape_t<S>& outpad = {}) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const char* op = "fused_conv_transpose_bias_activation";
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>(op, xv.shape(), wv.shape(), cd, outpad);
  detail::conv::check_bias(op, bias, g.c_in, wv.shape());
  auto y = Tensor<T, S + 2>::uninitialized(detail::conv::in_shape<S>(g), op);
  const T* b = nullptr;
  if constexpr (!is_absent_v<B>) b = as_view(bias).data();
  conv_transpose_forward(mode, g, xv.data(), wv.data(), b, f, y.data(), static_cast<T*>(nullptr));
  return y;
}
template <activation_function F, array W, array X, class B, std::size_t S>
[[nodiscard]] auto fused_conv_transpose_bias_activation(const F& f, const W& w, const X& x,
                                                        const B& bias, const conv_dims<S>& cd,
                                                        const shape_t<S>& outpad = {}) {
  return fused_conv_transpose_bias_activation(operation_mode_t<W, X, B>{}, f, w, x, bias, cd,
                                              outpad);
}

/// y = conv_transpose(x, w, cdims, outpad) = ∇conv_data(x, w) for the convolution whose input has
/// y's size (weight (k..., C_out/groups, C_in), Lux ConvTranspose layout).
template <operation_mode M, array X, array W, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> conv_transpose(M mode, const X& x, const W& w,
                                                             const conv_dims<S>& cd,
                                                             const shape_t<S>& outpad = {}) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, none_t, S>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>("conv_transpose", xv.shape(), wv.shape(), cd, outpad);
  auto y = Tensor<T, S + 2>::uninitialized(detail::conv::in_shape<S>(g), "conv_transpose");
  conv_backward_data(mode, g, xv.data(), wv.data(), y.data());
  return y;
}
template <array X, array W, std::size_t S>
[[nodiscard]] auto conv_transpose(const X& x, const W& w, const conv_dims<S>& cd,
                                  const shape_t<S>& outpad = {}) {
  return conv_transpose(operation_mode_t<X, W>{}, x, w, cd, outpad);
}

/// dx of <conv_transpose(x, w, cdims, outpad), dy> = conv(dy, w) over x's spatial extent. dy
/// must have the shape of that forward output, outpad included.
template <operation_mode M, array DY, array W, std::size_t S>
[[nodiscard]] Tensor<array_value_t<DY>, S + 2> conv_transpose_backward_data(
    M mode, const DY& dy, const W& w, const shape_t<S + 2>& x_shape, const conv_dims<S>& cd,
    const shape_t<S>& outpad = {}) {
  using T = array_value_t<DY>;
  detail::conv::check_types<DY, W, none_t, S>();
  const auto dyv = as_view(dy);
  const auto wv = as_view(w);
  const char* op = "conv_transpose_backward_data";
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>(op, x_shape, wv.shape(), cd, outpad);
  detail::conv::check_same_shape(op, "dy", dy, detail::conv::in_shape<S>(g),
                                 "(the output of the transposed convolution)");
  auto dx = Tensor<T, S + 2>::uninitialized(x_shape, op);
  conv_forward(mode, g, dyv.data(), wv.data(), static_cast<const T*>(nullptr), identity{},
               dx.data(), static_cast<T*>(nullptr));
  return dx;
}
template <array DY, array W, std::size_t S>
[[nodiscard]] auto conv_transpose_backward_data(const DY& dy, const W& w,
                                                const shape_t<S + 2>& x_shape,
                                                const conv_dims<S>& cd,
                                                const shape_t<S>& outpad = {}) {
  return conv_transpose_backward_data(operation_mode_t<DY, W>{}, dy, w, x_shape, cd, outpad);
}

/// dw of <conv_transpose(x, w, cdims, outpad), dy> = ∇conv_filter(dy, x) (roles swapped). dy
/// must have the shape of that forward output, outpad included.
template <operation_mode M, array X, array DY, std::size_t S>
[[nodiscard]] Tensor<array_value_t<X>, S + 2> conv_transpose_backward_filter(
    M mode, const X& x, const DY& dy, const shape_t<S + 2>& w_shape, const conv_dims<S>& cd,
    const shape_t<S>& outpad = {}) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, DY, none_t, S>();
  const auto xv = as_view(x);
  const auto dyv = as_view(dy);
  const char* op = "conv_transpose_backward_filter";
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>(op, xv.shape(), w_shape, cd, outpad);
  detail::conv::check_same_shape(op, "dy", dy, detail::conv::in_shape<S>(g),
                                 "(the output of the transposed convolution)");
  auto dw = Tensor<T, S + 2>::uninitialized(w_shape, op);
  conv_backward_filter(mode, g, dyv.data(), xv.data(), dw.data());
  return dw;
}
template <array X, array DY, std::size_t S>
[[nodiscard]] auto conv_transpose_backward_filter(const X& x, const DY& dy,
                                                  const shape_t<S + 2>& w_shape,
                                                  const conv_dims<S>& cd,
                                                  const shape_t<S>& outpad = {}) {
  return conv_transpose_backward_filter(operation_mode_t<X, DY>{}, x, dy, w_shape, cd, outpad);
}

/// {dx, dweight, dbias} of y = σ.(conv_transpose(x, w, cdims, outpad) .+ bias), with the outpad
/// of the forward call (dy must have that forward output's shape). Saved y / z as for
/// fused_conv_bias_activation_backward.
template <operation_mode M, activation_function F, array DY, array W, array X, class B, class Y,
          class Z, std::size_t S>
[[nodiscard]] conv_gradients<array_value_t<X>, S + 2> fused_conv_transpose_bias_activation_backward(
    M mode, const F& f, const DY& dy, const W& w, const X& x, const B& bias, const Y& y, const Z& z,
    const conv_dims<S>& cd, const shape_t<S>& outpad = {}) {
  using T = array_value_t<X>;
  detail::conv::check_types<X, W, B, S>();
  detail::conv::check_types<DY, W, none_t, S>();
  static_assert(detail::conv::saved_ok_v<Y, T, S + 2> && detail::conv::saved_ok_v<Z, T, S + 2>,
                "lux conv backward: y and z must be lux::none or contiguous arrays like dy");
  detail::conv::check_saved_present<F, Y, Z>();
  const auto xv = as_view(x);
  const auto wv = as_view(w);
  const auto dyv = as_view(dy);
  const char* op = "fused_conv_transpose_bias_activation_backward";
  const impl::conv_geometry g =
      detail::conv::transpose_geometry<S>(op, xv.shape(), wv.shape(), cd, outpad);
  detail::conv::check_bias(op, bias, g.c_in, wv.shape());
  const auto ys = detail::conv::in_shape<S>(g);
  detail::conv::check_same_shape(op, "dy", dy, ys, "(the output of the transposed convolution)");
  if constexpr (!activation_traits<F>::is_identity && activation_traits<F>::uses_output)
    detail::conv::check_same_shape(op, "y", y, ys, "(the output of the transposed convolution)");
  if constexpr (!activation_traits<F>::uses_output)
    detail::conv::check_same_shape(op, "z", z, ys, "(the output of the transposed convolution)");

  conv_gradients<T, S + 2> r;
  T* db = nullptr;
  if constexpr (!is_absent_v<B>) {
    r.dbias = Tensor<T, 1>::uninitialized(shape_t<1>{g.c_in}, op);
    db = r.dbias.data();
  }
  // dz = dy .* σ'(·) (and db), then dx = conv(dz, w), dw = ∇conv_filter(dz, x).
  const T* arg = detail::conv::saved_argument<F>(y, z);
  const T* dz = dyv.data();
  Tensor<T, S + 2> dz_store;
  if (!activation_traits<F>::is_identity || db) {
    dz_store = Tensor<T, S + 2>::uninitialized(ys, op);
    conv_activation_backward(mode, f, g.in_pixels(), g.c_in, g.batch, dyv.data(), arg,
                             dz_store.data(), db);
    dz = dz_store.data();
  }
  r.dx = Tensor<T, S + 2>::uninitialized(xv.shape(), op);
  conv_forward(mode, g, dz, wv.data(), static_cast<const T*>(nullptr), identity{}, r.dx.data(),
               static_cast<T*>(nullptr));
  r.dweight = Tensor<T, S + 2>::uninitialized(wv.shape(), op);
  conv_backward_filter(mode, g, dz, xv.data(), r.dweight.data());
  return r;
}
template <activation_function F, array DY, array W, array X, class B, class Y, class Z,
          std::size_t S>
[[nodiscard]] auto fused_conv_transpose_bias_activation_backward(const F& f, const DY& dy,
                                                                 const W& w, const X& x,
                                                                 const B& bias, const Y& y,
                                                                 const Z& z, const conv_dims<S>& cd,
                                                                 const shape_t<S>& outpad = {}) {
  return fused_conv_transpose_bias_activation_backward(operation_mode_t<DY, W, X, B, Y, Z>{}, f, dy,
                                                       w, x, bias, y, z, cd, outpad);
}

LUX_NAMESPACE_END
