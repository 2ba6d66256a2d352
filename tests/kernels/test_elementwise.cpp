// Tests of lux/kernels/activation.hpp and lux/kernels/bias_activation.hpp: fast_activation,
// fast_activation_, activation_backward, bias_activation, bias_activation_,
// bias_activation_backward — the oracle ladder of DESIGN.md §10:
//   1. independent float64 references written here (not the generic kernel);
//   2. generic vs looped agreement;
//   3. central finite differences in double for dx and dbias;
//   4. PyTorch fixtures (tests/fixtures/make_elementwise_fixtures.py → elementwise.txt);
//   5. error paths.
// To bound compile time the full mode × type matrix uses identity, relu, tanh_ (derivative from
// the output) and gelu (from the input); the PyTorch fixtures cover 16 activations with double in
// the generic mode and float in the looped mode.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <lux/kernels/activation.hpp>
#include <lux/kernels/bias_activation.hpp>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using lux_test::to_double;

template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-14;
}

// ---- independent float64 references ----------------------------------------------------------
constexpr double kPi = 3.14159265358979323846;

double ref_value(lux::identity, double x) { return x; }
double ref_value(lux::relu, double x) { return x > 0 ? x : 0.0; }
double ref_value(lux::tanh_, double x) { return std::tanh(x); }
double ref_value(lux::gelu, double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / kPi) * (x + 0.044715 * x * x * x)));
}
double ref_deriv(lux::identity, double) { return 1; }
double ref_deriv(lux::relu, double x) { return x > 0 ? 1.0 : 0.0; }
double ref_deriv(lux::tanh_, double x) {
  const double t = std::tanh(x);
  return 1 - t * t;
}
double ref_deriv(lux::gelu, double x) {
  const double c = std::sqrt(2 / kPi);
  const double t = std::tanh(c * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
}

/// Calls f(functor) for the four representative activations.
template <class Fn>
void for_each_activation(Fn&& fn) {
  fn(lux::identity{});
  fn(lux::relu{});
  fn(lux::tanh_{});
  fn(lux::gelu{});
}

/// The argument activation_backward wants for F: {x, y} with the unneeded one lux::none.
template <class F, class X, class Y, class DY>
auto backward_of(const F& f, const DY& dy, const X& x, const Y& y) {
  if constexpr (lux::activation_traits<F>::uses_output)
    return lux::activation_backward(f, dy, lux::none, y);
  else
    return lux::activation_backward(f, dy, x, lux::none);
}
template <class M, class F, class X, class Y, class DY>
auto backward_of(M mode, const F& f, const DY& dy, const X& x, const Y& y) {
  if constexpr (lux::activation_traits<F>::uses_output)
    return lux::activation_backward(mode, f, dy, lux::none, y);
  else
    return lux::activation_backward(mode, f, dy, x, lux::none);
}

const std::vector<index_t> kSizes = {1, 7, 15, 16, 17, 33, 1000, 70001};

}  // namespace

// =============================================================================================
// fast_activation
// =============================================================================================

TEMPLATE_TEST_CASE("fast_activation matches a float64 reference in every mode", "[activation]",
                   float, double) {
  using T = TestType;
  for_each_activation([](auto f) {
    using F = decltype(f);
    for (index_t n : kSizes) {
      INFO(lux::activation_traits<F>::name << " n = " << n);
      const auto x = random_tensor<T, 1>({n}, 100 + static_cast<std::uint64_t>(n), -4, 4);
      lux::Tensor<double, 1> ref(x.shape());
      for (index_t i = 0; i < n; ++i) ref[i] = ref_value(f, static_cast<double>(x[i]));

      const auto yg = lux::fast_activation(lux::generic_op{}, f, x);
      const auto yl = lux::fast_activation(lux::looped_op{}, f, x);
      const auto yd = lux::fast_activation(f, x);  // default mode
      CHECK(max_rel_err(yg, ref) <= tol<T>());
      CHECK(max_rel_err(yl, ref) <= tol<T>());
      CHECK(max_rel_err(yl, yg) <= (std::is_same_v<T, float> ? 1e-5 : 1e-13));
      CHECK(max_rel_err(yd, yl) == 0);
      CHECK(yg.shape() == x.shape());
    }
  });
}

TEMPLATE_TEST_CASE("activation_backward matches a float64 reference in every mode", "[activation]",
                   float, double) {
  using T = TestType;
  for_each_activation([](auto f) {
    using F = decltype(f);
    for (index_t n : kSizes) {
      INFO(lux::activation_traits<F>::name << " n = " << n);
      const auto x = random_tensor<T, 1>({n}, 200 + static_cast<std::uint64_t>(n), -4, 4);
      const auto dy = random_tensor<T, 1>({n}, 300 + static_cast<std::uint64_t>(n));
      const auto y = lux::fast_activation(f, x);
      lux::Tensor<double, 1> ref(x.shape());
      for (index_t i = 0; i < n; ++i)
        ref[i] = static_cast<double>(dy[i]) * ref_deriv(f, static_cast<double>(x[i]));

      const auto gg = backward_of(lux::generic_op{}, f, dy, x, y);
      const auto gl = backward_of(lux::looped_op{}, f, dy, x, y);
      const auto gd = backward_of(f, dy, x, y);
      // float: tanh' from a float y carries y's rounding (1 - y² loses relative accuracy near
      // |y| = 1), so the bound is a few float ulps of the scale.
      CHECK(max_rel_err(gg.dx, ref) <= (std::is_same_v<T, float> ? 1e-6 : 1e-13));
      CHECK(max_rel_err(gl.dx, ref) <= (std::is_same_v<T, float> ? 1e-6 : 1e-13));
      CHECK(max_rel_err(gl.dx, gg.dx) <= (std::is_same_v<T, float> ? 1e-5 : 1e-13));
      CHECK(max_rel_err(gd.dx, gl.dx) == 0);
    }
  });
}

TEST_CASE("activation_backward agrees with central finite differences (double)", "[activation]") {
  for_each_activation([](auto f) {
    using F = decltype(f);
    INFO(lux::activation_traits<F>::name);
    const auto x = random_tensor<double, 2>({13, 5}, 7, -3, 3);
    const auto v = random_tensor<double, 2>({13, 5}, 8);
    const auto y = lux::fast_activation(f, x);
    const auto g = backward_of(f, v, x, y);
    const auto num = lux_test::numerical_gradient<2>(
        [&](const lux::Tensor<double, 2>& xp) {
          return lux_test::dot(lux::fast_activation(lux::generic_op{}, f, xp), v);
        },
        x);
    CHECK(max_rel_err(g.dx, num) <= 1e-6);
  });
}

TEMPLATE_TEST_CASE("fast_activation_ works in place and returns the view of x", "[activation]",
                   float, double) {
  using T = TestType;
  for_each_activation([](auto f) {
    using F = decltype(f);
    INFO(lux::activation_traits<F>::name);
    auto x = random_tensor<T, 3>({5, 7, 3}, 11, -3, 3);
    const auto expect_g = lux::fast_activation(lux::generic_op{}, f, x);
    const auto expect_l = lux::fast_activation(lux::looped_op{}, f, x);
    auto xg = x, xl = x;
    const auto vg = lux::fast_activation_(lux::generic_op{}, f, xg);
    const auto vl = lux::fast_activation_(lux::looped_op{}, f, xl.view());
    CHECK(vg.data() == xg.data());
    CHECK(vl.data() == xl.data());
    CHECK(vg.shape() == x.shape());
    CHECK(max_rel_err(xg, expect_g) == 0);
    CHECK(max_rel_err(xl, expect_l) == 0);
    // in-place backward input: the saved output is the overwritten x
    if constexpr (lux::activation_traits<F>::uses_output) {
      const auto dy = random_tensor<T, 3>(x.shape(), 12);
      CHECK(max_rel_err(lux::activation_backward(f, dy, lux::none, xl).dx,
                        lux::activation_backward(f, dy, lux::none, expect_l).dx) == 0);
    }
  });
}

TEST_CASE("identity is short-circuited", "[activation]") {
  auto x = random_tensor<float, 2>({17, 3}, 5);
  const auto y = lux::fast_activation(lux::identity{}, x);
  CHECK(y.data() != x.data());
  CHECK(max_rel_err(y, x) == 0);
  const float* before = x.data();
  const auto v = lux::fast_activation_(lux::identity{}, x);
  CHECK(v.data() == before);
  // identity's backward needs neither x nor y
  const auto g = lux::activation_backward(lux::identity{}, x, lux::none, lux::none);
  CHECK(max_rel_err(g.dx, x) == 0);
  CHECK(g.dx.data() != x.data());
}

TEST_CASE("fast_activation keeps NaN-free, exact results at tiny and huge magnitudes",
          "[activation]") {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  lux::Tensor<float, 1> x(lux::shape_t<1>{19},
                          {-big, -1e30f, -1e10f, -88.f, -30.f, -1e-30f, -tiny, -0.0f, 0.0f, tiny,
                           1e-30f, 1e-7f, 30.f, 88.f, 1e10f, 1e30f, big, -1e-7f, 2.f});
  for_each_activation([&](auto f) {
    using F = decltype(f);
    INFO(lux::activation_traits<F>::name);
    const auto yg = lux::fast_activation(lux::generic_op{}, f, x);
    const auto yl = lux::fast_activation(lux::looped_op{}, f, x);
    const auto dy = lux::Tensor<float, 1>(x.shape(), 1.0f);
    const auto gg = backward_of(lux::generic_op{}, f, dy, x, yg);
    const auto gl = backward_of(lux::looped_op{}, f, dy, x, yl);
    for (index_t i = 0; i < x.numel(); ++i) {
      INFO("x = " << x[i]);
      CHECK(std::isfinite(yg[i]));
      CHECK(std::isfinite(yl[i]));
      CHECK(std::isfinite(gg.dx[i]));
      CHECK(std::isfinite(gl.dx[i]));
      const double ref = ref_value(f, static_cast<double>(x[i]));
      CHECK(std::abs(static_cast<double>(yl[i]) - ref) <= 4e-7 * std::max(1.0, std::abs(ref)));
      CHECK(std::abs(static_cast<double>(yg[i]) - ref) <= 4e-7 * std::max(1.0, std::abs(ref)));
      CHECK(std::abs(gl.dx[i] - gg.dx[i]) <= 1e-6f);
    }
  });
}

TEST_CASE("the generic mode serves long double", "[activation]") {
  lux::Tensor<long double, 1> x(lux::shape_t<1>{3}, {-1.5L, 0.25L, 2.0L});
  const auto y = lux::fast_activation(lux::gelu{}, x);  // operation_mode_t: generic_op
  STATIC_REQUIRE(std::is_same_v<lux::operation_mode_t<decltype(x)>, lux::generic_op>);
  for (index_t i = 0; i < 3; ++i)
    CHECK(static_cast<double>(y[i]) ==
          Approx(ref_value(lux::gelu{}, static_cast<double>(x[i]))).epsilon(1e-14));
  const auto g = lux::activation_backward(lux::gelu{}, y, x, lux::none);
  CHECK(std::isfinite(static_cast<double>(g.dx[0])));
}

TEST_CASE("activation_backward checks shapes", "[activation][errors]") {
  const auto x = random_tensor<float, 2>({4, 3}, 1);
  const auto dy = random_tensor<float, 2>({3, 4}, 2);
  CHECK_THROWS_AS(lux::activation_backward(lux::relu{}, dy, lux::none, x), lux::shape_error);
  CHECK_THROWS_WITH(lux::activation_backward(lux::gelu{}, dy, x, lux::none),
                    Catch::Contains("activation_backward") && Catch::Contains("(4, 3)") &&
                        Catch::Contains("(3, 4)"));
}

// =============================================================================================
// PyTorch fixtures: 16 activations, values and autograd gradients
// =============================================================================================

namespace {

/// Compares fast_activation / activation_backward for f with torch's act_<name>_y/_dx: double in
/// the generic mode, float in the looped mode.
/// `grad_tol64`: torch's double gradient is itself only that accurate for some activations.
template <class F>
void check_against_torch(const lux_test::fixture_file& fx, const std::string& name, const F& f,
                         double grad_tol64 = 1e-10) {
  INFO("torch activation " << name);
  const auto x64 = fx.tensor<double, 1>("act_x");
  const auto v64 = fx.tensor<double, 1>("act_v");
  const auto y_ref = fx.tensor<double, 1>("act_" + name + "_y");
  const auto dx_ref = fx.tensor<double, 1>("act_" + name + "_dx");
  {  // double, generic. 1e-10: torch's softplus returns x (and gradient 1) above x = 20, where
     // log1p(exp(-x)) + x differs by exp(-x) < 2.1e-9 · |x|^0 (here x = 25: 1.4e-11).
    const auto y = lux::fast_activation(lux::generic_op{}, f, x64);
    const auto g = backward_of(lux::generic_op{}, f, v64, x64, y);
    CHECK(max_rel_err(y, y_ref) <= 1e-10);
    CHECK(max_rel_err(g.dx, dx_ref) <= grad_tol64);
  }
  {  // float, looped: inputs rounded to float, errors of a few float ulps of the scale
    auto x32 = lux::Tensor<float, 1>::uninitialized(x64.shape());
    auto v32 = lux::Tensor<float, 1>::uninitialized(x64.shape());
    for (index_t i = 0; i < x64.numel(); ++i) {
      x32[i] = static_cast<float>(x64[i]);
      v32[i] = static_cast<float>(v64[i]);
    }
    const auto y = lux::fast_activation(lux::looped_op{}, f, x32);
    const auto g = backward_of(lux::looped_op{}, f, v32, x32, y);
    CHECK(max_rel_err(y, y_ref) <= 1e-6);
    CHECK(max_rel_err(g.dx, dx_ref) <= 1e-6);
  }
}

}  // namespace

TEST_CASE("activations agree with PyTorch values and autograd gradients", "[activation][torch]") {
  const lux_test::fixture_file fx("elementwise.txt");
  check_against_torch(fx, "relu", lux::relu{});
  check_against_torch(fx, "gelu_tanh", lux::gelu{});
  check_against_torch(fx, "gelu_erf", lux::gelu_erf{});
  check_against_torch(fx, "sigmoid", lux::sigmoid{});
  check_against_torch(fx, "tanh", lux::tanh_{});
  check_against_torch(fx, "softplus", lux::softplus{});
  check_against_torch(fx, "elu", lux::elu{});
  check_against_torch(fx, "selu", lux::selu{});
  check_against_torch(fx, "leaky_relu", lux::leakyrelu{0.01});
  check_against_torch(fx, "hardtanh", lux::hardtanh{});
  check_against_torch(fx, "silu", lux::swish{});
  check_against_torch(fx, "mish", lux::mish{});
  check_against_torch(fx, "logsigmoid", lux::logsigmoid{});
  check_against_torch(fx, "softsign", lux::softsign{});
  check_against_torch(fx, "relu6", lux::relu6{});
  // torch's hardsigmoid_backward multiplies by the float constant 1.0f / 6.0f even for double
  // tensors (relative error 3e-8 of the gradient); ours is the double 1/6.
  check_against_torch(fx, "hardsigmoid", lux::hardsigmoid{}, 1e-7);
}

// =============================================================================================
// bias_activation
// =============================================================================================

namespace {

/// Naive float64 bias_activation on a rank-N shape: bias along dimension N-2 (N == 1: dim 0).
template <class F, class T, std::size_t N>
lux::Tensor<double, N> ref_bias_activation(const F& f, const lux::Tensor<T, N>& x,
                                           const lux::Tensor<T, 1>* b) {
  lux::Tensor<double, N> y(x.shape());
  const std::size_t cdim = N >= 2 ? N - 2 : 0;
  const index_t stride = x.strides()[cdim];
  for (index_t i = 0; i < x.numel(); ++i) {
    const index_t c = (i / stride) % x.size(cdim);
    const double z = static_cast<double>(x[i]) + (b ? static_cast<double>((*b)[c]) : 0.0);
    y[i] = ref_value(f, z);
  }
  return y;
}

/// Naive dx and dbias: dx = dy f'(x + b), dbias[c] = Σ over all but dimension N-2.
template <class F, class T, std::size_t N>
std::pair<lux::Tensor<double, N>, lux::Tensor<double, 1>> ref_bias_backward(
    const F& f, const lux::Tensor<T, N>& dy, const lux::Tensor<T, N>& x,
    const lux::Tensor<T, 1>& b) {
  lux::Tensor<double, N> dx(x.shape());
  lux::Tensor<double, 1> db(b.shape());
  const std::size_t cdim = N >= 2 ? N - 2 : 0;
  const index_t stride = x.strides()[cdim];
  for (index_t i = 0; i < x.numel(); ++i) {
    const index_t c = (i / stride) % x.size(cdim);
    const double z = static_cast<double>(x[i]) + static_cast<double>(b[c]);
    dx[i] = static_cast<double>(dy[i]) * ref_deriv(f, z);
    db[c] += dx[i];
  }
  return {std::move(dx), std::move(db)};
}

template <class M, class F, class DY, class X, class B, class Y>
auto bias_backward_of(M mode, const F& f, const DY& dy, const X& x, const B& b, const Y& y) {
  if constexpr (lux::activation_traits<F>::uses_output)
    return lux::bias_activation_backward(mode, f, dy, lux::none, b, y);
  else
    return lux::bias_activation_backward(mode, f, dy, x, b, lux::none);
}

template <class T, std::size_t N>
void check_bias_activation_shape(const lux::shape_t<N>& shape, std::uint64_t seed) {
  const std::size_t cdim = N >= 2 ? N - 2 : 0;
  const auto x = random_tensor<T, N>(shape, seed, -3, 3);
  const auto b = random_tensor<T, 1>({shape[cdim]}, seed + 1);
  const auto dy = random_tensor<T, N>(shape, seed + 2);
  const double ftol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
  for_each_activation([&](auto f) {
    using F = decltype(f);
    INFO(lux::activation_traits<F>::name << " shape " << lux::format_shape(shape));
    const auto ref = ref_bias_activation(f, x, &b);
    const auto yg = lux::bias_activation(lux::generic_op{}, f, x, b);
    const auto yl = lux::bias_activation(lux::looped_op{}, f, x, b);
    CHECK(max_rel_err(yg, ref) <= tol<T>());
    CHECK(max_rel_err(yl, ref) <= tol<T>());
    CHECK(max_rel_err(yl, yg) <= (std::is_same_v<T, float> ? 1e-5 : 1e-13));
    CHECK(max_rel_err(lux::bias_activation(f, x, b), yl) == 0);

    // bias absent: activation only
    const auto ref0 = ref_bias_activation<F, T, N>(f, x, nullptr);
    CHECK(max_rel_err(lux::bias_activation(lux::generic_op{}, f, x, lux::none), ref0) <= tol<T>());
    CHECK(max_rel_err(lux::bias_activation(lux::looped_op{}, f, x, lux::none), ref0) <= tol<T>());

    // in place
    auto xg = x, xl = x;
    const auto vg = lux::bias_activation_(lux::generic_op{}, f, xg, b);
    const auto vl = lux::bias_activation_(lux::looped_op{}, f, xl, b);
    CHECK(vg.data() == xg.data());
    CHECK(vl.data() == xl.data());
    CHECK(max_rel_err(xg, yg) == 0);
    CHECK(max_rel_err(xl, yl) == 0);

    // backward: dx and dbias in one pass
    const auto [dx_ref, db_ref] = ref_bias_backward(f, dy, x, b);
    const auto gg = bias_backward_of(lux::generic_op{}, f, dy, x, b, yg);
    const auto gl = bias_backward_of(lux::looped_op{}, f, dy, x, b, yl);
    CHECK(gg.dbias.shape() == b.shape());
    CHECK(max_rel_err(gg.dx, dx_ref) <= ftol);
    CHECK(max_rel_err(gl.dx, dx_ref) <= ftol);
    // dbias sums numel / C terms: float rounding grows with the count
    const double sum_tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
    CHECK(max_rel_err(gg.dbias, db_ref) <= sum_tol);
    CHECK(max_rel_err(gl.dbias, db_ref) <= sum_tol);
    CHECK(max_rel_err(gl.dx, gg.dx) <= (std::is_same_v<T, float> ? 1e-5 : 1e-13));
    CHECK(max_rel_err(gl.dbias, gg.dbias) <= sum_tol);

    // bias absent: no bias gradient
    const auto g0 =
        bias_backward_of(lux::looped_op{}, f, dy, x, lux::none, lux::fast_activation(f, x));
    CHECK(g0.dbias.numel() == 0);
    CHECK(max_rel_err(g0.dx, backward_of(f, dy, x, lux::fast_activation(f, x)).dx) == 0);
  });
}

}  // namespace

TEMPLATE_TEST_CASE("bias_activation and its backward match float64 references in every mode",
                   "[bias_activation]", float, double) {
  using T = TestType;
  check_bias_activation_shape<T, 4>({5, 3, 7, 4}, 10);    // (W, H, C, N): scalar bias per run
  check_bias_activation_shape<T, 4>({33, 17, 8, 8}, 20);  // parallel path (35904 elements)
  check_bias_activation_shape<T, 2>({37, 9}, 30);         // Dense (out, batch): vector bias
  check_bias_activation_shape<T, 2>({4096, 9}, 40);       // parallel path, runs over channels
  check_bias_activation_shape<T, 3>({3, 6, 2}, 50);       // inner = 3 < SIMD width
  check_bias_activation_shape<T, 1>({19}, 60);            // a vector is a (19, 1) matrix
  check_bias_activation_shape<T, 2>({1, 1}, 70);
}

TEST_CASE("bias_activation_backward agrees with central finite differences (double)",
          "[bias_activation]") {
  auto run = [](auto f, auto shape) {
    constexpr std::size_t N = std::tuple_size_v<decltype(shape)>;
    using F = decltype(f);
    INFO(lux::activation_traits<F>::name << " rank " << N);
    const std::size_t cdim = N >= 2 ? N - 2 : 0;
    const auto x = random_tensor<double, N>(shape, 3, -2, 2);
    const auto b = random_tensor<double, 1>({shape[cdim]}, 4);
    const auto v = random_tensor<double, N>(shape, 5);
    const auto y = lux::bias_activation(f, x, b);
    const auto g = bias_backward_of(lux::looped_op{}, f, v, x, b, y);
    const auto num_dx = lux_test::numerical_gradient<N>(
        [&](const lux::Tensor<double, N>& xp) {
          return lux_test::dot(lux::bias_activation(lux::generic_op{}, f, xp, b), v);
        },
        x);
    const auto num_db = lux_test::numerical_gradient<1>(
        [&](const lux::Tensor<double, 1>& bp) {
          return lux_test::dot(lux::bias_activation(lux::generic_op{}, f, x, bp), v);
        },
        b);
    CHECK(max_rel_err(g.dx, num_dx) <= 1e-6);
    CHECK(max_rel_err(g.dbias, num_db) <= 1e-6);
  };
  for_each_activation([&](auto f) {
    run(f, lux::shape_t<4>{3, 2, 5, 2});
    run(f, lux::shape_t<2>{6, 4});
    run(f, lux::shape_t<1>{7});
  });
}

TEST_CASE("bias_activation agrees with PyTorch (x + bias.view(1, C, 1, 1))",
          "[bias_activation][torch]") {
  const lux_test::fixture_file fx("elementwise.txt");
  auto check = [&](auto f, const std::string& act, auto x, const std::string& prefix) {
    constexpr std::size_t N = decltype(x)::rank;
    INFO(prefix << " " << act);
    const auto b = fx.tensor<double, 1>(prefix + "_b");
    const auto v = fx.tensor<double, N>(prefix + "_v");
    const auto y = lux::bias_activation(f, x, b);
    const auto g = bias_backward_of(lux::looped_op{}, f, v, x, b, y);
    CHECK(max_rel_err(y, fx.tensor<double, N>(prefix + "_" + act + "_y")) <= 1e-13);
    CHECK(max_rel_err(g.dx, fx.tensor<double, N>(prefix + "_" + act + "_dx")) <= 1e-13);
    CHECK(max_rel_err(g.dbias, fx.tensor<double, 1>(prefix + "_" + act + "_db")) <= 1e-13);
    // float, generic mode
    auto x32 = lux::Tensor<float, N>::uninitialized(x.shape());
    auto v32 = lux::Tensor<float, N>::uninitialized(x.shape());
    auto b32 = lux::Tensor<float, 1>::uninitialized(b.shape());
    for (index_t i = 0; i < x.numel(); ++i) x32[i] = static_cast<float>(x[i]);
    for (index_t i = 0; i < x.numel(); ++i) v32[i] = static_cast<float>(v[i]);
    for (index_t i = 0; i < b.numel(); ++i) b32[i] = static_cast<float>(b[i]);
    const auto y32 = lux::bias_activation(lux::generic_op{}, f, x32, b32);
    const auto g32 = bias_backward_of(lux::generic_op{}, f, v32, x32, b32, y32);
    CHECK(max_rel_err(y32, fx.tensor<double, N>(prefix + "_" + act + "_y")) <= 1e-6);
    CHECK(max_rel_err(g32.dx, fx.tensor<double, N>(prefix + "_" + act + "_dx")) <= 1e-6);
    CHECK(max_rel_err(g32.dbias, fx.tensor<double, 1>(prefix + "_" + act + "_db")) <= 1e-6);
  };
  const auto x4 = fx.tensor<double, 4>("bias4d_x");
  REQUIRE(x4.shape() == lux::shape_t<4>{3, 2, 4, 2});  // Lux (W, H, C, N) = torch (N, C, H, W)
  check(lux::relu{}, "relu", x4, "bias4d");
  check(lux::gelu{}, "gelu_tanh", x4, "bias4d");
  const auto x2 = fx.tensor<double, 2>("bias2d_x");
  REQUIRE(x2.shape() == lux::shape_t<2>{5, 3});  // Lux (out, batch) = torch (batch, out)
  check(lux::relu{}, "relu", x2, "bias2d");
  check(lux::gelu{}, "gelu_tanh", x2, "bias2d");
}

TEST_CASE("bias_activation_ rejects a bias that shares memory with x",
          "[bias_activation][errors]") {
  auto x = random_tensor<float, 2>({4, 3}, 11);
  const auto before = x;
  // The bias is x's first column (or its last elements): writing x would change it mid-pass.
  for (const lux::index_t start : {lux::index_t{0}, lux::index_t{8}}) {
    const auto b = lux::view(x.data() + start, lux::make_shape(4));
    CHECK_THROWS_AS(lux::bias_activation_(lux::relu{}, x, b), lux::argument_error);
    CHECK_THROWS_WITH(lux::bias_activation_(lux::generic_op{}, lux::relu{}, x, b),
                      Catch::Contains("bias_activation_: bias overlaps x (4, 3)"));
    CHECK_THROWS_AS(lux::bias_activation_(lux::looped_op{}, lux::gelu{}, x.view(), b),
                    lux::argument_error);
  }
  CHECK(max_rel_err(x, before) == 0);  // untouched
  // A separate bias (even one adjacent in memory) is fine.
  lux::Tensor<float, 1> buf(lux::shape_t<1>{16});
  auto xv = lux::view(buf.data(), lux::make_shape(4, 3));
  const auto b = lux::view(buf.data() + 12, lux::make_shape(4));
  CHECK_NOTHROW(lux::bias_activation_(lux::relu{}, xv, b));
}

TEST_CASE("bias_activation rejects a bias of the wrong length", "[bias_activation][errors]") {
  const auto x = random_tensor<float, 3>({3, 4, 2}, 1);
  const auto b5 = random_tensor<float, 1>({5}, 2);
  CHECK_THROWS_AS(lux::bias_activation(lux::relu{}, x, b5), lux::shape_error);
  CHECK_THROWS_WITH(lux::bias_activation(lux::relu{}, x, b5),
                    Catch::Contains("bias_activation") && Catch::Contains("(5)") &&
                        Catch::Contains("(4)") && Catch::Contains("(3, 4, 2)"));
  auto xm = x;
  CHECK_THROWS_WITH(lux::bias_activation_(lux::relu{}, xm, b5),
                    Catch::Contains("bias_activation_") && Catch::Contains("(3, 4, 2)"));
  CHECK(max_rel_err(xm, x) == 0);  // untouched: the check runs before any write
  const auto y = lux::bias_activation(lux::relu{}, x, random_tensor<float, 1>({4}, 3));
  CHECK_THROWS_WITH(lux::bias_activation_backward(lux::relu{}, y, lux::none, b5, y),
                    Catch::Contains("bias_activation_backward") && Catch::Contains("(5)"));
  const auto dy_bad = random_tensor<float, 3>({3, 4, 3}, 4);
  CHECK_THROWS_WITH(lux::bias_activation_backward(lux::gelu{}, dy_bad, x,
                                                  random_tensor<float, 1>({4}, 3), lux::none),
                    Catch::Contains("bias_activation_backward") && Catch::Contains("(3, 4, 2)") &&
                        Catch::Contains("(3, 4, 3)"));
  // a vector x needs length(bias) == length(x)
  const auto v = random_tensor<float, 1>({6}, 5);
  CHECK_THROWS_WITH(lux::bias_activation(lux::tanh_{}, v, b5), Catch::Contains("bias_activation") &&
                                                                   Catch::Contains("(6)") &&
                                                                   Catch::Contains("(5)"));
}
