// Tests for lux::fused_conv_bias_activation, conv, conv_transpose and their backward passes, 1-d
// to 3-d, following the oracle ladder (DESIGN.md §10):
//   1. a naive float64 reference written here (explicit zero padding, explicit kernel flip, then a
//      plain cross-correlation / scatter), against generic and looped, float and double;
//   2. generic vs looped agreement, including shapes big enough to run the threaded paths;
//   3. central finite differences in double for dx, dweight, dbias of conv and conv_transpose;
//   4. PyTorch fixtures (tests/fixtures/conv.txt from make_conv_fixtures.py);
//   5. error paths, plus Lux's own Conv test case (from Lux's layer tests).
// The grid of options is a table of cases (stride 1/2, pad 0/1/asymmetric/same, dilation 1/2,
// groups 1/2/depthwise, flipped or not, 1-d/2-d/3-d), not a product of template instantiations.
//
// GCC 12 reports a false -Wmaybe-uninitialized inside its AVX-512 intrinsics wherever xsimd's
// tanh/exp are instantiated (GCC PR 105593); see tests/core/test_activations.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <lux/kernels/conv.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;
using lux_test::dot;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using lux_test::to_double;

template <class T>
constexpr double fwd_tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
template <class T>
constexpr double bwd_tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;

/// 0 identity, 1 relu, 2 tanh_ (derivative from the output), 3 gelu (from the input).
template <class Fn>
void with_activation(int act, Fn&& fn) {
  switch (act) {
    case 0:
      return fn(lux::identity{});
    case 1:
      return fn(lux::relu{});
    case 2:
      return fn(lux::tanh_{});
    default:
      return fn(lux::gelu{});
  }
}
const char* activation_name(int act) {
  static const char* names[] = {"identity", "relu", "tanh", "gelu"};
  return names[std::clamp(act, 0, 3)];
}

template <class U, class T, std::size_t N>
Tensor<U, N> cast(const Tensor<T, N>& t) {
  auto out = Tensor<U, N>::uninitialized(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) out[i] = static_cast<U>(t[i]);
  return out;
}

// =================================================================================================
// Naive float64 reference: explicit padding, explicit flip, direct sums (3 spatial dims inside)
// =================================================================================================

struct ref_problem {
  std::array<index_t, 3> in{1, 1, 1}, k{1, 1, 1}, stride{1, 1, 1}, lo{0, 0, 0}, hi{0, 0, 0},
      dil{1, 1, 1}, outpad{0, 0, 0};
  index_t cin = 1, cout = 1, groups = 1, batch = 1;  // of the convolution / the transpose
  bool flipped = true;
};

/// The problem of conv(x, w, cd) (or conv_transpose when `transpose`), resolving SamePad here
/// independently of the library: total d·(k−1), lo = ⌈total/2⌉.
template <std::size_t S>
ref_problem make_problem(const shape_t<S + 2>& xs, const shape_t<S + 2>& ws,
                         const lux::conv_dims<S>& cd, bool transpose = false,
                         const shape_t<S>& outpad = {}) {
  ref_problem p;
  for (std::size_t d = 0; d < S; ++d) {
    p.in[d] = xs[d];
    p.k[d] = ws[d];
    p.stride[d] = cd.stride[d];
    p.dil[d] = cd.dilation[d];
    p.outpad[d] = outpad[d];
    if (cd.same_pad) {
      const index_t total = cd.dilation[d] * (ws[d] - 1);
      p.lo[d] = (total + 1) / 2;
      p.hi[d] = total / 2;
    } else {
      p.lo[d] = cd.pad_lo[d];
      p.hi[d] = cd.pad_hi[d];
    }
  }
  p.cin = xs[S];
  p.cout = transpose ? ws[S] * cd.groups : ws[S + 1];
  p.groups = cd.groups;
  p.batch = xs[S + 1];
  p.flipped = cd.flipped;
  return p;
}

/// w with every spatial dimension reversed when p.flipped (the explicit flip).
std::vector<double> flipped_weight(const ref_problem& p, const std::vector<double>& w) {
  const index_t kp = p.k[0] * p.k[1] * p.k[2];
  std::vector<double> out(w.size());
  for (std::size_t base = 0; base < w.size(); base += static_cast<std::size_t>(kp))
    for (index_t a = 0; a < p.k[0]; ++a)
      for (index_t b = 0; b < p.k[1]; ++b)
        for (index_t c = 0; c < p.k[2]; ++c) {
          const index_t src = a + p.k[0] * (b + p.k[1] * c);
          const index_t dst =
              p.flipped ? (p.k[0] - 1 - a) + p.k[0] * ((p.k[1] - 1 - b) + p.k[1] * (p.k[2] - 1 - c))
                        : src;
          out[base + static_cast<std::size_t>(dst)] = w[base + static_cast<std::size_t>(src)];
        }
  return out;
}

/// y = σ(conv(x, w) + b) in float64; returns y (O..., cout, batch) as a flat vector and `out`.
template <class F>
std::vector<double> ref_conv(const ref_problem& p, const std::vector<double>& x,
                             const std::vector<double>& w, const std::vector<double>* b, const F& f,
                             std::array<index_t, 3>& out) {
  std::array<index_t, 3> ip{};
  for (int d = 0; d < 3; ++d) {
    ip[d] = p.in[d] + p.lo[d] + p.hi[d];
    out[d] = (ip[d] - p.dil[d] * (p.k[d] - 1) - 1) / p.stride[d] + 1;
  }
  // Explicitly zero-padded input.
  const index_t pin = ip[0] * ip[1] * ip[2];
  std::vector<double> xp(static_cast<std::size_t>(pin * p.cin * p.batch), 0.0);
  for (index_t nc = 0; nc < p.cin * p.batch; ++nc)
    for (index_t c = 0; c < p.in[2]; ++c)
      for (index_t b2 = 0; b2 < p.in[1]; ++b2)
        for (index_t a = 0; a < p.in[0]; ++a)
          xp[static_cast<std::size_t>(
              (a + p.lo[0]) + ip[0] * ((b2 + p.lo[1]) + ip[1] * (c + p.lo[2])) + pin * nc)] =
              x[static_cast<std::size_t>(a + p.in[0] * (b2 + p.in[1] * c) +
                                         p.in[0] * p.in[1] * p.in[2] * nc)];
  const std::vector<double> wf = flipped_weight(p, w);
  const index_t cg = p.cin / p.groups, og = p.cout / p.groups;
  const index_t po = out[0] * out[1] * out[2];
  std::vector<double> y(static_cast<std::size_t>(po * p.cout * p.batch));
  for (index_t n = 0; n < p.batch; ++n)
    for (index_t co = 0; co < p.cout; ++co)
      for (index_t o2 = 0; o2 < out[2]; ++o2)
        for (index_t o1 = 0; o1 < out[1]; ++o1)
          for (index_t o0 = 0; o0 < out[0]; ++o0) {
            double acc = b ? (*b)[static_cast<std::size_t>(co)] : 0.0;
            for (index_t cl = 0; cl < cg; ++cl) {
              const index_t ci = (co / og) * cg + cl;
              for (index_t k2 = 0; k2 < p.k[2]; ++k2)
                for (index_t k1 = 0; k1 < p.k[1]; ++k1)
                  for (index_t k0 = 0; k0 < p.k[0]; ++k0) {
                    const index_t a = o0 * p.stride[0] + k0 * p.dil[0];
                    const index_t b2 = o1 * p.stride[1] + k1 * p.dil[1];
                    const index_t c = o2 * p.stride[2] + k2 * p.dil[2];
                    acc += wf[static_cast<std::size_t>(
                               k0 + p.k[0] * (k1 + p.k[1] * (k2 + p.k[2] * (cl + cg * co))))] *
                           xp[static_cast<std::size_t>(a + ip[0] * (b2 + ip[1] * c) +
                                                       pin * (ci + p.cin * n))];
                  }
            }
            y[static_cast<std::size_t>(o0 + out[0] * (o1 + out[1] * o2) + po * (co + p.cout * n))] =
                f(acc);
          }
  return y;
}

/// y = σ(conv_transpose(x, w) + b) in float64 (w: k, cout/groups, cin): every product scatters to
/// the uncropped output at o·s + k·d, which is then cut to the window [lo, full + outpad − hi).
template <class F>
std::vector<double> ref_conv_transpose(const ref_problem& p, const std::vector<double>& x,
                                       const std::vector<double>& w, const std::vector<double>* b,
                                       const F& f, std::array<index_t, 3>& out) {
  std::array<index_t, 3> full{};
  for (int d = 0; d < 3; ++d) {
    full[d] = (p.in[d] - 1) * p.stride[d] + p.dil[d] * (p.k[d] - 1) + 1 + p.outpad[d];
    out[d] = full[d] - p.lo[d] - p.hi[d];
  }
  const index_t pf = full[0] * full[1] * full[2], pi = p.in[0] * p.in[1] * p.in[2];
  const std::vector<double> wf = flipped_weight(p, w);
  const index_t cig = p.cin / p.groups, og = p.cout / p.groups;
  std::vector<double> yf(static_cast<std::size_t>(pf * p.cout * p.batch), 0.0);
  for (index_t n = 0; n < p.batch; ++n)
    for (index_t ci = 0; ci < p.cin; ++ci)
      for (index_t o2 = 0; o2 < p.in[2]; ++o2)
        for (index_t o1 = 0; o1 < p.in[1]; ++o1)
          for (index_t o0 = 0; o0 < p.in[0]; ++o0) {
            const double xv = x[static_cast<std::size_t>(o0 + p.in[0] * (o1 + p.in[1] * o2) +
                                                         pi * (ci + p.cin * n))];
            for (index_t cl = 0; cl < og; ++cl) {
              const index_t co = (ci / cig) * og + cl;
              for (index_t k2 = 0; k2 < p.k[2]; ++k2)
                for (index_t k1 = 0; k1 < p.k[1]; ++k1)
                  for (index_t k0 = 0; k0 < p.k[0]; ++k0) {
                    const index_t a = o0 * p.stride[0] + k0 * p.dil[0];
                    const index_t b2 = o1 * p.stride[1] + k1 * p.dil[1];
                    const index_t c = o2 * p.stride[2] + k2 * p.dil[2];
                    yf[static_cast<std::size_t>(a + full[0] * (b2 + full[1] * c) +
                                                pf * (co + p.cout * n))] +=
                        wf[static_cast<std::size_t>(
                            k0 + p.k[0] * (k1 + p.k[1] * (k2 + p.k[2] * (cl + og * ci))))] *
                        xv;
                  }
            }
          }
  const index_t po = out[0] * out[1] * out[2];
  std::vector<double> y(static_cast<std::size_t>(po * p.cout * p.batch));
  for (index_t nc = 0; nc < p.cout * p.batch; ++nc)
    for (index_t c = 0; c < out[2]; ++c)
      for (index_t b2 = 0; b2 < out[1]; ++b2)
        for (index_t a = 0; a < out[0]; ++a) {
          const double v = yf[static_cast<std::size_t>(
              (a + p.lo[0]) + full[0] * ((b2 + p.lo[1]) + full[1] * (c + p.lo[2])) + pf * nc)];
          y[static_cast<std::size_t>(a + out[0] * (b2 + out[1] * c) + po * nc)] =
              f(v + (b ? (*b)[static_cast<std::size_t>(nc % p.cout)] : 0.0));
        }
  return y;
}

template <class A>
std::vector<double> to_vec(const A& a) {
  std::vector<double> v(static_cast<std::size_t>(a.numel()));
  for (index_t i = 0; i < a.numel(); ++i)
    v[static_cast<std::size_t>(i)] = static_cast<double>(a.data()[i]);
  return v;
}
double rel_err(const std::vector<double>& a, const std::vector<double>& ref) {
  if (a.size() != ref.size()) return INFINITY;
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return diff / scale;
}

// =================================================================================================
// The case table
// =================================================================================================

template <std::size_t S>
struct conv_case {
  const char* name;
  shape_t<S + 2> x;  // (spatial..., C_in, B)
  shape_t<S + 2> w;  // conv: (k..., C_in/g, C_out); transpose: (k..., C_out/g, C_in)
  lux::conv_dims<S> cd;
  int act;
  shape_t<S> outpad = {};  // transpose only
};

using cd1 = lux::conv_dims<1>;
using cd2 = lux::conv_dims<2>;
using cd3 = lux::conv_dims<3>;

std::vector<conv_case<1>> conv_cases_1d() {
  return {
      {"1d stride 2 pad 1", {9, 3, 2}, {3, 3, 4}, cd1{}.with_stride(2).with_pad(1), 1},
      {"1d groups 2 dilation 2 same xcorr",
       {10, 4, 2},
       {4, 2, 6},
       cd1{}.with_groups(2).with_dilation(2).with_same_pad().with_cross_correlation(),
       2},
      {"1d depthwise asymmetric", {8, 3, 2}, {5, 1, 3}, cd1{}.with_groups(3).with_pad({2}, {1}), 3},
      {"1d pointwise", {7, 5, 2}, {1, 5, 3}, cd1{}, 0},
  };
}
std::vector<conv_case<2>> conv_cases_2d() {
  return {
      {"2d plain 3x3", {6, 5, 4, 2}, {3, 3, 4, 3}, cd2{}, 1},
      {"2d stride 2 pad 1 xcorr",
       {7, 6, 4, 2},
       {3, 3, 4, 4},
       cd2{}.with_stride(2).with_pad(1).with_cross_correlation(),
       0},
      {"2d asymmetric pad dilation 2",
       {8, 7, 2, 2},
       {3, 2, 2, 3},
       cd2{}.with_lux_pad({0, 1, 2, 1}).with_dilation({2, 1}),
       2},
      {"2d same pad even kernel", {5, 6, 3, 1}, {4, 3, 3, 2}, cd2{}.with_same_pad(), 3},
      {"2d groups 2 stride (1,2)",
       {6, 6, 4, 2},
       {3, 3, 2, 6},
       cd2{}.with_groups(2).with_stride({1, 2}),
       1},
      {"2d depthwise pad 1", {6, 5, 4, 2}, {3, 3, 1, 4}, cd2{}.with_groups(4).with_pad(1), 2},
      {"2d depthwise x2 stride 2 dilation 2 xcorr",
       {9, 8, 3, 2},
       {3, 3, 1, 6},
       cd2{}.with_groups(3).with_stride(2).with_dilation(2).with_pad(2).with_cross_correlation(),
       0},
      {"2d single input channel", {7, 6, 1, 2}, {3, 2, 1, 3}, cd2{}.with_pad({1, 0}), 1},
      {"2d pointwise", {5, 4, 6, 2}, {1, 1, 6, 4}, cd2{}, 3},
      {"2d pointwise groups 2", {5, 4, 6, 2}, {1, 1, 3, 4}, cd2{}.with_groups(2), 0},
      {"2d 1x1 stride 2", {6, 6, 3, 2}, {1, 1, 3, 2}, cd2{}.with_stride(2), 2},
      {"2d kernel = padded input", {3, 4, 2, 1}, {5, 4, 2, 2}, cd2{}.with_pad({1, 0}), 0},
  };
}
std::vector<conv_case<3>> conv_cases_3d() {
  return {
      {"3d pad 1 stride (1,2,1)",
       {5, 4, 4, 2, 2},
       {3, 2, 3, 2, 3},
       cd3{}.with_pad(1).with_stride({1, 2, 1}),
       2},
      {"3d groups 2 dilation asym xcorr",
       {4, 5, 3, 4, 1},
       {2, 2, 2, 2, 4},
       cd3{}
           .with_groups(2)
           .with_dilation({1, 2, 1})
           .with_pad({1, 0, 0}, {0, 1, 1})
           .with_cross_correlation(),
       1},
      {"3d depthwise", {5, 5, 4, 2, 2}, {3, 3, 3, 1, 2}, cd3{}.with_groups(2).with_pad(1), 0},
  };
}

std::vector<conv_case<1>> transpose_cases_1d() {
  return {
      {"1d transpose stride 3 asym outpad 2",
       {5, 4, 2},
       {3, 2, 4},
       cd1{}.with_stride(3).with_pad({2}, {0}),
       0,
       {2}},
      {"1d transpose groups 2 dilation 2 xcorr",
       {6, 4, 1},
       {3, 3, 4},
       cd1{}.with_groups(2).with_dilation(2).with_pad(1).with_cross_correlation(),
       2,
       {0}},
  };
}
std::vector<conv_case<2>> transpose_cases_2d() {
  return {
      {"2d transpose stride 2 pad 1 outpad",
       {4, 3, 4, 2},
       {3, 3, 3, 4},
       cd2{}.with_stride(2).with_pad(1),
       1,
       {1, 0}},
      {"2d transpose groups 2 dilation xcorr",
       {3, 4, 4, 1},
       {2, 3, 1, 4},
       cd2{}.with_groups(2).with_stride({2, 1}).with_dilation({1, 2}).with_cross_correlation(),
       2,
       {0, 0}},
      {"2d transpose depthwise",
       {4, 4, 3, 2},
       {3, 3, 1, 3},
       cd2{}.with_groups(3).with_stride(2).with_pad(1),
       3,
       {0, 1}},
      {"2d transpose pointwise", {4, 3, 5, 2}, {1, 1, 3, 5}, cd2{}, 0, {0, 0}},
  };
}
std::vector<conv_case<3>> transpose_cases_3d() {
  return {
      {"3d transpose",
       {3, 2, 3, 2, 1},
       {2, 3, 2, 2, 2},
       cd3{}.with_stride({2, 1, 2}),
       2,
       {1, 0, 0}},
  };
}

// =================================================================================================
// Per-case checks
// =================================================================================================

template <class T, std::size_t S, class F>
void check_forward(const conv_case<S>& c, const F& f, bool transpose) {
  const auto xd = random_tensor<double, S + 2>(c.x, 11);
  const auto wd = random_tensor<double, S + 2>(c.w, 12);
  const index_t cout = transpose ? c.w[S] * c.cd.groups : c.w[S + 1];
  const auto bd = random_tensor<double, 1>(shape_t<1>{cout}, 13);
  const ref_problem p = make_problem<S>(c.x, c.w, c.cd, transpose, c.outpad);
  std::array<index_t, 3> out{};
  const auto xv = to_vec(xd), wv = to_vec(wd), bv = to_vec(bd);
  const std::vector<double> ref =
      transpose ? ref_conv_transpose(p, xv, wv, &bv, f, out) : ref_conv(p, xv, wv, &bv, f, out);
  const std::vector<double> ref_nobias =
      transpose ? ref_conv_transpose(p, xv, wv, nullptr, lux::identity{}, out)
                : ref_conv(p, xv, wv, nullptr, lux::identity{}, out);
  shape_t<S + 2> ys{};
  for (std::size_t d = 0; d < S; ++d) ys[d] = out[d];
  ys[S] = cout;
  ys[S + 1] = c.x[S + 1];

  const auto x = cast<T>(xd);
  const auto w = cast<T>(wd);
  const auto b = cast<T>(bd);
  auto run = [&](auto mode) {
    if (transpose) {
      auto y = lux::fused_conv_transpose_bias_activation(mode, f, w, x, b, c.cd, c.outpad);
      auto r = lux::fused_conv_transpose_bias_activation_forward(mode, f, w, x, b, c.cd, c.outpad);
      auto y0 = lux::conv_transpose(mode, x, w, c.cd, c.outpad);
      REQUIRE(y.shape() == ys);
      REQUIRE(y0.shape() == ys);
      CHECK(rel_err(to_vec(r.y), to_vec(y)) == 0.0);
      CHECK(rel_err(to_vec(y0), ref_nobias) <= fwd_tol<T>);
      CHECK(lux::conv_transpose_output_shape<S>(c.x, c.w, c.cd, c.outpad) == ys);
      return std::make_pair(std::move(y), std::move(r.z));
    } else {
      auto y = lux::fused_conv_bias_activation(mode, f, w, x, b, c.cd);
      auto r = lux::fused_conv_bias_activation_forward(mode, f, w, x, b, c.cd);
      auto y0 = lux::conv(mode, x, w, c.cd);
      REQUIRE(y.shape() == ys);
      REQUIRE(y0.shape() == ys);
      CHECK(rel_err(to_vec(r.y), to_vec(y)) == 0.0);
      CHECK(rel_err(to_vec(y0), ref_nobias) <= fwd_tol<T>);
      CHECK(lux::conv_output_shape<S>(c.x, c.w, c.cd) == ys);
      return std::make_pair(std::move(y), std::move(r.z));
    }
  };
  auto [yg, zg] = run(lux::generic_op{});
  auto [yl, zl] = run(lux::looped_op{});
  CHECK(rel_err(to_vec(yg), ref) <= fwd_tol<T>);
  CHECK(rel_err(to_vec(yl), ref) <= fwd_tol<T>);
  CHECK(max_rel_err(yl, yg) <= fwd_tol<T>);
  if constexpr (!lux::activation_traits<F>::uses_output) {
    const std::vector<double> zref = transpose
                                         ? ref_conv_transpose(p, xv, wv, &bv, lux::identity{}, out)
                                         : ref_conv(p, xv, wv, &bv, lux::identity{}, out);
    CHECK(rel_err(to_vec(zg), zref) <= fwd_tol<T>);
    CHECK(rel_err(to_vec(zl), zref) <= fwd_tol<T>);
  } else {
    CHECK(zg.numel() == 0);
  }
}

/// Gradients of L = <σ(conv(x, w) + b), v> in double against central finite differences, for both
/// modes, and the separate backward functions against the fused one.
template <std::size_t S, class F>
void check_gradients(const conv_case<S>& c, const F& f, bool transpose) {
  constexpr std::size_t N = S + 2;
  const auto x = random_tensor<double, N>(c.x, 21);
  const auto w = random_tensor<double, N>(c.w, 22);
  const index_t cout = transpose ? c.w[S] * c.cd.groups : c.w[S + 1];
  const auto b = random_tensor<double, 1>(shape_t<1>{cout}, 23);
  auto forward = [&](const auto& xx, const auto& ww, const auto& bb) {
    return transpose ? lux::fused_conv_transpose_bias_activation(lux::generic_op{}, f, ww, xx, bb,
                                                                 c.cd, c.outpad)
                     : lux::fused_conv_bias_activation(lux::generic_op{}, f, ww, xx, bb, c.cd);
  };
  const auto y0 = forward(x, w, b);
  const auto v = random_tensor<double, N>(y0.shape(), 24);
  const auto gx = lux_test::numerical_gradient<N>(
      [&](const Tensor<double, N>& t) { return dot(forward(t, w, b), v); }, x);
  const auto gw = lux_test::numerical_gradient<N>(
      [&](const Tensor<double, N>& t) { return dot(forward(x, t, b), v); }, w);
  const auto gb = lux_test::numerical_gradient<1>(
      [&](const Tensor<double, 1>& t) { return dot(forward(x, w, t), v); }, b);

  auto grads = [&](auto mode) {
    if (transpose) {
      auto r = lux::fused_conv_transpose_bias_activation_forward(mode, f, w, x, b, c.cd, c.outpad);
      return lux::fused_conv_transpose_bias_activation_backward(mode, f, v, w, x, b, r.y, r.z, c.cd,
                                                                c.outpad);
    } else {
      auto r = lux::fused_conv_bias_activation_forward(mode, f, w, x, b, c.cd);
      return lux::fused_conv_bias_activation_backward(mode, f, v, w, x, b, r.y, r.z, c.cd);
    }
  };
  for (int m = 0; m < 2; ++m) {
    INFO("mode " << (m ? "looped" : "generic"));
    const auto g = m ? grads(lux::looped_op{}) : grads(lux::generic_op{});
    CHECK(max_rel_err(g.dx, gx) <= 1e-6);
    CHECK(max_rel_err(g.dweight, gw) <= 1e-6);
    CHECK(max_rel_err(g.dbias, gb) <= 1e-6);
  }

  // The separate functions (identity activation: dz = dy).
  for (int m = 0; m < 2; ++m) {
    INFO("separate backward, mode " << (m ? "looped" : "generic"));
    auto check_mode = [&](auto mode) {
      const auto g =
          transpose ? lux::fused_conv_transpose_bias_activation_backward(
                          mode, lux::identity{}, v, w, x, b, lux::none, lux::none, c.cd, c.outpad)
                    : lux::fused_conv_bias_activation_backward(mode, lux::identity{}, v, w, x, b,
                                                               lux::none, lux::none, c.cd);
      const auto dx = transpose
                          ? lux::conv_transpose_backward_data(mode, v, w, x.shape(), c.cd, c.outpad)
                          : lux::conv_backward_data(mode, v, w, x.shape(), c.cd);
      const auto dw =
          transpose ? lux::conv_transpose_backward_filter(mode, x, v, w.shape(), c.cd, c.outpad)
                    : lux::conv_backward_filter(mode, x, v, w.shape(), c.cd);
      const auto db = lux::conv_backward_bias(mode, v);
      CHECK(max_rel_err(dx, g.dx) <= 1e-13);
      CHECK(max_rel_err(dw, g.dweight) <= 1e-13);
      CHECK(max_rel_err(db, g.dbias) <= 1e-13);
      // without a bias, dbias is empty
      const auto g0 =
          transpose
              ? lux::fused_conv_transpose_bias_activation_backward(
                    mode, lux::identity{}, v, w, x, lux::none, lux::none, lux::none, c.cd, c.outpad)
              : lux::fused_conv_bias_activation_backward(mode, lux::identity{}, v, w, x, lux::none,
                                                         lux::none, lux::none, c.cd);
      CHECK(g0.dbias.numel() == 0);
      CHECK(max_rel_err(g0.dx, g.dx) <= 1e-13);
    };
    if (m)
      check_mode(lux::looped_op{});
    else
      check_mode(lux::generic_op{});
  }
}

/// Float gradients: looped against generic.
template <std::size_t S, class F>
void check_float_gradients(const conv_case<S>& c, const F& f, bool transpose) {
  const auto x = random_tensor<float, S + 2>(c.x, 31);
  const auto w = random_tensor<float, S + 2>(c.w, 32);
  const index_t cout = transpose ? c.w[S] * c.cd.groups : c.w[S + 1];
  const auto b = random_tensor<float, 1>(shape_t<1>{cout}, 33);
  auto grads = [&](auto mode) {
    if (transpose) {
      auto r = lux::fused_conv_transpose_bias_activation_forward(mode, f, w, x, b, c.cd, c.outpad);
      const auto v = random_tensor<float, S + 2>(r.y.shape(), 34);
      return lux::fused_conv_transpose_bias_activation_backward(mode, f, v, w, x, b, r.y, r.z, c.cd,
                                                                c.outpad);
    } else {
      auto r = lux::fused_conv_bias_activation_forward(mode, f, w, x, b, c.cd);
      const auto v = random_tensor<float, S + 2>(r.y.shape(), 34);
      return lux::fused_conv_bias_activation_backward(mode, f, v, w, x, b, r.y, r.z, c.cd);
    }
  };
  const auto gg = grads(lux::generic_op{});
  const auto gl = grads(lux::looped_op{});
  CHECK(max_rel_err(gl.dx, gg.dx) <= bwd_tol<float>);
  CHECK(max_rel_err(gl.dweight, gg.dweight) <= bwd_tol<float>);
  CHECK(max_rel_err(gl.dbias, gg.dbias) <= bwd_tol<float>);
}

template <std::size_t S>
void run_cases(const std::vector<conv_case<S>>& cases, bool transpose) {
  for (const auto& c : cases) {
    SECTION(std::string(c.name) + " / " + activation_name(c.act)) {
      with_activation(c.act, [&](auto f) {
        {
          INFO("forward float");
          check_forward<float>(c, f, transpose);
        }
        {
          INFO("forward double");
          check_forward<double>(c, f, transpose);
        }
        {
          INFO("gradients double vs finite differences");
          check_gradients(c, f, transpose);
        }
        {
          INFO("gradients float, looped vs generic");
          check_float_gradients(c, f, transpose);
        }
      });
    }
  }
}

}  // namespace

// =================================================================================================
// conv_dims
// =================================================================================================

TEST_CASE("conv_dims: construction, padding and output sizes", "[conv]") {
  constexpr auto cd = lux::conv_dims<2>{}.with_stride(2).with_pad(1);
  STATIC_REQUIRE(cd.stride == shape_t<2>{2, 2});
  STATIC_REQUIRE(cd.pad_lo == shape_t<2>{1, 1});
  STATIC_REQUIRE(cd.pad_hi == shape_t<2>{1, 1});
  STATIC_REQUIRE(cd.dilation == shape_t<2>{1, 1});
  STATIC_REQUIRE(cd.groups == 1);
  STATIC_REQUIRE(cd.flipped);  // Lux Conv: a true convolution by default
  STATIC_REQUIRE(!cd.with_cross_correlation().flipped);

  // Designated initializers (an aggregate with Lux's defaults).
  constexpr lux::conv_dims<3> d3{.stride = {2, 2, 1}, .groups = 2};
  STATIC_REQUIRE(d3.stride == shape_t<3>{2, 2, 1});
  STATIC_REQUIRE(d3.dilation == shape_t<3>{1, 1, 1});
  STATIC_REQUIRE(d3.groups == 2);

  // Lux's 2N-tuple pad (lo₁, hi₁, lo₂, hi₂).
  constexpr auto lp = lux::conv_dims<2>{}.with_lux_pad({0, 1, 1, 2});
  STATIC_REQUIRE(lp.pad_lo == shape_t<2>{0, 1});
  STATIC_REQUIRE(lp.pad_hi == shape_t<2>{1, 2});

  // SamePad: total d(k−1), the low side gets the larger half, stride ignored.
  STATIC_REQUIRE(lux::same_padding(3) == std::pair<index_t, index_t>{1, 1});
  STATIC_REQUIRE(lux::same_padding(4) == std::pair<index_t, index_t>{2, 1});
  STATIC_REQUIRE(lux::same_padding(3, 2) == std::pair<index_t, index_t>{2, 2});
  STATIC_REQUIRE(lux::same_padding(2, 3) == std::pair<index_t, index_t>{2, 1});
  constexpr auto sp = lux::conv_dims<2>{}.with_same_pad().with_dilation({1, 3});
  STATIC_REQUIRE(sp.padding({4, 2}).first == shape_t<2>{2, 2});
  STATIC_REQUIRE(sp.padding({4, 2}).second == shape_t<2>{1, 1});
  STATIC_REQUIRE(sp.output_size({9, 7}, {4, 2}) == shape_t<2>{9, 7});
  STATIC_REQUIRE(sp.with_stride(2).output_size({9, 7}, {4, 2}) == shape_t<2>{5, 4});

  // O = ⌊(I + p_lo + p_hi − d(k − 1) − 1)/s⌋ + 1
  STATIC_REQUIRE(lux::conv_output_size(28, 3, 1, 0, 1, 1) == 27);
  STATIC_REQUIRE(lux::conv_output_size(28, 3, 1, 1, 2, 1) == 29);
  STATIC_REQUIRE(lux::conv_output_size(224, 7, 2, 3, 3, 1) == 112);
  STATIC_REQUIRE(lux::conv_output_size(5, 3, 2, 0, 0, 2) == 1);
  STATIC_REQUIRE(lux::conv_output_size(4, 3, 1, 0, 0, 2) == 0);  // does not fit
  // (I − 1)s + 1 + (k − 1)d − (p_lo + p_hi) + outpad
  STATIC_REQUIRE(lux::conv_transpose_output_size(4, 3, 2, 1, 1, 1, 1) == 8);
  STATIC_REQUIRE(lux::conv_dims<1>{}.with_stride(3).transpose_output_size({5}, {3}, {2}) ==
                 shape_t<1>{17});
  CHECK(lux::conv_output_shape<2>({28, 28, 1, 1}, {3, 3, 1, 1}, lp) == shape_t<4>{27, 29, 1, 1});
}

// =================================================================================================
// The grid: naive reference, generic vs looped, finite differences
// =================================================================================================

TEST_CASE("conv 1-d grid", "[conv]") { run_cases(conv_cases_1d(), false); }
TEST_CASE("conv 2-d grid", "[conv]") { run_cases(conv_cases_2d(), false); }
TEST_CASE("conv 3-d grid", "[conv]") { run_cases(conv_cases_3d(), false); }
TEST_CASE("conv_transpose 1-d grid", "[conv]") { run_cases(transpose_cases_1d(), true); }
TEST_CASE("conv_transpose 2-d grid", "[conv]") { run_cases(transpose_cases_2d(), true); }
TEST_CASE("conv_transpose 3-d grid", "[conv]") { run_cases(transpose_cases_3d(), true); }

TEST_CASE("conv: true convolution flips the kernel, cross-correlation does not", "[conv]") {
  // x = (1, 2, 3, 4, 5), w = (1, 0, -1): xcorr y[o] = x[o] − x[o+2] = −2; conv y[o] = x[o+2] − x[o]
  // = 2.
  const Tensor<double, 3> x({5, 1, 1}, {1, 2, 3, 4, 5});
  const Tensor<double, 3> w({3, 1, 1}, {1, 0, -1});
  for (int m = 0; m < 2; ++m) {
    auto run = [&](auto mode) {
      const auto yc = lux::conv(mode, x, w, lux::conv_dims<1>{});
      const auto yx = lux::conv(mode, x, w, lux::conv_dims<1>{}.with_cross_correlation());
      REQUIRE(yc.shape() == shape_t<3>{3, 1, 1});
      for (index_t i = 0; i < 3; ++i) {
        CHECK(yc[i] == 2.0);
        CHECK(yx[i] == -2.0);
      }
    };
    if (m)
      run(lux::looped_op{});
    else
      run(lux::generic_op{});
  }
}

TEST_CASE("conv: Lux's Conv((3,3), 1=>1, relu, pad=(0,1,1,2)) test case", "[conv]") {
  // test/core_layers/conv_tests.jl: ones weights on 28×28 ones. Lux's 2N pad is
  // (lo₁, hi₁, lo₂, hi₂) = dimension 1 (W) low 0 / high 1, dimension 2 (H) low 1 / high 2.
  const Tensor<float, 4> x(shape_t<4>{28, 28, 1, 1}, 1.0f);
  const Tensor<float, 4> w(shape_t<4>{3, 3, 1, 1}, 1.0f);
  const Tensor<float, 1> b(shape_t<1>{1}, 0.0f);
  const auto cd = lux::conv_dims<2>{}.with_lux_pad({0, 1, 1, 2});
  for (int m = 0; m < 3; ++m) {
    const auto y =
        m == 0 ? lux::fused_conv_bias_activation(lux::relu{}, w, x, b, cd)
        : m == 1
            ? lux::fused_conv_bias_activation(lux::generic_op{}, lux::relu{}, w, x, b, cd)
            : lux::fused_conv_bias_activation(lux::looped_op{}, lux::relu{}, w, x, lux::none, cd);
    REQUIRE(y.shape() == shape_t<4>{27, 29, 1, 1});
    CHECK(y(0, 0, 0, 0) == 6.0f);
    CHECK(y(1, 1, 0, 0) == 9.0f);
    CHECK(y(26, 0, 0, 0) == 4.0f);
    CHECK(y(0, 28, 0, 0) == 3.0f);
    CHECK(y(26, 28, 0, 0) == 2.0f);
  }
  // The naive reference agrees.
  const ref_problem p = make_problem<2>(x.shape(), w.shape(), cd);
  std::array<index_t, 3> out{};
  const auto ref = ref_conv(p, to_vec(x), to_vec(w), nullptr, lux::relu{}, out);
  CHECK(out == std::array<index_t, 3>{27, 29, 1});
  CHECK(ref[0] == 6.0);
  CHECK(ref[1 + 27] == 9.0);
  CHECK(ref[26] == 4.0);
  CHECK(ref[27 * 28] == 3.0);
  CHECK(ref[26 + 27 * 28] == 2.0);
}

TEST_CASE("conv: any element type in generic mode (long double)", "[conv]") {
  const shape_t<4> xs{5, 4, 2, 2}, ws{3, 2, 2, 3};
  const auto cd = lux::conv_dims<2>{}.with_pad(1).with_stride({2, 1});
  const auto x = random_tensor<long double, 4>(xs, 41);
  const auto w = random_tensor<long double, 4>(ws, 42);
  const auto b = random_tensor<long double, 1>(shape_t<1>{3}, 43);
  // operation_mode_t picks generic_op for long double.
  const auto r = lux::fused_conv_bias_activation_forward(lux::tanh_{}, w, x, b, cd);
  const ref_problem p = make_problem<2>(xs, ws, cd);
  std::array<index_t, 3> out{};
  const auto bv = to_vec(b);
  CHECK(rel_err(to_vec(r.y), ref_conv(p, to_vec(x), to_vec(w), &bv, lux::tanh_{}, out)) <= 1e-15);
  const auto v = random_tensor<long double, 4>(r.y.shape(), 44);
  const auto g =
      lux::fused_conv_bias_activation_backward(lux::tanh_{}, v, w, x, b, r.y, lux::none, cd);
  const auto gd = lux::fused_conv_bias_activation_backward(
      lux::tanh_{}, cast<double>(v), cast<double>(w), cast<double>(x), cast<double>(b),
      cast<double>(r.y), lux::none, cd);
  CHECK(max_rel_err(g.dx, gd.dx) <= 1e-13);
  CHECK(max_rel_err(g.dweight, gd.dweight) <= 1e-13);
  CHECK(max_rel_err(g.dbias, gd.dbias) <= 1e-13);
  const auto yt =
      lux::conv_transpose(x, cast<long double>(random_tensor<double, 4>({3, 2, 2, 2}, 45)),
                          lux::conv_dims<2>{}.with_stride(2));
  CHECK(yt.shape() == shape_t<4>{11, 8, 2, 2});
}

// =================================================================================================
// Threaded paths: shapes big enough to split over threads (looped vs generic, float)
// =================================================================================================

namespace {
template <std::size_t S, class F>
void check_large(const conv_case<S>& c, const F& f, bool transpose) {
  check_float_gradients(c, f, transpose);
  const auto x = random_tensor<float, S + 2>(c.x, 51);
  const auto w = random_tensor<float, S + 2>(c.w, 52);
  const index_t cout = transpose ? c.w[S] * c.cd.groups : c.w[S + 1];
  const auto b = random_tensor<float, 1>(shape_t<1>{cout}, 53);
  const auto yg = transpose ? lux::fused_conv_transpose_bias_activation(lux::generic_op{}, f, w, x,
                                                                        b, c.cd, c.outpad)
                            : lux::fused_conv_bias_activation(lux::generic_op{}, f, w, x, b, c.cd);
  const auto yl = transpose ? lux::fused_conv_transpose_bias_activation(lux::looped_op{}, f, w, x,
                                                                        b, c.cd, c.outpad)
                            : lux::fused_conv_bias_activation(lux::looped_op{}, f, w, x, b, c.cd);
  CHECK(max_rel_err(yl, yg) <= fwd_tol<float>);
}
}  // namespace

TEST_CASE("conv: looped threaded paths agree with generic", "[conv]") {
  // Batch ≥ threads: the per-sample fused backward; batch 1: the separate passes with the data
  // gradient split over channel chunks; depthwise; pointwise; transposed.
  const std::vector<conv_case<2>> cases = {
      {"3x3 pad 1 batch 4", {20, 18, 8, 4}, {3, 3, 8, 16}, cd2{}.with_pad(1), 1},
      {"groups 2 stride 2 batch 1",
       {24, 20, 8, 1},
       {3, 3, 4, 6},
       cd2{}.with_groups(2).with_stride(2),
       3},
      {"depthwise pad 1", {30, 30, 16, 2}, {3, 3, 1, 16}, cd2{}.with_groups(16).with_pad(1), 2},
      {"pointwise batch 3", {16, 16, 32, 3}, {1, 1, 32, 16}, cd2{}, 0},
      {"pointwise batch 1", {16, 16, 32, 1}, {1, 1, 32, 16}, cd2{}, 1},
      {"tall kernel, long rows",
       {70, 9, 6, 2},
       {5, 3, 6, 8},
       cd2{}.with_pad({2, 1}).with_dilation({3, 1}),
       2},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      with_activation(c.act, [&](auto f) { check_large(c, f, false); });
    }
  }
  const conv_case<2> t{
      "transpose", {12, 12, 16, 2}, {3, 3, 8, 16}, cd2{}.with_stride(2).with_pad(1), 1, {1, 1}};
  SECTION("transpose stride 2") { check_large(t, lux::relu{}, true); }
}

// =================================================================================================
// PyTorch fixtures
// =================================================================================================

namespace {
template <std::size_t S, class T>
void check_fixture(const std::string& name, int act, bool transpose) {
  constexpr std::size_t N = S + 2;
  const lux_test::fixture_file fx("conv.txt");
  const auto x = fx.tensor<T, N>(name + "_x");
  const auto w = fx.tensor<T, N>(name + "_w");
  const auto b = fx.tensor<T, 1>(name + "_b");
  const auto v = fx.tensor<T, N>(name + "_v");
  const auto h = fx.tensor<double, 1>(name + "_hyper");
  // torch order (outermost spatial first) → Lux order (fastest first)
  auto spatial = [&](index_t block) {
    shape_t<S> s{};
    for (std::size_t d = 0; d < S; ++d)
      s[d] = static_cast<index_t>(
          h[block * static_cast<index_t>(S) + static_cast<index_t>(S - 1 - d)]);
    return s;
  };
  lux::conv_dims<S> cd;
  cd.stride = spatial(0);
  cd.pad_lo = spatial(1);
  cd.pad_hi = spatial(2);
  shape_t<S> outpad{};
  index_t next = 3;
  if (transpose) outpad = spatial(next++);
  cd.dilation = spatial(next++);
  cd.groups = static_cast<index_t>(h[next * static_cast<index_t>(S)]);
  cd.flipped = h[next * static_cast<index_t>(S) + 1] != 0;

  const double ftol = std::is_same_v<T, float> ? 1e-5 : 1e-9;
  const double gtol = std::is_same_v<T, float> ? 1e-4 : 1e-9;
  with_activation(act, [&](auto f) {
    auto run = [&](auto mode) {
      INFO("mode " << mode.name);
      if (transpose) {
        const auto r =
            lux::fused_conv_transpose_bias_activation_forward(mode, f, w, x, b, cd, outpad);
        CHECK(max_rel_err(r.y, fx.tensor<double, N>(name + "_y")) <= ftol);
        const auto g = lux::fused_conv_transpose_bias_activation_backward(mode, f, v, w, x, b, r.y,
                                                                          r.z, cd, outpad);
        CHECK(max_rel_err(g.dx, fx.tensor<double, N>(name + "_dx")) <= gtol);
        CHECK(max_rel_err(g.dweight, fx.tensor<double, N>(name + "_dw")) <= gtol);
        CHECK(max_rel_err(g.dbias, fx.tensor<double, 1>(name + "_db")) <= gtol);
      } else {
        const auto r = lux::fused_conv_bias_activation_forward(mode, f, w, x, b, cd);
        CHECK(max_rel_err(r.y, fx.tensor<double, N>(name + "_y")) <= ftol);
        const auto g = lux::fused_conv_bias_activation_backward(mode, f, v, w, x, b, r.y, r.z, cd);
        CHECK(max_rel_err(g.dx, fx.tensor<double, N>(name + "_dx")) <= gtol);
        CHECK(max_rel_err(g.dweight, fx.tensor<double, N>(name + "_dw")) <= gtol);
        CHECK(max_rel_err(g.dbias, fx.tensor<double, 1>(name + "_db")) <= gtol);
      }
    };
    run(lux::generic_op{});
    run(lux::looped_op{});
  });
}
}  // namespace

TEMPLATE_TEST_CASE("conv: PyTorch F.conv1d/2d/3d and F.conv_transpose fixtures", "[conv]", float,
                   double) {
  using T = TestType;
  // names and activations as in make_conv_fixtures.py (0 identity, 1 relu, 2 tanh)
  SECTION("conv1d cross-correlation, groups 2, stride 2") {
    check_fixture<1, T>("c1_xcorr", 0, false);
  }
  SECTION("conv1d flipped, dilation 2, asymmetric pad") {
    check_fixture<1, T>("c1_flip", 2, false);
  }
  SECTION("conv2d flipped, stride, dilation") { check_fixture<2, T>("c2_flip", 1, false); }
  SECTION("conv2d asymmetric padding") { check_fixture<2, T>("c2_asym", 2, false); }
  SECTION("conv2d depthwise flipped") { check_fixture<2, T>("c2_depthwise", 0, false); }
  SECTION("conv3d flipped") { check_fixture<3, T>("c3_flip", 2, false); }
  SECTION("conv_transpose1d outpad") { check_fixture<1, T>("t1_xcorr", 0, true); }
  SECTION("conv_transpose2d flipped, groups 2, asymmetric") {
    check_fixture<2, T>("t2_flip", 2, true);
  }
  SECTION("conv_transpose2d stride 2") { check_fixture<2, T>("t2_xcorr", 1, true); }
}

// =================================================================================================
// Errors
// =================================================================================================

TEST_CASE("conv: bad arguments throw naming the kernel and the shapes", "[conv]") {
  using Catch::Contains;
  const auto x = random_tensor<float, 4>({5, 5, 3, 2}, 61);
  const auto w = random_tensor<float, 4>({3, 3, 3, 4}, 62);
  const Tensor<float, 1> b4(shape_t<1>{4}), b5(shape_t<1>{5});
  const lux::conv_dims<2> cd;
  CHECK_NOTHROW(lux::fused_conv_bias_activation(lux::relu{}, w, x, b4, cd));

  // channel mismatch
  const auto w2 = random_tensor<float, 4>({3, 3, 2, 4}, 63);
  CHECK_THROWS_AS(lux::fused_conv_bias_activation(lux::relu{}, w2, x, b4, cd), lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_conv_bias_activation(lux::relu{}, w2, x, b4, cd),
                    Contains("fused_conv_bias_activation") && Contains("channel mismatch") &&
                        Contains("(5, 5, 3, 2)") && Contains("(3, 3, 2, 4)"));
  // groups not dividing C_in / C_out
  const auto w3 = random_tensor<float, 4>({3, 3, 1, 4}, 64);
  CHECK_THROWS_AS(lux::conv(x, w3, cd.with_groups(2)), lux::shape_error);
  CHECK_THROWS_WITH(lux::conv(x, w3, cd.with_groups(2)),
                    Contains("conv: groups = 2 does not divide the 3 input channels") &&
                        Contains("(5, 5, 3, 2)"));
  const auto x4 = random_tensor<float, 4>({5, 5, 4, 2}, 65);
  const auto w5 = random_tensor<float, 4>({3, 3, 2, 3}, 66);
  CHECK_THROWS_WITH(lux::conv(x4, w5, cd.with_groups(2)),
                    Contains("does not divide the 3 output channels") && Contains("(3, 3, 2, 3)"));
  // kernel larger than the padded input
  const auto xs = random_tensor<float, 4>({2, 5, 3, 1}, 67);
  CHECK_THROWS_AS(lux::conv(xs, w, cd), lux::shape_error);
  CHECK_THROWS_WITH(lux::conv(xs, w, cd), Contains("conv") &&
                                              Contains("larger than the padded input") &&
                                              Contains("(2, 5, 3, 1)") && Contains("(3, 3, 3, 4)"));
  CHECK_NOTHROW(lux::conv(xs, w, cd.with_pad({1, 0})));
  CHECK_THROWS_AS(lux::conv(x, w, cd.with_dilation(3)), lux::shape_error);
  // zero kernel size
  CHECK_THROWS_AS(lux::conv(x, Tensor<float, 4>(shape_t<4>{0, 3, 3, 4}), cd), lux::shape_error);
  // bias length
  CHECK_THROWS_AS(lux::fused_conv_bias_activation(lux::relu{}, w, x, b5, cd), lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_conv_bias_activation(lux::relu{}, w, x, b5, cd),
                    Contains("fused_conv_bias_activation: bias has shape (5), expected (4)"));
  // hyper-parameters
  CHECK_THROWS_AS(lux::conv(x, w, cd.with_stride(0)), lux::argument_error);
  CHECK_THROWS_WITH(lux::conv(x, w, cd.with_stride({1, 0})), Contains("conv: stride must be >= 1"));
  CHECK_THROWS_AS(lux::conv(x, w, cd.with_dilation({0, 1})), lux::argument_error);
  CHECK_THROWS_AS(lux::conv(x, w, cd.with_pad(-1)), lux::argument_error);
  CHECK_THROWS_WITH(lux::conv(x, w, cd.with_pad({0, 0}, {0, -1})),
                    Contains("padding must be >= 0"));
  CHECK_THROWS_AS(lux::conv(x, w, cd.with_groups(0)), lux::argument_error);
  CHECK_THROWS_WITH(lux::conv(x, w, cd.with_groups(0)), Contains("groups must be >= 1"));

  // backward: wrong dy / saved shapes
  const auto y = lux::fused_conv_bias_activation(lux::relu{}, w, x, b4, cd);
  const auto bad = random_tensor<float, 4>({3, 3, 4, 1}, 68);
  CHECK_THROWS_WITH(
      lux::fused_conv_bias_activation_backward(lux::relu{}, bad, w, x, b4, y, lux::none, cd),
      Contains(
          "fused_conv_bias_activation_backward: dy has shape (3, 3, 4, 1), expected (3, 3, 4, 2)"));
  CHECK_THROWS_WITH(
      lux::fused_conv_bias_activation_backward(lux::relu{}, y, w, x, b4, bad, lux::none, cd),
      Contains("y has shape (3, 3, 4, 1)"));
  CHECK_THROWS_WITH(
      lux::fused_conv_bias_activation_backward(lux::gelu{}, y, w, x, b4, lux::none, bad, cd),
      Contains("z has shape (3, 3, 4, 1)"));
  CHECK_THROWS_AS(lux::conv_backward_data(bad, w, x.shape(), cd), lux::shape_error);
  CHECK_THROWS_WITH(lux::conv_backward_filter(x, bad, w.shape(), cd),
                    Contains("conv_backward_filter: dy has shape"));
  CHECK_THROWS_WITH(lux::conv_backward_filter(x, y, shape_t<4>{3, 3, 2, 4}, cd),
                    Contains("channel mismatch"));

  // conv_transpose: weight (k..., C_out/groups, C_in)
  const auto wt = random_tensor<float, 4>({3, 3, 2, 3}, 69);  // C_in 3 → C_out 2
  CHECK(lux::conv_transpose(x, wt, cd).shape() == shape_t<4>{7, 7, 2, 2});
  const auto wt_bad = random_tensor<float, 4>({3, 3, 2, 4}, 70);
  CHECK_THROWS_AS(lux::conv_transpose(x, wt_bad, cd), lux::shape_error);
  CHECK_THROWS_WITH(lux::conv_transpose(x, wt_bad, cd),
                    Contains("conv_transpose: channel mismatch") && Contains("(5, 5, 3, 2)") &&
                        Contains("(3, 3, 2, 4)"));
  CHECK_THROWS_WITH(lux::conv_transpose(x, wt, cd.with_groups(2)),
                    Contains("does not divide the 3 input channels"));
  CHECK_THROWS_WITH(lux::conv_transpose(x, wt, cd.with_pad(5)), Contains("output would be empty"));
  CHECK_THROWS_AS(lux::conv_transpose(x, wt, cd, {-1, 0}), lux::argument_error);
  CHECK_THROWS_WITH(
      lux::fused_conv_transpose_bias_activation(lux::relu{}, wt, x, b4, cd),
      Contains("fused_conv_transpose_bias_activation: bias has shape (4), expected (2)"));
  const auto yt = lux::conv_transpose(x, wt, cd);
  CHECK_THROWS_WITH(lux::conv_transpose_backward_data(random_tensor<float, 4>({6, 7, 2, 2}, 71), wt,
                                                      x.shape(), cd),
                    Contains("conv_transpose_backward_data: dy has shape (6, 7, 2, 2)"));
  CHECK_NOTHROW(lux::conv_transpose_backward_filter(x, yt, wt.shape(), cd));
  // Ranks are compile-time: x and weight of different ranks, or a conv_dims<S> that does not match
  // them, are static_assert failures ("lux conv: weight must have rank S + 2 ...").
}

TEST_CASE("conv: overflowing shape arithmetic and negative extents throw", "[conv]") {
  using Catch::Contains;
  constexpr index_t huge = std::numeric_limits<index_t>::max() / 2 + 1;
  // The per-dimension helpers: checked, naming the operation.
  CHECK_THROWS_WITH(lux::conv_output_size(4, 3, 1, 0, 0, huge),
                    Contains("conv_output_size") && Contains("overflows"));
  CHECK_THROWS_AS(lux::conv_output_size(huge, 1, 1, huge, 0, 1), lux::shape_error);
  CHECK_THROWS_AS(lux::conv_output_size(4, 3, 0, 0, 0, 1), lux::argument_error);
  CHECK_THROWS_WITH(lux::conv_transpose_output_size(1LL << 40, 3, 1LL << 40, 0, 0, 1),
                    Contains("conv_transpose_output_size") && Contains("overflows"));
  CHECK_THROWS_WITH(lux::same_padding(3, huge), Contains("same_padding") && Contains("overflows"));

  const auto x = random_tensor<float, 4>({5, 5, 3, 2}, 91);
  const auto w = random_tensor<float, 4>({3, 3, 3, 4}, 92);
  // A dilation of 2^62: d·(k − 1) overflows.
  CHECK_THROWS_WITH(lux::conv(x, w, lux::conv_dims<2>{}.with_dilation(huge)),
                    Contains("conv: ") && Contains("overflows"));
  CHECK_THROWS_WITH(lux::conv(x, w, lux::conv_dims<2>{}.with_same_pad().with_dilation(huge)),
                    Contains("conv: ") && Contains("overflows"));
  CHECK_THROWS_AS(lux::conv(x, w, lux::conv_dims<2>{}.with_pad(huge)), lux::shape_error);
  // A padding of 2^40 on both spatial dimensions and 2^20 output channels: an output of 2^102
  // elements, rejected before anything is allocated.
  CHECK_THROWS_WITH(lux::conv_output_shape<2>({5, 5, 3, 2}, {3, 3, 3, 1 << 20},
                                              lux::conv_dims<2>{}.with_pad(1LL << 40)),
                    Contains("conv: shape") && Contains("too many elements"));
  CHECK_THROWS_AS(lux::conv_transpose(x, random_tensor<float, 4>({3, 3, 2, 3}, 93),
                                      lux::conv_dims<2>{}.with_stride(1LL << 40)),
                  lux::shape_error);
  // A transposed convolution whose padding and outpad cancel (2^63 − 1 each): its size fits, the
  // padded size of the convolution it is the data gradient of does not.
  constexpr index_t max = std::numeric_limits<index_t>::max();
  CHECK_THROWS_WITH(lux::conv_transpose(random_tensor<float, 3>({3, 1, 1}, 98),
                                        random_tensor<float, 3>({1, 1, 1}, 99),
                                        lux::conv_dims<1>{}.with_pad({max}, {0}), {max}),
                    Contains("conv_transpose: the padded output size overflows"));
  // Negative batch or channel extents in a shape given as a value.
  CHECK_THROWS_WITH(lux::conv_output_shape<2>({5, 5, 3, -2}, {3, 3, 3, 4}, lux::conv_dims<2>{}),
                    Contains("conv: sizes must be non-negative"));
  CHECK_THROWS_AS(lux::conv_output_shape<2>({5, 5, -3, 2}, {3, 3, -3, 4}, lux::conv_dims<2>{}),
                  lux::shape_error);
  CHECK_THROWS_AS(lux::conv_output_shape<2>({5, 5, 3, 2}, {3, 3, 3, -4}, lux::conv_dims<2>{}),
                  lux::shape_error);
  CHECK_THROWS_AS(
      lux::conv_transpose_output_shape<2>({5, 5, 3, -1}, {3, 3, 2, 3}, lux::conv_dims<2>{}),
      lux::shape_error);
  CHECK_THROWS_AS(lux::conv_backward_data(random_tensor<float, 4>({3, 3, 4, 2}, 94), w,
                                          shape_t<4>{5, 5, 3, -2}, lux::conv_dims<2>{}),
                  lux::shape_error);
}

TEST_CASE("conv_transpose backward: dy must match the forward output, outpad included", "[conv]") {
  using Catch::Contains;
  const auto x = random_tensor<float, 4>({4, 4, 3, 2}, 95);
  const auto w = random_tensor<float, 4>({3, 3, 2, 3}, 96);  // C_in 3 → C_out 2
  const auto cd = lux::conv_dims<2>{}.with_stride(2);
  const shape_t<2> outpad{1, 0};
  const auto y = lux::conv_transpose(x, w, cd, outpad);  // (10, 9, 2, 2)
  CHECK(y.shape() == shape_t<4>{10, 9, 2, 2});
  CHECK_NOTHROW(lux::conv_transpose_backward_data(y, w, x.shape(), cd, outpad));
  CHECK_NOTHROW(lux::conv_transpose_backward_filter(x, y, w.shape(), cd, outpad));
  CHECK_NOTHROW(lux::fused_conv_transpose_bias_activation_backward(
      lux::identity{}, y, w, x, lux::none, lux::none, lux::none, cd, outpad));
  // Without the outpad (or with another one) a larger dy is not an implied outpad: it throws.
  CHECK_THROWS_WITH(lux::conv_transpose_backward_data(y, w, x.shape(), cd),
                    Contains("conv_transpose_backward_data: dy has shape (10, 9, 2, 2), "
                             "expected (9, 9, 2, 2)"));
  CHECK_THROWS_AS(lux::conv_transpose_backward_filter(x, y, w.shape(), cd), lux::shape_error);
  CHECK_THROWS_AS(lux::fused_conv_transpose_bias_activation_backward(
                      lux::identity{}, y, w, x, lux::none, lux::none, lux::none, cd),
                  lux::shape_error);
  CHECK_THROWS_AS(lux::conv_transpose_backward_data(y, w, x.shape(), cd, shape_t<2>{1, 1}),
                  lux::shape_error);
  const auto big = random_tensor<float, 4>({15, 15, 2, 2}, 97);
  CHECK_THROWS_AS(lux::conv_transpose_backward_data(big, w, x.shape(), cd), lux::shape_error);
}

TEST_CASE("conv: an empty batch gives empty outputs and zero weight gradients", "[conv]") {
  const Tensor<float, 4> x(shape_t<4>{5, 5, 4, 0});
  const auto w = random_tensor<float, 4>({3, 3, 2, 4}, 81);
  const Tensor<float, 1> b(shape_t<1>{4}, 1.0f);
  const auto cd = lux::conv_dims<2>{}.with_groups(2);
  auto run = [&](auto mode) {
    const auto r = lux::fused_conv_bias_activation_forward(mode, lux::gelu{}, w, x, b, cd);
    CHECK(r.y.shape() == shape_t<4>{3, 3, 4, 0});
    const auto g =
        lux::fused_conv_bias_activation_backward(mode, lux::gelu{}, r.y, w, x, b, r.y, r.z, cd);
    CHECK(g.dx.shape() == x.shape());
    CHECK(g.dweight.shape() == w.shape());
    for (index_t i = 0; i < g.dweight.numel(); ++i) CHECK(g.dweight[i] == 0.0f);
    for (index_t i = 0; i < 4; ++i) CHECK(g.dbias[i] == 0.0f);
    CHECK(lux::conv_transpose(mode, r.y, w, cd).shape() == shape_t<4>{5, 5, 4, 0});
  };
  run(lux::generic_op{});
  run(lux::looped_op{});
}
