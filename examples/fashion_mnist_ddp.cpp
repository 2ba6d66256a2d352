// Fashion-MNIST, data-parallel over MPI: the fashion_mnist example's CNN, objective and schedule,
// trained by several processes that each see a shard of the data (Lux's DistributedUtils:
// MPIBackend, synchronize!!, DistributedOptimizer, DistributedDataContainer).
//
//   mpirun -np 2 build/default/examples/fashion_mnist_ddp --epochs 3 --batch-size 32 --threads 1
//       (as root add --allow-run-as-root; on a machine with fewer cores than ranks, --oversubscribe)
//
// * Every rank builds the model from the same seed and then takes rank 0's parameters and states
//   (synchronize), so they start identical.
// * Each rank iterates over its contiguous shard of the training set (ceil(60000 / ranks)
//   images); --batch-size is per rank, so the global batch is ranks × batch-size (2 × 32 = the
//   single-process example's 64).
// * DistributedOptimizer averages the gradients over the ranks with one all-reduce per step and
//   applies Adam: the parameters stay bit-identical on every rank.
// * BatchNorm's running statistics are per rank during an epoch, as in Lux; they are averaged
//   over the ranks (allreduce avg) before each evaluation and the checkpoint.
// * Rank 0 prints, writes metrics.csv and the checkpoint; the test set is evaluated in shards and
//   the sums all-reduced. The all-reduce share of the step time is measured and printed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <lux/distributed/mpi.hpp>
#include <lux/distributed/training.hpp>
#include <lux/io/dataloader.hpp>
#include <lux/io/idx.hpp>
#include <lux/io/safetensors.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <string>

#include "common/classification.hpp"
#include "common/models.hpp"
#include "common/options.hpp"
#include "common/progress.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dist = lux::distributed;

namespace {

/// Test-set loss and accuracy: each rank evaluates its shard, the sums are all-reduced.
template <class Model, class PS, class ST>
lux_examples::evaluation evaluate_sharded(const dist::mpi_backend& b, const Model& model,
                                          const PS& ps, const ST& st, const lux::mnist_like& data) {
  lux::DataLoader loader(std::tie(data.images, data.labels),
                         {.batchsize = 1000, .shard = dist::shard_of(b)});
  const auto s = lux_examples::evaluate_sums(model, ps, st, loader);
  std::array<double, 3> sums{s.loss, s.correct, s.count};
  b.allreduce(sums.data(), sums.data(), 3, dist::reduce_op::sum);
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a CNN on Fashion-MNIST with luxcpp, data-parallel over MPI"};
  lux_examples::fashion_mnist_options opt;
  opt.out_dir = "build/fashion_mnist_ddp";
  opt.batch_size = 32;
  opt.threads = 1;
  opt.add_to(app, "images per step and rank", "OpenMP threads per rank (0: the runtime's default)");
  CLI11_PARSE(app, argc, argv);

#if defined(_OPENMP)
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
#endif
  int status = 0;
  try {
    const dist::mpi_backend backend;
    const bool lead = backend.local_rank() == 0;
    const int ranks = backend.total_workers();
#if defined(_OPENMP)
    if (lead) std::printf("ranks: %d, threads per rank: %d\n", ranks, omp_get_max_threads());
#endif
    auto [train, test] = lux_examples::load_fashion_mnist_splits(opt);

    const auto model = lux_examples::fashion_mnist_cnn();
    lux::rng rng(opt.seed);
    auto [ps, st] = lux::setup<float>(rng, model);
    lux::TrainState ts(model, ps, st,
                       dist::DistributedOptimizer(backend, lux::optim::Adam{opt.lr}));
    dist::synchronize(backend, ts);  // every rank starts from rank 0's model
    auto loader =
        dist::sharded_loader(backend, std::tie(train.images, train.labels),
                             {.batchsize = opt.batch_size, .shuffle = true, .rng = rng.split(1)});
    ts.schedule = lux_examples::learning_rate_schedule(opt, std::int64_t(loader.size()));
    if (lead)
      std::printf(
          "Fashion-MNIST: %td training images in %d shards of about %td, global batch %d "
          "(%d per rank), %td steps per epoch; %td test images\n",
          train.size(), ranks, loader.numobs(), opt.batch_size * ranks, opt.batch_size,
          loader.size(), test.size());

    std::ofstream csv;
    if (lead) {
      std::filesystem::create_directories(opt.out_dir);
      csv.open(opt.out_dir + "/metrics.csv");
      csv << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,epoch_seconds,steps_per_"
             "second,allreduce_share\n";
    }
    const lux_examples::classification_objective objective{
        lux::CrossEntropyLoss<>({.logits = true})};
    lux_examples::evaluation last{};
    for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
      lux_examples::progress_bar bar(
          "epoch " + std::to_string(epoch) + "/" + std::to_string(opt.epochs), long(loader.size()));
      std::array<double, 3> sums{};  // loss × batch, correct, seen (this rank)
      long done = 0;
      backend.reset_stats();
      for (const auto& [x, y] : loader) {
        auto r = lux::compute_gradients(objective, std::tie(x, y), ts);
        lux::require<lux::argument_error>(std::isfinite(r.loss), "fashion_mnist_ddp: loss is ",
                                          r.loss, " at step ", ts.step);
        lux::apply_gradients(ts);  // the all-reduce happens here
        sums[0] += double(r.loss) * double(y.numel());
        sums[1] += double(r.stats.get<"correct">());
        sums[2] += double(y.numel());
        ++done;
        if (lead) bar.update(done, sums[0] / sums[2], sums[1] / sums[2], long(sums[2]) * ranks);
      }
      const double secs = bar.seconds();
      const double share = backend.stats().seconds / secs;
      backend.allreduce(sums.data(), sums.data(), 3, dist::reduce_op::sum);
      dist::allreduce(backend, ts.states, dist::reduce_op::avg);  // BatchNorm running statistics
      last = evaluate_sharded(backend, ts.model, ts.params(), ts.states, test);
      if (lead) {
        std::printf(
            "epoch %d: train loss %.4f accuracy %.2f%% | test loss %.4f accuracy %.2f%% | %.1f s, "
            "%.1f steps/s, %.0f images/s, all-reduce %.1f%% of the time\n",
            epoch, sums[0] / sums[2], 100.0 * sums[1] / sums[2], last.loss, 100 * last.accuracy,
            secs, double(done) / secs, sums[2] / secs, 100 * share);
        csv << epoch << ',' << sums[0] / sums[2] << ',' << sums[1] / sums[2] << ',' << last.loss
            << ',' << last.accuracy << ',' << secs << ',' << double(done) / secs << ',' << share
            << '\n'
            << std::flush;
      }
    }

    // The parameters must be bit-identical on every rank.
    const auto& pb = ts.flat_parameters().buffer();
    const bool identical = backend.all_equal(dist::detail::fingerprint(std::string_view(
        reinterpret_cast<const char*>(pb.data()), std::size_t(pb.size()) * sizeof(float))));
    if (lead) {
      std::printf("parameters on the %d ranks: %s\n", ranks,
                  identical ? "bit-identical" : "DIFFERENT");
      const std::string ckpt = opt.out_dir + "/fashion_mnist_ddp.safetensors";
      lux::save(ckpt, lux::named("params", ts.params()), lux::named("states", ts.states),
                lux::safetensors_metadata{{"model", "fashion_mnist_cnn"},
                                          {"ranks", std::to_string(ranks)},
                                          {"test_accuracy", std::to_string(last.accuracy)}});
      std::printf("checkpoint: %s\n", ckpt.c_str());
    }
    if (!identical) status = 1;
    if (last.accuracy < opt.min_accuracy) {
      if (lead)
        std::printf("test accuracy %.2f%% is below --min-accuracy %.2f%%\n", 100 * last.accuracy,
                    100 * opt.min_accuracy);
      status = 1;
    }
  } catch (const lux::error& e) {
    std::fprintf(stderr, "fashion_mnist_ddp: %s\n", e.what());
    return 1;
  }
  return status;
}
