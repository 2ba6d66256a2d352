// luxcpp — the layer interface (LuxCore): explicit parameters and states.
//
// A layer is a small value type holding hyperparameters only. Parameters and states live
// outside it in named tuples (lux/core/named_tuple.hpp) whose field names are Lux's.
// A layer type L provides (as members; every one optional except forward):
//
//   template <class T> auto init_parameters(rng&) const   → named_tuple (default: empty)
//   auto init_states(rng&) const                          → named_tuple (default: empty)
//   template <class X, class PS, class ST>
//   auto forward(const X&, const PS&, const ST&) const    → std::pair{y, st'}
//   template <class X, class PS, class ST>
//   auto pullback(const X&, const PS&, const ST&) const   → lux::pullback_result{y, st', back}
//        where back(dy) → lux::gradients{dx, dps}, dps having exactly the structure of ps
//   template <std::size_t N> auto output_shape(const shape_t<N>&) const  → shape
//   void print(std::ostream&) const                       (Lux's display)
//
// and the free functions below are the interface users call, exactly as in Lux:
//   auto [ps, st] = lux::setup<float>(rng, layer);
//   auto [y, st2] = lux::apply(layer, x, ps, st);
//   auto [y, st2, back] = lux::pullback(layer, x, ps, st);  auto [dx, dps] = back(dy);
#pragma once

#include <algorithm>

#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/random.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// What pullback returns: the output, the new state, and the vector–Jacobian product.
template <class Y, class ST, class Back>
struct pullback_result {
  Y y;
  ST st;
  Back back;
};
template <class Y, class ST, class Back>
pullback_result(Y, ST, Back) -> pullback_result<Y, ST, Back>;

/// What a pullback's `back(dy)` returns: the input gradient and the parameter gradients.
template <class DX, class DPS>
struct gradients {
  DX dx;
  DPS dps;
};
template <class DX, class DPS>
gradients(DX, DPS) -> gradients<DX, DPS>;

/// A lux layer: a type that declares `using is_lux_layer = void;` (and has `forward`, and
/// optionally init_parameters / init_states / pullback / output_shape). The tag is required: a
/// type with a `forward` member but no tag is rejected by lux::WrappedFunction with a message
/// (instead of being wrapped as a plain function and failing far away).
template <class L>
concept layer = requires {
  typename L::is_lux_layer;
};

// --- parameters and states ---------------------------------------------------------------
/// The layer's freshly initialized parameters (element type T, Lux's Float32 by default).
template <class T = float, layer L>
auto initialparameters(rng& r, const L& l) {
  if constexpr (requires { l.template init_parameters<T>(r); })
    return l.template init_parameters<T>(r);
  else
    return empty_tuple{};
}
/// The layer's initial states.
template <class T = float, layer L>
auto initialstates(rng& r, const L& l) {
  if constexpr (requires { l.template init_states<T>(r); })
    return l.template init_states<T>(r);
  else if constexpr (requires { l.init_states(r); })
    return l.init_states(r);
  else
    return empty_tuple{};
}
/// Lux's setup: (parameters, states), both drawn from `r` (which advances).
template <class T = float, layer L>
auto setup(rng& r, const L& l) {
  auto ps = initialparameters<T>(r, l);
  auto st = initialstates<T>(r, l);
  return std::pair{std::move(ps), std::move(st)};
}

namespace detail {
template <class Leaf>
index_t leaf_length(const Leaf& leaf) {
  if constexpr (is_array_v<Leaf>)
    return leaf.numel();
  else
    return 1;  // a non-array leaf (the training flag, an rng) counts one, as in Lux
}

/// Throws shape_error "<prefix>: parameter <field> has shape (...), expected (...)" when a
/// parameter leaf's shape differs from the one the layer's hyperparameters give (a leaf of the
/// wrong rank is a compile error).
template <class Prefix, class Leaf, std::size_t N>
void check_parameter_shape(const Prefix& prefix, std::string_view field, const Leaf& leaf,
                           const shape_t<N>& expected) {
  static_assert(array_traits<std::remove_cvref_t<Leaf>>::rank == N,
                "lux layer: a parameter has the wrong rank");
  const auto s = as_view(leaf).shape();
  require<shape_error>(s == expected, prefix, ": parameter ", field, " has shape ", s,
                       ", expected ", expected);
}
}  // namespace detail

/// Number of scalars in a parameter tree (or a layer's freshly initialized parameters).
template <class Tree>
index_t parameterlength(const Tree& ps) {
  if constexpr (layer<Tree>) {
    rng r(1234);
    return parameterlength(initialparameters(r, ps));
  } else {
    index_t n = 0;
    for_each_leaf(ps, [&](std::string_view, const auto& leaf) { n += detail::leaf_length(leaf); });
    return n;
  }
}
/// Number of state leaves: array elements, plus one for each non-array leaf.
template <class Tree>
index_t statelength(const Tree& st) {
  if constexpr (layer<Tree>) {
    rng r(1234);
    return statelength(initialstates(r, st));
  } else {
    index_t n = 0;
    for_each_leaf(st, [&](std::string_view, const auto& leaf) { n += detail::leaf_length(leaf); });
    return n;
  }
}

// --- running -------------------------------------------------------------------------------
namespace detail {
/// True unless both trees are named tuples whose field names differ: ps / st passed to apply or
/// pullback must have the fields the layer's setup produces (leaf types may differ: double
/// parameters, flat views).
template <class Given, class Expected>
consteval bool same_field_names() {
  if constexpr (is_named_tuple_v<Given> && is_named_tuple_v<Expected>)
    return std::remove_cvref_t<Given>::names.size() == Expected::names.size() &&
           std::equal(Expected::names.begin(), Expected::names.end(),
                      std::remove_cvref_t<Given>::names.begin());
  else
    return true;
}
template <class L, class PS, class ST>
consteval bool trees_match() {
  using EP = decltype(initialparameters<float>(std::declval<rng&>(), std::declval<const L&>()));
  using ES = decltype(initialstates<float>(std::declval<rng&>(), std::declval<const L&>()));
  constexpr bool ps_ok = same_field_names<PS, EP>();
  constexpr bool st_ok = same_field_names<ST, ES>();
  constexpr bool swapped = !ps_ok && same_field_names<PS, ES>() && same_field_names<ST, EP>();
  static_assert(!swapped,
                "lux::apply / lux::pullback: ps and st are swapped (the order is x, ps, st)");
  static_assert(swapped || ps_ok,
                "lux::apply / lux::pullback: ps does not have the fields the layer's "
                "initialparameters produces (pass the ps of lux::setup(rng, layer))");
  static_assert(swapped || st_ok,
                "lux::apply / lux::pullback: st does not have the fields the layer's "
                "initialstates produces (pass the st of lux::setup(rng, layer))");
  return ps_ok && st_ok;
}
}  // namespace detail

/// Lux's apply: (y, st'). Never mutates ps.
template <layer L, class X, class PS, class ST>
auto apply(const L& l, const X& x, const PS& ps, const ST& st) {
  if constexpr (detail::trees_match<L, PS, ST>()) return l.forward(x, ps, st);
}
/// The forward pass and its vector–Jacobian product.
template <layer L, class X, class PS, class ST>
auto pullback(const L& l, const X& x, const PS& ps, const ST& st) {
  if constexpr (detail::trees_match<L, PS, ST>()) {
    static_assert(
        requires { l.pullback(x, ps, st); },
        "lux::pullback: this layer has no pullback for these argument types (a "
        "WrappedFunction needs a function object with a `pullback` member)");
    return l.pullback(x, ps, st);
  }
}
/// The output shape for an input of shape `in`, computed without running the layer.
template <layer L, std::size_t N>
auto outputsize(const L& l, const shape_t<N>& in) {
  return l.output_shape(in);
}

// --- states --------------------------------------------------------------------------------
/// A copy of `st` with every field called `key` set to `value` (where the types allow);
/// fields of other names and types are untouched. Lux's update_state.
template <class Tree, class V>
Tree update_state(Tree st, std::string_view key, const V& value) {
  const auto visit = [&](auto& self, auto& node) -> void {
    using N = std::remove_cvref_t<decltype(node)>;
    if constexpr (is_named_tuple_v<N>) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (
            [&] {
              auto& child = node.template at<I>();
              using C = std::remove_cvref_t<decltype(child)>;
              if constexpr (std::is_assignable_v<C&, const V&> && !is_named_tuple_v<C>) {
                if (N::names[I] == key) child = value;
              }
              self(self, child);
            }(),
            ...);
      }
      (std::make_index_sequence<N::size>{});
    }
  };
  visit(visit, st);
  return st;
}
/// Every `training` flag set to false (Lux's testmode).
template <class Tree>
Tree testmode(Tree st) {
  return update_state(std::move(st), "training", false);
}
/// Every `training` flag set to true (Lux's trainmode).
template <class Tree>
Tree trainmode(Tree st) {
  return update_state(std::move(st), "training", true);
}

// --- display -------------------------------------------------------------------------------
/// Prints a layer as Lux displays it (`Dense(784 => 64, relu)`).
template <layer L>
std::ostream& operator<<(std::ostream& os, const L& l) {
  if constexpr (requires { l.print(os); })
    l.print(os);
  else
    os << L::name << "()";
  return os;
}
template <layer L>
std::string to_string(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

LUX_NAMESPACE_END
