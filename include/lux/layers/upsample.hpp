// luxcpp — Lux's Upsample and PixelShuffle layers. No parameters, no states (lux::empty_tuple).
//
//   lux::Upsample(lux::upsample_mode::nearest, {.scale = 2})       // Upsample(:nearest, scale = 2)
//   lux::Upsample(lux::upsample_mode::bilinear, {.size = {64, 48}})   // W first
//   lux::Upsample(2)   lux::Upsample({2, 3}, lux::upsample_mode::bilinear)   // Lux's option 2
//   lux::PixelShuffle(2)
//
// Upsample(mode; scale | size) — exactly one of scale / size (argument_error otherwise):
//   nearest    any rank ≥ 3 (spatial..., C, B); integer scale per spatial dimension (one value is
//              broadcast), y[o] = x[⌊o / scale⌋]; or a size that is a multiple of the input's.
//   linear     (W, C, B): computed as bilinear on (W, 1, C, B) (NNlib's upsample_linear is the 1-d
//              case of the same interpolation); Lux's documentation lists :linear, Lux's code
//              asserts mode ∈ (:nearest, :bilinear, :trilinear).
//   bilinear   (W, H, C, B);  trilinear (W, H, D, C, B).  Real scale ≥ 1 gives ⌊scale·in⌋, or a
//              size ≥ 1. Kernels: lux/kernels/upsample.hpp (NNlib's, = PyTorch's interpolation).
//   The input's rank is checked at run time for the linear modes (the mode is a value):
//   shape_error.
//
// align_corners — documentation vs code (⚠ Lux 1.x's source): the documented interface has no
// align_corners; Lux's code has an `align_corners = false` keyword that it NEVER forwards to
// NNlib, whose default is true, so every Lux model interpolates with aligned corners. Chosen
// numerics: reproduce what Lux computes — upsample_options::align_corners defaults to TRUE, and
// (unlike Lux) the option is forwarded, so {.align_corners = false} gives PyTorch's default
// F.interpolate(…, align_corners=False). Nearest ignores it.
//
// PixelShuffle(r): x (spatial..., C·r^d, B) → (r·spatial..., C, B), NNlib's pixel_shuffle (for
// d = 2 exactly PyTorch's nn.PixelShuffle under the layout reinterpretation). Lux builds it as
// WrappedFunction(Base.Fix2(pixel_shuffle, r)); here it is a layer of its own printing
// `PixelShuffle(2)`.
//
// Display (Lux): `Upsample(:nearest, scale = 2)`, `Upsample(:bilinear, size = (64, 48))`,
// `Upsample(:bilinear, scale = (2, 3))`; `, align_corners = false` is appended only when the
// non-Lux numerics are chosen.
#pragma once

#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "lux/core/error.hpp"
#include "lux/kernels/upsample.hpp"
#include "lux/layers/layer.hpp"

LUX_NAMESPACE_BEGIN

enum class upsample_mode { nearest, linear, bilinear, trilinear };

/// Upsample's `scale`: one number (all spatial dimensions) or one per spatial dimension (≤ 3).
struct upsample_scale {
  std::array<double, 3> value{};
  int count = 0;         ///< 0: not given; -1: one value broadcast; 1…3: per dimension
  bool integer = false;  ///< given as integers (Julia prints 2, not 2.0)

  constexpr upsample_scale() = default;
  template <std::integral I>
  constexpr upsample_scale(I s)  // NOLINT: implicit by design
      : value{static_cast<double>(s), 0, 0}, count(-1), integer(true) {}
  constexpr upsample_scale(double s) : value{s, 0, 0}, count(-1) {}  // NOLINT
  upsample_scale(std::initializer_list<double> v) : count(static_cast<int>(v.size())) {
    require<argument_error>(v.size() >= 1 && v.size() <= 3,
                            "Upsample: scale needs 1 to 3 values, got ", v.size());
    std::size_t i = 0;
    integer = true;
    for (double e : v) {
      value[i++] = e;
      integer = integer && e == std::floor(e);
    }
  }
  template <std::integral I>
  upsample_scale(std::initializer_list<I> v) : count(static_cast<int>(v.size())), integer(true) {
    require<argument_error>(v.size() >= 1 && v.size() <= 3,
                            "Upsample: scale needs 1 to 3 values, got ", v.size());
    std::size_t i = 0;
    for (I e : v) value[i++] = static_cast<double>(e);
  }
};

/// Upsample's `size`: the output's spatial size, one entry per spatial dimension (≤ 3).
struct upsample_size_arg {
  std::array<index_t, 3> value{};
  int count = 0;
  constexpr upsample_size_arg() = default;
  upsample_size_arg(std::initializer_list<index_t> v) : count(static_cast<int>(v.size())) {
    require<argument_error>(v.size() >= 1 && v.size() <= 3,
                            "Upsample: size needs 1 to 3 values, got ", v.size());
    std::size_t i = 0;
    for (index_t e : v) value[i++] = e;
  }
};

struct upsample_options {
  upsample_scale scale{};
  upsample_size_arg size{};
  bool align_corners = true;  ///< Lux's effective numerics (see the file comment)
};

struct Upsample {
  using is_lux_layer = void;
  static constexpr const char* name = "Upsample";

  upsample_mode mode = upsample_mode::nearest;
  upsample_scale scale{};
  upsample_size_arg size{};
  bool align_corners = true;

  /// Lux's option 1: Upsample(mode; scale | size).
  Upsample(upsample_mode m, upsample_options o)
      : mode(m), scale(o.scale), size(o.size), align_corners(o.align_corners) {
    validate();
  }
  /// Lux's option 2: Upsample(scale, mode = :nearest).
  Upsample(upsample_scale s, upsample_mode m = upsample_mode::nearest) : mode(m), scale(s) {
    validate();
  }

  std::string prefix() const {
    std::ostringstream os;
    print(os);
    return os.str();
  }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 3, "lux::Upsample: the input must have rank >= 3 (spatial..., C, B)");
    constexpr std::size_t S = N - 2;
    check_rank<N>(in);
    const std::string op = prefix();
    shape_numel(in, op.c_str());
    shape_t<N> out = in;
    if (size.count > 0) {
      for (std::size_t d = 0; d < S; ++d) out[d] = size.value[d];
      if (mode == upsample_mode::nearest)
        for (std::size_t d = 0; d < S; ++d)
          require<shape_error>(in[d] >= 1 && out[d] % in[d] == 0, op,
                               ": the output size must be a multiple of the input's, got input ",
                               in);
    } else if (mode == upsample_mode::nearest) {
      const auto s = int_scales<S>();
      for (std::size_t d = 0; d < S; ++d)
        out[d] = checked_mul(in[d], s[d], op.c_str(), "the output size in·scale");
    } else {
      const auto s = scales<S>();
      for (std::size_t d = 0; d < S; ++d)
        out[d] = checked_floor(s[d] * static_cast<double>(in[d]), op.c_str(),
                               "the output size scale·in");
    }
    shape_numel(out, op.c_str());
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    output_shape(xv.shape());
    return std::pair{run(xv), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    const auto yshape = output_shape(xv.shape());
    auto back = [self = *this, xs = xv.shape(), yshape](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == yshape, self.prefix(), ": the output gradient has shape ",
                           dyv.shape(), ", expected ", yshape);
      return gradients{self.run_backward(dyv, xs), empty_tuple{}};
    };
    return pullback_result{run(xv), st, std::move(back)};
  }

  void print(std::ostream& os) const {
    static constexpr const char* names[] = {":nearest", ":linear", ":bilinear", ":trilinear"};
    os << "Upsample(" << names[static_cast<int>(mode)];
    if (scale.count != 0) {
      os << ", scale = ";
      const int n = scale.count < 0 ? 1 : scale.count;
      if (scale.count > 0) os << "(";
      for (int i = 0; i < n; ++i) {
        if (i) os << ", ";
        print_number(os, scale.value[i]);
      }
      if (scale.count > 0) os << (scale.count == 1 ? ",)" : ")");
    } else {
      os << ", size = (";
      for (int i = 0; i < size.count; ++i) os << (i ? ", " : "") << size.value[i];
      os << (size.count == 1 ? ",)" : ")");
    }
    if (!align_corners) os << ", align_corners = false";
    os << ")";
  }

 private:
  void validate() {
    require<argument_error>((scale.count != 0) != (size.count != 0),
                            "Upsample: either scale or size should be specified (but not both)");
    if (scale.count != 0) {
      const int n = scale.count < 0 ? 1 : scale.count;
      for (int i = 0; i < n; ++i) {
        require<argument_error>(std::isfinite(scale.value[i]) && scale.value[i] >= 1,
                                "Upsample: scale must be finite and >= 1, got ", scale.value[i]);
        require<argument_error>(
            mode != upsample_mode::nearest || (scale.value[i] == std::floor(scale.value[i]) &&
                                               scale.value[i] < 9223372036854775808.0),
            "Upsample(:nearest): the scale must be an integer (below 2^63), got ", scale.value[i]);
      }
    }
    for (int i = 0; i < size.count; ++i)
      require<argument_error>(size.value[i] >= 1, "Upsample: size must be >= 1, got ",
                              size.value[i]);
  }

  void print_number(std::ostream& os, double v) const {
    // Whole numbers print as integers (2) or Julia floats (2.0); beyond ±2^63 a double does not
    // convert to long long (undefined behaviour), so those print as doubles.
    const bool fits = v >= -9223372036854775808.0 && v < 9223372036854775808.0;
    if (fits && scale.integer)
      os << static_cast<long long>(v);
    else if (fits && v == std::floor(v))
      os << static_cast<long long>(v) << ".0";
    else
      os << v;
  }

  template <std::size_t N>
  void check_rank(const shape_t<N>& in) const {
    constexpr std::size_t S = N - 2;
    const std::size_t want = mode == upsample_mode::linear      ? 1
                             : mode == upsample_mode::bilinear  ? 2
                             : mode == upsample_mode::trilinear ? 3
                                                                : S;
    require<shape_error>(want == S, prefix(), ": expected an input with ", want,
                         " spatial dimensions (rank ", want + 2, "), got ", in);
    const int given = scale.count > 0 ? scale.count : size.count;
    require<shape_error>(given <= 0 || static_cast<std::size_t>(given) == S, prefix(), ": ", given,
                         " values for an input with ", S, " spatial dimensions, got ", in);
  }

  template <std::size_t S>
  std::array<double, S> scales() const {
    std::array<double, S> s{};
    for (std::size_t d = 0; d < S; ++d) s[d] = scale.count < 0 ? scale.value[0] : scale.value[d];
    return s;
  }
  template <std::size_t S>
  shape_t<S> int_scales() const {
    shape_t<S> s{};
    const auto r = scales<S>();
    for (std::size_t d = 0; d < S; ++d)
      s[d] = checked_floor(r[d], "Upsample(:nearest)", "the scale");  // whole numbers (validate)
    return s;
  }
  template <std::size_t S>
  shape_t<S> sizes() const {
    shape_t<S> s{};
    for (std::size_t d = 0; d < S; ++d) s[d] = size.value[d];
    return s;
  }

  template <class XV>
  auto run(const XV& xv) const {
    constexpr std::size_t N = array_traits<XV>::rank;
    constexpr std::size_t S = N - 2;
    using T = typename array_traits<XV>::value_type;
    if (mode == upsample_mode::nearest) {
      if (size.count > 0) return upsample_nearest(xv, upsample_size<S>(sizes<S>()));
      return upsample_nearest(xv, int_scales<S>());
    }
    // Linear modes: check_rank guarantees the rank; other ranks are never reached.
    if constexpr (N == 3) {
      const auto xs = xv.shape();
      const auto x4 = xv.reshape(shape_t<4>{xs[0], 1, xs[1], xs[2]});
      auto y4 =
          size.count > 0
              ? upsample_bilinear(x4, upsample_size<2>({size.value[0], 1}), align_corners)
              : upsample_bilinear(x4, std::array<double, 2>{scales<1>()[0], 1.0}, align_corners);
      const auto ys = y4.shape();
      return std::move(y4).reshaped(shape_t<3>{ys[0], ys[2], ys[3]});
    } else if constexpr (N == 4) {
      if (size.count > 0) return upsample_bilinear(xv, upsample_size<2>(sizes<2>()), align_corners);
      return upsample_bilinear(xv, scales<2>(), align_corners);
    } else if constexpr (N == 5) {
      if (size.count > 0)
        return upsample_trilinear(xv, upsample_size<3>(sizes<3>()), align_corners);
      return upsample_trilinear(xv, scales<3>(), align_corners);
    } else {
      return Tensor<T, N>{};
    }
  }

  template <class DYV, std::size_t N>
  Tensor<typename array_traits<DYV>::value_type, N> run_backward(const DYV& dyv,
                                                                 const shape_t<N>& xs) const {
    if (mode == upsample_mode::nearest) return upsample_nearest_backward(dyv, xs).dx;
    if constexpr (N == 3) {
      const auto ds = dyv.shape();
      const auto dy4 = dyv.reshape(shape_t<4>{ds[0], 1, ds[1], ds[2]});
      auto dx4 =
          upsample_bilinear_backward(dy4, shape_t<4>{xs[0], 1, xs[1], xs[2]}, align_corners).dx;
      return std::move(dx4).reshaped(xs);
    } else if constexpr (N == 4) {
      return upsample_bilinear_backward(dyv, xs, align_corners).dx;
    } else if constexpr (N == 5) {
      return upsample_trilinear_backward(dyv, xs, align_corners).dx;
    } else {
      return {};
    }
  }
};

struct PixelShuffle {
  using is_lux_layer = void;
  static constexpr const char* name = "PixelShuffle";
  index_t r = 1;

  explicit PixelShuffle(index_t factor) : r(factor) {
    require<argument_error>(r >= 1, "PixelShuffle: the upscale factor must be >= 1, got ", r);
  }

  std::string prefix() const { return "PixelShuffle(" + std::to_string(r) + ")"; }

  template <std::size_t N>
  shape_t<N> output_shape(const shape_t<N>& in) const {
    static_assert(N >= 3, "lux::PixelShuffle: the input must have rank >= 3 (spatial..., C, B)");
    const std::string op = prefix();
    shape_numel(in, op.c_str());
    index_t rd = 1;
    for (std::size_t d = 0; d + 2 < N; ++d) rd = checked_mul(rd, r, op.c_str(), "the factor r^d");
    require<shape_error>(in[N - 2] % rd == 0, op, ": expected input channels (dim ", N - 1,
                         ") divisible by ", rd, ", got ", in);
    shape_t<N> out = in;
    for (std::size_t d = 0; d + 2 < N; ++d)
      out[d] = checked_mul(in[d], r, op.c_str(), "the output size r·in");
    out[N - 2] = in[N - 2] / rd;
    shape_numel(out, op.c_str());
    return out;
  }

  template <class X, class PS, class ST>
  auto forward(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    output_shape(xv.shape());
    return std::pair{pixel_shuffle(xv, r), st};
  }

  template <class X, class PS, class ST>
  auto pullback(const X& x, const PS&, const ST& st) const {
    const auto xv = as_view(x);
    const auto yshape = output_shape(xv.shape());
    auto back = [self = *this, yshape](const auto& dy) {
      const auto dyv = as_view(dy);
      require<shape_error>(dyv.shape() == yshape, self.prefix(), ": the output gradient has shape ",
                           dyv.shape(), ", expected ", yshape);
      return gradients{pixel_shuffle_backward(dyv, self.r).dx, empty_tuple{}};
    };
    return pullback_result{pixel_shuffle(xv, r), st, std::move(back)};
  }

  void print(std::ostream& os) const { os << "PixelShuffle(" << r << ")"; }
};

LUX_NAMESPACE_END
