// luxcpp — max and mean pooling: the generic (reference) implementation.
//
// Plain scalar loops over any element type T (float, double, long double, user types with <, +, /
// and a conversion from index_t). Every pooling kernel (windowed, adaptive, global) reaches these
// four functions with a pool_geometry: the spatial dimensions padded to three, W (dim 0) fastest,
// and the number of (channel, batch) planes. The public entry points and documentation are in
// lux/kernels/pooling.hpp, the argument checks in lux/kernels/pooling/detail.hpp.
//
// Window order: taps are visited with k0 (W) fastest, then k1 (H), then k2 (D) — column-major,
// NNlib's `for kd, kh, kw` loop nest. Max pooling keeps the first tap it sees and then takes a
// later tap v over the current m iff v > m or (v is NaN and m is not): the result is the first
// NaN of the window if there is one, else the first occurrence of the maximum. The argmax is that
// tap's linear index inside its (spatial) plane; taps in the padding are skipped (they are −∞),
// and a window holding nothing but padding gives y = −∞ (the lowest value for types without
// infinities) with argmax −1, which routes no gradient.
//
// Mean pooling sums the in-bounds taps and divides by the full window size k0·k1·k2 (padding
// counts as zeros: PyTorch's count_include_pad = true, NNlib's and Lux's meanpool).
#pragma once

#include <array>
#include <cstdint>
#include <limits>

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// Pooling geometry: spatial dims padded to three (unused ones have size 1, window 1, stride 1,
/// dilation 1, padding 0), W = dim 0 fastest; `planes` = the product of the dims after the
/// spatial ones (C · B).
struct pool_geometry {
  std::array<index_t, 3> in{1, 1, 1};        ///< input spatial sizes
  std::array<index_t, 3> out{1, 1, 1};       ///< output spatial sizes
  std::array<index_t, 3> window{1, 1, 1};    ///< k
  std::array<index_t, 3> stride{1, 1, 1};    ///< s
  std::array<index_t, 3> dilation{1, 1, 1};  ///< d
  std::array<index_t, 3> pad_lo{0, 0, 0};    ///< padding before the first element
  index_t planes = 0;

  index_t in_plane() const noexcept { return in[0] * in[1] * in[2]; }
  index_t out_plane() const noexcept { return out[0] * out[1] * out[2]; }
  index_t window_size() const noexcept { return window[0] * window[1] * window[2]; }
  /// Input index of tap k of output o along dim a (may be outside [0, in[a]): padding).
  index_t tap(std::size_t a, index_t o, index_t k) const noexcept {
    return o * stride[a] - pad_lo[a] + k * dilation[a];
  }
};

/// The value of a padding cell in max pooling: −∞, or the lowest value of T without infinities.
template <class T>
T pool_lowest() {
  if constexpr (std::numeric_limits<T>::has_infinity)
    return -std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::lowest();
}

/// The max-pooling update rule: a later tap v replaces the current maximum m iff v > m, or v is
/// NaN and m is not (so NaN propagates and the first NaN wins).
template <class T>
bool max_pool_takes(const T& v, const T& m) {
  return v > m || (!(v == v) && m == m);
}

/// y = max over each window; argmax (may be null) = the within-plane linear index of the chosen
/// tap, −1 for a window of padding only.
template <class T>
void maxpool(generic_op, const pool_geometry& g, const T* x, T* y, std::int32_t* argmax) {
  LUX_TRACE_KERNEL("generic_op", "maxpool");
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  for (index_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * in_plane;
    index_t o = p * out_plane;
    for (index_t o2 = 0; o2 < g.out[2]; ++o2)
      for (index_t o1 = 0; o1 < g.out[1]; ++o1)
        for (index_t o0 = 0; o0 < g.out[0]; ++o0, ++o) {
          T m = pool_lowest<T>();
          index_t best = -1;
          for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
            const index_t i2 = g.tap(2, o2, k2);
            if (i2 < 0 || i2 >= g.in[2]) continue;
            for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
              const index_t i1 = g.tap(1, o1, k1);
              if (i1 < 0 || i1 >= g.in[1]) continue;
              for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
                const index_t i0 = g.tap(0, o0, k0);
                if (i0 < 0 || i0 >= g.in[0]) continue;
                const index_t i = (i2 * g.in[1] + i1) * g.in[0] + i0;
                if (best < 0 || max_pool_takes(xp[i], m)) {
                  m = xp[i];
                  best = i;
                }
              }
            }
          }
          y[o] = m;
          if (argmax) argmax[o] = static_cast<std::int32_t>(best);
        }
  }
}

/// maxpool_backward's "every argmax was in [−1, in_plane)".
inline constexpr std::int64_t argmax_valid = std::numeric_limits<std::int64_t>::min();

/// dx = 0, then dx[argmax[o]] += dy[o] for every output o of every plane (in output order); −1
/// (a window without taps) contributes nothing. An argmax outside [−1, in_plane) (a tampered or
/// foreign argmax) is skipped and returned — the caller throws — else argmax_valid.
template <class T>
std::int64_t maxpool_backward(generic_op, const pool_geometry& g, const T* dy,
                              const std::int32_t* argmax, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "maxpool_backward");
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  std::int64_t bad = argmax_valid;
  for (index_t i = 0; i < g.planes * in_plane; ++i) dx[i] = T(0);
  for (index_t p = 0; p < g.planes; ++p)
    for (index_t o = p * out_plane; o < (p + 1) * out_plane; ++o) {
      const std::int32_t a = argmax[o];
      if (a >= 0 && a < in_plane)
        dx[p * in_plane + a] += dy[o];
      else if (a < -1 || a >= in_plane)
        bad = a;
    }
  return bad;
}

/// y = (sum of the in-bounds taps of each window) / (k0·k1·k2).
template <class T>
void meanpool(generic_op, const pool_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("generic_op", "meanpool");
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  const T count = static_cast<T>(g.window_size());
  for (index_t p = 0; p < g.planes; ++p) {
    const T* xp = x + p * in_plane;
    index_t o = p * out_plane;
    for (index_t o2 = 0; o2 < g.out[2]; ++o2)
      for (index_t o1 = 0; o1 < g.out[1]; ++o1)
        for (index_t o0 = 0; o0 < g.out[0]; ++o0, ++o) {
          T sum = T(0);
          for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
            const index_t i2 = g.tap(2, o2, k2);
            if (i2 < 0 || i2 >= g.in[2]) continue;
            for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
              const index_t i1 = g.tap(1, o1, k1);
              if (i1 < 0 || i1 >= g.in[1]) continue;
              for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
                const index_t i0 = g.tap(0, o0, k0);
                if (i0 < 0 || i0 >= g.in[0]) continue;
                sum += xp[(i2 * g.in[1] + i1) * g.in[0] + i0];
              }
            }
          }
          y[o] = sum / count;
        }
  }
}

/// dx = 0, then dx[tap] += dy[o] / (k0·k1·k2) for every in-bounds tap of every window.
template <class T>
void meanpool_backward(generic_op, const pool_geometry& g, const T* dy, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "meanpool_backward");
  const index_t in_plane = g.in_plane(), out_plane = g.out_plane();
  const T count = static_cast<T>(g.window_size());
  for (index_t i = 0; i < g.planes * in_plane; ++i) dx[i] = T(0);
  for (index_t p = 0; p < g.planes; ++p) {
    T* dxp = dx + p * in_plane;
    index_t o = p * out_plane;
    for (index_t o2 = 0; o2 < g.out[2]; ++o2)
      for (index_t o1 = 0; o1 < g.out[1]; ++o1)
        for (index_t o0 = 0; o0 < g.out[0]; ++o0, ++o) {
          const T share = dy[o] / count;
          for (index_t k2 = 0; k2 < g.window[2]; ++k2) {
            const index_t i2 = g.tap(2, o2, k2);
            if (i2 < 0 || i2 >= g.in[2]) continue;
            for (index_t k1 = 0; k1 < g.window[1]; ++k1) {
              const index_t i1 = g.tap(1, o1, k1);
              if (i1 < 0 || i1 >= g.in[1]) continue;
              for (index_t k0 = 0; k0 < g.window[0]; ++k0) {
                const index_t i0 = g.tap(0, o0, k0);
                if (i0 < 0 || i0 >= g.in[0]) continue;
                dxp[(i2 * g.in[1] + i1) * g.in[0] + i0] += share;
              }
            }
          }
        }
  }
}

}  // namespace impl
LUX_NAMESPACE_END
