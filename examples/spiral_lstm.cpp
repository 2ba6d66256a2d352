// Lux's "Training a Simple LSTM" tutorial in C++: classify 2-d spiral sequences as clockwise
// or anticlockwise with Recurrence(LSTMCell(2 => 8)) → Dense(8 => 1), trained on the logits
// with the sigmoid binary cross-entropy (BinaryCrossEntropyLoss(; logits = true)) and Adam(0.01),
// 25 epochs of batches of 128; accuracy on a held-out 20 %.
#include <cmath>
#include <cstdio>
#include <lux/io/dataloader.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/recurrent.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <numbers>

namespace {
constexpr lux::index_t seq_len = 50;

/// n spirals (2, seq_len, n) with labels (1, n): the first half clockwise (label 0), the second
/// anticlockwise (label 1), each with a random phase, radius scale and a little noise.
std::pair<lux::Tensor<float, 3>, lux::Tensor<float, 2>> make_spirals(lux::index_t n,
                                                                     const lux::rng& r) {
  lux::Tensor<float, 3> x(lux::shape_t<3>{2, seq_len, n});
  lux::Tensor<float, 2> y(lux::shape_t<2>{1, n});
  for (lux::index_t s = 0; s < n; ++s) {
    const bool anticlockwise = s >= n / 2;
    const auto k = std::uint64_t(s) * 1024;
    const double phase = 2 * std::numbers::pi * r.uniform_at<double>(k);
    const double scale = 0.5 + r.uniform_at<double>(k + 1);
    for (lux::index_t t = 0; t < seq_len; ++t) {
      const double u = double(t) / double(seq_len - 1);
      const double angle = phase + (anticlockwise ? 1 : -1) * 3 * std::numbers::pi * u;
      const double radius = scale * (0.1 + u);
      x(0, t, s) = float(radius * std::cos(angle) + 0.02 * r.normal_at<double>(k + 2 + 2 * t));
      x(1, t, s) = float(radius * std::sin(angle) + 0.02 * r.normal_at<double>(k + 3 + 2 * t));
    }
    y(0, s) = anticlockwise ? 1.0f : 0.0f;
  }
  return {std::move(x), std::move(y)};
}
}  // namespace

int main() {
  lux::rng rng(0);
  auto [x, y] = make_spirals(1000, rng.split(7));
  // A shuffled 80/20 split: one epoch of a shuffling DataLoader with a single batch.
  lux::DataLoader all(std::tie(x, y), {.batchsize = 1000, .shuffle = true, .rng = rng.split(8)});
  const auto& [xs, ys] = *all.begin();
  auto x_train = lux::copy(xs.slice(0, 800)), x_val = lux::copy(xs.slice(800, 1000));
  auto y_train = lux::copy(ys.slice(0, 800)), y_val = lux::copy(ys.slice(800, 1000));

  const auto model = lux::Chain(lux::Recurrence(lux::LSTMCell({2, 8})), lux::Dense({8, 1}));
  auto [ps, st] = lux::setup<float>(rng, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{0.01});
  const lux::BinaryCrossEntropyLoss<> loss({.logits = true});
  lux::DataLoader train(std::tie(x_train, y_train),
                        {.batchsize = 128, .shuffle = true, .rng = rng.split(9)});

  const auto accuracy = [&](const auto& xv, const auto& yv) {
    auto [logits, st2] = lux::apply(model, xv, ts.params(), lux::testmode(ts.states));
    lux::index_t correct = 0;
    for (lux::index_t i = 0; i < logits.numel(); ++i) correct += (logits[i] > 0) == (yv[i] > 0.5f);
    return double(correct) / double(logits.numel());
  };
  for (int epoch = 1; epoch <= 25; ++epoch) {
    double total = 0;
    for (const auto& [xb, yb] : train)
      total += lux::single_train_step(loss, std::tie(xb, yb), ts).loss * double(yb.numel());
    if (epoch % 5 == 0 || epoch == 1)
      std::printf("epoch %2d  loss %.4f  validation accuracy %.1f%%\n", epoch, total / 800.0,
                  100 * accuracy(x_val, y_val));
  }
  const double acc = accuracy(x_val, y_val);
  std::printf("final validation accuracy %.1f%% (target >= 98%%)\n", 100 * acc);
  return acc >= 0.98 ? 0 : 1;
}
