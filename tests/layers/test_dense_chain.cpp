// Dense and Chain: parameter counts and names, forward against a naive reference, pullback
// against central finite differences, error paths with layer paths, printing.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <sstream>

#include "support/check.hpp"
#include "support/layer_check.hpp"

namespace {
// Naive float64 Dense: y[o, b] = σ(Σ_i W[o, i] x[i, b] + bias[o]).
template <class F>
lux::Tensor<double, 2> naive_dense(const F& f, const lux::Tensor<double, 2>& w,
                                   const lux::Tensor<double, 2>& x,
                                   const lux::Tensor<double, 1>* b) {
  lux::Tensor<double, 2> y(w.size(0), x.size(1));
  for (lux::index_t j = 0; j < x.size(1); ++j)
    for (lux::index_t o = 0; o < w.size(0); ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (lux::index_t i = 0; i < w.size(1); ++i) s += w(o, i) * x(i, j);
      y(o, j) = f(s);
    }
  return y;
}
}  // namespace

TEST_CASE("Dense: Lux's parameter count, names and forward", "[layers][dense]") {
  lux::rng r(3);
  CHECK(lux::parameterlength(lux::Dense({784, 64})) == 50240);
  CHECK(lux::parameterlength(lux::Dense<lux::identity, false>({784, 64})) == 50176);
  lux::Dense layer({5, 3}, lux::tanh_{});
  auto [ps, st] = lux::setup<double>(r, layer);
  static_assert(decltype(ps)::names[0] == "weight" && decltype(ps)::names[1] == "bias");
  CHECK(lux::statelength(st) == 0);
  auto x = lux_test::random_tensor<double>(lux::make_shape(5, 4), 7);
  auto [y, st2] = lux::apply(layer, x, ps, st);
  auto ref =
      naive_dense([](double v) { return std::tanh(v); }, ps.get<"weight">(), x, &ps.get<"bias">());
  CHECK(lux_test::max_rel_err(y, ref) < 1e-14);
  CHECK(lux::outputsize(layer, x.shape()) == lux::make_shape(3, 4));
  // N-d input: (in, a, b) → (out, a, b); a vector gives a vector.
  auto x3 = lux_test::random_tensor<double>(lux::make_shape(5, 2, 3), 8);
  auto [y3, s3] = lux::apply(layer, x3, ps, st);
  CHECK(y3.shape() == lux::make_shape(3, 2, 3));
  auto [y1, s1] = lux::apply(layer, lux::Tensor<double, 1>(lux::make_shape(5)), ps, st);
  CHECK(y1.shape() == lux::make_shape(3));
  CHECK(y1[0] == Approx(std::tanh(ps.get<"bias">()[0])));

  lux::Tensor<double, 2> bad(7, 4);
  CHECK_THROWS_WITH(lux::apply(layer, bad, ps, st),
                    "Dense 5 => 3: expected input (5, B), got (7, 4)");
  std::ostringstream os;
  os << layer << " " << lux::Dense<lux::identity, false>({2, 2});
  CHECK(os.str() == "Dense(5 => 3, tanh) Dense(2 => 2, use_bias=false)");
}

TEST_CASE("Dense: the output gradient must have the output's shape", "[layers][dense][errors]") {
  lux::rng r(5);
  lux::Dense layer({4, 3}, lux::relu{});
  auto [ps, st] = lux::setup<double>(r, layer);
  auto x = lux_test::random_tensor<double>(lux::make_shape(4, 2, 5), 9);
  auto res = lux::pullback(layer, x, ps, st);
  REQUIRE(res.y.shape() == lux::make_shape(3, 2, 5));
  CHECK_NOTHROW(res.back(res.y));
  // The element count matches (30), the shape does not: a transposed or permuted dy.
  lux::Tensor<double, 3> permuted(lux::make_shape(3, 5, 2));
  CHECK_THROWS_WITH(res.back(permuted),
                    "Dense 4 => 3: the output gradient has shape (3, 5, 2), "
                    "expected (3, 2, 5)");
  lux::Tensor<double, 3> transposed(lux::make_shape(2, 3, 5));
  CHECK_THROWS_AS(res.back(transposed), lux::shape_error);
  auto res2 =
      lux::pullback(layer, lux_test::random_tensor<double>(lux::make_shape(4, 6), 10), ps, st);
  CHECK_THROWS_AS(res2.back(lux::Tensor<double, 2>(lux::make_shape(6, 3))), lux::shape_error);
  // (A dy of another rank, e.g. a flat vector of 18 elements, does not compile.)
}

TEST_CASE("Chain of Dense: pullback matches finite differences", "[layers][chain]") {
  lux::rng r(4);
  lux::Chain model(lux::Dense({4, 6}, lux::gelu{}), lux::Dense({6, 5}, lux::relu{}),
                   lux::Dense<lux::identity, false>({5, 2}));
  auto [ps, st] = lux::setup<double>(r, model);
  CHECK(lux::parameterlength(ps) == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 2);
  auto x = lux_test::random_tensor<double>(lux::make_shape(4, 3), 9);
  auto v = lux_test::random_tensor<double>(lux::make_shape(2, 3), 10);
  // y and st2 vs apply, dx and every parameter leaf (by path) vs finite differences.
  const auto checked = lux_test::check_pullback(model, x, ps, st, v);
  CHECK(checked == std::vector<std::string>{"layer_1.weight", "layer_1.bias", "layer_2.weight",
                                            "layer_2.bias", "layer_3.weight"});
}

TEST_CASE("Chain: outputsize, errors name the layer path, printing", "[layers][chain]") {
  lux::Chain model(lux::Dense({784, 256}, lux::relu{}), lux::Dense({256, 120}, lux::relu{}),
                   lux::Dense({120, 10}));
  CHECK(lux::outputsize(model, lux::make_shape(784, 32)) == lux::make_shape(10, 32));
  lux::rng r(5);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<float, 2> x(200, 32);
  CHECK_THROWS_WITH(lux::apply(model, x, ps, st),
                    "layer_1 (Dense 784 => 256): expected input (784, B), got (200, 32)");
  // Nested Chains are flattened unless disabled; the disabled outer keeps the nesting.
  lux::Chain outer(lux::disable_optimizations, lux::Dense({3, 3}), model);
  lux::Chain flat(lux::Dense({3, 3}), model);
  CHECK_THROWS_WITH(lux::outputsize(flat, lux::make_shape(3, 1)),
                    "layer_2 (Dense 784 => 256): expected input (784, B), got (3, 1)");
  auto [ps2, st2] = lux::setup<float>(r, outer);
  CHECK_THROWS_WITH(lux::outputsize(outer, lux::make_shape(3, 1)),
                    "layer_2.layer_1 (Dense 784 => 256): expected input (784, B), got (3, 1)");
  std::ostringstream os;
  os << model;
  CHECK(os.str() ==
        "Chain(layer_1 = Dense(784 => 256, relu), layer_2 = Dense(256 => 120, relu), layer_3 = "
        "Dense(120 => 10))");
  // Deterministic setup from the seed.
  lux::rng a(9), b(9);
  auto pa = lux::setup<float>(a, model).first;
  auto pb = lux::setup<float>(b, model).first;
  CHECK(pa.get<"layer_2">().get<"weight">()(3, 7) == pb.get<"layer_2">().get<"weight">()(3, 7));
}
