// inox's normalization layers lux::inox::BatchNorm, LayerNorm, GroupNorm (lux/layers/inox.hpp):
// counts and state names, forward and running statistics against float64 references written
// here from inox's formulas (plain loops over the column-major data), float (looped kernels)
// against double and against the generic kernels, pullbacks against central finite differences,
// GroupNorm(1) == LayerNorm(), PyTorch fixtures (tests/fixtures/inox.txt), errors and printing.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <lux/core/kernel_trace.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/inox.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"
#include "support/layer_check.hpp"

namespace {

using lux::index_t;
using lux::make_shape;
using lux::Tensor;

constexpr double kEps = 1e-5;
constexpr double kAlpha = 0.9;

template <class L>
std::string str(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

/// Column-major multi-index of the linear index i.
template <std::size_t N>
std::array<index_t, N> unravel(index_t i, const lux::shape_t<N>& s) {
  std::array<index_t, N> idx{};
  for (std::size_t d = 0; d < N; ++d) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

/// The float64 normalization y = (x − μ_g)/√(σ²_g + ε), μ_g and σ²_g the mean and BIASED
/// variance of the elements i with group_of(i) = g. mean/var receive the statistics.
template <std::size_t N, class G>
Tensor<double, N> ref_normalize(const Tensor<double, N>& x, index_t ngroups, G group_of,
                                double eps = kEps, std::vector<double>* mean_out = nullptr,
                                std::vector<double>* var_out = nullptr) {
  std::vector<double> mean(ngroups, 0.0), var(ngroups, 0.0), cnt(ngroups, 0.0);
  for (index_t i = 0; i < x.numel(); ++i) {
    mean[group_of(i)] += x.data()[i];
    cnt[group_of(i)] += 1;
  }
  for (index_t g = 0; g < ngroups; ++g) mean[g] /= cnt[g];
  for (index_t i = 0; i < x.numel(); ++i) {
    const double d = x.data()[i] - mean[group_of(i)];
    var[group_of(i)] += d * d;
  }
  for (index_t g = 0; g < ngroups; ++g) var[g] /= cnt[g];
  Tensor<double, N> y(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    const index_t g = group_of(i);
    y.data()[i] = (x.data()[i] - mean[g]) / std::sqrt(var[g] + eps);
  }
  if (mean_out) *mean_out = mean;
  if (var_out) *var_out = var;
  return y;
}

/// inox BatchNorm, training: statistics per channel c = i mod C (luxcpp's dimension 0).
template <std::size_t N>
Tensor<double, N> ref_batchnorm(const Tensor<double, N>& x, std::vector<double>* mean,
                                std::vector<double>* var) {
  const index_t C = x.shape()[0];
  return ref_normalize(
      x, C, [C](index_t i) { return i % C; }, kEps, mean, var);
}

/// inox BatchNorm, eval: the given running statistics.
template <std::size_t N>
Tensor<double, N> ref_batchnorm_eval(const Tensor<double, N>& x, const std::vector<double>& mean,
                                     const std::vector<double>& var) {
  const index_t C = x.shape()[0];
  Tensor<double, N> y(x.shape());
  for (index_t i = 0; i < x.numel(); ++i)
    y.data()[i] = (x.data()[i] - mean[i % C]) / std::sqrt(var[i % C] + kEps);
  return y;
}

/// inox LayerNorm over the luxcpp dimensions `dims` (written by hand from inox's axes): one
/// group per index of the other dimensions.
template <std::size_t N>
Tensor<double, N> ref_layernorm(const Tensor<double, N>& x, std::initializer_list<index_t> dims) {
  std::array<bool, N> reduced{};
  for (index_t d : dims) reduced[static_cast<std::size_t>(d)] = true;
  index_t ngroups = 1;
  for (std::size_t d = 0; d < N; ++d)
    if (!reduced[d]) ngroups *= x.shape()[d];
  const auto s = x.shape();
  return ref_normalize(x, ngroups, [&](index_t i) {
    const auto idx = unravel(i, s);
    index_t g = 0, stride = 1;
    for (std::size_t d = 0; d < N; ++d)
      if (!reduced[d]) {
        g += idx[d] * stride;
        stride *= s[d];
      }
    return g;
  });
}

/// inox GroupNorm: x (C, *); group (c ÷ D) + G·position, D = C/G.
template <std::size_t N>
Tensor<double, N> ref_groupnorm(const Tensor<double, N>& x, index_t G) {
  const index_t C = x.shape()[0], D = C / G, P = x.numel() / C;
  return ref_normalize(x, G * P, [=](index_t i) { return (i % C) / D + G * (i / C); });
}

/// The dimensions below `rank` a dim_set contains, in increasing order.
std::vector<index_t> dims_of(const lux::dim_set& s, index_t rank) {
  std::vector<index_t> out;
  for (index_t d = 0; d < rank; ++d)
    if (s.contains(static_cast<std::size_t>(d))) out.push_back(d);
  return out;
}

template <class T>
Tensor<T, 1> vec(const std::vector<double>& v) {
  Tensor<T, 1> t(make_shape(static_cast<index_t>(v.size())));
  for (std::size_t i = 0; i < v.size(); ++i) t[static_cast<index_t>(i)] = static_cast<T>(v[i]);
  return t;
}
template <class T>
std::vector<double> stdvec(const Tensor<T, 1>& t) {
  return std::vector<double>(t.begin(), t.end());
}

/// The pullback against central finite differences (x only: these layers have no parameters).
template <class L, std::size_t N, class PS, class ST>
void check_gradients(const L& layer, const Tensor<double, N>& x, const PS& ps, const ST& st,
                     double tol = 1e-6) {
  const auto v = lux_test::random_tensor<double>(lux::outputsize(layer, x.shape()), 77);
  CHECK(lux_test::check_pullback(layer, x, ps, st, v, {.tol = tol}).empty());
}

/// One BatchNorm training step from `st` against the reference: y, mean, var (α·ŝ + (1 − α)·s
/// with the biased batch variance). Returns st2.
template <class T, std::size_t N, class ST>
ST check_bn_step(const lux::inox::BatchNorm& bn, const Tensor<T, N>& x, const ST& st, double tol) {
  std::vector<double> mu, var;
  const auto ref = ref_batchnorm(lux_test::to_double(x), &mu, &var);
  auto [y, st2] = lux::apply(bn, x, lux::empty_tuple{}, st);
  CHECK(y.shape() == x.shape());
  CHECK(lux_test::max_rel_err(y, ref) < tol);
  const auto m0 = stdvec(st.template get<"mean">()), v0 = stdvec(st.template get<"var">());
  std::vector<double> m1(mu.size()), v1(mu.size());
  for (std::size_t c = 0; c < mu.size(); ++c) {
    m1[c] = kAlpha * m0[c] + (1 - kAlpha) * mu[c];
    v1[c] = kAlpha * v0[c] + (1 - kAlpha) * var[c];
  }
  CHECK(lux_test::max_rel_err(st2.template get<"mean">(), vec<double>(m1)) < tol);
  CHECK(lux_test::max_rel_err(st2.template get<"var">(), vec<double>(v1)) < tol);
  CHECK(st2.template get<"training">());
  return st2;
}

/// Eval: the running statistics of st, st returned unchanged.
template <class T, std::size_t N, class ST>
void check_bn_eval(const lux::inox::BatchNorm& bn, const Tensor<T, N>& x, const ST& st,
                   double tol) {
  const auto ste = lux::testmode(st);
  auto [y, st2] = lux::apply(bn, x, lux::empty_tuple{}, ste);
  CHECK(lux_test::max_rel_err(
            y, ref_batchnorm_eval(lux_test::to_double(x), stdvec(st.template get<"mean">()),
                                  stdvec(st.template get<"var">()))) < tol);
  CHECK(lux_test::max_rel_err(st2.template get<"mean">(), st.template get<"mean">()) == 0.0);
  CHECK(lux_test::max_rel_err(st2.template get<"var">(), st.template get<"var">()) == 0.0);
  CHECK_FALSE(st2.template get<"training">());
}

template <class T, std::size_t N>
void bn_two_steps_and_eval(const lux::shape_t<N>& shape, std::uint64_t seed, double tol) {
  INFO("shape " << lux::format_shape(shape) << (std::is_same_v<T, float> ? " float" : " double"));
  const index_t C = shape[0];
  lux::inox::BatchNorm bn(C);
  lux::rng r(seed);
  auto [ps, st] = lux::setup<T>(r, bn);
  st.template get<"mean">() = lux_test::random_tensor<T>(make_shape(C), seed + 1, -0.5, 0.5);
  st.template get<"var">() = lux_test::random_tensor<T>(make_shape(C), seed + 2, 0.5, 1.5);
  const auto x1 = lux_test::random_tensor<T>(shape, seed + 3, -2, 3);
  const auto x2 = lux_test::random_tensor<T>(shape, seed + 4, -1, 1);
  auto st1 = check_bn_step(bn, x1, st, tol);
  auto st2 = check_bn_step(bn, x2, st1, tol);
  check_bn_eval(bn, x2, st2, tol);
  check_bn_eval(bn, x1, st, tol);
}

}  // namespace

// =================================================================================================
// BatchNorm
// =================================================================================================

TEST_CASE("inox::BatchNorm: counts, state names, inox's defaults", "[layers][inox]") {
  lux::inox::BatchNorm bn(16);
  CHECK(bn.epsilon == 1e-5);
  CHECK(bn.momentum == 0.9);
  CHECK(lux::parameterlength(bn) == 0);
  CHECK(lux::statelength(bn) == 33);
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, bn);
  static_assert(std::is_same_v<decltype(ps), lux::empty_tuple>);
  static_assert(decltype(st)::names[0] == "mean" && decltype(st)::names[1] == "var" &&
                decltype(st)::names[2] == "training");
  CHECK(st.get<"mean">().shape() == make_shape(16));
  for (index_t c = 0; c < 16; ++c) {
    CHECK(st.get<"mean">()[c] == 0.0f);
    CHECK(st.get<"var">()[c] == 1.0f);
  }
  CHECK(st.get<"training">());
  CHECK_FALSE(lux::testmode(st).get<"training">());
  CHECK(lux::outputsize(bn, make_shape(16, 5)) == make_shape(16, 5));
  CHECK(lux::outputsize(bn, make_shape(16, 4, 3, 5)) == make_shape(16, 4, 3, 5));
}

TEST_CASE("inox::BatchNorm: training steps and eval against the float64 reference",
          "[layers][inox]") {
  bn_two_steps_and_eval<double>(make_shape(3, 5), 10, 1e-12);
  bn_two_steps_and_eval<double>(make_shape(4, 3, 5), 20, 1e-12);
  bn_two_steps_and_eval<double>(make_shape(2, 3, 2, 4), 30, 1e-12);
  bn_two_steps_and_eval<float>(make_shape(3, 5), 40, 1e-5);
  bn_two_steps_and_eval<float>(make_shape(4, 3, 5), 50, 1e-5);
  bn_two_steps_and_eval<float>(make_shape(5, 7, 6, 3), 60, 1e-5);
  // Non-default hyperparameters: α = 0.5, ε = 0.1.
  lux::inox::BatchNorm bn(3, 0.1, 0.5);
  lux::rng r(2);
  auto [ps, st] = lux::setup<double>(r, bn);
  const auto x = lux_test::random_tensor<double>(make_shape(3, 4, 2), 70);
  std::vector<double> mu, var;
  const auto ref = ref_normalize(
      x, 3, [](index_t i) { return i % 3; }, 0.1, &mu, &var);
  auto [y, st2] = lux::apply(bn, x, ps, st);
  CHECK(lux_test::max_rel_err(y, ref) < 1e-12);
  for (index_t c = 0; c < 3; ++c) {
    CHECK(st2.get<"mean">()[c] == Approx(0.5 * mu[c]).epsilon(1e-12));
    CHECK(st2.get<"var">()[c] == Approx(0.5 + 0.5 * var[c]).epsilon(1e-12));
  }
}

TEST_CASE("inox::BatchNorm: one value per channel trains (biased variance: σ² = 0)",
          "[layers][inox]") {
  // inox's jnp.var of one value is 0; Lux's unbiased update would divide by n − 1 = 0.
  lux::inox::BatchNorm bn(3);
  lux::rng r(3);
  auto [ps, st] = lux::setup<double>(r, bn);
  const auto x = lux_test::random_tensor<double>(make_shape(3, 1), 80);
  auto [y, st2] = lux::apply(bn, x, ps, st);
  for (index_t c = 0; c < 3; ++c) {
    CHECK(y[c] == 0.0);
    CHECK(st2.get<"mean">()[c] == Approx(0.1 * x[c]).epsilon(1e-12));
    CHECK(st2.get<"var">()[c] == Approx(0.9).epsilon(1e-12));
  }
}

TEST_CASE("inox::BatchNorm: pullback against finite differences, training and eval",
          "[layers][inox]") {
  lux::inox::BatchNorm bn(3);
  lux::rng r(4);
  auto [ps, st] = lux::setup<double>(r, bn);
  st.get<"mean">() = lux_test::random_tensor<double>(make_shape(3), 90, -0.5, 0.5);
  st.get<"var">() = lux_test::random_tensor<double>(make_shape(3), 91, 0.5, 1.5);
  const auto x2 = lux_test::random_tensor<double>(make_shape(3, 6), 92, -2, 2);
  check_gradients(bn, x2, ps, st);
  check_gradients(bn, x2, ps, lux::testmode(st));
  const auto x4 = lux_test::random_tensor<double>(make_shape(3, 2, 3, 2), 93, -2, 2);
  check_gradients(bn, x4, ps, st);
  check_gradients(bn, x4, ps, lux::testmode(st));
  // Eval: dx = dy / √(var + ε) exactly as the formula says.
  auto [y, st2, back] = lux::pullback(bn, x4, ps, lux::testmode(st));
  const auto dy = lux_test::random_tensor<double>(x4.shape(), 94);
  auto g = back(dy);
  static_assert(std::is_same_v<decltype(g.dps), lux::empty_tuple>);
  for (index_t i = 0; i < x4.numel(); ++i)
    CHECK(g.dx[i] == Approx(dy[i] / std::sqrt(st.get<"var">()[i % 3] + kEps)).epsilon(1e-12));
  // The state returned by pullback is apply's.
  auto [yt, stt, backt] = lux::pullback(bn, x4, ps, st);
  auto sta = lux::apply(bn, x4, ps, st).second;
  CHECK(lux_test::max_rel_err(stt.get<"mean">(), sta.get<"mean">()) == 0.0);
  CHECK(lux_test::max_rel_err(stt.get<"var">(), sta.get<"var">()) == 0.0);
}

// =================================================================================================
// LayerNorm
// =================================================================================================

TEST_CASE("inox::LayerNorm: axes in inox's convention against the float64 reference",
          "[layers][inox]") {
  CHECK(lux::parameterlength(lux::inox::LayerNorm{}) == 0);
  CHECK(lux::statelength(lux::inox::LayerNorm{}) == 0);
  lux::rng r(5);
  auto [ps, st] = lux::setup<double>(r, lux::inox::LayerNorm{});
  static_assert(std::is_same_v<decltype(ps), lux::empty_tuple>);
  static_assert(std::is_same_v<decltype(st), lux::empty_tuple>);

  // The translation: inox axis a of a rank-R input is luxcpp dimension R − 1 − (a mod R).
  const auto s3 = make_shape(4, 5, 6);
  CHECK(dims_of(lux::inox::LayerNorm().kernel_dims(s3), 3) == std::vector<index_t>{0});
  CHECK(dims_of(lux::inox::LayerNorm(0).kernel_dims(s3), 3) == std::vector<index_t>{2});
  CHECK(dims_of(lux::inox::LayerNorm({-1, -2}).kernel_dims(s3), 3) == std::vector<index_t>{0, 1});
  CHECK(dims_of(lux::inox::LayerNorm({2, -3}).kernel_dims(s3), 3) == std::vector<index_t>{0, 2});
  CHECK(dims_of(lux::inox::LayerNorm({-1, -3}).kernel_dims(make_shape(2, 3, 4, 5)), 4) ==
        std::vector<index_t>{0, 2});

  const auto x3 = lux_test::random_tensor<double>(make_shape(5, 4, 3), 100, -2, 3);
  const auto x4 = lux_test::random_tensor<double>(make_shape(4, 2, 3, 2), 101, -2, 3);
  const auto x1 = lux_test::random_tensor<double>(make_shape(7), 102, -2, 3);
  auto y = [&](const lux::inox::LayerNorm& ln, const auto& x) {
    return lux::apply(ln, x, ps, st).first;
  };
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm(), x3), ref_layernorm(x3, {0})) < 1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-1, -2}), x3), ref_layernorm(x3, {0, 1})) <
        1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-2, -1}), x3), ref_layernorm(x3, {0, 1})) <
        1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({0}), x3), ref_layernorm(x3, {2})) < 1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm(1), x3), ref_layernorm(x3, {1})) < 1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-1, -3}), x3), ref_layernorm(x3, {0, 2})) <
        1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-1, -3}), x4), ref_layernorm(x4, {0, 2})) <
        1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({0, 2}), x4), ref_layernorm(x4, {1, 3})) <
        1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-1, -2, -3, -4}), x4),
                              ref_layernorm(x4, {0, 1, 2, 3})) < 1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm(), x1), ref_layernorm(x1, {0})) < 1e-12);
  // ε is used.
  lux::inox::LayerNorm big(-1, 0.5);
  CHECK(lux_test::max_rel_err(y(big, x3), ref_normalize(
                                              x3, 12, [](index_t i) { return i / 5; }, 0.5)) <
        1e-12);
  // Float inputs (the looped kernels) against the double reference.
  const auto x3f = lux_test::random_tensor<float>(make_shape(6, 5, 4), 103, -2, 3);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm(), x3f),
                              ref_layernorm(lux_test::to_double(x3f), {0})) < 1e-5);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({-1, -3}), x3f),
                              ref_layernorm(lux_test::to_double(x3f), {0, 2})) < 1e-5);
  CHECK(lux_test::max_rel_err(y(lux::inox::LayerNorm({1}), x3f),
                              ref_layernorm(lux_test::to_double(x3f), {1})) < 1e-5);
  CHECK(lux::outputsize(lux::inox::LayerNorm({-1, -3}), x4.shape()) == x4.shape());
}

TEST_CASE("inox::LayerNorm: pullbacks against finite differences", "[layers][inox]") {
  lux::rng r(6);
  auto [ps, st] = lux::setup<double>(r, lux::inox::LayerNorm{});
  const auto x3 = lux_test::random_tensor<double>(make_shape(5, 4, 3), 110, -2, 2);
  const auto x4 = lux_test::random_tensor<double>(make_shape(3, 2, 3, 2), 111, -2, 2);
  for (const auto& ln : {lux::inox::LayerNorm(), lux::inox::LayerNorm({-1, -2}),
                         lux::inox::LayerNorm({0}), lux::inox::LayerNorm({-1, -3})}) {
    INFO(str(ln));
    check_gradients(ln, x3, ps, st);
    check_gradients(ln, x4, ps, st);
  }
  check_gradients(lux::inox::LayerNorm({1, 3}), x4, ps, st);
  check_gradients(lux::inox::LayerNorm(), lux_test::random_tensor<double>(make_shape(6), 112), ps,
                  st);
}

// =================================================================================================
// GroupNorm
// =================================================================================================

TEST_CASE("inox::GroupNorm: groups against the float64 reference, GroupNorm(1) == LayerNorm()",
          "[layers][inox]") {
  CHECK(lux::parameterlength(lux::inox::GroupNorm(2)) == 0);
  CHECK(lux::statelength(lux::inox::GroupNorm(2)) == 0);
  lux::rng r(7);
  auto [ps, st] = lux::setup<double>(r, lux::inox::GroupNorm(2));
  auto y = [&](const auto& layer, const auto& x) { return lux::apply(layer, x, ps, st).first; };
  const auto x2 = lux_test::random_tensor<double>(make_shape(6, 5), 120, -2, 3);
  const auto x3 = lux_test::random_tensor<double>(make_shape(6, 4, 3), 121, -2, 3);
  const auto x4 = lux_test::random_tensor<double>(make_shape(6, 2, 3, 2), 122, -2, 3);
  const auto x1 = lux_test::random_tensor<double>(make_shape(6), 123, -2, 3);
  for (index_t G : {1, 2, 3, 6}) {
    INFO("G = " << G);
    lux::inox::GroupNorm gn(G);
    CHECK(lux_test::max_rel_err(y(gn, x2), ref_groupnorm(x2, G)) < 1e-12);
    CHECK(lux_test::max_rel_err(y(gn, x3), ref_groupnorm(x3, G)) < 1e-12);
    CHECK(lux_test::max_rel_err(y(gn, x4), ref_groupnorm(x4, G)) < 1e-12);
    CHECK(lux_test::max_rel_err(y(gn, x1), ref_groupnorm(x1, G)) < 1e-12);
    CHECK(lux::outputsize(gn, x4.shape()) == x4.shape());
  }
  // G = C: each group one channel, variance 0: y = 0.
  for (double v : y(lux::inox::GroupNorm(6), x3)) CHECK(v == 0.0);
  // inox: "If G = 1, the layer is equivalent to LayerNorm" (axis −1).
  for (const auto& x : {x3, lux_test::random_tensor<double>(make_shape(6, 4, 3), 124, 10, 11)})
    CHECK(lux_test::max_rel_err(y(lux::inox::GroupNorm(1), x), y(lux::inox::LayerNorm(), x)) <
          1e-12);
  CHECK(lux_test::max_rel_err(y(lux::inox::GroupNorm(1), x4), y(lux::inox::LayerNorm(), x4)) <
        1e-12);
  const auto x3f = lux_test::random_tensor<float>(make_shape(8, 5, 3), 125, -2, 3);
  CHECK(lux_test::max_rel_err(y(lux::inox::GroupNorm(1), x3f), y(lux::inox::LayerNorm(), x3f)) <
        1e-6);
  // Float inputs against the double reference; ε used.
  for (index_t G : {1, 2, 4})
    CHECK(lux_test::max_rel_err(y(lux::inox::GroupNorm(G), x3f),
                                ref_groupnorm(lux_test::to_double(x3f), G)) < 1e-5);
  lux::inox::GroupNorm big(2, 0.5);
  CHECK(lux_test::max_rel_err(
            y(big, x2), ref_normalize(
                            x2, 10, [](index_t i) { return (i % 6) / 3 + 2 * (i / 6); }, 0.5)) <
        1e-12);
}

TEST_CASE("inox::GroupNorm: pullbacks against finite differences", "[layers][inox]") {
  lux::rng r(8);
  auto [ps, st] = lux::setup<double>(r, lux::inox::GroupNorm(2));
  const auto x3 = lux_test::random_tensor<double>(make_shape(6, 3, 2), 130, -2, 2);
  const auto x4 = lux_test::random_tensor<double>(make_shape(4, 2, 2, 2), 131, -2, 2);
  for (index_t G : {1, 2, 3}) {
    INFO("G = " << G);
    check_gradients(lux::inox::GroupNorm(G), x3, ps, st);
  }
  check_gradients(lux::inox::GroupNorm(2), x4, ps, st);
  check_gradients(lux::inox::GroupNorm(2), lux_test::random_tensor<double>(make_shape(4), 132), ps,
                  st);
}

// =================================================================================================
// float (looped) vs the generic kernels
// =================================================================================================

TEST_CASE("inox layers: float inputs run the looped kernels and match the generic ones",
          "[layers][inox]") {
  lux::rng r(9);
  const auto xf = lux_test::random_tensor<float>(make_shape(8, 6, 5), 140, -2, 3);

  lux::inox::BatchNorm bn(8);
  auto [psb, stb] = lux::setup<float>(r, bn);
  stb.get<"mean">() = lux_test::random_tensor<float>(make_shape(8), 141, -0.5, 0.5);
  stb.get<"var">() = lux_test::random_tensor<float>(make_shape(8), 142, 0.5, 1.5);
  for (bool training : {true, false}) {
    INFO("training " << training);
    auto s = lux::update_state(stb, "training", training);
    lux::kernel_trace trace;
    auto [y, s2] = lux::apply(bn, xf, psb, s);
    CHECK(trace.ran_mode("looped_op"));
    CHECK_FALSE(trace.ran_mode("generic_op"));
    auto g = lux::batchnorm(lux::generic_op{}, xf, lux::none, lux::none, as_view(stb.get<"mean">()),
                            as_view(stb.get<"var">()), training, lux::identity{}, 0.1f, 1e-5f,
                            lux::channel_dim{0}, lux::running_variance::biased);
    CHECK(lux_test::max_rel_err(y, g.y) < 1e-5);
    CHECK(lux_test::max_rel_err(s2.get<"mean">(), g.running_mean) < 1e-6);
    CHECK(lux_test::max_rel_err(s2.get<"var">(), g.running_var) < 1e-6);
    // Against the same computation in double.
    auto sd = lux::update_state(lux::setup<double>(r, bn).second, "training", training);
    sd.get<"mean">() = lux_test::to_double(stb.get<"mean">());
    sd.get<"var">() = lux_test::to_double(stb.get<"var">());
    CHECK(lux_test::max_rel_err(y, lux::apply(bn, lux_test::to_double(xf), psb, sd).first) < 1e-5);
  }

  lux::empty_tuple e;
  {
    lux::kernel_trace trace;
    auto y = lux::apply(lux::inox::LayerNorm(), xf, e, e).first;
    CHECK(trace.ran_mode("looped_op"));
    CHECK_FALSE(trace.ran_mode("generic_op"));
    auto g = lux::layernorm(lux::generic_op{}, xf, lux::none, lux::none, lux::identity{},
                            lux::dim_set{0}, 1e-5f);
    CHECK(lux_test::max_rel_err(y, g.y) < 1e-5);
  }
  {
    auto y = lux::apply(lux::inox::LayerNorm({-1, -3}), xf, e, e).first;
    auto g = lux::layernorm(lux::generic_op{}, xf, lux::none, lux::none, lux::identity{},
                            lux::dim_set{0, 2}, 1e-5f);
    CHECK(lux_test::max_rel_err(y, g.y) < 1e-5);
  }
  {
    lux::kernel_trace trace;
    auto y = lux::apply(lux::inox::GroupNorm(4), xf, e, e).first;
    CHECK(trace.ran_mode("looped_op"));
    CHECK_FALSE(trace.ran_mode("generic_op"));
    auto g = lux::groupnorm(lux::generic_op{}, xf.reshape(8, 30), lux::none, lux::none, 4,
                            lux::identity{}, 1e-5f);
    CHECK(lux_test::max_rel_err(y, g.y) < 1e-5);
  }
  // The float pullbacks against the double ones.
  const auto xd = lux_test::to_double(xf);
  const auto dyf = lux_test::random_tensor<float>(xf.shape(), 143);
  const auto dyd = lux_test::to_double(dyf);
  auto both = [&](const auto& layer, const auto& psf, const auto& stf, const auto& psd,
                  const auto& std_) {
    auto gf = lux::pullback(layer, xf, psf, stf).back(dyf).dx;
    auto gd = lux::pullback(layer, xd, psd, std_).back(dyd).dx;
    CHECK(lux_test::max_rel_err(gf, gd) < 1e-4);
  };
  auto std_ = lux::setup<double>(r, bn).second;
  std_.get<"mean">() = lux_test::to_double(stb.get<"mean">());
  std_.get<"var">() = lux_test::to_double(stb.get<"var">());
  both(bn, psb, stb, psb, std_);
  both(bn, psb, lux::testmode(stb), psb, lux::testmode(std_));
  both(lux::inox::LayerNorm({-1, -3}), e, e, e, e);
  both(lux::inox::GroupNorm(2), e, e, e, e);
}

// =================================================================================================
// PyTorch
// =================================================================================================

namespace {
/// y (1e-12) and dx (1e-10) of a pullback against <name>_y<suffix>, <name>_dx<suffix> for the
/// cotangent <name>_v<suffix>. Returns st2.
template <class L, std::size_t N, class ST>
ST check_fixture(const lux_test::fixture_file& f, const std::string& name,
                 const std::string& suffix, const L& layer, const Tensor<double, N>& x,
                 const ST& st) {
  INFO(name << suffix);
  auto [y, st2, back] = lux::pullback(layer, x, lux::empty_tuple{}, st);
  CHECK(lux_test::max_rel_err(y, f.tensor<double, N>(name + "_y" + suffix)) < 1e-12);
  auto g = back(f.tensor<double, N>(name + "_v" + suffix));
  CHECK(lux_test::max_rel_err(g.dx, f.tensor<double, N>(name + "_dx" + suffix)) < 1e-10);
  return st2;
}

template <std::size_t N>
void check_bn_fixture(const lux_test::fixture_file& f, const std::string& name) {
  auto x = f.tensor<double, N>(name + "_x");
  const index_t C = x.shape()[0];
  lux::inox::BatchNorm bn(C);
  lux::rng r(10);
  auto st = lux::setup<double>(r, bn).second;
  st.get<"mean">() = f.tensor<double, 1>(name + "_rm0");
  st.get<"var">() = f.tensor<double, 1>(name + "_rv0");
  const auto st2 = check_fixture(f, name, "", bn, x, st);
  CHECK(lux_test::max_rel_err(st2.template get<"mean">(), f.tensor<double, 1>(name + "_rm1")) <
        1e-12);
  CHECK(lux_test::max_rel_err(st2.template get<"var">(), f.tensor<double, 1>(name + "_rv1")) <
        1e-12);
  const auto st3 = check_fixture(f, name, "_eval", bn, x, lux::testmode(st2));
  CHECK(lux_test::max_rel_err(st3.template get<"var">(), st2.template get<"var">()) == 0.0);
}
}  // namespace

TEST_CASE("inox layers: PyTorch BatchNorm, LayerNorm and GroupNorm on channels-last data",
          "[layers][inox][fixture]") {
  lux_test::fixture_file f("inox.txt");
  check_bn_fixture<3>(f, "bn3");  // BatchNorm1d on inox (N, W, C) = luxcpp (C, W, N)
  check_bn_fixture<4>(f, "bn4");  // BatchNorm2d on inox (N, H, W, C) = luxcpp (C, W, H, N)
  lux::empty_tuple e;
  const auto x = f.tensor<double, 3>("ln_x");
  check_fixture(f, "ln1", "", lux::inox::LayerNorm(), x, e);
  check_fixture(f, "ln12", "", lux::inox::LayerNorm({-1, -2}), x, e);
  check_fixture(f, "ln13", "", lux::inox::LayerNorm({-1, -3}), f.tensor<double, 4>("ln13_x"), e);
  const auto xg = f.tensor<double, 3>("gn_x");
  check_fixture(f, "gn2", "", lux::inox::GroupNorm(2), xg, e);
  check_fixture(f, "gn3", "", lux::inox::GroupNorm(3), xg, e);
}

// =================================================================================================
// In a Chain; errors and printing
// =================================================================================================

TEST_CASE("inox layers in a Chain: states thread, testmode, gradients, error paths",
          "[layers][inox]") {
  lux::Chain model(lux::Dense({4, 6}), lux::inox::BatchNorm(6), lux::inox::GroupNorm(3),
                   lux::inox::LayerNorm());
  lux::rng r(11);
  auto [ps, st] = lux::setup<double>(r, model);
  CHECK(lux::parameterlength(ps) == 4 * 6 + 6);
  CHECK(lux::statelength(st) == 13);
  const auto x = lux_test::random_tensor<double>(make_shape(4, 5), 150);
  auto [y, st2] = lux::apply(model, x, ps, st);
  CHECK(lux_test::max_rel_err(st2.get<"layer_2">().get<"mean">(),
                              st.get<"layer_2">().get<"mean">()) > 0);
  auto stt = lux::testmode(st2);
  CHECK_FALSE(stt.get<"layer_2">().get<"training">());
  // BatchNorm in training mode removes the Dense bias (its gradient is 0): floor 1.
  const auto v = lux_test::random_tensor<double>(make_shape(6, 5), 151);
  lux_test::check_pullback(model, x, ps, st, v, {.tol = 1e-5, .floor = 1.0});
  lux_test::check_pullback(model, x, ps, stt, v, {.tol = 1e-5});
  CHECK_THAT(str(model), Catch::Contains("inox.BatchNorm(6, epsilon=1e-05, momentum=0.9)") &&
                             Catch::Contains("inox.GroupNorm(3, epsilon=1e-05)"));
  lux::Chain bad(lux::Dense({4, 6}), lux::inox::GroupNorm(4));
  auto [pb, sb] = lux::setup<double>(r, bad);
  CHECK_THROWS_WITH(lux::apply(bad, x, pb, sb),
                    "layer_2 (inox.GroupNorm 4): the number of channels 6 (x's dimension 0) is "
                    "not divisible by groups = 4, got x (6, 5)");
}

TEST_CASE("inox layers: errors name the layer", "[layers][inox]") {
  // Constructors: argument_error.
  CHECK_THROWS_AS(lux::inox::BatchNorm(0), lux::argument_error);
  CHECK_THROWS_WITH(lux::inox::BatchNorm(-2), "inox.BatchNorm: channels must be positive, got -2");
  CHECK_THROWS_AS(lux::inox::BatchNorm(4, -1e-3), lux::argument_error);
  CHECK_THROWS_WITH(lux::inox::BatchNorm(4, -1.0),
                    "inox.BatchNorm: epsilon must be finite and >= 0, got -1");
  CHECK_THROWS_AS(lux::inox::BatchNorm(4, std::numeric_limits<double>::infinity()),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::inox::BatchNorm(4, std::nan("")), lux::argument_error);
  CHECK_THROWS_WITH(lux::inox::BatchNorm(4, 1e-5, 1.5),
                    "inox.BatchNorm: momentum must be in [0, 1], got 1.5");
  CHECK_THROWS_AS(lux::inox::BatchNorm(4, 1e-5, -0.1), lux::argument_error);
  CHECK_THROWS_AS(lux::inox::BatchNorm(4, 1e-5, std::nan("")), lux::argument_error);
  CHECK_NOTHROW(lux::inox::BatchNorm(4, 0.0, 0.0));
  CHECK_NOTHROW(lux::inox::BatchNorm(4, 0.0, 1.0));
  CHECK_THROWS_AS(lux::inox::GroupNorm(0), lux::argument_error);
  CHECK_THROWS_WITH(lux::inox::GroupNorm(-1), "inox.GroupNorm: groups must be positive, got -1");
  CHECK_THROWS_WITH(lux::inox::GroupNorm(2, -1.0),
                    "inox.GroupNorm: epsilon must be finite and >= 0, got -1");
  CHECK_THROWS_WITH(lux::inox::LayerNorm(-1, -1.0),
                    "inox.LayerNorm: epsilon must be finite and >= 0, got -1");
  CHECK_THROWS_AS(lux::inox::LayerNorm(std::initializer_list<index_t>{}), lux::argument_error);
  CHECK_THROWS_WITH(lux::inox::LayerNorm({0, 1, 2, 3, 4, 5, 6, 7, 8}),
                    "inox.LayerNorm: needs between 1 and 8 axes, got 9");

  // BatchNorm: the channel dimension (0) must hold C.
  lux::inox::BatchNorm bn(16);
  lux::rng r(12);
  auto [ps, st] = lux::setup<double>(r, bn);
  CHECK_THROWS_AS(lux::apply(bn, Tensor<double, 3>(make_shape(8, 4, 2)), ps, st), lux::shape_error);
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 3>(make_shape(8, 4, 2)), ps, st),
                    "inox.BatchNorm 16: expected input (16, ..., N), got (8, 4, 2)");
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(4, 16)), ps, st),
                    "inox.BatchNorm 16: expected input (16, N), got (4, 16)");
  CHECK_THROWS_WITH(lux::outputsize(bn, make_shape(2, 16, 16)),
                    "inox.BatchNorm 16: expected input (16, ..., N), got (2, 16, 16)");
  CHECK_THROWS_WITH(lux::pullback(bn, Tensor<double, 2>(make_shape(8, 2)), ps, st),
                    "inox.BatchNorm 16: expected input (16, N), got (8, 2)");
  auto bad_st = st;
  bad_st.get<"var">() = Tensor<double, 1>(make_shape(8), 1.0);
  CHECK_THROWS_AS(lux::apply(bn, Tensor<double, 2>(make_shape(16, 2)), ps, bad_st),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(16, 2)), ps, bad_st),
                    "inox.BatchNorm 16: state var has shape (8), expected (16)");
  auto [yb, sb, back] = lux::pullback(bn, Tensor<double, 2>(make_shape(16, 2)), ps, st);
  CHECK_THROWS_WITH(back(Tensor<double, 2>(make_shape(16, 3))),
                    "inox.BatchNorm 16: the output gradient has shape (16, 3), expected (16, 2)");

  // GroupNorm: C % G.
  lux::empty_tuple e;
  lux::inox::GroupNorm gn(4);
  CHECK_THROWS_AS(lux::apply(gn, Tensor<double, 2>(make_shape(6, 5)), e, e), lux::shape_error);
  CHECK_THROWS_WITH(lux::apply(gn, Tensor<double, 2>(make_shape(6, 5)), e, e),
                    "inox.GroupNorm 4: the number of channels 6 (x's dimension 0) is not "
                    "divisible by groups = 4, got x (6, 5)");
  CHECK_THROWS_WITH(lux::outputsize(gn, make_shape(2, 4, 3)),
                    Catch::StartsWith("inox.GroupNorm 4: the number of channels 2"));
  CHECK_THROWS_AS(lux::pullback(gn, Tensor<double, 1>(make_shape(3)), e, e), lux::shape_error);
  auto [yg, sg, backg] = lux::pullback(gn, Tensor<double, 2>(make_shape(4, 2), 1.0), e, e);
  CHECK_THROWS_WITH(backg(Tensor<double, 2>(make_shape(2, 4))),
                    "inox.GroupNorm 4: the output gradient has shape (2, 4), expected (4, 2)");

  // LayerNorm: axes out of range or naming one dimension twice, for the input's rank.
  const Tensor<double, 3> x3(make_shape(4, 5, 6));
  CHECK_THROWS_AS(lux::apply(lux::inox::LayerNorm({-1, 3}), x3, e, e), lux::argument_error);
  CHECK_THROWS_WITH(lux::apply(lux::inox::LayerNorm({-1, 3}), x3, e, e),
                    "inox.LayerNorm axis=(-1, 3): axis 3 is out of range for an input of rank 3 "
                    "(x (4, 5, 6); axes must be in [-3, 2])");
  CHECK_THROWS_WITH(lux::apply(lux::inox::LayerNorm(-4), x3, e, e),
                    Catch::StartsWith("inox.LayerNorm axis=-4: axis -4 is out of range"));
  CHECK_THROWS_AS(lux::apply(lux::inox::LayerNorm({-1, 2}), x3, e, e), lux::argument_error);
  CHECK_THROWS_WITH(lux::apply(lux::inox::LayerNorm({-1, 2}), x3, e, e),
                    "inox.LayerNorm axis=(-1, 2): axes -1 and 2 name the same dimension 0 of x "
                    "(4, 5, 6)");
  CHECK_THROWS_WITH(lux::apply(lux::inox::LayerNorm({0, 0}), x3, e, e),
                    Catch::Contains("axes 0 and 0 name the same dimension 2"));
  CHECK_THROWS_AS(lux::outputsize(lux::inox::LayerNorm(2), make_shape(3, 3)), lux::argument_error);
  CHECK_THROWS_AS(
      lux::pullback(lux::inox::LayerNorm({1, -1}), Tensor<double, 2>(make_shape(2, 2)), e, e),
      lux::argument_error);
  // The axes are resolved for each input's rank: -4 is out of range for rank 3, the batch
  // (luxcpp dimension 3) for rank 4; 3 is the channels (dimension 0) for rank 4, so {-1, 3}
  // names dimension 0 twice.
  CHECK_THROWS_AS(lux::apply(lux::inox::LayerNorm({-1, -4}), x3, e, e), lux::argument_error);
  CHECK_NOTHROW(lux::outputsize(lux::inox::LayerNorm({-1, -4}), make_shape(2, 3, 4, 5)));
  CHECK_THROWS_WITH(lux::outputsize(lux::inox::LayerNorm({-1, 3}), make_shape(2, 3, 4, 5)),
                    "inox.LayerNorm axis=(-1, 3): axes -1 and 3 name the same dimension 0 of x "
                    "(2, 3, 4, 5)");
}

TEST_CASE("inox layers: printing", "[layers][inox]") {
  CHECK(str(lux::inox::BatchNorm(16)) == "inox.BatchNorm(16, epsilon=1e-05, momentum=0.9)");
  CHECK(str(lux::inox::BatchNorm(8, 1e-3, 0.99)) ==
        "inox.BatchNorm(8, epsilon=0.001, momentum=0.99)");
  CHECK(str(lux::inox::LayerNorm()) == "inox.LayerNorm(axis=-1, epsilon=1e-05)");
  CHECK(str(lux::inox::LayerNorm(0, 1e-6)) == "inox.LayerNorm(axis=0, epsilon=1e-06)");
  CHECK(str(lux::inox::LayerNorm({-1, -2})) == "inox.LayerNorm(axis=(-1, -2), epsilon=1e-05)");
  CHECK(str(lux::inox::LayerNorm({-1})) == "inox.LayerNorm(axis=(-1,), epsilon=1e-05)");
  CHECK(str(lux::inox::GroupNorm(4)) == "inox.GroupNorm(4, epsilon=1e-05)");
  CHECK(lux::to_string(lux::inox::GroupNorm(2, 0.5)) == "inox.GroupNorm(2, epsilon=0.5)");
}
