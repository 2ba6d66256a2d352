// luxcpp — batched_matmul and its backward pass: the generic (reference) implementation.
//
//   c[:, :, l] = op_a(a[:, :, la]) · op_b(b[:, :, lb]),   la = (size(a, 3) == 1 ? 0 : l), same lb
//
// with op ∈ {none, transpose, adjoint} applied to every slice (adjoint = conjugate transpose; for
// real element types the same as transpose). Backward, for the cotangent Δ = dc and
// a' = op_a(a), b' = op_b(b):
//   ∂a' = Δ · b'ᴴ,  ∂b' = a'ᴴ · Δ   (NNlib's rrule), mapped back through op (∂a = ∂a', ∂a'ᵀ or
//   ∂a'ᴴ) and summed over the batch for an operand of batch size 1 (broadcast).
// Plain scalar loops over any element type (std::complex too); every operand is read through
// operator()(i, j, l), so strided views work; the results are contiguous. Rank-2 operands arrive
// here already viewed as (rows, cols, 1); the public header (lux/kernels/batched_matmul.hpp)
// checks the shapes.
#pragma once

#include <complex>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// What batched_matmul applies to each slice of an operand (NNlib's batched_transpose /
/// batched_adjoint): nothing, the transpose, or the conjugate transpose (= transpose for real
/// element types).
enum class op { none, transpose, adjoint };

/// "none", "transpose" or "adjoint" (for messages).
constexpr const char* op_name(op o) noexcept {
  return o == op::none ? "none" : o == op::transpose ? "transpose" : "adjoint";
}

namespace impl {
namespace bmm_generic {
template <class T>
struct is_std_complex : std::false_type {};
template <class T>
struct is_std_complex<std::complex<T>> : std::true_type {};

/// conj(v) for std::complex, v itself for every other (real) type.
template <class T>
T conj_value(const T& v) {
  if constexpr (is_std_complex<T>::value)
    return std::conj(v);
  else
    return v;
}

/// op(s)[i, p] where s is slice l of the 3-d view v.
template <class V>
auto op_at(const V& v, op o, index_t i, index_t p, index_t l) {
  using T = typename V::value_type;
  if (o == op::none) return T(v(i, p, l));
  if (o == op::transpose) return T(v(p, i, l));
  return conj_value(T(v(p, i, l)));
}

/// dst[op⁻¹ position of (i, p), l] += g, with the conjugate for adjoint.
template <class T>
void scatter_add(TensorView<T, 3> dst, op o, index_t i, index_t p, index_t l, const T& g) {
  if (o == op::none)
    dst(i, p, l) += g;
  else if (o == op::transpose)
    dst(p, i, l) += g;
  else
    dst(p, i, l) += conj_value(g);
}
}  // namespace bmm_generic

/// c[:, :, l] = op_a(a[:, :, la]) · op_b(b[:, :, lb]); c is (m, n, L) and already shaped.
template <class AV, class BV, class T>
void batched_matmul_kernel(generic_op, const AV& a, op opa, const BV& b, op opb,
                           TensorView<T, 3> c) {
  LUX_TRACE_KERNEL("generic_op", "batched_matmul_kernel");
  using bmm_generic::op_at;
  const index_t m = c.size(0), n = c.size(1), L = c.size(2);
  const index_t kk = opa == op::none ? a.size(1) : a.size(0);
  const bool bcast_a = a.size(2) == 1, bcast_b = b.size(2) == 1;
  for (index_t l = 0; l < L; ++l) {
    const index_t la = bcast_a ? 0 : l, lb = bcast_b ? 0 : l;
    for (index_t j = 0; j < n; ++j)
      for (index_t i = 0; i < m; ++i) {
        T s = T(0);
        for (index_t p = 0; p < kk; ++p) s += op_at(a, opa, i, p, la) * op_at(b, opb, p, j, lb);
        c(i, j, l) = s;
      }
  }
}

/// da (shape of a) and db (shape of b) for the cotangent dc (m, n, L); both are overwritten.
template <class DCV, class AV, class BV, class T>
void batched_matmul_backward_kernel(generic_op, const DCV& dc, const AV& a, op opa, const BV& b,
                                    op opb, TensorView<T, 3> da, TensorView<T, 3> db) {
  LUX_TRACE_KERNEL("generic_op", "batched_matmul_backward_kernel");
  using bmm_generic::conj_value;
  using bmm_generic::op_at;
  using bmm_generic::scatter_add;
  const index_t m = dc.size(0), n = dc.size(1), L = dc.size(2);
  const index_t kk = opa == op::none ? a.size(1) : a.size(0);
  const bool bcast_a = a.size(2) == 1, bcast_b = b.size(2) == 1;
  for (T& v : da) v = T(0);
  for (T& v : db) v = T(0);
  for (index_t l = 0; l < L; ++l) {
    const index_t la = bcast_a ? 0 : l, lb = bcast_b ? 0 : l;
    // ∂a'[i, p] = Σ_j Δ[i, j] conj(b'[p, j])
    for (index_t p = 0; p < kk; ++p)
      for (index_t i = 0; i < m; ++i) {
        T s = T(0);
        for (index_t j = 0; j < n; ++j) s += T(dc(i, j, l)) * conj_value(op_at(b, opb, p, j, lb));
        scatter_add(da, opa, i, p, la, s);
      }
    // ∂b'[p, j] = Σ_i conj(a'[i, p]) Δ[i, j]
    for (index_t j = 0; j < n; ++j)
      for (index_t p = 0; p < kk; ++p) {
        T s = T(0);
        for (index_t i = 0; i < m; ++i) s += conj_value(op_at(a, opa, i, p, la)) * T(dc(i, j, l));
        scatter_add(db, opb, p, j, lb, s);
      }
  }
}

}  // namespace impl
LUX_NAMESPACE_END
