// Conv, CrossCor, ConvTranspose, pooling, Upsample and PixelShuffle layers: Lux's parameter
// counts and conv test case, forward against naive float64 references and PyTorch fixtures
// (tests/fixtures/make_layer_conv_fixtures.py), pullback against central finite differences,
// outputsize, printing and error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <lux/layers/chain.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/pooling.hpp>
#include <lux/layers/upsample.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"
#include "support/layer_check.hpp"

namespace {
using lux::index_t;
using T4 = lux::Tensor<double, 4>;

// Naive float64 2-d convolution on (W, H, C, B): y[o] = Σ w[k'] x[o·s − lo + k·d] (+ b), k' the
// flipped tap for a true convolution; groups split the channels.
T4 naive_conv2d(const T4& x, const T4& w, const lux::Tensor<double, 1>* b, std::array<index_t, 2> s,
                std::array<index_t, 4> pad /* Lux's (lo₁, hi₁, lo₂, hi₂) */,
                std::array<index_t, 2> d, index_t groups, bool flipped) {
  const index_t K0 = w.size(0), K1 = w.size(1), cing = w.size(2), cout = w.size(3);
  const index_t O0 = (x.size(0) + pad[0] + pad[1] - d[0] * (K0 - 1) - 1) / s[0] + 1;
  const index_t O1 = (x.size(1) + pad[2] + pad[3] - d[1] * (K1 - 1) - 1) / s[1] + 1;
  T4 y(lux::make_shape(O0, O1, cout, x.size(3)));
  const index_t coutg = cout / groups;
  for (index_t n = 0; n < x.size(3); ++n)
    for (index_t co = 0; co < cout; ++co)
      for (index_t o1 = 0; o1 < O1; ++o1)
        for (index_t o0 = 0; o0 < O0; ++o0) {
          double acc = b ? (*b)[co] : 0.0;
          const index_t g = co / coutg;
          for (index_t cl = 0; cl < cing; ++cl)
            for (index_t k1 = 0; k1 < K1; ++k1)
              for (index_t k0 = 0; k0 < K0; ++k0) {
                const index_t i0 = o0 * s[0] - pad[0] + k0 * d[0];
                const index_t i1 = o1 * s[1] - pad[2] + k1 * d[1];
                if (i0 < 0 || i0 >= x.size(0) || i1 < 0 || i1 >= x.size(1)) continue;
                const index_t q0 = flipped ? K0 - 1 - k0 : k0, q1 = flipped ? K1 - 1 - k1 : k1;
                acc += w(q0, q1, cl, co) * x(i0, i1, g * cing + cl, n);
              }
          y(o0, o1, co, n) = acc;
        }
  return y;
}

// Naive transposed 2-d convolution (the adjoint of naive_conv2d's map from y to x), weight
// (k0, k1, C_out/g, C_in), plus bias; outpad enlarges the output at the high end.
T4 naive_conv_transpose2d(const T4& x, const T4& w, const lux::Tensor<double, 1>& b,
                          std::array<index_t, 2> s, std::array<index_t, 4> pad,
                          std::array<index_t, 2> d, std::array<index_t, 2> outpad, index_t groups,
                          bool flipped) {
  const index_t K0 = w.size(0), K1 = w.size(1), coutg = w.size(2), cin = w.size(3);
  const index_t O0 = (x.size(0) - 1) * s[0] + 1 + (K0 - 1) * d[0] - pad[0] - pad[1] + outpad[0];
  const index_t O1 = (x.size(1) - 1) * s[1] + 1 + (K1 - 1) * d[1] - pad[2] - pad[3] + outpad[1];
  const index_t cout = coutg * groups, cing = cin / groups;
  T4 y(lux::make_shape(O0, O1, cout, x.size(3)));
  for (index_t n = 0; n < x.size(3); ++n) {
    for (index_t c = 0; c < cout; ++c)
      for (index_t j = 0; j < O1; ++j)
        for (index_t i = 0; i < O0; ++i) y(i, j, c, n) = b[c];
    for (index_t ci = 0; ci < cin; ++ci) {
      const index_t g = ci / cing;
      for (index_t i1 = 0; i1 < x.size(1); ++i1)
        for (index_t i0 = 0; i0 < x.size(0); ++i0)
          for (index_t cl = 0; cl < coutg; ++cl)
            for (index_t k1 = 0; k1 < K1; ++k1)
              for (index_t k0 = 0; k0 < K0; ++k0) {
                const index_t o0 = i0 * s[0] - pad[0] + k0 * d[0];
                const index_t o1 = i1 * s[1] - pad[2] + k1 * d[1];
                if (o0 < 0 || o0 >= O0 || o1 < 0 || o1 >= O1) continue;
                const index_t q0 = flipped ? K0 - 1 - k0 : k0, q1 = flipped ? K1 - 1 - k1 : k1;
                y(o0, o1, g * coutg + cl, n) += w(q0, q1, cl, ci) * x(i0, i1, ci, n);
              }
    }
  }
  return y;
}

// Naive 2-d max / mean pooling (padding: −∞ for max, zeros counted for mean).
T4 naive_pool2d(const T4& x, bool is_max, std::array<index_t, 2> k, std::array<index_t, 2> s,
                std::array<index_t, 4> pad) {
  const index_t O0 = (x.size(0) + pad[0] + pad[1] - k[0]) / s[0] + 1;
  const index_t O1 = (x.size(1) + pad[2] + pad[3] - k[1]) / s[1] + 1;
  T4 y(lux::make_shape(O0, O1, x.size(2), x.size(3)));
  for (index_t n = 0; n < x.size(3); ++n)
    for (index_t c = 0; c < x.size(2); ++c)
      for (index_t o1 = 0; o1 < O1; ++o1)
        for (index_t o0 = 0; o0 < O0; ++o0) {
          double acc = is_max ? -INFINITY : 0.0;
          for (index_t k1 = 0; k1 < k[1]; ++k1)
            for (index_t k0 = 0; k0 < k[0]; ++k0) {
              const index_t i0 = o0 * s[0] - pad[0] + k0, i1 = o1 * s[1] - pad[2] + k1;
              if (i0 < 0 || i0 >= x.size(0) || i1 < 0 || i1 >= x.size(1)) continue;
              acc = is_max ? std::max(acc, x(i0, i1, c, n)) : acc + x(i0, i1, c, n);
            }
          y(o0, o1, c, n) = is_max ? acc : acc / static_cast<double>(k[0] * k[1]);
        }
  return y;
}

// pullback vs apply and outputsize, and back(v) vs central finite differences for x and every
// ps leaf.
template <class L, class X, class PS>
std::vector<std::string> check_pullback(const L& layer, const X& x, const PS& ps,
                                        double tol = 1e-6) {
  const auto v = lux_test::random_tensor<double>(lux::outputsize(layer, x.shape()), 99);
  return lux_test::check_pullback(layer, x, ps, lux::empty_tuple{}, v, {.tol = tol});
}

template <class L>
std::string show(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

const lux_test::fixture_file& fixtures() {
  static const lux_test::fixture_file f("layers_conv.txt");
  return f;
}

// A layer with weight and bias against a PyTorch fixture: y, dx, dweight, dbias; plus a float
// forward.
template <std::size_t N, class L>
void check_param_fixture(const L& layer, const std::string& name) {
  const auto& f = fixtures();
  INFO(name);
  auto x = f.tensor<double, N>(name + "_x");
  auto ps = lux::make_named_tuple<"weight", "bias">(f.tensor<double, N>(name + "_w"),
                                                    f.tensor<double, 1>(name + "_b"));
  auto [y, st2, back] = lux::pullback(layer, x, ps, lux::empty_tuple{});
  CHECK(lux_test::max_rel_err(y, f.tensor<double, N>(name + "_y")) < 1e-9);
  auto [dx, dps] = back(f.tensor<double, N>(name + "_v"));
  CHECK(lux_test::max_rel_err(dx, f.tensor<double, N>(name + "_dx")) < 1e-9);
  CHECK(lux_test::max_rel_err(dps.template get<"weight">(), f.tensor<double, N>(name + "_dw")) <
        1e-9);
  CHECK(lux_test::max_rel_err(dps.template get<"bias">(), f.tensor<double, 1>(name + "_db")) <
        1e-9);
  auto psf = lux::make_named_tuple<"weight", "bias">(f.tensor<float, N>(name + "_w"),
                                                     f.tensor<float, 1>(name + "_b"));
  auto yf = lux::apply(layer, f.tensor<float, N>(name + "_x"), psf, lux::empty_tuple{}).first;
  CHECK(lux_test::max_rel_err(yf, f.tensor<double, N>(name + "_y")) < 1e-5);
}

// A layer without parameters against a fixture: y and dx.
template <std::size_t N, class L>
void check_plain_fixture(const L& layer, const std::string& name) {
  const auto& f = fixtures();
  INFO(name);
  auto x = f.tensor<double, N>(name + "_x");
  auto [y, st2, back] = lux::pullback(layer, x, lux::empty_tuple{}, lux::empty_tuple{});
  CHECK(y.shape() == f.tensor<double, N>(name + "_y").shape());
  CHECK(lux_test::max_rel_err(y, f.tensor<double, N>(name + "_y")) < 1e-9);
  CHECK(lux::outputsize(layer, x.shape()) == y.shape());
  auto [dx, dps] = back(f.tensor<double, N>(name + "_v"));
  CHECK(lux_test::max_rel_err(dx, f.tensor<double, N>(name + "_dx")) < 1e-9);
  auto yf =
      lux::apply(layer, f.tensor<float, N>(name + "_x"), lux::empty_tuple{}, lux::empty_tuple{})
          .first;
  CHECK(lux_test::max_rel_err(yf, f.tensor<double, N>(name + "_y")) < 1e-5);
}
}  // namespace

template <class O>
concept has_use_bias_option = requires(O o) {
  o.use_bias;
};

TEST_CASE("Conv: Lux's conv test case with the 2N pad order", "[layers][conv]") {
  // Conv((3, 3), 1 => 1, relu; pad = (0, 1, 1, 2)) with ones weights on 28×28 ones.
  lux::Conv layer({3, 3}, {1, 1}, lux::relu{}, {.pad = {0, 1, 1, 2}});
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, layer);
  ps.get<"weight">() = lux::Tensor<float, 4>(lux::make_shape(3, 3, 1, 1), 1.0f);
  ps.get<"bias">() = lux::Tensor<float, 1>(lux::make_shape(1));
  lux::Tensor<float, 4> x(lux::make_shape(28, 28, 1, 1), 1.0f);
  auto [y, st2] = lux::apply(layer, x, ps, st);
  REQUIRE(y.shape() == lux::make_shape(27, 29, 1, 1));
  CHECK(lux::outputsize(layer, x.shape()) == y.shape());
  // Julia's y[1,1]=6, y[2,2]=9, y[end,1]=4, y[1,end]=3, y[end,end]=2 (1-based).
  CHECK(y(0, 0, 0, 0) == 6.0f);
  CHECK(y(1, 1, 0, 0) == 9.0f);
  CHECK(y(26, 0, 0, 0) == 4.0f);
  CHECK(y(0, 28, 0, 0) == 3.0f);
  CHECK(y(26, 28, 0, 0) == 2.0f);
  CHECK(show(layer) == "Conv((3, 3), 1 => 1, relu, pad=(0, 1, 1, 2))");
}

TEST_CASE("Conv layers: Lux's parameter counts, names, shapes and printing", "[layers][conv]") {
  CHECK(lux::parameterlength(lux::Conv({3, 3}, {1, 6})) == 60);
  CHECK(lux::parameterlength(lux::Conv({5, 5}, {6, 16}, lux::relu{})) == 5 * 5 * 6 * 16 + 16);
  CHECK(lux::parameterlength(lux::Conv({3, 3}, {4, 8}, lux::identity{}, {.groups = 2})) ==
        3 * 3 * 4 * 8 / 2 + 8);
  CHECK(lux::parameterlength(lux::Conv<2, lux::relu, false>({3, 3}, {1, 6}, lux::relu{})) == 54);
  CHECK(lux::parameterlength(lux::ConvTranspose({3, 3}, {4, 8}, lux::identity{}, {.groups = 2})) ==
        3 * 3 * 4 * 8 / 2 + 8);
  CHECK(lux::parameterlength(lux::CrossCor({3}, {2, 5})) == 3 * 2 * 5 + 5);

  lux::rng r(7);
  lux::Conv c({3, 2}, {4, 6}, lux::tanh_{}, {.groups = 2});
  auto [ps, st] = lux::setup<float>(r, c);
  static_assert(decltype(ps)::names[0] == "weight" && decltype(ps)::names[1] == "bias");
  CHECK(ps.get<"weight">().shape() == lux::make_shape(3, 2, 2, 6));
  CHECK(ps.get<"bias">().shape() == lux::make_shape(6));
  CHECK(lux::statelength(st) == 0);
  // Seed-document defaults: glorot_uniform weight (fans from (3, 2, 2, 6): 12 and 36), zero bias.
  const double bound = std::sqrt(6.0 / (12 + 36));
  double wmax = 0;
  for (index_t i = 0; i < ps.get<"weight">().numel(); ++i)
    wmax = std::max(wmax, std::abs(double(ps.get<"weight">().data()[i])));
  CHECK(wmax <= bound);
  CHECK(wmax > 0.5 * bound);
  CHECK(ps.get<"bias">()[0] == 0.0f);
  lux::ConvTranspose t({4, 4}, {8, 3});
  auto pt = lux::setup<float>(r, t).first;
  CHECK(pt.get<"weight">().shape() == lux::make_shape(4, 4, 3, 8));  // (k..., out/g, in)
  auto pnb = lux::setup<double>(r, lux::Conv<1, lux::identity, false>({3}, {2, 4})).first;
  static_assert(decltype(pnb)::size == 1 && decltype(pnb)::names[0] == "weight");

  // outputsize, including SamePad (Conv ignores the stride; ConvTranspose gives I·s).
  CHECK(lux::outputsize(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::make_shape(28, 28, 1, 4)) ==
        lux::make_shape(24, 24, 6, 4));
  CHECK(lux::outputsize(lux::Conv({3, 3}, {3, 8}, lux::identity{}, {.pad = lux::same_pad{}}),
                        lux::make_shape(10, 7, 3, 2)) == lux::make_shape(10, 7, 8, 2));
  CHECK(lux::outputsize(
            lux::Conv({4, 3}, {3, 8}, lux::identity{}, {.stride = 2, .pad = lux::same_pad{}}),
            lux::make_shape(10, 7, 3, 2)) == lux::make_shape(5, 4, 8, 2));
  CHECK(lux::outputsize(lux::ConvTranspose({4, 4}, {3, 2}, lux::identity{},
                                           {.stride = 2, .pad = lux::same_pad{}}),
                        lux::make_shape(5, 6, 3, 1)) == lux::make_shape(10, 12, 2, 1));
  CHECK(lux::outputsize(
            lux::ConvTranspose({3}, {3, 2}, lux::identity{}, {.stride = 2, .pad = 1, .outpad = 1}),
            lux::make_shape(5, 3, 1)) == lux::make_shape(10, 2, 1));
  CHECK(lux::outputsize(
            lux::Conv({3, 3, 3}, {2, 4}, lux::identity{}, {.stride = {1, 2, 3}, .dilation = 2}),
            lux::make_shape(9, 9, 9, 2, 1)) == lux::make_shape(5, 3, 2, 4, 1));

  // Display (Lux's Base.show).
  CHECK(show(lux::Conv({5, 5}, {1, 6}, lux::relu{})) == "Conv((5, 5), 1 => 6, relu)");
  CHECK(show(lux::Conv({3, 3}, {1, 6}, lux::relu{}, {.pad = 1})) ==
        "Conv((3, 3), 1 => 6, relu, pad=1)");
  CHECK(show(lux::Conv({3}, {2, 4})) == "Conv((3,), 2 => 4)");
  CHECK(show(lux::Conv({3, 3}, {4, 8}, lux::identity{},
                       {.stride = {2, 1},
                        .pad = {1, 2},
                        .dilation = 2,
                        .groups = 2,
                        .cross_correlation = true})) ==
        "Conv((3, 3), 4 => 8, pad=(1, 2), stride=(2, 1), dilation=2, groups=2, "
        "cross_correlation=true)");
  CHECK(show(lux::Conv({2, 2}, {1, 1}, lux::identity{}, {.pad = lux::same_pad{}})) ==
        "Conv((2, 2), 1 => 1, pad=(1, 0, 1, 0))");
  CHECK(show(lux::Conv<2, lux::relu, false>({3, 3}, {1, 6}, lux::relu{})) ==
        "Conv((3, 3), 1 => 6, relu, use_bias=false)");
  CHECK(show(lux::CrossCor({3, 3}, {1, 6}, lux::relu{}, {.stride = 2})) ==
        "CrossCor((3, 3), 1 => 6, relu, stride=2)");
  CHECK(show(lux::ConvTranspose({3, 3}, {8, 4}, lux::tanh_{}, {.stride = 2, .outpad = 1})) ==
        "ConvTranspose((3, 3), 8 => 4, tanh, stride=2, outpad=1)");
}

TEST_CASE("Conv and CrossCor: forward vs naive reference, pullback vs finite differences",
          "[layers][conv]") {
  lux::rng r(11);
  SECTION("2-d true convolution, 2N pad, stride, dilation, groups, gelu") {
    lux::Conv layer({3, 2}, {4, 6}, lux::gelu{},
                    {.stride = {2, 1}, .pad = {0, 1, 2, 1}, .dilation = {1, 2}, .groups = 2});
    auto ps = lux::setup<double>(r, layer).first;
    ps.get<"bias">() = lux_test::random_tensor<double>(lux::make_shape(6), 3);
    auto x = lux_test::random_tensor<double>(lux::make_shape(7, 5, 4, 2), 4);
    auto y = lux::apply(layer, x, ps, lux::empty_tuple{}).first;
    auto z = naive_conv2d(x, ps.get<"weight">(), &ps.get<"bias">(), {2, 1}, {0, 1, 2, 1}, {1, 2}, 2,
                          true);
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = lux::gelu{}(z.data()[i]);
    CHECK(lux_test::max_rel_err(y, z) < 1e-13);
    CHECK(check_pullback(layer, x, ps) == std::vector<std::string>{"weight", "bias"});
  }
  SECTION("CrossCor with SamePad and tanh equals the unflipped reference") {
    lux::CrossCor layer({3, 3}, {2, 3}, lux::tanh_{}, {.pad = lux::same_pad{}});
    auto ps = lux::setup<double>(r, layer).first;
    auto x = lux_test::random_tensor<double>(lux::make_shape(5, 4, 2, 2), 5);
    auto y = lux::apply(layer, x, ps, lux::empty_tuple{}).first;
    auto z = naive_conv2d(x, ps.get<"weight">(), &ps.get<"bias">(), {1, 1}, {1, 1, 1, 1}, {1, 1}, 1,
                          false);
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = std::tanh(z.data()[i]);
    CHECK(lux_test::max_rel_err(y, z) < 1e-13);
    check_pullback(layer, x, ps);
  }
  SECTION("1-d and 3-d, no bias") {
    lux::Conv<1, lux::tanh_, false> c1({3}, {2, 3}, lux::tanh_{}, {.stride = 2, .pad = {2, 0}});
    auto p1 = lux::setup<double>(r, c1).first;
    CHECK(check_pullback(c1, lux_test::random_tensor<double>(lux::make_shape(9, 2, 2), 6), p1) ==
          std::vector<std::string>{"weight"});
    lux::Conv c3({2, 2, 2}, {2, 2}, lux::sigmoid{},
                 {.pad = {1, 0, 0, 1, 1, 1}, .dilation = {1, 2, 1}});
    auto p3 = lux::setup<double>(r, c3).first;
    check_pullback(c3, lux_test::random_tensor<double>(lux::make_shape(3, 4, 3, 2, 1), 7), p3);
  }
  SECTION("float forward agrees with double") {
    lux::Conv layer({3, 3}, {3, 4}, lux::relu{}, {.stride = 2, .pad = 1});
    auto psd = lux::setup<double>(r, layer).first;
    auto psf =
        lux::make_named_tuple<"weight", "bias">(lux::Tensor<float, 4>(psd.get<"weight">().shape()),
                                                lux::Tensor<float, 1>(lux::make_shape(4)));
    for (index_t i = 0; i < psd.get<"weight">().numel(); ++i)
      psf.get<"weight">().data()[i] = static_cast<float>(psd.get<"weight">().data()[i]);
    auto xd = lux_test::random_tensor<double>(lux::make_shape(9, 8, 3, 2), 8);
    auto xf = lux_test::random_tensor<float>(lux::make_shape(9, 8, 3, 2), 8);
    auto yd = lux::apply(layer, xd, psd, lux::empty_tuple{}).first;
    auto yf = lux::apply(layer, xf, psf, lux::empty_tuple{}).first;
    CHECK(lux_test::max_rel_err(yf, yd) < 1e-5);
  }
}

TEST_CASE("ConvTranspose: forward vs naive reference, pullback vs finite differences",
          "[layers][conv]") {
  lux::rng r(12);
  SECTION("stride, asymmetric pad, outpad, groups, dilation, swish") {
    lux::ConvTranspose layer(
        {3, 2}, {4, 6}, lux::swish{},
        {.stride = {2, 3}, .pad = {1, 0, 0, 1}, .dilation = {1, 2}, .groups = 2, .outpad = {1, 0}});
    auto ps = lux::setup<double>(r, layer).first;
    ps.get<"bias">() = lux_test::random_tensor<double>(lux::make_shape(6), 13);
    auto x = lux_test::random_tensor<double>(lux::make_shape(3, 4, 4, 2), 14);
    auto y = lux::apply(layer, x, ps, lux::empty_tuple{}).first;
    auto z = naive_conv_transpose2d(x, ps.get<"weight">(), ps.get<"bias">(), {2, 3}, {1, 0, 0, 1},
                                    {1, 2}, {1, 0}, 2, true);
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = lux::swish{}(z.data()[i]);
    REQUIRE(y.shape() == z.shape());
    CHECK(lux_test::max_rel_err(y, z) < 1e-13);
    CHECK(check_pullback(layer, x, ps) == std::vector<std::string>{"weight", "bias"});
  }
  SECTION("cross-correlation, 1-d") {
    lux::ConvTranspose layer({3}, {2, 3}, lux::identity{},
                             {.stride = 2, .pad = 1, .cross_correlation = true});
    auto ps = lux::setup<double>(r, layer).first;
    check_pullback(layer, lux_test::random_tensor<double>(lux::make_shape(5, 2, 2), 15), ps);
  }
}

TEST_CASE("Conv layers match PyTorch fixtures", "[layers][conv][fixture]") {
  check_param_fixture<3>(lux::Conv({3}, {3, 4}, lux::relu{}, {.stride = 2, .pad = 1}), "conv1d");
  check_param_fixture<4>(
      lux::Conv({2, 3}, {4, 6}, lux::tanh_{},
                {.stride = {2, 1}, .pad = {0, 1}, .dilation = {1, 2}, .groups = 2}),
      "conv2d");
  check_param_fixture<4>(lux::CrossCor({3, 3}, {3, 2}, lux::identity{}, {.pad = 1}), "crosscor2d");
  check_param_fixture<4>(
      lux::ConvTranspose({2, 3}, {4, 3}, lux::relu{}, {.stride = 2, .pad = {0, 1}, .outpad = 1}),
      "convt2d");
}

TEST_CASE("Pooling layers: reference, fixtures, finite differences, printing", "[layers][pool]") {
  auto x = lux_test::random_tensor<double>(lux::make_shape(7, 6, 3, 2), 21);
  lux::MaxPool mp({3, 2}, {.stride = {2, 1}, .pad = {1, 0, 1, 1}});
  lux::MeanPool mean({2, 3}, {.stride = 2, .pad = 1});
  const lux::empty_tuple e{};
  CHECK(lux_test::max_rel_err(lux::apply(mp, x, e, e).first,
                              naive_pool2d(x, true, {3, 2}, {2, 1}, {1, 0, 1, 1})) == 0.0);
  CHECK(lux_test::max_rel_err(lux::apply(mean, x, e, e).first,
                              naive_pool2d(x, false, {2, 3}, {2, 2}, {1, 1, 1, 1})) < 1e-14);
  check_pullback(mp, x, e);
  check_pullback(mean, x, e);
  check_pullback(lux::MaxPool({2}), lux_test::random_tensor<double>(lux::make_shape(6, 2, 2), 22),
                 e);
  check_pullback(lux::MeanPool({2, 2, 2}, {.dilation = {1, 2, 1}}),
                 lux_test::random_tensor<double>(lux::make_shape(4, 5, 4, 1, 2), 23), e);
  check_pullback(lux::AdaptiveMaxPool({3, 2}), x, e);
  check_pullback(lux::AdaptiveMeanPool({2, 4}), x, e);
  check_pullback(lux::GlobalMaxPool{}, x, e);
  check_pullback(lux::GlobalMeanPool{}, x, e);

  // Shapes: stride defaults to the window; Lux's adaptive windows (also when out ∤ in); global.
  CHECK(lux::outputsize(lux::MaxPool({2, 2}), lux::make_shape(28, 28, 6, 4)) ==
        lux::make_shape(14, 14, 6, 4));
  CHECK(lux::outputsize(lux::MaxPool({2, 2}, {.pad = lux::same_pad{}}),
                        lux::make_shape(7, 8, 1, 1)) == lux::make_shape(4, 4, 1, 1));
  CHECK(lux::outputsize(lux::AdaptiveMeanPool({5, 3}), lux::make_shape(12, 7, 2, 3)) ==
        lux::make_shape(5, 3, 2, 3));
  CHECK(lux::apply(lux::AdaptiveMeanPool({5, 3}),
                   lux_test::random_tensor<double>(lux::make_shape(12, 7, 2, 3), 1), e, e)
            .first.shape() == lux::make_shape(5, 3, 2, 3));
  CHECK(lux::outputsize(lux::GlobalMeanPool{}, lux::make_shape(5, 4, 3, 8, 2)) ==
        lux::make_shape(1, 1, 1, 8, 2));
  auto g = lux::apply(lux::GlobalMeanPool{}, x, e, e).first;
  double s = 0;
  for (index_t j = 0; j < 6; ++j)
    for (index_t i = 0; i < 7; ++i) s += x(i, j, 1, 1);
  CHECK(g(0, 0, 1, 1) == Approx(s / 42).margin(1e-15));
  CHECK(lux::parameterlength(mp) == 0);
  CHECK(lux::statelength(lux::GlobalMaxPool{}) == 0);

  check_plain_fixture<4>(lux::MaxPool({2, 3}, {.stride = {1, 2}, .pad = 1}), "maxpool2d");
  check_plain_fixture<4>(lux::MeanPool({3, 3}, {.stride = 2, .pad = 1}), "avgpool2d");
  check_plain_fixture<4>(lux::AdaptiveMeanPool({3, 2}), "adaptiveavg2d");
  check_plain_fixture<4>(lux::AdaptiveMaxPool({2, 3}), "adaptivemax2d");

  CHECK(show(lux::MaxPool({2, 2})) == "MaxPool((2, 2))");
  CHECK(show(lux::MaxPool({2, 2}, {.stride = 1})) == "MaxPool((2, 2), stride=1)");
  CHECK(show(lux::MeanPool({3, 3}, {.stride = 2, .pad = 1})) ==
        "MeanPool((3, 3), pad=1, stride=2)");
  CHECK(show(lux::MaxPool({3}, {.pad = {1, 0}, .dilation = 2})) ==
        "MaxPool((3,), pad=(1, 0), dilation=2)");
  CHECK(show(lux::AdaptiveMaxPool({5, 5})) == "AdaptiveMaxPool((5, 5))");
  CHECK(show(lux::AdaptiveMeanPool({4})) == "AdaptiveMeanPool((4,))");
  CHECK(show(lux::GlobalMaxPool{}) == "GlobalMaxPool()");
  CHECK(show(lux::GlobalMeanPool{}) == "GlobalMeanPool()");
}

TEST_CASE("Upsample and PixelShuffle: fixtures, finite differences, printing",
          "[layers][upsample]") {
  using lux::upsample_mode;
  const lux::empty_tuple e{};
  check_plain_fixture<4>(lux::Upsample(upsample_mode::nearest, {.scale = {3, 2}}), "upnearest");
  check_plain_fixture<4>(lux::Upsample(upsample_mode::bilinear, {.size = {5, 7}}), "upbilinear_ac");
  check_plain_fixture<4>(
      lux::Upsample(upsample_mode::bilinear, {.scale = 2, .align_corners = false}), "upbilinear");
  check_plain_fixture<4>(lux::PixelShuffle(2), "pixelshuffle");

  auto x4 = lux_test::random_tensor<double>(lux::make_shape(3, 4, 2, 2), 31);
  check_pullback(lux::Upsample(2), x4, e);
  check_pullback(lux::Upsample(upsample_mode::nearest, {.size = {6, 12}}), x4, e);
  check_pullback(lux::Upsample({1.5, 2.5}, upsample_mode::bilinear), x4, e);
  check_pullback(lux::Upsample(upsample_mode::trilinear, {.size = {4, 3, 5}}),
                 lux_test::random_tensor<double>(lux::make_shape(2, 3, 2, 2, 1), 32), e);
  check_pullback(lux::PixelShuffle(2),
                 lux_test::random_tensor<double>(lux::make_shape(2, 2, 2, 8, 1), 33), e);
  // :linear on (W, C, B): the 1-d case of the interpolation, aligned corners: the ends are kept
  // and the midpoints are averages.
  auto x3 = lux_test::random_tensor<double>(lux::make_shape(4, 2, 2), 34);
  lux::Upsample lin(upsample_mode::linear, {.size = {7}});
  auto y3 = lux::apply(lin, x3, e, e).first;
  REQUIRE(y3.shape() == lux::make_shape(7, 2, 2));
  CHECK(y3(0, 1, 1) == Approx(x3(0, 1, 1)));
  CHECK(y3(6, 1, 1) == Approx(x3(3, 1, 1)));
  CHECK(y3(1, 0, 1) == Approx(0.5 * (x3(0, 0, 1) + x3(1, 0, 1))));
  check_pullback(lin, x3, e);
  // Nearest on a 3-d input (rank-generic), shapes without running.
  CHECK(lux::outputsize(lux::Upsample(3), lux::make_shape(4, 2, 5)) == lux::make_shape(12, 2, 5));
  CHECK(lux::outputsize(lux::Upsample({2, 3}, upsample_mode::bilinear),
                        lux::make_shape(4, 5, 2, 1)) == lux::make_shape(8, 15, 2, 1));
  CHECK(lux::outputsize(lux::Upsample(upsample_mode::bilinear, {.scale = 1.5}),
                        lux::make_shape(5, 4, 2, 1)) == lux::make_shape(7, 6, 2, 1));
  CHECK(lux::outputsize(lux::PixelShuffle(3), lux::make_shape(2, 3, 18, 4)) ==
        lux::make_shape(6, 9, 2, 4));

  CHECK(show(lux::Upsample(upsample_mode::nearest, {.scale = 2})) ==
        "Upsample(:nearest, scale = 2)");
  CHECK(show(lux::Upsample({2, 3}, upsample_mode::bilinear)) ==
        "Upsample(:bilinear, scale = (2, 3))");
  CHECK(show(lux::Upsample(upsample_mode::bilinear, {.scale = 1.5})) ==
        "Upsample(:bilinear, scale = 1.5)");
  CHECK(show(lux::Upsample(upsample_mode::trilinear, {.size = {4, 3, 5}})) ==
        "Upsample(:trilinear, size = (4, 3, 5))");
  CHECK(show(lux::Upsample(upsample_mode::bilinear, {.scale = 2, .align_corners = false})) ==
        "Upsample(:bilinear, scale = 2, align_corners = false)");
  CHECK(show(lux::PixelShuffle(2)) == "PixelShuffle(2)");
}

TEST_CASE("Conv, pooling and upsampling layers: error messages", "[layers][conv][errors]") {
  lux::rng r(41);
  lux::Conv conv({5, 5}, {1, 6}, lux::relu{});
  auto [ps, st] = lux::setup<float>(r, conv);
  lux::Tensor<float, 4> bad(lux::make_shape(28, 28, 3, 4));
  CHECK_THROWS_WITH(
      lux::apply(conv, bad, ps, st),
      "Conv (5, 5) 1 => 6: expected input with 1 channels (dim 3), got (28, 28, 3, 4)");
  CHECK_THROWS_AS(lux::pullback(conv, bad, ps, st), lux::shape_error);
  CHECK_THROWS_WITH(lux::outputsize(conv, lux::make_shape(4, 28, 1, 1)),
                    Catch::Matchers::StartsWith("Conv (5, 5) 1 => 6: the kernel (5, 5)"));
  // A parameter leaf of the wrong shape names the field.
  lux::Conv c2({3, 3}, {1, 6});
  auto p2 = lux::setup<float>(r, c2).first;
  p2.get<"weight">() = lux::Tensor<float, 4>(lux::make_shape(3, 3, 2, 6));
  lux::Tensor<float, 4> x(lux::make_shape(8, 8, 1, 2));
  CHECK_THROWS_WITH(lux::apply(c2, x, p2, st),
                    "Conv (3, 3) 1 => 6: parameter weight has shape (3, 3, 2, 6), expected (3, 3, "
                    "1, 6)");
  auto p3 = lux::setup<float>(r, c2).first;
  p3.get<"bias">() = lux::Tensor<float, 1>(lux::make_shape(5));
  CHECK_THROWS_WITH(lux::pullback(c2, x, p3, st),
                    "Conv (3, 3) 1 => 6: parameter bias has shape (5), expected (6)");
  lux::ConvTranspose ct({3, 3}, {4, 2});
  auto pt = lux::setup<float>(r, ct).first;
  CHECK_THROWS_WITH(lux::apply(ct, x, pt, st),
                    "ConvTranspose (3, 3) 4 => 2: expected input with 4 channels (dim 3), got (8, "
                    "8, 1, 2)");
  // The output gradient must have y's shape.
  auto res = lux::pullback(c2, x, lux::setup<float>(r, c2).first, st);
  CHECK_THROWS_AS(res.back(lux::Tensor<float, 4>(lux::make_shape(6, 6, 5, 2))), lux::shape_error);
  // Hyperparameters.
  CHECK_THROWS_AS(lux::Conv({3, 3}, {3, 4}, lux::identity{}, {.groups = 2}), lux::argument_error);
  CHECK_THROWS_AS(lux::Conv({3, 3}, {2, 4}, lux::identity{}, {.stride = 0}), lux::argument_error);
  CHECK_THROWS_AS(lux::Conv({3, 3}, {2, 4}, lux::identity{}, {.pad = {1, 2, 3}}),
                  lux::argument_error);
  // use_bias is the layer type's UseBias alone: the options have no field to disagree with it.
  static_assert(!has_use_bias_option<lux::conv_options<2>> &&
                !has_use_bias_option<lux::conv_transpose_options<2>>);
  static_assert(!lux::Conv<2, lux::identity, false>::use_bias && lux::Conv<2>::use_bias);
  // In a Chain the message gets the layer path.
  lux::Chain model(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::MaxPool({2, 2}),
                   lux::Conv({5, 5}, {6, 16}, lux::relu{}), lux::GlobalMeanPool{});
  auto [pm, sm] = lux::setup<float>(r, model);
  CHECK(lux::outputsize(model, lux::make_shape(28, 28, 1, 4)) == lux::make_shape(1, 1, 16, 4));
  CHECK(lux::apply(model, lux::Tensor<float, 4>(lux::make_shape(28, 28, 1, 4)), pm, sm)
            .first.shape() == lux::make_shape(1, 1, 16, 4));
  CHECK_THROWS_WITH(lux::apply(model, bad, pm, sm),
                    "layer_1 (Conv (5, 5) 1 => 6): expected input with 1 channels (dim 3), got "
                    "(28, 28, 3, 4)");
  // Pooling / upsampling.
  CHECK_THROWS_WITH(lux::outputsize(lux::MaxPool({3, 3}), lux::make_shape(2, 5, 1, 1)),
                    Catch::Matchers::StartsWith("MaxPool (3, 3): "));
  CHECK_THROWS_WITH(lux::outputsize(lux::AdaptiveMaxPool({5, 5}), lux::make_shape(3, 8, 1, 1)),
                    "AdaptiveMaxPool (5, 5): expected input with spatial size >= (5, 5), got (3, "
                    "8, 1, 1)");
  CHECK_THROWS_AS(lux::MaxPool({0, 2}), lux::argument_error);
  CHECK_THROWS_WITH(
      lux::outputsize(lux::Upsample(lux::upsample_mode::bilinear, {.scale = 2}),
                      lux::make_shape(4, 3, 2)),
      "Upsample(:bilinear, scale = 2): expected an input with 2 spatial dimensions (rank 4), got "
      "(4, 3, 2)");
  CHECK_THROWS_AS(lux::Upsample(lux::upsample_mode::nearest, {.scale = 2, .size = {4, 4}}),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::Upsample(1.5), lux::argument_error);
  CHECK_THROWS_WITH(lux::outputsize(lux::PixelShuffle(2), lux::make_shape(3, 3, 6, 1)),
                    "PixelShuffle(2): expected input channels (dim 3) divisible by 4, got (3, 3, "
                    "6, 1)");
}

TEST_CASE("Conv, pooling and upsampling layers: extreme hyperparameters throw, never overflow",
          "[layers][conv][errors]") {
  using lux::upsample_mode;
  constexpr lux::index_t huge = std::numeric_limits<lux::index_t>::max() / 2 + 1;
  // Shape arithmetic overflows with a dilation of 2^62: named after the layer.
  lux::Conv dil({3, 3}, {1, 2}, lux::identity{}, {.dilation = huge});
  CHECK_THROWS_WITH(
      lux::outputsize(dil, lux::make_shape(8, 8, 1, 1)),
      Catch::Matchers::StartsWith("Conv (3, 3) 1 => 2: ") && Catch::Contains("overflows"));
  CHECK_THROWS_AS(
      lux::Conv({3, 3}, {1, 2}, lux::identity{}, {.pad = lux::same_pad{}, .dilation = huge}),
      lux::shape_error);
  lux::ConvTranspose ct({3}, {1, 1}, lux::identity{}, {.stride = 1LL << 40});
  CHECK_THROWS_AS(lux::outputsize(ct, lux::make_shape(1LL << 30, 1, 1)), lux::shape_error);
  CHECK_THROWS_AS(lux::outputsize(lux::MaxPool({2, 2}, {.pad = huge}), lux::make_shape(4, 4, 1, 1)),
                  lux::shape_error);
  // Upsample: in·scale and scale·in beyond index_t throw; printing a huge scale is defined.
  CHECK_THROWS_WITH(
      lux::outputsize(lux::Upsample(1LL << 62), lux::make_shape(4, 1, 1)),
      Catch::Matchers::StartsWith("Upsample(:nearest, scale = 4611686018427387904)") &&
          Catch::Contains("overflows"));
  lux::Upsample big(upsample_mode::bilinear, {.scale = 1e300});
  CHECK(show(big) == "Upsample(:bilinear, scale = 1e+300)");
  CHECK_THROWS_WITH(lux::outputsize(big, lux::make_shape(4, 4, 1, 1)),
                    Catch::Contains("does not fit"));
  CHECK(show(lux::Upsample({1e19, 2.0}, upsample_mode::bilinear)) ==
        "Upsample(:bilinear, scale = (1e+19, 2))");
  CHECK_THROWS_AS(lux::Upsample(upsample_mode::nearest, {.scale = 1e19}), lux::argument_error);
  // PixelShuffle: r^d and r·in overflow.
  CHECK_THROWS_WITH(lux::outputsize(lux::PixelShuffle(1LL << 32), lux::make_shape(3, 3, 6, 1)),
                    "PixelShuffle(4294967296): the factor r^d overflows: 4294967296 * 4294967296");
  CHECK_THROWS_AS(lux::outputsize(lux::PixelShuffle(1LL << 62), lux::make_shape(2, 0, 1)),
                  lux::shape_error);
}
