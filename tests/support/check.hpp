// Test support: random inputs, error measures and central finite differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <lux/core/random.hpp>
#include <lux/core/tensor.hpp>

namespace lux_test {

/// A tensor of U(lo, hi) values drawn from a Philox stream with the given seed.
template <class T, std::size_t N>
lux::Tensor<T, N> random_tensor(const lux::shape_t<N>& shape, std::uint64_t seed, double lo = -1,
                                double hi = 1) {
  lux::Tensor<T, N> t(shape);
  const lux::rng r(seed);
  for (lux::index_t i = 0; i < t.numel(); ++i)
    t.data()[i] = static_cast<T>(lo + (hi - lo) * r.uniform_at<double>(static_cast<std::uint64_t>(i)));
  return t;
}

/// Converts any tensor to double precision (for comparing against float64 references).
template <class T, std::size_t N>
lux::Tensor<double, N> to_double(const lux::Tensor<T, N>& t) {
  auto out = lux::Tensor<double, N>::uninitialized(t.shape());
  for (lux::index_t i = 0; i < t.numel(); ++i) out.data()[i] = static_cast<double>(t.data()[i]);
  return out;
}

/// max_i |a_i - b_i| / max(max_i |b_i|, floor): the error relative to the reference's scale.
template <class A, class B>
double max_rel_err(const A& a, const B& ref, double floor = 1e-30) {
  if (a.numel() != ref.numel()) return INFINITY;
  double diff = 0, scale = floor;
  for (lux::index_t i = 0; i < a.numel(); ++i) {
    const double x = static_cast<double>(a.data()[i]), y = static_cast<double>(ref.data()[i]);
    if (std::isnan(x) != std::isnan(y)) return INFINITY;
    if (!std::isnan(x)) diff = std::max(diff, std::abs(x - y));
    scale = std::max(scale, std::abs(y));
  }
  return diff / scale;
}

/// Central finite-difference gradient of a scalar function of x (double precision):
/// g_i = (f(x + h e_i) - f(x - h e_i)) / 2h with h = step * max(1, |x_i|).
template <std::size_t N>
lux::Tensor<double, N> numerical_gradient(const std::function<double(const lux::Tensor<double, N>&)>& f,
                                          lux::Tensor<double, N> x, double step = 1e-6) {
  lux::Tensor<double, N> g(x.shape());
  for (lux::index_t i = 0; i < x.numel(); ++i) {
    const double xi = x.data()[i];
    const double h = step * std::max(1.0, std::abs(xi));
    x.data()[i] = xi + h;
    const double fp = f(x);
    x.data()[i] = xi - h;
    const double fm = f(x);
    x.data()[i] = xi;
    g.data()[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/// <a, b> in double: the scalar "loss" sum(y .* v) whose gradient is the VJP with v.
template <class A, class B>
double dot(const A& a, const B& b) {
  double s = 0;
  for (lux::index_t i = 0; i < a.numel(); ++i)
    s += static_cast<double>(a.data()[i]) * static_cast<double>(b.data()[i]);
  return s;
}

}  // namespace lux_test
