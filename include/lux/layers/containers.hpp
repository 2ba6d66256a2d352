// luxcpp — Lux's containers besides Chain: Parallel, BranchLayer, Maxout, PairwiseFusion,
// SkipConnection. Children are layers, callables (wrapped as WrappedFunction) or
// lux::field<"name">(layer) (Lux's keyword constructor); ps/st nest under layer_1 … layer_N or
// those names. Connections: lux::add, mul, vcat, hcat, max_ (connections.hpp) or any callable
// (pullback then needs a `pullback` member). Several inputs/outputs are std::tuple.
//
//   Parallel(conn, layers...)    tuple x (N elements): x_i → layer_i; a std::vector of N
//                                tensors likewise (size checked at run time); any other x goes
//                                to every layer. y = conn(y_1, …, y_N), or the std::tuple
//                                (y_1, …, y_N) when conn = lux::none. A broadcast x gets the sum
//                                of the branch gradients; a tuple/vector x a tuple/vector of dx.
//   BranchLayer(layers..., {.fusion = f})   every layer gets the same x; tuple output, or
//                                f(y_1, …, y_N) with the (optional, last) branch_options.
//   Maxout(layers...), lux::maxout<N>(factory)   elementwise max over the branches (same x);
//                                the gradient goes to the first maximal branch. ⚠ Lux's
//                                Maxout(f, n) takes a run-time n; here n is a template argument
//                                (the number of children is part of the ps type).
//   PairwiseFusion(conn, layers...)  tuple x of N+1 elements: y = x_1; y = conn(layer_i(y),
//                                x_{i+1}); any other x: y = x; y = conn(layer_i(y), x).
//                                ⚠ the layer output comes FIRST, as in Lux's code and tests
//                                ((2,10,20,40) → [125,1728,8000,40] with vcat); Lux's
//                                documentation shows connection(x[i+1], layers[i](y)).
//   SkipConnection(layers, conn) y = conn(layers(x), x). A callable conn: ps/st are those of
//                                `layers` (not nested). A layer conn gets the std::tuple
//                                (layers(x), x) and ps/st = (layers = …, connection = …), as Lux.
//                                Errors are prefixed "layers" / "connection" in both cases.
// Shape errors inside a child are re-thrown with the child's path (forward, pullback, back,
// outputsize), e.g. "layer_2 (Dense 3 => 4): expected input (3, B), got (5, 2)".
// outputsize: a shape, or (Parallel, PairwiseFusion) a std::tuple of shapes; connections
// need an output_shape member.
#pragma once

#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/layers/chain.hpp"
#include "lux/layers/connections.hpp"
#include "lux/layers/layer.hpp"
#include "lux/layers/utility.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
template <class X>
inline constexpr bool is_std_tuple_v = false;
template <class... X>
inline constexpr bool is_std_tuple_v<std::tuple<X...>> = true;
template <class X>
inline constexpr bool is_std_vector_v = false;
template <class X, class A>
inline constexpr bool is_std_vector_v<std::vector<X, A>> = true;

/// Sum of gradients (one branch's dx may be shared by several branches).
template <class G0, class... G>
auto sum_gradients(G0&& g0, G&&... gs) {
  if constexpr (sizeof...(G) == 0)
    return std::forward<G0>(g0);
  else
    return add{}(g0, gs...);
}

/// Children that all see the input (or its i-th element) and whose outputs are combined.
/// SplitTuple: a std::tuple / std::vector input is split across the children (Parallel).
template <class Conn, bool SplitTuple, class... Specs>
struct fan_base : children<Specs...> {
  using base = children<Specs...>;
  using base::get;
  using base::size;
  using is_lux_layer = void;
  Conn connection{};
  static_assert(sizeof...(Specs) >= 1, "lux container: needs at least one layer");

  fan_base(Conn c, std::tuple<Specs...> s) : base(std::move(s)), connection(std::move(c)) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return this->template init_children_parameters<T>(r);
  }
  template <class T>
  auto init_states(rng& r) const {
    return this->template init_children_states<T>(r);
  }

  template <class S>
  auto output_shape(const S& in, const char* who) const {
    check_arity<S>(in, who);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      auto shapes = ordered_tuple([&] {
        return base::template in_child<I>(
            [&] { return outputsize(this->template get<I>(), input<I>(in)); });
      }...);
      if constexpr (std::is_same_v<Conn, none_t>)
        return shapes;
      else
        return std::apply([&](const auto&... s) { return connection.output_shape(s...); }, shapes);
    }
    (std::make_index_sequence<size>{});
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st, const char* who) const {
    check_arity<X>(x, who);
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      auto rs = ordered_tuple([&] {
        return base::template in_child<I>([&] {
          return apply(this->template get<I>(), input<I>(x), ps.template at<I>(),
                       st.template at<I>());
        });
      }...);
      auto st2 = make_named_tuple_from<ST>(std::make_tuple(std::move(std::get<I>(rs).second)...),
                                           std::index_sequence<I...>{});
      if constexpr (std::is_same_v<Conn, none_t>)
        return std::pair{std::make_tuple(std::move(std::get<I>(rs).first)...), std::move(st2)};
      else
        return std::pair{connection(std::get<I>(rs).first...), std::move(st2)};
    }
    (std::make_index_sequence<size>{});
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st, const char* who) const {
    check_arity<X>(x, who);
    static_assert(SplitTuple || !is_std_tuple_v<X>,
                  "lux::BranchLayer/Maxout: pullback with a std::tuple input is not supported");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      auto rs = ordered_tuple([&] {
        return base::template in_child<I>([&] {
          return lux::pullback(this->template get<I>(), input<I>(x), ps.template at<I>(),
                               st.template at<I>());
        });
      }...);
      auto st2 = make_named_tuple_from<ST>(std::make_tuple(std::move(std::get<I>(rs).st)...),
                                           std::index_sequence<I...>{});
      auto backs = std::make_tuple(std::move(std::get<I>(rs).back)...);
      auto finish = [backs = std::move(backs)](const auto& dys) {
        auto gs = ordered_tuple([&] {
          return base::template in_child<I>([&] { return std::get<I>(backs)(std::get<I>(dys)); });
        }...);
        auto dps = make_named_tuple_from<PS>(std::make_tuple(std::move(std::get<I>(gs).dps)...),
                                             std::index_sequence<I...>{});
        if constexpr (SplitTuple && is_std_tuple_v<X>) {
          return gradients{std::make_tuple(std::move(std::get<I>(gs).dx)...), std::move(dps)};
        } else if constexpr (SplitTuple && is_std_vector_v<X>) {
          using DX = std::remove_cvref_t<decltype(std::get<0>(gs).dx)>;
          std::vector<DX> dx;
          (dx.push_back(std::move(std::get<I>(gs).dx)), ...);
          return gradients{std::move(dx), std::move(dps)};
        } else {
          return gradients{sum_gradients(std::move(std::get<I>(gs).dx)...), std::move(dps)};
        }
      };
      if constexpr (std::is_same_v<Conn, none_t>) {
        auto y = std::make_tuple(std::move(std::get<I>(rs).y)...);
        return pullback_result{std::move(y), std::move(st2), std::move(finish)};
      } else {
        auto [y, cb] = connection_pullback(connection, std::get<I>(rs).y...);
        auto back = [finish = std::move(finish), cb = std::move(cb)](const auto& dy) {
          return finish(cb(dy));
        };
        return pullback_result{std::move(y), std::move(st2), std::move(back)};
      }
    }
    (std::make_index_sequence<size>{});
  }

  void print_with(std::ostream& os, const char* who, bool show_conn) const {
    os << who << "(";
    if (show_conn) {
      print_connection<Conn>(os);
      os << ", ";
    }
    this->print_children(os);
    os << ")";
  }

 private:
  template <class X>
  static void check_arity([[maybe_unused]] const X& x, [[maybe_unused]] const char* who) {
    if constexpr (SplitTuple && is_std_tuple_v<X>) {
      static_assert(std::tuple_size_v<X> == sizeof...(Specs),
                    "lux::Parallel: a std::tuple input needs one element per layer");
    } else if constexpr (SplitTuple && is_std_vector_v<X>) {
      require<shape_error>(x.size() == size, who, ": expected a tuple of ", size, " inputs, got ",
                           x.size());
    }
  }
  template <std::size_t I, class X>
  static const auto& input(const X& x) {
    if constexpr (SplitTuple && is_std_tuple_v<X>)
      return std::get<I>(x);
    else if constexpr (SplitTuple && is_std_vector_v<X>)
      return x[I];
    else
      return x;
  }
};

/// fan_base's output_shape / forward / pullback under the layer's name (Derived::name).
template <class Derived, class Base>
struct named_fan : Base {
  using Base::Base;
  template <class S>
  auto output_shape(const S& in) const {
    return Base::output_shape(in, Derived::name);
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    return Base::forward(x, ps, st, Derived::name);
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    return Base::pullback(x, ps, st, Derived::name);
  }
};
}  // namespace detail

// --- Parallel ------------------------------------------------------------------------------
template <class Conn, class... Specs>
struct Parallel
    : detail::named_fan<Parallel<Conn, Specs...>, detail::fan_base<Conn, true, Specs...>> {
  using base = detail::named_fan<Parallel, detail::fan_base<Conn, true, Specs...>>;
  static constexpr const char* name = "Parallel";
  explicit Parallel(Conn c, Specs... s) : base(std::move(c), std::make_tuple(std::move(s)...)) {}

  void print(std::ostream& os) const { this->print_with(os, name, true); }
};
template <class C, class... A>
Parallel(C, A...) -> Parallel<C, detail::wrap_arg_t<A>...>;

// --- BranchLayer ---------------------------------------------------------------------------
/// BranchLayer's keyword arguments: BranchLayer(a, b, {.fusion = lux::add{}}).
template <class F = none_t>
struct branch_options {
  F fusion{};
};
template <class F>
branch_options(F) -> branch_options<F>;

namespace detail {
template <class A>
inline constexpr bool is_branch_options_v = false;
template <class F>
inline constexpr bool is_branch_options_v<branch_options<F>> = true;

template <class... Args>
struct branch_split {
  using last = std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>;
  static constexpr bool has_options = is_branch_options_v<last>;
  static constexpr std::size_t n_layers = sizeof...(Args) - (has_options ? 1 : 0);
  template <class Seq>
  struct specs_of;
  template <std::size_t... I>
  struct specs_of<std::index_sequence<I...>> {
    using type = std::tuple<std::tuple_element_t<I, std::tuple<Args...>>...>;
  };
  using specs = typename specs_of<std::make_index_sequence<n_layers>>::type;
  template <class L>
  struct fusion_of {
    using type = none_t;
  };
  template <class F>
  struct fusion_of<branch_options<F>> {
    using type = F;
  };
  using fusion = typename fusion_of<last>::type;
};
template <class Fusion, class SpecsTuple>
struct branch_base;
template <class Fusion, class... S>
struct branch_base<Fusion, std::tuple<S...>> {
  using type = fan_base<Fusion, false, S...>;
};
template <class... Args>
using branch_base_t = typename branch_base<typename branch_split<Args...>::fusion,
                                           typename branch_split<Args...>::specs>::type;
}  // namespace detail

template <class... Args>
struct BranchLayer : detail::named_fan<BranchLayer<Args...>, detail::branch_base_t<Args...>> {
  using base = detail::named_fan<BranchLayer, detail::branch_base_t<Args...>>;
  using split = detail::branch_split<Args...>;
  static constexpr const char* name = "BranchLayer";

  explicit BranchLayer(Args... args) : base(make(std::make_tuple(std::move(args)...))) {}

  void print(std::ostream& os) const {
    os << name << "(";
    this->print_children(os);
    if constexpr (split::has_options) {
      os << ", fusion=";
      detail::print_connection<typename split::fusion>(os);
    }
    os << ")";
  }

 private:
  static base make(std::tuple<Args...> all) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      typename split::fusion f{};
      if constexpr (split::has_options) f = std::get<sizeof...(Args) - 1>(all).fusion;
      return base(std::move(f), std::make_tuple(std::move(std::get<I>(all))...));
    }
    (std::make_index_sequence<split::n_layers>{});
  }
};
template <class... A>
BranchLayer(A...)
    -> BranchLayer<std::conditional_t<detail::is_branch_options_v<A>, A, detail::wrap_arg_t<A>>...>;

// --- Maxout --------------------------------------------------------------------------------
template <class... Specs>
struct Maxout : detail::named_fan<Maxout<Specs...>, detail::fan_base<max_, false, Specs...>> {
  using base = detail::named_fan<Maxout, detail::fan_base<max_, false, Specs...>>;
  static constexpr const char* name = "Maxout";
  explicit Maxout(Specs... s) : base(max_{}, std::make_tuple(std::move(s)...)) {}

  void print(std::ostream& os) const { this->print_with(os, name, false); }
};
template <class... A>
Maxout(A...) -> Maxout<detail::wrap_arg_t<A>...>;

/// Lux's Maxout(f, n): n layers made by calling factory() n times.
template <std::size_t N, class Factory>
auto maxout(Factory&& factory) {
  static_assert(N >= 1, "lux::maxout: needs at least one layer");
  using L = std::decay_t<decltype(factory())>;
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return Maxout<std::conditional_t<(I < N), L, void>...>(((void)I, factory())...);
  }
  (std::make_index_sequence<N>{});
}

// --- PairwiseFusion ------------------------------------------------------------------------
template <class Conn, class... Specs>
struct PairwiseFusion : detail::children<Specs...> {
  using base = detail::children<Specs...>;
  using base::get;
  using base::size;
  using is_lux_layer = void;
  static constexpr const char* name = "PairwiseFusion";
  static_assert(sizeof...(Specs) >= 1, "lux::PairwiseFusion: needs at least one layer");
  Conn connection{};

  explicit PairwiseFusion(Conn c, Specs... s)
      : base(std::make_tuple(std::move(s)...)), connection(std::move(c)) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return this->template init_children_parameters<T>(r);
  }
  template <class T>
  auto init_states(rng& r) const {
    return this->template init_children_states<T>(r);
  }

  template <class S>
  auto output_shape(const S& in) const {
    check<S>();
    return shape_from<0>(input<0>(in), in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    check<X>();
    auto [y, states] = detail::fold_steps<size>(
        [&](auto i, const auto& yi) {
          constexpr std::size_t I = decltype(i)::value;
          auto r = base::template in_child<I>([&] {
            return apply(this->template get<I>(), yi, ps.template at<I>(), st.template at<I>());
          });
          return std::pair{connection(r.first, input<I + 1>(x)), std::move(r.second)};
        },
        input<0>(x));
    return std::pair{std::move(y), make_named_tuple_from<ST>(std::move(states))};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    check<X>();
    auto [y, steps] = detail::fold_steps<size>(
        [&](auto i, const auto& yi) {
          constexpr std::size_t I = decltype(i)::value;
          auto r = base::template in_child<I>([&] {
            return lux::pullback(this->template get<I>(), yi, ps.template at<I>(),
                                 st.template at<I>());
          });
          auto [out, cb] = detail::connection_pullback(connection, r.y, input<I + 1>(x));
          return std::pair{std::move(out),
                           std::tuple{std::move(r.st), std::move(r.back), std::move(cb)}};
        },
        input<0>(x));
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      auto backs = detail::flat_tuple(
          std::in_place, std::pair{std::move(std::get<1>(detail::flat_get<I>(steps))),
                                   std::move(std::get<2>(detail::flat_get<I>(steps)))}...);
      auto back = [backs = std::move(backs)](const auto& dy) {
        // From the last step to the first: step j undoes connection and layer size-1-j and keeps
        // (dps, the gradient of the connection's second input x_{J+1}).
        auto [dx0, kept] = detail::fold_steps<size>(
            [&](auto j, const auto& dyj) {
              constexpr std::size_t J = size - 1 - decltype(j)::value;
              const auto& [layer_back, conn_back] = detail::flat_get<J>(backs);
              auto dconn = conn_back(dyj);
              auto g = base::template in_child<J>([&] { return layer_back(std::get<0>(dconn)); });
              return std::pair{std::move(g.dx),
                               std::pair{std::move(g.dps), std::move(std::get<1>(dconn))}};
            },
            dy);
        auto in_order = detail::reversed(std::move(kept));
        auto dps = make_named_tuple_from<PS>(std::in_place,
                                             std::move(detail::flat_get<I>(in_order).first)...);
        if constexpr (detail::is_std_tuple_v<X>) {
          return gradients{
              std::make_tuple(std::move(dx0), std::move(detail::flat_get<I>(in_order).second)...),
              std::move(dps)};
        } else {
          return gradients{detail::sum_gradients(
                               std::move(dx0), std::move(detail::flat_get<I>(in_order).second)...),
                           std::move(dps)};
        }
      };
      return pullback_result{
          std::move(y),
          make_named_tuple_from<ST>(std::in_place,
                                    std::move(std::get<0>(detail::flat_get<I>(steps)))...),
          std::move(back)};
    }
    (std::make_index_sequence<size>{});
  }

  void print(std::ostream& os) const {
    os << "PairwiseFusion(";
    detail::print_connection<Conn>(os);
    os << ", ";
    this->print_children(os);
    os << ")";
  }

 private:
  template <class X>
  static constexpr void check() {
    if constexpr (detail::is_std_tuple_v<X>)
      static_assert(std::tuple_size_v<X> == sizeof...(Specs) + 1,
                    "lux::PairwiseFusion: a std::tuple input needs N + 1 elements for N layers");
  }
  template <std::size_t I, class X>
  static const auto& input(const X& x) {
    if constexpr (detail::is_std_tuple_v<X>)
      return std::get<I>(x);
    else
      return x;
  }

  template <std::size_t I, class Y, class S>
  auto shape_from(const Y& y, const S& in) const {
    auto z = base::template in_child<I>([&] { return outputsize(this->template get<I>(), y); });
    auto out = connection.output_shape(z, input<I + 1>(in));
    if constexpr (I + 1 == size)
      return out;
    else
      return shape_from<I + 1>(out, in);
  }
};
template <class C, class... A>
PairwiseFusion(C, A...) -> PairwiseFusion<C, detail::wrap_arg_t<A>...>;

// --- SkipConnection ------------------------------------------------------------------------
template <class Layers, class Conn>
struct SkipConnection {
  using is_lux_layer = void;
  static constexpr const char* name = "SkipConnection";
  /// A layer connection gets its own ps/st: (layers = …, connection = …).
  static constexpr bool conn_is_layer = layer<Conn>;
  Layers layers;
  Conn connection;

  SkipConnection(Layers l, Conn c) : layers(std::move(l)), connection(std::move(c)) {}

  template <class T>
  auto init_parameters(rng& r) const {
    if constexpr (conn_is_layer) {
      rng a = r.fold_in(0), b = r.fold_in(1);
      auto ps = make_named_tuple<"layers", "connection">(initialparameters<T>(a, layers),
                                                         initialparameters<T>(b, connection));
      r.advance();
      return ps;
    } else {
      return initialparameters<T>(r, layers);
    }
  }
  template <class T>
  auto init_states(rng& r) const {
    if constexpr (conn_is_layer) {
      rng a = r.fold_in(0).fold_in(0x5747), b = r.fold_in(1).fold_in(0x5747);
      auto st = make_named_tuple<"layers", "connection">(initialstates<T>(a, layers),
                                                         initialstates<T>(b, connection));
      r.advance();
      return st;
    } else {
      return initialstates<T>(r, layers);
    }
  }

  template <class S>
  auto output_shape(const S& in) const {
    auto ms = detail::with_path("layers", [&] { return outputsize(layers, in); });
    if constexpr (conn_is_layer)
      return detail::with_path("connection",
                               [&] { return outputsize(connection, std::make_tuple(ms, in)); });
    else
      return detail::with_path("connection", [&] { return connection.output_shape(ms, in); });
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto r = detail::with_path("layers", [&] { return apply(layers, x, lps(ps), lst(st)); });
    if constexpr (conn_is_layer) {
      auto c = detail::with_path("connection", [&] {
        return apply(connection, std::make_tuple(std::move(r.first), copy(as_view(x))),
                     ps.template get<"connection">(), st.template get<"connection">());
      });
      return std::pair{std::move(c.first),
                       ST(typename ST::values_type(std::move(r.second), std::move(c.second)))};
    } else {
      auto y = detail::with_path("connection", [&] { return connection(r.first, x); });
      return std::pair{std::move(y), std::move(r.second)};
    }
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto r =
        detail::with_path("layers", [&] { return lux::pullback(layers, x, lps(ps), lst(st)); });
    if constexpr (conn_is_layer) {
      auto c = detail::with_path("connection", [&] {
        return lux::pullback(connection, std::make_tuple(std::move(r.y), copy(as_view(x))),
                             ps.template get<"connection">(), st.template get<"connection">());
      });
      auto back = [lb = std::move(r.back), cb = std::move(c.back)](const auto& dy) {
        auto gc = detail::with_path("connection", [&] { return cb(dy); });
        auto gl = detail::with_path("layers", [&] { return lb(std::get<0>(gc.dx)); });
        return gradients{add{}(gl.dx, std::get<1>(gc.dx)),
                         PS(typename PS::values_type(std::move(gl.dps), std::move(gc.dps)))};
      };
      return pullback_result{std::move(c.y),
                             ST(typename ST::values_type(std::move(r.st), std::move(c.st))),
                             std::move(back)};
    } else {
      auto [y, cb] = detail::with_path(
          "connection", [&] { return detail::connection_pullback(connection, r.y, x); });
      auto back = [lb = std::move(r.back), cb = std::move(cb)](const auto& dy) {
        auto dc = detail::with_path("connection", [&] { return cb(dy); });
        auto gl = detail::with_path("layers", [&] { return lb(std::get<0>(dc)); });
        return gradients{add{}(gl.dx, std::get<1>(dc)), std::move(gl.dps)};
      };
      return pullback_result{std::move(y), std::move(r.st), std::move(back)};
    }
  }

  template <class F>
  void for_each_child(F&& f) const {
    f(std::string_view("layers"), layers);
    if constexpr (conn_is_layer) f(std::string_view("connection"), connection);
  }

  void print(std::ostream& os) const {
    os << "SkipConnection(" << layers << ", ";
    if constexpr (conn_is_layer)
      os << connection;
    else
      detail::print_connection<Conn>(os);
    os << ")";
  }

 private:
  template <class PS>
  static const auto& lps(const PS& ps) {
    if constexpr (conn_is_layer)
      return ps.template get<"layers">();
    else
      return ps;
  }
  template <class ST>
  static const auto& lst(const ST& st) {
    return lps(st);
  }
};
template <class L, class C>
SkipConnection(L, C) -> SkipConnection<detail::wrap_arg_t<L>, C>;

LUX_NAMESPACE_END
