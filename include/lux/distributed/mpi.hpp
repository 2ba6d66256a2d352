// luxcpp — the MPI backend of lux::distributed (Lux's DistributedUtils.MPIBackend), on Open MPI
// or any MPI-3 library. Link luxcpp::mpi (CMake) or add MPI's flags yourself.
//
//   lux::distributed::mpi_backend backend;   // MPI_Init_thread on first use (FUNNELED)
//   backend.local_rank(); backend.total_workers();
//   mpirun -np 2 ./my_training_program
//
// * The backend works on a duplicate of its communicator (MPI_COMM_WORLD by default), with the
//   error handler set to return codes: a failing call throws lux::distributed_error naming the
//   call and MPI's error string. Copies of a backend share the communicator; the last one frees
//   it. MPI is finalized at program exit if luxcpp initialized it.
// * Host arrays only (device_type = lux::cpu). Collectives of more than 2^30 elements are split
//   into pieces (MPI counts are int).
// * Collectives must be called from the thread that initialized MPI (MPI_THREAD_FUNNELED); the
//   kernels' OpenMP threads and the DataLoader's prefetch thread never call MPI.
// * stats(): the collectives' count, bytes and wall time on this rank, for profiling (the
//   example prints the all-reduce share of a training step).
#pragma once

// The C API only: keep MPI-2's removed C++ bindings out (they are also -Wcast-function-type dirty).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/device.hpp"
#include "lux/core/error.hpp"
#include "lux/distributed/common.hpp"

LUX_NAMESPACE_BEGIN
namespace distributed {

namespace detail {

inline void mpi_check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  throw distributed_error(
      concat(call, " failed: ", std::string(text, static_cast<std::size_t>(len))));
}

/// Initializes MPI once per process (unless the program did) and finalizes it at exit if it
/// was luxcpp that initialized it.
class mpi_environment {
 public:
  static void ensure() { static mpi_environment env; }
  mpi_environment(const mpi_environment&) = delete;
  mpi_environment& operator=(const mpi_environment&) = delete;

 private:
  mpi_environment() {
    int initialized = 0;
    mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (initialized) return;
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owned_ = true;
  }
  ~mpi_environment() {
    int finalized = 1;
    if (owned_ && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
  }
  bool owned_ = false;
};

template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1)
      return MPI_INT8_T;
    else if constexpr (sizeof(T) == 2)
      return MPI_INT16_T;
    else if constexpr (sizeof(T) == 4)
      return MPI_INT32_T;
    else
      return MPI_INT64_T;
  } else {
    static_assert(std::is_integral_v<T> && std::is_unsigned_v<T>,
                  "lux::distributed: no MPI datatype for this element type");
    if constexpr (sizeof(T) == 1)
      return MPI_UINT8_T;
    else if constexpr (sizeof(T) == 2)
      return MPI_UINT16_T;
    else if constexpr (sizeof(T) == 4)
      return MPI_UINT32_T;
    else
      return MPI_UINT64_T;
  }
}

inline MPI_Op mpi_op(reduce_op op) {
  switch (op) {
    case reduce_op::max:
      return MPI_MAX;
    case reduce_op::min:
      return MPI_MIN;
    default:
      return MPI_SUM;  // sum, and avg before its division
  }
}

/// Largest element count per MPI call.
inline constexpr index_t mpi_chunk = index_t{1} << 30;

}  // namespace detail

/// Lux's MPIBackend: local_rank, total_workers, and the element collectives lux::distributed's
/// bcast / allreduce / reduce / synchronize / DistributedOptimizer are written on.
class mpi_backend {
 public:
  using device_type = cpu;

  /// A backend over a duplicate of MPI_COMM_WORLD (initializing MPI if needed).
  mpi_backend() : mpi_backend(MPI_COMM_WORLD, true) {}
  /// A backend over a duplicate of `comm` (MPI must be initialized).
  explicit mpi_backend(MPI_Comm comm) : mpi_backend(comm, false) {}

  /// This process's rank, 0-based (Lux's local_rank).
  int local_rank() const noexcept { return s_->rank; }
  /// The number of ranks (Lux's total_workers).
  int total_workers() const noexcept { return s_->size; }
  /// The backend's own communicator (a duplicate; do not free it).
  MPI_Comm comm() const noexcept { return s_->comm; }
  const collective_stats& stats() const noexcept { return s_->stats; }
  void reset_stats() const noexcept { s_->stats = {}; }
  /// MPI_Barrier on the backend's communicator.
  void barrier() const { detail::mpi_check(MPI_Barrier(s_->comm), "MPI_Barrier"); }

  // ---- element collectives on host buffers (what the tree collectives call) ----------------

  template <class T>
  void bcast(T* data, index_t n, int root) const {
    detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
    for (index_t off = 0; off < n; off += detail::mpi_chunk)
      detail::mpi_check(
          MPI_Bcast(data + off, count(n - off), detail::mpi_type<T>(), root, s_->comm),
          "MPI_Bcast");
  }
  /// recv = op over the ranks' send (send == recv: in place).
  template <class T>
  void allreduce(const T* send, T* recv, index_t n, reduce_op op) const {
    {
      detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
      for (index_t off = 0; off < n; off += detail::mpi_chunk)
        detail::mpi_check(
            MPI_Allreduce(send == recv ? MPI_IN_PLACE : send + off, recv + off, count(n - off),
                          detail::mpi_type<T>(), detail::mpi_op(op), s_->comm),
            "MPI_Allreduce");
    }
    if (op == reduce_op::avg) scale(recv, n);
  }
  /// In place on root; the other ranks' data is left unchanged.
  template <class T>
  void reduce(T* data, index_t n, reduce_op op, int root) const {
    {
      detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
      const bool me = root == s_->rank;
      for (index_t off = 0; off < n; off += detail::mpi_chunk)
        detail::mpi_check(
            MPI_Reduce(me ? MPI_IN_PLACE : data + off, me ? data + off : nullptr, count(n - off),
                       detail::mpi_type<T>(), detail::mpi_op(op), root, s_->comm),
            "MPI_Reduce");
    }
    if (op == reduce_op::avg && root == s_->rank) scale(data, n);
  }

  // ---- host-side helpers --------------------------------------------------------------------

  void bcast_host_bytes(void* data, std::size_t bytes, int root) const {
    detail::mpi_check(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, s_->comm),
                      "MPI_Bcast");
  }
  /// One arithmetic host scalar: all-reduced (root < 0) or reduced to root.
  template <class T>
  void allreduce_host_scalar(T& v, reduce_op op, int root) const {
    if (root < 0)
      allreduce(&v, &v, 1, op);
    else
      reduce(&v, 1, op, root);
  }
  /// Whether every rank passed the same v (one all-reduce of two words).
  bool all_equal(std::uint64_t v) const {
    std::uint64_t w[2] = {v, ~v};
    detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, w, 2, MPI_UINT64_T, MPI_MIN, s_->comm),
                      "MPI_Allreduce");
    return w[0] == ~w[1];  // min(v) == max(v)
  }
  /// Every rank's string, in rank order.
  std::vector<std::string> allgather(const std::string& s) const {
    require<distributed_error>(s.size() <= static_cast<std::size_t>(detail::mpi_chunk),
                               "distributed::allgather: ", s.size(), " bytes is too many");
    const int mine = static_cast<int>(s.size());
    std::vector<int> sizes(static_cast<std::size_t>(s_->size)), offsets(sizes.size());
    detail::mpi_check(MPI_Allgather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, s_->comm),
                      "MPI_Allgather");
    std::int64_t total = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = static_cast<int>(total);
      total += sizes[r];
      require<distributed_error>(total <= detail::mpi_chunk, "distributed::allgather: ", total,
                                 " bytes is too many");
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    detail::mpi_check(MPI_Allgatherv(s.data(), mine, MPI_CHAR, all.data(), sizes.data(),
                                     offsets.data(), MPI_CHAR, s_->comm),
                      "MPI_Allgatherv");
    std::vector<std::string> out;
    for (std::size_t r = 0; r < sizes.size(); ++r)
      out.emplace_back(all, static_cast<std::size_t>(offsets[r]),
                       static_cast<std::size_t>(sizes[r]));
    return out;
  }

 private:
  struct state {
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0;
    int size = 1;
    collective_stats stats;
    state() = default;
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
      int finalized = 1;
      if (comm != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized)
        MPI_Comm_free(&comm);
    }
  };

  mpi_backend(MPI_Comm comm, bool init) : s_(std::make_shared<state>()) {
    if (init) detail::mpi_environment::ensure();
    int initialized = 0;
    detail::mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
    require<distributed_error>(initialized, "mpi_backend: MPI is not initialized");
    detail::mpi_check(MPI_Comm_dup(comm, &s_->comm), "MPI_Comm_dup");
    detail::mpi_check(MPI_Comm_set_errhandler(s_->comm, MPI_ERRORS_RETURN),
                      "MPI_Comm_set_errhandler");
    detail::mpi_check(MPI_Comm_rank(s_->comm, &s_->rank), "MPI_Comm_rank");
    detail::mpi_check(MPI_Comm_size(s_->comm, &s_->size), "MPI_Comm_size");
  }
  static int count(index_t left) {
    return static_cast<int>(left < detail::mpi_chunk ? left : detail::mpi_chunk);
  }
  template <class T>
  void scale(T* data, index_t n) const {
    if constexpr (std::is_floating_point_v<T>) {
      const T inv = T(1) / static_cast<T>(s_->size);
      for (index_t i = 0; i < n; ++i) data[i] *= inv;
    }
  }

  std::shared_ptr<state> s_;
};

}  // namespace distributed
LUX_NAMESPACE_END
