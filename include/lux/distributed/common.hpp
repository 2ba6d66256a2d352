// luxcpp — data-parallel training, Lux's DistributedUtils in C++: what every backend shares.
//
//   lux::distributed::mpi_backend backend;                     // lux/distributed/mpi.hpp
//   lux::distributed::synchronize(backend, ps);                // every rank starts from rank 0's
//   lux::distributed::allreduce(backend, grads, lux::distributed::reduce_op::avg);
//   lux::TrainState ts(model, ps, st, lux::distributed::DistributedOptimizer(backend, Adam{}));
//
// The collectives (Lux: bcast!, allreduce!, reduce!, synchronize!!) take one array (a Tensor or
// a contiguous TensorView on the backend's device), one scalar, or a whole tree (a named_tuple of
// those, as lux::setup returns), and work in place. A backend is a small handle (copies share
// one communicator); it provides the element collectives on raw buffers, and two host-side
// helpers used here to keep the ranks in step: all_equal(v) (one tiny all-reduce) and
// allgather(string).
//
// Ranks must agree on what they exchange, or MPI/NCCL would hang or sum unrelated bytes. So a
// tree collective first checks that every rank passes the same layout — the leaves' names,
// element types and shapes, in order — with one all-reduce of a 64-bit fingerprint (min and
// max); only when they differ are the layouts gathered, and every rank then throws the same
// lux::distributed_error naming the first differing leaf and the ranks that disagree. (Ranks
// that call different collectives at all still hang: that is MPI's contract, and the reason the
// sharded loader checks that every rank gets the same number of batches.)
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
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
#include "lux/core/random.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN
namespace distributed {

/// The reductions of allreduce / reduce: Lux's `+`, `DistributedUtils.avg`, `max` (and `min`).
/// avg is the sum divided by the number of ranks; it needs floating-point elements.
enum class reduce_op { sum, avg, max, min };

inline const char* to_string(reduce_op op) noexcept {
  switch (op) {
    case reduce_op::sum:
      return "sum";
    case reduce_op::avg:
      return "avg";
    case reduce_op::max:
      return "max";
    case reduce_op::min:
      return "min";
  }
  return "?";
}

/// Element types the collectives carry (arithmetic, not bool), and their names in layouts.
template <class T>
inline constexpr bool is_collective_element_v =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, long double>;

template <class T>
constexpr std::string_view dtype_name() {
  if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1)
      return "int8";
    else if constexpr (sizeof(T) == 2)
      return "int16";
    else if constexpr (sizeof(T) == 4)
      return "int32";
    else
      return "int64";
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (sizeof(T) == 1)
      return "uint8";
    else if constexpr (sizeof(T) == 2)
      return "uint16";
    else if constexpr (sizeof(T) == 4)
      return "uint32";
    else
      return "uint64";
  } else if constexpr (std::is_same_v<T, rng>)
    return "rng";
  else
    return "bytes";
}

/// Counters of one backend's collectives on element buffers (shared by the backend's copies).
struct collective_stats {
  std::int64_t calls = 0;  ///< collectives on element buffers
  std::int64_t bytes = 0;  ///< bytes those collectives carried (per rank)
  double seconds = 0;      ///< wall time inside them
};

namespace detail {

using lux::detail::concat;

/// Adds one collective (its bytes and wall time) to `stats` when it goes out of scope.
class stats_timer {
 public:
  stats_timer(collective_stats& stats, index_t bytes) noexcept : s_(stats), bytes_(bytes) {}
  stats_timer(const stats_timer&) = delete;
  stats_timer& operator=(const stats_timer&) = delete;
  ~stats_timer() {
    s_.calls += 1;
    s_.bytes += bytes_;
    s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  collective_stats& s_;
  index_t bytes_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

/// A leaf a collective can handle: an array, or a trivially copyable scalar (a flag, a count,
/// an lux::rng) — broadcast as bytes, reduced only when arithmetic.
template <class L>
inline constexpr bool is_scalar_leaf_v =
    !is_array_v<L> && !is_named_tuple_v<L> && std::is_trivially_copyable_v<L>;

/// "path dtype (shape)\n" for one leaf (scalars: shape "scalar").
template <class Leaf>
void describe_leaf(std::string& out, std::string_view path, const Leaf& leaf) {
  using L = std::remove_cvref_t<Leaf>;
  out += path.empty() ? std::string_view("(root)") : path;
  out += ' ';
  if constexpr (is_array_v<L>) {
    out += dtype_name<array_value_t<L>>();
    out += ' ';
    out += format_shape(leaf.shape());
  } else {
    static_assert(is_scalar_leaf_v<L>,
                  "lux::distributed: a tree leaf must be an array or a trivially copyable scalar");
    out += dtype_name<L>();
    if constexpr (dtype_name<L>() == std::string_view("bytes")) out += std::to_string(sizeof(L));
    out += " scalar";
  }
  out += '\n';
}

/// The layout of a tree (or of one leaf) as text, one line per leaf in for_each_leaf order.
template <class Tree>
std::string describe(const Tree& tree) {
  std::string out;
  if constexpr (is_named_tuple_v<std::remove_cvref_t<Tree>>)
    for_each_leaf(tree,
                  [&](std::string_view path, const auto& leaf) { describe_leaf(out, path, leaf); });
  else
    describe_leaf(out, "", tree);
  return out;
}

/// FNV-1a, 64 bits: the fingerprint the ranks compare.
inline std::uint64_t fingerprint(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ s.size();
}

inline std::vector<std::string_view> lines_of(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto nl = s.find('\n');
    out.push_back(s.substr(0, nl));
    s = nl == std::string_view::npos ? std::string_view() : s.substr(nl + 1);
  }
  return out;
}

/// The message every rank throws when the gathered layouts differ ("" when they agree).
inline std::string layout_mismatch(const std::vector<std::string>& layouts, const char* op) {
  if (layouts.empty()) return {};
  const auto ref = lines_of(layouts[0]);
  for (std::size_t r = 1; r < layouts.size(); ++r) {
    if (layouts[r] == layouts[0]) continue;
    const auto other = lines_of(layouts[r]);
    std::size_t i = 0;
    while (i < ref.size() && i < other.size() && ref[i] == other[i]) ++i;
    const auto show = [](const std::vector<std::string_view>& v, std::size_t k) {
      return k < v.size() ? concat("leaf ", k, " \"", v[k], "\"")
                          : concat("no leaf ", k, " (", v.size(), " leaves)");
    };
    return concat(op, ": the ranks pass different trees: rank 0 has ", show(ref, i), ", rank ", r,
                  " has ", show(other, i),
                  " (every rank must pass the same names, element types and shapes)");
  }
  return {};
}

/// Throws distributed_error on every rank unless all ranks describe the same layout.
template <class Backend>
void check_same_layout(const Backend& b, const std::string& layout, const char* op) {
  if (b.total_workers() == 1) return;
  if (b.all_equal(fingerprint(layout))) return;
  const std::string msg = layout_mismatch(b.allgather(layout), op);
  // Equal fingerprints with different text would need a 64-bit collision; unequal fingerprints
  // mean the texts differ, so msg is never empty here.
  throw distributed_error(msg.empty() ? concat(op, ": the ranks pass different trees") : msg);
}

template <class Backend>
void check_root(const Backend& b, int root, const char* op) {
  require<argument_error>(root >= 0 && root < b.total_workers(), op, ": root ", root,
                          " is outside [0, ", b.total_workers(), ")");
}

template <class Backend, class A>
constexpr void check_device() {
  static_assert(std::is_same_v<array_device_t<A>, typename Backend::device_type>,
                "lux::distributed: the array lives on another device than the backend's "
                "(mpi_backend takes host arrays, nccl_backend CUDA arrays)");
}

template <class A>
auto* mutable_data(A& a) {
  static_assert(array_traits_t<A>::contiguous,
                "lux::distributed: collectives take contiguous arrays (a Tensor or TensorView)");
  static_assert(!std::is_const_v<std::remove_pointer_t<decltype(a.data())>>,
                "lux::distributed: the collectives work in place; pass a mutable array");
  return a.data();
}

// ---- one leaf ----------------------------------------------------------------------------------

template <class Backend, class Leaf>
void bcast_leaf(const Backend& b, Leaf& leaf, int root) {
  using L = std::remove_cvref_t<Leaf>;
  if constexpr (is_array_v<L>) {
    check_device<Backend, L>();
    b.bcast(mutable_data(leaf), leaf.numel(), root);
  } else {
    b.bcast_host_bytes(static_cast<void*>(&leaf), sizeof(L), root);
  }
}

template <class T>
constexpr void check_reducible(std::string_view path, reduce_op op, const char* name) {
  if (op == reduce_op::avg && !std::is_floating_point_v<T>)
    throw argument_error(concat(name, ": avg of the integer leaf \"", path,
                                "\" (use sum and divide, or reduce floating-point leaves)"));
}

template <class Backend, class Leaf>
void allreduce_leaf(const Backend& b, Leaf& leaf, reduce_op op, int root) {
  using L = std::remove_cvref_t<Leaf>;
  if constexpr (is_array_v<L>) {
    check_device<Backend, L>();
    using T = array_value_t<L>;
    if constexpr (is_collective_element_v<T>) {
      auto* p = mutable_data(leaf);
      if (root < 0)
        b.allreduce(p, p, leaf.numel(), op);
      else
        b.reduce(p, leaf.numel(), op, root);
    }
  } else if constexpr (is_collective_element_v<L>) {
    b.allreduce_host_scalar(leaf, op, root);
  }
  // Other leaves (flags, rngs) are left as they are: there is nothing to add.
}

/// Before any reduction: avg needs floating-point leaves (checked on every leaf first, so a
/// rejected tree is left untouched; the ranks agree on the layout, hence on the verdict).
template <class Tree>
void check_avg_leaves(Tree& tree, reduce_op op, const char* name);

template <class Backend, class Tree, class F>
void for_each_leaf_of(Tree& tree, F&& f) {
  if constexpr (is_named_tuple_v<std::remove_cvref_t<Tree>>)
    for_each_leaf(tree, [&](std::string_view path, auto& leaf) { f(path, leaf); });
  else
    f(std::string_view(), tree);
}

template <class Tree>
void check_avg_leaves(Tree& tree, reduce_op op, const char* name) {
  if (op != reduce_op::avg) return;
  for_each_leaf_of<void>(tree, [&](std::string_view path, auto& leaf) {
    using L = std::remove_cvref_t<decltype(leaf)>;
    if constexpr (is_array_v<L>) {
      if constexpr (is_collective_element_v<array_value_t<L>>)
        check_reducible<array_value_t<L>>(path, op, name);
    } else if constexpr (is_collective_element_v<L>) {
      check_reducible<L>(path, op, name);
    }
  });
}

}  // namespace detail

// ---- the collectives ---------------------------------------------------------------------------

/// Lux's bcast!: every rank's x becomes root's x. x: an array, a scalar, or a tree of them.
template <class Backend, class X>
void bcast(const Backend& b, X& x, int root = 0) {
  detail::check_root(b, root, "distributed::bcast");
  detail::check_same_layout(b, detail::describe(x), "distributed::bcast");
  detail::for_each_leaf_of<Backend>(
      x, [&](std::string_view, auto& leaf) { detail::bcast_leaf(b, leaf, root); });
}
template <class Backend, class X>
requires is_array_v<X>
void bcast(const Backend& b, X&& x, int root = 0) {  // a TensorView temporary
  bcast(b, x, root);
}

/// Lux's allreduce!: every rank's x becomes op over all ranks' x, element by element. Arrays and
/// arithmetic scalars of a tree are reduced; flags and rngs are left alone.
template <class Backend, class X>
void allreduce(const Backend& b, X& x, reduce_op op) {
  detail::check_same_layout(b, detail::describe(x), "distributed::allreduce");
  detail::check_avg_leaves(x, op, "distributed::allreduce");
  detail::for_each_leaf_of<Backend>(
      x, [&](std::string_view, auto& leaf) { detail::allreduce_leaf(b, leaf, op, -1); });
}
template <class Backend, class X>
requires is_array_v<X>
void allreduce(const Backend& b, X&& x, reduce_op op) { allreduce(b, x, op); }

/// Lux's reduce!: root's x becomes op over all ranks' x; the other ranks' x is unchanged.
template <class Backend, class X>
void reduce(const Backend& b, X& x, reduce_op op, int root = 0) {
  detail::check_root(b, root, "distributed::reduce");
  detail::check_same_layout(b, detail::describe(x), "distributed::reduce");
  detail::check_avg_leaves(x, op, "distributed::reduce");
  detail::for_each_leaf_of<Backend>(
      x, [&](std::string_view, auto& leaf) { detail::allreduce_leaf(b, leaf, op, root); });
}
template <class Backend, class X>
requires is_array_v<X>
void reduce(const Backend& b, X&& x, reduce_op op, int root = 0) { reduce(b, x, op, root); }

}  // namespace distributed
LUX_NAMESPACE_END
