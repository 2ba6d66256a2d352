// luxcpp — configuration macros shared by every header.
//
// Everything lives in `namespace lux { inline namespace v0 { ... } }` so that two
// copies of the library with different major versions can be linked into one
// program without ODR clashes. Use LUX_NAMESPACE_BEGIN / LUX_NAMESPACE_END.
#pragma once

#include <cstddef>
#include <cstdint>

#define LUXCPP_VERSION_MAJOR 0
#define LUXCPP_VERSION_MINOR 1
#define LUXCPP_VERSION_PATCH 0

#define LUX_NAMESPACE_BEGIN \
  namespace lux {           \
  inline namespace v0 {
#define LUX_NAMESPACE_END \
  }                       \
  }

// Functions that must run on host and device (activations, Philox) are marked
// LUX_HOST_DEVICE; outside nvcc the macro expands to nothing.
#if defined(__CUDACC__)
#define LUX_HOST_DEVICE __host__ __device__
#define LUX_DEVICE_COMPILE 1
#else
#define LUX_HOST_DEVICE
#define LUX_DEVICE_COMPILE 0
#endif

#if defined(_OPENMP)
#define LUX_HAS_OPENMP 1
#else
#define LUX_HAS_OPENMP 0
#endif

LUX_NAMESPACE_BEGIN
/// Signed index type used for every size, stride and index (Julia's Int).
using index_t = std::ptrdiff_t;
LUX_NAMESPACE_END
