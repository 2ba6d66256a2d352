// The operation-mode trait and the overload fallback it is built for.
#include <catch2/catch.hpp>

#include <lux/core/operation_mode.hpp>
#include <optional>
#include <string>

namespace {
using fcpu2 = lux::Tensor<float, 2>;
using dview = lux::TensorView<double, 3>;
using fstrided = lux::StridedView<float, 2>;
using ldcpu = lux::Tensor<long double, 1>;
using fcuda = lux::TensorView<float, 2, lux::cuda>;

template <class A, class B>
inline constexpr bool same = std::is_same_v<A, B>;

// The fallback idiom every kernel uses: a looped overload wins when it exists, otherwise
// the generic one is chosen because looped_op derives from generic_op.
std::string which(lux::generic_op) { return "generic"; }
std::string which(lux::gpu_op<lux::cuda>) { return "gpu"; }
struct only_generic {
  static std::string run(lux::generic_op) { return "generic"; }
};
struct both {
  static std::string run(lux::generic_op) { return "generic"; }
  static std::string run(lux::looped_op) { return "looped"; }
};
}  // namespace

// Compile-time checks: they are the test (a wrong trait fails the build).
static_assert(same<lux::operation_mode_t<fcpu2>, lux::looped_op>);
static_assert(same<lux::operation_mode_t<fcpu2, dview>, lux::looped_op>);
static_assert(
    same<lux::operation_mode_t<const fcpu2&, lux::TensorView<const float, 1>>, lux::looped_op>);
static_assert(same<lux::operation_mode_t<fcpu2, fstrided>, lux::generic_op>);
static_assert(same<lux::operation_mode_t<ldcpu>, lux::generic_op>);
static_assert(same<lux::operation_mode_t<lux::Tensor<int, 1>>, lux::generic_op>);
static_assert(same<lux::operation_mode_t<fcuda, lux::none_t>, lux::gpu_op<lux::cuda>>);
static_assert(same<lux::operation_mode_t<lux::none_t, fcpu2, std::nullopt_t>, lux::looped_op>);
static_assert(same<lux::operation_mode_t<lux::none_t>, lux::generic_op>);
static_assert(std::is_base_of_v<lux::generic_op, lux::looped_op>);
static_assert(!std::is_base_of_v<lux::generic_op, lux::gpu_op<lux::cuda>>);
static_assert(lux::operation_mode<lux::looped_op>);
static_assert(!lux::operation_mode<int>);
static_assert(lux::array<fcpu2> && lux::array<fstrided&> && !lux::array<float>);

TEST_CASE("operation_mode_t selects the mode LuxLib would", "[operation_mode]") {
  CHECK(which(lux::operation_mode_t<fcpu2>{}) == "generic");  // looped → generic overload
  CHECK(which(lux::operation_mode_t<fcuda>{}) == "gpu");
  CHECK(only_generic::run(lux::looped_op{}) == "generic");
  CHECK(both::run(lux::looped_op{}) == "looped");
  CHECK(both::run(lux::operation_mode_t<fstrided>{}) == "generic");
  fcpu2 a(2, 2);
  lux::Tensor<double, 1> b(3);
  CHECK(both::run(lux::select_operation_mode(a, b, lux::none)) == "looped");
  CHECK(std::string(lux::operation_mode_t<ldcpu>::name) == "generic_op");
}
