// luxcpp — the machinery every optimisation rule shares (Optimisers.jl's setup / update! /
// adjust!, over flat parameter buffers).
//
//   auto state = lux::optim::setup(lux::optim::Adam{1e-3}, params);   // params: flat_buffer<T>
//   lux::optim::update(state, params, grads);                         // Optimisers.update!
//   lux::optim::adjust(state, 1e-4);                                  // Optimisers.adjust!(s, η)
//   lux::optim::adjust(state, lux::optim::hyper<"beta">, std::array{0.8, 0.99});
//
// Conventions (Optimisers.jl's): a rule turns the incoming gradient dx into a step dx′, and the
// update is x .-= dx′. A rule is a small aggregate of double hyperparameters (field names and
// defaults as Optimisers.jl: `Adam{.eta = 1e-3}`); its state — moment buffers with the layout of
// the parameters, and scalars such as βᵗ — is a `rule_state<Rule, T>` specialization, which is
// also the seam for a user's own rule. Arithmetic on elements happens in the buffer's T (float or
// double), as Optimisers.jl converts its hyperparameters to the element type; the per-step
// coefficients (1 - β, βᵗ, η/(1 - βᵗ), the RAdam rectification) are formed in double and rounded
// once to T (Optimisers.jl forms 1 - β in T, which for Float32(0.999) is off by 1.3e-5 relative).
//
// How a step runs: the leaves of the layout are cut into pieces of at most 32768 elements
// (`update_plan`, built once at setup) and every elementwise rule is one xsimd-vectorized pass
// over the pieces, split over OpenMP threads when there are at least 65536 parameters. Only leaf
// elements are touched, never the alignment gaps between leaves: parameters, moments and the chain
// workspace keep zero gaps whatever the gradient buffer holds there, and a rule whose formula
// would turn a zero gap into NaN (AdaMax with epsilon = 0) cannot poison anything.
// No step allocates: every buffer (moments, an OptimiserChain's workspace, ClipNorm's partial
// norms) is allocated by setup. `update`'s template parameter Arch (defaulted to the translation
// unit's xsimd architecture) keeps instantiations from units built with different -m flags
// distinct, as in the looped kernels. Measured (AMD EPYC, AVX2, one thread, g++ -O2, a shared
// machine): an Adam update of float parameters takes 0.71 ns/element at 1M elements (39 GB/s of
// the 28 bytes per element it moves; the buffers fit in L3, the sqrt and the division bound it)
// and 0.84 ns/element at 10M (33 GB/s, about 90 % of a bare xsimd loop with the same four reads
// and three writes, twice this machine's memcpy of the same bytes).
//
// A rule's state kernel is `template <sink S, class Arch> void apply(const Rule&, const
// step_args<T>&)`: with sink::subtract it does x[i] -= dx′[i] (the fused, single-rule case: an
// Adam step reads x, g, m, v and writes x, m, v once), with sink::store it writes dx′ to `out`
// (an OptimiserChain passing the transformed gradient to the next rule; `out` may equal `dx`).
//
// Checkpoints: `state.tree()` is a named_tuple with `step` (std::int64_t&, updates done), then
// the rule's fields — buffers as TensorView<T, 1> over the whole flat buffer (alignment gaps
// included) and scalars as double& / std::int64_t& — so writing through it restores the state.
// The names are listed with each rule (Adam: step, mt, vt, beta1_t, beta2_t; an OptimiserChain
// nests its rules' fields under rule_1 ... rule_N). Hyperparameters are not part of the tree: the
// program that resumes passes its rule to setup (and re-applies its schedule at state.step()).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/core/parallel.hpp"
#include "lux/core/simd.hpp"
#include "lux/training/flat.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// Where a rule's kernel puts the step dx′: subtracted from x, or stored for the next rule.
enum class sink { subtract, store };

/// The leaves of a layout cut into pieces for the elementwise passes (built once, at setup).
class update_plan {
 public:
  struct piece {
    index_t lo = 0;        ///< first buffer element
    index_t hi = 0;        ///< one past the last
    std::size_t leaf = 0;  ///< index in the layout's entries
  };
  /// Largest piece, in elements (a multiple of 64, so pieces of a leaf start 64-byte aligned).
  static constexpr index_t piece_elements = index_t{1} << 15;
  /// Fewer parameters than this run on the calling thread.
  static constexpr index_t parallel_threshold = index_t{1} << 16;

  update_plan() = default;
  explicit update_plan(const flat_layout& layout) : leaves_(layout.entries().size()) {
    for (std::size_t k = 0; k < layout.entries().size(); ++k) {
      const auto& e = layout.entries()[k];
      for (index_t lo = 0; lo < e.numel; lo += piece_elements)
        pieces_.push_back({e.offset + lo, e.offset + std::min(e.numel, lo + piece_elements), k});
      elements_ += e.numel;
    }
  }

  const std::vector<piece>& pieces() const noexcept { return pieces_; }
  index_t elements() const noexcept { return elements_; }
  std::size_t leaves() const noexcept { return leaves_; }

  /// Calls f(k, pieces()[k]) for every piece, over threads when the plan is large enough.
  /// `f` must not throw.
  template <class F>
  void for_each_piece(F&& f) const {
    parallel_for(
        static_cast<index_t>(pieces_.size()),
        [&](index_t k) { f(static_cast<std::size_t>(k), pieces_[static_cast<std::size_t>(k)]); },
        elements_, parallel_threshold);
  }

 private:
  std::vector<piece> pieces_;
  index_t elements_ = 0;
  std::size_t leaves_ = 0;
};

/// What a rule's kernel works on (see the header comment).
template <class T>
struct step_args {
  T* x;                       ///< parameters (read; updated in place with sink::subtract)
  const T* dx;                ///< the incoming gradient
  T* out;                     ///< where sink::store writes dx′ (may equal dx)
  const update_plan& plan;    ///< the leaf pieces
  const flat_layout& layout;  ///< names and shapes, for rules that work per array
};

namespace detail {
/// xsimd batch / scalar access with one interface, so a kernel body is written once.
template <class T, class Arch>
struct simd_lane {
  using type = xsimd::batch<T, Arch>;
  static constexpr index_t width = static_cast<index_t>(type::size);
  static type load(const T* p) noexcept { return type::load_unaligned(p); }
  static void store(T* p, const type& v) noexcept { v.store_unaligned(p); }
};
template <class T>
struct scalar_lane {
  using type = T;
  static constexpr index_t width = 1;
  static T load(const T* p) noexcept { return *p; }
  static void store(T* p, T v) noexcept { *p = v; }
};

// Math on scalars and batches alike: unqualified calls find std:: for scalars and xsimd:: (by
// ADL) for batches; branches are selects, so both paths decide the same way.
template <class T>
requires std::is_floating_point_v<T>
constexpr T select(bool c, T a, T b) noexcept { return c ? a : b; }
template <class C, class V>
V ifelse(const C& c, const V& a, const V& b) noexcept {
  return select(c, a, b);
}
template <class V>
V vsqrt(const V& x) noexcept {
  using std::sqrt;
  return sqrt(x);
}
template <class V>
V vabs(const V& x) noexcept {
  using std::abs;
  return abs(x);
}
/// max(a, b) as a < b ? b : a.
template <class V>
V vmax(const V& a, const V& b) noexcept {
  return ifelse(a < b, b, a);
}
/// Julia's sign: -1, 0 (keeping -0.0) or 1, NaN for NaN.
template <class V>
V jl_sign(const V& x) noexcept {
  return ifelse(x > V(0), V(1), ifelse(x < V(0), V(-1), x));
}
/// Sets the leaf elements of `b` to `v` (Optimisers.jl's onevalue), leaving the gaps zero.
template <class T>
void fill_leaves(flat_buffer<T>& b, T v) {
  for (const auto& e : b.layout().entries()) std::fill_n(b.data() + e.offset, e.numel, v);
}
/// Calls f(simd_lane, i) over [lo, hi) in steps of the batch width, then f(scalar_lane, i).
template <class T, class Arch, class F>
void lanes(index_t lo, index_t hi, F& f) {
  using B = simd_lane<T, Arch>;
  index_t i = lo;
  for (; i + B::width <= hi; i += B::width) f(B{}, i);
  for (; i < hi; ++i) f(scalar_lane<T>{}, i);
}
/// Julia's clamp(x, lo, hi): x > hi ? hi : x < lo ? lo : x (NaN propagates).
template <class V>
V jl_clamp(const V& x, const V& lo, const V& hi) noexcept {
  return ifelse(x > hi, hi, ifelse(x < lo, lo, x));
}
}  // namespace detail

/// Calls f(lane, i) for every leaf element i: `lane` is a type tag with `type` (an xsimd batch
/// of T, or T for the tails), `load(p)` and `store(p, v)`; f reads and writes [i, i + width).
template <class T, class Arch, class F>
void for_each_element(const update_plan& plan, F&& f) {
  plan.for_each_piece(
      [&](std::size_t, const update_plan::piece& p) { detail::lanes<T, Arch>(p.lo, p.hi, f); });
}

/// Delivers a step: x[i] -= d (sink::subtract) or out[i] = d (sink::store).
template <sink S, class Lane, class T, class V>
void emit(const step_args<T>& a, index_t i, const V& d) noexcept {
  if constexpr (S == sink::subtract)
    Lane::store(a.x + i, Lane::load(a.x + i) - d);
  else
    Lane::store(a.out + i, d);
}

/// Names a hyperparameter for adjust: `adjust(state, hyper<"beta">, std::array{0.8, 0.99})`.
template <field_name Name>
struct hyper_t {
  static constexpr auto name = Name;
};
template <field_name Name>
inline constexpr hyper_t<Name> hyper{};

/// A named_tuple of references (rules list their hyperparameters, states their fields, with it).
template <field_name... Names, class... V>
constexpr auto named_refs(V&... v) noexcept {
  return named_tuple<named_field<Names, V&>...>(std::tuple<V&...>(v...));
}

/// A rule's state; every rule specializes it (a user's rule too). The primary template is never
/// defined.
template <class Rule, class T>
class rule_state {
  static_assert(sizeof(Rule) == 0,
                "lux::optim: no rule_state<Rule, T> for this type; setup takes an optimisation "
                "rule (Descent, Adam, OptimiserChain, ...) or a user type that specializes "
                "lux::optim::rule_state");
};

template <class... Rules>
struct OptimiserChain;

namespace detail {
template <class R>
struct is_chain : std::false_type {};
template <class... R>
struct is_chain<OptimiserChain<R...>> : std::true_type {};

template <class Rule>
using hypers_of = decltype(Rule::hypers(std::declval<Rule&>()));

/// A rule that wraps another one (lux::distributed::DistributedOptimizer): it has the wrapped
/// rule's hyperparameters, in its member `opt`.
template <class R>
concept wrapping_rule = requires(R& r) {
  typename R::wrapped_rule;
  r.opt;
};

/// Whether Rule (or any rule of a chain) has hyperparameter N.
template <class Rule, field_name N>
consteval bool has_hyper() {
  if constexpr (wrapping_rule<Rule>) {
    return has_hyper<typename Rule::wrapped_rule, N>();
  } else if constexpr (is_chain<Rule>::value) {
    return []<std::size_t... I>(std::index_sequence<I...>) {
      return (has_hyper<std::tuple_element_t<I, decltype(Rule::opts)>, N>() || ...);
    }
    (std::make_index_sequence<std::tuple_size_v<decltype(Rule::opts)>>{});
  } else {
    return hypers_of<Rule>::template has<N>;
  }
}

/// Sets hyperparameter N of Rule (of every rule of a chain that has it).
template <field_name N, class Rule, class V>
void set_hyper(Rule& r, const V& value) {
  if constexpr (wrapping_rule<Rule>) {
    set_hyper<N>(r.opt, value);
  } else if constexpr (is_chain<Rule>::value) {
    std::apply([&](auto&... o) { (set_hyper<N>(o, value), ...); }, r.opts);
  } else if constexpr (hypers_of<Rule>::template has<N>) {
    auto h = Rule::hypers(r);
    h.template get<N>() = value;
  }
}

inline bool name_in(std::string_view n, std::initializer_list<std::string_view> names) {
  for (auto s : names)
    if (n == s) return true;
  return false;
}

/// Checks every hyperparameter of a rule against its domain (by name): learning rates,
/// epsilons, penalties and thresholds finite and >= 0; rho in [0, 1]; each beta in [0, 1).
template <class Rule>
void validate(const Rule& r, const char* op) {
  if constexpr (wrapping_rule<Rule>) {
    validate(r.opt, op);
  } else if constexpr (is_chain<Rule>::value) {
    std::apply([&](const auto&... o) { (validate(o, op), ...); }, r.opts);
  } else {
    const auto h = Rule::hypers(r);
    using H = std::remove_cvref_t<decltype(h)>;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (
          [&] {
            const std::string_view n = H::names[I];
            const auto& v = h.template at<I>();
            using V = std::remove_cvref_t<decltype(v)>;
            if constexpr (std::is_same_v<V, double>) {
              if (n == "p") {
                require<argument_error>(!std::isnan(v), op, ": ", Rule::name, ".p is NaN");
              } else if (n == "rho") {
                require<argument_error>(v >= 0 && v <= 1, op, ": ", Rule::name, ".rho = ", v,
                                        ", expected 0 <= rho <= 1");
              } else if (name_in(n, {"eta", "epsilon", "lambda", "delta", "omega"})) {
                require<argument_error>(std::isfinite(v) && v >= 0, op, ": ", Rule::name, ".", n,
                                        " = ", v, ", expected a finite value >= 0");
              }
            } else if constexpr (std::is_same_v<V, std::array<double, 2>>) {
              require<argument_error>(v[0] >= 0 && v[0] < 1 && v[1] >= 0 && v[1] < 1, op, ": ",
                                      Rule::name, ".", n, " = (", v[0], ", ", v[1],
                                      "), expected each in [0, 1)");
            }
          }(),
          ...);
    }
    (std::make_index_sequence<H::size>{});
  }
}

// state.tree(): flat_buffer<T>& leaves become TensorView<T, 1>, scalar references stay.
template <class T, class Field>
struct tree_leaf {
  using type = Field;  // a scalar reference
  static Field make(Field f) noexcept { return f; }
};
template <class T>
struct tree_leaf<T, flat_buffer<T>&> {
  using type = TensorView<T, 1>;
  static type make(flat_buffer<T>& b) noexcept { return b.view(); }
};
template <class T, class... F>
struct tree_leaf<T, named_tuple<F...>> {
  using type = named_tuple<named_field<F::name, typename tree_leaf<T, typename F::type>::type>...>;
  static type make(named_tuple<F...>& t) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return type(
          typename type::values_type(tree_leaf<T, typename F::type>::make(t.template at<I>())...));
    }
    (std::index_sequence_for<F...>{});
  }
};

template <field_name N, class V, class... F>
auto prepend_field(V& v, named_tuple<F...> t) {
  using R = named_tuple<named_field<N, V&>, F...>;
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return R(std::in_place, v, std::forward<typename F::type>(t.template at<I>())...);
  }
  (std::index_sequence_for<F...>{});
}
}  // namespace detail

/// The state of an optimiser over one flat parameter buffer: the rule, its buffers and
/// scalars, the step count, and the plan of the elementwise passes. Made by `setup`.
template <class Rule, class T>
class optimiser_state {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "lux::optim: parameters must be float or double");

 public:
  using rule_type = Rule;
  using value_type = T;

  optimiser_state(const Rule& rule, const flat_layout& layout)
      : rule_(rule), layout_(layout), plan_(layout_), state_(rule_, layout_, plan_) {}

  /// The rule with its current hyperparameters.
  const Rule& rule() const noexcept { return rule_; }
  /// Updates done so far (the index of the next one, for a schedule).
  std::int64_t step() const noexcept { return step_; }
  const flat_layout& layout() const noexcept { return layout_; }
  const update_plan& plan() const noexcept { return plan_; }

  /// The state as a named_tuple: `step`, then the rule's fields (see the header comment).
  auto tree() { return detail::prepend_field<"step">(step_, tree_of_fields()); }
  /// Calls f(name, flat_buffer<T>&) for every state buffer, in tree order ("mt", "rule_2.vt").
  template <class F>
  void for_each_tensor(F&& f) {
    for_each_leaf(state_.fields(), [&](std::string_view path, auto& leaf) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(leaf)>, flat_buffer<T>>)
        f(path, leaf);
    });
  }

  /// Sets hyperparameter N of every rule that has it (Optimisers.adjust!(state; N = value)).
  template <field_name N, class V>
  void adjust(hyper_t<N>, const V& value) {
    static_assert(detail::has_hyper<Rule, N>(),
                  "lux::optim::adjust: no rule of this optimiser has a hyperparameter of this "
                  "name (Optimisers.jl ignores unknown names; here a misspelling is an error)");
    static_assert(N.view() != std::string_view("centred"),
                  "lux::optim::adjust: RMSProp's centred cannot be adjusted (the variants keep "
                  "different states), as in Optimisers.jl");
    Rule r = rule_;
    detail::set_hyper<N>(r, value);
    detail::validate(r, "optim::adjust");
    rule_ = r;
  }

  /// One update (see lux::optim::update).
  template <class Arch = xsimd::default_arch>
  void update(flat_buffer<T>& params, const flat_buffer<T>& grads) {
    check_layout(params.layout(), "params have", "the layout the state was set up with");
    check_layout(grads.layout(), "grads have", "the layout of params");
    state_.template apply<sink::subtract, Arch>(
        rule_, step_args<T>{params.data(), grads.data(), params.data(), plan_, layout_});
    ++step_;
  }

 private:
  auto tree_of_fields() {
    auto f = state_.fields();
    return detail::tree_leaf<T, decltype(f)>::make(f);
  }
  void check_layout(const flat_layout& l, const char* what, const char* expected) const {
    require<shape_error>(l == layout_, "optim::update: ", what, " a layout of ", l.size(),
                         " elements in ", l.entries().size(), " leaves, expected ", expected, " (",
                         layout_.size(), " elements in ", layout_.entries().size(), " leaves)");
  }

  Rule rule_;
  flat_layout layout_;
  update_plan plan_;
  rule_state<Rule, T> state_;
  std::int64_t step_ = 0;
};

/// Optimisers.setup: the state of `rule` for parameters with the layout of `params` (moment
/// buffers zero or as the rule initializes them, βᵗ = β, step 0). Throws argument_error for a
/// hyperparameter outside its domain.
template <class Rule, class T>
optimiser_state<Rule, T> setup(const Rule& rule, const flat_buffer<T>& params) {
  detail::validate(rule, "optim::setup");
  return optimiser_state<Rule, T>(rule, params.layout());
}
template <class Rule, class Tree>
auto setup(const Rule& rule, const flat_tree<Tree>& params) {
  return setup(rule, params.buffer());
}

/// Optimisers.update!: x .-= dx′ where dx′ is the rule's step from `grads` (same layout as
/// `params`, else shape_error). `grads` is not modified; nothing is allocated.
template <class Arch = xsimd::default_arch, class Rule, class T>
void update(optimiser_state<Rule, T>& state, flat_buffer<T>& params, const flat_buffer<T>& grads) {
  state.template update<Arch>(params, grads);
}
template <class Arch = xsimd::default_arch, class Rule, class T, class Tree, class GradTree>
void update(optimiser_state<Rule, T>& state, flat_tree<Tree>& params,
            const flat_tree<GradTree>& grads) {
  state.template update<Arch>(params.buffer(), grads.buffer());
}

/// Optimisers.adjust!(state, η): sets the learning rate `eta` of every rule that has one.
template <class Rule, class T>
void adjust(optimiser_state<Rule, T>& state, double eta) {
  state.adjust(hyper<"eta">, eta);
}
/// Optimisers.adjust!(state; name = value) for any hyperparameter.
template <field_name N, class Rule, class T, class V>
void adjust(optimiser_state<Rule, T>& state, hyper_t<N> name, const V& value) {
  state.adjust(name, value);
}

}  // namespace optim
LUX_NAMESPACE_END
