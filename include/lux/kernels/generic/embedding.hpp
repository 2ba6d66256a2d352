// luxcpp — embedding lookup (a gather of weight columns) and its backward (a scatter-add): the
// generic (reference) implementation. Plain scalar loops over any element type T and any integer
// index type I. Indices are 0-based and were validated by lux/kernels/embedding.hpp.
#pragma once

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// y[:, j] = weight[:, idx[j]] for j < n; weight is (out, in) column-major.
template <class T, class I>
void embedding_lookup(generic_op, const T* weight, index_t out, const I* idx, index_t n, T* y) {
  LUX_TRACE_KERNEL("generic_op", "embedding_lookup");
  for (index_t j = 0; j < n; ++j) {
    const T* col = weight + static_cast<index_t>(idx[j]) * out;
    for (index_t f = 0; f < out; ++f) y[j * out + f] = col[f];
  }
}

/// dweight = 0 (out, in), then dweight[:, idx[j]] += dy[:, j] for j = 0, 1, …, n − 1 in order.
template <class T, class I>
void embedding_lookup_backward(generic_op, const T* dy, index_t out, const I* idx, index_t n,
                               T* dweight, index_t in) {
  LUX_TRACE_KERNEL("generic_op", "embedding_lookup_backward");
  for (index_t i = 0; i < out * in; ++i) dweight[i] = T(0);
  for (index_t j = 0; j < n; ++j) {
    T* col = dweight + static_cast<index_t>(idx[j]) * out;
    for (index_t f = 0; f < out; ++f) col[f] += dy[j * out + f];
  }
}

}  // namespace impl
LUX_NAMESPACE_END
