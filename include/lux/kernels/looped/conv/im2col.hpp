// luxcpp — the looped convolution's per-tile passes: im2col and col2im of a tile of output pixels
// (row_taps, is_pointwise: when Col is x itself), the bias/activation epilogue applied to an output
// tile while it is in cache, and the reduction of per-thread partial sums. See ../conv.hpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv/gemm.hpp"

LUX_NAMESPACE_BEGIN
namespace impl::conv_looped {

/// True when Col == x: 1×…×1 kernel, stride 1, no padding, same spatial size.
inline bool is_pointwise(const conv_geometry& g) {
  for (int d = 0; d < 3; ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad[d] != 0 || g.in[d] != g.out[d]) return false;
  return true;
}

/// Per weight tap kw0 along the fastest dimension: the input offset i0 = o0·s0 + off0 and the
/// output range [lo, hi) of o0 whose reads fall inside the input. Computed once per call.
struct row_taps {
  std::vector<index_t> off, lo, hi;
  explicit row_taps(const conv_geometry& g)
      : off(static_cast<std::size_t>(g.kernel[0])), lo(off.size()), hi(off.size()) {
    const index_t s = g.stride[0], I = g.in[0], O = g.out[0];
    for (index_t k = 0; k < g.kernel[0]; ++k) {
      const index_t o = g.tap(0, k) * g.dilation[0] - g.pad[0];
      const auto u = static_cast<std::size_t>(k);
      off[u] = o;
      lo[u] = std::min(O, o >= 0 ? 0 : cdiv(-o, s));
      hi[u] = std::clamp<index_t>(I - 1 - o < 0 ? 0 : (I - 1 - o) / s + 1, lo[u], O);
    }
  }
};

/// im2col (Scatter = false) or col2im (Scatter = true) of the output pixels [p0, p1) of one
/// sample, for `nch` consecutive input channels starting at the plane x:
///   col[(p − p0) + m·r]  ↔  x[c][pixel read by output pixel p at weight tap r],
///   r = kw0 + K0·(kw1 + K1·(kw2 + K2·c))  (the row order of W_g), m = p1 − p0.
/// im2col writes zeros where the read falls in the padding; col2im adds col into x there and
/// skips padding.
template <bool Scatter, class Arch, class T>
void im2col(const conv_geometry& g, const row_taps& rt, std::conditional_t<Scatter, T*, const T*> x,
            index_t nch, index_t p0, index_t p1, std::conditional_t<Scatter, const T*, T*> col) {
  const index_t m = p1 - p0;
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  const index_t plane = g.in_pixels(), s0 = g.stride[0];
  const index_t o0_first = p0 % O[0], t_first = p0 / O[0];
  index_t r = 0;
  for (index_t c = 0; c < nch; ++c)
    for (index_t kw2 = 0; kw2 < K[2]; ++kw2) {
      const index_t off2 = g.tap(2, kw2) * g.dilation[2] - g.pad[2];
      for (index_t kw1 = 0; kw1 < K[1]; ++kw1) {
        const index_t off1 = g.tap(1, kw1) * g.dilation[1] - g.pad[1];
        for (index_t kw0 = 0; kw0 < K[0]; ++kw0, ++r) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t off0 = rt.off[u], lo0 = rt.lo[u], hi0 = rt.hi[u];
          auto* cc = col + m * r;
          auto* xc = x + plane * c;
          index_t p = p0, o0 = o0_first, o1 = t_first % O[1], o2 = t_first / O[1];
          while (p < p1) {
            const index_t run = std::min(p1 - p, O[0] - o0);
            auto* seg = cc + (p - p0);
            const index_t i2 = o2 * g.stride[2] + off2, i1 = o1 * g.stride[1] + off1;
            if (i2 < 0 || i2 >= I[2] || i1 < 0 || i1 >= I[1]) {
              if constexpr (!Scatter) std::fill_n(seg, run, T(0));
            } else {
              auto* row = xc + (i2 * I[1] + i1) * I[0];
              const index_t jlo = std::clamp<index_t>(lo0 - o0, 0, run);
              const index_t jhi = std::clamp<index_t>(hi0 - o0, jlo, run);
              if constexpr (!Scatter) {
                std::fill_n(seg, jlo, T(0));
                std::fill_n(seg + jhi, run - jhi, T(0));
              }
              if (jhi <= jlo) {
                // No tap of this run reads x (an empty input row): no pointer into it either.
              } else if (s0 == 1) {
                if constexpr (Scatter)
                  add_to<Arch>(jhi - jlo, seg + jlo, row + o0 + jlo + off0);
                else
                  std::copy_n(row + o0 + jlo + off0, jhi - jlo, seg + jlo);
              } else {
                for (index_t j = jlo; j < jhi; ++j) {
                  if constexpr (Scatter)
                    row[(o0 + j) * s0 + off0] += seg[j];
                  else
                    seg[j] = row[(o0 + j) * s0 + off0];
                }
              }
            }
            p += run;
            o0 = 0;
            if (++o1 == O[1]) {
              o1 = 0;
              ++o2;
            }
          }
        }
      }
    }
}

/// Bias, activation (and the saved pre-activation) over one channel's run of `m` elements.
template <class T, class F>
void epilogue_run(const F& f, T* y, T* z, T bias, index_t m) {
  if (z) {
    simd::transform(
        m, z, [bias](auto v) { return v + decltype(v)(bias); }, y);
    simd::transform(
        m, y, [&f](auto v) { return f(v); }, z);
  } else {
    simd::transform(
        m, y, [&f, bias](auto v) { return f(v + decltype(v)(bias)); }, y);
  }
}
/// The epilogue of the output rows [p0, p0 + m) of every channel of one sample.
template <class T, class F>
void epilogue(const F& f, T* yn, T* zn, const T* b, index_t C, index_t P, index_t p0, index_t m) {
  if (activation_traits<F>::is_identity && !b && !zn) return;
  for (index_t c = 0; c < C; ++c)
    epilogue_run(f, yn + c * P + p0, zn ? zn + c * P + p0 : nullptr, b ? b[c] : T(0), m);
}

/// Sum of `n` partial arrays of `len` elements spaced `stride` apart, into out (parallel).
template <class T>
void reduce_partials(const T* parts, index_t stride, int n, index_t len, T* out) {
  parallel_chunks(len, [&](index_t lo, index_t hi) {
    std::copy(parts + lo, parts + hi, out + lo);
    for (int t = 1; t < n; ++t) {
      const T* p = parts + stride * t;
      for (index_t i = lo; i < hi; ++i) out[i] += p[i];
    }
  });
}

}  // namespace impl::conv_looped
LUX_NAMESPACE_END
