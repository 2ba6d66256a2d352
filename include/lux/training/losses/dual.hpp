// luxcpp — a forward-mode dual number, value + ε·derivative with ε² = 0, for differentiating a
// user's scalar loss function exactly (GenericLossFunction; Lux differentiates its
// GenericLossFunction with ForwardDiff.Dual the same way).
//
// lux::detail::dual<T>{v, d} supports + - * / (with duals and with arithmetic scalars),
// comparisons (on the value), and the functions abs, log, log1p, exp, expm1, sqrt, tanh,
// pow, max, min, found by argument-dependent lookup. A function written as a template and
// calling math unqualified (`using std::log; return log(a) * b;`) works for T and dual<T>
// alike; `std::log(a)` (qualified) does not compile for a dual. There is deliberately no
// conversion from dual<T> to T, so a function taking plain doubles is not silently
// differentiated as a constant.
//
// Conventions at kinks: abs'(0) = 0 (the sign, as Julia's), max/min pick the first argument on
// ties (with its derivative), sqrt'(0) = +inf.
#pragma once

#include <cmath>
#include <type_traits>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN
namespace detail {

template <class T>
struct dual {
  static_assert(std::is_floating_point_v<T>, "lux::detail::dual: T must be a floating type");
  using value_type = T;

  T val = 0;  ///< the value
  T der = 0;  ///< the derivative with respect to the seeded variable

  constexpr dual() = default;
  /// A constant (derivative 0); implicit so that `c ? x : T(0)` mixes duals and constants.
  constexpr dual(T v) : val(v) {}  // NOLINT(google-explicit-constructor)
  constexpr dual(T v, T d) : val(v), der(d) {}
};

template <class S>
concept dual_scalar = std::is_arithmetic_v<S>;

// --- arithmetic ------------------------------------------------------------------------------
template <class T>
constexpr dual<T> operator+(dual<T> a) {
  return a;
}
template <class T>
constexpr dual<T> operator-(dual<T> a) {
  return {-a.val, -a.der};
}
template <class T>
constexpr dual<T> operator+(dual<T> a, dual<T> b) {
  return {a.val + b.val, a.der + b.der};
}
template <class T>
constexpr dual<T> operator-(dual<T> a, dual<T> b) {
  return {a.val - b.val, a.der - b.der};
}
template <class T>
constexpr dual<T> operator*(dual<T> a, dual<T> b) {
  return {a.val * b.val, a.der * b.val + a.val * b.der};
}
template <class T>
constexpr dual<T> operator/(dual<T> a, dual<T> b) {
  return {a.val / b.val, (a.der * b.val - a.val * b.der) / (b.val * b.val)};
}
template <class T, dual_scalar S>
constexpr dual<T> operator+(dual<T> a, S s) {
  return {a.val + T(s), a.der};
}
template <class T, dual_scalar S>
constexpr dual<T> operator+(S s, dual<T> a) {
  return {T(s) + a.val, a.der};
}
template <class T, dual_scalar S>
constexpr dual<T> operator-(dual<T> a, S s) {
  return {a.val - T(s), a.der};
}
template <class T, dual_scalar S>
constexpr dual<T> operator-(S s, dual<T> a) {
  return {T(s) - a.val, -a.der};
}
template <class T, dual_scalar S>
constexpr dual<T> operator*(dual<T> a, S s) {
  return {a.val * T(s), a.der * T(s)};
}
template <class T, dual_scalar S>
constexpr dual<T> operator*(S s, dual<T> a) {
  return {T(s) * a.val, T(s) * a.der};
}
template <class T, dual_scalar S>
constexpr dual<T> operator/(dual<T> a, S s) {
  return {a.val / T(s), a.der / T(s)};
}
template <class T, dual_scalar S>
constexpr dual<T> operator/(S s, dual<T> a) {
  return {T(s) / a.val, -T(s) * a.der / (a.val * a.val)};
}
template <class T, class B>
constexpr dual<T>& operator+=(dual<T>& a, const B& b) {
  return a = a + b;
}
template <class T, class B>
constexpr dual<T>& operator-=(dual<T>& a, const B& b) {
  return a = a - b;
}
template <class T, class B>
constexpr dual<T>& operator*=(dual<T>& a, const B& b) {
  return a = a * b;
}
template <class T, class B>
constexpr dual<T>& operator/=(dual<T>& a, const B& b) {
  return a = a / b;
}

// --- comparisons (on the value) ----------------------------------------------------------------
#define LUX_DUAL_COMPARISON(op)                      \
  template <class T>                                 \
  constexpr bool operator op(dual<T> a, dual<T> b) { \
    return a.val op b.val;                           \
  }                                                  \
  template <class T, dual_scalar S>                  \
  constexpr bool operator op(dual<T> a, S s) {       \
    return a.val op T(s);                            \
  }                                                  \
  template <class T, dual_scalar S>                  \
  constexpr bool operator op(S s, dual<T> a) {       \
    return T(s) op a.val;                            \
  }
LUX_DUAL_COMPARISON(<)
LUX_DUAL_COMPARISON(>)
LUX_DUAL_COMPARISON(<=)
LUX_DUAL_COMPARISON(>=)
LUX_DUAL_COMPARISON(==)
LUX_DUAL_COMPARISON(!=)
#undef LUX_DUAL_COMPARISON

// --- functions ------------------------------------------------------------------------------
template <class T>
dual<T> abs(dual<T> a) {
  const T s = a.val > 0 ? T(1) : (a.val < 0 ? T(-1) : T(0));
  return {std::abs(a.val), s * a.der};
}
template <class T>
dual<T> log(dual<T> a) {
  return {std::log(a.val), a.der / a.val};
}
template <class T>
dual<T> log1p(dual<T> a) {
  return {std::log1p(a.val), a.der / (T(1) + a.val)};
}
template <class T>
dual<T> exp(dual<T> a) {
  const T e = std::exp(a.val);
  return {e, e * a.der};
}
template <class T>
dual<T> expm1(dual<T> a) {
  return {std::expm1(a.val), std::exp(a.val) * a.der};
}
template <class T>
dual<T> sqrt(dual<T> a) {
  const T r = std::sqrt(a.val);
  return {r, a.der / (T(2) * r)};
}
template <class T>
dual<T> tanh(dual<T> a) {
  const T t = std::tanh(a.val);
  return {t, (T(1) - t) * (T(1) + t) * a.der};
}
/// a^p for a constant exponent: p·a^(p-1)·a' (0 for p = 0, also at a = 0).
template <class T, dual_scalar S>
dual<T> pow(dual<T> a, S p) {
  const T q = T(p);
  if (q == T(0)) return {T(1), T(0)};
  return {std::pow(a.val, q), q * std::pow(a.val, q - T(1)) * a.der};
}
/// c^b for a constant base: c^b·log(c)·b'.
template <class T, dual_scalar S>
dual<T> pow(S c, dual<T> b) {
  const T v = std::pow(T(c), b.val);
  return {v, b.der == T(0) ? T(0) : v * std::log(T(c)) * b.der};
}
template <class T>
dual<T> pow(dual<T> a, dual<T> b) {
  if (b.der == T(0)) return pow(a, b.val);
  const T v = std::pow(a.val, b.val);
  return {v, b.val * std::pow(a.val, b.val - T(1)) * a.der + v * std::log(a.val) * b.der};
}
template <class T>
constexpr dual<T> max(dual<T> a, dual<T> b) {
  return b.val > a.val ? b : a;
}
template <class T, dual_scalar S>
constexpr dual<T> max(dual<T> a, S s) {
  return max(a, dual<T>(T(s)));
}
template <class T, dual_scalar S>
constexpr dual<T> max(S s, dual<T> a) {
  return max(dual<T>(T(s)), a);
}
template <class T>
constexpr dual<T> min(dual<T> a, dual<T> b) {
  return b.val < a.val ? b : a;
}
template <class T, dual_scalar S>
constexpr dual<T> min(dual<T> a, S s) {
  return min(a, dual<T>(T(s)));
}
template <class T, dual_scalar S>
constexpr dual<T> min(S s, dual<T> a) {
  return min(dual<T>(T(s)), a);
}

}  // namespace detail
LUX_NAMESPACE_END
