// The downstream project's data-parallel program (built where luxcpp::mpi exists): two ranks
// all-reduce a tensor and a parameter tree, and agree on the result.
#include <cstdio>
#include <lux/distributed/mpi.hpp>
#include <lux/distributed/training.hpp>
#include <lux/lux.hpp>

int main() {
  const lux::distributed::mpi_backend backend;
  const int rank = backend.local_rank(), n = backend.total_workers();
  lux::Tensor<float, 1> x(lux::shape_t<1>{4});
  for (lux::index_t i = 0; i < 4; ++i) x[i] = float(rank + 1);
  lux::distributed::allreduce(backend, x, lux::distributed::reduce_op::sum);
  const float want = float(n * (n + 1) / 2);
  lux::rng rng(7 + std::uint64_t(rank));
  auto [ps, st] = lux::setup<float>(rng, lux::Dense({3, 2}));
  lux::distributed::synchronize(backend, ps);  // rank 0's parameters everywhere
  lux::rng rng0(7);
  auto [ps0, st0] = lux::setup<float>(rng0, lux::Dense({3, 2}));
  bool ok = x[0] == want && x[3] == want;
  for (lux::index_t i = 0; i < 6; ++i)
    ok = ok && ps.get<"weight">().data()[i] == ps0.get<"weight">().data()[i];
  std::printf("consumer_mpi rank %d of %d: %s\n", rank, n, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
