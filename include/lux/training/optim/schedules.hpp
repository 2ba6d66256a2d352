// luxcpp — learning-rate schedules (a tiny ParameterSchedulers.jl): step_decay, exponential,
// cosine_annealing. Each is an aggregate with `double operator()(std::int64_t step) const`,
// `step` counting updates from 0.
//
// A schedule is applied by adjusting the state before each update — update stays pure:
//   auto state = lux::optim::setup(lux::optim::Adam{}, params);
//   const lux::optim::cosine_annealing sched{.eta_min = 1e-5, .eta_max = 1e-3, .period = 10000,
//                                            .warmup_steps = 500};
//   for (...) {
//     lux::optim::adjust(state, sched(state.step()));   // η for this update
//     lux::optim::update(state, params, grads);
//   }
// state.step() is part of the state tree, so a resumed run continues the schedule where it
// stopped. (ParameterSchedulers.jl counts from 1: its s(t + 1) is s(t) here, as PyTorch's
// lr_scheduler epochs count from 0.)
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"

LUX_NAMESPACE_BEGIN
namespace optim {

/// eta0 · decay^⌊step / step_size⌋ (ParameterSchedulers.Step, PyTorch's StepLR).
struct step_decay {
  double eta0 = 0.1;
  double decay = 0.5;
  std::int64_t step_size = 1;
  double operator()(std::int64_t step) const {
    require<argument_error>(step >= 0 && step_size > 0, "optim::step_decay: step = ", step,
                            ", step_size = ", step_size, ", expected step >= 0, step_size > 0");
    return eta0 * std::pow(decay, static_cast<double>(step / step_size));
  }
};

/// eta0 · gamma^step (ParameterSchedulers.Exp, PyTorch's ExponentialLR).
struct exponential {
  double eta0 = 0.1;
  double gamma = 0.99;
  double operator()(std::int64_t step) const {
    require<argument_error>(step >= 0, "optim::exponential: step = ", step, ", expected >= 0");
    return eta0 * std::pow(gamma, static_cast<double>(step));
  }
};

/// Linear warm-up, then half a cosine from eta_max down to eta_min over `period` steps:
///   step < warmup_steps:  eta_max · (step + 1) / warmup_steps  (reaches eta_max at its end);
///   else, t = step - warmup_steps (t mod period with `restart`, SGDR / ParameterSchedulers'
///   CosAnneal(restart = true); without it η stays at eta_min once t >= period):
///   eta_min + (eta_max - eta_min) (1 + cos(π t / period)) / 2   (PyTorch's CosineAnnealingLR
///   for t <= period).
struct cosine_annealing {
  double eta_min = 0.0;
  double eta_max = 0.1;
  std::int64_t period = 100;
  std::int64_t warmup_steps = 0;
  bool restart = false;
  double operator()(std::int64_t step) const {
    require<argument_error>(step >= 0 && period > 0 && warmup_steps >= 0,
                            "optim::cosine_annealing: step = ", step, ", period = ", period,
                            ", warmup_steps = ", warmup_steps,
                            ", expected step >= 0, period > 0, warmup_steps >= 0");
    if (step < warmup_steps)
      return eta_max * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    std::int64_t t = step - warmup_steps;
    if (restart)
      t %= period;
    else if (t >= period)
      return eta_min;
    const double c =
        std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(period));
    return eta_min + (eta_max - eta_min) * (1 + c) / 2;
  }
};

}  // namespace optim
LUX_NAMESPACE_END
