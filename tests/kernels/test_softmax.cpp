// Tests of lux/kernels/softmax.hpp: softmax, logsoftmax, logsumexp and their backward passes —
// the oracle ladder of DESIGN.md §10:
//   1. an independent long-double reference written here;
//   2. generic vs looped agreement (contiguous dim 0, strided dims, chunked inner extents, the
//      OpenMP path);
//   3. central finite differences in double for the three backward passes;
//   4. PyTorch fixtures (tests/fixtures/make_loss_fixtures.py → losses.txt), with ±1e4 logits;
//   5. NNlib's rules at infinite logits, and error paths.
// Every case uses rank-3 arrays (rank 2 only for the fixture of a (C, B) matrix), which bounds
// the instantiations. The measured errors are reported with -s (SUCCEED messages).
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <lux/kernels/softmax.hpp>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using lux_test::to_double;

// ---- independent reference (long double, slice by slice) -----------------------------------
struct slices {
  index_t inner = 1, n = 1, outer = 1;
  template <std::size_t N>
  slices(const lux::shape_t<N>& s, index_t dim) {
    for (index_t d = 0; d < static_cast<index_t>(N); ++d) {
      if (d < dim) inner *= s[d];
      if (d > dim) outer *= s[d];
    }
    n = s[dim];
  }
  index_t at(index_t i, index_t c, index_t o) const { return i + inner * (c + n * o); }
};

enum class op { softmax, logsoftmax };

template <std::size_t N>
lux::Tensor<double, N> ref_forward(const lux::Tensor<double, N>& x, index_t dim, op which) {
  const slices g(x.shape(), dim);
  lux::Tensor<double, N> y(x.shape());
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      long double m = -INFINITY, s = 0;
      for (index_t c = 0; c < g.n; ++c) m = std::max<long double>(m, x[g.at(i, c, o)]);
      for (index_t c = 0; c < g.n; ++c)
        s += std::exp(static_cast<long double>(x[g.at(i, c, o)]) - m);
      for (index_t c = 0; c < g.n; ++c) {
        const long double z = static_cast<long double>(x[g.at(i, c, o)]) - m;
        y[g.at(i, c, o)] =
            static_cast<double>(which == op::softmax ? std::exp(z) / s : z - std::log(s));
      }
    }
  return y;
}
template <std::size_t N>
lux::Tensor<double, N> ref_logsumexp(const lux::Tensor<double, N>& x, index_t dim) {
  const slices g(x.shape(), dim);
  auto shape = x.shape();
  shape[dim] = 1;
  lux::Tensor<double, N> l(shape);
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      long double m = -INFINITY, s = 0;
      for (index_t c = 0; c < g.n; ++c) m = std::max<long double>(m, x[g.at(i, c, o)]);
      for (index_t c = 0; c < g.n; ++c)
        s += std::exp(static_cast<long double>(x[g.at(i, c, o)]) - m);
      l[i + g.inner * o] = static_cast<double>(m + std::log(s));
    }
  return l;
}
/// dx for dy and the exact forward output y (softmax / logsoftmax), or for logsumexp (dl, x, l).
template <std::size_t N>
lux::Tensor<double, N> ref_backward(const lux::Tensor<double, N>& dy,
                                    const lux::Tensor<double, N>& y, index_t dim, op which) {
  const slices g(y.shape(), dim);
  lux::Tensor<double, N> dx(y.shape());
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      long double s = 0;
      for (index_t c = 0; c < g.n; ++c) {
        const index_t k = g.at(i, c, o);
        s += which == op::softmax ? static_cast<long double>(dy[k]) * y[k] : dy[k];
      }
      for (index_t c = 0; c < g.n; ++c) {
        const index_t k = g.at(i, c, o);
        dx[k] = static_cast<double>(which == op::softmax
                                        ? y[k] * (dy[k] - s)
                                        : dy[k] - std::exp(static_cast<long double>(y[k])) * s);
      }
    }
  return dx;
}
template <std::size_t N>
lux::Tensor<double, N> ref_logsumexp_backward(const lux::Tensor<double, N>& dl,
                                              const lux::Tensor<double, N>& x,
                                              const lux::Tensor<double, N>& l, index_t dim) {
  const slices g(x.shape(), dim);
  lux::Tensor<double, N> dx(x.shape());
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t c = 0; c < g.n; ++c)
      for (index_t i = 0; i < g.inner; ++i)
        dx[g.at(i, c, o)] = dl[i + g.inner * o] * std::exp(x[g.at(i, c, o)] - l[i + g.inner * o]);
  return dx;
}

/// max_k |a_k - ref_k| / max(|ref_k|, floor): elementwise relative error (log outputs).
template <class A, class B>
double max_elem_err(const A& a, const B& ref, double floor = 1) {
  double e = 0;
  for (index_t k = 0; k < ref.numel(); ++k) {
    const double x = static_cast<double>(a.data()[k]), y = ref.data()[k];
    if (std::isnan(x) || std::isnan(y)) return INFINITY;
    e = std::max(e, std::abs(x - y) / std::max(std::abs(y), floor));
  }
  return e;
}

template <class T>
lux::Tensor<T, 3> cast(const lux::Tensor<double, 3>& x) {
  auto t = lux::Tensor<T, 3>::uninitialized(x.shape());
  for (index_t k = 0; k < x.numel(); ++k) t[k] = static_cast<T>(x[k]);
  return t;
}

struct case3 {
  lux::shape_t<3> shape;
  index_t dim;
};
// Contiguous slices (dim 0) short, long and parallel; strided slices with inner below the SIMD
// width, inside one chunk, across chunks (inner 300 > 256) and parallel.
const std::vector<case3> kCases = {{{5, 4, 3}, 0},    {{5, 4, 3}, 1},    {{5, 4, 3}, 2},
                                   {{1000, 3, 1}, 0}, {{64, 600, 1}, 0}, {{3, 1000, 1}, 1},
                                   {{17, 33, 5}, 1},  {{300, 7, 20}, 1}, {{20, 3, 40}, 2},
                                   {{1, 9, 2}, 1},    {{7, 1, 3}, 1}};

}  // namespace

TEMPLATE_TEST_CASE("softmax family matches a long double reference in both modes", "[softmax]",
                   float, double) {
  using T = TestType;
  constexpr double eps = std::numeric_limits<T>::epsilon();
  // Error measures: softmax max|Δ| / max|ref|; logsoftmax and logsumexp elementwise relative
  // (floor 1); softmax / logsoftmax backward max|Δ| / max(max|ref|, max|dy|) — dy − Σ dy·y
  // cancels when y is nearly one-hot, so the scale is dy's. logsumexp backward is
  // exp(x − l) with l rounded to T: its relative error is about (|l|/2 + a few) eps, so the
  // bound scales with max|l| (5e-4 in float for l ≈ 1e4).
  const double tol_prob = 16 * eps, tol_log = 8 * eps, tol_back = 16 * eps;
  double worst[2][6] = {};
  std::uint64_t seed = 1;
  for (const auto& c : kCases) {
    for (double scale : {1.0, 1000.0}) {  // U(-10, 10) and U(-1e4, 1e4) logits
      CAPTURE(c.shape, c.dim, scale);
      const auto xt = cast<T>([&] {
        auto x = random_tensor<double, 3>(c.shape, seed++, -10, 10);
        for (auto& v : x) v *= scale;
        return x;
      }());
      const auto xd = to_double(xt);
      const auto y_ref = ref_forward(xd, c.dim, op::softmax);
      const auto ls_ref = ref_forward(xd, c.dim, op::logsoftmax);
      const auto l_ref = ref_logsumexp(xd, c.dim);
      const auto dy = cast<T>(random_tensor<double, 3>(c.shape, seed++));
      const auto dl = cast<T>(random_tensor<double, 3>(l_ref.shape(), seed++));
      const auto dx_sm_ref = ref_backward(to_double(dy), y_ref, c.dim, op::softmax);
      const auto dx_ls_ref = ref_backward(to_double(dy), ls_ref, c.dim, op::logsoftmax);
      const auto dx_l_ref = ref_logsumexp_backward(to_double(dl), xd, l_ref, c.dim);
      double lmax = 0, dymax = 0;
      for (auto v : l_ref) lmax = std::max(lmax, std::abs(v));
      for (auto v : dy) dymax = std::max(dymax, std::abs(static_cast<double>(v)));
      const double tol_lse_back = (lmax + 8) * eps;

      auto run = [&](auto mode, double* w) {
        const auto y = lux::softmax(mode, xt, c.dim);
        const auto ls = lux::logsoftmax(mode, xt, c.dim);
        const auto l = lux::logsumexp(mode, xt, c.dim);
        REQUIRE(l.shape() == l_ref.shape());
        const double e[6] = {
            max_rel_err(y, y_ref),
            max_elem_err(ls, ls_ref),
            max_elem_err(l, l_ref),
            max_rel_err(lux::softmax_backward(mode, dy, y, c.dim).dx, dx_sm_ref, dymax),
            max_rel_err(lux::logsoftmax_backward(mode, dy, ls, c.dim).dx, dx_ls_ref, dymax),
            max_rel_err(lux::logsumexp_backward(mode, dl, xt, l, c.dim).dx, dx_l_ref)};
        CHECK(e[0] <= tol_prob);
        CHECK(e[1] <= tol_log);
        CHECK(e[2] <= tol_log);
        CHECK(e[3] <= tol_back);
        CHECK(e[4] <= tol_back);
        CHECK(e[5] <= tol_lse_back);
        for (int k = 0; k < 6; ++k)
          w[k] = std::max(w[k], k == 5 ? e[k] / tol_lse_back : e[k] / eps);
        return y;
      };
      const auto yg = run(lux::generic_op{}, worst[0]);
      const auto yl = run(lux::looped_op{}, worst[1]);
      CHECK(max_rel_err(yl, to_double(yg)) <= 2 * tol_prob);
      static_assert(std::is_same_v<lux::operation_mode_t<decltype(xt)>, lux::looped_op>);
    }
  }
  for (int m = 0; m < 2; ++m)
    SUCCEED((m ? "looped" : "generic")
            << " max errors in eps (softmax, logsoftmax, logsumexp, their "
               "backward; logsumexp backward as a fraction of its bound): "
            << worst[m][0] << " " << worst[m][1] << " " << worst[m][2] << " " << worst[m][3] << " "
            << worst[m][4] << " " << worst[m][5]);
}

TEST_CASE("softmax family backward passes match central finite differences", "[softmax]") {
  std::uint64_t seed = 100;
  for (index_t dim = 0; dim < 3; ++dim) {
    CAPTURE(dim);
    const lux::shape_t<3> shape{4, 3, 2};
    const auto x = random_tensor<double, 3>(shape, seed++, -3, 3);
    const auto v = random_tensor<double, 3>(shape, seed++);
    auto lshape = shape;
    lshape[dim] = 1;
    const auto vl = random_tensor<double, 3>(lshape, seed++);
    for (auto which : {op::softmax, op::logsoftmax}) {
      auto f = [&](const lux::Tensor<double, 3>& t) {
        return lux_test::dot(which == op::softmax ? lux::softmax(t, dim) : lux::logsoftmax(t, dim),
                             v);
      };
      const auto fd = lux_test::numerical_gradient<3>(f, x);
      const auto dx = which == op::softmax
                          ? lux::softmax_backward(v, lux::softmax(x, dim), dim).dx
                          : lux::logsoftmax_backward(v, lux::logsoftmax(x, dim), dim).dx;
      CHECK(max_rel_err(dx, fd) <= 1e-8);
    }
    auto f = [&](const lux::Tensor<double, 3>& t) {
      return lux_test::dot(lux::logsumexp(t, dim), vl);
    };
    const auto fd = lux_test::numerical_gradient<3>(f, x);
    CHECK(max_rel_err(lux::logsumexp_backward(vl, x, lux::logsumexp(x, dim), dim).dx, fd) <= 1e-8);
  }
}

TEMPLATE_TEST_CASE("softmax family follows NNlib at infinite and NaN logits", "[softmax]", float,
                   double) {
  using T = TestType;
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  // Slices of 3 elements: finite with a -inf, all -inf, two +inf, a NaN, ±1e4.
  const std::vector<std::vector<T>> rows = {
      {0, -inf, 1}, {-inf, -inf, -inf}, {inf, 1, inf}, {nan, 0, 1}, {T(1e4), T(-1e4), 0}};
  const index_t R = static_cast<index_t>(rows.size());
  // The same slices as columns (dim 0, contiguous) and along dim 1 of an (R, 3, 1) array.
  lux::Tensor<T, 3> xc(lux::shape_t<3>{3, R, 1}), xs(lux::shape_t<3>{R, 3, 1});
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < 3; ++c) xc(c, r, 0) = xs(r, c, 0) = rows[r][c];
  const T h = T(0.5), lh = std::log(T(0.5));
  auto check = [&](auto mode, const lux::Tensor<T, 3>& x, index_t dim) {
    CAPTURE(dim, decltype(mode)::name);
    const auto y = lux::softmax(mode, x, dim), ls = lux::logsoftmax(mode, x, dim);
    const auto l = lux::logsumexp(mode, x, dim);
    auto at = [&](const lux::Tensor<T, 3>& t, index_t r, index_t c) {
      return dim == 0 ? t(c, r, 0) : t(r, c, 0);
    };
    auto lat = [&](index_t r) { return dim == 0 ? l(0, r, 0) : l(r, 0, 0); };
    // {0, -inf, 1}
    CHECK(at(y, 0, 1) == 0);
    CHECK(at(y, 0, 2) == Approx(1 / (1 + std::exp(-1.0))));
    CHECK(at(ls, 0, 1) == -inf);
    CHECK(lat(0) == Approx(std::log(1 + std::exp(1.0))));
    // every element -inf: NaN (NNlib), logsumexp -inf
    for (index_t c = 0; c < 3; ++c) CHECK((std::isnan(at(y, 1, c)) && std::isnan(at(ls, 1, c))));
    CHECK(lat(1) == -inf);
    // two +inf: mass split between them
    CHECK(at(y, 2, 0) == h);
    CHECK(at(y, 2, 1) == 0);
    CHECK(at(y, 2, 2) == h);
    CHECK(at(ls, 2, 0) == lh);
    CHECK(at(ls, 2, 1) == -inf);
    CHECK(lat(2) == inf);
    // NaN poisons its slice
    for (index_t c = 0; c < 3; ++c) CHECK(std::isnan(at(y, 3, c)));
    CHECK(std::isnan(lat(3)));
    // ±1e4: finite, no NaN
    CHECK(at(y, 4, 0) == 1);
    CHECK(at(y, 4, 1) == 0);
    CHECK(at(ls, 4, 1) == T(-2e4));
    CHECK(at(ls, 4, 2) == T(-1e4));
    CHECK(lat(4) == T(1e4));
  };
  check(lux::generic_op{}, xc, 0);
  check(lux::looped_op{}, xc, 0);
  check(lux::generic_op{}, xs, 1);
  check(lux::looped_op{}, xs, 1);

  // An empty reduced dimension: empty outputs, logsumexp -inf.
  const lux::Tensor<T, 3> e(lux::shape_t<3>{0, 2, 1});
  CHECK(lux::softmax(e).numel() == 0);
  const auto le = lux::logsumexp(e);
  REQUIRE(le.shape() == lux::shape_t<3>{1, 2, 1});
  CHECK((le[0] == -inf && le[1] == -inf));
}

TEST_CASE("softmax family matches PyTorch fixtures", "[softmax][pytorch]") {
  const lux_test::fixture_file fx("losses.txt");
  double worst = 0;
  auto compare = [&](auto mode, auto x, auto tag, index_t dim, double tol) {
    using X = decltype(x);
    using T = typename X::value_type;
    constexpr std::size_t N = X::rank;
    CAPTURE(tag, dim, decltype(mode)::name);
    const std::string p = tag;
    const auto v = fx.tensor<T, N>(p + "_v");
    const auto vl = fx.tensor<T, N>(p + "_vl");
    const auto y = lux::softmax(mode, x, dim);
    const auto ls = lux::logsoftmax(mode, x, dim);
    const auto l = lux::logsumexp(mode, x, dim);
    const double e[6] = {max_rel_err(y, fx.tensor<double, N>(p + "_softmax")),
                         max_elem_err(ls, fx.tensor<double, N>(p + "_logsoftmax")),
                         max_elem_err(l, fx.tensor<double, N>(p + "_logsumexp")),
                         max_rel_err(lux::softmax_backward(mode, v, y, dim).dx,
                                     fx.tensor<double, N>(p + "_softmax_dx")),
                         max_rel_err(lux::logsoftmax_backward(mode, v, ls, dim).dx,
                                     fx.tensor<double, N>(p + "_logsoftmax_dx")),
                         max_rel_err(lux::logsumexp_backward(mode, vl, x, l, dim).dx,
                                     fx.tensor<double, N>(p + "_logsumexp_dx"))};
    for (double err : e) {
      CHECK(err <= tol);
      if (std::is_same_v<T, double>) worst = std::max(worst, err);
    }
  };
  // sm2: Lux (5, 4) (torch (4, 5), dim 1) with a ±1e4 column and a -1e300 entry; sm3: Lux
  // (4, 3, 2) reduced along dim 1 (strided).
  compare(lux::generic_op{}, fx.tensor<double, 2>("sm2_x"), "sm2", 0, 1e-15);
  compare(lux::looped_op{}, fx.tensor<double, 2>("sm2_x"), "sm2", 0, 1e-15);
  compare(lux::generic_op{}, fx.tensor<double, 3>("sm3_x"), "sm3", 1, 1e-15);
  compare(lux::looped_op{}, fx.tensor<double, 3>("sm3_x"), "sm3", 1, 1e-15);
  compare(lux::looped_op{}, fx.tensor<float, 3>("sm3_x"), "sm3", 1, 1e-6);
  SUCCEED("max error vs PyTorch (double): " << worst);

  // float on sm2: -1e300 becomes -inf, so logsoftmax differs from PyTorch's float64 (-inf vs
  // -1e300) there; softmax and its gradient agree (probability 0 either way).
  const auto xf = fx.tensor<float, 2>("sm2_x");
  CHECK(std::isinf(xf(3, 2)));
  const auto yf = lux::softmax(xf);
  CHECK(max_rel_err(yf, fx.tensor<double, 2>("sm2_softmax")) <= 1e-6);
  CHECK(max_rel_err(lux::softmax_backward(fx.tensor<float, 2>("sm2_v"), yf).dx,
                    fx.tensor<double, 2>("sm2_softmax_dx")) <= 1e-6);
}

TEST_CASE("softmax family rejects bad arguments", "[softmax][errors]") {
  const lux::Tensor<float, 3> x(lux::shape_t<3>{3, 4, 2});
  CHECK_THROWS_AS(lux::softmax(x, 3), lux::argument_error);
  CHECK_THROWS_AS(lux::logsoftmax(x, -1), lux::argument_error);
  CHECK_THROWS_WITH(lux::logsumexp(x, 5), Catch::Contains("logsumexp: dim 5 out of range"));
  const lux::Tensor<float, 3> y(lux::shape_t<3>{3, 4, 3});
  CHECK_THROWS_AS(lux::softmax_backward(x, y, 0), lux::shape_error);
  CHECK_THROWS_WITH(lux::logsoftmax_backward(x, y, 0),
                    Catch::Contains("dy has shape (3, 4, 2), expected (3, 4, 3)"));
  CHECK_THROWS_AS(lux::softmax_backward(x, x, 3), lux::argument_error);
  const lux::Tensor<float, 3> l(lux::shape_t<3>{1, 4, 2}), bad(lux::shape_t<3>{3, 1, 2});
  CHECK_NOTHROW(lux::logsumexp_backward(l, x, l, 0));
  CHECK_THROWS_AS(lux::logsumexp_backward(l, x, bad, 0), lux::shape_error);
  CHECK_THROWS_AS(lux::logsumexp_backward(bad, x, l, 0), lux::shape_error);
}
