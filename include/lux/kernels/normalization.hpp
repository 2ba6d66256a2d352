// luxcpp — LuxLib's normalizations: batchnorm, groupnorm, instancenorm, layernorm, with their
// backward passes. One header for the four (they share one engine: ./generic/normalization.hpp,
// ./looped/normalization.hpp); <lux/kernels/batchnorm.hpp> etc. do not exist.
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

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/normalization.hpp"
#include "lux/kernels/looped/normalization.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Type aliases, results and options
// =================================================================================================

/// Element type of an array argument.
template <class X>
using norm_value_t = typename array_traits<std::remove_cvref_t<X>>::value_type;

/// An array argument or an absent one (lux::none).
template <class A>
concept optional_array = array<A> || is_absent_v<A>;

/// LuxLib's default ε = eps(T)^(5/7): float ≈ 1.1337e-5, double ≈ 6.590e-12.
template <class T>
T default_norm_epsilon() {
  using std::pow;
  return static_cast<T>(pow(std::numeric_limits<T>::epsilon(), T(5) / T(7)));
}

/// What a backward pass needs from its forward: per statistics group (layouts above).
template <class T>
struct normalization_saved {
  Tensor<T, 1> mean;     ///< μ used to normalize
  Tensor<T, 1> inv_std;  ///< 1/√(σ² + ε) used to normalize
  /// true: μ, σ² are statistics of x (gradients flow through them); false: running statistics.
  bool batch_statistics = true;
};

/// batchnorm / instancenorm: LuxLib's (y, (; running_mean, running_var)) plus the saved state.
/// running_mean/running_var are empty when the running statistics were lux::none.
template <class T, std::size_t N>
struct batchnorm_result {
  Tensor<T, N> y;
  Tensor<T, 1> running_mean;
  Tensor<T, 1> running_var;
  normalization_saved<T> saved;
};
template <class T, std::size_t N>
using instancenorm_result = batchnorm_result<T, N>;

/// groupnorm / layernorm: y plus the saved state.
template <class T, std::size_t N>
struct groupnorm_result {
  Tensor<T, N> y;
  normalization_saved<T> saved;
};
template <class T, std::size_t N>
using layernorm_result = groupnorm_result<T, N>;

/// Gradients of a normalization: dx like x, dscale/dbias like scale/bias (empty if absent).
template <class T, std::size_t N, std::size_t MS = 1, std::size_t MB = MS>
struct normalization_gradients {
  Tensor<T, N> dx;
  Tensor<T, MS> dscale;
  Tensor<T, MB> dbias;
};

/// The channel dimension of batchnorm, groupnorm and instancenorm, 0-based. −1 (the default) is
/// Lux's: the penultimate dimension N−2 (Julia's N−1). The batch is always the last dimension;
/// batchnorm allows any dimension (its statistics span all others), groupnorm and instancenorm
/// 0..N−2. channel_dim{0} is the channels-first order, i.e. channels-last memory (PyTorch's
/// channels_last, JAX's/inox's default (N, *, C)).
struct channel_dim {
  index_t index = -1;
};

/// How batchnorm and instancenorm fold the batch variance σ² into running_var: Lux and PyTorch
/// use the unbiased n/(n − 1)·σ²; JAX libraries (inox, Flax) the biased σ².
enum class running_variance { unbiased, biased };

/// The dimensions a layernorm normalizes over: the leading `count` ones (Julia's 1:count).
/// count = −1 (the default) means all but the last, LuxLib's default 1:N−1; count = N is the
/// whole array (Lux's LayerNorm default dims = Colon()).
struct leading_dims {
  index_t count = -1;
};

namespace detail::norm {

// =================================================================================================
// Argument checks and plumbing shared by the four kernels
// =================================================================================================

template <class A>
struct rank_of_t : std::integral_constant<std::size_t, 0> {};
template <array A>
struct rank_of_t<A>
    : std::integral_constant<std::size_t, array_traits<std::remove_cvref_t<A>>::rank> {};
/// Rank of an array argument (0 for lux::none).
template <class A>
inline constexpr std::size_t rank_of = rank_of_t<A>::value;

/// Contiguous data pointer of an array argument, nullptr for lux::none.
template <class T, class A>
const T* data_of(const A& a, const char* op, const char* name) {
  if constexpr (is_absent_v<A>) {
    return nullptr;
  } else {
    static_assert(std::is_same_v<norm_value_t<A>, T>,
                  "lux normalization: scale, bias, running statistics, dy and y must have the "
                  "element type of x");
    const auto v = as_view(a);
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got shape ",
                         v.shape(), " with strides ", v.strides());
    return v.data();
  }
}

/// A per-channel vector (scale, bias, running statistics) must have length C.
template <class A, std::size_t N>
void check_channel_vector(const A& a, index_t C, const char* op, const char* name,
                          const shape_t<N>& xshape) {
  if constexpr (!is_absent_v<A>) {
    static_assert(rank_of<A> == 1,
                  "lux batchnorm/groupnorm/instancenorm: scale, bias and the running "
                  "statistics must be vectors (rank-1 tensors) or lux::none");
    require<shape_error>(a.size(0) == C, op, ": ", name, " has shape ", as_view(a).shape(),
                         ", expected (", C, ") to match x ", xshape);
  }
}

/// dy and y (when given) must have x's shape.
template <class A, std::size_t N>
void check_same_shape(const A& a, const shape_t<N>& xshape, const char* op, const char* name) {
  if constexpr (!is_absent_v<A>) {
    static_assert(rank_of<A> == N, "lux normalization backward: dy and y must have x's rank");
    require<shape_error>(as_view(a).shape() == xshape, op, ": ", name, " has shape ",
                         as_view(a).shape(), ", expected x's shape ", xshape);
  }
}

template <class T>
void check_epsilon(T epsilon, const char* op) {
  require<argument_error>(epsilon >= T(0) && epsilon < std::numeric_limits<T>::infinity(), op,
                          ": epsilon must be finite and >= 0, got ", epsilon);
}
template <class T>
void check_momentum(T momentum, const char* op) {
  require<argument_error>(momentum >= T(0) && momentum <= T(1), op,
                          ": momentum must be in [0, 1], got ", momentum);
}

template <class Mode>
inline constexpr bool cpu_mode = std::is_base_of_v<generic_op, Mode>;

/// Compile-time checks every backward shares: y is needed for output-based derivatives.
template <class F, class Y>
inline constexpr bool has_needed_output =
    !(activation_traits<F>::uses_output && !activation_traits<F>::is_identity && is_absent_v<Y>);

/// (S, C, M, B) of x with the channels at dimension `cd` (−1: N−2) and the batch last: S and M
/// the products of the dimensions before and strictly between them. `max_dim` is the largest
/// channel dimension the kernel allows (N−2, or N−1 for batchnorm, where B is then 1).
template <std::size_t N>
impl::norm_layout channel_layout(const shape_t<N>& s, channel_dim cd, std::size_t max_dim,
                                 const char* op) {
  const index_t k = cd.index == -1 ? static_cast<index_t>(N) - 2 : cd.index;
  require<argument_error>(k >= 0 && k <= static_cast<index_t>(max_dim), op, ": channel_dim ",
                          cd.index, " out of range for x of shape ", s, " (expected -1 or 0..",
                          max_dim, ")");
  // Products of x's sizes cannot overflow: a tensor's shape has a representable element count.
  const auto ck = static_cast<std::size_t>(std::min<index_t>(k, static_cast<index_t>(N) - 1));
  impl::norm_layout L;
  L.S = 1;
  L.M = 1;
  for (std::size_t d = 0; d < ck; ++d) L.S *= s[d];
  L.C = s[ck];
  for (std::size_t d = ck + 1; d + 1 < N; ++d) L.M *= s[d];
  L.B = ck + 1 < N ? s[N - 1] : 1;
  return L;
}

/// batchnorm's layout: one group per channel over every other dimension.
template <std::size_t N>
impl::norm_layout batch_layout(const shape_t<N>& s, channel_dim cd, const char* op) {
  impl::norm_layout L = channel_layout(s, cd, N - 1, op);
  L.B *= L.M;  // the runs after the channel dimension are all samples of the channel's group
  L.M = 1;
  L.across_batch = true;
  return L;
}

/// Fills the saved state and y: batch statistics (saved.batch_statistics) or the given
/// saved.mean/inv_std. `var` receives the biased variances of batch statistics.
template <class Mode, class T, std::size_t N, class F>
void forward(Mode mode, const impl::norm_layout& L, const T* x, impl::norm_affine<T> aff,
             const F& sigma, T epsilon, Tensor<T, N>& y, normalization_saved<T>& saved,
             Tensor<T, 1>& var) {
  if (saved.batch_statistics) {
    const shape_t<1> G{L.num_groups()};
    saved.mean = Tensor<T, 1>::uninitialized(G);
    saved.inv_std = Tensor<T, 1>::uninitialized(G);
    var = Tensor<T, 1>::uninitialized(G);
    if (L.numel() == 0) {  // mean of nothing: NaN, as in Julia
      saved.mean.fill(std::numeric_limits<T>::quiet_NaN());
      saved.inv_std.fill(std::numeric_limits<T>::quiet_NaN());
      var.fill(std::numeric_limits<T>::quiet_NaN());
      return;
    }
    normalization_forward(mode, L, x, y.data(), aff, sigma, epsilon, saved.mean.data(), var.data(),
                          saved.inv_std.data());
  } else if (L.numel() > 0) {
    normalization_apply(mode, L, x, y.data(), aff, sigma, saved.mean.data(), saved.inv_std.data());
  }
}

/// Saved state from running statistics, expanded to `samples` copies (c + C·b layout).
template <class T>
void saved_from_running(const T* rm, const T* rv, index_t C, index_t samples, T epsilon,
                        normalization_saved<T>& saved) {
  using std::sqrt;
  saved.batch_statistics = false;
  saved.mean = Tensor<T, 1>::uninitialized(shape_t<1>{C * samples});
  saved.inv_std = Tensor<T, 1>::uninitialized(shape_t<1>{C * samples});
  for (index_t b = 0; b < samples; ++b)
    for (index_t c = 0; c < C; ++c) {
      saved.mean[c + C * b] = rm[c];
      saved.inv_std[c + C * b] = T(1) / sqrt(rv[c] + epsilon);
    }
}

/// Copy of a per-channel vector argument (empty for lux::none).
template <class T, class A>
Tensor<T, 1> copy_or_empty(const A& a) {
  if constexpr (is_absent_v<A>)
    return {};
  else
    return copy(as_view(a));
}

/// batchnorm and instancenorm: argument checks, statistics, output, running statistics.
template <class Mode, class X, class Scale, class Bias, class F, class RM, class RV,
          class T = norm_value_t<X>, std::size_t N = rank_of<X>>
batchnorm_result<T, N> run_with_running_stats(Mode mode, const impl::norm_layout& L, const X& xa,
                                              const Scale& scale, const Bias& bias,
                                              const RM& running_mean, const RV& running_var,
                                              bool training, const F& sigma, T momentum, T epsilon,
                                              index_t stat_count, running_variance estimator,
                                              const char* op) {
  static_assert(is_absent_v<RM> == is_absent_v<RV>,
                "lux batchnorm/instancenorm: running_mean and running_var must both be given "
                "or both be lux::none");
  constexpr bool has_running = !is_absent_v<RM>;
  const shape_t<N> xshape = as_view(xa).shape();
  check_channel_vector(scale, L.C, op, "scale", xshape);
  check_channel_vector(bias, L.C, op, "bias", xshape);
  check_channel_vector(running_mean, L.C, op, "running_mean", xshape);
  check_channel_vector(running_var, L.C, op, "running_var", xshape);
  check_epsilon(epsilon, op);
  check_momentum(momentum, op);
  const impl::norm_affine<T> aff{data_of<T>(scale, op, "scale"), data_of<T>(bias, op, "bias")};
  const T* x = data_of<T>(xa, op, "x");
  const T* rm = data_of<T>(running_mean, op, "running_mean");
  const T* rv = data_of<T>(running_var, op, "running_var");
  const bool unbiased = estimator == running_variance::unbiased;
  if (has_running && training && unbiased)
    require<argument_error>(stat_count >= 2, op,
                            ": updating the running variance with n/(n - 1) needs more than one "
                            "value per statistic, got x ",
                            xshape, " (n = ", stat_count, ")");
  if (has_running && training && !unbiased)
    require<argument_error>(stat_count >= 1, op,
                            ": updating the running statistics needs at least one value per "
                            "statistic, got x ",
                            xshape);
  const index_t samples = L.across_batch ? 1 : L.B;
  if (has_running && training)  // instancenorm averages the per-sample statistics
    require<argument_error>(samples >= 1, op,
                            ": updating the running statistics needs at least one sample, got x ",
                            xshape);
  batchnorm_result<T, N> r;
  r.y = Tensor<T, N>::uninitialized(xshape, op);
  Tensor<T, 1> var;
  if (has_running && !training) saved_from_running(rm, rv, L.C, samples, epsilon, r.saved);
  forward(mode, L, x, aff, sigma, epsilon, r.y, r.saved, var);
  if constexpr (has_running) {
    if (training) {
      r.running_mean = Tensor<T, 1>::uninitialized(shape_t<1>{L.C}, op);
      r.running_var = Tensor<T, 1>::uninitialized(shape_t<1>{L.C}, op);
      const T n = static_cast<T>(stat_count);
      impl::update_running_statistics(L.C, samples, r.saved.mean.data(), var.data(),
                                      unbiased ? n / (n - T(1)) : T(1), momentum, rm, rv,
                                      r.running_mean.data(), r.running_var.data());
    } else {
      r.running_mean = copy_or_empty<T>(running_mean);
      r.running_var = copy_or_empty<T>(running_var);
    }
  }
  return r;
}

/// The engine's backward into fresh tensors; dscale_c/dbias_c are in the engine's (canonical)
/// scale/bias layout of L.affine_size() elements and empty when that parameter is absent.
template <class Mode, class T, std::size_t N, class F>
void backward(Mode mode, const impl::norm_layout& L, const T* dy, const T* x, const T* y,
              impl::norm_affine<T> aff, const F& sigma, const normalization_saved<T>& saved,
              Tensor<T, N>& dx, Tensor<T, 1>& dscale_c, Tensor<T, 1>& dbias_c) {
  const bool affine = aff.scale || aff.bias;
  Tensor<T, 1> dg(shape_t<1>{affine ? L.affine_size() : 0});
  Tensor<T, 1> db(shape_t<1>{affine ? L.affine_size() : 0});
  if (L.numel() > 0)
    normalization_backward(mode, L, dy, x, y, aff, sigma, saved.mean.data(), saved.inv_std.data(),
                           saved.batch_statistics, dx.data(), affine, dg.data(), db.data());
  if (aff.scale) dscale_c = std::move(dg);
  if (aff.bias) dbias_c = std::move(db);
}

/// Backward of the per-channel kernels (batchnorm, groupnorm, instancenorm).
template <class Mode, class DY, class X, class Y, class Scale, class Bias, class F>
normalization_gradients<norm_value_t<X>, rank_of<X>> channel_backward(
    Mode mode, impl::norm_layout L, const DY& dy, const X& x, const Y& y, const Scale& scale,
    const Bias& bias, const normalization_saved<norm_value_t<X>>& saved, const F& sigma,
    const char* op) {
  using T = norm_value_t<X>;
  constexpr std::size_t N = rank_of<X>;
  static_assert(has_needed_output<F, Y>,
                "lux normalization backward: this activation's derivative is computed from the "
                "forward output (activation_traits<F>::uses_output); pass y, not lux::none");
  const auto xs = as_view(x).shape();
  check_same_shape(dy, xs, op, "dy");
  check_same_shape(y, xs, op, "y");
  check_channel_vector(scale, L.C, op, "scale", xs);
  check_channel_vector(bias, L.C, op, "bias", xs);
  const index_t G = L.num_groups();
  require<shape_error>(saved.mean.numel() == G && saved.inv_std.numel() == G, op,
                       ": saved statistics have ", saved.mean.numel(), " and ",
                       saved.inv_std.numel(), " entries, expected ", G, " for x ", xs);
  normalization_gradients<T, N> g;
  g.dx = Tensor<T, N>::uninitialized(xs, op);
  const impl::norm_affine<T> aff{data_of<T>(scale, op, "scale"), data_of<T>(bias, op, "bias")};
  backward(mode, L, data_of<T>(dy, op, "dy"), data_of<T>(x, op, "x"), data_of<T>(y, op, "y"), aff,
           sigma, saved, g.dx, g.dscale, g.dbias);
  return g;
}

// --- layernorm: dims, broadcasting scale/bias -------------------------------------------------

/// Calls fn(i, p) for every linear index i of `canon` (column-major) and the linear index p of
/// the element of an array of shape `param` (every size 1 or equal) broadcast to it.
template <std::size_t N, class Fn>
void broadcast_walk(const shape_t<N>& canon, const shape_t<N>& param, Fn&& fn) {
  shape_t<N> stride{}, idx{};
  index_t acc = 1, n = 1;
  for (std::size_t d = 0; d < N; ++d) {
    stride[d] = param[d] == 1 ? 0 : acc;
    acc *= param[d];
    n *= canon[d];
  }
  index_t p = 0;
  for (index_t i = 0; i < n; ++i) {
    fn(i, p);
    for (std::size_t d = 0; d < N; ++d) {
      p += stride[d];
      if (++idx[d] < canon[d]) break;
      p -= stride[d] * canon[d];
      idx[d] = 0;
    }
  }
}

/// How layernorm's engine sees x, scale and bias: x as (1, L, T) with one group per column;
/// scale/bias either used in place (their shape is x's leading dims, or x's full shape) or
/// expanded into `owned_*` (any other broadcasting shape).
template <class T, std::size_t N>
struct layernorm_plan {
  impl::norm_layout layout;
  shape_t<N> canon{};  // the canonical scale/bias shape: leading dims of x, or x's shape
  shape_t<N> scale_shape{}, bias_shape{};  // padded to rank N with 1s
  Tensor<T, 1> owned_scale, owned_bias;
  impl::norm_affine<T> aff;
  bool expand_scale = false, expand_bias = false;
};

template <class A, std::size_t N>
shape_t<N> padded_shape(const A& a) {
  shape_t<N> s;
  s.fill(1);
  if constexpr (!is_absent_v<A>)
    for (std::size_t d = 0; d < rank_of<A>; ++d) s[d] = as_view(a).shape()[d];
  return s;
}

template <class T, class X, class Scale, class Bias, class Dims>
layernorm_plan<T, rank_of<X>> plan_layernorm(const X& x, const Scale& scale, const Bias& bias,
                                             const Dims& dims, const char* op) {
  constexpr std::size_t N = rank_of<X>;
  static_assert(std::is_same_v<Dims, leading_dims> || std::is_same_v<Dims, none_t>,
                "lux::layernorm: dims must be lux::leading_dims{k}, lux::dim_set{...} or "
                "lux::none");
  static_assert(is_absent_v<Scale> || rank_of<Scale> <= N,
                "lux::layernorm: scale can not have more dimensions than x");
  static_assert(is_absent_v<Bias> || rank_of<Bias> <= N,
                "lux::layernorm: bias can not have more dimensions than x");
  const shape_t<N> xs = as_view(x).shape();
  index_t k = 0;
  if constexpr (std::is_same_v<Dims, none_t>) {
    require<argument_error>(!is_absent_v<Scale>, op,
                            ": dims = lux::none infers the dims from the scale's rank, but scale "
                            "is lux::none too (x ",
                            xs, ")");
    if constexpr (!is_absent_v<Scale>) k = static_cast<index_t>(N - rank_of<Scale>);
  } else {
    k = dims.count == -1 ? static_cast<index_t>(N) - 1 : dims.count;
    require<argument_error>(k >= 0 && k <= static_cast<index_t>(N), op, ": dims 1:", dims.count,
                            " out of range for x of shape ", xs,
                            " (leading_dims{k} needs 0 <= k <= ", N, ")");
  }
  layernorm_plan<T, N> p;
  p.scale_shape = padded_shape<Scale, N>(scale);
  p.bias_shape = padded_shape<Bias, N>(bias);
  auto check = [&](const shape_t<N>& s, bool present, const char* name) {
    if (!present) return;
    for (std::size_t d = 0; d < N; ++d)
      require<shape_error>(s[d] == 1 || s[d] == xs[d], op, ": ", name, " has shape ", s,
                           " (padded to x's rank), which does not broadcast against x ", xs);
  };
  check(p.scale_shape, !is_absent_v<Scale>, "scale");
  check(p.bias_shape, !is_absent_v<Bias>, "bias");

  index_t Lsz = 1, Tsz = 1;
  shape_t<N> lead;
  lead.fill(1);
  for (std::size_t d = 0; d < N; ++d) {
    if (static_cast<index_t>(d) < k)
      Lsz *= xs[d], lead[d] = xs[d];
    else
      Tsz *= xs[d];
  }
  // A parameter varying along a non-normalized dim needs the full shape; otherwise the leading
  // dims suffice. It is used in place when its shape is exactly the canonical one.
  auto varies_outside = [&](const shape_t<N>& s) {
    for (std::size_t d = static_cast<std::size_t>(k); d < N; ++d)
      if (s[d] > 1) return true;
    return false;
  };
  const bool full = Tsz > 1 && ((!is_absent_v<Scale> && varies_outside(p.scale_shape)) ||
                                (!is_absent_v<Bias> && varies_outside(p.bias_shape)));
  p.canon = full ? xs : lead;
  p.layout.S = 1;
  p.layout.C = Lsz;
  p.layout.B = Tsz;
  p.layout.group_channels = std::max<index_t>(Lsz, 1);
  p.layout.affine_sample_stride = full ? Lsz : 0;
  auto place = [&](const auto& a, const shape_t<N>& s, Tensor<T, 1>& owned, bool& expanded,
                   const char* name) -> const T* {
    const T* ptr = data_of<T>(a, op, name);
    if (!ptr || s == p.canon) return ptr;
    expanded = true;
    index_t n = 1;
    for (auto v : p.canon) n *= v;
    owned = Tensor<T, 1>::uninitialized(shape_t<1>{n}, op);
    broadcast_walk(p.canon, s, [&](index_t i, index_t j) { owned[i] = ptr[j]; });
    return owned.data();
  };
  p.aff.scale = place(scale, p.scale_shape, p.owned_scale, p.expand_scale, "scale");
  p.aff.bias = place(bias, p.bias_shape, p.owned_bias, p.expand_bias, "bias");
  return p;
}

/// A gradient in the canonical layout summed back to the parameter's own shape.
template <class T, std::size_t M, std::size_t N>
Tensor<T, M> reduce_to_param(Tensor<T, 1>&& canon_grad, const layernorm_plan<T, N>& p,
                             const shape_t<N>& param_shape, bool expanded) {
  shape_t<M> out_shape;
  for (std::size_t d = 0; d < M; ++d) out_shape[d] = param_shape[d];
  if (!expanded) {  // the canonical layout is the parameter's own
    auto out = Tensor<T, M>::uninitialized(out_shape);
    std::copy_n(canon_grad.data(), out.numel(), out.data());
    return out;
  }
  Tensor<T, M> out(out_shape);
  broadcast_walk(p.canon, param_shape,
                 [&](index_t i, index_t j) { out.data()[j] += canon_grad[i]; });
  return out;
}

// --- layernorm over an arbitrary set of dimensions ------------------------------------------
// A set that is not a leading range is brought to one by a permutation: the set's dimensions
// first (in order), then the others (in order, so the saved statistics keep the linear index of
// the non-normalized dimensions). x, dy, y and the scale/bias (padded to rank N) are permuted
// copies; y and the gradients are permuted back. This costs one gather and one scatter per
// tensor on top of the kernel; a leading set (the common case, and inox's default axis) costs
// nothing extra.

/// The permutation of a dim_set for rank N: perm[j] = the original dimension at position j.
template <std::size_t N>
struct dims_permutation {
  std::array<std::size_t, N> perm{};
  index_t leading = 0;    ///< the set's size: the permuted tensors normalize their first `leading`
  bool identity = false;  ///< the set already is the leading range 0..leading−1
};

template <std::size_t N>
dims_permutation<N> permutation_of(const dim_set& ds, const shape_t<N>& xs, const char* op) {
  (void)xs;
  detail::check_dim_set<N>(op, ds);
  dims_permutation<N> p;
  std::size_t j = 0;
  for (std::size_t d = 0; d < N; ++d)
    if (ds.contains(d)) p.perm[j++] = d;
  p.leading = static_cast<index_t>(j);
  for (std::size_t d = 0; d < N; ++d)
    if (!ds.contains(d)) p.perm[j++] = d;
  p.identity = true;
  for (std::size_t d = 0; d < N; ++d) p.identity = p.identity && p.perm[d] == d;
  return p;
}

/// Scale or bias (padded to x's rank) must broadcast against x.
template <class A, std::size_t N>
void check_broadcast(const A& a, const shape_t<N>& xs, const char* op, const char* name) {
  if constexpr (!is_absent_v<A>) {
    static_assert(rank_of<A> <= N,
                  "lux::layernorm: scale and bias can not have more dimensions "
                  "than x");
    const shape_t<N> s = padded_shape<A, N>(a);
    for (std::size_t d = 0; d < N; ++d)
      require<shape_error>(s[d] == 1 || s[d] == xs[d], op, ": ", name, " has shape ", s,
                           " (padded to x's rank), which does not broadcast against x ", xs);
  }
}

/// A contiguous copy of `a` (rank ≤ N, padded with trailing 1s to rank N) permuted by p, or
/// lux::none for an absent argument.
template <std::size_t N, class A>
auto permuted_copy(const A& a, const dims_permutation<N>& p) {
  if constexpr (is_absent_v<A>) {
    return none;
  } else {
    using T = norm_value_t<A>;
    const shape_t<N> s = padded_shape<A, N>(a);
    const auto v = as_view(a);
    require<shape_error>(v.is_contiguous(), "layernorm: arguments must be contiguous, got shape ",
                         v.shape(), " with strides ", v.strides());
    const auto st = column_major_strides(s);
    shape_t<N> ps, pst;
    for (std::size_t d = 0; d < N; ++d) ps[d] = s[p.perm[d]], pst[d] = st[p.perm[d]];
    return copy(StridedView<const T, N, cpu>(v.data(), ps, pst));
  }
}

/// The inverse of permuted_copy: `t` (permuted, rank N) back in the original order, reshaped to
/// rank M (the original argument's rank, dropping the padding).
template <std::size_t M, class T, std::size_t N>
Tensor<T, M> unpermuted(const Tensor<T, N>& t, const dims_permutation<N>& p) {
  shape_t<N> s;
  for (std::size_t d = 0; d < N; ++d) s[p.perm[d]] = t.shape()[d];
  auto out = Tensor<T, N>::uninitialized(s);
  const auto st = column_major_strides(s);
  shape_t<N> pst;
  for (std::size_t d = 0; d < N; ++d) pst[d] = st[p.perm[d]];
  copy_into(StridedView<T, N, cpu>(out.data(), t.shape(), pst), t.cview());
  if constexpr (M == N) {
    return out;
  } else {
    shape_t<M> sm;
    for (std::size_t d = 0; d < M; ++d) sm[d] = s[d];
    auto r = Tensor<T, M>::uninitialized(sm);
    std::copy_n(out.data(), out.numel(), r.data());
    return r;
  }
}

}  // namespace detail::norm

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
