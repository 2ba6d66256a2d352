// luxcpp — the safetensors format: element types, and a validating reader over bytes in memory.
// See lux/io/safetensors.hpp for the overview and the tree-level API (save / load).
//
// Layout (https://github.com/huggingface/safetensors, "Format"):
//   8 bytes   N, unsigned little-endian 64-bit: the length of the header
//   N bytes   a UTF-8 JSON object {"name": {"dtype": "F32", "shape": [2, 3],
//             "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "value", ...}},
//             starting with '{' and padded with spaces
//   the rest  the byte buffer; a tensor's bytes are buffer[begin, end), little-endian,
//             row-major (C order) for the shape as written
//
// parse_safetensors checks everything the reference reader (the `safetensors` Rust crate,
// src/tensor.rs: read_metadata / Metadata::validate) checks, and a little more, throwing
// lux::io_error naming the source and, where one is involved, the tensor:
//   * the buffer holds the 8-byte length, the length is at most 100 000 000 and fits the buffer;
//   * the header starts with '{', contains no NUL byte (nlohmann-json would stop reading at one)
//     and is valid JSON and UTF-8 (nlohmann-json's parser) with no duplicate keys;
//   * every value is an object with a known "dtype", a "shape" of non-negative integers and
//     "data_offsets" of two non-negative integers; "__metadata__" maps strings to strings;
//   * element counts do not overflow (the product of the non-zero sizes fits in int64), the bit
//     count is a whole number of bytes, end − begin equals that byte count;
//   * sorted by offset, the tensors tile the buffer exactly: the first begins at 0, each begins
//     where the previous ends, the last ends at the end of the file (no gap, no overlap, no
//     trailing bytes: the reference's rule against polyglot files).
// Only after all of that are byte spans formed, so no input can make the reader read out of
// bounds. Values are not checked (NaN and Inf are data), except BOOL bytes, which must be 0 or 1
// when read as C++ bool (any other byte would be undefined behaviour in a bool).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lux/core/config.hpp"
#include "lux/core/eigen.hpp"  // Eigen::half, Eigen::bfloat16 (Eigen included with luxcpp's flags)
#include "lux/core/error.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

static_assert(std::endian::native == std::endian::little,
              "lux/io/safetensors: safetensors data are little-endian; this host is not");

/// The element types of the safetensors format (the reference crate's `Dtype`, same spellings).
/// Those with a C++ element type (see safetensors_dtype_of) can be read into and written from
/// tensors; the others are still parsed and validated, and their bytes are available.
enum class safetensors_dtype : std::uint8_t {
  BOOL,
  F4,
  F6_E2M3,
  F6_E3M2,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64
};

/// Free-form string → string metadata (the header's "__metadata__").
using safetensors_metadata = std::map<std::string, std::string>;

namespace detail::st {
struct dtype_info {
  safetensors_dtype dtype;
  std::string_view name;
  std::size_t bits;
};
inline constexpr std::array<dtype_info, 22> dtype_table{{
    {safetensors_dtype::BOOL, "BOOL", 8},
    {safetensors_dtype::F4, "F4", 4},
    {safetensors_dtype::F6_E2M3, "F6_E2M3", 6},
    {safetensors_dtype::F6_E3M2, "F6_E3M2", 6},
    {safetensors_dtype::U8, "U8", 8},
    {safetensors_dtype::I8, "I8", 8},
    {safetensors_dtype::F8_E5M2, "F8_E5M2", 8},
    {safetensors_dtype::F8_E4M3, "F8_E4M3", 8},
    {safetensors_dtype::F8_E8M0, "F8_E8M0", 8},
    {safetensors_dtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {safetensors_dtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {safetensors_dtype::I16, "I16", 16},
    {safetensors_dtype::U16, "U16", 16},
    {safetensors_dtype::F16, "F16", 16},
    {safetensors_dtype::BF16, "BF16", 16},
    {safetensors_dtype::I32, "I32", 32},
    {safetensors_dtype::U32, "U32", 32},
    {safetensors_dtype::F32, "F32", 32},
    {safetensors_dtype::C64, "C64", 64},
    {safetensors_dtype::F64, "F64", 64},
    {safetensors_dtype::I64, "I64", 64},
    {safetensors_dtype::U64, "U64", 64},
}};
/// The reference reader's limit on the header length.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

template <class T>
inline constexpr bool always_false_v = false;
}  // namespace detail::st

/// The format's spelling of a dtype ("F32").
constexpr std::string_view to_string(safetensors_dtype d) {
  return detail::st::dtype_table[static_cast<std::size_t>(d)].name;
}
/// Bits per element (4 for F4, 6 for F6_*, 8 for BOOL).
constexpr std::size_t bit_size(safetensors_dtype d) {
  return detail::st::dtype_table[static_cast<std::size_t>(d)].bits;
}
/// The dtype spelled `name`, if there is one.
constexpr std::optional<safetensors_dtype> parse_safetensors_dtype(std::string_view name) {
  for (const auto& e : detail::st::dtype_table)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

/// True for the C++ element types with a safetensors dtype: bool, the fixed-width integers (any
/// integer type, by size and signedness), Eigen::half (F16), Eigen::bfloat16 (BF16), float, double.
template <class T>
inline constexpr bool is_safetensors_element_v =
    std::is_same_v<T, bool> || std::is_same_v<T, float> || std::is_same_v<T, double> ||
    std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16> ||
    (std::is_integral_v<T> &&
     (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8));

/// The dtype of C++ element type T (a compile error for types without one).
template <class T>
consteval safetensors_dtype safetensors_dtype_of() {
  using D = safetensors_dtype;
  if constexpr (std::is_same_v<T, bool>) {
    return D::BOOL;
  } else if constexpr (std::is_same_v<T, float>) {
    return D::F32;
  } else if constexpr (std::is_same_v<T, double>) {
    return D::F64;
  } else if constexpr (std::is_same_v<T, Eigen::half>) {
    return D::F16;
  } else if constexpr (std::is_same_v<T, Eigen::bfloat16>) {
    return D::BF16;
  } else if constexpr (is_safetensors_element_v<T>) {
    constexpr bool s = std::is_signed_v<T>;
    if constexpr (sizeof(T) == 1) return s ? D::I8 : D::U8;
    if constexpr (sizeof(T) == 2) return s ? D::I16 : D::U16;
    if constexpr (sizeof(T) == 4) return s ? D::I32 : D::U32;
    if constexpr (sizeof(T) == 8) return s ? D::I64 : D::U64;
  } else {
    static_assert(detail::st::always_false_v<T>,
                  "lux safetensors: no dtype for this element type (supported: bool, integers, "
                  "Eigen::half, Eigen::bfloat16, float, double)");
  }
}

/// One tensor of a parsed file. `bytes` points into the buffer given to parse_safetensors.
struct safetensors_entry {
  std::string name;
  safetensors_dtype dtype{};
  std::vector<index_t> torch_shape;  ///< as written in the header: PyTorch's (row-major) order
  std::vector<index_t> lux_shape;    ///< the same sizes reversed: Lux's (column-major) order
  std::uint64_t begin = 0, end = 0;  ///< "data_offsets", relative to the byte buffer
  std::span<const std::byte> bytes;  ///< the tensor's bytes
  index_t numel = 0;
  std::size_t rank() const noexcept { return torch_shape.size(); }
};

namespace detail::st {
/// "(3, 4)" for a dynamic shape.
inline std::string shape_string(std::span<const index_t> s) { return format_shape(s); }

/// "[2, 3] (PyTorch order) = (3, 2) in Lux order" for an entry.
inline std::string describe(const safetensors_entry& e) {
  std::string s = std::string(to_string(e.dtype)) + " ";
  s += "[";
  for (std::size_t i = 0; i < e.torch_shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(e.torch_shape[i]);
  s += "] (file order; Lux order " + shape_string(e.lux_shape) + ")";
  return s;
}

[[noreturn]] inline void fail_source(std::string_view source, std::string_view what) {
  throw io_error(concat("safetensors: ", source, ": ", what));
}
[[noreturn]] inline void fail_tensor(std::string_view source, std::string_view name,
                                     std::string_view what) {
  throw io_error(concat("safetensors: ", source, ": tensor '", name, "': ", what));
}

/// A BOOL tensor's bytes must each be 0 or 1 to be read as C++ bool.
inline void check_bool_bytes(std::string_view source, const safetensors_entry& e) {
  for (std::size_t i = 0; i < e.bytes.size(); ++i)
    if (std::to_integer<unsigned>(e.bytes[i]) > 1)
      fail_tensor(source, e.name,
                  concat("BOOL element ", i, " is the byte ", std::to_integer<unsigned>(e.bytes[i]),
                         ", expected 0 or 1"));
}

/// A parser callback rejecting duplicate keys (nlohmann-json keeps the last one silently) and
/// nesting deeper than a valid header has (objects/arrays opened at depth ≥ 3).
class header_guard {
 public:
  explicit header_guard(std::string_view source) : source_(source) {}
  bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
        if (depth >= 3) fail_source(source_, "header: JSON nested deeper than a header can be");
        keys_.emplace_back();
        break;
      case E::array_start:
        if (depth >= 3) fail_source(source_, "header: JSON nested deeper than a header can be");
        break;
      case E::object_end:
        if (!keys_.empty()) keys_.pop_back();
        break;
      case E::key:
        if (!keys_.empty() && parsed.is_string()) {
          const auto& k = parsed.get_ref<const std::string&>();
          if (!keys_.back().insert(k).second)
            fail_source(source_, concat("header: duplicate key '", k, "'"));
        }
        break;
      default:
        break;
    }
    return true;
  }

 private:
  std::string_view source_;
  std::vector<std::set<std::string>> keys_;  // the keys seen so far in each open object
};

/// A non-negative JSON integer that fits index_t (sizes and offsets).
inline std::optional<std::uint64_t> json_u64(const nlohmann::json& j) {
  if (!j.is_number_unsigned()) {
    // nlohmann stores non-negative integers as unsigned; a negative one is number_integer
    if (j.is_number_integer() && j.get<std::int64_t>() >= 0)
      return static_cast<std::uint64_t>(j.get<std::int64_t>());
    return std::nullopt;
  }
  return j.get<std::uint64_t>();
}
}  // namespace detail::st

/// A parsed, validated safetensors buffer: its entries in data order and its metadata. It views
/// the bytes it was parsed from (keep them alive; read_safetensors returns an owning
/// safetensors_file).
class safetensors_view {
 public:
  safetensors_view() = default;

  /// Where the bytes came from (the path, or the name given to parse_safetensors).
  const std::string& source() const noexcept { return source_; }
  /// Every tensor, sorted by data offset.
  std::span<const safetensors_entry> entries() const noexcept { return entries_; }
  std::size_t size() const noexcept { return entries_.size(); }
  /// The header's "__metadata__" (empty when absent).
  const safetensors_metadata& metadata() const noexcept { return metadata_; }
  /// The raw header JSON, padding included.
  std::string_view header() const noexcept { return header_; }

  /// The entry called `name`, or nullptr.
  const safetensors_entry* find(std::string_view name) const noexcept {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The entry called `name`; io_error naming the source and the tensor when absent.
  const safetensors_entry& at(std::string_view name) const {
    const auto* e = find(name);
    if (!e) detail::st::fail_tensor(source_, name, "not in the file");
    return *e;
  }
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  /// The tensor `name` as a Lux tensor: the file's (PyTorch-order) shape reversed, the bytes as
  /// they are. io_error when absent, or when its dtype is not T's or its rank is not N.
  template <class T, std::size_t N>
  Tensor<T, N> get(std::string_view name) const {
    constexpr safetensors_dtype want = safetensors_dtype_of<T>();
    const safetensors_entry& e = at(name);
    if (e.dtype != want || e.rank() != N)
      detail::st::fail_tensor(source_, name,
                              detail::concat("is ", detail::st::describe(e), ", expected ",
                                             to_string(want), " of rank ", N));
    if constexpr (std::is_same_v<T, bool>) detail::st::check_bool_bytes(source_, e);
    shape_t<N> shape{};
    std::copy_n(e.lux_shape.begin(), N, shape.begin());
    auto out = Tensor<T, N>::uninitialized(shape);
    if (!e.bytes.empty())
      std::memcpy(static_cast<void*>(out.data()), e.bytes.data(), e.bytes.size());
    return out;
  }

 private:
  friend safetensors_view parse_safetensors(std::span<const std::byte>, std::string_view);
  std::string source_;
  std::string_view header_;
  std::vector<safetensors_entry> entries_;
  safetensors_metadata metadata_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

/// Parses and validates a whole safetensors file held in memory (see the file comment for the
/// checks); `source_name` names it in error messages. The result views `bytes`.
inline safetensors_view parse_safetensors(std::span<const std::byte> bytes,
                                          std::string_view source_name) {
  using detail::concat;
  using detail::st::fail_source;
  using detail::st::fail_tensor;
  const std::string_view src = source_name;

  // --- the header length and the header bytes ---------------------------------------------------
  if (bytes.size() < 8)
    fail_source(
        src, concat("file of ", bytes.size(), " bytes is too small for the 8-byte header length"));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  if (n > detail::st::max_header_bytes)
    fail_source(src, concat("header length ", n, " exceeds the format's limit of ",
                            detail::st::max_header_bytes, " bytes"));
  if (n > bytes.size() - 8)
    fail_source(src, concat("header length ", n, " exceeds the ", bytes.size() - 8,
                            " bytes that follow it"));
  const std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8,
                                static_cast<std::size_t>(n));
  if (header.empty() || header.front() != '{') fail_source(src, "header does not start with '{'");
  if (header.find('\0') != std::string_view::npos) fail_source(src, "header contains a NUL byte");

  nlohmann::json root;
  try {
    root = nlohmann::json::parse(header.begin(), header.end(), detail::st::header_guard(src),
                                 /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    fail_source(src, concat("header is not valid JSON: ", e.what()));
  }
  if (!root.is_object()) fail_source(src, "header is not a JSON object");

  // --- entries --------------------------------------------------------------------------------
  safetensors_view out;
  out.source_ = std::string(source_name);
  out.header_ = header;
  out.entries_.reserve(root.size());
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail_source(src, "__metadata__ is not an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          fail_source(src, concat("__metadata__ value of '", mk, "' is not a string"));
        out.metadata_.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    safetensors_entry e;
    e.name = key;
    if (!value.is_object()) fail_tensor(src, key, "header entry is not an object");
    const auto dt = value.find("dtype");
    if (dt == value.end() || !dt->is_string()) fail_tensor(src, key, "no \"dtype\" string");
    const auto parsed_dtype = parse_safetensors_dtype(dt->get_ref<const std::string&>());
    if (!parsed_dtype)
      fail_tensor(src, key, concat("unknown dtype \"", dt->get_ref<const std::string&>(), "\""));
    e.dtype = *parsed_dtype;

    const auto sh = value.find("shape");
    if (sh == value.end() || !sh->is_array()) fail_tensor(src, key, "no \"shape\" array");
    // numel: the product of the non-zero sizes must fit index_t, so every partial product in
    // either order (PyTorch's or Lux's) fits too; a zero size makes the tensor empty.
    std::uint64_t nonzero = 1;
    bool has_zero = false;
    for (const auto& d : *sh) {
      const auto v = detail::st::json_u64(d);
      if (!v) fail_tensor(src, key, "shape entries must be non-negative integers");
      if (*v > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()))
        fail_tensor(src, key, concat("shape size ", *v, " overflows"));
      if (*v == 0) {
        has_zero = true;
      } else if (nonzero > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) / *v) {
        fail_tensor(src, key, "shape overflows: too many elements");
      } else {
        nonzero *= *v;
      }
      e.torch_shape.push_back(static_cast<index_t>(*v));
    }
    e.lux_shape.assign(e.torch_shape.rbegin(), e.torch_shape.rend());
    e.numel = has_zero ? 0 : static_cast<index_t>(nonzero);

    const auto off = value.find("data_offsets");
    if (off == value.end() || !off->is_array() || off->size() != 2)
      fail_tensor(src, key, "no \"data_offsets\" array of two integers");
    const auto b = detail::st::json_u64((*off)[0]);
    const auto f = detail::st::json_u64((*off)[1]);
    if (!b || !f) fail_tensor(src, key, "data_offsets must be non-negative integers");
    e.begin = *b;
    e.end = *f;
    out.entries_.push_back(std::move(e));
  }

  // --- offsets tile the byte buffer exactly (Metadata::validate) -------------------------------
  std::sort(out.entries_.begin(), out.entries_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  const std::uint64_t buffer_size = bytes.size() - 8 - n;
  std::uint64_t start = 0;
  for (const auto& e : out.entries_) {
    if (e.end < e.begin)
      fail_tensor(src, e.name,
                  concat("data_offsets [", e.begin, ", ", e.end, "] end before they begin"));
    if (e.begin != start)
      fail_tensor(src, e.name,
                  concat("data_offsets [", e.begin, ", ", e.end, "] ",
                         e.begin < start ? "overlap the previous tensor" : "leave a gap",
                         " (expected to begin at ", start, ")"));
    if (e.end > buffer_size)
      fail_tensor(src, e.name,
                  concat("data_offsets [", e.begin, ", ", e.end, "] run past the ", buffer_size,
                         "-byte data buffer"));
    const std::uint64_t bits_per = bit_size(e.dtype);
    const std::uint64_t numel = static_cast<std::uint64_t>(e.numel);
    if (numel > std::numeric_limits<std::uint64_t>::max() / bits_per)
      fail_tensor(src, e.name, "shape overflows: too many bits");
    const std::uint64_t bits = numel * bits_per;
    if (bits % 8 != 0)
      fail_tensor(src, e.name,
                  concat(bits, " bits of ", to_string(e.dtype), " are not whole bytes"));
    if (e.end - e.begin != bits / 8)
      fail_tensor(src, e.name,
                  concat("data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin,
                         " bytes, but ", detail::st::describe(e), " needs ", bits / 8));
    start = e.end;
  }
  if (start != buffer_size)
    fail_source(src, concat("the tensors cover ", start, " bytes of the ", buffer_size,
                            "-byte data buffer (the buffer must be covered exactly)"));

  // --- only now: byte spans and the name index ---------------------------------------------------
  const std::byte* data = bytes.data() + 8 + n;
  for (std::size_t i = 0; i < out.entries_.size(); ++i) {
    auto& e = out.entries_[i];
    e.bytes = std::span<const std::byte>(data + e.begin, static_cast<std::size_t>(e.end - e.begin));
    out.index_.emplace(e.name, i);
  }
  return out;
}

/// A safetensors_view that owns its bytes (what read_safetensors returns). Move-only.
class safetensors_file : public safetensors_view {
 public:
  safetensors_file() = default;
  /// Takes ownership of `size` bytes and parses them.
  safetensors_file(std::unique_ptr<std::byte[]> bytes, std::size_t size, std::string_view source)
      : storage_(std::move(bytes)), size_(size) {
    static_cast<safetensors_view&>(*this) =
        parse_safetensors(std::span<const std::byte>(storage_.get(), size_), source);
  }
  safetensors_file(safetensors_file&&) noexcept = default;
  safetensors_file& operator=(safetensors_file&&) noexcept = default;
  safetensors_file(const safetensors_file&) = delete;
  safetensors_file& operator=(const safetensors_file&) = delete;

  /// The whole file.
  std::span<const std::byte> bytes() const noexcept { return {storage_.get(), size_}; }

 private:
  std::unique_ptr<std::byte[]> storage_;
  std::size_t size_ = 0;
};

LUX_NAMESPACE_END
