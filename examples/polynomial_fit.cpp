// Lux's "Fitting a Polynomial using MLP" tutorial in C++: y = x² − 2x + noise on [−2, 2],
// Chain(Dense(1 => 16, relu), Dense(16 => 1)), Adam(0.03), mean squared error, 250 steps.
#include <cmath>
#include <cstdio>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>

int main() {
  lux::rng rng(12345);
  constexpr lux::index_t n = 128;
  lux::Tensor<float, 2> x(lux::shape_t<2>{1, n}), y(lux::shape_t<2>{1, n});
  for (lux::index_t i = 0; i < n; ++i) {
    x[i] = -2.0f + 4.0f * float(i) / float(n - 1);
    y[i] = x[i] * x[i] - 2 * x[i] + 0.1f * rng.normal_at<float>(std::uint64_t(i));
  }

  const auto model = lux::Chain(lux::Dense({1, 16}, lux::relu{}), lux::Dense({16, 1}));
  auto [ps, st] = lux::setup<float>(rng, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{0.03});
  const auto data = std::pair{x, y};
  float loss = 0;
  for (int step = 1; step <= 250; ++step) {
    loss = lux::single_train_step(lux::MSELoss{}, data, ts).loss;
    if (step == 1 || step % 50 == 0) std::printf("step %3d  mse %.5f\n", step, loss);
  }

  auto [yhat, st2] = lux::apply(model, x, ts.params(), ts.states);
  double noise_free = 0;  // the error against the noise-free curve
  for (lux::index_t i = 0; i < n; ++i) {
    const double t = x[i] * x[i] - 2.0 * x[i];
    noise_free += (yhat[i] - t) * (yhat[i] - t) / n;
  }
  std::printf("final mse %.5f (noise variance 0.01); mse against x^2 - 2x: %.5f\n", loss,
              noise_free);
  return noise_free < 0.05 ? 0 : 1;
}
