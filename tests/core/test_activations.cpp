// Tests of lux/core/activations.hpp: every activation and its derivative against an independent
// long double reference (the textbook formula evaluated with <cmath>), central finite
// differences, NNlib's conventions at kinks / signed zero / NaN and its documented Float32
// values, saturation without NaN, the xsimd path against the scalar path, long double and a
// user number type as element types, and the measured error of the fast approximations.
#include "lux/core/activations.hpp"

// The header must not pull in xsimd (it is compiled by nvcc); SIMD support comes from ADL
// finding xsimd's overloads at instantiation, so including xsimd *after* it must work.
#if defined(XSIMD_HPP)
#error "lux/core/activations.hpp must not include xsimd"
#endif

// GCC 12 reports its own AVX-512 intrinsics (`__m512 __Y = __Y;`) as using an uninitialized
// value once xsimd's exp is inlined (GCC PR 105593, fixed in later releases); the diagnostic
// location is inside the intrinsics header, so it is silenced for that header only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using LD = long double;
using fn = std::function<LD(LD)>;

constexpr LD kPi = 3.141592653589793238462643383279502884L;
constexpr LD kSeluLambda = 1.0507009873554804934193349852946L;
constexpr LD kSeluAlpha = 1.6732632423543772848170429916717L;

// ---------------------------------------------------------------------------------------------
// Independent references: the textbook formulas in long double.
// ---------------------------------------------------------------------------------------------

LD sig(LD x) { return 1 / (1 + std::exp(-x)); }
LD dsig(LD x) {
  const LD e = std::exp(-x);
  return e / ((1 + e) * (1 + e));
}
LD sech2(LD x) {
  const LD c = std::cosh(x);
  return 1 / (c * c);
}

struct reference {
  fn f, df;
  std::vector<LD> kinks;  // points where f' is not defined (skipped by the textbook check)
  std::vector<LD> rough;  // where f'' jumps (finite differences are O(h) there)
  LD value_k = 4;         // allowed value error:      value_k * eps * (1 + κ_f)  * |f|
  LD deriv_k = 8;         // allowed derivative error: deriv_k * eps * (1 + κ_f') * |f'|
  // Allowed SIMD - scalar difference at x, same units; the flag says the element is float.
  std::function<LD(LD, bool)> simd_k = [](LD, bool) { return LD(4); };

  reference(fn f_, fn df_, std::vector<LD> k = {})
      : f(std::move(f_)), df(std::move(df_)), kinks(std::move(k)) {}
  reference& with_value_k(LD k) {
    value_k = k;
    return *this;
  }
  reference& with_rough(std::vector<LD> r) {
    rough = std::move(r);
    return *this;
  }
  reference& with_simd_k(std::function<LD(LD, bool)> k) {
    simd_k = std::move(k);
    return *this;
  }
};

template <class F>
struct entry {
  F f;
  reference r;
  std::string label;
};

template <class F>
entry<F> make(F f, reference r, std::string label = F::name) {
  return {f, std::move(r), std::move(label)};
}

auto entries() {
  const LD c = std::sqrt(2 / kPi), a = 0.044715L;
  auto gelu_z = [=](LD x) { return c * (x + a * x * x * x); };
  return std::make_tuple(
      make(lux::identity{}, reference([](LD x) { return x; }, [](LD) { return LD(1); })),
      make(lux::relu{}, reference([](LD x) { return x > 0 ? x : LD(0); },
                                  [](LD x) { return x > 0 ? LD(1) : LD(0); }, {0})),
      make(lux::relu6{}, reference([](LD x) { return std::min<LD>(std::max<LD>(x, 0), 6); },
                                   [](LD x) { return x > 0 && x < 6 ? LD(1) : LD(0); }, {0, 6})),
      // The parameters are doubles: the function is that of the double nearest 0.01 / 0.2.
      make(lux::leakyrelu{}, reference([](LD x) { return x > 0 ? x : LD(0.01) * x; },
                                       [](LD x) { return x > 0 ? LD(1) : LD(0.01); }, {0})),
      make(lux::leakyrelu{0.2},
           reference([](LD x) { return x > 0 ? x : LD(0.2) * x; },
                     [](LD x) { return x > 0 ? LD(1) : LD(0.2); }, {0}),
           "leakyrelu(a=0.2)"),
      make(lux::elu{}, reference([](LD x) { return x > 0 ? x : std::expm1(x); },
                                 [](LD x) { return x > 0 ? LD(1) : std::exp(x); }, {0})),
      make(lux::elu{1.5},
           reference([](LD x) { return x > 0 ? x : 1.5L * std::expm1(x); },
                     [](LD x) { return x > 0 ? LD(1) : 1.5L * std::exp(x); }, {0}),
           "elu(alpha=1.5)"),
      make(lux::selu{},
           reference(
               [](LD x) { return kSeluLambda * (x > 0 ? x : kSeluAlpha * std::expm1(x)); },
               [](LD x) { return x > 0 ? kSeluLambda : kSeluLambda * kSeluAlpha * std::exp(x); },
               {0})),
      // 0.5x(1 + tanh z) written as x σ(2z) and Φ(x) = (1 + erf(x/√2))/2 as erfc(-x/√2)/2:
      // the literal forms cancel catastrophically for x << 0 even in long double. The
      // literal forms themselves are checked in "gelu and gelu_erf are NNlib's formulas".
      make(lux::gelu{}, reference([=](LD x) { return x * sig(2 * gelu_z(x)); },
                                  [=](LD x) {
                                    const LD z = gelu_z(x);
                                    return sig(2 * z) + x * sig(2 * z) * sig(-2 * z) * 2 * c *
                                                            (1 + 3 * a * x * x);
                                  })),
      make(lux::gelu_erf{},
           reference([](LD x) { return x / 2 * std::erfc(-x / std::sqrt(LD(2))); },
                     [](LD x) {
                       return std::erfc(-x / std::sqrt(LD(2))) / 2 +
                              x * std::exp(-x * x / 2) / std::sqrt(2 * kPi);
                     })
               // xsimd 8.1's erfc(z) (measured): float up to 40 ulp; double up to 1.8e4 ulp
               // (4e-12 relative) for z < 6, i.e. x > -8.5, and up to 6e-9 relative in the
               // tail z in [6, 27] where gelu_erf(x) < 1e-16. libm's erfc is within 1-2 ulp.
               .with_simd_k([](LD x, bool is_float) {
                 return is_float ? LD(48) : x > -8.5L ? LD(2.5e4) : LD(3e7);
               })),
      make(lux::sigmoid{}, reference(sig, dsig)),
      make(lux::hardsigmoid{},
           reference([](LD x) { return std::max<LD>(0, std::min<LD>(1, (x + 3) / 6)); },
                     [](LD x) { return x > -3 && x < 3 ? 1 / LD(6) : LD(0); }, {-3, 3})),
      make(lux::tanh_{}, reference([](LD x) { return std::tanh(x); }, sech2)),
      make(lux::hardtanh{},
           reference([](LD x) { return std::max<LD>(-1, std::min<LD>(1, x)); },
                     [](LD x) { return x > -1 && x < 1 ? LD(1) : LD(0); }, {-1, 1})),
      make(lux::softplus{}, reference([](LD x) { return std::log1p(std::exp(x)); }, sig)),
      make(lux::softsign{}, reference([](LD x) { return x / (1 + std::fabs(x)); },
                                      [](LD x) {
                                        const LD d = 1 + std::fabs(x);
                                        return 1 / (d * d);
                                      })
                                .with_rough({0})),
      make(lux::swish{}, reference([](LD x) { return x / (1 + std::exp(-x)); },
                                   [](LD x) { return sig(x) + x * sig(x) * sig(-x); })),
      make(lux::mish{}, reference([](LD x) { return x * std::tanh(std::log1p(std::exp(x))); },
                                  [](LD x) {
                                    const LD sp = std::log1p(std::exp(x));
                                    return std::tanh(sp) + x * sech2(sp) * sig(x);
                                  })),
      make(lux::logsigmoid{}, reference([](LD x) { return -std::log1p(std::exp(-x)); },
                                        [](LD x) { return 1 / (1 + std::exp(x)); })),
      // NNlib's sigmoid_fast: σ, then 1 for x > 40 and 0 for x < -80; its derivative is the
      // exact σ' expressed in y, i.e. 0 where y was clamped.
      make(lux::sigmoid_fast{},
           reference([](LD x) { return x > 40    ? LD(1)
                                       : x < -80 ? LD(0)
                                                 : sig(x); },
                     [](LD x) { return x > 40 || x < -80 ? LD(0) : dsig(x); })),
      make(lux::tanh_fast{}, reference([](LD x) { return std::tanh(x); }, sech2).with_value_k(8)));
}

template <class Fn>
void for_each_entry(Fn&& fn_) {
  auto all = entries();
  std::apply([&](auto&... e) { (fn_(e), ...); }, all);
}

// ---------------------------------------------------------------------------------------------
// Grids, tolerances, bookkeeping
// ---------------------------------------------------------------------------------------------

// Large magnitudes, signed zeros, tiny values, points at and around every kink (0, ±1, ±3, 6),
// around the switch points of the fast approximations, and a dense sweep of [-11.1, 11.1].
std::vector<double> grid() {
  std::vector<double> g = {0.0,  -0.0,  1e-30, -1e-30, 1e-8, -1e-8, 1e-3, -1e-3, 0.1,  -0.1,
                           0.13, -0.13, 0.5,   -0.5,   1,    -1,    2,    -2,    2.5,  -2.5,
                           3,    -3,    3.5,   -3.5,   5,    -5,    6,    -6,    6.5,  -6.5,
                           8,    -8,    8.2,   -8.2,   10,   -10,   20,   -20,   30.5, -30.5,
                           41,   -41,   50,    -50,    81,   -81,   100,  -100,  1e4,  -1e4};
  for (double k : {0.0, 1.0, -1.0, 3.0, -3.0, 6.0})
    for (double d : {1e-3, -1e-3}) g.push_back(k + d);
  for (int i = -300; i <= 300; ++i) g.push_back(0.037 * i);
  return g;
}

template <class T>
LD eps() {
  return std::numeric_limits<T>::epsilon();
}

// Condition number |x f'(x) / f(x)|: the relative error any rounding of intermediate results
// (e.g. of u in gelu's exp(-u)) is amplified by. Tolerances are relative to (1 + κ).
LD condition(const fn& f, const fn& df, LD x) {
  const LD y = f(x);
  if (y == 0 || !std::isfinite(y)) return 0;
  const LD k = std::fabs(x * df(x) / y);
  return std::isfinite(k) ? std::min<LD>(k, 1e12L) : 0;
}
// Condition number of f' (f'' by a long double central difference of the reference f').
LD condition_d(const reference& r, LD x) {
  const LD h = 1e-6L * std::max<LD>(1, std::fabs(x));
  const fn d2 = [&](LD t) { return (r.df(t + h) - r.df(t - h)) / (2 * h); };
  return condition(r.df, d2, x);
}

bool close(LD got, LD want, LD rel, LD abs) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  if (!std::isfinite(got)) return false;
  return std::fabs(got - want) <= rel * std::fabs(want) + abs;
}

bool near_kink(const reference& r, LD x, LD dist) {
  return std::any_of(r.kinks.begin(), r.kinks.end(),
                     [&](LD k) { return std::fabs(x - k) <= dist; });
}

// Collects failures of one (activation, property) pair: the first few are reported with their
// values, then a single CHECK states the count.
struct tally {
  std::string what;
  int failures = 0;
  int checked = 0;
  void operator()(bool ok, LD x, LD got, LD want) {
    ++checked;
    if (ok) return;
    if (++failures <= 5) {
      std::ostringstream s;
      s.precision(21);
      s << what << ": x = " << x << " got " << got << " want " << want;
      FAIL_CHECK(s.str());
    }
  }
  void done() const {
    INFO(what << ": " << failures << " of " << checked << " points out of tolerance");
    CHECK(checked > 0);
    CHECK(failures == 0);
  }
};

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  if constexpr (std::is_same_v<T, double>) return "double";
  return "long double";
}

// Value and derivative of every grid point in element type T against the reference.
template <class T, class E>
void check_against_reference(const E& e, LD max_abs_x = 1e300L) {
  tally tv{e.label + " value (" + type_name<T>() + ")"};
  tally td{e.label + " derivative at y=f(x) / x (" + type_name<T>() + ")"};
  constexpr bool from_output = lux::activation_traits<decltype(e.f)>::uses_output;
  for (double xd : grid()) {
    const T x = static_cast<T>(xd);
    const LD xl = x;
    if (std::fabs(xl) > max_abs_x) continue;
    const T y = e.f(x);
    const LD want = e.r.f(xl);
    const LD kv = condition(e.r.f, e.r.df, xl);
    tv(close(y, want, e.r.value_k * eps<T>() * (1 + kv), std::numeric_limits<T>::min()), xl, y,
       want);

    if (near_kink(e.r, xl, 0)) continue;  // f' undefined; NNlib's choice is tested separately
    // For an output-form rule this is the output-form derivative evaluated at y = f(x)
    // compared with the input-form textbook derivative.
    const T d = lux::derivative_at(e.f, x, y);
    const LD dwant = e.r.df(xl);
    const LD kd = condition_d(e.r, xl);
    // An output-form derivative inherits the rounding of y: |D'(y)| ≤ 2 for every rule here.
    const LD dabs = (from_output ? 8 * eps<T>() : std::numeric_limits<T>::min());
    td(close(d, dwant, e.r.deriv_k * eps<T>() * (1 + kd), dabs), xl, d, dwant);
  }
  tv.done();
  td.done();
}

TEST_CASE("activations: values and derivatives match the long double reference (double)",
          "[activations]") {
  for_each_entry([](const auto& e) { check_against_reference<double>(e); });
}

TEST_CASE("activations: values and derivatives match the long double reference (float)",
          "[activations]") {
  for_each_entry([](const auto& e) { check_against_reference<float>(e); });
}

TEST_CASE("activations: long double element type", "[activations]") {
  // Long double constants and <cmath> overloads are used throughout: the error is a few long
  // double ulps (a double-precision computation would miss these tolerances by ~1000x).
  for_each_entry([](const auto& e) { check_against_reference<long double>(e, 1e4L); });
  CHECK(std::fabs(lux::sigmoid{}(0.3L) - sig(0.3L)) < 1e-18L);
  CHECK(std::fabs(lux::selu{}(-0.7L) - kSeluLambda * kSeluAlpha * std::expm1(-0.7L)) < 1e-18L);
  CHECK(std::fabs(lux::gelu_erf{}(0.9L) - 0.9L / 2 * (1 + std::erf(0.9L / std::sqrt(2.0L)))) <
        1e-18L);
}

TEST_CASE("activations: derivatives match central finite differences (double)", "[activations]") {
  for_each_entry([](const auto& e) {
    tally t{e.label + " finite difference"};
    for (double x : grid()) {
      const double h = 1e-5 * std::max(1.0, std::fabs(x));
      if (near_kink(e.r, x, 4 * h) || std::any_of(e.r.rough.begin(), e.r.rough.end(),
                                                  [&](LD k) { return std::fabs(x - k) <= 4 * h; }))
        continue;
      const double fd = (e.f(x + h) - e.f(x - h)) / (2 * h);
      const double d = lux::derivative_at(e.f, x, e.f(x));
      t(std::fabs(fd - d) <= 1e-6 * std::fabs(d) + 1e-9, x, d, fd);
    }
    t.done();
  });
}

// ---------------------------------------------------------------------------------------------
// SIMD
// ---------------------------------------------------------------------------------------------

template <class T, class E>
void check_simd(const E& e) {
  using B = xsimd::batch<T>;
  constexpr std::size_t N = B::size;
  std::vector<T> xs;
  for (double x : grid()) xs.push_back(static_cast<T>(x));
  while (xs.size() % N != 0) xs.push_back(T(0.25));
  std::vector<T> ys(xs.size()), ds(xs.size());
  for (std::size_t i = 0; i < xs.size(); i += N) {
    const B xb = B::load_unaligned(&xs[i]);
    const B yb = e.f(xb);
    const B db = lux::derivative_at(e.f, xb, yb);
    yb.store_unaligned(&ys[i]);
    db.store_unaligned(&ds[i]);
  }
  constexpr bool from_output = lux::activation_traits<decltype(e.f)>::uses_output;
  tally tv{e.label + " SIMD value (" + type_name<T>() + ")"};
  tally td{e.label + " SIMD derivative (" + type_name<T>() + ")"};
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const T x = xs[i];
    const T y = e.f(x);
    const T d = lux::derivative_at(e.f, x, y);
    const LD kv = condition(e.r.f, e.r.df, x);
    const LD kd = condition_d(e.r, x);
    // xsimd's exp / expm1 / log1p / tanh differ from libm by an ulp or two (its erfc by more,
    // see gelu_erf), and its exp flushes results below the smallest normal number to zero
    // (libm returns subnormals), which x σ(u) and the like scale by up to ~|x|³.
    const LD k = e.r.simd_k(x, std::is_same_v<T, float>);
    const LD tiny = 1e3L * std::numeric_limits<T>::min() * (1 + std::fabs(LD(x)));
    tv(close(ys[i], y, k * eps<T>() * (1 + kv), tiny), x, ys[i], y);
    td(close(ds[i], d, 2 * k * eps<T>() * (1 + kd), from_output ? 8 * eps<T>() : tiny), x, ds[i],
       d);
  }
  tv.done();
  td.done();
}

TEST_CASE("activations: xsimd batch<float> matches the scalar path", "[activations][simd]") {
  INFO("xsimd default arch: " << xsimd::default_arch::name());
  for_each_entry([](const auto& e) { check_simd<float>(e); });
}

TEST_CASE("activations: xsimd batch<double> matches the scalar path", "[activations][simd]") {
  for_each_entry([](const auto& e) { check_simd<double>(e); });
}

TEST_CASE("activations: scalar and SIMD agree on signed zero and NaN", "[activations][simd]") {
  using B = xsimd::batch<float>;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto lane0 = [](B b) {
    alignas(64) float out[B::size];
    b.store_unaligned(out);
    return out[0];
  };
  // NNlib's relu is ifelse(x < 0, 0, x): -0.0 stays -0.0 (not Julia's max(0, x) = +0.0).
  CHECK(std::signbit(lux::relu{}(-0.0f)));
  CHECK(std::signbit(lux::relu{}(-0.0)));
  CHECK_FALSE(std::signbit(lux::relu{}(0.0f)));
  CHECK(std::signbit(lane0(lux::relu{}(B(-0.0f)))));
  CHECK_FALSE(std::signbit(lane0(lux::relu{}(B(0.0f)))));
  CHECK(std::signbit(lux::relu6{}(-0.0f)));
  CHECK(std::signbit(lane0(lux::relu6{}(B(-0.0f)))));
  CHECK(std::signbit(lux::hardtanh{}(-0.0f)));
  CHECK(std::signbit(lux::leakyrelu{}(-0.0f)));
  CHECK(std::signbit(lux::tanh_fast{}(-0.0f)));
  CHECK(std::signbit(lux::tanh_fast{}(-0.0)));
  CHECK(std::signbit(lane0(lux::tanh_fast{}(B(-0.0f)))));
  // NaN propagates through the selects (value), like NNlib's ifelse / clamp.
  CHECK(std::isnan(lux::relu{}(nan)));
  CHECK(std::isnan(lane0(lux::relu{}(B(nan)))));
  CHECK(std::isnan(lux::relu6{}(nan)));
  CHECK(std::isnan(lux::hardtanh{}(nan)));
  CHECK(std::isnan(lux::hardsigmoid{}(nan)));
  CHECK(std::isnan(lux::leakyrelu{}(nan)));
  CHECK(std::isnan(lux::elu{}(nan)));
  CHECK(std::isnan(lux::sigmoid{}(nan)));
  CHECK(std::isnan(lux::softplus{}(nan)));
  CHECK(std::isnan(lux::tanh_fast{}(nan)));
  CHECK(std::isnan(lux::tanh_fast{}(std::numeric_limits<double>::quiet_NaN())));
  CHECK(std::isnan(lane0(lux::tanh_fast{}(B(nan)))));
  CHECK(std::isnan(lux::sigmoid_fast{}(nan)));
}

// ---------------------------------------------------------------------------------------------
// NNlib conventions
// ---------------------------------------------------------------------------------------------

TEST_CASE("activations: derivatives at kinks follow NNlib's rules", "[activations]") {
  const double la = static_cast<double>(kSeluLambda * kSeluAlpha);
  CHECK(lux::relu{}.derivative(lux::relu{}(0.0)) == 0.0);
  CHECK(lux::relu{}.derivative(lux::relu{}(-0.0)) == 0.0);
  CHECK(lux::relu6{}.derivative(lux::relu6{}(0.0)) == 0.0);
  CHECK(lux::relu6{}.derivative(lux::relu6{}(6.0)) == 0.0);
  CHECK(lux::leakyrelu{}.derivative(lux::leakyrelu{}(0.0)) == 0.01);
  CHECK(lux::leakyrelu{0.2}.derivative(lux::leakyrelu{0.2}(0.0f)) == 0.2f);
  CHECK(lux::elu{}.derivative(lux::elu{}(0.0)) == 1.0);  // x >= 0 branch
  CHECK(lux::elu{}.derivative(lux::elu{}(-0.0)) == 1.0);
  CHECK(lux::elu{2}.derivative(lux::elu{2}(0.0)) == 1.0);  // not y + α = 2
  CHECK(lux::elu{0.5}.derivative(lux::elu{0.5}(0.0f)) == 1.0f);
  CHECK(lux::elu{2}.derivative(lux::elu{2}(-1.0)) == Approx(2 * std::exp(-1.0)).epsilon(1e-15));
  CHECK(lux::selu{}.derivative(lux::selu{}(0.0)) == Approx(la).epsilon(1e-15));  // x > 0
  CHECK(lux::selu{}.derivative(lux::selu{}(1e-300)) == Approx(1.0507009873554805).epsilon(1e-15));
  CHECK(lux::hardtanh{}.derivative(lux::hardtanh{}(1.0)) == 0.0);
  CHECK(lux::hardtanh{}.derivative(lux::hardtanh{}(-1.0)) == 0.0);
  CHECK(lux::hardtanh{}.derivative(lux::hardtanh{}(0.999)) == 1.0);
  CHECK(lux::hardsigmoid{}.derivative(lux::hardsigmoid{}(3.0)) == 0.0);
  CHECK(lux::hardsigmoid{}.derivative(lux::hardsigmoid{}(-3.0)) == 0.0);
  // Saturated regions: 0 (NNlib returned 1 here until FluxML/NNlib.jl#706).
  CHECK(lux::hardsigmoid{}.derivative(lux::hardsigmoid{}(5.0)) == 0.0);
  CHECK(lux::hardsigmoid{}.derivative(lux::hardsigmoid{}(-5.0)) == 0.0);
  CHECK(lux::hardsigmoid{}.derivative(lux::hardsigmoid{}(1.0)) == Approx(1.0 / 6).epsilon(1e-15));
  CHECK(lux::identity{}.derivative(123.0f) == 1.0f);
}

TEST_CASE("activations: gelu and gelu_erf are NNlib's formulas", "[activations]") {
  // NNlib: gelu_tanh(x) = x/2 (1 + tanh(√(2/π)(x + 0.044715x³))) with
  // deriv_gelu_tanh(x) = (1 + Ω)/2 + x λ (0.08943x² + 1 + 0.044715x²) sech²/2, Ω = tanh(...);
  // gelu_erf(x) = x/2 (1 + erf(x/√2)), deriv = Φ + x exp(-x²/2)/√(2π). Away from the
  // cancellation of 1 + tanh / 1 + erf (x >= -3) these literal forms must agree.
  const double lambda = std::sqrt(2 / 3.141592653589793);
  for (double x : grid()) {
    if (x < -3 || x > 50) continue;
    const double z = lambda * (x + 0.044715 * x * x * x), om = std::tanh(z);
    const double g = x / 2 * (1 + om);
    const double dg =
        (1 + om) / 2 + x * lambda * (0.08943 * x * x + 1 + 0.044715 * x * x) * (1 - om * om) / 2;
    CHECK(lux::gelu{}(x) == Approx(g).epsilon(1e-13).margin(1e-300));
    CHECK(lux::gelu{}.derivative(x) == Approx(dg).epsilon(1e-12).margin(1e-300));
    const double phi = (1 + std::erf(x / std::sqrt(2.0))) / 2;
    CHECK(lux::gelu_erf{}(x) == Approx(x * phi).epsilon(1e-13).margin(1e-300));
    CHECK(lux::gelu_erf{}.derivative(x) ==
          Approx(phi + x * std::exp(-x * x / 2) / std::sqrt(2 * 3.141592653589793))
              .epsilon(1e-13)
              .margin(1e-300));
  }
}

TEST_CASE("activations: Float32 values documented in NNlib", "[activations]") {
  // Julia prints the shortest round-tripping decimal; allow one ulp for libm differences.
  auto ulps = [](float a, float b) {
    std::int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    if (ia < 0) ia = std::numeric_limits<std::int32_t>::min() - ia;
    if (ib < 0) ib = std::numeric_limits<std::int32_t>::min() - ib;
    return std::abs(static_cast<std::int64_t>(ia) - ib);
  };
  CHECK(ulps(lux::sigmoid{}(0.2f), 0.54983395f) <= 1);
  CHECK(ulps(lux::sigmoid_fast{}(0.2f), 0.54983395f) <= 1);
  CHECK(ulps(lux::hardsigmoid{}(0.2f), 0.53333336f) <= 1);
  CHECK(ulps(lux::tanh_{}(0.5f), 0.46211717f) <= 1);
  CHECK(lux::tanh_fast{}(0.5f) == 0.46211714f);  // NNlib's rational, bit for bit
  CHECK(ulps(lux::elu{}(-10.0f), -0.9999546f) <= 1);
  CHECK(ulps(lux::elu{2}(-10.0f), -1.9999092f) <= 1);
  CHECK(ulps(lux::selu{}(-10.0f), -1.7580194f) <= 1);
  CHECK(lux::softsign{}(1.0f) == 0.5f);
  CHECK(ulps(lux::softsign{}(100.0f), 0.990099f) <= 1);
  CHECK(lux::softplus{}(16.0f) == 16.0f);
  CHECK(lux::leakyrelu{0.2}(-10.0f) == -2.0f);
  CHECK(lux::leakyrelu{}(-10.0f) == Approx(-0.1f));
}

TEST_CASE("activations: large inputs saturate exactly and never give NaN", "[activations]") {
  CHECK(lux::sigmoid{}(-1000.0f) == 0.0f);  // exp(-1000) underflows to 0, 0 / 1 = 0
  CHECK(lux::sigmoid{}(-1000.0) == 0.0);
  CHECK(lux::sigmoid{}(1000.0f) == 1.0f);
  CHECK(lux::sigmoid_fast{}(-1000.0f) == 0.0f);
  CHECK(lux::sigmoid_fast{}(-80.5f) == 0.0f);  // NNlib's clamp; σ(-80.5) ≈ 1.1e-35 > 0
  CHECK(lux::sigmoid{}(-80.5f) > 0.0f);
  CHECK(lux::softplus{}(1000.0f) == 1000.0f);
  CHECK(lux::softplus{}(1000.0) == 1000.0);
  CHECK(lux::softplus{}(-1000.0) == 0.0);
  CHECK(lux::logsigmoid{}(-1000.0f) == -1000.0f);
  CHECK(lux::logsigmoid{}(-1000.0) == -1000.0);
  CHECK(lux::logsigmoid{}(1000.0) == 0.0);
  CHECK(lux::tanh_fast{}(100.0f) == 1.0f);
  CHECK(lux::tanh_fast{}(-100.0) == -1.0);
  CHECK(lux::elu{}(-1000.0) == -1.0);
  CHECK(lux::gelu{}(-1000.0) == 0.0);
  CHECK(lux::gelu{}(1000.0f) == 1000.0f);
  CHECK(lux::gelu_erf{}(-1000.0) == 0.0);
  CHECK(lux::swish{}(-1000.0f) == 0.0f);
  CHECK(lux::mish{}(1000.0) == 1000.0);

  auto no_nan = [](auto x) {
    bool ok = true;
    for_each_entry([&](const auto& e) {
      const auto y = e.f(x);
      const auto d = lux::derivative_at(e.f, x, y);
      if (std::isnan(y) || std::isnan(d)) {
        FAIL_CHECK(e.label << " gives NaN at x = " << x << ": y = " << y << ", d = " << d);
        ok = false;
      }
    });
    return ok;
  };
  for (double m : {1e3, 1e4, 1e10, 1e30, 1e100, 1e300, 1.7976931348623157e308}) {
    CHECK(no_nan(m));
    CHECK(no_nan(-m));
  }
  for (float m : {1e3f, 1e4f, 1e10f, 1e19f, 1e20f, 1e30f, 3.4028235e38f}) {
    CHECK(no_nan(m));
    CHECK(no_nan(-m));
  }
  for (double m : {4.9e-324, 1e-300}) CHECK(no_nan(m));
  for (float m : {1.4e-45f, 1e-40f}) CHECK(no_nan(-m));
}

// ---------------------------------------------------------------------------------------------
// Traits, concept, aggregates
// ---------------------------------------------------------------------------------------------

template <class F>
constexpr bool is_output = lux::activation_traits<F>::uses_output;

static_assert(lux::activation_function<lux::identity>);
static_assert(lux::activation_function<lux::relu>);
static_assert(lux::activation_function<lux::leakyrelu>);
static_assert(lux::activation_function<lux::gelu_erf>);
static_assert(lux::activation_function<lux::tanh_fast>);
static_assert(!lux::activation_function<int>);
static_assert(!lux::activation_function<float (*)(float)>);
static_assert(std::is_same_v<lux::silu, lux::swish>);
static_assert(is_output<lux::identity> && is_output<lux::relu> && is_output<lux::relu6> &&
              is_output<lux::leakyrelu> && is_output<lux::elu> && is_output<lux::selu> &&
              is_output<lux::sigmoid> && is_output<lux::hardsigmoid> && is_output<lux::tanh_> &&
              is_output<lux::hardtanh> && is_output<lux::softplus> && is_output<lux::softsign> &&
              is_output<lux::logsigmoid> && is_output<lux::sigmoid_fast> &&
              is_output<lux::tanh_fast>);
static_assert(!is_output<lux::gelu> && !is_output<lux::gelu_erf> && !is_output<lux::swish> &&
              !is_output<lux::mish>);
static_assert(lux::activation_traits<lux::identity>::is_identity);
static_assert(lux::activation_traits<const lux::identity>::is_identity);
static_assert(!lux::activation_traits<lux::relu>::is_identity);
static_assert(lux::relu::epilogue == lux::vendor_epilogue::relu);
static_assert(lux::gelu::epilogue == lux::vendor_epilogue::gelu);
static_assert(lux::gelu_erf::epilogue == lux::vendor_epilogue::gelu_erf);
static_assert(lux::sigmoid::epilogue == lux::vendor_epilogue::sigmoid);
static_assert(lux::tanh_::epilogue == lux::vendor_epilogue::tanh);
static_assert(lux::identity::epilogue == lux::vendor_epilogue::identity);
static_assert(lux::tanh_fast::epilogue == lux::vendor_epilogue::none);
static_assert(lux::mish::epilogue == lux::vendor_epilogue::none);
static_assert(std::is_aggregate_v<lux::leakyrelu> && std::is_aggregate_v<lux::elu>);
static_assert(std::is_empty_v<lux::relu> && std::is_empty_v<lux::gelu>);
static_assert(std::is_trivially_copyable_v<lux::leakyrelu> &&
              std::is_trivially_copyable_v<lux::elu>);
static_assert(lux::relu{}(-2.0) == 0.0 && lux::relu6{}(7.0f) == 6.0f);  // constexpr
static_assert(lux::hardtanh{}.derivative(0.5) == 1.0);
static_assert(lux::activation_traits<lux::relu>::cost < lux::activation_traits<lux::mish>::cost);

TEST_CASE("activations: names, parameters and traits", "[activations]") {
  CHECK(std::string(lux::relu::name) == "relu");
  CHECK(std::string(lux::tanh_::name) == "tanh");
  CHECK(std::string(lux::sigmoid::name) == "sigmoid");
  CHECK(std::string(lux::hardsigmoid::name) == "hardsigmoid");
  CHECK(std::string(lux::silu::name) == "swish");
  CHECK(std::string(lux::activation_traits<lux::gelu_erf>::name) == "gelu_erf");
  std::vector<std::string> names;
  for_each_entry([&](const auto& e) { names.emplace_back(e.f.name); });
  CHECK(names.size() == 21);
  CHECK(lux::leakyrelu{}.a == 0.01);
  CHECK(lux::leakyrelu{0.2}.a == 0.2);
  CHECK(lux::elu{}.alpha == 1.0);
  CHECK(lux::elu{0.5}.alpha == 0.5);
  CHECK(lux::elu{0.5}(-1.0) == Approx(0.5 * std::expm1(-1.0)).epsilon(1e-15));
}

// ---------------------------------------------------------------------------------------------
// A user number type: operators, comparisons returning bool, math found by ADL
// ---------------------------------------------------------------------------------------------

}  // namespace

namespace usernum {
struct num {
  double v = 0;
  num() = default;
  constexpr explicit num(double d) : v(d) {}
};
inline num operator+(num a, num b) { return num(a.v + b.v); }
inline num operator-(num a, num b) { return num(a.v - b.v); }
inline num operator*(num a, num b) { return num(a.v * b.v); }
inline num operator/(num a, num b) { return num(a.v / b.v); }
inline num operator-(num a) { return num(-a.v); }
inline bool operator<(num a, num b) { return a.v < b.v; }
inline bool operator>(num a, num b) { return a.v > b.v; }
inline bool operator<=(num a, num b) { return a.v <= b.v; }
inline bool operator>=(num a, num b) { return a.v >= b.v; }
inline num exp(num a) { return num(std::exp(a.v)); }
inline num expm1(num a) { return num(std::expm1(a.v)); }
inline num log1p(num a) { return num(std::log1p(a.v)); }
inline num tanh(num a) { return num(std::tanh(a.v)); }
inline num erfc(num a) { return num(std::erfc(a.v)); }
inline num abs(num a) { return num(std::fabs(a.v)); }
}  // namespace usernum

namespace {

TEST_CASE("activations: a user number type as element type", "[activations]") {
  using usernum::num;
  // Same operations in the same order as the double path (identical results up to the
  // compiler contracting a*b + c into an fma on plain doubles), except tanh_fast, which (like
  // NNlib's tanh_fast(::Number)) falls back to the type's own tanh.
  for_each_entry([](const auto& e) {
    constexpr bool from_output = lux::activation_traits<decltype(e.f)>::uses_output;
    tally tv{e.label + " value on a user number type"};
    tally td{e.label + " derivative on a user number type"};
    const bool fast = std::string(e.f.name) == "tanh_fast";
    for (double x : grid()) {
      const num y = e.f(num(x));
      const num d = lux::derivative_at(e.f, num(x), y);
      const double yw = fast ? std::tanh(x) : e.f(x);
      const double dw = fast ? lux::tanh_{}.derivative(yw) : lux::derivative_at(e.f, x, yw);
      const LD kv = condition(e.r.f, e.r.df, x), kd = condition_d(e.r, x);
      tv(close(y.v, yw, 2 * eps<double>() * (1 + kv), std::numeric_limits<double>::min()), x, y.v,
         yw);
      td(close(d.v, dw, 4 * eps<double>() * (1 + kd),
               from_output ? 4 * eps<double>() : std::numeric_limits<double>::min()),
         x, d.v, dw);
    }
    tv.done();
    td.done();
  });
}

// ---------------------------------------------------------------------------------------------
// The fast approximations: measured error
// ---------------------------------------------------------------------------------------------

// Error of `got` in ulps of the exact result `want` (the spacing of T at |want|).
template <class T>
LD ulp_error(T got, LD want) {
  const int digits = std::numeric_limits<T>::digits;
  const LD w = std::fabs(want);
  const LD ulp = w == 0
                     ? LD(std::numeric_limits<T>::denorm_min())
                     : std::ldexp(LD(1), std::max(std::ilogb(w) + 1 - digits,
                                                  std::numeric_limits<T>::min_exponent - digits));
  return std::fabs(LD(got) - want) / ulp;
}

struct error_stats {
  LD max_ulps = 0, max_abs = 0, max_rel = 0, at = 0;
  template <class T>
  void add(T x, T got, LD want) {
    const LD u = ulp_error(got, want);
    if (u > max_ulps) {
      max_ulps = u;
      at = x;
    }
    max_abs = std::max(max_abs, std::fabs(LD(got) - want));
    if (want != 0) max_rel = std::max(max_rel, std::fabs((LD(got) - want) / want));
  }
};

error_stats tanh_fast_float_error() {
  // Every 61st float from 1e-10 to 9.5 (about 4M of them; tanh_fast is odd, x * n(x²)/d(x²)
  // exactly, so the negative half mirrors this), plus ±tiny values.
  error_stats s;
  std::uint32_t lo, hi;
  const float flo = 1e-10f, fhi = 9.5f;
  std::memcpy(&lo, &flo, 4);
  std::memcpy(&hi, &fhi, 4);
  for (std::uint32_t b = lo; b <= hi; b += 61) {
    float x;
    std::memcpy(&x, &b, 4);
    s.add(x, lux::tanh_fast{}(x), std::tanh(LD(x)));
  }
  for (float x : {1e-30f, 1e-20f, 8.124f, 8.125f, 8.2f, 66.0f, 1000.0f})
    s.add(x, lux::tanh_fast{}(x), std::tanh(LD(x)));
  return s;
}

error_stats tanh_fast_double_error() {
  error_stats s;
  const int n = 2000000;
  for (int i = 0; i <= n; ++i) {
    const double x = 32.0 * i / n;
    s.add(x, lux::tanh_fast{}(x), std::tanh(LD(x)));
  }
  for (double x : {1e-300, 1e-30, 1e-8, 0.1303, 0.1304, 0.13038404810405, 0.1305})
    s.add(x, lux::tanh_fast{}(x), std::tanh(LD(x)));
  return s;
}

template <class T>
error_stats sigmoid_error(bool fast) {
  error_stats s;
  const int n = 400000;
  for (int i = 0; i <= n; ++i) {
    const T x = static_cast<T>(-80.0 + 120.0 * i / n);
    s.add(x, fast ? lux::sigmoid_fast{}(x) : lux::sigmoid{}(x), sig(LD(x)));
  }
  return s;
}

TEST_CASE("activations: error of the fast approximations", "[activations][fast]") {
  const error_stats tf = tanh_fast_float_error();
  const error_stats td = tanh_fast_double_error();
  INFO("tanh_fast float:  max " << double(tf.max_ulps) << " ulp at x = " << double(tf.at)
                                << ", abs " << double(tf.max_abs) << ", rel "
                                << double(tf.max_rel));
  INFO("tanh_fast double: max " << double(td.max_ulps) << " ulp at x = " << double(td.at)
                                << ", abs " << double(td.max_abs) << ", rel "
                                << double(td.max_rel));
  // NNlib: "Where Julia's tanh function has an error under 2 eps, this may be wrong by 5 eps".
  // Measured (see the header comment): float, exhaustively over (0, 9], 5.29 ulp / 2.65 eps
  // relative at x = 6.2434; double 2.4 ulp / 2.2 eps relative.
  CHECK(tf.max_rel <= 3 * eps<float>());
  CHECK(td.max_rel <= 3 * eps<double>());
  CHECK(tf.max_ulps <= 5.5L);
  CHECK(td.max_ulps <= 3L);
  // Tiny inputs come back exactly.
  CHECK(lux::tanh_fast{}(1e-30f) == 1e-30f);
  CHECK(lux::tanh_fast{}(1e-30) == 1e-30);

  // sigmoid_fast on the host is sigmoid with NNlib's clamps; both are within a few ulps.
  const error_stats sf = sigmoid_error<float>(true), sd = sigmoid_error<double>(true);
  const error_stats pf = sigmoid_error<float>(false), pd = sigmoid_error<double>(false);
  INFO("sigmoid_fast float " << double(sf.max_ulps) << " ulp, double " << double(sd.max_ulps)
                             << " ulp; sigmoid float " << double(pf.max_ulps) << ", double "
                             << double(pd.max_ulps));
  CHECK(sf.max_ulps <= 3);
  CHECK(sd.max_ulps <= 3);
  CHECK(pf.max_ulps <= 3);
  CHECK(pd.max_ulps <= 3);
  for (double x : grid()) {
    if (x < -80 || x > 40) continue;
    CHECK(lux::sigmoid_fast{}(x) == lux::sigmoid{}(x));
    CHECK(lux::sigmoid_fast{}(float(x)) == lux::sigmoid{}(float(x)));
  }
}

// Prints the largest error of every activation relative to eps (1 + κ) — run with
// `test_core "[.report]"`; used to set the tolerances and the numbers in the header comment.
TEST_CASE("activations: error report", "[.report]") {
  const error_stats tf = tanh_fast_float_error(), td = tanh_fast_double_error();
  std::printf("tanh_fast float : %.2f ulp at %g, abs %.3g, rel %.3g\n", double(tf.max_ulps),
              double(tf.at), double(tf.max_abs), double(tf.max_rel));
  std::printf("tanh_fast double: %.2f ulp at %g, abs %.3g, rel %.3g\n", double(td.max_ulps),
              double(td.at), double(td.max_abs), double(td.max_rel));
  for (bool fast : {false, true}) {
    const error_stats f = sigmoid_error<float>(fast), d = sigmoid_error<double>(fast);
    std::printf("%-12s on [-80, 40]: float %.2f ulp (rel %.3g), double %.2f ulp (rel %.3g)\n",
                fast ? "sigmoid_fast" : "sigmoid", double(f.max_ulps), double(f.max_rel),
                double(d.max_ulps), double(d.max_rel));
  }
  // Error in units of the tolerance with k = 1: |got - want| / (eps (1 + κ) |want| + abs).
  auto report = [](const auto& e, auto tag) {
    using T = decltype(tag);
    constexpr bool from_output = lux::activation_traits<decltype(e.f)>::uses_output;
    LD wv = 0, wd = 0, xv = 0, xdd = 0;
    for (double xd : grid()) {
      const T x = static_cast<T>(xd);
      const T y = e.f(x);
      const LD want = e.r.f(x);
      const LD kv = condition(e.r.f, e.r.df, x);
      const LD uv = std::fabs(y - want) /
                    (eps<T>() * (1 + kv) * std::fabs(want) + std::numeric_limits<T>::min());
      if (uv > wv) wv = uv, xv = x;
      if (near_kink(e.r, x, 0)) continue;
      const LD dw = e.r.df(x);
      const LD kd = condition_d(e.r, x);
      const T d = lux::derivative_at(e.f, x, y);
      const LD dabs = (from_output ? 8 * eps<T>() : std::numeric_limits<T>::min());
      const LD ud = std::fabs(d - dw) / (eps<T>() * (1 + kd) * std::fabs(dw) + dabs);
      if (ud > wd) wd = ud, xdd = x;
    }
    std::printf("%-18s %-6s value %7.3f (x = %-9.4g)  derivative %7.3f (x = %.4g)\n",
                e.label.c_str(), type_name<T>(), double(wv), double(xv), double(wd), double(xdd));
  };
  for_each_entry([&](const auto& e) {
    report(e, float{});
    report(e, double{});
  });
  CHECK(true);
}

}  // namespace
