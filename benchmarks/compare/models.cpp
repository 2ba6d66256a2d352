// benchmarks/compare: whole models — luxcpp's layers (lux::Chain) against the same architecture
// in torch::nn, from the same initial weights — and whole training steps (forward, backward,
// softmax cross-entropy, Adam update): what users run, rather than one kernel at a time.
//
// The weights are luxcpp's (lux::setup), copied into the torch module in the order both list
// their parameters: a Lux (kw, kh, Cin, Cout) convolution kernel is torch's (Cout, Cin, kh, kw)
// over the same memory, flipped in both spatial dimensions (Lux's Conv is a true convolution,
// torch's a cross-correlation); a Lux (out, in) dense weight is the transpose of the row-major
// view; vectors are the same. Lux's FlattenLayer on (3, 3, 128, B) and torch's Flatten on
// (B, 128, 3, 3) order the 1152 features identically.
#include "../../examples/common/models.hpp"

#include <lux/training/losses.hpp>
#include <lux/training/optimisers.hpp>
#include <lux/training/train_state.hpp>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "common.hpp"

namespace compare {
namespace {

namespace nn = torch::nn;

/// Copies lux's parameter tree into the torch module (see the file comment); throws when the two
/// architectures do not list the same shapes.
template <class PS>
void copy_parameters(const PS& ps, nn::Module& m) {
  std::vector<torch::Tensor> src;
  lux::for_each_leaf(ps, [&](std::string_view, const auto& leaf) {
    constexpr std::size_t rank = std::tuple_size_v<std::remove_cvref_t<decltype(leaf.shape())>>;
    torch::Tensor t = as_torch(leaf);
    if constexpr (rank == 4) t = t.flip({2, 3});
    if constexpr (rank == 2) t = t.t();
    src.push_back(t.contiguous().clone());
  });
  auto dst = m.parameters();
  if (src.size() != dst.size())
    throw std::runtime_error("compare: the lux and torch models have different parameter counts");
  torch::NoGradGuard ng;
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (src[i].sizes() != dst[i].sizes())
      throw std::runtime_error("compare: parameter " + std::to_string(i) +
                               " has a different shape in the lux and torch models");
    dst[i].copy_(src[i]);
  }
}

nn::Sequential torch_lenet() {
  return nn::Sequential(nn::Conv2d(1, 6, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(6, 16, 5),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(256, 120),
                        nn::ReLU(), nn::Linear(120, 84), nn::ReLU(), nn::Linear(84, 10));
}

nn::Sequential torch_mlp(index_t in, index_t hidden1, index_t hidden2) {
  if (hidden2 == 0)
    return nn::Sequential(nn::Linear(in, hidden1), nn::ReLU(), nn::Linear(hidden1, 10));
  return nn::Sequential(nn::Linear(in, hidden1), nn::ReLU(), nn::Linear(hidden1, hidden2),
                        nn::ReLU(), nn::Linear(hidden2, 10));
}

nn::Sequential torch_fashion_cnn() {
  const auto conv = [](int64_t i, int64_t o) {
    return nn::Conv2d(nn::Conv2dOptions(i, o, 3).padding(1).bias(false));
  };
  return nn::Sequential(conv(1, 32), nn::BatchNorm2d(32), nn::ReLU(), nn::MaxPool2d(2),
                        conv(32, 64), nn::BatchNorm2d(64), nn::ReLU(), nn::MaxPool2d(2),
                        conv(64, 128), nn::BatchNorm2d(128), nn::ReLU(), nn::MaxPool2d(2),
                        nn::Flatten(), nn::Linear(1152, 128), nn::ReLU(), nn::Linear(128, 10));
}

/// A model's forward (lux::apply; torch under NoGradGuard) or forward + backward (lux::pullback
/// and back(dy), giving dx and every parameter gradient; torch's backward with x requiring a
/// gradient). The check compares y, or dx.
template <class Model, std::size_t N>
workload layers(const std::string& name, const Model& model, const lux::shape_t<N>& xs,
                nn::Sequential seq, double macs, bool backward) {
  lux::rng r(1);
  auto [ps0, st0] = lux::setup<float>(r, model);
  auto ps = std::make_shared<decltype(ps0)>(std::move(ps0));
  auto st = std::make_shared<decltype(st0)>(std::move(st0));
  auto net = seq.ptr();
  copy_parameters(*ps, *net);
  auto x = std::make_shared<lux::Tensor<float, N>>(uniform<float, N>(xs, 40));
  auto y = std::make_shared<lux::Tensor<float, 2>>(lux::apply(model, *x, *ps, *st).first);
  auto dy = std::make_shared<lux::Tensor<float, 2>>(uniform<float, 2>(y->shape(), 41));
  auto dx = std::make_shared<lux::Tensor<float, N>>();
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x).detach().requires_grad_(backward));
  auto tdy = std::make_shared<torch::Tensor>(as_torch(*dy));
  auto ty = std::make_shared<torch::Tensor>();
  std::function<void()> run_lux, run_torch;
  if (!backward) {
    run_lux = [=] { *y = lux::apply(model, *x, *ps, *st).first; };
    run_torch = [=] {
      torch::NoGradGuard ng;
      *ty = net->forward(*tx);
    };
  } else {
    run_lux = [=] {
      auto [out, st2, back] = lux::pullback(model, *x, *ps, *st);
      auto g = back(*dy);
      *dx = std::move(g.dx);
      *y = std::move(out);
    };
    run_torch = [=] {
      net->zero_grad();
      tx->mutable_grad() = torch::Tensor();
      *ty = net->forward(*tx);
      ty->backward(*tdy);
    };
  }
  return {name + (backward ? " fwd+bwd" : " fwd"),
          workload::compute,
          2.0 * macs * (backward ? 3 : 1),
          run_lux,
          run_torch,
          [=] {
            run_lux();
            run_torch();
            return backward ? rel_error(dx->data(), tx->grad()) : rel_error(y->data(), *ty);
          },
          {}};
}

/// One Lux.Training step (lux::single_train_step: forward, pullback, softmax cross-entropy on
/// logits, Adam 1e-3) against torch's (zero_grad, forward, cross_entropy, backward, Adam.step),
/// both on the same batch every step. The check takes two steps in each from the same weights and
/// compares both losses (the second one depends on the first Adam update).
template <class Model, std::size_t N>
workload train_step(const std::string& name, const Model& model, const lux::shape_t<N>& xs,
                    nn::Sequential seq, double macs) {
  lux::rng r(1);
  auto [ps, st] = lux::setup<float>(r, model);
  auto net = seq.ptr();
  copy_parameters(ps, *net);
  using TS = decltype(lux::TrainState(model, ps, st, lux::optim::Adam{1e-3}));
  auto ts = std::make_shared<TS>(model, ps, st, lux::optim::Adam{1e-3});
  const index_t batch = xs[N - 1];
  auto x = std::make_shared<lux::Tensor<float, N>>(uniform<float, N>(xs, 42));
  auto labels = std::make_shared<lux::Tensor<std::int64_t, 1>>(lux::shape_t<1>{batch});
  const lux::rng lr(43);
  for (index_t i = 0; i < batch; ++i)
    (*labels)[i] = static_cast<std::int64_t>(lr.bits_at(std::uint64_t(i)) % 10);
  auto tx = std::make_shared<torch::Tensor>(as_torch(*x));
  auto tlabels =
      std::make_shared<torch::Tensor>(torch::from_blob(labels->data(), {batch}, torch::kLong));
  auto opt =
      std::make_shared<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
  auto lux_loss = std::make_shared<double>(0), torch_loss = std::make_shared<double>(0);
  const auto run_lux = [=] {
    const lux::CrossEntropyLoss<> loss({.logits = true});
    *lux_loss = lux::single_train_step(loss, std::tie(*x, *labels), *ts).loss;
  };
  const auto run_torch = [=] {
    opt->zero_grad();
    auto l = torch::nn::functional::cross_entropy(net->forward(*tx), *tlabels);
    l.backward();
    opt->step();
    *torch_loss = l.template item<double>();
  };
  return {name,
          workload::compute,
          2.0 * macs * 3,
          run_lux,
          run_torch,
          [=] {
            double worst = 0;
            for (int step = 0; step < 2; ++step) {
              run_lux();
              run_torch();
              worst = std::max(
                  worst, std::abs(*lux_loss - *torch_loss) / std::max(1.0, std::abs(*torch_loss)));
            }
            return worst;
          },
          {}};
}

}  // namespace

std::vector<workload> model_workloads() {
  // Multiply-adds per sample.
  const double lenet =
      24.0 * 24 * 6 * 25 + 8.0 * 8 * 16 * 150 + 256.0 * 120 + 120.0 * 84 + 84.0 * 10;
  const double mlp_small = 784.0 * 256 + 256.0 * 10;
  const double mlp = 784.0 * 512 + 512.0 * 512 + 512.0 * 10;
  const double cnn =
      28.0 * 28 * 32 * 9 + 14.0 * 14 * 64 * 288 + 7.0 * 7 * 128 * 576 + 1152.0 * 128 + 128.0 * 10;
  const auto lux_lenet = lux::Chain(lux::Conv({5, 5}, {1, 6}, lux::relu{}), lux::MaxPool({2, 2}),
                                    lux::Conv({5, 5}, {6, 16}, lux::relu{}), lux::MaxPool({2, 2}),
                                    lux::FlattenLayer{}, lux::Dense({256, 120}, lux::relu{}),
                                    lux::Dense({120, 84}, lux::relu{}), lux::Dense({84, 10}));
  const auto lux_mlp_small = lux::Chain(lux::Dense({784, 256}, lux::relu{}), lux::Dense({256, 10}));
  std::vector<workload> all;
  for (bool backward : {false, true})
    all.push_back(layers("LeNet B64 (layers)", lux_lenet, lux::shape_t<4>{28, 28, 1, 64},
                         torch_lenet(), lenet * 64, backward));
  all.push_back(layers("MLP 784-256-10 B256 (layers)", lux_mlp_small, lux::shape_t<2>{784, 256},
                       torch_mlp(784, 256, 0), mlp_small * 256, true));
  all.push_back(train_step("train step: MLP 784-512-512-10 B128, Adam",
                           lux_examples::mlp_784_512_512_10(), lux::shape_t<2>{784, 128},
                           torch_mlp(784, 512, 512), mlp * 128));
  all.push_back(train_step("train step: Fashion-MNIST CNN B128, Adam",
                           lux_examples::fashion_mnist_cnn(), lux::shape_t<4>{28, 28, 1, 128},
                           torch_fashion_cnn(), cnn * 128));
  return all;
}

}  // namespace compare
