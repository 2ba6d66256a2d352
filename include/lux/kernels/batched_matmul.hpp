// luxcpp — batched_matmul (LuxLib's `batched_matmul`, NNlib's `batched_mul`) and its backward
// pass.
//
//   c = batched_matmul(a, b)                    c[:, :, l] = a[:, :, l] · b[:, :, l]
//   c = batched_matmul(a, op_a, b, op_b)        c[:, :, l] = op_a(a[:, :, l]) · op_b(b[:, :, l])
//   batched_matmul(a, op_a, b, op_b, out)       the same, written into `out`
//   auto [da, db] = batched_matmul_backward(dc, a, op_a, b, op_b)   (or (dc, a, b))
//   batched_matmul_backward(dc, a, op_a, b, op_b, da, db)           into the caller's buffers
//
// Shapes (column-major): a (ra, ca, Ba), b (rb, cb, Bb); a matrix (rank 2) is a batch of one.
// op ∈ {op::none, op::transpose, op::adjoint} acts on each slice (NNlib's batched_transpose /
// batched_adjoint; adjoint = transpose for real element types): op_a(a) slices are (m, k),
// op_b(b) slices (k, n). Batch sizes must be equal, or one of them 1 — that operand is used for
// every l (broadcast; NNlib's rule). c is (m, n, max(Ba, Bb)), always rank 3.
//
// Backward (NNlib's rrule): ∂op_a(a) = Δ ⊠ op_b(b)ᴴ, ∂op_b(b) = op_a(a)ᴴ ⊠ Δ, mapped back through
// the op flags, and summed over the batch for a broadcast operand. da and db have the shapes (and
// ranks) of a and b.
//
// Errors (lux::shape_error, checked before any work), e.g.
//   batched_matmul: a has shape (3, 4, 2) (op none), b (5, 6, 2) (op none): inner dimensions
//   differ: op(a) slices are (3, 4), op(b) slices (5, 6)
//   batched_matmul: a has shape (3, 4, 2), b (4, 5, 3): batch sizes 2 and 3 must be equal or
//   one of them 1
// and lux::argument_error when `out` overlaps an input.
//
// Modes: operation_mode_t<a, b> (float / double contiguous → looped_op: Eigen GEMM per slice,
// OpenMP over the batch or Eigen's threads, see lux/kernels/looped/batched_matmul.hpp; otherwise
// generic_op: loops over any element type incl. std::complex, strided views allowed). Every
// function also takes the mode tag first. Accuracy: each entry is a k-term dot product in the
// element type (float: ≈ 1e-6 · sqrt(k) relative to max |c| measured in the tests).
#pragma once

#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/dense.hpp"  // detail::dense::const_view, overlap
#include "lux/kernels/generic/batched_matmul.hpp"
#include "lux/kernels/looped/batched_matmul.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Result types
// ---------------------------------------------------------------------------------------------

/// batched_matmul_backward's result: gradients with the shapes (and ranks NA, NB) of a and b.
template <class T, std::size_t NA = 3, std::size_t NB = 3, class Device = cpu>
struct batched_matmul_gradients {
  Tensor<T, NA, Device> da;
  Tensor<T, NB, Device> db;
};

// ---------------------------------------------------------------------------------------------
// Type aliases and checks
// ---------------------------------------------------------------------------------------------
namespace detail::bmm {
using detail::dense::const_view;
using detail::dense::overlap;

template <class M, class A, class B>
constexpr void static_checks() {
  static_assert(
      array_rank_v<A> == 2 || array_rank_v<A> == 3,
      "lux::batched_matmul: a must have rank 3 (rows, cols, batch) or 2 (a batch of one)");
  static_assert(
      array_rank_v<B> == 2 || array_rank_v<B> == 3,
      "lux::batched_matmul: b must have rank 3 (rows, cols, batch) or 2 (a batch of one)");
  static_assert(std::is_same_v<array_value_t<A>, array_value_t<B>>,
                "lux::batched_matmul: a and b must have the same element type");
  static_assert(std::is_same_v<array_device_t<A>, cpu> && !std::is_same_v<M, gpu_op<cuda>>,
                "lux::batched_matmul: only host (lux::cpu) arrays for now; the CUDA "
                "implementation comes with the CUDA kernels");
}

/// A rank-2 view as (rows, cols, 1); a rank-3 view unchanged (layout kept).
template <class T, std::size_t N, class D, layout L>
basic_view<T, 3, D, L> as_batch(const basic_view<T, N, D, L>& v) {
  if constexpr (N == 3) {
    return v;
  } else if constexpr (L == layout::contiguous) {
    return basic_view<T, 3, D, L>(v.data(), shape_t<3>{v.size(0), v.size(1), 1});
  } else {
    return basic_view<T, 3, D, L>(
        v.data(), shape_t<3>{v.size(0), v.size(1), 1},
        shape_t<3>{v.strides()[0], v.strides()[1], v.strides()[1] * v.size(1)});
  }
}

/// Checks inner and batch sizes; returns c's shape (m, n, L).
template <std::size_t NA, std::size_t NB>
shape_t<3> check_shapes(const char* name, const shape_t<NA>& as, op opa, const shape_t<NB>& bs,
                        op opb) {
  const index_t m = opa == op::none ? as[0] : as[1], ka = opa == op::none ? as[1] : as[0];
  const index_t kb = opb == op::none ? bs[0] : bs[1], n = opb == op::none ? bs[1] : bs[0];
  require<shape_error>(ka == kb, name, ": a has shape ", as, " (op ", op_name(opa), "), b ", bs,
                       " (op ", op_name(opb), "): inner dimensions differ: op(a) slices are (", m,
                       ", ", ka, "), op(b) slices (", kb, ", ", n, ")");
  const index_t Ba = NA == 3 ? as[NA - 1] : 1, Bb = NB == 3 ? bs[NB - 1] : 1;
  require<shape_error>(Ba == Bb || Ba == 1 || Bb == 1, name, ": a has shape ", as, ", b ", bs,
                       ": batch sizes ", Ba, " and ", Bb, " must be equal or one of them 1");
  const shape_t<3> cs{m, n, Ba == 1 ? Bb : Ba};
  shape_numel(cs, name);  // with k = 0 the output can be larger than both inputs
  return cs;
}
}  // namespace detail::bmm

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

/// c = op_a(a) ⊠ op_b(b) written into `out` (m, n, L) in the given mode; returns `out`.
template <operation_mode M, array A, array B, class T>
TensorView<T, 3> batched_matmul(M mode, const A& a, op opa, const B& b, op opb,
                                TensorView<T, 3> out) {
  using namespace detail::bmm;
  static_checks<M, A, B>();
  static_assert(std::is_same_v<T, array_value_t<A>>,
                "lux::batched_matmul: out must have the element type of a and b");
  const auto av = const_view(a);
  const auto bv = const_view(b);
  const auto cs = check_shapes("batched_matmul", av.shape(), opa, bv.shape(), opb);
  require<shape_error>(out.shape() == cs, "batched_matmul: out has shape ", out.shape(),
                       ", expected ", cs, " for a ", av.shape(), " and b ", bv.shape());
  require<argument_error>(!overlap(out, av) && !overlap(out, bv),
                          "batched_matmul: out overlaps an input; the output needs its own buffer");
  batched_matmul_kernel(mode, as_batch(av), opa, as_batch(bv), opb, out);
  return out;
}

/// c = op_a(a) ⊠ op_b(b) into `out`, mode chosen from the arrays' types.
template <array A, array B, class T>
TensorView<T, 3> batched_matmul(const A& a, op opa, const B& b, op opb, TensorView<T, 3> out) {
  return batched_matmul(operation_mode_t<A, B>{}, a, opa, b, opb, out);
}

/// c = op_a(a) ⊠ op_b(b), a new (m, n, L) tensor, in the given mode.
template <operation_mode M, array A, array B>
[[nodiscard]] Tensor<array_value_t<A>, 3> batched_matmul(M mode, const A& a, op opa, const B& b,
                                                         op opb) {
  using namespace detail::bmm;
  static_checks<M, A, B>();
  const auto av = const_view(a);
  const auto bv = const_view(b);
  auto c = Tensor<array_value_t<A>, 3>::uninitialized(
      check_shapes("batched_matmul", av.shape(), opa, bv.shape(), opb), "batched_matmul");
  batched_matmul_kernel(mode, as_batch(av), opa, as_batch(bv), opb, c.view());
  return c;
}

/// c = op_a(a) ⊠ op_b(b), mode chosen from the arrays' types.
template <array A, array B>
[[nodiscard]] auto batched_matmul(const A& a, op opa, const B& b, op opb) {
  return batched_matmul(operation_mode_t<A, B>{}, a, opa, b, opb);
}

/// c = a ⊠ b in the given mode.
template <operation_mode M, array A, array B>
[[nodiscard]] auto batched_matmul(M mode, const A& a, const B& b) {
  return batched_matmul(mode, a, op::none, b, op::none);
}

/// c = a ⊠ b, mode chosen from the arrays' types.
template <array A, array B>
[[nodiscard]] auto batched_matmul(const A& a, const B& b) {
  return batched_matmul(operation_mode_t<A, B>{}, a, op::none, b, op::none);
}

// ---------------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------------

/// da, db of c = op_a(a) ⊠ op_b(b) for the cotangent dc (m, n, L), written into the caller's
/// buffers `da` (a's shape) and `db` (b's shape), e.g. gradient buffers reused across training
/// steps, in the given mode. They must not overlap the inputs or each other (argument_error).
template <operation_mode M, array DC, array A, array B, class T, std::size_t NA, std::size_t NB>
void batched_matmul_backward(M mode, const DC& dc, const A& a, op opa, const B& b, op opb,
                             TensorView<T, NA> da, TensorView<T, NB> db) {
  using namespace detail::bmm;
  constexpr const char* name = "batched_matmul_backward";
  static_checks<M, A, B>();
  static_assert(array_rank_v<DC> == 3 && std::is_same_v<array_value_t<DC>, T> &&
                    std::is_same_v<array_value_t<A>, T>,
                "lux::batched_matmul_backward: dc must have rank 3 (m, n, batch), and dc, da and "
                "db the element type of a and b");
  static_assert(NA == array_rank_v<A> && NB == array_rank_v<B>,
                "lux::batched_matmul_backward: da and db must have the ranks of a and b");
  const auto av = const_view(a);
  const auto bv = const_view(b);
  const auto dcv = const_view(dc);
  const auto cs = check_shapes(name, av.shape(), opa, bv.shape(), opb);
  require<shape_error>(dcv.shape() == cs, name, ": dc has shape ", dcv.shape(), ", expected ", cs,
                       " for a ", av.shape(), " and b ", bv.shape());
  require<shape_error>(da.shape() == av.shape(), name, ": da has shape ", da.shape(), ", expected ",
                       av.shape(), " (a's)");
  require<shape_error>(db.shape() == bv.shape(), name, ": db has shape ", db.shape(), ", expected ",
                       bv.shape(), " (b's)");
  auto clashes = [&](const auto& o) { return overlap(o, av) || overlap(o, bv) || overlap(o, dcv); };
  require<argument_error>(!clashes(da) && !clashes(db) && !overlap(da, db), name,
                          ": da or db overlaps an input or the other; each needs its own memory");
  batched_matmul_backward_kernel(mode, dcv, as_batch(av), opa, as_batch(bv), opb, as_batch(da),
                                 as_batch(db));
}

/// da, db into the caller's buffers, mode chosen from the arrays' types.
template <array DC, array A, array B, class T, std::size_t NA, std::size_t NB>
void batched_matmul_backward(const DC& dc, const A& a, op opa, const B& b, op opb,
                             TensorView<T, NA> da, TensorView<T, NB> db) {
  batched_matmul_backward(operation_mode_t<DC, A, B>{}, dc, a, opa, b, opb, da, db);
}

/// {da, db} of c = op_a(a) ⊠ op_b(b) for the cotangent dc (m, n, L), new tensors with the shapes
/// (and ranks) of a and b, in the given mode.
template <operation_mode M, array DC, array A, array B>
[[nodiscard]] batched_matmul_gradients<array_value_t<A>, array_rank_v<A>, array_rank_v<B>>
batched_matmul_backward(M mode, const DC& dc, const A& a, op opa, const B& b, op opb) {
  using namespace detail::bmm;
  using T = array_value_t<A>;
  batched_matmul_gradients<T, array_rank_v<A>, array_rank_v<B>> g{
      Tensor<T, array_rank_v<A>>::uninitialized(as_view(a).shape(), "batched_matmul_backward"),
      Tensor<T, array_rank_v<B>>::uninitialized(as_view(b).shape(), "batched_matmul_backward")};
  batched_matmul_backward(mode, dc, a, opa, b, opb, g.da.view(), g.db.view());
  return g;
}

/// {da, db}, mode chosen from the arrays' types.
template <array DC, array A, array B>
[[nodiscard]] auto batched_matmul_backward(const DC& dc, const A& a, op opa, const B& b, op opb) {
  return batched_matmul_backward(operation_mode_t<DC, A, B>{}, dc, a, opa, b, opb);
}

/// {da, db} of c = a ⊠ b in the given mode.
template <operation_mode M, array DC, array A, array B>
[[nodiscard]] auto batched_matmul_backward(M mode, const DC& dc, const A& a, const B& b) {
  return batched_matmul_backward(mode, dc, a, op::none, b, op::none);
}

/// {da, db} of c = a ⊠ b, mode chosen from the arrays' types.
template <array DC, array A, array B>
[[nodiscard]] auto batched_matmul_backward(const DC& dc, const A& a, const B& b) {
  return batched_matmul_backward(operation_mode_t<DC, A, B>{}, dc, a, op::none, b, op::none);
}

LUX_NAMESPACE_END
