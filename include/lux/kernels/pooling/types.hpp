// luxcpp — the pooling kernels' argument and result types (see ../pooling.hpp): lux::pool_dims
// (NNlib's PoolDims), maxpool_saved, maxpool_result, pooling_gradients.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "lux/core/config.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Types
// =================================================================================================

/// NNlib's PoolDims for S spatial dimensions: window, stride (default = window), padding
/// (lo, hi per dimension, NNlib's 2S order), dilation (default 1). Build it with the `with_*`
/// functions, which return modified copies:
///   lux::pool_dims<2>({3, 3}).with_stride(2).with_pad_lo_hi({0, 1, 0, 1})
template <std::size_t S>
struct pool_dims {
  static_assert(S >= 1 && S <= 3, "lux::pool_dims: pooling has 1, 2 or 3 spatial dimensions");

  shape_t<S> window{};
  shape_t<S> stride{};
  std::array<index_t, 2 * S> pad{};  ///< (lo₁, hi₁, lo₂, hi₂, …)
  shape_t<S> dilation{};

  /// Window k per dimension; stride = k, no padding, dilation 1.
  constexpr explicit pool_dims(const shape_t<S>& k) noexcept : window(k), stride(k) {
    dilation.fill(1);
  }
  /// The same window k along every spatial dimension.
  constexpr explicit pool_dims(index_t k) noexcept {
    window.fill(k);
    stride.fill(k);
    dilation.fill(1);
  }

  constexpr pool_dims with_stride(index_t s) const noexcept {
    pool_dims p = *this;
    p.stride.fill(s);
    return p;
  }
  constexpr pool_dims with_stride(const shape_t<S>& s) const noexcept {
    pool_dims p = *this;
    p.stride = s;
    return p;
  }
  /// The same padding on both sides of every spatial dimension.
  constexpr pool_dims with_pad(index_t v) const noexcept {
    pool_dims p = *this;
    p.pad.fill(v);
    return p;
  }
  /// Symmetric padding per dimension: lo = hi = v[a].
  constexpr pool_dims with_pad(const shape_t<S>& v) const noexcept {
    pool_dims p = *this;
    for (std::size_t a = 0; a < S; ++a) p.pad[2 * a] = p.pad[2 * a + 1] = v[a];
    return p;
  }
  /// Asymmetric padding (lo₁, hi₁, lo₂, hi₂, …).
  constexpr pool_dims with_pad_lo_hi(const std::array<index_t, 2 * S>& v) const noexcept {
    pool_dims p = *this;
    p.pad = v;
    return p;
  }
  constexpr pool_dims with_dilation(index_t d) const noexcept {
    pool_dims p = *this;
    p.dilation.fill(d);
    return p;
  }
  constexpr pool_dims with_dilation(const shape_t<S>& d) const noexcept {
    pool_dims p = *this;
    p.dilation = d;
    return p;
  }

  constexpr index_t pad_lo(std::size_t a) const noexcept { return pad[2 * a]; }
  constexpr index_t pad_hi(std::size_t a) const noexcept { return pad[2 * a + 1]; }
  constexpr bool operator==(const pool_dims&) const noexcept = default;
};

/// What maxpool_backward(dy, saved) needs: the argmax of every output (int32 index into the
/// output's spatial plane of x, −1 for a window of padding only) and x's shape.
template <std::size_t N>
struct maxpool_saved {
  Tensor<std::int32_t, N> argmax;
  shape_t<N> x_shape{};
};

/// The result of maxpool_with_argmax.
template <class T, std::size_t N>
struct maxpool_result {
  Tensor<T, N> y;
  maxpool_saved<N> saved;
};

/// The gradient of every pooling backward pass.
template <class T, std::size_t N>
struct pooling_gradients {
  Tensor<T, N> dx;
};

LUX_NAMESPACE_END
