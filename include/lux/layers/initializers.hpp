// luxcpp — weight initializers (Lux's WeightInitializers.jl).
//
// Each initializer is a small value type (so a layer can hold it as a hyperparameter) with
//   template <class T, std::size_t N> Tensor<T, N> operator()(rng& r, shape_t<N> shape) const
// and helpers lux::glorot_uniform{}.make<float>(r, lux::make_shape(64, 784)). Every call
// draws one fresh block of the Philox stream (all elements from one counter value) and then
// advances `r`, so initialization is reproducible from the seed and independent of
// threading — like Lux's `setup`, which mutates its rng.
//
// Fans (WeightInitializers' _nfan): a vector (n) has fan_in 1, fan_out n; a matrix
// (out, in) has fan_in = in, fan_out = out; a conv weight (k..., cin, cout) has
// fan_in = prod(k)·cin, fan_out = prod(k)·cout.
//
//   glorot_uniform(gain = 1)   U(-b, b), b = gain·sqrt(6 / (fan_in + fan_out))
//   glorot_normal(gain = 1)    N(0, s²), s = gain·sqrt(2 / (fan_in + fan_out))
//   kaiming_uniform(gain = √2) U(-b, b), b = gain·sqrt(3 / fan_in)
//   kaiming_normal(gain = √2)  N(0, s²), s = gain / sqrt(fan_in)
//   truncated_normal(mean = 0, std = 1, lo = -2, hi = 2)  by inverse-CDF sampling
//   orthogonal(gain = 1)       a (semi-)orthogonal matrix over (prod(dims[0..N-2]), dims[N-1])
//   zeros, ones, rand (U[0,1)), randn (N(0,1)), and uniform_range(lo, hi)
#pragma once

#include <cmath>
#include <numbers>

#include "lux/core/eigen.hpp"  // first: Eigen/Core with GCC 12's false warnings silenced
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/QR>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include "lux/core/error.hpp"
#include "lux/core/random.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// (fan_in, fan_out) of a weight shape, as WeightInitializers computes them.
template <std::size_t N>
constexpr std::pair<double, double> fan_in_out(const shape_t<N>& shape) {
  static_assert(N >= 1, "lux::fan_in_out: rank must be at least 1");
  if constexpr (N == 1) {
    return {1.0, static_cast<double>(shape[0])};
  } else if constexpr (N == 2) {
    return {static_cast<double>(shape[1]), static_cast<double>(shape[0])};
  } else {
    double receptive = 1;
    for (std::size_t d = 0; d + 2 < N; ++d) receptive *= static_cast<double>(shape[d]);
    return {receptive * static_cast<double>(shape[N - 2]),
            receptive * static_cast<double>(shape[N - 1])};
  }
}

namespace detail {
/// argument_error unless the initializer parameter `v` is finite (a NaN or infinite gain, bound or
/// moment would fill the weights with NaN or ±∞).
inline void check_finite(const char* init, const char* name, double v) {
  require<argument_error>(std::isfinite(v), init, ": ", name, " must be finite, got ", v);
}

template <class T, std::size_t N, class F>
Tensor<T, N> init_from_uniform(rng& r, const shape_t<N>& shape, F&& transform) {
  auto t = Tensor<T, N>::uninitialized(shape);
  for (index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<T>(transform(r.uniform_at<double>(static_cast<std::uint64_t>(i))));
  r.advance();
  return t;
}
template <class T, std::size_t N, class F>
Tensor<T, N> init_from_normal(rng& r, const shape_t<N>& shape, F&& transform) {
  auto t = Tensor<T, N>::uninitialized(shape);
  for (index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<T>(transform(r.normal_at<double>(static_cast<std::uint64_t>(i))));
  r.advance();
  return t;
}

/// Inverse error function: Giles' single-precision rational start, then two Newton steps
/// on erf(x) - y in double (relative error < 1e-14 on (-1, 1) away from the end points).
inline double erfinv(double y) {
  if (y <= -1) return -INFINITY;
  if (y >= 1) return INFINITY;
  double w = -std::log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
    x = p * y;
  }
  const double two_over_sqrt_pi = 2.0 / std::sqrt(std::numbers::pi);
  for (int k = 0; k < 2; ++k) x -= (std::erf(x) - y) / (two_over_sqrt_pi * std::exp(-x * x));
  return x;
}
}  // namespace detail

struct zeros {
  static constexpr const char* name = "zeros";
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng&, const shape_t<N>& shape) const {
    return Tensor<T, N>(shape);
  }
};
struct ones {
  static constexpr const char* name = "ones";
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng&, const shape_t<N>& shape) const {
    return Tensor<T, N>(shape, T(1));
  }
};
/// U[0, 1) (Lux's rand32).
struct rand {
  static constexpr const char* name = "rand";
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    return detail::init_from_uniform<T>(r, shape, [](double u) { return u; });
  }
};
/// N(0, 1) (Lux's randn32).
struct randn {
  static constexpr const char* name = "randn";
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    return detail::init_from_normal<T>(r, shape, [](double z) { return z; });
  }
};
/// U[lo, hi).
struct uniform_range {
  static constexpr const char* name = "uniform_range";
  double lo = -1, hi = 1;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "lo", lo);
    detail::check_finite(name, "hi", hi);
    require<argument_error>(lo <= hi, "uniform_range: need lo <= hi, got lo = ", lo, ", hi = ", hi);
    const double span = hi - lo;  // +∞ for bounds near ±DBL_MAX: then lo·(1 − u) + hi·u
    if (std::isfinite(span))
      return detail::init_from_uniform<T>(r, shape, [&](double u) { return lo + span * u; });
    return detail::init_from_uniform<T>(r, shape, [&](double u) { return lo * (1 - u) + hi * u; });
  }
};

struct glorot_uniform {
  static constexpr const char* name = "glorot_uniform";
  double gain = 1;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "gain", gain);
    const auto [fi, fo] = fan_in_out(shape);
    const double scale = gain * std::sqrt(24.0 / (fi + fo));
    return detail::init_from_uniform<T>(r, shape, [&](double u) { return (u - 0.5) * scale; });
  }
};
struct glorot_normal {
  static constexpr const char* name = "glorot_normal";
  double gain = 1;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "gain", gain);
    const auto [fi, fo] = fan_in_out(shape);
    const double sigma = gain * std::sqrt(2.0 / (fi + fo));
    return detail::init_from_normal<T>(r, shape, [&](double z) { return z * sigma; });
  }
};
struct kaiming_uniform {
  static constexpr const char* name = "kaiming_uniform";
  double gain = std::numbers::sqrt2;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "gain", gain);
    const double bound = gain * std::sqrt(3.0 / fan_in_out(shape).first);
    return detail::init_from_uniform<T>(r, shape, [&](double u) { return (2 * u - 1) * bound; });
  }
};
struct kaiming_normal {
  static constexpr const char* name = "kaiming_normal";
  double gain = std::numbers::sqrt2;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "gain", gain);
    const double sigma = gain / std::sqrt(fan_in_out(shape).first);
    return detail::init_from_normal<T>(r, shape, [&](double z) { return z * sigma; });
  }
};
/// N(mean, std²) truncated to [lo, hi], sampled by the inverse CDF.
struct truncated_normal {
  static constexpr const char* name = "truncated_normal";
  double mean = 0, std = 1, lo = -2, hi = 2;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    detail::check_finite(name, "mean", mean);
    detail::check_finite(name, "std", std);
    detail::check_finite(name, "lo", lo);
    detail::check_finite(name, "hi", hi);
    require<argument_error>(std > 0 && lo < hi, "truncated_normal: need std > 0 and lo < hi, got ",
                            "std = ", std, ", lo = ", lo, ", hi = ", hi);
    const auto cdf = [](double x) { return 0.5 * (1 + std::erf(x / std::numbers::sqrt2)); };
    const double l = cdf((lo - mean) / std), u = cdf((hi - mean) / std);
    return detail::init_from_uniform<T>(r, shape, [&](double v) {
      const double p = 2 * (l + (u - l) * v) - 1;
      const double x = mean + std * std::numbers::sqrt2 * detail::erfinv(p);
      return std::clamp(x, lo, hi);
    });
  }
};
/// A (semi-)orthogonal matrix (Saxe et al. 2014) scaled by `gain`, reshaped to `shape`:
/// rows = prod(shape[0..N-2]), cols = shape[N-1]; Q of the QR decomposition of a Gaussian
/// matrix with the signs of R's diagonal folded in, so the distribution is uniform (Haar).
struct orthogonal {
  static constexpr const char* name = "orthogonal";
  double gain = 1;
  template <class T = float, std::size_t N>
  Tensor<T, N> operator()(rng& r, const shape_t<N>& shape) const {
    static_assert(N >= 2, "lux::orthogonal: the shape needs at least 2 dimensions");
    detail::check_finite(name, "gain", gain);
    const index_t cols = shape[N - 1];
    const index_t rows = shape_numel(shape, "orthogonal") / std::max<index_t>(cols, 1);
    const index_t m = std::max(rows, cols), n = std::min(rows, cols);
    auto g = detail::init_from_normal<double>(r, shape_t<2>{m, n}, [](double z) { return z; });
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(as_eigen(g));
    Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(m, n);
    const Eigen::MatrixXd R = qr.matrixQR().topRows(n).template triangularView<Eigen::Upper>();
    for (index_t j = 0; j < n; ++j)
      if (R(j, j) < 0) q.col(j) *= -1;
    auto out = Tensor<T, N>::uninitialized(shape);
    auto mat = out.reshape(rows, cols);
    for (index_t j = 0; j < cols; ++j)
      for (index_t i = 0; i < rows; ++i)
        mat(i, j) = static_cast<T>(gain * (rows >= cols ? q(i, j) : q(j, i)));
    return out;
  }
};

/// Calls an initializer for element type T: lux::initialize<float>(init, r, shape).
template <class T, class Init, std::size_t N>
Tensor<T, N> initialize(const Init& init, rng& r, const shape_t<N>& shape) {
  return init.template operator()<T>(r, shape);
}

LUX_NAMESPACE_END
