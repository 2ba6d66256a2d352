// luxcpp — upsampling (nearest, bilinear, trilinear) and pixel shuffle: the generic (reference)
// implementation.
//
// Plain scalar loops over any element type T. Shapes are column-major (W fastest) with the
// spatial dimensions first, then C, then B. The public entry points and documentation are in
// lux/kernels/upsample.hpp, the argument checks in lux/kernels/upsample/detail.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "lux/core/config.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/shape.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {

// =================================================================================================
// nearest
// =================================================================================================

/// y[o] = x[o ÷ scale] along every dimension, scale[d] = ys[d] / xs[d] (an integer ≥ 1; 1 for
/// the channel and batch dimensions).
template <class T, std::size_t N>
void upsample_nearest(generic_op, const T* x, const shape_t<N>& xs, T* y, const shape_t<N>& ys) {
  LUX_TRACE_KERNEL("generic_op", "upsample_nearest");
  const shape_t<N> xstride = column_major_strides(xs);
  index_t n = 1;
  for (std::size_t d = 0; d < N; ++d) n *= ys[d];
  shape_t<N> o{};  // multi-index of y[k]
  for (index_t k = 0; k < n; ++k) {
    index_t src = 0;
    for (std::size_t d = 0; d < N; ++d) src += o[d] / (ys[d] / xs[d]) * xstride[d];
    y[k] = x[src];
    for (std::size_t d = 0; d < N; ++d) {
      if (++o[d] < ys[d]) break;
      o[d] = 0;
    }
  }
}

/// dx[i] = Σ_{o : o ÷ scale = i} dy[o]  (dy visited in column-major order).
template <class T, std::size_t N>
void upsample_nearest_backward(generic_op, const T* dy, const shape_t<N>& ys, T* dx,
                               const shape_t<N>& xs) {
  LUX_TRACE_KERNEL("generic_op", "upsample_nearest_backward");
  const shape_t<N> xstride = column_major_strides(xs);
  index_t nx = 1, ny = 1;
  for (std::size_t d = 0; d < N; ++d) {
    nx *= xs[d];
    ny *= ys[d];
  }
  for (index_t i = 0; i < nx; ++i) dx[i] = T(0);
  shape_t<N> o{};
  for (index_t k = 0; k < ny; ++k) {
    index_t dst = 0;
    for (std::size_t d = 0; d < N; ++d) dst += o[d] / (ys[d] / xs[d]) * xstride[d];
    dx[dst] += dy[k];
    for (std::size_t d = 0; d < N; ++d) {
      if (++o[d] < ys[d]) break;
      o[d] = 0;
    }
  }
}

// =================================================================================================
// linear (NNlib's upsample_linear_kernel!, which follows PyTorch's upsample_bilinear2d)
// =================================================================================================

/// The source-index ratio of one dimension: (in − 1)/(out − 1) (0 for out = 1) with aligned
/// corners, in/out without.
template <class T>
T linear_ratio(index_t in, index_t out, bool align_corners) {
  if (align_corners) return out > 1 ? T(in - 1) / T(out - 1) : T(0);
  return T(in) / T(out);
}

/// The two source indices of output index o and their weights: y = l0·x[i0] + l1·x[i1].
template <class T>
struct linear_tap {
  index_t i0 = 0, i1 = 0;
  T l0 = T(1), l1 = T(0);
};

/// real = ratio·o (aligned) or max(0, ratio·(o + ½) − ½); i0 = ⌊real⌋, i1 = i0 + 1 clamped to
/// the last index, l1 = real − i0, l0 = 1 − l1.
template <class T>
linear_tap<T> linear_source(T ratio, index_t o, bool align_corners, index_t in) {
  using std::floor;
  T real = align_corners ? ratio * T(o) : ratio * (T(o) + T(0.5)) - T(0.5);
  if (real < T(0)) real = T(0);
  linear_tap<T> t;
  t.i0 = std::min(static_cast<index_t>(floor(real)), in - 1);
  t.i1 = t.i0 < in - 1 ? t.i0 + 1 : t.i0;
  t.l1 = real - T(t.i0);
  t.l0 = T(1) - t.l1;
  return t;
}

/// Bilinear: x (W, H, C, B) → y (OW, OH, C, B),
/// y = h.l0·(w.l0·x[w.i0, h.i0] + w.l1·x[w.i1, h.i0]) + h.l1·(w.l0·x[w.i0, h.i1] + w.l1·x[w.i1,
/// h.i1]).
template <class T>
void upsample_bilinear(generic_op, const T* x, const shape_t<4>& xs, T* y, const shape_t<4>& ys,
                       bool align_corners) {
  LUX_TRACE_KERNEL("generic_op", "upsample_bilinear");
  const index_t IW = xs[0], IH = xs[1], OW = ys[0], OH = ys[1], planes = xs[2] * xs[3];
  const T rw = linear_ratio<T>(IW, OW, align_corners), rh = linear_ratio<T>(IH, OH, align_corners);
  for (index_t p = 0; p < planes; ++p) {
    const T* xp = x + p * IW * IH;
    T* yp = y + p * OW * OH;
    for (index_t oh = 0; oh < OH; ++oh) {
      const linear_tap<T> h = linear_source(rh, oh, align_corners, IH);
      for (index_t ow = 0; ow < OW; ++ow) {
        const linear_tap<T> w = linear_source(rw, ow, align_corners, IW);
        yp[oh * OW + ow] = h.l0 * (w.l0 * xp[h.i0 * IW + w.i0] + w.l1 * xp[h.i0 * IW + w.i1]) +
                           h.l1 * (w.l0 * xp[h.i1 * IW + w.i0] + w.l1 * xp[h.i1 * IW + w.i1]);
      }
    }
  }
}

/// The adjoint of upsample_bilinear: dx = 0, then every dy[o] is spread over its four taps with
/// the same weights (NNlib's ∇upsample_linear_kernel! order).
template <class T>
void upsample_bilinear_backward(generic_op, const T* dy, const shape_t<4>& ys, T* dx,
                                const shape_t<4>& xs, bool align_corners) {
  LUX_TRACE_KERNEL("generic_op", "upsample_bilinear_backward");
  const index_t IW = xs[0], IH = xs[1], OW = ys[0], OH = ys[1], planes = xs[2] * xs[3];
  const T rw = linear_ratio<T>(IW, OW, align_corners), rh = linear_ratio<T>(IH, OH, align_corners);
  for (index_t i = 0; i < planes * IW * IH; ++i) dx[i] = T(0);
  for (index_t p = 0; p < planes; ++p) {
    T* dxp = dx + p * IW * IH;
    const T* dyp = dy + p * OW * OH;
    for (index_t oh = 0; oh < OH; ++oh) {
      const linear_tap<T> h = linear_source(rh, oh, align_corners, IH);
      for (index_t ow = 0; ow < OW; ++ow) {
        const linear_tap<T> w = linear_source(rw, ow, align_corners, IW);
        const T g = dyp[oh * OW + ow];
        dxp[h.i0 * IW + w.i0] += w.l0 * h.l0 * g;
        dxp[h.i0 * IW + w.i1] += w.l1 * h.l0 * g;
        dxp[h.i1 * IW + w.i0] += w.l0 * h.l1 * g;
        dxp[h.i1 * IW + w.i1] += w.l1 * h.l1 * g;
      }
    }
  }
}

/// Trilinear: x (W, H, D, C, B) → y (OW, OH, OD, C, B), the bilinear formula nested once more
/// along D: y = d.l0·(bilinear on slice d.i0) + d.l1·(bilinear on slice d.i1).
template <class T>
void upsample_trilinear(generic_op, const T* x, const shape_t<5>& xs, T* y, const shape_t<5>& ys,
                        bool align_corners) {
  LUX_TRACE_KERNEL("generic_op", "upsample_trilinear");
  const index_t IW = xs[0], IH = xs[1], ID = xs[2], OW = ys[0], OH = ys[1], OD = ys[2];
  const index_t planes = xs[3] * xs[4];
  const T rw = linear_ratio<T>(IW, OW, align_corners), rh = linear_ratio<T>(IH, OH, align_corners);
  const T rd = linear_ratio<T>(ID, OD, align_corners);
  auto at = [&](const T* xp, index_t w, index_t h, index_t d) { return xp[(d * IH + h) * IW + w]; };
  for (index_t p = 0; p < planes; ++p) {
    const T* xp = x + p * IW * IH * ID;
    T* yp = y + p * OW * OH * OD;
    for (index_t od = 0; od < OD; ++od) {
      const linear_tap<T> d = linear_source(rd, od, align_corners, ID);
      for (index_t oh = 0; oh < OH; ++oh) {
        const linear_tap<T> h = linear_source(rh, oh, align_corners, IH);
        for (index_t ow = 0; ow < OW; ++ow) {
          const linear_tap<T> w = linear_source(rw, ow, align_corners, IW);
          yp[(od * OH + oh) * OW + ow] =
              d.l0 * (h.l0 * (w.l0 * at(xp, w.i0, h.i0, d.i0) + w.l1 * at(xp, w.i1, h.i0, d.i0)) +
                      h.l1 * (w.l0 * at(xp, w.i0, h.i1, d.i0) + w.l1 * at(xp, w.i1, h.i1, d.i0))) +
              d.l1 * (h.l0 * (w.l0 * at(xp, w.i0, h.i0, d.i1) + w.l1 * at(xp, w.i1, h.i0, d.i1)) +
                      h.l1 * (w.l0 * at(xp, w.i0, h.i1, d.i1) + w.l1 * at(xp, w.i1, h.i1, d.i1)));
        }
      }
    }
  }
}

/// The adjoint of upsample_trilinear (eight taps per output).
template <class T>
void upsample_trilinear_backward(generic_op, const T* dy, const shape_t<5>& ys, T* dx,
                                 const shape_t<5>& xs, bool align_corners) {
  LUX_TRACE_KERNEL("generic_op", "upsample_trilinear_backward");
  const index_t IW = xs[0], IH = xs[1], ID = xs[2], OW = ys[0], OH = ys[1], OD = ys[2];
  const index_t planes = xs[3] * xs[4];
  const T rw = linear_ratio<T>(IW, OW, align_corners), rh = linear_ratio<T>(IH, OH, align_corners);
  const T rd = linear_ratio<T>(ID, OD, align_corners);
  for (index_t i = 0; i < planes * IW * IH * ID; ++i) dx[i] = T(0);
  for (index_t p = 0; p < planes; ++p) {
    T* dxp = dx + p * IW * IH * ID;
    const T* dyp = dy + p * OW * OH * OD;
    auto at = [&](index_t w, index_t h, index_t d) -> T& { return dxp[(d * IH + h) * IW + w]; };
    for (index_t od = 0; od < OD; ++od) {
      const linear_tap<T> d = linear_source(rd, od, align_corners, ID);
      for (index_t oh = 0; oh < OH; ++oh) {
        const linear_tap<T> h = linear_source(rh, oh, align_corners, IH);
        for (index_t ow = 0; ow < OW; ++ow) {
          const linear_tap<T> w = linear_source(rw, ow, align_corners, IW);
          const T g = dyp[(od * OH + oh) * OW + ow];
          at(w.i0, h.i0, d.i0) += w.l0 * h.l0 * d.l0 * g;
          at(w.i1, h.i0, d.i0) += w.l1 * h.l0 * d.l0 * g;
          at(w.i0, h.i1, d.i0) += w.l0 * h.l1 * d.l0 * g;
          at(w.i1, h.i1, d.i0) += w.l1 * h.l1 * d.l0 * g;
          at(w.i0, h.i0, d.i1) += w.l0 * h.l0 * d.l1 * g;
          at(w.i1, h.i0, d.i1) += w.l1 * h.l0 * d.l1 * g;
          at(w.i0, h.i1, d.i1) += w.l0 * h.l1 * d.l1 * g;
          at(w.i1, h.i1, d.i1) += w.l1 * h.l1 * d.l1 * g;
        }
      }
    }
  }
}

// =================================================================================================
// pixel shuffle (NNlib: reshape to (spatial..., r, …, r, C, B), interleave each r with its
// spatial dimension, reshape to (r·spatial..., C, B))
// =================================================================================================

/// y[s₁·r + q₁, …, s_d·r + q_d, c, b] = x[s₁, …, s_d, q₁ + r·q₂ + … + r^(d−1)·q_d + r^d·c, b]
/// for x (spatial..., C·r^d, B), d = N − 2. `backward` = true computes the inverse permutation
/// (dx from dy) with the same index map.
template <class T, std::size_t N>
void pixel_shuffle_map(const T* src, T* dst, const shape_t<N>& xs, index_t r, bool backward) {
  constexpr std::size_t d = N - 2;
  shape_t<N> ys = xs;
  index_t rd = 1;
  for (std::size_t a = 0; a < d; ++a) {
    ys[a] = xs[a] * r;
    rd *= r;
  }
  ys[d] = xs[d] / rd;
  const shape_t<N> ystride = column_major_strides(ys);
  index_t n = 1;
  for (std::size_t a = 0; a < N; ++a) n *= xs[a];
  shape_t<N> i{};  // multi-index of x[k]
  for (index_t k = 0; k < n; ++k) {
    index_t ch = i[d], off = 0;
    for (std::size_t a = 0; a < d; ++a) {
      off += (i[a] * r + ch % r) * ystride[a];
      ch /= r;
    }
    off += ch * ystride[d] + i[d + 1] * ystride[d + 1];
    if (backward)
      dst[k] = src[off];
    else
      dst[off] = src[k];
    for (std::size_t a = 0; a < N; ++a) {
      if (++i[a] < xs[a]) break;
      i[a] = 0;
    }
  }
}

/// y = pixel_shuffle(x, r) (see pixel_shuffle_map); xs is x's shape.
template <class T, std::size_t N>
void pixel_shuffle(generic_op, const T* x, const shape_t<N>& xs, index_t r, T* y) {
  LUX_TRACE_KERNEL("generic_op", "pixel_shuffle");
  pixel_shuffle_map(x, y, xs, r, false);
}

/// dx = the inverse permutation of dy (pixel unshuffle); xs is x's (= dx's) shape.
template <class T, std::size_t N>
void pixel_shuffle_backward(generic_op, const T* dy, const shape_t<N>& xs, index_t r, T* dx) {
  LUX_TRACE_KERNEL("generic_op", "pixel_shuffle_backward");
  pixel_shuffle_map(dy, dx, xs, r, true);
}

}  // namespace impl
LUX_NAMESPACE_END
