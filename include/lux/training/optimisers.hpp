// luxcpp — optimisers: Optimisers.jl's rules over flat parameter buffers, in lux::optim.
//
//   lux::flat_tree params(ps);                               // every parameter in one buffer
//   lux::flat_tree grads = params.zeros_like();
//   auto opt = lux::optim::setup(lux::optim::OptimiserChain{lux::optim::ClipNorm{1.0},
//                                                           lux::optim::AdamW{1e-3}}, params);
//   ... grads.zero(); grads.accumulate(dps);
//   lux::optim::update(opt, params, grads);                  // Optimisers.update!
//   lux::optim::adjust(opt, 1e-4);                           // Optimisers.adjust!
//   lux::save("opt.safetensors", opt.tree());                // step, rule_2.mt, rule_2.vt, ...
//
// Rules (names, fields and defaults as Optimisers.jl 0.4):
//   optim/rules.hpp     Descent, Momentum, Nesterov, RMSProp, AdaGrad, AdaDelta, Lion
//   optim/adam.hpp      Adam, AdamW, RAdam, NAdam, AMSGrad, AdaMax
//   optim/gradient.hpp  WeightDecay, SignDecay, ClipGrad, ClipNorm, ClipGlobalNorm
//   optim/composite.hpp OptimiserChain
//   optim/schedules.hpp step_decay, exponential, cosine_annealing
//   optim/state.hpp     setup, update, adjust, hyper<"name">, optimiser_state, rule_state (the
//                       seam for a user's own rule)
#pragma once

#include "lux/training/optim/adam.hpp"
#include "lux/training/optim/composite.hpp"
#include "lux/training/optim/gradient.hpp"
#include "lux/training/optim/rules.hpp"
#include "lux/training/optim/schedules.hpp"
#include "lux/training/optim/state.hpp"
