// luxcpp — operation modes (LuxLib's `internal_operation_mode`).
//
// Every kernel has three implementations selected by a tag type:
//   generic_op        plain scalar loops over any element type (the readable reference)
//   looped_op         CPU: xsimd vectorization + OpenMP over independent slices
//   gpu_op<cuda>      CUDA: cuDNN, cuBLASLt, custom kernels
// looped_op derives from generic_op, so a kernel without a looped specialization falls
// back to the generic one by overload resolution (xsimd's `requires_arch` idiom).
// gpu_op does not derive from generic_op: a missing GPU kernel is a compile error, never host
// loops over device memory.
//
// The dispatch seam is open: the public kernels call their implementation unqualified with the
// mode tag first, so implementations are found by argument-dependent lookup on the tag
// (see lux::operation_mode_tag below for a backend defined outside the library).
//
// operation_mode_t<Arrays...> picks the mode from the argument types, ignoring absent
// optional arguments (lux::none, std::nullopt):
//   all on cuda                                         → gpu_op<cuda>
//   all on the cpu, contiguous by type, float or double → looped_op
//   anything else (strided views, long double, user types) → generic_op
// Mixing devices is a compile error with a readable message.
#pragma once

#include <concepts>
#include <optional>
#include <tuple>
#include <type_traits>

#include "lux/core/config.hpp"
#include "lux/core/device.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// The base every operation-mode tag derives from. A backend outside the library defines its
/// own tag (`struct my_op : lux::operation_mode_tag { static constexpr const char* name =
/// "my_op"; };`), implements kernels as functions taking that tag first in the tag's own
/// namespace, and passes the tag to the public kernel: the public headers call every
/// implementation unqualified, so it is found by argument-dependent lookup at instantiation,
/// whatever the include order (Thrust's `f(policy, ...)` customization idiom).
struct operation_mode_tag {};

// The library's tags live in lux::impl, beside their implementations, so that ADL on the tag
// finds the implementations (generic, looped, and CUDA ones declared in later headers) from the
// public kernels' unqualified calls; lux::generic_op etc. name them through using-declarations.
namespace impl {
struct generic_op : operation_mode_tag {
  static constexpr const char* name = "generic_op";
};
struct looped_op : generic_op {
  static constexpr const char* name = "looped_op";
};
template <class Device>
struct gpu_op : operation_mode_tag {
  static_assert(std::is_same_v<Device, cuda>, "lux::gpu_op: only lux::cuda is supported");
  using device_type = Device;
  static constexpr const char* name = "gpu_op";
};
}  // namespace impl
using impl::generic_op;
using impl::gpu_op;
using impl::looped_op;

/// True for every operation-mode tag: the library's three and any user type deriving from
/// lux::operation_mode_tag with a `name`.
template <class M>
concept operation_mode = std::is_base_of_v<operation_mode_tag, M> && requires {
  { M::name } -> std::convertible_to<const char*>;
};
template <class M>
inline constexpr bool is_operation_mode_v = operation_mode<M>;

/// The "argument not given" marker for optional tensors (LuxLib's `nothing`).
struct none_t {
  constexpr bool operator==(const none_t&) const noexcept = default;
};
inline constexpr none_t none{};

// --- array traits ------------------------------------------------------------------------
template <class A>
struct array_traits {
  static constexpr bool is_array = false;
};
template <class T, std::size_t N, class D>
struct array_traits<Tensor<T, N, D>> {
  static constexpr bool is_array = true;
  using value_type = T;
  using device_type = D;
  static constexpr std::size_t rank = N;
  static constexpr bool contiguous = true;
};
template <class T, std::size_t N, class D, layout L>
struct array_traits<basic_view<T, N, D, L>> {
  static constexpr bool is_array = true;
  using value_type = std::remove_cv_t<T>;
  using device_type = D;
  static constexpr std::size_t rank = N;
  static constexpr bool contiguous = L == layout::contiguous;
};

template <class A>
inline constexpr bool is_array_v = array_traits<std::remove_cvref_t<A>>::is_array;

template <class A>
concept array = is_array_v<A>;

/// An argument type's array_traits (cv and reference removed), element type, device and rank:
/// what every front door asks of its Tensor / TensorView / StridedView arguments.
template <class A>
using array_traits_t = array_traits<std::remove_cvref_t<A>>;
template <class A>
using array_value_t = typename array_traits_t<A>::value_type;
template <class A>
using array_device_t = typename array_traits_t<A>::device_type;
template <class A>
inline constexpr std::size_t array_rank_v = array_traits_t<A>::rank;

/// True for the markers of an absent optional argument.
template <class A>
inline constexpr bool is_absent_v = std::is_same_v<std::remove_cvref_t<A>, none_t> ||
                                    std::is_same_v<std::remove_cvref_t<A>, std::nullopt_t>;

namespace detail {
template <class... As>
struct mode_selector;

template <>
struct mode_selector<> {
  // Nothing but absent arguments: there is no array to run on; the generic mode is the
  // only one that can serve (it touches no memory).
  using type = generic_op;
};

template <class... As>
struct mode_selector {
  template <class A>
  using device_of = typename array_traits<std::remove_cvref_t<A>>::device_type;
  template <class A>
  using value_of = typename array_traits<std::remove_cvref_t<A>>::value_type;

  static_assert((is_array_v<As> && ...),
                "lux::operation_mode_t: every argument must be a lux::Tensor, "
                "lux::TensorView, lux::StridedView or an absent marker (lux::none)");
  using first_device = device_of<std::tuple_element_t<0, std::tuple<As...>>>;
  static constexpr bool same_device = (std::is_same_v<device_of<As>, first_device> && ...);
  static_assert(same_device,
                "lux: the arguments of one kernel live on different devices (lux::cpu and "
                "lux::cuda); copy them to one device with lux::to<Device>(x) first");

  static constexpr bool all_contiguous = (array_traits<std::remove_cvref_t<As>>::contiguous && ...);
  static constexpr bool all_fast_types =
      ((std::is_same_v<value_of<As>, float> || std::is_same_v<value_of<As>, double>)&&...);

  using type = std::conditional_t<
      std::is_same_v<first_device, cuda>, gpu_op<cuda>,
      std::conditional_t<all_contiguous && all_fast_types, looped_op, generic_op>>;
};

// Drops absent arguments, then selects.
template <class Kept, class... Rest>
struct filter_absent;
template <class... Kept>
struct filter_absent<std::tuple<Kept...>> {
  using type = typename mode_selector<Kept...>::type;
};
template <class... Kept, class A, class... Rest>
struct filter_absent<std::tuple<Kept...>, A, Rest...> {
  using type =
      typename std::conditional_t<is_absent_v<A>, filter_absent<std::tuple<Kept...>, Rest...>,
                                  filter_absent<std::tuple<Kept..., A>, Rest...>>::type;
};
}  // namespace detail

/// The operation mode LuxLib would pick for these argument types.
template <class... Arrays>
using operation_mode_t =
    typename detail::filter_absent<std::tuple<>, std::remove_cvref_t<Arrays>...>::type;

/// Value form, for `auto mode = lux::operation_mode(x, w, b);`.
template <class... Arrays>
constexpr operation_mode_t<Arrays...> select_operation_mode(const Arrays&...) noexcept {
  return {};
}

LUX_NAMESPACE_END
