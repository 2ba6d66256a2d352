// luxcpp — the overlap (segmentation) losses: DiceCoeffLoss (Lux 1.31) and TverskyLoss (Flux's
// tversky_loss; Lux 1.31 has none). Overview and calling forms: lux/training/losses.hpp.
//
// As Lux's DiceCoeffLoss, the sums run over every dimension but the last (one value per
// sample) for yhat of rank ≥ 2, and over the whole array for a vector; the unaggregated loss has
// yhat's rank with size 1 in every summed dimension, and agg runs over the samples. TverskyLoss
// follows the same convention (Flux's tversky_loss sums over the whole array: the same as here
// for a vector, or for yhat.reshape(-1)).
#pragma once

#include <cstddef>
#include <type_traits>

#include "lux/training/losses/core.hpp"
#include "lux/training/losses/elementwise.hpp"

LUX_NAMESPACE_BEGIN

struct dice_coeff_options {
  double smooth = 1;
};
struct tversky_options {
  double beta = 0.7;  ///< weight of false positives (1 - y) ŷ; false negatives get 1 - beta
  double smooth = 1;  ///< Flux fixes it at 1
};

namespace detail::loss {

enum class overlap_loss { dice, tversky };

template <class T, std::size_t N, class U, overlap_loss Kind>
struct overlap_eval {
  using value_type = T;
  static constexpr std::size_t rank = N;
  TensorView<const T, N> yh;
  TensorView<const U, N> y;
  T smooth;
  T beta;

  shape_t<N> input_shape() const { return yh.shape(); }
  shape_t<N> loss_shape() const {
    shape_t<N> s{};
    s.fill(1);
    if constexpr (N >= 2) s[N - 1] = yh.shape()[N - 1];
    return s;
  }
  index_t samples() const { return N >= 2 ? yh.shape()[N - 1] : 1; }
  index_t per_sample() const { return samples() == 0 ? 0 : yh.numel() / samples(); }

  /// The numerator and denominator of sample b.
  std::pair<acc_t<T>, acc_t<T>> ratio(index_t b) const {
    const index_t m = per_sample(), base = b * m;
    acc_t<T> s1 = 0, s2 = 0, s3 = 0;
    for (index_t j = 0; j < m; ++j) {
      const acc_t<T> a = yh.data()[base + j], t = static_cast<T>(y.data()[base + j]);
      if constexpr (Kind == overlap_loss::dice) {
        s1 += t * a;
        s2 += a * a;
        s3 += t * t;
      } else {
        s1 += t * a;
        s2 += beta * (1 - t) * a;
        s3 += (1 - beta) * t * (1 - a);
      }
    }
    if constexpr (Kind == overlap_loss::dice) return {2 * s1 + smooth, s2 + s3 + smooth};
    return {s1 + smooth, s1 + s2 + s3 + smooth};
  }
  void values(T* out) const {
    for (index_t b = 0; b < samples(); ++b) {
      const auto [num, den] = ratio(b);
      out[b] = static_cast<T>(1 - num / den);
    }
  }
  acc_t<T> sum() const {
    acc_t<T> s = 0;
    for (index_t b = 0; b < samples(); ++b) {
      const auto [num, den] = ratio(b);
      s += 1 - num / den;
    }
    return s;
  }
  /// d(1 - num/den)/dŷ_j = -(num'_j den - num den'_j) / den².
  void gradient(upstream<T> dl, T* g) const {
    const index_t m = per_sample();
    for (index_t b = 0; b < samples(); ++b) {
      const auto [num, den] = ratio(b);
      const acc_t<T> d = dl[b], inv = 1 / (den * den);
      for (index_t j = 0; j < m; ++j) {
        const index_t k = b * m + j;
        const acc_t<T> a = yh.data()[k], t = static_cast<T>(y.data()[k]);
        acc_t<T> dnum, dden;
        if constexpr (Kind == overlap_loss::dice) {
          dnum = 2 * t;
          dden = 2 * a;
        } else {
          dnum = t;
          dden = t + beta * (1 - t) - (1 - beta) * t;
        }
        g[k] = static_cast<T>(-d * (dnum * den - num * dden) * inv);
      }
    }
  }
};

template <overlap_loss Kind, class YH, class Y>
auto make_overlap_eval(const char* op, const YH& yhat, const Y& y, double smooth, double beta) {
  check_prediction_type<YH>();
  using T = array_value_t<YH>;
  constexpr std::size_t N = array_rank_v<YH>;
  check_target_array_type<Y, N>();
  const TensorView<const T, N> yv = as_view(yhat);
  const TensorView<const array_value_t<Y>, N> tv = as_view(y);
  check_same_shape(op, tv.shape(), yv.shape());
  return overlap_eval<T, N, array_value_t<Y>, Kind>{yv, tv, static_cast<T>(smooth),
                                                    static_cast<T>(beta)};
}

}  // namespace detail::loss

/// DiceCoeffLoss: agg(1 - (2 Σ y ŷ + s) / (Σ ŷ² + Σ y² + s)) per sample, s = smooth (1).
template <class Agg = agg::mean_type>
struct DiceCoeffLoss : detail::loss::interface<DiceCoeffLoss<Agg>>, dice_coeff_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "DiceCoeffLoss";
  Agg agg{};
  DiceCoeffLoss() = default;
  explicit DiceCoeffLoss(dice_coeff_options o, Agg a = {}) : dice_coeff_options(o), agg(a) {}
  explicit DiceCoeffLoss(Agg a) : agg(a) {}

 private:
  friend struct detail::loss::interface<DiceCoeffLoss>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    return detail::loss::make_overlap_eval<detail::loss::overlap_loss::dice>(name, yhat, y, smooth,
                                                                             0.0);
  }
};

/// TverskyLoss: agg(1 - (Σ y ŷ + s) / (Σ [y ŷ + β (1 - y) ŷ + (1 - β) y (1 - ŷ)] + s)) per
/// sample, β = beta (0.7), s = smooth (1).
template <class Agg = agg::mean_type>
struct TverskyLoss : detail::loss::interface<TverskyLoss<Agg>>, tversky_options {
  static_assert((detail::loss::check_aggregation_type<Agg>(), true));
  static constexpr const char* name = "TverskyLoss";
  Agg agg{};
  TverskyLoss() = default;
  explicit TverskyLoss(tversky_options o, Agg a = {}) : tversky_options(o), agg(a) {}
  explicit TverskyLoss(Agg a) : agg(a) {}

 private:
  friend struct detail::loss::interface<TverskyLoss>;
  template <class YH, class Y>
  auto evaluate(const YH& yhat, const Y& y) const {
    return detail::loss::make_overlap_eval<detail::loss::overlap_loss::tversky>(name, yhat, y,
                                                                                smooth, beta);
  }
};

LUX_NAMESPACE_END
