// luxcpp — parameter and state trees to and from safetensors: lux::save, lux::load,
// lux::serialize_safetensors, lux::named, lux::name_map. See lux/io/safetensors.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/random.hpp"
#include "lux/core/tensor.hpp"
#include "lux/io/safetensors/file_io.hpp"
#include "lux/io/safetensors/format.hpp"

LUX_NAMESPACE_BEGIN

/// A tree (or a single leaf) under a name prefix: lux::named("params", ps) stores ps's leaf
/// `layer_1.weight` as `params.layer_1.weight`, and a leaf named alone as the prefix itself (an
/// empty prefix adds nothing).
/// Holds a reference to an lvalue and a copy of an rvalue (e.g. a temporary tree of views).
template <class Tree>
struct named_tree {
  std::string name;
  Tree tree;
};
template <class Tree>
named_tree<Tree> named(std::string name, Tree&& tree) {
  return {std::move(name), std::forward<Tree>(tree)};
}

/// What a name_map rule does with its tensor.
enum class name_transform {
  none,       ///< the bytes as they are (the shape reversed into Lux order)
  transpose,  ///< rank 2: the file's row-major (a, b) read as Lux's column-major (a, b) — a
              ///< PyTorch Linear weight (out, in) as a Lux Dense weight (out, in)
  ignore      ///< skip the file tensor `file` and/or leave the tree leaf `tree` as it is
};

/// One rule: the tensor called `file` in the file is the leaf at dotted path `tree` (which
/// includes any lux::named prefix). An ignore rule may give only one of the two names.
struct name_rule {
  std::string file;
  std::string tree;
  name_transform transform = name_transform::none;
};

/// Renames between a foreign checkpoint's tensor names and a tree's paths. Names no rule
/// mentions map to themselves. Used by load (file → tree) and by save (tree → file). Two rules
/// with the same file name or the same tree path are an argument_error, and so (in save/load) is
/// a rule whose tree path is no leaf of the trees.
class name_map {
 public:
  name_map() = default;
  name_map(std::initializer_list<name_rule> rules) {
    for (const auto& r : rules) add(r);
  }
  name_map& add(name_rule rule) {
    const bool ign = rule.transform == name_transform::ignore;
    require<argument_error>(
        ign ? !(rule.file.empty() && rule.tree.empty()) : !(rule.file.empty() || rule.tree.empty()),
        "name_map: a rule needs a file name and a tree path (an ignore rule "
        "at least one), got '",
        rule.file, "' -> '", rule.tree, "'");
    require<argument_error>(rule.file.empty() || !by_file_.contains(rule.file),
                            "name_map: two rules for the file tensor '", rule.file, "'");
    require<argument_error>(rule.tree.empty() || !by_tree_.contains(rule.tree),
                            "name_map: two rules for the tree path '", rule.tree, "'");
    if (!rule.file.empty()) by_file_.emplace(rule.file, rules_.size());
    if (!rule.tree.empty()) by_tree_.emplace(rule.tree, rules_.size());
    rules_.push_back(std::move(rule));
    return *this;
  }
  std::span<const name_rule> rules() const noexcept { return rules_; }
  /// The rule for the file tensor `name`, or nullptr.
  const name_rule* by_file(std::string_view name) const noexcept {
    const auto it = by_file_.find(name);
    return it == by_file_.end() ? nullptr : &rules_[it->second];
  }
  /// The rule for the tree path `path`, or nullptr.
  const name_rule* by_tree(std::string_view path) const noexcept {
    const auto it = by_tree_.find(path);
    return it == by_tree_.end() ? nullptr : &rules_[it->second];
  }

 private:
  std::vector<name_rule> rules_;
  std::map<std::string, std::size_t, std::less<>> by_file_, by_tree_;
};

namespace detail::st {

template <class T>
struct is_named_tree : std::false_type {};
template <class T>
struct is_named_tree<named_tree<T>> : std::true_type {};

template <class A>
inline constexpr bool is_named_tree_v = is_named_tree<std::remove_cvref_t<A>>::value;
template <class A>
inline constexpr bool is_name_map_v = std::is_same_v<std::remove_cvref_t<A>, name_map>;
template <class A>
inline constexpr bool is_metadata_v = std::is_same_v<std::remove_cvref_t<A>, safetensors_metadata>;
template <class A>
inline constexpr bool is_tree_arg_v = !is_name_map_v<A> && !is_metadata_v<A>;

template <class T>
struct tensor_leaf : std::false_type {};
template <class T, std::size_t N, class D>
struct tensor_leaf<Tensor<T, N, D>> : std::true_type {
  using element = T;
  using device = D;
  static constexpr std::size_t rank = N;
  static constexpr bool owning = true;
  static constexpr bool contiguous = true;
};
template <class T, std::size_t N, class D, layout L>
struct tensor_leaf<basic_view<T, N, D, L>> : std::true_type {
  using element = T;
  using device = D;
  static constexpr std::size_t rank = N;
  static constexpr bool owning = false;
  static constexpr bool contiguous = L == layout::contiguous;
};

/// Floating-point scalars stored with their own dtype.
template <class T>
inline constexpr bool float_scalar_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Eigen::half> ||
    std::is_same_v<T, Eigen::bfloat16>;
/// Integer scalars (stored as I64, as PyTorch stores its scalar counters).
template <class T>
inline constexpr bool int_scalar_v =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= 8;

template <class Leaf>
inline constexpr bool supported_leaf_v =
    tensor_leaf<Leaf>::value || std::is_same_v<Leaf, bool> || int_scalar_v<Leaf> ||
    float_scalar_v<Leaf> || std::is_same_v<Leaf, rng>;

template <class Leaf>
void check_leaf_type() {
  static_assert(supported_leaf_v<Leaf>,
                "lux safetensors: a tree leaf must be a lux::Tensor or lux::TensorView/StridedView "
                "(element type bool, an integer, Eigen::half, Eigen::bfloat16, float or double), "
                "bool, an integer, a floating-point scalar, or lux::rng");
  if constexpr (tensor_leaf<Leaf>::value)
    static_assert(std::is_same_v<typename tensor_leaf<Leaf>::device, cpu>,
                  "lux safetensors: tensors must be on the host; copy them with lux::to<lux::cpu>");
}

template <std::size_t N>
std::string file_order(const shape_t<N>& lux) {
  std::string s = "[";
  for (std::size_t i = 0; i < N; ++i) s += (i ? ", " : "") + std::to_string(lux[N - 1 - i]);
  return s + "]";
}

/// Calls f(k, index, offset) for the elements of `shape` in column-major order k, with the
/// element's offset under `strides`.
template <std::size_t N, class F>
void for_each_offset(const shape_t<N>& shape, const shape_t<N>& strides, F&& f) {
  const index_t n = shape_numel(shape, "safetensors");
  shape_t<N> idx{};
  for (index_t k = 0; k < n; ++k) {
    index_t off = 0;
    for (std::size_t d = 0; d < N; ++d) off += idx[d] * strides[d];
    f(k, idx, off);
    for (std::size_t d = 0; d < N; ++d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// --- save: one source of bytes per leaf ---------------------------------------------------------

struct leaf_source {
  std::string name;
  safetensors_dtype dtype{};
  std::vector<index_t> torch_shape;
  std::span<const std::byte> borrowed;  ///< the leaf's own memory, or
  std::vector<std::byte> owned;         ///< a copy (scalars, transposed or strided tensors)
  std::span<const std::byte> bytes() const noexcept {
    return owned.empty() ? borrowed : std::span<const std::byte>(owned);
  }
};

template <class V>
void put(std::vector<std::byte>& out, const V& v) {
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(V));
}

template <class Leaf>
leaf_source make_source(std::string name, const Leaf& leaf, name_transform t) {
  check_leaf_type<Leaf>();
  leaf_source s;
  s.name = std::move(name);
  if constexpr (tensor_leaf<Leaf>::value) {
    using T = std::remove_cv_t<typename tensor_leaf<Leaf>::element>;
    constexpr std::size_t N = tensor_leaf<Leaf>::rank;
    s.dtype = safetensors_dtype_of<T>();
    const auto& shape = leaf.shape();
    const auto nbytes = static_cast<std::size_t>(leaf.numel()) * sizeof(T);
    if (t == name_transform::transpose) {
      require<argument_error>(
          N == 2, "lux::save: '", s.name,
          "': the transpose rule applies to rank-2 tensors, this one has shape ", shape);
      if constexpr (N == 2) {
        // Lux (a, b) column-major → row-major (a, b): element (i, j) at i·b + j.
        s.torch_shape = {shape[0], shape[1]};
        s.owned.resize(nbytes);
        auto* out = reinterpret_cast<T*>(s.owned.data());
        for (index_t j = 0; j < shape[1]; ++j)
          for (index_t i = 0; i < shape[0]; ++i) {
            const T v = leaf(i, j);
            std::memcpy(static_cast<void*>(out + (i * shape[1] + j)), &v, sizeof(T));
          }
      }
      return s;
    }
    s.torch_shape.assign(shape.rbegin(), shape.rend());
    if (nbytes == 0) return s;
    if constexpr (tensor_leaf<Leaf>::contiguous) {
      s.borrowed = {reinterpret_cast<const std::byte*>(leaf.data()), nbytes};
    } else {  // gather the strided view in column-major order
      s.owned.resize(nbytes);
      for_each_offset(shape, leaf.strides(), [&](index_t k, const shape_t<N>&, index_t off) {
        std::memcpy(s.owned.data() + static_cast<std::size_t>(k) * sizeof(T),
                    static_cast<const void*>(leaf.data() + off), sizeof(T));
      });
    }
  } else {
    require<argument_error>(t == name_transform::none, "lux::save: '", s.name,
                            "': a scalar or rng leaf cannot be transposed");
    if constexpr (std::is_same_v<Leaf, bool>) {
      s.dtype = safetensors_dtype::BOOL;
      s.owned.push_back(std::byte{leaf ? std::uint8_t{1} : std::uint8_t{0}});
    } else if constexpr (int_scalar_v<Leaf>) {
      if constexpr (std::is_unsigned_v<Leaf> && sizeof(Leaf) == 8)
        require<argument_error>(
            leaf <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
            "lux::save: '", s.name, "': the integer ", leaf,
            " does not fit the I64 a scalar is stored as");
      s.dtype = safetensors_dtype::I64;
      put(s.owned, static_cast<std::int64_t>(leaf));
    } else if constexpr (float_scalar_v<Leaf>) {
      s.dtype = safetensors_dtype_of<Leaf>();
      put(s.owned, leaf);
    } else {  // rng: I64 [4] = {key word 0, key word 1, counter, position} (64-bit patterns)
      s.dtype = safetensors_dtype::I64;
      s.torch_shape = {4};
      put(s.owned, static_cast<std::int64_t>(leaf.key().v[0]));
      put(s.owned, static_cast<std::int64_t>(leaf.key().v[1]));
      put(s.owned, std::bit_cast<std::int64_t>(leaf.counter()));
      put(s.owned, std::bit_cast<std::int64_t>(leaf.position()));
    }
  }
  return s;
}

// --- load: one target per leaf; plan() validates, the returned commit writes ---------------------

using commit_fn = std::function<void()>;
using plan_fn =
    std::function<commit_fn(const safetensors_entry&, name_transform, std::string_view source)>;

struct leaf_target {
  std::string path;
  plan_fn plan;
};

[[noreturn]] inline void fail_mismatch(std::string_view src, const safetensors_entry& e,
                                       std::string_view path, std::string_view expected) {
  fail_tensor(src, e.name,
              concat("is ", describe(e), ", but the tree leaf '", path, "' is ", expected));
}

/// Element k of an I64 entry (the caller has checked the size).
inline std::int64_t read_i64(const safetensors_entry& e, std::size_t k) {
  std::int64_t v;
  std::memcpy(&v, e.bytes.data() + 8 * k, 8);
  return v;
}

template <class Leaf>
plan_fn make_plan(std::string path, Leaf& leaf) {
  using L = std::remove_const_t<Leaf>;
  check_leaf_type<L>();
  if constexpr (tensor_leaf<L>::value) {
    using E = typename tensor_leaf<L>::element;
    using T = std::remove_cv_t<E>;
    static constexpr std::size_t N = tensor_leaf<L>::rank;
    static_assert(!std::is_const_v<E>, "lux::load: cannot load into a view of const elements");
    static_assert(!(tensor_leaf<L>::owning && std::is_const_v<Leaf>),
                  "lux::load: cannot load into a const Tensor (pass the tree as non-const)");
    return [path, &leaf](const safetensors_entry& e, name_transform t,
                         std::string_view src) -> commit_fn {
      constexpr safetensors_dtype want = safetensors_dtype_of<T>();
      const bool transpose = t == name_transform::transpose;
      if (transpose)
        require<argument_error>(N == 2, "lux::load: the transpose rule for '", e.name,
                                "' targets '", path, "' of rank ", N, "; it needs rank 2");
      const auto expected = [&] {
        return concat(to_string(want), " ", transpose ? "(transposed) " : "",
                      file_order(leaf.shape()), " (Lux order ", leaf.shape(), ")");
      };
      if (e.dtype != want || e.rank() != N) fail_mismatch(src, e, path, expected());
      shape_t<N> shape{};  // the leaf's Lux shape that the file entry describes
      for (std::size_t d = 0; d < N; ++d) shape[d] = transpose ? e.torch_shape[d] : e.lux_shape[d];
      bool adopt = false;  // an empty owning Tensor (a state not yet materialized) takes the shape
      if (shape != leaf.shape()) {
        if constexpr (tensor_leaf<L>::owning) adopt = leaf.numel() == 0;
        if (!adopt) fail_mismatch(src, e, path, expected());
      }
      if constexpr (std::is_same_v<T, bool>) check_bool_bytes(src, e);
      return [&leaf, &e, shape, adopt, transpose] {
        (void)adopt, (void)transpose;  // unused in some instantiations
        if constexpr (tensor_leaf<L>::owning) {
          if (adopt) leaf = Tensor<T, N>::uninitialized(shape);
        }
        const auto* bytes = e.bytes.data();
        if constexpr (tensor_leaf<L>::contiguous) {
          if (!transpose) {
            if (!e.bytes.empty())
              std::memcpy(static_cast<void*>(leaf.data()), bytes, e.bytes.size());
            return;
          }
        }
        // element by element, through the leaf's strides; the file's element k (column-major),
        // or (i, j) at i·b + j of its row-major (a, b) when transposed
        for_each_offset(shape, leaf.strides(), [&](index_t k, const shape_t<N>& idx, index_t off) {
          index_t from = k;
          if constexpr (N == 2)
            if (transpose) from = idx[0] * shape[1] + idx[1];
          std::memcpy(static_cast<void*>(leaf.data() + off),
                      bytes + static_cast<std::size_t>(from) * sizeof(T), sizeof(T));
        });
      };
    };
  } else {
    static_assert(!std::is_const_v<Leaf>, "lux::load: cannot load into a const scalar leaf");
    return [path, &leaf](const safetensors_entry& e, name_transform t,
                         std::string_view src) -> commit_fn {
      require<argument_error>(t == name_transform::none, "lux::load: '", path,
                              "': a scalar or rng leaf cannot be transposed");
      if constexpr (std::is_same_v<L, bool>) {
        if (e.dtype != safetensors_dtype::BOOL || e.rank() != 0)
          fail_mismatch(src, e, path, "BOOL [] (a bool)");
        check_bool_bytes(src, e);
        return [&leaf, &e] { leaf = std::to_integer<unsigned>(e.bytes[0]) != 0; };
      } else if constexpr (int_scalar_v<L>) {
        if (e.dtype != safetensors_dtype::I64 || e.rank() != 0)
          fail_mismatch(src, e, path, "I64 [] (an integer)");
        const std::int64_t v = read_i64(e, 0);
        const bool fits =
            std::is_signed_v<L>
                ? v >= static_cast<std::int64_t>(std::numeric_limits<L>::min()) &&
                      v <= static_cast<std::int64_t>(std::numeric_limits<L>::max())
                : v >= 0 && static_cast<std::uint64_t>(v) <=
                                static_cast<std::uint64_t>(std::numeric_limits<L>::max());
        if (!fits)
          fail_tensor(src, e.name,
                      concat("the value ", v, " does not fit the integer leaf '", path, "' (",
                             sizeof(L), " bytes)"));
        return [&leaf, v] { leaf = static_cast<L>(v); };
      } else if constexpr (float_scalar_v<L>) {
        constexpr safetensors_dtype want = safetensors_dtype_of<L>();
        if (e.dtype != want || e.rank() != 0)
          fail_mismatch(src, e, path, concat(to_string(want), " [] (a scalar)"));
        return [&leaf, &e] { std::memcpy(static_cast<void*>(&leaf), e.bytes.data(), sizeof(L)); };
      } else {  // rng
        if (e.dtype != safetensors_dtype::I64 || e.rank() != 1 || e.torch_shape[0] != 4)
          fail_mismatch(src, e, path, "I64 [4] (an rng: key words, counter, position)");
        const std::int64_t k0 = read_i64(e, 0), k1 = read_i64(e, 1);
        constexpr std::int64_t word = std::int64_t{1} << 32;
        if (k0 < 0 || k0 >= word || k1 < 0 || k1 >= word)
          fail_tensor(src, e.name,
                      concat("rng key words ", k0, ", ", k1, " are not 32-bit unsigned values"));
        const rng r(uint2x32{{static_cast<std::uint32_t>(k0), static_cast<std::uint32_t>(k1)}},
                    std::bit_cast<std::uint64_t>(read_i64(e, 2)),
                    std::bit_cast<std::uint64_t>(read_i64(e, 3)));
        return [&leaf, r] { leaf = r; };
      }
    };
  }
}

// --- walking the arguments ------------------------------------------------------------------

/// Calls f(full_name, leaf) for every leaf of every tree argument.
template <class F, class... Args>
void for_each_tree_leaf(F&& f, Args&&... args) {
  auto one = [&](auto&& arg) {
    using A = decltype(arg);
    if constexpr (is_named_tree_v<A>) {
      for_each_leaf(arg.tree, [&](std::string_view path, auto& leaf) {
        f(path.empty() || arg.name.empty() ? concat(arg.name, path) : concat(arg.name, ".", path),
          leaf);
      });
    } else if constexpr (is_tree_arg_v<A>) {
      for_each_leaf(arg, [&](std::string_view path, auto& leaf) { f(std::string(path), leaf); });
    }
  };
  (one(std::forward<Args>(args)), ...);
}

/// The one argument of type Want among args (nullptr when there is none).
template <class Want, class... Args>
const Want* find_arg(const Args&... args) {
  static_assert((0 + ... + int(std::is_same_v<std::remove_cvref_t<Args>, Want>)) <= 1,
                "lux safetensors: at most one name_map and at most one metadata argument");
  const Want* found = nullptr;
  auto pick = [&](const auto& a) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(a)>, Want>) found = &a;
  };
  (pick(args), ...);
  return found;
}

inline void check_leaf_name(std::string_view op, const std::string& name) {
  require<argument_error>(!name.empty(), op,
                          ": a leaf outside any named tuple needs a name: lux::named(\"x\", leaf)");
  require<argument_error>(name != "__metadata__", op,
                          ": '__metadata__' is reserved by the format and cannot name a tensor");
}

/// Every rule's tree path must be a leaf (catches misspelt paths).
template <class Contains>
void check_rule_paths(std::string_view op, const name_map* map, Contains&& contains) {
  if (!map) return;
  for (const auto& r : map->rules())
    require<argument_error>(r.tree.empty() || contains(r.tree), op, ": the name_map rule for '",
                            r.file, "' names the tree path '", r.tree,
                            "', which is no leaf of the trees given");
}

/// The file's tensors in write order, with the header (padded to a multiple of 8 with spaces).
struct prepared_file {
  std::vector<leaf_source> sources;
  std::string header;
  std::uint64_t data_bytes = 0;
};

template <class... Args>
prepared_file prepare(Args&&... args) {
  const name_map* map = find_arg<name_map>(args...);
  const safetensors_metadata* meta = find_arg<safetensors_metadata>(args...);
  prepared_file p;
  std::map<std::string, int, std::less<>> paths;
  for_each_tree_leaf(
      [&](std::string name, const auto& leaf) {
        check_leaf_name("lux::save", name);
        require<argument_error>(paths.emplace(name, 0).second, "lux::save: two leaves named '",
                                name, "'");
        const name_rule* rule = map ? map->by_tree(name) : nullptr;
        if (rule && rule->transform == name_transform::ignore) return;
        const name_transform t = rule ? rule->transform : name_transform::none;
        p.sources.push_back(make_source(rule ? rule->file : std::move(name), leaf, t));
      },
      std::forward<Args>(args)...);
  check_rule_paths("lux::save", map, [&](const std::string& s) { return paths.contains(s); });
  {
    std::map<std::string_view, int> names;
    for (const auto& s : p.sources) {
      check_leaf_name("lux::save", s.name);
      require<argument_error>(names.emplace(s.name, 0).second,
                              "lux::save: two tensors would be named '", s.name, "'");
    }
  }
  // Larger elements first (as the reference writer orders by dtype): with the header padded to a
  // multiple of 8, every tensor then starts at a multiple of its element size.
  std::stable_sort(p.sources.begin(), p.sources.end(), [](const auto& a, const auto& b) {
    return bit_size(a.dtype) > bit_size(b.dtype);
  });
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (meta && !meta->empty()) {
    auto& m = h["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : *meta) m[k] = v;
  }
  for (const auto& s : p.sources) {
    const std::uint64_t n = s.bytes().size();
    auto& entry = h[s.name] = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(to_string(s.dtype));
    entry["shape"] = s.torch_shape;
    entry["data_offsets"] = nlohmann::ordered_json::array({p.data_bytes, p.data_bytes + n});
    p.data_bytes += n;
  }
  try {
    p.header = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw argument_error(
        concat("lux::save: a tensor name or metadata string is not valid UTF-8 (", e.what(), ")"));
  }
  p.header.resize((p.header.size() + 7) / 8 * 8, ' ');
  require<argument_error>(p.header.size() <= max_header_bytes, "lux::save: the header would be ",
                          p.header.size(), " bytes, over the format's limit of ", max_header_bytes);
  return p;
}

template <class Sink>
void write_prepared(const prepared_file& p, Sink& sink) {
  std::byte len[8];
  std::uint64_t n = p.header.size();
  for (auto& b : len) {
    b = static_cast<std::byte>(n & 0xFF);
    n >>= 8;
  }
  sink.write(len, 8);
  sink.write(p.header.data(), p.header.size());
  for (const auto& s : p.sources) {
    const auto bytes = s.bytes();
    if (!bytes.empty()) sink.write(bytes.data(), bytes.size());
  }
}

struct vector_sink {
  std::vector<std::byte>& out;
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    out.insert(out.end(), p, p + n);
  }
};

}  // namespace detail::st

/// The safetensors bytes of the given trees (arguments as for lux::save), in memory.
template <class... Args>
std::vector<std::byte> serialize_safetensors(Args&&... args) {
  const auto p = detail::st::prepare(std::forward<Args>(args)...);
  std::vector<std::byte> out;
  out.reserve(8 + p.header.size() + p.data_bytes);
  detail::st::vector_sink sink{out};
  detail::st::write_prepared(p, sink);
  return out;
}

/// Writes the trees to `path` atomically (see lux/io/safetensors.hpp). Arguments, in any order:
/// trees (their leaves' dotted paths are the names), lux::named(prefix, tree) parts, at most one
/// lux::name_map (tree path → file name) and at most one lux::safetensors_metadata.
template <class... Args>
void save(const std::filesystem::path& path, Args&&... args) {
  static_assert(sizeof...(Args) > 0, "lux::save: nothing to save");
  const auto p = detail::st::prepare(std::forward<Args>(args)...);
  detail::atomic_file_writer w(path);
  detail::st::write_prepared(p, w);
  w.commit();
}

/// Fills the trees in place from a parsed file (arguments as for save, without metadata).
/// Strict: every leaf gets a tensor of its dtype and shape, and every tensor of the file goes to a
/// leaf (or is ignored by a rule); otherwise io_error naming the file and the tensor, and the
/// trees are left unchanged. Returns the file's metadata.
template <class... Args>
safetensors_metadata load(const safetensors_view& file, Args&&... args) {
  using namespace detail::st;
  using detail::concat;
  static_assert(sizeof...(Args) > 0, "lux::load: nothing to load into");
  static_assert((0 + ... + int(is_metadata_v<Args>)) == 0,
                "lux::load: metadata is returned by load, not passed to it");
  const name_map* map = find_arg<name_map>(args...);
  const std::string_view src = file.source();

  std::vector<leaf_target> targets;
  std::map<std::string, std::size_t, std::less<>> index;
  for_each_tree_leaf(
      [&](std::string name, auto& leaf) {
        check_leaf_name("lux::load", name);
        require<argument_error>(index.emplace(name, targets.size()).second,
                                "lux::load: two leaves named '", name, "'");
        auto plan = make_plan(name, leaf);
        targets.push_back({std::move(name), std::move(plan)});
      },
      std::forward<Args>(args)...);
  check_rule_paths("lux::load", map, [&](const std::string& s) { return index.contains(s); });
  auto ignored_leaf = [&](std::string_view path) {
    const name_rule* r = map ? map->by_tree(path) : nullptr;
    return r && r->transform == name_transform::ignore;
  };

  // Plan everything first (every check), then commit: an error leaves the trees untouched.
  std::vector<const safetensors_entry*> source_of(targets.size(), nullptr);
  std::vector<commit_fn> commits;
  for (const auto& e : file.entries()) {
    const name_rule* rule = map ? map->by_file(e.name) : nullptr;
    if (rule && rule->transform == name_transform::ignore) continue;
    const std::string_view path = rule ? std::string_view(rule->tree) : std::string_view(e.name);
    if (ignored_leaf(path)) continue;
    const auto it = index.find(path);
    if (it == index.end())
      fail_tensor(src, e.name,
                  concat("is not expected: the trees have no leaf '", path, "'",
                         map ? " (and no name_map rule ignores it)" : ""));
    if (source_of[it->second])
      fail_tensor(src, e.name,
                  concat("and tensor '", source_of[it->second]->name, "' both map to the leaf '",
                         path, "'"));
    source_of[it->second] = &e;
    commits.push_back(
        targets[it->second].plan(e, rule ? rule->transform : name_transform::none, src));
  }
  std::vector<std::string> missing;  // the file names expected, described
  std::string first_missing;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (source_of[i] || ignored_leaf(targets[i].path)) continue;
    const name_rule* r = map ? map->by_tree(targets[i].path) : nullptr;
    if (missing.empty()) first_missing = r ? r->file : targets[i].path;
    missing.push_back(r ? concat("'", r->file, "' (leaf '", targets[i].path, "')")
                        : concat("'", targets[i].path, "'"));
  }
  if (!missing.empty()) {
    std::string list;
    for (std::size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += concat(" and ", missing.size() - 8, " more");
    fail_tensor(src, first_missing,
                concat("missing: the file lacks ", missing.size(), " tensor",
                       missing.size() == 1 ? "" : "s", " the trees expect: ", list));
  }
  for (auto& c : commits) c();
  return file.metadata();
}

/// Reads `path` (read_safetensors) and fills the trees in place (load(file, ...) above).
template <class... Args>
safetensors_metadata load(const std::filesystem::path& path, Args&&... args) {
  const safetensors_file file = read_safetensors(path);
  return load(static_cast<const safetensors_view&>(file), std::forward<Args>(args)...);
}

LUX_NAMESPACE_END
