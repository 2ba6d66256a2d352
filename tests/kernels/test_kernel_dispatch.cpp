// Which implementation runs: for float and double arrays every public kernel must reach its
// looped (xsimd + OpenMP) implementation — never silently the generic one — and for element
// types the looped mode does not serve (long double) the generic one. Recorded with
// lux::kernel_trace (the test executables are built with LUX_KERNEL_TRACE=1).
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

#include <string>

#if !defined(LUX_KERNEL_TRACE) || !LUX_KERNEL_TRACE
#error "test_kernel_dispatch.cpp needs LUX_KERNEL_TRACE=1 for its whole executable"
#endif

namespace {
using lux::index_t;
using lux::shape_t;

template <class T, std::size_t N>
lux::Tensor<T, N> filled(const shape_t<N>& s) {
  lux::Tensor<T, N> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = T(((i * 37) % 17) - 8) / T(8);
  return t;
}

// Runs `body` under a trace and requires that kernel `k` ran in `mode`, not in `other`.
template <class Body>
void expect(const char* mode, const char* other, const char* k, Body&& body) {
  lux::kernel_trace trace;
  body();
  INFO("kernel " << k << ": trace = " << trace.str());
  CHECK(trace.ran(mode, k));
  CHECK(!trace.ran(other, k));
}

template <class T>
void check_family(const char* mode, const char* other) {
  const auto x4 = filled<T, 4>({6, 5, 3, 2});
  const auto dy4 = filled<T, 4>({6, 5, 3, 2});
  const auto x2 = filled<T, 2>({7, 5});
  const auto b3 = filled<T, 1>({3});

  expect(mode, other, "fast_activation", [&] { (void)lux::fast_activation(lux::gelu{}, x2); });
  expect(mode, other, "activation_backward",
         [&] { (void)lux::activation_backward(lux::gelu{}, x2, x2, lux::none); });
  expect(mode, other, "bias_activation", [&] { (void)lux::bias_activation(lux::relu{}, x4, b3); });
  expect(mode, other, "bias_activation_backward", [&] {
    (void)lux::bias_activation_backward(lux::relu{}, dy4, x4, b3,
                                        lux::bias_activation(lux::relu{}, x4, b3));
  });

  const auto w = filled<T, 2>({4, 7});
  const auto bd = filled<T, 1>({4});
  expect(mode, other, "fused_dense_forward",
         [&] { (void)lux::fused_dense_bias_activation(lux::relu{}, w, x2, bd); });
  expect(mode, other, "fused_dense_backward", [&] {
    const auto r = lux::fused_dense_bias_activation_forward(lux::relu{}, w, x2, bd);
    (void)lux::fused_dense_bias_activation_backward(lux::relu{}, filled<T, 2>({4, 5}), w, x2, bd,
                                                    r.y, r.saved);
  });

  const auto a3 = filled<T, 3>({3, 4, 2});
  const auto c3 = filled<T, 3>({4, 5, 2});
  expect(mode, other, "batched_matmul_kernel", [&] { (void)lux::batched_matmul(a3, c3); });
  expect(mode, other, "batched_matmul_backward_kernel", [&] {
    (void)lux::batched_matmul_backward(filled<T, 3>({3, 5, 2}), a3, c3);
  });

  const auto wc = filled<T, 4>({3, 3, 3, 4});
  const auto bc = filled<T, 1>({4});
  const lux::conv_dims<2> cd{};
  expect(mode, other, "conv_forward",
         [&] { (void)lux::fused_conv_bias_activation(lux::relu{}, wc, x4, bc, cd); });
  expect(mode, other, "conv_backward_data", [&] {
    (void)lux::conv_backward_data(filled<T, 4>({4, 3, 4, 2}), wc, x4.shape(), cd);
  });
  expect(mode, other, "conv_backward_filter", [&] {
    (void)lux::conv_backward_filter(x4, filled<T, 4>({4, 3, 4, 2}), wc.shape(), cd);
  });

  const auto pd = lux::pool_dims<2>(2);
  expect(mode, other, "maxpool", [&] { (void)lux::maxpool(x4, pd); });
  expect(mode, other, "maxpool_backward", [&] {
    const auto r = lux::maxpool_with_argmax(x4, pd);
    (void)lux::maxpool_backward(filled<T, 4>({3, 2, 3, 2}), r.saved);
  });
  expect(mode, other, "meanpool", [&] { (void)lux::meanpool(x4, pd); });
  expect(mode, other, "meanpool_backward", [&] {
    (void)lux::meanpool_backward(filled<T, 4>({3, 2, 3, 2}), x4.shape(), pd);
  });

  expect(mode, other, "upsample_nearest", [&] {
    (void)lux::upsample_nearest(x4, shape_t<2>{2, 2});
  });
  expect(mode, other, "upsample_bilinear", [&] {
    (void)lux::upsample_bilinear(x4, std::array<double, 2>{2.0, 2.0});
  });

  expect(mode, other, "softmax_forward", [&] { (void)lux::softmax(x2); });
  expect(mode, other, "logsoftmax_forward", [&] { (void)lux::logsoftmax(x2); });

  lux::rng r(7);
  expect(mode, other, "dropout", [&] { (void)lux::dropout(r, x2, 0.5, true, 2.0); });

  const auto rm = filled<T, 1>({3});
  lux::Tensor<T, 1> rv({3}, T(1));
  expect(mode, other, "normalization_forward",
         [&] { (void)lux::batchnorm(x4, b3, b3, rm, rv, true); });

  const auto emb = filled<T, 2>({4, 10});
  lux::Tensor<index_t, 1> idx({3}, {1, 9, 0});
  expect(mode, other, "embedding_lookup", [&] { (void)lux::embedding_lookup(emb, idx); });
}
}  // namespace

TEST_CASE("float and double arrays reach the looped implementations", "[dispatch]") {
  check_family<float>("looped_op", "generic_op");
  check_family<double>("looped_op", "generic_op");
}

TEST_CASE("long double arrays reach the generic implementations", "[dispatch]") {
  check_family<long double>("generic_op", "looped_op");
}
