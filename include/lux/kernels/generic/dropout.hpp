// luxcpp — dropout and alpha dropout: the generic (reference) implementation.
//
// Plain scalar loops over any element type. The random numbers are a pure function of
// (rng key, rng counter, element index): element i of a mask uses u = dropout_uniform<T>(rng, i),
// so every mode (and, later, the GPU) draws the same mask for the same rng. The public entry
// points, argument checks and documentation are in lux/kernels/dropout.hpp.
#pragma once

#include <cstdint>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/random.hpp"
#include "lux/core/shape.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// The uniform [0, 1) number of element i: rng.uniform_at<float>(i) for float (24 random bits,
/// word i of the draw), rng.uniform_at<double>(i) for double (53 bits, words 2i and 2i+1), and the
/// double one converted to T for any other element type (long double, user types).
template <class T>
T dropout_uniform(const rng& r, std::uint64_t i) {
  if constexpr (std::is_same_v<T, float>)
    return r.uniform_at<float>(i);
  else
    return static_cast<T>(r.uniform_at<double>(i));
}

/// The threshold t of "keep element i iff u_i > t": T(p), except t = -1 for p == 0 so that
/// p = 0 keeps every element even where u_i = 0 exactly (LuxLib's u > p would drop those, with
/// probability 2^-24 per float element). p == 1 gives t = 1 > every u: nothing is kept.
template <class T>
T dropout_threshold(double p) {
  return p == 0 ? T(-1) : static_cast<T>(p);
}

/// Fresh full-shape mask, applied in the same pass:
///   mask[i] = u_i > threshold ? invp : 0,  y[i] = x[i] · mask[i],  i in [0, n).
/// (A select, not (u > p) · invp, so that p = 1 with invp = ∞ gives 0, not 0 · ∞ = NaN.)
template <class T>
void dropout(generic_op, const rng& r, T threshold, T invp, const T* x, T* y, T* mask, index_t n) {
  LUX_TRACE_KERNEL("generic_op", "dropout");
  for (index_t i = 0; i < n; ++i) {
    const T u = dropout_uniform<T>(r, static_cast<std::uint64_t>(i));
    const T m = u > threshold ? invp : T(0);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

/// mask[i] = u_i > threshold ? invp : 0 for i in [0, n) (the mask alone, for broadcast masks).
template <class T>
void dropout_mask(generic_op, const rng& r, T threshold, T invp, T* mask, index_t n) {
  LUX_TRACE_KERNEL("generic_op", "dropout_mask");
  for (index_t i = 0; i < n; ++i)
    mask[i] = dropout_uniform<T>(r, static_cast<std::uint64_t>(i)) > threshold ? invp : T(0);
}

/// y = x .* m with m broadcast: m has shape ms, where ms[d] is xs[d] or 1 (constant along d).
/// Used for the forward pass with a broadcast or given mask and for the backward dx = dy .* mask.
template <class T, std::size_t N>
void broadcast_multiply(generic_op, const T* x, const shape_t<N>& xs, const T* m,
                        const shape_t<N>& ms, T* y) {
  LUX_TRACE_KERNEL("generic_op", "broadcast_multiply");
  // Column-major strides of m, 0 along its broadcast (size-1) dimensions.
  shape_t<N> mstride{};
  index_t acc = 1;
  for (std::size_t d = 0; d < N; ++d) {
    mstride[d] = ms[d] == 1 ? 0 : acc;
    acc *= ms[d];
  }
  index_t n = 1;
  for (std::size_t d = 0; d < N; ++d) n *= xs[d];
  // Walk x in column-major order; idx is the multi-index of x[i], moff the offset into m.
  shape_t<N> idx{};
  index_t moff = 0;
  for (index_t i = 0; i < n; ++i) {
    y[i] = x[i] * m[moff];
    for (std::size_t d = 0; d < N; ++d) {
      if (++idx[d] < xs[d]) {
        moff += mstride[d];
        break;
      }
      moff -= (xs[d] - 1) * mstride[d];
      idx[d] = 0;
    }
  }
}

/// Alpha dropout, full-shape u: y[i] = u_i > threshold ? A x[i] + B : A α + B.
/// (LuxLib: ifelse(u > p, x, α) · A + B.)
template <class T>
void alpha_dropout(generic_op, const rng& r, T threshold, T alpha, T A, T B, const T* x, T* y,
                   index_t n) {
  LUX_TRACE_KERNEL("generic_op", "alpha_dropout");
  const T dropped = A * alpha + B;
  for (index_t i = 0; i < n; ++i) {
    const T u = dropout_uniform<T>(r, static_cast<std::uint64_t>(i));
    y[i] = u > threshold ? A * x[i] + B : dropped;
  }
}

/// Backward of alpha dropout with the mask regenerated from the same rng:
/// dx[i] = u_i > threshold ? A dy[i] : 0. `dx` may equal `dy`.
template <class T>
void alpha_dropout_backward(generic_op, const rng& r, T threshold, T A, const T* dy, T* dx,
                            index_t n) {
  LUX_TRACE_KERNEL("generic_op", "alpha_dropout_backward");
  for (index_t i = 0; i < n; ++i) {
    const T u = dropout_uniform<T>(r, static_cast<std::uint64_t>(i));
    dx[i] = u > threshold ? A * dy[i] : T(0);
  }
}

}  // namespace impl
LUX_NAMESPACE_END
