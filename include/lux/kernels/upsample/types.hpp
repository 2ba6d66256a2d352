// luxcpp — the upsampling kernels' argument and result types (see ../upsample.hpp):
// lux::upsample_size (an explicit output size) and upsample_gradients.
#pragma once

#include <cstddef>

#include "lux/core/config.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Types
// =================================================================================================

/// An explicit output size for the spatial dimensions (NNlib's `size` keyword):
///   lux::upsample_nearest(x, lux::upsample_size<2>({64, 48}))   (W first).
template <std::size_t S>
struct upsample_size {
  shape_t<S> value{};
  constexpr explicit upsample_size(const shape_t<S>& v) noexcept : value(v) {}
};
template <std::size_t S>
upsample_size(const shape_t<S>&) -> upsample_size<S>;

/// The gradient of every upsampling / pixel-shuffle backward pass.
template <class T, std::size_t N>
struct upsample_gradients {
  Tensor<T, N> dx;
};

LUX_NAMESPACE_END
