// Flat parameter storage (lux/training/flat.hpp): layout, views over one buffer, assign,
// accumulate, copies and moves, and shape errors.
#include <catch2/catch.hpp>

#include <lux/layers/chain.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/training/flat.hpp>

#include "support/check.hpp"

namespace {
auto model() {
  return lux::Chain(lux::Conv({3, 3}, {2, 3}), lux::BatchNorm(3), lux::Dense({5, 7}));
}
}  // namespace

TEST_CASE("flat_tree: layout names, aligned offsets and the parameter count", "[training][flat]") {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model());
  const lux::flat_tree fp(ps);
  const auto& e = fp.layout().entries();
  REQUIRE(e.size() == 6);
  CHECK(e[0].name == "layer_1.weight");
  CHECK(e[0].shape == std::vector<lux::index_t>{3, 3, 2, 3});
  CHECK(e[3].name == "layer_2.bias");
  CHECK(e[5].name == "layer_3.bias");
  for (const auto& x : e) CHECK(x.offset % 16 == 0);
  CHECK(fp.layout().parameter_count() == lux::parameterlength(ps));
  CHECK(fp.layout().size() >= fp.layout().parameter_count());
  CHECK(reinterpret_cast<std::uintptr_t>(fp.tree().get<"layer_3">().get<"weight">().data()) % 64 ==
        0);
}

TEST_CASE("flat_tree: the views hold the tree's values and alias the buffer", "[training][flat]") {
  lux::rng r(2);
  auto [ps, st] = lux::setup<float>(r, model());
  lux::flat_tree fp(ps);
  const auto back = fp.to_tree();
  lux::zip_leaves(ps, back, [](std::string_view, const auto& a, const auto& b) {
    REQUIRE(a.shape() == b.shape());
    for (lux::index_t i = 0; i < a.numel(); ++i) REQUIRE(a.data()[i] == b.data()[i]);
  });
  auto w = fp.tree().get<"layer_1">().get<"weight">();
  w(1, 2, 1, 0) = 42.0f;
  const auto& entry = fp.layout().entries()[0];
  CHECK(fp.buffer().data()[entry.offset + 1 + 3 * 2 + 9 * 1] == 42.0f);
  // Gaps between leaves are zero.
  double gaps = 0;
  lux::index_t covered = 0;
  for (const auto& x : fp.layout().entries()) {
    for (lux::index_t i = covered; i < x.offset; ++i) gaps += std::abs(fp.buffer().data()[i]);
    covered = x.offset + x.numel;
  }
  CHECK(gaps == 0);
}

TEST_CASE("flat_tree: accumulate adds gradients leaf by leaf, zero clears", "[training][flat]") {
  lux::rng r(3);
  auto [ps, st] = lux::setup<double>(r, model());
  lux::flat_tree fp(ps);
  auto g = fp.zeros_like();
  g.accumulate(ps);
  g.accumulate(ps);
  for (lux::index_t i = 0; i < g.buffer().size(); ++i)
    REQUIRE(g.buffer().data()[i] == 2 * fp.buffer().data()[i]);
  g.zero();
  for (lux::index_t i = 0; i < g.buffer().size(); ++i) REQUIRE(g.buffer().data()[i] == 0);
}

TEST_CASE("flat_tree: copies own their buffer, moves keep the views valid", "[training][flat]") {
  lux::rng r(4);
  auto [ps, st] = lux::setup<float>(r, model());
  lux::flat_tree a(ps);
  auto b = a;
  b.tree().get<"layer_3">().get<"bias">()[0] = 7.0f;
  CHECK(a.tree().get<"layer_3">().get<"bias">()[0] != 7.0f);
  CHECK(b.tree().get<"layer_3">().get<"bias">().data() !=
        a.tree().get<"layer_3">().get<"bias">().data());
  auto c = std::move(b);
  CHECK(c.tree().get<"layer_3">().get<"bias">()[0] == 7.0f);
  CHECK(c.tree().get<"layer_3">().get<"bias">().data() ==
        c.buffer().data() + c.layout().entries()[5].offset);
}

TEST_CASE("flat_tree: a leaf of another shape is a shape_error naming it",
          "[training][flat][errors]") {
  lux::rng r(5);
  auto [ps, st] = lux::setup<float>(r, lux::Chain(lux::Dense({2, 3}), lux::Dense({3, 4})));
  auto [ps2, st2] = lux::setup<float>(r, lux::Chain(lux::Dense({2, 3}), lux::Dense({3, 5})));
  lux::flat_tree fp(ps);
  CHECK_THROWS_WITH(fp.accumulate(ps2),
                    Catch::Contains("layer_2.weight") && Catch::Contains("(5, 3)"));
  CHECK_THROWS_AS(fp.assign(ps2), lux::shape_error);
}
