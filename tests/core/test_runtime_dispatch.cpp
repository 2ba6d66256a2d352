// Run-time instruction-set dispatch (lux/core/dispatch.hpp). This translation unit is compiled
// with the compiler's DEFAULT flags (no -march: x86-64's SSE2 baseline), as a find_package user's
// code is, and linked with libluxcpp_dispatch. For every looped kernel it checks, at each level
// this CPU supports (forced with lux::dispatch::set_max_level):
//   * that the kernel ran where it should: the precompiled AVX2 / AVX-512 copy (its call counter
//     moves, no other level's does) or, at level::baseline, this translation unit's own SSE2 code
//     (no counter moves);
//   * that it computed what the generic implementation (plain scalar loops) computes from the
//     same inputs.
#include <catch2/catch.hpp>

#include <lux/kernels/activation.hpp>
#include <lux/kernels/batched_matmul.hpp>
#include <lux/kernels/bias_activation.hpp>
#include <lux/kernels/conv.hpp>
#include <lux/kernels/dense.hpp>
#include <lux/kernels/dropout.hpp>
#include <lux/kernels/embedding.hpp>
#include <lux/kernels/normalization.hpp>
#include <lux/kernels/pooling.hpp>
#include <lux/kernels/softmax.hpp>
#include <lux/kernels/upsample.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#if !defined(LUXCPP_RUNTIME_DISPATCH)
#error "test_runtime_dispatch.cpp is built against luxcpp::luxcpp with libluxcpp_dispatch"
#endif
#if LUX_ISA_DISPATCH_RANK != 0
#error "test_runtime_dispatch.cpp must be compiled without -march/-mavx* flags"
#endif

namespace {
using lux::index_t;
using lux::shape_t;
namespace dispatch = lux::dispatch;
using level = dispatch::level;

// What this CPU supports, asked independently of the library.
level cpu_level() {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  return avx512 ? level::avx512 : avx2 ? level::avx2 : level::baseline;
}

std::vector<level> levels() {
  std::vector<level> ls{level::baseline};
  if (cpu_level() >= level::avx2) ls.push_back(level::avx2);
  if (cpu_level() >= level::avx512) ls.push_back(level::avx512);
  return ls;
}

std::array<std::uint64_t, 3> counters() {
  return {dispatch::calls(level::baseline), dispatch::calls(level::avx2),
          dispatch::calls(level::avx512)};
}

template <class T>
std::vector<T> random_vec(index_t n, unsigned seed, double lo = -2, double hi = 2) {
  std::vector<T> v(static_cast<std::size_t>(n));
  std::uint64_t s = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (auto& e : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<T>(lo + (hi - lo) * static_cast<double>(s >> 11) * 0x1p-53);
  }
  return v;
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-11;
}

// Runs `run(mode)` (returns every output, concatenated) with the generic implementation, then
// with the looped one at every level, checking where it ran and what it computed.
template <class T, class Run>
void check_kernel(const std::string& name, Run run) {
  const std::vector<T> ref = run(lux::generic_op{});
  double scale = 1;
  for (T v : ref) scale = std::max(scale, std::abs(static_cast<double>(v)));
  for (level l : levels()) {
    dispatch::set_max_level(l);
    const auto before = counters();
    const std::vector<T> out = run(lux::looped_op{});
    const auto after = counters();
    INFO(name << " (" << (std::is_same_v<T, float> ? "float" : "double") << ") at level "
              << dispatch::name(l));
    for (int k = 1; k < 3; ++k) {
      const auto moved = after[static_cast<std::size_t>(k)] - before[static_cast<std::size_t>(k)];
      INFO("counter of level " << dispatch::name(static_cast<level>(k)));
      if (k == static_cast<int>(l))
        CHECK(moved >= 1);
      else
        CHECK(moved == 0);
    }
    REQUIRE(out.size() == ref.size());
    double err = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double d = std::abs(static_cast<double>(out[i]) - static_cast<double>(ref[i]));
      err = std::isnan(d) ? (std::isnan(static_cast<double>(ref[i])) ? err : 1e300)
                          : std::max(err, d);
    }
    CHECK(err <= tolerance<T>() * scale);
  }
  dispatch::set_max_level(level::avx512);
}

template <class T>
std::vector<T> cat(std::initializer_list<const std::vector<T>*> parts) {
  std::vector<T> all;
  for (const auto* p : parts) all.insert(all.end(), p->begin(), p->end());
  return all;
}

// --- elementwise ---------------------------------------------------------------------------------
template <class T, class... Fs>
void activations(std::tuple<Fs...>*) {
  const index_t n = 1000;
  const auto x = random_vec<T>(n, 1, -6, 6), dy = random_vec<T>(n, 2);
  (check_kernel<T>(std::string("fast_activation ") + Fs::name,
                   [&](auto mode) {
                     std::vector<T> y(x.size());
                     lux::impl::fast_activation(mode, Fs{}, x.data(), y.data(), n);
                     return y;
                   }),
   ...);
  (check_kernel<T>(std::string("activation_backward ") + Fs::name,
                   [&](auto mode) {
                     std::vector<T> dx(x.size());
                     lux::impl::activation_backward(mode, Fs{}, dy.data(), x.data(), dx.data(), n);
                     return dx;
                   }),
   ...);
}

template <class T>
void elementwise() {
  activations<T>(static_cast<lux::builtin_activations*>(nullptr));
  const index_t inner = 7, C = 5, outer = 3, n = inner * C * outer;
  const auto x = random_vec<T>(n, 3), b = random_vec<T>(C, 4), dy = random_vec<T>(n, 5);
  check_kernel<T>("bias_activation", [&](auto mode) {
    std::vector<T> y(x.size());
    lux::impl::bias_activation(mode, lux::gelu{}, x.data(), b.data(), y.data(), inner, C, outer);
    return y;
  });
  check_kernel<T>("bias_activation_backward", [&](auto mode) {
    std::vector<T> dx(x.size()), db(b.size());
    lux::impl::bias_activation_backward(mode, lux::tanh_{}, dy.data(), x.data(), b.data(),
                                        dx.data(), db.data(), inner, C, outer);
    return cat<T>({&dx, &db});
  });
  check_kernel<T>("conv_bias_activation", [&](auto mode) {
    std::vector<T> y(x.size()), z(x.size());
    lux::impl::conv_bias_activation(mode, lux::swish{}, inner, C, outer, x.data(), b.data(),
                                    y.data(), z.data());
    return cat<T>({&y, &z});
  });
  check_kernel<T>("conv_activation_backward", [&](auto mode) {
    std::vector<T> dz(x.size()), db(b.size());
    lux::impl::conv_activation_backward(mode, lux::swish{}, inner, C, outer, dy.data(), x.data(),
                                        dz.data(), db.data());
    return cat<T>({&dz, &db});
  });
}

// --- dropout ---------------------------------------------------------------------------------------
template <class T>
void dropouts() {
  const index_t n = 999;
  const auto x = random_vec<T>(n, 6);
  const lux::rng r(42);
  check_kernel<T>("dropout", [&](auto mode) {
    std::vector<T> y(x.size()), mask(x.size());
    lux::impl::dropout(mode, r, T(0.3), T(1) / T(0.7), x.data(), y.data(), mask.data(), n);
    return cat<T>({&y, &mask});
  });
  check_kernel<T>("dropout_mask", [&](auto mode) {
    std::vector<T> mask(x.size());
    lux::impl::dropout_mask(mode, r, T(0.5), T(2), mask.data(), n);
    return mask;
  });
  check_kernel<T>("alpha_dropout", [&](auto mode) {
    std::vector<T> y(x.size());
    lux::impl::alpha_dropout(mode, r, T(0.2), T(-1.7), T(1.1), T(0.3), x.data(), y.data(), n);
    return y;
  });
  check_kernel<T>("alpha_dropout_backward", [&](auto mode) {
    std::vector<T> dx(x.size());
    lux::impl::alpha_dropout_backward(mode, r, T(0.2), T(1.1), x.data(), dx.data(), n);
    return dx;
  });
  const shape_t<4> xs{5, 4, 3, 2}, ms{5, 1, 3, 1};
  const auto xb = random_vec<T>(120, 7), m = random_vec<T>(15, 8);
  check_kernel<T>("broadcast_multiply", [&](auto mode) {
    std::vector<T> y(xb.size());
    lux::impl::broadcast_multiply(mode, xb.data(), xs, m.data(), ms, y.data());
    return y;
  });
}

// --- dense, batched matmul ------------------------------------------------------------------------
template <class T>
void gemms() {
  const index_t M = 13, K = 17, N = 11;
  const auto w = random_vec<T>(M * K, 9), x = random_vec<T>(K * N, 10), b = random_vec<T>(M, 11);
  const auto dy = random_vec<T>(M * N, 12), arg = random_vec<T>(M * N, 13);
  using CV = lux::TensorView<const T, 2>;
  using V = lux::TensorView<T, 2>;
  check_kernel<T>("fused_dense_forward", [&](auto mode) {
    std::vector<T> y(static_cast<std::size_t>(M * N)), z(y.size());
    lux::impl::fused_dense_forward(mode, lux::gelu{}, CV(w.data(), {M, K}), CV(x.data(), {K, N}),
                                   b.data(), V(y.data(), {M, N}), z.data());
    return cat<T>({&y, &z});
  });
  check_kernel<T>("fused_dense_backward", [&](auto mode) {
    std::vector<T> dw(w.size()), dx(x.size()), db(b.size());
    lux::impl::fused_dense_backward(mode, lux::relu{}, CV(dy.data(), {M, N}), CV(w.data(), {M, K}),
                                    CV(x.data(), {K, N}), arg.data(), V(dw.data(), {M, K}),
                                    V(dx.data(), {K, N}), db.data());
    return cat<T>({&dw, &dx, &db});
  });
  using CV3 = lux::TensorView<const T, 3>;
  using V3 = lux::TensorView<T, 3>;
  const index_t m = 6, k = 5, n = 7, L = 4;
  const auto a = random_vec<T>(k * m * L, 14), bb = random_vec<T>(k * n, 15);
  const auto dc = random_vec<T>(m * n * L, 16);
  check_kernel<T>("batched_matmul_kernel", [&](auto mode) {
    std::vector<T> c(static_cast<std::size_t>(m * n * L));
    // aᵀ (a stored k×m per slice) times b broadcast over the batch
    lux::impl::batched_matmul_kernel(mode, CV3(a.data(), {k, m, L}), lux::op::transpose,
                                     CV3(bb.data(), {k, n, 1}), lux::op::none,
                                     V3(c.data(), {m, n, L}));
    return c;
  });
  check_kernel<T>("batched_matmul_backward_kernel", [&](auto mode) {
    std::vector<T> da(a.size()), db(bb.size());
    lux::impl::batched_matmul_backward_kernel(mode, CV3(dc.data(), {m, n, L}),
                                              CV3(a.data(), {k, m, L}), lux::op::transpose,
                                              CV3(bb.data(), {k, n, 1}), lux::op::none,
                                              V3(da.data(), {k, m, L}), V3(db.data(), {k, n, 1}));
    return cat<T>({&da, &db});
  });
}

// --- convolution ---------------------------------------------------------------------------------
lux::impl::conv_geometry geometry(index_t c_in, index_t c_out, index_t groups, index_t stride) {
  lux::impl::conv_geometry g;
  g.in = {9, 8, 1};
  g.kernel = {3, 3, 1};
  g.stride = {stride, stride, 1};
  g.pad = {1, 1, 0};
  g.dilation = {1, 1, 1};
  for (std::size_t d = 0; d < 2; ++d) g.out[d] = (g.in[d] + 2 - 3) / stride + 1;
  g.c_in = c_in;
  g.c_out = c_out;
  g.groups = groups;
  g.batch = 2;
  g.flipped = false;
  return g;
}

template <class T>
void convolutions() {
  for (const auto& g : {geometry(4, 6, 1, 1), geometry(4, 6, 2, 2), geometry(6, 6, 6, 1)}) {
    const index_t nx = g.in_pixels() * g.c_in * g.batch, ny = g.out_pixels() * g.c_out * g.batch;
    const index_t nw = g.kernel[0] * g.kernel[1] * (g.c_in / g.groups) * g.c_out;
    const auto x = random_vec<T>(nx, 17), w = random_vec<T>(nw, 18), b = random_vec<T>(g.c_out, 19);
    const auto dy = random_vec<T>(ny, 20), arg = random_vec<T>(ny, 21);
    const std::string tag = " groups " + std::to_string(g.groups);
    check_kernel<T>("conv_forward" + tag, [&](auto mode) {
      std::vector<T> y(static_cast<std::size_t>(ny)), z(y.size());
      lux::impl::conv_forward(mode, g, x.data(), w.data(), b.data(), lux::relu{}, y.data(),
                              z.data());
      return cat<T>({&y, &z});
    });
    check_kernel<T>("conv_backward" + tag, [&](auto mode) {
      std::vector<T> dx(x.size()), dw(w.size()), db(b.size());
      lux::impl::conv_backward(mode, g, lux::gelu{}, dy.data(), arg.data(), x.data(), w.data(),
                               dx.data(), dw.data(), db.data());
      return cat<T>({&dx, &dw, &db});
    });
    check_kernel<T>("conv_backward_data" + tag, [&](auto mode) {
      std::vector<T> dx(x.size());
      lux::impl::conv_backward_data(mode, g, dy.data(), w.data(), dx.data());
      return dx;
    });
    check_kernel<T>("conv_backward_filter" + tag, [&](auto mode) {
      std::vector<T> dw(w.size());
      lux::impl::conv_backward_filter(mode, g, x.data(), dy.data(), dw.data());
      return dw;
    });
    check_kernel<T>("conv_bias_gradient" + tag, [&](auto mode) {
      std::vector<T> db(b.size());
      lux::impl::conv_bias_gradient(mode, g.out_pixels(), g.c_out, g.batch, dy.data(), db.data());
      return db;
    });
    // conv_transpose: g's data gradient; x has the convolution's output size, y its input size.
    const auto bt = random_vec<T>(g.c_in, 22);
    check_kernel<T>("conv_transpose_forward" + tag, [&](auto mode) {
      std::vector<T> y(static_cast<std::size_t>(nx)), z(y.size());
      lux::impl::conv_transpose_forward(mode, g, dy.data(), w.data(), bt.data(), lux::identity{},
                                        y.data(), z.data());
      return y;
    });
  }
}

// --- normalization, softmax ------------------------------------------------------------------------
template <class T>
void normalizations() {
  lux::impl::norm_layout batch_like;  // batchnorm: one group per channel over the batch
  batch_like.S = 12;
  batch_like.C = 5;
  batch_like.B = 3;
  batch_like.across_batch = true;
  lux::impl::norm_layout group_like = batch_like;  // groupnorm: 5 groups... of one channel
  group_like.across_batch = false;
  group_like.C = 6;
  group_like.group_channels = 2;
  lux::impl::norm_layout runs = group_like;  // several runs per (channel, sample)
  runs.S = 4;
  runs.M = 3;
  for (const auto& L : {batch_like, group_like, runs}) {
    const index_t n = L.numel(), G = L.num_groups();
    const auto x = random_vec<T>(n, 23), dy = random_vec<T>(n, 24);
    const auto scale = random_vec<T>(L.C, 25), bias = random_vec<T>(L.C, 26);
    const lux::impl::norm_affine<T> aff{scale.data(), bias.data()};
    const std::string tag = L.across_batch ? " (across batch)" : L.M > 1 ? " (runs)" : " (groups)";
    std::vector<T> y(static_cast<std::size_t>(n)), mean(static_cast<std::size_t>(G)),
        var(mean.size()), inv_std(mean.size());
    lux::impl::normalization_forward(lux::generic_op{}, L, x.data(), y.data(), aff, lux::relu{},
                                     T(1e-5), mean.data(), var.data(), inv_std.data());
    check_kernel<T>("normalization_forward" + tag, [&](auto mode) {
      std::vector<T> yo(y.size()), mo(mean.size()), vo(mean.size()), io(mean.size());
      lux::impl::normalization_forward(mode, L, x.data(), yo.data(), aff, lux::relu{}, T(1e-5),
                                       mo.data(), vo.data(), io.data());
      return cat<T>({&yo, &mo, &vo, &io});
    });
    check_kernel<T>("normalization_apply" + tag, [&](auto mode) {
      std::vector<T> yo(y.size());
      lux::impl::normalization_apply(mode, L, x.data(), yo.data(), aff, lux::gelu{}, mean.data(),
                                     inv_std.data());
      return yo;
    });
    check_kernel<T>("normalization_backward" + tag, [&](auto mode) {
      std::vector<T> dx(x.size()), ds(scale.size()), dbias(bias.size());
      lux::impl::normalization_backward(mode, L, dy.data(), x.data(), y.data(), aff, lux::relu{},
                                        mean.data(), inv_std.data(), true, dx.data(), true,
                                        ds.data(), dbias.data());
      return cat<T>({&dx, &ds, &dbias});
    });
  }
}

template <class T>
void softmaxes() {
  for (const auto& g :
       {lux::impl::softmax_geometry{1, 37, 6}, lux::impl::softmax_geometry{5, 9, 4}}) {
    const index_t n = g.inner * g.n * g.outer;
    const auto x = random_vec<T>(n, 27, -5, 5), dy = random_vec<T>(n, 28);
    const auto dl = random_vec<T>(g.inner * g.outer, 29);
    std::vector<T> y(static_cast<std::size_t>(n)), lse(dl.size());
    lux::impl::softmax_forward(lux::generic_op{}, g, x.data(), y.data());
    lux::impl::logsumexp_forward(lux::generic_op{}, g, x.data(), lse.data());
    const std::string tag = g.inner == 1 ? " (contiguous)" : " (strided)";
    check_kernel<T>("softmax_forward" + tag, [&](auto mode) {
      std::vector<T> o(y.size());
      lux::impl::softmax_forward(mode, g, x.data(), o.data());
      return o;
    });
    check_kernel<T>("logsoftmax_forward" + tag, [&](auto mode) {
      std::vector<T> o(y.size());
      lux::impl::logsoftmax_forward(mode, g, x.data(), o.data());
      return o;
    });
    check_kernel<T>("logsumexp_forward" + tag, [&](auto mode) {
      std::vector<T> o(lse.size());
      lux::impl::logsumexp_forward(mode, g, x.data(), o.data());
      return o;
    });
    check_kernel<T>("softmax_backward" + tag, [&](auto mode) {
      std::vector<T> o(y.size());
      lux::impl::softmax_backward(mode, g, dy.data(), y.data(), o.data());
      return o;
    });
    check_kernel<T>("logsoftmax_backward" + tag, [&](auto mode) {
      std::vector<T> o(y.size());
      lux::impl::logsoftmax_backward(mode, g, dy.data(), y.data(), o.data());
      return o;
    });
    check_kernel<T>("logsumexp_backward" + tag, [&](auto mode) {
      std::vector<T> o(y.size());
      lux::impl::logsumexp_backward(mode, g, dl.data(), x.data(), lse.data(), o.data());
      return o;
    });
  }
}

// --- pooling, upsampling ----------------------------------------------------------------------------
template <class T>
void resampling() {
  lux::impl::pool_geometry g;
  g.in = {9, 8, 1};
  g.window = {3, 2, 1};
  g.stride = {2, 2, 1};
  g.pad_lo = {1, 0, 0};
  g.out = {5, 4, 1};
  g.planes = 6;
  const auto x = random_vec<T>(g.in_plane() * g.planes, 30);
  const auto dy = random_vec<T>(g.out_plane() * g.planes, 31);
  check_kernel<T>("maxpool", [&](auto mode) {
    std::vector<T> y(dy.size());
    std::vector<std::int32_t> argmax(dy.size());
    lux::impl::maxpool(mode, g, x.data(), y.data(), argmax.data());
    for (auto a : argmax) y.push_back(static_cast<T>(a));
    return y;
  });
  // The scatter from a saved argmax (the generic forward's), and its report of a tampered index
  // (returned through the dispatch boundary).
  std::vector<std::int32_t> argmax(dy.size());
  {
    std::vector<T> y(dy.size());
    lux::impl::maxpool(lux::generic_op{}, g, x.data(), y.data(), argmax.data());
  }
  for (std::int64_t bad : {lux::impl::argmax_valid, std::int64_t{-7}, g.in_plane()}) {
    auto tampered = argmax;
    if (bad != lux::impl::argmax_valid) tampered[5] = static_cast<std::int32_t>(bad);
    check_kernel<T>("maxpool_backward", [&](auto mode) {
      std::vector<T> dx(x.size());
      const std::int64_t got =
          lux::impl::maxpool_backward(mode, g, dy.data(), tampered.data(), dx.data());
      CHECK(got == bad);
      return dx;
    });
  }
  check_kernel<T>("meanpool", [&](auto mode) {
    std::vector<T> y(dy.size());
    lux::impl::meanpool(mode, g, x.data(), y.data());
    return y;
  });
  check_kernel<T>("meanpool_backward", [&](auto mode) {
    std::vector<T> dx(x.size());
    lux::impl::meanpool_backward(mode, g, dy.data(), dx.data());
    return dx;
  });

  const shape_t<4> xs{5, 4, 3, 2}, ys{10, 12, 3, 2};
  const auto x4 = random_vec<T>(xs[0] * xs[1] * xs[2] * xs[3], 32);
  const auto dy4 = random_vec<T>(ys[0] * ys[1] * ys[2] * ys[3], 33);
  check_kernel<T>("upsample_nearest", [&](auto mode) {
    std::vector<T> y(dy4.size());
    lux::impl::upsample_nearest(mode, x4.data(), xs, y.data(), ys);
    return y;
  });
  check_kernel<T>("upsample_nearest_backward", [&](auto mode) {
    std::vector<T> dx(x4.size());
    lux::impl::upsample_nearest_backward(mode, dy4.data(), ys, dx.data(), xs);
    return dx;
  });
  for (bool corners : {false, true}) {
    check_kernel<T>("upsample_bilinear", [&](auto mode) {
      std::vector<T> y(dy4.size());
      lux::impl::upsample_bilinear(mode, x4.data(), xs, y.data(), ys, corners);
      return y;
    });
    check_kernel<T>("upsample_bilinear_backward", [&](auto mode) {
      std::vector<T> dx(x4.size());
      lux::impl::upsample_bilinear_backward(mode, dy4.data(), ys, dx.data(), xs, corners);
      return dx;
    });
  }
  const shape_t<5> xs5{4, 3, 2, 3, 2}, ys5{8, 6, 5, 3, 2};
  const auto x5 = random_vec<T>(4 * 3 * 2 * 3 * 2, 34), dy5 = random_vec<T>(8 * 6 * 5 * 3 * 2, 35);
  check_kernel<T>("upsample_trilinear", [&](auto mode) {
    std::vector<T> y(dy5.size());
    lux::impl::upsample_trilinear(mode, x5.data(), xs5, y.data(), ys5, false);
    return y;
  });
  check_kernel<T>("upsample_trilinear_backward", [&](auto mode) {
    std::vector<T> dx(x5.size());
    lux::impl::upsample_trilinear_backward(mode, dy5.data(), ys5, dx.data(), xs5, true);
    return dx;
  });
  const shape_t<4> ps{3, 2, 8, 2};  // r = 2: 8 channels -> 2, 6 x 4
  const auto xp = random_vec<T>(3 * 2 * 8 * 2, 36);
  check_kernel<T>("pixel_shuffle", [&](auto mode) {
    std::vector<T> y(xp.size());
    lux::impl::pixel_shuffle(mode, xp.data(), ps, index_t{2}, y.data());
    return y;
  });
  check_kernel<T>("pixel_shuffle_backward", [&](auto mode) {
    std::vector<T> dx(xp.size());
    lux::impl::pixel_shuffle_backward(mode, xp.data(), ps, index_t{2}, dx.data());
    return dx;
  });
}

template <class T, class I>
void embedding() {
  const index_t out = 7, in = 11, n = 40;
  const auto w = random_vec<T>(out * in, 40), dy = random_vec<T>(out * n, 41);
  std::vector<I> idx(static_cast<std::size_t>(n));
  for (index_t j = 0; j < n; ++j)
    idx[static_cast<std::size_t>(j)] = static_cast<I>((j * 7 + 3) % in);
  const std::string tag = sizeof(I) == 4 ? " (int32 indices)" : " (int64 indices)";
  check_kernel<T>("embedding_lookup" + tag, [&](auto mode) {
    std::vector<T> y(static_cast<std::size_t>(out * n));
    lux::impl::embedding_lookup(mode, w.data(), out, idx.data(), n, y.data());
    return y;
  });
  check_kernel<T>("embedding_lookup_backward" + tag, [&](auto mode) {
    std::vector<T> dw(w.size());
    lux::impl::embedding_lookup_backward(mode, dy.data(), out, idx.data(), n, dw.data(), in);
    return dw;
  });
}
}  // namespace

TEST_CASE("dispatch: the detected level is what the CPU supports", "[runtime_dispatch]") {
  CHECK(dispatch::detected() == cpu_level());
  CHECK(dispatch::registered(level::avx2) > 100);
  CHECK(dispatch::registered(level::avx512) == dispatch::registered(level::avx2));
  CHECK(dispatch::registered(level::baseline) == 0);
  CHECK(std::string(lux::simd_isa_name()) == "sse2");
  INFO("this CPU: " << dispatch::name(cpu_level()));
  if (cpu_level() != level::avx512)
    WARN("no AVX-512 on this machine: the AVX-512 copies are not exercised");
}

TEST_CASE("dispatch: levels parse, print and cap", "[runtime_dispatch]") {
  CHECK(dispatch::parse_level("baseline") == level::baseline);
  CHECK(dispatch::parse_level("sse2") == level::baseline);
  CHECK(dispatch::parse_level("avx2") == level::avx2);
  CHECK(dispatch::parse_level("avx512") == level::avx512);
  CHECK(dispatch::parse_level("native") == level::avx512);
  CHECK_THROWS_WITH(
      dispatch::parse_level("avx1024"),
      Catch::Contains("baseline, sse2, avx2, avx512, native") && Catch::Contains("avx1024"));
  CHECK_THROWS_AS(dispatch::parse_level(nullptr), std::invalid_argument);
  CHECK(std::string(dispatch::name(level::avx2)) == "avx2");
  dispatch::set_max_level(level::avx2);
  CHECK(dispatch::active() == std::min(level::avx2, cpu_level()));
  dispatch::set_max_level(level::baseline);
  CHECK(dispatch::active() == level::baseline);
  dispatch::set_max_level(level::avx512);
  CHECK(dispatch::active() == cpu_level());
}

// Run by CTest with LUXCPP_ISA set (tests/CMakeLists.txt): the environment caps the level.
TEST_CASE("dispatch: LUXCPP_ISA caps the level", "[runtime_dispatch][env]") {
  const char* env = std::getenv("LUXCPP_ISA");
  if (env == nullptr) {
    CHECK(dispatch::active() == cpu_level());
    return;
  }
  level want = cpu_level();
  try {
    want = std::min(dispatch::parse_level(env), cpu_level());
  } catch (const std::invalid_argument&) {
    // an unknown value is reported on stderr and ignored
  }
  INFO("LUXCPP_ISA=" << env);
  CHECK(dispatch::active() == want);
  const auto before = counters();
  lux::Tensor<float, 1> x(shape_t<1>{4096}, 0.5f);
  (void)lux::fast_activation(lux::gelu{}, x);
  const auto after = counters();
  for (int k = 1; k < 3; ++k)
    CHECK(after[static_cast<std::size_t>(k)] - before[static_cast<std::size_t>(k)] ==
          (k == static_cast<int>(want) ? 1u : 0u));
}

TEST_CASE("dispatch: the public kernels reach the precompiled copies", "[runtime_dispatch]") {
  const auto before = counters();
  lux::Tensor<float, 2> x(shape_t<2>{64, 32}, 0.25f), w(shape_t<2>{16, 64}, 0.5f);
  lux::Tensor<float, 1> b(shape_t<1>{16}, 1.0f);
  const auto y = lux::fused_dense_bias_activation(lux::gelu{}, w, x, b);
  const auto s = lux::softmax(y);
  const auto after = counters();
  const auto best = static_cast<std::size_t>(cpu_level());
  if (best > 0) CHECK(after[best] - before[best] == 2);
  // y = gelu(64 · 0.5 · 0.25 + 1) = gelu(9) in every element; softmax of equal values is 1/16.
  CHECK(y(3, 5) == Approx(9.0).epsilon(1e-6));
  CHECK(s(3, 5) == Approx(1.0 / 16).epsilon(1e-6));
}

TEST_CASE("dispatch: elementwise kernels and dropout", "[runtime_dispatch]") {
  elementwise<float>();
  elementwise<double>();
  dropouts<float>();
  dropouts<double>();
}

TEST_CASE("dispatch: dense and batched matmul", "[runtime_dispatch]") {
  gemms<float>();
  gemms<double>();
}

TEST_CASE("dispatch: convolution", "[runtime_dispatch]") {
  convolutions<float>();
  convolutions<double>();
}

TEST_CASE("dispatch: normalization and softmax", "[runtime_dispatch]") {
  normalizations<float>();
  normalizations<double>();
  softmaxes<float>();
  softmaxes<double>();
}

TEST_CASE("dispatch: pooling and upsampling", "[runtime_dispatch]") {
  resampling<float>();
  resampling<double>();
}

TEST_CASE("dispatch: embedding", "[runtime_dispatch]") {
  embedding<float, std::int32_t>();
  embedding<double, std::int32_t>();
  embedding<float, std::int64_t>();
  embedding<double, std::int64_t>();
}
