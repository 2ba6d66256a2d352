// luxcpp — N-d convolution, its transpose and their backward passes: the looped (CPU)
// implementation, float and double (other element types fall back to the generic overloads).
//
// Layout (see the generic file): one sample's input is a (pixels × C_in) column-major matrix, its
// output a (pixels × C_out) one, and the weight of group grp is the (K_g × C_out/groups) matrix
// W_g, K_g = ∏k · C_in/groups, stored as is in the (k..., C_in/groups, C_out) array. Hence
//
//   forward   Y[tile, grp] = Col(tile) · W_g              Col = im2col of the tile: (m × K_g)
//   data      dCol = dY[tile, grp] · W_gᵀ, then col2im     (scatter-add into dx)
//   filter    dW_g += Col(tile)ᵀ · dY[tile, grp]           (per-thread partial sums, reduced)
//
// The forward and data products run on conv/gemm.hpp's register-blocked GEMM (gemm_packed): the
// weights packed once per call, the tile read in place, a 3-vector × 8-column block of the output
// in registers (AVX-512). The filter product runs on Eigen's blocked GEMM kernel called directly
// on the buffers (gemm_engine: packing buffers allocated once per thread and call, never Eigen's
// own threads). The work is split into (sample, pixel tile) items over OpenMP threads; each
// thread owns its buffers in a workspace allocated once per call (nothing is allocated inside the
// item loop), sized so that a tile stays in L2. Bias and activation are applied to each output
// tile right after its GEMM, while it is in cache (the "epilogue"); the pre-activation is saved
// there too when asked. Special cases:
//   * Stride 1 (any kernel, dilation, padding, groups): no im2col. The forward is an implicit GEMM
//     over the zero-padded input (conv/implicit.hpp: each tile copies its input window once and
//     the GEMM reads the im2col columns from it in place), and so is the data gradient, which for
//     stride 1 is the forward convolution of dy by the reversed, channel-transposed kernel.
//   * 1×…×1 kernels with stride 1 and no padding skip im2col: Col is x itself.
//   * C_in/groups == 1 (depthwise, any channel multiplier; also a single-channel input) uses
//     direct kernels: row-wise SIMD axpy's over the kernel taps, parallel over (sample, channel);
//     the filter gradient is a set of SIMD dot products; the backward is one fused pass per
//     (sample, input channel) with per-thread partial sums for dw and db.
//   * The fused backward computes dz = dy·σ'(·) per tile into a thread buffer and uses it for the
//     bias sum, the filter GEMM and the data GEMM + col2im of the same tile (one im2col per tile),
//     parallel over samples (col2im of one sample must stay in one thread). With fewer samples
//     than threads, or stride 1, it runs the separate passes instead: dz, then the data gradient
//     (parallel over (sample, group, channel chunk) — chunks own disjoint channels of dx — or the
//     implicit forward above), and the filter gradient over (sample, tile).
// Determinism: for a fixed thread count every reduction has a fixed order.
//
// Files: conv/gemm.hpp (element types, the GEMM engines, SIMD row helpers, threads, workspaces,
// pixel tiles), conv/im2col.hpp (im2col/col2im, the epilogue, partial-sum reduction),
// conv/implicit.hpp (the stride-1 implicit GEMM),
// conv/depthwise.hpp (the direct depthwise kernels); this file holds the looped_op entry points:
// the element-wise passes and the GEMM paths, dispatching to the depthwise kernels.
#pragma once

#include "lux/core/eigen.hpp"  // Eigen, with GCC 12's false AVX-512 warnings silenced
#include "lux/core/kernel_trace.hpp"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/core/tensor.hpp"
#include "lux/kernels/generic/conv.hpp"
#include "lux/kernels/looped/conv/depthwise.hpp"
#include "lux/kernels/looped/conv/gemm.hpp"
#include "lux/kernels/looped/conv/im2col.hpp"
#include "lux/kernels/looped/conv/implicit.hpp"

#if LUX_HAS_OPENMP
#include <omp.h>
#endif

LUX_NAMESPACE_BEGIN
namespace impl {

// ---------------------------------------------------------------------------------------------
// Element-wise passes over (pixels, C, batch) arrays
// ---------------------------------------------------------------------------------------------

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_bias_activation(looped_op, const F& f, index_t pixels, index_t C, index_t batch,
                          const T* a, const T* b, T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_bias_activation");
  LUX_DISPATCH("conv_bias_activation", (T, F), f, pixels, C, batch, a, b, y, z);
  using namespace conv_looped;
  const index_t items = C * batch;
  const int threads = plan_threads(items, static_cast<double>(pixels * items) * 8);
  run_items(items, threads, [&](index_t item, int) {
    const index_t c = item % C;
    const index_t off = item * pixels;
    if (a != y) std::copy_n(a + off, pixels, y + off);
    epilogue_run(f, y + off, z ? z + off : nullptr, b ? b[c] : T(0), pixels);
  });
}

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_bias_gradient(looped_op, index_t pixels, index_t C, index_t batch, const T* dy, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_bias_gradient");
  LUX_DISPATCH("conv_bias_gradient", (T), pixels, C, batch, dy, db);
  using namespace conv_looped;
  const int threads = plan_threads(C, static_cast<double>(pixels * C * batch));
  run_items(C, threads, [&](index_t c, int) {
    T s = T(0);
    for (index_t n = 0; n < batch; ++n) s += simd::sum(dy + pixels * (c + C * n), pixels);
    db[c] = s;
  });
}

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_activation_backward(looped_op mode, const F& f, index_t pixels, index_t C, index_t batch,
                              const T* dy, const T* arg, T* dz, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_activation_backward");
  LUX_DISPATCH("conv_activation_backward", (T, F), f, pixels, C, batch, dy, arg, dz, db);
  using namespace conv_looped;
  if constexpr (activation_traits<F>::is_identity) {
    if (dz != dy) std::copy_n(dy, pixels * C * batch, dz);
    if (db) conv_bias_gradient(mode, pixels, C, batch, dy, db);
  } else {
    const int threads = plan_threads(C, static_cast<double>(pixels * C * batch) * 8);
    run_items(C, threads, [&](index_t c, int) {
      T s = T(0);
      for (index_t n = 0; n < batch; ++n) {
        const index_t off = pixels * (c + C * n);
        simd::transform(
            pixels, dz + off, [&f](auto d, auto a) { return d * f.derivative(a); }, dy + off,
            arg + off);
        if (db) s += simd::sum(dz + off, pixels);
      }
      if (db) db[c] = s;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_forward(looped_op, const conv_geometry& g, const T* x, const T* w, const T* b, const F& f,
                  T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_forward");
  LUX_DISPATCH("conv_forward", (T, F), g, x, w, b, f, y, z);
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_forward<Arch>(g, x, w, b, f, y, z);
  const bool pointwise = is_pointwise(g);
  if (!pointwise && use_implicit_forward(g)) return implicit_forward<Arch>(g, x, w, b, f, y, z);
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  int threads = plan_threads(g.batch * cdiv(P, 16), flops);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads, register_block<T, Arch>::MR);
  const index_t items = g.batch * tp.tiles;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const row_taps rt(g);
  workspace<T> ws(threads, pointwise ? 0 : tp.tile * Kg);
  const auto wp = pack_weights<Arch>(g.groups, Kg, Og, w, false);  // W_g, once per call
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / tp.tiles, t = item % tp.tiles;
    const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
    const T* xn = x + n * g.c_in * Pin;
    T* yn = y + n * g.c_out * P;
    T* col = ws.of(tid);
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = xn + grp * Cg * Pin;
      const T* a = xg + p0;
      index_t lda = Pin;
      if (!pointwise) {
        im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
        a = col;
        lda = m;
      }
      gemm_packed<Arch>(m, a, lda, wp[static_cast<std::size_t>(grp)], yn + grp * Og * P + p0, P,
                        false);
    }
    epilogue(f, yn, z ? z + n * g.c_out * P : nullptr, b, g.c_out, P, p0, m);
  });
}

// ---------------------------------------------------------------------------------------------
// Backward: data and filter gradients
// ---------------------------------------------------------------------------------------------

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward_data(looped_op, const conv_geometry& g, const T* dy, const T* w, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward_data");
  LUX_DISPATCH("conv_backward_data", (T), g, dy, w, dx);
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_backward_data<Arch>(g, dy, w, dx);
  if (use_implicit_backward_data(g)) return implicit_backward_data<Arch>(g, dy, w, dx);
  const index_t P = g.out_pixels(), Pin = g.in_pixels(), Kp = g.kernel_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = Kp * Cg;
  const bool pointwise = is_pointwise(g);
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  // Items own disjoint channels of dx: (sample, group, chunk of the group's channels); chunks
  // only when there are fewer (sample, group) units than threads.
  const index_t units = g.batch * g.groups;
  if (units == 0) return;  // an empty batch: dx is empty too
  int threads = plan_threads(units * Cg, flops);
  index_t chunks = units >= threads ? 1 : std::min<index_t>(Cg, cdiv(threads, units));
  const index_t csize = cdiv(Cg, chunks);
  chunks = cdiv(Cg, csize);
  const index_t items = units * chunks;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const tile_plan tp =
      plan_tiles(P, csize * Kp, sizeof(T), items, threads, register_block<T, Arch>::MR);
  const row_taps rt(g);
  workspace<T> ws(threads, pointwise ? 0 : tp.tile * csize * Kp);
  // W_gᵀ restricted to each chunk's channels, packed once per call: (group, chunk) order.
  std::vector<packed_b<T, Arch>> wt;
  wt.reserve(static_cast<std::size_t>(g.groups * chunks));
  for (index_t grp = 0; grp < g.groups; ++grp)
    for (index_t ch = 0; ch < chunks; ++ch) {
      const index_t lo = ch * csize, nc = std::min(Cg, lo + csize) - lo;
      wt.emplace_back(Og, nc * Kp, w + grp * Og * Kg + lo * Kp, Kg, true);
    }
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / (g.groups * chunks), rem = item % (g.groups * chunks);
    const index_t grp = rem / chunks, c_lo = (rem % chunks) * csize;
    const index_t nc = std::min(Cg, c_lo + csize) - c_lo;
    T* dxg = dx + (n * g.c_in + grp * Cg + c_lo) * Pin;
    const T* dyg = dy + (n * g.c_out + grp * Og) * P;
    const auto& wpack = wt[static_cast<std::size_t>(rem)];  // rows [c_lo·Kp, (c_lo + nc)·Kp) of W_g
    if (!pointwise) std::fill_n(dxg, nc * Pin, T(0));
    T* dcol = ws.of(tid);
    for (index_t t = 0; t < tp.tiles; ++t) {
      const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
      if (pointwise) {  // dx is dCol
        gemm_packed<Arch>(m, dyg + p0, P, wpack, dxg + p0, Pin, false);
      } else {
        gemm_packed<Arch>(m, dyg + p0, P, wpack, dcol, m, false);
        im2col<true, Arch, T>(g, rt, dxg, nc, p0, p1, dcol);
      }
    }
  });
}

template <class T, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward_filter(looped_op, const conv_geometry& g, const T* x, const T* dy, T* dw) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward_filter");
  LUX_DISPATCH("conv_backward_filter", (T), g, x, dy, dw);
  using namespace conv_looped;
  if (g.cin_per_group() == 1) return depthwise_backward_filter<Arch>(g, x, dy, dw);
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const index_t nw = Kg * g.c_out;
  const bool pointwise = is_pointwise(g);
  const double flops = 2.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  int threads = plan_threads(g.batch * cdiv(P, 16), flops);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads);
  const index_t items = g.batch * tp.tiles;
  threads = static_cast<int>(std::min<index_t>(threads, items));
  const index_t col_size = pointwise ? 0 : (tp.tile * Kg + 15) / 16 * 16;
  const bool partials = threads > 1;
  const row_taps rt(g);
  workspace<T> ws(threads, col_size + (partials ? nw : 0));
  gemm_engines<T, true, false> gemm(threads, Kg, Og, tp.tile);
  if (partials) {
    for (int t = 0; t < threads; ++t) std::fill_n(ws.of(t) + col_size, nw, T(0));
  } else {
    std::fill_n(dw, nw, T(0));
  }
  run_items(items, threads, [&](index_t item, int tid) {
    const index_t n = item / tp.tiles, t = item % tp.tiles;
    const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
    T* col = ws.of(tid);
    T* acc = partials ? col + col_size : dw;
    for (index_t grp = 0; grp < g.groups; ++grp) {
      const T* xg = x + (n * g.c_in + grp * Cg) * Pin;
      const T* a = xg + p0;
      index_t lda = Pin;
      if (!pointwise) {
        im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
        a = col;
        lda = m;
      }
      gemm[tid].accumulate(Kg, Og, m, a, lda, dy + (n * g.c_out + grp * Og) * P + p0, P,
                           acc + grp * Og * Kg, Kg);
    }
  });
  if (partials) reduce_partials(ws.of(0) + col_size, ws.of(1) - ws.of(0), threads, nw, dw);
}

// ---------------------------------------------------------------------------------------------
// Fused backward and the transposed forward
// ---------------------------------------------------------------------------------------------

/// dz = dy·f'(arg), dx = ∇conv_data(dz, w), dw = ∇conv_filter(x, dz), db = Σ dz (db may be
/// nullptr). With at least as many samples as threads: one pass per tile (see the file comment).
template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_backward(looped_op mode, const conv_geometry& g, const F& f, const T* dy, const T* arg,
                   const T* x, const T* w, T* dx, T* dw, T* db) {
  LUX_TRACE_KERNEL("looped_op", "conv_backward");
  LUX_DISPATCH("conv_backward", (T, F), g, f, dy, arg, x, w, dx, dw, db);
  using namespace conv_looped;
  constexpr bool is_identity = activation_traits<F>::is_identity;
  const index_t P = g.out_pixels(), Pin = g.in_pixels();
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group(), Kg = g.kernel_pixels() * Cg;
  const double flops = 4.0 * static_cast<double>(P * g.batch * g.c_out * Kg);
  if (Cg == 1) return depthwise_backward<Arch>(g, f, dy, arg, x, w, dx, dw, db);
  int threads = plan_threads(g.batch, flops);
  // Stride 1: the data gradient as an implicit forward (no col2im), in separate passes.
  const bool per_sample = (threads == 1 || g.batch >= threads) && !use_implicit_backward_data(g);
  if (!per_sample) {
    // Separate passes: dz (and db), then the data and filter gradients.
    Tensor<T, 1> dz_store;
    const T* dz = dy;
    if (!is_identity) {
      dz_store = Tensor<T, 1>::uninitialized(shape_t<1>{P * g.c_out * g.batch});
      conv_activation_backward(mode, f, P, g.c_out, g.batch, dy, arg, dz_store.data(), db);
      dz = dz_store.data();
    } else if (db) {
      conv_bias_gradient(mode, P, g.c_out, g.batch, dy, db);
    }
    conv_backward_data(mode, g, dz, w, dx);
    conv_backward_filter(mode, g, x, dz, dw);
    return;
  }

  const bool pointwise = is_pointwise(g);
  const tile_plan tp = plan_tiles(P, Kg, sizeof(T), g.batch, threads, register_block<T, Arch>::MR);
  const index_t nw = Kg * g.c_out;
  const bool partials = threads > 1;
  // Per thread: col | dcol | dz tile | dW partial | db partial.
  const auto round16 = [](index_t v) { return (v + 15) / 16 * 16; };
  const index_t col_size = pointwise ? 0 : round16(tp.tile * Kg);
  const index_t dz_size = is_identity ? 0 : round16(tp.tile * g.c_out);
  const index_t part_size = partials ? round16(nw) + round16(g.c_out) : 0;
  workspace<T> ws(threads, 2 * col_size + dz_size + part_size);
  gemm_engines<T, true, false> gemm_filter(threads, Kg, Og, tp.tile);
  const auto wt = pack_weights<Arch>(g.groups, Kg, Og, w, true);  // W_gᵀ, once per call
  const auto dw_part = [&](int t) { return partials ? ws.of(t) + 2 * col_size + dz_size : dw; };
  const auto db_part = [&](int t) {
    return partials ? ws.of(t) + 2 * col_size + dz_size + round16(nw) : db;
  };
  for (int t = 0; t < (partials ? threads : 1); ++t) {
    std::fill_n(dw_part(t), nw, T(0));
    if (db) std::fill_n(db_part(t), g.c_out, T(0));
  }
  const row_taps rt(g);
  run_items(g.batch, threads, [&](index_t n, int tid) {
    T* col = ws.of(tid);
    T* dcol = col + col_size;
    T* dzb = col + 2 * col_size;
    T* dwp = dw_part(tid);
    T* dbp = db ? db_part(tid) : nullptr;
    const T* xn = x + n * g.c_in * Pin;
    const T* dyn = dy + n * g.c_out * P;
    T* dxn = dx + n * g.c_in * Pin;
    if (!pointwise) std::fill_n(dxn, g.c_in * Pin, T(0));
    for (index_t t = 0; t < tp.tiles; ++t) {
      const index_t p0 = t * tp.tile, p1 = std::min(P, p0 + tp.tile), m = p1 - p0;
      // dz of this tile, for every channel.
      const T* dz = dyn + p0;
      index_t ldz = P;
      if constexpr (!is_identity) {
        const T* an = arg + n * g.c_out * P + p0;
        for (index_t c = 0; c < g.c_out; ++c)
          simd::transform(
              m, dzb + c * m, [&f](auto d, auto a) { return d * f.derivative(a); },
              dyn + p0 + c * P, an + c * P);
        dz = dzb;
        ldz = m;
      }
      if (dbp)
        for (index_t c = 0; c < g.c_out; ++c) dbp[c] += simd::sum(dz + c * ldz, m);
      for (index_t grp = 0; grp < g.groups; ++grp) {
        const T* xg = xn + grp * Cg * Pin;
        const T* a = xg + p0;
        index_t lda = Pin;
        if (!pointwise) {
          im2col<false, Arch, T>(g, rt, xg, Cg, p0, p1, col);
          a = col;
          lda = m;
        }
        const T* dzg = dz + grp * Og * ldz;
        const auto& wpack = wt[static_cast<std::size_t>(grp)];
        gemm_filter[tid].accumulate(Kg, Og, m, a, lda, dzg, ldz, dwp + grp * Og * Kg, Kg);
        if (pointwise) {
          gemm_packed<Arch>(m, dzg, ldz, wpack, dxn + grp * Cg * Pin + p0, Pin, false);
        } else {
          gemm_packed<Arch>(m, dzg, ldz, wpack, dcol, m, false);
          im2col<true, Arch, T>(g, rt, dxn + grp * Cg * Pin, Cg, p0, p1, dcol);
        }
      }
    }
  });
  if (partials) {
    const index_t stride = ws.of(1) - ws.of(0);
    reduce_partials(dw_part(0), stride, threads, nw, dw);
    if (db) reduce_partials(db_part(0), stride, threads, g.c_out, db);
  }
}

/// y = f(∇conv_data(x, w) .+ b) (conv_transpose; g as in the generic overload).
template <class T, class F, class Arch = xsimd::default_arch>
requires conv_looped::is_real_v<T>
void conv_transpose_forward(looped_op mode, const conv_geometry& g, const T* x, const T* w,
                            const T* b, const F& f, T* y, T* z) {
  LUX_TRACE_KERNEL("looped_op", "conv_transpose_forward");
  LUX_DISPATCH("conv_transpose_forward", (T, F), g, x, w, b, f, y, z);
  conv_backward_data(mode, g, x, w, y);
  if (b || z || !activation_traits<F>::is_identity)
    conv_bias_activation(mode, f, g.in_pixels(), g.c_in, g.batch, y, b, y, z);
}

}  // namespace impl
LUX_NAMESPACE_END
