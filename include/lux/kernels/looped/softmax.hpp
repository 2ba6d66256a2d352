// luxcpp — softmax, logsoftmax, logsumexp and their backward passes: the looped (CPU)
// implementation, xsimd + OpenMP, float and double.
//
// Computes what ../generic/softmax.hpp computes (read it first: the (inner, n, outer) layout
// and the rules for infinite maxima); only the loop structure differs.
//
// * Reduced dimension first (inner = 1; NNlib's default dims = 1): each slice is a contiguous
//   column; its max, Σexp and Σdy·y are SIMD reductions and its outputs SIMD stores.
// * Any other dimension (inner > 1): the slices of one `outer` index are interleaved, element
//   c of slice i at i + inner·c. Lanes run across i, the contiguous extent: the inner extent is
//   cut into chunks of `chunk` elements whose running max / sum live in stack buffers, and each
//   pass walks c over contiguous rows of the chunk. Every load and store is unit-stride.
// * Slices whose maximum is not finite (an element is +inf, every element is -inf, or NaN
//   hides in the max) are recomputed by the generic per-slice routine, so the rules for
//   infinities are those of the generic mode exactly. The output must not alias the input.
// * OpenMP over independent columns (dim 1) or (outer, chunk) pairs once the tensor has at
//   least 2^15 elements (lux::parallel_for's threshold); each slice is reduced by one thread
//   in a fixed order, so results do not depend on the thread count.
//
// The template parameter Arch (the translation unit's xsimd architecture by default) keeps
// instantiations from translation units built with different -m flags distinct (ODR).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/softmax.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {
namespace softmax_looped {

// --- type aliases -------------------------------------------------------------------------
template <class T, class Arch>
using batch = xsimd::batch<T, Arch>;

// --- static_asserts / concepts ---------------------------------------------------------------
template <class T>
concept simd_float = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// Elements of the inner extent processed together on the strided path (stack buffers).
inline constexpr index_t chunk = 256;

// --- loads, stores, lane loops ---------------------------------------------------------------
// A lane body is a template on V: V = batch<T, Arch> in the main loop, V = T in the tail.
// (Not named load/store: argument-dependent lookup on a batch would find xsimd::store, whose
// default is an aligned store.)
template <class V, class T>
V lane_load(const T* p) {
  if constexpr (std::is_same_v<V, T>)
    return *p;
  else
    return V::load_unaligned(p);
}
template <class T, class V>
void lane_store(T* p, const V& v) {
  if constexpr (std::is_same_v<V, T>)
    *p = v;
  else
    v.store_unaligned(p);
}
template <class V>
V vmax(const V& a, const V& b) {
  if constexpr (std::is_floating_point_v<V>)
    return b > a ? b : a;
  else
    return xsimd::max(a, b);
}

/// f(j, V{}) for j in [0, len): V = batch<T, Arch> in steps of its width, then V = T.
template <class Arch, class T, class F>
void for_lanes(index_t len, F&& f) {
  using B = batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  index_t j = 0;
  for (; j + W <= len; j += W) f(j, B{});
  for (; j < len; ++j) f(j, T{});
}

template <class T>
bool is_finite(T m) {
  return m > -std::numeric_limits<T>::infinity() && m < std::numeric_limits<T>::infinity();
}

// --- contiguous slices (inner = 1) ---------------------------------------------------------
template <class Arch, class T>
T column_max(const T* x, index_t n) {
  using B = batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(B::size);
  T m = -std::numeric_limits<T>::infinity();
  index_t c = 0;
  if (n >= W) {
    B mb = B::load_unaligned(x);
    for (c = W; c + W <= n; c += W) mb = xsimd::max(mb, B::load_unaligned(x + c));
    alignas(64) T lanes[W];
    mb.store_aligned(lanes);
    for (index_t j = 0; j < W; ++j) m = vmax(m, lanes[j]);
  }
  for (; c < n; ++c) m = vmax(m, x[c]);
  return m;
}

/// Σ exp(x - m) over a column; stores the terms to y when y is not null.
template <class Arch, class T>
T column_sum_exp(const T* x, T m, T* y, index_t n) {
  using std::exp;
  using B = batch<T, Arch>;
  B acc(T(0));
  T tail = 0;
  const B mb(m);
  for_lanes<Arch, T>(n, [&](index_t c, auto v) {
    using V = decltype(v);
    if constexpr (std::is_same_v<V, T>) {
      const T e = exp(x[c] - m);
      if (y) y[c] = e;
      tail += e;
    } else {
      const V e = exp(lane_load<V>(x + c) - mb);
      if (y) lane_store(y + c, e);
      acc += e;
    }
  });
  return simd::reduce_add(acc) + tail;
}

// --- per-mode kernels ------------------------------------------------------------------------
template <class Arch, class T>
void softmax_columns(const softmax_geometry& g, const T* x, T* y) {
  parallel_for(
      g.outer,
      [&](index_t o) {
        const T* xc = x + g.n * o;
        T* yc = y + g.n * o;
        const T m = column_max<Arch>(xc, g.n);
        if (!is_finite(m)) return softmax_slice::softmax(xc, yc, g.n, index_t{1});
        const T s = column_sum_exp<Arch>(xc, m, yc, g.n);
        const batch<T, Arch> sb(s);
        for_lanes<Arch, T>(g.n, [&](index_t c, auto v) {
          using V = decltype(v);
          if constexpr (std::is_same_v<V, T>)
            yc[c] /= s;
          else
            lane_store(yc + c, lane_load<V>(yc + c) / sb);
        });
      },
      g.n * g.outer);
}

template <class Arch, class T>
void logsoftmax_columns(const softmax_geometry& g, const T* x, T* y) {
  using std::log;
  parallel_for(
      g.outer,
      [&](index_t o) {
        const T* xc = x + g.n * o;
        T* yc = y + g.n * o;
        const T m = column_max<Arch>(xc, g.n);
        if (!is_finite(m)) return softmax_slice::logsoftmax(xc, yc, g.n, index_t{1});
        const T l = log(column_sum_exp<Arch>(xc, m, static_cast<T*>(nullptr), g.n));
        // (x - m) - log Σ, not x - (m + log Σ): m + log Σ would round at the scale of m.
        const batch<T, Arch> mb(m), lb(l);
        for_lanes<Arch, T>(g.n, [&](index_t c, auto v) {
          using V = decltype(v);
          if constexpr (std::is_same_v<V, T>)
            yc[c] = (xc[c] - m) - l;
          else
            lane_store(yc + c, (lane_load<V>(xc + c) - mb) - lb);
        });
      },
      g.n * g.outer);
}

template <class Arch, class T>
void logsumexp_columns(const softmax_geometry& g, const T* x, T* lse) {
  using std::log;
  parallel_for(
      g.outer,
      [&](index_t o) {
        const T* xc = x + g.n * o;
        const T m = column_max<Arch>(xc, g.n);
        lse[o] = is_finite(m) ? m + log(column_sum_exp<Arch>(xc, m, static_cast<T*>(nullptr), g.n))
                              : softmax_slice::logsumexp(xc, g.n, index_t{1});
      },
      g.n * g.outer);
}

// --- strided slices (inner > 1) --------------------------------------------------------------
/// Calls f(o, i0, len) for every (outer index, chunk of the inner extent), in parallel when the
/// tensor is large.
template <class F>
void for_chunks(const softmax_geometry& g, F&& f) {
  const index_t per = (g.inner + chunk - 1) / chunk;
  parallel_for(
      g.outer * per,
      [&](index_t t) {
        const index_t o = t / per, i0 = (t % per) * chunk;
        f(o, i0, std::min(chunk, g.inner - i0));
      },
      g.inner * g.n * g.outer);
}

/// m[j] = max_c x[j + inner·c] for j in [0, len); returns whether every m[j] is finite.
template <class Arch, class T>
bool chunk_max(const T* x, index_t inner, index_t n, index_t len, T* m) {
  std::fill_n(m, len, -std::numeric_limits<T>::infinity());
  for (index_t c = 0; c < n; ++c) {
    const T* row = x + inner * c;
    for_lanes<Arch, T>(len, [&](index_t j, auto v) {
      using V = decltype(v);
      lane_store(m + j, vmax(lane_load<V>(m + j), lane_load<V>(row + j)));
    });
  }
  bool finite = true;
  for (index_t j = 0; j < len; ++j) finite = finite && is_finite(m[j]);
  return finite;
}

/// s[j] = Σ_c exp(x[j + inner·c] - m[j]); the terms go to y when it is not null.
template <class Arch, class T>
void chunk_sum_exp(const T* x, const T* m, T* y, index_t inner, index_t n, index_t len, T* s) {
  using std::exp;
  std::fill_n(s, len, T(0));
  for (index_t c = 0; c < n; ++c) {
    const T* row = x + inner * c;
    for_lanes<Arch, T>(len, [&](index_t j, auto v) {
      using V = decltype(v);
      const V e = exp(lane_load<V>(row + j) - lane_load<V>(m + j));
      if (y) lane_store(y + inner * c + j, e);
      lane_store(s + j, lane_load<V>(s + j) + e);
    });
  }
}

/// Recomputes, with the generic routine, the slices of a chunk whose maximum is not finite.
template <class T, class Slice>
void fix_nonfinite(const T* m, index_t len, Slice&& slice) {
  for (index_t j = 0; j < len; ++j)
    if (!is_finite(m[j])) slice(j);
}

template <class Arch, class T>
void softmax_strided(const softmax_geometry& g, const T* x, T* y) {
  for_chunks(g, [&](index_t o, index_t i0, index_t len) {
    alignas(64) T m[chunk];
    alignas(64) T s[chunk];
    const index_t base = i0 + g.inner * g.n * o;
    const bool finite = chunk_max<Arch>(x + base, g.inner, g.n, len, m);
    chunk_sum_exp<Arch>(x + base, m, y + base, g.inner, g.n, len, s);
    for (index_t c = 0; c < g.n; ++c) {
      T* row = y + base + g.inner * c;
      for_lanes<Arch, T>(len, [&](index_t j, auto v) {
        using V = decltype(v);
        lane_store(row + j, lane_load<V>(row + j) / lane_load<V>(s + j));
      });
    }
    if (!finite)
      fix_nonfinite(m, len, [&](index_t j) {
        softmax_slice::softmax(x + base + j, y + base + j, g.n, g.inner);
      });
  });
}

template <class Arch, class T>
void logsoftmax_strided(const softmax_geometry& g, const T* x, T* y) {
  using std::log;
  for_chunks(g, [&](index_t o, index_t i0, index_t len) {
    alignas(64) T m[chunk];
    alignas(64) T l[chunk];
    const index_t base = i0 + g.inner * g.n * o;
    const bool finite = chunk_max<Arch>(x + base, g.inner, g.n, len, m);
    chunk_sum_exp<Arch>(x + base, m, static_cast<T*>(nullptr), g.inner, g.n, len, l);
    for_lanes<Arch, T>(len, [&](index_t j, auto v) {
      using V = decltype(v);
      lane_store(l + j, log(lane_load<V>(l + j)));
    });
    for (index_t c = 0; c < g.n; ++c) {
      const T* xr = x + base + g.inner * c;
      T* yr = y + base + g.inner * c;
      for_lanes<Arch, T>(len, [&](index_t j, auto v) {
        using V = decltype(v);
        lane_store(yr + j, (lane_load<V>(xr + j) - lane_load<V>(m + j)) - lane_load<V>(l + j));
      });
    }
    if (!finite)
      fix_nonfinite(m, len, [&](index_t j) {
        softmax_slice::logsoftmax(x + base + j, y + base + j, g.n, g.inner);
      });
  });
}

template <class Arch, class T>
void logsumexp_strided(const softmax_geometry& g, const T* x, T* lse) {
  using std::log;
  for_chunks(g, [&](index_t o, index_t i0, index_t len) {
    alignas(64) T m[chunk];
    alignas(64) T s[chunk];
    const index_t base = i0 + g.inner * g.n * o;
    T* out = lse + i0 + g.inner * o;
    const bool finite = chunk_max<Arch>(x + base, g.inner, g.n, len, m);
    chunk_sum_exp<Arch>(x + base, m, static_cast<T*>(nullptr), g.inner, g.n, len, s);
    for_lanes<Arch, T>(len, [&](index_t j, auto v) {
      using V = decltype(v);
      lane_store(out + j, lane_load<V>(m + j) + log(lane_load<V>(s + j)));
    });
    if (!finite)
      fix_nonfinite(m, len, [&](index_t j) {
        out[j] = softmax_slice::logsumexp(x + base + j, g.n, g.inner);
      });
  });
}

/// dx = y (dy - Σ dy y) (Softmax) or dx = dy - exp(y) Σ dy (!Softmax), any inner.
template <bool Softmax, class Arch, class T>
void softmax_family_backward(const softmax_geometry& g, const T* dy, const T* y, T* dx) {
  using std::exp;
  if (g.inner == 1) {
    parallel_for(
        g.outer,
        [&](index_t o) {
          const index_t b = g.n * o;
          batch<T, Arch> acc(T(0));
          T tail = 0;
          for_lanes<Arch, T>(g.n, [&](index_t c, auto v) {
            using V = decltype(v);
            const V t = Softmax ? lane_load<V>(dy + b + c) * lane_load<V>(y + b + c)
                                : lane_load<V>(dy + b + c);
            if constexpr (std::is_same_v<V, T>)
              tail += t;
            else
              acc += t;
          });
          const T s = simd::reduce_add(acc) + tail;
          for_lanes<Arch, T>(g.n, [&](index_t c, auto v) {
            using V = decltype(v);
            const V yv = lane_load<V>(y + b + c), d = lane_load<V>(dy + b + c);
            lane_store(dx + b + c, Softmax ? yv * (d - V(s)) : d - exp(yv) * V(s));
          });
        },
        g.n * g.outer);
    return;
  }
  for_chunks(g, [&](index_t o, index_t i0, index_t len) {
    alignas(64) T s[chunk];
    const index_t base = i0 + g.inner * g.n * o;
    std::fill_n(s, len, T(0));
    for (index_t c = 0; c < g.n; ++c) {
      const index_t r = base + g.inner * c;
      for_lanes<Arch, T>(len, [&](index_t j, auto v) {
        using V = decltype(v);
        const V t =
            Softmax ? lane_load<V>(dy + r + j) * lane_load<V>(y + r + j) : lane_load<V>(dy + r + j);
        lane_store(s + j, lane_load<V>(s + j) + t);
      });
    }
    for (index_t c = 0; c < g.n; ++c) {
      const index_t r = base + g.inner * c;
      for_lanes<Arch, T>(len, [&](index_t j, auto v) {
        using V = decltype(v);
        const V yv = lane_load<V>(y + r + j), d = lane_load<V>(dy + r + j),
                sv = lane_load<V>(s + j);
        lane_store(dx + r + j, Softmax ? yv * (d - sv) : d - exp(yv) * sv);
      });
    }
  });
}

}  // namespace softmax_looped

template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void softmax_forward(looped_op, const softmax_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("looped_op", "softmax_forward");
  LUX_DISPATCH("softmax_forward", (T), g, x, y);
  if (g.inner == 1)
    softmax_looped::softmax_columns<Arch>(g, x, y);
  else
    softmax_looped::softmax_strided<Arch>(g, x, y);
}

template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void logsoftmax_forward(looped_op, const softmax_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("looped_op", "logsoftmax_forward");
  LUX_DISPATCH("logsoftmax_forward", (T), g, x, y);
  if (g.inner == 1)
    softmax_looped::logsoftmax_columns<Arch>(g, x, y);
  else
    softmax_looped::logsoftmax_strided<Arch>(g, x, y);
}

template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void logsumexp_forward(looped_op, const softmax_geometry& g, const T* x, T* lse) {
  LUX_TRACE_KERNEL("looped_op", "logsumexp_forward");
  LUX_DISPATCH("logsumexp_forward", (T), g, x, lse);
  if (g.inner == 1)
    softmax_looped::logsumexp_columns<Arch>(g, x, lse);
  else
    softmax_looped::logsumexp_strided<Arch>(g, x, lse);
}

template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void softmax_backward(looped_op, const softmax_geometry& g, const T* dy, const T* y, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "softmax_backward");
  LUX_DISPATCH("softmax_backward", (T), g, dy, y, dx);
  softmax_looped::softmax_family_backward<true, Arch>(g, dy, y, dx);
}

template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void logsoftmax_backward(looped_op, const softmax_geometry& g, const T* dy, const T* y, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "logsoftmax_backward");
  LUX_DISPATCH("logsoftmax_backward", (T), g, dy, y, dx);
  softmax_looped::softmax_family_backward<false, Arch>(g, dy, y, dx);
}

/// dx = dlse · exp(x - lse), lanes across the inner extent (or the column for inner = 1).
template <class T, class Arch = xsimd::default_arch>
requires softmax_looped::simd_float<T>
void logsumexp_backward(looped_op, const softmax_geometry& g, const T* dlse, const T* x,
                        const T* lse, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "logsumexp_backward");
  LUX_DISPATCH("logsumexp_backward", (T), g, dlse, x, lse, dx);
  using namespace softmax_looped;
  using std::exp;
  if (g.inner == 1) {
    parallel_for(
        g.outer,
        [&](index_t o) {
          const T d = dlse[o], l = lse[o];
          const index_t b = g.n * o;
          for_lanes<Arch, T>(g.n, [&](index_t c, auto v) {
            using V = decltype(v);
            lane_store(dx + b + c, V(d) * exp(lane_load<V>(x + b + c) - V(l)));
          });
        },
        g.n * g.outer);
    return;
  }
  parallel_for(
      g.outer * g.n,
      [&](index_t t) {
        const index_t o = t / g.n, c = t % g.n;
        const index_t b = g.inner * (c + g.n * o), r = g.inner * o;
        for_lanes<Arch, T>(g.inner, [&](index_t i, auto v) {
          using V = decltype(v);
          lane_store(dx + b + i, lane_load<V>(dlse + r + i) *
                                     exp(lane_load<V>(x + b + i) - lane_load<V>(lse + r + i)));
        });
      },
      g.inner * g.n * g.outer);
}

}  // namespace impl
LUX_NAMESPACE_END
