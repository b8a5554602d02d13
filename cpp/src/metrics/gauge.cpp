#include "veda/metrics/gauge.hpp"

#include <limits>

#include "metrics/clock.hpp"

namespace veda {

Gauge::Gauge() noexcept : created_ns_(detail::unix_now_ns()) {}

void Gauge::set_to_current_time() noexcept {
  set(static_cast<double>(detail::unix_now_ns()) / 1e9);
}

void Gauge::set_function(std::function<double()> fn) {
  std::shared_ptr<const std::function<double()>> next;
  if (fn) next = std::make_shared<const std::function<double()>>(std::move(fn));
  std::lock_guard<std::mutex> lock(function_mutex_);
  function_ = std::move(next);
  has_function_.store(function_ != nullptr, std::memory_order_release);
}

double Gauge::call_function() const noexcept {
  std::shared_ptr<const std::function<double()>> fn;
  {
    std::lock_guard<std::mutex> lock(function_mutex_);
    fn = function_;
  }
  if (!fn) return value_.load(std::memory_order_relaxed);
  try {
    return (*fn)();
  } catch (...) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

}  // namespace veda
