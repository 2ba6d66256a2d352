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

#include "common/models.hpp"
#include "common/progress.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using logits_t = lux::Tensor<float, 2>;
using labels_t = lux::Tensor<std::int64_t, 1>;

/// Number of columns of `logits` (10, B) whose arg-max is the label.
long count_correct(const logits_t& logits, const labels_t& labels) {
  long correct = 0;
  for (lux::index_t b = 0; b < logits.size(1); ++b) {
    lux::index_t best = 0;
    for (lux::index_t c = 1; c < logits.size(0); ++c)
      if (logits(c, b) > logits(best, b)) best = c;
    correct += best == labels[b];
  }
  return correct;
}

/// The training objective in Lux's form (loss, st', stats): softmax cross-entropy on the
/// logits, with the batch's correct-prediction count as the stats.
struct classification_objective {
  lux::CrossEntropyLoss<> loss;

  template <class Model, class PS, class ST, class Batch>
  auto pullback(const Model& model, const PS& ps, const ST& st, const Batch& batch) const {
    const auto& [x, y] = batch;
    auto pb = lux::pullback(model, x, ps, st);
    auto [l, grad] = loss.value_and_gradient(pb.y, y);
    const long correct = count_correct(pb.y, y);
    auto back_fn = [b = std::move(pb.back), g = std::move(grad)] { return b(g).dps; };
    struct result {
      float loss;
      ST st;
      lux::named_tuple<lux::named_field<"correct", long>> stats;
      decltype(back_fn) back;
    };
    return result{l, std::move(pb.st), {lux::field<"correct">(correct)}, std::move(back_fn)};
  }
};

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

struct evaluation {
  double loss = 0;
  double accuracy = 0;
};

/// Test-mode loss and accuracy over a whole split, 1000 images per batch.
template <class Model, class PS, class ST>
evaluation evaluate(const Model& model, const PS& ps, const ST& st, const lux::mnist_like& data) {
  lux::DataLoader loader(std::tie(data.images, data.labels), {.batchsize = 1000});
  const auto test_st = lux::testmode(st);
  const lux::CrossEntropyLoss<lux::agg::sum_type> loss({.logits = true}, lux::agg::sum);
  double total = 0;
  long correct = 0;
  for (const auto& [x, y] : loader) {
    auto [logits, st2] = lux::apply(model, x, ps, test_st);
    total += loss(logits, y);
    correct += count_correct(logits, y);
  }
  const double n = double(data.size());
  return {total / n, double(correct) / n};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a CNN on Fashion-MNIST with luxcpp"};
  int epochs = 3, batch_size = 64, threads = 0;
  double lr = 2e-3;
  std::uint64_t seed = 2026;
  long train_limit = 0, test_limit = 0, warmup = 200;
  double min_accuracy = 0;
  bool augment = false;
  double label_smoothing = 0;
  std::string data_dir = "/usr/share/datasets/fashion-mnist", out_dir = "build/fashion_mnist";
  app.add_option("--epochs", epochs, "training epochs")->check(CLI::Range(1, 1000));
  app.add_option("--batch-size", batch_size, "images per step")->check(CLI::Range(1, 60000));
  app.add_option("--threads", threads, "OpenMP threads (0: the runtime's default)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--lr", lr, "peak learning rate of Adam (cosine-annealed to 0)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "steps of linear learning-rate warm-up")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--augment", augment, "mirror each training image left-right with probability 1/2");
  app.add_option("--label-smoothing", label_smoothing, "CrossEntropyLoss's label_smoothing")
      ->check(CLI::Range(0.0, 1.0));
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
  CLI11_PARSE(app, argc, argv);

#if defined(_OPENMP)
  if (threads > 0) omp_set_num_threads(threads);
  std::printf("threads: %d\n", omp_get_max_threads());
#endif
  try {
    auto train = lux::load_fashion_mnist("train", data_dir);
    auto test = lux::load_fashion_mnist("t10k", data_dir);
    const auto truncate = [](lux::mnist_like& d, long n) {
      if (n <= 0 || n >= d.size()) return;
      d.images = lux::copy(d.images.slice(0, n));
      d.labels = lux::copy(d.labels.slice(0, n));
    };
    truncate(train, train_limit);
    truncate(test, test_limit);
    std::printf("Fashion-MNIST: %td training and %td test images from %s\n", train.size(),
                test.size(), data_dir.c_str());

    const auto model = lux_examples::fashion_mnist_cnn();
    lux::summary(model);
    lux::rng rng(seed);
    auto [ps, st] = lux::setup<float>(rng, model);
    lux::TrainState ts(model, ps, st, lux::optim::Adam{lr});
    lux::DataLoader loader(std::tie(train.images, train.labels),
                           {.batchsize = batch_size, .shuffle = true, .rng = rng.split(1)});
    const auto steps_per_epoch = static_cast<std::int64_t>(loader.size());
    ts.schedule = lux::optim::cosine_annealing{
        .eta_min = 0,
        .eta_max = lr,
        .period = std::max<std::int64_t>(1, epochs * steps_per_epoch - warmup),
        .warmup_steps = warmup};

    std::filesystem::create_directories(out_dir);
    const std::string csv_path = out_dir + "/metrics.csv";
    std::ofstream csv(csv_path);
    csv << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,epoch_seconds,steps_per_"
           "second\n";
    const classification_objective objective{
        lux::CrossEntropyLoss<>({.logits = true, .label_smoothing = label_smoothing})};
    const lux::rng augment_rng = rng.split(2);
    lux::Tensor<float, 4> augmented;
    evaluation last{};
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      lux_examples::progress_bar bar(
          "epoch " + std::to_string(epoch) + "/" + std::to_string(epochs), long(loader.size()));
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
      last = evaluate(ts.model, ts.params(), ts.states, test);
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
    const std::string ckpt = out_dir + "/fashion_mnist.safetensors";
    lux::save(ckpt, lux::named("params", ts.params()), lux::named("states", ts.states),
              lux::safetensors_metadata{{"model", "fashion_mnist_cnn"},
                                        {"epochs", std::to_string(epochs)},
                                        {"test_accuracy", std::to_string(last.accuracy)}});
    lux::rng other(seed + 1);
    auto [ps2, st2] = lux::setup<float>(other, model);
    lux::load(ckpt, lux::named("params", ps2), lux::named("states", st2));
    const auto again = evaluate(model, ps2, st2, test);
    std::printf("checkpoint %s: reloaded into a fresh model, test accuracy %.2f%% (%s)\n",
                ckpt.c_str(), 100 * again.accuracy,
                again.accuracy == last.accuracy ? "identical" : "DIFFERENT");
    std::printf("metrics: %s\n", csv_path.c_str());
    if (again.accuracy != last.accuracy) return 1;
    if (last.accuracy < min_accuracy) {
      std::printf("test accuracy %.2f%% is below --min-accuracy %.2f%%\n", 100 * last.accuracy,
                  100 * min_accuracy);
      return 1;
    }
  } catch (const lux::error& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
  return 0;
}
