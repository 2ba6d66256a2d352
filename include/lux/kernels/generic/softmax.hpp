// luxcpp — softmax, logsoftmax, logsumexp and their backward passes: the generic (reference)
// implementation.
//
// Plain scalar loops over any floating element type. The public entry points, the argument
// checks and the documentation (formulas, infinities, accuracy) live in
// lux/kernels/softmax.hpp; this file is the one to read or copy.
//
// Layout. The array is seen as (inner, n, outer): `n` is the size of the reduced dimension,
// `inner` the product of the sizes before it, `outer` the product of those after it. Slice
// (i, o) is x[i + inner·(c + n·o)] for c in [0, n); its reduced value (logsumexp) is stored at
// i + inner·o, the column-major index of the same array with the reduced dimension at size 1.
#pragma once

#include <cmath>
#include <limits>

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// The (inner, n, outer) factorization of an array around its reduced dimension.
struct softmax_geometry {
  index_t inner = 1;  ///< product of the sizes before the reduced dimension (its stride)
  index_t n = 1;      ///< size of the reduced dimension
  index_t outer = 1;  ///< product of the sizes after it
};

namespace softmax_slice {

// One slice of n elements, `stride` apart. These are also the looped mode's fallback for
// slices whose maximum is not finite.

/// The largest element; -inf for an empty slice. NaN elements are skipped here and come back
/// through exp(NaN - m) = NaN in the callers.
template <class T>
T maximum(const T* x, index_t n, index_t stride) {
  T m = -std::numeric_limits<T>::infinity();
  for (index_t c = 0; c < n; ++c) m = x[c * stride] > m ? x[c * stride] : m;
  return m;
}

/// x - m with NNlib's rule for m = +inf: 0 where x = +inf, -inf elsewhere (softmax then puts
/// equal mass on the +inf elements). m = -inf (every element -inf) gives NaN, as in NNlib.
template <class T>
T shifted(T x, T m) {
  constexpr T inf = std::numeric_limits<T>::infinity();
  if (m == inf) return x == inf ? T(0) : -inf;
  return x - m;
}

template <class T>
void softmax(const T* x, T* y, index_t n, index_t stride) {
  using std::exp;
  const T m = maximum(x, n, stride);
  T s = 0;
  for (index_t c = 0; c < n; ++c) {
    const T e = exp(shifted(x[c * stride], m));
    y[c * stride] = e;
    s += e;
  }
  for (index_t c = 0; c < n; ++c) y[c * stride] /= s;
}

template <class T>
void logsoftmax(const T* x, T* y, index_t n, index_t stride) {
  using std::exp;
  using std::log;
  const T m = maximum(x, n, stride);
  T s = 0;
  for (index_t c = 0; c < n; ++c) s += exp(shifted(x[c * stride], m));
  const T l = log(s);
  for (index_t c = 0; c < n; ++c) y[c * stride] = shifted(x[c * stride], m) - l;
}

/// log Σ exp(x): +inf when an element is +inf, -inf when every element is -inf (or n = 0).
template <class T>
T logsumexp(const T* x, index_t n, index_t stride) {
  using std::exp;
  using std::log;
  const T m = maximum(x, n, stride);
  if (m == std::numeric_limits<T>::infinity() || m == -std::numeric_limits<T>::infinity()) return m;
  T s = 0;
  for (index_t c = 0; c < n; ++c) s += exp(x[c * stride] - m);
  return m + log(s);
}

}  // namespace softmax_slice

/// y = softmax(x) along the reduced dimension.
template <class T>
void softmax_forward(generic_op, const softmax_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("generic_op", "softmax_forward");
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      const index_t base = i + g.inner * g.n * o;
      softmax_slice::softmax(x + base, y + base, g.n, g.inner);
    }
}

/// y = logsoftmax(x) along the reduced dimension.
template <class T>
void logsoftmax_forward(generic_op, const softmax_geometry& g, const T* x, T* y) {
  LUX_TRACE_KERNEL("generic_op", "logsoftmax_forward");
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      const index_t base = i + g.inner * g.n * o;
      softmax_slice::logsoftmax(x + base, y + base, g.n, g.inner);
    }
}

/// lse[i + inner·o] = log Σ_c exp(x[i, c, o]).
template <class T>
void logsumexp_forward(generic_op, const softmax_geometry& g, const T* x, T* lse) {
  LUX_TRACE_KERNEL("generic_op", "logsumexp_forward");
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i)
      lse[i + g.inner * o] = softmax_slice::logsumexp(x + i + g.inner * g.n * o, g.n, g.inner);
}

/// dx = y .* (dy .- Σ_c dy .* y).
template <class T>
void softmax_backward(generic_op, const softmax_geometry& g, const T* dy, const T* y, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "softmax_backward");
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      const index_t base = i + g.inner * g.n * o;
      T s = 0;
      for (index_t c = 0; c < g.n; ++c) s += dy[base + c * g.inner] * y[base + c * g.inner];
      for (index_t c = 0; c < g.n; ++c) {
        const index_t k = base + c * g.inner;
        dx[k] = y[k] * (dy[k] - s);
      }
    }
}

/// dx = dy .- exp.(y) .* Σ_c dy.
template <class T>
void logsoftmax_backward(generic_op, const softmax_geometry& g, const T* dy, const T* y, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "logsoftmax_backward");
  using std::exp;
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t i = 0; i < g.inner; ++i) {
      const index_t base = i + g.inner * g.n * o;
      T s = 0;
      for (index_t c = 0; c < g.n; ++c) s += dy[base + c * g.inner];
      for (index_t c = 0; c < g.n; ++c) {
        const index_t k = base + c * g.inner;
        dx[k] = dy[k] - exp(y[k]) * s;
      }
    }
}

/// dx[i, c, o] = dlse[i + inner·o] · exp(x[i, c, o] - lse[i + inner·o]).
template <class T>
void logsumexp_backward(generic_op, const softmax_geometry& g, const T* dlse, const T* x,
                        const T* lse, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "logsumexp_backward");
  using std::exp;
  for (index_t o = 0; o < g.outer; ++o)
    for (index_t c = 0; c < g.n; ++c)
      for (index_t i = 0; i < g.inner; ++i) {
        const index_t k = i + g.inner * (c + g.n * o), r = i + g.inner * o;
        dx[k] = dlse[r] * exp(x[k] - lse[r]);
      }
}

}  // namespace impl
LUX_NAMESPACE_END
