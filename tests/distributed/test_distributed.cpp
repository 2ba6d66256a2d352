// lux::distributed over MPI (Lux's DistributedUtils with MPIBackend). Run under
// `mpirun -np 2` and `-np 3` (CTest does both); every rank runs every test case, and a check
// that fails on any rank fails the run (the exit code is agreed over MPI).
//
// Independent references: each rank regenerates every other rank's data from its seed, so a
// collective's result is checked against a serial reduction computed locally in double; data-
// parallel training is checked against single-process training on the concatenation of the
// ranks' batches (the same model, rule and initial parameters, no MPI involved).
#define CATCH_CONFIG_RUNNER
#define CATCH_CONFIG_CONSOLE_WIDTH 300
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <lux/distributed/mpi.hpp>
#include <lux/distributed/training.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/distributed.hpp"

namespace {

namespace dist = lux::distributed;

const dist::mpi_backend& world() {
  static const dist::mpi_backend b;
  return b;
}

/// Fingerprint of raw bytes: equal on every rank iff the bytes are (all_equal of it).
std::uint64_t bytes_fingerprint(const void* p, std::size_t n) {
  return dist::detail::fingerprint(std::string_view(static_cast<const char*>(p), n));
}

using tree_t = lux::named_tuple<
    lux::named_field<"layer_1", lux::named_tuple<lux::named_field<"weight", lux::Tensor<float, 2>>,
                                                 lux::named_field<"bias", lux::Tensor<float, 1>>>>,
    lux::named_field<"layer_2", lux::named_tuple<lux::named_field<"w", lux::Tensor<double, 3>>>>,
    lux::named_field<"count", std::int64_t>, lux::named_field<"training", bool>>;

/// Rank r's tree: values drawn from seed 100 + r (any rank can rebuild any other's).
tree_t tree_of(int r, lux::index_t cols = 4) {
  tree_t t;
  t.get<"layer_1">().get<"weight">() = lux_test::random_tensor<float, 2>({3, cols}, 100 + r, -2, 2);
  t.get<"layer_1">().get<"bias">() = lux_test::random_tensor<float, 1>({3}, 200 + r, -2, 2);
  t.get<"layer_2">().get<"w">() = lux_test::random_tensor<double, 3>({2, 3, 5}, 300 + r, -2, 2);
  t.get<"count">() = 10 + r;
  t.get<"training">() = r % 2 == 0;
  return t;
}

/// Every value of the tree's arrays, in leaf order, as double.
std::vector<double> values(const tree_t& t) {
  std::vector<double> v;
  lux::for_each_leaf(t, [&](std::string_view, const auto& leaf) {
    using L = std::remove_cvref_t<decltype(leaf)>;
    if constexpr (lux::is_array_v<L>)
      for (lux::index_t i = 0; i < leaf.numel(); ++i) v.push_back(double(leaf.data()[i]));
  });
  return v;
}

double max_abs_diff(const float* a, const float* b, lux::index_t n) {
  double m = 0;
  for (lux::index_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

TEST_CASE("mpi_backend: ranks, sizes and the host helpers", "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  CHECK(me >= 0);
  CHECK(me < p);
  const auto all = b.allgather("rank " + std::to_string(me) + std::string(std::size_t(me), '*'));
  REQUIRE(all.size() == std::size_t(p));
  for (int r = 0; r < p; ++r) CHECK(all[r] == "rank " + std::to_string(r) + std::string(r, '*'));
  CHECK(b.all_equal(42));
  CHECK(b.all_equal(~0ull));
  CHECK(b.all_equal(std::uint64_t(me)) == (p == 1));
  // A copy shares the communicator.
  const dist::mpi_backend copy = b;
  CHECK(copy.comm() == b.comm());
}

TEST_CASE("allreduce of a tree equals a serial reduction of every rank's tree", "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  std::vector<std::vector<double>> all;
  for (int r = 0; r < p; ++r) all.push_back(values(tree_of(r)));
  for (auto op :
       {dist::reduce_op::sum, dist::reduce_op::avg, dist::reduce_op::max, dist::reduce_op::min}) {
    INFO("op " << dist::to_string(op));
    auto t = tree_of(me);
    if (op == dist::reduce_op::avg) {  // avg takes floating-point leaves only (see below)
      dist::allreduce(b, t.get<"layer_1">(), op);
      dist::allreduce(b, t.get<"layer_2">(), op);
    } else {
      dist::allreduce(b, t, op);
    }
    const auto got = values(t);
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, std::abs(got[i] - lux_test::serial_reduce(op, all, i)) /
                                  std::max(1.0, std::abs(lux_test::serial_reduce(op, all, i))));
    CHECK(worst <= 1e-6);  // float leaves: one rounding per addition
    if (op == dist::reduce_op::max || op == dist::reduce_op::min) CHECK(worst == 0);
    // Scalars: arithmetic ones reduced, flags left alone.
    std::int64_t want = op == dist::reduce_op::max   ? 10 + p - 1
                        : op == dist::reduce_op::min ? 10
                                                     : 10 * p + p * (p - 1) / 2;
    if (op != dist::reduce_op::avg) CHECK(t.get<"count">() == want);
    CHECK(t.get<"training">() == (me % 2 == 0));
    // Every rank holds the same bytes.
    auto v = values(t);
    CHECK(b.all_equal(bytes_fingerprint(v.data(), v.size() * sizeof(double))));
  }
}

TEST_CASE("allreduce: avg of an integer leaf is an argument_error on every rank", "[distributed]") {
  auto t = tree_of(world().local_rank());
  CHECK_THROWS_WITH(dist::allreduce(world(), t, dist::reduce_op::avg),
                    Catch::Contains("avg of the integer leaf \"count\""));
  // Checked before any leaf is reduced: the tree is untouched.
  CHECK(values(t) == values(tree_of(world().local_rank())));
  CHECK_THROWS_AS(dist::reduce(world(), t, dist::reduce_op::avg, 0), lux::argument_error);
}

TEST_CASE("bcast and reduce: root's values everywhere, the reduction at root only",
          "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  const int root = p - 1;
  auto t = tree_of(me);
  dist::bcast(b, t, root);
  CHECK(values(t) == values(tree_of(root)));
  CHECK(t.get<"count">() == 10 + root);
  CHECK(t.get<"training">() == (root % 2 == 0));

  // One array (a TensorView temporary) and one scalar.
  auto w = lux_test::random_tensor<float, 2>({5, 7}, 500 + me);
  dist::bcast(b, w.view(), 0);
  const auto w0 = lux_test::random_tensor<float, 2>({5, 7}, 500);
  CHECK(max_abs_diff(w.data(), w0.data(), w.numel()) == 0);
  double s = 1.5 * me;
  dist::allreduce(b, s, dist::reduce_op::max);
  CHECK(s == 1.5 * (p - 1));

  std::vector<std::vector<double>> all;
  for (int r = 0; r < p; ++r) all.push_back(values(tree_of(r)));
  auto u = tree_of(me);
  dist::reduce(b, u, dist::reduce_op::sum, 0);
  const auto got = values(u);
  if (me == 0) {
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      worst =
          std::max(worst, std::abs(got[i] - lux_test::serial_reduce(dist::reduce_op::sum, all, i)));
    CHECK(worst <= 1e-5);
  } else {
    CHECK(got == all[me]);
  }
  CHECK_THROWS_AS(dist::bcast(b, t, p), lux::argument_error);
  CHECK_THROWS_AS(dist::reduce(b, t, dist::reduce_op::sum, -1), lux::argument_error);
}

TEST_CASE("ranks with different trees get a distributed_error naming the first difference",
          "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  if (p == 1) return;
  const int odd = p - 1;  // the last rank passes something else
  // A different shape of layer_1.weight.
  {
    auto t = tree_of(me, me == odd ? 5 : 4);
    CHECK_THROWS_MATCHES(
        dist::allreduce(b, t, dist::reduce_op::sum), lux::distributed_error,
        Catch::Matchers::Predicate<lux::distributed_error>([&](const lux::distributed_error& e) {
          const std::string m = e.what();
          return m.find("layer_1.weight float32 (3, 4)") != std::string::npos &&
                 m.find("layer_1.weight float32 (3, 5)") != std::string::npos &&
                 m.find("rank " + std::to_string(odd)) != std::string::npos;
        }));
  }
  // A missing leaf, and another element type, through bcast and synchronize.
  {
    auto t = tree_of(me);
    auto small = t.get<"layer_1">();
    auto doubles = lux::make_named_tuple<"weight", "bias">(lux::Tensor<double, 2>({3, 4}),
                                                           lux::Tensor<float, 1>({3}));
    auto longer = lux::make_named_tuple<"weight", "bias", "extra">(
        lux::Tensor<float, 2>({3, 4}), lux::Tensor<float, 1>({3}), lux::Tensor<float, 1>({2}));
    if (me == odd) {
      CHECK_THROWS_WITH(dist::bcast(b, doubles, 0), Catch::Contains("weight float64 (3, 4)"));
      CHECK_THROWS_WITH(dist::synchronize(b, small, 0), Catch::Contains("no leaf 2 (2 leaves)"));
    } else {
      CHECK_THROWS_WITH(dist::bcast(b, small, 0), Catch::Contains("weight float32 (3, 4)"));
      CHECK_THROWS_WITH(dist::synchronize(b, longer, 0),
                        Catch::Contains("rank 0 has leaf 2 \"extra float32 (2)\"") &&
                            Catch::Contains("no leaf 2 (2 leaves)"));
    }
  }
  // After the errors the communicator still works.
  CHECK(b.all_equal(7));
}

namespace {

auto ddp_model() { return lux::Chain(lux::Dense({6, 8}, lux::tanh_{}), lux::Dense({8, 3})); }

/// Regression data (6, n) -> (3, n).
std::pair<lux::Tensor<double, 2>, lux::Tensor<double, 2>> ddp_data(lux::index_t n) {
  auto x = lux_test::random_tensor<double, 2>({6, n}, 900);
  lux::Tensor<double, 2> y(lux::shape_t<2>{3, n});
  for (lux::index_t j = 0; j < n; ++j)
    for (lux::index_t i = 0; i < 3; ++i) {
      double s = 0;
      for (lux::index_t k = 0; k < 6; ++k) s += std::cos(double(i + 2 * k)) * x(k, j);
      y(i, j) = std::tanh(s);
    }
  return {std::move(x), std::move(y)};
}

/// Columns `idx` of a (rows, n) matrix.
lux::Tensor<double, 2> gather(const lux::Tensor<double, 2>& a,
                              const std::vector<lux::index_t>& idx) {
  lux::Tensor<double, 2> out(lux::shape_t<2>{a.size(0), lux::index_t(idx.size())});
  for (std::size_t k = 0; k < idx.size(); ++k)
    for (lux::index_t i = 0; i < a.size(0); ++i) out(i, lux::index_t(k)) = a(i, idx[k]);
  return out;
}

}  // namespace

TEST_CASE(
    "DistributedOptimizer: N steps equal single-process training on the concatenated batch, "
    "bit-identical on every rank",
    "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  const auto model = ddp_model();
  const lux::index_t n = 200, bs = 8;  // -np 3: shards 67, 67, 66 (uneven), 8 batches each
  auto [x, y] = ddp_data(n);
  const lux::dataloader_options opts{
      .batchsize = bs, .shuffle = true, .partial = false, .rng = lux::rng(5)};

  // Every rank starts from a different initialization; synchronize makes them rank 0's.
  lux::rng init(77 + std::uint64_t(me));
  auto [ps, st] = lux::setup<double>(init, model);
  // Momentum, not Adam: Adam's step is invariant to the gradients' scale, so it would not tell
  // an average from a sum.
  const lux::optim::Momentum rule{0.05, 0.9};
  lux::TrainState ts(model, ps, st, dist::DistributedOptimizer(b, rule));
  dist::synchronize(b, ts);
  auto loader = dist::sharded_loader(b, std::tie(x, y), opts);
  CHECK(loader.range() == lux::shard_range(n, {me, p}));

  // The reference: one process, the plain rule, rank 0's initialization, and at step s the batch
  // made of every rank's step-s batch in rank order.
  lux::rng init0(77);
  auto [ps0, st0] = lux::setup<double>(init0, model);
  lux::TrainState ref(model, ps0, st0, rule);
  std::vector<lux::DataLoader<
      std::tuple<lux::TensorView<const double, 2>, lux::TensorView<const double, 2>>>>
      shards;
  for (int r = 0; r < p; ++r) {
    auto o = opts;
    o.shard = {r, p};
    shards.emplace_back(std::tuple(x.cview(), y.cview()), o);
  }

  const auto calls0 = b.stats().calls;
  const int epochs = 2;
  std::int64_t steps = 0;
  for (int e = 0; e < epochs; ++e) {
    std::vector<std::vector<lux::index_t>> orders;
    for (int r = 0; r < p; ++r) orders.push_back(shards[r].observation_order(std::uint64_t(e)));
    lux::index_t k = 0;
    for (const auto& [xb, yb] : loader) {
      lux::single_train_step(lux::MSELoss{}, std::tie(xb, yb), ts);
      std::vector<lux::index_t> idx;
      for (int r = 0; r < p; ++r)
        idx.insert(idx.end(), orders[r].begin() + k * bs, orders[r].begin() + (k + 1) * bs);
      lux::single_train_step(lux::MSELoss{}, std::pair(gather(x, idx), gather(y, idx)), ref);
      ++k;
      ++steps;
    }
    CHECK(k == (n / p) / bs);
  }
  CHECK(steps > 0);
  // One all-reduce per step, over the whole flat gradient buffer.
  CHECK(b.stats().calls - calls0 == steps);
  // The wrapped rule's hyperparameters are the optimiser's (adjust, schedules).
  lux::optim::adjust(ts.optimizer_state(), 0.5);
  CHECK(ts.optimizer_state().rule().opt.eta == 0.5);

  const auto& got = ts.flat_parameters().buffer();
  const auto& want = ref.flat_parameters().buffer();
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (lux::index_t i = 0; i < got.size(); ++i)
    worst = std::max(
        worst, std::abs(got.data()[i] - want.data()[i]) / std::max(1e-3, std::abs(want.data()[i])));
  INFO("largest relative difference from single-process training: " << worst);
  CHECK(worst <= 1e-6);
  CHECK(b.all_equal(bytes_fingerprint(got.data(), std::size_t(got.size()) * sizeof(double))));
  // The parameters moved (the test is not vacuous).
  lux::flat_tree start(ps0);
  double moved = 0;
  for (lux::index_t i = 0; i < got.size(); ++i)
    moved = std::max(moved, std::abs(got.data()[i] - start.buffer().data()[i]));
  CHECK(moved > 1e-3);
}

TEST_CASE("synchronize(TrainState): parameters, states, optimiser state and step from root",
          "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  const int root = 1 % p;
  const auto model =
      lux::Chain(lux::Dense({4, 6}), lux::BatchNorm(6, lux::relu{}), lux::Dense({6, 2}));
  lux::rng init(300 + std::uint64_t(me));
  auto [ps, st] = lux::setup<float>(init, model);
  lux::TrainState ts(model, ps, st, lux::optim::Adam{0.01});
  // Rank-specific steps so every part of the state differs between ranks.
  for (int s = 0; s <= me; ++s) {
    auto xb = lux_test::random_tensor<float, 2>({4, 5}, 40 + std::uint64_t(me));
    auto yb = lux_test::random_tensor<float, 2>({2, 5}, 50 + std::uint64_t(me));
    lux::single_train_step(lux::MSELoss{}, std::pair(xb, yb), ts);
  }
  const auto fingerprint_of = [](auto& t) {
    std::string bytes;
    const auto& pb = t.flat_parameters().buffer();
    bytes.append(reinterpret_cast<const char*>(pb.data()), std::size_t(pb.size()) * sizeof(float));
    lux::for_each_leaf(t.states, [&](std::string_view, const auto& leaf) {
      using L = std::remove_cvref_t<decltype(leaf)>;
      if constexpr (lux::is_array_v<L>)
        bytes.append(reinterpret_cast<const char*>(leaf.data()), std::size_t(leaf.numel()) * 4);
    });
    t.optimizer_state().for_each_tensor([&](std::string_view, auto& buf) {
      bytes.append(reinterpret_cast<const char*>(buf.data()), std::size_t(buf.size()) * 4);
    });
    bytes.append(reinterpret_cast<const char*>(&t.step), sizeof(t.step));
    const auto os = t.optimizer_state().step();
    bytes.append(reinterpret_cast<const char*>(&os), sizeof(os));
    return dist::detail::fingerprint(bytes);
  };
  const std::uint64_t mine = fingerprint_of(ts);
  std::uint64_t roots = mine;
  b.bcast(&roots, 1, root);
  if (p > 1) CHECK_FALSE(b.all_equal(mine));
  dist::synchronize(b, ts, root);
  CHECK(fingerprint_of(ts) == roots);
  CHECK(ts.step == root + 1);
  CHECK(ts.optimizer_state().step() == root + 1);
}

TEST_CASE("sharded_loader: a shard per rank; unequal batch counts throw on every rank",
          "[distributed]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  for (lux::index_t n : {12, 9, 10, 7}) {
    for (lux::index_t bs : {2, 3}) {
      for (bool partial : {true, false}) {
        INFO("n " << n << " batchsize " << bs << " partial " << partial);
        auto data = lux::Tensor<float, 2>(lux::shape_t<2>{2, n});
        for (lux::index_t i = 0; i < data.numel(); ++i) data.data()[i] = float(i);
        std::vector<lux::index_t> counts;
        bool invalid = false;
        for (int r = 0; r < p; ++r) {
          const lux::index_t per = (n + p - 1) / p;
          const lux::index_t lo = std::min(n, r * per), hi = std::min(n, lo + per);
          if (hi <= lo) invalid = true;
          counts.push_back(partial ? (hi - lo + bs - 1) / bs : (hi - lo) / bs);
        }
        const bool agree = !invalid && std::all_of(counts.begin(), counts.end(),
                                                   [&](lux::index_t c) { return c == counts[0]; });
        if (agree) {
          auto loader = dist::sharded_loader(b, data, {.batchsize = bs, .partial = partial});
          CHECK(loader.size() == counts[me]);
          CHECK(loader.range() == lux::shard_range(n, {me, p}));
          lux::index_t seen = 0;
          for (const auto& xb : loader) seen += xb.size(1);
          CHECK(seen <= loader.range().size());
        } else {
          CHECK_THROWS_AS(dist::sharded_loader(b, data, {.batchsize = bs, .partial = partial}),
                          lux::distributed_error);
        }
      }
    }
  }
  CHECK_THROWS_AS(
      dist::sharded_loader(b, lux::Tensor<float, 1>(lux::shape_t<1>{8}), {.shard = {0, 2}}),
      lux::argument_error);
}

int main(int argc, char** argv) {
  const auto& b = world();  // initializes MPI
  return lux_test::run_catch_on_every_rank(b, argc, argv, "lux::distributed tests") ? 1 : 0;
}
