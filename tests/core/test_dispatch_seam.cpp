// The dispatch seam is open: a backend defined outside the library (after every lux header was
// included) plugs into the public kernels through its operation-mode tag, without editing them.
#include <catch2/catch.hpp>

#include <lux/kernels/activation.hpp>
#include <lux/kernels/bias_activation.hpp>
#include <lux/kernels/softmax.hpp>

#include <string>
#include <vector>

// --- a user-defined operation mode, declared after the public headers ------------------------
namespace user_backend {
struct counting_op : lux::operation_mode_tag {
  static constexpr const char* name = "counting_op";
};
inline std::vector<std::string> calls;  // which implementation ran, in order

// fast_activation's implementation signature (lux/kernels/generic/activation.hpp): it computes
// y = 2·f(x) so that the test can tell it from the library's own implementations.
template <class T, class F>
void fast_activation(counting_op, const F& f, const T* x, T* y, lux::index_t n) {
  calls.emplace_back("fast_activation");
  for (lux::index_t i = 0; i < n; ++i) y[i] = T(2) * f(x[i]);
}
}  // namespace user_backend

static_assert(lux::operation_mode<user_backend::counting_op>);
static_assert(lux::operation_mode<lux::generic_op> && lux::operation_mode<lux::looped_op> &&
              lux::operation_mode<lux::gpu_op<lux::cuda>>);
static_assert(!lux::operation_mode<int> && !lux::operation_mode<lux::operation_mode_tag>);

TEST_CASE("a user-defined operation mode plugs into the public kernel by ADL", "[dispatch]") {
  user_backend::calls.clear();
  lux::Tensor<float, 2> x({2, 3});
  for (lux::index_t i = 0; i < x.numel(); ++i) x.data()[i] = float(i) - 2.5f;

  const auto y = lux::fast_activation(user_backend::counting_op{}, lux::relu{}, x);
  REQUIRE(user_backend::calls == std::vector<std::string>{"fast_activation"});
  REQUIRE(y.shape() == x.shape());
  for (lux::index_t i = 0; i < x.numel(); ++i)
    CHECK(y.data()[i] == 2.0f * std::max(0.0f, x.data()[i]));

  // The in-place form reaches the same implementation; the library's own modes are untouched.
  lux::fast_activation_(user_backend::counting_op{}, lux::relu{}, x);
  CHECK(user_backend::calls.size() == 2);
  const auto z = lux::fast_activation(lux::looped_op{}, lux::relu{}, y);
  CHECK(user_backend::calls.size() == 2);
  for (lux::index_t i = 0; i < x.numel(); ++i) CHECK(z.data()[i] == y.data()[i]);
}
