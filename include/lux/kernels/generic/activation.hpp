// luxcpp — fast_activation and its backward pass: the generic (reference) implementation.
//
// Plain scalar loops over any element type the activation functor accepts (float, double,
// long double, user number types). This is the file to copy when porting or studying the
// kernel; the public entry points, argument checks and documentation live in
// lux/kernels/activation.hpp.
#pragma once

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// y[i] = f(x[i]) for i in [0, n). `y` may equal `x` (in place).
template <class T, class F>
void fast_activation(generic_op, const F& f, const T* x, T* y, index_t n) {
  LUX_TRACE_KERNEL("generic_op", "fast_activation");
  for (index_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

/// dx[i] = dy[i] · f'(arg[i]) for i in [0, n), where `arg` is what F's derivative takes: the
/// forward output y when F::grad == grad_from::output, the forward input x otherwise.
/// `dx` may equal `dy` (in place).
template <class T, class F>
void activation_backward(generic_op, const F& f, const T* dy, const T* arg, T* dx, index_t n) {
  LUX_TRACE_KERNEL("generic_op", "activation_backward");
  for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * f.derivative(arg[i]);
}

}  // namespace impl
LUX_NAMESPACE_END
