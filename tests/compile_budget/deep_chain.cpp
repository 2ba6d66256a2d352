// A Chain of LUX_CHAIN_DEPTH identical Dense layers: setup, apply and pullback. Compiled by
// tests/compile_budget/check_compile_budget.cmake at two depths to check that the compiler's time
// and memory grow linearly with model depth (a quadratic container costs gigabytes at 64 layers).
#include <cstdio>
#include <utility>

#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>

#ifndef LUX_CHAIN_DEPTH
#define LUX_CHAIN_DEPTH 8
#endif

template <std::size_t... I>
auto deep_chain(std::index_sequence<I...>) {
  return lux::Chain(((void)I, lux::Dense({8, 8}, lux::tanh_{}))...);
}

int main() {
  const auto model = deep_chain(std::make_index_sequence<LUX_CHAIN_DEPTH>{});
  lux::rng rng(1);
  auto [ps, st] = lux::setup<float>(rng, model);
  lux::Tensor<float, 2> x(lux::shape_t<2>{8, 4}, 0.5f);
  auto [y, st2] = lux::apply(model, x, ps, st);
  auto [y2, st3, back] = lux::pullback(model, x, ps, st);
  auto [dx, dps] = back(y2);
  std::printf("depth %d: y(0,0) = %g, dx(0,0) = %g\n", LUX_CHAIN_DEPTH, double(y(0, 0)),
              double(dx(0, 0)));
  return y.shape() == y2.shape() && dx.shape() == x.shape() ? 0 : 1;
}
