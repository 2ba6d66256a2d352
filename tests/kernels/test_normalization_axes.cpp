// Tests for the normalization kernels' channel dimension (lux::channel_dim), the biased
// running-variance estimator (lux::running_variance::biased) and layernorm over an arbitrary set
// of dimensions (lux::dim_set): a float64 reference written here from the definitions (every
// element's statistics group computed from its multi-index, nothing shared with the kernels),
// generic vs looped at 1-3 threads, the default channel dimension against an explicit one, and
// central finite differences in double for every backward.
//
// GCC 12 reports a false -Wmaybe-uninitialized inside its AVX-512 intrinsics wherever xsimd's
// tanh/exp are instantiated (GCC PR 105593); see tests/core/test_activations.cpp.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <lux/kernels/normalization.hpp>
#include <map>
#include <string>
#include <vector>

#include "support/check.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;
using lux_test::dot;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using vec = std::vector<double>;

template <class T>
constexpr double fwd_tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
template <class T>
constexpr double sum_tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;

template <class T, std::size_t N>
Tensor<T, N> normal_tensor(const shape_t<N>& shape, std::uint64_t seed, double mean = 0,
                           double sd = 1) {
  Tensor<T, N> t(shape);
  const lux::rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i)
    t[i] = static_cast<T>(mean + sd * r.normal_at<double>(static_cast<std::uint64_t>(i)));
  return t;
}

template <class A>
vec to_vec(const A& a) {
  vec v(static_cast<std::size_t>(a.numel()));
  for (index_t i = 0; i < a.numel(); ++i) v[i] = static_cast<double>(a.data()[i]);
  return v;
}
double rel_err(const vec& a, const vec& ref) {
  if (a.size() != ref.size()) return INFINITY;
  double d = 0, s = 1e-300;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(a[i] - ref[i]));
    s = std::max(s, std::abs(ref[i]));
  }
  return d / s;
}

/// Column-major multi-index of linear index i.
std::vector<index_t> multi_index(index_t i, const std::vector<index_t>& shape) {
  std::vector<index_t> idx(shape.size());
  for (std::size_t d = 0; d < shape.size(); ++d) {
    idx[d] = i % shape[d];
    i /= shape[d];
  }
  return idx;
}

enum class kind { batch, group, instance };

/// The float64 reference of batchnorm / groupnorm / instancenorm with the channels at dimension
/// k and the batch last: every element's statistics key is computed from its multi-index.
struct channel_reference {
  vec y;
  std::map<index_t, double> mean, var;  // per statistics key
  vec running_mean, running_var;
};
template <class F>
channel_reference ref_channel(const vec& x, const std::vector<index_t>& shape, index_t k, kind kd,
                              index_t G, const vec& gamma, const vec& beta, double eps, F f,
                              const vec& rm = {}, const vec& rv = {}, double momentum = 0,
                              bool unbiased = true) {
  const index_t N = static_cast<index_t>(shape.size()), C = shape[k], B = shape[N - 1];
  auto key = [&](index_t i) {
    const auto idx = multi_index(i, shape);
    const index_t c = idx[k], b = idx[N - 1];
    switch (kd) {
      case kind::batch:
        return c;
      case kind::instance:
        return c + C * b;
      default:
        return c / (C / G) + G * b;
    }
  };
  std::map<index_t, double> sum, cnt;
  for (std::size_t i = 0; i < x.size(); ++i) sum[key(i)] += x[i], cnt[key(i)] += 1;
  channel_reference r;
  for (auto& [q, s] : sum) r.mean[q] = s / cnt[q];
  std::map<index_t, double> ss;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = x[i] - r.mean[key(i)];
    ss[key(i)] += d * d;
  }
  for (auto& [q, s] : ss) r.var[q] = s / cnt[q];
  r.y.resize(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const index_t q = key(i), c = multi_index(i, shape)[k];
    const double g = gamma.empty() ? 1 : gamma[c], b = beta.empty() ? 0 : beta[c];
    r.y[i] = f((x[i] - r.mean[q]) / std::sqrt(r.var[q] + eps) * g + b);
  }
  if (!rm.empty()) {  // the running statistics after one training step
    r.running_mean.resize(C);
    r.running_var.resize(C);
    const index_t samples = kd == kind::batch ? 1 : B;
    const double n = static_cast<double>(x.size()) / static_cast<double>(C * samples);
    for (index_t c = 0; c < C; ++c) {
      double mu = 0, v = 0;
      for (index_t b = 0; b < samples; ++b) {
        const index_t q = kd == kind::batch ? c : c + C * b;
        mu += r.mean[q] / static_cast<double>(samples);
        v += r.var[q] / static_cast<double>(samples);
      }
      r.running_mean[c] = (1 - momentum) * rm[c] + momentum * mu;
      r.running_var[c] = (1 - momentum) * rv[c] + momentum * (unbiased ? n / (n - 1) : 1.0) * v;
    }
  }
  return r;
}

/// The float64 reference of layernorm over the dimensions in `dims`, with scale/bias of shape
/// `pshape` (x's rank, sizes 1 or x's) broadcast against x.
vec ref_layernorm_set(const vec& x, const std::vector<index_t>& shape, const std::vector<bool>& in,
                      const vec& gamma, const vec& beta, const std::vector<index_t>& pshape,
                      double eps) {
  auto key = [&](index_t i) {  // linear index over the dimensions not in the set
    const auto idx = multi_index(i, shape);
    index_t q = 0, stride = 1;
    for (std::size_t d = 0; d < shape.size(); ++d)
      if (!in[d]) q += idx[d] * stride, stride *= shape[d];
    return q;
  };
  auto param = [&](index_t i) {
    const auto idx = multi_index(i, shape);
    index_t p = 0, stride = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (pshape[d] != 1) p += idx[d] * stride;
      stride *= pshape[d];
    }
    return p;
  };
  std::map<index_t, double> sum, cnt, ss;
  for (std::size_t i = 0; i < x.size(); ++i) sum[key(i)] += x[i], cnt[key(i)] += 1;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = x[i] - sum[key(i)] / cnt[key(i)];
    ss[key(i)] += d * d;
  }
  vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const index_t q = key(i);
    const double mu = sum[q] / cnt[q], v = ss[q] / cnt[q];
    const double g = gamma.empty() ? 1 : gamma[param(i)], b = beta.empty() ? 0 : beta[param(i)];
    y[i] = (x[i] - mu) / std::sqrt(v + eps) * g + b;
  }
  return y;
}

template <std::size_t N>
std::vector<index_t> dims_of(const shape_t<N>& s) {
  return std::vector<index_t>(s.begin(), s.end());
}

struct thread_count_guard {
#if defined(_OPENMP)
  int saved = omp_get_max_threads();
  explicit thread_count_guard(int n) { omp_set_num_threads(n); }
  ~thread_count_guard() { omp_set_num_threads(saved); }
#else
  explicit thread_count_guard(int) {}
#endif
  thread_count_guard(const thread_count_guard&) = delete;
  thread_count_guard& operator=(const thread_count_guard&) = delete;
};

template <class Fn>
void for_each_mode(Fn&& fn) {
  fn(lux::generic_op{});
  fn(lux::looped_op{});
}

/// x with dimension k moved to position N−2 (the others keep their order), as a fresh tensor.
template <class T, std::size_t N>
Tensor<T, N> move_dim_to_penultimate(const Tensor<T, N>& x, std::size_t k) {
  std::array<std::size_t, N> perm{};
  std::size_t j = 0;
  for (std::size_t d = 0; d + 1 < N; ++d)
    if (d != k) perm[j++] = d;
  perm[N - 2] = k;
  perm[N - 1] = N - 1;
  shape_t<N> ps;
  for (std::size_t d = 0; d < N; ++d) ps[d] = x.shape()[perm[d]];
  Tensor<T, N> out(ps);
  for (index_t i = 0; i < out.numel(); ++i) {
    const auto pidx = multi_index(i, dims_of(ps));
    std::array<index_t, N> idx{};
    for (std::size_t d = 0; d < N; ++d) idx[perm[d]] = pidx[d];
    index_t src = 0, stride = 1;
    for (std::size_t d = 0; d < N; ++d) src += idx[d] * stride, stride *= x.shape()[d];
    out[i] = x[src];
  }
  return out;
}

}  // namespace

// =================================================================================================
// Forward against the float64 reference, every channel dimension, both modes, 1-3 threads
// =================================================================================================
TEMPLATE_TEST_CASE("channel_dim: batchnorm, groupnorm and instancenorm match a float64 reference",
                   "[normalization][channel_dim]", float, double) {
  using T = TestType;
  const int threads = GENERATE(1, 2, 3);
  const thread_count_guard guard(threads);
  // (C, W, H, B) channels first; channels in the middle; B large enough that the looped mode
  // splits samples among threads, and B = 2 where each sample uses the threads.
  const std::vector<shape_t<4>> shapes = {
      {8, 5, 3, 2}, {6, 7, 1, 40}, {3, 4, 6, 3}, {12, 33, 2, 2}};
  std::uint64_t seed = 7000;
  for (const auto& shape : shapes) {
    for (std::size_t k = 0; k < 3; ++k) {
      seed += 10;
      const auto x = normal_tensor<T>(shape, seed, 0.5, 2.0);
      const index_t C = shape[k];
      const auto g = random_tensor<T, 1>(shape_t<1>{C}, seed + 1, 0.5, 1.5);
      const auto b = random_tensor<T, 1>(shape_t<1>{C}, seed + 2, -1, 1);
      const auto rm = random_tensor<T, 1>(shape_t<1>{C}, seed + 3, -1, 1);
      const auto rv = random_tensor<T, 1>(shape_t<1>{C}, seed + 4, 0.5, 2);
      const double eps = 1e-5, m = 0.25;
      const lux::channel_dim cd{static_cast<index_t>(k)};
      const auto xs = dims_of(shape);
      const auto id = [](double v) { return v; };
      for_each_mode([&](auto mode) {
        CAPTURE(shape, k, threads, mode.name);
        for (auto est : {lux::running_variance::unbiased, lux::running_variance::biased}) {
          const bool unbiased = est == lux::running_variance::unbiased;
          CAPTURE(unbiased);
          const auto r =
              lux::batchnorm(mode, x, g, b, rm, rv, true, lux::identity{}, T(m), T(eps), cd, est);
          const auto ref = ref_channel(to_vec(x), xs, k, kind::batch, 1, to_vec(g), to_vec(b), eps,
                                       id, to_vec(rm), to_vec(rv), m, unbiased);
          CHECK(rel_err(to_vec(r.y), ref.y) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(r.running_mean), ref.running_mean) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(r.running_var), ref.running_var) <= fwd_tol<T>);
          const auto ri = lux::instancenorm(mode, x, g, b, rm, rv, true, lux::identity{}, T(m),
                                            T(eps), cd, est);
          const auto refi = ref_channel(to_vec(x), xs, k, kind::instance, 1, to_vec(g), to_vec(b),
                                        eps, id, to_vec(rm), to_vec(rv), m, unbiased);
          CHECK(rel_err(to_vec(ri.y), refi.y) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(ri.running_mean), refi.running_mean) <= fwd_tol<T>);
          CHECK(rel_err(to_vec(ri.running_var), refi.running_var) <= fwd_tol<T>);
        }
        // Inference with running statistics: they normalize, per channel.
        const auto re =
            lux::instancenorm(mode, x, g, b, rm, rv, false, lux::relu{}, T(m), T(eps), cd);
        vec want(static_cast<std::size_t>(x.numel()));
        for (index_t i = 0; i < x.numel(); ++i) {
          const index_t c = multi_index(i, xs)[k];
          want[i] = std::max(
              0.0, (double(x[i]) - rm[c]) / std::sqrt(double(rv[c]) + eps) * g[c] + double(b[c]));
        }
        CHECK(rel_err(to_vec(re.y), want) <= fwd_tol<T>);
        for (index_t G : {index_t{1}, index_t{C / 2 > 0 && C % 2 == 0 ? 2 : 1}, C}) {
          CAPTURE(G);
          const auto rg = lux::groupnorm(mode, x, g, b, G, lux::tanh_{}, T(eps), cd);
          const auto refg = ref_channel(to_vec(x), xs, k, kind::group, G, to_vec(g), to_vec(b), eps,
                                        [](double v) { return std::tanh(v); });
          CHECK(rel_err(to_vec(rg.y), refg.y) <= fwd_tol<T>);
          vec mean;
          for (const auto& [q, mu] : refg.mean) mean.push_back(mu);
          CHECK(rel_err(to_vec(rg.saved.mean), mean) <= fwd_tol<T>);
        }
      });
    }
  }
}

TEST_CASE("channel_dim: batchnorm over the last dimension and the (features, batch) matrix",
          "[normalization][channel_dim]") {
  const auto x = normal_tensor<double>(shape_t<3>{4, 5, 6}, 7100);
  const auto id = [](double v) { return v; };
  for_each_mode([&](auto mode) {
    // channels last (k = N−1): statistics over everything before.
    const auto r = lux::batchnorm(mode, x, lux::none, lux::none, lux::none, lux::none, true,
                                  lux::identity{}, 0.1, 1e-5, lux::channel_dim{2});
    const auto ref = ref_channel(to_vec(x), {4, 5, 6}, 2, kind::batch, 1, {}, {}, 1e-5, id);
    CHECK(rel_err(to_vec(r.y), ref.y) <= 1e-12);
    // channel_dim{N−2} is the default.
    const auto d1 = lux::batchnorm(mode, x, lux::none, lux::none, lux::none, lux::none, true);
    const auto d2 =
        lux::batchnorm(mode, x, lux::none, lux::none, lux::none, lux::none, true, lux::identity{},
                       0.1, lux::default_norm_epsilon<double>(), lux::channel_dim{1});
    CHECK(to_vec(d1.y) == to_vec(d2.y));
  });
}

// =================================================================================================
// An explicit channel dimension equals the default one on x with that dimension moved to N−2
// =================================================================================================
TEMPLATE_TEST_CASE("channel_dim: equals the default channel dimension on permuted data",
                   "[normalization][channel_dim]", float, double) {
  using T = TestType;
  const shape_t<4> shape{16, 9, 5, 3};  // channels first: (C, W, H, B)
  const auto x = normal_tensor<T>(shape, 7200, 1.0, 3.0);
  const auto xp = move_dim_to_penultimate(x, 0);  // (W, H, C, B)
  const auto g = random_tensor<T, 1>(shape_t<1>{16}, 7201, 0.5, 1.5);
  const auto b = random_tensor<T, 1>(shape_t<1>{16}, 7202, -1, 1);
  const auto dy = normal_tensor<T>(shape, 7203);
  const auto dyp = move_dim_to_penultimate(dy, 0);
  const lux::channel_dim first{0};
  for_each_mode([&](auto mode) {
    CAPTURE(mode.name);
    auto check = [&](const auto& r, const auto& rp, const auto& d, const auto& dp) {
      CHECK(rel_err(to_vec(move_dim_to_penultimate(r.y, 0)), to_vec(rp.y)) <= fwd_tol<T>);
      CHECK(rel_err(to_vec(r.saved.mean), to_vec(rp.saved.mean)) <= fwd_tol<T>);
      CHECK(rel_err(to_vec(r.saved.inv_std), to_vec(rp.saved.inv_std)) <= fwd_tol<T>);
      CHECK(rel_err(to_vec(move_dim_to_penultimate(d.dx, 0)), to_vec(dp.dx)) <= sum_tol<T>);
      CHECK(rel_err(to_vec(d.dscale), to_vec(dp.dscale)) <= sum_tol<T>);
      CHECK(rel_err(to_vec(d.dbias), to_vec(dp.dbias)) <= sum_tol<T>);
    };
    {
      const auto r = lux::batchnorm(mode, x, g, b, lux::none, lux::none, true, lux::gelu{}, T(0.1),
                                    T(1e-5), first);
      const auto rp =
          lux::batchnorm(mode, xp, g, b, lux::none, lux::none, true, lux::gelu{}, T(0.1), T(1e-5));
      check(r, rp, lux::batchnorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::gelu{}, first),
            lux::batchnorm_backward(mode, dyp, xp, rp.y, g, b, rp.saved, lux::gelu{}));
    }
    for (index_t G : {1, 4, 16}) {
      CAPTURE(G);
      const auto r = lux::groupnorm(mode, x, g, b, G, lux::gelu{}, T(1e-5), first);
      const auto rp = lux::groupnorm(mode, xp, g, b, G, lux::gelu{}, T(1e-5));
      check(r, rp, lux::groupnorm_backward(mode, dy, x, r.y, g, b, G, r.saved, lux::gelu{}, first),
            lux::groupnorm_backward(mode, dyp, xp, rp.y, g, b, G, rp.saved, lux::gelu{}));
    }
    {
      const auto r = lux::instancenorm(mode, x, g, b, true, lux::tanh_{}, T(1e-5), first);
      const auto rp = lux::instancenorm(mode, xp, g, b, true, lux::tanh_{}, T(1e-5));
      check(r, rp, lux::instancenorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::tanh_{}, first),
            lux::instancenorm_backward(mode, dyp, xp, rp.y, g, b, rp.saved, lux::tanh_{}));
    }
  });
}

// =================================================================================================
// Generic and looped agree on the channels-first paths, forward and backward, at 1-3 threads
// =================================================================================================
TEMPLATE_TEST_CASE("channel_dim: generic and looped modes agree forward and backward",
                   "[normalization][channel_dim]", float, double) {
  using T = TestType;
  const int threads = GENERATE(1, 2, 3);
  const thread_count_guard guard(threads);
  CAPTURE(threads);
  // Sample counts on both sides of the looped mode's split between samples and within them.
  for (const shape_t<4>& shape : {shape_t<4>{32, 7, 6, 2}, shape_t<4>{24, 3, 2, 50}}) {
    CAPTURE(shape);
    const index_t C = shape[0];
    const auto x = normal_tensor<T>(shape, 7300, -0.5, 2.0);
    const auto dy = normal_tensor<T>(shape, 7301);
    const auto g = random_tensor<T, 1>(shape_t<1>{C}, 7302, 0.5, 1.5);
    const auto b = random_tensor<T, 1>(shape_t<1>{C}, 7303, -1, 1);
    const lux::channel_dim cd{0};
    auto both = [&](auto run) {
      const auto gen = run(lux::generic_op{});
      const auto loo = run(lux::looped_op{});
      for (std::size_t i = 0; i < gen.size(); ++i) {
        CAPTURE(i);
        CHECK(rel_err(loo[i], gen[i]) <= (i >= 4 ? sum_tol<T> : fwd_tol<T>));
      }
    };
    for (index_t G : {index_t{1}, index_t{4}, C}) {
      CAPTURE(G);
      both([&](auto mode) {
        const auto r = lux::groupnorm(mode, x, g, b, G, lux::gelu{}, T(1e-5), cd);
        const auto d = lux::groupnorm_backward(mode, dy, x, r.y, g, b, G, r.saved, lux::gelu{}, cd);
        return std::vector<vec>{to_vec(r.y),  to_vec(r.saved.mean), to_vec(r.saved.inv_std),
                                to_vec(d.dx), to_vec(d.dscale),     to_vec(d.dbias)};
      });
    }
    both([&](auto mode) {
      const auto r = lux::instancenorm(mode, x, g, b, true, lux::identity{}, T(1e-5), cd);
      const auto d =
          lux::instancenorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::identity{}, cd);
      return std::vector<vec>{to_vec(r.y),  to_vec(r.saved.mean), to_vec(r.saved.inv_std),
                              to_vec(d.dx), to_vec(d.dscale),     to_vec(d.dbias)};
    });
    both([&](auto mode) {
      const auto r = lux::batchnorm(mode, x, g, b, lux::none, lux::none, true, lux::tanh_{}, T(0.1),
                                    T(1e-5), cd);
      const auto d = lux::batchnorm_backward(mode, dy, x, r.y, g, b, r.saved, lux::tanh_{}, cd);
      return std::vector<vec>{to_vec(r.y),  to_vec(r.saved.mean), to_vec(r.saved.inv_std),
                              to_vec(d.dx), to_vec(d.dscale),     to_vec(d.dbias)};
    });
  }
}

// =================================================================================================
// Finite differences (double) for the backward with a channel dimension
// =================================================================================================
namespace {
template <std::size_t N, class Fwd, class Bwd>
void check_fd(const Tensor<double, N>& x, const Tensor<double, 1>& g, const Tensor<double, 1>& b,
              Fwd&& fwd, Bwd&& bwd, std::uint64_t seed) {
  const auto v = random_tensor<double, N>(x.shape(), seed);
  const auto r = fwd(x, g, b);
  const auto d = bwd(v, x, r, g, b);
  const auto nx = lux_test::numerical_gradient<N>(
      [&](const Tensor<double, N>& xp) { return dot(fwd(xp, g, b).y, v); }, x);
  CHECK(max_rel_err(d.dx, nx) <= 1e-6);
  const auto ng = lux_test::numerical_gradient<1>(
      [&](const Tensor<double, 1>& gp) { return dot(fwd(x, gp, b).y, v); }, g);
  CHECK(max_rel_err(d.dscale, ng) <= 1e-6);
  const auto nb = lux_test::numerical_gradient<1>(
      [&](const Tensor<double, 1>& bp) { return dot(fwd(x, g, bp).y, v); }, b);
  CHECK(max_rel_err(d.dbias, nb) <= 1e-6);
}
}  // namespace

TEST_CASE("channel_dim: gradients match finite differences", "[normalization][channel_dim][grad]") {
  const shape_t<4> shape{4, 3, 2, 3};
  const auto x = normal_tensor<double>(shape, 7400, 0.5, 1.5);
  for (std::size_t k : {0u, 1u}) {
    const index_t C = shape[k];
    const auto g = random_tensor<double, 1>(shape_t<1>{C}, 7401, 0.5, 1.5);
    const auto b = random_tensor<double, 1>(shape_t<1>{C}, 7402, -0.5, 0.5);
    const auto rm = random_tensor<double, 1>(shape_t<1>{C}, 7403, -1, 1);
    const auto rv = random_tensor<double, 1>(shape_t<1>{C}, 7404, 0.5, 2);
    const lux::channel_dim cd{static_cast<index_t>(k)};
    for_each_mode([&](auto mode) {
      CAPTURE(k, mode.name);
      for (bool training : {true, false}) {
        CAPTURE(training);
        check_fd(
            x, g, b,
            [&](const auto& xx, const auto& s, const auto& bb) {
              return lux::batchnorm(mode, xx, s, bb, rm, rv, training, lux::gelu{}, 0.1, 1e-5, cd);
            },
            [&](const auto& v, const auto& xx, const auto& r, const auto& s, const auto& bb) {
              return lux::batchnorm_backward(mode, v, xx, r.y, s, bb, r.saved, lux::gelu{}, cd);
            },
            7405);
        check_fd(
            x, g, b,
            [&](const auto& xx, const auto& s, const auto& bb) {
              return lux::instancenorm(mode, xx, s, bb, rm, rv, training, lux::tanh_{}, 0.1, 1e-5,
                                       cd);
            },
            [&](const auto& v, const auto& xx, const auto& r, const auto& s, const auto& bb) {
              return lux::instancenorm_backward(mode, v, xx, r.y, s, bb, r.saved, lux::tanh_{}, cd);
            },
            7406);
      }
      for (index_t G : {index_t{1}, C}) {
        CAPTURE(G);
        check_fd(
            x, g, b,
            [&](const auto& xx, const auto& s, const auto& bb) {
              return lux::groupnorm(mode, xx, s, bb, G, lux::gelu{}, 1e-5, cd);
            },
            [&](const auto& v, const auto& xx, const auto& r, const auto& s, const auto& bb) {
              return lux::groupnorm_backward(mode, v, xx, r.y, s, bb, G, r.saved, lux::gelu{}, cd);
            },
            7407);
      }
    });
  }
}

// =================================================================================================
// layernorm over arbitrary sets of dimensions
// =================================================================================================
TEMPLATE_TEST_CASE("dim_set: layernorm over any set of dimensions matches a float64 reference",
                   "[normalization][layernorm][dim_set]", float, double) {
  using T = TestType;
  const int threads = GENERATE(1, 2);
  const thread_count_guard guard(threads);
  const shape_t<4> shape{5, 4, 3, 6};
  const auto x = normal_tensor<T>(shape, 7500, 2.0, 1.5);
  const auto xs = dims_of(shape);
  const std::vector<std::vector<index_t>> sets = {{0},    {1},       {3}, {0, 2},       {1, 3},
                                                  {1, 2}, {0, 1, 3}, {},  {0, 1, 2, 3}, {2, 0}};
  for (const auto& set : sets) {
    lux::dim_set ds{std::initializer_list<int>{}};
    std::vector<bool> in(4, false);
    for (index_t d : set) ds.insert(static_cast<int>(d)), in[d] = true;
    // scale/bias vary along the normalized dimensions (Lux's and PyTorch's affine shape).
    shape_t<4> ps{1, 1, 1, 1};
    for (index_t d : set) ps[d] = shape[d];
    const auto g = random_tensor<T, 4>(ps, 7501, 0.5, 1.5);
    const auto b = random_tensor<T, 4>(ps, 7502, -1, 1);
    const auto want = ref_layernorm_set(to_vec(x), xs, in, to_vec(g), to_vec(b), dims_of(ps), 1e-5);
    for_each_mode([&](auto mode) {
      CAPTURE(set, mode.name, threads);
      const auto r = lux::layernorm(mode, x, g, b, lux::identity{}, ds, T(1e-5));
      CHECK(rel_err(to_vec(r.y), want) <= fwd_tol<T>);
      // Without scale/bias, and with a scale of lower rank (trailing sizes dropped).
      const auto r0 = lux::layernorm(mode, x, lux::none, lux::none, lux::identity{}, ds, T(1e-5));
      CHECK(rel_err(to_vec(r0.y),
                    ref_layernorm_set(to_vec(x), xs, in, {}, {}, dims_of(ps), 1e-5)) <= fwd_tol<T>);
    });
  }
  // A leading set is exactly leading_dims.
  const auto a = lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::dim_set{0, 1});
  const auto c = lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::leading_dims{2});
  CHECK(to_vec(a.y) == to_vec(c.y));
  CHECK(to_vec(a.saved.mean) == to_vec(c.saved.mean));
  // lux::all_dims is the whole array (Lux's dims = Colon()).
  const auto w = lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::all_dims);
  const auto wl = lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::leading_dims{4});
  CHECK(to_vec(w.y) == to_vec(wl.y));
}

TEST_CASE("dim_set: layernorm gradients match finite differences",
          "[normalization][layernorm][dim_set][grad]") {
  const shape_t<3> shape{3, 4, 5};
  const auto x = normal_tensor<double>(shape, 7600, 0.5, 1.5);
  const auto v = random_tensor<double, 3>(shape, 7601);
  for (const lux::dim_set& ds : {lux::dim_set{1}, lux::dim_set{0, 2}, lux::dim_set{2}}) {
    shape_t<3> ps{1, 1, 1};
    for (std::size_t d = 0; d < 3; ++d)
      if (ds.contains(d)) ps[d] = shape[d];
    // A rank-2 bias (the trailing size-1 dimension dropped where possible) exercises the
    // rank handling of the permutation.
    const auto g = random_tensor<double, 3>(ps, 7602, 0.5, 1.5);
    const auto b = random_tensor<double, 3>(ps, 7603, -0.5, 0.5);
    for_each_mode([&](auto mode) {
      CAPTURE(ps, mode.name);
      auto fwd = [&](const auto& xx, const auto& s, const auto& bb) {
        return lux::layernorm(mode, xx, s, bb, lux::gelu{}, ds, 1e-5);
      };
      const auto r = fwd(x, g, b);
      const auto d = lux::layernorm_backward(mode, v, x, r.y, g, b, r.saved, lux::gelu{}, ds);
      REQUIRE(d.dscale.shape() == ps);
      CHECK(max_rel_err(d.dx,
                        lux_test::numerical_gradient<3>(
                            [&](const Tensor<double, 3>& xp) { return dot(fwd(xp, g, b).y, v); },
                            x)) <= 1e-6);
      CHECK(max_rel_err(d.dscale,
                        lux_test::numerical_gradient<3>(
                            [&](const Tensor<double, 3>& gp) { return dot(fwd(x, gp, b).y, v); },
                            g)) <= 1e-6);
      CHECK(max_rel_err(d.dbias,
                        lux_test::numerical_gradient<3>(
                            [&](const Tensor<double, 3>& bp) { return dot(fwd(x, g, bp).y, v); },
                            b)) <= 1e-6);
    });
  }
}

// =================================================================================================
// Errors
// =================================================================================================
TEST_CASE("channel_dim and dim_set: out-of-range dimensions are argument errors",
          "[normalization][channel_dim][dim_set]") {
  const auto x = normal_tensor<float>(shape_t<3>{4, 5, 6}, 7700);
  const auto msg = [](auto&& f) {
    try {
      f();
    } catch (const lux::argument_error& e) {
      return std::string(e.what());
    }
    return std::string("no argument_error");
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(msg([&] {
               (void)lux::groupnorm(x, lux::none, lux::none, 1, lux::identity{}, 1e-5f,
                                    lux::channel_dim{2});
             }),
             Contains("groupnorm: channel_dim 2 out of range"));
  CHECK_THAT(msg([&] {
               (void)lux::instancenorm(x, lux::none, lux::none, true, lux::identity{}, 1e-5f,
                                       lux::channel_dim{-2});
             }),
             Contains("instancenorm: channel_dim -2 out of range"));
  CHECK_THAT(msg([&] {
               (void)lux::batchnorm(x, lux::none, lux::none, lux::none, lux::none, true,
                                    lux::identity{}, 0.1f, 1e-5f, lux::channel_dim{3});
             }),
             Contains("batchnorm: channel_dim 3 out of range"));
  CHECK_THAT(msg([&] {
               (void)lux::groupnorm(x, lux::none, lux::none, 3, lux::identity{}, 1e-5f,
                                    lux::channel_dim{0});
             }),
             Contains("not divisible by groups = 3"));
  CHECK_THAT(msg([&] {
               (void)lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::dim_set{0, 3});
             }),
             Contains("layernorm: dims contains 3, but x has rank 3"));
  CHECK_THAT(msg([&] {
               (void)lux::layernorm(x, lux::none, lux::none, lux::identity{}, lux::dim_set{1, 64});
             }),
             Contains("dims contains 64"));
  // A scale that does not broadcast on a permuted set is a shape_error naming x's own shape.
  const auto bad = random_tensor<float, 3>(shape_t<3>{1, 5, 2}, 7701);
  CHECK_THROWS_AS(lux::layernorm(x, bad, lux::none, lux::identity{}, lux::dim_set{1}),
                  lux::shape_error);
  // The biased estimator allows a running-statistics update from one value per channel.
  const auto one = normal_tensor<float>(shape_t<2>{3, 1}, 7702);
  const Tensor<float, 1> rm(shape_t<1>{3}, 0.f), rv(shape_t<1>{3}, 1.f);
  CHECK_THROWS_AS(lux::batchnorm(one, lux::none, lux::none, rm, rv, true), lux::argument_error);
  const auto r = lux::batchnorm(one, lux::none, lux::none, rm, rv, true, lux::identity{}, 0.5f,
                                1e-5f, lux::channel_dim{}, lux::running_variance::biased);
  for (index_t c = 0; c < 3; ++c) {
    CHECK(r.running_mean[c] == Approx(0.5 * one[c]));
    CHECK(r.running_var[c] == Approx(0.5));  // (1 − m)·1 + m·0
  }
}
