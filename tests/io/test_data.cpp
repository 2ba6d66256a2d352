// Tests of lux/io/idx.hpp (IDX reader, MNIST-like datasets) and lux/io/dataloader.hpp.
// The IDX fixtures are written by tests/fixtures/make_idx_fixtures.py; values are recomputed
// here from the formulas that script uses.
#include "lux/io/dataloader.hpp"
#include "lux/io/idx.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ranges>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#ifndef LUX_TEST_FIXTURE_DIR
#define LUX_TEST_FIXTURE_DIR "tests/fixtures"
#endif

namespace {

using lux::index_t;
using lux::Tensor;

std::filesystem::path idx_dir() { return std::filesystem::path(LUX_TEST_FIXTURE_DIR) / "idx"; }
std::filesystem::path fixture(const std::string& name) { return idx_dir() / name; }

/// Row-major element i of the (3, 4, 5) image fixture.
std::uint8_t image_value(index_t i) { return static_cast<std::uint8_t>((7 * i + 3) % 256); }

void check_image_fixture(const Tensor<std::uint8_t, 3>& t) {
  REQUIRE(t.shape() == lux::shape_t<3>{5, 4, 3});  // IDX (n, rows, cols) = (3, 4, 5), reversed
  for (index_t n = 0; n < 3; ++n)
    for (index_t r = 0; r < 4; ++r)
      for (index_t c = 0; c < 5; ++c) REQUIRE(t(c, r, n) == image_value(n * 20 + r * 5 + c));
}

// Polls `cond` for up to 10 s; true once it holds.
template <class F>
bool eventually(F cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

/// x(:, i) = (i, 1000 + i), y(i) = i: an observation's columns and label agree.
struct xy_data {
  Tensor<float, 2> x;
  Tensor<std::int64_t, 1> y;
  explicit xy_data(index_t n) : x(2, n), y(n) {
    for (index_t i = 0; i < n; ++i) {
      x(0, i) = static_cast<float>(i);
      x(1, i) = static_cast<float>(1000 + i);
      y(i) = i;
    }
  }
};

/// Checks a batch is aligned (x and y describe the same observations) and returns its labels.
std::vector<index_t> labels_of(const Tensor<float, 2>& x, const Tensor<std::int64_t, 1>& y) {
  REQUIRE(x.size(0) == 2);
  REQUIRE(x.size(1) == y.size(0));
  std::vector<index_t> out;
  for (index_t j = 0; j < y.size(0); ++j) {
    REQUIRE(x(0, j) == static_cast<float>(y(j)));
    REQUIRE(x(1, j) == static_cast<float>(1000 + y(j)));
    out.push_back(y(j));
  }
  return out;
}

/// Runs one epoch and returns the labels in visiting order and the batch sizes.
template <class Loader>
std::pair<std::vector<index_t>, std::vector<index_t>> run_epoch(Loader& loader) {
  std::vector<index_t> seen, sizes;
  for (const auto& [x, y] : loader) {
    const auto b = labels_of(x, y);
    seen.insert(seen.end(), b.begin(), b.end());
    sizes.push_back(static_cast<index_t>(b.size()));
  }
  return {seen, sizes};
}

std::vector<index_t> iota_vector(index_t lo, index_t hi) {
  std::vector<index_t> v;
  for (index_t i = lo; i < hi; ++i) v.push_back(i);
  return v;
}

std::vector<index_t> sorted(std::vector<index_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// A data container whose getobs records how many batches it gathered and on which thread,
/// and throws at a chosen observation: batch k's labels are its observation indices.
struct observed_source {
  using batch_type = Tensor<std::int64_t, 1>;
  index_t n = 0;
  index_t throw_at = -1;
  std::atomic<index_t>* gathered = nullptr;
  std::atomic<bool>* off_main_thread = nullptr;
  std::thread::id main_thread = std::this_thread::get_id();

  index_t numobs() const { return n; }
  void getobs(batch_type& out, std::span<const index_t> idx) const {
    if (out.size(0) != static_cast<index_t>(idx.size()))
      out = batch_type::uninitialized({static_cast<index_t>(idx.size())});
    for (std::size_t k = 0; k < idx.size(); ++k) {
      if (idx[k] == throw_at)
        throw std::runtime_error("observed_source: observation " + std::to_string(throw_at) +
                                 " is broken");
      out[static_cast<index_t>(k)] = idx[k];
    }
    if (off_main_thread && std::this_thread::get_id() != main_thread) *off_main_thread = true;
    if (gathered) ++*gathered;
  }
};
static_assert(lux::observation_container<observed_source>);
static_assert(std::ranges::input_range<lux::DataLoader<Tensor<float, 2>>>);
static_assert(
    std::ranges::input_range<lux::DataLoader<std::tuple<Tensor<float, 2>, Tensor<int, 1>>>>);

}  // namespace

// =============================================================================================
// IDX reader

TEST_CASE("read_idx: u8 images come back in Lux order with the same bytes", "[io][idx]") {
  check_image_fixture(lux::read_idx<std::uint8_t, 3>(fixture("images_u8.idx3.gz")));

  const lux::idx_array a = lux::read_idx(fixture("images_u8.idx3.gz"));
  CHECK(a.type == lux::idx_type::u8);
  CHECK(a.shape == std::vector<index_t>{5, 4, 3});
  CHECK(a.rank() == 3);
  CHECK(a.numel() == 60);
  REQUIRE(a.bytes.size() == 60);
  for (index_t i = 0; i < 60; ++i) CHECK(std::to_integer<int>(a.bytes[i]) == image_value(i));
  check_image_fixture(a.to_tensor<std::uint8_t, 3>());
  CHECK_THROWS_AS((a.to_tensor<float, 3>()), lux::argument_error);
  CHECK_THROWS_AS((a.to_tensor<std::uint8_t, 2>()), lux::argument_error);

  const auto info = lux::read_idx_info(fixture("images_u8.idx3.gz"));
  CHECK(info.type == lux::idx_type::u8);
  CHECK(info.shape == std::vector<index_t>{5, 4, 3});
}

TEST_CASE("read_idx: uncompressed files and concatenated gzip members read the same", "[io][idx]") {
  check_image_fixture(lux::read_idx<std::uint8_t, 3>(fixture("images_u8.idx3")));
  check_image_fixture(lux::read_idx<std::uint8_t, 3>(fixture("two_members.idx3.gz")));
  const auto labels = lux::read_idx<std::uint8_t, 1>(fixture("labels_u8.idx1.gz"));
  REQUIRE(labels.shape() == lux::shape_t<1>{3});
  CHECK(labels(0) == 7);
  CHECK(labels(1) == 0);
  CHECK(labels(2) == 9);
  const auto empty = lux::read_idx<std::uint8_t, 2>(fixture("empty_u8.idx2.gz"));
  CHECK(empty.shape() == lux::shape_t<2>{7, 0});
}

TEST_CASE("read_idx: every element type decodes big-endian data exactly", "[io][idx]") {
  const auto i8 = lux::read_idx<std::int8_t, 1>(fixture("values_i8.idx1.gz"));
  CHECK(std::vector<int>(i8.begin(), i8.end()) == std::vector<int>{-128, -1, 127});

  const auto i16 = lux::read_idx<std::int16_t, 1>(fixture("values_i16.idx1.gz"));
  CHECK(std::vector<int>(i16.begin(), i16.end()) == std::vector<int>{-32768, -1, 258, 32767});

  const auto i32 = lux::read_idx<std::int32_t, 2>(fixture("values_i32.idx2.gz"));
  REQUIRE(i32.shape() == lux::shape_t<2>{2, 2});
  CHECK(i32(0, 0) == INT32_MIN);  // row-major (0, 0)
  CHECK(i32(1, 0) == -1);         // row-major (0, 1)
  CHECK(i32(0, 1) == 16909060);   // 0x01020304, row-major (1, 0)
  CHECK(i32(1, 1) == INT32_MAX);

  const auto f32 = lux::read_idx<float, 2>(fixture("values_f32.idx2.gz"));
  REQUIRE(f32.shape() == lux::shape_t<2>{3, 2});  // IDX (2, 3)
  for (index_t r = 0; r < 2; ++r)
    for (index_t c = 0; c < 3; ++c)
      CHECK(f32(c, r) == static_cast<float>(0.5 * static_cast<double>(r * 3 + c) - 1.25));

  const auto f64 = lux::read_idx<double, 3>(fixture("values_f64.idx3.gz"));
  REQUIRE(f64.shape() == lux::shape_t<3>{2, 2, 1});
  CHECK(f64[0] == 3.141592653589793);
  CHECK(f64[1] == 0.0);
  CHECK(std::signbit(f64[1]));
  CHECK(f64[2] == 1e300);
  CHECK(f64[3] == -2.5);

  const auto any = lux::read_idx(fixture("values_f64.idx3.gz"));
  CHECK(any.type == lux::idx_type::f64);
  CHECK(lux::idx_type_name(any.type) == "f64");
  CHECK(lux::idx_type_size(any.type) == 8);
  const auto t = any.to_tensor<double, 3>();
  CHECK(t[3] == -2.5);
}

TEST_CASE("read_idx: a typed read checks the element type and rank", "[io][idx]") {
  const auto path = fixture("images_u8.idx3.gz");
  CHECK_THROWS_AS((lux::read_idx<float, 3>(path)), lux::io_error);
  CHECK_THROWS_WITH((lux::read_idx<float, 3>(path)),
                    Catch::Contains("images_u8.idx3.gz") && Catch::Contains("expected f32") &&
                        Catch::Contains("found u8") && Catch::Contains("(3, 4, 5)"));
  CHECK_THROWS_WITH((lux::read_idx<std::uint8_t, 2>(path)),
                    Catch::Contains("of rank 2") && Catch::Contains("found u8"));
}

TEST_CASE("read_idx: malformed files raise io_error naming the problem", "[io][idx]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"does_not_exist.idx3.gz", "no such file"},
      {"bad_truncated_gzip.idx3.gz", "truncated"},
      {"bad_truncated_trailer.idx3.gz", "gzip stream is truncated"},
      {"bad_crc.idx3.gz", "incorrect data check"},
      {"bad_garbage_after_gzip.idx3.gz", "after the gzip stream"},
      {"bad_magic.idx3.gz", "bad IDX magic"},
      {"bad_not_idx.txt", "neither gzip"},
      {"bad_empty.idx", "the file is empty"},
      {"bad_unknown_type.idx1.gz", "unknown IDX element type code 10"},
      {"bad_rank0.idx.gz", "IDX rank 0"},
      {"bad_rank9.idx.gz", "IDX rank 9"},
      {"bad_truncated_header.idx3.gz", "truncated header"},
      {"bad_truncated_data.idx3.gz", "truncated data"},
      {"bad_truncated_data.idx3", "truncated data"},
      {"bad_trailing_bytes.idx3.gz", "3 unexpected bytes after the 60 data bytes"},
      {"bad_trailing_bytes.idx3", "3 unexpected bytes after the 60 data bytes"},
      {"bad_huge_dims.idx2.gz", "deflate expands at most 1032:1"},
      {"bad_huge_dims.idx2", "truncated data"},
      {"bad_overflow_dims.idx3.gz", "overflow"},
  };
  for (const auto& [name, message] : cases) {
    INFO(name);
    CHECK_THROWS_AS(lux::read_idx(fixture(name)), lux::io_error);
    CHECK_THROWS_WITH(lux::read_idx(fixture(name)),
                      Catch::Contains(name) && Catch::Contains(message));
    // The typed reader fails the same way for every file that is not a (3, 4, 5) u8 one.
    if (name != "bad_magic.idx3.gz")
      CHECK_THROWS_AS((lux::read_idx<std::uint8_t, 3>(fixture(name))), lux::io_error);
  }
  CHECK_THROWS_WITH(lux::read_idx(idx_dir()), Catch::Contains("not a regular file"));
}

// =============================================================================================
// MNIST-like datasets

TEST_CASE("load_mnist_like: images scaled to 0..1, labels as int64", "[io][mnist]") {
  for (const char* split : {"tiny", "plain"}) {
    INFO(split);
    const auto d = lux::load_mnist_like(idx_dir(), split);
    REQUIRE(d.images.shape() == lux::shape_t<4>{5, 4, 1, 3});
    REQUIRE(d.size() == 3);
    for (index_t n = 0; n < 3; ++n)
      for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 5; ++c)
          REQUIRE(d.images(c, r, 0, n) ==
                  static_cast<float>(image_value(n * 20 + r * 5 + c)) / 255.0f);
    CHECK(d.labels(0) == 7);
    CHECK(d.labels(1) == 0);
    CHECK(d.labels(2) == 9);
  }
  CHECK_THROWS_WITH(lux::load_mnist_like(idx_dir(), "mismatch"),
                    Catch::Contains("holds 3 images") && Catch::Contains("holds 2 labels"));
  CHECK_THROWS_WITH(lux::load_mnist_like(idx_dir(), "badlabel"),
                    Catch::Contains("label 10 of observation 1"));
  CHECK_NOTHROW(lux::load_mnist_like(idx_dir(), "badlabel", 11));
  CHECK_THROWS_WITH(
      lux::load_mnist_like(idx_dir(), "absent"),
      Catch::Contains("absent-images-idx3-ubyte.gz") && Catch::Contains("no such file"));
  CHECK_THROWS_AS(lux::load_fashion_mnist("validation", idx_dir()), lux::argument_error);
}

TEST_CASE("load_fashion_mnist: the Debian dataset-fashion-mnist files", "[io][mnist]") {
  const std::filesystem::path dir(lux::fashion_mnist_default_dir);
  if (!std::filesystem::is_directory(dir)) {
    WARN("skipped: " << dir << " is absent (Debian package dataset-fashion-mnist)");
    return;
  }
  std::ifstream expected(fixture("fashion_mnist_expected.txt"));
  REQUIRE(expected);
  std::string line;
  int splits = 0;
  while (std::getline(expected, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string split;
    index_t count = 0, sum = 0, weighted = 0;
    std::vector<index_t> first(16), classes(10);
    in >> split >> count;
    for (auto& v : first) in >> v;
    for (auto& v : classes) in >> v;
    in >> sum >> weighted;
    REQUIRE(in);
    INFO(split);

    const auto t0 = std::chrono::steady_clock::now();
    const auto d = lux::load_fashion_mnist(split);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    WARN("load_fashion_mnist(\"" << split << "\"): " << ms << " ms");

    REQUIRE(d.images.shape() == lux::shape_t<4>{28, 28, 1, count});
    REQUIRE(d.labels.shape() == lux::shape_t<1>{count});
    for (index_t i = 0; i < 16; ++i) CHECK(d.labels(i) == first[static_cast<std::size_t>(i)]);
    std::vector<index_t> hist(10);
    for (index_t i = 0; i < count; ++i) {
      REQUIRE((d.labels(i) >= 0 && d.labels(i) < 10));
      ++hist[static_cast<std::size_t>(d.labels(i))];
    }
    CHECK(hist == classes);
    // Image 0 in Lux order (W, H) is the row-major 28 x 28 image: the same linear order.
    index_t s = 0, w = 0;
    for (index_t i = 0; i < 28 * 28; ++i) {
      const float v = d.images[i];
      REQUIRE((v >= 0.0f && v <= 1.0f));
      const auto p = static_cast<index_t>(std::lround(v * 255.0f));
      s += p;
      w += i * p;
    }
    CHECK(s == sum);
    CHECK(w == weighted);
    ++splits;

    if (split == "train") {  // one shuffled epoch over the real thing
      const auto t1 = std::chrono::steady_clock::now();
      lux::DataLoader loader(std::tie(d.images, d.labels),
                             {.batchsize = 256, .shuffle = true, .rng = lux::rng(1)});
      index_t seen = 0, batches = 0;
      for (const auto& [x, y] : loader) {
        REQUIRE(x.shape() == lux::shape_t<4>{28, 28, 1, y.size(0)});
        seen += y.size(0);
        ++batches;
      }
      const double epoch_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
      WARN("one shuffled epoch, batchsize 256, prefetch: " << epoch_ms << " ms");
      CHECK(seen == count);
      CHECK(batches == loader.size());
      CHECK(batches == 235);
    }
  }
  CHECK(splits == 2);
}

// =============================================================================================
// DataLoader

TEST_CASE("DataLoader: batch count with and without partial", "[io][dataloader]") {
  xy_data d(10);
  for (bool prefetch : {true, false}) {
    INFO("prefetch " << prefetch);
    lux::DataLoader partial(std::tie(d.x, d.y), {.batchsize = 3, .prefetch = prefetch});
    CHECK(partial.size() == 4);
    CHECK(partial.numobs() == 10);
    auto [seen, sizes] = run_epoch(partial);
    CHECK(sizes == std::vector<index_t>{3, 3, 3, 1});
    CHECK(seen == iota_vector(0, 10));

    lux::DataLoader full(std::tie(d.x, d.y),
                         {.batchsize = 3, .partial = false, .prefetch = prefetch});
    CHECK(full.size() == 3);
    std::tie(seen, sizes) = run_epoch(full);
    CHECK(sizes == std::vector<index_t>{3, 3, 3});
    CHECK(seen == iota_vector(0, 9));

    lux::DataLoader exact(std::tie(d.x, d.y), {.batchsize = 5, .partial = false});
    CHECK(exact.size() == 2);
    lux::DataLoader none(std::tie(d.x, d.y), {.batchsize = 11, .partial = false});
    CHECK(none.size() == 0);
    CHECK(run_epoch(none).first.empty());
    lux::DataLoader one(std::tie(d.x, d.y), {.batchsize = 11});
    CHECK(run_epoch(one).second == std::vector<index_t>{10});
    lux::DataLoader singles(std::tie(d.x, d.y));  // MLUtils' default batchsize = 1
    CHECK(singles.size() == 10);
  }
}

TEST_CASE("DataLoader: data forms, ownership and argument checks", "[io][dataloader]") {
  xy_data d(6);
  SECTION("one lvalue array is referenced and yields a Tensor") {
    lux::DataLoader loader(d.x, {.batchsize = 4});
    static_assert(std::is_same_v<decltype(loader)::batch_type, Tensor<float, 2>>);
    d.x(0, 5) = 42.0f;  // the loader sees the caller's array
    std::vector<float> firsts;
    for (const Tensor<float, 2>& x : loader)
      for (index_t j = 0; j < x.size(1); ++j) firsts.push_back(x(0, j));
    CHECK(firsts == std::vector<float>{0, 1, 2, 3, 4, 42});
  }
  SECTION("an rvalue tuple is moved in") {
    const float* data = d.x.data();
    lux::DataLoader loader(std::tuple(std::move(d.x), std::move(d.y)), {.batchsize = 4});
    static_assert(std::is_same_v<decltype(loader)::batch_type,
                                 std::tuple<Tensor<float, 2>, Tensor<std::int64_t, 1>>>);
    CHECK(d.x.data() == nullptr);
    CHECK(data != nullptr);
    CHECK(run_epoch(loader).first == iota_vector(0, 6));
  }
  SECTION("pairs and views") {
    lux::DataLoader loader(std::pair(d.x.cview(), d.y.view()), {.batchsize = 4});
    static_assert(std::is_same_v<decltype(loader)::batch_type,
                                 std::pair<Tensor<float, 2>, Tensor<std::int64_t, 1>>>);
    CHECK(run_epoch(loader).first == iota_vector(0, 6));
    // A 4-d image batch keeps its leading dimensions.
    Tensor<float, 4> img(2, 3, 1, 6);
    for (index_t i = 0; i < img.numel(); ++i) img[i] = static_cast<float>(i);
    lux::DataLoader images(img, {.batchsize = 4, .shuffle = true, .rng = lux::rng(3)});
    const auto order = images.observation_order(0);
    index_t k = 0;
    for (const auto& x : images) {
      REQUIRE(x.shape() == lux::shape_t<4>{2, 3, 1, k == 0 ? 4 : 2});
      for (index_t j = 0; j < x.size(3); ++j)
        for (index_t e = 0; e < 6; ++e)
          REQUIRE(x[j * 6 + e] ==
                  static_cast<float>(order[static_cast<std::size_t>(k * 4 + j)] * 6 + e));
      ++k;
    }
    CHECK(k == 2);
  }
  SECTION("argument errors") {
    Tensor<std::int64_t, 1> short_y(5);
    CHECK_THROWS_WITH(lux::DataLoader(std::tie(d.x, short_y)),
                      Catch::Contains("array 0 has 6, array 1 has 5"));
    CHECK_THROWS_AS(lux::DataLoader(std::tie(d.x, short_y)), lux::argument_error);
    CHECK_THROWS_AS(lux::DataLoader(d.x, {.batchsize = 0}), lux::argument_error);
    CHECK_THROWS_AS(lux::DataLoader(d.x, {.shard = {.rank = 2, .nranks = 2}}), lux::argument_error);
  }
}

TEST_CASE("DataLoader: shuffle visits every observation once, reproducibly per epoch",
          "[io][dataloader]") {
  xy_data d(103);
  const lux::dataloader_options opts{.batchsize = 10, .shuffle = true, .rng = lux::rng(2024)};
  lux::DataLoader a(std::tie(d.x, d.y), opts);
  lux::DataLoader b(std::tie(d.x, d.y),
                    {.batchsize = 10, .shuffle = true, .rng = lux::rng(2024), .prefetch = false});
  std::vector<std::vector<index_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    CHECK(a.epoch() == static_cast<std::uint64_t>(e));
    const auto order = a.observation_order(static_cast<std::uint64_t>(e));
    auto [seen, sizes] = run_epoch(a);
    CHECK(sorted(seen) == iota_vector(0, 103));
    CHECK(seen == order);
    CHECK(sizes.size() == 11);
    CHECK(run_epoch(b).first == seen);  // same rng, same epoch: same order (prefetch or not)
    epochs.push_back(seen);
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);
  CHECK(epochs[0] != iota_vector(0, 103));

  lux::DataLoader c(std::tie(d.x, d.y), {.batchsize = 10, .shuffle = true, .rng = lux::rng(2025)});
  CHECK(run_epoch(c).first != epochs[0]);

  // set_epoch resumes: a fresh loader asked for epoch 2 replays epoch 2.
  lux::DataLoader resumed(std::tie(d.x, d.y), opts);
  resumed.set_epoch(2);
  CHECK(run_epoch(resumed).first == epochs[2]);
  CHECK(resumed.epoch() == 3);

  // partial=false drops a different tail each epoch, never repeats an observation.
  lux::DataLoader dropping(
      std::tie(d.x, d.y), {.batchsize = 10, .shuffle = true, .partial = false, .rng = lux::rng(5)});
  std::set<index_t> dropped_union;
  for (int e = 0; e < 4; ++e) {
    const auto seen = run_epoch(dropping).first;
    REQUIRE(seen.size() == 100);
    CHECK(std::set<index_t>(seen.begin(), seen.end()).size() == 100);
    for (index_t i = 0; i < 103; ++i)
      if (std::find(seen.begin(), seen.end(), i) == seen.end()) dropped_union.insert(i);
  }
  CHECK(dropped_union.size() > 3);

  // The permutation is uniform enough: every observation lands first now and then.
  lux::DataLoader small(d.y, {.batchsize = 1, .shuffle = true, .rng = lux::rng(9)});
  std::vector<int> first_counts(103);
  for (std::uint64_t e = 0; e < 2000; ++e)
    ++first_counts[static_cast<std::size_t>(small.observation_order(e)[0])];
  CHECK(*std::min_element(first_counts.begin(), first_counts.end()) >= 3);
  CHECK(*std::max_element(first_counts.begin(), first_counts.end()) <= 50);
}

TEST_CASE("DataLoader: batch buffers are owned and reused across epochs", "[io][dataloader]") {
  xy_data d(10);
  lux::DataLoader loader(std::tie(d.x, d.y), {.batchsize = 3, .shuffle = true});
  std::set<const float*> buffers;
  for (int e = 0; e < 4; ++e)
    for (const auto& [x, y] : loader) {
      CHECK(x.data() != d.x.data());
      buffers.insert(x.data());
    }
  CHECK(buffers.size() == 3);  // two full batches in flight and the short last one
}

TEST_CASE("DataLoader: early break, abandoned epochs and destruction do not hang",
          "[io][dataloader]") {
  xy_data d(50);
  for (bool prefetch : {true, false}) {
    INFO("prefetch " << prefetch);
    lux::DataLoader loader(std::tie(d.x, d.y), {.batchsize = 4, .prefetch = prefetch});
    for (int e = 0; e < 3; ++e) {
      int k = 0;
      for (const auto& [x, y] : loader) {
        CHECK(y(0) == 4 * k);
        if (++k == 2) break;
      }
    }
    {
      auto it = loader.begin();  // an epoch abandoned by a new begin()
      ++it;
      auto it2 = loader.begin();
      CHECK(std::get<1>(*it2)(0) == 0);
      CHECK_THROWS_AS(++it, lux::argument_error);  // the stale iterator refuses to move
      ++it2;
      CHECK(std::get<1>(*it2)(0) == 4);
    }
    CHECK(run_epoch(loader).first == iota_vector(0, 50));
    {
      lux::DataLoader doomed(std::tie(d.x, d.y), {.batchsize = 4, .prefetch = prefetch});
      auto it = doomed.begin();
      ++it;
    }  // iterator, then loader destroyed mid-epoch
  }
}

TEST_CASE("DataLoader: an exception while gathering reaches the consumer at that batch",
          "[io][dataloader]") {
  for (bool prefetch : {true, false}) {
    INFO("prefetch " << prefetch);
    lux::DataLoader loader(observed_source{.n = 40, .throw_at = 25},
                           {.batchsize = 10, .prefetch = prefetch});
    for (int attempt = 0; attempt < 2; ++attempt) {  // the loader stays usable afterwards
      std::vector<index_t> delivered;
      try {
        for (const auto& y : loader) delivered.push_back(y(0));
        FAIL("no exception");
      } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "observed_source: observation 25 is broken");
      }
      CHECK(delivered == std::vector<index_t>{0, 10});  // batches 0 and 1 arrived intact
    }
    // Failing on the very first batch throws from begin().
    lux::DataLoader first(observed_source{.n = 40, .throw_at = 3},
                          {.batchsize = 10, .prefetch = prefetch});
    CHECK_THROWS_WITH(first.begin(), Catch::Contains("observation 3 is broken"));
    CHECK_THROWS_AS(first.begin(), std::runtime_error);
  }
}

TEST_CASE("DataLoader: prefetch gathers the next batch while the consumer holds the current one",
          "[io][dataloader]") {
  constexpr index_t n = 60, bs = 6, nb = 10;
  std::atomic<index_t> gathered{0};
  std::atomic<bool> off_main{false};
  lux::DataLoader loader(
      observed_source{.n = n, .gathered = &gathered, .off_main_thread = &off_main},
      {.batchsize = bs});
  REQUIRE(loader.size() == nb);
  for (int epoch = 0; epoch < 2; ++epoch) {
    gathered = 0;
    index_t k = 0;
    for (const auto& y : loader) {
      // Batch k is held here; the worker finishes batch k+1 without waiting for its release ...
      if (k + 1 < nb) REQUIRE(eventually([&] { return gathered.load() >= k + 2; }));
      // ... and goes no further: batch k+2 would need batch k's buffer.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      CHECK(gathered.load() == std::min(k + 2, nb));
      // Batch k was not overwritten while k+1 was gathered into the other buffer.
      for (index_t j = 0; j < bs; ++j) REQUIRE(y(j) == k * bs + j);
      ++k;
    }
    CHECK(k == nb);
  }
  CHECK(off_main.load());

  // Without prefetch, batch k+1 is gathered on the consumer's thread, on increment.
  std::atomic<index_t> sync_gathered{0};
  std::atomic<bool> sync_off_main{false};
  lux::DataLoader sync(
      observed_source{.n = n, .gathered = &sync_gathered, .off_main_thread = &sync_off_main},
      {.batchsize = bs, .prefetch = false});
  index_t k = 0;
  for (const auto& y : sync) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(sync_gathered.load() == k + 1);
    CHECK(y(0) == k * bs);
    ++k;
  }
  CHECK_FALSE(sync_off_main.load());
}

TEST_CASE("DataLoader: shards cover every observation exactly once across ranks",
          "[io][dataloader]") {
  // Lux's DistributedDataContainer: ceil(n / nranks) per rank, the last takes the rest.
  CHECK(lux::shard_range(10, {0, 4}) == lux::observation_range{0, 3});
  CHECK(lux::shard_range(10, {3, 4}) == lux::observation_range{9, 10});
  CHECK(lux::shard_range(10, {0, 1}) == lux::observation_range{0, 10});
  CHECK(lux::shard_range(0, {0, 1}) == lux::observation_range{0, 0});
  CHECK_THROWS_WITH(lux::shard_range(9, {3, 4}),
                    Catch::Contains("gets none of the 9") && Catch::Contains("at most 3 ranks"));
  CHECK_THROWS_AS(lux::shard_range(9, {4, 4}), lux::argument_error);
  CHECK_THROWS_AS(lux::shard_range(9, {0, 0}), lux::argument_error);
  CHECK_THROWS_AS(lux::shard_range(9, {-1, 2}), lux::argument_error);

  xy_data d(23);
  for (bool shuffle : {false, true}) {
    INFO("shuffle " << shuffle);
    constexpr index_t nranks = 4;  // 6, 6, 6, 5
    std::vector<index_t> all;
    for (index_t rank = 0; rank < nranks; ++rank) {
      lux::DataLoader loader(
          std::tie(d.x, d.y),
          {.batchsize = 4, .shuffle = shuffle, .rng = lux::rng(11), .shard = {rank, nranks}});
      const auto r = loader.range();
      CHECK(r.begin == rank * 6);
      CHECK(loader.numobs() == (rank == nranks - 1 ? 5 : 6));
      CHECK(loader.size() == 2);
      for (int e = 0; e < 2; ++e) {
        const auto seen = run_epoch(loader).first;
        CHECK(sorted(seen) == iota_vector(r.begin, r.end));  // shuffling stays in the shard
        if (e == 0) all.insert(all.end(), seen.begin(), seen.end());
      }
    }
    CHECK(sorted(all) == iota_vector(0, 23));
  }
}
