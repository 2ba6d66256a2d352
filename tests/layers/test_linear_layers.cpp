// Bilinear, Embedding, Scale: Lux's parameter counts and names, forward against naive float64
// references and PyTorch fixtures, pullback against central finite differences (x, y and every
// parameter leaf), outputsize, printing, error paths; float runs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/linear.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"
#include "support/layer_check.hpp"

namespace {
using lux::index_t;

// Naive float64 Bilinear: z[k, b] = σ(Σ_ij x[i, b] W[k, i, j] y[j, b] + bias[k]).
template <class F>
lux::Tensor<double, 2> naive_bilinear(const F& f, const lux::Tensor<double, 3>& w,
                                      const lux::Tensor<double, 2>& x,
                                      const lux::Tensor<double, 2>& y,
                                      const lux::Tensor<double, 1>* b) {
  lux::Tensor<double, 2> z(w.size(0), x.size(1));
  for (index_t c = 0; c < x.size(1); ++c)
    for (index_t k = 0; k < w.size(0); ++k) {
      double s = b ? (*b)[k] : 0.0;
      for (index_t i = 0; i < w.size(1); ++i)
        for (index_t j = 0; j < w.size(2); ++j) s += x(i, c) * w(k, i, j) * y(j, c);
      z(k, c) = f(s);
    }
  return z;
}

/// Bilinear with tuple input: forward vs naive, pullback vs FD for x, y and the parameters.
template <class F, class L>
void check_bilinear_tuple(const L& layer, const F& f, bool has_bias) {
  lux::rng r(11);
  auto [ps, st] = lux::setup<double>(r, layer);
  // Non-trivial bias (the default init is zeros).
  lux::for_each_leaf(ps, [&](std::string_view q, auto& leaf) {
    if (q == "bias") leaf = lux_test::random_tensor<double>(leaf.shape(), 99);
  });
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2, 3), 1);
  auto y = lux_test::random_tensor<double>(lux::make_shape(4, 2, 3), 2);
  auto v = lux_test::random_tensor<double>(lux::make_shape(5, 2, 3), 3);
  auto [z, st2] = lux::apply(layer, std::tuple{x, y}, ps, st);
  REQUIRE(z.shape() == lux::make_shape(5, 2, 3));
  const lux::Tensor<double, 1>* b = nullptr;
  if constexpr (L::use_bias) b = &ps.template get<"bias">();
  CHECK((b != nullptr) == has_bias);
  auto ref = naive_bilinear(f, ps.template get<"weight">(), copy(x.reshape(3, 6)),
                            copy(y.reshape(4, 6)), b);
  CHECK(lux_test::max_rel_err(z, ref) < 1e-13);
  CHECK(layer.output_shape(std::tuple{x.shape(), y.shape()}) == z.shape());

  auto [zp, st3, back] = lux::pullback(layer, std::tuple{x, y}, ps, st);
  CHECK(lux_test::max_rel_err(zp, z) == 0.0);
  auto [dxy, dps] = back(v);
  auto& [dx, dy] = dxy;
  static_assert(std::is_same_v<decltype(dps), decltype(ps)>);
  auto loss_x = [&](const lux::Tensor<double, 3>& xx) {
    return lux_test::dot(lux::apply(layer, std::tuple{xx, y}, ps, st).first, v);
  };
  auto loss_y = [&](const lux::Tensor<double, 3>& yy) {
    return lux_test::dot(lux::apply(layer, std::tuple{x, yy}, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<3>(loss_x, x)) < 1e-7);
  CHECK(lux_test::max_rel_err(dy, lux_test::numerical_gradient<3>(loss_y, y)) < 1e-7);
  auto checked = lux_test::check_parameter_gradients(
      lux_test::vjp_loss(layer, std::tuple{x, y}, st, v), ps, dps);
  CHECK(checked.size() == (has_bias ? 2u : 1u));
}
}  // namespace

// =============================================================================================
// Bilinear
// =============================================================================================

TEST_CASE("Bilinear: Lux counts, names, printing, outputsize", "[layers][linear][bilinear]") {
  // Lux: out·in1·in2 + out.
  CHECK(lux::parameterlength(lux::Bilinear({{3, 4}, 5})) == 5 * 3 * 4 + 5);
  CHECK(lux::parameterlength(lux::Bilinear({7, 2}, lux::relu{})) == 2 * 7 * 7 + 2);
  lux::Bilinear<lux::identity, false> nb({{3, 4}, 5});
  CHECK(lux::parameterlength(nb) == 60);
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, lux::Bilinear({{3, 4}, 5}, lux::relu{}));
  static_assert(decltype(ps)::names[0] == "weight" && decltype(ps)::names[1] == "bias");
  CHECK(ps.get<"weight">().shape() == lux::make_shape(5, 3, 4));
  CHECK(ps.get<"bias">().shape() == lux::make_shape(5));
  CHECK(lux::statelength(st) == 0);
  // Default init: glorot_uniform on (5, 3, 4) (fans 15, 20), bias zeros.
  const double bound = std::sqrt(6.0 / 35.0);
  for (float v : ps.get<"weight">()) CHECK(std::abs(v) <= bound);
  for (float v : ps.get<"bias">()) CHECK(v == 0.0f);
  auto [ps_nb, st_nb] = lux::setup<float>(r, nb);
  static_assert(decltype(ps_nb)::size == 1);

  std::ostringstream os;
  os << lux::Bilinear({{3, 4}, 5}, lux::relu{}) << " " << lux::Bilinear({4, 5}) << " " << nb;
  CHECK(os.str() ==
        "Bilinear((3, 4) => 5, relu) Bilinear((4, 4) => 5) Bilinear((3, 4) => 5, "
        "use_bias=false)");
  CHECK(lux::outputsize(lux::Bilinear({4, 5}), lux::make_shape(4, 7)) == lux::make_shape(5, 7));
  CHECK(lux::Bilinear({{3, 4}, 5})
            .output_shape(std::tuple{lux::make_shape(3, 2, 6), lux::make_shape(4, 2, 6)}) ==
        lux::make_shape(5, 2, 6));
  // Custom initializers through the options struct.
  lux::Bilinear custom({{2, 3}, 4}, lux::identity{},
                       lux::bilinear_options{.init_weight = lux::ones{}, .init_bias = lux::ones{}});
  auto [pc, sc] = lux::setup<double>(r, custom);
  CHECK(pc.get<"weight">()(3, 1, 2) == 1.0);
  CHECK(pc.get<"bias">()(3) == 1.0);
  CHECK_THROWS_AS(lux::Bilinear({{0, 3}, 4}), lux::argument_error);
}

TEST_CASE("Bilinear: tuple input, forward and pullback vs naive and finite differences",
          "[layers][linear][bilinear]") {
  SECTION("tanh (derivative from the output)") {
    check_bilinear_tuple(
        lux::Bilinear({{3, 4}, 5}, lux::tanh_{}), [](double s) { return std::tanh(s); }, true);
  }
  SECTION("gelu (derivative from the input)") {
    check_bilinear_tuple(
        lux::Bilinear({{3, 4}, 5}, lux::gelu{}), [](double s) { return lux::gelu{}(s); }, true);
  }
  SECTION("identity, no bias") {
    check_bilinear_tuple(
        lux::Bilinear<lux::identity, false>({{3, 4}, 5}), [](double s) { return s; }, false);
  }
}

TEST_CASE("Bilinear: a single input is used as x and y, vectors", "[layers][linear][bilinear]") {
  lux::Bilinear layer({4, 3}, lux::sigmoid{});
  lux::rng r(2);
  auto [ps, st] = lux::setup<double>(r, layer);
  ps.get<"bias">() = lux_test::random_tensor<double>(lux::make_shape(3), 5);
  auto x = lux_test::random_tensor<double>(lux::make_shape(4, 6), 6);
  auto v = lux_test::random_tensor<double>(lux::make_shape(3, 6), 7);
  auto [z, st2] = lux::apply(layer, x, ps, st);
  auto [z2, st3] = lux::apply(layer, std::tuple{x, x}, ps, st);
  CHECK(lux_test::max_rel_err(z, z2) == 0.0);
  const auto sig = [](double s) { return 1 / (1 + std::exp(-s)); };
  CHECK(lux_test::max_rel_err(z, naive_bilinear(sig, ps.get<"weight">(), x, x, &ps.get<"bias">())) <
        1e-13);
  auto [zp, stp, back] = lux::pullback(layer, x, ps, st);
  auto [dx, dps] = back(v);
  static_assert(std::is_same_v<decltype(dx), lux::Tensor<double, 2>>);
  auto loss_x = [&](const lux::Tensor<double, 2>& xx) {
    return lux_test::dot(lux::apply(layer, xx, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<2>(loss_x, x)) < 1e-7);
  lux_test::check_parameter_gradients(lux_test::vjp_loss(layer, x, st, v), ps, dps);

  // Vectors: x (in1), y (in2) → (out).
  lux::Bilinear lv({{2, 3}, 4});
  auto [pv, sv] = lux::setup<double>(r, lv);
  auto a = lux_test::random_tensor<double>(lux::make_shape(2), 8);
  auto b = lux_test::random_tensor<double>(lux::make_shape(3), 9);
  auto [zv, s2] = lux::apply(lv, std::tuple{a, b}, pv, sv);
  REQUIRE(zv.shape() == lux::make_shape(4));
  auto ref = naive_bilinear([](double s) { return s; }, pv.get<"weight">(), copy(a.reshape(2, 1)),
                            copy(b.reshape(3, 1)), &pv.get<"bias">());
  CHECK(lux_test::max_rel_err(zv, ref) < 1e-14);
  auto [zvp, svp, bv] = lux::pullback(lv, std::tuple{a, b}, pv, sv);
  auto [dab, dpv] = bv(lux::Tensor<double, 1>(lux::make_shape(4), 1.0));
  CHECK(std::get<0>(dab).shape() == lux::make_shape(2));
  CHECK(std::get<1>(dab).shape() == lux::make_shape(3));
}

TEST_CASE("Bilinear: error paths", "[layers][linear][bilinear]") {
  lux::Bilinear layer({{3, 4}, 5});
  lux::rng r(3);
  auto [ps, st] = lux::setup<double>(r, layer);
  lux::Tensor<double, 2> x(3, 6), y(4, 6), y5(4, 5), x2(2, 6);
  CHECK_NOTHROW(lux::apply(layer, std::tuple{x, y}, ps, st));
  CHECK_THROWS_WITH(lux::apply(layer, std::tuple{x2, y}, ps, st),
                    "Bilinear (3, 4) => 5: expected inputs (3, B) and (4, B) with equal trailing "
                    "sizes, got (2, 6) and (4, 6)");
  CHECK_THROWS_WITH(lux::apply(layer, std::tuple{x, y5}, ps, st),
                    "Bilinear (3, 4) => 5: expected inputs (3, B) and (4, B) with equal trailing "
                    "sizes, got (3, 6) and (4, 5)");
  CHECK_THROWS_WITH(lux::apply(layer, x, ps, st),
                    "Bilinear (3, 4) => 5: a single input is used as both x and y, which needs "
                    "in1 == in2; pass std::tuple{x, y}, got one input (3, 6)");
  CHECK_THROWS_WITH(lux::apply(lux::Bilinear({4, 5}), x, ps, st),
                    "Bilinear (4, 4) => 5: expected input (4, B), got (3, 6)");
  CHECK_THROWS_AS(lux::outputsize(layer, lux::make_shape(3, 6)), lux::shape_error);
  auto bad = ps;
  bad.get<"weight">() = lux::Tensor<double, 3>(5, 4, 3);
  CHECK_THROWS_WITH(lux::apply(layer, std::tuple{x, y}, bad, st),
                    "Bilinear (3, 4) => 5: parameter weight has shape (5, 4, 3), expected (5, 3, "
                    "4)");
  auto badb = ps;
  badb.get<"bias">() = lux::Tensor<double, 1>(6);
  CHECK_THROWS_WITH(lux::pullback(layer, std::tuple{x, y}, badb, st),
                    "Bilinear (3, 4) => 5: parameter bias has shape (6), expected (5)");
  auto [z, s2, back] = lux::pullback(layer, std::tuple{x, y}, ps, st);
  CHECK_THROWS_AS(back(lux::Tensor<double, 2>(5, 5)), lux::shape_error);
}

TEST_CASE("Bilinear: PyTorch nn.Bilinear fixture", "[layers][linear][bilinear][fixture]") {
  const lux_test::fixture_file fx("layers_linear.txt");
  auto w = fx.tensor<double, 3>("bil_W");
  REQUIRE(w.shape() == lux::make_shape(2, 3, 5));
  auto ps = lux::make_named_tuple<"weight", "bias">(w, fx.tensor<double, 1>("bil_b"));
  auto x1 = fx.tensor<double, 2>("bil_x1");
  auto x2 = fx.tensor<double, 2>("bil_x2");
  auto v = fx.tensor<double, 2>("bil_v");
  const auto check = [&](const auto& layer, const std::string& tag) {
    lux::empty_tuple st;
    auto [y, s2, back] = lux::pullback(layer, std::tuple{x1, x2}, ps, st);
    CHECK(lux_test::max_rel_err(y, fx.tensor<double, 2>(tag + "_y")) < 1e-14);
    auto [dxy, dps] = back(v);
    CHECK(lux_test::max_rel_err(std::get<0>(dxy), fx.tensor<double, 2>(tag + "_dx1")) < 1e-14);
    CHECK(lux_test::max_rel_err(std::get<1>(dxy), fx.tensor<double, 2>(tag + "_dx2")) < 1e-14);
    CHECK(lux_test::max_rel_err(dps.template get<"weight">(), fx.tensor<double, 3>(tag + "_dW")) <
          1e-14);
    CHECK(lux_test::max_rel_err(dps.template get<"bias">(), fx.tensor<double, 1>(tag + "_db")) <
          1e-14);
    // float: the same data rounded (inputs are exact in float).
    auto psf = lux::make_named_tuple<"weight", "bias">(fx.tensor<float, 3>("bil_W"),
                                                       fx.tensor<float, 1>("bil_b"));
    auto [yf, s3, backf] = lux::pullback(
        layer, std::tuple{fx.tensor<float, 2>("bil_x1"), fx.tensor<float, 2>("bil_x2")}, psf, st);
    CHECK(lux_test::max_rel_err(yf, fx.tensor<double, 2>(tag + "_y")) < 1e-6);
    auto [dxyf, dpsf] = backf(fx.tensor<float, 2>("bil_v"));
    CHECK(lux_test::max_rel_err(std::get<0>(dxyf), fx.tensor<double, 2>(tag + "_dx1")) < 1e-6);
    CHECK(lux_test::max_rel_err(dpsf.template get<"weight">(), fx.tensor<double, 3>(tag + "_dW")) <
          1e-6);
  };
  check(lux::Bilinear({{3, 5}, 2}), "bil");
  check(lux::Bilinear({{3, 5}, 2}, lux::tanh_{}), "bil_tanh");
}

// =============================================================================================
// Embedding
// =============================================================================================

TEST_CASE("Embedding: counts, names, printing, forward, 0-based indices",
          "[layers][linear][embedding]") {
  lux::Embedding layer({10, 4});
  CHECK(lux::parameterlength(layer) == 40);  // Lux: in·out
  std::ostringstream os;
  os << layer;
  CHECK(os.str() == "Embedding(10 => 4)");
  lux::rng r(4);
  auto [ps, st] = lux::setup<double>(r, layer);
  static_assert(decltype(ps)::size == 1 && decltype(ps)::names[0] == "weight");
  const auto& w = ps.get<"weight">();
  CHECK(w.shape() == lux::make_shape(4, 10));
  // Default randn: not all in [0, 1) (which rand would give).
  bool negative = false;
  for (double v : w) negative = negative || v < 0;
  CHECK(negative);

  lux::Tensor<std::int32_t, 2> idx(lux::make_shape(3, 2), {0, 9, 3, 3, 7, 1});
  auto [y, st2] = lux::apply(layer, idx, ps, st);
  REQUIRE(y.shape() == lux::make_shape(4, 3, 2));
  CHECK(lux::outputsize(layer, idx.shape()) == y.shape());
  for (index_t b = 0; b < 2; ++b)
    for (index_t a = 0; a < 3; ++a)
      for (index_t o = 0; o < 4; ++o) CHECK(y(o, a, b) == w(o, idx(a, b)));
  // A vector of indices and a single integer.
  lux::Tensor<std::int64_t, 1> iv(lux::make_shape(2), {9, 0});
  auto [yv, s3] = lux::apply(layer, iv, ps, st);
  CHECK(yv.shape() == lux::make_shape(4, 2));
  CHECK(yv(2, 0) == w(2, 9));
  auto [y1, s4] = lux::apply(layer, 5, ps, st);
  static_assert(std::is_same_v<decltype(y1), lux::Tensor<double, 1>>);
  CHECK(y1.shape() == lux::make_shape(4));
  for (index_t o = 0; o < 4; ++o) CHECK(y1(o) == w(o, 5));
  CHECK(lux::outputsize(layer, lux::shape_t<0>{}) == lux::make_shape(4));

  // Custom initializer through the options struct.
  lux::Embedding ones({3, 2}, lux::embedding_options{.init_weight = lux::ones{}});
  auto [po, so] = lux::setup<float>(r, ones);
  CHECK(po.get<"weight">()(1, 2) == 1.0f);
}

TEST_CASE("Embedding: pullback, repeated indices, finite differences",
          "[layers][linear][embedding]") {
  lux::Embedding layer({6, 3});
  lux::rng r(5);
  auto [ps, st] = lux::setup<double>(r, layer);
  lux::Tensor<int, 2> idx(lux::make_shape(2, 3), {1, 4, 4, 0, 1, 4});
  auto v = lux_test::random_tensor<double>(lux::make_shape(3, 2, 3), 12);
  auto [y, st2, back] = lux::pullback(layer, idx, ps, st);
  auto [dx, dps] = back(v);
  static_assert(std::is_same_v<decltype(dx), lux::none_t>);
  static_assert(std::is_same_v<decltype(dps), decltype(ps)>);
  auto checked =
      lux_test::check_parameter_gradients(lux_test::vjp_loss(layer, idx, st, v), ps, dps);
  CHECK(checked == std::vector<std::string>{"weight"});
  // Unused columns get zero gradient.
  for (index_t o = 0; o < 3; ++o) CHECK(dps.get<"weight">()(o, 5) == 0.0);
  // Single integer.
  auto [y1, s1, back1] = lux::pullback(layer, std::int64_t{2}, ps, st);
  auto [dx1, dps1] = back1(lux::Tensor<double, 1>(lux::make_shape(3), {1.0, 2.0, 3.0}));
  CHECK(dps1.get<"weight">()(1, 2) == 2.0);
  CHECK(dps1.get<"weight">()(1, 3) == 0.0);
  CHECK_THROWS_AS(back1(lux::Tensor<double, 1>(lux::make_shape(4))), lux::shape_error);
  CHECK_THROWS_WITH(back(lux::Tensor<double, 3>(lux::make_shape(3, 3, 2))),
                    Catch::StartsWith("Embedding 6 => 3: embedding_lookup_backward: dy has shape"));
}

TEST_CASE("Embedding: error paths", "[layers][linear][embedding]") {
  lux::Embedding layer({10, 4});
  lux::rng r(6);
  auto [ps, st] = lux::setup<float>(r, layer);
  lux::Tensor<int, 1> idx(lux::make_shape(5), {0, 1, 2, 12, 3});
  CHECK_THROWS_WITH(lux::apply(layer, idx, ps, st),
                    "Embedding 10 => 4: embedding_lookup: index 12 at position 3 of indices (5) "
                    "is out of range [0, 10) for weight (4, 10) (indices are 0-based)");
  CHECK_THROWS_AS(lux::apply(layer, -1, ps, st), lux::argument_error);
  CHECK_THROWS_AS(lux::apply(layer, 10, ps, st), lux::argument_error);
  CHECK_THROWS_AS(lux::pullback(layer, idx, ps, st), lux::argument_error);
  auto bad = ps;
  bad.get<"weight">() = lux::Tensor<float, 2>(10, 4);
  CHECK_THROWS_WITH(lux::apply(layer, 1, bad, st),
                    "Embedding 10 => 4: parameter weight has shape (10, 4), expected (4, 10)");
  CHECK_THROWS_AS(lux::Embedding({0, 4}), lux::argument_error);
}

TEST_CASE("Embedding: PyTorch nn.Embedding fixture", "[layers][linear][embedding][fixture]") {
  const lux_test::fixture_file fx("layers_linear.txt");
  auto idxd = fx.tensor<double, 2>("emb_idx");
  lux::Tensor<std::int64_t, 2> idx(idxd.shape());
  for (index_t i = 0; i < idx.numel(); ++i) idx.data()[i] = static_cast<std::int64_t>(idxd[i]);
  lux::Embedding layer({7, 4});
  auto ps = lux::make_named_tuple<"weight">(fx.tensor<double, 2>("emb_W"));
  auto [y, st, back] = lux::pullback(layer, idx, ps, lux::empty_tuple{});
  CHECK(lux_test::max_rel_err(y, fx.tensor<double, 3>("emb_y")) == 0.0);
  auto [dx, dps] = back(fx.tensor<double, 3>("emb_v"));
  CHECK(lux_test::max_rel_err(dps.get<"weight">(), fx.tensor<double, 2>("emb_dW")) < 1e-15);
  // float
  auto psf = lux::make_named_tuple<"weight">(fx.tensor<float, 2>("emb_W"));
  auto [yf, stf, backf] = lux::pullback(layer, idx, psf, lux::empty_tuple{});
  CHECK(lux_test::max_rel_err(yf, fx.tensor<double, 3>("emb_y")) == 0.0);
  auto [dxf, dpsf] = backf(fx.tensor<float, 3>("emb_v"));
  CHECK(lux_test::max_rel_err(dpsf.get<"weight">(), fx.tensor<double, 2>("emb_dW")) < 1e-6);
}

// =============================================================================================
// Scale
// =============================================================================================

TEST_CASE("Scale: counts, names, printing, defaults", "[layers][linear][scale]") {
  CHECK(lux::parameterlength(lux::Scale({3, 4})) == 24);  // Lux: 2·prod(dims)
  lux::Scale<2, lux::relu, false> nb({3, 4});
  CHECK(lux::parameterlength(nb) == 12);
  CHECK(lux::parameterlength(lux::Scale(5, lux::tanh_{})) == 10);
  std::ostringstream os;
  os << lux::Scale({3, 4}, lux::tanh_{}) << " " << lux::Scale(5) << " " << nb;
  CHECK(os.str() == "Scale((3, 4), tanh) Scale((5,)) Scale((3, 4), relu, use_bias=false)");
  lux::rng r(7);
  auto [ps, st] = lux::setup<double>(r, lux::Scale({3, 4}));
  static_assert(decltype(ps)::names[0] == "weight" && decltype(ps)::names[1] == "bias");
  CHECK(ps.get<"weight">().shape() == lux::make_shape(3, 4));
  for (double v : ps.get<"weight">()) CHECK(v == 1.0);  // document default: ones
  for (double v : ps.get<"bias">()) CHECK(v == 0.0);
  lux::Scale glorot({3, 4}, lux::identity{},
                    lux::scale_options{.init_weight = lux::glorot_uniform{}});
  auto [pg, sg] = lux::setup<double>(r, glorot);
  CHECK(pg.get<"weight">()(0, 0) != 1.0);
  CHECK(lux::outputsize(lux::Scale({3, 4}), lux::make_shape(3, 4, 7, 2)) ==
        lux::make_shape(3, 4, 7, 2));
  CHECK(lux::Scale(lux::make_shape(2, 2)).dims == lux::make_shape(2, 2));
  CHECK_THROWS_AS(lux::Scale({3, 0}), lux::argument_error);
}

template <class L, class F>
void check_scale(const L& layer, const F& f) {
  lux::rng r(8);
  auto [ps, st] = lux::setup<double>(r, layer);
  lux::for_each_leaf(ps, [&](std::string_view q, auto& leaf) {
    leaf = lux_test::random_tensor<double>(leaf.shape(), q == "weight" ? 21 : 22);
  });
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 4, 2, 2), 23);
  auto v = lux_test::random_tensor<double>(x.shape(), 24);
  auto [y, st2] = lux::apply(layer, x, ps, st);
  REQUIRE(y.shape() == x.shape());
  // Naive reference.
  double err = 0;
  for (index_t c = 0; c < 2; ++c)
    for (index_t b = 0; b < 2; ++b)
      for (index_t j = 0; j < 4; ++j)
        for (index_t i = 0; i < 3; ++i) {
          double z = x(i, j, b, c) * ps.template get<"weight">()(i, j);
          if constexpr (L::use_bias) z += ps.template get<"bias">()(i, j);
          err = std::max(err, std::abs(f(z) - y(i, j, b, c)));
        }
  CHECK(err < 1e-15);
  auto [yp, stp, back] = lux::pullback(layer, x, ps, st);
  CHECK(lux_test::max_rel_err(yp, y) == 0.0);
  auto [dx, dps] = back(v);
  auto loss_x = [&](const lux::Tensor<double, 4>& xx) {
    return lux_test::dot(lux::apply(layer, xx, ps, st).first, v);
  };
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<4>(loss_x, x)) < 1e-7);
  auto checked = lux_test::check_parameter_gradients(lux_test::vjp_loss(layer, x, st, v), ps, dps);
  CHECK(checked.size() == (L::use_bias ? 2u : 1u));
}

TEST_CASE("Scale: forward vs naive, pullback vs finite differences", "[layers][linear][scale]") {
  SECTION("tanh") {
    check_scale(lux::Scale({3, 4}, lux::tanh_{}), [](double z) { return std::tanh(z); });
  }
  SECTION("swish (derivative from the input)") {
    check_scale(lux::Scale({3, 4}, lux::swish{}), [](double z) { return lux::swish{}(z); });
  }
  SECTION("identity, no bias") {
    check_scale(lux::Scale<2, lux::identity, false>({3, 4}), [](double z) { return z; });
  }
  SECTION("relu, float, input equal to dims") {
    lux::Scale layer(4, lux::relu{});
    lux::rng r(9);
    auto [ps, st] = lux::setup<float>(r, layer);
    ps.get<"weight">() = lux::Tensor<float, 1>(lux::make_shape(4), {1.f, -2.f, 0.5f, 3.f});
    ps.get<"bias">() = lux::Tensor<float, 1>(lux::make_shape(4), {0.f, 1.f, -1.f, 0.25f});
    lux::Tensor<float, 1> x(lux::make_shape(4), {2.f, 1.f, 1.f, -1.f});
    auto [y, s2, back] = lux::pullback(layer, x, ps, st);
    CHECK(y(0) == 2.f);
    CHECK(y(1) == 0.f);
    CHECK(y(2) == 0.f);
    CHECK(y(3) == 0.f);
    auto [dx, dps] = back(lux::Tensor<float, 1>(lux::make_shape(4), 1.f));
    CHECK(dx(0) == 1.f);
    CHECK(dx(1) == 0.f);
    CHECK(dps.get<"weight">()(0) == 2.f);
    CHECK(dps.get<"bias">()(0) == 1.f);
    CHECK(dps.get<"bias">()(3) == 0.f);
  }
}

TEST_CASE("Scale: error paths", "[layers][linear][scale]") {
  lux::Scale layer({3, 4});
  lux::rng r(10);
  auto [ps, st] = lux::setup<double>(r, layer);
  CHECK_THROWS_WITH(lux::apply(layer, lux::Tensor<double, 3>(3, 5, 2), ps, st),
                    "Scale (3, 4): expected input (3, 4, B...), got (3, 5, 2)");
  CHECK_THROWS_WITH(lux::outputsize(layer, lux::make_shape(4, 3)),
                    "Scale (3, 4): expected input (3, 4), got (4, 3)");
  auto bad = ps;
  bad.get<"weight">() = lux::Tensor<double, 2>(3, 5);
  CHECK_THROWS_WITH(lux::apply(layer, lux::Tensor<double, 3>(3, 4, 2), bad, st),
                    "Scale (3, 4): parameter weight has shape (3, 5), expected (3, 4)");
  auto badb = ps;
  badb.get<"bias">() = lux::Tensor<double, 2>(4, 3);
  CHECK_THROWS_WITH(lux::pullback(layer, lux::Tensor<double, 3>(3, 4, 2), badb, st),
                    "Scale (3, 4): parameter bias has shape (4, 3), expected (3, 4)");
  auto [y, s2, back] = lux::pullback(layer, lux::Tensor<double, 3>(3, 4, 2), ps, st);
  CHECK_THROWS_AS(back(lux::Tensor<double, 3>(3, 4, 3)), lux::shape_error);
}

TEST_CASE("Linear layers inside a Chain: gradients and error prefixes", "[layers][linear]") {
  lux::Chain model(lux::Embedding({8, 4}), lux::Scale({4}, lux::tanh_{}),
                   lux::Bilinear({4, 3}, lux::relu{}), lux::Dense({3, 2}));
  lux::rng r(12);
  auto [ps, st] = lux::setup<double>(r, model);
  CHECK(lux::parameterlength(ps) == 32 + 8 + 48 + 3 + 6 + 2);
  lux::Tensor<int, 2> idx(lux::make_shape(2, 3), {0, 7, 3, 3, 5, 1});
  auto v = lux_test::random_tensor<double>(lux::make_shape(2, 2, 3), 30);
  auto [y, st2, back] = lux::pullback(model, idx, ps, st);
  CHECK(y.shape() == lux::make_shape(2, 2, 3));
  CHECK(lux::outputsize(model, idx.shape()) == y.shape());
  auto [dx, dps] = back(v);
  static_assert(std::is_same_v<decltype(dx), lux::none_t>);
  auto checked =
      lux_test::check_parameter_gradients(lux_test::vjp_loss(model, idx, st, v), ps, dps);
  CHECK(checked.size() == 7u);
  lux::Tensor<int, 1> bad(lux::make_shape(2), {1, 8});
  // An index out of range is an argument_error; Chain adds the layer path to it, as to shape
  // errors.
  CHECK_THROWS_AS(lux::apply(model, bad, ps, st), lux::argument_error);
  CHECK_THROWS_WITH(lux::apply(model, bad, ps, st),
                    Catch::StartsWith("layer_1 (Embedding 8 => 4): embedding_lookup: index 8"));
  auto ps_bad = ps;
  ps_bad.get<"layer_2">().get<"bias">() = lux::Tensor<double, 1>(lux::make_shape(5));
  CHECK_THROWS_WITH(lux::apply(model, idx, ps_bad, st),
                    "layer_2 (Scale (4)): parameter bias has shape (5), expected (4)");
  std::ostringstream os;
  os << model;
  CHECK(os.str() ==
        "Chain(layer_1 = Embedding(8 => 4), layer_2 = Scale((4,), tanh), layer_3 = "
        "Bilinear((4, 4) => 3, relu), layer_4 = Dense(3 => 2))");
}
