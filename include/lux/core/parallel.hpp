// luxcpp — threading helpers for the looped (CPU) kernels.
//
// OpenMP when the translation unit is compiled with it (luxcpp::luxcpp adds OpenMP when
// CMake finds it), serial otherwise. The callables must not throw: argument checks happen
// in the public kernel headers before any parallel region starts.
#pragma once

#include <algorithm>

#include "lux/core/config.hpp"

#if LUX_HAS_OPENMP
#include <omp.h>
#endif

LUX_NAMESPACE_BEGIN

/// Number of threads a parallel region would use.
inline int max_threads() noexcept {
#if LUX_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Calls f(i) for i in [0, n), statically scheduled over threads. Runs serially when the
/// total `work` (elements touched, an estimate) is below `min_parallel_work`, where thread
/// start-up would cost more than it saves.
template <class F>
void parallel_for(index_t n, F&& f, index_t work = -1,
                  index_t min_parallel_work = index_t{1} << 15) {
  if (work < 0) work = n;
#if LUX_HAS_OPENMP
  if (n > 1 && work >= min_parallel_work && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i) f(i);
    return;
  }
#else
  (void)min_parallel_work;
#endif
  for (index_t i = 0; i < n; ++i) f(i);
}

/// Splits [0, n) into one contiguous chunk per thread (chunks aligned to `align`
/// elements, so SIMD loops see aligned starts) and calls f(begin, end) for each.
template <class F>
void parallel_chunks(index_t n, F&& f, index_t align = 64,
                     index_t min_parallel_work = index_t{1} << 15) {
  const int threads = n >= min_parallel_work ? max_threads() : 1;
  if (threads <= 1) {
    if (n > 0) f(index_t{0}, n);
    return;
  }
  index_t chunk = (n + threads - 1) / threads;
  chunk = (chunk + align - 1) / align * align;
  const index_t pieces = (n + chunk - 1) / chunk;
  parallel_for(
      pieces,
      [&](index_t p) {
        const index_t lo = p * chunk;
        f(lo, std::min(n, lo + chunk));
      },
      n, 0);
}

LUX_NAMESPACE_END
