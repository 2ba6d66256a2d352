// luxcpp — the normalization engine, looped mode (xsimd + OpenMP), float and double.
//
// Computes exactly what ../generic/normalization.hpp computes (read that file first: the
// (S, C, B) layout, the statistics groups, the formulas); only the loop structure differs.
//
// Memory traffic is what limits these kernels, so the loops are arranged to read x from memory
// once where the data allow it:
//
// * Fused path (enough statistics groups to keep every thread busy): one parallel loop over
//   groups; each thread computes a group's statistics and immediately writes its output (or,
//   backward, its reductions and then dx) while the group is still in its L1/L2 cache.
//   Groups are contiguous blocks for groupnorm/instancenorm/layernorm and B strided runs per
//   channel for batchnorm (a 56·56·32-float channel is 400 KB: it stays in a 1 MB L2).
// * Split path (fewer groups than that): the elements of each group are split among threads;
//   partial statistics (count, mean, M2) are merged with Chan et al.'s formula, then a second
//   parallel loop writes the output. x is read twice.
// * batchnorm on a (features, batch) matrix or with channels first (S = 1): channels are the SIMD
//   lanes; the batch is split among threads (per-lane shifted two-pass moments over L1-sized
//   blocks of rows, merged with Chan's formula).
// * groupnorm/instancenorm with the channels before Lux's N−1 (M > 1 runs per channel and
//   sample, e.g. channels first): each sample is a batchnorm-shaped slice run by the engine
//   above, its per-channel moments merged into groups; samples are split among threads when
//   there are enough of them. x is read twice (statistics, then output): measured 1.3-2.2x the
//   time of the default channel dimension on the same data (benchmarks/RESULTS.md).
//
// * Outputs of 8 MiB or more (LUX_NORM_STREAM_BYTES) are written with non-temporal stores,
//   which skip the read-for-ownership of every output line: 20-80% faster on the benchmark
//   shapes. Each thread fences once at the end of its piece (for_pieces), not per row.
//
// Statistics are stable: chunks of 16 KiB are summed in two passes (the second from L1) around
// the group's first element as shift, and chunk results merged with Chan's formula, so a group
// of any size is read from memory once and 1e4 + N(0, 1) inputs keep full float accuracy.
// Partial results are combined in a fixed order: results depend on the thread count, never on
// scheduling.
//
// Measured (benchmarks/bench_normalization.cpp, 2 threads, float, 25.7 MB / 16.8 MB tensors):
// forward 21-35 GB/s and backward 18-32 GB/s, 0.7-1.5x a 2-thread memcpy of the same bytes and
// 6-28x the generic mode. layernorm backward with scale/bias is the slowest (0.66-1.0x): the
// per-row read-modify-write of the dscale/dbias accumulators costs about 40% of its time.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "lux/core/activations.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/normalization.hpp"

// See lux/kernels/looped/activation.hpp: GCC 12 -Wmaybe-uninitialized false positive (PR 105593)
// in its AVX-512 intrinsics wherever xsimd's exp/tanh are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// Outputs of at least this many bytes are written with non-temporal (streaming) stores: they
/// skip the read-for-ownership of every output cache line (a third memory stream next to reading
/// x and writing y), and an output this large would not stay in cache for its consumer anyway.
#ifndef LUX_NORM_STREAM_BYTES
#define LUX_NORM_STREAM_BYTES (std::size_t{8} << 20)
#endif

LUX_NAMESPACE_BEGIN
namespace impl {
namespace norm_looped {

// --- type aliases -------------------------------------------------------------------------
template <class T, class Arch>
using batch = xsimd::batch<T, Arch>;
template <class T>
using buffer = std::vector<T>;

// --- static_asserts / concepts ---------------------------------------------------------------
template <class T>
concept simd_float = std::is_same_v<T, float> || std::is_same_v<T, double>;

// --- loads, stores and the per-element parameters of the row kernels --------------------------
// A row kernel body is a template on V: V = batch<T> in the main loop, V = T in the tail.
template <class V, class T>
V load(const T* p, index_t j) {
  if constexpr (std::is_same_v<V, T>)
    return p[j];
  else
    return V::load_unaligned(p + j);
}
template <class T, class V>
void store(T* p, index_t j, const V& v) {
  if constexpr (std::is_same_v<V, T>)
    p[j] = v;
  else
    v.store_unaligned(p + j);
}

/// Non-temporal store of a batch to a batch-aligned address (plain aligned store where the
/// instruction set has none).
template <class T, class Arch>
void stream_store(T* p, const xsimd::batch<T, Arch>& v) {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    if constexpr (std::is_same_v<T, float>)
      _mm512_stream_ps(p, v);
    else
      _mm512_stream_pd(p, v);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    if constexpr (std::is_same_v<T, float>)
      _mm256_stream_ps(p, v);
    else
      _mm256_stream_pd(p, v);
    return;
  }
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, Arch>) {
    if constexpr (std::is_same_v<T, float>)
      _mm_stream_ps(p, v);
    else
      _mm_stream_pd(p, v);
    return;
  }
#endif
  v.store_aligned(p);
}
/// Orders this thread's streaming stores before whatever it does next.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

/// One value for the whole row.
template <class T>
struct same {
  T v;
  template <class V>
  V at(index_t) const {
    return V(v);
  }
};
/// One value per element.
template <class T>
struct each {
  const T* p;
  template <class V>
  V at(index_t j) const {
    return load<V>(p, j);
  }
};
/// One value per element, times a constant (inv_std·γ_j).
template <class T>
struct each_scaled {
  const T* p;
  T s;
  template <class V>
  V at(index_t j) const {
    return load<V>(p, j) * V(s);
  }
};

/// body<V>(j) for j in [0, n): SIMD batches, then scalars for the tail.
template <class T, class Arch, class Body>
inline void for_each_lane(index_t n, Body&& body) {
  constexpr index_t W = batch<T, Arch>::size;
  index_t j = 0;
  for (; j + W <= n; j += W) body.template operator()<batch<T, Arch>>(j);
  for (; j < n; ++j) body.template operator()<T>(j);
}

/// out[j] = expr<V>(j) for j in [0, n); with `stream`, non-temporal stores from the first
/// batch-aligned element on (fenced once per thread, at the end of its piece: see for_pieces).
template <class T, class Arch, class Expr>
inline void write_lanes(index_t n, T* out, bool stream, Expr&& expr) {
  using V = batch<T, Arch>;
  constexpr index_t W = V::size;
  index_t j = 0;
  if (stream) {
    for (; j < n && reinterpret_cast<std::uintptr_t>(out + j) % sizeof(V) != 0; ++j)
      out[j] = expr.template operator()<T>(j);
    for (; j + W <= n; j += W) stream_store(out + j, expr.template operator()<V>(j));
  } else {
    for (; j + W <= n; j += W) expr.template operator()<V>(j).store_unaligned(out + j);
  }
  for (; j < n; ++j) out[j] = expr.template operator()<T>(j);
}

/// Σ_j body<V>(j) for a body returning std::array<V, K>, with two interleaved accumulators.
template <class T, class Arch, std::size_t K, class Body>
inline std::array<T, K> sum_lanes(index_t n, Body&& body) {
  using V = batch<T, Arch>;
  constexpr index_t W = V::size;
  std::array<V, K> acc0, acc1;
  acc0.fill(V(T(0)));
  acc1.fill(V(T(0)));
  index_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    const auto r0 = body.template operator()<V>(j);
    const auto r1 = body.template operator()<V>(j + W);
    for (std::size_t k = 0; k < K; ++k) {
      acc0[k] += r0[k];
      acc1[k] += r1[k];
    }
  }
  for (; j + W <= n; j += W) {
    const auto r = body.template operator()<V>(j);
    for (std::size_t k = 0; k < K; ++k) acc0[k] += r[k];
  }
  std::array<T, K> out;
  for (std::size_t k = 0; k < K; ++k) out[k] = simd::reduce_add(acc0[k] + acc1[k]);
  for (; j < n; ++j) {
    const auto r = body.template operator()<T>(j);
    for (std::size_t k = 0; k < K; ++k) out[k] += r[k];
  }
  return out;
}

// --- statistics -------------------------------------------------------------------------------
/// Count, mean and sum of squared deviations of some elements, in a frame shifted by a constant.
template <class T>
struct moments {
  index_t n = 0;
  T mean = T(0);
  T m2 = T(0);
};

/// a ← a ∪ b (Chan, Golub & LeVeque's pairwise update; both in the same shifted frame).
template <class T>
void merge(moments<T>& a, const moments<T>& b) {
  if (b.n == 0) return;
  if (a.n == 0) {
    a = b;
    return;
  }
  const index_t n = a.n + b.n;
  const T wb = static_cast<T>(b.n) / static_cast<T>(n);
  const T d = b.mean - a.mean;
  a.mean += d * wb;
  a.m2 += b.m2 + d * d * static_cast<T>(a.n) * wb;
  a.n = n;
}

/// Moments of x[0, n) − shift: two passes over L1-sized chunks, chunks merged.
template <class T, class Arch>
moments<T> range_moments(const T* x, index_t n, T shift) {
  constexpr index_t chunk = 16384 / sizeof(T);
  moments<T> acc;
  for (index_t lo = 0; lo < n; lo += chunk) {
    const index_t m = std::min(chunk, n - lo);
    const T* p = x + lo;
    const T sum = sum_lanes<T, Arch, 1>(
        m, [&]<class V>(index_t j) { return std::array<V, 1>{load<V>(p, j) - V(shift)}; })[0];
    const T mean = sum / static_cast<T>(m);
    const T m2 = sum_lanes<T, Arch, 1>(m, [&]<class V>(index_t j) {
      const V d = (load<V>(p, j) - V(shift)) - V(mean);
      return std::array<V, 1>{d * d};
    })[0];
    merge(acc, moments<T>{m, mean, m2});
  }
  return acc;
}

/// Mean, biased variance and inverse std of group k from its moments (shift added back).
template <class T>
void finish_statistics(const moments<T>& m, T shift, T epsilon, index_t k, T* mean, T* var,
                       T* inv_std) {
  using std::sqrt;
  const T v = m.m2 / static_cast<T>(m.n);
  mean[k] = shift + m.mean;
  var[k] = v;
  inv_std[k] = T(1) / sqrt(v + epsilon);
}

// --- row kernels --------------------------------------------------------------------------------
/// dz = dy·σ'(·) at element j; xc = x − μ, and z = xc·a + b is the pre-activation.
template <class V, class T, class F, class A, class Bv>
V dz_at(const F& f, const T* dy, const T* y, index_t j, const V& xc, const A& a, const Bv& b) {
  const V g = load<V>(dy, j);
  if constexpr (activation_traits<F>::is_identity) {
    return g;
  } else if constexpr (activation_traits<F>::uses_output) {
    return g * f.derivative(load<V>(y, j));
  } else {
    return g * f.derivative(xc * a.template at<V>(j) + b.template at<V>(j));
  }
}

/// y_j = σ((x_j − μ_j)·a_j + b_j).
template <class Arch, class T, class F, class Mu, class A, class Bv>
void apply_row(index_t n, const T* x, T* y, const Mu& mu, const A& a, const Bv& b, const F& f,
               bool stream) {
  write_lanes<T, Arch>(n, y, stream, [&]<class V>(index_t j) {
    return f((load<V>(x, j) - mu.template at<V>(j)) * a.template at<V>(j) + b.template at<V>(j));
  });
}

/// Returns {Σ dz·w, Σ dz·w·(x − μ)}; with LaneSums also acc1_j += dz, acc2_j += dz·(x − μ)·s.
template <bool LaneSums, class Arch, class T, class F, class Mu, class A, class Bv, class Wt>
std::array<T, 2> reduce_row(index_t n, const T* dy, const T* x, const T* y, const Mu& mu,
                            const A& a, const Bv& b, const Wt& w, const F& f, T* acc1 = nullptr,
                            T* acc2 = nullptr, T s = T(1)) {
  return sum_lanes<T, Arch, 2>(n, [&]<class V>(index_t j) {
    const V xc = load<V>(x, j) - mu.template at<V>(j);
    const V dz = dz_at<V>(f, dy, y, j, xc, a, b);
    if constexpr (LaneSums) {
      store(acc1, j, load<V>(acc1, j) + dz);
      store(acc2, j, load<V>(acc2, j) + dz * xc * V(s));
    }
    const V dzw = dz * w.template at<V>(j);
    return std::array<V, 2>{dzw, dzw * xc};
  });
}

/// dx_j = dz_j·a_j + (x_j − μ_j)·kx_j + k0_j, where a_j = inv·γ_j (also the pre-activation's
/// scale), kx = −inv³·mean(dz·γ·(x − μ)), k0 = −inv·mean(dz·γ) (both 0 for given statistics).
template <class Arch, class T, class F, class Mu, class A, class Bv, class Kx, class K0>
void dx_row(index_t n, const T* dy, const T* x, const T* y, T* dx, const Mu& mu, const A& a,
            const Bv& b, const Kx& kx, const K0& k0, const F& f, bool stream) {
  write_lanes<T, Arch>(n, dx, stream, [&]<class V>(index_t j) {
    const V xc = load<V>(x, j) - mu.template at<V>(j);
    const V dz = dz_at<V>(f, dy, y, j, xc, a, b);
    return V(dz * a.template at<V>(j) + xc * kx.template at<V>(j) + k0.template at<V>(j));
  });
}

/// Calls fn(a, b, w) with the per-element scale inv·γ_j (or inv), bias β_j (or 0) and reduction
/// weight γ_j (or 1) for a row whose scale/bias start at g / be (either may be null).
template <class T, class Fn>
void with_lane_affine(const T* g, const T* be, T inv, Fn&& fn) {
  if (g && be)
    fn(each_scaled<T>{g, inv}, each<T>{be}, each<T>{g});
  else if (g)
    fn(each_scaled<T>{g, inv}, same<T>{T(0)}, each<T>{g});
  else if (be)
    fn(same<T>{inv}, each<T>{be}, same<T>{T(1)});
  else
    fn(same<T>{inv}, same<T>{T(0)}, same<T>{T(1)});
}

/// Dense backward coefficients of one group: kx = −inv³·Σ(dz·γ·xc)/n, k0 = −inv·Σ(dz·γ)/n.
template <class T>
std::array<T, 2> dx_coefficients(const std::array<T, 2>& sums, T inv, index_t n,
                                 bool batch_statistics) {
  if (!batch_statistics) return {T(0), T(0)};
  const T rn = T(1) / static_cast<T>(n);
  return {-inv * inv * inv * sums[1] * rn, -inv * sums[0] * rn};
}

/// Calls fn(p, lo, hi) for P contiguous pieces of [0, n), in parallel when `work` is large.
/// Each piece ends with a store fence, so its streaming stores are complete (and ordered before
/// the region's end) without fencing every row.
template <class Fn>
void for_pieces(index_t n, index_t P, index_t work, Fn&& fn) {
  parallel_for(
      P,
      [&](index_t p) {
        fn(p, n * p / P, n * (p + 1) / P);
        stream_fence();
      },
      work);
}

/// fn(i) for i in [0, n): one contiguous piece per thread (OpenMP's static schedule).
template <class Fn>
void for_each_parallel(index_t n, index_t work, Fn&& fn) {
  const index_t P = std::max<index_t>(1, std::min<index_t>(max_threads(), n));
  for_pieces(n, P, work, [&](index_t, index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) fn(i);
  });
}

/// Per-thread accumulators that are written on every row, on cache lines of their own: sharing
/// a line with another thread's accumulators would bounce it between the cores on every row
/// (measured: batchnorm's statistics of a (64, 100352) matrix took 2.7x longer on 2 threads
/// than on 1 when the two threads' accumulators were adjacent in one buffer).
template <class T>
struct thread_scratch {
  static constexpr std::size_t line = 64 / sizeof(T);
  buffer<T> v;
  T* p;
  explicit thread_scratch(index_t n) : v(static_cast<std::size_t>(n) + 2 * line, T(0)) {
    const auto a = reinterpret_cast<std::uintptr_t>(v.data()) / sizeof(T);
    p = v.data() + (line - a % line) % line;
  }
};

/// Whether the outputs of a kernel on L are written with non-temporal stores: L as a whole, also
/// where the work is split into slices (samples) that are small on their own.
template <class T>
bool streams_for(const norm_layout& L) {
  return static_cast<std::size_t>(L.numel()) * sizeof(T) >= LUX_NORM_STREAM_BYTES;
}

/// Whether one parallel loop over `groups` statistics groups balances the threads.
inline bool fused_is_balanced(index_t groups) { return groups >= 4 * max_threads(); }

// =================================================================================================
// Groups that are contiguous blocks: groupnorm, instancenorm, layernorm (not across_batch).
// Block k = elements [k·n, (k+1)·n), n = S·group_channels; within a block, channel runs of S.
// =================================================================================================
template <class T, class F, class Arch>
struct block_engine {
  const norm_layout& L;
  const T* x;
  norm_affine<T> aff;
  const F& f;
  index_t n = L.group_size();
  index_t G = L.groups_per_sample();
  bool lanes = L.S == 1;  // scale/bias change every element: vectorize across them
  bool stream = static_cast<std::size_t>(L.numel()) * sizeof(T) >= LUX_NORM_STREAM_BYTES;

  T shift(index_t k) const { return x[k * n]; }
  moments<T> block_moments(index_t k, index_t lo, index_t hi) const {
    return range_moments<T, Arch>(x + k * n + lo, hi - lo, shift(k));
  }
  /// fn(c, b, lo, hi) for each channel run of block k's range [lo, hi) (S > 1).
  template <class Fn>
  void runs(index_t k, index_t lo, index_t hi, Fn&& fn) const {
    const index_t c0 = (k % G) * L.group_channels, b = k / G;
    while (lo < hi) {
      const index_t cl = lo / L.S, e = std::min(hi, (cl + 1) * L.S);
      fn(c0 + cl, b, lo, e);
      lo = e;
    }
  }
  /// The scale/bias index of block k's first element (lanes: element o uses index a0 + o).
  index_t affine_base(index_t k) const { return L.affine_index((k % G) * L.group_channels, k / G); }
  const T* scale_at(index_t a) const { return aff.scale ? aff.scale + a : nullptr; }
  const T* bias_at(index_t a) const { return aff.bias ? aff.bias + a : nullptr; }
  T gamma(index_t a) const { return aff.scale ? aff.scale[a] : T(1); }
  T beta(index_t a) const { return aff.bias ? aff.bias[a] : T(0); }

  void apply(index_t k, index_t lo, index_t hi, T mu, T inv, T* y) const {
    const T* xb = x + k * n;
    T* yb = y + k * n;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto) {
        apply_row<Arch>(hi - lo, xb + lo, yb + lo, same<T>{mu}, a, b, f, stream);
      });
    } else {
      runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
        const index_t a = L.affine_index(c, b);
        apply_row<Arch>(e - s, xb + s, yb + s, same<T>{mu}, same<T>{inv * gamma(a)},
                        same<T>{beta(a)}, f, stream);
      });
    }
  }

  /// Pass 1 of backward over block k's range [lo, hi): returns {Σ dz·γ, Σ dz·γ·(x − μ)}.
  /// Per-(channel, sample) sums go to run_db/run_dg[c + C·b] (S > 1), per-element ones to
  /// lane_db/lane_dg[affine index] (S = 1); both accumulate (+=) and may be null.
  std::array<T, 2> reduce(index_t k, index_t lo, index_t hi, T mu, T inv, const T* dy, const T* y,
                          T* run_db, T* run_dg, T* lane_db, T* lane_dg) const {
    const index_t o = k * n;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      std::array<T, 2> r{};
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto w) {
        const index_t m = hi - lo, i = o + lo;
        if (lane_db)
          r = reduce_row<true, Arch>(m, dy + i, x + i, y ? y + i : y, same<T>{mu}, a, b, w, f,
                                     lane_db + a0, lane_dg + a0, inv);
        else
          r = reduce_row<false, Arch>(m, dy + i, x + i, y ? y + i : y, same<T>{mu}, a, b, w, f);
      });
      return r;
    }
    std::array<T, 2> total{};
    runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
      const index_t a = L.affine_index(c, b), i = o + s;
      const T g = gamma(a);
      const auto r = reduce_row<false, Arch>(e - s, dy + i, x + i, y ? y + i : y, same<T>{mu},
                                             same<T>{inv * g}, same<T>{beta(a)}, same<T>{T(1)}, f);
      total[0] += g * r[0];
      total[1] += g * r[1];
      if (run_db) {
        run_db[c + L.C * b] += r[0];
        run_dg[c + L.C * b] += r[1] * inv;
      }
    });
    return total;
  }

  /// Pass 2 of backward over block k's range [lo, hi).
  void dx(index_t k, index_t lo, index_t hi, T mu, T inv, std::array<T, 2> kc, const T* dy,
          const T* y, T* dxo) const {
    const index_t o = k * n;
    const T* yy = y ? y + o : y;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto) {
        dx_row<Arch>(hi - lo, dy + o + lo, x + o + lo, yy ? yy + lo : yy, dxo + o + lo, same<T>{mu},
                     a, b, same<T>{kc[0]}, same<T>{kc[1]}, f, stream);
      });
      return;
    }
    runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
      const index_t a = L.affine_index(c, b);
      dx_row<Arch>(e - s, dy + o + s, x + o + s, yy ? yy + s : yy, dxo + o + s, same<T>{mu},
                   same<T>{inv * gamma(a)}, same<T>{beta(a)}, same<T>{kc[0]}, same<T>{kc[1]}, f,
                   stream);
    });
  }
};

template <class Arch, class T, class F>
void blocks_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                    T epsilon, T* mean, T* var, T* inv_std) {
  const block_engine<T, F, Arch> e{L, x, aff, f};
  const index_t K = L.num_groups(), work = L.numel();
  if (fused_is_balanced(K)) {
    for_each_parallel(K, work, [&](index_t k) {
      finish_statistics(e.block_moments(k, 0, e.n), e.shift(k), epsilon, k, mean, var, inv_std);
      e.apply(k, 0, e.n, mean[k], inv_std[k], y);
    });
    return;
  }
  // Few large groups: every thread takes the same slice [lo, hi) of every block.
  const index_t P = std::max<index_t>(1, std::min<index_t>(max_threads(), e.n / 1024));
  buffer<moments<T>> part(static_cast<std::size_t>(P * K));
  for_pieces(e.n, P, work, [&](index_t p, index_t lo, index_t hi) {
    for (index_t k = 0; k < K; ++k) part[p * K + k] = e.block_moments(k, lo, hi);
  });
  for (index_t k = 0; k < K; ++k) {
    moments<T> m;
    for (index_t p = 0; p < P; ++p) merge(m, part[p * K + k]);
    finish_statistics(m, e.shift(k), epsilon, k, mean, var, inv_std);
  }
  for_pieces(e.n, P, work, [&](index_t, index_t lo, index_t hi) {
    for (index_t k = 0; k < K; ++k) e.apply(k, lo, hi, mean[k], inv_std[k], y);
  });
}

template <class Arch, class T, class F>
void blocks_backward(const norm_layout& L, const T* dy, const T* x, const T* y, norm_affine<T> aff,
                     const F& f, const T* mean, const T* inv_std, bool batch_statistics, T* dx,
                     bool affine_grads, T* dscale, T* dbias) {
  const block_engine<T, F, Arch> e{L, x, aff, f};
  const index_t K = L.num_groups(), CB = L.C * L.B, work = L.numel(), A = L.affine_size();
  // Lane sums may go straight into dscale/dbias when no two threads touch one element: a
  // full-shape scale, or the split path below (threads own disjoint slices of every block).
  const bool fused = fused_is_balanced(K);
  const bool lane_direct = L.affine_sample_stride != 0 || !fused;
  const index_t P = fused ? std::max<index_t>(1, std::min<index_t>(max_threads(), K))
                          : std::max<index_t>(1, std::min<index_t>(max_threads(), e.n / 1024));
  const bool run_sums = affine_grads && !e.lanes;
  const bool lane_sums = affine_grads && e.lanes;
  buffer<T> run_db(run_sums ? static_cast<std::size_t>((fused ? 1 : P) * CB) : 0, T(0));
  buffer<T> run_dg(run_db.size(), T(0));
  // Per-thread lane sums, each thread's row on cache lines of its own (see thread_scratch).
  const index_t As = (A + index_t(thread_scratch<T>::line) - 1) / index_t(thread_scratch<T>::line) *
                     index_t(thread_scratch<T>::line);
  const index_t lane_rows = lane_sums && !lane_direct ? P : 0;
  const thread_scratch<T> lane_db(lane_rows * As), lane_dg(lane_rows * As);
  if (lane_sums && lane_direct) {
    std::fill_n(dscale, A, T(0));
    std::fill_n(dbias, A, T(0));
  }
  auto run_ws = [&](buffer<T>& v, index_t p) -> T* {
    return run_sums ? v.data() + (fused ? 0 : p * CB) : nullptr;
  };
  auto lane_ws = [&](const thread_scratch<T>& v, T* direct, index_t p) -> T* {
    if (!lane_sums) return nullptr;
    return lane_direct ? direct : v.p + p * As;
  };

  if (fused) {
    for_pieces(K, P, work, [&](index_t p, index_t k0, index_t k1) {
      T* ldb = lane_ws(lane_db, dbias, p);
      T* ldg = lane_ws(lane_dg, dscale, p);
      for (index_t k = k0; k < k1; ++k) {
        const auto sums = e.reduce(k, 0, e.n, mean[k], inv_std[k], dy, y, run_ws(run_db, p),
                                   run_ws(run_dg, p), ldb, ldg);
        const auto kc = dx_coefficients(sums, inv_std[k], e.n, batch_statistics);
        e.dx(k, 0, e.n, mean[k], inv_std[k], kc, dy, y, dx);
      }
    });
  } else {
    buffer<std::array<T, 2>> part(static_cast<std::size_t>(P * K));
    for_pieces(e.n, P, work, [&](index_t p, index_t lo, index_t hi) {
      for (index_t k = 0; k < K; ++k)
        part[p * K + k] =
            e.reduce(k, lo, hi, mean[k], inv_std[k], dy, y, run_ws(run_db, p), run_ws(run_dg, p),
                     lane_ws(lane_db, dbias, p), lane_ws(lane_dg, dscale, p));
    });
    buffer<std::array<T, 2>> kc(static_cast<std::size_t>(K));
    for (index_t k = 0; k < K; ++k) {
      std::array<T, 2> s{};
      for (index_t p = 0; p < P; ++p) s[0] += part[p * K + k][0], s[1] += part[p * K + k][1];
      kc[k] = dx_coefficients(s, inv_std[k], e.n, batch_statistics);
    }
    for_pieces(e.n, P, work, [&](index_t, index_t lo, index_t hi) {
      for (index_t k = 0; k < K; ++k) e.dx(k, lo, hi, mean[k], inv_std[k], kc[k], dy, y, dx);
    });
  }

  // Scale/bias gradients from the per-run or per-thread partial sums (fixed order).
  if (run_sums) {
    std::fill_n(dscale, A, T(0));
    std::fill_n(dbias, A, T(0));
    const index_t parts = static_cast<index_t>(run_db.size()) / CB;
    for (index_t p = 0; p < parts; ++p)
      for (index_t b = 0; b < L.B; ++b)
        for (index_t c = 0; c < L.C; ++c) {
          const index_t a = L.affine_index(c, b), r = p * CB + c + L.C * b;
          dbias[a] += run_db[r];
          dscale[a] += run_dg[r];
        }
  } else if (lane_sums && !lane_direct) {
    for (index_t a = 0; a < A; ++a) {
      T db = T(0), dg = T(0);
      for (index_t p = 0; p < P; ++p) db += lane_db.p[p * As + a], dg += lane_dg.p[p * As + a];
      dbias[a] = db;
      dscale[a] = dg;
    }
  }
}

// =================================================================================================
// One group per channel over all samples: batchnorm (across_batch). Channel c of sample b is
// the run [(c + C·b)·S, (c + C·b + 1)·S).
// =================================================================================================
template <class T, class F, class Arch>
struct channel_engine {
  const norm_layout& L;
  const T* x;
  const F& f;
  const T* mean;
  const T* scale;  // inv_std_c·γ_c per channel
  const T* shift;  // β_c per channel
  bool stream = static_cast<std::size_t>(L.numel()) * sizeof(T) >= LUX_NORM_STREAM_BYTES;

  const T* run(const T* p, index_t c, index_t b) const { return p + (c + L.C * b) * L.S; }
  T* run(T* p, index_t c, index_t b) const { return p + (c + L.C * b) * L.S; }

  // S > 1: one channel, samples [b0, b1).
  moments<T> channel_moments(index_t c, index_t b0, index_t b1) const {
    moments<T> m;
    for (index_t b = b0; b < b1; ++b)
      merge(m, range_moments<T, Arch>(run(x, c, b), L.S, x[c * L.S]));
    return m;
  }
  void channel_apply(index_t c, index_t b0, index_t b1, T* y) const {
    for (index_t b = b0; b < b1; ++b)
      apply_row<Arch>(L.S, run(x, c, b), run(y, c, b), same<T>{mean[c]}, same<T>{scale[c]},
                      same<T>{shift[c]}, f, stream);
  }
  std::array<T, 2> channel_reduce(index_t c, index_t b0, index_t b1, const T* dy,
                                  const T* y) const {
    std::array<T, 2> s{};
    for (index_t b = b0; b < b1; ++b) {
      const auto r = reduce_row<false, Arch>(L.S, run(dy, c, b), run(x, c, b), y ? run(y, c, b) : y,
                                             same<T>{mean[c]}, same<T>{scale[c]}, same<T>{shift[c]},
                                             same<T>{T(1)}, f);
      s[0] += r[0];
      s[1] += r[1];
    }
    return s;
  }
  void channel_dx(index_t c, index_t b0, index_t b1, std::array<T, 2> kc, const T* dy, const T* y,
                  T* dx) const {
    for (index_t b = b0; b < b1; ++b)
      dx_row<Arch>(L.S, run(dy, c, b), run(x, c, b), y ? run(y, c, b) : y, run(dx, c, b),
                   same<T>{mean[c]}, same<T>{scale[c]}, same<T>{shift[c]}, same<T>{kc[0]},
                   same<T>{kc[1]}, f, stream);
  }

  // S = 1: channels are the lanes; samples [b0, b1). Welford per lane in a frame shifted by
  // `shift`: the rounding error of a running mean scales with its magnitude, so the shift is
  // each channel's mean over the first (up to) 16 samples, which leaves |μ − shift| ≈ σ/4
  // rather than the ≈ σ that shifting by one sample would.
  void lane_shift(T* shift) const {
    const index_t m = std::min<index_t>(L.B, 16);
    std::fill_n(shift, L.C, T(0));
    for (index_t b = 0; b < m; ++b)
      for_each_lane<T, Arch>(L.C, [&]<class V>(index_t j) {
        store(shift, j, load<V>(shift, j) + load<V>(x + L.C * b, j));
      });
    for (index_t c = 0; c < L.C; ++c) shift[c] /= static_cast<T>(m);
  }
  // Samples [b0, b1) in blocks of R rows (R·C elements ≤ 16 KiB, so the second pass reads them
  // from L1): per lane the block's mean of x − shift (rows summed four at a time, which keeps
  // the accumulators' dependency chains short), then its sum of squared deviations around that
  // mean, merged into the running (mean, M2) with Chan's formula. A per-element Welford update
  // ran at a third of this speed: its chain through the running mean is long.
  void lane_moments(index_t b0, index_t b1, const T* shift, T* lmean, T* lm2) const {
    const index_t C = L.C;
    const index_t R = std::max<index_t>(4, static_cast<index_t>(16384 / sizeof(T)) / C);
    std::fill_n(lmean, C, T(0));
    std::fill_n(lm2, C, T(0));
    const thread_scratch<T> scratch(2 * C);
    T *bs = scratch.p, *bq = scratch.p + C;
    index_t n = 0;
    for (index_t lo = b0; lo < b1; lo += R) {
      const index_t hi = std::min(b1, lo + R), m = hi - lo;
      const T* r0 = x + C * lo;
      std::fill_n(bs, C, T(0));
      std::fill_n(bq, C, T(0));
      // pass 1: bs = Σ (x − shift) / m
      index_t r = 0;
      for (; r + 4 <= m; r += 4) {
        const T* p = r0 + C * r;
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V s = load<V>(shift, j);
          const V a = (load<V>(p, j) - s) + (load<V>(p + C, j) - s);
          const V b = (load<V>(p + 2 * C, j) - s) + (load<V>(p + 3 * C, j) - s);
          store(bs, j, load<V>(bs, j) + (a + b));
        });
      }
      for (; r < m; ++r)
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          store(bs, j, load<V>(bs, j) + (load<V>(r0 + C * r, j) - load<V>(shift, j)));
        });
      const T rm = T(1) / static_cast<T>(m);
      for_each_lane<T, Arch>(C, [&]<class V>(index_t j) { store(bs, j, load<V>(bs, j) * V(rm)); });
      // pass 2: bq = Σ (x − shift − block mean)²
      r = 0;
      for (; r + 4 <= m; r += 4) {
        const T* p = r0 + C * r;
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V s = load<V>(shift, j) + load<V>(bs, j);
          const V d0 = load<V>(p, j) - s, d1 = load<V>(p + C, j) - s;
          const V d2 = load<V>(p + 2 * C, j) - s, d3 = load<V>(p + 3 * C, j) - s;
          store(bq, j, load<V>(bq, j) + ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)));
        });
      }
      for (; r < m; ++r)
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V d = load<V>(r0 + C * r, j) - (load<V>(shift, j) + load<V>(bs, j));
          store(bq, j, load<V>(bq, j) + d * d);
        });
      // merge (count n, mean, M2) ∪ (m, bs, bq)
      const T wb = static_cast<T>(m) / static_cast<T>(n + m);
      const T wab = static_cast<T>(n) * wb;
      for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
        const V ma = load<V>(lmean, j), d = load<V>(bs, j) - ma;
        store(lmean, j, ma + d * V(wb));
        store(lm2, j, load<V>(lm2, j) + load<V>(bq, j) + d * d * V(wab));
      });
      n += m;
    }
  }
  void lane_apply(index_t b0, index_t b1, T* y) const {
    for (index_t b = b0; b < b1; ++b)
      apply_row<Arch>(L.C, x + L.C * b, y + L.C * b, each<T>{mean}, each<T>{scale}, each<T>{shift},
                      f, stream);
  }
  void lane_reduce(index_t b0, index_t b1, const T* dy, const T* y, T* s1, T* s2) const {
    std::fill_n(s1, L.C, T(0));
    std::fill_n(s2, L.C, T(0));
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = L.C * b;
      reduce_row<true, Arch>(L.C, dy + o, x + o, y ? y + o : y, each<T>{mean}, each<T>{scale},
                             each<T>{shift}, same<T>{T(1)}, f, s1, s2);
    }
  }
  void lane_dx(index_t b0, index_t b1, const T* kx, const T* k0, const T* dy, const T* y,
               T* dx) const {
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = L.C * b;
      dx_row<Arch>(L.C, dy + o, x + o, y ? y + o : y, dx + o, each<T>{mean}, each<T>{scale},
                   each<T>{shift}, each<T>{kx}, each<T>{k0}, f, stream);
    }
  }
};

/// Per-channel inv_std·γ and β (the row kernels' a and b).
template <class T>
void channel_affine(index_t C, norm_affine<T> aff, const T* inv_std, buffer<T>& scale,
                    buffer<T>& shift) {
  scale.resize(static_cast<std::size_t>(C));
  shift.resize(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) {
    scale[c] = inv_std[c] * (aff.scale ? aff.scale[c] : T(1));
    shift[c] = aff.bias ? aff.bias[c] : T(0);
  }
}

/// Pieces of the batch for the split paths.
inline index_t sample_pieces(index_t B) {
  return std::max<index_t>(1, std::min<index_t>(max_threads(), B));
}

template <class Arch, class T, class F>
void channels_apply(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                    const T* mean, const T* inv_std, bool stream) {
  buffer<T> scale, shift;
  channel_affine(L.C, aff, inv_std, scale, shift);
  const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data(), stream};
  if (L.S > 1 && fused_is_balanced(L.C)) {
    for_each_parallel(L.C, L.numel(), [&](index_t c) { e.channel_apply(c, 0, L.B, y); });
    return;
  }
  for_pieces(L.B, sample_pieces(L.B), L.numel(), [&](index_t, index_t b0, index_t b1) {
    if (L.S == 1)
      e.lane_apply(b0, b1, y);
    else
      for (index_t c = 0; c < L.C; ++c) e.channel_apply(c, b0, b1, y);
  });
}

/// Per-channel mean and biased variance over (S, B) (no output): the split path's statistics.
template <class Arch, class T>
void channels_statistics(const norm_layout& L, const T* x, T* mean, T* var) {
  const index_t C = L.C;
  const index_t P = sample_pieces(L.B);
  buffer<moments<T>> part(static_cast<std::size_t>(P * C));
  buffer<T> shift(L.S == 1 ? static_cast<std::size_t>(C) : 0);
  const identity none_f{};
  const channel_engine<T, identity, Arch> stats{L, x, none_f, nullptr, nullptr, nullptr};
  if (L.S == 1) stats.lane_shift(shift.data());
  for_pieces(L.B, P, L.numel(), [&](index_t p, index_t b0, index_t b1) {
    if (L.S == 1) {
      const thread_scratch<T> scratch(2 * C);
      T* lm = scratch.p;
      stats.lane_moments(b0, b1, shift.data(), lm, lm + C);
      for (index_t c = 0; c < C; ++c) part[p * C + c] = moments<T>{b1 - b0, lm[c], lm[C + c]};
    } else {
      for (index_t c = 0; c < C; ++c) part[p * C + c] = stats.channel_moments(c, b0, b1);
    }
  });
  for (index_t c = 0; c < C; ++c) {
    moments<T> m;
    for (index_t p = 0; p < P; ++p) merge(m, part[p * C + c]);
    mean[c] = (L.S == 1 ? shift[c] : x[c * L.S]) + m.mean;
    var[c] = m.m2 / static_cast<T>(m.n);
  }
}

template <class Arch, class T, class F>
void channels_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                      T epsilon, T* mean, T* var, T* inv_std) {
  using std::sqrt;
  const index_t C = L.C;
  if (L.S > 1 && fused_is_balanced(C)) {
    // Statistics of channel c, then its output while its B runs are still in cache.
    buffer<T> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
    const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data()};
    for_each_parallel(C, L.numel(), [&](index_t c) {
      finish_statistics(e.channel_moments(c, 0, L.B), x[c * L.S], epsilon, c, mean, var, inv_std);
      scale[c] = inv_std[c] * (aff.scale ? aff.scale[c] : T(1));
      shift[c] = aff.bias ? aff.bias[c] : T(0);
      e.channel_apply(c, 0, L.B, y);
    });
    return;
  }
  channels_statistics<Arch>(L, x, mean, var);
  for (index_t c = 0; c < C; ++c) inv_std[c] = T(1) / sqrt(var[c] + epsilon);
  channels_apply<Arch>(L, x, y, aff, f, mean, inv_std, streams_for<T>(L));
}

/// Per-channel s0_c = Σ dz and s1_c = Σ dz·(x − μ_c) over (S, B), the split path's reductions.
template <class Arch, class T, class F>
void channels_sums(const channel_engine<T, F, Arch>& e, const T* dy, const T* y, T* s0, T* s1) {
  const norm_layout& L = e.L;
  const index_t C = L.C, P = sample_pieces(L.B);
  buffer<T> part(static_cast<std::size_t>(2 * P * C));
  for_pieces(L.B, P, L.numel(), [&](index_t p, index_t b0, index_t b1) {
    T* s = part.data() + 2 * p * C;
    if (L.S == 1) {
      const thread_scratch<T> scratch(2 * C);
      e.lane_reduce(b0, b1, dy, y, scratch.p, scratch.p + C);
      std::copy_n(scratch.p, 2 * C, s);
    } else {
      for (index_t c = 0; c < C; ++c) {
        const auto r = e.channel_reduce(c, b0, b1, dy, y);
        s[c] = r[0];
        s[C + c] = r[1];
      }
    }
  });
  for (index_t c = 0; c < C; ++c) {
    T a = T(0), b = T(0);
    for (index_t p = 0; p < P; ++p) a += part[2 * p * C + c], b += part[2 * p * C + C + c];
    s0[c] = a;
    s1[c] = b;
  }
}

/// dx = dz·inv_c·γ_c + (x − μ_c)·kx_c + k0_c over (S, B), split over samples.
template <class Arch, class T, class F>
void channels_dx(const channel_engine<T, F, Arch>& e, const T* kx, const T* k0, const T* dy,
                 const T* y, T* dx) {
  const norm_layout& L = e.L;
  for_pieces(L.B, sample_pieces(L.B), L.numel(), [&](index_t, index_t b0, index_t b1) {
    if (L.S == 1) {
      e.lane_dx(b0, b1, kx, k0, dy, y, dx);
    } else {
      for (index_t c = 0; c < L.C; ++c) e.channel_dx(c, b0, b1, {kx[c], k0[c]}, dy, y, dx);
    }
  });
}

template <class Arch, class T, class F>
void channels_backward(const norm_layout& L, const T* dy, const T* x, const T* y,
                       norm_affine<T> aff, const F& f, const T* mean, const T* inv_std,
                       bool batch_statistics, T* dx, bool affine_grads, T* dscale, T* dbias) {
  const index_t C = L.C, n = L.group_size();
  buffer<T> scale, shift;
  channel_affine(C, aff, inv_std, scale, shift);
  const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data()};
  auto finish = [&](index_t c, std::array<T, 2> s) {  // s = {Σ dz, Σ dz·(x − μ)}
    if (affine_grads) {
      dbias[c] = s[0];
      dscale[c] = s[1] * inv_std[c];
    }
    const T g = aff.scale ? aff.scale[c] : T(1);
    return dx_coefficients<T>({g * s[0], g * s[1]}, inv_std[c], n, batch_statistics);
  };
  if (L.S > 1 && fused_is_balanced(C)) {
    for_each_parallel(C, L.numel(), [&](index_t c) {
      e.channel_dx(c, 0, L.B, finish(c, e.channel_reduce(c, 0, L.B, dy, y)), dy, y, dx);
    });
    return;
  }
  buffer<T> s0(static_cast<std::size_t>(C)), s1(static_cast<std::size_t>(C));
  channels_sums(e, dy, y, s0.data(), s1.data());
  buffer<T> kx(static_cast<std::size_t>(C)), k0(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) {
    const auto kc = finish(c, {s0[c], s1[c]});
    kx[c] = kc[0];
    k0[c] = kc[1];
  }
  channels_dx(e, kx.data(), k0.data(), dy, y, dx);
}

// =================================================================================================
// Groups spread over M > 1 runs per sample: groupnorm and instancenorm with the channel dimension
// before Lux's N−1 (channels first: channels-last memory). Sample b's slice is an across-batch
// (S, C, M) layout, so each sample runs the channel engine above — per-channel statistics, then
// merged into groups of group_channels channels — and the samples are split among threads when
// there are enough of them (otherwise each sample's channel engine uses the threads).
// =================================================================================================

/// Sample b's slice of L as the channel engine sees it: (S, C, B = M), one group per channel.
inline norm_layout sample_slice(const norm_layout& L) {
  norm_layout s;
  s.S = L.S;
  s.C = L.C;
  s.B = L.M;
  s.across_batch = true;
  return s;
}

/// fn(b, scratch) for every sample: the samples split among threads (each piece with its own
/// scratch of `scratch_size` elements) when they balance them, else one after the other.
template <class T, class Fn>
void for_samples(const norm_layout& L, std::size_t scratch_size, Fn&& fn) {
  const index_t P = fused_is_balanced(L.B) ? std::min<index_t>(max_threads(), L.B) : 1;
  for_pieces(L.B, P, P > 1 ? L.numel() : 0, [&](index_t, index_t b0, index_t b1) {
    buffer<T> scratch(scratch_size);
    for (index_t b = b0; b < b1; ++b) fn(b, scratch.data());
  });
}

/// The group statistics of sample b expanded to its channels (cm, ci: C each).
template <class T>
void expand_to_channels(const norm_layout& L, index_t b, const T* mean, const T* inv_std, T* cm,
                        T* ci) {
  for (index_t c = 0; c < L.C; ++c) {
    const index_t k = L.group_of(c, b);
    cm[c] = mean[k];
    ci[c] = inv_std[k];
  }
}

template <class Arch, class T, class F>
void samples_apply(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                   const T* mean, const T* inv_std) {
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C;
  for_samples<T>(L, static_cast<std::size_t>(2 * C), [&](index_t b, T* scratch) {
    expand_to_channels(L, b, mean, inv_std, scratch, scratch + C);
    channels_apply<Arch>(Ls, x + b * per, y + b * per, aff, f, scratch, scratch + C,
                         streams_for<T>(L));
  });
}

template <class Arch, class T, class F>
void samples_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                     T epsilon, T* mean, T* var, T* inv_std) {
  using std::sqrt;
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C, D = L.group_channels, G = L.groups_per_sample();
  for_samples<T>(L, static_cast<std::size_t>(2 * C), [&](index_t b, T* scratch) {
    T *cm = scratch, *cv = scratch + C;
    channels_statistics<Arch>(Ls, x + b * per, cm, cv);
    // Group g's mean and variance from its D channels' (equal counts): the mean of the means,
    // and the mean of the variances plus the variance of the means.
    for (index_t g = 0; g < G; ++g) {
      T mu = T(0), v = T(0);
      for (index_t c = g * D; c < (g + 1) * D; ++c) mu += cm[c];
      mu /= static_cast<T>(D);
      for (index_t c = g * D; c < (g + 1) * D; ++c) v += cv[c] + (cm[c] - mu) * (cm[c] - mu);
      v /= static_cast<T>(D);
      const index_t k = g + G * b;
      mean[k] = mu;
      var[k] = v;
      inv_std[k] = T(1) / sqrt(v + epsilon);
    }
    expand_to_channels(L, b, mean, inv_std, cm, cv);
    channels_apply<Arch>(Ls, x + b * per, y + b * per, aff, f, cm, cv, streams_for<T>(L));
  });
}

template <class Arch, class T, class F>
void samples_backward(const norm_layout& L, const T* dy, const T* x, const T* y, norm_affine<T> aff,
                      const F& f, const T* mean, const T* inv_std, bool batch_statistics, T* dx,
                      bool affine_grads, T* dscale, T* dbias) {
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C, D = L.group_channels, G = L.groups_per_sample();
  const index_t n = L.group_size();
  // Scale/bias gradients per piece of samples, summed in a fixed order at the end.
  const index_t P = fused_is_balanced(L.B) ? std::min<index_t>(max_threads(), L.B) : 1;
  buffer<T> part(affine_grads ? static_cast<std::size_t>(2 * P * C) : 0, T(0));
  for_pieces(L.B, P, P > 1 ? L.numel() : 0, [&](index_t p, index_t b0, index_t b1) {
    buffer<T> w(static_cast<std::size_t>(6 * C));
    T *cm = w.data(), *ci = cm + C, *sc = ci + C, *sh = sc + C, *s0 = sh + C, *s1 = s0 + C;
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = b * per;
      expand_to_channels(L, b, mean, inv_std, cm, ci);
      for (index_t c = 0; c < C; ++c) {
        sc[c] = ci[c] * (aff.scale ? aff.scale[c] : T(1));
        sh[c] = aff.bias ? aff.bias[c] : T(0);
      }
      const channel_engine<T, F, Arch> e{Ls, x + o, f, cm, sc, sh, streams_for<T>(L)};
      const T* yb = y ? y + o : y;
      channels_sums(e, dy + o, yb, s0, s1);
      if (affine_grads)
        for (index_t c = 0; c < C; ++c) {
          part[2 * p * C + c] += s0[c];
          part[2 * p * C + C + c] += s1[c] * ci[c];
        }
      // Group sums Σ dz·γ, Σ dz·γ·(x − μ) give each group's dx coefficients; s0/s1 are reused
      // for the per-channel kx/k0.
      for (index_t g = 0; g < G; ++g) {
        std::array<T, 2> sums{};
        for (index_t c = g * D; c < (g + 1) * D; ++c) {
          const T gm = aff.scale ? aff.scale[c] : T(1);
          sums[0] += gm * s0[c];
          sums[1] += gm * s1[c];
        }
        const auto kc = dx_coefficients(sums, ci[g * D], n, batch_statistics);
        for (index_t c = g * D; c < (g + 1) * D; ++c) s0[c] = kc[0], s1[c] = kc[1];
      }
      channels_dx(e, s0, s1, dy + o, yb, dx + o);
    }
  });
  if (affine_grads)
    for (index_t c = 0; c < C; ++c) {
      T db = T(0), dg = T(0);
      for (index_t p = 0; p < P; ++p) db += part[2 * p * C + c], dg += part[2 * p * C + C + c];
      dbias[c] = db;
      dscale[c] = dg;
    }
}

/// An across-batch layout with its M runs per (channel, sample) counted as samples: element
/// (s, c, m, b) is element (s, c, m + M·b) of (S, C, M·B), and the group of a channel is all of
/// them either way.
inline norm_layout fold_runs(norm_layout L) {
  L.B *= L.M;
  L.M = 1;
  return L;
}

}  // namespace norm_looped

// --- the looped overloads of the engine (see ../generic/normalization.hpp) ---------------------
template <norm_looped::simd_float T, class F, class Arch = xsimd::default_arch>
void normalization_forward(looped_op, const norm_layout& L, const T* x, T* y, norm_affine<T> aff,
                           const F& sigma, T epsilon, T* mean, T* var, T* inv_std) {
  LUX_TRACE_KERNEL("looped_op", "normalization_forward");
  if (L.across_batch)
    norm_looped::channels_forward<Arch>(norm_looped::fold_runs(L), x, y, aff, sigma, epsilon, mean,
                                        var, inv_std);
  else if (L.M > 1)
    norm_looped::samples_forward<Arch>(L, x, y, aff, sigma, epsilon, mean, var, inv_std);
  else
    norm_looped::blocks_forward<Arch>(L, x, y, aff, sigma, epsilon, mean, var, inv_std);
}

template <norm_looped::simd_float T, class F, class Arch = xsimd::default_arch>
void normalization_apply(looped_op, const norm_layout& L, const T* x, T* y, norm_affine<T> aff,
                         const F& sigma, const T* mean, const T* inv_std) {
  LUX_TRACE_KERNEL("looped_op", "normalization_apply");
  if (L.across_batch) {
    norm_looped::channels_apply<Arch>(norm_looped::fold_runs(L), x, y, aff, sigma, mean, inv_std,
                                      norm_looped::streams_for<T>(L));
    return;
  }
  if (L.M > 1) {
    norm_looped::samples_apply<Arch>(L, x, y, aff, sigma, mean, inv_std);
    return;
  }
  const norm_looped::block_engine<T, F, Arch> e{L, x, aff, sigma};
  norm_looped::for_each_parallel(L.num_groups(), L.numel(),
                                 [&](index_t k) { e.apply(k, 0, e.n, mean[k], inv_std[k], y); });
}

template <norm_looped::simd_float T, class F, class Arch = xsimd::default_arch>
void normalization_backward(looped_op, const norm_layout& L, const T* dy, const T* x, const T* y,
                            norm_affine<T> aff, const F& sigma, const T* mean, const T* inv_std,
                            bool batch_statistics, T* dx, bool affine_grads, T* dscale, T* dbias) {
  LUX_TRACE_KERNEL("looped_op", "normalization_backward");
  if (L.across_batch)
    norm_looped::channels_backward<Arch>(norm_looped::fold_runs(L), dy, x, y, aff, sigma, mean,
                                         inv_std, batch_statistics, dx, affine_grads, dscale,
                                         dbias);
  else if (L.M > 1)
    norm_looped::samples_backward<Arch>(L, dy, x, y, aff, sigma, mean, inv_std, batch_statistics,
                                        dx, affine_grads, dscale, dbias);
  else
    norm_looped::blocks_backward<Arch>(L, dy, x, y, aff, sigma, mean, inv_std, batch_statistics, dx,
                                       affine_grads, dscale, dbias);
}

}  // namespace impl
LUX_NAMESPACE_END

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
