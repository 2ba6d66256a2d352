// RNNCell, LSTMCell, GRUCell, Recurrence, StatefulRecurrentCell: Lux's parameter counts and
// names, forward against a naive float64 reference and PyTorch, pullbacks (cells, BPTT, one
// stateful step) against central finite differences for x, the carry and every parameter, Lux's
// ordering test, error paths and printing.
#include <catch2/catch.hpp>

#include <cmath>
#include <lux/layers/recurrent.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"
#include "support/layer_check.hpp"

namespace {
using M = lux::Tensor<double, 2>;
using V = lux::Tensor<double, 1>;

double sig(double v) { return 1 / (1 + std::exp(-v)); }

enum class kind { rnn, lstm, gru };

// Naive float64 step: returns {h', c'} (c' empty except LSTM). Biases may be null.
std::pair<M, M> naive_step(kind k, const M& wih, const M& whh, const V* bih, const V* bhh,
                           const M& x, const M& h, const M* c) {
  const lux::index_t go = wih.size(0), o = whh.size(1), B = x.size(1);
  M zi(go, B), zh(go, B);
  for (lux::index_t b = 0; b < B; ++b)
    for (lux::index_t r = 0; r < go; ++r) {
      double s = bih ? (*bih)[r] : 0.0, t = bhh ? (*bhh)[r] : 0.0;
      for (lux::index_t i = 0; i < wih.size(1); ++i) s += wih(r, i) * x(i, b);
      for (lux::index_t i = 0; i < o; ++i) t += whh(r, i) * h(i, b);
      zi(r, b) = s;
      zh(r, b) = t;
    }
  M hn(o, B), cn;
  if (k == kind::lstm) cn = M(o, B);
  for (lux::index_t b = 0; b < B; ++b)
    for (lux::index_t j = 0; j < o; ++j) {
      const auto a = [&](lux::index_t g) { return zi(g * o + j, b) + zh(g * o + j, b); };
      if (k == kind::rnn) {
        hn(j, b) = std::tanh(a(0));
      } else if (k == kind::lstm) {
        const double i = sig(a(0)), f = sig(a(1)), g = std::tanh(a(2)), og = sig(a(3));
        cn(j, b) = f * (*c)(j, b) + i * g;
        hn(j, b) = og * std::tanh(cn(j, b));
      } else {
        const double r = sig(a(0)), z = sig(a(1));
        const double n = std::tanh(zi(2 * o + j, b) + r * zh(2 * o + j, b));
        hn(j, b) = (1 - z) * n + z * h(j, b);
      }
    }
  return {hn, cn};
}

template <class PS>
const V* bias_or_null(const PS& ps, const char* name) {
  if constexpr (std::remove_cvref_t<PS>::size >= 4) {
    return std::string(name) == "bias_ih" ? &ps.template get<"bias_ih">()
                                          : &ps.template get<"bias_hh">();
  } else {
    return nullptr;
  }
}

// Forward vs the naive step and the tuple-form pullback vs finite differences for one cell.
template <class Cell>
void check_cell(const Cell& cell, kind k, std::uint64_t seed) {
  lux::rng r(seed);
  auto [ps, st] = lux::setup<double>(r, cell);
  const lux::index_t in = cell.in_dims, o = cell.out_dims, B = 3;
  auto x = lux_test::random_tensor<double>(lux::make_shape(in, B), seed + 1);
  auto h = lux_test::random_tensor<double>(lux::make_shape(o, B), seed + 2);
  auto c = lux_test::random_tensor<double>(lux::make_shape(o, B), seed + 3);
  auto v = lux_test::random_tensor<double>(lux::make_shape(o, B), seed + 4);
  auto vh = lux_test::random_tensor<double>(lux::make_shape(o, B), seed + 5);
  auto vc = lux_test::random_tensor<double>(lux::make_shape(o, B), seed + 6);
  const auto* bih = bias_or_null(ps, "bias_ih");
  const auto* bhh = bias_or_null(ps, "bias_hh");
  auto ref = naive_step(k, ps.template get<"weight_ih">(), ps.template get<"weight_hh">(), bih, bhh,
                        x, h, &c);
  CHECK(lux::outputsize(cell, x.shape()) == lux::make_shape(o, B));

  if constexpr (Cell::carry_size == 1) {
    auto input = std::tuple{x, std::tuple{h}};
    auto [y, st2] = lux::apply(cell, input, ps, st);
    CHECK(lux_test::max_rel_err(std::get<0>(y), ref.first) < 1e-13);
    CHECK(lux_test::max_rel_err(std::get<0>(std::get<1>(y)), std::get<0>(y)) == 0.0);
    auto loss = [&](const M& xx, const M& hh, const auto& p) {
      auto [yy, s] = lux::apply(cell, std::tuple{xx, std::tuple{hh}}, p, st);
      return lux_test::dot(std::get<0>(yy), v) + lux_test::dot(std::get<0>(std::get<1>(yy)), vh);
    };
    auto pr = lux::pullback(cell, input, ps, st);
    auto [dx, dps] = pr.back(std::tuple{v, std::tuple{vh}});
    CHECK(lux_test::max_rel_err(std::get<0>(dx),
                                lux_test::numerical_gradient<2>(
                                    [&](const M& xx) { return loss(xx, h, ps); }, x)) < 1e-6);
    CHECK(lux_test::max_rel_err(std::get<0>(std::get<1>(dx)),
                                lux_test::numerical_gradient<2>(
                                    [&](const M& hh) { return loss(x, hh, ps); }, h)) < 1e-6);
    auto names =
        lux_test::check_parameter_gradients([&](const auto& p) { return loss(x, h, p); }, ps, dps);
    CHECK(names.size() == decltype(ps)::size);
  } else {
    auto input = std::tuple{x, std::tuple{h, c}};
    auto [y, st2] = lux::apply(cell, input, ps, st);
    CHECK(lux_test::max_rel_err(std::get<0>(y), ref.first) < 1e-13);
    CHECK(lux_test::max_rel_err(std::get<1>(std::get<1>(y)), ref.second) < 1e-13);
    auto loss = [&](const M& xx, const M& hh, const M& cc, const auto& p) {
      auto [yy, s] = lux::apply(cell, std::tuple{xx, std::tuple{hh, cc}}, p, st);
      return lux_test::dot(std::get<0>(yy), v) + lux_test::dot(std::get<0>(std::get<1>(yy)), vh) +
             lux_test::dot(std::get<1>(std::get<1>(yy)), vc);
    };
    auto pr = lux::pullback(cell, input, ps, st);
    auto [dx, dps] = pr.back(std::tuple{v, std::tuple{vh, vc}});
    CHECK(lux_test::max_rel_err(std::get<0>(dx),
                                lux_test::numerical_gradient<2>(
                                    [&](const M& xx) { return loss(xx, h, c, ps); }, x)) < 1e-6);
    CHECK(lux_test::max_rel_err(std::get<0>(std::get<1>(dx)),
                                lux_test::numerical_gradient<2>(
                                    [&](const M& hh) { return loss(x, hh, c, ps); }, h)) < 1e-6);
    CHECK(lux_test::max_rel_err(std::get<1>(std::get<1>(dx)),
                                lux_test::numerical_gradient<2>(
                                    [&](const M& cc) { return loss(x, h, cc, ps); }, c)) < 1e-6);
    auto names = lux_test::check_parameter_gradients(
        [&](const auto& p) { return loss(x, h, c, p); }, ps, dps);
    CHECK(names.size() == decltype(ps)::size);
    // lux::none for the carry gradients: the output gradient alone.
    auto g1 = pr.back(std::tuple{v, lux::none});
    auto g2 = pr.back(std::tuple{v, std::tuple{lux::none, lux::none}});
    CHECK(lux_test::max_rel_err(std::get<0>(g1.dx), std::get<0>(g2.dx)) == 0.0);
  }
}
}  // namespace

TEST_CASE("Recurrent cells: Lux's parameter counts, names and states", "[layers][recurrent]") {
  CHECK(lux::parameterlength(lux::RNNCell({3, 5})) == 5 * 3 + 5 * 5 + 5 + 5);
  CHECK(lux::parameterlength(lux::LSTMCell({3, 5})) == 20 * 3 + 20 * 5 + 20 + 20);
  CHECK(lux::parameterlength(lux::GRUCell({3, 5})) == 15 * 3 + 15 * 5 + 15 + 15);
  constexpr lux::recurrent_flags all{.use_bias = true, .train_state = true, .train_memory = true};
  CHECK(lux::parameterlength(lux::LSTMCell<all>({3, 5})) == 200 + 5 + 5);
  constexpr lux::recurrent_flags nb{.use_bias = false};
  CHECK(lux::parameterlength(lux::GRUCell<nb>({3, 5})) == 15 * 3 + 15 * 5);
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, lux::LSTMCell<all>({3, 5}));
  using P = decltype(ps);
  static_assert(P::names[0] == "weight_ih" && P::names[1] == "weight_hh" &&
                P::names[2] == "bias_ih" && P::names[3] == "bias_hh" &&
                P::names[4] == "hidden_state" && P::names[5] == "memory");
  static_assert(decltype(st)::size == 1 && decltype(st)::names[0] == "rng");
  CHECK(ps.get<"weight_ih">().shape() == lux::make_shape(20, 3));
  CHECK(ps.get<"memory">().shape() == lux::make_shape(5));
  // Default init U(-1/sqrt(out), 1/sqrt(out)) for weights and biases; zeros for the states.
  const double bound = 1 / std::sqrt(5.0);
  double mx = 0;
  for (float w : ps.get<"weight_hh">()) mx = std::max(mx, std::abs(double(w)));
  for (float w : ps.get<"bias_ih">()) mx = std::max(mx, std::abs(double(w)));
  CHECK(mx <= bound);
  CHECK(mx > 0.8 * bound);
  CHECK(ps.get<"hidden_state">()[2] == 0.0f);
  // Per-gate initializers: LSTM forget bias of ones, the others zeros.
  lux::LSTMCell per({2, 3}, {.init_weight = lux::glorot_uniform{},
                             .init_bias = {lux::zeros{}, lux::ones{}, lux::zeros{}, lux::zeros{}}});
  auto pp = lux::setup<double>(r, per).first;
  CHECK(pp.get<"bias_ih">()[3] == 1.0);
  CHECK(pp.get<"bias_ih">()[2] == 0.0);
  CHECK(pp.get<"bias_hh">()[6] == 0.0);
  CHECK_THROWS_AS(lux::LSTMCell({2, 3}, {.init_bias = {lux::zeros{}, lux::ones{}}}),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::GRUCell({0, 3}), lux::argument_error);
}

TEST_CASE("Recurrent cells: forward vs naive reference, pullback vs finite differences",
          "[layers][recurrent]") {
  SECTION("RNNCell") { check_cell(lux::RNNCell({3, 4}), kind::rnn, 11); }
  SECTION("LSTMCell") { check_cell(lux::LSTMCell({3, 4}), kind::lstm, 21); }
  SECTION("GRUCell") { check_cell(lux::GRUCell({3, 4}), kind::gru, 31); }
  SECTION("GRUCell without bias") {
    check_cell(lux::GRUCell<lux::recurrent_flags{.use_bias = false}>({2, 3}), kind::gru, 41);
  }
  SECTION("LSTMCell without bias") {
    check_cell(lux::LSTMCell<lux::recurrent_flags{.use_bias = false}>({2, 3}), kind::lstm, 51);
  }
}

TEST_CASE("Recurrent cells: x alone draws the carry from st.rng or the trained state",
          "[layers][recurrent]") {
  lux::rng r(5);
  // Zeros carry: same as passing zeros explicitly; st keeps its type.
  lux::GRUCell gru({3, 4});
  auto [ps, st] = lux::setup<double>(r, gru);
  auto x = lux_test::random_tensor<double>(lux::make_shape(3, 2), 3);
  auto [y, st2] = lux::apply(gru, x, ps, st);
  auto [y0, st0] = lux::apply(gru, std::tuple{x, std::tuple{M(4, 2)}}, ps, st);
  CHECK(lux_test::max_rel_err(std::get<0>(y), std::get<0>(y0)) == 0.0);
  static_assert(std::is_same_v<decltype(st2), decltype(st)>);
  // A random init_state draws from st.rng, which advances.
  lux::RNNCell rnd({3, 4}, lux::tanh_{}, {.init_state = lux::randn{}});
  auto [pr, sr] = lux::setup<double>(r, rnd);
  auto [ya, sa] = lux::apply(rnd, x, pr, sr);
  auto [yb, sb] = lux::apply(rnd, x, pr, sa);
  CHECK(!(sa.get<"rng">() == sr.get<"rng">()));
  CHECK(lux_test::max_rel_err(std::get<0>(ya), std::get<0>(yb)) > 1e-3);
  // A vector x is (in, 1).
  auto [yv, sv] = lux::apply(gru, V(lux::make_shape(3)), ps, st);
  CHECK(std::get<0>(yv).shape() == lux::make_shape(4, 1));

  // train_state / train_memory: the trained vectors repeated over B; their gradient is Σ_B.
  constexpr lux::recurrent_flags tr{.train_state = true, .train_memory = true};
  lux::LSTMCell<tr> cell({3, 4}, {.init_state = lux::randn{}, .init_memory = lux::randn{}});
  auto [pl, sl] = lux::setup<double>(r, cell);
  auto v = lux_test::random_tensor<double>(lux::make_shape(4, 2), 8);
  auto vc = lux_test::random_tensor<double>(lux::make_shape(4, 2), 9);
  M h0(4, 2), c0(4, 2);
  for (lux::index_t b = 0; b < 2; ++b)
    for (lux::index_t j = 0; j < 4; ++j) {
      h0(j, b) = pl.get<"hidden_state">()[j];
      c0(j, b) = pl.get<"memory">()[j];
    }
  auto ref = naive_step(kind::lstm, pl.get<"weight_ih">(), pl.get<"weight_hh">(),
                        &pl.get<"bias_ih">(), &pl.get<"bias_hh">(), x, h0, &c0);
  auto loss = [&](const M& xx, const auto& p) {
    auto [yy, s] = lux::apply(cell, xx, p, sl);
    return lux_test::dot(std::get<0>(yy), v) + lux_test::dot(std::get<1>(std::get<1>(yy)), vc);
  };
  auto pb = lux::pullback(cell, x, pl, sl);
  CHECK(lux_test::max_rel_err(std::get<0>(pb.y), ref.first) < 1e-13);
  auto [dx, dps] = pb.back(std::tuple{v, std::tuple{lux::none, vc}});
  static_assert(std::is_same_v<decltype(dx), M>);
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<2>(
                                      [&](const M& xx) { return loss(xx, pl); }, x)) < 1e-6);
  auto names =
      lux_test::check_parameter_gradients([&](const auto& p) { return loss(x, p); }, pl, dps);
  CHECK(names == std::vector<std::string>{"weight_ih", "weight_hh", "bias_ih", "bias_hh",
                                          "hidden_state", "memory"});
}

TEST_CASE("Recurrent cells: PyTorch fixtures", "[layers][recurrent][fixture]") {
  lux_test::fixture_file f("layers_recurrent.txt");
  const auto params = [&](const std::string& n) {
    return lux::make_named_tuple<"weight_ih", "weight_hh", "bias_ih", "bias_hh">(
        f.tensor<double, 2>(n + "_wih"), f.tensor<double, 2>(n + "_whh"),
        f.tensor<double, 1>(n + "_bih"), f.tensor<double, 1>(n + "_bhh"));
  };
  const auto check_dps = [&](const std::string& n, const auto& dps) {
    CHECK(lux_test::max_rel_err(dps.template get<"weight_ih">(), f.tensor<double, 2>(n + "_dwih")) <
          1e-12);
    CHECK(lux_test::max_rel_err(dps.template get<"weight_hh">(), f.tensor<double, 2>(n + "_dwhh")) <
          1e-12);
    CHECK(lux_test::max_rel_err(dps.template get<"bias_ih">(), f.tensor<double, 1>(n + "_dbih")) <
          1e-12);
    CHECK(lux_test::max_rel_err(dps.template get<"bias_hh">(), f.tensor<double, 1>(n + "_dbhh")) <
          1e-12);
  };
  lux::rng r(1);
  const auto x = [&](const std::string& n) { return f.tensor<double, 2>(n + "_x"); };
  const auto h = [&](const std::string& n) { return f.tensor<double, 2>(n + "_h"); };
  SECTION("nn.RNNCell and nn.GRUCell") {
    const auto run = [&](const auto& cell, const std::string& n) {
      auto st = lux::setup<double>(r, cell).second;
      auto ps = params(n);
      auto pr = lux::pullback(cell, std::tuple{x(n), std::tuple{h(n)}}, ps, st);
      CHECK(lux_test::max_rel_err(std::get<0>(pr.y), f.tensor<double, 2>(n + "_y")) < 1e-13);
      auto [dx, dps] = pr.back(std::tuple{f.tensor<double, 2>(n + "_v"), lux::none});
      CHECK(lux_test::max_rel_err(std::get<0>(dx), f.tensor<double, 2>(n + "_dx")) < 1e-12);
      CHECK(lux_test::max_rel_err(std::get<0>(std::get<1>(dx)), f.tensor<double, 2>(n + "_dh")) <
            1e-12);
      check_dps(n, dps);
    };
    run(lux::RNNCell({3, 4}), "rnn");
    run(lux::GRUCell({3, 4}), "gru");
  }
  SECTION("nn.LSTMCell") {
    lux::LSTMCell cell({3, 4});
    auto st = lux::setup<double>(r, cell).second;
    auto ps = params("lstm");
    auto c = f.tensor<double, 2>("lstm_c");
    auto pr = lux::pullback(cell, std::tuple{x("lstm"), std::tuple{h("lstm"), c}}, ps, st);
    CHECK(lux_test::max_rel_err(std::get<0>(pr.y), f.tensor<double, 2>("lstm_y")) < 1e-13);
    CHECK(lux_test::max_rel_err(std::get<1>(std::get<1>(pr.y)), f.tensor<double, 2>("lstm_cy")) <
          1e-13);
    auto [dx, dps] = pr.back(std::tuple{f.tensor<double, 2>("lstm_v"),
                                        std::tuple{lux::none, f.tensor<double, 2>("lstm_vc")}});
    CHECK(lux_test::max_rel_err(std::get<0>(dx), f.tensor<double, 2>("lstm_dx")) < 1e-12);
    CHECK(lux_test::max_rel_err(std::get<0>(std::get<1>(dx)), f.tensor<double, 2>("lstm_dh")) <
          1e-12);
    CHECK(lux_test::max_rel_err(std::get<1>(std::get<1>(dx)), f.tensor<double, 2>("lstm_dc")) <
          1e-12);
    check_dps("lstm", dps);
  }
  SECTION("nn.LSTM over a sequence vs Recurrence(return_sequence), time_last_index") {
    lux::Recurrence rec(lux::LSTMCell({3, 4}), lux::return_sequence,
                        {.ordering = lux::time_last_index});
    auto st = lux::setup<double>(r, rec).second;
    auto ps = params("lstmseq");
    auto xs = f.tensor<double, 3>("lstmseq_x");  // (F, B, T)
    auto ys = f.tensor<double, 3>("lstmseq_y");
    auto vs = f.tensor<double, 3>("lstmseq_v");
    auto pr = lux::pullback(rec, xs, ps, st);
    REQUIRE(pr.y.size() == 5);
    std::vector<M> dy;
    for (lux::index_t t = 0; t < 5; ++t) {
      CHECK(lux_test::max_rel_err(pr.y[t], lux::copy(ys.select_last(t))) < 1e-13);
      dy.push_back(lux::copy(vs.select_last(t)));
    }
    auto [dx, dps] = pr.back(dy);
    CHECK(lux_test::max_rel_err(dx, f.tensor<double, 3>("lstmseq_dx")) < 1e-12);
    check_dps("lstmseq", dps);
  }
}

TEST_CASE("Recurrence: Lux's ordering test case", "[layers][recurrent]") {
  lux::RNNCell<lux::identity> cell({1, 1}, lux::identity{},
                                   {.init_weight = lux::ones{}, .init_bias = lux::zeros{}});
  lux::rng r(2);
  auto [ps, st] = lux::setup<double>(r, cell);
  const std::vector<double> expected{0.5, 0.5, 1.2, 2.0};
  const auto check_seq = [&](const std::vector<M>& ys) {
    REQUIRE(ys.size() == 4);
    for (std::size_t t = 0; t < 4; ++t) CHECK(ys[t](0, 0) == Approx(expected[t]).epsilon(1e-15));
  };
  // W_ih = W_hh = 1, biases 0: h_t = x_t + h_{t-1}.
  lux::Tensor<double, 3> x(lux::make_shape(1, 4, 1), {0.5, 0.0, 0.7, 0.8});
  lux::Recurrence rs(cell, lux::return_sequence);
  check_seq(lux::apply(rs, x, ps, st).first);
  lux::Recurrence rt(cell, lux::return_sequence, {.ordering = lux::time_last_index});
  check_seq(lux::apply(rt, x.reshape(1, 1, 4), ps, st).first);
  check_seq(lux::apply(rs, lux::copy(x.reshape(1, 4)), ps, st).first);  // a matrix is (F, T)
  std::vector<M> list;
  for (double v : {0.5, 0.0, 0.7, 0.8}) list.emplace_back(lux::make_shape(1, 1), v);
  check_seq(lux::apply(rs, list, ps, st).first);
  lux::Recurrence last(cell);
  CHECK(lux::apply(last, x, ps, st).first(0, 0) == Approx(2.0));
  CHECK(lux::outputsize(last, x.shape()) == lux::make_shape(1, 1));
}

TEST_CASE("Recurrence: BPTT matches finite differences for both orderings", "[layers][recurrent]") {
  lux::rng r(7);
  lux::LSTMCell cell({3, 4});
  auto [ps, st] = lux::setup<double>(r, cell);
  const lux::index_t F = 3, T = 4, B = 2;
  auto xb = lux_test::random_tensor<double>(lux::make_shape(F, T, B), 70);  // batch_last
  // Naive unrolled reference over (F, T, B).
  const auto naive = [&](const lux::Tensor<double, 3>& x, const auto& p) {
    M h(4, B), c(4, B);
    std::vector<M> out;
    for (lux::index_t t = 0; t < T; ++t) {
      M xt(F, B);
      for (lux::index_t b = 0; b < B; ++b)
        for (lux::index_t i = 0; i < F; ++i) xt(i, b) = x(i, t, b);
      auto [hn, cn] =
          naive_step(kind::lstm, p.template get<"weight_ih">(), p.template get<"weight_hh">(),
                     &p.template get<"bias_ih">(), &p.template get<"bias_hh">(), xt, h, &c);
      h = hn;
      c = cn;
      out.push_back(h);
    }
    return out;
  };
  std::vector<M> vs;
  for (lux::index_t t = 0; t < T; ++t)
    vs.push_back(lux_test::random_tensor<double>(lux::make_shape(4, B), 80 + t));

  SECTION("last output, batch_last_index") {
    lux::Recurrence rec(cell);
    auto ref = naive(xb, ps);
    auto pr = lux::pullback(rec, xb, ps, st);
    CHECK(lux_test::max_rel_err(pr.y, ref.back()) < 1e-13);
    CHECK(lux::outputsize(rec, xb.shape()) == pr.y.shape());
    auto loss = [&](const lux::Tensor<double, 3>& x, const auto& p) {
      return lux_test::dot(lux::apply(rec, x, p, st).first, vs[0]);
    };
    auto [dx, dps] = pr.back(vs[0]);
    CHECK(lux_test::max_rel_err(
              dx, lux_test::numerical_gradient<3>(
                      [&](const lux::Tensor<double, 3>& x) { return loss(x, ps); }, xb)) < 1e-6);
    CHECK(lux_test::check_parameter_gradients([&](const auto& p) { return loss(xb, p); }, ps, dps)
              .size() == 4);
  }
  SECTION("sequence, time_last_index") {
    lux::Recurrence rec(cell, lux::return_sequence, {.ordering = lux::time_last_index});
    lux::Tensor<double, 3> xt(lux::make_shape(F, B, T));  // same data, (F, B, T)
    for (lux::index_t t = 0; t < T; ++t)
      for (lux::index_t b = 0; b < B; ++b)
        for (lux::index_t i = 0; i < F; ++i) xt(i, b, t) = xb(i, t, b);
    auto ref = naive(xb, ps);
    auto pr = lux::pullback(rec, xt, ps, st);
    REQUIRE(pr.y.size() == static_cast<std::size_t>(T));
    for (lux::index_t t = 0; t < T; ++t) CHECK(lux_test::max_rel_err(pr.y[t], ref[t]) < 1e-13);
    auto loss = [&](const lux::Tensor<double, 3>& x, const auto& p) {
      auto ys = lux::apply(rec, x, p, st).first;
      double s = 0;
      for (lux::index_t t = 0; t < T; ++t) s += lux_test::dot(ys[t], vs[t]);
      return s;
    };
    auto [dx, dps] = pr.back(vs);
    CHECK(lux_test::max_rel_err(
              dx, lux_test::numerical_gradient<3>(
                      [&](const lux::Tensor<double, 3>& x) { return loss(x, ps); }, xt)) < 1e-6);
    CHECK(lux_test::check_parameter_gradients([&](const auto& p) { return loss(xt, p); }, ps, dps)
              .size() == 4);
  }
  SECTION("sequence given as a std::vector, GRUCell") {
    lux::GRUCell gru({3, 4});
    auto [pg, sg] = lux::setup<double>(r, gru);
    lux::Recurrence rec(gru, lux::return_sequence);
    std::vector<M> xs;
    for (lux::index_t t = 0; t < T; ++t)
      xs.push_back(lux_test::random_tensor<double>(lux::make_shape(F, B), 90 + t));
    auto loss = [&](const std::vector<M>& x, const auto& p) {
      auto ys = lux::apply(rec, x, p, sg).first;
      double s = 0;
      for (lux::index_t t = 0; t < T; ++t) s += lux_test::dot(ys[t], vs[t]);
      return s;
    };
    auto pr = lux::pullback(rec, xs, pg, sg);
    auto [dx, dps] = pr.back(vs);
    REQUIRE(dx.size() == xs.size());
    for (lux::index_t t = 0; t < T; ++t) {
      auto num = lux_test::numerical_gradient<2>(
          [&](const M& xt) {
            auto x2 = xs;
            x2[t] = xt;
            return loss(x2, pg);
          },
          xs[t]);
      CHECK(lux_test::max_rel_err(dx[t], num) < 1e-6);
    }
    CHECK(lux_test::check_parameter_gradients([&](const auto& p) { return loss(xs, p); }, pg, dps)
              .size() == 4);
  }
}

TEST_CASE("StatefulRecurrentCell: carry kept between calls, reset, one-step pullback",
          "[layers][recurrent]") {
  lux::rng r(9);
  lux::StatefulRecurrentCell sc(lux::LSTMCell({3, 4}));
  auto [ps, st] = lux::setup<double>(r, sc);
  static_assert(decltype(st)::names[0] == "cell" && decltype(st)::names[1] == "carry");
  CHECK(!st.get<"carry">().present);
  CHECK(lux::outputsize(sc, lux::make_shape(3, 2)) == lux::make_shape(4, 2));
  auto x1 = lux_test::random_tensor<double>(lux::make_shape(3, 2), 1);
  auto x2 = lux_test::random_tensor<double>(lux::make_shape(3, 2), 2);
  auto [y1, st1] = lux::apply(sc, x1, ps, st);
  static_assert(std::is_same_v<decltype(st1), decltype(st)>);
  CHECK(st1.get<"carry">().present);
  auto [y2, st2] = lux::apply(sc, x2, ps, st1);
  // Same as Recurrence over (x1, x2).
  std::vector<M> seq{x1, x2};
  lux::Recurrence rec(lux::LSTMCell({3, 4}), lux::return_sequence);
  auto ys = lux::apply(rec, seq, ps, st.get<"cell">()).first;
  CHECK(lux_test::max_rel_err(y1, ys[0]) == 0.0);
  CHECK(lux_test::max_rel_err(y2, ys[1]) == 0.0);
  // Reset with Lux's update_state(st, :carry, nothing).
  auto reset = lux::update_state(st2, "carry", lux::none);
  CHECK(!reset.get<"carry">().present);
  CHECK(lux_test::max_rel_err(lux::apply(sc, x2, ps, reset).first,
                              lux::apply(sc, x2, ps, st).first) == 0.0);
  CHECK(lux::statelength(st) == 2);

  // Pullback of one step with a carry: the carry is a constant.
  auto v = lux_test::random_tensor<double>(lux::make_shape(4, 2), 3);
  auto loss = [&](const M& x, const auto& p) {
    return lux_test::dot(lux::apply(sc, x, p, st1).first, v);
  };
  auto pr = lux::pullback(sc, x2, ps, st1);
  CHECK(lux_test::max_rel_err(pr.y, y2) == 0.0);
  CHECK(pr.st.get<"carry">().present);
  auto [dx, dps] = pr.back(v);
  CHECK(lux_test::max_rel_err(dx, lux_test::numerical_gradient<2>(
                                      [&](const M& x) { return loss(x, ps); }, x2)) < 1e-6);
  CHECK(lux_test::check_parameter_gradients([&](const auto& p) { return loss(x2, p); }, ps, dps)
            .size() == 4);
  // And without one.
  auto pr0 = lux::pullback(sc, x1, ps, st);
  auto g0 = pr0.back(v);
  auto num0 = lux_test::numerical_gradient<2>(
      [&](const M& x) { return lux_test::dot(lux::apply(sc, x, ps, st).first, v); }, x1);
  CHECK(lux_test::max_rel_err(g0.dx, num0) < 1e-6);
}

TEST_CASE("Recurrent layers: float run, errors and printing", "[layers][recurrent]") {
  lux::rng r(4);
  lux::LSTMCell cell({3, 5});
  auto [ps, st] = lux::setup<float>(r, cell);
  auto psd = lux::setup<double>(r, cell).first;
  lux::zip_leaves(psd, ps, [](std::string_view, auto& d, const auto& f) {
    for (lux::index_t i = 0; i < d.numel(); ++i) d.data()[i] = static_cast<double>(f.data()[i]);
  });
  auto xf = lux_test::random_tensor<float>(lux::make_shape(3, 4), 5);
  auto hf = lux_test::random_tensor<float>(lux::make_shape(5, 4), 6);
  auto cf = lux_test::random_tensor<float>(lux::make_shape(5, 4), 7);
  auto [yf, s1] = lux::apply(cell, std::tuple{xf, std::tuple{hf, cf}}, ps, st);
  const M cd = lux_test::to_double(cf);
  auto ref =
      naive_step(kind::lstm, psd.get<"weight_ih">(), psd.get<"weight_hh">(), &psd.get<"bias_ih">(),
                 &psd.get<"bias_hh">(), lux_test::to_double(xf), lux_test::to_double(hf), &cd);
  CHECK(lux_test::max_rel_err(std::get<0>(yf), ref.first) < 1e-6);
  auto pr = lux::pullback(cell, xf, ps, st);
  auto g = pr.back(std::get<0>(pr.y));
  CHECK(g.dx.shape() == xf.shape());

  lux::Tensor<float, 2> bad(4, 2);
  CHECK_THROWS_WITH(lux::apply(cell, bad, ps, st),
                    "LSTMCell 3 => 5: expected input (3, B), got (4, 2)");
  lux::Tensor<float, 2> x(3, 2), h(5, 2), hbad(4, 2);
  CHECK_THROWS_WITH(lux::apply(cell, std::tuple{x, std::tuple{hbad, h}}, ps, st),
                    "LSTMCell 3 => 5: expected hidden state (5, 2), got (4, 2)");
  CHECK_THROWS_WITH(
      lux::apply(cell, std::tuple{x, std::tuple{h, lux::Tensor<float, 2>(5, 3)}}, ps, st),
      "LSTMCell 3 => 5: expected memory (5, 2), got (5, 3)");
  auto wrong = ps;
  wrong.get<"weight_hh">() = lux::Tensor<float, 2>(20, 4);
  CHECK_THROWS_WITH(lux::apply(cell, x, wrong, st),
                    "LSTMCell 3 => 5: parameter weight_hh has shape (20, 4), expected (20, 5)");
  lux::Recurrence rec(cell);
  CHECK_THROWS_WITH(lux::apply(rec, lux::Tensor<float, 3>(2, 4, 2), ps, st),
                    "LSTMCell 3 => 5: expected input (3, B), got (2, 2)");
  CHECK_THROWS_AS(lux::apply(rec, lux::Tensor<float, 3>(3, 0, 2), ps, st), lux::shape_error);
  auto prr = lux::pullback(rec, lux::Tensor<float, 3>(3, 2, 2), ps, st);
  CHECK_THROWS_AS(prr.back(lux::Tensor<float, 2>(5, 3)), lux::shape_error);

  std::ostringstream os;
  os << cell << " | " << rec << " | " << lux::RNNCell({3, 5}) << " | "
     << lux::RNNCell({3, 5}, lux::relu{}) << " | " << lux::GRUCell({2, 4}) << " | "
     << lux::LSTMCell<lux::recurrent_flags{.use_bias = false, .train_state = true}>({3, 5}) << " | "
     << lux::Recurrence(lux::GRUCell({2, 4}), lux::return_sequence) << " | "
     << lux::StatefulRecurrentCell(cell);
  CHECK(os.str() ==
        "LSTMCell(3 => 5) | Recurrence(LSTMCell(3 => 5)) | RNNCell(3 => 5, tanh) | RNNCell(3 => 5, "
        "relu) | GRUCell(2 => 4) | LSTMCell(3 => 5, use_bias=false, train_state=true) | "
        "Recurrence(GRUCell(2 => 4), return_sequence=true) | "
        "StatefulRecurrentCell(LSTMCell(3 => 5))");
}
