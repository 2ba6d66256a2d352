// luxcpp — Lux's dropout layers: Dropout, AlphaDropout, VariationalHiddenDropout.
//
//   lux::Dropout d(0.5);                              // Dropout(0.5)
//   lux::Dropout d2(0.5, {.dims = 2});                // Dropout(0.5, dims=3): per channel of WHCN
//   lux::AlphaDropout a(0.1);                         // AlphaDropout(0.1)
//   lux::VariationalHiddenDropout<2> v(0.3);          // for rank-2 inputs (F, B)
//
// All three call the kernels of lux/kernels/dropout.hpp (masks are a pure function of the
// rng's key/counter and the element index). No parameters. States, in Lux's field order:
//   Dropout, AlphaDropout:      (rng, training)                           statelength 2
//   VariationalHiddenDropout:   (rng, training, update_mask, mask)        statelength 3 (mask
//                               starts empty, Lux's `nothing`; afterwards it holds the mask)
// `rng` is a lux::rng child of the setup stream (split(0), then the setup stream advances: Lux's
// sample_replicate), `training` a bool (lux::testmode/trainmode flip it).
//
// Dropout(p, {.dims}): training → y = x .* mask, mask = (u > p)/(1 − p) over the mask shape
//   (size(x, d) along dims, 1 elsewhere), a fresh mask every call; st.rng advances (st2.rng =
//   rng.advanced(1)). Not training → y = x, st unchanged. dims are 0-based (kernel convention:
//   Julia's dims = 3 is {.dims = 2}); the default lux::all_dims is Julia's `:`. print() shows
//   them 1-based as Lux does (`Dropout(0.5, dims=3)`).
// AlphaDropout(p): y = A·(u > p ? x : α) + B (LuxLib's alpha_dropout), p = 1 gives zeros.
// VariationalHiddenDropout<N>(p, {.dims}): like Dropout, but the mask is drawn only when
//   st.update_mask is true; the call then stores it in st2.mask and sets update_mask = false.
//   Later calls reuse st.mask (rng untouched) until lux::update_state(st, "update_mask", true).
//   Design: the state type must be fixed at setup (st2 has exactly st's type), so the layer
//   takes the input rank N as a template parameter and the mask is a Tensor<T, N> (T from
//   setup<T>). A stored mask whose shape does not fit x is a shape_error naming update_mask.
//   Deviation from Lux's code: in test mode Lux merges `mask = x` (its "meaningless" mask) and
//   update_mask = false into the state; here test mode leaves the state unchanged.
//
// p = 0: Lux returns NoOpLayer (a different type, empty state). C++ cannot change the type, so
// the layer keeps its (rng, training) state but passes x through and consumes no rng (st2 ==
// st). 0 <= p <= 1 is checked by the constructors (argument_error).
//
// Pullbacks: Dropout / VariationalHiddenDropout dx = dy .* mask (identity when not training);
// AlphaDropout dx = dy · [u > p] · A (the mask regenerated from the saved rng). dps is
// empty_tuple. `back` owns the mask (or the saved rng).
#pragma once

#include <cmath>
#include <ostream>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/random.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/dropout.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

/// Dropout's keyword arguments: dims (0-based; lux::all_dims = Julia's `:`).
struct dropout_options {
  dim_set dims = all_dims;
};

namespace detail::dropout_layer {
/// Lux's sample_replicate for a counter-based stream: an independent child for the layer, and
/// the setup stream moves on so the next layer gets another one.
inline rng child_rng(rng& r) {
  rng child = r.split(0);
  r.advance(1);
  return child;
}
inline void check_p(const char* layer, double p) {
  require<argument_error>(p >= 0 && p <= 1, layer, ": p must be in [0, 1], got ", p);
}
/// Julia's display of dims: `dims=3` or `dims=(3, 4)` (1-based); nothing for `:`.
inline void print_dims(std::ostream& os, const dim_set& dims) {
  if (dims.is_all()) return;
  int count = 0;
  for (std::size_t d = 0; d < 64; ++d) count += dims.contains(d) ? 1 : 0;
  os << ", dims=";
  if (count != 1) os << "(";
  bool first = true;
  for (std::size_t d = 0; d < 64; ++d)
    if (dims.contains(d)) {
      os << (first ? "" : ", ") << d + 1;
      first = false;
    }
  if (count != 1) os << (count == 0 ? ",)" : ")");
}
template <class X>
using tensor_of = Tensor<typename array_traits<std::remove_cvref_t<X>>::value_type,
                         array_traits<std::remove_cvref_t<X>>::rank>;
template <class X>
tensor_of<X> copy_tensor(const X& x) {
  return tensor_of<X>(copy(as_view(x)));
}
template <class DY, std::size_t N>
void check_dy(const char* layer, double p, const DY& dy, const shape_t<N>& yshape) {
  require<shape_error>(as_view(dy).shape() == yshape, layer, " ", p,
                       ": the output gradient has shape ", as_view(dy).shape(), ", expected ",
                       yshape);
}
template <class PS>
PS empty_gradient() {
  static_assert(std::is_same_v<PS, empty_tuple>, "lux dropout layers have no parameters");
  return PS{};
}
/// The identity result (y = copy of x, an all-ones mask, st unchanged).
template <class X, class ST>
auto unchanged(const X& x, const ST& st) {
  using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
  shape_t<array_traits<std::remove_cvref_t<X>>::rank> ones{};
  ones.fill(1);
  return std::tuple{copy_tensor(x), tensor_of<X>(ones, T(1)), st};
}

/// forward and pullback shared by the dropout layers: Derived::run(x, ps, st) returns
/// (y, saved, st2) and Derived::backward(dy, saved) the kernel's backward (with .dx).
template <class Derived>
struct passes {
  using is_lux_layer = void;

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto [y, saved, st2] = self().run(x, ps, st);
    return std::pair{std::move(y), std::move(st2)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [y, saved, st2] = self().run(x, ps, st);
    const auto yshape = y.shape();
    auto back = [p = self().p, saved = std::move(saved), yshape](const auto& dy) {
      check_dy(Derived::name, p, dy, yshape);
      return gradients{Derived::backward(as_view(dy), saved).dx, empty_gradient<PS>()};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};
}  // namespace detail::dropout_layer

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

struct Dropout : detail::dropout_layer::passes<Dropout> {
  friend detail::dropout_layer::passes<Dropout>;
  static constexpr const char* name = "Dropout";

  double p = 0.5;
  double invp = 2;
  dim_set dims = all_dims;

  explicit Dropout(double prob, dropout_options opts = {})
      : p(prob), invp(prob < 1 ? 1 / (1 - prob) : INFINITY), dims(opts.dims) {
    detail::dropout_layer::check_p("Dropout", prob);
  }

  auto init_states(rng& r) const {
    return make_named_tuple<"rng", "training">(detail::dropout_layer::child_rng(r), true);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_rank<N>();
    return in;
  }

  template <class DY, class M>
  static auto backward(const DY& dy, const M& mask) {
    return dropout_backward(dy, mask);
  }

  void print(std::ostream& os) const {
    os << "Dropout(" << p;
    detail::dropout_layer::print_dims(os, dims);
    os << ")";
  }

 private:
  template <std::size_t N>
  void check_rank() const {
    require<argument_error>(!dims.has_outside(N), "Dropout ", p, ": dims contains ",
                            dims.first_outside(N), ", but x has rank ", N, " (dims are 0-based)");
  }
  template <class X, class PS, class ST>
  auto run(const X& x, const PS&, const ST& st) const {
    constexpr std::size_t N = array_traits<std::remove_cvref_t<X>>::rank;
    check_rank<N>();
    const bool training = st.template get<"training">();
    if (p == 0 || !training)  // NoOpLayer / test mode: identity, rng untouched
      return detail::dropout_layer::unchanged(x, st);
    auto r = dropout(st.template get<"rng">(), x, p, true, invp, dims);
    ST st2 = st;
    st2.template get<"rng">() = r.rng;
    return std::tuple{std::move(r.y), std::move(r.mask), std::move(st2)};
  }
};

// ---------------------------------------------------------------------------------------------
// AlphaDropout
// ---------------------------------------------------------------------------------------------

struct AlphaDropout : detail::dropout_layer::passes<AlphaDropout> {
  friend detail::dropout_layer::passes<AlphaDropout>;
  static constexpr const char* name = "AlphaDropout";

  double p = 0.5;

  explicit AlphaDropout(double prob) : p(prob) {
    detail::dropout_layer::check_p("AlphaDropout", prob);
  }

  auto init_states(rng& r) const {
    return make_named_tuple<"rng", "training">(detail::dropout_layer::child_rng(r), true);
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    return in;
  }

  template <class DY>
  static auto backward(const DY& dy, const alpha_dropout_saved& saved) {
    return alpha_dropout_backward(dy, saved);
  }

  void print(std::ostream& os) const { os << "AlphaDropout(" << p << ")"; }

 private:
  template <class X, class PS, class ST>
  auto run(const X& x, const PS&, const ST& st) const {
    const bool training = st.template get<"training">();
    if (p == 0 || !training) {  // identity (p = 0 is Lux's NoOpLayer); rng untouched
      auto y = detail::dropout_layer::copy_tensor(x);
      return std::tuple{
          std::move(y),
          alpha_dropout_saved{st.template get<"rng">(), p, 1, false, as_view(x).numel()}, st};
    }
    auto r = alpha_dropout(st.template get<"rng">(), x, p, true);
    ST st2 = st;
    st2.template get<"rng">() = r.rng;
    return std::tuple{std::move(r.y), r.saved, std::move(st2)};
  }
};

// ---------------------------------------------------------------------------------------------
// VariationalHiddenDropout
// ---------------------------------------------------------------------------------------------

/// Dropout whose mask is kept in the state until update_mask is set; N is the input rank
/// (the mask's rank, fixed at setup — see the file comment).
template <std::size_t N>
struct VariationalHiddenDropout : detail::dropout_layer::passes<VariationalHiddenDropout<N>> {
  friend detail::dropout_layer::passes<VariationalHiddenDropout<N>>;
  static_assert(N >= 1, "lux::VariationalHiddenDropout: the input rank must be >= 1");
  static constexpr const char* name = "VariationalHiddenDropout";

  double p = 0.5;
  double invp = 2;
  dim_set dims = all_dims;

  explicit VariationalHiddenDropout(double prob, dropout_options opts = {})
      : p(prob), invp(prob < 1 ? 1 / (1 - prob) : INFINITY), dims(opts.dims) {
    detail::dropout_layer::check_p("VariationalHiddenDropout", prob);
    require<argument_error>(!dims.has_outside(N), "VariationalHiddenDropout: dims contains ",
                            dims.first_outside(N), ", but the layer is for inputs of rank ", N,
                            " (dims are 0-based)");
  }

  template <class T>
  auto init_states(rng& r) const {
    return make_named_tuple<"rng", "training", "update_mask", "mask">(
        detail::dropout_layer::child_rng(r), true, true, Tensor<T, N>{});
  }

  template <std::size_t M>
  shape_t<M> output_shape(const shape_t<M>& in) const {
    static_assert(M == N, "lux::VariationalHiddenDropout<N>: the input must have rank N");
    return in;
  }

  template <class DY, class M>
  static auto backward(const DY& dy, const M& mask) {
    return dropout_backward(dy, mask);
  }

  void print(std::ostream& os) const {
    os << "VariationalHiddenDropout(" << p;
    detail::dropout_layer::print_dims(os, dims);
    os << ")";
  }

 private:
  template <class X, class PS, class ST>
  auto run(const X& x, const PS&, const ST& st) const {
    using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
    static_assert(array_traits<std::remove_cvref_t<X>>::rank == N,
                  "lux::VariationalHiddenDropout<N>: the input must have rank N");
    using M = std::remove_cvref_t<decltype(st.template get<"mask">())>;
    static_assert(std::is_same_v<M, Tensor<T, N>>,
                  "lux::VariationalHiddenDropout: the state's mask must be Tensor<T, N> with x's "
                  "element type T (setup<T> with the element type of the input)");
    const bool training = st.template get<"training">();
    if (p == 0 || !training)  // identity; the state (mask, update_mask, rng) is unchanged
      return detail::dropout_layer::unchanged(x, st);
    ST st2 = st;
    const auto xs = as_view(x).shape();
    if (st.template get<"update_mask">()) {
      auto r = dropout(st.template get<"rng">(), x, p, true, invp, dims);
      st2.template get<"rng">() = r.rng;
      st2.template get<"mask">() = r.mask;
      st2.template get<"update_mask">() = false;
      return std::tuple{std::move(r.y), std::move(r.mask), std::move(st2)};
    }
    const auto& mask = st.template get<"mask">();
    const auto ms = dropout_mask_shape(xs, dims);
    require<shape_error>(mask.shape() == ms, "VariationalHiddenDropout ", p,
                         ": the stored mask has shape ", mask.shape(), ", expected ", ms, " for x ",
                         xs, " (set update_mask to true to draw a new one)");
    auto r = dropout(st.template get<"rng">(), x, mask, p, true, false, invp, dims);
    return std::tuple{std::move(r.y), std::move(r.mask), std::move(st2)};
  }
};

LUX_NAMESPACE_END
