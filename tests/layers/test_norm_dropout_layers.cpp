// Dropout, AlphaDropout, VariationalHiddenDropout, BatchNorm, GroupNorm, InstanceNorm, LayerNorm
// and WeightNorm layers: Lux's parameter/state counts and names, forward against naive float64
// references and PyTorch fixtures (tests/fixtures/layers_norm.txt), pullbacks against central
// finite differences for x and every parameter leaf, states (rng, masks, running statistics,
// testmode/trainmode), error messages and printing.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/dropout.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/layers/weightnorm.hpp>
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

template <class L>
std::string str(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

/// Pullback vs central finite differences for x and for every parameter leaf (by path); floor
/// bounds the parameter leaves' error scale from below.
template <class L, std::size_t N, class PS, class ST>
std::vector<std::string> check_gradients(const L& layer, const Tensor<double, N>& x, const PS& ps,
                                         const ST& st, double tol = 1e-6, double floor = 1e-30) {
  const auto v = lux_test::random_tensor<double>(lux::outputsize(layer, x.shape()), 77);
  return lux_test::check_pullback(layer, x, ps, st, v, {.tol = tol, .floor = floor});
}

/// Pullback against a PyTorch fixture: y (1e-12), dx, dscale and dbias (1e-10) read as
/// <name>_y, <name>_dx, <name>_dscale, <name>_dbias (rank P) for the cotangent <name>_v.
/// Returns st2.
template <std::size_t P, class L, std::size_t N, class PS, class ST>
ST check_fixture(const lux_test::fixture_file& f, const std::string& name, const L& layer,
                 const Tensor<double, N>& x, const PS& ps, const ST& st) {
  INFO(name);
  auto [y, st2, back] = lux::pullback(layer, x, ps, st);
  CHECK(lux_test::max_rel_err(y, f.tensor<double, N>(name + "_y")) < 1e-12);
  auto g = back(f.tensor<double, N>(name + "_v"));
  CHECK(lux_test::max_rel_err(g.dx, f.tensor<double, N>(name + "_dx")) < 1e-10);
  CHECK(lux_test::max_rel_err(g.dps.template get<"scale">(),
                              f.tensor<double, P>(name + "_dscale")) < 1e-10);
  CHECK(lux_test::max_rel_err(g.dps.template get<"bias">(), f.tensor<double, P>(name + "_dbias")) <
        1e-10);
  return st2;
}

/// Naive float64 normalization: groups given by group_of(i), per-channel affine by chan_of(i).
template <std::size_t N, class G, class C, class F>
Tensor<double, N> naive_norm(const Tensor<double, N>& x, index_t ngroups, G group_of, C chan_of,
                             const double* scale, const double* bias, double eps, F act,
                             std::vector<double>* mean_out = nullptr,
                             std::vector<double>* var_out = nullptr,
                             std::vector<double>* count_out = nullptr) {
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
    const index_t g = group_of(i), c = chan_of(i);
    double z = (x.data()[i] - mean[g]) / std::sqrt(var[g] + eps);
    if (scale) z *= scale[c];
    if (bias) z += bias[c];
    y.data()[i] = act(z);
  }
  if (mean_out) *mean_out = mean;
  if (var_out) *var_out = var;
  if (count_out) *count_out = cnt;
  return y;
}

/// Naive normalization with given per-channel statistics (test mode with running stats).
template <std::size_t N, class C, class F>
Tensor<double, N> naive_with_stats(const Tensor<double, N>& x, C chan_of, const double* mean,
                                   const double* var, const double* scale, const double* bias,
                                   double eps, F act) {
  Tensor<double, N> y(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) {
    const index_t c = chan_of(i);
    double z = (x.data()[i] - mean[c]) / std::sqrt(var[c] + eps);
    if (scale) z *= scale[c];
    if (bias) z += bias[c];
    y.data()[i] = act(z);
  }
  return y;
}

const auto ident = [](double z) { return z; };
const auto relu_fn = [](double z) { return z < 0 ? 0.0 : z; };
const auto tanh_fn = [](double z) { return std::tanh(z); };

}  // namespace

// =================================================================================================
// Dropout
// =================================================================================================

TEST_CASE("Dropout: states, fresh masks, rng threading, testmode and p = 0", "[layers][dropout]") {
  lux::rng r(11);
  lux::Dropout d(0.5);
  auto [ps, st] = lux::setup<double>(r, d);
  CHECK(lux::parameterlength(d) == 0);
  CHECK(lux::statelength(d) == 2);
  static_assert(decltype(st)::names[0] == "rng" && decltype(st)::names[1] == "training");
  CHECK(st.get<"training">());
  auto x = lux_test::random_tensor<double>(make_shape(6, 5), 1, 0.5, 1.5);
  auto [y, st2] = lux::apply(d, x, ps, st);
  CHECK(st2.get<"rng">() == st.get<"rng">().advanced(1));
  index_t zeros = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    const double ratio = y.data()[i] / x.data()[i];
    CHECK((ratio == 0.0 || ratio == Approx(2.0)));
    zeros += ratio == 0.0;
  }
  CHECK(zeros > 3);
  CHECK(zeros < 27);
  // Same state, same mask; the returned state gives a fresh one.
  auto [ya, sta] = lux::apply(d, x, ps, st);
  CHECK(lux_test::max_rel_err(ya, y) == 0.0);
  auto [yb, stb] = lux::apply(d, x, ps, st2);
  CHECK(lux_test::max_rel_err(yb, y) > 0.0);
  // testmode: identity, rng untouched; trainmode flips back.
  auto st_test = lux::testmode(st);
  CHECK_FALSE(st_test.get<"training">());
  auto [yt, stt] = lux::apply(d, x, ps, st_test);
  CHECK(lux_test::max_rel_err(yt, x) == 0.0);
  CHECK(stt.get<"rng">() == st.get<"rng">());
  CHECK(lux::trainmode(st_test).get<"training">());
  // p = 0: Lux's NoOpLayer — identity, no rng consumed.
  lux::Dropout d0(0.0);
  auto [y0, s0] = lux::apply(d0, x, ps, st);
  CHECK(lux_test::max_rel_err(y0, x) == 0.0);
  CHECK(s0.get<"rng">() == st.get<"rng">());
  // Float run.
  auto xf = lux_test::random_tensor<float>(make_shape(4, 3), 2, 0.5, 1.5);
  auto [psf, stf] = lux::setup<float>(r, d);
  auto [yf, stf2] = lux::apply(d, xf, psf, stf);
  for (index_t i = 0; i < xf.numel(); ++i)
    CHECK((yf.data()[i] == 0.0f || yf.data()[i] == 2.0f * xf.data()[i]));
  CHECK(lux::outputsize(d, make_shape(6, 5)) == make_shape(6, 5));
}

TEST_CASE("Dropout: dims share the mask, pullback is dy times mask, errors, printing",
          "[layers][dropout]") {
  lux::rng r(12);
  lux::Dropout d(0.4, {.dims = 1});  // Julia dims = 2 on (4, 6, 3): one value per column
  auto [ps, st] = lux::setup<double>(r, d);
  auto x = lux_test::random_tensor<double>(make_shape(4, 6, 3), 3, 0.5, 1.5);
  auto [y, st2] = lux::apply(d, x, ps, st);
  for (index_t j = 0; j < 6; ++j) {
    const double m = y(0, j, 0) / x(0, j, 0);
    for (index_t i = 0; i < 4; ++i)
      for (index_t k = 0; k < 3; ++k) CHECK(y(i, j, k) / x(i, j, k) == Approx(m));
  }
  auto checked = check_gradients(d, x, ps, st);
  CHECK(checked.empty());
  auto [yp, sp, back] = lux::pullback(d, x, ps, st);
  auto dy = lux_test::random_tensor<double>(x.shape(), 4);
  auto g = back(dy);
  for (index_t i = 0; i < x.numel(); ++i)
    CHECK(g.dx.data()[i] == Approx(dy.data()[i] * yp.data()[i] / x.data()[i]));
  CHECK_THROWS_WITH(back(Tensor<double, 3>(make_shape(4, 6, 2))),
                    "Dropout 0.4: the output gradient has shape (4, 6, 2), expected (4, 6, 3)");
  // test mode pullback: identity
  auto [yt, stt, backt] = lux::pullback(d, x, ps, lux::testmode(st));
  CHECK(lux_test::max_rel_err(backt(dy).dx, dy) == 0.0);

  CHECK_THROWS_AS(lux::Dropout(1.5), lux::argument_error);
  CHECK_THROWS_WITH(lux::Dropout(-0.1), "Dropout: p must be in [0, 1], got -0.1");
  lux::Dropout bad(0.5, {.dims = 3});
  CHECK_THROWS_WITH(lux::apply(bad, Tensor<double, 2>(make_shape(2, 2)), ps, st),
                    "Dropout 0.5: dims contains 3, but x has rank 2 (dims are 0-based)");
  CHECK(str(lux::Dropout(0.5)) == "Dropout(0.5)");
  CHECK(str(lux::Dropout(0.5, {.dims = 2})) == "Dropout(0.5, dims=3)");
  CHECK(str(lux::Dropout(0.25, {.dims = {2, 3}})) == "Dropout(0.25, dims=(3, 4))");
}

TEST_CASE("AlphaDropout: values, state, pullback, p = 1, printing", "[layers][dropout]") {
  lux::rng r(13);
  lux::AlphaDropout d(0.3);
  auto [ps, st] = lux::setup<double>(r, d);
  CHECK(lux::statelength(d) == 2);
  CHECK(lux::parameterlength(d) == 0);
  auto x = lux_test::random_tensor<double>(make_shape(5, 8), 5);
  auto [y, st2] = lux::apply(d, x, ps, st);
  CHECK(st2.get<"rng">() == st.get<"rng">().advanced(1));
  const auto c = lux::make_alpha_dropout_constants(0.3);
  index_t dropped = 0;
  for (index_t i = 0; i < x.numel(); ++i) {
    const bool kept = std::abs(y.data()[i] - (c.A * x.data()[i] + c.B)) < 1e-12;
    const bool drop = std::abs(y.data()[i] - (c.A * c.alpha + c.B)) < 1e-12;
    CHECK((kept || drop));
    dropped += drop && !kept;
  }
  CHECK(dropped > 2);
  check_gradients(d, x, ps, st);
  auto [yt, stt] = lux::apply(d, x, ps, lux::testmode(st));
  CHECK(lux_test::max_rel_err(yt, x) == 0.0);
  lux::AlphaDropout one(1.0);
  auto [y1, s1] = lux::apply(one, x, ps, st);
  for (index_t i = 0; i < x.numel(); ++i) CHECK(y1.data()[i] == 0.0);
  lux::AlphaDropout zero(0.0);
  auto [y0, s0] = lux::apply(zero, x, ps, st);
  CHECK(lux_test::max_rel_err(y0, x) == 0.0);
  CHECK(s0.get<"rng">() == st.get<"rng">());
  CHECK(str(d) == "AlphaDropout(0.3)");
  CHECK_THROWS_WITH(lux::AlphaDropout(2.0), "AlphaDropout: p must be in [0, 1], got 2");
}

TEST_CASE("VariationalHiddenDropout: the mask is kept until update_mask", "[layers][dropout]") {
  lux::rng r(14);
  lux::VariationalHiddenDropout<2> d(0.5);
  auto [ps, st] = lux::setup<double>(r, d);
  CHECK(lux::statelength(d) == 3);  // rng, training, update_mask (the mask starts empty)
  static_assert(decltype(st)::names[2] == "update_mask" && decltype(st)::names[3] == "mask");
  CHECK(st.get<"update_mask">());
  auto x = lux_test::random_tensor<double>(make_shape(6, 4), 6, 0.5, 1.5);
  auto [y1, st1] = lux::apply(d, x, ps, st);
  CHECK_FALSE(st1.get<"update_mask">());
  CHECK(st1.get<"mask">().shape() == x.shape());
  CHECK(st1.get<"rng">() == st.get<"rng">().advanced(1));
  // Reused: same output, rng untouched, even for a different x of the same shape.
  auto [y2, st2] = lux::apply(d, x, ps, st1);
  CHECK(lux_test::max_rel_err(y2, y1) == 0.0);
  CHECK(st2.get<"rng">() == st1.get<"rng">());
  auto x2 = lux_test::random_tensor<double>(make_shape(6, 4), 7, 0.5, 1.5);
  auto [y3, st3] = lux::apply(d, x2, ps, st1);
  for (index_t i = 0; i < x.numel(); ++i)
    CHECK(y3.data()[i] / x2.data()[i] == Approx(y1.data()[i] / x.data()[i]));
  // update_state draws a new mask.
  auto st4 = lux::update_state(st2, "update_mask", true);
  auto [y4, st5] = lux::apply(d, x, ps, st4);
  CHECK(lux_test::max_rel_err(y4, y1) > 0.0);
  CHECK(st5.get<"rng">() == st4.get<"rng">().advanced(1));
  // A stored mask of the wrong shape.
  CHECK_THROWS_WITH(lux::apply(d, Tensor<double, 2>(make_shape(6, 3)), ps, st1),
                    "VariationalHiddenDropout 0.5: the stored mask has shape (6, 4), expected "
                    "(6, 3) for x (6, 3) (set update_mask to true to draw a new one)");
  // Test mode: identity, state unchanged.
  auto [yt, stt] = lux::apply(d, x, ps, lux::testmode(st));
  CHECK(lux_test::max_rel_err(yt, x) == 0.0);
  CHECK(stt.get<"update_mask">());
  CHECK(stt.get<"mask">().numel() == 0);
  // Pullbacks: with the stored mask and with a fresh one.
  check_gradients(d, x, ps, st1);
  auto [yp, sp, back] = lux::pullback(d, x, ps, st);
  auto dy = lux_test::random_tensor<double>(x.shape(), 8);
  auto g = back(dy);
  for (index_t i = 0; i < x.numel(); ++i)
    CHECK(g.dx.data()[i] == Approx(dy.data()[i] * sp.get<"mask">().data()[i]));
  CHECK(str(d) == "VariationalHiddenDropout(0.5)");
  CHECK(str(lux::VariationalHiddenDropout<3>(0.1, {.dims = 2})) ==
        "VariationalHiddenDropout(0.1, dims=3)");
}

// =================================================================================================
// BatchNorm
// =================================================================================================

TEST_CASE("BatchNorm: Lux's counts, names and its normalize_tests case", "[layers][batchnorm]") {
  CHECK(lux::parameterlength(lux::BatchNorm(16)) == 32);
  CHECK(lux::statelength(lux::BatchNorm(16)) == 33);
  CHECK(lux::parameterlength(lux::BatchNorm<lux::identity, false, false>(16)) == 0);
  CHECK(lux::statelength(lux::BatchNorm<lux::identity, false, false>(16)) == 1);
  CHECK(lux::statelength(lux::BatchNorm<lux::identity, true, false>(16)) == 1);
  lux::rng r(21);
  lux::BatchNorm bn(2);
  auto [ps, st] = lux::setup<float>(r, bn);
  static_assert(decltype(ps)::names[0] == "scale" && decltype(ps)::names[1] == "bias");
  static_assert(decltype(st)::names[0] == "running_mean" &&
                decltype(st)::names[1] == "running_var" && decltype(st)::names[2] == "training");
  CHECK(st.get<"running_var">()[1] == 1.0f);
  // Lux: BatchNorm(2) on [1 3 5; 2 4 6].
  Tensor<float, 2> x(make_shape(2, 3), {1, 2, 3, 4, 5, 6});
  auto [y, st2] = lux::apply(bn, x, ps, st);
  for (index_t c = 0; c < 2; ++c) {
    CHECK(y(c, 0) == Approx(-1.22474).margin(1e-4));
    CHECK(y(c, 1) == Approx(0.0).margin(1e-5));
    CHECK(y(c, 2) == Approx(1.22474).margin(1e-4));
  }
  CHECK(st2.get<"running_mean">()[0] == Approx(0.3));
  CHECK(st2.get<"running_mean">()[1] == Approx(0.4));
  CHECK(st2.get<"running_var">()[0] == Approx(1.3));
  CHECK(st2.get<"running_var">()[1] == Approx(1.3));
  auto [yt, stt] = lux::apply(bn, x, ps, lux::testmode(st2));
  CHECK(yt(0, 0) == Approx((1 - 0.3) / std::sqrt(1.3 + 1e-5)));
  CHECK(lux_test::max_rel_err(stt.get<"running_mean">(), st2.get<"running_mean">()) == 0.0);
  CHECK(lux::outputsize(bn, make_shape(2, 7)) == make_shape(2, 7));
}

TEST_CASE("BatchNorm: naive reference, running statistics, finite differences",
          "[layers][batchnorm]") {
  lux::rng r(22);
  lux::BatchNorm bn(3, lux::relu{}, {.momentum = 0.2});
  auto [ps, st] = lux::setup<double>(r, bn);
  ps.get<"scale">() = lux_test::random_tensor<double>(make_shape(3), 30, 0.5, 1.5);
  ps.get<"bias">() = lux_test::random_tensor<double>(make_shape(3), 31);
  st.get<"running_mean">() = lux_test::random_tensor<double>(make_shape(3), 32);
  st.get<"running_var">() = lux_test::random_tensor<double>(make_shape(3), 33, 0.5, 1.5);
  auto x = lux_test::random_tensor<double>(make_shape(4, 2, 3, 5), 34, -2, 2);
  const index_t S = 8, C = 3;
  auto chan = [&](index_t i) { return (i / S) % C; };
  std::vector<double> mean, var, cnt;
  auto ref = naive_norm(x, C, chan, chan, ps.get<"scale">().data(), ps.get<"bias">().data(), 1e-5,
                        relu_fn, &mean, &var, &cnt);
  auto [y, st2] = lux::apply(bn, x, ps, st);
  CHECK(lux_test::max_rel_err(y, ref) < 1e-12);
  for (index_t c = 0; c < C; ++c) {
    const double n = cnt[c];
    CHECK(st2.get<"running_mean">()[c] ==
          Approx(0.8 * st.get<"running_mean">()[c] + 0.2 * mean[c]).epsilon(1e-12));
    CHECK(st2.get<"running_var">()[c] ==
          Approx(0.8 * st.get<"running_var">()[c] + 0.2 * var[c] * n / (n - 1)).epsilon(1e-12));
  }
  // Test mode: running statistics.
  auto st_t = lux::testmode(st);
  auto ref_t =
      naive_with_stats(x, chan, st.get<"running_mean">().data(), st.get<"running_var">().data(),
                       ps.get<"scale">().data(), ps.get<"bias">().data(), 1e-5, relu_fn);
  auto [yt, stt] = lux::apply(bn, x, ps, st_t);
  CHECK(lux_test::max_rel_err(yt, ref_t) < 1e-12);
  // Pullbacks (tanh: smooth; its derivative reads the output) in both modes.
  lux::BatchNorm bnt(3, lux::tanh_{});
  auto names = check_gradients(bnt, x, ps, st, 1e-5);
  CHECK(names == std::vector<std::string>{"scale", "bias"});
  check_gradients(bnt, x, ps, st_t, 1e-5);
  // No affine, no running statistics: batch statistics in both modes.
  lux::BatchNorm<lux::identity, false, false> plain(3);
  auto [ps0, st0] = lux::setup<double>(r, plain);
  auto ref0 = naive_norm(x, C, chan, chan, nullptr, nullptr, 1e-5, ident);
  CHECK(lux_test::max_rel_err(lux::apply(plain, x, ps0, st0).first, ref0) < 1e-12);
  CHECK(lux_test::max_rel_err(lux::apply(plain, x, ps0, lux::testmode(st0)).first, ref0) < 1e-12);
  check_gradients(plain, x, ps0, st0, 1e-5);
  // Float run against the double reference.
  auto [psf, stf] = lux::setup<float>(r, bn);
  auto xf = lux_test::random_tensor<float>(make_shape(4, 2, 3, 5), 34, -2, 2);
  auto reff = naive_norm(lux_test::to_double(xf), C, chan, chan, nullptr, nullptr, 1e-5, relu_fn);
  CHECK(lux_test::max_rel_err(lux::apply(bn, xf, psf, stf).first, reff) < 1e-5);
}

TEST_CASE("BatchNorm: PyTorch BatchNorm2d train step and eval", "[layers][batchnorm][fixture]") {
  lux_test::fixture_file f("layers_norm.txt");
  lux::BatchNorm bn(3);
  lux::rng r(23);
  auto [ps, st] = lux::setup<double>(r, bn);
  ps.get<"scale">() = f.tensor<double, 1>("bn_scale");
  ps.get<"bias">() = f.tensor<double, 1>("bn_bias");
  st.get<"running_mean">() = f.tensor<double, 1>("bn_rm0");
  st.get<"running_var">() = f.tensor<double, 1>("bn_rv0");
  auto x = f.tensor<double, 4>("bn_x");
  auto st2 = check_fixture<1>(f, "bn_train", bn, x, ps, st);
  CHECK(lux_test::max_rel_err(st2.get<"running_mean">(), f.tensor<double, 1>("bn_rm1")) < 1e-12);
  CHECK(lux_test::max_rel_err(st2.get<"running_var">(), f.tensor<double, 1>("bn_rv1")) < 1e-12);
  check_fixture<1>(f, "bn_eval", bn, x, ps, lux::testmode(st2));
}

TEST_CASE("BatchNorm: errors and printing", "[layers][batchnorm]") {
  lux::rng r(24);
  lux::BatchNorm bn(16);
  auto [ps, st] = lux::setup<double>(r, bn);
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 4>(make_shape(4, 4, 8, 2)), ps, st),
                    "BatchNorm 16: expected input (..., 16, B), got (4, 4, 8, 2)");
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(8, 2)), ps, st),
                    "BatchNorm 16: expected input (16, B), got (8, 2)");
  CHECK_THROWS_WITH(lux::outputsize(bn, make_shape(3, 8, 2)),
                    "BatchNorm 16: expected input (..., 16, B), got (3, 8, 2)");
  auto bad_ps = ps;
  bad_ps.get<"scale">() = Tensor<double, 1>(make_shape(8));
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(16, 2)), bad_ps, st),
                    "BatchNorm 16: parameter scale has shape (8), expected (16)");
  auto bad_st = st;
  bad_st.get<"running_var">() = Tensor<double, 1>(make_shape(8));
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(16, 2)), ps, bad_st),
                    "BatchNorm 16: state running_var has shape (8), expected (16)");
  // Batch of one in training with running statistics: n/(n-1) is undefined (Lux asserts B != 1).
  CHECK_THROWS_WITH(lux::apply(bn, Tensor<double, 2>(make_shape(16, 1)), ps, st),
                    "BatchNorm 16: updating the running variance with n/(n - 1) needs more than "
                    "one value per channel in training mode (Lux asserts a batch size > 1), got "
                    "(16, 1)");
  CHECK_NOTHROW(lux::apply(bn, Tensor<double, 2>(make_shape(16, 1)), ps, lux::testmode(st)));
  CHECK_THROWS_AS(lux::BatchNorm(0), lux::argument_error);
  CHECK_THROWS_WITH(lux::BatchNorm(4, lux::identity{}, {.momentum = 2.0}),
                    "BatchNorm: momentum must be in [0, 1], got 2");
  CHECK(str(bn) == "BatchNorm(16, affine=true, track_stats=true)");
  CHECK(str(lux::BatchNorm(16, lux::relu{})) ==
        "BatchNorm(16, relu, affine=true, track_stats=true)");
  CHECK(str(lux::BatchNorm<lux::identity, false, false>(4)) ==
        "BatchNorm(4, affine=false, track_stats=false)");
}

// =================================================================================================
// GroupNorm, InstanceNorm
// =================================================================================================

TEST_CASE("GroupNorm: counts, naive reference, finite differences, PyTorch, errors",
          "[layers][groupnorm]") {
  lux::GroupNorm gn(6, 2);
  CHECK(lux::parameterlength(gn) == 12);
  CHECK(lux::statelength(gn) == 1);  // the document's `training`
  lux::rng r(31);
  auto [ps, st] = lux::setup<double>(r, gn);
  ps.get<"scale">() = lux_test::random_tensor<double>(make_shape(6), 40, 0.5, 1.5);
  ps.get<"bias">() = lux_test::random_tensor<double>(make_shape(6), 41);
  auto x = lux_test::random_tensor<double>(make_shape(3, 2, 6, 4), 42, -2, 2);
  const index_t S = 6, C = 6, G = 2;
  auto chan = [&](index_t i) { return (i / S) % C; };
  auto grp = [&](index_t i) { return chan(i) / (C / G) + G * (i / (S * C)); };
  lux::GroupNorm gns(6, 2, lux::sigmoid{});
  auto ref = naive_norm(x, G * 4, grp, chan, ps.get<"scale">().data(), ps.get<"bias">().data(),
                        1e-5, [](double z) { return 1 / (1 + std::exp(-z)); });
  CHECK(lux_test::max_rel_err(lux::apply(gns, x, ps, st).first, ref) < 1e-12);
  CHECK(lux_test::max_rel_err(lux::apply(gns, x, ps, lux::testmode(st)).first, ref) < 1e-12);
  CHECK(check_gradients(gns, x, ps, st, 1e-5) == std::vector<std::string>{"scale", "bias"});

  lux_test::fixture_file f("layers_norm.txt");
  ps.get<"scale">() = f.tensor<double, 1>("gn_scale");
  ps.get<"bias">() = f.tensor<double, 1>("gn_bias");
  auto xf = f.tensor<double, 4>("gn_x");
  check_fixture<1>(f, "gn", gn, xf, ps, st);

  CHECK_THROWS_WITH(lux::GroupNorm(6, 4),
                    "GroupNorm: the number of channels 6 is not divisible by groups = 4");
  CHECK_THROWS_WITH(lux::apply(gn, Tensor<double, 3>(make_shape(2, 4, 2)), ps, st),
                    "GroupNorm 6, 2: expected input (..., 6, B), got (2, 4, 2)");
  auto bad = ps;
  bad.get<"bias">() = Tensor<double, 1>(make_shape(3));
  CHECK_THROWS_WITH(lux::apply(gn, xf, bad, st),
                    "GroupNorm 6, 2: parameter bias has shape (3), expected (6)");
  CHECK(str(gn) == "GroupNorm(6, 2, affine=true)");
  CHECK(str(gns) == "GroupNorm(6, 2, sigmoid, affine=true)");
  lux::GroupNorm<lux::identity, false> gn0(4, 4);
  CHECK(lux::parameterlength(gn0) == 0);
  auto [p0, s0] = lux::setup<double>(r, gn0);
  check_gradients(gn0, lux_test::random_tensor<double>(make_shape(3, 4, 2), 43), p0, s0, 1e-5);
}

TEST_CASE("InstanceNorm: counts, reference, running statistics, PyTorch, errors",
          "[layers][instancenorm]") {
  lux::InstanceNorm in(3);
  CHECK(lux::parameterlength(in) == 6);
  CHECK(lux::statelength(in) == 1);
  lux::InstanceNorm<lux::identity, true, true> ints(3);
  CHECK(lux::statelength(ints) == 7);
  CHECK(lux::parameterlength(lux::InstanceNorm<lux::identity, false>(3)) == 0);
  lux::rng r(41);
  auto [ps, st] = lux::setup<double>(r, in);
  ps.get<"scale">() = lux_test::random_tensor<double>(make_shape(3), 50, 0.5, 1.5);
  ps.get<"bias">() = lux_test::random_tensor<double>(make_shape(3), 51);
  auto x = lux_test::random_tensor<double>(make_shape(4, 3, 3, 2), 52, -2, 2);
  const index_t S = 12, C = 3;
  auto chan = [&](index_t i) { return (i / S) % C; };
  auto inst = [&](index_t i) { return i / S; };  // c + C b
  std::vector<double> mean, var;
  auto ref = naive_norm(x, C * 2, inst, chan, ps.get<"scale">().data(), ps.get<"bias">().data(),
                        1e-5, ident, &mean, &var);
  CHECK(lux_test::max_rel_err(lux::apply(in, x, ps, st).first, ref) < 1e-12);
  CHECK(lux_test::max_rel_err(lux::apply(in, x, ps, lux::testmode(st)).first, ref) < 1e-12);
  CHECK(check_gradients(in, x, ps, st, 1e-5) == std::vector<std::string>{"scale", "bias"});

  // Tracked statistics: batch-averaged instance statistics, n = prod(spatial).
  auto [pst, stt] = lux::setup<double>(r, ints);
  auto [y2, st2] = lux::apply(ints, x, pst, stt);
  for (index_t c = 0; c < C; ++c) {
    const double m = (mean[c] + mean[c + C]) / 2, v = (var[c] + var[c + C]) / 2 * S / (S - 1);
    CHECK(st2.get<"running_mean">()[c] == Approx(0.9 * 0 + 0.1 * m).epsilon(1e-12));
    CHECK(st2.get<"running_var">()[c] == Approx(0.9 * 1 + 0.1 * v).epsilon(1e-12));
  }
  auto st_t = lux::testmode(st2);
  auto ref_t =
      naive_with_stats(x, chan, st2.get<"running_mean">().data(), st2.get<"running_var">().data(),
                       pst.get<"scale">().data(), pst.get<"bias">().data(), 1e-5, ident);
  CHECK(lux_test::max_rel_err(lux::apply(ints, x, pst, st_t).first, ref_t) < 1e-12);
  check_gradients(ints, x, ps, st_t, 1e-5);
  check_gradients(ints, x, ps, stt, 1e-5);

  lux_test::fixture_file f("layers_norm.txt");
  ps.get<"scale">() = f.tensor<double, 1>("in_scale");
  ps.get<"bias">() = f.tensor<double, 1>("in_bias");
  auto xf = f.tensor<double, 4>("in_x");
  check_fixture<1>(f, "in", in, xf, ps, st);

  CHECK_THROWS_WITH(lux::apply(in, Tensor<double, 3>(make_shape(4, 2, 2)), ps, st),
                    "InstanceNorm 3: expected input (..., 3, B), got (4, 2, 2)");
  CHECK(str(in) == "InstanceNorm(3, affine=true, track_stats=false)");
  CHECK(str(lux::InstanceNorm<lux::relu, false, true>(5, lux::relu{})) ==
        "InstanceNorm(5, relu, affine=false, track_stats=true)");
}

// =================================================================================================
// LayerNorm
// =================================================================================================

TEST_CASE("LayerNorm: Lux's default dims = Colon normalizes the whole array",
          "[layers][layernorm]") {
  lux::LayerNorm ln({4, 3});
  CHECK(lux::parameterlength(ln) == 24);
  CHECK(lux::statelength(ln) == 0);
  lux::rng r(51);
  auto [ps, st] = lux::setup<double>(r, ln);
  CHECK(ps.get<"scale">().shape() == make_shape(4, 3, 1));
  ps.get<"scale">() = lux_test::random_tensor<double>(make_shape(4, 3, 1), 60, 0.5, 1.5);
  ps.get<"bias">() = lux_test::random_tensor<double>(make_shape(4, 3, 1), 61);
  auto x = lux_test::random_tensor<double>(make_shape(4, 3, 5), 62, -2, 2);
  auto feat = [](index_t i) { return i % 12; };
  auto whole = [](index_t) { return index_t{0}; };
  auto ref =
      naive_norm(x, 1, whole, feat, ps.get<"scale">().data(), ps.get<"bias">().data(), 1e-5, ident);
  CHECK(lux_test::max_rel_err(lux::apply(ln, x, ps, st).first, ref) < 1e-12);
  CHECK(check_gradients(ln, x, ps, st, 1e-5) == std::vector<std::string>{"scale", "bias"});
  // dims = 1:2: per sample (PyTorch's LayerNorm((3, 4)) semantics), with an activation.
  lux::LayerNorm lns({4, 3}, lux::tanh_{}, {.dims = lux::leading_dims{2}});
  auto per = [](index_t i) { return i / 12; };
  auto ref2 =
      naive_norm(x, 5, per, feat, ps.get<"scale">().data(), ps.get<"bias">().data(), 1e-5, tanh_fn);
  CHECK(lux_test::max_rel_err(lux::apply(lns, x, ps, st).first, ref2) < 1e-12);
  check_gradients(lns, x, ps, st, 1e-5);
  // Rank-4 input with a broadcast shape entry (1): LayerNorm((4, 1)) on (4, 3, 2, 2).
  lux::LayerNorm<2, lux::identity, false> lnb(make_shape(4, 1));
  auto [pb, sb] = lux::setup<double>(r, lnb);
  auto x4 = lux_test::random_tensor<double>(make_shape(4, 3, 2, 2), 63);
  check_gradients(lnb, x4, pb, sb, 1e-5);
  CHECK(lux::outputsize(lnb, x4.shape()) == x4.shape());

  CHECK_THROWS_WITH(lux::apply(ln, Tensor<double, 3>(make_shape(4, 2, 5)), ps, st),
                    "LayerNorm (4, 3): expected input (4, 3, B), got (4, 2, 5)");
  auto bad = ps;
  bad.get<"scale">() = Tensor<double, 3>(make_shape(4, 3, 2));
  CHECK_THROWS_WITH(lux::apply(ln, x, bad, st),
                    "LayerNorm (4, 3): parameter scale has shape (4, 3, 2), expected (4, 3, 1)");
  CHECK(str(ln) == "LayerNorm((4, 3), affine=true, dims=Colon())");
  CHECK(str(lns) == "LayerNorm((4, 3), tanh, affine=true, dims=1:2)");
  CHECK(str(lux::LayerNorm({7})) == "LayerNorm((7,), affine=true, dims=Colon())");
  CHECK_THROWS_AS(lux::LayerNorm({0, 2}), lux::argument_error);
}

TEST_CASE("LayerNorm: PyTorch LayerNorm over the feature dims", "[layers][layernorm][fixture]") {
  lux_test::fixture_file f("layers_norm.txt");
  lux::LayerNorm ln({5, 4}, lux::identity{}, {.dims = lux::leading_dims{2}});
  lux::rng r(52);
  auto [ps, st] = lux::setup<double>(r, ln);
  ps.get<"scale">() = f.tensor<double, 2>("ln_scale").reshaped(make_shape(5, 4, 1));
  ps.get<"bias">() = f.tensor<double, 2>("ln_bias").reshaped(make_shape(5, 4, 1));
  auto x = f.tensor<double, 3>("ln_x");
  check_fixture<2>(f, "ln", ln, x, ps, st);
}

// =================================================================================================
// WeightNorm
// =================================================================================================

TEST_CASE("WeightNorm: parameter tree, initialization, forward, finite differences",
          "[layers][weightnorm]") {
  lux::WeightNorm wn(lux::Dense({3, 2}, lux::tanh_{}), lux::param_names<"weight">{});
  CHECK(lux::parameterlength(wn) == 3 + 6 + 2);
  CHECK(lux::statelength(wn) == 0);
  lux::rng r(61);
  auto [ps, st] = lux::setup<double>(r, wn);
  using PS = decltype(ps);
  static_assert(PS::names[0] == "normalized" && PS::names[1] == "unnormalized");
  using NPS = std::remove_cvref_t<decltype(ps.get<"normalized">())>;
  static_assert(NPS::names[0] == "weight_g" && NPS::names[1] == "weight_v");
  using UPS = std::remove_cvref_t<decltype(ps.get<"unnormalized">())>;
  static_assert(UPS::size == 1 && UPS::names[0] == "bias");
  const auto& g = ps.get<"normalized">().get<"weight_g">();
  const auto& v = ps.get<"normalized">().get<"weight_v">();
  CHECK(g.shape() == make_shape(1, 3));
  for (index_t i = 0; i < 3; ++i)
    CHECK(g(0, i) == Approx(std::sqrt(v(0, i) * v(0, i) + v(1, i) * v(1, i))));
  // Forward = Dense with w = v g / ‖v‖ (per column), here with g changed.
  ps.get<"normalized">().get<"weight_g">() =
      lux_test::random_tensor<double>(make_shape(1, 3), 70, 0.5, 1.5);
  ps.get<"unnormalized">().get<"bias">() = lux_test::random_tensor<double>(make_shape(2), 71);
  auto x = lux_test::random_tensor<double>(make_shape(3, 4), 72);
  const auto& gg = ps.get<"normalized">().get<"weight_g">();
  Tensor<double, 2> w(make_shape(2, 3));
  for (index_t i = 0; i < 3; ++i) {
    const double n = std::sqrt(v(0, i) * v(0, i) + v(1, i) * v(1, i));
    for (index_t o = 0; o < 2; ++o) w(o, i) = v(o, i) * gg(0, i) / n;
  }
  auto [y, st2] = lux::apply(wn, x, ps, st);
  for (index_t b = 0; b < 4; ++b)
    for (index_t o = 0; o < 2; ++o) {
      double s = ps.get<"unnormalized">().get<"bias">()[o];
      for (index_t i = 0; i < 3; ++i) s += w(o, i) * x(i, b);
      CHECK(y(o, b) == Approx(std::tanh(s)).epsilon(1e-12));
    }
  CHECK(check_gradients(wn, x, ps, st) == std::vector<std::string>{"normalized.weight_g",
                                                                   "normalized.weight_v",
                                                                   "unnormalized.bias"});
  CHECK(lux::outputsize(wn, make_shape(3, 9)) == make_shape(2, 9));
  CHECK(str(wn) == "WeightNorm{(:weight,)}(Dense(3 => 2, tanh), dims = nothing)");

  // dims = 0 (Julia dims = 1): per output row (PyTorch's default dim = 0).
  lux::WeightNorm wr(lux::Dense({3, 2}), lux::param_names<"weight">{}, {0});
  auto [pr, sr] = lux::setup<double>(r, wr);
  CHECK(pr.get<"normalized">().get<"weight_g">().shape() == make_shape(2, 1));
  check_gradients(wr, x, pr, sr);
  CHECK(str(wr) == "WeightNorm{(:weight,)}(Dense(3 => 2), dims = (1,))");
  // Both parameters normalized: nothing left unnormalized.
  lux::WeightNorm wb(lux::Dense({3, 2}, lux::identity{}, lux::glorot_uniform{}, lux::ones{}),
                     lux::param_names<"weight", "bias">{});
  auto [pb, sb] = lux::setup<double>(r, wb);
  static_assert(
      std::is_same_v<std::remove_cvref_t<decltype(pb.get<"unnormalized">())>, lux::empty_tuple>);
  // bias has rank 1, so norm_except over "all but dim 0" is |v| and ∂/∂bias_v = 0: compare
  // absolutely (floor 1).
  CHECK(check_gradients(wb, x, pb, sb, 1e-6, 1.0) ==
        std::vector<std::string>{"normalized.weight_g", "normalized.weight_v", "normalized.bias_g",
                                 "normalized.bias_v"});

  // Errors: all-zero parameter, g of the wrong shape.
  lux::WeightNorm wz(lux::Dense({3, 2}), lux::param_names<"bias">{});
  CHECK_THROWS_AS(lux::setup<double>(r, wz), lux::argument_error);
  auto bad = ps;
  bad.get<"normalized">().get<"weight_g">() = Tensor<double, 2>(make_shape(2, 1), 1.0);
  CHECK_THROWS_WITH(lux::apply(wn, x, bad, st),
                    "WeightNorm{(:weight,)}: parameter weight_g has shape (2, 1), expected (1, 3) "
                    "for weight_v of shape (2, 3)");
  lux::WeightNorm wd(lux::Dense({3, 2}), lux::param_names<"weight">{}, {2});
  CHECK_THROWS_AS(lux::setup<double>(r, wd), lux::argument_error);
}

TEST_CASE("WeightNorm: PyTorch weight_norm on Linear with dim = 1",
          "[layers][weightnorm][fixture]") {
  lux_test::fixture_file f("layers_norm.txt");
  lux::WeightNorm wn(lux::Dense({3, 2}), lux::param_names<"weight">{});
  lux::rng r(62);
  auto [ps, st] = lux::setup<double>(r, wn);
  ps.get<"normalized">().get<"weight_g">() = f.tensor<double, 2>("wn_g");
  ps.get<"normalized">().get<"weight_v">() = f.tensor<double, 2>("wn_v");
  ps.get<"unnormalized">().get<"bias">() = f.tensor<double, 1>("wn_bias");
  auto [y, st2, back] = lux::pullback(wn, f.tensor<double, 2>("wn_x"), ps, st);
  CHECK(lux_test::max_rel_err(y, f.tensor<double, 2>("wn_y")) < 1e-12);
  auto g = back(f.tensor<double, 2>("wn_vy"));
  CHECK(lux_test::max_rel_err(g.dx, f.tensor<double, 2>("wn_dx")) < 1e-10);
  CHECK(lux_test::max_rel_err(g.dps.get<"normalized">().get<"weight_g">(),
                              f.tensor<double, 2>("wn_dg")) < 1e-10);
  CHECK(lux_test::max_rel_err(g.dps.get<"normalized">().get<"weight_v">(),
                              f.tensor<double, 2>("wn_dv")) < 1e-10);
  CHECK(lux_test::max_rel_err(g.dps.get<"unnormalized">().get<"bias">(),
                              f.tensor<double, 1>("wn_dbias")) < 1e-10);
}

// =================================================================================================
// In a Chain
// =================================================================================================

TEST_CASE("Chain with BatchNorm and Dropout: states thread, testmode reaches every layer",
          "[layers][batchnorm][dropout]") {
  lux::Chain model(lux::Dense({4, 5}), lux::BatchNorm(5, lux::relu{}), lux::Dropout(0.3),
                   lux::Dense({5, 2}));
  lux::rng r(71);
  auto [ps, st] = lux::setup<double>(r, model);
  CHECK(lux::parameterlength(ps) == 4 * 5 + 5 + 10 + 5 * 2 + 2);
  CHECK(lux::statelength(st) == 11 + 2);
  auto x = lux_test::random_tensor<double>(make_shape(4, 6), 80);
  auto [y, st2] = lux::apply(model, x, ps, st);
  CHECK(st2.get<"layer_3">().get<"rng">() == st.get<"layer_3">().get<"rng">().advanced(1));
  CHECK(lux_test::max_rel_err(st2.get<"layer_2">().get<"running_mean">(),
                              st.get<"layer_2">().get<"running_mean">()) > 0);
  auto stt = lux::testmode(st2);
  CHECK_FALSE(stt.get<"layer_2">().get<"training">());
  CHECK_FALSE(stt.get<"layer_3">().get<"training">());
  // In training mode BatchNorm removes layer_1's bias (its gradient is 0): floor 1.
  check_gradients(model, x, ps, st, 1e-5, 1.0);
  check_gradients(model, x, ps, stt, 1e-5);
  CHECK_THROWS_WITH(lux::apply(model, Tensor<double, 2>(make_shape(4, 1)), ps, st),
                    Catch::StartsWith("layer_2 (BatchNorm 5): updating the running variance"));
}
