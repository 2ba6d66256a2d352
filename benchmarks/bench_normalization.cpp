// Normalization benchmarks: batchnorm (training), groupnorm (32 groups) and instancenorm on
// (56, 56, 64, 32) [WHCN], layernorm on (1024, 4096) over dim 1; float32, forward and backward,
// looped mode, plus the generic mode of each forward. The *_channels_first variants run the same
// kernels on the same data laid out (64, 56, 56, 32) [CWHN, channels-last memory] with
// lux::channel_dim{0}. Bytes processed count every input read once
// and every output written once: forward x + y (+ the per-channel parameters), backward dy + x +
// dx. The same binary measures memcpy of the same byte counts (n floats copied = 2n·4 bytes),
// single-threaded and split over all threads, as the bandwidth limit.
//
// Iterations cycle through several copies of the inputs (more than twice a 32 MB L3 in all):
// outputs are written with non-temporal stores, so one 25 MB input would otherwise stay in the
// L3 from one iteration to the next and be read at cache rather than memory bandwidth.
//
//   g++ -std=c++20 -O3 -march=native -fopenmp -Iinclude benchmarks/bench_normalization.cpp
//       -lbenchmark -lpthread -o bench_normalization
//   ./bench_normalization --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR 105593, see test_activations
#endif

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <lux/core/parallel.hpp>
#include <lux/core/random.hpp>
#include <lux/kernels/normalization.hpp>
#include <string>
#include <vector>

namespace {

using lux::index_t;
using lux::shape_t;
using lux::Tensor;

constexpr shape_t<4> image_shape{56, 56, 64, 32};
constexpr shape_t<4> image_shape_cf{64, 56, 56, 32};  // the same tensor, channels first
constexpr shape_t<2> sequence_shape{1024, 4096};
constexpr index_t channels = 64, groups = 32;
constexpr std::size_t copies = 4;  // x alone: 4 × 25.7 MB and 4 × 16.8 MB, both > 2 × L3

template <std::size_t N>
constexpr index_t numel(const shape_t<N>& s) {
  index_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

template <std::size_t N>
Tensor<float, N> random_input(const shape_t<N>& shape, std::uint64_t seed) {
  auto t = Tensor<float, N>::uninitialized(shape);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  return t;
}

/// The baseline of a benchmark for benchmarks/make_results.py: "vs=<its run name>".
std::string versus(const std::string& name) { return "vs=" + name + "/real_time"; }

void set_bytes(benchmark::State& state, index_t streams, index_t n, index_t params = 0) {
  state.SetBytesProcessed(state.iterations() * (streams * n + params) *
                          static_cast<int64_t>(sizeof(float)));
}

// --- memcpy baselines (cycling through `copies` source/destination pairs, like the kernels) ------
struct copy_buffers {
  explicit copy_buffers(index_t n) {
    for (std::size_t i = 0; i < copies; ++i) {
      src.emplace_back(shape_t<1>{n}, 1.0f);
      dst.emplace_back(shape_t<1>{n}, 0.0f);
    }
  }
  std::vector<Tensor<float, 1>> src, dst;
};
/// Times copy(dst, src, n) over the rotating buffers; n floats copied count 2n·4 bytes.
template <class Copy>
void run_copy(benchmark::State& state, Copy&& copy) {
  const index_t n = state.range(0);
  copy_buffers buf(n);
  std::size_t it = 0;
  for (auto _ : state) {
    const std::size_t i = it++ % copies;
    copy(buf.dst[i].data(), buf.src[i].data(), n);
    benchmark::DoNotOptimize(buf.dst[i].data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2, n);
}
void BM_memcpy(benchmark::State& state) {
  run_copy(state, [](float* dst, const float* src, index_t n) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
  });
}
void BM_memcpy_threads(benchmark::State& state) {
  run_copy(state, [](float* dst, const float* src, index_t n) {
    lux::parallel_chunks(n, [&](index_t lo, index_t hi) {
      std::memcpy(dst + lo, src + lo, static_cast<std::size_t>(hi - lo) * sizeof(float));
    });
  });
}
/// The same copy with xsimd loads and non-temporal stores, as the normalization kernels write
/// their outputs (glibc's memcpy uses cached stores below ~3/4 of the L3 per call, which costs a
/// read-for-ownership per destination line): the stricter bandwidth limit.
void BM_stream_copy_threads(benchmark::State& state) {
  namespace nl = lux::impl::norm_looped;
  run_copy(state, [](float* dst, const float* src, index_t n) {
    lux::parallel_chunks(n, [&](index_t lo, index_t hi) {
      nl::write_lanes<float, xsimd::default_arch>(
          hi - lo, dst + lo, true, [&]<class V>(index_t j) { return nl::load<V>(src + lo, j); });
      nl::stream_fence();
    });
  });
}
// Forward (x + y) and backward (dy + x + dx = 1.5 memcpys) byte counts of both shapes.
constexpr index_t n_image = numel(image_shape), n_seq = numel(sequence_shape);
BENCHMARK(BM_memcpy)
    ->Arg(n_image)
    ->Arg(n_image * 3 / 2)
    ->Arg(n_seq)
    ->Arg(n_seq * 3 / 2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_stream_copy_threads)
    ->Arg(n_image)
    ->Arg(n_image * 3 / 2)
    ->Arg(n_seq)
    ->Arg(n_seq * 3 / 2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_memcpy_threads)
    ->Arg(n_image)
    ->Arg(n_image * 3 / 2)
    ->Arg(n_seq)
    ->Arg(n_seq * 3 / 2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// --- the kernels
// ----------------------------------------------------------------------------------
/// The image batch; channels first (CWHN, channel_dim{0}) with CF, else Lux's WHCN.
template <bool CF>
struct image_inputs_t {
  static constexpr lux::channel_dim cd{CF ? 0 : -1};
  explicit image_inputs_t(std::uint64_t seed)
      : x(random_input(CF ? image_shape_cf : image_shape, seed + 1)),
        dy(random_input(CF ? image_shape_cf : image_shape, seed + 2)) {}
  Tensor<float, 4> x, dy;
  Tensor<float, 1> scale{shape_t<1>{channels}, 1.5f}, bias{shape_t<1>{channels}, 0.25f};
  Tensor<float, 1> running_mean{shape_t<1>{channels}, 0.0f};
  Tensor<float, 1> running_var{shape_t<1>{channels}, 1.0f};
};
using image_inputs = image_inputs_t<false>;
using image_inputs_cf = image_inputs_t<true>;
struct sequence_inputs {
  explicit sequence_inputs(std::uint64_t seed)
      : x(random_input(sequence_shape, seed + 1)), dy(random_input(sequence_shape, seed + 2)) {}
  Tensor<float, 2> x, dy;
  Tensor<float, 1> scale{shape_t<1>{sequence_shape[0]}, 1.5f};
  Tensor<float, 1> bias{shape_t<1>{sequence_shape[0]}, 0.25f};
};

/// Forward: iteration i normalizes input copy i mod `copies`.
template <class Inputs, class Fwd>
void run_forward(benchmark::State& state, Fwd&& fwd, index_t n, index_t params) {
  std::vector<Inputs> ins;
  for (std::size_t i = 0; i < copies; ++i) ins.emplace_back(10 * i);
  std::size_t it = 0;
  for (auto _ : state) {
    auto r = fwd(ins[it++ % copies]);
    benchmark::DoNotOptimize(r.y.data());
  }
  set_bytes(state, 2, n, params);
}
/// Backward: the saved state of every copy is computed before timing.
template <class Inputs, class Fwd, class Bwd>
void run_backward(benchmark::State& state, Fwd&& fwd, Bwd&& bwd, index_t n, index_t params) {
  std::vector<Inputs> ins;
  std::vector<lux::normalization_saved<float>> saved;
  for (std::size_t i = 0; i < copies; ++i) {
    ins.emplace_back(10 * i);
    saved.push_back(fwd(ins.back()).saved);
  }
  std::size_t it = 0;
  for (auto _ : state) {
    const std::size_t i = it++ % copies;
    auto g = bwd(ins[i], saved[i]);
    benchmark::DoNotOptimize(g.dx.data());
  }
  set_bytes(state, 3, n, params);
}

template <class Mode, bool CF = false>
auto batchnorm_fwd(Mode mode = {}) {
  return [mode](const image_inputs_t<CF>& in) {
    return lux::batchnorm(mode, in.x, in.scale, in.bias, in.running_mean, in.running_var, true,
                          lux::identity{}, 0.1f, lux::default_norm_epsilon<float>(), in.cd);
  };
}
template <class Mode, bool CF = false>
auto groupnorm_fwd(Mode mode = {}) {
  return [mode](const image_inputs_t<CF>& in) {
    return lux::groupnorm(mode, in.x, in.scale, in.bias, groups, lux::identity{},
                          lux::default_norm_epsilon<float>(), in.cd);
  };
}
template <class Mode, bool CF = false>
auto instancenorm_fwd(Mode mode = {}) {
  return [mode](const image_inputs_t<CF>& in) {
    return lux::instancenorm(mode, in.x, in.scale, in.bias, true, lux::identity{},
                             lux::default_norm_epsilon<float>(), in.cd);
  };
}
template <class Mode>
auto layernorm_fwd(Mode mode = {}) {
  return [mode](const sequence_inputs& in) {
    return lux::layernorm(mode, in.x, in.scale, in.bias, lux::identity{}, lux::leading_dims{1});
  };
}

// Forward bytes: x + y + the per-channel parameters read (scale, bias, running stats) and
// written (running stats); backward: dy + x + dx + scale, bias, dscale, dbias.
/// Looped kernels are read against the memcpy (on all threads) of their byte count, generic ones
/// against the looped kernel.
template <class Mode>
std::string forward_baseline(const char* looped_name, index_t n) {
  if constexpr (std::is_same_v<Mode, lux::looped_op>)
    return versus("BM_memcpy_threads/" + std::to_string(n));
  else
    return versus(looped_name);
}

template <class Mode>
void BM_batchnorm_forward(benchmark::State& state) {
  run_forward<image_inputs>(state, batchnorm_fwd<Mode>(), n_image, 6 * channels);
  state.SetLabel(forward_baseline<Mode>("BM_batchnorm_forward<lux::looped_op>", n_image));
}
template <bool CF>
void BM_batchnorm_backward(benchmark::State& state) {
  run_backward<image_inputs_t<CF>>(
      state, batchnorm_fwd<lux::looped_op, CF>(),
      [](const image_inputs_t<CF>& in, const auto& saved) {
        return lux::batchnorm_backward(in.dy, in.x, lux::none, in.scale, in.bias, saved,
                                       lux::identity{}, in.cd);
      },
      n_image, 4 * channels);
  state.SetLabel(CF ? versus("BM_batchnorm_backward")
                    : versus("BM_memcpy_threads/" + std::to_string(n_image * 3 / 2)));
}
template <class Mode>
void BM_groupnorm_forward(benchmark::State& state) {
  run_forward<image_inputs>(state, groupnorm_fwd<Mode>(), n_image, 2 * channels);
  state.SetLabel(forward_baseline<Mode>("BM_groupnorm_forward<lux::looped_op>", n_image));
}
template <bool CF>
void BM_groupnorm_backward(benchmark::State& state) {
  run_backward<image_inputs_t<CF>>(
      state, groupnorm_fwd<lux::looped_op, CF>(),
      [](const image_inputs_t<CF>& in, const auto& saved) {
        return lux::groupnorm_backward(in.dy, in.x, lux::none, in.scale, in.bias, groups, saved,
                                       lux::identity{}, in.cd);
      },
      n_image, 4 * channels);
  state.SetLabel(CF ? versus("BM_groupnorm_backward")
                    : versus("BM_memcpy_threads/" + std::to_string(n_image * 3 / 2)));
}
template <class Mode>
void BM_instancenorm_forward(benchmark::State& state) {
  run_forward<image_inputs>(state, instancenorm_fwd<Mode>(), n_image, 2 * channels);
  state.SetLabel(forward_baseline<Mode>("BM_instancenorm_forward<lux::looped_op>", n_image));
}
template <bool CF>
void BM_instancenorm_backward(benchmark::State& state) {
  run_backward<image_inputs_t<CF>>(
      state, instancenorm_fwd<lux::looped_op, CF>(),
      [](const image_inputs_t<CF>& in, const auto& saved) {
        return lux::instancenorm_backward(in.dy, in.x, lux::none, in.scale, in.bias, saved,
                                          lux::identity{}, in.cd);
      },
      n_image, 4 * channels);
  state.SetLabel(CF ? versus("BM_instancenorm_backward")
                    : versus("BM_memcpy_threads/" + std::to_string(n_image * 3 / 2)));
}
// Channels first (channel_dim{0}), looped: against the same kernel with Lux's channel dimension.
void BM_batchnorm_forward_channels_first(benchmark::State& state) {
  run_forward<image_inputs_cf>(state, batchnorm_fwd<lux::looped_op, true>(), n_image, 6 * channels);
  state.SetLabel(versus("BM_batchnorm_forward<lux::looped_op>"));
}
void BM_groupnorm_forward_channels_first(benchmark::State& state) {
  run_forward<image_inputs_cf>(state, groupnorm_fwd<lux::looped_op, true>(), n_image, 2 * channels);
  state.SetLabel(versus("BM_groupnorm_forward<lux::looped_op>"));
}
void BM_instancenorm_forward_channels_first(benchmark::State& state) {
  run_forward<image_inputs_cf>(state, instancenorm_fwd<lux::looped_op, true>(), n_image,
                               2 * channels);
  state.SetLabel(versus("BM_instancenorm_forward<lux::looped_op>"));
}
template <class Mode>
void BM_layernorm_forward(benchmark::State& state) {
  run_forward<sequence_inputs>(state, layernorm_fwd<Mode>(), n_seq, 2 * sequence_shape[0]);
  state.SetLabel(forward_baseline<Mode>("BM_layernorm_forward<lux::looped_op>", n_seq));
}
void BM_layernorm_backward(benchmark::State& state) {
  run_backward<sequence_inputs>(
      state, layernorm_fwd<lux::looped_op>(),
      [](const sequence_inputs& in, const auto& saved) {
        return lux::layernorm_backward(in.dy, in.x, lux::none, in.scale, in.bias, saved,
                                       lux::identity{}, lux::leading_dims{1});
      },
      n_seq, 4 * sequence_shape[0]);
  state.SetLabel(versus("BM_memcpy_threads/" + std::to_string(n_seq * 3 / 2)));
}

#define LUX_NORM_BENCH(...) BENCHMARK(__VA_ARGS__)->Unit(benchmark::kMillisecond)->UseRealTime()
LUX_NORM_BENCH(BM_batchnorm_forward<lux::looped_op>);
LUX_NORM_BENCH(BM_batchnorm_backward<false>)->Name("BM_batchnorm_backward");
LUX_NORM_BENCH(BM_groupnorm_forward<lux::looped_op>);
LUX_NORM_BENCH(BM_groupnorm_backward<false>)->Name("BM_groupnorm_backward");
LUX_NORM_BENCH(BM_instancenorm_forward<lux::looped_op>);
LUX_NORM_BENCH(BM_instancenorm_backward<false>)->Name("BM_instancenorm_backward");
LUX_NORM_BENCH(BM_batchnorm_forward_channels_first);
LUX_NORM_BENCH(BM_batchnorm_backward<true>)->Name("BM_batchnorm_backward_channels_first");
LUX_NORM_BENCH(BM_groupnorm_forward_channels_first);
LUX_NORM_BENCH(BM_groupnorm_backward<true>)->Name("BM_groupnorm_backward_channels_first");
LUX_NORM_BENCH(BM_instancenorm_forward_channels_first);
LUX_NORM_BENCH(BM_instancenorm_backward<true>)->Name("BM_instancenorm_backward_channels_first");
LUX_NORM_BENCH(BM_layernorm_forward<lux::looped_op>);
LUX_NORM_BENCH(BM_layernorm_backward);
LUX_NORM_BENCH(BM_batchnorm_forward<lux::generic_op>);
LUX_NORM_BENCH(BM_groupnorm_forward<lux::generic_op>);
LUX_NORM_BENCH(BM_instancenorm_forward<lux::generic_op>);
LUX_NORM_BENCH(BM_layernorm_forward<lux::generic_op>);

}  // namespace

BENCHMARK_MAIN();
