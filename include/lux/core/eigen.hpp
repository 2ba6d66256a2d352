// luxcpp — zero-copy interop with Eigen.
//
//   lux::view(eigen_matrix)  → TensorView<T, 2> (column-major plain matrices) or
//                              StridedView<T, 2> (maps, blocks, refs with any strides)
//   lux::view(eigen_vector)  → TensorView<T, 1>
//   lux::as_eigen(view)      → Eigen::Map of a 1-D (column vector) or 2-D view, sharing memory
// Row-major Eigen objects are rejected at compile time: luxcpp is column-major.
#pragma once

// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 intrinsics wherever Eigen's
// ptranspose (used by the GEMM kernels) is inlined (GCC PR 105593, a false positive, fixed in
// GCC 13; see lux/core/simd.hpp). Functions keep the diagnostic state of their definition, so
// silencing the warnings around the first include of Eigen covers every later use: luxcpp
// headers include Eigen only through this header (include it before any Eigen header of yours).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <type_traits>

#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
template <class Derived>
inline constexpr bool eigen_column_major =
    !(Derived::IsRowMajor) || Derived::ColsAtCompileTime == 1;
}

/// A contiguous rank-2 view of a plain column-major Eigen matrix (or rank-1 of a vector).
template <class Derived>
auto view(Eigen::PlainObjectBase<Derived>& m) {
  static_assert(detail::eigen_column_major<Derived>,
                "lux::view: Eigen matrix must be column-major (luxcpp is column-major)");
  using T = typename Derived::Scalar;
  if constexpr (Derived::ColsAtCompileTime == 1)
    return TensorView<T, 1>(m.data(), shape_t<1>{m.rows()});
  else
    return TensorView<T, 2>(m.data(), shape_t<2>{m.rows(), m.cols()});
}
template <class Derived>
auto view(const Eigen::PlainObjectBase<Derived>& m) {
  static_assert(detail::eigen_column_major<Derived>,
                "lux::view: Eigen matrix must be column-major (luxcpp is column-major)");
  using T = const typename Derived::Scalar;
  if constexpr (Derived::ColsAtCompileTime == 1)
    return TensorView<T, 1>(m.data(), shape_t<1>{m.rows()});
  else
    return TensorView<T, 2>(m.data(), shape_t<2>{m.rows(), m.cols()});
}
/// A strided rank-2 view of any direct-access Eigen expression (Map, Block, Ref).
template <class Derived>
requires(!std::is_base_of_v<Eigen::PlainObjectBase<Derived>, Derived> &&
         static_cast<bool>(Eigen::internal::traits<Derived>::Flags &
                           Eigen::DirectAccessBit)) auto view(Eigen::DenseBase<Derived>& m) {
  static_assert(detail::eigen_column_major<Derived>,
                "lux::view: Eigen expression must be column-major");
  using T = typename Derived::Scalar;
  auto& d = m.derived();
  return StridedView<T, 2>(d.data(), shape_t<2>{d.rows(), d.cols()},
                           shape_t<2>{d.innerStride(), d.outerStride()});
}

/// An Eigen::Map over a host view: a column vector for rank 1, a matrix for rank 2.
template <class T, std::size_t N, layout L>
auto as_eigen(const basic_view<T, N, cpu, L>& v) {
  static_assert(N == 1 || N == 2, "lux::as_eigen: only rank-1 and rank-2 views map to Eigen");
  using S = std::remove_const_t<T>;
  using Plain = std::conditional_t<N == 1, Eigen::Matrix<S, Eigen::Dynamic, 1>,
                                   Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>>;
  using MapT = std::conditional_t<std::is_const_v<T>, const Plain, Plain>;
  const index_t rows = v.size(0);
  const index_t cols = N == 2 ? v.size(1) : 1;
  if constexpr (L == layout::contiguous) {
    if constexpr (N == 1)
      return Eigen::Map<MapT>(v.data(), rows);
    else
      return Eigen::Map<MapT>(v.data(), rows, cols);
  } else {
    using Str = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
    const index_t outer = N == 2 ? v.strides()[N - 1] : rows * v.strides()[0];
    if constexpr (N == 1)
      return Eigen::Map<MapT, Eigen::Unaligned, Str>(v.data(), rows, Str(outer, v.strides()[0]));
    else
      return Eigen::Map<MapT, Eigen::Unaligned, Str>(v.data(), rows, cols,
                                                     Str(outer, v.strides()[0]));
  }
}
template <class T, std::size_t N, class D>
auto as_eigen(Tensor<T, N, D>& t) {
  return as_eigen(t.view());
}
template <class T, std::size_t N, class D>
auto as_eigen(const Tensor<T, N, D>& t) {
  return as_eigen(t.cview());
}

LUX_NAMESPACE_END
