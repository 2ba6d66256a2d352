// Containers: Chain optimizations/naming/indexing, Parallel, BranchLayer, Maxout,
// PairwiseFusion, SkipConnection, connections; forward vs naive references, pullback vs
// finite differences (x, tuple elements and every ps leaf), errors with paths, printing, summary.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/chain.hpp>
#include <lux/layers/connections.hpp>
#include <lux/layers/containers.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/linear.hpp>
#include <lux/layers/summary.hpp>
#include <lux/layers/utility.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "support/check.hpp"
#include "support/layer_check.hpp"

namespace {
using T2 = lux::Tensor<double, 2>;
using T1 = lux::Tensor<double, 1>;

template <class L>
std::string str(const L& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

T2 dense_ref(const T2& w, const T1& b, const T2& x) {
  T2 y(w.size(0), x.size(1));
  for (lux::index_t j = 0; j < x.size(1); ++j)
    for (lux::index_t o = 0; o < w.size(0); ++o) {
      double s = b[o];
      for (lux::index_t i = 0; i < w.size(1); ++i) s += w(o, i) * x(i, j);
      y(o, j) = s;
    }
  return y;
}

// Elementwise functions with pullbacks (Lux's +1, +2, ^3 of the PairwiseFusion test).
struct plus_c : lux_test::elementwise_fn<plus_c> {
  static constexpr const char* name = "plus";
  explicit plus_c(double c_) : c(c_) {}
  double c;
  double f(double v) const { return v + c; }
  double df(double) const { return 1; }
};
struct cube : lux_test::elementwise_fn<cube> {
  static constexpr const char* name = "cube";
  double f(double v) const { return v * v * v; }
  double df(double v) const { return 3 * v * v; }
};
}  // namespace

TEST_CASE("Chain: flattening, NoOp removal, single layer, disable_optimizations",
          "[layers][chain]") {
  lux::Chain inner(lux::Dense({3, 4}, lux::tanh_{}), lux::Dense({4, 2}));
  lux::Chain outer(lux::Dense({2, 3}), lux::NoOpLayer{}, inner);
  static_assert(decltype(outer)::size == 3);
  lux::rng r(1);
  auto [ps, st] = lux::setup<double>(r, outer);
  static_assert(decltype(ps)::names[2] == "layer_3");
  CHECK(lux::parameterlength(outer) == 2 * 3 + 3 + 12 + 4 + 8 + 2);
  CHECK(str(outer) ==
        "Chain(layer_1 = Dense(2 => 3), layer_2 = Dense(3 => 4, tanh), layer_3 = Dense(4 => 2))");
  auto x = lux_test::random_tensor<double>(lux::make_shape(2, 5), 2);
  auto [y, st2] = lux::apply(outer, x, ps, st);
  auto ref = dense_ref(ps.get<"layer_3">().get<"weight">(), ps.get<"layer_3">().get<"bias">(), [&] {
    auto h = dense_ref(
        ps.get<"layer_2">().get<"weight">(), ps.get<"layer_2">().get<"bias">(),
        dense_ref(ps.get<"layer_1">().get<"weight">(), ps.get<"layer_1">().get<"bias">(), x));
    for (auto& v : h) v = std::tanh(v);
    return h;
  }());
  CHECK(lux_test::max_rel_err(y, ref) < 1e-14);
  auto v = lux_test::random_tensor<double>(lux::make_shape(2, 5), 3);
  CHECK(lux_test::check_pullback(outer, x, ps, st, v).size() == 6);

  // Indexing and slicing.
  CHECK(outer.get<1>().in_dims == 3);
  auto s = outer.slice<1, 3>();
  CHECK(str(s) == "Chain(layer_1 = Dense(3 => 4, tanh), layer_2 = Dense(4 => 2))");
  auto one = outer.slice<2, 3>();
  CHECK(str(one) == "Dense(4 => 2)");

  // A single layer left: ps are the layer's own.
  lux::Chain single(lux::NoOpLayer{}, lux::Dense({3, 2}));
  lux::rng a(5), b(5);
  auto ps1 = lux::setup<double>(a, single).first;
  auto psd = lux::setup<double>(b, lux::Dense({3, 2})).first;
  static_assert(std::is_same_v<decltype(ps1), decltype(psd)>);
  CHECK(ps1.get<"weight">()(1, 2) == psd.get<"weight">()(1, 2));
  CHECK(str(single) == "Dense(3 => 2)");
  lux::Tensor<double, 2> bad(5, 1);
  CHECK_THROWS_WITH(lux::apply(single, bad, ps1, lux::empty_tuple{}),
                    "Dense 3 => 2: expected input (3, B), got (5, 1)");
  // No layer left: NoOpLayer.
  lux::Chain none(lux::NoOpLayer{}, lux::NoOpLayer{});
  CHECK(str(none) == "NoOpLayer()");
  CHECK(lux::apply(none, x, lux::empty_tuple{}, lux::empty_tuple{}).first(1, 2) == x(1, 2));

  // disable_optimizations keeps the structure, and is not flattened into a parent.
  lux::Chain raw(lux::disable_optimizations, lux::Dense({2, 3}), lux::NoOpLayer{}, inner);
  static_assert(decltype(raw)::size == 3);
  auto [psr, str_] = lux::setup<double>(r, raw);
  static_assert(decltype(psr)::names[1] == "layer_2" &&
                lux::is_named_tuple_v<decltype(psr.get<"layer_3">())>);
  CHECK(str(raw) ==
        "Chain(layer_1 = Dense(2 => 3), layer_2 = NoOpLayer(), layer_3 = Chain(layer_1 = "
        "Dense(3 => 4, tanh), layer_2 = Dense(4 => 2)))");
  CHECK(lux_test::check_pullback(raw, x, psr, str_, v).size() == 6);
  CHECK(lux::outputsize(raw, lux::make_shape(2, 7)) == lux::make_shape(2, 7));
  CHECK_THROWS_WITH(lux::outputsize(raw, lux::make_shape(3, 7)),
                    "layer_1 (Dense 2 => 3): expected input (2, B), got (3, 7)");
  lux::Tensor<double, 2> x3(3, 7);
  auto psbad = psr.with<"layer_3">(psr.get<"layer_3">().with<"layer_2">(
      psr.get<"layer_3">().get<"layer_2">().with<"weight">(T2(5, 4))));
  CHECK_THROWS_WITH(lux::apply(raw, x, psbad, str_),
                    "layer_3.layer_2 (Dense 4 => 2): parameter weight has shape (5, 4), expected "
                    "(2, 4)");
  {
    auto [yy, ss, bb] = lux::pullback(raw, x, psr, str_);
    CHECK_THROWS_WITH(bb(T2(3, 5)),
                      "layer_3.layer_2 (Dense 4 => 2): the output gradient has shape "
                      "(3, 5), expected (2, 5)");
  }
}

TEST_CASE("Parallel, BranchLayer, Maxout: forward, gradients, names, errors",
          "[layers][containers]") {
  lux::rng r(7);
  lux::Parallel par(lux::add{}, lux::Dense({3, 2}), lux::field<"skip">(lux::Dense({4, 2})));
  auto [ps, st] = lux::setup<double>(r, par);
  static_assert(decltype(ps)::names[0] == "layer_1" && decltype(ps)::names[1] == "skip");
  CHECK(lux::parameterlength(par) == 8 + 10);
  auto x = std::tuple{lux_test::random_tensor<double>(lux::make_shape(3, 4), 1),
                      lux_test::random_tensor<double>(lux::make_shape(4, 4), 2)};
  auto [y, st2] = lux::apply(par, x, ps, st);
  auto r1 = dense_ref(ps.get<"layer_1">().get<"weight">(), ps.get<"layer_1">().get<"bias">(),
                      std::get<0>(x));
  auto r2 =
      dense_ref(ps.get<"skip">().get<"weight">(), ps.get<"skip">().get<"bias">(), std::get<1>(x));
  for (lux::index_t k = 0; k < r1.numel(); ++k) r1.data()[k] += r2.data()[k];
  CHECK(lux_test::max_rel_err(y, r1) < 1e-14);
  CHECK(lux::outputsize(par, std::tuple{lux::make_shape(3, 4), lux::make_shape(4, 4)}) ==
        lux::make_shape(2, 4));
  auto v = lux_test::random_tensor<double>(lux::make_shape(2, 4), 3);
  CHECK(lux_test::check_pullback(par, x, ps, st, v) ==
        std::vector<std::string>{"layer_1.weight", "layer_1.bias", "skip.weight", "skip.bias"});
  CHECK(str(par) == "Parallel(+, layer_1 = Dense(3 => 2), skip = Dense(4 => 2))");
  auto xbad = std::tuple{T2(3, 4), T2(5, 4)};
  CHECK_THROWS_WITH(lux::apply(par, xbad, ps, st),
                    "skip (Dense 4 => 2): expected input (4, B), got (5, 4)");
  // A runtime list: size checked.
  lux::Parallel same(lux::mul{}, lux::Dense({3, 2}), lux::Dense({3, 2}), lux::Dense({3, 2}));
  auto [ps3, st3] = lux::setup<double>(r, same);
  std::vector<T2> two{T2(3, 1), T2(3, 1)};
  CHECK_THROWS_WITH(lux::apply(same, two, ps3, st3),
                    "Parallel: expected a tuple of 3 inputs, got 2");
  std::vector<T2> three{lux_test::random_tensor<double>(lux::make_shape(3, 2), 4),
                        lux_test::random_tensor<double>(lux::make_shape(3, 2), 5),
                        lux_test::random_tensor<double>(lux::make_shape(3, 2), 6)};
  auto [yv, sv, bv] = lux::pullback(same, three, ps3, st3);
  auto gv = bv(lux_test::random_tensor<double>(lux::make_shape(2, 2), 7));
  CHECK(gv.dx.size() == 3);
  // Single array to all layers (mul), no connection → tuple.
  auto xs = lux_test::random_tensor<double>(lux::make_shape(3, 2), 8);
  CHECK(lux_test::check_pullback(same, xs, ps3, st3,
                                 lux_test::random_tensor<double>(lux::make_shape(2, 2), 9))
            .size() == 6);
  lux::Parallel tup(lux::none, lux::Dense({3, 2}), lux::NoOpLayer{});
  auto [pst, stt] = lux::setup<double>(r, tup);
  auto vt = std::tuple{lux_test::random_tensor<double>(lux::make_shape(2, 2), 10),
                       lux_test::random_tensor<double>(lux::make_shape(3, 2), 11)};
  CHECK(lux_test::check_pullback(tup, xs, pst, stt, vt).size() == 2);
  CHECK(str(tup) == "Parallel(nothing, layer_1 = Dense(3 => 2), layer_2 = NoOpLayer())");

  // BranchLayer: same x, tuple output or fusion.
  lux::BranchLayer br(lux::Dense({3, 2}), lux::Dense({3, 4}));
  auto [psb, stb] = lux::setup<double>(r, br);
  auto [yb, sb] = lux::apply(br, xs, psb, stb);
  CHECK(std::get<1>(yb).shape() == lux::make_shape(4, 2));
  auto vb = std::tuple{lux_test::random_tensor<double>(lux::make_shape(2, 2), 12),
                       lux_test::random_tensor<double>(lux::make_shape(4, 2), 13)};
  CHECK(lux_test::check_pullback(br, xs, psb, stb, vb).size() == 4);
  lux::BranchLayer brf(lux::Dense({3, 2}), lux::Dense({3, 4}),
                       lux::branch_options{.fusion = lux::vcat{}});
  auto [psf, stf] = lux::setup<double>(r, brf);
  CHECK(lux::outputsize(brf, lux::make_shape(3, 2)) == lux::make_shape(6, 2));
  CHECK(lux_test::check_pullback(brf, xs, psf, stf,
                                 lux_test::random_tensor<double>(lux::make_shape(6, 2), 14))
            .size() == 4);
  CHECK(str(brf) == "BranchLayer(layer_1 = Dense(3 => 2), layer_2 = Dense(3 => 4), fusion=vcat)");
  CHECK_THROWS_WITH(lux::outputsize(brf, lux::make_shape(2, 2)),
                    "layer_1 (Dense 3 => 2): expected input (3, B), got (2, 2)");

  // Maxout: elementwise max, gradient to the maximal branch.
  auto mx = lux::maxout<3>([] { return lux::Dense({3, 2}); });
  auto [psm, stm] = lux::setup<double>(r, mx);
  CHECK(lux::parameterlength(mx) == 3 * 8);
  auto [ym, sm] = lux::apply(mx, xs, psm, stm);
  for (lux::index_t k = 0; k < ym.numel(); ++k) {
    double best = -1e300;
    lux::for_each_leaf(psm, [](std::string_view, const auto&) {});
    auto a1 =
        dense_ref(psm.get<"layer_1">().get<"weight">(), psm.get<"layer_1">().get<"bias">(), xs);
    auto a2 =
        dense_ref(psm.get<"layer_2">().get<"weight">(), psm.get<"layer_2">().get<"bias">(), xs);
    auto a3 =
        dense_ref(psm.get<"layer_3">().get<"weight">(), psm.get<"layer_3">().get<"bias">(), xs);
    best = std::max({a1.data()[k], a2.data()[k], a3.data()[k]});
    CHECK(ym.data()[k] == best);
  }
  CHECK(lux_test::check_pullback(mx, xs, psm, stm,
                                 lux_test::random_tensor<double>(lux::make_shape(2, 2), 15))
            .size() == 6);
  CHECK(str(mx) ==
        "Maxout(layer_1 = Dense(3 => 2), layer_2 = Dense(3 => 2), layer_3 = Dense(3 => 2))");
}

TEST_CASE("PairwiseFusion: Lux's vcat test and gradients", "[layers][containers]") {
  lux::PairwiseFusion pf(lux::vcat{}, lux::WrappedFunction(plus_c{1}),
                         lux::WrappedFunction(plus_c{2}), lux::WrappedFunction(cube{}));
  auto one = [](double v) { return T1(lux::make_shape(1), {v}); };
  auto x = std::tuple{one(2), one(10), one(20), one(40)};
  auto [ps, st] = lux::setup<double>(*std::make_unique<lux::rng>(1), pf);
  auto [y, st2] = lux::apply(pf, x, ps, st);
  REQUIRE(y.shape() == lux::make_shape(4));
  CHECK((y[0] == 125 && y[1] == 1728 && y[2] == 8000 && y[3] == 40));
  auto [y7, s7] = lux::apply(pf, one(7), ps, st);
  CHECK((y7[0] == 1000 && y7[1] == 729 && y7[2] == 343 && y7[3] == 7));
  CHECK(lux::outputsize(pf, lux::make_shape(1)) == lux::make_shape(4));
  auto v = lux_test::random_tensor<double>(lux::make_shape(4), 1);
  lux_test::check_pullback(pf, x, ps, st, v);
  lux_test::check_pullback(pf, one(0.7), ps, st, v);
  CHECK(str(pf) ==
        "PairwiseFusion(vcat, layer_1 = WrappedFunction(plus), layer_2 = "
        "WrappedFunction(plus), layer_3 = WrappedFunction(cube))");

  // With Dense layers and add: y = layer_i(y) + x_{i+1}.
  lux::rng r(3);
  lux::PairwiseFusion pd(lux::add{}, lux::Dense({3, 4}), lux::field<"b">(lux::Dense({4, 4})));
  auto [psd, std_] = lux::setup<double>(r, pd);
  auto xd = std::tuple{lux_test::random_tensor<double>(lux::make_shape(3, 2), 2),
                       lux_test::random_tensor<double>(lux::make_shape(4, 2), 3),
                       lux_test::random_tensor<double>(lux::make_shape(4, 2), 4)};
  auto [yd, sd] = lux::apply(pd, xd, psd, std_);
  auto h = dense_ref(psd.get<"layer_1">().get<"weight">(), psd.get<"layer_1">().get<"bias">(),
                     std::get<0>(xd));
  for (lux::index_t k = 0; k < h.numel(); ++k) h.data()[k] += std::get<1>(xd).data()[k];
  auto h2 = dense_ref(psd.get<"b">().get<"weight">(), psd.get<"b">().get<"bias">(), h);
  for (lux::index_t k = 0; k < h2.numel(); ++k) h2.data()[k] += std::get<2>(xd).data()[k];
  CHECK(lux_test::max_rel_err(yd, h2) < 1e-14);
  CHECK(lux_test::check_pullback(pd, xd, psd, std_,
                                 lux_test::random_tensor<double>(lux::make_shape(4, 2), 5))
            .size() == 4);
  auto xbad = std::tuple{T2(3, 2), T2(4, 2), T2(4, 3)};
  CHECK_THROWS_WITH(lux::apply(pd, xbad, psd, std_),
                    "+: the inputs must have equal shapes, got (4, 2) and (4, 3)");
  CHECK_THROWS_WITH(lux::outputsize(pd, std::tuple{lux::make_shape(3, 2), lux::make_shape(4, 2),
                                                   lux::make_shape(5, 2)}),
                    "+: the inputs must have equal shapes, got (4, 2) and (5, 2)");
}

TEST_CASE("SkipConnection: callable and layer connections", "[layers][containers]") {
  lux::rng r(9);
  lux::SkipConnection sk(lux::Chain(lux::Dense({3, 5}, lux::tanh_{}), lux::Dense({5, 3})),
                         lux::add{});
  auto [ps, st] = lux::setup<double>(r, sk);
  static_assert(decltype(ps)::names[0] == "layer_1");
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2), 1);
  auto [y, st2] = lux::apply(sk, x, ps, st);
  auto h = dense_ref(ps.get<"layer_1">().get<"weight">(), ps.get<"layer_1">().get<"bias">(), x);
  for (auto& e : h) e = std::tanh(e);
  auto ref = dense_ref(ps.get<"layer_2">().get<"weight">(), ps.get<"layer_2">().get<"bias">(), h);
  for (lux::index_t k = 0; k < ref.numel(); ++k) ref.data()[k] += x.data()[k];
  CHECK(lux_test::max_rel_err(y, ref) < 1e-14);
  auto v = lux_test::random_tensor<double>(lux::make_shape(3, 2), 2);
  CHECK(lux_test::check_pullback(sk, x, ps, st, v).size() == 4);
  CHECK(lux::outputsize(sk, x.shape()) == x.shape());
  CHECK_THROWS_WITH(lux::apply(sk, T2(4, 2), ps, st),
                    "layers.layer_1 (Dense 3 => 5): expected input (3, B), got (4, 2)");
  CHECK(str(sk) ==
        "SkipConnection(Chain(layer_1 = Dense(3 => 5, tanh), layer_2 = Dense(5 => 3)), +)");

  // A layer connection: ps = (layers, connection).
  lux::SkipConnection skl(lux::Dense({3, 4}),
                          lux::Parallel(lux::vcat{}, lux::NoOpLayer{}, lux::Dense({3, 2})));
  auto [psl, stl] = lux::setup<double>(r, skl);
  static_assert(decltype(psl)::names[0] == "layers" && decltype(psl)::names[1] == "connection");
  CHECK(lux::parameterlength(skl) == 16 + 8);
  CHECK(lux::outputsize(skl, x.shape()) == lux::make_shape(6, 2));
  CHECK(lux_test::check_pullback(skl, x, psl, stl,
                                 lux_test::random_tensor<double>(lux::make_shape(6, 2), 3)) ==
        std::vector<std::string>{"layers.weight", "layers.bias", "connection.layer_2.weight",
                                 "connection.layer_2.bias"});
  auto psbad = psl.with<"connection">(psl.get<"connection">().with<"layer_2">(
      psl.get<"connection">().get<"layer_2">().with<"bias">(T1(3))));
  CHECK_THROWS_WITH(
      lux::apply(skl, x, psbad, stl),
      "connection.layer_2 (Dense 3 => 2): parameter bias has shape (3), expected (2)");
}

TEST_CASE("summary and float run", "[layers][containers]") {
  lux::Chain model(
      lux::Dense({784, 64}, lux::relu{}),
      lux::Parallel(lux::add{}, lux::Dense({64, 10}), lux::field<"b">(lux::Dense({64, 10}))));
  const std::string s = lux::summary_string(model);
  CHECK(s ==
        "Chain(\n"
        "    layer_1 = Dense(784 => 64, relu),  # 50240 parameters\n"
        "    layer_2 = Parallel(\n"
        "        layer_1 = Dense(64 => 10),  # 650 parameters\n"
        "        b = Dense(64 => 10),  # 650 parameters\n"
        "    ),\n"
        ")  # Total: 51540 parameters, plus 0 states.\n");
  lux::rng r(2);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<float, 2> x(784, 3);
  auto [y, st2, back] = lux::pullback(model, x, ps, st);
  CHECK(y.shape() == lux::make_shape(10, 3));
  auto g = back(lux::Tensor<float, 2>(lux::make_shape(10, 3), 1.0f));
  CHECK(g.dps.get<"layer_2">().get<"b">().get<"bias">()[0] == 3.0f);
}

TEST_CASE("containers: argument errors and connection errors carry the child's path",
          "[layers][containers]") {
  // An argument_error (an embedding index out of range) inside a Chain gets the layer path, as
  // shape errors do, and stays an argument_error.
  auto model = lux::Chain(lux::Embedding({10, 4}), lux::Dense({4, 2}));
  lux::rng r(21);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::Tensor<std::int32_t, 1> idx(lux::make_shape(3), {0, 12, 3});
  CHECK_THROWS_AS(lux::apply(model, idx, ps, st), lux::argument_error);
  try {
    (void)lux::apply(model, idx, ps, st);
  } catch (const lux::argument_error& e) {
    CHECK(std::string(e.what()).rfind("layer_1 (Embedding 10 => 4): embedding_lookup: ", 0) == 0);
  }

  // A callable connection's error is prefixed "connection", forward and pullback (SkipConnection's
  // header promises it in both cases).
  lux::SkipConnection sk(lux::Dense({3, 4}), lux::add{});
  auto [psk, stk] = lux::setup<double>(r, sk);
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2), 22);
  CHECK_THROWS_AS(lux::apply(sk, x, psk, stk), lux::shape_error);
  try {
    (void)lux::apply(sk, x, psk, stk);
  } catch (const lux::shape_error& e) {
    CHECK(std::string(e.what()).rfind("connection (", 0) == 0);
  }
  try {
    (void)lux::pullback(sk, x, psk, stk);
  } catch (const lux::shape_error& e) {
    CHECK(std::string(e.what()).rfind("connection (", 0) == 0);
  }
  CHECK_THROWS_AS(lux::pullback(sk, x, psk, stk), lux::shape_error);
}
