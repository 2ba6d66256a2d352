// luxcpp — the looped normalization engine's building blocks: SIMD loads and (streaming) stores,
// the row kernels every path runs (apply, reduce, dx), shifted moments merged with Chan's formula,
// and the threading helpers. See ../normalization.hpp for the engine as a whole.
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
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/normalization.hpp"

// GCC 12 -Wmaybe-uninitialized false positive (PR 105593) in its AVX-512 intrinsics wherever
// xsimd's exp/tanh are inlined; see lux/kernels/looped/activation.hpp.
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
namespace impl::norm_looped {

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

}  // namespace impl::norm_looped
LUX_NAMESPACE_END

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
