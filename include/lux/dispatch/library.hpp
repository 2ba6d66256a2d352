// luxcpp — the registry of the run-time instruction-set dispatch (lux/core/dispatch.hpp).
//
// Not a header to include in your code: it defines lux::dispatch's functions and must be compiled
// exactly once into a program, as CMake's luxcpp::dispatch library does (luxcpp::luxcpp links
// it). The precompiled kernels come from lux/dispatch/provider.hpp, compiled once per
// instruction set and part; each part registers its kernels through an extern "C" function named
// luxcpp_dispatch_<part>_<level>, listed here with LUX_DISPATCH_PROVIDERS (X-macro of (part,
// level)) where the build defines it.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <unordered_map>

#ifndef LUXCPP_RUNTIME_DISPATCH
#define LUXCPP_RUNTIME_DISPATCH 1
#endif
#include "lux/core/dispatch.hpp"

#if !defined(LUX_DISPATCH_PROVIDERS)
#define LUX_DISPATCH_PROVIDERS(X)
#endif

#define LUX_DISPATCH_DECLARE_PROVIDER(part, lvl) \
  extern "C" void luxcpp_dispatch_##part##_##lvl(void* registry, ::lux::dispatch::add_fn add);
LUX_DISPATCH_PROVIDERS(LUX_DISPATCH_DECLARE_PROVIDER)
#undef LUX_DISPATCH_DECLARE_PROVIDER

namespace lux {
inline namespace v0 {
namespace dispatch {
namespace {

using registry = std::unordered_map<std::string, slot>;

void add_to(void* r, const char* key, int lvl, thunk fn) {
  if (lvl <= 0 || lvl >= num_levels || fn == nullptr) return;
  (*static_cast<registry*>(r))[key].fn[static_cast<std::size_t>(lvl)] = fn;
}

const registry& the_registry() {
  static const registry reg = [] {
    registry r;
#define LUX_DISPATCH_CALL_PROVIDER(part, lvl) luxcpp_dispatch_##part##_##lvl(&r, &add_to);
    LUX_DISPATCH_PROVIDERS(LUX_DISPATCH_CALL_PROVIDER)
#undef LUX_DISPATCH_CALL_PROVIDER
    return r;
  }();
  return reg;
}

level detect() noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // libgcc's/compiler-rt's feature bits include the operating system's support (XCR0) for the
  // AVX and AVX-512 register state.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  return avx512 ? level::avx512 : avx2 ? level::avx2 : level::baseline;
#else
  return level::baseline;
#endif
}

/// The cap: -1 until first read (then LUXCPP_ISA, or "native").
std::atomic<int> cap{-1};
std::atomic<std::uint64_t> call_counts[num_levels];

int read_cap_from_environment() noexcept {
  const char* env = std::getenv("LUXCPP_ISA");
  if (env == nullptr || *env == '\0') return num_levels - 1;
  try {
    return static_cast<int>(parse_level(env));
  } catch (const std::invalid_argument& e) {
    // An environment variable cannot throw at a kernel call: say so once, and ignore it.
    std::fprintf(stderr, "luxcpp: %s; LUXCPP_ISA ignored\n", e.what());
    return num_levels - 1;
  }
}

}  // namespace

const slot* find(const char* key) noexcept {
  const auto& slots = the_registry();
  const auto it = slots.find(key);
  return it == slots.end() ? nullptr : &it->second;
}

level detected() noexcept {
  static const level l = detect();
  return l;
}

level active() noexcept {
  int c = cap.load(std::memory_order_relaxed);
  if (c < 0) {
    int expected = -1;
    cap.compare_exchange_strong(expected, read_cap_from_environment(), std::memory_order_relaxed);
    c = cap.load(std::memory_order_relaxed);
  }
  const int d = static_cast<int>(detected());
  return static_cast<level>(c < d ? c : d);
}

void set_max_level(level l) noexcept { cap.store(static_cast<int>(l), std::memory_order_relaxed); }

level parse_level(const char* name) {
  const std::string n = name == nullptr ? std::string() : std::string(name);
  if (n == "baseline" || n == "sse2") return level::baseline;
  if (n == "avx2") return level::avx2;
  if (n == "avx512" || n == "native") return level::avx512;
  throw std::invalid_argument(
      "lux::dispatch::parse_level: expected one of baseline, sse2, avx2, "
      "avx512, native; got \"" +
      n + "\"");
}

const char* name(level l) noexcept {
  switch (l) {
    case level::baseline:
      return "baseline";
    case level::avx2:
      return "avx2";
    case level::avx512:
      return "avx512";
  }
  return "unknown";
}

std::uint64_t calls(level l) noexcept {
  const int i = static_cast<int>(l);
  return i >= 0 && i < num_levels ? call_counts[i].load(std::memory_order_relaxed) : 0;
}

void count(level l) noexcept {
  const int i = static_cast<int>(l);
  if (i >= 0 && i < num_levels) call_counts[i].fetch_add(1, std::memory_order_relaxed);
}

std::size_t registered(level l) noexcept {
  const int i = static_cast<int>(l);
  if (i < 0 || i >= num_levels) return 0;
  std::size_t n = 0;
  for (const auto& entry : the_registry())
    n += entry.second.fn[static_cast<std::size_t>(i)] != nullptr;
  return n;
}

}  // namespace dispatch
}  // namespace v0
}  // namespace lux
