// veda::Gauge: a value that goes up and down.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "veda/detail/fork.hpp"
#include "veda/metrics/detail/cells.hpp"

namespace veda {

// A current value such as a queue length or a temperature.
//
// Thread-safety: all methods may be called concurrently from any thread and
// are lock-free (a gauge given a function takes a mutex in get()). set() is a single store; inc()/dec() are compare-exchange
// loops (C++17 has no atomic floating-point add). Any double is accepted,
// including NaN and infinities, as in the Prometheus data model.
//
// The value lives in this object, or in a multi-process file
// (veda/metrics/multiprocess.hpp) that other processes read.
class Gauge {
 public:
  Gauge();
  // Records into `shared`, which must outlive this object: a series of a
  // multi-process file. With `stamped`, every change also stores its time
  // (for the "mostrecent" modes).
  Gauge(detail::GaugeCells* shared, bool stamped);
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double value) noexcept {
    cells_->value.store(value, std::memory_order_relaxed);
    if (stamped_) stamp();
  }
  void inc(double amount = 1.0) noexcept {
    detail::atomic_add(cells_->value, amount);
    if (stamped_) stamp();
  }
  void dec(double amount = 1.0) noexcept { inc(-amount); }
  // Sets the gauge to the current Unix time in seconds.
  void set_to_current_time() noexcept;
  // The current value; for a gauge with a function, what the function returns now.
  double get() const noexcept {
    if (has_function_.load(std::memory_order_acquire)) return call_function();
    return cells_->value.load(std::memory_order_relaxed);
  }

  // Makes get() return fn() (e.g. a queue length read when scraped); an empty
  // function goes back to the stored value. Calls of fn are serialised, and
  // set_function() waits for a call in flight, so once it returns the old fn
  // is never called again. fn must not call set_function() on this gauge; an
  // exception it throws makes get() return NaN. A gauge in a multi-process
  // file cannot have one (other processes read the stored value): throws
  // std::logic_error; publish() stores what it would return instead.
  void set_function(std::function<double()> fn);

  // Whether the value is in a multi-process file.
  bool shared() const noexcept { return cells_ != &own_; }

  std::int64_t created_unix_nano() const noexcept { return created_ns_; }

 private:
  double call_function() const noexcept;
  void stamp() noexcept;

  alignas(detail::kCacheLine) detail::GaugeCells own_;
  detail::GaugeCells* cells_;
  bool stamped_ = false;
  std::int64_t created_ns_;
  std::atomic<bool> has_function_{false};
  mutable detail::ForkSafeMutex function_mutex_{detail::kForkLevelSeries};  // never left locked by fork()
  std::unique_ptr<const std::function<double()>> function_;
};

}  // namespace veda
