// Translation units compiled with different -m flags link into one program without their
// architecture-specific instantiations being merged: lux's code lives in an inline namespace named
// after the instruction set it was compiled for (lux::v0::isa_avx2, lux::v0::isa_avx512, ...),
// as ATen's CPU_CAPABILITY and Highway's HWY_NAMESPACE do. Two copies of isa_tu.cpp (AVX2 + FMA,
// and AVX-512) each run the looped gelu and report the namespace their instantiations live in.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <lux/core/config.hpp>

namespace lux_isa_test {
struct report {
  std::string isa;
  std::string kernel_isa;
  std::vector<float> gelu;
};
report isa_report_avx2(const std::vector<float>& x);
report isa_report_avx512(const std::vector<float>& x);
}  // namespace lux_isa_test

namespace {
std::vector<float> inputs() {
  std::vector<float> x;
  for (int i = -300; i <= 300; ++i) x.push_back(0.02f * static_cast<float>(i));
  return x;
}
double gelu_ref(double x) {  // NNlib's tanh approximation, in double
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
void check_gelu(const std::vector<float>& x, const std::vector<float>& y) {
  REQUIRE(y.size() == x.size());
  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    err = std::max(err, std::abs(double(y[i]) - gelu_ref(x[i])));
  CHECK(err < 1e-6);
}
}  // namespace

TEST_CASE("ISA namespaces: an AVX2 and an AVX-512 translation unit in one program", "[core][isa]") {
  const auto x = inputs();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    WARN("this CPU has no AVX2 + FMA: nothing to run");
    return;
  }
  const auto a = lux_isa_test::isa_report_avx2(x);
  CHECK(a.isa == "avx2");
  CHECK(a.kernel_isa == "avx2");
  check_gelu(x, a.gelu);
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
    WARN("this CPU has no AVX-512 (F, BW, DQ, VL): the AVX-512 translation unit is not run");
    return;
  }
  const auto b = lux_isa_test::isa_report_avx512(x);
  CHECK(b.isa == "avx512");
  CHECK(b.kernel_isa == "avx512");  // not merged with the AVX2 copy's instantiation
  check_gelu(x, b.gelu);
}
