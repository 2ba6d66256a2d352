// The layer interface on a small layer written here: setup, apply, pullback, counts,
// state updates and printing.
#include <catch2/catch.hpp>

#include <lux/layers/initializers.hpp>
#include <lux/layers/layer.hpp>
#include <sstream>

namespace {
// y = w .* x + b (elementwise, features-first), with a training flag and a call counter.
struct toy_scale {
  using is_lux_layer = void;
  static constexpr const char* name = "toy_scale";
  lux::index_t dims;

  template <class T>
  auto init_parameters(lux::rng& r) const {
    return lux::make_named_tuple<"weight", "bias">(
        lux::initialize<T>(lux::glorot_uniform{}, r, lux::make_shape(dims)),
        lux::Tensor<T, 1>(lux::make_shape(dims)));
  }
  auto init_states(lux::rng&) const { return lux::make_named_tuple<"training", "calls">(true, 0); }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    X y = x;
    for (lux::index_t j = 0; j < x.size(1); ++j)
      for (lux::index_t i = 0; i < dims; ++i)
        y(i, j) = ps.template get<"weight">()[i] * x(i, j) + ps.template get<"bias">()[i];
    return std::pair{std::move(y), st.template with<"calls">(st.template get<"calls">() + 1)};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [y, st2] = forward(x, ps, st);
    auto back = [x, ps](const X& dy) {
      X dx = dy;
      auto dps = ps;
      dps.template get<"weight">().fill(0);
      dps.template get<"bias">().fill(0);
      for (lux::index_t j = 0; j < x.size(1); ++j)
        for (lux::index_t i = 0; i < x.size(0); ++i) {
          dx(i, j) = dy(i, j) * ps.template get<"weight">()[i];
          dps.template get<"weight">()[i] += dy(i, j) * x(i, j);
          dps.template get<"bias">()[i] += dy(i, j);
        }
      return lux::gradients{std::move(dx), std::move(dps)};
    };
    return lux::pullback_result{std::move(y), std::move(st2), std::move(back)};
  }
  template <std::size_t N>
  lux::shape_t<N> output_shape(const lux::shape_t<N>& in) const {
    return in;
  }
  void print(std::ostream& os) const { os << "toy_scale(" << dims << ")"; }
};
struct no_params {
  using is_lux_layer = void;
  static constexpr const char* name = "NoOpLayer";
};
}  // namespace

TEST_CASE("layer interface: setup, counts, apply and pullback", "[layer]") {
  toy_scale layer{3};
  lux::rng r(1);
  auto [ps, st] = lux::setup<double>(r, layer);
  CHECK(ps.get<"weight">().numel() == 3);
  CHECK(lux::parameterlength(ps) == 6);
  CHECK(lux::parameterlength(layer) == 6);
  CHECK(lux::statelength(st) == 2);  // two non-array leaves
  CHECK(lux::parameterlength(no_params{}) == 0);

  lux::Tensor<double, 2> x(lux::make_shape(3, 2), {1, 2, 3, 4, 5, 6});
  auto [y, st2] = lux::apply(layer, x, ps, st);
  CHECK(st2.get<"calls">() == 1);
  CHECK(st.get<"calls">() == 0);  // apply never mutates its inputs
  CHECK(y(2, 1) == Approx(ps.get<"weight">()[2] * 6.0));
  CHECK(lux::outputsize(layer, x.shape()) == x.shape());

  auto [y2, st3, back] = lux::pullback(layer, x, ps, st2);
  CHECK(st3.get<"calls">() == 2);
  lux::Tensor<double, 2> dy(lux::make_shape(3, 2), {1, 0, 0, 0, 0, 1});
  auto [dx, dps] = back(dy);
  CHECK(dx(0, 0) == Approx(ps.get<"weight">()[0]));
  CHECK(dps.get<"weight">()[2] == Approx(6.0));
  CHECK(dps.get<"bias">()[0] == Approx(1.0));
  CHECK(dps.get<"bias">()[1] == Approx(0.0));
}

TEST_CASE("layer interface: testmode, trainmode, update_state and printing", "[layer]") {
  auto st = lux::make_named_tuple<"layer_1", "layer_2">(
      lux::make_named_tuple<"training", "calls">(true, 3), lux::make_named_tuple<"training">(true));
  auto t = lux::testmode(st);
  CHECK(t.get<"layer_1">().get<"training">() == false);
  CHECK(t.get<"layer_2">().get<"training">() == false);
  CHECK(t.get<"layer_1">().get<"calls">() == 3);
  CHECK(lux::trainmode(t).get<"layer_2">().get<"training">() == true);
  auto u = lux::update_state(st, "calls", 9);
  CHECK(u.get<"layer_1">().get<"calls">() == 9);
  CHECK(u.get<"layer_1">().get<"training">() == true);

  using lux::operator<<;  // user layers live outside namespace lux, so ADL does not find it
  std::ostringstream os;
  os << toy_scale{4} << " " << no_params{};
  CHECK(os.str() == "toy_scale(4) NoOpLayer()");
}
