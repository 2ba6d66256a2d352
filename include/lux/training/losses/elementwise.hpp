// luxcpp — the losses that apply a scalar function to each (ŷᵢ, yᵢ) and then aggregate:
// MSELoss, MAELoss, MSLELoss, HuberLoss, HingeLoss, SquaredHingeLoss, PoissonLoss,
// SiameseContrastiveLoss, BinaryCrossEntropyLoss, BinaryFocalLoss and GenericLossFunction
// (Lux 1.31, src/helpers/losses.jl). Overview and calling forms: lux/training/losses.hpp.
//
// Each loss exposes its scalar function as `loss.pointwise<T>()`, an object with
// value(ŷ, y) and derivative(ŷ, y) (∂/∂ŷ), both in T.
#pragma once

#include <cmath>
#include <optional>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/training/losses/core.hpp"
#include "lux/training/losses/dual.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Options (Lux's keyword arguments and defaults; epsilon = nullopt is Lux's `nothing`: eps(T))
// =================================================================================================
struct huber_options {
  double delta = 1;
};
struct msle_options {
  std::optional<double> epsilon{};
};
struct poisson_options {
  std::optional<double> epsilon{};
};
struct siamese_contrastive_options {
  double margin = 1;  ///< must be >= 0 (argument_error)
};
struct binary_cross_entropy_options {
  bool logits = false;         ///< ŷ are logits (fused log-sigmoid) instead of probabilities
  double label_smoothing = 0;  ///< α in [0, 1]: ỹ = (1 - α) y + α / 2 (Lux's nothing = 0)
  std::optional<double> epsilon{};
};
struct binary_focal_options {
  double gamma = 2;
  std::optional<double> epsilon{};
};

namespace detail::loss {

// =================================================================================================
// Scalar functions and their derivatives with respect to ŷ (a = ŷᵢ, b = yᵢ)
// =================================================================================================
template <class T>
T sign(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
}
/// d/du (u^γ) = γ u^(γ-1), 0 for γ = 0 (also at u = 0).
template <class T>
T pow_derivative(T u, T gamma) {
  using std::pow;
  return gamma == T(0) ? T(0) : gamma * pow(u, gamma - T(1));
}

template <class T>
struct l2_pointwise {
  T value(T a, T b) const { return (a - b) * (a - b); }
  T derivative(T a, T b) const { return T(2) * (a - b); }
};
template <class T>
struct l1_pointwise {
  T value(T a, T b) const {
    using std::abs;
    return abs(a - b);
  }
  T derivative(T a, T b) const { return sign(a - b); }
};
template <class T>
struct msle_pointwise {
  T eps;
  T value(T a, T b) const {
    using std::log;
    const T l = log((a + eps) / (b + eps));
    return l * l;
  }
  T derivative(T a, T b) const {
    using std::log;
    return T(2) * log((a + eps) / (b + eps)) / (a + eps);
  }
};
template <class T>
struct huber_pointwise {
  T delta;
  T value(T a, T b) const {
    using std::abs;
    const T d = a - b, ad = abs(d);
    return ad <= delta ? T(0.5) * d * d : delta * (ad - T(0.5) * delta);
  }
  T derivative(T a, T b) const {
    using std::abs;
    const T d = a - b;
    return abs(d) <= delta ? d : delta * sign(d);
  }
};
// Lux's l1_hinge_loss / l2_hinge_loss. Their custom derivatives in Lux 1.31 are 1 and 2(ŷy − 1)
// where ŷy < 1, which drop the factor y (so the sign is wrong for y = 1 in the hinge and for
// y = −1 in the squared hinge); these are the derivatives of the functions Lux evaluates.
template <class T>
struct hinge_pointwise {
  T value(T a, T b) const { return a * b >= T(1) ? T(0) : T(1) - a * b; }
  T derivative(T a, T b) const { return a * b >= T(1) ? T(0) : -b; }
};
template <class T>
struct squared_hinge_pointwise {
  T value(T a, T b) const { return a * b >= T(1) ? T(0) : (T(1) - a * b) * (T(1) - a * b); }
  T derivative(T a, T b) const { return a * b >= T(1) ? T(0) : T(2) * (a * b - T(1)) * b; }
};
template <class T>
struct poisson_pointwise {
  T eps;
  T value(T a, T b) const { return a - xlogy(b, a + eps); }
  T derivative(T a, T b) const { return b == T(0) ? T(1) : T(1) - b / (a + eps); }
};
template <class T>
struct siamese_contrastive_pointwise {
  T margin;
  T value(T a, T b) const {
    const T m = margin - a > T(0) ? margin - a : T(0);
    return (T(1) - b) * a * a + b * m * m;
  }
  T derivative(T a, T b) const {
    const T m = margin - a > T(0) ? margin - a : T(0);
    return T(2) * (T(1) - b) * a - T(2) * b * m;
  }
};
template <class T>
struct binary_cross_entropy_pointwise {
  bool logits;
  T alpha;
  T eps;
  T smoothed(T b) const { return b * (T(1) - alpha) + alpha / T(2); }
  T value(T a, T b) const {
    const T t = smoothed(b);
    if (logits) return (T(1) - t) * a - logsigmoid{}(a);
    return -xlogy(t, a + eps) - xlogy(T(1) - t, T(1) - a + eps);
  }
  T derivative(T a, T b) const {
    const T t = smoothed(b);
    if (logits) {
      const T s = sigmoid{}(a);
      return s - t;
    }
    const T p = t == T(0) ? T(0) : t / (a + eps);
    const T q = t == T(1) ? T(0) : (T(1) - t) / (T(1) - a + eps);
    return q - p;
  }
};
/// p_t = y (ŷ + ε) + (1 - y)(1 - ŷ - ε);  loss = -(1 - p_t)^γ log p_t.
template <class T>
struct binary_focal_pointwise {
  T gamma;
  T eps;
  T value(T a, T b) const {
    using std::log;
    using std::pow;
    const T q = a + eps, p = b * q + (T(1) - b) * (T(1) - q);
    return -pow(T(1) - p, gamma) * log(p);
  }
  T derivative(T a, T b) const {
    using std::log;
    using std::pow;
    const T q = a + eps, p = b * q + (T(1) - b) * (T(1) - q);
    const T dp = pow_derivative(T(1) - p, gamma) * log(p) - pow(T(1) - p, gamma) / p;
    return (T(2) * b - T(1)) * dp;
  }
};

/// GenericLossFunction's f and its derivative: the explicit df when given, else f on a dual.
template <class T, class F, class DF>
struct generic_pointwise {
  const F* f;
  const DF* df;
  T value(T a, T b) const { return static_cast<T>((*f)(a, b)); }
  T derivative(T a, T b) const {
    if constexpr (!std::is_same_v<DF, none_t>) {
      static_assert(std::is_invocable_v<const DF&, T, T>,
                    "lux::GenericLossFunction: the derivative df must be callable as df(yhat_i, "
                    "y_i) with two numbers of yhat's element type");
      return static_cast<T>((*df)(a, b));
    } else {
      static_assert(std::is_invocable_v<const F&, dual<T>, T>,
                    "lux::GenericLossFunction: cannot differentiate f. Either write f as a "
                    "template (e.g. [](auto yhat, auto y) { using std::log; return ...; }) with "
                    "unqualified math calls, so that it accepts lux::detail::dual<T> and is "
                    "differentiated exactly, or pass its derivative with respect to yhat: "
                    "lux::GenericLossFunction(f, df)");
      return dual_derivative((*f)(dual<T>(a, T(1)), b));
    }
  }
  static T dual_derivative(const dual<T>& r) { return r.der; }
  template <class R>
  static T dual_derivative(const R&) {
    return T(0);  // f returned a plain number: it does not depend on yhat
  }
};

// =================================================================================================
// The elementwise evaluation and the base of every elementwise loss
// =================================================================================================
template <class T, std::size_t N, class U, class P>
struct elementwise_eval {
  using value_type = T;
  static constexpr std::size_t rank = N;
  TensorView<const T, N> yh;
  TensorView<const U, N> y;
  P pw;

  shape_t<N> loss_shape() const { return yh.shape(); }
  shape_t<N> input_shape() const { return yh.shape(); }
  void values(T* out) const {
    const index_t n = yh.numel();
    for (index_t k = 0; k < n; ++k) out[k] = pw.value(yh.data()[k], static_cast<T>(y.data()[k]));
  }
  acc_t<T> sum() const {
    acc_t<T> s = 0;
    const index_t n = yh.numel();
    for (index_t k = 0; k < n; ++k) s += pw.value(yh.data()[k], static_cast<T>(y.data()[k]));
    return s;
  }
  void gradient(upstream<T> dl, T* g) const {
    const index_t n = yh.numel();
    const T* a = yh.data();
    const U* b = y.data();
    if (dl.p) {
      for (index_t k = 0; k < n; ++k) g[k] = dl.p[k] * pw.derivative(a[k], static_cast<T>(b[k]));
    } else {
      for (index_t k = 0; k < n; ++k) g[k] = dl.c * pw.derivative(a[k], static_cast<T>(b[k]));
    }
  }
};

/// Base of the elementwise losses: D provides `name`, `agg`, `pointwise<T>()` and, optionally,
/// `check()` (option validation, run at every evaluation).
template <class D>
struct elementwise : interface<D> {
 private:
  friend struct interface<D>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    check_prediction_type<YH>();
    constexpr std::size_t N = array_rank_v<YH>;
    check_target_array_type<Y, N>();
    using T = array_value_t<YH>;
    const D& self = static_cast<const D&>(*this);
    if constexpr (requires { self.check(); }) self.check();
    const TensorView<const T, N> yv = as_view(yhat);
    const TensorView<const array_value_t<Y>, N> tv = as_view(y);
    check_same_shape(D::name, tv.shape(), yv.shape());
    auto pw = self.template pointwise<T>();
    return elementwise_eval<T, N, array_value_t<Y>, decltype(pw)>{yv, tv, pw};
  }
};

template <class Agg>
constexpr void check_aggregation_type() {
  static_assert(aggregation<Agg>,
                "lux loss: agg must be lux::agg::mean, lux::agg::sum, lux::agg::none, "
                "lux::agg::custom(f, backward), or a type declaring `using is_lux_aggregation = "
                "void;` with operator()(l) and backward(l, d)");
}

}  // namespace detail::loss

// =================================================================================================
// The losses
// =================================================================================================
// Construction: `lux::MSELoss{}` / `lux::MSELoss(lux::agg::sum)`; losses with options take the
// options struct first: `lux::HuberLoss({.delta = 0.5})`, `lux::HuberLoss({.delta = 0.5},
// lux::agg::sum)`. The options are public fields of the loss (`loss.delta`).

/// MSELoss: agg((ŷ - y)²).
template <class Agg = agg::mean_type>
struct MSELoss : detail::loss::elementwise<MSELoss<Agg>> {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "MSELoss";
  Agg agg{};
  MSELoss() = default;
  explicit MSELoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::l2_pointwise<T> pointwise() const {
    return {};
  }
};
template <class Agg = agg::mean_type>
using L2Loss = MSELoss<Agg>;

/// MAELoss: agg(|ŷ - y|); derivative sign(ŷ - y) (0 at ŷ = y).
template <class Agg = agg::mean_type>
struct MAELoss : detail::loss::elementwise<MAELoss<Agg>> {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "MAELoss";
  Agg agg{};
  MAELoss() = default;
  explicit MAELoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::l1_pointwise<T> pointwise() const {
    return {};
  }
};
template <class Agg = agg::mean_type>
using L1Loss = MAELoss<Agg>;

/// MSLELoss: agg(log((ŷ + ε) / (y + ε))²), ε = epsilon or eps(T).
template <class Agg = agg::mean_type>
struct MSLELoss : detail::loss::elementwise<MSLELoss<Agg>>, msle_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "MSLELoss";
  Agg agg{};
  MSLELoss() = default;
  explicit MSLELoss(msle_options o, Agg a = {}) : msle_options(o), agg(a) {}
  explicit MSLELoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::msle_pointwise<T> pointwise() const {
    return {detail::loss::epsilon_or_default<T>(epsilon)};
  }
};

/// HuberLoss: agg(½(ŷ - y)² if |ŷ - y| ≤ δ else δ(|ŷ - y| - ½δ)), δ = delta (1).
template <class Agg = agg::mean_type>
struct HuberLoss : detail::loss::elementwise<HuberLoss<Agg>>, huber_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "HuberLoss";
  Agg agg{};
  HuberLoss() = default;
  explicit HuberLoss(huber_options o, Agg a = {}) : huber_options(o), agg(a) {}
  explicit HuberLoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::huber_pointwise<T> pointwise() const {
    return {static_cast<T>(delta)};
  }
};

/// HingeLoss: agg(max(0, 1 - ŷ y)), y ∈ {-1, 1}.
template <class Agg = agg::mean_type>
struct HingeLoss : detail::loss::elementwise<HingeLoss<Agg>> {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "HingeLoss";
  Agg agg{};
  HingeLoss() = default;
  explicit HingeLoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::hinge_pointwise<T> pointwise() const {
    return {};
  }
};

/// SquaredHingeLoss: agg(max(0, 1 - ŷ y)²), y ∈ {-1, 1}.
template <class Agg = agg::mean_type>
struct SquaredHingeLoss : detail::loss::elementwise<SquaredHingeLoss<Agg>> {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "SquaredHingeLoss";
  Agg agg{};
  SquaredHingeLoss() = default;
  explicit SquaredHingeLoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::squared_hinge_pointwise<T> pointwise() const {
    return {};
  }
};

/// PoissonLoss: agg(ŷ - xlogy(y, ŷ + ε)), ε = epsilon or eps(T).
template <class Agg = agg::mean_type>
struct PoissonLoss : detail::loss::elementwise<PoissonLoss<Agg>>, poisson_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "PoissonLoss";
  Agg agg{};
  PoissonLoss() = default;
  explicit PoissonLoss(poisson_options o, Agg a = {}) : poisson_options(o), agg(a) {}
  explicit PoissonLoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::poisson_pointwise<T> pointwise() const {
    return {detail::loss::epsilon_or_default<T>(epsilon)};
  }
};

/// SiameseContrastiveLoss: agg((1 - y) ŷ² + y max(0, margin - ŷ)²), margin (1) >= 0.
template <class Agg = agg::mean_type>
struct SiameseContrastiveLoss : detail::loss::elementwise<SiameseContrastiveLoss<Agg>>,
                                siamese_contrastive_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "SiameseContrastiveLoss";
  Agg agg{};
  SiameseContrastiveLoss() = default;
  explicit SiameseContrastiveLoss(siamese_contrastive_options o, Agg a = {})
      : siamese_contrastive_options(o), agg(a) {}
  explicit SiameseContrastiveLoss(Agg a) : agg(a) {}
  void check() const {
    require<argument_error>(margin >= 0, name, ": margin must be >= 0, got ", margin);
  }
  template <class T>
  detail::loss::siamese_contrastive_pointwise<T> pointwise() const {
    return {static_cast<T>(margin)};
  }
};

/// BinaryCrossEntropyLoss, with ỹ = (1 - α) y + α/2:
///   logits = false: agg(-xlogy(ỹ, ŷ + ε) - xlogy(1 - ỹ, 1 - ŷ + ε))
///   logits = true:  agg((1 - ỹ) ŷ - logsigmoid(ŷ))
template <class Agg = agg::mean_type>
struct BinaryCrossEntropyLoss : detail::loss::elementwise<BinaryCrossEntropyLoss<Agg>>,
                                binary_cross_entropy_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "BinaryCrossEntropyLoss";
  Agg agg{};
  BinaryCrossEntropyLoss() = default;
  explicit BinaryCrossEntropyLoss(binary_cross_entropy_options o, Agg a = {})
      : binary_cross_entropy_options(o), agg(a) {}
  explicit BinaryCrossEntropyLoss(Agg a) : agg(a) {}
  void check() const { detail::loss::check_label_smoothing(name, label_smoothing); }
  template <class T>
  detail::loss::binary_cross_entropy_pointwise<T> pointwise() const {
    return {logits, static_cast<T>(label_smoothing), detail::loss::epsilon_or_default<T>(epsilon)};
  }
};

/// BinaryFocalLoss: agg(-(1 - p_t)^γ log p_t), p_t = y(ŷ + ε) + (1 - y)(1 - ŷ - ε), γ = gamma (2).
template <class Agg = agg::mean_type>
struct BinaryFocalLoss : detail::loss::elementwise<BinaryFocalLoss<Agg>>, binary_focal_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "BinaryFocalLoss";
  Agg agg{};
  BinaryFocalLoss() = default;
  explicit BinaryFocalLoss(binary_focal_options o, Agg a = {}) : binary_focal_options(o), agg(a) {}
  explicit BinaryFocalLoss(Agg a) : agg(a) {}
  template <class T>
  detail::loss::binary_focal_pointwise<T> pointwise() const {
    return {static_cast<T>(gamma), detail::loss::epsilon_or_default<T>(epsilon)};
  }
};

/// GenericLossFunction(f[, df][, agg]): agg(f.(ŷ, y)) for any f(ŷᵢ, yᵢ) → number.
/// The gradient: df(ŷᵢ, yᵢ) when given; otherwise f is differentiated exactly with the
/// forward-mode dual number lux::detail::dual<T> (f must then be a template with unqualified
/// math calls: [](auto yh, auto y) { using std::abs; return abs(yh - y); }). If neither works,
/// a static_assert names both options.
///   lux::GenericLossFunction(f)                 lux::GenericLossFunction(f, df)
///   lux::GenericLossFunction(f, lux::agg::sum)  lux::GenericLossFunction(f, df, lux::agg::sum)
template <class F, class DF = none_t, class Agg = agg::mean_type>
struct GenericLossFunction : detail::loss::elementwise<GenericLossFunction<F, DF, Agg>> {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "GenericLossFunction";
  F loss_fn;
  DF derivative_fn;
  Agg agg{};
  explicit GenericLossFunction(F f, std::type_identity_t<DF> df = {},
                               std::type_identity_t<Agg> a = {})
      : loss_fn(std::move(f)), derivative_fn(std::move(df)), agg(a) {}
  GenericLossFunction(F f, std::type_identity_t<Agg> a) requires std::is_same_v<DF, none_t>
      : loss_fn(std::move(f)), derivative_fn(), agg(a) {}
  template <class T>
  detail::loss::generic_pointwise<T, F, DF> pointwise() const {
    return {&loss_fn, &derivative_fn};
  }
};
template <class F>
GenericLossFunction(F) -> GenericLossFunction<F>;
template <class F, aggregation A>
GenericLossFunction(F, A) -> GenericLossFunction<F, none_t, A>;
template <class F, class DF>
requires(!aggregation<DF>) GenericLossFunction(F, DF)
->GenericLossFunction<F, DF>;
template <class F, class DF, aggregation A>
GenericLossFunction(F, DF, A) -> GenericLossFunction<F, DF, A>;

LUX_NAMESPACE_END
