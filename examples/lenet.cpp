// luxcpp layers example: a LeNet-style model written as in Lux, with explicit parameters and
// states. It prints the model, runs a forward pass, a pullback (reverse-mode gradients of every
// parameter) and a few plain SGD steps on one batch, and shows an error naming the layer path.
//   Build and run: cmake --workflow --preset example
#include <cmath>
#include <cstdio>
#include <lux/lux.hpp>
#include <string_view>
#include <vector>

namespace {
/// Mean softmax cross-entropy of logits (classes, batch) and its gradient with respect to them.
double cross_entropy(const lux::Tensor<float, 2>& logits, const std::vector<int>& labels,
                     lux::Tensor<float, 2>& grad) {
  const lux::index_t classes = logits.size(0), batch = logits.size(1);
  double loss = 0;
  for (lux::index_t b = 0; b < batch; ++b) {
    double m = logits(0, b), s = 0;
    for (lux::index_t c = 1; c < classes; ++c) m = std::max(m, double(logits(c, b)));
    for (lux::index_t c = 0; c < classes; ++c) s += std::exp(logits(c, b) - m);
    loss -= logits(labels[b], b) - m - std::log(s);
    for (lux::index_t c = 0; c < classes; ++c)
      grad(c, b) = float((std::exp(logits(c, b) - m) / s - (c == labels[b])) / batch);
  }
  return loss / batch;
}
}  // namespace

int main() {
  // Lux: Chain(Conv((5,5), 1=>6, relu), MaxPool((2,2)), Conv((5,5), 6=>16, relu), MaxPool((2,2)),
  //            FlattenLayer(), Dense(256=>120, relu), Dense(120=>84, relu), Dense(84=>10))
  auto model = lux::Chain(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::MaxPool({2, 2}),
                          lux::Conv({5, 5}, {6, 16}, lux::relu{}), lux::MaxPool({2, 2}),
                          lux::FlattenLayer{}, lux::Dense({256, 120}, lux::relu{}),
                          lux::Dense({120, 84}, lux::relu{}), lux::Dense({84, 10}));
  lux::summary(model);  // the layer tree with parameter counts, as Lux displays it

  lux::rng rng(2026);
  auto [ps, st] = lux::setup<float>(rng, model);  // ps.layer_1.weight is (5, 5, 1, 6), ...

  // One batch of 32 images (W, H, C, B) and labels; a real program reads a dataset here.
  lux::Tensor<float, 4> x(28, 28, 1, 32);
  rng.fill_normal(x.data(), static_cast<std::size_t>(x.numel()));
  std::vector<int> labels(32);
  for (int b = 0; b < 32; ++b) labels[b] = b % 10;
  std::printf("outputsize for (28, 28, 1, 32): (%ld, %ld)\n",
              static_cast<long>(lux::outputsize(model, x.shape())[0]),
              static_cast<long>(lux::outputsize(model, x.shape())[1]));

  lux::Tensor<float, 2> dlogits(10, 32);
  for (int step = 0; step <= 20; ++step) {
    auto [logits, st2, back] = lux::pullback(model, x, ps, st);  // forward, keeping what back needs
    const double loss = cross_entropy(logits, labels, dlogits);
    auto [dx, dps] = back(dlogits);  // dps has exactly the structure of ps
    if (step % 5 == 0) {
      double norm2 = 0;
      lux::for_each_leaf(dps, [&](std::string_view, const auto& g) {
        for (float v : g) norm2 += double(v) * v;
      });
      std::printf("step %2d  loss %.4f  |grad| %.4f\n", step, loss, std::sqrt(norm2));
    }
    // Plain SGD on every parameter leaf (lux::zip_leaves walks ps and dps together).
    lux::zip_leaves(ps, dps, [](std::string_view, auto& p, const auto& g) {
      for (lux::index_t i = 0; i < p.numel(); ++i) p.data()[i] -= 0.1f * g.data()[i];
    });
    st = st2;
  }

  // Bad input fails loudly, naming the layer path.
  try {
    lux::Tensor<float, 4> rgb(28, 28, 3, 32);
    (void)lux::apply(model, rgb, ps, st);
  } catch (const lux::shape_error& e) {
    std::printf("caught: %s\n", e.what());
  }
  return 0;
}
