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
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Type aliases, conv_dims and result types
// =================================================================================================

namespace detail::conv {

template <std::size_t S>
constexpr shape_t<S> filled(index_t v) {
  shape_t<S> s{};
  for (auto& e : s) e = v;
  return s;
}
}  // namespace detail::conv

/// Output size along one dimension: ⌊(I + p_lo + p_hi − d·(k − 1) − 1) / s⌋ + 1 (NNlib's
/// output_size); 0 when the dilated kernel does not fit the padded input. The arithmetic is
/// checked: shape_error naming `op` when it overflows, argument_error for a stride < 1.
constexpr index_t conv_output_size(index_t input, index_t kernel, index_t stride, index_t pad_lo,
                                   index_t pad_hi, index_t dilation,
                                   const char* op = "conv_output_size") {
  if (stride < 1) throw argument_error(detail::concat(op, ": stride must be >= 1, got ", stride));
  const index_t padded = checked_add(checked_add(input, pad_lo, op, "the padded input size"),
                                     pad_hi, op, "the padded input size");
  const index_t extent = checked_mul(dilation, checked_sub(kernel, 1, op, "the kernel extent"), op,
                                     "the dilated kernel extent d·(k − 1)");
  const index_t span =
      checked_sub(checked_sub(padded, extent, op, "the output span"), 1, op, "the output span");
  return span < 0 ? 0 : span / stride + 1;
}

/// Output size of a transposed convolution along one dimension (Lux ConvTranspose):
/// (I − 1)·s + 1 + (k − 1)·d − (p_lo + p_hi) + outpad, checked (shape_error naming `op` when
/// it overflows).
constexpr index_t conv_transpose_output_size(index_t input, index_t kernel, index_t stride,
                                             index_t pad_lo, index_t pad_hi, index_t dilation,
                                             index_t outpad = 0,
                                             const char* op = "conv_transpose_output_size") {
  const char* what = "the transposed convolution's output size";
  index_t o = checked_mul(checked_sub(input, 1, op, what), stride, op, what);
  o = checked_add(o, 1, op, what);
  o = checked_add(o, checked_mul(checked_sub(kernel, 1, op, what), dilation, op, what), op, what);
  o = checked_sub(o, checked_add(pad_lo, pad_hi, op, what), op, what);
  return checked_add(o, outpad, op, what);
}

/// Lux's SamePad along one dimension: total d·(k − 1), {lo = ⌈total/2⌉, hi = ⌊total/2⌋}
/// (shape_error naming `op` when d·(k − 1) overflows).
constexpr std::pair<index_t, index_t> same_padding(index_t kernel, index_t dilation = 1,
                                                   const char* op = "same_padding") {
  const index_t total = checked_mul(dilation, checked_sub(kernel, 1, op, "SamePad's total padding"),
                                    op, "SamePad's total padding d·(k − 1)");
  return {total - total / 2, total / 2};
}

/// The hyper-parameters of an S-d convolution (S = 1, 2, 3): NNlib's ConvDims without the
/// array sizes, which come from the arguments. An aggregate with Lux's defaults; the with_*
/// members return modified copies.
template <std::size_t S>
struct conv_dims {
  static_assert(S >= 1 && S <= 3,
                "lux::conv_dims<S>: S is the number of spatial dimensions and must be 1, 2 or 3");
  using size_type = shape_t<S>;
  static constexpr std::size_t spatial_dims = S;

  shape_t<S> stride = detail::conv::filled<S>(1);    ///< per dimension, ≥ 1
  shape_t<S> pad_lo = detail::conv::filled<S>(0);    ///< zeros before, per dimension
  shape_t<S> pad_hi = detail::conv::filled<S>(0);    ///< zeros after, per dimension
  shape_t<S> dilation = detail::conv::filled<S>(1);  ///< per dimension, ≥ 1
  index_t groups = 1;                                ///< divides C_in and C_out
  bool flipped = true;    ///< true: true convolution (Lux Conv); false: cross-correlation
  bool same_pad = false;  ///< Lux SamePad: pad_lo / pad_hi are ignored (see padding())

  constexpr conv_dims with_stride(index_t s) const {
    return with_stride(detail::conv::filled<S>(s));
  }
  constexpr conv_dims with_stride(const shape_t<S>& s) const {
    conv_dims c = *this;
    c.stride = s;
    return c;
  }
  /// The same padding on both sides of every dimension.
  constexpr conv_dims with_pad(index_t p) const { return with_pad(detail::conv::filled<S>(p)); }
  /// Symmetric padding per dimension (Lux's N-tuple pad).
  constexpr conv_dims with_pad(const shape_t<S>& p) const { return with_pad(p, p); }
  /// Asymmetric padding: lo[d] before and hi[d] after dimension d.
  constexpr conv_dims with_pad(const shape_t<S>& lo, const shape_t<S>& hi) const {
    conv_dims c = *this;
    c.pad_lo = lo;
    c.pad_hi = hi;
    c.same_pad = false;
    return c;
  }
  /// Lux's 2N-tuple pad (lo₁, hi₁, lo₂, hi₂, …), dimension 1 first: Conv(…; pad = (0, 1, 1, 2))
  /// is with_lux_pad({0, 1, 1, 2}).
  constexpr conv_dims with_lux_pad(const std::array<index_t, 2 * S>& p) const {
    shape_t<S> lo{}, hi{};
    for (std::size_t d = 0; d < S; ++d) {
      lo[d] = p[2 * d];
      hi[d] = p[2 * d + 1];
    }
    return with_pad(lo, hi);
  }
  /// Lux's SamePad, resolved against the kernel size (and this dilation) when the kernel runs.
  constexpr conv_dims with_same_pad() const {
    conv_dims c = *this;
    c.same_pad = true;
    return c;
  }
  constexpr conv_dims with_dilation(index_t d) const {
    return with_dilation(detail::conv::filled<S>(d));
  }
  constexpr conv_dims with_dilation(const shape_t<S>& d) const {
    conv_dims c = *this;
    c.dilation = d;
    return c;
  }
  constexpr conv_dims with_groups(index_t g) const {
    conv_dims c = *this;
    c.groups = g;
    return c;
  }
  /// flipped = true: true convolution (the default); false: cross-correlation.
  constexpr conv_dims with_flipped(bool f) const {
    conv_dims c = *this;
    c.flipped = f;
    return c;
  }
  /// Cross-correlation (Lux `cross_correlation = true`, PyTorch's convention): flipped = !cc.
  constexpr conv_dims with_cross_correlation(bool cc = true) const { return with_flipped(!cc); }

  /// The padding actually applied for a kernel of spatial size `kernel`: {lo, hi}.
  constexpr std::pair<shape_t<S>, shape_t<S>> padding(const shape_t<S>& kernel,
                                                      const char* op = "conv_dims") const {
    if (!same_pad) return {pad_lo, pad_hi};
    shape_t<S> lo{}, hi{};
    for (std::size_t d = 0; d < S; ++d)
      std::tie(lo[d], hi[d]) = same_padding(kernel[d], dilation[d], op);
    return {lo, hi};
  }
  /// Output spatial size of the convolution of an input of spatial size `input` (entries of 0
  /// mean the kernel does not fit; overflowing arithmetic throws shape_error naming `op`).
  constexpr shape_t<S> output_size(const shape_t<S>& input, const shape_t<S>& kernel,
                                   const char* op = "conv_dims") const {
    const auto [lo, hi] = padding(kernel, op);
    shape_t<S> o{};
    for (std::size_t d = 0; d < S; ++d)
      o[d] = conv_output_size(input[d], kernel[d], stride[d], lo[d], hi[d], dilation[d], op);
    return o;
  }
  /// Output spatial size of the transposed convolution (entries ≤ 0: empty; overflowing
  /// arithmetic throws shape_error naming `op`).
  constexpr shape_t<S> transpose_output_size(const shape_t<S>& input, const shape_t<S>& kernel,
                                             const shape_t<S>& outpad = {},
                                             const char* op = "conv_dims") const {
    const auto [lo, hi] = padding(kernel, op);
    shape_t<S> o{};
    for (std::size_t d = 0; d < S; ++d)
      o[d] = conv_transpose_output_size(input[d], kernel[d], stride[d], lo[d], hi[d], dilation[d],
                                        outpad[d], op);
    return o;
  }
};

/// What the backward pass of a fused conv needs besides x and the weight.
template <class T, std::size_t N, class Device = cpu>
struct conv_forward_result {
  Tensor<T, N, Device> y;  ///< σ.(z)
  /// The pre-activation z = conv(x, w) .+ b, kept only when σ's derivative needs its input
  /// (activation_traits<σ>::uses_output is false: gelu, swish, …); empty otherwise.
  Tensor<T, N, Device> z;
};

/// Gradients of a fused conv / conv_transpose. dbias is empty (shape (0)) without a bias.
template <class T, std::size_t N, class Device = cpu>
struct conv_gradients {
  Tensor<T, N, Device> dx;
  Tensor<T, N, Device> dweight;
  Tensor<T, 1, Device> dbias;
};

// =================================================================================================
// Argument checks and geometry (once, before dispatch)
// =================================================================================================

namespace detail::conv {

/// Compile-time checks shared by every entry point: X and W arrays of one element type, rank
/// S + 2, contiguous; B absent or a contiguous rank-1 array of that type.
template <class X, class W, class B, std::size_t S>
constexpr void check_types() {
  static_assert(is_array_v<X> && is_array_v<W>,
                "lux conv: x and weight must be lux::Tensor or lux::TensorView");
  static_assert(std::is_same_v<array_value_t<X>, array_value_t<W>>,
                "lux conv: x and weight must have the same element type");
  static_assert(array_rank_v<X> == S + 2,
                "lux conv: x must have rank S + 2 (spatial..., channels, batch) for conv_dims<S>");
  static_assert(array_rank_v<W> == S + 2,
                "lux conv: weight must have rank S + 2 (kernel..., C_in/groups, C_out) for "
                "conv_dims<S> — x and weight ranks differ or do not match conv_dims");
  static_assert(array_traits_t<X>::contiguous && array_traits_t<W>::contiguous,
                "lux conv: x and weight must be contiguous (gather a StridedView with lux::copy)");
  if constexpr (!is_absent_v<B>) {
    static_assert(is_array_v<B>, "lux conv: bias must be lux::none or a rank-1 array");
    static_assert(array_rank_v<B> == 1 && array_traits_t<B>::contiguous &&
                      std::is_same_v<array_value_t<B>, array_value_t<X>>,
                  "lux conv: bias must be a contiguous rank-1 array with x's element type");
  }
}

/// A saved y / z argument: absent, or an array of element type T and rank N.
template <class A, class T, std::size_t N>
inline constexpr bool saved_ok_v = [] {
  if constexpr (is_absent_v<A>) {
    return true;
  } else if constexpr (is_array_v<A>) {
    return std::is_same_v<array_value_t<A>, T> && array_rank_v<A> == N &&
           array_traits_t<A>::contiguous;
  } else {
    return false;
  }
}();

template <std::size_t S>
void check_hyper(const char* op, const conv_dims<S>& cd) {
  for (std::size_t d = 0; d < S; ++d) {
    require<argument_error>(cd.stride[d] >= 1, op, ": stride must be >= 1, got ", cd.stride);
    require<argument_error>(cd.dilation[d] >= 1, op, ": dilation must be >= 1, got ", cd.dilation);
    require<argument_error>(cd.same_pad || (cd.pad_lo[d] >= 0 && cd.pad_hi[d] >= 0), op,
                            ": padding must be >= 0, got lo ", cd.pad_lo, " hi ", cd.pad_hi);
  }
  require<argument_error>(cd.groups >= 1, op, ": groups must be >= 1, got ", cd.groups);
}

template <std::size_t S>
shape_t<S> spatial(const shape_t<S + 2>& s) {
  shape_t<S> r{};
  for (std::size_t d = 0; d < S; ++d) r[d] = s[d];
  return r;
}

/// Fills the spatial part of a geometry (padded to three dimensions).
template <std::size_t S>
void set_spatial(impl::conv_geometry& g, const shape_t<S>& in, const shape_t<S>& k,
                 const shape_t<S>& out, const shape_t<S>& lo, const conv_dims<S>& cd) {
  for (std::size_t d = 0; d < S; ++d) {
    g.in[d] = in[d];
    g.kernel[d] = k[d];
    g.out[d] = out[d];
    g.stride[d] = cd.stride[d];
    g.pad[d] = lo[d];
    g.dilation[d] = cd.dilation[d];
  }
  g.flipped = cd.flipped;
}

/// Shape of the convolution output (spatial out, C_out, B) of a geometry.
template <std::size_t S>
shape_t<S + 2> out_shape(const impl::conv_geometry& g) {
  shape_t<S + 2> s{};
  for (std::size_t d = 0; d < S; ++d) s[d] = g.out[d];
  s[S] = g.c_out;
  s[S + 1] = g.batch;
  return s;
}
/// Shape of the convolution input (spatial in, C_in, B) of a geometry.
template <std::size_t S>
shape_t<S + 2> in_shape(const impl::conv_geometry& g) {
  shape_t<S + 2> s{};
  for (std::size_t d = 0; d < S; ++d) s[d] = g.in[d];
  s[S] = g.c_in;
  s[S + 1] = g.batch;
  return s;
}

/// Checks a convolution of x (xs) with weight (ws) and returns its geometry.
template <std::size_t S>
impl::conv_geometry forward_geometry(const char* op, const shape_t<S + 2>& xs,
                                     const shape_t<S + 2>& ws, const conv_dims<S>& cd) {
  check_hyper(op, cd);
  shape_numel(xs, op);  // no negative size, no overflowing product (x_shape may be a value)
  shape_numel(ws, op);
  const index_t cin = xs[S], cin_g = ws[S], cout = ws[S + 1], G = cd.groups;
  require<shape_error>(cin % G == 0, op, ": groups = ", G, " does not divide the ", cin,
                       " input channels of x ", xs);
  require<shape_error>(cout % G == 0, op, ": groups = ", G, " does not divide the ", cout,
                       " output channels of weight ", ws);
  require<shape_error>(cin / G == cin_g, op, ": channel mismatch: x ", xs, " has ", cin,
                       " channels, weight ", ws, " expects ", cin_g, " per group × ", G, " groups");
  const shape_t<S> k = spatial<S>(ws), in = spatial<S>(xs);
  for (std::size_t d = 0; d < S; ++d)
    require<shape_error>(k[d] >= 1, op, ": weight ", ws, " has a zero kernel size");
  const auto [lo, hi] = cd.padding(k, op);
  const shape_t<S> out = cd.output_size(in, k, op);
  for (std::size_t d = 0; d < S; ++d)
    require<shape_error>(out[d] >= 1, op,
                         ": the kernel is larger than the padded input along "
                         "spatial dimension ",
                         d, ": x ", xs, ", weight ", ws, ", dilation ", cd.dilation,
                         ", padding lo ", lo, " hi ", hi, " give output size ", out);
  impl::conv_geometry g;
  set_spatial<S>(g, in, k, out, lo, cd);
  g.c_in = cin;
  g.c_out = cout;
  g.groups = G;
  g.batch = xs[S + 1];
  shape_numel(out_shape<S>(g), op);  // the output must be addressable
  return g;
}

/// Checks a transposed convolution of x (xs: I..., C_in, B) with weight (ws: k..., C_out/g,
/// C_in) and returns the geometry of the convolution whose data gradient it is (g.in = the
/// transposed output, g.out = x).
template <std::size_t S>
impl::conv_geometry transpose_geometry(const char* op, const shape_t<S + 2>& xs,
                                       const shape_t<S + 2>& ws, const conv_dims<S>& cd,
                                       const shape_t<S>& outpad) {
  check_hyper(op, cd);
  for (std::size_t d = 0; d < S; ++d)
    require<argument_error>(outpad[d] >= 0, op, ": outpad must be >= 0, got ", outpad);
  shape_numel(xs, op);  // no negative size, no overflowing product (x_shape may be a value)
  shape_numel(ws, op);
  const index_t cin = xs[S], cout_g = ws[S], G = cd.groups;
  require<shape_error>(ws[S + 1] == cin, op, ": channel mismatch: x ", xs, " has ", cin,
                       " channels, weight ", ws, " (k..., C_out/groups, C_in) expects ", ws[S + 1]);
  require<shape_error>(cin % G == 0, op, ": groups = ", G, " does not divide the ", cin,
                       " input channels of x ", xs);
  const shape_t<S> k = spatial<S>(ws), in = spatial<S>(xs);
  for (std::size_t d = 0; d < S; ++d)
    require<shape_error>(k[d] >= 1, op, ": weight ", ws, " has a zero kernel size");
  const auto [lo, hi] = cd.padding(k, op);
  const shape_t<S> out = cd.transpose_output_size(in, k, outpad, op);
  for (std::size_t d = 0; d < S; ++d) {
    require<shape_error>(out[d] >= 1, op, ": the output would be empty along spatial dimension ", d,
                         ": x ", xs, ", weight ", ws, ", padding lo ", lo, " hi ", hi,
                         " give output size ", out);
    // The convolution whose data gradient this is reads the output padded by lo and hi.
    checked_add(checked_add(out[d], lo[d], op, "the padded output size"), hi[d], op,
                "the padded output size");
  }
  impl::conv_geometry g;
  set_spatial<S>(g, out, k, in, lo, cd);
  g.c_in = checked_mul(cout_g, G, op, "the output channels C_out/groups · groups");
  g.c_out = cin;
  g.groups = G;
  g.batch = xs[S + 1];
  shape_numel(in_shape<S>(g), op);  // the output must be addressable
  return g;
}

template <class B>
void check_bias(const char* op, const B& bias, index_t channels, const auto& ws) {
  if constexpr (!is_absent_v<B>) {
    const auto bs = as_view(bias).shape();
    require<shape_error>(bs[0] == channels, op, ": bias has shape ", bs, ", expected (", channels,
                         ") to match the output channels of weight ", ws);
  }
}

template <class A, class S>
void check_same_shape(const char* op, const char* name, const A& a, const S& expected,
                      const char* what) {
  if constexpr (!is_absent_v<A>) {
    const auto s = as_view(a).shape();
    require<shape_error>(s == expected, op, ": ", name, " has shape ", s, ", expected ", expected,
                         " ", what);
  }
}

/// The saved array σ' is evaluated from (y or z), or nullptr for the identity.
template <class F, class Y, class Z>
auto saved_argument(const Y& y, const Z& z) {
  constexpr bool identity = activation_traits<F>::is_identity;
  constexpr bool from_output = activation_traits<F>::uses_output;
  if constexpr (identity) {
    return nullptr;
  } else if constexpr (from_output) {
    return as_view(y).data();
  } else {
    return as_view(z).data();
  }
}

template <class F, class Y, class Z>
constexpr void check_saved_present() {
  constexpr bool identity = activation_traits<F>::is_identity;
  constexpr bool from_output = activation_traits<F>::uses_output;
  static_assert(identity || !from_output || !is_absent_v<Y>,
                "lux conv backward: this activation's derivative is computed from the forward "
                "output (activation_traits<F>::uses_output): pass y (z may be lux::none)");
  static_assert(identity || from_output || !is_absent_v<Z>,
                "lux conv backward: this activation's derivative needs its input: pass the "
                "pre-activation z saved by the _forward function (y may be lux::none)");
}

}  // namespace detail::conv

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
