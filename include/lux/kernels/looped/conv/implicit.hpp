// luxcpp — the implicit-GEMM forward of a stride-1 convolution (any kernel size, dilation,
// padding, groups): no im2col. See ../conv.hpp for the implementation as a whole.
//
// Picture the input zero-padded to planes of Ip_a = O_a + d_a·(K_a − 1) per spatial dimension a
// (the padded extent a stride-1 convolution reads), and number the output pixels on that padded
// grid, q = o₀ + Ip₀·(o₁ + Ip₁·o₂). The input element under tap k of output q is then
// xpad[q + off(k)], off(k) = Σ_a k'_a·d_a·pitch_a (k' the applied tap: flipped for a true
// convolution), so column k of the im2col matrix of a run of consecutive q is a contiguous run
// of xpad. Per tile of grid points [q0, q1) each channel's window xpad[q0, q1 + span) is copied
// (zero-padded, from x) into a thread buffer that stays in L2 — about 1× the input instead of
// im2col's ∏K× — and the GEMM reads its columns in place (gemm_packed's column offsets),
// Y(q, o) = Σ_k window[q − q0 + off(k)]·W(k, o). (Reading a padded copy of the whole input in
// place instead was slower: hundreds of concurrent streams defeat the hardware prefetcher.)
// Grid points with o₀ ≥ O₀ or o₁ ≥ O₁ are not output pixels: they are computed (the
// (K₀ − 1)·d₀ of every Ip₀ — 2 of 58 on a 3×3 layer over 56 columns) and dropped when the tile
// is copied into y, where the valid points of a run of q are a run of y's pixels, which then
// gets the bias/activation epilogue.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv/gemm.hpp"
#include "lux/kernels/looped/conv/im2col.hpp"

LUX_NAMESPACE_BEGIN
namespace impl::conv_looped {

/// Whether the implicit forward applies: stride 1 in every dimension, a kernel of more than one
/// tap, and a padded plane no larger than 4× the input's (plus 16384 points).
inline bool use_implicit_forward(const conv_geometry& g) {
  index_t padded = 1;
  for (int a = 0; a < 3; ++a) {
    if (g.stride[a] != 1) return false;
    padded *= g.out[a] + g.dilation[a] * (g.kernel[a] - 1);
  }
  return g.kernel_pixels() > 1 && g.out_pixels() > 0 && padded <= 4 * g.in_pixels() + 16384;
}

template <class Arch, class T, class F>
void implicit_forward(const conv_geometry& g, const T* x, const T* w, const T* b, const F& f, T* y,
                      T* z) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = Kp * Cg;
  const auto& O = g.out;
  index_t Ip[3];
  for (int a = 0; a < 3; ++a) Ip[a] = O[a] + g.dilation[a] * (g.kernel[a] - 1);
  const index_t pitch[3] = {1, Ip[0], Ip[0] * Ip[1]};
  // The grid points up to the last output pixel, rounded up to whole vectors (the points past
  // it read zeros and are dropped like the padding points).
  constexpr index_t W = register_block<T, Arch>::W;
  const index_t Q = cdiv((O[2] - 1) * pitch[2] + (O[1] - 1) * pitch[1] + O[0], W) * W;
  // The largest tap offset within a channel: a tile of grid points [q0, q1) reads [q0, q1 + span).
  const index_t span = (g.kernel[0] - 1) * g.dilation[0] +
                       (g.kernel[1] - 1) * g.dilation[1] * pitch[1] +
                       (g.kernel[2] - 1) * g.dilation[2] * pitch[2];

  // Tiles of about 128 KiB of input window (all of a group's channels), at least 4 row blocks.
  constexpr index_t MR = register_block<T, Arch>::MR;
  const double flops = 2.0 * static_cast<double>(Q * g.batch * g.c_out * Kg);
  int threads = plan_threads(g.batch * cdiv(Q, 16), flops);
  const index_t rows =
      std::max<index_t>(4 * MR, 128 * 1024 / (static_cast<index_t>(sizeof(T)) * Cg) - span);
  const tile_plan tp = plan_tile_rows(Q, rows, g.batch, threads, MR);
  const index_t wstride = (tp.tile + span + 15) / 16 * 16;  // one channel's window, padded
  const index_t items = g.batch * tp.tiles;
  threads = static_cast<int>(std::min<index_t>(threads, items));

  // Column offsets into the window, in W_g's row order: tap (k₀ fastest, then k₁, k₂), channel.
  std::vector<index_t> koff(static_cast<std::size_t>(Kg));
  for (index_t c = 0; c < Cg; ++c)
    for (index_t k2 = 0; k2 < g.kernel[2]; ++k2)
      for (index_t k1 = 0; k1 < g.kernel[1]; ++k1)
        for (index_t k0 = 0; k0 < g.kernel[0]; ++k0)
          koff[static_cast<std::size_t>(c * Kp + (k2 * g.kernel[1] + k1) * g.kernel[0] + k0)] =
              c * wstride + g.tap(0, k0) * g.dilation[0] + g.tap(1, k1) * g.dilation[1] * pitch[1] +
              g.tap(2, k2) * g.dilation[2] * pitch[2];

  // Grid points [qb, qe) of one channel's zero-padded plane, from x's channel xc, into dst.
  const auto window = [&](const T* xc, index_t qb, index_t qe, T* dst) {
    for (index_t q = qb; q < qe;) {
      const index_t c0 = q % Ip[0], r = q / Ip[0];
      const index_t len = std::min(Ip[0] - c0, qe - q);
      const index_t i1 = r % Ip[1] - g.pad[1], i2 = r / Ip[1] - g.pad[2];
      if (i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2]) {
        std::fill_n(dst, len, T(0));
      } else {
        // Columns c0 .. c0 + len of the padded row are x's columns c0 − pad0 ...; those outside
        // [0, in0) are padding.
        const index_t lo = std::clamp<index_t>(g.pad[0] - c0, 0, len);
        const index_t hi = std::clamp<index_t>(g.pad[0] + g.in[0] - c0, lo, len);
        std::fill_n(dst, lo, T(0));
        std::copy_n(xc + (i2 * g.in[1] + i1) * g.in[0] + c0 + lo - g.pad[0], hi - lo, dst + lo);
        std::fill_n(dst + hi, len - hi, T(0));
      }
      dst += len;
      q += len;
    }
  };

  // Per thread: the input window of one group (Cg × wstride) and its output tile (tile × Og).
  const index_t win_size = Cg * wstride, out_size = (tp.tile * Og + 15) / 16 * 16;
  workspace<T> ws(threads, win_size + out_size);
  const auto wp = pack_weights<Arch>(g.groups, Kg, Og, w, false);  // W_g, once per call
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / tp.tiles, t = item % tp.tiles;
    const index_t q0 = t * tp.tile, q1 = std::min(Q, q0 + tp.tile), m = q1 - q0;
    T* yn = y + n * g.c_out * P;
    T* win = ws.of(tid);
    T* ct = win + win_size;
    index_t p_first = -1, count = 0;
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c_in + grp * Cg) * Pin;
      for (index_t c = 0; c < Cg; ++c) window(xg + c * Pin, q0, q1 + span, win + c * wstride);
      gemm_packed<Arch>(m, win, 0, wp[static_cast<std::size_t>(grp)], ct, m, false, koff.data());
      // Copy the valid points into y, run by run along dimension 0.
      count = 0;
      for (index_t q = q0; q < q1;) {
        const index_t o0 = q % Ip[0], r = q / Ip[0], o1 = r % Ip[1], o2 = r / Ip[1];
        if (o2 >= O[2]) break;           // past the last output pixel
        if (o0 >= O[0] || o1 >= O[1]) {  // a padding point: skip to the next row
          q += Ip[0] - o0;
          continue;
        }
        const index_t run = std::min(O[0] - o0, q1 - q);
        const index_t p = o0 + O[0] * (o1 + O[1] * o2);
        if (p_first < 0) p_first = p;
        for (index_t o = 0; o < Og; ++o)
          std::copy_n(ct + o * m + (q - q0), run, yn + (grp * Og + o) * P + p);
        count += run;
        q += run;
      }
    }
    if (count > 0)
      epilogue(f, yn, z ? z + n * g.c_out * P : nullptr, b, g.c_out, P, p_first, count);
  });
}

/// The data gradient of a stride-1 convolution is itself a stride-1 convolution: of dy, by the
/// spatially reversed kernel with input and output channels swapped, padded by d·(K − 1) − pad:
/// dx[i, c] = Σ_{k, o} dy[i − k'·d + pad, o]·W[k, c, o]. This is that convolution's geometry (its
/// taps applied in the opposite order: flipped ↔ cross-correlation).
inline conv_geometry backward_data_geometry(const conv_geometry& g) {
  conv_geometry h = g;
  h.in = g.out;
  h.out = g.in;
  for (int a = 0; a < 3; ++a) h.pad[a] = g.dilation[a] * (g.kernel[a] - 1) - g.pad[a];
  h.c_in = g.c_out;
  h.c_out = g.c_in;
  h.flipped = !g.flipped;
  return h;
}

/// Whether the data gradient runs as an implicit forward (see backward_data_geometry).
inline bool use_implicit_backward_data(const conv_geometry& g) {
  return g.cin_per_group() > 1 && g.cout_per_group() > 1 && !is_pointwise(g) &&
         use_implicit_forward(backward_data_geometry(g));
}

/// dx = ∇conv_data(dy, w) of a stride-1 convolution, as the implicit forward of
/// backward_data_geometry(g) with the weight rearranged to W'[k, o, grp·Cg + c] =
/// W[k, c, grp·Og + o] (one pass over w per call).
template <class Arch, class T>
void implicit_backward_data(const conv_geometry& g, const T* dy, const T* w, T* dx) {
  const conv_geometry h = backward_data_geometry(g);
  const index_t Kp = g.kernel_pixels(), Cg = g.cin_per_group(), Og = g.cout_per_group();
  auto wt = Tensor<T, 1>::uninitialized(shape_t<1>{Kp * Og * g.c_in});
  T* w2 = wt.data();
  for (index_t grp = 0; grp < g.groups; ++grp)
    for (index_t c = 0; c < Cg; ++c)
      for (index_t o = 0; o < Og; ++o)
        std::copy_n(w + Kp * (c + Cg * (grp * Og + o)), Kp, w2 + Kp * (o + Og * (grp * Cg + c)));
  implicit_forward<Arch>(h, dy, static_cast<const T*>(w2), static_cast<const T*>(nullptr),
                         identity{}, dx, static_cast<T*>(nullptr));
}

}  // namespace impl::conv_looped
LUX_NAMESPACE_END
