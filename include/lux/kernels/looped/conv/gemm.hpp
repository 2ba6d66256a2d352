// luxcpp — the looped convolution's GEMM engine and the work plumbing every path shares: the
// element types it is written for, Eigen's sequential blocked GEMM called on the buffers
// (gemm_engine), SIMD row helpers (axpy, add_to, dot), threads and work items, per-thread
// workspaces and the pixel tiles of a sample. See ../conv.hpp for the implementation as a whole.
#pragma once

#include "lux/core/eigen.hpp"  // Eigen, with GCC 12's false AVX-512 warnings silenced

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/core/tensor.hpp"

#if LUX_HAS_OPENMP
#include <omp.h>
#endif

LUX_NAMESPACE_BEGIN
namespace impl::conv_looped {

// ---------------------------------------------------------------------------------------------
// Type aliases and small helpers
// ---------------------------------------------------------------------------------------------

/// The element types the looped convolution is written for (Eigen GEMM + xsimd).
template <class T>
inline constexpr bool is_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// ⌈a / b⌉ for a ≥ 0, b > 0 (not (a + b − 1) / b, which overflows for a stride near 2^63).
inline index_t cdiv(index_t a, index_t b) { return a / b + (a % b != 0); }

/// One thread's GEMM, C (m × n, ldc) (+)= op(A) · op(B) with op(A) m × k and op(B) k × n, all
/// column-major: A is stored (m × k, lda), or (k × m, lda) when TransA; B is (k × n, ldb), or
/// (n × k, ldb) when TransB. It calls Eigen's sequential blocked GEMM (Goto's algorithm — the
/// kernel behind Eigen's operator*) directly, with packing buffers allocated once for the largest
/// (m, n, k) it will see: Eigen's operator* allocates them on every call (on the heap beyond
/// 128 KiB) and may start its own threads; this does neither. The internal interface used
/// (general_matrix_matrix_product::run, gemm_blocking_space) is the same in Eigen 3.4 and 5.
template <class T, bool TransA, bool TransB>
class gemm_engine {
  using blocking_t = Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic,
                                                          Eigen::Dynamic, Eigen::Dynamic, 1, false>;
  using product_t = Eigen::internal::general_matrix_matrix_product<
      Eigen::Index, T, TransA ? Eigen::RowMajor : Eigen::ColMajor, false, T,
      TransB ? Eigen::RowMajor : Eigen::ColMajor, false, Eigen::ColMajor, 1>;

 public:
  gemm_engine(index_t max_m, index_t max_n, index_t max_k)
      : blocking_(std::max<index_t>(max_m, 1), std::max<index_t>(max_n, 1),
                  std::max<index_t>(max_k, 1), 1, true) {
    blocking_.allocateAll();
  }
  gemm_engine(const gemm_engine&) = delete;
  gemm_engine& operator=(const gemm_engine&) = delete;

  /// C += op(A) · op(B).
  void accumulate(index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b, index_t ldb,
                  T* c, index_t ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    product_t::run(m, n, k, a, lda, b, ldb, c, 1, ldc, T(1), blocking_, nullptr);
  }
  /// C = op(A) · op(B).
  void assign(index_t m, index_t n, index_t k, const T* a, index_t lda, const T* b, index_t ldb,
              T* c, index_t ldc) {
    for (index_t j = 0; j < n; ++j) std::fill_n(c + j * ldc, m, T(0));
    accumulate(m, n, k, a, lda, b, ldb, c, ldc);
  }

 private:
  blocking_t blocking_;
};

/// One gemm_engine per thread, built before the parallel region.
template <class T, bool TransA, bool TransB>
class gemm_engines {
 public:
  gemm_engines(int threads, index_t max_m, index_t max_n, index_t max_k) {
    engines_.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t)
      engines_.push_back(std::make_unique<gemm_engine<T, TransA, TransB>>(max_m, max_n, max_k));
  }
  gemm_engine<T, TransA, TransB>& operator[](int thread) {
    return *engines_[static_cast<std::size_t>(thread)];
  }

 private:
  std::vector<std::unique_ptr<gemm_engine<T, TransA, TransB>>> engines_;
};

/// The SIMD batch of half the width of xsimd::batch<T, Arch>, for the tails of short rows (a
/// 56-float row is 3 AVX-512 batches + one AVX batch instead of + 8 scalars); void when the
/// target has none.
#if XSIMD_VERSION_MAJOR > 8 || (XSIMD_VERSION_MAJOR == 8 && XSIMD_VERSION_MINOR >= 1)
template <class T, class Arch>
using half_batch_t =
    std::conditional_t<(xsimd::batch<T, Arch>::size >= 4),
                       xsimd::make_sized_batch_t<T, xsimd::batch<T, Arch>::size / 2>, void>;
#else
template <class T, class Arch>
using half_batch_t = void;
#endif

/// y[i] += a·x[i], i < n (xsimd FMA).
template <class Arch, class T>
void axpy(index_t n, T a, const T* x, T* y) {
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const B av(a);
  index_t i = 0;
  for (; i + W <= n; i += W)
    xsimd::fma(av, B::load_unaligned(x + i), B::load_unaligned(y + i)).store_unaligned(y + i);
  if constexpr (!std::is_void_v<half_batch_t<T, Arch>>) {
    using H = half_batch_t<T, Arch>;
    constexpr index_t HW = static_cast<index_t>(H::size);
    if (i + HW <= n) {
      xsimd::fma(H(a), H::load_unaligned(x + i), H::load_unaligned(y + i)).store_unaligned(y + i);
      i += HW;
    }
  }
  for (; i < n; ++i) y[i] += a * x[i];
}
/// y[i] += x[i], i < n.
template <class Arch, class T>
void add_to(index_t n, const T* x, T* y) {
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  index_t i = 0;
  for (; i + W <= n; i += W)
    (B::load_unaligned(y + i) + B::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] += x[i];
}
/// Σ_i a[i]·b[i·sb], i < n.
template <class Arch, class T>
T dot(index_t n, const T* a, const T* b, index_t sb) {
  if (sb != 1) {
    T s = T(0);
    for (index_t i = 0; i < n; ++i) s += a[i] * b[i * sb];
    return s;
  }
  using B = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  B acc0(T(0)), acc1(T(0));
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + i + W), B::load_unaligned(b + i + W), acc1);
  }
  for (; i + W <= n; i += W)
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
  T s = simd::reduce_add(acc0 + acc1);
  if constexpr (!std::is_void_v<half_batch_t<T, Arch>>) {
    using H = half_batch_t<T, Arch>;
    constexpr index_t HW = static_cast<index_t>(H::size);
    if (i + HW <= n) {
      s += simd::reduce_add(H::load_unaligned(a + i) * H::load_unaligned(b + i));
      i += HW;
    }
  }
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

/// Index of the calling thread in the current team (0 outside a parallel region).
inline int thread_index() noexcept {
#if LUX_HAS_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Threads for `items` independent work items totalling `flops`: 1 when nested in a parallel
/// region or when the work is too small to pay for waking the team.
inline int plan_threads(index_t items, double flops) {
#if LUX_HAS_OPENMP
  if (omp_in_parallel()) return 1;
#endif
  if (flops < 131072.0) return 1;
  return static_cast<int>(std::max<index_t>(1, std::min<index_t>(max_threads(), items)));
}

/// Calls f(item, thread) for item in [0, items) on `threads` threads (static schedule, so a
/// thread's items — and every reduction over them — are fixed for a given thread count).
template <class F>
void run_items(index_t items, int threads, F&& f) {
#if LUX_HAS_OPENMP
  if (threads > 1 && items > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (index_t i = 0; i < items; ++i) f(i, thread_index());
    return;
  }
#else
  (void)threads;
#endif
  for (index_t i = 0; i < items; ++i) f(i, 0);
}

/// One zero-initialized-on-demand block of `per_thread` elements per thread, 64-byte aligned and
/// padded so that threads never share a cache line. Allocated once per call.
template <class T>
class workspace {
 public:
  workspace(int threads, index_t per_thread)
      : stride_((per_thread + 15) / 16 * 16),
        buf_(Tensor<T, 1>::uninitialized(shape_t<1>{stride_ * threads})) {}
  T* of(int thread) noexcept { return buf_.data() + stride_ * thread; }

 private:
  index_t stride_;
  Tensor<T, 1> buf_;
};

/// Pixel tiles of one sample: `tiles` tiles of `tile` output pixels (the last may be shorter).
struct tile_plan {
  index_t tile, tiles;
};
/// Tiles whose column buffer (tile × K elements of `bytes`) takes about 128 KiB, so that it, its
/// packed copy and the output tile stay in L2 (64 to 256 KiB measured the same within noise on
/// the benchmark shapes; at least 64 rows so that each GEMM is still efficient), with enough items
/// (batch × tiles) for every thread.
/// No pixels (a transposed convolution of an input with an empty spatial dimension): no tiles;
/// the callers still zero what they write.
inline tile_plan plan_tiles(index_t P, index_t K, index_t bytes, index_t batch, int threads) {
  if (P <= 0) return {1, 0};
  constexpr index_t target_bytes = 128 * 1024;
  index_t m = target_bytes / std::max<index_t>(1, K * bytes);
  m = std::max<index_t>(m, 64);
  if (batch < 2 * threads) m = std::min(m, cdiv(P * batch, 2 * threads));
  m = std::min<index_t>(std::max<index_t>((m + 15) / 16 * 16, 16), P);  // P < 16: one tile
  index_t tiles = cdiv(P, m);
  m = std::min(P, (cdiv(P, tiles) + 15) / 16 * 16);
  tiles = cdiv(P, m);
  return {m, tiles};
}

}  // namespace impl::conv_looped
LUX_NAMESPACE_END
