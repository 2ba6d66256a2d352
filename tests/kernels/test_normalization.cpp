// Tests for lux::batchnorm, groupnorm, instancenorm and layernorm, forward and backward, following
// the oracle ladder (DESIGN.md §10): a naive float64 reference written here, generic vs looped,
// central finite differences in double, PyTorch fixtures (tests/fixtures/normalization.txt from
// make_normalization_fixtures.py), the numerical-stability case, edge cases and error paths.
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
#include <limits>
#include <lux/kernels/normalization.hpp>
#include <tuple>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;
using lux_test::dot;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using lux_test::to_double;
using vec = std::vector<double>;

// The activations tested: identity, relu (piecewise), tanh_ (derivative from the output) and gelu
// (derivative from the input).
const auto activations = std::make_tuple(lux::identity{}, lux::relu{}, lux::tanh_{}, lux::gelu{});
template <class Fn>
void for_each_activation(Fn&& fn) {
  std::apply([&](auto... f) { (fn(f), ...); }, activations);
}
template <class Fn>
void for_each_mode(Fn&& fn) {
  fn(lux::generic_op{});
  fn(lux::looped_op{});
}
/// For test cases with SECTIONs (Catch enters a section once per run, so a loop around sections
/// would test only its first mode): the mode is a GENERATE'd index instead.
template <class Fn>
void with_mode(bool looped, Fn&& fn) {
  if (looped)
    fn(lux::looped_op{});
  else
    fn(lux::generic_op{});
}

template <class T>
constexpr double fwd_tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
template <class T>
constexpr double bwd_tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;

/// A tensor of N(mean, sd²) values (Philox, Box–Muller).
template <class T, std::size_t N>
Tensor<T, N> normal_tensor(const shape_t<N>& shape, std::uint64_t seed, double mean = 0,
                           double sd = 1) {
  Tensor<T, N> t(shape);
  const lux::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i)
    t[i] = static_cast<T>(mean + sd * r.normal_at<double>(static_cast<std::uint64_t>(i)));
  return t;
}
template <class T>
Tensor<T, 1> vector_of(index_t n, std::uint64_t seed, double lo, double hi) {
  return random_tensor<T, 1>(shape_t<1>{n}, seed, lo, hi);
}

template <class A>
vec to_vec(const A& a) {
  vec v(static_cast<std::size_t>(a.numel()));
  for (index_t i = 0; i < a.numel(); ++i) v[i] = static_cast<double>(a.data()[i]);
  return v;
}
double rel_err(const vec& a, const vec& ref) {
  if (a.size() != ref.size()) return INFINITY;
  double d = 0, s = 1e-300;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(ref[i])) return INFINITY;
    if (!std::isnan(a[i])) d = std::max(d, std::abs(a[i] - ref[i]));
    s = std::max(s, std::abs(ref[i]));
  }
  return d / s;
}
double max_abs_diff(const vec& a, const vec& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return a.size() == b.size() ? d : INFINITY;
}

// =================================================================================================
// The naive float64 reference. x is read as (S, C, B): S = product of the dims before the channel
// dim (N-1 in Julia's numbering), C channels, B samples; element (s, c, b) is x[s + S(c + C b)].
// =================================================================================================
struct moments2 {
  double mean, var;
};
moments2 mean_var(const vec& v) {
  double m = 0;
  for (double e : v) m += e;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double e : v) s += (e - m) * (e - m);
  return {m, s / static_cast<double>(v.size())};
}
double at_or(const vec& v, std::size_t i, double dflt) { return v.empty() ? dflt : v[i]; }

struct reference {
  vec y, running_mean, running_var;
};

template <class F>
reference ref_batchnorm(const vec& x, index_t S, index_t C, index_t B, const vec& g, const vec& b,
                        const vec& rm, const vec& rv, bool training, F f, double momentum,
                        double eps) {
  reference r{vec(x.size()), {}, {}};
  const bool batch = training || rm.empty();
  for (index_t c = 0; c < C; ++c) {
    vec vals;
    for (index_t bb = 0; bb < B; ++bb)
      for (index_t s = 0; s < S; ++s) vals.push_back(x[s + S * (c + C * bb)]);
    moments2 st = mean_var(vals);
    if (!rm.empty() && training) {
      const double n = static_cast<double>(S * B);
      r.running_mean.push_back((1 - momentum) * rm[c] + momentum * st.mean);
      r.running_var.push_back((1 - momentum) * rv[c] + momentum * st.var * n / (n - 1));
    }
    if (!batch) st = {rm[c], rv[c]};
    for (index_t bb = 0; bb < B; ++bb)
      for (index_t s = 0; s < S; ++s) {
        const std::size_t i = s + S * (c + C * bb);
        r.y[i] = f((x[i] - st.mean) / std::sqrt(st.var + eps) * at_or(g, c, 1) + at_or(b, c, 0));
      }
  }
  if (!rm.empty() && !training) r.running_mean = rm, r.running_var = rv;
  return r;
}

template <class F>
vec ref_groupnorm(const vec& x, index_t S, index_t C, index_t B, index_t G, const vec& g,
                  const vec& b, F f, double eps) {
  vec y(x.size());
  const index_t cg = C / G;
  for (index_t bb = 0; bb < B; ++bb)
    for (index_t gi = 0; gi < G; ++gi) {
      vec vals;
      for (index_t c = gi * cg; c < (gi + 1) * cg; ++c)
        for (index_t s = 0; s < S; ++s) vals.push_back(x[s + S * (c + C * bb)]);
      const moments2 st = mean_var(vals);
      for (index_t c = gi * cg; c < (gi + 1) * cg; ++c)
        for (index_t s = 0; s < S; ++s) {
          const std::size_t i = s + S * (c + C * bb);
          y[i] = f((x[i] - st.mean) / std::sqrt(st.var + eps) * at_or(g, c, 1) + at_or(b, c, 0));
        }
    }
  return y;
}

template <class F>
reference ref_instancenorm(const vec& x, index_t S, index_t C, index_t B, const vec& g,
                           const vec& b, const vec& rm, const vec& rv, bool training, F f,
                           double momentum, double eps) {
  reference r{vec(x.size()), {}, {}};
  for (index_t c = 0; c < C; ++c) {
    double mean_avg = 0, var_avg = 0;
    for (index_t bb = 0; bb < B; ++bb) {
      vec vals;
      for (index_t s = 0; s < S; ++s) vals.push_back(x[s + S * (c + C * bb)]);
      moments2 st = mean_var(vals);
      mean_avg += st.mean / static_cast<double>(B);
      var_avg += st.var / static_cast<double>(B);
      if (!rm.empty() && !training) st = {rm[c], rv[c]};
      for (index_t s = 0; s < S; ++s) {
        const std::size_t i = s + S * (c + C * bb);
        r.y[i] = f((x[i] - st.mean) / std::sqrt(st.var + eps) * at_or(g, c, 1) + at_or(b, c, 0));
      }
    }
    if (!rm.empty() && training) {
      const double n = static_cast<double>(S);
      r.running_mean.push_back((1 - momentum) * rm[c] + momentum * mean_avg);
      r.running_var.push_back((1 - momentum) * rv[c] + momentum * var_avg * n / (n - 1));
    }
  }
  return r;
}

/// Index of x's element i in a parameter of shape pshape broadcast against x's shape xshape.
std::size_t broadcast_index(std::size_t i, const std::vector<index_t>& xshape,
                            const std::vector<index_t>& pshape) {
  std::size_t p = 0, stride = 1, rest = i;
  for (std::size_t d = 0; d < xshape.size(); ++d) {
    const std::size_t idx = rest % static_cast<std::size_t>(xshape[d]);
    rest /= static_cast<std::size_t>(xshape[d]);
    const index_t ps = d < pshape.size() ? pshape[d] : 1;
    if (ps != 1) p += idx * stride;
    stride *= static_cast<std::size_t>(ps);
  }
  return p;
}

/// Statistics over the leading k dims; g/b broadcast (empty = absent).
template <class F>
vec ref_layernorm(const vec& x, const std::vector<index_t>& xshape, std::size_t k, const vec& g,
                  const std::vector<index_t>& gshape, const vec& b,
                  const std::vector<index_t>& bshape, F f, double eps) {
  std::size_t L = 1;
  for (std::size_t d = 0; d < k; ++d) L *= static_cast<std::size_t>(xshape[d]);
  vec y(x.size());
  for (std::size_t t = 0; t < x.size() / L; ++t) {
    const moments2 st = mean_var(vec(x.begin() + t * L, x.begin() + (t + 1) * L));
    for (std::size_t l = 0; l < L; ++l) {
      const std::size_t i = l + L * t;
      const double gi = g.empty() ? 1 : g[broadcast_index(i, xshape, gshape)];
      const double bi = b.empty() ? 0 : b[broadcast_index(i, xshape, bshape)];
      y[i] = f((x[i] - st.mean) / std::sqrt(st.var + eps) * gi + bi);
    }
  }
  return y;
}

template <std::size_t N>
std::array<index_t, 3> scb(const shape_t<N>& s) {
  index_t S = 1;
  for (std::size_t d = 0; d + 2 < N; ++d) S *= s[d];
  return {S, s[N - 2], s[N - 1]};
}
template <std::size_t N>
std::vector<index_t> dims_of(const shape_t<N>& s) {
  return std::vector<index_t>(s.begin(), s.end());
}

// =================================================================================================
// Finite differences: loss = <fwd(x, scale, bias), v>, gradients from the kernel's backward.
// =================================================================================================
template <class X, class S, class B, class Fwd, class Bwd>
void check_finite_differences(const X& x, const S& scale, const B& bias, Fwd&& fwd, Bwd&& bwd,
                              std::uint64_t seed) {
  constexpr std::size_t N = X::rank;
  const auto y = fwd(x, scale, bias);
  const auto v = random_tensor<double, N>(x.shape(), seed);
  const auto g = bwd(v, x, y, scale, bias);
  const auto nx = lux_test::numerical_gradient<N>(
      [&](const Tensor<double, N>& xp) { return dot(fwd(xp, scale, bias), v); }, x);
  CHECK(max_rel_err(g.dx, nx) <= 1e-6);
  if constexpr (!lux::is_absent_v<S>) {
    constexpr std::size_t M = S::rank;
    REQUIRE(g.dscale.shape() == scale.shape());
    const auto ns = lux_test::numerical_gradient<M>(
        [&](const Tensor<double, M>& sp) { return dot(fwd(x, sp, bias), v); }, scale);
    CHECK(max_rel_err(g.dscale, ns) <= 1e-6);
  } else {
    CHECK(g.dscale.numel() == 0);
  }
  if constexpr (!lux::is_absent_v<B>) {
    constexpr std::size_t M = B::rank;
    REQUIRE(g.dbias.shape() == bias.shape());
    const auto nb = lux_test::numerical_gradient<M>(
        [&](const Tensor<double, M>& bp) { return dot(fwd(x, scale, bp), v); }, bias);
    CHECK(max_rel_err(g.dbias, nb) <= 1e-6);
  } else {
    CHECK(g.dbias.numel() == 0);
  }
}

}  // namespace

// =================================================================================================
// 1. Forward against the float64 reference (both modes; block sizes 7, 13, 33 and S = 1 are not
//    multiples of any SIMD width; C >= 8 takes the fused batchnorm path, C < 8 the split one)
// =================================================================================================
TEMPLATE_TEST_CASE("batchnorm: forward and running statistics match a float64 reference",
                   "[normalization][batchnorm]", float, double) {
  using T = TestType;
  const std::vector<shape_t<4>> shapes4 = {{7, 1, 3, 5}, {4, 4, 9, 3}, {33, 1, 2, 2}};
  const std::vector<shape_t<2>> shapes2 = {{5, 13}, {17, 3}};
  auto run = [&](const auto& shape, std::uint64_t seed) {
    const auto x = normal_tensor<T>(shape, seed, 0.5, 2.0);
    const auto scb_ = scb(shape);
    const index_t S = scb_[0], C = scb_[1], B = scb_[2];
    const auto g = vector_of<T>(C, seed + 1, 0.5, 1.5), b = vector_of<T>(C, seed + 2, -1, 1);
    const auto rm = vector_of<T>(C, seed + 3, -1, 1), rv = vector_of<T>(C, seed + 4, 0.5, 2);
    const double eps = 1e-5, m = 0.25;
    for_each_mode([&](auto mode) {
      for_each_activation([&](auto f) {
        for (bool training : {true, false}) {
          const auto r = lux::batchnorm(mode, x, g, b, rm, rv, training, f, T(m), T(eps));
          const auto ref = ref_batchnorm(to_vec(x), S, C, B, to_vec(g), to_vec(b), to_vec(rm),
                                         to_vec(rv), training, f, m, eps);
          CAPTURE(shape, lux::activation_traits<decltype(f)>::name, training, mode.name);
          CHECK(rel_err(to_vec(r.y), ref.y) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(r.running_mean), ref.running_mean) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(r.running_var), ref.running_var) <= fwd_tol<T>);
          CHECK(r.saved.batch_statistics == training);
        }
      });
      // No running statistics: batch statistics in both modes, no stats returned; no affine.
      const auto r = lux::batchnorm(mode, x, lux::none, lux::none, lux::none, lux::none, false,
                                    lux::identity{}, T(m), T(eps));
      const auto ref =
          ref_batchnorm(to_vec(x), S, C, B, {}, {}, {}, {}, false, lux::identity{}, m, eps);
      CHECK(rel_err(to_vec(r.y), ref.y) <= fwd_tol<T>);
      CHECK(r.running_mean.numel() == 0);
      CHECK(r.running_var.numel() == 0);
      CHECK(r.saved.batch_statistics);
    });
  };
  std::uint64_t seed = 100;
  for (const auto& s : shapes4) run(s, seed += 10);
  for (const auto& s : shapes2) run(s, seed += 10);
}

TEMPLATE_TEST_CASE("groupnorm: forward matches a float64 reference", "[normalization][groupnorm]",
                   float, double) {
  using T = TestType;
  struct gn_case {
    shape_t<4> shape;
    index_t groups;
  };
  const std::vector<gn_case> cases = {{{7, 1, 6, 2}, 3},
                                      {{13, 1, 4, 3}, 4},
                                      {{33, 1, 4, 2}, 1},
                                      {{1, 1, 12, 3}, 4},
                                      {{5, 3, 8, 2}, 2}};
  std::uint64_t seed = 200;
  for (const auto& gc : cases) {
    const auto shape = gc.shape;
    const index_t G = gc.groups;
    const auto x = normal_tensor<T>(shape, seed += 10, -0.5, 3.0);
    const auto scb_ = scb(shape);
    const index_t S = scb_[0], C = scb_[1], B = scb_[2];
    const auto g = vector_of<T>(C, seed + 1, 0.5, 1.5), b = vector_of<T>(C, seed + 2, -1, 1);
    for_each_mode([&](auto mode) {
      for_each_activation([&](auto f) {
        const auto r = lux::groupnorm(mode, x, g, b, G, f, T(1e-5));
        const auto ref = ref_groupnorm(to_vec(x), S, C, B, G, to_vec(g), to_vec(b), f, 1e-5);
        CAPTURE(shape, G, lux::activation_traits<decltype(f)>::name, mode.name);
        CHECK(rel_err(to_vec(r.y), ref) <= fwd_tol<T>);
        CHECK(r.saved.mean.numel() == G * B);
      });
      const auto r = lux::groupnorm(mode, x, lux::none, b, G);
      const auto ref = ref_groupnorm(to_vec(x), S, C, B, G, {}, to_vec(b), lux::identity{},
                                     lux::default_norm_epsilon<double>());
      CHECK(rel_err(to_vec(r.y), ref) <= fwd_tol<T>);
    });
  }
}

TEMPLATE_TEST_CASE("instancenorm: forward and running statistics match a float64 reference",
                   "[normalization][instancenorm]", float, double) {
  using T = TestType;
  const std::vector<shape_t<4>> shapes = {{7, 1, 3, 2}, {13, 1, 2, 3}, {11, 3, 2, 2}};
  std::uint64_t seed = 300;
  for (const auto& shape : shapes) {
    const auto x = normal_tensor<T>(shape, seed += 10, 1.0, 2.0);
    const auto scb_ = scb(shape);
    const index_t S = scb_[0], C = scb_[1], B = scb_[2];
    const auto g = vector_of<T>(C, seed + 1, 0.5, 1.5), b = vector_of<T>(C, seed + 2, -1, 1);
    const auto rm = vector_of<T>(C, seed + 3, -1, 1), rv = vector_of<T>(C, seed + 4, 0.5, 2);
    for_each_mode([&](auto mode) {
      for_each_activation([&](auto f) {
        for (bool training : {true, false}) {
          const auto r = lux::instancenorm(mode, x, g, b, rm, rv, training, f, T(0.3), T(1e-5));
          const auto ref = ref_instancenorm(to_vec(x), S, C, B, to_vec(g), to_vec(b), to_vec(rm),
                                            to_vec(rv), training, f, 0.3, 1e-5);
          CAPTURE(shape, lux::activation_traits<decltype(f)>::name, training, mode.name);
          CHECK(rel_err(to_vec(r.y), ref.y) <= fwd_tol<T>);
          if (training) {
            CHECK(rel_err(to_vec(r.running_mean), ref.running_mean) <= fwd_tol<T>);
            CHECK(rel_err(to_vec(r.running_var), ref.running_var) <= fwd_tol<T>);
          } else {
            CHECK(rel_err(to_vec(r.running_mean), to_vec(rm)) == 0);
          }
          CHECK(r.saved.mean.numel() == C * B);
        }
      });
      // The form without running statistics: instance statistics whatever `training` says.
      for (bool training : {true, false}) {
        const auto r = lux::instancenorm(mode, x, g, lux::none, training, lux::relu{}, T(1e-5));
        const auto ref = ref_instancenorm(to_vec(x), S, C, B, to_vec(g), {}, {}, {}, training,
                                          lux::relu{}, 0.1, 1e-5);
        CHECK(rel_err(to_vec(r.y), ref.y) <= fwd_tol<T>);
        CHECK(r.running_mean.numel() == 0);
      }
    });
  }
}

TEMPLATE_TEST_CASE("layernorm: forward matches a float64 reference", "[normalization][layernorm]",
                   float, double) {
  using T = TestType;
  const shape_t<3> xs{7, 5, 3};
  const auto x = normal_tensor<T>(xs, 400, 0.3, 1.7);
  const vec xv = to_vec(x);
  for_each_mode([&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(lux::activation_traits<decltype(f)>::name, mode.name);
      // Default dims 1:N-1 with scale/bias over them (Lux LayerNorm's (shape..., 1) parameters).
      const auto g = random_tensor<T, 3>({7, 5, 1}, 401, 0.5, 1.5);
      const auto b = random_tensor<T, 3>({7, 5, 1}, 402, -1, 1);
      auto r = lux::layernorm(mode, x, g, b, f, lux::leading_dims{}, T(1e-5));
      CHECK(rel_err(to_vec(r.y), ref_layernorm(xv, dims_of(xs), 2, to_vec(g), {7, 5, 1}, to_vec(b),
                                               {7, 5, 1}, f, 1e-5)) <= fwd_tol<T>);
      // dims 1:1, scale of x's full shape (varies along the non-normalized dims too).
      const auto gf = random_tensor<T, 3>(xs, 403, 0.5, 1.5);
      r = lux::layernorm(mode, x, gf, b, f, lux::leading_dims{1}, T(1e-5));
      CHECK(rel_err(to_vec(r.y), ref_layernorm(xv, dims_of(xs), 1, to_vec(gf), dims_of(xs),
                                               to_vec(b), {7, 5, 1}, f, 1e-5)) <= fwd_tol<T>);
      // dims = whole array (Lux's Colon()), broadcasting (1, 5) scale, no bias.
      const auto gp = random_tensor<T, 2>({1, 5}, 404, 0.5, 1.5);
      r = lux::layernorm(mode, x, gp, lux::none, f, lux::leading_dims{3}, T(1e-5));
      CHECK(rel_err(to_vec(r.y), ref_layernorm(xv, dims_of(xs), 3, to_vec(gp), {1, 5}, {}, {}, f,
                                               1e-5)) <= fwd_tol<T>);
      CHECK(r.saved.mean.numel() == 1);
      // dims inferred from a rank-1 scale: 1:(3-1) = leading 2 dims... no: the scale (7) has
      // rank 1, so dims = 1:2 and the scale runs along dim 1 only.
      const auto g1 = random_tensor<T, 1>({7}, 405, 0.5, 1.5);
      r = lux::layernorm(mode, x, g1, lux::none, f, lux::none, T(1e-5));
      CHECK(rel_err(to_vec(r.y), ref_layernorm(xv, dims_of(xs), 2, to_vec(g1), {7}, {}, {}, f,
                                               1e-5)) <= fwd_tol<T>);
    });
    // No parameters, default dims.
    const auto r = lux::layernorm(mode, x, lux::none, lux::none);
    CHECK(rel_err(to_vec(r.y), ref_layernorm(xv, dims_of(xs), 2, {}, {}, {}, {}, lux::identity{},
                                             lux::default_norm_epsilon<double>())) <= fwd_tol<T>);
  });
}

TEST_CASE("batchnorm: Lux's BatchNorm(2) example", "[normalization][batchnorm]") {
  // test/core_layers/normalize_tests.jl: [1 3 5; 2 4 6] (features 2, batch 3), epsilon 1f-5.
  const Tensor<float, 2> x(shape_t<2>{2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor<float, 1> rm(shape_t<1>{2}, 0.0f), rv(shape_t<1>{2}, 1.0f);
  const auto r =
      lux::batchnorm(x, lux::none, lux::none, rm, rv, true, lux::identity{}, 0.1f, 1e-5f);
  CHECK(r.y(0, 0) == Approx(-1.22474).epsilon(1e-5));
  CHECK(r.y(0, 1) == Approx(0).margin(1e-6));
  CHECK(r.y(1, 2) == Approx(1.22474).epsilon(1e-5));
  CHECK(r.running_mean[0] == Approx(0.3f));
  CHECK(r.running_mean[1] == Approx(0.4f));
  CHECK(r.running_var[0] == Approx(1.3f));
  CHECK(r.running_var[1] == Approx(1.3f));
  const auto t = lux::batchnorm(x, lux::none, lux::none, r.running_mean, r.running_var, false,
                                lux::identity{}, 0.1f, 1e-5f);
  CHECK(t.y(0, 0) == Approx((1 - 0.3) / std::sqrt(1.3 + 1e-5)).epsilon(1e-5));
  CHECK_FALSE(t.saved.batch_statistics);
}

TEST_CASE("normalization: the default epsilon is eps(T)^(5/7)", "[normalization]") {
  CHECK(lux::default_norm_epsilon<float>() == Approx(1.1337e-5).epsilon(1e-4));
  CHECK(lux::default_norm_epsilon<double>() == Approx(6.590e-12).epsilon(1e-3));
}

TEST_CASE("normalization: long double runs the generic mode", "[normalization]") {
  const auto x = normal_tensor<long double>(shape_t<3>{5, 3, 4}, 450);
  const auto g = vector_of<long double>(3, 451, 0.5, 1.5);
  static_assert(std::is_same_v<lux::operation_mode_t<decltype(x), decltype(g)>, lux::generic_op>);
  const auto r = lux::batchnorm(x, g, lux::none, lux::none, lux::none, true);
  const auto ref =
      ref_batchnorm(to_vec(x), 5, 3, 4, to_vec(g), {}, {}, {}, true, lux::identity{}, 0.1,
                    static_cast<double>(lux::default_norm_epsilon<long double>()));
  CHECK(rel_err(to_vec(r.y), ref.y) <= 1e-12);
  const auto dy = normal_tensor<long double>(x.shape(), 452);
  const auto d = lux::batchnorm_backward(dy, x, r.y, g, lux::none, r.saved);
  const auto dd = lux::batchnorm_backward(to_double(dy), to_double(x), to_double(r.y), to_double(g),
                                          lux::none, [&] {
                                            lux::normalization_saved<double> s;
                                            s.mean = to_double(r.saved.mean);
                                            s.inv_std = to_double(r.saved.inv_std);
                                            return s;
                                          }());
  CHECK(rel_err(to_vec(d.dx), to_vec(dd.dx)) <= 1e-10);
}

// =================================================================================================
// 2. Generic vs looped on shapes that reach every looped path (fused, split, lanes), forward and
//    backward, with 1, 2 and 3 threads.
// =================================================================================================
namespace {
/// Runs `run(mode)` in both modes and compares the vectors it returns: y, mean, inv_std, dx
/// (float: 1e-5 of the largest element) and dscale, dbias (sums of up to thousands of terms that
/// partly cancel, so float: 1e-4; the double results are checked against finite differences).
/// Callers use smooth activations: relu's derivative jumps wherever the two modes' pre-activations
/// differ in sign, which float rounding makes happen for |z| below ~1e-6.
template <class T, class Fn>
void compare_modes(Fn&& run) {
  const auto g = run(lux::generic_op{});
  const auto l = run(lux::looped_op{});
  for (std::size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    const bool sum = i == 4 || i == 5;
    CHECK(rel_err(l[i], g[i]) <= (sum ? bwd_tol<T> : fwd_tol<T>));
  }
}
/// Sets the OpenMP thread count for a scope.
struct thread_count_guard {
#if defined(_OPENMP)
  int saved = omp_get_max_threads();
  explicit thread_count_guard(int n) { omp_set_num_threads(n); }
  ~thread_count_guard() { omp_set_num_threads(saved); }
#else
  explicit thread_count_guard(int) {}
#endif
  thread_count_guard(const thread_count_guard&) = delete;
  thread_count_guard& operator=(const thread_count_guard&) = delete;
};
template <class R, class G>
std::vector<vec> outputs(const R& r, const G& d) {
  return {to_vec(r.y),  to_vec(r.saved.mean), to_vec(r.saved.inv_std),
          to_vec(d.dx), to_vec(d.dscale),     to_vec(d.dbias)};
}
}  // namespace

TEMPLATE_TEST_CASE("normalization: generic and looped modes agree", "[normalization]", float,
                   double) {
  using T = TestType;
  const int threads = GENERATE(1, 2, 3);
  CAPTURE(threads);
  const thread_count_guard guard(threads);
  {
    SECTION("batchnorm") {
      // C >= 4·threads: fused per channel; C = 2: split over samples; S = 1: channel lanes.
      for (const auto& shape : std::vector<shape_t<3>>{{129, 16, 20}, {517, 2, 40}, {1, 37, 300}}) {
        CAPTURE(shape);
        const auto x = normal_tensor<T>(shape, 500, 1.0, 2.0);
        const auto dy = normal_tensor<T>(shape, 501);
        const auto C = shape[1];
        const auto g = vector_of<T>(C, 502, 0.5, 1.5), b = vector_of<T>(C, 503, -1, 1);
        const auto rm = vector_of<T>(C, 504, -1, 1), rv = vector_of<T>(C, 505, 0.5, 2);
        for (bool training : {true, false}) {
          compare_modes<T>([&](auto mode) {
            const auto r = lux::batchnorm(mode, x, g, b, rm, rv, training, lux::tanh_{});
            auto o =
                outputs(r, lux::batchnorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::tanh_{}));
            o.push_back(to_vec(r.running_var));
            return o;
          });
          compare_modes<T>([&](auto mode) {
            const auto r = lux::batchnorm(mode, x, lux::none, b, rm, rv, training, lux::gelu{});
            return outputs(r, lux::batchnorm_backward(mode, dy, x, lux::none, lux::none, b, r.saved,
                                                      lux::gelu{}));
          });
        }
      }
    }
    SECTION("groupnorm") {
      // 2·8 groups: fused; one group of 4·1100 elements: split across threads; S = 1: lanes.
      struct gcase {
        shape_t<3> shape;
        index_t G;
      };
      for (const auto& gc :
           std::vector<gcase>{{{33, 16, 2}, 8}, {{1100, 4, 1}, 1}, {{1, 3000, 2}, 3}}) {
        const auto shape = gc.shape;
        const index_t G = gc.G;
        CAPTURE(shape, G);
        const auto x = normal_tensor<T>(shape, 510, 1.0, 2.0);
        const auto dy = normal_tensor<T>(shape, 511);
        const auto g = vector_of<T>(shape[1], 512, 0.5, 1.5);
        const auto b = vector_of<T>(shape[1], 513, -1, 1);
        compare_modes<T>([&](auto mode) {
          const auto r = lux::groupnorm(mode, x, g, b, G, lux::sigmoid{});
          return outputs(
              r, lux::groupnorm_backward(mode, dy, x, r.y, g, b, G, r.saved, lux::sigmoid{}));
        });
        compare_modes<T>([&](auto mode) {
          const auto r = lux::groupnorm(mode, x, g, lux::none, G, lux::gelu{});
          return outputs(r, lux::groupnorm_backward(mode, dy, x, lux::none, g, lux::none, G,
                                                    r.saved, lux::gelu{}));
        });
      }
    }
    SECTION("instancenorm") {
      for (const auto& shape : std::vector<shape_t<4>>{{9, 7, 5, 4}, {70, 50, 1, 1}}) {
        CAPTURE(shape);
        const auto x = normal_tensor<T>(shape, 520, 1.0, 2.0);
        const auto dy = normal_tensor<T>(shape, 521);
        const auto g = vector_of<T>(shape[2], 522, 0.5, 1.5);
        const auto b = vector_of<T>(shape[2], 523, -1, 1);
        const auto rm = vector_of<T>(shape[2], 524, -1, 1);
        const auto rv = vector_of<T>(shape[2], 525, 0.5, 2);
        for (bool training : {true, false}) {
          compare_modes<T>([&](auto mode) {
            const auto r = lux::instancenorm(mode, x, g, b, rm, rv, training, lux::tanh_{});
            auto o = outputs(
                r, lux::instancenorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::tanh_{}));
            o.push_back(to_vec(r.running_mean));
            return o;
          });
        }
      }
    }
    SECTION("layernorm") {
      const shape_t<3> xs{45, 20, 7};
      const auto x = normal_tensor<T>(xs, 530, 1.0, 2.0);
      const auto dy = normal_tensor<T>(xs, 531);
      const auto g = random_tensor<T, 3>({45, 20, 1}, 532, 0.5, 1.5);
      const auto b = random_tensor<T, 3>({45, 20, 1}, 533, -1, 1);
      const auto gf = random_tensor<T, 3>(xs, 534, 0.5, 1.5);
      const auto gp = random_tensor<T, 2>({1, 20}, 535, 0.5, 1.5);
      // 140 groups of 45 (fused), 7 groups of 900, one group of 6300 (split), full-shape scale.
      compare_modes<T>([&](auto mode) {
        const auto r = lux::layernorm(mode, x, g, b, lux::sigmoid{}, lux::leading_dims{1});
        return outputs(r, lux::layernorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::sigmoid{},
                                                  lux::leading_dims{1}));
      });
      compare_modes<T>([&](auto mode) {
        const auto r = lux::layernorm(mode, x, g, b, lux::gelu{});
        return outputs(r,
                       lux::layernorm_backward(mode, dy, x, lux::none, g, b, r.saved, lux::gelu{}));
      });
      compare_modes<T>([&](auto mode) {
        const auto r = lux::layernorm(mode, x, gp, b, lux::tanh_{}, lux::leading_dims{3});
        return outputs(r, lux::layernorm_backward(mode, dy, x, r.y, gp, b, r.saved, lux::tanh_{},
                                                  lux::leading_dims{3}));
      });
      compare_modes<T>([&](auto mode) {
        const auto r =
            lux::layernorm(mode, x, gf, lux::none, lux::identity{}, lux::leading_dims{2});
        return outputs(r, lux::layernorm_backward(mode, dy, x, lux::none, gf, lux::none, r.saved,
                                                  lux::identity{}, lux::leading_dims{2}));
      });
    }
  }
}

TEST_CASE("normalization: outputs of 8 MiB and more (streaming stores) agree across modes",
          "[normalization][large]") {
  // Outputs this large are written with non-temporal stores from the first 64-byte-aligned
  // element of every row; S = 63 and C = 1001 make most rows start unaligned.
  const shape_t<4> xs{63, 65, 8, 66};  // 2.16M floats = 8.6 MB
  const auto x = normal_tensor<float>(xs, 790, 0.5, 2.0);
  const auto dy = normal_tensor<float>(xs, 791);
  const auto g = vector_of<float>(8, 792, 0.5, 1.5), b = vector_of<float>(8, 793, -1, 1);
  compare_modes<float>([&](auto mode) {
    const auto r = lux::batchnorm(mode, x, g, b, lux::none, lux::none, true, lux::sigmoid{});
    return outputs(r, lux::batchnorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::sigmoid{}));
  });
  compare_modes<float>([&](auto mode) {
    const auto r = lux::groupnorm(mode, x, g, b, 4, lux::tanh_{});
    return outputs(r, lux::groupnorm_backward(mode, dy, x, r.y, g, b, 4, r.saved, lux::tanh_{}));
  });
  const auto xm = x.reshape(1001, -1);  // S = 1: batchnorm lanes, layernorm rows
  const auto dym = dy.reshape(1001, -1);
  const auto gm = vector_of<float>(1001, 794, 0.5, 1.5), bm = vector_of<float>(1001, 795, -1, 1);
  compare_modes<float>([&](auto mode) {
    const auto r = lux::batchnorm(mode, xm, gm, bm, lux::none, lux::none, true);
    return outputs(r, lux::batchnorm_backward(mode, dym, xm, lux::none, gm, bm, r.saved));
  });
  compare_modes<float>([&](auto mode) {
    const auto r = lux::layernorm(mode, xm, gm, bm, lux::gelu{});
    return outputs(r,
                   lux::layernorm_backward(mode, dym, xm, lux::none, gm, bm, r.saved, lux::gelu{}));
  });
}

// =================================================================================================
// 3. Finite differences (double): dx, dscale, dbias, batch statistics and running statistics.
// =================================================================================================
TEST_CASE("batchnorm: gradients match finite differences", "[normalization][batchnorm][grad]") {
  const auto x = normal_tensor<double>(shape_t<4>{3, 2, 3, 4}, 600, 0.5, 1.5);
  const auto g = vector_of<double>(3, 601, 0.5, 1.5), b = vector_of<double>(3, 602, -0.5, 0.5);
  const auto rm = vector_of<double>(3, 603, -1, 1), rv = vector_of<double>(3, 604, 0.5, 2);
  const auto xm = normal_tensor<double>(shape_t<2>{5, 6}, 605);  // (features, batch): S = 1
  const auto gm = vector_of<double>(5, 606, 0.5, 1.5), bm = vector_of<double>(5, 607, -1, 1);
  for_each_mode([&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(mode.name, lux::activation_traits<decltype(f)>::name);
      for (bool training : {true, false}) {
        CAPTURE(training);
        auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
          return lux::batchnorm(mode, xx, s, bb, rm, rv, training, f).y;
        };
        auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s,
                       const auto& bb) {
          return lux::batchnorm_backward(
              mode, v, xx, y, s, bb, lux::batchnorm(mode, xx, s, bb, rm, rv, training, f).saved, f);
        };
        check_finite_differences(x, g, b, fwd, bwd, 608);
      }
      auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
        return lux::batchnorm(mode, xx, s, bb, lux::none, lux::none, true, f).y;
      };
      auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s, const auto& bb) {
        return lux::batchnorm_backward(
            mode, v, xx, y, s, bb,
            lux::batchnorm(mode, xx, s, bb, lux::none, lux::none, true, f).saved, f);
      };
      check_finite_differences(xm, gm, bm, fwd, bwd, 609);
      check_finite_differences(xm, lux::none, bm, fwd, bwd, 610);
      check_finite_differences(x, g, lux::none, fwd, bwd, 611);
    });
  });
}

TEST_CASE("groupnorm: gradients match finite differences", "[normalization][groupnorm][grad]") {
  const auto x = normal_tensor<double>(shape_t<4>{3, 2, 6, 2}, 620, -0.5, 2.0);
  const auto g = vector_of<double>(6, 621, 0.5, 1.5), b = vector_of<double>(6, 622, -0.5, 0.5);
  const auto xm = normal_tensor<double>(shape_t<2>{8, 3}, 623);  // S = 1
  const auto gm = vector_of<double>(8, 624, 0.5, 1.5), bm = vector_of<double>(8, 625, -1, 1);
  for_each_mode([&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(mode.name, lux::activation_traits<decltype(f)>::name);
      for (index_t G : {1, 3}) {
        CAPTURE(G);
        auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
          return lux::groupnorm(mode, xx, s, bb, G, f).y;
        };
        auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s,
                       const auto& bb) {
          return lux::groupnorm_backward(mode, v, xx, y, s, bb, G,
                                         lux::groupnorm(mode, xx, s, bb, G, f).saved, f);
        };
        check_finite_differences(x, g, b, fwd, bwd, 626);
        check_finite_differences(x, lux::none, b, fwd, bwd, 627);
      }
      auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
        return lux::groupnorm(mode, xx, s, bb, 2, f).y;
      };
      auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s, const auto& bb) {
        return lux::groupnorm_backward(mode, v, xx, y, s, bb, 2,
                                       lux::groupnorm(mode, xx, s, bb, 2, f).saved, f);
      };
      check_finite_differences(xm, gm, bm, fwd, bwd, 628);
    });
  });
}

TEST_CASE("instancenorm: gradients match finite differences",
          "[normalization][instancenorm][grad]") {
  const auto x = normal_tensor<double>(shape_t<4>{3, 3, 2, 3}, 640, 0.5, 1.5);
  const auto g = vector_of<double>(2, 641, 0.5, 1.5), b = vector_of<double>(2, 642, -0.5, 0.5);
  const auto rm = vector_of<double>(2, 643, -1, 1), rv = vector_of<double>(2, 644, 0.5, 2);
  for_each_mode([&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(mode.name, lux::activation_traits<decltype(f)>::name);
      for (bool training : {true, false}) {
        CAPTURE(training);
        auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
          return lux::instancenorm(mode, xx, s, bb, rm, rv, training, f).y;
        };
        auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s,
                       const auto& bb) {
          return lux::instancenorm_backward(
              mode, v, xx, y, s, bb, lux::instancenorm(mode, xx, s, bb, rm, rv, training, f).saved,
              f);
        };
        check_finite_differences(x, g, b, fwd, bwd, 645);
      }
      auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
        return lux::instancenorm(mode, xx, s, bb, false, f).y;
      };
      auto bwd = [&](const auto& v, const auto& xx, const auto& y, const auto& s, const auto& bb) {
        return lux::instancenorm_backward(mode, v, xx, y, s, bb,
                                          lux::instancenorm(mode, xx, s, bb, false, f).saved, f);
      };
      check_finite_differences(x, g, lux::none, fwd, bwd, 646);
    });
  });
}

TEST_CASE("layernorm: gradients match finite differences", "[normalization][layernorm][grad]") {
  const shape_t<3> xs{4, 3, 3};
  const auto x = normal_tensor<double>(xs, 660, 0.5, 1.5);
  const auto g = random_tensor<double, 3>({4, 3, 1}, 661, 0.5, 1.5);
  const auto b = random_tensor<double, 3>({4, 3, 1}, 662, -0.5, 0.5);
  const auto gf = random_tensor<double, 3>(xs, 663, 0.5, 1.5);
  const auto gp = random_tensor<double, 2>({1, 3}, 664, 0.5, 1.5);
  const auto g1 = random_tensor<double, 1>({4}, 665, 0.5, 1.5);
  for_each_mode([&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(mode.name, lux::activation_traits<decltype(f)>::name);
      auto with_dims = [&](auto dims) {
        auto fwd = [&, dims](const auto& xx, const auto& s, const auto& bb) {
          return lux::layernorm(mode, xx, s, bb, f, dims).y;
        };
        auto bwd = [&, dims](const auto& v, const auto& xx, const auto& y, const auto& s,
                             const auto& bb) {
          return lux::layernorm_backward(mode, v, xx, y, s, bb,
                                         lux::layernorm(mode, xx, s, bb, f, dims).saved, f, dims);
        };
        return std::make_pair(fwd, bwd);
      };
      {
        auto [fwd, bwd] = with_dims(lux::leading_dims{});
        check_finite_differences(x, g, b, fwd, bwd, 666);
      }
      {
        auto [fwd, bwd] = with_dims(lux::leading_dims{1});
        check_finite_differences(x, gf, b, fwd, bwd, 667);  // full-shape scale
      }
      {
        auto [fwd, bwd] = with_dims(lux::leading_dims{3});
        check_finite_differences(x, gp, lux::none, fwd, bwd, 668);  // broadcast (1, 3) scale
      }
      {
        auto [fwd, bwd] = with_dims(lux::none);
        check_finite_differences(x, g1, g1, fwd, bwd, 669);  // dims 1:2 inferred from rank 1
      }
    });
  });
}

TEST_CASE("normalization: float gradients agree with double gradients", "[normalization][grad]") {
  const shape_t<4> xs{13, 3, 4, 5};
  const auto xd = normal_tensor<double>(xs, 680, 0.5, 1.5);
  const auto dyd = normal_tensor<double>(xs, 681);
  const auto gd = vector_of<double>(4, 682, 0.5, 1.5), bd = vector_of<double>(4, 683, -1, 1);
  Tensor<float, 4> x(xs), dy(xs);
  Tensor<float, 1> g(shape_t<1>{4}), b(shape_t<1>{4});
  for (index_t i = 0; i < x.numel(); ++i) x[i] = float(xd[i]), dy[i] = float(dyd[i]);
  for (index_t i = 0; i < 4; ++i) g[i] = float(gd[i]), b[i] = float(bd[i]);
  const auto xr = to_double(x), dyr = to_double(dy);
  const auto gr = to_double(g), br = to_double(b);
  for_each_mode([&](auto mode) {
    CAPTURE(mode.name);
    auto check = [&](const auto& df, const auto& dd) {
      CHECK(rel_err(to_vec(df.dx), to_vec(dd.dx)) <= bwd_tol<float>);
      CHECK(rel_err(to_vec(df.dscale), to_vec(dd.dscale)) <= bwd_tol<float>);
      CHECK(rel_err(to_vec(df.dbias), to_vec(dd.dbias)) <= bwd_tol<float>);
    };
    {
      const auto rf = lux::batchnorm(mode, x, g, b, lux::none, lux::none, true, lux::tanh_{});
      const auto rd = lux::batchnorm(mode, xr, gr, br, lux::none, lux::none, true, lux::tanh_{});
      check(lux::batchnorm_backward(mode, dy, x, rf.y, g, b, rf.saved, lux::tanh_{}),
            lux::batchnorm_backward(mode, dyr, xr, rd.y, gr, br, rd.saved, lux::tanh_{}));
    }
    {
      const auto rf = lux::groupnorm(mode, x, g, b, 2, lux::gelu{});
      const auto rd = lux::groupnorm(mode, xr, gr, br, 2, lux::gelu{});
      check(lux::groupnorm_backward(mode, dy, x, lux::none, g, b, 2, rf.saved, lux::gelu{}),
            lux::groupnorm_backward(mode, dyr, xr, lux::none, gr, br, 2, rd.saved, lux::gelu{}));
    }
    {
      const auto rf = lux::instancenorm(mode, x, g, b, true, lux::relu{});
      const auto rd = lux::instancenorm(mode, xr, gr, br, true, lux::relu{});
      check(lux::instancenorm_backward(mode, dy, x, rf.y, g, b, rf.saved, lux::relu{}),
            lux::instancenorm_backward(mode, dyr, xr, rd.y, gr, br, rd.saved, lux::relu{}));
    }
    {
      const auto bf = g.reshape(1, 1, 4);  // bias along dim 3
      const auto bdd = gr.reshape(1, 1, 4);
      const auto rf = lux::layernorm(mode, x, lux::none, bf, lux::identity{}, lux::leading_dims{3});
      const auto rd =
          lux::layernorm(mode, xr, lux::none, bdd, lux::identity{}, lux::leading_dims{3});
      check(lux::layernorm_backward(mode, dy, x, lux::none, lux::none, bf, rf.saved,
                                    lux::identity{}, lux::leading_dims{3}),
            lux::layernorm_backward(mode, dyr, xr, lux::none, lux::none, bdd, rd.saved,
                                    lux::identity{}, lux::leading_dims{3}));
    }
  });
}

// =================================================================================================
// 4. PyTorch fixtures
// =================================================================================================
TEMPLATE_TEST_CASE("normalization: outputs and gradients match PyTorch", "[normalization][pytorch]",
                   float, double) {
  using T = TestType;
  const lux_test::fixture_file fx("normalization.txt");
  const T eps = T(1e-5), m = T(0.1);
  auto t1 = [&](const std::string& k) { return fx.tensor<T, 1>(k); };
  const bool looped = GENERATE(false, true);
  with_mode(looped, [&](auto mode) {
    CAPTURE(mode.name);
    SECTION("batchnorm: training with running statistics, relu") {
      const auto x = fx.tensor<T, 4>("bn_train_x");
      const auto g = t1("bn_train_scale"), b = t1("bn_train_bias");
      const auto r = lux::batchnorm(mode, x, g, b, t1("bn_train_rm"), t1("bn_train_rv"), true,
                                    lux::relu{}, m, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 4>("bn_train_y"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_mean), to_vec(t1("bn_train_rm_new"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_var), to_vec(t1("bn_train_rv_new"))) <= fwd_tol<T> * 10);
      const auto d = lux::batchnorm_backward(mode, fx.tensor<T, 4>("bn_train_v"), x, r.y, g, b,
                                             r.saved, lux::relu{});
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 4>("bn_train_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("bn_train_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("bn_train_dbias"))) <= bwd_tol<T>);
    }
    SECTION("batchnorm: inference with running statistics, tanh") {
      const auto x = fx.tensor<T, 4>("bn_eval_x");
      const auto g = t1("bn_eval_scale"), b = t1("bn_eval_bias");
      const auto r = lux::batchnorm(mode, x, g, b, t1("bn_eval_rm"), t1("bn_eval_rv"), false,
                                    lux::tanh_{}, m, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 4>("bn_eval_y"))) <= fwd_tol<T> * 10);
      const auto d = lux::batchnorm_backward(mode, fx.tensor<T, 4>("bn_eval_v"), x, r.y, g, b,
                                             r.saved, lux::tanh_{});
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 4>("bn_eval_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("bn_eval_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("bn_eval_dbias"))) <= bwd_tol<T>);
    }
    SECTION("batchnorm: (features, batch) matrix") {
      const auto x = fx.tensor<T, 2>("bn_matrix_x");
      const auto g = t1("bn_matrix_scale"), b = t1("bn_matrix_bias");
      const auto r = lux::batchnorm(mode, x, g, b, t1("bn_matrix_rm"), t1("bn_matrix_rv"), true,
                                    lux::identity{}, m, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 2>("bn_matrix_y"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_var), to_vec(t1("bn_matrix_rv_new"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_mean), to_vec(t1("bn_matrix_rm_new"))) <= fwd_tol<T> * 10);
      const auto d = lux::batchnorm_backward(mode, fx.tensor<T, 2>("bn_matrix_v"), x, lux::none, g,
                                             b, r.saved);
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 2>("bn_matrix_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("bn_matrix_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("bn_matrix_dbias"))) <= bwd_tol<T>);
    }
    SECTION("groupnorm, relu") {
      const auto x = fx.tensor<T, 4>("gn_x");
      const auto g = t1("gn_scale"), b = t1("gn_bias");
      const auto r = lux::groupnorm(mode, x, g, b, 2, lux::relu{}, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 4>("gn_y"))) <= fwd_tol<T> * 10);
      const auto d = lux::groupnorm_backward(mode, fx.tensor<T, 4>("gn_v"), x, r.y, g, b, 2,
                                             r.saved, lux::relu{});
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 4>("gn_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("gn_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("gn_dbias"))) <= bwd_tol<T>);
    }
    SECTION("instancenorm: training with running statistics, tanh") {
      const auto x = fx.tensor<T, 4>("in_train_x");
      const auto g = t1("in_train_scale"), b = t1("in_train_bias");
      const auto r = lux::instancenorm(mode, x, g, b, t1("in_train_rm"), t1("in_train_rv"), true,
                                       lux::tanh_{}, m, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 4>("in_train_y"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_mean), to_vec(t1("in_train_rm_new"))) <= fwd_tol<T> * 10);
      CHECK(rel_err(to_vec(r.running_var), to_vec(t1("in_train_rv_new"))) <= fwd_tol<T> * 10);
      const auto d = lux::instancenorm_backward(mode, fx.tensor<T, 4>("in_train_v"), x, r.y, g, b,
                                                r.saved, lux::tanh_{});
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 4>("in_train_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("in_train_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("in_train_dbias"))) <= bwd_tol<T>);
    }
    SECTION("instancenorm: inference with running statistics") {
      const auto x = fx.tensor<T, 4>("in_eval_x");
      const auto g = t1("in_eval_scale"), b = t1("in_eval_bias");
      const auto r = lux::instancenorm(mode, x, g, b, t1("in_eval_rm"), t1("in_eval_rv"), false,
                                       lux::identity{}, m, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 4>("in_eval_y"))) <= fwd_tol<T> * 10);
      const auto d = lux::instancenorm_backward(mode, fx.tensor<T, 4>("in_eval_v"), x, lux::none, g,
                                                b, r.saved);
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 4>("in_eval_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(t1("in_eval_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(t1("in_eval_dbias"))) <= bwd_tol<T>);
    }
    SECTION("layernorm over two leading dims, relu") {
      const auto x = fx.tensor<T, 3>("ln_x");
      const auto g = fx.tensor<T, 2>("ln_scale"), b = fx.tensor<T, 2>("ln_bias");
      const auto r = lux::layernorm(mode, x, g, b, lux::relu{}, lux::leading_dims{2}, eps);
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 3>("ln_y"))) <= fwd_tol<T> * 10);
      const auto d = lux::layernorm_backward(mode, fx.tensor<T, 3>("ln_v"), x, r.y, g, b, r.saved,
                                             lux::relu{}, lux::leading_dims{2});
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 3>("ln_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(fx.tensor<double, 2>("ln_dscale"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(fx.tensor<double, 2>("ln_dbias"))) <= bwd_tol<T>);
    }
    SECTION("layernorm with dims inferred from the scale's rank (LuxLib's dims = nothing)") {
      const auto x = fx.tensor<T, 3>("ln_infer_x");
      const auto g = fx.tensor<T, 2>("ln_infer_scale"), b = fx.tensor<T, 2>("ln_infer_bias");
      const auto r = lux::layernorm(mode, x, g, b, lux::tanh_{}, lux::none, eps);
      CHECK(r.saved.mean.numel() == 12);  // dims = 1:1: one group per (4, 3) index
      CHECK(rel_err(to_vec(r.y), to_vec(fx.tensor<double, 3>("ln_infer_y"))) <= fwd_tol<T> * 10);
      const auto d = lux::layernorm_backward(mode, fx.tensor<T, 3>("ln_infer_v"), x, r.y, g, b,
                                             r.saved, lux::tanh_{}, lux::none);
      CHECK(rel_err(to_vec(d.dx), to_vec(fx.tensor<double, 3>("ln_infer_dx"))) <= bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(fx.tensor<double, 2>("ln_infer_dscale"))) <=
            bwd_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(fx.tensor<double, 2>("ln_infer_dbias"))) <= bwd_tol<T>);
    }
  });
}

// =================================================================================================
// 5. Numerical stability: 1e4 + N(0, 1) in float normalizes to within 1e-3 of float64
// =================================================================================================
TEST_CASE("normalization: float inputs of 1e4 plus standard normal noise match float64 within 1e-3",
          "[normalization][stability]") {
  auto check = [](const auto& yf, const vec& ref) {
    const double err = max_abs_diff(to_vec(yf), ref);
    CHECK(err <= 1e-3);
    return err;
  };
  const bool looped = GENERATE(false, true);
  with_mode(looped, [&](auto mode) {
    CAPTURE(mode.name);
    SECTION("batchnorm (fused, split and lane paths)") {
      for (const auto& shape :
           std::vector<shape_t<3>>{{256, 16, 16}, {4096, 2, 8}, {1, 3, 20000}}) {
        CAPTURE(shape);
        const auto x = normal_tensor<float>(shape, 700, 1e4, 1.0);
        const auto scb_ = scb(shape);
        const index_t S = scb_[0], C = scb_[1], B = scb_[2];
        const auto r = lux::batchnorm(mode, x, lux::none, lux::none, lux::none, lux::none, true);
        check(r.y, ref_batchnorm(to_vec(x), S, C, B, {}, {}, {}, {}, true, lux::identity{}, 0.1,
                                 lux::default_norm_epsilon<float>())
                       .y);
      }
    }
    SECTION("groupnorm and instancenorm") {
      const shape_t<4> shape{64, 64, 4, 2};
      const auto x = normal_tensor<float>(shape, 701, 1e4, 1.0);
      const auto scb_ = scb(shape);
      const index_t S = scb_[0], C = scb_[1], B = scb_[2];
      check(lux::groupnorm(mode, x, lux::none, lux::none, 2).y,
            ref_groupnorm(to_vec(x), S, C, B, 2, {}, {}, lux::identity{},
                          lux::default_norm_epsilon<float>()));
      check(lux::groupnorm(mode, x, lux::none, lux::none, 1).y,
            ref_groupnorm(to_vec(x), S, C, B, 1, {}, {}, lux::identity{},
                          lux::default_norm_epsilon<float>()));
      check(lux::instancenorm(mode, x, lux::none, lux::none, true).y,
            ref_instancenorm(to_vec(x), S, C, B, {}, {}, {}, {}, true, lux::identity{}, 0.1,
                             lux::default_norm_epsilon<float>())
                .y);
    }
    SECTION("layernorm") {
      const shape_t<2> shape{1000, 40};
      const auto x = normal_tensor<float>(shape, 702, 1e4, 1.0);
      for (index_t k : {1, 2}) {
        check(
            lux::layernorm(mode, x, lux::none, lux::none, lux::identity{}, lux::leading_dims{k}).y,
            ref_layernorm(to_vec(x), dims_of(shape), static_cast<std::size_t>(k), {}, {}, {}, {},
                          lux::identity{}, lux::default_norm_epsilon<float>()));
      }
    }
  });
}

// =================================================================================================
// 6. Edge cases
// =================================================================================================
TEST_CASE("batchnorm and instancenorm: no running-statistics update from an empty batch",
          "[normalization][batchnorm][edge]") {
  // n = 0 values per channel: the batch statistics are NaN, and so would the running ones be.
  const Tensor<float, 2> x(shape_t<2>{3, 0});
  const Tensor<float, 1> rm(shape_t<1>{3}, 0.f), rv(shape_t<1>{3}, 1.f);
  CHECK_THROWS_AS(lux::batchnorm(x, lux::none, lux::none, rm, rv, true), lux::argument_error);
  CHECK_THROWS_WITH(lux::batchnorm(lux::generic_op{}, x, lux::none, lux::none, rm, rv, true),
                    Catch::Contains("batchnorm") && Catch::Contains("n = 0"));
  const Tensor<float, 4> x4(shape_t<4>{0, 2, 3, 5});
  CHECK_THROWS_WITH(lux::batchnorm(x4, lux::none, lux::none, rm, rv, true),
                    Catch::Contains("batchnorm") && Catch::Contains("n = 0"));
  // Inference, and no running statistics at all, stay fine (an empty y).
  CHECK(lux::batchnorm(x, lux::none, lux::none, rm, rv, false).y.numel() == 0);
  CHECK(lux::batchnorm(x, lux::none, lux::none, lux::none, lux::none, true).y.numel() == 0);
  // instancenorm averages per-sample statistics: a batch of 0 samples has none.
  const Tensor<float, 3> xi(shape_t<3>{4, 3, 0});
  CHECK_THROWS_WITH(lux::instancenorm(xi, lux::none, lux::none, rm, rv, true),
                    Catch::Contains("instancenorm") && Catch::Contains("at least one sample"));
  CHECK(lux::instancenorm(xi, lux::none, lux::none, rm, rv, false).y.numel() == 0);
}

TEST_CASE("batchnorm: a batch of one", "[normalization][batchnorm][edge]") {
  // (C, 1): one value per channel. Updating the running variance would divide by n - 1 = 0
  // (Lux's layer asserts B != 1): the kernel throws. Without running statistics the variance is
  // 0 and y = σ(β) (x − μ = 0 exactly).
  const Tensor<float, 2> x(shape_t<2>{3, 1}, {1.f, -2.f, 5.f});
  const Tensor<float, 1> rm(shape_t<1>{3}, 0.f), rv(shape_t<1>{3}, 1.f);
  const Tensor<float, 1> b(shape_t<1>{3}, {0.5f, -0.25f, 2.f});
  CHECK_THROWS_AS(lux::batchnorm(x, lux::none, b, rm, rv, true), lux::argument_error);
  CHECK_THROWS_WITH(lux::batchnorm(x, lux::none, b, rm, rv, true),
                    Catch::Contains("batchnorm") && Catch::Contains("n = 1"));
  const auto r = lux::batchnorm(x, lux::none, b, lux::none, lux::none, true, lux::relu{});
  CHECK(r.y[0] == 0.5f);
  CHECK(r.y[1] == 0.f);
  CHECK(r.y[2] == 2.f);
  // Inference with running statistics is fine at B = 1.
  const auto t = lux::batchnorm(x, lux::none, b, rm, rv, false);
  CHECK(t.y[2] == Approx(5.f / std::sqrt(1.f + lux::default_norm_epsilon<float>()) + 2.f));
  // (S, C, 1) with S > 1 has n = S values per channel: the update is defined.
  const auto xs = normal_tensor<float>(shape_t<3>{4, 3, 1}, 710);
  const auto u = lux::batchnorm(xs, lux::none, lux::none, rm, rv, true);
  const auto ref = ref_batchnorm(to_vec(xs), 4, 3, 1, {}, {}, to_vec(rm), to_vec(rv), true,
                                 lux::identity{}, 0.1, lux::default_norm_epsilon<float>());
  CHECK(rel_err(to_vec(u.running_var), ref.running_var) <= 1e-6);
  // instancenorm with one spatial element has n = 1 for its running variance as well.
  const Tensor<float, 3> xi(shape_t<3>{1, 3, 2});
  CHECK_THROWS_AS(lux::instancenorm(xi, lux::none, lux::none, rm, rv, true), lux::argument_error);
}

TEST_CASE("groupnorm: a single element per group gives y = activation(bias)",
          "[normalization][groupnorm][edge]") {
  const auto x = normal_tensor<double>(shape_t<3>{1, 4, 3}, 720);
  const Tensor<double, 1> g(shape_t<1>{4}, 2.0), b(shape_t<1>{4}, {-1.0, 0.5, 0.0, 3.0});
  for_each_mode([&](auto mode) {
    const auto r = lux::groupnorm(mode, x, g, b, 4, lux::relu{});
    for (index_t bb = 0; bb < 3; ++bb)
      for (index_t c = 0; c < 4; ++c) CHECK(r.y(0, c, bb) == std::max(0.0, b[c]));
    // dx = 0 (every output is constant in x); dbias = Σ dy where β > 0 (relu' = 0 at 0).
    const auto dy = normal_tensor<double>(x.shape(), 721);
    const auto d = lux::groupnorm_backward(mode, dy, x, r.y, g, b, 4, r.saved, lux::relu{});
    CHECK(max_abs_diff(to_vec(d.dx), vec(12, 0.0)) <= 1e-12);
    CHECK(d.dbias[1] == Approx(dy(0, 1, 0) + dy(0, 1, 1) + dy(0, 1, 2)));
    CHECK(d.dbias[0] == 0.0);
  });
}

TEST_CASE("normalization: very large and very small values", "[normalization][edge]") {
  // Normalization is scale-invariant up to ε: x·1e15 normalizes like x (σ² = 1e30 >> ε), x·1e-15
  // gives y ≈ x̂·√(σ²/(σ²+ε)) ≈ 0 with σ² = 1e-30 << ε; both match the float64 reference.
  const shape_t<3> xs{37, 5, 6};
  const auto x = normal_tensor<float>(xs, 730);
  for (double scale : {1e15, 1e-15, 1e17}) {
    CAPTURE(scale);
    Tensor<float, 3> xx(xs);
    for (index_t i = 0; i < x.numel(); ++i) xx[i] = float(double(x[i]) * scale);
    const auto scb_ = scb(xs);
    const index_t S = scb_[0], C = scb_[1], B = scb_[2];
    const double eps = lux::default_norm_epsilon<float>();
    for_each_mode([&](auto mode) {
      CAPTURE(mode.name);
      CHECK(
          rel_err(
              to_vec(lux::batchnorm(mode, xx, lux::none, lux::none, lux::none, lux::none, true).y),
              ref_batchnorm(to_vec(xx), S, C, B, {}, {}, {}, {}, true, lux::identity{}, 0.1, eps)
                  .y) <= 1e-5);
      CHECK(rel_err(to_vec(lux::groupnorm(mode, xx, lux::none, lux::none, 5).y),
                    ref_groupnorm(to_vec(xx), S, C, B, 5, {}, {}, lux::identity{}, eps)) <= 1e-5);
      CHECK(rel_err(to_vec(lux::layernorm(mode, xx, lux::none, lux::none).y),
                    ref_layernorm(to_vec(xx), dims_of(xs), 2, {}, {}, {}, {}, lux::identity{},
                                  eps)) <= 1e-5);
    });
  }
}

TEST_CASE("normalization: empty inputs", "[normalization][edge]") {
  const Tensor<float, 3> x(shape_t<3>{4, 3, 0});
  const auto r = lux::batchnorm(x, lux::none, lux::none, lux::none, lux::none, true);
  CHECK(r.y.numel() == 0);
  CHECK(std::isnan(r.saved.mean[0]));
  const auto d = lux::batchnorm_backward(x, x, lux::none, lux::none, lux::none, r.saved);
  CHECK(d.dx.numel() == 0);
  CHECK(lux::layernorm(x, lux::none, lux::none).y.numel() == 0);
  CHECK(lux::groupnorm(x, lux::none, lux::none, 3).y.numel() == 0);
}

TEST_CASE("normalization: strided views must be contiguous", "[normalization][edge]") {
  Tensor<float, 3> x = normal_tensor<float>(shape_t<3>{4, 3, 2}, 740);
  const lux::StridedView<float, 2> dense = x.select_last(1);  // contiguous slice
  const auto r = lux::batchnorm(dense, lux::none, lux::none, lux::none, lux::none, true);
  CHECK(r.y.numel() == 12);
  const auto strided = x.select(1, 0);  // (4, 2) with stride 12: not contiguous
  CHECK_THROWS_AS(lux::batchnorm(strided, lux::none, lux::none, lux::none, lux::none, true),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::batchnorm(strided, lux::none, lux::none, lux::none, lux::none, true),
                    Catch::Contains("batchnorm") && Catch::Contains("contiguous"));
}

// =================================================================================================
// 7. Error paths
// =================================================================================================
TEST_CASE("normalization: bad arguments throw with the kernel's name", "[normalization][errors]") {
  const auto x = normal_tensor<float>(shape_t<4>{3, 2, 4, 2}, 750);
  const Tensor<float, 1> c3(shape_t<1>{3}, 1.f), c4(shape_t<1>{4}, 1.f);
  using Catch::Contains;
  using lux::argument_error;
  using lux::none;
  using lux::shape_error;

  // batchnorm
  CHECK_THROWS_AS(lux::batchnorm(x, c3, none, none, none, true), shape_error);
  CHECK_THROWS_WITH(
      lux::batchnorm(x, c3, none, none, none, true),
      Contains("batchnorm: scale has shape (3), expected (4) to match x (3, 2, 4, 2)"));
  CHECK_THROWS_WITH(lux::batchnorm(x, none, c3, none, none, true), Contains("bias has shape (3)"));
  CHECK_THROWS_AS(lux::batchnorm(x, c4, c4, c3, c4, true), shape_error);
  CHECK_THROWS_WITH(lux::batchnorm(x, c4, c4, c4, c3, true),
                    Contains("batchnorm: running_var has shape (3)"));
  CHECK_THROWS_AS(lux::batchnorm(x, c4, c4, c4, c4, true, lux::identity{}, 1.5f), argument_error);
  CHECK_THROWS_WITH(lux::batchnorm(x, c4, c4, c4, c4, true, lux::identity{}, -0.1f),
                    Contains("batchnorm: momentum must be in [0, 1]"));
  CHECK_THROWS_AS(lux::batchnorm(x, c4, c4, c4, c4, true, lux::identity{}, 0.1f, -1e-5f),
                  argument_error);
  CHECK_THROWS_WITH(lux::batchnorm(x, c4, c4, c4, c4, true, lux::identity{}, 0.1f, -1e-5f),
                    Contains("batchnorm: epsilon must be finite and >= 0"));
  CHECK_THROWS_AS(lux::batchnorm(x, c4, c4, c4, c4, true, lux::identity{}, 0.1f,
                                 std::numeric_limits<float>::quiet_NaN()),
                  argument_error);

  // groupnorm
  CHECK_THROWS_AS(lux::groupnorm(x, c4, c4, 3), argument_error);
  CHECK_THROWS_WITH(lux::groupnorm(x, c4, c4, 3),
                    Contains("groupnorm: the number of channels 4 is not divisible by groups = 3"));
  CHECK_THROWS_AS(lux::groupnorm(x, c4, c4, 0), argument_error);
  CHECK_THROWS_AS(lux::groupnorm(x, c3, c4, 2), shape_error);
  CHECK_THROWS_WITH(lux::groupnorm(x, c4, c3, 2), Contains("groupnorm: bias has shape (3)"));
  CHECK_THROWS_AS(lux::groupnorm(x, c4, c4, 2, lux::identity{}, -1.f), argument_error);

  // instancenorm
  const auto x2 = normal_tensor<float>(shape_t<2>{4, 3}, 751);
  CHECK_THROWS_AS(lux::instancenorm(x2, none, none, true), shape_error);
  CHECK_THROWS_WITH(
      lux::instancenorm(x2, none, none, true),
      Contains("instancenorm: x must have at least 3 dimensions") && Contains("(4, 3)"));
  CHECK_THROWS_AS(lux::instancenorm(x, c3, none, true), shape_error);
  CHECK_THROWS_WITH(lux::instancenorm(x, c4, none, c4, c3, true),
                    Contains("instancenorm: running_var has shape (3)"));

  // layernorm
  CHECK_THROWS_AS(lux::layernorm(x, none, none, lux::identity{}, lux::leading_dims{5}),
                  argument_error);
  CHECK_THROWS_WITH(lux::layernorm(x, none, none, lux::identity{}, lux::leading_dims{-2}),
                    Contains("layernorm: dims"));
  CHECK_THROWS_AS(lux::layernorm(x, none, none, lux::identity{}, none), argument_error);
  CHECK_THROWS_WITH(lux::layernorm(x, none, none, lux::identity{}, none),
                    Contains("layernorm") && Contains("lux::none"));
  const Tensor<float, 2> bad(shape_t<2>{3, 3}, 1.f);
  CHECK_THROWS_AS(lux::layernorm(x, bad, none), shape_error);
  CHECK_THROWS_WITH(lux::layernorm(x, none, bad),
                    Contains("layernorm: bias has shape (3, 3, 1, 1)") &&
                        Contains("does not broadcast against x (3, 2, 4, 2)"));
  CHECK_THROWS_AS(lux::layernorm(x, none, none, lux::identity{}, lux::leading_dims{}, -1.f),
                  argument_error);

  // backward
  const auto r = lux::batchnorm(x, c4, c4, none, none, true);
  const auto x4 = normal_tensor<float>(shape_t<4>{3, 2, 4, 1}, 752);
  CHECK_THROWS_AS(lux::batchnorm_backward(x4, x, none, c4, c4, r.saved), shape_error);
  CHECK_THROWS_WITH(lux::batchnorm_backward(x4, x, none, c4, c4, r.saved),
                    Contains("batchnorm_backward: dy has shape (3, 2, 4, 1), expected x's shape "
                             "(3, 2, 4, 2)"));
  CHECK_THROWS_WITH(lux::batchnorm_backward(x, x, x4, c4, c4, r.saved, lux::relu{}),
                    Contains("batchnorm_backward: y has shape (3, 2, 4, 1)"));
  CHECK_THROWS_AS(lux::batchnorm_backward(x, x, none, c3, c4, r.saved), shape_error);
  const auto gr = lux::groupnorm(x, c4, c4, 2);
  CHECK_THROWS_WITH(lux::groupnorm_backward(x, x, none, c4, c4, 4, gr.saved),
                    Contains("groupnorm_backward: saved statistics have 4 and 4 entries, "
                             "expected 8"));
  CHECK_THROWS_AS(lux::groupnorm_backward(x, x, none, c4, c4, 3, gr.saved), argument_error);
  const auto lr = lux::layernorm(x, none, none);
  CHECK_THROWS_AS(lux::layernorm_backward(x, x, none, none, none, lr.saved, lux::identity{},
                                          lux::leading_dims{1}),
                  shape_error);
  CHECK_THROWS_AS(lux::instancenorm_backward(x2, x2, none, none, none, lr.saved), shape_error);
}
