// lux::distributed over NCCL (Lux's DistributedUtils with NCCLBackend), on device tensors. Run
// under mpirun with any number of ranks (CTest: -np 1), one GPU per rank; every rank runs every
// test case, and a check that fails on any rank fails the run (the exit code is agreed over MPI).
// Without a CUDA device it prints "no CUDA device: NCCL tests skipped" and exits with 77 (CTest's
// SKIP_RETURN_CODE) before creating any backend.
//
// Independent references: each rank regenerates every other rank's host data from its seed, so a
// collective's result (copied back to the host) is checked against a serial reduction computed
// locally in double.
#define CATCH_CONFIG_RUNNER
#define CATCH_CONFIG_CONSOLE_WIDTH 300
#include <cuda_runtime_api.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <lux/core/cuda.hpp>
#include <lux/distributed/nccl.hpp>
#include <lux/distributed/training.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "support/check.hpp"
#include "support/distributed.hpp"

namespace {

namespace dist = lux::distributed;

const dist::nccl_backend* the_backend = nullptr;  // main's backend, alive while the tests run

const dist::nccl_backend& world() { return *the_backend; }

constexpr dist::reduce_op all_ops[] = {dist::reduce_op::sum, dist::reduce_op::avg,
                                       dist::reduce_op::max, dist::reduce_op::min};

/// Rank r's host data (any rank can rebuild any other's).
lux::Tensor<float, 2> floats_of(int r) {
  return lux_test::random_tensor<float, 2>({3, 7}, 100 + r, -2, 2);
}
lux::Tensor<double, 1> doubles_of(int r) {
  return lux_test::random_tensor<double, 1>({11}, 200 + r, -2, 2);
}

/// The values of a host or device array, as double.
template <class A>
std::vector<double> values_of(const A& a) {
  if constexpr (std::is_same_v<lux::array_device_t<A>, lux::cuda>) {
    return values_of(lux::to<lux::cpu>(a));
  } else {
    std::vector<double> v;
    for (lux::index_t i = 0; i < a.numel(); ++i) v.push_back(double(a.data()[i]));
    return v;
  }
}

/// Every rank's values of `make(r)`.
template <class F>
std::vector<std::vector<double>> every_rank(F make) {
  std::vector<std::vector<double>> all;
  for (int r = 0; r < world().total_workers(); ++r) all.push_back(values_of(make(r)));
  return all;
}

using device_tree_t = lux::named_tuple<
    lux::named_field<"layer_1",
                     lux::named_tuple<lux::named_field<"weight", lux::Tensor<float, 2, lux::cuda>>,
                                      lux::named_field<"bias", lux::Tensor<float, 1, lux::cuda>>>>,
    lux::named_field<"layer_2",
                     lux::named_tuple<lux::named_field<"w", lux::Tensor<double, 3, lux::cuda>>>>,
    lux::named_field<"count", std::int64_t>>;

/// Rank r's tree, on the device (values drawn from seeds 300 + r, 400 + r, 500 + r).
device_tree_t device_tree_of(int r) {
  device_tree_t t;
  t.get<"layer_1">().get<"weight">() =
      lux::to<lux::cuda>(lux_test::random_tensor<float, 2>({3, 4}, 300 + r, -2, 2));
  t.get<"layer_1">().get<"bias">() =
      lux::to<lux::cuda>(lux_test::random_tensor<float, 1>({3}, 400 + r, -2, 2));
  t.get<"layer_2">().get<"w">() =
      lux::to<lux::cuda>(lux_test::random_tensor<double, 3>({2, 3, 5}, 500 + r, -2, 2));
  t.get<"count">() = 10 + r;
  return t;
}

/// Every value of the tree's arrays, in leaf order, as double.
std::vector<double> tree_values(const device_tree_t& t) {
  std::vector<double> v;
  lux::for_each_leaf(t, [&](std::string_view, const auto& leaf) {
    using L = std::remove_cvref_t<decltype(leaf)>;
    if constexpr (lux::is_array_v<L>) {
      const auto part = values_of(leaf);
      v.insert(v.end(), part.begin(), part.end());
    }
  });
  return v;
}

}  // namespace

TEST_CASE("nccl_backend: ranks, device, stream and the host helpers", "[nccl]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  CHECK(me >= 0);
  CHECK(me < p);
  CHECK(b.mpi().total_workers() == p);
  CHECK(b.mpi().local_rank() == me);
  int devices = 0, current = -1;
  lux::detail::cuda_check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
  lux::detail::cuda_check(cudaGetDevice(&current), "cudaGetDevice");
  CHECK(b.device() >= 0);
  CHECK(b.device() < devices);
  CHECK(current == b.device());  // the constructor selected it
  CHECK(b.stream() != nullptr);
  CHECK(b.comm() != nullptr);
  // A copy shares the communicator and the stream.
  const dist::nccl_backend copy = b;
  CHECK(copy.comm() == b.comm());
  CHECK(copy.stream() == b.stream());
  CHECK(copy.device() == b.device());
  // The host helpers go through MPI.
  CHECK(b.all_equal(42));
  CHECK(b.all_equal(std::uint64_t(me)) == (p == 1));
  const auto all = b.allgather("rank " + std::to_string(me));
  REQUIRE(all.size() == std::size_t(p));
  for (int r = 0; r < p; ++r) CHECK(all[r] == "rank " + std::to_string(r));
  std::int64_t v = me == p - 1 ? 1234 : -1;
  b.bcast_host_bytes(&v, sizeof(v), p - 1);
  CHECK(v == 1234);
  std::int64_t s = me + 1;
  b.allreduce_host_scalar(s, dist::reduce_op::sum, -1);
  CHECK(s == std::int64_t(p) * (p + 1) / 2);
  b.barrier();
}

TEST_CASE("allreduce of device tensors equals a serial reduction of every rank's data", "[nccl]") {
  const auto& b = world();
  const int me = b.local_rank();
  const auto all_f = every_rank(floats_of);
  const auto all_d = every_rank(doubles_of);
  for (auto op : all_ops) {
    INFO("op " << dist::to_string(op));
    auto f = lux::to<lux::cuda>(floats_of(me));
    b.reset_stats();
    dist::allreduce(b, f, op);
    CHECK(b.stats().calls == 1);
    CHECK(b.stats().bytes == f.numel() * lux::index_t(sizeof(float)));
    const double worst_f = lux_test::worst_reduce_error(op, values_of(f), all_f);
    CHECK(worst_f <= 1e-6);  // float: one rounding per addition
    auto d = lux::to<lux::cuda>(doubles_of(me));
    dist::allreduce(b, d, op);
    CHECK(b.stats().calls == 2);
    const double worst_d = lux_test::worst_reduce_error(op, values_of(d), all_d);
    CHECK(worst_d <= 1e-12);
    if (op == dist::reduce_op::max || op == dist::reduce_op::min) {
      CHECK(worst_f == 0);
      CHECK(worst_d == 0);
    }
    // Every rank holds the same bytes.
    const auto hf = lux::to<lux::cpu>(f);
    CHECK(b.all_equal(dist::detail::fingerprint(std::string_view(
        reinterpret_cast<const char*>(hf.data()), std::size_t(hf.numel()) * sizeof(float)))));
  }
}

TEST_CASE("allreduce: out of place leaves the send buffer alone; integer element types", "[nccl]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  const auto all_d = every_rank(doubles_of);
  const auto send = lux::to<lux::cuda>(doubles_of(me));
  lux::Tensor<double, 1, lux::cuda> recv(send.shape());
  b.reset_stats();
  b.allreduce(send.data(), recv.data(), send.numel(), dist::reduce_op::sum);
  CHECK(b.stats().calls == 1);
  CHECK(values_of(send) == values_of(doubles_of(me)));
  CHECK(lux_test::worst_reduce_error(dist::reduce_op::sum, values_of(recv), all_d) <= 1e-12);

  // int32 / int64 / uint8: exact sums and maxima.
  lux::Tensor<std::int32_t, 1> hi(lux::shape_t<1>{5});
  lux::Tensor<std::int64_t, 1> hl(lux::shape_t<1>{5});
  lux::Tensor<std::uint8_t, 1> hu(lux::shape_t<1>{5});
  for (lux::index_t i = 0; i < 5; ++i) {
    hi.data()[i] = std::int32_t(i * 100 + me);
    hl.data()[i] = (std::int64_t(1) << 40) + i * 100 + me;
    hu.data()[i] = std::uint8_t(i + me);
  }
  auto di = lux::to<lux::cuda>(hi);
  auto dl = lux::to<lux::cuda>(hl);
  auto du = lux::to<lux::cuda>(hu);
  dist::allreduce(b, di, dist::reduce_op::sum);
  dist::allreduce(b, dl, dist::reduce_op::max);
  dist::allreduce(b, du, dist::reduce_op::min);
  CHECK(b.stats().calls == 4);
  const auto ri = lux::to<lux::cpu>(di);
  const auto rl = lux::to<lux::cpu>(dl);
  const auto ru = lux::to<lux::cpu>(du);
  for (lux::index_t i = 0; i < 5; ++i) {
    INFO("i " << i);
    CHECK(ri.data()[i] == std::int32_t(i * 100 * p + p * (p - 1) / 2));
    CHECK(rl.data()[i] == (std::int64_t(1) << 40) + i * 100 + (p - 1));
    CHECK(ru.data()[i] == std::uint8_t(i));
  }
}

TEST_CASE("bcast from the last rank and reduce to rank 0", "[nccl]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  const int last = p - 1;
  b.reset_stats();
  auto f = lux::to<lux::cuda>(floats_of(me));
  dist::bcast(b, f, last);
  CHECK(b.stats().calls == 1);
  CHECK(values_of(f) == values_of(floats_of(last)));
  auto d = lux::to<lux::cuda>(doubles_of(me));
  b.bcast(d.data(), d.numel(), last);  // the element call directly
  CHECK(b.stats().calls == 2);
  CHECK(values_of(d) == values_of(doubles_of(last)));

  const auto all_f = every_rank(floats_of);
  const auto all_d = every_rank(doubles_of);
  for (auto op : all_ops) {
    INFO("op " << dist::to_string(op));
    auto rf = lux::to<lux::cuda>(floats_of(me));
    auto rd = lux::to<lux::cuda>(doubles_of(me));
    b.reset_stats();
    dist::reduce(b, rf, op, 0);
    dist::reduce(b, rd, op, 0);
    CHECK(b.stats().calls == 2);
    if (me == 0) {
      CHECK(lux_test::worst_reduce_error(op, values_of(rf), all_f) <= 1e-6);
      CHECK(lux_test::worst_reduce_error(op, values_of(rd), all_d) <= 1e-12);
    } else {  // the other ranks' data is unchanged
      CHECK(values_of(rf) == values_of(floats_of(me)));
      CHECK(values_of(rd) == values_of(doubles_of(me)));
    }
  }
}

TEST_CASE("a tree of device tensors: allreduce and synchronize", "[nccl]") {
  const auto& b = world();
  const int p = b.total_workers(), me = b.local_rank();
  std::vector<std::vector<double>> all;
  for (int r = 0; r < p; ++r) all.push_back(tree_values(device_tree_of(r)));
  for (auto op : {dist::reduce_op::sum, dist::reduce_op::max}) {
    INFO("op " << dist::to_string(op));
    auto t = device_tree_of(me);
    b.reset_stats();
    dist::allreduce(b, t, op);
    CHECK(b.stats().calls == 3);  // one NCCL call per array leaf; the scalar goes through MPI
    CHECK(lux_test::worst_reduce_error(op, tree_values(t), all) <= 1e-6);
    CHECK(t.get<"count">() ==
          (op == dist::reduce_op::sum ? 10 * p + p * (p - 1) / 2 : std::int64_t(10 + p - 1)));
  }
  {  // avg of the floating-point subtrees
    auto t = device_tree_of(me);
    dist::allreduce(b, t.get<"layer_1">(), dist::reduce_op::avg);
    dist::allreduce(b, t.get<"layer_2">(), dist::reduce_op::avg);
    CHECK(lux_test::worst_reduce_error(dist::reduce_op::avg, tree_values(t), all) <= 1e-6);
    CHECK(t.get<"count">() == 10 + me);
  }
  auto t = device_tree_of(me);
  b.reset_stats();
  dist::synchronize(b, t, 0);
  CHECK(b.stats().calls == 3);
  CHECK(tree_values(t) == all[0]);
  CHECK(t.get<"count">() == 10);
}

TEST_CASE("nccl_backend: ranks passing different shapes get a distributed_error", "[nccl]") {
  const auto& b = world();
  if (b.total_workers() == 1) return;  // needs two ranks
  lux::Tensor<float, 1, lux::cuda> x(lux::shape_t<1>{b.local_rank() == 1 ? 4 : 3});
  b.reset_stats();
  CHECK_THROWS_AS(dist::allreduce(b, x, dist::reduce_op::sum), lux::distributed_error);
  CHECK(b.stats().calls == 0);  // checked before any NCCL call
}

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices <= 0) {
    std::puts("no CUDA device: NCCL tests skipped");
    return 77;  // CTest SKIP_RETURN_CODE
  }
  int failed = 0;
  {
    const dist::mpi_backend mpi;  // initializes MPI
    // NCCL needs a GPU per rank: skip (on every rank) where a node has more ranks than GPUs.
    MPI_Comm node = MPI_COMM_NULL;
    int node_size = 1;
    dist::detail::mpi_check(
        MPI_Comm_split_type(mpi.comm(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
    dist::detail::mpi_check(MPI_Comm_size(node, &node_size), "MPI_Comm_size");
    MPI_Comm_free(&node);
    int crowded = node_size > devices ? 1 : 0;
    mpi.allreduce(&crowded, &crowded, 1, dist::reduce_op::max);
    if (crowded) {
      if (mpi.local_rank() == 0)
        std::printf("more ranks on a node than CUDA devices (%d): NCCL tests skipped\n", devices);
      return 77;
    }
    try {
      const dist::nccl_backend backend(mpi);
      the_backend = &backend;
      failed = lux_test::run_catch_on_every_rank(mpi, argc, argv, "lux::distributed NCCL tests");
      the_backend = nullptr;
    } catch (const std::exception& e) {
      the_backend = nullptr;
      std::fprintf(stderr, "rank %d: %s\n", mpi.local_rank(), e.what());
      failed = 1;
    }
  }
  return failed ? 1 : 0;
}
