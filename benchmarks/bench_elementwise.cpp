// Benchmarks of the elementwise kernels (float32): activations, bias_activation, dropout,
// alpha dropout, forward and backward, looped and generic, with the memcpy bandwidth of the same
// byte count measured in the same binary.
//
//   g++ -std=c++20 -O3 -march=native -fopenmp -Iinclude benchmarks/bench_elementwise.cpp
//       -o bench_elementwise -lbenchmark -lpthread
//   ./bench_elementwise --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Bytes processed count every input array read once and every output array written once
// (a 16M-element float array is 64 MiB):
//   activation forward        x → y               8 B/element   (memcpy of 4 B/element)
//   activation backward       dy, y (or x) → dx  12 B/element   (memcpy of 6 B/element)
//   dropout forward           x → y, mask        12 B/element
//   dropout backward          dy, mask → dx      12 B/element
//   alpha dropout fwd / bwd   x → y / dy → dx     8 B/element   (mask regenerated from Philox)
//   bias_activation forward   x, bias → y         8 B/element + 4 B/channel
//   bias_activation backward  dy, y → dx, dbias  12 B/element + 4 B/channel
// BM_memcpy/<bytes> copies bytes/2 with std::memcpy (so it reads and writes `bytes` in total);
// each kernel's fraction of the machine's bandwidth is its bytes_per_second over BM_memcpy's for
// the same bytes. std::memcpy runs on one thread (and uses non-temporal stores at these sizes);
// BM_memcpy_parallel is the same copy split over the OpenMP threads like the kernels are, the
// stricter limit on a multi-core machine. Both are reported.
//
// Names: BM_<kernel>_<fwd|bwd>/looped and /generic. Each carries a "vs=" label for
// benchmarks/make_results.py: a looped kernel's ratio is to BM_memcpy_parallel of its byte count,
// a generic kernel's to its looped counterpart (so looped ≥ 4× generic reads as ratio ≤ 0.25).
//
// The kernels are timed through lux::impl with preallocated outputs (the public functions
// return fresh Tensors; a 64 MiB allocation is a fresh mmap whose first touch costs page faults
// on every call — BM_relu_fwd_public_api shows that cost separately).
#include <benchmark/benchmark.h>

#include <cstring>
#include <lux/kernels/activation.hpp>
#include <lux/kernels/bias_activation.hpp>
#include <lux/kernels/dropout.hpp>
#include <string>
#include <type_traits>

namespace {

using lux::index_t;
constexpr index_t kN = index_t{1} << 24;  // 16M elements
constexpr index_t kBiasC = 4096, kBiasB = 1024;

lux::Tensor<float, 1> filled(index_t n, std::uint64_t seed) {
  auto t = lux::Tensor<float, 1>::uninitialized({n});
  const lux::rng r(seed);
  lux::parallel_chunks(n, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i)
      t[i] = 4.0f * r.uniform_at<float>(static_cast<std::uint64_t>(i)) - 2.0f;
  });
  return t;
}

void set_bytes(benchmark::State& state, index_t bytes_per_iteration, index_t elements) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes_per_iteration);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * elements);
}

/// The label benchmarks/make_results.py reads to pick a baseline: a looped kernel
/// (<base>/looped) is compared with the two-thread memcpy of its byte count, a generic one
/// (<base>/generic) with its looped counterpart (ratio = generic / looped, the inverse of the
/// speed-up).
template <class Mode>
void set_baseline(benchmark::State& state, index_t memcpy_bytes, const std::string& base) {
  if constexpr (std::is_same_v<Mode, lux::looped_op>)
    state.SetLabel("vs=BM_memcpy_parallel/" + std::to_string(memcpy_bytes) + "/real_time");
  else
    state.SetLabel("vs=" + base + "/looped/real_time");
}
/// BM_<activation>_<fwd|bwd>, e.g. BM_gelu_fwd.
template <class F>
std::string act_base(const char* pass) {
  return std::string("BM_") + lux::activation_traits<F>::name + "_" + pass;
}

// ---- the bandwidth limit ---------------------------------------------------------------------
void BM_memcpy(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const index_t n = static_cast<index_t>(bytes / 2 / sizeof(float));
  const auto src = filled(n, 1);
  auto dst = filled(n, 2);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes / 2);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, static_cast<index_t>(bytes), n);
}
BENCHMARK(BM_memcpy)
    ->Arg(8 * kN)
    ->Arg(12 * kN)
    ->Arg(8 * kBiasC * kBiasB)
    ->Arg(12 * kBiasC * kBiasB)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same copy split over the OpenMP threads (one contiguous chunk each), the bandwidth a
// multi-threaded kernel can reach; std::memcpy above is single-threaded.
void BM_memcpy_parallel(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const index_t n = static_cast<index_t>(bytes / 2 / sizeof(float));
  const auto src = filled(n, 1);
  auto dst = filled(n, 2);
  for (auto _ : state) {
    lux::parallel_chunks(n, [&](index_t lo, index_t hi) {
      std::memcpy(dst.data() + lo, src.data() + lo,
                  static_cast<std::size_t>(hi - lo) * sizeof(float));
    });
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, static_cast<index_t>(bytes), n);
}
BENCHMARK(BM_memcpy_parallel)
    ->Arg(8 * kN)
    ->Arg(12 * kN)
    ->Arg(8 * kBiasC * kBiasB)
    ->Arg(12 * kBiasC * kBiasB)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- activations -----------------------------------------------------------------------------
template <class Mode, class F>
void BM_act_fwd(benchmark::State& state) {
  const auto x = filled(kN, 3);
  auto y = filled(kN, 4);
  for (auto _ : state) {
    lux::impl::fast_activation(Mode{}, F{}, x.data(), y.data(), kN);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 8 * kN, kN);
  set_baseline<Mode>(state, 8 * kN, act_base<F>("fwd"));
}
template <class Mode, class F>
void BM_act_bwd(benchmark::State& state) {
  const auto x = filled(kN, 3);
  const auto dy = filled(kN, 5);
  auto arg = filled(kN, 6);  // y for derivatives from the output, x otherwise
  if constexpr (lux::activation_traits<F>::uses_output)
    lux::impl::fast_activation(lux::looped_op{}, F{}, x.data(), arg.data(), kN);
  else
    arg = x;
  auto dx = filled(kN, 7);
  for (auto _ : state) {
    lux::impl::activation_backward(Mode{}, F{}, dy.data(), arg.data(), dx.data(), kN);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 12 * kN, kN);
  set_baseline<Mode>(state, 12 * kN, act_base<F>("bwd"));
}

// The public function, including the allocation of its 64 MiB output.
void BM_relu_fwd_public_api(benchmark::State& state) {
  const auto x = filled(kN, 3);
  for (auto _ : state) {
    auto y = lux::fast_activation(lux::relu{}, x);
    benchmark::DoNotOptimize(y.data());
  }
  set_bytes(state, 8 * kN, kN);
  state.SetLabel("vs=BM_relu_fwd/looped/real_time");
}
BENCHMARK(BM_relu_fwd_public_api)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---- bias_activation(relu) on (4096, 1024) ----------------------------------------------------
template <class Mode>
void BM_bias_relu_fwd(benchmark::State& state) {
  const index_t n = kBiasC * kBiasB;
  const auto x = filled(n, 8);
  const auto b = filled(kBiasC, 9);
  auto y = filled(n, 10);
  for (auto _ : state) {
    lux::impl::bias_activation(Mode{}, lux::relu{}, x.data(), b.data(), y.data(), 1, kBiasC,
                               kBiasB);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 8 * n + 4 * kBiasC, n);
  set_baseline<Mode>(state, 8 * n, "BM_bias_relu_fwd");
}
template <class Mode>
void BM_bias_relu_bwd(benchmark::State& state) {
  const index_t n = kBiasC * kBiasB;
  const auto x = filled(n, 8);
  const auto b = filled(kBiasC, 9);
  auto y = filled(n, 10);
  lux::impl::bias_activation(lux::looped_op{}, lux::relu{}, x.data(), b.data(), y.data(), 1, kBiasC,
                             kBiasB);
  const auto dy = filled(n, 11);
  auto dx = filled(n, 12);
  auto db = filled(kBiasC, 13);
  for (auto _ : state) {
    lux::impl::bias_activation_backward(Mode{}, lux::relu{}, dy.data(), y.data(),
                                        static_cast<const float*>(nullptr), dx.data(), db.data(), 1,
                                        kBiasC, kBiasB);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 12 * n + 4 * kBiasC, n);
  set_baseline<Mode>(state, 12 * n, "BM_bias_relu_bwd");
}

// ---- dropout p = 0.5 --------------------------------------------------------------------------
template <class Mode>
void BM_dropout_fwd(benchmark::State& state) {
  const auto x = filled(kN, 14);
  auto y = filled(kN, 15);
  auto mask = filled(kN, 16);
  lux::rng r(17);
  for (auto _ : state) {
    lux::impl::dropout(Mode{}, r, 0.5f, 2.0f, x.data(), y.data(), mask.data(), kN);
    r.advance();
    benchmark::ClobberMemory();
  }
  set_bytes(state, 12 * kN, kN);
  set_baseline<Mode>(state, 12 * kN, "BM_dropout_fwd");
}
template <class Mode>
void BM_dropout_bwd(benchmark::State& state) {
  const auto dy = filled(kN, 18);
  auto mask = filled(kN, 19);
  auto y = filled(kN, 20);
  lux::impl::dropout(lux::looped_op{}, lux::rng(21), 0.5f, 2.0f, dy.data(), y.data(), mask.data(),
                     kN);
  auto dx = filled(kN, 22);
  const lux::shape_t<1> s{kN};
  for (auto _ : state) {
    lux::impl::broadcast_multiply(Mode{}, dy.data(), s, static_cast<const float*>(mask.data()), s,
                                  dx.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 12 * kN, kN);
  set_baseline<Mode>(state, 12 * kN, "BM_dropout_bwd");
}

// ---- alpha dropout p = 0.5 (backward regenerates the mask) -----------------------------------
template <class Mode>
void BM_alpha_dropout_fwd(benchmark::State& state) {
  const auto x = filled(kN, 23);
  auto y = filled(kN, 24);
  const auto c = lux::make_alpha_dropout_constants(0.5);
  lux::rng r(25);
  for (auto _ : state) {
    lux::impl::alpha_dropout(Mode{}, r, 0.5f, static_cast<float>(c.alpha), static_cast<float>(c.A),
                             static_cast<float>(c.B), x.data(), y.data(), kN);
    r.advance();
    benchmark::ClobberMemory();
  }
  set_bytes(state, 8 * kN, kN);
  set_baseline<Mode>(state, 8 * kN, "BM_alpha_dropout_fwd");
}
template <class Mode>
void BM_alpha_dropout_bwd(benchmark::State& state) {
  const auto dy = filled(kN, 26);
  auto dx = filled(kN, 27);
  const lux::rng r(28);
  for (auto _ : state) {
    lux::impl::alpha_dropout_backward(Mode{}, r, 0.5f, 0.886405f, dy.data(), dx.data(), kN);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 8 * kN, kN);
  set_baseline<Mode>(state, 8 * kN, "BM_alpha_dropout_bwd");
}

// ---- registration: <base>/looped and <base>/generic ------------------------------------------
template <template <class> class Bench>
void register_modes(const std::string& base) {
  benchmark::RegisterBenchmark((base + "/looped").c_str(), &Bench<lux::looped_op>::run)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark((base + "/generic").c_str(), &Bench<lux::generic_op>::run)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}
template <class F>
struct act_bench {
  template <class Mode>
  struct fwd {
    static void run(benchmark::State& s) { BM_act_fwd<Mode, F>(s); }
  };
  template <class Mode>
  struct bwd {
    static void run(benchmark::State& s) { BM_act_bwd<Mode, F>(s); }
  };
  static void add() {
    register_modes<fwd>(act_base<F>("fwd"));
    register_modes<bwd>(act_base<F>("bwd"));
  }
};
#define LUX_MODE_BENCH(fn)                                     \
  template <class Mode>                                        \
  struct fn##_modes {                                          \
    static void run(benchmark::State& s) { BM_##fn<Mode>(s); } \
  };
LUX_MODE_BENCH(bias_relu_fwd)
LUX_MODE_BENCH(bias_relu_bwd)
LUX_MODE_BENCH(dropout_fwd)
LUX_MODE_BENCH(dropout_bwd)
LUX_MODE_BENCH(alpha_dropout_fwd)
LUX_MODE_BENCH(alpha_dropout_bwd)
#undef LUX_MODE_BENCH

const bool registered = [] {
  act_bench<lux::relu>::add();
  act_bench<lux::gelu>::add();
  act_bench<lux::tanh_>::add();
  act_bench<lux::sigmoid>::add();
  register_modes<bias_relu_fwd_modes>("BM_bias_relu_fwd");
  register_modes<bias_relu_bwd_modes>("BM_bias_relu_bwd");
  register_modes<dropout_fwd_modes>("BM_dropout_fwd");
  register_modes<dropout_bwd_modes>("BM_dropout_bwd");
  register_modes<alpha_dropout_fwd_modes>("BM_alpha_dropout_fwd");
  register_modes<alpha_dropout_bwd_modes>("BM_alpha_dropout_bwd");
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
