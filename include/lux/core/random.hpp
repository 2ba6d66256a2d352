// luxcpp — counter-based random numbers: Philox4x32-10 and the `lux::rng` stream.
//
// Philox
// ------
// Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC'11, doi:10.1145/2063384.2063405; reference implementation: D. E. Shaw Research's
// Random123) is a keyed bijection on 128-bit blocks: a 4x32-bit *counter* and a 2x32-bit *key*
// go through 10 rounds of
//     (hi0, lo0) = mulhilo(0xD2511F53, c0),  (hi1, lo1) = mulhilo(0xCD9E8D57, c2)
//     c = { hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0 }
// with the key bumped by the Weyl constants (0x9E3779B9, 0xBB67AE85) between rounds. Encrypting
// distinct counters under one key gives distinct, statistically independent-looking outputs (it
// passes TestU01 BigCrush), so random number i is simply philox(i, key): no state to carry, any
// element computable in O(1) from any thread. `lux::philox4x32_10` reproduces Random123's
// known-answer vectors exactly (tests/core/test_random.cpp).
//
// The stream model of lux::rng
// ----------------------------
// An rng is a *stream*: a 2x32 key plus a 64-bit stream offset `counter` (and a word cursor used
// only by the sequential host draws, see below). Its current "draw" is an addressable sequence
// of 32-bit words; word i is lane i % 4 of
//     block(i / 4) = philox4x32_10({lo32(i / 4), hi32(i / 4), lo32(counter), hi32(counter)}, key)
// so every random number is a pure function of (key, counter, index): a dropout mask computed
// by a thousand CPU threads or GPU blocks needs no coordination and is reproducible bit for bit.
// The counter words of a 128-bit Philox input are partitioned into disjoint domains by the top
// two bits of word 1 (block indices of the `_at` draws are < 2^62, so those bits are 00 there):
//     00  the `_at` draws       {lo32(b), hi32(b),              lo32(counter), hi32(counter)}
//     10  sequential draws      {lo32(b), hi32(b) | 0x80000000, lo32(counter), hi32(counter)}
//     01  key derivation        {variant, 0x40000000,           lo32(counter), hi32(counter)}
// hence sequential draws never reuse an `_at` word and child keys (split / fold_in) are never
// words of the parent's own draws.
//
// Like Lux (`y, rng′ = dropout(rng, x, ...)`), one operation consumes one counter value no matter
// how many elements it draws: it reads elements 0..n-1 of the current draw and hands back
// `rng.advanced()` (counter + 1) so that the next operation gets fresh numbers. The element index
// is 64-bit, so one draw holds up to 2^64 words.
//
// Element i of the typed views of a draw:
//   uniform_at<float>(i)  : word i;                    top 24 bits * 2^-24          in [0, 1)
//   uniform_at<double>(i) : words 2i (high), 2i+1 (low); top 53 of those 64 bits * 2^-53, [0, 1)
//   normal_at<float>(i)   : words 2j, 2j+1 with j = i/2 (Box–Muller; i even -> r cos θ,
//                           i odd -> r sin θ of the same pair, which are independent N(0, 1))
//   normal_at<double>(i)  : words 4j .. 4j+3 with j = i/2 (u1 from 4j, 4j+1; u2 from 4j+2, 4j+3)
// Box–Muller takes u1 = (m + 1) * 2^-b in (0, 1] (never log(0)) and u2 = m' * 2^-b in [0, 1);
// the largest |z| it can return is about 5.8 (float) and 8.6 (double). The typed views share the
// words of one draw, so an operation needing both uniforms and normals for the same elements must
// use two streams (split / fold_in). Indices wrap: double views read i modulo 2^63.
//
// Sequential host draws (uniform<T>(), normal<T>(), bernoulli(p), next_u32()) read the words of
// the *sequential domain* of the current counter, starting at the cursor `position()`, and move
// the cursor forward (1 word for float/u32, 2 for double uniform and bernoulli, 2 for a float
// normal, 4 for a double normal; a sequential normal returns the r cos θ value). They never
// touch the words the `_at` functions return. advance() keeps the cursor; split/fold_in ignore
// it (a child is a function of (key, counter, data) only).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"

LUX_NAMESPACE_BEGIN

/// Four 32-bit words: a Philox counter or output block. A plain aggregate (usable in kernels).
struct uint4x32 {
  std::uint32_t v[4];
  LUX_HOST_DEVICE constexpr std::uint32_t operator[](int i) const { return v[i]; }
  LUX_HOST_DEVICE friend constexpr bool operator==(const uint4x32& a, const uint4x32& b) {
    return a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2] && a.v[3] == b.v[3];
  }
};
/// Two 32-bit words: a Philox key.
struct uint2x32 {
  std::uint32_t v[2];
  LUX_HOST_DEVICE constexpr std::uint32_t operator[](int i) const { return v[i]; }
  LUX_HOST_DEVICE friend constexpr bool operator==(const uint2x32& a, const uint2x32& b) {
    return a.v[0] == b.v[0] && a.v[1] == b.v[1];
  }
};

namespace detail {
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;
/// Domain tags in the top two bits of counter word 1 (see the file comment).
inline constexpr std::uint32_t domain_sequential = 0x80000000u;
inline constexpr std::uint32_t domain_derive = 0x40000000u;
inline constexpr std::uint64_t block_mask = (std::uint64_t{1} << 62) - 1;

LUX_HOST_DEVICE constexpr std::uint32_t lo32(std::uint64_t x) {
  return static_cast<std::uint32_t>(x);
}
LUX_HOST_DEVICE constexpr std::uint32_t hi32(std::uint64_t x) {
  return static_cast<std::uint32_t>(x >> 32);
}

LUX_HOST_DEVICE constexpr uint4x32 philox_round(const uint4x32& c, std::uint32_t k0,
                                                std::uint32_t k1) {
  const std::uint64_t p0 = std::uint64_t{philox_m0} * c.v[0];
  const std::uint64_t p1 = std::uint64_t{philox_m1} * c.v[2];
  return uint4x32{{hi32(p1) ^ c.v[1] ^ k0, lo32(p1), hi32(p0) ^ c.v[3] ^ k1, lo32(p0)}};
}

/// Top 24 bits of w as a float in [0, 1): multiples of 2^-24 up to 1 - 2^-24 (exact).
LUX_HOST_DEVICE constexpr float unit_float(std::uint32_t w) {
  return static_cast<float>(w >> 8) * 0x1p-24f;
}
/// Same 24 bits plus one step: a float in (0, 1], safe for log().
LUX_HOST_DEVICE constexpr float unit_float_open0(std::uint32_t w) {
  return static_cast<float>((w >> 8) + 1u) * 0x1p-24f;
}
/// Top 53 bits of the 64-bit word (hi:lo) as a double in [0, 1) (exact).
LUX_HOST_DEVICE constexpr double unit_double(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t m = ((std::uint64_t{hi} << 32) | lo) >> 11;
  return static_cast<double>(m) * 0x1p-53;
}
/// Same 53 bits plus one step: a double in (0, 1].
LUX_HOST_DEVICE constexpr double unit_double_open0(std::uint32_t hi, std::uint32_t lo) {
  const std::uint64_t m = ((std::uint64_t{hi} << 32) | lo) >> 11;
  return static_cast<double>(m + 1u) * 0x1p-53;
}

template <class T>
inline constexpr bool is_rng_real = std::is_same_v<T, float> || std::is_same_v<T, double>;

template <class T>
struct normal_pair {
  T c, s;  // r cos θ, r sin θ
};
/// Box–Muller on u1 in (0, 1] and u2 in [0, 1).
LUX_HOST_DEVICE inline normal_pair<float> box_muller(float u1, float u2) {
  constexpr float two_pi = 6.28318530717958647692f;
  const float r = std::sqrt(-2.0f * std::log(u1));
  const float theta = two_pi * u2;
  return {r * std::cos(theta), r * std::sin(theta)};
}
LUX_HOST_DEVICE inline normal_pair<double> box_muller(double u1, double u2) {
  constexpr double two_pi = 6.28318530717958647692;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = two_pi * u2;
  return {r * std::cos(theta), r * std::sin(theta)};
}
/// The float normal pair made of words (a, b); the double pair made of words (a, b, c, d).
LUX_HOST_DEVICE inline normal_pair<float> normal_pair_float(std::uint32_t a, std::uint32_t b) {
  return box_muller(unit_float_open0(a), unit_float(b));
}
LUX_HOST_DEVICE inline normal_pair<double> normal_pair_double(std::uint32_t a, std::uint32_t b,
                                                              std::uint32_t c, std::uint32_t d) {
  return box_muller(unit_double_open0(a, b), unit_double(c, d));
}
}  // namespace detail

/// The Philox4x32-10 bijection of Salmon et al. (SC'11): encrypts `counter` under `key`.
/// Bit-compatible with Random123's philox4x32(ctr, key) at 10 rounds.
LUX_HOST_DEVICE constexpr uint4x32 philox4x32_10(uint4x32 counter, uint2x32 key) {
  std::uint32_t k0 = key.v[0], k1 = key.v[1];
  counter = detail::philox_round(counter, k0, k1);
  for (int round = 1; round < 10; ++round) {
    k0 += detail::philox_w0;
    k1 += detail::philox_w1;
    counter = detail::philox_round(counter, k0, k1);
  }
  return counter;
}

/// A counter-based random stream (key, counter) over Philox4x32-10; see the file comment.
/// Trivially copyable, 24 bytes; copy it into a kernel by value.
class rng {
 public:
  /// key = {lo32(seed), hi32(seed)} (distinct seeds give distinct keys), counter 0, cursor 0.
  LUX_HOST_DEVICE constexpr explicit rng(std::uint64_t seed)
      : k0_(detail::lo32(seed)), k1_(detail::hi32(seed)) {}
  /// The stream with this key at this counter (e.g. to rebuild one from key() and counter()).
  LUX_HOST_DEVICE constexpr rng(uint2x32 key, std::uint64_t counter)
      : k0_(key.v[0]), k1_(key.v[1]), counter_(counter) {}
  /// The stream with this key, counter and sequential cursor: the full state as key(), counter()
  /// and position() return it (how a checkpoint restores an rng exactly).
  LUX_HOST_DEVICE constexpr rng(uint2x32 key, std::uint64_t counter, std::uint64_t position)
      : k0_(key.v[0]), k1_(key.v[1]), counter_(counter), pos_(position) {}

  LUX_HOST_DEVICE constexpr uint2x32 key() const { return uint2x32{{k0_, k1_}}; }
  LUX_HOST_DEVICE constexpr std::uint64_t counter() const { return counter_; }
  /// Cursor (in 32-bit words) of the sequential draws within the current counter.
  LUX_HOST_DEVICE constexpr std::uint64_t position() const { return pos_; }

  LUX_HOST_DEVICE friend constexpr bool operator==(const rng& a, const rng& b) {
    return a.k0_ == b.k0_ && a.k1_ == b.k1_ && a.counter_ == b.counter_ && a.pos_ == b.pos_;
  }

  // ---- addressable draws: pure functions of (key, counter, index) ------------------------------

  /// Words 4*block .. 4*block+3 of the current draw (block is taken modulo 2^62).
  LUX_HOST_DEVICE constexpr uint4x32 block_at(std::uint64_t block) const {
    return domain_block(block & detail::block_mask, 0u);
  }
  /// Word i of the current draw.
  LUX_HOST_DEVICE constexpr std::uint32_t bits_at(std::uint64_t i) const {
    return block_at(i >> 2).v[i & 3];
  }
  /// Element i of the uniform [0, 1) view: float from word i, double from words 2i, 2i+1.
  template <class T>
  LUX_HOST_DEVICE constexpr T uniform_at(std::uint64_t i) const {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    if constexpr (std::is_same_v<T, float>) {
      return detail::unit_float(bits_at(i));
    } else {
      const uint4x32 b = block_at(i >> 1);
      const int lane = static_cast<int>(i & 1) * 2;
      return detail::unit_double(b.v[lane], b.v[lane + 1]);
    }
  }
  /// Element i of the N(0, 1) view (Box–Muller): float from words 2j, 2j+1, double from words
  /// 4j .. 4j+3, where j = i/2; even i is the cosine and odd i the sine branch of pair j.
  template <class T>
  LUX_HOST_DEVICE T normal_at(std::uint64_t i) const {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    if constexpr (std::is_same_v<T, float>) {
      const uint4x32 b = block_at(i >> 2);
      const int lane = static_cast<int>((i >> 1) & 1) * 2;
      const auto p = detail::normal_pair_float(b.v[lane], b.v[lane + 1]);
      return (i & 1) ? p.s : p.c;
    } else {
      const uint4x32 b = block_at(i >> 1);
      const auto p = detail::normal_pair_double(b.v[0], b.v[1], b.v[2], b.v[3]);
      return (i & 1) ? p.s : p.c;
    }
  }

  /// out[i] = uniform_at<T>(i) for i in [0, n).
  template <class T>
  void fill_uniform(T* out, std::size_t n) const {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    constexpr std::size_t per_block = std::is_same_v<T, float> ? 4 : 2;
    for (std::size_t base = 0; base < n; base += per_block) {
      const uint4x32 b = block_at(base / per_block);
      T vals[per_block];
      if constexpr (std::is_same_v<T, float>) {
        for (int l = 0; l < 4; ++l) vals[l] = detail::unit_float(b.v[l]);
      } else {
        vals[0] = detail::unit_double(b.v[0], b.v[1]);
        vals[1] = detail::unit_double(b.v[2], b.v[3]);
      }
      for (std::size_t l = 0; l < per_block && base + l < n; ++l) out[base + l] = vals[l];
    }
  }
  /// out[i] = normal_at<T>(i) for i in [0, n).
  template <class T>
  void fill_normal(T* out, std::size_t n) const {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    constexpr std::size_t per_block = std::is_same_v<T, float> ? 4 : 2;
    for (std::size_t base = 0; base < n; base += per_block) {
      const uint4x32 b = block_at(base / per_block);
      T vals[per_block];
      if constexpr (std::is_same_v<T, float>) {
        const auto p = detail::normal_pair_float(b.v[0], b.v[1]);
        const auto q = detail::normal_pair_float(b.v[2], b.v[3]);
        vals[0] = p.c, vals[1] = p.s, vals[2] = q.c, vals[3] = q.s;
      } else {
        const auto p = detail::normal_pair_double(b.v[0], b.v[1], b.v[2], b.v[3]);
        vals[0] = p.c, vals[1] = p.s;
      }
      for (std::size_t l = 0; l < per_block && base + l < n; ++l) out[base + l] = vals[l];
    }
  }

  // ---- moving on: the rng′ of Lux -----------------------------------------------------------

  /// The same key with counter + n (mod 2^64): the stream for the next operation. The sequential
  /// cursor is kept. advanced(0) == *this.
  LUX_HOST_DEVICE constexpr rng advanced(std::uint64_t n = 1) const {
    rng r = *this;
    r.counter_ += n;
    return r;
  }
  LUX_HOST_DEVICE constexpr void advance(std::uint64_t n = 1) { counter_ += n; }

  // ---- independent children (JAX style) -------------------------------------------------------

  /// The i-th child: a new key derived from (key, counter, i) through the key-derivation domain,
  /// counter 0. Children differ from each other, from fold_in children and from the parent's
  /// draws; they do not depend on the sequential cursor.
  LUX_HOST_DEVICE constexpr rng split(std::uint64_t i) const { return derive(0u, i); }
  /// Two children: {split(0), split(1)}.
  std::pair<rng, rng> split() const { return {split(0), split(1)}; }
  /// N children: {split(0), ..., split(N-1)}.
  template <std::size_t N>
  std::array<rng, N> split() const {
    return split_n(std::make_index_sequence<N>{});
  }
  /// A child keyed by (key, counter, data), like jax.random.fold_in; differs from split(data).
  LUX_HOST_DEVICE constexpr rng fold_in(std::uint64_t data) const { return derive(1u, data); }

  // ---- sequential draws (host convenience; see the file comment) ------------------------------

  /// The next 32-bit word of the sequential domain.
  LUX_HOST_DEVICE constexpr std::uint32_t next_u32() { return seq_word(pos_++); }
  /// The next uniform in [0, 1) (float: 1 word, double: 2 words).
  template <class T>
  LUX_HOST_DEVICE constexpr T uniform() {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    if constexpr (std::is_same_v<T, float>) {
      return detail::unit_float(next_u32());
    } else {
      const std::uint32_t hi = next_u32();
      return detail::unit_double(hi, next_u32());
    }
  }
  /// The next N(0, 1) value (Box–Muller cosine branch; float: 2 words, double: 4 words).
  template <class T>
  LUX_HOST_DEVICE T normal() {
    static_assert(detail::is_rng_real<T>, "lux::rng: T must be float or double");
    const std::uint32_t a = next_u32();
    const std::uint32_t b = next_u32();
    if constexpr (std::is_same_v<T, float>) {
      return detail::normal_pair_float(a, b).c;
    } else {
      const std::uint32_t c = next_u32();
      return detail::normal_pair_double(a, b, c, next_u32()).c;
    }
  }
  /// true with probability p (uniform<double>() < p); p outside [0, 1] -> argument_error.
  bool bernoulli(double p) {
    require<argument_error>(p >= 0.0 && p <= 1.0, "bernoulli: p must be in [0, 1], got ", p);
    return uniform<double>() < p;
  }

 private:
  LUX_HOST_DEVICE constexpr uint4x32 domain_block(std::uint64_t block, std::uint32_t tag) const {
    return philox4x32_10(uint4x32{{detail::lo32(block), detail::hi32(block) | tag,
                                   detail::lo32(counter_), detail::hi32(counter_)}},
                         key());
  }
  LUX_HOST_DEVICE constexpr std::uint32_t seq_word(std::uint64_t j) const {
    return domain_block(j >> 2, detail::domain_sequential).v[j & 3];
  }
  template <std::size_t... I>
  std::array<rng, sizeof...(I)> split_n(std::index_sequence<I...>) const {
    return {split(I)...};
  }
  // Stage 1 maps (key, counter, variant) to an intermediate key in the derivation domain;
  // stage 2 encrypts `data` under it. For a fixed parent, stage 2 is a bijection of data.
  LUX_HOST_DEVICE constexpr rng derive(std::uint32_t variant, std::uint64_t data) const {
    const uint4x32 mid = philox4x32_10(
        uint4x32{{variant, detail::domain_derive, detail::lo32(counter_), detail::hi32(counter_)}},
        key());
    const uint4x32 out =
        philox4x32_10(uint4x32{{detail::lo32(data), detail::hi32(data), mid.v[2], mid.v[3]}},
                      uint2x32{{mid.v[0], mid.v[1]}});
    return rng(uint2x32{{out.v[0], out.v[1]}}, 0);
  }

  std::uint32_t k0_ = 0, k1_ = 0;
  std::uint64_t counter_ = 0;
  std::uint64_t pos_ = 0;
};

static_assert(std::is_trivially_copyable_v<rng>);
static_assert(std::is_trivially_copyable_v<uint4x32>);

LUX_NAMESPACE_END
