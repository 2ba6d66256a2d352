// luxcpp — dropout and alpha dropout: the looped (CPU) implementation.
//
// One pass, branch-free, generating the Philox numbers in the same pass as the multiply: each
// thread takes a contiguous chunk of the elements and walks it in tiles of `tile_blocks` Philox
// blocks (256 floats or 128 doubles, which stay in L1). For a tile it
//   1. encrypts the tile's block counters with Philox4x32-10 in a SIMD loop over blocks. Each
//      block is kept as two 64-bit halves q0 = c0 | c1 << 32 and q1 = c2 | c3 << 32, where a
//      Philox round becomes lane-local 64-bit arithmetic (no shuffles):
//          q0' = rotl32(lo32(q1) · M1) ^ (q0 >> 32) ^ k0
//          q1' = rotl32(lo32(q0) · M0) ^ (q1 >> 32) ^ k1
//      (equivalent to Random123's round; the block counter b is q0 = b, the stream counter q1);
//   2. converts the words to uniforms exactly as lux::rng::uniform_at<T> does (float: top 24 bits
//      of word i; double: top 53 bits of words 2i, 2i+1), in element order;
//   3. applies mask = select(u > t, invp, 0), y = x · mask with xsimd batches.
// The result is bit-for-bit the generic kernel's (a mask is a pure function of (key, counter,
// index)); tests/kernels/test_dropout.cpp checks it. Step 1 is plain C++ marked `omp simd`, which
// GCC and Clang vectorize (on AVX-512 within ~25% of a hand-written vpmuludq/vprolq version);
// Philox is ~10 vector ops per block, so with two threads the pass stays memory-bound.
//
// Broadcast masks (dims other than all) are drawn over the small mask shape first and then
// applied by broadcast_multiply, which merges runs of dimensions so the innermost run is either a
// contiguous vector product or a product with one mask value.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/dispatch.hpp"
#include "lux/core/kernel_trace.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/random.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/simd.hpp"
#include "lux/kernels/generic/dropout.hpp"
#include "lux/kernels/looped/activation.hpp"

// `#pragma omp simd` where OpenMP (or -fopenmp-simd) is on; nothing otherwise (no
// -Wunknown-pragmas).
#if defined(_OPENMP)
#define LUX_DETAIL_DROPOUT_OMP_SIMD _Pragma("omp simd")
#else
#define LUX_DETAIL_DROPOUT_OMP_SIMD
#endif

LUX_NAMESPACE_BEGIN
namespace impl {
namespace dropout_detail {

/// Philox blocks per tile: 64 blocks = 256 floats / 128 doubles.
inline constexpr index_t tile_blocks = 64;

/// Uniforms per Philox block: 4 floats (one word each) or 2 doubles (two words each).
template <class T>
inline constexpr index_t per_block = std::is_same_v<T, float> ? 4 : 2;

constexpr std::uint64_t rotl32(std::uint64_t v) { return (v << 32) | (v >> 32); }

/// u[k] = r.uniform_at<T>(per_block<T> · b0 + k) for k in [0, tile_blocks · per_block<T>).
template <class T, class Arch>
void uniform_tile(const rng& r, std::uint64_t b0, T* u) {
  constexpr int TB = static_cast<int>(tile_blocks);
  alignas(64) std::uint64_t q0[TB];
  alignas(64) std::uint64_t q1[TB];
  const std::uint64_t ctr = r.counter();
  const std::uint64_t key0 = r.key().v[0], key1 = r.key().v[1];
  LUX_DETAIL_DROPOUT_OMP_SIMD
  for (int j = 0; j < TB; ++j) {
    std::uint64_t a = (b0 + static_cast<std::uint64_t>(j)) & lux::detail::block_mask;
    std::uint64_t c = ctr;
    std::uint32_t k0 = static_cast<std::uint32_t>(key0), k1 = static_cast<std::uint32_t>(key1);
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = (a & 0xffffffffu) * std::uint64_t{lux::detail::philox_m0};
      const std::uint64_t p1 = (c & 0xffffffffu) * std::uint64_t{lux::detail::philox_m1};
      a = rotl32(p1) ^ (a >> 32) ^ k0;
      c = rotl32(p0) ^ (c >> 32) ^ k1;
      k0 += lux::detail::philox_w0;
      k1 += lux::detail::philox_w1;
    }
    q0[j] = a;
    q1[j] = c;
  }
  if constexpr (std::is_same_v<T, float>) {
    // Word l of block j is element 4j + l: top 24 bits · 2^-24 (lux::detail::unit_float).
    for (int j = 0; j < TB; ++j) {
      u[4 * j + 0] = static_cast<float>(static_cast<std::uint32_t>(q0[j]) >> 8) * 0x1p-24f;
      u[4 * j + 1] = static_cast<float>(static_cast<std::uint32_t>(q0[j] >> 32) >> 8) * 0x1p-24f;
      u[4 * j + 2] = static_cast<float>(static_cast<std::uint32_t>(q1[j]) >> 8) * 0x1p-24f;
      u[4 * j + 3] = static_cast<float>(static_cast<std::uint32_t>(q1[j] >> 32) >> 8) * 0x1p-24f;
    }
  } else {
    // Element 2j + h is (word 2h << 32 | word 2h+1) >> 11 · 2^-53 (lux::detail::unit_double);
    // with q = w_even | w_odd << 32 that 64-bit value is rotl32(q).
    for (int j = 0; j < TB; ++j) {
      u[2 * j + 0] = static_cast<double>(static_cast<std::int64_t>(rotl32(q0[j]) >> 11)) * 0x1p-53;
      u[2 * j + 1] = static_cast<double>(static_cast<std::int64_t>(rotl32(q1[j]) >> 11)) * 0x1p-53;
    }
  }
}

/// Calls body(k0, u, len) for consecutive pieces [k0, k0 + len) of [lo, hi), with u[0 .. len)
/// the uniforms of those elements (u is 64-byte aligned when k0 is a multiple of per_block).
template <class T, class Arch, class Body>
void for_each_uniform_tile(const rng& r, index_t lo, index_t hi, Body&& body) {
  constexpr index_t PB = per_block<T>;
  constexpr index_t tile = tile_blocks * PB;
  alignas(64) T u[tile];
  index_t k = lo;
  while (k < hi) {
    const index_t b0 = k / PB, off = k % PB;
    uniform_tile<T, Arch>(r, static_cast<std::uint64_t>(b0), u);
    const index_t len = std::min(tile - off, hi - k);
    body(k, u + off, len);
    k += len;
  }
}

}  // namespace dropout_detail

/// Fresh full-shape mask and y = x · mask in one pass (see the generic overload).
template <class T, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void dropout(looped_op, const rng& r, T threshold, T invp, const T* x, T* y, T* mask, index_t n) {
  LUX_TRACE_KERNEL("looped_op", "dropout");
  LUX_DISPATCH("dropout", (T), r, threshold, invp, x, y, mask, n);
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    dropout_detail::for_each_uniform_tile<T, Arch>(
        r, lo, hi, [&](index_t k, const T* u, index_t len) {
          const batch t(threshold), keep(invp), zero(T(0));
          index_t j = 0;
          for (; j + W <= len; j += W) {
            const batch m = xsimd::select(batch::load_unaligned(u + j) > t, keep, zero);
            m.store_unaligned(mask + k + j);
            (batch::load_unaligned(x + k + j) * m).store_unaligned(y + k + j);
          }
          for (; j < len; ++j) {
            const T m = u[j] > threshold ? invp : T(0);
            mask[k + j] = m;
            y[k + j] = x[k + j] * m;
          }
        });
  });
}

/// mask[i] = u_i > threshold ? invp : 0 (the mask alone).
template <class T, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void dropout_mask(looped_op, const rng& r, T threshold, T invp, T* mask, index_t n) {
  LUX_TRACE_KERNEL("looped_op", "dropout_mask");
  LUX_DISPATCH("dropout_mask", (T), r, threshold, invp, mask, n);
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    dropout_detail::for_each_uniform_tile<T, Arch>(
        r, lo, hi, [&](index_t k, const T* u, index_t len) {
          const batch t(threshold), keep(invp), zero(T(0));
          index_t j = 0;
          for (; j + W <= len; j += W)
            xsimd::select(batch::load_unaligned(u + j) > t, keep, zero)
                .store_unaligned(mask + k + j);
          for (; j < len; ++j) mask[k + j] = u[j] > threshold ? invp : T(0);
        });
  });
}

/// y = x .* m with m broadcast along its size-1 dimensions (see the generic overload).
template <class T, std::size_t N, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void broadcast_multiply(looped_op, const T* x, const shape_t<N>& xs, const T* m,
                        const shape_t<N>& ms, T* y) {
  LUX_TRACE_KERNEL("looped_op", "broadcast_multiply");
  LUX_DISPATCH("broadcast_multiply", (T), x, xs, m, ms, y);
  // Merge dimensions into runs that are all "varying" (m has the size of x) or all
  // "broadcast" (m has size 1); dimensions where x has size 1 drop out. After merging, size[0]
  // is the innermost run and mstride[d] is m's stride along merged dimension d (0 = broadcast).
  shape_t<N> size{}, mstride{};
  std::size_t R = 0;
  index_t n = 1, macc = 1;
  for (std::size_t d = 0; d < N; ++d) {
    n *= xs[d];
    if (xs[d] == 1) continue;
    const bool varies = ms[d] != 1;
    if (R > 0 && (mstride[R - 1] != 0) == varies) {
      size[R - 1] *= xs[d];
    } else {
      size[R] = xs[d];
      mstride[R] = varies ? macc : 0;
      ++R;
    }
    if (varies) macc *= ms[d];
  }
  if (n == 0) return;
  if (R == 0) {  // a single element
    y[0] = x[0] * m[0];
    return;
  }
  const index_t inner = size[0];
  const bool inner_varies = mstride[0] != 0;
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    // Decompose lo into (offset within the inner run, multi-index of the outer dimensions).
    // (one spare entry: GCC 12 cannot see that d < R <= N and warns about idx[N] otherwise)
    std::array<index_t, N + 1> idx{};
    index_t rest = lo / inner, off = lo % inner, moff = 0;
    for (std::size_t d = 1; d < R; ++d) {
      idx[d] = rest % size[d];
      rest /= size[d];
      moff += idx[d] * mstride[d];
    }
    index_t k = lo;
    while (k < hi) {
      const index_t run = std::min(hi - k, inner - off);
      if (inner_varies) {
        simd::transform(
            run, y + k, [](auto a, auto b) { return a * b; }, x + k, m + moff + off);
      } else {
        const T mv = m[moff];
        simd::transform(
            run, y + k, [mv](auto a) { return a * decltype(a)(mv); }, x + k);
      }
      k += run;
      off = 0;
      for (std::size_t d = 1; d < R; ++d) {  // odometer over the outer dimensions
        if (++idx[d] < size[d]) {
          moff += mstride[d];
          break;
        }
        moff -= (size[d] - 1) * mstride[d];
        idx[d] = 0;
      }
    }
  });
}

/// Alpha dropout: y = u > threshold ? A x + B : A α + B, one pass.
template <class T, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void alpha_dropout(looped_op, const rng& r, T threshold, T alpha, T A, T B, const T* x, T* y,
                   index_t n) {
  LUX_TRACE_KERNEL("looped_op", "alpha_dropout");
  LUX_DISPATCH("alpha_dropout", (T), r, threshold, alpha, A, B, x, y, n);
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  const T dropped = A * alpha + B;
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    dropout_detail::for_each_uniform_tile<T, Arch>(
        r, lo, hi, [&](index_t k, const T* u, index_t len) {
          const batch t(threshold), a(A), b(B), dr(dropped);
          index_t j = 0;
          for (; j + W <= len; j += W) {
            const batch kept = a * batch::load_unaligned(x + k + j) + b;
            xsimd::select(batch::load_unaligned(u + j) > t, kept, dr).store_unaligned(y + k + j);
          }
          for (; j < len; ++j) y[k + j] = u[j] > threshold ? A * x[k + j] + B : dropped;
        });
  });
}

/// Alpha dropout backward: dx = u > threshold ? A dy : 0 (mask regenerated from the rng).
template <class T, class Arch = xsimd::default_arch>
requires elementwise::is_simd_real_v<T>
void alpha_dropout_backward(looped_op, const rng& r, T threshold, T A, const T* dy, T* dx,
                            index_t n) {
  LUX_TRACE_KERNEL("looped_op", "alpha_dropout_backward");
  LUX_DISPATCH("alpha_dropout_backward", (T), r, threshold, A, dy, dx, n);
  using batch = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  parallel_chunks(n, [&](index_t lo, index_t hi) {
    dropout_detail::for_each_uniform_tile<T, Arch>(
        r, lo, hi, [&](index_t k, const T* u, index_t len) {
          const batch t(threshold), a(A), zero(T(0));
          index_t j = 0;
          for (; j + W <= len; j += W)
            xsimd::select(batch::load_unaligned(u + j) > t, a * batch::load_unaligned(dy + k + j),
                          zero)
                .store_unaligned(dx + k + j);
          for (; j < len; ++j) dx[k + j] = u[j] > threshold ? A * dy[k + j] : T(0);
        });
  });
}

}  // namespace impl
LUX_NAMESPACE_END
