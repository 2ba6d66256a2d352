// Tests of lux/kernels/pooling.hpp: maxpool, maxpool_with_argmax, both maxpool_backward forms,
// meanpool and its backward, adaptive and global pooling, for 1, 2 and 3 spatial dimensions.
//   1. an independent naive float64 reference (explicitly padded input, no bounds logic);
//   2. generic vs looped (max pooling and its argmax bit-identical; mean pooling ≤ 1e-5);
//   3. central finite differences in double for every backward pass;
//   4. PyTorch fixtures (tests/fixtures/pooling.txt: F.max_pool*, F.avg_pool* with
//      count_include_pad, F.adaptive_* with divisible sizes);
//   5. error paths.
// Cases cover short rows (the scalar path), long rows (the vectorized passes, strides 1, 2 and a
// runtime stride), odd sizes, dilation, symmetric and asymmetric padding.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <lux/kernels/pooling.hpp>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;
using lux_test::max_rel_err;

// =================================================================================================
// The naive reference: pad the input explicitly, then slide the window over the padded array.
// =================================================================================================

struct ref_params {
  std::array<index_t, 3> k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1}, lo{0, 0, 0}, hi{0, 0, 0};
};
template <std::size_t S>
ref_params ref_of(const lux::pool_dims<S>& pd) {
  ref_params r;
  for (std::size_t a = 0; a < S; ++a) {
    r.k[a] = pd.window[a];
    r.s[a] = pd.stride[a];
    r.d[a] = pd.dilation[a];
    r.lo[a] = pd.pad_lo(a);
    r.hi[a] = pd.pad_hi(a);
  }
  return r;
}

struct ref_result {
  std::array<index_t, 3> out{};
  std::vector<double> y;
  std::vector<index_t> argmax;  // within-plane linear index into x, -1 for padding only
  std::vector<double> dx;       // the VJP with the given cotangent
};

/// Max or mean pooling of x (spatial dims first, then C·B planes) with explicit padding, and the
/// VJP with cotangent v (flat, in output order; may be empty).
template <class X>
ref_result naive_pool(const X& x, std::size_t spatial, const ref_params& p, bool is_max,
                      const std::vector<double>& v = {}) {
  std::array<index_t, 3> in{1, 1, 1};
  for (std::size_t a = 0; a < spatial; ++a) in[a] = x.shape()[a];
  index_t planes = 1;
  for (std::size_t a = spatial; a < x.shape().size(); ++a) planes *= x.shape()[a];
  const index_t in_plane = in[0] * in[1] * in[2];
  // The padded plane: value and source index (-1 in the padding).
  std::array<index_t, 3> P{};
  for (int a = 0; a < 3; ++a) P[a] = in[a] + p.lo[a] + p.hi[a];
  ref_result r;
  for (int a = 0; a < 3; ++a) r.out[a] = (P[a] - p.d[a] * (p.k[a] - 1) - 1) / p.s[a] + 1;
  const index_t out_plane = r.out[0] * r.out[1] * r.out[2];
  const double K = static_cast<double>(p.k[0] * p.k[1] * p.k[2]);
  r.dx.assign(static_cast<std::size_t>(planes * in_plane), 0.0);
  std::vector<double> padded(static_cast<std::size_t>(P[0] * P[1] * P[2]));
  std::vector<index_t> source(padded.size());
  for (index_t b = 0; b < planes; ++b) {
    for (index_t j2 = 0; j2 < P[2]; ++j2)
      for (index_t j1 = 0; j1 < P[1]; ++j1)
        for (index_t j0 = 0; j0 < P[0]; ++j0) {
          const index_t i0 = j0 - p.lo[0], i1 = j1 - p.lo[1], i2 = j2 - p.lo[2];
          const bool inside =
              i0 >= 0 && i0 < in[0] && i1 >= 0 && i1 < in[1] && i2 >= 0 && i2 < in[2];
          const auto q = static_cast<std::size_t>((j2 * P[1] + j1) * P[0] + j0);
          source[q] = inside ? (i2 * in[1] + i1) * in[0] + i0 : -1;
          padded[q] = inside ? static_cast<double>(x.data()[b * in_plane + source[q]])
                             : (is_max ? -INFINITY : 0.0);
        }
    for (index_t o2 = 0; o2 < r.out[2]; ++o2)
      for (index_t o1 = 0; o1 < r.out[1]; ++o1)
        for (index_t o0 = 0; o0 < r.out[0]; ++o0) {
          double acc = is_max ? -INFINITY : 0.0;
          index_t best = -1;
          std::vector<index_t> taps;
          for (index_t k2 = 0; k2 < p.k[2]; ++k2)
            for (index_t k1 = 0; k1 < p.k[1]; ++k1)
              for (index_t k0 = 0; k0 < p.k[0]; ++k0) {
                const index_t j0 = o0 * p.s[0] + k0 * p.d[0];
                const index_t j1 = o1 * p.s[1] + k1 * p.d[1];
                const index_t j2 = o2 * p.s[2] + k2 * p.d[2];
                const auto q = static_cast<std::size_t>((j2 * P[1] + j1) * P[0] + j0);
                if (is_max) {
                  if (source[q] >= 0 && (best < 0 || padded[q] > acc)) {
                    acc = padded[q];
                    best = source[q];
                  }
                } else {
                  acc += padded[q];
                  if (source[q] >= 0) taps.push_back(source[q]);
                }
              }
          const index_t o = b * out_plane + (o2 * r.out[1] + o1) * r.out[0] + o0;
          r.y.push_back(is_max ? acc : acc / K);
          r.argmax.push_back(best);
          if (!v.empty()) {
            const double g = v[static_cast<std::size_t>(o)];
            if (is_max && best >= 0) r.dx[static_cast<std::size_t>(b * in_plane + best)] += g;
            for (index_t t : taps) r.dx[static_cast<std::size_t>(b * in_plane + t)] += g / K;
          }
        }
  }
  return r;
}

// =================================================================================================
// Helpers
// =================================================================================================

/// Distinct values in (−1, 1) with gaps ≥ 2/n, in a scrambled order: argmax unambiguous and
/// stable under finite-difference steps.
template <class T, std::size_t N>
Tensor<T, N> distinct_tensor(const shape_t<N>& shape, index_t salt = 0) {
  Tensor<T, N> t(shape);
  const index_t n = t.numel();
  for (index_t i = 0; i < n; ++i) {
    const index_t q = (i * 7919 + 13 + salt) % n;
    t.data()[i] =
        static_cast<T>(2.0 * (static_cast<double>(q) + 0.5) / static_cast<double>(n) - 1.0);
  }
  return t;
}

template <class T, std::size_t N>
Tensor<T, N> cast(const Tensor<double, N>& x) {
  auto t = Tensor<T, N>::uninitialized(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) t.data()[i] = static_cast<T>(x.data()[i]);
  return t;
}

template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
  if (a.numel() != b.numel()) return false;
  for (index_t i = 0; i < a.numel(); ++i) {
    const auto x = a.data()[i];
    const auto y = b.data()[i];
    if (!(x == y) && !(x != x && y != y)) return false;
  }
  return true;
}

template <std::size_t N>
std::vector<double> flat(const Tensor<double, N>& t) {
  return std::vector<double>(t.data(), t.data() + t.numel());
}

template <class A>
double max_rel_err_vec(const A& a, const std::vector<double>& ref) {
  Tensor<double, 1> r(shape_t<1>{static_cast<index_t>(ref.size())});
  std::copy(ref.begin(), ref.end(), r.data());
  return max_rel_err(a, r);
}

template <std::size_t N, std::size_t S>
shape_t<N> out_shape(const shape_t<N>& xs, const ref_result& r) {
  shape_t<N> ys = xs;
  for (std::size_t a = 0; a < S; ++a) ys[a] = r.out[a];
  return ys;
}

// =================================================================================================
// The full ladder for one (shape, pool_dims) case
// =================================================================================================

template <class T, std::size_t N, std::size_t S>
void check_maxpool_case(const shape_t<N>& xs, const lux::pool_dims<S>& pd) {
  const auto xd = distinct_tensor<double>(xs);
  const auto x = cast<T>(xd);
  const shape_t<N> ys = lux::pool_output_shape(xs, pd);
  const auto v = lux_test::random_tensor<double>(ys, 77, -1, 1);
  const ref_result ref = naive_pool(x, S, ref_of(pd), true, flat(v));
  REQUIRE(ys == (out_shape<N, S>(xs, ref)));
  const auto vt = cast<T>(v);

  // Forward: exact (a maximum is one of the inputs) in both modes; argmax = the reference's.
  const auto yg = lux::maxpool(lux::generic_op{}, x, pd);
  const auto yl = lux::maxpool(lux::looped_op{}, x, pd);
  REQUIRE(yg.shape() == ys);
  CHECK(max_rel_err_vec(yg, ref.y) == 0);
  CHECK(bitwise_equal(yg, yl));
  const auto rg = lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
  const auto rl = lux::maxpool_with_argmax(lux::looped_op{}, x, pd);
  CHECK(bitwise_equal(rg.y, yg));
  CHECK(bitwise_equal(rl.y, yg));
  CHECK(bitwise_equal(rg.saved.argmax, rl.saved.argmax));
  bool argmax_ok = true;
  for (index_t o = 0; o < rg.saved.argmax.numel(); ++o)
    argmax_ok = argmax_ok && rg.saved.argmax.data()[o] == ref.argmax[static_cast<std::size_t>(o)];
  CHECK(argmax_ok);

  // Backward: both forms, both modes, identical; = the reference VJP.
  const auto d1 = lux::maxpool_backward(lux::generic_op{}, vt, x, pd).dx;
  const auto d2 = lux::maxpool_backward(lux::looped_op{}, vt, x, pd).dx;
  const auto d3 = lux::maxpool_backward(lux::generic_op{}, vt, rg.saved).dx;
  const auto d4 = lux::maxpool_backward(lux::looped_op{}, vt, rl.saved).dx;
  REQUIRE(d1.shape() == xs);
  CHECK(max_rel_err_vec(d1, ref.dx) <= (std::is_same_v<T, float> ? 1e-6 : 1e-15));
  CHECK(bitwise_equal(d1, d2));
  CHECK(bitwise_equal(d1, d3));
  CHECK(bitwise_equal(d1, d4));

  if constexpr (std::is_same_v<T, double>) {
    // Central finite differences of <maxpool(x), v>.
    const auto g = lux_test::numerical_gradient<N>(
        [&](const Tensor<double, N>& z) {
          return lux_test::dot(lux::maxpool(lux::generic_op{}, z, pd), v);
        },
        xd);
    CHECK(max_rel_err(d1, g) <= 1e-6);
  }
}

template <class T, std::size_t N, std::size_t S>
void check_meanpool_case(const shape_t<N>& xs, const lux::pool_dims<S>& pd) {
  const auto xd = lux_test::random_tensor<double>(xs, 5, -1, 1);
  const auto x = cast<T>(xd);
  const shape_t<N> ys = lux::pool_output_shape(xs, pd);
  const auto v = lux_test::random_tensor<double>(ys, 78, -1, 1);
  const ref_result ref = naive_pool(xd, S, ref_of(pd), false, flat(v));
  REQUIRE(ys == (out_shape<N, S>(xs, ref)));
  const auto vt = cast<T>(v);
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;

  const auto yg = lux::meanpool(lux::generic_op{}, x, pd);
  const auto yl = lux::meanpool(lux::looped_op{}, x, pd);
  REQUIRE(yg.shape() == ys);
  CHECK(max_rel_err_vec(yg, ref.y) <= tol);
  CHECK(max_rel_err_vec(yl, ref.y) <= tol);
  CHECK(max_rel_err(yl, yg) <= 1e-5);

  const auto xshape = x.shape();
  const auto dg = lux::meanpool_backward(lux::generic_op{}, vt, xshape, pd).dx;
  const auto dl = lux::meanpool_backward(lux::looped_op{}, vt, xshape, pd).dx;
  REQUIRE(dg.shape() == xs);
  CHECK(max_rel_err_vec(dg, ref.dx) <= tol);
  CHECK(max_rel_err_vec(dl, ref.dx) <= tol);

  if constexpr (std::is_same_v<T, double>) {
    const auto g = lux_test::numerical_gradient<N>(
        [&](const Tensor<double, N>& z) {
          return lux_test::dot(lux::meanpool(lux::generic_op{}, z, pd), v);
        },
        xd);
    CHECK(max_rel_err(dg, g) <= 1e-6);
    CHECK(max_rel_err(dl, g) <= 1e-6);
  }
}

template <class T, std::size_t N, std::size_t S>
void check_both(const shape_t<N>& xs, const lux::pool_dims<S>& pd) {
  INFO("x " << lux::format_shape(xs) << " window " << lux::format_shape(pd.window) << " stride "
            << lux::format_shape(pd.stride) << " pad " << lux::format_shape(pd.pad) << " dilation "
            << lux::format_shape(pd.dilation));
  check_maxpool_case<T>(xs, pd);
  check_meanpool_case<T>(xs, pd);
}

template <std::size_t S>
lux::pool_dims<S> dims_from_fixture(const lux_test::fixture_file& f, const std::string& name) {
  const auto w = f.tensor<double, 1>(name + "_window");
  const auto s = f.tensor<double, 1>(name + "_stride");
  const auto p = f.tensor<double, 1>(name + "_pad");
  const auto d = f.tensor<double, 1>(name + "_dilation");
  shape_t<S> k{}, st{}, di{};
  std::array<index_t, 2 * S> pad{};
  for (std::size_t a = 0; a < S; ++a) {
    k[a] = static_cast<index_t>(w[static_cast<index_t>(a)]);
    st[a] = static_cast<index_t>(s[static_cast<index_t>(a)]);
    di[a] = static_cast<index_t>(d[static_cast<index_t>(a)]);
  }
  for (std::size_t a = 0; a < 2 * S; ++a) pad[a] = static_cast<index_t>(p[static_cast<index_t>(a)]);
  return lux::pool_dims<S>(k).with_stride(st).with_pad_lo_hi(pad).with_dilation(di);
}

}  // namespace

// =================================================================================================
// 1–3: reference, modes, finite differences
// =================================================================================================

TEMPLATE_TEST_CASE("1-d pooling matches the naive reference in both modes, with FD gradients",
                   "[pooling]", float, double) {
  using T = TestType;
  using pd = lux::pool_dims<1>;
  check_both<T>(shape_t<3>{11, 3, 2}, pd(3).with_stride(2).with_pad(1));
  check_both<T>(shape_t<3>{13, 2, 1}, pd(3).with_stride(1).with_pad(1).with_dilation(2));
  check_both<T>(shape_t<3>{30, 2, 2}, pd(4).with_stride(3).with_pad_lo_hi({0, 2}));
  check_both<T>(shape_t<3>{40, 1, 2}, pd(3).with_stride(1));
  check_both<T>(shape_t<3>{41, 2, 1}, pd(2));
  check_both<T>(shape_t<3>{7, 1, 1}, pd(7));
}

TEMPLATE_TEST_CASE("2-d pooling matches the naive reference in both modes, with FD gradients",
                   "[pooling]", float, double) {
  using T = TestType;
  using pd = lux::pool_dims<2>;
  check_both<T>(shape_t<4>{9, 7, 3, 2}, pd(3).with_stride(2).with_pad(1));
  check_both<T>(shape_t<4>{37, 6, 2, 2}, pd(3).with_stride(2).with_pad(1));
  check_both<T>(shape_t<4>{33, 5, 2, 1},
                pd({2, 3}).with_stride({1, 2}).with_pad({1, 0}).with_dilation({2, 1}));
  check_both<T>(shape_t<4>{40, 7, 1, 2}, pd(3).with_stride(3).with_pad_lo_hi({0, 1, 2, 0}));
  check_both<T>(shape_t<4>{10, 9, 2, 2}, pd({5, 4}).with_stride({2, 3}).with_pad({2, 1}));
  check_both<T>(shape_t<4>{24, 3, 1, 1}, pd({2, 3}).with_stride(2).with_pad_lo_hi({1, 1, 1, 1}));
  // Rows longer than one 128-column chunk of the vectorized path, strides 1 and 2.
  check_both<T>(shape_t<4>{301, 4, 1, 1}, pd(3).with_stride(2).with_pad(1));
  check_both<T>(shape_t<4>{290, 3, 1, 1}, pd({3, 2}).with_stride(1).with_dilation({2, 1}));
}

TEMPLATE_TEST_CASE("3-d pooling matches the naive reference in both modes, with FD gradients",
                   "[pooling]", float, double) {
  using T = TestType;
  using pd = lux::pool_dims<3>;
  check_both<T>(shape_t<5>{6, 5, 4, 2, 2},
                pd({2, 3, 2}).with_stride({2, 1, 1}).with_pad({1, 1, 0}));
  check_both<T>(shape_t<5>{20, 4, 3, 2, 1}, pd(3).with_stride(2).with_pad(1));
  check_both<T>(shape_t<5>{19, 5, 6, 1, 2},
                pd({3, 2, 3}).with_stride({1, 2, 2}).with_dilation({1, 1, 2}).with_pad_lo_hi(
                    {1, 0, 0, 1, 1, 1}));
}

// =================================================================================================
// Tie, NaN and padding rules
// =================================================================================================

TEMPLATE_TEST_CASE("max pooling: ties go to the first tap in column-major window order",
                   "[pooling]", float, double) {
  using T = TestType;
  // A constant input: every window's argmax is its first in-bounds tap (k₁ fastest).
  const shape_t<4> xs{21, 6, 2, 1};
  Tensor<T, 4> x(xs, T(0.5));
  const auto pd = lux::pool_dims<2>(3).with_stride(2).with_pad(1);
  const auto rg = lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
  const auto rl = lux::maxpool_with_argmax(lux::looped_op{}, x, pd);
  CHECK(bitwise_equal(rg.saved.argmax, rl.saved.argmax));
  for (index_t p = 0; p < 2; ++p)
    for (index_t o1 = 0; o1 < rg.y.size(1); ++o1)
      for (index_t o0 = 0; o0 < rg.y.size(0); ++o0) {
        const index_t i0 = std::max<index_t>(2 * o0 - 1, 0), i1 = std::max<index_t>(2 * o1 - 1, 0);
        CHECK(rg.saved.argmax(o0, o1, p, 0) == i1 * 21 + i0);
      }
  // A tie inside one window: x = [1, 3, 3, 2] with window 4 → argmax 1.
  Tensor<T, 3> t(shape_t<3>{4, 1, 1}, {1, 3, 3, 2});
  for (auto mode : {0, 1}) {
    const auto r = mode ? lux::maxpool_with_argmax(lux::looped_op{}, t, lux::pool_dims<1>(4))
                        : lux::maxpool_with_argmax(lux::generic_op{}, t, lux::pool_dims<1>(4));
    CHECK(r.saved.argmax[0] == 1);
    const Tensor<T, 3> dy(shape_t<3>{1, 1, 1}, T(2));
    const auto dx = lux::maxpool_backward(dy, t, lux::pool_dims<1>(4)).dx;
    CHECK(dx[0] == 0);
    CHECK(dx[1] == 2);
    CHECK(dx[2] == 0);
  }
}

TEMPLATE_TEST_CASE("max pooling propagates NaN, the first NaN of a window is its argmax",
                   "[pooling]", float, double) {
  using T = TestType;
  const shape_t<3> xs{40, 1, 1};
  auto x = distinct_tensor<T>(xs);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  x[10] = nan;
  x[11] = nan;
  x[30] = nan;
  const auto pd = lux::pool_dims<1>(3).with_stride(1);  // long rows: the vectorized passes
  const auto rg = lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
  const auto rl = lux::maxpool_with_argmax(lux::looped_op{}, x, pd);
  CHECK(bitwise_equal(rg.y, rl.y));
  CHECK(bitwise_equal(rg.saved.argmax, rl.saved.argmax));
  CHECK(bitwise_equal(lux::maxpool(lux::looped_op{}, x, pd), rg.y));
  for (index_t o = 0; o < rg.y.numel(); ++o) {
    const bool has_nan = (o <= 11 && o + 2 >= 10) || (o <= 30 && o + 2 >= 30);
    CHECK(std::isnan(rg.y[o]) == has_nan);
    if (has_nan) CHECK(std::isnan(x[rg.saved.argmax[o]]));
  }
  CHECK(rg.saved.argmax[9] == 10);   // window 9..11 → first NaN at 10
  CHECK(rg.saved.argmax[10] == 10);  // window 10..12
  CHECK(rg.saved.argmax[11] == 11);  // window 11..13
  // 2-d, stride 2 (the de-interleaved vector path), NaN in one row of a window.
  auto x2 = distinct_tensor<T>(shape_t<4>{45, 5, 2, 1});
  x2(20, 2, 1, 0) = nan;
  x2(7, 0, 0, 0) = nan;
  const auto pd2 = lux::pool_dims<2>(3).with_stride(2).with_pad(1);
  const auto sg = lux::maxpool_with_argmax(lux::generic_op{}, x2, pd2);
  const auto sl = lux::maxpool_with_argmax(lux::looped_op{}, x2, pd2);
  CHECK(bitwise_equal(sg.y, sl.y));
  CHECK(bitwise_equal(sg.saved.argmax, sl.saved.argmax));
  CHECK(bitwise_equal(lux::maxpool(lux::looped_op{}, x2, pd2), sg.y));
  CHECK(std::isnan(sg.y(10, 1, 1, 0)));
  CHECK(sg.saved.argmax(10, 1, 1, 0) == 2 * 45 + 20);
}

TEMPLATE_TEST_CASE("windows wholly in the padding: max −∞ (no gradient), mean 0", "[pooling]",
                   float, double) {
  using T = TestType;
  const auto x = distinct_tensor<T>(shape_t<4>{12, 3, 2, 1});
  // Along W: lo = 3 with k = 2, s = 1 → the first two windows are padding only.
  const auto pd = lux::pool_dims<2>({2, 1}).with_stride(1).with_pad_lo_hi({3, 0, 0, 0});
  for (int mode = 0; mode < 2; ++mode) {
    const auto r = mode ? lux::maxpool_with_argmax(lux::looped_op{}, x, pd)
                        : lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
    REQUIRE(r.y.shape() == (shape_t<4>{14, 3, 2, 1}));
    CHECK(r.y(0, 1, 1, 0) == -std::numeric_limits<T>::infinity());
    CHECK(r.y(1, 2, 0, 0) == -std::numeric_limits<T>::infinity());
    CHECK(r.saved.argmax(1, 0, 0, 0) == -1);
    CHECK(r.y(2, 0, 0, 0) == x(0, 0, 0, 0));
    const Tensor<T, 4> dy(r.y.shape(), T(1));
    const auto dx = mode ? lux::maxpool_backward(lux::looped_op{}, dy, r.saved).dx
                         : lux::maxpool_backward(lux::generic_op{}, dy, r.saved).dx;
    double total = 0;
    for (index_t i = 0; i < dx.numel(); ++i) total += static_cast<double>(dx[i]);
    CHECK(total == 12 * 3 * 2);  // 14 windows per row, 2 of them padding only
    const auto m =
        mode ? lux::meanpool(lux::looped_op{}, x, pd) : lux::meanpool(lux::generic_op{}, x, pd);
    CHECK(m(0, 0, 0, 0) == 0);
    CHECK(m(1, 0, 0, 0) == 0);
    CHECK(m(2, 0, 0, 0) == x(0, 0, 0, 0) / 2);  // count_include_pad: the pad cell counts
  }
}

TEST_CASE("meanpool counts padding in the divisor (count_include_pad = true)", "[pooling]") {
  // x = ones(4, 1, 1), window 3, pad 1: the border windows hold two ones and one pad cell.
  const Tensor<double, 3> x(shape_t<3>{4, 1, 1}, 1.0);
  const auto y = lux::meanpool(x, lux::pool_dims<1>(3).with_stride(1).with_pad(1));
  REQUIRE(y.numel() == 4);
  CHECK(y[0] == Approx(2.0 / 3.0));
  CHECK(y[1] == 1.0);
  CHECK(y[2] == 1.0);
  CHECK(y[3] == Approx(2.0 / 3.0));
}

// =================================================================================================
// Adaptive and global pooling
// =================================================================================================

TEMPLATE_TEST_CASE(
    "adaptive pooling uses Lux's windows: stride = in ÷ out, k = in − (out−1)·stride", "[pooling]",
    float, double) {
  using T = TestType;
  // in = 10, out = 4: stride 2, k = 4 → windows [0,4), [2,6), [4,8), [6,10) (PyTorch would use
  // [0,3), [2,5), [5,8), [7,10)). Along H: in = 7, out = 3 → stride 2, k = 3: [0,3), [2,5), [4,7).
  const shape_t<4> xs{10, 7, 2, 2};
  const auto pd = lux::adaptive_pool_dims(xs, {4, 3});
  CHECK(pd.window == (shape_t<2>{4, 3}));
  CHECK(pd.stride == (shape_t<2>{2, 2}));
  const auto x = distinct_tensor<T>(xs);
  const auto ymax = lux::adaptive_maxpool(x, {4, 3});
  const auto ymean = lux::adaptive_meanpool(x, {4, 3});
  REQUIRE(ymax.shape() == (shape_t<4>{4, 3, 2, 2}));
  for (index_t b = 0; b < 2; ++b)
    for (index_t c = 0; c < 2; ++c)
      for (index_t o1 = 0; o1 < 3; ++o1)
        for (index_t o0 = 0; o0 < 4; ++o0) {
          double mx = -INFINITY, sum = 0;
          for (index_t i1 = 2 * o1; i1 < 2 * o1 + 3; ++i1)
            for (index_t i0 = 2 * o0; i0 < 2 * o0 + 4; ++i0) {
              const double val = static_cast<double>(x(i0, i1, c, b));
              mx = std::max(mx, val);
              sum += val;
            }
          CHECK(static_cast<double>(ymax(o0, o1, c, b)) == mx);
          CHECK(static_cast<double>(ymean(o0, o1, c, b)) == Approx(sum / 12).margin(1e-6));
        }
  // Both modes and the backward passes agree with the windowed kernels.
  CHECK(bitwise_equal(lux::adaptive_maxpool(lux::generic_op{}, x, {4, 3}), ymax));
  CHECK(max_rel_err(lux::adaptive_meanpool(lux::generic_op{}, x, {4, 3}), ymean) <= 1e-6);
  const auto dy = lux_test::random_tensor<T>(ymax.shape(), 3);
  CHECK(bitwise_equal(lux::adaptive_maxpool_backward(dy, x, {4, 3}).dx,
                      lux::maxpool_backward(lux::generic_op{}, dy, x, pd).dx));
  CHECK(max_rel_err(lux::adaptive_meanpool_backward(dy, xs, {4, 3}).dx,
                    lux::meanpool_backward(lux::generic_op{}, dy, xs, pd).dx) <= 1e-6);
  // 3-d and 1-d forms.
  const auto x3 = distinct_tensor<T>(shape_t<5>{9, 8, 5, 1, 2});
  CHECK(lux::adaptive_maxpool(x3, {4, 8, 2}).shape() == (shape_t<5>{4, 8, 2, 1, 2}));
  const auto x1 = distinct_tensor<T>(shape_t<3>{9, 1, 2});
  CHECK(lux::adaptive_meanpool(x1, {1}).shape() == (shape_t<3>{1, 1, 2}));
}

TEMPLATE_TEST_CASE("global pooling reduces every plane to (1, …, 1, C, B)", "[pooling]", float,
                   double) {
  using T = TestType;
  const shape_t<4> xs{23, 17, 3, 2};
  const auto x = distinct_tensor<T>(xs);
  for (int mode = 0; mode < 2; ++mode) {
    const auto ymax =
        mode ? lux::global_maxpool(lux::looped_op{}, x) : lux::global_maxpool(lux::generic_op{}, x);
    const auto ymean = mode ? lux::global_meanpool(lux::looped_op{}, x)
                            : lux::global_meanpool(lux::generic_op{}, x);
    REQUIRE(ymax.shape() == (shape_t<4>{1, 1, 3, 2}));
    REQUIRE(ymean.shape() == (shape_t<4>{1, 1, 3, 2}));
    for (index_t p = 0; p < 6; ++p) {
      double mx = -INFINITY, sum = 0;
      index_t arg = 0;
      for (index_t i = 0; i < 23 * 17; ++i) {
        const double val = static_cast<double>(x[p * 23 * 17 + i]);
        if (val > mx) {
          mx = val;
          arg = i;
        }
        sum += val;
      }
      CHECK(static_cast<double>(ymax[p]) == mx);
      CHECK(static_cast<double>(ymean[p]) == Approx(sum / (23 * 17)).margin(1e-6));
      const auto dy = lux_test::random_tensor<T>(ymax.shape(), 9);
      const auto dmax = mode ? lux::global_maxpool_backward(lux::looped_op{}, dy, x).dx
                             : lux::global_maxpool_backward(lux::generic_op{}, dy, x).dx;
      const auto dmean = mode ? lux::global_meanpool_backward(lux::looped_op{}, dy, xs).dx
                              : lux::global_meanpool_backward(lux::generic_op{}, dy, xs).dx;
      CHECK(dmax[p * 23 * 17 + arg] == dy[p]);
      CHECK(static_cast<double>(dmean[p * 23 * 17 + 5]) ==
            Approx(static_cast<double>(dy[p]) / (23 * 17)).epsilon(1e-6));
    }
  }
  // 1-d and 3-d.
  CHECK(lux::global_meanpool(distinct_tensor<T>(shape_t<3>{5, 2, 3})).shape() ==
        (shape_t<3>{1, 2, 3}));
  CHECK(lux::global_maxpool(distinct_tensor<T>(shape_t<5>{5, 4, 3, 2, 1})).shape() ==
        (shape_t<5>{1, 1, 1, 2, 1}));
}

TEST_CASE("global pooling backward matches finite differences", "[pooling]") {
  const shape_t<5> xs{4, 3, 5, 2, 2};
  const auto x = distinct_tensor<double>(xs);
  const auto v = lux_test::random_tensor<double>(shape_t<5>{1, 1, 1, 2, 2}, 4);
  const auto gmax = lux_test::numerical_gradient<5>(
      [&](const Tensor<double, 5>& z) { return lux_test::dot(lux::global_maxpool(z), v); }, x);
  const auto gmean = lux_test::numerical_gradient<5>(
      [&](const Tensor<double, 5>& z) { return lux_test::dot(lux::global_meanpool(z), v); }, x);
  CHECK(max_rel_err(lux::global_maxpool_backward(v, x).dx, gmax) <= 1e-6);
  CHECK(max_rel_err(lux::global_meanpool_backward(v, xs).dx, gmean) <= 1e-6);
}

// =================================================================================================
// 4: PyTorch
// =================================================================================================

namespace {
template <class T, std::size_t N>
void check_torch_pool(const lux_test::fixture_file& f, const std::string& name, bool is_max) {
  INFO(name);
  constexpr std::size_t S = N - 2;
  const auto pd = dims_from_fixture<S>(f, name);
  const auto x = f.tensor<T, N>(name + "_x");
  const auto y = f.tensor<double, N>(name + "_y");
  const auto dy = f.tensor<T, N>(name + "_dy");
  const auto dx = f.tensor<double, N>(name + "_dx");
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-10;
  for (int mode = 0; mode < 2; ++mode) {
    if (is_max) {
      const auto r = mode ? lux::maxpool_with_argmax(lux::looped_op{}, x, pd)
                          : lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
      REQUIRE(r.y.shape() == y.shape());
      CHECK(max_rel_err(r.y, y) <= tol);
      CHECK(max_rel_err(lux::maxpool_backward(dy, r.saved).dx, dx) <= tol);
      CHECK(max_rel_err(lux::maxpool_backward(lux::generic_op{}, dy, x, pd).dx, dx) <= tol);
    } else {
      const auto r =
          mode ? lux::meanpool(lux::looped_op{}, x, pd) : lux::meanpool(lux::generic_op{}, x, pd);
      REQUIRE(r.shape() == y.shape());
      CHECK(max_rel_err(r, y) <= tol);
      const auto g = mode ? lux::meanpool_backward(lux::looped_op{}, dy, x.shape(), pd).dx
                          : lux::meanpool_backward(lux::generic_op{}, dy, x.shape(), pd).dx;
      CHECK(max_rel_err(g, dx) <= tol);
    }
  }
}
}  // namespace

TEMPLATE_TEST_CASE("pooling matches PyTorch (F.max_pool*, F.avg_pool*, F.adaptive_*)",
                   "[pooling][torch]", float, double) {
  using T = TestType;
  const lux_test::fixture_file f("pooling.txt");
  check_torch_pool<T, 3>(f, "maxpool1d", true);
  check_torch_pool<T, 3>(f, "maxpool1d_dil", true);
  check_torch_pool<T, 4>(f, "maxpool2d", true);
  check_torch_pool<T, 4>(f, "maxpool2d_asym", true);
  check_torch_pool<T, 5>(f, "maxpool3d", true);
  check_torch_pool<T, 3>(f, "meanpool1d", false);
  check_torch_pool<T, 4>(f, "meanpool2d", false);
  check_torch_pool<T, 4>(f, "meanpool2d_asym", false);
  check_torch_pool<T, 5>(f, "meanpool3d", false);

  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-10;
  for (const std::string name : {"adaptive_maxpool2d", "adaptive_meanpool2d"}) {
    INFO(name);
    const auto x = f.tensor<T, 4>(name + "_x");
    const auto sz = f.tensor<double, 1>(name + "_size");
    const shape_t<2> out{static_cast<index_t>(sz[0]), static_cast<index_t>(sz[1])};
    const auto dy = f.tensor<T, 4>(name + "_dy");
    const bool is_max = name == "adaptive_maxpool2d";
    const auto y = is_max ? lux::adaptive_maxpool(x, out) : lux::adaptive_meanpool(x, out);
    const auto dx = is_max ? lux::adaptive_maxpool_backward(dy, x, out).dx
                           : lux::adaptive_meanpool_backward(dy, x.shape(), out).dx;
    CHECK(max_rel_err(y, f.tensor<double, 4>(name + "_y")) <= tol);
    CHECK(max_rel_err(dx, f.tensor<double, 4>(name + "_dx")) <= tol);
  }
}

// =================================================================================================
// Element types, views, dispatch
// =================================================================================================

TEST_CASE("generic pooling runs on long double", "[pooling]") {
  const shape_t<4> xs{9, 8, 2, 1};
  const auto xd = distinct_tensor<double>(xs);
  const auto x = cast<long double>(xd);
  const auto pd = lux::pool_dims<2>(3).with_stride(2).with_pad(1);
  const auto ymax = lux::maxpool(x, pd);  // operation_mode_t picks generic_op for long double
  const auto ymean = lux::meanpool(x, pd);
  static_assert(std::is_same_v<decltype(ymax), const Tensor<long double, 4>>);
  CHECK(max_rel_err(ymax, lux::maxpool(xd, pd)) == 0);
  CHECK(max_rel_err(ymean, lux::meanpool(xd, pd)) <= 1e-15);
  const auto dy = cast<long double>(lux_test::random_tensor<double>(ymax.shape(), 2));
  CHECK(lux::maxpool_backward(dy, x, pd).dx.shape() == xs);
  CHECK(lux::meanpool_backward(dy, xs, pd).dx.shape() == xs);
  // Forcing looped_op on long double falls back to the generic kernel.
  CHECK(max_rel_err(lux::meanpool(lux::looped_op{}, x, pd), ymean) == 0);
}

TEST_CASE("pooling accepts views, the default mode is looped_op for float", "[pooling]") {
  const auto x = distinct_tensor<float>(shape_t<4>{20, 6, 3, 2});
  const auto pd = lux::pool_dims<2>(2);
  static_assert(std::is_same_v<lux::operation_mode_t<decltype(x)>, lux::looped_op>);
  const auto y = lux::maxpool(x, pd);
  CHECK(bitwise_equal(lux::maxpool(x.view(), pd), y));
  const lux::StridedView<const float, 4> sv = x.view();
  CHECK(bitwise_equal(lux::maxpool(sv, pd), y));  // a contiguous StridedView: generic mode
  // The view of every other row is not contiguous.
  const lux::StridedView<const float, 4> gaps(x.data(), {10, 6, 3, 2}, {2, 20, 120, 360});
  CHECK_THROWS_AS(lux::maxpool(gaps, pd), lux::shape_error);
  CHECK_THROWS_WITH(lux::meanpool(gaps, pd),
                    Catch::Contains("meanpool") && Catch::Contains("contiguous"));
}

// =================================================================================================
// 5: errors
// =================================================================================================

TEST_CASE("pooling rejects bad hyperparameters and shapes", "[pooling][errors]") {
  const Tensor<float, 4> x(shape_t<4>{5, 4, 2, 1});
  using pd = lux::pool_dims<2>;
  // Window larger than the padded input.
  CHECK_THROWS_AS(lux::maxpool(x, pd({6, 2})), lux::shape_error);
  CHECK_THROWS_WITH(lux::maxpool(x, pd({6, 2})), Catch::Contains("maxpool") &&
                                                     Catch::Contains("(6, 2)") &&
                                                     Catch::Contains("(5, 4, 2, 1)"));
  CHECK_NOTHROW(lux::maxpool(x, pd({6, 2}).with_pad_lo_hi({1, 0, 0, 0})));
  CHECK_THROWS_AS(lux::meanpool(x, pd(3).with_dilation(2)), lux::shape_error);  // spans 5 > 4
  // Bad hyperparameters.
  CHECK_THROWS_AS(lux::maxpool(x, pd(2).with_stride({1, 0})), lux::argument_error);
  CHECK_THROWS_WITH(lux::maxpool(x, pd(2).with_stride({1, 0})),
                    Catch::Contains("maxpool") && Catch::Contains("stride"));
  CHECK_THROWS_AS(lux::meanpool(x, pd(2).with_pad(-1)), lux::argument_error);
  CHECK_THROWS_WITH(lux::meanpool(x, pd(2).with_pad_lo_hi({0, 0, -1, 0})),
                    Catch::Contains("meanpool") && Catch::Contains("padding"));
  CHECK_THROWS_AS(lux::maxpool(x, pd(2).with_dilation(0)), lux::argument_error);
  CHECK_THROWS_AS(lux::maxpool(x, pd({0, 1})), lux::argument_error);
  CHECK_THROWS_AS(lux::pool_output_shape(x.shape(), pd(9)), lux::shape_error);
  // Backward: dy of the wrong shape.
  const Tensor<float, 4> dy(shape_t<4>{2, 2, 2, 2});
  CHECK_THROWS_AS(lux::maxpool_backward(dy, x, pd(2)), lux::shape_error);
  CHECK_THROWS_WITH(lux::meanpool_backward(dy, x.shape(), pd(2)),
                    Catch::Contains("meanpool_backward") && Catch::Contains("(2, 2, 2, 2)") &&
                        Catch::Contains("(2, 2, 2, 1)"));
  const auto r = lux::maxpool_with_argmax(x, pd(2));
  CHECK_THROWS_WITH(lux::maxpool_backward(dy, r.saved), Catch::Contains("maxpool_backward"));
  // Adaptive: output larger than the input; global: empty spatial dimension.
  CHECK_THROWS_AS(lux::adaptive_maxpool(x, {6, 2}), lux::shape_error);
  CHECK_THROWS_WITH(lux::adaptive_meanpool(x, {0, 2}), Catch::Contains("adaptive_meanpool"));
  const Tensor<float, 4> empty(shape_t<4>{0, 4, 2, 1});
  CHECK_THROWS_WITH(lux::global_maxpool(empty), Catch::Contains("global_maxpool"));
  // Empty channel or batch dimensions are fine.
  CHECK(lux::maxpool(Tensor<float, 4>(shape_t<4>{5, 4, 0, 3}), pd(2)).shape() ==
        (shape_t<4>{2, 2, 0, 3}));
}

TEST_CASE("pooling: overflowing geometry throws before allocating", "[pooling][errors]") {
  constexpr index_t huge = std::numeric_limits<index_t>::max() / 2 + 1;
  const Tensor<float, 4> x(shape_t<4>{5, 4, 2, 1});
  using pd = lux::pool_dims<2>;
  // d·(k − 1) + 1 and I + lo + hi overflow.
  CHECK_THROWS_WITH(lux::maxpool(x, pd(3).with_dilation(huge)),
                    Catch::Contains("maxpool: ") && Catch::Contains("overflows"));
  CHECK_THROWS_WITH(lux::meanpool(x, pd(2).with_pad(huge)),
                    Catch::Contains("meanpool: ") && Catch::Contains("overflows"));
  // A padding of 2^40: an output of (2^41 + 2)² · 2 elements, not addressable.
  CHECK_THROWS_WITH(lux::maxpool(x, pd(1).with_pad(1LL << 40)),
                    Catch::Contains("maxpool: shape") && Catch::Contains("too many elements"));
  CHECK_THROWS_AS(lux::pool_output_shape(x.shape(), pd(1).with_pad(1LL << 40)), lux::shape_error);
  // A window of (2^32)² taps whose product ∏k overflows in three dimensions.
  const Tensor<float, 5> x3(shape_t<5>{1, 1, 1, 1, 1});
  CHECK_THROWS_WITH(lux::meanpool(x3, lux::pool_dims<3>(1LL << 22).with_pad(1LL << 22)),
                    Catch::Contains("meanpool: the window size overflows"));
  // A negative size in an x_shape given as a value.
  const Tensor<float, 4> dy(shape_t<4>{2, 2, 2, 1});
  CHECK_THROWS_AS(lux::meanpool_backward(dy, shape_t<4>{5, 4, 2, -1}, pd(2)), lux::shape_error);
}

TEMPLATE_TEST_CASE("maxpool backward from a saved argmax validates what it scatters with",
                   "[pooling][errors]", float, double) {
  using T = TestType;
  const shape_t<4> xs{6, 5, 2, 3};
  const auto x = distinct_tensor<T>(xs);
  const auto pd = lux::pool_dims<2>(2);
  const auto r = lux::maxpool_with_argmax(x, pd);
  const auto dy = lux_test::random_tensor<T>(r.y.shape(), 7);
  const auto ref = lux::maxpool_backward(dy, x, pd).dx;
  CHECK(bitwise_equal(lux::maxpool_backward(dy, r.saved).dx, ref));
  for (int mode = 0; mode < 2; ++mode) {
    auto run_saved = [&](const lux::maxpool_saved<4>& s) {
      return mode ? lux::maxpool_backward(lux::looped_op{}, dy, s)
                  : lux::maxpool_backward(lux::generic_op{}, dy, s);
    };
    auto run_inplace = [&](Tensor<T, 4>& dx, const Tensor<std::int32_t, 4>& a) {
      return mode ? lux::maxpool_backward_(lux::looped_op{}, dx, dy, a)
                  : lux::maxpool_backward_(lux::generic_op{}, dx, dy, a);
    };
    // A tampered argmax: an index past the plane of x (30 elements), or below −1.
    for (const std::int32_t bad : {30, 1 << 30, -2, std::numeric_limits<std::int32_t>::min()}) {
      auto s = r.saved;
      s.argmax.data()[s.argmax.numel() - 1] = bad;
      CHECK_THROWS_AS(run_saved(s), lux::argument_error);
      CHECK_THROWS_WITH(run_saved(s), Catch::Contains("maxpool_backward: argmax holds the index " +
                                                      std::to_string(bad)));
      Tensor<T, 4> dx(xs);
      CHECK_THROWS_AS(run_inplace(dx, s.argmax), lux::argument_error);
      CHECK_THROWS_WITH(run_inplace(dx, s.argmax), Catch::Contains("maxpool_backward_"));
    }
    // −1 (a window of padding only) is valid: no gradient.
    auto s = r.saved;
    s.argmax.data()[0] = -1;
    CHECK_NOTHROW(run_saved(s));
    // A saved x_shape smaller than the forward's (the argmax indexes past it), or negative.
    s = r.saved;
    s.x_shape = {3, 5, 2, 3};
    CHECK_THROWS_AS(run_saved(s), lux::argument_error);
    s.x_shape = {6, -5, 2, 3};
    CHECK_THROWS_AS(run_saved(s), lux::shape_error);
    s.x_shape = {6, 5, 2, 2};
    CHECK_THROWS_AS(run_saved(s), lux::shape_error);
    // An undersized dx for the in-place form.
    Tensor<T, 4> small(shape_t<4>{4, 4, 2, 3});
    CHECK_THROWS_AS(run_inplace(small, r.saved.argmax), lux::argument_error);
    Tensor<T, 4> dx(xs);
    CHECK(bitwise_equal(run_inplace(dx, r.saved.argmax), ref));
  }
}

// =================================================================================================
// In-place variants
// =================================================================================================

TEMPLATE_TEST_CASE("in-place pooling equals the allocating kernels and validates its outputs",
                   "[pooling]", float, double) {
  using T = TestType;
  const shape_t<4> xs{37, 6, 2, 2};
  const auto x = distinct_tensor<T>(xs);
  const auto pd = lux::pool_dims<2>(3).with_stride(2).with_pad(1);
  const shape_t<4> ys = lux::pool_output_shape(xs, pd);
  const auto dy = lux_test::random_tensor<T>(ys, 6);
  for (int mode = 0; mode < 2; ++mode) {
    Tensor<T, 4> y(ys), dx(xs);
    Tensor<std::int32_t, 4> argmax(ys);
    const auto ref = lux::maxpool_with_argmax(lux::generic_op{}, x, pd);
    const auto v = mode ? lux::maxpool_(lux::looped_op{}, y, x, pd)
                        : lux::maxpool_(lux::generic_op{}, y, x, pd);
    CHECK(v.data() == y.data());
    CHECK(bitwise_equal(y, ref.y));
    y.fill(T(0));
    if (mode)
      (void)lux::maxpool_with_argmax_(lux::looped_op{}, y.view(), argmax.view(), x, pd);
    else
      (void)lux::maxpool_with_argmax_(lux::generic_op{}, y, argmax, x, pd);
    CHECK(bitwise_equal(y, ref.y));
    CHECK(bitwise_equal(argmax, ref.saved.argmax));
    (void)lux::maxpool_backward_(dx, dy, argmax);
    CHECK(bitwise_equal(dx, lux::maxpool_backward(lux::generic_op{}, dy, ref.saved).dx));
    (void)lux::meanpool_(y, x, pd);
    CHECK(max_rel_err(y, lux::meanpool(lux::generic_op{}, x, pd)) <= 1e-6);
    (void)lux::meanpool_backward_(dx.view(), dy, pd);
    CHECK(max_rel_err(dx, lux::meanpool_backward(lux::generic_op{}, dy, xs, pd).dx) <= 1e-6);
  }
  // Wrong output shapes, overlapping buffers, an argmax without the shape of y.
  Tensor<T, 4> small(shape_t<4>{18, 3, 2, 2});
  CHECK_THROWS_WITH(lux::maxpool_(small, x, pd), Catch::Contains("maxpool_") &&
                                                     Catch::Contains("(18, 3, 2, 2)") &&
                                                     Catch::Contains("(19, 3, 2, 2)"));
  CHECK_THROWS_AS(lux::meanpool_(small, x, pd), lux::shape_error);
  Tensor<T, 4> big(xs);
  auto alias = lux::view(big.data(), ys);
  CHECK_THROWS_AS(lux::maxpool_(alias, big, pd), lux::argument_error);
  CHECK_THROWS_WITH(lux::meanpool_(alias, big, pd), Catch::Contains("overlap"));
  Tensor<T, 4> y(ys);
  Tensor<std::int32_t, 4> wrong(shape_t<4>{19, 3, 2, 1});
  CHECK_THROWS_AS(lux::maxpool_with_argmax_(y, wrong, x, pd), lux::shape_error);
  CHECK_THROWS_WITH(lux::maxpool_backward_(big, dy, wrong), Catch::Contains("maxpool_backward_"));
  CHECK_THROWS_WITH(lux::meanpool_backward_(small, dy, pd), Catch::Contains("meanpool_backward_"));
}
