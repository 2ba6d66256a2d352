// luxcpp — Lux's pooling layers: MaxPool, MeanPool, AdaptiveMaxPool, AdaptiveMeanPool,
// GlobalMaxPool, GlobalMeanPool. No parameters, no states (lux::empty_tuple).
//
//   lux::MaxPool({2, 2})                                   // MaxPool((2, 2)); stride = window
//   lux::MeanPool({3, 3}, {.stride = 2, .pad = 1})         // MeanPool((3, 3), pad=1, stride=2)
//   lux::MaxPool({2, 2}, {.pad = lux::same_pad{}})         // Lux's SamePad
//   lux::AdaptiveMeanPool({5, 5})  lux::GlobalMaxPool{}    lux::GlobalMeanPool{}
//
// Shapes: x (I..., C, B) of rank S + 2 (S = number of window entries; a rank mismatch is a compile
// error) → y (O..., C, B):
//   MaxPool / MeanPool:  O = ⌊(I + lo + hi − d·(k − 1) − 1) / s⌋ + 1  (NNlib's PoolDims)
//   AdaptiveMaxPool / AdaptiveMeanPool(out): O = out; Lux's window stride = I ÷ out,
//       k = I − (out − 1)·stride, no padding (= PyTorch's adaptive pooling when out divides I;
//       otherwise PyTorch's overlapping variable windows differ — Lux's definition is used);
//   GlobalMaxPool / GlobalMeanPool: (1, …, 1, C, B), any rank 3 … 5.
// The numerics are the kernels of lux/kernels/pooling.hpp (NNlib's): max pooling treats padding as
// −∞ and routes the gradient to the first maximum in column-major window order; mean pooling
// counts padding cells as zeros in the divisor ∏k (count_include_pad = true, as NNlib).
//
// Options (Lux's keywords; documented defaults): stride (default = window), pad (one value, S
// values, 2S values (lo₁, hi₁, …) or lux::same_pad{}: total d·(k − 1), low side the larger half,
// stride ignored, as Lux's calc_padding), dilation (Lux's code has it, default 1; Lux's
// documentation does not list it). The documented `MaxPool(window; pad=0, stride=window)` is the
// interface followed.
//
// Display (Lux): `MaxPool((2, 2))`, `MeanPool((3, 3), pad=1, stride=2)` (pad / stride / dilation
// shown when not the default; pad/stride one number when all equal), `AdaptiveMaxPool((5, 5))`,
// `GlobalMaxPool()`.
//
// Errors: shape_error prefixed with the layer ("MaxPool (2, 2): …") for an input the window does
// not fit, an adaptive output larger than the input, or an output gradient of the wrong shape;
// argument_error for bad hyperparameters at construction.
//
// pullback: max pooling saves the argmax (int32, the size of y) from maxpool_with_argmax and
// scatters dy to it; mean pooling saves only x's shape.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/kernels/pooling.hpp"
#include "lux/layers/conv.hpp"  // same_pad, spatial_arg, pad_arg, tuple printing
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

/// Keyword arguments of MaxPool / MeanPool.
template <std::size_t S>
struct pool_options {
  spatial_arg<S> stride{};  ///< not given: the window
  pad_arg<S> pad = 0;
  spatial_arg<S> dilation = 1;
};

namespace detail::pool_layer {

/// Runs f(); a shape_error from a kernel gets the layer's prefix.
template <class F>
decltype(auto) with_prefix(const std::string& prefix, F&& f) {
  try {
    return f();
  } catch (const shape_error& e) {
    throw shape_error(prefix + ": " + e.what());
  }
}

template <class X>
using x_traits = array_traits<std::remove_cvref_t<X>>;

template <class DY, std::size_t N>
void check_dy(const std::string& prefix, const DY& dy, const shape_t<N>& yshape) {
  const auto s = as_view(dy).shape();
  require<shape_error>(s == yshape, prefix, ": the output gradient has shape ", s, ", expected ",
                       yshape);
}

enum class pool_kind { max, mean };

/// MaxPool / MeanPool.
template <std::size_t S, pool_kind K>
struct window_pool {
  static_assert(S >= 1 && S <= 3, "lux pooling: the window has 1, 2 or 3 entries");
  using is_lux_layer = void;
  static constexpr const char* layer_name = K == pool_kind::max ? "MaxPool" : "MeanPool";

  pool_dims<S> pdims;
  std::string pad_display;

  window_pool(const index_t (&k)[S], pool_options<S> o) : pdims(make_window(k)) {
    const std::string p =
        std::string(layer_name) + "(" + conv_layer::tuple_string(pdims.window) + ")";
    for (std::size_t d = 0; d < S; ++d)
      require<argument_error>(pdims.window[d] >= 1, p, ": window must be >= 1, got ", pdims.window);
    const shape_t<S> s = o.stride.or_default(pdims.window), dil = o.dilation.value;
    for (std::size_t d = 0; d < S; ++d) {
      require<argument_error>(s[d] >= 1, p, ": stride must be >= 1, got ", s);
      require<argument_error>(dil[d] >= 1, p, ": dilation must be >= 1, got ", dil);
    }
    const auto pad = conv_layer::resolve_pad(o.pad, pdims.window, dil, p.c_str());
    for (auto e : pad) require<argument_error>(e >= 0, p, ": padding must be >= 0");
    pad_display = conv_layer::pad_string(o.pad, pad);
    pdims = pdims.with_stride(s).with_pad_lo_hi(pad).with_dilation(dil);
  }

  std::string prefix() const {
    return std::string(layer_name) + " " + conv_layer::tuple_string(pdims.window);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N == S + 2, "lux pooling: the input must have rank S + 2 (spatial..., C, B)");
    return with_prefix(prefix(), [&] { return pool_output_shape(in, pdims); });
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    static_assert(x_traits<X>::rank == S + 2,
                  "lux pooling: the input must have rank S + 2 (spatial..., C, B)");
    const auto xv = as_view(x);
    output_shape(xv.shape());
    if constexpr (K == pool_kind::max)
      return std::pair{maxpool(xv, pdims), st};
    else
      return std::pair{meanpool(xv, pdims), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    static_assert(x_traits<X>::rank == S + 2,
                  "lux pooling: the input must have rank S + 2 (spatial..., C, B)");
    const auto xv = as_view(x);
    const auto yshape = output_shape(xv.shape());
    if constexpr (K == pool_kind::max) {
      auto r = maxpool_with_argmax(xv, pdims);
      auto back = [pre = prefix(), saved = std::move(r.saved), yshape](const auto& dy) {
        check_dy(pre, dy, yshape);
        return gradients{maxpool_backward(as_view(dy), saved).dx, empty_tuple{}};
      };
      return pullback_result{std::move(r.y), st, std::move(back)};
    } else {
      auto back = [pre = prefix(), pd = pdims, xs = xv.shape(), yshape](const auto& dy) {
        check_dy(pre, dy, yshape);
        return gradients{meanpool_backward(as_view(dy), xs, pd).dx, empty_tuple{}};
      };
      return pullback_result{meanpool(xv, pdims), st, std::move(back)};
    }
  }

  void print(std::ostream& os) const {
    os << layer_name << "(" << conv_layer::tuple_string(pdims.window);
    if (!conv_layer::all_equal_to(pdims.pad, 0)) os << ", pad=" << pad_display;
    if (pdims.stride != pdims.window) os << ", stride=" << conv_layer::compact_string(pdims.stride);
    if (!conv_layer::all_equal_to(pdims.dilation, 1))
      os << ", dilation=" << conv_layer::compact_string(pdims.dilation);
    os << ")";
  }

 private:
  static pool_dims<S> make_window(const index_t (&k)[S]) {
    shape_t<S> w{};
    for (std::size_t d = 0; d < S; ++d) w[d] = k[d];
    return pool_dims<S>(w);
  }
};

/// AdaptiveMaxPool / AdaptiveMeanPool.
template <std::size_t S, pool_kind K>
struct adaptive_pool {
  static_assert(S >= 1 && S <= 3, "lux adaptive pooling: the output size has 1, 2 or 3 entries");
  using is_lux_layer = void;
  static constexpr const char* layer_name =
      K == pool_kind::max ? "AdaptiveMaxPool" : "AdaptiveMeanPool";

  shape_t<S> out_size{};

  explicit adaptive_pool(const index_t (&out)[S]) {
    for (std::size_t d = 0; d < S; ++d) out_size[d] = out[d];
    for (std::size_t d = 0; d < S; ++d)
      require<argument_error>(out_size[d] >= 1, layer_name, "(", conv_layer::tuple_string(out_size),
                              "): the output size must be >= 1");
  }

  std::string prefix() const {
    return std::string(layer_name) + " " + conv_layer::tuple_string(out_size);
  }

  template <std::size_t N>
  pool_dims<S> dims_for(const shape_t<N>& in) const {
    static_assert(N == S + 2,
                  "lux adaptive pooling: the input must have rank S + 2 (spatial..., C, B)");
    for (std::size_t d = 0; d < S; ++d)
      require<shape_error>(in[d] >= out_size[d], prefix(),
                           ": expected input with spatial size >= ", out_size, ", got ", in);
    return with_prefix(prefix(), [&] { return adaptive_pool_dims(in, out_size); });
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    dims_for(in);
    shape_t<N> out = in;
    for (std::size_t d = 0; d < S; ++d) out[d] = out_size[d];
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    dims_for(xv.shape());
    if constexpr (K == pool_kind::max)
      return std::pair{adaptive_maxpool(xv, out_size), st};
    else
      return std::pair{adaptive_meanpool(xv, out_size), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    const auto pd = dims_for(xv.shape());
    const auto yshape = output_shape(xv.shape());
    if constexpr (K == pool_kind::max) {
      auto r = maxpool_with_argmax(xv, pd);
      auto back = [pre = prefix(), saved = std::move(r.saved), yshape](const auto& dy) {
        check_dy(pre, dy, yshape);
        return gradients{maxpool_backward(as_view(dy), saved).dx, empty_tuple{}};
      };
      return pullback_result{std::move(r.y), st, std::move(back)};
    } else {
      auto back = [pre = prefix(), out = out_size, xs = xv.shape(), yshape](const auto& dy) {
        check_dy(pre, dy, yshape);
        return gradients{adaptive_meanpool_backward(as_view(dy), xs, out).dx, empty_tuple{}};
      };
      return pullback_result{adaptive_meanpool(xv, out_size), st, std::move(back)};
    }
  }

  void print(std::ostream& os) const {
    os << layer_name << "(" << conv_layer::tuple_string(out_size) << ")";
  }
};

/// GlobalMaxPool / GlobalMeanPool.
template <pool_kind K>
struct global_pool {
  using is_lux_layer = void;
  static constexpr const char* layer_name =
      K == pool_kind::max ? "GlobalMaxPool" : "GlobalMeanPool";

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 3 && N <= 5,
                  "lux global pooling: the input must have rank 3, 4 or 5 (spatial..., C, B)");
    with_prefix(layer_name, [&] { return global_pool_dims(in); });
    shape_t<N> out = in;
    for (std::size_t d = 0; d + 2 < N; ++d) out[d] = 1;
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    output_shape(xv.shape());
    if constexpr (K == pool_kind::max)
      return std::pair{global_maxpool(xv), st};
    else
      return std::pair{global_meanpool(xv), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    const auto yshape = output_shape(xv.shape());
    if constexpr (K == pool_kind::max) {
      auto r = maxpool_with_argmax(xv, global_pool_dims(xv.shape()));
      auto back = [saved = std::move(r.saved), yshape](const auto& dy) {
        check_dy(layer_name, dy, yshape);
        return gradients{maxpool_backward(as_view(dy), saved).dx, empty_tuple{}};
      };
      return pullback_result{std::move(r.y), st, std::move(back)};
    } else {
      auto back = [xs = xv.shape(), yshape](const auto& dy) {
        check_dy(layer_name, dy, yshape);
        return gradients{global_meanpool_backward(as_view(dy), xs).dx, empty_tuple{}};
      };
      return pullback_result{global_meanpool(xv), st, std::move(back)};
    }
  }

  void print(std::ostream& os) const { os << layer_name << "()"; }
};

}  // namespace detail::pool_layer

template <std::size_t S>
struct MaxPool : detail::pool_layer::window_pool<S, detail::pool_layer::pool_kind::max> {
  static constexpr const char* name = "MaxPool";
  MaxPool(const index_t (&k)[S], pool_options<S> o = {})
      : detail::pool_layer::window_pool<S, detail::pool_layer::pool_kind::max>(k, std::move(o)) {}
};
template <std::size_t S>
struct MeanPool : detail::pool_layer::window_pool<S, detail::pool_layer::pool_kind::mean> {
  static constexpr const char* name = "MeanPool";
  MeanPool(const index_t (&k)[S], pool_options<S> o = {})
      : detail::pool_layer::window_pool<S, detail::pool_layer::pool_kind::mean>(k, std::move(o)) {}
};
template <std::size_t S>
struct AdaptiveMaxPool : detail::pool_layer::adaptive_pool<S, detail::pool_layer::pool_kind::max> {
  static constexpr const char* name = "AdaptiveMaxPool";
  explicit AdaptiveMaxPool(const index_t (&out)[S])
      : detail::pool_layer::adaptive_pool<S, detail::pool_layer::pool_kind::max>(out) {}
};
template <std::size_t S>
struct AdaptiveMeanPool
    : detail::pool_layer::adaptive_pool<S, detail::pool_layer::pool_kind::mean> {
  static constexpr const char* name = "AdaptiveMeanPool";
  explicit AdaptiveMeanPool(const index_t (&out)[S])
      : detail::pool_layer::adaptive_pool<S, detail::pool_layer::pool_kind::mean>(out) {}
};
struct GlobalMaxPool : detail::pool_layer::global_pool<detail::pool_layer::pool_kind::max> {
  static constexpr const char* name = "GlobalMaxPool";
};
struct GlobalMeanPool : detail::pool_layer::global_pool<detail::pool_layer::pool_kind::mean> {
  static constexpr const char* name = "GlobalMeanPool";
};

LUX_NAMESPACE_END
