// Training-step benchmarks (float32): whole Lux.Training steps — forward, pullback, softmax
// cross-entropy, gradients into the flat buffer, Adam update — of the models the examples train
// (examples/common/models.hpp), at batch 128:
//   * the Fashion-MNIST CNN on (28, 28, 1, 128);
//   * the MLP 784-512-512-10 on (784, 128);
// with the parts timed separately (forward in test mode; pullback + back; the Adam update alone,
// whose baseline is a memcpy of the 7 × 4 bytes per parameter it moves) so a regression can be
// placed. Reported: time per step, steps/s (items_per_second with one item per step), GFLOP/s of
// the model's products (forward 2·MACs, a step 3× that).
//
//   build/default/benchmarks/bench_training --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <cstring>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <vector>

#include "../examples/common/models.hpp"

namespace {

using lux::index_t;

constexpr index_t batch = 128;
// Multiply-adds per sample. CNN: conv 28·28·32·9, 14·14·64·288, 7·7·128·576, dense 1152·128 +
// 128·10.
constexpr double cnn_macs =
    28.0 * 28 * 32 * 9 + 14.0 * 14 * 64 * 288 + 7.0 * 7 * 128 * 576 + 1152.0 * 128 + 128.0 * 10;
constexpr double mlp_macs = 784.0 * 512 + 512.0 * 512 + 512.0 * 10;

template <std::size_t N>
lux::Tensor<float, N> random_input(const lux::shape_t<N>& shape, std::uint64_t seed) {
  auto t = lux::Tensor<float, N>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  return t;
}

lux::Tensor<std::int64_t, 1> random_labels(std::uint64_t seed) {
  lux::Tensor<std::int64_t, 1> y(lux::shape_t<1>{batch});
  const lux::rng r(seed);
  for (index_t i = 0; i < batch; ++i)
    y[i] = static_cast<std::int64_t>(r.bits_at(std::uint64_t(i)) % 10);
  return y;
}

void report(benchmark::State& state, double macs_per_sample, double passes) {
  state.SetItemsProcessed(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(
      passes * 2 * macs_per_sample * batch * static_cast<double>(state.iterations()) * 1e-9,
      benchmark::Counter::kIsRate);
}

template <class Model, std::size_t N>
void train_step(benchmark::State& state, const Model& model, const lux::shape_t<N>& in,
                double macs) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{1e-3});
  const auto x = random_input(in, 2);
  const auto y = random_labels(3);
  const auto data = std::tie(x, y);
  const lux::CrossEntropyLoss<> loss({.logits = true});
  for (auto _ : state) benchmark::DoNotOptimize(lux::single_train_step(loss, data, ts).loss);
  report(state, macs, 3);
}

template <class Model, std::size_t N>
void forward(benchmark::State& state, const Model& model, const lux::shape_t<N>& in, double macs) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_input(in, 2);
  const auto test_st = lux::testmode(st);
  for (auto _ : state) {
    auto [y, st2] = lux::apply(model, x, ps, test_st);
    benchmark::DoNotOptimize(y.data());
  }
  report(state, macs, 1);
}

template <class Model, std::size_t N>
void forward_backward(benchmark::State& state, const Model& model, const lux::shape_t<N>& in,
                      double macs) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto x = random_input(in, 2);
  const auto dy = random_input(lux::shape_t<2>{10, batch}, 4);
  for (auto _ : state) {
    auto pb = lux::pullback(model, x, ps, st);
    auto g = pb.back(dy);
    benchmark::DoNotOptimize(g.dps);
  }
  report(state, macs, 3);
}

template <class Model>
void adam_update(benchmark::State& state, const Model& model) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::flat_tree params(ps);
  auto grads = params.zeros_like();
  grads.assign(ps);
  auto opt = lux::optim::setup(lux::optim::Adam{1e-3}, params);
  for (auto _ : state) {
    lux::optim::update(opt, params, grads);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 7 * 4 * params.layout().size());
}

/// The machine's limit for the update: a memcpy of the same bytes (counted read + write).
template <class Model>
void adam_update_memcpy(benchmark::State& state, const Model& model) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto n = static_cast<std::size_t>(lux::flat_tree(ps).layout().size()) * 7 * 4 / 2;
  std::vector<char> a(n, 1), b(n);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<std::int64_t>(n));
}

const lux::shape_t<4> cnn_in{28, 28, 1, batch};
const lux::shape_t<2> mlp_in{784, batch};

void BM_cnn_train_step(benchmark::State& s) {
  train_step(s, lux_examples::fashion_mnist_cnn(), cnn_in, cnn_macs);
}
void BM_cnn_forward(benchmark::State& s) {
  forward(s, lux_examples::fashion_mnist_cnn(), cnn_in, cnn_macs);
}
void BM_cnn_forward_backward(benchmark::State& s) {
  forward_backward(s, lux_examples::fashion_mnist_cnn(), cnn_in, cnn_macs);
}
void BM_cnn_adam_update(benchmark::State& s) { adam_update(s, lux_examples::fashion_mnist_cnn()); }
void BM_cnn_adam_update_memcpy(benchmark::State& s) {
  adam_update_memcpy(s, lux_examples::fashion_mnist_cnn());
}
void BM_mlp_train_step(benchmark::State& s) {
  train_step(s, lux_examples::mlp_784_512_512_10(), mlp_in, mlp_macs);
}
void BM_mlp_forward(benchmark::State& s) {
  forward(s, lux_examples::mlp_784_512_512_10(), mlp_in, mlp_macs);
}
void BM_mlp_forward_backward(benchmark::State& s) {
  forward_backward(s, lux_examples::mlp_784_512_512_10(), mlp_in, mlp_macs);
}
void BM_mlp_adam_update(benchmark::State& s) { adam_update(s, lux_examples::mlp_784_512_512_10()); }
void BM_mlp_adam_update_memcpy(benchmark::State& s) {
  adam_update_memcpy(s, lux_examples::mlp_784_512_512_10());
}

}  // namespace

BENCHMARK(BM_cnn_train_step)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_cnn_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_cnn_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_cnn_adam_update)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_cnn_adam_update_memcpy)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_mlp_train_step)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_adam_update)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_mlp_adam_update_memcpy)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
