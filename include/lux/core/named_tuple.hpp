// luxcpp — compile-time named tuples: the C++ form of Lux's NamedTuple parameter and state
// trees.
//
//   auto ps = lux::named_tuple{lux::field<"weight">(w), lux::field<"bias">(b)};
//   ps.get<"weight">();  lux::get<"bias">(ps);  decltype(ps)::names  →  {"weight", "bias"}
//
// Trees nest (a Chain's parameters are a named_tuple of its layers' named_tuples, under
// `layer_1 … layer_N`), and every traversal is generic:
//   lux::for_each_leaf(tree, [](std::string_view path, auto& leaf) { ... });  // "layer_2.bias"
//   lux::map_leaves(tree, f)  → a tree of the same names holding f(leaf)
//   lux::zip_leaves(a, b, f)  → calls f(path, leaf_a, leaf_b) over two trees of one structure
// Field names are template arguments (C++20 class-type NTTPs), so a misspelt name is a
// compile error, and access costs nothing at run time.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN

/// A string usable as a template argument: lux::field_name<7>{"weight"}.
template <std::size_t N>
struct field_name {
  char chars[N]{};
  constexpr field_name(const char (&s)[N]) { std::copy_n(s, N, chars); }  // NOLINT: implicit
  constexpr field_name() = default;
  constexpr std::string_view view() const { return {chars, N - 1}; }
  template <std::size_t M>
  constexpr bool operator==(const field_name<M>& other) const {
    return view() == other.view();
  }
};

/// One named value of a named_tuple.
template <field_name Name, class T>
struct named_field {
  using type = T;
  static constexpr auto name = Name;
  T value;
};

/// Makes a field: lux::field<"weight">(tensor). The value is stored by value (moved in).
template <field_name Name, class T>
constexpr named_field<Name, std::decay_t<T>> field(T&& value) {
  return {std::forward<T>(value)};
}

/// `layer_<i>` (1-based, as Lux names container children) as a field_name.
template <std::size_t I>
consteval auto layer_name() {
  static_assert(I >= 1 && I < 1000, "lux::layer_name: index out of range");
  constexpr std::size_t digits = I < 10 ? 1 : (I < 100 ? 2 : 3);
  field_name<7 + digits> n;  // "layer_" + digits + '\0'
  const char prefix[] = "layer_";
  for (std::size_t k = 0; k < 6; ++k) n.chars[k] = prefix[k];
  std::size_t v = I;
  for (std::size_t k = 0; k < digits; ++k) {
    n.chars[6 + digits - 1 - k] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  n.chars[6 + digits] = '\0';
  return n;
}

template <class... Fields>
class named_tuple;

namespace detail {
// --- flat_tuple: the storage of named_tuple ------------------------------------------------
// One base class per element (not std::tuple's recursive chain of bases, whose construction
// costs the compiler O(N^2) for N elements): a Chain of many layers has a parameter tree with
// many fields, and its compile cost must stay linear in their number.
template <std::size_t I, class T>
struct flat_leaf {
  T value;
};
template <class Seq, class... T>
struct flat_tuple_impl;
template <std::size_t... I, class... T>
struct flat_tuple_impl<std::index_sequence<I...>, T...> : flat_leaf<I, T>... {
  // Value-initialized elements (zeros for arithmetic types), as std::tuple's.
  constexpr flat_tuple_impl() requires(std::is_default_constructible_v<T>&&...)
      : flat_leaf<I, T>{}... {}
  template <class... U>
  constexpr explicit flat_tuple_impl(std::in_place_t, U&&... u)
      : flat_leaf<I, T>{std::forward<U>(u)}... {}
  template <class... U>
  constexpr explicit flat_tuple_impl(std::tuple<U...>&& t)
      : flat_leaf<I, T>{std::get<I>(std::move(t))}... {}
};
/// A tuple whose elements are flat_get<I>(t).
template <class... T>
struct flat_tuple : flat_tuple_impl<std::index_sequence_for<T...>, T...> {
  using flat_tuple_impl<std::index_sequence_for<T...>, T...>::flat_tuple_impl;
  static constexpr std::size_t size = sizeof...(T);
};
template <class... U>
flat_tuple(std::in_place_t, U...) -> flat_tuple<U...>;

template <std::size_t I, class T>
constexpr T& flat_get(flat_leaf<I, T>& l) noexcept {
  return l.value;
}
template <std::size_t I, class T>
constexpr const T& flat_get(const flat_leaf<I, T>& l) noexcept {
  return l.value;
}
template <std::size_t I, class T>
constexpr T&& flat_get(flat_leaf<I, T>&& l) noexcept {
  return static_cast<T&&>(l.value);
}
}  // namespace detail

namespace detail {
template <class T>
struct is_named_tuple : std::false_type {};
template <class... F>
struct is_named_tuple<named_tuple<F...>> : std::true_type {};

template <field_name Name, class... Fields>
consteval std::size_t index_of_field() {
  constexpr bool matches[] = {(Fields::name == Name)..., false};
  for (std::size_t i = 0; i < sizeof...(Fields); ++i)
    if (matches[i]) return i;
  return sizeof...(Fields);
}

template <class... Fields>
consteval bool names_unique() {
  constexpr std::array<std::string_view, sizeof...(Fields)> names{Fields::name.view()...};
  for (std::size_t i = 0; i < names.size(); ++i)
    for (std::size_t j = i + 1; j < names.size(); ++j)
      if (names[i] == names[j]) return false;
  return true;
}
}  // namespace detail

template <class T>
inline constexpr bool is_named_tuple_v = detail::is_named_tuple<std::remove_cvref_t<T>>::value;

namespace detail {
template <field_name Requested, field_name... Existing>
struct field_not_found : std::false_type {};
/// What get<missing>() returns after its static_assert, so no second error follows.
struct missing_field {};
inline missing_field missing_field_value{};
}  // namespace detail

template <class... Fields>
class named_tuple {
  static_assert(detail::names_unique<Fields...>(), "lux::named_tuple: field names must be unique");

 public:
  using values_type = std::tuple<typename Fields::type...>;
  static constexpr std::size_t size = sizeof...(Fields);
  static constexpr std::array<std::string_view, size> names{Fields::name.view()...};

  constexpr named_tuple() = default;
  constexpr named_tuple(Fields... fields)  // NOLINT: implicit from fields
      requires(sizeof...(Fields) > 0)
      : values_(std::in_place, std::move(fields.value)...) {}
  /// From the values in field order, as a std::tuple or (std::in_place, values...).
  constexpr explicit named_tuple(values_type values) : values_(std::move(values)) {}
  template <class... V>
  requires(sizeof...(V) == sizeof...(Fields)) constexpr explicit named_tuple(std::in_place_t,
                                                                             V&&... values)
      : values_(std::in_place, std::forward<V>(values)...) {}

  template <field_name Name>
  static constexpr bool has = detail::index_of_field<Name, Fields...>() < size;

  template <field_name Name>
  constexpr auto& get() & {
    if constexpr (checked_index<Name>() < size)
      return detail::flat_get<checked_index<Name>()>(values_);
    else
      return detail::missing_field_value;
  }
  template <field_name Name>
  constexpr const auto& get() const& {
    if constexpr (checked_index<Name>() < size)
      return detail::flat_get<checked_index<Name>()>(values_);
    else
      return detail::missing_field_value;
  }
  template <field_name Name>
  constexpr auto&& get() && {
    if constexpr (checked_index<Name>() < size)
      return detail::flat_get<checked_index<Name>()>(std::move(values_));
    else
      return detail::missing_field_value;
  }
  template <std::size_t I>
  constexpr auto& at() & {
    return detail::flat_get<I>(values_);
  }
  template <std::size_t I>
  constexpr const auto& at() const& {
    return detail::flat_get<I>(values_);
  }

  /// A copy with field `Name` replaced by `value` (whose type may differ: Lux's `merge`).
  template <field_name Name, class V>
  constexpr auto with(V&& value) const {
    constexpr std::size_t idx = checked_index<Name>();
    return with_impl<idx>(std::forward<V>(value), std::make_index_sequence<size>{});
  }

 private:
  // A missing field stops with one static_assert whose note spells the requested name and the
  // names that exist, as field_not_found<"requested", "existing"...>; the index then falls back
  // to 0 so that the caller's code does not cascade into further errors.
  template <field_name Name>
  static consteval std::size_t checked_index() {
    constexpr std::size_t i = detail::index_of_field<Name, Fields...>();
    static_assert(i < size || detail::field_not_found<Name, Fields::name...>::value,
                  "lux::named_tuple: no field with this name (see field_not_found<requested, "
                  "existing...> below; were ps and st swapped?)");
    return i < size ? i : 0;
  }
  template <std::size_t Idx, class V, std::size_t... I>
  constexpr auto with_impl(V&& value, std::index_sequence<I...>) const {
    return named_tuple<
        std::conditional_t<I == Idx, named_field<Fields::name, std::decay_t<V>>, Fields>...>(
        std::in_place, pick<I, Idx>(std::forward<V>(value))...);
  }
  template <std::size_t I, std::size_t Idx, class V>
  constexpr decltype(auto) pick(V&& value) const {
    if constexpr (I == Idx)
      return std::forward<V>(value);
    else
      return detail::flat_get<I>(values_);
  }

  detail::flat_tuple<typename Fields::type...> values_;
};

template <class... Fields>
named_tuple(Fields...) -> named_tuple<Fields...>;

/// The empty tree (a layer without parameters or state).
using empty_tuple = named_tuple<>;

template <field_name Name, class... F>
constexpr auto& get(named_tuple<F...>& t) {
  return t.template get<Name>();
}
template <field_name Name, class... F>
constexpr const auto& get(const named_tuple<F...>& t) {
  return t.template get<Name>();
}

/// Builds a named_tuple from names given as template arguments and values.
template <field_name... Names, class... Values>
constexpr auto make_named_tuple(Values&&... values) {
  static_assert(sizeof...(Names) == sizeof...(Values), "lux::make_named_tuple: one value per name");
  return named_tuple<named_field<Names, std::decay_t<Values>>...>(
      named_field<Names, std::decay_t<Values>>{std::forward<Values>(values)}...);
}

// --- traversal -------------------------------------------------------------------------
namespace detail {
inline std::string join_path(std::string_view prefix, std::string_view name) {
  if (prefix.empty()) return std::string(name);
  std::string p(prefix);
  p += '.';
  p += name;
  return p;
}

template <class Tree, class F>
void for_each_leaf_impl(Tree&& tree, std::string_view prefix, F& f) {
  using T = std::remove_cvref_t<Tree>;
  if constexpr (is_named_tuple_v<T>) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (for_each_leaf_impl(tree.template at<I>(), join_path(prefix, T::names[I]), f), ...);
    }
    (std::make_index_sequence<T::size>{});
  } else {
    f(prefix, tree);
  }
}

template <class Ta, class Tb, class F>
void zip_leaves_impl(Ta&& a, Tb&& b, std::string_view prefix, F& f) {
  using A = std::remove_cvref_t<Ta>;
  using B = std::remove_cvref_t<Tb>;
  if constexpr (is_named_tuple_v<A>) {
    static_assert(is_named_tuple_v<B> && A::size == B::size,
                  "lux::zip_leaves: the two trees must have the same structure");
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (zip_leaves_impl(a.template at<I>(), b.template at<I>(), join_path(prefix, A::names[I]), f),
       ...);
    }
    (std::make_index_sequence<A::size>{});
  } else {
    static_assert(!is_named_tuple_v<B>, "lux::zip_leaves: the two trees differ in structure");
    f(prefix, a, b);
  }
}
}  // namespace detail

/// Calls f(path, leaf) for every leaf in depth-first field order, path = "a.b.c".
template <class Tree, class F>
void for_each_leaf(Tree&& tree, F&& f) {
  detail::for_each_leaf_impl(std::forward<Tree>(tree), "", f);
}

/// Calls f(path, leaf_a, leaf_b) over two trees with the same structure.
template <class Ta, class Tb, class F>
void zip_leaves(Ta&& a, Tb&& b, F&& f) {
  detail::zip_leaves_impl(std::forward<Ta>(a), std::forward<Tb>(b), "", f);
}

namespace detail {
template <class Src, class... V>
struct renamed;
template <class... F, class... V>
struct renamed<named_tuple<F...>, V...> {
  using type = named_tuple<named_field<F::name, V>...>;
};
}  // namespace detail

/// Builds a named_tuple with the names of `Names` (a named_tuple type) and these values.
template <class Names, class... V, std::size_t... I>
auto make_named_tuple_from([[maybe_unused]] std::tuple<V...> values, std::index_sequence<I...>) {
  using R = typename detail::renamed<Names, V...>::type;
  return R(std::in_place, std::get<I>(std::move(values))...);
}
/// The same from the values themselves: make_named_tuple_from<Names>(std::in_place, v...).
template <class Names, class... V>
auto make_named_tuple_from(std::in_place_t, V&&... values) {
  using R = typename detail::renamed<Names, std::decay_t<V>...>::type;
  return R(std::in_place, std::forward<V>(values)...);
}
/// The same from a detail::flat_tuple.
template <class Names, class... V>
auto make_named_tuple_from(detail::flat_tuple<V...>&& values) {
  using R = typename detail::renamed<Names, V...>::type;
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return R(std::in_place, detail::flat_get<I>(std::move(values))...);
  }
  (std::index_sequence_for<V...>{});
}

/// A tree with the same field names holding f(leaf) for every leaf.
template <class Tree, class F>
auto map_leaves(const Tree& tree, F&& f) {
  if constexpr (is_named_tuple_v<Tree>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using Fields = std::tuple<decltype(map_leaves(tree.template at<I>(), f))...>;
      return make_named_tuple_from<Tree>(Fields(map_leaves(tree.template at<I>(), f)...),
                                         std::index_sequence<I...>{});
    }
    (std::make_index_sequence<Tree::size>{});
  } else {
    return f(tree);
  }
}

/// Number of leaves of a tree.
template <class Tree>
std::size_t leaf_count(const Tree& tree) {
  std::size_t n = 0;
  for_each_leaf(tree, [&](std::string_view, const auto&) { ++n; });
  return n;
}

LUX_NAMESPACE_END
