// benchmarks/compare: what the workload files share (timing, data, the torch views of lux arrays,
// the comparison of results, the workload record).
#pragma once

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <lux/lux.hpp>
#include <string>
#include <thread>
#include <vector>
#include <xsimd/xsimd.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace compare {

using lux::index_t;
using clk = std::chrono::steady_clock;

inline double seconds_of(const std::function<void()>& f) {
  const auto t0 = clk::now();
  f();
  return std::chrono::duration<double>(clk::now() - t0).count();
}
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class T, std::size_t N>
lux::Tensor<T, N> uniform(const lux::shape_t<N>& s, std::uint64_t seed, T lo = -1, T hi = 1) {
  auto t = lux::Tensor<T, N>::uninitialized(s);
  lux::rng(seed).fill_uniform(t.data(), static_cast<std::size_t>(t.numel()));
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = lo + (hi - lo) * t.data()[i];
  return t;
}

/// A torch tensor over a lux array's memory (no copy), with PyTorch's (reversed) shape.
template <class A>
torch::Tensor as_torch(A& a) {
  std::vector<int64_t> sizes;
  for (std::size_t d = a.shape().size(); d-- > 0;) sizes.push_back(a.shape()[d]);
  return torch::from_blob(const_cast<float*>(a.data()), sizes, torch::kFloat32);
}

/// max |a − b| / max(1, max |b|) over the same number of elements.
inline double rel_error(const float* a, const torch::Tensor& t) {
  const auto c = t.contiguous();
  const float* b = c.data_ptr<float>();
  double worst = 0, scale = 1;
  for (int64_t i = 0; i < c.numel(); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return worst / scale;
}

/// One workload: the two implementations, their check, and what to count.
struct workload {
  std::string name;
  enum kind_t { memory, compute } kind;
  double amount;  ///< bytes (memory) or flops (compute)
  std::function<void()> lux_run, torch_run;
  std::function<double()> check;          ///< relative error between the two results
  std::function<double()> sgemm_seconds;  ///< OpenBLAS sgemm of the same shape, or empty
};

/// The usual check: run both, compare luxcpp's output y with torch's ty.
template <class Y>
std::function<double()> output_check(std::function<void()> run_lux, std::function<void()> run_torch,
                                     std::shared_ptr<Y> y, std::shared_ptr<torch::Tensor> ty) {
  return [=] {
    run_lux();
    run_torch();
    return rel_error(y->data(), *ty);
  };
}

/// The whole-model workloads (models.cpp): LeNet, the MLP, the LSTM cell, the training steps.
std::vector<workload> model_workloads();

}  // namespace compare
