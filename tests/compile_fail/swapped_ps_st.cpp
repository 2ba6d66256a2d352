// Must NOT compile: ps and st swapped in lux::apply; one static_assert says so.
#include <lux/lux.hpp>
int main() {
  lux::Dense d({3, 2});
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, d);
  lux::Tensor<float, 2> x(3, 4);
  auto [y, st2] = lux::apply(d, x, st, ps);
}
