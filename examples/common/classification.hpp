// Shared by the Fashion-MNIST examples: the classification objective (softmax cross-entropy on
// the logits, with the batch's correct-prediction count as Lux-style stats) and the test-set
// evaluation.
#pragma once

#include <cstdint>
#include <lux/io/dataloader.hpp>
#include <lux/io/idx.hpp>
#include <lux/layers/layer.hpp>
#include <lux/training/losses.hpp>
#include <utility>

namespace lux_examples {

using logits_t = lux::Tensor<float, 2>;
using labels_t = lux::Tensor<std::int64_t, 1>;

/// Number of columns of `logits` (10, B) whose arg-max is the label.
inline long count_correct(const logits_t& logits, const labels_t& labels) {
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

struct evaluation {
  double loss = 0;
  double accuracy = 0;
};

/// Sums of the loss and of the correct predictions over `loader`'s batches, in test mode.
struct evaluation_sums {
  double loss = 0;
  double correct = 0;
  double count = 0;
};
template <class Model, class PS, class ST, class Loader>
evaluation_sums evaluate_sums(const Model& model, const PS& ps, const ST& st, Loader& loader) {
  const auto test_st = lux::testmode(st);
  const lux::CrossEntropyLoss<lux::agg::sum_type> loss({.logits = true}, lux::agg::sum);
  evaluation_sums s;
  for (const auto& [x, y] : loader) {
    auto [logits, st2] = lux::apply(model, x, ps, test_st);
    s.loss += loss(logits, y);
    s.correct += double(count_correct(logits, y));
    s.count += double(y.numel());
  }
  return s;
}

/// Test-mode loss and accuracy over a whole split, 1000 images per batch.
template <class Model, class PS, class ST>
evaluation evaluate(const Model& model, const PS& ps, const ST& st, const lux::mnist_like& data) {
  lux::DataLoader loader(std::tie(data.images, data.labels), {.batchsize = 1000});
  const auto s = evaluate_sums(model, ps, st, loader);
  return {s.loss / s.count, s.correct / s.count};
}

}  // namespace lux_examples
