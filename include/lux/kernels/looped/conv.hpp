// luxcpp — N-d convolution, its transpose and their backward passes: the looped (CPU)
// implementation, float and double (other element types fall back to the generic overloads).
//
// Layout (see the generic file): one sample's input is a (pixels × C_in) column-major matrix, its
// output a (pixels × C_out) one, and the weight of group grp is the (K_g × C_out/groups) matrix
// W_g, K_g = ∏k · C_in/groups, stored as is in the (k..., C_in/groups, C_out) array. Hence
//
//   forward   Y[tile, grp] = Col(tile) · W_g              Col = im2col of the tile: (m × K_g)
//   data      dCol = dY[tile, grp] · W_gᵀ, then col2im     (scatter-add into dx)
//   filter    dW_g += Col(tile)ᵀ · dY[tile, grp]           (per-thread partial sums, reduced)
//
// with Eigen's blocked GEMM kernel called directly on the buffers (gemm_engine: no copies of x,
// y or w, packing buffers allocated once per thread and call, never Eigen's own threads). The
// work is split into (sample, pixel tile) items over OpenMP threads; each thread owns one column
// buffer from a workspace allocated once per call (nothing is allocated inside the item loop),
// sized so that the tile (m × K_g) stays in L2. Bias and activation are applied to each output
// tile right after its GEMM, while it is in cache (the "epilogue"); the pre-activation is saved
// there too when asked. Special cases:
//   * 1×…×1 kernels with stride 1 and no padding skip im2col: Col is x itself.
//   * C_in/groups == 1 (depthwise, any channel multiplier; also a single-channel input) uses
//     direct kernels: row-wise SIMD axpy's over the kernel taps, parallel over (sample, channel);
//     the filter gradient is a set of SIMD dot products; the backward is one fused pass per
//     (sample, input channel) with per-thread partial sums for dw and db.
//   * The fused backward computes dz = dy·σ'(·) per tile into a thread buffer and uses it for the
//     bias sum, the filter GEMM and the data GEMM + col2im of the same tile (one im2col per tile),
//     parallel over samples (col2im of one sample must stay in one thread). With fewer samples
//     than threads it runs the separate passes instead: dz, then the data gradient parallel over
//     (sample, group, channel chunk) — chunks own disjoint channels of dx — and the filter
//     gradient over (sample, tile).
// Determinism: for a fixed thread count every reduction has a fixed order.
#pragma once

#include "lux/core/eigen.hpp"  // Eigen, with GCC 12's false AVX-512 warnings silenced
#include "lux/core/kernel_trace.hpp"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/conv.hpp"

#if LUX_HAS_OPENMP
#include <omp.h>
#endif

LUX_NAMESPACE_BEGIN
namespace impl {
namespace conv_looped {

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

/// True when Col == x: 1×…×1 kernel, stride 1, no padding, same spatial size.
inline bool is_pointwise(const conv_geometry& g) {
  for (int d = 0; d < 3; ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad[d] != 0 || g.in[d] != g.out[d]) return false;
  return true;
}

/// Per weight tap kw0 along the fastest dimension: the input offset i0 = o0·s0 + off0 and the
/// output range [lo, hi) of o0 whose reads fall inside the input. Computed once per call.
struct row_taps {
  std::vector<index_t> off, lo, hi;
  explicit row_taps(const conv_geometry& g)
      : off(static_cast<std::size_t>(g.kernel[0])), lo(off.size()), hi(off.size()) {
    const index_t s = g.stride[0], I = g.in[0], O = g.out[0];
    for (index_t k = 0; k < g.kernel[0]; ++k) {
      const index_t o = g.tap(0, k) * g.dilation[0] - g.pad[0];
      const auto u = static_cast<std::size_t>(k);
      off[u] = o;
      lo[u] = std::min(O, o >= 0 ? 0 : cdiv(-o, s));
      hi[u] = std::clamp<index_t>(I - 1 - o < 0 ? 0 : (I - 1 - o) / s + 1, lo[u], O);
    }
  }
};

/// im2col (Scatter = false) or col2im (Scatter = true) of the output pixels [p0, p1) of one
/// sample, for `nch` consecutive input channels starting at the plane x:
///   col[(p − p0) + m·r]  ↔  x[c][pixel read by output pixel p at weight tap r],
///   r = kw0 + K0·(kw1 + K1·(kw2 + K2·c))  (the row order of W_g), m = p1 − p0.
/// im2col writes zeros where the read falls in the padding; col2im adds col into x there and
/// skips padding.
template <bool Scatter, class Arch, class T>
void im2col(const conv_geometry& g, const row_taps& rt, std::conditional_t<Scatter, T*, const T*> x,
            index_t nch, index_t p0, index_t p1, std::conditional_t<Scatter, const T*, T*> col) {
  const index_t m = p1 - p0;
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  const index_t plane = g.in_pixels(), s0 = g.stride[0];
  const index_t o0_first = p0 % O[0], t_first = p0 / O[0];
  index_t r = 0;
  for (index_t c = 0; c < nch; ++c)
    for (index_t kw2 = 0; kw2 < K[2]; ++kw2) {
      const index_t off2 = g.tap(2, kw2) * g.dilation[2] - g.pad[2];
      for (index_t kw1 = 0; kw1 < K[1]; ++kw1) {
        const index_t off1 = g.tap(1, kw1) * g.dilation[1] - g.pad[1];
        for (index_t kw0 = 0; kw0 < K[0]; ++kw0, ++r) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t off0 = rt.off[u], lo0 = rt.lo[u], hi0 = rt.hi[u];
          auto* cc = col + m * r;
          auto* xc = x + plane * c;
          index_t p = p0, o0 = o0_first, o1 = t_first % O[1], o2 = t_first / O[1];
          while (p < p1) {
            const index_t run = std::min(p1 - p, O[0] - o0);
            auto* seg = cc + (p - p0);
            const index_t i2 = o2 * g.stride[2] + off2, i1 = o1 * g.stride[1] + off1;
            if (i2 < 0 || i2 >= I[2] || i1 < 0 || i1 >= I[1]) {
              if constexpr (!Scatter) std::fill_n(seg, run, T(0));
            } else {
              auto* row = xc + (i2 * I[1] + i1) * I[0];
              const index_t jlo = std::clamp<index_t>(lo0 - o0, 0, run);
              const index_t jhi = std::clamp<index_t>(hi0 - o0, jlo, run);
              if constexpr (!Scatter) {
                std::fill_n(seg, jlo, T(0));
                std::fill_n(seg + jhi, run - jhi, T(0));
              }
              if (jhi <= jlo) {
                // No tap of this run reads x (an empty input row): no pointer into it either.
              } else if (s0 == 1) {
                if constexpr (Scatter)
                  add_to<Arch>(jhi - jlo, seg + jlo, row + o0 + jlo + off0);
                else
                  std::copy_n(row + o0 + jlo + off0, jhi - jlo, seg + jlo);
              } else {
                for (index_t j = jlo; j < jhi; ++j) {
                  if constexpr (Scatter)
                    row[(o0 + j) * s0 + off0] += seg[j];
                  else
                    seg[j] = row[(o0 + j) * s0 + off0];
                }
              }
            }
            p += run;
            o0 = 0;
            if (++o1 == O[1]) {
              o1 = 0;
              ++o2;
            }
          }
        }
      }
    }
}

/// Bias, activation (and the saved pre-activation) over one channel's run of `m` elements.
template <class T, class F>
void epilogue_run(const F& f, T* y, T* z, T bias, index_t m) {
  if (z) {
    simd::transform(
        m, z, [bias](auto v) { return v + decltype(v)(bias); }, y);
    simd::transform(
        m, y, [&f](auto v) { return f(v); }, z);
  } else {
    simd::transform(
        m, y, [&f, bias](auto v) { return f(v + decltype(v)(bias)); }, y);
  }
}
/// The epilogue of the output rows [p0, p0 + m) of every channel of one sample.
template <class T, class F>
void epilogue(const F& f, T* yn, T* zn, const T* b, index_t C, index_t P, index_t p0, index_t m) {
  if (activation_traits<F>::is_identity && !b && !zn) return;
  for (index_t c = 0; c < C; ++c)
    epilogue_run(f, yn + c * P + p0, zn ? zn + c * P + p0 : nullptr, b ? b[c] : T(0), m);
}

/// Sum of `n` partial arrays of `len` elements spaced `stride` apart, into out (parallel).
template <class T>
void reduce_partials(const T* parts, index_t stride, int n, index_t len, T* out) {
  parallel_chunks(len, [&](index_t lo, index_t hi) {
    std::copy(parts + lo, parts + hi, out + lo);
    for (int t = 1; t < n; ++t) {
      const T* p = parts + stride * t;
      for (index_t i = lo; i < hi; ++i) out[i] += p[i];
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Depthwise (C_in/groups == 1): direct kernels
// ---------------------------------------------------------------------------------------------

/// Visits every (output row, kernel row) pair of one plane whose input row exists:
/// f(output row offset, input row offset, weight index of tap (0, kw1, kw2)).
template <class F>
void for_each_row_pair(const conv_geometry& g, F&& f) {
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  for (index_t o2 = 0; o2 < O[2]; ++o2)
    for (index_t o1 = 0; o1 < O[1]; ++o1) {
      const index_t orow = (o2 * O[1] + o1) * O[0];
      for (index_t kw2 = 0; kw2 < K[2]; ++kw2) {
        const index_t i2 = o2 * g.stride[2] + g.tap(2, kw2) * g.dilation[2] - g.pad[2];
        if (i2 < 0 || i2 >= I[2]) continue;
        for (index_t kw1 = 0; kw1 < K[1]; ++kw1) {
          const index_t i1 = o1 * g.stride[1] + g.tap(1, kw1) * g.dilation[1] - g.pad[1];
          if (i1 < 0 || i1 >= I[1]) continue;
          f(orow, (i2 * I[1] + i1) * I[0], K[0] * (kw1 + K[1] * kw2));
        }
      }
    }
}

template <class Arch, class T, class F>
void depthwise_forward(const conv_geometry& g, const T* x, const T* w, const T* b, const F& f, T* y,
                       T* z) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.batch * g.c_out;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * items));
  run_items(items, threads, [&](index_t item, int) {
    const index_t n = item / g.c_out, co = item % g.c_out, ci = co / Og;
    const T* xp = x + (n * g.c_in + ci) * Pin;
    const T* wp = w + co * Kp;
    T* yp = y + item * P;
    std::fill_n(yp, P, T(0));
    for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
      for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
        const auto u = static_cast<std::size_t>(kw0);
        const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
        if (hi <= lo) continue;  // no output reads this tap (and x may be empty)
        const T wv = wp[wrow + kw0];
        T* yr = yp + orow;
        const T* xr = xp + irow;
        if (s0 == 1) {
          axpy<Arch>(hi - lo, wv, xr + lo + off, yr + lo);
        } else {
          for (index_t o = lo; o < hi; ++o) yr[o] += wv * xr[o * s0 + off];
        }
      }
    });
    epilogue_run(f, yp, z ? z + item * P : nullptr, b ? b[co] : T(0), P);
  });
}

template <class Arch, class T>
void depthwise_backward_data(const conv_geometry& g, const T* dy, const T* w, T* dx) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.batch * g.c_in;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  run_items(items, threads, [&](index_t item, int) {
    const index_t n = item / g.c_in, ci = item % g.c_in;
    T* dxp = dx + item * Pin;
    std::fill_n(dxp, Pin, T(0));
    for (index_t j = 0; j < Og; ++j) {
      const index_t co = ci * Og + j;
      const T* dyp = dy + (n * g.c_out + co) * P;
      const T* wp = w + co * Kp;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi <= lo) continue;
          const T wv = wp[wrow + kw0];
          const T* dyr = dyp + orow;
          T* dxr = dxp + irow;
          if (s0 == 1) {
            axpy<Arch>(hi - lo, wv, dyr + lo, dxr + lo + off);
          } else {
            for (index_t o = lo; o < hi; ++o) dxr[o * s0 + off] += wv * dyr[o];
          }
        }
      });
    }
  });
}

template <class Arch, class T>
void depthwise_backward_filter(const conv_geometry& g, const T* x, const T* dy, T* dw) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.c_out;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  workspace<T> ws(threads, Kp);
  run_items(items, threads, [&](index_t co, int tid) {
    T* acc = ws.of(tid);
    std::fill_n(acc, Kp, T(0));
    const index_t ci = co / Og;
    for (index_t n = 0; n < g.batch; ++n) {
      const T* xp = x + (n * g.c_in + ci) * Pin;
      const T* dyp = dy + (n * g.c_out + co) * P;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi > lo)
            acc[wrow + kw0] += dot<Arch>(hi - lo, dyp + orow + lo, xp + irow + lo * s0 + off, s0);
        }
      });
    }
    std::copy_n(acc, Kp, dw + co * Kp);
  });
}

/// The fused depthwise backward, parallel over (sample, input channel): for each output channel
/// of the input channel's group, dz = dy·f'(arg) into a thread buffer (identity: dy itself), then
/// db, the dx rows (SIMD axpy's) and the dw taps (SIMD dot products) from it; dw and db are
/// per-thread partial sums, reduced at the end.
template <class Arch, class T, class F>
void depthwise_backward(const conv_geometry& g, const F& f, const T* dy, const T* arg, const T* x,
                        const T* w, T* dx, T* dw, T* db) {
  constexpr bool is_identity = activation_traits<F>::is_identity;
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0], nw = Kp * g.c_out;
  const row_taps rt(g);
  const index_t items = g.batch * g.c_in;
  const int threads = plan_threads(items, 4.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  const bool partials = threads > 1;
  const auto round16 = [](index_t v) { return (v + 15) / 16 * 16; };
  const index_t dz_size = is_identity ? 0 : round16(P);
  workspace<T> ws(threads, dz_size + (partials ? round16(nw) + round16(g.c_out) : 0));
  const auto dw_part = [&](int t) { return partials ? ws.of(t) + dz_size : dw; };
  const auto db_part = [&](int t) { return partials ? ws.of(t) + dz_size + round16(nw) : db; };
  for (int t = 0; t < (partials ? threads : 1); ++t) {
    std::fill_n(dw_part(t), nw, T(0));
    if (db) std::fill_n(db_part(t), g.c_out, T(0));
  }
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / g.c_in, ci = item % g.c_in;
    const T* xp = x + item * Pin;
    T* dxp = dx + item * Pin;
    T* dwp = dw_part(tid);
    T* dbp = db ? db_part(tid) : nullptr;
    std::fill_n(dxp, Pin, T(0));
    for (index_t j = 0; j < Og; ++j) {
      const index_t co = ci * Og + j;
      const index_t yoff = (n * g.c_out + co) * P;
      const T* dz = dy + yoff;
      if constexpr (!is_identity) {
        T* buf = ws.of(tid);
        simd::transform(
            P, buf, [&f](auto d, auto a) { return d * f.derivative(a); }, dy + yoff, arg + yoff);
        dz = buf;
      }
      if (dbp) dbp[co] += simd::sum(dz, P);
      const T* wp = w + co * Kp;
      T* dwc = dwp + co * Kp;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi <= lo) continue;
          const T wv = wp[wrow + kw0];
          const T* dzr = dz + orow;
          T* dxr = dxp + irow;
          if (s0 == 1) {
            axpy<Arch>(hi - lo, wv, dzr + lo, dxr + lo + off);
          } else {
            for (index_t o = lo; o < hi; ++o) dxr[o * s0 + off] += wv * dzr[o];
          }
          dwc[wrow + kw0] += dot<Arch>(hi - lo, dzr + lo, xp + irow + lo * s0 + off, s0);
        }
      });
    }
  });
  if (partials) {
    const index_t stride = ws.of(1) - ws.of(0);
    reduce_partials(dw_part(0), stride, threads, nw, dw);
    if (db) reduce_partials(db_part(0), stride, threads, g.c_out, db);
  }
}

}  // namespace conv_looped

// ---------------------------------------------------------------------------------------------
// Element-wise passes over (pixels, C, batch) arrays
// ---------------------------------------------------------------------------------------------

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_bias_activation(looped_op, const F& f, index_t pixels, index_t C, index_t batch,
                          const T* a, const T* b, T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_bias_activation");
  using namespace conv_looped;
  const index_t items = C * batch;
  const int threads = plan_threads(items, static_cast<double>(pixels * items) * 8);
  run_items(items, threads, [&](index_t item, int) {
    const index_t c = item % C;
    const index_t off = item * pixels;
    if (a != y) std::copy_n(a + off, pixels, y + off);
    epilogue_run(f, y + off, z ? z + off : nullptr, b ? b[c] : T(0), pixels);
  });
}

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_bias_gradient(looped_op, index_t pixels, index_t C, index_t batch, const T* dy, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_bias_gradient");
  using namespace conv_looped;
  const int threads = plan_threads(C, static_cast<double>(pixels * C * batch));
  run_items(C, threads, [&](index_t c, int) {
    T s = T(0);
    for (index_t n = 0; n < batch; ++n) s += simd::sum(dy + pixels * (c + C * n), pixels);
    db[c] = s;
  });
}

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_activation_backward(looped_op mode, const F& f, index_t pixels, index_t C, index_t batch,
                              const T* dy, const T* arg, T* dz, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_activation_backward");
  using namespace conv_looped;
  if constexpr (activation_traits<F>::is_identity) {
    if (dz != dy) std::copy_n(dy, pixels * C * batch, dz);
    if (db) conv_bias_gradient(mode, pixels, C, batch, dy, db);
  } else {
    const int threads = plan_threads(C, static_cast<double>(pixels * C * batch) * 8);
    run_items(C, threads, [&](index_t c, int) {
      T s = T(0);
      for (index_t n = 0; n < batch; ++n) {
        const index_t off = pixels * (c + C * n);
        simd::transform(
            pixels, dz + off, [&f](auto d, auto a) { return d * f.derivative(a); }, dy + off,
            arg + off);
        if (db) s += simd::sum(dz + off, pixels);
      }
      if (db) db[c] = s;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_forward(looped_op, const conv_geometry& g, const T* x, const T* w, const T* b, const F& f,
                  T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_forward");
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_forward<Arch>(g, x, w, b, f, y, z);
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const bool pointwise = is_pointwise(g);
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  int threads = plan_threads(g.batch * cdiv(P, 16), flops);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads);
  const index_t items = g.batch * tp.tiles;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const row_taps rt(g);
  workspace<T> ws(threads, pointwise ? 0 : tp.tile * Kg);
  gemm_engines<T, false, false> gemm(threads, tp.tile, Og, Kg);
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / tp.tiles, t = item % tp.tiles;
    const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
    const T* xn = x + n * g.c_in * Pin;
    T* yn = y + n * g.c_out * P;
    T* col = ws.of(tid);
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = xn + grp * Cg * Pin;
      const T* a = xg + p0;
      index_t lda = Pin;
      if (!pointwise) {
        im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
        a = col;
        lda = m;
      }
      gemm[tid].assign(m, Og, Kg, a, lda, w + grp * Og * Kg, Kg, yn + grp * Og * P + p0, P);
    }
    epilogue(f, yn, z ? z + n * g.c_out * P : nullptr, b, g.c_out, P, p0, m);
  });
}

// ---------------------------------------------------------------------------------------------
// Backward: data and filter gradients
// ---------------------------------------------------------------------------------------------

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward_data(looped_op, const conv_geometry& g, const T* dy, const T* w, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward_data");
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_backward_data<Arch>(g, dy, w, dx);
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = Kp * Cg;
  const bool pointwise = is_pointwise(g);
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  // Items own disjoint channels of dx: (sample, group, chunk of the group's channels); chunks
  // only when there are fewer (sample, group) units than threads.
  const index_t units = g.batch * g.groups;
  if (units == 0) return;  // an empty batch: dx is empty too
  int threads = plan_threads(units * Cg, flops);
  index_t chunks = units >= threads ? 1 : std::min<index_t>(Cg, cdiv(threads, units));
  const index_t csize = cdiv(Cg, chunks);
  chunks = cdiv(Cg, csize);
  const index_t items = units * chunks;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const tile_plan tp = plan_tiles(P, csize * Kp, sizeof(T), items, threads);
  const row_taps rt(g);
  workspace<T> ws(threads, pointwise ? 0 : tp.tile * csize * Kp);
  gemm_engines<T, false, true> gemm(threads, tp.tile, csize * Kp, Og);
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / (g.groups * chunks), rem = item % (g.groups * chunks);
    const index_t grp = rem / chunks, c_lo = (rem % chunks) * csize;
    const index_t nc = std::min(Cg, c_lo + csize) - c_lo;
    T* dxg = dx + (n * g.c_in + grp * Cg + c_lo) * Pin;
    const T* dyg = dy + (n * g.c_out + grp * Og) * P;
    const T* wg = w + grp * Og * Kg + c_lo * Kp;  // rows [c_lo·Kp, (c_lo + nc)·Kp) of W_g
    if (!pointwise) std::fill_n(dxg, nc * Pin, T(0));
    T* dcol = ws.of(tid);
    for (index_t t = 0; t < tp.tiles; ++t) {
      const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
      if (pointwise) {  // dx is dCol
        gemm[tid].assign(m, nc, Og, dyg + p0, P, wg, Kg, dxg + p0, Pin);
      } else {
        gemm[tid].assign(m, nc * Kp, Og, dyg + p0, P, wg, Kg, dcol, m);
        im2col<true, Arch, T>(g, rt, dxg, nc, p0, p1, dcol);
      }
    }
  });
}

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward_filter(looped_op, const conv_geometry& g, const T* x, const T* dy, T* dw) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward_filter");
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_backward_filter<Arch>(g, x, dy, dw);
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const index_t nw = Kg * g.c_out;
  const bool pointwise = is_pointwise(g);
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  int threads = plan_threads(g.batch * cdiv(P, 16), flops);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads);
  const index_t items = g.batch * tp.tiles;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const index_t col_size = pointwise ? 0 : (tp.tile * Kg + 15) / 16 * 16;
  const bool partials = threads > 1;
  const row_taps rt(g);
  workspace<T> ws(threads, col_size + (partials ? nw : 0));
  gemm_engines<T, true, false> gemm(threads, Kg, Og, tp.tile);
  if (partials) {
    for (int t = 0; t < threads; ++t) std::fill_n(ws.of(t) + col_size, nw, T(0));
  } else {
    std::fill_n(dw, nw, T(0));
  }
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / tp.tiles, t = item % tp.tiles;
    const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
    T* col = ws.of(tid);
    T* acc = partials ? col + col_size : dw;
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c_in + grp * Cg) * Pin;
      const T* a = xg + p0;
      index_t lda = Pin;
      if (!pointwise) {
        im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
        a = col;
        lda = m;
      }
      gemm[tid].accumulate(Kg, Og, m, a, lda, dy + (n * g.c_out + grp * Og) * P + p0, P,
                           acc + grp * Og * Kg, Kg);
    }
  });
  if (partials) reduce_partials(ws.of(0) + col_size, ws.of(1) - ws.of(0), threads, nw, dw);
}

// ---------------------------------------------------------------------------------------------
// Fused backward and the transposed forward
// ---------------------------------------------------------------------------------------------

/// dz = dy·f'(arg), dx = ∇conv_data(dz, w), dw = ∇conv_filter(x, dz), db = Σ dz (db may be
/// nullptr). With at least as many samples as threads: one pass per tile (see the file comment).
template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward(looped_op mode, const conv_geometry& g, const F& f, const T* dy, const T* arg,
                   const T* x, const T* w, T* dx, T* dw, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward");
  using namespace conv_looped;
  constexpr bool is_identity = activation_traits<F>::is_identity;
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const double flops = 4.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  if (Cg == 1) return depthwise_backward<Arch>(g, f, dy, arg, x, w, dx, dw, db);
  int threads = plan_threads(g.batch, flops);
  const bool per_sample = threads == 1 || g.batch >= threads;
  if (!per_sample) {
    // Separate passes: dz (and db), then the data and filter gradients.
    Tensor<T, 1> dz_store;
    const T* dz = dy;
    if (!is_identity) {
      dz_store = Tensor<T, 1>::uninitialized(shape_t<1>{P * g.c_out * g.batch});
      conv_activation_backward(mode, f, P, g.c_out, g.batch, dy, arg, dz_store.data(), db);
      dz = dz_store.data();
    } else if (db) {
      conv_bias_gradient(mode, P, g.c_out, g.batch, dy, db);
    }
    conv_backward_data(mode, g, dz, w, dx);
    conv_backward_filter(mode, g, x, dz, dw);
    return;
  }

  const bool pointwise = is_pointwise(g);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads);
  const index_t nw = Kg * g.c_out;
  const bool partials = threads > 1;
  // Per thread: col | dcol | dz tile | dW partial | db partial.
  const auto round16 = [](index_t v) { return (v + 15) / 16 * 16; };
  const index_t col_size = pointwise ? 0 : round16(tp.tile * Kg);
  const index_t dz_size = is_identity ? 0 : round16(tp.tile * g.c_out);
  const index_t part_size = partials ? round16(nw) + round16(g.c_out) : 0;
  workspace<T> ws(threads, 2 * col_size + dz_size + part_size);
  gemm_engines<T, true, false> gemm_filter(threads, Kg, Og, tp.tile);
  gemm_engines<T, false, true> gemm_data(threads, tp.tile, Kg, Og);
  const auto dw_part = [&](int t) { return partials ? ws.of(t) + 2 * col_size + dz_size : dw; };
  const auto db_part = [&](int t) {
    return partials ? ws.of(t) + 2 * col_size + dz_size + round16(nw) : db;
  };
  for (int t = 0; t < (partials ? threads : 1); ++t) {
    std::fill_n(dw_part(t), nw, T(0));
    if (db) std::fill_n(db_part(t), g.c_out, T(0));
  }
  const row_taps rt(g);
  run_items(g.batch, threads, [&](index_t n, int tid) {
    T* col = ws.of(tid);
    T* dcol = col + col_size;
    T* dzb = col + 2 * col_size;
    T* dwp = dw_part(tid);
    T* dbp = db ? db_part(tid) : nullptr;
    const T* xn = x + n * g.c_in * Pin;
    const T* dyn = dy + n * g.c_out * P;
    T* dxn = dx + n * g.c_in * Pin;
    if (!pointwise) std::fill_n(dxn, g.c_in * Pin, T(0));
    for (index_t t = 0; t < tp.tiles; ++t) {
      const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
      // dz of this tile, for every channel.
      const T* dz = dyn + p0;
      index_t ldz = P;
      if constexpr (!is_identity) {
        const T* an = arg + n * g.c_out * P + p0;
        for (index_t c = 0; c < g.c_out; ++c)
          simd::transform(
              m, dzb + c * m, [&f](auto d, auto a) { return d * f.derivative(a); },
              dyn + p0 + c * P, an + c * P);
        dz = dzb;
        ldz = m;
      }
      if (dbp)
        for (index_t c = 0; c < g.c_out; ++c) dbp[c] += simd::sum(dz + c * ldz, m);
      for (index_t grp = 0; grp < g.groups; ++grp) {
        const T* xg = xn + grp * Cg * Pin;
        const T* a = xg + p0;
        index_t lda = Pin;
        if (!pointwise) {
          im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
          a = col;
          lda = m;
        }
        const T* dzg = dz + grp * Og * ldz;
        const T* wg = w + grp * Og * Kg;
        gemm_filter[tid].accumulate(Kg, Og, m, a, lda, dzg, ldz, dwp + grp * Og * Kg, Kg);
        if (pointwise) {
          gemm_data[tid].assign(m, Cg, Og, dzg, ldz, wg, Kg, dxn + grp * Cg * Pin + p0, Pin);
        } else {
          gemm_data[tid].assign(m, Kg, Og, dzg, ldz, wg, Kg, dcol, m);
          im2col<true, Arch, T>(g, rt, dxn + grp * Cg * Pin, Cg, p0, p1, dcol);
        }
      }
    }
  });
  if (partials) {
    const index_t stride = ws.of(1) - ws.of(0);
    reduce_partials(dw_part(0), stride, threads, nw, dw);
    if (db) reduce_partials(db_part(0), stride, threads, g.c_out, db);
  }
}

/// y = f(∇conv_data(x, w) .+ b) (conv_transpose; g as in the generic overload).
template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_transpose_forward(looped_op mode, const conv_geometry& g, const T* x, const T* w,
                            const T* b, const F& f, T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_transpose_forward");
  conv_backward_data(mode, g, x, w, y);
  if (b || z || !activation_traits<F>::is_identity)
    conv_bias_activation(mode, f, g.in_pixels(), g.c_in, g.batch, y, b, y, z);
}

}  // namespace impl
LUX_NAMESPACE_END
