// Test support: reads the PyTorch fixtures written by tests/fixtures/*.py.
//
// File format (text, one file per kernel family, committed so CI needs no PyTorch):
//   # comment lines
//   <name> <rank> <d1> ... <drank>      sizes in Lux (column-major) order
//   <v1> <v2> ...                       numel values on one line, column-major order
// A PyTorch row-major tensor of shape (n0, ..., nk) is written with Lux shape
// (nk, ..., n0) and its memory order unchanged — the reinterpretation DESIGN.md §3
// describes. Scalars are rank-0 records.
#pragma once

#include <fstream>
#include <lux/core/tensor.hpp>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef LUX_TEST_FIXTURE_DIR
#define LUX_TEST_FIXTURE_DIR "tests/fixtures"
#endif

namespace lux_test {

class fixture_file {
 public:
  explicit fixture_file(const std::string& name) : path_(std::string(LUX_TEST_FIXTURE_DIR) + "/" + name) {
    std::ifstream in(path_);
    if (!in) throw lux::io_error("fixture_file: cannot open " + path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream head(line);
      record r;
      std::size_t rank = 0;
      head >> r.name >> rank;
      r.shape.resize(rank);
      for (auto& s : r.shape) head >> s;
      if (!head) throw lux::io_error("fixture_file: bad header line in " + path_ + ": " + line);
      std::size_t n = 1;
      for (auto s : r.shape) n *= static_cast<std::size_t>(s);
      if (!std::getline(in, line)) throw lux::io_error("fixture_file: missing values for " + r.name);
      std::istringstream vals(line);
      r.values.resize(n);
      for (auto& v : r.values) vals >> v;
      if (!vals) throw lux::io_error("fixture_file: too few values for " + r.name + " in " + path_);
      records_[r.name] = std::move(r);
    }
  }

  bool has(const std::string& name) const { return records_.count(name) != 0; }

  template <class T, std::size_t N>
  lux::Tensor<T, N> tensor(const std::string& name) const {
    const record& r = get(name);
    if (r.shape.size() != N)
      throw lux::io_error("fixture " + name + ": rank " + std::to_string(r.shape.size()) +
                          ", expected " + std::to_string(N));
    lux::shape_t<N> shape{};
    for (std::size_t d = 0; d < N; ++d) shape[d] = r.shape[d];
    auto t = lux::Tensor<T, N>::uninitialized(shape);
    for (std::size_t i = 0; i < r.values.size(); ++i) t.data()[i] = static_cast<T>(r.values[i]);
    return t;
  }
  double scalar(const std::string& name) const {
    const record& r = get(name);
    if (r.values.size() != 1) throw lux::io_error("fixture " + name + " is not a scalar");
    return r.values[0];
  }

 private:
  struct record {
    std::string name;
    std::vector<lux::index_t> shape;
    std::vector<double> values;
  };
  const record& get(const std::string& name) const {
    auto it = records_.find(name);
    if (it == records_.end()) throw lux::io_error("fixture " + name + " not found in " + path_);
    return it->second;
  }
  std::string path_;
  std::map<std::string, record> records_;
};

}  // namespace lux_test
