// A downstream program: uses the tensor core, RNG, activations and Eigen interop and
// checks a result it computes independently, so a broken package fails here; then trains a
// Dense layer a few steps and round-trips its parameters through a safetensors file.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <lux/lux.hpp>

int main() {
  lux::rng rng(1);
  lux::Tensor<double, 2> x(3, 5);
  rng.fill_uniform(x.data(), static_cast<std::size_t>(x.numel()));
  double sum_sigmoid = 0, ref = 0;
  for (double v : x) {
    sum_sigmoid += lux::sigmoid{}(v);
    ref += 1.0 / (1.0 + std::exp(-v));
  }
  const double colsum = lux::as_eigen(x).colwise().sum().sum();
  double direct = 0;
  for (double v : x) direct += v;
  bool ok = std::fabs(sum_sigmoid - ref) < 1e-12 && std::fabs(colsum - direct) < 1e-12;

  const auto model = lux::Dense({3, 1});
  auto [ps, st] = lux::setup<double>(rng, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{0.05});
  const lux::Tensor<double, 2> y(lux::shape_t<2>{1, 5}, 1.0);
  const auto batch = std::pair{x, y};
  const double first = lux::single_train_step(lux::MSELoss{}, batch, ts).loss;
  double last = first;
  for (int i = 0; i < 50; ++i) last = lux::single_train_step(lux::MSELoss{}, batch, ts).loss;
  const auto path = std::filesystem::temp_directory_path() / "luxcpp_consumer.safetensors";
  lux::save(path, ts.params());
  auto [ps2, st2] = lux::setup<double>(rng, model);
  lux::load(path, ps2);
  std::filesystem::remove(path);
  ok = ok && last < first / 2 && ps2.get<"weight">()(0, 1) == ts.params().get<"weight">()(0, 1);
#if defined(LUXCPP_RUNTIME_DISPATCH)
  // Built with default flags and linked with libluxcpp_dispatch: a looped kernel must run the
  // copy precompiled for the best instruction set this CPU has (none to run on a pre-AVX2 CPU).
  const auto level = lux::dispatch::active();
  const auto before = lux::dispatch::calls(level);
  lux::Tensor<float, 1> g(lux::shape_t<1>{1000}, 1.0f);
  const auto gy = lux::fast_activation(lux::gelu{}, g);
  const bool dispatched =
      level == lux::dispatch::level::baseline || lux::dispatch::calls(level) == before + 1;
  ok = ok && dispatched && std::fabs(gy[999] - 0.841192f) < 1e-5f;
  std::printf("luxcpp consumer: this translation unit is %s; kernels dispatch to %s%s\n",
              lux::simd_isa_name(), lux::dispatch::name(level), dispatched ? "" : " (NOT REACHED)");
#endif
  std::printf("luxcpp consumer: %s (sum sigmoid = %.6f)\n", ok ? "ok" : "MISMATCH", sum_sigmoid);
  return ok ? 0 : 1;
}
