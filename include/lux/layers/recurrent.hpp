// luxcpp — Lux's recurrent layers: RNNCell, LSTMCell, GRUCell, Recurrence, StatefulRecurrentCell.
//
//   lux::RNNCell({3, 5})                          RNNCell(3 => 5, tanh)
//   lux::LSTMCell({3, 5})                         LSTMCell(3 => 5)
//   lux::GRUCell({3, 5}, {.init_weight = lux::glorot_uniform{}})
//   lux::LSTMCell<lux::recurrent_flags{.use_bias = false, .train_state = true}>({3, 5})
//   lux::Recurrence(cell)                          last output of a sequence
//   lux::Recurrence(cell, lux::return_sequence, {.ordering = lux::time_last_index})
//   lux::StatefulRecurrentCell(cell)
//
// Cells (o = out_dims, G = 1 / 4 / 3 gates, blocks stacked along the rows):
//   zi = weight_ih x + bias_ih,  zh = weight_hh h + bias_hh            (G·o, B)
//   RNNCell   h' = σ(zi + zh)
//   LSTMCell  [i; f; g; o] = [σ; σ; tanh; σ](zi + zh), c' = f⊙c + i⊙g, h' = o⊙tanh(c')
//   GRUCell   [r; z; n]: r = σ(zi_r + zh_r), z = σ(zi_z + zh_z), n = tanh(zi_n + r⊙zh_n),
//             h' = (1 − z)⊙n + z⊙h       (n uses r ⊙ (W_hn h + b_hn), as Lux and PyTorch)
// ps: weight_ih (G·o, in), weight_hh (G·o, o), bias_ih (G·o), bias_hh (G·o) [use_bias],
//     hidden_state (o) [train_state], memory (o) [LSTM, train_memory] — Lux ≥ 1.0's code
//     (Lux 1.x's source). The older names of Lux's "Built-In Layers" documentation (weight_i, weight_h, one `bias`) are
//     not used: its single bias is the sum bias_ih + bias_hh here, as in Lux 1.x and PyTorch.
// st: (rng,). The structural options use_bias / train_state / train_memory change the parameter
//     tree's type, so they are a compile-time lux::recurrent_flags argument; initializers are the
//     run-time options (lux::recurrent_cell_options).
// Inputs: x (in, B) (a vector (in) is treated as (in, 1); outputs are then (o, 1) matrices), or
//   std::tuple{x, std::tuple{h}} (RNN/GRU), std::tuple{x, std::tuple{h, c}} (LSTM); h, c (o, B).
//   With x alone the carry is init_state(rng, (o, B)) [init_memory for c] drawn from a copy of
//   st.rng that is stored back (st.rng advances when the initializer draws), or ps.hidden_state
//   / ps.memory repeated over B when trained.
// Output: std::tuple{h', std::tuple{h'}} or std::tuple{h', std::tuple{h', c'}} (Lux's (h′, (h′,
// c′))). back(dy): dy with the same nested structure; any component (or the whole carry part) may
// be
//   lux::none (= zero); a plain array dy is the output gradient alone. dx is x's gradient for the
//   x-only form (x's shape), std::tuple{dx, std::tuple{dh[, dc]}} for the tuple form. dps has ps's
//   structure; hidden_state / memory get Σ_B of the carry gradient in the x-only form and zeros
//   in the tuple form (where they are unused).
//
// Initialization — a deliberate choice (⚠ Lux 1.x's source): the interface is the documented one
//   (init_weight / init_bias take one initializer for the whole matrix or one per gate, in gate
//   order; init_state, init_memory), but the default for weights and biases is the
//   U(−1/√o, 1/√o) that Lux's code intends ("Default from PyTorch") and PyTorch uses — not the
//   (randn − 0.5)·2/√o its code actually computes (a shifted Gaussian), nor the document's
//   glorot_uniform / zeros / (zeros, zeros, ones, zeros) (pass those explicitly if wanted).
//   init_state and init_memory default to zeros (Lux's code; the RNNCell docstring says ones32).
//
// Recurrence(cell): a wrapper (ps / st are the cell's, not nested). Array input: ordering
//   batch_last_index (default) takes (F, T, B) and slices dim 1, time_last_index takes (F, B, T);
//   a matrix is (F, T) (batch 1) for both. A std::vector of (F, B) arrays is fed in order. Step 1
//   uses the x-only form (fresh carry), later steps (x_t, carry). Output: the last h, or (with
//   lux::return_sequence — compile-time, as it changes the output type) a std::vector of every h.
//   back(dy) (dy: (o, B), or a std::vector of them) runs back-propagation through time; dx has
//   x's layout (array of x's shape, or a std::vector).
//
// StatefulRecurrentCell(cell): st = (cell = the cell's st, carry). The carry is a
//   lux::recurrent_carry<T, K> (K = 1 for RNN/GRU, 2 for LSTM; T fixed at setup<T>) holding the
//   carry tensors and a `present` flag, so st's type never changes. Without a carry the cell runs
//   in the x-only form; afterwards the new carry is kept. Reset it with Lux's idiom
//   `st = lux::update_state(st, "carry", lux::none)`. The output is h' alone. pullback is for one
//   step: the kept carry is a constant (truncated BPTT); dx is x's gradient.
//
// Kernels: the two products per step are lux::fused_dense_bias_activation (identity, bias
// fused) and its backward; RNNCell's σ is fast_activation / activation_backward. The LSTM / GRU
// gate nonlinearities act on row blocks of a (G·o, B) matrix (not contiguous per gate), so they
// are one elementwise loop with the scalar lux::sigmoid / lux::tanh_ functors.
// back keeps views of ps: keep ps alive and unchanged until back is called.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/error.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/activation.hpp"
#include "lux/kernels/dense.hpp"
#include "lux/layers/initializers.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// Compile-time structure of a recurrent cell's parameters (Lux's use_bias / train_state /
/// train_memory keywords): lux::LSTMCell<lux::recurrent_flags{.train_state = true}>.
struct recurrent_flags {
  bool use_bias = true;
  bool train_state = false;
  bool train_memory = false;  // LSTMCell only
};

/// Any initializer of lux/layers/initializers.hpp, type-erased (values are drawn in double and
/// rounded to T, which is what the initializers do internally). Default-constructed: the
/// recurrent default U(−1/√out, 1/√out).
class rnn_initializer {
 public:
  rnn_initializer() = default;
  template <class Init>
  requires(!std::is_same_v<std::remove_cvref_t<Init>, rnn_initializer> &&
           requires(const Init& i, rng& r) {
             i.template operator()<double>(r, shape_t<2>{});
             i.template operator()<double>(r, shape_t<1>{});
           }) rnn_initializer(const Init& init)  // NOLINT: implicit on purpose
      : f1_([init](rng& r, const shape_t<1>& s) { return init.template operator()<double>(r, s); }),
        f2_([init](rng& r, const shape_t<2>& s) { return init.template operator()<double>(r, s); }),
        name_(Init::name) {
    static_assert(!std::is_same_v<Init, orthogonal>,
                  "lux::rnn_initializer: orthogonal needs a matrix; biases and states are vectors");
  }

  bool is_default() const { return !f2_; }
  const std::string& name() const { return name_; }

  /// Values of shape s for element type T; `hidden` is o, the default's scale.
  template <class T, std::size_t N>
  Tensor<T, N> make(rng& r, const shape_t<N>& s, index_t hidden) const {
    static_assert(N == 1 || N == 2);
    Tensor<double, N> d;
    if (is_default()) {
      const double b = 1.0 / std::sqrt(static_cast<double>(hidden));
      d = uniform_range{-b, b}.template operator()<double>(r, s);
    } else if constexpr (N == 1) {
      d = f1_(r, s);
    } else {
      d = f2_(r, s);
    }
    if constexpr (std::is_same_v<T, double>) {
      return d;
    } else {
      auto t = Tensor<T, N>::uninitialized(s);
      for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(d.data()[i]);
      return t;
    }
  }

 private:
  std::function<Tensor<double, 1>(rng&, const shape_t<1>&)> f1_;
  std::function<Tensor<double, 2>(rng&, const shape_t<2>&)> f2_;
  std::string name_ = "default";
};

/// One initializer for the whole stacked matrix / vector, or one per gate (in gate order).
struct gate_initializer {
  std::vector<rnn_initializer> per_gate = std::vector<rnn_initializer>(1);
  gate_initializer() = default;
  template <class Init>
  requires std::is_constructible_v<rnn_initializer, const Init&> gate_initializer(
      const Init& init)  // NOLINT: implicit on purpose
      : per_gate{rnn_initializer(init)} {}
  gate_initializer(std::initializer_list<rnn_initializer> inits) : per_gate(inits) {}
};

/// Run-time options of RNNCell / LSTMCell / GRUCell (init_memory: LSTMCell only).
struct recurrent_cell_options {
  gate_initializer init_weight{};
  gate_initializer init_bias{};
  rnn_initializer init_state = zeros{};
  rnn_initializer init_memory = zeros{};
};

// ---------------------------------------------------------------------------------------------
// Shared implementation
// ---------------------------------------------------------------------------------------------
namespace detail::rnn {
/// out[k] = f(in0[k], in1[k], ...) over k in [0, n): xsimd batches for float and double (the
/// gate nonlinearities are most of a cell's non-GEMM time), a scalar loop for other types.
template <class T, class F, class... In>
void gate_map(index_t n, T* out, F&& f, const In*... in) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>)
    simd::transform(n, out, f, in...);
  else
    for (index_t k = 0; k < n; ++k) out[k] = f(in[k]...);
}
template <class X>
struct is_std_tuple : std::false_type {};
template <class... A>
struct is_std_tuple<std::tuple<A...>> : std::true_type {};
template <class X>
inline constexpr bool is_std_tuple_v = is_std_tuple<std::remove_cvref_t<X>>::value;

template <class X>
using value_t = typename array_traits<std::remove_cvref_t<X>>::value_type;
template <class X>
inline constexpr std::size_t rank_v = array_traits<std::remove_cvref_t<X>>::rank;

/// The element type of a cell input (x or std::tuple{x, carry}).
template <class X>
struct input_value {
  using type = value_t<X>;
};
template <class X, class C>
struct input_value<std::tuple<X, C>> {
  using type = value_t<X>;
};
template <class X>
using input_value_t = typename input_value<std::remove_cvref_t<X>>::type;

/// Builds a named_tuple from a std::tuple of named_field values.
template <class Tup>
auto to_named(Tup&& t) {
  return std::apply(
      [](auto&&... f) { return named_tuple<std::remove_cvref_t<decltype(f)>...>(std::move(f)...); },
      std::forward<Tup>(t));
}

/// x += g where g is an array of numel x's, or nothing when g is lux::none.
template <class T, class G>
void add_into(Tensor<T, 2>& acc, const G& g, const char* prefix, const char* what) {
  if constexpr (!is_absent_v<G>) {
    const auto v = as_view(g);
    require<shape_error>(v.numel() == acc.numel(), prefix, ": the gradient of ", what,
                         " has shape ", v.shape(), ", expected ", acc.shape());
    const auto c = copy(v);
    for (index_t i = 0; i < acc.numel(); ++i) acc.data()[i] += c.data()[i];
  }
}

/// The elementwise part of a step: what back needs besides x, h and ps.
template <class T>
struct step_saved {
  Tensor<T, 2> a;   // RNN: pre-activation; LSTM / GRU: activated gates (G·o, B)
  Tensor<T, 2> b;   // RNN: h'; LSTM: tanh(c'); GRU: zh_n = W_hn h + b_hn
  Tensor<T, 2> c0;  // LSTM: c
};
template <class T>
struct step_grads {
  Tensor<T, 2> dzi, dzh;   // dzh empty: same as dzi
  Tensor<T, 2> dh_direct;  // empty: none
  Tensor<T, 2> dc;         // LSTM: dc
};
}  // namespace detail::rnn

template <class Derived, recurrent_flags Flags, index_t Gates, std::size_t CarrySize>
struct recurrent_cell_base {
  using is_lux_layer = void;
  static constexpr recurrent_flags flags = Flags;
  static constexpr index_t gates = Gates;
  static constexpr std::size_t carry_size = CarrySize;
  static_assert(CarrySize == 2 || !Flags.train_memory,
                "lux: train_memory is an LSTMCell option (the cell has no memory)");

  index_t in_dims = 0;
  index_t out_dims = 0;
  recurrent_cell_options options{};

  recurrent_cell_base(std::pair<index_t, index_t> in_out, recurrent_cell_options opts)
      : in_dims(in_out.first), out_dims(in_out.second), options(std::move(opts)) {
    require<argument_error>(in_dims > 0 && out_dims > 0, Derived::name,
                            ": dimensions must be positive, got ", in_dims, " => ", out_dims);
    const auto ok = [](const gate_initializer& g) {
      return g.per_gate.size() == 1 || g.per_gate.size() == static_cast<std::size_t>(Gates);
    };
    require<argument_error>(
        ok(options.init_weight) && ok(options.init_bias), Derived::name,
        ": init_weight and init_bias take 1 or ", Gates, " initializers (one per gate), got ",
        options.init_weight.per_gate.size(), " and ", options.init_bias.per_gate.size());
  }

  // --- parameters and states -----------------------------------------------------------------
  template <class T>
  auto init_parameters(rng& r) const {
    const index_t o = out_dims, go = Gates * out_dims;
    auto wih = init_matrix<T>(options.init_weight, r, go, in_dims);
    auto whh = init_matrix<T>(options.init_weight, r, go, o);
    Tensor<T, 1> bih, bhh, hs, mem;
    if constexpr (Flags.use_bias) {
      bih = init_vector<T>(options.init_bias, r, go);
      bhh = init_vector<T>(options.init_bias, r, go);
    }
    if constexpr (Flags.train_state) hs = options.init_state.template make<T>(r, shape_t<1>{o}, o);
    if constexpr (Flags.train_memory)
      mem = options.init_memory.template make<T>(r, shape_t<1>{o}, o);
    return assemble(std::move(wih), std::move(whh), std::move(bih), std::move(bhh), std::move(hs),
                    std::move(mem));
  }
  /// (rng,): a child stream of r (r advances), as Lux's sample_replicate.
  auto init_states(rng& r) const {
    auto child = r.split(0);
    r.advance();
    return make_named_tuple<"rng">(child);
  }

  /// (out, B) for an (in, B) input, (out, 1) for a vector (in).
  template <std::size_t N>
  shape_t<2> output_shape(const shape_t<N>& in) const {
    static_assert(N == 1 || N == 2, "recurrent cell: the input is (in) or (in, B)");
    check_input(in);
    return shape_t<2>{out_dims, N == 2 ? in[N - 1] : 1};
  }

  // --- running --------------------------------------------------------------------------------
  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    using T = detail::rnn::input_value_t<X>;
    check_params(ps);
    auto [xs, carry, st2] = prepare<T>(x, ps, st);
    auto zi = dense_part<T>(ps.template get<"weight_ih">(), xs, bias_ih(ps));
    auto zh = dense_part<T>(ps.template get<"weight_hh">(), carry[0], bias_hh(ps));
    detail::rnn::step_saved<T> saved;
    auto out = self().template step_forward<T>(zi, zh, carry, saved);
    return std::pair{make_output(std::move(out)), std::move(st2)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    using T = detail::rnn::input_value_t<X>;
    constexpr bool tuple_form = detail::rnn::is_std_tuple_v<X>;
    check_params(ps);
    auto [xs, carry, st2] = prepare<T>(x, ps, st);
    auto zi = dense_part<T>(ps.template get<"weight_ih">(), xs, bias_ih(ps));
    auto zh = dense_part<T>(ps.template get<"weight_hh">(), carry[0], bias_hh(ps));
    detail::rnn::step_saved<T> saved;
    auto out = self().template step_forward<T>(zi, zh, carry, saved);
    const auto xshape = [&] {
      if constexpr (tuple_form)
        return as_view(std::get<0>(x)).shape();
      else
        return as_view(x).shape();
    }();
    const auto wih = as_view(ps.template get<"weight_ih">());
    const auto whh = as_view(ps.template get<"weight_hh">());
    const auto bih = bias_ih(ps);
    const auto bhh = bias_hh(ps);
    const index_t batch = xs.size(1);
    auto back = [cell = this->self(), xs = std::move(xs), carry = std::move(carry),
                 saved = std::move(saved), wih, whh, bih, bhh, xshape, batch](const auto& dy) {
      const auto prefix = cell.prefix();
      Tensor<T, 2> dh(cell.out_dims, batch), dc;
      if constexpr (CarrySize == 2) dc = Tensor<T, 2>(cell.out_dims, batch);
      cell.parse_dy(dy, dh, dc, prefix.c_str());
      auto g = cell.template step_backward<T>(saved, carry, dh, dc);
      const identity id{};
      auto gi =
          fused_dense_bias_activation_backward(id, g.dzi, wih, xs, bih, none, dense_saved<T>{});
      auto gh = fused_dense_bias_activation_backward(id, g.dzh.numel() ? g.dzh : g.dzi, whh,
                                                     carry[0], bhh, none, dense_saved<T>{});
      auto dh0 = std::move(gh.dx);
      if (g.dh_direct.numel())
        for (index_t i = 0; i < dh0.numel(); ++i) dh0.data()[i] += g.dh_direct.data()[i];
      const index_t o = cell.out_dims;
      Tensor<T, 1> dhs, dmem;
      if constexpr (Flags.train_state) dhs = tuple_form ? Tensor<T, 1>(o) : sum_batch(dh0);
      if constexpr (Flags.train_memory) dmem = tuple_form ? Tensor<T, 1>(o) : sum_batch(g.dc);
      auto dps = assemble(std::move(gi.dweight), std::move(gh.dweight), std::move(gi.dbias),
                          std::move(gh.dbias), std::move(dhs), std::move(dmem));
      auto dx = std::move(gi.dx).reshaped(xshape);
      if constexpr (tuple_form) {
        if constexpr (CarrySize == 1)
          return gradients{std::tuple{std::move(dx), std::tuple{std::move(dh0)}}, std::move(dps)};
        else
          return gradients{std::tuple{std::move(dx), std::tuple{std::move(dh0), std::move(g.dc)}},
                           std::move(dps)};
      } else {
        return gradients{std::move(dx), std::move(dps)};
      }
    };
    return pullback_result{make_output(std::move(out)), std::move(st2), std::move(back)};
  }

  /// "LSTMCell 3 => 5", the prefix of error messages.
  std::string prefix() const {
    return std::string(Derived::name) + " " + std::to_string(in_dims) + " => " +
           std::to_string(out_dims);
  }

 protected:
  const Derived& self() const { return static_cast<const Derived&>(*this); }

  void print_flags(std::ostream& os) const {
    if constexpr (!Flags.use_bias) os << ", use_bias=false";
    if constexpr (Flags.train_state) os << ", train_state=true";
    if constexpr (Flags.train_memory) os << ", train_memory=true";
  }

 public:  // helpers (used through the derived cell inside back)
  template <class T>
  Tensor<T, 2> init_matrix(const gate_initializer& g, rng& r, index_t rows, index_t cols) const {
    if (g.per_gate.size() == 1)
      return g.per_gate[0].template make<T>(r, shape_t<2>{rows, cols}, out_dims);
    Tensor<T, 2> w(rows, cols);
    const index_t o = out_dims;
    for (index_t k = 0; k < Gates; ++k) {
      auto block =
          g.per_gate[static_cast<std::size_t>(k)].template make<T>(r, shape_t<2>{o, cols}, o);
      for (index_t j = 0; j < cols; ++j)
        for (index_t i = 0; i < o; ++i) w(k * o + i, j) = block(i, j);
    }
    return w;
  }
  template <class T>
  Tensor<T, 1> init_vector(const gate_initializer& g, rng& r, index_t n) const {
    if (g.per_gate.size() == 1) return g.per_gate[0].template make<T>(r, shape_t<1>{n}, out_dims);
    Tensor<T, 1> b(n);
    const index_t o = out_dims;
    for (index_t k = 0; k < Gates; ++k) {
      auto block = g.per_gate[static_cast<std::size_t>(k)].template make<T>(r, shape_t<1>{o}, o);
      for (index_t i = 0; i < o; ++i) b[k * o + i] = block[i];
    }
    return b;
  }

  /// ps / dps in Lux's field order; fields absent for these flags are dropped.
  template <class M, class V>
  static auto assemble(M wih, M whh, V bih, V bhh, V hs, V mem) {
    auto w = std::tuple{field<"weight_ih">(std::move(wih)), field<"weight_hh">(std::move(whh))};
    auto wb = [&] {
      if constexpr (Flags.use_bias)
        return std::tuple_cat(std::move(w), std::tuple{field<"bias_ih">(std::move(bih)),
                                                       field<"bias_hh">(std::move(bhh))});
      else
        return std::move(w);
    }();
    auto wbs = [&] {
      if constexpr (Flags.train_state)
        return std::tuple_cat(std::move(wb), std::tuple{field<"hidden_state">(std::move(hs))});
      else
        return std::move(wb);
    }();
    auto all = [&] {
      if constexpr (Flags.train_memory)
        return std::tuple_cat(std::move(wbs), std::tuple{field<"memory">(std::move(mem))});
      else
        return std::move(wbs);
    }();
    return detail::rnn::to_named(std::move(all));
  }

  template <class PS>
  static auto bias_ih(const PS& ps) {
    if constexpr (Flags.use_bias)
      return as_view(ps.template get<"bias_ih">());
    else
      return none;
  }
  template <class PS>
  static auto bias_hh(const PS& ps) {
    if constexpr (Flags.use_bias)
      return as_view(ps.template get<"bias_hh">());
    else
      return none;
  }

  template <class T, class W, class X, class B>
  static Tensor<T, 2> dense_part(const W& w, const X& x, const B& b) {
    return fused_dense_bias_activation(identity{}, w, x, b);
  }

  template <class T>
  static Tensor<T, 1> sum_batch(const Tensor<T, 2>& g) {
    Tensor<T, 1> s(g.size(0));
    for (index_t j = 0; j < g.size(1); ++j)
      for (index_t i = 0; i < g.size(0); ++i) s[i] += g(i, j);
    return s;
  }

  template <std::size_t N>
  void check_input(const shape_t<N>& in) const {
    require<shape_error>(in[0] == in_dims, prefix(), ": expected input (", in_dims,
                         N > 1 ? ", B" : "", "), got ", in);
  }
  template <class P, std::size_t N>
  void check_param(const P& p, const char* field_name, const shape_t<N>& expected) const {
    detail::check_parameter_shape(prefix(), field_name, p, expected);
  }
  template <class PS>
  void check_params(const PS& ps) const {
    const index_t o = out_dims, go = Gates * out_dims;
    check_param(ps.template get<"weight_ih">(), "weight_ih", shape_t<2>{go, in_dims});
    check_param(ps.template get<"weight_hh">(), "weight_hh", shape_t<2>{go, o});
    if constexpr (Flags.use_bias) {
      check_param(ps.template get<"bias_ih">(), "bias_ih", shape_t<1>{go});
      check_param(ps.template get<"bias_hh">(), "bias_hh", shape_t<1>{go});
    }
    if constexpr (Flags.train_state)
      check_param(ps.template get<"hidden_state">(), "hidden_state", shape_t<1>{o});
    if constexpr (Flags.train_memory)
      check_param(ps.template get<"memory">(), "memory", shape_t<1>{o});
  }

  /// x as an owned (in, B) matrix.
  template <class T, class X>
  Tensor<T, 2> input_matrix(const X& x) const {
    static_assert(std::is_same_v<detail::rnn::value_t<X>, T>,
                  "recurrent cell: x and the carry must have the same element type");
    constexpr std::size_t N = detail::rnn::rank_v<X>;
    static_assert(N == 1 || N == 2, "recurrent cell: x must be (in) or (in, B)");
    const auto v = as_view(x);
    check_input(v.shape());
    if constexpr (N == 1)
      return copy(v).reshaped(shape_t<2>{v.shape()[0], 1});
    else
      return copy(v);
  }
  template <class T, class H>
  Tensor<T, 2> carry_matrix(const H& h, index_t batch, const char* what) const {
    static_assert(std::is_same_v<detail::rnn::value_t<H>, T> && detail::rnn::rank_v<H> <= 2,
                  "recurrent cell: a carry must be an (out, B) array of x's element type");
    const auto v = as_view(h);
    const bool ok = v.shape()[0] == out_dims && v.numel() == out_dims * batch;
    require<shape_error>(ok, prefix(), ": expected ", what, " (", out_dims, ", ", batch, "), got ",
                         v.shape());
    return copy(v).reshaped(shape_t<2>{out_dims, batch});
  }
  template <class T, class P>
  static Tensor<T, 2> repeat(const P& p, index_t batch) {
    const auto v = as_view(p);
    Tensor<T, 2> out(v.shape()[0], batch);
    for (index_t j = 0; j < batch; ++j)
      for (index_t i = 0; i < v.shape()[0]; ++i) out(i, j) = v(i);
    return out;
  }

  /// {x (in, B), carry, st'}.
  template <class T, class X, class PS, class ST>
  auto prepare(const X& x, const PS& ps, const ST& st) const {
    std::array<Tensor<T, 2>, CarrySize> carry;
    ST st2 = st;
    if constexpr (detail::rnn::is_std_tuple_v<X>) {
      using C = std::remove_cvref_t<std::tuple_element_t<1, std::remove_cvref_t<X>>>;
      static_assert(detail::rnn::is_std_tuple_v<C> && std::tuple_size_v<C> == CarrySize,
                    "recurrent cell: the carry is std::tuple{h} (RNNCell, GRUCell) or "
                    "std::tuple{h, c} (LSTMCell)");
      auto xs = input_matrix<T>(std::get<0>(x));
      const index_t batch = xs.size(1);
      const auto& c = std::get<1>(x);
      carry[0] = carry_matrix<T>(std::get<0>(c), batch, "hidden state");
      if constexpr (CarrySize == 2) carry[1] = carry_matrix<T>(std::get<1>(c), batch, "memory");
      return std::tuple{std::move(xs), std::move(carry), std::move(st2)};
    } else {
      auto xs = input_matrix<T>(x);
      const index_t batch = xs.size(1), o = out_dims;
      rng r = st.template get<"rng">();
      if constexpr (Flags.train_state)
        carry[0] = repeat<T>(ps.template get<"hidden_state">(), batch);
      else
        carry[0] = options.init_state.template make<T>(r, shape_t<2>{o, batch}, o);
      if constexpr (CarrySize == 2) {
        if constexpr (Flags.train_memory)
          carry[1] = repeat<T>(ps.template get<"memory">(), batch);
        else
          carry[1] = options.init_memory.template make<T>(r, shape_t<2>{o, batch}, o);
      }
      st2.template get<"rng">() = r;
      return std::tuple{std::move(xs), std::move(carry), std::move(st2)};
    }
  }

  template <class T>
  static auto make_output(std::array<Tensor<T, 2>, CarrySize> out) {
    auto h = out[0];
    if constexpr (CarrySize == 1)
      return std::tuple{std::move(h), std::tuple{std::move(out[0])}};
    else
      return std::tuple{std::move(h), std::tuple{std::move(out[0]), std::move(out[1])}};
  }

  /// dh += output and carry gradients; dc += memory gradient (each may be lux::none).
  template <class DY, class T>
  void parse_dy(const DY& dy, Tensor<T, 2>& dh, Tensor<T, 2>& dc, const char* p) const {
    using detail::rnn::add_into;
    if constexpr (is_absent_v<DY>) {
    } else if constexpr (!detail::rnn::is_std_tuple_v<DY>) {
      add_into(dh, dy, p, "the output");
    } else {
      static_assert(
          std::tuple_size_v<DY> == 2,
          "recurrent cell: dy is std::tuple{dh, std::tuple{dh[, dc]}} (or lux::none parts)");
      add_into(dh, std::get<0>(dy), p, "the output");
      using C = std::remove_cvref_t<std::tuple_element_t<1, DY>>;
      if constexpr (!is_absent_v<C>) {
        static_assert(detail::rnn::is_std_tuple_v<C> && std::tuple_size_v<C> == CarrySize,
                      "recurrent cell: the carry gradient must have the carry's structure");
        add_into(dh, std::get<0>(std::get<1>(dy)), p, "the hidden state");
        if constexpr (CarrySize == 2) add_into(dc, std::get<1>(std::get<1>(dy)), p, "the memory");
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// RNNCell
// ---------------------------------------------------------------------------------------------

/// Elman cell: h' = σ(weight_ih x + bias_ih + weight_hh h + bias_hh).
template <class F = tanh_, recurrent_flags Flags = recurrent_flags{}>
struct RNNCell : recurrent_cell_base<RNNCell<F, Flags>, Flags, 1, 1> {
  using base = recurrent_cell_base<RNNCell<F, Flags>, Flags, 1, 1>;
  static constexpr const char* name = "RNNCell";
  F activation{};

  RNNCell(std::pair<index_t, index_t> in_out, F act = {}, recurrent_cell_options opts = {})
      : base(in_out, std::move(opts)), activation(act) {}

  template <class T>
  std::array<Tensor<T, 2>, 1> step_forward(Tensor<T, 2>& zi, const Tensor<T, 2>& zh,
                                           const std::array<Tensor<T, 2>, 1>&,
                                           detail::rnn::step_saved<T>& saved) const {
    for (index_t i = 0; i < zi.numel(); ++i) zi.data()[i] += zh.data()[i];
    auto h = fast_activation(activation, zi);
    saved.a = std::move(zi);
    saved.b = h;
    return {std::move(h)};
  }
  template <class T>
  detail::rnn::step_grads<T> step_backward(const detail::rnn::step_saved<T>& saved,
                                           const std::array<Tensor<T, 2>, 1>&,
                                           const Tensor<T, 2>& dh, const Tensor<T, 2>&) const {
    detail::rnn::step_grads<T> g;
    g.dzi = activation_backward(activation, dh, saved.a, saved.b).dx;
    return g;
  }

  void print(std::ostream& os) const {
    os << "RNNCell(" << this->in_dims << " => " << this->out_dims;
    if constexpr (!activation_traits<F>::is_identity) os << ", " << F::name;
    this->print_flags(os);
    os << ")";
  }
};
RNNCell(std::pair<index_t, index_t>)->RNNCell<>;
template <class F>
RNNCell(std::pair<index_t, index_t>, F) -> RNNCell<F>;
template <class F>
RNNCell(std::pair<index_t, index_t>, F, recurrent_cell_options) -> RNNCell<F>;

// ---------------------------------------------------------------------------------------------
// LSTMCell
// ---------------------------------------------------------------------------------------------

/// Long short-term memory cell, gate blocks [i; f; g; o].
template <recurrent_flags Flags = recurrent_flags{}>
struct LSTMCell : recurrent_cell_base<LSTMCell<Flags>, Flags, 4, 2> {
  using base = recurrent_cell_base<LSTMCell<Flags>, Flags, 4, 2>;
  static constexpr const char* name = "LSTMCell";

  LSTMCell(std::pair<index_t, index_t> in_out, recurrent_cell_options opts = {})
      : base(in_out, std::move(opts)) {}

  template <class T>
  std::array<Tensor<T, 2>, 2> step_forward(Tensor<T, 2>& a, const Tensor<T, 2>& zh,
                                           const std::array<Tensor<T, 2>, 2>& carry,
                                           detail::rnn::step_saved<T>& saved) const {
    const index_t o = this->out_dims, B = a.size(1);
    const sigmoid sg{};
    const tanh_ th{};
    auto h = Tensor<T, 2>::uninitialized(shape_t<2>{o, B}),
         c = Tensor<T, 2>::uninitialized(shape_t<2>{o, B}),
         tc = Tensor<T, 2>::uninitialized(shape_t<2>{o, B});
    const auto sig_sum = [&](const auto& u, const auto& v) { return sg(u + v); };
    const auto tanh_sum = [&](const auto& u, const auto& v) { return th(u + v); };
    // Each gate is a contiguous block of o rows in every column of a (4o, B).
    for (index_t j = 0; j < B; ++j) {
      T* col = a.data() + j * 4 * o;
      const T* zc = zh.data() + j * 4 * o;
      T *cj = c.data() + j * o, *tcj = tc.data() + j * o, *hj = h.data() + j * o;
      using detail::rnn::gate_map;
      gate_map(o, col, sig_sum, col, zc);                           // i
      gate_map(o, col + o, sig_sum, col + o, zc + o);               // f
      gate_map(o, col + 2 * o, tanh_sum, col + 2 * o, zc + 2 * o);  // g
      gate_map(o, col + 3 * o, sig_sum, col + 3 * o, zc + 3 * o);   // o
      gate_map(
          o, cj,
          [](const auto& f, const auto& c0, const auto& i, const auto& g) {
            return f * c0 + i * g;
          },
          col + o, carry[1].data() + j * o, col, col + 2 * o);
      gate_map(o, tcj, th, cj);
      gate_map(
          o, hj, [](const auto& og, const auto& t) { return og * t; }, col + 3 * o, tcj);
    }
    saved.a = std::move(a);
    saved.b = std::move(tc);
    saved.c0 = carry[1];
    return {std::move(h), std::move(c)};
  }
  template <class T>
  detail::rnn::step_grads<T> step_backward(const detail::rnn::step_saved<T>& s,
                                           const std::array<Tensor<T, 2>, 2>&,
                                           const Tensor<T, 2>& dh,
                                           const Tensor<T, 2>& dc_in) const {
    const index_t o = this->out_dims, B = dh.size(1);
    detail::rnn::step_grads<T> g;
    g.dzi = Tensor<T, 2>::uninitialized(s.a.shape());
    g.dc = Tensor<T, 2>::uninitialized(dh.shape());
    for (index_t j = 0; j < B; ++j)
      for (index_t k = 0; k < o; ++k) {
        const T* col = s.a.data() + j * 4 * o;
        T* d = g.dzi.data() + j * 4 * o;
        const T i = col[k], f = col[o + k], gg = col[2 * o + k], og = col[3 * o + k];
        const T tc = s.b(k, j);
        const T dcn = dc_in(k, j) + dh(k, j) * og * (T(1) - tc * tc);
        d[k] = dcn * gg * i * (T(1) - i);
        d[o + k] = dcn * s.c0(k, j) * f * (T(1) - f);
        d[2 * o + k] = dcn * i * (T(1) - gg * gg);
        d[3 * o + k] = dh(k, j) * tc * og * (T(1) - og);
        g.dc(k, j) = dcn * f;
      }
    return g;
  }

  void print(std::ostream& os) const {
    os << "LSTMCell(" << this->in_dims << " => " << this->out_dims;
    this->print_flags(os);
    os << ")";
  }
};
LSTMCell(std::pair<index_t, index_t>)->LSTMCell<>;
LSTMCell(std::pair<index_t, index_t>, recurrent_cell_options)->LSTMCell<>;

// ---------------------------------------------------------------------------------------------
// GRUCell
// ---------------------------------------------------------------------------------------------

/// Gated recurrent unit, gate blocks [r; z; n]; n = tanh(zi_n + r ⊙ (W_hn h + b_hn)).
template <recurrent_flags Flags = recurrent_flags{}>
struct GRUCell : recurrent_cell_base<GRUCell<Flags>, Flags, 3, 1> {
  using base = recurrent_cell_base<GRUCell<Flags>, Flags, 3, 1>;
  static constexpr const char* name = "GRUCell";

  GRUCell(std::pair<index_t, index_t> in_out, recurrent_cell_options opts = {})
      : base(in_out, std::move(opts)) {}

  template <class T>
  std::array<Tensor<T, 2>, 1> step_forward(Tensor<T, 2>& a, const Tensor<T, 2>& zh,
                                           const std::array<Tensor<T, 2>, 1>& carry,
                                           detail::rnn::step_saved<T>& saved) const {
    const index_t o = this->out_dims, B = a.size(1);
    const sigmoid sg{};
    const tanh_ th{};
    auto h = Tensor<T, 2>::uninitialized(shape_t<2>{o, B}),
         zhn = Tensor<T, 2>::uninitialized(shape_t<2>{o, B});
    const auto sig_sum = [&](const auto& u, const auto& v) { return sg(u + v); };
    // Each gate is a contiguous block of o rows in every column of a (3o, B).
    for (index_t j = 0; j < B; ++j) {
      T* col = a.data() + j * 3 * o;
      const T* zc = zh.data() + j * 3 * o;
      using detail::rnn::gate_map;
      gate_map(o, col, sig_sum, col, zc);              // r
      gate_map(o, col + o, sig_sum, col + o, zc + o);  // z
      std::copy_n(zc + 2 * o, o, zhn.data() + j * o);
      gate_map(
          o, col + 2 * o,
          [&](const auto& zi, const auto& r, const auto& zn) { return th(zi + r * zn); },
          col + 2 * o, col, zc + 2 * o);  // n
      gate_map(
          o, h.data() + j * o,
          [](const auto& z, const auto& n, const auto& h0) { return (T(1) - z) * n + z * h0; },
          col + o, col + 2 * o, carry[0].data() + j * o);
    }
    saved.a = std::move(a);
    saved.b = std::move(zhn);
    return {std::move(h)};
  }
  template <class T>
  detail::rnn::step_grads<T> step_backward(const detail::rnn::step_saved<T>& s,
                                           const std::array<Tensor<T, 2>, 1>& carry,
                                           const Tensor<T, 2>& dh, const Tensor<T, 2>&) const {
    const index_t o = this->out_dims, B = dh.size(1);
    detail::rnn::step_grads<T> g;
    g.dzi = Tensor<T, 2>::uninitialized(s.a.shape());
    g.dzh = Tensor<T, 2>::uninitialized(s.a.shape());
    g.dh_direct = Tensor<T, 2>::uninitialized(dh.shape());
    for (index_t j = 0; j < B; ++j)
      for (index_t k = 0; k < o; ++k) {
        const T* col = s.a.data() + j * 3 * o;
        T* di = g.dzi.data() + j * 3 * o;
        T* dhh = g.dzh.data() + j * 3 * o;
        const T r = col[k], z = col[o + k], n = col[2 * o + k], hp = carry[0](k, j);
        const T d = dh(k, j);
        const T dan = d * (T(1) - z) * (T(1) - n * n);
        const T dar = dan * s.b(k, j) * r * (T(1) - r);
        const T daz = d * (hp - n) * z * (T(1) - z);
        di[k] = dhh[k] = dar;
        di[o + k] = dhh[o + k] = daz;
        di[2 * o + k] = dan;
        dhh[2 * o + k] = dan * r;
        g.dh_direct(k, j) = d * z;
      }
    return g;
  }

  void print(std::ostream& os) const {
    os << "GRUCell(" << this->in_dims << " => " << this->out_dims;
    this->print_flags(os);
    os << ")";
  }
};
GRUCell(std::pair<index_t, index_t>)->GRUCell<>;
GRUCell(std::pair<index_t, index_t>, recurrent_cell_options)->GRUCell<>;

// ---------------------------------------------------------------------------------------------
// Recurrence
// ---------------------------------------------------------------------------------------------

/// Lux's AbstractTimeSeriesDataBatchOrdering.
enum class sequence_ordering { batch_last_index, time_last_index };
inline constexpr sequence_ordering batch_last_index = sequence_ordering::batch_last_index;
inline constexpr sequence_ordering time_last_index = sequence_ordering::time_last_index;

/// Tag selecting Recurrence's return_sequence = true.
struct return_sequence_t {};
inline constexpr return_sequence_t return_sequence{};

struct recurrence_options {
  sequence_ordering ordering = batch_last_index;
};

template <class Cell, bool ReturnSequence = false>
struct Recurrence {
  using is_lux_layer = void;
  static constexpr const char* name = "Recurrence";
  static constexpr bool returns_sequence = ReturnSequence;

  Cell cell;
  sequence_ordering ordering = batch_last_index;

  explicit Recurrence(Cell c, recurrence_options opts = {}) requires(!ReturnSequence)
      : cell(std::move(c)), ordering(opts.ordering) {}
  Recurrence(Cell c, return_sequence_t, recurrence_options opts = {}) requires ReturnSequence
      : cell(std::move(c)),
        ordering(opts.ordering) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return initialparameters<T>(r, cell);
  }
  template <class T>
  auto init_states(rng& r) const {
    return initialstates<T>(r, cell);
  }

  /// Shape of one output h: (out, B) for an (F, T, B) / (F, B, T) input, (out, 1) for (F, T).
  template <std::size_t N>
  shape_t<2> output_shape(const shape_t<N>& in) const {
    static_assert(N == 2 || N == 3, "Recurrence: the input is (F, T), (F, T, B) or (F, B, T)");
    index_t batch = 1;
    if constexpr (N == 3) batch = ordering == batch_last_index ? in[2] : in[1];
    return cell.output_shape(shape_t<2>{in[0], batch});
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    const auto steps = slices(x);
    auto [out, st1] = cell.forward(steps[0], ps, st);
    auto carry = std::get<1>(std::move(out));
    using H = std::remove_cvref_t<decltype(std::get<0>(out))>;
    std::vector<H> seq;
    if constexpr (ReturnSequence) seq.push_back(std::get<0>(std::move(out)));
    H last = std::get<0>(std::move(out));
    ST s = std::move(st1);
    for (std::size_t t = 1; t < steps.size(); ++t) {
      auto [o2, s2] = cell.forward(std::tie(steps[t], carry), ps, s);
      s = std::move(s2);
      carry = std::get<1>(std::move(o2));
      if constexpr (ReturnSequence)
        seq.push_back(std::get<0>(std::move(o2)));
      else
        last = std::get<0>(std::move(o2));
    }
    if constexpr (ReturnSequence)
      return std::pair{std::move(seq), std::move(s)};
    else
      return std::pair{std::move(last), std::move(s)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto steps = slices(x);
    using XV = typename decltype(steps)::value_type;
    auto pr0 = cell.pullback(steps[0], ps, st);
    auto carry = std::get<1>(pr0.y);
    using Carry = decltype(carry);
    using H = std::remove_cvref_t<decltype(std::get<0>(pr0.y))>;
    using R = decltype(cell.pullback(std::declval<std::tuple<const XV&, const Carry&>>(), ps, st));
    using Back = decltype(std::declval<R>().back);
    std::vector<Back> backs;
    backs.reserve(steps.size());
    std::vector<H> seq;
    if constexpr (ReturnSequence) seq.push_back(std::get<0>(pr0.y));
    H last = std::get<0>(pr0.y);
    ST s = pr0.st;
    for (std::size_t t = 1; t < steps.size(); ++t) {
      auto pr = cell.pullback(std::tuple<const XV&, const Carry&>(steps[t], carry), ps, s);
      s = std::move(pr.st);
      carry = std::get<1>(pr.y);
      if constexpr (ReturnSequence)
        seq.push_back(std::get<0>(std::move(pr.y)));
      else
        last = std::get<0>(std::move(pr.y));
      backs.push_back(std::move(pr.back));
    }
    auto back = [self = *this, back0 = std::move(pr0.back), backs = std::move(backs),
                 xref = dx_layout(x)](const auto& dy) {
      const std::size_t n = backs.size() + 1;
      if constexpr (ReturnSequence)
        require<shape_error>(dy.size() == n, "Recurrence: the output gradient has ", dy.size(),
                             " steps, expected ", n);
      auto dx = xref;  // zero-filled, x's layout
      std::optional<Carry> dcarry;
      using DPS = decltype(back0(std::tuple{lux::none, lux::none}).dps);
      std::optional<DPS> dps;
      const auto accumulate = [&](DPS&& g) {
        if (!dps) {
          dps = std::move(g);
        } else {
          zip_leaves(*dps, g, [](std::string_view, auto& a, const auto& b) {
            for (index_t i = 0; i < a.numel(); ++i) a.data()[i] += b.data()[i];
          });
        }
      };
      const auto step = [&](std::size_t t, const auto& dyt) {
        if (t == 0) {
          auto g = dcarry ? back0(std::tuple{dyt, *dcarry}) : back0(std::tuple{dyt, lux::none});
          self.store_dx(dx, 0, g.dx);
          accumulate(std::move(g.dps));
        } else {
          auto g = dcarry ? backs[t - 1](std::tuple{dyt, *dcarry})
                          : backs[t - 1](std::tuple{dyt, lux::none});
          self.store_dx(dx, t, std::get<0>(g.dx));
          dcarry = std::get<1>(std::move(g.dx));
          accumulate(std::move(g.dps));
        }
      };
      for (std::size_t t = n; t-- > 0;) {
        if constexpr (ReturnSequence)
          step(t, as_view(dy[t]));
        else if (t == n - 1)
          step(t, as_view(dy));
        else
          step(t, lux::none);
      }
      return gradients{std::move(dx), std::move(*dps)};
    };
    if constexpr (ReturnSequence)
      return pullback_result{std::move(seq), std::move(s), std::move(back)};
    else
      return pullback_result{std::move(last), std::move(s), std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "Recurrence(" << cell;
    if constexpr (ReturnSequence) os << ", return_sequence=true";
    if (ordering == time_last_index) os << ", ordering=TimeLastIndex()";
    os << ")";
  }

 private:
  /// The time steps as views: (F, B) strided views of an array, or views of a vector's items.
  template <class X>
  auto slices(const X& x) const {
    if constexpr (is_array_v<X>) {
      using T = detail::rnn::value_t<X>;
      constexpr std::size_t N = detail::rnn::rank_v<X>;
      static_assert(N == 2 || N == 3, "Recurrence: the input is (F, T), (F, T, B) or (F, B, T)");
      const auto v = as_view(x);
      std::vector<StridedView<const T, N - 1>> out;
      const bool time_in_1 = N == 2 || ordering == batch_last_index;
      const index_t n = v.shape()[time_in_1 ? 1 : 2];
      require<shape_error>(n > 0, "Recurrence: the sequence is empty, got input ", v.shape());
      for (index_t t = 0; t < n; ++t) {
        StridedView<const T, N - 1> s =
            time_in_1 ? v.select(1, t) : StridedView<const T, N - 1>(v.select_last(t));
        out.push_back(s);
      }
      return out;
    } else {
      using E = std::remove_cvref_t<decltype(x[0])>;
      using V = decltype(as_view(std::declval<const E&>()));
      std::vector<V> out;
      require<shape_error>(!x.empty(), "Recurrence: the sequence is empty");
      for (const auto& e : x) out.push_back(as_view(e));
      return out;
    }
  }
  /// A zero gradient in x's layout.
  template <class X>
  static auto dx_layout(const X& x) {
    if constexpr (is_array_v<X>) {
      using T = detail::rnn::value_t<X>;
      return Tensor<T, detail::rnn::rank_v<X>>(as_view(x).shape());
    } else {
      using E = std::remove_cvref_t<decltype(x[0])>;
      using T = detail::rnn::value_t<E>;
      std::vector<Tensor<T, detail::rnn::rank_v<E>>> out;
      for (const auto& e : x) out.emplace_back(as_view(e).shape());
      return out;
    }
  }
  template <class DX, class G>
  void store_dx(DX& dx, std::size_t t, const G& g) const {
    if constexpr (is_array_v<DX>) {
      constexpr std::size_t N = DX::rank;
      const bool time_in_1 = N == 2 || ordering == batch_last_index;
      const auto ti = static_cast<index_t>(t);
      auto dst = time_in_1 ? dx.select(1, ti)
                           : StridedView<typename DX::value_type, N - 1>(dx.select_last(ti));
      copy_into(dst, g.cview());
    } else {
      dx[t] = g;
    }
  }
};
template <class Cell>
Recurrence(Cell) -> Recurrence<Cell, false>;
template <class Cell>
Recurrence(Cell, recurrence_options) -> Recurrence<Cell, false>;
template <class Cell>
Recurrence(Cell, return_sequence_t) -> Recurrence<Cell, true>;
template <class Cell>
Recurrence(Cell, return_sequence_t, recurrence_options) -> Recurrence<Cell, true>;

// ---------------------------------------------------------------------------------------------
// StatefulRecurrentCell
// ---------------------------------------------------------------------------------------------

/// The carry a StatefulRecurrentCell keeps: the cell's carry tuple and whether there is one
/// (Lux's `nothing`). Assigning lux::none clears it (update_state(st, "carry", lux::none)).
template <class T, std::size_t K>
struct recurrent_carry {
  using tuple_type =
      std::conditional_t<K == 1, std::tuple<Tensor<T, 2>>, std::tuple<Tensor<T, 2>, Tensor<T, 2>>>;
  bool present = false;
  tuple_type values{};

  recurrent_carry& operator=(none_t) {
    present = false;
    values = tuple_type{};
    return *this;
  }
};

template <class Cell>
struct StatefulRecurrentCell {
  using is_lux_layer = void;
  static constexpr const char* name = "StatefulRecurrentCell";
  Cell cell;

  explicit StatefulRecurrentCell(Cell c) : cell(std::move(c)) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return initialparameters<T>(r, cell);
  }
  template <class T>
  auto init_states(rng& r) const {
    auto cs = initialstates<T>(r, cell);
    return make_named_tuple<"cell", "carry">(std::move(cs), recurrent_carry<T, Cell::carry_size>{});
  }
  template <std::size_t N>
  auto output_shape(const shape_t<N>& in) const {
    return cell.output_shape(in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    check_type<X, ST>();
    const auto& c = st.template get<"carry">();
    auto run = [&](auto&& r) {
      ST st2 = st;
      st2.template get<"cell">() = std::move(r.second);
      auto& nc = st2.template get<"carry">();
      nc.present = true;
      nc.values = std::get<1>(std::move(r.first));
      return std::pair{std::get<0>(std::move(r.first)), std::move(st2)};
    };
    if (c.present) return run(cell.forward(std::tie(x, c.values), ps, st.template get<"cell">()));
    return run(cell.forward(x, ps, st.template get<"cell">()));
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    check_type<X, ST>();
    using CT = typename std::remove_cvref_t<decltype(st.template get<"carry">())>::tuple_type;
    using TX = std::tuple<const X&, const CT&>;
    using B0 = decltype(cell.pullback(x, ps, st.template get<"cell">()).back);
    using B1 = decltype(cell.pullback(std::declval<TX>(), ps, st.template get<"cell">()).back);
    std::optional<B0> b0;
    std::optional<B1> b1;
    const auto& c = st.template get<"carry">();
    ST st2 = st;
    auto finish = [&](auto&& r) {
      st2.template get<"cell">() = std::move(r.st);
      auto& nc = st2.template get<"carry">();
      nc.present = true;
      nc.values = std::get<1>(r.y);
      return std::get<0>(std::move(r.y));
    };
    auto y = [&] {
      if (c.present) {
        auto r = cell.pullback(TX(x, c.values), ps, st.template get<"cell">());
        b1.emplace(std::move(r.back));
        return finish(std::move(r));
      }
      auto r = cell.pullback(x, ps, st.template get<"cell">());
      b0.emplace(std::move(r.back));
      return finish(std::move(r));
    }();
    auto back = [b0 = std::move(b0), b1 = std::move(b1)](const auto& dy) {
      if (b1) {
        auto g = (*b1)(std::tuple{std::cref(dy).get(), lux::none});
        return gradients{std::get<0>(std::move(g.dx)), std::move(g.dps)};
      }
      auto g = (*b0)(std::tuple{std::cref(dy).get(), lux::none});
      return gradients{std::move(g.dx), std::move(g.dps)};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }

  void print(std::ostream& os) const { os << "StatefulRecurrentCell(" << cell << ")"; }

 private:
  template <class X, class ST>
  static constexpr void check_type() {
    using C = std::remove_cvref_t<decltype(std::declval<const ST&>().template get<"carry">())>;
    using T = detail::rnn::value_t<X>;
    static_assert(std::is_same_v<typename C::tuple_type,
                                 typename recurrent_carry<T, Cell::carry_size>::tuple_type>,
                  "StatefulRecurrentCell: x's element type must be the one the state was set up "
                  "with (lux::setup<T>)");
  }
};

LUX_NAMESPACE_END
