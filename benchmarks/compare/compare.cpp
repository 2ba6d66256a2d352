// luxcpp against LibTorch, side by side (built when Debian's libtorch-dev is found; run through
// benchmarks/compare/run.sh, which also sets the peer's configuration).
//
// Each workload runs through luxcpp's public API (the allocating calls a user writes) and through
// LibTorch's C++ API (ATen: OpenBLAS for GEMMs, oneDNN for convolutions in Debian's build), on the
// same data: Lux's column-major (features, batch) / (W, H, C, N) arrays are PyTorch's row-major
// (batch, features) / (N, C, H, W) tensors over the same memory, so both read identical bytes.
// Before timing, the outputs (and for forward+backward the input gradient, with relu's
// derivative taken from luxcpp's output in both so that a pre-activation within rounding of 0
// cannot flip) must agree to a relative error of 1e-4 (max |Δ| / max(1, max |PyTorch|)); the
// model workloads are in models.cpp. After warm-up the median of the repetitions is reported, at
// 1 thread and at 2 threads (omp_set_num_threads, torch::set_num_threads and OpenBLAS's count
// all set). With --side both the two libraries alternate in this process (a quick look); run.sh
// times each in its own processes (--side lux, --side torch: tab-separated records, merged by
// merge.py), so that neither library's thread pool is alive while the other one is timed. In the
// same run the machine's limits are measured: a 2-thread STREAM-style copy (memory-bound work is
// reported as a fraction of it: bytes counted once per input and output ÷ time ÷ copy
// bandwidth), the FMA peak of this core count (xsimd, independent accumulators), and an OpenBLAS
// sgemm (torch::mm) of each GEMM's shape.
//
//   compare_libtorch [--reps 15] [--threads 1,2] [--filter substring] [--side both|lux|torch]
#include "common.hpp"

namespace {

using namespace compare;

struct limits {
  double copy_gbs = 0;    ///< 2-thread copy, GB/s (read + write counted)
  double fma_gflops = 0;  ///< FMA peak at the current thread count
};

/// STREAM-style copy of 256 MiB with `threads` threads: bytes read + written per second.
double copy_bandwidth(int threads) {
  const std::size_t n = std::size_t(64) << 20;  // floats
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  std::vector<double> t;
  for (int r = 0; r < 7; ++r)
    t.push_back(seconds_of([&] {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (std::int64_t c = 0; c < 64; ++c)
        std::memcpy(b.data() + std::size_t(c) * (n / 64), a.data() + std::size_t(c) * (n / 64),
                    n / 64 * sizeof(float));
    }));
  return 2.0 * double(n) * sizeof(float) / median(t) / 1e9;
}

/// FMA peak: 12 independent accumulators of xsimd batches per thread.
double fma_peak(int threads) {
  using B = xsimd::batch<float>;
  const std::int64_t iters = 20'000'000;
  std::vector<double> t;
  float sink = 0;
  for (int r = 0; r < 5; ++r)
    t.push_back(seconds_of([&] {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
      {
        B acc[12];
        for (auto& x : acc) x = B(0.5f);
        const B m(0.999999f), c(1e-7f);
        for (std::int64_t i = 0; i < iters / 12; ++i)
          for (auto& x : acc) x = xsimd::fma(x, m, c);
        B s(0.0f);
        for (auto& x : acc) s += x;
        sink += xsimd::hadd(s);
      }
    }));
  if (sink == 12345.0f) std::puts("");
  const double flops = 2.0 * double(B::size) * double(iters / 12 * 12) * threads;
  return flops / median(t) / 1e9;
}

struct row {
  std::string name;
  double lux_ms, torch_ms, lux_frac, torch_frac, sgemm_frac;
  double error;
  double sgemm_ms = 0;
};

/// Which library a process times: both, alternating in one process (the quick look), or one of
/// them (run.sh runs each in its own process, alternating processes, so that neither library's
/// thread pool is alive while the other is timed).
enum class side { both, lux, torch };

row measure(const workload& w, int reps, const limits& lim, side sd) {
  row r{w.name, 0, 0, 0, 0, 0, std::nan("")};
  const bool do_lux = sd != side::torch, do_torch = sd != side::lux;
  // The torch-side process checks (it runs luxcpp once for that); a luxcpp-side process never
  // starts LibTorch's or OpenBLAS's threads.
  if (do_torch) r.error = w.check();
  for (int i = 0; i < 2; ++i) {
    if (do_lux) w.lux_run();
    if (do_torch) w.torch_run();
  }
  // In one process, a pause before every timed run: OpenBLAS's pthreads spin for a while after a
  // call, and a 2-thread region started meanwhile loses a core to them (seen: 42 ms, not 8 ms).
  const auto settle = [sd] {
    if (sd == side::both) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  std::vector<double> tl, tt;
  for (int i = 0; i < reps; ++i) {
    settle();
    if (do_lux) tl.push_back(seconds_of(w.lux_run));
    settle();
    if (do_torch) tt.push_back(seconds_of(w.torch_run));
  }
  const double sl = do_lux ? median(tl) : std::nan(""), st = do_torch ? median(tt) : std::nan("");
  r.lux_ms = sl * 1e3;
  r.torch_ms = st * 1e3;
  const double limit = w.kind == workload::memory ? lim.copy_gbs : lim.fma_gflops;
  r.lux_frac = w.amount / sl / 1e9 / limit;
  r.torch_frac = w.amount / st / 1e9 / limit;
  if (w.kind == workload::compute && w.sgemm_seconds && do_torch) {
    std::vector<double> ts;
    for (int i = 0; i < std::max(5, reps / 2); ++i) ts.push_back(w.sgemm_seconds());
    r.sgemm_ms = median(ts) * 1e3;
    r.sgemm_frac = r.sgemm_ms / r.lux_ms;  // lux's speed as a fraction of the sgemm's
  }
  return r;
}

// ---- workloads ---------------------------------------------------------------------------------

template <class F>
workload activation(const char* name, F f, torch::Tensor (*tf)(const torch::Tensor&)) {
  const index_t n = index_t(1) << 24;
  auto x = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({n}, 1, -3, 3));
  auto y = std::make_shared<lux::Tensor<float, 1>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto ty = std::make_shared<torch::Tensor>();
  const std::function<void()> run_lux = [=] { *y = lux::fast_activation(f, *x); };
  const std::function<void()> run_torch = [=] { *ty = tf(*tx); };
  return {std::string(name) + " fwd 16M",
          workload::memory,
          2.0 * double(n) * 4,
          run_lux,
          run_torch,
          output_check(run_lux, run_torch, y, ty),
          {}};
}

torch::Tensor torch_gelu(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }
torch::Tensor torch_relu(const torch::Tensor& x) { return torch::relu(x); }
torch::Tensor torch_tanh(const torch::Tensor& x) { return torch::tanh(x); }
torch::Tensor torch_sigmoid(const torch::Tensor& x) { return torch::sigmoid(x); }

workload bias_relu() {
  const index_t c = 4096, b = 1024;
  auto x = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({c, b}, 2));
  auto bias = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({c}, 3));
  auto y = std::make_shared<lux::Tensor<float, 2>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto tb = std::make_shared<torch::Tensor>(as_torch(*bias));
  auto ty = std::make_shared<torch::Tensor>();
  const std::function<void()> run_lux = [=] { *y = lux::bias_activation(lux::relu{}, *x, *bias); };
  const std::function<void()> run_torch = [=] { *ty = torch::relu(*tx + *tb); };
  return {"bias+relu (4096, 1024) fwd",
          workload::memory,
          2.0 * double(c * b) * 4,
          run_lux,
          run_torch,
          output_check(run_lux, run_torch, y, ty),
          {}};
}

workload layernorm() {
  const index_t f = 4096, b = 1024;
  auto x = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({f, b}, 4));
  auto g = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({f, 1}, 5, 0.5f, 1.5f));
  auto be = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({f, 1}, 6));
  auto y = std::make_shared<lux::Tensor<float, 2>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto tg = std::make_shared<torch::Tensor>(as_torch(*g).reshape({f}));
  auto tbe = std::make_shared<torch::Tensor>(as_torch(*be).reshape({f}));
  auto ty = std::make_shared<torch::Tensor>();
  const auto run_lux = [=] {
    *y = lux::layernorm(*x, *g, *be, lux::identity{}, lux::leading_dims{1}, 1e-5f).y;
  };
  const auto run_torch = [=] { *ty = torch::layer_norm(*tx, {f}, *tg, *tbe, 1e-5); };
  return {"layernorm (4096, 1024) fwd",
          workload::memory,
          2.0 * double(f * b) * 4,
          run_lux,
          run_torch,
          output_check(run_lux, run_torch, y, ty),
          {}};
}

/// The normalizations over the channels of (56, 56, 64, 32), forward, with scale and bias:
/// batchnorm in training mode (batch statistics, running statistics updated), groupnorm with 32
/// groups, instancenorm (per-sample statistics).
enum class norm_kind { batch, group, instance };
workload normalization(norm_kind kind) {
  const lux::shape_t<4> s{56, 56, 64, 32};
  auto x = std::make_shared<lux::Tensor<float, 4>>(uniform<float, 4>(s, 7));
  auto g = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({64}, 8, 0.5f, 1.5f));
  auto be = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({64}, 9));
  auto rm = std::make_shared<lux::Tensor<float, 1>>(lux::shape_t<1>{64});
  auto rv = std::make_shared<lux::Tensor<float, 1>>(lux::shape_t<1>{64});
  auto y = std::make_shared<lux::Tensor<float, 4>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto tg = std::make_shared<torch::Tensor>(as_torch(*g));
  auto tbe = std::make_shared<torch::Tensor>(as_torch(*be));
  auto trm = std::make_shared<torch::Tensor>(torch::zeros({64}));
  auto trv = std::make_shared<torch::Tensor>(torch::ones({64}));
  auto ty = std::make_shared<torch::Tensor>();
  std::function<void()> run_lux, run_torch;
  const char* name = "";
  switch (kind) {
    case norm_kind::group:
      name = "groupnorm G=32 (56,56,64,32) fwd";
      run_lux = [=] { *y = lux::groupnorm(*x, *g, *be, 32, lux::identity{}, 1e-5f).y; };
      run_torch = [=] { *ty = torch::group_norm(*tx, 32, *tg, *tbe, 1e-5); };
      break;
    case norm_kind::instance:
      name = "instancenorm (56,56,64,32) fwd";
      run_lux = [=] { *y = lux::instancenorm(*x, *g, *be, true, lux::identity{}, 1e-5f).y; };
      run_torch = [=] {
        *ty = torch::instance_norm(*tx, *tg, *tbe, {}, {}, true, 0.1, 1e-5, false);
      };
      break;
    case norm_kind::batch:
      name = "batchnorm train (56,56,64,32) fwd";
      run_lux = [=] {
        *y = lux::batchnorm(*x, *g, *be, *rm, *rv, true, lux::identity{}, 0.1f, 1e-5f).y;
      };
      run_torch = [=] {
        *ty = torch::batch_norm(*tx, *tg, *tbe, *trm, *trv, true, 0.1, 1e-5, false);
      };
      break;
  }
  return {name,    workload::memory, 2.0 * double(x->numel()) * 4,
          run_lux, run_torch,        output_check(run_lux, run_torch, y, ty),
          {}};
}

/// Dropout p = 0.5 (training) on 16M floats. The two libraries draw different masks, so the check
/// is what both must satisfy: every output is 0 or x / (1 − p) (the value error is the largest
/// deviation ÷ 3, the largest |y|), and the kept fraction is within 0.01 of 1 − p (else 1).
workload dropout() {
  const index_t n = index_t(1) << 24;
  auto x = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({n}, 17, 0.5f, 1.5f));
  auto y = std::make_shared<lux::Tensor<float, 1>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto ty = std::make_shared<torch::Tensor>();
  auto r = std::make_shared<lux::rng>(18);
  const auto run_lux = [=] {
    auto d = lux::dropout(*r, *x, 0.5, true, 2.0);
    *r = d.rng;
    *y = std::move(d.y);
  };
  const auto run_torch = [=] { *ty = torch::dropout(*tx, 0.5, true); };
  const auto check_one = [x, n](const float* out) {
    double worst = 0;
    index_t kept = 0;
    for (index_t i = 0; i < n; ++i) {
      if (out[i] == 0.0f) continue;
      ++kept;
      worst = std::max(worst, std::abs(double(out[i]) - 2.0 * double(x->data()[i])));
    }
    const double frac = double(kept) / double(n);
    return std::max(worst / 3.0, std::abs(frac - 0.5) > 0.01 ? 1.0 : 0.0);
  };
  return {"dropout p=0.5 fwd 16M",
          workload::memory,
          2.0 * double(n) * 4,
          run_lux,
          run_torch,
          [=] {
            run_lux();
            run_torch();
            return std::max(check_one(y->data()), check_one(ty->contiguous().data_ptr<float>()));
          },
          {}};
}

/// The check of a layer y = relu(linear(x)): forward compares y; forward+backward compares dx,
/// with relu's derivative taken from luxcpp's y in both, so a pre-activation within rounding of 0
/// cannot flip between the libraries (it does, once in millions, on these sizes).
template <class Y, class DX>
std::function<double()> relu_layer_check(bool backward, std::function<void()> run_lux,
                                         std::function<void()> run_torch,
                                         std::function<torch::Tensor()> linear,
                                         std::shared_ptr<Y> y, std::shared_ptr<torch::Tensor> ty,
                                         std::shared_ptr<DX> dx, std::shared_ptr<torch::Tensor> tx,
                                         std::shared_ptr<torch::Tensor> tdy) {
  return [=] {
    run_lux();
    if (!backward) {
      run_torch();
      return rel_error(y->data(), *ty);
    }
    tx->mutable_grad() = torch::Tensor();
    linear().backward(*tdy * (as_torch(*y) > 0).to(torch::kFloat32));
    return rel_error(dx->data(), tx->grad());
  };
}

/// y = relu(W x + b): lux (out, batch) column-major is torch's (batch, out) row-major.
workload dense(index_t in, index_t out, index_t batch, bool backward) {
  auto W = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({out, in}, 10, -0.05f, 0.05f));
  auto x = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({in, batch}, 11));
  auto b = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({out}, 12));
  auto dy = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>({out, batch}, 13));
  auto y = std::make_shared<lux::Tensor<float, 2>>();
  auto dx = std::make_shared<lux::Tensor<float, 2>>();
  // torch: W^T over lux's memory is (in, out) row-major; the layer's weight is its transpose.
  auto tWt = std::make_shared<torch::Tensor>(as_torch(*W).detach().requires_grad_(backward));
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x).detach().requires_grad_(backward));
  auto tb = std::make_shared<torch::Tensor>(as_torch(*b).detach().requires_grad_(backward));
  auto tdy = std::make_shared<torch::Tensor>(as_torch(*dy));
  auto ty = std::make_shared<torch::Tensor>();
  std::function<void()> run_lux, run_torch;
  if (!backward) {
    run_lux = [=] { *y = lux::fused_dense_bias_activation(lux::relu{}, *W, *x, *b); };
    run_torch = [=] { *ty = torch::relu(torch::addmm(*tb, *tx, *tWt)); };
  } else {
    run_lux = [=] {
      auto r = lux::fused_dense_bias_activation_forward(lux::relu{}, *W, *x, *b);
      auto g = lux::fused_dense_bias_activation_backward(lux::relu{}, *dy, *W, *x, *b, r);
      *dx = std::move(g.dx);
      *y = std::move(r.y);
    };
    run_torch = [=] {
      tWt->mutable_grad() = torch::Tensor();
      tx->mutable_grad() = torch::Tensor();
      tb->mutable_grad() = torch::Tensor();
      auto out_ = torch::relu(torch::addmm(*tb, *tx, *tWt));
      out_.backward(*tdy);
    };
  }
  const double flops = 2.0 * double(in) * double(out) * double(batch) * (backward ? 3 : 1);
  const std::string name = "dense+bias+relu " + std::to_string(in) + "→" + std::to_string(out) +
                           " B" + std::to_string(batch) + (backward ? " fwd+bwd" : " fwd");
  auto A = std::make_shared<torch::Tensor>(torch::rand({batch, in}));
  auto B = std::make_shared<torch::Tensor>(torch::rand({in, out}));
  const int passes = backward ? 3 : 1;
  return {name,
          workload::compute,
          flops,
          run_lux,
          run_torch,
          relu_layer_check(
              backward, run_lux, run_torch, [=] { return torch::addmm(*tb, *tx, *tWt); }, y, ty, dx,
              tx, tdy),
          [=] {
            torch::NoGradGuard ng;
            return seconds_of([&] {
              for (int p = 0; p < passes; ++p) (void)torch::mm(*A, *B);
            });
          }};
}

/// conv + bias + relu; lux (W, H, C, N) is torch's NCHW, and lux's (kw, kh, Cin, Cout) kernel
/// torch's (Cout, Cin, kh, kw); cross-correlation (PyTorch's convention).
workload conv(const char* name, lux::shape_t<4> xs, lux::shape_t<4> ws, index_t stride, index_t pad,
              index_t groups, bool backward) {
  const auto cd = lux::conv_dims<2>{}
                      .with_stride(stride)
                      .with_pad(pad)
                      .with_groups(groups)
                      .with_cross_correlation();
  auto x = std::make_shared<lux::Tensor<float, 4>>(uniform<float, 4>(xs, 20));
  auto w = std::make_shared<lux::Tensor<float, 4>>(uniform<float, 4>(ws, 21, -0.1f, 0.1f));
  auto b = std::make_shared<lux::Tensor<float, 1>>(uniform<float, 1>({ws[3]}, 22));
  const auto ys = lux::conv_output_shape<2>(xs, ws, cd);
  auto dy = std::make_shared<lux::Tensor<float, 4>>(uniform<float, 4>(ys, 23));
  auto y = std::make_shared<lux::Tensor<float, 4>>();
  auto dx = std::make_shared<lux::Tensor<float, 4>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x).detach().requires_grad_(backward));
  auto tw = std::make_shared<torch::Tensor>(as_torch(*w).detach().requires_grad_(backward));
  auto tb = std::make_shared<torch::Tensor>(as_torch(*b).detach().requires_grad_(backward));
  auto tdy = std::make_shared<torch::Tensor>(as_torch(*dy));
  auto ty = std::make_shared<torch::Tensor>();
  std::function<void()> run_lux, run_torch;
  const auto tconv = [=] {
    return torch::relu(torch::conv2d(*tx, *tw, *tb, {stride, stride}, {pad, pad}, {1, 1}, groups));
  };
  if (!backward) {
    run_lux = [=] { *y = lux::fused_conv_bias_activation(lux::relu{}, *w, *x, *b, cd); };
    run_torch = [=] { *ty = tconv(); };
  } else {
    run_lux = [=] {
      auto r = lux::fused_conv_bias_activation_forward(lux::relu{}, *w, *x, *b, cd);
      auto g = lux::fused_conv_bias_activation_backward(lux::relu{}, *dy, *w, *x, *b, r.y,
                                                        lux::none, cd);
      *dx = std::move(g.dx);
      *y = std::move(r.y);
    };
    run_torch = [=] {
      tx->mutable_grad() = torch::Tensor();
      tw->mutable_grad() = torch::Tensor();
      tb->mutable_grad() = torch::Tensor();
      tconv().backward(*tdy);
    };
  }
  double flops = 2.0 * double(ys[0] * ys[1] * ys[2] * ys[3]) * double(ws[0] * ws[1] * ws[2]);
  if (backward) flops *= 3;
  return {std::string(name) + (backward ? " fwd+bwd" : " fwd"),
          workload::compute,
          flops,
          run_lux,
          run_torch,
          relu_layer_check(
              backward, run_lux, run_torch,
              [=] {
                return torch::conv2d(*tx, *tw, *tb, {stride, stride}, {pad, pad}, {1, 1}, groups);
              },
              y, ty, dx, tx, tdy),
          {}};
}

/// C = A B per batch; lux's column-major (m, k, batch) A is torch's row-major (batch, k, m) Aᵀ,
/// so lux's C = A B is torch's Cᵀ = Bᵀ Aᵀ.
workload bmm(index_t n, index_t batch) {
  auto a = std::make_shared<lux::Tensor<float, 3>>(uniform<float, 3>({n, n, batch}, 30));
  auto b = std::make_shared<lux::Tensor<float, 3>>(uniform<float, 3>({n, n, batch}, 31));
  auto c = std::make_shared<lux::Tensor<float, 3>>();
  auto ta = std::make_shared<torch::Tensor>(as_torch(*a));
  auto tb = std::make_shared<torch::Tensor>(as_torch(*b));
  auto tc = std::make_shared<torch::Tensor>();
  const auto run_lux = [=] { *c = lux::batched_matmul(*a, *b); };
  const auto run_torch = [=] { *tc = torch::bmm(*tb, *ta); };
  auto A = std::make_shared<torch::Tensor>(torch::rand({n, n}));
  return {"bmm " + std::to_string(batch) + "×" + std::to_string(n) + "³ fwd",
          workload::compute,
          2.0 * double(n) * double(n) * double(n) * double(batch),
          run_lux,
          run_torch,
          output_check(run_lux, run_torch, c, tc),
          [=] {
            torch::NoGradGuard ng;
            return seconds_of([&] {
              for (index_t i = 0; i < batch; ++i) (void)torch::mm(*A, *A);
            });
          }};
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 15;
  std::vector<int> thread_counts = {1, 2};
  std::string filter;
  side sd = side::both;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--reps")
      reps = std::max(10, std::atoi(v.c_str()));
    else if (k == "--filter")
      filter = v;
    else if (k == "--side") {
      if (v != "both" && v != "lux" && v != "torch") {
        std::fprintf(stderr, "compare_libtorch: --side must be both, lux or torch, not %s\n",
                     v.c_str());
        return 2;
      }
      sd = v == "lux" ? side::lux : v == "torch" ? side::torch : side::both;
    } else if (k == "--threads") {
      thread_counts.clear();
      for (char ch : v)
        if (ch >= '1' && ch <= '9') thread_counts.push_back(ch - '0');
    }
  }
  std::vector<workload> all;
  all.push_back(activation("relu", lux::relu{}, torch_relu));
  all.push_back(activation("tanh", lux::tanh_{}, torch_tanh));
  all.push_back(activation("sigmoid", lux::sigmoid{}, torch_sigmoid));
  all.push_back(activation("gelu (tanh)", lux::gelu{}, torch_gelu));
  all.push_back(dropout());
  all.push_back(bias_relu());
  all.push_back(layernorm());
  all.push_back(normalization(norm_kind::batch));
  all.push_back(normalization(norm_kind::group));
  all.push_back(normalization(norm_kind::instance));
  all.push_back(dense(1024, 1024, 256, false));
  all.push_back(dense(1024, 1024, 256, true));
  all.push_back(dense(4096, 4096, 64, true));
  all.push_back(
      conv("conv 3×3 (56,56,64,32)→64", {56, 56, 64, 32}, {3, 3, 64, 64}, 1, 1, 1, false));
  all.push_back(conv("conv 3×3 (56,56,64,32)→64", {56, 56, 64, 32}, {3, 3, 64, 64}, 1, 1, 1, true));
  all.push_back(
      conv("conv 7×7 s2 (224,224,3,8)→64", {224, 224, 3, 8}, {7, 7, 3, 64}, 2, 3, 1, false));
  all.push_back(
      conv("depthwise 3×3 (56,56,64,32)", {56, 56, 64, 32}, {3, 3, 1, 64}, 1, 1, 64, false));
  all.push_back(
      conv("depthwise 3×3 (56,56,64,32)", {56, 56, 64, 32}, {3, 3, 1, 64}, 1, 1, 64, true));
  all.push_back(bmm(256, 64));
  all.push_back(bmm(64, 512));
  for (auto& w : model_workloads()) all.push_back(std::move(w));

  // --side lux|torch prints tab-separated records for run.sh to merge:
  //   L <threads> <copy GB/s> <FMA GFLOP/s> <OpenBLAS threads>
  //   R <threads> <side> <workload> <memory|compute> <bytes or flops> <ms> <sgemm ms> <error>
  const bool records = sd != side::both;
  if (!records)
    std::printf("luxcpp vs LibTorch %s (%s), median of %d alternating repetitions\n", TORCH_VERSION,
                at::get_parallel_info().c_str(), reps);
  int failed = 0;
  for (const int threads : thread_counts) {
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
    torch::set_num_threads(threads);
    // torch::set_num_threads sets ATen's OpenMP pool only; Debian's PyTorch runs its GEMMs in
    // OpenBLAS (pthreads build), whose pool is set separately.
    if (auto* set_blas =
            reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
      set_blas(threads);
    auto* get_blas = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    limits lim{copy_bandwidth(2), fma_peak(threads)};
    if (records) {
      std::printf("L\t%d\t%.3f\t%.3f\t%d\n", threads, lim.copy_gbs, lim.fma_gflops,
                  get_blas ? get_blas() : -1);
    } else {
      std::printf(
          "\n### %d thread%s\n\nmachine: 2-thread copy %.1f GB/s, FMA peak at %d thread%s "
          "%.0f GFLOP/s; threads: luxcpp (OpenMP) %d, ATen %d, OpenBLAS %d\n\n",
          threads, threads > 1 ? "s" : "", lim.copy_gbs, threads, threads > 1 ? "s" : "",
          lim.fma_gflops, threads, torch::get_num_threads(), get_blas ? get_blas() : -1);
      std::printf(
          "| workload | luxcpp | PyTorch | PyTorch ÷ luxcpp | luxcpp of limit | PyTorch of "
          "limit | luxcpp ÷ sgemm | max rel. error |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    for (const auto& w : all) {
      if (!filter.empty() && w.name.find(filter) == std::string::npos) continue;
      const row r = measure(w, reps, lim, sd);
      const bool memory = w.kind == workload::memory;
      if (records) {
        std::printf("R\t%d\t%s\t%s\t%s\t%.6g\t%.6f\t%.6f\t%.3g\n", threads,
                    sd == side::lux ? "lux" : "torch", r.name.c_str(),
                    memory ? "memory" : "compute", w.amount,
                    sd == side::lux ? r.lux_ms : r.torch_ms, r.sgemm_ms, r.error);
      } else {
        const char* unit = memory ? "copy" : "FMA";
        std::printf("| %s | %.2f ms | %.2f ms | **%.2f** | %.2f %s | %.2f %s | %s | %.1e%s |\n",
                    r.name.c_str(), r.lux_ms, r.torch_ms, r.torch_ms / r.lux_ms, r.lux_frac, unit,
                    r.torch_frac, unit,
                    r.sgemm_frac > 0 ? (std::to_string(r.sgemm_frac).substr(0, 4)).c_str() : "—",
                    r.error, r.error > 1e-4 ? " **MISMATCH**" : "");
      }
      std::fflush(stdout);
      if (r.error > 1e-4) failed = 1;
    }
  }
  return failed;
}
