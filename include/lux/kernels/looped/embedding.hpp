// luxcpp — embedding lookup and its backward: the looped (CPU) implementation for float and
// double.
//
// Forward: OpenMP over the looked-up columns, each a memcpy of `out` elements.
// Backward: deterministic scatter-add without atomics or per-thread buffers. The positions j are
// bucketed by their index (a counting sort that keeps them in increasing order), then OpenMP runs
// over the weight columns: column k is owned by one thread, which zeroes it and adds dy[:, j] for
// the j in bucket k in increasing order. Every element therefore sums the same terms in the same
// order as the generic kernel: bit-identical results, independent of the thread count. Scratch:
// two index arrays (in + 1 and n entries), allocated once per call.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/kernels/generic/embedding.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

template <class T, class I>
requires(std::is_same_v<T, float> ||
         std::is_same_v<T, double>) void embedding_lookup(looped_op, const T* weight, index_t out,
                                                          const I* idx, index_t n, T* y) {
  LUX_TRACE_KERNEL("looped_op", "embedding_lookup");
  LUX_DISPATCH("embedding_lookup", (T, I), weight, out, idx, n, y);
  if (out == 0) return;
  parallel_for(
      n,
      [&](index_t j) {
        std::memcpy(y + j * out, weight + static_cast<index_t>(idx[j]) * out,
                    static_cast<std::size_t>(out) * sizeof(T));
      },
      n * out);
}

template <class T, class I>
requires(std::is_same_v<T, float> || std::is_same_v<T, double>) void embedding_lookup_backward(
    looped_op, const T* dy, index_t out, const I* idx, index_t n, T* dweight, index_t in) {
  LUX_TRACE_KERNEL("looped_op", "embedding_lookup_backward");
  LUX_DISPATCH("embedding_lookup_backward", (T, I), dy, out, idx, n, dweight, in);
  // Counting sort of the positions by index: bucket k is order[start[k] .. start[k + 1]).
  std::vector<index_t> start(static_cast<std::size_t>(in) + 1, 0);
  for (index_t j = 0; j < n; ++j) ++start[static_cast<std::size_t>(idx[j]) + 1];
  for (index_t k = 0; k < in; ++k)
    start[static_cast<std::size_t>(k + 1)] += start[static_cast<std::size_t>(k)];
  std::vector<index_t> order(static_cast<std::size_t>(n));
  {
    std::vector<index_t> fill(start.begin(), start.end() - 1);
    for (index_t j = 0; j < n; ++j)
      order[static_cast<std::size_t>(fill[static_cast<std::size_t>(idx[j])]++)] = j;
  }
  parallel_for(
      in,
      [&](index_t k) {
        T* __restrict col = dweight + k * out;
        std::fill(col, col + out, T(0));
        for (index_t b = start[static_cast<std::size_t>(k)];
             b < start[static_cast<std::size_t>(k + 1)]; ++b) {
          const T* __restrict g = dy + order[static_cast<std::size_t>(b)] * out;
          for (index_t f = 0; f < out; ++f) col[f] += g[f];
        }
      },
      (n + in) * out);
}

}  // namespace impl
LUX_NAMESPACE_END
