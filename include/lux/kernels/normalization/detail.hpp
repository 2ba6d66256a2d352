// luxcpp — what the normalization kernels' front doors (../normalization.hpp) share: argument
// checks, the engine layouts of x for every channel dimension, the forward/backward plumbing
// around the engine, and layernorm's plan (scale/bias broadcasting, any set of dimensions by
// permutation). Internal: lux::detail::norm.
#pragma once

#include <algorithm>
#include <array>
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
#include "lux/kernels/normalization/types.hpp"

LUX_NAMESPACE_BEGIN

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

LUX_NAMESPACE_END
