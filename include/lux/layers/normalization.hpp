// luxcpp — Lux's normalization layers: BatchNorm, GroupNorm, InstanceNorm, LayerNorm.
//
//   lux::BatchNorm bn(16, lux::relu{}, {.momentum = 0.2});
//       // BatchNorm(16, relu, affine=true, track_stats=true)
//   lux::BatchNorm<lux::identity, false, false> plain(16);  // affine=false, track_stats=false
//   lux::GroupNorm gn(16, 4);       // GroupNorm(16, 4, affine=true)
//   lux::InstanceNorm in(3);        // InstanceNorm(3, affine=true, track_stats=false)
//   lux::LayerNorm ln({4, 3});      // LayerNorm((4, 3), affine=true, dims=Colon())
//
// Every layer computes y = σ((x − μ)·γ/√(σ² + ε) + β) with the biased variance through the
// kernels of lux/kernels/normalization.hpp (forward and backward; never reimplemented here).
// x is column-major with channels at Julia's dimension N−1 (index N−2) and the batch last.
//
// affine / track_stats are template parameters (like Dense's UseBias): they change the types of
// ps and st (fields absent, as Lux's `NamedTuple()` / no running statistics), which a runtime
// option cannot. The other keyword arguments are an options struct (designated initializers),
// defaults from Lux's documentation: epsilon = 1e-5, momentum = 0.1, init_scale = ones,
// init_bias = zeros.
//
// BatchNorm and InstanceNorm share one implementation (detail::normlayer::running_norm); they
// differ in the kernel, the minimum rank and what a statistic averages over.
// BatchNorm(chs, σ, {epsilon, momentum, init_scale, init_bias}) <F, Affine=true, TrackStats=true>
//   ps (scale (chs), bias (chs)) | empty;  st (running_mean = 0, running_var = 1, training) |
//   (training). BatchNorm(16): 32 parameters, 33 states. x rank ≥ 2 (a (features, B) matrix
//   works; the doc's "ndims(x) > 2" is not enforced). training: batch statistics; with
//   TrackStats the running statistics are updated by LuxLib's rule r ← (1−m) r + m·s with the
//   *unbiased* variance n/(n−1)·σ² (n = elements per channel; n = 1 in training is a
//   shape_error, Lux's B ≠ 1 assertion). Test mode: the running statistics (TrackStats) or batch
//   statistics (no TrackStats, LuxLib's behaviour).
// GroupNorm(chs, groups, σ, {epsilon, init_scale, init_bias}) <F, Affine=true>
//   ps (scale, bias) per channel; st (training) — Lux's documentation lists `training`; Lux's code
//   returns an empty state (⚠ Lux 1.x's source). We follow the documentation (statelength 1); the
//   flag does not change the computation. Contiguous channel blocks, statistics per
//   (group, sample) over spatial × C/G.
// InstanceNorm(chs, σ, {epsilon, momentum, init_scale, init_bias}) <F, Affine=true,
//   TrackStats=false> — the document's affine=true (Lux's code defaults affine=false ⚠, pass
//   <F, false> for that); track_stats=false as in Lux's code (the document does not list it).
//   Statistics per (channel, sample) over the spatial dims; x rank ≥ 3. st as BatchNorm's.
//   With TrackStats, training updates the running statistics with the batch-averaged instance
//   statistics (n = prod(spatial)) and test mode uses them.
// LayerNorm<M, F, Affine=true>(shape, σ, {epsilon, dims, init_scale, init_bias})
//   ps scale, bias of shape (shape..., 1) (rank M + 1), st empty. dims: the default lux::all_dims
//   is Lux's `dims = Colon()` — statistics over the WHOLE array, batch included, one (μ, σ²) per
//   call (the document: "computes mean and standard deviation over the whole input array";
//   Lux's BatchNorm docstring). This is deliberately Lux's default, not PyTorch's:
//   `{.dims = lux::leading_dims{M}}` normalizes each sample over its first M dims
//   (Julia dims = 1:M), which is PyTorch's nn.LayerNorm(normalized_shape). x must have rank
//   ≥ M + 1 and x's first M sizes must equal shape (or shape's entry is 1: broadcast).
//
// Errors (prefix = the layer's short form): "BatchNorm 16: expected input (..., 16, B), got
// (4, 4, 8, 2)"; "BatchNorm 16: parameter scale has shape (8), expected (16)"; "BatchNorm 16:
// state running_var has shape (8), expected (16)". Constructors: argument_error.
//
// Pullbacks: the kernels' backward (batch statistics: dx through μ and σ²; running statistics:
// constants). `back` owns copies of x (and y when σ's derivative is read from y) and reads
// scale/bias through views: keep ps alive and unchanged until back is called.
#pragma once

#include <cmath>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/dropout.hpp"  // all_dims
#include "lux/kernels/normalization.hpp"
#include "lux/layers/initializers.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

template <class IS = ones, class IB = zeros>
struct batchnorm_options {
  double epsilon = 1e-5;
  double momentum = 0.1;
  IS init_scale{};
  IB init_bias{};
};
template <class IS = ones, class IB = zeros>
using instancenorm_options = batchnorm_options<IS, IB>;

template <class IS = ones, class IB = zeros>
struct groupnorm_options {
  double epsilon = 1e-5;
  IS init_scale{};
  IB init_bias{};
};

template <class IS = ones, class IB = zeros>
struct layernorm_options {
  double epsilon = 1e-5;
  /// lux::all_dims (Lux's Colon(): the whole array) or lux::leading_dims{k} (Julia's 1:k).
  std::variant<all_dims_t, leading_dims> dims = all_dims;
  IS init_scale{};
  IB init_bias{};
};

namespace detail::normlayer {

inline void check_eps(const char* layer, double eps) {
  require<argument_error>(eps >= 0 && std::isfinite(eps), layer,
                          ": epsilon must be finite and >= 0, got ", eps);
}
inline void check_momentum(const char* layer, double m) {
  require<argument_error>(m >= 0 && m <= 1, layer, ": momentum must be in [0, 1], got ", m);
}

/// A per-channel state leaf must be a vector of length C.
template <class V>
void check_state(const std::string& prefix, const char* field, const V& v, index_t C) {
  static_assert(array_traits<std::remove_cvref_t<V>>::rank == 1,
                "lux normalization layers: per-channel states are vectors");
  const auto s = as_view(v).shape();
  require<shape_error>(s[0] == C, prefix, ": state ", field, " has shape ", s, ", expected (", C,
                       ")");
}
/// With Affine, ps.scale and ps.bias must have shape `want`.
template <bool Affine, class PS, std::size_t N>
void check_affine(const std::string& prefix, const PS& ps, const shape_t<N>& want) {
  if constexpr (Affine) {
    check_parameter_shape(prefix, "scale", ps.template get<"scale">(), want);
    check_parameter_shape(prefix, "bias", ps.template get<"bias">(), want);
  }
}
/// (scale, bias) of shape `s` when Affine, else an empty tuple.
template <class T, bool Affine, class IS, class IB, std::size_t N>
auto init_affine(const IS& init_scale, const IB& init_bias, rng& r, const shape_t<N>& s) {
  if constexpr (Affine) {
    auto sc = initialize<T>(init_scale, r, s);
    return make_named_tuple<"scale", "bias">(std::move(sc), initialize<T>(init_bias, r, s));
  } else {
    return empty_tuple{};
  }
}

/// x's channel dimension (index N−2) must hold C channels.
template <std::size_t N>
void check_channels(const std::string& prefix, const shape_t<N>& in, index_t C) {
  require<shape_error>(in[N - 2] == C, prefix, ": expected input (", N > 2 ? "..., " : "", C,
                       ", B), got ", in);
}

template <bool Affine, class PS>
auto scale_of(const PS& ps) {
  if constexpr (Affine)
    return as_view(ps.template get<"scale">());
  else
    return none;
}
template <bool Affine, class PS>
auto bias_of(const PS& ps) {
  if constexpr (Affine)
    return as_view(ps.template get<"bias">());
  else
    return none;
}

template <class F>
inline constexpr bool keep_y =
    activation_traits<F>::uses_output && !activation_traits<F>::is_identity;

/// ps gradients in ps's structure.
template <bool Affine, class DS, class DB>
auto param_grads(DS&& ds, DB&& db) {
  if constexpr (Affine)
    return make_named_tuple<"scale", "bias">(std::forward<DS>(ds), std::forward<DB>(db));
  else
    return empty_tuple{};
}

/// Prints ", relu" for a non-identity activation.
template <class F>
void print_activation(std::ostream& os) {
  if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
}

template <class T>
Tensor<T, 1> per_channel(index_t C, T v) {
  return Tensor<T, 1>(shape_t<1>{C}, v);
}

template <class DY, std::size_t N>
void check_dy(const std::string& prefix, const DY& dy, const shape_t<N>& ys) {
  require<shape_error>(as_view(dy).shape() == ys, prefix, ": the output gradient has shape ",
                       as_view(dy).shape(), ", expected ", ys);
}

/// The body shared by BatchNorm and InstanceNorm (kernels with running statistics).
/// Kernel: a callable (x, scale, bias, rm, rv, training, σ, momentum, ε) → batchnorm_result.
template <bool Affine, bool TrackStats, class F, class Kernel, class X, class PS, class ST>
auto run_running(const std::string& prefix, index_t C, const F& act, double momentum,
                 double epsilon, bool per_instance, const Kernel& kernel, const X& x, const PS& ps,
                 const ST& st) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  const auto xs = as_view(x).shape();
  check_channels(prefix, xs, C);
  check_affine<Affine>(prefix, ps, shape_t<1>{C});
  const bool training = st.template get<"training">();
  if constexpr (TrackStats) {
    check_state(prefix, "running_mean", st.template get<"running_mean">(), C);
    check_state(prefix, "running_var", st.template get<"running_var">(), C);
    index_t n = 1;  // values per statistic: spatial (× batch for BatchNorm)
    for (std::size_t d = 0; d + 2 < N; ++d) n *= xs[d];
    if (!per_instance) n *= xs[N - 1];
    require<shape_error>(!training || n != 1, prefix,
                         ": updating the running variance with n/(n - 1) needs more than one "
                         "value per ",
                         per_instance ? "instance" : "channel",
                         " in training mode (Lux asserts a batch size > 1), got ", xs);
    auto r = kernel(
        x, scale_of<Affine>(ps), bias_of<Affine>(ps), as_view(st.template get<"running_mean">()),
        as_view(st.template get<"running_var">()), training, act, T(momentum), T(epsilon));
    ST st2 = st;
    st2.template get<"running_mean">() = std::move(r.running_mean);
    st2.template get<"running_var">() = std::move(r.running_var);
    return std::pair{std::move(r), std::move(st2)};
  } else {
    auto r = kernel(x, scale_of<Affine>(ps), bias_of<Affine>(ps), none, none, training, act,
                    T(momentum), T(epsilon));
    return std::pair{std::move(r), st};
  }
}

/// The pullback's `back` for the per-channel kernels: Backward is a callable
/// (dy, x, y, scale, bias, saved, σ) → normalization_gradients.
template <bool Affine, class F, class Backward, class X, class PS, class R>
auto make_back(const std::string& prefix, const F& act, const Backward& backward, const X& x,
               const PS& ps, R& r) {
  using T = array_value_t<X>;
  constexpr std::size_t N = array_rank_v<X>;
  auto xc = copy(as_view(x));
  Tensor<T, N> y_saved = keep_y<F> ? r.y : Tensor<T, N>{};
  const auto scale = scale_of<Affine>(ps);
  const auto bias = bias_of<Affine>(ps);
  return [prefix, act, backward, xc = std::move(xc), y_saved = std::move(y_saved),
          saved = std::move(r.saved), scale, bias](const auto& dy) {
    check_dy(prefix, dy, xc.shape());
    auto g = [&] {
      if constexpr (keep_y<F>)
        return backward(as_view(dy), xc, y_saved, scale, bias, saved, act);
      else
        return backward(as_view(dy), xc, none, scale, bias, saved, act);
    }();
    return gradients{std::move(g.dx), param_grads<Affine>(std::move(g.dscale), std::move(g.dbias))};
  };
}

/// BatchNorm and InstanceNorm: the same hyperparameters, ps, st, display and passes around a
/// kernel with running statistics. Derived provides `name`, `per_instance`,
/// check_rank<N>() (a static_assert with its message), kernel(...) and backward(...).
template <class Derived, class F, bool Affine, bool TrackStats, class IS, class IB>
struct running_norm {
  using is_lux_layer = void;
  static constexpr bool affine = Affine;
  static constexpr bool track_stats = TrackStats;

  index_t chs = 0;
  F activation{};
  double epsilon = 1e-5;
  double momentum = 0.1;
  IS init_scale{};
  IB init_bias{};

  running_norm(index_t channels, F act, const batchnorm_options<IS, IB>& opts)
      : chs(channels),
        activation(act),
        epsilon(opts.epsilon),
        momentum(opts.momentum),
        init_scale(opts.init_scale),
        init_bias(opts.init_bias) {
    require<argument_error>(chs > 0, Derived::name, ": chs must be positive, got ", chs);
    check_eps(Derived::name, epsilon);
    check_momentum(Derived::name, momentum);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return init_affine<T, Affine>(init_scale, init_bias, r, shape_t<1>{chs});
  }
  template <class T>
  auto init_states(rng&) const {
    if constexpr (TrackStats)
      return make_named_tuple<"running_mean", "running_var", "training">(
          per_channel<T>(chs, T(0)), per_channel<T>(chs, T(1)), true);
    else
      return make_named_tuple<"training">(true);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    Derived::template check_rank<N>();
    check_channels(prefix(), in, chs);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto [r, st2] = run(x, ps, st);
    return std::pair{std::move(r.y), std::move(st2)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [r, st2] = run(x, ps, st);
    auto back = make_back<Affine>(
        prefix(), activation, [](const auto&... a) { return Derived::backward(a...); }, x, ps, r);
    return pullback_result{std::move(r.y), std::move(st2), std::move(back)};
  }

  void print(std::ostream& os) const {
    os << Derived::name << "(" << chs;
    print_activation<F>(os);
    os << ", affine=" << (Affine ? "true" : "false")
       << ", track_stats=" << (TrackStats ? "true" : "false") << ")";
  }

 private:
  std::string prefix() const { return std::string(Derived::name) + " " + std::to_string(chs); }
  template <class X, class PS, class ST>
  auto run(const X& x, const PS& ps, const ST& st) const {
    Derived::template check_rank<array_rank_v<X>>();
    return run_running<Affine, TrackStats>(
        prefix(), chs, activation, momentum, epsilon, Derived::per_instance,
        [](const auto&... a) { return Derived::kernel(a...); }, x, ps, st);
  }
};

}  // namespace detail::normlayer

// ---------------------------------------------------------------------------------------------
// BatchNorm
// ---------------------------------------------------------------------------------------------

template <class F = identity, bool Affine = true, bool TrackStats = true, class IS = ones,
          class IB = zeros>
struct BatchNorm : detail::normlayer::running_norm<BatchNorm<F, Affine, TrackStats, IS, IB>, F,
                                                   Affine, TrackStats, IS, IB> {
  static constexpr const char* name = "BatchNorm";
  static constexpr bool per_instance = false;  // statistics over spatial × batch

  explicit BatchNorm(index_t channels, F act = {}, batchnorm_options<IS, IB> opts = {})
      : BatchNorm::running_norm(channels, act, opts) {}

  template <std::size_t N>
  static constexpr void check_rank() {
    static_assert(N >= 2, "lux::BatchNorm: the input needs at least 2 dimensions (..., C, B)");
  }
  static auto kernel(const auto&... a) { return batchnorm(a...); }
  static auto backward(const auto&... a) { return batchnorm_backward(a...); }
};

template <class F>
BatchNorm(index_t, F) -> BatchNorm<F>;
template <class F, class IS, class IB>
BatchNorm(index_t, F, batchnorm_options<IS, IB>) -> BatchNorm<F, true, true, IS, IB>;
BatchNorm(index_t)->BatchNorm<>;

// ---------------------------------------------------------------------------------------------
// GroupNorm
// ---------------------------------------------------------------------------------------------

template <class F = identity, bool Affine = true, class IS = ones, class IB = zeros>
struct GroupNorm {
  using is_lux_layer = void;
  static constexpr const char* name = "GroupNorm";
  static constexpr bool affine = Affine;

  index_t chs = 0;
  index_t groups = 1;
  F activation{};
  double epsilon = 1e-5;
  IS init_scale{};
  IB init_bias{};

  GroupNorm(index_t channels, index_t num_groups, F act = {}, groupnorm_options<IS, IB> opts = {})
      : chs(channels),
        groups(num_groups),
        activation(act),
        epsilon(opts.epsilon),
        init_scale(opts.init_scale),
        init_bias(opts.init_bias) {
    require<argument_error>(chs > 0 && groups > 0,
                            "GroupNorm: chs and groups must be positive, got ", chs, " and ",
                            groups);
    require<argument_error>(chs % groups == 0, "GroupNorm: the number of channels ", chs,
                            " is not divisible by groups = ", groups);
    detail::normlayer::check_eps("GroupNorm", epsilon);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return detail::normlayer::init_affine<T, Affine>(init_scale, init_bias, r, shape_t<1>{chs});
  }
  auto init_states(rng&) const { return make_named_tuple<"training">(true); }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 2, "lux::GroupNorm: the input needs at least 2 dimensions (..., C, B)");
    detail::normlayer::check_channels(prefix(), in, chs);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto r = run(x, ps);
    return std::pair{std::move(r.y), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto r = run(x, ps);
    auto back = detail::normlayer::make_back<Affine>(
        prefix(), activation,
        [G = groups](const auto& dy, const auto& xx, const auto& y, const auto& s, const auto& b,
                     const auto& saved, const auto& act) {
          return groupnorm_backward(dy, xx, y, s, b, G, saved, act);
        },
        x, ps, r);
    return pullback_result{std::move(r.y), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "GroupNorm(" << chs << ", " << groups;
    detail::normlayer::print_activation<F>(os);
    os << ", affine=" << (Affine ? "true" : "false") << ")";
  }

 private:
  std::string prefix() const {
    return "GroupNorm " + std::to_string(chs) + ", " + std::to_string(groups);
  }
  template <class X, class PS>
  auto run(const X& x, const PS& ps) const {
    using T = array_value_t<X>;
    static_assert(array_rank_v<X> >= 2,
                  "lux::GroupNorm: the input needs at least 2 dimensions (..., C, B)");
    detail::normlayer::check_channels(prefix(), as_view(x).shape(), chs);
    detail::normlayer::check_affine<Affine>(prefix(), ps, shape_t<1>{chs});
    return groupnorm(x, detail::normlayer::scale_of<Affine>(ps),
                     detail::normlayer::bias_of<Affine>(ps), groups, activation, T(epsilon));
  }
};

template <class F>
GroupNorm(index_t, index_t, F) -> GroupNorm<F>;
template <class F, class IS, class IB>
GroupNorm(index_t, index_t, F, groupnorm_options<IS, IB>) -> GroupNorm<F, true, IS, IB>;
GroupNorm(index_t, index_t)->GroupNorm<>;

// ---------------------------------------------------------------------------------------------
// InstanceNorm
// ---------------------------------------------------------------------------------------------

template <class F = identity, bool Affine = true, bool TrackStats = false, class IS = ones,
          class IB = zeros>
struct InstanceNorm : detail::normlayer::running_norm<InstanceNorm<F, Affine, TrackStats, IS, IB>,
                                                      F, Affine, TrackStats, IS, IB> {
  static constexpr const char* name = "InstanceNorm";
  static constexpr bool per_instance = true;  // statistics over the spatial dims

  explicit InstanceNorm(index_t channels, F act = {}, instancenorm_options<IS, IB> opts = {})
      : InstanceNorm::running_norm(channels, act, opts) {}

  template <std::size_t N>
  static constexpr void check_rank() {
    static_assert(N >= 3,
                  "lux::InstanceNorm: the input needs at least 3 dimensions (spatial..., C, B)");
  }
  static auto kernel(const auto&... a) { return instancenorm(a...); }
  static auto backward(const auto&... a) { return instancenorm_backward(a...); }
};

template <class F>
InstanceNorm(index_t, F) -> InstanceNorm<F>;
template <class F, class IS, class IB>
InstanceNorm(index_t, F, batchnorm_options<IS, IB>) -> InstanceNorm<F, true, false, IS, IB>;
InstanceNorm(index_t)->InstanceNorm<>;

// ---------------------------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------------------------

template <std::size_t M, class F = identity, bool Affine = true, class IS = ones, class IB = zeros>
struct LayerNorm {
  static_assert(M >= 1, "lux::LayerNorm: the shape needs at least one dimension");
  using is_lux_layer = void;
  static constexpr const char* name = "LayerNorm";
  static constexpr bool affine = Affine;

  shape_t<M> shape{};
  F activation{};
  double epsilon = 1e-5;
  std::variant<all_dims_t, leading_dims> dims = all_dims;
  IS init_scale{};
  IB init_bias{};

  explicit LayerNorm(const shape_t<M>& s, F act = {}, layernorm_options<IS, IB> opts = {})
      : shape(s),
        activation(act),
        epsilon(opts.epsilon),
        dims(opts.dims),
        init_scale(opts.init_scale),
        init_bias(opts.init_bias) {
    for (std::size_t d = 0; d < M; ++d)
      require<argument_error>(shape[d] > 0, "LayerNorm: the shape must be positive, got ", shape);
    detail::normlayer::check_eps("LayerNorm", epsilon);
    if (const auto* ld = std::get_if<leading_dims>(&dims))
      require<argument_error>(ld->count >= 1,
                              "LayerNorm: dims = leading_dims{k} needs k >= 1, got ", ld->count);
  }
  /// LayerNorm({4, 3}): the shape as a braced list.
  explicit LayerNorm(const index_t (&s)[M], F act = {}, layernorm_options<IS, IB> opts = {})
      : LayerNorm(to_shape(s), act, opts) {}

  /// (shape..., 1)
  shape_t<M + 1> param_shape() const {
    shape_t<M + 1> p{};
    for (std::size_t d = 0; d < M; ++d) p[d] = shape[d];
    p[M] = 1;
    return p;
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return detail::normlayer::init_affine<T, Affine>(init_scale, init_bias, r, param_shape());
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_input(in);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto r = run(x, ps);
    return std::pair{std::move(r.y), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto r = run(x, ps);
    auto back = detail::normlayer::make_back<Affine>(
        prefix(), activation,
        [k = kernel_dims<array_rank_v<X>>()](const auto& dy, const auto& xx, const auto& y,
                                             const auto& s, const auto& b, const auto& saved,
                                             const auto& act) {
          return layernorm_backward(dy, xx, y, s, b, saved, act, k);
        },
        x, ps, r);
    return pullback_result{std::move(r.y), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "LayerNorm((";
    for (std::size_t d = 0; d < M; ++d) os << (d ? ", " : "") << shape[d];
    os << (M == 1 ? ",)" : ")");
    detail::normlayer::print_activation<F>(os);
    os << ", affine=" << (Affine ? "true" : "false") << ", dims=";
    if (const auto* ld = std::get_if<leading_dims>(&dims))
      os << "1:" << ld->count;
    else
      os << "Colon()";
    os << ")";
  }

 private:
  static shape_t<M> to_shape(const index_t (&s)[M]) {
    shape_t<M> out{};
    for (std::size_t d = 0; d < M; ++d) out[d] = s[d];
    return out;
  }
  std::string prefix() const {
    std::ostringstream os;
    os << "LayerNorm (";
    for (std::size_t d = 0; d < M; ++d) os << (d ? ", " : "") << shape[d];
    os << (M == 1 ? ",)" : ")");
    return os.str();
  }
  template <std::size_t N>
  leading_dims kernel_dims() const {
    if (const auto* ld = std::get_if<leading_dims>(&dims)) return *ld;
    return leading_dims{static_cast<index_t>(N)};
  }
  template <std::size_t N>
  void check_input(const shape_t<N>& in) const {
    static_assert(N >= M + 1,
                  "lux::LayerNorm: the input needs the shape's dimensions plus a batch dimension");
    bool ok = true;
    for (std::size_t d = 0; d < M; ++d) ok = ok && (shape[d] == 1 || shape[d] == in[d]);
    if (!ok) {
      std::ostringstream want;
      want << "(";
      for (std::size_t d = 0; d < M; ++d) want << (d ? ", " : "") << shape[d];
      want << (N > M + 1 ? ", ..., B)" : ", B)");
      require<shape_error>(false, prefix(), ": expected input ", want.str(), ", got ", in);
    }
    if (const auto* ld = std::get_if<leading_dims>(&dims))
      require<argument_error>(ld->count <= static_cast<index_t>(N), prefix(),
                              ": dims = 1:", ld->count, " exceeds the input's rank ", N, " (x ", in,
                              ")");
  }
  template <class X, class PS>
  auto run(const X& x, const PS& ps) const {
    using T = array_value_t<X>;
    constexpr std::size_t N = array_rank_v<X>;
    check_input(as_view(x).shape());
    detail::normlayer::check_affine<Affine>(prefix(), ps, param_shape());
    return layernorm(x, detail::normlayer::scale_of<Affine>(ps),
                     detail::normlayer::bias_of<Affine>(ps), activation, kernel_dims<N>(),
                     T(epsilon));
  }
};

template <std::size_t M>
LayerNorm(const shape_t<M>&) -> LayerNorm<M>;
template <std::size_t M, class F>
LayerNorm(const shape_t<M>&, F) -> LayerNorm<M, F>;
template <std::size_t M, class F, class IS, class IB>
LayerNorm(const shape_t<M>&, F, layernorm_options<IS, IB>) -> LayerNorm<M, F, true, IS, IB>;
template <std::size_t M>
LayerNorm(const index_t (&)[M]) -> LayerNorm<M>;
template <std::size_t M, class F>
LayerNorm(const index_t (&)[M], F) -> LayerNorm<M, F>;
template <std::size_t M, class F, class IS, class IB>
LayerNorm(const index_t (&)[M], F, layernorm_options<IS, IB>) -> LayerNorm<M, F, true, IS, IB>;

LUX_NAMESPACE_END
