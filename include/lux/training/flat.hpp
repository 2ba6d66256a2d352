// luxcpp — flat parameter storage: every parameter of a model in one contiguous, aligned
// buffer, with the named-tuple tree as views over it (what ComponentArrays gives Lux users).
//
//   auto [ps, st] = lux::setup<float>(rng, model);
//   lux::flat_tree fp(ps);                  // copies ps into one buffer
//   auto [y, st2] = lux::apply(model, x, fp.tree(), st);   // the views work as parameters
//   lux::flat_tree grads = fp.zeros_like(); // same layout, zero
//   grads.accumulate(dps);                  // dps (a pullback's) added leaf by leaf
//
// Why: an optimizer update is then one vectorized pass over a buffer, zeroing gradients one
// memset, a global norm one reduction, and a data-parallel all-reduce one call.
//
// Layout: leaves in lux::for_each_leaf order (depth first, field order), each starting at a
// multiple of 64 bytes so every view is as aligned as a Tensor; the gaps are zero and stay zero
// under every elementwise rule (zero gradient, zero parameter). flat_layout records each leaf's
// dotted name, offset, element count and shape (Lux order), so optimizers can work per leaf
// where a rule needs it (Optimisers.jl's ClipNorm is per array) and checkpoints can name them.
#pragma once

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// One leaf of a flat layout.
struct flat_entry {
  std::string name;            ///< dotted path, e.g. "layer_2.weight"
  index_t offset = 0;          ///< first element in the buffer
  index_t numel = 0;           ///< element count
  std::vector<index_t> shape;  ///< Lux (column-major) order
  bool operator==(const flat_entry&) const = default;
};

namespace detail::flat {
template <class Leaf>
using leaf_t = std::remove_cvref_t<Leaf>;

/// The element type shared by every leaf of a parameter tree (void for an empty tree).
template <class Tree>
struct tree_value {
  using type = typename array_traits<std::remove_cvref_t<Tree>>::value_type;
};
template <>
struct tree_value<named_tuple<>> {
  using type = void;
};
template <class F0, class... F>
struct tree_value<named_tuple<F0, F...>> {
  using type = typename tree_value<typename F0::type>::type;
};

template <class T, class Tree>
consteval bool all_leaves_are() {
  using U = std::remove_cvref_t<Tree>;
  if constexpr (is_named_tuple_v<U>) {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      return (all_leaves_are<T, std::tuple_element_t<I, typename U::values_type>>() && ...);
    }
    (std::make_index_sequence<U::size>{});
  } else if constexpr (is_array_v<U>) {
    return std::is_same_v<typename array_traits<U>::value_type, T> &&
           std::is_same_v<typename array_traits<U>::device_type, cpu>;
  } else {
    return false;
  }
}

/// Elements per 64-byte alignment unit.
template <class T>
inline constexpr index_t align_elems = static_cast<index_t>(64 / sizeof(T) > 0 ? 64 / sizeof(T)
                                                                               : 1);
}  // namespace detail::flat

/// Where each leaf of a tree lives in a flat buffer.
class flat_layout {
 public:
  flat_layout() = default;

  /// The layout of a tree of arrays of element type T (offsets aligned to 64 bytes).
  template <class T, class Tree>
  static flat_layout of(const Tree& tree) {
    flat_layout l;
    for_each_leaf(tree, [&](std::string_view path, const auto& leaf) {
      const auto v = as_view(leaf);
      flat_entry e;
      e.name = std::string(path);
      e.offset = l.size_;
      e.numel = v.numel();
      e.shape.assign(v.shape().begin(), v.shape().end());
      constexpr index_t a = detail::flat::align_elems<T>;
      l.size_ += (e.numel + a - 1) / a * a;
      l.entries_.push_back(std::move(e));
    });
    return l;
  }

  const std::vector<flat_entry>& entries() const noexcept { return entries_; }
  /// Elements in the buffer, alignment gaps included.
  index_t size() const noexcept { return size_; }
  /// Elements in the leaves (the parameter count).
  index_t parameter_count() const noexcept {
    index_t n = 0;
    for (const auto& e : entries_) n += e.numel;
    return n;
  }
  bool operator==(const flat_layout&) const = default;

 private:
  std::vector<flat_entry> entries_;
  index_t size_ = 0;
};

/// A zero-initialized, 64-byte aligned buffer with a layout.
template <class T>
class flat_buffer {
 public:
  using value_type = T;
  flat_buffer() = default;
  explicit flat_buffer(flat_layout layout)
      : layout_(std::move(layout)), storage_(shape_t<1>{layout_.size()}) {}

  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  index_t size() const noexcept { return storage_.numel(); }
  const flat_layout& layout() const noexcept { return layout_; }
  std::span<T> span() noexcept { return {data(), static_cast<std::size_t>(size())}; }
  std::span<const T> span() const noexcept { return {data(), static_cast<std::size_t>(size())}; }
  /// The elements of leaf i.
  std::span<T> segment(std::size_t i) noexcept {
    const auto& e = layout_.entries()[i];
    return {data() + e.offset, static_cast<std::size_t>(e.numel)};
  }
  std::span<const T> segment(std::size_t i) const noexcept {
    const auto& e = layout_.entries()[i];
    return {data() + e.offset, static_cast<std::size_t>(e.numel)};
  }
  TensorView<T, 1> view() noexcept { return storage_.view(); }
  TensorView<const T, 1> view() const noexcept { return storage_.cview(); }
  /// Sets every element to zero (one memset).
  void zero() noexcept {
    if (size() > 0) std::memset(static_cast<void*>(data()), 0, sizeof(T) * size());
  }

 private:
  flat_layout layout_;
  Tensor<T, 1> storage_;
};

/// A parameter tree stored flat: `tree()` has the structure and names of the tree it was built
/// from, with TensorView<T, N> leaves over one flat_buffer<T>. Copying copies the buffer and
/// re-points the views; moving keeps them (the buffer does not move).
template <class Tree>
class flat_tree {
 public:
  using source_type = Tree;
  using value_type = typename detail::flat::tree_value<Tree>::type;
  static_assert(!std::is_void_v<value_type> || std::is_same_v<Tree, empty_tuple>,
                "lux::flat_tree: the tree has no array leaves");
  using T = std::conditional_t<std::is_void_v<value_type>, float, value_type>;
  static_assert(detail::flat::all_leaves_are<T, Tree>(),
                "lux::flat_tree: every leaf must be a host array of one element type (a "
                "parameter tree as lux::setup returns it)");

 private:
  template <class Leaf>
  static auto view_type_of() {
    using A = array_traits<std::remove_cvref_t<Leaf>>;
    return TensorView<T, A::rank>{};
  }
  template <class Sub>
  static auto views_of_type() {
    if constexpr (is_named_tuple_v<Sub>) {
      return []<std::size_t... I>(std::index_sequence<I...>) {
        using V = std::tuple<
            decltype(views_of_type<std::tuple_element_t<I, typename Sub::values_type>>())...>;
        return make_named_tuple_from<Sub>(V{}, std::index_sequence<I...>{});
      }
      (std::make_index_sequence<Sub::size>{});
    } else {
      return view_type_of<Sub>();
    }
  }

 public:
  using views_type = decltype(views_of_type<Tree>());

  flat_tree() = default;
  /// Copies every leaf of `tree` into a new flat buffer.
  explicit flat_tree(const Tree& tree) : buffer_(flat_layout::of<T>(tree)) {
    rebuild_views();
    assign(tree);
  }
  /// A zero buffer with `layout` (which must be the layout of a Tree).
  static flat_tree with_layout(const flat_layout& layout) {
    flat_tree f;
    f.buffer_ = flat_buffer<T>(layout);
    f.rebuild_views();
    return f;
  }
  flat_tree(const flat_tree& o) : buffer_(o.buffer_) { rebuild_views(); }
  flat_tree(flat_tree&&) noexcept = default;
  flat_tree& operator=(const flat_tree& o) {
    if (this != &o) {
      buffer_ = o.buffer_;
      rebuild_views();
    }
    return *this;
  }
  flat_tree& operator=(flat_tree&&) noexcept = default;

  /// The tree of views (use it wherever the original tree was used).
  views_type& tree() noexcept { return views_; }
  const views_type& tree() const noexcept { return views_; }
  flat_buffer<T>& buffer() noexcept { return buffer_; }
  const flat_buffer<T>& buffer() const noexcept { return buffer_; }
  const flat_layout& layout() const noexcept { return buffer_.layout(); }

  /// A flat_tree of the same layout, all zero.
  flat_tree zeros_like() const { return with_layout(layout()); }
  void zero() noexcept { buffer_.zero(); }

  /// Copies the leaves of `src` (same structure and shapes) into the buffer.
  template <class Src>
  void assign(const Src& src) {
    visit_leaves(src, "flat_tree::assign", [](T* dst, const auto* s, index_t n) {
      for (index_t i = 0; i < n; ++i) dst[i] = static_cast<T>(s[i]);
    });
  }
  /// Adds the leaves of `grads` (same structure and shapes as the tree; a `lux::none` leaf
  /// counts as zero) into the buffer.
  template <class Src>
  void accumulate(const Src& grads) {
    visit_leaves(grads, "flat_tree::accumulate", [](T* dst, const auto* s, index_t n) {
      for (index_t i = 0; i < n; ++i) dst[i] += static_cast<T>(s[i]);
    });
  }
  /// An owning copy with the original structure (Tensor leaves).
  Tree to_tree() const {
    return map_leaves(views_, [](const auto& v) {
      using V = std::remove_cvref_t<decltype(v)>;
      auto t = Tensor<T, V::rank>::uninitialized(v.shape());
      std::copy_n(v.data(), v.numel(), t.data());
      return t;
    });
  }

 private:
  void rebuild_views() {
    std::size_t k = 0;
    views_ = build<views_type>(k);
  }
  template <class Sub>
  Sub build(std::size_t& k) {
    if constexpr (is_named_tuple_v<Sub>) {
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        // Braced initialization evaluates left to right: leaves are taken in layout order.
        return Sub(typename Sub::values_type{
            build<std::tuple_element_t<I, typename Sub::values_type>>(k)...});
      }
      (std::make_index_sequence<Sub::size>{});
    } else {
      const auto& e = buffer_.layout().entries()[k++];
      shape_t<Sub::rank> s{};
      std::copy(e.shape.begin(), e.shape.end(), s.begin());
      return Sub(buffer_.data() + e.offset, s);
    }
  }
  template <class Src, class Op>
  void visit_leaves(const Src& src, const char* op, Op&& f) {
    std::size_t k = 0;
    zip_leaves(views_, src, [&](std::string_view path, const auto& dst, const auto& s) {
      ++k;
      using S = std::remove_cvref_t<decltype(s)>;
      if constexpr (std::is_same_v<S, none_t>) {
        return;
      } else {
        static_assert(is_array_v<S>, "lux::flat_tree: the source tree must hold arrays");
        const auto sv = as_view(s);
        require<shape_error>(sv.shape() == dst.shape(), op, ": leaf ", path, " has shape ",
                             sv.shape(), ", expected ", dst.shape());
        if constexpr (array_traits<S>::contiguous) {
          f(dst.data(), sv.data(), dst.numel());
        } else {
          const auto c = copy(sv);
          f(dst.data(), c.data(), dst.numel());
        }
      }
    });
    (void)k;
  }

  flat_buffer<T> buffer_;
  views_type views_;
};

template <class Tree>
flat_tree(const Tree&) -> flat_tree<Tree>;

LUX_NAMESPACE_END
