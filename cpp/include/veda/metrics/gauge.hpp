// veda::Gauge: a value that goes up and down.
#pragma once

#include <atomic>
#include <cstdint>

#include "veda/metrics/detail/sharded.hpp"

namespace veda {

// A current value such as a queue length or a temperature.
//
// Thread-safety: all methods may be called concurrently from any thread and
// are lock-free. set() is a single store; inc()/dec() are compare-exchange
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
  double get() const noexcept { return value_.load(std::memory_order_relaxed); }

  std::int64_t created_unix_nano() const noexcept { return created_ns_; }

 private:
  alignas(detail::kCacheLine) std::atomic<double> value_{0.0};
  std::int64_t created_ns_;
};

}  // namespace veda
