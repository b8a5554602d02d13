// veda::Counter: a monotonically increasing value.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "veda/metrics/detail/cells.hpp"
#include "veda/metrics/exemplar.hpp"

namespace veda {

// A cumulative count of events or amounts.
//
// Thread-safety: all methods may be called concurrently from any thread.
// inc() is lock-free: each of the first detail::kExclusiveSlots live threads
// adds into a cache line of its own, so threads hammering one counter never
// share a line; reads sum the lines. Integer totals are exact up to 2^53.
// The cells live in this object's own memory, or in a multi-process file
// (veda/metrics/multiprocess.hpp) with the same cost per inc().
class Counter {
 public:
  Counter();
  // Records into `shared` (zeroed or a previous run's cells), which must
  // outlive this object: a series of a multi-process file, whose exemplar
  // (detail::kSharedExemplarBytes at `shared_exemplar`) other processes read.
  Counter(detail::CounterCells* shared, void* shared_exemplar);
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount`. Amounts that are negative, NaN or infinite are not added;
  // they are counted in rejected(). Never throws.
  void inc(double amount = 1.0) noexcept {
    if (valid_amount(amount)) {
      cells_->value.add(amount);
    } else {
      rejected_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Like inc(), but throws std::invalid_argument for an amount inc() would reject.
  void inc_checked(double amount = 1.0);

  // inc(amount) that also keeps `exemplar` (its value set to `amount`, its
  // time to now when 0) as the series' exemplar. The _checked form also
  // throws for labels check_exemplar_labels() refuses, recording nothing.
  void inc(double amount, Exemplar exemplar);
  void inc_checked(double amount, Exemplar exemplar);

  // The exemplar kept, as (0, exemplar), or nothing.
  std::vector<std::pair<std::int32_t, Exemplar>> exemplars() const { return exemplars_.copy(); }

  // The total since creation or the last reset().
  double get() const noexcept;

  // Starts counting from zero again and moves created_unix_nano() to now.
  void reset() noexcept;

  // Wall-clock time (ns since the Unix epoch) of creation or the last reset:
  // the start time of this cumulative series.
  std::int64_t created_unix_nano() const noexcept {
    const std::int64_t reset = cells_->reset_unix_nano.load(std::memory_order_relaxed);
    return reset != 0 ? reset : created_ns_;
  }

  // How many inc() calls were refused because of an invalid amount.
  std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

  static bool valid_amount(double amount) noexcept {
    // Written so NaN fails: comparisons with NaN are false.
    return amount >= 0.0 && amount <= 1.7976931348623157e308;
  }

 private:
  detail::OwnedCells own_;  // null when the cells are shared
  detail::CounterCells* cells_;
  const std::int64_t created_ns_;
  std::atomic<std::uint64_t> rejected_{0};
  std::mutex reset_mutex_;
  detail::ExemplarSlots exemplars_;
};

}  // namespace veda
