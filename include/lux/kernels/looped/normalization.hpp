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
// 6-28x the generic mode.
//
// Files: normalization/rows.hpp (loads, stores, row kernels, moments, threading helpers),
// normalization/blocks.hpp (contiguous groups), normalization/channels.hpp (per-channel groups
// and the per-sample path); this file dispatches among them.
#pragma once

#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/kernels/generic/normalization.hpp"
#include "lux/kernels/looped/normalization/blocks.hpp"
#include "lux/kernels/looped/normalization/channels.hpp"
#include "lux/kernels/looped/normalization/rows.hpp"

// GCC 12 -Wmaybe-uninitialized false positive (PR 105593): see normalization/rows.hpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

LUX_NAMESPACE_BEGIN
namespace impl {

// --- the looped overloads of the engine (see ../generic/normalization.hpp) ---------------------
template <norm_looped::simd_float T, class F, class Arch = xsimd::default_arch>
void normalization_forward(looped_op, const norm_layout& L, const T* x, T* y, norm_affine<T> aff,
                           const F& sigma, T epsilon, T* mean, T* var, T* inv_std) {
  LUX_TRACE_KERNEL("looped_op", "normalization_forward");
  LUX_DISPATCH("normalization_forward", (T, F), L, x, y, aff, sigma, epsilon, mean, var, inv_std);
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
  LUX_DISPATCH("normalization_apply", (T, F), L, x, y, aff, sigma, mean, inv_std);
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
  LUX_DISPATCH("normalization_backward", (T, F), L, dy, x, y, aff, sigma, mean, inv_std,
               batch_statistics, dx, affine_grads, dscale, dbias);
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
