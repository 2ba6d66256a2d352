// luxcpp — the losses that reduce over a class dimension before aggregating: CrossEntropyLoss,
// FocalLoss and KLDivergenceLoss (Lux 1.31, src/helpers/losses.jl). Overview and calling
// forms: lux/training/losses.hpp.
//
// The class dimension is `dims` (0-based; 0 = Lux's dims = 1). The unaggregated loss has yhat's
// rank with size 1 at `dims` (Julia's sum(...; dims)), one value per sample; agg::mean divides
// by that count, i.e. by numel / C.
//
// Targets: an array of yhat's shape (one-hot or probabilities, any arithmetic element type), or
// for CrossEntropyLoss and FocalLoss 0-based class indices: a contiguous
// Tensor<std::int64_t, N-1> / TensorView of yhat's shape without `dims`, or, for a (C, B) or
// (B, C) yhat, a std::span<const std::int64_t>. An index outside [0, C) throws argument_error.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "lux/kernels/softmax.hpp"
#include "lux/training/losses/core.hpp"
#include "lux/training/losses/elementwise.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Options
// =================================================================================================
struct cross_entropy_options {
  bool logits = false;              ///< yhat are logits (fused logsoftmax) instead of probabilities
  double label_smoothing = 0;       ///< α in [0, 1]: ỹ = (1 - α) y + α / C (Lux's nothing = 0)
  index_t dims = 0;                 ///< the class dimension, 0-based (Lux's dims = 1)
  std::optional<double> epsilon{};  ///< added to yhat inside the log (logits = false); eps(T)
};
struct focal_options {
  double gamma = 2;
  index_t dims = 0;
  std::optional<double> epsilon{};
};
struct kl_divergence_options {
  index_t dims = 0;
  std::optional<double> epsilon{};
  double label_smoothing = 0;
};

namespace detail::loss {

// =================================================================================================
// Targets
// =================================================================================================
template <class Y>
inline constexpr bool is_index_span_v = false;
template <class E, std::size_t X>
inline constexpr bool is_index_span_v<std::span<E, X>> =
    std::is_same_v<std::remove_const_t<E>, std::int64_t>;

/// True when Y is a class-index target for a rank-N prediction.
template <class Y, std::size_t N>
inline constexpr bool is_index_target_v = [] {
  if constexpr (is_index_span_v<std::remove_cvref_t<Y>>) {
    return true;
  } else if constexpr (is_array_v<Y>) {
    return array_rank_v<Y> + 1 == N && std::is_same_v<array_value_t<Y>, std::int64_t>;
  } else {
    return false;
  }
}();

/// One-hot / probability targets: ỹ(k) read from an array of yhat's shape.
template <class U>
struct array_target {
  const U* y;
  template <class T>
  T at(index_t /*row*/, index_t /*c*/, index_t k) const {
    return static_cast<T>(y[k]);
  }
};
/// Class-index targets: ỹ = 1 at the row's class, 0 elsewhere.
struct index_target {
  const std::int64_t* idx;
  template <class T>
  T at(index_t row, index_t c, index_t /*k*/) const {
    return idx[row] == c ? T(1) : T(0);
  }
};

enum class class_loss { cross_entropy, focal, kl_divergence };

// =================================================================================================
// The evaluation: rows r = i + inner·o of the (inner, C, outer) factorization
// =================================================================================================
template <class T, std::size_t N, class Target, class_loss Kind>
struct class_eval {
  using value_type = T;
  static constexpr std::size_t rank = N;
  TensorView<const T, N> yh;
  impl::softmax_geometry g;
  index_t dims;
  Target target;
  bool logits = false;
  T alpha = 0;  ///< label smoothing
  T eps = 0;
  T gamma = 0;
  Tensor<T, N> ls{};  ///< logsoftmax(yhat, dims) when logits

  shape_t<N> input_shape() const { return yh.shape(); }
  shape_t<N> loss_shape() const {
    auto s = yh.shape();
    s[static_cast<std::size_t>(dims)] = 1;
    return s;
  }
  index_t element(index_t i, index_t c, index_t o) const { return i + g.inner * (c + g.n * o); }
  T smoothed(index_t r, index_t c, index_t k) const {
    const T t = target.template at<T>(r, c, k);
    return alpha == T(0) ? t : t * (T(1) - alpha) + alpha / static_cast<T>(g.n);
  }

  acc_t<T> row_loss(index_t i, index_t o) const {
    using std::log;
    using std::pow;
    const index_t r = i + g.inner * o;
    acc_t<T> l = 0;
    for (index_t c = 0; c < g.n; ++c) {
      const index_t k = element(i, c, o);
      const T t = smoothed(r, c, k);
      if (t == T(0)) continue;  // xlogy(0, ·) = 0 (also for -inf logits)
      if constexpr (Kind == class_loss::focal) {
        const T q = yh.data()[k] + eps;
        l -= t * pow(T(1) - q, gamma) * log(q);
      } else if (logits) {
        l -= t * ls.data()[k];
      } else {
        l -= t * log(yh.data()[k] + eps);
      }
    }
    return l;
  }
  void values(T* out) const {
    for (index_t o = 0; o < g.outer; ++o)
      for (index_t i = 0; i < g.inner; ++i) out[i + g.inner * o] = static_cast<T>(row_loss(i, o));
  }
  acc_t<T> sum() const {
    acc_t<T> s = 0;
    for (index_t o = 0; o < g.outer; ++o)
      for (index_t i = 0; i < g.inner; ++i) s += row_loss(i, o);
    return s;
  }

  // KLDivergenceLoss's entropy term Σ xlogx(y) (unsmoothed y; it does not depend on yhat).
  acc_t<T> row_entropy(index_t i, index_t o) const requires(Kind == class_loss::kl_divergence) {
    const index_t r = i + g.inner * o;
    acc_t<T> e = 0;
    for (index_t c = 0; c < g.n; ++c) {
      const T t = target.template at<T>(r, c, element(i, c, o));
      e += xlogy(t, t);
    }
    return e;
  }
  void offset(T* out) const requires(Kind == class_loss::kl_divergence) {
    for (index_t o = 0; o < g.outer; ++o)
      for (index_t i = 0; i < g.inner; ++i)
        out[i + g.inner * o] = static_cast<T>(row_entropy(i, o));
  }
  acc_t<T> offset_sum() const requires(Kind == class_loss::kl_divergence) {
    acc_t<T> s = 0;
    for (index_t o = 0; o < g.outer; ++o)
      for (index_t i = 0; i < g.inner; ++i) s += row_entropy(i, o);
    return s;
  }

  void gradient(upstream<T> dl, T* grad) const {
    using std::exp;
    using std::log;
    using std::pow;
    for (index_t o = 0; o < g.outer; ++o)
      for (index_t i = 0; i < g.inner; ++i) {
        const index_t r = i + g.inner * o;
        const T d = dl[r];
        if (Kind == class_loss::cross_entropy && logits) {
          // d/dŷ_c [-Σ ỹ logsoftmax(ŷ)] = softmax(ŷ)_c Σỹ - ỹ_c
          T st = 0;
          for (index_t c = 0; c < g.n; ++c) st += smoothed(r, c, element(i, c, o));
          for (index_t c = 0; c < g.n; ++c) {
            const index_t k = element(i, c, o);
            grad[k] = d * (exp(ls.data()[k]) * st - smoothed(r, c, k));
          }
          continue;
        }
        for (index_t c = 0; c < g.n; ++c) {
          const index_t k = element(i, c, o);
          const T t = smoothed(r, c, k);
          if (t == T(0)) {
            grad[k] = T(0);
          } else if constexpr (Kind == class_loss::focal) {
            const T q = yh.data()[k] + eps;
            grad[k] =
                -d * t * (pow(T(1) - q, gamma) / q - pow_derivative(T(1) - q, gamma) * log(q));
          } else {
            grad[k] = -d * t / (yh.data()[k] + eps);
          }
        }
      }
  }
};

/// Checks and builds the evaluation of a class loss.
template <class_loss Kind, class YH, class Y>
auto make_class_eval(const char* op, const YH& yhat, const Y& y, index_t dims, bool logits,
                     double alpha, const std::optional<double>& eps, double gamma) {
  check_prediction_type<YH>();
  using T = array_value_t<YH>;
  constexpr std::size_t N = array_rank_v<YH>;
  check_label_smoothing(op, alpha);
  const TensorView<const T, N> yv = as_view(yhat);
  require<argument_error>(dims >= 0 && dims < static_cast<index_t>(N), op, ": dims ", dims,
                          " out of range for yhat of rank ", N, " with shape ", yv.shape(),
                          " (expected 0 <= dims < ", N, ")");
  const auto g = softmax::plan(op, yv.shape(), dims);
  auto make = [&](auto target) {
    class_eval<T, N, decltype(target), Kind> e{yv, g, dims, target};
    e.logits = logits;
    e.alpha = static_cast<T>(alpha);
    e.eps = epsilon_or_default<T>(eps);
    e.gamma = static_cast<T>(gamma);
    if (logits) e.ls = lux::logsoftmax(yv, dims);
    return e;
  };
  if constexpr (is_index_target_v<Y, N>) {
    static_assert(Kind != class_loss::kl_divergence,
                  "lux::KLDivergenceLoss: y must be an array of yhat's shape (a distribution); "
                  "class indices are accepted by CrossEntropyLoss and FocalLoss");
    const std::int64_t* idx = nullptr;
    index_t count = 0;
    if constexpr (is_index_span_v<std::remove_cvref_t<Y>>) {
      static_assert(N == 2,
                    "lux loss: std::span class indices are for a (C, B) yhat; for other ranks "
                    "pass a lux::Tensor<std::int64_t, N-1> of yhat's shape without dims");
      const index_t expect = yv.shape()[dims == 0 ? 1 : 0];
      require<shape_error>(static_cast<index_t>(y.size()) == expect, op, ": ", y.size(),
                           " class indices, expected ", expect, " (one per sample of yhat ",
                           yv.shape(), " with classes along dimension ", dims, ")");
      idx = y.data();
      count = expect;
    } else {
      static_assert(array_traits_t<Y>::contiguous &&
                        std::is_same_v<typename array_traits_t<Y>::device_type, cpu>,
                    "lux loss: class indices must be a contiguous cpu Tensor / TensorView");
      const auto iv = as_view(y);
      shape_t<N - 1> expect{};
      for (std::size_t d = 0, j = 0; d < N; ++d)
        if (static_cast<index_t>(d) != dims) expect[j++] = yv.shape()[d];
      require<shape_error>(iv.shape() == expect, op, ": class indices have shape ", iv.shape(),
                           ", expected ", expect, " (yhat ", yv.shape(), " without dimension ",
                           dims, ")");
      idx = iv.data();
      count = iv.numel();
    }
    for (index_t k = 0; k < count; ++k)
      require<argument_error>(idx[k] >= 0 && idx[k] < g.n, op, ": class index ", idx[k],
                              " at position ", k, " is out of range for ", g.n,
                              " classes (expected 0 <= index < ", g.n, ")");
    return make(index_target{idx});
  } else {
    check_target_array_type<Y, N>();
    const auto tv = as_view(y);
    check_same_shape(op, tv.shape(), yv.shape());
    return make(array_target<array_value_t<Y>>{tv.data()});
  }
}

}  // namespace detail::loss

// =================================================================================================
// The losses
// =================================================================================================

/// CrossEntropyLoss: agg(-Σ_dims ỹ log(ŷ + ε)) for probabilities (logits = false), or
/// agg(-Σ_dims ỹ logsoftmax(ŷ; dims)) for logits; ỹ = (1 - α) y + α / C.
/// Terms with ỹ = 0 contribute 0 (Lux's xlogy; in the logits form Lux multiplies, which gives
/// NaN for a -inf logit of a class with ỹ = 0 — here it is 0, as PyTorch with class indices).
/// α / C uses C = the size along `dims` (Lux 1.31 divides by size(y, ndims(y) - 1), the same
/// for a (C, B) matrix with dims = 0).
template <class Agg = agg::mean_type>
struct CrossEntropyLoss : detail::loss::interface<CrossEntropyLoss<Agg>>, cross_entropy_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "CrossEntropyLoss";
  Agg agg{};
  CrossEntropyLoss() = default;
  explicit CrossEntropyLoss(cross_entropy_options o, Agg a = {})
      : cross_entropy_options(o), agg(a) {}
  explicit CrossEntropyLoss(Agg a) : agg(a) {}

 private:
  friend struct detail::loss::interface<CrossEntropyLoss>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    return detail::loss::make_class_eval<detail::loss::class_loss::cross_entropy>(
        name, yhat, y, dims, logits, label_smoothing, epsilon, 0.0);
  }
};

/// FocalLoss: agg(Σ_dims -y (1 - ŷ - ε)^γ log(ŷ + ε)), ŷ probabilities (softmax output).
template <class Agg = agg::mean_type>
struct FocalLoss : detail::loss::interface<FocalLoss<Agg>>, focal_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "FocalLoss";
  Agg agg{};
  FocalLoss() = default;
  explicit FocalLoss(focal_options o, Agg a = {}) : focal_options(o), agg(a) {}
  explicit FocalLoss(Agg a) : agg(a) {}

 private:
  friend struct detail::loss::interface<FocalLoss>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    return detail::loss::make_class_eval<detail::loss::class_loss::focal>(
        name, yhat, y, dims, false, 0.0, epsilon, gamma);
  }
};

/// KLDivergenceLoss: Σ_dims xlogx(y) aggregated, plus CrossEntropyLoss(dims, epsilon,
/// label_smoothing) on probabilities — Lux's agg(entropy) + CE (for agg::none their sum; for a
/// custom agg, agg is applied to each term, as in Lux).
template <class Agg = agg::mean_type>
struct KLDivergenceLoss : detail::loss::interface<KLDivergenceLoss<Agg>>, kl_divergence_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "KLDivergenceLoss";
  Agg agg{};
  KLDivergenceLoss() = default;
  explicit KLDivergenceLoss(kl_divergence_options o, Agg a = {})
      : kl_divergence_options(o), agg(a) {}
  explicit KLDivergenceLoss(Agg a) : agg(a) {}

 private:
  friend struct detail::loss::interface<KLDivergenceLoss>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    return detail::loss::make_class_eval<detail::loss::class_loss::kl_divergence>(
        name, yhat, y, dims, false, label_smoothing, epsilon, 0.0);
  }
};

LUX_NAMESPACE_END
