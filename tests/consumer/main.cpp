// A downstream program: uses the tensor core, RNG, activations and Eigen interop and
// checks a result it computes independently, so a broken package fails here.
#include <cmath>
#include <cstdio>
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
  const bool ok = std::fabs(sum_sigmoid - ref) < 1e-12 && std::fabs(colsum - direct) < 1e-12;
  std::printf("luxcpp consumer: %s (sum sigmoid = %.6f)\n", ok ? "ok" : "MISMATCH", sum_sigmoid);
  return ok ? 0 : 1;
}
