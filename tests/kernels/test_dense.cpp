// Tests of lux/kernels/dense.hpp (fused_dense_bias_activation, its forward-with-saved and
// backward) and lux/kernels/batched_matmul.hpp (batched_matmul and its backward) — the oracle
// ladder of DESIGN.md §10:
//   1. independent float64 references written here (not the generic kernels);
//   2. generic vs looped agreement;
//   3. central finite differences in double for dW, dx, db and for both batched_matmul operands
//      (broadcast and op flags included);
//   4. PyTorch fixtures (tests/fixtures/make_dense_fixtures.py → dense.txt);
//   5. error paths.
// Activations: identity, relu, tanh_ (derivative from the output) and gelu (from the input).
//
// Float tolerances. Every output entry is a K-term dot product accumulated in float (Eigen in
// blocks, the generic mode in order). With inputs U(-1, 1) the rounding error grows like a random
// walk, ≈ u·sqrt(K)·(rms partial sum) with u = 6e-8, while max |ref| ≈ sqrt(K)/2. Measured
// errors relative to max |ref|: 1.2e-7 … 7e-7 for K = 29 … 300 (the shapes below), and, probed
// separately up to K = 16384, at most 7e-7 for the looped mode (Eigen's blocked sums) and
// 2.2e-8·sqrt(K) for the generic mode's single running sum (2.8e-6 at K = 16384). The bound used,
// 1e-5 · max(1, sqrt(K / 256)), keeps > 10× headroom at every K and still fails on any indexing
// or transposition mistake (those give O(1) errors).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <complex>
#include <lux/kernels/batched_matmul.hpp>
#include <lux/kernels/dense.hpp>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/fixture.hpp"

namespace {

using lux::index_t;
using lux::op;
using lux::shape_t;
using lux::Tensor;
using lux_test::max_rel_err;
using lux_test::random_tensor;
using lux_test::to_double;

template <class T>
double tol(index_t K) {
  if constexpr (std::is_same_v<T, float>)
    return 1e-5 * std::max(1.0, std::sqrt(static_cast<double>(K) / 256.0));
  else
    return 1e-13 * std::max(1.0, std::sqrt(static_cast<double>(K) / 256.0));
}

// ---- float64 references ------------------------------------------------------------------------
constexpr double kPi = 3.14159265358979323846;

double ref_value(lux::identity, double z) { return z; }
double ref_value(lux::relu, double z) { return z > 0 ? z : 0.0; }
double ref_value(lux::tanh_, double z) { return std::tanh(z); }
double ref_value(lux::gelu, double z) {
  return 0.5 * z * (1 + std::tanh(std::sqrt(2 / kPi) * (z + 0.044715 * z * z * z)));
}
double ref_deriv(lux::identity, double) { return 1; }
double ref_deriv(lux::relu, double z) { return z > 0 ? 1.0 : 0.0; }
double ref_deriv(lux::tanh_, double z) {
  const double t = std::tanh(z);
  return 1 - t * t;
}
double ref_deriv(lux::gelu, double z) {
  const double c = std::sqrt(2 / kPi);
  const double t = std::tanh(c * (z + 0.044715 * z * z * z));
  return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z);
}

template <class Fn>
void for_each_activation(Fn&& fn) {
  fn(lux::identity{});
  fn(lux::relu{});
  fn(lux::tanh_{});
  fn(lux::gelu{});
}

using D2 = Tensor<double, 2>;
using D1 = Tensor<double, 1>;
using D3 = Tensor<double, 3>;

/// z = W x (+ b), y = f(z) in double; b may be nullptr.
template <class F>
std::pair<D2, D2> ref_dense(F f, const D2& W, const D2& x, const D1* b) {
  const index_t M = W.size(0), K = W.size(1), N = x.size(1);
  D2 z(shape_t<2>{M, N}), y(shape_t<2>{M, N});
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      double s = b ? (*b)(i) : 0.0;
      for (index_t k = 0; k < K; ++k) s += W(i, k) * x(k, j);
      z(i, j) = s;
      y(i, j) = ref_value(f, s);
    }
  return {std::move(z), std::move(y)};
}

struct ref_dense_grads {
  D2 dW, dx;
  D1 db;
};
template <class F>
ref_dense_grads ref_dense_backward(F f, const D2& W, const D2& x, const D1* b, const D2& dy) {
  const index_t M = W.size(0), K = W.size(1), N = x.size(1);
  const auto [z, y] = ref_dense(f, W, x, b);
  D2 dz(shape_t<2>{M, N});
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) dz(i, j) = dy(i, j) * ref_deriv(f, z(i, j));
  ref_dense_grads g{D2(shape_t<2>{M, K}), D2(shape_t<2>{K, N}), D1(shape_t<1>{M})};
  for (index_t i = 0; i < M; ++i)
    for (index_t k = 0; k < K; ++k) {
      double s = 0;
      for (index_t j = 0; j < N; ++j) s += dz(i, j) * x(k, j);
      g.dW(i, k) = s;
    }
  for (index_t k = 0; k < K; ++k)
    for (index_t j = 0; j < N; ++j) {
      double s = 0;
      for (index_t i = 0; i < M; ++i) s += W(i, k) * dz(i, j);
      g.dx(k, j) = s;
    }
  for (index_t i = 0; i < M; ++i) {
    double s = 0;
    for (index_t j = 0; j < N; ++j) s += dz(i, j);
    g.db(i) = s;
  }
  return g;
}

/// The op'd slice l of a (real): a plain (rows, cols) matrix.
D2 op_slice(const D3& a, op o, index_t l) {
  const bool t = o != op::none;
  const index_t r = t ? a.size(1) : a.size(0), c = t ? a.size(0) : a.size(1);
  D2 s(shape_t<2>{r, c});
  for (index_t i = 0; i < r; ++i)
    for (index_t j = 0; j < c; ++j) s(i, j) = t ? a(j, i, l) : a(i, j, l);
  return s;
}
D2 matmul(const D2& A, const D2& B, bool ta = false, bool tb = false) {
  const index_t m = ta ? A.size(1) : A.size(0), k = ta ? A.size(0) : A.size(1);
  const index_t n = tb ? B.size(0) : B.size(1);
  D2 C(shape_t<2>{m, n});
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t p = 0; p < k; ++p) s += (ta ? A(p, i) : A(i, p)) * (tb ? B(j, p) : B(p, j));
      C(i, j) = s;
    }
  return C;
}

D3 ref_bmm(const D3& a, op opa, const D3& b, op opb) {
  const index_t L = a.size(2) == 1 ? b.size(2) : a.size(2);  // a batch of 1 broadcasts
  const index_t m = opa == op::none ? a.size(0) : a.size(1);
  const index_t n = opb == op::none ? b.size(1) : b.size(0);
  D3 c(shape_t<3>{m, n, L});
  for (index_t l = 0; l < L; ++l) {
    const D2 C =
        matmul(op_slice(a, opa, a.size(2) == 1 ? 0 : l), op_slice(b, opb, b.size(2) == 1 ? 0 : l));
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c(i, j, l) = C(i, j);
  }
  return c;
}

/// ∂a' = Δ b'ᵀ, ∂b' = a'ᵀ Δ per slice, un-transposed and summed into batch-1 operands.
std::pair<D3, D3> ref_bmm_backward(const D3& dc, const D3& a, op opa, const D3& b, op opb) {
  D3 da(a.shape()), db(b.shape());
  const index_t m = dc.size(0), n = dc.size(1), L = dc.size(2);
  for (index_t l = 0; l < L; ++l) {
    const index_t la = a.size(2) == 1 ? 0 : l, lb = b.size(2) == 1 ? 0 : l;
    D2 D(shape_t<2>{m, n});
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) D(i, j) = dc(i, j, l);
    const D2 gA = matmul(D, op_slice(b, opb, lb), false, true);  // (m, k)
    const D2 gB = matmul(op_slice(a, opa, la), D, true, false);  // (k, n)
    for (index_t i = 0; i < gA.size(0); ++i)
      for (index_t p = 0; p < gA.size(1); ++p) {
        if (opa == op::none)
          da(i, p, la) += gA(i, p);
        else
          da(p, i, la) += gA(i, p);
      }
    for (index_t p = 0; p < gB.size(0); ++p)
      for (index_t j = 0; j < gB.size(1); ++j) {
        if (opb == op::none)
          db(p, j, lb) += gB(p, j);
        else
          db(j, p, lb) += gB(p, j);
      }
  }
  return {std::move(da), std::move(db)};
}

template <class T, std::size_t N>
Tensor<T, N> cast(const Tensor<double, N>& t) {
  auto out = Tensor<T, N>::uninitialized(t.shape());
  for (index_t i = 0; i < t.numel(); ++i) out.data()[i] = static_cast<T>(t.data()[i]);
  return out;
}

/// Calls fn(bias_or_none, bias_pointer_for_reference) for "with bias" and "without bias".
template <class T, class Fn>
void with_and_without_bias(const Tensor<T, 1>& b, const D1& bd, Fn&& fn) {
  SECTION("with bias") { fn(b, &bd); }
  SECTION("without bias") { fn(lux::none, static_cast<const D1*>(nullptr)); }
}

struct dense_shape {
  index_t M, K, N;
};
// Non-multiples of every SIMD width, degenerate sizes, and shapes large enough to be cut into
// several tiles run on several threads (300 × 200 × 150: 18 Mflop; 400 × 64 × 400: the output
// exceeds one tile).
const std::vector<dense_shape> kDenseShapes = {{13, 29, 7},    {1, 1, 1},     {16, 32, 8},
                                               {5, 0, 3},      {0, 4, 3},     {4, 3, 0},
                                               {37, 300, 129}, {400, 64, 400}};

// =================================================================================================
// fused_dense_bias_activation: forward
// =================================================================================================
TEMPLATE_TEST_CASE("fused_dense_bias_activation matches the float64 reference in both modes",
                   "[dense]", float, double) {
  using T = TestType;
  for (const auto& s : kDenseShapes) {
    CAPTURE(s.M, s.K, s.N);
    const auto W = random_tensor<T, 2>({s.M, s.K}, 1);
    const auto x = random_tensor<T, 2>({s.K, s.N}, 2);
    const auto b = random_tensor<T, 1>({s.M}, 3);
    const auto Wd = to_double(W);
    const auto xd = to_double(x);
    const auto bd = to_double(b);
    with_and_without_bias(b, bd, [&](const auto& bias, const D1* bref) {
      for_each_activation([&](auto f) {
        CAPTURE(decltype(f)::name);
        const auto [zr, yr] = ref_dense(f, Wd, xd, bref);
        const auto y = lux::fused_dense_bias_activation(f, W, x, bias);  // looped
        const auto yg = lux::fused_dense_bias_activation(lux::generic_op{}, f, W, x, bias);
        const auto yl = lux::fused_dense_bias_activation(lux::looped_op{}, f, W, x, bias);
        REQUIRE(y.shape() == shape_t<2>{s.M, s.N});
        CHECK(max_rel_err(y, yr) <= tol<T>(s.K));
        CHECK(max_rel_err(yg, yr) <= tol<T>(s.K));
        CHECK(max_rel_err(yl, y) == 0);
        CHECK(max_rel_err(y, yg) <= 2 * tol<T>(s.K));

        // The training forward: the same y, and z exactly when the derivative needs it.
        const auto r = lux::fused_dense_bias_activation_forward(f, W, x, bias);
        CHECK(max_rel_err(r.y, y) == 0);
        const auto rg = lux::fused_dense_bias_activation_forward(lux::generic_op{}, f, W, x, bias);
        CHECK(max_rel_err(rg.y, yg) == 0);
        if constexpr (std::is_same_v<decltype(f), lux::gelu>) {
          CHECK(max_rel_err(r.saved.z, zr) <= tol<T>(s.K));
          CHECK(max_rel_err(rg.saved.z, zr) <= tol<T>(s.K));
        } else {
          CHECK(r.saved.z.numel() == 0);
        }

        // Into a caller's buffer.
        Tensor<T, 2> out(shape_t<2>{s.M, s.N}, T(7));
        const auto ov = lux::fused_dense_bias_activation(f, W, x, bias, out.view());
        CHECK(ov.data() == out.data());
        CHECK(max_rel_err(out, y) == 0);
        Tensor<T, 2> outg(shape_t<2>{s.M, s.N}, T(7));
        lux::fused_dense_bias_activation(lux::generic_op{}, f, W, x, bias, outg.view());
        CHECK(max_rel_err(outg, yg) == 0);
      });
    });
  }
}

TEST_CASE("fused_dense_bias_activation: tile plans cover the output", "[dense]") {
  using lux::impl::dense_looped::plan_dense_tiles;
  for (index_t M : {1, 13, 64, 100, 1024, 4096})
    for (index_t N : {1, 7, 64, 256, 1000})
      for (index_t K : {1, 29, 1024})
        for (int threads : {1, 2, 3, 16})
          for (std::size_t bytes : {sizeof(float), sizeof(double)}) {
            CAPTURE(M, N, K, threads, bytes);
            const auto p = plan_dense_tiles(M, N, K, bytes, threads);
            CHECK(p.mb >= 1);
            CHECK(p.nb >= 1);
            CHECK(p.mb * p.row_tiles >= M);
            CHECK((p.row_tiles - 1) * p.mb < M);
            CHECK(p.nb * p.col_tiles >= N);
            CHECK((p.col_tiles - 1) * p.nb < N);
            CHECK((p.mb % (64 / static_cast<index_t>(bytes)) == 0 || p.mb == M));
            CHECK(p.threads >= 1);
            CHECK(p.threads <= std::max(threads, 1));
            CHECK(p.threads <= p.tiles());
          }
  // The benchmark shapes on 2 threads: one tile per thread, split along the rows.
  const auto a = plan_dense_tiles(1024, 256, 1024, sizeof(float), 2);
  CHECK(a.tiles() % 2 == 0);
  const auto b = plan_dense_tiles(4096, 64, 4096, sizeof(float), 2);
  CHECK(b.tiles() % 2 == 0);
  CHECK(b.col_tiles == 1);
}

TEST_CASE("fused_dense_bias_activation: strided inputs take the generic mode", "[dense]") {
  // x is every other column-slab of a (K, 2, N) tensor: a StridedView, so operation_mode_t picks
  // generic_op, which reads it through its strides.
  const index_t M = 6, K = 5, N = 4;
  const auto W = random_tensor<float, 2>({M, K}, 11);
  const auto x3 = random_tensor<float, 3>({K, 2, N}, 12);
  const auto b = random_tensor<float, 1>({M}, 13);
  const auto xs = x3.select(1, 1);
  static_assert(std::is_same_v<lux::operation_mode_t<decltype(W), decltype(xs)>, lux::generic_op>);
  const auto xc = lux::copy(xs);
  const auto y = lux::fused_dense_bias_activation(lux::tanh_{}, W, xs, b);
  const auto yc = lux::fused_dense_bias_activation(lux::tanh_{}, W, xc, b);
  CHECK(max_rel_err(y, yc) <= tol<float>(K));
  // A looped tag with a strided argument falls back to the generic overload.
  const auto yl = lux::fused_dense_bias_activation(lux::looped_op{}, lux::tanh_{}, W, xs, b);
  CHECK(max_rel_err(yl, y) == 0);
  // Backward with a strided x too.
  const auto dy = random_tensor<float, 2>({M, N}, 14);
  const auto g = lux::fused_dense_bias_activation_backward(lux::tanh_{}, dy, W, xs, b, y,
                                                           lux::dense_saved<float>{});
  const auto gc = lux::fused_dense_bias_activation_backward(lux::tanh_{}, dy, W, xc, b, yc,
                                                            lux::dense_saved<float>{});
  CHECK(max_rel_err(g.dweight, gc.dweight) <= tol<float>(N));
  CHECK(max_rel_err(g.dx, gc.dx) <= tol<float>(M));
  CHECK(max_rel_err(g.dbias, gc.dbias) <= tol<float>(N));
}

TEST_CASE("fused_dense_bias_activation: long double in the generic mode", "[dense]") {
  const index_t M = 7, K = 9, N = 5;
  const auto W = random_tensor<long double, 2>({M, K}, 21);
  const auto x = random_tensor<long double, 2>({K, N}, 22);
  const auto b = random_tensor<long double, 1>({M}, 23);
  const auto dy = random_tensor<long double, 2>({M, N}, 24);
  static_assert(std::is_same_v<lux::operation_mode_t<decltype(W), decltype(x)>, lux::generic_op>);
  const auto Wd = to_double(W);
  const auto xd = to_double(x);
  const auto bd = to_double(b);
  const auto dyd = to_double(dy);
  const auto r = lux::fused_dense_bias_activation_forward(lux::gelu{}, W, x, b);
  const auto [zr, yr] = ref_dense(lux::gelu{}, Wd, xd, &bd);
  CHECK(max_rel_err(r.y, yr) <= 1e-14);
  CHECK(max_rel_err(r.saved.z, zr) <= 1e-14);
  const auto g = lux::fused_dense_bias_activation_backward(lux::gelu{}, dy, W, x, b, r);
  const auto gr = ref_dense_backward(lux::gelu{}, Wd, xd, &bd, dyd);
  CHECK(max_rel_err(g.dweight, gr.dW) <= 1e-14);
  CHECK(max_rel_err(g.dx, gr.dx) <= 1e-14);
  CHECK(max_rel_err(g.dbias, gr.db) <= 1e-14);
}

// =================================================================================================
// fused_dense_bias_activation: backward
// =================================================================================================

/// The backward call with the arguments the activation needs (y for uses_output, saved.z else).
template <class M, class F, class DY, class W, class X, class B, class R>
auto dense_backward(M mode, F f, const DY& dy, const W& w, const X& x, const B& b, const R& r) {
  if constexpr (lux::activation_traits<F>::uses_output)
    return lux::fused_dense_bias_activation_backward(mode, f, dy, w, x, b, r.y, r.saved);
  else
    return lux::fused_dense_bias_activation_backward(mode, f, dy, w, x, b, lux::none, r.saved);
}

TEMPLATE_TEST_CASE("fused_dense_bias_activation_backward matches the float64 reference", "[dense]",
                   float, double) {
  using T = TestType;
  for (const auto& s : kDenseShapes) {
    CAPTURE(s.M, s.K, s.N);
    const auto W = random_tensor<T, 2>({s.M, s.K}, 31);
    const auto x = random_tensor<T, 2>({s.K, s.N}, 32);
    const auto b = random_tensor<T, 1>({s.M}, 33);
    const auto dy = random_tensor<T, 2>({s.M, s.N}, 34);
    const auto Wd = to_double(W);
    const auto xd = to_double(x);
    const auto bd = to_double(b);
    const auto dyd = to_double(dy);
    const index_t Kmax = std::max({s.M, s.N, s.K});
    with_and_without_bias(b, bd, [&](const auto& bias, const D1* bref) {
      for_each_activation([&](auto f) {
        CAPTURE(decltype(f)::name);
        const auto gr = ref_dense_backward(f, Wd, xd, bref, dyd);
        const auto r = lux::fused_dense_bias_activation_forward(f, W, x, bias);
        const auto g = dense_backward(lux::looped_op{}, f, dy, W, x, bias, r);
        const auto gg = dense_backward(lux::generic_op{}, f, dy, W, x, bias, r);
        const auto ga = lux::fused_dense_bias_activation_backward(f, dy, W, x, bias, r);
        REQUIRE(g.dweight.shape() == W.shape());
        REQUIRE(g.dx.shape() == x.shape());
        CHECK(max_rel_err(g.dweight, gr.dW) <= tol<T>(Kmax));
        CHECK(max_rel_err(g.dx, gr.dx) <= tol<T>(Kmax));
        CHECK(max_rel_err(gg.dweight, gr.dW) <= tol<T>(Kmax));
        CHECK(max_rel_err(gg.dx, gr.dx) <= tol<T>(Kmax));
        CHECK(max_rel_err(g.dweight, gg.dweight) <= 2 * tol<T>(Kmax));
        CHECK(max_rel_err(g.dx, gg.dx) <= 2 * tol<T>(Kmax));
        CHECK(max_rel_err(ga.dweight, g.dweight) == 0);
        CHECK(max_rel_err(ga.dx, g.dx) == 0);
        // Into caller buffers (filled with garbage first): the same numbers.
        Tensor<T, 2> dW(W.shape(), T(9)), dX(x.shape(), T(9));
        Tensor<T, 1> dB(b.shape(), T(9));
        const auto yarg = [&] {
          if constexpr (lux::activation_traits<decltype(f)>::uses_output)
            return r.y.cview();
          else
            return lux::none;
        }();
        const auto views = lux::fused_dense_bias_activation_backward(
            f, dy, W, x, bias, yarg, r.saved,
            lux::dense_gradient_views<T>{dW.view(), dX.view(), dB.view()});
        CHECK(views.dweight.data() == dW.data());
        CHECK(max_rel_err(dW, g.dweight) == 0);
        CHECK(max_rel_err(dX, g.dx) == 0);
        if (bref) CHECK(max_rel_err(dB, g.dbias) == 0);
        if (bref) {
          REQUIRE(g.dbias.shape() == b.shape());
          CHECK(max_rel_err(g.dbias, gr.db) <= tol<T>(Kmax));
          CHECK(max_rel_err(gg.dbias, gr.db) <= tol<T>(Kmax));
        } else {
          CHECK(g.dbias.numel() == 0);
          CHECK(gg.dbias.numel() == 0);
        }
      });
    });
  }
}

TEST_CASE("fused_dense_bias_activation: gradients match central finite differences",
          "[dense][gradient]") {
  const index_t M = 6, K = 5, N = 4;
  const auto W = random_tensor<double, 2>({M, K}, 41);
  const auto x = random_tensor<double, 2>({K, N}, 42);
  const auto b = random_tensor<double, 1>({M}, 43);
  const auto v = random_tensor<double, 2>({M, N}, 44);
  auto check_mode = [&](auto mode) {
    for_each_activation([&](auto f) {
      CAPTURE(decltype(f)::name, decltype(mode)::name);
      const auto r = lux::fused_dense_bias_activation_forward(mode, f, W, x, b);
      const auto g = dense_backward(mode, f, v, W, x, b, r);
      auto loss = [&](const auto& Wp, const auto& xp, const auto& bp) {
        return lux_test::dot(lux::fused_dense_bias_activation(mode, f, Wp, xp, bp), v);
      };
      const auto nW =
          lux_test::numerical_gradient<2>([&](const D2& p) { return loss(p, x, b); }, W);
      const auto nx =
          lux_test::numerical_gradient<2>([&](const D2& p) { return loss(W, p, b); }, x);
      const auto nb =
          lux_test::numerical_gradient<1>([&](const D1& p) { return loss(W, x, p); }, b);
      CHECK(max_rel_err(g.dweight, nW) <= 1e-6);
      CHECK(max_rel_err(g.dx, nx) <= 1e-6);
      CHECK(max_rel_err(g.dbias, nb) <= 1e-6);
      // Without a bias: the same dW and dx at the shifted point are not needed; check the
      // no-bias path's own derivatives.
      const auto r0 = lux::fused_dense_bias_activation_forward(mode, f, W, x, lux::none);
      const auto g0 = dense_backward(mode, f, v, W, x, lux::none, r0);
      auto loss0 = [&](const D2& Wp, const D2& xp) {
        return lux_test::dot(lux::fused_dense_bias_activation(mode, f, Wp, xp, lux::none), v);
      };
      CHECK(max_rel_err(g0.dweight, lux_test::numerical_gradient<2>(
                                        [&](const D2& p) { return loss0(p, x); }, W)) <= 1e-6);
      CHECK(max_rel_err(g0.dx, lux_test::numerical_gradient<2>(
                                   [&](const D2& p) { return loss0(W, p); }, x)) <= 1e-6);
    });
  };
  check_mode(lux::looped_op{});
  check_mode(lux::generic_op{});
}

TEST_CASE("fused_dense_bias_activation matches PyTorch (F.linear + activation, autograd)",
          "[dense][pytorch]") {
  const lux_test::fixture_file fx("dense.txt");
  const auto W = fx.tensor<double, 2>("dense_W");
  const auto x = fx.tensor<double, 2>("dense_x");
  const auto b = fx.tensor<double, 1>("dense_b");
  const auto v = fx.tensor<double, 2>("dense_v");
  const auto Wf = cast<float>(W);
  const auto xf = cast<float>(x);
  const auto bf = cast<float>(b);
  const auto vf = cast<float>(v);
  auto check = [&](auto f, const std::string& name, auto bias_d, auto bias_f) {
    CAPTURE(name);
    const auto y = fx.tensor<double, 2>("dense_" + name + "_y");
    const auto dW = fx.tensor<double, 2>("dense_" + name + "_dW");
    const auto dx = fx.tensor<double, 2>("dense_" + name + "_dx");
    // double, generic mode
    const auto r = lux::fused_dense_bias_activation_forward(lux::generic_op{}, f, W, x, bias_d);
    const auto g =
        lux::fused_dense_bias_activation_backward(lux::generic_op{}, f, v, W, x, bias_d, r);
    CHECK(max_rel_err(r.y, y) <= 1e-14);
    CHECK(max_rel_err(g.dweight, dW) <= 1e-14);
    CHECK(max_rel_err(g.dx, dx) <= 1e-14);
    // float, looped mode
    const auto rf = lux::fused_dense_bias_activation_forward(f, Wf, xf, bias_f);
    const auto gf = lux::fused_dense_bias_activation_backward(f, vf, Wf, xf, bias_f, rf);
    CHECK(max_rel_err(rf.y, y) <= 1e-6);
    CHECK(max_rel_err(gf.dweight, dW) <= 1e-6);
    CHECK(max_rel_err(gf.dx, dx) <= 1e-6);
    if (fx.has("dense_" + name + "_db")) {
      const auto db = fx.tensor<double, 1>("dense_" + name + "_db");
      CHECK(max_rel_err(g.dbias, db) <= 1e-14);
      CHECK(max_rel_err(gf.dbias, db) <= 1e-6);
    }
  };
  check(lux::relu{}, "relu", b, bf);
  check(lux::gelu{}, "gelu", b, bf);
  check(lux::identity{}, "identity", lux::none, lux::none);
}

TEST_CASE("fused_dense_bias_activation: bad shapes throw shape_error naming the kernel",
          "[dense][errors]") {
  using Catch::Contains;
  const Tensor<float, 2> W(shape_t<2>{64, 784});
  const Tensor<float, 2> x(shape_t<2>{700, 32});
  const Tensor<float, 2> xok(shape_t<2>{784, 32});
  const Tensor<float, 1> b(shape_t<1>{10});
  const Tensor<float, 1> bok(shape_t<1>{64});
  CHECK_THROWS_AS(lux::fused_dense_bias_activation(lux::relu{}, W, x, lux::none), lux::shape_error);
  CHECK_THROWS_WITH(
      lux::fused_dense_bias_activation(lux::relu{}, W, x, lux::none),
      "fused_dense_bias_activation: weight has shape (64, 784), x (700, 32): expected x of size "
      "(784, B)");
  CHECK_THROWS_AS(lux::fused_dense_bias_activation(lux::generic_op{}, lux::relu{}, W, x, bok),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation(lux::relu{}, W, xok, b),
                    "fused_dense_bias_activation: bias has shape (10), expected (64) to match "
                    "weight (64, 784)");
  CHECK_THROWS_AS(lux::fused_dense_bias_activation_forward(lux::gelu{}, W, x, bok),
                  lux::shape_error);

  // Output buffers: wrong shape, or overlapping an input.
  Tensor<float, 2> out(shape_t<2>{64, 31});
  CHECK_THROWS_AS(lux::fused_dense_bias_activation(lux::relu{}, W, xok, bok, out.view()),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation(lux::relu{}, W, xok, bok, out.view()),
                    Contains("fused_dense_bias_activation: out has shape (64, 31), expected "
                             "(64, 32)"));
  Tensor<float, 1> buf(shape_t<1>{100});
  const auto xs = lux::view(buf.data(), lux::make_shape(4, 3));
  const auto o = lux::view(buf.data() + 10, lux::make_shape(4, 3));
  const Tensor<float, 2> W4(shape_t<2>{4, 4});
  CHECK_THROWS_AS(lux::fused_dense_bias_activation(lux::relu{}, W4, xs, lux::none, o),
                  lux::argument_error);
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation(lux::relu{}, W4, xs, lux::none, o),
                    Contains("overlaps"));

  // Backward: dy, y and saved.z must fit.
  const Tensor<float, 2> dy(shape_t<2>{64, 31});
  const auto r = lux::fused_dense_bias_activation_forward(lux::relu{}, W, xok, bok);
  CHECK_THROWS_AS(lux::fused_dense_bias_activation_backward(lux::relu{}, dy, W, xok, bok, r),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation_backward(lux::relu{}, dy, W, xok, bok, r),
                    Contains("fused_dense_bias_activation_backward: dy has shape (64, 31)"));
  const Tensor<float, 2> dy_ok(shape_t<2>{64, 32});
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation_backward(lux::relu{}, dy_ok, W, xok, bok, dy,
                                                              lux::dense_saved<float>{}),
                    Contains("y has shape (64, 31)"));
  CHECK_THROWS_AS(lux::fused_dense_bias_activation_backward(lux::gelu{}, dy_ok, W, xok, bok,
                                                            lux::none, lux::dense_saved<float>{}),
                  lux::shape_error);
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation_backward(lux::gelu{}, dy_ok, W, xok, bok,
                                                              lux::none, lux::dense_saved<float>{}),
                    Contains("saved.z has shape (0, 0)"));
  CHECK_THROWS_WITH(lux::fused_dense_bias_activation_backward(lux::relu{}, dy_ok, W, x, bok, r),
                    Contains("fused_dense_bias_activation_backward: weight has shape (64, 784)"));

  // Backward into caller buffers: shapes and overlap.
  Tensor<float, 2> dW(W.shape()), dX(xok.shape()), dW_bad(shape_t<2>{784, 64});
  Tensor<float, 1> dB(bok.shape());
  CHECK_THROWS_WITH(
      lux::fused_dense_bias_activation_backward(
          lux::relu{}, dy_ok, W, xok, bok, r.y, r.saved,
          lux::dense_gradient_views<float>{dW_bad.view(), dX.view(), dB.view()}),
      Contains("fused_dense_bias_activation_backward: dweight has shape (784, 64), expected "
               "(64, 784)"));
  CHECK_THROWS_AS(lux::fused_dense_bias_activation_backward(
                      lux::relu{}, dy_ok, W, xok, bok, r.y, r.saved,
                      lux::dense_gradient_views<float>{dW.view(), dX.view(),
                                                       dX.view().reshape(-1).slice(0, 64)}),
                  lux::argument_error);
  CHECK_NOTHROW(lux::fused_dense_bias_activation_backward(
      lux::relu{}, dy_ok, W, xok, bok, r.y, r.saved,
      lux::dense_gradient_views<float>{dW.view(), dX.view(), dB.view()}));
}

// =================================================================================================
// batched_matmul
// =================================================================================================
struct bmm_case {
  index_t m, k, n, Ba, Bb;
  op opa, opb;
};
shape_t<3> stored_shape(index_t rows, index_t cols, index_t batch, op o) {
  return o == op::none ? shape_t<3>{rows, cols, batch} : shape_t<3>{cols, rows, batch};
}

const std::vector<bmm_case> kBmmCases = {
    {5, 7, 3, 4, 4, op::none, op::none},
    {5, 7, 3, 1, 4, op::none, op::none},       // a broadcast
    {5, 7, 3, 4, 1, op::transpose, op::none},  // b broadcast, a transposed
    {5, 7, 3, 1, 4, op::none, op::transpose},  // a broadcast, b transposed
    {5, 7, 3, 4, 4, op::transpose, op::transpose},
    {5, 7, 3, 4, 4, op::adjoint, op::none},  // adjoint = transpose (real)
    {6, 2, 9, 3, 3, op::none, op::adjoint},
    {1, 1, 1, 1, 1, op::none, op::none},
    {3, 0, 2, 2, 2, op::none, op::none},                // empty inner dimension: c = 0
    {3, 4, 2, 0, 0, op::none, op::none},                // empty batch
    {3, 4, 2, 1, 0, op::transpose, op::none},           // broadcast against an empty batch
    {96, 64, 80, 6, 6, op::none, op::transpose},        // OpenMP over the batch
    {64, 64, 64, 1, 16, op::none, op::none},            // parallel reduction for the broadcast a
    {64, 64, 64, 16, 1, op::transpose, op::transpose},  // ... for the broadcast b
    {256, 160, 224, 3, 3, op::none, op::none},          // few large slices: Eigen threads each GEMM
};

TEMPLATE_TEST_CASE("batched_matmul matches the float64 reference in both modes", "[bmm]", float,
                   double) {
  using T = TestType;
  for (const auto& c : kBmmCases) {
    CAPTURE(c.m, c.k, c.n, c.Ba, c.Bb, lux::op_name(c.opa), lux::op_name(c.opb));
    const auto a = random_tensor<T, 3>(stored_shape(c.m, c.k, c.Ba, c.opa), 51);
    const auto b = random_tensor<T, 3>(stored_shape(c.k, c.n, c.Bb, c.opb), 52);
    const auto ad = to_double(a);
    const auto bd = to_double(b);
    const auto cr = ref_bmm(ad, c.opa, bd, c.opb);
    const auto y = lux::batched_matmul(a, c.opa, b, c.opb);
    const auto yg = lux::batched_matmul(lux::generic_op{}, a, c.opa, b, c.opb);
    REQUIRE(y.shape() == cr.shape());
    CHECK(max_rel_err(y, cr) <= tol<T>(c.k));
    CHECK(max_rel_err(yg, cr) <= tol<T>(c.k));
    CHECK(max_rel_err(y, yg) <= 2 * tol<T>(c.k));
    Tensor<T, 3> out(cr.shape(), T(5));
    lux::batched_matmul(a, c.opa, b, c.opb, out.view());
    CHECK(max_rel_err(out, y) == 0);
    if (c.opa == op::none && c.opb == op::none) {
      CHECK(max_rel_err(lux::batched_matmul(a, b), y) == 0);
      CHECK(max_rel_err(lux::batched_matmul(lux::generic_op{}, a, b), yg) == 0);
    }
  }
}

TEMPLATE_TEST_CASE("batched_matmul_backward matches the float64 reference in both modes", "[bmm]",
                   float, double) {
  using T = TestType;
  for (const auto& c : kBmmCases) {
    CAPTURE(c.m, c.k, c.n, c.Ba, c.Bb, lux::op_name(c.opa), lux::op_name(c.opb));
    const auto a = random_tensor<T, 3>(stored_shape(c.m, c.k, c.Ba, c.opa), 61);
    const auto b = random_tensor<T, 3>(stored_shape(c.k, c.n, c.Bb, c.opb), 62);
    const index_t L = c.Ba == 1 ? c.Bb : c.Ba;
    const auto dc = random_tensor<T, 3>({c.m, c.n, L}, 63);
    const auto [dar, dbr] =
        ref_bmm_backward(to_double(dc), to_double(a), c.opa, to_double(b), c.opb);
    const auto g = lux::batched_matmul_backward(dc, a, c.opa, b, c.opb);
    const auto gg = lux::batched_matmul_backward(lux::generic_op{}, dc, a, c.opa, b, c.opb);
    REQUIRE(g.da.shape() == a.shape());
    REQUIRE(g.db.shape() == b.shape());
    // da sums n·(batch) terms, db m·(batch) terms.
    const index_t terms = std::max(c.m, c.n) * L;
    CHECK(max_rel_err(g.da, dar) <= tol<T>(terms));
    CHECK(max_rel_err(g.db, dbr) <= tol<T>(terms));
    CHECK(max_rel_err(gg.da, dar) <= tol<T>(terms));
    CHECK(max_rel_err(gg.db, dbr) <= tol<T>(terms));
    CHECK(max_rel_err(g.da, gg.da) <= 2 * tol<T>(terms));
    CHECK(max_rel_err(g.db, gg.db) <= 2 * tol<T>(terms));
    // Into caller buffers (filled with garbage first): the same numbers.
    Tensor<T, 3> da(a.shape(), T(3)), db(b.shape(), T(3));
    lux::batched_matmul_backward(dc, a, c.opa, b, c.opb, da.view(), db.view());
    CHECK(max_rel_err(da, g.da) == 0);
    CHECK(max_rel_err(db, g.db) == 0);
  }
}

TEST_CASE("batched_matmul: rank-2 operands are a batch of one", "[bmm]") {
  const auto a2 = random_tensor<double, 2>({4, 6}, 71);
  const auto b3 = random_tensor<double, 3>({6, 3, 5}, 72);
  const auto a3 = lux::copy(a2.reshape(4, 6, 1));
  const auto c = lux::batched_matmul(a2, b3);
  CHECK(c.shape() == shape_t<3>{4, 3, 5});
  CHECK(max_rel_err(c, lux::batched_matmul(a3, b3)) == 0);
  CHECK(max_rel_err(c, ref_bmm(a3, op::none, b3, op::none)) <= 1e-14);
  const auto dc = random_tensor<double, 3>({4, 3, 5}, 73);
  const auto g = lux::batched_matmul_backward(dc, a2, b3);
  static_assert(std::is_same_v<decltype(g.da), Tensor<double, 2>>);
  CHECK(g.da.shape() == a2.shape());
  const auto [dar, dbr] = ref_bmm_backward(dc, a3, op::none, b3, op::none);
  CHECK(max_rel_err(g.da, dar) <= 1e-14);
  CHECK(max_rel_err(g.db, dbr) <= 1e-14);
  // Both matrices: (m, n, 1); b given transposed as a matrix.
  const auto b2 = random_tensor<float, 2>({3, 6}, 74);
  const auto af = cast<float>(a2);
  const auto c2 = lux::batched_matmul(af, op::none, b2, op::transpose);
  CHECK(c2.shape() == shape_t<3>{4, 3, 1});
  CHECK(max_rel_err(c2, ref_bmm(to_double(lux::copy(af.reshape(4, 6, 1))), op::none,
                                to_double(lux::copy(b2.reshape(3, 6, 1))), op::transpose)) <=
        tol<float>(6));
  const auto g2 =
      lux::batched_matmul_backward(lux::generic_op{}, c2, af, op::none, b2, op::transpose);
  const auto g2l = lux::batched_matmul_backward(c2, af, op::none, b2, op::transpose);
  CHECK(max_rel_err(g2.da, g2l.da) <= tol<float>(6));
  CHECK(max_rel_err(g2.db, g2l.db) <= tol<float>(6));
}

TEST_CASE("batched_matmul: strided operands take the generic mode", "[bmm]") {
  // a: slab 1 of a (3, 2, 4, 5) tensor along dimension 1 — a (3, 4, 5) StridedView; b: a
  // (4, 2) matrix picked out of a (4, 3, 2) tensor (strided rank 2, a batch of one).
  const auto a4 = random_tensor<float, 4>({3, 2, 4, 5}, 101);
  const auto b3 = random_tensor<float, 3>({4, 3, 2}, 102);
  const auto as = a4.select(1, 1);
  const auto bs = b3.select(1, 2);
  static_assert(std::is_same_v<lux::operation_mode_t<decltype(as), decltype(bs)>, lux::generic_op>);
  const auto ac = lux::copy(as);
  const auto bc = lux::copy(bs);
  const auto c = lux::batched_matmul(as, bs);
  CHECK(c.shape() == shape_t<3>{3, 2, 5});
  CHECK(max_rel_err(c, lux::batched_matmul(ac, bc)) <= tol<float>(4));
  const auto dc = random_tensor<float, 3>({3, 2, 5}, 103);
  const auto g = lux::batched_matmul_backward(dc, as, bs);
  const auto gc = lux::batched_matmul_backward(dc, ac, bc);
  CHECK(max_rel_err(g.da, gc.da) <= tol<float>(2));
  CHECK(max_rel_err(g.db, gc.db) <= tol<float>(15));
  // Transposed strided operand: b used as (op transpose) of a (2, 4) slab.
  const auto b3t = random_tensor<float, 3>({2, 3, 4}, 104);
  const auto bts = b3t.select(1, 0);
  CHECK(max_rel_err(lux::batched_matmul(as, op::none, bts, op::transpose),
                    lux::batched_matmul(ac, op::none, lux::copy(bts), op::transpose)) <=
        tol<float>(4));
}

TEST_CASE("batched_matmul: gradients match central finite differences", "[bmm][gradient]") {
  const std::vector<bmm_case> cases = {
      {3, 4, 2, 3, 3, op::none, op::none},         {3, 4, 2, 3, 3, op::transpose, op::none},
      {3, 4, 2, 3, 3, op::none, op::transpose},    {3, 4, 2, 3, 3, op::adjoint, op::transpose},
      {3, 4, 2, 1, 3, op::none, op::none},         {3, 4, 2, 3, 1, op::none, op::none},
      {3, 4, 2, 1, 3, op::transpose, op::adjoint}, {3, 4, 2, 3, 1, op::transpose, op::transpose}};
  auto check_mode = [&](auto mode) {
    for (const auto& c : cases) {
      CAPTURE(decltype(mode)::name, c.Ba, c.Bb, lux::op_name(c.opa), lux::op_name(c.opb));
      const auto a = random_tensor<double, 3>(stored_shape(c.m, c.k, c.Ba, c.opa), 81);
      const auto b = random_tensor<double, 3>(stored_shape(c.k, c.n, c.Bb, c.opb), 82);
      const auto v = random_tensor<double, 3>({c.m, c.n, std::max(c.Ba, c.Bb)}, 83);
      const auto g = lux::batched_matmul_backward(mode, v, a, c.opa, b, c.opb);
      const auto na = lux_test::numerical_gradient<3>(
          [&](const D3& p) {
            return lux_test::dot(lux::batched_matmul(mode, p, c.opa, b, c.opb), v);
          },
          a);
      const auto nb = lux_test::numerical_gradient<3>(
          [&](const D3& p) {
            return lux_test::dot(lux::batched_matmul(mode, a, c.opa, p, c.opb), v);
          },
          b);
      CHECK(max_rel_err(g.da, na) <= 1e-6);
      CHECK(max_rel_err(g.db, nb) <= 1e-6);
    }
  };
  check_mode(lux::looped_op{});
  check_mode(lux::generic_op{});
}

TEST_CASE("batched_matmul matches PyTorch (torch.bmm, expand, transpose, autograd)",
          "[bmm][pytorch]") {
  const lux_test::fixture_file fx("dense.txt");
  struct fixture_case {
    const char* name;
    op opa, opb;
  };
  for (const auto& fc :
       {fixture_case{"plain", op::none, op::none}, fixture_case{"bcast_a", op::none, op::none},
        fixture_case{"tn", op::transpose, op::none},
        fixture_case{"tt_bcast_b", op::transpose, op::transpose}}) {
    const std::string p = std::string("bmm_") + fc.name + "_";
    CAPTURE(p);
    const auto a = fx.tensor<double, 3>(p + "a");
    const auto b = fx.tensor<double, 3>(p + "b");
    const auto v = fx.tensor<double, 3>(p + "v");
    const auto c = fx.tensor<double, 3>(p + "c");
    const auto da = fx.tensor<double, 3>(p + "da");
    const auto db = fx.tensor<double, 3>(p + "db");
    // double, generic mode
    CHECK(max_rel_err(lux::batched_matmul(lux::generic_op{}, a, fc.opa, b, fc.opb), c) <= 1e-14);
    const auto g = lux::batched_matmul_backward(lux::generic_op{}, v, a, fc.opa, b, fc.opb);
    CHECK(max_rel_err(g.da, da) <= 1e-14);
    CHECK(max_rel_err(g.db, db) <= 1e-14);
    // float, looped mode
    const auto af = cast<float>(a);
    const auto bf = cast<float>(b);
    const auto vf = cast<float>(v);
    CHECK(max_rel_err(lux::batched_matmul(af, fc.opa, bf, fc.opb), c) <= 1e-6);
    const auto gf = lux::batched_matmul_backward(vf, af, fc.opa, bf, fc.opb);
    CHECK(max_rel_err(gf.da, da) <= 1e-6);
    CHECK(max_rel_err(gf.db, db) <= 1e-6);
  }
}

TEST_CASE("batched_matmul: long double and complex in the generic mode", "[bmm]") {
  const auto a = random_tensor<long double, 3>({3, 5, 2}, 91);
  const auto b = random_tensor<long double, 3>({4, 5, 1}, 92);
  const auto dc = random_tensor<long double, 3>({3, 4, 2}, 93);
  const auto c = lux::batched_matmul(a, op::none, b, op::transpose);
  CHECK(max_rel_err(c, ref_bmm(to_double(a), op::none, to_double(b), op::transpose)) <= 1e-14);
  const auto g = lux::batched_matmul_backward(dc, a, op::none, b, op::transpose);
  const auto [dar, dbr] =
      ref_bmm_backward(to_double(dc), to_double(a), op::none, to_double(b), op::transpose);
  CHECK(max_rel_err(g.da, dar) <= 1e-14);
  CHECK(max_rel_err(g.db, dbr) <= 1e-14);

  // Complex: adjoint conjugates, transpose does not; the gradients follow NNlib's ∂a' = Δ b'ᴴ.
  using C = std::complex<double>;
  Tensor<C, 3> ac(shape_t<3>{2, 3, 2}), bc(shape_t<3>{2, 2, 2}), dcc(shape_t<3>{3, 2, 2});
  const lux::rng r(5);
  std::uint64_t counter = 0;
  for (auto* t : {&ac, &bc, &dcc})
    for (auto& z : *t) {
      const double re = r.uniform_at<double>(counter++) - 0.5;
      z = C(re, r.uniform_at<double>(counter++) - 0.5);
    }
  const auto cadj = lux::batched_matmul(ac, op::adjoint, bc, op::none);
  const auto ctr = lux::batched_matmul(ac, op::transpose, bc, op::none);
  for (index_t l = 0; l < 2; ++l)
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 2; ++j) {
        C sa = 0, st = 0;
        for (index_t p = 0; p < 2; ++p) {
          sa += std::conj(ac(p, i, l)) * bc(p, j, l);
          st += ac(p, i, l) * bc(p, j, l);
        }
        CHECK(std::abs(cadj(i, j, l) - sa) <= 1e-14);
        CHECK(std::abs(ctr(i, j, l) - st) <= 1e-14);
      }
  // ∂(aᴴ) = ∂(aᵀ) = Δ bᴴ, so da for adjoint is the conjugate of da for transpose; db differs by
  // conjugating a: ∂b = (aᴴ)ᴴ Δ = a Δ vs (aᵀ)ᴴ Δ = conj(a) Δ.
  const auto gadj = lux::batched_matmul_backward(dcc, ac, op::adjoint, bc, op::none);
  const auto gtr = lux::batched_matmul_backward(dcc, ac, op::transpose, bc, op::none);
  for (index_t i = 0; i < ac.numel(); ++i)
    CHECK(std::abs(gadj.da.data()[i] - std::conj(gtr.da.data()[i])) <= 1e-14);
  for (index_t l = 0; l < 2; ++l)
    for (index_t p = 0; p < 2; ++p)
      for (index_t j = 0; j < 2; ++j) {
        C s = 0;
        for (index_t i = 0; i < 3; ++i) s += ac(p, i, l) * dcc(i, j, l);
        CHECK(std::abs(gadj.db(p, j, l) - s) <= 1e-14);
      }
}

TEST_CASE("batched_matmul: bad shapes throw shape_error naming the kernel", "[bmm][errors]") {
  using Catch::Contains;
  const Tensor<float, 3> a(shape_t<3>{3, 4, 2});
  const Tensor<float, 3> b_inner(shape_t<3>{5, 6, 2});
  const Tensor<float, 3> b_batch(shape_t<3>{4, 5, 3});
  const Tensor<float, 3> b_ok(shape_t<3>{4, 5, 2});
  CHECK_THROWS_AS(lux::batched_matmul(a, b_inner), lux::shape_error);
  CHECK_THROWS_WITH(lux::batched_matmul(a, b_inner),
                    Contains("batched_matmul: a has shape (3, 4, 2) (op none), b (5, 6, 2)"));
  CHECK_THROWS_WITH(lux::batched_matmul(lux::generic_op{}, a, b_inner),
                    Contains("inner dimensions differ"));
  CHECK_THROWS_AS(lux::batched_matmul(a, b_batch), lux::shape_error);
  CHECK_THROWS_WITH(lux::batched_matmul(a, b_batch),
                    "batched_matmul: a has shape (3, 4, 2), b (4, 5, 3): batch sizes 2 and 3 must "
                    "be equal or one of them 1");
  // The op flags change which sizes must agree.
  CHECK_THROWS_AS(lux::batched_matmul(a, op::transpose, b_ok, op::none), lux::shape_error);
  CHECK_THROWS_WITH(lux::batched_matmul(a, op::transpose, b_ok, op::none),
                    Contains("(op transpose)"));
  CHECK_NOTHROW(lux::batched_matmul(a, op::none, b_ok, op::none));
  // Output buffer and cotangent shapes, overlap.
  Tensor<float, 3> out(shape_t<3>{3, 5, 1});
  CHECK_THROWS_WITH(lux::batched_matmul(a, op::none, b_ok, op::none, out.view()),
                    Contains("batched_matmul: out has shape (3, 5, 1), expected (3, 5, 2)"));
  Tensor<float, 1> buf(shape_t<1>{100});
  const auto a_in = lux::view(buf.data(), lux::make_shape(3, 4, 2));
  const auto c_out = lux::view(buf.data() + 20, lux::make_shape(3, 5, 2));
  CHECK_THROWS_AS(lux::batched_matmul(a_in, op::none, b_ok, op::none, c_out), lux::argument_error);
  const Tensor<float, 3> dc_bad(shape_t<3>{3, 5, 3});
  CHECK_THROWS_AS(lux::batched_matmul_backward(dc_bad, a, b_ok), lux::shape_error);
  CHECK_THROWS_WITH(
      lux::batched_matmul_backward(dc_bad, a, b_ok),
      Contains("batched_matmul_backward: dc has shape (3, 5, 3), expected (3, 5, 2)"));
  CHECK_THROWS_WITH(lux::batched_matmul_backward(lux::generic_op{}, dc_bad, a, b_batch),
                    Contains("batched_matmul_backward: a has shape (3, 4, 2), b (4, 5, 3)"));
  // Gradient buffers: shapes and overlap.
  const Tensor<float, 3> dc_ok(shape_t<3>{3, 5, 2});
  Tensor<float, 3> da(a.shape()), db(b_ok.shape()), da_bad(shape_t<3>{4, 3, 2});
  CHECK_THROWS_WITH(
      lux::batched_matmul_backward(dc_ok, a, op::none, b_ok, op::none, da_bad.view(), db.view()),
      Contains("batched_matmul_backward: da has shape (4, 3, 2), expected (3, 4, 2)"));
  CHECK_THROWS_AS(
      lux::batched_matmul_backward(dc_ok, a, op::none, b_ok, op::none, da.view(), da.view()),
      lux::shape_error);
  Tensor<float, 1> big(shape_t<1>{64});
  CHECK_THROWS_AS(
      lux::batched_matmul_backward(dc_ok, a, op::none, b_ok, op::none,
                                   lux::view(big.data(), lux::make_shape(3, 4, 2)),
                                   lux::view(big.data() + 10, lux::make_shape(4, 5, 2))),
      lux::argument_error);
  CHECK_NOTHROW(
      lux::batched_matmul_backward(dc_ok, a, op::none, b_ok, op::none, da.view(), db.view()));
}

}  // namespace
