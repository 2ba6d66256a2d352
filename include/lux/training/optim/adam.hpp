// luxcpp — Optimisers.jl's Adam family: Adam, AdamW, RAdam, NAdam, AMSGrad, AdaMax.
//
// Formulas are Optimisers.jl's (src/rules.jl, v0.4.8); η = eta, β = beta, ϵ = epsilon, g the
// incoming gradient, dx′ the step subtracted from x. The moments are
//   mt = β₁ mt + (1 - β₁) g,   vt = β₂ vt + (1 - β₂) g²,
// and the bias corrections use running products βᵗ kept in the state (`beta1_t`, `beta2_t`):
// like Optimisers.jl they start at β (the value for the first step) and are multiplied by β after
// every step, so an adjusted β takes effect in the products from then on. Unlike Optimisers.jl,
// which keeps βᵗ in the element type, they are doubles here (they are per-step scalars; this is
// more accurate for float parameters and is what PyTorch does with its Python-float powers).
// Each kernel is written as η-and-correction factors computed once per step times elementwise
// work (mt · c₁ / (√vt · c₂ + ϵ) for Adam): the same formula as Optimisers.jl's
// mt / (1 - β₁ᵗ) / (√(vt / (1 - β₂ᵗ)) + ϵ) · η up to rounding, with one division per element.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "lux/core/config.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optim/state.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// Adam(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8):
///   dx′ = η (mt / (1 - β₁ᵗ)) / (√(vt / (1 - β₂ᵗ)) + ϵ).
/// State: `mt`, `vt`, `beta1_t`, `beta2_t`. Same formula as PyTorch's Adam (ϵ outside the root,
/// after the bias correction).
struct Adam {
  static constexpr std::string_view name = "Adam";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "epsilon">(r.eta, r.beta, r.epsilon);
  }
};

/// AdamW(η = 0.001, β = (0.9, 0.999), λ = 0, ϵ = 1e-8; couple = true): Adam's step a with
/// learning rate 1, then dx′ = η (a + λ x) (couple = true: PyTorch's AdamW, the default since
/// Optimisers.jl 0.4) or dx′ = η a + λ x (couple = false: decoupled from η, as in the paper).
/// State as Adam's.
struct AdamW {
  static constexpr std::string_view name = "AdamW";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double lambda = 0.0;
  double epsilon = 1e-8;
  bool couple = true;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "lambda", "epsilon", "couple">(r.eta, r.beta, r.lambda,
                                                                    r.epsilon, r.couple);
  }
};

/// RAdam(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8): with ρ∞ = 2/(1 - β₂) - 1 and
/// ρ = ρ∞ - 2t β₂ᵗ/(1 - β₂ᵗ) (t = 1, 2, ...):
///   ρ > 4: dx′ = η r (mt / (1 - β₁ᵗ)) / (√(vt / (1 - β₂ᵗ)) + ϵ),
///          r = √((ρ - 4)(ρ - 2)ρ∞ / ((ρ∞ - 4)(ρ∞ - 2)ρ));
///   else:  dx′ = η mt / (1 - β₁ᵗ).
/// State: `mt`, `vt`, `beta1_t`, `beta2_t`, `t` (std::int64_t, the next step, from 1). PyTorch's
/// RAdam rectifies only for ρ > 5 and puts ϵ after √vt (√(1 - β₂ᵗ)/(√vt + ϵ)); with β₂ = 0.999
/// the two agree for the first four steps. ρ and r are computed in double (Optimisers.jl: the
/// element type).
struct RAdam {
  static constexpr std::string_view name = "RAdam";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "epsilon">(r.eta, r.beta, r.epsilon);
  }
};

/// NAdam(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8), as Optimisers.jl writes it:
///   dx′ = η (β₁ mt / (1 - β₁ β₁ᵗ) + (1 - β₁) g / (1 - β₁ᵗ)) / (√(vt β₂ / (1 - β₂ᵗ)) + ϵ).
/// State as Adam's. PyTorch's NAdam uses the momentum schedule μₜ = β₁(1 - ½·0.96^(t ψ)) and
/// √(vt/(1 - β₂ᵗ)) + ϵ (no factor β₂): it equals this rule with momentum_decay ψ → ∞ (μₜ = β₁),
/// lr = η/√β₂ and eps = ϵ/√β₂ (and PyTorch 1.13's single-tensor NAdam multiplies μ into its
/// μ-product twice; its foreach version does not).
struct NAdam {
  static constexpr std::string_view name = "NAdam";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "epsilon">(r.eta, r.beta, r.epsilon);
  }
};

/// AMSGrad(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8), Optimisers.jl's form: mt, vt as Adam,
/// v̂t = max(v̂t, vt), dx′ = η mt / (√v̂t + ϵ) — no bias correction, and mt, vt, v̂t all start at
/// ϵ. State: `mt`, `vt`, `vhat`. PyTorch's Adam(amsgrad = true) bias-corrects and starts at 0.
struct AMSGrad {
  static constexpr std::string_view name = "AMSGrad";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "epsilon">(r.eta, r.beta, r.epsilon);
  }
};

/// AdaMax(η = 0.001, β = (0.9, 0.999), ϵ = 1e-8): mt as Adam, ut = max(β₂ ut, |g|),
/// dx′ = (η / (1 - β₁ᵗ)) mt / (ut + ϵ). State: `mt`, `ut`, `beta1_t`, `beta2_t` (beta2_t is kept
/// as Optimisers.jl keeps it; the rule does not use it). PyTorch's Adamax puts ϵ inside the max
/// (ut = max(β₂ ut, |g| + ϵ), dx′ ∝ mt / ut); with ϵ = 0 the two are the same.
struct AdaMax {
  static constexpr std::string_view name = "AdaMax";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta", "epsilon">(r.eta, r.beta, r.epsilon);
  }
};

namespace detail {
/// The moments and βᵗ products of Adam, AdamW, NAdam, AdaMax (`second` is vt or ut).
template <class T>
struct adam_moments {
  adam_moments(const std::array<double, 2>& beta, const flat_layout& l)
      : mt(l), vt(l), beta_t(beta) {}
  template <field_name Second>
  auto fields() noexcept {
    return named_refs<"mt", Second, "beta1_t", "beta2_t">(mt, vt, beta_t[0], beta_t[1]);
  }
  void advance(const std::array<double, 2>& beta) noexcept {
    beta_t[0] *= beta[0];
    beta_t[1] *= beta[1];
  }
  flat_buffer<T> mt, vt;
  std::array<double, 2> beta_t;
};
}  // namespace detail

template <class T>
class rule_state<Adam, T> {
 public:
  rule_state(const Adam& r, const flat_layout& l, const update_plan&) : s_(r.beta, l) {}
  auto fields() noexcept { return s_.template fields<"vt">(); }
  template <sink S, class Arch>
  void apply(const Adam& r, const step_args<T>& a) {
    const T b1 = static_cast<T>(r.beta[0]), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), b2c = static_cast<T>(1 - r.beta[1]),
            eps = static_cast<T>(r.epsilon);
    const T c1 = static_cast<T>(r.eta / (1 - s_.beta_t[0]));
    const T c2 = static_cast<T>(1 / std::sqrt(1 - s_.beta_t[1]));
    T* m = s_.mt.data();
    T* v = s_.vt.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto vi = b2 * L::load(v + i) + b2c * (g * g);
      L::store(m + i, mi);
      L::store(v + i, vi);
      emit<S, L>(a, i, c1 * mi / (detail::vsqrt(vi) * c2 + eps));
    });
    s_.advance(r.beta);
  }

 private:
  detail::adam_moments<T> s_;
};

template <class T>
class rule_state<AdamW, T> {
 public:
  rule_state(const AdamW& r, const flat_layout& l, const update_plan&) : s_(r.beta, l) {}
  auto fields() noexcept { return s_.template fields<"vt">(); }
  template <sink S, class Arch>
  void apply(const AdamW& r, const step_args<T>& a) {
    const T b1 = static_cast<T>(r.beta[0]), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), b2c = static_cast<T>(1 - r.beta[1]),
            eps = static_cast<T>(r.epsilon);
    const T eta = static_cast<T>(r.eta), lambda = static_cast<T>(r.lambda);
    const T c1 = static_cast<T>(1 / (1 - s_.beta_t[0]));
    const T c2 = static_cast<T>(1 / std::sqrt(1 - s_.beta_t[1]));
    // couple: η (a + λ x);  decoupled: η a + λ x.
    const T ca = eta, cx = r.couple ? eta * lambda : lambda;
    T* m = s_.mt.data();
    T* v = s_.vt.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto vi = b2 * L::load(v + i) + b2c * (g * g);
      L::store(m + i, mi);
      L::store(v + i, vi);
      const auto step = c1 * mi / (detail::vsqrt(vi) * c2 + eps);
      emit<S, L>(a, i, ca * step + cx * L::load(a.x + i));
    });
    s_.advance(r.beta);
  }

 private:
  detail::adam_moments<T> s_;
};

template <class T>
class rule_state<RAdam, T> {
 public:
  rule_state(const RAdam& r, const flat_layout& l, const update_plan&) : s_(r.beta, l) {}
  auto fields() noexcept {
    return named_refs<"mt", "vt", "beta1_t", "beta2_t", "t">(s_.mt, s_.vt, s_.beta_t[0],
                                                             s_.beta_t[1], t_);
  }
  template <sink S, class Arch>
  void apply(const RAdam& r, const step_args<T>& a) {
    const T b1 = static_cast<T>(r.beta[0]), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), b2c = static_cast<T>(1 - r.beta[1]),
            eps = static_cast<T>(r.epsilon);
    const double bt1 = s_.beta_t[0], bt2 = s_.beta_t[1];
    const double rho_inf = 2 / (1 - r.beta[1]) - 1;
    const double rho = rho_inf - 2 * static_cast<double>(t_) * bt2 / (1 - bt2);
    T* m = s_.mt.data();
    T* v = s_.vt.data();
    auto moments = [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto vi = b2 * L::load(v + i) + b2c * (g * g);
      L::store(m + i, mi);
      L::store(v + i, vi);
      return std::pair{mi, vi};
    };
    if (rho > 4) {
      const double rect =
          std::sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho));
      const T c1 = static_cast<T>(r.eta * rect / (1 - bt1));
      const T c2 = static_cast<T>(1 / std::sqrt(1 - bt2));
      for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
        using L = decltype(lane);
        const auto [mi, vi] = moments(lane, i);
        emit<S, L>(a, i, c1 * mi / (detail::vsqrt(vi) * c2 + eps));
      });
    } else {
      const T c1 = static_cast<T>(r.eta / (1 - bt1));
      for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
        using L = decltype(lane);
        const auto mv = moments(lane, i);
        emit<S, L>(a, i, c1 * mv.first);
      });
    }
    s_.advance(r.beta);
    ++t_;
  }

 private:
  detail::adam_moments<T> s_;
  std::int64_t t_ = 1;
};

template <class T>
class rule_state<NAdam, T> {
 public:
  rule_state(const NAdam& r, const flat_layout& l, const update_plan&) : s_(r.beta, l) {}
  auto fields() noexcept { return s_.template fields<"vt">(); }
  template <sink S, class Arch>
  void apply(const NAdam& r, const step_args<T>& a) {
    const double beta1 = r.beta[0], bt1 = s_.beta_t[0], bt2 = s_.beta_t[1];
    const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), b2c = static_cast<T>(1 - r.beta[1]),
            eps = static_cast<T>(r.epsilon);
    const T cm = static_cast<T>(r.eta * beta1 / (1 - beta1 * bt1));
    const T cg = static_cast<T>(r.eta * (1 - beta1) / (1 - bt1));
    const T cv = static_cast<T>(std::sqrt(r.beta[1] / (1 - bt2)));
    T* m = s_.mt.data();
    T* v = s_.vt.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto vi = b2 * L::load(v + i) + b2c * (g * g);
      L::store(m + i, mi);
      L::store(v + i, vi);
      emit<S, L>(a, i, (cm * mi + cg * g) / (detail::vsqrt(vi) * cv + eps));
    });
    s_.advance(r.beta);
  }

 private:
  detail::adam_moments<T> s_;
};

template <class T>
class rule_state<AMSGrad, T> {
 public:
  rule_state(const AMSGrad& r, const flat_layout& l, const update_plan&)
      : mt_(l), vt_(l), vhat_(l) {
    const T eps = static_cast<T>(r.epsilon);
    detail::fill_leaves(mt_, eps);
    detail::fill_leaves(vt_, eps);
    detail::fill_leaves(vhat_, eps);
  }
  auto fields() noexcept { return named_refs<"mt", "vt", "vhat">(mt_, vt_, vhat_); }
  template <sink S, class Arch>
  void apply(const AMSGrad& r, const step_args<T>& a) {
    const T b1 = static_cast<T>(r.beta[0]), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), b2c = static_cast<T>(1 - r.beta[1]),
            eps = static_cast<T>(r.epsilon);
    const T eta = static_cast<T>(r.eta);
    T* m = mt_.data();
    T* v = vt_.data();
    T* vh = vhat_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto vi = b2 * L::load(v + i) + b2c * (g * g);
      const auto hi = detail::vmax(L::load(vh + i), vi);
      L::store(m + i, mi);
      L::store(v + i, vi);
      L::store(vh + i, hi);
      emit<S, L>(a, i, eta * mi / (detail::vsqrt(hi) + eps));
    });
  }

 private:
  flat_buffer<T> mt_, vt_, vhat_;
};

template <class T>
class rule_state<AdaMax, T> {
 public:
  rule_state(const AdaMax& r, const flat_layout& l, const update_plan&) : s_(r.beta, l) {}
  auto fields() noexcept { return s_.template fields<"ut">(); }
  template <sink S, class Arch>
  void apply(const AdaMax& r, const step_args<T>& a) {
    const T b1 = static_cast<T>(r.beta[0]), b2 = static_cast<T>(r.beta[1]);
    const T b1c = static_cast<T>(1 - r.beta[0]), eps = static_cast<T>(r.epsilon);
    const T c1 = static_cast<T>(r.eta / (1 - s_.beta_t[0]));
    T* m = s_.mt.data();
    T* u = s_.vt.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b1 * L::load(m + i) + b1c * g;
      const auto ui = detail::vmax(b2 * L::load(u + i), detail::vabs(g));
      L::store(m + i, mi);
      L::store(u + i, ui);
      emit<S, L>(a, i, c1 * mi / (ui + eps));
    });
    s_.advance(r.beta);
  }

 private:
  detail::adam_moments<T> s_;
};

}  // namespace optim
LUX_NAMESPACE_END
