// luxcpp — N-d convolution, its transpose and their backward passes: the generic (reference)
// implementation. Plain nested loops straight from the definition, for any element type T
// (float, double, long double, a user number type with + * and construction from int).
//
// Every routine works on a resolved `conv_geometry` with exactly three spatial dimensions: the
// public header (lux/kernels/conv.hpp; the checks are in lux/kernels/conv/detail.hpp) checks the
// arguments and pads 1-d and 2-d problems with trailing spatial dimensions of size 1 (kernel 1,
// stride 1, no padding), which changes nothing.
// Arrays are column-major, Lux order:
//   x  (I0, I1, I2, C_in, B)             index i0 + I0·(i1 + I1·(i2 + I2·(c + C_in·n)))
//   w  (K0, K1, K2, C_in/groups, C_out)  the kernel of output channel co reads the C_in/groups
//                                        input channels of its group, grp = co ÷ (C_out/groups)
//   y  (O0, O1, O2, C_out, B)
// The definition (0-based, per spatial dimension s: stride s, dilation d, low padding p):
//   y[o, co, n] = Σ_{cl < C_in/groups} Σ_{k} w[k', cl, co] · x[o·s − p + k·d, grp·C_in/groups + cl,
//   n]
// where k' = K − 1 − k when `flipped` (a true convolution: Lux `Conv`, NNlib's default) and
// k' = k otherwise (cross-correlation: Lux `cross_correlation = true`, PyTorch); x outside
// [0, I) is zero (padding). The backward passes are the adjoints of this sum:
//   conv_backward_data    dx[i, ci, n] = Σ over (o, co, k) with o·s − p + k·d = i of w[k', cl,
//   co]·dy[o, co, n] conv_backward_filter  dw[k', cl, co] = Σ_{n, o} x[o·s − p + k·d, ci, n] ·
//   dy[o, co, n]
// and conv_transpose (Lux ConvTranspose) *is* conv_backward_data, used forward.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include "lux/core/activations.hpp"
#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

// ---------------------------------------------------------------------------------------------
// Type aliases and the resolved geometry
// ---------------------------------------------------------------------------------------------

/// A fully resolved convolution problem with three spatial dimensions (unused ones have size 1).
/// `out` is given, not derived: conv_transpose with an output padding, and its backward pass,
/// use an `out` smaller or larger than the formula's; every loop bounds-checks its reads.
struct conv_geometry {
  using dims = std::array<index_t, 3>;
  dims in{1, 1, 1};        ///< input spatial size (of x)
  dims kernel{1, 1, 1};    ///< kernel spatial size
  dims out{1, 1, 1};       ///< output spatial size (of y)
  dims stride{1, 1, 1};    ///< ≥ 1
  dims pad{0, 0, 0};       ///< low-side padding (the high side is implied by `out`)
  dims dilation{1, 1, 1};  ///< ≥ 1
  index_t c_in = 1, c_out = 1, groups = 1, batch = 1;
  bool flipped = true;  ///< true convolution (kernel flipped) or cross-correlation

  index_t in_pixels() const noexcept { return in[0] * in[1] * in[2]; }
  index_t out_pixels() const noexcept { return out[0] * out[1] * out[2]; }
  index_t kernel_pixels() const noexcept { return kernel[0] * kernel[1] * kernel[2]; }
  index_t cin_per_group() const noexcept { return c_in / groups; }
  index_t cout_per_group() const noexcept { return c_out / groups; }
  /// The kernel index actually applied at tap k of dimension d (k' above).
  index_t tap(int d, index_t k) const noexcept { return flipped ? kernel[d] - 1 - k : k; }
};

// ---------------------------------------------------------------------------------------------
// Forward: y = f(conv(x, w) + b), optionally saving the pre-activation z
// ---------------------------------------------------------------------------------------------

/// y = f(conv(x, w) .+ b) with b along the channel dimension; b == nullptr means no bias.
/// z, when not nullptr, receives the pre-activation conv(x, w) .+ b.
template <class T, class F>
void conv_forward(generic_op, const conv_geometry& g, const T* x, const T* w, const T* b,
                  const F& f, T* y, T* z) {
  LUX_TRACE_KERNEL("generic_op", "conv_forward");
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group();
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  index_t idx = 0;  // linear index of y[o0, o1, o2, co, n]
  for (index_t n = 0; n < g.batch; ++n)
    for (index_t co = 0; co < g.c_out; ++co) {
      const index_t grp = co / Og;
      for (index_t o2 = 0; o2 < O[2]; ++o2)
        for (index_t o1 = 0; o1 < O[1]; ++o1)
          for (index_t o0 = 0; o0 < O[0]; ++o0, ++idx) {
            T acc = T(0);
            for (index_t cl = 0; cl < Cg; ++cl) {
              const index_t ci = grp * Cg + cl;
              for (index_t k2 = 0; k2 < K[2]; ++k2) {
                const index_t i2 = o2 * g.stride[2] - g.pad[2] + k2 * g.dilation[2];
                if (i2 < 0 || i2 >= I[2]) continue;
                for (index_t k1 = 0; k1 < K[1]; ++k1) {
                  const index_t i1 = o1 * g.stride[1] - g.pad[1] + k1 * g.dilation[1];
                  if (i1 < 0 || i1 >= I[1]) continue;
                  for (index_t k0 = 0; k0 < K[0]; ++k0) {
                    const index_t i0 = o0 * g.stride[0] - g.pad[0] + k0 * g.dilation[0];
                    if (i0 < 0 || i0 >= I[0]) continue;
                    const index_t wi =
                        g.tap(0, k0) +
                        K[0] * (g.tap(1, k1) + K[1] * (g.tap(2, k2) + K[2] * (cl + Cg * co)));
                    const index_t xi = i0 + I[0] * (i1 + I[1] * (i2 + I[2] * (ci + g.c_in * n)));
                    acc += w[wi] * x[xi];
                  }
                }
              }
            }
            const T pre = b ? T(acc + b[co]) : acc;
            if (z) z[idx] = pre;
            y[idx] = f(pre);
          }
    }
}

// ---------------------------------------------------------------------------------------------
// Backward: data and filter gradients (the adjoints of the sum above)
// ---------------------------------------------------------------------------------------------

/// dx = ∇conv_data(dy, w): every term of the forward sum scatters w·dy back to the x element it
/// read. dx is overwritten.
template <class T>
void conv_backward_data(generic_op, const conv_geometry& g, const T* dy, const T* w, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "conv_backward_data");
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group();
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  const index_t nx = g.in_pixels() * g.c_in * g.batch;
  for (index_t i = 0; i < nx; ++i) dx[i] = T(0);
  index_t idx = 0;
  for (index_t n = 0; n < g.batch; ++n)
    for (index_t co = 0; co < g.c_out; ++co) {
      const index_t grp = co / Og;
      for (index_t o2 = 0; o2 < O[2]; ++o2)
        for (index_t o1 = 0; o1 < O[1]; ++o1)
          for (index_t o0 = 0; o0 < O[0]; ++o0, ++idx) {
            const T d = dy[idx];
            for (index_t cl = 0; cl < Cg; ++cl) {
              const index_t ci = grp * Cg + cl;
              for (index_t k2 = 0; k2 < K[2]; ++k2) {
                const index_t i2 = o2 * g.stride[2] - g.pad[2] + k2 * g.dilation[2];
                if (i2 < 0 || i2 >= I[2]) continue;
                for (index_t k1 = 0; k1 < K[1]; ++k1) {
                  const index_t i1 = o1 * g.stride[1] - g.pad[1] + k1 * g.dilation[1];
                  if (i1 < 0 || i1 >= I[1]) continue;
                  for (index_t k0 = 0; k0 < K[0]; ++k0) {
                    const index_t i0 = o0 * g.stride[0] - g.pad[0] + k0 * g.dilation[0];
                    if (i0 < 0 || i0 >= I[0]) continue;
                    const index_t wi =
                        g.tap(0, k0) +
                        K[0] * (g.tap(1, k1) + K[1] * (g.tap(2, k2) + K[2] * (cl + Cg * co)));
                    const index_t xi = i0 + I[0] * (i1 + I[1] * (i2 + I[2] * (ci + g.c_in * n)));
                    dx[xi] += w[wi] * d;
                  }
                }
              }
            }
          }
    }
}

/// dw = ∇conv_filter(x, dy): dw[k', cl, co] = Σ_{n, o} x[o·s − p + k·d, ci, n]·dy[o, co, n].
/// dw is overwritten.
template <class T>
void conv_backward_filter(generic_op, const conv_geometry& g, const T* x, const T* dy, T* dw) {
  LUX_TRACE_KERNEL("generic_op", "conv_backward_filter");
  const index_t Cg = g.cin_per_group(), Og = g.cout_per_group();
  const auto& I = g.in;
  const auto& K = g.kernel;
  const auto& O = g.out;
  const index_t P = g.out_pixels();
  for (index_t co = 0; co < g.c_out; ++co) {
    const index_t grp = co / Og;
    for (index_t cl = 0; cl < Cg; ++cl) {
      const index_t ci = grp * Cg + cl;
      for (index_t k2 = 0; k2 < K[2]; ++k2)
        for (index_t k1 = 0; k1 < K[1]; ++k1)
          for (index_t k0 = 0; k0 < K[0]; ++k0) {
            T acc = T(0);
            for (index_t n = 0; n < g.batch; ++n)
              for (index_t o2 = 0; o2 < O[2]; ++o2) {
                const index_t i2 = o2 * g.stride[2] - g.pad[2] + k2 * g.dilation[2];
                if (i2 < 0 || i2 >= I[2]) continue;
                for (index_t o1 = 0; o1 < O[1]; ++o1) {
                  const index_t i1 = o1 * g.stride[1] - g.pad[1] + k1 * g.dilation[1];
                  if (i1 < 0 || i1 >= I[1]) continue;
                  for (index_t o0 = 0; o0 < O[0]; ++o0) {
                    const index_t i0 = o0 * g.stride[0] - g.pad[0] + k0 * g.dilation[0];
                    if (i0 < 0 || i0 >= I[0]) continue;
                    const index_t xi = i0 + I[0] * (i1 + I[1] * (i2 + I[2] * (ci + g.c_in * n)));
                    const index_t yi = o0 + O[0] * (o1 + O[1] * o2) + P * (co + g.c_out * n);
                    acc += x[xi] * dy[yi];
                  }
                }
              }
            const index_t wi =
                g.tap(0, k0) +
                K[0] * (g.tap(1, k1) + K[1] * (g.tap(2, k2) + K[2] * (cl + Cg * co)));
            dw[wi] = acc;
          }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Activation and bias: the element-wise parts of the fused forward and backward passes
// ---------------------------------------------------------------------------------------------

/// db[c] = Σ_{p, n} dy[p, c, n] over an array viewed as (pixels, C, batch).
template <class T>
void conv_bias_gradient(generic_op, index_t pixels, index_t C, index_t batch, const T* dy, T* db) {
  LUX_TRACE_KERNEL("generic_op", "conv_bias_gradient");
  for (index_t c = 0; c < C; ++c) db[c] = T(0);
  for (index_t n = 0; n < batch; ++n)
    for (index_t c = 0; c < C; ++c) {
      const T* p = dy + pixels * (c + C * n);
      T sum = T(0);
      for (index_t i = 0; i < pixels; ++i) sum += p[i];
      db[c] += sum;
    }
}

/// Over an array viewed as (pixels, C, batch): pre = a + b[c] (b == nullptr: pre = a);
/// z = pre when z != nullptr; y = f(pre). y may equal a.
template <class T, class F>
void conv_bias_activation(generic_op, const F& f, index_t pixels, index_t C, index_t batch,
                          const T* a, const T* b, T* y, T* z) {
  LUX_TRACE_KERNEL("generic_op", "conv_bias_activation");
  index_t idx = 0;
  for (index_t n = 0; n < batch; ++n)
    for (index_t c = 0; c < C; ++c)
      for (index_t p = 0; p < pixels; ++p, ++idx) {
        const T pre = b ? T(a[idx] + b[c]) : a[idx];
        if (z) z[idx] = pre;
        y[idx] = f(pre);
      }
}

/// dz = dy · f'(arg) over (pixels, C, batch), arg = the saved output y when F's derivative takes
/// the output, the saved pre-activation z otherwise (identity: arg is ignored and may be null);
/// db[c] = Σ_{p, n} dz[p, c, n] when db != nullptr. dz may equal dy.
template <class T, class F>
void conv_activation_backward(generic_op, const F& f, index_t pixels, index_t C, index_t batch,
                              const T* dy, const T* arg, T* dz, T* db) {
  LUX_TRACE_KERNEL("generic_op", "conv_activation_backward");
  constexpr bool is_identity = activation_traits<F>::is_identity;
  if (db)
    for (index_t c = 0; c < C; ++c) db[c] = T(0);
  index_t idx = 0;
  for (index_t n = 0; n < batch; ++n)
    for (index_t c = 0; c < C; ++c) {
      T sum = T(0);
      for (index_t p = 0; p < pixels; ++p, ++idx) {
        const T d = is_identity ? dy[idx] : T(dy[idx] * f.derivative(arg[idx]));
        dz[idx] = d;
        sum += d;
      }
      if (db) db[c] += sum;
    }
}

// ---------------------------------------------------------------------------------------------
// Composite passes (the looped file specializes the ones worth fusing)
// ---------------------------------------------------------------------------------------------

/// conv_transpose forward: y = f(∇conv_data(x, w) .+ b) where g describes the convolution whose
/// data gradient this is (g.in = y's spatial size, g.out = x's, g.c_in = y's channels).
template <class T, class F>
void conv_transpose_forward(generic_op mode, const conv_geometry& g, const T* x, const T* w,
                            const T* b, const F& f, T* y, T* z) {
  LUX_TRACE_KERNEL("generic_op", "conv_transpose_forward");
  conv_backward_data(mode, g, x, w, y);
  if (b || z || !activation_traits<F>::is_identity)
    conv_bias_activation(mode, f, g.in_pixels(), g.c_in, g.batch, y, b, y, z);
}

/// The fused conv backward: dz = dy·f'(arg) (see conv_activation_backward), then
/// dx = ∇conv_data(dz, w), dw = ∇conv_filter(x, dz), db = Σ dz (db == nullptr: no bias).
template <class T, class F>
void conv_backward(generic_op mode, const conv_geometry& g, const F& f, const T* dy, const T* arg,
                   const T* x, const T* w, T* dx, T* dw, T* db) {
  LUX_TRACE_KERNEL("generic_op", "conv_backward");
  std::vector<T> dz_store;
  const T* dz = dy;
  if (!activation_traits<F>::is_identity || db) {
    dz_store.resize(static_cast<std::size_t>(g.out_pixels() * g.c_out * g.batch));
    conv_activation_backward(mode, f, g.out_pixels(), g.c_out, g.batch, dy, arg, dz_store.data(),
                             db);
    dz = dz_store.data();
  }
  conv_backward_data(mode, g, dz, w, dx);
  conv_backward_filter(mode, g, x, dz, dw);
}

}  // namespace impl
LUX_NAMESPACE_END
