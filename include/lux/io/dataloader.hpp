// luxcpp — DataLoader: mini-batches over arrays whose last dimension is the observation, with
// reproducible shuffling, background prefetch and data-parallel sharding.
//
// The interface is MLUtils.jl's DataLoader(data; batchsize=1, shuffle=false, partial=true, rng),
// the iterator Lux's training loops use:
//
//   lux::DataLoader loader(std::tie(images, labels),   // (28, 28, 1, N) and (N)
//                          {.batchsize = 128, .shuffle = true, .rng = lux::rng(42)});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (const auto& [x, y] : loader) {            // x: (28, 28, 1, 128), y: (128)
//       ... train on x, y ...
//     }
//
// * data is one array or a std::tuple / std::pair of arrays with equal observation counts
//   (argument_error otherwise). An lvalue lux::Tensor is referenced (no copy; it must outlive
//   the loader and stay unchanged while an epoch runs), an rvalue is moved in, a TensorView is
//   referenced. Any type with `index_t numobs() const` and `void getobs(batch_type& out,
//   std::span<const index_t> indices) const` is a data container too (MLUtils' numobs and
//   getobs!): a lazily decoded dataset, an augmentation. getobs may run on the prefetch thread.
// * Each iteration of `for (... : loader)` is one epoch. A batch is gathered along the last
//   dimension into buffers the loader owns and reuses (no allocation after the first epoch);
//   the iterator yields a const reference to it — a Tensor for one array, a std::tuple or
//   std::pair of Tensors otherwise, last dimension = the batch size — valid until the iterator
//   is incremented. Copy what must live longer.
// * batchsize >= 1. partial=false drops the last incomplete batch (as MLUtils). size() is the
//   number of batches of an epoch.
// * shuffle: epoch e visits the observations in a Fisher–Yates permutation drawn from
//   rng.fold_in(e), so the order of an epoch is a pure function of (rng, e): two loaders with
//   the same rng agree, a resumed run calls set_epoch(e) to continue where it stopped, and
//   observation_order(e) tells the order without iterating. Unlike MLUtils (which advances a
//   shared RNG), nothing depends on how many epochs ran before.
// * prefetch (default): a worker thread gathers batch k+1 while the consumer holds batch k
//   (double buffering; never more than one batch ahead). An exception thrown while gathering
//   is rethrown to the consumer where that batch would have been delivered. Leaving the loop
//   early (break, exception), starting a new epoch or destroying the loader stops and joins
//   the worker. prefetch=false gathers each batch on the consumer's thread, on increment.
// * shard = {rank, nranks}: the loader sees only rank's contiguous slice of the observations,
//   ceil(n / nranks) of them (the last rank takes the remainder), the partition of Lux's
//   DistributedUtils.DistributedDataContainer; shuffling permutes within the slice. A rank
//   left with no observations is an argument_error (Lux's partition fails there too).
//
// One consumer thread per loader; iterators must not outlive their loader.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lux/core/config.hpp"
#include "lux/core/error.hpp"
#include "lux/core/random.hpp"
#include "lux/core/shape.hpp"
#include "lux/core/tensor.hpp"

LUX_NAMESPACE_BEGIN

/// Which slice of the observations a data-parallel rank takes.
struct data_shard {
  index_t rank = 0;
  index_t nranks = 1;
};

/// A half-open range [begin, end) of observation indices.
struct observation_range {
  index_t begin = 0;
  index_t end = 0;
  index_t size() const noexcept { return end - begin; }
  friend bool operator==(const observation_range&, const observation_range&) = default;
};

/// The observations of `shard` among `nobs`: the rank-th run of ceil(nobs / nranks), the last
/// one shorter — Lux's DistributedDataContainer partition. argument_error for a rank outside
/// [0, nranks) or a rank left empty while nobs > 0.
inline observation_range shard_range(index_t nobs, data_shard shard) {
  require<argument_error>(nobs >= 0, "shard_range: the observation count must be >= 0, got ", nobs);
  require<argument_error>(shard.nranks >= 1, "shard_range: nranks must be >= 1, got ",
                          shard.nranks);
  require<argument_error>(shard.rank >= 0 && shard.rank < shard.nranks, "shard_range: rank ",
                          shard.rank, " is outside [0, ", shard.nranks, ")");
  const index_t per = nobs / shard.nranks + (nobs % shard.nranks != 0);
  const index_t lo = std::min(nobs, shard.rank * per);
  const index_t hi = std::min(nobs, lo + per);
  require<argument_error>(hi > lo || nobs == 0, "shard_range: rank ", shard.rank, " of ",
                          shard.nranks, " gets none of the ", nobs,
                          " observations (each rank takes ", "ceil(", nobs, " / ", shard.nranks,
                          ") = ", per, "), so at most ", per ? nobs / per + (nobs % per != 0) : 0,
                          " ranks can share them");
  return {lo, hi};
}

/// The options of DataLoader, in the order of C++20 designated initializers:
///   {.batchsize = 64, .shuffle = true, .partial = false, .rng = lux::rng(7)}
struct dataloader_options {
  index_t batchsize = 1;
  bool shuffle = false;
  bool partial = true;
  lux::rng rng{0};
  bool prefetch = true;
  data_shard shard{};
};

/// A data container in MLUtils' sense: numobs() observations, getobs(out, indices) writes the
/// observations `indices` (in that order) into `out`, resizing it when needed.
template <class C>
concept observation_container = requires(const C& c, typename C::batch_type& out,
                                         std::span<const index_t> indices) {
  requires std::default_initializable<typename C::batch_type>;
  { c.numobs() } -> std::convertible_to<index_t>;
  c.getobs(out, indices);
};

namespace detail {

/// An array as a data container; A is a Tensor (owned) or a contiguous TensorView.
template <class A>
class array_source {
 public:
  using value_type = std::remove_cv_t<typename A::element_type>;
  static constexpr std::size_t rank = A::rank;
  using batch_type = Tensor<value_type, rank>;
  static_assert(rank >= 1, "lux::DataLoader: an array needs an observation (last) dimension");

  explicit array_source(A array) : array_(std::move(array)) {}
  index_t numobs() const noexcept { return array_.size(rank - 1); }
  void getobs(batch_type& out, std::span<const index_t> indices) const {
    shape_t<rank> shape = array_.shape();
    shape[rank - 1] = static_cast<index_t>(indices.size());
    if (out.shape() != shape) out = batch_type::uninitialized(shape);
    index_t per = 1;  // elements per observation
    for (std::size_t d = 0; d + 1 < rank; ++d) per *= shape[d];
    const value_type* src = array_.data();
    value_type* dst = out.data();
    for (std::size_t k = 0; k < indices.size(); ++k)
      std::copy_n(src + indices[k] * per, per, dst + static_cast<index_t>(k) * per);
  }

 private:
  A array_;
};

// source_of<E>: what the loader stores for an argument of type E (a reference type for lvalues).
template <class E, class D = std::remove_cvref_t<E>>
struct source_of {
  using type = D;  // a data container, stored by value
};
template <class E, class T, std::size_t N>
struct source_of<E, Tensor<T, N, cpu>> {
  using type =
      std::conditional_t<std::is_lvalue_reference_v<E>, TensorView<const T, N>, Tensor<T, N>>;
};
template <class E, class T, std::size_t N>
struct source_of<E, basic_view<T, N, cpu, layout::contiguous>> {
  using type = TensorView<const T, N>;
};
template <class E, class... Es>
struct source_of<E, std::tuple<Es...>> {
  using type = std::tuple<typename source_of<Es>::type...>;
};
template <class E, class A, class B>
struct source_of<E, std::pair<A, B>> {
  using type = std::pair<typename source_of<A>::type, typename source_of<B>::type>;
};
template <class E>
using source_of_t = typename source_of<E>::type;

// container_of<S>: the data container behind a stored source.
template <class S>
struct container_of {
  using type = S;
};
template <class T, std::size_t N>
struct container_of<Tensor<T, N, cpu>> {
  using type = array_source<Tensor<T, N, cpu>>;
};
template <class T, std::size_t N>
struct container_of<basic_view<T, N, cpu, layout::contiguous>> {
  using type = array_source<TensorView<const T, N, cpu>>;
};
template <class S>
using container_of_t = typename container_of<S>::type;

template <class T>
inline constexpr bool is_const_view = false;
template <class T, std::size_t N>
inline constexpr bool is_const_view<basic_view<const T, N, cpu, layout::contiguous>> = true;

template <class T>
inline constexpr bool is_tuple_like = false;
template <class... Ts>
inline constexpr bool is_tuple_like<std::tuple<Ts...>> = true;
template <class A, class B>
inline constexpr bool is_tuple_like<std::pair<A, B>> = true;

// loader_traits<Data>: the containers (always a tuple) and the batch type.
template <class Data>
struct loader_traits {
  using containers = std::tuple<container_of_t<Data>>;
  using batch_type = typename container_of_t<Data>::batch_type;
  static constexpr std::size_t parts = 1;
};
template <class... S>
struct loader_traits<std::tuple<S...>> {
  using containers = std::tuple<container_of_t<S>...>;
  using batch_type = std::tuple<typename container_of_t<S>::batch_type...>;
  static constexpr std::size_t parts = sizeof...(S);
};
template <class A, class B>
struct loader_traits<std::pair<A, B>> {
  using containers = std::tuple<container_of_t<A>, container_of_t<B>>;
  using batch_type =
      std::pair<typename container_of_t<A>::batch_type, typename container_of_t<B>::batch_type>;
  static constexpr std::size_t parts = 2;
};

template <class Data>
inline constexpr bool valid_loader_data = [] {
  if constexpr (is_tuple_like<Data>) return []<std::size_t... I>(std::index_sequence<I...>) {
      return (observation_container<container_of_t<std::tuple_element_t<I, Data>>> && ...);
    }
  (std::make_index_sequence<std::tuple_size_v<Data>>{});
  else return observation_container<container_of_t<Data>>;
}();

/// Converts an argument to the stored source S (a view of an lvalue Tensor, a moved Tensor, ...).
template <class S, class E>
S to_source(E&& e) {
  if constexpr (is_tuple_like<S>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return S(to_source<std::tuple_element_t<I, S>>(std::get<I>(std::forward<E>(e)))...);
    }
    (std::make_index_sequence<std::tuple_size_v<S>>{});
  } else if constexpr (is_const_view<S>) {
    return S(as_view(std::as_const(e)));
  } else {
    return S(std::forward<E>(e));
  }
}

template <class Containers, class Data>
Containers make_containers(Data&& data) {
  if constexpr (is_tuple_like<std::remove_cvref_t<Data>>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return Containers(std::tuple_element_t<I, Containers>(std::get<I>(std::move(data)))...);
    }
    (std::make_index_sequence<std::tuple_size_v<Containers>>{});
  } else {
    return Containers(std::tuple_element_t<0, Containers>(std::move(data)));
  }
}

/// A uniform integer in [0, bound), bound >= 1, from sequential draws of r (Lemire's
/// multiply-shift with rejection: exact, one 32-bit draw almost always).
inline std::uint64_t uniform_below(rng& r, std::uint64_t bound) {
  if (bound <= (std::uint64_t{1} << 32)) {
    std::uint64_t m = std::uint64_t{r.next_u32()} * bound;
    if ((m & 0xFFFFFFFFu) < bound) {
      const std::uint64_t threshold = ((std::uint64_t{1} << 32) - bound) % bound;
      while ((m & 0xFFFFFFFFu) < threshold) m = std::uint64_t{r.next_u32()} * bound;
    }
    return m >> 32;
  }
  const std::uint64_t mask = std::bit_ceil(bound) - 1;  // bound > 2^32: rejection on a mask
  for (;;) {
    const std::uint64_t hi = r.next_u32();
    const std::uint64_t v = ((hi << 32) | r.next_u32()) & mask;
    if (v < bound) return v;
  }
}

/// The observations of `range` in the order epoch `epoch` visits them.
inline std::vector<index_t> epoch_order(observation_range range, bool shuffle, const rng& seed,
                                        std::uint64_t epoch) {
  std::vector<index_t> order(static_cast<std::size_t>(range.size()));
  std::iota(order.begin(), order.end(), range.begin);
  if (shuffle && order.size() > 1) {
    rng r = seed.fold_in(epoch);
    for (std::size_t i = order.size() - 1; i > 0; --i)
      std::swap(order[i], order[static_cast<std::size_t>(uniform_below(r, i + 1))]);
  }
  return order;
}

}  // namespace detail

/// See the file comment. Data is what the loader stores: a Tensor, a TensorView<const T, N>, a
/// data container, or a std::tuple / std::pair of those; the deduction guide picks it.
template <class Data>
class DataLoader {
  static_assert(detail::valid_loader_data<Data>,
                "lux::DataLoader: the data must be a lux::Tensor, a contiguous lux::TensorView, "
                "a data container (index_t numobs() const and getobs(batch_type&, "
                "std::span<const lux::index_t>) const), or a std::tuple / std::pair of those");
  using traits = detail::loader_traits<Data>;
  using containers = typename traits::containers;

 public:
  using batch_type = typename traits::batch_type;
  class iterator;

  /// Builds the loader; argument_error for batchsize < 1, unequal observation counts or an
  /// invalid shard.
  template <class D>
  requires std::is_same_v<detail::source_of_t<D&&>, Data>
  explicit DataLoader(D&& data, const dataloader_options& options = {})
      : s_(std::make_unique<state>(
            detail::make_containers<containers>(detail::to_source<Data>(std::forward<D>(data))),
            options)) {}

  DataLoader(DataLoader&&) noexcept = default;
  DataLoader& operator=(DataLoader&&) noexcept = default;

  /// Starts the next epoch (ending one still running: its iterators become invalid).
  iterator begin() { return iterator(*s_, s_->start_epoch()); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Batches per epoch: ceil(numobs / batchsize), floor with partial=false.
  index_t size() const noexcept { return s_->nbatches; }
  /// Observations this loader (this shard) iterates over.
  index_t numobs() const noexcept { return s_->range.size(); }
  /// The observations of the shard, as indices into the whole data.
  observation_range range() const noexcept { return s_->range; }
  const dataloader_options& options() const noexcept { return s_->opts; }
  /// The epoch the next begin() starts (0 for a new loader).
  std::uint64_t epoch() const noexcept { return s_->next_epoch; }
  /// Makes the next begin() start epoch e (to resume a run).
  void set_epoch(std::uint64_t e) noexcept { s_->next_epoch = e; }
  /// The observation indices (into the whole data) in the order epoch e visits them; batch k is
  /// entries [k * batchsize, (k + 1) * batchsize).
  std::vector<index_t> observation_order(std::uint64_t e) const {
    return detail::epoch_order(s_->range, s_->opts.shuffle, s_->opts.rng, e);
  }

 private:
  struct state {
    static constexpr std::size_t parts = traits::parts;

    state(containers c, const dataloader_options& o) : data(std::move(c)), opts(o) {
      require<argument_error>(opts.batchsize >= 1, "DataLoader: batchsize must be >= 1, got ",
                              opts.batchsize);
      const index_t n = std::get<0>(data).numobs();
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (require<argument_error>(std::get<I>(data).numobs() == n,
                                 "DataLoader: every array needs the same number of observations "
                                 "(last dimension); array 0 has ",
                                 n, ", array ", I, " has ", std::get<I>(data).numobs()),
         ...);
      }
      (std::make_index_sequence<parts>{});
      range = shard_range(n, opts.shard);
      const index_t m = range.size(), bs = opts.batchsize;
      nbatches = opts.partial ? m / bs + (m % bs != 0) : m / bs;
      last_size = nbatches == 0 ? 0 : std::min(bs, m - (nbatches - 1) * bs);
      if (!opts.shuffle) order = detail::epoch_order(range, false, opts.rng, 0);
    }
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() { stop_worker(); }

    // --- batches -------------------------------------------------------------------------
    // Batch k lives in slot k % 2; a short last batch in slot 2, so full buffers keep their
    // shape and no epoch reallocates. The consumer holds at most one slot, the worker fills
    // at most one other.
    std::size_t slot_of(index_t k) const noexcept {
      return k == nbatches - 1 && last_size != opts.batchsize ? 2 : static_cast<std::size_t>(k % 2);
    }
    const batch_type& batch(index_t k) const noexcept { return slots[slot_of(k)]; }
    void gather(index_t k) {
      const std::size_t count =
          static_cast<std::size_t>(k == nbatches - 1 ? last_size : opts.batchsize);
      const std::span<const index_t> idx(order.data() + k * opts.batchsize, count);
      batch_type& out = slots[slot_of(k)];
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        if constexpr (detail::is_tuple_like<batch_type>)
          (std::get<I>(data).getobs(std::get<I>(out), idx), ...);
        else
          std::get<0>(data).getobs(out, idx);
      }
      (std::make_index_sequence<parts>{});
    }

    // --- epochs --------------------------------------------------------------------------
    std::uint64_t start_epoch() {
      stop_worker();
      const std::uint64_t e = next_epoch++;
      if (opts.shuffle) order = detail::epoch_order(range, true, opts.rng, e);
      active = ++epochs_started;
      if (nbatches == 0) return active;
      if (!opts.prefetch) {
        try {
          gather(0);
        } catch (...) {
          active = 0;
          throw;
        }
        return active;
      }
      produced = released = 0;
      stop = false;
      error = nullptr;
      worker = std::thread([this] { run_worker(); });
      try {
        wait_for(0);
      } catch (...) {
        stop_worker();
        throw;
      }
      return active;
    }
    /// The consumer is done with batch k and moves to k + 1.
    void advance(std::uint64_t id, index_t k) {
      require<argument_error>(id == active,
                              "DataLoader: increment of an iterator past the end of its epoch, or "
                              "of an epoch that a later begin() ended");
      if (opts.prefetch) {
        {
          std::lock_guard lock(mutex);
          released = k + 1;
        }
        cv.notify_all();
        if (k + 1 < nbatches) wait_for(k + 1);
      } else if (k + 1 < nbatches) {
        gather(k + 1);
      }
      if (k + 1 >= nbatches) end_epoch(id);
    }
    /// Ends epoch `id` if it is still the running one (an iterator going away).
    void end_epoch(std::uint64_t id) noexcept {
      if (id != active) return;
      stop_worker();
    }
    void stop_worker() noexcept {
      active = 0;
      if (!worker.joinable()) return;
      {
        std::lock_guard lock(mutex);
        stop = true;
      }
      cv.notify_all();
      worker.join();
    }

    // --- prefetch --------------------------------------------------------------------------
    void run_worker() {
      for (index_t j = 0; j < nbatches; ++j) {
        {
          std::unique_lock lock(mutex);
          // Slot j % 2 is free once batch j - 2 is released.
          cv.wait(lock, [&] { return stop || j < released + 2; });
          if (stop) return;
        }
        try {
          gather(j);
        } catch (...) {
          {
            std::lock_guard lock(mutex);
            error = std::current_exception();
          }
          cv.notify_all();
          return;
        }
        {
          std::lock_guard lock(mutex);
          produced = j + 1;
        }
        cv.notify_all();
      }
    }
    void wait_for(index_t k) {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return produced > k || error; });
      if (produced <= k) std::rethrow_exception(error);
    }

    containers data;
    dataloader_options opts;
    observation_range range;
    index_t nbatches = 0, last_size = 0;
    std::vector<index_t> order;
    batch_type slots[3];
    std::uint64_t next_epoch = 0;
    std::uint64_t epochs_started = 0;
    std::uint64_t active = 0;  // id of the running epoch, 0 when none

    std::mutex mutex;
    std::condition_variable cv;
    index_t produced = 0;  // batches of this epoch gathered by the worker
    index_t released = 0;  // batches of this epoch the consumer is done with
    bool stop = false;
    std::exception_ptr error;
    std::thread worker;
  };

 public:
  /// A move-only input iterator over the batches of one epoch.
  class iterator {
   public:
    using value_type = batch_type;
    using difference_type = std::ptrdiff_t;
    using reference = const batch_type&;
    using iterator_concept = std::input_iterator_tag;

    iterator() = default;
    iterator(iterator&& other) noexcept
        : s_(std::exchange(other.s_, nullptr)), id_(other.id_), k_(other.k_) {}
    iterator& operator=(iterator&& other) noexcept {
      if (this != &other) {
        finish();
        s_ = std::exchange(other.s_, nullptr);
        id_ = other.id_;
        k_ = other.k_;
      }
      return *this;
    }
    ~iterator() { finish(); }

    /// The current batch; valid until the next increment.
    const batch_type& operator*() const noexcept {
      assert(s_ && s_->active == id_ && k_ < s_->nbatches);
      return s_->batch(k_);
    }
    const batch_type* operator->() const noexcept { return &**this; }
    iterator& operator++() {
      const index_t k = k_++;
      s_->advance(id_, k);
      return *this;
    }
    void operator++(int) { ++*this; }
    /// The batch number within the epoch.
    index_t index() const noexcept { return k_; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.s_ == nullptr || it.k_ >= it.s_->nbatches;
    }

   private:
    friend class DataLoader;
    iterator(state& s, std::uint64_t id) : s_(&s), id_(id) {}
    void finish() noexcept {
      if (s_) s_->end_epoch(id_);
      s_ = nullptr;
    }

    state* s_ = nullptr;
    std::uint64_t id_ = 0;
    index_t k_ = 0;
  };

 private:
  std::unique_ptr<state> s_;
};

namespace detail {
template <class T>
inline constexpr bool is_dataloader = false;
template <class D>
inline constexpr bool is_dataloader<DataLoader<D>> = true;
}  // namespace detail

template <class D>
requires(!detail::is_dataloader<std::remove_cvref_t<D>>)
    DataLoader(D&&, const dataloader_options& = {})
->DataLoader<detail::source_of_t<D&&>>;

LUX_NAMESPACE_END
