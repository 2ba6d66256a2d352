// luxcpp — embedding lookup (what Lux's Embedding layer computes: weight[:, idx]) and its backward.
//
//   embedding_lookup(weight, indices) → y
//       weight (out, in) — Lux's Embedding(in => out) weight; in memory PyTorch's
//       nn.Embedding(in, out).weight (in, out): torch's table rows are Lux's columns.
//       indices: any integer element type (not bool), any rank M (a Tensor or view).
//       y (out, indices.shape...):  y[:, j...] = weight[:, indices[j...]].
//       INDICES ARE 0-BASED (C++ convention; Julia's are 1-based: Lux index k is k − 1 here).
//       An index outside [0, in) throws lux::argument_error naming embedding_lookup, the bad
//       index, its (column-major) position in `indices` and the valid range; nothing is computed.
//   embedding_lookup_backward(dy, indices, weight_shape) → {dweight}
//       dweight (out, in) = Σ_j e_{indices[j]} ⊗ dy[:, j]: a scatter-add, where repeated indices
//       accumulate. Deterministic: every element sums its terms in increasing j order in every
//       mode and for any thread count (the looped kernel buckets positions by index and gives each
//       weight column to one thread), so the result is bit-identical to the generic kernel.
//   embedding_lookup_(y, weight, indices), embedding_lookup_backward_(dweight, dy, indices):
//       in-place variants writing into caller-owned outputs of the right shape (no allocation
//       except the looped backward's index buckets).
//   Every function also has an overload taking the mode tag first. The mode follows the weight's
//   (or dy's) type: float/double → looped_op, anything else → generic_op.
//
// Errors: dy's shape ≠ (weight_shape[0], indices.shape...) → lux::shape_error; an index out of
// range → lux::argument_error; weight_shape with a negative size → lux::shape_error.
// (Lux's Embedding with a tuple of indices into a multi-dimensional `in` is not covered: linearize
// the tuple into a column index first.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/embedding.hpp"
#include "lux/kernels/looped/embedding.hpp"

LUX_NAMESPACE_BEGIN

/// The gradient of embedding_lookup with respect to the weight.
template <class T>
struct embedding_gradients {
  Tensor<T, 2> dweight;
};

namespace detail::embedding {

template <class X>
const array_value_t<X>* data_of(const X& x, const char* op, const char* name) {
  const auto v = as_view(x);
  if constexpr (!array_traits_t<X>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}

template <class I>
constexpr void check_index_type() {
  static_assert(std::is_integral_v<I> && !std::is_same_v<I, bool>,
                "lux::embedding_lookup: indices must have an integer element type (not bool)");
}

/// Throws argument_error for the first index outside [0, in).
template <class I, std::size_t M>
void check_indices(const char* op, const I* idx, const shape_t<M>& is, index_t in,
                   const shape_t<2>& ws) {
  index_t n = 1;
  for (std::size_t a = 0; a < M; ++a) n *= is[a];
  for (index_t j = 0; j < n; ++j) {
    bool ok;
    if constexpr (std::is_signed_v<I>)
      ok = idx[j] >= 0 && static_cast<std::intmax_t>(idx[j]) < static_cast<std::intmax_t>(in);
    else
      ok = static_cast<std::uintmax_t>(idx[j]) < static_cast<std::uintmax_t>(in);
    if (!ok) [[unlikely]] {
      if constexpr (std::is_signed_v<I>)
        throw argument_error(detail::concat(
            op, ": index ", static_cast<std::intmax_t>(idx[j]), " at position ", j, " of indices ",
            is, " is out of range [0, ", in, ") for weight ", ws, " (indices are 0-based)"));
      else
        throw argument_error(detail::concat(
            op, ": index ", static_cast<std::uintmax_t>(idx[j]), " at position ", j, " of indices ",
            is, " is out of range [0, ", in, ") for weight ", ws, " (indices are 0-based)"));
    }
  }
}
}  // namespace detail::embedding

/// y (out, indices.shape...) = weight[:, indices] with 0-based indices, in the given mode.
template <operation_mode Mode, array W, array Idx>
[[nodiscard]] Tensor<array_value_t<W>, array_rank_v<Idx> + 1> embedding_lookup(Mode mode,
                                                                               const W& weight,
                                                                               const Idx& indices) {
  using namespace detail::embedding;
  using T = array_value_t<W>;
  using I = array_value_t<Idx>;
  constexpr std::size_t M = array_rank_v<Idx>;
  static_assert(array_rank_v<W> == 2, "lux::embedding_lookup: weight must be a matrix (out, in)");
  check_index_type<I>();
  constexpr const char* op = "embedding_lookup";
  const T* wp = data_of(weight, op, "weight");
  const I* ip = data_of(indices, op, "indices");
  const shape_t<2> ws = as_view(weight).shape();
  const shape_t<M> is = as_view(indices).shape();
  check_indices(op, ip, is, ws[1], ws);
  shape_t<M + 1> ys{};
  ys[0] = ws[0];
  for (std::size_t a = 0; a < M; ++a) ys[a + 1] = is[a];
  auto y = Tensor<T, M + 1>::uninitialized(ys, op);
  embedding_lookup(mode, wp, ws[0], ip, as_view(indices).numel(), y.data());
  return y;
}
template <array W, array Idx>
[[nodiscard]] auto embedding_lookup(const W& weight, const Idx& indices) {
  return embedding_lookup(operation_mode_t<W>{}, weight, indices);
}

/// dweight (weight_shape) = scatter-add of dy's columns into the columns `indices`, given mode.
template <operation_mode Mode, array DY, array Idx>
[[nodiscard]] embedding_gradients<array_value_t<DY>> embedding_lookup_backward(
    Mode mode, const DY& dy, const Idx& indices, const shape_t<2>& weight_shape) {
  using namespace detail::embedding;
  using T = array_value_t<DY>;
  using I = array_value_t<Idx>;
  constexpr std::size_t M = array_rank_v<Idx>;
  static_assert(array_rank_v<DY> == M + 1,
                "lux::embedding_lookup_backward: dy must have rank 1 + rank(indices)");
  check_index_type<I>();
  constexpr const char* op = "embedding_lookup_backward";
  const T* dyp = data_of(dy, op, "dy");
  const I* ip = data_of(indices, op, "indices");
  const shape_t<M> is = as_view(indices).shape();
  const auto dys = as_view(dy).shape();
  require<shape_error>(weight_shape[0] >= 0 && weight_shape[1] >= 0, op, ": weight shape ",
                       weight_shape, " has a negative size");
  shape_t<M + 1> expected{};
  expected[0] = weight_shape[0];
  for (std::size_t a = 0; a < M; ++a) expected[a + 1] = is[a];
  require<shape_error>(dys == expected, op, ": dy has shape ", dys, ", expected ", expected,
                       " (out of weight ", weight_shape, ", then the shape of indices)");
  check_indices(op, ip, is, weight_shape[1], weight_shape);
  auto dw = Tensor<T, 2>::uninitialized(weight_shape, op);
  embedding_lookup_backward(mode, dyp, weight_shape[0], ip, as_view(indices).numel(), dw.data(),
                            weight_shape[1]);
  return {std::move(dw)};
}
template <array DY, array Idx>
[[nodiscard]] auto embedding_lookup_backward(const DY& dy, const Idx& indices,
                                             const shape_t<2>& weight_shape) {
  return embedding_lookup_backward(operation_mode_t<DY>{}, dy, indices, weight_shape);
}

// In-place variants (no allocation; the output is a caller-owned contiguous Tensor or view of the
// right shape, returned as a view; shape_error otherwise, argument_error if it overlaps an input).

namespace detail::embedding {
template <class Y>
array_value_t<Y>* mutable_data_of(Y&& y, const char* op, const char* name) {
  auto v = as_view(y);
  static_assert(!std::is_const_v<std::remove_pointer_t<decltype(v.data())>>,
                "lux::embedding_lookup_: the destination must be mutable");
  if constexpr (!array_traits_t<Y>::contiguous)
    require<shape_error>(v.is_contiguous(), op, ": ", name, " must be contiguous, got a view with ",
                         "shape ", v.shape(), " and strides ", v.strides());
  return v.data();
}
template <class A, class B>
void check_disjoint(const char* op, const A& out, const B& in) {
  const auto po = reinterpret_cast<std::uintptr_t>(as_view(out).data());
  const auto pi = reinterpret_cast<std::uintptr_t>(as_view(in).data());
  const std::size_t bo = sizeof(array_value_t<A>) * static_cast<std::size_t>(as_view(out).numel());
  const std::size_t bi = sizeof(array_value_t<B>) * static_cast<std::size_t>(as_view(in).numel());
  require<argument_error>(bo == 0 || bi == 0 || po + bo <= pi || pi + bi <= po, op,
                          ": the output overlaps an input; it must be a separate buffer");
}
}  // namespace detail::embedding

/// y (out, indices.shape...) = weight[:, indices] written into y, in the given mode.
template <operation_mode Mode, array Y, array W, array Idx>
TensorView<array_value_t<W>, array_rank_v<Idx> + 1> embedding_lookup_(Mode mode, Y&& y,
                                                                      const W& weight,
                                                                      const Idx& indices) {
  using namespace detail::embedding;
  using T = array_value_t<W>;
  using I = array_value_t<Idx>;
  constexpr std::size_t M = array_rank_v<Idx>;
  static_assert(array_rank_v<W> == 2, "lux::embedding_lookup_: weight must be a matrix (out, in)");
  static_assert(std::is_same_v<array_value_t<Y>, T> && array_rank_v<Y> == M + 1,
                "lux::embedding_lookup_: y must have weight's element type and rank 1 + "
                "rank(indices)");
  check_index_type<I>();
  constexpr const char* op = "embedding_lookup_";
  const T* wp = data_of(weight, op, "weight");
  const I* ip = data_of(indices, op, "indices");
  T* yp = mutable_data_of(y, op, "y");
  const shape_t<2> ws = as_view(weight).shape();
  const shape_t<M> is = as_view(indices).shape();
  shape_t<M + 1> ys{};
  ys[0] = ws[0];
  for (std::size_t a = 0; a < M; ++a) ys[a + 1] = is[a];
  require<shape_error>(as_view(y).shape() == ys, op, ": y has shape ", as_view(y).shape(),
                       ", expected ", ys, " for weight ", ws, " and indices ", is);
  check_disjoint(op, y, weight);
  check_indices(op, ip, is, ws[1], ws);
  embedding_lookup(mode, wp, ws[0], ip, as_view(indices).numel(), yp);
  return TensorView<T, M + 1>(yp, ys);
}
template <array Y, array W, array Idx>
auto embedding_lookup_(Y&& y, const W& weight, const Idx& indices) {
  return embedding_lookup_(operation_mode_t<Y, W>{}, std::forward<Y>(y), weight, indices);
}

/// dweight (out, in) = the scatter-add of dy's columns, written into dweight, in the given mode.
template <operation_mode Mode, array DW, array DY, array Idx>
TensorView<array_value_t<DY>, 2> embedding_lookup_backward_(Mode mode, DW&& dweight, const DY& dy,
                                                            const Idx& indices) {
  using namespace detail::embedding;
  using T = array_value_t<DY>;
  using I = array_value_t<Idx>;
  constexpr std::size_t M = array_rank_v<Idx>;
  static_assert(array_rank_v<DY> == M + 1,
                "lux::embedding_lookup_backward_: dy must have rank 1 + rank(indices)");
  static_assert(std::is_same_v<array_value_t<DW>, T> && array_rank_v<DW> == 2,
                "lux::embedding_lookup_backward_: dweight must be a matrix of dy's element type");
  check_index_type<I>();
  constexpr const char* op = "embedding_lookup_backward_";
  const T* dyp = data_of(dy, op, "dy");
  const I* ip = data_of(indices, op, "indices");
  T* dwp = mutable_data_of(dweight, op, "dweight");
  const shape_t<2> ws = as_view(dweight).shape();
  const shape_t<M> is = as_view(indices).shape();
  shape_t<M + 1> expected{};
  expected[0] = ws[0];
  for (std::size_t a = 0; a < M; ++a) expected[a + 1] = is[a];
  require<shape_error>(as_view(dy).shape() == expected, op, ": dy has shape ", as_view(dy).shape(),
                       ", expected ", expected, " (out of dweight ", ws,
                       ", then the shape of indices)");
  check_disjoint(op, dweight, dy);
  check_indices(op, ip, is, ws[1], ws);
  embedding_lookup_backward(mode, dyp, ws[0], ip, as_view(indices).numel(), dwp, ws[1]);
  return TensorView<T, 2>(dwp, ws);
}
template <array DW, array DY, array Idx>
auto embedding_lookup_backward_(DW&& dweight, const DY& dy, const Idx& indices) {
  return embedding_lookup_backward_(operation_mode_t<DW, DY>{}, std::forward<DW>(dweight), dy,
                                    indices);
}

LUX_NAMESPACE_END
