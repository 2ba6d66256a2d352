// Core benchmarks: the memcpy bandwidth baseline and the Philox generator.
//   ./build/default/benchmarks/bench_core --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <lux/core/random.hpp>
#include <lux/core/tensor.hpp>

namespace {

// The bandwidth limit every memory-bound kernel is read against: read n floats, write n.
void BM_memcpy(benchmark::State& state) {
  const auto n = state.range(0);
  lux::Tensor<float, 1> src(lux::shape_t<1>{n}, 1.0f), dst(lux::shape_t<1>{n});
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(n) * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 2 * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_memcpy)->Arg(1 << 24)->Unit(benchmark::kMillisecond)->UseRealTime();

// Philox uniform floats written to memory: the cost of a dropout mask's randomness.
void BM_philox_fill_uniform(benchmark::State& state) {
  const auto n = state.range(0);
  lux::Tensor<float, 1> dst(lux::shape_t<1>{n});
  lux::rng r(7);
  for (auto _ : state) {
    r.fill_uniform(dst.data(), static_cast<std::size_t>(n));
    r.advance();
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * static_cast<int64_t>(sizeof(float)));
  state.counters["numbers/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_philox_fill_uniform)->Arg(1 << 24)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
