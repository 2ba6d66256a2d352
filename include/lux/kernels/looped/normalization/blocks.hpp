// luxcpp — the looped normalization engine for statistics groups that are contiguous blocks of x:
// groupnorm, instancenorm and layernorm with Lux's channel dimension. See ../normalization.hpp.
#pragma once

#include <algorithm>
#include <array>

#include "lux/kernels/looped/normalization/rows.hpp"

// GCC 12 -Wmaybe-uninitialized false positive (PR 105593) in its AVX-512 intrinsics wherever
// xsimd's exp/tanh are inlined; see lux/kernels/looped/activation.hpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

LUX_NAMESPACE_BEGIN
namespace impl::norm_looped {

// =================================================================================================
// Groups that are contiguous blocks: groupnorm, instancenorm, layernorm (not across_batch).
// Block k = elements [k·n, (k+1)·n), n = S·group_channels; within a block, channel runs of S.
// =================================================================================================
template <class T, class F, class Arch>
struct block_engine {
  const norm_layout& L;
  const T* x;
  norm_affine<T> aff;
  const F& f;
  index_t n = L.group_size();
  index_t G = L.groups_per_sample();
  bool lanes = L.S == 1;  // scale/bias change every element: vectorize across them
  bool stream = static_cast<std::size_t>(L.numel()) * sizeof(T) >= LUX_NORM_STREAM_BYTES;

  T shift(index_t k) const { return x[k * n]; }
  moments<T> block_moments(index_t k, index_t lo, index_t hi) const {
    return range_moments<T, Arch>(x + k * n + lo, hi - lo, shift(k));
  }
  /// fn(c, b, lo, hi) for each channel run of block k's range [lo, hi) (S > 1).
  template <class Fn>
  void runs(index_t k, index_t lo, index_t hi, Fn&& fn) const {
    const index_t c0 = (k % G) * L.group_channels, b = k / G;
    while (lo < hi) {
      const index_t cl = lo / L.S, e = std::min(hi, (cl + 1) * L.S);
      fn(c0 + cl, b, lo, e);
      lo = e;
    }
  }
  /// The scale/bias index of block k's first element (lanes: element o uses index a0 + o).
  index_t affine_base(index_t k) const { return L.affine_index((k % G) * L.group_channels, k / G); }
  const T* scale_at(index_t a) const { return aff.scale ? aff.scale + a : nullptr; }
  const T* bias_at(index_t a) const { return aff.bias ? aff.bias + a : nullptr; }
  T gamma(index_t a) const { return aff.scale ? aff.scale[a] : T(1); }
  T beta(index_t a) const { return aff.bias ? aff.bias[a] : T(0); }

  void apply(index_t k, index_t lo, index_t hi, T mu, T inv, T* y) const {
    const T* xb = x + k * n;
    T* yb = y + k * n;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto) {
        apply_row<Arch>(hi - lo, xb + lo, yb + lo, same<T>{mu}, a, b, f, stream);
      });
    } else {
      runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
        const index_t a = L.affine_index(c, b);
        apply_row<Arch>(e - s, xb + s, yb + s, same<T>{mu}, same<T>{inv * gamma(a)},
                        same<T>{beta(a)}, f, stream);
      });
    }
  }

  /// Pass 1 of backward over block k's range [lo, hi): returns {Σ dz·γ, Σ dz·γ·(x − μ)}.
  /// Per-(channel, sample) sums go to run_db/run_dg[c + C·b] (S > 1), per-element ones to
  /// lane_db/lane_dg[affine index] (S = 1); both accumulate (+=) and may be null.
  std::array<T, 2> reduce(index_t k, index_t lo, index_t hi, T mu, T inv, const T* dy, const T* y,
                          T* run_db, T* run_dg, T* lane_db, T* lane_dg) const {
    const index_t o = k * n;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      std::array<T, 2> r{};
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto w) {
        const index_t m = hi - lo, i = o + lo;
        if (lane_db)
          r = reduce_row<true, Arch>(m, dy + i, x + i, y ? y + i : y, same<T>{mu}, a, b, w, f,
                                     lane_db + a0, lane_dg + a0, inv);
        else
          r = reduce_row<false, Arch>(m, dy + i, x + i, y ? y + i : y, same<T>{mu}, a, b, w, f);
      });
      return r;
    }
    std::array<T, 2> total{};
    runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
      const index_t a = L.affine_index(c, b), i = o + s;
      const T g = gamma(a);
      const auto r = reduce_row<false, Arch>(e - s, dy + i, x + i, y ? y + i : y, same<T>{mu},
                                             same<T>{inv * g}, same<T>{beta(a)}, same<T>{T(1)}, f);
      total[0] += g * r[0];
      total[1] += g * r[1];
      if (run_db) {
        run_db[c + L.C * b] += r[0];
        run_dg[c + L.C * b] += r[1] * inv;
      }
    });
    return total;
  }

  /// Pass 2 of backward over block k's range [lo, hi).
  void dx(index_t k, index_t lo, index_t hi, T mu, T inv, std::array<T, 2> kc, const T* dy,
          const T* y, T* dxo) const {
    const index_t o = k * n;
    const T* yy = y ? y + o : y;
    if (lanes) {
      const index_t a0 = affine_base(k) + lo;
      with_lane_affine(scale_at(a0), bias_at(a0), inv, [&](auto a, auto b, auto) {
        dx_row<Arch>(hi - lo, dy + o + lo, x + o + lo, yy ? yy + lo : yy, dxo + o + lo, same<T>{mu},
                     a, b, same<T>{kc[0]}, same<T>{kc[1]}, f, stream);
      });
      return;
    }
    runs(k, lo, hi, [&](index_t c, index_t b, index_t s, index_t e) {
      const index_t a = L.affine_index(c, b);
      dx_row<Arch>(e - s, dy + o + s, x + o + s, yy ? yy + s : yy, dxo + o + s, same<T>{mu},
                   same<T>{inv * gamma(a)}, same<T>{beta(a)}, same<T>{kc[0]}, same<T>{kc[1]}, f,
                   stream);
    });
  }
};

template <class Arch, class T, class F>
void blocks_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                    T epsilon, T* mean, T* var, T* inv_std) {
  const block_engine<T, F, Arch> e{L, x, aff, f};
  const index_t K = L.num_groups(), work = L.numel();
  if (fused_is_balanced(K)) {
    for_each_parallel(K, work, [&](index_t k) {
      finish_statistics(e.block_moments(k, 0, e.n), e.shift(k), epsilon, k, mean, var, inv_std);
      e.apply(k, 0, e.n, mean[k], inv_std[k], y);
    });
    return;
  }
  // Few large groups: every thread takes the same slice [lo, hi) of every block.
  const index_t P = std::max<index_t>(1, std::min<index_t>(max_threads(), e.n / 1024));
  buffer<moments<T>> part(static_cast<std::size_t>(P * K));
  for_pieces(e.n, P, work, [&](index_t p, index_t lo, index_t hi) {
    for (index_t k = 0; k < K; ++k) part[p * K + k] = e.block_moments(k, lo, hi);
  });
  for (index_t k = 0; k < K; ++k) {
    moments<T> m;
    for (index_t p = 0; p < P; ++p) merge(m, part[p * K + k]);
    finish_statistics(m, e.shift(k), epsilon, k, mean, var, inv_std);
  }
  for_pieces(e.n, P, work, [&](index_t, index_t lo, index_t hi) {
    for (index_t k = 0; k < K; ++k) e.apply(k, lo, hi, mean[k], inv_std[k], y);
  });
}

template <class Arch, class T, class F>
void blocks_backward(const norm_layout& L, const T* dy, const T* x, const T* y, norm_affine<T> aff,
                     const F& f, const T* mean, const T* inv_std, bool batch_statistics, T* dx,
                     bool affine_grads, T* dscale, T* dbias) {
  const block_engine<T, F, Arch> e{L, x, aff, f};
  const index_t K = L.num_groups(), CB = L.C * L.B, work = L.numel(), A = L.affine_size();
  // Lane sums may go straight into dscale/dbias when no two threads touch one element: a
  // full-shape scale, or the split path below (threads own disjoint slices of every block).
  const bool fused = fused_is_balanced(K);
  const bool lane_direct = L.affine_sample_stride != 0 || !fused;
  const index_t P = fused ? std::max<index_t>(1, std::min<index_t>(max_threads(), K))
                          : std::max<index_t>(1, std::min<index_t>(max_threads(), e.n / 1024));
  const bool run_sums = affine_grads && !e.lanes;
  const bool lane_sums = affine_grads && e.lanes;
  buffer<T> run_db(run_sums ? static_cast<std::size_t>((fused ? 1 : P) * CB) : 0, T(0));
  buffer<T> run_dg(run_db.size(), T(0));
  // Per-thread lane sums, each thread's row on cache lines of its own (see thread_scratch).
  const index_t As = (A + index_t(thread_scratch<T>::line) - 1) / index_t(thread_scratch<T>::line) *
                     index_t(thread_scratch<T>::line);
  const index_t lane_rows = lane_sums && !lane_direct ? P : 0;
  const thread_scratch<T> lane_db(lane_rows * As), lane_dg(lane_rows * As);
  if (lane_sums && lane_direct) {
    std::fill_n(dscale, A, T(0));
    std::fill_n(dbias, A, T(0));
  }
  auto run_ws = [&](buffer<T>& v, index_t p) -> T* {
    return run_sums ? v.data() + (fused ? 0 : p * CB) : nullptr;
  };
  auto lane_ws = [&](const thread_scratch<T>& v, T* direct, index_t p) -> T* {
    if (!lane_sums) return nullptr;
    return lane_direct ? direct : v.p + p * As;
  };

  if (fused) {
    for_pieces(K, P, work, [&](index_t p, index_t k0, index_t k1) {
      T* ldb = lane_ws(lane_db, dbias, p);
      T* ldg = lane_ws(lane_dg, dscale, p);
      for (index_t k = k0; k < k1; ++k) {
        const auto sums = e.reduce(k, 0, e.n, mean[k], inv_std[k], dy, y, run_ws(run_db, p),
                                   run_ws(run_dg, p), ldb, ldg);
        const auto kc = dx_coefficients(sums, inv_std[k], e.n, batch_statistics);
        e.dx(k, 0, e.n, mean[k], inv_std[k], kc, dy, y, dx);
      }
    });
  } else {
    buffer<std::array<T, 2>> part(static_cast<std::size_t>(P * K));
    for_pieces(e.n, P, work, [&](index_t p, index_t lo, index_t hi) {
      for (index_t k = 0; k < K; ++k)
        part[p * K + k] =
            e.reduce(k, lo, hi, mean[k], inv_std[k], dy, y, run_ws(run_db, p), run_ws(run_dg, p),
                     lane_ws(lane_db, dbias, p), lane_ws(lane_dg, dscale, p));
    });
    buffer<std::array<T, 2>> kc(static_cast<std::size_t>(K));
    for (index_t k = 0; k < K; ++k) {
      std::array<T, 2> s{};
      for (index_t p = 0; p < P; ++p) s[0] += part[p * K + k][0], s[1] += part[p * K + k][1];
      kc[k] = dx_coefficients(s, inv_std[k], e.n, batch_statistics);
    }
    for_pieces(e.n, P, work, [&](index_t, index_t lo, index_t hi) {
      for (index_t k = 0; k < K; ++k) e.dx(k, lo, hi, mean[k], inv_std[k], kc[k], dy, y, dx);
    });
  }

  // Scale/bias gradients from the per-run or per-thread partial sums (fixed order).
  if (run_sums) {
    std::fill_n(dscale, A, T(0));
    std::fill_n(dbias, A, T(0));
    const index_t parts = static_cast<index_t>(run_db.size()) / CB;
    for (index_t p = 0; p < parts; ++p)
      for (index_t b = 0; b < L.B; ++b)
        for (index_t c = 0; c < L.C; ++c) {
          const index_t a = L.affine_index(c, b), r = p * CB + c + L.C * b;
          dbias[a] += run_db[r];
          dscale[a] += run_dg[r];
        }
  } else if (lane_sums && !lane_direct) {
    for (index_t a = 0; a < A; ++a) {
      T db = T(0), dg = T(0);
      for (index_t p = 0; p < P; ++p) db += lane_db.p[p * As + a], dg += lane_dg.p[p * As + a];
      dbias[a] = db;
      dscale[a] = dg;
    }
  }
}

}  // namespace impl::norm_looped
LUX_NAMESPACE_END

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
