// luxcpp — the convolution kernels' argument and result types (see ../conv.hpp): lux::conv_dims
// (stride, padding, dilation, groups, flipped, SamePad), the per-dimension output sizes
// (conv_output_size, conv_transpose_output_size, same_padding), conv_forward_result and
// conv_gradients.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"

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

LUX_NAMESPACE_END
