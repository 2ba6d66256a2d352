// Utility layers: NoOpLayer, FlattenLayer, ReshapeLayer, SelectDim (0-based), WrappedFunction;
// forward vs naive references, outputsize, pullback vs finite differences, errors, printing.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/utility.hpp>
#include <sstream>
#include <string>

#include "support/check.hpp"
#include "support/layer_check.hpp"

namespace {
template <class L>
std::string str(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

// Pullback of a parameterless layer vs finite differences.
template <class L, class X, class V>
void check_fd(const L& l, const X& x, const V& v) {
  lux::empty_tuple e;
  CHECK(lux_test::check_pullback(l, x, e, e, v, {.tol = 1e-8}).empty());
}

struct square : lux_test::elementwise_fn<square> {
  static constexpr const char* name = "square";
  double f(double v) const { return v * v; }
  double df(double v) const { return 2 * v; }
};
}  // namespace

TEST_CASE("NoOpLayer and FlattenLayer", "[layers][utility]") {
  lux::empty_tuple e;
  auto x = lux_test::random_tensor<double>(lux::make_shape(2, 3, 4), 1);
  lux::NoOpLayer noop;
  CHECK(lux_test::max_rel_err(lux::apply(noop, x, e, e).first, x) == 0.0);
  CHECK(lux::outputsize(noop, x.shape()) == x.shape());
  CHECK(lux::parameterlength(noop) == 0);
  check_fd(noop, x, lux_test::random_tensor<double>(x.shape(), 2));
  CHECK(str(noop) == "NoOpLayer()");

  lux::FlattenLayer fl;
  auto [y, st] = lux::apply(fl, x, e, e);
  REQUIRE(y.shape() == lux::make_shape(6, 4));
  CHECK(y(4, 3) == x(0, 2, 3));  // column-major: 4 = 0 + 2·2
  CHECK(lux::outputsize(fl, x.shape()) == lux::make_shape(6, 4));
  CHECK(lux::outputsize(fl, lux::make_shape(5)) == lux::make_shape(1, 5));
  check_fd(fl, x, lux_test::random_tensor<double>(lux::make_shape(6, 4), 3));
  CHECK(str(fl) == "FlattenLayer()");
  // float run
  lux::Tensor<float, 3> xf(lux::make_shape(2, 2, 2), 1.5f);
  CHECK(lux::apply(fl, xf, e, e).first(3, 1) == 1.5f);
  // The output gradient must have y's shape, not just its element count.
  auto res = lux::pullback(fl, x, e, e);
  CHECK_THROWS_WITH(res.back(lux::Tensor<double, 2>(lux::make_shape(4, 6))),
                    "FlattenLayer: the output gradient has shape (4, 6), expected (6, 4)");
  auto empty = lux::pullback(fl, lux::Tensor<double, 3>(lux::make_shape(4, 1, 0)), e, e);
  CHECK_THROWS_AS(empty.back(lux::Tensor<double, 2>(lux::make_shape(1, 0))), lux::shape_error);
}

TEST_CASE("ReshapeLayer and SelectDim", "[layers][utility]") {
  lux::empty_tuple e;
  auto x = lux_test::random_tensor<double>(lux::make_shape(6, 4), 1);
  lux::ReshapeLayer rl(lux::make_shape(2, 3));
  auto [y, st] = lux::apply(rl, x, e, e);
  REQUIRE(y.shape() == lux::make_shape(2, 3, 4));
  CHECK(y(1, 2, 3) == x(5, 3));
  CHECK(lux::outputsize(rl, x.shape()) == lux::make_shape(2, 3, 4));
  check_fd(rl, x, lux_test::random_tensor<double>(lux::make_shape(2, 3, 4), 2));
  CHECK(str(rl) == "ReshapeLayer(output_dims = (2, 3, :))");
  CHECK_THROWS_WITH(lux::apply(rl, lux::Tensor<double, 2>(5, 4), e, e),
                    "ReshapeLayer (2, 3, :): cannot reshape (5, 4) to (2, 3, 4)");
  CHECK_THROWS_AS(lux::ReshapeLayer(lux::make_shape(0, 3)), lux::argument_error);

  // SelectDim is 0-based: Lux's SelectDim(2, 3) is lux::SelectDim(1, 2).
  auto x3 = lux_test::random_tensor<double>(lux::make_shape(3, 4, 2), 3);
  lux::SelectDim sd(1, 2);
  auto [ys, sts] = lux::apply(sd, x3, e, e);
  REQUIRE(ys.shape() == lux::make_shape(3, 2));
  for (lux::index_t i = 0; i < 3; ++i)
    for (lux::index_t b = 0; b < 2; ++b) CHECK(ys(i, b) == x3(i, 2, b));
  CHECK(lux::outputsize(sd, x3.shape()) == lux::make_shape(3, 2));
  check_fd(sd, x3, lux_test::random_tensor<double>(lux::make_shape(3, 2), 4));
  CHECK(str(sd) == "SelectDim(1, 2)");
  CHECK_THROWS_WITH(lux::apply(lux::SelectDim(1, 4), x3, e, e),
                    "SelectDim(1, 4): index 4 out of range for dimension 1 of input (3, 4, 2)");
  CHECK_THROWS_WITH(lux::outputsize(lux::SelectDim(3, 0), x3.shape()),
                    "SelectDim(3, 0): dimension 3 out of range for input (3, 4, 2)");
}

TEST_CASE("WrappedFunction and lambdas in Chain", "[layers][utility]") {
  lux::empty_tuple e;
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2), 1);
  lux::WrappedFunction wf(square{});
  auto [y, st] = lux::apply(wf, x, e, e);
  CHECK(y(2, 1) == x(2, 1) * x(2, 1));
  CHECK(lux::outputsize(wf, x.shape()) == x.shape());
  check_fd(wf, x, lux_test::random_tensor<double>(x.shape(), 2));
  CHECK(str(wf) == "WrappedFunction(square)");

  // A lambda in a Chain becomes a WrappedFunction; apply works, outputsize runs it.
  lux::Chain c(lux::Dense({3, 2}), [](const auto& h) {
    auto o = lux::copy(lux::as_view(h));
    for (auto& v : o) v = 2 * v;
    return o;
  });
  lux::rng r(3);
  auto [ps, stc] = lux::setup<double>(r, c);
  static_assert(decltype(ps)::names[1] == "layer_2");
  auto [yc, s2] = lux::apply(c, x, ps, stc);
  auto [yd, s3] = lux::apply(c.get<0>(), x, ps.get<"layer_1">(), lux::empty_tuple{});
  CHECK(yc(1, 1) == 2 * yd(1, 1));
  CHECK(lux::outputsize(c, x.shape()) == lux::make_shape(2, 2));
  CHECK(str(c) == "Chain(layer_1 = Dense(3 => 2), layer_2 = WrappedFunction(f))");
  // (lux::pullback(c, ...) does not compile: the lambda has no pullback member; the
  // static_assert in lux::pullback names WrappedFunction.)

  // Dense's parameter-shape check.
  lux::Dense d({3, 4});
  auto pd = lux::setup<double>(r, d).first;
  auto bad = pd.with<"weight">(lux::Tensor<double, 2>(5, 3));
  CHECK_THROWS_WITH(lux::apply(d, x, bad, e),
                    "Dense 3 => 4: parameter weight has shape (5, 3), expected (4, 3)");
  CHECK_THROWS_WITH(lux::pullback(d, x, bad, e),
                    "Dense 3 => 4: parameter weight has shape (5, 3), expected (4, 3)");
}
