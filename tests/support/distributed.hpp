// Shared by the lux::distributed tests (MPI and NCCL): the serial reference of a reduction over
// every rank's data, and a Catch2 run whose result is agreed over MPI.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <lux/distributed/mpi.hpp>
#include <vector>

#include <catch2/catch.hpp>

namespace lux_test {

/// op over element i of every rank's values, in double (avg: the sum divided by the ranks).
inline double serial_reduce(lux::distributed::reduce_op op,
                            const std::vector<std::vector<double>>& all, std::size_t i) {
  using lux::distributed::reduce_op;
  double acc = all[0][i];
  for (std::size_t r = 1; r < all.size(); ++r) {
    const double x = all[r][i];
    acc = op == reduce_op::max   ? std::max(acc, x)
          : op == reduce_op::min ? std::min(acc, x)
                                 : acc + x;
  }
  return op == reduce_op::avg ? acc / double(all.size()) : acc;
}

/// The largest |got - serial| / max(1, |serial|).
inline double worst_reduce_error(lux::distributed::reduce_op op, const std::vector<double>& got,
                                 const std::vector<std::vector<double>>& all) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double want = serial_reduce(op, all, i);
    worst = std::max(worst, std::abs(got[i] - want) / std::max(1.0, std::abs(want)));
  }
  return worst;
}

/// Runs the Catch2 session on this rank (ranks other than 0 report compactly) and returns the
/// number of failures, made the maximum over the ranks so every rank exits alike.
inline int run_catch_on_every_rank(const lux::distributed::mpi_backend& mpi, int argc, char** argv,
                                   const char* what) {
  Catch::Session session;
  int failed = session.applyCommandLine(argc, argv);
  if (failed == 0) {
    if (mpi.local_rank() != 0) session.configData().reporterName = "compact";
    failed = session.run();
  }
  mpi.allreduce(&failed, &failed, 1, lux::distributed::reduce_op::max);
  if (mpi.local_rank() == 0)
    std::printf("%s on %d ranks: %s\n", what, mpi.total_workers(), failed ? "FAILED" : "passed");
  return failed;
}

}  // namespace lux_test
