// Must NOT compile: one kernel's arguments on the cpu and on cuda.
#include <lux/core/operation_mode.hpp>
int main() {
  using host = lux::TensorView<float, 2, lux::cpu>;
  using device = lux::TensorView<float, 2, lux::cuda>;
  lux::operation_mode_t<host, device> mode;
  (void)mode;
}
