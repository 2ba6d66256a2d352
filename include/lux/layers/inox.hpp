// luxcpp — inox's normalization layers (francois-rozet/inox, inox/nn/normalization.py):
// lux::inox::BatchNorm, lux::inox::LayerNorm, lux::inox::GroupNorm.
//
//   lux::inox::BatchNorm bn(16);               // inox.BatchNorm(16, epsilon=1e-05, momentum=0.9)
//   lux::inox::LayerNorm ln;                   // inox.LayerNorm(axis=-1, epsilon=1e-05)
//   lux::inox::LayerNorm ln2({-1, -2});        // inox.LayerNorm(axis=(-1, -2), epsilon=1e-05)
//   lux::inox::GroupNorm gn(4);                // inox.GroupNorm(4, epsilon=1e-05)
//
// Every layer computes y = (x − E[x]) / √(V[x] + ε) with the BIASED variance and has no affine
// parameters (inox leaves scale and shift to a following layer). They are thin layers over the
// kernels of lux/kernels/normalization.hpp (forward and backward; never reimplemented here),
// following the layer protocol of lux/layers/normalization.hpp and sharing its helpers.
//
// Layout. inox is row-major with channels LAST: x (N, *, C). luxcpp is column-major (Lux order),
// and the same memory read column-major is (C, *, N): channels are luxcpp's dimension 0 (first),
// the batch is the last dimension. An inox axis a of a rank-R input (row-major, a < 0 counts from
// the end) is luxcpp's dimension R − 1 − (a < 0 ? a + R : a); inox's default axis −1 is
// dimension 0.
//
// BatchNorm(channels, epsilon = 1e-5, momentum α = 0.9)
//   ps: empty (0 parameters). st: (mean = zeros(C), var = ones(C), training = true) — inox's
//   Statistics(mean, var) plus Lux's training flag, so lux::testmode / lux::trainmode switch it
//   (statelength 2C + 1). x (C, *, N), rank ≥ 2; statistics per channel over every other
//   dimension (inox: x.reshape(-1, C), jnp.mean / jnp.var over axis 0).
//   training: y uses the batch statistics and the state is updated by inox's rule
//     ŝ ← α·ŝ + (1 − α)·s   (the kernel's momentum m = 1 − α)
//   where the running variance is updated with the BIASED batch variance σ² = mean((x − μ)²):
//   inox computes it with jnp.var (ddof = 0), and inox's own source is the reference — unlike
//   Lux and PyTorch, whose running_var uses the unbiased n/(n − 1)·σ². So a batch of one sample
//   per channel is fine in training (σ² = 0), where Lux's BatchNorm throws.
//   eval (training = false): y uses the running statistics; st is returned unchanged.
// LayerNorm(axis = -1 | {axes...}, epsilon = 1e-5)
//   No ps, no st. Statistics (biased) over the given axes (inox's convention, translated for the
//   input's rank at apply time; up to 8 axes, keepdims), one group per index of the other
//   dimensions. Any rank ≥ 1; the set of dimensions need not be leading or contiguous.
// GroupNorm(groups, epsilon = 1e-5)
//   No ps, no st. x (C, *) of any rank ≥ 1; the C channels are split into G contiguous groups of
//   D = C/G (inox: '... (G D) -> ... G D'), statistics per (position, group) over the D channels
//   of that group. G = 1 is LayerNorm(axis = -1). Computed as lux::groupnorm on x viewed as the
//   rank-2 (C, P) array (P = product of the other dimensions: every position is a "sample").
//
// Errors (prefix = the layer's short form): constructors throw argument_error ("inox.BatchNorm:
// channels must be positive, got 0"; epsilon < 0 or not finite; momentum ∉ [0, 1]; groups ≤ 0;
// an empty or too long axis list). apply / outputsize / pullback throw shape_error for an input
// the layer does not fit ("inox.BatchNorm 16: expected input (16, ..., N), got (8, 4, 2)";
// "inox.GroupNorm 4: the number of channels 6 (x's dimension 0) is not divisible by groups = 4,
// got x (6, 5)"), argument_error for axes out of range or naming one dimension twice
// ("inox.LayerNorm axis=(-1, 2): axes -1 and 2 name the same dimension 0 of x (4, 5, 6)"), and
// shape_error for an output gradient of the wrong shape.
//
// Pullbacks: the kernels' backward (batch statistics: dx through μ and σ²; eval-mode BatchNorm:
// the running statistics are constants, dx = dy/√(var + ε)). `back` owns a copy of x.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/normalization.hpp"
#include "lux/layers/layer.hpp"
#include "lux/layers/normalization.hpp"  // detail::normlayer helpers

LUX_NAMESPACE_BEGIN
namespace inox {

// lux::operator<< (layer display) lives in the enclosing namespace, which argument-dependent
// lookup does not search for a type of this nested one: make `os << layer` find it.
using ::lux::operator<<;

namespace detail {

namespace nl = ::lux::detail::normlayer;

/// x's channel dimension (index 0) must hold C channels.
template <std::size_t N>
void check_leading_channels(const std::string& prefix, const shape_t<N>& in, index_t C) {
  require<shape_error>(in[0] == C, prefix, ": expected input (", C, N > 2 ? ", ..., N" : ", N",
                       "), got ", in);
}

/// The (C, P) view of x: the channels first, every other dimension flattened.
template <class X>
auto channels_by_positions(const X& x) {
  const auto v = as_view(x);
  const index_t C = v.shape()[0];
  index_t P = 1;
  for (std::size_t d = 1; d < array_rank_v<X>; ++d) P *= v.shape()[d];
  return v.reshape(shape_t<2>{C, P});
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// BatchNorm
// ---------------------------------------------------------------------------------------------

/// inox.nn.BatchNorm: per-channel batch normalization without affine parameters, running
/// statistics updated with inox's momentum α and the biased variance (see the file comment).
struct BatchNorm {
  using is_lux_layer = void;
  static constexpr const char* name = "inox.BatchNorm";

  index_t channels = 0;
  double epsilon = 1e-5;
  double momentum = 0.9;  ///< inox's α: ŝ ← α·ŝ + (1 − α)·s

  explicit BatchNorm(index_t chs, double eps = 1e-5, double alpha = 0.9)
      : channels(chs), epsilon(eps), momentum(alpha) {
    require<argument_error>(channels > 0, name, ": channels must be positive, got ", channels);
    detail::nl::check_eps(name, epsilon);
    detail::nl::check_momentum(name, momentum);
  }

  template <class T>
  auto init_states(rng&) const {
    return make_named_tuple<"mean", "var", "training">(detail::nl::per_channel<T>(channels, T(0)),
                                                       detail::nl::per_channel<T>(channels, T(1)),
                                                       true);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_rank<N>();
    detail::check_leading_channels(prefix(), in, channels);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    auto [r, st2] = run(x, st);
    return std::pair{std::move(r.y), std::move(st2)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [r, st2] = run(x, st);
    auto back = detail::nl::make_back<false>(
        prefix(), identity{},
        [](const auto&... a) { return batchnorm_backward(a..., channel_dim{0}); }, x, ps, r);
    return pullback_result{std::move(r.y), std::move(st2), std::move(back)};
  }

  void print(std::ostream& os) const {
    os << name << "(" << channels << ", epsilon=" << epsilon << ", momentum=" << momentum << ")";
  }

 private:
  template <std::size_t N>
  static constexpr void check_rank() {
    static_assert(N >= 2,
                  "lux::inox::BatchNorm: the input needs at least 2 dimensions (C, ..., N)");
  }
  std::string prefix() const { return std::string(name) + " " + std::to_string(channels); }

  template <class X, class ST>
  auto run(const X& x, const ST& st) const {
    using T = array_value_t<X>;
    check_rank<array_rank_v<X>>();
    const std::string p = prefix();
    detail::check_leading_channels(p, as_view(x).shape(), channels);
    detail::nl::check_state(p, "mean", st.template get<"mean">(), channels);
    detail::nl::check_state(p, "var", st.template get<"var">(), channels);
    const bool training = st.template get<"training">();
    auto r = batchnorm(x, none, none, as_view(st.template get<"mean">()),
                       as_view(st.template get<"var">()), training, identity{}, T(1 - momentum),
                       T(epsilon), channel_dim{0}, running_variance::biased);
    ST st2 = st;
    if (training) {
      st2.template get<"mean">() = std::move(r.running_mean);
      st2.template get<"var">() = std::move(r.running_var);
    }
    return std::pair{std::move(r), std::move(st2)};
  }
};

// ---------------------------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------------------------

/// inox.nn.LayerNorm: normalization over one or several axes given in inox's (row-major,
/// negative-from-the-end) convention; no parameters, no states.
struct LayerNorm {
  using is_lux_layer = void;
  static constexpr const char* name = "inox.LayerNorm";
  static constexpr std::size_t max_axes = 8;

  std::array<index_t, max_axes> axes{};  ///< inox's axes, as given
  std::size_t num_axes = 0;
  bool sequence = false;  ///< given as a list (printed as a tuple, as inox's repr would)
  double epsilon = 1e-5;

  /// One axis (inox's default: −1, the channels, luxcpp's dimension 0).
  explicit LayerNorm(index_t axis = -1, double eps = 1e-5) : num_axes(1), epsilon(eps) {
    axes[0] = axis;
    detail::nl::check_eps(name, epsilon);
  }
  /// A list of axes: LayerNorm({-1, -2}).
  explicit LayerNorm(std::initializer_list<index_t> axis_list, double eps = 1e-5)
      : num_axes(axis_list.size()), sequence(true), epsilon(eps) {
    require<argument_error>(num_axes >= 1 && num_axes <= max_axes, name, ": needs between 1 and ",
                            max_axes, " axes, got ", num_axes);
    std::size_t i = 0;
    for (index_t a : axis_list) axes[i++] = a;
    detail::nl::check_eps(name, epsilon);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    kernel_dims(in);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    auto r = run(x);
    return std::pair{std::move(r.y), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    const dim_set dims = kernel_dims(as_view(x).shape());
    auto r = run(x);
    auto back = detail::nl::make_back<false>(
        prefix(), identity{},
        [dims](const auto& dy, const auto& xx, const auto& y, const auto& s, const auto& b,
               const auto& saved,
               const auto& act) { return layernorm_backward(dy, xx, y, s, b, saved, act, dims); },
        x, ps, r);
    return pullback_result{std::move(r.y), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    os << name << "(axis=" << axes_string() << ", epsilon=" << epsilon << ")";
  }

  /// The luxcpp (column-major, 0-based) dimensions these axes name for an input of shape `in`;
  /// argument_error for an axis out of range or two axes naming one dimension.
  template <std::size_t N>
  dim_set kernel_dims(const shape_t<N>& in) const {
    static_assert(N >= 1, "lux::inox::LayerNorm: the input needs at least 1 dimension");
    static_assert(N <= 64, "lux::inox::LayerNorm: at most 64 dimensions");
    constexpr auto R = static_cast<index_t>(N);
    std::array<index_t, max_axes> dim{};
    for (std::size_t i = 0; i < num_axes; ++i) {
      const index_t a = axes[i];
      require<argument_error>(a >= -R && a < R, prefix(), ": axis ", a,
                              " is out of range for an input of rank ", N, " (x ", in,
                              "; axes must be in [", -R, ", ", R - 1, "])");
      dim[i] = R - 1 - (a < 0 ? a + R : a);
      for (std::size_t j = 0; j < i; ++j)
        require<argument_error>(dim[j] != dim[i], prefix(), ": axes ", axes[j], " and ", a,
                                " name the same dimension ", dim[i], " of x ", in);
    }
    dim_set set(static_cast<int>(dim[0]));
    for (std::size_t i = 1; i < num_axes; ++i) set.insert(static_cast<int>(dim[i]));
    return set;
  }

 private:
  std::string axes_string() const {
    std::ostringstream os;
    if (!sequence) {
      os << axes[0];
    } else {
      os << "(";
      for (std::size_t i = 0; i < num_axes; ++i) os << (i ? ", " : "") << axes[i];
      os << (num_axes == 1 ? ",)" : ")");
    }
    return os.str();
  }
  std::string prefix() const { return std::string(name) + " axis=" + axes_string(); }

  template <class X>
  auto run(const X& x) const {
    using T = array_value_t<X>;
    const dim_set dims = kernel_dims(as_view(x).shape());
    return layernorm(x, none, none, identity{}, dims, T(epsilon));
  }
};

// ---------------------------------------------------------------------------------------------
// GroupNorm
// ---------------------------------------------------------------------------------------------

/// inox.nn.GroupNorm: statistics per (position, group of C/G contiguous channels); no
/// parameters, no states.
struct GroupNorm {
  using is_lux_layer = void;
  static constexpr const char* name = "inox.GroupNorm";

  index_t groups = 1;
  double epsilon = 1e-5;

  explicit GroupNorm(index_t num_groups, double eps = 1e-5) : groups(num_groups), epsilon(eps) {
    require<argument_error>(groups > 0, name, ": groups must be positive, got ", groups);
    detail::nl::check_eps(name, epsilon);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_input(in);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    auto r = run(x);
    return std::pair{std::move(r.y), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using T = array_value_t<X>;
    constexpr std::size_t N = array_rank_v<X>;
    auto r = run(x);
    auto back = detail::nl::make_back<false>(
        prefix(), identity{},
        [G = groups](const auto& dy, const auto& xx, const auto& y, const auto& s, const auto& b,
                     const auto& saved, const auto& act) {
          auto g = groupnorm_backward(detail::channels_by_positions(dy),
                                      detail::channels_by_positions(xx), y, s, b, G, saved, act);
          return normalization_gradients<T, N>{std::move(g.dx).reshaped(as_view(xx).shape()),
                                               std::move(g.dscale), std::move(g.dbias)};
        },
        x, ps, r);
    return pullback_result{std::move(r.y), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    os << name << "(" << groups << ", epsilon=" << epsilon << ")";
  }

 private:
  std::string prefix() const { return std::string(name) + " " + std::to_string(groups); }

  template <std::size_t N>
  void check_input(const shape_t<N>& in) const {
    static_assert(N >= 1, "lux::inox::GroupNorm: the input needs at least 1 dimension (C, ...)");
    require<shape_error>(in[0] % groups == 0, prefix(), ": the number of channels ", in[0],
                         " (x's dimension 0) is not divisible by groups = ", groups, ", got x ",
                         in);
  }

  /// groupnorm on the (C, P) view, y reshaped back to x's shape.
  template <class X>
  auto run(const X& x) const {
    using T = array_value_t<X>;
    constexpr std::size_t N = array_rank_v<X>;
    const auto xs = as_view(x).shape();
    check_input(xs);
    auto r =
        groupnorm(detail::channels_by_positions(x), none, none, groups, identity{}, T(epsilon));
    return groupnorm_result<T, N>{std::move(r.y).reshaped(xs), std::move(r.saved)};
  }
};

}  // namespace inox
LUX_NAMESPACE_END
