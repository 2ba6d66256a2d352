// luxcpp — checkpoints in the safetensors format (https://github.com/huggingface/safetensors),
// readable by PyTorch (safetensors.torch.load_file) and by any safetensors reader.
//
//   auto [ps, st] = lux::setup<float>(rng, model);
//   lux::save("ckpt.safetensors", lux::named("params", ps), lux::named("states", st),
//             lux::safetensors_metadata{{"epoch", "3"}});
//   auto meta = lux::load("ckpt.safetensors", lux::named("params", ps), lux::named("states", st));
//   lux::safetensors_file f = lux::read_safetensors("ckpt.safetensors");
//   auto w = f.get<float, 4>("params.layer_1.weight");      // Lux order (kw, kh, Cin, Cout)
//
// API
// ---
//   save(path, args...)                    writes atomically (below); args, in any order: trees,
//                                          lux::named(prefix, tree), at most one name_map (tree
//                                          path → file name), at most one safetensors_metadata
//   serialize_safetensors(args...)         the same bytes in a std::vector<std::byte>
//   load(path, args...) → metadata         fills the trees in place (Tensor leaves, or
//   load(view, args...) → metadata         TensorView/StridedView leaves over a flat buffer);
//                                          args: trees, named parts, at most one name_map
//   read_safetensors(path) → safetensors_file   (owns the bytes)
//   parse_safetensors(bytes, source_name) → safetensors_view   (views them)
//       .entries(): name, dtype, torch_shape (file/PyTorch order), lux_shape (reversed), bytes
//       .find(name), .at(name), .metadata(), .get<T, N>(name) → Tensor<T, N>
//   named(prefix, tree); name_map{{file, tree, transform}, ...}; name_transform::{none,
//   transpose, ignore}; safetensors_dtype, safetensors_dtype_of<T>(), to_string(dtype).
//
// Names and shapes
// ----------------
// A leaf is stored under its dotted path (lux::for_each_leaf: `layer_2.running_mean`), prefixed
// by lux::named's name and '.'. Shapes are written in PyTorch's order, the reverse of Lux's
// column-major shape: the bytes are the same, so a Lux conv weight (kw, kh, Cin, Cout) opens in
// Python as a (Cout, Cin, kh, kw) tensor and an image batch (W, H, C, N) as (N, C, H, W).
// Element types: bool → BOOL, integers → I8…U64 by size and signedness, Eigen::half → F16,
// Eigen::bfloat16 → BF16, float → F32, double → F64. Non-tensor leaves:
//   bool          BOOL, shape []
//   integers      I64, shape [] (as PyTorch stores counters; load checks the value fits)
//   float, double F32 / F64, shape [] (Eigen::half, Eigen::bfloat16: F16 / BF16)
//   lux::rng      I64, shape [4] = {key word 0, key word 1, counter, position} (the 64-bit
//                 counter and cursor stored as their bit patterns), so load restores it exactly
// Other leaf types are a compile error naming what is supported. Tensors are written largest
// element first (then in tree order), the header padded with spaces to a multiple of 8 bytes, as
// the reference writer does, so every tensor is aligned to its element size within the file.
//
// load is strict: every leaf must receive a tensor of exactly its dtype and shape, and every
// tensor of the file must go to a leaf (or be ignored by a rule); otherwise io_error names the
// file and the tensor, and no leaf is changed (everything is checked before anything is
// written). The one allowance: an *empty* owning Tensor leaf (a state not materialized yet, such
// as VariationalHiddenDropout's mask before the first call) takes the file's shape. Malformed
// files are rejected as the reference reader rejects them (lux/io/safetensors/format.hpp lists
// the checks); no input makes the reader read out of bounds (fuzzed:
// tests/fuzz/fuzz_safetensors.cpp).
//
// Atomic writes (POSIX): the file is written to `.<name>.<pid>.<n>.tmp` in the same directory,
// fsynced, renamed over the target, and the directory fsynced. If anything fails, or the process
// dies, the previous file is intact (lux/io/safetensors/file_io.hpp).
//
// Foreign checkpoints: name_map
// -----------------------------
// A rule {file, tree, transform} says that the file's tensor `file` is the leaf `tree` (the full
// dotted path, lux::named prefix included); unmentioned names map to themselves. `transpose`
// (rank 2) reads the file's row-major (a, b) as Lux's column-major (a, b); `ignore` skips the
// file tensor and/or leaves the tree leaf as it is. The same map works for save, in reverse, so a
// Lux model can be exported under PyTorch's names. PyTorch → luxcpp, for a model
// nn.Sequential(Conv2d, BatchNorm2d, ReLU, Flatten, Linear) and
// lux::Chain(Conv(…, {.cross_correlation = true}), BatchNorm, relu, FlattenLayer, Dense):
//   PyTorch state_dict          luxcpp tree                rule
//   0.weight (Cout,Cin,kh,kw)   layer_1.weight (kw,kh,Cin,Cout)  none (a CrossCor: PyTorch's conv
//                                                           is a cross-correlation)
//   0.bias                      layer_1.bias               none
//   1.weight / 1.bias           layer_2.scale / .bias      none
//   1.running_mean / _var       layer_2.running_mean / _var   none (states)
//   1.num_batches_tracked       —                          {"1.num_batches_tracked", "", ignore}
//   —                           layer_2.training           {"", "layer_2.training", ignore}
//   4.weight (out, in)          layer_5.weight (out, in)   transpose (Linear is row-major
//                                                           (out, in); Dense is column-major)
//   4.bias                      layer_5.bias               none
// (Flatten agrees: PyTorch's row-major (N, C·H·W) is Lux's column-major (W·H·C, N).)
//   lux::name_map torch{{"0.weight", "layer_1.weight"}, ...,
//                       {"4.weight", "layer_5.weight", lux::name_transform::transpose}, ...};
//   lux::load("torch_model.safetensors", ps, st, torch);
#pragma once

#include "lux/io/safetensors/file_io.hpp"
#include "lux/io/safetensors/format.hpp"
#include "lux/io/safetensors/tree.hpp"
