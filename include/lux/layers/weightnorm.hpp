// luxcpp — Lux's WeightNorm: reparameterizes chosen parameters of a wrapped layer as
// w = v .* (g ./ (norm_except(v; dims = d) .+ eps(T))).
//
//   lux::WeightNorm wn(lux::Dense({3, 2}), lux::param_names<"weight">{});
//   // WeightNorm{(:weight,)}(Dense(3 => 2), dims = nothing)
//   lux::WeightNorm wn2(lux::Dense({3, 2}), lux::param_names<"weight">{}, {0});  // d = 0
//
// which_params are compile-time field names (lux::param_names<"weight", ...>), since they decide
// the parameter tree's type. ps = (normalized = (weight_g, weight_v, ...), unnormalized =
// (bias, ...)) — the names in which_params order, each as <name>_g then <name>_v; unnormalized
// holds the wrapped layer's other parameters in its order (empty_tuple when there are none,
// where Lux has `nothing`). States are the wrapped layer's.
//
// norm_except(v; dims = d): the L2 norm over every dimension except d, kept as a size-1
// broadcast array (g has v's shape with 1 everywhere except along d). dims: one 0-based
// dimension per name; −1 (the default, Lux's dims = nothing) means the last dimension. So for
// Dense's weight (out, in) the default norms are per input column (Lux), not per output row as
// PyTorch's weight_norm(dim=0) — PyTorch's dim=1 matches (Lux 1.x's source). print() shows
// dims 1-based as Lux does (`dims = (1,)`), or `nothing` for the default.
//
// Initialization: v = the wrapped layer's initial parameter, g = norm_except(v); an all-zero
// parameter is an argument_error (Lux: "Parameter weight is completely zero ...").
//
// Pullback: the wrapped layer's pullback gives W̄ = ∂L/∂w; with n = norm_except(v),
// s = g/(n + ε) and c = Σ_{except d} W̄ .* v:
//   ∂g = c/(n + ε),   ∂v = s .* W̄ − v .* g .* c ./ ((n + ε)² n)   (the second term is 0 where n =
//   0).
// `back` owns the reconstructed parameters of the wrapped layer (its back may view them) and
// reads g and v through views of ps: keep ps alive and unchanged until back is called.
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/tensor.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

/// Compile-time parameter names for WeightNorm: lux::param_names<"weight">{}.
template <field_name... Names>
struct param_names {
  static constexpr std::size_t size = sizeof...(Names);
};

namespace detail::weightnorm {

template <field_name A, field_name B>
consteval auto concat() {
  constexpr std::size_t na = A.view().size(), nb = B.view().size();
  field_name<na + nb + 1> out;
  for (std::size_t i = 0; i < na; ++i) out.chars[i] = A.chars[i];
  for (std::size_t i = 0; i < nb; ++i) out.chars[na + i] = B.chars[i];
  out.chars[na + nb] = '\0';
  return out;
}
template <field_name A>
inline constexpr auto g_name = concat<A, field_name<3>{"_g"}>();
template <field_name A>
inline constexpr auto v_name = concat<A, field_name<3>{"_v"}>();

template <field_name Name>
struct name_tag {
  static constexpr auto value = Name;
};

template <std::size_t I, class NT>
struct field_at;
template <std::size_t I, class... F>
struct field_at<I, named_tuple<F...>> {
  using type = std::tuple_element_t<I, std::tuple<F...>>;
};

/// Builds a named_tuple from a std::tuple of named_fields.
template <class Tuple>
auto from_fields(Tuple&& fields) {
  return std::apply(
      [](auto&&... f) { return named_tuple<std::decay_t<decltype(f)>...>(std::move(f)...); },
      std::forward<Tuple>(fields));
}

/// Layout of norm_except along dimension d of a shape: stride of d, its size, and the total.
template <std::size_t R>
struct along {
  index_t stride = 1, size = 1, numel = 1;
  explicit along(const shape_t<R>& s, std::size_t d) {
    for (std::size_t k = 0; k < d; ++k) stride *= s[k];
    size = s[d];
    for (std::size_t k = 0; k < R; ++k) numel *= s[k];
  }
  index_t group(index_t i) const { return (i / stride) % size; }
};

/// g's shape: v's shape with 1 everywhere except along d.
template <std::size_t R>
shape_t<R> g_shape(const shape_t<R>& vs, std::size_t d) {
  shape_t<R> s{};
  s.fill(1);
  s[d] = vs[d];
  return s;
}

/// norm_except(v; dims = d) in double, one entry per index along d.
template <class V>
std::vector<double> norms(const V& v, std::size_t d) {
  constexpr std::size_t R = array_traits<std::remove_cvref_t<V>>::rank;
  const auto vv = as_view(v);
  const along<R> a(vv.shape(), d);
  std::vector<double> n(static_cast<std::size_t>(a.size), 0.0);
  const auto* p = vv.data();
  for (index_t i = 0; i < a.numel; ++i) {
    const double x = static_cast<double>(p[i]);
    n[static_cast<std::size_t>(a.group(i))] += x * x;
  }
  for (auto& x : n) x = std::sqrt(x);
  return n;
}

}  // namespace detail::weightnorm

template <class L, field_name... Which>
struct WeightNorm {
  static_assert(sizeof...(Which) >= 1, "lux::WeightNorm: give at least one parameter name");
  using is_lux_layer = void;
  static constexpr const char* name = "WeightNorm";
  static constexpr std::size_t K = sizeof...(Which);

  L layer;
  std::array<int, K> dims;  ///< 0-based dimension per name; −1 = the last (Lux's nothing)

  static constexpr std::array<int, K> last_dims() {
    std::array<int, K> d{};
    d.fill(-1);
    return d;
  }

  WeightNorm(L wrapped, param_names<Which...>, std::array<int, K> ds = last_dims())
      : layer(std::move(wrapped)), dims(ds) {
    for (int d : dims)
      require<argument_error>(d >= -1,
                              "WeightNorm: dims must be 0-based (or -1 for the last), got ", d);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    using namespace detail::weightnorm;
    auto inner = initialparameters<T>(r, layer);
    static_assert((decltype(inner)::template has<Which> && ...),
                  "lux::WeightNorm: the wrapped layer has no parameter of one of these names");
    return assemble(inner, [&]<field_name Name>(name_tag<Name>, const auto& v) {
      const std::size_t d = dim_of<Name>(v);
      bool all_zero = true;
      const auto vv = as_view(v);
      for (index_t i = 0; i < vv.numel() && all_zero; ++i) all_zero = vv.data()[i] == 0;
      require<argument_error>(!all_zero, "WeightNorm: parameter ", Name.view(),
                              " is completely zero. This will result in NaN gradients. Either "
                              "remove it from which_params or change its initializer");
      using V = std::remove_cvref_t<decltype(v)>;
      using E = typename V::value_type;
      const auto n = norms(v, d);
      auto g = Tensor<E, V::rank>::uninitialized(g_shape(vv.shape(), d));
      for (std::size_t j = 0; j < n.size(); ++j) g.data()[j] = static_cast<E>(n[j]);
      return std::pair{std::move(g), V(v)};
    });
  }

  template <class T>
  auto init_states(rng& r) const {
    return initialstates<T>(r, layer);
  }

  template <std::size_t N>
  auto output_shape(const shape_t<N>& in) const {
    return outputsize(layer, in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto inner = inner_parameters(ps);
    return apply(layer, x, inner, st);
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using namespace detail::weightnorm;
    auto inner = std::make_shared<inner_t<PS>>(inner_parameters(ps));
    auto pb = lux::pullback(layer, x, *inner, st);
    auto back = [self = *this, inner, inner_back = std::move(pb.back),
                 &norm = ps.template get<"normalized">()](const auto& dy) {
      auto g = inner_back(dy);
      auto dps_inner = std::move(g.dps);
      auto dps = self.assemble(dps_inner, [&]<field_name Name>(name_tag<Name>, const auto& dw) {
        const auto& gp = norm.template get<g_name<Name>>();
        const auto& vp = norm.template get<v_name<Name>>();
        return self.template weight_grads<Name>(dw, gp, vp);
      });
      return gradients{std::move(g.dx), std::move(dps)};
    };
    return pullback_result{std::move(pb.y), std::move(pb.st), std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "WeightNorm{(";
    std::size_t i = 0;
    ((os << (i++ ? ", " : "") << ":" << Which.view()), ...);
    os << (K == 1 ? ",)" : ")") << "}(" << layer << ", dims = ";
    bool all_default = true;
    for (int d : dims) all_default = all_default && d == -1;
    if (all_default) {
      os << "nothing";
    } else {
      os << "(";
      for (std::size_t k = 0; k < K; ++k)
        os << (k ? ", " : "") << (dims[k] == -1 ? std::string("end") : std::to_string(dims[k] + 1));
      os << (K == 1 ? ",)" : ")");
    }
    os << ")";
  }

 private:
  template <field_name Name>
  static constexpr std::size_t index_of() {
    std::size_t i = 0, found = K;
    ((Name == Which ? (found = i, ++i) : ++i), ...);
    return found;
  }
  template <field_name Name, class V>
  std::size_t dim_of(const V&) const {
    constexpr std::size_t R = array_traits<std::remove_cvref_t<V>>::rank;
    const int d = dims[index_of<Name>()];
    require<argument_error>(d < static_cast<int>(R), "WeightNorm: dims for ", Name.view(), " is ",
                            d, ", but the parameter has rank ", R, " (0-based dims)");
    return d == -1 ? R - 1 : static_cast<std::size_t>(d);
  }
  std::string prefix() const {
    std::ostringstream os;
    os << "WeightNorm{(";
    std::size_t i = 0;
    ((os << (i++ ? ", " : "") << ":" << Which.view()), ...);
    os << (K == 1 ? ",)" : ")") << "}";
    return os.str();
  }

  /// (normalized = (<n>_g, <n>_v, ...), unnormalized = (other fields of `inner`)), where
  /// fn(name_tag<n>, inner.<n>) returns the (g-like, v-like) pair for a normalized name.
  template <class Inner, class Fn>
  auto assemble(const Inner& inner, Fn&& fn) const {
    using namespace detail::weightnorm;
    auto normalized = from_fields(std::tuple_cat([&] {
      auto [a, b] = fn(name_tag<Which>{}, inner.template get<Which>());
      return std::tuple{field<g_name<Which>>(std::move(a)), field<v_name<Which>>(std::move(b))};
    }()...));
    auto unnormalized = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return from_fields(std::tuple_cat([&] {
        using Fd = typename field_at<I, Inner>::type;
        if constexpr (((Fd::name == Which) || ...))
          return std::tuple<>{};
        else
          return std::tuple{field<Fd::name>(inner.template at<I>())};
      }()...));
    }
    (std::make_index_sequence<Inner::size>{});
    return make_named_tuple<"normalized", "unnormalized">(std::move(normalized),
                                                          std::move(unnormalized));
  }

  template <class PS>
  using elem_t = typename std::remove_cvref_t<decltype(std::declval<const PS&>()
                                                           .template get<"normalized">()
                                                           .template at<1>())>::value_type;
  template <class PS>
  using inner_t =
      decltype(initialparameters<elem_t<PS>>(std::declval<rng&>(), std::declval<const L&>()));

  /// The wrapped layer's parameters: w = v .* g ./ (norm_except(v) + eps) for the normalized
  /// names, the unnormalized ones copied, in the wrapped layer's own field order.
  template <class PS>
  inner_t<PS> inner_parameters(const PS& ps) const {
    using namespace detail::weightnorm;
    using P = inner_t<PS>;
    const auto& norm = ps.template get<"normalized">();
    const auto& un = ps.template get<"unnormalized">();
    P out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            using Fd = typename field_at<I, P>::type;
            if constexpr (((Fd::name == Which) || ...))
              out.template at<I>() = weight_of<Fd::name>(norm.template get<g_name<Fd::name>>(),
                                                         norm.template get<v_name<Fd::name>>());
            else
              out.template at<I>() = un.template get<Fd::name>();
          }(),
          ...);
    }
    (std::make_index_sequence<P::size>{});
    return out;
  }

  template <field_name Name, class G, class V>
  void check_g(const G& g, const V& v, std::size_t d) const {
    const auto want = detail::weightnorm::g_shape(as_view(v).shape(), d);
    require<shape_error>(as_view(g).shape() == want, prefix(), ": parameter ",
                         detail::weightnorm::g_name<Name>.view(), " has shape ", as_view(g).shape(),
                         ", expected ", want, " for ", detail::weightnorm::v_name<Name>.view(),
                         " of shape ", as_view(v).shape());
  }

  template <field_name Name, class G, class V>
  auto weight_of(const G& g, const V& v) const {
    using namespace detail::weightnorm;
    using VT = std::remove_cvref_t<V>;
    using E = typename VT::value_type;
    constexpr std::size_t R = VT::rank;
    const std::size_t d = dim_of<Name>(v);
    check_g<Name>(g, v, d);
    const auto n = norms(v, d);
    const auto vv = as_view(v);
    const along<R> a(vv.shape(), d);
    const double eps = std::numeric_limits<E>::epsilon();
    auto w = Tensor<E, R>::uninitialized(vv.shape());
    for (index_t i = 0; i < a.numel; ++i) {
      const auto j = static_cast<std::size_t>(a.group(i));
      w.data()[i] = static_cast<E>(static_cast<double>(vv.data()[i]) *
                                   (static_cast<double>(g.data()[j]) / (n[j] + eps)));
    }
    return w;
  }

  /// (∂g, ∂v) from ∂w (see the file comment).
  template <field_name Name, class DW, class G, class V>
  auto weight_grads(const DW& dw, const G& g, const V& v) const {
    using namespace detail::weightnorm;
    using VT = std::remove_cvref_t<V>;
    using E = typename VT::value_type;
    constexpr std::size_t R = VT::rank;
    const std::size_t d = dim_of<Name>(v);
    const auto n = norms(v, d);
    const auto vv = as_view(v);
    const auto dwv = as_view(dw);
    const along<R> a(vv.shape(), d);
    const double eps = std::numeric_limits<E>::epsilon();
    std::vector<double> c(n.size(), 0.0);
    for (index_t i = 0; i < a.numel; ++i)
      c[static_cast<std::size_t>(a.group(i))] +=
          static_cast<double>(dwv.data()[i]) * static_cast<double>(vv.data()[i]);
    auto dg = Tensor<E, R>::uninitialized(as_view(g).shape());
    for (std::size_t j = 0; j < n.size(); ++j) dg.data()[j] = static_cast<E>(c[j] / (n[j] + eps));
    auto dv = Tensor<E, R>::uninitialized(vv.shape());
    for (index_t i = 0; i < a.numel; ++i) {
      const auto j = static_cast<std::size_t>(a.group(i));
      const double gj = static_cast<double>(g.data()[j]);
      const double ne = n[j] + eps;
      const double second =
          n[j] > 0 ? static_cast<double>(vv.data()[i]) * gj * c[j] / (ne * ne * n[j]) : 0.0;
      dv.data()[i] = static_cast<E>(gj / ne * static_cast<double>(dwv.data()[i]) - second);
    }
    return std::pair{std::move(dg), std::move(dv)};
  }
};

template <class L, field_name... Which>
WeightNorm(L, param_names<Which...>) -> WeightNorm<L, Which...>;
template <class L, field_name... Which>
WeightNorm(L, param_names<Which...>, std::array<int, sizeof...(Which)>) -> WeightNorm<L, Which...>;

LUX_NAMESPACE_END
