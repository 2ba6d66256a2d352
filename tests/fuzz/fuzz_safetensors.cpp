// libFuzzer target for the safetensors reader (lux/io/safetensors.hpp): any bytes are parsed,
// every tensor with a C++ element type is read with get<T, N>, and the file is loaded into a
// fixed tree through a name map (renames, a transpose, ignores, scalar/rng/view leaves). Only
// lux::io_error may come out; anything else — another exception, a crash, an out-of-bounds read,
// undefined behaviour — is a bug. Built and run by tests/fuzz/run_fuzz.sh.
#include <array>
#include <cstddef>
#include <cstdint>
#include <lux/io/safetensors.hpp>
#include <span>

namespace {

template <class T, std::size_t N = 0>
void read_as(const lux::safetensors_view& v, const lux::safetensors_entry& e) {
  if constexpr (N < 4) {
    if (e.rank() > N) return read_as<T, N + 1>(v, e);
  }
  if (e.rank() != N) return;
  const auto t = v.get<T, N>(e.name);
  volatile unsigned char sink = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (std::size_t i = 0; i < static_cast<std::size_t>(t.numel()) * sizeof(T); ++i)
    sink = static_cast<unsigned char>(sink ^ p[i]);
}

void read_entry(const lux::safetensors_view& v, const lux::safetensors_entry& e) {
  using D = lux::safetensors_dtype;
  switch (e.dtype) {
    case D::F32:
      return read_as<float>(v, e);
    case D::F64:
      return read_as<double>(v, e);
    case D::F16:
      return read_as<Eigen::half>(v, e);
    case D::BF16:
      return read_as<Eigen::bfloat16>(v, e);
    case D::I64:
      return read_as<std::int64_t>(v, e);
    case D::I32:
      return read_as<std::int32_t>(v, e);
    case D::I16:
      return read_as<std::int16_t>(v, e);
    case D::I8:
      return read_as<std::int8_t>(v, e);
    case D::U64:
      return read_as<std::uint64_t>(v, e);
    case D::U32:
      return read_as<std::uint32_t>(v, e);
    case D::U16:
      return read_as<std::uint16_t>(v, e);
    case D::U8:
      return read_as<std::uint8_t>(v, e);
    default: {  // BOOL (read through the view leaf below) and types without a C++ element
      volatile unsigned char sink = 0;
      for (const auto b : e.bytes)
        sink = static_cast<unsigned char>(sink ^ std::to_integer<unsigned char>(b));
    }
  }
}

/// The fixed tree the bytes are loaded into (tests/fuzz/corpus/safetensors/valid_tree.st matches).
void load_tree(const lux::safetensors_view& v) {
  static std::array<bool, 8> mask_storage{};
  auto tree = lux::named_tuple{
      lux::field<"layer_1">(
          lux::named_tuple{lux::field<"weight">(lux::Tensor<float, 2>(lux::make_shape(3, 2))),
                           lux::field<"bias">(lux::Tensor<double, 1>(lux::make_shape(3)))}),
      lux::field<"state">(lux::named_tuple{
          lux::field<"mask">(lux::view(mask_storage.data(), lux::make_shape(4, 2))),
          lux::field<"carry">(lux::Tensor<float, 2>{}),  // empty: takes the file's shape
          lux::field<"training">(true), lux::field<"step">(std::int32_t{0}), lux::field<"lr">(0.0f),
          lux::field<"rng">(lux::rng(0))})};
  static const lux::name_map map{{"fc.weight", "layer_1.weight", lux::name_transform::transpose},
                                 {"fc.bias", "layer_1.bias"},
                                 {"fc.num_batches_tracked", "", lux::name_transform::ignore},
                                 {"", "state.training", lux::name_transform::ignore}};
  (void)lux::load(v, tree, map);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto v = lux::parse_safetensors(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "fuzz");
    for (const auto& e : v.entries()) {
      try {
        read_entry(v, e);
      } catch (const lux::io_error&) {
      }
    }
    load_tree(v);
  } catch (const lux::io_error&) {
  }
  return 0;
}
