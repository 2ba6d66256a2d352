// luxcpp — fused_dense_bias_activation and its backward pass: the generic (reference)
// implementation.
//
//   forward    z = W x (+ b),  y = f(z)          W (M, K), x (K, N), b (M), y and z (M, N)
//   backward   dz = dy · f'(y or z),  db = Σ_j dz[:, j],  dW = dz xᵀ,  dx = Wᵀ dz
//
// Plain scalar loops over any element type (float, double, long double, a user number type);
// products are accumulated in the element type in natural order (k ascending). W, x and dy may
// be any views (contiguous or strided: they are read through operator()); the outputs are
// contiguous, column-major. The public entry points (lux/kernels/dense.hpp) check the shapes.
#pragma once

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

/// y = f(W x + b), column by column: y[:, j] is accumulated, then the bias is added and f
/// applied while the column is hot. `b == nullptr`: no bias. `z != nullptr`: the pre-activation
/// W x + b is also stored there (contiguous (M, N)), for activations whose derivative needs it.
template <class F, class WV, class XV, class T>
void fused_dense_forward(generic_op, const F& f, const WV& w, const XV& x, const T* b,
                         TensorView<T, 2> y, T* z) {
  LUX_TRACE_KERNEL("generic_op", "fused_dense_forward");
  const index_t M = w.size(0), K = w.size(1), N = x.size(1);
  for (index_t j = 0; j < N; ++j) {
    T* yj = y.data() + M * j;
    for (index_t i = 0; i < M; ++i) yj[i] = T(0);
    for (index_t k = 0; k < K; ++k) {
      const T xkj = x(k, j);
      for (index_t i = 0; i < M; ++i) yj[i] += w(i, k) * xkj;
    }
    for (index_t i = 0; i < M; ++i) {
      const T zi = b != nullptr ? T(yj[i] + b[i]) : yj[i];
      if (z != nullptr) z[i + M * j] = zi;
      yj[i] = f(zi);
    }
  }
}

/// The gradients of y = f(W x + b) for the cotangent dy:
///   dz = dy · f'(a),  a = arg[i + M j] (the forward output y when F's derivative is taken from
///                     the output, the pre-activation z otherwise; unused for identity)
///   db[i] = Σ_j dz[i, j]  (skipped when db == nullptr),  dW = dz xᵀ,  dx = Wᵀ dz.
template <class F, class DYV, class WV, class XV, class T>
void fused_dense_backward(generic_op, const F& f, const DYV& dy, const WV& w, const XV& x,
                          const T* arg, TensorView<T, 2> dw, TensorView<T, 2> dx, T* db) {
  LUX_TRACE_KERNEL("generic_op", "fused_dense_backward");
  const index_t M = w.size(0), K = w.size(1), N = x.size(1);

  auto dz = Tensor<T, 2>::uninitialized(shape_t<2>{M, N});
  for (index_t j = 0; j < N; ++j)
    for (index_t i = 0; i < M; ++i) {
      if constexpr (activation_traits<F>::is_identity)
        dz(i, j) = dy(i, j);
      else
        dz(i, j) = dy(i, j) * f.derivative(arg[i + M * j]);
    }

  if (db != nullptr)
    for (index_t i = 0; i < M; ++i) {
      T s = T(0);
      for (index_t j = 0; j < N; ++j) s += dz(i, j);
      db[i] = s;
    }

  // dW[i, k] = Σ_j dz[i, j] x[k, j]
  for (index_t k = 0; k < K; ++k)
    for (index_t i = 0; i < M; ++i) dw(i, k) = T(0);
  for (index_t j = 0; j < N; ++j)
    for (index_t k = 0; k < K; ++k) {
      const T xkj = x(k, j);
      for (index_t i = 0; i < M; ++i) dw(i, k) += dz(i, j) * xkj;
    }

  // dx[k, j] = Σ_i W[i, k] dz[i, j]
  for (index_t j = 0; j < N; ++j)
    for (index_t k = 0; k < K; ++k) {
      T s = T(0);
      for (index_t i = 0; i < M; ++i) s += w(i, k) * dz(i, j);
      dx(k, j) = s;
    }
}

}  // namespace impl
LUX_NAMESPACE_END
