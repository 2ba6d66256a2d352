// luxcpp — CUDA device memory for lux::Tensor, and host/device transfers.
//
// Include this header (and link luxcpp::cuda) to use Tensor<T, N, lux::cuda>.
// It needs only the CUDA runtime API, so it compiles with any host compiler as well as
// with nvcc. Every CUDA call is checked; a failure throws lux::cuda_error naming the call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <limits>
#include <type_traits>

#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw cuda_error(detail::concat(what, ": ", cudaGetErrorName(status), " (",
                                    cudaGetErrorString(status), ")"));
}
}  // namespace detail

template <>
struct device_allocator<cuda> {
  template <class T>
  static T* allocate(index_t n, bool initialize, const char* op = "Tensor") {
    static_assert(std::is_trivially_copyable_v<T>,
                  "lux::Tensor<T, N, cuda>: T must be trivially copyable");
    if (n == 0) return nullptr;
    require<shape_error>(n > 0 && static_cast<std::size_t>(n) <=
                                      std::numeric_limits<std::size_t>::max() / 4 / sizeof(T),
                         op, ": ", n, " elements of ", sizeof(T),
                         " bytes exceed the address space");
    void* p = nullptr;
    const auto bytes = static_cast<std::size_t>(n) * sizeof(T);
    detail::cuda_check(cudaMalloc(&p, bytes), "cudaMalloc");
    if (initialize) {
      const auto st = cudaMemset(p, 0, bytes);
      if (st != cudaSuccess) {
        cudaFree(p);
        detail::cuda_check(st, "cudaMemset");
      }
    }
    return static_cast<T*>(p);
  }
  template <class T>
  static void deallocate(T* p, index_t) noexcept {
    if (p) cudaFree(p);
  }
  template <class T>
  static void copy(T* dst, const T* src, index_t n) {
    if (n > 0)
      detail::cuda_check(
          cudaMemcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice),
          "cudaMemcpy (device to device)");
  }
};

namespace detail {
template <class To, class From>
constexpr cudaMemcpyKind copy_kind() {
  if constexpr (std::is_same_v<From, cpu>)
    return std::is_same_v<To, cpu> ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice;
  else
    return std::is_same_v<To, cpu> ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}
}  // namespace detail

/// Copies a contiguous tensor or view to device `To` (lux::cpu or lux::cuda).
template <class To, class T, std::size_t N, class From>
requires(is_device_v<To> && !(std::is_same_v<To, cpu> && std::is_same_v<From, cpu>))
    Tensor<std::remove_cv_t<T>, N, To> to(const TensorView<T, N, From>& src) {
  auto out = Tensor<std::remove_cv_t<T>, N, To>::uninitialized(src.shape());
  if (src.numel() > 0)
    detail::cuda_check(
        cudaMemcpy(out.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(T),
                   detail::copy_kind<To, From>()),
        "lux::to: cudaMemcpy");
  return out;
}
template <class To, class T, std::size_t N, class From>
requires(is_device_v<To> &&
         !(std::is_same_v<To, cpu> &&
           std::is_same_v<From, cpu>)) Tensor<T, N, To> to(const Tensor<T, N, From>& src) {
  return to<To>(src.cview());
}

LUX_NAMESPACE_END
