// lux::optim: Optimisers.jl's rules over flat buffers.
//
// Oracles:
//   * torch.optim trajectories (tests/fixtures/make_optimiser_fixtures.py, float64), for the rules
//     PyTorch computes with Optimisers.jl's formula once configured so: Descent, Momentum,
//     Nesterov, RMSProp (plain and centred), Adam, AdamW (couple = true), NAdam (momentum_decay
//     → ∞, η and ϵ over √β₂), AdaGrad (accumulator from ϵ), AdaDelta, AdaMax (ϵ = 0), and the
//     chains WeightDecay+Adam, WeightDecay+Momentum, ClipGrad+Adam; RAdam for its first four
//     (unrectified) steps only, as PyTorch's threshold is ρ > 5 where Optimisers.jl's is ρ > 4;
//   * float64 references written here from Optimisers.jl's published formulas (src/rules.jl,
//     v0.4.8) for everything, including what PyTorch 1.13 lacks or computes differently: Lion,
//     AMSGrad (no bias correction, moments from ϵ), RAdam (all 10 steps), AdamW (couple = false),
//     WeightDecay, SignDecay, ClipGrad, ClipNorm (per array, p = 2, 1, Inf), ClipGlobalNorm and
//     nested chains. The references are themselves checked against PyTorch where it applies.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <lux/core/memory_pool.hpp>
#include <lux/training/optimisers.hpp>
#include <map>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "support/fixture.hpp"

namespace {

namespace op = lux::optim;
using lux::index_t;
using vec = std::vector<double>;
using leaves = std::vector<vec>;         // one vector per leaf
using trajectory = std::vector<leaves>;  // [step][leaf]

constexpr int steps = 10;

/// Initial parameters and the 10 gradients of the fixture (weight: Lux (5, 3), bias: (7)).
struct problem {
  leaves x0;
  trajectory grads;
};

template <std::size_t N>
vec slice(const lux::Tensor<double, N>& t, std::size_t n, std::size_t k) {
  return vec(t.data() + n * k, t.data() + n * (k + 1));
}

const lux_test::fixture_file& fixtures() {
  static const lux_test::fixture_file f("optimisers.txt");
  return f;
}

const problem& the_problem() {
  static const problem p = [] {
    const auto& f = fixtures();
    problem q;
    q.x0 = {slice(f.tensor<double, 2>("w0"), 15, 0), slice(f.tensor<double, 1>("b0"), 7, 0)};
    const auto gw = f.tensor<double, 3>("grad_w");
    const auto gb = f.tensor<double, 2>("grad_b");
    for (std::size_t t = 0; t < steps; ++t) q.grads.push_back({slice(gw, 15, t), slice(gb, 7, t)});
    return q;
  }();
  return p;
}

trajectory torch_trajectory(const std::string& name) {
  const auto& f = fixtures();
  const auto tw = f.tensor<double, 3>(name + "_w");
  const auto tb = f.tensor<double, 2>(name + "_b");
  trajectory r;
  for (std::size_t t = 0; t < steps; ++t) r.push_back({slice(tw, 15, t), slice(tb, 7, t)});
  return r;
}

/// max |a - b| / max(1, max |b|) over the first `n` steps (b is the reference).
double max_err(const trajectory& a, const trajectory& b, int n = steps) {
  double e = 0, scale = 1;
  for (int t = 0; t < n; ++t)
    for (std::size_t l = 0; l < a[t].size(); ++l)
      for (std::size_t i = 0; i < a[t][l].size(); ++i) {
        const double d = std::abs(a[t][l][i] - b[t][l][i]);
        e = std::isnan(d) ? INFINITY : std::max(e, d);
        scale = std::max(scale, std::abs(b[t][l][i]));
      }
  return e / scale;
}

void report(const std::string& what, double err) {
  if (std::getenv("LUX_OPTIM_REPORT")) std::printf("  %-44s max error %.3g\n", what.c_str(), err);
}

template <class T>
auto make_params(const leaves& x0) {
  lux::Tensor<T, 2> w(lux::shape_t<2>{5, 3});
  lux::Tensor<T, 1> b(lux::shape_t<1>{7});
  for (index_t i = 0; i < 15; ++i) w.data()[i] = static_cast<T>(x0[0][i]);
  for (index_t i = 0; i < 7; ++i) b.data()[i] = static_cast<T>(x0[1][i]);
  return lux::make_named_tuple<"weight", "bias">(std::move(w), std::move(b));
}

template <class T>
leaves read_leaves(const lux::flat_buffer<T>& buf) {
  leaves r;
  for (std::size_t l = 0; l < buf.layout().entries().size(); ++l) {
    const auto s = buf.segment(l);
    r.emplace_back(s.begin(), s.end());
  }
  return r;
}

template <class T>
void write_leaves(lux::flat_buffer<T>& buf, const leaves& v) {
  for (std::size_t l = 0; l < v.size(); ++l) {
    auto s = buf.segment(l);
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<T>(v[l][i]);
  }
}

/// The trajectory of a lux::optim rule in element type T on the fixture's problem.
template <class T, class Rule>
trajectory run_lux(const Rule& rule, const problem& p = the_problem()) {
  lux::flat_tree params(make_params<T>(p.x0));
  auto grads = params.zeros_like();
  auto state = op::setup(rule, params);
  trajectory r;
  for (int t = 0; t < steps; ++t) {
    write_leaves(grads.buffer(), p.grads[t]);
    op::update(state, params, grads);
    r.push_back(read_leaves(params.buffer()));
  }
  CHECK(state.step() == steps);
  return r;
}

// --- float64 references of Optimisers.jl's rules ---------------------------------------------
// A reference rule maps (leaf, x, dx) to dx′ in place; its per-leaf state is created on the first
// call for that leaf, as Optimisers.init would, and advanced on every call (one per step).
using ref_rule = std::function<void(std::size_t, const vec&, vec&)>;

template <class State, class Init, class Step>
ref_rule make_ref(Init init, Step step) {
  auto states = std::make_shared<std::map<std::size_t, State>>();
  return [=](std::size_t leaf, const vec& x, vec& dx) {
    auto it = states->find(leaf);
    if (it == states->end()) it = states->emplace(leaf, init(x.size())).first;
    step(it->second, x, dx);
  };
}

trajectory run_reference(const std::vector<ref_rule>& chain, const problem& p = the_problem()) {
  leaves x = p.x0;
  trajectory r;
  for (int t = 0; t < steps; ++t) {
    for (std::size_t l = 0; l < x.size(); ++l) {
      vec dx = p.grads[t][l];
      for (const auto& rule : chain) rule(l, x[l], dx);
      for (std::size_t i = 0; i < dx.size(); ++i) x[l][i] -= dx[i];  // subtract!
    }
    r.push_back(x);
  }
  return r;
}

struct none_state {};
double jl_sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : v); }

ref_rule ref_descent(double eta) {
  return make_ref<none_state>([](std::size_t) { return none_state{}; },
                              [=](none_state&, const vec&, vec& dx) {
                                for (auto& d : dx) d *= eta;
                              });
}
ref_rule ref_momentum(double eta, double rho) {
  return make_ref<vec>([](std::size_t n) { return vec(n, 0.0); },
                       [=](vec& v, const vec&, vec& dx) {
                         for (std::size_t i = 0; i < dx.size(); ++i) {
                           v[i] = rho * v[i] + eta * dx[i];
                           dx[i] = v[i];
                         }
                       });
}
ref_rule ref_nesterov(double eta, double rho) {
  return make_ref<vec>([](std::size_t n) { return vec(n, 0.0); },
                       [=](vec& vel, const vec&, vec& dx) {
                         for (std::size_t i = 0; i < dx.size(); ++i) {
                           const double newdx = -rho * rho * vel[i] + (1 + rho) * eta * dx[i];
                           vel[i] = rho * vel[i] - eta * dx[i];
                           dx[i] = newdx;
                         }
                       });
}
ref_rule ref_rmsprop(double eta, double rho, double eps, bool centred) {
  struct st {
    vec quad, lin;
  };
  return make_ref<st>(
      [](std::size_t n) {
        return st{vec(n, 0.0), vec(n, 0.0)};
      },
      [=](st& s, const vec&, vec& dx) {
        for (std::size_t i = 0; i < dx.size(); ++i) {
          s.quad[i] = rho * s.quad[i] + (1 - rho) * dx[i] * dx[i];
          if (centred) s.lin[i] = rho * s.lin[i] + (1 - rho) * dx[i];
          dx[i] = dx[i] * eta / (std::sqrt(s.quad[i] - s.lin[i] * s.lin[i]) + eps);
        }
      });
}
struct adam_st {
  vec mt, vt;
  std::array<double, 2> bt;
  double t = 1;
};
auto adam_init(double b1, double b2) {
  return [=](std::size_t n) { return adam_st{vec(n, 0.0), vec(n, 0.0), {b1, b2}}; };
}
void adam_moments(adam_st& s, const vec& dx, double b1, double b2) {
  for (std::size_t i = 0; i < dx.size(); ++i) {
    s.mt[i] = b1 * s.mt[i] + (1 - b1) * dx[i];
    s.vt[i] = b2 * s.vt[i] + (1 - b2) * dx[i] * dx[i];
  }
}
ref_rule ref_adam(double eta, double b1, double b2, double eps) {
  return make_ref<adam_st>(adam_init(b1, b2), [=](adam_st& s, const vec&, vec& dx) {
    adam_moments(s, dx, b1, b2);
    for (std::size_t i = 0; i < dx.size(); ++i)
      dx[i] = s.mt[i] / (1 - s.bt[0]) / (std::sqrt(s.vt[i] / (1 - s.bt[1])) + eps) * eta;
    s.bt = {s.bt[0] * b1, s.bt[1] * b2};
  });
}
ref_rule ref_adamw(double eta, double b1, double b2, double lambda, double eps, bool couple) {
  return make_ref<adam_st>(adam_init(b1, b2), [=](adam_st& s, const vec& x, vec& dx) {
    adam_moments(s, dx, b1, b2);
    for (std::size_t i = 0; i < dx.size(); ++i) {
      const double a = s.mt[i] / (1 - s.bt[0]) / (std::sqrt(s.vt[i] / (1 - s.bt[1])) + eps);
      dx[i] = couple ? eta * (a + lambda * x[i]) : eta * a + lambda * x[i];
    }
    s.bt = {s.bt[0] * b1, s.bt[1] * b2};
  });
}
ref_rule ref_radam(double eta, double b1, double b2, double eps) {
  return make_ref<adam_st>(adam_init(b1, b2), [=](adam_st& s, const vec&, vec& dx) {
    const double rho_inf = 2 / (1 - b2) - 1;
    adam_moments(s, dx, b1, b2);
    const double rho = rho_inf - 2 * s.t * s.bt[1] / (1 - s.bt[1]);
    for (std::size_t i = 0; i < dx.size(); ++i) {
      if (rho > 4) {
        const double r =
            std::sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho));
        dx[i] = s.mt[i] / (1 - s.bt[0]) / (std::sqrt(s.vt[i] / (1 - s.bt[1])) + eps) * eta * r;
      } else {
        dx[i] = s.mt[i] / (1 - s.bt[0]) * eta;
      }
    }
    s.bt = {s.bt[0] * b1, s.bt[1] * b2};
    s.t += 1;
  });
}
ref_rule ref_nadam(double eta, double b1, double b2, double eps) {
  return make_ref<adam_st>(adam_init(b1, b2), [=](adam_st& s, const vec&, vec& dx) {
    adam_moments(s, dx, b1, b2);
    for (std::size_t i = 0; i < dx.size(); ++i)
      dx[i] = (b1 * s.mt[i] / (1 - b1 * s.bt[0]) + (1 - b1) * dx[i] / (1 - s.bt[0])) /
              (std::sqrt(s.vt[i] * b2 / (1 - s.bt[1])) + eps) * eta;
    s.bt = {s.bt[0] * b1, s.bt[1] * b2};
  });
}
ref_rule ref_amsgrad(double eta, double b1, double b2, double eps) {
  struct st {
    vec mt, vt, vh;
  };
  return make_ref<st>(
      [=](std::size_t n) {
        return st{vec(n, eps), vec(n, eps), vec(n, eps)};
      },
      [=](st& s, const vec&, vec& dx) {
        for (std::size_t i = 0; i < dx.size(); ++i) {
          s.mt[i] = b1 * s.mt[i] + (1 - b1) * dx[i];
          s.vt[i] = b2 * s.vt[i] + (1 - b2) * dx[i] * dx[i];
          s.vh[i] = std::max(s.vh[i], s.vt[i]);
          dx[i] = eta * s.mt[i] / (std::sqrt(s.vh[i]) + eps);
        }
      });
}
ref_rule ref_adamax(double eta, double b1, double b2, double eps) {
  return make_ref<adam_st>(adam_init(b1, b2), [=](adam_st& s, const vec&, vec& dx) {
    for (std::size_t i = 0; i < dx.size(); ++i) {
      s.mt[i] = b1 * s.mt[i] + (1 - b1) * dx[i];
      s.vt[i] = std::max(b2 * s.vt[i], std::abs(dx[i]));
      dx[i] = (eta / (1 - s.bt[0])) * s.mt[i] / (s.vt[i] + eps);
    }
    s.bt = {s.bt[0] * b1, s.bt[1] * b2};
  });
}
ref_rule ref_adagrad(double eta, double eps) {
  return make_ref<vec>([=](std::size_t n) { return vec(n, eps); },
                       [=](vec& acc, const vec&, vec& dx) {
                         for (std::size_t i = 0; i < dx.size(); ++i) {
                           acc[i] += dx[i] * dx[i];
                           dx[i] = dx[i] * eta / (std::sqrt(acc[i]) + eps);
                         }
                       });
}
ref_rule ref_adadelta(double rho, double eps) {
  struct st {
    vec acc, dacc;
  };
  return make_ref<st>(
      [](std::size_t n) {
        return st{vec(n, 0.0), vec(n, 0.0)};
      },
      [=](st& s, const vec&, vec& dx) {
        for (std::size_t i = 0; i < dx.size(); ++i) {
          s.acc[i] = rho * s.acc[i] + (1 - rho) * dx[i] * dx[i];
          const double d = dx[i] * std::sqrt(s.dacc[i] + eps) / std::sqrt(s.acc[i] + eps);
          s.dacc[i] = rho * s.dacc[i] + (1 - rho) * d * d;
          dx[i] = d;
        }
      });
}
ref_rule ref_lion(double eta, double b1, double b2) {
  return make_ref<vec>([](std::size_t n) { return vec(n, 0.0); },
                       [=](vec& m, const vec&, vec& dx) {
                         for (std::size_t i = 0; i < dx.size(); ++i) {
                           m[i] = b2 * dx[i] + (1 - b2) * m[i];
                           dx[i] = eta * jl_sign((b2 - b1) * dx[i] + b1 * m[i]);
                         }
                       });
}
ref_rule ref_weightdecay(double lambda) {
  return make_ref<none_state>([](std::size_t) { return none_state{}; },
                              [=](none_state&, const vec& x, vec& dx) {
                                for (std::size_t i = 0; i < dx.size(); ++i) dx[i] += lambda * x[i];
                              });
}
ref_rule ref_signdecay(double lambda) {
  return make_ref<none_state>([](std::size_t) { return none_state{}; },
                              [=](none_state&, const vec& x, vec& dx) {
                                for (std::size_t i = 0; i < dx.size(); ++i)
                                  dx[i] += lambda * jl_sign(x[i]);
                              });
}
ref_rule ref_clipgrad(double delta) {
  return make_ref<none_state>([](std::size_t) { return none_state{}; },
                              [=](none_state&, const vec&, vec& dx) {
                                for (auto& d : dx) d = std::clamp(d, -delta, delta);
                              });
}
double ref_norm(const vec& v, double p) {
  if (p == INFINITY) {
    double m = 0;
    for (double d : v) m = std::max(m, std::abs(d));
    return m;
  }
  double s = 0;
  for (double d : v) s += std::pow(std::abs(d), p);
  return std::pow(s, 1 / p);
}
ref_rule ref_clipnorm(double omega, double p) {
  return make_ref<none_state>([](std::size_t) { return none_state{}; },
                              [=](none_state&, const vec&, vec& dx) {
                                const double lambda = std::min(omega / ref_norm(dx, p), 1.0);
                                for (auto& d : dx) d *= lambda;
                              });
}

/// ClipGlobalNorm needs both leaves at once: the reference trajectory is written out.
trajectory reference_global_clip_descent(double omega, double eta) {
  const auto& p = the_problem();
  leaves x = p.x0;
  trajectory r;
  for (int t = 0; t < steps; ++t) {
    double s = 0;
    for (const auto& g : p.grads[t])
      for (double d : g) s += d * d;
    const double lambda = std::min(omega / std::sqrt(s), 1.0);
    for (std::size_t l = 0; l < x.size(); ++l)
      for (std::size_t i = 0; i < x[l].size(); ++i) x[l][i] -= eta * lambda * p.grads[t][l][i];
    r.push_back(x);
  }
  return r;
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 5e-7 : 1e-14;
}

constexpr std::array<double, 2> betas{0.9, 0.999};

}  // namespace

TEMPLATE_TEST_CASE("optim: rules match torch.optim trajectories", "[optim]", float, double) {
  using T = TestType;
  auto check = [](const std::string& name, const auto& rule, const ref_rule& ref, int n = steps) {
    const auto torch = torch_trajectory(name);
    const double e = max_err(run_lux<T>(rule), torch, n);
    report(name + (std::is_same_v<T, float> ? " (float)" : " (double)"), e);
    INFO(name);
    CHECK(e < tolerance<T>());
    if (std::is_same_v<T, double>) {  // the float64 reference agrees with PyTorch too
      const double er = max_err(run_reference({ref}), torch, n);
      report(name + " (reference)", er);
      CHECK(er < 1e-12);
    }
  };
  check("descent", op::Descent{0.1}, ref_descent(0.1));
  check("momentum", op::Momentum{0.05, 0.9}, ref_momentum(0.05, 0.9));
  check("nesterov", op::Nesterov{0.05, 0.9}, ref_nesterov(0.05, 0.9));
  check("rmsprop", op::RMSProp{0.01, 0.9, 1e-8}, ref_rmsprop(0.01, 0.9, 1e-8, false));
  check("rmsprop_centred", op::RMSProp{0.01, 0.9, 1e-8, true}, ref_rmsprop(0.01, 0.9, 1e-8, true));
  check("adam", op::Adam{0.01, betas, 1e-8}, ref_adam(0.01, 0.9, 0.999, 1e-8));
  check("adamw", op::AdamW{0.01, betas, 0.1, 1e-8, true},
        ref_adamw(0.01, 0.9, 0.999, 0.1, 1e-8, true));
  check("nadam", op::NAdam{0.01, betas, 1e-8}, ref_nadam(0.01, 0.9, 0.999, 1e-8));
  check("adagrad", op::AdaGrad{0.1, 1e-8}, ref_adagrad(0.1, 1e-8));
  check("adadelta", op::AdaDelta{0.9, 1e-3}, ref_adadelta(0.9, 1e-3));
  check("adamax", op::AdaMax{0.01, betas, 0.0}, ref_adamax(0.01, 0.9, 0.999, 0.0));
  // PyTorch's RAdam rectifies for ρ > 5, Optimisers.jl's for ρ > 4: equal for steps 1-4.
  check("radam", op::RAdam{0.01, betas, 1e-8}, ref_radam(0.01, 0.9, 0.999, 1e-8), 4);
  check("chain_weightdecay_adam", op::OptimiserChain{op::WeightDecay{0.1}, op::Adam{0.01}},
        [c = std::vector{ref_weightdecay(0.1), ref_adam(0.01, 0.9, 0.999, 1e-8)}](
            std::size_t l, const vec& x, vec& dx) {
          for (const auto& r : c) r(l, x, dx);
        });
  check("chain_weightdecay_momentum",
        op::OptimiserChain{op::WeightDecay{0.1}, op::Momentum{0.05, 0.9}},
        [c = std::vector{ref_weightdecay(0.1), ref_momentum(0.05, 0.9)}](std::size_t l,
                                                                         const vec& x, vec& dx) {
          for (const auto& r : c) r(l, x, dx);
        });
  check("chain_clipgrad_adam", op::OptimiserChain{op::ClipGrad{0.5}, op::Adam{0.01}},
        [c = std::vector{ref_clipgrad(0.5), ref_adam(0.01, 0.9, 0.999, 1e-8)}](
            std::size_t l, const vec& x, vec& dx) {
          for (const auto& r : c) r(l, x, dx);
        });
  if constexpr (std::is_same_v<T, double>) {
    // ... and from step 5 on (ρ₅ = 4.99) the two RAdams part: the difference is real.
    CHECK(max_err(run_lux<T>(op::RAdam{0.01}), torch_trajectory("radam"), 5) > 1e-6);
  }
}

TEMPLATE_TEST_CASE("optim: rules match float64 references of Optimisers.jl's formulas", "[optim]",
                   float, double) {
  using T = TestType;
  auto check = [](const std::string& name, const auto& rule, const trajectory& ref) {
    const double e = max_err(run_lux<T>(rule), ref);
    report(name + (std::is_same_v<T, float> ? " (float)" : " (double)"), e);
    INFO(name);
    CHECK(e < tolerance<T>());
  };
  check("Lion", op::Lion{0.01, {0.9, 0.99}}, run_reference({ref_lion(0.01, 0.9, 0.99)}));
  check("AMSGrad", op::AMSGrad{0.01, betas, 1e-8},
        run_reference({ref_amsgrad(0.01, 0.9, 0.999, 1e-8)}));
  check("RAdam", op::RAdam{0.01, betas, 1e-8}, run_reference({ref_radam(0.01, 0.9, 0.999, 1e-8)}));
  check("RAdam (beta2 = 0.9)", op::RAdam{0.01, {0.8, 0.9}, 1e-8},
        run_reference({ref_radam(0.01, 0.8, 0.9, 1e-8)}));
  check("AdamW (couple = false)", op::AdamW{0.01, betas, 0.05, 1e-8, false},
        run_reference({ref_adamw(0.01, 0.9, 0.999, 0.05, 1e-8, false)}));
  check("NAdam (defaults)", op::NAdam{}, run_reference({ref_nadam(0.001, 0.9, 0.999, 1e-8)}));
  check("AdaMax (epsilon = 1e-8)", op::AdaMax{0.01},
        run_reference({ref_adamax(0.01, 0.9, 0.999, 1e-8)}));
  check("WeightDecay", op::WeightDecay{0.2}, run_reference({ref_weightdecay(0.2)}));
  check("SignDecay", op::SignDecay{0.05}, run_reference({ref_signdecay(0.05)}));
  check("ClipGrad", op::ClipGrad{0.3}, run_reference({ref_clipgrad(0.3)}));
  check("ClipNorm p = 2", op::OptimiserChain{op::ClipNorm{2.0}, op::Descent{0.1}},
        run_reference({ref_clipnorm(2.0, 2), ref_descent(0.1)}));
  check("ClipNorm p = 1", op::OptimiserChain{op::ClipNorm{3.0, 1}, op::Descent{0.1}},
        run_reference({ref_clipnorm(3.0, 1), ref_descent(0.1)}));
  check("ClipNorm p = Inf", op::OptimiserChain{op::ClipNorm{1.0, INFINITY}, op::Descent{0.1}},
        run_reference({ref_clipnorm(1.0, INFINITY), ref_descent(0.1)}));
  check("ClipNorm p = 3", op::OptimiserChain{op::ClipNorm{2.0, 3}, op::Descent{0.1}},
        run_reference({ref_clipnorm(2.0, 3), ref_descent(0.1)}));
  check("ClipGlobalNorm", op::OptimiserChain{op::ClipGlobalNorm{3.0}, op::Descent{0.1}},
        reference_global_clip_descent(3.0, 0.1));
  check("OptimiserChain()", op::OptimiserChain{}, run_reference({ref_descent(1.0)}));
  check("OptimiserChain(SignDecay, OptimiserChain(ClipNorm, WeightDecay), Lion)",
        op::OptimiserChain{op::SignDecay{0.01},
                           op::OptimiserChain{op::ClipNorm{2.0}, op::WeightDecay{0.05}},
                           op::Lion{0.01}},
        run_reference({ref_signdecay(0.01), ref_clipnorm(2.0, 2), ref_weightdecay(0.05),
                       ref_lion(0.01, 0.9, 0.999)}));
  check("OptimiserChain(ClipGrad, WeightDecay, AMSGrad)",
        op::OptimiserChain{op::ClipGrad{1.0}, op::WeightDecay{0.01}, op::AMSGrad{0.01}},
        run_reference(
            {ref_clipgrad(1.0), ref_weightdecay(0.01), ref_amsgrad(0.01, 0.9, 0.999, 1e-8)}));
  // Clipping must have acted for these checks to mean something.
  const auto& p = the_problem();
  CHECK(ref_norm(p.grads[0][0], 2) > 2.0);
  CHECK(ref_norm(p.grads[0][1], 2) < 2.0);
}

TEST_CASE("optim: Optimisers.jl's defaults", "[optim]") {
  CHECK(op::Descent{}.eta == 0.1);
  CHECK((op::Momentum{}.eta == 0.01 && op::Momentum{}.rho == 0.9));
  CHECK((op::Nesterov{}.eta == 0.001 && op::Nesterov{}.rho == 0.9));
  const op::RMSProp rms;
  CHECK((rms.eta == 0.001 && rms.rho == 0.9 && rms.epsilon == 1e-8 && !rms.centred));
  const op::Adam adam;
  CHECK((adam.eta == 0.001 && adam.beta == std::array{0.9, 0.999} && adam.epsilon == 1e-8));
  const op::AdamW adamw;
  CHECK((adamw.eta == 0.001 && adamw.lambda == 0 && adamw.epsilon == 1e-8 && adamw.couple));
  CHECK((op::AdaGrad{}.eta == 0.1 && op::AdaGrad{}.epsilon == 1e-8));
  CHECK((op::AdaDelta{}.rho == 0.9 && op::AdaDelta{}.epsilon == 1e-8));
  CHECK((op::Lion{}.eta == 0.001 && op::Lion{}.beta == std::array{0.9, 0.999}));
  CHECK(op::WeightDecay{}.lambda == 5e-4);
  CHECK(op::SignDecay{}.lambda == 1e-3);
  CHECK(op::ClipGrad{}.delta == 10);
  CHECK((op::ClipNorm{}.omega == 10 && op::ClipNorm{}.p == 2 && op::ClipNorm{}.throw_));
  CHECK(op::RAdam{}.beta == std::array{0.9, 0.999});
}

TEST_CASE("optim: adjust sets hyperparameters of every rule that has them", "[optim]") {
  lux::flat_tree params(make_params<double>(the_problem().x0));
  auto grads = params.zeros_like();
  write_leaves(grads.buffer(), the_problem().grads[0]);

  auto s = op::setup(op::Descent{0.1}, params);
  op::adjust(s, 0.5);
  CHECK(s.rule().eta == 0.5);
  const double x0 = params.buffer().segment(0)[3], g0 = grads.buffer().segment(0)[3];
  op::update(s, params, grads);
  CHECK(params.buffer().segment(0)[3] == Approx(x0 - 0.5 * g0).epsilon(1e-15));

  auto c = op::setup(op::OptimiserChain{op::ClipGrad{}, op::WeightDecay{}, op::Adam{}}, params);
  op::adjust(c, 0.02);
  CHECK(std::get<2>(c.rule().opts).eta == 0.02);
  op::adjust(c, op::hyper<"beta">, std::array{0.8, 0.99});
  op::adjust(c, op::hyper<"delta">, 2.5);
  op::adjust(c, op::hyper<"lambda">, 0.125);
  CHECK(std::get<2>(c.rule().opts).beta == std::array{0.8, 0.99});
  CHECK(std::get<0>(c.rule().opts).delta == 2.5);
  CHECK(std::get<1>(c.rule().opts).lambda == 0.125);
  // Adjusting keeps the moments (Optimisers.adjust! does not reset the state).
  op::update(c, params, grads);
  double m_before = 0;
  c.for_each_tensor([&](std::string_view name, auto& buf) {
    if (name == "rule_3.mt") m_before = buf.data()[0];
  });
  op::adjust(c, 0.001);
  double m_after = 0;
  c.for_each_tensor([&](std::string_view name, auto& buf) {
    if (name == "rule_3.mt") m_after = buf.data()[0];
  });
  CHECK(m_before != 0);
  CHECK(m_after == m_before);

  // ClipNorm's `throw` keyword, under its Julia name.
  auto cn = op::setup(op::ClipNorm{}, params);
  op::adjust(cn, op::hyper<"throw">, false);
  CHECK_FALSE(cn.rule().throw_);

  // Bad values are rejected and leave the rule as it was.
  CHECK_THROWS_AS(op::adjust(c, -1.0), lux::argument_error);
  CHECK(std::get<2>(c.rule().opts).eta == 0.001);
  CHECK_THROWS_AS(op::adjust(c, op::hyper<"beta">, std::array{0.9, 1.0}), lux::argument_error);
  CHECK_THROWS_WITH(op::setup(op::Adam{0.001, {1.5, 0.999}}, params),
                    Catch::Contains("Adam.beta") && Catch::Contains("[0, 1)"));
  CHECK_THROWS_AS(op::setup(op::Momentum{0.01, 1.5}, params), lux::argument_error);
  CHECK_THROWS_AS(op::setup(op::RMSProp{-0.1}, params), lux::argument_error);
  CHECK_THROWS_AS(op::setup(op::OptimiserChain{op::ClipGrad{-1.0}, op::Descent{}}, params),
                  lux::argument_error);
}

TEST_CASE("optim: schedules", "[optim]") {
  const op::step_decay sd{0.1, 0.5, 3};
  CHECK(sd(0) == 0.1);
  CHECK(sd(2) == 0.1);
  CHECK(sd(3) == 0.05);
  CHECK(sd(7) == Approx(0.025).epsilon(1e-15));
  const op::exponential ex{0.2, 0.9};
  CHECK(ex(0) == 0.2);
  CHECK(ex(3) == Approx(0.2 * 0.729).epsilon(1e-15));
  const op::cosine_annealing ca{0.001, 0.1, 10, 4};
  CHECK(ca(0) == Approx(0.025).epsilon(1e-15));                // warm-up: 0.1 · 1/4
  CHECK(ca(3) == Approx(0.1).epsilon(1e-15));                  // end of the warm-up
  CHECK(ca(4) == Approx(0.1).epsilon(1e-15));                  // cosine starts at eta_max
  CHECK(ca(9) == Approx(0.001 + 0.099 * 0.5).epsilon(1e-14));  // half period: the midpoint
  CHECK(ca(14) == 0.001);                                      // period over, no restart: eta_min
  CHECK(ca(100) == 0.001);
  const op::cosine_annealing cr{0.0, 1.0, 4, 0, true};
  CHECK(cr(1) == Approx(0.5 * (1 + std::cos(std::numbers::pi / 4))).epsilon(1e-15));
  CHECK(cr(5) == cr(1));  // restarted
  CHECK_THROWS_AS(sd(-1), lux::argument_error);

  // The documented use: adjust before each update.
  lux::flat_tree params(make_params<float>(the_problem().x0));
  auto grads = params.zeros_like();
  auto s = op::setup(op::Momentum{}, params);
  for (int t = 0; t < 5; ++t) {
    op::adjust(s, ex(s.step()));
    CHECK(s.rule().eta == ex(t));
    op::update(s, params, grads);
  }
}

TEST_CASE("optim: an update allocates nothing after setup", "[optim]") {
  auto check = [](const auto& rule) {
    lux::flat_tree params(make_params<float>(the_problem().x0));
    auto grads = params.zeros_like();
    write_leaves(grads.buffer(), the_problem().grads[0]);
    auto s = op::setup(rule, params);
    const auto before = lux::host_memory_stats();
    for (int t = 0; t < 5; ++t) op::update(s, params, grads);
    const auto after = lux::host_memory_stats();
    CHECK(after.system_allocations == before.system_allocations);
    CHECK(after.cache_hits == before.cache_hits);
  };
  check(op::Adam{});
  check(op::RMSProp{.centred = true});
  check(op::RAdam{});
  check(op::OptimiserChain{op::ClipNorm{1.0}, op::WeightDecay{}, op::AdamW{}});
  check(
      op::OptimiserChain{op::ClipGlobalNorm{1.0}, op::OptimiserChain{op::SignDecay{}, op::Lion{}}});
}

TEST_CASE("optim: a layout mismatch throws shape_error naming both sizes", "[optim]") {
  lux::flat_tree params(make_params<float>(the_problem().x0));
  auto s = op::setup(op::Adam{}, params);
  auto other = lux::make_named_tuple<"weight">(lux::Tensor<float, 1>(lux::shape_t<1>{40}));
  lux::flat_tree wrong(other);
  CHECK_THROWS_AS(op::update(s, params, wrong), lux::shape_error);
  CHECK_THROWS_WITH(op::update(s, params, wrong), Catch::Contains("grads") &&
                                                      Catch::Contains("48 elements in 1 leaves") &&
                                                      Catch::Contains("32 elements in 2 leaves"));
  auto wrong2 = wrong.zeros_like();
  CHECK_THROWS_WITH(op::update(s, wrong2.buffer(), wrong.buffer()),
                    Catch::Contains("params") && Catch::Contains("set up with"));
  CHECK(s.step() == 0);
}

TEMPLATE_TEST_CASE("optim: alignment gaps stay zero", "[optim]", float, double) {
  using T = TestType;
  auto check = [](const std::string& name, const auto& rule) {
    lux::flat_tree params(make_params<T>(the_problem().x0));
    auto grads = params.zeros_like();
    auto s = op::setup(rule, params);
    const auto& entries = params.layout().entries();
    REQUIRE(entries.size() == 2);
    auto gaps_zero = [&](const lux::flat_buffer<T>& b) {
      for (index_t i = 0; i < b.size(); ++i) {
        const bool in_leaf = (i >= entries[0].offset && i < entries[0].offset + entries[0].numel) ||
                             (i >= entries[1].offset && i < entries[1].offset + entries[1].numel);
        if (!in_leaf && b.data()[i] != T(0)) return false;
      }
      return true;
    };
    for (int t = 0; t < steps; ++t) {
      write_leaves(grads.buffer(), the_problem().grads[t]);
      // Garbage in the gradient's gaps must not reach anything.
      for (index_t i = entries[0].numel; i < entries[1].offset; ++i) grads.buffer().data()[i] = 7;
      for (index_t i = entries[1].offset + 7; i < grads.buffer().size(); ++i)
        grads.buffer().data()[i] = -3;
      op::update(s, params, grads);
    }
    INFO(name);
    CHECK(gaps_zero(params.buffer()));
    s.for_each_tensor([&](std::string_view buf_name, lux::flat_buffer<T>& b) {
      INFO(buf_name);
      CHECK(gaps_zero(b));
    });
  };
  REQUIRE(lux::flat_layout::of<T>(make_params<T>(the_problem().x0)).size() > 22);  // gaps exist
  check("Descent", op::Descent{});
  check("Momentum", op::Momentum{});
  check("Nesterov", op::Nesterov{});
  check("RMSProp", op::RMSProp{.centred = true});
  check("AdaGrad", op::AdaGrad{});
  check("AdaDelta", op::AdaDelta{});
  check("Lion", op::Lion{});
  check("Adam", op::Adam{});
  check("AdamW", op::AdamW{.lambda = 0.1});
  check("RAdam", op::RAdam{});
  check("NAdam", op::NAdam{});
  check("AMSGrad", op::AMSGrad{});
  check("AdaMax (epsilon = 0)", op::AdaMax{.epsilon = 0.0});
  check("chain", op::OptimiserChain{op::ClipNorm{1.0}, op::SignDecay{}, op::ClipGrad{0.1},
                                    op::ClipGlobalNorm{0.5}, op::WeightDecay{}, op::Adam{}});
}

namespace {
/// Copies every leaf of a state tree (buffers and scalars) into doubles, by path.
template <class Tree>
std::map<std::string, vec> snapshot(Tree&& tree) {
  std::map<std::string, vec> out;
  lux::for_each_leaf(tree, [&](std::string_view path, auto& leaf) {
    using L = std::remove_cvref_t<decltype(leaf)>;
    if constexpr (std::is_arithmetic_v<L>)
      out[std::string(path)] = {static_cast<double>(leaf)};
    else
      out[std::string(path)] = vec(leaf.data(), leaf.data() + leaf.numel());
  });
  return out;
}
/// Writes a snapshot back through the tree's views and references.
template <class Tree>
void restore(Tree&& tree, const std::map<std::string, vec>& snap) {
  lux::for_each_leaf(tree, [&](std::string_view path, auto& leaf) {
    using L = std::remove_cvref_t<decltype(leaf)>;
    const vec& v = snap.at(std::string(path));
    if constexpr (std::is_arithmetic_v<L>) {
      leaf = static_cast<L>(v[0]);
    } else {
      REQUIRE(static_cast<std::size_t>(leaf.numel()) == v.size());
      for (index_t i = 0; i < leaf.numel(); ++i)
        leaf.data()[i] = static_cast<typename L::value_type>(v[i]);
    }
  });
}
template <class Tree>
std::vector<std::string> paths(Tree&& tree) {
  std::vector<std::string> p;
  lux::for_each_leaf(tree, [&](std::string_view path, auto&) { p.emplace_back(path); });
  return p;
}
}  // namespace

TEST_CASE("optim: the state tree has stable names and restores the state", "[optim]") {
  using S = std::vector<std::string>;
  lux::flat_tree params(make_params<float>(the_problem().x0));
  CHECK(paths(op::setup(op::Adam{}, params).tree()) == S{"step", "mt", "vt", "beta1_t", "beta2_t"});
  CHECK(paths(op::setup(op::RAdam{}, params).tree()) ==
        S{"step", "mt", "vt", "beta1_t", "beta2_t", "t"});
  CHECK(paths(op::setup(op::RMSProp{}, params).tree()) == S{"step", "quad", "lin"});
  CHECK(paths(op::setup(op::Descent{}, params).tree()) == S{"step"});
  auto chain =
      op::setup(op::OptimiserChain{op::ClipGrad{}, op::Momentum{}, op::AdaDelta{}}, params);
  CHECK(paths(chain.tree()) == S{"step", "rule_2.velocity", "rule_3.acc", "rule_3.delta_acc"});
  S names;
  chain.for_each_tensor([&](std::string_view n, lux::flat_buffer<float>& b) {
    names.emplace_back(n);
    CHECK(b.size() == params.buffer().size());
  });
  CHECK(names == S{"rule_2.velocity", "rule_3.acc", "rule_3.delta_acc"});
  // Types of the leaves: 1-D views over whole buffers, scalars by reference.
  auto t = op::setup(op::RAdam{}, params).tree();
  static_assert(
      std::is_same_v<std::remove_cvref_t<decltype(t.get<"mt">())>, lux::TensorView<float, 1>>);
  static_assert(std::is_same_v<decltype(t.get<"step">()), std::int64_t&>);
  static_assert(std::is_same_v<decltype(t.get<"beta2_t">()), double&>);
  static_assert(std::is_same_v<decltype(t.get<"t">()), std::int64_t&>);

  // Save after 5 steps, restore into a fresh state, continue: the same trajectory as without the
  // interruption.
  auto resume = [](const auto& rule) {
    const auto& p = the_problem();
    lux::flat_tree pa(make_params<float>(p.x0));
    auto grads = pa.zeros_like();
    auto a = op::setup(rule, pa);
    for (int k = 0; k < 5; ++k) {
      write_leaves(grads.buffer(), p.grads[k]);
      op::update(a, pa, grads);
    }
    const auto snap = snapshot(a.tree());
    lux::flat_tree pb(pa);
    auto b = op::setup(rule, pb);
    restore(b.tree(), snap);
    CHECK(b.step() == 5);
    for (int k = 5; k < steps; ++k) {
      write_leaves(grads.buffer(), p.grads[k]);
      op::update(a, pa, grads);
      op::update(b, pb, grads);
    }
    CHECK(read_leaves(pa.buffer()) == read_leaves(pb.buffer()));
    CHECK(snapshot(a.tree()) == snapshot(b.tree()));
    // A fresh state that is not restored does differ.
    lux::flat_tree pc(make_params<float>(p.x0));
    auto c = op::setup(rule, pc);
    for (int k = 5; k < steps; ++k) {
      write_leaves(grads.buffer(), p.grads[k]);
      op::update(c, pc, grads);
    }
    CHECK(read_leaves(pc.buffer()) != read_leaves(pa.buffer()));
  };
  resume(op::Adam{0.01});
  resume(op::RAdam{0.01});
  resume(op::RMSProp{.eta = 0.01, .centred = true});
  resume(op::OptimiserChain{op::ClipGrad{0.5}, op::NAdam{0.01}});
}

TEST_CASE("optim: ClipNorm throws on a non-finite norm unless told not to", "[optim]") {
  lux::flat_tree params(make_params<float>(the_problem().x0));
  auto grads = params.zeros_like();
  write_leaves(grads.buffer(), the_problem().grads[0]);
  grads.buffer().segment(1)[2] = INFINITY;
  const auto x_before = read_leaves(params.buffer());
  auto s = op::setup(op::OptimiserChain{op::ClipNorm{1.0}, op::Adam{}}, params);
  CHECK_THROWS_WITH(op::update(s, params, grads), Catch::Contains("ClipNorm") &&
                                                      Catch::Contains("bias") &&
                                                      Catch::Contains("inf"));
  CHECK(read_leaves(params.buffer()) == x_before);  // nothing applied
  CHECK(s.step() == 0);
  auto g = op::setup(op::ClipGlobalNorm{1.0}, params);
  CHECK_THROWS_AS(op::update(g, params, grads), lux::argument_error);
  grads.buffer().segment(1)[2] = NAN;
  auto n = op::setup(op::ClipNorm{1.0, INFINITY}, params);
  CHECK_THROWS_AS(op::update(n, params, grads), lux::argument_error);
  // throw = false: the leaf with the NaN becomes NaN (min(ω/NaN, 1) is NaN, as in Julia); the
  // other leaf is clipped normally.
  auto q = op::setup(op::ClipNorm{1.0, 2, false}, params);
  op::update(q, params, grads);
  CHECK(std::isnan(params.buffer().segment(1)[0]));
  CHECK(std::isfinite(params.buffer().segment(0)[0]));
}

TEST_CASE("optim: large buffers (threaded pieces) match the float64 reference", "[optim]") {
  // 150000 + 333 + 40000 parameters: above the threading threshold, several pieces per leaf.
  auto ps = lux::make_named_tuple<"weight", "bias", "embedding">(
      lux::Tensor<float, 2>(lux::shape_t<2>{300, 500}), lux::Tensor<float, 1>(lux::shape_t<1>{333}),
      lux::Tensor<float, 1>(lux::shape_t<1>{40000}));
  lux::flat_tree params(ps);
  REQUIRE(params.layout().parameter_count() > op::update_plan::parallel_threshold);
  auto grads = params.zeros_like();
  const std::size_t nl = params.layout().entries().size();
  problem p;
  for (std::size_t l = 0; l < nl; ++l) {
    const auto n = static_cast<std::size_t>(params.layout().entries()[l].numel);
    vec x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = std::sin(0.37 * static_cast<double>(i + 11 * l));
    p.x0.push_back(x);
  }
  for (int t = 0; t < steps; ++t) {
    leaves g;
    for (std::size_t l = 0; l < nl; ++l) {
      vec v(p.x0[l].size());
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<double>(static_cast<float>(
            std::cos(0.11 * static_cast<double>(i) + t + 3.0 * static_cast<double>(l))));
      g.push_back(v);
    }
    p.grads.push_back(g);
  }
  for (auto& x : p.x0)
    for (auto& v : x) v = static_cast<double>(static_cast<float>(v));
  write_leaves(params.buffer(), p.x0);
  auto s = op::setup(op::OptimiserChain{op::ClipNorm{50.0}, op::Adam{0.01}}, params);
  for (int t = 0; t < steps; ++t) {
    write_leaves(grads.buffer(), p.grads[t]);
    op::update(s, params, grads);
  }
  const auto ref = run_reference({ref_clipnorm(50.0, 2), ref_adam(0.01, 0.9, 0.999, 1e-8)}, p);
  double e = 0;
  const auto got = read_leaves(params.buffer());
  for (std::size_t l = 0; l < nl; ++l)
    for (std::size_t i = 0; i < got[l].size(); ++i)
      e = std::max(e, std::abs(got[l][i] - ref.back()[l][i]));
  report("ClipNorm+Adam, 190333 parameters (float)", e);
  CHECK(e < 1e-6);
}
