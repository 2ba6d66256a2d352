// luxcpp — Lux's loss functions (Lux 1.31, "Loss Functions": src/helpers/losses.jl), with their
// gradients with respect to the prediction.
//
//   loss                     options (Lux's keywords and defaults)
//   losses/elementwise.hpp
//     MSELoss / L2Loss         —
//     MAELoss / L1Loss         —
//     MSLELoss                 epsilon = eps(T)
//     HuberLoss                delta = 1
//     HingeLoss                —
//     SquaredHingeLoss         —
//     PoissonLoss              epsilon = eps(T)
//     SiameseContrastiveLoss   margin = 1 (>= 0)
//     BinaryCrossEntropyLoss   logits = false, label_smoothing = 0, epsilon
//     BinaryFocalLoss          gamma = 2, epsilon
//     GenericLossFunction      f[, df]
//   losses/classification.hpp
//     CrossEntropyLoss         logits = false, label_smoothing = 0, dims = 0, epsilon
//     FocalLoss                gamma = 2, dims = 0, epsilon
//     KLDivergenceLoss         dims = 0, epsilon, label_smoothing = 0
//   losses/overlap.hpp
//     DiceCoeffLoss            smooth = 1
//     TverskyLoss              beta = 0.7, smooth = 1 (Flux's tversky_loss; not in Lux 1.31)
// The formulas are written beside each type. `dims` is 0-based (0 = Lux's dims = 1, the class
// dimension of a (C, B) array); epsilon = std::nullopt is Lux's `nothing`, i.e. eps(T).
//
// Construction. A loss is a small value type: its options are public fields, its aggregation the
// member `agg` (a template parameter, default lux::agg::mean):
//   lux::MSELoss{}                              lux::MSELoss(lux::agg::sum)
//   lux::CrossEntropyLoss({.logits = true, .label_smoothing = 0.1})
//   lux::CrossEntropyLoss({.logits = true}, lux::agg::none)
//   lux::GenericLossFunction([](auto yh, auto y) { using std::abs; return abs(yh - y); })
// Options are validated when the loss is evaluated (label_smoothing outside [0, 1], a negative
// margin, dims out of range: argument_error).
//
// Aggregation (`agg`), as Lux's:
//   lux::agg::mean   the sum of the unaggregated losses over their count (default)
//   lux::agg::sum    their sum
//   lux::agg::none   no aggregation: loss(yhat, y) is the tensor of unaggregated losses
//   lux::agg::custom(f, backward), or any type with `using is_lux_aggregation = void;`,
//                    operator()(l) → T and backward(l, d) → Tensor like l
//                    (lux/training/losses/core.hpp)
// The unaggregated losses have yhat's shape for the elementwise losses, size 1 along `dims` for
// the class losses (one per sample), and size 1 in every dimension but the last for Dice and
// Tversky (one per sample; the whole array for a vector).
//
// Calling forms (every loss):
//   T l = loss(yhat, y);                              (a Tensor for agg::none)
//   auto [l, grad] = loss.value_and_gradient(yhat, y);        grad = ∂l/∂yhat, yhat's shape
//   auto [l, grad] = loss.value_and_gradient(yhat, y, dl);    dl: a number, or for agg::none
//                                                             a tensor shaped like the loss
//   auto [l, st2, stats] = loss(model, ps, st, std::pair{x, y});   Lux's objective form:
//        runs lux::apply(model, x, ps, st); returns lux::objective_result{loss, st', empty_tuple}
// yhat: a contiguous cpu Tensor / TensorView of float or double (the loss is computed and
// returned in that type T; sums accumulate in double for float). y: an array of yhat's shape
// with any arithmetic element type (converted to T), or class indices for CrossEntropyLoss and
// FocalLoss (lux/training/losses/classification.hpp). Gradients are with respect to yhat only
// (as Lux's: targets get none). A y of another shape: shape_error; a class index out of range:
// argument_error naming the loss, the position and the value.
//
// Where this differs from Lux 1.31 (all noted at the types): HingeLoss and SquaredHingeLoss use
// the derivatives of the functions Lux evaluates (Lux's custom derivatives drop a factor y);
// CrossEntropyLoss's label smoothing divides by the size along `dims`; zero-target terms of the
// logits cross entropy are 0 rather than NaN at -inf logits.
//
// Accuracy (tests/training/test_losses.cpp): every gradient agrees with central finite
// differences in double to ≤ 2e-7 relative (the finite differences' own error). Against PyTorch
// 1.13 (F.cross_entropy with class indices, label_smoothing and probability targets,
// F.binary_cross_entropy(_with_logits), F.mse_loss, F.l1_loss, F.huber_loss, hinge formulas,
// F.poisson_nll_loss, F.kl_div and their autograd gradients), values and gradients agree to
// ≤ 3.3e-16 relative in double and ≤ 1e-7 in float; where Lux's ε = eps(T) sits inside a log
// (CrossEntropyLoss on probabilities, BinaryCrossEntropyLoss, KLDivergenceLoss), by ε/ŷ more:
// ≤ 1.3e-14 in double and ≤ 1.2e-5 in float on those fixtures (PyTorch adds no ε).
#pragma once

#include "lux/training/losses/classification.hpp"
#include "lux/training/losses/core.hpp"
#include "lux/training/losses/dual.hpp"
#include "lux/training/losses/elementwise.hpp"
#include "lux/training/losses/overlap.hpp"
