// Tests of lux/core/random.hpp: Philox4x32-10 known answers, the (key, counter, index) layout,
// distribution moments, split / fold_in / advance semantics and the bulk fills.
#include "lux/core/random.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

namespace {

using lux::philox4x32_10;
using lux::rng;
using lux::uint2x32;
using lux::uint4x32;

constexpr std::size_t kN = 1000000;

struct moments {
  double mean, var;
};
template <class T>
moments moments_of(const std::vector<T>& x) {
  double s = 0;
  for (T v : x) s += static_cast<double>(v);
  const double mean = s / static_cast<double>(x.size());
  double ss = 0;
  for (T v : x) ss += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  return {mean, ss / static_cast<double>(x.size() - 1)};
}

template <class T>
double pearson(const std::vector<T>& a, const std::vector<T>& b) {
  const moments ma = moments_of(a), mb = moments_of(b);
  double c = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    c += (static_cast<double>(a[i]) - ma.mean) * (static_cast<double>(b[i]) - mb.mean);
  c /= static_cast<double>(a.size() - 1);
  return c / std::sqrt(ma.var * mb.var);
}

/// Kolmogorov–Smirnov statistic of the sample against the continuous CDF F.
template <class T, class F>
double ks_statistic(std::vector<T> x, F cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(static_cast<double>(x[i]));
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

template <class T>
std::vector<T> uniforms(const rng& r, std::size_t n = kN) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = r.uniform_at<T>(i);
  return v;
}
template <class T>
std::vector<T> normals(const rng& r, std::size_t n = kN) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = r.normal_at<T>(i);
  return v;
}

/// Number of equal words among the first n of two draws.
std::size_t equal_words(const rng& a, const rng& b, std::size_t n = 1000) {
  std::size_t same = 0;
  for (std::size_t i = 0; i < n; ++i) same += a.bits_at(i) == b.bits_at(i);
  return same;
}

}  // namespace

// Random123 tests/kat_vectors, "philox4x32 10" lines (counter[4] key[2] -> output[4]).
TEST_CASE("philox4x32_10 reproduces the Random123 known-answer vectors", "[random]") {
  CHECK(philox4x32_10({{0, 0, 0, 0}}, {{0, 0}}) ==
        uint4x32{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  CHECK(philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
                      {{0xffffffffu, 0xffffffffu}}) ==
        uint4x32{{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}});
  CHECK(philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                      {{0xa4093822u, 0x299f31d0u}}) ==
        uint4x32{{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
  // Usable in constant expressions.
  STATIC_REQUIRE(philox4x32_10({{0, 0, 0, 0}}, {{0, 0}})[3] == 0x9b00dbd8u);
}

TEST_CASE("rng is a small trivially copyable value type", "[random]") {
  STATIC_REQUIRE(std::is_trivially_copyable_v<rng>);
  STATIC_REQUIRE(sizeof(rng) == 24);
  constexpr rng r(42);
  STATIC_REQUIRE(r.uniform_at<float>(3) >= 0.0f);
  STATIC_REQUIRE(r.counter() == 0);
  rng a(7);
  a.next_u32();
  const rng b = a;  // copies continue identically
  rng c = a;
  CHECK(b == a);
  CHECK(c.next_u32() == a.next_u32());
  CHECK(c == a);
}

TEST_CASE("rng seed, key and word layout", "[random]") {
  const rng r(0x0123456789abcdefull);
  CHECK(r.key() == uint2x32{{0x89abcdefu, 0x01234567u}});
  CHECK(r.counter() == 0);
  CHECK(r.position() == 0);
  CHECK(rng(r.key(), 0) == r);

  const rng s = r.advanced(0x0000000500000003ull);
  CHECK(s.counter() == 0x0000000500000003ull);
  for (std::uint64_t i : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{6},
                          (std::uint64_t{1} << 40) + 3, ~std::uint64_t{0}}) {
    const std::uint64_t b = i / 4;
    const uint4x32 expect = philox4x32_10(
        {{static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32), 3u, 5u}}, s.key());
    CHECK(s.block_at(b) == expect);
    CHECK(s.bits_at(i) == expect[static_cast<int>(i % 4)]);
  }
  // Sequential draws live in the domain whose counter word 1 has the top bit set.
  rng q = s;
  const uint4x32 seq0 = philox4x32_10({{0u, 0x80000000u, 3u, 5u}}, s.key());
  const uint4x32 seq1 = philox4x32_10({{1u, 0x80000000u, 3u, 5u}}, s.key());
  for (int l = 0; l < 4; ++l) CHECK(q.next_u32() == seq0[l]);
  for (int l = 0; l < 4; ++l) CHECK(q.next_u32() == seq1[l]);
  CHECK(q.position() == 8);
  CHECK(q.counter() == s.counter());
}

TEST_CASE("rng streams are deterministic and seed dependent", "[random]") {
  const rng a(1234), b(1234), c(1235), d(std::uint64_t{1234} << 32);
  CHECK(equal_words(a, b) == 1000);
  CHECK(equal_words(a, c) <= 2);
  CHECK(equal_words(a, d) <= 2);
  CHECK(a.uniform_at<double>(17) == b.uniform_at<double>(17));
  CHECK(a.normal_at<float>(17) == b.normal_at<float>(17));
  std::set<std::uint32_t> distinct;
  for (std::uint64_t i = 0; i < 4000; ++i) distinct.insert(a.bits_at(i));
  CHECK(distinct.size() >= 3998);  // 32-bit collisions among 4000 words: expected ~0.002
}

TEST_CASE("unit conversions hit the documented end points", "[random]") {
  using namespace lux::detail;
  CHECK(unit_float(0u) == 0.0f);
  CHECK(unit_float(0xffffffffu) == 1.0f - 0x1p-24f);
  CHECK(unit_float(0xffffffffu) < 1.0f);
  CHECK(unit_float_open0(0u) == 0x1p-24f);
  CHECK(unit_float_open0(0xffffffffu) == 1.0f);
  CHECK(unit_double(0u, 0u) == 0.0);
  CHECK(unit_double(0xffffffffu, 0xffffffffu) == 1.0 - 0x1p-53);
  CHECK(unit_double(0x80000000u, 0u) == 0.5);
  CHECK(unit_double_open0(0u, 0u) == 0x1p-53);
  CHECK(unit_double_open0(0xffffffffu, 0xffffffffu) == 1.0);
  // Box–Muller on the most extreme u1 stays finite.
  CHECK(std::isfinite(normal_pair_float(0u, 0u).c));
  CHECK(std::isfinite(normal_pair_double(0u, 0u, 0u, 0u).c));
  CHECK(normal_pair_double(0u, 0u, 0u, 0u).c == Approx(std::sqrt(2.0 * 53.0 * std::log(2.0))));
  // The double view uses word 2i as the high and 2i+1 as the low half.
  const rng r(99);
  CHECK(r.uniform_at<double>(5) == unit_double(r.bits_at(10), r.bits_at(11)));
  CHECK(r.uniform_at<float>(5) == unit_float(r.bits_at(5)));
  CHECK(r.normal_at<float>(6) == normal_pair_float(r.bits_at(6), r.bits_at(7)).c);
  CHECK(r.normal_at<float>(7) == normal_pair_float(r.bits_at(6), r.bits_at(7)).s);
  CHECK(r.normal_at<double>(3) ==
        normal_pair_double(r.bits_at(4), r.bits_at(5), r.bits_at(6), r.bits_at(7)).s);
}

TEMPLATE_TEST_CASE("uniform_at is uniform on the half-open unit interval", "[random]", float, double) {
  const auto x = uniforms<TestType>(rng(20240601));
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  CHECK(*lo >= TestType(0));
  CHECK(*hi < TestType(1));
  CHECK(*lo < TestType(1e-5));
  CHECK(*hi > TestType(1 - 1e-5));
  const moments m = moments_of(x);
  const double n = static_cast<double>(x.size());
  CHECK(std::abs(m.mean - 0.5) < 4 * std::sqrt(1.0 / 12.0 / n));
  CHECK(std::abs(m.var - 1.0 / 12.0) < 4 * std::sqrt(1.0 / 180.0 / n));
  // Chi-square over 100 equal bins (99 dof; 99.9% quantile 148.2).
  std::vector<double> bins(100, 0.0);
  for (TestType v : x) {
    const auto k = static_cast<std::size_t>(static_cast<double>(v) * 100);
    if (k < bins.size()) bins[k] += 1;  // out-of-range values already fail the checks above
  }
  double chi2 = 0;
  for (double b : bins) chi2 += (b - n / 100) * (b - n / 100) / (n / 100);
  CHECK(chi2 < 148.2);
  // Kolmogorov–Smirnov: sqrt(n) * D < 1.95 (p ~ 0.001).
  CHECK(std::sqrt(n) * ks_statistic(x, [](double u) { return u; }) < 1.95);
  // Lag-1 serial correlation.
  std::vector<TestType> a(x.begin(), x.end() - 1), b(x.begin() + 1, x.end());
  CHECK(std::abs(pearson(a, b)) < 4 / std::sqrt(n));
}

TEMPLATE_TEST_CASE("normal_at is standard normal", "[random]", float, double) {
  const auto z = normals<TestType>(rng(77));
  const double n = static_cast<double>(z.size());
  CHECK(std::all_of(z.begin(), z.end(), [](TestType v) { return std::isfinite(v); }));
  const moments m = moments_of(z);
  CHECK(std::abs(m.mean) < 4 / std::sqrt(n));
  CHECK(std::abs(m.var - 1) < 4 * std::sqrt(2 / n));
  double skew = 0, kurt = 0;
  for (TestType v : z) {
    const double d = (static_cast<double>(v) - m.mean);
    skew += d * d * d;
    kurt += d * d * d * d;
  }
  skew /= n;
  kurt /= n;
  CHECK(std::abs(skew) < 4 * std::sqrt(6 / n));
  CHECK(std::abs(kurt - 3) < 4 * std::sqrt(96 / n));
  for (double k : {1.0, 2.0, 3.0}) {
    const double p = std::erf(k / std::sqrt(2.0));  // 0.6827, 0.9545, 0.9973
    const double frac = static_cast<double>(std::count_if(
                            z.begin(), z.end(), [k](TestType v) { return std::abs(v) < k; })) /
                        n;
    INFO("k = " << k << ", fraction " << frac << ", expected " << p);
    CHECK(std::abs(frac - p) < 4 * std::sqrt(p * (1 - p) / n));
  }
  CHECK(std::sqrt(n) * ks_statistic(z, normal_cdf) < 1.95);
  // The cosine and sine members of a Box–Muller pair are uncorrelated, and so is |z|.
  std::vector<TestType> even(z.size() / 2), odd(z.size() / 2), aeven(z.size() / 2),
      aodd(z.size() / 2);
  for (std::size_t j = 0; j < z.size() / 2; ++j) {
    even[j] = z[2 * j], odd[j] = z[2 * j + 1];
    aeven[j] = std::abs(even[j]), aodd[j] = std::abs(odd[j]);
  }
  CHECK(std::abs(pearson(even, odd)) < 4 / std::sqrt(n / 2));
  CHECK(std::abs(pearson(aeven, aodd)) < 4 / std::sqrt(n / 2));
}

TEMPLATE_TEST_CASE("sequential draws", "[random]", float, double) {
  rng r(5);
  const rng start = r;
  constexpr std::size_t n = 200000;
  std::vector<TestType> u(n), z(n);
  for (auto& v : u) v = r.template uniform<TestType>();
  CHECK(r.position() == n * (sizeof(TestType) / 4));
  for (auto& v : z) v = r.template normal<TestType>();
  CHECK(r.position() == n * (sizeof(TestType) / 4) * 3);
  CHECK(r.counter() == start.counter());
  CHECK(r.key() == start.key());
  const moments mu = moments_of(u), mz = moments_of(z);
  const double dn = static_cast<double>(n);
  CHECK(*std::min_element(u.begin(), u.end()) >= TestType(0));
  CHECK(*std::max_element(u.begin(), u.end()) < TestType(1));
  CHECK(std::abs(mu.mean - 0.5) < 4 * std::sqrt(1.0 / 12.0 / dn));
  CHECK(std::abs(mz.mean) < 4 / std::sqrt(dn));
  CHECK(std::abs(mz.var - 1) < 4 * std::sqrt(2 / dn));
  // Replaying from a copy gives the same numbers.
  rng again = start;
  for (std::size_t i = 0; i < 100; ++i) CHECK(again.template uniform<TestType>() == u[i]);
  // The sequential domain never returns the `_at` words of the same stream: a word-for-word match
  // of the first 4000 words would be a ~2^-32 event per word.
  rng seq = start;
  std::size_t same = 0;
  for (std::uint64_t i = 0; i < 4000; ++i) same += seq.next_u32() == start.bits_at(i);
  CHECK(same <= 1);
}

TEST_CASE("bernoulli", "[random]") {
  rng r(11);
  constexpr int n = 200000;
  for (double p : {0.1, 0.3, 0.5, 0.9}) {
    int hits = 0;
    for (int i = 0; i < n; ++i) hits += r.bernoulli(p);
    const double f = static_cast<double>(hits) / n;
    INFO("p = " << p << ", frequency " << f);
    CHECK(std::abs(f - p) < 4 * std::sqrt(p * (1 - p) / n));
  }
  bool any0 = false, all1 = true;
  for (int i = 0; i < 10000; ++i) {
    any0 = any0 || r.bernoulli(0.0);
    all1 = all1 && r.bernoulli(1.0);
  }
  CHECK_FALSE(any0);
  CHECK(all1);
  const std::uint64_t pos = r.position();
  CHECK_THROWS_AS(r.bernoulli(1.5), lux::argument_error);
  CHECK_THROWS_WITH(r.bernoulli(1.5), Catch::Contains("bernoulli") && Catch::Contains("1.5"));
  CHECK_THROWS_WITH(r.bernoulli(-0.25), Catch::Contains("bernoulli") && Catch::Contains("-0.25"));
  CHECK_THROWS_AS(r.bernoulli(std::numeric_limits<double>::quiet_NaN()), lux::argument_error);
  CHECK(r.position() == pos);  // a rejected call consumes nothing
}

TEST_CASE("split gives distinct, deterministic children", "[random]") {
  const rng parent(2024);
  const auto [a, b] = parent.split();
  CHECK(a == parent.split(0));
  CHECK(b == parent.split(1));
  const auto [a2, b2] = rng(2024).split();
  CHECK(a2 == a);
  CHECK(b2 == b);
  CHECK_FALSE(a == b);
  CHECK_FALSE(a.key() == parent.key());
  CHECK(a.counter() == 0);
  CHECK(parent.advanced(5).split(0).counter() == 0);
  CHECK(equal_words(a, b) <= 2);
  CHECK(equal_words(a, parent) <= 2);
  CHECK(equal_words(b, parent) <= 2);

  const auto kids = parent.split<8>();
  std::set<std::pair<std::uint32_t, std::uint32_t>> keys;
  for (std::size_t i = 0; i < kids.size(); ++i) {
    CHECK(kids[i] == parent.split(i));
    keys.insert({kids[i].key()[0], kids[i].key()[1]});
  }
  keys.insert({parent.key()[0], parent.key()[1]});
  CHECK(keys.size() == 9);
  // Child keys are not words of the parent's own draws.
  std::set<std::uint32_t> parent_words;
  for (std::uint64_t i = 0; i < 64; ++i) parent_words.insert(parent.bits_at(i));
  for (const rng& k : kids) CHECK(parent_words.count(k.key()[0]) == 0);

  // Children depend on the counter, not on the sequential cursor.
  CHECK_FALSE(parent.advanced().split(0) == a);
  rng used = parent;
  used.next_u32();
  CHECK(used.split(0) == a);
  // Grandchildren are distinct too.
  CHECK_FALSE(a.split(0) == b.split(0));
  CHECK_FALSE(a.split(0) == a);
}

TEST_CASE("fold_in", "[random]") {
  const rng r(31337);
  CHECK(r.fold_in(5) == r.fold_in(5));
  CHECK_FALSE(r.fold_in(5) == r.fold_in(6));
  CHECK_FALSE(r.fold_in(5) == r.split(5));
  CHECK_FALSE(r.fold_in(0) == r);
  CHECK(equal_words(r.fold_in(5), r.fold_in(6)) <= 2);
  CHECK(equal_words(r.fold_in(5), r) <= 2);
  CHECK_FALSE(r.advanced().fold_in(5) == r.fold_in(5));
  std::set<std::pair<std::uint32_t, std::uint32_t>> keys;
  for (std::uint64_t d = 0; d < 1000; ++d)
    keys.insert({r.fold_in(d).key()[0], r.fold_in(d).key()[1]});
  CHECK(keys.size() == 1000);
}

TEST_CASE("advance moves the stream counter", "[random]") {
  const rng r(8);
  CHECK(r.advanced(0) == r);
  CHECK_FALSE(r.advanced() == r);
  CHECK(r.advanced().counter() == 1);
  CHECK(r.advanced(3).advanced(4) == r.advanced(7));
  CHECK(r.advanced().key() == r.key());
  CHECK(equal_words(r, r.advanced()) <= 2);
  CHECK_FALSE(r.uniform_at<float>(0) == r.advanced().uniform_at<float>(0));
  rng m = r;
  m.advance();
  CHECK(m == r.advanced());
  m.advance(10);
  CHECK(m == r.advanced(11));
  CHECK(rng(r.key(), 11) == m);
  // Counter wraps modulo 2^64.
  CHECK(r.advanced(~std::uint64_t{0}).advanced(1) == r);
  // The sequential cursor is kept.
  rng s = r;
  s.next_u32();
  s.advance();
  CHECK(s.position() == 1);
}

TEMPLATE_TEST_CASE("fill_uniform and fill_normal equal the _at functions", "[random]", float,
                   double) {
  const rng r = rng(4242).advanced(3);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3},
                        std::size_t{5}, std::size_t{1003}}) {
    std::vector<TestType> u(n + 1, TestType(-7)), z(n + 1, TestType(-7));
    r.fill_uniform(u.data(), n);
    r.fill_normal(z.data(), n);
    std::size_t bad_u = 0, bad_z = 0;
    for (std::size_t i = 0; i < n; ++i) {
      bad_u += u[i] != r.template uniform_at<TestType>(i);
      bad_z += z[i] != r.template normal_at<TestType>(i);
    }
    INFO("n = " << n);
    CHECK(bad_u == 0);
    CHECK(bad_z == 0);
    CHECK(u[n] == TestType(-7));  // nothing written past n
    CHECK(z[n] == TestType(-7));
  }
  r.fill_uniform(static_cast<TestType*>(nullptr), 0);
}

TEMPLATE_TEST_CASE("split streams are uncorrelated", "[random]", float, double) {
  const rng parent(555);
  const auto [a, b] = parent.split();
  const double bound = 4 / std::sqrt(static_cast<double>(kN));
  CHECK(std::abs(pearson(uniforms<TestType>(a), uniforms<TestType>(b))) < bound);
  CHECK(std::abs(pearson(uniforms<TestType>(a), uniforms<TestType>(parent))) < bound);
  CHECK(std::abs(pearson(normals<TestType>(a), normals<TestType>(b))) < bound);
  CHECK(std::abs(pearson(uniforms<TestType>(parent), uniforms<TestType>(parent.advanced()))) <
        bound);
  CHECK(std::abs(pearson(uniforms<TestType>(parent.fold_in(1)),
                         uniforms<TestType>(parent.fold_in(2)))) < bound);
}
