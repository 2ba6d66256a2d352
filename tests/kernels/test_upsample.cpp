// Tests of lux/kernels/upsample.hpp (upsample_nearest, upsample_bilinear, upsample_trilinear,
// pixel_shuffle, with backward passes) and lux/kernels/embedding.hpp (embedding_lookup and its
// scatter-add backward):
//   1. independent naive float64 references written here (index formulas, per element);
//   2. generic vs looped (nearest, pixel shuffle and embedding bit-identical; linear ≤ 1e-6);
//   3. finite differences in double for every backward, plus the adjoint identity
//      <f(x), v> = <x, f_backward(v)> (all these maps are linear);
//   4. PyTorch fixtures (tests/fixtures/pooling.txt: F.interpolate nearest/bilinear/trilinear with
//      align_corners true and false, F.pixel_shuffle, F.embedding and its weight gradient);
//   5. error paths.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <lux/kernels/embedding.hpp>
#include <lux/kernels/upsample.hpp>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;
using lux_test::max_rel_err;
using lux_test::random_tensor;

template <class T, std::size_t N>
Tensor<T, N> cast(const Tensor<double, N>& x) {
  auto t = Tensor<T, N>::uninitialized(x.shape());
  for (index_t i = 0; i < x.numel(); ++i) t.data()[i] = static_cast<T>(x.data()[i]);
  return t;
}

template <class A, class B>
bool bitwise_equal(const A& a, const B& b) {
  if (a.shape() != b.shape()) return false;
  for (index_t i = 0; i < a.numel(); ++i)
    if (!(a.data()[i] == b.data()[i])) return false;
  return true;
}

/// Multi-index of linear (column-major) index k in shape s.
template <std::size_t N>
shape_t<N> unravel(index_t k, const shape_t<N>& s) {
  shape_t<N> i{};
  for (std::size_t d = 0; d < N; ++d) {
    i[d] = k % s[d];
    k /= s[d];
  }
  return i;
}
template <std::size_t N>
index_t ravel(const shape_t<N>& i, const shape_t<N>& s) {
  index_t k = 0;
  for (std::size_t d = N; d-- > 0;) k = k * s[d] + i[d];
  return k;
}

// =================================================================================================
// Naive references
// =================================================================================================

/// Nearest: y[o] = x[o / scale] per dimension (scale 1 beyond the spatial dims).
template <std::size_t N>
Tensor<double, N> naive_nearest(const Tensor<double, N>& x, const shape_t<N - 2>& scale) {
  shape_t<N> ys = x.shape();
  for (std::size_t a = 0; a + 2 < N; ++a) ys[a] *= scale[a];
  Tensor<double, N> y(ys);
  for (index_t k = 0; k < y.numel(); ++k) {
    shape_t<N> o = unravel(k, ys);
    for (std::size_t a = 0; a + 2 < N; ++a) o[a] /= scale[a];
    y.data()[k] = x.data()[ravel(o, x.shape())];
  }
  return y;
}

/// The 1-d linear interpolation weights of output o: (i0, i1, w0, w1), in double.
struct lin1d {
  index_t i0, i1;
  double w0, w1;
};
lin1d lin_weights(index_t o, index_t in, index_t out, bool align) {
  double src;
  if (align)
    src = out > 1
              ? static_cast<double>(o) * static_cast<double>(in - 1) / static_cast<double>(out - 1)
              : 0.0;
  else
    src = std::max(
        0.0,
        (static_cast<double>(o) + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5);
  const auto i0 = static_cast<index_t>(std::floor(src));
  const index_t i1 = std::min(i0 + 1, in - 1);
  const double f = src - static_cast<double>(i0);
  return {i0, i1, 1 - f, f};
}

/// Multilinear interpolation over the first S = N − 2 dims to the spatial size `out`.
template <std::size_t N>
Tensor<double, N> naive_linear(const Tensor<double, N>& x, const shape_t<N - 2>& out, bool align) {
  constexpr std::size_t S = N - 2;
  shape_t<N> ys = x.shape();
  for (std::size_t a = 0; a < S; ++a) ys[a] = out[a];
  Tensor<double, N> y(ys);
  for (index_t k = 0; k < y.numel(); ++k) {
    const shape_t<N> o = unravel(k, ys);
    std::array<lin1d, S> w{};
    for (std::size_t a = 0; a < S; ++a) w[a] = lin_weights(o[a], x.shape()[a], ys[a], align);
    double acc = 0;
    for (unsigned corner = 0; corner < (1u << S); ++corner) {
      shape_t<N> i = o;
      double weight = 1;
      for (std::size_t a = 0; a < S; ++a) {
        const bool hi = (corner >> a) & 1u;
        i[a] = hi ? w[a].i1 : w[a].i0;
        weight *= hi ? w[a].w1 : w[a].w0;
      }
      acc += weight * x.data()[ravel(i, x.shape())];
    }
    y.data()[k] = acc;
  }
  return y;
}

/// NNlib's pixel shuffle, element by element: y[s·r + q, c, b] = x[s, Σ q_k r^k + r^d c, b].
template <std::size_t N>
Tensor<double, N> naive_pixel_shuffle(const Tensor<double, N>& x, index_t r) {
  constexpr std::size_t d = N - 2;
  shape_t<N> ys = x.shape();
  index_t rd = 1;
  for (std::size_t a = 0; a < d; ++a) {
    ys[a] *= r;
    rd *= r;
  }
  ys[d] /= rd;
  Tensor<double, N> y(ys);
  for (index_t k = 0; k < y.numel(); ++k) {
    const shape_t<N> o = unravel(k, ys);
    shape_t<N> i = o;
    index_t ch = 0, pw = 1;
    for (std::size_t a = 0; a < d; ++a) {
      i[a] = o[a] / r;
      ch += (o[a] % r) * pw;
      pw *= r;
    }
    i[d] = ch + rd * o[d];
    y.data()[k] = x.data()[ravel(i, x.shape())];
  }
  return y;
}

template <std::size_t N>
void check_adjoint(const std::function<Tensor<double, N>(const Tensor<double, N>&)>& f,
                   const std::function<Tensor<double, N>(const Tensor<double, N>&)>& fT,
                   const Tensor<double, N>& x, const Tensor<double, N>& v) {
  const double lhs = lux_test::dot(f(x), v), rhs = lux_test::dot(x, fT(v));
  CHECK(std::abs(lhs - rhs) <= 1e-12 * (1 + std::abs(lhs)));
}

// =================================================================================================
// Per-case ladders
// =================================================================================================

template <class T, std::size_t N>
void check_nearest(const shape_t<N>& xs, const shape_t<N - 2>& scale) {
  INFO("x " << lux::format_shape(xs) << " scale " << lux::format_shape(scale));
  const auto xd = random_tensor<double>(xs, 11);
  const auto x = cast<T>(xd);
  const auto ref = naive_nearest(xd, scale);
  const auto yg = lux::upsample_nearest(lux::generic_op{}, x, scale);
  const auto yl = lux::upsample_nearest(lux::looped_op{}, x, scale);
  REQUIRE(yg.shape() == ref.shape());
  CHECK(max_rel_err(yg, cast<T>(ref)) == 0);
  CHECK(bitwise_equal(yg, yl));
  const auto v = random_tensor<double>(ref.shape(), 12);
  const auto dg = lux::upsample_nearest_backward(lux::generic_op{}, cast<T>(v), xs).dx;
  const auto dl = lux::upsample_nearest_backward(lux::looped_op{}, cast<T>(v), xs).dx;
  REQUIRE(dg.shape() == xs);
  CHECK(bitwise_equal(dg, dl));
  // Reference VJP: the block sums.
  Tensor<double, N> dref(xs);
  for (index_t k = 0; k < v.numel(); ++k) {
    shape_t<N> o = unravel(k, v.shape());
    for (std::size_t a = 0; a + 2 < N; ++a) o[a] /= scale[a];
    dref.data()[ravel(o, xs)] += v.data()[k];
  }
  CHECK(max_rel_err(dg, dref) <= (std::is_same_v<T, float> ? 1e-6 : 1e-15));
  if constexpr (std::is_same_v<T, double>) {
    const auto g = lux_test::numerical_gradient<N>(
        [&](const Tensor<double, N>& z) {
          return lux_test::dot(lux::upsample_nearest(lux::generic_op{}, z, scale), v);
        },
        xd);
    CHECK(max_rel_err(dg, g) <= 1e-6);
  }
}

template <class T, std::size_t N>
void check_linear(const shape_t<N>& xs, const shape_t<N - 2>& out, bool align) {
  INFO("x " << lux::format_shape(xs) << " → " << lux::format_shape(out) << " align_corners "
            << align);
  const auto xd = random_tensor<double>(xs, 21);
  const auto x = cast<T>(xd);
  const auto ref = naive_linear(xd, out, align);
  auto fwd = [&](auto mode, const auto& z) {
    if constexpr (N == 4)
      return lux::upsample_bilinear(mode, z, lux::upsample_size<2>(out), align);
    else
      return lux::upsample_trilinear(mode, z, lux::upsample_size<3>(out), align);
  };
  auto bwd = [&](auto mode, const auto& dy) {
    if constexpr (N == 4)
      return lux::upsample_bilinear_backward(mode, dy, xs, align).dx;
    else
      return lux::upsample_trilinear_backward(mode, dy, xs, align).dx;
  };
  // float: the source coordinate ratio·(o + ½) − ½ is computed in float (as NNlib and PyTorch
  // do), so λ carries an absolute error of about in·2⁻²⁴.
  const double tol = std::is_same_v<T, float> ? 5e-6 : 1e-13;
  const auto yg = fwd(lux::generic_op{}, x);
  const auto yl = fwd(lux::looped_op{}, x);
  REQUIRE(yg.shape() == ref.shape());
  CHECK(max_rel_err(yg, ref) <= tol);
  CHECK(max_rel_err(yl, ref) <= tol);
  const auto v = random_tensor<double>(ref.shape(), 22);
  const auto dg = bwd(lux::generic_op{}, cast<T>(v));
  const auto dl = bwd(lux::looped_op{}, cast<T>(v));
  REQUIRE(dg.shape() == xs);
  CHECK(max_rel_err(dl, dg) <= tol);
  if constexpr (std::is_same_v<T, double>) {
    const auto g = lux_test::numerical_gradient<N>(
        [&](const Tensor<double, N>& z) { return lux_test::dot(fwd(lux::generic_op{}, z), v); },
        xd);
    CHECK(max_rel_err(dg, g) <= 1e-6);
    CHECK(max_rel_err(dl, g) <= 1e-6);
    check_adjoint<N>([&](const Tensor<double, N>& z) { return fwd(lux::looped_op{}, z); },
                     [&](const Tensor<double, N>& z) { return bwd(lux::looped_op{}, z); }, xd, v);
  }
}

template <class T, std::size_t N>
void check_pixel_shuffle(const shape_t<N>& xs, index_t r) {
  INFO("x " << lux::format_shape(xs) << " r " << r);
  const auto xd = random_tensor<double>(xs, 31);
  const auto x = cast<T>(xd);
  const auto ref = naive_pixel_shuffle(xd, r);
  const auto yg = lux::pixel_shuffle(lux::generic_op{}, x, r);
  const auto yl = lux::pixel_shuffle(lux::looped_op{}, x, r);
  REQUIRE(yg.shape() == ref.shape());
  CHECK(bitwise_equal(yg, cast<T>(ref)));
  CHECK(bitwise_equal(yl, yg));
  // Backward = the inverse permutation: it undoes the forward exactly, in both modes.
  CHECK(bitwise_equal(lux::pixel_shuffle_backward(lux::generic_op{}, yg, r).dx, x));
  CHECK(bitwise_equal(lux::pixel_shuffle_backward(lux::looped_op{}, yg, r).dx, x));
  if constexpr (std::is_same_v<T, double>) {
    const auto v = random_tensor<double>(ref.shape(), 32);
    const auto g = lux_test::numerical_gradient<N>(
        [&](const Tensor<double, N>& z) { return lux_test::dot(lux::pixel_shuffle(z, r), v); }, xd);
    CHECK(max_rel_err(lux::pixel_shuffle_backward(v, r).dx, g) <= 1e-6);
  }
}

}  // namespace

// =================================================================================================
// upsample_nearest
// =================================================================================================

TEMPLATE_TEST_CASE("upsample_nearest: reference, modes, backward and FD, ranks 3 to 6",
                   "[upsample]", float, double) {
  using T = TestType;
  check_nearest<T, 3>({5, 3, 2}, {3});
  check_nearest<T, 4>({5, 4, 3, 2}, {2, 3});
  check_nearest<T, 4>({5, 4, 3, 2}, {1, 1});
  check_nearest<T, 4>({37, 3, 2, 1}, {2, 2});
  check_nearest<T, 4>({37, 3, 2, 1}, {4, 1});
  check_nearest<T, 4>({33, 2, 1, 2}, {5, 2});
  check_nearest<T, 4>({3, 33, 1, 2}, {1, 3});
  check_nearest<T, 5>({4, 3, 2, 2, 1}, {2, 2, 2});
  check_nearest<T, 6>({3, 2, 2, 2, 2, 1}, {2, 1, 3, 2});
}

TEST_CASE("upsample_nearest: the size form equals the scale form", "[upsample]") {
  const auto x = random_tensor<float>(shape_t<4>{5, 4, 3, 2}, 1);
  CHECK(bitwise_equal(lux::upsample_nearest(x, lux::upsample_size<2>({10, 12})),
                      lux::upsample_nearest(x, {2, 3})));
  CHECK(lux::upsample_nearest(x, lux::upsample_size(shape_t<2>{5, 4})).shape() == x.shape());
}

// =================================================================================================
// upsample_bilinear / upsample_trilinear
// =================================================================================================

TEMPLATE_TEST_CASE("upsample_bilinear: reference, modes, backward, FD and adjoint", "[upsample]",
                   float, double) {
  using T = TestType;
  for (const bool align : {true, false}) {
    check_linear<T, 4>({5, 4, 3, 2}, {11, 7}, align);
    check_linear<T, 4>({5, 4, 3, 2}, {10, 8}, align);
    check_linear<T, 4>({5, 4, 3, 2}, {5, 4}, align);
    check_linear<T, 4>({5, 4, 3, 2}, {3, 2}, align);  // down-sampling through the size form
    check_linear<T, 4>({5, 4, 3, 2}, {1, 1}, align);
    check_linear<T, 4>({1, 4, 2, 1}, {7, 1}, align);
    check_linear<T, 4>({19, 6, 2, 1}, {40, 13}, align);
  }
}

TEMPLATE_TEST_CASE("upsample_trilinear: reference, modes, backward, FD and adjoint", "[upsample]",
                   float, double) {
  using T = TestType;
  for (const bool align : {true, false}) {
    check_linear<T, 5>({4, 3, 3, 2, 1}, {7, 6, 5}, align);
    check_linear<T, 5>({4, 3, 3, 2, 1}, {8, 6, 6}, align);
    check_linear<T, 5>({4, 3, 3, 1, 2}, {4, 3, 3}, align);
    check_linear<T, 5>({4, 3, 2, 1, 1}, {2, 5, 1}, align);
  }
}

TEST_CASE("linear upsampling: align_corners defaults to true (NNlib, Lux), scale form = size form",
          "[upsample]") {
  const auto x = random_tensor<double>(shape_t<4>{5, 4, 2, 1}, 3);
  const auto y_default = lux::upsample_bilinear(x, {2, 2});
  CHECK(bitwise_equal(y_default, lux::upsample_bilinear(x, lux::upsample_size<2>({10, 8}), true)));
  CHECK(max_rel_err(y_default, lux::upsample_bilinear(x, {2, 2}, false)) > 1e-3);
  // Aligned corners: the corner outputs are the corner inputs.
  CHECK(y_default(0, 0, 1, 0) == x(0, 0, 1, 0));
  CHECK(y_default(9, 7, 1, 0) == Approx(x(4, 3, 1, 0)).epsilon(1e-15));
  // Real scales: output ⌊scale·in⌋.
  CHECK(lux::upsample_bilinear(x, {1.5, 2.5}).shape() == (shape_t<4>{7, 10, 2, 1}));
  CHECK(bitwise_equal(lux::upsample_bilinear(x, {1.5, 2.5}, false),
                      lux::upsample_bilinear(x, lux::upsample_size<2>({7, 10}), false)));
  const auto x5 = random_tensor<double>(shape_t<5>{3, 4, 2, 1, 1}, 4);
  CHECK(bitwise_equal(lux::upsample_trilinear(x5, {2, 1, 3}),
                      lux::upsample_trilinear(x5, lux::upsample_size<3>({6, 4, 6}))));
}

// =================================================================================================
// pixel_shuffle
// =================================================================================================

TEMPLATE_TEST_CASE("pixel_shuffle: NNlib's index map, inverse backward, 1-d to 3-d", "[upsample]",
                   float, double) {
  using T = TestType;
  check_pixel_shuffle<T, 3>({5, 6, 2}, 3);
  check_pixel_shuffle<T, 4>({3, 4, 8, 2}, 2);
  check_pixel_shuffle<T, 4>({21, 2, 9, 1}, 3);
  check_pixel_shuffle<T, 4>({3, 2, 5, 2}, 1);
  check_pixel_shuffle<T, 5>({2, 3, 2, 16, 1}, 2);
}

TEST_CASE("pixel_shuffle on 2-d is PyTorch's map: y(w·r+j, h·r+i, c, n) = x(w, h, c·r²+i·r+j, n)",
          "[upsample]") {
  const index_t r = 3;
  const auto x = random_tensor<double>(shape_t<4>{4, 3, 2 * r * r, 2}, 5);
  const auto y = lux::pixel_shuffle(x, r);
  REQUIRE(y.shape() == (shape_t<4>{12, 9, 2, 2}));
  bool ok = true;
  for (index_t n = 0; n < 2; ++n)
    for (index_t c = 0; c < 2; ++c)
      for (index_t h = 0; h < 3; ++h)
        for (index_t w = 0; w < 4; ++w)
          for (index_t i = 0; i < r; ++i)
            for (index_t j = 0; j < r; ++j)
              ok = ok && y(w * r + j, h * r + i, c, n) == x(w, h, c * r * r + i * r + j, n);
  CHECK(ok);
}

// =================================================================================================
// embedding_lookup
// =================================================================================================

TEMPLATE_TEST_CASE("embedding_lookup gathers columns for any integer type and index rank",
                   "[embedding]", std::int64_t, std::int32_t, std::uint8_t, std::int16_t,
                   std::uint64_t) {
  using I = TestType;
  const auto w = random_tensor<float>(shape_t<2>{6, 9}, 7);
  Tensor<I, 3> idx(shape_t<3>{2, 3, 2});
  for (index_t j = 0; j < idx.numel(); ++j) idx[j] = static_cast<I>((j * 5 + 2) % 9);
  idx[4] = idx[1];  // a repeated index
  const auto yl = lux::embedding_lookup(w, idx);
  const auto yg = lux::embedding_lookup(lux::generic_op{}, w, idx);
  REQUIRE(yl.shape() == (shape_t<4>{6, 2, 3, 2}));
  CHECK(bitwise_equal(yl, yg));
  bool ok = true;
  for (index_t j = 0; j < idx.numel(); ++j)
    for (index_t f = 0; f < 6; ++f)
      ok = ok && yl.data()[j * 6 + f] == w(f, static_cast<index_t>(idx[j]));
  CHECK(ok);
  // Rank 1 and rank 0 indices.
  const Tensor<I, 1> v1(shape_t<1>{3}, {I(8), I(0), I(8)});
  const auto y1 = lux::embedding_lookup(w, v1);
  CHECK(y1.shape() == (shape_t<2>{6, 3}));
  CHECK(y1(5, 2) == w(5, 8));
  Tensor<I, 0> v0(shape_t<0>{});
  v0[0] = I(4);
  const auto y0 = lux::embedding_lookup(w, v0);
  CHECK(y0.shape() == (shape_t<1>{6}));
  CHECK(y0[3] == w(3, 4));
}

TEMPLATE_TEST_CASE("embedding_lookup_backward: deterministic scatter-add, FD, modes agree",
                   "[embedding]", float, double) {
  using T = TestType;
  const shape_t<2> ws{5, 7};
  const auto wd = random_tensor<double>(ws, 8);
  Tensor<std::int64_t, 2> idx(shape_t<2>{40, 3});
  for (index_t j = 0; j < idx.numel(); ++j) idx[j] = (j * j + 3) % 6;  // column 6 never used
  const auto v = random_tensor<double>(shape_t<3>{5, 40, 3}, 9);
  const auto dg = lux::embedding_lookup_backward(lux::generic_op{}, cast<T>(v), idx, ws).dweight;
  const auto dl = lux::embedding_lookup_backward(lux::looped_op{}, cast<T>(v), idx, ws).dweight;
  REQUIRE(dg.shape() == ws);
  CHECK(bitwise_equal(dg, dl));
  Tensor<double, 2> ref(ws);
  for (index_t j = 0; j < idx.numel(); ++j)
    for (index_t f = 0; f < 5; ++f) ref(f, idx[j]) += v.data()[j * 5 + f];
  CHECK(max_rel_err(dg, ref) <= (std::is_same_v<T, float> ? 1e-6 : 1e-15));
  for (index_t f = 0; f < 5; ++f) CHECK(dl(f, 6) == 0);
  if constexpr (std::is_same_v<T, double>) {
    const auto g = lux_test::numerical_gradient<2>(
        [&](const Tensor<double, 2>& z) { return lux_test::dot(lux::embedding_lookup(z, idx), v); },
        wd);
    CHECK(max_rel_err(dl, g) <= 1e-6);
  }
  // The looped result does not depend on the thread count: bit-identical to the serial generic
  // kernel above, also on a large problem that runs in parallel.
  const shape_t<2> big{64, 300};
  Tensor<std::int32_t, 1> many(shape_t<1>{20000});
  for (index_t j = 0; j < many.numel(); ++j) many[j] = static_cast<std::int32_t>((j * 7919) % 300);
  const auto gbig = cast<T>(random_tensor<double>(shape_t<2>{64, 20000}, 10));
  CHECK(bitwise_equal(lux::embedding_lookup_backward(lux::looped_op{}, gbig, many, big).dweight,
                      lux::embedding_lookup_backward(lux::generic_op{}, gbig, many, big).dweight));
}

// =================================================================================================
// PyTorch
// =================================================================================================

TEMPLATE_TEST_CASE("upsampling, pixel shuffle and embedding match PyTorch", "[upsample][torch]",
                   float, double) {
  using T = TestType;
  const lux_test::fixture_file f("pooling.txt");
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-10;
  auto shape_of = [&](const std::string& key, auto n) {
    constexpr std::size_t S = decltype(n)::value;
    const auto t = f.tensor<double, 1>(key);
    shape_t<S> s{};
    for (std::size_t a = 0; a < S; ++a) s[a] = static_cast<index_t>(t[static_cast<index_t>(a)]);
    return s;
  };
  auto check = [&](const auto& y, const auto& dx, const std::string& name) {
    INFO(name);
    constexpr std::size_t N = std::remove_cvref_t<decltype(y)>::rank;
    CHECK(max_rel_err(y, f.tensor<double, N>(name + "_y")) <= tol);
    CHECK(max_rel_err(dx, f.tensor<double, N>(name + "_dx")) <= tol);
  };
  using one = std::integral_constant<std::size_t, 1>;
  using two = std::integral_constant<std::size_t, 2>;
  using three = std::integral_constant<std::size_t, 3>;
  {
    const auto x = f.tensor<T, 3>("nearest1d_x");
    const auto s = shape_of("nearest1d_scale", one{});
    check(lux::upsample_nearest(x, s),
          lux::upsample_nearest_backward(f.tensor<T, 3>("nearest1d_dy"), x.shape()).dx,
          "nearest1d");
  }
  {
    const auto x = f.tensor<T, 4>("nearest2d_x");
    const auto s = shape_of("nearest2d_scale", two{});
    check(lux::upsample_nearest(lux::generic_op{}, x, s),
          lux::upsample_nearest_backward(f.tensor<T, 4>("nearest2d_dy"), x.shape()).dx,
          "nearest2d");
  }
  {
    const auto x = f.tensor<T, 5>("nearest3d_x");
    const auto s = shape_of("nearest3d_scale", three{});
    check(lux::upsample_nearest(x, s),
          lux::upsample_nearest_backward(f.tensor<T, 5>("nearest3d_dy"), x.shape()).dx,
          "nearest3d");
  }
  for (const bool align : {true, false}) {
    const std::string tag = align ? "_align" : "_noalign";
    for (const std::string base : {"bilinear", "bilinear_x2"}) {
      const std::string name = base + tag;
      const auto x = f.tensor<T, 4>(name + "_x");
      const auto size = lux::upsample_size<2>(shape_of(name + "_size", two{}));
      const auto dy = f.tensor<T, 4>(name + "_dy");
      for (int mode = 0; mode < 2; ++mode)
        check(mode ? lux::upsample_bilinear(lux::looped_op{}, x, size, align)
                   : lux::upsample_bilinear(lux::generic_op{}, x, size, align),
              mode ? lux::upsample_bilinear_backward(lux::looped_op{}, dy, x.shape(), align).dx
                   : lux::upsample_bilinear_backward(lux::generic_op{}, dy, x.shape(), align).dx,
              name);
    }
    const std::string name = "trilinear" + tag;
    const auto x = f.tensor<T, 5>(name + "_x");
    const auto size = lux::upsample_size<3>(shape_of(name + "_size", three{}));
    const auto dy = f.tensor<T, 5>(name + "_dy");
    for (int mode = 0; mode < 2; ++mode)
      check(mode ? lux::upsample_trilinear(lux::looped_op{}, x, size, align)
                 : lux::upsample_trilinear(lux::generic_op{}, x, size, align),
            mode ? lux::upsample_trilinear_backward(lux::looped_op{}, dy, x.shape(), align).dx
                 : lux::upsample_trilinear_backward(lux::generic_op{}, dy, x.shape(), align).dx,
            name);
  }
  for (const std::string name : {"pixel_shuffle_r2", "pixel_shuffle_r3"}) {
    const auto x = f.tensor<T, 4>(name + "_x");
    const auto r = static_cast<index_t>(f.tensor<double, 1>(name + "_r")[0]);
    check(lux::pixel_shuffle(x, r), lux::pixel_shuffle_backward(f.tensor<T, 4>(name + "_dy"), r).dx,
          name);
  }
  {
    // torch weight (7, 5) row-major = Lux (5, 7); torch indices (3, 4) = Lux (4, 3).
    const auto w = f.tensor<T, 2>("embedding_weight");
    REQUIRE(w.shape() == (shape_t<2>{5, 7}));
    const auto idx_d = f.tensor<double, 2>("embedding_indices");
    Tensor<std::int64_t, 2> idx(idx_d.shape());
    for (index_t j = 0; j < idx.numel(); ++j) idx[j] = static_cast<std::int64_t>(idx_d[j]);
    const auto y = lux::embedding_lookup(w, idx);
    REQUIRE(y.shape() == (shape_t<3>{5, 4, 3}));
    CHECK(max_rel_err(y, f.tensor<double, 3>("embedding_y")) <= tol);
    const auto dw = lux::embedding_lookup_backward(f.tensor<T, 3>("embedding_dy"), idx, w.shape());
    CHECK(max_rel_err(dw.dweight, f.tensor<double, 2>("embedding_dweight")) <= tol);
  }
}

// =================================================================================================
// Element types and errors
// =================================================================================================

TEST_CASE("upsampling, pixel shuffle and embedding run on long double (generic mode)",
          "[upsample]") {
  const auto xd = random_tensor<double>(shape_t<4>{3, 2, 4, 1}, 6);
  const auto x = cast<long double>(xd);
  CHECK(max_rel_err(lux::upsample_nearest(x, {2, 2}), lux::upsample_nearest(xd, {2, 2})) == 0);
  CHECK(max_rel_err(lux::upsample_bilinear(x, {2, 3}), naive_linear(xd, {6, 6}, true)) <= 1e-15);
  CHECK(max_rel_err(lux::pixel_shuffle(x, 2), naive_pixel_shuffle(xd, 2)) == 0);
  const Tensor<int, 1> idx(shape_t<1>{2}, {1, 0});
  const auto w = cast<long double>(random_tensor<double>(shape_t<2>{3, 2}, 1));
  CHECK(lux::embedding_lookup(w, idx)(2, 0) == w(2, 1));
}

TEST_CASE("upsampling, pixel shuffle and embedding reject bad arguments", "[upsample][errors]") {
  const Tensor<float, 4> x(shape_t<4>{4, 3, 8, 2});
  // nearest
  CHECK_THROWS_AS(lux::upsample_nearest(x, {2, 0}), lux::shape_error);
  CHECK_THROWS_WITH(lux::upsample_nearest(x, {0, 2}), Catch::Contains("upsample_nearest") &&
                                                          Catch::Contains("(0, 2)") &&
                                                          Catch::Contains("(4, 3, 8, 2)"));
  CHECK_THROWS_WITH(lux::upsample_nearest(x, lux::upsample_size<2>({8, 7})),
                    Catch::Contains("upsample_nearest") && Catch::Contains("(8, 7)"));
  CHECK_THROWS_AS(lux::upsample_nearest(x, lux::upsample_size<2>({2, 3})), lux::shape_error);
  CHECK_THROWS_WITH(
      lux::upsample_nearest_backward(Tensor<float, 4>(shape_t<4>{8, 7, 8, 2}), x.shape()),
      Catch::Contains("upsample_nearest_backward") && Catch::Contains("(8, 7, 8, 2)"));
  CHECK_THROWS_AS(
      lux::upsample_nearest_backward(Tensor<float, 4>(shape_t<4>{8, 6, 8, 1}), x.shape()),
      lux::shape_error);
  // linear
  CHECK_THROWS_AS(lux::upsample_bilinear(x, {0.5, 2.0}), lux::shape_error);
  CHECK_THROWS_WITH(lux::upsample_bilinear(x, {2.0, 0.9}),
                    Catch::Contains("upsample_bilinear") && Catch::Contains("scale"));
  CHECK_THROWS_WITH(lux::upsample_bilinear(x, lux::upsample_size<2>({0, 4})),
                    Catch::Contains("upsample_bilinear") && Catch::Contains("(0, 4)"));
  CHECK_THROWS_AS(lux::upsample_bilinear(Tensor<float, 4>(shape_t<4>{0, 3, 1, 1}), {2.0, 2.0}),
                  lux::shape_error);
  CHECK_THROWS_WITH(
      lux::upsample_bilinear_backward(Tensor<float, 4>(shape_t<4>{8, 6, 4, 2}), x.shape()),
      Catch::Contains("upsample_bilinear_backward") && Catch::Contains("(8, 6, 4, 2)") &&
          Catch::Contains("(4, 3, 8, 2)"));
  const Tensor<float, 5> x5(shape_t<5>{2, 2, 2, 1, 1});
  CHECK_THROWS_AS(lux::upsample_trilinear(x5, {1.0, 1.0, 0.0}), lux::shape_error);
  CHECK_THROWS_WITH(
      lux::upsample_trilinear_backward(Tensor<float, 5>(shape_t<5>{4, 4, 4, 2, 1}), x5.shape()),
      Catch::Contains("upsample_trilinear_backward"));
  // pixel shuffle
  CHECK_THROWS_AS(lux::pixel_shuffle(x, 3), lux::shape_error);
  CHECK_THROWS_WITH(lux::pixel_shuffle(x, 3), Catch::Contains("pixel_shuffle") &&
                                                  Catch::Contains("(4, 3, 8, 2)") &&
                                                  Catch::Contains("8 channels"));
  CHECK_THROWS_AS(lux::pixel_shuffle(x, 0), lux::argument_error);
  CHECK_THROWS_WITH(lux::pixel_shuffle_backward(x, 2),
                    Catch::Contains("pixel_shuffle_backward") && Catch::Contains("(4, 3, 8, 2)"));
  // embedding
  const Tensor<float, 2> w(shape_t<2>{4, 7});
  const Tensor<int, 2> bad(shape_t<2>{2, 2}, {0, 6, 7, 1});
  CHECK_THROWS_AS(lux::embedding_lookup(w, bad), lux::argument_error);
  CHECK_THROWS_WITH(lux::embedding_lookup(w, bad),
                    Catch::Contains("embedding_lookup") && Catch::Contains("index 7") &&
                        Catch::Contains("[0, 7)") && Catch::Contains("position 2"));
  const Tensor<int, 1> negative(shape_t<1>{1}, {-1});
  CHECK_THROWS_WITH(lux::embedding_lookup(lux::generic_op{}, w, negative),
                    Catch::Contains("embedding_lookup") && Catch::Contains("index -1"));
  const Tensor<std::uint32_t, 1> big(shape_t<1>{1}, {4000000000u});
  CHECK_THROWS_WITH(lux::embedding_lookup(w, big), Catch::Contains("index 4000000000"));
  const Tensor<int, 1> good(shape_t<1>{3}, {0, 1, 2});
  CHECK_THROWS_WITH(
      lux::embedding_lookup_backward(Tensor<float, 2>(shape_t<2>{4, 2}), good, w.shape()),
      Catch::Contains("embedding_lookup_backward") && Catch::Contains("(4, 2)") &&
          Catch::Contains("(4, 3)"));
  CHECK_THROWS_AS(
      lux::embedding_lookup_backward(Tensor<float, 2>(shape_t<2>{4, 3}), good, shape_t<2>{4, 2}),
      lux::argument_error);
}

TEST_CASE("upsampling and pixel shuffle: overflowing sizes throw before allocating",
          "[upsample][errors]") {
  const Tensor<float, 4> x(shape_t<4>{4, 3, 8, 2});
  // in·scale overflows, or the output has more elements than the address space holds; the
  // operation is named (not "Tensor").
  CHECK_THROWS_WITH(lux::upsample_nearest(x, {1LL << 62, 1}),
                    Catch::Contains("upsample_nearest: the output size in·scale overflows"));
  const Tensor<float, 4> one(shape_t<4>{1, 1, 1, 1});
  CHECK_THROWS_WITH(lux::upsample_nearest(one, {1LL << 62, 1}),
                    Catch::Contains("upsample_nearest: 4611686018427387904 elements"));
  CHECK_THROWS_AS(lux::upsample_nearest(one, {1LL << 40, 1LL << 40}), lux::shape_error);
  // Real scales: scale·in beyond 2^63 must not be converted to an integer.
  CHECK_THROWS_WITH(lux::upsample_bilinear(x, {1e300, 1.0}),
                    Catch::Contains("upsample_bilinear") && Catch::Contains("does not fit"));
  CHECK_THROWS_AS(lux::upsample_bilinear(x, {1e18, 1e18}), lux::shape_error);
  const Tensor<float, 5> x5(shape_t<5>{2, 2, 2, 1, 1});
  CHECK_THROWS_AS(lux::upsample_trilinear(x5, {1e30, 1.0, 1.0}), lux::shape_error);
  // Pixel shuffle: r^d and r·in overflow.
  CHECK_THROWS_WITH(lux::pixel_shuffle(x, 1LL << 32),
                    Catch::Contains("pixel_shuffle: the factor r^d overflows"));
  const Tensor<float, 3> x3(shape_t<3>{4, 0, 1});
  CHECK_THROWS_WITH(lux::pixel_shuffle(x3, std::numeric_limits<index_t>::max() / 2 + 1),
                    Catch::Contains("pixel_shuffle: the output size r·in overflows"));
  CHECK_THROWS_AS(lux::pixel_shuffle_backward(x, 1LL << 40), lux::shape_error);
  // An empty dy with 2^62 channels: C·r overflows.
  const auto empty = lux::view(static_cast<float*>(nullptr), lux::make_shape(0, 1LL << 62, 1));
  CHECK_THROWS_WITH(lux::pixel_shuffle_backward(empty, 2),
                    Catch::Contains("pixel_shuffle_backward: the input channels C·r^d overflows"));
  // A negative size in an x_shape given as a value.
  CHECK_THROWS_AS(lux::upsample_nearest_backward(x, shape_t<4>{2, 3, 8, -2}), lux::shape_error);
  CHECK_THROWS_AS(lux::upsample_bilinear_backward(x, shape_t<4>{-4, 3, 8, 2}), lux::shape_error);
}

TEST_CASE("upsample_bilinear_ names its output y, upsample_bilinear_backward_ its dy and dx",
          "[upsample][errors]") {
  const Tensor<float, 4> x(shape_t<4>{4, 3, 8, 2});
  Tensor<float, 4> y(shape_t<4>{8, 6, 4, 2});
  CHECK_THROWS_WITH(lux::upsample_bilinear_(y, x),
                    Catch::Equals("upsample_bilinear_: y (8, 6, 4, 2) and x (4, 3, 8, 2) differ in "
                                  "the channel or batch dimension"));
  Tensor<float, 4> dx(shape_t<4>{4, 3, 4, 2});
  CHECK_THROWS_WITH(
      lux::upsample_bilinear_backward_(dx, x),
      Catch::Equals("upsample_bilinear_backward_: dy (4, 3, 8, 2) and dx (4, 3, 4, 2) "
                    "differ in the channel or batch dimension"));
}

// =================================================================================================
// In-place variants
// =================================================================================================

TEMPLATE_TEST_CASE("in-place upsampling, pixel shuffle and embedding equal the allocating kernels",
                   "[upsample]", float, double) {
  using T = TestType;
  const auto x = random_tensor<T>(shape_t<4>{19, 5, 4, 2}, 41);
  for (int mode = 0; mode < 2; ++mode) {
    INFO("mode " << mode);
    Tensor<T, 4> y(shape_t<4>{38, 15, 4, 2}), dx(x.shape());
    const auto v = mode ? lux::upsample_nearest_(lux::looped_op{}, y, x)
                        : lux::upsample_nearest_(lux::generic_op{}, y, x);
    CHECK(v.shape() == y.shape());
    CHECK(bitwise_equal(y, lux::upsample_nearest(x, {2, 3})));
    const auto dy = random_tensor<T>(y.shape(), 42);
    (void)lux::upsample_nearest_backward_(dx, dy);
    CHECK(bitwise_equal(dx, lux::upsample_nearest_backward(dy, x.shape()).dx));
    Tensor<T, 4> yb(shape_t<4>{40, 11, 4, 2});
    for (const bool align : {true, false}) {
      (void)lux::upsample_bilinear_(yb, x, align);
      CHECK(bitwise_equal(yb, lux::upsample_bilinear(x, lux::upsample_size<2>({40, 11}), align)));
      (void)lux::upsample_bilinear_backward_(dx, yb, align);
      CHECK(bitwise_equal(dx, lux::upsample_bilinear_backward(yb, x.shape(), align).dx));
    }
    Tensor<T, 4> ys(shape_t<4>{38, 10, 1, 2});
    (void)lux::pixel_shuffle_(ys, x, 2);
    CHECK(bitwise_equal(ys, lux::pixel_shuffle(x, 2)));
    (void)lux::pixel_shuffle_backward_(dx, ys, 2);
    CHECK(bitwise_equal(dx, x));
  }
  const auto x5 = random_tensor<T>(shape_t<5>{4, 3, 2, 2, 1}, 43);
  Tensor<T, 5> y5(shape_t<5>{7, 6, 5, 2, 1}), dx5(x5.shape());
  (void)lux::upsample_trilinear_(y5, x5);
  CHECK(bitwise_equal(y5, lux::upsample_trilinear(x5, lux::upsample_size<3>({7, 6, 5}))));
  (void)lux::upsample_trilinear_backward_(dx5, y5, false);
  CHECK(bitwise_equal(dx5, lux::upsample_trilinear_backward(y5, x5.shape(), false).dx));
  // Embedding.
  const auto w = random_tensor<T>(shape_t<2>{4, 6}, 44);
  const Tensor<std::int16_t, 2> idx(shape_t<2>{2, 3}, {5, 0, 5, 2, 1, 0});
  Tensor<T, 3> ye(shape_t<3>{4, 2, 3});
  (void)lux::embedding_lookup_(ye, w, idx);
  CHECK(bitwise_equal(ye, lux::embedding_lookup(w, idx)));
  Tensor<T, 2> dw(w.shape());
  (void)lux::embedding_lookup_backward_(dw, ye, idx);
  CHECK(bitwise_equal(dw, lux::embedding_lookup_backward(ye, idx, w.shape()).dweight));
  // Errors: shapes that do not fit, overlapping buffers.
  Tensor<T, 4> odd(shape_t<4>{37, 15, 4, 2});
  CHECK_THROWS_WITH(lux::upsample_nearest_(odd, x),
                    Catch::Contains("upsample_nearest_") && Catch::Contains("(37, 15, 4, 2)"));
  CHECK_THROWS_AS(lux::upsample_nearest_backward_(odd, x), lux::shape_error);
  Tensor<T, 4> wrong_c(shape_t<4>{40, 11, 3, 2});
  CHECK_THROWS_WITH(lux::upsample_bilinear_(wrong_c, x), Catch::Contains("upsample_bilinear_"));
  CHECK_THROWS_AS(lux::pixel_shuffle_(odd, x, 2), lux::shape_error);
  CHECK_THROWS_WITH(lux::pixel_shuffle_backward_(odd, x, 2),
                    Catch::Contains("pixel_shuffle_backward_"));
  Tensor<T, 4> buf(shape_t<4>{38, 15, 4, 2});
  auto head = lux::view(buf.data(), x.shape());
  CHECK_THROWS_WITH(lux::upsample_nearest_(buf, head), Catch::Contains("overlap"));
  Tensor<T, 3> ye_bad(shape_t<3>{4, 3, 2});
  CHECK_THROWS_WITH(lux::embedding_lookup_(ye_bad, w, idx),
                    Catch::Contains("embedding_lookup_") && Catch::Contains("(4, 3, 2)"));
  CHECK_THROWS_AS(lux::embedding_lookup_backward_(lux::view(ye.data(), shape_t<2>{4, 6}), ye, idx),
                  lux::argument_error);  // dweight aliases dy
}
