// luxcpp — bias_activation and its backward pass: the generic (reference) implementation.
//
// The public entry points (lux/kernels/bias_activation.hpp) view x as a 3-d array
// (inner, C, outer) in column-major order: C is the bias dimension (the penultimate one of x),
// inner the product of the sizes before it, outer the size after it (the batch). Plain scalar
// loops over any element type.
#pragma once

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// y[i, c, o] = f(x[i, c, o] + b[c]) over the (inner, C, outer) view. `y` may equal `x`.
template <class T, class F>
void bias_activation(generic_op, const F& f, const T* x, const T* b, T* y, index_t inner, index_t C,
                     index_t outer) {
  LUX_TRACE_KERNEL("generic_op", "bias_activation");
  for (index_t o = 0; o < outer; ++o)
    for (index_t c = 0; c < C; ++c) {
      const index_t base = inner * (c + C * o);
      for (index_t i = 0; i < inner; ++i) y[base + i] = f(x[base + i] + b[c]);
    }
}

/// One fused pass over dy:
///   dx[i, c, o] = dy[i, c, o] · f'(a),  a = arg[i, c, o]            when F::grad == output (arg =
///   y)
///                                       a = arg[i, c, o] + b[c]     otherwise (arg = x; the
///                                           pre-activation z is recomputed; b == nullptr: z = x)
///   dbias[c]    = Σ_{i, o} dx[i, c, o]                              (accumulated in T)
/// `dx` may equal `dy`.
template <class T, class F>
void bias_activation_backward(generic_op, const F& f, const T* dy, const T* arg, const T* b, T* dx,
                              T* dbias, index_t inner, index_t C, index_t outer) {
  LUX_TRACE_KERNEL("generic_op", "bias_activation_backward");
  constexpr bool from_output = F::grad == grad_from::output;
  for (index_t c = 0; c < C; ++c) dbias[c] = T(0);
  for (index_t o = 0; o < outer; ++o)
    for (index_t c = 0; c < C; ++c) {
      const index_t base = inner * (c + C * o);
      T sum = T(0);
      for (index_t i = 0; i < inner; ++i) {
        const T a = (from_output || b == nullptr) ? arg[base + i] : arg[base + i] + b[c];
        const T g = dy[base + i] * f.derivative(a);
        dx[base + i] = g;
        sum += g;
      }
      dbias[c] += sum;
    }
}

}  // namespace impl
LUX_NAMESPACE_END
