// luxcpp — the looped convolution's direct kernels for C_in/groups == 1 (depthwise, any channel
// multiplier; also a single-channel input): forward, data and filter gradients, and the fused
// backward. See ../conv.hpp.
#pragma once

#include <algorithm>
#include <cstddef>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv/gemm.hpp"
#include "lux/kernels/looped/conv/im2col.hpp"

LUX_NAMESPACE_BEGIN
namespace impl::conv_looped {

// ---------------------------------------------------------------------------------------------
// Depthwise (C_in/groups == 1): direct kernels
// ---------------------------------------------------------------------------------------------

/// Visits every (output row, kernel row) pair of one plane whose input row exists:
/// f(output row offset, input row offset, weight index of tap (0, kw1, kw2)).
template <class F>
void for_each_row_pair(const conv_geometry& g, F&& f) {
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  for (index_t o2 = 0; o2 < O[2]; ++o2)
    for (index_t o1 = 0; o1 < O[1]; ++o1) {
      const index_t orow = (o2 * O[1] + o1) * O[0];
      for (index_t kw2 = 0; kw2 < K[2]; ++kw2) {
        const index_t i2 = o2 * g.stride[2] + g.tap(2, kw2) * g.dilation[2] - g.pad[2];
        if (i2 < 0 || i2 >= I[2]) continue;
        for (index_t kw1 = 0; kw1 < K[1]; ++kw1) {
          const index_t i1 = o1 * g.stride[1] + g.tap(1, kw1) * g.dilation[1] - g.pad[1];
          if (i1 < 0 || i1 >= I[1]) continue;
          f(orow, (i2 * I[1] + i1) * I[0], K[0] * (kw1 + K[1] * kw2));
        }
      }
    }
}

template <class Arch, class T, class F>
void depthwise_forward(const conv_geometry& g, const T* x, const T* w, const T* b, const F& f, T* y,
                       T* z) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.batch * g.c_out;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * items));
  run_items(items, threads, [&](index_t item, int) {
    const index_t n = item / g.c_out, co = item % g.c_out, ci = co / Og;
    const T* xp = x + (n * g.c_in + ci) * Pin;
    const T* wp = w + co * Kp;
    T* yp = y + item * P;
    std::fill_n(yp, P, T(0));
    for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
      for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
        const auto u = static_cast<std::size_t>(kw0);
        const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
        if (hi <= lo) continue;  // no output reads this tap (and x may be empty)
        const T wv = wp[wrow + kw0];
        T* yr = yp + orow;
        const T* xr = xp + irow;
        if (s0 == 1) {
          axpy<Arch>(hi - lo, wv, xr + lo + off, yr + lo);
        } else {
          for (index_t o = lo; o < hi; ++o) yr[o] += wv * xr[o * s0 + off];
        }
      }
    });
    epilogue_run(f, yp, z ? z + item * P : nullptr, b ? b[co] : T(0), P);
  });
}

template <class Arch, class T>
void depthwise_backward_data(const conv_geometry& g, const T* dy, const T* w, T* dx) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.batch * g.c_in;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  run_items(items, threads, [&](index_t item, int) {
    const index_t n = item / g.c_in, ci = item % g.c_in;
    T* dxp = dx + item * Pin;
    std::fill_n(dxp, Pin, T(0));
    for (index_t j = 0; j < Og; ++j) {
      const index_t co = ci * Og + j;
      const T* dyp = dy + (n * g.c_out + co) * P;
      const T* wp = w + co * Kp;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi <= lo) continue;
          const T wv = wp[wrow + kw0];
          const T* dyr = dyp + orow;
          T* dxr = dxp + irow;
          if (s0 == 1) {
            axpy<Arch>(hi - lo, wv, dyr + lo, dxr + lo + off);
          } else {
            for (index_t o = lo; o < hi; ++o) dxr[o * s0 + off] += wv * dyr[o];
          }
        }
      });
    }
  });
}

template <class Arch, class T>
void depthwise_backward_filter(const conv_geometry& g, const T* x, const T* dy, T* dw) {
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0];
  const row_taps rt(g);
  const index_t items = g.c_out;
  const int threads = plan_threads(items, 2.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  workspace<T> ws(threads, Kp);
  run_items(items, threads, [&](index_t co, int tid) {
    T* acc = ws.of(tid);
    std::fill_n(acc, Kp, T(0));
    const index_t ci = co / Og;
    for (index_t n = 0; n < g.batch; ++n) {
      const T* xp = x + (n * g.c_in + ci) * Pin;
      const T* dyp = dy + (n * g.c_out + co) * P;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi > lo)
            acc[wrow + kw0] += dot<Arch>(hi - lo, dyp + orow + lo, xp + irow + lo * s0 + off, s0);
        }
      });
    }
    std::copy_n(acc, Kp, dw + co * Kp);
  });
}

/// The fused depthwise backward, parallel over (sample, input channel): for each output channel
/// of the input channel's group, dz = dy·f'(arg) into a thread buffer (identity: dy itself), then
/// db, the dx rows (SIMD axpy's) and the dw taps (SIMD dot products) from it; dw and db are
/// per-thread partial sums, reduced at the end.
template <class Arch, class T, class F>
void depthwise_backward(const conv_geometry& g, const F& f, const T* dy, const T* arg, const T* x,
                        const T* w, T* dx, T* dw, T* db) {
  constexpr bool is_identity = activation_traits<F>::is_identity;
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Og = g.cout_per_group(), s0 = g.stride[0], nw = Kp * g.c_out;
  const row_taps rt(g);
  const index_t items = g.batch * g.c_in;
  const int threads = plan_threads(items, 4.0 * static_cast<double>(P * Kp * g.batch * g.c_out));
  const bool partials = threads > 1;
  const auto round16 = [](index_t v) { return (v + 15) / 16 * 16; };
  const index_t dz_size = is_identity ? 0 : round16(P);
  workspace<T> ws(threads, dz_size + (partials ? round16(nw) + round16(g.c_out) : 0));
  const auto dw_part = [&](int t) { return partials ? ws.of(t) + dz_size : dw; };
  const auto db_part = [&](int t) { return partials ? ws.of(t) + dz_size + round16(nw) : db; };
  for (int t = 0; t < (partials ? threads : 1); ++t) {
    std::fill_n(dw_part(t), nw, T(0));
    if (db) std::fill_n(db_part(t), g.c_out, T(0));
  }
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / g.c_in, ci = item % g.c_in;
    const T* xp = x + item * Pin;
    T* dxp = dx + item * Pin;
    T* dwp = dw_part(tid);
    T* dbp = db ? db_part(tid) : nullptr;
    std::fill_n(dxp, Pin, T(0));
    for (index_t j = 0; j < Og; ++j) {
      const index_t co = ci * Og + j;
      const index_t yoff = (n * g.c_out + co) * P;
      const T* dz = dy + yoff;
      if constexpr (!is_identity) {
        T* buf = ws.of(tid);
        simd::transform(
            P, buf, [&f](auto d, auto a) { return d * f.derivative(a); }, dy + yoff, arg + yoff);
        dz = buf;
      }
      if (dbp) dbp[co] += simd::sum(dz, P);
      const T* wp = w + co * Kp;
      T* dwc = dwp + co * Kp;
      for_each_row_pair(g, [&](index_t orow, index_t irow, index_t wrow) {
        for (index_t kw0 = 0; kw0 < g.kernel[0]; ++kw0) {
          const auto u = static_cast<std::size_t>(kw0);
          const index_t lo = rt.lo[u], hi = rt.hi[u], off = rt.off[u];
          if (hi <= lo) continue;
          const T wv = wp[wrow + kw0];
          const T* dzr = dz + orow;
          T* dxr = dxp + irow;
          if (s0 == 1) {
            axpy<Arch>(hi - lo, wv, dzr + lo, dxr + lo + off);
          } else {
            for (index_t o = lo; o < hi; ++o) dxr[o * s0 + off] += wv * dzr[o];
          }
          dwc[wrow + kw0] += dot<Arch>(hi - lo, dzr + lo, xp + irow + lo * s0 + off, s0);
        }
      });
    }
  });
  if (partials) {
    const index_t stride = ws.of(1) - ws.of(0);
    reduce_partials(dw_part(0), stride, threads, nw, dw);
    if (db) reduce_partials(db_part(0), stride, threads, g.c_out, db);
  }
}

}  // namespace impl::conv_looped
LUX_NAMESPACE_END
