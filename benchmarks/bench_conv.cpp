// Convolution benchmarks: lux::fused_conv_bias_activation (bias + relu) and its backward pass,
// float32, looped mode, on
//   conv3x3    x (56, 56, 64, 32), weight (3, 3, 64, 64), pad 1
//   conv7x7s2  x (224, 224, 3, 8), weight (7, 7, 3, 64), stride 2, pad 3
//   depthwise  x (56, 56, 64, 32), weight (3, 3, 1, 64), groups 64, pad 1
// forward, and forward + backward (dx, dweight, dbias). FLOPs: 2·out_elems·∏k·C_in/groups per
// forward; the backward adds two more of those (data and filter gradients), so forward+backward
// counts 3×. The same binary measures
//   * the compute baseline: a plain Eigen sgemm of the equivalent GEMM per sample — (out pixels ×
//     ∏k·C_in) · (∏k·C_in × C_out), e.g. 3136 × 576 · 576 × 64 — looped over the batch, Eigen
//     threaded (the same FLOP count as the conv's forward), and the same GEMMs with the batch split
//     over OpenMP threads (single-threaded Eigen per sample);
//   * generic mode against looped mode on a smaller conv (x (28, 28, 32, 4), weight (3, 3, 32, 32),
//     pad 1) and a smaller depthwise conv, for the looped / generic ratio.
//
//   g++ -std=c++20 -O3 -march=native -fopenmp -Wno-maybe-uninitialized -Iinclude
//       -isystem /usr/include/eigen3 benchmarks/bench_conv.cpp -lbenchmark -lpthread -o bench_conv
//   ./bench_conv --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//                --benchmark_min_time=0.2
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR 105593, see test_activations
#endif

#include <benchmark/benchmark.h>

#include <cstdint>
#include <lux/core/random.hpp>
#include <lux/kernels/conv.hpp>

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;

template <std::size_t N>
Tensor<float, N> random_input(const shape_t<N>& shape, std::uint64_t seed) {
  auto t = Tensor<float, N>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  for (index_t i = 0; i < t.numel(); ++i) t[i] = 2 * t[i] - 1;
  return t;
}

struct problem {
  shape_t<4> x, w;
  lux::conv_dims<2> cd;
};

const problem conv3x3{{56, 56, 64, 32}, {3, 3, 64, 64}, lux::conv_dims<2>{}.with_pad(1)};
const problem conv7x7{
    {224, 224, 3, 8}, {7, 7, 3, 64}, lux::conv_dims<2>{}.with_stride(2).with_pad(3)};
const problem depthwise{
    {56, 56, 64, 32}, {3, 3, 1, 64}, lux::conv_dims<2>{}.with_groups(64).with_pad(1)};
const problem small_conv{{28, 28, 32, 4}, {3, 3, 32, 32}, lux::conv_dims<2>{}.with_pad(1)};
const problem small_depthwise{
    {28, 28, 32, 4}, {3, 3, 1, 32}, lux::conv_dims<2>{}.with_groups(32).with_pad(1)};

/// 2·out_elems·∏k·C_in/groups.
double forward_flops(const problem& p) {
  const auto ys = lux::conv_output_shape<2>(p.x, p.w, p.cd);
  const double out = static_cast<double>(ys[0] * ys[1] * ys[2] * ys[3]);
  return 2.0 * out * static_cast<double>(p.w[0] * p.w[1] * p.w[2]);
}

void set_flops(benchmark::State& state, double flops) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Mode>
void BM_forward(benchmark::State& state, const problem& p, Mode mode) {
  const auto x = random_input(p.x, 1);
  const auto w = random_input(p.w, 2);
  const auto b = random_input(shape_t<1>{p.w[3]}, 3);
  for (auto _ : state) {
    auto y = lux::fused_conv_bias_activation(mode, lux::relu{}, w, x, b, p.cd);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, forward_flops(p));
}

template <class Mode>
void BM_forward_backward(benchmark::State& state, const problem& p, Mode mode) {
  const auto x = random_input(p.x, 1);
  const auto w = random_input(p.w, 2);
  const auto b = random_input(shape_t<1>{p.w[3]}, 3);
  const auto dy = random_input(lux::conv_output_shape<2>(p.x, p.w, p.cd), 4);
  for (auto _ : state) {
    auto r = lux::fused_conv_bias_activation_forward(mode, lux::relu{}, w, x, b, p.cd);
    auto g = lux::fused_conv_bias_activation_backward(mode, lux::relu{}, dy, w, x, b, r.y,
                                                      lux::none, p.cd);
    benchmark::DoNotOptimize(g.dx.data());
    benchmark::DoNotOptimize(g.dweight.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 3 * forward_flops(p));
}

/// The equivalent GEMM per sample, (pixels × K) · (K × C_out), over the batch; Eigen threaded.
void BM_sgemm_equivalent(benchmark::State& state, const problem& p) {
  const auto ys = lux::conv_output_shape<2>(p.x, p.w, p.cd);
  const index_t M = ys[0] * ys[1], K = p.w[0] * p.w[1] * p.w[2], N = p.w[3], batch = p.x[3];
  const auto a = random_input(shape_t<2>{M, K}, 5);
  const auto bm = random_input(shape_t<2>{K, N}, 6);
  auto c = Tensor<float, 3>::uninitialized(shape_t<3>{M, N, batch});
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Map<const Mat> A(a.data(), M, K), B(bm.data(), K, N);
  for (auto _ : state) {
    for (index_t n = 0; n < batch; ++n) {
      Eigen::Map<Mat> C(c.data() + n * M * N, M, N);
      C.noalias() = A * B;
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(M * K * N * batch));
}

/// The same GEMMs with the batch split over OpenMP threads, one single-threaded Eigen GEMM per
/// sample (Eigen runs serially inside a parallel region). Unlike Eigen's own threading, which
/// synchronizes its threads inside every product, this does not collapse when another process
/// takes a core, so it is the sturdier baseline on a shared machine.
void BM_sgemm_equivalent_batch_parallel(benchmark::State& state, const problem& p) {
  const auto ys = lux::conv_output_shape<2>(p.x, p.w, p.cd);
  const index_t M = ys[0] * ys[1], K = p.w[0] * p.w[1] * p.w[2], N = p.w[3], batch = p.x[3];
  const auto a = random_input(shape_t<2>{M, K}, 5);
  const auto bm = random_input(shape_t<2>{K, N}, 6);
  auto c = Tensor<float, 3>::uninitialized(shape_t<3>{M, N, batch});
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Map<const Mat> A(a.data(), M, K), B(bm.data(), K, N);
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (index_t n = 0; n < batch; ++n) {
      Eigen::Map<Mat> C(c.data() + n * M * N, M, N);
      C.noalias() = A * B;
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(M * K * N * batch));
}

}  // namespace

BENCHMARK_CAPTURE(BM_sgemm_equivalent_batch_parallel, conv3x3, conv3x3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_sgemm_equivalent, conv3x3, conv3x3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward, conv3x3_looped, conv3x3, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward_backward, conv3x3_looped, conv3x3, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_CAPTURE(BM_sgemm_equivalent_batch_parallel, conv7x7s2, conv7x7)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_sgemm_equivalent, conv7x7s2, conv7x7)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward, conv7x7s2_looped, conv7x7, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward_backward, conv7x7s2_looped, conv7x7, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_CAPTURE(BM_forward, depthwise_looped, depthwise, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward_backward, depthwise_looped, depthwise, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_CAPTURE(BM_forward, small_conv_looped, small_conv, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward, small_conv_generic, small_conv, lux::generic_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward, small_depthwise_looped, small_depthwise, lux::looped_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_forward, small_depthwise_generic, small_depthwise, lux::generic_op{})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
