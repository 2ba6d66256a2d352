// luxcpp — what every loss shares: aggregations (lux::agg), the result types, the objective
// form loss(model, ps, st, (x, y)), and the engine that turns a loss's unaggregated values and
// their gradient into Lux's `agg` semantics. The losses themselves: lux/training/losses.hpp.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Aggregations
// =================================================================================================
namespace agg {
/// Lux's default agg = mean: the sum of the unaggregated losses over their count.
struct mean_type {
  constexpr mean_type() noexcept = default;  // not an aggregate (note below)
  static constexpr const char* name = "mean";
};
/// agg = sum.
struct sum_type {
  constexpr sum_type() noexcept = default;  // not an aggregate (note below)
  static constexpr const char* name = "sum";
};
/// agg = nothing: the loss is the unaggregated loss tensor; its gradient needs an upstream
/// tensor of the same shape (value_and_gradient(yhat, y, dl)).
struct none_type {
  constexpr none_type() noexcept = default;  // not an aggregate (note below)
  static constexpr const char* name = "none";
};
// The tags declare their default constructor so that they are not aggregates: a designated
// initializer list meant for a loss's options ({.logits = true}) then cannot initialize them,
// which keeps `lux::CrossEntropyLoss({.logits = true})` unambiguous (clang 14 otherwise considers
// the agg constructor in template code).
inline constexpr mean_type mean{};
inline constexpr sum_type sum{};
inline constexpr none_type none{};

/// A user aggregation from two callables, both called with the unaggregated losses
/// `l` (a lux::TensorView<const T, N>):
///   f(l)            → the aggregated loss (convertible to T)
///   backward(l, d)  → the gradient of d·f with respect to l: a lux::Tensor<T, N> shaped like l
/// e.g. the mean of squares:
///   lux::agg::custom(
///       [](auto l) { double s = 0; for (auto v : l) s += v * v; return s / l.numel(); },
///       [](auto l, auto d) {
///         auto g = lux::copy(l);
///         for (auto& v : g) v *= 2 * d / l.numel();
///         return g;
///       })
/// Any other type is an aggregation when it declares `using is_lux_aggregation = void;` and has
/// the same two members: operator()(l) and backward(l, d).
template <class F, class B>
struct custom {
  using is_lux_aggregation = void;
  F f;
  B back;
  custom(F f_, B back_) : f(std::move(f_)), back(std::move(back_)) {}
  template <class L>
  auto operator()(const L& l) const {
    return f(l);
  }
  template <class L, class D>
  auto backward(const L& l, const D& d) const {
    return back(l, d);
  }
};
}  // namespace agg

/// True for lux::agg::mean / sum / none and for types declaring `is_lux_aggregation`.
template <class A>
concept aggregation = std::is_same_v<A, agg::mean_type> || std::is_same_v<A, agg::sum_type> ||
    std::is_same_v<A, agg::none_type> || requires {
  typename A::is_lux_aggregation;
};

// =================================================================================================
// Results
// =================================================================================================

/// What loss.value_and_gradient returns: the loss (T, or the unaggregated tensor for
/// agg::none) and its gradient with respect to the prediction yhat (yhat's shape).
template <class L, class G>
struct value_and_gradient_result {
  L loss;
  G grad;
};

/// What the objective form loss(model, ps, st, (x, y)) returns, as Lux's (loss, st, stats).
template <class L, class ST, class Stats = empty_tuple>
struct objective_result {
  L loss;
  ST st;
  Stats stats;
};

namespace detail::loss {

/// Sums run in double for float, in T otherwise.
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

/// The gradient of the aggregation with respect to each unaggregated loss: a constant `c`
/// (mean, sum) or an array (none, custom).
template <class T>
struct upstream {
  const T* p = nullptr;
  T c = T(1);
  T operator[](index_t k) const { return p ? p[k] : c; }
};

// =================================================================================================
// Static checks and argument checks
// =================================================================================================
template <class YH>
constexpr void check_prediction_type() {
  static_assert(is_array_v<YH>, "lux loss: yhat must be a lux::Tensor or lux::TensorView");
  static_assert(array_traits_t<YH>::contiguous,
                "lux loss: yhat must be contiguous (a Tensor or TensorView); gather a StridedView "
                "with lux::copy first");
  static_assert(std::is_same_v<typename array_traits_t<YH>::device_type, cpu>,
                "lux loss: losses run on the cpu; copy yhat with lux::to<lux::cpu> first");
  static_assert(std::is_floating_point_v<array_value_t<YH>>,
                "lux loss: yhat must have a floating element type (float or double)");
  static_assert(array_rank_v<YH> >= 1, "lux loss: yhat must have rank >= 1");
}

/// A target array of yhat's shape (one-hot for classification): contiguous, arithmetic elements.
template <class Y, std::size_t N>
constexpr void check_target_array_type() {
  static_assert(is_array_v<Y>,
                "lux loss: y must be a lux::Tensor or lux::TensorView of yhat's shape (class "
                "indices are accepted by CrossEntropyLoss and FocalLoss only)");
  static_assert(array_traits_t<Y>::contiguous,
                "lux loss: y must be contiguous (a Tensor or TensorView)");
  static_assert(std::is_same_v<typename array_traits_t<Y>::device_type, cpu>,
                "lux loss: losses run on the cpu; copy y with lux::to<lux::cpu> first");
  static_assert(std::is_arithmetic_v<array_value_t<Y>>,
                "lux loss: y must have an arithmetic element type");
  static_assert(array_rank_v<Y> == N, "lux loss: y must have yhat's rank");
}

template <std::size_t N>
void check_same_shape(const char* op, const shape_t<N>& y, const shape_t<N>& yh) {
  require<shape_error>(y == yh, op, ": y has shape ", y, ", expected ", yh, " to match yhat");
}

/// The value of an optional epsilon: Lux's default eps(T) when absent.
template <class T>
T epsilon_or_default(const std::optional<double>& e) {
  return e ? static_cast<T>(*e) : std::numeric_limits<T>::epsilon();
}

inline void check_label_smoothing(const char* op, double a) {
  require<argument_error>(a >= 0 && a <= 1, op, ": label_smoothing must be in [0, 1], got ", a);
}

// Lux's xlogy(x, y) = x log y, 0 where x = 0; xlogx(x) = xlogy(x, x).
template <class T>
T xlogy(T x, T y) {
  using std::log;
  return x == T(0) ? T(0) : x * log(y);
}

// =================================================================================================
// The aggregation engine
// =================================================================================================
// A loss evaluation E (built once per call, after every argument check) provides
//   using value_type = T;   static constexpr std::size_t rank = N;
//   shape_t<N> loss_shape() const;              the unaggregated losses' shape
//   shape_t<N> input_shape() const;             yhat's shape
//   void values(T* out) const;                  the unaggregated losses
//   acc_t<T> sum() const;                       their sum (without materializing them)
//   void gradient(upstream<T> dl, T* g) const;  g = Σ_k dl[k] ∂l_k/∂yhat
// and optionally `void offset(T* out) const` / `acc_t<T> offset_sum() const`: terms that do not
// depend on yhat and that Lux aggregates separately (KLDivergenceLoss's entropy term).

template <class E>
inline constexpr bool has_offset_v = requires(const E& e, typename E::value_type* p) {
  e.offset(p);
};

template <class Agg, class T, std::size_t N>
constexpr void check_custom_aggregation() {
  static_assert(
      requires(const Agg& a, TensorView<const T, N> l, T d) {
        { a(l) } -> std::convertible_to<T>;
        { a.backward(l, d) } -> std::convertible_to<Tensor<T, N>>;
      },
      "lux loss: a custom agg must be callable as agg(l) -> T and provide "
      "agg.backward(l, d) -> lux::Tensor<T, N> shaped like l, with l a "
      "lux::TensorView<const T, N> of the unaggregated losses; wrap two lambdas "
      "with lux::agg::custom(f, backward)");
}

template <class Agg>
inline constexpr bool is_linear_agg_v =
    std::is_same_v<Agg, agg::mean_type> || std::is_same_v<Agg, agg::sum_type>;

template <class E>
Tensor<typename E::value_type, E::rank> unaggregated(const E& e) {
  auto l = Tensor<typename E::value_type, E::rank>::uninitialized(e.loss_shape());
  e.values(l.data());
  return l;
}

/// The aggregated loss of an evaluation (a T; the unaggregated tensor for agg::none).
template <class Agg, class E>
auto aggregate(const Agg& a, const E& e) {
  using T = typename E::value_type;
  if constexpr (is_linear_agg_v<Agg>) {
    acc_t<T> s = e.sum();
    if constexpr (has_offset_v<E>) s += e.offset_sum();
    if constexpr (std::is_same_v<Agg, agg::mean_type>)
      s /= static_cast<acc_t<T>>(shape_numel(e.loss_shape()));
    return static_cast<T>(s);
  } else if constexpr (std::is_same_v<Agg, agg::none_type>) {
    auto l = unaggregated(e);
    if constexpr (has_offset_v<E>) {
      auto o = Tensor<T, E::rank>::uninitialized(e.loss_shape());
      e.offset(o.data());
      for (index_t k = 0; k < l.numel(); ++k) l.data()[k] += o.data()[k];
    }
    return l;
  } else {
    check_custom_aggregation<Agg, T, E::rank>();
    const auto l = unaggregated(e);
    T v = static_cast<T>(a(l.cview()));
    if constexpr (has_offset_v<E>) {
      auto o = Tensor<T, E::rank>::uninitialized(e.loss_shape());
      e.offset(o.data());
      v += static_cast<T>(a(o.cview()));
    }
    return v;
  }
}

/// {loss, grad} for upstream gradient `dl` of the aggregated loss (a T; a tensor shaped like
/// the unaggregated losses for agg::none).
template <class Agg, class E, class DL>
auto aggregate_with_gradient(const char* op, const Agg& a, const E& e, const DL& dl) {
  using T = typename E::value_type;
  constexpr std::size_t N = E::rank;
  auto g = Tensor<T, N>::uninitialized(e.input_shape());
  if constexpr (std::is_same_v<Agg, agg::none_type>) {
    static_assert(is_array_v<DL> && array_rank_v<DL> == N,
                  "lux loss: with agg::none the loss is a tensor; value_and_gradient(yhat, y, dl) "
                  "needs the upstream gradient dl as a tensor shaped like that loss");
    static_assert(std::is_same_v<array_value_t<DL>, T>,
                  "lux loss: dl must have yhat's element type");
    const auto dv = as_view(dl);
    require<shape_error>(dv.shape() == e.loss_shape(), op, ": dl has shape ", dv.shape(),
                         ", expected the unaggregated loss shape ", e.loss_shape());
    auto l = aggregate(a, e);
    e.gradient(upstream<T>{dv.data()}, g.data());
    return value_and_gradient_result<Tensor<T, N>, Tensor<T, N>>{std::move(l), std::move(g)};
  } else {
    static_assert(std::is_arithmetic_v<DL>,
                  "lux loss: the loss is a scalar; the upstream gradient dl must be a number");
    const T d = static_cast<T>(dl);
    if constexpr (is_linear_agg_v<Agg>) {
      const T v = aggregate(a, e);
      T c = d;
      if constexpr (std::is_same_v<Agg, agg::mean_type>)
        c = static_cast<T>(d / static_cast<T>(shape_numel(e.loss_shape())));
      e.gradient(upstream<T>{nullptr, c}, g.data());
      return value_and_gradient_result<T, Tensor<T, N>>{v, std::move(g)};
    } else {
      check_custom_aggregation<Agg, T, N>();
      const auto l = unaggregated(e);
      T v = static_cast<T>(a(l.cview()));
      if constexpr (has_offset_v<E>) {
        auto o = Tensor<T, N>::uninitialized(e.loss_shape());
        e.offset(o.data());
        v += static_cast<T>(a(o.cview()));
      }
      const Tensor<T, N> dlv = a.backward(l.cview(), d);
      require<shape_error>(dlv.shape() == l.shape(), op, ": agg.backward returned shape ",
                           dlv.shape(), ", expected the unaggregated loss shape ", l.shape());
      e.gradient(upstream<T>{dlv.data()}, g.data());
      return value_and_gradient_result<T, Tensor<T, N>>{v, std::move(g)};
    }
  }
}

// =================================================================================================
// The interface every loss has
// =================================================================================================
/// Gives a loss type D (with `static constexpr const char* name`, a member `agg` and a private
/// `evaluate(yhat, y)` returning an evaluation) Lux's calling forms.
template <class D>
struct interface {
  /// The loss: agg of the unaggregated losses (a T), or the unaggregated tensor for agg::none.
  template <class YH, class Y>
  auto operator()(const YH& yhat, const Y& y) const {
    const D& self = static_cast<const D&>(*this);
    return aggregate(self.agg, self.evaluate(yhat, y));
  }

  /// {loss, d loss / d yhat}. With agg::none pass the upstream tensor: the overload below.
  template <class YH, class Y>
  auto value_and_gradient(const YH& yhat, const Y& y) const {
    const D& self = static_cast<const D&>(*this);
    static_assert(!std::is_same_v<std::remove_cvref_t<decltype(self.agg)>, agg::none_type>,
                  "lux loss: with agg::none the loss is a tensor; call "
                  "value_and_gradient(yhat, y, dl) with the upstream gradient dl shaped like it");
    return aggregate_with_gradient(D::name, self.agg, self.evaluate(yhat, y), 1);
  }
  /// {loss, dl · d loss / d yhat}: dl a number, or (agg::none) a tensor shaped like the loss.
  template <class YH, class Y, class DL>
  auto value_and_gradient(const YH& yhat, const Y& y, const DL& dl) const {
    const D& self = static_cast<const D&>(*this);
    return aggregate_with_gradient(D::name, self.agg, self.evaluate(yhat, y), dl);
  }

  /// Lux's objective form: runs the model on batch = (x, y) (a std::pair or std::tuple) and
  /// returns {loss(model(x), y), st', empty stats}.
  template <layer M, class PS, class ST, class Batch>
  auto operator()(const M& model, const PS& ps, const ST& st, const Batch& batch) const {
    auto [yhat, st2] = lux::apply(model, std::get<0>(batch), ps, st);
    auto l = (*this)(yhat, std::get<1>(batch));
    return objective_result<decltype(l), decltype(st2)>{std::move(l), std::move(st2),
                                                        empty_tuple{}};
  }
};

}  // namespace detail::loss
LUX_NAMESPACE_END
