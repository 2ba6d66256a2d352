// luxcpp — bias_activation and its backward pass: the looped (CPU) implementation.
//
// x is viewed as (inner, C, outer) (see the generic file). The flat index range is split into
// one contiguous chunk per thread; each chunk is walked in runs over which the bias is either a
// vector (inner == 1: the bias runs along the fastest dimension, as for a Dense layer's
// (out, batch) output, so a run is a stretch of consecutive channels) or one scalar (inner > 1:
// a run is part of one channel's slab). Runs are xsimd-vectorized. The backward pass computes dx
// and the bias gradient in the same pass over dy, each thread summing into its own row of a
// (threads × C) buffer that is reduced at the end (no atomics, deterministic for a fixed thread
// count).
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/bias_activation.hpp"
#include "lux/kernels/looped/activation.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// y[i, c, o] = f(x[i, c, o] + b[c]); `y` may equal `x`.
template <class T, class F, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void bias_activation(looped_op, const F& f, const T* x, const T* b, T* y, index_t inner, index_t C,
                     index_t outer) {
  LUX_TRACE_KERNEL("looped_op", "bias_activation");
  LUX_DISPATCH("bias_activation", (T, F), f, x, b, y, inner, C, outer);
  const index_t n = inner * C * outer;
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    index_t k = lo;
    while (k < hi) {
      if (inner == 1) {  // bias along the fastest dimension: a vector of biases per run
        const index_t c = k % C;
        const index_t run = std::min(hi - k, C - c);
        simd::transform(
            run, y + k, [&f](auto xv, auto bv) { return f(xv + bv); }, x + k, b + c);
        k += run;
      } else {  // one bias value per run
        const index_t off = k % inner;
        const index_t c = (k / inner) % C;
        const index_t run = std::min(hi - k, inner - off);
        const T bc = b[c];
        simd::transform(
            run, y + k, [&f, bc](auto xv) { return f(xv + decltype(xv)(bc)); }, x + k);
        k += run;
      }
    }
  });
}

/// dx = dy · f'(y or x + b) and dbias[c] = Σ dx[·, c, ·] in one pass (see the generic overload
/// for the exact contract; b may be nullptr when the derivative is taken from the output or there
/// is no bias to add).
template <class T, class F, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void bias_activation_backward(looped_op, const F& f, const T* dy, const T* arg, const T* b, T* dx,
                              T* dbias, index_t inner, index_t C, index_t outer) {
  LUX_TRACE_KERNEL("looped_op", "bias_activation_backward");
  LUX_DISPATCH("bias_activation_backward", (T, F), f, dy, arg, b, dx, dbias, inner, C, outer);
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  constexpr bool from_output = F::grad == grad_from::output;
  const bool add_bias = !from_output && b != nullptr;
  const index_t n = inner * C * outer;

  // One piece per thread, 64-element aligned; partial[p * C + c] is piece p's sum for channel c.
  const index_t threads = n >= (index_t{1} << 15) ? max_threads() : 1;
  index_t chunk = (n + threads - 1) / std::max<index_t>(threads, 1);
  chunk = std::max<index_t>((chunk + 63) / 64 * 64, 64);
  const index_t pieces = std::max<index_t>((n + chunk - 1) / chunk, 1);
  std::vector<T> partial(static_cast<std::size_t>(pieces * C), T(0));

  // g = dy · f'(a) for one scalar or batch; a = arg (+ bias).
  auto grad = [&f](auto d, auto a) { return d * f.derivative(a); };

  parallel_for(
      pieces,
      [&](index_t p) {
        const index_t lo = p * chunk, hi = std::min(n, lo + chunk);
        T* acc = partial.data() + p * C;
        index_t k = lo;
        while (k < hi) {
          if (inner == 1) {  // consecutive channels: accumulate vectors into acc[c ..]
            const index_t c = k % C;
            const index_t run = std::min(hi - k, C - c);
            index_t j = 0;
            for (; j + W <= run; j += W) {
              batch a = batch::load_unaligned(arg + k + j);
              if (add_bias) a += batch::load_unaligned(b + c + j);
              const batch g = grad(batch::load_unaligned(dy + k + j), a);
              g.store_unaligned(dx + k + j);
              (batch::load_unaligned(acc + c + j) + g).store_unaligned(acc + c + j);
            }
            for (; j < run; ++j) {
              const T a = add_bias ? arg[k + j] + b[c + j] : arg[k + j];
              const T g = grad(dy[k + j], a);
              dx[k + j] = g;
              acc[c + j] += g;
            }
            k += run;
          } else {  // one channel: a vector sum reduced once per run
            const index_t off = k % inner;
            const index_t c = (k / inner) % C;
            const index_t run = std::min(hi - k, inner - off);
            const T bc = add_bias ? b[c] : T(0);
            batch s(T(0));
            index_t j = 0;
            for (; j + W <= run; j += W) {
              batch a = batch::load_unaligned(arg + k + j);
              if (add_bias) a += batch(bc);
              const batch g = grad(batch::load_unaligned(dy + k + j), a);
              g.store_unaligned(dx + k + j);
              s += g;
            }
            T tail = T(0);
            for (; j < run; ++j) {
              const T a = add_bias ? arg[k + j] + bc : arg[k + j];
              const T g = grad(dy[k + j], a);
              dx[k + j] = g;
              tail += g;
            }
            acc[c] += simd::reduce_add(s) + tail;
            k += run;
          }
        }
      },
      n, 0);

  for (index_t c = 0; c < C; ++c) {
    T s = T(0);
    for (index_t p = 0; p < pieces; ++p) s += partial[static_cast<std::size_t>(p * C + c)];
    dbias[c] = s;
  }
}

}  // namespace impl
LUX_NAMESPACE_END
