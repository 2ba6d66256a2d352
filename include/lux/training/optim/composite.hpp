// luxcpp — OptimiserChain: Optimisers.jl's composition of rules.
//
//   OptimiserChain{ClipNorm{1.0}, WeightDecay{1e-4}, Adam{1e-3}}
//
// Each rule transforms the gradient in turn and the last one's step is subtracted from x (so
// `OptimiserChain{}` is Descent(1)). The chain is variadic and typed at compile time; its state
// holds every rule's state and, for two rules or more, one workspace buffer (allocated at setup)
// through which the transformed gradient passes: the first rule reads the gradient and writes the
// workspace, the middle ones transform it in place, the last one updates x — so the gradient
// buffer is never modified. State tree: each rule's fields under rule_1 ... rule_N. adjust acts on
// every rule of the chain that has the hyperparameter (Optimisers.adjust on an OptimiserChain).
#pragma once

#include <cstddef>
#include <string_view>
#include <tuple>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optim/state.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// OptimiserChain(opts...): the rules applied in order (Optimisers.jl's field `opts`).
template <class... Rules>
struct OptimiserChain {
  static constexpr std::string_view name = "OptimiserChain";
  std::tuple<Rules...> opts;
  constexpr OptimiserChain(Rules... rules)  // NOLINT: implicit, as Optimisers.jl's constructor
      : opts(std::move(rules)...) {}
};
template <class... Rules>
OptimiserChain(Rules...) -> OptimiserChain<Rules...>;

namespace detail {
/// `rule_<i>` (1-based) as a field_name: the state-tree name of a chain's i-th rule.
template <std::size_t I>
consteval auto rule_name() {
  static_assert(I >= 1 && I < 1000, "lux::optim::OptimiserChain: too many rules");
  constexpr std::size_t digits = I < 10 ? 1 : (I < 100 ? 2 : 3);
  field_name<6 + digits> n;  // "rule_" + digits + '\0'
  const char prefix[] = "rule_";
  for (std::size_t k = 0; k < 5; ++k) n.chars[k] = prefix[k];
  std::size_t v = I;
  for (std::size_t k = 0; k < digits; ++k) {
    n.chars[5 + digits - 1 - k] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  n.chars[5 + digits] = '\0';
  return n;
}
}  // namespace detail

template <class T, class... Rules>
class rule_state<OptimiserChain<Rules...>, T> {
  using chain = OptimiserChain<Rules...>;
  static constexpr std::size_t n = sizeof...(Rules);

 public:
  rule_state(const chain& c, const flat_layout& l, const update_plan& plan)
      : states_(make_states(c, l, plan, std::index_sequence_for<Rules...>{})),
        work_(n >= 2 ? l : flat_layout{}) {}

  auto fields() noexcept {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      using R = named_tuple<
          named_field<detail::rule_name<I + 1>(), decltype(std::get<I>(states_).fields())>...>;
      return R(typename R::values_type(std::get<I>(states_).fields()...));
    }
    (std::index_sequence_for<Rules...>{});
  }

  template <sink S, class Arch>
  void apply(const chain& c, const step_args<T>& a) {
    if constexpr (n == 0) {
      for_each_element<T, Arch>(a.plan, [&](auto lane, index_t i) {
        using L = decltype(lane);
        emit<S, L>(a, i, L::load(a.dx + i));
      });
    } else if constexpr (n == 1) {
      std::get<0>(states_).template apply<S, Arch>(std::get<0>(c.opts), a);
    } else {
      [&]<std::size_t... I>(std::index_sequence<I...>) { (apply_one<I, S, Arch>(c, a), ...); }
      (std::index_sequence_for<Rules...>{});
    }
  }

 private:
  template <std::size_t... I>
  static std::tuple<rule_state<Rules, T>...> make_states(const chain& c, const flat_layout& l,
                                                         const update_plan& plan,
                                                         std::index_sequence<I...>) {
    return std::tuple<rule_state<Rules, T>...>(
        rule_state<Rules, T>(std::get<I>(c.opts), l, plan)...);
  }
  /// Rule I reads the gradient (I = 0) or the workspace, and writes the workspace or, for the
  /// last rule, the chain's own sink.
  template <std::size_t I, sink S, class Arch>
  void apply_one(const chain& c, const step_args<T>& a) {
    constexpr bool last = I + 1 == n;
    T* w = work_.data();
    const step_args<T> s{a.x, I == 0 ? a.dx : w, last ? a.out : w, a.plan, a.layout};
    std::get<I>(states_).template apply<last ? S : sink::store, Arch>(std::get<I>(c.opts), s);
  }

  std::tuple<rule_state<Rules, T>...> states_;
  flat_buffer<T> work_;
};

}  // namespace optim
LUX_NAMESPACE_END
