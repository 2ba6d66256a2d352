// luxcpp — the normalization kernels' argument and result types (see ../normalization.hpp):
// results with their saved state, gradients, lux::channel_dim, lux::running_variance,
// lux::leading_dims, LuxLib's default epsilon.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

// =================================================================================================
// Type aliases, results and options
// =================================================================================================

/// Element type of an array argument.
template <class X>
using norm_value_t = typename array_traits<std::remove_cvref_t<X>>::value_type;

/// An array argument or an absent one (lux::none).
template <class A>
concept optional_array = array<A> || is_absent_v<A>;

/// LuxLib's default ε = eps(T)^(5/7): float ≈ 1.1337e-5, double ≈ 6.590e-12.
template <class T>
T default_norm_epsilon() {
  using std::pow;
  return static_cast<T>(pow(std::numeric_limits<T>::epsilon(), T(5) / T(7)));
}

/// What a backward pass needs from its forward: per statistics group (layouts above).
template <class T>
struct normalization_saved {
  Tensor<T, 1> mean;     ///< μ used to normalize
  Tensor<T, 1> inv_std;  ///< 1/√(σ² + ε) used to normalize
  /// true: μ, σ² are statistics of x (gradients flow through them); false: running statistics.
  bool batch_statistics = true;
};

/// batchnorm / instancenorm: LuxLib's (y, (; running_mean, running_var)) plus the saved state.
/// running_mean/running_var are empty when the running statistics were lux::none.
template <class T, std::size_t N>
struct batchnorm_result {
  Tensor<T, N> y;
  Tensor<T, 1> running_mean;
  Tensor<T, 1> running_var;
  normalization_saved<T> saved;
};
template <class T, std::size_t N>
using instancenorm_result = batchnorm_result<T, N>;

/// groupnorm / layernorm: y plus the saved state.
template <class T, std::size_t N>
struct groupnorm_result {
  Tensor<T, N> y;
  normalization_saved<T> saved;
};
template <class T, std::size_t N>
using layernorm_result = groupnorm_result<T, N>;

/// Gradients of a normalization: dx like x, dscale/dbias like scale/bias (empty if absent).
template <class T, std::size_t N, std::size_t MS = 1, std::size_t MB = MS>
struct normalization_gradients {
  Tensor<T, N> dx;
  Tensor<T, MS> dscale;
  Tensor<T, MB> dbias;
};

/// The channel dimension of batchnorm, groupnorm and instancenorm, 0-based. −1 (the default) is
/// Lux's: the penultimate dimension N−2 (Julia's N−1). The batch is always the last dimension;
/// batchnorm allows any dimension (its statistics span all others), groupnorm and instancenorm
/// 0..N−2. channel_dim{0} is the channels-first order, i.e. channels-last memory (PyTorch's
/// channels_last, JAX's/inox's default (N, *, C)).
struct channel_dim {
  index_t index = -1;
};

/// How batchnorm and instancenorm fold the batch variance σ² into running_var: Lux and PyTorch
/// use the unbiased n/(n − 1)·σ²; JAX libraries (inox, Flax) the biased σ².
enum class running_variance { unbiased, biased };

/// The dimensions a layernorm normalizes over: the leading `count` ones (Julia's 1:count).
/// count = −1 (the default) means all but the last, LuxLib's default 1:N−1; count = N is the
/// whole array (Lux's LayerNorm default dims = Colon()).
struct leading_dims {
  index_t count = -1;
};

LUX_NAMESPACE_END
