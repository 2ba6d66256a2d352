// luxcpp — the looped convolution's GEMM engines and the work plumbing every path shares: the
// element types it is written for, a register-blocked GEMM with the weights packed once per call
// (gemm_packed: the forward and data products), Eigen's sequential blocked GEMM called on the
// buffers (gemm_engine: the filter product), SIMD row helpers (axpy, add_to, dot), threads and
// work items, per-thread workspaces and the pixel tiles of a sample. See ../conv.hpp for the
// implementation as a whole.
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

/// A register-blocked GEMM for the convolution's shapes: C (m × n, ldc) (+)= A (m × k, lda) · B,
/// column-major, with B packed once per call (packed_b) and A read in place. The convolution's
/// A is the im2col tile (or x itself, or a dy tile): already contiguous down each column, so
/// unlike a general GEMM (Eigen's, used before) nothing is packed per tile, and the weights are
/// packed once per call instead of once per tile. The micro-kernel keeps an MR × NR block of C
/// in registers — MR = 3 vectors of rows, NR = 8 columns with AVX-512's 32 vector registers, 4
/// with 16 — and adds, per k, 3 vector loads of A times NR broadcasts of B: 3·NR FMAs for 3 + NR
/// loads. k is blocked by KC so that the A block (MR × KC) stays in L1 across the column panels.
template <class T, class Arch>
struct register_block {
  using batch = xsimd::batch<T, Arch>;
  static constexpr index_t W = static_cast<index_t>(batch::size);
  static constexpr bool wide = W * static_cast<index_t>(sizeof(T)) >= 64;  // 32 registers
  static constexpr int MV = 3;
  static constexpr int NR = wide ? 8 : 4;
  static constexpr index_t MR = MV * W;
  static constexpr index_t KC = 128;
};

/// B (k × n) packed into panels of NR columns: panel jb holds B(kk, jb·NR + c) at [kk·NR + c]
/// (zero beyond n). B(kk, j) is b[kk + j·ldb], or b[j + kk·ldb] when trans.
template <class T, class Arch>
class packed_b {
  static constexpr int NR = register_block<T, Arch>::NR;

 public:
  packed_b(index_t k, index_t n, const T* b, index_t ldb, bool trans)
      : k_(k),
        n_(n),
        buf_(Tensor<T, 1>::uninitialized(shape_t<1>{std::max<index_t>(1, cdiv(n, NR) * NR * k)})) {
    T* out = buf_.data();
    for (index_t jb = 0; jb * NR < n; ++jb)
      for (index_t kk = 0; kk < k; ++kk)
        for (index_t c = 0; c < NR; ++c) {
          const index_t j = jb * NR + c;
          *out++ = j < n ? (trans ? b[j + kk * ldb] : b[kk + j * ldb]) : T(0);
        }
  }
  index_t k() const noexcept { return k_; }
  index_t n() const noexcept { return n_; }
  const T* panel(index_t jb) const noexcept { return buf_.data() + jb * NR * k_; }

 private:
  index_t k_, n_;
  Tensor<T, 1> buf_;
};

/// Every group's weight packed: W_g (K_g × O_g, rows of the (k..., C_in/groups, C_out) array), or
/// W_gᵀ when trans.
template <class Arch, class T>
std::vector<packed_b<T, Arch>> pack_weights(index_t groups, index_t Kg, index_t Og, const T* w,
                                            bool trans) {
  std::vector<packed_b<T, Arch>> packed;
  packed.reserve(static_cast<std::size_t>(groups));
  for (index_t grp = 0; grp < groups; ++grp) {
    if (trans)
      packed.emplace_back(Og, Kg, w + grp * Og * Kg, Kg, true);
    else
      packed.emplace_back(Kg, Og, w + grp * Og * Kg, Kg, false);
  }
  return packed;
}

/// The micro-kernel: C[0 : MV·W, 0 : nc] (+)= A[0 : MV·W, 0 : kc] · Bpanel[0 : kc, :]. Column kk
/// of A starts at a + kk·lda, or at a + koff[kk] when koff is given (the implicit GEMM of a
/// stride-1 convolution reads its columns straight from the padded input).
template <class Arch, int MV, class T>
inline void gemm_micro(index_t kc, const T* a, index_t lda, const index_t* koff, const T* b, T* c,
                       index_t ldc, index_t nc, bool accumulate) {
  using RB = register_block<T, Arch>;
  using B = typename RB::batch;
  constexpr index_t W = RB::W;
  constexpr int NR = RB::NR;
  B r[MV][NR];
#pragma GCC unroll 8
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) r[v][j] = B(T(0));
  for (index_t kk = 0; kk < kc; ++kk) {
    const T* ak = koff ? a + koff[kk] : a + kk * lda;
    const T* bk = b + kk * NR;
    B av[MV];
#pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) av[v] = B::load_unaligned(ak + v * W);
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const B bj(bk[j]);
#pragma GCC unroll 8
      for (int v = 0; v < MV; ++v) r[v][j] = xsimd::fma(av[v], bj, r[v][j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    if (j >= nc) break;
#pragma GCC unroll 8
    for (int v = 0; v < MV; ++v) {
      T* cp = c + j * ldc + v * W;
      (accumulate ? r[v][j] + B::load_unaligned(cp) : r[v][j]).store_unaligned(cp);
    }
  }
}

/// C (m × n, ldc) = A (m × k, lda) · B, or C += A · B when accumulate (B packed: packed_b).
/// With koff, column kk of A starts at a + koff[kk] instead of a + kk·lda.
template <class Arch, class T>
void gemm_packed(index_t m, const T* a, index_t lda, const packed_b<T, Arch>& pb, T* c, index_t ldc,
                 bool accumulate, const index_t* koff = nullptr) {
  using RB = register_block<T, Arch>;
  constexpr index_t W = RB::W, KC = RB::KC;
  constexpr int NR = RB::NR;
  const index_t n = pb.n(), k = pb.k(), panels = cdiv(n, NR);
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (index_t j = 0; j < n; ++j) std::fill_n(c + j * ldc, m, T(0));
    return;
  }
  for (index_t k0 = 0; k0 < k; k0 += KC) {
    const index_t kc = std::min(KC, k - k0);
    const bool acc = accumulate || k0 > 0;
    const T* ak = koff ? a : a + k0 * lda;
    const index_t* ko = koff ? koff + k0 : nullptr;
    // Rows in blocks of MR, then 2 and 1 vectors.
    const auto rows = [&]<int MV>(index_t& i) {
      for (; i + MV * W <= m; i += MV * W)
        for (index_t jb = 0; jb < panels; ++jb)
          gemm_micro<Arch, MV>(kc, ak + i, lda, ko, pb.panel(jb) + k0 * NR, c + i + jb * NR * ldc,
                               ldc, std::min<index_t>(NR, n - jb * NR), acc);
    };
    index_t i = 0;
    rows.template operator()<RB::MV>(i);
    rows.template operator()<2>(i);
    rows.template operator()<1>(i);
    if (i < m) {  // fewer rows than one vector: through zero-padded copies of A's and C's rows
      const index_t rest = m - i;
      alignas(64) T abuf[W * KC];
      alignas(64) T cbuf[W * NR];
      for (index_t kk = 0; kk < kc; ++kk) {
        const T* col = ak + i + (ko ? ko[kk] : kk * lda);
        for (index_t rr = 0; rr < W; ++rr) abuf[kk * W + rr] = rr < rest ? col[rr] : T(0);
      }
      for (index_t jb = 0; jb < panels; ++jb) {
        const index_t nc = std::min<index_t>(NR, n - jb * NR);
        gemm_micro<Arch, 1>(kc, abuf, W, nullptr, pb.panel(jb) + k0 * NR, cbuf, W, nc, false);
        for (index_t j = 0; j < nc; ++j) {
          T* cj = c + i + (jb * NR + j) * ldc;
          for (index_t rr = 0; rr < rest; ++rr)
            cj[rr] = acc ? cj[rr] + cbuf[j * W + rr] : cbuf[j * W + rr];
        }
      }
    }
  }
}

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
/// Tiles of about `rows` output pixels, fewer when there are fewer (batch × tiles) items than
/// twice the threads, a multiple of `quantum` rows (the GEMM's row block) unless the sample has
/// fewer pixels. No pixels (a transposed convolution of an input with an empty spatial
/// dimension): no tiles; the callers still zero what they write.
inline tile_plan plan_tile_rows(index_t P, index_t rows, index_t batch, int threads,
                                index_t quantum) {
  if (P <= 0) return {1, 0};
  const auto round_up = [quantum](index_t v) { return cdiv(v, quantum) * quantum; };
  index_t m = rows;
  if (batch < 2 * threads) m = std::min(m, cdiv(P * batch, 2 * threads));
  m = std::min<index_t>(std::max<index_t>(round_up(m), quantum), P);  // P < quantum: one tile
  index_t tiles = cdiv(P, m);
  m = std::min(P, round_up(cdiv(P, tiles)));
  tiles = cdiv(P, m);
  return {m, tiles};
}
/// Tiles whose column buffer (tile × K elements of `bytes`) takes about 128 KiB, so that it and
/// the output tile stay in L2 (64 to 256 KiB measured the same within noise on the benchmark
/// shapes), at least 64 rows so that each GEMM is still efficient.
inline tile_plan plan_tiles(index_t P, index_t K, index_t bytes, index_t batch, int threads,
                            index_t quantum = 16) {
  const index_t rows = std::max<index_t>(128 * 1024 / std::max<index_t>(1, K * bytes), 64);
  return plan_tile_rows(P, rows, batch, threads, quantum);
}

}  // namespace impl::conv_looped
LUX_NAMESPACE_END
