// Fashion-MNIST in C++ alone: a small CNN (examples/common/models.hpp) trained with Adam and the
// Lux.Training API, a progress bar, per-epoch metrics in a CSV file, a safetensors checkpoint
// that is reloaded into a fresh model and re-evaluated.
//
//   cmake --workflow --preset example        (builds and runs this with its defaults)
//   build/default/examples/fashion_mnist --epochs 3 --batch-size 64 --threads 2
//       --data /usr/share/datasets/fashion-mnist --out build/fashion_mnist    (the defaults)
//   gnuplot -e "out='metrics.png'; csv='build/fashion_mnist/metrics.csv'" examples/plot_metrics.gp
//
// The data is Debian's dataset-fashion-mnist (.ci/deps installs it).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <lux/io/dataloader.hpp>
#include <lux/io/idx.hpp>
#include <lux/io/safetensors.hpp>
#include <lux/layers/summary.hpp>
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

namespace {

/// Data augmentation: `out` = `x` (W, H, C, B) with each image mirrored left-right with
/// probability 1/2, the coin of image b at step s being a pure function of (seed, s, b).
void random_horizontal_flip(const lux::TensorView<const float, 4>& x, lux::Tensor<float, 4>& out,
                            const lux::rng& r, std::int64_t step) {
  if (out.shape() != x.shape()) out = lux::Tensor<float, 4>::uninitialized(x.shape());
  const lux::index_t w = x.size(0), rows = x.size(1) * x.size(2), n = x.size(3);
  const lux::rng coins = r.fold_in(static_cast<std::uint64_t>(step));
  for (lux::index_t b = 0; b < n; ++b) {
    const bool flip = coins.bits_at(static_cast<std::uint64_t>(b)) & 1u;
    const float* src = x.data() + b * w * rows;
    float* dst = out.data() + b * w * rows;
    for (lux::index_t row = 0; row < rows; ++row)
      for (lux::index_t i = 0; i < w; ++i) dst[row * w + i] = src[row * w + (flip ? w - 1 - i : i)];
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a CNN on Fashion-MNIST with luxcpp"};
  lux_examples::fashion_mnist_options opt;
  opt.add_to(app, "images per step", "OpenMP threads (0: the runtime's default)");
  bool augment = false;
  double label_smoothing = 0;
  app.add_flag("--augment", augment, "mirror each training image left-right with probability 1/2");
  app.add_option("--label-smoothing", label_smoothing, "CrossEntropyLoss's label_smoothing")
      ->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);

#if defined(_OPENMP)
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  std::printf("threads: %d\n", omp_get_max_threads());
#endif
  try {
    auto [train, test] = lux_examples::load_fashion_mnist_splits(opt);
    std::printf("Fashion-MNIST: %td training and %td test images from %s\n", train.size(),
                test.size(), opt.data_dir.c_str());

    const auto model = lux_examples::fashion_mnist_cnn();
    lux::summary(model);
    lux::rng rng(opt.seed);
    auto [ps, st] = lux::setup<float>(rng, model);
    lux::TrainState ts(model, ps, st, lux::optim::Adam{opt.lr});
    lux::DataLoader loader(std::tie(train.images, train.labels),
                           {.batchsize = opt.batch_size, .shuffle = true, .rng = rng.split(1)});
    ts.schedule = lux_examples::learning_rate_schedule(opt, std::int64_t(loader.size()));

    std::filesystem::create_directories(opt.out_dir);
    const std::string csv_path = opt.out_dir + "/metrics.csv";
    std::ofstream csv(csv_path);
    csv << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,epoch_seconds,steps_per_"
           "second\n";
    const lux_examples::classification_objective objective{
        lux::CrossEntropyLoss<>({.logits = true, .label_smoothing = label_smoothing})};
    const lux::rng augment_rng = rng.split(2);
    lux::Tensor<float, 4> augmented;
    lux_examples::evaluation last{};
    for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
      lux_examples::progress_bar bar(
          "epoch " + std::to_string(epoch) + "/" + std::to_string(opt.epochs), long(loader.size()));
      double loss_sum = 0;
      long correct = 0, seen = 0, done = 0;
      for (const auto& [x, y] : loader) {
        if (augment) random_horizontal_flip(lux::as_view(x), augmented, augment_rng, ts.step);
        const auto& input = augment ? augmented : x;
        const auto batch = std::tie(input, y);
        auto r = lux::compute_gradients(objective, batch, ts);
        lux::require<lux::argument_error>(std::isfinite(r.loss), "fashion_mnist: loss is ", r.loss,
                                          " at step ", ts.step);
        lux::apply_gradients(ts);
        const auto b = y.numel();
        loss_sum += double(r.loss) * double(b);
        correct += r.stats.get<"correct">();
        seen += b;
        bar.update(++done, loss_sum / double(seen), double(correct) / double(seen), seen);
      }
      const double secs = bar.seconds();
      last = lux_examples::evaluate(ts.model, ts.params(), ts.states, test);
      std::printf(
          "epoch %d: train loss %.4f accuracy %.2f%% | test loss %.4f accuracy %.2f%% | %.1f s, "
          "%.1f steps/s, %.0f images/s\n",
          epoch, loss_sum / double(seen), 100.0 * double(correct) / double(seen), last.loss,
          100 * last.accuracy, secs, double(done) / secs, double(seen) / secs);
      csv << epoch << ',' << loss_sum / double(seen) << ',' << double(correct) / double(seen) << ','
          << last.loss << ',' << last.accuracy << ',' << secs << ',' << double(done) / secs << '\n'
          << std::flush;
    }

    // Checkpoint, reload into a freshly initialized model, re-evaluate.
    const std::string ckpt = opt.out_dir + "/fashion_mnist.safetensors";
    lux::save(ckpt, lux::named("params", ts.params()), lux::named("states", ts.states),
              lux::safetensors_metadata{{"model", "fashion_mnist_cnn"},
                                        {"epochs", std::to_string(opt.epochs)},
                                        {"test_accuracy", std::to_string(last.accuracy)}});
    lux::rng other(opt.seed + 1);
    auto [ps2, st2] = lux::setup<float>(other, model);
    lux::load(ckpt, lux::named("params", ps2), lux::named("states", st2));
    const auto again = lux_examples::evaluate(model, ps2, st2, test);
    std::printf("checkpoint %s: reloaded into a fresh model, test accuracy %.2f%% (%s)\n",
                ckpt.c_str(), 100 * again.accuracy,
                again.accuracy == last.accuracy ? "identical" : "DIFFERENT");
    std::printf("metrics: %s\n", csv_path.c_str());
    if (again.accuracy != last.accuracy) return 1;
    if (last.accuracy < opt.min_accuracy) {
      std::printf("test accuracy %.2f%% is below --min-accuracy %.2f%%\n", 100 * last.accuracy,
                  100 * opt.min_accuracy);
      return 1;
    }
  } catch (const lux::error& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
  return 0;
}
