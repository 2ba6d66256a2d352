// luxcpp — max and mean pooling: the looped (CPU) implementation for float and double.
//
// OpenMP over the (channel, batch) planes; inside a plane, one output row (fixed o1, o2) at a
// time. The columns o0 whose windows lie entirely inside the input along W (the interior) are
// computed by "row passes": one pass per valid input row (k2, k1) of the window, applying its K0
// taps along W to the whole interior,
//     m[o0] = max(m[o0], x[i2, i1, o0·s0 − lo0 + k0·d0] for k0 < K0)     (or sum += …)
// a loop the compiler vectorizes with the taps unrolled (K0 ∈ {2, 3} and s0 ∈ {1, 2} are
// compile-time constants, so a stride-2 row becomes loads and permutes rather than gathers). Max
// passes finish with one overlapping full-width block instead of a scalar epilogue (max is
// idempotent). Border columns and rows too short to vectorize take the scalar per-window path.
// Taps are visited in the generic order (k2, k1, k0), so the maximum and the argmax (tie and NaN
// rule of generic/pooling.hpp; a row whose windows contain a NaN is redone by the scalar path)
// are bit-identical to the generic kernel, and so are the mean-pool
// sums of vectorized rows (short rows sum contiguous runs with SIMD partial sums: rounding
// differences only). The mean-pool backward spreads each row of shares over the K0 taps in a
// phase-split scratch row (contiguous adds) and adds it, interleaved, to each window row: a
// different summation order than the generic kernel (rounding differences only). The max-pool
// backward scatters in the generic order (bit-identical).
//
// No allocation: the only scratch is fixed-size stack blocks (the even/odd phases of stride-2 rows
// in max pooling, the phase-split share rows of the mean-pool backward).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/pooling.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {
namespace pool_looped {

template <class T>
inline constexpr bool fast_type_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Rows shorter than this take the scalar per-window path.
inline constexpr index_t min_vector_row = 8;

/// The output columns [begin, end) along dim 0 whose every tap is inside the input.
struct column_range {
  index_t begin, end;
};
inline column_range interior_columns(const pool_geometry& g) {
  const index_t s = g.stride[0], lo = g.pad_lo[0], O = g.out[0];
  const index_t begin = std::min(lo / s + (lo % s != 0), O);  // ⌈lo / s⌉ without overflow
  const index_t num = g.in[0] - 1 + lo - (g.window[0] - 1) * g.dilation[0];
  const index_t end = num >= 0 ? std::min(num / s + 1, O) : 0;
  return {begin, std::max(begin, end)};
}

// --- one window row over a row of outputs ------------------------------------------------------
//
// A "row pass" applies the K0 taps of one valid input row (fixed k2, k1) to n consecutive interior
// outputs: tap k0 of output i reads xs[i·S + k0·d]. K0 (the window along W) and S (the stride along
// W) are compile-time constants where it pays (K0 ∈ {2, 3}, S ∈ {1, 2}; 0 = runtime), so the loop
// over i vectorizes with the taps unrolled and the accumulator in a register. The first row pass
// of a window initializes; the taps are visited in the generic order (k0 inner).

/// Max row pass. Values only: take v iff v > m or v is NaN (NaN propagates; once m is NaN nothing
/// replaces it). With the argmax: take v iff v > m — the generic rule for NaN-free data — and
/// return the number of NaN taps seen, so that the caller recomputes a row that had any with the
/// exact scalar rule. (GCC vectorizes neither the full NaN-aware argmax rule chained over several
/// taps nor a boolean "any NaN" flag, but it does vectorize this form with an integer count.)
template <int K0, index_t S, bool WithIdx, bool First, class T>
index_t max_row(const T* __restrict xs, index_t s_rt, index_t d, index_t k0_rt, index_t n_rt,
                T* __restrict m, std::int32_t* __restrict a, std::int32_t pos0) {
  const index_t s = S > 0 ? S : s_rt;
  const index_t taps = K0 > 0 ? K0 : k0_rt;
  const index_t n = n_rt;
  const auto s32 = static_cast<std::int32_t>(s), d32 = static_cast<std::int32_t>(d);
  index_t nans = 0;
  std::int32_t p = pos0;
  for (index_t i = 0; i < n; ++i, p += s32) {
    T cur;
    std::int32_t at = 0;
    if constexpr (First) {
      cur = xs[i * s];
      if constexpr (WithIdx) {
        at = p;
        nans += cur != cur;
      }
    } else {
      cur = m[i];
      if constexpr (WithIdx) at = a[i];
    }
    for (index_t k = First ? 1 : 0; k < taps; ++k) {
      const T v = xs[i * s + k * d];
      if constexpr (WithIdx) {
        nans += v != v;
        const bool take = v > cur;
        cur = take ? v : cur;
        at = take ? p + static_cast<std::int32_t>(k) * d32 : at;
      } else {
        cur = ((v > cur) | (v != v)) ? v : cur;
      }
    }
    m[i] = cur;
    if constexpr (WithIdx) a[i] = at;
  }
  return nans;
}

// --- explicit SIMD max over a list of contiguous taps ------------------------------------------
//
// GCC vectorizes max_row's main loop, but the rows of typical pooling layers are short (56
// outputs for the ResNet stem) and its scalar epilogues branch on the data; this kernel has none.
// A window's taps are given as contiguous sources src[t] (output i reads src[t][i]) in the
// generic order, with pos[t] + i·S the within-plane index of that element. Blocks of one vector
// cover [0, n), the last one overlapping its predecessor (max and argmax are idempotent).
// The argmax travels as integer bits inside a float vector (xsimd 8 cannot select integers with a
// float mask); blends move bits unchanged. With the argmax, a tap is taken iff v > m and NaN taps
// are only counted: the caller redoes a row that had any with the exact scalar rule.

template <class T>
using pool_int_t = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;

/// Returns whether a NaN was seen (only tracked WithIdx). Requires n ≥ the vector width.
template <bool WithIdx, class T>
bool max_taps_simd(const T* const* src, const std::int32_t* pos, index_t taps, index_t S, index_t n,
                   T* y, std::int32_t* a) {
  using fb = simd::batch<T>;
  using I = pool_int_t<T>;
  using ib = xsimd::batch<I>;
  static_assert(fb::size == ib::size, "pooling: integer and float vectors must have equal width");
  constexpr index_t W = static_cast<index_t>(fb::size);
  alignas(64) I lane[W];
  for (index_t l = 0; l < W; ++l) lane[l] = static_cast<I>(l * S);
  const ib lanes = ib::load_aligned(lane);
  bool nan_seen = false;
  auto block = [&](index_t i) {
    fb m = fb::load_unaligned(src[0] + i);
    if constexpr (WithIdx) {
      auto nan = xsimd::isnan(m);
      fb at = xsimd::bitwise_cast<fb>(ib(static_cast<I>(pos[0] + i * S)) + lanes);
      for (index_t t = 1; t < taps; ++t) {
        const fb v = fb::load_unaligned(src[t] + i);
        const auto take = v > m;
        nan = nan | xsimd::isnan(v);
        m = xsimd::select(take, v, m);
        at = xsimd::select(take,
                           xsimd::bitwise_cast<fb>(ib(static_cast<I>(pos[t] + i * S)) + lanes), at);
      }
      m.store_unaligned(y + i);
      if constexpr (sizeof(I) == sizeof(std::int32_t)) {
        xsimd::bitwise_cast<ib>(at).store_unaligned(reinterpret_cast<I*>(a + i));
      } else {
        alignas(64) I tmp[W];
        xsimd::bitwise_cast<ib>(at).store_aligned(tmp);
        for (index_t l = 0; l < W; ++l) a[i + l] = static_cast<std::int32_t>(tmp[l]);
      }
      nan_seen = nan_seen || xsimd::any(nan);
    } else {
      for (index_t t = 1; t < taps; ++t) {
        const fb v = fb::load_unaligned(src[t] + i);
        m = xsimd::select((v > m) | xsimd::isnan(v), v, m);
      }
      m.store_unaligned(y + i);
    }
  };
  index_t i = 0;
  for (; i + W <= n; i += W) block(i);
  if (i < n) block(n - W);
  return nan_seen;
}

template <int K0, index_t S, bool First, class T>
void sum_row(const T* __restrict xs, index_t s_rt, index_t d, index_t k0_rt, index_t n,
             T* __restrict acc) {
  const index_t s = S > 0 ? S : s_rt;
  const index_t taps = K0 > 0 ? K0 : k0_rt;
  for (index_t i = 0; i < n; ++i) {
    T sum = First ? T(0) : acc[i];
    for (index_t k = 0; k < taps; ++k) sum += xs[i * s + k * d];
    acc[i] = sum;
  }
}

/// Calls f(integral_constant K0, integral_constant S) with the compile-time window/stride along W
/// where one is instantiated (K0 ∈ {2, 3}, S ∈ {1, 2}), 0 for "runtime".
template <class F>
void with_row_shape(index_t k0, index_t s, F&& f) {
  auto on_stride = [&](auto K) {
    if (s == 1)
      f(K, std::integral_constant<index_t, 1>{});
    else if (s == 2)
      f(K, std::integral_constant<index_t, 2>{});
    else
      f(K, std::integral_constant<index_t, 0>{});
  };
  if (k0 == 3)
    on_stride(std::integral_constant<int, 3>{});
  else if (k0 == 2)
    on_stride(std::integral_constant<int, 2>{});
  else
    on_stride(std::integral_constant<int, 0>{});
}

// --- one window (border columns, short rows) ---------------------------------------------------

template <bool WithIdx, class T>
void max_window(const pool_geometry& g, const T* xp, index_t o0, index_t o1, index_t o2, T& y,
                std::int32_t* a) {
  T m = pool_lowest<T>();
  index_t best = -1;
  for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
    const index_t i2 = g.tap(2, o2, k2);
    if (i2 < 0 || i2 >= g.in[2]) continue;
    for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
      const index_t i1 = g.tap(1, o1, k1);
      if (i1 < 0 || i1 >= g.in[1]) continue;
      const index_t row = (i2 * g.in[1] + i1) * g.in[0];
      for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
        const index_t i0 = g.tap(0, o0, k0);
        if (i0 < 0 || i0 >= g.in[0]) continue;
        const T v = xp[row + i0];
        if (best < 0 || max_pool_takes(v, m)) {
          m = v;
          best = row + i0;
        }
      }
    }
  }
  y = m;
  if constexpr (WithIdx) *a = static_cast<std::int32_t>(best);
}

template <class T>
T mean_window(const pool_geometry& g, const T* xp, index_t o0, index_t o1, index_t o2) {
  T sum = T(0);
  for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
    const index_t i2 = g.tap(2, o2, k2);
    if (i2 < 0 || i2 >= g.in[2]) continue;
    for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
      const index_t i1 = g.tap(1, o1, k1);
      if (i1 < 0 || i1 >= g.in[1]) continue;
      const T* row = xp + (i2 * g.in[1] + i1) * g.in[0];
      if (g.dilation[0] == 1) {
        // A contiguous run of the row: the clipped range of k0.
        const index_t first = g.tap(0, o0, 0);
        const index_t lo = std::max<index_t>(first, 0);
        const index_t hi = std::min<index_t>(first + g.window[0], g.in[0]);
        if (hi > lo) sum += simd::sum(row + lo, hi - lo);
      } else {
        for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
          const index_t i0 = g.tap(0, o0, k0);
          if (i0 >= 0 && i0 < g.in[0]) sum += row[i0];
        }
      }
    }
  }
  return sum / static_cast<T>(g.window_size());
}

template <class T>
void mean_window_backward(const pool_geometry& g, T* dxp, index_t o0, index_t o1, index_t o2,
                          T share) {
  for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
    const index_t i2 = g.tap(2, o2, k2);
    if (i2 < 0 || i2 >= g.in[2]) continue;
    for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
      const index_t i1 = g.tap(1, o1, k1);
      if (i1 < 0 || i1 >= g.in[1]) continue;
      T* row = dxp + (i2 * g.in[1] + i1) * g.in[0];
      for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
        const index_t i0 = g.tap(0, o0, k0);
        if (i0 >= 0 && i0 < g.in[0]) row[i0] += share;
      }
    }
  }
}

// --- one plane ---------------------------------------------------------------------------------

template <bool WithIdx, class T>
void max_plane(const pool_geometry& g, const T* xp, T* yp, std::int32_t* ap) {
  constexpr index_t W = simd::width<T>;
  constexpr index_t max_taps = 64, max_rows = 16, chunk = 128, max_extra = 64;
  const column_range c = interior_columns(g);
  const index_t n = c.end - c.begin;
  const index_t S = g.stride[0], d = g.dilation[0], K0 = g.window[0];
  const index_t rows_max = g.window[1] * g.window[2];
  // The explicit-SIMD path: unit or stride-2 rows (stride-2 rows are de-interleaved into even and
  // odd scratch rows, so every tap is a contiguous load), windows of ≤ 64 taps, modest dilation.
  const bool simd_rows = n >= W && (S == 1 || S == 2) && rows_max <= max_rows &&
                         rows_max * K0 <= max_taps && ((K0 - 1) * d + 2) / 2 <= max_extra;
  const bool vector_rows = n >= min_vector_row;
  T scratch[max_rows][2][chunk + max_extra];  // even and odd phases of stride-2 rows
  const T* src[max_taps];
  std::int32_t pos[max_taps];
  index_t rowoff[max_rows];
  for (index_t o2 = 0; o2 < g.out[2]; ++o2)
    for (index_t o1 = 0; o1 < g.out[1]; ++o1) {
      const index_t row_out = (o2 * g.out[1] + o1) * g.out[0];
      T* yr = yp + row_out;
      std::int32_t* ar = WithIdx ? ap + row_out : nullptr;
      auto scalar_column = [&](index_t o0) {
        max_window<WithIdx, T>(g, xp, o0, o1, o2, yr[o0], WithIdx ? ar + o0 : nullptr);
      };
      if (!vector_rows) {
        for (index_t o0 = 0; o0 < g.out[0]; ++o0) scalar_column(o0);
        continue;
      }
      // The valid input rows of this output row's windows, in window order.
      index_t R = 0;
      for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
        const index_t i2 = g.tap(2, o2, k2);
        if (i2 < 0 || i2 >= g.in[2]) continue;
        for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
          const index_t i1 = g.tap(1, o1, k1);
          if (i1 < 0 || i1 >= g.in[1]) continue;
          if (R < max_rows) rowoff[R] = (i2 * g.in[1] + i1) * g.in[0];
          ++R;
        }
      }
      bool nan_seen = false;
      if (R == 0) {  // every window of this row lies in the padding
        for (index_t o0 = c.begin; o0 < c.end; ++o0) {
          yr[o0] = pool_lowest<T>();
          if constexpr (WithIdx) ar[o0] = -1;
        }
      } else if (simd_rows) {
        for (index_t cb = c.begin; cb < c.end; cb += chunk) {
          index_t b = cb, cn = std::min(chunk, c.end - cb);
          if (cn < W) {  // a short last chunk: overlap the previous one (idempotent)
            b = c.end - W;
            cn = W;
          }
          const index_t p0 = g.tap(0, b, 0);  // first input column of the chunk's windows
          index_t t = 0;
          for (index_t r = 0; r < R; ++r) {
            const T* xr = xp + rowoff[r] + p0;
            if (S == 1) {
              for (index_t k0 = 0; k0 < K0; ++k0, ++t) {
                src[t] = xr + k0 * d;
                pos[t] = static_cast<std::int32_t>(rowoff[r] + p0 + k0 * d);
              }
            } else {
              const index_t span = 2 * (cn - 1) + (K0 - 1) * d + 1;
              T* __restrict even = scratch[r][0];
              T* __restrict odd = scratch[r][1];
              for (index_t j = 0; j < (span + 1) / 2; ++j) even[j] = xr[2 * j];
              for (index_t j = 0; j < span / 2; ++j) odd[j] = xr[2 * j + 1];
              for (index_t k0 = 0; k0 < K0; ++k0, ++t) {
                const index_t r0 = k0 * d;
                src[t] = (r0 % 2 == 0 ? even : odd) + r0 / 2;
                pos[t] = static_cast<std::int32_t>(rowoff[r] + p0 + r0);
              }
            }
          }
          nan_seen =
              max_taps_simd<WithIdx>(src, pos, t, S, cn, yr + b, WithIdx ? ar + b : nullptr) ||
              nan_seen;
        }
      } else {
        bool first = true;
        index_t nans = 0;
        for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
          const index_t i2 = g.tap(2, o2, k2);
          if (i2 < 0 || i2 >= g.in[2]) continue;
          for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
            const index_t i1 = g.tap(1, o1, k1);
            if (i1 < 0 || i1 >= g.in[1]) continue;
            const index_t off = (i2 * g.in[1] + i1) * g.in[0] + g.tap(0, c.begin, 0);
            with_row_shape(K0, S, [&](auto K, auto SC) {
              constexpr int K0c = decltype(K)::value;
              constexpr index_t S0 = decltype(SC)::value;
              const T* xs = xp + off;
              T* m = yr + c.begin;
              std::int32_t* a = WithIdx ? ar + c.begin : nullptr;
              const auto p = static_cast<std::int32_t>(off);
              if (first)
                nans += max_row<K0c, S0, WithIdx, true>(xs, S, d, K0, n, m, a, p);
              else
                nans += max_row<K0c, S0, WithIdx, false>(xs, S, d, K0, n, m, a, p);
            });
            first = false;
          }
        }
        nan_seen = nans > 0;
      }
      if (WithIdx && nan_seen)  // NaN in the window rows: the exact scalar rule
        for (index_t o0 = c.begin; o0 < c.end; ++o0) scalar_column(o0);
      for (index_t o0 = 0; o0 < c.begin; ++o0) scalar_column(o0);
      for (index_t o0 = c.end; o0 < g.out[0]; ++o0) scalar_column(o0);
    }
}

template <class T>
void mean_plane(const pool_geometry& g, const T* xp, T* yp) {
  const column_range c = interior_columns(g);
  const bool vector_rows = c.end - c.begin >= min_vector_row;
  const index_t n = c.end - c.begin;
  const T count = static_cast<T>(g.window_size());
  for (index_t o2 = 0; o2 < g.out[2]; ++o2)
    for (index_t o1 = 0; o1 < g.out[1]; ++o1) {
      T* yr = yp + (o2 * g.out[1] + o1) * g.out[0];
      if (!vector_rows) {
        for (index_t o0 = 0; o0 < g.out[0]; ++o0) yr[o0] = mean_window(g, xp, o0, o1, o2);
        continue;
      }
      T* acc = yr + c.begin;
      bool first = true;
      for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
        const index_t i2 = g.tap(2, o2, k2);
        if (i2 < 0 || i2 >= g.in[2]) continue;
        for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
          const index_t i1 = g.tap(1, o1, k1);
          if (i1 < 0 || i1 >= g.in[1]) continue;
          const T* xs = xp + (i2 * g.in[1] + i1) * g.in[0] + g.tap(0, c.begin, 0);
          with_row_shape(g.window[0], g.stride[0], [&](auto K, auto S) {
            constexpr int K0 = decltype(K)::value;
            constexpr index_t S0 = decltype(S)::value;
            if (first)
              sum_row<K0, S0, true>(xs, g.stride[0], g.dilation[0], g.window[0], n, acc);
            else
              sum_row<K0, S0, false>(xs, g.stride[0], g.dilation[0], g.window[0], n, acc);
          });
          first = false;
        }
      }
      if (first)
        for (index_t i = 0; i < n; ++i) acc[i] = T(0);
      for (index_t i = 0; i < n; ++i) acc[i] = acc[i] / count;
      for (index_t o0 = 0; o0 < c.begin; ++o0) yr[o0] = mean_window(g, xp, o0, o1, o2);
      for (index_t o0 = c.end; o0 < g.out[0]; ++o0) yr[o0] = mean_window(g, xp, o0, o1, o2);
    }
}

/// dxs[i·s] += share[i] for i < n (one tap; strided stores: the fallback for strides > 2).
template <class T>
void scatter_pass(T* __restrict dxs, index_t s, index_t n, const T* __restrict share) {
  for (index_t i = 0; i < n; ++i) dxs[i * s] += share[i];
}

/// Mean-pool backward of one plane. Per output row and block of ≤ `block` interior columns, the
/// shares dy/K are first spread over the K0 taps along W into a phase-split row H (position
/// r = i·S + k0·d is stored at H[r mod S][r div S], so every tap is a contiguous add), then H is
/// added, interleaved, to each valid input row of the window. Strides along W other than 1 and 2
/// (and extreme dilations) take per-tap strided passes instead.
template <class T>
void mean_plane_backward(const pool_geometry& g, const T* dyp, T* dxp) {
  constexpr index_t block = 256, max_extra = 256;
  const column_range c = interior_columns(g);
  const bool vector_rows = c.end - c.begin >= min_vector_row;
  const T count = static_cast<T>(g.window_size());
  const index_t S = g.stride[0], d = g.dilation[0], K0 = g.window[0];
  const index_t extra = (K0 - 1) * d / std::max<index_t>(S, 1) + 1;
  const bool phased = (S == 1 || S == 2) && extra <= max_extra;
  std::fill(dxp, dxp + g.in_plane(), T(0));
  T share[block];
  T phases[2 * (block + max_extra)];
  for (index_t o2 = 0; o2 < g.out[2]; ++o2)
    for (index_t o1 = 0; o1 < g.out[1]; ++o1) {
      const T* dyr = dyp + (o2 * g.out[1] + o1) * g.out[0];
      if (!vector_rows) {
        for (index_t o0 = 0; o0 < g.out[0]; ++o0)
          mean_window_backward(g, dxp, o0, o1, o2, dyr[o0] / count);
        continue;
      }
      for (index_t b = c.begin; b < c.end; b += block) {
        const index_t n = std::min(block, c.end - b);
        for (index_t i = 0; i < n; ++i) share[i] = dyr[b + i] / count;
        const index_t base = g.tap(0, b, 0);  // first input column touched (≥ 0: interior)
        const index_t span = (n - 1) * S + (K0 - 1) * d + 1;
        const index_t L = n + extra;  // length of one phase of H
        if (phased) {
          std::fill(phases, phases + S * L, T(0));
          for (index_t k0 = 0; k0 < K0; ++k0) {
            T* __restrict h = phases + (k0 * d % S) * L + k0 * d / S;
            for (index_t i = 0; i < n; ++i) h[i] += share[i];
          }
        }
        for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
          const index_t i2 = g.tap(2, o2, k2);
          if (i2 < 0 || i2 >= g.in[2]) continue;
          for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
            const index_t i1 = g.tap(1, o1, k1);
            if (i1 < 0 || i1 >= g.in[1]) continue;
            T* __restrict dxr = dxp + (i2 * g.in[1] + i1) * g.in[0] + base;
            if (phased && S == 1) {
              const T* __restrict h = phases;
              for (index_t j = 0; j < span; ++j) dxr[j] += h[j];
            } else if (phased) {  // S == 2: even positions from phase 0, odd from phase 1
              const T* __restrict h0 = phases;
              const T* __restrict h1 = phases + L;
              const index_t pairs = span / 2;
              for (index_t j = 0; j < pairs; ++j) {
                dxr[2 * j] += h0[j];
                dxr[2 * j + 1] += h1[j];
              }
              if (span % 2) dxr[span - 1] += h0[pairs];
            } else {
              for (index_t k0 = 0; k0 < K0; ++k0) scatter_pass(dxr + k0 * d, S, n, share);
            }
          }
        }
      }
      for (index_t o0 = 0; o0 < c.begin; ++o0)
        mean_window_backward(g, dxp, o0, o1, o2, dyr[o0] / count);
      for (index_t o0 = c.end; o0 < g.out[0]; ++o0)
        mean_window_backward(g, dxp, o0, o1, o2, dyr[o0] / count);
    }
}

}  // namespace pool_looped

// --- looped_op entry points --------------------------------------------------------------------

template <class T>
requires pool_looped::fast_type_v<T>
void maxpool(looped_op, const pool_geometry& g, const T* x, T* y, std::int32_t* argmax) {
  LUX_TRACE_KERNEL("looped_op", "maxpool");
  LUX_DISPATCH("maxpool", (T), g, x, y, argmax);
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  parallel_for(
      g.planes,
      [&](index_t p) {
        if (argmax)
          pool_looped::max_plane<true>(g, x + p * in_plane, y + p * out_plane,
                                       argmax + p * out_plane);
        else
          pool_looped::max_plane<false>(g, x + p * in_plane, y + p * out_plane, nullptr);
      },
      g.planes * (in_plane + out_plane));
}

template <class T>
requires pool_looped::fast_type_v<T> std::int64_t maxpool_backward(
    looped_op, const pool_geometry& g, const T* dy, const std::int32_t* argmax, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "maxpool_backward");
  LUX_DISPATCH_RESULT("maxpool_backward", (T), std::int64_t, g, dy, argmax, dx);
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  std::atomic<std::int64_t> bad{argmax_valid};
  parallel_for(
      g.planes,
      [&](index_t p) {
        T* dxp = dx + p * in_plane;
        const T* dyp = dy + p * out_plane;
        const std::int32_t* ap = argmax + p * out_plane;
        std::fill(dxp, dxp + in_plane, T(0));
        std::int32_t worst = -1;  // an argmax outside [−1, in_plane), if any
        for (index_t o = 0; o < out_plane; ++o) {
          const std::int32_t a = ap[o];
          if (a >= 0 && a < in_plane)
            dxp[a] += dyp[o];
          else if (a < -1 || a >= in_plane)
            worst = a;
        }
        if (worst != -1) bad.store(worst, std::memory_order_relaxed);
      },
      g.planes * (in_plane + out_plane));
  return bad.load();
}

template <class T>
requires pool_looped::fast_type_v<T>
void meanpool(looped_op, const pool_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("looped_op", "meanpool");
  LUX_DISPATCH("meanpool", (T), g, x, y);
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  parallel_for(
      g.planes, [&](index_t p) { pool_looped::mean_plane(g, x + p * in_plane, y + p * out_plane); },
      g.planes * (in_plane + out_plane));
}

template <class T>
requires pool_looped::fast_type_v<T>
void meanpool_backward(looped_op, const pool_geometry& g, const T* dy, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "meanpool_backward");
  LUX_DISPATCH("meanpool_backward", (T), g, dy, dx);
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  parallel_for(
      g.planes,
      [&](index_t p) {
        pool_looped::mean_plane_backward(g, dy + p * out_plane, dx + p * in_plane);
      },
      g.planes * (in_plane + out_plane));
}

}  // namespace impl
LUX_NAMESPACE_END
