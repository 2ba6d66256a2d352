// luxcpp — Optimisers.jl's gradient transformations, meant to come first in an OptimiserChain:
// WeightDecay, SignDecay, ClipGrad, ClipNorm; and ClipGlobalNorm (not in Optimisers.jl).
//
// Alone, each is a rule like any other (its dx′ is subtracted from x: WeightDecay alone is
// x .-= g + λ x). None has a learning rate, so adjust(state, η) passes them by.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string_view>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/simd.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optim/state.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// WeightDecay(λ = 5e-4): dx′ = g + λ x (L2 regularisation, λ/2 ‖x‖² added to the loss).
/// OptimiserChain(WeightDecay(λ), Adam(η)) is PyTorch's Adam(lr = η, weight_decay = λ), and
/// OptimiserChain(WeightDecay(λ), Momentum(η, ρ)) is SGD(lr = η, momentum = ρ, weight_decay = λ).
struct WeightDecay {
  static constexpr std::string_view name = "WeightDecay";
  double lambda = 5e-4;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"lambda">(r.lambda); }
};

/// SignDecay(λ = 1e-3): dx′ = g + λ sign(x) (L1 regularisation, λ ‖x‖₁ added to the loss).
struct SignDecay {
  static constexpr std::string_view name = "SignDecay";
  double lambda = 1e-3;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"lambda">(r.lambda); }
};

/// ClipGrad(δ = 10): dx′ = clamp(g, -δ, δ) elementwise (PyTorch: clip_grad_value_).
struct ClipGrad {
  static constexpr std::string_view name = "ClipGrad";
  double delta = 10.0;
  static constexpr auto hypers(auto& r) noexcept { return named_refs<"delta">(r.delta); }
};

/// ClipNorm(ω = 10, p = 2; throw = true): per array (per leaf of the layout), as Optimisers.jl,
/// dx′ = g · min(ω / ‖g‖ₚ, 1). p may be 2, 1, ±Inf, 0 (the count of non-zeros) or any other
/// real ((Σ|g|ᵖ)^(1/p)). With `throw_` (Optimisers.jl's keyword `throw`, a C++ keyword; the
/// hyperparameter name for adjust is "throw") a non-finite norm throws lux::argument_error naming
/// the leaf, before anything of this rule is applied. Norms are accumulated in double (p = 2 and
/// p = 1 from float partial sums over blocks of 256 elements).
struct ClipNorm {
  static constexpr std::string_view name = "ClipNorm";
  double omega = 10.0;
  double p = 2.0;
  bool throw_ = true;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"omega", "p", "throw">(r.omega, r.p, r.throw_);
  }
};

/// ClipGlobalNorm(ω = 10, p = 2; throw = true): like ClipNorm, but with one norm over every leaf
/// together (one reduction over the buffer): dx′ = g · min(ω / ‖g‖ₚ, 1). This is Optax's
/// clip_by_global_norm and, but for the + 1e-6 PyTorch adds to the norm, torch.nn.utils.
/// clip_grad_norm_. Not part of Optimisers.jl.
struct ClipGlobalNorm {
  static constexpr std::string_view name = "ClipGlobalNorm";
  double omega = 10.0;
  double p = 2.0;
  bool throw_ = true;
  static constexpr auto hypers(auto& r) noexcept {
    return named_refs<"omega", "p", "throw">(r.omega, r.p, r.throw_);
  }
};

// --- states and kernels ---------------------------------------------------------------------

template <class T>
class rule_state<WeightDecay, T> {
 public:
  rule_state(const WeightDecay&, const flat_layout&, const update_plan&) {}
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const WeightDecay& r, const step_args<T>& a) {
    const T lambda = static_cast<T>(r.lambda);
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      emit<S, L>(a, i, L::load(a.dx + i) + lambda * L::load(a.x + i));
    });
  }
};

template <class T>
class rule_state<SignDecay, T> {
 public:
  rule_state(const SignDecay&, const flat_layout&, const update_plan&) {}
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const SignDecay& r, const step_args<T>& a) {
    const T lambda = static_cast<T>(r.lambda);
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      emit<S, L>(a, i, L::load(a.dx + i) + lambda * detail::jl_sign(L::load(a.x + i)));
    });
  }
};

template <class T>
class rule_state<ClipGrad, T> {
 public:
  rule_state(const ClipGrad&, const flat_layout&, const update_plan&) {}
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const ClipGrad& r, const step_args<T>& a) {
    const T delta = static_cast<T>(r.delta);
    for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
      using L = decltype(lane);
      using V = typename L::type;
      emit<S, L>(a, i, detail::jl_clamp(L::load(a.dx + i), V(-delta), V(delta)));
    });
  }
};

namespace detail {
/// p-norm partial results: one per piece of the plan (in parallel), then combined per leaf or
/// over all leaves. Buffers are sized at setup.
inline constexpr double k_inf = std::numeric_limits<double>::infinity();
inline constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

template <class T>
class norm_partials {
 public:
  explicit norm_partials(const update_plan& plan) : partial_(plan.pieces().size()) {}

  /// Fills the partial result of every piece for the p-norm of dx.
  template <class Arch>
  void compute(const update_plan& plan, const T* dx, double p) {
    plan.for_each_piece([&](std::size_t k, const update_plan::piece& pc) {
      partial_[k] = piece_partial<Arch>(dx + pc.lo, pc.hi - pc.lo, p);
    });
  }
  /// Combines partial results [first, last) into the norm.
  double norm(std::size_t first, std::size_t last, double p) const noexcept {
    if (first == last) return 0.0;  // an empty array has norm 0 (LinearAlgebra.norm)
    double acc = partial_[first];
    for (std::size_t k = first + 1; k < last; ++k) {
      const double v = partial_[k];
      if (p == k_inf)
        acc = (std::isnan(acc) || std::isnan(v)) ? k_nan : std::max(acc, v);
      else if (p == -k_inf)
        acc = (std::isnan(acc) || std::isnan(v)) ? k_nan : std::min(acc, v);
      else
        acc += v;
    }
    if (p == 2) return std::sqrt(acc);
    if (p == 1 || p == 0 || p == k_inf || p == -k_inf) return acc;
    return std::pow(acc, 1 / p);
  }

 private:
  /// Σ x² (Square) or Σ |x|: float partial sums over blocks of 256 elements, added in double.
  template <class Arch, bool Square>
  static double block_sum(const T* x, index_t n) noexcept {
    using B = xsimd::batch<T, Arch>;
    constexpr index_t W = static_cast<index_t>(B::size), block = 256;
    auto term = [](const auto& v) {
      if constexpr (Square)
        return v * v;
      else
        return vabs(v);
    };
    double total = 0;
    for (index_t lo = 0; lo < n; lo += block) {
      const index_t hi = std::min(n, lo + block);
      B acc0(T(0)), acc1(T(0));
      index_t i = lo;
      for (; i + 2 * W <= hi; i += 2 * W) {
        acc0 += term(B::load_unaligned(x + i));
        acc1 += term(B::load_unaligned(x + i + W));
      }
      T s = simd::reduce_add(acc0 + acc1);
      for (; i < hi; ++i) s += term(x[i]);
      total += static_cast<double>(s);
    }
    return total;
  }

  template <class Arch>
  static double piece_partial(const T* x, index_t n, double p) noexcept {
    if (p == 2) return block_sum<Arch, true>(x, n);
    if (p == 1) return block_sum<Arch, false>(x, n);
    double acc = p == k_inf ? 0.0 : (p == -k_inf ? k_inf : 0.0);
    for (index_t i = 0; i < n; ++i) {
      const double v = std::abs(static_cast<double>(x[i]));
      if (std::isnan(v)) return k_nan;
      if (p == k_inf)
        acc = std::max(acc, v);
      else if (p == -k_inf)
        acc = std::min(acc, v);
      else if (p == 0)
        acc += v != 0 ? 1.0 : 0.0;
      else
        acc += std::pow(v, p);
    }
    return acc;
  }

  std::vector<double> partial_;
};

/// Scales the pieces of dx by factor(leaf) into the sink.
template <sink S, class T, class Arch, class Factor>
void scale_pieces(const step_args<T>& a, Factor&& factor) {
  a.plan.for_each_piece([&](std::size_t, const update_plan::piece& pc) {
    const T c = factor(pc.leaf);
    auto f = [&](auto lane, index_t i) {
      using L = decltype(lane);
      emit<S, L>(a, i, c * L::load(a.dx + i));
    };
    lanes<T, Arch>(pc.lo, pc.hi, f);
  });
}
}  // namespace detail

template <class T>
class rule_state<ClipNorm, T> {
 public:
  rule_state(const ClipNorm&, const flat_layout& l, const update_plan& plan)
      : partials_(plan), factor_(l.entries().size()), first_piece_(l.entries().size() + 1) {
    // Pieces are in leaf order: leaf k owns pieces [first_piece_[k], first_piece_[k + 1]).
    std::size_t k = 0;
    for (std::size_t leaf = 0; leaf <= l.entries().size(); ++leaf) {
      while (k < plan.pieces().size() && plan.pieces()[k].leaf < leaf) ++k;
      first_piece_[leaf] = k;
    }
  }
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const ClipNorm& r, const step_args<T>& a) {
    partials_.template compute<Arch>(a.plan, a.dx, r.p);
    for (std::size_t leaf = 0; leaf < factor_.size(); ++leaf) {
      const double nrm = partials_.norm(first_piece_[leaf], first_piece_[leaf + 1], r.p);
      require<argument_error>(!r.throw_ || std::isfinite(nrm), "optim::ClipNorm: the gradient of ",
                              a.layout.entries()[leaf].name, " has ", r.p, "-norm ", nrm,
                              ", expected a finite norm (ClipNorm.throw_ = false clips anyway)");
      factor_[leaf] = static_cast<T>(std::min(r.omega / nrm, 1.0));
    }
    detail::scale_pieces<S, T, Arch>(a, [&](std::size_t leaf) { return factor_[leaf]; });
  }

 private:
  detail::norm_partials<T> partials_;
  std::vector<T> factor_;
  std::vector<std::size_t> first_piece_;
};

template <class T>
class rule_state<ClipGlobalNorm, T> {
 public:
  rule_state(const ClipGlobalNorm&, const flat_layout&, const update_plan& plan)
      : partials_(plan), pieces_(plan.pieces().size()) {}
  empty_tuple fields() noexcept { return {}; }
  template <sink S, class Arch>
  void apply(const ClipGlobalNorm& r, const step_args<T>& a) {
    partials_.template compute<Arch>(a.plan, a.dx, r.p);
    const double nrm = partials_.norm(0, pieces_, r.p);
    require<argument_error>(
        !r.throw_ || std::isfinite(nrm), "optim::ClipGlobalNorm: the gradient has ", r.p, "-norm ",
        nrm, ", expected a finite norm (ClipGlobalNorm.throw_ = false clips anyway)");
    const T c = static_cast<T>(std::min(r.omega / nrm, 1.0));
    detail::scale_pieces<S, T, Arch>(a, [c](std::size_t) { return c; });
  }

 private:
  detail::norm_partials<T> partials_;
  std::size_t pieces_;
};

}  // namespace optim
LUX_NAMESPACE_END
