// luxcpp — the normalization engine, generic mode: plain scalar loops over any element type.
//
// batchnorm, groupnorm, instancenorm and layernorm are one computation on x seen as a
// column-major (S, C, M, B) array — S elements per run (the product of the dimensions before the
// channel dimension), C channels, M runs per (channel, sample) (the product of the dimensions
// between the channel dimension and the batch; 1 for Lux's channels at N−1), B samples — that
// differs only in which elements share one set of statistics (a "statistics group") and which
// scale/bias element an element uses:
//
//   kernel        S              C               M              B                 group of (c, b)
//   batchnorm     prod(before)   size(x, cd)     1              prod(after)       c (across_batch)
//   groupnorm     prod(before)   size(x, cd)     prod(between)  size(x, N)        c ÷ (C/G) + G·b
//   instancenorm  prod(before)   size(x, cd)     prod(between)  size(x, N)        c + C·b
//   layernorm     1              prod(dims 1:k)  1              prod(dims k+1:N)  b   (C/G = C)
//
// where cd is the channel dimension (Lux's N−1 by default), "before"/"after" the dimensions
// before/after it and "between" those strictly between it and the batch dimension N.
//
// Element (s, c, m, b) is x[s + S·(c + C·(m + M·b))]. With the channel dimension at Lux's N−1
// (the default) M = 1 and (c, b) is one contiguous run; with channels first (channels-last
// memory, c = dimension 1) S = 1 and the channels of one position are contiguous.
//
// and scale/bias index c + b·affine_sample_stride (0, or C for a layernorm scale with the shape
// of x). With μ_k, σ²_k the mean and biased variance of group k and inv_k = 1/√(σ²_k + ε):
//
//   forward    y = σ((x − μ_k)·(inv_k·γ_a) + β_a)                  (γ = 1, β = 0 when absent)
//   backward   dz = dy·σ'(·),  x̂ = (x − μ_k)·inv_k
//              dβ_a = Σ dz,  dγ_a = Σ dz·x̂                        (over the elements using a)
//              dx = inv_k·(dz·γ_a − mean_k(dz·γ) − x̂·mean_k(dz·γ·x̂))   batch statistics
//              dx = inv_k·γ_a·dz                                       given (running) statistics
//
// Statistics use a shifted two-pass method: with K the group's first element, m = mean(x − K),
// μ = K + m and σ² = mean(((x − K) − m)²). Never E[x²] − E[x]², which loses every digit for
// inputs like 1e4 + N(0, 1) in float. Sums accumulate in norm_accumulator_t<T> (double for
// float), so this reference stays accurate for groups of millions of elements.
//
// This file includes only core headers; it is the reference a researcher copies. The looped
// (xsimd + OpenMP) engine in ../looped/normalization.hpp computes the same function.
#pragma once

#include <cmath>
#include <type_traits>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// How the normalization engine sees x (see the table above). Sizes are validated by the public
/// kernels: C % group_channels == 0, affine_sample_stride ∈ {0, C}.
struct norm_layout {
  index_t S = 1;                     ///< run length: consecutive elements of one (channel, sample)
  index_t C = 1;                     ///< channels
  index_t M = 1;                     ///< runs per (channel, sample), S·C elements apart
  index_t B = 1;                     ///< samples
  index_t group_channels = 1;        ///< channels per statistics group (unused when across_batch)
  bool across_batch = false;         ///< one group per channel over all samples (batchnorm)
  index_t affine_sample_stride = 0;  ///< scale/bias index of (c, b) = c + b·affine_sample_stride

  index_t numel() const noexcept { return S * C * M * B; }
  index_t groups_per_sample() const noexcept { return C / group_channels; }
  /// Number of statistics groups: C (across_batch) or (C / group_channels)·B.
  index_t num_groups() const noexcept { return across_batch ? C : groups_per_sample() * B; }
  /// Elements per statistics group.
  index_t group_size() const noexcept { return across_batch ? S * M * B : S * group_channels * M; }
  index_t group_of(index_t c, index_t b) const noexcept {
    return across_batch ? c : c / group_channels + groups_per_sample() * b;
  }
  index_t affine_index(index_t c, index_t b) const noexcept { return c + b * affine_sample_stride; }
  /// Linear index of the first element of run m of (channel c, sample b).
  index_t run_start(index_t c, index_t m, index_t b) const noexcept {
    return S * (c + C * (m + M * b));
  }
  /// Length of the scale/bias arrays the engine indexes (C, or C·B for a full-shape scale).
  index_t affine_size() const noexcept { return affine_sample_stride ? C * B : C; }
};

/// The type the generic engine accumulates sums in: double for float, T otherwise. A sequential
/// float sum of n terms has an error of order √n·eps relative to its terms (3e-5 at n = 3e5); as
/// the reference implementation this engine should be the accurate one.
template <class T>
using norm_accumulator_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

/// Scale and bias as the engine sees them; either may be null (γ = 1, β = 0).
template <class T>
struct norm_affine {
  const T* scale = nullptr;
  const T* bias = nullptr;
};

/// Calls f(i, c, b) for every element i (linear index into x) of statistics group k.
template <class F>
void for_each_in_group(const norm_layout& L, index_t k, F&& f) {
  if (L.across_batch) {
    for (index_t b = 0; b < L.B; ++b)
      for (index_t m = 0; m < L.M; ++m)
        for (index_t i = L.run_start(k, m, b), e = i + L.S; i < e; ++i) f(i, k, b);
  } else {
    const index_t G = L.groups_per_sample(), g = k % G, b = k / G;
    for (index_t m = 0; m < L.M; ++m)
      for (index_t c = g * L.group_channels; c < (g + 1) * L.group_channels; ++c)
        for (index_t i = L.run_start(c, m, b), e = i + L.S; i < e; ++i) f(i, c, b);
  }
}

/// dz = dy·σ'(·): from y when σ's derivative takes the output, from the pre-activation z
/// otherwise (identity: dz = dy).
template <class T, class F>
T norm_dz(const F& sigma, T dy, T z, const T* y, index_t i) {
  if constexpr (activation_traits<F>::is_identity) {
    return dy;
  } else if constexpr (activation_traits<F>::uses_output) {
    return dy * sigma.derivative(y[i]);
  } else {
    return dy * sigma.derivative(z);
  }
}

/// Mean and biased variance of every statistics group (shifted two-pass).
template <class T>
void normalization_statistics(generic_op, const norm_layout& L, const T* x, T* mean, T* var) {
  LUX_TRACE_KERNEL("generic_op", "normalization_statistics");
  using acc = norm_accumulator_t<T>;
  const acc n = static_cast<acc>(L.group_size());
  for (index_t k = 0; k < L.num_groups(); ++k) {
    acc shift = acc(0), sum = acc(0);
    bool first = true;
    for_each_in_group(L, k, [&](index_t i, index_t, index_t) {
      if (first) shift = x[i], first = false;
      sum += acc(x[i]) - shift;
    });
    const acc m = sum / n;
    acc m2 = acc(0);
    for_each_in_group(L, k, [&](index_t i, index_t, index_t) {
      const acc d = (acc(x[i]) - shift) - m;
      m2 += d * d;
    });
    mean[k] = static_cast<T>(shift + m);
    var[k] = static_cast<T>(m2 / n);
  }
}

/// y = σ((x − μ_k)·(inv_k·γ_a) + β_a) with the given per-group mean and inverse std.
template <class T, class F>
void normalization_apply(generic_op, const norm_layout& L, const T* x, T* y, norm_affine<T> aff,
                         const F& sigma, const T* mean, const T* inv_std) {
  LUX_TRACE_KERNEL("generic_op", "normalization_apply");
  for (index_t b = 0; b < L.B; ++b) {
    for (index_t m = 0; m < L.M; ++m) {
      for (index_t c = 0; c < L.C; ++c) {
        const index_t k = L.group_of(c, b), a = L.affine_index(c, b);
        const T scale = inv_std[k] * (aff.scale ? aff.scale[a] : T(1));
        const T shift = aff.bias ? aff.bias[a] : T(0);
        for (index_t i = L.run_start(c, m, b), e = i + L.S; i < e; ++i)
          y[i] = sigma((x[i] - mean[k]) * scale + shift);
      }
    }
  }
}

/// Forward with batch statistics: mean, biased variance and inverse std per group, then y.
template <class T, class F>
void normalization_forward(generic_op mode, const norm_layout& L, const T* x, T* y,
                           norm_affine<T> aff, const F& sigma, T epsilon, T* mean, T* var,
                           T* inv_std) {
  LUX_TRACE_KERNEL("generic_op", "normalization_forward");
  using std::sqrt;
  normalization_statistics(mode, L, x, mean, var);
  for (index_t k = 0; k < L.num_groups(); ++k) inv_std[k] = T(1) / sqrt(var[k] + epsilon);
  normalization_apply(mode, L, x, y, aff, sigma, mean, inv_std);
}

/// Backward: dx, and (when affine_grads) dscale and dbias, both of length L.affine_size().
/// `y` is read only when σ's derivative takes the output. `batch_statistics` says whether
/// mean/inv_std were computed from x (training) or are constants (running statistics).
template <class T, class F>
void normalization_backward(generic_op, const norm_layout& L, const T* dy, const T* x, const T* y,
                            norm_affine<T> aff, const F& sigma, const T* mean, const T* inv_std,
                            bool batch_statistics, T* dx, bool affine_grads, T* dscale, T* dbias) {
  LUX_TRACE_KERNEL("generic_op", "normalization_backward");
  using acc = norm_accumulator_t<T>;
  const auto G = static_cast<std::size_t>(L.num_groups());
  const auto A = static_cast<std::size_t>(affine_grads ? L.affine_size() : 0);
  std::vector<acc> sum_dxhat(G, acc(0));     // Σ dz·γ per group
  std::vector<acc> sum_dxhat_xc(G, acc(0));  // Σ dz·γ·(x − μ) per group
  std::vector<acc> sum_dz(A, acc(0));        // Σ dz per scale/bias element
  std::vector<acc> sum_dz_xhat(A, acc(0));   // Σ dz·x̂ per scale/bias element

  // Pass 1: the reductions (per group for dx, per scale/bias element for dscale/dbias).
  for (index_t b = 0; b < L.B; ++b) {
    for (index_t m = 0; m < L.M; ++m) {
      for (index_t c = 0; c < L.C; ++c) {
        const index_t k = L.group_of(c, b), a = L.affine_index(c, b);
        const T gamma = aff.scale ? aff.scale[a] : T(1);
        const T beta = aff.bias ? aff.bias[a] : T(0);
        const T scale = inv_std[k] * gamma;
        for (index_t i = L.run_start(c, m, b), e = i + L.S; i < e; ++i) {
          const T xc = x[i] - mean[k];
          const T dz = norm_dz(sigma, dy[i], xc * scale + beta, y, i);
          if (affine_grads) {
            sum_dz[a] += dz;
            sum_dz_xhat[a] += dz * xc * inv_std[k];
          }
          sum_dxhat[k] += dz * gamma;
          sum_dxhat_xc[k] += dz * gamma * xc;
        }
      }
    }
  }
  for (std::size_t a = 0; a < A; ++a) {
    dbias[a] = static_cast<T>(sum_dz[a]);
    dscale[a] = static_cast<T>(sum_dz_xhat[a]);
  }
  // Pass 2: dx.
  const acc n = static_cast<acc>(L.group_size());
  for (index_t b = 0; b < L.B; ++b) {
    for (index_t m = 0; m < L.M; ++m) {
      for (index_t c = 0; c < L.C; ++c) {
        const index_t k = L.group_of(c, b), a = L.affine_index(c, b);
        const T gamma = aff.scale ? aff.scale[a] : T(1);
        const T beta = aff.bias ? aff.bias[a] : T(0);
        const T inv = inv_std[k], scale = inv * gamma;
        const T mean_dxhat = batch_statistics ? static_cast<T>(sum_dxhat[k] / n) : T(0);
        const T mean_dxhat_xhat =
            batch_statistics ? static_cast<T>(sum_dxhat_xc[k] * inv / n) : T(0);
        for (index_t i = L.run_start(c, m, b), e = i + L.S; i < e; ++i) {
          const T xc = x[i] - mean[k];
          const T dz = norm_dz(sigma, dy[i], xc * scale + beta, y, i);
          dx[i] = inv * (dz * gamma - mean_dxhat - xc * inv * mean_dxhat_xhat);
        }
      }
    }
  }
}

/// Running statistics after one training step (mode-independent, O(C)):
///   r_μ ← (1 − m)·r_μ + m·μ̄_c,   r_σ² ← (1 − m)·r_σ² + m·k·σ̄²_c
/// where μ̄_c, σ̄²_c average the batch statistics mean[c + C·b], var[c + C·b] over the
/// `samples` samples (1 for batchnorm, B for instancenorm) and k = `correction`: n/(n − 1) for
/// the unbiased variance (Lux, PyTorch; n the number of elements behind one variance, n > 1
/// checked by the caller) or 1 for the biased one (inox, Flax).
template <class T>
void update_running_statistics(index_t C, index_t samples, const T* mean, const T* var,
                               T correction, T momentum, const T* running_mean,
                               const T* running_var, T* new_mean, T* new_var) {
  for (index_t c = 0; c < C; ++c) {
    T mu = T(0), v = T(0);
    for (index_t b = 0; b < samples; ++b) {
      mu += mean[c + C * b];
      v += var[c + C * b];
    }
    mu /= static_cast<T>(samples);
    v /= static_cast<T>(samples);
    new_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mu;
    new_var[c] = (T(1) - momentum) * running_var[c] + momentum * correction * v;
  }
}

}  // namespace impl
LUX_NAMESPACE_END
