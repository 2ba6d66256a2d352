// luxcpp — differentiable connection functors for the containers (Parallel, BranchLayer,
// PairwiseFusion, SkipConnection, Maxout): Lux's `+`, `.*`, `vcat`, `hcat`, `max`.
//
// Protocol of a connection c (any callable works for the forward pass):
//   c(ys...)                → y
//   c.pullback(ys...)       → std::pair{y, back}, back(dy) → std::tuple of one dy per input
//   c.output_shape(s...)    → the output shape (optional; needed by outputsize)
//   C::name                 → how containers print it (optional)
// A user connection without `pullback` works for apply; lux::pullback of its container stops
// with a static_assert (detail::connection_pullback).
//
//   lux::add    y = y1 + y2 + …      (equal shapes)        prints "+"
//   lux::mul    y = y1 .* y2 .* …    (equal shapes)        prints ".*"
//   lux::max_   y = max.(y1, y2, …)  (equal shapes); the gradient goes to the FIRST maximal
//               input at each element (others get 0)      prints "max"
//   lux::vcat   concatenation along dim 0 (Julia's vcat; other dims equal)
//   lux::hcat   concatenation along dim 1 (Julia's hcat, rank ≥ 2)
// All inputs must be arrays of one element type and rank; outputs are owned Tensors.
#pragma once

#include <algorithm>
#include <array>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/operation_mode.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
template <class A>
auto owned_tensor(const A& a) {
  return copy(as_view(a));
}
template <class... Y>
struct connection_args {
  static_assert(sizeof...(Y) >= 1, "lux connection: needs at least one input");
  static_assert((is_array_v<Y> && ...), "lux connection: the inputs must be arrays");
  using first = std::remove_cvref_t<std::tuple_element_t<0, std::tuple<Y...>>>;
  using T = typename array_traits<first>::value_type;
  static constexpr std::size_t N = array_traits<first>::rank;
  static_assert(((std::is_same_v<typename array_traits<std::remove_cvref_t<Y>>::value_type, T> &&
                  array_traits<std::remove_cvref_t<Y>>::rank == N) &&
                 ...),
                "lux connection: the inputs must have one element type and rank");
  using tensor = Tensor<T, N>;
  static constexpr std::size_t K = sizeof...(Y);
};

template <std::size_t N, class... S>
void require_equal_shapes(const char* op, const shape_t<N>& first, const S&... rest) {
  (require<shape_error>(rest == first, op, ": the inputs must have equal shapes, got ", first,
                        " and ", rest),
   ...);
}

template <std::size_t I, class DY>
auto copy_of(const DY& dy) {
  return copy(as_view(dy));
}

/// Calls c.pullback(ys...) with a clear error when the connection has none.
template <class C, class... Y>
auto connection_pullback(const C& c, const Y&... ys) {
  static_assert(
      requires { c.pullback(ys...); },
      "lux: this connection has no pullback: give the function object a member "
      "`pullback(ys...)` returning std::pair{y, back} with back(dy) -> std::tuple of dys, or use "
      "lux::add / lux::mul / lux::vcat / lux::max_");
  return c.pullback(ys...);
}

/// Prints a connection: C::name, "nothing" for lux::none, "f" otherwise.
template <class C>
void print_connection(std::ostream& os) {
  if constexpr (std::is_same_v<C, none_t>)
    os << "nothing";
  else if constexpr (requires { C::name; })
    os << C::name;
  else
    os << "f";
}
/// The gradients of the K inputs, as the std::tuple a tuple input's gradient is.
template <class T, std::size_t K>
auto to_tuple(std::array<T, K>&& g) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) { return std::tuple{std::move(g[I])...}; }
  (std::make_index_sequence<K>{});
}
}  // namespace detail

/// Lux's `+` (variadic, equal shapes).
struct add {
  static constexpr const char* name = "+";
  template <class... Y>
  auto operator()(const Y&... ys) const {
    [[maybe_unused]] detail::connection_args<Y...> check;
    detail::require_equal_shapes("+", as_view(ys).shape()...);
    return sum(ys...);
  }
  template <class... Y>
  auto pullback(const Y&... ys) const {
    auto y = (*this)(ys...);
    auto back = [](const auto& dy) {
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return std::tuple{detail::copy_of<I>(dy)...};
      }
      (std::index_sequence_for<Y...>{});
    };
    return std::pair{std::move(y), back};
  }
  template <std::size_t N, class... S>
  shape_t<N> output_shape(const shape_t<N>& first, const S&... rest) const {
    detail::require_equal_shapes("+", first, rest...);
    return first;
  }

 private:
  template <class Y0, class... Y>
  static auto sum(const Y0& y0, const Y&... ys) {
    auto out = detail::owned_tensor(y0);
    (
        [&] {
          const auto v = detail::owned_tensor(ys);
          for (index_t k = 0; k < out.numel(); ++k) out.data()[k] += v.data()[k];
        }(),
        ...);
    return out;
  }
};

namespace detail {
/// Shared base for the elementwise connections over equal shapes (mul, max_).
template <class Op>
struct elementwise_connection {
  template <class... Y>
  auto operator()(const Y&... ys) const {
    using A = connection_args<Y...>;
    require_equal_shapes(Op::name, as_view(ys).shape()...);
    std::array<typename A::tensor, A::K> in{owned_tensor(ys)...};
    return Op::combine(in);
  }
  template <class... Y>
  auto pullback(const Y&... ys) const {
    using A = connection_args<Y...>;
    require_equal_shapes(Op::name, as_view(ys).shape()...);
    std::array<typename A::tensor, A::K> in{owned_tensor(ys)...};
    auto y = Op::combine(in);
    auto back = [in = std::move(in)](const auto& dy) {
      const auto d = owned_tensor(dy);
      require<shape_error>(d.shape() == in[0].shape(), Op::name, ": the output gradient has shape ",
                           d.shape(), ", expected ", in[0].shape());
      auto g = Op::grads(in, d);
      return to_tuple(std::move(g));
    };
    return std::pair{std::move(y), std::move(back)};
  }
  template <std::size_t N, class... S>
  shape_t<N> output_shape(const shape_t<N>& first, const S&... rest) const {
    require_equal_shapes(Op::name, first, rest...);
    return first;
  }
};
}  // namespace detail

/// Lux's `.*` (elementwise product, variadic).
struct mul : detail::elementwise_connection<mul> {
  static constexpr const char* name = ".*";
  template <class Tn, std::size_t K>
  static Tn combine(const std::array<Tn, K>& in) {
    Tn out = in[0];
    for (std::size_t i = 1; i < K; ++i)
      for (index_t k = 0; k < out.numel(); ++k) out.data()[k] *= in[i].data()[k];
    return out;
  }
  template <class Tn, std::size_t K>
  static std::array<Tn, K> grads(const std::array<Tn, K>& in, const Tn& dy) {
    std::array<Tn, K> g;
    for (std::size_t i = 0; i < K; ++i) {
      g[i] = dy;
      for (std::size_t j = 0; j < K; ++j)
        if (j != i)
          for (index_t k = 0; k < dy.numel(); ++k) g[i].data()[k] *= in[j].data()[k];
    }
    return g;
  }
};

/// Elementwise max (Maxout's reduction); the gradient goes to the first maximal input.
struct max_ : detail::elementwise_connection<max_> {
  static constexpr const char* name = "max";
  template <class Tn, std::size_t K>
  static Tn combine(const std::array<Tn, K>& in) {
    Tn out = in[0];
    for (std::size_t i = 1; i < K; ++i)
      for (index_t k = 0; k < out.numel(); ++k)
        out.data()[k] = std::max(out.data()[k], in[i].data()[k]);
    return out;
  }
  template <class Tn, std::size_t K>
  static std::array<Tn, K> grads(const std::array<Tn, K>& in, const Tn& dy) {
    std::array<Tn, K> g;
    for (std::size_t i = 0; i < K; ++i) g[i] = Tn(dy.shape());  // zeros
    for (index_t k = 0; k < dy.numel(); ++k) {
      std::size_t best = 0;
      for (std::size_t i = 1; i < K; ++i)
        if (in[i].data()[k] > in[best].data()[k]) best = i;
      g[best].data()[k] = dy.data()[k];
    }
    return g;
  }
};

namespace detail {
/// Concatenation along dimension D (0: vcat, 1: hcat).
template <std::size_t D, class Self>
struct cat_connection {
  template <class... Y>
  auto operator()(const Y&... ys) const {
    return run(ys...).first;
  }
  template <class... Y>
  auto pullback(const Y&... ys) const {
    auto [y, shapes] = run(ys...);
    auto back = [shapes, yshape = y.shape()](const auto& dy) {
      using A = connection_args<Y...>;
      const auto d = owned_tensor(dy);
      require<shape_error>(d.shape() == yshape, Self::name, ": the output gradient has shape ",
                           d.shape(), ", expected ", yshape);
      std::array<typename A::tensor, A::K> g;
      for (std::size_t i = 0; i < A::K; ++i) g[i] = typename A::tensor(shapes[i]);
      index_t offset = 0;
      const index_t inner = inner_size(yshape), outer = outer_size(yshape);
      for (std::size_t i = 0; i < A::K; ++i) {
        const index_t blk = inner * shapes[i][D];
        for (index_t o = 0; o < outer; ++o)
          std::copy_n(d.data() + o * inner * yshape[D] + offset, blk, g[i].data() + o * blk);
        offset += blk;
      }
      return to_tuple(std::move(g));
    };
    return std::pair{std::move(y), std::move(back)};
  }
  template <std::size_t N, class... S>
  shape_t<N> output_shape(const shape_t<N>& first, const S&... rest) const {
    static_assert(D < N, "hcat: the inputs need rank >= 2");
    shape_t<N> out = first;
    (
        [&] {
          for (std::size_t k = 0; k < N; ++k)
            require<shape_error>(k == D || rest[k] == first[k], Self::name,
                                 ": the inputs must agree in every dimension but ", D, ", got ",
                                 first, " and ", rest);
          out[D] += rest[D];
        }(),
        ...);
    return out;
  }

 private:
  template <std::size_t N>
  static index_t inner_size(const shape_t<N>& s) {
    index_t n = 1;
    for (std::size_t k = 0; k < D; ++k) n *= s[k];
    return n;
  }
  template <std::size_t N>
  static index_t outer_size(const shape_t<N>& s) {
    index_t n = 1;
    for (std::size_t k = D + 1; k < N; ++k) n *= s[k];
    return n;
  }
  template <class... Y>
  auto run(const Y&... ys) const {
    using A = connection_args<Y...>;
    static_assert(D < A::N, "hcat: the inputs need rank >= 2");
    std::array<typename A::tensor, A::K> in{owned_tensor(ys)...};
    std::array<shape_t<A::N>, A::K> shapes{as_view(ys).shape()...};
    const auto yshape = output_shape(as_view(ys).shape()...);
    auto y = A::tensor::uninitialized(yshape);
    const index_t inner = inner_size(yshape), outer = outer_size(yshape);
    index_t offset = 0;
    for (std::size_t i = 0; i < A::K; ++i) {
      const index_t blk = inner * shapes[i][D];
      for (index_t o = 0; o < outer; ++o)
        std::copy_n(in[i].data() + o * blk, blk, y.data() + o * inner * yshape[D] + offset);
      offset += blk;
    }
    return std::pair{std::move(y), shapes};
  }
};
}  // namespace detail

/// Julia's vcat: concatenation along dim 0.
struct vcat : detail::cat_connection<0, vcat> {
  static constexpr const char* name = "vcat";
};
/// Julia's hcat: concatenation along dim 1 (inputs of rank ≥ 2).
struct hcat : detail::cat_connection<1, hcat> {
  static constexpr const char* name = "hcat";
};

LUX_NAMESPACE_END
