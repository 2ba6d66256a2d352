// named_tuple: names, access, nesting, traversal with dotted paths.
#include <catch2/catch.hpp>

#include <lux/core/named_tuple.hpp>
#include <lux/core/tensor.hpp>
#include <string>
#include <vector>

TEST_CASE("named_tuple: construction, names and access", "[named_tuple]") {
  auto ps = lux::named_tuple{lux::field<"weight">(lux::Tensor<float, 2>(3, 2)),
                             lux::field<"bias">(lux::Tensor<float, 1>(3))};
  static_assert(decltype(ps)::size == 2);
  static_assert(decltype(ps)::names[0] == "weight" && decltype(ps)::names[1] == "bias");
  static_assert(decltype(ps)::has<"bias"> && !decltype(ps)::has<"scale">);
  ps.get<"weight">()(2, 1) = 5.0f;
  CHECK(lux::get<"weight">(ps)(2, 1) == 5.0f);
  CHECK(lux::get<"bias">(ps).numel() == 3);

  auto st = lux::make_named_tuple<"training", "count">(true, 7);
  CHECK(st.get<"training">() == true);
  CHECK(st.get<"count">() == 7);
  auto st2 = st.with<"training">(false);
  CHECK(st2.get<"training">() == false);
  CHECK(st.get<"training">() == true);                // the original is unchanged
  auto st3 = st.with<"count">(std::string("seven"));  // the field type may change
  CHECK(st3.get<"count">() == "seven");
  static_assert(lux::empty_tuple::size == 0);
}

TEST_CASE("named_tuple: layer_<i> names", "[named_tuple]") {
  static_assert(lux::layer_name<1>().view() == "layer_1");
  static_assert(lux::layer_name<12>().view() == "layer_12");
  static_assert(lux::layer_name<305>().view() == "layer_305");
  auto t = lux::make_named_tuple<lux::layer_name<1>(), lux::layer_name<2>()>(1, 2.5);
  CHECK(t.get<"layer_2">() == 2.5);
}

TEST_CASE("named_tuple: nested traversal gives dotted paths", "[named_tuple]") {
  auto dense =
      lux::make_named_tuple<"weight", "bias">(std::vector<double>{1, 2, 3}, std::vector<double>{4});
  auto norm =
      lux::make_named_tuple<"scale", "bias">(std::vector<double>{5, 6}, std::vector<double>{7, 8});
  auto tree =
      lux::make_named_tuple<"layer_1", "layer_2", "layer_3">(dense, lux::empty_tuple{}, norm);
  std::vector<std::string> paths;
  double total = 0;
  lux::for_each_leaf(tree, [&](std::string_view path, const std::vector<double>& leaf) {
    paths.emplace_back(path);
    for (double v : leaf) total += v;
  });
  CHECK(paths == std::vector<std::string>{"layer_1.weight", "layer_1.bias", "layer_3.scale",
                                          "layer_3.bias"});
  CHECK(total == 36.0);
  CHECK(lux::leaf_count(tree) == 4);

  // map_leaves keeps the structure and names.
  auto sizes = lux::map_leaves(tree, [](const std::vector<double>& v) { return v.size(); });
  CHECK(sizes.get<"layer_1">().get<"weight">() == 3u);
  CHECK(sizes.get<"layer_3">().get<"bias">() == 2u);
  static_assert(decltype(sizes)::names[2] == "layer_3");

  // zip_leaves walks two trees of the same structure together.
  double dot = 0;
  lux::zip_leaves(tree, sizes, [&](std::string_view, const std::vector<double>& v, std::size_t n) {
    dot += v.front() * static_cast<double>(n);
  });
  CHECK(dot == 1 * 3 + 4 * 1 + 5 * 2 + 7 * 2);

  // Leaves can be mutated in place through for_each_leaf.
  lux::for_each_leaf(tree, [](std::string_view, std::vector<double>& v) { v.assign(v.size(), 0); });
  lux::for_each_leaf(tree, [](std::string_view, const std::vector<double>& v) {
    for (double x : v) CHECK(x == 0.0);
  });
}
