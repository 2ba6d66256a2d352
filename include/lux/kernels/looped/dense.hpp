// luxcpp — fused_dense_bias_activation and its backward pass: the looped (CPU) implementation.
//
// Forward: the output y (M, N) = W (M, K) · x (K, N) is cut into tiles of mb rows × nb columns
// (plan_dense_tiles below). Each tile is computed by Eigen's GEMM (Eigen::Map over the tensors,
// `noalias()`, summed over depth slices of 1 KiB of W column) followed at once by the epilogue z =
// tile + b, y = f(z) (xsimd), while the tile is still in the core's L2 cache: the bias and
// activation cost no extra sweep over the output. Tiles run in an OpenMP loop; inside it Eigen sees
// omp_get_num_threads() > 1 and runs each GEMM on one thread, so Eigen's own threading is never
// nested inside ours.
//
// Backward: one pass over dy computes dz = dy · f'(y or z) and the bias gradient together (each
// thread a contiguous range of columns, summing into its own row of a (threads × M) buffer,
// reduced at the end: deterministic for a fixed thread count); identity skips dz (dz = dy). Then
// two Eigen GEMMs, threaded by Eigen: dW = dz xᵀ, dx = Wᵀ dz.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>
#include "lux/core/eigen.hpp"  // Eigen, with GCC 12's false AVX-512 warnings silenced
#include "lux/core/kernel_trace.hpp"

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/dense.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {
namespace dense_looped {

// ---- type aliases ------------------------------------------------------------------------------
template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
using outer_stride = Eigen::OuterStride<>;

template <class T>
inline constexpr bool is_gemm_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

// ---- tiling ------------------------------------------------------------------------------------
/// Bytes of output a tile may hold and still sit in a core's L2 cache next to Eigen's packed
/// blocks (L2 is 1 MiB per core on the machines this was tuned on; 512 KiB leaves room).
inline constexpr index_t tile_output_bytes = index_t{512} << 10;
/// Depth of one GEMM call inside a tile, in bytes of a W column segment: 1 KiB = 256 floats /
/// 128 doubles. A tile's product is summed over K in slices of this depth (see forward_tiles).
inline constexpr index_t depth_block_bytes = index_t{1} << 10;
/// Packed W block (rows of a tile × depth block) that stays in a core's L2 cache (1 MiB) next
/// to the packed x panel and the output tile.
inline constexpr index_t lhs_block_bytes = index_t{512} << 10;

template <class T>
constexpr index_t depth_block() noexcept {
  return std::max<index_t>(depth_block_bytes / static_cast<index_t>(sizeof(T)), 16);
}
/// Below this many flops (2 M N K) one thread does the whole product: starting a parallel region
/// costs a few microseconds, a 4-Mflop GEMM takes ~40 µs on one core.
inline constexpr double min_parallel_flops = 4.0e6;

struct tile_plan {
  index_t mb = 0, nb = 0;                // tile size (the last row / column tile may be smaller)
  index_t row_tiles = 0, col_tiles = 0;  // tile grid
  int threads = 1;                       // threads that run the tiles (1: serial loop)
  index_t tiles() const noexcept { return row_tiles * col_tiles; }
};

/// Threads worth using for a product of this size (1 inside an enclosing parallel region).
inline int gemm_threads(index_t M, index_t N, index_t K) noexcept {
#if LUX_HAS_OPENMP
  if (omp_in_parallel()) return 1;
#endif
  const double flops =
      2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  return flops < min_parallel_flops ? 1 : max_threads();
}

/// Chooses the tile grid by a small cost model (in units of one core's FMA cycles; only the
/// ratios matter): per tile, the GEMM (2 mb nb K / 64 flops per cycle), Eigen's packing of the
/// tile's W rows and x columns ((mb + nb) K / 4 — the price of cutting the product into tiles),
/// and the epilogue (cheap while the tile fits tile_output_bytes, 4× dearer when it spills);
/// tiles run in rounds of `threads`, so the cost is rounds × the largest tile. Row tiles are
/// multiples of a 64-byte SIMD line so epilogue columns start aligned.
///
/// Eigen's single-threaded GEMM packs a block of mb rows × its depth kc of W and streams it
/// once per 4-column slice of x, and it sizes that block for the L3 cache (it takes the whole
/// tile height), so a tall tile streams W from L3; with two threads streaming at once that was
/// the difference between 103 and 124 GFLOP/s on 4096 × 4096 × 64 (one 2048-row tile per thread
/// vs 256-row tiles). forward_tiles therefore calls Eigen on depth slices of depth_block<T>()
/// (Eigen's kc is then at most that), and the model charges 10% more GEMM time to tiles whose
/// packed block mb × depth exceeds lhs_block_bytes.
inline tile_plan plan_dense_tiles(index_t M, index_t N, index_t K, std::size_t elem_bytes,
                                  int threads) {
  tile_plan best;
  const index_t depth = std::max<index_t>(depth_block_bytes / static_cast<index_t>(elem_bytes), 16);
  best.threads = std::max(threads, 1);
  const index_t row_align = std::max<index_t>(64 / static_cast<index_t>(elem_bytes), 1);
  const double budget = static_cast<double>(tile_output_bytes) / static_cast<double>(elem_bytes);
  // At most 16 × 16 candidates (≈ 1 µs): enough to reach in-budget tiles for outputs up to
  // 16 × 16 × 128 Ki elements.
  const index_t max_p = std::min<index_t>((M + row_align - 1) / row_align, 16);
  const index_t max_q = std::min<index_t>(N, 16);
  double best_cost = std::numeric_limits<double>::infinity();
  for (index_t p = 1; p <= std::max<index_t>(max_p, 1); ++p) {
    index_t mb = (M + p - 1) / p;
    mb = (mb + row_align - 1) / row_align * row_align;
    mb = std::max<index_t>(std::min(mb, M), 1);
    const index_t pr = (M + mb - 1) / mb;
    if (pr != p) continue;  // rounding merged tiles: the same grid as a smaller p
    for (index_t q = 1; q <= std::max<index_t>(max_q, 1); ++q) {
      const index_t nb = std::max<index_t>((N + q - 1) / q, 1);
      const index_t qr = (N + nb - 1) / nb;
      if (qr != q) continue;
      const double out = static_cast<double>(mb) * static_cast<double>(nb);
      const bool lhs_spills = static_cast<double>(mb) *
                                  static_cast<double>(std::min<index_t>(K, depth)) *
                                  static_cast<double>(elem_bytes) >
                              static_cast<double>(lhs_block_bytes);
      const double gemm = 2.0 * out * static_cast<double>(K) / 64.0 * (lhs_spills ? 1.1 : 1.0);
      const double pack = static_cast<double>(mb + nb) * static_cast<double>(K) / 4.0;
      const double epilogue = out * (out <= budget ? 0.25 : 1.0);
      const index_t rounds = (p * q + best.threads - 1) / best.threads;
      const double cost = static_cast<double>(rounds) * (gemm + pack + epilogue);
      if (cost < best_cost * (1 - 1e-9)) {
        best_cost = cost;
        best.mb = mb;
        best.nb = nb;
        best.row_tiles = p;
        best.col_tiles = q;
      }
    }
  }
  if (best.tiles() < 2) best.threads = 1;
  best.threads = static_cast<int>(std::min<index_t>(best.threads, best.tiles()));
  return best;
}

// ---- epilogue ----------------------------------------------------------------------------------
/// For a rows × cols block with leading dimension ld: z = y + b (stored when SaveZ), y = f(z).
template <bool HasBias, bool SaveZ, class Arch, class F, class T>
void epilogue(const F& f, T* y, T* z, const T* b, index_t rows, index_t cols, index_t ld) {
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  if constexpr (!HasBias && !SaveZ && activation_traits<F>::is_identity) return;
  for (index_t j = 0; j < cols; ++j) {
    T* yj = y + ld * j;
    [[maybe_unused]] T* zj = SaveZ ? z + ld * j : nullptr;
    index_t i = 0;
    for (; i + W <= rows; i += W) {
      batch v = batch::load_unaligned(yj + i);
      if constexpr (HasBias) v += batch::load_unaligned(b + i);
      if constexpr (SaveZ) v.store_unaligned(zj + i);
      f(v).store_unaligned(yj + i);
    }
    for (; i < rows; ++i) {
      T v = yj[i];
      if constexpr (HasBias) v += b[i];
      if constexpr (SaveZ) zj[i] = v;
      yj[i] = f(v);
    }
  }
}

template <bool HasBias, bool SaveZ, class Arch, class F, class T>
void forward_tiles(const F& f, const T* w, const T* x, const T* b, T* y, T* z, index_t M, index_t K,
                   index_t N, const tile_plan& plan) {
  auto tile = [&](index_t t) {
    const index_t ti = t % plan.row_tiles, tj = t / plan.row_tiles;
    const index_t i0 = ti * plan.mb, j0 = tj * plan.nb;
    const index_t mb = std::min(plan.mb, M - i0), nb = std::min(plan.nb, N - j0);
    if (mb <= 0 || nb <= 0) return;
    Eigen::Map<matrix<T>, Eigen::Unaligned, outer_stride> Y(y + i0 + M * j0, mb, nb,
                                                            outer_stride(M));
    // Y = Σ over depth slices [k0, k0 + kc) of W[i0 .., k0 ..] · x[k0 .., j0 ..].
    constexpr index_t kc = depth_block<T>();
    if (K == 0) Y.setZero();
    for (index_t k0 = 0; k0 < K; k0 += kc) {
      const index_t k = std::min(kc, K - k0);
      Eigen::Map<const matrix<T>, Eigen::Unaligned, outer_stride> W(w + i0 + M * k0, mb, k,
                                                                    outer_stride(M));
      Eigen::Map<const matrix<T>, Eigen::Unaligned, outer_stride> X(x + k0 + K * j0, k, nb,
                                                                    outer_stride(K));
      if (k0 == 0)
        Y.noalias() = W * X;
      else
        Y.noalias() += W * X;
    }
    epilogue<HasBias, SaveZ, Arch>(f, y + i0 + M * j0, SaveZ ? z + i0 + M * j0 : nullptr,
                                   HasBias ? b + i0 : nullptr, mb, nb, M);
  };
  const index_t tiles = plan.tiles();
#if LUX_HAS_OPENMP
  if (plan.threads > 1) {
    // Dynamic: on a shared machine a descheduled thread's tiles go to the others.
#pragma omp parallel for schedule(dynamic, 1) num_threads(plan.threads)
    for (index_t t = 0; t < tiles; ++t) tile(t);
    return;
  }
#endif
  for (index_t t = 0; t < tiles; ++t) tile(t);
}

/// dz = dy · f'(arg) (written when WriteDz) and db = Σ_j dz[:, j] (when HasDb), in one pass.
template <bool WriteDz, bool HasDb, class Arch, class F, class T>
void backward_pass(const F& f, const T* dy, const T* arg, T* dz, T* db, index_t M, index_t N) {
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  const index_t work = M * N;
  const index_t pieces =
      std::max<index_t>(1, std::min<index_t>(work >= (index_t{1} << 15) ? max_threads() : 1, N));
  const index_t cols_per = (N + pieces - 1) / std::max<index_t>(pieces, 1);
  // Piece 0 sums straight into db; the others into their own row of `partial`.
  std::vector<T> partial(HasDb ? static_cast<std::size_t>((pieces - 1) * M) : 0, T(0));
  if constexpr (HasDb) std::fill_n(db, M, T(0));
  auto piece = [&](index_t p) {
    const index_t j0 = p * cols_per, j1 = std::min(N, j0 + cols_per);
    [[maybe_unused]] T* acc = HasDb ? (p == 0 ? db : partial.data() + (p - 1) * M) : nullptr;
    for (index_t j = j0; j < j1; ++j) {
      const T* dyj = dy + M * j;
      [[maybe_unused]] const T* aj = WriteDz ? arg + M * j : nullptr;
      [[maybe_unused]] T* dzj = WriteDz ? dz + M * j : nullptr;
      index_t i = 0;
      for (; i + W <= M; i += W) {
        batch g = batch::load_unaligned(dyj + i);
        if constexpr (WriteDz) {
          g *= f.derivative(batch::load_unaligned(aj + i));
          g.store_unaligned(dzj + i);
        }
        if constexpr (HasDb) (batch::load_unaligned(acc + i) + g).store_unaligned(acc + i);
      }
      for (; i < M; ++i) {
        T g = dyj[i];
        if constexpr (WriteDz) {
          g *= f.derivative(aj[i]);
          dzj[i] = g;
        }
        if constexpr (HasDb) acc[i] += g;
      }
    }
  };
  parallel_for(pieces, piece, work, 0);
  if constexpr (HasDb)
    for (index_t p = 1; p < pieces; ++p) {
      const T* src = partial.data() + (p - 1) * M;
      for (index_t i = 0; i < M; ++i) db[i] += src[i];
    }
}

}  // namespace dense_looped

/// y = f(W x + b) (see the generic overload for the contract): tiled Eigen GEMM with the bias and
/// activation applied to each tile right after it is computed.
template <class F, class T, class Arch = xsimd::default_arch>
requires dense_looped::is_gemm_real_v<T>
void fused_dense_forward(looped_op, const F& f, TensorView<const T, 2> w, TensorView<const T, 2> x,
                         const T* b, TensorView<T, 2> y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "fused_dense_forward");
  LUX_DISPATCH("fused_dense_forward", (F, T), f, w, x, b, y, z);
  using namespace dense_looped;
  const index_t M = w.size(0), K = w.size(1), N = x.size(1);
  if (M == 0 || N == 0) return;
  const tile_plan plan = plan_dense_tiles(M, N, K, sizeof(T), gemm_threads(M, N, K));
  const T* wp = w.data();
  const T* xp = x.data();
  T* yp = y.data();
  if (b != nullptr && z != nullptr)
    forward_tiles<true, true, Arch>(f, wp, xp, b, yp, z, M, K, N, plan);
  else if (b != nullptr)
    forward_tiles<true, false, Arch>(f, wp, xp, b, yp, z, M, K, N, plan);
  else if (z != nullptr)
    forward_tiles<false, true, Arch>(f, wp, xp, b, yp, z, M, K, N, plan);
  else
    forward_tiles<false, false, Arch>(f, wp, xp, b, yp, z, M, K, N, plan);
}

/// dz = dy · f'(arg), db = row sums of dz, dW = dz xᵀ, dx = Wᵀ dz (see the generic overload).
template <class F, class T, class Arch = xsimd::default_arch>
requires dense_looped::is_gemm_real_v<T>
void fused_dense_backward(looped_op, const F& f, TensorView<const T, 2> dy,
                          TensorView<const T, 2> w, TensorView<const T, 2> x, const T* arg,
                          TensorView<T, 2> dw, TensorView<T, 2> dx, T* db) {
  LUX_TRACE_KERNEL("looped_op", "fused_dense_backward");
  LUX_DISPATCH("fused_dense_backward", (F, T), f, dy, w, x, arg, dw, dx, db);
  using namespace dense_looped;
  const index_t M = w.size(0), K = w.size(1), N = x.size(1);
  constexpr bool identity = activation_traits<F>::is_identity;

  Tensor<T, 2> dz_buffer;
  const T* dz = dy.data();
  if constexpr (!identity) {
    dz_buffer = Tensor<T, 2>::uninitialized(shape_t<2>{M, N});
    if (db != nullptr)
      backward_pass<true, true, Arch>(f, dy.data(), arg, dz_buffer.data(), db, M, N);
    else
      backward_pass<true, false, Arch>(f, dy.data(), arg, dz_buffer.data(), db, M, N);
    dz = dz_buffer.data();
  } else if (db != nullptr) {
    backward_pass<false, true, Arch>(f, dy.data(), arg, static_cast<T*>(nullptr), db, M, N);
  }

  Eigen::Map<const matrix<T>> DZ(dz, M, N), W(w.data(), M, K), X(x.data(), K, N);
  Eigen::Map<matrix<T>> DW(dw.data(), M, K), DX(dx.data(), K, N);
  DW.noalias() = DZ * X.transpose();
  DX.noalias() = W.transpose() * DZ;
}

}  // namespace impl
LUX_NAMESPACE_END
