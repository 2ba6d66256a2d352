// Tests of lux/kernels/dropout.hpp: dropout (both forms), dropout_backward, alpha_dropout (both
// forms), alpha_dropout_backward.
//   * the mask is the documented pure function of (key, counter, index): checked element by
//     element against rng::uniform_at in the test (independent reference), and generic == looped
//     bit for bit;
//   * statistics: kept fraction within 4 standard deviations on 1e6 elements; alpha dropout keeps
//     mean 0 / variance 1 of N(0, 1) input;
//   * dims broadcasting, training = false, p = 0 and p = 1, update_mask = false, rng′;
//   * finite differences for both backward passes;
//   * PyTorch distribution statistics (tests/fixtures/elementwise.txt) and constants;
//   * errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <lux/kernels/dropout.hpp>
#include <string>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux_test::max_rel_err;
using lux_test::random_tensor;

constexpr index_t kMillion = 1000000;

/// x ~ N(0, 1) from a Philox stream.
template <class T, std::size_t N>
lux::Tensor<T, N> normal_tensor(const lux::shape_t<N>& shape, std::uint64_t seed) {
  auto t = lux::Tensor<T, N>::uninitialized(shape);
  lux::rng(seed).fill_normal(t.data(), static_cast<std::size_t>(t.numel()));
  return t;
}

/// The documented mask, computed here from the rng directly: u_i > p ? invp : 0, with u the
/// float / double uniform of element i of the mask (p = 0 keeps everything).
template <class T>
T expected_mask(const lux::rng& r, index_t i, double p, double invp) {
  const T u = r.uniform_at<T>(static_cast<std::uint64_t>(i));
  const bool keep = p == 0 || u > static_cast<T>(p);
  return keep ? static_cast<T>(invp) : T(0);
}

template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (!(a.data()[i] == b.data()[i])) return false;
  return true;
}

struct moments {
  double mean, var;
};
template <class A>
moments moments_of(const A& y) {
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data()[i]);
  const double mean = s / static_cast<double>(y.numel());
  double ss = 0;
  for (index_t i = 0; i < y.numel(); ++i) {
    const double d = static_cast<double>(y.data()[i]) - mean;
    ss += d * d;
  }
  return {mean, ss / static_cast<double>(y.numel())};
}

}  // namespace

// =============================================================================================
// dropout: the mask
// =============================================================================================

TEMPLATE_TEST_CASE("dropout's mask is (u > p) · invp with u = rng.uniform_at(i), in every mode",
                   "[dropout]", float, double) {
  using T = TestType;
  const lux::rng r = lux::rng(2024).advanced(5);
  for (index_t n :
       {index_t{1}, index_t{3}, index_t{17}, index_t{255}, index_t{257}, index_t{100003}}) {
    for (double p : {0.1, 0.5, 0.9}) {
      INFO("n = " << n << " p = " << p);
      const double invp = 1 / (1 - p);
      const auto x = random_tensor<T, 1>({n}, 9, -2, 2);
      const auto g = lux::dropout(lux::generic_op{}, r, x, p, true, invp);
      const auto l = lux::dropout(lux::looped_op{}, r, x, p, true, invp);
      const auto d = lux::dropout(r, x, p, true, invp);
      REQUIRE(g.mask.shape() == x.shape());
      bool mask_ok = true, values_ok = true;
      for (index_t i = 0; i < n; ++i) {
        mask_ok = mask_ok && g.mask[i] == expected_mask<T>(r, i, p, invp);
        // y is exactly x · invp or exactly 0
        values_ok = values_ok && (g.y[i] == (g.mask[i] != 0 ? x[i] * static_cast<T>(invp) : T(0)));
      }
      CHECK(mask_ok);
      CHECK(values_ok);
      CHECK(bitwise_equal(l.mask, g.mask));  // the same mask in every mode
      CHECK(bitwise_equal(l.y, g.y));
      CHECK(bitwise_equal(d.y, l.y));
      CHECK(g.rng == r.advanced(1));  // one counter step per call
      CHECK(l.rng == r.advanced(1));
    }
  }
}

TEMPLATE_TEST_CASE("dropout keeps 1 - p of the elements (4 sigma on 1e6 elements)", "[dropout]",
                   float, double) {
  using T = TestType;
  const auto x = lux::Tensor<T, 2>(lux::shape_t<2>{1000, 1000}, T(1));
  for (double p : {0.1, 0.3, 0.5, 0.9}) {
    INFO("p = " << p);
    const auto res = lux::dropout(lux::rng(77), x, p, true, 1 / (1 - p));
    index_t kept = 0;
    for (index_t i = 0; i < res.y.numel(); ++i) kept += res.y[i] != 0;
    const double n = static_cast<double>(res.y.numel());
    const double sigma = std::sqrt(n * p * (1 - p));  // binomial standard deviation
    CHECK(std::abs(static_cast<double>(kept) - n * (1 - p)) <= 4 * sigma);
  }
}

TEST_CASE("dropout masks depend on key and counter, not on the call", "[dropout]") {
  const auto x = random_tensor<float, 1>({4096}, 3);
  const lux::rng r(99);
  const auto a = lux::dropout(r, x, 0.5, true, 2.0);
  const auto b = lux::dropout(lux::rng(99), x, 0.5, true, 2.0);
  CHECK(bitwise_equal(a.mask, b.mask));  // same seed → same mask
  auto agreement = [&](const lux::Tensor<float, 1>& m) {
    index_t same = 0;
    for (index_t i = 0; i < m.numel(); ++i) same += m[i] == a.mask[i];
    return static_cast<double>(same) / static_cast<double>(m.numel());
  };
  // independent masks agree on p² + (1-p)² = 1/2 of the elements (σ ≈ 0.008 here)
  const auto c = lux::dropout(a.rng, x, 0.5, true, 2.0);          // the next counter
  const auto d = lux::dropout(lux::rng(100), x, 0.5, true, 2.0);  // another key
  CHECK(std::abs(agreement(c.mask) - 0.5) < 0.05);
  CHECK(std::abs(agreement(d.mask) - 0.5) < 0.05);
  CHECK(c.rng == r.advanced(2));
}

TEMPLATE_TEST_CASE("dropout broadcasts the mask along the dimensions not in dims", "[dropout]",
                   float, double) {
  using T = TestType;
  const lux::shape_t<4> xs{6, 5, 4, 3};  // (W, H, C, N)
  const auto x = random_tensor<T, 4>(xs, 21, -2, 2);
  const lux::rng r(5);
  struct dims_case {
    lux::dim_set dims;
    lux::shape_t<4> mask_shape;
  };
  const dims_case cases[] = {
      {{2, 3}, {1, 1, 4, 3}},  // per (channel, sample): Julia dims = (3, 4)
      {2, {1, 1, 4, 1}},       // per channel: Julia dims = 3
      {{0}, {6, 1, 1, 1}},
      {{1, 3}, {1, 5, 1, 3}},  // non-adjacent
      {{0, 2}, {6, 1, 4, 1}},
      {{}, {1, 1, 1, 1}},  // one value for everything
      {lux::all_dims, {6, 5, 4, 3}},
      {{0, 1, 2, 3}, {6, 5, 4, 3}},
  };
  for (const auto& c : cases) {
    INFO("mask shape " << lux::format_shape(c.mask_shape));
    CHECK(lux::dropout_mask_shape(xs, c.dims) == c.mask_shape);
    const auto g = lux::dropout(lux::generic_op{}, r, x, 0.5, true, 2.0, c.dims);
    const auto l = lux::dropout(lux::looped_op{}, r, x, 0.5, true, 2.0, c.dims);
    REQUIRE(g.mask.shape() == c.mask_shape);
    CHECK(bitwise_equal(g.mask, l.mask));
    CHECK(bitwise_equal(g.y, l.y));
    // mask element i is u_i over the MASK shape; y[w,h,c,n] = x · mask at the broadcast index
    bool mask_ok = true, y_ok = true;
    for (index_t i = 0; i < g.mask.numel(); ++i)
      mask_ok = mask_ok && g.mask[i] == expected_mask<T>(r, i, 0.5, 2.0);
    for (index_t n = 0; n < xs[3]; ++n)
      for (index_t ch = 0; ch < xs[2]; ++ch)
        for (index_t h = 0; h < xs[1]; ++h)
          for (index_t w = 0; w < xs[0]; ++w) {
            const auto& ms = c.mask_shape;
            const T m = g.mask(ms[0] == 1 ? 0 : w, ms[1] == 1 ? 0 : h, ms[2] == 1 ? 0 : ch,
                               ms[3] == 1 ? 0 : n);
            y_ok = y_ok && g.y(w, h, ch, n) == x(w, h, ch, n) * m;
          }
    CHECK(mask_ok);
    CHECK(y_ok);
    // backward broadcasts the same way
    const auto dy = random_tensor<T, 4>(xs, 22);
    const auto dg = lux::dropout_backward(lux::generic_op{}, dy, g.mask);
    const auto dl = lux::dropout_backward(lux::looped_op{}, dy, g.mask);
    CHECK(bitwise_equal(dg.dx, dl.dx));
    const auto fwd = lux::dropout(lux::rng(0), dy, g.mask, 0.5, true, false, 2.0, c.dims);
    CHECK(bitwise_equal(dg.dx, fwd.y));  // dx = dy .* mask = the forward with that mask
  }
  // a large broadcast case through the parallel path: (64, 33, 16, 2) with dims {2, 3}
  const auto xl = random_tensor<T, 4>({64, 33, 16, 2}, 23);
  const auto g = lux::dropout(lux::generic_op{}, r, xl, 0.3, true, 1 / 0.7, {2, 3});
  const auto l = lux::dropout(lux::looped_op{}, r, xl, 0.3, true, 1 / 0.7, {2, 3});
  CHECK(bitwise_equal(g.y, l.y));
}

// =============================================================================================
// dropout: modes of operation
// =============================================================================================

TEMPLATE_TEST_CASE("dropout with training = false is the identity", "[dropout]", float, double) {
  using T = TestType;
  const auto x = random_tensor<T, 3>({7, 3, 2}, 4);
  const lux::rng r(8);
  const auto res = lux::dropout(r, x, 0.5, false, 2.0);
  CHECK(bitwise_equal(res.y, x));
  CHECK(res.y.data() != x.data());
  CHECK(res.rng == r);  // unchanged
  CHECK(res.mask.shape() == lux::shape_t<3>{1, 1, 1});
  CHECK(max_rel_err(lux::dropout_backward(x, res.mask).dx, x) == 0);  // identity pullback
  // mask form: the given mask comes back untouched, rng unchanged
  const auto given = lux::dropout(r, x, 0.5, true, 2.0).mask;
  const auto res2 = lux::dropout(r, x, given, 0.5, false, true, 2.0);
  CHECK(bitwise_equal(res2.y, x));
  CHECK(bitwise_equal(res2.mask, given));
  CHECK(res2.rng == r);
}

TEMPLATE_TEST_CASE("dropout with p = 0 keeps everything and p = 1 drops everything", "[dropout]",
                   float, double) {
  using T = TestType;
  const auto x = random_tensor<T, 2>({300, 301}, 6, -3, 3);
  const lux::rng r(1);
  for (auto run : {0, 1}) {
    const auto p0 = run == 0 ? lux::dropout(lux::generic_op{}, r, x, 0.0, true, 1.0)
                             : lux::dropout(lux::looped_op{}, r, x, 0.0, true, 1.0);
    CHECK(bitwise_equal(p0.y, x));
    CHECK(std::all_of(p0.mask.begin(), p0.mask.end(), [](T m) { return m == T(1); }));
    CHECK(p0.rng == r.advanced(1));
    // p = 1 with invp = 1/(1-p) = ∞: mask 0, y 0, never 0 · ∞ = NaN
    const double inf = std::numeric_limits<double>::infinity();
    const auto p1 = run == 0 ? lux::dropout(lux::generic_op{}, r, x, 1.0, true, inf)
                             : lux::dropout(lux::looped_op{}, r, x, 1.0, true, inf);
    CHECK(std::all_of(p1.y.begin(), p1.y.end(), [](T v) { return v == T(0); }));
    CHECK(std::all_of(p1.mask.begin(), p1.mask.end(), [](T m) { return m == T(0); }));
    const auto d1 = lux::dropout_backward(x, p1.mask);
    CHECK(std::all_of(d1.dx.begin(), d1.dx.end(), [](T v) { return v == T(0); }));
  }
}

TEMPLATE_TEST_CASE("dropout with update_mask = false reuses the given mask", "[dropout]", float,
                   double) {
  using T = TestType;
  const auto x = random_tensor<T, 4>({5, 4, 3, 2}, 10);
  const lux::rng r(12);
  const auto first = lux::dropout(r, x, 0.4, true, 1 / 0.6, {2, 3});
  const auto x2 = random_tensor<T, 4>(x.shape(), 11);
  for (auto mode : {0, 1}) {
    const auto reuse = mode == 0 ? lux::dropout(lux::generic_op{}, first.rng, x2, first.mask, 0.4,
                                                true, false, 1 / 0.6, {2, 3})
                                 : lux::dropout(lux::looped_op{}, first.rng, x2, first.mask, 0.4,
                                                true, false, 1 / 0.6, {2, 3});
    CHECK(reuse.rng == first.rng);  // untouched
    CHECK(bitwise_equal(reuse.mask, first.mask));
    bool ok = true;
    for (index_t n = 0; n < 2; ++n)
      for (index_t c = 0; c < 3; ++c)
        for (index_t h = 0; h < 4; ++h)
          for (index_t w = 0; w < 5; ++w)
            ok = ok && reuse.y(w, h, c, n) == x2(w, h, c, n) * first.mask(0, 0, c, n);
    CHECK(ok);
  }
  // update_mask = true draws a fresh mask: the plain form's, and advances the rng
  const auto fresh = lux::dropout(first.rng, x2, first.mask, 0.4, true, true, 1 / 0.6, {2, 3});
  const auto plain = lux::dropout(first.rng, x2, 0.4, true, 1 / 0.6, {2, 3});
  CHECK(bitwise_equal(fresh.mask, plain.mask));
  CHECK(bitwise_equal(fresh.y, plain.y));
  CHECK(fresh.rng == first.rng.advanced(1));
  // an rvalue mask Tensor is moved into the result
  auto owned = first.mask;
  const T* p = owned.data();
  const auto moved =
      lux::dropout(first.rng, x2, std::move(owned), 0.4, true, false, 1 / 0.6, {2, 3});
  CHECK(moved.mask.data() == p);
  // a mask of another shape is a shape_error
  const auto wrong = lux::Tensor<T, 4>(lux::shape_t<4>{1, 1, 3, 1}, T(1));
  CHECK_THROWS_AS(lux::dropout(r, x2, wrong, 0.4, true, false, 1 / 0.6, {2, 3}), lux::shape_error);
  CHECK_THROWS_WITH(lux::dropout(r, x2, wrong, 0.4, true, false, 1 / 0.6, {2, 3}),
                    Catch::Contains("dropout") && Catch::Contains("(1, 1, 3, 1)") &&
                        Catch::Contains("(1, 1, 3, 2)"));
}

TEST_CASE("dropout_backward is dy .* mask (finite differences, double)", "[dropout]") {
  const auto x = random_tensor<double, 3>({6, 4, 3}, 31);
  const auto v = random_tensor<double, 3>(x.shape(), 32);
  for (const lux::dim_set dims : {lux::dim_set(lux::all_dims), lux::dim_set{1, 2}}) {
    const auto fwd = lux::dropout(lux::rng(33), x, 0.5, true, 2.0, dims);
    const auto g = lux::dropout_backward(v, fwd.mask);
    const auto num = lux_test::numerical_gradient<3>(
        [&](const lux::Tensor<double, 3>& xp) {
          return lux_test::dot(
              lux::dropout(lux::rng(33), xp, fwd.mask, 0.5, true, false, 2.0, dims).y, v);
        },
        x);
    CHECK(max_rel_err(g.dx, num) <= 1e-6);
  }
}

TEST_CASE("dropout in the generic mode serves long double", "[dropout]") {
  const auto x = lux::Tensor<long double, 1>(lux::shape_t<1>{1000}, 1.5L);
  const lux::rng r(3);
  const auto res = lux::dropout(r, x, 0.5, true, 2.0);
  bool ok = true;
  for (index_t i = 0; i < x.numel(); ++i)
    ok = ok && res.mask[i] == static_cast<long double>(expected_mask<double>(r, i, 0.5, 2.0));
  CHECK(ok);
}

// =============================================================================================
// alpha dropout
// =============================================================================================

TEST_CASE("alpha dropout constants match Lux/NNlib and PyTorch", "[alpha_dropout][torch]") {
  const auto c5 = lux::make_alpha_dropout_constants(0.5);
  CHECK(c5.alpha == -1.7580993408473766);
  CHECK(c5.A == Approx(0.886405).margin(1e-6));
  CHECK(c5.B == Approx(0.779194).margin(1e-6));
  const auto c1 = lux::make_alpha_dropout_constants(0.1);
  CHECK(c1.A == Approx(0.921285).margin(1e-6));
  CHECK(c1.B == Approx(0.161971).margin(1e-6));
  const lux_test::fixture_file fx("elementwise.txt");
  for (auto [p, tag] : {std::pair{0.1, "alpha_dropout_p1"}, std::pair{0.5, "alpha_dropout_p5"}}) {
    INFO(tag);
    const auto c = lux::make_alpha_dropout_constants(p);
    const std::string t = tag;
    // torch's A and B are read off its output by least squares: exact up to rounding
    CHECK(c.A == Approx(fx.scalar(t + "_A")).epsilon(1e-9));
    CHECK(c.B == Approx(fx.scalar(t + "_B")).epsilon(1e-9));
    CHECK(c.A * c.alpha + c.B == Approx(fx.scalar(t + "_dropped_value")).epsilon(1e-12));
  }
}

TEMPLATE_TEST_CASE("alpha_dropout: y = A (u > p ? x : α) + B with u = rng.uniform_at(i)",
                   "[alpha_dropout]", float, double) {
  using T = TestType;
  const lux::rng r = lux::rng(31).advanced(2);
  for (index_t n : {index_t{1}, index_t{19}, index_t{257}, index_t{70001}}) {
    INFO("n = " << n);
    const auto x = random_tensor<T, 1>({n}, 5, -2, 2);
    const double p = 0.3;
    const auto c = lux::make_alpha_dropout_constants(p);
    const auto g = lux::alpha_dropout(lux::generic_op{}, r, x, p, true);
    const auto l = lux::alpha_dropout(lux::looped_op{}, r, x, p, true);
    CHECK(g.rng == r.advanced(1));
    CHECK(l.rng == r.advanced(1));
    lux::Tensor<double, 1> ref(x.shape());
    for (index_t i = 0; i < n; ++i) {
      const bool keep = expected_mask<T>(r, i, p, 1.0) != 0;
      ref[i] = c.A * (keep ? static_cast<double>(x[i]) : c.alpha) + c.B;
    }
    const double t = std::is_same_v<T, float> ? 1e-6 : 1e-15;
    CHECK(max_rel_err(g.y, ref) <= t);
    CHECK(max_rel_err(l.y, ref) <= t);
    // backward regenerates the same decisions: dx = dy · [u > p] · A
    const auto dy = random_tensor<T, 1>({n}, 6);
    const auto dg = lux::alpha_dropout_backward(lux::generic_op{}, dy, g.saved);
    const auto dl = lux::alpha_dropout_backward(lux::looped_op{}, dy, l.saved);
    lux::Tensor<double, 1> dref(x.shape());
    for (index_t i = 0; i < n; ++i)
      dref[i] = expected_mask<T>(r, i, p, 1.0) != 0 ? c.A * static_cast<double>(dy[i]) : 0.0;
    CHECK(max_rel_err(dg.dx, dref) <= t);
    CHECK(max_rel_err(dl.dx, dref) <= t);
    // the precomputed-constant form is the same function
    const auto pre = lux::alpha_dropout(r, x, p, true, c.alpha, c.A, c.B);
    CHECK(max_rel_err(pre.y, l.y) == 0);
  }
}

TEMPLATE_TEST_CASE("alpha dropout keeps mean 0 and variance 1 of N(0, 1) input", "[alpha_dropout]",
                   float, double) {
  using T = TestType;
  const auto x = normal_tensor<T, 2>({1000, 1000}, 41);
  const auto mx = moments_of(x);
  for (double p : {0.1, 0.3, 0.5}) {
    INFO("p = " << p);
    const auto res = lux::alpha_dropout(lux::rng(42), x, p, true);
    const auto m = moments_of(res.y);
    // n = 1e6: the sample mean has standard deviation sqrt(Var y / n) = 1e-3 and the sample
    // variance sqrt((E y⁴ - 1)/n) ≈ 2e-3 (E y⁴ ≲ 4 for these p), so 5e-3 and 1e-2 are ≥ 5 σ.
    // The input's own sample moments (|mean| ≈ 1e-3) enter through A(1-p) ≤ 1; they are
    // subtracted in expectation by comparing with the value the formula predicts for them.
    const auto c = lux::make_alpha_dropout_constants(p);
    const double pred_mean = c.A * ((1 - p) * mx.mean + p * c.alpha) + c.B;
    CHECK(std::abs(m.mean) <= 5e-3);
    CHECK(std::abs(m.mean - pred_mean) <= 5e-3);
    CHECK(std::abs(m.var - 1) <= 1e-2);
  }
}

TEST_CASE("alpha dropout statistics agree with torch.nn.functional.alpha_dropout",
          "[alpha_dropout][torch]") {
  const lux_test::fixture_file fx("elementwise.txt");
  const auto x = normal_tensor<float, 1>({kMillion}, 43);
  for (auto [p, tag] : {std::pair{0.1, "alpha_dropout_p1"}, std::pair{0.5, "alpha_dropout_p5"}}) {
    const std::string t = tag;
    INFO(t);
    const auto res = lux::alpha_dropout(lux::rng(44), x, p, true);
    // dropped elements: where the backward pass (the same decisions) passes no gradient
    const auto ones = lux::Tensor<float, 1>(x.shape(), 1.0f);
    const auto dx = lux::alpha_dropout_backward(ones, res.saved).dx;
    index_t nd = 0;
    for (index_t i = 0; i < x.numel(); ++i) nd += dx[i] == 0;
    const double n = static_cast<double>(kMillion);
    // two independent binomial fractions: σ of the difference = sqrt(2 p (1-p) / n)
    CHECK(std::abs(static_cast<double>(nd) / n - fx.scalar(t + "_dropped_fraction")) <=
          4 * std::sqrt(2 * p * (1 - p) / n));
    const auto m = moments_of(res.y);
    // both means ~ N(0, 1/n) (σ 1e-3), both variances within ~2e-3 of 1: 4σ of the difference
    CHECK(std::abs(m.mean - fx.scalar(t + "_mean")) <= 4 * std::sqrt(2.0 / n));
    CHECK(std::abs(m.var - fx.scalar(t + "_var")) <= 4 * std::sqrt(2 * 4.0 / n));
  }
}

TEST_CASE("dropout statistics agree with torch.nn.functional.dropout", "[dropout][torch]") {
  const lux_test::fixture_file fx("elementwise.txt");
  const auto x = normal_tensor<double, 1>({kMillion}, 45);
  for (auto [p, tag] : {std::pair{0.3, "dropout_p3"}, std::pair{0.5, "dropout_p5"}}) {
    const std::string t = tag;
    INFO(t);
    const double invp = 1 / (1 - p);
    const auto res = lux::dropout(lux::rng(46), x, p, true, invp);
    index_t zeros = 0;
    double max_dev = 0;
    for (index_t i = 0; i < x.numel(); ++i) {
      if (res.y[i] == 0) {
        ++zeros;
      } else {
        max_dev = std::max(max_dev, std::abs(res.y[i] / x[i] / invp - 1));
      }
    }
    const double n = static_cast<double>(kMillion);
    CHECK(std::abs(static_cast<double>(zeros) / n - fx.scalar(t + "_zero_fraction")) <=
          4 * std::sqrt(2 * p * (1 - p) / n));
    // kept values are x · invp in both (torch up to one rounding)
    CHECK(fx.scalar(t + "_max_kept_deviation") <= 1e-15);
    CHECK(max_dev <= 1e-15);
    const auto m = moments_of(res.y);
    // Var y = 1/(1-p) for N(0, 1) x; sample variance σ ≈ sqrt((E y⁴ - (E y²)²)/n) with
    // E y⁴ = 3/(1-p)³: at most sqrt(24/n) ≈ 5e-3 for p = 0.5
    const double sd_var = std::sqrt((3 / std::pow(1 - p, 3) - 1 / std::pow(1 - p, 2)) / n);
    CHECK(std::abs(m.var - fx.scalar(t + "_var")) <= 4 * std::sqrt(2.0) * sd_var);
    CHECK(std::abs(m.mean - fx.scalar(t + "_mean")) <= 4 * std::sqrt(2 * invp / n));
  }
}

TEMPLATE_TEST_CASE("alpha_dropout edge cases: not training, p = 0, p = 1", "[alpha_dropout]", float,
                   double) {
  using T = TestType;
  const auto x = random_tensor<T, 2>({33, 31}, 50, -3, 3);
  const auto dy = random_tensor<T, 2>(x.shape(), 51);
  const lux::rng r(52);
  const auto off = lux::alpha_dropout(r, x, 0.5, false);
  CHECK(bitwise_equal(off.y, x));
  CHECK(off.rng == r);
  CHECK(bitwise_equal(lux::alpha_dropout_backward(dy, off.saved).dx, dy));
  // p = 0: A = 1, B = 0, nothing dropped
  const auto p0 = lux::alpha_dropout(r, x, 0.0, true);
  CHECK(bitwise_equal(p0.y, x));
  CHECK(bitwise_equal(lux::alpha_dropout_backward(dy, p0.saved).dx, dy));
  // p = 1: the limit y = 0 (Lux's A = ∞ would give NaN), dx = 0
  const auto p1 = lux::alpha_dropout(r, x, 1.0, true);
  CHECK(std::all_of(p1.y.begin(), p1.y.end(), [](T v) { return v == T(0); }));
  const auto d1 = lux::alpha_dropout_backward(dy, p1.saved);
  CHECK(std::all_of(d1.dx.begin(), d1.dx.end(), [](T v) { return v == T(0); }));
}

TEST_CASE("alpha_dropout_backward agrees with central finite differences (double)",
          "[alpha_dropout]") {
  const auto x = random_tensor<double, 2>({9, 7}, 60);
  const auto v = random_tensor<double, 2>(x.shape(), 61);
  const lux::rng r(62);
  const auto fwd = lux::alpha_dropout(r, x, 0.4, true);
  const auto g = lux::alpha_dropout_backward(v, fwd.saved);
  const auto num = lux_test::numerical_gradient<2>(
      [&](const lux::Tensor<double, 2>& xp) {
        return lux_test::dot(lux::alpha_dropout(lux::generic_op{}, r, xp, 0.4, true).y, v);
      },
      x);
  CHECK(max_rel_err(g.dx, num) <= 1e-6);
}

// =============================================================================================
// errors
// =============================================================================================

TEST_CASE("dropout and alpha_dropout reject bad p, dims and shapes", "[dropout][errors]") {
  const auto x = random_tensor<float, 4>({4, 3, 2, 2}, 1);
  const lux::rng r(1);
  CHECK_THROWS_AS(lux::dropout(r, x, 1.5, true, 2.0), lux::argument_error);
  CHECK_THROWS_WITH(lux::dropout(r, x, 1.5, true, 2.0),
                    Catch::Contains("dropout") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(lux::dropout(r, x, -0.25, false, 2.0),
                    Catch::Contains("dropout") && Catch::Contains("-0.25"));
  CHECK_THROWS_AS(lux::dropout(r, x, std::nan(""), true, 2.0), lux::argument_error);
  CHECK_THROWS_WITH(lux::dropout(r, x, x, 2.0, true, false, 2.0),
                    Catch::Contains("dropout") && Catch::Contains("2"));
  CHECK_THROWS_AS(lux::alpha_dropout(r, x, 1.25, true), lux::argument_error);
  CHECK_THROWS_WITH(lux::alpha_dropout(r, x, 1.25, true),
                    Catch::Contains("alpha_dropout") && Catch::Contains("1.25"));
  CHECK_THROWS_WITH(lux::alpha_dropout(r, x, -1.0, true, -1.7, 1.0, 0.0),
                    Catch::Contains("alpha_dropout") && Catch::Contains("-1"));
  CHECK_THROWS_AS(lux::make_alpha_dropout_constants(3.0), lux::argument_error);
  // dims are 0-based and must be < rank
  CHECK_THROWS_AS(lux::dropout(r, x, 0.5, true, 2.0, {4}), lux::argument_error);
  CHECK_THROWS_WITH(lux::dropout(r, x, 0.5, true, 2.0, {1, 4}),
                    Catch::Contains("dropout") && Catch::Contains("dims contains 4") &&
                        Catch::Contains("0-based"));
  CHECK_THROWS_WITH(lux::dropout(r, x, 0.5, true, 2.0, -1), Catch::Contains("dims contains -1"));
  // backward: mask must broadcast to dy
  const auto bad = lux::Tensor<float, 4>(lux::shape_t<4>{1, 1, 3, 1}, 1.0f);
  CHECK_THROWS_AS(lux::dropout_backward(x, bad), lux::shape_error);
  CHECK_THROWS_WITH(lux::dropout_backward(x, bad), Catch::Contains("dropout_backward") &&
                                                       Catch::Contains("(1, 1, 3, 1)") &&
                                                       Catch::Contains("(4, 3, 2, 2)"));
  const auto fwd = lux::alpha_dropout(r, x, 0.5, true);
  const auto dy_bad = lux::Tensor<float, 4>(lux::shape_t<4>{4, 3, 2, 1}, 1.0f);
  CHECK_THROWS_AS(lux::alpha_dropout_backward(dy_bad, fwd.saved), lux::shape_error);
  CHECK_THROWS_WITH(lux::alpha_dropout_backward(dy_bad, fwd.saved),
                    Catch::Contains("alpha_dropout_backward"));
}
