// luxcpp — upsampling and pixel shuffle: the looped (CPU) implementation for float and double.
//
// Every kernel works on rows (the contiguous W dimension) and runs OpenMP over independent rows or
// planes, so no two threads write the same element and results do not depend on the thread count:
//   nearest:   each output row copies its source row with every element repeated s₀ times (s₀ = 1:
//              memcpy; s₀ = 2: a compile-time stride the compiler vectorizes); the backward pass
//              owns one dx row per iteration and adds its s₁·s₂·… source rows in the generic
//              order (bit-identical to the generic kernel).
//   linear:    separable: input rows are interpolated along W once (a small row cache), output
//              rows combine them vertically with contiguous vector code; the backward pass
//              accumulates cotangent rows vertically, then gathers each dx row through the
//              transposed W table (CSR, built once per call). OpenMP over
//              chunks of planes (rounding differs from the generic kernel's per-element order).
//   pixel shuffle: each output (input, for the backward) row interleaves r source rows.
// Allocation: the linear tables (O(OW + OH + OD) elements) once per call and the linear kernels
// row scratch once per thread, outside the loops.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/shape.hpp"
#include "lux/kernels/generic/upsample.hpp"

LUX_NAMESPACE_BEGIN
namespace impl {
namespace upsample_looped {

template <class T>
inline constexpr bool fast_type_v = std::is_same_v<T, float> || std::is_same_v<T, double>;

/// y[i·S + q] = x[i] for i < n, q < S (S = compile-time s where s ∈ {2, 3, 4}, else runtime).
template <index_t S, class T>
void repeat_row(const T* __restrict x, index_t n, index_t s_rt, T* __restrict y) {
  const index_t s = S > 0 ? S : s_rt;
  for (index_t i = 0; i < n; ++i)
    for (index_t q = 0; q < s; ++q) y[i * s + q] = x[i];
}

/// dx[i] += dy[i·s + q] for i < n (one q).
template <index_t S, class T>
void add_strided(const T* __restrict dy, index_t n, index_t s_rt, T* __restrict dx) {
  const index_t s = S > 0 ? S : s_rt;
  for (index_t i = 0; i < n; ++i) dx[i] += dy[i * s];
}

template <class F>
void with_factor(index_t s, F&& f) {
  switch (s) {
    case 2:
      f(std::integral_constant<index_t, 2>{});
      break;
    case 3:
      f(std::integral_constant<index_t, 3>{});
      break;
    case 4:
      f(std::integral_constant<index_t, 4>{});
      break;
    default:
      f(std::integral_constant<index_t, 0>{});
  }
}

/// Structure-of-arrays table of linear taps along one dimension.
template <class T>
struct linear_table {
  std::vector<index_t> i0, i1;
  std::vector<T> l0, l1;
  linear_table(index_t in, index_t out, bool align_corners)
      : i0(static_cast<std::size_t>(out)),
        i1(static_cast<std::size_t>(out)),
        l0(static_cast<std::size_t>(out)),
        l1(static_cast<std::size_t>(out)) {
    const T ratio = linear_ratio<T>(in, out, align_corners);
    for (index_t o = 0; o < out; ++o) {
      const linear_tap<T> t = linear_source(ratio, o, align_corners, in);
      const auto k = static_cast<std::size_t>(o);
      i0[k] = t.i0;
      i1[k] = t.i1;
      l0[k] = t.l0;
      l1[k] = t.l1;
    }
  }
  linear_tap<T> operator[](index_t o) const {
    const auto k = static_cast<std::size_t>(o);
    return {i0[k], i1[k], l0[k], l1[k]};
  }
};

}  // namespace upsample_looped

// --- nearest -----------------------------------------------------------------------------------

template <class T, std::size_t N>
requires upsample_looped::fast_type_v<T>
void upsample_nearest(looped_op, const T* x, const shape_t<N>& xs, T* y, const shape_t<N>& ys) {
  LUX_TRACE_KERNEL("looped_op", "upsample_nearest");
  LUX_DISPATCH("upsample_nearest", (T), x, xs, y, ys);
  using namespace upsample_looped;
  const shape_t<N> xstride = column_major_strides(xs);
  const index_t s0 = ys[0] / xs[0], IW = xs[0], OW = ys[0];
  index_t rows = 1;
  for (std::size_t d = 1; d < N; ++d) rows *= ys[d];
  if (OW == 0) return;
  parallel_for(
      rows,
      [&](index_t r) {
        // Source row of output row r (multi-index over dims 1..N-1).
        index_t src = 0, rest = r;
        for (std::size_t d = 1; d < N; ++d) {
          const index_t o = rest % ys[d];
          rest /= ys[d];
          src += o / (ys[d] / xs[d]) * xstride[d];
        }
        const T* xr = x + src;
        T* yr = y + r * OW;
        if (s0 == 1)
          std::memcpy(yr, xr, static_cast<std::size_t>(IW) * sizeof(T));
        else
          with_factor(s0, [&](auto S) { repeat_row<decltype(S)::value>(xr, IW, s0, yr); });
      },
      rows * OW);
}

template <class T, std::size_t N>
requires upsample_looped::fast_type_v<T>
void upsample_nearest_backward(looped_op, const T* dy, const shape_t<N>& ys, T* dx,
                               const shape_t<N>& xs) {
  LUX_TRACE_KERNEL("looped_op", "upsample_nearest_backward");
  LUX_DISPATCH("upsample_nearest_backward", (T), dy, ys, dx, xs);
  using namespace upsample_looped;
  const shape_t<N> ystride = column_major_strides(ys);
  shape_t<N> scale{};
  index_t rows = 1, per_row = 1;  // input rows; output rows per input row
  for (std::size_t d = 0; d < N; ++d) {
    scale[d] = xs[d] ? ys[d] / xs[d] : 1;
    if (d >= 1) {
      rows *= xs[d];
      per_row *= scale[d];
    }
  }
  const index_t IW = xs[0], s0 = scale[0];
  if (IW == 0) return;
  parallel_for(
      rows,
      [&](index_t j) {
        // Multi-index of input row j, then its output rows in column-major order.
        shape_t<N> i{};
        index_t rest = j;
        for (std::size_t d = 1; d < N; ++d) {
          i[d] = rest % xs[d];
          rest /= xs[d];
        }
        T* dxr = dx + j * IW;
        std::fill(dxr, dxr + IW, T(0));
        shape_t<N> q{};
        for (index_t k = 0; k < per_row; ++k) {
          index_t off = 0;
          for (std::size_t d = 1; d < N; ++d) off += (i[d] * scale[d] + q[d]) * ystride[d];
          for (index_t q0 = 0; q0 < s0; ++q0)
            with_factor(
                s0, [&](auto S) { add_strided<decltype(S)::value>(dy + off + q0, IW, s0, dxr); });
          for (std::size_t d = 1; d < N; ++d) {
            if (++q[d] < scale[d]) break;
            q[d] = 0;
          }
        }
      },
      rows * IW * per_row * s0);
}

// --- bilinear / trilinear -----------------------------------------------------------------------
//
// Separable evaluation. The generic formula y = h.l0·(w.l0·x[w.i0, h.i0] + w.l1·x[w.i1, h.i0]) +
// h.l1·(…) is evaluated as: R(i) = the W-interpolation of input row i (two gathers per output
// column), then y_row = h.l0·R(h.i0) + h.l1·R(h.i1) (contiguous, vectorized) — the same
// association. Consecutive output rows share input rows, so the R rows live in a small cache
// (2 slots for bilinear, 4 for trilinear): about one R row per input row instead of two gathers
// per tap per output. The backward pass mirrors it: the cotangent rows are first accumulated
// vertically into one row per input row (V), then each dx row is gathered from its V row through
// the transposed W table (each dx element is written once; no read-modify-write chains).

namespace upsample_looped {

/// Row of the W-interpolation of one input row: r[o] = w.l0[o]·x[w.i0[o]] + w.l1[o]·x[w.i1[o]].
template <class T>
void interpolate_row(const T* __restrict x, const linear_table<T>& tw, index_t OW,
                     T* __restrict r) {
  const index_t* __restrict i0 = tw.i0.data();
  const index_t* __restrict i1 = tw.i1.data();
  const T* __restrict w0 = tw.l0.data();
  const T* __restrict w1 = tw.l1.data();
  for (index_t o = 0; o < OW; ++o) r[o] = w0[o] * x[i0[o]] + w1[o] * x[i1[o]];
}

/// The adjoint of a linear table as a gather list (CSR): input index i receives
/// Σ_{k ∈ [start[i], start[i+1])} weight[k] · v[out[k]], the terms in increasing output order.
template <class T>
struct linear_adjoint {
  std::vector<index_t> start, out;
  std::vector<T> weight;
  linear_adjoint(const linear_table<T>& t, index_t in, index_t nout)
      : start(static_cast<std::size_t>(in) + 1, 0),
        out(static_cast<std::size_t>(2 * nout)),
        weight(static_cast<std::size_t>(2 * nout)) {
    for (index_t o = 0; o < nout; ++o) {
      const linear_tap<T> w = t[o];
      ++start[static_cast<std::size_t>(w.i0) + 1];
      ++start[static_cast<std::size_t>(w.i1) + 1];
    }
    for (index_t i = 0; i < in; ++i)
      start[static_cast<std::size_t>(i + 1)] += start[static_cast<std::size_t>(i)];
    std::vector<index_t> fill(start.begin(), start.end() - 1);
    for (index_t o = 0; o < nout; ++o) {
      const linear_tap<T> w = t[o];
      const auto k0 = static_cast<std::size_t>(fill[static_cast<std::size_t>(w.i0)]++);
      out[k0] = o;
      weight[k0] = w.l0;
      const auto k1 = static_cast<std::size_t>(fill[static_cast<std::size_t>(w.i1)]++);
      out[k1] = o;
      weight[k1] = w.l1;
    }
  }
  /// dx[i] = Σ weight · v[out] for every input index i (each written once).
  void apply(const T* __restrict v, index_t in, T* __restrict dx) const {
    for (index_t i = 0; i < in; ++i) {
      T sum = T(0);
      for (index_t k = start[static_cast<std::size_t>(i)];
           k < start[static_cast<std::size_t>(i + 1)]; ++k)
        sum += weight[static_cast<std::size_t>(k)] * v[out[static_cast<std::size_t>(k)]];
      dx[i] = sum;
    }
  }
};

/// A K-slot cache of interpolated input rows, keyed by the input row's offset in its plane.
template <class T, int K>
class row_cache {
 public:
  explicit row_cache(index_t OW) : rows_(static_cast<std::size_t>(K * OW)), OW_(OW) { reset(); }
  void reset() {
    for (auto& k : key_) k = -1;
  }
  /// The interpolated row for input row `key` (data at x + key), evicting a slot whose key is not
  /// in `keep` (the rows the caller still needs).
  template <std::size_t NK>
  const T* get(index_t key, const T* x, const linear_table<T>& tw, const index_t (&keep)[NK]) {
    for (int s = 0; s < K; ++s)
      if (key_[s] == key) return slot(s);
    int victim = 0;
    for (int s = 0; s < K; ++s) {
      bool needed = false;
      for (index_t k : keep) needed = needed || key_[s] == k;
      if (!needed) {
        victim = s;
        break;
      }
    }
    interpolate_row(x + key, tw, OW_, slot(victim));
    key_[victim] = key;
    return slot(victim);
  }

 private:
  T* slot(int s) { return rows_.data() + s * OW_; }
  std::vector<T> rows_;
  index_t OW_;
  index_t key_[K];
};

/// Runs f(plane_begin, plane_end) over chunks of planes in parallel (one chunk per thread, so
/// per-chunk scratch is allocated once per thread), serially for small problems.
template <class F>
void for_plane_chunks(index_t planes, index_t work_per_plane, F&& f) {
  const bool big = planes * work_per_plane >= (index_t{1} << 15);
  parallel_chunks(planes, f, 1, big ? 1 : planes + 1);
}

}  // namespace upsample_looped

template <class T>
requires upsample_looped::fast_type_v<T>
void upsample_bilinear(looped_op, const T* x, const shape_t<4>& xs, T* y, const shape_t<4>& ys,
                       bool align_corners) {
  LUX_TRACE_KERNEL("looped_op", "upsample_bilinear");
  LUX_DISPATCH("upsample_bilinear", (T), x, xs, y, ys, align_corners);
  using namespace upsample_looped;
  const index_t IW = xs[0], IH = xs[1], OW = ys[0], OH = ys[1], planes = xs[2] * xs[3];
  const linear_table<T> tw(IW, OW, align_corners), th(IH, OH, align_corners);
  for_plane_chunks(planes, OW * OH, [&](index_t lo, index_t hi) {
    row_cache<T, 2> cache(OW);
    for (index_t p = lo; p < hi; ++p) {
      const T* xp = x + p * IW * IH;
      cache.reset();
      for (index_t oh = 0; oh < OH; ++oh) {
        const linear_tap<T> h = th[oh];
        const index_t k0 = h.i0 * IW, k1 = h.i1 * IW;
        const T* __restrict r0 = cache.get(k0, xp, tw, {k1});
        const T* __restrict r1 = cache.get(k1, xp, tw, {k0});
        T* __restrict yr = y + (p * OH + oh) * OW;
        for (index_t o = 0; o < OW; ++o) yr[o] = h.l0 * r0[o] + h.l1 * r1[o];
      }
    }
  });
}

template <class T>
requires upsample_looped::fast_type_v<T>
void upsample_bilinear_backward(looped_op, const T* dy, const shape_t<4>& ys, T* dx,
                                const shape_t<4>& xs, bool align_corners) {
  LUX_TRACE_KERNEL("looped_op", "upsample_bilinear_backward");
  LUX_DISPATCH("upsample_bilinear_backward", (T), dy, ys, dx, xs, align_corners);
  using namespace upsample_looped;
  const index_t IW = xs[0], IH = xs[1], OW = ys[0], OH = ys[1], planes = xs[2] * xs[3];
  const linear_table<T> tw(IW, OW, align_corners), th(IH, OH, align_corners);
  const linear_adjoint<T> adj(tw, IW, OW);
  for_plane_chunks(planes, OW * OH, [&](index_t lo, index_t hi) {
    std::vector<T> v(static_cast<std::size_t>(IH * OW));  // one accumulated row per input row
    for (index_t p = lo; p < hi; ++p) {
      std::fill(v.begin(), v.end(), T(0));
      const T* dyp = dy + p * OW * OH;
      for (index_t oh = 0; oh < OH; ++oh) {
        const linear_tap<T> h = th[oh];
        const T* __restrict g = dyp + oh * OW;
        T* __restrict v0 = v.data() + h.i0 * OW;
        for (index_t o = 0; o < OW; ++o) v0[o] += h.l0 * g[o];
        T* __restrict v1 = v.data() + h.i1 * OW;
        for (index_t o = 0; o < OW; ++o) v1[o] += h.l1 * g[o];
      }
      T* dxp = dx + p * IW * IH;
      for (index_t ih = 0; ih < IH; ++ih) adj.apply(v.data() + ih * OW, IW, dxp + ih * IW);
    }
  });
}

template <class T>
requires upsample_looped::fast_type_v<T>
void upsample_trilinear(looped_op, const T* x, const shape_t<5>& xs, T* y, const shape_t<5>& ys,
                        bool align_corners) {
  LUX_TRACE_KERNEL("looped_op", "upsample_trilinear");
  LUX_DISPATCH("upsample_trilinear", (T), x, xs, y, ys, align_corners);
  using namespace upsample_looped;
  const index_t IW = xs[0], IH = xs[1], ID = xs[2], OW = ys[0], OH = ys[1], OD = ys[2];
  const index_t planes = xs[3] * xs[4];
  const linear_table<T> tw(IW, OW, align_corners), th(IH, OH, align_corners),
      td(ID, OD, align_corners);
  for_plane_chunks(planes, OW * OH * OD, [&](index_t lo, index_t hi) {
    row_cache<T, 4> cache(OW);
    for (index_t p = lo; p < hi; ++p) {
      const T* xp = x + p * IW * IH * ID;
      cache.reset();
      for (index_t od = 0; od < OD; ++od) {
        const linear_tap<T> d = td[od];
        for (index_t oh = 0; oh < OH; ++oh) {
          const linear_tap<T> h = th[oh];
          const index_t k00 = (d.i0 * IH + h.i0) * IW, k01 = (d.i0 * IH + h.i1) * IW;
          const index_t k10 = (d.i1 * IH + h.i0) * IW, k11 = (d.i1 * IH + h.i1) * IW;
          const index_t keep[4] = {k00, k01, k10, k11};
          const T* __restrict a = cache.get(k00, xp, tw, keep);
          const T* __restrict b = cache.get(k01, xp, tw, keep);
          const T* __restrict c = cache.get(k10, xp, tw, keep);
          const T* __restrict e = cache.get(k11, xp, tw, keep);
          T* __restrict yr = y + ((p * OD + od) * OH + oh) * OW;
          for (index_t o = 0; o < OW; ++o)
            yr[o] = d.l0 * (h.l0 * a[o] + h.l1 * b[o]) + d.l1 * (h.l0 * c[o] + h.l1 * e[o]);
        }
      }
    }
  });
}

template <class T>
requires upsample_looped::fast_type_v<T>
void upsample_trilinear_backward(looped_op, const T* dy, const shape_t<5>& ys, T* dx,
                                 const shape_t<5>& xs, bool align_corners) {
  LUX_TRACE_KERNEL("looped_op", "upsample_trilinear_backward");
  LUX_DISPATCH("upsample_trilinear_backward", (T), dy, ys, dx, xs, align_corners);
  using namespace upsample_looped;
  const index_t IW = xs[0], IH = xs[1], ID = xs[2], OW = ys[0], OH = ys[1], OD = ys[2];
  const index_t planes = xs[3] * xs[4];
  const linear_table<T> tw(IW, OW, align_corners), th(IH, OH, align_corners),
      td(ID, OD, align_corners);
  const linear_adjoint<T> adj(tw, IW, OW);
  for_plane_chunks(planes, OW * OH * OD, [&](index_t lo, index_t hi) {
    std::vector<T> v(static_cast<std::size_t>(ID * IH * OW));
    for (index_t p = lo; p < hi; ++p) {
      std::fill(v.begin(), v.end(), T(0));
      const T* dyp = dy + p * OW * OH * OD;
      for (index_t od = 0; od < OD; ++od) {
        const linear_tap<T> d = td[od];
        for (index_t oh = 0; oh < OH; ++oh) {
          const linear_tap<T> h = th[oh];
          const T* __restrict g = dyp + (od * OH + oh) * OW;
          auto axpy = [&](index_t id, index_t ih, T wgt) {
            T* __restrict vr = v.data() + (id * IH + ih) * OW;
            for (index_t o = 0; o < OW; ++o) vr[o] += wgt * g[o];
          };
          axpy(d.i0, h.i0, d.l0 * h.l0);
          axpy(d.i0, h.i1, d.l0 * h.l1);
          axpy(d.i1, h.i0, d.l1 * h.l0);
          axpy(d.i1, h.i1, d.l1 * h.l1);
        }
      }
      T* dxp = dx + p * IW * IH * ID;
      for (index_t r = 0; r < ID * IH; ++r) adj.apply(v.data() + r * OW, IW, dxp + r * IW);
    }
  });
}

// --- pixel shuffle -----------------------------------------------------------------------------

namespace upsample_looped {
/// Row-wise pixel shuffle (forward: rows of y, backward: rows of dx). For output row (o₁, …,
/// o_{d−1}, c, b) of y with o_k = s_k·r + q_k, the r source rows are the rows (s₁, …) of the
/// x-planes with channel q₀ + r·q₁ + … + r^d·c, q₀ = 0..r−1, interleaved along W.
template <class T, std::size_t N>
void pixel_shuffle_rows(const T* src, T* dst, const shape_t<N>& xs, index_t r, bool backward) {
  constexpr std::size_t d = N - 2;
  shape_t<N> ys = xs;
  index_t rd = 1;
  for (std::size_t a = 0; a < d; ++a) {
    ys[a] = xs[a] * r;
    rd *= r;
  }
  ys[d] = xs[d] / rd;
  const shape_t<N> xstride = column_major_strides(xs);
  const index_t IW = xs[0], OW = ys[0];
  index_t rows = 1;
  for (std::size_t a = 1; a < N; ++a) rows *= ys[a];
  if (IW == 0) return;
  parallel_for(
      rows,
      [&](index_t row) {
        // Decompose the y row into (o₁, …, o_{d−1}, c, b).
        index_t rest = row, xoff = 0, ch = 0, rpow = r;
        for (std::size_t a = 1; a < d; ++a) {
          const index_t o = rest % ys[a];
          rest /= ys[a];
          xoff += (o / r) * xstride[a];
          ch += (o % r) * rpow;
          rpow *= r;
        }
        const index_t c = rest % ys[d], b = rest / ys[d];
        ch += c * rpow;  // rpow = r^d here
        xoff += b * xstride[d + 1];
        T* yrow_fwd = backward ? nullptr : dst + row * OW;
        const T* yrow_bwd = backward ? src + row * OW : nullptr;
        for (index_t q0 = 0; q0 < r; ++q0) {
          const index_t xrow = xoff + (ch + q0) * xstride[d];
          if (!backward) {
            const T* __restrict xs_ = src + xrow;
            T* __restrict y = yrow_fwd + q0;
            for (index_t s = 0; s < IW; ++s) y[s * r] = xs_[s];
          } else {
            T* __restrict xs_ = dst + xrow;
            const T* __restrict y = yrow_bwd + q0;
            for (index_t s = 0; s < IW; ++s) xs_[s] = y[s * r];
          }
        }
      },
      rows * OW);
}
}  // namespace upsample_looped

template <class T, std::size_t N>
requires upsample_looped::fast_type_v<T>
void pixel_shuffle(looped_op, const T* x, const shape_t<N>& xs, index_t r, T* y) {
  LUX_TRACE_KERNEL("looped_op", "pixel_shuffle");
  LUX_DISPATCH("pixel_shuffle", (T), x, xs, r, y);
  upsample_looped::pixel_shuffle_rows(x, y, xs, r, false);
}

template <class T, std::size_t N>
requires upsample_looped::fast_type_v<T>
void pixel_shuffle_backward(looped_op, const T* dy, const shape_t<N>& xs, index_t r, T* dx) {
  LUX_TRACE_KERNEL("looped_op", "pixel_shuffle_backward");
  LUX_DISPATCH("pixel_shuffle_backward", (T), dy, xs, r, dx);
  upsample_looped::pixel_shuffle_rows(dy, dx, xs, r, true);
}

}  // namespace impl
LUX_NAMESPACE_END
