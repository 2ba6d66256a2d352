// Lux.Training in C++: TrainState, compute_gradients, apply_gradients, single_train_step.
// Checked here: gradients equal the model's own pullback (and central finite differences in
// double), apply_gradients is the optimiser's update on the flat buffers, the loss of a small
// model falls by a stated factor on a fixed seed, runs are bit-identical for the same seed, a
// step allocates no tensor storage after warm-up (counted with a replaced aligned operator new,
// which is where every host tensor buffer comes from), the custom-objective form, the schedule
// hook, and the error paths.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <lux/layers/chain.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/layers/pooling.hpp>
#include <lux/layers/utility.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/train_state.hpp>
#include <new>
#include <vector>

#include "support/check.hpp"

// --- a replaced aligned allocator: counts every 64-byte-aligned allocation ------------------
namespace {
std::atomic<long> aligned_allocations{0};
}
void* operator new(std::size_t n, std::align_val_t al) {
  aligned_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(al);
  void* p = std::aligned_alloc(a, (n + a - 1) / a * a);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

auto small_mlp() { return lux::Chain(lux::Dense({4, 16}, lux::tanh_{}), lux::Dense({16, 3})); }

/// A regression batch: y = A x with a fixed A, x uniform.
std::pair<lux::Tensor<float, 2>, lux::Tensor<float, 2>> regression_batch(lux::index_t n) {
  auto x = lux_test::random_tensor<float, 2>({4, n}, 7);
  lux::Tensor<float, 2> y(lux::shape_t<2>{3, n});
  for (lux::index_t j = 0; j < n; ++j)
    for (lux::index_t i = 0; i < 3; ++i) {
      double s = 0;
      for (lux::index_t k = 0; k < 4; ++k) s += std::sin(double(i + 1) * double(k + 2)) * x(k, j);
      y(i, j) = float(s);
    }
  return {std::move(x), std::move(y)};
}

template <class Model, class Batch>
std::vector<float> train_losses(const Model& model, const Batch& batch, int steps,
                                std::uint64_t seed) {
  lux::rng r(seed);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{0.01});
  std::vector<float> losses;
  for (int s = 0; s < steps; ++s)
    losses.push_back(lux::single_train_step(lux::MSELoss{}, batch, ts).loss);
  return losses;
}

}  // namespace

TEST_CASE("TrainState: compute_gradients equals the model pullback and finite differences",
          "[training]") {
  const auto model = small_mlp();
  lux::rng r(11);
  auto [ps, st] = lux::setup<double>(r, model);
  auto batch = regression_batch(5);
  auto xd = lux::Tensor<double, 2>(batch.first.shape());
  auto yd = lux::Tensor<double, 2>(batch.second.shape());
  for (lux::index_t i = 0; i < xd.numel(); ++i) xd.data()[i] = batch.first.data()[i];
  for (lux::index_t i = 0; i < yd.numel(); ++i) yd.data()[i] = batch.second.data()[i];
  const auto db = std::pair{xd, yd};
  lux::TrainState ts(model, ps, st, lux::optim::Descent{0.1});
  auto res = lux::compute_gradients(lux::MSELoss{}, db, ts);
  CHECK(&res.ts == &ts);
  CHECK(ts.step == 0);

  // Independent: mean squared error written out, differentiated by central differences.
  const auto loss_at = [&](const auto& p) {
    auto [yhat, st2] = lux::apply(model, xd, p, st);
    double s = 0;
    for (lux::index_t i = 0; i < yhat.numel(); ++i) {
      const double d = yhat.data()[i] - yd.data()[i];
      s += d * d;
    }
    return s / double(yhat.numel());
  };
  CHECK(res.loss == Approx(loss_at(ps)).epsilon(1e-12));
  auto probe = ps;
  double worst = 0;
  std::vector<double> fd;
  lux::for_each_leaf(probe, [&](std::string_view, auto& leaf) {
    for (lux::index_t i = 0; i < leaf.numel(); ++i) {
      const double v = leaf.data()[i], h = 1e-6;
      leaf.data()[i] = v + h;
      const double fp = loss_at(probe);
      leaf.data()[i] = v - h;
      const double fm = loss_at(probe);
      leaf.data()[i] = v;
      fd.push_back((fp - fm) / (2 * h));
    }
  });
  std::size_t k = 0;
  lux::for_each_leaf(res.grads, [&](std::string_view, const auto& g) {
    for (lux::index_t i = 0; i < g.numel(); ++i, ++k)
      worst = std::max(worst, std::abs(g.data()[i] - fd[k]) / std::max(1.0, std::abs(fd[k])));
  });
  CHECK(k == fd.size());
  CHECK(worst < 1e-7);

  // apply_gradients with Descent(η): p ← p − η g on every leaf, and step advances.
  const auto before = ts.flat_parameters().to_tree();
  std::vector<double> g_flat(
      ts.flat_gradients().buffer().data(),
      ts.flat_gradients().buffer().data() + ts.flat_gradients().buffer().size());
  lux::apply_gradients(ts);
  CHECK(ts.step == 1);
  const auto& after = ts.flat_parameters().buffer();
  lux::flat_tree bflat(before);
  double err = 0;
  for (lux::index_t i = 0; i < after.size(); ++i)
    err = std::max(err, std::abs(after.data()[i] - (bflat.buffer().data()[i] - 0.1 * g_flat[i])));
  CHECK(err < 1e-15);
}

TEST_CASE("TrainState: the loss of a small model falls 20-fold in 300 Adam steps", "[training]") {
  const auto batch = regression_batch(64);
  const auto losses = train_losses(small_mlp(), batch, 300, 2026);
  INFO("first " << losses.front() << " last " << losses.back());
  CHECK(losses.back() < losses.front() / 20);
}

TEST_CASE("TrainState: the same seed gives bit-identical losses", "[training]") {
  const auto model =
      lux::Chain(lux::Conv({3, 3}, {1, 4}, lux::relu{}, {.pad = 1}), lux::BatchNorm(4, lux::relu{}),
                 lux::MaxPool({2, 2}), lux::FlattenLayer{}, lux::Dense({36, 3}));
  auto x = lux_test::random_tensor<float, 4>({6, 6, 1, 8}, 3);
  auto y = lux_test::random_tensor<float, 2>({3, 8}, 4);
  const auto batch = std::pair{x, y};
  const auto a = train_losses(model, batch, 6, 99);
  const auto b = train_losses(model, batch, 6, 99);
  const auto c = train_losses(model, batch, 6, 100);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a.back() < a.front());
}

TEST_CASE("TrainState: no tensor storage is allocated after the first step", "[training]") {
  const auto model =
      lux::Chain(lux::Conv({3, 3}, {1, 8}, lux::identity{}, {.pad = 1}),
                 lux::BatchNorm(8, lux::relu{}), lux::MaxPool({2, 2}), lux::FlattenLayer{},
                 lux::Dense({8 * 7 * 7, 32}, lux::relu{}), lux::Dense({32, 10}));
  lux::rng r(5);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{1e-3});
  auto x = lux_test::random_tensor<float, 4>({14, 14, 1, 16}, 8, 0, 1);
  lux::Tensor<std::int64_t, 1> labels(lux::shape_t<1>{16});
  for (lux::index_t i = 0; i < 16; ++i) labels[i] = i % 10;
  const auto batch = std::tie(x, labels);
  const lux::CrossEntropyLoss<> loss({.logits = true});
  (void)lux::single_train_step(loss, batch, ts);  // step 1: warm-up fills the cache
  const long aligned0 = aligned_allocations.load();
  const auto stats0 = lux::host_memory_stats();
  float last = 0;
  for (int s = 2; s <= 10; ++s) last = lux::single_train_step(loss, batch, ts).loss;
  const auto stats1 = lux::host_memory_stats();
  CHECK(std::isfinite(last));
  CHECK(ts.step == 10);
  CHECK(aligned_allocations.load() - aligned0 == 0);
  CHECK(stats1.system_allocations == stats0.system_allocations);
  CHECK(stats1.cache_hits > stats0.cache_hits);  // the step did allocate: from the cache
}

namespace {
/// Lux's objective form written by hand: L = ½‖model(x)‖², back() gives dps.
struct half_norm_objective {
  template <class M, class PS, class ST, class B>
  auto pullback(const M& m, const PS& ps, const ST& st, const B& batch) const {
    auto pb = lux::pullback(m, batch, ps, st);
    double l = 0;
    for (lux::index_t i = 0; i < pb.y.numel(); ++i)
      l += 0.5 * double(pb.y.data()[i]) * pb.y.data()[i];
    struct result {
      double loss;
      ST st;
      lux::named_tuple<lux::named_field<"half_norm", double>> stats;
      std::function<decltype(pb.back(pb.y).dps)()> back;
    };
    auto y = pb.y;
    auto back = pb.back;
    return result{l, pb.st, {lux::field<"half_norm">(l)}, [back, y] { return back(y).dps; }};
  }
};
}  // namespace

TEST_CASE("TrainState: a custom objective returns its stats and gradients", "[training]") {
  const auto model = small_mlp();
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Descent{0.01});
  const auto x = lux_test::random_tensor<float, 2>({4, 3}, 2);
  auto res = lux::compute_gradients(half_norm_objective{}, x, ts);
  CHECK(res.stats.get<"half_norm">() == Approx(res.loss));
  auto pb = lux::pullback(model, x, ps, st);
  const auto dps = pb.back(pb.y).dps;
  double err = 0;
  lux::zip_leaves(res.grads, dps, [&](std::string_view, const auto& a, const auto& b) {
    for (lux::index_t i = 0; i < a.numel(); ++i)
      err = std::max(err, double(std::abs(a.data()[i] - b.data()[i])));
  });
  CHECK(err == 0);
}

TEST_CASE("TrainState: the schedule sets the learning rate before each update", "[training]") {
  const auto model = lux::Dense({2, 1});
  lux::rng r(3);
  auto [ps, st] = lux::setup<double>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Descent{1.0});
  std::vector<std::int64_t> seen;
  ts.schedule = [&](std::int64_t step) {
    seen.push_back(step);
    return step == 0 ? 0.0 : 0.5;  // step 0: rate 0, nothing moves
  };
  lux::Tensor<double, 2> x(lux::shape_t<2>{2, 1}, 1.0), y(lux::shape_t<2>{1, 1}, 3.0);
  const auto batch = std::pair{x, y};
  const auto p0 = ts.flat_parameters().to_tree();
  (void)lux::single_train_step(lux::MSELoss{}, batch, ts);
  CHECK(ts.flat_parameters().to_tree().get<"weight">()[0] == p0.get<"weight">()[0]);
  (void)lux::single_train_step(lux::MSELoss{}, batch, ts);
  CHECK(ts.flat_parameters().to_tree().get<"weight">()[0] != p0.get<"weight">()[0]);
  CHECK(seen == std::vector<std::int64_t>{0, 1});
}

TEST_CASE("TrainState: bad input is a clear error", "[training][errors]") {
  const auto model = small_mlp();
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::TrainState ts(model, ps, st, lux::optim::Descent{0.1});
  auto bad = std::pair{lux_test::random_tensor<float, 2>({5, 2}, 1),
                       lux_test::random_tensor<float, 2>({3, 2}, 2)};
  CHECK_THROWS_AS(lux::single_train_step(lux::MSELoss{}, bad, ts), lux::shape_error);
  auto nan_target = regression_batch(2);
  nan_target.second.data()[0] = NAN;
  CHECK_THROWS_AS(lux::single_train_step(lux::MSELoss{}, nan_target, ts), lux::argument_error);
  CHECK(ts.step == 0);  // neither step touched the parameters
  // Gradients of another layout (same tree type, other shapes) are rejected.
  lux::rng r2(2);
  auto [ps2, st2] = lux::setup<float>(r2, lux::Chain(lux::Dense({4, 8}), lux::Dense({8, 3})));
  static_assert(std::is_same_v<decltype(ps2), decltype(ps)>);
  const lux::flat_tree g2(ps2);
  CHECK_THROWS_AS(lux::apply_gradients(ts, g2), lux::shape_error);
  CHECK(ts.step == 0);
}
