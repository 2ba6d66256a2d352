// luxcpp — what the convolution kernels' front doors (../conv.hpp, ./transpose.hpp) share: the
// compile-time argument checks, the hyper-parameter and shape checks, the geometry of a
// convolution and of a transposed one (spatial dimensions padded to three), and the saved y / z
// plumbing of the backward passes. Internal: lux::detail::conv.
#pragma once

#include <cstddef>
#include <type_traits>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/conv/types.hpp"
#include "lux/kernels/generic/conv.hpp"

LUX_NAMESPACE_BEGIN

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

LUX_NAMESPACE_END
