// luxcpp — IDX files (the MNIST database format), read directly from gzip or uncompressed files,
// and the MNIST-like datasets stored in them (MNIST, Fashion-MNIST, ...).
//
// The IDX format (LeCun, Cortes & Burges, "The MNIST database of handwritten digits",
// http://yann.lecun.com/exdb/mnist/):
//   bytes 0-1    0x00 0x00
//   byte  2      the element type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//   byte  3      the number of dimensions d (1 <= d <= idx_max_rank here)
//   4 d bytes    the sizes, big-endian u32, outermost first: (n, rows, cols) for an image file
//   the data     big-endian, row-major (the last index varies fastest), nothing after it
//
// Lux order. Row-major IDX dims (n, rows, cols) are the column-major Lux shape (cols, rows, n)
// over the same bytes: the shape is reversed, the elements are not moved (DESIGN.md §3). An
// image file therefore reads as (W, H, N), observations last.
//
// Compression. A file that starts with the gzip magic 1f 8b (RFC 1952) is inflated with zlib
// as it is read; concatenated gzip members form one stream, as `gzip -d` reads them. Any other
// file must start with the IDX magic 00 00 and is read as it is. The two magics cannot collide.
//
// Validation: every malformed file raises lux::io_error naming the file, what was expected and
// what was found — a missing file, neither gzip nor IDX, a bad magic, an unknown type, a rank
// outside [1, idx_max_rank], sizes whose byte count overflows, a truncated header or data,
// bytes after the data (inside or after the gzip stream), a corrupt or truncated gzip stream
// (CRC and length are checked by zlib). A header is never trusted for an allocation: before
// the buffer for the data is allocated, the promised byte count is checked against the most the
// file can hold — its size when uncompressed, 1032 times its size when gzip (deflate's largest
// expansion: a 258-byte match costs at least 2 bits) — so a 30-byte file that claims
// 2^31 x 2^31 elements fails before it allocates anything.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// The element type codes of the IDX format.
enum class idx_type : std::uint8_t {
  u8 = 0x08,
  i8 = 0x09,
  i16 = 0x0B,
  i32 = 0x0C,
  f32 = 0x0D,
  f64 = 0x0E,
};

/// The largest rank read_idx accepts (the format allows 255; no dataset needs more than 4).
inline constexpr std::size_t idx_max_rank = 8;

/// "u8", "i8", "i16", "i32", "f32", "f64"; "unknown" for another value.
constexpr std::string_view idx_type_name(idx_type t) noexcept {
  switch (t) {
    case idx_type::u8:
      return "u8";
    case idx_type::i8:
      return "i8";
    case idx_type::i16:
      return "i16";
    case idx_type::i32:
      return "i32";
    case idx_type::f32:
      return "f32";
    case idx_type::f64:
      return "f64";
  }
  return "unknown";
}
/// Bytes per element; 0 for an unknown code.
constexpr std::size_t idx_type_size(idx_type t) noexcept {
  switch (t) {
    case idx_type::u8:
    case idx_type::i8:
      return 1;
    case idx_type::i16:
      return 2;
    case idx_type::i32:
    case idx_type::f32:
      return 4;
    case idx_type::f64:
      return 8;
  }
  return 0;
}

namespace detail {
template <class T>
struct idx_type_of_impl {
  static_assert(always_false<T>,
                "lux::read_idx: IDX files hold std::uint8_t, std::int8_t, std::int16_t, "
                "std::int32_t, float or double elements");
};
template <>
struct idx_type_of_impl<std::uint8_t> : std::integral_constant<idx_type, idx_type::u8> {};
template <>
struct idx_type_of_impl<std::int8_t> : std::integral_constant<idx_type, idx_type::i8> {};
template <>
struct idx_type_of_impl<std::int16_t> : std::integral_constant<idx_type, idx_type::i16> {};
template <>
struct idx_type_of_impl<std::int32_t> : std::integral_constant<idx_type, idx_type::i32> {};
template <>
struct idx_type_of_impl<float> : std::integral_constant<idx_type, idx_type::f32> {};
template <>
struct idx_type_of_impl<double> : std::integral_constant<idx_type, idx_type::f64> {};
}  // namespace detail

/// The IDX type code of a C++ element type (a compile error for a type IDX cannot hold).
template <class T>
inline constexpr idx_type idx_type_of = detail::idx_type_of_impl<T>::value;

/// What an IDX header says: the element type and the shape in Lux order.
struct idx_info {
  idx_type type = idx_type::u8;
  std::vector<index_t> shape;  // Lux order: the IDX dims reversed
  std::size_t rank() const noexcept { return shape.size(); }
  index_t numel() const noexcept {
    index_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

/// A type-erased IDX array: its element type, its Lux-order shape and its elements in host byte
/// order, column-major in Lux order (the IDX row-major order).
struct idx_array {
  idx_type type = idx_type::u8;
  std::vector<index_t> shape;
  std::vector<std::byte> bytes;

  std::size_t rank() const noexcept { return shape.size(); }
  index_t numel() const noexcept {
    index_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  /// The elements as a Tensor<T, N>; argument_error unless T and N match type and rank.
  template <class T, std::size_t N>
  Tensor<T, N> to_tensor() const {
    require<argument_error>(idx_type_of<T> == type && N == shape.size(),
                            "idx_array::to_tensor: the array holds ", idx_type_name(type),
                            " data of rank ", shape.size(), ", requested ",
                            idx_type_name(idx_type_of<T>), " of rank ", N);
    shape_t<N> s{};
    std::copy(shape.begin(), shape.end(), s.begin());
    auto t = Tensor<T, N>::uninitialized(s);
    if (!bytes.empty()) std::memcpy(t.data(), bytes.data(), bytes.size());
    return t;
  }
};

namespace detail {

inline std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

/// The bytes of a file, inflated when it is gzip and as they are when it starts with 00 00.
/// Every failure throws io_error prefixed with "<op>: '<path>': ".
class idx_byte_stream {
 public:
  idx_byte_stream(const std::filesystem::path& path, std::string_view op)
      : where_(concat(op, ": '", path.string(), "': ")) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    require<io_error>(std::filesystem::exists(st), where_, "no such file");
    require<io_error>(std::filesystem::is_regular_file(st), where_, "not a regular file");
    file_size_ = std::filesystem::file_size(path, ec);
    require<io_error>(!ec, where_, "cannot read its size: ", ec.message());
    errno = 0;
    file_ = std::fopen(path.c_str(), "rb");
    require<io_error>(file_ != nullptr, where_, "cannot open: ", errno_text(errno));
    in_ = std::make_unique<unsigned char[]>(buffer_size);
    while (in_len_ < 2 && refill()) {
    }
    const bool gzip = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    const bool raw = in_len_ >= 2 && in_[0] == 0x00 && in_[1] == 0x00;
    require<io_error>(file_size_ > 0, where_, "the file is empty, expected gzip or IDX data");
    require<io_error>(gzip || raw, where_,
                      "neither gzip (magic 1f 8b) nor an IDX file (magic 00 00); it starts with ",
                      first_bytes_hex(), " (", file_size_, " bytes)");
    if (gzip) {
      // 16 + MAX_WBITS: a gzip wrapper only (RFC 1952), whose CRC-32 and length zlib checks.
      require<io_error>(inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK, where_,
                        "zlib inflateInit2 failed");
      inflating_ = true;
    }
  }
  idx_byte_stream(const idx_byte_stream&) = delete;
  idx_byte_stream& operator=(const idx_byte_stream&) = delete;
  ~idx_byte_stream() {
    if (inflating_) inflateEnd(&zs_);
    if (file_) std::fclose(file_);
  }

  bool compressed() const noexcept { return inflating_; }
  std::uintmax_t file_size() const noexcept { return file_size_; }
  const std::string& where() const noexcept { return where_; }
  /// The most data bytes the file can deliver (see the file comment).
  std::uintmax_t max_bytes() const noexcept {
    constexpr std::uintmax_t max_ratio = 1032;
    if (!inflating_) return file_size_;
    return file_size_ > UINTMAX_MAX / max_ratio ? UINTMAX_MAX : file_size_ * max_ratio;
  }

  /// Reads up to n bytes into dst; fewer only at the clean end of the data.
  std::size_t read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    return inflating_ ? inflate_into(out, n) : copy_into(out, n);
  }

 private:
  static constexpr std::size_t buffer_size = std::size_t{1} << 16;

  std::string first_bytes_hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < std::min<std::size_t>(in_len_, 4); ++i) {
      if (i) s += ' ';
      s += digits[in_[i] >> 4];
      s += digits[in_[i] & 15];
    }
    return s;
  }
  /// Appends file bytes to the input buffer (after compacting it); false at the end of file.
  bool refill() {
    if (in_pos_ > 0) {
      std::memmove(in_.get(), in_.get() + in_pos_, in_len_ - in_pos_);
      in_len_ -= in_pos_;
      in_pos_ = 0;
    }
    if (in_len_ == buffer_size) return true;
    const std::size_t got = std::fread(in_.get() + in_len_, 1, buffer_size - in_len_, file_);
    require<io_error>(got > 0 || !std::ferror(file_), where_, "read error: ", errno_text(errno));
    in_len_ += got;
    return got > 0;
  }
  std::size_t copy_into(unsigned char* out, std::size_t n) {
    std::size_t done = std::min(n, in_len_ - in_pos_);
    if (done) std::memcpy(out, in_.get() + in_pos_, done);
    in_pos_ += done;
    if (done < n) {  // the buffer is drained: read the rest straight into the destination
      done += std::fread(out + done, 1, n - done, file_);
      require<io_error>(!std::ferror(file_), where_, "read error: ", errno_text(errno));
    }
    return done;
  }
  std::size_t inflate_into(unsigned char* out, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      if (in_pos_ == in_len_ && !refill()) {
        // The end of the file: clean after a complete member, truncated inside one.
        require<io_error>(member_done_, where_,
                          "the gzip stream is truncated (the file ends inside compressed data)");
        break;
      }
      if (member_done_) {
        // Bytes after a complete member: another member must follow; garbage fails its header.
        require<io_error>(inflateReset(&zs_) == Z_OK, where_, "zlib inflateReset failed");
        member_done_ = false;
      }
      const std::size_t want = std::min<std::size_t>(n - done, UINT_MAX);
      zs_.next_in = in_.get() + in_pos_;
      zs_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      zs_.next_out = out + done;
      zs_.avail_out = static_cast<uInt>(want);
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      in_pos_ = in_len_ - zs_.avail_in;
      done += want - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        member_done_ = true;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {  // Z_BUF_ERROR: needs input, refilled above
        throw io_error(concat(where_, "corrupt gzip data",
                              member_count_ > 0 ? " (or bytes after the gzip stream)" : "",
                              ": zlib: ", zs_.msg ? zs_.msg : zError(ret)));
      }
      if (ret == Z_STREAM_END) ++member_count_;
    }
    return done;
  }

  std::string where_;
  std::FILE* file_ = nullptr;
  std::uintmax_t file_size_ = 0;
  std::unique_ptr<unsigned char[]> in_;
  std::size_t in_pos_ = 0, in_len_ = 0;
  z_stream zs_{};
  bool inflating_ = false;
  bool member_done_ = false;
  std::size_t member_count_ = 0;
};

/// The parsed header: type, IDX-order dims (outermost first) and the byte count of the data.
struct idx_header {
  idx_type type;
  std::vector<index_t> dims;
  index_t numel;
  std::size_t bytes;

  std::string describe() const {
    return concat(idx_type_name(type), " data with IDX dims ",
                  format_shape(std::span<const index_t>(dims)));
  }
  std::vector<index_t> lux_shape() const { return {dims.rbegin(), dims.rend()}; }
};

inline void read_exact(idx_byte_stream& s, void* dst, std::size_t n, std::string_view what) {
  const std::size_t got = s.read(dst, n);
  require<io_error>(got == n, s.where(), "truncated ", what, ": expected ", n, " bytes, got ", got);
}

inline std::uint32_t load_be32(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

inline idx_header read_header(idx_byte_stream& s) {
  unsigned char magic[4];
  read_exact(s, magic, 4, "header");
  require<io_error>(magic[0] == 0 && magic[1] == 0, s.where(),
                    "bad IDX magic: expected the bytes 0 0 <type> <rank>, got ",
                    static_cast<int>(magic[0]), " ", static_cast<int>(magic[1]), " ",
                    static_cast<int>(magic[2]), " ", static_cast<int>(magic[3]));
  const auto type = static_cast<idx_type>(magic[2]);
  require<io_error>(idx_type_size(type) != 0, s.where(), "unknown IDX element type code ",
                    static_cast<int>(magic[2]),
                    ", expected 8 (u8), 9 (i8), 11 (i16), 12 (i32), 13 (f32) or 14 (f64)");
  const std::size_t rank = magic[3];
  require<io_error>(rank >= 1 && rank <= idx_max_rank, s.where(), "IDX rank ", rank,
                    " is outside the supported range [1, ", idx_max_rank, "]");
  unsigned char raw[4 * idx_max_rank];
  read_exact(s, raw, 4 * rank, "header (the sizes)");
  idx_header h{type, std::vector<index_t>(rank), 1, 0};
  bool overflow = false;
  for (std::size_t d = 0; d < rank; ++d) {
    h.dims[d] = static_cast<index_t>(load_be32(raw + 4 * d));
    if (h.dims[d] != 0 && h.numel > PTRDIFF_MAX / h.dims[d]) overflow = true;
    if (!overflow) h.numel *= h.dims[d];
  }
  const auto elem = static_cast<index_t>(idx_type_size(type));
  overflow = overflow || h.numel > PTRDIFF_MAX / elem;
  require<io_error>(!overflow, s.where(),
                    "the header's sizes overflow a 64-bit byte count: ", h.describe());
  h.bytes = static_cast<std::size_t>(h.numel * elem);
  // Never allocate what the file cannot hold (see the file comment).
  const std::uintmax_t header_bytes = 4 + 4 * rank;
  const std::uintmax_t room = s.max_bytes() > header_bytes ? s.max_bytes() - header_bytes : 0;
  if (h.bytes > room) {
    if (s.compressed())
      throw io_error(concat(s.where(), "truncated or corrupt: the header promises ", h.bytes,
                            " data bytes (", h.describe(), "), more than the ", room,
                            " a gzip file of ", s.file_size(),
                            " bytes can hold (deflate expands at most 1032:1)"));
    throw io_error(concat(s.where(), "truncated data: the header promises ", h.bytes, " bytes (",
                          h.describe(), "), the file has ", room, " after the header"));
  }
  return h;
}

template <std::size_t Size>
void big_endian_to_host(unsigned char* p, std::size_t count) noexcept {
  if constexpr (Size > 1 && std::endian::native == std::endian::little) {
    for (std::size_t i = 0; i < count; ++i, p += Size) std::reverse(p, p + Size);
  }
}

/// Reads the data into dst (h.bytes bytes), checks nothing follows, converts to host order.
inline void read_payload(idx_byte_stream& s, const idx_header& h, void* dst) {
  const std::size_t got = s.read(dst, h.bytes);
  require<io_error>(got == h.bytes, s.where(), "truncated data: the header promises ", h.bytes,
                    " bytes (", h.describe(), "), the file holds ", got);
  // Nothing may follow the data; count what does (up to 1 MiB) for the message.
  constexpr std::size_t count_limit = std::size_t{1} << 20;
  unsigned char scratch[4096];
  std::size_t extra = 0;
  while (extra < count_limit) {
    const std::size_t k = s.read(scratch, sizeof scratch);
    if (k == 0) break;
    extra += k;
  }
  require<io_error>(extra == 0, s.where(), extra, extra >= count_limit ? " or more" : "",
                    " unexpected bytes after the ", h.bytes, " data bytes of ", h.describe());
  auto* p = static_cast<unsigned char*>(dst);
  const auto n = static_cast<std::size_t>(h.numel);
  switch (idx_type_size(h.type)) {
    case 2:
      big_endian_to_host<2>(p, n);
      break;
    case 4:
      big_endian_to_host<4>(p, n);
      break;
    case 8:
      big_endian_to_host<8>(p, n);
      break;
    default:
      break;
  }
}

}  // namespace detail

/// The type and Lux-order shape of an IDX file (reads the header only).
inline idx_info read_idx_info(const std::filesystem::path& path) {
  detail::idx_byte_stream s(path, "read_idx_info");
  const auto h = detail::read_header(s);
  return {h.type, h.lux_shape()};
}

/// Reads a whole IDX file (gzip or uncompressed) of any element type and rank.
inline idx_array read_idx(const std::filesystem::path& path) {
  detail::idx_byte_stream s(path, "read_idx");
  const auto h = detail::read_header(s);
  idx_array a{h.type, h.lux_shape(), std::vector<std::byte>(h.bytes)};
  detail::read_payload(s, h, a.bytes.data());
  return a;
}

/// Reads an IDX file of element type T and rank N as a Tensor<T, N> in Lux order (the IDX dims
/// reversed): read_idx<std::uint8_t, 3>("train-images-idx3-ubyte.gz") has shape (28, 28, 60000).
/// io_error when the file holds another type or rank (before its data is read).
template <class T, std::size_t N>
Tensor<T, N> read_idx(const std::filesystem::path& path) {
  static_assert(N >= 1 && N <= idx_max_rank, "lux::read_idx: the rank must be in [1, 8]");
  constexpr idx_type want = idx_type_of<T>;
  detail::idx_byte_stream s(path, "read_idx");
  const auto h = detail::read_header(s);
  require<io_error>(h.type == want && h.dims.size() == N, s.where(), "expected ",
                    idx_type_name(want), " data of rank ", N, ", found ", h.describe());
  shape_t<N> shape{};
  std::copy(h.dims.rbegin(), h.dims.rend(), shape.begin());
  auto t = Tensor<T, N>::uninitialized(shape);
  detail::read_payload(s, h, t.data());
  return t;
}

// ---------------------------------------------------------------------------------------------
// MNIST-like datasets: <split>-images-idx3-ubyte(.gz) and <split>-labels-idx1-ubyte(.gz), as
// MNIST, Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) and Kuzushiji-MNIST distribute them.

/// Images and labels of an MNIST-like split, as MLDatasets.jl gives them to Lux: features in
/// [0, 1] with the observations last, labels 0-based.
struct mnist_like {
  Tensor<float, 4> images;         // (W, H, C, N) = (cols, rows, 1, n), pixel / 255
  Tensor<std::int64_t, 1> labels;  // (n), in [0, num_classes)
  index_t size() const noexcept { return labels.numel(); }
};

/// Where Debian's dataset-fashion-mnist package installs the four Fashion-MNIST files.
inline constexpr std::string_view fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

namespace detail {
/// dir/name.gz if it exists, else dir/name if that exists, else dir/name.gz (to be reported).
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir,
                                           const std::string& name) {
  std::error_code ec;
  auto gz = dir / (name + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz;
  auto plain = dir / name;
  return std::filesystem::exists(plain, ec) ? plain : gz;
}
}  // namespace detail

/// Loads dir/<split>-images-idx3-ubyte(.gz) (u8, rank 3) and dir/<split>-labels-idx1-ubyte(.gz)
/// (u8, rank 1); io_error when a file is missing or malformed, when their observation counts
/// differ or when a label is >= num_classes.
inline mnist_like load_mnist_like(const std::filesystem::path& dir, std::string_view split,
                                  index_t num_classes = 10) {
  const auto image_path = detail::find_idx_file(dir, std::string(split) + "-images-idx3-ubyte");
  const auto label_path = detail::find_idx_file(dir, std::string(split) + "-labels-idx1-ubyte");
  const auto pixels = read_idx<std::uint8_t, 3>(image_path);
  const auto raw_labels = read_idx<std::uint8_t, 1>(label_path);
  const index_t n = pixels.size(2);
  require<io_error>(raw_labels.size(0) == n, "load_mnist_like: '", image_path.string(), "' holds ",
                    n, " images but '", label_path.string(), "' holds ", raw_labels.size(0),
                    " labels");
  mnist_like out{Tensor<float, 4>::uninitialized({pixels.size(0), pixels.size(1), 1, n}),
                 Tensor<std::int64_t, 1>::uninitialized({n})};
  // x / 255 rounded once (a table), the value Julia's N0f8 -> Float32 conversion gives.
  std::array<float, 256> scale{};
  for (int v = 0; v < 256; ++v) scale[static_cast<std::size_t>(v)] = static_cast<float>(v) / 255.0f;
  const std::uint8_t* src = pixels.data();
  float* dst = out.images.data();
  for (index_t i = 0; i < pixels.numel(); ++i) dst[i] = scale[src[i]];
  for (index_t i = 0; i < n; ++i) {
    const index_t label = raw_labels[i];
    require<io_error>(label < num_classes, "load_mnist_like: '", label_path.string(), "': label ",
                      label, " of observation ", i, " is not in [0, ", num_classes, ")");
    out.labels[i] = label;
  }
  return out;
}

/// Fashion-MNIST's "train" (60000 images) or "t10k" (10000; "test" is accepted too) split:
/// images (28, 28, 1, N) in [0, 1], labels 0-9 — as MLDatasets.jl's FashionMNIST(split).
inline mnist_like load_fashion_mnist(
    std::string_view split = "train",
    const std::filesystem::path& dir = std::filesystem::path(fashion_mnist_default_dir)) {
  require<argument_error>(split == "train" || split == "t10k" || split == "test",
                          "load_fashion_mnist: split must be \"train\" or \"t10k\" (or \"test\"), "
                          "got \"",
                          split, "\"");
  return load_mnist_like(dir, split == "test" ? "t10k" : split, 10);
}

LUX_NAMESPACE_END
