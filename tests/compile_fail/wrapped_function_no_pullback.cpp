// Must NOT compile: pullback through a Chain holding a lambda without a derivative (wrapped as
// a WrappedFunction). apply works; pullback must stop with lux::pullback's static_assert.
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/utility.hpp>
int main() {
  auto square = [](const lux::Tensor<float, 2>& x) {
    auto y = x;
    for (auto& v : y) v *= v;
    return y;
  };
  auto model = lux::Chain(lux::Dense({3, 3}), square);
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<float, 2> x(3, 2);
  auto [y, st2] = lux::apply(model, x, ps, st);  // fine
  auto pb = lux::pullback(model, x, ps, st);     // error: no derivative for the lambda
  return static_cast<int>(y.numel());
}
