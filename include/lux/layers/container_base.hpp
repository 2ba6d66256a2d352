// luxcpp — the machinery every container layer shares (Chain, Parallel, BranchLayer, Maxout,
// PairwiseFusion, SkipConnection):
//   detail::children<Specs...>   the children: storage, names (layer_1 … or lux::field names),
//                                per-child initialization, traversal, printing;
//   detail::with_path            errors raised inside a child get the child's path prepended;
//   detail::fold_steps<N>        a sequence of N steps whose types change from step to step
//                                (layer i's output is layer i+1's input), compiled in linear time.
//
// Compile cost is linear in the number of children: every traversal is a pack expansion over an
// index sequence, or (fold_steps) a recursion whose levels each see only their own input type and
// one shared result buffer — never a recursion that re-packs growing tuples (std::tuple_cat at
// every level made a 64-layer Chain cost gigabytes of compiler memory).
#pragma once

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/layers/layer.hpp"
#include "lux/layers/utility.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
/// An error carrying a container path; the message is path + tail. E is lux::shape_error or
/// lux::argument_error, so `catch (const lux::shape_error&)` still sees it.
template <class E>
class path_error : public E {
 public:
  path_error(std::string path, std::string tail)
      : E(path + tail), path_(std::move(path)), tail_(std::move(tail)) {}
  const std::string& path() const noexcept { return path_; }
  const std::string& tail() const noexcept { return tail_; }

 private:
  std::string path_, tail_;
};
using path_shape_error = path_error<shape_error>;

/// Throws `e` again with the child path `name` prepended: "name (Dense 3 => 4): …" for an
/// error whose message starts with "<operation>: ", "outer.inner (…): …" when nested.
template <class E>
[[noreturn]] void rethrow_with_path(std::string_view name, const E& e) {
  if (const auto* p = dynamic_cast<const path_error<E>*>(&e))
    throw path_error<E>(std::string(name) + "." + p->path(), p->tail());
  const std::string msg = e.what();
  const auto colon = msg.find(": ");
  if (colon == std::string::npos) throw path_error<E>(std::string(name), ": " + msg);
  throw path_error<E>(std::string(name),
                      " (" + msg.substr(0, colon) + "): " + msg.substr(colon + 2));
}

/// Runs f(); a shape_error or argument_error from inside gets the child path `name` prepended.
template <class F>
decltype(auto) with_path(std::string_view name, F&& f) {
  try {
    return f();
  } catch (const shape_error& e) {
    rethrow_with_path(name, e);
  } catch (const argument_error& e) {
    rethrow_with_path(name, e);
  }
}

// --- child specs: a layer, or lux::named_field<"name", layer> ------------------------------
template <class C>
struct child_traits {
  using layer_type = C;
  static constexpr bool named = false;
};
template <field_name N, class L>
struct child_traits<named_field<N, L>> {
  using layer_type = L;
  static constexpr bool named = true;
};
template <class C>
const auto& unwrap_child(const C& c) {
  if constexpr (child_traits<C>::named)
    return c.value;
  else
    return c;
}
template <std::size_t I, class C>
consteval auto child_name() {
  if constexpr (child_traits<C>::named)
    return C::name;
  else
    return layer_name<I + 1>();
}

/// A constructor argument as a child spec: layers and named fields as given, other callables
/// wrapped as WrappedFunction.
template <class A>
struct wrap_arg {
  using type = std::conditional_t<layer<A>, A, WrappedFunction<A>>;
};
template <field_name N, class L>
struct wrap_arg<named_field<N, L>> {
  using type = named_field<N, L>;
};
template <class A>
using wrap_arg_t = typename wrap_arg<std::decay_t<A>>::type;

template <class... Ts>
struct type_list {};

/// std::tuple{fs()...} evaluated left to right (a braced list; make_tuple's arguments are not
/// ordered), keeping each result's type as is (no std::tuple CTAD unwrapping).
template <class... F>
auto ordered_tuple(F&&... fs) {
  return std::tuple<decltype(fs())...>{fs()...};
}

/// The children of a container: storage, names, initialization, traversal.
template <class... Specs>
struct children {
  static constexpr std::size_t size = sizeof...(Specs);
  using specs = type_list<Specs...>;
  std::tuple<Specs...> storage;

  template <std::size_t I>
  static constexpr auto name_v = child_name<I, std::tuple_element_t<I, std::tuple<Specs...>>>();
  template <std::size_t I>
  static constexpr std::string_view name() {
    return name_v<I>.view();
  }

  children() = default;
  explicit children(std::tuple<Specs...> s) : storage(std::move(s)) {}

  /// The I-th child layer (0-based).
  template <std::size_t I>
  const auto& get() const {
    return unwrap_child(std::get<I>(storage));
  }

  /// Calls f(name, child) for each child in order.
  template <class F>
  void for_each_child(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(name<I>(), get<I>()), ...); }
    (std::make_index_sequence<size>{});
  }

  /// (name_1 = init(rng.fold_in(0), child_1), …); rng advances once.
  template <class T>
  auto init_children_parameters(rng& r) const {
    auto ps =
        init_each(r, [](rng& child, const auto& l) { return initialparameters<T>(child, l); });
    r.advance();
    return ps;
  }
  template <class T>
  auto init_children_states(rng& r) const {
    // fold_in with an offset so that states never reuse the parameters' streams.
    auto st = init_each(r, [](rng& child, const auto& l) {
      rng s = child.fold_in(0x5747);
      return initialstates<T>(s, l);
    });
    r.advance();
    return st;
  }

  /// Runs f() with errors prefixed by the I-th child's name.
  template <std::size_t I, class F>
  static decltype(auto) in_child(F&& f) {
    return with_path(name<I>(), std::forward<F>(f));
  }

  void print_children(std::ostream& os) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((os << (I ? ", " : "") << name<I>() << " = " << get<I>()), ...);
    }
    (std::make_index_sequence<size>{});
  }

 private:
  template <class Init>
  auto init_each(rng& r, Init init) const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return make_named_tuple<name_v<I>...>([&] {
        rng child = r.fold_in(I);
        return init(child, get<I>());
      }()...);
    }
    (std::make_index_sequence<size>{});
  }
};
/// Whether a transparent container's only child is itself a container.
template <class B>
inline constexpr bool has_children_v = false;
template <class S>
inline constexpr bool has_children_v<children<S>> =
    requires(const typename child_traits<S>::layer_type& l) {
  l.for_each_child([](std::string_view, const auto&) {});
};

template <class List>
struct children_of;
template <class... S>
struct children_of<type_list<S...>> {
  using type = children<S...>;
};

template <class... L>
struct concat_lists;
template <>
struct concat_lists<> {
  using type = type_list<>;
};
template <class... A>
struct concat_lists<type_list<A...>> {
  using type = type_list<A...>;
};
template <class... A, class... B, class... Rest>
struct concat_lists<type_list<A...>, type_list<B...>, Rest...> {
  using type = typename concat_lists<type_list<A..., B...>, Rest...>::type;
};

// --- fold_steps: a sequence of steps in linear compile time ---------------------------------
namespace fold {
template <std::size_t I>
using index = std::integral_constant<std::size_t, I>;
template <class Step, std::size_t I, class X>
using step_result_t = std::remove_cvref_t<std::invoke_result_t<const Step&, index<I>, const X&>>;

/// The input type of step I (memoized: one instantiation per I).
template <class Step, class X0, std::size_t I>
struct input {
  using type =
      typename step_result_t<Step, I - 1, typename input<Step, X0, I - 1>::type>::first_type;
};
template <class Step, class X0>
struct input<Step, X0, 0> {
  using type = X0;
};
/// What step I keeps (the second member of its result).
template <class Step, class X0, std::size_t I>
using kept_t = typename step_result_t<Step, I, typename input<Step, X0, I>::type>::second_type;

template <std::size_t I, std::size_t N, class Step, class X, class Kept>
auto run(const Step& step, const X& x, Kept& kept) {
  auto r = step(index<I>{}, x);
  flat_get<I>(kept).emplace(std::move(r.second));
  if constexpr (I + 1 == N)
    return std::move(r.first);
  else
    return run<I + 1, N>(step, r.first, kept);
}
}  // namespace fold

/// Runs (x_{i+1}, k_i) = step(std::integral_constant<std::size_t, i>{}, x_i) for i = 0 … N-1
/// from x_0 = x (step returns a std::pair) and returns std::pair{x_N, flat_tuple{k_0, …}}
/// (elements flat_get<i>).
/// Each step sees only its own input; what it keeps goes to a buffer of std::optionals whose
/// types are computed once per step, so the compile cost is linear in N.
template <std::size_t N, class Step, class X>
auto fold_steps(const Step& step, const X& x) {
  static_assert(N >= 1, "lux::detail::fold_steps: needs at least one step");
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    flat_tuple<std::optional<fold::kept_t<Step, X, I>>...> kept;
    auto y = fold::run<0, N>(step, x, kept);
    return std::pair{std::move(y), flat_tuple<fold::kept_t<Step, X, I>...>(
                                       std::in_place, std::move(*flat_get<I>(kept))...)};
  }
  (std::make_index_sequence<N>{});
}

/// The elements of a flat_tuple in reverse order (moved).
template <class... T>
auto reversed(flat_tuple<T...>&& t) {
  constexpr std::size_t N = sizeof...(T);
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return flat_tuple(std::in_place, flat_get<N - 1 - I>(std::move(t))...);
  }
  (std::make_index_sequence<N>{});
}
}  // namespace detail

LUX_NAMESPACE_END
