// Test support for layers: pullbacks checked against central finite differences.
//
//   check_parameter_gradients(loss_of_ps, ps, dps, opts)  every ps leaf, located by its dotted
//       path, perturbed coordinate by coordinate (or at an evenly spaced sample); returns the
//       checked paths so a test can assert which leaves were covered.
//   check_input_gradient(loss_of_x, x, dx, tol)           dx for a tensor or a std::tuple of them.
//   check_pullback(layer, x, ps, st, v, opts)             the whole protocol: pullback's y and st2
//       equal apply's, dps has ps's type, dx and every parameter leaf vs finite differences.
//   vjp_loss(layer, x, st, v)                             ps ↦ <apply(layer, x, ps, st).y, v>.
//
// Finite differences are central with h = step · max(1, |p_i|), as numerical_gradient.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <lux/core/named_tuple.hpp>
#include <lux/layers/layer.hpp>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/check.hpp"

namespace lux_test {

/// Calls f(a_k, b_k) for each pair of tensors of two equally structured values: tensors or
/// (nested) std::tuples of tensors.
template <class A, class B, class F>
void for_each_tensor_pair(const A& a, const B& b, F&& f) {
  if constexpr (lux::is_array_v<A>) {
    f(a, b);
  } else {
    static_assert(std::tuple_size_v<A> == std::tuple_size_v<B>, "tuples of different arity");
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (for_each_tensor_pair(std::get<I>(a), std::get<I>(b), f), ...);
    }
    (std::make_index_sequence<std::tuple_size_v<A>>{});
  }
}

/// Σ a_i b_i over every tensor of a and b (tensors or nested tuples of tensors).
template <class A, class B>
double tree_dot(const A& a, const B& b) {
  double s = 0;
  for_each_tensor_pair(a, b, [&](const auto& x, const auto& y) { s += dot(x, y); });
  return s;
}

/// The scalar loss ps ↦ <apply(layer, x, ps, st).first, v> whose gradient back(v) returns
/// (holds copies of its arguments).
template <class L, class X, class ST, class V>
auto vjp_loss(const L& layer, const X& x, const ST& st, const V& v) {
  return
      [layer, x, st, v](const auto& ps) { return tree_dot(lux::apply(layer, x, ps, st).first, v); };
}

struct fd_options {
  static constexpr lux::index_t all = std::numeric_limits<lux::index_t>::max();
  double tol = 1e-6;     // largest accepted error
  double floor = 1e-30;  // error = |g - fd| / max(floor, scale): the scale never falls below it
  lux::index_t max_samples = all;  // coordinates per leaf; fewer: evenly spaced (stride n / max)
  bool per_coordinate = false;     // scale: |fd_i| of each coordinate, not max_i |fd_i| of the leaf
  double step = 1e-6;              // h = step · max(1, |p_i|)
};

/// Checks dps (back's parameter gradients) against central finite differences of loss_of_ps at
/// every coordinate (or max_samples evenly spaced ones) of every leaf of ps, located by its path.
/// dps must have exactly ps's type. Returns the checked paths in for_each_leaf order.
template <class Loss, class PS, class DPS>
std::vector<std::string> check_parameter_gradients(const Loss& loss_of_ps, const PS& ps,
                                                   const DPS& dps, const fd_options& opt = {}) {
  static_assert(std::is_same_v<PS, DPS>, "dps must have exactly the structure and types of ps");
  std::vector<std::string> checked;
  lux::zip_leaves(ps, dps, [&](std::string_view path, const auto& p, const auto& g) {
    using P = std::remove_cvref_t<decltype(p)>;
    auto ps2 = ps;
    P* leaf = nullptr;
    lux::for_each_leaf(ps2, [&](std::string_view q, auto& l) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(l)>, P>)
        if (q == path) leaf = &l;
    });
    REQUIRE(leaf != nullptr);
    const lux::index_t n = p.numel();
    const lux::index_t stride = std::max<lux::index_t>(1, n / opt.max_samples);
    double diff = 0, scale = opt.floor, err = 0;
    for (lux::index_t i = (n > opt.max_samples ? 7 % stride : 0); i < n; i += stride) {
      const double pi = p.data()[i];
      const double h = opt.step * std::max(1.0, std::abs(pi));
      leaf->data()[i] = pi + h;
      const double fp = loss_of_ps(std::as_const(ps2));
      leaf->data()[i] = pi - h;
      const double fm = loss_of_ps(std::as_const(ps2));
      leaf->data()[i] = p.data()[i];
      const double fd = (fp - fm) / (2 * h), gi = static_cast<double>(g.data()[i]);
      const double d = std::isnan(fd) != std::isnan(gi) ? INFINITY : std::abs(gi - fd);
      if (opt.per_coordinate)
        err = std::max(err, d / std::max(opt.floor, std::abs(fd)));
      else if (!std::isnan(d))
        diff = std::max(diff, d), scale = std::max(scale, std::abs(fd));
    }
    if (!opt.per_coordinate) err = diff / scale;
    INFO(path);
    CHECK(err < opt.tol);
    checked.emplace_back(path);
  });
  return checked;
}

/// Checks dx against central finite differences of loss_of_x; x (and dx) is a tensor or a
/// std::tuple of tensors (each element perturbed in turn).
template <class Loss, class X, class DX>
void check_input_gradient(const Loss& loss_of_x, const X& x, const DX& dx, double tol = 1e-6) {
  if constexpr (lux::is_array_v<X>) {
    auto num = numerical_gradient<X::rank>([&](const X& xx) { return loss_of_x(xx); }, x);
    CHECK(max_rel_err(dx, num) < tol);
  } else {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            using E = std::tuple_element_t<I, X>;
            auto num = numerical_gradient<E::rank>(
                [&](const E& e) {
                  X x2 = x;
                  std::get<I>(x2) = e;
                  return loss_of_x(x2);
                },
                std::get<I>(x));
            INFO("input element " << I);
            CHECK(max_rel_err(std::get<I>(dx), num) < tol);
          }(),
          ...);
    }
    (std::make_index_sequence<std::tuple_size_v<X>>{});
  }
}

/// The pullback protocol against apply and finite differences: y equals apply's exactly and has
/// v's shape, st2 has st's type, dps has ps's type, dx within opt.tol (relative to max |dx|, no
/// floor) and every parameter leaf within opt (check_parameter_gradients). Returns the checked
/// parameter paths.
template <class L, class X, class PS, class ST, class V>
std::vector<std::string> check_pullback(const L& layer, const X& x, const PS& ps, const ST& st,
                                        const V& v, const fd_options& opt = {}) {
  auto [y, st2, back] = lux::pullback(layer, x, ps, st);
  static_assert(std::is_same_v<decltype(st2), ST>, "st2 must have st's type");
  const auto yref = lux::apply(layer, x, ps, st).first;
  for_each_tensor_pair(y, yref, [](const auto& a, const auto& b) {
    CHECK(a.shape() == b.shape());
    CHECK(max_rel_err(a, b) == 0.0);
  });
  for_each_tensor_pair(y, v, [](const auto& a, const auto& b) { CHECK(a.shape() == b.shape()); });
  auto [dx, dps] = back(v);
  static_assert(std::is_same_v<decltype(dps), PS>, "dps must have ps's structure");
  check_input_gradient(
      [&](const X& xx) { return tree_dot(lux::apply(layer, xx, ps, st).first, v); }, x, dx,
      opt.tol);
  return check_parameter_gradients(vjp_loss(layer, x, st, v), ps, dps, opt);
}

/// An elementwise function of a tensor with its pullback, for WrappedFunction/PairwiseFusion
/// tests: D derives from elementwise_fn<D> and provides f(v), df(v) (f' at v) and a static name.
template <class D>
struct elementwise_fn {
  template <class X>
  auto operator()(const X& x) const {
    auto y = lux::copy(lux::as_view(x));
    for (auto& v : y) v = self().f(v);
    return y;
  }
  template <class X>
  auto pullback(const X& x) const {
    return std::pair{(*this)(x), [xs = lux::copy(lux::as_view(x)), d = self()](const auto& dy) {
                       auto g = lux::copy(lux::as_view(dy));
                       for (lux::index_t k = 0; k < g.numel(); ++k)
                         g.data()[k] *= d.df(xs.data()[k]);
                       return g;
                     }};
  }

 private:
  const D& self() const { return static_cast<const D&>(*this); }
};

}  // namespace lux_test
