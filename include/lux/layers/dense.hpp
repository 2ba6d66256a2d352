// luxcpp — Lux's Dense layer: y = σ.(weight * x .+ bias).
//
//   lux::Dense layer({784, 64}, lux::relu{});          // Dense(784 => 64, relu)
//   lux::Dense<lux::identity, false> nb({10, 3});       // use_bias = false
//
// Parameters: weight (out, in), bias (out) (absent when UseBias is false). States: none.
// Input (in, batch...) of any rank ≥ 1: it is reshaped to (in, :) and the output to
// (out, batch...), as Lux does; a vector (in) gives a vector (out).
//
// Initialization: Lux's documented interface — init_weight = glorot_uniform,
// init_bias = zeros. (Lux ≥ 1.0's code uses kaiming_uniform with a gain depending on σ and a
// uniform bias, in Lux 1.x's source; pass lux::kaiming_uniform{...} to get that.)
//
// The forward and backward passes are the fused kernels of lux/kernels/dense.hpp, so the
// layer runs in the operation mode of its arrays. pullback's `back` owns a copy of x and
// reads the parameters through views: keep `ps` alive and unchanged until back is called.
#pragma once

#include <ostream>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/kernels/dense.hpp"
#include "lux/layers/initializers.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

template <class F = identity, bool UseBias = true, class WInit = glorot_uniform,
          class BInit = zeros>
struct Dense {
  using is_lux_layer = void;
  static constexpr const char* name = "Dense";
  static constexpr bool use_bias = UseBias;

  index_t in_dims = 0;
  index_t out_dims = 0;
  F activation{};
  WInit init_weight{};
  BInit init_bias{};

  Dense(std::pair<index_t, index_t> in_out, F act = {}, WInit iw = {}, BInit ib = {})
      : in_dims(in_out.first),
        out_dims(in_out.second),
        activation(act),
        init_weight(iw),
        init_bias(ib) {
    require<argument_error>(in_dims > 0 && out_dims > 0, "Dense: dimensions must be positive, got ",
                            in_dims, " => ", out_dims);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    auto w = initialize<T>(init_weight, r, shape_t<2>{out_dims, in_dims});
    if constexpr (UseBias)
      return make_named_tuple<"weight", "bias">(std::move(w),
                                                initialize<T>(init_bias, r, shape_t<1>{out_dims}));
    else
      return make_named_tuple<"weight">(std::move(w));
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_input(in);
    shape_t<N> out = in;
    out[0] = out_dims;
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    const auto xv = as_view(x);
    check_params(ps);
    check_input(xv.shape());
    auto x2 = xv.reshape(in_dims, -1);
    auto y = fused_dense_bias_activation(activation, weight_of(ps), x2, bias_of(ps));
    return std::pair{std::move(y).reshaped(output_shape(xv.shape())), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
    constexpr std::size_t N = array_traits<std::remove_cvref_t<X>>::rank;
    const auto xv = as_view(x);
    check_params(ps);
    check_input(xv.shape());
    auto x2 = copy(xv.reshape(in_dims, -1));  // owned by `back`
    auto [y, saved] =
        fused_dense_bias_activation_forward(activation, weight_of(ps), x2, bias_of(ps));
    const auto yshape = output_shape(xv.shape());
    const auto xshape = xv.shape();
    // `back` keeps y only when σ's derivative is read from the output.
    constexpr bool keep_y = activation_traits<F>::uses_output && !activation_traits<F>::is_identity;
    Tensor<T, 2> y_saved = keep_y ? y : Tensor<T, 2>{};
    const auto w = weight_of(ps);
    const auto b = bias_of(ps);
    auto back = [self = *this, x2 = std::move(x2), y_saved = std::move(y_saved),
                 saved = std::move(saved), w, b, xshape, yshape](const auto& dy) {
      const auto dyv = as_view(dy);
      static_assert(std::remove_cvref_t<decltype(dyv)>::rank == N,
                    "lux::Dense: the output gradient must have the rank of the output");
      require<shape_error>(dyv.shape() == yshape, "Dense ", self.in_dims, " => ", self.out_dims,
                           ": the output gradient has shape ", dyv.shape(), ", expected ", yshape);
      auto dy2 = dyv.reshape(self.out_dims, -1);
      auto g = [&] {
        if constexpr (keep_y)
          return fused_dense_bias_activation_backward(self.activation, dy2, w, x2, b, y_saved,
                                                      saved);
        else
          return fused_dense_bias_activation_backward(self.activation, dy2, w, x2, b, none, saved);
      }();
      auto dx = std::move(g.dx).reshaped(xshape);
      if constexpr (UseBias)
        return gradients{std::move(dx), make_named_tuple<"weight", "bias">(std::move(g.dweight),
                                                                           std::move(g.dbias))};
      else
        return gradients{std::move(dx), make_named_tuple<"weight">(std::move(g.dweight))};
    };
    static_assert(N >= 1);
    return pullback_result{std::move(y).reshaped(yshape), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "Dense(" << in_dims << " => " << out_dims;
    if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
    if constexpr (!UseBias) os << ", use_bias=false";
    os << ")";
  }

 private:
  // Every parameter leaf must have the shape the hyperparameters give.
  template <class PS>
  void check_params(const PS& ps) const {
    const auto prefix = detail::concat("Dense ", in_dims, " => ", out_dims);
    detail::check_parameter_shape(prefix, "weight", ps.template get<"weight">(),
                                  shape_t<2>{out_dims, in_dims});
    if constexpr (UseBias)
      detail::check_parameter_shape(prefix, "bias", ps.template get<"bias">(),
                                    shape_t<1>{out_dims});
  }
  template <std::size_t N>
  void check_input(const shape_t<N>& in) const {
    static_assert(N >= 1, "Dense: the input needs at least one dimension");
    require<shape_error>(in[0] == in_dims, "Dense ", in_dims, " => ", out_dims,
                         ": expected input (", in_dims, N > 1 ? ", B" : "", "), got ", in);
  }
  template <class PS>
  static auto weight_of(const PS& ps) {
    return as_view(ps.template get<"weight">());
  }
  template <class PS>
  static auto bias_of(const PS& ps) {
    if constexpr (UseBias)
      return as_view(ps.template get<"bias">());
    else
      return none;
  }
};

template <class F>
Dense(std::pair<index_t, index_t>, F) -> Dense<F>;
Dense(std::pair<index_t, index_t>)->Dense<>;

LUX_NAMESPACE_END
