// luxcpp quickstart: tensors in Lux's column-major layout, explicit randomness, activations
// with their derivatives, zero-copy Eigen interop, and the operation mode a kernel would
// run in. Build and run: cmake --workflow --preset example
#include <cstdio>
#include <lux/lux.hpp>

int main() {
  // A batch of 8 feature vectors of length 4: (features, batch), first index fastest.
  lux::rng rng(2026);
  lux::Tensor<float, 2> x(4, 8);
  rng.fill_normal(x.data(), static_cast<std::size_t>(x.numel()));

  // Activations are function objects with a scalar (and SIMD) form and a derivative.
  lux::gelu gelu;
  lux::Tensor<float, 2> y = x;
  for (float& v : y) v = gelu(v);

  // Tensors map into Eigen without copying: a dense layer's pre-activation W * y.
  lux::Tensor<float, 2> w(lux::make_shape(3, 4), 0.5f);
  Eigen::MatrixXf z = lux::as_eigen(w) * lux::as_eigen(y);

  std::printf("x(0,0) = %+.4f  gelu = %+.4f  gelu' = %+.4f\n", x(0, 0), y(0, 0),
              gelu.derivative(x(0, 0)));
  std::printf("z is %ldx%ld, z(0,0) = %+.4f\n", static_cast<long>(z.rows()),
              static_cast<long>(z.cols()), z(0, 0));
  std::printf("kernels on these tensors run in %s\n", lux::operation_mode_t<decltype(x)>::name);

  // Bad input fails loudly with a message naming the operation and the shapes.
  try {
    (void)x.reshape(5, -1);
  } catch (const lux::shape_error& e) {
    std::printf("caught: %s\n", e.what());
  }
  return 0;
}
