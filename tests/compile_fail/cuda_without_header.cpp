// Must NOT compile: a cuda tensor without <lux/core/cuda.hpp>.
#include <lux/core/tensor.hpp>
int main() {
  lux::Tensor<float, 1, lux::cuda> t(lux::shape_t<1>{4});
  return static_cast<int>(t.numel());
}
