// Dense and batched-matmul benchmarks (float32), each read against plain Eigen sgemm measured in
// the same binary:
//   * fused_dense_bias_activation + relu, forward and forward + backward, on (in 1024 → out 1024,
//     batch 256) and (4096 → 4096, batch 64); baselines: `C.noalias() = A * B` on Eigen::MatrixXf
//     of the same shape (forward) and the three sgemms of the backward (forward + backward);
//     for contrast, the unfused form (Eigen GEMM, then a separate bias + relu sweep);
//   * batched_matmul 64 × (256×256 · 256×256) and 512 × (64×64 · 64×64); baselines: one sgemm with
//     the same flops and inner size (a (n, n) · (n, n·L) product) and a plain loop of Eigen GEMMs;
//   * the generic (plain-loop) dense on a smaller shape, next to the looped one, for the ratio.
// Every benchmark reports FLOP/s (2·M·N·K per product) as a rate over wall-clock time.
//
// Build and run (see benchmarks/RESULTS.md):
//   g++ -std=c++20 -O3 -march=native -fopenmp -Wno-maybe-uninitialized -Iinclude
//       -isystem /usr/include/eigen3 benchmarks/bench_dense.cpp -o bench_dense -lbenchmark
//       -lpthread
//   ./bench_dense --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

// The lux headers first: they include Eigen with GCC 12's false AVX-512 warnings silenced.
#include <lux/core/parallel.hpp>
#include <lux/core/random.hpp>
#include <lux/kernels/batched_matmul.hpp>
#include <lux/kernels/dense.hpp>

#include <Eigen/Core>

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;

template <std::size_t N>
Tensor<float, N> random_tensor(const shape_t<N>& shape, std::uint64_t seed) {
  auto t = Tensor<float, N>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  for (auto& v : t) v = 2 * v - 1;
  return t;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Arguments of the dense benchmarks: {in, out, batch}.
void dense_shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 1024, 256})->Args({4096, 4096, 64});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// ---- baselines ---------------------------------------------------------------------------------
// C (out, batch) = A (out, in) · B (in, batch), Eigen's own threading.
void BM_eigen_sgemm(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const Eigen::MatrixXf A = Eigen::MatrixXf::Random(M, K), B = Eigen::MatrixXf::Random(K, N);
  Eigen::MatrixXf C(M, N);
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK(BM_eigen_sgemm)->Apply(dense_shapes);

// The three products of a dense forward + backward: y = W x, dW = dz xᵀ, dx = Wᵀ dz.
void BM_eigen_sgemm_fwd_bwd(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const Eigen::MatrixXf W = Eigen::MatrixXf::Random(M, K), X = Eigen::MatrixXf::Random(K, N);
  const Eigen::MatrixXf DZ = Eigen::MatrixXf::Random(M, N);
  Eigen::MatrixXf Y(M, N), DW(M, K), DX(K, N);
  for (auto _ : state) {
    Y.noalias() = W * X;
    DW.noalias() = DZ * X.transpose();
    DX.noalias() = W.transpose() * DZ;
    benchmark::DoNotOptimize(Y.data());
    benchmark::DoNotOptimize(DW.data());
    benchmark::DoNotOptimize(DX.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 6.0 * M * N * K);
}
BENCHMARK(BM_eigen_sgemm_fwd_bwd)->Apply(dense_shapes);

// Unfused: Eigen GEMM, then a separate parallel bias + relu sweep over the output.
void BM_dense_unfused_relu(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const Eigen::MatrixXf W = Eigen::MatrixXf::Random(M, K), X = Eigen::MatrixXf::Random(K, N);
  const Eigen::VectorXf b = Eigen::VectorXf::Random(M);
  Eigen::MatrixXf Y(M, N);
  for (auto _ : state) {
    Y.noalias() = W * X;
    lux::parallel_for(
        N, [&](index_t j) { Y.col(j) = (Y.col(j) + b).cwiseMax(0.0f); }, M * N);
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK(BM_dense_unfused_relu)->Apply(dense_shapes);

// ---- luxcpp dense ------------------------------------------------------------------------------
void BM_dense_relu_forward(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const auto W = random_tensor<2>({M, K}, 1);
  const auto x = random_tensor<2>({K, N}, 2);
  const auto b = random_tensor<1>({M}, 3);
  auto y = Tensor<float, 2>::uninitialized({M, N});
  for (auto _ : state) {
    lux::fused_dense_bias_activation(lux::relu{}, W, x, b, y.view());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK(BM_dense_relu_forward)->Apply(dense_shapes);

// The allocating forward (new output tensor every call), as a layer without buffer reuse would.
void BM_dense_relu_forward_alloc(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const auto W = random_tensor<2>({M, K}, 1);
  const auto x = random_tensor<2>({K, N}, 2);
  const auto b = random_tensor<1>({M}, 3);
  for (auto _ : state) {
    auto y = lux::fused_dense_bias_activation(lux::relu{}, W, x, b);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK(BM_dense_relu_forward_alloc)->Apply(dense_shapes);

void BM_dense_relu_forward_backward(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const auto W = random_tensor<2>({M, K}, 1);
  const auto x = random_tensor<2>({K, N}, 2);
  const auto b = random_tensor<1>({M}, 3);
  const auto dy = random_tensor<2>({M, N}, 4);
  for (auto _ : state) {
    auto r = lux::fused_dense_bias_activation_forward(lux::relu{}, W, x, b);
    auto g = lux::fused_dense_bias_activation_backward(lux::relu{}, dy, W, x, b, r);
    benchmark::DoNotOptimize(g.dweight.data());
    benchmark::DoNotOptimize(g.dx.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 6.0 * M * N * K);
}
BENCHMARK(BM_dense_relu_forward_backward)->Apply(dense_shapes);

// The same with the output and gradient buffers owned by the caller and reused (as the sgemm
// baseline reuses its matrices): no page faults on fresh 64 MiB weight gradients.
void BM_dense_relu_forward_backward_into(benchmark::State& state) {
  const index_t K = state.range(0), M = state.range(1), N = state.range(2);
  const auto W = random_tensor<2>({M, K}, 1);
  const auto x = random_tensor<2>({K, N}, 2);
  const auto b = random_tensor<1>({M}, 3);
  const auto dy = random_tensor<2>({M, N}, 4);
  auto y = Tensor<float, 2>::uninitialized({M, N});
  auto dW = Tensor<float, 2>::uninitialized({M, K});
  auto dx = Tensor<float, 2>::uninitialized({K, N});
  auto db = Tensor<float, 1>::uninitialized({M});
  const lux::dense_saved<float> saved;  // relu: the derivative comes from y
  for (auto _ : state) {
    lux::fused_dense_bias_activation(lux::relu{}, W, x, b, y.view());
    lux::fused_dense_bias_activation_backward(
        lux::relu{}, dy, W, x, b, y, saved,
        lux::dense_gradient_views<float>{dW.view(), dx.view(), db.view()});
    benchmark::DoNotOptimize(dW.data());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 6.0 * M * N * K);
}
BENCHMARK(BM_dense_relu_forward_backward_into)->Apply(dense_shapes);

// Generic (plain loops) vs looped on a smaller shape: in 256 → out 256, batch 64.
template <class Mode>
void BM_dense_relu_forward_mode(benchmark::State& state) {
  const index_t K = 256, M = 256, N = 64;
  const auto W = random_tensor<2>({M, K}, 1);
  const auto x = random_tensor<2>({K, N}, 2);
  const auto b = random_tensor<1>({M}, 3);
  auto y = Tensor<float, 2>::uninitialized({M, N});
  for (auto _ : state) {
    lux::fused_dense_bias_activation(Mode{}, lux::relu{}, W, x, b, y.view());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * M * N * K);
}
BENCHMARK_TEMPLATE(BM_dense_relu_forward_mode, lux::generic_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_dense_relu_forward_mode, lux::looped_op)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- batched matmul ----------------------------------------------------------------------------
// Arguments: {L, n}: L products of (n × n) · (n × n).
void bmm_shapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 256})->Args({512, 64});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_batched_matmul(benchmark::State& state) {
  const index_t L = state.range(0), n = state.range(1);
  const auto a = random_tensor<3>({n, n, L}, 5);
  const auto b = random_tensor<3>({n, n, L}, 6);
  auto c = Tensor<float, 3>::uninitialized({n, n, L});
  for (auto _ : state) {
    lux::batched_matmul(a, lux::op::none, b, lux::op::none, c.view());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(L) * n * n * n);
}
BENCHMARK(BM_batched_matmul)->Apply(bmm_shapes);

void BM_batched_matmul_backward(benchmark::State& state) {
  const index_t L = state.range(0), n = state.range(1);
  const auto a = random_tensor<3>({n, n, L}, 5);
  const auto b = random_tensor<3>({n, n, L}, 6);
  const auto dc = random_tensor<3>({n, n, L}, 7);
  for (auto _ : state) {
    auto g = lux::batched_matmul_backward(dc, a, b);
    benchmark::DoNotOptimize(g.da.data());
    benchmark::DoNotOptimize(g.db.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 4.0 * static_cast<double>(L) * n * n * n);
}
BENCHMARK(BM_batched_matmul_backward)->Apply(bmm_shapes);

// The same into caller-owned gradient buffers (reused across iterations).
void BM_batched_matmul_backward_into(benchmark::State& state) {
  const index_t L = state.range(0), n = state.range(1);
  const auto a = random_tensor<3>({n, n, L}, 5);
  const auto b = random_tensor<3>({n, n, L}, 6);
  const auto dc = random_tensor<3>({n, n, L}, 7);
  auto da = Tensor<float, 3>::uninitialized({n, n, L});
  auto db = Tensor<float, 3>::uninitialized({n, n, L});
  for (auto _ : state) {
    lux::batched_matmul_backward(dc, a, lux::op::none, b, lux::op::none, da.view(), db.view());
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 4.0 * static_cast<double>(L) * n * n * n);
}
BENCHMARK(BM_batched_matmul_backward_into)->Apply(bmm_shapes);

// Baseline: one sgemm of the same flops and inner size, (n × n) · (n × n·L), Eigen-threaded.
void BM_eigen_sgemm_flat(benchmark::State& state) {
  const index_t L = state.range(0), n = state.range(1);
  const Eigen::MatrixXf A = Eigen::MatrixXf::Random(n, n), B = Eigen::MatrixXf::Random(n, n * L);
  Eigen::MatrixXf C(n, n * L);
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(L) * n * n * n);
}
BENCHMARK(BM_eigen_sgemm_flat)->Apply(bmm_shapes);

// Baseline: a plain loop over the slices, each an Eigen-threaded sgemm.
void BM_eigen_sgemm_loop(benchmark::State& state) {
  const index_t L = state.range(0), n = state.range(1);
  const auto a = random_tensor<3>({n, n, L}, 5);
  const auto b = random_tensor<3>({n, n, L}, 6);
  auto c = Tensor<float, 3>::uninitialized({n, n, L});
  for (auto _ : state) {
    for (index_t l = 0; l < L; ++l) {
      Eigen::Map<const Eigen::MatrixXf> A(a.data() + n * n * l, n, n),
          B(b.data() + n * n * l, n, n);
      Eigen::Map<Eigen::MatrixXf> C(c.data() + n * n * l, n, n);
      C.noalias() = A * B;
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(L) * n * n * n);
}
BENCHMARK(BM_eigen_sgemm_loop)->Apply(bmm_shapes);

}  // namespace

BENCHMARK_MAIN();
