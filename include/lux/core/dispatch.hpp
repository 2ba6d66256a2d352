// luxcpp — run-time instruction-set dispatch of the looped (CPU) kernels.
//
// lux's kernels are inline templates: they are compiled with the flags of the translation unit
// that includes them. A program built with default flags (what find_package users get: x86-64's
// SSE2 baseline) would run SSE2 code on a machine with AVX-512. So the CMake target
// luxcpp::luxcpp links a small compiled library, libluxcpp_dispatch, holding the looped kernels
// for float and double (and every built-in activation) compiled twice, for AVX2 + FMA and for
// AVX-512 (F, BW, DQ, VL), and defines LUXCPP_RUNTIME_DISPATCH. Each looped kernel, compiled
// below AVX-512, then asks once per call whether a better-compiled copy of itself exists for the
// running CPU and calls it (an atomic load and an indirect call; the lookup by name happens
// once per kernel instantiation). Built with -march=native on an AVX-512 machine, none of this
// is compiled: only the native path exists.
//
//   lux::dispatch::active()        the level kernels dispatch to now (baseline, avx2, avx512)
//   lux::dispatch::detected()      the best level this CPU (and OS) supports
//   lux::dispatch::set_max_level(lux::dispatch::level::avx2)   cap it (tests, comparisons)
//   LUXCPP_ISA=baseline|avx2|avx512|native  the same cap from the environment, read once
//   lux::dispatch::calls(level)    how many kernel calls went to that level's copy
//
// "baseline" means the kernel compiled into the calling translation unit itself.
//
// How a call crosses: the calling translation unit's lux types live in its isa_ namespace
// (config.hpp) and the library's in isa_avx2 / isa_avx512 — distinct types with identical
// definitions, hence identical layouts. The caller passes the addresses of the kernel's arguments
// (pointers, sizes, plain problem descriptions such as conv_geometry, activation functors, all
// trivially copyable); the library's thunk copies each into its own type with std::bit_cast and
// calls its own kernel. Kernels are found by a key of the kernel's name, its element and
// activation types, and the size of every argument, so a layout that differs (another luxcpp
// version's headers) finds no copy and runs the caller's own code instead of a wrong one.
//
// Without LUXCPP_RUNTIME_DISPATCH (a header-only use with no libluxcpp_dispatch) the kernels run
// as compiled, and the functions below are not declared.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"

#if defined(LUXCPP_RUNTIME_DISPATCH) && !defined(LUX_DISPATCH_PROVIDER) && \
    LUX_ISA_DISPATCH_RANK >= 0 && LUX_ISA_DISPATCH_RANK < 2
#define LUX_DISPATCH_CONSUMER 1
#else
#define LUX_DISPATCH_CONSUMER 0
#endif

// The instruction-set-neutral part (outside the isa_ namespaces: one definition per program, in
// libluxcpp_dispatch).
namespace lux {
inline namespace v0 {
namespace dispatch {

/// The instruction-set levels kernels are precompiled for.
enum class level : int {
  baseline = 0,  ///< the calling translation unit's own code (whatever its -m flags)
  avx2 = 1,      ///< AVX2 + FMA
  avx512 = 2,    ///< AVX-512 F + BW + DQ + VL
};
inline constexpr int num_levels = 3;

/// A precompiled kernel: called with the addresses of the kernel's arguments, in order.
using thunk = void (*)(const void* const* argv);

/// One kernel's copies, indexed by level (null where that level has none).
struct slot {
  std::array<thunk, num_levels> fn{};
};

/// How a provider (one precompiled translation unit) registers a copy.
using add_fn = void (*)(void* registry, const char* key, int level, thunk fn);

#if defined(LUXCPP_RUNTIME_DISPATCH)
/// The copies registered under `key`, or null.
const slot* find(const char* key) noexcept;
/// The level kernels dispatch to now: min(detected(), the cap).
level active() noexcept;
/// The best level this CPU and operating system support.
level detected() noexcept;
/// Caps the level (level::baseline: every kernel runs as compiled into its caller). Takes effect
/// for the next kernel call on every thread.
void set_max_level(level cap) noexcept;
/// Parses "baseline" (or "sse2"), "avx2", "avx512", "native"; throws std::invalid_argument
/// naming the accepted values otherwise.
level parse_level(const char* name);
/// "baseline", "avx2" or "avx512".
const char* name(level l) noexcept;
/// Number of kernel calls that ran that level's precompiled copy (baseline: always 0).
std::uint64_t calls(level l) noexcept;
/// Counts one call (used by the kernels).
void count(level l) noexcept;
/// Number of kernels registered at each level.
std::size_t registered(level l) noexcept;
#endif

}  // namespace dispatch
}  // namespace v0
}  // namespace lux

LUX_NAMESPACE_BEGIN
namespace detail {

/// A string literal as a template argument: a kernel's name.
template <std::size_t N>
struct kernel_name {
  char s[N]{};
  constexpr kernel_name(const char (&v)[N]) {  // NOLINT: implicit on purpose
    for (std::size_t i = 0; i < N; ++i) s[i] = v[i];
  }
};

/// The name of a dispatch key type: element types and lux's built-in activations; null for
/// anything else (a user's functor, an unusual element type): no precompiled copy is looked for.
template <class X>
constexpr const char* dispatch_key_name() noexcept {
  using U = std::remove_cv_t<X>;
  if constexpr (std::is_same_v<U, float>)
    return "f32";
  else if constexpr (std::is_same_v<U, double>)
    return "f64";
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return "i32";
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return "i64";
  else if constexpr (is_builtin_activation_v<U>)
    return U::name;
  else
    return nullptr;
}

/// "kernel|f32,gelu|8,8,8,1": the kernel, its key types, the size of each argument.
template <class... Keys>
std::string dispatch_key(const char* kernel, std::initializer_list<std::size_t> arg_sizes) {
  std::string k(kernel);
  k += '|';
  bool first = true;
  ((k += (first ? "" : ","), k += dispatch_key_name<Keys>(), first = false), ...);
  k += '|';
  first = true;
  for (std::size_t s : arg_sizes) {
    if (!first) k += ',';
    k += std::to_string(s);
    first = false;
  }
  return k;
}

/// Runs kernel K's precompiled copy for the best active level above this translation unit's own
/// and returns true, or returns false (then the caller runs its own code). Keys: the element and
/// activation types that select the instantiation; args: the kernel's arguments, exactly as the
/// precompiled copy takes them.
template <kernel_name K, class... Keys, class... Args>
bool dispatched([[maybe_unused]] const Args&... args) {
#if LUX_DISPATCH_CONSUMER
  if constexpr (((dispatch_key_name<Keys>() != nullptr) && ...)) {
    static_assert((std::is_trivially_copyable_v<Args> && ...),
                  "lux: a dispatched kernel's arguments must be trivially copyable");
    static const ::lux::dispatch::slot* const s =
        ::lux::dispatch::find(dispatch_key<Keys...>(K.s, {sizeof(Args)...}).c_str());
    if (s == nullptr) return false;
    int l = static_cast<int>(::lux::dispatch::active());
    while (l > LUX_ISA_DISPATCH_RANK && s->fn[static_cast<std::size_t>(l)] == nullptr) --l;
    if (l <= LUX_ISA_DISPATCH_RANK) return false;
    const void* const argv[] = {static_cast<const void*>(std::addressof(args))..., nullptr};
    ::lux::dispatch::count(static_cast<::lux::dispatch::level>(l));
    s->fn[static_cast<std::size_t>(l)](argv);
    return true;
  } else {
    return false;
  }
#else
  return false;
#endif
}

}  // namespace detail
LUX_NAMESPACE_END

/// First statement after LUX_TRACE_KERNEL in a looped kernel: runs the precompiled copy of this
/// kernel when one fits the CPU better and returns. KEYS: a parenthesized type list (T, F);
/// the rest: every argument of the kernel after the mode tag, in order.
/// Expands to nothing where this translation unit does not dispatch (built for AVX-512, not
/// linked with libluxcpp_dispatch, or the library's own precompiled copies).
#if LUX_DISPATCH_CONSUMER
#define LUX_DISPATCH(kernel, KEYS, ...)                                                    \
  do {                                                                                     \
    if (::lux::detail::dispatched<kernel, LUX_DISPATCH_UNPAREN KEYS>(__VA_ARGS__)) return; \
  } while (0)
/// The same for a kernel that returns a value of type R: the precompiled copy writes it through
/// a pointer passed after the kernel's arguments.
#define LUX_DISPATCH_RESULT(kernel, KEYS, R, ...)                                \
  do {                                                                           \
    R lux_dispatch_result_{};                                                    \
    if (::lux::detail::dispatched<kernel, LUX_DISPATCH_UNPAREN KEYS>(            \
            __VA_ARGS__, static_cast<R*>(std::addressof(lux_dispatch_result_)))) \
      return lux_dispatch_result_;                                               \
  } while (0)
#define LUX_DISPATCH_UNPAREN(...) __VA_ARGS__
#else
#define LUX_DISPATCH(kernel, KEYS, ...) static_cast<void>(0)
#define LUX_DISPATCH_RESULT(kernel, KEYS, R, ...) static_cast<void>(0)
#endif
