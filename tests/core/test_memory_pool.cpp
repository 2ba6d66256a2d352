// The host tensor cache (lux/core/memory_pool.hpp): size classes, reuse, the bound, release,
// thread safety, and the overflow check on absurd sizes.
#include <catch2/catch.hpp>

#include <lux/core/memory_pool.hpp>
#include <lux/core/tensor.hpp>
#include <thread>
#include <vector>

using pool = lux::detail::host_memory_pool;

TEST_CASE("memory pool: size classes cover the request with at most 12.5 percent slack",
          "[core][memory]") {
  std::size_t prev = 0;
  for (std::size_t b = 1; b < (std::size_t{1} << 26); b = b * 5 / 4 + 1) {
    const std::size_t c = pool::size_class(b);
    CHECK(c >= b);
    CHECK(c % 64 == 0);
    CHECK(c >= prev);
    if (b > 4096) CHECK(double(c - b) <= 0.125 * double(b));
    prev = c;
  }
  CHECK(pool::size_class(64) == 64);
  CHECK(pool::size_class(65) == 128);
  CHECK(pool::size_class(4097) == 4096 + 512);
}

TEST_CASE("memory pool: a freed buffer is reused for the next tensor of its size class",
          "[core][memory]") {
  lux::set_host_cache_limit(std::size_t{1} << 30);
  const float* first = nullptr;
  {
    lux::Tensor<float, 2> a(lux::shape_t<2>{300, 301});
    first = a.data();
  }
  const auto s0 = lux::host_memory_stats();
  lux::Tensor<float, 2> b(lux::shape_t<2>{301, 300});  // same bytes
  const auto s1 = lux::host_memory_stats();
  CHECK(b.data() == first);
  CHECK(s1.cache_hits == s0.cache_hits + 1);
  CHECK(s1.system_allocations == s0.system_allocations);
  CHECK(b(5, 7) == 0.0f);  // the value-initializing constructor still zeroes a reused block
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
}

TEST_CASE("memory pool: the bound, zero to disable, and release", "[core][memory]") {
  lux::release_host_cache();
  CHECK(lux::host_memory_stats().cached_bytes == 0);
  lux::set_host_cache_limit(0);
  const auto s0 = lux::host_memory_stats();
  { lux::Tensor<double, 1> t(lux::shape_t<1>{1000}); }
  const auto s1 = lux::host_memory_stats();
  CHECK(s1.cached_bytes == 0);
  CHECK(s1.system_frees == s0.system_frees + 1);
  lux::set_host_cache_limit(std::size_t{1} << 20);
  { lux::Tensor<double, 1> t(lux::shape_t<1>{1000}); }
  CHECK(lux::host_memory_stats().cached_bytes == pool::size_class(8000));
  { lux::Tensor<float, 1> big(lux::shape_t<1>{1 << 20}); }  // 4 MiB > bound: not kept
  CHECK(lux::host_memory_stats().cached_bytes == pool::size_class(8000));
  lux::release_host_cache();
  CHECK(lux::host_memory_stats().cached_bytes == 0);
  lux::set_host_cache_limit(std::size_t{2} << 30);
}

TEST_CASE("memory pool: concurrent allocation and release from several threads", "[core][memory]") {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 2000; ++i) {
        lux::Tensor<float, 1> a(lux::shape_t<1>{64 + (i * 7 + t) % 900});
        a[0] = float(i);
        lux::Tensor<float, 1> b = a;
        REQUIRE(b[0] == float(i));
        if (i % 500 == 0) lux::release_host_cache();
      }
    });
  for (auto& th : threads) th.join();
  SUCCEED();
}

TEST_CASE("memory pool: sizes beyond the address space are a shape_error, never a wrap",
          "[core][memory][errors]") {
  const auto huge_1d = [] { return lux::Tensor<float, 1>(lux::shape_t<1>{lux::index_t{1} << 62}); };
  const auto huge_2d = [] {
    return lux::Tensor<double, 2>(lux::shape_t<2>{lux::index_t{1} << 31, lux::index_t{1} << 30});
  };
  CHECK_THROWS_AS(huge_1d(), lux::shape_error);
  CHECK_THROWS_AS(huge_2d(), lux::shape_error);
  CHECK_THROWS_WITH(huge_1d(), Catch::Contains("exceed the address space"));
}
