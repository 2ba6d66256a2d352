// Must NOT compile: pullback through a Parallel whose connection has no derivative.
#include <lux/layers/containers.hpp>
#include <lux/layers/dense.hpp>
struct my_sum {  // a connection without a `pullback` member
  lux::Tensor<float, 2> operator()(const lux::Tensor<float, 2>& a,
                                   const lux::Tensor<float, 2>& b) const {
    auto y = a;
    for (lux::index_t i = 0; i < y.numel(); ++i) y.data()[i] += b.data()[i];
    return y;
  }
};
int main() {
  auto model = lux::Parallel(my_sum{}, lux::Dense({3, 2}), lux::Dense({3, 2}));
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<float, 2> x(3, 2);
  auto pb = lux::pullback(model, x, ps, st);  // error: the connection has no pullback
  return 0;
}
