// safetensors checkpoints (lux/io/safetensors.hpp): bit-exact round trips for every dtype and
// for nested trees with bool / integer / float / rng leaves, PyTorch's shape order in the raw
// header, a corpus of malformed files (each an io_error naming the file and the tensor), strict
// loading into trees, name maps, atomic writes (an injected failure and a writer SIGKILLed
// mid-write), and PyTorch interop both ways (fixtures from make_safetensors_fixtures.py; the file
// written here is checked by check_luxcpp_safetensors.py).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <lux/io/safetensors.hpp>
#include <lux/kernels/activation.hpp>
#include <lux/layers/chain.hpp>
#include <lux/layers/conv.hpp>
#include <lux/layers/dense.hpp>
#include <lux/layers/normalization.hpp>
#include <lux/layers/utility.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system's temporary directory, removed with its contents.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string t = (fs::temp_directory_path() / "luxcpp_safetensors_XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
  /// Names of the files in the directory other than `except`.
  std::vector<std::string> others(const std::string& except) const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().filename() != except) v.push_back(e.path().filename().string());
    return v;
  }
};

std::vector<std::byte> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

/// The JSON header of a safetensors buffer, and its length field.
nlohmann::json header_json(const std::vector<std::byte>& b, std::uint64_t* n_out = nullptr) {
  std::uint64_t n = 0;
  std::memcpy(&n, b.data(), 8);
  if (n_out) *n_out = n;
  return nlohmann::json::parse(reinterpret_cast<const char*>(b.data()) + 8,
                               reinterpret_cast<const char*>(b.data()) + 8 + n);
}

/// A file made of an explicit header string and `data` bytes of payload (0, 1, 2, ...).
std::vector<std::byte> make_file(const std::string& header, std::size_t data,
                                 std::optional<std::uint64_t> length = std::nullopt) {
  std::vector<std::byte> b(8 + header.size() + data);
  const std::uint64_t n = length.value_or(header.size());
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  for (std::size_t i = 0; i < data; ++i) b[8 + header.size() + i] = std::byte(i & 0xFF);
  return b;
}

lux::safetensors_view parse(const std::vector<std::byte>& b, const char* name = "corrupt.st") {
  return lux::parse_safetensors(std::span<const std::byte>(b.data(), b.size()), name);
}

/// parse must throw io_error whose message names the source and contains `part`.
void require_rejected(const std::vector<std::byte>& b, const std::string& part) {
  INFO("expecting rejection with '" << part << "'");
  try {
    (void)parse(b);
    FAIL("accepted");
  } catch (const lux::io_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("corrupt.st") != std::string::npos);
    CHECK(msg.find(part) != std::string::npos);
  }
}

/// Random bit patterns (bools: 0 or 1) for a tensor of any element type.
template <class T, std::size_t N>
lux::Tensor<T, N> random_bits(const lux::shape_t<N>& shape, std::uint64_t seed) {
  auto t = lux::Tensor<T, N>::uninitialized(shape);
  lux::rng r(seed);
  auto* bytes = reinterpret_cast<unsigned char*>(t.data());
  for (std::size_t i = 0; i < static_cast<std::size_t>(t.numel()) * sizeof(T); ++i)
    bytes[i] = static_cast<unsigned char>(r.next_u32());
  if constexpr (std::is_same_v<T, bool>)
    for (auto& v : t) v = (reinterpret_cast<unsigned char&>(v) & 1) != 0;
  return t;
}

template <class A, class B>
bool same_bytes(const A& a, const B& b) {
  using T = std::remove_cvref_t<decltype(*a.data())>;
  return a.shape() == b.shape() &&
         (a.numel() == 0 ||
          std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0);
}

template <class T>
lux::Tensor<T, 3> formula(T (*f)(lux::index_t)) {
  lux::Tensor<T, 3> t(lux::make_shape(3, 4, 2));
  for (lux::index_t k = 0; k < t.numel(); ++k) t[k] = f(k);
  return t;
}

/// The PyTorch ↔ luxcpp rules for the nn.Sequential of make_safetensors_fixtures.py, with a prefix
/// on both sides (file `<f>0.weight` ↔ tree `<t>layer_1.weight`).
lux::name_map torch_map(const std::string& f = "", const std::string& t = "") {
  using lux::name_transform;
  return lux::name_map{
      {f + "0.weight", t + "layer_1.weight"},
      {f + "0.bias", t + "layer_1.bias"},
      {f + "1.weight", t + "layer_2.scale"},
      {f + "1.bias", t + "layer_2.bias"},
      {f + "1.running_mean", t + "layer_2.running_mean"},
      {f + "1.running_var", t + "layer_2.running_var"},
      {f + "1.num_batches_tracked", "", name_transform::ignore},
      {"", t + "layer_2.training", name_transform::ignore},
      {f + "4.weight", t + "layer_5.weight", name_transform::transpose},
      {f + "4.bias", t + "layer_5.bias"},
  };
}

auto torch_equivalent_model() {
  return lux::Chain(
      lux::Conv({3, 3}, {1, 4}, lux::identity{}, {.pad = 1, .cross_correlation = true}),
      lux::BatchNorm(4), [](const auto& x) { return lux::fast_activation(lux::relu{}, x); },
      lux::FlattenLayer{}, lux::Dense({144, 5}));
}

/// Reads an entry with get<T, N> for its dtype and rank (ranks 0 to 4); a byte checksum.
template <class T, std::size_t N = 0>
unsigned read_as(const lux::safetensors_view& v, const lux::safetensors_entry& e) {
  if constexpr (N < 4) {
    if (e.rank() > N) return read_as<T, N + 1>(v, e);
  }
  const auto t = v.get<T, N>(e.name);
  unsigned sum = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (std::size_t i = 0; i < static_cast<std::size_t>(t.numel()) * sizeof(T); ++i) sum += p[i];
  return sum;
}
unsigned read_entry(const lux::safetensors_view& v, const lux::safetensors_entry& e) {
  using D = lux::safetensors_dtype;
  if (e.rank() > 4) return 0;
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
    case D::U8:
      return read_as<std::uint8_t>(v, e);
    case D::BOOL:  // no Tensor<bool> (see the BOOL test): check the bytes as get<bool> does
      lux::detail::st::check_bool_bytes(v.source(), e);
      return 1;
    default:
      return 0;
  }
}

std::string fixture(const char* name) { return std::string(LUX_TEST_FIXTURE_DIR) + "/" + name; }

}  // namespace

// ---------------------------------------------------------------------------------------------
TEMPLATE_TEST_CASE("safetensors: round trip is bit-exact for every dtype", "[io][safetensors]",
                   float, double, Eigen::half, Eigen::bfloat16, std::int64_t, std::int32_t,
                   std::uint8_t, std::int8_t, std::int16_t, std::uint16_t, std::uint32_t,
                   std::uint64_t) {
  using T = TestType;
  temp_dir dir;
  const auto a = random_bits<T, 3>(lux::make_shape(5, 3, 2), 11);
  const auto b = random_bits<T, 1>(lux::make_shape(7), 12);
  const lux::Tensor<T, 2> empty(lux::make_shape(0, 4));
  const auto tree =
      lux::named_tuple{lux::field<"a">(a), lux::field<"b">(b), lux::field<"empty">(empty)};
  const auto path = dir / "rt.safetensors";
  lux::save(path, tree);
  CHECK(file_bytes(path) == lux::serialize_safetensors(tree));

  auto loaded = lux::named_tuple{lux::field<"a">(lux::Tensor<T, 3>(a.shape())),
                                 lux::field<"b">(lux::Tensor<T, 1>(b.shape())),
                                 lux::field<"empty">(lux::Tensor<T, 2>(empty.shape()))};
  lux::load(path, loaded);
  CHECK(same_bytes(loaded.template get<"a">(), a));
  CHECK(same_bytes(loaded.template get<"b">(), b));
  CHECK(loaded.template get<"empty">().shape() == empty.shape());

  const auto file = lux::read_safetensors(path);
  REQUIRE(file.size() == 3);
  const auto& e = file.at("a");
  CHECK(e.dtype == lux::safetensors_dtype_of<T>());
  CHECK(e.torch_shape == std::vector<lux::index_t>{2, 3, 5});
  CHECK(e.lux_shape == std::vector<lux::index_t>{5, 3, 2});
  CHECK(same_bytes(file.get<T, 3>("a"), a));
  CHECK(file.at("empty").bytes.empty());
}

// BOOL tensors go through views: lux::Tensor<bool, N> does not compile at present (its public
// (shape, value) constructor collides with the private (shape, bool initialize) one).
TEST_CASE("safetensors: BOOL tensors round trip through view leaves", "[io][safetensors]") {
  std::array<bool, 30> a{}, b{};
  lux::rng r(4);
  for (auto& v : a) v = (r.next_u32() & 1) != 0;
  const auto bytes =
      lux::serialize_safetensors(lux::named("mask", lux::view(a.data(), lux::make_shape(5, 6))));
  const auto v = parse(bytes, "bool.st");
  CHECK(v.at("mask").dtype == lux::safetensors_dtype::BOOL);
  CHECK(v.at("mask").torch_shape == std::vector<lux::index_t>{6, 5});
  auto target = lux::named("mask", lux::view(b.data(), lux::make_shape(5, 6)));
  lux::load(v, target);
  CHECK(a == b);
  auto bad = bytes;
  bad[bad.size() - 3] = std::byte{2};
  CHECK_THROWS_WITH(lux::load(parse(bad, "bool.st"), target),
                    Catch::Contains("bool.st") && Catch::Contains("'mask'") &&
                        Catch::Contains("expected 0 or 1"));
  CHECK(a == b);  // unchanged by the failed load
}

TEST_CASE("safetensors: dtype names follow the format", "[io][safetensors]") {
  CHECK(lux::to_string(lux::safetensors_dtype_of<float>()) == "F32");
  CHECK(lux::to_string(lux::safetensors_dtype_of<double>()) == "F64");
  CHECK(lux::to_string(lux::safetensors_dtype_of<Eigen::bfloat16>()) == "BF16");
  CHECK(lux::to_string(lux::safetensors_dtype_of<Eigen::half>()) == "F16");
  CHECK(lux::to_string(lux::safetensors_dtype_of<long>()) == "I64");
  CHECK(lux::to_string(lux::safetensors_dtype_of<int>()) == "I32");
  CHECK(lux::to_string(lux::safetensors_dtype_of<unsigned char>()) == "U8");
  CHECK(lux::to_string(lux::safetensors_dtype_of<bool>()) == "BOOL");
  for (const auto& d : lux::detail::st::dtype_table)
    CHECK(lux::parse_safetensors_dtype(d.name) == d.dtype);
  CHECK_FALSE(lux::parse_safetensors_dtype("F33").has_value());
}

TEST_CASE("safetensors: rng full state constructor restores the sequential cursor",
          "[io][safetensors]") {
  lux::rng r(42);
  r.advance(7);
  for (int i = 0; i < 5; ++i) (void)r.next_u32();
  const lux::rng copy(r.key(), r.counter(), r.position());
  CHECK(copy == r);
  CHECK(copy.position() == 5);
  lux::rng a = r, b = copy;
  CHECK(a.next_u32() == b.next_u32());
  CHECK(a.uniform<double>() == b.uniform<double>());
}

TEST_CASE("safetensors: nested trees with bool, integer, float and rng leaves round trip",
          "[io][safetensors]") {
  temp_dir dir;
  lux::rng stream(7);
  stream.advance(std::uint64_t{1} << 63);  // a counter above 2^63: stored as its bit pattern
  for (int i = 0; i < 3; ++i) (void)stream.next_u32();
  auto make = [](lux::rng r, bool flag, int step, std::size_t big, double lr, std::int8_t small,
                 Eigen::half h, lux::Tensor<float, 2> mask, std::uint64_t seed) {
    return lux::named_tuple{
        lux::field<"layer_1">(
            lux::named_tuple{lux::field<"weight">(random_bits<float, 2>({3, 2}, seed)),
                             lux::field<"bias">(random_bits<double, 1>({3}, seed + 1))}),
        lux::field<"layer_2">(lux::named_tuple{
            lux::field<"rng">(r), lux::field<"training">(flag), lux::field<"mask">(mask),
            lux::field<"counts">(random_bits<std::int32_t, 2>({2, 2}, seed + 2))}),
        lux::field<"layer_3">(lux::empty_tuple{}),
        lux::field<"step">(step),
        lux::field<"big">(big),
        lux::field<"lr">(lr),
        lux::field<"small">(small),
        lux::field<"h">(h)};
  };
  const auto saved = make(stream, true, -123456, std::size_t{1} << 40, 0.1, std::int8_t{-7},
                          Eigen::half(1.5f), random_bits<float, 2>({4, 5}, 3), 100);
  auto loaded = make(lux::rng(1), false, 0, 0, 0.0, std::int8_t{0}, Eigen::half(0.0f),
                     lux::Tensor<float, 2>{}, 200);  // mask empty: takes the file's shape
  const auto path = dir / "tree.safetensors";
  lux::save(path, saved);
  lux::load(path, loaded);
  const auto& s2 = saved.get<"layer_2">();
  const auto& l2 = loaded.get<"layer_2">();
  CHECK(l2.get<"rng">() == s2.get<"rng">());
  CHECK(l2.get<"rng">().position() == 3);
  CHECK(l2.get<"rng">().counter() == std::uint64_t{1} << 63);
  CHECK(l2.get<"training">() == true);
  CHECK(same_bytes(l2.get<"mask">(), s2.get<"mask">()));
  CHECK(same_bytes(l2.get<"counts">(), s2.get<"counts">()));
  CHECK(
      same_bytes(loaded.get<"layer_1">().get<"weight">(), saved.get<"layer_1">().get<"weight">()));
  CHECK(same_bytes(loaded.get<"layer_1">().get<"bias">(), saved.get<"layer_1">().get<"bias">()));
  CHECK(loaded.get<"step">() == -123456);
  CHECK(loaded.get<"big">() == std::size_t{1} << 40);
  CHECK(loaded.get<"lr">() == 0.1);
  CHECK(loaded.get<"small">() == -7);
  CHECK(static_cast<float>(loaded.get<"h">()) == 1.5f);

  // the scalar encodings, as PyTorch sees them
  const auto f = lux::read_safetensors(path);
  CHECK(f.at("layer_2.training").dtype == lux::safetensors_dtype::BOOL);
  CHECK(f.at("layer_2.training").torch_shape.empty());
  CHECK(f.at("step").dtype == lux::safetensors_dtype::I64);
  CHECK(f.at("small").dtype == lux::safetensors_dtype::I64);
  CHECK(f.at("lr").dtype == lux::safetensors_dtype::F64);
  CHECK(f.at("h").dtype == lux::safetensors_dtype::F16);
  const auto words = f.get<std::int64_t, 1>("layer_2.rng");
  REQUIRE(words.numel() == 4);
  CHECK(words[0] == stream.key().v[0]);
  CHECK(words[1] == stream.key().v[1]);
  CHECK(static_cast<std::uint64_t>(words[2]) == stream.counter());
  CHECK(words[3] == 3);
  CHECK(f.size() == 11);  // the empty layer_3 has no leaves
}

TEST_CASE("safetensors: shapes are written in PyTorch order in the raw header",
          "[io][safetensors]") {
  lux::rng r(3);
  auto model = torch_equivalent_model();
  auto [ps, st] = lux::setup<float>(r, model);
  const auto bytes = lux::serialize_safetensors(lux::named("params", ps), lux::named("states", st),
                                                lux::safetensors_metadata{{"epoch", "3"}});
  std::uint64_t n = 0;
  const auto h = header_json(bytes, &n);
  CHECK(n % 8 == 0);
  const std::string raw(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  CHECK(raw.front() == '{');
  CHECK(raw.find_last_not_of(' ') == raw.rfind('}'));               // padded with spaces only
  CHECK(raw.rfind("{\"__metadata__\":{\"epoch\":\"3\"}", 0) == 0);  // metadata first
  CHECK(h["params.layer_1.weight"]["shape"] == nlohmann::json::array({4, 1, 3, 3}));
  CHECK(h["params.layer_1.weight"]["dtype"] == "F32");
  CHECK(h["params.layer_5.weight"]["shape"] == nlohmann::json::array({144, 5}));  // no name map
  CHECK(h["states.layer_2.running_var"]["shape"] == nlohmann::json::array({4}));
  CHECK(h["states.layer_2.training"]["dtype"] == "BOOL");
  CHECK(h["states.layer_2.training"]["shape"] == nlohmann::json::array());
  // tensors tile the buffer, each aligned to its element size
  std::uint64_t total = 0;
  for (const auto& [k, v] : h.items()) {
    if (k == "__metadata__") continue;
    const std::uint64_t b = v["data_offsets"][0], e = v["data_offsets"][1];
    const auto es = lux::bit_size(*lux::parse_safetensors_dtype(v["dtype"].get<std::string>())) / 8;
    CHECK(b % es == 0);
    total += e - b;
  }
  CHECK(8 + n + total == bytes.size());
  const auto v = parse(bytes, "mem");
  CHECK(v.metadata() == lux::safetensors_metadata{{"epoch", "3"}});
  CHECK(v.size() == 9);
  CHECK(same_bytes(v.get<float, 4>("params.layer_1.weight"), ps.get<"layer_1">().get<"weight">()));
}

TEST_CASE("safetensors: named prefixes, metadata and the low-level reader", "[io][safetensors]") {
  temp_dir dir;
  lux::rng r(5);
  auto model = torch_equivalent_model();
  auto [ps, st] = lux::setup<float>(r, model);
  const auto path = dir / "ckpt.safetensors";
  const lux::safetensors_metadata meta{{"epoch", "12"}, {"note", "héllo"}};
  lux::save(path, meta, lux::named("params", ps), lux::named("states", st));
  auto [ps2, st2] = lux::setup<float>(*std::make_unique<lux::rng>(99), model);
  const auto got = lux::load(path, lux::named("params", ps2), lux::named("states", st2));
  CHECK(got == meta);
  CHECK(same_bytes(ps2.get<"layer_1">().get<"weight">(), ps.get<"layer_1">().get<"weight">()));
  CHECK(same_bytes(ps2.get<"layer_5">().get<"weight">(), ps.get<"layer_5">().get<"weight">()));

  const auto f = lux::read_safetensors(path);
  CHECK(f.source() == path.string());
  CHECK(f.contains("params.layer_2.scale"));
  CHECK(f.find("params.nope") == nullptr);
  CHECK_THROWS_AS((f.get<double, 4>("params.layer_1.weight")), lux::io_error);  // dtype
  CHECK_THROWS_AS((f.get<float, 2>("params.layer_1.weight")), lux::io_error);   // rank
  CHECK_THROWS_WITH(f.at("params.nope"),
                    Catch::Contains(path.string()) && Catch::Contains("params.nope"));
  // a single leaf needs a name; with one it is stored under that name
  lux::Tensor<float, 1> v(lux::make_shape(3), 2.0f);
  CHECK_THROWS_AS(lux::serialize_safetensors(v), lux::argument_error);
  const auto one = lux::serialize_safetensors(lux::named("v", v));
  CHECK(parse(one, "one").at("v").lux_shape == std::vector<lux::index_t>{3});
  // names must be unique
  CHECK_THROWS_AS(lux::serialize_safetensors(lux::named("p", ps), lux::named("p", ps)),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::serialize_safetensors(lux::named("__metadata__", v)), lux::argument_error);
  // an integer scalar must fit the I64 it is stored as
  CHECK_THROWS_AS(lux::serialize_safetensors(lux::named("u", ~std::uint64_t{0})),
                  lux::argument_error);
  CHECK_THROWS_AS(lux::save(dir / "no_such_dir" / "x.safetensors", lux::named("v", v)),
                  lux::io_error);
  CHECK_THROWS_AS(lux::read_safetensors(dir / "absent.safetensors"), lux::io_error);
}

TEST_CASE("safetensors: load into TensorView and StridedView leaves over a flat buffer",
          "[io][safetensors]") {
  const auto w = random_bits<float, 2>({3, 4}, 1);
  const auto b = random_bits<float, 1>({3}, 2);
  const auto bytes =
      lux::serialize_safetensors(lux::named_tuple{lux::field<"weight">(w), lux::field<"bias">(b)});
  std::vector<float> flat(12 + 3 + 6, -1.0f);  // weight, bias, and a strided 3-of-6 slot
  auto views =
      lux::named_tuple{lux::field<"weight">(lux::view(flat.data(), lux::make_shape(3, 4))),
                       lux::field<"bias">(lux::StridedView<float, 1>(flat.data() + 15, {3}, {2}))};
  lux::load(parse(bytes, "mem"), views);
  CHECK(std::memcmp(flat.data(), w.data(), 12 * sizeof(float)) == 0);
  for (int i = 0; i < 3; ++i) {
    CHECK(flat[15 + 2 * i] == b[i]);
    CHECK(flat[16 + 2 * i] == -1.0f);
  }
  // a view cannot change shape
  std::vector<float> small(6);
  auto wrong =
      lux::named_tuple{lux::field<"weight">(lux::view(small.data(), lux::make_shape(2, 3))),
                       lux::field<"bias">(lux::view(small.data(), lux::make_shape(3)))};
  CHECK_THROWS_AS(lux::load(parse(bytes, "mem"), wrong), lux::io_error);
  // saving strided views gathers them
  const auto again = lux::serialize_safetensors(views);
  CHECK(parse(again, "again").get<float, 1>("bias")[2] == b[2]);
}

TEST_CASE("safetensors: malformed files are rejected with io_error", "[io][safetensors]") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  REQUIRE_NOTHROW(parse(make_file(ok, 8)));

  // header length
  require_rejected({}, "too small");
  require_rejected(std::vector<std::byte>(7), "too small");
  require_rejected(make_file(ok, 8, 100'000'001), "exceeds the format's limit");
  require_rejected(make_file(ok, 8, ~std::uint64_t{0}), "exceeds the format's limit");
  require_rejected(make_file(ok, 8, ok.size() + 9), "exceeds the");
  require_rejected(make_file("", 0), "does not start with '{'");
  require_rejected(make_file(" " + ok, 8), "does not start with '{'");
  require_rejected(make_file(R"([{"a":1}])", 0), "does not start with '{'");
  // JSON / UTF-8
  require_rejected(make_file(R"({"a":})", 0), "not valid JSON");
  require_rejected(make_file(ok.substr(0, ok.size() - 1), 8), "not valid JSON");
  require_rejected(make_file("{\"a\xff\":{}}", 0), "not valid JSON");
  require_rejected(make_file("{\"\xc3\x28\":{}}", 0), "not valid JSON");
  require_rejected(make_file(std::string("{}") + '\0' + "garbage", 0), "NUL");
  require_rejected(make_file(ok + "x", 8), "not valid JSON");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                             16),
                   "duplicate key 'a'");
  require_rejected(
      make_file(R"({"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4),
      "duplicate key 'dtype'");
  require_rejected(make_file(R"({"__metadata__":{"x":[[[1]]]}})", 0), "nested deeper");
  require_rejected(make_file(R"({"__metadata__":{"x":1}})", 0), "not a string");
  require_rejected(make_file(R"({"__metadata__":[1]})", 0), "__metadata__");
  // entries
  require_rejected(make_file(R"({"a":1})", 0), "tensor 'a'");
  require_rejected(make_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
                   "unknown dtype \"F33\"");
  require_rejected(make_file(R"({"a":{"dtype":5,"shape":[2],"data_offsets":[0,8]}})", 8), "dtype");
  require_rejected(make_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8), "dtype");
  require_rejected(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8), "shape");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8),
                   "shape");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                   "non-negative");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8),
                   "non-negative");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8),
                   "non-negative");
  require_rejected(
      make_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8),
      "overflows");
  require_rejected(
      make_file(R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8),
      "overflows");
  require_rejected(
      make_file(R"({"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,8]}})", 8),
      "non-negative");
  require_rejected(
      make_file(R"({"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}})", 8),
      "overflows");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "data_offsets");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                   "data_offsets");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 8),
                   "data_offsets");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", 8),
                   "non-negative");
  // offsets
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
                   "end before they begin");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12),
                   "overlap");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
                             20),
                   "leave a gap");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
                   "leave a gap");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
                   "run past");
  require_rejected(
      make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", 8),
      "run past");
  require_rejected(make_file(ok, 12), "cover 8 bytes of the 12-byte");  // trailing bytes
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                   "needs 12");  // byte length ≠ numel × size
  require_rejected(make_file(R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2),
                   "not whole bytes");
  require_rejected(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                             8),
                   "overlap");

  // every truncation of a valid file is rejected; byte flips never crash
  lux::rng r(9);
  auto model = torch_equivalent_model();
  auto [ps, st] = lux::setup<float>(r, model);
  const auto good = lux::serialize_safetensors(ps, st);
  REQUIRE_NOTHROW(parse(good));
  for (std::size_t len = 0; len < good.size(); ++len) {
    const std::vector<std::byte> t(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    CHECK_THROWS_AS(parse(t), lux::io_error);
  }
  std::uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  int rejected = 0;
  for (int k = 0; k < 3000; ++k) {
    auto m = good;
    const auto pos = r.next_u32() % (8 + n);
    m[pos] = std::byte(r.next_u32() & 0xFF);
    try {
      const auto v = parse(m);
      for (const auto& e : v.entries()) (void)read_entry(v, e);
    } catch (const lux::io_error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
}

TEST_CASE("safetensors: strict loading names the file and the tensor, and changes nothing",
          "[io][safetensors]") {
  using lux::make_shape;
  auto tree = [](float fill) {
    return lux::named_tuple{lux::field<"layer_1">(lux::named_tuple{
                                lux::field<"weight">(lux::Tensor<float, 2>(make_shape(3, 2), fill)),
                                lux::field<"bias">(lux::Tensor<float, 1>(make_shape(3), fill))}),
                            lux::field<"flag">(true), lux::field<"small">(std::int8_t{1}),
                            lux::field<"rng">(lux::rng(1))};
  };
  const auto good = tree(2.0f);
  auto expect_error = [&](const std::vector<std::byte>& bytes, const std::string& tensor,
                          const std::string& part) {
    auto target = tree(0.0f);
    INFO("tensor " << tensor << ", expecting '" << part << "'");
    try {
      lux::load(parse(bytes, "model.st"), target);
      FAIL("accepted");
    } catch (const lux::io_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find("model.st") != std::string::npos);
      CHECK(msg.find("'" + tensor + "'") != std::string::npos);
      CHECK(msg.find(part) != std::string::npos);
    }
    // nothing was written
    CHECK(target.get<"layer_1">().get<"weight">()[0] == 0.0f);
    CHECK(target.get<"layer_1">().get<"bias">()[0] == 0.0f);
    CHECK(target.get<"flag">() == true);
    CHECK(target.get<"small">() == 1);
  };
  auto with = [&](auto&& change) {
    auto t = tree(2.0f);
    return lux::serialize_safetensors(change(t));
  };
  {
    auto target = tree(0.0f);
    lux::load(parse(lux::serialize_safetensors(good), "model.st"), target);
    CHECK(target.get<"layer_1">().get<"weight">()[5] == 2.0f);
  }
  // missing: a tree without layer_1.bias
  expect_error(lux::serialize_safetensors(lux::named_tuple{
                   lux::field<"layer_1">(lux::named_tuple{
                       lux::field<"weight">(lux::Tensor<float, 2>(make_shape(3, 2), 2.0f))}),
                   lux::field<"flag">(true), lux::field<"small">(std::int8_t{1}),
                   lux::field<"rng">(lux::rng(1))}),
               "layer_1.bias", "missing");
  // unexpected
  expect_error(
      lux::serialize_safetensors(good, lux::named("extra", lux::Tensor<float, 1>(make_shape(2)))),
      "extra", "not expected");
  // shape, dtype, rank mismatch
  expect_error(with([](auto& t) {
                 t.template get<"layer_1">().template get<"weight">() =
                     lux::Tensor<float, 2>(make_shape(2, 3));
                 return t;
               }),
               "layer_1.weight", "(3, 2)");
  expect_error(with([](auto& t) {
                 return t.template with<"layer_1">(lux::named_tuple{
                     lux::field<"weight">(lux::Tensor<double, 2>(make_shape(3, 2))),
                     lux::field<"bias">(lux::Tensor<float, 1>(make_shape(3)))});
               }),
               "layer_1.weight", "F64");
  expect_error(with([](auto& t) {
                 return t.template with<"layer_1">(lux::named_tuple{
                     lux::field<"weight">(lux::Tensor<float, 3>(make_shape(3, 2, 1))),
                     lux::field<"bias">(lux::Tensor<float, 1>(make_shape(3)))});
               }),
               "layer_1.weight", "but the tree leaf");
  // scalars: a BOOL tensor where a bool leaf is, an integer out of range, a bad rng
  expect_error(with([](auto& t) { return t.template with<"flag">(7); }), "flag", "BOOL []");
  expect_error(with([](auto& t) { return t.template with<"small">(300); }), "small",
               "does not fit");
  expect_error(with([](auto& t) { return t.template with<"rng">(std::int64_t{5}); }), "rng",
               "I64 [4]");
  {
    auto bytes = lux::serialize_safetensors(
        good.with<"rng">(lux::Tensor<std::int64_t, 1>(make_shape(4), std::int64_t{1} << 40)));
    expect_error(bytes, "rng", "32-bit");
  }
  // a BOOL byte other than 0 or 1
  {
    auto bytes = lux::serialize_safetensors(good);
    const auto v = parse(bytes, "model.st");
    const auto off = static_cast<std::size_t>(v.at("flag").bytes.data() - bytes.data());
    bytes[off] = std::byte{2};
    expect_error(bytes, "flag", "expected 0 or 1");
  }
  // io errors from a real file name the path
  temp_dir dir;
  const auto path = dir / "bad.safetensors";
  lux::save(path, lux::named("other", lux::Tensor<float, 1>(make_shape(2))));
  auto target = tree(0.0f);
  CHECK_THROWS_WITH(lux::load(path, target),
                    Catch::Contains(path.string()) && Catch::Contains("'other'"));
}

TEST_CASE("safetensors: name_map renames, transposes and ignores, both ways", "[io][safetensors]") {
  using lux::make_shape;
  using lux::name_transform;
  // a Lux Dense weight (out, in) = (2, 3), column-major
  lux::Tensor<float, 2> w(make_shape(2, 3), {1, 4, 2, 5, 3, 6});  // w(i, j) = 3i + j + 1
  auto ps = lux::named_tuple{lux::field<"dense">(lux::named_tuple{
      lux::field<"weight">(w), lux::field<"bias">(lux::Tensor<float, 1>(make_shape(2), 9.0f))})};
  auto st = lux::named_tuple{lux::field<"training">(true)};
  const lux::name_map map{{"fc.weight", "dense.weight", name_transform::transpose},
                          {"fc.bias", "dense.bias"},
                          {"", "training", name_transform::ignore},
                          {"fc.num_batches_tracked", "", name_transform::ignore}};
  const auto bytes = lux::serialize_safetensors(ps, st, map);
  const auto v = parse(bytes, "torch.st");
  REQUIRE(v.size() == 2);
  CHECK(v.at("fc.weight").torch_shape == std::vector<lux::index_t>{2, 3});
  const auto raw = v.get<float, 2>("fc.weight");  // Lux view of the row-major bytes: (3, 2)
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) CHECK(raw(j, i) == w(i, j));  // row-major (out, in)

  // back, with an extra file tensor that is ignored
  auto extra =
      lux::serialize_safetensors(lux::named("fc.weight", raw.reshape(3, 2)),
                                 lux::named("fc.bias", lux::Tensor<float, 1>(make_shape(2), 9.0f)),
                                 lux::named("fc.num_batches_tracked", std::int64_t{3}));
  auto ps2 = lux::named_tuple{lux::field<"dense">(
      lux::named_tuple{lux::field<"weight">(lux::Tensor<float, 2>(make_shape(2, 3))),
                       lux::field<"bias">(lux::Tensor<float, 1>(make_shape(2)))})};
  auto st2 = lux::named_tuple{lux::field<"training">(false)};
  // raw.reshape(3, 2) is written with torch shape [2, 3] — the same bytes as fc.weight above
  lux::load(parse(extra, "torch.st"), ps2, st2, map);
  CHECK(same_bytes(ps2.get<"dense">().get<"weight">(), w));
  CHECK(st2.get<"training">() == false);  // ignored: left as it was

  // rule errors
  CHECK_THROWS_AS((lux::name_map{{"a", "x"}, {"a", "y"}}), lux::argument_error);
  CHECK_THROWS_AS((lux::name_map{{"a", "x"}, {"b", "x"}}), lux::argument_error);
  CHECK_THROWS_AS((lux::name_map{{"a", ""}}), lux::argument_error);
  CHECK_THROWS_AS(lux::load(v, ps2, st2, lux::name_map{{"fc.weight", "dense.wieght"}}),
                  lux::argument_error);
  // two file tensors for one leaf
  const auto both =
      lux::serialize_safetensors(lux::named("dense.weight", w), lux::named("fc.weight", w),
                                 lux::named("dense.bias", lux::Tensor<float, 1>(make_shape(2))));
  CHECK_THROWS_WITH(
      lux::load(parse(both, "both.st"), ps2, lux::name_map{{"fc.weight", "dense.weight"}}),
      Catch::Contains("both map to the leaf 'dense.weight'"));
  // transpose needs rank 2 on both sides
  CHECK_THROWS_AS(lux::load(v, ps2,
                            lux::name_map{{"fc.weight", "dense.weight", name_transform::transpose},
                                          {"fc.bias", "dense.bias", name_transform::transpose}}),
                  lux::argument_error);
}

TEST_CASE("safetensors: an injected failure leaves the previous checkpoint intact",
          "[io][safetensors]") {
  temp_dir dir;
  const auto path = dir / "ckpt.safetensors";
  const auto v1 = random_bits<float, 2>({64, 64}, 1);
  lux::save(path, lux::named("w", v1));
  const auto before = file_bytes(path);

  static fs::path seen;
  lux::detail::safetensors_fail_after_temp_written = [](const fs::path& temp) {
    seen = temp;
    CHECK(fs::exists(temp));
    throw lux::io_error("injected failure");
  };
  const auto v2 = random_bits<float, 2>({64, 64}, 2);
  CHECK_THROWS_WITH(lux::save(path, lux::named("w", v2)), Catch::Contains("injected failure"));
  lux::detail::safetensors_fail_after_temp_written = nullptr;

  CHECK(seen.parent_path() == dir.path);
  CHECK_FALSE(fs::exists(seen));  // the temporary was removed
  CHECK(dir.others("ckpt.safetensors").empty());
  CHECK(file_bytes(path) == before);
  auto back = lux::named_tuple{lux::field<"w">(lux::Tensor<float, 2>(v1.shape()))};
  lux::load(path, back);
  CHECK(same_bytes(back.get<"w">(), v1));
}

TEST_CASE("safetensors: a writer killed mid-write leaves the previous checkpoint intact",
          "[io][safetensors]") {
  temp_dir dir;
  const std::string name = "ckpt.safetensors";
  const auto path = dir / name;
  const auto old_w = random_bits<float, 2>({128, 128}, 5);
  lux::save(path, lux::named("w", old_w));
  const auto before = file_bytes(path);
  // 200 MB, allocated before the fork so the child starts writing at once
  lux::Tensor<float, 2> big(lux::make_shape(50'000'000, 1), 1.0f);
  const std::size_t full = 8 + 200'000'000;

  bool killed_mid_write = false;
  for (int attempt = 0; attempt < 5 && !killed_mid_write; ++attempt) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        lux::save(path, lux::named("w", big));
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    // poll for the temporary and kill the writer once it holds a few MB, well before the end
    fs::path temp;
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir.path, ec)) {
        const auto fn = e.path().filename().string();
        if (fn.rfind("." + name + ".", 0) == 0 && fn.size() > 4 &&
            fn.compare(fn.size() - 4, 4, ".tmp") == 0)
          temp = e.path();
      }
      std::error_code sec;
      const auto sz = temp.empty() ? 0 : fs::file_size(temp, sec);
      if (!temp.empty() && !sec && sz > (4u << 20)) break;
      int status = 0;
      if (::waitpid(child, &status, WNOHANG) == child) {
        temp.clear();
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    const bool running = ::kill(child, SIGKILL) == 0;
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!running || temp.empty()) continue;  // finished before the kill: try again
    std::error_code ec;
    const auto left = fs::file_size(temp, ec);
    killed_mid_write = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && !ec && left < full;
    INFO("temporary " << temp << " had " << left << " of " << full << " bytes");
    CHECK(file_bytes(path) == before);  // the old checkpoint is untouched
    fs::remove(temp, ec);               // the stale temporary a crash leaves behind
  }
  REQUIRE(killed_mid_write);
  auto back = lux::named_tuple{lux::field<"w">(lux::Tensor<float, 2>(old_w.shape()))};
  lux::load(path, back);
  CHECK(same_bytes(back.get<"w">(), old_w));
  CHECK(dir.others(name).empty());
}

TEST_CASE("safetensors: a PyTorch model loads through the name map and reproduces its output",
          "[io][safetensors]") {
  auto model = torch_equivalent_model();
  lux::rng r(0);
  auto [ps, st] = lux::setup<float>(r, model);
  const auto meta = lux::load(fixture("torch_model.safetensors"), ps, st, torch_map());
  CHECK(meta.at("format") == "pt");
  const auto io = lux::read_safetensors(fixture("torch_model_io.safetensors"));
  const auto x = io.get<float, 4>("x");  // PyTorch (2, 1, 6, 6) = Lux (6, 6, 1, 2)
  const auto y_torch = io.get<float, 2>("y");
  REQUIRE(x.shape() == lux::make_shape(6, 6, 1, 2));
  REQUIRE(y_torch.shape() == lux::make_shape(5, 2));

  // the statistics and affine parameters are the trained ones, not the initial ones
  const auto& bn = st.get<"layer_2">();
  CHECK(bn.get<"running_mean">()[0] != 0.0f);
  CHECK(bn.get<"running_var">()[0] != 1.0f);
  CHECK(ps.get<"layer_2">().get<"scale">()[0] != 1.0f);
  CHECK(bn.get<"training">() == true);  // ignored by the map: left as setup made it

  auto [y, st2] = lux::apply(model, x, ps, lux::testmode(st));
  REQUIRE(y.shape() == y_torch.shape());
  double err = 0;
  for (lux::index_t i = 0; i < y.numel(); ++i)
    err = std::max(err, std::abs(double(y[i]) - double(y_torch[i])));
  INFO("max |luxcpp - PyTorch| = " << err);
  CHECK(err < 1e-5);
}

TEST_CASE("safetensors: PyTorch reads a file luxcpp wrote", "[io][safetensors]") {
  // Written where check_luxcpp_safetensors.py reads it: $LUX_SAFETENSORS_CHECK_FILE, or
  // <temp dir>/luxcpp_to_torch.safetensors.
  const char* env = std::getenv("LUX_SAFETENSORS_CHECK_FILE");
  const fs::path out =
      env && *env ? fs::path(env) : fs::temp_directory_path() / "luxcpp_to_torch.safetensors";
  auto model = torch_equivalent_model();
  lux::rng r(0);
  auto [ps, st] = lux::setup<float>(r, model);
  lux::load(fixture("torch_model.safetensors"), ps, st, torch_map());
  const auto io = lux::read_safetensors(fixture("torch_model_io.safetensors"));
  const auto x = io.get<float, 4>("x");
  auto [y, st2] = lux::apply(model, x, ps, lux::testmode(st));

  std::array<bool, 24> bools{};
  for (std::size_t k = 0; k < bools.size(); ++k) bools[k] = k % 3 == 0;
  auto formulas = lux::named_tuple{
      lux::field<"f32">(formula<float>([](lux::index_t k) { return float(k - 5) * 0.25f; })),
      lux::field<"f64">(formula<double>([](lux::index_t k) { return double(k - 5) * 0.1; })),
      lux::field<"f16">(
          formula<Eigen::half>([](lux::index_t k) { return Eigen::half(float(k - 5) * 0.25f); })),
      lux::field<"bf16">(formula<Eigen::bfloat16>(
          [](lux::index_t k) { return Eigen::bfloat16(float(k - 5) * 0.25f); })),
      lux::field<"i64">(formula<std::int64_t>(
          [](lux::index_t k) { return std::int64_t(k - 3) * 1000000007 * 1000; })),
      lux::field<"i32">(
          formula<std::int32_t>([](lux::index_t k) { return std::int32_t(k - 7) * 100000; })),
      lux::field<"u8">(
          formula<std::uint8_t>([](lux::index_t k) { return std::uint8_t(k * 37 % 256); })),
      lux::field<"bool">(lux::view(bools.data(), lux::make_shape(3, 4, 2))),
      lux::field<"empty">(lux::Tensor<float, 2>(lux::make_shape(0, 3)))};
  lux::rng stream(2024);
  stream.advance(77);
  (void)stream.next_u32();
  const std::int64_t step = 1234567890123;
  const double lr = 0.125;
  auto scalars = lux::named_tuple{lux::field<"flag">(true), lux::field<"step">(step),
                                  lux::field<"lr">(lr), lux::field<"rng">(stream)};
  const lux::safetensors_metadata meta{
      {"scalars.flag", "true"},
      {"scalars.step", std::to_string(step)},
      {"scalars.lr", "0.125"},
      {"scalars.rng", lux::detail::concat(stream.key().v[0], " ", stream.key().v[1], " ",
                                          stream.counter(), " ", stream.position())},
      {"model_tolerance", "1e-5"}};
  lux::save(out, lux::named("formula", formulas), lux::named("scalars", scalars),
            lux::named("model", ps), lux::named("model", st), lux::named("model_io.x", x),
            lux::named("model_io.y", y), torch_map("model.", "model."), meta);

  // what the Python check relies on, checked here too
  const auto f = lux::read_safetensors(out);
  CHECK(f.at("formula.f32").torch_shape == std::vector<lux::index_t>{2, 4, 3});
  CHECK(f.at("model.4.weight").torch_shape == std::vector<lux::index_t>{5, 144});
  CHECK_FALSE(f.contains("model.1.num_batches_tracked"));
  CHECK_FALSE(f.contains("model.layer_2.training"));
  const auto lin = f.get<float, 2>("model.4.weight");  // row-major (5, 144): Lux (144, 5)
  const auto& w = ps.get<"layer_5">().get<"weight">();
  CHECK(lin(7, 3) == w(3, 7));
  CHECK(same_bytes(f.get<float, 2>("model_io.y"), y));
}
