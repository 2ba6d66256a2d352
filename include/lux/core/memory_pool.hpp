// luxcpp — the caching allocator behind every host Tensor.
//
// Deep-learning workloads allocate the same sizes over and over (a training step's activations,
// the pullback's saved values, the gradients). Going to the system allocator each time costs a
// page fault per 4 KiB of every fresh large buffer (glibc returns blocks above its mmap threshold
// to the kernel on free), which made the allocating API several times slower than the in-place
// kernels. Like PyTorch's CPU and CUDA caching allocators, freed tensor storage is kept in
// size-bucketed free lists and handed out again:
//
//   * sizes are rounded to a size class: multiples of 64 bytes up to 4 KiB, then 8 classes per
//     power of two (at most 12.5 % slack), so a shape that varies a little still hits the cache;
//   * thread-safe (one mutex; one lock per tensor allocation, never per element);
//   * bounded: at most `limit` bytes are kept (default 2 GiB, or the environment variable
//     LUX_HOST_CACHE_BYTES; 0 disables caching); beyond it blocks go back to the system;
//   * lux::release_host_cache() returns every cached block to the system;
//   * lux::host_memory_stats() counts system allocations, cache hits and bytes held, so a test
//     can prove that a training step allocates no tensor storage after warm-up.
// Under AddressSanitizer cached blocks are poisoned, so a use after free is still reported.
//
// The pool is created on first use and intentionally never destroyed: tensors with static
// storage duration may be freed after every other static object is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "lux/core/config.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define LUX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LUX_ASAN 1
#endif
#endif
#if defined(LUX_ASAN)
#include <sanitizer/asan_interface.h>
#define LUX_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LUX_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define LUX_POISON(p, n) ((void)(p), (void)(n))
#define LUX_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

LUX_NAMESPACE_BEGIN

/// Counters of the host tensor allocator (monotonic, except the *_bytes gauges).
struct host_memory_statistics {
  std::uint64_t system_allocations = 0;  ///< blocks obtained from ::operator new
  std::uint64_t system_frees = 0;        ///< blocks returned to ::operator delete
  std::uint64_t cache_hits = 0;          ///< allocations served from the cache
  std::size_t cached_bytes = 0;          ///< bytes held in free lists now
  std::size_t limit_bytes = 0;           ///< the cache's bound
};

namespace detail {

class host_memory_pool {
 public:
  static constexpr std::size_t alignment = 64;

  static host_memory_pool& instance() {
    static host_memory_pool* pool = new host_memory_pool;  // never destroyed (see above)
    return *pool;
  }

  /// The size class of a request: what is really allocated and cached.
  static constexpr std::size_t size_class(std::size_t bytes) noexcept {
    if (bytes <= 4096) return (bytes + alignment - 1) / alignment * alignment;
    std::size_t p = 4096;  // largest power of two <= bytes
    while (p <= bytes / 2) p *= 2;
    const std::size_t step = p / 8;
    return (bytes + step - 1) / step * step;
  }
  /// Largest request the pool accepts (its size class must not overflow).
  static constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / 4;

  void* allocate(std::size_t bytes) {
    const std::size_t cls = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= cls;
        ++stats_.cache_hits;
        LUX_UNPOISON(p, cls);
        return p;
      }
      ++stats_.system_allocations;
    }
    try {
      return ::operator new (cls, std::align_val_t{alignment});
    } catch (const std::bad_alloc&) {
      // The cache may hold what the system lacks: give it back and try once more.
      release();
      return ::operator new (cls, std::align_val_t{alignment});
    }
  }

  void deallocate(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    const std::size_t cls = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_ + cls <= limit_) {
        try {
          free_[cls].push_back(p);
          cached_ += cls;
          LUX_POISON(p, cls);
          return;
        } catch (...) {  // no memory for the free list itself: fall through to the system
        }
      }
      ++stats_.system_frees;
    }
    ::operator delete (p, std::align_val_t{alignment});
  }

  /// Returns every cached block to the system.
  void release() noexcept {
    std::unordered_map<std::size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      for (auto& [cls, list] : blocks) stats_.system_frees += list.size();
      cached_ = 0;
    }
    for (auto& [cls, list] : blocks)
      for (void* p : list) {
        LUX_UNPOISON(p, cls);
        ::operator delete (p, std::align_val_t{alignment});
      }
  }

  void set_limit(std::size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
      if (cached_ <= limit_) return;
    }
    release();
  }

  host_memory_statistics statistics() {
    std::lock_guard<std::mutex> lock(mutex_);
    auto s = stats_;
    s.cached_bytes = cached_;
    s.limit_bytes = limit_;
    return s;
  }

 private:
  host_memory_pool() : limit_(default_limit()) {}
  static std::size_t default_limit() {
    if (const char* env = std::getenv("LUX_HOST_CACHE_BYTES")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && *end == '\0') return static_cast<std::size_t>(v);
    }
    return std::size_t{2} << 30;
  }

  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_ = 0;
  std::size_t limit_;
  host_memory_statistics stats_;
};

}  // namespace detail

/// Counters of the host tensor allocator (see lux/core/memory_pool.hpp).
inline host_memory_statistics host_memory_stats() {
  return detail::host_memory_pool::instance().statistics();
}
/// Returns every cached host tensor buffer to the system.
inline void release_host_cache() noexcept { detail::host_memory_pool::instance().release(); }
/// Bounds the bytes the host tensor cache keeps (0 disables caching); releases the excess.
inline void set_host_cache_limit(std::size_t bytes) {
  detail::host_memory_pool::instance().set_limit(bytes);
}

LUX_NAMESPACE_END
