// luxcpp — the machinery Lux's recurrent cells share: recurrent_flags (use_bias, train_state,
// train_memory), the initializer options, and recurrent_cell_base (parameter/state setup, the
// gate pre-activations as GEMMs through the dense kernel, the carry handling, and the pullback
// through one step). The cells themselves are in cells.hpp; lux/layers/recurrent.hpp documents
// the whole family.
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

/// The element type of a cell input (x or std::tuple{x, carry}).
template <class X>
struct input_value {
  using type = array_value_t<X>;
};
template <class X, class C>
struct input_value<std::tuple<X, C>> {
  using type = array_value_t<X>;
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
    static_assert(std::is_same_v<array_value_t<X>, T>,
                  "recurrent cell: x and the carry must have the same element type");
    constexpr std::size_t N = array_rank_v<X>;
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
    static_assert(std::is_same_v<array_value_t<H>, T> && array_rank_v<H> <= 2,
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

LUX_NAMESPACE_END
