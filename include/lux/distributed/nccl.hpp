// luxcpp — the NCCL backend of lux::distributed (Lux's DistributedUtils.NCCLBackend), for
// Tensor<T, N, lux::cuda>, bootstrapped through MPI as Lux does. Link luxcpp::nccl (CMake: the
// CUDA runtime, MPI and NCCL >= 2.13), or add their flags yourself.
//
//   lux::distributed::nccl_backend backend;   // MPI (if needed), a device, a communicator
//   auto grads = lux::to<lux::cuda>(host_grads);   // after the constructor chose the device
//   lux::distributed::allreduce(backend, grads, lux::distributed::reduce_op::avg);
//   mpirun -np 2 ./my_training_program         // one process per GPU
//
// * Construction: an mpi_backend (a new one on MPI_COMM_WORLD, or the one passed) provides the
//   ranks; each rank selects its CUDA device, rank 0 calls ncclGetUniqueId, MPI broadcasts the id
//   and every rank calls ncclCommInitRank. All ranks must construct their backends together
//   (it is a collective). A rank that fails to select its device makes every rank throw the same
//   lux::distributed_error (the ranks agree over MPI before touching NCCL).
// * The device: by default the rank's index among the ranks on its node (MPI_Comm_split_type,
//   MPI_COMM_TYPE_SHARED) modulo cudaGetDeviceCount(); nccl_backend(mpi, device) picks one
//   explicitly. The constructor calls cudaSetDevice, so the tensors allocated afterwards on this
//   thread live on that device. NCCL needs a distinct GPU per rank of a communicator: with more
//   ranks on a node than devices, ncclCommInitRank fails (the error says so).
// * Element collectives (bcast, allreduce, reduce) take DEVICE pointers. Each is enqueued on
//   the backend's own CUDA stream (a blocking stream: it is ordered after work on the legacy
//   default stream, where lux's copies and kernels run) and followed by cudaStreamSynchronize,
//   so the data is ready when the call returns — simple and correct, not overlapped. reduce is
//   in place on root (NCCL's sendbuff == recvbuff); other ranks pass no receive buffer, so
//   their data is left unchanged. avg is ncclAvg for floating-point elements (for integers it is
//   the sum, as with mpi_backend; the tree collectives reject it). Element types: float,
//   double, and 8-, 32- and 64-bit integers (NCCL has no 16-bit integers).
// * The host helpers (bcast_host_bytes, allreduce_host_scalar, all_equal, allgather) act on host
//   memory and are forwarded to the MPI backend (mpi()); its stats() count them, this backend's
//   stats() count the NCCL collectives only.
// * Every NCCL call is checked: a failure throws lux::distributed_error naming the call and
//   ncclGetErrorString (plus ncclGetLastError's detail); CUDA calls throw lux::cuda_error.
//   Copies of a backend share the communicator and the stream; the last one destroys them.
// * What works with it: bcast / allreduce / reduce / synchronize of device tensors and of trees
//   of them (common.hpp, training.hpp; scalar leaves go through MPI). DistributedOptimizer
//   (training.hpp) runs on host buffers and therefore needs mpi_backend until the CUDA
//   operation mode's optimiser kernels exist.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/cuda.hpp"
#include "lux/core/device.hpp"
#include "lux/core/error.hpp"
#include "lux/distributed/common.hpp"
#include "lux/distributed/mpi.hpp"

#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 13, 0)
#error "lux/distributed/nccl.hpp needs NCCL 2.13 or newer (ncclAvg, ncclGetLastError)"
#endif

LUX_NAMESPACE_BEGIN
namespace distributed {

namespace detail {

inline void nccl_check(ncclResult_t code, const char* call, ncclComm_t comm = nullptr) {
  if (code == ncclSuccess) return;
  std::string msg = concat(call, " failed: ", ncclGetErrorString(code));
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') msg += concat(" (", last, ")");
  throw distributed_error(msg);
}

template <class T>
constexpr ncclDataType_t nccl_type() {
  constexpr bool supported = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                             (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                              (sizeof(T) == 1 || sizeof(T) == 4 || sizeof(T) == 8));
  static_assert(supported,
                "lux::distributed::nccl_backend: NCCL carries float, double and 8-, 32- and "
                "64-bit integers only (no 16-bit integers, bool or long double)");
  if constexpr (std::is_same_v<T, float>)
    return ncclFloat32;
  else if constexpr (std::is_same_v<T, double>)
    return ncclFloat64;
  else if constexpr (std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1)
      return ncclInt8;
    else if constexpr (sizeof(T) == 4)
      return ncclInt32;
    else
      return ncclInt64;
  } else {
    if constexpr (sizeof(T) == 1)
      return ncclUint8;
    else if constexpr (sizeof(T) == 4)
      return ncclUint32;
    else
      return ncclUint64;
  }
}

template <class T>
constexpr ncclRedOp_t nccl_op(reduce_op op) {
  switch (op) {
    case reduce_op::max:
      return ncclMax;
    case reduce_op::min:
      return ncclMin;
    case reduce_op::avg:
      return std::is_floating_point_v<T> ? ncclAvg : ncclSum;
    default:
      return ncclSum;
  }
}

}  // namespace detail

/// Lux's NCCLBackend: local_rank, total_workers, and the element collectives on device buffers
/// that lux::distributed's bcast / allreduce / reduce / synchronize are written on.
class nccl_backend {
 public:
  using device_type = cuda;

  /// A backend over a new mpi_backend on MPI_COMM_WORLD (initializing MPI if needed), on the
  /// rank's device within its node.
  nccl_backend() : nccl_backend(mpi_backend(), -1) {}
  /// A backend over the ranks of `mpi`, on the rank's device within its node.
  explicit nccl_backend(const mpi_backend& mpi) : nccl_backend(mpi, -1) {}
  /// A backend over the ranks of `mpi` on CUDA device `device` (0 <= device <
  /// cudaGetDeviceCount(); a negative value: the automatic choice).
  nccl_backend(const mpi_backend& mpi, int device) : s_(std::make_shared<state>(mpi)) {
    init(device);
  }

  /// This process's rank, 0-based (Lux's local_rank).
  int local_rank() const noexcept { return s_->mpi.local_rank(); }
  /// The number of ranks (Lux's total_workers).
  int total_workers() const noexcept { return s_->mpi.total_workers(); }
  /// The CUDA device this rank's communicator uses.
  int device() const noexcept { return s_->device; }
  /// The backend's CUDA stream (the collectives run on it; do not destroy it).
  cudaStream_t stream() const noexcept { return s_->stream; }
  /// The NCCL communicator (do not destroy it).
  ncclComm_t comm() const noexcept { return s_->comm; }
  /// The MPI backend that bootstrapped this one (and runs the host helpers).
  const mpi_backend& mpi() const noexcept { return s_->mpi; }
  const collective_stats& stats() const noexcept { return s_->stats; }
  void reset_stats() const noexcept { s_->stats = {}; }
  /// Waits for this rank's stream, then MPI_Barrier.
  void barrier() const {
    lux::detail::cuda_check(cudaStreamSynchronize(s_->stream), "cudaStreamSynchronize");
    s_->mpi.barrier();
  }

  // ---- element collectives on device buffers (what the tree collectives call) -------------

  template <class T>
  void bcast(T* data, index_t n, int root) const {
    constexpr auto type = detail::nccl_type<T>();
    detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
    if (n <= 0) return;
    detail::nccl_check(
        ncclBroadcast(data, data, static_cast<std::size_t>(n), type, root, s_->comm, s_->stream),
        "ncclBroadcast", s_->comm);
    sync();
  }
  /// recv = op over the ranks' send (send == recv: in place).
  template <class T>
  void allreduce(const T* send, T* recv, index_t n, reduce_op op) const {
    constexpr auto type = detail::nccl_type<T>();
    detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
    if (n <= 0) return;
    detail::nccl_check(ncclAllReduce(send, recv, static_cast<std::size_t>(n), type,
                                     detail::nccl_op<T>(op), s_->comm, s_->stream),
                       "ncclAllReduce", s_->comm);
    sync();
  }
  /// In place on root; the other ranks' data is left unchanged (they pass no receive buffer,
  /// which NCCL allows on every rank but root).
  template <class T>
  void reduce(T* data, index_t n, reduce_op op, int root) const {
    constexpr auto type = detail::nccl_type<T>();
    detail::stats_timer t(s_->stats, n * static_cast<index_t>(sizeof(T)));
    if (n <= 0) return;
    T* recv = root == local_rank() ? data : nullptr;
    detail::nccl_check(ncclReduce(data, recv, static_cast<std::size_t>(n), type,
                                  detail::nccl_op<T>(op), root, s_->comm, s_->stream),
                       "ncclReduce", s_->comm);
    sync();
  }

  // ---- host-side helpers (host memory, through MPI) ----------------------------------------

  void bcast_host_bytes(void* data, std::size_t bytes, int root) const {
    s_->mpi.bcast_host_bytes(data, bytes, root);
  }
  /// One arithmetic host scalar: all-reduced (root < 0) or reduced to root.
  template <class T>
  void allreduce_host_scalar(T& v, reduce_op op, int root) const {
    s_->mpi.allreduce_host_scalar(v, op, root);
  }
  /// Whether every rank passed the same v.
  bool all_equal(std::uint64_t v) const { return s_->mpi.all_equal(v); }
  /// Every rank's string, in rank order.
  std::vector<std::string> allgather(const std::string& s) const { return s_->mpi.allgather(s); }

 private:
  struct state {
    mpi_backend mpi;
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
    int device = -1;
    collective_stats stats;
    explicit state(const mpi_backend& m) : mpi(m) {}
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() {
      // Errors are ignored here: a destructor cannot report them, and at program exit the
      // driver may already be shutting down.
      int previous = -1;
      const bool switch_device = device >= 0 && cudaGetDevice(&previous) == cudaSuccess &&
                                 previous != device && cudaSetDevice(device) == cudaSuccess;
      if (comm != nullptr) ncclCommDestroy(comm);
      if (stream != nullptr) cudaStreamDestroy(stream);
      if (switch_device) cudaSetDevice(previous);
    }
  };
  /// What rank 0 broadcasts: ncclGetUniqueId's result and the id.
  struct unique_id_message {
    int code = ncclSuccess;
    ncclUniqueId id;
  };

  void sync() const {
    lux::detail::cuda_check(cudaStreamSynchronize(s_->stream), "cudaStreamSynchronize");
  }

  void init(int requested) {
    const auto& m = s_->mpi;
    const int rank = m.local_rank(), size = m.total_workers();
    // The rank's index among the ranks of its node (collective: every rank takes part).
    int node_rank = 0, node_size = 1;
    {
      MPI_Comm node = MPI_COMM_NULL;
      detail::mpi_check(
          MPI_Comm_split_type(m.comm(), MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
      const int r1 = MPI_Comm_rank(node, &node_rank);
      const int r2 = MPI_Comm_size(node, &node_size);
      MPI_Comm_free(&node);
      detail::mpi_check(r1, "MPI_Comm_rank");
      detail::mpi_check(r2, "MPI_Comm_size");
    }
    // Local steps that may fail on some ranks only: the ranks agree before NCCL is touched.
    int devices = 0;
    std::string problem;
    try {
      lux::detail::cuda_check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
      require<cuda_error>(devices > 0, "cudaGetDeviceCount: no CUDA device");
      if (requested < 0) {
        s_->device = node_rank % devices;
      } else {
        require<argument_error>(requested < devices, "nccl_backend: device ", requested,
                                " is outside [0, ", devices, ")");
        s_->device = requested;
      }
      lux::detail::cuda_check(cudaSetDevice(s_->device), "cudaSetDevice");
      lux::detail::cuda_check(cudaStreamCreate(&s_->stream), "cudaStreamCreate");
    } catch (const error& e) {
      problem = e.what();
    }
    if (!m.all_equal(problem.empty() ? 0 : 1) || !problem.empty()) {
      const auto all = m.allgather(problem);
      std::string msg = "nccl_backend: setup failed on";
      const char* sep = " ";
      for (std::size_t r = 0; r < all.size(); ++r)
        if (!all[r].empty()) {
          msg += detail::concat(sep, "rank ", r, " (", all[r], ")");
          sep = ", ";
        }
      throw distributed_error(msg);
    }
    // Rank 0 creates the id, MPI carries it (and rank 0's result) to every rank.
    unique_id_message msg;
    std::memset(&msg.id, 0, sizeof(msg.id));
    if (rank == 0) msg.code = ncclGetUniqueId(&msg.id);
    m.bcast_host_bytes(&msg, sizeof(msg), 0);
    detail::nccl_check(static_cast<ncclResult_t>(msg.code), "ncclGetUniqueId (on rank 0)");
    try {
      detail::nccl_check(ncclCommInitRank(&s_->comm, size, msg.id, rank), "ncclCommInitRank");
    } catch (const distributed_error& e) {
      s_->comm = nullptr;
      if (node_size > devices)
        throw distributed_error(
            detail::concat(e.what(), "; note: ", node_size, " ranks share this node's ", devices,
                           " CUDA device(s), and NCCL needs one device per rank"));
      throw;
    }
  }

  std::shared_ptr<state> s_;
};

}  // namespace distributed
LUX_NAMESPACE_END
