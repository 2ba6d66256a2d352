// Must NOT compile: reading device memory with operator() on the host.
#include <lux/core/tensor.hpp>
int main() {
  lux::TensorView<float, 1, lux::cuda> v;
  return static_cast<int>(v(0));
}
