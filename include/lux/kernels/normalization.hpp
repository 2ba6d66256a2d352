// luxcpp — LuxLib's normalizations: batchnorm, groupnorm, instancenorm, layernorm, with their
// backward passes. One header for the four (they share one engine: ./generic/normalization.hpp,
// ./looped/normalization.hpp); <lux/kernels/batchnorm.hpp> etc. do not exist. This file holds the
// public functions; ./normalization/types.hpp their argument and result types and
// ./normalization/detail.hpp the argument checks and plumbing they share.
//
// Every kernel computes, with μ, σ² the mean and biased variance of a statistics group, the
// activation σ fused into the output pass:
//
//   y = σ((x − μ)·γ/√(σ² + ε) + β)          γ = scale (1 if lux::none), β = bias (0 if lux::none)
//
// x is column-major (Lux order), channels at dimension N−1 (1-based; index N−2 here), batch
// last: (W, H, C, B) — PyTorch's (B, C, H, W) in memory. Every kernel takes the channel dimension
// as a trailing lux::channel_dim{k} (0-based; default −1 = N−2): channel_dim{0} is channels first,
// (C, W, H, B) — channels-last memory, PyTorch's channels_last and JAX's (B, H, W, C). layernorm
// takes any set of dimensions instead (lux::dim_set).
//
//   batchnorm(x, scale, bias, running_mean, running_var, training, σ = identity,
//             momentum = 0.1, epsilon = eps(T)^(5/7), channel_dim = {}, running_variance =
//             unbiased)                                                      → batchnorm_result
//       Statistics per channel over every other dimension; x rank ≥ 2 ((features, batch) works);
//       the channel dimension may be any of x's (the last too).
//       training with running stats: normalize with batch statistics and return the updated
//         running_mean = (1−m)·r_μ + m·μ, running_var = (1−m)·r_σ² + m·(n/(n−1))·σ²
//         (n = elements per channel; n < 2 throws argument_error — Lux's layer asserts B ≠ 1,
//         the kernel would divide by zero, and n = 0 has no statistics at all); with
//         lux::running_variance::biased (inox, Flax) running_var = (1−m)·r_σ² + m·σ² (n ≥ 1);
//       inference with running stats: normalize with them, return them unchanged;
//       no running stats (both lux::none): batch statistics always, returned stats empty.
//   groupnorm(x, scale, bias, groups, σ = identity, epsilon, channel_dim = {}) → groupnorm_result
//       Channels split into `groups` contiguous blocks (channel c in group c ÷ (C/G));
//       statistics per (group, sample) over every non-batch dimension; per-channel scale/bias.
//       C % groups ≠ 0: argument_error. Channel dimension 0..N−2.
//   instancenorm(x, scale, bias, training, σ = identity, epsilon, channel_dim = {})
//                                                                           → instancenorm_result
//   instancenorm(x, scale, bias, running_mean, running_var, training, σ, momentum, epsilon,
//                channel_dim = {}, running_variance = unbiased)
//       Statistics per (channel, sample) over the spatial dims (all but the channel and batch
//       dimensions); x rank ≥ 3 (else shape_error). Channel dimension 0..N−2.
//       training with running stats: the per-instance means and variances averaged over the
//       batch update the running stats as above, with n = prod(spatial) (n < 2 throws).
//       inference with running stats: normalize with them.
//   layernorm(x, scale, bias, σ = identity, dims = leading_dims{}, epsilon)   → layernorm_result
//       Statistics over the dims in `dims`, one group per index of the remaining dims;
//       `dims`: lux::leading_dims{k} (Julia's 1:k; k = N is Lux's dims = Colon(), the whole
//       array; the default leading_dims{} is LuxLib's 1:N−1), lux::dim_set{d, ...} (any set of
//       0-based dims, like Lux's `dims` tuple or inox's `axis` sequence; lux::all_dims is the
//       whole array, Lux's Colon(); a set that is not a
//       leading range costs one permuted copy of x, y and the parameters each way), or
//       lux::none: inferred from the scale's rank M as k = N − M (LuxLib's `dims = nothing`;
//       scale lux::none then throws argument_error). scale and bias broadcast against x as in
//       Julia: rank ≤ N, every size 1 or equal to x's.
//
// Saved state and backward. Every forward returns `saved` (mean and inverse std per statistics
// group, and whether they were batch statistics). The backward functions take the output
// gradient dy, x, the forward output y (needed only when activation_traits<σ>::uses_output and σ
// is not the identity; pass lux::none otherwise), the same scale/bias, and `saved`; they return
// {dx, dscale, dbias} (dscale/dbias empty for an absent scale/bias, shaped like scale/bias
// otherwise). Each runs one pass computing Σdz and Σdz·x̂ per group/channel and one pass writing
// dx. With batch statistics dx = γ/√(σ²+ε)·(dz − mean(dz) − x̂·mean(dz·x̂)); with running
// statistics they are constants and dx = dz·γ/√(σ²+ε). Running statistics get no gradient.
//
// Statistics group layouts of saved.mean / saved.inv_std: batchnorm c; groupnorm g + G·b;
// instancenorm c + C·b (running statistics are expanded to that layout); layernorm the linear
// index over the non-normalized dims. The backward functions take the forward's channel_dim
// (layernorm_backward its dims).
//
// Modes: every function has an overload taking lux::generic_op{} / lux::looped_op{} first.
// float and double contiguous tensors pick looped_op; anything else (long double, strided
// views, which must still be contiguous) generic_op. No CUDA implementation yet.
//
// Accuracy (measured by tests/kernels/test_normalization.cpp): float results agree with a
// float64 reference to ≲ 1e-5 relative to max|y| on N(0,1) data, and x = 1e4 + N(0,1) in
// float normalizes to within 1e-3 absolute (the stability test): statistics are computed by a
// shifted two-pass / Chan-merge method, never E[x²] − E[x]². The absolute error of an output is
// about ½ ulp(μ)·|γ|/√(σ²+ε) plus a few ulp of |y|. In float, |x − μ| must stay below about
// 1.8e19/√n so that Σ(x − μ)² does not overflow.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/normalization/detail.hpp"
#include "lux/kernels/normalization/types.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// batchnorm
// =================================================================================================

/// Batch normalization with the mode given first (lux::generic_op{} / lux::looped_op{}).
template <operation_mode Mode, array X, optional_array Scale, optional_array Bias,
          optional_array RM, optional_array RV, activation_function F = identity>
batchnorm_result<norm_value_t<X>, detail::norm::rank_of<X>> batchnorm(
    Mode mode, const X& x, const Scale& scale, const Bias& bias, const RM& running_mean,
    const RV& running_var, bool training, F sigma = {},
    norm_value_t<X> momentum = norm_value_t<X>(0.1),
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {},
    running_variance estimator = running_variance::unbiased) {
  constexpr std::size_t N = detail::norm::rank_of<X>;
  static_assert(detail::norm::cpu_mode<Mode>, "lux::batchnorm: no CUDA implementation yet");
  static_assert(N >= 2, "lux::batchnorm: x needs at least 2 dimensions (..., channels, batch)");
  namespace dn = detail::norm;
  constexpr const char* op = "batchnorm";
  const impl::norm_layout L = dn::batch_layout(as_view(x).shape(), cd, op);
  return dn::run_with_running_stats(mode, L, x, scale, bias, running_mean, running_var, training,
                                    sigma, momentum, epsilon, L.S * L.B, estimator, op);
}

/// Batch normalization (LuxLib's batchnorm); the mode is picked from the argument types.
template <array X, optional_array Scale, optional_array Bias, optional_array RM, optional_array RV,
          activation_function F = identity>
batchnorm_result<norm_value_t<X>, detail::norm::rank_of<X>> batchnorm(
    const X& x, const Scale& scale, const Bias& bias, const RM& running_mean, const RV& running_var,
    bool training, F sigma = {}, norm_value_t<X> momentum = norm_value_t<X>(0.1),
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {},
    running_variance estimator = running_variance::unbiased) {
  return batchnorm(operation_mode_t<X, Scale, Bias, RM, RV>{}, x, scale, bias, running_mean,
                   running_var, training, sigma, momentum, epsilon, cd, estimator);
}

/// Gradients of batchnorm with respect to x, scale and bias (mode first).
template <operation_mode Mode, array DY, array X, optional_array Y, optional_array Scale,
          optional_array Bias, activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> batchnorm_backward(
    Mode mode, const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
    const normalization_saved<norm_value_t<X>>& saved, F sigma = {}, channel_dim cd = {}) {
  static_assert(detail::norm::cpu_mode<Mode>, "lux::batchnorm_backward: no CUDA implementation");
  static_assert(detail::norm::rank_of<X> >= 2, "lux::batchnorm_backward: x needs rank >= 2");
  constexpr const char* op = "batchnorm_backward";
  const impl::norm_layout L = detail::norm::batch_layout(as_view(x).shape(), cd, op);
  return detail::norm::channel_backward(mode, L, dy, x, y, scale, bias, saved, sigma, op);
}

/// Gradients of batchnorm with respect to x, scale and bias.
template <array DY, array X, optional_array Y, optional_array Scale, optional_array Bias,
          activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> batchnorm_backward(
    const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
    const normalization_saved<norm_value_t<X>>& saved, F sigma = {}, channel_dim cd = {}) {
  return batchnorm_backward(operation_mode_t<DY, X, Y, Scale, Bias>{}, dy, x, y, scale, bias, saved,
                            sigma, cd);
}

// =================================================================================================
// groupnorm
// =================================================================================================

namespace detail::norm {
template <std::size_t N>
impl::norm_layout group_layout(const shape_t<N>& xs, index_t groups, channel_dim cd,
                               const char* op) {
  impl::norm_layout L = channel_layout(xs, cd, N - 2, op);
  require<argument_error>(groups >= 1, op, ": groups must be >= 1, got ", groups);
  require<argument_error>(L.C % groups == 0, op, ": the number of channels ", L.C,
                          " is not divisible by groups = ", groups, " (x ", xs, ")");
  L.group_channels = std::max<index_t>(L.C / groups, 1);  // C = 0: no groups, no division by 0
  return L;
}
}  // namespace detail::norm

/// Group normalization with the mode given first.
template <operation_mode Mode, array X, optional_array Scale, optional_array Bias,
          activation_function F = identity>
groupnorm_result<norm_value_t<X>, detail::norm::rank_of<X>> groupnorm(
    Mode mode, const X& x, const Scale& scale, const Bias& bias, index_t groups, F sigma = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {}) {
  using T = norm_value_t<X>;
  static_assert(detail::norm::cpu_mode<Mode>, "lux::groupnorm: no CUDA implementation yet");
  static_assert(detail::norm::rank_of<X> >= 2,
                "lux::groupnorm: x needs at least 2 dimensions (..., channels, batch)");
  namespace dn = detail::norm;
  constexpr const char* op = "groupnorm";
  const auto xs = as_view(x).shape();
  const impl::norm_layout L = dn::group_layout(xs, groups, cd, op);
  dn::check_channel_vector(scale, L.C, op, "scale", xs);
  dn::check_channel_vector(bias, L.C, op, "bias", xs);
  dn::check_epsilon(epsilon, op);
  groupnorm_result<T, detail::norm::rank_of<X>> r;
  r.y = decltype(r.y)::uninitialized(xs, op);
  Tensor<T, 1> var;
  dn::forward(
      mode, L, dn::data_of<T>(x, op, "x"),
      impl::norm_affine<T>{dn::data_of<T>(scale, op, "scale"), dn::data_of<T>(bias, op, "bias")},
      sigma, epsilon, r.y, r.saved, var);
  return r;
}

/// Group normalization (LuxLib's groupnorm); the mode is picked from the argument types.
template <array X, optional_array Scale, optional_array Bias, activation_function F = identity>
groupnorm_result<norm_value_t<X>, detail::norm::rank_of<X>> groupnorm(
    const X& x, const Scale& scale, const Bias& bias, index_t groups, F sigma = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {}) {
  return groupnorm(operation_mode_t<X, Scale, Bias>{}, x, scale, bias, groups, sigma, epsilon, cd);
}

/// Gradients of groupnorm (mode first).
template <operation_mode Mode, array DY, array X, optional_array Y, optional_array Scale,
          optional_array Bias, activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> groupnorm_backward(
    Mode mode, const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
    index_t groups, const normalization_saved<norm_value_t<X>>& saved, F sigma = {},
    channel_dim cd = {}) {
  static_assert(detail::norm::cpu_mode<Mode>, "lux::groupnorm_backward: no CUDA implementation");
  static_assert(detail::norm::rank_of<X> >= 2, "lux::groupnorm_backward: x needs rank >= 2");
  constexpr const char* op = "groupnorm_backward";
  const impl::norm_layout L = detail::norm::group_layout(as_view(x).shape(), groups, cd, op);
  return detail::norm::channel_backward(mode, L, dy, x, y, scale, bias, saved, sigma, op);
}

/// Gradients of groupnorm with respect to x, scale and bias.
template <array DY, array X, optional_array Y, optional_array Scale, optional_array Bias,
          activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> groupnorm_backward(
    const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias, index_t groups,
    const normalization_saved<norm_value_t<X>>& saved, F sigma = {}, channel_dim cd = {}) {
  return groupnorm_backward(operation_mode_t<DY, X, Y, Scale, Bias>{}, dy, x, y, scale, bias,
                            groups, saved, sigma, cd);
}

// =================================================================================================
// instancenorm
// =================================================================================================

namespace detail::norm {
template <std::size_t N>
impl::norm_layout instance_layout(const shape_t<N>& xs, channel_dim cd, const char* op) {
  require<shape_error>(N >= 3, op,
                       ": x must have at least 3 dimensions (spatial..., channels, batch), got "
                       "shape ",
                       xs);
  // group_channels = 1: one group per (channel, sample)
  return channel_layout(xs, cd, N - 2, op);
}
}  // namespace detail::norm

/// Instance normalization with running statistics, mode first.
template <operation_mode Mode, array X, optional_array Scale, optional_array Bias,
          optional_array RM, optional_array RV, activation_function F = identity>
instancenorm_result<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm(
    Mode mode, const X& x, const Scale& scale, const Bias& bias, const RM& running_mean,
    const RV& running_var, bool training, F sigma = {},
    norm_value_t<X> momentum = norm_value_t<X>(0.1),
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {},
    running_variance estimator = running_variance::unbiased) {
  static_assert(detail::norm::cpu_mode<Mode>, "lux::instancenorm: no CUDA implementation yet");
  static_assert(detail::norm::rank_of<X> >= 2, "lux::instancenorm: x needs rank >= 3");
  namespace dn = detail::norm;
  constexpr const char* op = "instancenorm";
  const auto xs = as_view(x).shape();
  const impl::norm_layout L = dn::instance_layout(xs, cd, op);
  return dn::run_with_running_stats(mode, L, x, scale, bias, running_mean, running_var, training,
                                    sigma, momentum, epsilon, L.S * L.M, estimator, op);
}

/// Instance normalization with running statistics (LuxLib's second instancenorm form).
template <array X, optional_array Scale, optional_array Bias, optional_array RM, optional_array RV,
          activation_function F = identity>
instancenorm_result<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm(
    const X& x, const Scale& scale, const Bias& bias, const RM& running_mean, const RV& running_var,
    bool training, F sigma = {}, norm_value_t<X> momentum = norm_value_t<X>(0.1),
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {},
    running_variance estimator = running_variance::unbiased) {
  return instancenorm(operation_mode_t<X, Scale, Bias, RM, RV>{}, x, scale, bias, running_mean,
                      running_var, training, sigma, momentum, epsilon, cd, estimator);
}

/// Instance normalization without running statistics (instance statistics in both modes),
/// mode first.
template <operation_mode Mode, array X, optional_array Scale, optional_array Bias,
          activation_function F = identity>
instancenorm_result<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm(
    Mode mode, const X& x, const Scale& scale, const Bias& bias, bool training, F sigma = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {}) {
  return instancenorm(mode, x, scale, bias, none, none, training, sigma, norm_value_t<X>(0.1),
                      epsilon, cd);
}

/// Instance normalization without running statistics (LuxLib's first instancenorm form).
template <array X, optional_array Scale, optional_array Bias, activation_function F = identity>
instancenorm_result<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm(
    const X& x, const Scale& scale, const Bias& bias, bool training, F sigma = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>(), channel_dim cd = {}) {
  return instancenorm(operation_mode_t<X, Scale, Bias>{}, x, scale, bias, none, none, training,
                      sigma, norm_value_t<X>(0.1), epsilon, cd);
}

/// Gradients of instancenorm (mode first).
template <operation_mode Mode, array DY, array X, optional_array Y, optional_array Scale,
          optional_array Bias, activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm_backward(
    Mode mode, const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
    const normalization_saved<norm_value_t<X>>& saved, F sigma = {}, channel_dim cd = {}) {
  static_assert(detail::norm::cpu_mode<Mode>, "lux::instancenorm_backward: no CUDA implementation");
  constexpr const char* op = "instancenorm_backward";
  const impl::norm_layout L = detail::norm::instance_layout(as_view(x).shape(), cd, op);
  return detail::norm::channel_backward(mode, L, dy, x, y, scale, bias, saved, sigma, op);
}

/// Gradients of instancenorm with respect to x, scale and bias.
template <array DY, array X, optional_array Y, optional_array Scale, optional_array Bias,
          activation_function F = identity>
normalization_gradients<norm_value_t<X>, detail::norm::rank_of<X>> instancenorm_backward(
    const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
    const normalization_saved<norm_value_t<X>>& saved, F sigma = {}, channel_dim cd = {}) {
  return instancenorm_backward(operation_mode_t<DY, X, Y, Scale, Bias>{}, dy, x, y, scale, bias,
                               saved, sigma, cd);
}

// =================================================================================================
// layernorm
// =================================================================================================

/// Layer normalization with the mode given first.
template <operation_mode Mode, array X, optional_array Scale, optional_array Bias,
          activation_function F = identity, class Dims = leading_dims>
layernorm_result<norm_value_t<X>, detail::norm::rank_of<X>> layernorm(
    Mode mode, const X& x, const Scale& scale, const Bias& bias, F sigma = {}, Dims dims = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>()) {
  using T = norm_value_t<X>;
  static_assert(detail::norm::cpu_mode<Mode>, "lux::layernorm: no CUDA implementation yet");
  namespace dn = detail::norm;
  constexpr const char* op = "layernorm";
  if constexpr (std::is_same_v<Dims, dim_set> || std::is_same_v<Dims, all_dims_t>) {
    const auto xs = as_view(x).shape();
    const auto pm = dn::permutation_of(dim_set(dims), xs, op);
    if (pm.identity)
      return layernorm(mode, x, scale, bias, sigma, leading_dims{pm.leading}, epsilon);
    dn::check_broadcast(scale, xs, op, "scale");
    dn::check_broadcast(bias, xs, op, "bias");
    auto r = layernorm(mode, dn::permuted_copy(x, pm), dn::permuted_copy(scale, pm),
                       dn::permuted_copy(bias, pm), sigma, leading_dims{pm.leading}, epsilon);
    r.y = dn::unpermuted<dn::rank_of<X>>(r.y, pm);
    return r;
  } else {
    const auto p = dn::plan_layernorm<T>(x, scale, bias, dims, op);
    dn::check_epsilon(epsilon, op);
    layernorm_result<T, dn::rank_of<X>> r;
    r.y = decltype(r.y)::uninitialized(as_view(x).shape(), op);
    Tensor<T, 1> var;
    dn::forward(mode, p.layout, dn::data_of<T>(x, op, "x"), p.aff, sigma, epsilon, r.y, r.saved,
                var);
    return r;
  }
}

/// Layer normalization (LuxLib's layernorm); the mode is picked from the argument types.
template <array X, optional_array Scale, optional_array Bias, activation_function F = identity,
          class Dims = leading_dims>
layernorm_result<norm_value_t<X>, detail::norm::rank_of<X>> layernorm(
    const X& x, const Scale& scale, const Bias& bias, F sigma = {}, Dims dims = {},
    norm_value_t<X> epsilon = default_norm_epsilon<norm_value_t<X>>()) {
  return layernorm(operation_mode_t<X, Scale, Bias>{}, x, scale, bias, sigma, dims, epsilon);
}

/// Gradients of layernorm (mode first); dscale/dbias have the shapes of scale/bias.
template <operation_mode Mode, array DY, array X, optional_array Y, optional_array Scale,
          optional_array Bias, activation_function F = identity, class Dims = leading_dims>
auto layernorm_backward(Mode mode, const DY& dy, const X& x, const Y& y, const Scale& scale,
                        const Bias& bias, const normalization_saved<norm_value_t<X>>& saved,
                        F sigma = {}, Dims dims = {}) {
  using T = norm_value_t<X>;
  namespace dn = detail::norm;
  constexpr std::size_t N = dn::rank_of<X>;
  constexpr std::size_t MS = is_absent_v<Scale> ? 1 : dn::rank_of<Scale>;
  constexpr std::size_t MB = is_absent_v<Bias> ? 1 : dn::rank_of<Bias>;
  static_assert(dn::cpu_mode<Mode>, "lux::layernorm_backward: no CUDA implementation yet");
  static_assert(dn::has_needed_output<F, Y>,
                "lux::layernorm_backward: this activation's derivative is computed from the "
                "forward output (activation_traits<F>::uses_output); pass y, not lux::none");
  constexpr const char* op = "layernorm_backward";
  const auto xs = as_view(x).shape();
  dn::check_same_shape(dy, xs, op, "dy");
  dn::check_same_shape(y, xs, op, "y");
  if constexpr (std::is_same_v<Dims, dim_set> || std::is_same_v<Dims, all_dims_t>) {
    const auto pm = dn::permutation_of(dim_set(dims), xs, op);
    if (pm.identity)
      return layernorm_backward(mode, dy, x, y, scale, bias, saved, sigma,
                                leading_dims{pm.leading});
    auto gp =
        layernorm_backward(mode, dn::permuted_copy(dy, pm), dn::permuted_copy(x, pm),
                           dn::permuted_copy(y, pm), dn::permuted_copy(scale, pm),
                           dn::permuted_copy(bias, pm), saved, sigma, leading_dims{pm.leading});
    normalization_gradients<T, N, MS, MB> g;
    g.dx = dn::unpermuted<N>(gp.dx, pm);
    if constexpr (!is_absent_v<Scale>) g.dscale = dn::unpermuted<MS>(gp.dscale, pm);
    if constexpr (!is_absent_v<Bias>) g.dbias = dn::unpermuted<MB>(gp.dbias, pm);
    return g;
  } else {
    const auto p = dn::plan_layernorm<T>(x, scale, bias, dims, op);
    const index_t G = p.layout.num_groups();
    require<shape_error>(saved.mean.numel() == G && saved.inv_std.numel() == G, op,
                         ": saved statistics have ", saved.mean.numel(), " and ",
                         saved.inv_std.numel(), " entries, expected ", G, " for x ", xs);
    normalization_gradients<T, N, MS, MB> g;
    g.dx = Tensor<T, N>::uninitialized(xs, op);
    Tensor<T, 1> dg, db;
    dn::backward(mode, p.layout, dn::data_of<T>(dy, op, "dy"), dn::data_of<T>(x, op, "x"),
                 dn::data_of<T>(y, op, "y"), p.aff, sigma, saved, g.dx, dg, db);
    if constexpr (!is_absent_v<Scale>)
      g.dscale = dn::reduce_to_param<T, MS>(std::move(dg), p, p.scale_shape, p.expand_scale);
    if constexpr (!is_absent_v<Bias>)
      g.dbias = dn::reduce_to_param<T, MB>(std::move(db), p, p.bias_shape, p.expand_bias);
    return g;
  }
}

/// Gradients of layernorm with respect to x, scale and bias.
template <array DY, array X, optional_array Y, optional_array Scale, optional_array Bias,
          activation_function F = identity, class Dims = leading_dims>
auto layernorm_backward(const DY& dy, const X& x, const Y& y, const Scale& scale, const Bias& bias,
                        const normalization_saved<norm_value_t<X>>& saved, F sigma = {},
                        Dims dims = {}) {
  return layernorm_backward(operation_mode_t<DY, X, Y, Scale, Bias>{}, dy, x, y, scale, bias, saved,
                            sigma, dims);
}

LUX_NAMESPACE_END
