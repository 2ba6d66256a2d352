// End-to-end models: a LeNet-style Chain and an LSTM sequence model, forward and
// backward through every layer, checked against central finite differences in double (all of
// dx, sampled coordinates of every parameter), plus a few SGD steps that must lower the loss,
// and the path-naming errors for a wrong input and a parameter tree of the wrong shape.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/kernels/activation.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/containers.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/layers/pooling.hpp>
#include <lux/layers/recurrent.hpp>
#include <lux/layers/utility.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/layer_check.hpp"

namespace {

auto make_lenet() {
  return lux::Chain(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::MaxPool({2, 2}),
                    lux::Conv({5, 5}, {6, 16}, lux::relu{}), lux::MaxPool({2, 2}),
                    lux::FlattenLayer{}, lux::Dense({256, 120}, lux::relu{}),
                    lux::Dense({120, 84}, lux::relu{}), lux::Dense({84, 10}));
}

/// Finite differences at `samples` evenly spaced coordinates of every parameter leaf (every
/// coordinate when the leaf is smaller), each coordinate's error relative to max(1, |fd|).
lux_test::fd_options sampled(lux::index_t samples) {
  return {.tol = 1e-5, .floor = 1, .max_samples = samples, .per_coordinate = true};
}

/// Softmax cross-entropy over the columns of logits (10, B), and its gradient.
template <class T>
double cross_entropy(const lux::Tensor<T, 2>& logits, const std::vector<int>& labels,
                     std::type_identity_t<lux::Tensor<T, 2>>* grad) {
  double loss = 0;
  const lux::index_t C = logits.size(0), B = logits.size(1);
  for (lux::index_t b = 0; b < B; ++b) {
    double m = -1e300, s = 0;
    for (lux::index_t c = 0; c < C; ++c) m = std::max(m, double(logits(c, b)));
    for (lux::index_t c = 0; c < C; ++c) s += std::exp(double(logits(c, b)) - m);
    loss += -(double(logits(labels[b], b)) - m - std::log(s));
    if (grad)
      for (lux::index_t c = 0; c < C; ++c)
        (*grad)(c, b) =
            T((std::exp(double(logits(c, b)) - m) / s - (c == labels[b] ? 1.0 : 0.0)) / B);
  }
  return loss / B;
}

/// relu as a differentiable function for WrappedFunction (ResNet's activation after the sum).
struct relu_fn {
  static constexpr const char* name = "relu";
  template <class X>
  auto operator()(const X& x) const {
    return lux::fast_activation(lux::relu{}, x);
  }
  template <class X>
  auto pullback(const X& x) const {
    auto y = lux::fast_activation(lux::relu{}, x);
    auto back = [y](const auto& dy) {
      return lux::activation_backward(lux::relu{}, dy, lux::none, y).dx;
    };
    return std::pair{std::move(y), std::move(back)};
  }
};

/// ResNet's basic block: relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x)), the shortcut a
/// strided 1x1 Conv + BatchNorm when the block downsamples.
auto basic_block(lux::index_t cin, lux::index_t cout, lux::index_t stride) {
  auto main = lux::Chain(
      lux::Conv<2, lux::identity, false>({3, 3}, {cin, cout}, lux::identity{},
                                         {.stride = stride, .pad = 1}),
      lux::BatchNorm(cout, lux::relu{}),
      lux::Conv<2, lux::identity, false>({3, 3}, {cout, cout}, lux::identity{}, {.pad = 1}),
      lux::BatchNorm(cout, lux::identity{}));
  return main;
}

/// A ResNet-18-shaped model (He et al. 2016, torchvision's resnet18 layout) at width c: stem
/// (7x7/2 conv, BN, relu, 3x3/2 max pool), four stages of two basic blocks (the first block of
/// stages 2-4 downsamples), global mean pool, Dense.
auto make_resnet18(lux::index_t c, lux::index_t classes) {
  const auto same = [](lux::index_t cin, lux::index_t cout) {
    return lux::Chain(lux::SkipConnection(basic_block(cin, cout, 1), lux::add{}),
                      lux::WrappedFunction(relu_fn{}));
  };
  const auto down = [](lux::index_t cin, lux::index_t cout) {
    return lux::Chain(
        lux::Parallel(lux::add{}, basic_block(cin, cout, 2),
                      lux::Chain(lux::Conv<2, lux::identity, false>({1, 1}, {cin, cout},
                                                                    lux::identity{}, {.stride = 2}),
                                 lux::BatchNorm(cout, lux::identity{}))),
        lux::WrappedFunction(relu_fn{}));
  };
  return lux::Chain(
      lux::Conv<2, lux::identity, false>({7, 7}, {3, c}, lux::identity{}, {.stride = 2, .pad = 3}),
      lux::BatchNorm(c, lux::relu{}), lux::MaxPool({3, 3}, {.stride = 2, .pad = 1}), same(c, c),
      same(c, c), down(c, 2 * c), same(2 * c, 2 * c), down(2 * c, 4 * c), same(4 * c, 4 * c),
      down(4 * c, 8 * c), same(8 * c, 8 * c), lux::GlobalMeanPool{}, lux::FlattenLayer{},
      lux::Dense({8 * c, classes}));
}
}  // namespace

TEST_CASE("LeNet: sizes, Lux's parameter count, printing", "[layers][models]") {
  auto model = make_lenet();
  // Lux: Conv 5·5·1·6+6 = 156, Conv 5·5·6·16+16 = 2416, Dense 30840, 10164, 850.
  CHECK(lux::parameterlength(model) == 156 + 2416 + 30840 + 10164 + 850);
  CHECK(lux::statelength(model) == 0);
  CHECK(lux::outputsize(model, lux::make_shape(28, 28, 1, 32)) == lux::make_shape(10, 32));
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  CHECK(ps.get<"layer_1">().get<"weight">().shape() == lux::make_shape(5, 5, 1, 6));
  CHECK(ps.get<"layer_6">().get<"weight">().shape() == lux::make_shape(120, 256));
  std::ostringstream os;
  os << model;
  CHECK(os.str().find("Conv((5, 5), 6 => 16, relu)") != std::string::npos);
  CHECK(os.str().find("Dense(84 => 10)") != std::string::npos);

  auto x = lux_test::random_tensor<float>(lux::make_shape(28, 28, 1, 32), 3);
  auto [y, st2] = lux::apply(model, x, ps, st);
  CHECK(y.shape() == lux::make_shape(10, 32));
}

TEST_CASE("LeNet: pullback end to end matches finite differences", "[layers][models]") {
  auto model = make_lenet();
  lux::rng r(2);
  auto [ps, st] = lux::setup<double>(r, model);
  auto x = lux_test::random_tensor<double>(lux::make_shape(28, 28, 1, 2), 4);
  auto v = lux_test::random_tensor<double>(lux::make_shape(10, 2), 5);
  auto [y, st2, back] = lux::pullback(model, x, ps, st);
  CHECK(lux_test::max_rel_err(y, lux::apply(model, x, ps, st).first) == 0.0);
  auto [dx, dps] = back(v);
  CHECK(dx.shape() == x.shape());
  auto loss_x = [&](const lux::Tensor<double, 4>& xx) {
    return lux_test::dot(lux::apply(model, xx, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<4>(loss_x, x)) < 1e-6);
  CHECK(
      lux_test::check_parameter_gradients(lux_test::vjp_loss(model, x, st, v), ps, dps, sampled(12))
          .size() == 10);
}

TEST_CASE("LeNet: SGD steps on a fixed batch lower the cross-entropy", "[layers][models]") {
  auto model = make_lenet();
  lux::rng r(6);
  auto [ps, st] = lux::setup<float>(r, model);
  auto x = lux_test::random_tensor<float>(lux::make_shape(28, 28, 1, 16), 7);
  std::vector<int> labels(16);
  for (int b = 0; b < 16; ++b) labels[b] = (b * 7) % 10;
  lux::Tensor<float, 2> dy(10, 16);
  const double loss0 = cross_entropy(lux::apply(model, x, ps, st).first, labels, nullptr);
  double loss = loss0;
  for (int step = 0; step < 60; ++step) {
    auto [y, st2, back] = lux::pullback(model, x, ps, st);
    loss = cross_entropy(y, labels, &dy);
    auto grads = back(dy).dps;
    lux::zip_leaves(ps, grads, [&](std::string_view, auto& p, const auto& g) {
      for (lux::index_t i = 0; i < p.numel(); ++i) p.data()[i] -= 0.2f * g.data()[i];
    });
  }
  INFO("loss " << loss0 << " -> " << loss);
  CHECK(std::isfinite(loss));
  CHECK(loss < 0.25 * loss0);
}

TEST_CASE("LeNet: errors name the layer path", "[layers][models]") {
  auto model = make_lenet();
  lux::rng r(8);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<float, 4> wrong_channels(28, 28, 3, 2);
  CHECK_THROWS_AS(lux::apply(model, wrong_channels, ps, st), lux::shape_error);
  try {
    (void)lux::apply(model, wrong_channels, ps, st);
  } catch (const lux::shape_error& e) {
    CHECK(std::string(e.what()).rfind("layer_1 (Conv", 0) == 0);
  }
  // A parameter tree of the wrong shape: layer_6's weight from a Dense(256 => 100).
  auto ps_bad = ps;
  ps_bad.get<"layer_6">().get<"weight">() = lux::Tensor<float, 2>(100, 256);
  lux::Tensor<float, 4> x(28, 28, 1, 2);
  CHECK_THROWS_WITH(lux::apply(model, x, ps_bad, st),
                    "layer_6 (Dense 256 => 120): parameter weight has shape (100, 256), expected "
                    "(120, 256)");
  // A wrong input size reaching a Dense inside the chain (28×28 → 32×32 images).
  lux::Tensor<float, 4> big(32, 32, 1, 2);
  CHECK_THROWS_WITH(lux::apply(model, big, ps, st),
                    "layer_6 (Dense 256 => 120): expected input (256, B), got (400, 2)");
}

TEST_CASE("LSTM sequence model: Recurrence(LSTMCell) then Dense, end to end", "[layers][models]") {
  auto model = lux::Chain(lux::Recurrence(lux::LSTMCell({3, 6})), lux::Dense({6, 2}));
  CHECK(lux::parameterlength(model) == (24 * 3 + 24 * 6 + 24 + 24) + (6 * 2 + 2));
  lux::rng r(9);
  auto [ps, st] = lux::setup<double>(r, model);
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 5, 4), 10);  // (F, T, B)
  CHECK(lux::outputsize(model, x.shape()) == lux::make_shape(2, 4));
  auto v = lux_test::random_tensor<double>(lux::make_shape(2, 4), 11);
  auto [y, st2, back] = lux::pullback(model, x, ps, st);
  CHECK(y.shape() == lux::make_shape(2, 4));
  auto [dx, dps] = back(v);
  auto loss_x = [&](const lux::Tensor<double, 3>& xx) {
    return lux_test::dot(lux::apply(model, xx, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<3>(loss_x, x)) < 1e-6);
  CHECK(lux_test::check_parameter_gradients(lux_test::vjp_loss(model, x, st, v), ps, dps,
                                            sampled(1000))
            .size() == 6);
}

TEST_CASE("ResNet-18-shaped model: builds, counts, forward and backward", "[layers][models]") {
  const lux::index_t c = 4;
  auto model = make_resnet18(c, 10);
  // Convolutions without bias: the stem 7·7·3·c; stage 1 four 3x3 c→c; each later stage one
  // 3x3 cin→cout, three 3x3 cout→cout and the 1x1 shortcut cin→cout. BatchNorm: 2 per channel
  // (the stem's, four per stage, and each shortcut's). Dense 8c·10 + 10.
  const auto stage = [](lux::index_t cin, lux::index_t cout) {
    return 9 * cin * cout + 3 * 9 * cout * cout + cin * cout;
  };
  const lux::index_t convs =
      49 * 3 * c + 4 * 9 * c * c + stage(c, 2 * c) + stage(2 * c, 4 * c) + stage(4 * c, 8 * c);
  const lux::index_t bns = 2 * (c + 4 * c + 5 * 2 * c + 5 * 4 * c + 5 * 8 * c);
  CHECK(lux::parameterlength(model) == convs + bns + 8 * c * 10 + 10);
  CHECK(lux::outputsize(model, lux::make_shape(8, 8, 3, 3)) == lux::make_shape(10, 3));

  lux::rng r(12);
  auto [ps, st] = lux::setup<double>(r, model);
  auto x = lux_test::random_tensor<double>(lux::make_shape(8, 8, 3, 3), 13);
  auto v = lux_test::random_tensor<double>(lux::make_shape(10, 3), 14);
  auto [y, st2, back] = lux::pullback(model, x, ps, st);
  CHECK(y.shape() == lux::make_shape(10, 3));
  CHECK(lux_test::max_rel_err(y, lux::apply(model, x, ps, st).first) == 0.0);
  auto [dx, dps] = back(v);
  auto loss_x = [&](const lux::Tensor<double, 4>& xx) {
    return lux_test::dot(lux::apply(model, xx, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<4>(loss_x, x)) < 1e-6);
  CHECK(
      lux_test::check_parameter_gradients(lux_test::vjp_loss(model, x, st, v), ps, dps, sampled(3))
          .size() == lux::leaf_count(ps));
}

TEST_CASE("A deep Chain (64 Dense layers): forward and backward as the layers composed by hand",
          "[layers][models][containers]") {
  auto model = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return lux::Chain(((void)I, lux::Dense({3, 3}, lux::tanh_{}))...);
  }
  (std::make_index_sequence<64>{});
  lux::rng r(15);
  auto [ps, st] = lux::setup<double>(r, model);
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2), 16);
  auto v = lux_test::random_tensor<double>(lux::make_shape(3, 2), 17);
  // The same layers applied one by one, outside the Chain.
  const lux::Dense<lux::tanh_> layer({3, 3}, lux::tanh_{});
  std::vector<lux::Tensor<double, 2>> xs{x};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((xs.push_back(lux::apply(layer, xs.back(), ps.template at<I>(), st.template at<I>()).first)),
     ...);
  }
  (std::make_index_sequence<64>{});
  auto [y, st2, back] = lux::pullback(model, x, ps, st);
  CHECK(lux_test::max_rel_err(y, xs.back()) == 0.0);
  auto [dx, dps] = back(v);
  lux::Tensor<double, 2> d = v;
  double werr = 0, berr = 0;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          constexpr std::size_t J = 63 - I;
          auto pb = lux::pullback(layer, xs[J], ps.template at<J>(), st.template at<J>());
          auto g = pb.back(d);
          d = g.dx;
          werr =
              std::max(werr, lux_test::max_rel_err(g.dps.template get<"weight">(),
                                                   dps.template at<J>().template get<"weight">()));
          berr = std::max(berr, lux_test::max_rel_err(g.dps.template get<"bias">(),
                                                      dps.template at<J>().template get<"bias">()));
        }(),
        ...);
  }
  (std::make_index_sequence<64>{});
  CHECK(lux_test::max_rel_err(dx, d) == 0.0);
  CHECK(werr == 0.0);
  CHECK(berr == 0.0);
  CHECK(lux::leaf_count(dps) == 128);
}
