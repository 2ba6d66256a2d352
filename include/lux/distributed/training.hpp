// luxcpp — data-parallel training on any lux::distributed backend: DistributedOptimizer,
// synchronize, and the sharded DataLoader (Lux's DistributedOptimizer, synchronize!! and
// DistributedDataContainer).
//
//   lux::distributed::mpi_backend backend;
//   auto [ps, st] = lux::setup<float>(rng, model);
//   lux::TrainState ts(model, ps, st,
//                      lux::distributed::DistributedOptimizer(backend, lux::optim::Adam{1e-3}));
//   lux::distributed::synchronize(backend, ts);             // rank 0's parameters, states, ...
//   auto loader = lux::distributed::sharded_loader(backend, std::tie(x, y), {.batchsize = 32});
//   for (const auto& [xb, yb] : loader) lux::single_train_step(loss, std::tie(xb, yb), ts);
//
// * DistributedOptimizer(backend, rule) is an optimisation rule: the gradients are averaged over
//   the ranks with ONE all-reduce over the flat gradient buffer per update (out of place, into a
//   workspace allocated at setup, so the caller's gradients are not modified), then `rule` is
//   applied. Its setup checks that every rank has the same parameter layout. Its state and
//   hyperparameters are the wrapped rule's (adjust, schedules and checkpoints work unchanged).
//   The average is Lux's: the mean of the ranks' gradients, which equals the gradient of the
//   concatenated batch when every rank's batch has the same size (sharded_loader with
//   partial = false guarantees it).
// * synchronize(backend, x, root): x = a tree, a flat_tree, an optimiser state or a whole
//   TrainState (parameters, states, optimiser state and step), broadcast from root.
// * sharded_loader(backend, data, options): a DataLoader over this rank's contiguous shard
//   (ceil(n / ranks) observations each, the last rank the rest, as Lux's
//   DistributedDataContainer). It checks that every rank gets the same number of batches —
//   otherwise the ranks would call different numbers of collectives and hang — and throws
//   distributed_error on every rank if not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/distributed/common.hpp"
#include "lux/io/dataloader.hpp"
#include "lux/training/flat.hpp"
#include "lux/training/optim/state.hpp"
#include "lux/training/train_state.hpp"

LUX_NAMESPACE_BEGIN
namespace distributed {

/// Lux's DistributedOptimizer: gradients averaged across the backend's ranks, then `opt`.
template <class Backend, class Rule>
struct DistributedOptimizer {
  using wrapped_rule = Rule;
  static constexpr std::string_view name = "DistributedOptimizer";
  Backend backend;
  Rule opt;
  DistributedOptimizer(Backend b, Rule rule) : backend(std::move(b)), opt(std::move(rule)) {}
};
template <class Backend, class Rule>
DistributedOptimizer(Backend, Rule) -> DistributedOptimizer<Backend, Rule>;

namespace detail {
/// A flat layout as the ranks compare it: every leaf's name, element type and shape.
template <class T>
std::string describe_flat(const flat_layout& l) {
  std::string out;
  for (const auto& e : l.entries()) {
    out += e.name;
    out += ' ';
    out += dtype_name<T>();
    out += ' ';
    out += format_shape(std::span<const index_t>(e.shape));
    out += '\n';
  }
  return out;
}
}  // namespace detail

}  // namespace distributed

namespace optim {
template <class Backend, class Rule, class T>
class rule_state<distributed::DistributedOptimizer<Backend, Rule>, T> {
  using dopt = distributed::DistributedOptimizer<Backend, Rule>;

 public:
  rule_state(const dopt& d, const flat_layout& l, const update_plan& plan)
      : inner_(d.opt, l, plan), averaged_(l) {
    static_assert(std::is_same_v<typename Backend::device_type, cpu>,
                  "lux::distributed::DistributedOptimizer: the optimiser runs on host buffers");
    distributed::detail::check_same_layout(d.backend, distributed::detail::describe_flat<T>(l),
                                           "DistributedOptimizer (setup)");
  }
  /// The wrapped rule's state (the averaged gradients are a workspace, not state).
  auto fields() noexcept { return inner_.fields(); }

  template <sink S, class Arch>
  void apply(const dopt& d, const step_args<T>& a) {
    d.backend.allreduce(a.dx, averaged_.data(), averaged_.size(), distributed::reduce_op::avg);
    inner_.template apply<S, Arch>(d.opt,
                                   step_args<T>{a.x, averaged_.data(), a.out, a.plan, a.layout});
  }

 private:
  rule_state<Rule, T> inner_;
  flat_buffer<T> averaged_;
};
}  // namespace optim

namespace distributed {

/// Lux's synchronize!!: every rank's x becomes root's. x: an array, a scalar or a tree.
template <class Backend, class X>
void synchronize(const Backend& b, X& x, int root = 0) {
  bcast(b, x, root);
}

/// A flat parameter tree: one broadcast of its buffer (after the layout check).
template <class Backend, class Tree>
void synchronize(const Backend& b, flat_tree<Tree>& x, int root = 0) {
  using T = typename flat_tree<Tree>::T;
  detail::check_root(b, root, "distributed::synchronize");
  detail::check_same_layout(b, detail::describe_flat<T>(x.layout()), "distributed::synchronize");
  b.bcast(x.buffer().data(), x.buffer().size(), root);
}

/// An optimiser state: its step count and every state buffer.
template <class Backend, class Rule, class T>
void synchronize(const Backend& b, optim::optimiser_state<Rule, T>& s, int root = 0) {
  auto tree = s.tree();
  bcast(b, tree, root);
}

/// A TrainState: parameters (one broadcast of the flat buffer), states, optimiser state, step.
template <class Backend, class Model, class PS, class ST, class Rule>
void synchronize(const Backend& b, TrainState<Model, PS, ST, Rule>& ts, int root = 0) {
  synchronize(b, ts.flat_parameters(), root);
  if constexpr (!std::is_same_v<std::remove_cvref_t<ST>, empty_tuple>) bcast(b, ts.states, root);
  synchronize(b, ts.optimizer_state(), root);
  b.bcast_host_bytes(&ts.step, sizeof(ts.step), root);
}

/// This rank's shard of the observations (for DataLoader's options).
template <class Backend>
data_shard shard_of(const Backend& b) {
  return {b.local_rank(), b.total_workers()};
}

/// A DataLoader over this rank's shard of `data` (see the file comment). Every rank must call
/// it; distributed_error on every rank when they would get different numbers of batches.
template <class Backend, class Data>
auto sharded_loader(const Backend& b, Data&& data, dataloader_options options = {}) {
  // Every rank must reach the agreement below, even one whose arguments are wrong: a local
  // error is carried to it, not thrown before it.
  std::string problem;
  index_t batches = -1;
  using L = decltype(DataLoader(std::forward<Data>(data), options));
  std::optional<L> loader;
  try {
    require<argument_error>(options.shard.rank == 0 && options.shard.nranks == 1,
                            "distributed::sharded_loader: options.shard is set by the backend");
    options.shard = shard_of(b);
    loader.emplace(std::forward<Data>(data), options);
    batches = loader->size();
  } catch (const error& e) {
    problem = e.what();
  }
  if (!b.all_equal(static_cast<std::uint64_t>(batches))) {
    const auto all = b.allgather(std::to_string(batches) + "\n" + problem);
    std::string msg = "distributed::sharded_loader: the ranks get different numbers of batches (";
    for (std::size_t r = 0; r < all.size(); ++r) {
      const auto nl = all[r].find('\n');
      msg += detail::concat(r ? ", " : "", "rank ", r, ": ", all[r].substr(0, nl));
      if (nl + 1 < all[r].size()) msg += detail::concat(" [", all[r].substr(nl + 1), "]");
    }
    msg +=
        "); every rank must take the same number of steps: use partial = false or a batch "
        "size that divides every shard";
    throw distributed_error(msg);
  }
  if (!problem.empty()) throw argument_error(problem);
  return std::move(*loader);
}

}  // namespace distributed
LUX_NAMESPACE_END
