// Weight initializers: fans, distribution moments and bounds, orthogonality, determinism.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/initializers.hpp>
#include <numbers>

namespace {
struct moments {
  double mean = 0, var = 0, min = INFINITY, max = -INFINITY;
};
template <class T, std::size_t N>
moments moments_of(const lux::Tensor<T, N>& t) {
  moments m;
  const double n = static_cast<double>(t.numel());
  for (auto v : t) {
    m.mean += static_cast<double>(v) / n;
    m.min = std::min(m.min, static_cast<double>(v));
    m.max = std::max(m.max, static_cast<double>(v));
  }
  for (auto v : t)
    m.var += (static_cast<double>(v) - m.mean) * (static_cast<double>(v) - m.mean) / n;
  return m;
}
// |sample mean - mu| within 5 standard errors; relative variance error within 5 s.e. of the
// variance estimate (kurtosis-aware bound kappa: 1.8 uniform, 3 normal).
void check_moments(const moments& m, double n, double mu, double var, double kappa) {
  CHECK(std::abs(m.mean - mu) <= 5 * std::sqrt(var / n));
  CHECK(std::abs(m.var - var) <= 5 * var * std::sqrt((kappa - 1) / n));
}
}  // namespace

TEST_CASE("initializers: fans follow WeightInitializers", "[initializers]") {
  CHECK(lux::fan_in_out(lux::make_shape(7)) == std::pair{1.0, 7.0});
  CHECK(lux::fan_in_out(lux::make_shape(64, 784)) == std::pair{784.0, 64.0});
  CHECK(lux::fan_in_out(lux::make_shape(5, 5, 6, 16)) == std::pair{150.0, 400.0});
}

TEST_CASE("initializers: uniform families have the documented bounds and moments",
          "[initializers]") {
  lux::rng r(11);
  const auto shape = lux::make_shape(300, 500);  // fan_in 500, fan_out 300
  const double n = 150000;
  {
    auto w = lux::initialize<double>(lux::glorot_uniform{}, r, shape);
    const double b = std::sqrt(6.0 / 800.0);
    auto m = moments_of(w);
    CHECK(m.min >= -b);
    CHECK(m.max <= b);
    CHECK(m.max > 0.99 * b);
    check_moments(m, n, 0, b * b / 3, 1.8);
  }
  {
    auto w = lux::initialize<float>(lux::kaiming_uniform{.gain = 2.0}, r, shape);
    const double b = 2.0 * std::sqrt(3.0 / 500.0);
    auto m = moments_of(w);
    CHECK(m.min >= -b * (1 + 1e-6));
    CHECK(m.max <= b * (1 + 1e-6));
    check_moments(m, n, 0, b * b / 3, 1.8);
  }
  {
    auto w = lux::initialize<double>(lux::rand{}, r, shape);
    auto m = moments_of(w);
    CHECK(m.min >= 0.0);
    CHECK(m.max < 1.0);
    check_moments(m, n, 0.5, 1.0 / 12, 1.8);
  }
  {
    auto w = lux::initialize<double>(lux::uniform_range{-3, 5}, r, shape);
    check_moments(moments_of(w), n, 1.0, 64.0 / 12, 1.8);
    CHECK_THROWS_AS(lux::initialize<double>(lux::uniform_range{5, -3}, r, shape),
                    lux::argument_error);
  }
}

TEST_CASE("initializers: normal families have the documented moments", "[initializers]") {
  lux::rng r(12);
  const auto shape = lux::make_shape(3, 3, 40, 100);  // fan_in 360, fan_out 900
  const double n = 36000;
  check_moments(moments_of(lux::initialize<double>(lux::glorot_normal{.gain = 0.5}, r, shape)), n,
                0, 0.25 * 2.0 / 1260.0, 3);
  check_moments(moments_of(lux::initialize<double>(lux::kaiming_normal{}, r, shape)), n, 0,
                2.0 / 360.0, 3);
  check_moments(moments_of(lux::initialize<double>(lux::randn{}, r, shape)), n, 0, 1, 3);
}

TEST_CASE("initializers: truncated normal stays in bounds with the truncated variance",
          "[initializers]") {
  lux::rng r(13);
  auto w = lux::initialize<double>(lux::truncated_normal{}, r, lux::make_shape(200000));
  auto m = moments_of(w);
  CHECK(m.min >= -2.0);
  CHECK(m.max <= 2.0);
  // Variance of N(0,1) truncated to [-2, 2]: 1 - 2·2·φ(2) / (Φ(2) - Φ(-2)).
  const double phi2 = std::exp(-2.0) / std::sqrt(2 * std::numbers::pi);
  const double Z = std::erf(2.0 / std::numbers::sqrt2);
  check_moments(m, 200000, 0, 1 - 4 * phi2 / Z, 2.6);
  auto shifted = lux::initialize<double>(
      lux::truncated_normal{.mean = 1, .std = 0.1, .lo = 0.9, .hi = 2}, r, lux::make_shape(1000));
  CHECK(moments_of(shifted).min >= 0.9);
  CHECK(std::abs(lux::detail::erfinv(std::erf(0.3)) - 0.3) < 1e-13);
  CHECK(std::abs(lux::detail::erfinv(std::erf(-2.9)) + 2.9) < 1e-10);
  CHECK_THROWS_AS(lux::initialize<double>(lux::truncated_normal{.std = 0}, r, lux::make_shape(2)),
                  lux::argument_error);
}

TEST_CASE("initializers: orthogonal gives orthonormal columns or rows", "[initializers]") {
  lux::rng r(14);
  for (auto shape : {lux::make_shape(8, 5), lux::make_shape(5, 8)}) {
    auto w = lux::initialize<double>(lux::orthogonal{.gain = 2}, r, shape);
    Eigen::MatrixXd m = lux::as_eigen(w);
    Eigen::MatrixXd g = shape[0] >= shape[1] ? Eigen::MatrixXd(m.transpose() * m)
                                             : Eigen::MatrixXd(m * m.transpose());
    CHECK((g - 4 * Eigen::MatrixXd::Identity(g.rows(), g.cols())).cwiseAbs().maxCoeff() < 1e-12);
  }
  // Higher rank: columns of the (prod(leading), last) matrix are orthonormal.
  auto w4 = lux::initialize<double>(lux::orthogonal{}, r, lux::make_shape(2, 3, 4, 6));
  Eigen::MatrixXd m = lux::as_eigen(w4.reshape(24, 6));
  CHECK((m.transpose() * m - Eigen::MatrixXd::Identity(6, 6)).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("initializers: deterministic from the seed, and the rng advances", "[initializers]") {
  lux::rng a(5), b(5);
  auto x = lux::initialize<float>(lux::glorot_uniform{}, a, lux::make_shape(4, 4));
  auto y = lux::initialize<float>(lux::glorot_uniform{}, b, lux::make_shape(4, 4));
  for (lux::index_t i = 0; i < 16; ++i) CHECK(x[i] == y[i]);
  auto z = lux::initialize<float>(lux::glorot_uniform{}, a, lux::make_shape(4, 4));
  int same = 0;
  for (lux::index_t i = 0; i < 16; ++i) same += x[i] == z[i];
  CHECK(same == 0);
  CHECK(a == b.advanced(1));
  auto zero = lux::initialize<double>(lux::zeros{}, a, lux::make_shape(3));
  auto one = lux::initialize<double>(lux::ones{}, a, lux::make_shape(3));
  CHECK(zero[2] == 0.0);
  CHECK(one[1] == 1.0);
}

TEST_CASE("initializers: NaN or infinite parameters throw argument_error",
          "[initializers][errors]") {
  lux::rng r(6);
  const auto s = lux::make_shape(4, 3);
  const double nan = std::nan(""), inf = INFINITY;
  auto init = [&](const auto& i) { return lux::initialize<float>(i, r, s); };
  CHECK_THROWS_WITH(init(lux::glorot_uniform{nan}), "glorot_uniform: gain must be finite, got nan");
  CHECK_THROWS_AS(init(lux::glorot_normal{inf}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::kaiming_uniform{nan}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::kaiming_normal{-inf}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::orthogonal{nan}), lux::argument_error);
  CHECK_THROWS_WITH(init(lux::uniform_range{-inf, 1}),
                    "uniform_range: lo must be finite, got -inf");
  CHECK_THROWS_AS(init(lux::uniform_range{0, inf}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::uniform_range{nan, 1}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::truncated_normal{nan, 1, -2, 2}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::truncated_normal{0, inf, -2, 2}), lux::argument_error);
  CHECK_THROWS_AS(init(lux::truncated_normal{0, 1, -inf, 2}), lux::argument_error);
  // The widest finite range is fine: hi − lo would overflow, the samples stay finite.
  const auto w = init(lux::uniform_range{-1e308, 1e308});
  for (const float v : w) CHECK(!std::isnan(v));
  const auto d = lux::initialize<double>(lux::uniform_range{-1e308, 1e308}, r, s);
  for (const double v : d) CHECK(std::isfinite(v));
}
