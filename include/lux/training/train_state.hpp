// luxcpp — Lux.Training: TrainState, compute_gradients, apply_gradients, single_train_step.
//
//   auto [ps, st] = lux::setup<float>(rng, model);
//   lux::TrainState ts(model, ps, st, lux::optim::Adam{.eta = 1e-3});
//   const lux::CrossEntropyLoss loss{.logits = true};
//   for (auto& [x, y] : loader) {
//     auto [grads, l, stats, ts2] = lux::single_train_step(loss, std::pair{x, y}, ts);
//   }
//   lux::save("model.safetensors", lux::named("params", ts.params()), lux::named("states",
//   ts.states));
//
// As in Lux (Lux.Training.TrainState), the train state holds the model, the parameters, the
// states, the optimiser rule and its state, and the step count. Differences, and why:
//   * The parameters live flat (lux/training/flat.hpp): `ts.params()` is the named tree of views
//     over one buffer, so the optimiser update is one pass and an all-reduce one call. The
//     gradients of compute_gradients are accumulated into a second flat buffer of the same
//     layout, held by the train state and returned by reference (Lux also lets grads alias).
//   * Everything is updated in place and the results refer to `ts`: `ts2` *is* `ts`. A step
//     allocates no tensor storage after the first: the forward activations, the pullback's saved
//     values and the gradients come from the host tensor cache (lux/core/memory_pool.hpp) and go
//     back to it when the step ends; the flat buffers and the optimiser state are allocated once.
//
// The objective has Lux's role — `f(model, ps, st, batch) -> (loss, st', stats)` — and since
// luxcpp differentiates by hand-written pullbacks rather than by AD, it comes in two forms:
//   * a loss (lux/training/losses.hpp) or any object with `value_and_gradient(ŷ, y)` returning
//     `{loss, grad}`: batch = (x, y); the model runs under lux::pullback, the loss gives ∂L/∂ŷ,
//     and the model's back gives the parameter gradients; stats is lux::empty_tuple;
//   * a custom objective with `pullback(model, ps, st, batch)` returning `{loss, st, stats,
//     back}` whose `back()` returns the parameter gradients (ps's structure).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/layers/layer.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optimisers.hpp"

LUX_NAMESPACE_BEGIN

/// Lux.Training.TrainState.
template <class Model, class PS, class ST, class Rule>
class TrainState {
 public:
  using model_type = Model;
  using flat_type = flat_tree<PS>;
  using value_type = typename flat_type::T;
  using opt_state_type =
      decltype(optim::setup(std::declval<const Rule&>(), std::declval<flat_buffer<value_type>&>()));

  TrainState(Model m, const PS& ps, ST st, Rule rule)
      : model(std::move(m)),
        states(std::move(st)),
        parameters_(ps),
        gradients_(parameters_.zeros_like()),
        opt_state_(optim::setup(rule, parameters_.buffer())) {}

  Model model;  ///< the layer (hyperparameters only)
  ST states;    ///< the model's states, replaced by each step's st'

  /// The parameter tree (views over the flat buffer): pass it wherever Lux passes ps.
  auto& params() noexcept { return parameters_.tree(); }
  const auto& params() const noexcept { return parameters_.tree(); }
  flat_type& flat_parameters() noexcept { return parameters_; }
  const flat_type& flat_parameters() const noexcept { return parameters_; }
  /// The gradient tree of the last compute_gradients (views over the gradient buffer).
  auto& grads() noexcept { return gradients_.tree(); }
  flat_type& flat_gradients() noexcept { return gradients_; }
  const flat_type& flat_gradients() const noexcept { return gradients_; }
  opt_state_type& optimizer_state() noexcept { return opt_state_; }
  const opt_state_type& optimizer_state() const noexcept { return opt_state_; }
  /// Optimiser steps taken (Lux's `step`).
  std::int64_t step = 0;
  /// Optional learning-rate schedule: when set, apply_gradients sets the rate to schedule(step)
  /// before each update (step counts from 0).
  std::function<double(std::int64_t)> schedule;

 private:
  flat_type parameters_;
  flat_type gradients_;
  opt_state_type opt_state_;
};

template <class Model, class PS, class ST, class Rule>
TrainState(Model, PS, ST, Rule) -> TrainState<Model, PS, ST, Rule>;

/// What compute_gradients and single_train_step return: Lux's `(grads, loss, stats, ts)`.
/// `grads` and `ts` refer to the train state.
template <class Grads, class T, class Stats, class TS>
struct train_step_result {
  const Grads& grads;
  T loss;
  Stats stats;
  TS& ts;
};

namespace detail::training {
template <class B>
decltype(auto) batch_input(const B& b) {
  return std::get<0>(b);
}
template <class B>
decltype(auto) batch_target(const B& b) {
  return std::get<1>(b);
}
template <class Obj, class Model, class PS, class ST, class Batch>
concept custom_objective = requires(const Obj& f, const Model& m, const PS& ps, const ST& st,
                                    const Batch& b) {
  f.pullback(m, ps, st, b);
};
}  // namespace detail::training

/// Lux.Training.compute_gradients: the loss, the parameter gradients (into the train state's
/// gradient buffer, zeroed first) and the new states (into ts.states).
template <class Objective, class Batch, class Model, class PS, class ST, class Rule>
auto compute_gradients(const Objective& objective, const Batch& batch,
                       TrainState<Model, PS, ST, Rule>& ts) {
  using TS = TrainState<Model, PS, ST, Rule>;
  using V = typename TS::value_type;
  auto& grads = ts.flat_gradients();
  grads.zero();
  if constexpr (detail::training::custom_objective<
                    Objective, Model, std::remove_cvref_t<decltype(ts.params())>, ST, Batch>) {
    auto r = objective.pullback(ts.model, ts.params(), ts.states, batch);
    grads.accumulate(r.back());
    ts.states = std::move(r.st);
    return train_step_result<std::remove_cvref_t<decltype(grads.tree())>, V,
                             std::remove_cvref_t<decltype(r.stats)>, TS>{
        grads.tree(), static_cast<V>(r.loss), std::move(r.stats), ts};
  } else {
    static_assert(
        requires(const Batch& b) {
          std::get<0>(b);
          std::get<1>(b);
        },
        "lux::compute_gradients: with a loss as the objective, the batch is (x, y): a std::pair "
        "or std::tuple of the input and the target");
    const auto& x = detail::training::batch_input(batch);
    const auto& y = detail::training::batch_target(batch);
    auto pb = lux::pullback(ts.model, x, ts.params(), ts.states);
    static_assert(
        requires { objective.value_and_gradient(pb.y, y); },
        "lux::compute_gradients: the objective must be a loss (value_and_gradient(yhat, y)) or "
        "have pullback(model, ps, st, batch) returning {loss, st, stats, back}");
    auto lg = objective.value_and_gradient(pb.y, y);
    auto g = pb.back(lg.grad);
    grads.accumulate(g.dps);
    ts.states = std::move(pb.st);
    return train_step_result<std::remove_cvref_t<decltype(grads.tree())>, V, empty_tuple, TS>{
        grads.tree(), static_cast<V>(lg.loss), empty_tuple{}, ts};
  }
}

/// Lux.Training.apply_gradients: one optimiser update of ts's parameters with ts's gradient
/// buffer (or `grads`, a flat_tree of the same layout), then step += 1.
template <class Model, class PS, class ST, class Rule>
TrainState<Model, PS, ST, Rule>& apply_gradients(TrainState<Model, PS, ST, Rule>& ts) {
  if (ts.schedule) optim::adjust(ts.optimizer_state(), ts.schedule(ts.step));
  optim::update(ts.optimizer_state(), ts.flat_parameters().buffer(), ts.flat_gradients().buffer());
  ++ts.step;
  return ts;
}
template <class Model, class PS, class ST, class Rule>
TrainState<Model, PS, ST, Rule>& apply_gradients(TrainState<Model, PS, ST, Rule>& ts,
                                                 const flat_tree<PS>& grads) {
  require<shape_error>(grads.layout() == ts.flat_parameters().layout(),
                       "apply_gradients: the gradients' layout (", grads.layout().size(),
                       " elements) differs from the parameters' (",
                       ts.flat_parameters().layout().size(), ")");
  if (ts.schedule) optim::adjust(ts.optimizer_state(), ts.schedule(ts.step));
  optim::update(ts.optimizer_state(), ts.flat_parameters().buffer(), grads.buffer());
  ++ts.step;
  return ts;
}

/// Lux.Training.single_train_step: compute_gradients then apply_gradients. A non-finite loss
/// is an argument_error before the parameters are touched (a diverged run stops loudly).
template <class Objective, class Batch, class Model, class PS, class ST, class Rule>
auto single_train_step(const Objective& objective, const Batch& batch,
                       TrainState<Model, PS, ST, Rule>& ts) {
  auto r = compute_gradients(objective, batch, ts);
  require<argument_error>(std::isfinite(static_cast<double>(r.loss)),
                          "single_train_step: the loss is ", r.loss, " at step ", ts.step);
  apply_gradients(ts);
  return r;
}

LUX_NAMESPACE_END
