// luxcpp — which kernel implementation ran (for tests and debugging).
//
// Every implementation function (lux/kernels/generic/*.hpp, lux/kernels/looped/*.hpp, and a
// backend's) starts with LUX_TRACE_KERNEL("<mode>", "<kernel>"). The macro expands to nothing
// unless LUX_KERNEL_TRACE is defined (to 1) before the first lux header — define it for a whole
// program or test executable, never for some translation units only (the implementations are
// inline templates). With it, each call is appended to a per-thread log:
//
//   lux::kernel_trace trace;                       // starts an empty log for this thread
//   lux::fast_activation(lux::looped_op{}, lux::gelu{}, x);
//   CHECK(trace.ran("looped_op", "fast_activation"));
//   CHECK(!trace.ran("generic_op", "fast_activation"));   // no silent fallback
//
// Calls made on OpenMP worker threads are not recorded (implementations record on entry, on
// the calling thread, before any parallel region).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN

#if defined(LUX_KERNEL_TRACE) && LUX_KERNEL_TRACE
namespace detail {
struct kernel_trace_entry {
  std::string_view mode;
  std::string_view kernel;
};
inline std::vector<kernel_trace_entry>*& kernel_trace_log() {
  thread_local std::vector<kernel_trace_entry>* log = nullptr;
  return log;
}
inline void record_kernel(std::string_view mode, std::string_view kernel) {
  if (auto* log = kernel_trace_log()) log->push_back({mode, kernel});
}
}  // namespace detail

/// Records the implementations run on this thread while it lives (nestable: the innermost
/// trace records; the outer one resumes when it ends).
class kernel_trace {
 public:
  kernel_trace() : outer_(detail::kernel_trace_log()) { detail::kernel_trace_log() = &log_; }
  ~kernel_trace() { detail::kernel_trace_log() = outer_; }
  kernel_trace(const kernel_trace&) = delete;
  kernel_trace& operator=(const kernel_trace&) = delete;

  /// True when `kernel` ran in `mode` (e.g. "looped_op", "conv_forward").
  bool ran(std::string_view mode, std::string_view kernel) const {
    for (const auto& e : log_)
      if (e.mode == mode && e.kernel == kernel) return true;
    return false;
  }
  /// True when any implementation of `mode` ran.
  bool ran_mode(std::string_view mode) const {
    for (const auto& e : log_)
      if (e.mode == mode) return true;
    return false;
  }
  std::size_t size() const { return log_.size(); }
  void clear() { log_.clear(); }
  /// "looped_op:conv_forward generic_op:conv_bias_gradient ..." for messages.
  std::string str() const {
    std::string s;
    for (const auto& e : log_) {
      if (!s.empty()) s += ' ';
      s.append(e.mode).append(":").append(e.kernel);
    }
    return s;
  }

 private:
  std::vector<detail::kernel_trace_entry> log_;
  std::vector<detail::kernel_trace_entry>* outer_;
};
#define LUX_TRACE_KERNEL(mode, kernel) ::lux::detail::record_kernel(mode, kernel)
#else
#define LUX_TRACE_KERNEL(mode, kernel) static_cast<void>(0)
#endif

LUX_NAMESPACE_END
