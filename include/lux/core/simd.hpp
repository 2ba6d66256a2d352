// luxcpp — SIMD helpers for the looped (CPU) kernels, on top of xsimd.
//
// Everything is a template on the element type (and, through xsimd::batch's default, on
// the architecture the translation unit is compiled for), so no non-template inline
// function bakes in an architecture: translation units compiled with different -m flags
// stay ODR-clean.
#pragma once

// GCC 12's AVX-512 intrinsics initialize their "undefined" registers with `__Y = __Y`, which
// -W(maybe-)uninitialized reports (GCC PR 105593, fixed in GCC 13) wherever xsimd's math (exp,
// log1p, ...) is instantiated for AVX-512: a false positive that -Werror turns into a build
// failure. Template code takes the diagnostic state of its definition, so silencing the warnings
// around the include covers every later instantiation (include xsimd through this header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN
namespace simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr index_t width = static_cast<index_t>(xsimd::batch<T>::size);

/// Horizontal sum of a batch: xsimd::reduce_add from xsimd 9 on, xsimd::hadd before (Debian 12
/// ships xsimd 8.1, which has no reduce_add).
template <class T, class A>
T reduce_add(const xsimd::batch<T, A>& b) {
#if XSIMD_VERSION_MAJOR >= 9
  return xsimd::reduce_add(b);
#else
  return xsimd::hadd(b);
#endif
}

/// out[i] = f(in0[i], in1[i], ...) for i in [0, n). `f` is called with xsimd batches in
/// the main loop and with scalars in the tail, so it must be a template accepting both
/// (every lux activation is). `out` may alias an input exactly (in-place).
template <class T, class F, class... In>
void transform(index_t n, T* out, F&& f, const In*... in) {
  constexpr index_t W = width<T>;
  index_t i = 0;
  for (; i + W <= n; i += W) {
    const auto r = f(batch<T>::load_unaligned(in + i)...);
    r.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = f(in[i]...);
}

/// Sum of x[0..n) with W independent accumulators (reassociated; error O(n/W · eps)).
template <class T>
T sum(const T* x, index_t n) {
  constexpr index_t W = width<T>;
  batch<T> acc0(T(0)), acc1(T(0));
  index_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    acc0 += batch<T>::load_unaligned(x + i);
    acc1 += batch<T>::load_unaligned(x + i + W);
  }
  for (; i + W <= n; i += W) acc0 += batch<T>::load_unaligned(x + i);
  T s = simd::reduce_add(acc0 + acc1);
  for (; i < n; ++i) s += x[i];
  return s;
}

}  // namespace simd
LUX_NAMESPACE_END
