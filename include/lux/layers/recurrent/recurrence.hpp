// luxcpp — Lux's Recurrence (a cell run over a sequence, batch-last or time-last ordering,
// return_sequence) and StatefulRecurrentCell (a cell that keeps its carry in the state).
#pragma once

#include "lux/layers/recurrent/cells.hpp"

LUX_NAMESPACE_BEGIN
// ---------------------------------------------------------------------------------------------
// Recurrence
// ---------------------------------------------------------------------------------------------

/// Lux's AbstractTimeSeriesDataBatchOrdering.
enum class sequence_ordering { batch_last_index, time_last_index };
inline constexpr sequence_ordering batch_last_index = sequence_ordering::batch_last_index;
inline constexpr sequence_ordering time_last_index = sequence_ordering::time_last_index;

/// Tag selecting Recurrence's return_sequence = true.
struct return_sequence_t {};
inline constexpr return_sequence_t return_sequence{};

struct recurrence_options {
  sequence_ordering ordering = batch_last_index;
};

template <class Cell, bool ReturnSequence = false>
struct Recurrence {
  using is_lux_layer = void;
  static constexpr const char* name = "Recurrence";
  static constexpr bool returns_sequence = ReturnSequence;

  Cell cell;
  sequence_ordering ordering = batch_last_index;

  explicit Recurrence(Cell c, recurrence_options opts = {}) requires(!ReturnSequence)
      : cell(std::move(c)), ordering(opts.ordering) {}
  Recurrence(Cell c, return_sequence_t, recurrence_options opts = {}) requires ReturnSequence
      : cell(std::move(c)),
        ordering(opts.ordering) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return initialparameters<T>(r, cell);
  }
  template <class T>
  auto init_states(rng& r) const {
    return initialstates<T>(r, cell);
  }

  /// Shape of one output h: (out, B) for an (F, T, B) / (F, B, T) input, (out, 1) for (F, T).
  template <std::size_t N>
  shape_t<2> output_shape(const shape_t<N>& in) const {
    static_assert(N == 2 || N == 3, "Recurrence: the input is (F, T), (F, T, B) or (F, B, T)");
    index_t batch = 1;
    if constexpr (N == 3) batch = ordering == batch_last_index ? in[2] : in[1];
    return cell.output_shape(shape_t<2>{in[0], batch});
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    const auto steps = slices(x);
    auto [out, st1] = cell.forward(steps[0], ps, st);
    auto carry = std::get<1>(std::move(out));
    using H = std::remove_cvref_t<decltype(std::get<0>(out))>;
    std::vector<H> seq;
    if constexpr (ReturnSequence) seq.push_back(std::get<0>(std::move(out)));
    H last = std::get<0>(std::move(out));
    ST s = std::move(st1);
    for (std::size_t t = 1; t < steps.size(); ++t) {
      auto [o2, s2] = cell.forward(std::tie(steps[t], carry), ps, s);
      s = std::move(s2);
      carry = std::get<1>(std::move(o2));
      if constexpr (ReturnSequence)
        seq.push_back(std::get<0>(std::move(o2)));
      else
        last = std::get<0>(std::move(o2));
    }
    if constexpr (ReturnSequence)
      return std::pair{std::move(seq), std::move(s)};
    else
      return std::pair{std::move(last), std::move(s)};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    auto steps = slices(x);
    using XV = typename decltype(steps)::value_type;
    auto pr0 = cell.pullback(steps[0], ps, st);
    auto carry = std::get<1>(pr0.y);
    using Carry = decltype(carry);
    using H = std::remove_cvref_t<decltype(std::get<0>(pr0.y))>;
    using R = decltype(cell.pullback(std::declval<std::tuple<const XV&, const Carry&>>(), ps, st));
    using Back = decltype(std::declval<R>().back);
    std::vector<Back> backs;
    backs.reserve(steps.size());
    std::vector<H> seq;
    if constexpr (ReturnSequence) seq.push_back(std::get<0>(pr0.y));
    H last = std::get<0>(pr0.y);
    ST s = pr0.st;
    for (std::size_t t = 1; t < steps.size(); ++t) {
      auto pr = cell.pullback(std::tuple<const XV&, const Carry&>(steps[t], carry), ps, s);
      s = std::move(pr.st);
      carry = std::get<1>(pr.y);
      if constexpr (ReturnSequence)
        seq.push_back(std::get<0>(std::move(pr.y)));
      else
        last = std::get<0>(std::move(pr.y));
      backs.push_back(std::move(pr.back));
    }
    auto back = [self = *this, back0 = std::move(pr0.back), backs = std::move(backs),
                 xref = dx_layout(x)](const auto& dy) {
      const std::size_t n = backs.size() + 1;
      if constexpr (ReturnSequence)
        require<shape_error>(dy.size() == n, "Recurrence: the output gradient has ", dy.size(),
                             " steps, expected ", n);
      auto dx = xref;  // zero-filled, x's layout
      std::optional<Carry> dcarry;
      using DPS = decltype(back0(std::tuple{lux::none, lux::none}).dps);
      std::optional<DPS> dps;
      const auto accumulate = [&](DPS&& g) {
        if (!dps) {
          dps = std::move(g);
        } else {
          zip_leaves(*dps, g, [](std::string_view, auto& a, const auto& b) {
            for (index_t i = 0; i < a.numel(); ++i) a.data()[i] += b.data()[i];
          });
        }
      };
      const auto step = [&](std::size_t t, const auto& dyt) {
        if (t == 0) {
          auto g = dcarry ? back0(std::tuple{dyt, *dcarry}) : back0(std::tuple{dyt, lux::none});
          self.store_dx(dx, 0, g.dx);
          accumulate(std::move(g.dps));
        } else {
          auto g = dcarry ? backs[t - 1](std::tuple{dyt, *dcarry})
                          : backs[t - 1](std::tuple{dyt, lux::none});
          self.store_dx(dx, t, std::get<0>(g.dx));
          dcarry = std::get<1>(std::move(g.dx));
          accumulate(std::move(g.dps));
        }
      };
      for (std::size_t t = n; t-- > 0;) {
        if constexpr (ReturnSequence)
          step(t, as_view(dy[t]));
        else if (t == n - 1)
          step(t, as_view(dy));
        else
          step(t, lux::none);
      }
      return gradients{std::move(dx), std::move(*dps)};
    };
    if constexpr (ReturnSequence)
      return pullback_result{std::move(seq), std::move(s), std::move(back)};
    else
      return pullback_result{std::move(last), std::move(s), std::move(back)};
  }

  void print(std::ostream& os) const {
    os << "Recurrence(" << cell;
    if constexpr (ReturnSequence) os << ", return_sequence=true";
    if (ordering == time_last_index) os << ", ordering=TimeLastIndex()";
    os << ")";
  }

 private:
  /// The time steps as views: (F, B) strided views of an array, or views of a vector's items.
  template <class X>
  auto slices(const X& x) const {
    if constexpr (is_array_v<X>) {
      using T = array_value_t<X>;
      constexpr std::size_t N = array_rank_v<X>;
      static_assert(N == 2 || N == 3, "Recurrence: the input is (F, T), (F, T, B) or (F, B, T)");
      const auto v = as_view(x);
      std::vector<StridedView<const T, N - 1>> out;
      const bool time_in_1 = N == 2 || ordering == batch_last_index;
      const index_t n = v.shape()[time_in_1 ? 1 : 2];
      require<shape_error>(n > 0, "Recurrence: the sequence is empty, got input ", v.shape());
      for (index_t t = 0; t < n; ++t) {
        StridedView<const T, N - 1> s =
            time_in_1 ? v.select(1, t) : StridedView<const T, N - 1>(v.select_last(t));
        out.push_back(s);
      }
      return out;
    } else {
      using E = std::remove_cvref_t<decltype(x[0])>;
      using V = decltype(as_view(std::declval<const E&>()));
      std::vector<V> out;
      require<shape_error>(!x.empty(), "Recurrence: the sequence is empty");
      for (const auto& e : x) out.push_back(as_view(e));
      return out;
    }
  }
  /// A zero gradient in x's layout.
  template <class X>
  static auto dx_layout(const X& x) {
    if constexpr (is_array_v<X>) {
      using T = array_value_t<X>;
      return Tensor<T, array_rank_v<X>>(as_view(x).shape());
    } else {
      using E = std::remove_cvref_t<decltype(x[0])>;
      using T = array_value_t<E>;
      std::vector<Tensor<T, array_rank_v<E>>> out;
      for (const auto& e : x) out.emplace_back(as_view(e).shape());
      return out;
    }
  }
  template <class DX, class G>
  void store_dx(DX& dx, std::size_t t, const G& g) const {
    if constexpr (is_array_v<DX>) {
      constexpr std::size_t N = DX::rank;
      const bool time_in_1 = N == 2 || ordering == batch_last_index;
      const auto ti = static_cast<index_t>(t);
      auto dst = time_in_1 ? dx.select(1, ti)
                           : StridedView<typename DX::value_type, N - 1>(dx.select_last(ti));
      copy_into(dst, g.cview());
    } else {
      dx[t] = g;
    }
  }
};
template <class Cell>
Recurrence(Cell) -> Recurrence<Cell, false>;
template <class Cell>
Recurrence(Cell, recurrence_options) -> Recurrence<Cell, false>;
template <class Cell>
Recurrence(Cell, return_sequence_t) -> Recurrence<Cell, true>;
template <class Cell>
Recurrence(Cell, return_sequence_t, recurrence_options) -> Recurrence<Cell, true>;

// ---------------------------------------------------------------------------------------------
// StatefulRecurrentCell
// ---------------------------------------------------------------------------------------------

/// The carry a StatefulRecurrentCell keeps: the cell's carry tuple and whether there is one
/// (Lux's `nothing`). Assigning lux::none clears it (update_state(st, "carry", lux::none)).
template <class T, std::size_t K>
struct recurrent_carry {
  using tuple_type =
      std::conditional_t<K == 1, std::tuple<Tensor<T, 2>>, std::tuple<Tensor<T, 2>, Tensor<T, 2>>>;
  bool present = false;
  tuple_type values{};

  recurrent_carry& operator=(none_t) {
    present = false;
    values = tuple_type{};
    return *this;
  }
};

template <class Cell>
struct StatefulRecurrentCell {
  using is_lux_layer = void;
  static constexpr const char* name = "StatefulRecurrentCell";
  Cell cell;

  explicit StatefulRecurrentCell(Cell c) : cell(std::move(c)) {}

  template <class T>
  auto init_parameters(rng& r) const {
    return initialparameters<T>(r, cell);
  }
  template <class T>
  auto init_states(rng& r) const {
    auto cs = initialstates<T>(r, cell);
    return make_named_tuple<"cell", "carry">(std::move(cs), recurrent_carry<T, Cell::carry_size>{});
  }
  template <std::size_t N>
  auto output_shape(const shape_t<N>& in) const {
    return cell.output_shape(in);
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS& ps, const ST& st) const {
    check_type<X, ST>();
    const auto& c = st.template get<"carry">();
    auto run = [&](auto&& r) {
      ST st2 = st;
      st2.template get<"cell">() = std::move(r.second);
      auto& nc = st2.template get<"carry">();
      nc.present = true;
      nc.values = std::get<1>(std::move(r.first));
      return std::pair{std::get<0>(std::move(r.first)), std::move(st2)};
    };
    if (c.present) return run(cell.forward(std::tie(x, c.values), ps, st.template get<"cell">()));
    return run(cell.forward(x, ps, st.template get<"cell">()));
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS& ps, const ST& st) const {
    check_type<X, ST>();
    using CT = typename std::remove_cvref_t<decltype(st.template get<"carry">())>::tuple_type;
    using TX = std::tuple<const X&, const CT&>;
    using B0 = decltype(cell.pullback(x, ps, st.template get<"cell">()).back);
    using B1 = decltype(cell.pullback(std::declval<TX>(), ps, st.template get<"cell">()).back);
    std::optional<B0> b0;
    std::optional<B1> b1;
    const auto& c = st.template get<"carry">();
    ST st2 = st;
    auto finish = [&](auto&& r) {
      st2.template get<"cell">() = std::move(r.st);
      auto& nc = st2.template get<"carry">();
      nc.present = true;
      nc.values = std::get<1>(r.y);
      return std::get<0>(std::move(r.y));
    };
    auto y = [&] {
      if (c.present) {
        auto r = cell.pullback(TX(x, c.values), ps, st.template get<"cell">());
        b1.emplace(std::move(r.back));
        return finish(std::move(r));
      }
      auto r = cell.pullback(x, ps, st.template get<"cell">());
      b0.emplace(std::move(r.back));
      return finish(std::move(r));
    }();
    auto back = [b0 = std::move(b0), b1 = std::move(b1)](const auto& dy) {
      if (b1) {
        auto g = (*b1)(std::tuple{std::cref(dy).get(), lux::none});
        return gradients{std::get<0>(std::move(g.dx)), std::move(g.dps)};
      }
      auto g = (*b0)(std::tuple{std::cref(dy).get(), lux::none});
      return gradients{std::move(g.dx), std::move(g.dps)};
    };
    return pullback_result{std::move(y), std::move(st2), std::move(back)};
  }

  void print(std::ostream& os) const { os << "StatefulRecurrentCell(" << cell << ")"; }

 private:
  template <class X, class ST>
  static constexpr void check_type() {
    using C = std::remove_cvref_t<decltype(std::declval<const ST&>().template get<"carry">())>;
    using T = array_value_t<X>;
    static_assert(std::is_same_v<typename C::tuple_type,
                                 typename recurrent_carry<T, Cell::carry_size>::tuple_type>,
                  "StatefulRecurrentCell: x's element type must be the one the state was set up "
                  "with (lux::setup<T>)");
  }
};

LUX_NAMESPACE_END
