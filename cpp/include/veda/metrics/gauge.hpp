// veda::Gauge: a value that goes up and down.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "veda/metrics/detail/sharded.hpp"

namespace veda {

// A current value such as a queue length or a temperature.
//
// Thread-safety: all methods may be called concurrently from any thread and
// are lock-free (a gauge given a function takes a mutex in get()). set() is a single store; inc()/dec() are compare-exchange
// loops (C++17 has no atomic floating-point add). Any double is accepted,
// including NaN and infinities, as in the Prometheus data model.
class Gauge {
 public:
  Gauge() noexcept;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1.0) noexcept { detail::atomic_add(value_, amount); }
  void dec(double amount = 1.0) noexcept { detail::atomic_add(value_, -amount); }
  // Sets the gauge to the current Unix time in seconds.
  void set_to_current_time() noexcept;
  // The current value; for a gauge with a function, what the function returns now.
  double get() const noexcept {
    if (has_function_.load(std::memory_order_acquire)) return call_function();
    return value_.load(std::memory_order_relaxed);
  }

  // Makes get() return fn() (e.g. a queue length read when scraped); an empty
  // function goes back to the stored value. Calls of fn are serialised, and
  // set_function() waits for a call in flight, so once it returns the old fn
  // is never called again. fn must not call set_function() on this gauge; an
  // exception it throws makes get() return NaN.
  void set_function(std::function<double()> fn);

  std::int64_t created_unix_nano() const noexcept { return created_ns_; }

 private:
  double call_function() const noexcept;

  alignas(detail::kCacheLine) std::atomic<double> value_{0.0};
  std::int64_t created_ns_;
  std::atomic<bool> has_function_{false};
  mutable std::mutex function_mutex_;
  std::unique_ptr<const std::function<double()>> function_;
};

}  // namespace veda
