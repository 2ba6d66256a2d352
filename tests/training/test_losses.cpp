// Tests of lux/training/losses.hpp — the oracle ladder of DESIGN.md §10 for every loss:
//   1. an independent float64 reference of each loss written here from Lux 1.31's formulas;
//   2. float vs double agreement (a few losses; there is one implementation per loss);
//   3. central finite differences in double for every gradient;
//   4. PyTorch fixtures (tests/fixtures/make_loss_fixtures.py → losses.txt);
//   5. error paths.
// plus the aggregations (mean, sum, none, custom), class-index targets, GenericLossFunction's
// dual numbers and the objective form loss(model, ps, st, (x, y)); measured errors are reported
// with -s. Each loss type is instantiated for double with agg::mean; the other aggregations and
// float only where they are tested.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <lux/training/losses.hpp>
#include <span>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using T2 = lux::Tensor<double, 2>;
using T3 = lux::Tensor<double, 3>;
constexpr double kEps = 2.220446049250313e-16;  // eps(Float64), Lux's default epsilon

double xlogy(double x, double y) { return x == 0 ? 0 : x * std::log(y); }

/// Checks loss(yhat, y) against `ref`, value_and_gradient's value against loss(yhat, y), and
/// its gradient against central finite differences.
template <class Loss, std::size_t N, class Y, class Ref>
void check_loss(const std::string& name, const Loss& loss, const lux::Tensor<double, N>& yh,
                const Y& y, Ref&& ref, double fd_tol = 2e-7) {
  INFO(name);
  const auto [l, g] = loss.value_and_gradient(yh, y);
  CHECK(l == loss(yh, y));
  CHECK(l == Approx(ref()).epsilon(1e-13).margin(1e-15));
  REQUIRE(g.shape() == yh.shape());
  const auto fd = lux_test::numerical_gradient<N>(
      [&](const lux::Tensor<double, N>& t) { return static_cast<double>(loss(t, y)); }, yh);
  CHECK(max_rel_err(g, fd) <= fd_tol);
}

/// A probability matrix: softmax of random logits along dimension 0.
T2 random_probabilities(const lux::shape_t<2>& s, std::uint64_t seed) {
  auto p = random_tensor<double, 2>(s, seed, -2, 2);
  for (index_t b = 0; b < s[1]; ++b) {
    double z = 0;
    for (index_t c = 0; c < s[0]; ++c) z += p(c, b) = std::exp(p(c, b));
    for (index_t c = 0; c < s[0]; ++c) p(c, b) /= z;
  }
  return p;
}
T2 one_hot(const std::vector<std::int64_t>& idx, index_t C) {
  T2 y(lux::shape_t<2>{C, static_cast<index_t>(idx.size())});
  for (std::size_t b = 0; b < idx.size(); ++b) y(idx[b], static_cast<index_t>(b)) = 1;
  return y;
}

}  // namespace

// =================================================================================================
TEST_CASE("every loss matches a float64 reference and finite differences", "[losses]") {
  const lux::shape_t<2> s{4, 5};
  const double n = 20;
  const auto a = random_tensor<double, 2>(s, 1, -2, 2);
  const auto b = random_tensor<double, 2>(s, 2, -2, 2);
  const auto pos = random_tensor<double, 2>(s, 3, 0.1, 3);
  const auto pos2 = random_tensor<double, 2>(s, 4, 0.1, 3);
  auto sign = random_tensor<double, 2>(s, 5);
  for (auto& v : sign) v = v < 0 ? -1 : 1;
  const auto prob = random_tensor<double, 2>(s, 6, 0.05, 0.95);
  const auto soft = random_tensor<double, 2>(s, 7, 0, 1);
  auto bin = random_tensor<double, 2>(s, 8);
  for (auto& v : bin) v = v < 0 ? 0 : 1;
  const auto P = random_probabilities(s, 9);
  const std::vector<std::int64_t> idx = {0, 3, 1, 1, 2};
  const auto Y = one_hot(idx, 4);
  const auto Q = random_probabilities(s, 10);

  auto mean = [&](auto f) {
    double t = 0;
    for (index_t k = 0; k < a.numel(); ++k) t += f(k);
    return t / n;
  };
  check_loss("MSELoss", lux::MSELoss{}, a, b,
             [&] { return mean([&](index_t k) { return std::pow(a[k] - b[k], 2); }); });
  check_loss("MAELoss", lux::MAELoss{}, a, b,
             [&] { return mean([&](index_t k) { return std::abs(a[k] - b[k]); }); });
  check_loss("MSLELoss", lux::MSLELoss{}, pos, pos2, [&] {
    return mean(
        [&](index_t k) { return std::pow(std::log((pos[k] + kEps) / (pos2[k] + kEps)), 2); });
  });
  for (double delta : {1.0, 0.4}) {
    check_loss("HuberLoss", lux::HuberLoss({.delta = delta}), a, b, [&] {
      return mean([&](index_t k) {
        const double d = std::abs(a[k] - b[k]);
        return d <= delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
      });
    });
  }
  check_loss("HingeLoss", lux::HingeLoss{}, a, sign,
             [&] { return mean([&](index_t k) { return std::max(0.0, 1 - a[k] * sign[k]); }); });
  check_loss("SquaredHingeLoss", lux::SquaredHingeLoss{}, a, sign, [&] {
    return mean([&](index_t k) { return std::pow(std::max(0.0, 1 - a[k] * sign[k]), 2); });
  });
  check_loss("PoissonLoss", lux::PoissonLoss{}, pos, pos2, [&] {
    return mean([&](index_t k) { return pos[k] - xlogy(pos2[k], pos[k] + kEps); });
  });
  check_loss("SiameseContrastiveLoss", lux::SiameseContrastiveLoss({.margin = 1.5}), pos, bin, [&] {
    return mean([&](index_t k) {
      return (1 - bin[k]) * pos[k] * pos[k] + bin[k] * std::pow(std::max(0.0, 1.5 - pos[k]), 2);
    });
  });
  for (double ls : {0.0, 0.2}) {
    auto smooth = [&](double y) { return y * (1 - ls) + ls / 2; };
    check_loss("BinaryCrossEntropyLoss", lux::BinaryCrossEntropyLoss({.label_smoothing = ls}), prob,
               soft, [&] {
                 return mean([&](index_t k) {
                   const double t = smooth(soft[k]);
                   return -xlogy(t, prob[k] + kEps) - xlogy(1 - t, 1 - prob[k] + kEps);
                 });
               });
    check_loss("BinaryCrossEntropyLoss logits",
               lux::BinaryCrossEntropyLoss({.logits = true, .label_smoothing = ls}), a, soft, [&] {
                 return mean([&](index_t k) {
                   const double t = smooth(soft[k]);
                   return (1 - t) * a[k] + std::log1p(std::exp(-a[k]));  // - logsigmoid(a)
                 });
               });
  }
  for (double gamma : {2.0, 0.0, 1.5}) {
    check_loss("BinaryFocalLoss", lux::BinaryFocalLoss({.gamma = gamma}), prob, bin, [&] {
      return mean([&](index_t k) {
        const double q = prob[k] + kEps, p = bin[k] * q + (1 - bin[k]) * (1 - q);
        return -std::pow(1 - p, gamma) * std::log(p);
      });
    });
  }
  // Class losses: (C, B) = (4, 5), classes along dimension 0, mean over the 5 samples.
  auto per_sample = [&](auto f) {
    double t = 0;
    for (index_t col = 0; col < 5; ++col)
      for (index_t c = 0; c < 4; ++c) t += f(c, col);
    return t / 5;
  };
  for (double ls : {0.0, 0.1}) {
    auto yt = [&](index_t c, index_t col) { return Y(c, col) * (1 - ls) + ls / 4; };
    check_loss("CrossEntropyLoss", lux::CrossEntropyLoss({.label_smoothing = ls}), P, Y, [&] {
      return per_sample(
          [&](index_t c, index_t col) { return -xlogy(yt(c, col), P(c, col) + kEps); });
    });
    check_loss("CrossEntropyLoss logits",
               lux::CrossEntropyLoss({.logits = true, .label_smoothing = ls}), a, Y, [&] {
                 return per_sample([&](index_t c, index_t col) {
                   double z = 0;
                   for (index_t j = 0; j < 4; ++j) z += std::exp(a(j, col));
                   return -yt(c, col) * (a(c, col) - std::log(z));
                 });
               });
  }
  check_loss("CrossEntropyLoss logits, soft targets", lux::CrossEntropyLoss({.logits = true}), a, Q,
             [&] {
               return per_sample([&](index_t c, index_t col) {
                 double z = 0;
                 for (index_t j = 0; j < 4; ++j) z += std::exp(a(j, col));
                 return -Q(c, col) * (a(c, col) - std::log(z));
               });
             });
  check_loss("FocalLoss", lux::FocalLoss{}, P, Y, [&] {
    return per_sample([&](index_t c, index_t col) {
      const double q = P(c, col) + kEps;
      return -Y(c, col) * std::pow(1 - q, 2) * std::log(q);
    });
  });
  check_loss("KLDivergenceLoss", lux::KLDivergenceLoss{}, P, Q, [&] {
    return per_sample([&](index_t c, index_t col) {
      return xlogy(Q(c, col), Q(c, col)) - xlogy(Q(c, col), P(c, col) + kEps);
    });
  });
  // Overlap losses: per sample (last dimension) for a matrix, whole array for a vector.
  auto dice = [&](const double* p, const double* t, index_t m) {
    double s1 = 0, s2 = 0, s3 = 0;
    for (index_t j = 0; j < m; ++j) s1 += t[j] * p[j], s2 += p[j] * p[j], s3 += t[j] * t[j];
    return 1 - (2 * s1 + 1) / (s2 + s3 + 1);
  };
  auto tversky = [&](const double* p, const double* t, index_t m, double beta) {
    double tp = 0, den = 0;
    for (index_t j = 0; j < m; ++j) {
      tp += t[j] * p[j];
      den += t[j] * p[j] + beta * (1 - t[j]) * p[j] + (1 - beta) * t[j] * (1 - p[j]);
    }
    return 1 - (tp + 1) / (den + 1);
  };
  check_loss("DiceCoeffLoss", lux::DiceCoeffLoss{}, prob, bin, [&] {
    double t = 0;
    for (index_t col = 0; col < 5; ++col) t += dice(prob.data() + 4 * col, bin.data() + 4 * col, 4);
    return t / 5;
  });
  check_loss("TverskyLoss", lux::TverskyLoss{}, prob, bin, [&] {
    double t = 0;
    for (index_t col = 0; col < 5; ++col)
      t += tversky(prob.data() + 4 * col, bin.data() + 4 * col, 4, 0.7);
    return t / 5;
  });
  const lux::Tensor<double, 1> p1 = lux::copy(prob.reshape(-1)), b1 = lux::copy(bin.reshape(-1));
  check_loss("DiceCoeffLoss vector", lux::DiceCoeffLoss{}, p1, b1,
             [&] { return dice(p1.data(), b1.data(), 20); });
  check_loss("TverskyLoss vector", lux::TverskyLoss({.beta = 0.3}), p1, b1,
             [&] { return tversky(p1.data(), b1.data(), 20, 0.3); });
  // Lux's documented examples.
  const lux::Tensor<double, 1> y123({3}, {1, 2, 3}), m123({3}, {1.1, 2.1, 3.1});
  CHECK(lux::DiceCoeffLoss{}(m123, y123) == Approx(0.000992391663909964));
  CHECK(lux::HuberLoss({.delta = 0.05})(m123, y123) == Approx(0.003750000000000005));
  const lux::Tensor<double, 1> s123({3}, {0.5, 1.5, 2.5});
  CHECK(lux::SiameseContrastiveLoss{}(s123, y123) == Approx(-4.833333333333333));
  CHECK(lux::SiameseContrastiveLoss({.margin = 2})(s123, y123) == Approx(-4.0));
  const lux::Tensor<double, 1> yt({4}, {1, -1, 1, 1}), yp({4}, {0.1, 0.3, 1, 1.5});
  CHECK(lux::HingeLoss{}(yp, yt) == Approx(0.55));
  CHECK(lux::SquaredHingeLoss{}(yp, yt) == Approx(0.625));
  const lux::Tensor<double, 1> pk({3}, {1, 3, 3});
  CHECK(lux::PoissonLoss{}(pk, y123) == Approx(0.502312852219817));
  const lux::Tensor<float, 1> ym({3}, {2, -1, 3.14159265f});
  const lux::Tensor<int, 1> yb({3}, {1, 0, 1});  // Lux's Bool[1, 0, 1]
  CHECK(lux::BinaryCrossEntropyLoss({.logits = true})(ym, yb) == Approx(0.160832f));
  // softmax(reshape(-7:7, 3, 5)) with one-hot columns (Lux's CrossEntropyLoss / FocalLoss docs)
  lux::Tensor<float, 2> logits(lux::shape_t<2>{3, 5});
  for (index_t k = 0; k < 15; ++k) logits[k] = static_cast<float>(k - 7);
  const auto ysm = lux::softmax(logits);
  const lux::Tensor<std::int64_t, 2> yoh({3, 5}, {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0});
  CHECK(lux::CrossEntropyLoss{}(ysm, yoh) == Approx(1.6076053f));
  CHECK(lux::CrossEntropyLoss(lux::agg::sum)(ysm, yoh) == Approx(5 * 1.6076053f));
  CHECK(lux::CrossEntropyLoss({.label_smoothing = 0.15})(ysm, yoh) == Approx(1.5776052f));
  CHECK(lux::FocalLoss{}(ysm, yoh) == Approx(1.1277556f));
  const lux::Tensor<double, 2> ybf({2, 3}, {0, 1, 1, 0, 0, 1}),
      pbf({2, 3}, {0.268941, 0.731059, 0.5, 0.5, 0.268941, 0.731059});
  CHECK(lux::BinaryFocalLoss{}(pbf, ybf) == Approx(0.0728675615927385));
  CHECK(lux::BinaryFocalLoss({.gamma = 0})(pbf, ybf) ==
        Approx(lux::BinaryCrossEntropyLoss{}(pbf, ybf)));
  const lux::Tensor<double, 2> p1k({2, 2}, {1, 0, 0, 1}), p2k({2, 2}, 0.5);
  CHECK(lux::KLDivergenceLoss{}(p2k, p1k) == Approx(std::log(2.0)));
  CHECK(lux::KLDivergenceLoss(lux::agg::sum)(p2k, p1k) == Approx(2 * std::log(2.0)));
  CHECK(lux::KLDivergenceLoss({.epsilon = 0})(p2k, p2k) == 0);
  CHECK(std::isinf(lux::KLDivergenceLoss({.epsilon = 0})(p1k, p2k)));
}

// =================================================================================================
TEST_CASE("loss aggregations: mean, sum, none and custom", "[losses][agg]") {
  const lux::shape_t<2> s{3, 4};
  const auto a = random_tensor<double, 2>(s, 21, 0.05, 0.95);
  auto y = random_tensor<double, 2>(s, 22);
  for (auto& v : y) v = v < 0 ? 0 : 1;
  const auto dl = random_tensor<double, 2>(s, 23);
  // The mean of squares, with its backward.
  const auto msq = lux::agg::custom(
      [](auto l) {
        double t = 0;
        for (auto v : l) t += v * v;
        return t / static_cast<double>(l.numel());
      },
      [](auto l, auto d) {
        auto g = lux::copy(l);
        for (auto& v : g) v *= 2 * d / static_cast<double>(l.numel());
        return g;
      });
  auto check_aggs = [&](const std::string& name, auto mean_loss, auto sum_loss, auto none_loss,
                        auto custom_loss, const lux::shape_t<2>& lshape) {
    INFO(name);
    const double count = static_cast<double>(lux::shape_numel(lshape));
    const auto rm = mean_loss.value_and_gradient(a, y);
    const auto& gm = rm.grad;
    const double lm = rm.loss;
    const auto [ls, gs] = sum_loss.value_and_gradient(a, y);
    CHECK(ls == Approx(lm * count).epsilon(1e-14));
    CHECK(max_rel_err(gs, [&] {
            auto t = gm;
            for (auto& v : t) v *= count;
            return t;
          }()) <= 1e-14);
    // none: the unaggregated tensor; its gradient is the VJP with dl.
    const auto lnone = none_loss(a, y);
    REQUIRE(lnone.shape() == lshape);
    double t = 0;
    for (auto v : lnone) t += v;
    CHECK(t == Approx(ls).epsilon(1e-14));
    const auto dln = random_tensor<double, 2>(lshape, 24);
    const auto [ln2, gn] = none_loss.value_and_gradient(a, y, dln);
    CHECK(max_rel_err(ln2, lnone) == 0);
    const auto fdn = lux_test::numerical_gradient<2>(
        [&](const T2& z) { return lux_test::dot(none_loss(z, y), dln); }, a);
    CHECK(max_rel_err(gn, fdn) <= 2e-7);
    // custom: value and finite differences; the upstream scalar scales the gradient.
    const auto [lc, gc] = custom_loss.value_and_gradient(a, y);
    CHECK(lc == custom_loss(a, y));
    const auto fdc = lux_test::numerical_gradient<2>(
        [&](const T2& z) { return static_cast<double>(custom_loss(z, y)); }, a);
    CHECK(max_rel_err(gc, fdc) <= 2e-7);
    const auto [lm3, gm3] = mean_loss.value_and_gradient(a, y, 2.5);
    CHECK(lm3 == lm);
    CHECK(max_rel_err(gm3, [&] {
            auto z = gm;
            for (auto& v : z) v *= 2.5;
            return z;
          }()) <= 1e-15);
  };
  check_aggs("MSELoss", lux::MSELoss{}, lux::MSELoss(lux::agg::sum), lux::MSELoss(lux::agg::none),
             lux::MSELoss(msq), s);
  check_aggs("CrossEntropyLoss", lux::CrossEntropyLoss({.logits = true}),
             lux::CrossEntropyLoss({.logits = true}, lux::agg::sum),
             lux::CrossEntropyLoss({.logits = true}, lux::agg::none),
             lux::CrossEntropyLoss({.logits = true}, msq), {1, 4});
  check_aggs("KLDivergenceLoss", lux::KLDivergenceLoss{}, lux::KLDivergenceLoss(lux::agg::sum),
             lux::KLDivergenceLoss(lux::agg::none), lux::KLDivergenceLoss(msq), {1, 4});
  check_aggs("DiceCoeffLoss", lux::DiceCoeffLoss{}, lux::DiceCoeffLoss(lux::agg::sum),
             lux::DiceCoeffLoss(lux::agg::none), lux::DiceCoeffLoss(msq), {1, 4});
  // KLDivergenceLoss with a custom agg aggregates the entropy and the cross entropy separately.
  const auto kl_none = lux::KLDivergenceLoss(lux::agg::none)(a, y);
  const auto ce_none = lux::CrossEntropyLoss(lux::agg::none)(a, y);
  lux::Tensor<double, 2> ent(kl_none.shape());
  for (index_t k = 0; k < ent.numel(); ++k) ent[k] = kl_none[k] - ce_none[k];
  CHECK(lux::KLDivergenceLoss(msq)(a, y) == Approx(msq(ent.cview()) + msq(ce_none.cview())));
}

// =================================================================================================
TEST_CASE("CrossEntropyLoss and FocalLoss accept class indices", "[losses][indices]") {
  const std::vector<std::int64_t> idx = {2, 0, 3, 3, 1};
  const auto x = random_tensor<double, 2>({4, 5}, 31, -3, 3);
  const auto p = random_probabilities({4, 5}, 32);
  const auto y = one_hot(idx, 4);
  const lux::Tensor<std::int64_t, 1> it({5}, {2, 0, 3, 3, 1});
  const std::span<const std::int64_t> sp(idx);
  auto same = [&](const auto& loss, const T2& yh) {
    const auto [l1, g1] = loss.value_and_gradient(yh, y);
    const auto [l2, g2] = loss.value_and_gradient(yh, it);
    const auto [l3, g3] = loss.value_and_gradient(yh, sp);
    CHECK(l2 == Approx(l1).epsilon(1e-15));
    CHECK(l3 == l2);
    CHECK(max_rel_err(g2, g1) <= 1e-15);
    CHECK(max_rel_err(g3, g2) == 0);
  };
  same(lux::CrossEntropyLoss{}, p);
  same(lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.1}), x);
  same(lux::FocalLoss({.gamma = 1.5}), p);
  // Classes along dimension 1 of a (L, C, N) array: indices of shape (L, N).
  const auto x3 = random_tensor<double, 3>({3, 4, 2}, 33, -2, 2);
  const lux::Tensor<std::int64_t, 2> i3({3, 2}, {0, 3, 2, 1, 1, 0});
  T3 y3(lux::shape_t<3>{3, 4, 2});
  for (index_t n = 0; n < 2; ++n)
    for (index_t l = 0; l < 3; ++l) y3(l, i3(l, n), n) = 1;
  const auto ce3 = lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.05, .dims = 1});
  const auto [l1, g1] = ce3.value_and_gradient(x3, i3);
  const auto [l2, g2] = ce3.value_and_gradient(x3, y3);
  CHECK(l1 == Approx(l2).epsilon(1e-15));
  CHECK(max_rel_err(g1, g2) <= 1e-15);
  const auto fd = lux_test::numerical_gradient<3>([&](const T3& t) { return ce3(t, i3); }, x3);
  CHECK(max_rel_err(g1, fd) <= 2e-7);
  const auto per = lux::CrossEntropyLoss({.logits = true, .dims = 1}, lux::agg::none)(x3, i3);
  CHECK(per.shape() == lux::shape_t<3>{3, 1, 2});
  // std::span for a (B, C) array with classes along dimension 1.
  const auto xt = random_tensor<double, 2>({5, 4}, 34, -2, 2);
  const auto ct = lux::CrossEntropyLoss({.logits = true, .dims = 1});
  T2 yt(lux::shape_t<2>{5, 4});
  for (index_t b = 0; b < 5; ++b) yt(b, idx[b]) = 1;
  CHECK(ct(xt, sp) == Approx(ct(xt, yt)).epsilon(1e-15));
  // -inf logits of classes with zero target weight contribute 0 (no NaN).
  T2 xm = x;
  xm(1, 0) = -INFINITY;
  const auto [lm, gm] = lux::CrossEntropyLoss({.logits = true}).value_and_gradient(xm, it);
  CHECK(std::isfinite(lm));
  for (auto v : gm) CHECK(std::isfinite(v));
}

// =================================================================================================
TEST_CASE("losses agree with PyTorch fixtures", "[losses][pytorch]") {
  const lux_test::fixture_file fx("losses.txt");
  double worst_d = 0, worst_f = 0, worst_d_eps = 0, worst_f_eps = 0;
  // Tolerances: double 1e-13 (Lux's ε = eps(T) inside the logs shifts a gradient -y/(ŷ + ε) by
  // ε/ŷ relative: 2e-14 at ŷ = 0.01); float 1e-6, and 3e-5 where ε = eps(Float32) enters.
  auto cmp = [&](auto loss, auto yh, const auto& y, const std::string& tag, auto value_type,
                 double ftol = 1e-6) {
    using T = decltype(value_type);
    constexpr std::size_t N = decltype(yh)::rank;
    INFO(tag);
    const auto [l, g] = loss.value_and_gradient(yh, y);
    const double el = std::abs(static_cast<double>(l) - fx.scalar(tag + "_loss")) /
                      std::abs(fx.scalar(tag + "_loss"));
    const double eg = max_rel_err(g, fx.tensor<double, N>(tag + "_grad"));
    const double tol = std::is_same_v<T, float> ? ftol : 1e-13;
    CHECK(el <= tol);
    CHECK(eg <= tol);
    const bool with_eps = ftol > 1e-6;
    double& w = std::is_same_v<T, float> ? (with_eps ? worst_f_eps : worst_f)
                                         : (with_eps ? worst_d_eps : worst_d);
    w = std::max({w, el, eg});
  };
  auto indices = [](const auto& d) {
    lux::Tensor<std::int64_t, std::remove_cvref_t<decltype(d)>::rank> i(d.shape());
    for (index_t k = 0; k < d.numel(); ++k) i[k] = static_cast<std::int64_t>(d[k]);
    return i;
  };
  const auto ce_idx = indices(fx.tensor<double, 1>("ce_idx"));
  const auto ce3_idx = indices(fx.tensor<double, 2>("ce3_idx"));
  const auto onehot = [&] {
    T2 y(lux::shape_t<2>{5, 6});
    for (index_t b = 0; b < 6; ++b) y(ce_idx[b], b) = 1;
    return y;
  }();
  auto run = [&](auto vt) {
    using T = decltype(vt);
    auto F2 = [&](const std::string& n) { return fx.tensor<T, 2>(n); };
    cmp(lux::CrossEntropyLoss({.logits = true}), F2("ce_x"), ce_idx, "ce_idx", vt);
    cmp(lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.1}), F2("ce_x"), ce_idx,
        "ce_ls", vt);
    cmp(lux::CrossEntropyLoss({.logits = true}), F2("ce_x"), F2("ce_p"), "ce_prob", vt);
    cmp(lux::CrossEntropyLoss{}, F2("ce_nolog_p"), onehot, "ce_nologit", vt, 3e-5);
    cmp(lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.05, .dims = 1}),
        fx.tensor<T, 3>("ce3_x"), ce3_idx, "ce3", vt);
    cmp(lux::BinaryCrossEntropyLoss{}, F2("bce_p"), F2("bce_y"), "bce", vt, 3e-5);
    cmp(lux::BinaryCrossEntropyLoss({.logits = true}), F2("bce_x"), F2("bce_y"), "bcel", vt);
    cmp(lux::MSELoss{}, F2("reg_a"), F2("reg_b"), "mse", vt);
    cmp(lux::MAELoss{}, F2("reg_a"), F2("reg_b"), "mae", vt);
    cmp(lux::HuberLoss{}, F2("reg_a"), F2("reg_b"), "huber1", vt);
    cmp(lux::HuberLoss({.delta = 0.5}), F2("reg_a"), F2("reg_b"), "huber05", vt);
    cmp(lux::HingeLoss{}, F2("reg_a"), F2("reg_s"), "hinge", vt);
    cmp(lux::SquaredHingeLoss{}, F2("reg_a"), F2("reg_s"), "sqhinge", vt);
    cmp(lux::PoissonLoss({.epsilon = kEps}), F2("reg_q"), F2("reg_k"), "poisson", vt);
    cmp(lux::KLDivergenceLoss{}, F2("kl_q"), F2("kl_p"), "kl", vt, 3e-5);
  };
  run(double{});
  run(float{});
  SUCCEED("max relative error vs PyTorch: double "
          << worst_d << ", float " << worst_f << "; with eps(T) in a log: double " << worst_d_eps
          << ", float " << worst_f_eps);
}

// =================================================================================================
TEST_CASE("GenericLossFunction differentiates with dual numbers or an explicit derivative",
          "[losses][generic]") {
  using D = lux::detail::dual<double>;
  // The dual number's rules against the analytic derivatives at x = 0.7.
  const D x(0.7, 1);
  using std::exp;
  using std::log;
  CHECK(log(x).der == Approx(1 / 0.7));
  CHECK(exp(x).der == Approx(std::exp(0.7)));
  CHECK(sqrt(x).der == Approx(0.5 / std::sqrt(0.7)));
  CHECK(pow(x, 3).der == Approx(3 * 0.49));
  CHECK(pow(2.0, x).der == Approx(std::pow(2, 0.7) * std::log(2.0)));
  CHECK(pow(x, x).der == Approx(std::pow(0.7, 0.7) * (std::log(0.7) + 1)));
  CHECK((1 / x).der == Approx(-1 / 0.49));
  CHECK((x / (x + 1)).der == Approx(1 / (1.7 * 1.7)));
  CHECK(abs(-x).der == 1);
  CHECK(abs(x - 1).der == -1);
  CHECK(tanh(x).der == Approx(1 - std::tanh(0.7) * std::tanh(0.7)));
  CHECK(log1p(x).der == Approx(1 / 1.7));
  CHECK(expm1(x).der == Approx(std::exp(0.7)));
  CHECK(max(x, 0.5).der == 1);
  CHECK(min(x, 0.5).der == 0);
  CHECK((x > 0.5 && 0.5 < x && x != 1.0));

  const auto a = random_tensor<double, 2>({3, 4}, 41, 0.1, 2);
  const auto b = random_tensor<double, 2>({3, 4}, 42, 0.1, 2);
  auto f = [](auto yh, auto y) {
    using std::log;
    using std::max;
    using std::pow;
    using std::sqrt;
    return pow(yh - y, 2) + log(1 + yh * y) - sqrt(yh) + max(yh - y, 0.0) / (1 + y);
  };
  auto df = [](double yh, double y) {
    return 2 * (yh - y) + y / (1 + yh * y) - 0.5 / std::sqrt(yh) + (yh > y ? 1 / (1 + y) : 0.0);
  };
  const auto via_dual = lux::GenericLossFunction(f);
  const auto via_df = lux::GenericLossFunction(f, df);
  const auto summed = lux::GenericLossFunction(f, lux::agg::sum);
  const auto [l1, g1] = via_dual.value_and_gradient(a, b);
  const auto [l2, g2] = via_df.value_and_gradient(a, b);
  CHECK(l1 == l2);
  CHECK(max_rel_err(g1, g2) <= 1e-15);
  CHECK(summed(a, b) == Approx(12 * l1).epsilon(1e-14));
  const auto fd = lux_test::numerical_gradient<2>([&](const T2& t) { return via_dual(t, b); }, a);
  CHECK(max_rel_err(g1, fd) <= 2e-7);
  // Lux's documented example: mean((ŷ - y)²) through a generic function, and in float.
  const lux::Tensor<double, 1> y123({3}, {1, 2, 3}), m({3}, {1.1, 1.9, 3.1});
  const auto mse = lux::GenericLossFunction([](auto yh, auto y) { return (yh - y) * (yh - y); });
  CHECK(mse(m, y123) == Approx(0.01));
  const lux::Tensor<float, 1> mf({3}, {1.1f, 1.9f, 3.1f});
  const auto [lf, gf] = mse.value_and_gradient(mf, y123);
  CHECK(lf == Approx(0.01f));
  CHECK(gf[0] == Approx(2 * 0.1f / 3));
}

// =================================================================================================
TEST_CASE("float losses agree with double", "[losses][float]") {
  const auto a = random_tensor<double, 2>({10, 7}, 51, -3, 3);
  const auto pr = random_tensor<double, 2>({10, 7}, 52, 0.05, 0.95);
  auto y = random_tensor<double, 2>({10, 7}, 53);
  for (auto& v : y) v = v < 0 ? 0 : 1;
  const std::vector<std::int64_t> idx = {0, 9, 4, 4, 2, 7, 1};
  const std::span<const std::int64_t> sp(idx);
  auto tof = [](const T2& t) {
    lux::Tensor<float, 2> f(t.shape());
    for (index_t k = 0; k < t.numel(); ++k) f[k] = static_cast<float>(t[k]);
    return f;
  };
  // tol: float rounding, plus ε = eps(T) differing between the types in BCE (ε/ŷ ≤ 2.4e-6).
  auto agree = [&](const auto& loss, const T2& yh, const auto& target, double tol = 2e-6) {
    const auto [ld, gd] = loss.value_and_gradient(yh, target);
    const auto [lf, gf] = loss.value_and_gradient(tof(yh), target);
    CHECK(lf == Approx(ld).epsilon(tol));
    CHECK(max_rel_err(gf, gd) <= tol);
  };
  agree(lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.1}), a, sp);
  agree(lux::MSELoss{}, a, y);
  agree(lux::BinaryCrossEntropyLoss{}, pr, y, 5e-6);
  agree(lux::DiceCoeffLoss{}, pr, y);
}

// =================================================================================================
namespace {
/// A parameter-free layer y = 2x, enough to exercise the objective form.
struct doubler {
  using is_lux_layer = void;
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    auto y = lux::copy(lux::as_view(x));
    for (auto& v : y) v *= 2;
    return std::pair{std::move(y), st};
  }
};
}  // namespace

TEST_CASE("losses plug into training as objectives of a model, its parameters, states and a batch",
          "[losses][objective]") {
  const auto x = random_tensor<float, 2>({3, 4}, 61);
  const auto y = random_tensor<float, 2>({3, 4}, 62);
  const lux::empty_tuple ps, st;
  const auto r = lux::MSELoss{}(doubler{}, ps, st, std::pair{x, y});
  const auto y2 = doubler{}.forward(x, ps, st).first;
  CHECK(r.loss == lux::MSELoss{}(y2, y));
  static_assert(std::is_same_v<decltype(r.loss), float>);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r.stats)>, lux::empty_tuple>);
  const std::vector<std::int64_t> classes = {0, 1, 2, 0};
  const auto [l, st2, stats] = lux::CrossEntropyLoss({.logits = true})(
      doubler{}, ps, st, std::tuple{x, std::span<const std::int64_t>(classes)});
  (void)st2;
  (void)stats;
  CHECK(std::isfinite(l));
}

// =================================================================================================
TEST_CASE("losses reject bad arguments", "[losses][errors]") {
  const T2 a(lux::shape_t<2>{3, 4}, 0.5), b(lux::shape_t<2>{3, 5}, 0.5);
  CHECK_THROWS_AS(lux::MSELoss{}(a, b), lux::shape_error);
  CHECK_THROWS_WITH(
      lux::HuberLoss{}(a, b),
      Catch::Contains("HuberLoss: y has shape (3, 5), expected (3, 4) to match yhat"));
  CHECK_THROWS_AS(lux::CrossEntropyLoss{}(a, b), lux::shape_error);
  CHECK_THROWS_AS(lux::DiceCoeffLoss{}(a, b), lux::shape_error);
  CHECK_THROWS_AS(lux::KLDivergenceLoss{}(a, b), lux::shape_error);
  // class indices: out of range, negative, wrong shape / length
  const lux::Tensor<std::int64_t, 1> bad({4}, {0, 1, 7, 2}), neg({4}, {0, -1, 1, 2}),
      short3({3}, {0, 1, 2});
  CHECK_THROWS_WITH(lux::CrossEntropyLoss{}(a, bad),
                    Catch::Contains("CrossEntropyLoss: class index 7 at position 2 is out of range "
                                    "for 3 classes"));
  CHECK_THROWS_AS(lux::FocalLoss{}(a, neg), lux::argument_error);
  CHECK_THROWS_AS(lux::CrossEntropyLoss{}(a, short3), lux::shape_error);
  const std::vector<std::int64_t> v3 = {0, 1, 2};
  CHECK_THROWS_AS(lux::CrossEntropyLoss{}(a, std::span<const std::int64_t>(v3)), lux::shape_error);
  CHECK_NOTHROW(lux::CrossEntropyLoss({.dims = 1})(a, std::span<const std::int64_t>(v3)));
  // options
  CHECK_THROWS_WITH(lux::CrossEntropyLoss({.label_smoothing = 1.5})(a, a),
                    Catch::Contains("label_smoothing must be in [0, 1], got 1.5"));
  CHECK_THROWS_AS(lux::BinaryCrossEntropyLoss({.label_smoothing = -0.1})(a, a),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::KLDivergenceLoss({.label_smoothing = 2})(a, a), lux::argument_error);
  CHECK_THROWS_AS(lux::SiameseContrastiveLoss({.margin = -1})(a, a), lux::argument_error);
  CHECK_THROWS_AS(lux::CrossEntropyLoss({.dims = 2})(a, a), lux::argument_error);
  CHECK_THROWS_AS(lux::FocalLoss({.dims = -1})(a, a), lux::argument_error);
  // upstream gradients of the wrong shape
  const T2 dl_bad(lux::shape_t<2>{1, 4});
  CHECK_THROWS_AS(lux::MSELoss(lux::agg::none).value_and_gradient(a, a, dl_bad), lux::shape_error);
  CHECK_NOTHROW(lux::CrossEntropyLoss(lux::agg::none).value_and_gradient(a, a, dl_bad));
  const auto wrong = lux::agg::custom([](auto l) { return l[0]; },
                                      [](auto, auto) {
                                        return lux::Tensor<double, 2>(lux::shape_t<2>{1, 1});
                                      });
  CHECK_THROWS_WITH(lux::MSELoss(wrong).value_and_gradient(a, a),
                    Catch::Contains("MSELoss: agg.backward returned shape (1, 1)"));
}
