// Data-parallel training over MPI (lux/distributed), two measurements in one run:
//   1. all-reduce of a flat float buffer: lux::distributed (mpi_backend.allreduce with avg, what
//      DistributedOptimizer calls once per step) against a plain MPI_Allreduce(MPI_SUM) of the
//      same bytes, alternating, median of the repetitions, for the Fashion-MNIST CNN's gradient
//      buffer and a sweep of sizes;
//   2. training steps of that CNN (examples/common/models.hpp) at a fixed GLOBAL batch, split over
//      the ranks: steps/s and the all-reduce share of the step time.
// Run both layouts of the two cores and compare:
//   mpirun -np 1 --bind-to none build/default/benchmarks/bench_distributed --threads 2
//   mpirun -np 2 build/default/benchmarks/bench_distributed --threads 1
// (Open MPI binds each rank to one core when there are at most 2 ranks: the 2-thread run needs
// --bind-to none, or its threads share a core.)
// (as root add --allow-run-as-root). Rank 0 prints; nothing else may run on the machine.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <lux/distributed/mpi.hpp>
#include <lux/distributed/training.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <string>
#include <vector>

#include "../examples/common/models.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dist = lux::distributed;
using clk = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// Median seconds of lux's all-reduce and of MPI_Allreduce on n floats. The two alternate, and
/// which goes first alternates too (the first collective after a barrier absorbs the ranks'
/// skew).
std::pair<double, double> time_allreduce(const dist::mpi_backend& b, lux::index_t n, int reps) {
  std::vector<float> send(static_cast<std::size_t>(n), 1.0f), recv(send.size());
  std::vector<double> lux_t, mpi_t;
  const auto run_lux = [&] {
    b.barrier();
    const auto t0 = clk::now();
    b.allreduce(send.data(), recv.data(), n, dist::reduce_op::avg);
    return seconds_since(t0);
  };
  const auto run_mpi = [&] {
    b.barrier();
    const auto t0 = clk::now();
    MPI_Allreduce(send.data(), recv.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, b.comm());
    return seconds_since(t0);
  };
  for (int r = 0; r < reps + 2; ++r) {
    double a = 0, m = 0;
    if (r % 2 == 0) {
      a = run_lux();
      m = run_mpi();
    } else {
      m = run_mpi();
      a = run_lux();
    }
    if (r >= 2) {  // two warm-up rounds
      lux_t.push_back(a);
      mpi_t.push_back(m);
    }
  }
  // The slowest rank decides: take the maximum over the ranks of each median.
  double med[2] = {median(lux_t), median(mpi_t)};
  b.allreduce(med, med, 2, dist::reduce_op::max);
  return {med[0], med[1]};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, steps = 30, global_batch = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--threads")
      threads = v;
    else if (k == "--steps")
      steps = v;
    else if (k == "--global-batch")
      global_batch = v;
  }
#if defined(_OPENMP)
  if (threads > 0) omp_set_num_threads(threads);
  threads = omp_get_max_threads();
#endif
  const dist::mpi_backend b;
  const bool lead = b.local_rank() == 0;
  const int ranks = b.total_workers();
  if (global_batch % ranks != 0) {
    if (lead) std::fprintf(stderr, "the global batch must be a multiple of the ranks\n");
    return 1;
  }

  const auto model = lux_examples::fashion_mnist_cnn();
  lux::rng rng(1);
  auto [ps, st] = lux::setup<float>(rng, model);
  lux::TrainState ts(model, ps, st, dist::DistributedOptimizer(b, lux::optim::Adam{1e-3}));
  const lux::index_t grad_elems = ts.flat_gradients().buffer().size();

  if (lead) {
    std::printf("lux::distributed benchmark: %d rank(s) x %d thread(s)\n\n", ranks, threads);
    std::printf("1. all-reduce of a float buffer (median of 20, slowest rank)\n");
    std::printf("| floats | bytes | lux (avg) | MPI_Allreduce (sum) | lux / MPI | lux GB/s |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|\n");
  }
  std::vector<lux::index_t> sizes = {grad_elems, 1 << 16, 1 << 20, 1 << 22, 1 << 24};
  for (const lux::index_t n : sizes) {
    const auto [l, m] = time_allreduce(b, n, 20);
    const double bytes = double(n) * 4;
    if (lead)
      std::printf("| %td%s | %.2f MB | %.3f ms | %.3f ms | %.2f | %.2f |\n", n,
                  n == grad_elems ? " (CNN gradients)" : "", bytes / 1e6, l * 1e3, m * 1e3,
                  m > 0 ? l / m : 0.0, bytes / l / 1e9);
  }

  // 2. Training steps at a fixed global batch.
  const lux::index_t local = global_batch / ranks;
  auto x = lux::Tensor<float, 4>(lux::shape_t<4>{28, 28, 1, local});
  for (lux::index_t i = 0; i < x.numel(); ++i)
    x.data()[i] = float((i * 2654435761u + std::uint64_t(b.local_rank()) * 97) % 1000) / 1000.0f;
  lux::Tensor<std::int64_t, 1> y(lux::shape_t<1>{local});
  for (lux::index_t i = 0; i < local; ++i) y[i] = (i + b.local_rank()) % 10;
  const lux::CrossEntropyLoss<> loss({.logits = true});
  for (int w = 0; w < 3; ++w) lux::single_train_step(loss, std::tie(x, y), ts);  // warm-up
  // Per step: the gradients (forward + backward), the wait for the slowest rank (a barrier), and
  // the update (the all-reduce of the flat gradient buffer, then Adam).
  std::vector<double> step_t, grad_t, wait_t, reduce_t;
  for (int s = 0; s < steps; ++s) {
    b.barrier();
    b.reset_stats();
    const auto t0 = clk::now();
    lux::compute_gradients(loss, std::tie(x, y), ts);
    const double g = seconds_since(t0);
    const auto t1 = clk::now();
    b.barrier();
    const double w = seconds_since(t1);
    b.reset_stats();
    lux::apply_gradients(ts);
    step_t.push_back(seconds_since(t0));
    grad_t.push_back(g);
    wait_t.push_back(w);
    reduce_t.push_back(b.stats().seconds);
  }
  double med[4] = {median(step_t), median(grad_t), median(wait_t), median(reduce_t)};
  b.allreduce(med, med, 4, dist::reduce_op::max);
  if (lead) {
    std::printf(
        "\n2. Fashion-MNIST CNN training step, global batch %d (%td per rank), median of "
        "%d steps (slowest rank)\n",
        global_batch, local, steps);
    std::printf(
        "| ranks x threads | step | steps/s | images/s | gradients | wait for the slowest "
        "rank | all-reduce | all-reduce share |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    std::printf("| %d x %d | %.2f ms | %.1f | %.0f | %.2f ms | %.2f ms | %.3f ms | %.1f %% |\n",
                ranks, threads, med[0] * 1e3, 1 / med[0], global_batch / med[0], med[1] * 1e3,
                med[2] * 1e3, med[3] * 1e3, 100 * med[3] / med[0]);
  }
  return 0;
}
