// Shared by the Fashion-MNIST examples: their common command-line options and data loading.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <lux/io/idx.hpp>
#include <lux/training/optim/schedules.hpp>
#include <string>

namespace lux_examples {

/// The options both Fashion-MNIST programs take (defaults: the single-process run).
struct fashion_mnist_options {
  int epochs = 3;
  int batch_size = 64;
  int threads = 0;
  double lr = 2e-3;
  std::uint64_t seed = 2026;
  long train_limit = 0;
  long test_limit = 0;
  long warmup = 200;
  double min_accuracy = 0;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "build/fashion_mnist";

  /// Registers the options on `app` (batch_help and threads_help say what they mean there).
  void add_to(CLI::App& app, const char* batch_help, const char* threads_help) {
    app.add_option("--epochs", epochs, "training epochs")->check(CLI::Range(1, 1000));
    app.add_option("--batch-size", batch_size, batch_help)->check(CLI::Range(1, 60000));
    app.add_option("--threads", threads, threads_help)->check(CLI::Range(0, 1024));
    app.add_option("--lr", lr, "peak learning rate of Adam (cosine-annealed to 0)")
        ->check(CLI::PositiveNumber);
    app.add_option("--warmup", warmup, "steps of linear learning-rate warm-up")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--seed", seed, "seed of the initialization and the shuffling");
    app.add_option("--data", data_dir, "directory with the four Fashion-MNIST .gz files");
    app.add_option("--out", out_dir, "directory for metrics.csv and the checkpoint");
    app.add_option("--train-limit", train_limit, "use only the first N training images (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--test-limit", test_limit, "use only the first N test images (0: all)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--min-accuracy", min_accuracy,
                   "exit with status 1 if the final test accuracy is below this (0 to 1)")
        ->check(CLI::Range(0.0, 1.0));
  }
};

/// Adam's learning rate: warmed up linearly over `warmup` steps, then cosine-annealed to 0 by
/// the last step.
inline lux::optim::cosine_annealing learning_rate_schedule(const fashion_mnist_options& o,
                                                           std::int64_t steps_per_epoch) {
  return {.eta_min = 0,
          .eta_max = o.lr,
          .period = std::max<std::int64_t>(1, o.epochs * steps_per_epoch - o.warmup),
          .warmup_steps = o.warmup};
}

/// The training and test splits, each cut to its first `limit` images when limit > 0.
struct fashion_mnist_data {
  lux::mnist_like train, test;
};
inline fashion_mnist_data load_fashion_mnist_splits(const fashion_mnist_options& o) {
  fashion_mnist_data d{lux::load_fashion_mnist("train", o.data_dir),
                       lux::load_fashion_mnist("t10k", o.data_dir)};
  const auto truncate = [](lux::mnist_like& s, long n) {
    if (n <= 0 || n >= s.size()) return;
    s.images = lux::copy(s.images.slice(0, n));
    s.labels = lux::copy(s.labels.slice(0, n));
  };
  truncate(d.train, o.train_limit);
  truncate(d.test, o.test_limit);
  return d;
}

}  // namespace lux_examples
