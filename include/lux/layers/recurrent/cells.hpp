// luxcpp — Lux's recurrent cells: RNNCell, LSTMCell, GRUCell (the gate equations are in
// lux/layers/recurrent.hpp's header comment).
#pragma once

#include "lux/layers/recurrent/cell_base.hpp"

LUX_NAMESPACE_BEGIN
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

LUX_NAMESPACE_END
