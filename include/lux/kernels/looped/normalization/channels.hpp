// luxcpp — the looped normalization engine for one statistics group per channel over all samples
// (batchnorm), and for groups spread over several runs per sample (groupnorm and instancenorm
// with the channels before Lux's channel dimension), which run each sample through it. See
// ../normalization.hpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>

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
// One group per channel over all samples: batchnorm (across_batch). Channel c of sample b is
// the run [(c + C·b)·S, (c + C·b + 1)·S).
// =================================================================================================
template <class T, class F, class Arch>
struct channel_engine {
  const norm_layout& L;
  const T* x;
  const F& f;
  const T* mean;
  const T* scale;  // inv_std_c·γ_c per channel
  const T* shift;  // β_c per channel
  bool stream = static_cast<std::size_t>(L.numel()) * sizeof(T) >= LUX_NORM_STREAM_BYTES;

  const T* run(const T* p, index_t c, index_t b) const { return p + (c + L.C * b) * L.S; }
  T* run(T* p, index_t c, index_t b) const { return p + (c + L.C * b) * L.S; }

  // S > 1: one channel, samples [b0, b1).
  moments<T> channel_moments(index_t c, index_t b0, index_t b1) const {
    moments<T> m;
    for (index_t b = b0; b < b1; ++b)
      merge(m, range_moments<T, Arch>(run(x, c, b), L.S, x[c * L.S]));
    return m;
  }
  void channel_apply(index_t c, index_t b0, index_t b1, T* y) const {
    for (index_t b = b0; b < b1; ++b)
      apply_row<Arch>(L.S, run(x, c, b), run(y, c, b), same<T>{mean[c]}, same<T>{scale[c]},
                      same<T>{shift[c]}, f, stream);
  }
  std::array<T, 2> channel_reduce(index_t c, index_t b0, index_t b1, const T* dy,
                                  const T* y) const {
    std::array<T, 2> s{};
    for (index_t b = b0; b < b1; ++b) {
      const auto r = reduce_row<false, Arch>(L.S, run(dy, c, b), run(x, c, b), y ? run(y, c, b) : y,
                                             same<T>{mean[c]}, same<T>{scale[c]}, same<T>{shift[c]},
                                             same<T>{T(1)}, f);
      s[0] += r[0];
      s[1] += r[1];
    }
    return s;
  }
  void channel_dx(index_t c, index_t b0, index_t b1, std::array<T, 2> kc, const T* dy, const T* y,
                  T* dx) const {
    for (index_t b = b0; b < b1; ++b)
      dx_row<Arch>(L.S, run(dy, c, b), run(x, c, b), y ? run(y, c, b) : y, run(dx, c, b),
                   same<T>{mean[c]}, same<T>{scale[c]}, same<T>{shift[c]}, same<T>{kc[0]},
                   same<T>{kc[1]}, f, stream);
  }

  // S = 1: channels are the lanes; samples [b0, b1). Welford per lane in a frame shifted by
  // `shift`: the rounding error of a running mean scales with its magnitude, so the shift is
  // each channel's mean over the first (up to) 16 samples, which leaves |μ − shift| ≈ σ/4
  // rather than the ≈ σ that shifting by one sample would.
  void lane_shift(T* shift) const {
    const index_t m = std::min<index_t>(L.B, 16);
    std::fill_n(shift, L.C, T(0));
    for (index_t b = 0; b < m; ++b)
      for_each_lane<T, Arch>(L.C, [&]<class V>(index_t j) {
        store(shift, j, load<V>(shift, j) + load<V>(x + L.C * b, j));
      });
    for (index_t c = 0; c < L.C; ++c) shift[c] /= static_cast<T>(m);
  }
  // Samples [b0, b1) in blocks of R rows (R·C elements ≤ 16 KiB, so the second pass reads them
  // from L1): per lane the block's mean of x − shift (rows summed four at a time, which keeps
  // the accumulators' dependency chains short), then its sum of squared deviations around that
  // mean, merged into the running (mean, M2) with Chan's formula. A per-element Welford update
  // ran at a third of this speed: its chain through the running mean is long.
  void lane_moments(index_t b0, index_t b1, const T* shift, T* lmean, T* lm2) const {
    const index_t C = L.C;
    const index_t R = std::max<index_t>(4, static_cast<index_t>(16384 / sizeof(T)) / C);
    std::fill_n(lmean, C, T(0));
    std::fill_n(lm2, C, T(0));
    const thread_scratch<T> scratch(2 * C);
    T *bs = scratch.p, *bq = scratch.p + C;
    index_t n = 0;
    for (index_t lo = b0; lo < b1; lo += R) {
      const index_t hi = std::min(b1, lo + R), m = hi - lo;
      const T* r0 = x + C * lo;
      std::fill_n(bs, C, T(0));
      std::fill_n(bq, C, T(0));
      // pass 1: bs = Σ (x − shift) / m
      index_t r = 0;
      for (; r + 4 <= m; r += 4) {
        const T* p = r0 + C * r;
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V s = load<V>(shift, j);
          const V a = (load<V>(p, j) - s) + (load<V>(p + C, j) - s);
          const V b = (load<V>(p + 2 * C, j) - s) + (load<V>(p + 3 * C, j) - s);
          store(bs, j, load<V>(bs, j) + (a + b));
        });
      }
      for (; r < m; ++r)
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          store(bs, j, load<V>(bs, j) + (load<V>(r0 + C * r, j) - load<V>(shift, j)));
        });
      const T rm = T(1) / static_cast<T>(m);
      for_each_lane<T, Arch>(C, [&]<class V>(index_t j) { store(bs, j, load<V>(bs, j) * V(rm)); });
      // pass 2: bq = Σ (x − shift − block mean)²
      r = 0;
      for (; r + 4 <= m; r += 4) {
        const T* p = r0 + C * r;
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V s = load<V>(shift, j) + load<V>(bs, j);
          const V d0 = load<V>(p, j) - s, d1 = load<V>(p + C, j) - s;
          const V d2 = load<V>(p + 2 * C, j) - s, d3 = load<V>(p + 3 * C, j) - s;
          store(bq, j, load<V>(bq, j) + ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)));
        });
      }
      for (; r < m; ++r)
        for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
          const V d = load<V>(r0 + C * r, j) - (load<V>(shift, j) + load<V>(bs, j));
          store(bq, j, load<V>(bq, j) + d * d);
        });
      // merge (count n, mean, M2) ∪ (m, bs, bq)
      const T wb = static_cast<T>(m) / static_cast<T>(n + m);
      const T wab = static_cast<T>(n) * wb;
      for_each_lane<T, Arch>(C, [&]<class V>(index_t j) {
        const V ma = load<V>(lmean, j), d = load<V>(bs, j) - ma;
        store(lmean, j, ma + d * V(wb));
        store(lm2, j, load<V>(lm2, j) + load<V>(bq, j) + d * d * V(wab));
      });
      n += m;
    }
  }
  void lane_apply(index_t b0, index_t b1, T* y) const {
    for (index_t b = b0; b < b1; ++b)
      apply_row<Arch>(L.C, x + L.C * b, y + L.C * b, each<T>{mean}, each<T>{scale}, each<T>{shift},
                      f, stream);
  }
  void lane_reduce(index_t b0, index_t b1, const T* dy, const T* y, T* s1, T* s2) const {
    std::fill_n(s1, L.C, T(0));
    std::fill_n(s2, L.C, T(0));
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = L.C * b;
      reduce_row<true, Arch>(L.C, dy + o, x + o, y ? y + o : y, each<T>{mean}, each<T>{scale},
                             each<T>{shift}, same<T>{T(1)}, f, s1, s2);
    }
  }
  void lane_dx(index_t b0, index_t b1, const T* kx, const T* k0, const T* dy, const T* y,
               T* dx) const {
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = L.C * b;
      dx_row<Arch>(L.C, dy + o, x + o, y ? y + o : y, dx + o, each<T>{mean}, each<T>{scale},
                   each<T>{shift}, each<T>{kx}, each<T>{k0}, f, stream);
    }
  }
};

/// Per-channel inv_std·γ and β (the row kernels' a and b).
template <class T>
void channel_affine(index_t C, norm_affine<T> aff, const T* inv_std, buffer<T>& scale,
                    buffer<T>& shift) {
  scale.resize(static_cast<std::size_t>(C));
  shift.resize(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) {
    scale[c] = inv_std[c] * (aff.scale ? aff.scale[c] : T(1));
    shift[c] = aff.bias ? aff.bias[c] : T(0);
  }
}

/// Pieces of the batch for the split paths.
inline index_t sample_pieces(index_t B) {
  return std::max<index_t>(1, std::min<index_t>(max_threads(), B));
}

template <class Arch, class T, class F>
void channels_apply(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                    const T* mean, const T* inv_std, bool stream) {
  buffer<T> scale, shift;
  channel_affine(L.C, aff, inv_std, scale, shift);
  const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data(), stream};
  if (L.S > 1 && fused_is_balanced(L.C)) {
    for_each_parallel(L.C, L.numel(), [&](index_t c) { e.channel_apply(c, 0, L.B, y); });
    return;
  }
  for_pieces(L.B, sample_pieces(L.B), L.numel(), [&](index_t, index_t b0, index_t b1) {
    if (L.S == 1)
      e.lane_apply(b0, b1, y);
    else
      for (index_t c = 0; c < L.C; ++c) e.channel_apply(c, b0, b1, y);
  });
}

/// Per-channel mean and biased variance over (S, B) (no output): the split path's statistics.
template <class Arch, class T>
void channels_statistics(const norm_layout& L, const T* x, T* mean, T* var) {
  const index_t C = L.C;
  const index_t P = sample_pieces(L.B);
  buffer<moments<T>> part(static_cast<std::size_t>(P * C));
  buffer<T> shift(L.S == 1 ? static_cast<std::size_t>(C) : 0);
  const identity none_f{};
  const channel_engine<T, identity, Arch> stats{L, x, none_f, nullptr, nullptr, nullptr};
  if (L.S == 1) stats.lane_shift(shift.data());
  for_pieces(L.B, P, L.numel(), [&](index_t p, index_t b0, index_t b1) {
    if (L.S == 1) {
      const thread_scratch<T> scratch(2 * C);
      T* lm = scratch.p;
      stats.lane_moments(b0, b1, shift.data(), lm, lm + C);
      for (index_t c = 0; c < C; ++c) part[p * C + c] = moments<T>{b1 - b0, lm[c], lm[C + c]};
    } else {
      for (index_t c = 0; c < C; ++c) part[p * C + c] = stats.channel_moments(c, b0, b1);
    }
  });
  for (index_t c = 0; c < C; ++c) {
    moments<T> m;
    for (index_t p = 0; p < P; ++p) merge(m, part[p * C + c]);
    mean[c] = (L.S == 1 ? shift[c] : x[c * L.S]) + m.mean;
    var[c] = m.m2 / static_cast<T>(m.n);
  }
}

template <class Arch, class T, class F>
void channels_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                      T epsilon, T* mean, T* var, T* inv_std) {
  using std::sqrt;
  const index_t C = L.C;
  if (L.S > 1 && fused_is_balanced(C)) {
    // Statistics of channel c, then its output while its B runs are still in cache.
    buffer<T> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
    const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data()};
    for_each_parallel(C, L.numel(), [&](index_t c) {
      finish_statistics(e.channel_moments(c, 0, L.B), x[c * L.S], epsilon, c, mean, var, inv_std);
      scale[c] = inv_std[c] * (aff.scale ? aff.scale[c] : T(1));
      shift[c] = aff.bias ? aff.bias[c] : T(0);
      e.channel_apply(c, 0, L.B, y);
    });
    return;
  }
  channels_statistics<Arch>(L, x, mean, var);
  for (index_t c = 0; c < C; ++c) inv_std[c] = T(1) / sqrt(var[c] + epsilon);
  channels_apply<Arch>(L, x, y, aff, f, mean, inv_std, streams_for<T>(L));
}

/// Per-channel s0_c = Σ dz and s1_c = Σ dz·(x − μ_c) over (S, B), the split path's reductions.
template <class Arch, class T, class F>
void channels_sums(const channel_engine<T, F, Arch>& e, const T* dy, const T* y, T* s0, T* s1) {
  const norm_layout& L = e.L;
  const index_t C = L.C, P = sample_pieces(L.B);
  buffer<T> part(static_cast<std::size_t>(2 * P * C));
  for_pieces(L.B, P, L.numel(), [&](index_t p, index_t b0, index_t b1) {
    T* s = part.data() + 2 * p * C;
    if (L.S == 1) {
      const thread_scratch<T> scratch(2 * C);
      e.lane_reduce(b0, b1, dy, y, scratch.p, scratch.p + C);
      std::copy_n(scratch.p, 2 * C, s);
    } else {
      for (index_t c = 0; c < C; ++c) {
        const auto r = e.channel_reduce(c, b0, b1, dy, y);
        s[c] = r[0];
        s[C + c] = r[1];
      }
    }
  });
  for (index_t c = 0; c < C; ++c) {
    T a = T(0), b = T(0);
    for (index_t p = 0; p < P; ++p) a += part[2 * p * C + c], b += part[2 * p * C + C + c];
    s0[c] = a;
    s1[c] = b;
  }
}

/// dx = dz·inv_c·γ_c + (x − μ_c)·kx_c + k0_c over (S, B), split over samples.
template <class Arch, class T, class F>
void channels_dx(const channel_engine<T, F, Arch>& e, const T* kx, const T* k0, const T* dy,
                 const T* y, T* dx) {
  const norm_layout& L = e.L;
  for_pieces(L.B, sample_pieces(L.B), L.numel(), [&](index_t, index_t b0, index_t b1) {
    if (L.S == 1) {
      e.lane_dx(b0, b1, kx, k0, dy, y, dx);
    } else {
      for (index_t c = 0; c < L.C; ++c) e.channel_dx(c, b0, b1, {kx[c], k0[c]}, dy, y, dx);
    }
  });
}

template <class Arch, class T, class F>
void channels_backward(const norm_layout& L, const T* dy, const T* x, const T* y,
                       norm_affine<T> aff, const F& f, const T* mean, const T* inv_std,
                       bool batch_statistics, T* dx, bool affine_grads, T* dscale, T* dbias) {
  const index_t C = L.C, n = L.group_size();
  buffer<T> scale, shift;
  channel_affine(C, aff, inv_std, scale, shift);
  const channel_engine<T, F, Arch> e{L, x, f, mean, scale.data(), shift.data()};
  auto finish = [&](index_t c, std::array<T, 2> s) {  // s = {Σ dz, Σ dz·(x − μ)}
    if (affine_grads) {
      dbias[c] = s[0];
      dscale[c] = s[1] * inv_std[c];
    }
    const T g = aff.scale ? aff.scale[c] : T(1);
    return dx_coefficients<T>({g * s[0], g * s[1]}, inv_std[c], n, batch_statistics);
  };
  if (L.S > 1 && fused_is_balanced(C)) {
    for_each_parallel(C, L.numel(), [&](index_t c) {
      e.channel_dx(c, 0, L.B, finish(c, e.channel_reduce(c, 0, L.B, dy, y)), dy, y, dx);
    });
    return;
  }
  buffer<T> s0(static_cast<std::size_t>(C)), s1(static_cast<std::size_t>(C));
  channels_sums(e, dy, y, s0.data(), s1.data());
  buffer<T> kx(static_cast<std::size_t>(C)), k0(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) {
    const auto kc = finish(c, {s0[c], s1[c]});
    kx[c] = kc[0];
    k0[c] = kc[1];
  }
  channels_dx(e, kx.data(), k0.data(), dy, y, dx);
}

// =================================================================================================
// Groups spread over M > 1 runs per sample: groupnorm and instancenorm with the channel dimension
// before Lux's N−1 (channels first: channels-last memory). Sample b's slice is an across-batch
// (S, C, M) layout, so each sample runs the channel engine above — per-channel statistics, then
// merged into groups of group_channels channels — and the samples are split among threads when
// there are enough of them (otherwise each sample's channel engine uses the threads).
// =================================================================================================

/// Sample b's slice of L as the channel engine sees it: (S, C, B = M), one group per channel.
inline norm_layout sample_slice(const norm_layout& L) {
  norm_layout s;
  s.S = L.S;
  s.C = L.C;
  s.B = L.M;
  s.across_batch = true;
  return s;
}

/// fn(b, scratch) for every sample: the samples split among threads (each piece with its own
/// scratch of `scratch_size` elements) when they balance them, else one after the other.
template <class T, class Fn>
void for_samples(const norm_layout& L, std::size_t scratch_size, Fn&& fn) {
  const index_t P = fused_is_balanced(L.B) ? std::min<index_t>(max_threads(), L.B) : 1;
  for_pieces(L.B, P, P > 1 ? L.numel() : 0, [&](index_t, index_t b0, index_t b1) {
    buffer<T> scratch(scratch_size);
    for (index_t b = b0; b < b1; ++b) fn(b, scratch.data());
  });
}

/// The group statistics of sample b expanded to its channels (cm, ci: C each).
template <class T>
void expand_to_channels(const norm_layout& L, index_t b, const T* mean, const T* inv_std, T* cm,
                        T* ci) {
  for (index_t c = 0; c < L.C; ++c) {
    const index_t k = L.group_of(c, b);
    cm[c] = mean[k];
    ci[c] = inv_std[k];
  }
}

template <class Arch, class T, class F>
void samples_apply(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                   const T* mean, const T* inv_std) {
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C;
  for_samples<T>(L, static_cast<std::size_t>(2 * C), [&](index_t b, T* scratch) {
    expand_to_channels(L, b, mean, inv_std, scratch, scratch + C);
    channels_apply<Arch>(Ls, x + b * per, y + b * per, aff, f, scratch, scratch + C,
                         streams_for<T>(L));
  });
}

template <class Arch, class T, class F>
void samples_forward(const norm_layout& L, const T* x, T* y, norm_affine<T> aff, const F& f,
                     T epsilon, T* mean, T* var, T* inv_std) {
  using std::sqrt;
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C, D = L.group_channels, G = L.groups_per_sample();
  for_samples<T>(L, static_cast<std::size_t>(2 * C), [&](index_t b, T* scratch) {
    T *cm = scratch, *cv = scratch + C;
    channels_statistics<Arch>(Ls, x + b * per, cm, cv);
    // Group g's mean and variance from its D channels' (equal counts): the mean of the means,
    // and the mean of the variances plus the variance of the means.
    for (index_t g = 0; g < G; ++g) {
      T mu = T(0), v = T(0);
      for (index_t c = g * D; c < (g + 1) * D; ++c) mu += cm[c];
      mu /= static_cast<T>(D);
      for (index_t c = g * D; c < (g + 1) * D; ++c) v += cv[c] + (cm[c] - mu) * (cm[c] - mu);
      v /= static_cast<T>(D);
      const index_t k = g + G * b;
      mean[k] = mu;
      var[k] = v;
      inv_std[k] = T(1) / sqrt(v + epsilon);
    }
    expand_to_channels(L, b, mean, inv_std, cm, cv);
    channels_apply<Arch>(Ls, x + b * per, y + b * per, aff, f, cm, cv, streams_for<T>(L));
  });
}

template <class Arch, class T, class F>
void samples_backward(const norm_layout& L, const T* dy, const T* x, const T* y, norm_affine<T> aff,
                      const F& f, const T* mean, const T* inv_std, bool batch_statistics, T* dx,
                      bool affine_grads, T* dscale, T* dbias) {
  const norm_layout Ls = sample_slice(L);
  const index_t per = Ls.numel(), C = L.C, D = L.group_channels, G = L.groups_per_sample();
  const index_t n = L.group_size();
  // Scale/bias gradients per piece of samples, summed in a fixed order at the end.
  const index_t P = fused_is_balanced(L.B) ? std::min<index_t>(max_threads(), L.B) : 1;
  buffer<T> part(affine_grads ? static_cast<std::size_t>(2 * P * C) : 0, T(0));
  for_pieces(L.B, P, P > 1 ? L.numel() : 0, [&](index_t p, index_t b0, index_t b1) {
    buffer<T> w(static_cast<std::size_t>(6 * C));
    T *cm = w.data(), *ci = cm + C, *sc = ci + C, *sh = sc + C, *s0 = sh + C, *s1 = s0 + C;
    for (index_t b = b0; b < b1; ++b) {
      const index_t o = b * per;
      expand_to_channels(L, b, mean, inv_std, cm, ci);
      for (index_t c = 0; c < C; ++c) {
        sc[c] = ci[c] * (aff.scale ? aff.scale[c] : T(1));
        sh[c] = aff.bias ? aff.bias[c] : T(0);
      }
      const channel_engine<T, F, Arch> e{Ls, x + o, f, cm, sc, sh, streams_for<T>(L)};
      const T* yb = y ? y + o : y;
      channels_sums(e, dy + o, yb, s0, s1);
      if (affine_grads)
        for (index_t c = 0; c < C; ++c) {
          part[2 * p * C + c] += s0[c];
          part[2 * p * C + C + c] += s1[c] * ci[c];
        }
      // Group sums Σ dz·γ, Σ dz·γ·(x − μ) give each group's dx coefficients; s0/s1 are reused
      // for the per-channel kx/k0.
      for (index_t g = 0; g < G; ++g) {
        std::array<T, 2> sums{};
        for (index_t c = g * D; c < (g + 1) * D; ++c) {
          const T gm = aff.scale ? aff.scale[c] : T(1);
          sums[0] += gm * s0[c];
          sums[1] += gm * s1[c];
        }
        const auto kc = dx_coefficients(sums, ci[g * D], n, batch_statistics);
        for (index_t c = g * D; c < (g + 1) * D; ++c) s0[c] = kc[0], s1[c] = kc[1];
      }
      channels_dx(e, s0, s1, dy + o, yb, dx + o);
    }
  });
  if (affine_grads)
    for (index_t c = 0; c < C; ++c) {
      T db = T(0), dg = T(0);
      for (index_t p = 0; p < P; ++p) db += part[2 * p * C + c], dg += part[2 * p * C + C + c];
      dbias[c] = db;
      dscale[c] = dg;
    }
}

/// An across-batch layout with its M runs per (channel, sample) counted as samples: element
/// (s, c, m, b) is element (s, c, m + M·b) of (S, C, M·B), and the group of a channel is all of
/// them either way.
inline norm_layout fold_runs(norm_layout L) {
  L.B *= L.M;
  L.M = 1;
  return L;
}

}  // namespace impl::norm_looped
LUX_NAMESPACE_END

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
