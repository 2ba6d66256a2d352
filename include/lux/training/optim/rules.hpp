// luxcpp — Optimisers.jl's gradient-descent rules without Adam's moments: Descent, Momentum,
// Nesterov, RMSProp, AdaGrad, AdaDelta and Lion (Adam and its variants: optim/adam.hpp).
//
// Each rule is an aggregate with Optimisers.jl's field names and defaults (`Momentum{0.01, 0.9}`,
// `RMSProp{.eta = 1e-3, .centred = true}`), and a rule_state<Rule, T> specialization with its
// buffers (named as in Optimisers.jl's source) and its kernel. Formulas are Optimisers.jl's
// (src/rules.jl, v0.4.8), dx′ being the step subtracted from x; η = eta, ρ = rho, ϵ = epsilon, g
// the incoming gradient. Where PyTorch writes the same rule differently, the comment says how
// (tests/training/test_optimisers.cpp checks each rule against torch.optim where the two agree).
#pragma once

#include <cmath>
#include <string_view>

#include "lux/core/config.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optim/state.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// Descent(η = 0.1): dx′ = η g. PyTorch: SGD(lr = η).
struct Descent {
  static constexpr std::string_view name = "Descent";
  double eta = 0.1;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"eta">(r.eta); }
};

/// Momentum(η = 0.01, ρ = 0.9): v = ρ v + η g; dx′ = v. State: `velocity`.
/// PyTorch's SGD(lr = η, momentum = ρ) keeps b = ρ b + g and steps η b: the same trajectory for
/// a constant η (v = η b), but after a change of η PyTorch rescales the accumulated velocity and
/// Optimisers.jl does not.
struct Momentum {
  static constexpr std::string_view name = "Momentum";
  double eta = 0.01;
  double rho = 0.9;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"eta", "rho">(r.eta, r.rho); }
};

/// Nesterov(η = 0.001, ρ = 0.9): dx′ = -ρ² vel + (1 + ρ) η g; vel = ρ vel - η g (vel is minus
/// the velocity). State: `velocity` (= vel). Equal to PyTorch's SGD(lr = η, momentum = ρ,
/// nesterov = true) for a constant η (vel = -η b).
struct Nesterov {
  static constexpr std::string_view name = "Nesterov";
  double eta = 0.001;
  double rho = 0.9;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"eta", "rho">(r.eta, r.rho); }
};

/// RMSProp(η = 0.001, ρ = 0.9, ϵ = 1e-8; centred = false):
///   quad = ρ quad + (1 - ρ) g²;  centred: lin = ρ lin + (1 - ρ) g (else lin = 0);
///   dx′ = η g / (√(quad - lin²) + ϵ).
/// State: `quad`, `lin` (an empty buffer unless centred). PyTorch's RMSprop(lr = η, alpha = ρ,
/// eps = ϵ, centered) is the same formula (ϵ outside the square root in both); its defaults
/// differ (lr = 0.01, alpha = 0.99).
struct RMSProp {
  static constexpr std::string_view name = "RMSProp";
  double eta = 0.001;
  double rho = 0.9;
  double epsilon = 1e-8;
  bool centred = false;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "rho", "epsilon", "centred">(r.eta, r.rho, r.epsilon, r.centred);
  }
};

/// AdaGrad(η = 0.1, ϵ = 1e-8): acc = acc + g²; dx′ = η g / (√acc + ϵ), acc starting at ϵ
/// (Optimisers.jl's onevalue). State: `acc`. PyTorch's Adagrad is the same with
/// initial_accumulator_value = ϵ, eps = ϵ, lr_decay = 0 (its defaults: accumulator 0,
/// eps 1e-10, lr 0.01).
struct AdaGrad {
  static constexpr std::string_view name = "AdaGrad";
  double eta = 0.1;
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "epsilon">(r.eta, r.epsilon);
  }
};

/// AdaDelta(ρ = 0.9, ϵ = 1e-8) — no learning rate (adjust(state, η) does not apply):
///   acc = ρ acc + (1 - ρ) g²;  dx′ = g √(Δacc + ϵ) / √(acc + ϵ);  Δacc = ρ Δacc + (1 - ρ) dx′².
/// State: `acc`, `delta_acc` (Δacc). PyTorch's Adadelta(lr = 1, rho = ρ, eps = ϵ) is the same
/// (its default eps is 1e-6).
struct AdaDelta {
  static constexpr std::string_view name = "AdaDelta";
  double rho = 0.9;
  double epsilon = 1e-8;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"rho", "epsilon">(r.rho, r.epsilon);
  }
};

/// Lion(η = 0.001, β = (0.9, 0.999)), exactly as Optimisers.jl writes it:
///   mt = β₂ g + (1 - β₂) mt;  dx′ = η sign((β₂ - β₁) g + β₁ mt).
/// State: `mt`. (Note: the Lion paper's moment update is mt = β₂ mt + (1 - β₂) g; Optimisers.jl
/// v0.4.8 multiplies the gradient by β₂ instead, and this follows Optimisers.jl.) PyTorch 1.13
/// has no Lion.
struct Lion {
  static constexpr std::string_view name = "Lion";
  double eta = 0.001;
  std::array<double, 2> beta{0.9, 0.999};
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"eta", "beta">(r.eta, r.beta);
  }
};

// --- states and kernels ---------------------------------------------------------------------

template <class T>
class rule_state<Descent, T> {
 public:
  rule_state(const Descent&, const flat_layout&, const update_plan&) {}
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const Descent& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta);
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      emit<S, L>(a, i, eta * L::load(a.dx + i));
    });
  }
};

template <class T>
class rule_state<Momentum, T> {
 public:
  rule_state(const Momentum&, const flat_layout& l, const update_plan&) : velocity_(l) {}
  auto fields() noexcept { return named_refs<"velocity">(velocity_); }
  template <sink S, class Arch>
  void apply(const Momentum& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta), rho = static_cast<T>(r.rho);
    T* v = velocity_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto vi = rho * L::load(v + i) + eta * L::load(a.dx + i);
      L::store(v + i, vi);
      emit<S, L>(a, i, vi);
    });
  }

 private:
  flat_buffer<T> velocity_;
};

template <class T>
class rule_state<Nesterov, T> {
 public:
  rule_state(const Nesterov&, const flat_layout& l, const update_plan&) : velocity_(l) {}
  auto fields() noexcept { return named_refs<"velocity">(velocity_); }
  template <sink S, class Arch>
  void apply(const Nesterov& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta), rho = static_cast<T>(r.rho);
    const T rho2 = static_cast<T>(r.rho * r.rho), c = static_cast<T>((1 + r.rho) * r.eta);
    T* v = velocity_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto vi = L::load(v + i);
      L::store(v + i, rho * vi - eta * g);
      emit<S, L>(a, i, c * g - rho2 * vi);
    });
  }

 private:
  flat_buffer<T> velocity_;
};

template <class T>
class rule_state<RMSProp, T> {
 public:
  rule_state(const RMSProp& r, const flat_layout& l, const update_plan&)
      : quad_(l), lin_(r.centred ? l : flat_layout{}), centred_(r.centred) {}
  auto fields() noexcept { return named_refs<"quad", "lin">(quad_, lin_); }
  template <sink S, class Arch>
  void apply(const RMSProp& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta), rho = static_cast<T>(r.rho);
    const T rho1 = static_cast<T>(1 - r.rho), eps = static_cast<T>(r.epsilon);
    T* q = quad_.data();
    if (centred_) {
      T* m = lin_.data();
      for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
        using L = decltype(lane);
        const auto g = L::load(a.dx + i);
        const auto qi = rho * L::load(q + i) + rho1 * (g * g);
        const auto mi = rho * L::load(m + i) + rho1 * g;
        L::store(q + i, qi);
        L::store(m + i, mi);
        emit<S, L>(a, i, eta * g / (detail::vsqrt(qi - mi * mi) + eps));
      });
    } else {
      for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
        using L = decltype(lane);
        const auto g = L::load(a.dx + i);
        const auto qi = rho * L::load(q + i) + rho1 * (g * g);
        L::store(q + i, qi);
        emit<S, L>(a, i, eta * g / (detail::vsqrt(qi) + eps));
      });
    }
  }

 private:
  flat_buffer<T> quad_, lin_;
  bool centred_;  // fixed at setup (adjust cannot change it)
};

template <class T>
class rule_state<AdaGrad, T> {
 public:
  rule_state(const AdaGrad& r, const flat_layout& l, const update_plan&) : acc_(l) {
    detail::fill_leaves(acc_, static_cast<T>(r.epsilon));
  }
  auto fields() noexcept { return named_refs<"acc">(acc_); }
  template <sink S, class Arch>
  void apply(const AdaGrad& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta), eps = static_cast<T>(r.epsilon);
    T* acc = acc_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto ai = L::load(acc + i) + g * g;
      L::store(acc + i, ai);
      emit<S, L>(a, i, eta * g / (detail::vsqrt(ai) + eps));
    });
  }

 private:
  flat_buffer<T> acc_;
};

template <class T>
class rule_state<AdaDelta, T> {
 public:
  rule_state(const AdaDelta&, const flat_layout& l, const update_plan&) : acc_(l), delta_acc_(l) {}
  auto fields() noexcept { return named_refs<"acc", "delta_acc">(acc_, delta_acc_); }
  template <sink S, class Arch>
  void apply(const AdaDelta& r, const step_args<T>& a) {
    const T rho = static_cast<T>(r.rho), rho1 = static_cast<T>(1 - r.rho),
            eps = static_cast<T>(r.epsilon);
    T* acc = acc_.data();
    T* dacc = delta_acc_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto ai = rho * L::load(acc + i) + rho1 * (g * g);
      const auto di = L::load(dacc + i);
      // Optimisers.jl: "DON'T remove epsilon from numerator or even out of the square roots!"
      const auto step = g * detail::vsqrt(di + eps) / detail::vsqrt(ai + eps);
      L::store(acc + i, ai);
      L::store(dacc + i, rho * di + rho1 * (step * step));
      emit<S, L>(a, i, step);
    });
  }

 private:
  flat_buffer<T> acc_, delta_acc_;
};

template <class T>
class rule_state<Lion, T> {
 public:
  rule_state(const Lion&, const flat_layout& l, const update_plan&) : mt_(l) {}
  auto fields() noexcept { return named_refs<"mt">(mt_); }
  template <sink S, class Arch>
  void apply(const Lion& r, const step_args<T>& a) {
    const T eta = static_cast<T>(r.eta), b1 = static_cast<T>(r.beta[0]);
    const T b2 = static_cast<T>(r.beta[1]), b21 = static_cast<T>(r.beta[1] - r.beta[0]);
    const T b2c = static_cast<T>(1 - r.beta[1]);
    T* m = mt_.data();
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      const auto g = L::load(a.dx + i);
      const auto mi = b2 * g + b2c * L::load(m + i);
      L::store(m + i, mi);
      emit<S, L>(a, i, eta * detail::jl_sign(b21 * g + b1 * mi));
    });
  }

 private:
  flat_buffer<T> mt_;
};

}  // namespace optim
LUX_NAMESPACE_END
