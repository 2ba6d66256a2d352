// luxcpp — Lux's Chain: layers applied in sequence, parameters and states nested under
// layer_1 … layer_N.
//
//   lux::Chain model(lux::Dense({784, 64}, lux::relu{}), lux::Dense({64, 10}));
//   auto [ps, st] = lux::setup<float>(rng, model);
//   auto [y, st2] = lux::apply(model, x, ps, st);
//   auto [y, st2, back] = lux::pullback(model, x, ps, st); auto [dx, dps] = back(dy);
//
// Chain<Layers...> is variadic over a std::tuple (never nested types), so a model's type
// lists its layers once. Each child's initial parameters and states come from its own
// stream `rng.fold_in(i)`, independent of evaluation order; `rng` then advances once.
// A shape error inside a child is re-thrown with the child's path prepended:
//   layer_3 (Dense 256 => 120): expected input (256, B), got (200, 32)
#pragma once

#include <ostream>
#include <string>
#include <tuple>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/core/named_tuple.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

namespace detail {
/// Runs f(); a shape_error from inside gets the child path `layer_<I+1>` prepended.
template <std::size_t I, class F>
decltype(auto) with_layer_path(F&& f) {
  try {
    return f();
  } catch (const shape_error& e) {
    const std::string msg = e.what();
    const std::string path = "layer_" + std::to_string(I + 1);
    if (msg.rfind("layer_", 0) == 0) throw shape_error(path + "." + msg);
    const auto colon = msg.find(": ");
    if (colon == std::string::npos) throw shape_error(path + ": " + msg);
    throw shape_error(path + " (" + msg.substr(0, colon) + "): " + msg.substr(colon + 2));
  }
}
}  // namespace detail

template <layer... Layers>
struct Chain {
  static_assert(sizeof...(Layers) >= 1, "lux::Chain: needs at least one layer");
  using is_lux_layer = void;
  static constexpr const char* name = "Chain";
  static constexpr std::size_t size = sizeof...(Layers);

  std::tuple<Layers...> layers;

  explicit Chain(Layers... ls) : layers(std::move(ls)...) {}

  template <std::size_t I>
  const auto& get() const {
    return std::get<I>(layers);
  }

  template <class T>
  auto init_parameters(rng& r) const {
    auto ps =
        init_children(r, [](rng& child, const auto& l) { return initialparameters<T>(child, l); });
    r.advance();
    return ps;
  }
  template <class T>
  auto init_states(rng& r) const {
    // fold_in with an offset so that states never reuse the parameters' streams.
    auto st = init_children(r, [](rng& child, const auto& l) {
      rng s = child.fold_in(0x5747);
      return initialstates<T>(s, l);
    });
    r.advance();
    return st;
  }

  template <std::size_t N>
  auto output_shape(const shape_t<N>& in) const {
    return output_shape_from<0>(in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    auto [y, states] = forward_from<0>(x, ps, st);
    return std::pair{std::move(y), make_named_tuple_from<ST>(std::move(states),
                                                             std::make_index_sequence<size>{})};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto [y, states, backs] = pullback_from<0>(x, ps, st);
    auto back = [backs = std::move(backs)](const auto& dy) {
      auto [dx, grads] = back_from<size - 1>(backs, dy);
      return gradients{std::move(dx), make_named_tuple_from<PS>(std::move(grads),
                                                                std::make_index_sequence<size>{})};
    };
    return pullback_result{
        std::move(y),
        make_named_tuple_from<ST>(std::move(states), std::make_index_sequence<size>{}),
        std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "Chain(";
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((os << (I ? ", " : "") << "layer_" << I + 1 << " = " << std::get<I>(layers)), ...);
    }
    (std::make_index_sequence<size>{});
    os << ")";
  }

 private:
  template <class Init>
  auto init_children(rng& r, Init init) const {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return make_named_tuple<layer_name<I + 1>()...>([&] {
        rng child = r.fold_in(I);
        return init(child, std::get<I>(layers));
      }()...);
    }
    (std::make_index_sequence<size>{});
  }

  template <std::size_t I, std::size_t N>
  auto output_shape_from(const shape_t<N>& in) const {
    auto out = detail::with_layer_path<I>([&] { return outputsize(std::get<I>(layers), in); });
    if constexpr (I + 1 == size)
      return out;
    else
      return output_shape_from<I + 1>(out);
  }

  template <std::size_t I, class X, class PS, class ST>
  auto forward_from(const X& x, const PS& ps, const ST& st) const {
    auto r = detail::with_layer_path<I>(
        [&] { return apply(std::get<I>(layers), x, ps.template at<I>(), st.template at<I>()); });
    if constexpr (I + 1 == size) {
      return std::pair{std::move(r.first), std::tuple{std::move(r.second)}};
    } else {
      auto rest = forward_from<I + 1>(r.first, ps, st);
      return std::pair{std::move(rest.first),
                       std::tuple_cat(std::tuple{std::move(r.second)}, std::move(rest.second))};
    }
  }

  template <std::size_t I, class X, class PS, class ST>
  auto pullback_from(const X& x, const PS& ps, const ST& st) const {
    auto r = detail::with_layer_path<I>([&] {
      return lux::pullback(std::get<I>(layers), x, ps.template at<I>(), st.template at<I>());
    });
    if constexpr (I + 1 == size) {
      return std::tuple{std::move(r.y), std::tuple{std::move(r.st)}, std::tuple{std::move(r.back)}};
    } else {
      auto rest = pullback_from<I + 1>(r.y, ps, st);
      return std::tuple{
          std::move(std::get<0>(rest)),
          std::tuple_cat(std::tuple{std::move(r.st)}, std::move(std::get<1>(rest))),
          std::tuple_cat(std::tuple{std::move(r.back)}, std::move(std::get<2>(rest)))};
    }
  }

  // Walks the pullbacks from the last layer to the first: returns (dx, (dps_0 … dps_I)).
  template <std::size_t I, class Backs, class DY>
  static auto back_from(const Backs& backs, const DY& dy) {
    auto g = detail::with_layer_path<I>([&] { return std::get<I>(backs)(dy); });
    if constexpr (I == 0) {
      return std::pair{std::move(g.dx), std::tuple{std::move(g.dps)}};
    } else {
      auto rest = back_from<I - 1>(backs, g.dx);
      return std::pair{std::move(rest.first),
                       std::tuple_cat(std::move(rest.second), std::tuple{std::move(g.dps)})};
    }
  }
};

LUX_NAMESPACE_END
