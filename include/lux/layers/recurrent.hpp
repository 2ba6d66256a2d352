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

#include "lux/layers/recurrent/cell_base.hpp"
#include "lux/layers/recurrent/cells.hpp"
#include "lux/layers/recurrent/recurrence.hpp"
