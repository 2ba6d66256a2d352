// luxcpp — batched_matmul and its backward pass: the looped (CPU) implementation, float and
// double (real: adjoint = transpose).
//
// Every slice product is one Eigen GEMM over Eigen::Map views of the slices (transposed maps for
// the op flags). Threading picks one of two levels, never both:
//   * OpenMP over the batch, each GEMM on one thread (Eigen sees omp_get_num_threads() > 1 inside
//     the region and does not thread) — when there are enough slices to share out evenly, or the
//     slices are too small for Eigen's threading to pay;
//   * a serial loop over a few large slices, each GEMM threaded by Eigen.
// Backward: the gradient of an operand with a full batch is computed slice by slice the same way;
// that of a broadcast (batch-1) operand is a sum over the batch: each thread accumulates its range
// of slices into its own buffer (thread 0 into the result), then the buffers are added
// (deterministic for a fixed thread count).
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>
#include "lux/core/eigen.hpp"  // Eigen, with GCC 12's false AVX-512 warnings silenced
#include "lux/core/kernel_trace.hpp"

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/batched_matmul.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {
namespace bmm_looped {

// ---- type aliases ------------------------------------------------------------------------------
template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using cmap = Eigen::Map<const matrix<T>>;
template <class T>
using mmap = Eigen::Map<matrix<T>>;

template <class T>
inline constexpr bool is_gemm_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Below this many flops per slice Eigen's own threading does not pay (and batches of such
/// slices are always shared out over threads).
inline constexpr double min_eigen_parallel_flops = 1 << 24;

// ---- logic -------------------------------------------------------------------------------------
/// C = op(P) · op(Q) (accumulate: C += ...), op = transpose when tp / tq.
template <class T>
void gemm(mmap<T>& C, const cmap<T>& P, bool tp, const cmap<T>& Q, bool tq, bool accumulate) {
  auto run = [&](const auto& Pe, const auto& Qe) {
    if (accumulate)
      C.noalias() += Pe * Qe;
    else
      C.noalias() = Pe * Qe;
  };
  if (!tp && !tq)
    run(P, Q);
  else if (tp && !tq)
    run(P.transpose(), Q);
  else if (!tp && tq)
    run(P, Q.transpose());
  else
    run(P.transpose(), Q.transpose());
}

/// True when the L slices (each `slice_flops`) should be shared out over OpenMP threads rather
/// than computed one after the other with Eigen threading each GEMM.
inline bool parallel_over_batch(index_t L, double slice_flops, int threads) noexcept {
  if (threads <= 1 || L <= 1) return false;
  if (slice_flops * static_cast<double>(L) < 4.0e6) return false;  // too little work to thread
  if (slice_flops < min_eigen_parallel_flops) return true;
  // Large slices: share them out only when the batch splits evenly enough (≥ 90% busy).
  const index_t rounds = (L + threads - 1) / threads;
  return static_cast<double>(L) >= 0.9 * static_cast<double>(rounds * threads);
}

inline int available_threads() noexcept {
#if LUX_HAS_OPENMP
  if (omp_in_parallel()) return 1;
#endif
  return max_threads();
}

/// Runs f(l) for l in [0, L): OpenMP over the batch or serially (see parallel_over_batch).
template <class Fn>
void for_each_slice(index_t L, double slice_flops, Fn&& f) {
  const int threads = available_threads();
  if (parallel_over_batch(L, slice_flops, threads)) {
#if LUX_HAS_OPENMP
#pragma omp parallel for schedule(static)
    for (index_t l = 0; l < L; ++l) f(l);
    return;
#endif
  }
  for (index_t l = 0; l < L; ++l) f(l);
}

/// G = Σ_{l < L} term(G_target, l, accumulate): the gradient of a broadcast operand (S elements).
/// term(target, l, accumulate) writes (or adds) slice l's contribution into target.
template <class T, class Term>
void reduce_over_batch(T* G, index_t S, index_t L, double slice_flops, Term&& term) {
  if (L == 0 || S == 0) {
    std::fill_n(G, S, T(0));
    return;
  }
  const int threads = available_threads();
  const index_t pieces =
      parallel_over_batch(L, slice_flops, threads) ? std::min<index_t>(threads, L) : 1;
  std::vector<T> partial(static_cast<std::size_t>((pieces - 1) * S));
  const index_t per = (L + pieces - 1) / pieces;
  auto piece = [&](index_t p) {
    T* target = p == 0 ? G : partial.data() + (p - 1) * S;
    const index_t l0 = p * per, l1 = std::min(L, l0 + per);
    if (l0 >= l1) {
      std::fill_n(target, S, T(0));
      return;
    }
    for (index_t l = l0; l < l1; ++l) term(target, l, l != l0);
  };
#if LUX_HAS_OPENMP
  if (pieces > 1) {
#pragma omp parallel for schedule(static) num_threads(static_cast <int>(pieces))
    for (index_t p = 0; p < pieces; ++p) piece(p);
  } else {
    piece(0);
  }
#else
  piece(0);
#endif
  for (index_t p = 1; p < pieces; ++p) {
    const T* src = partial.data() + (p - 1) * S;
    for (index_t i = 0; i < S; ++i) G[i] += src[i];
  }
}

}  // namespace bmm_looped

/// c[:, :, l] = op_a(a[:, :, la]) · op_b(b[:, :, lb]) with one Eigen GEMM per slice.
template <class T>
requires bmm_looped::is_gemm_real_v<T>
void batched_matmul_kernel(looped_op, TensorView<const T, 3> a, op opa, TensorView<const T, 3> b,
                           op opb, TensorView<T, 3> c) {
  LUX_TRACE_KERNEL("looped_op", "batched_matmul_kernel");
  LUX_DISPATCH("batched_matmul_kernel", (T), a, opa, b, opb, c);
  using namespace bmm_looped;
  const index_t m = c.size(0), n = c.size(1), L = c.size(2);
  const index_t ra = a.size(0), ca = a.size(1), rb = b.size(0), cb = b.size(1);
  const index_t kk = opa == op::none ? ca : ra;
  const index_t sa = a.size(2) == 1 ? 0 : ra * ca, sb = b.size(2) == 1 ? 0 : rb * cb;
  const bool ta = opa != op::none, tb = opb != op::none;
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(kk);
  for_each_slice(L, flops, [&](index_t l) {
    const cmap<T> A(a.data() + sa * l, ra, ca), B(b.data() + sb * l, rb, cb);
    mmap<T> C(c.data() + m * n * l, m, n);
    gemm(C, A, ta, B, tb, false);
  });
}

/// da, db of c = batched_matmul(a, op_a, b, op_b) for the cotangent dc (real element types):
///   ∂a_l = Δ_l op_b(b_l)ᵀ (op_a = none)  or  op_b(b_l) Δ_lᵀ (op_a = transpose / adjoint)
///   ∂b_l = op_a(a_l)ᵀ Δ_l (op_b = none)  or  Δ_lᵀ op_a(a_l) (op_b = transpose / adjoint)
/// summed over l for a broadcast operand.
template <class T>
requires bmm_looped::is_gemm_real_v<T>
void batched_matmul_backward_kernel(looped_op, TensorView<const T, 3> dc, TensorView<const T, 3> a,
                                    op opa, TensorView<const T, 3> b, op opb, TensorView<T, 3> da,
                                    TensorView<T, 3> db) {
  LUX_TRACE_KERNEL("looped_op", "batched_matmul_backward_kernel");
  LUX_DISPATCH("batched_matmul_backward_kernel", (T), dc, a, opa, b, opb, da, db);
  using namespace bmm_looped;
  const index_t m = dc.size(0), n = dc.size(1), L = dc.size(2);
  const index_t ra = a.size(0), ca = a.size(1), rb = b.size(0), cb = b.size(1);
  const index_t kk = opa == op::none ? ca : ra;
  const bool bcast_a = a.size(2) == 1 && L != 1, bcast_b = b.size(2) == 1 && L != 1;
  const index_t sa = a.size(2) == 1 ? 0 : ra * ca, sb = b.size(2) == 1 ? 0 : rb * cb;
  const bool ta = opa != op::none, tb = opb != op::none;
  const double flops =
      2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(kk);

  // Slice l's contribution to ∂a (into GA) and ∂b (into GB).
  auto grad_a = [&](T* GA, index_t l, bool accumulate) {
    const cmap<T> D(dc.data() + m * n * l, m, n), B(b.data() + sb * l, rb, cb);
    mmap<T> G(GA, ra, ca);
    if (!ta)
      gemm(G, D, false, B, !tb, accumulate);  // Δ op_b(b)ᵀ
    else
      gemm(G, B, tb, D, true, accumulate);  // op_b(b) Δᵀ
  };
  auto grad_b = [&](T* GB, index_t l, bool accumulate) {
    const cmap<T> D(dc.data() + m * n * l, m, n), A(a.data() + sa * l, ra, ca);
    mmap<T> G(GB, rb, cb);
    if (!tb)
      gemm(G, A, !ta, D, false, accumulate);  // op_a(a)ᵀ Δ
    else
      gemm(G, D, true, A, ta, accumulate);  // Δᵀ op_a(a)
  };

  // Operands with a full batch: slice by slice (both in one sweep when neither broadcasts).
  if (!bcast_a || !bcast_b)
    for_each_slice(L, flops * ((!bcast_a && !bcast_b) ? 2 : 1), [&](index_t l) {
      if (!bcast_a) grad_a(da.data() + ra * ca * l, l, false);
      if (!bcast_b) grad_b(db.data() + rb * cb * l, l, false);
    });
  // Broadcast operands: sums over the batch (L == 0: an empty sum, zero).
  if (bcast_a) reduce_over_batch(da.data(), ra * ca, L, flops, grad_a);
  if (bcast_b) reduce_over_batch(db.data(), rb * cb, L, flops, grad_b);
}

}  // namespace impl
LUX_NAMESPACE_END
