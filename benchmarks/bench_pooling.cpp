// Pooling and upsampling benchmarks, float32:
//   maxpool 3×3 stride 2 pad 1 (the ResNet stem pool) on (112, 112, 64, 32) → (56, 56, 64, 32):
//     forward (values only), forward with argmax, forward + backward (from the saved argmax, and
//     recomputing the argmax from x as NNlib's ∇maxpool does); meanpool, same shape, forward and
//     forward + backward;
//   upsample_nearest ×2 and upsample_bilinear ×2 (align_corners = true, the Lux default) on
//     (56, 56, 64, 8) → (112, 112, 64, 8), forward and forward + backward;
//   generic-mode variants of the forward passes (the looped/generic ratio);
//   memcpy of the same byte counts, single-threaded and split over all threads (the bandwidth
//     limit of this machine).
// Bytes processed count every array read once and every array written once (x + y forward;
// dy + (argmax | x) + dx backward; the int32 argmax counts 4 bytes per output). Items processed are
// the elements of x (the pooled / upsampled input). "inplace" benchmarks write into preallocated
// outputs (lux::maxpool_ etc.); "alloc" ones use the allocating API (fresh outputs every call).
//
//   g++ -std=c++20 -O3 -march=native -fopenmp -Wno-maybe-uninitialized -Iinclude
//       benchmarks/bench_pooling.cpp -lbenchmark -lpthread -o bench_pooling
//   ./bench_pooling --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR 105593, see lux/core/simd.hpp
#endif

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <lux/core/parallel.hpp>
#include <lux/core/random.hpp>
#include <lux/kernels/pooling.hpp>
#include <lux/kernels/upsample.hpp>

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;

constexpr shape_t<4> pool_in{112, 112, 64, 32};
constexpr shape_t<4> pool_out{56, 56, 64, 32};
constexpr shape_t<4> up_in{56, 56, 64, 8};
constexpr shape_t<4> up_out{112, 112, 64, 8};

constexpr index_t numel(const shape_t<4>& s) { return s[0] * s[1] * s[2] * s[3]; }
constexpr index_t n_pool_in = numel(pool_in), n_pool_out = numel(pool_out);
constexpr index_t n_up_in = numel(up_in), n_up_out = numel(up_out);

const lux::pool_dims<2> stem = lux::pool_dims<2>(3).with_stride(2).with_pad(1);

Tensor<float, 4> random_input(const shape_t<4>& shape, std::uint64_t seed) {
  auto t = Tensor<float, 4>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  return t;
}

/// Bytes and items per iteration: `floats` float32 elements and `ints` int32 elements moved.
void set_counters(benchmark::State& state, index_t floats, index_t ints, index_t items) {
  state.SetBytesProcessed(state.iterations() * (floats + ints) * 4);
  state.SetItemsProcessed(state.iterations() * items);
}

// --- memcpy baselines: copying n floats moves 2n·4 bytes ----------------------------------------
void BM_memcpy(benchmark::State& state) {
  const index_t n = state.range(0);
  const Tensor<float, 1> src(shape_t<1>{n}, 1.0f);
  Tensor<float, 1> dst(shape_t<1>{n});
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(n) * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * n, 0, n);
}
void BM_memcpy_threads(benchmark::State& state) {
  const index_t n = state.range(0);
  const Tensor<float, 1> src(shape_t<1>{n}, 1.0f);
  Tensor<float, 1> dst(shape_t<1>{n});
  for (auto _ : state) {
    lux::parallel_chunks(n, [&](index_t lo, index_t hi) {
      std::memcpy(dst.data() + lo, src.data() + lo, static_cast<std::size_t>(hi - lo) * 4);
    });
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * n, 0, n);
}
// Half the bytes of: pooling forward (x + y), pooling forward + backward (x + y + dy + dx),
// upsampling forward (x + y), upsampling forward + backward.
BENCHMARK(BM_memcpy)
    ->Arg((n_pool_in + n_pool_out) / 2)
    ->Arg(n_pool_in + n_pool_out)
    ->Arg((n_up_in + n_up_out) / 2)
    ->Arg(n_up_in + n_up_out)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_memcpy_threads)
    ->Arg((n_pool_in + n_pool_out) / 2)
    ->Arg(n_pool_in + n_pool_out)
    ->Arg((n_up_in + n_up_out) / 2)
    ->Arg(n_up_in + n_up_out)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// --- max pooling -------------------------------------------------------------------------------
// "inplace": outputs preallocated once (lux::maxpool_ etc.): the kernel's own cost.
// "alloc": the allocating API (lux::maxpool etc.), which on this machine pays for first-touch page
// faults of every fresh output buffer (the 100 MB dx of a backward pass is returned to the OS by
// free() and faulted in again by the next call).

template <class Mode>
void BM_maxpool_forward_inplace(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  Tensor<float, 4> y(pool_out);
  for (auto _ : state) {
    lux::maxpool_(Mode{}, y, x, stem);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n_pool_in + n_pool_out, 0, n_pool_in);
}
BENCHMARK_TEMPLATE(BM_maxpool_forward_inplace, lux::looped_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_maxpool_forward_inplace, lux::generic_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_maxpool_forward_alloc(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  for (auto _ : state) {
    auto y = lux::maxpool(lux::looped_op{}, x, stem);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, n_pool_in + n_pool_out, 0, n_pool_in);
}
BENCHMARK(BM_maxpool_forward_alloc)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_maxpool_forward_argmax_inplace(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  Tensor<float, 4> y(pool_out);
  Tensor<std::int32_t, 4> argmax(pool_out);
  for (auto _ : state) {
    lux::maxpool_with_argmax_(lux::looped_op{}, y, argmax, x, stem);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n_pool_in + n_pool_out, n_pool_out, n_pool_in);
}
BENCHMARK(BM_maxpool_forward_argmax_inplace)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Forward with argmax + backward from the saved argmax (the training path).
void BM_maxpool_forward_backward_inplace(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  const auto dy = random_input(pool_out, 2);
  Tensor<float, 4> y(pool_out), dx(pool_in);
  Tensor<std::int32_t, 4> argmax(pool_out);
  for (auto _ : state) {
    lux::maxpool_with_argmax_(lux::looped_op{}, y, argmax, x, stem);
    lux::maxpool_backward_(lux::looped_op{}, dx, dy, argmax);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  // forward x + y + argmax; backward dy + argmax + dx
  set_counters(state, 2 * n_pool_in + 2 * n_pool_out, 2 * n_pool_out, n_pool_in);
}
BENCHMARK(BM_maxpool_forward_backward_inplace)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_maxpool_forward_backward_alloc(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  const auto dy = random_input(pool_out, 2);
  for (auto _ : state) {
    auto r = lux::maxpool_with_argmax(lux::looped_op{}, x, stem);
    auto g = lux::maxpool_backward(lux::looped_op{}, dy, r.saved);
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_counters(state, 2 * n_pool_in + 2 * n_pool_out, 2 * n_pool_out, n_pool_in);
}
BENCHMARK(BM_maxpool_forward_backward_alloc)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Forward (values only) + NNlib-style backward that recomputes the argmax from x (allocating).
void BM_maxpool_forward_backward_recompute_alloc(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  const auto dy = random_input(pool_out, 2);
  for (auto _ : state) {
    auto y = lux::maxpool(lux::looped_op{}, x, stem);
    auto g = lux::maxpool_backward(lux::looped_op{}, dy, x, stem);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(g.dx.data());
  }
  // forward x + y; backward dy + x + dx
  set_counters(state, 3 * n_pool_in + 2 * n_pool_out, 0, n_pool_in);
}
BENCHMARK(BM_maxpool_forward_backward_recompute_alloc)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// --- mean pooling ------------------------------------------------------------------------------
template <class Mode>
void BM_meanpool_forward_inplace(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  Tensor<float, 4> y(pool_out);
  for (auto _ : state) {
    lux::meanpool_(Mode{}, y, x, stem);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n_pool_in + n_pool_out, 0, n_pool_in);
}
BENCHMARK_TEMPLATE(BM_meanpool_forward_inplace, lux::looped_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_meanpool_forward_inplace, lux::generic_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_meanpool_forward_backward_inplace(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  const auto dy = random_input(pool_out, 2);
  Tensor<float, 4> y(pool_out), dx(pool_in);
  for (auto _ : state) {
    lux::meanpool_(lux::looped_op{}, y, x, stem);
    lux::meanpool_backward_(lux::looped_op{}, dx, dy, stem);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * n_pool_in + 2 * n_pool_out, 0, n_pool_in);
}
BENCHMARK(BM_meanpool_forward_backward_inplace)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_meanpool_forward_backward_alloc(benchmark::State& state) {
  const auto x = random_input(pool_in, 1);
  const auto dy = random_input(pool_out, 2);
  for (auto _ : state) {
    auto y = lux::meanpool(lux::looped_op{}, x, stem);
    auto g = lux::meanpool_backward(lux::looped_op{}, dy, x.shape(), stem);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_counters(state, 2 * n_pool_in + 2 * n_pool_out, 0, n_pool_in);
}
BENCHMARK(BM_meanpool_forward_backward_alloc)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- upsampling --------------------------------------------------------------------------------
template <class Mode>
void BM_upsample_nearest_forward_inplace(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  Tensor<float, 4> y(up_out);
  for (auto _ : state) {
    lux::upsample_nearest_(Mode{}, y, x);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n_up_in + n_up_out, 0, n_up_in);
}
BENCHMARK_TEMPLATE(BM_upsample_nearest_forward_inplace, lux::looped_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_upsample_nearest_forward_inplace, lux::generic_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_upsample_nearest_forward_backward_inplace(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  const auto dy = random_input(up_out, 4);
  Tensor<float, 4> y(up_out), dx(up_in);
  for (auto _ : state) {
    lux::upsample_nearest_(lux::looped_op{}, y, x);
    lux::upsample_nearest_backward_(lux::looped_op{}, dx, dy);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * n_up_in + 2 * n_up_out, 0, n_up_in);
}
BENCHMARK(BM_upsample_nearest_forward_backward_inplace)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_upsample_nearest_forward_backward_alloc(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  const auto dy = random_input(up_out, 4);
  for (auto _ : state) {
    auto y = lux::upsample_nearest(lux::looped_op{}, x, {2, 2});
    auto g = lux::upsample_nearest_backward(lux::looped_op{}, dy, x.shape());
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_counters(state, 2 * n_up_in + 2 * n_up_out, 0, n_up_in);
}
BENCHMARK(BM_upsample_nearest_forward_backward_alloc)->Unit(benchmark::kMillisecond)->UseRealTime();

template <class Mode>
void BM_upsample_bilinear_forward_inplace(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  Tensor<float, 4> y(up_out);
  for (auto _ : state) {
    lux::upsample_bilinear_(Mode{}, y, x);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n_up_in + n_up_out, 0, n_up_in);
}
BENCHMARK_TEMPLATE(BM_upsample_bilinear_forward_inplace, lux::looped_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_upsample_bilinear_forward_inplace, lux::generic_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_upsample_bilinear_forward_backward_inplace(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  const auto dy = random_input(up_out, 4);
  Tensor<float, 4> y(up_out), dx(up_in);
  for (auto _ : state) {
    lux::upsample_bilinear_(lux::looped_op{}, y, x);
    lux::upsample_bilinear_backward_(lux::looped_op{}, dx, dy);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * n_up_in + 2 * n_up_out, 0, n_up_in);
}
BENCHMARK(BM_upsample_bilinear_forward_backward_inplace)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_upsample_bilinear_forward_backward_alloc(benchmark::State& state) {
  const auto x = random_input(up_in, 3);
  const auto dy = random_input(up_out, 4);
  for (auto _ : state) {
    auto y = lux::upsample_bilinear(lux::looped_op{}, x, {2.0, 2.0});
    auto g = lux::upsample_bilinear_backward(lux::looped_op{}, dy, x.shape());
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_counters(state, 2 * n_up_in + 2 * n_up_out, 0, n_up_in);
}
BENCHMARK(BM_upsample_bilinear_forward_backward_alloc)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
