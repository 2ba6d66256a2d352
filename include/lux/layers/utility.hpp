// luxcpp — Lux's utility ("Misc. Helper") layers: NoOpLayer, FlattenLayer, ReshapeLayer,
// SelectDim, WrappedFunction. None has parameters or states (ps = st = empty_tuple).
//
//   NoOpLayer()            y = x (any input, tuples included); back(dy) = dy.
//   FlattenLayer()         (d0, …, d_{N-2}, B) → (d0·…·d_{N-2}, B), Lux's reshape(x, :, B)
//                          (a vector (n) becomes (1, n), as in Julia: B = size(x, ndims(x))).
//   ReshapeLayer(dims)     (…, B) → (dims..., B); numel(x) must be prod(dims)·B.
//                          Prints as Lux does: ReshapeLayer(output_dims = (2, 3, :)).
//   SelectDim(dim, i)      x with dimension `dim` fixed at `i`: rank N → N-1 (a copy; Lux
//                          returns a view — values and gradients are the same).
//                          ⚠ CHOICE: `dim` and `i` are 0-BASED, like every dimension and index
//                          in luxcpp (Tensor::select, the embedding kernel); Lux's
//                          SelectDim(3, 1) is lux::SelectDim(2, 0). Printing shows the
//                          0-based values.
//   WrappedFunction(f)     y = f(x). apply works with any callable; pullback needs a function
//                          object with a member `pullback(x)` returning {y, back} with
//                          back(dy) → dx (otherwise lux::pullback's static_assert fires).
//                          outputsize uses f.output_shape(in) when f has it, otherwise runs f
//                          once on a float zero tensor of that shape (Lux's fallback also runs
//                          the function). Prints WrappedFunction(<F::name>) or
//                          WrappedFunction(f).
// Every layer returns owned tensors (NoOpLayer returns its input as given).
#pragma once

#include <ostream>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/tensor.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

/// Returns its input unchanged.
struct NoOpLayer {
  using is_lux_layer = void;
  static constexpr const char* name = "NoOpLayer";

  template <class S>
  S output_shape(const S& in) const {
    return in;
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    return std::pair{x, st};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    auto back = [](const auto& dy) {
      return gradients{std::remove_cvref_t<decltype(dy)>(dy), std::remove_cvref_t<PS>{}};
    };
    return pullback_result{x, st, std::move(back)};
  }
  void print(std::ostream& os) const { os << "NoOpLayer()"; }
};

/// Reshapes (…, B) to (:, B).
struct FlattenLayer {
  using is_lux_layer = void;
  static constexpr const char* name = "FlattenLayer";

  template <std::size_t N>
  shape_t<2> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 1, "FlattenLayer: the input needs at least one dimension");
    const index_t b = in[N - 1];
    const index_t n = shape_numel(in, "FlattenLayer");
    return {b == 0 ? 0 : n / b, b};
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    return std::pair{copy(xv).reshaped(output_shape(xv.shape())), st};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [y, st2] = forward(x, ps, st);
    const auto xshape = as_view(x).shape();
    auto back = [xshape, yshape = y.shape()](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == yshape, "FlattenLayer: the output gradient has shape ",
                           dyv.shape(), ", expected ", yshape);
      return gradients{copy(dyv).reshaped(xshape), std::remove_cvref_t<PS>{}};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }
  void print(std::ostream& os) const { os << "FlattenLayer()"; }
};

/// Reshapes (…, B) to (dims..., B).
template <std::size_t M>
struct ReshapeLayer {
  using is_lux_layer = void;
  static constexpr const char* name = "ReshapeLayer";
  shape_t<M> dims{};

  explicit ReshapeLayer(const shape_t<M>& d) : dims(d) {
    for (auto v : dims)
      require<argument_error>(v > 0, "ReshapeLayer: dimensions must be positive, got ", dims);
  }

  template <std::size_t N>
  shape_t<M + 1> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 1, "ReshapeLayer: the input needs at least one dimension");
    shape_t<M + 1> out{};
    for (std::size_t k = 0; k < M; ++k) out[k] = dims[k];
    out[M] = in[N - 1];
    require<shape_error>(shape_numel(out, "ReshapeLayer") == shape_numel(in, "ReshapeLayer"),
                         short_name(), ": cannot reshape ", in, " to ", out);
    return out;
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    return std::pair{copy(xv).reshaped(output_shape(xv.shape())), st};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [y, st2] = forward(x, ps, st);
    const auto xshape = as_view(x).shape();
    const auto yshape = y.shape();
    auto back = [xshape, yshape, self = *this](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == yshape, self.short_name(),
                           ": the output gradient has shape ", dyv.shape(), ", expected ", yshape);
      return gradients{copy(dyv).reshaped(xshape), std::remove_cvref_t<PS>{}};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }
  void print(std::ostream& os) const {
    os << "ReshapeLayer(output_dims = (";
    for (auto v : dims) os << v << ", ";
    os << ":))";
  }

 private:
  std::string short_name() const {
    std::string s = "ReshapeLayer (";
    for (auto v : dims) s += std::to_string(v) + ", ";
    return s + ":)";
  }
};
template <std::size_t M>
ReshapeLayer(shape_t<M>) -> ReshapeLayer<M>;

/// x with dimension `dim` fixed at index `i` (both 0-based): rank N → N-1.
struct SelectDim {
  using is_lux_layer = void;
  static constexpr const char* name = "SelectDim";
  std::size_t dim = 0;
  index_t index = 0;

  SelectDim(std::size_t d, index_t i) : dim(d), index(i) {
    require<argument_error>(i >= 0, "SelectDim: the index must be non-negative, got ", i);
  }

  template <std::size_t N>
  shape_t<N - 1> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 1, "SelectDim: the input needs at least one dimension");
    check(in);
    shape_t<N - 1> out{};
    for (std::size_t k = 0, j = 0; k < N; ++k)
      if (k != dim) out[j++] = in[k];
    return out;
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    check(xv.shape());
    return std::pair{copy(xv.select(dim, index)), st};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
    constexpr std::size_t N = array_traits<std::remove_cvref_t<X>>::rank;
    auto [y, st2] = forward(x, ps, st);
    const auto xshape = as_view(x).shape();
    auto back = [xshape, self = *this](const auto& dy) {
      Tensor<T, N> dx(xshape);  // zeros
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == self.output_shape(xshape), "SelectDim(", self.dim, ", ",
                           self.index, "): the output gradient has shape ", dyv.shape(),
                           ", expected ", self.output_shape(xshape));
      copy_into(dx.select(self.dim, self.index), dyv);
      return gradients{std::move(dx), std::remove_cvref_t<PS>{}};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }
  void print(std::ostream& os) const { os << "SelectDim(" << dim << ", " << index << ")"; }

 private:
  template <std::size_t N>
  void check(const shape_t<N>& in) const {
    require<shape_error>(dim < N, "SelectDim(", dim, ", ", index, "): dimension ", dim,
                         " out of range for input ", in);
    require<shape_error>(index < in[dim], "SelectDim(", dim, ", ", index, "): index ", index,
                         " out of range for dimension ", dim, " of input ", in);
  }
};

/// A parameterless, stateless function used as a layer: y = f(x).
namespace detail::wrapped {
// True when F (a class) has a member called `forward` of any kind — function, template or
// data — found by the ambiguous-lookup trick: Probe inherits `forward` from both F and has_forward.
struct has_forward {
  int forward;
};
template <class F>
struct probe : F, has_forward {};
template <class F>
consteval bool has_forward_member() {
  if constexpr (std::is_class_v<F> && !std::is_final_v<F>) return !requires {
      &probe<F>::forward;
    };
  else
    return false;
}
}  // namespace detail::wrapped

template <class F>
struct WrappedFunction {
  static_assert(!detail::wrapped::has_forward_member<F>(),
                "lux::WrappedFunction: this type has a `forward` member but is not a lux layer; a "
                "user-defined layer must declare `using is_lux_layer = void;` (see lux::layer), "
                "otherwise Chain wraps it as a plain function");
  using is_lux_layer = void;
  static constexpr const char* name = "WrappedFunction";
  F f;

  WrappedFunction(F fn) : f(std::move(fn)) {}  // NOLINT: implicit, so Chain can wrap lambdas

  template <class S>
  auto output_shape(const S& in) const {
    if constexpr (requires { f.output_shape(in); }) {
      return f.output_shape(in);
    } else {
      static_assert(
          requires { shape_numel(in); },
          "WrappedFunction: outputsize needs an array shape or an output_shape member");
      return as_view(f(Tensor<float, std::tuple_size_v<S>>(in))).shape();
    }
  }
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    return std::pair{f(x), st};
  }
  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const requires requires(const F& g) {
    g.pullback(x);
  }
  {
    auto [y, b] = f.pullback(x);
    auto back = [b = std::move(b)](const auto& dy) {
      return gradients{b(dy), std::remove_cvref_t<PS>{}};
    };
    return pullback_result{std::move(y), st, std::move(back)};
  }
  void print(std::ostream& os) const {
    os << "WrappedFunction(";
    if constexpr (requires { F::name; })
      os << F::name;
    else
      os << "f";
    os << ")";
  }
};

LUX_NAMESPACE_END
