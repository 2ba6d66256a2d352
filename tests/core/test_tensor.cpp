// Tensor, TensorView, StridedView, Eigen interop and error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <lux/core/eigen.hpp>
#include <lux/core/tensor.hpp>
#include <numeric>
#include <string>

namespace {

// A user-defined number type: the generic mode must accept "anything arithmetic-like".
struct fixed {
  double v = 0;
  fixed() = default;
  fixed(double x) : v(x) {}  // NOLINT: implicit on purpose
  friend fixed operator+(fixed a, fixed b) { return a.v + b.v; }
  friend bool operator==(fixed a, fixed b) { return a.v == b.v; }
};

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const lux::error& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("Tensor: shape, zero initialization and column-major layout", "[tensor]") {
  lux::Tensor<float, 3> t(2, 3, 4);
  CHECK(t.shape() == lux::shape_t<3>{2, 3, 4});
  CHECK(t.numel() == 24);
  CHECK(t.size(0) == 2);
  CHECK(t.size(2) == 4);
  CHECK(t.size(3) == 1);  // like Julia's size(x, d) past the rank
  CHECK(t.strides() == lux::shape_t<3>{1, 2, 6});
  for (float v : t) CHECK(v == 0.0f);

  // The first index varies fastest: element (i, j, k) sits at i + 2 j + 6 k.
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) t(i, j, k) = static_cast<float>(i + 10 * j + 100 * k);
  CHECK(t.data()[1 + 2 * 2 + 6 * 3] == 1 + 20 + 300);
  CHECK(t[1 + 2 * 1 + 6 * 2] == 1 + 10 + 200);
}

TEST_CASE("Tensor: 64-byte alignment, copies and moves", "[tensor]") {
  for (int n : {1, 3, 17, 1000}) {
    lux::Tensor<double, 1> t(n);
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  }
  lux::Tensor<int, 2> a(lux::shape_t<2>{2, 2}, {1, 2, 3, 4});
  lux::Tensor<int, 2> b = a;  // deep copy
  b(0, 0) = 9;
  CHECK(a(0, 0) == 1);
  CHECK(a(1, 1) == 4);
  CHECK(a(0, 1) == 3);  // column-major: the second column holds 3, 4
  lux::Tensor<int, 2> c = std::move(b);
  CHECK(c(0, 0) == 9);
  CHECK(b.numel() == 0);  // NOLINT: moved-from state is documented as empty
  CHECK(b.data() == nullptr);
  a = c;
  CHECK(a(0, 0) == 9);
  lux::Tensor<float, 2> filled(lux::shape_t<2>{3, 2}, 2.5f);
  for (float v : filled) CHECK(v == 2.5f);
  lux::Tensor<float, 1> empty(lux::shape_t<1>{0});
  CHECK(empty.empty());
  CHECK(empty.begin() == empty.end());
}

TEST_CASE("Tensor: generic element types", "[tensor]") {
  lux::Tensor<long double, 2> l(2, 2);
  l(1, 1) = 1.5L;
  CHECK(l(1, 1) == 1.5L);
  lux::Tensor<fixed, 1> f(lux::shape_t<1>{3}, fixed{2.0});
  f[1] = f[0] + f[2];
  CHECK(f[1] == fixed{4.0});
  auto g = f;
  CHECK(g[1] == fixed{4.0});
}

TEST_CASE("Tensor: bad shapes throw shape_error", "[tensor][errors]") {
  CHECK_THROWS_AS((lux::Tensor<float, 2>(lux::shape_t<2>{-1, 3})), lux::shape_error);
  CHECK_THROWS_AS((lux::Tensor<float, 2>(lux::shape_t<2>{1LL << 62, 1LL << 62})), lux::shape_error);
  CHECK(message_of([] {
          lux::Tensor<float, 2>(lux::shape_t<2>{2, 2}, {1.0f, 2.0f});
        }) == "Tensor: shape (2, 2) needs 4 values, got 2");
  lux::Tensor<float, 2> t(2, 3);
  CHECK(message_of([&] { (void)t.at(2, 0); }) ==
        "TensorView::at: index (2, 0) out of bounds for shape (2, 3)");
  CHECK_THROWS_AS(t.at(0, -1), lux::shape_error);
  CHECK_NOTHROW(t.at(1, 2));
}

TEST_CASE("Checked shape arithmetic names the operation instead of overflowing",
          "[tensor][errors]") {
  constexpr lux::index_t big = std::numeric_limits<lux::index_t>::max();
  CHECK(lux::checked_add(3, 4, "op") == 7);
  CHECK(lux::checked_sub(3, 4, "op") == -1);
  CHECK(lux::checked_mul(-3, 4, "op") == -12);
  CHECK(lux::checked_floor(2.9, "op") == 2);
  CHECK(lux::checked_floor(-2.5, "op") == -3);
  CHECK(message_of([&] { lux::checked_add(big, 1, "conv", "the padded input size"); }) ==
        "conv: the padded input size overflows: 9223372036854775807 + 1");
  CHECK(message_of([&] { lux::checked_sub(-big, 2, "op"); }) ==
        "op: a size overflows: -9223372036854775807 - 2");
  CHECK(message_of([&] { lux::checked_mul(1LL << 40, 1LL << 40, "op"); }) ==
        "op: a size overflows: 1099511627776 * 1099511627776");
  CHECK_THROWS_AS(lux::checked_mul<lux::argument_error>(big / 2 + 1, 2, "op"), lux::argument_error);
  CHECK_THROWS_AS(lux::checked_floor(1e300, "op"), lux::shape_error);
  CHECK_THROWS_AS(lux::checked_floor(-1e19, "op"), lux::shape_error);
  CHECK_THROWS_AS(lux::checked_floor(std::nan(""), "op"), lux::shape_error);
  CHECK(lux::checked_floor(-9223372036854775808.0, "op") ==
        std::numeric_limits<lux::index_t>::min());
}

TEST_CASE("Tensor: every partial product of a shape fits, even next to a zero size",
          "[tensor][errors]") {
  // (0, 2^40, 2^40) has no elements, but a kernel computing the plane 2^40 · 2^40 would overflow.
  CHECK_THROWS_AS(lux::shape_numel(lux::shape_t<3>{0, 1LL << 40, 1LL << 40}), lux::shape_error);
  CHECK(lux::shape_numel(lux::shape_t<3>{0, 1LL << 30, 1LL << 30}) == 0);
  CHECK_THROWS_AS((lux::Tensor<float, 3>(lux::shape_t<3>{0, 1LL << 40, 1LL << 40})),
                  lux::shape_error);
  CHECK_THROWS_AS(lux::view(static_cast<float*>(nullptr), lux::make_shape(0, 1LL << 40, 1LL << 40)),
                  lux::shape_error);
  // 2^62 floats pass the element count but not the address space; the operation is named.
  CHECK(message_of([] { (void)lux::Tensor<float, 1>(1LL << 62); }) ==
        "Tensor: 4611686018427387904 elements of 4 bytes exceed the address space");
  CHECK(message_of([] {
          (void)lux::Tensor<float, 1>::uninitialized(lux::shape_t<1>{1LL << 62}, "upsample");
        }) == "upsample: 4611686018427387904 elements of 4 bytes exceed the address space");
  CHECK(message_of([] {
          (void)lux::Tensor<float, 2>::uninitialized(lux::shape_t<2>{-1, 2}, "pool");
        }) == "pool: sizes must be non-negative, got (-1, 2)");
}

TEST_CASE("TensorView: reshape targets whose product overflows throw", "[tensor][errors]") {
  lux::Tensor<float, 1> t(4);
  CHECK(message_of([&] { (void)t.reshape(1LL << 40, 1LL << 40, -1); }) ==
        "reshape: target shape (1099511627776, 1099511627776, -1) has too many elements");
  CHECK_THROWS_AS(t.reshape(0, 1LL << 40, 1LL << 40), lux::shape_error);
  CHECK_THROWS_AS(std::move(t).reshaped(lux::shape_t<3>{1LL << 62, 4, -1}), lux::shape_error);
}

TEST_CASE("TensorView: reshape, including an inferred size", "[tensor]") {
  lux::Tensor<float, 3> t(2, 3, 4);
  std::iota(t.begin(), t.end(), 0.0f);
  auto m = t.reshape(6, -1);
  static_assert(std::is_same_v<decltype(m), lux::TensorView<float, 2>>);
  CHECK(m.shape() == lux::shape_t<2>{6, 4});
  CHECK(m(5, 3) == 23.0f);
  m(0, 1) = -1.0f;  // views share memory
  CHECK(t(0, 0, 1) == -1.0f);
  CHECK(t.reshape(lux::shape_t<1>{-1}).size(0) == 24);
  CHECK(message_of([&] { (void)t.reshape(5, 5); }) ==
        "reshape: cannot reshape (2, 3, 4) (24 elements) to (5, 5)");
  CHECK_THROWS_AS(t.reshape(-1, -1), lux::shape_error);
  CHECK_THROWS_AS(t.reshape(7, -1), lux::shape_error);
  // A strided view cannot be reshaped; a contiguous one can be recovered when it is.
  auto s = t.select(0, 1);
  CHECK_THROWS_AS(s.reshape(12), lux::shape_error);
  CHECK_THROWS_AS(s.contiguous(), lux::shape_error);
  const auto& ct = t;
  auto cv = ct.reshape(4, 6);
  static_assert(std::is_same_v<decltype(cv), lux::TensorView<const float, 2>>);
}

TEST_CASE("TensorView: select, select_last and slice", "[tensor]") {
  lux::Tensor<int, 3> t(2, 3, 4);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) t(i, j, k) = i + 10 * j + 100 * k;

  auto s = t.select(1, 2);  // (2, 4), fixing j = 2
  static_assert(std::is_same_v<decltype(s), lux::StridedView<int, 2>>);
  CHECK(s.shape() == lux::shape_t<2>{2, 4});
  CHECK_FALSE(s.is_contiguous());
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i) CHECK(s(i, k) == i + 20 + 100 * k);
  auto gathered = lux::copy(s);
  CHECK(gathered.shape() == s.shape());
  CHECK(gathered(1, 3) == 1 + 20 + 300);

  auto b = t.select_last(3);  // one sample of the batch, contiguous
  static_assert(std::is_same_v<decltype(b), lux::TensorView<int, 2>>);
  CHECK(b(1, 2) == 1 + 20 + 300);

  auto sl = t.slice(1, 3);  // samples 1 and 2
  CHECK(sl.shape() == lux::shape_t<3>{2, 3, 2});
  CHECK(sl(0, 0, 0) == 100);
  CHECK(sl(1, 2, 1) == 1 + 20 + 200);
  CHECK(t.slice(4, 4).numel() == 0);

  auto last = t.select(2, 1);  // selecting the last dim stays contiguous at runtime
  CHECK(last.is_contiguous());
  CHECK(last.contiguous()(1, 1) == 1 + 10 + 100);

  CHECK_THROWS_AS(t.select(3, 0), lux::shape_error);
  CHECK_THROWS_AS(t.select(0, 2), lux::shape_error);
  CHECK_THROWS_AS(t.select_last(4), lux::shape_error);
  CHECK_THROWS_AS(t.slice(2, 5), lux::shape_error);
  CHECK_THROWS_AS(t.slice(3, 2), lux::shape_error);
  CHECK(message_of([&] { (void)t.select(0, 5); }) ==
        "select: index 5 out of range for dimension 0 of shape (2, 3, 4)");

  lux::Tensor<int, 2> dst(2, 4);
  lux::copy_into(dst.view(), s);
  CHECK(dst(1, 2) == 1 + 20 + 200);
  lux::Tensor<int, 2> wrong(3, 4);
  CHECK_THROWS_AS(lux::copy_into(wrong.view(), s), lux::shape_error);
}

TEST_CASE("TensorView: views over raw memory and const conversions", "[tensor]") {
  float buf[6] = {0, 1, 2, 3, 4, 5};
  auto v = lux::view(buf, lux::make_shape(2, 3));
  CHECK(v(1, 2) == 5.0f);
  lux::TensorView<const float, 2> cv = v;  // adding const is implicit
  CHECK(cv(0, 1) == 2.0f);
  lux::StridedView<const float, 2> sv = v;  // contiguous → strided is implicit
  CHECK(sv(1, 1) == 3.0f);
  CHECK_THROWS_AS(lux::view(static_cast<float*>(nullptr), lux::make_shape(2)), lux::argument_error);
  CHECK_NOTHROW(lux::view(static_cast<float*>(nullptr), lux::make_shape(0)));
  CHECK(lux::format_shape(lux::shape_t<0>{}) == "()");
  CHECK(lux::format_shape(lux::make_shape(3, 4, 5)) == "(3, 4, 5)");
}

TEST_CASE("Eigen interop shares memory both ways", "[tensor][eigen]") {
  Eigen::MatrixXd m(3, 2);
  m << 1, 2, 3, 4, 5, 6;  // row-wise literal into a column-major matrix
  auto v = lux::view(m);
  static_assert(std::is_same_v<decltype(v), lux::TensorView<double, 2>>);
  CHECK(v.shape() == lux::shape_t<2>{3, 2});
  CHECK(v(2, 1) == 6.0);
  v(0, 0) = -1;
  CHECK(m(0, 0) == -1.0);

  Eigen::VectorXf vec = Eigen::VectorXf::LinSpaced(4, 0, 3);
  auto vv = lux::view(vec);
  static_assert(std::is_same_v<decltype(vv), lux::TensorView<float, 1>>);
  CHECK(vv(3) == 3.0f);

  // A block of a matrix is a strided view.
  auto blk = m.block(1, 0, 2, 2);
  auto bv = lux::view(blk);
  static_assert(std::is_same_v<decltype(bv), lux::StridedView<double, 2>>);
  CHECK(bv(1, 1) == 6.0);

  lux::Tensor<float, 2> t(2, 3);
  auto e = lux::as_eigen(t);
  e.setConstant(2.0f);
  e(1, 2) = 7.0f;
  CHECK(t(1, 2) == 7.0f);
  CHECK(t(0, 0) == 2.0f);
  // The Eigen product of mapped tensors equals the naive loop.
  lux::Tensor<float, 2> a(2, 3), b(3, 2);
  std::iota(a.begin(), a.end(), 1.0f);
  std::iota(b.begin(), b.end(), -2.0f);
  Eigen::MatrixXf c = lux::as_eigen(a) * lux::as_eigen(b);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      float ref = 0;
      for (int k = 0; k < 3; ++k) ref += a(i, k) * b(k, j);
      CHECK(c(i, j) == ref);
    }
  // Strided views map with their strides.
  auto row = t.select(0, 1);  // (3,) with stride 2
  auto er = lux::as_eigen(row);
  CHECK(er.size() == 3);
  CHECK(er(2) == 7.0f);
  const auto& ct = t;
  auto ce = lux::as_eigen(ct);
  CHECK(ce(1, 2) == 7.0f);
}

TEST_CASE("Tensor sizes can be spelled as a braced list, sizes or a shape_t", "[tensor]") {
  const lux::Tensor<float, 2> a({3, 4});
  const lux::Tensor<float, 2> b{3, 4};
  const lux::Tensor<float, 2> c(3, 4);
  const lux::Tensor<float, 2> d(lux::shape_t<2>{3, 4});
  for (const auto* t : {&a, &b, &c, &d}) {
    CHECK(t->shape() == lux::shape_t<2>{3, 4});
    CHECK(t->data()[11] == 0.0f);
  }
  const lux::Tensor<double, 1> e{7};
  CHECK(e.shape() == lux::shape_t<1>{7});
  // A braced list with the wrong number of sizes is a shape_error, not a silent zero extent.
  CHECK_THROWS_AS((lux::Tensor<float, 2>({3})), lux::shape_error);
  CHECK_THROWS_AS((lux::Tensor<float, 2>({3, 4, 5})), lux::shape_error);
}
