// luxcpp — Lux's Chain: layers applied in sequence, parameters and states nested under
// layer_1 … layer_N (or the names given with lux::field<"name">(layer)).
//
//   lux::Chain model(lux::Dense({784, 64}, lux::relu{}), lux::Dense({64, 10}));
//   lux::Chain named(lux::field<"encoder">(lux::Dense({4, 2})), lux::Dense({2, 4}));
//   lux::Chain raw(lux::disable_optimizations, a, b);      // keeps the structure as given
//   auto [ps, st] = lux::setup<float>(rng, model);
//   auto [y, st2] = lux::apply(model, x, ps, st);
//   auto [y, st2, back] = lux::pullback(model, x, ps, st); auto [dx, dps] = back(dy);
//   model.get<0>()  (0-based, over the stored layers);  model.slice<1, 3>()  (a Chain of [1, 3))
//
// Structural optimizations (as Lux's "Built-In Layers" documentation describes them, unless
// disable_optimizations):
//   * a nested (unnamed, optimized) Chain is flattened into its parent;
//   * NoOpLayers are dropped;
//   * a Chain left with one layer behaves as that layer (its ps/st are that layer's own, not
//     wrapped in layer_1, errors carry no prefix, it prints as that layer); with none left it
//     behaves as NoOpLayer.
//   ⚠ Lux ≥ 1.0's code no longer flattens nested Chains; Lux's "Built-In Layers" documentation
//   describes flattening, and luxcpp follows the documentation. A Chain built with
//   disable_optimizations is never flattened into its parent, and a child given a name
//   (lux::field) is never flattened either.
// Flattened children keep user-given names; unnamed children are numbered by their position in
// the flattened list. A callable that is not a layer is wrapped as WrappedFunction.
//
// Each child's initial parameters and states come from its own stream `rng.fold_in(i)`,
// independent of evaluation order; `rng` then advances once.
// A shape or argument error inside a child is re-thrown with the child's path prepended (forward,
// pullback, back and outputsize):
//   layer_3 (Dense 256 => 120): expected input (256, B), got (200, 32)
//
// Compile cost is linear in the number of layers (detail::fold_steps, container_base.hpp).
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/layers/container_base.hpp"
#include "lux/layers/layer.hpp"
#include "lux/layers/utility.hpp"

LUX_NAMESPACE_BEGIN

/// outputsize for layers with several inputs (a std::tuple of shapes).
template <layer L, class... S>
auto outputsize(const L& l, const std::tuple<S...>& in) {
  return l.output_shape(in);
}

/// The tag that turns Chain's structural optimizations off.
struct disable_optimizations_t {
  explicit constexpr disable_optimizations_t() = default;
};
inline constexpr disable_optimizations_t disable_optimizations{};

template <class... Args>
struct Chain;

namespace detail {
template <class A>
struct chain_flat {
  using type = type_list<A>;
};
template <>
struct chain_flat<NoOpLayer> {
  using type = type_list<>;
};
template <class... In>
struct chain_flat<Chain<In...>> {
  using type = typename Chain<In...>::specs;
};
template <class... In>
struct chain_flat<Chain<disable_optimizations_t, In...>> {
  using type = type_list<Chain<disable_optimizations_t, In...>>;
};

template <class... Args>
struct chain_specs {
  static constexpr bool optimized = true;
  using type = typename concat_lists<typename chain_flat<Args>::type...>::type;
};
template <class... Args>
struct chain_specs<disable_optimizations_t, Args...> {
  static constexpr bool optimized = false;
  using type = type_list<Args...>;
};

template <class A>
auto chain_flat_value(const A& a) {
  if constexpr (std::is_same_v<A, NoOpLayer>) {
    return std::tuple<>{};
  } else if constexpr (requires { typename A::is_lux_chain; }) {
    if constexpr (A::optimized)
      return a.storage;
    else
      return std::tuple<A>{a};
  } else {
    return std::tuple<A>{a};
  }
}
}  // namespace detail

template <class... Args>
struct Chain : detail::children_of<typename detail::chain_specs<Args...>::type>::type {
  using base = typename detail::children_of<typename detail::chain_specs<Args...>::type>::type;
  using specs = typename base::specs;
  using base::get;
  using base::size;
  using base::storage;
  using is_lux_layer = void;
  using is_lux_chain = void;
  static constexpr const char* name = "Chain";
  static constexpr bool optimized = detail::chain_specs<Args...>::optimized;
  /// One layer left after the optimizations: the Chain behaves as that layer.
  static constexpr bool transparent = optimized && size == 1;
  /// None left: the Chain behaves as NoOpLayer.
  static constexpr bool is_noop = optimized && size == 0;
  static_assert(optimized ? true : size >= 1, "lux::Chain: needs at least one layer");

  explicit Chain(Args... args) : base(build(std::move(args)...)) {}

  /// The stored layers [B, E) as a Chain (names of unnamed layers renumbered).
  template <std::size_t B, std::size_t E>
  auto slice() const {
    static_assert(B < E && E <= size, "lux::Chain::slice: needs B < E <= size");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      if constexpr (optimized)
        return Chain<std::tuple_element_t<B + I, decltype(storage)>...>(
            std::get<B + I>(storage)...);
      else
        return Chain<disable_optimizations_t, std::tuple_element_t<B + I, decltype(storage)>...>(
            disable_optimizations, std::get<B + I>(storage)...);
    }
    (std::make_index_sequence<E - B>{});
  }

  template <class T>
  auto init_parameters(rng& r) const {
    if constexpr (is_noop)
      return empty_tuple{};
    else if constexpr (transparent)
      return initialparameters<T>(r, this->template get<0>());
    else
      return this->template init_children_parameters<T>(r);
  }
  template <class T>
  auto init_states(rng& r) const {
    if constexpr (is_noop)
      return empty_tuple{};
    else if constexpr (transparent)
      return initialstates<T>(r, this->template get<0>());
    else
      return this->template init_children_states<T>(r);
  }

  template <class S>
  auto output_shape(const S& in) const {
    if constexpr (is_noop)
      return in;
    else if constexpr (transparent)
      return outputsize(this->template get<0>(), in);
    else
      return output_shape_from<0>(in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    if constexpr (is_noop) {
      return std::pair{x, st};
    } else if constexpr (transparent) {
      return apply(this->template get<0>(), x, ps, st);
    } else {
      auto [y, states] = detail::fold_steps<size>(
          [&](auto i, const auto& xi) {
            constexpr std::size_t I = decltype(i)::value;
            return base::template in_child<I>([&] {
              return apply(this->template get<I>(), xi, ps.template at<I>(), st.template at<I>());
            });
          },
          x);
      return std::pair{std::move(y), make_named_tuple_from<ST>(std::move(states))};
    }
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    if constexpr (is_noop) {
      return NoOpLayer{}.pullback(x, ps, st);
    } else if constexpr (transparent) {
      return lux::pullback(this->template get<0>(), x, ps, st);
    } else {
      auto [y, steps] = detail::fold_steps<size>(
          [&](auto i, const auto& xi) {
            constexpr std::size_t I = decltype(i)::value;
            auto r = base::template in_child<I>([&] {
              return lux::pullback(this->template get<I>(), xi, ps.template at<I>(),
                                   st.template at<I>());
            });
            return std::pair{std::move(r.y), std::pair{std::move(r.st), std::move(r.back)}};
          },
          x);
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        auto back =
            [backs = detail::flat_tuple(
                 std::in_place, std::move(detail::flat_get<I>(steps).second)...)](const auto& dy) {
              // From the last layer to the first: step j runs layer size-1-j's pullback.
              auto [dx, grads] = detail::fold_steps<size>(
                  [&](auto j, const auto& dyj) {
                    constexpr std::size_t J = size - 1 - decltype(j)::value;
                    auto g =
                        base::template in_child<J>([&] { return detail::flat_get<J>(backs)(dyj); });
                    return std::pair{std::move(g.dx), std::move(g.dps)};
                  },
                  dy);
              return gradients{std::move(dx),
                               make_named_tuple_from<PS>(detail::reversed(std::move(grads)))};
            };
        return pullback_result{std::move(y),
                               make_named_tuple_from<ST>(
                                   std::in_place, std::move(detail::flat_get<I>(steps).first)...),
                               std::move(back)};
      }
      (std::make_index_sequence<size>{});
    }
  }

  /// f(name, child) for each child (a transparent Chain walks its layer's children).
  template <class F>
  void for_each_child(F&& f) const requires(!transparent || detail::has_children_v<base>) {
    if constexpr (transparent)
      this->template get<0>().for_each_child(f);
    else
      base::for_each_child(f);
  }

  void print(std::ostream& os) const {
    if constexpr (is_noop) {
      os << "NoOpLayer()";
    } else if constexpr (transparent) {
      os << this->template get<0>();
    } else {
      os << "Chain(";
      this->print_children(os);
      os << ")";
    }
  }

 private:
  static auto build(Args... args) {
    if constexpr (optimized)
      return std::tuple_cat(detail::chain_flat_value(args)...);
    else
      return [&](disable_optimizations_t, auto... rest) {
        return std::make_tuple(std::move(rest)...);
      }(std::move(args)...);
  }

  template <std::size_t I, class S>
  auto output_shape_from(const S& in) const {
    auto out = base::template in_child<I>([&] { return outputsize(this->template get<I>(), in); });
    if constexpr (I + 1 == size)
      return out;
    else
      return output_shape_from<I + 1>(out);
  }
};

template <class... A>
Chain(disable_optimizations_t, A...) -> Chain<disable_optimizations_t, detail::wrap_arg_t<A>...>;
template <class... A>
Chain(A...) -> Chain<detail::wrap_arg_t<A>...>;

LUX_NAMESPACE_END
