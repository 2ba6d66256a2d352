// luxcpp — Lux's linear layers other than Dense: Bilinear, Embedding, Scale.
//
// ---- Bilinear --------------------------------------------------------------------------------
//   lux::Bilinear({{3, 4}, 5}, lux::relu{})        // Bilinear((3, 4) => 5, relu)
//   lux::Bilinear({4, 5})                          // in12 => out: Bilinear((4, 4) => 5)
//   lux::Bilinear<lux::identity, false>({{3, 4}, 5})   // use_bias = false
// z[k, b] = σ(Σ_ij x[i, b] W[k, i, j] y[j, b] + bias[k]).
// Input: std::tuple{x, y} with x (in1, rest...), y (in2, rest...) (equal ranks, equal trailing
// sizes; rest may be empty: vectors give a vector), or a single array x used as both x and y
// (the document's "If the input is an AbstractArray, then x = y"; needs in1 == in2).
// Output (out, rest...). ps: weight (out, in1, in2), bias (out) (absent without bias). st: none.
// Gradient: a tuple input gets std::tuple{dx, dy}; a single x gets dx = ∂x + ∂y (one array).
// Computation (Lux's own algorithm, both steps on the batched_matmul kernel):
//   Wy = reshape(W, out·in1, in2) · y          one GEMM, (out·in1, B): Wy[k, i, b] = Σ_j W[k,i,j]
//   y[j,b] z  = Wy (out, in1, B) ⊠ x (in1, 1, B)      batched GEMV → (out, 1, B) y  =
//   bias_activation(σ, z, bias)
// so the O(out·in1·in2·B) work is one large GEMM and the rest is O(out·in1·B). The backward
// runs the same two kernels' backward passes in reverse (saving x, y and Wy).
// Defaults: the interface of Lux's "Built-In Layers" documentation — init_weight = glorot_uniform (on the 3-d shape
// (out, in1, in2), i.e. WeightInitializers' fans fan_in = out·in1, fan_out = out·in2),
// init_bias = zeros. ⚠ Lux 1.x's source: Lux's code draws (randn32 − 0.5)·2/√in1 for the
// weight and U(±1/√in1) for the bias; pass {.init_weight = ..., .init_bias = ...} to change.
// The bias is a vector (out) (the document says (out, 1); Lux's code and Dense here use (out)).
//
// ---- Embedding -------------------------------------------------------------------------------
//   lux::Embedding({10, 4})                        // Embedding(10 => 4), vocabulary 10, dim 4
// y = weight[:, idx]: an integer array idx of any rank gives (out, size(idx)...), a single
// integer gives (out). INDICES ARE 0-BASED (valid 0 ... in−1), unlike Julia's 1-based Lux: Lux
// index k is k − 1 here. An index out of range throws lux::argument_error
// "Embedding 10 => 4: embedding_lookup: index 12 at position 3 ...". ps: weight (out, in).
// dx = lux::none (indices have no derivative); dweight is the deterministic scatter-add of the
// embedding kernel. Default init_weight = randn (the documented randn32; ⚠ Lux
// 1.x's source: the code's default is rand32). Lux's newer multi-dimensional `in` (tuples of indices) is
// not in Lux's documentation and not provided: linearize such indices into one column index.
//
// ---- Scale -----------------------------------------------------------------------------------
//   lux::Scale({3, 4}, lux::tanh_{})               // Scale((3, 4), tanh)
//   lux::Scale(5)                                  // Scale((5,))
//   lux::Scale<2, lux::relu, false>({3, 4})        // use_bias = false
// y = σ.(x .* weight .+ bias), weight and bias of shape dims (d1, ..., dK); x is (dims...,
// batch...) (rank ≥ K, its first K sizes equal dims; weight/bias broadcast over the rest).
// ps: weight (dims), bias (dims) (absent without bias). st: none.
// Defaults: the interface of Lux's "Built-In Layers" documentation — init_weight = ones, init_bias = zeros. ⚠
// Lux 1.x's source: Lux's code initializes the weight with glorot_uniform; pass
// lux::scale_options{.init_weight = lux::glorot_uniform{}} for that.
// Computation: x .* weight is a plain loop (no kernel scales rows), then the bias_activation
// kernel adds the bias and applies σ in place; the backward uses bias_activation_backward and
// two loops (dx = dz .* w, dweight = Σ_batch dz .* x).
//
// ---- Common ----------------------------------------------------------------------------------
// Keyword arguments are options structs taken last (designated initializers). use_bias changes
// the parameter tree's type, so it is a template parameter right after the activation, as in
// Dense<F, UseBias> and Conv<S, F, UseBias>: Bilinear<F, UseBias, Opts>, Scale<K, F, UseBias,
// Opts>. Errors: bad inputs → shape_error "Bilinear (3, 4) => 5: expected inputs ..."; parameters
// of the wrong shape → shape_error "Scale (3, 4): parameter weight has shape (3, 5), expected (3,
// 4)"; bad hyperparameters → argument_error. pullback's `back` owns copies of what it needs and
// reads the parameters through views: keep `ps` alive and unchanged until back is called.
// allow_fast_activation is not provided (activations are evaluated as given).
#pragma once

#include <concepts>
#include <cstddef>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/kernels/batched_matmul.hpp"
#include "lux/kernels/bias_activation.hpp"
#include "lux/kernels/embedding.hpp"
#include "lux/layers/initializers.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

namespace detail::linear {
template <class X>
struct is_std_tuple2 : std::false_type {};
template <class A, class B>
struct is_std_tuple2<std::tuple<A, B>> : std::true_type {};

/// bias_activation(σ, z, b) with what bias_activation_backward needs kept: z_saved (σ' from
/// the input) or y_saved (σ' from the output); neither for the identity.
template <class T>
struct activated {
  Tensor<T, 2> out, z_saved, y_saved;
};
template <class F, class T, class BV>
activated<T> activate_saving(const F& act, Tensor<T, 2> z, const BV& b) {
  activated<T> r;
  if constexpr (activation_traits<F>::is_identity || activation_traits<F>::uses_output) {
    r.out = std::move(z);
    bias_activation_(act, r.out.view(), b);
    if constexpr (!activation_traits<F>::is_identity) r.y_saved = r.out;
  } else {
    r.z_saved = std::move(z);
    r.out = bias_activation(act, r.z_saved, b);
  }
  return r;
}
/// bias_activation_backward from what activate_saving kept.
template <class F, class T, class DY, class BV>
auto activation_backward(const F& act, const DY& dy2, const activated<T>& a, const BV& b) {
  constexpr bool is_identity = activation_traits<F>::is_identity;
  constexpr bool from_output = activation_traits<F>::uses_output;
  const auto none_or = [](const Tensor<T, 2>& t, auto want) {
    if constexpr (decltype(want)::value)
      return t.cview();
    else
      return none;
  };
  return bias_activation_backward(
      act, dy2, none_or(a.z_saved, std::bool_constant < !is_identity && !from_output > {}), b,
      none_or(a.y_saved, std::bool_constant < !is_identity && from_output > {}));
}

/// A new Tensor a + b (equal shapes).
template <class T, std::size_t N, class V>
Tensor<T, N> add(Tensor<T, N> a, const V& b) {
  const auto bv = as_view(b);
  for (index_t i = 0; i < a.numel(); ++i) a.data()[i] += bv.data()[i];
  return a;
}
}  // namespace detail::linear

// =============================================================================================
// Bilinear
// =============================================================================================

/// Bilinear's keyword arguments (Lux's documented defaults).
template <class WInit = glorot_uniform, class BInit = zeros>
struct bilinear_options {
  WInit init_weight{};
  BInit init_bias{};
};

template <class F = identity, bool UseBias = true, class Opts = bilinear_options<>>
struct Bilinear {
  using is_lux_layer = void;
  static constexpr const char* name = "Bilinear";
  static constexpr bool use_bias = UseBias;

  index_t in1_dims = 0;
  index_t in2_dims = 0;
  index_t out_dims = 0;
  F activation{};
  Opts options{};

  /// Bilinear((in1, in2) => out, σ; options).
  Bilinear(std::pair<std::pair<index_t, index_t>, index_t> in_out, F act = {}, Opts opts = {})
      : in1_dims(in_out.first.first),
        in2_dims(in_out.first.second),
        out_dims(in_out.second),
        activation(act),
        options(opts) {
    require<argument_error>(in1_dims > 0 && in2_dims > 0 && out_dims > 0,
                            "Bilinear: dimensions must be positive, got (", in1_dims, ", ",
                            in2_dims, ") => ", out_dims);
  }
  /// Bilinear(in12 => out, σ; options): in1 = in2 = in12.
  Bilinear(std::pair<index_t, index_t> in12_out, F act = {}, Opts opts = {})
      : Bilinear(std::pair<std::pair<index_t, index_t>, index_t>{{in12_out.first, in12_out.first},
                                                                 in12_out.second},
                 act, opts) {}

  template <class T>
  auto init_parameters(rng& r) const {
    auto w = initialize<T>(options.init_weight, r, shape_t<3>{out_dims, in1_dims, in2_dims});
    if constexpr (use_bias)
      return make_named_tuple<"weight", "bias">(
          std::move(w), initialize<T>(options.init_bias, r, shape_t<1>{out_dims}));
    else
      return make_named_tuple<"weight">(std::move(w));
  }

  /// Output shape for a single input x (used as both x and y).
  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_inputs(in, in, true);
    shape_t<N> out = in;
    out[0] = out_dims;
    return out;
  }
  /// Output shape for a tuple input (x, y).
  template <std::size_t N>
  shape_t<N> output_shape(const std::tuple<shape_t<N>, shape_t<N>>& in) const {
    check_inputs(std::get<0>(in), std::get<1>(in), false);
    shape_t<N> out = std::get<0>(in);
    out[0] = out_dims;
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& input, const PS& ps, const ST& st) const {
    auto c = compute</*Saving=*/false>(input, ps);
    return std::pair{std::move(c.out), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& input, const PS& ps, const ST& st) const {
    auto c = compute</*Saving=*/true>(input, ps);
    return pullback_result{std::move(c.out), st, std::move(c.back)};
  }

  void print(std::ostream& os) const {
    os << "Bilinear((" << in1_dims << ", " << in2_dims << ") => " << out_dims;
    if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
    if constexpr (!use_bias) os << ", use_bias=false";
    os << ")";
  }

 private:
  template <std::size_t N>
  void check_inputs(const shape_t<N>& xs, const shape_t<N>& ys, bool single) const {
    static_assert(N >= 1, "Bilinear: the inputs need at least one dimension");
    if (single) {
      require<shape_error>(in1_dims == in2_dims, "Bilinear (", in1_dims, ", ", in2_dims, ") => ",
                           out_dims, ": a single input is used as both x and y, which needs in1 ",
                           "== in2; pass std::tuple{x, y}, got one input ", xs);
      require<shape_error>(xs[0] == in1_dims, "Bilinear (", in1_dims, ", ", in2_dims, ") => ",
                           out_dims, ": expected input (", in1_dims, N > 1 ? ", B" : "", "), got ",
                           xs);
      return;
    }
    bool rest_equal = true;
    for (std::size_t d = 1; d < N; ++d) rest_equal = rest_equal && xs[d] == ys[d];
    require<shape_error>(xs[0] == in1_dims && ys[0] == in2_dims && rest_equal, "Bilinear (",
                         in1_dims, ", ", in2_dims, ") => ", out_dims, ": expected inputs (",
                         in1_dims, N > 1 ? ", B" : "", ") and (", in2_dims, N > 1 ? ", B" : "",
                         ") with equal trailing sizes, got ", xs, " and ", ys);
  }
  template <class PS>
  void check_params(const PS& ps) const {
    const auto prefix = detail::concat("Bilinear (", in1_dims, ", ", in2_dims, ") => ", out_dims);
    detail::check_parameter_shape(prefix, "weight", ps.template get<"weight">(),
                                  shape_t<3>{out_dims, in1_dims, in2_dims});
    if constexpr (use_bias)
      detail::check_parameter_shape(prefix, "bias", ps.template get<"bias">(),
                                    shape_t<1>{out_dims});
  }
  template <class PS>
  static auto bias_of(const PS& ps) {
    if constexpr (use_bias)
      return as_view(ps.template get<"bias">());
    else
      return none;
  }

  template <class Y, class Back>
  struct computed {
    Y out;
    Back back;
  };

  // The forward pass; with Saving, also the `back` closure.
  template <bool Saving, class X, class PS>
  auto compute(const X& input, const PS& ps) const {
    constexpr bool pair_input = detail::linear::is_std_tuple2<std::remove_cvref_t<X>>::value;
    const auto& xa = [&]() -> const auto& {
      if constexpr (pair_input)
        return std::get<0>(input);
      else
        return input;
    }
    ();
    const auto& ya = [&]() -> const auto& {
      if constexpr (pair_input)
        return std::get<1>(input);
      else
        return input;
    }
    ();
    using XA = std::remove_cvref_t<decltype(xa)>;
    using YA = std::remove_cvref_t<decltype(ya)>;
    static_assert(is_array_v<XA> && is_array_v<YA>,
                  "lux::Bilinear: the input is an array or a std::tuple of two arrays");
    using T = typename array_traits<XA>::value_type;
    constexpr std::size_t N = array_traits<XA>::rank;
    static_assert(
        std::is_same_v<T, typename array_traits<YA>::value_type> && N == array_traits<YA>::rank,
        "lux::Bilinear: x and y need the same element type and rank");
    const auto xv = as_view(xa);
    const auto yv = as_view(ya);
    check_inputs(xv.shape(), yv.shape(), !pair_input);
    check_params(ps);
    const index_t B = xv.numel() / in1_dims;
    shape_t<N> zshape = xv.shape();
    zshape[0] = out_dims;

    const auto w = as_view(ps.template get<"weight">());
    const auto wmat = w.reshape(out_dims * in1_dims, in2_dims);
    const auto b = bias_of(ps);
    // x, y as matrices: views for forward, owned copies for `back` (a single input once).
    const auto keep = [](const auto& v) {
      if constexpr (Saving)
        return copy(v);
      else
        return v;
    };
    auto x2 = keep(xv.reshape(in1_dims, B));
    auto y2 = [&] {
      if constexpr (pair_input)
        return keep(yv.reshape(in2_dims, B));
      else
        return none;
    }();
    const auto y2v = [&] {
      if constexpr (pair_input)
        return as_view(y2);
      else
        return as_view(x2);
    }();
    // Wy (out·in1, B, 1), then z (out, 1, B) = Wy (out, in1, B) ⊠ x (in1, 1, B).
    auto wy = batched_matmul(wmat, y2v);
    auto z = batched_matmul(wy.reshape(out_dims, in1_dims, B), x2.reshape(in1_dims, 1, B));
    if constexpr (!Saving) {
      bias_activation_(activation, z.reshape(out_dims, B), b);
      return computed<Tensor<T, N>, int>{std::move(z).reshaped(zshape), 0};
    } else {
      auto act = detail::linear::activate_saving(activation,
                                                 std::move(z).reshaped(shape_t<2>{out_dims, B}), b);
      auto out2 = std::move(act.out);
      const auto xshape = xv.shape();
      const auto yshape = yv.shape();
      auto back = [self = *this, x2 = std::move(x2), y2 = std::move(y2), wy = std::move(wy),
                   act = std::move(act), w, b, B, xshape, yshape](const auto& dy) {
        const auto dyv = as_view(dy);
        require<shape_error>(dyv.numel() == self.out_dims * B, "Bilinear (", self.in1_dims, ", ",
                             self.in2_dims, ") => ", self.out_dims,
                             ": the output gradient has shape ", dyv.shape(), ", expected ", B,
                             " columns of ", self.out_dims);
        const auto dy2 = dyv.reshape(self.out_dims, B);
        auto g = detail::linear::activation_backward(self.activation, dy2, act, b);
        // z = Wy ⊠ x: ∂Wy (out, in1, B) and ∂x (in1, 1, B).
        auto g1 = batched_matmul_backward(g.dx.reshape(self.out_dims, 1, B),
                                          wy.reshape(self.out_dims, self.in1_dims, B),
                                          x2.reshape(self.in1_dims, 1, B));
        // Wy = W · y: ∂W (out·in1, in2) and ∂y (in2, B).
        const auto yview = [&] {
          if constexpr (pair_input)
            return as_view(y2);
          else
            return as_view(x2);
        }();
        auto g2 =
            batched_matmul_backward(g1.da.reshape(self.out_dims * self.in1_dims, B, 1),
                                    w.reshape(self.out_dims * self.in1_dims, self.in2_dims), yview);
        auto dweight =
            std::move(g2.da).reshaped(shape_t<3>{self.out_dims, self.in1_dims, self.in2_dims});
        auto dps = [&] {
          if constexpr (use_bias)
            return make_named_tuple<"weight", "bias">(std::move(dweight), std::move(g.dbias));
          else
            return make_named_tuple<"weight">(std::move(dweight));
        }();
        auto dx = std::move(g1.db).reshaped(xshape);
        if constexpr (pair_input) {
          return gradients{std::tuple{std::move(dx), std::move(g2.db).reshaped(yshape)},
                           std::move(dps)};
        } else {
          // x was used as both x and y: the two contributions add up.
          return gradients{detail::linear::add(std::move(dx), g2.db), std::move(dps)};
        }
      };
      return computed<Tensor<T, N>, decltype(back)>{std::move(out2).reshaped(zshape),
                                                    std::move(back)};
    }
  }
};

Bilinear(std::pair<std::pair<index_t, index_t>, index_t>)->Bilinear<>;
Bilinear(std::pair<index_t, index_t>)->Bilinear<>;
template <class F>
Bilinear(std::pair<std::pair<index_t, index_t>, index_t>, F) -> Bilinear<F>;
template <class F>
Bilinear(std::pair<index_t, index_t>, F) -> Bilinear<F>;
template <class F, class O>
Bilinear(std::pair<std::pair<index_t, index_t>, index_t>, F, O) -> Bilinear<F, true, O>;
template <class F, class O>
Bilinear(std::pair<index_t, index_t>, F, O) -> Bilinear<F, true, O>;

// =============================================================================================
// Embedding
// =============================================================================================

/// Embedding's keyword arguments (Lux's documented default: randn32).
template <class WInit = randn>
struct embedding_options {
  WInit init_weight{};
};

template <class Opts = embedding_options<>>
struct Embedding {
  using is_lux_layer = void;
  static constexpr const char* name = "Embedding";

  index_t in_dims = 0;
  index_t out_dims = 0;
  Opts options{};

  /// Embedding(in => out; options): a vocabulary of `in` vectors of length `out`.
  Embedding(std::pair<index_t, index_t> in_out, Opts opts = {})
      : in_dims(in_out.first), out_dims(in_out.second), options(opts) {
    require<argument_error>(in_dims > 0 && out_dims > 0,
                            "Embedding: dimensions must be positive, got ", in_dims, " => ",
                            out_dims);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    return make_named_tuple<"weight">(
        initialize<T>(options.init_weight, r, shape_t<2>{out_dims, in_dims}));
  }

  /// (out, in...) for indices of shape `in` (a rank-0 shape: one index → (out)).
  template <std::size_t N>
  shape_t<N + 1> output_shape(const shape_t<N>& in) const {
    shape_t<N + 1> out{};
    out[0] = out_dims;
    for (std::size_t d = 0; d < N; ++d) out[d + 1] = in[d];
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& idx, const PS& ps, const ST& st) const {
    const auto w = checked_weight(ps);
    if constexpr (std::is_integral_v<X>) {
      const Tensor<X, 1> one(shape_t<1>{1}, idx);
      auto y = wrap([&] { return embedding_lookup(w, one); });
      return std::pair{std::move(y).reshaped(shape_t<1>{out_dims}), st};
    } else {
      static_assert(is_array_v<X>,
                    "lux::Embedding: the input is an integer or an array of integers");
      return std::pair{wrap([&] { return embedding_lookup(w, idx); }), st};
    }
  }

  template <class X, class PS, class ST>
  auto pullback(const X& idx, const PS& ps, const ST& st) const {
    const auto w = checked_weight(ps);
    auto saved = [&] {  // the indices, owned by `back`
      if constexpr (std::is_integral_v<X>)
        return Tensor<X, 1>(shape_t<1>{1}, idx);
      else
        return copy(as_view(idx));
    }();
    auto y = wrap([&] { return embedding_lookup(w, saved); });
    const shape_t<2> ws = w.shape();
    auto back = [self = *this, saved = std::move(saved), ws](const auto& dy) {
      auto dw = self.wrap([&] {
        const auto dyv = as_view(dy);
        if constexpr (std::is_integral_v<X>) {
          require<shape_error>(dyv.numel() == self.out_dims, "embedding_lookup_backward: dy has ",
                               "shape ", dyv.shape(), ", expected (", self.out_dims, ")");
          return embedding_lookup_backward(dyv.reshape(self.out_dims, 1), saved, ws).dweight;
        } else {
          return embedding_lookup_backward(dy, saved, ws).dweight;
        }
      });
      return gradients{none, make_named_tuple<"weight">(std::move(dw))};
    };
    if constexpr (std::is_integral_v<X>)
      return pullback_result{std::move(y).reshaped(shape_t<1>{out_dims}), st, std::move(back)};
    else
      return pullback_result{std::move(y), st, std::move(back)};
  }

  void print(std::ostream& os) const { os << "Embedding(" << in_dims << " => " << out_dims << ")"; }

 private:
  template <class PS>
  auto checked_weight(const PS& ps) const {
    const auto w = as_view(ps.template get<"weight">());
    detail::check_parameter_shape(detail::concat("Embedding ", in_dims, " => ", out_dims), "weight",
                                  w, shape_t<2>{out_dims, in_dims});
    return w;
  }
  /// Runs a kernel call, prefixing its errors with the layer's short form.
  template <class Fn>
  auto wrap(Fn&& fn) const {
    try {
      return fn();
    } catch (const argument_error& e) {
      throw argument_error(detail::concat("Embedding ", in_dims, " => ", out_dims, ": ", e.what()));
    } catch (const shape_error& e) {
      throw shape_error(detail::concat("Embedding ", in_dims, " => ", out_dims, ": ", e.what()));
    }
  }
};

Embedding(std::pair<index_t, index_t>)->Embedding<>;
template <class O>
Embedding(std::pair<index_t, index_t>, O) -> Embedding<O>;

// =============================================================================================
// Scale
// =============================================================================================

/// Scale's keyword arguments (Lux's documented defaults: ones32, zeros32).
template <class WInit = ones, class BInit = zeros>
struct scale_options {
  WInit init_weight{};
  BInit init_bias{};
};

template <std::size_t K, class F = identity, bool UseBias = true, class Opts = scale_options<>>
struct Scale {
  using is_lux_layer = void;
  static constexpr const char* name = "Scale";
  static_assert(K >= 1, "lux::Scale: dims needs at least one size");
  static constexpr bool use_bias = UseBias;

  shape_t<K> dims{};
  F activation{};
  Opts options{};

  /// Scale((d1, ..., dK), σ; options) from a braced list: lux::Scale({3, 4}, lux::tanh_{}).
  Scale(const index_t (&d)[K], F act = {}, Opts opts = {}) : activation(act), options(opts) {
    for (std::size_t k = 0; k < K; ++k) dims[k] = d[k];
    validate();
  }
  /// Scale(dims, σ; options) from a shape.
  Scale(const shape_t<K>& d, F act = {}, Opts opts = {}) : dims(d), activation(act), options(opts) {
    validate();
  }
  /// Scale(d, σ; options): one dimension (a template, so that a braced list picks the above).
  template <std::integral I>
  requires(K == 1) Scale(I d, F act = {}, Opts opts = {})
      : dims{static_cast<index_t>(d)}, activation(act), options(opts) {
    validate();
  }

  template <class T>
  auto init_parameters(rng& r) const {
    auto w = initialize<T>(options.init_weight, r, dims);
    if constexpr (use_bias)
      return make_named_tuple<"weight", "bias">(std::move(w),
                                                initialize<T>(options.init_bias, r, dims));
    else
      return make_named_tuple<"weight">(std::move(w));
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    check_input(in);
    return in;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    const auto xv = as_view(x);
    check_input(xv.shape());
    check_params(ps);
    const index_t P = plane(), R = xv.numel() / P;
    auto z = scaled(xv, as_view(ps.template get<"weight">()), P, R);
    bias_activation_(activation, z.view(), bias_of(ps));
    return std::pair{std::move(z).reshaped(xv.shape()), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using T = typename array_traits<std::remove_cvref_t<X>>::value_type;
    const auto xv = as_view(x);
    check_input(xv.shape());
    check_params(ps);
    const index_t P = plane(), R = xv.numel() / P;
    const auto w = as_view(ps.template get<"weight">());
    const auto b = bias_of(ps);
    auto x2 = copy(xv.reshape(P, R));  // owned by `back`
    auto z = scaled(x2.cview(), w, P, R);
    auto act = detail::linear::activate_saving(activation, std::move(z), b);
    auto out = std::move(act.out);
    const auto xshape = xv.shape();
    auto back = [self = *this, x2 = std::move(x2), act = std::move(act), w, b, P, R,
                 xshape](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == xshape, "Scale ", self.dims,
                           ": the output gradient has shape ", dyv.shape(), ", expected ", xshape);
      const auto dy2 = dyv.reshape(P, R);
      auto g = detail::linear::activation_backward(self.activation, dy2, act, b);
      // z = x .* w: dx = dz .* w, dweight = Σ over the batch of dz .* x.
      auto dx = std::move(g.dx);
      auto dw = Tensor<T, 1>(shape_t<1>{P});
      for (index_t r = 0; r < R; ++r) {
        T* dxr = dx.data() + r * P;
        const T* xr = x2.data() + r * P;
        for (index_t p = 0; p < P; ++p) {
          dw.data()[p] += dxr[p] * xr[p];
          dxr[p] *= w.data()[p];
        }
      }
      auto dweight = std::move(dw).reshaped(self.dims);
      auto dps = [&] {
        if constexpr (use_bias)
          return make_named_tuple<"weight", "bias">(std::move(dweight),
                                                    std::move(g.dbias).reshaped(self.dims));
        else
          return make_named_tuple<"weight">(std::move(dweight));
      }();
      return gradients{std::move(dx).reshaped(xshape), std::move(dps)};
    };
    return pullback_result{std::move(out).reshaped(xshape), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    // Julia prints the dims tuple: (3, 4), and (3,) for one size.
    os << "Scale((";
    for (std::size_t k = 0; k < K; ++k) os << (k ? ", " : "") << dims[k];
    os << (K == 1 ? ",)" : ")");
    if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
    if constexpr (!use_bias) os << ", use_bias=false";
    os << ")";
  }

 private:
  void validate() const {
    bool ok = true;
    for (auto d : dims) ok = ok && d > 0;
    require<argument_error>(ok, "Scale: dimensions must be positive, got ", dims);
  }
  index_t plane() const {
    index_t p = 1;
    for (auto d : dims) p *= d;
    return p;
  }
  template <std::size_t N>
  void check_input(const shape_t<N>& in) const {
    static_assert(N >= K, "lux::Scale: the input needs at least as many dimensions as dims");
    bool ok = true;
    for (std::size_t k = 0; k < K; ++k) ok = ok && in[k] == dims[k];
    require<shape_error>(ok, "Scale ", dims, ": expected input (", dims_text(),
                         N > K ? ", B...)" : ")", ", got ", in);
  }
  std::string dims_text() const {
    std::string s;
    for (std::size_t k = 0; k < K; ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
    return s;
  }
  template <class PS>
  void check_params(const PS& ps) const {
    const auto prefix = detail::concat("Scale ", dims);
    detail::check_parameter_shape(prefix, "weight", ps.template get<"weight">(), dims);
    if constexpr (use_bias)
      detail::check_parameter_shape(prefix, "bias", ps.template get<"bias">(), dims);
  }
  template <class PS>
  auto bias_of(const PS& ps) const {
    if constexpr (use_bias)
      return as_view(ps.template get<"bias">()).reshape(plane());
    else
      return none;
  }
  /// x .* w as a (P, R) matrix (w broadcast over the R = batch columns).
  template <class XV, class WV>
  static auto scaled(const XV& xv, const WV& w, index_t P, index_t R) {
    using T = typename array_traits<std::remove_cvref_t<XV>>::value_type;
    auto z = Tensor<T, 2>::uninitialized(shape_t<2>{P, R});
    const auto x2 = xv.reshape(P, R);
    for (index_t r = 0; r < R; ++r)
      for (index_t p = 0; p < P; ++p) z.data()[p + P * r] = x2.data()[p + P * r] * w.data()[p];
    return z;
  }
};

template <std::size_t K>
Scale(const index_t (&)[K]) -> Scale<K>;
template <std::size_t K, class F>
Scale(const index_t (&)[K], F) -> Scale<K, F>;
template <std::size_t K, class F, class O>
Scale(const index_t (&)[K], F, O) -> Scale<K, F, true, O>;
template <std::size_t K>
Scale(const shape_t<K>&) -> Scale<K>;
template <std::size_t K, class F>
Scale(const shape_t<K>&, F) -> Scale<K, F>;
template <std::size_t K, class F, class O>
Scale(const shape_t<K>&, F, O) -> Scale<K, F, true, O>;
template <std::integral I>
Scale(I) -> Scale<1>;
template <std::integral I, class F>
Scale(I, F) -> Scale<1, F>;
template <std::integral I, class F, class O>
Scale(I, F, O) -> Scale<1, F, true, O>;

LUX_NAMESPACE_END
