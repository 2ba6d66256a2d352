// Layer benchmarks (float32): what the layer abstraction costs over the kernels it calls, and
// end-to-end model throughput.
//   * MLP Chain(Dense(784 => 256, relu), Dense(256 => 10)), batch 256, pullback + back, against
//     the same four fused-dense kernel calls written by hand (baseline "vs=" in the label): the
//     ratio is the overhead of named-tuple parameters, pullback closures and the copies the
//     layers keep for back;
//   * LSTM: Recurrence(LSTMCell(64 => 128)) on (64, T = 32, B = 32), forward + BPTT, against the
//     bare Eigen sgemms of the same products (per step W_ih x, W_hh h; backward dW_ih, dW_hh,
//     dx, dh: six products), i.e. the floor set by the GEMMs alone;
//   * LeNet (Lux's LeNet-5 layout) on (28, 28, 1, 64), forward and forward + backward, reported in
//     GFLOP/s of its convolutions and dense products (no single-GEMM baseline fits its mix of
//     small products, so the figure is absolute; bench_conv / bench_dense hold the per-kernel
//     ratios).
// Every benchmark reports FLOP/s (2·M·N·K per product; a backward counts two products per
// forward one).
//
// Build and run (see benchmarks/RESULTS.md): benchmarks/run.sh (all binaries), or
//   build/default/benchmarks/bench_layers --benchmark_repetitions=5
#include <benchmark/benchmark.h>

// The lux headers first: they include Eigen with GCC 12's false AVX-512 warnings silenced.
#include <lux/core/random.hpp>
#include <lux/kernels/dense.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/pooling.hpp>
#include <lux/layers/recurrent.hpp>
#include <lux/layers/utility.hpp>

#include <Eigen/Core>

namespace {

using lux::index_t;
using lux::Tensor;

template <std::size_t N>
Tensor<float, N> random_tensor(const lux::shape_t<N>& shape, std::uint64_t seed) {
  auto t = Tensor<float, N>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  for (auto& v : t) v = 2 * v - 1;
  return t;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---- MLP: layers vs the same kernels by hand ---------------------------------------------------
constexpr index_t mlp_in = 784, mlp_hidden = 256, mlp_out = 10, mlp_batch = 256;
constexpr double mlp_flops =
    3 * 2.0 * mlp_batch * (double(mlp_in) * mlp_hidden + double(mlp_hidden) * mlp_out);

void BM_mlp_kernels_fwd_bwd(benchmark::State& state) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(
      r, lux::Chain(lux::Dense({mlp_in, mlp_hidden}, lux::relu{}), lux::Dense({mlp_hidden, mlp_out})));
  const auto& w1 = ps.get<"layer_1">().get<"weight">();
  const auto& b1 = ps.get<"layer_1">().get<"bias">();
  const auto& w2 = ps.get<"layer_2">().get<"weight">();
  const auto& b2 = ps.get<"layer_2">().get<"bias">();
  const auto x = random_tensor(lux::make_shape(mlp_in, mlp_batch), 2);
  const auto dy = random_tensor(lux::make_shape(mlp_out, mlp_batch), 3);
  for (auto _ : state) {
    auto [h, s1] = lux::fused_dense_bias_activation_forward(lux::relu{}, w1, x, b1);
    auto [y, s2] = lux::fused_dense_bias_activation_forward(lux::identity{}, w2, h, b2);
    auto g2 = lux::fused_dense_bias_activation_backward(lux::identity{}, dy, w2, h, b2, lux::none, s2);
    auto g1 = lux::fused_dense_bias_activation_backward(lux::relu{}, g2.dx, w1, x, b1, h, s1);
    benchmark::DoNotOptimize(g1.dx.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, mlp_flops);
}
BENCHMARK(BM_mlp_kernels_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_mlp_layers_fwd_bwd(benchmark::State& state) {
  auto model =
      lux::Chain(lux::Dense({mlp_in, mlp_hidden}, lux::relu{}), lux::Dense({mlp_hidden, mlp_out}));
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_tensor(lux::make_shape(mlp_in, mlp_batch), 2);
  const auto dy = random_tensor(lux::make_shape(mlp_out, mlp_batch), 3);
  for (auto _ : state) {
    auto [y, st2, back] = lux::pullback(model, x, ps, st);
    auto g = back(dy);
    benchmark::DoNotOptimize(g.dx.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, mlp_flops);
  state.SetLabel("vs=BM_mlp_kernels_fwd_bwd");
}
BENCHMARK(BM_mlp_layers_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- LSTM: Recurrence(LSTMCell) vs its bare GEMMs --------------------------------------------------
constexpr index_t lstm_in = 64, lstm_hidden = 128, lstm_steps = 32, lstm_batch = 32;
constexpr double lstm_step_flops =
    2.0 * 4 * lstm_hidden * double(lstm_in + lstm_hidden) * lstm_batch;  // W_ih x + W_hh h

void BM_lstm_eigen_gemms_fwd_bwd(benchmark::State& state) {
  const index_t G = 4 * lstm_hidden;
  const Eigen::MatrixXf wih = Eigen::MatrixXf::Random(G, lstm_in);
  const Eigen::MatrixXf whh = Eigen::MatrixXf::Random(G, lstm_hidden);
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(lstm_in, lstm_batch);
  Eigen::MatrixXf h = Eigen::MatrixXf::Random(lstm_hidden, lstm_batch);
  Eigen::MatrixXf z(G, lstm_batch), dz = Eigen::MatrixXf::Random(G, lstm_batch);
  Eigen::MatrixXf dwih(G, lstm_in), dwhh(G, lstm_hidden), dx(lstm_in, lstm_batch),
      dh(lstm_hidden, lstm_batch);
  for (auto _ : state) {
    for (index_t t = 0; t < lstm_steps; ++t) {
      z.noalias() = wih * x;
      z.noalias() += whh * h;
      benchmark::DoNotOptimize(z.data());
    }
    dwih.setZero();
    dwhh.setZero();
    for (index_t t = 0; t < lstm_steps; ++t) {
      dwih.noalias() += dz * x.transpose();
      dwhh.noalias() += dz * h.transpose();
      dx.noalias() = wih.transpose() * dz;
      dh.noalias() = whh.transpose() * dz;
      benchmark::DoNotOptimize(dh.data());
    }
    benchmark::ClobberMemory();
  }
  set_flops(state, 3 * lstm_step_flops * lstm_steps);
}
BENCHMARK(BM_lstm_eigen_gemms_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_lstm_recurrence_fwd_bwd(benchmark::State& state) {
  auto model = lux::Recurrence(lux::LSTMCell({lstm_in, lstm_hidden}));
  lux::rng r(4);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_tensor(lux::make_shape(lstm_in, lstm_steps, lstm_batch), 5);
  const auto dy = random_tensor(lux::make_shape(lstm_hidden, lstm_batch), 6);
  for (auto _ : state) {
    auto [y, st2, back] = lux::pullback(model, x, ps, st);
    auto g = back(dy);
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_flops(state, 3 * lstm_step_flops * lstm_steps);
  state.SetLabel("vs=BM_lstm_eigen_gemms_fwd_bwd");
}
BENCHMARK(BM_lstm_recurrence_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- LeNet end to end -----------------------------------------------------------------------------
constexpr index_t lenet_batch = 64;
// conv1 24·24·6 outputs × 25 MACs, conv2 8·8·16 × 150, dense 256·120 + 120·84 + 84·10.
constexpr double lenet_flops =
    2.0 * lenet_batch *
    (24.0 * 24 * 6 * 25 + 8.0 * 8 * 16 * 150 + 256.0 * 120 + 120.0 * 84 + 84.0 * 10);

auto make_lenet() {
  return lux::Chain(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::MaxPool({2, 2}),
                    lux::Conv({5, 5}, {6, 16}, lux::relu{}), lux::MaxPool({2, 2}),
                    lux::FlattenLayer{}, lux::Dense({256, 120}, lux::relu{}),
                    lux::Dense({120, 84}, lux::relu{}), lux::Dense({84, 10}));
}

void BM_lenet_forward(benchmark::State& state) {
  auto model = make_lenet();
  lux::rng r(7);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_tensor(lux::make_shape(28, 28, 1, lenet_batch), 8);
  for (auto _ : state) {
    auto [y, st2] = lux::apply(model, x, ps, st);
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, lenet_flops);
  state.SetLabel("batch 64");
}
BENCHMARK(BM_lenet_forward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_lenet_forward_backward(benchmark::State& state) {
  auto model = make_lenet();
  lux::rng r(7);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_tensor(lux::make_shape(28, 28, 1, lenet_batch), 8);
  const auto dy = random_tensor(lux::make_shape(10, lenet_batch), 9);
  for (auto _ : state) {
    auto [y, st2, back] = lux::pullback(model, x, ps, st);
    auto g = back(dy);
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_flops(state, 3 * lenet_flops);
  state.SetLabel("batch 64");
}
BENCHMARK(BM_lenet_forward_backward)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
