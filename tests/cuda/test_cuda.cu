// The CUDA translation unit: compiled with nvcc whenever the toolkit is present (CI has
// no GPU, so there it only proves that the headers build for the device); where a GPU
// exists it runs and checks a round trip through device memory and a device-side
// activation + Philox draw against the host.
#include <cstdio>
#include <cmath>

#include <lux/core/activations.hpp>
#include <lux/core/cuda.hpp>
#include <lux/core/random.hpp>
#include <lux/core/operation_mode.hpp>

namespace {
__global__ void apply_kernel(const float* x, float* y, lux::rng r, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = lux::relu{}(x[i]) + lux::sigmoid{}(x[i]) + r.uniform_at<float>(i);
}
}  // namespace

int main() {
  static_assert(std::is_same_v<lux::operation_mode_t<lux::Tensor<float, 1, lux::cuda>>,
                               lux::gpu_op<lux::cuda>>);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("test_cuda: no CUDA device, skipped");
    return 77;  // CTest SKIP_RETURN_CODE
  }
  const int n = 1000;
  lux::Tensor<float, 1> x(lux::shape_t<1>{n});
  for (int i = 0; i < n; ++i) x[i] = -5.0f + 10.0f * static_cast<float>(i) / n;
  const lux::rng r(42);
  auto xd = lux::to<lux::cuda>(x);
  lux::Tensor<float, 1, lux::cuda> yd(lux::shape_t<1>{n});
  apply_kernel<<<(n + 255) / 256, 256>>>(xd.data(), yd.data(), r, n);
  lux::detail::cuda_check(cudaGetLastError(), "apply_kernel");
  auto y = lux::to<lux::cpu>(yd);
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const float expect = lux::relu{}(x[i]) + lux::sigmoid{}(x[i]) + r.uniform_at<float>(i);
    worst = std::fmax(worst, std::fabs(static_cast<double>(y[i] - expect)));
  }
  std::printf("test_cuda: max |device - host| = %g\n", worst);
  return worst <= 1e-5 ? 0 : 1;
}
