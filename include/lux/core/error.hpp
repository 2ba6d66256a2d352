// luxcpp — the exception hierarchy and the helpers that build readable messages.
//
// Every public entry point validates its arguments and throws one of these with a
// message of the form  "<operation>: <what was expected>, got <what came>", shapes
// printed as "(3, 4, 5)", e.g.
//   layernorm: scale has shape (64), expected (128) to match x (128, 32)
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "lux/core/config.hpp"

LUX_NAMESPACE_BEGIN

/// Base class of every exception thrown by luxcpp.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
/// An argument has the wrong shape, rank or size.
class shape_error : public error {
 public:
  using error::error;
};
/// An argument has a value outside its domain (a probability outside [0, 1), ...).
class argument_error : public error {
 public:
  using error::error;
};
/// Reading or writing a file failed or the file is malformed.
class io_error : public error {
 public:
  using error::error;
};
/// A CUDA, cuBLAS(Lt) or cuDNN call failed.
class cuda_error : public error {
 public:
  using error::error;
};
/// A collective of lux::distributed failed, or the ranks disagree (different parameter trees,
/// different batch counts): thrown on every rank.
class distributed_error : public error {
 public:
  using error::error;
};

/// Formats a shape as "(3, 4, 5)"; a rank-0 shape prints as "()".
template <class Int>
std::string format_shape(std::span<const Int> dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  s += ")";
  return s;
}
template <class Int, std::size_t N>
std::string format_shape(const std::array<Int, N>& dims) {
  return format_shape(std::span<const Int>(dims.data(), N));
}

namespace detail {
/// Streams every argument into one string; std::array<index_t, N> prints as a shape.
template <class Arg>
void append_message(std::ostringstream& os, const Arg& a) {
  if constexpr (requires { format_shape(a); })
    os << format_shape(a);
  else
    os << a;
}
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (append_message(os, args), ...);
  return os.str();
}
}  // namespace detail

/// Throws E(concat(args...)) unless `condition` holds.  Usage:
///   require<shape_error>(a.size(0) == b.size(0), "batchnorm: scale has shape ", s.shape(), ...);
template <class E, class... Args>
inline void require(bool condition, const Args&... args) {
  if (!condition) [[unlikely]]
    throw E(detail::concat(args...));
}

LUX_NAMESPACE_END
