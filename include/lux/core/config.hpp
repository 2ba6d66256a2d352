// luxcpp — configuration macros shared by every header.
//
// Everything lives in `namespace lux { inline namespace v0 { inline namespace isa_<ISA> { ... } } }`
// (use LUX_NAMESPACE_BEGIN / LUX_NAMESPACE_END):
//   * v0: two copies of the library with different major versions link into one program;
//   * isa_<ISA>: the instruction set this translation unit is compiled for (isa_avx512, isa_avx2,
//     isa_sse2, isa_neon64, ...; lux::simd_isa_name() says which), as ATen's CPU_CAPABILITY and
//     Highway's HWY_NAMESPACE. Every lux function is an inline template whose machine code depends
//     on the -m flags (xsimd's batch width, Eigen's packet type, auto-vectorization); without this
//     namespace, a translation unit built with -mavx2 and one built with -mavx512bw emit the same
//     weak symbols with different code, the linker keeps one, and the AVX2 part of the program
//     may run AVX-512 instructions. With it, each keeps its own.
//     The price: lux's types are distinct types in translation units of different instruction
//     sets, so a function of yours taking a lux::Tensor, defined in an -mavx512 file and called
//     from a default-flags file, does not link (a loud error, never a silent wrong-ISA call); pass
//     raw pointers and sizes across such a boundary, or build everything with the same flags.
//     The name keys on the SIMD level xsimd and Eigen select from (AVX-512 F+BW+DQ+VL, AVX-512F,
//     AVX2 + FMA, AVX2, AVX, SSE4.2, SSE4.1, SSSE3, SSE3, SSE2; SVE, NEON); flags that change
//     neither (e.g. -mprefer-vector-width) are not told apart.
#pragma once

#include <cstddef>
#include <cstdint>

#define LUXCPP_VERSION_MAJOR 0
#define LUXCPP_VERSION_MINOR 1
#define LUXCPP_VERSION_PATCH 0

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define LUX_ISA_NAMESPACE isa_avx512
#define LUX_ISA_NAME "avx512"
#elif defined(__AVX512F__)
#define LUX_ISA_NAMESPACE isa_avx512f
#define LUX_ISA_NAME "avx512f"
#elif defined(__AVX2__) && defined(__FMA__)
#define LUX_ISA_NAMESPACE isa_avx2
#define LUX_ISA_NAME "avx2"
#elif defined(__AVX2__)
#define LUX_ISA_NAMESPACE isa_avx2_nofma
#define LUX_ISA_NAME "avx2_nofma"
#elif defined(__AVX__)
#define LUX_ISA_NAMESPACE isa_avx
#define LUX_ISA_NAME "avx"
#elif defined(__SSE4_2__)
#define LUX_ISA_NAMESPACE isa_sse4_2
#define LUX_ISA_NAME "sse4_2"
#elif defined(__SSE4_1__)
#define LUX_ISA_NAMESPACE isa_sse4_1
#define LUX_ISA_NAME "sse4_1"
#elif defined(__SSSE3__)
#define LUX_ISA_NAMESPACE isa_ssse3
#define LUX_ISA_NAME "ssse3"
#elif defined(__SSE3__)
#define LUX_ISA_NAMESPACE isa_sse3
#define LUX_ISA_NAME "sse3"
#elif defined(__SSE2__) || defined(_M_X64)
#define LUX_ISA_NAMESPACE isa_sse2
#define LUX_ISA_NAME "sse2"
#elif defined(__ARM_FEATURE_SVE)
#define LUX_ISA_NAMESPACE isa_sve
#define LUX_ISA_NAME "sve"
#elif defined(__aarch64__)
#define LUX_ISA_NAMESPACE isa_neon64
#define LUX_ISA_NAME "neon64"
#elif defined(__ARM_NEON)
#define LUX_ISA_NAMESPACE isa_neon
#define LUX_ISA_NAME "neon"
#else
#define LUX_ISA_NAMESPACE isa_scalar
#define LUX_ISA_NAME "scalar"
#endif

// Run-time dispatch rank of this translation unit's instruction set (lux/core/dispatch.hpp): 2 for
// AVX-512 F+BW+DQ+VL, 1 for AVX2 + FMA or AVX-512F alone, 0 for everything older; -1 where the
// run-time dispatch does not apply (not x86-64, or not GCC/Clang).
#if !(defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
#define LUX_ISA_DISPATCH_RANK (-1)
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__)
#define LUX_ISA_DISPATCH_RANK 2
#elif defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define LUX_ISA_DISPATCH_RANK 1
#else
#define LUX_ISA_DISPATCH_RANK 0
#endif

#define LUX_NAMESPACE_BEGIN \
  namespace lux {           \
  inline namespace v0 {     \
  inline namespace LUX_ISA_NAMESPACE {
#define LUX_NAMESPACE_END \
  }                       \
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

/// The instruction set this translation unit's lux code is compiled for ("avx512", "avx2",
/// "sse2", "neon64", ...): the name of lux's isa_ inline namespace.
constexpr const char* simd_isa_name() noexcept { return LUX_ISA_NAME; }

namespace detail {
/// The same from inside an inline function template (a weak symbol): tests use it to check that
/// translation units of different instruction sets do not share instantiations.
template <class T>
const char* isa_of() noexcept {
  return LUX_ISA_NAME;
}
}  // namespace detail
LUX_NAMESPACE_END
