// luxcpp — precompiled copies of the looped kernels for the run-time dispatch
// (lux/core/dispatch.hpp).
//
// Not a header to include in your code: CMake's luxcpp::dispatch library compiles it once per
// part and instruction set, each time in a translation unit that defines
//   LUX_DISPATCH_LEVEL  avx2 or avx512 (and is compiled with the matching -m flags),
//   LUX_DISPATCH_PART   elementwise, dense, conv, norm or resample,
// and then exports extern "C" luxcpp_dispatch_<part>_<level>, which registers every kernel of
// the part for float and double and every built-in activation. The thunks live in an anonymous
// namespace and the kernels in this translation unit's isa_ namespace, so the AVX2 and AVX-512
// copies never share a symbol.
#pragma once

#if !defined(LUX_DISPATCH_LEVEL) || !defined(LUX_DISPATCH_PART)
#error "lux/dispatch/provider.hpp: define LUX_DISPATCH_LEVEL and LUX_DISPATCH_PART first"
#endif

#define LUX_DISPATCH_PROVIDER 1

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/dispatch.hpp"
#include "lux/kernels/looped/activation.hpp"
#include "lux/kernels/looped/batched_matmul.hpp"
#include "lux/kernels/looped/bias_activation.hpp"
#include "lux/kernels/looped/conv.hpp"
#include "lux/kernels/looped/dense.hpp"
#include "lux/kernels/looped/dropout.hpp"
#include "lux/kernels/looped/embedding.hpp"
#include "lux/kernels/looped/normalization.hpp"
#include "lux/kernels/looped/pooling.hpp"
#include "lux/kernels/looped/softmax.hpp"
#include "lux/kernels/looped/upsample.hpp"

#define LUX_DISPATCH_CAT2(a, b) a##b
#define LUX_DISPATCH_CAT(a, b) LUX_DISPATCH_CAT2(a, b)
#define LUX_DISPATCH_LEVEL_avx2 1
#define LUX_DISPATCH_LEVEL_avx512 2
#define LUX_DISPATCH_PART_elementwise 1
#define LUX_DISPATCH_PART_dense 2
#define LUX_DISPATCH_PART_conv 3
#define LUX_DISPATCH_PART_norm 4
#define LUX_DISPATCH_PART_resample 5
#define LUX_DISPATCH_LEVEL_VALUE LUX_DISPATCH_CAT(LUX_DISPATCH_LEVEL_, LUX_DISPATCH_LEVEL)
#define LUX_DISPATCH_PART_VALUE LUX_DISPATCH_CAT(LUX_DISPATCH_PART_, LUX_DISPATCH_PART)

static_assert(LUX_DISPATCH_LEVEL_VALUE == LUX_ISA_DISPATCH_RANK,
              "lux/dispatch/provider.hpp: the -m flags do not match LUX_DISPATCH_LEVEL");

namespace {

using lux::index_t;
using lux::looped_op;
namespace impl = lux::impl;

/// The argument at `p`, the caller's object of an identically defined type, as this translation
/// unit's type.
template <class A>
A load(const void* p) {
  std::array<std::byte, sizeof(A)> raw;
  std::memcpy(raw.data(), p, sizeof(A));
  return std::bit_cast<A>(raw);
}

template <class M>
struct call_args;
template <class C, class... A>
struct call_args<void (C::*)(A...) const> {
  using type = std::tuple<std::decay_t<A>...>;
};

struct registrar {
  void* registry;
  lux::dispatch::add_fn add;
};

template <lux::detail::kernel_name K, class Call, class... Keys, class... A>
void provide_as(const registrar& r, std::tuple<A...>*) {
  static_assert((std::is_trivially_copyable_v<A> && ...));
  const std::string key = lux::detail::dispatch_key<Keys...>(K.s, {sizeof(A)...});
  lux::dispatch::thunk t = [](const void* const* argv) {
    [argv]<std::size_t... I>(std::index_sequence<I...>) { Call{}(load<A>(argv[I])...); }
    (std::index_sequence_for<A...>{});
  };
  r.add(r.registry, key.c_str(), LUX_DISPATCH_LEVEL_VALUE, t);
}

/// Registers `call` (a captureless lambda taking the kernel's arguments after the mode tag, by
/// value) as kernel K for the key types Keys.
template <lux::detail::kernel_name K, class... Keys, class Call>
void provide(const registrar& r, Call) {
  using args = typename call_args<decltype(&Call::operator())>::type;
  provide_as<K, Call, Keys...>(r, static_cast<args*>(nullptr));
}

template <template <class, class> class Each, class T, class... Fs>
void for_activations(const registrar& r, std::tuple<Fs...>*) {
  (Each<T, Fs>::run(r), ...);
}
template <template <class, class> class Each, class List = lux::builtin_activations>
void for_types_and_activations(const registrar& r) {
  for_activations<Each, float>(r, static_cast<List*>(nullptr));
  for_activations<Each, double>(r, static_cast<List*>(nullptr));
}

/// The activations the heavy kernels (dense, convolution, normalization) are precompiled with:
/// the ones models use. Each costs seconds of compile time per kernel and instruction set; a
/// kernel with another activation runs as compiled into its caller.
using fused_activations = std::tuple<lux::identity, lux::relu, lux::leakyrelu, lux::sigmoid,
                                     lux::tanh_, lux::gelu, lux::gelu_erf, lux::swish>;

#if LUX_DISPATCH_PART_VALUE == LUX_DISPATCH_PART_elementwise
template <class T, class F>
struct elementwise_kernels {
  static void run(const registrar& r) {
    provide<"fast_activation", T, F>(r, [](F f, const T* x, T* y, index_t n) {
      impl::fast_activation(looped_op{}, f, x, y, n);
    });
    provide<"activation_backward", T, F>(r, [](F f, const T* dy, const T* arg, T* dx, index_t n) {
      impl::activation_backward(looped_op{}, f, dy, arg, dx, n);
    });
    provide<"bias_activation", T, F>(
        r, [](F f, const T* x, const T* b, T* y, index_t inner, index_t C, index_t outer) {
          impl::bias_activation(looped_op{}, f, x, b, y, inner, C, outer);
        });
    provide<"bias_activation_backward", T, F>(
        r, [](F f, const T* dy, const T* arg, const T* b, T* dx, T* dbias, index_t inner, index_t C,
              index_t outer) {
          impl::bias_activation_backward(looped_op{}, f, dy, arg, b, dx, dbias, inner, C, outer);
        });
    provide<"conv_bias_activation", T, F>(
        r, [](F f, index_t pixels, index_t C, index_t batch, const T* a, const T* b, T* y, T* z) {
          impl::conv_bias_activation(looped_op{}, f, pixels, C, batch, a, b, y, z);
        });
    provide<"conv_activation_backward", T, F>(r, [](F f, index_t pixels, index_t C, index_t batch,
                                                    const T* dy, const T* arg, T* dz, T* db) {
      impl::conv_activation_backward(looped_op{}, f, pixels, C, batch, dy, arg, dz, db);
    });
  }
};

template <class T, std::size_t... N>
void broadcast_multiplies(const registrar& r, std::index_sequence<N...>) {
  (provide<"broadcast_multiply", T>(
       r, [](const T* x, lux::shape_t<N + 1> xs, const T* m, lux::shape_t<N + 1> ms,
             T* y) { impl::broadcast_multiply(looped_op{}, x, xs, m, ms, y); }),
   ...);
}

template <class T>
void dropout_kernels(const registrar& r) {
  provide<"dropout", T>(r,
                        [](lux::rng g, T threshold, T invp, const T* x, T* y, T* mask, index_t n) {
                          impl::dropout(looped_op{}, g, threshold, invp, x, y, mask, n);
                        });
  provide<"dropout_mask", T>(r, [](lux::rng g, T threshold, T invp, T* mask, index_t n) {
    impl::dropout_mask(looped_op{}, g, threshold, invp, mask, n);
  });
  provide<"alpha_dropout", T>(
      r, [](lux::rng g, T threshold, T alpha, T A, T B, const T* x, T* y, index_t n) {
        impl::alpha_dropout(looped_op{}, g, threshold, alpha, A, B, x, y, n);
      });
  provide<"alpha_dropout_backward", T>(
      r, [](lux::rng g, T threshold, T A, const T* dy, T* dx, index_t n) {
        impl::alpha_dropout_backward(looped_op{}, g, threshold, A, dy, dx, n);
      });
  broadcast_multiplies<T>(r, std::make_index_sequence<5>{});
}

void register_part(const registrar& r) {
  for_types_and_activations<elementwise_kernels>(r);
  dropout_kernels<float>(r);
  dropout_kernels<double>(r);
}
#endif

#if LUX_DISPATCH_PART_VALUE == LUX_DISPATCH_PART_dense
template <class T, class F>
struct dense_kernels {
  static void run(const registrar& r) {
    provide<"fused_dense_forward", F, T>(
        r, [](F f, lux::TensorView<const T, 2> w, lux::TensorView<const T, 2> x, const T* b,
              lux::TensorView<T, 2> y,
              T* z) { impl::fused_dense_forward(looped_op{}, f, w, x, b, y, z); });
    provide<"fused_dense_backward", F, T>(
        r, [](F f, lux::TensorView<const T, 2> dy, lux::TensorView<const T, 2> w,
              lux::TensorView<const T, 2> x, const T* arg, lux::TensorView<T, 2> dw,
              lux::TensorView<T, 2> dx,
              T* db) { impl::fused_dense_backward(looped_op{}, f, dy, w, x, arg, dw, dx, db); });
  }
};

template <class T>
void batched_matmul_kernels(const registrar& r) {
  using lux::TensorView;
  provide<"batched_matmul_kernel", T>(
      r, [](TensorView<const T, 3> a, lux::op opa, TensorView<const T, 3> b, lux::op opb,
            TensorView<T, 3> c) { impl::batched_matmul_kernel(looped_op{}, a, opa, b, opb, c); });
  provide<"batched_matmul_backward_kernel", T>(
      r, [](TensorView<const T, 3> dc, TensorView<const T, 3> a, lux::op opa,
            TensorView<const T, 3> b, lux::op opb, TensorView<T, 3> da, TensorView<T, 3> db) {
        impl::batched_matmul_backward_kernel(looped_op{}, dc, a, opa, b, opb, da, db);
      });
}

void register_part(const registrar& r) {
  for_types_and_activations<dense_kernels, fused_activations>(r);
  batched_matmul_kernels<float>(r);
  batched_matmul_kernels<double>(r);
}
#endif

#if LUX_DISPATCH_PART_VALUE == LUX_DISPATCH_PART_conv
template <class T, class F>
struct conv_kernels {
  static void run(const registrar& r) {
    using lux::impl::conv_geometry;
    provide<"conv_forward", T, F>(
        r, [](conv_geometry g, const T* x, const T* w, const T* b, F f, T* y, T* z) {
          impl::conv_forward(looped_op{}, g, x, w, b, f, y, z);
        });
    provide<"conv_backward", T, F>(
        r, [](conv_geometry g, F f, const T* dy, const T* arg, const T* x, const T* w, T* dx, T* dw,
              T* db) { impl::conv_backward(looped_op{}, g, f, dy, arg, x, w, dx, dw, db); });
    provide<"conv_transpose_forward", T, F>(
        r, [](conv_geometry g, const T* x, const T* w, const T* b, F f, T* y, T* z) {
          impl::conv_transpose_forward(looped_op{}, g, x, w, b, f, y, z);
        });
  }
};

template <class T>
void conv_parts(const registrar& r) {
  using lux::impl::conv_geometry;
  provide<"conv_backward_data", T>(r, [](conv_geometry g, const T* dy, const T* w, T* dx) {
    impl::conv_backward_data(looped_op{}, g, dy, w, dx);
  });
  provide<"conv_backward_filter", T>(r, [](conv_geometry g, const T* x, const T* dy, T* dw) {
    impl::conv_backward_filter(looped_op{}, g, x, dy, dw);
  });
  provide<"conv_bias_gradient", T>(
      r, [](index_t pixels, index_t C, index_t batch, const T* dy, T* db) {
        impl::conv_bias_gradient(looped_op{}, pixels, C, batch, dy, db);
      });
}

void register_part(const registrar& r) {
  for_types_and_activations<conv_kernels, fused_activations>(r);
  conv_parts<float>(r);
  conv_parts<double>(r);
}
#endif

#if LUX_DISPATCH_PART_VALUE == LUX_DISPATCH_PART_norm
template <class T, class F>
struct norm_kernels {
  static void run(const registrar& r) {
    using lux::impl::norm_affine;
    using lux::impl::norm_layout;
    provide<"normalization_forward", T, F>(r, [](norm_layout L, const T* x, T* y,
                                                 norm_affine<T> aff, F sigma, T epsilon, T* mean,
                                                 T* var, T* inv_std) {
      impl::normalization_forward(looped_op{}, L, x, y, aff, sigma, epsilon, mean, var, inv_std);
    });
    provide<"normalization_apply", T, F>(r, [](norm_layout L, const T* x, T* y, norm_affine<T> aff,
                                               F sigma, const T* mean, const T* inv_std) {
      impl::normalization_apply(looped_op{}, L, x, y, aff, sigma, mean, inv_std);
    });
    provide<"normalization_backward", T, F>(
        r, [](norm_layout L, const T* dy, const T* x, const T* y, norm_affine<T> aff, F sigma,
              const T* mean, const T* inv_std, bool batch_statistics, T* dx, bool affine_grads,
              T* dscale, T* dbias) {
          impl::normalization_backward(looped_op{}, L, dy, x, y, aff, sigma, mean, inv_std,
                                       batch_statistics, dx, affine_grads, dscale, dbias);
        });
  }
};

template <class T>
void softmax_kernels(const registrar& r) {
  using lux::impl::softmax_geometry;
  provide<"softmax_forward", T>(
      r, [](softmax_geometry g, const T* x, T* y) { impl::softmax_forward(looped_op{}, g, x, y); });
  provide<"logsoftmax_forward", T>(r, [](softmax_geometry g, const T* x, T* y) {
    impl::logsoftmax_forward(looped_op{}, g, x, y);
  });
  provide<"logsumexp_forward", T>(r, [](softmax_geometry g, const T* x, T* lse) {
    impl::logsumexp_forward(looped_op{}, g, x, lse);
  });
  provide<"softmax_backward", T>(r, [](softmax_geometry g, const T* dy, const T* y, T* dx) {
    impl::softmax_backward(looped_op{}, g, dy, y, dx);
  });
  provide<"logsoftmax_backward", T>(r, [](softmax_geometry g, const T* dy, const T* y, T* dx) {
    impl::logsoftmax_backward(looped_op{}, g, dy, y, dx);
  });
  provide<"logsumexp_backward", T>(
      r, [](softmax_geometry g, const T* dlse, const T* x, const T* lse, T* dx) {
        impl::logsumexp_backward(looped_op{}, g, dlse, x, lse, dx);
      });
}

void register_part(const registrar& r) {
  for_types_and_activations<norm_kernels, fused_activations>(r);
  softmax_kernels<float>(r);
  softmax_kernels<double>(r);
}
#endif

#if LUX_DISPATCH_PART_VALUE == LUX_DISPATCH_PART_resample
template <class T, std::size_t... N>
void nearest_kernels(const registrar& r, std::index_sequence<N...>) {
  using lux::shape_t;
  (provide<"upsample_nearest", T>(r,
                                  [](const T* x, shape_t<N + 3> xs, T* y, shape_t<N + 3> ys) {
                                    impl::upsample_nearest(looped_op{}, x, xs, y, ys);
                                  }),
   ...);
  (provide<"upsample_nearest_backward", T>(
       r, [](const T* dy, shape_t<N + 3> ys, T* dx,
             shape_t<N + 3> xs) { impl::upsample_nearest_backward(looped_op{}, dy, ys, dx, xs); }),
   ...);
  (provide<"pixel_shuffle", T>(r, [](const T* x, shape_t<N + 3> xs, index_t f,
                                     T* y) { impl::pixel_shuffle(looped_op{}, x, xs, f, y); }),
   ...);
  (provide<"pixel_shuffle_backward", T>(r,
                                        [](const T* dy, shape_t<N + 3> xs, index_t f, T* dx) {
                                          impl::pixel_shuffle_backward(looped_op{}, dy, xs, f, dx);
                                        }),
   ...);
}

template <class T, class I>
void embedding_kernels(const registrar& r) {
  provide<"embedding_lookup", T, I>(r, [](const T* w, index_t out, const I* idx, index_t n, T* y) {
    impl::embedding_lookup(looped_op{}, w, out, idx, n, y);
  });
  provide<"embedding_lookup_backward", T, I>(
      r, [](const T* dy, index_t out, const I* idx, index_t n, T* dw, index_t in) {
        impl::embedding_lookup_backward(looped_op{}, dy, out, idx, n, dw, in);
      });
}

template <class T>
void resample_kernels(const registrar& r) {
  using lux::shape_t;
  using lux::impl::pool_geometry;
  provide<"maxpool", T>(r, [](pool_geometry g, const T* x, T* y, std::int32_t* argmax) {
    impl::maxpool(looped_op{}, g, x, y, argmax);
  });
  provide<"maxpool_backward", T>(
      r, [](pool_geometry g, const T* dy, const std::int32_t* argmax, T* dx, std::int64_t* bad) {
        *bad = impl::maxpool_backward(looped_op{}, g, dy, argmax, dx);
      });
  provide<"meanpool", T>(
      r, [](pool_geometry g, const T* x, T* y) { impl::meanpool(looped_op{}, g, x, y); });
  provide<"meanpool_backward", T>(r, [](pool_geometry g, const T* dy, T* dx) {
    impl::meanpool_backward(looped_op{}, g, dy, dx);
  });
  provide<"upsample_bilinear", T>(
      r, [](const T* x, shape_t<4> xs, T* y, shape_t<4> ys, bool align_corners) {
        impl::upsample_bilinear(looped_op{}, x, xs, y, ys, align_corners);
      });
  provide<"upsample_bilinear_backward", T>(
      r, [](const T* dy, shape_t<4> ys, T* dx, shape_t<4> xs, bool align_corners) {
        impl::upsample_bilinear_backward(looped_op{}, dy, ys, dx, xs, align_corners);
      });
  provide<"upsample_trilinear", T>(
      r, [](const T* x, shape_t<5> xs, T* y, shape_t<5> ys, bool align_corners) {
        impl::upsample_trilinear(looped_op{}, x, xs, y, ys, align_corners);
      });
  provide<"upsample_trilinear_backward", T>(
      r, [](const T* dy, shape_t<5> ys, T* dx, shape_t<5> xs, bool align_corners) {
        impl::upsample_trilinear_backward(looped_op{}, dy, ys, dx, xs, align_corners);
      });
  nearest_kernels<T>(r, std::make_index_sequence<3>{});
  embedding_kernels<T, std::int32_t>(r);
  embedding_kernels<T, std::int64_t>(r);
}

void register_part(const registrar& r) {
  resample_kernels<float>(r);
  resample_kernels<double>(r);
}
#endif

}  // namespace

#define LUX_DISPATCH_ENTRY                                                                     \
  LUX_DISPATCH_CAT(LUX_DISPATCH_CAT(LUX_DISPATCH_CAT(luxcpp_dispatch_, LUX_DISPATCH_PART), _), \
                   LUX_DISPATCH_LEVEL)

extern "C" void LUX_DISPATCH_ENTRY(void* registry, lux::dispatch::add_fn add) {
  register_part(registrar{registry, add});
}
