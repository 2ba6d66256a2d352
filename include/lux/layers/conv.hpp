// luxcpp — Lux's convolution layers: Conv, CrossCor and ConvTranspose, for S = 1, 2 or 3 spatial
// dimensions (S comes from the kernel-size tuple).
//
//   lux::Conv({5, 5}, {1, 6}, lux::relu{})                         // Conv((5, 5), 1 => 6, relu)
//   lux::Conv({3, 3}, {16, 32}, lux::relu{}, {.stride = 2, .pad = lux::same_pad{}})
//   lux::Conv({3, 3}, {1, 1}, lux::relu{}, {.pad = {0, 1, 1, 2}})  // Lux's 2N pad (lo₁,hi₁,lo₂,hi₂)
//   lux::CrossCor({3}, {4, 8})                                      // cross-correlation (PyTorch)
//   lux::ConvTranspose({4, 4}, {8, 3}, lux::identity{}, {.stride = 2, .pad = 1, .outpad = 0})
//   lux::Conv<2, lux::relu, false> nb({3, 3}, {1, 6}, lux::relu{});  // use_bias = false
//
// Shapes (column-major, Lux order):
//   Conv / CrossCor: x (I..., in, B) → y (O..., out, B), O = ⌊(I + lo + hi − d·(k − 1) − 1)/s⌋ + 1
//       ps: weight (k..., in ÷ groups, out), bias (out)          [Lux: Conv, weight(k...,ci÷g,co)]
//   ConvTranspose: x (I..., in, B) → y (O..., out, B), O = (I − 1)·s + 1 + (k − 1)·d − (lo + hi)
//       + outpad;  ps: weight (k..., out ÷ groups, in), bias (out)   [Lux's layout]
//   st: none (lux::empty_tuple). parameterlength = ∏k·in·out ÷ groups (+ out with a bias), Lux's.
// y = σ.(conv(x, weight) .+ bias): lux::fused_conv_bias_activation (lux/kernels/conv.hpp) and, for
// ConvTranspose, lux::fused_conv_transpose_bias_activation (NNlib's ∇conv_data used forward).
//
// Options (Lux's keyword arguments, C++20 designated initializers, defaults as Lux documents them):
//   stride   one value or S values                                      (default 1)
//   pad      one value, S values (symmetric per dimension), 2S values (lo₁, hi₁, lo₂, hi₂, …;
//            Lux's order, dimension 1 = W first), or lux::same_pad{}   (default 0)
//            SamePad is resolved at construction as Lux does: Conv pads d·(k − 1) in total, the low
//            side getting the larger half, and ignores the stride; ConvTranspose resolves it with
//            the kernel k − s + 1 (Lux's code), so the output is I·s.
//   dilation one value or S values (default 1);  groups (default 1; divides in and out)
//   use_bias the bias is a TYPE-level choice (the parameter tree's type depends on it): the
//            template parameter UseBias (as for lux::Dense), and only that — there is no runtime
//            option to disagree with it.
//   init_weight / init_bias (types WInit / BInit of conv_options<S, WInit, BInit>; pass an
//            explicitly typed options object to change them: lux::conv_options<2,
//            lux::kaiming_uniform>{.init_weight = {.gain = 1}})
//   cross_correlation  (newer Lux's keyword; default false = true convolution, the kernel flipped)
//   outpad   (ConvTranspose only) one value or S values (default 0)
//
// Initialization — documentation vs Lux 1.x's source: Lux's documented interface says
// init_weight = glorot_uniform, init_bias = zeros32 for Conv, CrossCor and ConvTranspose, and that
// is the default here. Lux ≥ 1.0's Conv code instead uses kaiming_uniform with
// gain = calculate_gain(σ, √5) over fan_in = ∏k·in/groups and a U(±1/√fan_in) bias; pass
// lux::kaiming_uniform{...} / lux::uniform_range{...} to get that. ConvTranspose's code default is
// glorot_uniform / zeros32, as here. The weight's fans are computed from its own shape (for
// ConvTranspose (k..., out/g, in): fan_in = ∏k·out/g, fan_out = ∏k·in), as WeightInitializers does.
//
// CrossCor: Lux ≤ 0.5's layer of its own (Lux's "Built-In Layers" documentation lists it); Lux v1 removed it in favour
// of Conv(…; cross_correlation = true). Here lux::CrossCor is a Conv with cross_correlation = true
// that prints as `CrossCor((3, 3), 1 => 6)`; Conv with the option prints Lux v1's
// `Conv((3, 3), 1 => 6, cross_correlation=true)`.
//
// Display (Lux's Base.show): `Conv((5, 5), 1 => 6, relu, pad=1, stride=2, dilation=2, groups=2,
// use_bias=false, cross_correlation=true)`; a 1-d kernel prints as `(3,)`; pad/stride/dilation
// print one number when all entries are equal (PrettyPrinting.tuple_string); ConvTranspose adds
// `outpad=…` after groups.
//
// Errors: shape_error "Conv (5, 5) 1 => 6: expected input with 1 channels (dim 3), got
// (28, 28, 3, 4)", a kernel larger than the padded input, and every parameter leaf of the wrong
// shape ("…: parameter weight has shape (3, 3, 2, 6), expected (3, 3, 1, 6)"); argument_error
// for bad hyperparameters at construction. A rank other than S + 2 is a compile error.
//
// pullback's `back` owns a copy of x (and y or the pre-activation when σ' needs it) and reads the
// parameters through views: keep `ps` alive and unchanged until back is called.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/kernels/conv.hpp"
#include "lux/layers/initializers.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

/// Lux's SamePad(): padding such that size(y, d) == size(x, d) / stride (Conv, pooling) or
/// size(x, d) * stride (ConvTranspose).
struct same_pad {};

/// A per-spatial-dimension integer hyperparameter: one value (broadcast) or S values. A
/// default-constructed one is "not given" (pooling's stride then defaults to the window).
template <std::size_t S>
struct spatial_arg {
  shape_t<S> value{};
  bool given = false;

  constexpr spatial_arg() = default;
  constexpr spatial_arg(index_t v) : given(true) { value.fill(v); }  // NOLINT: implicit by design
  constexpr spatial_arg(const shape_t<S>& v) : value(v), given(true) {}
  spatial_arg(std::initializer_list<index_t> v) : given(true) {
    require<argument_error>(v.size() == 1 || v.size() == S, "expected 1 or ", S,
                            " values (one per spatial dimension), got ", v.size());
    std::size_t i = 0;
    for (index_t e : v) value[i++] = e;
    if (v.size() == 1) value.fill(value[0]);
  }
  constexpr shape_t<S> or_default(const shape_t<S>& d) const { return given ? value : d; }
};

/// Lux's `pad`: one value, S values (the same before and after each dimension), 2S values
/// (lo₁, hi₁, lo₂, hi₂, …) or lux::same_pad{}.
template <std::size_t S>
struct pad_arg {
  enum class form { scalar, per_dim, lo_hi, same };
  std::array<index_t, 2 * S> lo_hi{};  ///< explicit forms, Lux's 2N order
  form kind = form::scalar;

  constexpr pad_arg(index_t p = 0) { lo_hi.fill(p); }  // NOLINT: implicit by design
  constexpr pad_arg(same_pad) : kind(form::same) {}
  pad_arg(std::initializer_list<index_t> v) {
    require<argument_error>(v.size() == 1 || v.size() == S || v.size() == 2 * S,
                            "pad: expected 1, ", S, " or ", 2 * S, " values, got ", v.size());
    std::array<index_t, 2 * S> a{};
    std::size_t i = 0;
    for (index_t e : v) a[i++] = e;
    if (v.size() == 1) {
      lo_hi.fill(a[0]);
    } else if (v.size() == S && S != 1) {
      kind = form::per_dim;
      for (std::size_t d = 0; d < S; ++d) lo_hi[2 * d] = lo_hi[2 * d + 1] = a[d];
    } else {
      kind = form::lo_hi;
      lo_hi = a;
    }
  }
};

namespace detail::conv_layer {

/// Julia's tuple display: "(3, 3)", a 1-tuple "(3,)".
template <std::size_t N>
std::string tuple_string(const std::array<index_t, N>& t) {
  std::string s = "(";
  for (std::size_t i = 0; i < N; ++i) {
    if (i) s += ", ";
    s += std::to_string(t[i]);
  }
  return s + (N == 1 ? ",)" : ")");
}
/// PrettyPrinting.tuple_string: one number when all entries are equal, else the tuple.
template <std::size_t N>
std::string compact_string(const std::array<index_t, N>& t) {
  for (std::size_t i = 1; i < N; ++i)
    if (t[i] != t[0]) return tuple_string(t);
  return std::to_string(t[0]);
}
template <std::size_t N>
bool all_equal_to(const std::array<index_t, N>& t, index_t v) {
  for (auto e : t)
    if (e != v) return false;
  return true;
}

/// The spatial part of an (S + 2)-shape.
template <std::size_t S, std::size_t N>
shape_t<S> spatial(const shape_t<N>& s) {
  shape_t<S> r{};
  for (std::size_t d = 0; d < S; ++d) r[d] = s[d];
  return r;
}

/// Lux's calc_padding resolved to (lo₁, hi₁, …): SamePad through the kernel's same_padding.
template <std::size_t S>
std::array<index_t, 2 * S> resolve_pad(const pad_arg<S>& p, const shape_t<S>& kernel,
                                       const shape_t<S>& dilation, const char* op) {
  if (p.kind != pad_arg<S>::form::same) return p.lo_hi;
  std::array<index_t, 2 * S> r{};
  for (std::size_t d = 0; d < S; ++d)
    std::tie(r[2 * d], r[2 * d + 1]) = same_padding(kernel[d], dilation[d], op);
  return r;
}

/// What Lux prints for the resolved pad: an N-tuple stays an N-tuple, the rest are 2N.
template <std::size_t S>
std::string pad_string(const pad_arg<S>& given, const std::array<index_t, 2 * S>& resolved) {
  if (given.kind == pad_arg<S>::form::per_dim) {
    shape_t<S> p{};
    for (std::size_t d = 0; d < S; ++d) p[d] = resolved[2 * d];
    return compact_string(p);
  }
  return compact_string(resolved);
}

}  // namespace detail::conv_layer

/// Keyword arguments of Conv / CrossCor (Lux's names; seed-document defaults).
template <std::size_t S, class WInit = glorot_uniform, class BInit = zeros>
struct conv_options {
  spatial_arg<S> stride = 1;
  pad_arg<S> pad = 0;
  spatial_arg<S> dilation = 1;
  index_t groups = 1;
  WInit init_weight{};
  BInit init_bias{};
  bool cross_correlation = false;
};

/// Keyword arguments of ConvTranspose (Lux's names and defaults).
template <std::size_t S, class WInit = glorot_uniform, class BInit = zeros>
struct conv_transpose_options {
  spatial_arg<S> stride = 1;
  pad_arg<S> pad = 0;
  spatial_arg<S> dilation = 1;
  index_t groups = 1;
  WInit init_weight{};
  BInit init_bias{};
  bool cross_correlation = false;
  spatial_arg<S> outpad = 0;
};

namespace detail::conv_layer {

/// What Conv and ConvTranspose share: hyperparameters, parameter init, checks, display.
template <std::size_t S, class F, bool UseBias, class WInit, class BInit>
struct conv_base {
  static_assert(S >= 1 && S <= 3, "lux conv layers: the kernel size has 1, 2 or 3 entries");
  using is_lux_layer = void;
  static constexpr bool use_bias = UseBias;
  static constexpr std::size_t spatial_dims = S;

  shape_t<S> kernel_size{};
  index_t in_chs = 0;
  index_t out_chs = 0;
  F activation{};
  conv_dims<S> cdims{};              ///< stride, resolved padding, dilation, groups, flipped
  std::array<index_t, 2 * S> pad{};  ///< resolved (lo₁, hi₁, …), as Lux stores it
  std::string pad_display;           ///< Lux's printed pad
  WInit init_weight{};
  BInit init_bias{};
  const char* display_name = "Conv";

  conv_base() = default;
  conv_base(const char* name, const index_t (&k)[S], std::pair<index_t, index_t> io, F act,
            const spatial_arg<S>& stride, const pad_arg<S>& pad_given,
            const spatial_arg<S>& dilation, index_t groups, bool cross_correlation, WInit iw,
            BInit ib, bool transpose)
      : in_chs(io.first),
        out_chs(io.second),
        activation(act),
        init_weight(iw),
        init_bias(ib),
        display_name(name) {
    for (std::size_t d = 0; d < S; ++d) kernel_size[d] = k[d];
    const std::string p = std::string(name) + "(" + tuple_string(kernel_size) + ", " +
                          std::to_string(in_chs) + " => " + std::to_string(out_chs) + ")";
    for (std::size_t d = 0; d < S; ++d)
      require<argument_error>(kernel_size[d] >= 1, p, ": kernel size must be >= 1, got ",
                              kernel_size);
    require<argument_error>(in_chs >= 1 && out_chs >= 1, p, ": channel counts must be >= 1");
    require<argument_error>(groups >= 1 && in_chs % groups == 0 && out_chs % groups == 0, p,
                            ": groups = ", groups, " must divide both ", in_chs, " and ", out_chs);
    const shape_t<S> s = stride.value, dil = dilation.value;
    for (std::size_t d = 0; d < S; ++d) {
      require<argument_error>(s[d] >= 1, p, ": stride must be >= 1, got ", s);
      require<argument_error>(dil[d] >= 1, p, ": dilation must be >= 1, got ", dil);
    }
    if (transpose && pad_given.kind == pad_arg<S>::form::same) {
      // Lux: calc_padding(SamePad(), k .- stride .+ 1, dilation, stride).
      shape_t<S> keff{};
      for (std::size_t d = 0; d < S; ++d) {
        keff[d] = kernel_size[d] - s[d] + 1;
        require<argument_error>(keff[d] >= 1, p, ": SamePad needs stride <= kernel size, got ",
                                "stride ", s, ", kernel ", kernel_size);
      }
      pad = resolve_pad(pad_given, keff, dil, p.c_str());
    } else {
      pad = resolve_pad(pad_given, kernel_size, dil, p.c_str());
    }
    for (auto e : pad) require<argument_error>(e >= 0, p, ": padding must be >= 0");
    pad_display = pad_string(pad_given, pad);
    cdims = conv_dims<S>{}
                .with_stride(s)
                .with_lux_pad(pad)
                .with_dilation(dil)
                .with_groups(groups)
                .with_cross_correlation(cross_correlation);
  }

  /// "Conv (5, 5) 1 => 6": the prefix of every error message.
  std::string prefix() const {
    return std::string(display_name) + " " + tuple_string(kernel_size) + " " +
           std::to_string(in_chs) + " => " + std::to_string(out_chs);
  }

  template <std::size_t N>
  void check_channels(const shape_t<N>& in) const {
    require<shape_error>(in[S] == in_chs, prefix(), ": expected input with ", in_chs,
                         " channels (dim ", S + 1, "), got ", in);
  }

  template <class T>
  auto make_parameters(rng& r, const shape_t<S + 2>& wshape) const {
    auto w = initialize<T>(init_weight, r, wshape);
    if constexpr (UseBias)
      return make_named_tuple<"weight", "bias">(std::move(w),
                                                initialize<T>(init_bias, r, shape_t<1>{out_chs}));
    else
      return make_named_tuple<"weight">(std::move(w));
  }

  template <class PS>
  void check_parameters(const PS& ps, const shape_t<S + 2>& wshape) const {
    const auto p = prefix();
    check_parameter_shape(p, "weight", ps.template get<"weight">(), wshape);
    if constexpr (UseBias)
      check_parameter_shape(p, "bias", ps.template get<"bias">(), shape_t<1>{out_chs});
  }
  template <class PS>
  static auto weight_of(const PS& ps) {
    return as_view(ps.template get<"weight">());
  }
  template <class PS>
  static auto bias_of(const PS& ps) {
    if constexpr (UseBias)
      return as_view(ps.template get<"bias">());
    else
      return none;
  }
  template <class G>
  static auto make_gradients(G&& g) {
    if constexpr (UseBias)
      return gradients{std::move(g.dx), make_named_tuple<"weight", "bias">(std::move(g.dweight),
                                                                           std::move(g.dbias))};
    else
      return gradients{std::move(g.dx), make_named_tuple<"weight">(std::move(g.dweight))};
  }

  /// Conv's and ConvTranspose's forward pass once x and ps are checked: fwd(σ, w, x, b) is the
  /// fused kernel with the layer's remaining arguments bound.
  template <class X, class PS, class ST, class Fwd>
  auto forward_with(const X& x, const PS& ps, const ST& st, const Fwd& fwd) const {
    return std::pair{fwd(activation, weight_of(ps), as_view(x), bias_of(ps)), st};
  }
  /// Their pullback once x and ps are checked: fwd(σ, w, x, b) is the saving forward kernel,
  /// bwd(σ, dy, w, x, b, y, z) its backward; `back` owns x (and y when σ' reads the output).
  template <class X, class PS, class ST, class Fwd, class Bwd>
  auto pullback_with(const X& x, const PS& ps, const ST& st, const shape_t<S + 2>& yshape,
                     const Fwd& fwd, const Bwd& bwd) const {
    using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
    auto xc = copy(as_view(x));  // owned by `back`
    const auto w = weight_of(ps);
    const auto b = bias_of(ps);
    auto r = fwd(activation, w, xc, b);
    constexpr bool keep_y = activation_traits<F>::uses_output && !activation_traits<F>::is_identity;
    Tensor<T, S + 2> y_saved = keep_y ? r.y : Tensor<T, S + 2>{};
    auto back = [self = *this, bwd, xc = std::move(xc), y_saved = std::move(y_saved),
                 z = std::move(r.z), w, b, yshape](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == yshape, self.prefix(), ": the output gradient has shape ",
                           dyv.shape(), ", expected ", yshape);
      return make_gradients(bwd(self.activation, dyv, w, xc, b, y_saved, z));
    };
    return pullback_result{std::move(r.y), st, std::move(back)};
  }

  void print_options(std::ostream& os, bool show_cc, const shape_t<S>* outpad) const {
    if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
    if (!all_equal_to(pad, 0)) os << ", pad=" << pad_display;
    if (!all_equal_to(cdims.stride, 1)) os << ", stride=" << compact_string(cdims.stride);
    if (!all_equal_to(cdims.dilation, 1)) os << ", dilation=" << compact_string(cdims.dilation);
    if (cdims.groups != 1) os << ", groups=" << cdims.groups;
    if (outpad && !all_equal_to(*outpad, 0)) os << ", outpad=" << compact_string(*outpad);
    if constexpr (!UseBias) os << ", use_bias=false";
    if (show_cc && !cdims.flipped) os << ", cross_correlation=true";
  }
};

template <class X>
using x_traits = array_traits<std::remove_cvref_t<X>>;

}  // namespace detail::conv_layer

// =================================================================================================
// Conv
// =================================================================================================

template <std::size_t S, class F = identity, bool UseBias = true, class WInit = glorot_uniform,
          class BInit = zeros>
struct Conv : detail::conv_layer::conv_base<S, F, UseBias, WInit, BInit> {
  using base = detail::conv_layer::conv_base<S, F, UseBias, WInit, BInit>;
  static constexpr const char* name = "Conv";

  Conv(const index_t (&k)[S], std::pair<index_t, index_t> in_out, F act = {},
       conv_options<S, WInit, BInit> o = {})
      : Conv("Conv", k, in_out, act, std::move(o)) {}

  /// The weight's shape (k..., in ÷ groups, out).
  shape_t<S + 2> weight_shape() const {
    shape_t<S + 2> w{};
    for (std::size_t d = 0; d < S; ++d) w[d] = this->kernel_size[d];
    w[S] = this->in_chs / this->cdims.groups;
    w[S + 1] = this->out_chs;
    return w;
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return this->template make_parameters<T>(r, weight_shape());
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N == S + 2, "lux::Conv: the input must have rank S + 2 (spatial..., C, B)");
    this->check_channels(in);
    const auto [lo, hi] = this->cdims.padding(this->kernel_size);
    const shape_t<S> o = this->cdims.output_size(detail::conv_layer::spatial<S>(in),
                                                 this->kernel_size, this->prefix().c_str());
    shape_t<N> out = in;
    for (std::size_t d = 0; d < S; ++d) {
      require<shape_error>(o[d] >= 1, this->prefix(), ": the kernel ", this->kernel_size,
                           " (dilation ", this->cdims.dilation, ") does not fit the input ", in,
                           " padded by lo ", lo, " hi ", hi, " along spatial dimension ", d + 1);
      out[d] = o[d];
    }
    out[S] = this->out_chs;
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    static_assert(detail::conv_layer::x_traits<X>::rank == S + 2,
                  "lux::Conv: the input must have rank S + 2 (spatial..., C, B)");
    output_shape(as_view(x).shape());
    this->check_parameters(ps, weight_shape());
    return this->forward_with(
        x, ps, st, [&](const auto&... a) { return fused_conv_bias_activation(a..., this->cdims); });
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    static_assert(detail::conv_layer::x_traits<X>::rank == S + 2,
                  "lux::Conv: the input must have rank S + 2 (spatial..., C, B)");
    const auto yshape = output_shape(as_view(x).shape());
    this->check_parameters(ps, weight_shape());
    return this->pullback_with(
        x, ps, st, yshape,
        [&](const auto&... a) { return fused_conv_bias_activation_forward(a..., this->cdims); },
        [cd = this->cdims](const auto&... a) {
          return fused_conv_bias_activation_backward(a..., cd);
        });
  }

  void print(std::ostream& os) const {
    const bool crosscor_layer = std::string_view(this->display_name) == "CrossCor";
    os << this->display_name << "(" << detail::conv_layer::tuple_string(this->kernel_size) << ", "
       << this->in_chs << " => " << this->out_chs;
    this->print_options(os, !crosscor_layer, nullptr);
    os << ")";
  }

 protected:
  Conv(const char* display, const index_t (&k)[S], std::pair<index_t, index_t> in_out, F act,
       conv_options<S, WInit, BInit> o)
      : base(display, k, in_out, act, o.stride, o.pad, o.dilation, o.groups, o.cross_correlation,
             std::move(o.init_weight), std::move(o.init_bias), false) {}
};

/// Lux ≤ 0.5's CrossCor: a Conv with cross_correlation = true (PyTorch's convolution).
template <std::size_t S, class F = identity, bool UseBias = true, class WInit = glorot_uniform,
          class BInit = zeros>
struct CrossCor : Conv<S, F, UseBias, WInit, BInit> {
  static constexpr const char* name = "CrossCor";
  CrossCor(const index_t (&k)[S], std::pair<index_t, index_t> in_out, F act = {},
           conv_options<S, WInit, BInit> o = {})
      : Conv<S, F, UseBias, WInit, BInit>("CrossCor", k, in_out, act, with_cc(std::move(o))) {}

 private:
  static conv_options<S, WInit, BInit> with_cc(conv_options<S, WInit, BInit> o) {
    o.cross_correlation = true;
    return o;
  }
};

// =================================================================================================
// ConvTranspose
// =================================================================================================

template <std::size_t S, class F = identity, bool UseBias = true, class WInit = glorot_uniform,
          class BInit = zeros>
struct ConvTranspose : detail::conv_layer::conv_base<S, F, UseBias, WInit, BInit> {
  using base = detail::conv_layer::conv_base<S, F, UseBias, WInit, BInit>;
  static constexpr const char* name = "ConvTranspose";
  shape_t<S> outpad{};

  ConvTranspose(const index_t (&k)[S], std::pair<index_t, index_t> in_out, F act = {},
                conv_transpose_options<S, WInit, BInit> o = {})
      : base("ConvTranspose", k, in_out, act, o.stride, o.pad, o.dilation, o.groups,
             o.cross_correlation, std::move(o.init_weight), std::move(o.init_bias), true),
        outpad(o.outpad.value) {
    for (std::size_t d = 0; d < S; ++d)
      require<argument_error>(outpad[d] >= 0, this->prefix(), ": outpad must be >= 0, got ",
                              outpad);
  }

  /// The weight's shape (k..., out ÷ groups, in) — Lux's ConvTranspose layout.
  shape_t<S + 2> weight_shape() const {
    shape_t<S + 2> w{};
    for (std::size_t d = 0; d < S; ++d) w[d] = this->kernel_size[d];
    w[S] = this->out_chs / this->cdims.groups;
    w[S + 1] = this->in_chs;
    return w;
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return this->template make_parameters<T>(r, weight_shape());
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N == S + 2,
                  "lux::ConvTranspose: the input must have rank S + 2 (spatial..., C, B)");
    this->check_channels(in);
    const shape_t<S> o = this->cdims.transpose_output_size(
        detail::conv_layer::spatial<S>(in), this->kernel_size, outpad, this->prefix().c_str());
    shape_t<N> out = in;
    for (std::size_t d = 0; d < S; ++d) {
      require<shape_error>(o[d] >= 1, this->prefix(), ": the output of input ", in,
                           " would be empty along spatial dimension ", d + 1, " (padding ",
                           this->pad_display, ")");
      out[d] = o[d];
    }
    out[S] = this->out_chs;
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    static_assert(detail::conv_layer::x_traits<X>::rank == S + 2,
                  "lux::ConvTranspose: the input must have rank S + 2 (spatial..., C, B)");
    output_shape(as_view(x).shape());
    this->check_parameters(ps, weight_shape());
    return this->forward_with(x, ps, st, [&](const auto&... a) {
      return fused_conv_transpose_bias_activation(a..., this->cdims, outpad);
    });
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    static_assert(detail::conv_layer::x_traits<X>::rank == S + 2,
                  "lux::ConvTranspose: the input must have rank S + 2 (spatial..., C, B)");
    const auto yshape = output_shape(as_view(x).shape());
    this->check_parameters(ps, weight_shape());
    return this->pullback_with(
        x, ps, st, yshape,
        [&](const auto&... a) {
          return fused_conv_transpose_bias_activation_forward(a..., this->cdims, outpad);
        },
        [cd = this->cdims, op = outpad](const auto&... a) {
          return fused_conv_transpose_bias_activation_backward(a..., cd, op);
        });
  }

  void print(std::ostream& os) const {
    os << "ConvTranspose(" << detail::conv_layer::tuple_string(this->kernel_size) << ", "
       << this->in_chs << " => " << this->out_chs;
    this->print_options(os, true, &outpad);
    os << ")";
  }
};

LUX_NAMESPACE_END
