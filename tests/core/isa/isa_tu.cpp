// Compiled twice, into two object libraries with different -m flags (tests/CMakeLists.txt), and
// linked into one executable with tests/core/isa/test_isa_namespaces.cpp. Each copy runs the
// looped gelu through the public kernel and reports which instruction-set namespace its
// instantiations live in. Were the instantiations of the two copies the same symbols, the linker
// would keep one of them and both copies would report the same namespace (and the copy built for
// the older instruction set could run the newer one's code).
#include <string>
#include <vector>

#include <lux/kernels/activation.hpp>

#ifndef LUX_ISA_TU
#error "define LUX_ISA_TU to the name of the report function"
#endif

namespace lux_isa_test {
struct report {
  std::string isa;          // the namespace this translation unit's lux code lives in
  std::string kernel_isa;   // the namespace reported from inside an inline lux template
  std::vector<float> gelu;  // lux::fast_activation(gelu) of the input
};
report LUX_ISA_TU(const std::vector<float>& x);
}  // namespace lux_isa_test

lux_isa_test::report lux_isa_test::LUX_ISA_TU(const std::vector<float>& x) {
  lux::Tensor<float, 1> t(lux::shape_t<1>{static_cast<lux::index_t>(x.size())});
  for (std::size_t i = 0; i < x.size(); ++i) t[static_cast<lux::index_t>(i)] = x[i];
  auto y = lux::fast_activation(lux::looped_op{}, lux::gelu{}, t);
  report r;
  r.isa = lux::simd_isa_name();
  // An inline function template of lux's, instantiated identically by both copies: without the
  // instruction-set namespace it is one weak symbol, and the linker keeps one copy's. Called
  // through a volatile pointer so that the compiler cannot inline it: the call reaches the symbol
  // the linker kept.
  const char* (*volatile isa_of)() noexcept = &lux::detail::isa_of<float>;
  r.kernel_isa = isa_of();
  r.gelu.assign(y.data(), y.data() + y.numel());
  return r;
}
