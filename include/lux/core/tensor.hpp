// luxcpp — Tensor (owning) and TensorView / StridedView (non-owning).
//
// * Rank N is a compile-time constant, sizes are runtime values.
// * Column-major, Lux order: the first index varies fastest. A Dense input is (in, batch),
//   an image batch (W, H, C, N). In memory that equals PyTorch's row-major (N, C, H, W).
// * Tensor<T, N, cpu> buffers are 64-byte aligned; Tensor<T, N, cuda> uses cudaMalloc
//   (include <lux/core/cuda.hpp>). Element access with operator() is host-only.
// * TensorView is contiguous by type; StridedView carries arbitrary strides (what
//   select() along an inner dimension gives). Kernels take TensorView where they need
//   contiguity, so the type system — not a runtime flag — says which is which.
// * operator() and operator[] are unchecked (like std::vector::operator[]; an assert in
//   debug builds); at() checks and throws lux::shape_error. Every other member checks.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/device.hpp"
#include "lux/core/error.hpp"
#include "lux/core/memory_pool.hpp"
#include "lux/core/shape.hpp"

LUX_NAMESPACE_BEGIN

/// Memory layout of a view: contiguous column-major, or arbitrary strides.
enum class layout { contiguous, strided };

template <class T, std::size_t N, class Device = cpu, layout L = layout::contiguous>
class basic_view;

/// Non-owning contiguous view.
template <class T, std::size_t N, class Device = cpu>
using TensorView = basic_view<T, N, Device, layout::contiguous>;
/// Non-owning view with arbitrary strides.
template <class T, std::size_t N, class Device = cpu>
using StridedView = basic_view<T, N, Device, layout::strided>;

template <class T, std::size_t N, class Device = cpu>
class Tensor;

// ---------------------------------------------------------------------------------------
// Allocation per device. The CUDA specialization lives in <lux/core/cuda.hpp>.
template <class Device>
struct device_allocator {
  static_assert(detail::always_false<Device>,
                "lux::Tensor on lux::cuda needs #include <lux/core/cuda.hpp> and the "
                "luxcpp::cuda CMake target");
};

template <>
struct device_allocator<cpu> {
  static constexpr std::size_t alignment = detail::host_memory_pool::alignment;

  /// Storage for n elements from the caching pool (lux/core/memory_pool.hpp); value-initialized
  /// when `initialize` (always for non-trivial T).
  /// `op` names the operation in the error for a size beyond the address space.
  template <class T>
  static T* allocate(index_t n, bool initialize, const char* op = "Tensor") {
    if (n == 0) return nullptr;
    require<shape_error>(
        n > 0 && static_cast<std::size_t>(n) <= detail::host_memory_pool::max_request / sizeof(T),
        op, ": ", n, " elements of ", sizeof(T), " bytes exceed the address space");
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    auto& pool = detail::host_memory_pool::instance();
    T* p = static_cast<T*>(pool.allocate(bytes));
    if constexpr (std::is_trivially_default_constructible_v<T>) {
      if (initialize) std::uninitialized_value_construct_n(p, n);
    } else {
      try {
        std::uninitialized_value_construct_n(p, n);
      } catch (...) {
        pool.deallocate(p, bytes);
        throw;
      }
    }
    return p;
  }
  template <class T>
  static void deallocate(T* p, index_t n) noexcept {
    if (!p) return;
    std::destroy_n(p, n);
    detail::host_memory_pool::instance().deallocate(p, static_cast<std::size_t>(n) * sizeof(T));
  }
  template <class T>
  static void copy(T* dst, const T* src, index_t n) {
    if constexpr (std::is_trivially_copyable_v<T>) {
      if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
    } else {
      std::copy_n(src, n, dst);
    }
  }
};

namespace detail {
template <std::size_t N, class... Idx>
inline constexpr bool valid_indices = sizeof...(Idx) == N && (std::is_integral_v<Idx> && ...);

// Resolves at most one -1 entry of a reshape target so that the element count matches.
template <std::size_t M>
shape_t<M> resolve_reshape(shape_t<M> target, index_t numel, const char* op,
                           const auto& from_shape) {
  int infer = -1;
  index_t known = 1;
  for (std::size_t d = 0; d < M; ++d) {
    if (target[d] == -1) {
      require<shape_error>(infer < 0, op, ": at most one size may be -1, got ", target);
      infer = static_cast<int>(d);
    } else {
      require<shape_error>(target[d] >= 0, op, ": sizes must be >= 0 or -1, got ", target);
      require<shape_error>(!detail::mul_overflows(known, target[d], known), op, ": target shape ",
                           target, " has too many elements");
    }
  }
  if (infer >= 0) {
    require<shape_error>(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", target,
                         " from ", from_shape, " (", numel, " elements)");
    target[static_cast<std::size_t>(infer)] = numel / known;
  }
  require<shape_error>(shape_numel(target, op) == numel, op, ": cannot reshape ", from_shape, " (",
                       numel, " elements) to ", target);
  return target;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------
template <class T, std::size_t N, class Device, layout L>
class basic_view {
  static_assert(is_device_v<Device>, "lux::TensorView: Device must be lux::cpu or lux::cuda");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using device_type = Device;
  static constexpr std::size_t rank = N;
  static constexpr layout memory_layout = L;

  basic_view() = default;

  /// A view of `shape` elements starting at `data` (column-major, contiguous).
  basic_view(T* data, const shape_t<N>& shape)
      : data_(data), shape_(shape), strides_(column_major_strides(shape)) {
    shape_numel(shape, "TensorView");
  }
  /// A strided view; only StridedView has this constructor.
  basic_view(T* data, const shape_t<N>& shape,
             const shape_t<N>& strides) requires(L == layout::strided)
      : data_(data), shape_(shape), strides_(strides) {
    shape_numel(shape, "StridedView");
  }
  /// const-adding and contiguous → strided conversions.
  template <class U, layout L2>
  requires(std::is_convertible_v<U (*)[], T (*)[]> && (L == L2 || L == layout::strided))
      basic_view(const basic_view<U, N, Device, L2>& other)  // NOLINT: implicit on purpose
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  // --- shape --------------------------------------------------------------------------
  T* data() const noexcept { return data_; }
  const shape_t<N>& shape() const noexcept { return shape_; }
  const shape_t<N>& strides() const noexcept { return strides_; }
  /// Size of dimension d; like Julia's size(x, d), dimensions past the rank have size 1.
  index_t size(std::size_t d) const noexcept { return d < N ? shape_[d] : 1; }
  index_t stride(std::size_t d) const {
    require<argument_error>(d < N, "TensorView::stride: dimension ", d, " out of rank ", N);
    return strides_[d];
  }
  index_t numel() const noexcept {
    index_t n = 1;
    for (auto s : shape_) n *= s;
    return n;
  }
  bool empty() const noexcept { return numel() == 0; }
  /// True when the elements are laid out densely in column-major order.
  bool is_contiguous() const noexcept {
    if constexpr (L == layout::contiguous) {
      return true;
    } else {
      index_t expect = 1;
      for (std::size_t d = 0; d < N; ++d) {
        if (shape_[d] != 1 && strides_[d] != expect) return false;
        expect *= shape_[d];
      }
      return true;
    }
  }

  // --- element access (host only) -----------------------------------------------------
  template <class... Idx>
  requires detail::valid_indices<N, Idx...> T& operator()(Idx... idx) const noexcept {
    static_assert(std::is_same_v<Device, cpu>,
                  "lux: element access with operator() is host-only; copy the tensor with "
                  "lux::to<lux::cpu>(t) first");
    const index_t i[] = {static_cast<index_t>(idx)..., 0};
    index_t off = 0;
    for (std::size_t d = 0; d < N; ++d) {
      assert(i[d] >= 0 && i[d] < shape_[d]);
      off += i[d] * strides_[d];
    }
    return data_[off];
  }
  /// Bounds-checked element access; throws shape_error.
  template <class... Idx>
  requires detail::valid_indices<N, Idx...> T& at(Idx... idx) const {
    const shape_t<N> i{static_cast<index_t>(idx)...};
    for (std::size_t d = 0; d < N; ++d)
      require<shape_error>(i[d] >= 0 && i[d] < shape_[d], "TensorView::at: index ", i,
                           " out of bounds for shape ", shape_);
    return (*this)(idx...);
  }
  /// Linear (column-major) element access on contiguous views.
  T& operator[](index_t i) const noexcept requires(L == layout::contiguous) {
    static_assert(std::is_same_v<Device, cpu>, "lux: operator[] is host-only");
    assert(i >= 0 && i < numel());
    return data_[i];
  }
  T* begin() const noexcept requires(L == layout::contiguous) { return data_; }
  T* end() const noexcept requires(L == layout::contiguous) { return data_ + numel(); }

  // --- derived views ------------------------------------------------------------------
  /// Same elements with another shape (contiguous only); one size may be -1 (Julia's `:`).
  template <std::size_t M>
  TensorView<T, M, Device> reshape(const shape_t<M>& target) const {
    require<shape_error>(is_contiguous(), "reshape: the view with shape ", shape_, " and strides ",
                         strides_, " is not contiguous");
    return TensorView<T, M, Device>(data_,
                                    detail::resolve_reshape(target, numel(), "reshape", shape_));
  }
  template <class... Ints>
  requires(sizeof...(Ints) > 0 && (std::is_integral_v<Ints> && ...))
      TensorView<T, sizeof...(Ints), Device> reshape(Ints... sizes)
  const { return reshape(shape_t<sizeof...(Ints)>{static_cast<index_t>(sizes)...}); }
  /// The view with dimension d fixed at index i (rank N-1; strided in general).
  StridedView<T, N - 1, Device> select(std::size_t d, index_t i) const requires(N >= 1) {
    require<shape_error>(d < N, "select: dimension ", d, " out of range for shape ", shape_);
    require<shape_error>(i >= 0 && i < shape_[d], "select: index ", i,
                         " out of range for dimension ", d, " of shape ", shape_);
    shape_t<N - 1> shape{}, strides{};
    for (std::size_t k = 0, j = 0; k < N; ++k) {
      if (k == d) continue;
      shape[j] = shape_[k];
      strides[j] = strides_[k];
      ++j;
    }
    return StridedView<T, N - 1, Device>(shape_[d] ? data_ + i * strides_[d] : data_, shape,
                                         strides);
  }
  /// The slice x[.., i] of the last dimension (a sample of a batch, a time step); keeps
  /// the layout of the parent.
  basic_view<T, N - 1, Device, L> select_last(index_t i) const requires(N >= 1) {
    require<shape_error>(i >= 0 && i < shape_[N - 1], "select_last: index ", i,
                         " out of range for shape ", shape_);
    shape_t<N - 1> shape{}, strides{};
    std::copy_n(shape_.begin(), N - 1, shape.begin());
    std::copy_n(strides_.begin(), N - 1, strides.begin());
    if constexpr (L == layout::contiguous)
      return basic_view<T, N - 1, Device, L>(data_ + i * strides_[N - 1], shape);
    else
      return basic_view<T, N - 1, Device, L>(data_ + i * strides_[N - 1], shape, strides);
  }
  /// x[.., lo:hi) along the last dimension (half-open), same rank and layout.
  basic_view slice(index_t lo, index_t hi) const requires(N >= 1) {
    require<shape_error>(0 <= lo && lo <= hi && hi <= shape_[N - 1], "slice: range [", lo, ", ", hi,
                         ") out of range for the last dimension of shape ", shape_);
    shape_t<N> shape = shape_;
    shape[N - 1] = hi - lo;
    T* p = lo < shape_[N - 1] ? data_ + lo * strides_[N - 1] : data_ + numel();
    if constexpr (L == layout::contiguous)
      return basic_view(p, shape);
    else
      return basic_view(p, shape, strides_);
  }
  /// This view typed as contiguous; throws shape_error when it is not.
  TensorView<T, N, Device> contiguous() const {
    require<shape_error>(is_contiguous(), "contiguous: the view with shape ", shape_,
                         " and strides ", strides_, " is not contiguous");
    return TensorView<T, N, Device>(data_, shape_);
  }

 private:
  T* data_ = nullptr;
  shape_t<N> shape_{};
  shape_t<N> strides_{};
};

// ---------------------------------------------------------------------------------------
template <class T, std::size_t N, class Device>
class Tensor {
  static_assert(!std::is_const_v<T> && !std::is_reference_v<T>,
                "lux::Tensor: the element type must be a non-const object type");
  static_assert(is_device_v<Device>, "lux::Tensor: Device must be lux::cpu or lux::cuda");
  using alloc = device_allocator<Device>;

 public:
  using element_type = T;
  using value_type = T;
  using device_type = Device;
  static constexpr std::size_t rank = N;
  static constexpr layout memory_layout = layout::contiguous;

  Tensor() = default;
  /// A zero-initialized (value-initialized) tensor of the given shape.
  explicit Tensor(const shape_t<N>& shape) : Tensor(shape, true) {}
  template <class... Ints>
  requires(sizeof...(Ints) == N && N > 0 &&
           (std::is_integral_v<Ints> && ...)) explicit Tensor(Ints... sizes)
      : Tensor(shape_t<N>{static_cast<index_t>(sizes)...}) {}
  /// `Tensor<float, 2> x({3, 4})` and `Tensor<float, 2> x{3, 4}`: a zero-initialized tensor with
  /// these sizes. (Without this constructor `{3, 4}` converts to shape_t and, through the
  /// constructors above, to a Tensor: an ambiguous call.) The list must hold exactly N sizes.
  explicit Tensor(std::initializer_list<index_t> sizes) : Tensor(sizes_to_shape(sizes), true) {}
  /// A tensor with every element equal to `value` (host only).
  Tensor(const shape_t<N>& shape, const T& value) : Tensor(shape, false) {
    std::fill_n(host_data("Tensor(shape, value)"), numel_, value);
  }
  /// A tensor from its elements in column-major order (host only).
  Tensor(const shape_t<N>& shape, std::initializer_list<T> values) : Tensor(shape, false) {
    require<shape_error>(static_cast<index_t>(values.size()) == numel_, "Tensor: shape ", shape,
                         " needs ", numel_, " values, got ", values.size());
    std::copy(values.begin(), values.end(), host_data("Tensor(shape, values)"));
  }
  static shape_t<N> sizes_to_shape(std::initializer_list<index_t> sizes) {
    require<shape_error>(sizes.size() == N, "Tensor: a rank-", N, " tensor needs ", N,
                         " sizes, got ", sizes.size());
    shape_t<N> shape{};
    std::copy(sizes.begin(), sizes.end(), shape.begin());
    return shape;
  }
  /// A tensor whose contents are not initialized (for outputs a kernel overwrites).
  static Tensor uninitialized(const shape_t<N>& shape) { return Tensor(shape, false); }
  /// The same for the output of operation `op`: an invalid shape or a size beyond the address
  /// space throws shape_error naming `op` (kernels allocate their outputs with it).
  static Tensor uninitialized(const shape_t<N>& shape, const char* op) {
    return Tensor(shape, false, op);
  }

  Tensor(const Tensor& other) : Tensor(other.shape_, false) {
    alloc::copy(data_, other.data_, numel_);
  }
  Tensor(Tensor&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        shape_(std::exchange(other.shape_, shape_t<N>{})),
        numel_(std::exchange(other.numel_, 0)) {}
  Tensor& operator=(const Tensor& other) {
    if (this != &other) *this = Tensor(other);
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      shape_ = std::exchange(other.shape_, shape_t<N>{});
      numel_ = std::exchange(other.numel_, 0);
    }
    return *this;
  }
  ~Tensor() { release(); }

  // --- shape --------------------------------------------------------------------------
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  const shape_t<N>& shape() const noexcept { return shape_; }
  shape_t<N> strides() const noexcept { return column_major_strides(shape_); }
  index_t size(std::size_t d) const noexcept { return d < N ? shape_[d] : 1; }
  index_t numel() const noexcept { return numel_; }
  bool empty() const noexcept { return numel_ == 0; }
  static constexpr bool is_contiguous() noexcept { return true; }

  // --- views --------------------------------------------------------------------------
  TensorView<T, N, Device> view() noexcept { return TensorView<T, N, Device>(data_, shape_); }
  TensorView<const T, N, Device> view() const noexcept { return cview(); }
  TensorView<const T, N, Device> cview() const noexcept {
    return TensorView<const T, N, Device>(const_cast<const T*>(data_), shape_);
  }
  operator TensorView<T, N, Device>() noexcept { return view(); }                // NOLINT
  operator TensorView<const T, N, Device>() const noexcept { return cview(); }   // NOLINT
  operator StridedView<T, N, Device>() noexcept { return view(); }               // NOLINT
  operator StridedView<const T, N, Device>() const noexcept { return cview(); }  // NOLINT

  template <class... Idx>
  requires detail::valid_indices<N, Idx...> T& operator()(Idx... i) noexcept {
    return view()(i...);
  }
  template <class... Idx>
  requires detail::valid_indices<N, Idx...>
  const T& operator()(Idx... i) const noexcept { return cview()(i...); }
  template <class... Idx>
  requires detail::valid_indices<N, Idx...> T& at(Idx... i) { return view().at(i...); }
  template <class... Idx>
  requires detail::valid_indices<N, Idx...>
  const T& at(Idx... i) const { return cview().at(i...); }
  T& operator[](index_t i) noexcept { return view()[i]; }
  const T& operator[](index_t i) const noexcept { return cview()[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + numel_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + numel_; }

  template <class... A>
  auto reshape(A&&... a) {
    return view().reshape(std::forward<A>(a)...);
  }
  template <class... A>
  auto reshape(A&&... a) const {
    return cview().reshape(std::forward<A>(a)...);
  }
  auto select(std::size_t d, index_t i) { return view().select(d, i); }
  auto select(std::size_t d, index_t i) const { return cview().select(d, i); }
  auto select_last(index_t i) { return view().select_last(i); }
  auto select_last(index_t i) const { return cview().select_last(i); }
  auto slice(index_t lo, index_t hi) { return view().slice(lo, hi); }
  auto slice(index_t lo, index_t hi) const { return cview().slice(lo, hi); }

  /// The same buffer with another shape (one size may be -1), consuming this tensor: no copy.
  template <std::size_t M>
  Tensor<T, M, Device> reshaped(const shape_t<M>& target) && {
    const auto shape = detail::resolve_reshape(target, numel_, "reshaped", shape_);
    Tensor<T, M, Device> out;
    out.data_ = std::exchange(data_, nullptr);
    out.shape_ = shape;
    out.numel_ = std::exchange(numel_, 0);
    shape_ = shape_t<N>{};
    return out;
  }

  /// Sets every element to `value` (host only).
  void fill(const T& value) { std::fill_n(host_data("Tensor::fill"), numel_, value); }

 private:
  template <class, std::size_t, class>
  friend class Tensor;
  Tensor(const shape_t<N>& shape, bool initialize, const char* op = "Tensor")
      : shape_(shape), numel_(shape_numel(shape, op)) {
    data_ = alloc::template allocate<T>(numel_, initialize, op);
  }
  T* host_data(const char*) {
    static_assert(std::is_same_v<Device, cpu>,
                  "lux::Tensor: filling from host values needs a host tensor; build it on the "
                  "cpu and copy it with lux::to<lux::cuda>");
    return data_;
  }
  void release() noexcept {
    alloc::template deallocate<T>(data_, numel_);
    data_ = nullptr;
  }

  T* data_ = nullptr;
  shape_t<N> shape_{};
  index_t numel_ = 0;
};

// ---------------------------------------------------------------------------------------
// Free functions

/// A contiguous view over caller-owned memory: lux::view(ptr, lux::make_shape(3, 4)).
template <class T, std::size_t N>
TensorView<T, N, cpu> view(T* data, const shape_t<N>& shape) {
  require<argument_error>(data != nullptr || shape_numel(shape, "view") == 0,
                          "view: null pointer for a non-empty shape ", shape);
  return TensorView<T, N, cpu>(data, shape);
}
/// Same for memory on device D (no element access on the host).
template <class D, class T, std::size_t N>
TensorView<T, N, D> view_on(T* data, const shape_t<N>& shape) {
  return TensorView<T, N, D>(data, shape);
}

/// A contiguous copy of any host view (gathers strided views).
template <class T, std::size_t N, layout L>
Tensor<std::remove_cv_t<T>, N, cpu> copy(const basic_view<T, N, cpu, L>& src) {
  auto out = Tensor<std::remove_cv_t<T>, N, cpu>::uninitialized(src.shape());
  if constexpr (L == layout::contiguous) {
    device_allocator<cpu>::copy(out.data(), src.data(), src.numel());
  } else {
    // Walk the source in column-major order with an odometer over the indices.
    shape_t<N> idx{};
    const index_t n = src.numel();
    for (index_t k = 0; k < n; ++k) {
      index_t off = 0;
      for (std::size_t d = 0; d < N; ++d) off += idx[d] * src.strides()[d];
      out.data()[k] = src.data()[off];
      for (std::size_t d = 0; d < N; ++d) {
        if (++idx[d] < src.shape()[d]) break;
        idx[d] = 0;
      }
    }
  }
  return out;
}

/// Copies `src` into `dst` element-wise; shapes must be equal (host only).
template <class T, class U, std::size_t N, layout L1, layout L2>
void copy_into(const basic_view<T, N, cpu, L1>& dst, const basic_view<U, N, cpu, L2>& src) {
  require<shape_error>(dst.shape() == src.shape(), "copy_into: destination has shape ", dst.shape(),
                       ", source ", src.shape());
  if constexpr (L1 == layout::contiguous && L2 == layout::contiguous) {
    std::copy_n(src.data(), src.numel(), dst.data());
  } else {
    auto tmp = copy(src);
    shape_t<N> idx{};
    for (index_t k = 0; k < tmp.numel(); ++k) {
      index_t off = 0;
      for (std::size_t d = 0; d < N; ++d) off += idx[d] * dst.strides()[d];
      dst.data()[off] = tmp.data()[k];
      for (std::size_t d = 0; d < N; ++d) {
        if (++idx[d] < dst.shape()[d]) break;
        idx[d] = 0;
      }
    }
  }
}

/// The view of a tensor or view argument, so kernels can accept either.
template <class T, std::size_t N, class D>
TensorView<T, N, D> as_view(Tensor<T, N, D>& t) noexcept {
  return t.view();
}
template <class T, std::size_t N, class D>
TensorView<const T, N, D> as_view(const Tensor<T, N, D>& t) noexcept {
  return t.cview();
}
template <class T, std::size_t N, class D, layout L>
basic_view<T, N, D, L> as_view(const basic_view<T, N, D, L>& v) noexcept {
  return v;
}

namespace detail {
/// The [first, last) byte range a view can touch ({0, 0} when empty).
template <class T, std::size_t N, class D, layout L>
std::pair<std::uintptr_t, std::uintptr_t> byte_range(const basic_view<T, N, D, L>& v) {
  if (v.numel() == 0) return {0, 0};
  index_t last = 0;
  for (std::size_t d = 0; d < N; ++d) last += (v.shape()[d] - 1) * v.strides()[d];
  const auto first = reinterpret_cast<std::uintptr_t>(v.data());
  return {first, first + static_cast<std::uintptr_t>(last + 1) * sizeof(T)};
}
/// True when two arrays (Tensors or views) share memory: in-place kernels reject an output
/// that overlaps an input with argument_error.
template <class A, class B>
bool overlap(const A& a, const B& b) {
  const auto [a0, a1] = byte_range(as_view(a));
  const auto [b0, b1] = byte_range(as_view(b));
  return a0 < b1 && b0 < a1;
}
}  // namespace detail

/// Host → host "transfer" (a copy), so generic code can call lux::to<D> on any tensor.
template <class To, class T, std::size_t N>
requires std::is_same_v<To, cpu> Tensor<T, N, cpu> to(const Tensor<T, N, cpu>& t) { return t; }

LUX_NAMESPACE_END
