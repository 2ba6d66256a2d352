// luxcpp — device tags.
//
// A device is an empty tag type carried in every Tensor/TensorView type, so that the
// operation mode (generic / looped / gpu) is chosen at compile time and mixing host and
// device memory in one call is a compile error, never a segfault.
#pragma once

#include <type_traits>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN

/// Host memory (64-byte aligned buffers).
struct cpu {
  static constexpr const char* name = "cpu";
};
/// NVIDIA GPU memory (cudaMalloc). Tensors on it need <lux/core/cuda.hpp> and luxcpp::cuda.
struct cuda {
  static constexpr const char* name = "cuda";
};

template <class D>
inline constexpr bool is_device_v = std::is_same_v<D, cpu> || std::is_same_v<D, cuda>;

template <class D>
concept device = is_device_v<D>;

namespace detail {
template <class...>
inline constexpr bool always_false = false;
}  // namespace detail

LUX_NAMESPACE_END
