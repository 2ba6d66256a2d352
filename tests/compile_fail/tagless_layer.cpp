// Must NOT compile: a user layer with a `forward` member but without `using is_lux_layer = void;`
// put in a Chain. Without the diagnostic it would be wrapped as a WrappedFunction and fail far
// away (or, worse, be called as a function); WrappedFunction's static_assert names the fix.
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/utility.hpp>
struct MyLayer {  // forgot: using is_lux_layer = void;
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    return std::make_pair(x, st);
  }
};
int main() {
  auto model = lux::Chain(lux::Dense({3, 3}), MyLayer{});
  return static_cast<int>(sizeof(model));
}
