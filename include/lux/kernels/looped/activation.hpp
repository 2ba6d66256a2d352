// luxcpp — fast_activation and its backward pass: the looped (CPU) implementation.
//
// xsimd-vectorized (lux::simd::transform calls the functor on batches, then on scalars for the
// tail) and split over OpenMP threads in contiguous, 64-element-aligned chunks
// (lux::parallel_chunks). float and double only; other element types fall back to the generic
// overloads by overload resolution (looped_op derives from generic_op).
//
// The template parameter Arch (defaulted to the xsimd architecture of the translation unit)
// makes instantiations from translation units compiled with different -m flags distinct
// symbols, so they cannot be merged by the linker (ODR).
#pragma once

#include <type_traits>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/activation.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

namespace elementwise {
/// The element types the looped elementwise kernels are written for.
template <class T>
inline constexpr bool is_simd_real_v = std::is_same_v<T, float> || std::is_same_v<T, double>;
}  // namespace elementwise

/// y[i] = f(x[i]); `y` may equal `x`.
template <class T, class F, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void fast_activation(looped_op, const F& f, const T* x, T* y, index_t n) {
  LUX_TRACE_KERNEL("looped_op", "fast_activation");
  LUX_DISPATCH("fast_activation", (T, F), f, x, y, n);
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    simd::transform(
        hi - lo, y + lo, [&f](auto v) { return f(v); }, x + lo);
  });
}

/// dx[i] = dy[i] · f'(arg[i]) (arg = y or x, see the generic overload); `dx` may equal `dy`.
template <class T, class F, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void activation_backward(looped_op, const F& f, const T* dy, const T* arg, T* dx, index_t n) {
  LUX_TRACE_KERNEL("looped_op", "activation_backward");
  LUX_DISPATCH("activation_backward", (T, F), f, dy, arg, dx, n);
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    simd::transform(
        hi - lo, dx + lo, [&f](auto d, auto a) { return d * f.derivative(a); }, dy + lo, arg + lo);
  });
}

}  // namespace impl
LUX_NAMESPACE_END
